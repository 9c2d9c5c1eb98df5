//! Metrics through real processes: `/metrics` of a miner and of a node that receives its blocks by
//! gossip passes `promtool check metrics` and has non-zero values where activity happened; a real
//! Prometheus server (Debian's `prometheus` package) scrapes both nodes and its own HTTP API shows
//! every target up with chain-height samples.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package (`.ci/run` installs it).
//! Without them the two checks that need them fail under CI (`CI=true`) and are skipped with a
//! message elsewhere, so `cargo test --release` still runs on a machine without the package.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use vision_node::chain::genesis::{Allocation, Genesis};
use vision_node::wallet::Keypair;

use crate::common::{NodeProcess, http_get, samples, sum, wait_for};

fn tool(name: &str) -> Option<String> {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    if !path.is_empty() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} is required under CI: install Debian's prometheus package");
    }
    eprintln!("SKIPPED: {name} not installed (apt-get install prometheus)");
    None
}

fn two_nodes(dir: &Path) -> (NodeProcess, NodeProcess, Keypair) {
    let alice = Keypair::from_seed(&[1; 32]);
    let g = Genesis {
        chain_id: 43,
        timestamp_ms: 1_700_000_000_000,
        initial_difficulty: 2_000,
        target_block_time_ms: 300,
        block_reward: 1_000,
        min_fee: 10,
        allocations: vec![Allocation { address: alice.address(), balance: 1_000_000_000 }],
    };
    let path = dir.join("genesis.toml");
    g.save(&path).unwrap();
    let g = path.to_str().unwrap().to_string();
    let a = NodeProcess::start_networked(&dir.join("a"), &["--genesis", &g, "--mine", "true"]);
    let b = NodeProcess::start_networked(
        &dir.join("b"),
        &["--genesis", &g, "--mine", "false", "--bootstrap", &a.multiaddr()],
    );
    (a, b, alice)
}

