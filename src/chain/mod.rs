//! The chain layer: data types and their canonical encoding, consensus rules, genesis, block import
//! with fork choice, and the `db check` replay.

pub mod check;
pub mod consensus;
pub mod encoding;
pub mod genesis;
pub mod import;
pub mod metrics;
pub mod types;

pub use import::{Chain, ImportError, ImportOutcome, Tip};
pub use types::{Address, Block, BlockHeader, Hash, Transaction, TxKind};
