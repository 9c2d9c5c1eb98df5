//! Gossip validation of a block: what the loop answers gossipsub (relay or not) and whom it
//! charges, decided from the message bytes and the stored chain before any import. Headers first:
//! a block is relayed only once its header has been checked *in context*, against a stored parent
//! that is not invalid, with the difficulty the retarget requires, a timestamp above the parent's
//! median time past and proof of work against that difficulty.
//!
//! The order of the checks (`protocols/gossip.md` §4.1), cheapest first:
//! 1. decode;
//! 2. the header's stateless checks (version, proof of work against its own difficulty field, the
//!    future-time limit): a failure here costs us one hash;
//! 3. already known: ignored (and if stored as invalid, its author is charged);
//! 4. the header against its parent: an unknown parent makes it an orphan (not relayed, kept, its
//!    parent fetched from the sender); an invalid parent or a broken rule is the sender's fault;
//! 5. below the reorg window, or on a branch with much less work than the tip: ignored, nobody
//!    charged (an honest node that lags relays such blocks too); more than a whole window below
//!    the window, the sender is charged a little (no honest node relays that).
//!
//! A block that passes is handed to the node's importer here ([`admit_block`]), so that the loop
//! only answers gossipsub: the path of a gossiped block is the loop, this file, the importer
//! (`src/node/importer.rs`), the import (`state/import.rs`) and the commit (`state/lib.rs`).
//!
//! Whom each failure charges is the charge table's business (`charge.rs`). The sender's
//! connection and rate limit are checked by the loop first, since they are the peer manager's
//! state.

use libp2p::PeerId;
use libp2p::gossipsub::MessageAcceptance;
use tokio::sync::mpsc;
use vision_primitives::consensus::{BlockError, check_header_stateless};
use vision_primitives::types::Block;
use vision_state::BlockStatus;
use vision_state::ancestry::{ContextError, check_header_in_context, within_side_branch_margin};

use super::charge::{Found, Route};
use super::workers::{Done, block_reply};
use crate::chain_access::{ChainAccess, ImportMode, ImportWork};

/// The verdict on a gossiped block.
#[derive(Debug)]
pub enum Judgement {
    /// Handed to the importer: relay it (Accept).
    Queued,
    /// It passed, but the importer's queue is full: do not relay it (Ignore), nobody charged;
    /// counted as dropped.
    QueueFull,
    /// Its parent is unknown: do not relay it (Ignore); keep it and fetch the parent from the
    /// peer that sent it.
    Orphan(Box<Block>),
    /// Do not relay it; nobody is charged.
    Ignore,
    /// Answer gossipsub `acceptance`; the charge table says who pays for `found`.
    Penalize {
        /// What gossipsub is told.
        acceptance: MessageAcceptance,
        /// Which check failed.
        found: Found,
    },
    /// Undecodable bytes: the sender pays a small penalty (it forwarded what it could not read).
    Undecodable,
}

/// Judges the gossiped block `data` (reached us by `route`) against the chain at wall-clock time
/// `now_ms` and, if it passes, hands it to the node's importer, whose result goes to `results`.
pub fn admit_block(
    core: &dyn ChainAccess,
    data: &[u8],
    now_ms: u64,
    route: Route<PeerId>,
    results: &mpsc::Sender<Done>,
) -> Judgement {
    let block = match judge_block(core, data, now_ms) {
        Ok(block) => block,
        Err(verdict) => return verdict,
    };
    let work = ImportWork { blocks: vec![*block], mode: ImportMode::Unrequested };
    match core.queue_import(work, block_reply(route, results.clone())) {
        Ok(()) => Judgement::Queued,
        Err(_) => Judgement::QueueFull,
    }
}

/// Judges the gossiped block `data`: `Ok` with the block when it is to be relayed and imported,
/// else the verdict.
fn judge_block(core: &dyn ChainAccess, data: &[u8], now_ms: u64) -> Result<Box<Block>, Judgement> {
    let Ok(block) = Block::decode(data) else { return Err(Judgement::Undecodable) };
    let hash = block.hash();
    let reject =
        |e: &BlockError| Err(Judgement::Penalize { acceptance: MessageAcceptance::Reject, found: Found::of(e, &hash) });
    match check_header_stateless(core.params(), &block.header, now_ms) {
        Ok(()) => {
            let delay_ms = now_ms.saturating_sub(block.header.timestamp_ms);
            core.observe_block_propagation_delay(delay_ms as f64 / 1000.0);
        }
        Err(e @ BlockError::TimestampInFuture { .. }) => {
            tracing::debug!(error = %e, "block from the future ignored");
            return Err(Judgement::Ignore);
        }
        Err(e) => {
            tracing::info!(error = %e, "invalid block header from gossip");
            return reject(&e);
        }
    }
    let read = match core.store().read() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store to judge a block");
            return Err(Judgement::Ignore);
        }
    };
    match read.block_meta(&hash) {
        // Like a body found invalid at import: the signed author pays, not the relay, which may
        // have forwarded it honestly before anyone could know.
        Ok(Some(m)) if m.status == BlockStatus::Invalid => {
            return Err(Judgement::Penalize { acceptance: MessageAcceptance::Ignore, found: Found::KnownInvalid });
        }
        Ok(Some(_)) => return Err(Judgement::Ignore),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store to judge a block");
            return Err(Judgement::Ignore);
        }
    }
    let total_work = match check_header_in_context(&read, core.params(), &block.header, now_ms) {
        Ok(check) => check.total_work,
        Err(ContextError::ParentUnknown(_)) => return Err(Judgement::Orphan(Box::new(block))),
        Err(ContextError::ParentInvalid(parent)) => return reject(&BlockError::KnownInvalid(parent)),
        // The clock moved between the two checks: still not a fault.
        Err(ContextError::Invalid(BlockError::TimestampInFuture { .. })) => return Err(Judgement::Ignore),
        Err(ContextError::Invalid(e)) => {
            tracing::info!(error = %e, "block header out of context from gossip");
            return reject(&e);
        }
        Err(ContextError::Store(e)) => {
            tracing::warn!(error = %e, "cannot read the store to judge a block");
            return Err(Judgement::Ignore);
        }
    };
    drop(read);
    // Below the reorg window: it can never become canonical. A node that lags behind by up to a
    // window relays such blocks honestly (they are inside its own window): nobody is charged. A
    // whole window further down no honest node relays anything: the sender pays, a little.
    let tip = core.tip();
    let window = core.max_reorg_depth();
    let height = block.header.height;
    if height.saturating_add(window) <= tip.header.height {
        if height.saturating_add(window.saturating_mul(2)) <= tip.header.height {
            return Err(Judgement::Penalize { acceptance: MessageAcceptance::Ignore, found: Found::DeepFork });
        }
        return Err(Judgement::Ignore);
    }
    // A branch further behind than `SIDE_BRANCH_MARGIN_BLOCKS` is not a race that may win.
    if !within_side_branch_margin(total_work, block.header.difficulty, tip.total_work) {
        tracing::debug!(height = block.header.height, "side-chain block far behind the tip ignored");
        return Err(Judgement::Ignore);
    }
    Ok(Box::new(block))
}
