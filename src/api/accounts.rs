//! Account routes: `GET /v1/accounts/{address}` (balance and nonces) and
//! `GET /v1/accounts/{address}/txs` (the account's history, newest first, in pages of at most
//! [`MAX_TXS_PAGE`] with a `before=HEIGHT:INDEX` cursor). A page is one range read of the store's
//! account index, which holds the transactions themselves (`state::schema`, `account-txs-2`): no
//! block is read or decoded, so a page of 500 costs 500 index entries, not 500 block bodies.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody, parse_address};
use super::txs::TxJson;
use super::{AppState, MAX_TXS_PAGE};
use crate::chain::types::Address;

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
pub(super) async fn account(State(state): State<AppState>, Path(address): Path<String>) -> ApiResult<AccountJson> {
    let address = parse_address(&address)?;
    let json = state
        .read(move |core, r| {
            let acc = r.account(&address)?;
            Ok(AccountJson {
                address,
                balance: acc.balance.to_string(),
                nonce: acc.nonce,
                pending_nonce: core.pending_nonce(&address, acc.nonce),
            })
        })
        .await?;
    Ok(Json(json))
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
pub(super) async fn account_txs(
    State(state): State<AppState>,
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
    let out = state
        .read(move |_, r| {
            Ok(r.account_txs(&address, limit, before)?
                .into_iter()
                .map(|(height, index, tx)| AccountTxJson { height, index, tx: TxJson::from(&tx) })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(Json(out))
}
