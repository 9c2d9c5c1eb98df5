//! The HTTP JSON API (axum), its WebSocket stream ([`ws`]) and its OpenAPI document ([`openapi`]).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/v1/status` | chain id, genesis hash, height, tip hash, total work, mempool size |
//! | GET | `/v1/blocks/{height or hash}` | a canonical block by height, or any stored block by hash |
//! | GET | `/v1/accounts/{address}` | balance, nonce, and the next nonce counting pooled transactions |
//! | GET | `/v1/accounts/{address}/txs?limit=N&before=H:I` | the account's transactions, newest first |
//! | POST | `/v1/txs` | `{"tx": "<hex of the canonical encoding>"}`: submit a signed transaction |
//! | POST | `/v1/txs/batch` | `{"txs": ["<hex>", ...]}`: submit up to [`MAX_BATCH_TXS`] at once, one result each |
//! | GET | `/v1/txs/{id}` | a transaction: `pending` in the pool or `included` in a block |
//! | GET | `/v1/peers` | connected peers: id, addresses, direction, score, client, height |
//! | GET | `/v1/ws` | WebSocket: new heads, pending and included transactions ([`ws`]) |
//! | GET | `/v1/openapi.json` | the OpenAPI 3.1 document of this API and the admin API ([`openapi`]) |
//!
//! The admin API ([`admin_router`]) is served on its own address (`--admin-addr`, loopback by
//! default) and never on the public one. Every admin request needs `Authorization: Bearer <token>`
//! (the token is the cookie file `DATA_DIR/admin.cookie`, or `--admin-token-file`), a Host naming
//! the admin address, no foreign `Origin` and JSON bodies ([`auth`]):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/admin/bans` | current bans |
//! | POST | `/admin/peers/{peer id}/ban` | `{"duration_secs": N}`: ban (and disconnect) a peer |
//! | DELETE | `/admin/peers/{peer id}/ban` | lift a ban |
//! | POST | `/admin/peers` | `{"addr": "<multiaddr>"}`: dial a peer |
//! | POST | `/admin/chain/deep-forks/keep` | `{"peer": "<peer id>"}` or `{}`: keep our chain against deep forks ([`deep_fork`]) |
//!
//! Amounts and work are decimal strings (JSON numbers lose precision above 2^53). Every error,
//! including the ones axum produces itself (wrong method, body too large), is
//! `{"error": {"code": "<stable code>", "message": "<what to do>"}}` with a 4xx status for bad
//! input (codes listed in `docs/api.md`) and 5xx only for faults of the node itself.
//!
//! Every handler carries a `#[utoipa::path]` annotation; [`openapi::document`] collects them, and
//! a test keeps `docs/openapi.json` equal to it.

pub mod auth;
pub mod deep_fork;
pub mod openapi;
pub mod ws;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::chain::consensus::TxError;
use crate::chain::types::{Address, Block, Hash, Transaction};
use crate::mempool::MempoolError;
use crate::mempool::SubmitError;
use crate::mempool::events::Event;
use crate::state::StoreError;

