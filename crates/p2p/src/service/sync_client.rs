//! The sync client, headers first: which peer to sync from, which headers and ranges to ask for
//! and from whom, when a batch is ready for import, and whom to charge when a peer answers badly.
//! A pure state machine in the style of the peer manager: no swarm, no store, no clock of its own
//! (time is passed in, and what we know of the chain is a [`ChainView`] the caller hands over).
//!
//! Inputs: statuses ([`SyncClient::on_status`]), peers leaving ([`SyncClient::on_peer_gone`]),
//! header responses ([`SyncClient::on_headers`]) and failures ([`SyncClient::headers_failed`]),
//! range responses ([`SyncClient::on_range`]) and failures ([`SyncClient::range_failed`]), import
//! results ([`SyncClient::on_batch_done`]) and the periodic [`SyncClient::drive`] with our own
//! status. Outputs: [`Output`]s that the network loop carries out (send a header or range request,
//! hand a batch to the import worker, charge a peer, ask a status).
//!
//! A sync has two phases:
//!
//! 1. **Headers.** The candidate is the peer with the most *claimed* work above ours that is neither
//!    banned nor rotated out. Its claim counts for nothing yet: we fetch its canonical headers
//!    (`HeadersByRange`, up to [`HEADER_BATCH`] at a time, one request in flight) from the height
//!    after our tip, stepping back (64, 192, 448, ... blocks) until the first header's parent is a
//!    block we hold, which anchors the chain. Every header must follow the previous one (height + 1,
//!    parent hash) and its hash must meet its difficulty (checked here, cheaply), and then pass the
//!    rules in context ([`ChainView::check_in_context`]): the difficulty the retarget requires after
//!    its ancestors (stored or just fetched), a timestamp above their median. So the work of the
//!    chain, the anchor's plus the sum of the difficulties, is work that had to be done. A header
//!    chain that does not connect, is out of order, misses its proof of work or breaks a rule in
//!    context, a peer that stops before its headers prove the work it claimed, and
//!    a header request unanswered for [`HEADER_TIMEOUT`] all charge the peer and **rotate** it out:
//!    it is not a candidate again for [`ROTATION_COOLDOWN`] (doubled at each further rotation, at
//!    most [`MAX_ROTATION_COOLDOWN`]), and the next candidate is tried.
//! 2. **Bodies.** Once the headers prove more work than ours, block ranges of up to [`BATCH`] are
//!    spread round-robin over every peer whose status names a tip on the proven chain (at most
//!    [`MAX_INFLIGHT`] in flight, `2 x MAX_INFLIGHT` responses waiting). Every block is checked
//!    against its proven header (same hash, and the transactions root of the body) before anything
//!    else; a server whose blocks do not match, or whose request times out, is charged (mismatch) and
//!    no longer asked for this chain. Batches are imported in height order, one at a time, so
//!    signatures are verified only for blocks whose header chain and work are already proven.
//!
//! **Deep forks** (a partition longer than the reorg window, issue #14 item 8): a chain whose
//! headers prove more work than ours but whose fork point lies more than the reorg window
//! ([`SyncClient::set_reorg_window`]) below our tip cannot be followed without operator action.
//! Its peer is not a liar: it is charged nothing, rotated out for [`DEEP_FORK_ROTATION`], and
//! reported ([`Output::DeepFork`]; the loop disconnects it and tells the operator, see
//! `deep_fork.rs`). The same holds when a batch of the chain being synced is refused because our
//! tip moved on meanwhile and the reorganisation became deeper than the window
//! ([`BatchOutcome::DeepFork`]). Only proven work counts: a peer must pass the header checks in
//! context before its chain is called a deep fork rather than a lie.
//!
//! Memory: at most [`MAX_SYNC_HEADERS`] headers are held per sync; a longer chain is synced in
//! pieces (the next sync continues from the new tip).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash as StdHash;
use std::time::{Duration, Instant};

use vision_primitives::consensus::{BlockError, CONTEXT_SPAN, MIN_DIFFICULTY, meets_difficulty};
use vision_primitives::errors::PeerAction;
use vision_primitives::types::{Block, BlockHeader, ENCODING_VERSION, Hash, tx_root};

use crate::sync::{MAX_BLOCKS_PER_REQUEST, MAX_HEADERS_PER_REQUEST, Status};

/// Blocks asked for per range request.
pub const BATCH: u32 = MAX_BLOCKS_PER_REQUEST;
/// Headers asked for per header request.
pub const HEADER_BATCH: u32 = MAX_HEADERS_PER_REQUEST;
/// Range requests in flight at once while syncing.
pub const MAX_INFLIGHT: usize = 8;
/// Verified headers held for one sync: 50,000 × (161 + 32 bytes of hash) ≈ 9.7 MB. A longer chain
/// is synced in pieces of this many blocks.
pub const MAX_SYNC_HEADERS: usize = 50_000;
/// A header request unanswered this long rotates the candidate out (the request itself may run to
/// `SYNC_REQUEST_TIMEOUT`, 20 s; we do not wait for it).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a rotated-out peer is not a candidate, after its first rotation.
pub const ROTATION_COOLDOWN: Duration = Duration::from_secs(30);
/// The longest a rotated-out peer waits (the cooldown doubles with each rotation up to this).
pub const MAX_ROTATION_COOLDOWN: Duration = Duration::from_secs(600);
/// Smallest step back when the first header does not connect (a fork below our tip).
pub const HEADER_LOOKBACK: u64 = 64;
/// How often progress is logged while syncing.
pub const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// How long a peer found on the other side of a deep fork is not a candidate.
pub const DEEP_FORK_ROTATION: Duration = MAX_ROTATION_COOLDOWN;

/// What the sync client needs to know of our chain; the network loop answers from the store.
pub trait ChainView {
    /// The total work of a block we hold that is not known invalid (`None`: unknown or invalid).
    fn work_of(&self, hash: &Hash) -> Option<u128>;

    /// Checks `headers` (a chain: each the parent of the next, proof of work already checked) in
    /// context: height, the difficulty the retarget requires, median time past, the future limit.
    /// `earlier` is the fetched chain before them, oldest first, ending with the first header's
    /// parent, at most `CONTEXT_SPAN` headers (empty when that parent is a block we hold); older
    /// ancestors are ours.
    fn check_in_context(&self, earlier: &[BlockHeader], headers: &[BlockHeader]) -> Result<(), ContextFault>;
}

/// Why [`ChainView::check_in_context`] refused a header chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextFault {
    /// `headers[index]` breaks a rule in context.
    Invalid {
        /// Which header.
        index: usize,
        /// The rule (its `peer_action` says what the sender is charged; `None`, e.g. a timestamp
        /// ahead of our clock, rotates the peer out uncharged).
        error: BlockError,
    },
    /// Our own store could not be read: nobody's fault, ask again later.
    Unavailable,
}

