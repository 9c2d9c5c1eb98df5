//! The WebSocket stream and the OpenAPI document, through real node processes: a subscriber sees
//! new heads and a transfer go from pending to included; a subscriber that never reads is dropped
//! while a reading one keeps its stream; bad input gets error messages, then the door; the client
//! cap answers 503; and the served OpenAPI document equals `docs/openapi.json` and documents every
//! route with its errors.
//!
//! Regenerate `docs/openapi.json` after changing the API with
//! `VISION_WRITE_OPENAPI=1 cargo test --release --test it openapi`.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};
use vision_node::api::ws::{MAX_CLIENTS, WsMessage, WsStream};
use vision_node::chain::genesis::{Allocation, Genesis};
use vision_node::wallet::Keypair;

use crate::common::{NodeProcess, rss_kib, wait_for};

/// A genesis funding `keys`, with blocks every `target_ms` at `difficulty`.
fn genesis(dir: &Path, keys: &[Keypair], target_ms: u64, difficulty: u64) -> String {
    let g = Genesis {
        chain_id: 77,
        timestamp_ms: 1_700_000_000_000,
        initial_difficulty: difficulty,
        target_block_time_ms: target_ms,
        block_reward: 1_000,
        min_fee: 10,
        allocations: keys.iter().map(|k| Allocation { address: k.address(), balance: 1_000_000_000_000 }).collect(),
    };
    let path = dir.join("genesis.toml");
    g.save(&path).unwrap();
    path.to_str().unwrap().to_string()
}

fn keys(n: u8) -> Vec<Keypair> {
    (1..=n).map(|i| Keypair::from_seed(&[i; 32])).collect()
}

/// A blocking WebSocket client of a node's `/v1/ws`.
struct Ws {
    ws: WebSocket<TcpStream>,
}

/// How a read ended when it did not yield a message.
#[derive(Debug, PartialEq)]
enum Read {
    Idle,
    Closed,
}

impl Ws {
    /// Connects, or returns the HTTP status and body the server answered instead of 101.
    fn try_connect(api: &str) -> Result<Ws, (u16, String)> {
        let addr = api.trim_start_matches("http://");
        let stream = TcpStream::connect(addr).expect("connect to the API");
        match tungstenite::client(format!("ws://{addr}/v1/ws"), stream) {
            Ok((ws, _)) => {
                ws.get_ref().set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                Ok(Ws { ws })
            }
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(res))) => {
                let body = res.body().as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                Err((res.status().as_u16(), body))
            }
            Err(e) => panic!("WebSocket handshake failed: {e}"),
        }
    }

    fn connect(api: &str) -> Ws {
        Self::try_connect(api).unwrap_or_else(|e| panic!("upgrade refused: {e:?}"))
    }

    fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).unwrap();
    }

    /// The next server message, `Idle` after the socket's read timeout, or `Closed`.
    fn read(&mut self) -> Result<WsMessage, Read> {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return Ok(serde_json::from_str(t.as_str()).unwrap_or_else(|e| panic!("bad message {t}: {e}")));
                }
                Ok(Message::Close(_)) => return Err(Read::Closed),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(Read::Idle);
                }
                Err(_) => return Err(Read::Closed),
            }
        }
    }

    /// Reads until `f` accepts a message; every message read is appended to `seen`.
    fn wait<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        seen: &mut Vec<WsMessage>,
        mut f: impl FnMut(&WsMessage) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.read() {
                Ok(m) => {
                    let hit = f(&m);
                    seen.push(m);
                    if let Some(v) = hit {
                        return v;
                    }
                }
                Err(Read::Idle) => {}
                Err(Read::Closed) => panic!("socket closed while waiting for {what}; got {seen:?}"),
            }
        }
        panic!("timed out after {timeout:?} waiting for {what}");
    }

    /// The next message within `timeout`.
    fn next(&mut self, timeout: Duration) -> WsMessage {
        let mut seen = Vec::new();
        self.wait("a message", timeout, &mut seen, |m| Some(m.clone()))
    }

    /// Reads (and drops) messages until the server closes the socket, within `timeout`; returns the
    /// messages' count and the last error message, if any.
    fn drain_until_closed(&mut self, timeout: Duration) -> (usize, Option<WsMessage>) {
        let deadline = Instant::now() + timeout;
        let (mut n, mut last_error) = (0, None);
        while Instant::now() < deadline {
            match self.read() {
                Ok(m @ WsMessage::Error { .. }) => {
                    n += 1;
                    last_error = Some(m);
                }
                Ok(_) => n += 1,
                Err(Read::Idle) => {}
                Err(Read::Closed) => return (n, last_error),
            }
        }
        panic!("the server did not close the socket within {timeout:?} ({n} messages read)");
    }
}

