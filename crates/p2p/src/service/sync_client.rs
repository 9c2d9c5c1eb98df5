//! The sync client: which peer to sync from, which ranges to ask for and from whom, when a batch
//! is ready for import, and what to do when a peer answers badly. A pure state machine in the
//! style of the peer manager: no swarm, no store, no clock of its own.
//!
//! Inputs: statuses ([`SyncClient::on_status`]), peers leaving ([`SyncClient::on_peer_gone`]),
//! range responses ([`SyncClient::on_range`]), failed or refused ranges
//! ([`SyncClient::range_failed`]), import results ([`SyncClient::on_batch_done`]) and the periodic
//! [`SyncClient::drive`] with our own status. Outputs: [`Output`]s that the network loop carries
//! out (send a range request, hand a batch to the import worker, charge a peer, ask a status).
//!
//! The target is the peer with the most claimed work above ours (not banned); ranges of up to
//! [`BATCH`] blocks are spread round-robin over every peer whose status names the same tip, at
//! most [`MAX_INFLIGHT`] in flight and `2 x MAX_INFLIGHT` responses waiting; batches are imported
//! in height order, one at a time. A batch that does not connect at its first block means a fork
//! below our tip: the start steps back (8, 16, 32, ... blocks) until it connects.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash as StdHash;
use std::time::{Duration, Instant};

use vision_primitives::errors::PeerAction;
use vision_primitives::types::Block;

use crate::sync::{MAX_BLOCKS_PER_REQUEST, Status};

/// Blocks asked for per range request.
pub const BATCH: u32 = MAX_BLOCKS_PER_REQUEST;
/// Range requests in flight at once while syncing.
pub const MAX_INFLIGHT: usize = 8;
/// How often progress is logged while syncing.
pub const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// What the network loop must do for the sync client.
#[derive(Debug, PartialEq)]
pub enum Output<P> {
    /// Ask `peer` for `count` canonical blocks from height `start`. If it cannot be sent (over a
    /// budget), call [`SyncClient::range_failed`] with `start` and skip the later requests.
    Request {
        /// Whom to ask.
        peer: P,
        /// First height.
        start: u64,
        /// How many blocks.
        count: u32,
    },
    /// Hand these blocks (heights `start..`) to the import worker as one batch. If the worker's
    /// queue is full, call [`SyncClient::import_dropped`].
    Import {
        /// Who served them.
        peer: P,
        /// Height of the first block.
        start: u64,
        /// The blocks, in height order.
        blocks: Vec<Block>,
    },
    /// Charge `peer`.
    Penalty {
        /// Who.
        peer: P,
        /// How much.
        action: PeerAction,
        /// The reason label of the penalty metric.
        reason: &'static str,
    },
    /// Ask `peer` for a fresh status.
    AskStatus(P),
}

/// How the import of a batch ended, as far as the sync client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every block was imported (or already known).
    Imported(usize),
    /// The first block's parent is unknown: we are on a fork below our tip.
    NoFork,
    /// The batch broke a rule after `imported` blocks; `penalty` is what its server is charged.
    Rejected {
        /// Blocks imported before the bad one.
        imported: usize,
        /// What the server is charged (`None`: our own storage failed, nobody's fault).
        penalty: Option<PeerAction>,
    },
}

struct Target<P> {
    peer: P,
    status: Status,
    /// Next height to request.
    next: u64,
    /// Next height to hand to the importer.
    next_import: u64,
    /// How far the start was stepped back to find the fork point.
    lookback: u64,
    /// Responses waiting for earlier ones, by start height.
    ready: BTreeMap<u64, (P, Vec<Block>)>,
    importing: bool,
    round_robin: usize,
    started: Instant,
    start_height: u64,
    last_progress_log: Instant,
}

/// The sync client's state (see the module docs). `P` identifies a peer.
pub struct SyncClient<P> {
    statuses: HashMap<P, Status>,
    target: Option<Target<P>>,
}