/// Most transactions `/v1/accounts/{address}/txs` returns at once.
pub const MAX_TXS_PAGE: usize = 500;
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most transactions in one `POST /v1/txs/batch` (the gossip batch size: one batch verified as one
/// parallel batch of signatures, pooled under one pass).
pub const MAX_BATCH_TXS: usize = crate::p2p::gossip::MAX_TX_BATCH;
/// Largest `POST /v1/txs/batch` body: [`MAX_BATCH_TXS`] hex transfers (2 x 182 characters plus
/// quotes and a comma each) with room for whitespace.
pub const MAX_BATCH_BODY_BYTES: usize = 512 * 1024;
/// Most bytes of an axum-generated error body (a rejection message) copied into the error JSON.
const MAX_REJECTION_BYTES: usize = 4 * 1024;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

/// Body of an error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_address", "message": "invalid address \"vis1qqqq\": invalid checksum (check for a typo; addresses look like vis1...)"}}))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (the table in `docs/api.md`).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage error while serving the API");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        use StatusCode as S;
        let msg = e.to_string();
        let (status, code) = match &e {
            SubmitError::Signature(_) => (S::BAD_REQUEST, "invalid_signature"),
            SubmitError::Rule(t) | SubmitError::Mempool(MempoolError::Invalid(t)) => match t {
                TxError::WrongChainId { .. } => (S::BAD_REQUEST, "wrong_chain_id"),
                TxError::FeeTooLow { .. } => (S::UNPROCESSABLE_ENTITY, "fee_too_low"),
                TxError::CostOverflow | TxError::BalanceOverflow => (S::BAD_REQUEST, "overflow"),
                TxError::BadSignature(_) => (S::BAD_REQUEST, "invalid_signature"),
                TxError::NonceTooLow { .. } => (S::CONFLICT, "nonce_too_low"),
                TxError::NonceGap { .. } => (S::CONFLICT, "nonce_gap"),
                TxError::InsufficientBalance { .. } => (S::UNPROCESSABLE_ENTITY, "insufficient_balance"),
            },
            SubmitError::Mempool(MempoolError::AlreadyKnown(_)) => (S::CONFLICT, "already_known"),
            SubmitError::Mempool(MempoolError::ReplacementUnderpriced { .. }) => {
                (S::CONFLICT, "replacement_underpriced")
            }
            SubmitError::Mempool(MempoolError::Full { .. }) => (S::SERVICE_UNAVAILABLE, "mempool_full"),
            SubmitError::Mempool(MempoolError::SenderFull { .. }) => (S::TOO_MANY_REQUESTS, "sender_full"),
            SubmitError::Unverified(_) => (S::UNPROCESSABLE_ENTITY, "not_verified"),
            SubmitError::Mempool(MempoolError::Store(_)) => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, msg)
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn parse_address(s: &str) -> Result<Address, ApiError> {
    s.parse().map_err(|e: crate::chain::types::AddressError| ApiError::bad_request("invalid_address", e.to_string()))
}

fn parse_hash(s: &str) -> Result<Hash, ApiError> {
    s.parse().map_err(|e: crate::chain::types::ParseHashError| ApiError::bad_request("invalid_hash", e.to_string()))
}

/// What the API may read and do of the node; the node implements it for its core. Reads go to
/// redb read snapshots, and the only writes are transaction submissions, through the same door
/// as the network's, and the operator's admin actions.
pub trait NodeAccess: Send + Sync + 'static {
    /// The canonical tip.
    fn tip(&self) -> crate::chain::Tip;
    /// The chain's parameters (chain id, genesis hash, minimum fee, ...).
    fn params(&self) -> &crate::chain::consensus::ChainParams;
    /// A read snapshot of the store.
    fn read(&self) -> Result<crate::state::ReadView, StoreError>;
    /// The pool's counters.
    fn mempool_stats(&self) -> crate::mempool::Stats;
    /// The pooled transaction `id`, if any.
    fn pooled(&self, id: &Hash) -> Option<Transaction>;
    /// The next nonce of `from` counting its pooled transactions, given its nonce in the tip state.
    fn pending_nonce(&self, from: &Address, state_nonce: u64) -> u64;
    /// Admits a transaction submitted through the API.
    fn submit_transaction(&self, tx: Transaction) -> Result<Hash, SubmitError>;
    /// Admits a batch submitted through the API; one result per transaction, in order.
    fn submit_transactions(&self, txs: &[Transaction]) -> Vec<Result<Hash, SubmitError>>;
    /// A new subscription to the node's events (the WebSocket stream).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event>;
    /// The resource registry (WebSocket clients are one resource).
    fn bounds(&self) -> &crate::bounds::Bounds;
    /// Clears the invalid verdict on `hash` and everything below it (admin only; blocking: a
    /// write transaction and a scan of the stored headers).
    fn reconsider_block(&self, hash: &Hash) -> Result<crate::state::Reconsidered, crate::state::ReconsiderError>;
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Chain, pool and miner cache, through [`NodeAccess`].
    pub core: Arc<dyn NodeAccess>,
    /// The network, if the node has one.
    pub network: Option<crate::p2p::NetworkHandle>,
}

/// `GET /v1/status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// Chain id.
    pub chain_id: u32,
    /// Genesis hash (network identity).
    pub genesis_hash: Hash,
    /// Tip height.
    pub height: u64,
    /// Tip hash.
    pub tip_hash: Hash,
    /// Cumulative work of the tip (decimal).
    pub total_work: String,
    /// Pooled transactions.
    pub mempool_size: usize,
    /// Pooled bytes.
    pub mempool_bytes: usize,
    /// Smallest fee the network accepts (decimal base units).
    pub min_fee: String,
    /// Smallest fee that enters the mempool right now (rises when it is full).
    pub min_fee_to_enter: String,
    /// Our peer id (absent without networking).
    pub peer_id: Option<String>,
    /// Addresses we listen on for peers.
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub peers: usize,
    /// Whether we are catching up with a peer that has more work.
    pub syncing: bool,
    /// Peers whose chain has more work than ours but forks from it deeper than our reorg window
    /// (the network was split for longer than the window): the operator must choose
    /// (docs/runbook.md, "A fork deeper than the reorg window").
    #[serde(default)]
    pub deep_forks: Vec<deep_fork::DeepForkJson>,
}

