//! The import workers: two threads (`net-blocks`, `net-txs`) that take chain work off the network
//! loop through bounded queues and send the results back. Owned by the loop: at shutdown they take
//! no new job (the node's cancellation token), the loop closes their queues and joins them before
//! it returns, so a node that has shut down runs no worker (`tests/it/shutdown.rs`).

use std::thread::JoinHandle;

use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::{InboundRequestId, ResponseChannel};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vision_primitives::errors::PeerAction;
use vision_primitives::types::{Block, Hash, Transaction};
use vision_state::{Arrival, ImportError, ImportOutcome};

use super::charge::Route;
use crate::NetworkError;
use crate::chain_access::ChainAccess;
use crate::sync::Response;

/// Blocks waiting in the block worker's queue.
pub const BLOCK_QUEUE_CAP: usize = 1024;
/// Transaction batches waiting in the tx worker's queue.
pub const TX_QUEUE_CAP: usize = 256;
/// Results waiting to be handled by the loop.
pub const RESULT_QUEUE_CAP: usize = 2048;

/// Chain work for a worker.
pub enum Job {
    /// One block from gossip, or an orphan whose parent arrived.
    Block {
        /// The block.
        block: Box<Block>,
        /// How it reached us: who pays if it is bad (`charge.rs`).
        route: Route<PeerId>,
    },
    /// A sync batch, imported in order, stopping at the first failure.
    Batch {
        /// The blocks.
        blocks: Vec<Block>,
        /// The peer that served them.
        from: PeerId,
        /// Height of the first.
        start: u64,
    },
    /// Blocks fetched by hash for orphans.
    Fetched {
        /// The blocks.
        blocks: Vec<Block>,
        /// The peer that served them.
        from: PeerId,
    },
    /// A gossiped transaction batch.
    Txs {
        /// The transactions.
        txs: Vec<Transaction>,
        /// The peer that sent them.
        from: PeerId,
        /// The gossip message, for the verdict.
        msg: MessageId,
    },
}

/// A result for the loop.
pub enum Done {
    /// A block was imported, or not.
    Block {
        /// Its hash.
        hash: Hash,
        /// The block.
        block: Box<Block>,
        /// How it reached us.
        route: Route<PeerId>,
        /// What the import said.
        result: Result<ImportOutcome, ImportError>,
    },
    /// A sync batch was imported up to `imported` blocks.
    Batch {
        /// The peer that served it.
        from: PeerId,
        /// Height of its first block.
        start: u64,
        /// Blocks imported.
        imported: usize,
        /// The first block that failed, and why.
        failure: Option<(Box<Block>, ImportError)>,
    },
    /// A transaction batch was judged.
    Txs {
        /// The peer that sent it.
        from: PeerId,
        /// Its gossip message.
        msg: MessageId,
        /// The gossip verdict.
        acceptance: MessageAcceptance,
        /// What the peer is charged.
        penalty: Option<PeerAction>,
    },
    /// A sync response was read from the store.
    Served {
        /// The asking peer.
        peer: PeerId,
        /// Its request.
        request_id: InboundRequestId,
        /// Where to answer.
        channel: ResponseChannel<Response>,
        /// The answer.
        response: Response,
    },
}

/// The running workers.
pub struct Workers {
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts the block and the transaction worker. Once `stop` is cancelled they take no new
    /// job: what is still queued is dropped.
    pub fn spawn(
        core: &std::sync::Arc<dyn ChainAccess>,
        blocks: mpsc::Receiver<Job>,
        txs: mpsc::Receiver<Job>,
        results: &mpsc::Sender<Done>,
        stop: &CancellationToken,
    ) -> Result<Self, NetworkError> {
        let threads = vec![
            spawn_worker("net-blocks", core.clone(), blocks, results.clone(), stop.clone())?,
            spawn_worker("net-txs", core.clone(), txs, results.clone(), stop.clone())?,
        ];
        Ok(Workers { threads })
    }

    /// Waits for both workers to end: call after cancelling `stop` or dropping every sender of
    /// their queues (a worker finishes the job in hand first).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn spawn_worker(
    name: &str,
    core: std::sync::Arc<dyn ChainAccess>,
    mut jobs: mpsc::Receiver<Job>,
    results: mpsc::Sender<Done>,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, NetworkError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            while let Some(job) = jobs.blocking_recv() {
                if stop.is_cancelled() {
                    return;
                }
                for done in run_job(core.as_ref(), job) {
                    if results.blocking_send(done).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|e| NetworkError::Build(format!("cannot start {name} worker: {e}")))
}

fn run_job(core: &dyn ChainAccess, job: Job) -> Vec<Done> {
    match job {
        Job::Block { block, route } => {
            let hash = block.hash();
            // Only range sync asks for blocks whose work was proven first (headers first); gossip,
            // released orphans and an orphan's ancestors fetched by hash (asked for because of a
            // block nobody proved anything about) are held to the side-branch margin.
            let arrival = match route {
                Route::ByRange { .. } => Arrival::Requested,
                Route::Gossip { .. } | Route::Orphan { .. } | Route::ByHash { .. } => Arrival::Unrequested,
            };
            let result = core.import_block(&block, arrival);
            vec![Done::Block { hash, block, route, result }]
        }
        Job::Fetched { blocks, from } => blocks
            .into_iter()
            .map(|b| {
                let hash = b.hash();
                // An orphan's ancestor: unrequested in the margin rule's sense (see above), else
                // a cheap orphan would get a whole low-work side branch stored through its parents.
                let result = core.import_block(&b, Arrival::Unrequested);
                Done::Block { hash, block: Box::new(b), route: Route::ByHash { server: from }, result }
            })
            .collect(),
        Job::Batch { blocks, from, start } => {
            let _span = tracing::info_span!("sync_batch", %from, start, blocks = blocks.len()).entered();
            let (imported, failure) = core.import_batch(blocks);
            vec![Done::Batch { from, start, imported, failure }]
        }
        Job::Txs { txs, from, msg } => {
            let results = core.submit_transactions(&txs);
            let penalty =
                results.iter().filter_map(|r| r.as_ref().err().and_then(|e| e.peer_action())).min_by_key(|a| match a {
                    PeerAction::Fatal => 0,
                    PeerAction::LowTolerance => 1,
                    PeerAction::MidTolerance => 2,
                    PeerAction::HighTolerance => 3,
                });
            let acceptance = if penalty.is_some() {
                MessageAcceptance::Reject
            } else if results.iter().any(|r| r.is_ok()) {
                MessageAcceptance::Accept
            } else {
                MessageAcceptance::Ignore
            };
            vec![Done::Txs { from, msg, acceptance, penalty }]
        }
    }
}
