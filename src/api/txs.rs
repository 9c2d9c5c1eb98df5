//! Transaction routes: `POST /v1/txs` and `POST /v1/txs/batch` (submissions, through the node's
//! one door on the blocking pool) and `GET /v1/txs/{id}` (pooled, or where it is included: one
//! transaction read from its block's body, not the whole block).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody, ErrorDetail, parse_hash};
use super::{AppState, MAX_BATCH_TXS};
use crate::chain::types::{Address, Hash, Transaction};
use crate::state::StoreError;

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
pub(super) async fn submit(
    State(AppState { core, .. }): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let req: SubmitTx = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body must be {{\"tx\": \"<hex>\"}}: {e}")))?;
    let tx = decode_hex_tx(&req.tx, "tx")?;
    let hash = tokio::task::spawn_blocking(move || core.submit_transaction(tx))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
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
pub(super) async fn submit_batch(
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
        .map_err(|e| ApiError::internal(e.to_string()))?;
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
pub(super) async fn tx_status(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<TxStatus> {
    let id = parse_hash(&id)?;
    if let Some(tx) = state.core.pooled(&id) {
        return Ok(Json(TxStatus {
            status: "pending".into(),
            block_hash: None,
            height: None,
            index: None,
            tx: (&tx).into(),
        }));
    }
    let json = state
        .read(move |_, r| {
            let (block_hash, index) =
                r.tx_location(&id)?.ok_or_else(|| ApiError::not_found(format!("transaction {id} not found")))?;
            let meta = r
                .block_meta(&block_hash)?
                .ok_or_else(|| ApiError::not_found(format!("block {block_hash} not found")))?;
            let tx = r.body_tx(&block_hash, index)?.ok_or_else(|| {
                ApiError::from(StoreError::Corrupt(format!("tx index points past block {block_hash}")))
            })?;
            Ok(TxStatus {
                status: "included".into(),
                block_hash: Some(block_hash),
                height: Some(meta.header.height),
                index: Some(index),
                tx: (&tx).into(),
            })
        })
        .await?;
    Ok(Json(json))
}