/// A transaction as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct TxJson {
    /// Transaction id.
    pub hash: Hash,
    /// Chain id.
    pub chain_id: u32,
    /// Sender.
    pub from: Address,
    /// Recipient.
    pub to: Address,
    /// Amount (decimal base units).
    pub amount: String,
    /// Fee (decimal base units).
    pub fee: String,
    /// Nonce.
    pub nonce: u64,
    /// Signature (hex).
    pub signature: String,
}

impl From<&Transaction> for TxJson {
    fn from(t: &Transaction) -> Self {
        let (to, amount) = t.transfer();
        TxJson {
            hash: t.id(),
            chain_id: t.chain_id,
            from: t.from,
            to,
            amount: amount.to_string(),
            fee: t.fee.to_string(),
            nonce: t.nonce,
            signature: hex::encode(t.signature),
        }
    }
}

/// A block as JSON.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockJson {
    /// Block hash.
    pub hash: Hash,
    /// Height.
    pub height: u64,
    /// Parent hash.
    pub parent: Hash,
    /// Timestamp (ms).
    pub timestamp_ms: u64,
    /// Difficulty.
    pub difficulty: u64,
    /// PoW nonce.
    pub nonce: u64,
    /// Miner.
    pub miner: Address,
    /// Transactions root.
    pub tx_root: Hash,
    /// State root.
    pub state_root: Hash,
    /// Cumulative work (decimal).
    pub total_work: String,
    /// Whether it is on the canonical chain.
    pub canonical: bool,
    /// Transactions.
    pub transactions: Vec<TxJson>,
}

/// `GET /v1/accounts/{address}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountJson {
    /// The address.
    pub address: Address,
    /// Balance (decimal base units).
    pub balance: String,
    /// Nonce in the tip state.
    pub nonce: u64,
    /// Next nonce to use, counting pooled transactions.
    pub pending_nonce: u64,
}

/// One entry of `GET /v1/accounts/{address}/txs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountTxJson {
    /// Height of the block.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
    /// The transaction.
    pub tx: TxJson,
}

/// `POST /v1/txs` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmitTx {
    /// Hex of the canonical encoding (`0x` prefix allowed).
    #[schema(pattern = r"^(0x)?([0-9a-fA-F]{2})+$", min_length = 2, max_length = 32770)]
    pub tx: String,
}

/// `POST /v1/txs` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// Transaction id.
    pub hash: Hash,
}

/// `POST /v1/txs/batch` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmitTxBatch {
    /// Hex of each transaction's canonical encoding, 1 to `MAX_BATCH_TXS` (1024) of them.
    #[schema(min_items = 1, max_items = 1024)]
    pub txs: Vec<String>,
}

/// One transaction's result in a `POST /v1/txs/batch` answer: `hash` when pooled, else `error`
/// (the code and message `POST /v1/txs` would have answered for it alone).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    /// Transaction id, when pooled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hash: Option<Hash>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ErrorDetail>,
}

/// `POST /v1/txs/batch` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmittedBatch {
    /// How many were pooled.
    pub accepted: usize,
    /// How many were refused.
    pub rejected: usize,
    /// One result per submitted transaction, in order.
    pub results: Vec<BatchResult>,
}

/// `GET /v1/txs/{id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TxStatus {
    /// `pending` or `included`.
    pub status: String,
    /// Block hash when included.
    pub block_hash: Option<Hash>,
    /// Block height when included.
    pub height: Option<u64>,
    /// Index in the block when included.
    pub index: Option<u32>,
    /// The transaction.
    pub tx: TxJson,
}

/// The public API's routes.
pub fn router(state: AppState) -> Router {
    let stream = ws::router(state.core.clone());
    Router::new()
        .route("/v1/peers", get(peers))
        .route("/v1/status", get(status))
        .route("/v1/blocks/{id}", get(block))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/accounts/{address}/txs", get(account_txs))
        .route("/v1/txs", post(submit))
        .route("/v1/txs/batch", post(submit_batch).layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)))
        .route("/v1/txs/{id}", get(tx_status))
        .route("/v1/openapi.json", get(openapi::serve))
        .with_state(state)
        .merge(stream)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { ApiError::not_found("no such endpoint; see docs/api.md") })
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The admin API's routes (serve them on a private address only), behind `guard`'s checks
/// ([`auth::check`]: Host, Origin, bearer token, JSON content type), which run before routing, so
/// that an unauthorised request learns nothing, not even which paths exist.
pub fn admin_router(state: AppState, guard: auth::AdminGuard) -> Router {
    Router::new()
        .route("/admin/bans", get(admin_bans))
        .route("/admin/peers/{peer}/ban", post(admin_ban).delete(admin_unban))
        .route("/admin/peers", post(admin_dial))
        .route("/admin/chain/deep-forks/keep", post(deep_fork::keep))
        .route("/admin/blocks/{hash}/reconsider", post(admin_reconsider))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { ApiError::not_found("no such admin endpoint; see docs/api.md") })
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(guard, auth::check))
        .with_state(state)
}

