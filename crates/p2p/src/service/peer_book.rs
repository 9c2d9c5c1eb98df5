//! Peer-book and ban writes, batched off the import path.
//!
//! Every change of the address manager's records ([`crate::addrman`]: a peer heard of, reached,
//! failed, forgotten; the anchors) and every ban or unban changes the stored peer book.
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
/// still being written, record changes of further peers are dropped (counted in
/// `vision_p2p_dropped_messages_total{queue="peer_book"}`; the record is written when it changes
/// again).
/// Bans and unbans are never dropped: the peer manager caps them.
pub const MAX_PENDING_CHANGES: usize = 4096;

/// What a peer's latest change is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Latest {
    Record(Option<Vec<u8>>),
    Ban { until_ms: u64 },
    Unban,
}

/// Changes waiting to be written, in the order their peers first changed.
#[derive(Debug, Default)]
pub struct PeerBookWrites {
    /// Per peer (raw id bytes): the latest record (or its removal) and the latest ban decision,
    /// which are independent (a banned peer stays in the book).
    records: HashMap<Vec<u8>, Latest>,
    bans: HashMap<Vec<u8>, Latest>,
    /// New anchors.
    anchors: Option<Vec<Vec<u8>>>,
    /// Empty the table written before the address manager.
    drop_legacy: bool,
    /// Since when something is waiting.
    dirty_since: Option<Instant>,
}

impl PeerBookWrites {
    /// A peer's address-manager record changed (`None`: forgotten). Returns false (nothing
    /// recorded) when [`MAX_PENDING_CHANGES`] other peers' changes are waiting already.
    pub fn record(&mut self, peer: Vec<u8>, record: Option<Vec<u8>>, now: Instant) -> bool {
        if self.records.len() >= MAX_PENDING_CHANGES && !self.records.contains_key(&peer) {
            return false;
        }
        self.records.insert(peer, Latest::Record(record));
        self.dirty_since.get_or_insert(now);
        true
    }

    /// The anchors changed.
    pub fn anchors(&mut self, peers: Vec<Vec<u8>>, now: Instant) {
        self.anchors = Some(peers);
        self.dirty_since.get_or_insert(now);
    }

    /// The peers written before the address manager were read into it.
    pub fn drop_legacy(&mut self, now: Instant) {
        self.drop_legacy = true;
        self.dirty_since.get_or_insert(now);
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
        self.records.len() + self.bans.len() + usize::from(self.anchors.is_some()) + usize::from(self.drop_legacy)
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

    /// Everything waiting, as store changes (records first, then the anchors, then bans),
    /// leaving nothing.
    pub fn take(&mut self) -> Vec<PeerBookChange> {
        self.dirty_since = None;
        let legacy = std::mem::take(&mut self.drop_legacy).then_some(PeerBookChange::DropLegacyPeers);
        let records = std::mem::take(&mut self.records).into_iter().filter_map(|(peer, l)| match l {
            Latest::Record(Some(record)) => Some(PeerBookChange::Put { peer, record }),
            Latest::Record(None) => Some(PeerBookChange::Forget { peer }),
            _ => None,
        });
        let anchors = self.anchors.take().map(|peers| PeerBookChange::Anchors { peers });
        let bans = std::mem::take(&mut self.bans).into_iter().filter_map(|(peer, l)| match l {
            Latest::Ban { until_ms } => Some(PeerBookChange::Ban { peer, until_ms }),
            Latest::Unban => Some(PeerBookChange::Unban { peer }),
            Latest::Record(_) => None,
        });
        legacy.into_iter().chain(records).chain(anchors).chain(bans).collect()
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
        w.record(vec![1], Some(vec![9]), t0);
        w.record(vec![1], Some(vec![8]), t0 + Duration::from_secs(1));
        w.record(vec![4], None, t0 + Duration::from_secs(1));
        w.anchors(vec![vec![1]], t0 + Duration::from_secs(1));
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
                PeerBookChange::Anchors { peers: vec![vec![1]] },
                PeerBookChange::Ban { peer: vec![3], until_ms: 300 },
                PeerBookChange::Forget { peer: vec![4] },
                PeerBookChange::Put { peer: vec![1], record: vec![8] },
                PeerBookChange::Unban { peer: vec![2] },
            ]
        );
        assert!(w.is_empty() && !w.due(t0 + FLUSH_INTERVAL * 10), "taken");
    }

    #[test]
    fn a_record_does_not_undo_a_ban() {
        let t0 = Instant::now();
        let mut w = PeerBookWrites::default();
        w.ban(vec![1], 500, t0);
        w.record(vec![1], Some(vec![7]), t0);
        w.drop_legacy(t0);
        let changes = w.take();
        assert!(changes.contains(&PeerBookChange::Ban { peer: vec![1], until_ms: 500 }), "{changes:?}");
        assert!(changes.contains(&PeerBookChange::Put { peer: vec![1], record: vec![7] }));
        assert_eq!(changes[0], PeerBookChange::DropLegacyPeers, "the old table is emptied first");
    }

    #[test]
    fn a_churn_of_identities_makes_a_flush_due_at_the_cap() {
        let t0 = Instant::now();
        let mut w = PeerBookWrites::default();
        for i in 0..MAX_PENDING_CHANGES as u32 {
            assert!(!w.due(t0), "not due before the cap ({i})");
            assert!(w.record(i.to_le_bytes().to_vec(), Some(vec![1]), t0));
        }
        assert!(w.due(t0));
        // Held at the cap until taken: another peer's record is refused, a known peer's updated,
        // a ban kept.
        assert!(!w.record(u32::MAX.to_le_bytes().to_vec(), Some(vec![1]), t0));
        assert!(w.record(0u32.to_le_bytes().to_vec(), None, t0));
        w.ban(vec![7], 9, t0);
        assert_eq!(w.take().len(), MAX_PENDING_CHANGES + 1);
    }
}
