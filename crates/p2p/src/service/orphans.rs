//! The orphan pool: blocks whose parent we do not have yet, kept with who sent them until the
//! parent arrives. Capped at [`ORPHAN_CAP`] blocks; when full it is cleared whole (a peer that far
//! ahead is synced by range instead).

use std::collections::HashMap;

use vision_primitives::types::{Block, Hash};

/// Orphan blocks held while their ancestors are fetched.
pub const ORPHAN_CAP: usize = 256;

/// What [`OrphanPool::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The pool was full and was cleared first.
    pub cleared: bool,
    /// No other orphan waited for this parent: it has not been asked for yet.
    pub first_for_parent: bool,
}

/// Orphans by missing parent; `P` identifies the peer that sent each.
#[derive(Debug)]
pub struct OrphanPool<P> {
    by_parent: HashMap<Hash, Vec<(Block, Option<P>)>>,
    len: usize,
}

impl<P> Default for OrphanPool<P> {
    fn default() -> Self {
        OrphanPool { by_parent: HashMap::new(), len: 0 }
    }
}

impl<P> OrphanPool<P> {
    /// Keeps `block` (sent by `from`) until `parent` arrives.
    pub fn insert(&mut self, block: Block, from: Option<P>, parent: Hash) -> Inserted {
        let cleared = self.len >= ORPHAN_CAP;
        if cleared {
            self.by_parent.clear();
            self.len = 0;
        }
        let first_for_parent = !self.by_parent.contains_key(&parent);
        self.by_parent.entry(parent).or_default().push((block, from));
        self.len += 1;
        Inserted { cleared, first_for_parent }
    }

    /// The orphans waiting for `hash`, removed from the pool.
    pub fn release(&mut self, hash: &Hash) -> Vec<(Block, Option<P>)> {
        let children = self.by_parent.remove(hash).unwrap_or_default();
        self.len = self.len.saturating_sub(children.len());
        children
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: u64) -> Block {
        let mut b = vision_primitives::genesis::Genesis::devnet().block();
        b.header.height = height;
        b
    }

    #[test]
    fn released_with_their_senders_when_the_parent_arrives() {
        let mut pool = OrphanPool::<u8>::default();
        let parent = Hash([1; 32]);
        assert_eq!(pool.insert(block(5), Some(1), parent), Inserted { cleared: false, first_for_parent: true });
        assert_eq!(pool.insert(block(5), Some(2), parent), Inserted { cleared: false, first_for_parent: false });
        assert_eq!(pool.len(), 2);
        assert!(pool.release(&Hash([2; 32])).is_empty());
        let kids = pool.release(&parent);
        assert_eq!(kids.iter().map(|(_, p)| *p).collect::<Vec<_>>(), vec![Some(1), Some(2)]);
        assert!(pool.is_empty());
    }

    #[test]
    fn cleared_whole_when_full() {
        let mut pool = OrphanPool::<u8>::default();
        for i in 0..ORPHAN_CAP {
            assert!(!pool.insert(block(i as u64), None, Hash([i as u8; 32])).cleared);
        }
        assert_eq!(pool.len(), ORPHAN_CAP);
        assert!(pool.insert(block(0), None, Hash([0; 32])).cleared);
        assert_eq!(pool.len(), 1);
    }
}