/// A path that exists, with a method it does not serve: 405 (axum adds the `Allow` header).
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this path; the Allow header lists the allowed ones",
    )
}

/// Turns the error responses axum produces on its own (405 wrong method, 413 body too large, a
/// path that does not decode) into the error JSON every other error uses, so clients parse one
/// shape. Responses that already are JSON, and non-errors, pass unchanged.
async fn json_errors(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = match (status, text.is_empty()) {
        // axum adds the `Allow` header after this layer runs.
        (StatusCode::METHOD_NOT_ALLOWED, _) => {
            "method not allowed on this path; the Allow header lists the allowed ones".into()
        }
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            format!("request body too large: at most {MAX_BODY_BYTES} bytes ({MAX_BATCH_BODY_BYTES} for /v1/txs/batch)")
        }
        (_, false) => text,
        (s, true) => s.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for (k, v) in &parts.headers {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    out
}

fn network(state: &AppState) -> Result<&crate::p2p::NetworkHandle, ApiError> {
    state.network.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_network", "this node runs without networking")
    })
}

fn net_error(e: crate::p2p::NetworkError) -> ApiError {
    match e {
        crate::p2p::NetworkError::Refused(m) => ApiError::bad_request("refused", m),
        other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "network_stopped", other.to_string()),
    }
}

fn parse_peer(s: &str) -> Result<crate::p2p::PeerId, ApiError> {
    s.parse().map_err(|e| ApiError::bad_request("invalid_peer_id", format!("{s:?} is not a peer id: {e}")))
}

/// Connected peers.
#[utoipa::path(
    get,
    path = "/v1/peers",
    tag = "network",
    responses(
        (status = 200, description = "Connected peers.", body = Vec<openapi::PeerInfoSchema>),
        (status = 503, description = "`no_network`: the node runs without networking; `network_stopped`: the network task is gone.", body = ErrorBody),
    )
)]
async fn peers(State(state): State<AppState>) -> ApiResult<Vec<crate::p2p::PeerInfo>> {
    Ok(Json(network(&state)?.peers().await.map_err(net_error)?))
}

/// Current bans (admin address only).
#[utoipa::path(
    get,
    path = "/admin/bans",
    tag = "admin",
    responses(
        (status = 200, description = "Current bans.", body = Vec<openapi::BanInfoSchema>),
        (status = 503, description = "`no_network`, `network_stopped`.", body = ErrorBody),
    )
)]
async fn admin_bans(State(state): State<AppState>) -> ApiResult<Vec<crate::p2p::BanInfo>> {
    Ok(Json(network(&state)?.bans().await.map_err(net_error)?))
}

/// Longest ban the admin API sets: ten years (a longer one is a typo, or an overflow waiting to
/// happen in the ban's expiry time).
pub const MAX_BAN_SECS: u64 = 10 * 365 * 24 * 3600;

/// `POST /admin/peers/{peer}/ban` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BanRequest {
    /// Ban length in seconds, 0 to ten years (315360000). A number with a zero fraction
    /// (`3600.0`) counts as the integer it is, as in JSON Schema.
    #[serde(deserialize_with = "integral_u64")]
    #[schema(minimum = 0, maximum = 315360000)]
    pub duration_secs: u64,
}

/// A `u64` from a JSON integer, or from a number whose fraction is zero (JSON Schema's `integer`
/// admits `3600.0`).
fn integral_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    match n.as_f64() {
        // 2^64: every whole f64 below it converts exactly.
        Some(f) if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!("{n} is not a whole number of seconds from 0 up"))),
    }
}

/// `POST /admin/peers` body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DialRequest {
    /// Multiaddr to dial, e.g. `/ip4/10.0.0.2/tcp/7000/p2p/12D3...`.
    pub addr: String,
}

/// An admin action's answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

