//! `GET /v1/ws`: a WebSocket stream of new heads and of pending and included transactions.
//!
//! The protocol is JSON text messages (full reference with examples in `docs/api.md`):
//! - The client sends [`WsRequest`]s: `{"subscribe": ["new_heads", "pending_txs", "included_txs"]}`
//!   (any subset) or `{"unsubscribe": [...]}`. Each gets `{"type": "subscribed", "streams": [...]}`
//!   listing the streams now active. Unknown stream names get an `unknown_stream` error and are
//!   ignored; anything else that is not a request gets an `invalid_json` error, and after
//!   [`MAX_BAD_MESSAGES`] of those the socket is closed.
//! - The server sends [`WsMessage`]s: `new_head` for every change of the canonical tip,
//!   `pending_tx` for every transaction that enters the pool, and `included_tx` for every
//!   transaction of every block a tip change applied (after that change's `new_head`, oldest
//!   block first, so a reorganisation announces the new branch's transactions again).
//!
//! One task per connection reads the client and the node's event broadcast and fills the
//! connection's queue; a second task drains the queue into the socket.
//!
//! Invariants (memory stays bounded whatever a client does):
//! - At most [`MAX_CLIENTS`] connections; the next upgrade gets `503 too_many_websockets`.
//! - A connection buffers at most [`QUEUE_CAP`] messages plus tungstenite's fixed-size buffers;
//!   client messages are capped at [`MAX_CLIENT_MESSAGE_BYTES`].
//! - A client that does not keep up is dropped with a final `slow_consumer` error (sent if the
//!   socket still takes it): its queue stayed full for [`QUEUE_FULL_GRACE`], it fell more than
//!   [`crate::node::EVENT_CHANNEL_CAP`] events behind the node's broadcast, or one write blocked for
//!   [`WRITE_TIMEOUT`].
//! - A client that answers no ping (any frame counts) within [`PING_INTERVAL`] is dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot};
use utoipa::ToSchema;

use super::NodeAccess;
use super::error::{ApiError, ErrorBody};
use super::txs::TxJson;
use crate::chain::types::Hash;
use crate::mempool::events::Event;

/// Most concurrent WebSocket clients: each costs two tasks, a queue and socket buffers (about
/// 200 KiB at worst), so 256 of them stay under about 50 MiB.
pub const MAX_CLIENTS: usize = 256;
/// WebSocket clients, in the resource registry.
pub const WS_CLIENTS: crate::bounds::Resource =
    crate::bounds::Resource::new("ws_clients", "api::ws::MAX_CLIENTS", MAX_CLIENTS);
/// Messages queued for one client (about 128 KiB of JSON at most): enough to ride out a burst
/// between two reads of a client that keeps up.
pub const QUEUE_CAP: usize = 256;
/// How long a client's queue may stay full (a big block's `included_tx` burst) before the client
/// counts as too slow and is dropped.
pub const QUEUE_FULL_GRACE: Duration = Duration::from_secs(2);
/// Longest one batch of writes may block on the socket before the client is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time given to deliver the final error and close frame to a client being dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Interval between pings; a client that sent nothing (no pong, no message) since the previous
/// ping is dropped, so a dead peer costs at most two intervals.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Malformed client messages tolerated before the socket is closed.
pub const MAX_BAD_MESSAGES: u32 = 5;
/// Largest client message (and frame): requests are a few dozen bytes.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024;
/// Read buffer of a connection (tungstenite allocates it up front): client messages are tiny.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes buffered before tungstenite writes to the socket (a batch is flushed anyway).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// Hard cap on tungstenite's write buffer: the batch buffer plus room for the largest message.
const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Most queued messages written before one flush.
const WRITE_BATCH: usize = 64;

/// A stream a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WsStream {
    /// `new_head` messages: every change of the canonical tip.
    NewHeads,
    /// `pending_tx` messages: every transaction that enters the pool.
    PendingTxs,
    /// `included_tx` messages: every transaction of every block a tip change applied.
    IncludedTxs,
}

impl WsStream {
    /// Every stream, in the order `subscribed` lists them.
    pub const ALL: [WsStream; 3] = [WsStream::NewHeads, WsStream::PendingTxs, WsStream::IncludedTxs];

