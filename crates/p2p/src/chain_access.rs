//! The one door from the network into the chain: what the network layer may read and do.
//!
//! The node implements [`ChainAccess`] for its core; the network task, its import workers and the
//! sync server hold an `Arc<dyn ChainAccess>` and nothing else of the node. Every block or
//! transaction that arrives from a peer enters through [`ChainAccess::import_block`],
//! [`ChainAccess::import_batch`] or [`ChainAccess::submit_transactions`]; blocks are served and
//! the peer book and bans persisted through the read side of [`ChainAccess::store`].

use tokio::sync::{broadcast, mpsc};
use vision_mempool::SubmitError;
use vision_mempool::events::Event;
use vision_primitives::bounds::Bounds;
use vision_primitives::consensus::ChainParams;
use vision_primitives::types::{Block, Hash, Transaction};
use vision_state::{Arrival, ImportError, ImportOutcome, Store, Tip};

/// What the network layer needs of the chain, the pool and the node's shared state.
pub trait ChainAccess: Send + Sync + 'static {
    /// The hash of the genesis block: the network's identity (gossip topics, status handshake).
    fn genesis_hash(&self) -> Hash;

    /// The chain's consensus parameters (for checking headers before they are relayed).
    fn params(&self) -> &ChainParams;

    /// The canonical tip.
    fn tip(&self) -> Tip;

    /// How far below the tip a block may fork off and still be imported.
    fn max_reorg_depth(&self) -> u64;

    /// The store, for read snapshots (serving blocks, checking what is known) and the peer book
    /// and bans (which are the network layer's own tables).
    fn store(&self) -> &Store;

    /// Imports a block received from a peer (gossip or sync) and announces what it changed;
    /// `arrival` says whether we asked for it (an unrequested low-work side-chain block is not
    /// stored: `vision_state::Arrival`).
    fn import_block(&self, block: &Block, arrival: Arrival) -> Result<ImportOutcome, ImportError>;

    /// Imports a sync batch as one: returns how many blocks were imported and the first failure.
    fn import_batch(&self, blocks: Vec<Block>) -> (usize, Option<(Box<Block>, ImportError)>);

    /// Admits transactions received from a peer; one result per transaction, in order.
    fn submit_transactions(&self, txs: &[Transaction]) -> Vec<Result<Hash, SubmitError>>;

    /// A new subscription to the node's events (new heads, pooled transactions).
    fn subscribe(&self) -> broadcast::Receiver<Event>;

    /// Attaches the channel of own transactions to gossip (at most `cap` queued); a later call
    /// replaces the earlier one.
    fn attach_gossip_outbox(&self, cap: usize) -> mpsc::Receiver<Transaction>;

    /// Own transactions dropped because the outbox was full, since the last call.
    fn take_gossip_outbox_dropped(&self) -> u64;

    /// Transactions in the pool.
    fn mempool_len(&self) -> usize;

    /// Records how long a block took from its timestamp to reaching us.
    fn observe_block_propagation_delay(&self, seconds: f64);

    /// The resource registry, where the network layer records its queues.
    fn bounds(&self) -> &Bounds;
}