/// Bans a peer for a while and disconnects it (admin address only).
#[utoipa::path(
    post,
    path = "/admin/peers/{peer}/ban",
    tag = "admin",
    params(("peer" = String, Path, description = "Peer id (`12D3KooW...`: base58 of an ed25519 key's identity multihash).", pattern = r"^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$")),
    request_body = BanRequest,
    responses(
        (status = 200, description = "Banned.", body = Done),
        (status = 400, description = "`invalid_peer_id`, `invalid_json`, `invalid_duration`: over ten years.", body = ErrorBody),
        (status = 503, description = "`no_network`, `network_stopped`.", body = ErrorBody),
    )
)]
async fn admin_ban(State(state): State<AppState>, Path(peer): Path<String>, body: Bytes) -> ApiResult<Done> {
    let peer = parse_peer(&peer)?;
    let req: BanRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body must be {{\"duration_secs\": N}}: {e}")))?;
    if req.duration_secs > MAX_BAN_SECS {
        return Err(ApiError::bad_request(
            "invalid_duration",
            format!("duration_secs {} is longer than ten years ({MAX_BAN_SECS} s)", req.duration_secs),
        ));
    }
    network(&state)?.ban(peer, std::time::Duration::from_secs(req.duration_secs)).await.map_err(net_error)?;
    Ok(Json(Done { ok: true }))
}

/// Lifts a ban (admin address only).
#[utoipa::path(
    delete,
    path = "/admin/peers/{peer}/ban",
    tag = "admin",
    params(("peer" = String, Path, description = "Peer id (`12D3KooW...`: base58 of an ed25519 key's identity multihash).", pattern = r"^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$")),
    responses(
        (status = 200, description = "Ban lifted (or there was none).", body = Done),
        (status = 400, description = "`invalid_peer_id`.", body = ErrorBody),
        (status = 503, description = "`no_network`, `network_stopped`.", body = ErrorBody),
    )
)]
async fn admin_unban(State(state): State<AppState>, Path(peer): Path<String>) -> ApiResult<Done> {
    let peer = parse_peer(&peer)?;
    network(&state)?.unban(peer).await.map_err(net_error)?;
    Ok(Json(Done { ok: true }))
}

/// Dials a peer (admin address only).
#[utoipa::path(
    post,
    path = "/admin/peers",
    tag = "admin",
    request_body = DialRequest,
    responses(
        (status = 200, description = "Dial started.", body = Done),
        (status = 400, description = "`invalid_json`, `invalid_multiaddr`, `refused`: the swarm cannot dial it (e.g. a banned peer, no usable address).", body = ErrorBody),
        (status = 503, description = "`no_network`, `network_stopped`.", body = ErrorBody),
    )
)]
async fn admin_dial(State(state): State<AppState>, body: Bytes) -> ApiResult<Done> {
    let req: DialRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("body must be {{\"addr\": \"<multiaddr>\"}}: {e}"))
    })?;
    let addr: crate::p2p::Multiaddr =
        req.addr.parse().map_err(|e| ApiError::bad_request("invalid_multiaddr", format!("{:?}: {e}", req.addr)))?;
    network(&state)?.dial(addr).await.map_err(net_error)?;
    Ok(Json(Done { ok: true }))
}

/// `POST /admin/blocks/{hash}/reconsider` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconsiderJson {
    /// Stored blocks forgotten: the block, its invalid ancestors and the blocks stored below them.
    pub forgotten: usize,
    /// Descendants of them remembered only by hash, forgotten.
    pub invalid_descendants_cleared: usize,
}

/// Clears the invalid verdict on a block (admin address only), like Bitcoin Core's
/// `reconsiderblock`: the block, its invalid ancestors and everything stored or remembered below
/// them are forgotten, and judged again from scratch when peers or sync deliver them again. For a
/// block marked invalid by mistake (a bug, a disk error of an older version); canonical blocks are
/// never touched.
#[utoipa::path(
    post,
    path = "/admin/blocks/{hash}/reconsider",
    tag = "admin",
    params(("hash" = String, Path, description = "Block hash (64 hex digits, optional `0x`).", pattern = r"^(0x)?[0-9a-fA-F]{64}$")),
    responses(
        (status = 200, description = "Verdicts cleared.", body = ReconsiderJson),
        (status = 400, description = "`invalid_hash`.", body = ErrorBody),
        (status = 409, description = "`not_invalid`: the block is not known invalid; nothing to reconsider.", body = ErrorBody),
        (status = 500, description = "`internal`: the store failed.", body = ErrorBody),
    )
)]
async fn admin_reconsider(State(state): State<AppState>, Path(hash): Path<String>) -> ApiResult<ReconsiderJson> {
    let hash = parse_hash(&hash)?;
    let core = state.core.clone();
    let done = tokio::task::spawn_blocking(move || core.reconsider_block(&hash))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match done {
        Ok(r) => Ok(Json(ReconsiderJson {
            forgotten: r.forgotten,
            invalid_descendants_cleared: r.invalid_descendants_cleared,
        })),
        Err(e @ crate::state::ReconsiderError::NotInvalid(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "not_invalid", e.to_string()))
        }
        Err(crate::state::ReconsiderError::Store(e)) => Err(e.into()),
    }
}

