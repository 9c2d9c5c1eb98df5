//! The orphan pool: gossiped blocks whose parent we do not have yet, kept with the peer that sent
//! each and the peer that signed its gossip message (its author) until the parent arrives, so that a
//! fault found once it connects is charged by the charge table (`charge.rs`), not to whoever
//! happens to be at hand.
//!
//! Bounded three ways, each in the resource registry: [`ORPHAN_CAP`] blocks, [`ORPHAN_BYTES_CAP`]
//! encoded bytes, and [`ORPHANS_PER_PEER`] blocks per sender. A full pool evicts one block at a
//! time, the oldest first; a sender over its share evicts its own oldest, so one peer cannot flush
//! the orphans of others. Nothing is cleared whole.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash as StdHash;

use vision_primitives::types::{Block, Hash};

/// Orphan blocks held while their ancestors are fetched.
pub const ORPHAN_CAP: usize = 256;
/// Encoded bytes of the orphan blocks held (16 blocks of the maximum size).
pub const ORPHAN_BYTES_CAP: usize = 64 * 1024 * 1024;
/// Orphans held from one sender.
pub const ORPHANS_PER_PEER: usize = 32;

/// An orphan block and who brought it.
#[derive(Debug, Clone)]
pub struct Orphan<P> {
    /// The block.
    pub block: Block,
    /// The peer that sent it to us.
    pub from: Option<P>,
    /// The peer that signed its gossip message.
    pub author: Option<P>,
}

/// What [`OrphanPool::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// Blocks evicted to make room (the oldest of the pool, or of this sender).
    pub evicted: usize,
    /// No other orphan waited for this parent: it has not been asked for yet.
    pub first_for_parent: bool,
    /// The block was held already (same hash): nothing changed.
    pub duplicate: bool,
}

struct Entry<P> {
    orphan: Orphan<P>,
    parent: Hash,
    bytes: usize,
    seq: u64,
}

/// Orphans by hash, with an index by missing parent and an age order; `P` identifies a peer.
pub struct OrphanPool<P> {
    entries: HashMap<Hash, Entry<P>>,
    by_parent: HashMap<Hash, Vec<Hash>>,
    /// Insertion order: sequence number → hash. The first is the oldest.
    age: BTreeMap<u64, Hash>,
    per_peer: HashMap<P, usize>,
    bytes: usize,
    next_seq: u64,
}

impl<P> Default for OrphanPool<P> {
    fn default() -> Self {
        OrphanPool {
            entries: HashMap::new(),
            by_parent: HashMap::new(),
            age: BTreeMap::new(),
            per_peer: HashMap::new(),
            bytes: 0,
            next_seq: 0,
        }
    }
}

impl<P: Copy + Eq + StdHash> OrphanPool<P> {
    /// Keeps `orphan` until its parent arrives. A block larger than [`ORPHAN_BYTES_CAP`] is not
    /// kept (no block is: the cap is well above `MAX_BLOCK_BYTES`).
    pub fn insert(&mut self, orphan: Orphan<P>) -> Inserted {
        let hash = orphan.block.hash();
        let parent = orphan.block.header.parent;
        if self.entries.contains_key(&hash) {
            return Inserted { evicted: 0, first_for_parent: false, duplicate: true };
        }
        let bytes = orphan.block.encoded_len();
        let mut evicted = 0;
        if let Some(p) = orphan.from
            && self.per_peer.get(&p).copied().unwrap_or(0) >= ORPHANS_PER_PEER
            && let Some(oldest) = self.oldest_from(&p)
        {
            self.remove(&oldest);
            evicted += 1;
        }
        while !self.entries.is_empty() && (self.entries.len() >= ORPHAN_CAP || self.bytes + bytes > ORPHAN_BYTES_CAP) {
            let Some((_, oldest)) = self.age.first_key_value().map(|(s, h)| (*s, *h)) else { break };
            self.remove(&oldest);
            evicted += 1;
        }
        let first_for_parent = !self.by_parent.contains_key(&parent);
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(p) = orphan.from {
            *self.per_peer.entry(p).or_default() += 1;
        }
        self.by_parent.entry(parent).or_default().push(hash);
        self.age.insert(seq, hash);
        self.bytes += bytes;
        self.entries.insert(hash, Entry { orphan, parent, bytes, seq });
        Inserted { evicted, first_for_parent, duplicate: false }
    }

    /// The orphans waiting for `hash`, removed from the pool, oldest first.
    pub fn release(&mut self, hash: &Hash) -> Vec<Orphan<P>> {
        let children = self.by_parent.get(hash).cloned().unwrap_or_default();
        children.iter().filter_map(|c| self.remove(c)).collect()
    }

    /// Drops the orphans waiting for `parent` that `from` sent (it could not give us the parent);
    /// returns how many.
    pub fn forget_from(&mut self, parent: &Hash, from: &P) -> usize {
        let children = self.by_parent.get(parent).cloned().unwrap_or_default();
        let mine: Vec<Hash> = children
            .into_iter()
            .filter(|c| self.entries.get(c).is_some_and(|e| e.orphan.from.as_ref() == Some(from)))
            .collect();
        mine.iter().filter_map(|c| self.remove(c)).count()
    }

