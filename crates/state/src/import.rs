//! Block import and fork choice.
//!
//! Pipeline for one block: cheap stateless checks (version, PoW, clock) → body checks (size,
//! transactions root, stateless transaction rules, every signature through the parallel verifier)
//! → under the writer lock: parent lookup, header context (height, difficulty, median time) →
//! one redb write transaction that stores the block and, if its branch now has the most work,
//! extends the tip or reorganises (revert to the common ancestor through undo data, apply the new
//! branch, checking every state root). The transaction commits whole or not at all.
//!
//! Stateless checks run before the lock, so callers on several threads verify signatures in
//! parallel while one of them writes.
//!
//! Fork choice: most cumulative work; a tie keeps the block seen first.
//!
//! Storage policy (not consensus): a block nobody asked for ([`Arrival::Unrequested`]: gossip, an
//! orphan released once its parent arrived) that would be a side-chain block is stored only if
//! its branch is within [`SIDE_BRANCH_MARGIN_BLOCKS`] blocks' work of the tip
//! ([`within_side_branch_margin`]); otherwise it is refused with
//! [`ImportError::LowWorkSideBlock`], which charges nobody and marks nothing invalid. Blocks range
//! sync asked for are stored whatever their work. Stale side branches (forking below the reorg window)
//! are pruned a batch per import, inside the import's transaction ([`crate::prune`]).
//!
//! A reorganisation streams: the new branch is walked by headers, each block's body is read from
//! the store only to connect it, and disconnected blocks are reported by [`BlockRef`] (their bodies
//! stay stored as side-chain blocks), so a 1,000-block reorg of full blocks holds one body at a time.

use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use thiserror::Error;

use crate::ancestry::{SIDE_BRANCH_MARGIN_BLOCKS, ancestors, child_rules, within_side_branch_margin};
use crate::invalid::{InvalidSet, MAX_INVALID_DESCENDANTS};
use crate::prune::{PRUNE_BATCH_BLOCKS, prune_stale};
use crate::{BlockMeta, BlockRef, BlockStatus, ExecError, ReadView, StateDiff, Store, StoreError, WriteView};
use vision_primitives::consensus::{
    BlockError, ChainParams, HeaderContext, check_body, check_header_context, check_header_stateless, now_ms,
};
use vision_primitives::errors::PeerAction;
use vision_primitives::genesis::Genesis;
use vision_primitives::types::{Block, BlockHeader, Hash};
use vision_primitives::verify::{InvalidSignature, Path, SIG_CACHE_CAP, SigCache, Verifier};

/// Default deepest reorg a node follows without operator action.
pub const DEFAULT_MAX_REORG_DEPTH: u64 = 1_000;

/// A block could not be imported.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The block breaks a consensus rule (or its parent is unknown).
    #[error(transparent)]
    Block(#[from] BlockError),
    /// Our own storage failed; the block is not at fault.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not stored, by storage policy: nobody asked for this block and its side branch has less
    /// work than the tip's minus [`SIDE_BRANCH_MARGIN_BLOCKS`] blocks' worth. Not a verdict on the
    /// block (it may be valid, and is imported if sync asks for it); nobody is charged.
    #[error(
        "not stored: unrequested side-chain block whose branch has {branch_work} work, more than {SIDE_BRANCH_MARGIN_BLOCKS} blocks' worth below the tip's {tip_work}"
    )]
    LowWorkSideBlock {
        /// Total work of the chain ending in the block.
        branch_work: u128,
        /// Total work of our tip.
        tip_work: u128,
    },
}

impl ImportError {
    /// True if the block itself breaks a consensus rule, so that it may be recorded as invalid for
    /// good. False for our own storage failures and for local limits (a reorganisation deeper than
    /// we follow), which say nothing about the block.
    pub fn is_consensus_failure(&self) -> bool {
        match self {
            ImportError::Block(BlockError::ReorgTooDeep { .. }) => false,
            ImportError::Block(_) => true,
            ImportError::Store(_) | ImportError::LowWorkSideBlock { .. } => false,
        }
    }

    /// How the peer that sent the block is judged.
    pub fn peer_action(&self) -> Option<PeerAction> {
        match self {
            ImportError::Block(e) => e.peer_action(),
            ImportError::Store(_) | ImportError::LowWorkSideBlock { .. } => None,
        }
    }
}