/// The node's view of the chain, pool and network.
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "chain",
    responses((status = 200, description = "Status.", body = Status))
)]
async fn status(State(state): State<AppState>) -> ApiResult<Status> {
    let core = &state.core;
    let tip = core.tip();
    let stats = core.mempool_stats();
    Ok(Json(Status {
        chain_id: core.params().chain_id,
        genesis_hash: core.params().genesis_hash,
        height: tip.header.height,
        tip_hash: tip.hash,
        total_work: tip.total_work.to_string(),
        mempool_size: stats.len,
        mempool_bytes: stats.bytes,
        min_fee: core.params().min_fee.to_string(),
        min_fee_to_enter: stats.min_fee_to_enter.to_string(),
        peer_id: state.network.as_ref().map(|n| n.info().peer_id.to_string()),
        listen_addrs: state
            .network
            .as_ref()
            .map(|n| n.info().listen_addrs().iter().map(|a| a.to_string()).collect())
            .unwrap_or_default(),
        peers: state.network.as_ref().map(|n| n.info().peer_count()).unwrap_or(0),
        syncing: state.network.as_ref().is_some_and(|n| n.info().syncing()),
        deep_forks: deep_fork::reported(&state),
    }))
}

fn block_json(core: &dyn NodeAccess, block: &Block) -> Result<BlockJson, ApiError> {
    let r = core.read()?;
    let hash = block.hash();
    let meta = r.block_meta(&hash)?.ok_or_else(|| ApiError::not_found(format!("block {hash} not found")))?;
    let canonical = r.canonical_hash(block.header.height)? == Some(hash);
    let h = block.header;
    Ok(BlockJson {
        hash,
        height: h.height,
        parent: h.parent,
        timestamp_ms: h.timestamp_ms,
        difficulty: h.difficulty,
        nonce: h.nonce,
        miner: h.miner,
        tx_root: h.tx_root,
        state_root: h.state_root,
        total_work: meta.total_work.to_string(),
        canonical,
        transactions: block.transactions.iter().map(TxJson::from).collect(),
    })
}

/// A block: the canonical block at a height, or any stored block (canonical or not) by hash.
#[utoipa::path(
    get,
    path = "/v1/blocks/{id}",
    tag = "chain",
    params(("id" = String, Path, description = "A height (decimal, at most 19 digits) or a block hash (64 hex digits, optional `0x`).", pattern = r"^([0-9]{1,19}|(0x)?[0-9a-fA-F]{64})$")),
    responses(
        (status = 200, description = "The block.", body = BlockJson),
        (status = 400, description = "`invalid_block_id`: neither a height nor a hash; `invalid_hash`: a malformed hash.", body = ErrorBody),
        (status = 404, description = "`not_found`: no canonical block at that height, or no block with that hash.", body = ErrorBody),
    )
)]
async fn block(State(AppState { core, .. }): State<AppState>, Path(id): Path<String>) -> ApiResult<BlockJson> {
    let r = core.read()?;
    let hash = if id.len() == 64 || id.starts_with("0x") {
        parse_hash(&id)?
    } else {
        let height: u64 = id.parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_block_id",
                format!("{id:?} is neither a height nor a 64-hex-digit block hash"),
            )
        })?;
        r.canonical_hash(height)?
            .ok_or_else(|| ApiError::not_found(format!("no canonical block at height {height}")))?
    };
    let block = r.block(&hash)?.ok_or_else(|| ApiError::not_found(format!("block {hash} not found")))?;
    Ok(Json(block_json(core.as_ref(), &block)?))
}

/// An account's balance and nonces.
#[utoipa::path(
    get,
    path = "/v1/accounts/{address}",
    tag = "accounts",
    params(("address" = Address, Path, description = "A `vis1...` address.")),
    responses(
        (status = 200, description = "The account (zero balance and nonce if it never appeared).", body = AccountJson),
        (status = 400, description = "`invalid_address`: not a valid `vis1...` address.", body = ErrorBody),
    )
)]
async fn account(State(AppState { core, .. }): State<AppState>, Path(address): Path<String>) -> ApiResult<AccountJson> {
    let address = parse_address(&address)?;
    let acc = core.read()?.account(&address)?;
    Ok(Json(AccountJson {
        address,
        balance: acc.balance.to_string(),
        nonce: acc.nonce,
        pending_nonce: core.pending_nonce(&address, acc.nonce),
    }))
}

