//! `vision-bench`: measurement tools that drive running nodes through their real interfaces
//! (HTTP API, libp2p over TCP) from a separate process. Results and commands are in
//! `docs/performance.md`; `scripts/bench-cluster.sh` runs them against a 3-node loopback cluster.
//!
//! - [`load`] (`vision-bench load`): pre-signed transfers from many funded accounts sent at a target rate
//!   through `POST /v1/txs`, inclusion found by scanning new blocks; reports accepted, rejected (by
//!   error code) and included transactions per second and the inclusion latency.
//! - [`peers`] (`vision-bench peers`): N libp2p connections to one node, each from a fresh identity running
//!   the node's own stack, held while the node's API latency, RSS and CPU are measured per step.
//! - [`propagation`] (`vision-bench propagation`): block propagation delay across a local cluster, timed
//!   from every node's `new_heads` WebSocket, against [`raw_gossip`] on the same links and sizes.
//! - [`raw_gossip`] (a library, no subcommand of its own): N bare swarms running only the node's
//!   gossipsub, forwarding at once, as the raw baseline of block propagation.
//!
//! Shared here: the error type, a minimal blocking HTTP/1.1 keep-alive client (the tools share the
//! machine with the nodes they measure, so each request should cost the client as little CPU as
//! possible), percentiles, CPU and memory readings from `/proc`, and markdown tables.

pub mod load;
pub mod peers;
pub mod propagation;
pub mod raw_gossip;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use clap::Subcommand;
use thiserror::Error;

/// Largest HTTP response body the bench client reads (a full block of 10,000 transactions is
/// ~4.5 MB of JSON).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Longest status line or header line accepted from the node.
pub const MAX_HEADER_LINE: usize = 8 * 1024;
/// Most header lines in one response.
pub const MAX_HEADERS: usize = 64;
/// Timeout of one TCP connect to the API.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one read or write on an API connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Clock ticks per second of `/proc/<pid>/stat` and `/proc/stat` (Linux `USER_HZ`, 100 on every
/// architecture the node builds for).
pub const USER_HZ: f64 = 100.0;

/// The `bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Send signed transfers at a target rate through the API of running nodes and report
    /// accepted, rejected and included tx/s and the inclusion latency; or, with
    /// `--write-genesis`, write a genesis funding the bench accounts.
    Load(load::LoadArgs),
    /// Hold N libp2p connections (fresh identities, the node's own stack) to one node and report
    /// its API latency, RSS and CPU at each step.
    Peers(peers::PeersArgs),
    /// Measure block propagation delay (p50/p99/max) across running nodes on this machine, and
    /// raw gossipsub on the same links with the same block sizes.
    Propagation(propagation::PropagationArgs),
}

/// Why a benchmark could not run.
#[derive(Debug, Error)]
pub enum BenchError {
    /// A flag is missing, malformed or contradicts another.
    #[error("{0}")]
    Usage(String),
    /// The node did not answer.
    #[error("cannot reach the node at {url}: {message} (is it running? is --api right?)")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The node answered something the API does not document.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The nodes or accounts cannot carry the requested run.
    #[error("{0}")]
    Setup(String),
    /// A genesis file.
    #[error(transparent)]
    Genesis(#[from] vision_node::chain::genesis::GenesisError),
    /// A local I/O failure (threads, runtime, files).
    #[error("{0}")]
    Io(String),
}

/// Runs one `bench` subcommand.
pub fn run(cmd: BenchCmd) -> Result<(), BenchError> {
    match cmd {
        BenchCmd::Load(args) => load::run(args),
        BenchCmd::Peers(args) => peers::run(args),
        BenchCmd::Propagation(args) => propagation::run(args),
    }
}

// ----- API URLs and the HTTP client --------------------------------------------------------------

/// A parsed `http://host:port` API URL.
#[derive(Debug, Clone)]
pub struct ApiUrl {
    /// As given (without a trailing slash), for messages.
    pub text: String,
    /// `host:port` for the Host header.
    pub host: String,
    /// The resolved address.
    pub addr: SocketAddr,
}

impl ApiUrl {
    /// Parses and resolves `http://host:port` (no path, no TLS).
    pub fn parse(s: &str) -> Result<ApiUrl, BenchError> {
        let text = s.trim().trim_end_matches('/').to_string();
        let Some(host) = text.strip_prefix("http://") else {
            return Err(BenchError::Usage(format!(
                "API URL {s:?} must start with http:// (e.g. http://127.0.0.1:7070)"
            )));
        };
        if host.is_empty() || host.contains('/') {
            return Err(BenchError::Usage(format!("API URL {s:?} must be http://HOST:PORT with no path")));
        }
        let host_port = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = host_port
            .to_socket_addrs()
            .map_err(|e| BenchError::Unreachable { url: text.clone(), message: format!("cannot resolve: {e}") })?
            .next()
            .ok_or_else(|| BenchError::Unreachable { url: text.clone(), message: "no address".into() })?;
        Ok(ApiUrl { host: host_port, addr, text })
    }

