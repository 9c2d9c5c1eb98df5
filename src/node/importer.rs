//! The importer: the one door through which blocks enter the chain ([`Core::import_block_with`]:
//! import, then the pool follows the new tip, the metrics and the subscribers hear of it), and the
//! node's import thread with its bounded queue, which takes every block that arrives from a peer.
//!
//! The network hands blocks over with [`crate::p2p::ImportQueue::queue_import`] (gossip straight
//! from gossip validation, orphans whose parent arrived, blocks fetched by hash, range-sync
//! batches) and hears back through the reply it gave; it never waits: a full queue hands the work
//! back ([`IMPORT_QUEUE_CAP`], `vision_resource_used{resource="block_jobs"}`). The miner and the
//! API import on their own threads through [`Core::import_block`]; the chain's writer lock orders
//! them. The path of a gossiped block, file by file: `p2p/service/mod.rs` (the swarm event) →
//! `p2p/service/validate.rs` (judged headers first, relayed, queued) → this file (the import
//! thread) → `state/import.rs` (checks, execution, one write transaction) → `state/lib.rs` (the
//! redb commit).
//!
//! The thread is owned by the [`crate::node::Node`]: at shutdown it takes no new job (what is still
//! queued is dropped with its reply), the queue is closed and the thread joined
//! ([`Importer::stop`]; `tests/it/shutdown.rs` checks that no thread is left).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{BlockSource, Core, Event, TxSource};
use crate::chain::types::{Address, Block};
use crate::chain::{ImportError, ImportOutcome};
use crate::p2p::{ImportMode, ImportReply, ImportWork, Imported};

/// Jobs waiting for the import thread (a gossiped block, an orphan's fetched ancestors, or a sync
/// batch of at most 64 blocks).
pub const IMPORT_QUEUE_CAP: usize = 1024;

/// The import queue, in the resource registry (named `block_jobs`, as when the network owned the
/// thread: dashboards and alerts keep their series).
pub const IMPORT_JOBS: crate::bounds::Resource =
    crate::bounds::Resource::new("block_jobs", "node::importer::IMPORT_QUEUE_CAP", IMPORT_QUEUE_CAP);

type Job = (ImportWork, ImportReply);

/// The sending side of the import queue, held by the core (empty until an [`Importer`] starts,
/// and again once it stops).
#[derive(Default)]
pub(super) struct Queue {
    jobs: parking_lot::Mutex<Option<SyncSender<Job>>>,
    /// Jobs queued and not yet taken by the thread.
    len: AtomicUsize,
}

impl Queue {
    /// Jobs waiting.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// The running import thread; stopped when dropped.
pub struct Importer {
    core: Arc<Core>,
    thread: Option<JoinHandle<()>>,
}

impl Importer {
    /// Opens the core's import queue and starts the thread that empties it. Once `stop` is
    /// cancelled the thread takes no new job.
    pub fn start(core: Arc<Core>, stop: CancellationToken) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(IMPORT_QUEUE_CAP);
        *core.importer.jobs.lock() = Some(tx);
        let thread = {
            let core = core.clone();
            std::thread::Builder::new().name("importer".into()).spawn(move || run(&core, rx, &stop))
        };
        match thread {
            Ok(t) => Ok(Importer { core, thread: Some(t) }),
            Err(e) => {
                core.importer.jobs.lock().take();
                Err(e)
            }
        }
    }

    /// Closes the core's import queue and waits for the thread: it finishes the job in hand, and
    /// once the node's cancellation token is cancelled drops what is still queued (with the
    /// replies); otherwise it imports it first. Blocks the calling thread.
    pub fn stop(self) {
        drop(self)
    }
}