/// Query of `GET /v1/accounts/{address}/txs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TxsQuery {
    /// Most entries to return: 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// Cursor `HEIGHT:INDEX`: only entries strictly older than it (pass the last entry's height and
    /// index to get the next page).
    #[param(pattern = r"^[0-9]{1,19}:[0-9]{1,9}$")]
    before: Option<String>,
}

/// The transactions an account sent or received, newest first.
#[utoipa::path(
    get,
    path = "/v1/accounts/{address}/txs",
    tag = "accounts",
    params(("address" = Address, Path, description = "A `vis1...` address."), TxsQuery),
    responses(
        (status = 200, description = "Included transactions, newest first.", body = Vec<AccountTxJson>),
        (status = 400, description = "`invalid_address`; `invalid_cursor`: `before` is not `HEIGHT:INDEX`; `invalid_query`: `limit` is not a number from 1 to 500.", body = ErrorBody),
    )
)]
async fn account_txs(
    State(AppState { core, .. }): State<AppState>,
    Path(address): Path<String>,
    q: Result<Query<TxsQuery>, QueryRejection>,
) -> ApiResult<Vec<AccountTxJson>> {
    let address = parse_address(&address)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_TXS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", format!("limit={limit}: must be 1 to {MAX_TXS_PAGE}")));
    }
    let before = match q.before {
        None => None,
        Some(s) => {
            let bad = || ApiError::bad_request("invalid_cursor", format!("before={s:?} must be HEIGHT:INDEX"));
            let (h, i) = s.split_once(':').ok_or_else(bad)?;
            Some((h.parse().map_err(|_| bad())?, i.parse().map_err(|_| bad())?))
        }
    };
    let r = core.read()?;
    let mut out = Vec::new();
    for (height, index, id) in r.account_txs(&address, limit, before)? {
        let Some((block_hash, _)) = r.tx_location(&id)? else { continue };
        let Some(body) = r.body(&block_hash)? else { continue };
        if let Some(tx) = body.get(index as usize) {
            out.push(AccountTxJson { height, index, tx: TxJson::from(tx) });
        }
    }
    Ok(Json(out))
}

/// A transaction from the hex of its canonical encoding (`0x` prefix and surrounding whitespace
/// allowed); `what` names it in the error (`tx`, `txs[3]`).
fn decode_hex_tx(hex_tx: &str, what: &str) -> Result<Transaction, ApiError> {
    let bytes = hex::decode(hex_tx.trim().trim_start_matches("0x"))
        .map_err(|e| ApiError::bad_request("invalid_hex", format!("{what} is not valid hex: {e}")))?;
    Transaction::decode(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_transaction", format!("{what} does not decode: {e}")))
}

/// Submits a signed transaction to the pool (and, with networking, gossips it).
#[utoipa::path(
    post,
    path = "/v1/txs",
    tag = "transactions",
    request_body = SubmitTx,
    responses(
        (status = 202, description = "Pooled; it will be mined when a block has room for it.", body = Submitted),
        (status = 400, description = "`invalid_json`, `invalid_hex`, `invalid_transaction` (does not decode), `invalid_signature`, `wrong_chain_id`, `overflow`.", body = ErrorBody),
        (status = 409, description = "`nonce_too_low`, `nonce_gap`, `already_known`, `replacement_underpriced`.", body = ErrorBody),
        (status = 413, description = "`body_too_large`: over 64 KiB.", body = ErrorBody),
        (status = 422, description = "`fee_too_low`, `insufficient_balance`.", body = ErrorBody),
        (status = 503, description = "`mempool_full`: the pool is full and the fee does not beat its cheapest entry.", body = ErrorBody),
    )
)]
async fn submit(
    State(AppState { core, .. }): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let req: SubmitTx = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body must be {{\"tx\": \"<hex>\"}}: {e}")))?;
    let tx = decode_hex_tx(&req.tx, "tx")?;
    let hash = tokio::task::spawn_blocking(move || core.submit_transaction(tx))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    Ok((StatusCode::ACCEPTED, Json(Submitted { hash })))
}