    /// Parses a comma-separated list (each entry may itself hold commas).
    pub fn parse_list(list: &[String]) -> Result<Vec<ApiUrl>, BenchError> {
        let urls: Vec<ApiUrl> = list
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.trim().is_empty())
            .map(ApiUrl::parse)
            .collect::<Result<_, _>>()?;
        if urls.is_empty() {
            return Err(BenchError::Usage("--api needs at least one URL".into()));
        }
        Ok(urls)
    }

    /// Whether the node is on this machine (its `/proc` entries are ours to read).
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }
}

/// One HTTP/1.1 keep-alive connection to an API, reopened after errors. Blocking; one per thread.
pub struct HttpConn {
    url: ApiUrl,
    stream: Option<BufReader<TcpStream>>,
    request: Vec<u8>,
}

/// A response: status code and body.
#[derive(Debug)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpConn {
    /// A connection to `url`, opened at the first request.
    pub fn new(url: &ApiUrl) -> HttpConn {
        HttpConn { url: url.clone(), stream: None, request: Vec::with_capacity(1024) }
    }

    /// The URL this connection talks to.
    pub fn url(&self) -> &ApiUrl {
        &self.url
    }

    fn connect(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.url.addr, CONNECT_TIMEOUT)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            self.stream = Some(BufReader::with_capacity(64 * 1024, s));
        }
        Ok(self.stream.as_mut().expect("just connected"))
    }

    /// Sends one request and reads the answer. A request that fails on a reused connection before
    /// any answer byte arrives (the server closed an idle keep-alive connection) is sent once more
    /// on a new one.
    pub fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> std::io::Result<HttpResponse> {
        self.request.clear();
        write!(self.request, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.url.host)?;
        if let Some(b) = body {
            write!(self.request, "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", b.len())?;
            self.request.extend_from_slice(b);
        } else {
            self.request.extend_from_slice(b"\r\n");
        }
        let reused = self.stream.is_some();
        match self.exchange() {
            Ok(r) => Ok(r),
            Err((e, got_bytes)) => {
                self.stream = None;
                if reused && !got_bytes {
                    self.exchange().map_err(|(e, _)| {
                        self.stream = None;
                        e
                    })
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Writes the prepared request and reads one response; on error, whether any byte came back.
    fn exchange(&mut self) -> Result<HttpResponse, (std::io::Error, bool)> {
        let request = std::mem::take(&mut self.request);
        let result = (|| {
            let stream = self.connect().map_err(|e| (e, false))?;
            stream.get_mut().write_all(&request).map_err(|e| (e, false))?;
            read_response(stream)
        })();
        self.request = request;
        let (response, close) = result?;
        if close {
            self.stream = None;
        }
        Ok(response)
    }

    /// GET `path`; a non-2xx status is an error carrying the body.
    pub fn get_json<T: serde::de::DeserializeOwned>(&mut self, path: &str) -> Result<T, BenchError> {
        let url = format!("{}{path}", self.url.text);
        let r = self
            .request("GET", path, None)
            .map_err(|e| BenchError::Unreachable { url: url.clone(), message: e.to_string() })?;
        if !(200..300).contains(&r.status) {
            return Err(BenchError::Protocol {
                url,
                message: format!("status {}: {}", r.status, String::from_utf8_lossy(&r.body)),
            });
        }
        serde_json::from_slice(&r.body).map_err(|e| BenchError::Protocol { url, message: e.to_string() })
    }
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Reads one line (CRLF-terminated, at most [`MAX_HEADER_LINE`] bytes) without the line end.
fn read_line(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> std::io::Result<()> {
    line.clear();
    let n = r.by_ref().take(MAX_HEADER_LINE as u64).read_until(b'\n', line)?;
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    if line.last() != Some(&b'\n') {
        return Err(bad("header line too long or cut short"));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(())
}

/// Reads a response; returns it and whether the server will close the connection.
fn read_response(r: &mut BufReader<TcpStream>) -> Result<(HttpResponse, bool), (std::io::Error, bool)> {
    let mut line = Vec::new();
    read_line(r, &mut line).map_err(|e| (e, false))?;
    let err = |e: std::io::Error| (e, true);
    let status_line = String::from_utf8_lossy(&line).to_string();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(bad(format!("bad status line {status_line:?}"))))?;
    let (mut length, mut chunked, mut close) = (None, false, status_line.starts_with("HTTP/1.0"));
    for n in 0.. {
        if n >= MAX_HEADERS {
            return Err(err(bad("too many header lines")));
        }
        read_line(r, &mut line).map_err(err)?;
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => length = Some(value.parse::<usize>().map_err(|_| err(bad("bad content-length")))?),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value.contains("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            read_line(r, &mut line).map_err(err)?;
            let size_text = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| err(bad("bad chunk size")))?;
            if size == 0 {
                read_line(r, &mut line).map_err(err)?; // the empty line after the last chunk
                break;
            }
            if body.len() + size > MAX_RESPONSE_BYTES {
                return Err(err(bad(format!("response larger than {MAX_RESPONSE_BYTES} bytes"))));
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).map_err(err)?;
            read_line(r, &mut line).map_err(err)?;
        }
    } else if let Some(n) = length {
        if n > MAX_RESPONSE_BYTES {
            return Err(err(bad(format!("response of {n} bytes is larger than {MAX_RESPONSE_BYTES}"))));
        }
        body.resize(n, 0);
        r.read_exact(&mut body).map_err(err)?;
    } else {
        // No length: the body runs to the end of the connection.
        r.by_ref().take(MAX_RESPONSE_BYTES as u64).read_to_end(&mut body).map_err(err)?;
        close = true;
    }
    Ok((HttpResponse { status, body }, close))
}

/// The node's status through `conn`, with a clear error when it is unreachable.
pub fn fetch_status(conn: &mut HttpConn) -> Result<vision_node::api::Status, BenchError> {
    conn.get_json("/v1/status")
}

// ----- statistics, /proc and tables --------------------------------------------------------------

/// The `p`-th percentile (0..=100, nearest rank) of sorted values; 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CPU ticks (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of a process in KiB, from `/proc/<pid>/status`.
pub fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Busy ticks of the whole machine (all CPUs; everything but idle and iowait), from `/proc/stat`.
pub fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum();
    Some(busy)
}

/// CPU use over a window: the whole machine, this process, and the processes given by pid.
#[derive(Debug, Clone)]
pub struct CpuWindow {
    at: Instant,
    machine: Option<u64>,
    own: Option<u64>,
    pids: Vec<(u32, Option<u64>)>,
    threads: Vec<std::collections::HashMap<String, u64>>,
}

/// CPU use over a finished window, in cores (1.0 = one core busy the whole window).
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    /// Whole machine.
    pub machine: Option<f64>,
    /// This bench process.
    pub own: Option<f64>,
    /// Each watched process.
    pub pids: Vec<(u32, Option<f64>)>,
    /// Each watched process's threads by name, busiest first.
    pub threads: Vec<Vec<(String, f64)>>,
}

impl CpuUse {
    /// `name 0.97, name 0.12` for watched process `i`: where its CPU went.
    pub fn thread_summary(&self, i: usize) -> String {
        let Some(t) = self.threads.get(i) else { return String::new() };
        t.iter().map(|(n, c)| format!("{n} {c:.2}")).collect::<Vec<_>>().join(", ")
    }

    /// CPU of watched process `i` without its threads whose name starts with `prefix` (e.g. the
    /// node without its `miner-*` threads, which take whatever CPU is left).
    pub fn pid_without(&self, i: usize, prefix: &str) -> Option<f64> {
        let total = self.pids.get(i)?.1?;
        let skip: f64 = self.threads.get(i)?.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, c)| c).sum();
        Some((total - skip).max(0.0))
    }

    /// Machine minus this process minus the watched processes: everything else on the machine.
    pub fn others(&self) -> Option<f64> {
        let mut v = self.machine? - self.own?;
        for (_, p) in &self.pids {
            v -= (*p)?;
        }
        Some(v.max(0.0))
    }
}

