//! The admin API's routes (served on `--admin-addr` only, behind [`super::auth`]): bans, dials and
//! `reconsider` of a block marked invalid. The deep-fork choice is in [`super::deep_fork`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody, parse_hash};
use super::network::{net_error, network, parse_peer};

/// Current bans (admin address only).
#[utoipa::path(
    get,
    path = "/admin/bans",
    tag = "admin",
    responses(
        (status = 200, description = "Current bans.", body = Vec<BanInfoSchema>),
        (status = 503, description = "`no_network`, `network_stopped`.", body = ErrorBody),
    )
)]
pub(super) async fn admin_bans(State(state): State<AppState>) -> ApiResult<Vec<crate::p2p::BanInfo>> {
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
pub(super) async fn admin_ban(State(state): State<AppState>, Path(peer): Path<String>, body: Bytes) -> ApiResult<Done> {
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
pub(super) async fn admin_unban(State(state): State<AppState>, Path(peer): Path<String>) -> ApiResult<Done> {
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
pub(super) async fn admin_dial(State(state): State<AppState>, body: Bytes) -> ApiResult<Done> {
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
pub(super) async fn admin_reconsider(
    State(state): State<AppState>,
    Path(hash): Path<String>,
) -> ApiResult<ReconsiderJson> {
    let hash = parse_hash(&hash)?;
    let core = state.core.clone();
    let done = tokio::task::spawn_blocking(move || core.reconsider_block(&hash))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
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

/// The schema of [`crate::p2p::BanInfo`]; a test keeps the two in step.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BanInfo)]
pub(crate) struct BanInfoSchema {
    /// Peer id.
    peer_id: String,
    /// When the ban ends (unix ms).
    until_unix_ms: u64,
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
