//! Peer manager: per-peer scores that decay, thresholds to disconnect and to ban, bans with expiry,
//! connection bookkeeping and token-bucket rate limits.
//!
//! # Bird's-eye view
//!
//! [`PeerManager`] is a pure state machine: no I/O, no database, no async, no clock. The swarm task owns
//! it, feeds it what happened (connections, identify, misbehaviour reports from every layer, a periodic
//! [`PeerManager::heartbeat`]) together with the current time, and executes the [`Effect`]s it returns
//! (close connections, block or unblock a peer, persist the ban list). Keeping it free of I/O makes it
//! deterministic and unit-testable; the time is always an argument:
//!
//! - `now: Instant` drives scores, decay and rate limits (monotonic, meaningless across restarts);
//! - `now_unix_ms: u64` drives ban expiry, because bans are persisted and must survive a restart.
//!
//! Misbehaviour arrives as an [`errors::PeerAction`](vision_primitives::errors::PeerAction) chosen by the layer that
//! saw it; this module alone decides what it costs (`docs/adr/005-peer-scoring-policy.md`). Gossipsub's
//! own peer scoring is separate and runs alongside: it sees our Accept/Reject/Ignore verdicts, this
//! manager sees the reports.
//!
//! # Policy
//!
//! A score lives in `[-100, 100]`, starts at 0 and decays exponentially towards 0 with a half-life of
//! 10 minutes. Each report subtracts the penalty of its action ([`penalty`], the one policy table):
//!
//! | [`PeerAction`]   | penalty | reports, in quick succession, to disconnect (-20) / to ban (-50) |
//! |------------------|--------:|------------------------------------------------------------------|
//! | `Fatal`          |    -100 | banned at once, whatever the score                               |
//! | `LowTolerance`   |     -10 | 2 / 5                                                            |
//! | `MidTolerance`   |      -5 | 4 / 10                                                           |
//! | `HighTolerance`  |      -1 | 20 / 50                                                          |
//!
//! (Lighthouse's values.) Crossing to or below the disconnect threshold yields one
//! [`Effect::Disconnect`]; to or below the ban threshold (or any `Fatal`) one [`Effect::Ban`] for 30
//! minutes, which implies disconnection. [`PeerManager::reward`] adds a positive amount for useful work
//! (e.g. a valid new block), capped at +100; a high score delays a disconnect but never a `Fatal` ban.
//!
//! The scores of disconnected peers with a score of at most [`FORGET_SCORE`] are kept (up to
//! [`MAX_RETAINED_SCORES`]), so a peer cannot wash its score by reconnecting: a peer that reconnects at
//! or below the disconnect threshold is turned away until its score has decayed above it.
//!
//! Each connected peer has one token bucket per [`RateClass`]; a refused [`PeerManager::allow`] is
//! answered with an error and reported as `MidTolerance` with reason `"rate_limit"` by the caller.
//!
//! Connection slots: inbound connections are accepted while the total is below `max_peers` and the
//! inbound count leaves `min_outbound_peers` slots free; [`PeerManager::excess_peers`] picks the
//! lowest-scored *inbound* peers first, so an attacker flooding inbound connections cannot push out
//! the outbound peers we chose.
//!
//! # Invariants
//!
//! - Every score is finite and within `[MIN_SCORE, MAX_SCORE]`.
//! - A banned peer is never connected-and-allowed: a ban drops the peer's connection record and rate
//!   buckets, [`PeerManager::on_connected`] turns banned peers away, and [`PeerManager::allow`] refuses
//!   peers without a connection record.
//! - Memory is bounded: one connection record (with its buckets) per connected peer, at most
//!   [`MAX_RETAINED_SCORES`] scores of disconnected peers, at most [`MAX_BANS`] bans; identify data per
//!   peer is truncated to [`MAX_LISTEN_ADDRS`] addresses and [`MAX_AGENT_LEN`] bytes.
//! - Every ban in the map is also in the expiry index, and the swarm learns of every ban that leaves the
//!   map (expiry, admin unban, eviction at the cap) through an [`Effect::Unban`], so its block list stays
//!   in step and bounded.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

use vision_primitives::errors::PeerAction;

/// Highest score: the cap on rewards.
pub const MAX_SCORE: f64 = 100.0;
/// Lowest score: where a `Fatal` report puts a peer.
pub const MIN_SCORE: f64 = -100.0;
/// Default score half-life: Lighthouse's 10 minutes; faults a few minutes apart add up, a transient
/// fault is forgotten within the hour.
pub const DEFAULT_SCORE_HALF_LIFE: Duration = Duration::from_secs(10 * 60);
/// Default disconnect threshold: two low-tolerance faults, four mid or twenty high in quick succession.
pub const DEFAULT_DISCONNECT_THRESHOLD: f64 = -20.0;
/// Default ban threshold: five low-tolerance faults or ten mid; reached mostly by peers that come back
/// and misbehave again while their earlier penalties have not decayed.
pub const DEFAULT_BAN_THRESHOLD: f64 = -50.0;
/// Default ban duration: Lighthouse's 30 minutes; makes re-dialling pointless for a misbehaving peer,
/// yet a mistaken ban of an honest node (a bug on either side) heals without an operator.
pub const DEFAULT_BAN_DURATION: Duration = Duration::from_secs(30 * 60);
/// Default number of peers we dial towards: enough for a gossipsub mesh (D = 6, D_high = 12) several
/// times over and for parallel sync, without spending sockets on dialling more.
pub const DEFAULT_TARGET_PEERS: usize = 50;
/// Default hard maximum of connected peers: the design asks for 500+ connections; 600 leaves headroom.
pub const DEFAULT_MAX_PEERS: usize = 600;
/// Default number of connection slots kept for outbound peers (Bitcoin Core keeps 8 full-relay
/// outbound slots): inbound floods can never leave us without peers of our own choosing.
pub const DEFAULT_MIN_OUTBOUND_PEERS: usize = 8;
/// Most bans held; past it the soonest-to-expire is evicted. Peer ids are free to make, so bans are a
/// speed bump, not a wall; 100,000 entries are a few tens of MiB at worst.
pub const MAX_BANS: usize = 100_000;
/// Most scores of disconnected peers kept; past it the least negative is forgotten first (Lighthouse
/// keeps 500 disconnected peers; twice that costs ~200 KiB).
pub const MAX_RETAINED_SCORES: usize = 1_000;
/// Connected peers, in the resource registry (cap: [`DEFAULT_MAX_PEERS`], `--max-peers`).
pub const PEERS: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("peers", "p2p::peer_manager::DEFAULT_MAX_PEERS", DEFAULT_MAX_PEERS);
/// Banned peers held by the peer manager, in the resource registry.
pub const BANS: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("bans", "p2p::peer_manager::MAX_BANS", MAX_BANS);
/// Scores kept for disconnected peers, in the resource registry.
pub const RETAINED_SCORES: vision_primitives::bounds::Resource = vision_primitives::bounds::Resource::new(
    "retained_scores",
    "p2p::peer_manager::MAX_RETAINED_SCORES",
    MAX_RETAINED_SCORES,
);
/// A disconnected peer whose score is above this is forgotten: less than the smallest penalty is not
/// worth remembering.
pub const FORGET_SCORE: f64 = -1.0;
/// Longest agent string kept from identify, in bytes: a peer controls it and operators only read it.
pub const MAX_AGENT_LEN: usize = 256;
/// Most listen addresses kept from identify: a peer controls the list.
pub const MAX_LISTEN_ADDRS: usize = 32;
/// Most remote addresses kept per connected peer (one per concurrent connection).
pub const MAX_CONNECTION_ADDRS: usize = 8;
/// Scores closer to zero than this are rounded to zero so decay ends.
const SCORE_EPSILON: f64 = 1e-6;

