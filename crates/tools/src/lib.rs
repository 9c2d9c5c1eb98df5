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
//! Shared here: the error type, a blocking HTTP/1.1 keep-alive client (`ureq`; the tools share the
//! machine with the nodes they measure, so each request should cost the client as little CPU as
//! possible), percentiles (`hdrhistogram`), CPU and memory readings from `/proc` (`procfs`), and
//! markdown tables.

#![forbid(unsafe_code)]

pub mod load;
pub mod peers;
pub mod propagation;
pub mod raw_gossip;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use clap::Subcommand;
use thiserror::Error;

/// Largest HTTP response body the bench client reads (a full block of 10,000 transactions is
/// ~4.5 MB of JSON).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Timeout of one TCP connect to the API.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of one read or write on an API connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

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
///
/// A `ureq` agent of its own that keeps at most one idle connection, so each `HttpConn` is one
/// TCP connection as long as the node keeps it open (the tools share the machine with the nodes
/// they measure, so each request should cost the client as little CPU as possible: no TLS, no
/// compression, `TCP_NODELAY`).
pub struct HttpConn {
    url: ApiUrl,
    agent: ureq::Agent,
    /// Whether a request has completed, i.e. the agent may hold a pooled connection.
    used: bool,
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
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(IO_TIMEOUT))
            .timeout_per_write(Some(IO_TIMEOUT))
            .no_delay(true)
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            // The hand-written client kept its connection until the node closed it; ureq drops
            // idle connections after 15 s by default (the load poller or a slow probe can idle
            // that long between requests).
            .max_idle_age(Duration::from_secs(24 * 3600))
            .build();
        HttpConn { url: url.clone(), agent: config.into(), used: false }
    }

    /// The URL this connection talks to.
    pub fn url(&self) -> &ApiUrl {
        &self.url
    }

    /// Sends one request and reads the answer (a body of at most [`MAX_RESPONSE_BYTES`]). A request
    /// that fails with a connection error after an earlier request succeeded (the node may have
    /// closed the idle keep-alive connection just as it was reused) is sent once more; ureq opens a
    /// new connection for it.
    pub fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> std::io::Result<HttpResponse> {
        match self.exchange(method, path, body) {
            Err(e) if self.used && is_stale_connection(&e) => {
                self.used = false;
                self.exchange(method, path, body)
            }
            r => r,
        }
    }

    fn exchange(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> std::io::Result<HttpResponse> {
        let uri = format!("{}{path}", self.url.text);
        let builder = ureq::http::Request::builder().method(method).uri(&uri);
        let result = match body {
            Some(b) => builder
                .header("content-type", "application/json")
                .body(b)
                .map_err(std::io::Error::other)
                .and_then(|req| self.agent.run(req).map_err(ureq::Error::into_io)),
            None => builder
                .body(())
                .map_err(std::io::Error::other)
                .and_then(|req| self.agent.run(req).map_err(ureq::Error::into_io)),
        };
        let response = result?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .with_config()
            .limit(MAX_RESPONSE_BYTES as u64)
            .read_to_vec()
            .map_err(ureq::Error::into_io)?;
        self.used = true;
        Ok(HttpResponse { status, body })
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

/// Whether an error is what a request sent on a connection the server has just closed gets.
fn is_stale_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
}

/// The node's status through `conn`, with a clear error when it is unreachable.
pub fn fetch_status(conn: &mut HttpConn) -> Result<vision_node::api::Status, BenchError> {
    conn.get_json("/v1/status")
}

// ----- statistics, /proc and tables --------------------------------------------------------------

/// Significant decimal digits an HDR histogram keeps: values are stored to within 1/1024 of
/// themselves (exactly below 2048 units).
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// Millisecond samples (latencies, delays; any non-negative values) in an HDR histogram at
/// microsecond resolution, with the exact minimum, maximum and mean beside it.
///
/// Percentiles are nearest-rank, as hdrhistogram defines them (the smallest sample with at least
/// `ceil(p/100 * n)` samples at or below it, at least the first). The one difference from taking
/// the sample out of a sorted list: the value reported is the upper end of its histogram bucket,
/// i.e. up to 0.1% above the sample (exact below 2.048 ms), clamped to the exact maximum.
#[derive(Debug, Clone)]
pub struct Millis {
    hist: hdrhistogram::Histogram<u64>,
    min: f64,
    max: f64,
    sum: f64,
}

impl Default for Millis {
    fn default() -> Millis {
        Millis::new()
    }
}

impl Millis {
    /// No samples.
    pub fn new() -> Millis {
        Millis {
            hist: hdrhistogram::Histogram::new(HISTOGRAM_SIGFIG).expect("3 significant figures are supported"),
            min: f64::INFINITY,
            max: 0.0,
            sum: 0.0,
        }
    }

    /// Records one sample (negative or NaN values count as 0).
    pub fn record(&mut self, ms: f64) {
        let ms = if ms > 0.0 { ms } else { 0.0 };
        let us = (ms * 1e3).round() as u64;
        // `record` grows the histogram; `saturating_record` would clamp to its current range.
        if self.hist.record(us).is_err() {
            self.hist.saturating_record(us);
        }
        self.min = self.min.min(ms);
        self.max = self.max.max(ms);
        self.sum += ms;
    }

    /// Number of samples.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The `p`-th percentile (0..=100, nearest rank: the `ceil(p/100 * n)`-th smallest sample, at
    /// least the first); 0 when empty.
    pub fn percentile(&self, p: f64) -> f64 {
        self.at_rank(((p / 100.0) * self.len() as f64).ceil() as u64)
    }

    /// The `rank`-th smallest sample (1-based, clamped to `1..=len`); 0 when empty.
    pub fn at_rank(&self, rank: u64) -> f64 {
        let n = self.len();
        if n == 0 {
            return 0.0;
        }
        // hdrhistogram returns the `ceil(q * n)`-th sample; `q = (rank - 1/2) / n` lands on `rank`
        // whatever the rounding of the division.
        let q = (rank.clamp(1, n) as f64 - 0.5) / n as f64;
        let us = self.hist.value_at_quantile(q);
        (us as f64 / 1e3).clamp(self.min, self.max)
    }

    /// Adds the samples of `other`.
    pub fn add(&mut self, other: &Millis) {
        self.hist.add(&other.hist).expect("auto-resizing histograms take any value");
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// The largest sample (exact); 0 when empty.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// The mean (exact); 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.is_empty() { 0.0 } else { self.sum / self.len() as f64 }
    }
}

impl FromIterator<f64> for Millis {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Millis {
        let mut m = Millis::new();
        for v in iter {
            m.record(v);
        }
        m
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` and `/proc/stat` (`USER_HZ`, 100 on Linux).
fn ticks_per_second() -> f64 {
    procfs::ticks_per_second() as f64
}

/// CPU ticks (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()?;
    Some(stat.utime + stat.stime)
}

/// Resident memory of a process in KiB, from `/proc/<pid>/status` (`VmRSS`).
pub fn proc_rss_kib(pid: u32) -> Option<u64> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?.status().ok()?.vmrss
}

/// Busy ticks of the whole machine (all CPUs; everything but idle and iowait), from `/proc/stat`.
pub fn machine_busy_ticks() -> Option<u64> {
    use procfs::CurrentSI;
    let t = procfs::KernelStats::current().ok()?.total;
    // user nice system irq softirq steal (guest time is already in user).
    Some(t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0) + t.steal.unwrap_or(0))
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
        let hz = ticks_per_second();
        let cores = |before: Option<u64>, after: Option<u64>| -> Option<f64> {
            Some(after?.saturating_sub(before?) as f64 / hz / secs)
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
                            (name, after.saturating_sub(b) as f64 / hz / secs)
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
    use procfs::Current;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = procfs::CpuInfo::current()
        .ok()
        .and_then(|info| info.model_name(0).map(|m| m.trim().to_string()))
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

/// CPU ticks of a process's threads, summed by thread name (`/proc/<pid>/task/*/stat`).
pub fn proc_thread_ticks(pid: u32) -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    let Some(tasks) = i32::try_from(pid).ok().and_then(|p| procfs::process::Process::new(p).ok()?.tasks().ok()) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = task.stat() else { continue };
        *out.entry(stat.comm).or_insert(0) += stat.utime + stat.stime;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        // Below 2.048 ms every microsecond has a bucket of its own: exact.
        let v: Millis = (1..=100).map(|i| f64::from(i) / 100.0).collect();
        assert_eq!(v.percentile(50.0), 0.5);
        assert_eq!(v.percentile(99.0), 0.99);
        assert_eq!(v.percentile(100.0), 1.0);
        assert_eq!((v.max(), v.mean(), v.len()), (1.0, 0.505, 100));
        let one: Millis = [7.0].into_iter().collect();
        assert_eq!(one.percentile(99.0), 7.0);
        assert_eq!(Millis::new().percentile(50.0), 0.0);
        assert_eq!(Millis::new().max(), 0.0);
        // Larger values are within 0.1%, never above the largest sample.
        let v: Millis = (1..=100).map(f64::from).collect();
        for p in [50.0, 99.0, 100.0] {
            let got = v.percentile(p);
            assert!((got - p).abs() <= p / 1000.0, "p{p}: {got}");
        }
        assert_eq!(v.percentile(100.0), 100.0);
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
        assert!(!proc_thread_ticks(std::process::id()).is_empty());
        assert!(machine_description().contains(" CPUs, "));
        assert_eq!(proc_cpu_ticks(u32::MAX), None);
    }

    #[test]
    fn http_client_reads_length_and_chunked_bodies_over_keep_alive() {
        use std::io::{BufRead, BufReader, Read, Write};
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