/// Submits up to 1024 signed transactions at once: their signatures are verified as one parallel
/// batch and they enter the pool in order (so one sender's consecutive nonces can share a batch).
/// The request fails as a whole only when the body is malformed or too large; each transaction
/// then gets its own result, with the error code `POST /v1/txs` would have given it.
#[utoipa::path(
    post,
    path = "/v1/txs/batch",
    tag = "transactions",
    request_body = SubmitTxBatch,
    responses(
        (status = 200, description = "One result per transaction, in order: `hash` when pooled, else `error` (`invalid_hex`, `invalid_transaction` and every code of `POST /v1/txs`).", body = SubmittedBatch),
        (status = 400, description = "`invalid_json`; `too_many_transactions`: over 1024, or none.", body = ErrorBody),
        (status = 413, description = "`body_too_large`: over 512 KiB.", body = ErrorBody),
    )
)]
async fn submit_batch(
    State(AppState { core, .. }): State<AppState>,
    body: Bytes,
) -> Result<Json<SubmittedBatch>, ApiError> {
    let req: SubmitTxBatch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("body must be {{\"txs\": [\"<hex>\", ...]}}: {e}"))
    })?;
    if req.txs.is_empty() || req.txs.len() > MAX_BATCH_TXS {
        return Err(ApiError::bad_request(
            "too_many_transactions",
            format!("a batch holds 1 to {MAX_BATCH_TXS} transactions, not {}", req.txs.len()),
        ));
    }
    let detail = |e: ApiError| ErrorDetail { code: e.code.to_string(), message: e.message };
    let mut results: Vec<BatchResult> = Vec::with_capacity(req.txs.len());
    let mut decoded: Vec<Transaction> = Vec::with_capacity(req.txs.len());
    // Index in `results` of each decoded transaction.
    let mut slots: Vec<usize> = Vec::with_capacity(req.txs.len());
    for (i, hex_tx) in req.txs.iter().enumerate() {
        match decode_hex_tx(hex_tx, &format!("txs[{i}]")) {
            Ok(tx) => {
                slots.push(i);
                decoded.push(tx);
                results.push(BatchResult { hash: None, error: None });
            }
            Err(e) => results.push(BatchResult { hash: None, error: Some(detail(e)) }),
        }
    }
    let outcomes = tokio::task::spawn_blocking(move || core.submit_transactions(&decoded))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    for (slot, outcome) in slots.into_iter().zip(outcomes) {
        match outcome {
            Ok(hash) => results[slot].hash = Some(hash),
            Err(e) => results[slot].error = Some(detail(ApiError::from(e))),
        }
    }
    let accepted = results.iter().filter(|r| r.hash.is_some()).count();
    Ok(Json(SubmittedBatch { accepted, rejected: results.len() - accepted, results }))
}

/// A transaction: pending in the pool, or included in a canonical block.
#[utoipa::path(
    get,
    path = "/v1/txs/{id}",
    tag = "transactions",
    params(("id" = Hash, Path, description = "Transaction id.")),
    responses(
        (status = 200, description = "The transaction and where it is.", body = TxStatus),
        (status = 400, description = "`invalid_hash`.", body = ErrorBody),
        (status = 404, description = "`not_found`: neither pooled nor included.", body = ErrorBody),
    )
)]
async fn tx_status(State(AppState { core, .. }): State<AppState>, Path(id): Path<String>) -> ApiResult<TxStatus> {
    let id = parse_hash(&id)?;
    if let Some(tx) = core.pooled(&id) {
        return Ok(Json(TxStatus {
            status: "pending".into(),
            block_hash: None,
            height: None,
            index: None,
            tx: (&tx).into(),
        }));
    }
    let r = core.read()?;
    let (block_hash, index) =
        r.tx_location(&id)?.ok_or_else(|| ApiError::not_found(format!("transaction {id} not found")))?;
    let block = r.block(&block_hash)?.ok_or_else(|| ApiError::not_found(format!("block {block_hash} not found")))?;
    let tx = block
        .transactions
        .get(index as usize)
        .ok_or_else(|| ApiError::from(StoreError::Corrupt(format!("tx index points past block {block_hash}"))))?;
    Ok(Json(TxStatus {
        status: "included".into(),
        block_hash: Some(block_hash),
        height: Some(block.header.height),
        index: Some(index),
        tx: tx.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `duration_secs` takes what JSON Schema calls an integer, and nothing else.
    #[test]
    fn ban_durations() {
        let secs = |body: &str| serde_json::from_str::<BanRequest>(body).map(|r| r.duration_secs).ok();
        assert_eq!(secs(r#"{"duration_secs": 3600}"#), Some(3600));
        assert_eq!(secs(r#"{"duration_secs": 3600.0}"#), Some(3600));
        assert_eq!(secs(r#"{"duration_secs": 18446744073709551615}"#), Some(u64::MAX));
        for bad in [
            r#"{"duration_secs": 1.5}"#,
            r#"{"duration_secs": -1}"#,
            r#"{"duration_secs": 1e30}"#,
            r#"{"duration_secs": "1"}"#,
            "{}",
        ] {
            assert_eq!(secs(bad), None, "{bad}");
        }
    }
}