/// Requests of the sync protocol (status, blocks by range, blocks by hash): each costs a stream and a
/// database lookup; an honest client pipelines a few batches and sends one status per heartbeat, far
/// below 20/s.
pub const SYNC_REQUEST_LIMIT: RateLimit = RateLimit { capacity: 50, refill_per_sec: 20 };
/// Blocks asked for through the sync protocol: 16 full requests of 64 blocks at once, then 4 per second,
/// i.e. a peer catches up 256 times faster than 1 s blocks are made (a day of blocks in under six
/// minutes from one peer, faster from several) while one cheap request cannot pull unbounded data.
pub const BLOCKS_REQUESTED_LIMIT: RateLimit = RateLimit { capacity: 1_024, refill_per_sec: 256 };
/// Gossip messages received from a peer. Honest relays forward whatever the network makes, so this must
/// sit well above the honest rate: the miner's default 10,000 txs per 1 s block spread over a mesh of
/// ~6 peers is ~1,700/s each; the burst absorbs a full block's worth arriving at once.
pub const GOSSIP_MESSAGE_LIMIT: RateLimit = RateLimit { capacity: 10_000, refill_per_sec: 2_000 };
/// Our own sync requests to one peer: four fifths of what [`SYNC_REQUEST_LIMIT`] lets a peer send
/// us, so that a node following a fast chain (a young low-difficulty one, or orphans arriving
/// faster than round trips) paces itself instead of being punished by an honest server.
pub const SYNC_REQUEST_SENT_LIMIT: RateLimit = RateLimit { capacity: 40, refill_per_sec: 16 };
/// Blocks we ask one peer for: four fifths of [`BLOCKS_REQUESTED_LIMIT`], for the same reason.
pub const BLOCKS_ASKED_LIMIT: RateLimit = RateLimit { capacity: 819, refill_per_sec: 204 };
// Checked when compiling: our budgets stay below what a default peer accepts, and one full range
// request fits the blocks budget (so sync never waits on a request it can never afford).
const _: () = {
    assert!(SYNC_REQUEST_SENT_LIMIT.capacity < SYNC_REQUEST_LIMIT.capacity);
    assert!(SYNC_REQUEST_SENT_LIMIT.refill_per_sec < SYNC_REQUEST_LIMIT.refill_per_sec);
    assert!(BLOCKS_ASKED_LIMIT.capacity < BLOCKS_REQUESTED_LIMIT.capacity);
    assert!(BLOCKS_ASKED_LIMIT.refill_per_sec < BLOCKS_REQUESTED_LIMIT.refill_per_sec);
    assert!(BLOCKS_ASKED_LIMIT.capacity >= crate::sync::MAX_BLOCKS_PER_REQUEST);
};

/// The policy table: what each [`PeerAction`] costs, in score points (see the module docs).
pub const fn penalty(action: PeerAction) -> f64 {
    match action {
        // Proof of malice or a broken implementation: the whole range, and an immediate ban.
        PeerAction::Fatal => -100.0,
        // Clearly wrong: tolerated twice before a disconnect.
        PeerAction::LowTolerance => -10.0,
        // Wrong: tolerated four times before a disconnect.
        PeerAction::MidTolerance => -5.0,
        // Possibly honest trouble: tolerated twenty times before a disconnect.
        PeerAction::HighTolerance => -1.0,
    }
}

/// Peer manager settings; [`Config::default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Time for a score to decay halfway to zero.
    pub score_half_life: Duration,
    /// A peer whose score drops to or below this is disconnected.
    pub disconnect_threshold: f64,
    /// A peer whose score drops to or below this is banned (must not be above `disconnect_threshold`).
    pub ban_threshold: f64,
    /// How long a ban triggered by the score lasts.
    pub ban_duration: Duration,
    /// Peer count we dial towards.
    pub target_peers: usize,
    /// Hard maximum of connected peers.
    pub max_peers: usize,
    /// Slots of `max_peers` that inbound connections may not take.
    pub min_outbound_peers: usize,
    /// Caps on inbound connections per IP address and per network group (`crate::ip_limits`).
    pub inbound: crate::ip_limits::Limits,
    /// Token buckets per peer.
    pub rate_limits: RateLimits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            score_half_life: DEFAULT_SCORE_HALF_LIFE,
            disconnect_threshold: DEFAULT_DISCONNECT_THRESHOLD,
            ban_threshold: DEFAULT_BAN_THRESHOLD,
            ban_duration: DEFAULT_BAN_DURATION,
            target_peers: DEFAULT_TARGET_PEERS,
            max_peers: DEFAULT_MAX_PEERS,
            min_outbound_peers: DEFAULT_MIN_OUTBOUND_PEERS,
            inbound: crate::ip_limits::Limits::default(),
            rate_limits: RateLimits::default(),
        }
    }
}

/// One token bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens the bucket holds when full (the burst); a bucket starts full.
    pub capacity: u32,
    /// Tokens added per second, up to `capacity`.
    pub refill_per_sec: u32,
}

/// The token buckets each connected peer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Sync protocol requests (cost 1 each).
    pub sync_request: RateLimit,
    /// Blocks asked for through the sync protocol (cost: the number of blocks asked for).
    pub blocks_requested: RateLimit,
    /// Gossip messages received (cost 1 each).
    pub gossip_message: RateLimit,
    /// Sync requests we send (cost 1 each); below what a peer with default limits accepts.
    pub sync_request_sent: RateLimit,
    /// Blocks we ask for (cost: the number asked for); below what a peer with default limits serves.
    pub blocks_asked: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            sync_request: SYNC_REQUEST_LIMIT,
            blocks_requested: BLOCKS_REQUESTED_LIMIT,
            gossip_message: GOSSIP_MESSAGE_LIMIT,
            sync_request_sent: SYNC_REQUEST_SENT_LIMIT,
            blocks_asked: BLOCKS_ASKED_LIMIT,
        }
    }
}

impl RateLimits {
    /// The bucket shape of `class`.
    pub fn get(&self, class: RateClass) -> RateLimit {
        match class {
            RateClass::SyncRequest => self.sync_request,
            RateClass::BlocksRequested => self.blocks_requested,
            RateClass::GossipMessage => self.gossip_message,
            RateClass::SyncRequestSent => self.sync_request_sent,
            RateClass::BlocksAsked => self.blocks_asked,
        }
    }
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// Sync protocol requests received.
    SyncRequest,
    /// Blocks requested through the sync protocol.
    BlocksRequested,
    /// Gossip messages received.
    GossipMessage,
    /// Sync requests we send to the peer.
    SyncRequestSent,
    /// Blocks we ask the peer for.
    BlocksAsked,
}

impl RateClass {
    /// Every class, in bucket order.
    pub const ALL: [RateClass; 5] = [
        RateClass::SyncRequest,
        RateClass::BlocksRequested,
        RateClass::GossipMessage,
        RateClass::SyncRequestSent,
        RateClass::BlocksAsked,
    ];

    /// Stable lowercase name, used as a metrics label and in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            RateClass::SyncRequest => "sync_request",
            RateClass::BlocksRequested => "blocks_requested",
            RateClass::GossipMessage => "gossip_message",
            RateClass::SyncRequestSent => "sync_request_sent",
            RateClass::BlocksAsked => "blocks_asked",
        }
    }

    fn index(self) -> usize {
        match self {
            RateClass::SyncRequest => 0,
            RateClass::BlocksRequested => 1,
            RateClass::GossipMessage => 2,
            RateClass::SyncRequestSent => 3,
            RateClass::BlocksAsked => 4,
        }
    }
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The peer dialled us.
    Inbound,
    /// We dialled the peer.
    Outbound,
}