impl<P> Default for SyncClient<P> {
    fn default() -> Self {
        SyncClient { statuses: HashMap::new(), target: None }
    }
}

impl<P: Copy + Eq + Ord + StdHash + std::fmt::Display> SyncClient<P> {
    /// A client with no statuses and no target.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a sync is under way.
    pub fn is_syncing(&self) -> bool {
        self.target.is_some()
    }

    /// The last status `peer` sent.
    pub fn status(&self, peer: &P) -> Option<&Status> {
        self.statuses.get(peer)
    }

    /// Every known status.
    pub fn statuses(&self) -> impl Iterator<Item = (&P, &Status)> {
        self.statuses.iter()
    }

    /// `peer` sent its status (on our network: the caller checked the genesis).
    pub fn on_status(&mut self, peer: P, status: Status) {
        self.statuses.insert(peer, status);
    }

    /// `peer` disconnected or was banned: its status no longer counts, and a sync towards it
    /// stops (the next [`SyncClient::drive`] picks another target).
    pub fn on_peer_gone(&mut self, peer: &P) {
        self.statuses.remove(peer);
        if self.target.as_ref().is_some_and(|t| t.peer == *peer) {
            self.target = None;
        }
    }

    /// The height the current sync is heading for.
    pub fn target_height(&self) -> Option<u64> {
        self.target.as_ref().map(|t| t.status.height)
    }

    /// `peer` answered the range `start..start + count` with `blocks`.
    pub fn on_range(&mut self, peer: P, start: u64, count: u32, blocks: Vec<Block>) -> Vec<Output<P>> {
        let in_order = blocks.len() <= count as usize
            && blocks.iter().enumerate().all(|(i, b)| b.header.height == start + i as u64);
        if !in_order {
            self.range_failed(start);
            return vec![Output::Penalty {
                peer,
                action: PeerAction::LowTolerance,
                reason: "range_response_out_of_order",
            }];
        }
        let Some(t) = self.target.as_mut() else { return Vec::new() };
        if blocks.is_empty() {
            // The peer has nothing there (it reorged or lied about its height). Forget its status
            // and ask again: retargeting on the stale one would repeat the same empty requests
            // every tick, a flood its rate limit punishes.
            self.target = None;
            self.statuses.remove(&peer);
            return vec![Output::AskStatus(peer)];
        }
        let n = blocks.len() as u32;
        t.ready.insert(start, (peer, blocks));
        if n < count {
            // A short answer (size budget): ask the same peer for the rest.
            return vec![Output::Request { peer, start: start + u64::from(n), count: count - n }];
        }
        Vec::new()
    }

    /// The range starting at `start` failed (refused, timed out, not sent): ask again from there.
    pub fn range_failed(&mut self, start: u64) {
        if let Some(t) = self.target.as_mut() {
            t.next = t.next.min(start);
            t.ready.retain(|s, _| *s < start);
        }
    }

    /// The import queue was full when a batch was handed over: start again from the next height
    /// to import.
    pub fn import_dropped(&mut self) {
        if let Some(t) = self.target.as_mut() {
            t.importing = false;
            t.next = t.next_import;
            t.ready.clear();
        }
    }

    /// The batch that `from` served, starting at `start`, was imported with `outcome`.
    pub fn on_batch_done(&mut self, from: P, start: u64, outcome: BatchOutcome) -> Vec<Output<P>> {
        let Some(t) = self.target.as_mut() else { return Vec::new() };
        t.importing = false;
        match outcome {
            BatchOutcome::Imported(n) => t.next_import = start + n as u64,
            BatchOutcome::NoFork => {
                // A fork below our tip: step back and try to connect.
                t.lookback = (t.lookback * 2).max(8);
                let back = start.saturating_sub(t.lookback).max(1);
                tracing::info!(peer = %t.peer, from = back, "sync: looking for the fork point");
                t.next = back;
                t.next_import = back;
                t.ready.clear();
            }
            BatchOutcome::Rejected { penalty, .. } => {
                self.target = None;
                return penalty
                    .map(|action| Output::Penalty { peer: from, action, reason: "invalid_sync_batch" })
                    .into_iter()
                    .collect();
            }
        }
        Vec::new()
    }

