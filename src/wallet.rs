//! Keys and the wallet: ed25519 key pairs, key files, and the HTTP client the `wallet` commands use.
//!
//! A key file is JSON `{"address": "vis1...", "secret_key": "<64 hex>"}` written with mode 0600.

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chain::types::{Address, Transaction};

/// An ed25519 key pair.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.address())
    }
}

/// Why a key file cannot be used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Could not read or write the file.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a key file.
    #[error("key file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Refusing to overwrite.
    #[error("{0} already exists; choose another --out or delete it first")]
    Exists(String),
    /// The OS gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    address: Address,
    secret_key: String,
}

impl Keypair {
    /// The key pair whose secret key is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Keypair { signing: SigningKey::from_bytes(seed) }
    }

    /// A fresh key pair from OS randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// The account address (public key).
    pub fn address(&self) -> Address {
        Address(self.signing.verifying_key().to_bytes())
    }

    /// The 32-byte secret key.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// Fills in the transaction's signature.
    pub fn sign_tx(&self, tx: &mut Transaction) {
        tx.signature = self.sign(&tx.signing_bytes());
    }

    /// Writes a key file (mode 0600); refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write;
        let p = path.display().to_string();
        let body = serde_json::to_string_pretty(&KeyFile {
            address: self.address(),
            secret_key: hex::encode(self.secret_bytes()),
        })
        .map_err(|e| KeyError::Invalid { path: p.clone(), message: e.to_string() })?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(p.clone())
            } else {
                KeyError::Io { path: p.clone(), source }
            }
        })?;
        f.write_all(body.as_bytes()).and_then(|_| f.write_all(b"\n")).map_err(|source| KeyError::Io { path: p, source })
    }

    /// Reads a key file and checks that its address matches its secret key.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: p.clone(), source })?;
        let kf: KeyFile =
            serde_json::from_str(&text).map_err(|e| KeyError::Invalid { path: p.clone(), message: e.to_string() })?;
        let bytes = hex::decode(kf.secret_key.trim())
            .map_err(|e| KeyError::Invalid { path: p.clone(), message: format!("secret_key is not hex: {e}") })?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyError::Invalid {
            path: p.clone(),
            message: format!("secret_key must be 32 bytes, got {}", bytes.len()),
        })?;
        let kp = Keypair::from_seed(&seed);
        if kp.address() != kf.address {
            return Err(KeyError::Invalid { path: p, message: "address does not belong to secret_key".into() });
        }
        Ok(kp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let kp = Keypair::generate().unwrap();
        kp.save(&path).unwrap();
        assert_eq!(Keypair::load(&path).unwrap().address(), kp.address());
        assert!(matches!(kp.save(&path), Err(KeyError::Exists(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn tampered_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let kp = Keypair::from_seed(&[1; 32]);
        let other = Keypair::from_seed(&[2; 32]);
        std::fs::write(
            &path,
            format!(r#"{{"address":"{}","secret_key":"{}"}}"#, other.address(), hex::encode(kp.secret_bytes())),
        )
        .unwrap();
        assert!(matches!(Keypair::load(&path), Err(KeyError::Invalid { .. })));
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
    /// The answer was not what the API documents.
    #[error("unexpected answer from {url}: {message}")]
    Protocol {
        /// The URL called.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// A blocking client of a node's HTTP API (used by the `wallet` commands and the tests).
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build();
        Client { base: base.trim_end_matches('/').to_string(), agent: config.into() }
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
        let res = self.agent.get(&url).call();
        Self::finish(url, res)
    }

    /// POSTs JSON to `path` and decodes the JSON answer.
    pub fn post<B: Serialize, T: serde::de::DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let url = format!("{}{}", self.base, path);
        let res = self.agent.post(&url).send_json(body);
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