/// What [`Chain::reconsider`] cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconsidered {
    /// Stored blocks forgotten: the block, its invalid ancestors and the stored blocks below them.
    pub forgotten: usize,
    /// Descendants of them remembered only by hash, forgotten.
    pub invalid_descendants_cleared: usize,
}

/// A block could not be reconsidered.
#[derive(Debug, Error)]
pub enum ReconsiderError {
    /// Neither stored as invalid nor remembered as a descendant of an invalid block.
    #[error("block {0} is not known invalid; nothing to reconsider")]
    NotInvalid(Hash),
    /// Our own storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The canonical tip, as cached in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// Block hash.
    pub hash: Hash,
    /// Header.
    pub header: BlockHeader,
    /// Cumulative work.
    pub total_work: u128,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Already stored; nothing changed.
    AlreadyKnown,
    /// Stored on a side chain with no more work than the tip.
    SideChain,
    /// The canonical chain changed: `reverted` (tip first) were undone, `applied` (oldest first)
    /// were applied. A plain extension has `reverted` empty and `applied` = [the block]. Blocks
    /// are named by [`BlockRef`], not carried: their bodies are in the store (applied ones are
    /// canonical, reverted ones stay stored as side-chain blocks at least until the next import),
    /// so a deep reorganisation is never held in memory whole.
    NewTip {
        /// Blocks taken off the canonical chain, tip first.
        reverted: Vec<BlockRef>,
        /// Blocks put on it, oldest first.
        applied: Vec<BlockRef>,
    },
}

/// How a block reached the import, for the storage policy on side-chain blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Asked for by range sync (whose headers proved their work first), or our own (miner, API):
    /// stored whatever its work.
    Requested,
    /// Nobody asked for it (gossip, an orphan released once its parent arrived, an orphan's
    /// ancestor fetched by hash): stored as a side-chain block only within
    /// [`SIDE_BRANCH_MARGIN_BLOCKS`] of the tip's work.
    Unrequested,
}

/// Where the time of one import went.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportTimings {
    /// Stateless body checks including signatures.
    pub verify: Duration,
    /// Which verification path was taken.
    pub verify_path: Option<Path>,
    /// State execution and database writes.
    pub apply: Duration,
    /// The redb commit.
    pub commit: Duration,
}

/// When an import's commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// With the commit (fsync).
    Immediate,
    /// With the next durable commit.
    Deferred,
}

/// The chain: store, parameters and the single-writer import path.
pub struct Chain {
    store: Store,
    params: ChainParams,
    genesis: Genesis,
    verifier: Verifier,
    sig_cache: SigCache,
    max_reorg_depth: u64,
    writer: Mutex<()>,
    tip: RwLock<Tip>,
    /// Descendants of invalid blocks, as hashes ([`crate::invalid`]).
    invalid: Mutex<InvalidSet>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("tip", &*self.tip.read()).finish()
    }
}

impl Chain {
    /// A chain over `store`, which must have been opened for `genesis`.
    pub fn new(store: Store, genesis: Genesis, verifier: Verifier, max_reorg_depth: u64) -> Result<Self, StoreError> {
        let tip = {
            let r = store.read()?;
            let hash = r.tip_hash()?;
            let meta = r.block_meta(&hash)?.ok_or_else(|| StoreError::Corrupt(format!("tip {hash} has no header")))?;
            Tip { hash, header: meta.header, total_work: meta.total_work }
        };
        Ok(Chain {
            params: genesis.params(),
            genesis,
            store,
            verifier,
            sig_cache: SigCache::new(SIG_CACHE_CAP),
            max_reorg_depth,
            writer: Mutex::new(()),
            tip: RwLock::new(tip),
            invalid: Mutex::new(InvalidSet::new(MAX_INVALID_DESCENDANTS)),
        })
    }

    /// Consensus parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The genesis in use.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The verifier blocks are checked with.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Deepest reorganisation followed: blocks at or below `tip height - max_reorg_depth` are
    /// refused unverified.
    pub fn max_reorg_depth(&self) -> u64 {
        self.max_reorg_depth
    }

    /// The canonical tip.
    pub fn tip(&self) -> Tip {
        *self.tip.read()
    }

    /// Verifies transaction signatures through the chain's signature cache (mempool admission
    /// uses this, so the block that later includes them is not verified twice).
    pub fn verify_transactions(&self, txs: &[vision_primitives::types::Transaction]) -> Result<Path, InvalidSignature> {
        self.verifier.verify_txs_cached(txs, &self.params.genesis_hash, &self.sig_cache)
    }

