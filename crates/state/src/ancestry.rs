//! Headers in context: the ancestors a child of a stored block is checked against, and the full
//! contextual check of a header against its stored parent.
//!
//! - [`ancestors`] reads the retarget window and median-time span behind a parent: at most
//!   [`CONTEXT_SPAN`]` - 1` headers by parent links (60 block-meta lookups, each one redb B-tree
//!   read of 178 bytes), whatever the chain's length.
//! - [`check_header_in_context`] is what gossip validation and header-first sync call before they
//!   relay, fetch or store anything: stateless rules, parent known and not invalid, then height,
//!   expected difficulty and median time against the parent. Its outcomes separate what the
//!   sender could have known (a broken rule) from what it could not (an unknown parent) and from
//!   our own storage failing.
//! - [`child_rules`] is what the miner builds on: the difficulty and the earliest timestamp a
//!   child of a stored block must carry.
//!
//! The rules themselves are `vision_primitives::consensus` (`protocols/consensus.md`).

use thiserror::Error;

use crate::{BlockMeta, BlockMetaReader, BlockStatus, StoreError};
use vision_primitives::consensus::{
    BlockError, CONTEXT_SPAN, ChainParams, HeaderContext, check_header_context, check_header_stateless,
};
use vision_primitives::types::{BlockHeader, Hash};

/// Up to `CONTEXT_SPAN - 1` ancestors of `parent`, oldest first, ending with `parent`'s own parent
/// (fewer only when they reach genesis): the `earlier` of a [`HeaderContext`] for a child of
/// `parent`. A missing ancestor of a stored block is a corrupt store.
pub fn ancestors<R: BlockMetaReader>(r: &R, parent: &BlockHeader) -> Result<Vec<BlockHeader>, StoreError> {
    let mut out = Vec::with_capacity(CONTEXT_SPAN - 1);
    let mut cur = *parent;
    while out.len() < CONTEXT_SPAN - 1 && cur.height > 0 {
        let m = r
            .block_meta(&cur.parent)?
            .ok_or_else(|| StoreError::Corrupt(format!("ancestor {} missing", cur.parent)))?;
        out.push(m.header);
        cur = m.header;
    }
    out.reverse();
    Ok(out)
}

/// What a child of a stored block must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildRules {
    /// The difficulty the retarget requires.
    pub difficulty: u64,
    /// The smallest admissible timestamp: median time past + 1.
    pub min_timestamp_ms: u64,
}

/// The rules a child of `parent` (a stored block) must meet.
pub fn child_rules<R: BlockMetaReader>(
    r: &R,
    params: &ChainParams,
    parent: &BlockHeader,
) -> Result<ChildRules, StoreError> {
    let earlier = ancestors(r, parent)?;
    let ctx = HeaderContext { parent, earlier: &earlier };
    Ok(ChildRules {
        difficulty: ctx.next_difficulty(params),
        min_timestamp_ms: ctx.median_time_past().saturating_add(1),
    })
}

/// Storage policy, not consensus: an unrequested side-chain block (gossiped, or an orphan released
/// once its parent arrived; not asked for) is relayed and stored only if its branch has at least
/// the tip's total work minus this many blocks' worth of the block's own difficulty
/// ([`within_side_branch_margin`]). A competing block at the tip's height or a few below it is a
/// race that may still win; a branch further behind is not worth anyone's bandwidth or disk
/// (Bitcoin Core likewise processes an unrequested block only if it has more work than the tip).
/// Gossip validation applies it before relaying, and the import itself before storing
/// (`import::Arrival::Unrequested`, refused as `ImportError::LowWorkSideBlock`: nobody charged,
/// nothing marked invalid), also to an orphan's ancestors fetched by hash (else a cheap orphan
/// gets its whole low-work branch stored through its parents). Blocks asked for by range sync
/// (headers first: their work was proven) and our own are stored whatever this rule says.
pub const SIDE_BRANCH_MARGIN_BLOCKS: u128 = 6;

/// True if a block of `difficulty` whose branch totals `branch_work` is within
/// [`SIDE_BRANCH_MARGIN_BLOCKS`] of a tip with `tip_work`.
pub fn within_side_branch_margin(branch_work: u128, difficulty: u64, tip_work: u128) -> bool {
    let margin = u128::from(difficulty).saturating_mul(SIDE_BRANCH_MARGIN_BLOCKS);
    branch_work.saturating_add(margin) >= tip_work
}

