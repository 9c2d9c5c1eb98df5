//! Chain routes: `GET /v1/status` (tip, pool, network) and `GET /v1/blocks/{id}` (a block by height
//! or hash). Store reads run through [`AppState::read`], off the async runtime.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody, parse_hash};
use super::txs::TxJson;
use super::{AppState, deep_fork};
use crate::chain::types::{Address, Block, Hash};
use crate::state::ReadView;

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

/// The node's view of the chain, pool and network.
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "chain",
    responses((status = 200, description = "Status.", body = Status))
)]
pub(super) async fn status(State(state): State<AppState>) -> ApiResult<Status> {
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

fn block_json(r: &ReadView, block: &Block) -> Result<BlockJson, ApiError> {
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
pub(super) async fn block(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<BlockJson> {
    enum Id {
        Hash(Hash),
        Height(u64),
    }
    let id = if id.len() == 64 || id.starts_with("0x") {
        Id::Hash(parse_hash(&id)?)
    } else {
        Id::Height(id.parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_block_id",
                format!("{id:?} is neither a height nor a 64-hex-digit block hash"),
            )
        })?)
    };
    let json = state
        .read(move |_, r| {
            let hash = match id {
                Id::Hash(hash) => hash,
                Id::Height(height) => r
                    .canonical_hash(height)?
                    .ok_or_else(|| ApiError::not_found(format!("no canonical block at height {height}")))?,
            };
            let block = r.block(&hash)?.ok_or_else(|| ApiError::not_found(format!("block {hash} not found")))?;
            block_json(r, &block)
        })
        .await?;
    Ok(Json(json))
}
