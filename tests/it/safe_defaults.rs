//! Safe defaults (issue #15), through the real binary:
//!
//! - a node started on a custom genesis mines only when told to (`--miner ADDRESS` or `--mine true`);
//!   the embedded devnet still mines with no flag (the README's first command), and a node whose
//!   rewards go to a published dev key says so with a WARN line at start;
//! - `wallet send` takes the chain id and genesis hash from its own configuration (`--genesis`, or
//!   the embedded devnet) and refuses a node that reports another network, or an entry fee above
//!   `--max-fee` (default: 10 x the genesis minimum fee), before it signs anything;
//! - a transaction signed for one genesis is refused, as an invalid signature, by a node of another
//!   genesis that shares its chain id (signatures bind the genesis hash).

use std::time::{Duration, Instant};

use crate::common::{NodeProcess, cli, cli_ok, genesis};
use vision_node::chain::genesis::Genesis;
use vision_node::wallet::{ClientError, Keypair};

/// The log lines of `node` at `level` whose message contains `needle`.
fn logged(node: &NodeProcess, level: &str, needle: &str) -> Vec<String> {
    let logs = node.logs.lock().unwrap();
    logs.iter().filter(|v| v["level"] == level).map(|v| v.to_string()).filter(|line| line.contains(needle)).collect()
}

/// Fails if `node` mines a block within `window`.
fn assert_no_block_within(node: &NodeProcess, window: Duration, what: &str) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        let h = node.height().expect("the API answers");
        assert_eq!(h, 0, "{what}: the node mined up to height {h} although it was not asked to mine");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn custom_genesis_mines_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Keypair::from_seed(&[0x51; 32]);
    // Difficulty 1 and 100 ms blocks: a mining node is at height 3 within a second.
    let g = genesis(dir.path(), &[&alice], 100, 1);

    // No --miner, no --mine: not mining, and the log says how to turn it on.
    let idle = NodeProcess::start(&dir.path().join("idle"), &["--genesis", &g, "--network", "false"]);
    assert_no_block_within(&idle, Duration::from_secs(3), "custom genesis without --miner");
    let info = logged(&idle, "INFO", "not mining");
    assert_eq!(info.len(), 1, "one INFO line says the node is not mining: {info:?}");
    assert!(info[0].contains("--miner"), "the line says how to mine: {}", info[0]);
    assert!(logged(&idle, "WARN", "dev key").is_empty(), "no reward address, no dev-key warning");
    assert!(idle.terminate());

    // --miner ADDRESS: mines, rewards to that address, no warning.
    let bob = Keypair::from_seed(&[0x52; 32]).address();
    let mining = NodeProcess::start(
        &dir.path().join("mining"),
        &["--genesis", &g, "--network", "false", "--miner", &bob.to_string()],
    );
    mining.wait_height(2, Duration::from_secs(60));
    let block: vision_node::api::BlockJson = mining.client().get("/v1/blocks/1").unwrap();
    assert_eq!(block.miner, bob);
    assert!(logged(&mining, "WARN", "dev key").is_empty(), "bob is not a dev key");
    assert!(mining.terminate());

    // --mine true without --miner on a custom genesis: mines to dev key 0, and says so loudly, once.
    let dev = NodeProcess::start(&dir.path().join("dev"), &["--genesis", &g, "--network", "false", "--mine", "true"]);
    dev.wait_height(3, Duration::from_secs(60));
    let warn = logged(&dev, "WARN", "dev key");
    assert_eq!(warn.len(), 1, "one WARN line at start, not one per block: {warn:?}");
    let dev0 = vision_node::chain::genesis::dev_keypair(0).address().to_string();
    assert!(warn[0].contains(&dev0) && warn[0].contains("--miner"), "{}", warn[0]);
    assert!(dev.terminate());

    // The embedded devnet with no mining flag still mines (README: `cargo run --release -- run`),
    // to the dev key, with the warning.
    let devnet = NodeProcess::start(&dir.path().join("devnet"), &["--network", "false"]);
    devnet.wait_height(1, Duration::from_secs(120));
    assert_eq!(logged(&devnet, "WARN", "dev key").len(), 1);
    assert!(devnet.terminate());
}