fn subscribed(ws: &mut Ws) -> Vec<WsStream> {
    match ws.next(Duration::from_secs(10)) {
        WsMessage::Subscribed { streams } => streams,
        other => panic!("expected `subscribed`, got {other:?}"),
    }
}

#[test]
fn ws_streams_heads_and_a_transfer_from_pending_to_included() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Keypair::from_seed(&[1; 32]);
    let g = genesis(dir.path(), std::slice::from_ref(&alice), 200, 2_000);
    let node = NodeProcess::start(&dir.path().join("data"), &["--network", "false", "--genesis", &g, "--mine", "true"]);
    let client = node.client();

    let mut ws = Ws::connect(&node.api);
    ws.send(json!({"subscribe": ["new_heads", "pending_txs", "included_txs"]}));
    assert_eq!(subscribed(&mut ws), WsStream::ALL.to_vec());

    // A new head matches the block the HTTP API serves at that height.
    let mut seen = Vec::new();
    let (hash, height, parent, timestamp_ms, tx_count) =
        ws.wait("a new head", Duration::from_secs(60), &mut seen, |m| match m {
            WsMessage::NewHead { hash, height, parent, timestamp_ms, tx_count, reverted } => {
                assert_eq!(*reverted, 0, "one node never reorganises");
                Some((*hash, *height, *parent, *timestamp_ms, *tx_count))
            }
            _ => None,
        });
    let block: vision_node::api::BlockJson = client.get(&format!("/v1/blocks/{hash}")).unwrap();
    assert_eq!((block.height, block.parent, block.timestamp_ms), (height, parent, timestamp_ms));
    assert_eq!(block.transactions.len(), tx_count);

    // A transfer: first pending, then included, with the location the HTTP API reports.
    let bob = Keypair::from_seed(&[2; 32]).address();
    let tx = client.send(&alice, bob, 1_234, None, &crate::common::expected(&g)).unwrap();
    let id = tx.id();
    let mut seen = Vec::new();
    let pending = ws.wait("the transfer pending", Duration::from_secs(30), &mut seen, |m| match m {
        WsMessage::PendingTx { tx } if tx.hash == id => Some(tx.clone()),
        WsMessage::IncludedTx { hash, .. } if *hash == id => panic!("included before pending"),
        _ => None,
    });
    assert_eq!((pending.from, pending.to, pending.amount.as_str()), (alice.address(), bob, "1234"));
    let (block_hash, at, index) = ws.wait("the transfer included", Duration::from_secs(60), &mut seen, |m| match m {
        WsMessage::IncludedTx { hash, block_hash, height, index } if *hash == id => {
            Some((*block_hash, *height, *index))
        }
        _ => None,
    });
    let st = client.tx(&id).unwrap();
    assert_eq!(st.status, "included");
    assert_eq!((st.block_hash, st.height, st.index), (Some(block_hash), Some(at), Some(index)));
    // Its block's new head came before it.
    assert!(
        seen.iter().any(|m| matches!(m, WsMessage::NewHead { hash, .. } if *hash == block_hash)),
        "no new_head for block {block_hash} before its included_tx: {seen:?}"
    );

    // Unsubscribing from everything is acknowledged.
    ws.send(json!({"unsubscribe": ["new_heads", "pending_txs", "included_txs"]}));
    let mut seen = Vec::new();
    let now = ws.wait("the unsubscribe answer", Duration::from_secs(10), &mut seen, |m| match m {
        WsMessage::Subscribed { streams } => Some(streams.clone()),
        _ => None,
    });
    assert!(now.is_empty(), "{now:?}");
    assert!(node.terminate());
}

