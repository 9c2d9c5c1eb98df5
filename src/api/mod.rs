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
//!
//! Under load ([`limits`]): every public request meets a per-client rate (429 `rate_limited`), a
//! cap on requests in flight (503 `busy`) and a timeout (503 `timeout`), all with `Retry-After`;
//! store reads run on the blocking pool, a few at a time ([`AppState::read`]), never on the
//! runtime threads the swarm task shares. The admin API meets none of these limits.
//!
//! Modules, by what they serve: [`chain`] (status, blocks), [`accounts`] (balances, history),
//! [`txs`] (submission, lookup), [`network`] (peers), [`ws`] (the stream), [`openapi`] (the
//! document), [`admin`] and [`deep_fork`] (operator actions), [`auth`] (the admin gate),
//! [`limits`] (the public API's limits), [`error`] (the error body and codes).

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod chain;
pub mod deep_fork;
pub mod error;
pub mod limits;
pub mod network;
pub mod openapi;
pub mod txs;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::chain::types::{Address, Hash, Transaction};
use crate::mempool::SubmitError;
use crate::mempool::events::Event;
use crate::state::{ReadView, StoreError};

pub use accounts::{AccountJson, AccountTxJson, TxsQuery};
pub use admin::{BanRequest, DialRequest, Done, MAX_BAN_SECS, ReconsiderJson};
pub use chain::{BlockJson, Status};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use txs::{BatchResult, SubmitTx, SubmitTxBatch, Submitted, SubmittedBatch, TxJson, TxStatus};

use error::{json_errors, method_not_allowed};

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
    /// The resource registry, shared (the API's limits record into it from their own tasks).
    fn bounds_arc(&self) -> Arc<crate::bounds::Bounds>;
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
    /// The public API's limits and store readers.
    pub gate: Arc<limits::Gate>,
}

impl AppState {
    /// The handlers' state, with the public API's `limits` (their caps registered in the core's
    /// resource registry) and `metrics`.
    pub fn new(
        core: Arc<dyn NodeAccess>,
        network: Option<crate::p2p::NetworkHandle>,
        limits: limits::Limits,
        metrics: Arc<limits::Metrics>,
    ) -> Self {
        let gate = limits::Gate::new(limits, core.bounds_arc(), metrics);
        AppState { core, network, gate }
    }

    /// Runs `f` on a read snapshot of the store, on tokio's blocking pool (never on the runtime
    /// threads), once one of the API's store readers is free ([`limits`]).
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn NodeAccess, &ReadView) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let core = self.core.clone();
        self.gate
            .blocking_read(move || {
                let r = core.read()?;
                f(core.as_ref(), &r)
            })
            .await
    }
}

/// The public API's routes.
///
/// Layers, outermost first: the per-client rate (`limits::rate_limit`, every request), the body
/// limit, the error body; then, for every route but the WebSocket's, the in-flight cap and the
/// timeout (`limits::in_flight_and_timeout`). Serve it with the peer address
/// (`into_make_service_with_connect_info::<SocketAddr>`), which the rate limit keys on.
pub fn router(state: AppState) -> Router {
    let stream = ws::router(state.core.clone());
    let gate = state.gate.clone();
    Router::new()
        .route("/v1/peers", get(network::peers))
        .route("/v1/status", get(chain::status))
        .route("/v1/blocks/{id}", get(chain::block))
        .route("/v1/accounts/{address}", get(accounts::account))
        .route("/v1/accounts/{address}/txs", get(accounts::account_txs))
        .route("/v1/txs", post(txs::submit))
        .route(
            "/v1/txs/batch",
            post(txs::submit_batch).layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
        )
        .route("/v1/txs/{id}", get(txs::tx_status))
        .route("/v1/openapi.json", get(openapi::serve))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(gate.clone(), limits::in_flight_and_timeout))
        .merge(stream)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { ApiError::not_found("no such endpoint; see docs/api.md") })
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(gate, limits::rate_limit))
}

/// The admin API's routes (serve them on a private address only), behind `guard`'s checks
/// ([`auth::check`]: Host, Origin, bearer token, JSON content type), which run before routing, so
/// that an unauthorised request learns nothing, not even which paths exist.
pub fn admin_router(state: AppState, guard: auth::AdminGuard) -> Router {
    Router::new()
        .route("/admin/bans", get(admin::admin_bans))
        .route("/admin/peers/{peer}/ban", post(admin::admin_ban).delete(admin::admin_unban))
        .route("/admin/peers", post(admin::admin_dial))
        .route("/admin/chain/deep-forks/keep", post(deep_fork::keep))
        .route("/admin/blocks/{hash}/reconsider", post(admin::admin_reconsider))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { ApiError::not_found("no such admin endpoint; see docs/api.md") })
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(guard, auth::check))
        .with_state(state)
}
