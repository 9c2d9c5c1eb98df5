//! ed25519 key pairs and key files.
//!
//! A key file is JSON `{"address": "vis1...", "secret_key": "<64 hex>"}` written with mode 0600.

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::{Address, Transaction};

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

/// A transfer of `amount` from `from` to `to`, signed by `from`.
pub fn signed_transfer(from: &Keypair, to: Address, amount: u128, fee: u128, nonce: u64, chain_id: u32) -> Transaction {
    let mut tx = Transaction {
        chain_id,
        from: from.address(),
        nonce,
        fee,
        kind: crate::types::TxKind::Transfer { to, amount },
        signature: [0; 64],
    };
    from.sign_tx(&mut tx);
    tx
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
