//! Blocks known invalid only because an ancestor is: kept as hashes in a bounded in-memory set,
//! never as bodies (issue #14, item 3).
//!
//! A block whose parent is known invalid costs its sender nothing to make beyond its own proof of
//! work, so remembering it must cost us next to nothing: a hash and its parent's hash (about 100
//! bytes with the index), at most [`MAX_INVALID_DESCENDANTS`] of them, the oldest forgotten first.
//! Forgetting one is harmless: the block (or a child of it) comes back as an orphan, or with a
//! parent that is itself in the set or stored as invalid, and is refused again.
//!
//! Blocks found invalid by their own fault (a broken header context, a transaction that does not
//! execute, a wrong state root) are different: their header stays in the `blocks` table with
//! status `Invalid` (178 bytes each, paid for by the block's proof of work in context), their body
//! is dropped. Together the two answer [`crate::Chain::is_known_invalid`].
//!
//! The parent hash is kept so that `reconsider` can clear the descendants of a block it clears.

use std::collections::{BTreeMap, HashMap, HashSet};

use vision_primitives::bounds::Resource;
use vision_primitives::types::Hash;

/// Most descendants of invalid blocks remembered.
pub const MAX_INVALID_DESCENDANTS: usize = 16_384;
/// The set of descendants of invalid blocks, in the resource registry (cap: [`MAX_INVALID_DESCENDANTS`]).
pub const INVALID_DESCENDANTS: Resource =
    Resource::new("invalid_descendants", "state::MAX_INVALID_DESCENDANTS", MAX_INVALID_DESCENDANTS);

/// A bounded set of block hashes with their parents, forgetting the oldest insertion when full.
#[derive(Debug)]
pub struct InvalidSet {
    cap: usize,
    next: u64,
    /// Hash to (parent, insertion number).
    entries: HashMap<Hash, (Hash, u64)>,
    /// Insertion number to hash: the eviction order.
    order: BTreeMap<u64, Hash>,
}

impl InvalidSet {
    /// An empty set holding at most `cap` hashes (at least one).
    pub fn new(cap: usize) -> Self {
        InvalidSet { cap: cap.max(1), next: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    /// Remembers `hash` (a child of `parent`) as invalid; forgets the oldest entry when full.
    pub fn insert(&mut self, hash: Hash, parent: Hash) {
        if let Some((_, seq)) = self.entries.remove(&hash) {
            self.order.remove(&seq);
        }
        while self.entries.len() >= self.cap {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        let seq = self.next;
        self.next += 1;
        self.entries.insert(hash, (parent, seq));
        self.order.insert(seq, hash);
    }

    /// True if `hash` is remembered.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.entries.contains_key(hash)
    }

    /// The parent `hash` was remembered with.
    pub fn parent_of(&self, hash: &Hash) -> Option<Hash> {
        self.entries.get(hash).map(|(p, _)| *p)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every entry descending from one of `roots` (the roots themselves included if
    /// present); returns how many were forgotten.
    pub fn remove_descendants(&mut self, roots: &[Hash]) -> usize {
        let mut children: HashMap<Hash, Vec<Hash>> = HashMap::new();
        for (h, (p, _)) in &self.entries {
            children.entry(*p).or_default().push(*h);
        }
        let mut seen: HashSet<Hash> = HashSet::new();
        let mut stack: Vec<Hash> = roots.to_vec();
        while let Some(h) = stack.pop() {
            if !seen.insert(h) {
                continue;
            }
            if let Some(c) = children.get(&h) {
                stack.extend(c.iter().copied());
            }
        }
        let mut removed = 0;
        for h in seen {
            if let Some((_, seq)) = self.entries.remove(&h) {
                self.order.remove(&seq);
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> Hash {
        Hash([i; 32])
    }

    #[test]
    fn bounded_oldest_first_and_descendants_removed() {
        let mut s = InvalidSet::new(3);
        s.insert(h(1), h(0));
        s.insert(h(2), h(1));
        s.insert(h(3), h(2));
        s.insert(h(4), h(9));
        assert_eq!(s.len(), 3);
        assert!(!s.contains(&h(1)), "the oldest is forgotten");
        assert!(s.contains(&h(2)) && s.contains(&h(3)) && s.contains(&h(4)));
        // Descendants of 1 (2 and 3, through 2) go; 4 stays.
        assert_eq!(s.remove_descendants(&[h(1)]), 2);
        assert!(s.contains(&h(4)) && s.len() == 1);
        // Re-inserting refreshes instead of duplicating.
        s.insert(h(4), h(9));
        assert_eq!(s.len(), 1);
    }
}