    /// The name clients use.
    pub fn name(self) -> &'static str {
        match self {
            WsStream::NewHeads => "new_heads",
            WsStream::PendingTxs => "pending_txs",
            WsStream::IncludedTxs => "included_txs",
        }
    }

    fn parse(s: &str) -> Option<WsStream> {
        WsStream::ALL.into_iter().find(|w| w.name() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A client's request on `/v1/ws`: `{"subscribe": [...]}`, `{"unsubscribe": [...]}`, or both
/// (subscriptions are applied first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subscribe": ["new_heads", "pending_txs", "included_txs"]}))]
pub struct WsRequest {
    /// Streams to start receiving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<WsStream>>)]
    pub subscribe: Option<Vec<String>>,
    /// Streams to stop receiving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<WsStream>>)]
    pub unsubscribe: Option<Vec<String>>,
}

/// A server message on `/v1/ws`, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsMessage {
    /// The answer to every request: the streams now active.
    Subscribed {
        /// Active streams.
        streams: Vec<WsStream>,
    },
    /// The canonical tip changed.
    NewHead {
        /// New tip hash.
        hash: Hash,
        /// New tip height.
        height: u64,
        /// The tip's parent.
        parent: Hash,
        /// The tip's timestamp (ms since the epoch).
        timestamp_ms: u64,
        /// Transactions in the tip block.
        tx_count: usize,
        /// Blocks reverted to get there (0 for a plain extension).
        reverted: usize,
    },
    /// A transaction entered the pool.
    PendingTx {
        /// The transaction.
        tx: TxJson,
    },
    /// A transaction is in a block that just became canonical.
    IncludedTx {
        /// Transaction id.
        hash: Hash,
        /// The block.
        block_hash: Hash,
        /// The block's height.
        height: u64,
        /// Index in the block.
        index: u32,
    },
    /// A request was refused, or (`slow_consumer`, `too_many_bad_messages`) the server is about to
    /// close the socket.
    Error {
        /// Stable code: `invalid_json`, `unknown_stream`, `too_many_bad_messages`, `slow_consumer`.
        code: String,
        /// Human-readable explanation.
        message: String,
    },
}

impl WsMessage {
    fn error(code: &str, message: impl Into<String>) -> Self {
        WsMessage::Error { code: code.to_string(), message: message.into() }
    }
}

/// What the WebSocket route shares: the core (for subscriptions) and the client permits.
#[derive(Clone)]
struct WsState {
    core: Arc<dyn NodeAccess>,
    clients: Arc<Semaphore>,
}

/// The `/v1/ws` route, with its own client cap.
pub(super) fn router(core: Arc<dyn NodeAccess>) -> axum::Router {
    let state = WsState { core, clients: Arc::new(Semaphore::new(MAX_CLIENTS)) };
    axum::Router::new().route("/v1/ws", get(upgrade)).with_state(state)
}

/// Upgrades to a WebSocket that streams new heads and pending and included transactions.
///
/// Send `{"subscribe": ["new_heads", "pending_txs", "included_txs"]}` (any subset) after the
/// upgrade; every request is answered with a `subscribed` message. Server messages are
/// `WsMessage`s (tagged by `type`), client messages `WsRequest`s. A client that does not keep up
/// gets a final `slow_consumer` error and is disconnected, and so is one that answers no ping
/// before the next. See `docs/api.md` for the whole protocol and its limits.
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = "stream",
    operation_id = "ws",
    params(
        ("Connection" = String, Header, description = "`Upgrade` (a list holding it, any case).", pattern = r"^(.*,\s*)?[Uu][Pp][Gg][Rr][Aa][Dd][Ee](\s*,.*)?$"),
        ("Upgrade" = String, Header, description = "`websocket` (any case).", pattern = r"^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`.", pattern = r"^13$"),
        ("Sec-WebSocket-Key" = String, Header, description = "16 random bytes in base64 (RFC 6455).", pattern = r"^[A-Za-z0-9+/]{22}==$"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; then `WsRequest` messages in, `WsMessage` messages out."),
        (status = 400, description = "`websocket_required`: not a WebSocket upgrade request (missing or wrong `Connection`, `Upgrade`, `Sec-WebSocket-Key` or `Sec-WebSocket-Version` header).", body = ErrorBody),
        (status = 426, description = "`websocket_required`: the connection cannot be upgraded.", body = ErrorBody),
        (status = 503, description = "`too_many_websockets`: the node serves as many WebSocket clients as it allows; retry later.", body = ErrorBody),
    )
)]
async fn upgrade(
    State(state): State<WsState>,
    headers: axum::http::HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|r| {
        ApiError::new(r.status(), "websocket_required", format!("{}; connect with a WebSocket client", r.body_text()))
    })?;
    let key = headers.get("sec-websocket-key").map(|v| v.as_bytes()).unwrap_or_default();
    if !is_websocket_key(key) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            "Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455 section 4.1); connect with a WebSocket client",
        ));
    }
    let permit = state.clients.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_websockets",
            format!("{MAX_CLIENTS} WebSocket clients are connected; retry later"),
        )
    })?;
    state.core.bounds().record(WS_CLIENTS, MAX_CLIENTS - state.clients.available_permits());
    let events = state.core.subscribe();
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, events, permit)))
}