#[test]
fn ws_client_that_never_reads_is_dropped_and_a_reading_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let senders = keys(8);
    // Blocks every ~5 ms, so events pile up fast.
    let g = genesis(dir.path(), &senders, 5, 200);
    let node = NodeProcess::start(&dir.path().join("data"), &["--network", "false", "--genesis", &g, "--mine", "true"]);
    let client = node.client();
    let status = client.status().unwrap();
    let (chain_id, genesis_hash) = (status.chain_id, status.genesis_hash);

    // The slow client subscribes to everything, then never reads again.
    let mut slow = Ws::connect(&node.api);
    slow.send(json!({"subscribe": ["new_heads", "pending_txs", "included_txs"]}));
    assert_eq!(subscribed(&mut slow), WsStream::ALL.to_vec());

    // A reading client on a thread, counting what it gets.
    let mut fast = Ws::connect(&node.api);
    fast.send(json!({"subscribe": ["new_heads", "pending_txs", "included_txs"]}));
    assert_eq!(subscribed(&mut fast), WsStream::ALL.to_vec());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match fast.read() {
                    Ok(WsMessage::Error { code, message }) => panic!("the reading client got {code}: {message}"),
                    Ok(_) => n += 1,
                    Err(Read::Idle) => {}
                    Err(Read::Closed) => panic!("the reading client was disconnected after {n} messages"),
                }
            }
            n
        })
    };

    // Transfers (each a pending_tx and an included_tx) until the node drops the slow client.
    let rss_before = rss_kib(node.child.id());
    let dropped =
        |node: &NodeProcess| {
            node.logs.lock().unwrap().iter().any(|v| {
                v["fields"]["message"] == "WebSocket client dropped" && v["fields"]["reason"] == "slow_consumer"
            })
        };
    let bob = Keypair::from_seed(&[100; 32]).address();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut sent = 0u64;
    'flood: for nonce in 0u64.. {
        for k in &senders {
            if dropped(&node) {
                break 'flood;
            }
            assert!(Instant::now() < deadline, "slow client not dropped after {sent} transfers");
            let tx = vision_node::testkit::transfer(k, bob, 1, 10, nonce, chain_id, &genesis_hash);
            // A submission that races a block import can see a spurious `nonce_gap` (the state it
            // reads predates the block the pool already dropped the previous nonce for); resend.
            wait_for("the transfer accepted", Duration::from_secs(10), || match client.submit(&tx) {
                Ok(_) => Some(()),
                Err(vision_node::wallet::ClientError::Api { code, .. }) if code == "nonce_gap" => None,
                Err(e) => panic!("submit: {e:?}"),
            });
            sent += 1;
        }
    }
    let rss_after = rss_kib(node.child.id());
    eprintln!("slow client dropped after {sent} transfers; node RSS {rss_before:?} -> {rss_after:?} KiB");

    // The slow client reads what the kernel buffered, then finds the socket closed.
    let (n, last_error) = slow.drain_until_closed(Duration::from_secs(60));
    eprintln!("slow client read {n} buffered messages, last error {last_error:?}");
    if let Some(WsMessage::Error { code, .. }) = &last_error {
        assert_eq!(code, "slow_consumer");
    }

    // The reading client keeps its stream: it still gets new heads after the drop.
    let height = node.height().unwrap();
    node.wait_height(height + 20, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let got = reader.join().expect("the reading client failed");
    assert!(got as f64 >= sent as f64, "the reading client got {got} messages for {sent} transfers");
    assert!(node.terminate());
}