#[test]
fn metrics_pass_promtool_and_show_activity() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, alice) = two_nodes(dir.path());
    // Activity: blocks mined by a and gossiped to b, a transfer through b's API mined by a.
    let tx = b
        .client()
        .send(
            &alice,
            Keypair::from_seed(&[2; 32]).address(),
            5,
            Some(10),
            &crate::common::expected(dir.path().join("genesis.toml").to_str().unwrap()),
        )
        .unwrap();
    wait_for("the transfer included on b", Duration::from_secs(60), || {
        b.client().tx(&tx.id()).ok().filter(|s| s.status == "included")
    });
    b.wait_height(5, Duration::from_secs(60));
    // b has taken at least one block from gossip (not only by sync).
    wait_for("b to accept a gossiped block", Duration::from_secs(60), || {
        let s = samples(&http_get(&b.metrics, "/metrics"));
        (sum(&s, "vision_p2p_gossip_messages_total{topic=\"blocks\",result=\"accept\"}") > 0.0).then_some(())
    });

    let text_b = http_get(&b.metrics, "/metrics");
    let text_a = http_get(&a.metrics, "/metrics");
    assert!(text_b.contains("# TYPE vision_blocks_imported_total counter"), "classic text format for plain clients");
    let (sa, sb) = (samples(&text_a), samples(&text_b));
    let positive = |s: &HashMap<String, f64>, prefix: &str, who: &str| {
        let v = sum(s, prefix);
        assert!(
            v > 0.0,
            "{who}: {prefix} is {v}; series: {:?}",
            s.keys().filter(|k| k.starts_with(prefix.split('{').next().unwrap())).collect::<Vec<_>>()
        );
    };
    // Chain.
    positive(&sb, "vision_chain_height", "b");
    positive(&sb, "vision_chain_total_work", "b");
    positive(&sb, "vision_blocks_imported_total{source=\"network\",outcome=\"new_tip\"}", "b");
    positive(&sa, "vision_blocks_imported_total{source=\"miner\",outcome=\"new_tip\"}", "a");
    positive(&sb, "vision_block_import_duration_seconds_count", "b");
    positive(&sb, "vision_signature_verification_duration_seconds_count", "b");
    positive(&sb, "vision_db_commit_duration_seconds_count", "b");
    positive(&sb, "vision_state_apply_duration_seconds_count", "b");
    positive(&sb, "vision_block_propagation_delay_seconds_count", "b");
    positive(&sb, "vision_transactions_imported_total", "b");
    positive(&sb, "vision_transactions_submitted_total{source=\"api\",result=\"accepted\"}", "b");
    // Mempool and miner.
    assert!(sb.contains_key("vision_mempool_transactions"));
    positive(&sb, "vision_mempool_max_transactions", "b");
    // Every bounded resource is exported with its cap, and within it.
    let bounds = crate::common::assert_resource_bounds(&b);
    assert!(bounds.iter().any(|(name, _, peak)| *name == "peers" && *peak >= 1), "{bounds:?}");
    assert!(sb.contains_key("vision_mempool_evictions_total"));
    positive(&sa, "vision_miner_template_cache_misses_total", "a");
    assert!(sa.contains_key("vision_miner_template_cache_hits_total"));
    // Network.
    positive(&sb, "vision_p2p_peers", "b");
    positive(&sb, "vision_p2p_peer_scores", "b");
    positive(&sb, "vision_p2p_gossip_messages_total{topic=\"blocks\",result=\"accept\"}", "b");
    positive(&sa, "vision_p2p_gossip_messages_total{topic=\"txs\",result=\"accept\"}", "a");
    positive(&sb, "vision_p2p_gossip_bytes_total", "b");
    positive(&sb, "vision_p2p_sync_requests_total", "b");
    positive(&sb, "vision_p2p_sync_response_bytes_total", "b");
    assert!(sb.contains_key("vision_p2p_banned_peers"));
    assert!(sb.contains_key("vision_p2p_syncing"));
    positive(&sb, "vision_p2p_libp2p_swarm_connections_established_total", "b");

    // promtool accepts both.
    if let Some(promtool) = tool("promtool") {
        for (who, text) in [("a", &text_a), ("b", &text_b)] {
            let mut child = Command::new(&promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics failed for {who}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn prometheus_scrapes_every_node() {
    let Some(prometheus) = tool("prometheus") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = two_nodes(dir.path());
    // The project's scrape settings (deploy/prometheus.yml) with static targets instead of DNS
    // discovery, which only exists inside the compose network.
    let targets: Vec<String> =
        [&a, &b].iter().map(|n| format!("'{}'", n.metrics.trim_start_matches("http://"))).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vision\n    metrics_path: /metrics\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Port 0: Prometheus binds a free port itself and logs it ("Listening on" address=...). A port
    // picked here and released before Prometheus binds it could be taken meanwhile by a node of a
    // test running in parallel.
    let mut server = Kill(
        Command::new(prometheus)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let stderr = server.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut sent = false;
        // Keep reading to the end so Prometheus never blocks on a full pipe.
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent
                && line.contains("msg=\"Listening on\"")
                && let Some(addr) = line.split("address=").nth(1).and_then(|a| a.split_whitespace().next())
            {
                sent = addr_tx.send(addr.trim_matches('"').to_string()).is_ok();
            }
        }
    });
    let listen = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("Prometheus did not log its listen address: {:?}", server.0.try_wait()));
    let _server = server;
    let base = format!("http://{listen}");
    wait_for("every target up", Duration::from_secs(60), || {
        let body = std::panic::catch_unwind(|| http_get(&base, "/api/v1/targets")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let active = v["data"]["activeTargets"].as_array()?;
        (active.len() == 2 && active.iter().all(|t| t["health"] == "up")).then_some(())
    });
    let heights = wait_for("chain-height samples for both nodes", Duration::from_secs(60), || {
        let body = std::panic::catch_unwind(|| http_get(&base, "/api/v1/query?query=vision_chain_height")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = v["data"]["result"].as_array()?.clone();
        (result.len() == 2).then_some(result)
    });
    for r in heights {
        let value: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        assert!(value >= 0.0, "{r}");
    }
}
