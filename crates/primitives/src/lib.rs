//! Vision Node primitives: everything a validating node needs to agree on, and nothing that does
//! I/O beyond reading a genesis or key file.
//!
//! - [`types`] and [`encoding`]: accounts, transactions, blocks and their canonical encoding;
//! - [`keys`]: ed25519 key pairs and key files;
//! - [`verify`]: the signature rule and the parallel (rayon) batch verifier;
//! - [`consensus`]: chain parameters, header and body rules;
//! - [`retarget`]: the difficulty retarget (LWMA) and the simulation that chose it;
//! - [`genesis`]: the genesis block and the embedded devnet;
//! - [`lthash`]: the lattice hash behind the state root;
//! - [`errors`]: [`errors::PeerAction`], the vocabulary every layer classifies peer errors with;
//! - [`bounds`]: the open registry of resource caps that each layer fills with its own;
//! - [`util`]: small serde and PRNG helpers.
//!
//! This crate knows no storage, network, HTTP or async runtime; `tests/layers.rs` keeps it so.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod bounds;
pub mod consensus;
pub mod encoding;
pub mod errors;
pub mod genesis;
pub mod keys;
pub mod lthash;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod retarget;
pub mod types;
pub mod util;
pub mod verify;

pub use types::{Address, Block, BlockHeader, Hash, Transaction, TxKind};
