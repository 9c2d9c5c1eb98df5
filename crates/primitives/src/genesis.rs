//! Genesis: the parameters and allocations a network starts from, the embedded devnet default, and
//! the genesis file format (`vision-node genesis new` writes one).
//!
//! The genesis block has height 0, no transactions, difficulty = the initial difficulty and, as its
//! parent hash, `BLAKE3("vision/genesis/v1" || params)` where `params` is the canonical encoding of
//! the parameters below. So the genesis hash commits to every parameter and allocation, and it
//! identifies the network (gossip topics and the sync handshake carry it).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::consensus::ChainParams;
use super::encoding::Writer;
use super::types::{Address, Block, BlockHeader, ENCODING_VERSION, Hash};
use crate::keys::Keypair;
use crate::lthash::LtHash;

/// Base units per VIS.
pub const UNITS_PER_VIS: u128 = 1_000_000_000;
/// Number of published dev accounts funded by the devnet genesis.
pub const DEV_ACCOUNTS: u8 = 4;
/// Balance of each dev account on the devnet.
pub const DEV_BALANCE: u128 = 1_000_000_000 * UNITS_PER_VIS;

/// Why a genesis file cannot be used.
#[derive(Debug, Error)]
pub enum GenesisError {
    /// Could not read or write the file.
    #[error("genesis file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not valid TOML or missing fields.
    #[error("genesis file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A value out of range.
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

/// One funded account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The account.
    pub address: Address,
    /// Base units; a decimal string in the file (TOML integers stop at 2^63).
    #[serde(with = "crate::util::u128_string")]
    pub balance: u128,
}

/// A network's genesis, as written in a genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id transactions must carry.
    pub chain_id: u32,
    /// Timestamp of the genesis block (ms since the epoch).
    pub timestamp_ms: u64,
    /// Difficulty of the first block after genesis.
    pub initial_difficulty: u64,
    /// Block time the difficulty retarget aims at (ms).
    pub target_block_time_ms: u64,
    /// New base units per block.
    #[serde(with = "crate::util::u128_string")]
    pub block_reward: u128,
    /// Smallest fee per transaction.
    #[serde(with = "crate::util::u128_string")]
    pub min_fee: u128,
    /// Funded accounts.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
}

/// The published dev key `i` (0-based): secret = `BLAKE3("vision devnet dev account" || i)`.
/// These keys are public; never use them on a network with value.
pub fn dev_keypair(i: u8) -> Keypair {
    let mut h = blake3::Hasher::new();
    h.update(b"vision devnet dev account");
    h.update(&[i]);
    Keypair::from_seed(h.finalize().as_bytes())
}

/// Which published dev key (`0..DEV_ACCOUNTS`) `address` is, if any. Anything paid to these
/// addresses can be spent by anyone who reads this source: a node whose rewards go to one warns.
pub fn dev_key_index(address: &Address) -> Option<u8> {
    (0..DEV_ACCOUNTS).find(|i| dev_keypair(*i).address() == *address)
}

impl Genesis {
    /// The embedded devnet: chain id 1337, 1 s blocks, low difficulty, four dev accounts funded.
    pub fn devnet() -> Self {
        Genesis {
            chain_id: 1337,
            timestamp_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            initial_difficulty: 1 << 16,
            target_block_time_ms: 1_000,
            block_reward: 50 * UNITS_PER_VIS,
            min_fee: 1_000,
            allocations: (0..DEV_ACCOUNTS)
                .map(|i| Allocation { address: dev_keypair(i).address(), balance: DEV_BALANCE })
                .collect(),
        }
    }