#[test]
fn ws_refuses_bad_input_and_caps_clients() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"), &["--network", "false", "--mine", "false"]);
    let client = node.client();
    let api_err = |r: Result<Value, vision_node::wallet::ClientError>| match r {
        Err(vision_node::wallet::ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    };
    // Not an upgrade, or not GET: the usual error JSON.
    assert_eq!(api_err(client.get("/v1/ws")), (400, "websocket_required".into()));
    assert_eq!(api_err(client.post("/v1/ws", &json!({}))), (405, "method_not_allowed".into()));

    // An unknown stream is reported and ignored.
    let mut ws = Ws::connect(&node.api);
    ws.send(json!({"subscribe": ["new_heads", "bogus"]}));
    match ws.next(Duration::from_secs(10)) {
        WsMessage::Error { code, message } => {
            assert!(code == "unknown_stream" && message.contains("bogus"), "{message}")
        }
        other => panic!("expected unknown_stream, got {other:?}"),
    }
    assert_eq!(subscribed(&mut ws), vec![WsStream::NewHeads]);
    // Malformed messages get errors; the fifth closes the socket.
    for (i, bad) in ["nope", "{}", r#"{"subscribe": "new_heads"}"#, r#"{"subscribe": [], "x": 1}"#].iter().enumerate() {
        ws.ws.send(Message::text(*bad)).unwrap();
        match ws.next(Duration::from_secs(10)) {
            WsMessage::Error { code, .. } => assert_eq!(code, "invalid_json", "bad message {i}"),
            other => panic!("expected invalid_json for {bad:?}, got {other:?}"),
        }
    }
    ws.ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    let (_, last) = ws.drain_until_closed(Duration::from_secs(10));
    assert!(matches!(&last, Some(WsMessage::Error { code, .. }) if code == "too_many_bad_messages"), "{last:?}");

    // MAX_CLIENTS clients fit (a dropped client's slot frees shortly after it goes); one more is refused.
    let mut clients: Vec<Ws> = (0..MAX_CLIENTS)
        .map(|_| wait_for("a free client slot", Duration::from_secs(10), || Ws::try_connect(&node.api).ok()))
        .collect();
    match Ws::try_connect(&node.api) {
        Err((503, body)) => {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["code"], "too_many_websockets", "{body}");
        }
        Err(other) => panic!("expected 503, got {other:?}"),
        Ok(_) => panic!("client {} admitted beyond the cap", MAX_CLIENTS + 1),
    }
    // Closing one frees its slot.
    let mut one = clients.pop().unwrap();
    one.ws.close(None).unwrap();
    let _ = one.drain_until_closed(Duration::from_secs(10));
    let mut again = wait_for("the freed slot", Duration::from_secs(10), || Ws::try_connect(&node.api).ok());
    again.send(json!({"subscribe": ["pending_txs"]}));
    assert_eq!(subscribed(&mut again), vec![WsStream::PendingTxs]);
    drop(clients);
    assert!(node.terminate());
}

/// `docs/openapi.json` as checked in.
fn checked_in_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(vision_node::api::openapi::CHECKED_IN_PATH)
}

fn writing() -> bool {
    std::env::var("VISION_WRITE_OPENAPI").is_ok_and(|v| v == "1")
}