    /// Verifies every signature of `blocks` as one parallel batch into the signature cache, so
    /// that importing them one by one finds them verified (`verify::Path::Cached`). One large
    /// batch uses every core and the multiscalar multiplication's economy of scale, where the
    /// blocks' own batches are small and start with the workers asleep. Returns false if some
    /// signature fails (nothing is cached then; the block import finds and reports it).
    pub fn preverify(&self, blocks: &[Block]) -> bool {
        let txs: Vec<vision_primitives::types::Transaction> =
            blocks.iter().flat_map(|b| b.transactions.iter().copied()).collect();
        self.verifier.verify_txs_cached(&txs, &self.params.genesis_hash, &self.sig_cache).is_ok()
    }

    /// Entries in the verified-signature cache (for `bounds`).
    pub fn sig_cache_len(&self) -> usize {
        self.sig_cache.len()
    }

    /// The underlying store (for `db check` and tools).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A read snapshot of the store.
    pub fn read(&self) -> Result<ReadView, StoreError> {
        self.store.read()
    }

    /// Imports one block. See the module docs for the pipeline. `on_commit` runs after a
    /// successful commit while the writer lock is still held, so that whatever follows the tip
    /// (the mempool) sees tip changes in order.
    /// The block counts as requested ([`Arrival::Requested`]).
    pub fn import(
        &self,
        block: &Block,
        on_commit: impl FnOnce(&ImportOutcome),
    ) -> Result<(ImportOutcome, ImportTimings), ImportError> {
        self.import_with(block, Durability::Immediate, Arrival::Requested, on_commit)
    }

    /// [`Chain::import`], with the commit made durable at once or deferred to the next durable
    /// commit (`state::WriteView::defer_durability`), and the storage policy for side-chain blocks
    /// chosen by how the block arrived. Failures are always recorded durably.
    pub fn import_with(
        &self,
        block: &Block,
        durability: Durability,
        arrival: Arrival,
        on_commit: impl FnOnce(&ImportOutcome),
    ) -> Result<(ImportOutcome, ImportTimings), ImportError> {
        let mut timings = ImportTimings::default();
        let hash = block.hash();
        // Known blocks cost one lookup, before any verification.
        if self.invalid.lock().contains(&hash) {
            return Err(BlockError::KnownInvalid(hash).into());
        }
        if let Some(meta) = self.store.read()?.block_meta(&hash)? {
            return match meta.status {
                BlockStatus::Invalid => Err(BlockError::KnownInvalid(hash).into()),
                _ => Ok((ImportOutcome::AlreadyKnown, timings)),
            };
        }
        check_header_stateless(&self.params, &block.header, now_ms())?;
        // A child of a known invalid block is remembered by its hash (after its proof of work, so
        // that the set holds only blocks that cost their maker something) and refused before its
        // body is verified; nothing of it is written.
        let parent = block.header.parent;
        let parent_meta = self.store.read()?.block_meta(&parent)?;
        if self.invalid.lock().contains(&parent) || parent_meta.is_some_and(|m| m.status == BlockStatus::Invalid) {
            self.invalid.lock().insert(hash, parent);
            return Err(BlockError::KnownInvalid(parent).into());
        }
        // A block this far below the tip forks off deeper than any reorganisation we follow, so
        // it can never become canonical: refuse it before verifying or storing anything. This
        // bounds what a flood of cheap side-chain blocks can make us store to branches off the last
        // `max_reorg_depth` blocks, each paying those blocks' difficulty.
        let tip_height = self.tip().header.height;
        if block.header.height.saturating_add(self.max_reorg_depth) <= tip_height {
            let depth = tip_height + 1 - block.header.height;
            return Err(BlockError::ReorgTooDeep { depth, limit: self.max_reorg_depth }.into());
        }
        // An unrequested low-work side block is refused before its signatures are verified.
        if let Some(p) = &parent_meta {
            low_work_side_block(arrival, &block.header, p.total_work, &self.tip())?;
        }
        let t = Instant::now();
        timings.verify_path = Some(check_body(&self.params, block, &self.verifier, Some(&self.sig_cache))?);
        timings.verify = t.elapsed();

        let _writer = self.writer.lock();
        let t = Instant::now();
        let mut w = self.store.write()?;
        if durability == Durability::Deferred {
            w.defer_durability()?;
        }
        if let Some(meta) = w.block_meta(&hash)? {
            // Imported by another thread while we verified.
            return match meta.status {
                BlockStatus::Invalid => Err(BlockError::KnownInvalid(hash).into()),
                _ => Ok((ImportOutcome::AlreadyKnown, timings)),
            };
        }
        if self.invalid.lock().contains(&block.header.parent) {
            self.invalid.lock().insert(hash, block.header.parent);
            return Err(BlockError::KnownInvalid(block.header.parent).into());
        }
        let parent = w.block_meta(&block.header.parent)?.ok_or(BlockError::UnknownParent(block.header.parent))?;
        if parent.status == BlockStatus::Invalid {
            self.invalid.lock().insert(hash, block.header.parent);
            return Err(BlockError::KnownInvalid(block.header.parent).into());
        }
        let earlier = ancestors(&w, &parent.header)?;
        check_header_context(
            &self.params,
            &block.header,
            &HeaderContext { parent: &parent.header, earlier: &earlier },
        )?;
        let tip = self.tip();
        low_work_side_block(arrival, &block.header, parent.total_work, &tip)?;

        let total_work = parent.total_work.saturating_add(u128::from(block.header.difficulty));
        let meta = BlockMeta { header: block.header, total_work, status: BlockStatus::HeaderValid };
        w.put_block(block, &meta)?;
        crate::fault::point("import.after_put_block");
        // Before fork choice, against the tip before this import: blocks this import reverts are
        // not touched, so the caller can read them back after the commit.
        prune_stale(&w, tip.header.height, self.max_reorg_depth, PRUNE_BATCH_BLOCKS)?;

        let outcome = if total_work <= tip.total_work {
            ImportOutcome::SideChain
        } else if block.header.parent == tip.hash {
            if let Err(e) = self.connect(&w, block) {
                drop(w);
                return self.fail(&[(hash, block.header)], e);
            }
            let applied = BlockRef { hash, header: block.header, tx_count: block.transactions.len() };
            ImportOutcome::NewTip { reverted: Vec::new(), applied: vec![applied] }
        } else {
            match self.reorg(&w, block, &tip)? {
                Ok(outcome) => outcome,
                Err((bad, e)) => {
                    drop(w);
                    return self.fail(&bad, e);
                }
            }
        };
        timings.apply = t.elapsed();
        crate::fault::point("import.before_commit");
        let t = Instant::now();
        w.commit()?;
        timings.commit = t.elapsed();
        crate::fault::point("import.after_commit");
        if let ImportOutcome::NewTip { .. } = outcome {
            *self.tip.write() = Tip { hash, header: block.header, total_work };
        }
        on_commit(&outcome);
        Ok((outcome, timings))
    }

