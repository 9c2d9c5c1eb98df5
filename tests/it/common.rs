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

/// Path of the node binary cargo built for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vision-node")
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
        let mut cmd = Command::new(bin());
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
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str(&line) {
                    Ok(v) => sink.lock().unwrap().push(v),
                    Err(_) => eprintln!("node: {line}"),
                }
            }
        });
        let mut node = NodeProcess {
            child,
            logs,
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
        let mut args = vec!["--listen", "/ip4/127.0.0.1/tcp/0"];
        args.extend_from_slice(extra);
        let node = Self::start(data_dir, &args);
        wait_for("a p2p listen address", Duration::from_secs(30), || {
            node.client().status().ok().filter(|s| !s.listen_addrs.is_empty())
        });
        node
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

    /// A client of this node's admin API.
    pub fn admin_client(&self) -> vision_node::wallet::Client {
        vision_node::wallet::Client::new(&self.admin)
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
