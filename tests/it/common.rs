//! Shared helpers: waiting on conditions with a deadline.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use vision_node::chain::genesis::{Allocation, Genesis};
use vision_node::chain::types::{Address, Hash};
use vision_node::wallet::Keypair;

/// Path of the node binary cargo built for this test run, or the one `VISION_TEST_NODE_BIN`
/// names: an adversarial test is run once against the binary of the code before its fix, to see
/// it fail there.
pub fn bin() -> String {
    std::env::var("VISION_TEST_NODE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vision-node").to_string())
}

/// Runs a `vision-node` subcommand to completion.
pub fn cli(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run vision-node")
}

/// Runs a subcommand that must succeed and returns its trimmed stdout.
pub fn cli_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "vision-node {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8").trim().to_string()
}

/// A `vision-node run` process with its JSON log lines collected.
pub struct NodeProcess {
    pub child: Child,
    pub logs: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Lines of stderr that are not JSON log lines (e.g. fault injection reports).
    pub raw: Arc<Mutex<Vec<String>>>,
    pub data_dir: PathBuf,
    pub api: String,
    pub admin: String,
    pub metrics: String,
}

impl NodeProcess {
    /// Starts `vision-node run` with JSON logs, its API and admin API on free loopback ports, plus
    /// `extra` flags (pass `--listen` for networking, or `--network false`), and waits until the
    /// API is up.
    pub fn start(data_dir: &Path, extra: &[&str]) -> NodeProcess {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// [`NodeProcess::start`] with extra environment variables for the process.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, String)]) -> NodeProcess {
        let mut cmd = Command::new(bin());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("run")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .args(extra)
            .env("RUST_LOG", std::env::var("VISION_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn vision-node run");
        let stderr = child.stderr.take().expect("stderr");
        let logs: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let raw: Arc<Mutex<Vec<String>>> = Arc::default();
        let (sink, raw_sink) = (logs.clone(), raw.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str(&line) {
                    Ok(v) => sink.lock().unwrap().push(v),
                    Err(_) => {
                        eprintln!("node: {line}");
                        raw_sink.lock().unwrap().push(line);
                    }
                }
            }
        });
        let mut node = NodeProcess {
            child,
            logs,
            raw,
            data_dir: data_dir.to_path_buf(),
            api: String::new(),
            admin: String::new(),
            metrics: String::new(),
        };
        let addr = wait_for("the API to listen", Duration::from_secs(30), || {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("node exited early with {status}: {:?}", node.logs.lock().unwrap());
            }
            node.log_field("API listening", "addr")
        });
        node.api = format!("http://{addr}");
        let admin = wait_for("the admin API to listen", Duration::from_secs(30), || {
            node.log_field("admin API listening", "addr")
        });
        node.admin = format!("http://{admin}");
        let metrics =
            wait_for("metrics to listen", Duration::from_secs(30), || node.log_field("metrics listening", "addr"));
        node.metrics = format!("http://{metrics}");
        node
    }

    /// A node on loopback with networking: listens on a free port, plus `extra` flags.
    pub fn start_networked(data_dir: &Path, extra: &[&str]) -> NodeProcess {
        Self::start_networked_on(data_dir, "127.0.0.1", extra)
    }

    /// [`NodeProcess::start_networked`] listening on `ip` (any of 127.0.0.0/8 reaches loopback, so
    /// one machine can play hosts in different network groups).
    pub fn start_networked_on(data_dir: &Path, ip: &str, extra: &[&str]) -> NodeProcess {
        let listen = format!("/ip4/{ip}/tcp/0");
        let mut args = vec!["--listen", listen.as_str()];
        args.extend_from_slice(extra);
        let node = Self::start(data_dir, &args);
        wait_for("a p2p listen address", Duration::from_secs(30), || {
            node.client().status().ok().filter(|s| !s.listen_addrs.is_empty())
        });
        node
    }

    /// The stderr lines so far that were not JSON log lines.
    pub fn raw_lines(&self) -> Vec<String> {
        self.raw.lock().unwrap().clone()
    }

    /// Our peer id.
    pub fn peer_id(&self) -> String {
        self.client().status().unwrap().peer_id.expect("networked node")
    }

    /// A dialable multiaddr of this node, ending in /p2p/<peer id>.
    pub fn multiaddr(&self) -> String {
        let s = self.client().status().unwrap();
        format!("{}/p2p/{}", s.listen_addrs[0], s.peer_id.unwrap())
    }

    /// The status through the API.
    pub fn status(&self) -> vision_node::api::Status {
        self.client().status().unwrap()
    }

    /// A client of this node's admin API, with the token of the node's cookie file.
    pub fn admin_client(&self) -> vision_node::wallet::Client {
        vision_node::wallet::Client::new(&self.admin).with_bearer(&self.admin_token())
    }

    /// The admin API's token: the cookie file the node created in its data directory.
    pub fn admin_token(&self) -> String {
        let token = vision_node::api::auth::read_client_token(None, &self.data_dir)
            .unwrap_or_else(|e| panic!("admin token of the node in {}: {e}", self.data_dir.display()));
        token.to_string()
    }

    /// `--data-dir` for `vision-node admin`, which reads the token there.
    pub fn admin_cli_args(&self) -> [String; 4] {
        ["--admin".into(), self.admin.clone(), "--data-dir".into(), self.data_dir.display().to_string()]
    }

    /// The first log line with `message`, its field `field` as a string.
    pub fn log_field(&self, message: &str, field: &str) -> Option<String> {
        let logs = self.logs.lock().unwrap();
        logs.iter()
            .find(|v| v["fields"]["message"] == message)
            .and_then(|v| v["fields"][field].as_str().map(str::to_string))
    }

    /// A client of this node's API.
    pub fn client(&self) -> vision_node::wallet::Client {
        vision_node::wallet::Client::new(&self.api)
    }

    /// Current height through the API (None while unreachable).
    pub fn height(&self) -> Option<u64> {
        self.client().status().ok().map(|s| s.height)
    }

    /// Waits until the node's height reaches `h`.
    pub fn wait_height(&self, h: u64, timeout: Duration) -> u64 {
        wait_for(&format!("height {h}"), timeout, || self.height().filter(|x| *x >= h))
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id() as i32;
        // SAFETY: plain syscall on a pid we own.
        unsafe { libc_kill(pid, 15) };
        let status =
            wait_for("node to exit after SIGTERM", Duration::from_secs(30), || self.child.try_wait().ok().flatten());
        status.success()
    }

    /// SIGSTOP: the process freezes (its sockets stay open but nothing answers) until [`Self::resume`].
    pub fn pause(&self) {
        // SAFETY: plain syscall on a pid we own.
        assert_eq!(unsafe { libc_kill(self.child.id() as i32, 19) }, 0, "SIGSTOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        // SAFETY: plain syscall on a pid we own.
        assert_eq!(unsafe { libc_kill(self.child.id() as i32, 18) }, 0, "SIGCONT");
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Show what the node said, to debug the failure.
            let logs = self.logs.lock().unwrap();
            eprintln!("--- penalties and warnings of the node in {} ---", self.data_dir.display());
            for v in logs.iter().filter(|v| v["fields"]["message"] == "peer penalised" || v["level"] == "WARN") {
                eprintln!("{v}");
            }
            eprintln!("--- last log lines of the node in {} ---", self.data_dir.display());
            for v in logs.iter().rev().take(40).collect::<Vec<_>>().into_iter().rev() {
                eprintln!("{v}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

// ----- networks of node processes ---------------------------------------------------------------

/// Writes a fast genesis funding `keys` with 10^9 each into `dir`; blocks every `target_ms`. Returns
/// its path for `--genesis`.
pub fn genesis(dir: &Path, keys: &[&Keypair], target_ms: u64, difficulty: u64) -> String {
    let g = Genesis {
        chain_id: 42,
        timestamp_ms: 1_700_000_000_000,
        initial_difficulty: difficulty,
        target_block_time_ms: target_ms,
        block_reward: 1_000,
        min_fee: 10,
        allocations: keys.iter().map(|k| Allocation { address: k.address(), balance: 1_000_000_000 }).collect(),
    };
    let path = dir.join("genesis.toml");
    g.save(&path).unwrap();
    path.to_str().unwrap().to_string()
}

/// What a wallet configured with the genesis file `path` expects of a node (`wallet send --genesis`).
pub fn expected(path: &str) -> vision_node::wallet::Expected {
    vision_node::wallet::Expected::of(&Genesis::load(Path::new(path)).unwrap())
}

/// Waits until every node reports the same tip (and returns it).
pub fn converge(nodes: &[&NodeProcess], timeout: Duration) -> String {
    wait_for("all nodes on one tip", timeout, || {
        let tips: Vec<String> =
            nodes.iter().filter_map(|n| n.client().status().ok()).map(|s| s.tip_hash.to_string()).collect();
        (tips.len() == nodes.len() && tips.iter().all(|t| *t == tips[0])).then(|| tips[0].clone())
    })
}

/// The balance of `who` as `node` sees it (decimal).
pub fn balance(node: &NodeProcess, who: &Address) -> String {
    node.client().account(who).unwrap().balance
}

/// Whether `node` has transaction `id` in its canonical chain.
pub fn included(node: &NodeProcess, id: &Hash) -> bool {
    node.client().tx(id).map(|s| s.status == "included").unwrap_or(false)
}

/// Bans `peer` on `on` through the admin API for an hour (disconnects and blocks it).
pub fn ban(on: &NodeProcess, peer: &str) {
    let _: serde_json::Value = on
        .admin_client()
        .post(&format!("/admin/peers/{peer}/ban"), &serde_json::json!({"duration_secs": 3600}))
        .unwrap();
}

/// Lifts a ban of `peer` on `on` through the admin API.
pub fn unban(on: &NodeProcess, peer: &str) {
    let _: serde_json::Value = on.admin_client().delete(&format!("/admin/peers/{peer}/ban")).unwrap();
}

/// Makes `on` dial `addr` through the admin API.
pub fn dial(on: &NodeProcess, addr: &str) {
    let _: serde_json::Value = on.admin_client().post("/admin/peers", &serde_json::json!({"addr": addr})).unwrap();
}

/// DELETE over a raw socket, with `token` as the bearer token if given (the admin API's).
pub fn http_delete(base: &str, path: &str, token: Option<&str>) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "DELETE {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}Content-Length: 0\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

// ----- scraping /metrics ---------------------------------------------------------------------

/// GET over a raw socket; returns the body (the test client speaks JSON only).
pub fn http_get(base: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "GET {path}: {}", out.lines().next().unwrap_or(""));
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    if out.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&body) } else { body }
}

/// The body of a `Transfer-Encoding: chunked` answer.
pub fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// Sample values by full series name (`name{labels}`), from the text format.
pub fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of every sample whose series starts with `prefix` (a name, or a name and some labels).
pub fn sum(s: &std::collections::HashMap<String, f64>, prefix: &str) -> f64 {
    s.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
}

/// Scrapes `node`'s `/metrics` and checks every bounded resource (`vision_node::bounds`): all of
/// them are exported with a cap, a current use and a peak, and neither use nor peak is above the
/// cap. Returns `(resource, cap, peak)` for each, to print.
pub fn assert_resource_bounds(node: &NodeProcess) -> Vec<(&'static str, u64, u64)> {
    let s = samples(&http_get(&node.metrics, "/metrics"));
    vision_node::node::all_resources()
        .iter()
        .map(|r| {
            let get = |family: &str| -> u64 {
                let series = format!("{family}{{resource=\"{}\"}}", r.name());
                *s.get(&series).unwrap_or_else(|| panic!("{series} is not exported")) as u64
            };
            let (cap, used, peak) =
                (get("vision_resource_cap"), get("vision_resource_used"), get("vision_resource_peak"));
            assert!(cap > 0, "{}: cap 0", r.name());
            assert!(used <= cap && peak <= cap, "{}: used {used}, peak {peak}, cap {cap}", r.name());
            (r.name(), cap, peak)
        })
        .collect()
}

/// Resident memory of a process in KiB (Linux): `VmRSS`, now.
pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:` for the peak).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// An in-process node core on `genesis` with the default pool limits: on disk in `dir` (in memory
/// without one), following reorganisations up to `max_reorg_depth` (the node's default without
/// one).
pub fn test_core(genesis: &Genesis, dir: Option<&Path>, max_reorg_depth: Option<u64>) -> vision_node::node::Core {
    let defaults = vision_node::node::NodeConfig::devnet();
    let config = vision_node::node::NodeConfig {
        data_dir: dir.map(Path::to_path_buf),
        genesis: genesis.clone(),
        max_reorg_depth: max_reorg_depth.unwrap_or(defaults.max_reorg_depth),
        mempool: vision_node::mempool::Limits::default(),
        ..defaults
    };
    vision_node::node::Node::open_core(&config).unwrap()
}