impl Drop for Importer {
    fn drop(&mut self) {
        self.core.importer.jobs.lock().take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(core: &Core, jobs: Receiver<Job>, stop: &CancellationToken) {
    while let Ok((work, reply)) = jobs.recv() {
        core.importer.len.fetch_sub(1, Ordering::Relaxed);
        if stop.is_cancelled() {
            continue;
        }
        reply(core.import_work(work));
    }
}

/// The network's door into the importer (a part of [`crate::p2p::ChainAccess`]).
impl crate::p2p::ImportQueue for Core {
    fn queue_import(&self, work: ImportWork, reply: ImportReply) -> Result<(), ImportWork> {
        let guard = self.importer.jobs.lock();
        let Some(jobs) = guard.as_ref() else { return Err(work) };
        // Counted before the send: the thread may take the job (and count it out) at once.
        self.importer.len.fetch_add(1, Ordering::Relaxed);
        match jobs.try_send((work, reply)) {
            Ok(()) => {
                self.bounds.record(IMPORT_JOBS, self.importer.len());
                Ok(())
            }
            Err(TrySendError::Full((work, _)) | TrySendError::Disconnected((work, _))) => {
                self.importer.len.fetch_sub(1, Ordering::Relaxed);
                Err(work)
            }
        }
    }
}

impl Core {
    /// Imports what a peer sent, as the network asked.
    fn import_work(&self, work: ImportWork) -> Imported {
        use crate::chain::import::{Arrival, Durability};
        match work.mode {
            ImportMode::Unrequested => work
                .blocks
                .into_iter()
                .map(|b| {
                    let result =
                        self.import_block_with(&b, BlockSource::Network, Durability::Immediate, Arrival::Unrequested);
                    (Box::new(b), result)
                })
                .collect(),
            ImportMode::SyncBatch => {
                let start = work.blocks.first().map_or(0, |b| b.header.height);
                let _span = tracing::info_span!("sync_batch", start, blocks = work.blocks.len()).entered();
                self.import_sync_batch(work.blocks, BlockSource::Network)
            }
        }
    }

    /// Imports a block; on a new tip updates the pool (in tip order) and announces it.
    /// The block counts as requested: stored even on a low-work side branch (our own blocks, the
    /// API, sync). Gossip goes through [`Core::import_block_with`] with `Arrival::Unrequested`.
    pub fn import_block(&self, block: &Block, source: BlockSource) -> Result<ImportOutcome, ImportError> {
        self.import_block_with(
            block,
            source,
            crate::chain::import::Durability::Immediate,
            crate::chain::import::Arrival::Requested,
        )
    }

    /// Imports consecutive blocks fetched by sync: their signatures are verified first as one
    /// parallel batch ([`crate::chain::Chain::preverify`]), then each block is imported in order with
    /// its commit deferred, and the last one (or the last good one, if a block fails) is made
    /// durable. A crash in the middle loses only this batch's blocks, which sync fetches again.
    /// Stops at the first failure; returns each block tried with its result.
    pub fn import_sync_batch(&self, blocks: Vec<Block>, source: BlockSource) -> Imported {
        use crate::chain::import::Durability;
        self.chain.preverify(&blocks);
        let n = blocks.len();
        let mut tried = Vec::with_capacity(n);
        // Whether the batch ended on a durable commit of its own.
        let mut durable = false;
        for (i, b) in blocks.into_iter().enumerate() {
            let durability = if i + 1 == n { Durability::Immediate } else { Durability::Deferred };
            let result = self.import_block_with(&b, source, durability, crate::chain::import::Arrival::Requested);
            let failed = result.is_err();
            durable = i + 1 == n && matches!(&result, Ok(o) if !matches!(o, ImportOutcome::AlreadyKnown));
            tried.push((Box::new(b), result));
            if failed {
                break;
            }
        }
        // A failure, or a last block already known (nothing committed), leaves the deferred
        // commits before it to the next durable commit: make them durable now.
        if !durable && let Err(e) = self.chain.store().persist() {
            tracing::error!(error = %e, "cannot make the imported blocks durable");
        }
        tried
    }

    /// [`Core::import_block`] with the commit's durability and the block's arrival (which decides
    /// whether a low-work side-chain block is stored: `chain::import::Arrival`) chosen by the caller.
    pub fn import_block_with(
        &self,
        block: &Block,
        source: BlockSource,
        durability: crate::chain::import::Durability,
        arrival: crate::chain::import::Arrival,
    ) -> Result<ImportOutcome, ImportError> {
        use crate::chain::metrics::{ImportLabels, OutcomeLabel, PathLabel, PathLabels, SourceLabel};
        let _span =
            tracing::debug_span!("import", height = block.header.height, hash = %block.hash().short()).entered();
        let start = Instant::now();
        let mut pool_err = None;
        let mut returned = Vec::new();
        let mut event_blocks = Vec::new();
        let result = self.chain.import_with(block, durability, arrival, |outcome| {
            if let ImportOutcome::NewTip { reverted, applied } = outcome {
                // One snapshot of the new tip for the whole pool update: it reads the account of
                // every sender and recipient the blocks touched that still has pooled
                // transactions (up to 20,000 for a full block), and a read transaction each cost
                // ~0.3 s per full block once the pool is large (`docs/performance.md`, end to end).
                let update = self.chain.read().and_then(|view| {
                    let accounts = view.accounts()?;
                    let read = |a: &Address| crate::state::AccountReader::account(&accounts, a);
                    self.follow_tip(&view, block, reverted, applied, &read)
                });
                match update {
                    Ok((txs, blocks)) => {
                        returned = txs;
                        event_blocks = blocks;
                    }
                    Err(e) => pool_err = Some(e),
                }
            }
        });
        let m = &self.metrics;
        let source_label = match source {
            BlockSource::Miner => SourceLabel::Miner,
            BlockSource::Api => SourceLabel::Api,
            BlockSource::Network => SourceLabel::Network,
        };
        let outcome_label = match &result {
            Ok((ImportOutcome::NewTip { .. }, _)) => OutcomeLabel::NewTip,
            Ok((ImportOutcome::SideChain, _)) => OutcomeLabel::SideChain,
            Ok((ImportOutcome::AlreadyKnown, _)) => OutcomeLabel::Known,
            Err(ImportError::Block(crate::chain::consensus::BlockError::UnknownParent(_))) => OutcomeLabel::Orphan,
            Err(ImportError::Block(crate::chain::consensus::BlockError::TimestampInFuture { .. })) => {
                OutcomeLabel::Future
            }
            Err(ImportError::Block(_)) => OutcomeLabel::Invalid,
            Err(ImportError::LowWorkSideBlock { .. }) => OutcomeLabel::NotStored,
            Err(ImportError::Store(_)) => OutcomeLabel::Error,
        };
        m.blocks_imported.get_or_create(&ImportLabels { source: source_label, outcome: outcome_label }).inc();
        let (outcome, timings) = result?;
        if let Some(e) = pool_err {
            tracing::error!(error = %e, "mempool could not follow the new tip");
        }
        if let Some(path) = timings.verify_path {
            let path = match path {
                crate::verify::Path::Sequential => PathLabel::Sequential,
                crate::verify::Path::Parallel => PathLabel::Parallel,
                crate::verify::Path::Cached => PathLabel::Cached,
            };
            m.verify_duration.get_or_create(&PathLabels { path }).observe(timings.verify.as_secs_f64());
        }
        if !matches!(outcome, ImportOutcome::AlreadyKnown) {
            m.import_duration.observe(start.elapsed().as_secs_f64());
            m.apply_duration.observe(timings.apply.as_secs_f64());
            m.db_commit_duration.observe(timings.commit.as_secs_f64());
        }
        if let ImportOutcome::NewTip { reverted, applied } = &outcome {
            if !reverted.is_empty() {
                m.reorgs.inc();
                m.reorg_depth.observe(reverted.len() as f64);
            }
            m.transactions_imported.inc_by(applied.iter().map(|b| b.tx_count as u64).sum());
            let h = block.header;
            tracing::info!(
                height = h.height,
                hash = %block.hash().short(),
                txs = block.transactions.len(),
                ?source,
                reverted = reverted.len(),
                verify_us = timings.verify.as_micros() as u64,
                apply_us = timings.apply.as_micros() as u64,
                commit_us = timings.commit.as_micros() as u64,
                total_us = start.elapsed().as_micros() as u64,
                "imported block"
            );
            let _ = self.events.send(Event::NewHead {
                hash: block.hash(),
                height: h.height,
                reverted: reverted.len(),
                applied: Arc::new(std::mem::take(&mut event_blocks)),
                source,
            });
            for tx in &returned {
                let _ = self.events.send(Event::TxPooled { tx: *tx, source: TxSource::Reorg });
            }
            self.queue_for_gossip(returned);
        }
        Ok(outcome)
    }
}
