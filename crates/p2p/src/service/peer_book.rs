//! Peer-book and ban writes, batched off the import path.
//!
//! Every identify answer (a peer's addresses) and every ban or unban changes the stored peer book.
//! Written one by one, each was a durable redb commit on the database's one writer, the writer
//! block import needs (issue #15): a churn of identities meant a churn of fsyncs between blocks.
//! Here the changes gather (the newest per peer wins) and go to the store in one write transaction
//! ([`vision_state::Store::save_peer_book`]) at most once per [`FLUSH_INTERVAL`], earlier only
//! when [`MAX_PENDING_CHANGES`] have gathered; one flush at a time, so writes land in order. At
//! shutdown the loop writes what is left before it returns (none lost); a crash loses at most the
//! last interval's sightings and bans.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use vision_state::PeerBookChange;

/// The longest a change waits before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Peers with a change waiting; at this many a flush is due at once, and while that flush is
/// still being written, sightings of further peers are dropped (counted in
/// `vision_p2p_dropped_messages_total{queue="peer_book"}`; the peer is written when seen again).
/// Bans and unbans are never dropped: the peer manager caps them.
pub const MAX_PENDING_CHANGES: usize = 4096;

/// What a peer's latest change is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Latest {
    Seen { addrs: Vec<Vec<u8>>, last_seen_ms: u64 },
    Ban { until_ms: u64 },
    Unban,
}

/// Changes waiting to be written, in the order their peers first changed.
#[derive(Debug, Default)]
pub struct PeerBookWrites {
    /// Per peer (raw id bytes): the latest sighting and the latest ban decision, which are
    /// independent (a banned peer stays in the book).
    seen: HashMap<Vec<u8>, Latest>,
    bans: HashMap<Vec<u8>, Latest>,
    /// Since when something is waiting.
    dirty_since: Option<Instant>,
}

impl PeerBookWrites {
    /// A peer was seen with `addrs`. Returns false (nothing recorded) when
    /// [`MAX_PENDING_CHANGES`] other peers' sightings are waiting already.
    pub fn seen(&mut self, peer: Vec<u8>, addrs: Vec<Vec<u8>>, last_seen_ms: u64, now: Instant) -> bool {
        if self.seen.len() >= MAX_PENDING_CHANGES && !self.seen.contains_key(&peer) {
            return false;
        }
        self.seen.insert(peer, Latest::Seen { addrs, last_seen_ms });
        self.dirty_since.get_or_insert(now);
        true
    }

    /// A peer was banned until `until_ms`.
    pub fn ban(&mut self, peer: Vec<u8>, until_ms: u64, now: Instant) {
        self.bans.insert(peer, Latest::Ban { until_ms });
        self.dirty_since.get_or_insert(now);
    }

    /// A peer's ban was lifted.
    pub fn unban(&mut self, peer: Vec<u8>, now: Instant) {
        self.bans.insert(peer, Latest::Unban);
        self.dirty_since.get_or_insert(now);
    }

    /// Peers with a change waiting.
    pub fn len(&self) -> usize {
        self.seen.len() + self.bans.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a flush is due at `now`: something has waited [`FLUSH_INTERVAL`], or
    /// [`MAX_PENDING_CHANGES`] peers have a change.
    pub fn due(&self, now: Instant) -> bool {
        self.dirty_since.is_some_and(|t| now.saturating_duration_since(t) >= FLUSH_INTERVAL)
            || self.len() >= MAX_PENDING_CHANGES
    }

    /// Everything waiting, as store changes (sightings first, then bans), leaving nothing.
    pub fn take(&mut self) -> Vec<PeerBookChange> {
        self.dirty_since = None;
        let seen = std::mem::take(&mut self.seen).into_iter().filter_map(|(peer, l)| match l {
            Latest::Seen { addrs, last_seen_ms } => Some(PeerBookChange::Seen { peer, addrs, last_seen_ms }),
            _ => None,
        });
        let bans = std::mem::take(&mut self.bans).into_iter().filter_map(|(peer, l)| match l {
            Latest::Ban { until_ms } => Some(PeerBookChange::Ban { peer, until_ms }),
            Latest::Unban => Some(PeerBookChange::Unban { peer }),
            Latest::Seen { .. } => None,
        });
        seen.chain(bans).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_wait_for_the_interval_and_the_newest_per_peer_wins() {
        let t0 = Instant::now();
        let mut w = PeerBookWrites::default();
        assert!(!w.due(t0 + FLUSH_INTERVAL * 10), "nothing waiting, nothing due");
        w.seen(vec![1], vec![vec![9]], 10, t0);
        w.seen(vec![1], vec![vec![8]], 20, t0 + Duration::from_secs(1));
        w.ban(vec![2], 100, t0 + Duration::from_secs(2));
        w.unban(vec![2], t0 + Duration::from_secs(3));
        w.ban(vec![3], 300, t0 + Duration::from_secs(3));
        assert!(!w.due(t0 + FLUSH_INTERVAL - Duration::from_millis(1)));
        assert!(w.due(t0 + FLUSH_INTERVAL), "due an interval after the first change");
        let mut changes = w.take();
        changes.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            changes,
            vec![
                PeerBookChange::Ban { peer: vec![3], until_ms: 300 },
                PeerBookChange::Seen { peer: vec![1], addrs: vec![vec![8]], last_seen_ms: 20 },
                PeerBookChange::Unban { peer: vec![2] },
            ]
        );
        assert!(w.is_empty() && !w.due(t0 + FLUSH_INTERVAL * 10), "taken");
    }

    #[test]
    fn a_sighting_does_not_undo_a_ban() {
        let t0 = Instant::now();
        let mut w = PeerBookWrites::default();
        w.ban(vec![1], 500, t0);
        w.seen(vec![1], vec![], 7, t0);
        let changes = w.take();
        assert!(changes.contains(&PeerBookChange::Ban { peer: vec![1], until_ms: 500 }), "{changes:?}");
        assert!(changes.contains(&PeerBookChange::Seen { peer: vec![1], addrs: vec![], last_seen_ms: 7 }));
    }

    #[test]
    fn a_churn_of_identities_makes_a_flush_due_at_the_cap() {
        let t0 = Instant::now();
        let mut w = PeerBookWrites::default();
        for i in 0..MAX_PENDING_CHANGES as u32 {
            assert!(!w.due(t0), "not due before the cap ({i})");
            assert!(w.seen(i.to_le_bytes().to_vec(), vec![], 1, t0));
        }
        assert!(w.due(t0));
        // Held at the cap until taken: another peer's sighting is refused, a known peer's updated,
        // a ban kept.
        assert!(!w.seen(u32::MAX.to_le_bytes().to_vec(), vec![], 1, t0));
        assert!(w.seen(0u32.to_le_bytes().to_vec(), vec![], 2, t0));
        w.ban(vec![7], 9, t0);
        assert_eq!(w.take().len(), MAX_PENDING_CHANGES + 1);
    }
}
