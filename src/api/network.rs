//! The network route `GET /v1/peers`, and the helpers the network-facing routes share (public,
//! admin and [`super::deep_fork`]): the network handle or `no_network`, network errors as API
//! errors, peer ids from paths.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};

pub(super) fn network(state: &AppState) -> Result<&crate::p2p::NetworkHandle, ApiError> {
    state.network.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_network", "this node runs without networking")
    })
}

pub(super) fn net_error(e: crate::p2p::NetworkError) -> ApiError {
    match e {
        crate::p2p::NetworkError::Refused(m) => ApiError::bad_request("refused", m),
        other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "network_stopped", other.to_string()),
    }
}

pub(super) fn parse_peer(s: &str) -> Result<crate::p2p::PeerId, ApiError> {
    s.parse().map_err(|e| ApiError::bad_request("invalid_peer_id", format!("{s:?} is not a peer id: {e}")))
}

/// Connected peers.
#[utoipa::path(
    get,
    path = "/v1/peers",
    tag = "network",
    responses(
        (status = 200, description = "Connected peers.", body = Vec<PeerInfoSchema>),
        (status = 503, description = "`no_network`: the node runs without networking; `network_stopped`: the network task is gone.", body = ErrorBody),
    )
)]
pub(super) async fn peers(State(state): State<AppState>) -> ApiResult<Vec<crate::p2p::PeerInfo>> {
    Ok(Json(network(&state)?.peers().await.map_err(net_error)?))
}

/// The schema of [`crate::p2p::PeerInfo`], which lives in `p2p` (no HTTP there); a test keeps the
/// two in step.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PeerInfo)]
pub(crate) struct PeerInfoSchema {
    /// Peer id.
    peer_id: String,
    /// Addresses (the connection's remote address first).
    addresses: Vec<String>,
    /// `inbound` or `outbound`.
    direction: String,
    /// Score in [-100, 100].
    score: f64,
    /// The peer's agent string from identify.
    client: Option<String>,
    /// Its advertised chain height, if known.
    height: Option<u64>,
}
