//! The sync client's view of our chain, read from the store: the work of blocks we hold, and the
//! header rules in context for a chain of fetched headers whose ancestors are partly ours and partly
//! fetched just before (`vision_state::ancestry::check_header_in_context` over an overlay of both).

use std::collections::HashMap;

use vision_primitives::consensus::{BlockError, ChainParams};
use vision_primitives::types::{BlockHeader, Hash};
use vision_state::ancestry::{ContextError, check_header_in_context};
use vision_state::{BlockMeta, BlockMetaReader, BlockStatus, ReadView, StoreError};

use super::sync_client::{ChainView, ContextFault};

/// A read snapshot of the store, the chain's parameters and our clock.
pub struct StoreView<'a> {
    /// The snapshot.
    pub read: ReadView,
    /// Consensus parameters (retarget, future limit).
    pub params: &'a ChainParams,
    /// Our clock, in Unix milliseconds.
    pub now_ms: u64,
}

/// The store with fetched headers laid over it: a fetched header is found here as a block whose
/// header is valid (its work is not needed by the checks).
struct Overlay<'a> {
    store: &'a ReadView,
    fetched: HashMap<Hash, BlockMeta>,
}

impl BlockMetaReader for Overlay<'_> {
    fn block_meta(&self, hash: &Hash) -> Result<Option<BlockMeta>, StoreError> {
        match self.fetched.get(hash) {
            Some(m) => Ok(Some(*m)),
            None => self.store.block_meta(hash),
        }
    }
}

impl ChainView for StoreView<'_> {
    fn work_of(&self, hash: &Hash) -> Option<u128> {
        self.read.block_meta(hash).ok().flatten().filter(|m| m.status != BlockStatus::Invalid).map(|m| m.total_work)
    }

    fn check_in_context(&self, earlier: &[BlockHeader], headers: &[BlockHeader]) -> Result<(), ContextFault> {
        let meta = |h: &BlockHeader| BlockMeta { header: *h, total_work: 0, status: BlockStatus::HeaderValid };
        let mut overlay = Overlay { store: &self.read, fetched: HashMap::with_capacity(earlier.len() + headers.len()) };
        overlay.fetched.extend(earlier.iter().map(|h| (h.hash(), meta(h))));
        for (index, h) in headers.iter().enumerate() {
            let error = match check_header_in_context(&overlay, self.params, h, self.now_ms) {
                Ok(_) => {
                    overlay.fetched.insert(h.hash(), meta(h));
                    continue;
                }
                Err(ContextError::Store(e)) => {
                    tracing::error!(error = %e, "cannot read the store to check headers");
                    return Err(ContextFault::Unavailable);
                }
                Err(ContextError::Invalid(e)) => e,
                Err(ContextError::ParentUnknown(p)) => BlockError::UnknownParent(p),
                Err(ContextError::ParentInvalid(p)) => BlockError::KnownInvalid(p),
            };
            return Err(ContextFault::Invalid { index, error });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision_primitives::consensus::{HeaderContext, meets_difficulty, next_difficulty};
    use vision_primitives::genesis::Genesis;
    use vision_state::Store;

    /// A chain of `n` headers on `genesis`, `gap_ms` apart, each with the difficulty the retarget
    /// requires after its ancestors, mined.
    fn headers(genesis: &Genesis, n: usize, gap_ms: u64) -> Vec<BlockHeader> {
        let params = genesis.params();
        let mut all = vec![genesis.block().header];
        for _ in 0..n {
            let parent = *all.last().unwrap();
            let earlier = &all[..all.len() - 1];
            let mut h = parent;
            h.height += 1;
            h.parent = parent.hash();
            h.timestamp_ms += gap_ms;
            h.difficulty = next_difficulty(&params, &parent, earlier);
            assert_eq!(h.difficulty, HeaderContext { parent: &parent, earlier }.next_difficulty(&params));
            h.nonce = 0;
            while !meets_difficulty(&h.hash(), h.difficulty) {
                h.nonce += 1;
            }
            all.push(h);
        }
        all.split_off(1)
    }

    fn setting() -> (Genesis, Store) {
        let genesis = Genesis { initial_difficulty: 16, allocations: Vec::new(), ..Genesis::devnet() };
        let store = Store::in_memory(&genesis).unwrap();
        (genesis, store)
    }

    #[test]
    fn fetched_headers_are_checked_against_stored_and_fetched_ancestors() {
        let (genesis, store) = setting();
        let params = genesis.params();
        // Blocks faster than the target: the retarget raises the difficulty, so each header's own
        // proof of work is not enough, its difficulty must be the required one.
        let chain = headers(&genesis, 40, params.target_block_time_ms / 4);
        assert!(chain.last().unwrap().difficulty > chain[0].difficulty, "the retarget moved");
        let view = StoreView { read: store.read().unwrap(), params: &params, now_ms: u64::MAX / 4 };
        assert_eq!(view.work_of(&genesis.hash()), Some(u128::from(genesis.initial_difficulty)));
        assert_eq!(view.work_of(&chain[0].hash()), None);
        assert_eq!(view.check_in_context(&[], &chain), Ok(()));
        // In two pieces: the second's context is the first's tail.
        assert_eq!(view.check_in_context(&[], &chain[..25]), Ok(()));
        assert_eq!(view.check_in_context(&chain[..25], &chain[25..]), Ok(()));
        // A header whose proof of work meets its own difficulty, one below the required one.
        let mut cheap = chain.clone();
        cheap[30].difficulty -= 1;
        cheap[30].nonce = 0;
        while !meets_difficulty(&cheap[30].hash(), cheap[30].difficulty) {
            cheap[30].nonce += 1;
        }
        for i in 31..cheap.len() {
            cheap[i].parent = cheap[i - 1].hash();
        }
        let fault = view.check_in_context(&[], &cheap).unwrap_err();
        assert!(
            matches!(fault, ContextFault::Invalid { index: 30, error: BlockError::WrongDifficulty { .. } }),
            "{fault:?}"
        );
        // Without the fetched context, the second piece has no parent.
        let fault = view.check_in_context(&[], &chain[25..]).unwrap_err();
        assert!(matches!(fault, ContextFault::Invalid { index: 0, error: BlockError::UnknownParent(_) }), "{fault:?}");
    }

    #[test]
    fn a_header_on_a_block_stored_as_invalid_is_refused() {
        let (genesis, store) = setting();
        let params = genesis.params();
        let chain = headers(&genesis, 3, params.target_block_time_ms);
        let w = store.write().unwrap();
        let bad = vision_primitives::types::Block { header: chain[0], transactions: Vec::new() };
        w.put_block(&bad, &BlockMeta { header: chain[0], total_work: 0, status: BlockStatus::Invalid }).unwrap();
        w.commit().unwrap();
        let view = StoreView { read: store.read().unwrap(), params: &params, now_ms: u64::MAX / 4 };
        assert_eq!(view.work_of(&chain[0].hash()), None, "an invalid block anchors nothing");
        let fault = view.check_in_context(&[], &chain[1..]).unwrap_err();
        assert!(matches!(fault, ContextFault::Invalid { index: 0, error: BlockError::KnownInvalid(_) }), "{fault:?}");
    }
}
