//! The wallet's HTTP client: the calls the `wallet` commands make to a node's API.
//!
//! The node is not trusted with what gets signed. [`Client::send`] signs for the network of the
//! wallet's own configuration ([`Expected`]: the chain id and genesis hash of its `--genesis`
//! file, or of the embedded devnet), and before it signs it asks the node's status and refuses a
//! node that reports another chain id or genesis hash, or an entry fee above the wallet's
//! `--max-fee` (default [`DEFAULT_MAX_FEE_MULTIPLE`] x the genesis minimum fee). A node that lies,
//! or a man in the middle of a plain-HTTP connection, can then make the wallet refuse, but not pay
//! a fee it did not accept or sign a transfer valid on another network.

use serde::Serialize;
use thiserror::Error;

use crate::chain::genesis::Genesis;
use crate::chain::types::{Address, Hash, Transaction};
pub use vision_primitives::keys::{KeyError, Keypair};

/// Default `--max-fee` of `wallet send`: this many times the minimum fee of the wallet's genesis
/// (10,000 base units on the devnet). Enough for a pool that is filling up; far below what a lying
/// node could otherwise take.
pub const DEFAULT_MAX_FEE_MULTIPLE: u128 = 10;

/// The network a wallet signs for and the most it pays, from its own configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Chain id the node must report, and the transaction carries.
    pub chain_id: u32,
    /// Genesis hash the node must report.
    pub genesis_hash: Hash,
    /// Highest fee signed (base units).
    pub max_fee: u128,
    /// The genesis minimum fee (for the messages).
    pub min_fee: u128,
}

impl Expected {
    /// The network of `genesis`, with the default fee cap ([`DEFAULT_MAX_FEE_MULTIPLE`] x its
    /// minimum fee).
    pub fn of(genesis: &Genesis) -> Self {
        Expected {
            chain_id: genesis.chain_id,
            genesis_hash: genesis.hash(),
            max_fee: genesis.min_fee.saturating_mul(DEFAULT_MAX_FEE_MULTIPLE),
            min_fee: genesis.min_fee,
        }
    }

    /// The same network with another fee cap.
    pub fn with_max_fee(self, max_fee: u128) -> Self {
        Expected { max_fee, ..self }
    }
}

/// Why a call to a node's API failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No answer (connection refused, timeout).
    #[error("cannot reach the node at {url}: {message} (is it running? is --api right?)")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What failed.
        message: String,
    },
    /// The node answered with an error body.
    #[error("node refused ({status} {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// The node's message.
        message: String,
    },
    /// The admin token cannot be read.
    #[error("{message}")]
    Token {
        /// What is wrong and what to do.
        message: String,
    },
    /// The node runs another network than the wallet's configuration: nothing was signed.
    #[error(
        "the node at {url} reports {what} {node}, but this wallet signs for {what} {ours} (the network of its \
         --genesis file, the embedded devnet without one): refusing to sign for another network"
    )]
    WrongNetwork {
        /// The node's API.
        url: String,
        /// `chain id` or `genesis hash`.
        what: &'static str,
        /// What the node reports.
        node: String,
        /// What the wallet expects.
        ours: String,
    },
    /// The fee is above the wallet's cap: nothing was signed.
    #[error(
        "{origin} is {fee}, above --max-fee {max_fee} (default: {DEFAULT_MAX_FEE_MULTIPLE} x the genesis minimum \
         fee of {min_fee}): refusing to sign; pass a larger --max-fee to pay it"
    )]
    FeeAboveCap {
        /// Where the fee came from (`the node's entry fee`, `--fee`).
        origin: &'static str,
        /// The fee.
        fee: u128,
        /// The cap.
        max_fee: u128,
        /// The genesis minimum.
        min_fee: u128,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// The URL called.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// A blocking client of a node's HTTP API (used by the `wallet` commands and the tests), or of
/// its admin API with [`Client::with_bearer`] (`vision-node admin`).
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// `Authorization` header value (`Bearer <token>`), for the admin API.
    authorization: Option<vision_primitives::keys::Zeroizing<String>>,
}