/// Whether `key` has the shape RFC 6455 gives `Sec-WebSocket-Key`: 16 bytes in base64, i.e. 22
/// base64 digits and `==` (the pattern the OpenAPI document declares).
fn is_websocket_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// The client closed, vanished or stopped answering: nothing more to send.
    Gone(&'static str),
    /// We close it: send this error (if any) and a close frame, as far as the socket allows.
    Close { code: u16, reason: &'static str, error: Option<WsMessage> },
}

impl End {
    fn slow(detail: String) -> End {
        End::Close {
            code: close_code::POLICY,
            reason: "slow_consumer",
            error: Some(WsMessage::error(
                "slow_consumer",
                format!("{detail}; read faster, or subscribe to fewer streams, and reconnect"),
            )),
        }
    }
}

/// Runs one connection until it ends; the permit is released when it returns.
async fn serve(socket: WebSocket, events: broadcast::Receiver<Event>, permit: OwnedSemaphorePermit) {
    let (sink, stream) = socket.split();
    let (queue_tx, queue_rx) = mpsc::channel(QUEUE_CAP);
    let (bye_tx, bye_rx) = oneshot::channel();
    let mut writer = tokio::spawn(write_loop(sink, queue_rx, bye_rx));
    tracing::debug!("WebSocket client connected");
    // The connection (and so the queue's sender) lives until the goodbye is handed over: the writer
    // must see the goodbye, not a closed queue.
    let mut conn = Connection { queue: queue_tx, subscribed: 0, bad: 0 };
    let end = conn.run(stream, events).await;
    match &end {
        End::Gone(reason) => {
            tracing::debug!(reason, "WebSocket client gone");
            writer.abort();
        }
        End::Close { code, reason, error } => {
            tracing::info!(reason, "WebSocket client dropped");
            let frame = CloseFrame { code: *code, reason: (*reason).into() };
            let error = error.as_ref().and_then(encode);
            let _ = bye_tx.send((error, frame));
            if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer).await.is_err() {
                writer.abort();
            }
        }
    }
    drop(conn);
    drop(permit);
}

/// Drains the queue into the socket in batches; on a goodbye, sends it and stops.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    mut bye: oneshot::Receiver<(Option<Message>, CloseFrame)>,
) {
    loop {
        let first = tokio::select! {
            biased;
            goodbye = &mut bye => {
                if let Ok((error, frame)) = goodbye {
                    let send = async {
                        if let Some(m) = error {
                            sink.send(m).await?;
                        }
                        sink.send(Message::Close(Some(frame))).await
                    };
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, send).await;
                }
                return;
            }
            m = queue.recv() => m,
        };
        let Some(first) = first else { return };
        let batch = async {
            sink.feed(first).await?;
            for _ in 1..WRITE_BATCH {
                match queue.try_recv() {
                    Ok(m) => sink.feed(m).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, batch).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "WebSocket write failed");
                return;
            }
            Err(_) => {
                tracing::info!(reason = "write_timeout", "WebSocket client dropped");
                return;
            }
        }
    }
}

