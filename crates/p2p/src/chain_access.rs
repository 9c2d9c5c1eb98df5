//! The one door from the network into the chain: what the network layer may read and do.
//!
//! The node implements [`ChainAccess`] for its core; the network task, its transaction worker and
//! the sync server hold an `Arc<dyn ChainAccess>` and nothing else of the node. Every block that
//! arrives from a peer is handed to the node's importer with [`ImportQueue::queue_import`] (one
//! bounded queue and one thread, owned by the node: the network keeps no block worker of its
//! own, so a gossiped block goes from gossip validation straight to the importer); every
//! transaction enters through [`ChainAccess::submit_transactions`]. Blocks are served and the
//! peer book and bans persisted through the read side of [`ChainAccess::store`].

use tokio::sync::{broadcast, mpsc};
use vision_mempool::SubmitError;
use vision_mempool::events::Event;
use vision_primitives::bounds::Bounds;
use vision_primitives::consensus::ChainParams;
use vision_primitives::types::{Block, Hash, Transaction};
use vision_state::{ImportError, ImportOutcome, Store, Tip};

/// Blocks for the node's importer, and how to import them.
#[derive(Debug)]
pub struct ImportWork {
    /// The blocks.
    pub blocks: Vec<Block>,
    /// How.
    pub mode: ImportMode,
}

/// How the importer takes the blocks of an [`ImportWork`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Each block on its own, held to the side-branch margin (`vision_state::Arrival::Unrequested`):
    /// gossip, orphans whose parent arrived, an orphan's ancestors fetched by hash. Nobody proved
    /// their work before they reached us.
    Unrequested,
    /// A range-sync batch, whose headers proved their work first (`Arrival::Requested`):
    /// signatures verified as one batch, imported in order, stopping at the first failure, made
    /// durable once at the end.
    SyncBatch,
}

/// What the importer did: each block it tried and its result, in order (a sync batch ends at its
/// first failure; the blocks after it were not tried and are not listed).
pub type Imported = Vec<(Box<Block>, Result<ImportOutcome, ImportError>)>;

/// Called by the importer thread with the result of one [`ImportWork`] (never called when the
/// node shuts down with the work still queued: the work and the reply are dropped).
pub type ImportReply = Box<dyn FnOnce(Imported) + Send>;

/// Where the network hands blocks over: the node's import queue. A trait of its own so that the
/// node implements it next to the queue and the thread (`src/node/importer.rs`), not in the file
/// that implements the rest of [`ChainAccess`].
pub trait ImportQueue {
    /// Queues blocks received from a peer for the node's importer, which imports them (and
    /// announces what they changed) on its own thread and then calls `reply`. Never waits: when
    /// the importer's queue is full, or the node has no importer (not networked, shutting down),
    /// the work is handed back and `reply` dropped.
    fn queue_import(&self, work: ImportWork, reply: ImportReply) -> Result<(), ImportWork>;
}

/// What the network layer needs of the chain, the pool and the node's shared state.
pub trait ChainAccess: ImportQueue + Send + Sync + 'static {
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