/// A header that passed every header rule against its stored parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderCheck {
    /// The stored parent.
    pub parent: BlockMeta,
    /// Total work of the chain ending in the header: the parent's plus the header's difficulty.
    pub total_work: u128,
}

/// Why a header could not be accepted in context.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContextError {
    /// The parent is not stored: the header cannot be judged yet (an orphan; fetch the parent
    /// from whoever sent it). Not the sender's fault by itself.
    #[error("unknown parent {0}")]
    ParentUnknown(Hash),
    /// The parent is stored as invalid, so the header is too. Checkable by anyone holding the
    /// parent; a relay that did not hold it could not know.
    #[error("parent {0} is known to be invalid")]
    ParentInvalid(Hash),
    /// The header breaks a rule: stateless (version, height 0, PoW against its own difficulty,
    /// timestamp beyond the future limit, which may pass later) or in context (height, expected
    /// difficulty, median time). All are checkable from the header and its parent.
    #[error(transparent)]
    Invalid(BlockError),
    /// Our own storage failed; the header is not at fault.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks `header` as a child of its stored parent at local time `now_ms`: first the stateless
/// rules (so a header with no valid proof of work costs no database read), then parent lookup,
/// then height, difficulty and median time against the parent and its ancestors
/// ([`check_header_context`]). Reads at most `CONTEXT_SPAN` block metas. Does not look the header
/// itself up (the caller knows whether it is stored already) and stores nothing.
pub fn check_header_in_context<R: BlockMetaReader>(
    r: &R,
    params: &ChainParams,
    header: &BlockHeader,
    now_ms: u64,
) -> Result<HeaderCheck, ContextError> {
    check_header_stateless(params, header, now_ms).map_err(ContextError::Invalid)?;
    let parent = r.block_meta(&header.parent)?.ok_or(ContextError::ParentUnknown(header.parent))?;
    if parent.status == BlockStatus::Invalid {
        return Err(ContextError::ParentInvalid(header.parent));
    }
    let earlier = ancestors(r, &parent.header)?;
    check_header_context(params, header, &HeaderContext { parent: &parent.header, earlier: &earlier })
        .map_err(ContextError::Invalid)?;
    Ok(HeaderCheck { parent, total_work: parent.total_work.saturating_add(u128::from(header.difficulty)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use vision_primitives::consensus::{MEDIAN_TIME_SPAN, meets_difficulty};
    use vision_primitives::genesis::Genesis;
    use vision_primitives::types::{Address, Block, ENCODING_VERSION};

    fn genesis() -> Genesis {
        Genesis { initial_difficulty: 1_000, allocations: Vec::new(), ..Genesis::devnet() }
    }

    fn mine(mut h: BlockHeader) -> BlockHeader {
        while !meets_difficulty(&h.hash(), h.difficulty) {
            h.nonce += 1;
        }
        h
    }

    /// Stores a chain of `n` headers on genesis, 1 s apart, each with the difficulty the rules
    /// require (bodies are not needed for header checks). Returns the store and the headers.
    fn stored_chain(n: u64) -> (Store, ChainParams, Vec<BlockHeader>) {
        let g = genesis();
        let store = Store::in_memory(&g).unwrap();
        let params = g.params();
        let mut headers = vec![g.block().header];
        for h in 1..=n {
            let parent = *headers.last().unwrap();
            let rules = {
                let r = store.read().unwrap();
                child_rules(&r, &params, &parent).unwrap()
            };
            let header = mine(BlockHeader {
                version: ENCODING_VERSION,
                height: h,
                parent: parent.hash(),
                timestamp_ms: g.timestamp_ms + h * 1_000,
                difficulty: rules.difficulty,
                miner: Address::default(),
                tx_root: Hash::ZERO,
                state_root: Hash::ZERO,
                nonce: 0,
            });
            let w = store.write().unwrap();
            let block = Block { header, transactions: Vec::new() };
            let meta = BlockMeta { header, total_work: u128::from(h), status: BlockStatus::HeaderValid };
            w.put_block(&block, &meta).unwrap();
            w.commit().unwrap();
            headers.push(header);
        }
        (store, params, headers)
    }

    fn child(params: &ChainParams, store: &Store, parent: &BlockHeader, ts: u64) -> BlockHeader {
        let rules = child_rules(&store.read().unwrap(), params, parent).unwrap();
        mine(BlockHeader {
            version: ENCODING_VERSION,
            height: parent.height + 1,
            parent: parent.hash(),
            timestamp_ms: ts,
            difficulty: rules.difficulty,
            miner: Address::default(),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            nonce: 0,
        })
    }

    #[test]
    fn ancestors_are_bounded_and_oldest_first() {
        let (store, _, headers) = stored_chain(70);
        let r = store.read().unwrap();
        let got = ancestors(&r, &headers[70]).unwrap();
        assert_eq!(got.len(), CONTEXT_SPAN - 1);
        assert_eq!(got, headers[70 - (CONTEXT_SPAN - 1)..70].to_vec());
        assert_eq!(ancestors(&r, &headers[3]).unwrap(), headers[..3].to_vec(), "down to genesis");
        assert!(ancestors(&r, &headers[0]).unwrap().is_empty());
        // An ancestor missing from the store is corruption, not a rule failure.
        let mut orphan = headers[70];
        orphan.height = 71;
        orphan.parent = Hash([9; 32]);
        assert!(matches!(ancestors(&r, &orphan), Err(StoreError::Corrupt(_))));
        const { assert!(CONTEXT_SPAN > MEDIAN_TIME_SPAN) };
    }

    #[test]
    fn every_outcome_of_the_contextual_check() {
        let (store, params, headers) = stored_chain(20);
        let parent = headers[20];
        let now = parent.timestamp_ms + 1_000;
        let r = store.read().unwrap();

        let good = child(&params, &store, &parent, now);
        let ok = check_header_in_context(&r, &params, &good, now).unwrap();
        assert_eq!(ok.parent.header, parent);
        assert_eq!(ok.total_work, 20 + u128::from(good.difficulty));

        // Unknown parent.
        let mut orphan = good;
        orphan.parent = Hash([7; 32]);
        let orphan = mine(orphan);
        assert_eq!(check_header_in_context(&r, &params, &orphan, now), Err(ContextError::ParentUnknown(Hash([7; 32]))));

        // Wrong difficulty: the proof of work meets the header's own field, not the rule's.
        assert_eq!(good.difficulty, 1_000);
        let mut cheap = good;
        cheap.difficulty = 1;
        let cheap = mine(cheap);
        assert!(matches!(
            check_header_in_context(&r, &params, &cheap, now),
            Err(ContextError::Invalid(BlockError::WrongDifficulty { .. }))
        ));

        // Timestamp not above the median time past.
        let old = child(&params, &store, &parent, headers[15].timestamp_ms);
        assert!(matches!(
            check_header_in_context(&r, &params, &old, now),
            Err(ContextError::Invalid(BlockError::TimestampTooOld { .. }))
        ));

        // Beyond the future limit (3 s on the devnet): a stateless failure, checked before any read.
        let future = child(&params, &store, &parent, now + params.max_future_drift_ms() + 1);
        assert!(matches!(
            check_header_in_context(&r, &params, &future, now),
            Err(ContextError::Invalid(BlockError::TimestampInFuture { .. }))
        ));
        assert!(check_header_in_context(&r, &params, &future, now + 1).is_ok(), "valid once the clock catches up");

        // Wrong height.
        let mut tall = good;
        tall.height += 1;
        let tall = mine(tall);
        assert!(matches!(
            check_header_in_context(&r, &params, &tall, now),
            Err(ContextError::Invalid(BlockError::WrongHeight { .. }))
        ));
        drop(r);

        // Parent stored as invalid.
        let w = store.write().unwrap();
        w.set_status(&parent.hash(), BlockStatus::Invalid).unwrap();
        w.commit().unwrap();
        let r = store.read().unwrap();
        assert_eq!(check_header_in_context(&r, &params, &good, now), Err(ContextError::ParentInvalid(parent.hash())));
    }

    #[test]
    fn a_storage_failure_is_not_a_rule_failure() {
        struct Broken;
        impl BlockMetaReader for Broken {
            fn block_meta(&self, _: &Hash) -> Result<Option<BlockMeta>, StoreError> {
                Err(StoreError::Db("disk on fire".into()))
            }
        }
        let (store, params, headers) = stored_chain(3);
        let good = child(&params, &store, &headers[3], headers[3].timestamp_ms + 1_000);
        assert_eq!(
            check_header_in_context(&Broken, &params, &good, good.timestamp_ms),
            Err(ContextError::Store(StoreError::Db("disk on fire".into())))
        );
    }
}
