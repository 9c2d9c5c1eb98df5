//! A partition longer than the reorg window (issue #14 item 8), with real node processes.
//!
//! Two miners on a fast chain with a reorg window of [`WINDOW`] blocks start unconnected (the
//! partition) and each mine well over a window past their fork (the genesis). Then one dials the
//! other (the heal). The side with less work fetches the other's headers, finds that its chain
//! forks below our reorg window, and must classify it as "the other side of a deep fork", not as a
//! liar: no penalty, no ban on either side, the peer disconnected (and kept away for a cooldown),
//! the fork reported in `GET /v1/status` (`deep_forks`), in `vision_p2p_deep_fork_peers` and in a
//! WARN log line that says what to do. The operator then chooses: `vision-node admin deep-fork
//! keep` (the admin API) ends the report; following the other side is a restart with a window
//! deep enough for the fork, after which the node follows the other chain.

use std::time::{Duration, Instant};

use vision_node::p2p::BanInfo;

use crate::common::{NodeProcess, cli_ok, dial, genesis, http_get, samples, sum, wait_for};

/// The reorg window of both nodes.
const WINDOW: u64 = 8;
/// Target block time of the test chain.
const TARGET_BLOCK_MS: u64 = 100;
/// Starting difficulty (a single mining thread makes a block in some tens of ms).
const INITIAL_DIFFICULTY: u64 = 2_000;
/// How long the waits run (generous: CI machines are slow and loaded).
const WAIT: Duration = Duration::from_secs(120);

fn bans(n: &NodeProcess) -> Vec<BanInfo> {
    n.admin_client().get("/admin/bans").unwrap()
}

fn log_lines(n: &NodeProcess, message_part: &str) -> Vec<serde_json::Value> {
    n.logs
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["fields"]["message"].as_str().is_some_and(|m| m.contains(message_part)))
        .cloned()
        .collect()
}

fn penalties(n: &NodeProcess) -> Vec<String> {
    let s = samples(&http_get(&n.metrics, "/metrics"));
    let mut out: Vec<String> = s
        .iter()
        .filter(|(k, v)| k.starts_with("vision_p2p_peer_actions_total") && **v > 0.0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    out.sort();
    out
}

/// The side that reported the deep fork first, and the other one.
fn reporter<'a>(a: &'a NodeProcess, b: &'a NodeProcess) -> Option<(&'a NodeProcess, &'a NodeProcess)> {
    if !a.status().deep_forks.is_empty() {
        Some((a, b))
    } else if !b.status().deep_forks.is_empty() {
        Some((b, a))
    } else {
        None
    }
}

fn metric(n: &NodeProcess, name: &str) -> f64 {
    sum(&samples(&http_get(&n.metrics, "/metrics")), name)
}

/// POSTs `body` to `path` on `n`'s admin API; returns the status code and the body.
fn admin_post(n: &NodeProcess, path: &str, body: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let host = n.admin.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        n.admin_token(),
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    let body = if out.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        crate::common::dechunk(&body)
    } else {
        body
    };
    (code, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
}

