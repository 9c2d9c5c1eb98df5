//! `vision-bench load`, `peers` and `propagation` against real node processes on
//! loopback: a short low-rate load run gets transfers included, bad input fails with a clear message
//! and a non-zero exit code, the peer-load tool holds its connections (the node counts them), and
//! the propagation tool times blocks across a 3-node cluster and over raw gossipsub.

use std::path::Path;
use std::time::Duration;

use std::process::{Command, Output};

use crate::common::{NodeProcess, bin, wait_for};

/// The `vision-bench` executable, built next to `vision-node` by `cargo test --workspace`
/// (`crates/tools/tests/cli.rs` makes cargo build it).
fn bench_bin() -> std::path::PathBuf {
    let p = Path::new(&bin()).with_file_name("vision-bench");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release -p vision-tools` (or the workspace tests)",
        p.display()
    );
    p
}

/// Runs `vision-bench ARGS`.
fn cli(args: &[&str]) -> Output {
    Command::new(bench_bin()).args(args).output().expect("run vision-bench")
}

/// Runs `vision-bench ARGS`, asserts success and returns stdout, trimmed.
fn cli_ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(out.status.success(), "vision-bench {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `key=value` fields of the first `RESULT` line of `stdout` that contains `filter`.
fn result_fields(stdout: &str, filter: &str) -> std::collections::HashMap<String, String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT ") && l.contains(filter))
        .unwrap_or_else(|| panic!("no RESULT line with {filter:?} in:\n{stdout}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn bench_genesis(dir: &Path) -> String {
    let g = dir.join("bench-genesis.toml");
    let g = g.to_str().unwrap().to_string();
    let hash = cli_ok(&[
        "load",
        "--write-genesis",
        &g,
        "--accounts",
        "20",
        "--target-block-time-ms",
        "300",
        "--initial-difficulty",
        "1",
    ]);
    assert_eq!(hash.len(), 64, "prints the genesis hash: {hash}");
    g
}

#[test]
fn bench_load_gets_transfers_included_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = bench_genesis(dir.path());
    let node =
        NodeProcess::start(&dir.path().join("n"), &["--genesis", &genesis, "--network", "false", "--mine", "true"]);
    let pid = node.child.id().to_string();
    let out = cli(&[
        "load",
        "--api",
        &node.api,
        "--keys-from-genesis",
        &genesis,
        "--tps",
        "40",
        "--duration",
        "3",
        "--senders",
        "4",
        "--drain-timeout",
        "15",
        "--pid",
        &pid,
        "--metrics",
        &node.metrics,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench load failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(stdout.contains("| included by end of drain"), "{stdout}");
    let r = result_fields(&stdout, "included=");
    let included: u64 = r["included"].parse().unwrap();
    let accepted: f64 = r["accepted_tps"].parse().unwrap();
    assert!(included > 0, "no transfer included:\n{stdout}");
    assert!(accepted > 0.0, "{stdout}");

    // The same through the batch endpoint, 8 transfers per request.
    let out = cli(&[
        "load",
        "--api",
        &node.api,
        "--keys-from-genesis",
        &genesis,
        "--tps",
        "40",
        "--duration",
        "2",
        "--senders",
        "2",
        "--batch",
        "8",
        "--drain-timeout",
        "15",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench load --batch failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("8 txs per POST /v1/txs/batch"), "{stdout}");
    let r = result_fields(&stdout, "included=");
    assert!(r["included"].parse::<u64>().unwrap() > 0, "no batched transfer included:\n{stdout}");
    assert!(r["accepted_tps"].parse::<f64>().unwrap() > 0.0, "{stdout}");

    // Unreachable node: a clear message, exit code 1, no panic.
    let out = cli(&["load", "--api", "http://127.0.0.1:1", "--accounts", "5", "--duration", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the node at http://127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Malformed URL, missing accounts, a genesis the node does not run.
    for (args, expected) in [
        (vec!["load", "--api", "ftp://127.0.0.1:1", "--accounts", "5"], "must start with http://"),
        (vec!["load", "--api", &node.api], "needs funded accounts"),
        (vec!["load", "--api", &node.api, "--accounts", "5", "--tps", "0"], "at least 1"),
        (vec!["load", "--api", &node.api, "--accounts", "5", "--batch", "0"], "--batch must be 1..="),
    ] {
        let out = cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let other = dir.path().join("other.toml");
    cli_ok(&["load", "--write-genesis", other.to_str().unwrap(), "--accounts", "3", "--chain-id", "99"]);
    let out = cli(&["load", "--api", &node.api, "--keys-from-genesis", other.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("but the node runs"), "{stderr}");
}

#[test]
fn bench_peers_holds_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start_networked(dir.path(), &["--mine", "false"]);
    let pid = node.child.id().to_string();
    let out = cli(&[
        "peers",
        "--target",
        &node.multiaddr(),
        "--api",
        &node.api,
        "--count",
        "20",
        "--steps",
        "20",
        "--duration",
        "2",
        "--settle",
        "1",
        "--pid",
        &pid,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench peers failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    let r = result_fields(&stdout, "step=20");
    assert_eq!(r["held"], "20", "{stdout}");
    let seen: usize = r["node_peers_max"].parse().unwrap();
    assert!(seen >= 20, "the node saw {seen} peers:\n{stdout}");
    assert_eq!(r["api_errors"], "0", "{stdout}");

    let out = cli(&["peers", "--target", "/ip4/127.0.0.1/tcp/1", "--api", "http://127.0.0.1:1", "--count", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the node"), "{stderr}");
    let out = cli(&["peers", "--target", "not-a-multiaddr", "--count", "1"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses a malformed multiaddr");
}

#[test]
fn bench_propagation_times_blocks_across_a_cluster_and_raw_gossipsub() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = bench_genesis(dir.path());
    let a = NodeProcess::start_networked(
        &dir.path().join("a"),
        &["--genesis", &genesis, "--mine", "true", "--mine-threads", "1"],
    );
    let boot = a.multiaddr();
    let others: Vec<NodeProcess> = ["b", "c"]
        .iter()
        .map(|n| {
            NodeProcess::start_networked(
                &dir.path().join(n),
                &["--genesis", &genesis, "--mine", "false", "--bootstrap", &boot],
            )
        })
        .collect();
    let nodes = [&a, &others[0], &others[1]];
    for n in nodes {
        wait_for("two peers each", Duration::from_secs(30), || (n.status().peers >= 2).then_some(()));
    }
    let apis = nodes.iter().map(|n| n.api.as_str()).collect::<Vec<_>>().join(",");
    let out = cli(&["propagation", "--api", &apis, "--blocks", "5", "--timeout", "20"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench propagation failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(stdout.contains("| raw gossipsub"), "{stdout}");
    let r = result_fields(&stdout, "samples=");
    assert_eq!(r["nodes"], "3", "{stdout}");
    let blocks: u64 = r["blocks"].parse().unwrap();
    assert!(blocks >= 5, "{stdout}");
    // Every measured block is from a (the only miner) and reached b and c.
    assert_eq!(r["samples"], (2 * blocks).to_string(), "{stdout}");
    assert_eq!(r["raw_samples"], r["samples"], "the raw baseline replays every block: {stdout}");
    assert_eq!(r["raw_missed"], "0", "{stdout}");
    let (p50, raw_p50): (f64, f64) = (r["p50_ms"].parse().unwrap(), r["raw_p50_ms"].parse().unwrap());
    assert!(p50 > 0.0 && raw_p50 > 0.0, "{stdout}");

    // Bad input: a clear message and exit code 1 (clap's own refusals exit with 2).
    for (args, expected) in [
        (vec!["propagation", "--api", a.api.as_str()], "--api needs 2 to"),
        (vec!["propagation", "--api", &apis, "--blocks", "0"], "--blocks must be"),
        (vec!["propagation", "--api", "http://127.0.0.1:1,http://127.0.0.1:2"], "cannot reach the node"),
        (vec!["propagation", "--api", "http://10.1.2.3:1,http://127.0.0.1:2"], "on this machine"),
    ] {
        let out = cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = cli(&["propagation", "--api", &apis, "--blocks", "3", "--duration", "3"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses --blocks with --duration");
}