impl CpuWindow {
    /// Starts a window now.
    pub fn start(pids: &[u32]) -> CpuWindow {
        CpuWindow {
            at: Instant::now(),
            machine: machine_busy_ticks(),
            own: proc_cpu_ticks(std::process::id()),
            pids: pids.iter().map(|p| (*p, proc_cpu_ticks(*p))).collect(),
            threads: pids.iter().map(|p| proc_thread_ticks(*p)).collect(),
        }
    }

    /// CPU used since [`CpuWindow::start`].
    pub fn finish(&self) -> CpuUse {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let cores = |before: Option<u64>, after: Option<u64>| -> Option<f64> {
            Some(after?.saturating_sub(before?) as f64 / USER_HZ / secs)
        };
        CpuUse {
            machine: cores(self.machine, machine_busy_ticks()),
            own: cores(self.own, proc_cpu_ticks(std::process::id())),
            pids: self.pids.iter().map(|(p, t)| (*p, cores(*t, proc_cpu_ticks(*p)))).collect(),
            threads: self
                .pids
                .iter()
                .zip(&self.threads)
                .map(|((p, _), before)| {
                    let mut v: Vec<(String, f64)> = proc_thread_ticks(*p)
                        .into_iter()
                        .map(|(name, after)| {
                            let b = before.get(&name).copied().unwrap_or(0);
                            (name, after.saturating_sub(b) as f64 / USER_HZ / secs)
                        })
                        .filter(|(_, c)| *c >= 0.005)
                        .collect();
                    v.sort_by(|a, b| b.1.total_cmp(&a.1));
                    v
                })
                .collect(),
        }
    }
}