    /// Picks or drops the target against `ours`, and returns the requests to send and the batch to
    /// import now. `inflight` is how many range requests are in flight; `banned` says which peers
    /// may not be synced from.
    pub fn drive(
        &mut self,
        ours: &Status,
        inflight: usize,
        now: Instant,
        banned: impl Fn(&P) -> bool,
    ) -> Vec<Output<P>> {
        if let Some(t) = &self.target
            && ours.total_work >= t.status.total_work
        {
            let secs = now.duration_since(t.started).as_secs_f64();
            let blocks = ours.height.saturating_sub(t.start_height);
            tracing::info!(height = ours.height, blocks, secs, "sync complete");
            self.target = None;
        }
        if self.target.is_none() {
            let best = self
                .statuses
                .iter()
                .filter(|(p, s)| s.total_work > ours.total_work && !banned(p))
                .max_by_key(|(p, s)| (s.total_work, std::cmp::Reverse(**p)))
                .map(|(p, s)| (*p, *s));
            if let Some((peer, status)) = best {
                tracing::info!(%peer, target_height = status.height, our_height = ours.height, "sync: starting");
                // More work at no greater height means a fork: start at its tip and step back.
                let next = (ours.height + 1).min(status.height.max(1));
                self.target = Some(Target {
                    peer,
                    status,
                    next,
                    next_import: next,
                    lookback: 0,
                    ready: BTreeMap::new(),
                    importing: false,
                    round_robin: 0,
                    started: now,
                    start_height: ours.height,
                    last_progress_log: now,
                });
            }
        }
        let Some(t) = self.target.as_mut() else { return Vec::new() };
        // Keep the target's status fresh.
        if let Some(s) = self.statuses.get(&t.peer)
            && s.total_work > t.status.total_work
        {
            t.status = *s;
        }
        // Peers that agree with the target serve ranges round-robin.
        let mut servers: Vec<P> =
            self.statuses.iter().filter(|(_, s)| s.tip == t.status.tip).map(|(p, _)| *p).collect();
        servers.sort();
        if servers.is_empty() {
            servers.push(t.peer);
        }
        let mut out = Vec::new();
        for _ in inflight..MAX_INFLIGHT {
            if t.next > t.status.height || t.ready.len() >= MAX_INFLIGHT * 2 {
                break;
            }
            let count = (t.status.height - t.next + 1).min(u64::from(BATCH)) as u32;
            let peer = servers[t.round_robin % servers.len()];
            t.round_robin += 1;
            out.push(Output::Request { peer, start: t.next, count });
            t.next += u64::from(count);
        }
        // Hand the next contiguous batch to the importer.
        if !t.importing
            && let Some((peer, blocks)) = t.ready.remove(&t.next_import)
        {
            t.importing = true;
            out.push(Output::Import { peer, start: t.next_import, blocks });
        }
        if now.duration_since(t.last_progress_log) >= PROGRESS_LOG_INTERVAL {
            t.last_progress_log = now;
            let done = ours.height.saturating_sub(t.start_height) as f64;
            let rate = done / now.duration_since(t.started).as_secs_f64().max(0.001);
            let left = t.status.height.saturating_sub(ours.height) as f64;
            let eta = if rate > 0.0 { left / rate } else { f64::INFINITY };
            tracing::info!(
                height = ours.height,
                target = t.status.height,
                blocks_per_sec = format!("{rate:.1}"),
                eta_secs = format!("{eta:.0}"),
                "sync progress"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision_primitives::types::Hash;

    fn status(height: u64, work: u128, tip: u8) -> Status {
        Status { genesis: Hash([0; 32]), tip: Hash([tip; 32]), height, total_work: work }
    }

    fn blocks(start: u64, n: u64) -> Vec<Block> {
        (start..start + n)
            .map(|h| {
                let mut b = vision_primitives::genesis::Genesis::devnet().block();
                b.header.height = h;
                b
            })
            .collect()
    }

    fn requests(out: &[Output<u32>]) -> Vec<(u32, u64, u32)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Request { peer, start, count } => Some((*peer, *start, *count)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn targets_the_most_work_and_spreads_ranges_over_peers_on_the_same_tip() {
        let mut c = SyncClient::<u32>::new();
        let ours = status(0, 1, 0);
        c.on_status(1, status(1000, 5000, 7));
        c.on_status(2, status(1000, 5000, 7));
        c.on_status(3, status(900, 4000, 8));
        let out = c.drive(&ours, 0, Instant::now(), |_| false);
        let reqs = requests(&out);
        assert_eq!(reqs.len(), MAX_INFLIGHT);
        assert_eq!(reqs[0], (1, 1, BATCH));
        assert_eq!(reqs[1], (2, 1 + u64::from(BATCH), BATCH));
        assert!(reqs.iter().all(|(p, _, _)| *p != 3), "peer 3 is on another tip");
        assert!(c.is_syncing());
        // Everything in flight: nothing more.
        assert!(requests(&c.drive(&ours, MAX_INFLIGHT, Instant::now(), |_| false)).is_empty());
    }

    #[test]
    fn banned_peers_and_peers_with_less_work_are_never_targets() {
        let mut c = SyncClient::<u32>::new();
        c.on_status(1, status(10, 50, 1));
        c.on_status(2, status(5, 5, 2));
        assert!(c.drive(&status(6, 10, 0), 0, Instant::now(), |p| *p == 1).is_empty());
        assert!(!c.is_syncing());
        c.on_peer_gone(&1);
        assert!(c.drive(&status(6, 10, 0), 0, Instant::now(), |_| false).is_empty());
    }

    #[test]
    fn batches_are_imported_in_order_one_at_a_time() {
        let mut c = SyncClient::<u32>::new();
        let ours = status(0, 1, 0);
        c.on_status(1, status(2 * u64::from(BATCH), 5000, 7));
        let now = Instant::now();
        c.drive(&ours, 0, now, |_| false);
        let b = u64::from(BATCH);
        // The second range arrives first: nothing to import yet.
        assert!(c.on_range(1, 1 + b, BATCH, blocks(1 + b, b)).is_empty());
        assert!(!c.drive(&ours, 1, now, |_| false).iter().any(|o| matches!(o, Output::Import { .. })));
        assert!(c.on_range(1, 1, BATCH, blocks(1, b)).is_empty());
        let out = c.drive(&ours, 0, now, |_| false);
        let imports: Vec<_> = out.iter().filter(|o| matches!(o, Output::Import { .. })).collect();
        assert_eq!(imports.len(), 1);
        assert!(matches!(imports[0], Output::Import { start: 1, .. }));
        // One at a time: the second waits for the first's result.
        assert!(!c.drive(&ours, 0, now, |_| false).iter().any(|o| matches!(o, Output::Import { .. })));
        c.on_batch_done(1, 1, BatchOutcome::Imported(b as usize));
        let out = c.drive(&status(b, 100, 0), 0, now, |_| false);
        assert!(out.iter().any(|o| matches!(o, Output::Import { start, .. } if *start == 1 + b)));
    }

    #[test]
    fn out_of_order_answers_are_charged_and_asked_again() {
        let mut c = SyncClient::<u32>::new();
        c.on_status(1, status(100, 5000, 7));
        c.drive(&status(0, 1, 0), 0, Instant::now(), |_| false);
        let out = c.on_range(1, 1, 100, blocks(2, 3));
        assert_eq!(
            out,
            vec![Output::Penalty { peer: 1, action: PeerAction::LowTolerance, reason: "range_response_out_of_order" }]
        );
        let again = requests(&c.drive(&status(0, 1, 0), 0, Instant::now(), |_| false));
        assert_eq!(again.first().map(|r| r.1), Some(1), "height 1 is asked again");
    }

    #[test]
    fn an_empty_answer_drops_the_target_and_the_stale_status() {
        let mut c = SyncClient::<u32>::new();
        c.on_status(1, status(100, 5000, 7));
        c.drive(&status(0, 1, 0), 0, Instant::now(), |_| false);
        assert_eq!(c.on_range(1, 1, 100, Vec::new()), vec![Output::AskStatus(1)]);
        assert!(!c.is_syncing());
        assert!(c.status(&1).is_none());
    }

    #[test]
    fn a_short_answer_asks_the_same_peer_for_the_rest() {
        let mut c = SyncClient::<u32>::new();
        c.on_status(1, status(100, 5000, 7));
        c.drive(&status(0, 1, 0), 0, Instant::now(), |_| false);
        assert_eq!(c.on_range(1, 1, 100, blocks(1, 40)), vec![Output::Request { peer: 1, start: 41, count: 60 }]);
    }

    #[test]
    fn a_fork_below_the_tip_steps_back_doubling() {
        let mut c = SyncClient::<u32>::new();
        // Same height, more work: a fork. Start at its tip and step back.
        let ours = status(100, 1000, 1);
        c.on_status(1, status(100, 2000, 2));
        let reqs = requests(&c.drive(&ours, 0, Instant::now(), |_| false));
        assert_eq!(reqs[0].1, 100);
        c.on_range(1, 100, 1, blocks(100, 1));
        c.drive(&ours, 0, Instant::now(), |_| false);
        c.on_batch_done(1, 100, BatchOutcome::NoFork);
        let reqs = requests(&c.drive(&ours, 0, Instant::now(), |_| false));
        assert_eq!(reqs[0].1, 92, "8 back");
        c.on_range(1, 92, reqs[0].2, blocks(92, u64::from(reqs[0].2)));
        c.drive(&ours, 0, Instant::now(), |_| false);
        c.on_batch_done(1, 92, BatchOutcome::NoFork);
        assert_eq!(requests(&c.drive(&ours, 0, Instant::now(), |_| false))[0].1, 76, "16 back");
    }

    #[test]
    fn a_rejected_batch_charges_its_server_and_drops_the_target() {
        let mut c = SyncClient::<u32>::new();
        c.on_status(1, status(100, 5000, 7));
        c.drive(&status(0, 1, 0), 0, Instant::now(), |_| false);
        let out = c.on_batch_done(1, 1, BatchOutcome::Rejected { imported: 3, penalty: Some(PeerAction::Fatal) });
        assert_eq!(out, vec![Output::Penalty { peer: 1, action: PeerAction::Fatal, reason: "invalid_sync_batch" }]);
        assert!(!c.is_syncing());
        assert!(c.on_batch_done(1, 1, BatchOutcome::Rejected { imported: 0, penalty: None }).is_empty());
    }

    #[test]
    fn a_dropped_import_starts_again_from_the_next_height_to_import() {
        let mut c = SyncClient::<u32>::new();
        c.on_status(1, status(10, 5000, 7));
        let ours = status(0, 1, 0);
        c.drive(&ours, 0, Instant::now(), |_| false);
        c.on_range(1, 1, 10, blocks(1, 10));
        assert!(c.drive(&ours, 0, Instant::now(), |_| false).iter().any(|o| matches!(o, Output::Import { .. })));
        c.import_dropped();
        assert_eq!(requests(&c.drive(&ours, 0, Instant::now(), |_| false)), vec![(1, 1, 10)]);
    }

    #[test]
    fn reaching_the_targets_work_ends_the_sync() {
        let mut c = SyncClient::<u32>::new();
        c.on_status(1, status(10, 50, 7));
        c.drive(&status(0, 1, 0), 0, Instant::now(), |_| false);
        assert!(c.is_syncing());
        assert!(c.drive(&status(10, 50, 7), 0, Instant::now(), |_| false).is_empty());
        assert!(!c.is_syncing());
    }
}