impl Client {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base: &str) -> Self {
        Self::with_timeout(base, std::time::Duration::from_secs(30))
    }

    /// A client whose every call gives up after `timeout`.
    pub fn with_timeout(base: &str, timeout: std::time::Duration) -> Self {
        let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build();
        Client { base: base.trim_end_matches('/').to_string(), agent: config.into(), authorization: None }
    }

    /// This client, sending `Authorization: Bearer <token>` with every call (the admin API's key:
    /// see [`crate::api::auth::read_client_token`]).
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.authorization = Some(vision_primitives::keys::Zeroizing::new(format!("Bearer {}", token.trim())));
        self
    }

    /// A client of the admin API at `base`, with the token of `token_file` if given, else of the
    /// cookie in `data_dir` (the error names the file and how to give another).
    pub fn admin(
        base: &str,
        token_file: Option<&std::path::Path>,
        data_dir: &std::path::Path,
    ) -> Result<Self, ClientError> {
        let token = crate::api::auth::read_client_token(token_file, data_dir)
            .map_err(|e| ClientError::Token { message: e.to_string() })?;
        Ok(Self::new(base).with_bearer(&token))
    }

    fn authorize<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => req.header("Authorization", value.as_str()),
            None => req,
        }
    }

    fn finish<T: serde::de::DeserializeOwned>(
        url: String,
        res: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let res = res.map_err(|e| ClientError::Unreachable { url: url.clone(), message: e.to_string() })?;
        let status = res.status().as_u16();
        let text = res
            .into_body()
            .read_to_string()
            .map_err(|e| ClientError::Protocol { url: url.clone(), message: e.to_string() })?;
        if status >= 300 {
            return Err(match serde_json::from_str::<crate::api::ErrorBody>(&text) {
                Ok(b) => ClientError::Api { status, code: b.error.code, message: b.error.message },
                Err(_) => ClientError::Protocol { url, message: format!("status {status}: {text}") },
            });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Protocol { url, message: e.to_string() })
    }

    /// GETs `path` and decodes the JSON answer.
    pub fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{}", self.base, path);
        let res = self.authorize(self.agent.get(&url)).call();
        Self::finish(url, res)
    }

    /// DELETEs `path` and decodes the JSON answer.
    pub fn delete<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = format!("{}{}", self.base, path);
        let res = self.authorize(self.agent.delete(&url)).call();
        Self::finish(url, res)
    }

    /// POSTs JSON to `path` and decodes the JSON answer.
    pub fn post<B: Serialize, T: serde::de::DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let url = format!("{}{}", self.base, path);
        let res = self.authorize(self.agent.post(&url)).send_json(body);
        Self::finish(url, res)
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<crate::api::Status, ClientError> {
        self.get("/v1/status")
    }

    /// `GET /v1/accounts/{address}`.
    pub fn account(&self, address: &Address) -> Result<crate::api::AccountJson, ClientError> {
        self.get(&format!("/v1/accounts/{address}"))
    }

    /// `POST /v1/txs`.
    pub fn submit(&self, tx: &Transaction) -> Result<crate::chain::types::Hash, ClientError> {
        let r: crate::api::Submitted = self.post("/v1/txs", &crate::api::SubmitTx { tx: hex::encode(tx.encode()) })?;
        Ok(r.hash)
    }

    /// `GET /v1/txs/{id}`.
    pub fn tx(&self, id: &crate::chain::types::Hash) -> Result<crate::api::TxStatus, ClientError> {
        self.get(&format!("/v1/txs/{id}"))
    }

    /// Builds, signs and submits a transfer with the sender's next nonce (counting its pooled
    /// transactions), for the network `expected` names. `fee: None` pays the node's current entry
    /// fee. Before signing, the node's status must report `expected`'s chain id and genesis hash,
    /// and the fee must be at most `expected.max_fee`; otherwise nothing is signed or sent.
    /// Returns the transaction.
    pub fn send(
        &self,
        key: &Keypair,
        to: Address,
        amount: u128,
        fee: Option<u128>,
        expected: &Expected,
    ) -> Result<Transaction, ClientError> {
        let status = self.status()?;
        if status.chain_id != expected.chain_id {
            return Err(ClientError::WrongNetwork {
                url: self.base.clone(),
                what: "chain id",
                node: status.chain_id.to_string(),
                ours: expected.chain_id.to_string(),
            });
        }
        if status.genesis_hash != expected.genesis_hash {
            return Err(ClientError::WrongNetwork {
                url: self.base.clone(),
                what: "genesis hash",
                node: status.genesis_hash.to_string(),
                ours: expected.genesis_hash.to_string(),
            });
        }
        let (fee, origin) = match fee {
            Some(f) => (f, "the fee given with --fee"),
            None => (
                status.min_fee_to_enter.parse().map_err(|_| ClientError::Protocol {
                    url: self.base.clone(),
                    message: format!("min_fee_to_enter {:?} is not a number", status.min_fee_to_enter),
                })?,
                "the fee the node asks (its entry fee now)",
            ),
        };
        if fee > expected.max_fee {
            return Err(ClientError::FeeAboveCap { origin, fee, max_fee: expected.max_fee, min_fee: expected.min_fee });
        }
        let acct = self.account(&key.address())?;
        let mut tx = Transaction {
            chain_id: expected.chain_id,
            from: key.address(),
            nonce: acct.pending_nonce,
            fee,
            kind: crate::chain::types::TxKind::Transfer { to, amount },
            signature: [0; 64],
        };
        key.sign_tx(&mut tx, &expected.genesis_hash);
        self.submit(&tx)?;
        Ok(tx)
    }

    /// True when the API is reached over plain HTTP on a host other than this machine (anything on
    /// the path can read and change the answers; [`Client::send`]'s checks still hold).
    pub fn is_remote_plain_http(&self) -> bool {
        let Some(rest) = self.base.strip_prefix("http://") else { return false };
        let host = rest.split('/').next().unwrap_or("");
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        !(host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_to_another_host_is_noticed() {
        for local in ["http://127.0.0.1:7070", "http://localhost:7070/", "http://[::1]:7070", "https://node.example"] {
            assert!(!Client::new(local).is_remote_plain_http(), "{local}");
        }
        for remote in ["http://10.0.0.2:7070", "http://node.example", "http://[2001:db8::1]:7070"] {
            assert!(Client::new(remote).is_remote_plain_http(), "{remote}");
        }
    }

    #[test]
    fn the_default_cap_is_a_multiple_of_the_genesis_minimum() {
        let e = Expected::of(&Genesis::devnet());
        assert_eq!((e.chain_id, e.max_fee, e.min_fee), (1337, 10_000, 1_000));
        assert_eq!(e.genesis_hash, Genesis::devnet().hash());
        assert_eq!(e.with_max_fee(5).max_fee, 5);
    }
}