/// Runs `wallet send` with `args`; returns (success, stdout, stderr).
fn send(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["wallet", "send"];
    all.extend_from_slice(args);
    let out = cli(&all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn wallet_refuses_a_node_of_another_network() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let alice = Keypair::from_seed(&[0x61; 32]);
    alice.save(dir.path().join("alice.json").as_path()).unwrap();
    let bob = Keypair::from_seed(&[0x62; 32]).address().to_string();
    // Two networks with the same chain id (42) and the same funded account; only their genesis
    // (block time) differs.
    std::fs::create_dir_all(p("g1")).unwrap();
    std::fs::create_dir_all(p("g2")).unwrap();
    let g1 = genesis(&dir.path().join("g1"), &[&alice], 500, 1);
    let g2 = genesis(&dir.path().join("g2"), &[&alice], 600, 1);
    let (h1, h2) = (Genesis::load(g1.as_ref()).unwrap().hash(), Genesis::load(g2.as_ref()).unwrap().hash());
    assert_ne!(h1, h2);
    let node1 = NodeProcess::start(&dir.path().join("n1"), &["--genesis", &g1, "--network", "false"]);
    let base = ["--key", &p("alice.json"), "--to", &bob, "--amount", "5"];

    // The wallet's default network is the embedded devnet (chain 1337): refused, nothing sent.
    let (ok, _, err) = send(&[&base[..], &["--api", &node1.api]].concat());
    assert!(!ok, "the wallet signed for a node of chain 42 while configured for the devnet");
    assert!(err.contains("chain id 42") && err.contains("1337") && err.contains("--genesis"), "{err}");
    // Same chain id, another genesis: refused, naming both hashes.
    let (ok, _, err) = send(&[&base[..], &["--api", &node1.api, "--genesis", &g2]].concat());
    assert!(!ok, "the wallet signed for a node of another genesis");
    assert!(err.contains(&h1.to_string()) && err.contains(&h2.to_string()), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(node1.status().mempool_size, 0, "nothing was submitted");

    // Configured for the node's own genesis: sent.
    let (ok, out, err) = send(&[&base[..], &["--api", &node1.api, "--genesis", &g1]].concat());
    assert!(ok, "{err}");
    let id: vision_node::chain::types::Hash = out.trim().parse().unwrap();
    assert_eq!(node1.client().tx(&id).unwrap().status, "pending");

    assert!(node1.terminate());
}

#[test]
fn wallet_refuses_an_inflated_fee() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    cli_ok(&["wallet", "dev-key", "--index", "0", "--out", &p("dev0.json")]);
    let to = Keypair::from_seed(&[0x71; 32]).address().to_string();
    // A devnet node whose pool holds one transaction: a full pool asks more than its best fee.
    let node = NodeProcess::start(
        &dir.path().join("data"),
        &["--network", "false", "--mine", "false", "--mempool-max-txs", "1"],
    );
    let devnet = Genesis::devnet();
    let pricey = 1_000_000_000u128;
    let filler = vision_node::testkit::transfer(
        &vision_node::chain::genesis::dev_keypair(2),
        Keypair::from_seed(&[0x72; 32]).address(),
        1,
        pricey,
        0,
        devnet.chain_id,
        &devnet.hash(),
    );
    node.client().submit(&filler).unwrap();
    assert_eq!(node.status().min_fee_to_enter, (pricey + 1).to_string());

    // The default --max-fee is 10 x the devnet's minimum fee (1,000): the node's 1,000,000,001 is refused.
    let base = ["--key", &p("dev0.json"), "--to", &to, "--amount", "1", "--api", &node.api];
    let (ok, _, err) = send(&base);
    assert!(!ok, "the wallet paid the inflated fee the node asked for");
    assert!(err.contains("1000000001") && err.contains("--max-fee") && err.contains("10000"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // An explicit fee above the cap is refused too.
    let (ok, _, err) = send(&[&base[..], &["--fee", "20000"]].concat());
    assert!(!ok && err.contains("--max-fee"), "{err}");
    let stats = node.status();
    assert_eq!((stats.mempool_size, stats.min_fee_to_enter), (1, (pricey + 1).to_string()), "nothing was submitted");

    // The operator may raise the cap on purpose.
    let (ok, out, err) = send(&[&base[..], &["--max-fee", "2000000000"]].concat());
    assert!(ok, "{err}");
    let id: vision_node::chain::types::Hash = out.trim().parse().unwrap();
    assert_eq!(node.client().tx(&id).unwrap().status, "pending");
    assert!(node.terminate());
}

/// Two networks that share a chain id and a funded account: a transfer signed for one is refused
/// by the other as an invalid signature, because the signature covers the genesis hash.
#[test]
fn a_transaction_does_not_replay_across_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Keypair::from_seed(&[0x63; 32]);
    std::fs::create_dir_all(dir.path().join("g1")).unwrap();
    std::fs::create_dir_all(dir.path().join("g2")).unwrap();
    let g1 = genesis(&dir.path().join("g1"), &[&alice], 500, 1);
    let g2 = genesis(&dir.path().join("g2"), &[&alice], 600, 1);
    let node1 = NodeProcess::start(&dir.path().join("n1"), &["--genesis", &g1, "--network", "false"]);
    let node2 = NodeProcess::start(&dir.path().join("n2"), &["--genesis", &g2, "--network", "false"]);
    assert_eq!(node1.status().chain_id, node2.status().chain_id);
    let bob = Keypair::from_seed(&[0x64; 32]).address();
    let h1 = Genesis::load(g1.as_ref()).unwrap().hash();
    let tx = vision_node::testkit::transfer(&alice, bob, 5, 10, 0, 42, &h1);
    let id = node1.client().submit(&tx).unwrap();
    assert_eq!(node1.client().tx(&id).unwrap().status, "pending");
    // The same bytes replayed to network 2 (same chain id, same account, same nonce).
    match node2.client().submit(&tx) {
        Err(ClientError::Api { status: 400, code, .. }) => assert_eq!(code, "invalid_signature"),
        other => panic!("network 2 must refuse a transaction signed for network 1, got {other:?}"),
    }
    assert_eq!(node2.status().mempool_size, 0);
    assert!(node1.terminate() && node2.terminate());
}