impl From<&ConnectedPoint> for Direction {
    fn from(endpoint: &ConnectedPoint) -> Self {
        if endpoint.is_dialer() { Direction::Outbound } else { Direction::Inbound }
    }
}

/// Something the swarm task must do; the manager has already updated its own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Close all connections to the peer.
    Disconnect {
        /// The peer.
        peer: PeerId,
    },
    /// Block the peer (closing its connections) and persist the ban.
    Ban {
        /// The peer.
        peer: PeerId,
        /// When the ban ends, in unix milliseconds.
        until_unix_ms: u64,
        /// The report reason (or admin reason) that caused the ban.
        reason: &'static str,
    },
    /// Unblock the peer and remove its persisted ban.
    Unban {
        /// The peer.
        peer: PeerId,
    },
}

/// A connected peer, for the API and logs.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSummary {
    /// The peer.
    pub peer: PeerId,
    /// Direction of its first connection.
    pub direction: Direction,
    /// Remote addresses of its connections.
    pub addrs: Vec<Multiaddr>,
    /// Listen addresses it announced through identify.
    pub listen_addrs: Vec<Multiaddr>,
    /// Its score as of the last heartbeat or report.
    pub score: f64,
    /// Agent string from identify, if received (truncated to [`MAX_AGENT_LEN`] bytes).
    pub agent: Option<String>,
    /// When its first connection was established.
    pub connected_since: Instant,
}

/// A score and the instant it was last brought up to date.
#[derive(Debug, Clone, Copy)]
struct Score {
    value: f64,
    updated: Instant,
}

impl Score {
    fn new(now: Instant) -> Self {
        Score { value: 0.0, updated: now }
    }

    /// The score decayed to `now` (never undoes decay if `now` is earlier).
    fn at(&self, now: Instant, half_life: Duration) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated);
        if elapsed.is_zero() {
            return self.value;
        }
        if half_life.is_zero() {
            return 0.0;
        }
        let decayed = self.value * 0.5f64.powf(elapsed.as_secs_f64() / half_life.as_secs_f64());
        if decayed.abs() < SCORE_EPSILON { 0.0 } else { decayed }
    }

    fn advance(&mut self, now: Instant, half_life: Duration) -> f64 {
        if now > self.updated {
            self.value = self.at(now, half_life);
            self.updated = now;
        }
        self.value
    }

    fn set(&mut self, value: f64) {
        self.value = if value.is_finite() { value.clamp(MIN_SCORE, MAX_SCORE) } else { 0.0 };
    }
}