#[test]
fn a_partition_longer_than_the_reorg_window_ends_without_bans_and_with_an_operator_message() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis(dir.path(), &[], TARGET_BLOCK_MS, INITIAL_DIFFICULTY);
    let window = WINDOW.to_string();
    let flags =
        ["--genesis", g.as_str(), "--max-reorg-depth", window.as_str(), "--mine", "true", "--mine-threads", "1"];
    // The partition: two miners that do not know each other, each well over a window past the
    // fork (the genesis).
    let a = NodeProcess::start_networked(&dir.path().join("a"), &flags);
    let b = NodeProcess::start_networked(&dir.path().join("b"), &flags);
    a.wait_height(3 * WINDOW, WAIT);
    b.wait_height(3 * WINDOW, WAIT);
    let (sa, sb) = (a.status(), b.status());
    eprintln!(
        "long partition: before the heal a at {} (work {}), b at {} (work {})",
        sa.height, sa.total_work, sb.height, sb.total_work
    );

    // The heal.
    let healed = Instant::now();
    dial(&a, &b.multiaddr());
    let (lower, upper) = wait_for("a deep fork reported", WAIT, || reporter(&a, &b));
    let detected = healed.elapsed();
    let (lower_name, upper_name) = if std::ptr::eq(lower, &a) { ("a", "b") } else { ("b", "a") };
    let fork = lower.status().deep_forks[0].clone();
    eprintln!(
        "long partition: {lower_name} reported the deep fork {:.2} s after the heal: {fork:?}",
        detected.as_secs_f64()
    );
    assert_eq!(fork.peer, upper.peer_id(), "the other side is named");
    assert_eq!(fork.fork_height, 0, "the partition began at the genesis");
    assert!(fork.depth > WINDOW && fork.window == WINDOW, "{fork:?}");
    assert!(fork.their_work.parse::<u128>().unwrap() > fork.our_work.parse::<u128>().unwrap(), "{fork:?}");
    // The metrics and the WARN line that says what to do.
    assert_eq!(metric(lower, "vision_p2p_deep_fork_peers"), 1.0);
    assert!(metric(lower, "vision_p2p_deep_forks_total") >= 1.0);
    let warn = log_lines(lower, "deep fork: ");
    let warn = warn.iter().find(|v| v["level"] == "WARN").expect("a WARN line");
    let text = warn["fields"]["message"].as_str().unwrap();
    for needle in ["vision-node admin deep-fork keep", "--max-reorg-depth", "more work than ours"] {
        assert!(text.contains(needle), "the WARN line names {needle:?}: {text}");
    }
    assert_eq!(warn["fields"]["peer"], fork.peer);
    // Disconnected, on both sides.
    wait_for("the two sides disconnected", WAIT, || (a.status().peers == 0 && b.status().peers == 0).then_some(()));
    let disconnected = healed.elapsed();
    // The other side dials again: refused (the cooldown), not a loop of header fetches.
    dial(upper, &lower.multiaddr());
    wait_for("the redial refused", WAIT, || {
        let refused = log_lines(lower, "peer on the other side of a deep fork refused");
        refused.iter().any(|v| v["fields"]["peer"] == fork.peer).then_some(())
    });
    wait_for("the redial disconnected", WAIT, || (a.status().peers == 0 && b.status().peers == 0).then_some(()));
    // Both sides mine on; nobody charged anybody, nobody is banned.
    let (ha, hb) = (a.status().height, b.status().height);
    a.wait_height(ha + 2 * WINDOW, WAIT);
    b.wait_height(hb + 2 * WINDOW, WAIT);
    for (n, name) in [(&a, "a"), (&b, "b")] {
        assert!(bans(n).is_empty(), "{name} banned {:?}", bans(n));
        assert!(penalties(n).is_empty(), "{name} charged: {:?}", penalties(n));
    }
    assert_eq!(lower.status().deep_forks.len(), 1, "still reported");
    eprintln!(
        "long partition: no bans, no penalties; {lower_name} disconnected {upper_name} {:.2} s after the heal",
        disconnected.as_secs_f64()
    );

    // The operator's choice. Bad input first: clear errors.
    let (code, body) = admin_post(lower, "/admin/chain/deep-forks/keep", "{\"peer\": \"nonsense\"}");
    assert_eq!((code, body["error"]["code"].as_str()), (400, Some("invalid_peer_id")), "{body}");
    let (code, body) = admin_post(lower, "/admin/chain/deep-forks/keep", "[1, 2]");
    assert_eq!((code, body["error"]["code"].as_str()), (400, Some("invalid_json")), "{body}");
    let stranger = lower.peer_id();
    let (code, body) = admin_post(lower, "/admin/chain/deep-forks/keep", &format!("{{\"peer\": \"{stranger}\"}}"));
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("no_deep_fork")), "{body}");
    // The CLI lists it; keeping our chain through it ends the report.
    let listed = cli_ok(&["admin", "deep-fork", "list", "--api", &lower.api]);
    assert!(listed.contains(&fork.peer) && listed.contains("forks at height 0"), "{listed}");
    let data_dir = lower.data_dir.display().to_string();
    let kept = cli_ok(&["admin", "deep-fork", "keep", "--admin", &lower.admin, "--data-dir", &data_dir]);
    assert!(kept.contains(&format!("keeping our chain against peer {}", fork.peer)), "{kept}");
    assert!(lower.status().deep_forks.is_empty());
    let (code, body) = admin_post(lower, "/admin/chain/deep-forks/keep", "{}");
    assert_eq!((code, body["kept"].as_array().map(Vec::len)), (200, Some(0)), "nothing left to keep: {body}");
    assert_eq!(metric(lower, "vision_p2p_deep_fork_peers"), 0.0);

    // Or follow the other side: restart once with a window deeper than the fork (and, here, no
    // mining, so that the other side keeps more work), and dial it.
    let lower_dir = lower.data_dir.clone();
    let upper_addr = upper.multiaddr();
    let (lower, upper) = if lower_name == "a" { (a, b) } else { (b, a) };
    assert!(lower.terminate());
    let deep = (fork.depth * 100).to_string();
    let lower = NodeProcess::start_networked(
        &lower_dir,
        &["--genesis", g.as_str(), "--max-reorg-depth", deep.as_str(), "--mine", "false"],
    );
    let target = upper.status();
    dial(&lower, &upper_addr);
    let followed = Instant::now();
    let on_other_chain = || {
        let at: vision_node::api::BlockJson = lower.client().get(&format!("/v1/blocks/{}", target.height)).ok()?;
        (at.hash == target.tip_hash).then_some(())
    };
    let deadline = Instant::now() + WAIT;
    while on_other_chain().is_none() {
        if Instant::now() > deadline {
            for (n, name) in [(&lower, lower_name), (&upper, upper_name)] {
                let logs = n.logs.lock().unwrap();
                let tail: Vec<String> = logs.iter().rev().take(80).rev().map(|l| l.to_string()).collect();
                eprintln!("--- {name}'s last log lines:\n{}", tail.join("\n"));
            }
            panic!("timed out after {WAIT:?} waiting for the restarted side on the other chain");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "long partition: {lower_name} follows {upper_name}'s chain (height {}) {:.2} s after its restart",
        target.height,
        followed.elapsed().as_secs_f64()
    );
    for (n, name) in [(&lower, lower_name), (&upper, upper_name)] {
        assert!(bans(n).is_empty(), "{name} banned {:?}", bans(n));
    }
}
