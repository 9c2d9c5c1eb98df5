//! Deep forks in the API: the `deep_forks` list of `GET /v1/status` and the operator's choice,
//! `POST /admin/chain/deep-forks/keep` (issue #14 item 8).
//!
//! A deep fork is a peer whose chain has more work than ours (proven by its headers) but forks
//! from ours deeper than the reorg window (`--max-reorg-depth`): the network was split for longer
//! than the window. The node never follows such a chain on its own; it disconnects the peer
//! without a penalty and reports it (`vision_p2p::service::deep_fork`). The operator then either
//! keeps our chain (this endpoint: the reports are dropped and those peers refused for a day), or
//! follows the other chain by restarting once with a window deeper than the reported `depth`
//! (docs/runbook.md, "A fork deeper than the reorg window").

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::network::{network, parse_peer};

/// A peer on the other side of a fork deeper than our reorg window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeepForkJson {
    /// The peer.
    pub peer: String,
    /// Height of the last block both chains share.
    pub fork_height: u64,
    /// Blocks of ours above the fork point when it was found: following their chain is a
    /// reorganisation this deep.
    pub depth: u64,
    /// Our reorg window (`--max-reorg-depth`).
    pub window: u64,
    /// Our tip height when it was found.
    pub our_height: u64,
    /// Our total work then (decimal).
    pub our_work: String,
    /// Their chain's height, as far as its headers were checked.
    pub their_height: u64,
    /// The total work their headers proved (decimal).
    pub their_work: String,
    /// When it was found (unix ms).
    pub since_unix_ms: u64,
}

impl From<crate::p2p::service::deep_fork::DeepFork> for DeepForkJson {
    fn from(f: crate::p2p::service::deep_fork::DeepFork) -> Self {
        DeepForkJson {
            peer: f.peer,
            fork_height: f.fork_height,
            depth: f.depth,
            window: f.window,
            our_height: f.our_height,
            our_work: f.our_work,
            their_height: f.their_height,
            their_work: f.their_work,
            since_unix_ms: f.since_unix_ms,
        }
    }
}

/// The deep forks reported now (empty without networking).
pub fn reported(state: &AppState) -> Vec<DeepForkJson> {
    state
        .network
        .as_ref()
        .map(|n| n.info().deep_forks.reported().into_iter().map(DeepForkJson::from).collect())
        .unwrap_or_default()
}

/// `POST /admin/chain/deep-forks/keep` body (all of it optional).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepRequest {
    /// Keep our chain against this peer only (default: against every deep fork reported).
    #[schema(pattern = r"^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$")]
    pub peer: Option<String>,
}

/// `POST /admin/chain/deep-forks/keep` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeepJson {
    /// The deep forks no longer reported.
    pub kept: Vec<DeepForkJson>,
}

/// Keeps our chain against deep forks (admin address only): the forks reported in `GET
/// /v1/status` (`deep_forks`) are no longer reported, and their peers stay disconnected for a day.
/// To follow the other chain instead, restart once with `--max-reorg-depth` above the reported
/// `depth` (docs/runbook.md).
#[utoipa::path(
    post,
    path = "/admin/chain/deep-forks/keep",
    tag = "admin",
    request_body(content = KeepRequest, description = "Optional: `{\"peer\": \"12D3Koo...\"}` for one peer; an empty body or `{}` for every deep fork."),
    responses(
        (status = 200, description = "The deep forks no longer reported (possibly none).", body = KeepJson),
        (status = 400, description = "`invalid_json`, `invalid_peer_id`.", body = ErrorBody),
        (status = 404, description = "`no_deep_fork`: that peer is not reported as a deep fork.", body = ErrorBody),
        (status = 503, description = "`no_network`: the node runs without networking.", body = ErrorBody),
    )
)]
pub async fn keep(State(state): State<AppState>, body: Bytes) -> ApiResult<KeepJson> {
    let req: KeepRequest = if body.iter().all(u8::is_ascii_whitespace) {
        KeepRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "invalid_json",
                format!("body must be empty, {{}} or {{\"peer\": \"<peer id>\"}}: {e}"),
            )
        })?
    };
    let peer = req.peer.as_deref().map(parse_peer).transpose()?;
    let registry = &network(&state)?.info().deep_forks;
    let kept: Vec<DeepForkJson> = registry.keep(peer.as_ref(), Instant::now()).into_iter().map(Into::into).collect();
    if let Some(p) = peer
        && kept.is_empty()
    {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "no_deep_fork",
            format!("peer {p} is not reported as a deep fork; GET /v1/status lists them in deep_forks"),
        ));
    }
    for f in &kept {
        tracing::info!(peer = %f.peer, fork_height = f.fork_height, depth = f.depth, "deep fork: the operator keeps our chain");
    }
    Ok(Json(KeepJson { kept }))
}