/// What the network loop must do for the sync client.
#[derive(Debug, PartialEq)]
pub enum Output<P> {
    /// Ask `peer` for `count` canonical headers from height `start`. If it cannot be sent, call
    /// [`SyncClient::headers_failed`] with `rotate: false`.
    RequestHeaders {
        /// Whom to ask.
        peer: P,
        /// First height.
        start: u64,
        /// How many headers.
        count: u32,
    },
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
    /// `peer`'s chain has more work than ours (proven by its headers) but forks from ours deeper
    /// than the reorg window: not a fault; disconnect it and tell the operator.
    DeepFork {
        /// Who.
        peer: P,
        /// Height of the last block both chains share.
        fork_height: u64,
        /// Depth of the reorganisation following it would take (blocks of ours above the fork).
        depth: u64,
        /// Their chain's height, as far as its headers were checked.
        their_height: u64,
        /// The work their headers proved.
        their_work: u128,
    },
}

/// How the import of a batch ended, as far as the sync client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every block was imported (or already known).
    Imported(usize),
    /// The first block's parent is unknown (cannot happen for an anchored header chain unless our
    /// store lost the anchor): the sync starts over.
    NoFork,
    /// The batch would reorganise deeper than the reorg window (our tip moved on while the chain
    /// was downloaded): not the server's fault.
    DeepFork {
        /// The reorganisation's depth.
        depth: u64,
    },
    /// The batch broke a rule after `imported` blocks; `penalty` is what its server is charged.
    Rejected {
        /// Blocks imported before the bad one.
        imported: usize,
        /// What the server is charged (`None`: our own storage failed, nobody's fault).
        penalty: Option<PeerAction>,
    },
}

/// The known block a header chain extends.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    hash: Hash,
    height: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Headers,
    Bodies,
}

struct Target<P> {
    peer: P,
    /// What the peer claims (refreshed while syncing if it claims more).
    claimed: Status,
    phase: Phase,
    /// Where the header download starts while no anchor is found.
    search_start: u64,
    /// How far the search start was stepped back.
    lookback: u64,
    anchor: Option<Anchor>,
    /// Verified headers from `anchor.height + 1`, and their hashes.
    headers: Vec<BlockHeader>,
    hashes: Vec<Hash>,
    /// Height of each hash of `hashes`.
    index: HashMap<Hash, u64>,
    /// Work proven by the anchor and the verified headers.
    proven: u128,
    /// The header request in flight: start, count, when sent.
    header_request: Option<(u64, u32, Instant)>,
    /// Next height to request (bodies).
    next: u64,
    /// Next height to hand to the importer.
    next_import: u64,
    /// Responses waiting for earlier ones, by start height.
    ready: BTreeMap<u64, (P, Vec<Block>)>,
    importing: bool,
    round_robin: usize,
    /// Body servers no longer asked for this chain (timed out or served mismatching bodies).
    excluded: HashSet<P>,
    started: Instant,
    start_height: u64,
    last_progress_log: Instant,
}

impl<P> Target<P> {
    fn last_height(&self) -> u64 {
        self.anchor.map_or(0, |a| a.height) + self.headers.len() as u64
    }

    fn next_header_height(&self) -> u64 {
        match self.anchor {
            Some(a) => a.height + 1 + self.headers.len() as u64,
            None => self.search_start,
        }
    }

    fn last_hash(&self) -> Option<Hash> {
        self.hashes.last().copied().or(self.anchor.map(|a| a.hash))
    }
}

#[derive(Debug, Clone, Copy)]
struct Rotated {
    until: Instant,
    times: u32,
}

/// The sync client's state (see the module docs). `P` identifies a peer.
pub struct SyncClient<P> {
    statuses: HashMap<P, Status>,
    target: Option<Target<P>>,
    rotated: HashMap<P, Rotated>,
    /// The deepest reorganisation we follow (`u64::MAX` until set: no deep fork is recognised).
    window: u64,
}

impl<P> Default for SyncClient<P> {
    fn default() -> Self {
        SyncClient { statuses: HashMap::new(), target: None, rotated: HashMap::new(), window: u64::MAX }
    }
}

/// Why a header chain was refused.
fn header_fault(
    start: u64,
    prev: Option<Hash>,
    headers: &[BlockHeader],
) -> Result<Vec<Hash>, (PeerAction, &'static str)> {
    let mut hashes = Vec::with_capacity(headers.len());
    let mut prev = prev;
    for (i, h) in headers.iter().enumerate() {
        if h.height != start + i as u64 {
            return Err((PeerAction::LowTolerance, "headers_out_of_order"));
        }
        if h.version != ENCODING_VERSION || h.difficulty < MIN_DIFFICULTY {
            return Err((PeerAction::Fatal, "header_without_work"));
        }
        let hash = h.hash();
        if !meets_difficulty(&hash, h.difficulty) {
            return Err((PeerAction::Fatal, "header_without_work"));
        }
        if let Some(p) = prev
            && h.parent != p
        {
            return Err((PeerAction::LowTolerance, "headers_do_not_connect"));
        }
        prev = Some(hash);
        hashes.push(hash);
    }
    Ok(hashes)
}

impl<P: Copy + Eq + Ord + StdHash + std::fmt::Display> SyncClient<P> {
    /// A client with no statuses and no target.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the reorg window: a chain forking more than `window` blocks below our tip is a deep
    /// fork.
    pub fn set_reorg_window(&mut self, window: u64) {
        self.window = window;
    }

    /// Whether a sync is under way.
    pub fn is_syncing(&self) -> bool {
        self.target.is_some()
    }

    /// Whether the sync under way has proven its chain's work and downloads bodies.
    pub fn is_downloading_bodies(&self) -> bool {
        self.target.as_ref().is_some_and(|t| t.phase == Phase::Bodies)
    }

    /// The peer whose chain the current sync follows.
    pub fn target_peer(&self) -> Option<P> {
        self.target.as_ref().map(|t| t.peer)
    }

    /// The last status `peer` sent.
    pub fn status(&self, peer: &P) -> Option<&Status> {
        self.statuses.get(peer)
    }

    /// Every known status.
    pub fn statuses(&self) -> impl Iterator<Item = (&P, &Status)> {
        self.statuses.iter()
    }