    /// Executes `block` against the tip state in `w`, checks its state root and connects it.
    fn connect(&self, w: &WriteView, block: &Block) -> Result<(), ImportError> {
        let diff: StateDiff = w.execute(&self.params, block).map_err(|e| match e {
            ExecError::Tx { index, error } => ImportError::Block(BlockError::InvalidTransaction { index, error }),
            ExecError::Store(s) => ImportError::Store(s),
        })?;
        crate::fault::io_error("connect.before_state_root")?;
        let lt = diff.apply_to(&w.lthash()?);
        let computed = lt.root();
        if computed != block.header.state_root {
            return Err(BlockError::StateRootMismatch { header: block.header.state_root, computed }.into());
        }
        w.connect(block, &diff, &lt)?;
        Ok(())
    }

    /// Switches the canonical chain to the branch ending in `block`, streaming: the branch is
    /// walked by headers, each branch block's body is read from the store when it is connected
    /// and dropped after, and disconnected blocks are kept by [`BlockRef`] only. The outer
    /// `Result` is a storage failure; the inner error names the branch block that failed followed
    /// by the branch blocks after it (hash and header).
    #[allow(clippy::type_complexity)]
    fn reorg(
        &self,
        w: &WriteView,
        block: &Block,
        tip: &Tip,
    ) -> Result<Result<ImportOutcome, (Vec<(Hash, BlockHeader)>, ImportError)>, ImportError> {
        let new = (block.hash(), block.header);
        // Walk back from the new block to the canonical chain, by headers.
        let mut branch = vec![new];
        let mut cur = block.header;
        loop {
            let parent = cur.parent;
            let pm = w.block_meta(&parent)?.ok_or_else(|| StoreError::Corrupt(format!("ancestor {parent} missing")))?;
            if w.canonical_hash(pm.header.height)? == Some(parent) {
                let depth = tip.header.height - pm.header.height;
                if depth > self.max_reorg_depth {
                    return Ok(Err((
                        vec![new],
                        BlockError::ReorgTooDeep { depth, limit: self.max_reorg_depth }.into(),
                    )));
                }
                break;
            }
            if pm.status == BlockStatus::Invalid {
                return Ok(Err((vec![new], BlockError::KnownInvalid(parent).into())));
            }
            branch.push((parent, pm.header));
            cur = pm.header;
        }
        branch.reverse();
        let fork_parent = branch[0].1.parent;
        let mut reverted = Vec::new();
        while w.tip_hash()? != fork_parent {
            let r = w.disconnect_tip()?;
            crate::fault::point("reorg.after_disconnect");
            reverted.push(r);
        }
        let mut applied = Vec::with_capacity(branch.len());
        for (i, &(h, header)) in branch.iter().enumerate() {
            let stored;
            let b = if h == new.0 {
                block
            } else {
                let transactions = w.body(&h)?.ok_or_else(|| StoreError::Corrupt(format!("no body for {h}")))?;
                stored = Block { header, transactions };
                &stored
            };
            match self.connect(w, b) {
                Ok(()) => crate::fault::point("reorg.after_connect"),
                Err(ImportError::Store(s)) => return Err(ImportError::Store(s)),
                Err(e) => return Ok(Err((branch[i..].to_vec(), e))),
            }
            applied.push(BlockRef { hash: h, header, tx_count: b.transactions.len() });
        }
        tracing::info!(
            depth = reverted.len(),
            applied = applied.len(),
            new_tip = %new.0,
            "chain reorganisation"
        );
        Ok(Ok(ImportOutcome::NewTip { reverted, applied }))
    }