#[test]
fn openapi_document_is_checked_in() {
    let generated = vision_node::api::openapi::pretty_json().unwrap();
    let path = checked_in_path();
    if writing() {
        std::fs::write(&path, &generated).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let regen = "regenerate it with `VISION_WRITE_OPENAPI=1 cargo test --release --test it openapi` and commit it";
    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; {regen}", path.display()));
    let a: Value = serde_json::from_str(&checked_in).unwrap_or_else(|e| panic!("{}: {e}; {regen}", path.display()));
    let b: Value = serde_json::from_str(&generated).unwrap();
    assert!(a == b, "{} differs from the API the code describes; {regen}", path.display());
    assert!(checked_in == generated, "{} is not in the generated formatting; {regen}", path.display());
}

/// Every route of `router()` and `admin_router()`, with its methods.
const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/status", &["get"]),
    ("/v1/blocks/{id}", &["get"]),
    ("/v1/accounts/{address}", &["get"]),
    ("/v1/accounts/{address}/txs", &["get"]),
    ("/v1/txs", &["post"]),
    ("/v1/txs/batch", &["post"]),
    ("/v1/txs/{id}", &["get"]),
    ("/v1/peers", &["get"]),
    ("/v1/ws", &["get"]),
    ("/v1/openapi.json", &["get"]),
    ("/admin/bans", &["get"]),
    ("/admin/peers/{peer}/ban", &["post", "delete"]),
    ("/admin/peers", &["post"]),
    ("/admin/chain/deep-forks/keep", &["post"]),
    ("/admin/blocks/{hash}/reconsider", &["post"]),
];

