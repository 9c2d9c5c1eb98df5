//! The wallet's HTTP client: the calls the `wallet` commands make to a node's API.

use serde::Serialize;
use thiserror::Error;

use crate::chain::types::{Address, Transaction};
pub use vision_primitives::keys::{KeyError, Keypair};

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
    /// transactions). `fee: None` pays the node's current entry fee. Returns the transaction.
    pub fn send(
        &self,
        key: &Keypair,
        to: Address,
        amount: u128,
        fee: Option<u128>,
    ) -> Result<Transaction, ClientError> {
        let status = self.status()?;
        let fee = match fee {
            Some(f) => f,
            None => status.min_fee_to_enter.parse().map_err(|_| ClientError::Protocol {
                url: self.base.clone(),
                message: format!("min_fee_to_enter {:?} is not a number", status.min_fee_to_enter),
            })?,
        };
        let acct = self.account(&key.address())?;
        let mut tx = Transaction {
            chain_id: status.chain_id,
            from: key.address(),
            nonce: acct.pending_nonce,
            fee,
            kind: crate::chain::types::TxKind::Transfer { to, amount },
            signature: [0; 64],
        };
        key.sign_tx(&mut tx);
        self.submit(&tx)?;
        Ok(tx)
    }
}
