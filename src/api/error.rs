//! Errors of the HTTP APIs: [`ApiError`] and its JSON body (`{"error": {"code", "message"}}`),
//! the mapping of node errors to statuses and stable codes (the table in `docs/api.md`), the
//! parsers of path parameters, and `json_errors`, which gives axum's own error responses the
//! same body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES};
use crate::chain::consensus::TxError;
use crate::chain::types::{Address, Hash};
use crate::mempool::{MempoolError, SubmitError};
use crate::state::StoreError;

/// Most bytes of an axum-generated error body (a rejection message) copied into the error JSON.
const MAX_REJECTION_BYTES: usize = 4 * 1024;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    /// Seconds for a `Retry-After` header (limits and timeouts).
    pub(super) retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }
    pub(super) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    /// Adds `Retry-After: secs` (at least 1) to the answer.
    pub(super) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
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
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
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

pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;

pub(super) fn parse_address(s: &str) -> Result<Address, ApiError> {
    s.parse().map_err(|e: crate::chain::types::AddressError| ApiError::bad_request("invalid_address", e.to_string()))
}

pub(super) fn parse_hash(s: &str) -> Result<Hash, ApiError> {
    s.parse().map_err(|e: crate::chain::types::ParseHashError| ApiError::bad_request("invalid_hash", e.to_string()))
}

/// A path that exists, with a method it does not serve: 405 (axum adds the `Allow` header).
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this path; the Allow header lists the allowed ones",
    )
}

/// Turns the error responses axum produces on its own (405 wrong method, 413 body too large, a
/// path that does not decode) into the error JSON every other error uses, so clients parse one
/// shape. Responses that already are JSON, and non-errors, pass unchanged.
pub(super) async fn json_errors(res: Response) -> Response {
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