fn encode(m: &WsMessage) -> Option<Message> {
    match serde_json::to_string(m) {
        Ok(s) => Some(Message::Text(s.into())),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a WebSocket message");
            None
        }
    }
}

/// The reading side of one connection.
struct Connection {
    queue: mpsc::Sender<Message>,
    /// Bit set of [`WsStream::bit`].
    subscribed: u8,
    bad: u32,
}

impl Connection {
    async fn run(&mut self, mut stream: SplitStream<WebSocket>, mut events: broadcast::Receiver<Event>) -> End {
        let start = tokio::time::Instant::now() + PING_INTERVAL;
        let mut ping = tokio::time::interval_at(start, PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard_since_ping = true;
        loop {
            let queue = self.queue.clone();
            let step = tokio::select! {
                biased;
                _ = queue.closed() => Err(End::Gone("writer stopped")),
                frame = stream.next() => match frame {
                    None => Err(End::Gone("closed")),
                    Some(Err(_)) => Err(End::Gone("read error")),
                    Some(Ok(msg)) => {
                        heard_since_ping = true;
                        self.on_client_message(msg).await
                    }
                },
                _ = ping.tick() => {
                    if !heard_since_ping {
                        Err(End::Gone("no answer to ping"))
                    } else {
                        heard_since_ping = false;
                        // A full queue already means trouble; the event path notices it.
                        let _ = self.queue.try_send(Message::Ping(Default::default()));
                        Ok(())
                    }
                }
                ev = events.recv() => match ev {
                    Ok(ev) => self.on_event(&ev).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        Err(End::slow(format!("fell {n} events behind the node")))
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        Err(End::Close { code: close_code::AWAY, reason: "node_stopping", error: None })
                    }
                },
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Queues a message, waiting at most [`QUEUE_FULL_GRACE`] for room.
    async fn send(&self, m: &WsMessage) -> Result<(), End> {
        let Some(msg) = encode(m) else { return Ok(()) };
        match self.queue.send_timeout(msg, QUEUE_FULL_GRACE).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(End::slow(format!(
                "{QUEUE_CAP} messages waited for {} s without being read",
                QUEUE_FULL_GRACE.as_secs()
            ))),
            Err(SendTimeoutError::Closed(_)) => Err(End::Gone("writer stopped")),
        }
    }

    fn wants(&self, s: WsStream) -> bool {
        self.subscribed & s.bit() != 0
    }

    async fn on_event(&mut self, ev: &Event) -> Result<(), End> {
        match ev {
            Event::NewHead { hash, height, reverted, applied, .. } => {
                if self.wants(WsStream::NewHeads)
                    && let Some(tip) = applied.last()
                {
                    self.send(&WsMessage::NewHead {
                        hash: *hash,
                        height: *height,
                        parent: tip.header.parent,
                        timestamp_ms: tip.header.timestamp_ms,
                        tx_count: tip.transactions.len(),
                        reverted: *reverted,
                    })
                    .await?;
                }
                if self.wants(WsStream::IncludedTxs) {
                    for block in applied.iter() {
                        let block_hash = block.hash();
                        for (index, tx) in block.transactions.iter().enumerate() {
                            self.send(&WsMessage::IncludedTx {
                                hash: tx.id(),
                                block_hash,
                                height: block.header.height,
                                index: u32::try_from(index).unwrap_or(u32::MAX),
                            })
                            .await?;
                        }
                    }
                }
            }
            Event::TxPooled { tx, .. } => {
                if self.wants(WsStream::PendingTxs) {
                    self.send(&WsMessage::PendingTx { tx: TxJson::from(tx) }).await?;
                }
            }
        }
        Ok(())
    }

    async fn on_client_message(&mut self, msg: Message) -> Result<(), End> {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => return self.bad("send JSON text messages, not binary ones").await,
            // tungstenite answers pings itself; both count as signs of life.
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(End::Gone("closed")),
        };
        let req = match parse_request(text.as_str()) {
            Ok(r) => r,
            Err(e) => return self.bad(&e).await,
        };
        let (subscribed, unknown) = apply(self.subscribed, &req);
        self.subscribed = subscribed;
        if !unknown.is_empty() {
            let known: Vec<&str> = WsStream::ALL.iter().map(|s| s.name()).collect();
            let message = format!("unknown stream(s) {unknown:?} ignored; the streams are {known:?}");
            self.send(&WsMessage::error("unknown_stream", message)).await?;
        }
        let streams = WsStream::ALL.into_iter().filter(|s| self.wants(*s)).collect();
        self.send(&WsMessage::Subscribed { streams }).await
    }

    async fn bad(&mut self, why: &str) -> Result<(), End> {
        self.bad += 1;
        if self.bad >= MAX_BAD_MESSAGES {
            return Err(End::Close {
                code: close_code::POLICY,
                reason: "too_many_bad_messages",
                error: Some(WsMessage::error(
                    "too_many_bad_messages",
                    format!("{MAX_BAD_MESSAGES} malformed messages (last: {why}); closing"),
                )),
            });
        }
        self.send(&WsMessage::error("invalid_json", why)).await
    }
}

/// Parses a client request; the error says what a request looks like.
fn parse_request(text: &str) -> Result<WsRequest, String> {
    const SHAPE: &str =
        r#"expected {"subscribe": ["new_heads", "pending_txs", "included_txs"]} or {"unsubscribe": [...]}"#;
    match serde_json::from_str::<WsRequest>(text) {
        Ok(r) if r.subscribe.is_none() && r.unsubscribe.is_none() => Err(SHAPE.to_string()),
        Ok(r) => Ok(r),
        Err(e) => Err(format!("{SHAPE}: {e}")),
    }
}

/// Applies a request to a subscription set; returns the new set and the unknown names.
fn apply(mut subscribed: u8, req: &WsRequest) -> (u8, Vec<String>) {
    let mut unknown = Vec::new();
    for (names, on) in [(&req.subscribe, true), (&req.unsubscribe, false)] {
        for name in names.iter().flatten() {
            match WsStream::parse(name) {
                Some(s) if on => subscribed |= s.bit(),
                Some(s) => subscribed &= !s.bit(),
                None => unknown.push(name.clone()),
            }
        }
    }
    (subscribed, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_apply() {
        let r = parse_request(r#"{"subscribe": ["new_heads", "included_txs", "bogus"]}"#).unwrap();
        let (set, unknown) = apply(0, &r);
        assert_eq!(set, WsStream::NewHeads.bit() | WsStream::IncludedTxs.bit());
        assert_eq!(unknown, vec!["bogus".to_string()]);
        let r = parse_request(r#"{"unsubscribe": ["new_heads"], "subscribe": ["pending_txs"]}"#).unwrap();
        let (set, unknown) = apply(set, &r);
        assert_eq!(set, WsStream::PendingTxs.bit() | WsStream::IncludedTxs.bit());
        assert!(unknown.is_empty());
        for bad in ["", "{}", "[]", "null", r#"{"subscribe": "new_heads"}"#, r#"{"subscribe": [], "x": 1}"#, "\u{0}"] {
            assert!(parse_request(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn websocket_keys_have_the_declared_shape() {
        assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "RFC 6455's example key");
        for bad in [
            &b""[..],
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZSBub25jZQ==x",
            b"dGhlIHNhbXBsZSBub25j*Q==",
            b"dGhlIHNhbXBsZSBub25jZQAA",
        ] {
            assert!(!is_websocket_key(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn messages_are_tagged_by_type() {
        let m = WsMessage::Subscribed { streams: vec![WsStream::NewHeads, WsStream::PendingTxs] };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v, serde_json::json!({"type": "subscribed", "streams": ["new_heads", "pending_txs"]}));
        let e = serde_json::to_value(WsMessage::error("slow_consumer", "x")).unwrap();
        assert_eq!(e, serde_json::json!({"type": "error", "code": "slow_consumer", "message": "x"}));
        let h = WsMessage::IncludedTx { hash: Hash::default(), block_hash: Hash::default(), height: 3, index: 1 };
        let back: WsMessage = serde_json::from_value(serde_json::to_value(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        for s in WsStream::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.name()));
            assert_eq!(WsStream::parse(s.name()), Some(s));
        }
    }
}
