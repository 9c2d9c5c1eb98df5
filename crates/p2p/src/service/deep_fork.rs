//! Peers on the other side of a deep fork: a chain that forks from ours further down than our
//! reorg window (issue #14 item 8, a partition longer than the window).
//!
//! Such a peer is not a liar: its chain may well be valid and even heavier, but we cannot follow
//! it without a reorganisation deeper than we take on our own. The sync client
//! (`sync_client.rs`) recognises it once the peer's headers prove, in context, a chain with more
//! work than ours whose fork point is below the window, or when a batch of such a chain is refused
//! as `ReorgTooDeep`. Nobody is charged; the peer is disconnected and refused for
//! [`DEEP_FORK_COOLDOWN`] (so it is not redialled, and does not make us fetch its headers, in a
//! loop) while its status claims more work than our chain has ([`Registry::refuses`], decided on
//! the status exchange), and the fork is reported: in this [`Registry`] (shown by `GET /v1/status` as
//! `deep_forks`), in the `vision_p2p_deep_fork_peers` gauge and `vision_p2p_deep_forks_total`
//! counter, and in a WARN log line that says what the operator can do.
//!
//! The operator chooses (docs/runbook.md, "A fork deeper than the reorg window"):
//! - **keep our chain**: `POST /admin/chain/deep-forks/keep` (`vision-node admin deep-fork keep`)
//!   drops the reports and refuses those peers for [`KEPT_COOLDOWN`];
//! - **follow theirs**: restart once with `--max-reorg-depth` above the reported depth, so that the
//!   reorganisation is within the window, and let the node sync from that side.
//!
//! A liar that fakes a deep fork must first prove the work it claims with headers that pass the
//! rules in context (as any sync candidate must); what it gains is a disconnect and a cooldown.
//! The registry is bounded ([`MAX_DEEP_FORKS`] peers, the oldest forgotten first).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as MetricsRegistry;
use serde::{Deserialize, Serialize};

/// How long a peer found on the other side of a deep fork is refused (not synced from, and
/// disconnected if it connects).
pub const DEEP_FORK_COOLDOWN: Duration = Duration::from_secs(600);
/// How long the peers of a fork the operator chose to ignore (`keep`) are refused.
pub const KEPT_COOLDOWN: Duration = Duration::from_secs(24 * 3600);
/// Peers remembered as on the other side of a deep fork (the oldest is forgotten first).
pub const MAX_DEEP_FORKS: usize = 256;
/// The registry of deep-fork peers, in the resource registry (cap: [`MAX_DEEP_FORKS`]).
pub const DEEP_FORKS: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("deep_forks", "p2p::service::deep_fork::MAX_DEEP_FORKS", MAX_DEEP_FORKS);

/// One peer on the other side of a deep fork, as `GET /v1/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepFork {
    /// The peer.
    pub peer: String,
    /// Height of the last block both chains share.
    pub fork_height: u64,
    /// Blocks of ours above the fork point when it was found (a reorganisation this deep would
    /// follow their chain).
    pub depth: u64,
    /// Our reorg window (`--max-reorg-depth`).
    pub window: u64,
    /// Our tip height when it was found.
    pub our_height: u64,
    /// Our total work then (decimal).
    pub our_work: String,
    /// The height of their chain as far as its headers were checked.
    pub their_height: u64,
    /// The total work their headers proved (decimal).
    pub their_work: String,
    /// When it was found (unix ms).
    pub since_unix_ms: u64,
}

struct Entry {
    fork: DeepFork,
    /// Refused until then.
    until: Instant,
    /// Whether the operator chose to keep our chain (not reported any more).
    kept: bool,
}

/// The metrics of deep forks (registered under the network's prefix, `vision_p2p_`).
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    /// Peers currently reported as on the other side of a deep fork.
    pub peers: Gauge,
    /// Deep forks found (a peer found again after its cooldown counts again).
    pub found: Counter,
}