    /// Verified headers held (for the resource registry).
    pub fn headers_held(&self) -> usize {
        self.target.as_ref().map_or(0, |t| t.headers.len())
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

    /// The height the current sync is heading for: the proven chain's end once its headers are
    /// in, the claimed height before.
    pub fn target_height(&self) -> Option<u64> {
        self.target.as_ref().map(|t| if t.phase == Phase::Bodies { t.last_height() } else { t.claimed.height })
    }

    /// Drops the target and keeps its peer from being a candidate for a while.
    fn rotate(&mut self, now: Instant) {
        let Some(t) = self.target.take() else { return };
        let r = self.rotated.entry(t.peer).or_insert(Rotated { until: now, times: 0 });
        let cooldown = ROTATION_COOLDOWN.saturating_mul(1 << r.times.min(16)).min(MAX_ROTATION_COOLDOWN);
        r.times += 1;
        r.until = now + cooldown;
        tracing::info!(peer = %t.peer, cooldown_secs = cooldown.as_secs(), "sync: candidate rotated out");
    }

    /// The target's chain forks `depth` blocks below our tip, deeper than the window: drop it
    /// uncharged, keep its peer from being a candidate for [`DEEP_FORK_ROTATION`], and report it.
    fn deep_fork(&mut self, depth: u64, now: Instant) -> Vec<Output<P>> {
        let Some(t) = self.target.take() else { return Vec::new() };
        let fork_height = t.anchor.map_or(0, |a| a.height);
        let r = self.rotated.entry(t.peer).or_insert(Rotated { until: now, times: 0 });
        r.until = now + DEEP_FORK_ROTATION;
        tracing::info!(peer = %t.peer, fork_height, depth, window = self.window, "sync: chain forks deeper than the reorg window");
        vec![Output::DeepFork { peer: t.peer, fork_height, depth, their_height: t.last_height(), their_work: t.proven }]
    }

    fn charge_and_rotate(&mut self, peer: P, action: PeerAction, reason: &'static str, now: Instant) -> Vec<Output<P>> {
        tracing::info!(%peer, reason, "sync: headers refused");
        self.rotate(now);
        vec![Output::Penalty { peer, action, reason }]
    }

    /// `peer` answered the header request from `start` with `headers`. `ours` is our status,
    /// `chain` what we hold.
    pub fn on_headers(
        &mut self,
        peer: P,
        start: u64,
        headers: Vec<BlockHeader>,
        ours: &Status,
        now: Instant,
        chain: &impl ChainView,
    ) -> Vec<Output<P>> {
        let Some(t) = self.target.as_mut() else { return Vec::new() };
        let Some((asked, count, _)) = t.header_request else { return Vec::new() };
        if t.peer != peer || asked != start || t.phase != Phase::Headers {
            return Vec::new(); // a late answer to a request given up on
        }
        t.header_request = None;
        if headers.len() > count as usize {
            return self.charge_and_rotate(peer, PeerAction::LowTolerance, "headers_out_of_order", now);
        }
        let prev = t.anchor.map(|_| t.last_hash()).unwrap_or(None);
        let hashes = match header_fault(start, prev, &headers) {
            Ok(h) => h,
            Err((action, reason)) => return self.charge_and_rotate(peer, action, reason, now),
        };
        let mut skip = 0;
        if t.anchor.is_none() {
            let Some(first) = headers.first() else {
                // Nothing where it claimed a chain.
                return self.charge_and_rotate(peer, PeerAction::MidTolerance, "unproven_work", now);
            };
            match chain.work_of(&first.parent) {
                Some(work) => {
                    t.anchor = Some(Anchor { hash: first.parent, height: start - 1 });
                    t.proven = work;
                    // Headers we already hold (the search stepped back below the fork) move the
                    // anchor up.
                    while skip < headers.len()
                        && let Some(w) = chain.work_of(&hashes[skip])
                    {
                        t.anchor = Some(Anchor { hash: hashes[skip], height: headers[skip].height });
                        t.proven = w;
                        skip += 1;
                    }
                }
                None if start <= 1 => {
                    // Not even our genesis: this chain is not on our network.
                    return self.charge_and_rotate(peer, PeerAction::LowTolerance, "headers_do_not_connect", now);
                }
                None => {
                    // A fork below our tip: step back.
                    t.lookback = (t.lookback * 2).max(HEADER_LOOKBACK);
                    t.search_start = start.saturating_sub(t.lookback).max(1);
                    tracing::info!(%peer, from = t.search_start, "sync: looking for the fork point");
                    return Vec::new();
                }
            }
        }
        let room = MAX_SYNC_HEADERS - t.headers.len();
        let take = (headers.len() - skip).min(room);
        // The expensive check last: each header against its ancestors.
        let earlier = &t.headers[t.headers.len().saturating_sub(CONTEXT_SPAN)..];
        match chain.check_in_context(earlier, &headers[skip..skip + take]) {
            Ok(()) => {}
            Err(ContextFault::Invalid { index, error }) => {
                tracing::info!(%peer, height = headers[skip + index].height, %error, "sync: header breaks a rule in context");
                return match error.peer_action() {
                    Some(action) => self.charge_and_rotate(peer, action, "header_out_of_context", now),
                    None => {
                        self.rotate(now);
                        Vec::new()
                    }
                };
            }
            Err(ContextFault::Unavailable) => return Vec::new(), // asked again at the next drive
        }
        for (h, hash) in headers[skip..skip + take].iter().zip(&hashes[skip..skip + take]) {
            t.proven = t.proven.saturating_add(u128::from(h.difficulty));
            t.index.insert(*hash, h.height);
            t.headers.push(*h);
            t.hashes.push(*hash);
        }
        let capped = t.headers.len() >= MAX_SYNC_HEADERS;
        // Fewer than asked: the peer has no more.
        let ended = headers.len() < count as usize;
        if t.proven >= t.claimed.total_work || (capped && t.proven > ours.total_work) {
            // Following it would reorganise every block of ours above the anchor.
            let depth = ours.height.saturating_sub(t.anchor.map_or(0, |a| a.height));
            if depth > self.window {
                if t.proven > ours.total_work {
                    return self.deep_fork(depth, now);
                }
                // Deep, and no heavier than ours (any more): nothing to follow, nobody's fault.
                self.rotate(now);
                return Vec::new();
            }
            return self.start_bodies(now);
        }
        if ended {
            // It stopped before its headers proved the work it claimed.
            return self.charge_and_rotate(peer, PeerAction::MidTolerance, "unproven_work", now);
        }
        if capped {
            // A chain longer than we hold at once that does not beat ours within it: not provably
            // a lie, not worth following.
            self.rotate(now);
        }
        Vec::new()
    }

    fn start_bodies(&mut self, now: Instant) -> Vec<Output<P>> {
        let Some(t) = self.target.as_mut() else { return Vec::new() };
        let Some(anchor) = t.anchor else { return Vec::new() };
        tracing::info!(
            peer = %t.peer,
            from = anchor.height + 1,
            to = t.last_height(),
            proven_work = %t.proven,
            "sync: header chain proven; downloading bodies"
        );
        t.phase = Phase::Bodies;
        t.next = anchor.height + 1;
        t.next_import = t.next;
        t.last_progress_log = now;
        // The peer proved its claim: a later rotation starts from the shortest cooldown again.
        self.rotated.remove(&t.peer);
        Vec::new()
    }

    /// The header request to `peer` from `start` failed: refused (`rotate: false`, e.g. busy, or
    /// not sent) or timed out / broke (`rotate: true`: the peer is rotated out; the caller charges
    /// timeouts and undecodable answers).
    pub fn headers_failed(&mut self, peer: P, start: u64, rotate: bool, now: Instant) {
        let Some(t) = self.target.as_mut() else { return };
        if t.peer != peer || t.header_request.is_none_or(|(s, _, _)| s != start) {
            return;
        }
        t.header_request = None;
        if rotate {
            self.rotate(now);
        }
    }

    /// `peer` answered the range `start..start + count` with `blocks`.
    pub fn on_range(&mut self, peer: P, start: u64, count: u32, blocks: Vec<Block>) -> Vec<Output<P>> {
        let in_order = blocks.len() <= count as usize
            && blocks.iter().enumerate().all(|(i, b)| b.header.height == start + i as u64);
        if !in_order {
            self.range_failed(peer, start, true);
            return vec![Output::Penalty {
                peer,
                action: PeerAction::LowTolerance,
                reason: "range_response_out_of_order",
            }];
        }
        let Some(t) = self.target.as_mut() else { return Vec::new() };
        if t.phase != Phase::Bodies {
            return Vec::new();
        }
        // The cheap checks first: each block is the one its proven header names (its hash covers
        // the header, so its proof of work and parent), and its body is the one the header commits
        // to. No signature has been looked at yet.
        let matches = blocks.iter().all(|b| {
            let h = b.header.height;
            let i = h.checked_sub(t.anchor.map_or(0, |a| a.height) + 1);
            i.and_then(|i| t.hashes.get(i as usize)).is_some_and(|x| *x == b.hash())
                && tx_root(&b.transactions) == b.header.tx_root
        });
        if !matches {
            self.range_failed(peer, start, true);
            return vec![Output::Penalty {
                peer,
                action: PeerAction::LowTolerance,
                reason: "body_does_not_match_header",
            }];
        }
        if blocks.is_empty() {
            // Its status named this chain but it has nothing there (it reorganised, or lied): ask
            // another server, and refresh its status.
            self.range_failed(peer, start, true);
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

    /// The range starting at `start`, asked of `peer`, failed (refused, timed out, not sent): ask
    /// again from there. With `rotate`, `peer` is not asked for this chain again.
    pub fn range_failed(&mut self, peer: P, start: u64, rotate: bool) {
        if let Some(t) = self.target.as_mut() {
            t.next = t.next.min(start);
            t.ready.retain(|s, _| *s < start);
            if rotate {
                t.excluded.insert(peer);
            }
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
    pub fn on_batch_done(&mut self, from: P, start: u64, outcome: BatchOutcome, now: Instant) -> Vec<Output<P>> {
        let Some(t) = self.target.as_mut() else { return Vec::new() };
        t.importing = false;
        match outcome {
            BatchOutcome::Imported(n) => t.next_import = start + n as u64,
            BatchOutcome::NoFork => {
                tracing::info!(peer = %t.peer, "sync: the anchor of the header chain is gone; starting over");
                self.target = None;
            }
            BatchOutcome::DeepFork { depth } => return self.deep_fork(depth, now),
            BatchOutcome::Rejected { penalty, .. } => {
                // The block matches its proven header, so the chain itself is bad: its peer is
                // rotated out, the server charged.
                self.rotate(now);
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
        let mut out = Vec::new();
        if let Some(t) = &self.target {
            let done = match t.phase {
                // Someone else's blocks got us there.
                Phase::Headers => ours.total_work >= t.claimed.total_work,
                Phase::Bodies => ours.total_work >= t.proven || t.next_import > t.last_height(),
            };
            if done {
                let secs = now.duration_since(t.started).as_secs_f64();
                let blocks = ours.height.saturating_sub(t.start_height);
                tracing::info!(height = ours.height, blocks, secs, "sync complete");
                self.target = None;
            }
        }
        if let Some(t) = &self.target
            && t.phase == Phase::Headers
            && t.header_request.is_some_and(|(_, _, sent)| now.duration_since(sent) >= HEADER_TIMEOUT)
        {
            let peer = t.peer;
            out.extend(self.charge_and_rotate(peer, PeerAction::HighTolerance, "sync_headers_timeout", now));
        }
        // A peer whose cooldown ended long ago starts afresh (and the map stays small: at most one
        // rotation per HEADER_TIMEOUT enters it).
        self.rotated.retain(|_, r| now < r.until + MAX_ROTATION_COOLDOWN);
        if self.target.is_none() {
            let rotated = &self.rotated;
            let best = self
                .statuses
                .iter()
                .filter(|(p, s)| {
                    s.total_work > ours.total_work && !banned(p) && rotated.get(*p).is_none_or(|r| r.until <= now)
                })
                .max_by_key(|(p, s)| (s.total_work, std::cmp::Reverse(**p)))
                .map(|(p, s)| (*p, *s));
            if let Some((peer, claimed)) = best {
                tracing::info!(%peer, claimed_height = claimed.height, our_height = ours.height, "sync: fetching headers");
                // More work at no greater height means a fork: start at its tip and step back.
                let search_start = (ours.height + 1).min(claimed.height.max(1));
                self.target = Some(Target {
                    peer,
                    claimed,
                    phase: Phase::Headers,
                    search_start,
                    lookback: 0,
                    anchor: None,
                    headers: Vec::new(),
                    hashes: Vec::new(),
                    index: HashMap::new(),
                    proven: 0,
                    header_request: None,
                    next: 0,
                    next_import: 0,
                    ready: BTreeMap::new(),
                    importing: false,
                    round_robin: 0,
                    excluded: HashSet::new(),
                    started: now,
                    start_height: ours.height,
                    last_progress_log: now,
                });
            }
        }
        let Some(t) = self.target.as_mut() else { return out };
        // Keep the target's claim fresh: a chain that grows while we sync is followed.
        if let Some(s) = self.statuses.get(&t.peer)
            && s.total_work > t.claimed.total_work
        {
            t.claimed = *s;
        }
        if t.phase == Phase::Headers {
            if t.header_request.is_none() {
                let start = t.next_header_height();
                let wanted = t.claimed.height.saturating_sub(start) + 1;
                let room = (MAX_SYNC_HEADERS - t.headers.len()) as u64;
                let count = wanted.min(room).clamp(1, u64::from(HEADER_BATCH)) as u32;
                t.header_request = Some((start, count, now));
                out.push(Output::RequestHeaders { peer: t.peer, start, count });
            }
            return out;
        }
        // Bodies: from every peer whose tip is on the proven chain, and from the target itself.
        let last = t.last_height();
        let mut servers: Vec<P> = self
            .statuses
            .iter()
            .filter(|(p, s)| (**p == t.peer || t.index.contains_key(&s.tip)) && !t.excluded.contains(*p) && !banned(p))
            .map(|(p, _)| *p)
            .collect();
        if servers.is_empty() && !t.excluded.contains(&t.peer) {
            servers.push(t.peer);
        }
        servers.sort();
        if servers.is_empty() {
            tracing::info!(peer = %t.peer, "sync: no peer left to serve the proven chain");
            self.rotate(now);
            return out;
        }
        // How far each server holds the proven chain (the candidate: all of it).
        let heights: Vec<(P, u64)> = servers
            .iter()
            .map(|p| {
                let h = if *p == t.peer {
                    last
                } else {
                    self.statuses.get(p).and_then(|s| t.index.get(&s.tip).copied()).unwrap_or(0)
                };
                (*p, h)
            })
            .collect();
        for _ in inflight..MAX_INFLIGHT {
            if t.next > last || t.ready.len() >= MAX_INFLIGHT * 2 {
                break;
            }
            let count = (last - t.next + 1).min(u64::from(BATCH)) as u32;
            // Round-robin over the servers that hold the whole range.
            let end = t.next + u64::from(count) - 1;
            let able: Vec<P> = heights.iter().filter(|(_, h)| *h >= end).map(|(p, _)| *p).collect();
            let pick =
                if able.is_empty() { servers[t.round_robin % servers.len()] } else { able[t.round_robin % able.len()] };
            t.round_robin += 1;
            out.push(Output::Request { peer: pick, start: t.next, count });
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
            let left = last.saturating_sub(ours.height) as f64;
            let eta = if rate > 0.0 { left / rate } else { f64::INFINITY };
            tracing::info!(
                height = ours.height,
                target = last,
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
    use vision_primitives::genesis::Genesis;

    /// A chain of blocks on the devnet genesis with difficulty 1 (every hash meets it), so each
    /// block proves one unit of work; `salt` makes different chains.
    fn chain(len: u64, salt: u64) -> Vec<Block> {
        let mut out = vec![Genesis::devnet().block()];
        out[0].header.difficulty = 1;
        for h in 1..=len {
            let parent = out.last().unwrap().hash();
            let mut b = Block { header: out[0].header, transactions: vec![] };
            b.header.height = h;
            b.header.parent = parent;
            b.header.nonce = salt;
            b.header.tx_root = tx_root(&[]);
            out.push(b);
        }
        out
    }

    fn status_of(c: &[Block], upto: u64) -> Status {
        Status { genesis: c[0].hash(), tip: c[upto as usize].hash(), height: upto, total_work: u128::from(upto) + 1 }
    }

    fn headers(c: &[Block], start: u64, count: u64) -> Vec<BlockHeader> {
        c.iter().skip(start as usize).take(count as usize).map(|b| b.header).collect()
    }

    fn blocks(c: &[Block], start: u64, count: u64) -> Vec<Block> {
        c.iter().skip(start as usize).take(count as usize).cloned().collect()
    }

    /// What we hold (the first `upto + 1` blocks of `c`, with their total work), and the rules in
    /// context: every header passes unless `reject` names its height (then `WrongDifficulty`), or
    /// the store is `unavailable`. Records the contexts it was asked about.
    struct Known {
        work: HashMap<Hash, u128>,
        reject: Option<u64>,
        unavailable: bool,
        asked: std::cell::RefCell<Vec<(Vec<u64>, Vec<u64>)>>,
    }

    impl ChainView for Known {
        fn work_of(&self, hash: &Hash) -> Option<u128> {
            self.work.get(hash).copied()
        }

        fn check_in_context(&self, earlier: &[BlockHeader], headers: &[BlockHeader]) -> Result<(), ContextFault> {
            let heights = |h: &[BlockHeader]| h.iter().map(|h| h.height).collect::<Vec<_>>();
            self.asked.borrow_mut().push((heights(earlier), heights(headers)));
            if self.unavailable {
                return Err(ContextFault::Unavailable);
            }
            match headers.iter().position(|h| Some(h.height) == self.reject) {
                Some(index) => {
                    Err(ContextFault::Invalid { index, error: BlockError::WrongDifficulty { expected: 2, got: 1 } })
                }
                None => Ok(()),
            }
        }
    }

    fn known(c: &[Block], upto: u64) -> Known {
        let work = c.iter().take(upto as usize + 1).enumerate().map(|(i, b)| (b.hash(), i as u128 + 1)).collect();
        Known { work, reject: None, unavailable: false, asked: Default::default() }
    }

    fn header_requests(out: &[Output<u32>]) -> Vec<(u32, u64, u32)> {
        out.iter()
            .filter_map(|o| match o {
                Output::RequestHeaders { peer, start, count } => Some((*peer, *start, *count)),
                _ => None,
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

    fn penalties(out: &[Output<u32>]) -> Vec<(u32, PeerAction, &'static str)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Penalty { peer, action, reason } => Some((*peer, *action, *reason)),
                _ => None,
            })
            .collect()
    }

    /// A liar's status: far more work than anyone, on a tip nobody has.
    fn lie(c: &[Block]) -> Status {
        Status { genesis: c[0].hash(), tip: Hash([0x66; 32]), height: 1_000_000, total_work: u128::MAX / 2 }
    }

    /// Sends the headers `peer` is asked for from the honest chain `c`.
    fn answer_headers(
        s: &mut SyncClient<u32>,
        out: &[Output<u32>],
        c: &[Block],
        ours: &Status,
        now: Instant,
        k: &Known,
    ) -> Vec<Output<u32>> {
        let (peer, start, count) = header_requests(out)[0];
        s.on_headers(peer, start, headers(c, start, u64::from(count)), ours, now, k)
    }

    #[test]
    fn headers_come_first_and_bodies_are_spread_over_peers_on_the_proven_chain() {
        let c = chain(300, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        s.on_status(1, status_of(&c, 300));
        s.on_status(2, status_of(&c, 300));
        s.on_status(3, status_of(&c, 200)); // behind, but on the same chain
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(1, 1, 300)], "headers first, from the target only");
        assert!(requests(&out).is_empty(), "no body before the headers prove the work");
        assert!(answer_headers(&mut s, &out, &c, &ours, now, &k).is_empty());
        assert!(s.is_downloading_bodies());
        let reqs = requests(&s.drive(&ours, 0, now, |_| false));
        assert_eq!(reqs.len(), 5, "300 blocks in ranges of 64");
        assert_eq!(reqs[0], (1, 1, BATCH));
        assert_eq!(reqs[1], (2, 65, BATCH));
        assert_eq!(reqs[2], (3, 129, BATCH), "peer 3 holds the chain up to 200");
        assert_eq!(reqs[3], (2, 193, BATCH), "peer 3 does not hold 193..=256");
        assert_eq!(reqs[4], (1, 257, 44));
    }

    #[test]
    fn claimed_but_unproven_work_is_ignored_and_charged() {
        let c = chain(100, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        // Peer 9 claims far more work than its real chain (the honest one, up to 50) proves.
        let mut claim = status_of(&c, 50);
        claim.total_work = 1_000;
        s.on_status(9, claim);
        s.on_status(1, status_of(&c, 100));
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(9, 1, 50)], "the biggest claim is checked first");
        let out = answer_headers(&mut s, &out, &c, &ours, now, &k);
        // 50 headers: 51 units of work, not the 1,000 claimed; asked for one more, none comes.
        assert!(out.is_empty());
        assert!(!s.is_downloading_bodies(), "the claim is not proven yet");
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(9, 51, 1)]);
        let out = s.on_headers(9, 51, vec![], &ours, now, &k);
        assert_eq!(penalties(&out), vec![(9, PeerAction::MidTolerance, "unproven_work")]);
        assert!(!s.is_syncing());
        // Rotated out: the honest peer is next, and bodies come from it alone.
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(1, 1, 100)]);
        answer_headers(&mut s, &out, &c, &ours, now, &k);
        let reqs = requests(&s.drive(&ours, 0, now, |_| false));
        assert!(!reqs.is_empty() && reqs.iter().all(|r| r.0 == 1), "{reqs:?}");
        assert_eq!(s.target_height(), Some(100));
    }

    #[test]
    fn a_header_request_that_times_out_rotates_the_target_and_charges_it() {
        let c = chain(10, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let t0 = Instant::now();
        s.on_status(9, lie(&c));
        s.on_status(1, status_of(&c, 10));
        assert_eq!(header_requests(&s.drive(&ours, 0, t0, |_| false)), vec![(9, 1, HEADER_BATCH)]);
        // Nothing until just before the timeout: still waiting, nothing asked again.
        assert!(s.drive(&ours, 0, t0 + HEADER_TIMEOUT - Duration::from_millis(1), |_| false).is_empty());
        let out = s.drive(&ours, 0, t0 + HEADER_TIMEOUT, |_| false);
        assert_eq!(penalties(&out), vec![(9, PeerAction::HighTolerance, "sync_headers_timeout")]);
        assert_eq!(header_requests(&out), vec![(1, 1, 10)], "the next candidate at once");
        // A late answer from the rotated peer is ignored.
        let k = known(&c, 0);
        assert!(s.on_headers(9, 1, headers(&c, 1, 10), &ours, t0 + HEADER_TIMEOUT, &k).is_empty());
        assert_eq!(s.target_peer(), Some(1));
    }

    #[test]
    fn a_rotated_peer_waits_out_a_doubling_cooldown() {
        let c = chain(10, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let t0 = Instant::now();
        s.on_status(9, lie(&c));
        s.drive(&ours, 0, t0, |_| false);
        let t1 = t0 + HEADER_TIMEOUT;
        s.drive(&ours, 0, t1, |_| false);
        assert!(!s.is_syncing(), "no other candidate");
        assert!(s.drive(&ours, 0, t1 + ROTATION_COOLDOWN - Duration::from_millis(1), |_| false).is_empty());
        let t2 = t1 + ROTATION_COOLDOWN;
        assert_eq!(header_requests(&s.drive(&ours, 0, t2, |_| false)).len(), 1, "tried again after the cooldown");
        let t3 = t2 + HEADER_TIMEOUT;
        s.drive(&ours, 0, t3, |_| false);
        assert!(s.drive(&ours, 0, t3 + ROTATION_COOLDOWN, |_| false).is_empty(), "the second cooldown is longer");
        assert!(!s.drive(&ours, 0, t3 + 2 * ROTATION_COOLDOWN, |_| false).is_empty());
    }

    #[test]
    fn a_failed_header_request_rotates_only_when_told() {
        let c = chain(10, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let now = Instant::now();
        s.on_status(1, status_of(&c, 10));
        s.drive(&ours, 0, now, |_| false);
        s.headers_failed(1, 1, false, now);
        assert_eq!(header_requests(&s.drive(&ours, 0, now, |_| false)), vec![(1, 1, 10)], "busy: asked again");
        s.headers_failed(1, 1, true, now);
        assert!(!s.is_syncing());
        assert!(s.drive(&ours, 0, now, |_| false).is_empty(), "rotated out");
    }

    #[test]
    fn headers_that_do_not_connect_charge_and_rotate() {
        let c = chain(100, 0);
        let other = chain(100, 1); // another chain on our genesis
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        // (1) A first header whose parent is not even our genesis.
        s.on_status(9, lie(&c));
        s.drive(&ours, 0, now, |_| false);
        let mut h = headers(&c, 1, 5);
        h[0].parent = Hash([7; 32]);
        let out = s.on_headers(9, 1, h, &ours, now, &k);
        assert_eq!(penalties(&out), vec![(9, PeerAction::LowTolerance, "headers_do_not_connect")]);
        assert!(!s.is_syncing());
        // (2) Headers that break in the middle.
        s.on_status(8, lie(&c));
        s.drive(&ours, 0, now, |_| false);
        let mut h = headers(&c, 1, 10);
        h[5] = other[6].header;
        let out = s.on_headers(8, 1, h, &ours, now, &k);
        assert_eq!(penalties(&out), vec![(8, PeerAction::LowTolerance, "headers_do_not_connect")]);
        // (3) Heights out of order.
        s.on_status(7, lie(&c));
        s.drive(&ours, 0, now, |_| false);
        let out = s.on_headers(7, 1, headers(&c, 2, 3), &ours, now, &k);
        assert_eq!(penalties(&out), vec![(7, PeerAction::LowTolerance, "headers_out_of_order")]);
        // (4) A second batch that does not follow the first.
        s.on_status(6, Status { total_work: 10_000, ..status_of(&c, 100) });
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(6, 1, 100)]);
        assert!(s.on_headers(6, 1, headers(&c, 1, 100), &ours, now, &k).is_empty());
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(6, 101, 1)], "101 units of work proven, 10,000 claimed: more");
        let other = chain(101, 1);
        let out = s.on_headers(6, 101, headers(&other, 101, 1), &ours, now, &k);
        assert_eq!(penalties(&out), vec![(6, PeerAction::LowTolerance, "headers_do_not_connect")]);
        assert!(!s.is_syncing());
    }

    #[test]
    fn headers_without_proof_of_work_are_fatal() {
        let c = chain(10, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        s.on_status(9, lie(&c));
        s.drive(&ours, 0, now, |_| false);
        let mut h = headers(&c, 1, 3);
        h[2].difficulty = 1 << 40;
        while meets_difficulty(&h[2].hash(), h[2].difficulty) {
            h[2].nonce += 1;
        }
        let out = s.on_headers(9, 1, h, &ours, now, &k);
        assert_eq!(penalties(&out), vec![(9, PeerAction::Fatal, "header_without_work")]);
        assert!(!s.is_syncing());
    }

    #[test]
    fn a_fork_below_the_tip_steps_back_until_the_headers_connect() {
        // We hold 0..=100 of `c`; the peer's chain forks off after block 20 and is longer.
        let c = chain(100, 0);
        let mut theirs = blocks(&c, 0, 21);
        theirs.extend(chain(200, 5).into_iter().skip(21));
        for i in 21..theirs.len() {
            theirs[i].header.parent = theirs[i - 1].hash();
        }
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 100);
        let k = known(&c, 100);
        let now = Instant::now();
        s.on_status(1, status_of(&theirs, 200));
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(1, 101, 100)]);
        assert!(answer_headers(&mut s, &out, &theirs, &ours, now, &k).is_empty());
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(1, 101 - HEADER_LOOKBACK, 164)], "stepped back");
        assert!(answer_headers(&mut s, &out, &theirs, &ours, now, &k).is_empty());
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(1, 1, 200)], "stepped back again, to the first block at most");
        assert!(answer_headers(&mut s, &out, &theirs, &ours, now, &k).is_empty());
        // Blocks 1..=20 are ours already: the anchor moved up to 20, bodies start at 21.
        assert!(s.is_downloading_bodies());
        assert_eq!(requests(&s.drive(&ours, 0, now, |_| false))[0], (1, 21, BATCH));
    }

    /// Our chain (0..=100 of `c`) and a longer one forking off after block 20.
    fn deep_fork_setup() -> (Vec<Block>, Vec<Block>) {
        let c = chain(100, 0);
        let mut theirs = blocks(&c, 0, 21);
        theirs.extend(chain(200, 5).into_iter().skip(21));
        for i in 21..theirs.len() {
            theirs[i].header.parent = theirs[i - 1].hash();
        }
        (c, theirs)
    }

    /// Three rounds of header requests answered from `theirs` (enough to reach the fork point of
    /// [`deep_fork_setup`]); returns the outputs of the last answer and of the drive after it.
    fn headers_until_fork(
        s: &mut SyncClient<u32>,
        theirs: &[Block],
        ours: &Status,
        now: Instant,
        k: &Known,
    ) -> (Vec<Output<u32>>, Vec<Output<u32>>) {
        let mut out = s.drive(ours, 0, now, |_| false);
        let mut got = Vec::new();
        for _ in 0..3 {
            got = answer_headers(s, &out, theirs, ours, now, k);
            out = s.drive(ours, 0, now, |_| false);
        }
        (got, out)
    }

    #[test]
    fn a_heavier_chain_forking_below_the_window_is_a_deep_fork_not_a_lie() {
        let (c, theirs) = deep_fork_setup();
        let mut s = SyncClient::<u32>::new();
        s.set_reorg_window(50);
        let ours = status_of(&c, 100);
        let k = known(&c, 100);
        let now = Instant::now();
        s.on_status(1, status_of(&theirs, 200));
        let (got, out) = headers_until_fork(&mut s, &theirs, &ours, now, &k);
        assert!(penalties(&got).is_empty(), "not a liar: {got:?}");
        assert_eq!(
            got,
            vec![Output::DeepFork { peer: 1, fork_height: 20, depth: 80, their_height: 200, their_work: 201 }],
            "reported with the work its headers proved"
        );
        assert!(!s.is_syncing(), "no body is downloaded");
        assert!(out.is_empty());
        assert!(s.drive(&ours, 0, now + DEEP_FORK_ROTATION - Duration::from_millis(1), |_| false).is_empty());
        // The same fork within a deeper window is followed.
        let mut s = SyncClient::<u32>::new();
        s.set_reorg_window(80);
        s.on_status(1, status_of(&theirs, 200));
        headers_until_fork(&mut s, &theirs, &ours, now, &k);
        assert!(s.is_downloading_bodies());
    }

    #[test]
    fn a_batch_refused_as_too_deep_is_a_deep_fork_and_charges_nobody() {
        let (c, theirs) = deep_fork_setup();
        let mut s = SyncClient::<u32>::new();
        s.set_reorg_window(80);
        let ours = status_of(&c, 100);
        let k = known(&c, 100);
        let now = Instant::now();
        s.on_status(1, status_of(&theirs, 200));
        headers_until_fork(&mut s, &theirs, &ours, now, &k);
        assert!(s.is_downloading_bodies());
        // Our tip moved on meanwhile: the import refuses the reorganisation.
        let out = s.on_batch_done(1, 21, BatchOutcome::DeepFork { depth: 81 }, now);
        assert_eq!(
            out,
            vec![Output::DeepFork { peer: 1, fork_height: 20, depth: 81, their_height: 200, their_work: 201 }]
        );
        assert!(!s.is_syncing());
        assert!(s.drive(&ours, 0, now + ROTATION_COOLDOWN, |_| false).is_empty(), "not a candidate for long");
    }

    #[test]
    fn bodies_that_do_not_match_their_headers_charge_the_server_and_go_to_another() {
        let c = chain(64, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        s.on_status(1, status_of(&c, 64));
        s.on_status(2, status_of(&c, 64));
        let out = s.drive(&ours, 0, now, |_| false);
        answer_headers(&mut s, &out, &c, &ours, now, &k);
        assert_eq!(requests(&s.drive(&ours, 0, now, |_| false)), vec![(1, 1, 64)]);
        // (1) A block that is not the proven one.
        let mut bad = blocks(&c, 1, 64);
        bad[3].header.nonce ^= 1;
        let out = s.on_range(1, 1, 64, bad);
        assert_eq!(penalties(&out), vec![(1, PeerAction::LowTolerance, "body_does_not_match_header")]);
        assert_eq!(requests(&s.drive(&ours, 0, now, |_| false)), vec![(2, 1, 64)], "asked of another server");
        // (2) The right header over another body.
        let mut bad = blocks(&c, 1, 64);
        bad[0].transactions.push(vision_primitives::types::Transaction {
            chain_id: 0,
            from: vision_primitives::types::Address([1; 32]),
            nonce: 0,
            fee: 0,
            kind: vision_primitives::types::TxKind::Transfer {
                to: vision_primitives::types::Address([2; 32]),
                amount: 1,
            },
            signature: [0; 64],
        });
        let out = s.on_range(2, 1, 64, bad);
        assert_eq!(penalties(&out), vec![(2, PeerAction::LowTolerance, "body_does_not_match_header")]);
        // Every server of the chain is out: the sync gives up on it.
        assert!(requests(&s.drive(&ours, 0, now, |_| false)).is_empty());
        assert!(!s.is_syncing());
    }

    #[test]
    fn a_body_server_that_times_out_is_replaced() {
        let c = chain(64, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        s.on_status(1, status_of(&c, 64));
        s.on_status(2, status_of(&c, 64));
        let out = s.drive(&ours, 0, now, |_| false);
        answer_headers(&mut s, &out, &c, &ours, now, &k);
        assert_eq!(requests(&s.drive(&ours, 0, now, |_| false)), vec![(1, 1, 64)]);
        s.range_failed(1, 1, true);
        assert_eq!(requests(&s.drive(&ours, 0, now, |_| false)), vec![(2, 1, 64)]);
        // A busy answer asks again, from whoever is next.
        s.range_failed(2, 1, false);
        assert_eq!(requests(&s.drive(&ours, 0, now, |_| false)), vec![(2, 1, 64)]);
    }

    #[test]
    fn batches_are_imported_in_order_one_at_a_time() {
        let c = chain(128, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        s.on_status(1, status_of(&c, 128));
        let out = s.drive(&ours, 0, now, |_| false);
        answer_headers(&mut s, &out, &c, &ours, now, &k);
        assert_eq!(requests(&s.drive(&ours, 0, now, |_| false)), vec![(1, 1, 64), (1, 65, 64)]);
        let is_import = |o: &Output<u32>| matches!(o, Output::Import { .. });
        // The second range arrives first: nothing to import yet.
        assert!(s.on_range(1, 65, 64, blocks(&c, 65, 64)).is_empty());
        assert!(!s.drive(&ours, 2, now, |_| false).iter().any(is_import));
        assert!(s.on_range(1, 1, 64, blocks(&c, 1, 64)).is_empty());
        let out = s.drive(&ours, 0, now, |_| false);
        assert!(matches!(out.iter().find(|o| is_import(o)), Some(Output::Import { start: 1, .. })));
        assert!(!s.drive(&ours, 0, now, |_| false).iter().any(is_import), "one at a time");
        s.on_batch_done(1, 1, BatchOutcome::Imported(64), now);
        let out = s.drive(&status_of(&c, 64), 0, now, |_| false);
        assert!(matches!(out.iter().find(|o| is_import(o)), Some(Output::Import { start: 65, .. })));
        s.on_batch_done(1, 65, BatchOutcome::Imported(64), now);
        assert!(s.drive(&status_of(&c, 128), 0, now, |_| false).is_empty());
        assert!(!s.is_syncing(), "done");
    }

    #[test]
    fn short_and_out_of_order_range_answers() {
        let c = chain(100, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        s.on_status(1, status_of(&c, 100));
        let out = s.drive(&ours, 0, now, |_| false);
        answer_headers(&mut s, &out, &c, &ours, now, &k);
        s.drive(&ours, 0, now, |_| false);
        assert_eq!(s.on_range(1, 1, 64, blocks(&c, 1, 40)), vec![Output::Request { peer: 1, start: 41, count: 24 }]);
        let out = s.on_range(1, 65, 36, blocks(&c, 66, 3));
        assert_eq!(penalties(&out), vec![(1, PeerAction::LowTolerance, "range_response_out_of_order")]);
    }

    #[test]
    fn a_rejected_batch_charges_its_server_and_rotates_the_target() {
        let c = chain(10, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        s.on_status(1, status_of(&c, 10));
        let out = s.drive(&ours, 0, now, |_| false);
        answer_headers(&mut s, &out, &c, &ours, now, &k);
        let out = s.on_batch_done(1, 1, BatchOutcome::Rejected { imported: 3, penalty: Some(PeerAction::Fatal) }, now);
        assert_eq!(out, vec![Output::Penalty { peer: 1, action: PeerAction::Fatal, reason: "invalid_sync_batch" }]);
        assert!(!s.is_syncing());
        assert!(s.drive(&ours, 0, now, |_| false).is_empty(), "rotated out");
    }

    #[test]
    fn a_dropped_import_starts_again_from_the_next_height_to_import() {
        let c = chain(10, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        s.on_status(1, status_of(&c, 10));
        let out = s.drive(&ours, 0, now, |_| false);
        answer_headers(&mut s, &out, &c, &ours, now, &k);
        s.drive(&ours, 0, now, |_| false);
        s.on_range(1, 1, 10, blocks(&c, 1, 10));
        assert!(s.drive(&ours, 0, now, |_| false).iter().any(|o| matches!(o, Output::Import { .. })));
        s.import_dropped();
        assert_eq!(requests(&s.drive(&ours, 0, now, |_| false)), vec![(1, 1, 10)]);
    }

    #[test]
    fn banned_peers_and_peers_with_less_work_are_never_candidates() {
        let c = chain(10, 0);
        let mut s = SyncClient::<u32>::new();
        s.on_status(1, status_of(&c, 10));
        s.on_status(2, status_of(&c, 3));
        assert!(s.drive(&status_of(&c, 5), 0, Instant::now(), |p| *p == 1).is_empty());
        assert!(!s.is_syncing());
        s.on_peer_gone(&1);
        assert!(s.drive(&status_of(&c, 5), 0, Instant::now(), |_| false).is_empty());
    }

    #[test]
    fn headers_that_break_the_rules_in_context_are_charged_and_rotated() {
        let c = chain(100, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let mut k = known(&c, 0);
        k.reject = Some(40); // e.g. a difficulty below what the retarget requires there
        let now = Instant::now();
        s.on_status(9, status_of(&c, 100));
        s.on_status(1, status_of(&c, 100));
        let out = s.drive(&ours, 0, now, |_| false);
        let out = answer_headers(&mut s, &out, &c, &ours, now, &k);
        assert_eq!(penalties(&out), vec![(1, PeerAction::Fatal, "header_out_of_context")]);
        assert!(!s.is_syncing());
        assert_eq!(s.headers_held(), 0, "nothing of that chain is kept");
        // A rule that is not the sender's fault (a timestamp ahead of our clock) rotates it uncharged.
        let mut k = known(&c, 0);
        k.reject = Some(3);
        let out = s.drive(&ours, 0, now, |_| false);
        assert_eq!(header_requests(&out), vec![(9, 1, 100)]);
        struct Future(Known);
        impl ChainView for Future {
            fn work_of(&self, hash: &Hash) -> Option<u128> {
                self.0.work_of(hash)
            }
            fn check_in_context(&self, _: &[BlockHeader], _: &[BlockHeader]) -> Result<(), ContextFault> {
                Err(ContextFault::Invalid {
                    index: 0,
                    error: BlockError::TimestampInFuture { timestamp_ms: 10_000, now_ms: 0 },
                })
            }
        }
        let out = s.on_headers(9, 1, headers(&c, 1, 100), &ours, now, &Future(k));
        assert!(penalties(&out).is_empty());
        assert!(!s.is_syncing());
    }

    #[test]
    fn the_context_of_each_header_batch_is_the_tail_of_the_verified_chain() {
        let c = chain(300, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let k = known(&c, 0);
        let now = Instant::now();
        s.on_status(1, Status { total_work: 10_000, ..status_of(&c, 100) });
        assert_eq!(header_requests(&s.drive(&ours, 0, now, |_| false)), vec![(1, 1, 100)]);
        assert!(s.on_headers(1, 1, headers(&c, 1, 100), &ours, now, &k).is_empty());
        // The peer's chain grew meanwhile (its claim too): the rest is asked for.
        s.on_status(1, Status { total_work: 20_000, ..status_of(&c, 300) });
        assert_eq!(header_requests(&s.drive(&ours, 0, now, |_| false)), vec![(1, 101, 200)]);
        assert!(s.on_headers(1, 101, headers(&c, 101, 200), &ours, now, &k).is_empty());
        let asked = k.asked.borrow();
        assert_eq!(asked[0].0, Vec::<u64>::new(), "the first batch's parent is stored: no fetched context");
        assert_eq!(asked[0].1, (1..=100).collect::<Vec<_>>());
        assert_eq!(
            asked[1].0,
            ((101 - CONTEXT_SPAN as u64)..=100).collect::<Vec<_>>(),
            "the last CONTEXT_SPAN headers"
        );
        assert_eq!(asked[1].1, (101..=300).collect::<Vec<_>>());
    }

    #[test]
    fn an_unreadable_store_asks_the_headers_again_without_charging() {
        let c = chain(10, 0);
        let mut s = SyncClient::<u32>::new();
        let ours = status_of(&c, 0);
        let mut k = known(&c, 0);
        k.unavailable = true;
        let now = Instant::now();
        s.on_status(1, status_of(&c, 10));
        let out = s.drive(&ours, 0, now, |_| false);
        assert!(answer_headers(&mut s, &out, &c, &ours, now, &k).is_empty());
        assert!(s.is_syncing());
        assert_eq!(header_requests(&s.drive(&ours, 0, now, |_| false)), vec![(1, 1, 10)], "asked again");
    }
}