/// `1.23` or `n/a`.
pub fn fmt_cores(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |c| format!("{c:.2}"))
}

/// Number of CPUs and the CPU model, for the report header.
pub fn machine_description() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs, {model}")
}

/// Parses a comma-separated list of pids.
pub fn parse_pids(list: &[String]) -> Result<Vec<u32>, BenchError> {
    list.iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|_| BenchError::Usage(format!("--pid {s:?} is not a process id"))))
        .collect()
}

/// A markdown table printed with aligned columns.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns `0..left` are left-aligned (the first always is).
    left: usize,
}

impl Table {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new(), left: 1 }
    }

    /// Adds a row (cells beyond the header are dropped, missing ones are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// Left-aligns every column (for tables of long text values).
    pub fn left_aligned(mut self) -> Table {
        self.left = self.header.len();
        self
    }

    /// The table as markdown; the first column (all of them after [`Table::left_aligned`]) is
    /// left-aligned, the others right-aligned.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| self.rows.iter().map(|r| r[i].chars().count()).chain([self.header[i].len(), 3]).max().unwrap_or(3))
            .collect();
        let left = |i: usize| i == 0 || i < self.left;
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(
                    |(i, c)| {
                        if left(i) { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) }
                    },
                )
                .collect();
            format!("| {} |", parts.join(" | "))
        };
        let sep: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| if left(i) { "-".repeat(w + 2) } else { format!("{}:", "-".repeat(w + 1)) })
            .collect();
        let mut out = line(&self.header);
        out.push('\n');
        out.push_str(&format!("|{}|", sep.join("|")));
        for r in &self.rows {
            out.push('\n');
            out.push_str(&line(r));
        }
        out
    }
}