    /// Checks ranges, duplicate allocations and total supply.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.target_block_time_ms == 0 {
            return Err(GenesisError::Invalid("target_block_time_ms must be at least 1".into()));
        }
        if self.initial_difficulty == 0 {
            return Err(GenesisError::Invalid("initial_difficulty must be at least 1".into()));
        }
        let mut seen = BTreeMap::new();
        let mut supply: u128 = 0;
        for a in &self.allocations {
            if seen.insert(a.address, ()).is_some() {
                return Err(GenesisError::Invalid(format!("address {} is allocated twice", a.address)));
            }
            supply = supply
                .checked_add(a.balance)
                .ok_or_else(|| GenesisError::Invalid("total allocation overflows u128".into()))?;
        }
        Ok(())
    }

    /// Canonical encoding of the parameters (allocations sorted by address).
    pub fn encode_params(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(ENCODING_VERSION);
        w.u32(self.chain_id);
        w.u64(self.timestamp_ms);
        w.u64(self.initial_difficulty);
        w.u64(self.target_block_time_ms);
        w.u128(self.block_reward);
        w.u128(self.min_fee);
        let mut allocs: Vec<&Allocation> = self.allocations.iter().collect();
        allocs.sort_by_key(|a| a.address);
        w.u32(allocs.len() as u32);
        for a in allocs {
            w.bytes(a.address.as_bytes());
            w.u128(a.balance);
        }
        w.finish()
    }

    /// The state commitment of the allocations.
    pub fn lthash(&self) -> LtHash {
        let mut lt = LtHash::default();
        for a in &self.allocations {
            lt.insert(&a.address, a.balance, 0);
        }
        lt
    }

    /// The genesis block.
    pub fn block(&self) -> Block {
        let mut h = blake3::Hasher::new();
        h.update(b"vision/genesis/v1");
        h.update(&self.encode_params());
        Block {
            header: BlockHeader {
                version: ENCODING_VERSION,
                height: 0,
                parent: Hash(*h.finalize().as_bytes()),
                timestamp_ms: self.timestamp_ms,
                difficulty: self.initial_difficulty,
                miner: Address::default(),
                tx_root: Hash::ZERO,
                state_root: self.lthash().root(),
                nonce: 0,
            },
            transactions: Vec::new(),
        }
    }

    /// The genesis hash: the network's identity.
    pub fn hash(&self) -> Hash {
        self.block().hash()
    }

    /// The consensus parameters.
    pub fn params(&self) -> ChainParams {
        ChainParams {
            chain_id: self.chain_id,
            target_block_time_ms: self.target_block_time_ms,
            initial_difficulty: self.initial_difficulty,
            block_reward: self.block_reward,
            min_fee: self.min_fee,
            genesis_hash: self.hash(),
        }
    }

    /// True when this is the embedded devnet (by hash: a genesis file with the same parameters is
    /// the devnet too). `run` mines by default only there.
    pub fn is_devnet(&self) -> bool {
        self.hash() == Genesis::devnet().hash()
    }

    /// Reads and validates a genesis file.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| GenesisError::Io { path: path.display().to_string(), source })?;
        let g: Genesis = toml::from_str(&text)
            .map_err(|e| GenesisError::Parse { path: path.display().to_string(), message: e.to_string() })?;
        g.validate()?;
        Ok(g)
    }

    /// Writes the genesis file.
    pub fn save(&self, path: &Path) -> Result<(), GenesisError> {
        self.validate()?;
        let text = toml::to_string_pretty(self).map_err(|e| GenesisError::Invalid(e.to_string()))?;
        std::fs::write(path, text).map_err(|source| GenesisError::Io { path: path.display().to_string(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_keeps_the_hash() {
        let g = Genesis::devnet();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("genesis.toml");
        g.save(&path).unwrap();
        let back = Genesis::load(&path).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.hash(), g.hash());
    }

    #[test]
    fn every_parameter_changes_the_hash() {
        let g = Genesis::devnet();
        let mut other = g.clone();
        other.min_fee += 1;
        assert_ne!(other.hash(), g.hash());
        let mut other = g.clone();
        other.allocations.pop();
        assert_ne!(other.hash(), g.hash());
        // Allocation order does not matter.
        let mut other = g.clone();
        other.allocations.reverse();
        assert_eq!(other.hash(), g.hash());
    }

    #[test]
    fn dev_keys_are_recognised() {
        for i in 0..DEV_ACCOUNTS {
            assert_eq!(dev_key_index(&dev_keypair(i).address()), Some(i));
        }
        assert_eq!(dev_key_index(&Address([7; 32])), None);
        assert!(Genesis::devnet().is_devnet());
        let mut other = Genesis::devnet();
        other.chain_id = 1;
        assert!(!other.is_devnet());
    }

    #[test]
    fn invalid_genesis_is_refused() {
        let mut g = Genesis::devnet();
        g.allocations.push(g.allocations[0].clone());
        assert!(matches!(g.validate(), Err(GenesisError::Invalid(_))));
        let mut g = Genesis::devnet();
        g.target_block_time_ms = 0;
        assert!(g.validate().is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "chain_id = \"x\"").unwrap();
        assert!(matches!(Genesis::load(&path), Err(GenesisError::Parse { .. })));
    }
}
