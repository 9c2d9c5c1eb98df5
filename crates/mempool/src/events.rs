//! What happened to the chain or the pool, as the node announces it to its subscribers (the
//! network task, the WebSocket stream), and where blocks and transactions came from.

use std::sync::Arc;

use vision_primitives::types::{Block, Hash, Transaction};

/// Where a block came from (for logs and metrics; peers are identified by the network layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSource {
    /// Our own miner.
    Miner,
    /// Submitted through the API.
    Api,
    /// Received from the network.
    Network,
}

/// Something that happened to the chain or the pool.
#[derive(Debug, Clone)]
pub enum Event {
    /// The canonical tip changed.
    NewHead {
        /// New tip hash.
        hash: Hash,
        /// New tip height.
        height: u64,
        /// Blocks reverted to get there (0 for a plain extension).
        reverted: usize,
        /// The blocks applied, oldest first.
        applied: Arc<Vec<Block>>,
        /// Where the new tip block came from.
        source: BlockSource,
    },
    /// A transaction entered the pool.
    TxPooled {
        /// The transaction.
        tx: Transaction,
        /// Where it came from.
        source: TxSource,
    },
}

/// Where a transaction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxSource {
    /// Submitted through the API (the network layer gossips these).
    Api,
    /// Received from the network (already gossiped).
    Network,
    /// Returned to the pool by a reorganisation.
    Reorg,
}