/// Prometheus samples by full series name (`name{labels}`), scraped from a node's `/metrics`.
pub fn scrape_metrics(conn: &mut HttpConn) -> Option<std::collections::HashMap<String, f64>> {
    let r = conn.request("GET", "/metrics", None).ok().filter(|r| r.status == 200)?;
    let text = String::from_utf8_lossy(&r.body);
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect(),
    )
}

/// Sum of the samples of one metric family (every label set), from [`scrape_metrics`].
pub fn metric_sum(samples: &std::collections::HashMap<String, f64>, family: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.as_str() == family || k.strip_prefix(family).is_some_and(|rest| rest.starts_with('{')))
        .map(|(_, v)| v)
        .sum()
}

/// CPU ticks of a process's threads, summed by thread name (`/proc/<pid>/task/*/comm`).
pub fn proc_thread_ticks(pid: u32) -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else { continue };
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.to_string()) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        *out.entry(comm.trim().to_string()).or_insert(0) += ticks;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn urls_are_checked() {
        assert!(ApiUrl::parse("http://127.0.0.1:7070/").unwrap().is_loopback());
        assert!(matches!(ApiUrl::parse("https://127.0.0.1:7070"), Err(BenchError::Usage(_))));
        assert!(matches!(ApiUrl::parse("http://127.0.0.1:7070/v1"), Err(BenchError::Usage(_))));
        let list = ApiUrl::parse_list(&["http://127.0.0.1:1,http://127.0.0.1:2".into()]).unwrap();
        assert_eq!(list.len(), 2);
        assert!(ApiUrl::parse_list(&[]).is_err());
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["metric", "value"]);
        t.row(vec!["accepted".into(), "12".into()]);
        let s = t.render();
        assert!(s.contains("| accepted |    12 |"), "{s}");
    }

    #[test]
    fn proc_readings_of_ourselves() {
        assert!(proc_cpu_ticks(std::process::id()).is_some());
        assert!(proc_rss_kib(std::process::id()).unwrap() > 0);
        assert!(machine_busy_ticks().is_some());
    }

    #[test]
    fn http_client_reads_length_and_chunked_bodies_over_keep_alive() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut line = String::new();
            for answer in [
                "HTTP/1.1 202 Accepted\r\ncontent-length: 5\r\n\r\nhello".to_string(),
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".to_string(),
            ] {
                // Skip the request: headers, then a body of the given length.
                let mut len = 0;
                loop {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                w.write_all(answer.as_bytes()).unwrap();
            }
        });
        let url = ApiUrl::parse(&format!("http://{addr}")).unwrap();
        let mut c = HttpConn::new(&url);
        let a = c.request("POST", "/v1/txs", Some(b"{}")).unwrap();
        assert_eq!((a.status, a.body.as_slice()), (202, b"hello".as_slice()));
        let b = c.request("GET", "/v1/status", None).unwrap();
        assert_eq!((b.status, b.body.as_slice()), (200, b"abcde".as_slice()));
        server.join().unwrap();
    }
}