    /// Whether some orphan waits for `parent`.
    pub fn waits_for(&self, parent: &Hash) -> bool {
        self.by_parent.contains_key(parent)
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn oldest_from(&self, p: &P) -> Option<Hash> {
        self.age.values().find(|h| self.entries.get(*h).is_some_and(|e| e.orphan.from.as_ref() == Some(p))).copied()
    }

    fn remove(&mut self, hash: &Hash) -> Option<Orphan<P>> {
        let e = self.entries.remove(hash)?;
        self.age.remove(&e.seq);
        self.bytes -= e.bytes;
        if let Some(kids) = self.by_parent.get_mut(&e.parent) {
            kids.retain(|k| k != hash);
            if kids.is_empty() {
                self.by_parent.remove(&e.parent);
            }
        }
        if let Some(p) = e.orphan.from
            && let Some(n) = self.per_peer.get_mut(&p)
        {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&p);
            }
        }
        Some(e.orphan)
    }
}

#[cfg(test)]
mod tests {
    use vision_primitives::types::{Address, Transaction, TxKind};

    use super::*;

    fn block(height: u64, parent: Hash) -> Block {
        let mut b = vision_primitives::genesis::Genesis::devnet().block();
        b.header.height = height;
        b.header.parent = parent;
        b
    }

    fn orphan(height: u64, parent: Hash, from: u8) -> Orphan<u8> {
        Orphan { block: block(height, parent), from: Some(from), author: Some(100 + from) }
    }

    #[test]
    fn released_with_sender_and_author_when_the_parent_arrives() {
        let mut pool = OrphanPool::<u8>::default();
        let parent = Hash([1; 32]);
        let a = pool.insert(orphan(5, parent, 1));
        assert_eq!(a, Inserted { evicted: 0, first_for_parent: true, duplicate: false });
        let b = pool.insert(orphan(6, parent, 2));
        assert_eq!(b, Inserted { evicted: 0, first_for_parent: false, duplicate: false });
        assert!(pool.insert(orphan(6, parent, 2)).duplicate);
        assert_eq!(pool.len(), 2);
        assert!(pool.release(&Hash([2; 32])).is_empty());
        let kids = pool.release(&parent);
        assert_eq!(
            kids.iter().map(|o| (o.from, o.author)).collect::<Vec<_>>(),
            vec![(Some(1), Some(101)), (Some(2), Some(102))]
        );
        assert!(pool.is_empty());
        assert_eq!(pool.bytes(), 0);
    }

    #[test]
    fn a_full_pool_evicts_the_oldest_block_not_everything() {
        let mut pool = OrphanPool::<u8>::default();
        for i in 0..ORPHAN_CAP {
            // Spread over enough senders that no one reaches its share.
            let ins = pool.insert(orphan(i as u64, Hash([i as u8; 32]), (i % 16) as u8));
            assert_eq!(ins.evicted, 0);
        }
        assert_eq!(pool.len(), ORPHAN_CAP);
        let ins = pool.insert(orphan(10_000, Hash([0xee; 32]), 200));
        assert_eq!(ins.evicted, 1);
        assert_eq!(pool.len(), ORPHAN_CAP);
        // The oldest (height 0, parent [0; 32]) went; the next oldest is still there.
        assert!(!pool.waits_for(&Hash([0; 32])));
        assert!(pool.waits_for(&Hash([1; 32])));
    }

    #[test]
    fn one_sender_cannot_flush_the_others() {
        let mut pool = OrphanPool::<u8>::default();
        pool.insert(orphan(1, Hash([1; 32]), 1));
        for i in 0..(ORPHAN_CAP as u64 * 2) {
            let mut b = block(100 + i, Hash([2; 32]));
            b.header.timestamp_ms = i;
            pool.insert(Orphan { block: b, from: Some(9), author: Some(9) });
        }
        assert_eq!(pool.len(), 1 + ORPHANS_PER_PEER);
        assert!(pool.waits_for(&Hash([1; 32])), "the other sender's orphan survived the flood");
        assert_eq!(pool.forget_from(&Hash([2; 32]), &9), ORPHANS_PER_PEER);
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn capped_in_bytes_with_per_block_eviction() {
        let mut pool = OrphanPool::<u8>::default();
        // Blocks of ~1 MiB: a transfer is ~150 bytes encoded.
        let big = |height: u64, from: u8| {
            let mut b = block(height, Hash([height as u8; 32]));
            let tx = Transaction {
                chain_id: 1,
                from: Address([6; 32]),
                nonce: 0,
                fee: 1,
                kind: TxKind::Transfer { to: Address([7; 32]), amount: 1 },
                signature: [0; 64],
            };
            b.transactions = vec![tx; 7_000];
            Orphan { block: b, from: Some(from), author: None }
        };
        let one = big(0, 0).block.encoded_len();
        assert!(one > 1_000_000, "{one}");
        let fit = ORPHAN_BYTES_CAP / one;
        for i in 0..fit as u64 {
            assert_eq!(pool.insert(big(i, (i % 8) as u8)).evicted, 0);
        }
        assert!(pool.bytes() <= ORPHAN_BYTES_CAP);
        let ins = pool.insert(big(fit as u64, 9));
        assert_eq!(ins.evicted, 1, "exactly one block made room");
        assert!(pool.bytes() <= ORPHAN_BYTES_CAP);
        assert_eq!(pool.len(), fit);
    }
}
