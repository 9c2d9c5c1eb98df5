//! Chain work off the network loop, and its results back to it.
//!
//! - Transactions: the `net-txs` thread takes gossiped batches through a bounded queue and judges
//!   them. Owned by the loop: at shutdown it takes no new job (the node's cancellation token), the
//!   loop closes its queue and joins it before it returns, so a node that has shut down runs no
//!   worker (`tests/it/shutdown.rs`).
//! - Blocks: imported by the node's own import thread (`ChainAccess::queue_import`); the replies
//!   built here carry each result back to the loop as a [`Done`], with how the block reached us
//!   (who pays if it is bad: `charge.rs`).

use std::thread::JoinHandle;

use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::{InboundRequestId, ResponseChannel};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vision_primitives::errors::PeerAction;
use vision_primitives::types::{Block, Hash, Transaction};
use vision_state::{ImportError, ImportOutcome};

use super::charge::{Route, TxVerdict, judge_tx_batch};
use crate::NetworkError;
use crate::chain_access::{ChainAccess, ImportReply, Imported};
use crate::sync::Response;

/// Transaction batches waiting in the tx worker's queue.
pub const TX_QUEUE_CAP: usize = 256;
/// Results waiting to be handled by the loop.
pub const RESULT_QUEUE_CAP: usize = 2048;

/// Chain work for the transaction worker.
pub enum Job {
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
        /// What the peer is charged: one report per faulty transaction, as (action, reports).
        charges: Vec<(PeerAction, usize)>,
        /// Transactions that entered the pool from a batch that is not relayed: published in a
        /// batch of our own, so that junk next to them does not cost them their propagation.
        republish: Vec<Transaction>,
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

/// The reply for blocks queued for import on their own: each result goes back to the loop with
/// `route`.
pub fn block_reply(route: Route<PeerId>, results: mpsc::Sender<Done>) -> ImportReply {
    Box::new(move |imported: Imported| {
        send_all(
            &results,
            imported.into_iter().map(|(block, result)| Done::Block { hash: block.hash(), block, route, result }),
        );
    })
}

/// The reply for a sync batch served by `from` starting at `start`.
pub fn batch_reply(from: PeerId, start: u64, results: mpsc::Sender<Done>) -> ImportReply {
    Box::new(move |imported: Imported| {
        let mut failure = None;
        let mut count = 0;
        for (block, result) in imported {
            match result {
                Ok(_) => count += 1,
                Err(e) => failure = Some((block, e)),
            }
        }
        send_all(&results, std::iter::once(Done::Batch { from, start, imported: count, failure }));
    })
}

/// Sends from the import thread; the loop gone (shutdown) is not an error.
fn send_all(results: &mpsc::Sender<Done>, dones: impl IntoIterator<Item = Done>) {
    for done in dones {
        if results.blocking_send(done).is_err() {
            return;
        }
    }
}

/// The running transaction worker.
pub struct Workers {
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts the transaction worker. Once `stop` is cancelled it takes no new job: what is still
    /// queued is dropped.
    pub fn spawn(
        core: &std::sync::Arc<dyn ChainAccess>,
        txs: mpsc::Receiver<Job>,
        results: &mpsc::Sender<Done>,
        stop: &CancellationToken,
    ) -> Result<Self, NetworkError> {
        let threads = vec![spawn_worker("net-txs", core.clone(), txs, results.clone(), stop.clone())?];
        Ok(Workers { threads })
    }

    /// Waits for the worker to end: call after cancelling `stop` or dropping every sender of its
    /// queue (it finishes the job in hand first).
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
        Job::Txs { txs, from, msg } => {
            // Each transaction judged on its own (`charge::judge_tx_batch`).
            let judged = judge_tx_batch(&core.submit_transactions(&txs));
            let acceptance = match judged.verdict {
                TxVerdict::Relay => MessageAcceptance::Accept,
                TxVerdict::Reject => MessageAcceptance::Reject,
                TxVerdict::Ignore => MessageAcceptance::Ignore,
            };
            let republish = judged.republish.iter().map(|i| txs[*i]).collect();
            vec![Done::Txs { from, msg, acceptance, charges: judged.charges, republish }]
        }
    }
}