    /// Records `blocks` (the block that failed, then its descendants on the branch) as invalid in
    /// a fresh transaction (the failed one was aborted) and returns the error, if and only if `e`
    /// is a broken consensus rule of the first. A storage error (ours, not the block's: a full or
    /// failing disk) records nothing, so the same block imports once the disk recovers; a
    /// reorganisation too deep to follow is a local limit, not a verdict on the block either.
    fn fail(
        &self,
        blocks: &[(Hash, BlockHeader)],
        e: ImportError,
    ) -> Result<(ImportOutcome, ImportTimings), ImportError> {
        if !e.is_consensus_failure() {
            return Err(e);
        }
        self.mark_invalid(blocks)?;
        Err(e)
    }

    /// Records `blocks` (a block that broke a rule, then its stored descendants) as invalid: each
    /// keeps (or gets) its header with status `Invalid`, and loses its body. The header stays so
    /// that children and side branches hanging below are refused by one lookup, and because it was
    /// paid for: a block reaches here only after its proof of work and header context passed.
    fn mark_invalid(&self, blocks: &[(Hash, BlockHeader)]) -> Result<(), StoreError> {
        let w = self.store.write()?;
        for &(hash, header) in blocks {
            if w.block_meta(&hash)?.is_none() {
                w.put_meta(&hash, &BlockMeta { header, total_work: 0, status: BlockStatus::Invalid })?;
            } else {
                w.set_status(&hash, BlockStatus::Invalid)?;
            }
            w.remove_body(&hash)?;
        }
        crate::fault::point("invalid.before_commit");
        w.commit()
    }

    /// True if `hash` is known invalid: stored with status `Invalid`, or remembered as a
    /// descendant of an invalid block ([`crate::invalid`]).
    pub fn is_known_invalid(&self, hash: &Hash) -> Result<bool, StoreError> {
        if self.invalid.lock().contains(hash) {
            return Ok(true);
        }
        Ok(self.store.read()?.block_meta(hash)?.is_some_and(|m| m.status == BlockStatus::Invalid))
    }

    /// Descendants of invalid blocks remembered (for `bounds`).
    pub fn invalid_descendants_len(&self) -> usize {
        self.invalid.lock().len()
    }

