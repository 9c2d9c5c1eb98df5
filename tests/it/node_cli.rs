//! The single-node story, through the real binary: a custom genesis from `genesis new`, a mining
//! node from `run`, a transfer with `wallet send --wait`, balances through `wallet balance` and the
//! API, a SIGKILL while mining, `db check` on the killed database, a restart that keeps its height,
//! a graceful SIGTERM, and `db check` again.

use std::time::Duration;

use crate::common::{NodeProcess, cli, cli_ok};

#[test]
fn mine_send_kill_restart_check() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let alice = cli_ok(&["wallet", "new", "--out", &p("alice.json")]);
    let bob = cli_ok(&["wallet", "new", "--out", &p("bob.json")]);
    assert_eq!(cli_ok(&["wallet", "address", "--key", &p("alice.json")]), alice);
    assert!(alice.starts_with("vis1") && bob.starts_with("vis1") && alice != bob);
    // Never overwrite a key.
    assert!(!cli(&["wallet", "new", "--out", &p("alice.json")]).status.success());

    let alloc = format!("{alice}=1000000000");
    let genesis_hash = cli_ok(&[
        "genesis",
        "new",
        "--out",
        &p("genesis.toml"),
        "--chain-id",
        "99",
        "--alloc",
        &alloc,
        "--target-block-time-ms",
        "300",
        "--initial-difficulty",
        "2000",
        "--min-fee",
        "500",
    ]);
    assert_eq!(genesis_hash.len(), 64);
    let data = dir.path().join("data");
    let node = NodeProcess::start(&data, &["--genesis", &p("genesis.toml"), "--mine", "true", "--mine-threads", "1"]);
    let status = node.client().status().unwrap();
    assert_eq!(status.chain_id, 99);
    assert_eq!(status.genesis_hash.to_string(), genesis_hash);
    node.wait_height(3, Duration::from_secs(60));

    let txid = cli_ok(&[
        "wallet",
        "send",
        "--key",
        &p("alice.json"),
        "--to",
        &bob,
        "--amount",
        "12345",
        "--api",
        &node.api,
        "--genesis",
        &p("genesis.toml"),
        "--wait",
        "--wait-timeout",
        "60",
    ]);
    let bal = cli_ok(&["wallet", "balance", &bob, "--api", &node.api]);
    assert!(bal.contains("balance: 12345"), "{bal}");
    let bal = cli_ok(&["wallet", "balance", &alice, "--api", &node.api]);
    assert!(bal.contains(&format!("balance: {}", 1_000_000_000u64 - 12_345 - 500)), "{bal}");
    assert!(bal.contains("nonce: 1"), "{bal}");
    let client = node.client();
    let st = client.tx(&txid.parse().unwrap()).unwrap();
    assert_eq!(st.status, "included");
    let included_at = st.height.unwrap();
    let txs: Vec<vision_node::api::AccountTxJson> = client.get(&format!("/v1/accounts/{bob}/txs")).unwrap();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].tx.hash.to_string(), txid);
    assert_eq!(txs[0].height, included_at);

    // SIGKILL while mining.
    let before = node.wait_height(included_at + 3, Duration::from_secs(60));
    node.kill9();
    let check = cli_ok(&["db", "check", "--data-dir", data.to_str().unwrap(), "--genesis", &p("genesis.toml")]);
    let checked: u64 = check.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(checked >= before, "db check height {checked} < {before} seen before the kill: {check}");

    let node = NodeProcess::start(&data, &["--genesis", &p("genesis.toml"), "--mine", "true"]);
    let after = node.height().unwrap();
    assert!(after >= before, "restarted at {after}, below {before}");
    let bal = node.client().account(&bob.parse().unwrap()).unwrap();
    assert_eq!(bal.balance, "12345");
    node.wait_height(after + 2, Duration::from_secs(60));
    let last = node.height().unwrap();
    assert!(node.terminate(), "node did not exit cleanly on SIGTERM");
    let check = cli_ok(&["db", "check", "--data-dir", data.to_str().unwrap(), "--genesis", &p("genesis.toml")]);
    let checked: u64 = check.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(checked >= last, "{check}");
    // The database of another network is refused with a clear error.
    let out = cli(&["db", "check", "--data-dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--genesis"));
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"), &["--mine", "false"]);
    let client = node.client();
    let err = |path: &str| match client.get::<serde_json::Value>(path) {
        Err(vision_node::wallet::ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("{path}: expected an API error, got {other:?}"),
    };
    assert_eq!(err("/v1/accounts/vis1qqqq"), (400, "invalid_address".into()));
    assert_eq!(err("/v1/txs/zz"), (400, "invalid_hash".into()));
    assert_eq!(err("/v1/blocks/abc"), (400, "invalid_block_id".into()));
    assert_eq!(err("/v1/blocks/999999"), (404, "not_found".into()));
    assert_eq!(err("/v1/nothing"), (404, "not_found".into()));
    let post = |body: serde_json::Value| match client.post::<_, serde_json::Value>("/v1/txs", &body) {
        Err(vision_node::wallet::ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    };
    assert_eq!(post(serde_json::json!({"tx": "xyz"})), (400, "invalid_hex".into()));
    assert_eq!(post(serde_json::json!({"tx": "00"})), (400, "invalid_transaction".into()));
    assert_eq!(post(serde_json::json!({"nope": 1})), (400, "invalid_json".into()));

    let dev = vision_node::chain::genesis::dev_keypair(1);
    let to = vision_node::chain::genesis::dev_keypair(2).address();
    let status = client.status().unwrap();
    let (chain_id, gh) = (status.chain_id, status.genesis_hash);
    let mk = |nonce, amount, fee| vision_node::testkit::transfer(&dev, to, amount, fee, nonce, chain_id, &gh);
    let submit = |tx: &vision_node::chain::types::Transaction| match client.submit(tx) {
        Err(vision_node::wallet::ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    };
    let mut bad_sig = mk(0, 1, 1_000);
    bad_sig.signature[10] ^= 1;
    assert_eq!(submit(&bad_sig), (400, "invalid_signature".into()));
    assert_eq!(submit(&mk(5, 1, 1_000)), (409, "nonce_gap".into()));
    assert_eq!(submit(&mk(0, u128::MAX / 2, 1_000)), (422, "insufficient_balance".into()));
    assert_eq!(submit(&mk(0, 1, 1)), (422, "fee_too_low".into()));
    let ok = mk(0, 1, 1_000);
    client.submit(&ok).unwrap();
    assert_eq!(submit(&ok), (409, "already_known".into()));
    assert_eq!(client.tx(&ok.id()).unwrap().status, "pending");
    let wrong_chain = vision_node::testkit::transfer(&dev, to, 1, 1_000, 1, chain_id + 1, &gh);
    assert_eq!(submit(&wrong_chain), (400, "wrong_chain_id".into()));
    assert!(node.terminate());
}

/// `POST /v1/txs/batch`: one result per transaction, in order, with the codes `POST /v1/txs` uses;
/// a sender's consecutive nonces in one batch; the batch's own size limits.
#[test]
fn batch_submission_answers_each_transaction() {
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"), &["--mine", "false"]);
    let client = node.client();
    let dev = vision_node::chain::genesis::dev_keypair(1);
    let to = vision_node::chain::genesis::dev_keypair(2).address();
    let status = client.status().unwrap();
    let (chain_id, gh) = (status.chain_id, status.genesis_hash);
    let mk = |nonce, fee| vision_node::testkit::transfer(&dev, to, 1, fee, nonce, chain_id, &gh);
    let hex_of = |tx: &vision_node::chain::types::Transaction| hex::encode(tx.encode());
    // From another funded sender: a nonce gap would be refused before its signature is checked.
    let other = vision_node::chain::genesis::dev_keypair(2);
    let mut bad_sig = vision_node::testkit::transfer(&other, to, 1, 1_000, 0, chain_id, &gh);
    bad_sig.signature[10] ^= 1;
    let txs = [
        hex_of(&mk(0, 1_000)),
        hex_of(&mk(1, 1_000)),
        "xyz".to_string(),
        hex_of(&bad_sig),
        hex_of(&mk(2, 1_000)),
        "00".to_string(),
        hex_of(&mk(9, 1_000)),
        hex_of(&mk(0, 1_000)),
    ];
    let answer: Value = client.post("/v1/txs/batch", &json!({ "txs": txs })).unwrap();
    let codes: Vec<&str> =
        answer["results"].as_array().unwrap().iter().map(|r| r["error"]["code"].as_str().unwrap_or("ok")).collect();
    assert_eq!(
        codes,
        ["ok", "ok", "invalid_hex", "invalid_signature", "ok", "invalid_transaction", "nonce_gap", "already_known"]
    );
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64()), (Some(3), Some(5)));
    for nonce in 0..3 {
        let id = mk(nonce, 1_000).id();
        assert_eq!(answer["results"][[0, 1, 4][nonce as usize]]["hash"], json!(id.to_string()));
        assert_eq!(client.tx(&id).unwrap().status, "pending");
    }
    assert_eq!(client.status().unwrap().mempool_size, 3);

    let err = |body: Value| match client.post::<_, Value>("/v1/txs/batch", &body) {
        Err(vision_node::wallet::ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    };
    let max = vision_node::api::MAX_BATCH_TXS;
    assert_eq!(err(json!({"txs": []})), (400, "too_many_transactions".into()));
    assert_eq!(err(json!({"txs": vec!["00"; max + 1]})), (400, "too_many_transactions".into()));
    assert_eq!(err(json!({"tx": "00"})), (400, "invalid_json".into()));
    // Over the 64 KiB of other bodies but within the batch route's own limit: answered per entry.
    let undecodable = "00".repeat(182);
    let answer: Value = client.post("/v1/txs/batch", &json!({ "txs": vec![undecodable; 400] })).unwrap();
    assert_eq!(answer["rejected"].as_u64(), Some(400));
    assert_eq!(
        err(json!({"txs": ["0".repeat(vision_node::api::MAX_BATCH_BODY_BYTES)]})),
        (413, "body_too_large".into())
    );
    assert!(node.terminate());
}

/// `vision-node run`'s settings through the real binary: a setting comes from the flag, else the
/// environment, else the config file, else its default (read back from the range error, which
/// stops the node before it starts); an unknown file key is refused naming it and its line; and
/// `--help` shows the settings grouped by subsystem.
#[test]
fn run_settings_layers_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vision.toml");
    let data = dir.path().join("data");
    let run = |file: &str, env: &[(&str, &str)], flags: &[&str]| -> String {
        std::fs::write(&config, file).unwrap();
        let mut cmd = std::process::Command::new(crate::common::bin());
        cmd.arg("run").arg("--config").arg(&config).arg("--data-dir").arg(&data).args(flags);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("VISION_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd.envs(env.iter().copied()).output().unwrap();
        assert!(!out.status.success(), "the node should refuse these settings");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let peers = |max: usize, target: usize| {
        format!("max_peers ({max}) must be at least 1 and at least target_peers ({target})")
    };
    // max_peers from each layer, target_peers from its default (50) or the file.
    let file = "max_peers = 5\n";
    assert!(run(file, &[], &[]).contains(&peers(5, 50)), "{}", run(file, &[], &[]));
    assert!(run("max_peers = 5\ntarget_peers = 60\n", &[], &[]).contains(&peers(5, 60)));
    let env = [("VISION_MAX_PEERS", "6")];
    assert!(run(file, &env, &[]).contains(&peers(6, 50)), "{}", run(file, &env, &[]));
    let flags = ["--max-peers", "7"];
    assert!(run(file, &env, &flags).contains(&peers(7, 50)), "{}", run(file, &env, &flags));
    assert!(run("", &[("VISION_MAX_PEERS", "0")], &[]).contains(&peers(0, 50)));

    let err = run("mine = false\nmax_peer = 3\n", &[], &[]);
    assert!(err.contains("unknown key `max_peer` at line 2"), "{err}");
    let err = run("mine_threads = -1\n", &[], &[]);
    assert!(err.contains("mine_threads") && err.contains("line 1"), "{err}");
    let err = run("", &[("VISION_LISTEN", "tcp/1")], &[]);
    assert!(err.contains("--listen"), "{err}");

    let help = crate::common::cli_ok(&["run", "--help"]);
    for heading in ["Chain:", "Mining:", "API:", "Mempool:", "Network:", "Logging:"] {
        assert!(help.contains(heading), "{heading} missing from run --help:\n{help}");
    }
    for env in ["VISION_CONFIG", "VISION_DATA_DIR", "VISION_MINE_THREADS", "VISION_METRICS_ADDR", "VISION_BOOTSTRAP"] {
        assert!(help.contains(env), "{env} missing from run --help:\n{help}");
    }
}