/// A token bucket; tokens are fractional so slow refill rates are exact.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    fn full(limit: RateLimit, now: Instant) -> Self {
        TokenBucket { tokens: f64::from(limit.capacity), updated: now }
    }

    fn try_take(&mut self, limit: RateLimit, cost: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        if now > self.updated {
            self.updated = now;
        }
        let capacity = f64::from(limit.capacity);
        self.tokens = (self.tokens + elapsed * f64::from(limit.refill_per_sec)).min(capacity);
        let cost = f64::from(cost);
        if cost <= self.tokens {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// What we keep about a connected peer.
#[derive(Debug, Clone)]
struct Connection {
    direction: Direction,
    addrs: Vec<Multiaddr>,
    listen_addrs: Vec<Multiaddr>,
    agent: Option<String>,
    since: Instant,
    buckets: [TokenBucket; RateClass::ALL.len()],
}

/// Per-peer scores, bans and rate limits; see the module docs.
#[derive(Debug, Clone)]
pub struct PeerManager {
    config: Config,
    /// Scores of every connected peer and of up to `max_retained_scores` disconnected ones.
    scores: HashMap<PeerId, Score>,
    /// Connected (and not banned) peers; every key is also in `scores`.
    connected: HashMap<PeerId, Connection>,
    /// Ban end per peer, unix ms.
    bans: HashMap<PeerId, u64>,
    /// The same bans ordered by end, for expiry and eviction.
    ban_expiry: BTreeSet<(u64, PeerId)>,
    reports_by_reason: HashMap<&'static str, u64>,
    bans_by_reason: HashMap<&'static str, u64>,
    max_bans: usize,
    max_retained_scores: usize,
}

impl PeerManager {
    /// A manager holding the `persisted_bans` (peer, until unix ms) that have not expired at
    /// `now_unix_ms`. It emits no effects for them: the swarm blocks [`PeerManager::bans`] at start.
    pub fn new(config: Config, persisted_bans: Vec<(PeerId, u64)>, now_unix_ms: u64) -> Self {
        let mut manager = PeerManager {
            config,
            scores: HashMap::new(),
            connected: HashMap::new(),
            bans: HashMap::new(),
            ban_expiry: BTreeSet::new(),
            reports_by_reason: HashMap::new(),
            bans_by_reason: HashMap::new(),
            max_bans: MAX_BANS,
            max_retained_scores: MAX_RETAINED_SCORES,
        };
        for (peer, until) in persisted_bans {
            if until <= now_unix_ms || manager.bans.get(&peer).is_some_and(|&held| held >= until) {
                continue;
            }
            manager.set_ban(peer, until);
        }
        // Over the cap (a file from a build with a larger cap): keep the longest bans, silently, since
        // the swarm has not blocked any of them yet.
        while manager.bans.len() > manager.max_bans {
            manager.pop_soonest_ban();
        }
        manager
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Records misbehaviour by `peer` and returns what the swarm must do: at most one
    /// [`Effect::Disconnect`] when the score crosses the disconnect threshold, or one [`Effect::Ban`] when
    /// it crosses the ban threshold or `action` is `Fatal` (none if the peer is already banned), plus an
    /// [`Effect::Unban`] if the ban map was full and another ban was evicted.
    #[must_use = "the swarm must execute the effects"]
    pub fn report(
        &mut self,
        peer: PeerId,
        action: PeerAction,
        reason: &'static str,
        now: Instant,
        now_unix_ms: u64,
    ) -> Vec<Effect> {
        *self.reports_by_reason.entry(reason).or_default() += 1;
        let half_life = self.config.score_half_life;
        let score = self.scores.entry(peer).or_insert_with(|| Score::new(now));
        let before = score.advance(now, half_life);
        if action == PeerAction::Fatal {
            // A high reputation never absorbs proof of malice.
            score.set(MIN_SCORE);
        } else {
            score.set(before + penalty(action));
        }
        let after = score.value;
        let connected = self.connected.contains_key(&peer);
        if !connected {
            self.enforce_retained_cap();
        }

        if action == PeerAction::Fatal || after <= self.config.ban_threshold {
            if self.is_banned(&peer, now_unix_ms) {
                return Vec::new();
            }
            let until = now_unix_ms.saturating_add(duration_ms(self.config.ban_duration));
            return self.insert_ban(peer, until, reason);
        }
        if connected && after <= self.config.disconnect_threshold && before > self.config.disconnect_threshold {
            return vec![Effect::Disconnect { peer }];
        }
        Vec::new()
    }

    /// Adds `amount` (finite, positive; anything else is ignored) to a connected peer's score, capped at
    /// [`MAX_SCORE`], for useful behaviour such as relaying a valid new block first.
    pub fn reward(&mut self, peer: &PeerId, amount: f64, now: Instant) {
        if !amount.is_finite() || amount <= 0.0 || !self.connected.contains_key(peer) {
            return;
        }
        let half_life = self.config.score_half_life;
        if let Some(score) = self.scores.get_mut(peer) {
            let value = score.advance(now, half_life);
            score.set(value + amount);
        }
    }

    /// Periodic upkeep: decays every score to `now`, forgets disconnected peers whose score has
    /// decayed above [`FORGET_SCORE`], and ends bans whose time has come (`until <= now_unix_ms`),
    /// returning an [`Effect::Unban`] for each, soonest first. An unbanned peer's score is raised to 0:
    /// it has served its sentence.
    #[must_use = "the swarm must execute the effects"]
    pub fn heartbeat(&mut self, now: Instant, now_unix_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        while let Some(&(until, peer)) = self.ban_expiry.first() {
            if until > now_unix_ms {
                break;
            }
            self.remove_ban(&peer);
            effects.push(Effect::Unban { peer });
        }
        let half_life = self.config.score_half_life;
        let connected = &self.connected;
        self.scores.retain(|peer, score| {
            let value = score.advance(now, half_life);
            connected.contains_key(peer) || value <= FORGET_SCORE
        });
        effects
    }

    /// Bans `peer` for `duration` from `now_unix_ms` (the admin API), replacing any ban it has. Returns
    /// the [`Effect::Ban`] (plus an [`Effect::Unban`] if another ban was evicted at the cap); a zero
    /// duration does nothing.
    #[must_use = "the swarm must execute the effects"]
    pub fn ban(&mut self, peer: PeerId, duration: Duration, reason: &'static str, now_unix_ms: u64) -> Vec<Effect> {
        if duration.is_zero() {
            return Vec::new();
        }
        let until = now_unix_ms.saturating_add(duration_ms(duration));
        self.insert_ban(peer, until, reason)
    }

    /// Lifts `peer`'s ban (the admin API) and raises its score to 0; returns an [`Effect::Unban`] if it
    /// was banned.
    #[must_use = "the swarm must execute the effects"]
    pub fn unban(&mut self, peer: PeerId) -> Vec<Effect> {
        if self.remove_ban(&peer) { vec![Effect::Unban { peer }] } else { Vec::new() }
    }

    /// Whether `peer` is banned at `now_unix_ms`.
    pub fn is_banned(&self, peer: &PeerId, now_unix_ms: u64) -> bool {
        self.bans.get(peer).is_some_and(|&until| until > now_unix_ms)
    }

    /// Every ban held, as (peer, until unix ms), soonest to end first: what to persist and, at start,
    /// what to block.
    pub fn bans(&self) -> Vec<(PeerId, u64)> {
        self.ban_expiry.iter().map(|&(until, peer)| (peer, until)).collect()
    }

    /// Number of bans held (a metrics gauge).
    pub fn ban_count(&self) -> usize {
        self.bans.len()
    }

    /// A connection to `peer` was established (call for every connection; later ones only add their
    /// address). Returns [`Effect::Disconnect`] without recording the peer if it is banned (until the
    /// heartbeat lifts the ban) or its score is at or below the disconnect threshold.
    #[must_use = "the swarm must execute the effects"]
    pub fn on_connected(&mut self, peer: PeerId, direction: Direction, addr: Multiaddr, now: Instant) -> Vec<Effect> {
        if let Some(connection) = self.connected.get_mut(&peer) {
            if connection.addrs.len() < MAX_CONNECTION_ADDRS && !connection.addrs.contains(&addr) {
                connection.addrs.push(addr);
            }
            return Vec::new();
        }
        if self.bans.contains_key(&peer) {
            return vec![Effect::Disconnect { peer }];
        }
        let half_life = self.config.score_half_life;
        let score = self.scores.entry(peer).or_insert_with(|| Score::new(now));
        if score.advance(now, half_life) <= self.config.disconnect_threshold {
            return vec![Effect::Disconnect { peer }];
        }
        let limits = self.config.rate_limits;
        let buckets = RateClass::ALL.map(|class| TokenBucket::full(limits.get(class), now));
        let connection =
            Connection { direction, addrs: vec![addr], listen_addrs: Vec::new(), agent: None, since: now, buckets };
        self.connected.insert(peer, connection);
        Vec::new()
    }

    /// The last connection to `peer` closed: drops its connection record and rate buckets, and keeps its
    /// score only if it is at or below [`FORGET_SCORE`].
    pub fn on_disconnected(&mut self, peer: &PeerId) {
        if self.connected.remove(peer).is_none() {
            return;
        }
        if self.scores.get(peer).is_some_and(|score| score.value > FORGET_SCORE) {
            self.scores.remove(peer);
        } else {
            self.enforce_retained_cap();
        }
    }

    /// Identify information from a connected peer (ignored otherwise), truncated to
    /// [`MAX_AGENT_LEN`] bytes and [`MAX_LISTEN_ADDRS`] addresses.
    pub fn on_identify(&mut self, peer: PeerId, agent: String, mut listen_addrs: Vec<Multiaddr>) {
        let Some(connection) = self.connected.get_mut(&peer) else {
            return;
        };
        listen_addrs.truncate(MAX_LISTEN_ADDRS);
        connection.listen_addrs = listen_addrs;
        connection.agent = Some(truncate_utf8(agent, MAX_AGENT_LEN));
    }

    /// Scores kept for peers that are not connected (at most `max_retained_scores`).
    pub fn retained_count(&self) -> usize {
        self.scores.keys().filter(|p| !self.connected.contains_key(*p)).count()
    }

    /// Connected peers.
    pub fn connected_count(&self) -> usize {
        self.connected.len()
    }

    /// Number of connected peers that dialled us.
    pub fn inbound_count(&self) -> usize {
        self.connected.values().filter(|c| c.direction == Direction::Inbound).count()
    }

    /// Number of connected peers we dialled.
    pub fn outbound_count(&self) -> usize {
        self.connected.len() - self.inbound_count()
    }

    /// Whether `peer` is connected (and so not banned).
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.connected.contains_key(peer)
    }

    /// Every connected peer, ordered by peer id.
    pub fn peers(&self) -> Vec<PeerSummary> {
        let mut peers: Vec<PeerSummary> = self
            .connected
            .iter()
            .map(|(peer, c)| PeerSummary {
                peer: *peer,
                direction: c.direction,
                addrs: c.addrs.clone(),
                listen_addrs: c.listen_addrs.clone(),
                score: self.score(peer),
                agent: c.agent.clone(),
                connected_since: c.since,
            })
            .collect();
        peers.sort_by_key(|summary| summary.peer);
        peers
    }

    /// `peer`'s score as of the last heartbeat or report; 0 for a peer we know nothing about.
    pub fn score(&self, peer: &PeerId) -> f64 {
        self.scores.get(peer).map_or(0.0, |score| score.value)
    }

    /// Whether to dial more peers: below `target_peers`, or below `min_outbound_peers` outbound ones.
    pub fn wants_more_peers(&self) -> bool {
        self.connected.len() < self.config.target_peers || self.outbound_count() < self.config.min_outbound_peers
    }

    /// Whether to accept one more inbound connection: fewer than `max_peers` connected, and inbound
    /// peers leave `min_outbound_peers` of those slots free.
    pub fn should_accept_inbound(&self) -> bool {
        let inbound_slots = self.config.max_peers.saturating_sub(self.config.min_outbound_peers);
        self.connected.len() < self.config.max_peers && self.inbound_count() < inbound_slots
    }

    /// The peers to disconnect to get back to `max_peers`: lowest score first, newest first among equal
    /// scores, and every inbound peer before any outbound one.
    pub fn excess_peers(&self, now: Instant) -> Vec<PeerId> {
        let excess = self.connected.len().saturating_sub(self.config.max_peers);
        if excess == 0 {
            return Vec::new();
        }
        let half_life = self.config.score_half_life;
        let mut candidates: Vec<(bool, f64, std::cmp::Reverse<Instant>, PeerId)> = self
            .connected
            .iter()
            .map(|(peer, c)| {
                let score = self.scores.get(peer).map_or(0.0, |s| s.at(now, half_life));
                (c.direction == Direction::Outbound, score, std::cmp::Reverse(c.since), *peer)
            })
            .collect();
        candidates.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
        candidates.into_iter().take(excess).map(|(_, _, _, peer)| peer).collect()
    }

    /// Takes `cost` tokens from `peer`'s `class` bucket. `false` (nothing taken) if the bucket holds
    /// fewer, if `cost` exceeds the bucket's capacity, or if the peer is not connected; the caller then
    /// answers with an error and reports `MidTolerance` with reason `"rate_limit"`.
    pub fn allow(&mut self, peer: &PeerId, class: RateClass, cost: u32, now: Instant) -> bool {
        let limit = self.config.rate_limits.get(class);
        match self.connected.get_mut(peer) {
            Some(connection) => connection.buckets[class.index()].try_take(limit, cost, now),
            None => false,
        }
    }

    /// Reports received, by reason (for metrics).
    pub fn report_counts(&self) -> &HashMap<&'static str, u64> {
        &self.reports_by_reason
    }

    /// Bans imposed (by score or admin), by reason (for metrics).
    pub fn ban_counts(&self) -> &HashMap<&'static str, u64> {
        &self.bans_by_reason
    }

    /// Records a ban, drops the peer's connection record, and evicts the soonest-to-expire bans past the
    /// cap.
    fn insert_ban(&mut self, peer: PeerId, until: u64, reason: &'static str) -> Vec<Effect> {
        *self.bans_by_reason.entry(reason).or_default() += 1;
        self.set_ban(peer, until);
        self.connected.remove(&peer);
        self.enforce_retained_cap();
        let mut effects = vec![Effect::Ban { peer, until_unix_ms: until, reason }];
        while self.bans.len() > self.max_bans {
            let Some(evicted) = self.pop_soonest_ban() else { break };
            if evicted == peer {
                // The new ban was the soonest to end: it never took effect.
                effects.retain(|effect| !matches!(effect, Effect::Ban { peer: p, .. } if *p == peer));
            } else {
                effects.push(Effect::Unban { peer: evicted });
            }
        }
        effects
    }

    fn set_ban(&mut self, peer: PeerId, until: u64) {
        if let Some(old) = self.bans.insert(peer, until) {
            self.ban_expiry.remove(&(old, peer));
        }
        self.ban_expiry.insert((until, peer));
    }

    fn pop_soonest_ban(&mut self) -> Option<PeerId> {
        let (_, peer) = self.ban_expiry.pop_first()?;
        self.bans.remove(&peer);
        Some(peer)
    }

    /// Removes a ban and raises the peer's score to 0; whether there was one.
    fn remove_ban(&mut self, peer: &PeerId) -> bool {
        let Some(until) = self.bans.remove(peer) else {
            return false;
        };
        self.ban_expiry.remove(&(until, *peer));
        if let Some(score) = self.scores.get_mut(peer) {
            score.set(score.value.max(0.0));
        }
        true
    }

    /// Forgets the least negative disconnected scores past `max_retained_scores`.
    fn enforce_retained_cap(&mut self) {
        while self.scores.len() > self.connected.len() + self.max_retained_scores {
            let forget = self
                .scores
                .iter()
                .filter(|(peer, _)| !self.connected.contains_key(*peer))
                .max_by(|a, b| a.1.value.total_cmp(&b.1.value).then(a.0.cmp(b.0)))
                .map(|(peer, _)| *peer);
            match forget {
                Some(peer) => self.scores.remove(&peer),
                None => break,
            };
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate_utf8(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0_MS: u64 = 1_700_000_000_000;
    const EPS: f64 = 1e-9;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("valid multiaddr")
    }

    fn manager() -> PeerManager {
        PeerManager::new(Config::default(), Vec::new(), T0_MS)
    }

    fn connect(pm: &mut PeerManager, direction: Direction, now: Instant) -> PeerId {
        let peer = PeerId::random();
        assert!(pm.on_connected(peer, direction, addr(4000), now).is_empty());
        peer
    }

    fn ban_ms() -> u64 {
        duration_ms(DEFAULT_BAN_DURATION)
    }

    /// Checks the module invariants.
    fn check_invariants(pm: &PeerManager, _now_unix_ms: u64) {
        for score in pm.scores.values() {
            assert!(score.value.is_finite() && (MIN_SCORE..=MAX_SCORE).contains(&score.value));
        }
        for peer in pm.connected.keys() {
            assert!(pm.scores.contains_key(peer), "connected peer without a score");
            assert!(!pm.bans.contains_key(peer), "banned peer is connected");
        }
        assert!(pm.scores.len() <= pm.connected.len() + pm.max_retained_scores);
        assert!(pm.bans.len() <= pm.max_bans);
        assert_eq!(pm.bans.len(), pm.ban_expiry.len());
        for (until, peer) in &pm.ban_expiry {
            assert_eq!(pm.bans.get(peer), Some(until));
        }
    }

    #[test]
    fn penalty_table_matches_policy() {
        assert_eq!(penalty(PeerAction::Fatal), -100.0);
        assert_eq!(penalty(PeerAction::LowTolerance), -10.0);
        assert_eq!(penalty(PeerAction::MidTolerance), -5.0);
        assert_eq!(penalty(PeerAction::HighTolerance), -1.0);
    }

    #[test]
    fn each_action_applies_its_penalty() {
        let now = Instant::now();
        for action in [PeerAction::LowTolerance, PeerAction::MidTolerance, PeerAction::HighTolerance] {
            let mut pm = manager();
            let peer = connect(&mut pm, Direction::Outbound, now);
            assert!(pm.report(peer, action, "test", now, T0_MS).is_empty());
            assert_eq!(pm.score(&peer), penalty(action), "{action:?}");
            assert!(pm.is_connected(&peer));
        }
    }

    #[test]
    fn fatal_bans_at_once_even_with_a_high_score() {
        let now = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Inbound, now);
        pm.reward(&peer, 1_000.0, now);
        assert_eq!(pm.score(&peer), MAX_SCORE);
        let effects = pm.report(peer, PeerAction::Fatal, "bad_pow", now, T0_MS);
        assert_eq!(effects, vec![Effect::Ban { peer, until_unix_ms: T0_MS + ban_ms(), reason: "bad_pow" }]);
        assert_eq!(pm.score(&peer), MIN_SCORE);
        assert!(pm.is_banned(&peer, T0_MS));
        assert!(!pm.is_connected(&peer));
        assert_eq!(pm.ban_counts().get("bad_pow"), Some(&1));
        // A second fatal report while banned: no duplicate ban.
        assert!(pm.report(peer, PeerAction::Fatal, "bad_pow", now, T0_MS + 1).is_empty());
        assert_eq!(pm.ban_counts().get("bad_pow"), Some(&1));
        assert_eq!(pm.report_counts().get("bad_pow"), Some(&2));
        check_invariants(&pm, T0_MS);
    }

    #[test]
    fn disconnect_threshold_crossed_exactly_once() {
        let now = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Outbound, now);
        assert!(pm.report(peer, PeerAction::LowTolerance, "oversized", now, T0_MS).is_empty());
        assert_eq!(
            pm.report(peer, PeerAction::LowTolerance, "oversized", now, T0_MS),
            vec![Effect::Disconnect { peer }]
        );
        assert_eq!(pm.score(&peer), -20.0);
        // Further reports before the swarm closes the connection: no repeat while above the ban threshold.
        for _ in 0..2 {
            assert!(pm.report(peer, PeerAction::LowTolerance, "oversized", now, T0_MS).is_empty());
        }
        assert_eq!(pm.report_counts().get("oversized"), Some(&4));
    }

    #[test]
    fn ban_threshold_crossed_once_without_duplicate_ban() {
        let now = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Outbound, now);
        let mut effects = Vec::new();
        for _ in 0..10 {
            effects.extend(pm.report(peer, PeerAction::MidTolerance, "bad_tx", now, T0_MS));
        }
        assert_eq!(
            effects,
            vec![Effect::Disconnect { peer }, Effect::Ban { peer, until_unix_ms: T0_MS + ban_ms(), reason: "bad_tx" },]
        );
        assert_eq!(pm.score(&peer), -50.0);
        for _ in 0..20 {
            assert!(pm.report(peer, PeerAction::MidTolerance, "bad_tx", now, T0_MS).is_empty());
        }
        assert_eq!(pm.score(&peer), MIN_SCORE);
        assert_eq!(pm.ban_counts().get("bad_tx"), Some(&1));
        assert_eq!(pm.bans(), vec![(peer, T0_MS + ban_ms())]);
        check_invariants(&pm, T0_MS);
    }

    #[test]
    fn ban_drops_connection_and_banned_peer_is_turned_away() {
        let now = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Inbound, now);
        let _ = pm.report(peer, PeerAction::Fatal, "invalid_block", now, T0_MS);
        assert_eq!(pm.connected_count(), 0);
        assert!(pm.peers().is_empty());
        assert!(!pm.allow(&peer, RateClass::GossipMessage, 1, now));
        assert_eq!(pm.on_connected(peer, Direction::Inbound, addr(1), now), vec![Effect::Disconnect { peer }]);
        assert!(!pm.is_connected(&peer));
        pm.on_disconnected(&peer);
        check_invariants(&pm, T0_MS);
    }

    #[test]
    fn decay_halves_the_score_after_one_half_life() {
        let t0 = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Outbound, t0);
        for _ in 0..3 {
            let _ = pm.report(peer, PeerAction::MidTolerance, "bad_tx", t0, T0_MS);
        }
        assert_eq!(pm.score(&peer), -15.0);
        assert!(pm.heartbeat(t0 + DEFAULT_SCORE_HALF_LIFE, T0_MS).is_empty());
        assert!((pm.score(&peer) + 7.5).abs() < EPS, "score {}", pm.score(&peer));
        let _ = pm.heartbeat(t0 + 2 * DEFAULT_SCORE_HALF_LIFE, T0_MS);
        assert!((pm.score(&peer) + 3.75).abs() < EPS);
        // Positive scores decay too.
        pm.reward(&peer, 20.0, t0 + 2 * DEFAULT_SCORE_HALF_LIFE);
        let _ = pm.heartbeat(t0 + 3 * DEFAULT_SCORE_HALF_LIFE, T0_MS);
        assert!((pm.score(&peer) - (20.0 - 3.75) / 2.0).abs() < EPS);
    }

    #[test]
    fn decay_is_applied_lazily_before_a_penalty() {
        let t0 = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Outbound, t0);
        let _ = pm.report(peer, PeerAction::LowTolerance, "oversized", t0, T0_MS);
        // One half-life later, without a heartbeat: -10 has decayed to -5, so -5 - 10 does not cross -20.
        let effects = pm.report(peer, PeerAction::LowTolerance, "oversized", t0 + DEFAULT_SCORE_HALF_LIFE, T0_MS);
        assert!(effects.is_empty());
        assert!((pm.score(&peer) + 15.0).abs() < EPS);
        // An earlier instant never undoes decay.
        let _ = pm.heartbeat(t0, T0_MS);
        assert!((pm.score(&peer) + 15.0).abs() < EPS);
    }

    #[test]
    fn heartbeat_expires_bans_exactly_at_until() {
        let now = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Outbound, now);
        let _ = pm.report(peer, PeerAction::Fatal, "bad_pow", now, T0_MS);
        let until = T0_MS + ban_ms();
        assert!(pm.heartbeat(now, until - 1).is_empty());
        assert!(pm.is_banned(&peer, until - 1));
        assert!(!pm.is_banned(&peer, until));
        assert_eq!(pm.heartbeat(now, until), vec![Effect::Unban { peer }]);
        assert!(pm.bans().is_empty());
        assert!(pm.heartbeat(now, until + 1).is_empty());
        // Served its sentence: the score is back to 0 and it may connect again.
        assert_eq!(pm.score(&peer), 0.0);
        assert!(pm.on_connected(peer, Direction::Inbound, addr(1), now).is_empty());
        check_invariants(&pm, until);
    }

    #[test]
    fn persisted_bans_load_and_expired_ones_are_dropped() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let persisted = vec![(a, T0_MS + 1), (b, T0_MS), (c, T0_MS - 5), (a, T0_MS + 10), (a, T0_MS + 3)];
        let mut pm = PeerManager::new(Config::default(), persisted, T0_MS);
        assert_eq!(pm.bans(), vec![(a, T0_MS + 10)]);
        assert!(pm.is_banned(&a, T0_MS));
        assert!(!pm.is_banned(&b, T0_MS));
        assert!(!pm.is_banned(&c, T0_MS));
        assert_eq!(
            pm.on_connected(a, Direction::Inbound, addr(1), Instant::now()),
            vec![Effect::Disconnect { peer: a }]
        );
        assert_eq!(pm.heartbeat(Instant::now(), T0_MS + 10), vec![Effect::Unban { peer: a }]);
        check_invariants(&pm, T0_MS + 10);
    }

    #[test]
    fn admin_ban_replaces_and_unban_lifts() {
        let now = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Outbound, now);
        let hour = Duration::from_secs(3600);
        assert_eq!(
            pm.ban(peer, hour, "admin", T0_MS),
            vec![Effect::Ban { peer, until_unix_ms: T0_MS + 3_600_000, reason: "admin" }]
        );
        assert!(!pm.is_connected(&peer));
        let _ = pm.ban(peer, 2 * hour, "admin", T0_MS);
        assert_eq!(pm.bans(), vec![(peer, T0_MS + 7_200_000)]);
        assert!(pm.ban(peer, Duration::ZERO, "admin", T0_MS).is_empty());
        assert_eq!(pm.unban(peer), vec![Effect::Unban { peer }]);
        assert!(pm.unban(peer).is_empty());
        assert!(!pm.is_banned(&peer, T0_MS));
        assert_eq!(pm.ban_counts().get("admin"), Some(&2));
        check_invariants(&pm, T0_MS);
    }

    #[test]
    fn reward_is_capped_and_ignores_nonsense() {
        let now = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Outbound, now);
        pm.reward(&peer, 60.0, now);
        pm.reward(&peer, 60.0, now);
        assert_eq!(pm.score(&peer), MAX_SCORE);
        for amount in [f64::NAN, f64::INFINITY, -5.0, 0.0] {
            pm.reward(&peer, amount, now);
        }
        assert_eq!(pm.score(&peer), MAX_SCORE);
        // Rewards for peers we are not connected to are ignored.
        let stranger = PeerId::random();
        pm.reward(&stranger, 10.0, now);
        assert_eq!(pm.score(&stranger), 0.0);
    }

    #[test]
    fn score_of_a_disconnected_peer_survives_reconnection() {
        let t0 = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Inbound, t0);
        for _ in 0..5 {
            let _ = pm.report(peer, PeerAction::MidTolerance, "bad_tx", t0, T0_MS);
        }
        pm.on_disconnected(&peer);
        assert_eq!(pm.score(&peer), -25.0);
        // Reconnecting right away: still below the disconnect threshold, turned away.
        assert_eq!(pm.on_connected(peer, Direction::Inbound, addr(1), t0), vec![Effect::Disconnect { peer }]);
        // Once it has decayed above the threshold it is welcome, with its remaining debt.
        let later = t0 + DEFAULT_SCORE_HALF_LIFE;
        assert!(pm.on_connected(peer, Direction::Inbound, addr(1), later).is_empty());
        assert!((pm.score(&peer) + 12.5).abs() < EPS);
        // A peer with a negligible score is forgotten on disconnect.
        let light = connect(&mut pm, Direction::Inbound, t0);
        let _ = pm.report(light, PeerAction::HighTolerance, "timeout", t0, T0_MS);
        pm.reward(&light, 0.5, t0);
        pm.on_disconnected(&light);
        assert!(!pm.scores.contains_key(&light));
        // Retained scores are forgotten once they decay above FORGET_SCORE.
        pm.on_disconnected(&peer);
        let _ = pm.heartbeat(later + 5 * DEFAULT_SCORE_HALF_LIFE, T0_MS);
        assert!(!pm.scores.contains_key(&peer));
        check_invariants(&pm, T0_MS);
    }

    #[test]
    fn retained_scores_are_capped_keeping_the_worst() {
        let now = Instant::now();
        let mut pm = manager();
        pm.max_retained_scores = 3;
        let worst = PeerId::random();
        let _ = pm.report(worst, PeerAction::LowTolerance, "oversized", now, T0_MS);
        for _ in 0..10 {
            let _ = pm.report(PeerId::random(), PeerAction::HighTolerance, "timeout", now, T0_MS);
        }
        let connected = connect(&mut pm, Direction::Outbound, now);
        assert_eq!(pm.scores.len(), 4);
        assert_eq!(pm.score(&worst), -10.0);
        assert!(pm.scores.contains_key(&connected));
        check_invariants(&pm, T0_MS);
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_refuses_then_refills() {
        let t0 = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Inbound, t0);
        let limit = SYNC_REQUEST_LIMIT;
        for _ in 0..limit.capacity {
            assert!(pm.allow(&peer, RateClass::SyncRequest, 1, t0));
        }
        assert!(!pm.allow(&peer, RateClass::SyncRequest, 1, t0));
        // Other classes have their own buckets.
        assert!(pm.allow(&peer, RateClass::GossipMessage, 1, t0));
        // Half a second refills half a second's worth.
        let t1 = t0 + Duration::from_millis(500);
        for _ in 0..limit.refill_per_sec / 2 {
            assert!(pm.allow(&peer, RateClass::SyncRequest, 1, t1));
        }
        assert!(!pm.allow(&peer, RateClass::SyncRequest, 1, t1));
        // A long pause refills to capacity, never beyond.
        let t2 = t1 + Duration::from_secs(3600);
        assert!(pm.allow(&peer, RateClass::SyncRequest, limit.capacity, t2));
        assert!(!pm.allow(&peer, RateClass::SyncRequest, 1, t2));
    }

    #[test]
    fn rate_limiter_charges_cost_and_refuses_oversized_costs() {
        let t0 = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Outbound, t0);
        let limit = BLOCKS_REQUESTED_LIMIT;
        assert!(!pm.allow(&peer, RateClass::BlocksRequested, limit.capacity + 1, t0));
        for _ in 0..limit.capacity / 64 {
            assert!(pm.allow(&peer, RateClass::BlocksRequested, 64, t0));
        }
        assert!(!pm.allow(&peer, RateClass::BlocksRequested, 64, t0));
        assert!(pm.allow(&peer, RateClass::BlocksRequested, 0, t0));
        assert!(pm.allow(&peer, RateClass::BlocksRequested, 64, t0 + Duration::from_millis(250)));
    }

    #[test]
    fn rate_buckets_exist_only_for_connected_peers() {
        let t0 = Instant::now();
        let mut pm = manager();
        let stranger = PeerId::random();
        assert!(!pm.allow(&stranger, RateClass::GossipMessage, 1, t0));
        let peer = connect(&mut pm, Direction::Inbound, t0);
        for _ in 0..SYNC_REQUEST_LIMIT.capacity {
            assert!(pm.allow(&peer, RateClass::SyncRequest, 1, t0));
        }
        pm.on_disconnected(&peer);
        assert!(!pm.allow(&peer, RateClass::SyncRequest, 1, t0));
        assert!(pm.connected.is_empty());
        // A reconnection starts with full buckets.
        assert!(pm.on_connected(peer, Direction::Inbound, addr(1), t0).is_empty());
        assert!(pm.allow(&peer, RateClass::SyncRequest, SYNC_REQUEST_LIMIT.capacity, t0));
    }

    fn small_config() -> Config {
        Config { target_peers: 2, max_peers: 4, min_outbound_peers: 1, ..Config::default() }
    }

    #[test]
    fn excess_peers_never_picks_outbound_while_inbound_exist() {
        let t0 = Instant::now();
        let mut pm = PeerManager::new(small_config(), Vec::new(), T0_MS);
        let outbound: Vec<PeerId> = (0..3).map(|_| connect(&mut pm, Direction::Outbound, t0)).collect();
        for peer in &outbound {
            let _ = pm.report(*peer, PeerAction::LowTolerance, "oversized", t0, T0_MS);
        }
        let good_inbound: Vec<PeerId> = (0..3).map(|_| connect(&mut pm, Direction::Inbound, t0)).collect();
        for peer in &good_inbound {
            pm.reward(peer, 50.0, t0);
        }
        assert_eq!(pm.connected_count(), 6);
        let excess = pm.excess_peers(t0);
        assert_eq!(excess.len(), 2);
        assert!(excess.iter().all(|peer| good_inbound.contains(peer)));
        // More excess than inbound peers: all inbound first, then the lowest-scored outbound.
        let mut pm = PeerManager::new(Config { max_peers: 1, ..small_config() }, Vec::new(), T0_MS);
        let inbound = connect(&mut pm, Direction::Inbound, t0);
        let worse = connect(&mut pm, Direction::Outbound, t0);
        let better = connect(&mut pm, Direction::Outbound, t0);
        let _ = pm.report(worse, PeerAction::HighTolerance, "timeout", t0, T0_MS);
        pm.reward(&better, 1.0, t0);
        assert_eq!(pm.excess_peers(t0), vec![inbound, worse]);
    }

    #[test]
    fn excess_peers_prefers_lowest_score_then_newest() {
        let t0 = Instant::now();
        let mut pm = PeerManager::new(Config { max_peers: 2, ..small_config() }, Vec::new(), T0_MS);
        let old = connect(&mut pm, Direction::Inbound, t0);
        let new = connect(&mut pm, Direction::Inbound, t0 + Duration::from_secs(1));
        let bad = connect(&mut pm, Direction::Inbound, t0 + Duration::from_secs(2));
        let mid = connect(&mut pm, Direction::Inbound, t0 + Duration::from_secs(3));
        let _ = pm.report(bad, PeerAction::LowTolerance, "oversized", t0, T0_MS);
        pm.reward(&mid, 2.0, t0);
        let _ = pm.report(mid, PeerAction::HighTolerance, "timeout", t0, T0_MS);
        let now = t0 + Duration::from_secs(3);
        assert_eq!(pm.excess_peers(now), vec![bad, new]);
        assert!(!pm.excess_peers(now).contains(&old));
        pm.on_disconnected(&bad);
        pm.on_disconnected(&new);
        assert!(pm.excess_peers(now).is_empty());
    }

    #[test]
    fn inbound_slots_leave_room_for_outbound() {
        let t0 = Instant::now();
        let mut pm = PeerManager::new(small_config(), Vec::new(), T0_MS);
        assert!(pm.wants_more_peers());
        for _ in 0..3 {
            assert!(pm.should_accept_inbound());
            let _ = connect(&mut pm, Direction::Inbound, t0);
        }
        // Three inbound of max 4 with one outbound slot reserved: no more inbound, but we still dial.
        assert!(!pm.should_accept_inbound());
        assert!(pm.wants_more_peers());
        let _ = connect(&mut pm, Direction::Outbound, t0);
        assert!(!pm.wants_more_peers());
        assert!(!pm.should_accept_inbound());
        assert_eq!((pm.inbound_count(), pm.outbound_count()), (3, 1));
    }

    #[test]
    fn defaults_allow_five_hundred_plus_peers() {
        let t0 = Instant::now();
        let mut pm = manager();
        for i in 0..550 {
            assert!(pm.should_accept_inbound(), "refused peer {i}");
            let _ = connect(&mut pm, Direction::Inbound, t0);
        }
        assert_eq!(pm.connected_count(), 550);
        assert!(pm.excess_peers(t0).is_empty());
        check_invariants(&pm, T0_MS);
    }

    #[test]
    fn ban_map_cap_evicts_the_soonest_to_expire() {
        let now = Instant::now();
        let mut pm = manager();
        pm.max_bans = 3;
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        for (i, peer) in peers.iter().take(3).enumerate() {
            let effects = pm.ban(*peer, Duration::from_secs(100 + i as u64), "admin", T0_MS);
            assert_eq!(effects.len(), 1);
        }
        // A fourth ban evicts the soonest to expire, and the swarm is told to unblock it.
        let effects = pm.report(peers[3], PeerAction::Fatal, "bad_pow", now, T0_MS);
        assert_eq!(
            effects,
            vec![
                Effect::Ban { peer: peers[3], until_unix_ms: T0_MS + ban_ms(), reason: "bad_pow" },
                Effect::Unban { peer: peers[0] },
            ]
        );
        assert_eq!(pm.ban_count(), 3);
        assert!(!pm.is_banned(&peers[0], T0_MS));
        // A ban shorter than every held one never takes effect.
        let short = PeerId::random();
        assert!(pm.ban(short, Duration::from_secs(1), "admin", T0_MS).is_empty());
        assert!(!pm.is_banned(&short, T0_MS));
        assert_eq!(pm.ban_count(), 3);
        check_invariants(&pm, T0_MS);
        // Persisted bans beyond the cap keep the longest.
        let persisted: Vec<(PeerId, u64)> = (0..10).map(|i| (PeerId::random(), T0_MS + 1 + i)).collect();
        let mut pm = PeerManager::new(Config::default(), persisted.clone(), T0_MS);
        pm.max_bans = 3;
        let _ = pm.ban(PeerId::random(), Duration::from_secs(3600), "admin", T0_MS);
        assert_eq!(pm.ban_count(), 3);
        assert!(pm.is_banned(&persisted[9].0, T0_MS));
        assert!(pm.is_banned(&persisted[8].0, T0_MS));
    }

    #[test]
    fn identify_is_bounded_and_ignored_for_strangers() {
        let t0 = Instant::now();
        let mut pm = manager();
        let peer = connect(&mut pm, Direction::Outbound, t0);
        let agent = "é".repeat(MAX_AGENT_LEN); // two bytes per char
        let addrs: Vec<Multiaddr> = (0..100).map(addr).collect();
        pm.on_identify(peer, agent, addrs);
        pm.on_identify(PeerId::random(), "x".into(), vec![addr(1)]);
        let summary = pm.peers();
        assert_eq!(summary.len(), 1);
        let agent = summary[0].agent.as_deref().unwrap_or_default();
        assert!(agent.len() <= MAX_AGENT_LEN && agent.chars().all(|c| c == 'é'));
        assert_eq!(summary[0].listen_addrs.len(), MAX_LISTEN_ADDRS);
        // A second connection adds its address; the first direction stays.
        assert!(pm.on_connected(peer, Direction::Inbound, addr(5000), t0).is_empty());
        let summary = pm.peers();
        assert_eq!(summary[0].addrs, vec![addr(4000), addr(5000)]);
        assert_eq!(summary[0].direction, Direction::Outbound);
        assert_eq!(summary[0].connected_since, t0);
        assert_eq!(pm.connected_count(), 1);
    }

    mod prop {
        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            Connect(usize, bool),
            Disconnect(usize),
            Report(usize, u8),
            Reward(usize, f64),
            Allow(usize, u8, u32),
            Ban(usize, u64),
            Unban(usize),
            Heartbeat,
            Advance(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..6usize, any::<bool>()).prop_map(|(p, inbound)| Op::Connect(p, inbound)),
                (0..6usize).prop_map(Op::Disconnect),
                (0..6usize, 0..4u8).prop_map(|(p, a)| Op::Report(p, a)),
                (0..6usize, -10.0..200.0f64).prop_map(|(p, x)| Op::Reward(p, x)),
                (0..6usize, 0..3u8, 0..100u32).prop_map(|(p, c, n)| Op::Allow(p, c, n)),
                (0..6usize, 0..4_000_000u64).prop_map(|(p, ms)| Op::Ban(p, ms)),
                (0..6usize).prop_map(Op::Unban),
                Just(Op::Heartbeat),
                (0..2_000_000u64).prop_map(Op::Advance),
            ]
        }

        proptest! {
            #[test]
            fn invariants_hold_under_any_sequence(ops in proptest::collection::vec(op(), 1..200)) {
                let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
                let start = Instant::now();
                let mut elapsed_ms = 0u64;
                let mut pm = manager();
                pm.max_bans = 3;
                pm.max_retained_scores = 2;
                for op in ops {
                    let now = start + Duration::from_millis(elapsed_ms);
                    let now_ms = T0_MS + elapsed_ms;
                    match op {
                        Op::Connect(p, inbound) => {
                            let dir = if inbound { Direction::Inbound } else { Direction::Outbound };
                            let _ = pm.on_connected(peers[p], dir, addr(1), now);
                        }
                        Op::Disconnect(p) => pm.on_disconnected(&peers[p]),
                        Op::Report(p, a) => {
                            let action = [
                                PeerAction::Fatal,
                                PeerAction::LowTolerance,
                                PeerAction::MidTolerance,
                                PeerAction::HighTolerance,
                            ][usize::from(a)];
                            let was_banned = pm.is_banned(&peers[p], now_ms);
                            let effects = pm.report(peers[p], action, "prop", now, now_ms);
                            if was_banned {
                                prop_assert!(effects.is_empty());
                            }
                        }
                        Op::Reward(p, x) => pm.reward(&peers[p], x, now),
                        Op::Allow(p, c, n) => {
                            let allowed = pm.allow(&peers[p], RateClass::ALL[usize::from(c)], n, now);
                            if allowed {
                                prop_assert!(pm.is_connected(&peers[p]));
                            }
                        }
                        Op::Ban(p, ms) => {
                            let _ = pm.ban(peers[p], Duration::from_millis(ms), "prop", now_ms);
                        }
                        Op::Unban(p) => {
                            let _ = pm.unban(peers[p]);
                        }
                        Op::Heartbeat => {
                            let _ = pm.heartbeat(now, now_ms);
                        }
                        Op::Advance(ms) => elapsed_ms += ms,
                    }
                    check_invariants(&pm, T0_MS + elapsed_ms);
                }
            }
        }
    }
}
