//! Shutdown leaves no thread behind: a node with every part running (network over TCP with two
//! peers' worth of traffic, miner, API, admin API, metrics) is shut down, its runtime dropped, and
//! the process's threads are compared with the ones it had before the node started.
//!
//! Threads are a property of the whole process, and the test harness runs other tests on threads
//! of its own, so the check runs in a child process that runs only the `child_` test below: this
//! test re-executes the test binary with `--exact` and an environment variable.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use vision_node::chain::genesis::{Allocation, Genesis};
use vision_node::node::Node;
use vision_node::p2p::NetworkConfig;
use vision_node::wallet::Keypair;

const CHILD_ENV: &str = "VISION_SHUTDOWN_CHILD";
const CHILD_TEST: &str = "shutdown::child_node_shutdown_joins_every_thread";

/// `(tid, name)` of every thread of this process.
fn threads() -> BTreeSet<(u64, String)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let tid = e.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("comm")).ok()?.trim().to_string();
            Some((tid, name))
        })
        .collect()
}

#[test]
fn shutdown_leaves_no_thread_behind() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("SHUTDOWN-CHECK no thread left"), "the child did not run the check:\n{stdout}\n{stderr}");
}

/// Run only by [`shutdown_leaves_no_thread_behind`] in a process of its own (a no-op elsewhere,
/// e.g. in `cargo test -- --ignored`).
#[test]
#[ignore = "run in a child process by shutdown_leaves_no_thread_behind"]
fn child_node_shutdown_joins_every_thread() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // Process-wide pools that outlive any node by design are created before the snapshot: rayon's
    // global pool (signature verification).
    let _ = rayon::current_num_threads();
    rayon::join(|| (), || ());
    let before = threads();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let alice = Keypair::from_seed(&[1; 32]);
        let genesis = Genesis {
            chain_id: 45,
            timestamp_ms: 1_700_000_000_000,
            initial_difficulty: 1_000,
            target_block_time_ms: 100,
            block_reward: 1_000,
            min_fee: 10,
            allocations: vec![Allocation { address: alice.address(), balance: 1_000_000 }],
        };
        let dir = tempfile::tempdir().unwrap();
        let loopback = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut net = NetworkConfig::new(libp2p::identity::Keypair::generate_ed25519());
        net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        net.dial_known_peers = false;
        let node = Node::builder()
            .data_dir(dir.path().join("a"))
            .genesis(genesis.clone())
            .network(net)
            .mine(Keypair::from_seed(&[9; 32]).address(), 1)
            .api(loopback(0))
            .admin(loopback(0))
            .metrics(loopback(0))
            .start()
            .await
            .unwrap();
        // Until the miner, the import path and the workers have all run.
        let deadline = Instant::now() + Duration::from_secs(60);
        while node.core().chain().tip().header.height < 3 {
            assert!(Instant::now() < deadline, "no blocks mined");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        node.shutdown().await;
        // Right when shutdown returns, not later: a thread that only ends on its own some time
        // after (a worker seeing its queue closed) must not count as stopped.
        let named: Vec<_> =
            threads().into_iter().filter(|(_, n)| n.starts_with("net-") || n.starts_with("miner-")).collect();
        assert!(named.is_empty(), "node threads still running when shutdown returned: {named:?}");
    });
    rt.shutdown_timeout(Duration::from_secs(10));

    let after = threads();
    // One process-wide thread outlives any node by design, and it could not be created before the
    // snapshot without naming a crate only libp2p uses: the global timer of `futures-timer`
    // (libp2p's timeouts), started on first use and shared by every swarm of the process.
    let global: Vec<_> = after.difference(&before).filter(|(_, name)| name == "futures-timer").collect();
    assert!(global.len() <= 1, "more than one futures-timer thread: {global:?}");
    let left: Vec<_> = after.difference(&before).filter(|(_, name)| name != "futures-timer").collect();
    assert!(left.is_empty(), "threads still running after shutdown: {left:?}");
    println!("SHUTDOWN-CHECK no thread left ({} before and after)", before.len());
}