impl Metrics {
    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &mut MetricsRegistry) {
        registry.register(
            "deep_fork_peers",
            "Peers reported as on the other side of a fork deeper than our reorg window",
            self.peers.clone(),
        );
        registry.register(
            "deep_forks",
            "Peers found on the other side of a fork deeper than our reorg window",
            self.found.clone(),
        );
    }
}

/// Peers found on the other side of a deep fork, shared by the network loop (which records and
/// refuses them) and the API (which shows them and lets the operator keep our chain).
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<PeerId, Entry>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("entries", &self.entries.lock().len()).finish()
    }
}

impl Registry {
    /// The metrics, to register.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Records `fork` for `peer`, refused until `now + DEEP_FORK_COOLDOWN`. Returns false if the
    /// peer was already reported (or kept) and still refused: nothing new to tell the operator.
    pub fn record(&self, peer: PeerId, fork: DeepFork, now: Instant) -> bool {
        let mut entries = self.entries.lock();
        if let Some(e) = entries.get_mut(&peer)
            && now < e.until
        {
            if !e.kept {
                e.fork = fork;
            }
            return false;
        }
        if entries.len() >= MAX_DEEP_FORKS
            && !entries.contains_key(&peer)
            && let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.until).map(|(p, _)| *p)
        {
            entries.remove(&oldest);
        }
        entries.insert(peer, Entry { fork, until: now + DEEP_FORK_COOLDOWN, kept: false });
        self.metrics.found.inc();
        self.update(&entries);
        true
    }

    /// Peers remembered (reported or kept), at most [`MAX_DEEP_FORKS`].
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// True if no peer is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.lock().is_empty()
    }

    /// Whether a connection of `peer` is refused as soon as it is established: the operator kept
    /// our chain against it (`keep`) and its cooldown runs.
    pub fn refuses_connection(&self, peer: &PeerId, now: Instant) -> bool {
        self.entries.lock().get(peer).is_some_and(|e| e.kept && now < e.until)
    }

    /// Whether `peer`, whose status now claims `their_work` while our chain has `our_work`, is
    /// refused (disconnected): found on the other side of a deep fork, its cooldown running, and
    /// kept by the operator or still claiming more work than ours. The refusal is there so that a
    /// heavier chain we cannot follow does not make us fetch its headers in a loop; a peer that
    /// claims no more work than ours never becomes a sync candidate, so it is let in. It is decided
    /// on the status, not on the connection: when a partition heals, both sides may find each other
    /// while their work still races, and the side that ends up heavier must not keep refusing the
    /// other, or that side could not follow it even after a restart with a deeper window (seen in
    /// `long_partition.rs` under load: 3 of 10 loaded runs).
    pub fn refuses(&self, peer: &PeerId, now: Instant, their_work: u128, our_work: u128) -> bool {
        self.entries.lock().get(peer).is_some_and(|e| now < e.until && (e.kept || their_work > our_work))
    }

    /// Forgets entries whose cooldown ended (their peers may be tried again).
    pub fn expire(&self, now: Instant) {
        let mut entries = self.entries.lock();
        let before = entries.len();
        entries.retain(|_, e| now < e.until);
        if entries.len() != before {
            self.update(&entries);
        }
    }

    /// The deep forks reported now (not kept), oldest first.
    pub fn reported(&self) -> Vec<DeepFork> {
        let entries = self.entries.lock();
        let mut out: Vec<DeepFork> = entries.values().filter(|e| !e.kept).map(|e| e.fork.clone()).collect();
        out.sort_by(|a, b| (a.since_unix_ms, &a.peer).cmp(&(b.since_unix_ms, &b.peer)));
        out
    }

    /// The operator keeps our chain: the reports of `peer` (or of every peer, with `None`) are
    /// dropped and their peers refused for [`KEPT_COOLDOWN`]. Returns the forks no longer reported.
    pub fn keep(&self, peer: Option<&PeerId>, now: Instant) -> Vec<DeepFork> {
        let mut entries = self.entries.lock();
        let mut kept = Vec::new();
        for (p, e) in entries.iter_mut() {
            if !e.kept && peer.is_none_or(|x| x == p) {
                e.kept = true;
                e.until = now + KEPT_COOLDOWN;
                kept.push(e.fork.clone());
            }
        }
        self.update(&entries);
        kept
    }

    fn update(&self, entries: &HashMap<PeerId, Entry>) {
        self.metrics.peers.set(entries.values().filter(|e| !e.kept).count() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fork(peer: &PeerId) -> DeepFork {
        DeepFork {
            peer: peer.to_string(),
            fork_height: 0,
            depth: 30,
            window: 8,
            our_height: 30,
            our_work: "30".into(),
            their_height: 40,
            their_work: "40".into(),
            since_unix_ms: 1,
        }
    }

    #[test]
    fn a_deep_fork_is_reported_once_refused_for_a_while_and_kept_on_request() {
        let r = Registry::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        assert!(r.record(p, fork(&p), t0));
        assert!(!r.record(p, fork(&p), t0 + Duration::from_secs(1)), "already reported");
        assert!(r.refuses(&p, t0 + DEEP_FORK_COOLDOWN - Duration::from_millis(1), 40, 30));
        assert!(!r.refuses(&p, t0 + DEEP_FORK_COOLDOWN, 40, 30));
        assert!(!r.refuses(&q, t0, 40, 30));
        assert!(!r.refuses_connection(&p, t0), "only a kept fork is refused on connection");
        assert!(r.record(q, fork(&q), t0));
        assert_eq!(r.reported().len(), 2);
        assert_eq!(r.metrics().peers.get(), 2);
        assert_eq!(r.metrics().found.get(), 2);
        // Keep our chain against p: no longer reported, refused for longer.
        assert_eq!(r.keep(Some(&p), t0).len(), 1);
        assert_eq!(r.reported().iter().map(|f| f.peer.clone()).collect::<Vec<_>>(), vec![q.to_string()]);
        assert_eq!(r.metrics().peers.get(), 1);
        assert!(r.refuses(&p, t0 + DEEP_FORK_COOLDOWN, 40, 30));
        assert!(r.refuses(&p, t0, 1, 1_000), "kept: refused whatever the work");
        assert!(r.refuses_connection(&p, t0 + DEEP_FORK_COOLDOWN));
        assert!(!r.record(p, fork(&p), t0 + DEEP_FORK_COOLDOWN), "kept: not reported again");
        assert_eq!(r.keep(None, t0).len(), 1);
        assert!(r.reported().is_empty());
        r.expire(t0 + KEPT_COOLDOWN);
        assert!(!r.refuses(&p, t0 + KEPT_COOLDOWN, 40, 30));
        assert!(!r.refuses_connection(&p, t0 + KEPT_COOLDOWN));
        assert_eq!(r.metrics().peers.get(), 0);
    }

    #[test]
    fn a_peer_that_no_longer_claims_more_work_is_not_refused() {
        let r = Registry::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        assert!(r.record(p, fork(&p), t0));
        assert!(r.refuses(&p, t0, 40, 39), "40 claimed against our 39");
        assert!(!r.refuses(&p, t0, 40, 40), "not more than ours");
        assert!(!r.refuses(&p, t0, 10, 41));
        // Still reported: the operator decides about the fork.
        assert_eq!(r.reported().len(), 1);
    }

    #[test]
    fn the_registry_is_bounded() {
        let r = Registry::default();
        let t0 = Instant::now();
        for i in 0..MAX_DEEP_FORKS + 10 {
            let p = PeerId::random();
            r.record(p, fork(&p), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(r.entries.lock().len(), MAX_DEEP_FORKS);
    }
}