    /// Undoes the verdict on a block known invalid, like Bitcoin Core's `reconsiderblock`: the
    /// block, its invalid ancestors (the reason it would be refused again) and every block stored
    /// or remembered below them are forgotten, so that each is judged again from scratch when a
    /// peer (or sync) delivers it again. Bodies of invalid blocks are not kept, so nothing is
    /// re-imported from the store; forgetting is enough for fork choice to re-evaluate the branch
    /// once it comes back. Canonical blocks are never touched. Costs one scan of the stored
    /// headers above the oldest cleared block (an operator action, not a peer's).
    pub fn reconsider(&self, hash: &Hash) -> Result<Reconsidered, ReconsiderError> {
        let _writer = self.writer.lock();
        let w = self.store.write()?;
        let mut roots = Vec::new();
        // A remembered descendant: climb the remembered hashes to the stored block they hang from.
        let (top, remembered) = {
            let set = self.invalid.lock();
            let mut top = *hash;
            while let Some(p) = set.parent_of(&top).filter(|p| set.contains(p)) {
                top = p;
            }
            (top, set.contains(hash))
        };
        let mut cur = if remembered { self.invalid.lock().parent_of(&top).unwrap_or(top) } else { *hash };
        let mut meta = match w.block_meta(&cur)? {
            Some(m) if m.status == BlockStatus::Invalid => m,
            _ if remembered => {
                let cleared = self.invalid.lock().remove_descendants(&[top]);
                return Ok(Reconsidered { forgotten: 0, invalid_descendants_cleared: cleared });
            }
            _ => return Err(ReconsiderError::NotInvalid(*hash)),
        };
        // Walk up through invalid ancestors: the highest one is the root of what is forgotten.
        while meta.status == BlockStatus::Invalid {
            roots.push(cur);
            let parent = meta.header.parent;
            match w.block_meta(&parent)? {
                Some(m) if m.status == BlockStatus::Invalid => {
                    cur = parent;
                    meta = m;
                }
                _ => break,
            }
        }
        let lowest = meta.header.height;
        // Every stored block below the roots (any status: a side block may hang below an invalid one).
        let mut doomed: std::collections::HashSet<Hash> = roots.iter().copied().collect();
        let mut above: Vec<(u64, Hash, Hash)> =
            w.block_parents_above(lowest)?.into_iter().map(|(h, height, parent)| (height, h, parent)).collect();
        above.sort_unstable();
        for (_, h, parent) in above {
            if doomed.contains(&parent) {
                doomed.insert(h);
            }
        }
        let mut forgotten = 0;
        for h in &doomed {
            let Some(m) = w.block_meta(h)? else { continue };
            if w.canonical_hash(m.header.height)? == Some(*h) {
                return Err(StoreError::Corrupt(format!("block {h} is canonical and below an invalid block")).into());
            }
            w.remove_block(h)?;
            forgotten += 1;
        }
        w.commit()?;
        let mut all: Vec<Hash> = doomed.into_iter().collect();
        all.push(top);
        let cleared = self.invalid.lock().remove_descendants(&all);
        tracing::warn!(block = %hash, forgotten, invalid_descendants_cleared = cleared, "reconsidered: invalid verdicts cleared; the blocks are judged again when delivered again");
        Ok(Reconsidered { forgotten, invalid_descendants_cleared: cleared })
    }

    /// Difficulty and minimum timestamp (median time + 1) required of a child of the tip in the
    /// snapshot `r`, plus that tip. Used by the miner.
    pub fn next_block_rules(&self, r: &ReadView) -> Result<(Tip, u64, u64), StoreError> {
        let tip_hash = r.tip_hash()?;
        let tip_meta = r.block_meta(&tip_hash)?.ok_or_else(|| StoreError::Corrupt("tip meta".into()))?;
        let rules = child_rules(r, &self.params, &tip_meta.header)?;
        let tip = Tip { hash: tip_hash, header: tip_meta.header, total_work: tip_meta.total_work };
        Ok((tip, rules.difficulty, rules.min_timestamp_ms))
    }
}

/// The storage policy on unrequested side-chain blocks: `Err` if nobody asked for a block with
/// `header` on a parent of `parent_work`, it would not move the tip, and its branch is more than
/// [`SIDE_BRANCH_MARGIN_BLOCKS`] blocks' work behind `tip`.
fn low_work_side_block(
    arrival: Arrival,
    header: &BlockHeader,
    parent_work: u128,
    tip: &Tip,
) -> Result<(), ImportError> {
    let branch_work = parent_work.saturating_add(u128::from(header.difficulty));
    if arrival == Arrival::Unrequested
        && branch_work <= tip.total_work
        && !within_side_branch_margin(branch_work, header.difficulty, tip.total_work)
    {
        return Err(ImportError::LowWorkSideBlock { branch_work, tip_work: tip.total_work });
    }
    Ok(())
}