#[test]
fn openapi_served_lists_every_route_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&dir.path().join("data"), &["--network", "false", "--mine", "false"]);
    let served: Value = node.client().get("/v1/openapi.json").unwrap();
    let generated: Value = serde_json::from_str(&vision_node::api::openapi::pretty_json().unwrap()).unwrap();
    assert!(served == generated, "the node serves another document than the library generates");
    if !writing() {
        let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(checked_in_path()).unwrap()).unwrap();
        assert!(
            served == checked_in,
            "docs/openapi.json is stale; run VISION_WRITE_OPENAPI=1 cargo test --release --test it openapi"
        );
    }
    assert_eq!(served["openapi"], "3.1.0");

    // Each route is documented, with its error responses as ErrorBody, and nothing else is.
    let paths = served["paths"].as_object().unwrap();
    let error_ref = "#/components/schemas/ErrorBody";
    for (path, methods) in ROUTES {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} is not documented"));
        for m in *methods {
            let op = &item[*m];
            assert!(op.is_object(), "{m} {path} is not documented");
            let responses = op["responses"].as_object().unwrap();
            let client_errors: Vec<&String> = responses
                .iter()
                .filter(|(status, r)| {
                    status.starts_with('4') && r["content"]["application/json"]["schema"]["$ref"] == error_ref
                })
                .map(|(status, _)| status)
                .collect();
            assert!(!client_errors.is_empty(), "{m} {path} documents no 4xx ErrorBody response");
        }
    }
    assert_eq!(paths.len(), ROUTES.len(), "documented paths: {:?}", paths.keys().collect::<Vec<_>>());
    assert!(
        served["components"]["schemas"]["WsMessage"].is_object()
            && served["components"]["schemas"]["WsRequest"].is_object()
    );

    // Every documented operation is served where the document says (never the not-found fallback).
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let dev = vision_node::chain::genesis::dev_keypair(0).address().to_string();
    for (path, item) in paths {
        let base = if path.starts_with("/admin/") { &node.admin } else { &node.api };
        assert_eq!(item["servers"].is_array(), path.starts_with("/admin/"), "{path}: servers");
        let url = format!(
            "{base}{}",
            path.replace("{id}", "0").replace("{address}", &dev).replace("{peer}", "12D3KooWnotapeer")
        );
        // The admin operations with the token of the node's cookie (they declare the bearer scheme).
        let bearer = format!("Bearer {}", node.admin_token());
        let admin = path.starts_with("/admin/");
        assert_eq!(
            item.as_object().unwrap().iter().all(|(k, op)| k == "servers" || op["security"].is_array()),
            admin,
            "{path}: security"
        );
        for (method, _) in item.as_object().unwrap().iter().filter(|(k, _)| *k != "servers") {
            fn auth<B>(r: ureq::RequestBuilder<B>, bearer: Option<&str>) -> ureq::RequestBuilder<B> {
                match bearer {
                    Some(b) => r.header("Authorization", b),
                    None => r,
                }
            }
            let bearer = admin.then_some(bearer.as_str());
            let res = match method.as_str() {
                "get" => auth(agent.get(&url), bearer).call(),
                "post" => auth(agent.post(&url), bearer).send_json(json!({})),
                "delete" => auth(agent.delete(&url), bearer).call(),
                other => panic!("unexpected method {other} on {path}"),
            }
            .unwrap();
            let status = res.status().as_u16();
            let body = res.into_body().read_to_string().unwrap();
            assert!(status != 404 || !body.contains("no such"), "{method} {url} hits the fallback: {body}");
            assert_ne!(status, 405, "{method} {url}: {body}");
            assert_ne!(status, 401, "{method} {url}: {body}");
            if status >= 400 {
                let v: Value =
                    serde_json::from_str(&body).unwrap_or_else(|_| panic!("{method} {url}: not JSON: {body}"));
                assert!(v["error"]["code"].is_string(), "{method} {url}: {body}");
            }
        }
    }

    // Errors axum raises itself use the same JSON; a method a path does not serve is 405 with
    // `Allow`, on both listeners (schemathesis' unsupported_method check).
    let bearer = format!("Bearer {}", node.admin_token());
    for (url, allow) in [
        (format!("{}/v1/ws", node.api), "GET,HEAD"),
        (format!("{}/admin/peers", node.admin), "POST"),
        (format!("{}/admin/peers/12D3KooWnotapeer/ban", node.admin), "POST,DELETE"),
    ] {
        let res = agent.put(&url).header("Authorization", &bearer).send_json(json!({})).unwrap();
        assert_eq!(res.status().as_u16(), 405, "PUT {url}");
        let got = res.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert_eq!(got.replace(' ', ""), allow, "PUT {url}: Allow");
    }
    let res = agent.post(&format!("{}/v1/status", node.api)).send_json(json!({})).unwrap();
    assert_eq!(res.status().as_u16(), 405);
    let v: Value = serde_json::from_str(&res.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
    // A body over the limit gets 413 with the error JSON.
    let (status, body) = post_over_limit(&node.api, "/v1/txs", vision_node::api::MAX_BODY_BYTES);
    assert_eq!(status, 413, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("413 body is not JSON: {body}"));
    assert_eq!(v["error"]["code"], "body_too_large");
    let res = agent.get(&format!("{}/v1/accounts/{dev}/txs?limit=many", node.api)).call().unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let v: Value = serde_json::from_str(&res.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "invalid_query");
    assert!(node.terminate());
}

/// POSTs a JSON body of exactly `limit + 1` bytes to `path` over a raw socket and returns the
/// status and body of the answer.
///
/// The node answers 413 as soon as the body it has read passes `limit` and then closes the
/// connection. An HTTP client that is still writing the body at that moment gets a reset instead
/// of the answer (seen once on a loaded machine: "Peer disconnected"), and whether it is still
/// writing depends on socket buffers and scheduling. With exactly one byte over the limit, the
/// byte that makes the node answer is the last one sent: every byte of the request has been read
/// before the answer is written, nothing unread is left to turn the close into a reset, and the
/// client only reads from then on.
fn post_over_limit(api: &str, path: &str, limit: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let host = api.trim_start_matches("http://");
    let prefix = r#"{"tx":""#;
    let suffix = r#""}"#;
    let body = format!("{prefix}{}{suffix}", "0".repeat(limit + 1 - prefix.len() - suffix.len()));
    assert_eq!(body.len(), limit + 1);
    let mut s = TcpStream::connect(host).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer until the node closes");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    (status, if chunked { crate::common::dechunk(rest) } else { rest.to_string() })
}
