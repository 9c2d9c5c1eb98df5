//! The chain layer as the node sees it: the types, encoding, consensus rules and genesis of
//! `vision-primitives`, block import and the `db check` replay of `vision-state`, re-exported
//! under one path, and the chain metrics the node registers.

pub mod metrics;

pub use vision_primitives::types::{Address, Block, BlockHeader, Hash, Transaction, TxKind};
pub use vision_primitives::{consensus, encoding, genesis, types};
pub use vision_state::{Chain, ImportError, ImportOutcome, Tip, check, import};
