//! Attacker peers for the simulations: real libp2p peers on the memory transport, placed in the
//! topology by the runner's link model like any honest node, that misbehave in one way each.
//!
//! Every attacker listens on `/memory/{links.local}`, dials its targets (honest nodes, full
//! `/memory/{port}/p2p/{peer id}` addresses) over the model's links, re-dials every
//! [`REDIAL_EVERY`] the targets it is not connected to, and plays one attack round every
//! `period` against the targets it is connected to. It answers the honest nodes' sync requests
//! like the test peers of `tests/it/misbehaving.rs`: `Status` with the requester's own status
//! echoed (so no honest node ever tries to sync from it), anything else with an empty `Blocks`
//! response. What it sees of its connections is counted in [`AttackStats`].
//!
//! - [`AttackKind::InvalidBlocks`] runs the node's own stack ([`build_swarm`]) and, every round,
//!   gossips one block on the reference node's tip: version, height, parent, difficulty and PoW are
//!   valid and the timestamp is the current time, but its only transaction (a transfer from a
//!   fresh key, correct chain id and fee) carries a signature with one flipped bit, under a
//!   transactions root that matches the broken transaction. Every round uses another key, so the
//!   message ids differ. An honest node passes the header checks, relays the block (gossip accept)
//!   and then fails the import on the signature (`InvalidSignature`, a fatal fault): it charges the
//!   block's signed gossip author, this attacker, never the relayer, and bans it. Nodes that got the
//!   block through a relay ban the author too, without ever being connected to it.
//! - [`AttackKind::JunkFrames`] speaks only identify, ping and `/vision/sync/1` (through its own
//!   request-response behaviour with [`RawCodec`]) and sends, every round, a burst of
//!   [`BURST_FRAMES`] frames to each connected target: a correct `u32 LE` length prefix of 1 ..=
//!   [`MAX_REQUEST_BYTES`] and a random payload whose tag is no request tag. An honest node answers
//!   each with `InvalidRequest`, penalises it (`bad_sync_request`, low tolerance) and bans it after
//!   a few.
//! - [`AttackKind::RequestFlood`] is the same raw peer sending bursts of [`BURST_FRAMES`] valid
//!   `BlocksByRange { start: 0, count: 64 }` requests, far above the per-peer rate limits. An
//!   honest node answers `RateLimited`, penalises each excess request (`sync_rate_limit` or
//!   `blocks_rate_limit`, mid tolerance) and bans it, while its honest peers keep being served.
//! - [`AttackKind::Silent`] runs the node's full stack, subscribes to both topics and answers
//!   status requests, but never reports a validation result for any gossip message (gossipsub in
//!   `validate_messages` mode then never forwards them, nor advertises them), never publishes and
//!   never serves blocks: it takes peer slots and mesh places without helping, an eclipse attempt.
//!   It breaks no protocol rule, so honest nodes need not ban it, but they must keep receiving
//!   blocks through their other peers.
//!
//! - [`AttackKind::CheapBlocks`] (issue #14, item 1) runs the node's own stack and gossips, in
//!   turn, blocks that claim difficulty 1 (the honest chain's is higher): on the reference node's
//!   tip with an empty body, on a parent nobody has, and on the tip with a large body
//!   ([`CHEAP_BODY_TXS`] unsigned transfers). Headers first, an honest node checks the claimed
//!   difficulty against the one the retarget requires of a child of the parent: it relays none of
//!   them, stores none of them, and bans the sender at the first one on a known parent
//!   (`block_header_out_of_context`, fatal); it asks the sender for an unknown parent, which the
//!   attacker cannot give (`unresolvable_orphan`).
//! - [`AttackKind::TimestampWalk`] (issue #14, item 4) keeps its own copy of the chain, forks it
//!   [`WALK_FORK_DEPTH`] blocks below the reference node's tip, and mines a side branch at exactly
//!   the difficulty the retarget requires of it, stamping its blocks alternately at the latest time
//!   honest nodes accept (wall clock + the future limit) and the earliest (median time past + 1).
//!   Its hash rate is modelled: each round adds [`WALK_SHARE`] × the fork's difficulty × the round
//!   period / T to a budget of hashes, and a block is made when the budget covers its difficulty
//!   (so it has about 30% of the honest hash rate when the honest nodes mine one block per T). It
//!   serves its blocks by hash. Its blocks are valid: honest nodes need not ban it, but the
//!   difficulty of its branch stays near its hash-rate share (ADR 011: at least 0.196 D for 30%),
//!   and what they store of it stays bounded.
//!
//! A banned attacker keeps re-dialing its targets, once per [`REDIAL_EVERY`]: the honest node
//! refuses (the dial fails, or the connection is closed at once), which is counted in
//! [`AttackStats::dial_failures`].
//!
//! Randomness (keys, junk payloads, nonces) comes from a small xorshift generator seeded from the
//! attacker's peer id, so a run with the same keys repeats.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, identity, ping, request_response};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use vision_node::chain::consensus::now_ms;
use vision_node::chain::genesis::Genesis;
use vision_node::chain::types::{Address, Block, Hash, Transaction, TxKind, tx_root};
use vision_node::miner::{search, template_from};
use vision_node::node::{BlockSource, Core, Node, NodeConfig};
use vision_node::p2p::behaviour::{Behaviour, BehaviourEvent, PROTOCOL_VERSION, build_swarm, build_transport};
use vision_node::p2p::gossip::Topics;
use vision_node::p2p::link::Links;
use vision_node::p2p::sync::{self, MAX_BLOCKS_PER_REQUEST, MAX_REQUEST_BYTES, RawCodec, Request, Response};
use vision_node::p2p::{TransportKind, peer_manager};
use vision_node::state::StoreError;
use vision_node::testkit::transfer;
use vision_node::wallet;

/// Frames sent to each connected target per round by the sync attackers.
pub const BURST_FRAMES: usize = 16;
/// How often targets the attacker is not connected to are dialed again.
pub const REDIAL_EVERY: Duration = Duration::from_secs(1);
/// An outbound connection closed sooner than this after it was established was refused (a ban, a
/// full peer table) and counts as a dial failure too.
pub const REFUSED_WITHIN: Duration = Duration::from_secs(1);
/// Nonces tried to re-solve an invalid block's PoW before the round is skipped.
pub const MAX_NONCE_TRIES: u64 = 1 << 20;
/// Shortest period between rounds (a zero period would spin).
pub const MIN_PERIOD: Duration = Duration::from_millis(10);
/// Timeout of the raw attackers' own requests.
const RAW_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections of the raw attackers are closed after this.
const RAW_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Receives the reward of the invalid blocks (never credited: their bodies never execute).
const EVIL_MINER: Address = Address([0xee; 32]);
/// Transactions in the large-body variant of the cheap blocks (about 180 bytes each).
pub const CHEAP_BODY_TXS: usize = 2_000;
/// The timestamp walker forks this many blocks below the reference node's tip.
pub const WALK_FORK_DEPTH: u64 = 2;
/// The timestamp walker's hash rate as a share of the honest network's (at one block per T).
pub const WALK_SHARE: f64 = 0.3;
/// The timestamp walker stamps its latest blocks this much under the future limit (honest nodes
/// read their clocks a little later).
const WALK_FUTURE_SLACK_MS: u64 = 100;

/// What an attacker does (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    /// Gossips blocks on the honest tip with a valid header and PoW but a body whose one
    /// transaction has a broken signature (tx root matching): honest nodes charge the signed
    /// author (this attacker) and ban it.
    InvalidBlocks,
    /// Sends `/vision/sync/1` frames with a valid length prefix and random garbage payloads
    /// (through its own request_response behaviour with RawCodec).
    JunkFrames,
    /// Floods valid `BlocksByRange { start: 0, count: 64 }` requests faster than the rate limit.
    RequestFlood,
    /// Runs the node's full stack, subscribes to both topics, answers Status requests by echoing
    /// the requester's status, but never validates (hence never forwards) any gossip message and
    /// never serves blocks: it takes peer slots without helping (an eclipse attempt). Honest nodes
    /// need not ban it but must keep receiving blocks through their other peers.
    Silent,
    /// Gossips blocks claiming difficulty 1: on the honest tip, on an unknown parent, and on the
    /// tip with a large body. Honest nodes relay and store none of them and cut it off.
    CheapBlocks,
    /// Mines a side branch at the retarget's difficulty with a modelled 30% hash rate, stamping
    /// alternately at the future limit and at the median time past + 1. Honest nodes keep the
    /// branch's difficulty near its hash rate and bound what they store of it.
    TimestampWalk,
}

impl AttackKind {
    /// The kebab-case name (as in scenario files), for logs and CSV columns.
    pub fn name(self) -> &'static str {
        match self {
            AttackKind::InvalidBlocks => "invalid-blocks",
            AttackKind::JunkFrames => "junk-frames",
            AttackKind::RequestFlood => "request-flood",
            AttackKind::Silent => "silent",
            AttackKind::CheapBlocks => "cheap-blocks",
            AttackKind::TimestampWalk => "timestamp-walk",
        }
    }

    /// Whether honest nodes must ban it (its messages break a rule); the silent peer and the
    /// timestamp walker break none.
    pub fn banned_by_honest(self) -> bool {
        !matches!(self, AttackKind::Silent | AttackKind::TimestampWalk)
    }

    /// Whether it gossips blocks of its own making.
    fn makes_blocks(self) -> bool {
        matches!(self, AttackKind::InvalidBlocks | AttackKind::CheapBlocks | AttackKind::TimestampWalk)
    }

    /// Whether the attacker runs the node's full stack (gossipsub, kad, ...) rather than a
    /// sync-only raw peer.
    fn full_stack(self) -> bool {
        matches!(
            self,
            AttackKind::InvalidBlocks | AttackKind::Silent | AttackKind::CheapBlocks | AttackKind::TimestampWalk
        )
    }
}

/// How to build an attacker.
#[derive(Debug, Clone)]
pub struct AttackerConfig {
    /// What it does.
    pub kind: AttackKind,
    /// Its identity.
    pub keypair: identity::Keypair,
    /// Its place in the link model (it listens on `/memory/{links.local}`).
    pub links: Links,
    /// Honest nodes to attack: full multiaddrs `/memory/{port}/p2p/{peer id}`.
    pub targets: Vec<Multiaddr>,
    /// The network's gossip topics.
    pub topics: Topics,
    /// An honest node's core, to build blocks on the current tip.
    pub reference: Arc<Core>,
    /// The network's genesis (the timestamp walker opens its own chain on it).
    pub genesis: Genesis,
    /// Time between attack rounds (e.g. 200 ms).
    pub period: Duration,
}

/// A block an attacker gossiped: (hash, difficulty, encoded bytes).
pub type SentBlock = (Hash, u64, usize);

/// What an attacker did and saw, updated live.
#[derive(Debug, Default)]
pub struct AttackStats {
    /// Gossip messages published or raw requests sent.
    pub messages_sent: AtomicU64,
    /// Currently established connections (with any peer, targets or not).
    pub connections: AtomicU64,
    /// Connections ever established.
    pub connects: AtomicU64,
    /// Connections closed (by the honest side or otherwise).
    pub disconnects: AtomicU64,
    /// Dials refused: dials that failed, and outbound connections closed within
    /// [`REFUSED_WITHIN`] of being established (what a ban looks like from the dialing side).
    pub dial_failures: AtomicU64,
    /// Blocks it gossiped.
    pub blocks: parking_lot::Mutex<Vec<SentBlock>>,
}

impl AttackStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A running attacker. Dropping it stops its loop too (without waiting for it).
pub struct Attacker {
    /// Its peer id.
    pub peer_id: PeerId,
    /// What it does.
    pub kind: AttackKind,
    /// Live counters.
    pub stats: Arc<AttackStats>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Attacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attacker")
            .field("peer_id", &self.peer_id)
            .field("kind", &self.kind)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Attacker {
    /// Builds the swarm, listens, dials every target and spawns the attack loop on the current
    /// tokio runtime. Errors (as a String) if the swarm cannot be built or cannot listen (or a
    /// target has no `/p2p/` peer id, or there is no current runtime).
    pub fn spawn(config: AttackerConfig) -> Result<Attacker, String> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| format!("attacker outside a runtime: {e}"))?;
        let AttackerConfig { kind, keypair, links, targets, topics, reference, genesis, period } = config;
        let peer_id = keypair.public().to_peer_id();
        let targets = targets
            .into_iter()
            .map(|addr| match target_peer(&addr) {
                Some(peer) => Ok((peer, addr)),
                None => Err(format!("attack target {addr} has no /p2p/ peer id")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let listen = Multiaddr::empty().with(Protocol::Memory(links.local));
        let stats = Arc::new(AttackStats::default());
        let cancel = CancellationToken::new();
        let conns = Conns { targets, connected: BTreeSet::new(), opened: HashMap::new(), stats: stats.clone() };
        let rng = Rng::seeded(&peer_id.to_bytes());
        let period = period.max(MIN_PERIOD);
        let who = format!("{} attacker {peer_id}", kind.name());
        let task = if kind.full_stack() {
            let mut swarm = build_swarm(
                TransportKind::Memory,
                &keypair,
                Some(&links),
                &peer_manager::Config::default(),
                &topics,
                None,
            )
            .map_err(|e| format!("{who}: {e}"))?;
            for topic in [&topics.blocks, &topics.txs] {
                swarm.behaviour_mut().gossipsub.subscribe(topic).map_err(|e| format!("{who}: subscribe: {e}"))?;
            }
            swarm.listen_on(listen.clone()).map_err(|e| format!("{who}: listen on {listen}: {e}"))?;
            conns.redial(&mut swarm);
            let walk = if kind == AttackKind::TimestampWalk {
                let core = Node::open_core(&NodeConfig { genesis, ..NodeConfig::devnet() })
                    .map_err(|e| format!("{who}: its own chain: {e}"))?;
                Some(Walk { core: Arc::new(core), budget: 0.0, forked: false })
            } else {
                None
            };
            let served = Served::default();
            let stack = StackAttack { kind, swarm, conns, rng, topics, reference, walk, served };
            runtime.spawn(stack.run(period, cancel.clone()))
        } else {
            let mut swarm = raw_swarm(&keypair, &links).map_err(|e| format!("{who}: {e}"))?;
            swarm.listen_on(listen.clone()).map_err(|e| format!("{who}: listen on {listen}: {e}"))?;
            conns.redial(&mut swarm);
            let raw = RawAttack { kind, swarm, conns, rng };
            runtime.spawn(raw.run(period, cancel.clone()))
        };
        tracing::info!(attacker = %peer_id, kind = kind.name(), %listen, "attacker started");
        Ok(Attacker { peer_id, kind, stats, cancel, task: Some(task) })
    }

    /// Stops the loop and waits for it (the swarm is dropped, closing connections).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(attacker = %self.peer_id, error = %e, "attacker task failed");
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The peer id at the end of a target address.
fn target_peer(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The answer to an honest node's sync request (`None`: it did not decode): its own status echoed,
/// so that it never sees us ahead and never syncs from us; no blocks, ever.
fn answer(request: Option<&Request>) -> Response {
    if let Some(Request::Status(theirs)) = request { Response::Status(*theirs) } else { Response::Blocks(Vec::new()) }
}

// ----- connections --------------------------------------------------------------------------------

/// The attacker's connections: which targets are connected, dialing the others, counting.
struct Conns {
    /// Targets in the order given.
    targets: Vec<(PeerId, Multiaddr)>,
    /// Targets with at least one established connection (ordered, so rounds repeat).
    connected: BTreeSet<PeerId>,
    /// When each established connection (to anyone) was opened.
    opened: HashMap<ConnectionId, Instant>,
    stats: Arc<AttackStats>,
}

impl Conns {
    fn is_target(&self, peer: &PeerId) -> bool {
        self.targets.iter().any(|(p, _)| p == peer)
    }

    /// Dials every target that is neither connected nor being dialed.
    fn redial<B: NetworkBehaviour>(&self, swarm: &mut Swarm<B>) {
        for (peer, addr) in &self.targets {
            if self.connected.contains(peer) {
                continue;
            }
            let opts = DialOpts::peer_id(*peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            match swarm.dial(opts) {
                Ok(()) | Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "attacker dial refused");
                    AttackStats::add(&self.stats.dial_failures, 1);
                }
            }
        }
    }

    /// Follows connections and dial outcomes.
    fn on_event<E>(&mut self, ev: &SwarmEvent<E>) {
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, .. } => {
                AttackStats::add(&self.stats.connects, 1);
                AttackStats::add(&self.stats.connections, 1);
                self.opened.insert(*connection_id, Instant::now());
                if self.is_target(peer_id) {
                    self.connected.insert(*peer_id);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, endpoint, num_established, cause, .. } => {
                AttackStats::add(&self.stats.disconnects, 1);
                if let Some(opened) = self.opened.remove(connection_id) {
                    self.stats.connections.fetch_sub(1, Ordering::Relaxed);
                    if endpoint.is_dialer() && opened.elapsed() < REFUSED_WITHIN {
                        AttackStats::add(&self.stats.dial_failures, 1);
                    }
                }
                if *num_established == 0 {
                    self.connected.remove(peer_id);
                }
                tracing::debug!(peer = %peer_id, cause = ?cause, "attacker connection closed");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, %error, "attacker dial failed");
                AttackStats::add(&self.stats.dial_failures, 1);
            }
            _ => {}
        }
    }
}

fn intervals(period: Duration) -> (tokio::time::Interval, tokio::time::Interval) {
    let mut rounds = tokio::time::interval(period);
    rounds.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first dial happened at spawn.
    let mut redial = tokio::time::interval_at(Instant::now() + REDIAL_EVERY, REDIAL_EVERY);
    redial.set_missed_tick_behavior(MissedTickBehavior::Delay);
    (rounds, redial)
}

// ----- full-stack attackers: invalid blocks, silent -------------------------------------------------

struct StackAttack {
    kind: AttackKind,
    swarm: Swarm<Behaviour>,
    conns: Conns,
    rng: Rng,
    topics: Topics,
    reference: Arc<Core>,
    /// The timestamp walker's branch.
    walk: Option<Walk>,
    /// Blocks it serves by hash (the timestamp walker's own).
    served: Served,
}

/// Blocks an attacker serves by hash.
type Served = Arc<parking_lot::Mutex<HashMap<Hash, Block>>>;

/// The timestamp walker's state.
struct Walk {
    /// Its own chain: the honest chain up to the fork, then its branch.
    core: Arc<Core>,
    /// Hashes its modelled hash rate has accumulated and not yet spent.
    budget: f64,
    /// Whether the honest chain was copied up to the fork yet.
    forked: bool,
}

impl StackAttack {
    async fn run(mut self, period: Duration, cancel: CancellationToken) {
        let (mut rounds, mut redial) = intervals(period);
        // At most one block build in flight (on the blocking pool): a slow build skips rounds.
        let mut builds: JoinSet<Result<Option<Block>, String>> = JoinSet::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                ev = self.swarm.select_next_some() => self.on_event(ev),
                _ = rounds.tick() => {
                    if let Some(walk) = &mut self.walk {
                        walk.budget += WALK_SHARE * self.reference.chain().params().initial_difficulty as f64
                            * period.as_millis() as f64
                            / self.reference.chain().params().target_block_time_ms.max(1) as f64;
                    }
                    if self.kind.makes_blocks() && builds.is_empty() && !self.conns.connected.is_empty() {
                        self.spawn_build(&mut builds);
                    }
                }
                Some(built) = builds.join_next() => self.publish(built),
                _ = redial.tick() => self.conns.redial(&mut self.swarm),
            }
        }
        tracing::info!(attacker = %self.swarm.local_peer_id(), kind = self.kind.name(), "attacker stopped");
    }

    /// Starts building this round's block on the blocking pool.
    fn spawn_build(&mut self, builds: &mut JoinSet<Result<Option<Block>, String>>) {
        let core = self.reference.clone();
        let seed = self.rng.next_u64();
        match (self.kind, &mut self.walk) {
            (AttackKind::TimestampWalk, Some(walk)) => {
                let side = walk.core.clone();
                let fork = !walk.forked;
                walk.forked = true;
                let budget = walk.budget;
                builds.spawn_blocking(move || {
                    if fork {
                        copy_to_fork(&core, &side).map_err(|e| e.to_string())?;
                    }
                    walk_block(&side, budget, seed).map_err(|e| e.to_string())
                });
            }
            (AttackKind::CheapBlocks, _) => {
                let variant = self.conns.stats.messages_sent.load(Ordering::Relaxed);
                builds.spawn_blocking(move || cheap_block(&core, seed, variant).map(Some).map_err(|e| e.to_string()));
            }
            _ => {
                builds.spawn_blocking(move || invalid_block(&core, seed).map_err(|e| e.to_string()));
            }
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        self.conns.on_event(&ev);
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                message: request_response::Message::Request { request, channel, .. },
                ..
            })) => {
                let response = match request.as_ref().ok() {
                    Some(Request::BlocksByHash(hashes)) => {
                        let served = self.served.lock();
                        Response::Blocks(hashes.iter().filter_map(|h| served.get(h).cloned()).collect())
                    }
                    other => answer(other),
                };
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                ..
            })) if self.kind != AttackKind::Silent => {
                // Not the silent attacker: let gossipsub drop the message at once. The silent one
                // never reports, so nothing it receives is forwarded.
                let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    gossipsub::MessageAcceptance::Ignore,
                );
            }
            _ => {}
        }
    }

    fn publish(&mut self, built: Result<Result<Option<Block>, String>, tokio::task::JoinError>) {
        let me = *self.swarm.local_peer_id();
        let block = match built {
            Ok(Ok(Some(block))) => block,
            Ok(Ok(None)) => {
                tracing::debug!(attacker = %me, "no block this round (no nonce, or hash budget short)");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(attacker = %me, error = %e, "cannot build an invalid block");
                return;
            }
            Err(e) => {
                tracing::warn!(attacker = %me, error = %e, "invalid block build failed");
                return;
            }
        };
        if let Some(walk) = &mut self.walk {
            walk.budget -= block.header.difficulty as f64;
            self.served.lock().insert(block.hash(), block.clone());
        }
        let data = block.encode();
        self.conns.stats.blocks.lock().push((block.hash(), block.header.difficulty, data.len()));
        match self.swarm.behaviour_mut().gossipsub.publish(self.topics.blocks.clone(), data) {
            Ok(_) => AttackStats::add(&self.conns.stats.messages_sent, 1),
            Err(e) => tracing::debug!(attacker = %me, error = %e, "block not published"),
        }
    }
}

/// A block on `core`'s tip whose header (height, parent, difficulty, timestamp, PoW) is valid but
/// whose one transaction carries a broken signature under a matching transactions root; `None` if
/// no nonce in [`MAX_NONCE_TRIES`] meets the difficulty.
///
/// The template is built empty and the transaction added afterwards: a transfer from a fresh,
/// unfunded key would not execute, and the body is refused on its signature before any execution,
/// so the state root never matters.
fn invalid_block(core: &Core, seed: u64) -> Result<Option<Block>, StoreError> {
    let mut rng = Rng::seeded(&seed.to_le_bytes());
    let params = core.chain().params();
    let sender = wallet::Keypair::from_seed(&rng.bytes32());
    let mut tx =
        transfer(&sender, Address(rng.bytes32()), 1, params.min_fee.max(1), 0, params.chain_id, &params.genesis_hash);
    let bit = rng.below(64 * 8) as usize;
    if let Some(byte) = tx.signature.get_mut(bit / 8) {
        *byte ^= 1 << (bit % 8);
    }
    let template = template_from(core.chain(), Vec::new(), EVIL_MINER, |_| {})?;
    let transactions = vec![tx];
    let mut header = template.header;
    // Now rather than the minimum the rules allow, so that honest nodes' propagation delay
    // metrics are not skewed by these blocks.
    header.timestamp_ms = header.timestamp_ms.max(now_ms());
    header.tx_root = tx_root(&transactions);
    if !search(&mut header, rng.next_u64() >> 1, MAX_NONCE_TRIES) {
        return Ok(None);
    }
    Ok(Some(Block { header, transactions }))
}

/// A block claiming difficulty 1 (nonce from `seed`), by `variant` % 3: on `core`'s tip with an
/// empty body, on a parent nobody has, or on the tip with [`CHEAP_BODY_TXS`] unsigned transfers
/// (the header check comes first, so the body is never looked at).
fn cheap_block(core: &Core, seed: u64, variant: u64) -> Result<Block, StoreError> {
    let mut rng = Rng::seeded(&seed.to_le_bytes());
    let template = template_from(core.chain(), Vec::new(), EVIL_MINER, |_| {})?;
    let mut header = template.header;
    header.timestamp_ms = header.timestamp_ms.max(now_ms());
    header.difficulty = 1;
    header.nonce = rng.next_u64();
    let mut transactions = Vec::new();
    match variant % 3 {
        0 => {}
        1 => header.parent = Hash(rng.bytes32()),
        _ => {
            let params = core.chain().params();
            let tx = Transaction {
                chain_id: params.chain_id,
                from: Address(rng.bytes32()),
                nonce: 0,
                fee: params.min_fee.max(1),
                kind: TxKind::Transfer { to: Address(rng.bytes32()), amount: 1 },
                signature: [0; 64],
            };
            transactions = vec![tx; CHEAP_BODY_TXS];
        }
    }
    header.tx_root = tx_root(&transactions);
    Ok(Block { header, transactions })
}

/// Copies `reference`'s canonical chain up to [`WALK_FORK_DEPTH`] below its tip into `side`.
fn copy_to_fork(reference: &Core, side: &Core) -> Result<(), String> {
    let r = reference.chain().read().map_err(|e| e.to_string())?;
    let fork = reference.chain().tip().header.height.saturating_sub(WALK_FORK_DEPTH);
    for height in 1..=fork {
        let block = r
            .canonical_hash(height)
            .map_err(|e| e.to_string())?
            .and_then(|h| r.block(&h).transpose())
            .transpose()
            .map_err(|e| e.to_string())?
            .ok_or(format!("no block at height {height}"))?;
        side.import_block(&block, BlockSource::Miner).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The timestamp walker's next block on `side`'s tip at the difficulty the retarget requires, if
/// `budget` hashes cover it: stamped at the future limit when the branch's height is even, at the
/// median time past + 1 when odd; imported into `side`.
fn walk_block(side: &Core, budget: f64, seed: u64) -> Result<Option<Block>, String> {
    let template = template_from(side.chain(), Vec::new(), EVIL_MINER, |_| {}).map_err(|e| e.to_string())?;
    let mut header = template.header;
    if (header.difficulty as f64) > budget {
        return Ok(None);
    }
    if header.height % 2 == 0 {
        let latest = now_ms() + side.chain().params().max_future_drift_ms() - WALK_FUTURE_SLACK_MS;
        header.timestamp_ms = header.timestamp_ms.max(latest);
    }
    if !search(&mut header, seed >> 1, u64::MAX >> 1) {
        return Ok(None);
    }
    let block = Block { header, transactions: Vec::new() };
    side.import_block(&block, BlockSource::Miner).map_err(|e| e.to_string())?;
    Ok(Some(block))
}

// ----- sync-only attackers: junk frames, request flood ----------------------------------------------

/// A sync-only peer: raw `/vision/sync/1` frames out, the node's responses in.
#[derive(NetworkBehaviour)]
struct RawBehaviour {
    /// Tells the nodes our protocol version and listen address.
    identify: identify::Behaviour,
    /// Answers the nodes' pings.
    ping: ping::Behaviour,
    /// Caller-made frames, length prefix included.
    sync: request_response::Behaviour<RawCodec>,
}

fn raw_swarm(keypair: &identity::Keypair, links: &Links) -> Result<Swarm<RawBehaviour>, String> {
    let transport = build_transport(TransportKind::Memory, keypair, Some(links)).map_err(|e| e.to_string())?;
    let behaviour = RawBehaviour {
        identify: identify::Behaviour::new(
            identify::Config::new(PROTOCOL_VERSION.to_string(), keypair.public())
                .with_agent_version(format!("vision-sim-attacker/{}", env!("CARGO_PKG_VERSION"))),
        ),
        ping: ping::Behaviour::new(ping::Config::new()),
        sync: request_response::Behaviour::new(
            [(sync::PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(RAW_REQUEST_TIMEOUT),
        ),
    };
    Ok(Swarm::new(
        transport,
        behaviour,
        keypair.public().to_peer_id(),
        libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(RAW_IDLE_TIMEOUT),
    ))
}

struct RawAttack {
    kind: AttackKind,
    swarm: Swarm<RawBehaviour>,
    conns: Conns,
    rng: Rng,
}

impl RawAttack {
    async fn run(mut self, period: Duration, cancel: CancellationToken) {
        let (mut rounds, mut redial) = intervals(period);
        let flood = flood_frame();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                ev = self.swarm.select_next_some() => self.on_event(ev),
                _ = rounds.tick() => self.round(&flood),
                _ = redial.tick() => self.conns.redial(&mut self.swarm),
            }
        }
        tracing::info!(attacker = %self.swarm.local_peer_id(), kind = self.kind.name(), "attacker stopped");
    }

    /// One burst to every connected target.
    fn round(&mut self, flood: &[u8]) {
        let peers: Vec<PeerId> = self.conns.connected.iter().copied().collect();
        for peer in &peers {
            for _ in 0..BURST_FRAMES {
                let frame = match self.kind {
                    AttackKind::JunkFrames => junk_frame(&mut self.rng),
                    _ => flood.to_vec(),
                };
                self.swarm.behaviour_mut().sync.send_request(peer, frame);
            }
        }
        AttackStats::add(&self.conns.stats.messages_sent, (peers.len() * BURST_FRAMES) as u64);
    }

    fn on_event(&mut self, ev: SwarmEvent<RawBehaviourEvent>) {
        self.conns.on_event(&ev);
        if let SwarmEvent::Behaviour(RawBehaviourEvent::Sync(request_response::Event::Message {
            message: request_response::Message::Request { request, channel, .. },
            ..
        })) = ev
        {
            let response = answer(Request::decode(&request).ok().as_ref()).encode();
            let _ = self.swarm.behaviour_mut().sync.send_response(channel, response);
        }
    }
}

/// `u32 LE length ‖ payload`, the frame of `protocols/sync.md` section 2.
fn framed(payload: &[u8]) -> Vec<u8> {
    [&(payload.len() as u32).to_le_bytes()[..], payload].concat()
}

/// The flood request: the most blocks one request may ask for, from genesis.
fn flood_frame() -> Vec<u8> {
    framed(&Request::BlocksByRange { start: 0, count: MAX_BLOCKS_PER_REQUEST }.encode())
}

/// A well-framed request of 1 ..= [`MAX_REQUEST_BYTES`] random payload bytes that is no request:
/// request tags have the high bit clear (`protocols/sync.md` section 3), so the first byte has it
/// set.
fn junk_frame(rng: &mut Rng) -> Vec<u8> {
    let len = 1 + rng.below(MAX_REQUEST_BYTES as u64) as usize;
    let mut payload = vec![0u8; len];
    rng.fill(&mut payload);
    if let Some(tag) = payload.first_mut() {
        *tag |= 0x80;
    }
    framed(&payload)
}

// ----- randomness -----------------------------------------------------------------------------------

/// xorshift64*: small, fast, deterministic; not for anything but simulations.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    /// Seeded from `bytes` (FNV-1a), never zero.
    fn seeded(bytes: &[u8]) -> Rng {
        let fnv =
            bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
        Rng(fnv | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.fill(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision_node::chain::ImportError;
    use vision_node::chain::consensus::{BlockError, check_header_stateless, meets_difficulty};
    use vision_node::errors::PeerAction;
    use vision_node::p2p::sync::read_frame;
    use vision_node::testkit::genesis_with_accounts;

    #[test]
    fn junk_frames_are_framed_capped_and_never_requests() {
        let mut rng = Rng::seeded(b"junk");
        let mut longest = 0;
        for _ in 0..500 {
            let frame = junk_frame(&mut rng);
            let mut prefix = [0u8; 4];
            prefix.copy_from_slice(&frame[..4]);
            let len = u32::from_le_bytes(prefix) as usize;
            assert_eq!(len, frame.len() - 4);
            assert!((1..=MAX_REQUEST_BYTES).contains(&len), "{len}");
            longest = longest.max(len);
            // The node's own reader takes it whole, and its decoder refuses it.
            let mut io = futures::io::Cursor::new(frame.clone());
            let payload = futures::executor::block_on(read_frame(&mut io, MAX_REQUEST_BYTES)).unwrap();
            assert_eq!(payload, frame[4..]);
            assert!(Request::decode(&payload).is_err());
        }
        assert!(longest > MAX_REQUEST_BYTES / 2, "lengths spread over the cap: {longest}");
    }

    #[test]
    fn the_flood_frame_is_a_valid_maximal_range_request() {
        let frame = flood_frame();
        let mut io = futures::io::Cursor::new(frame);
        let payload = futures::executor::block_on(read_frame(&mut io, MAX_REQUEST_BYTES)).unwrap();
        assert_eq!(Request::decode(&payload).unwrap(), Request::BlocksByRange { start: 0, count: 64 });
    }

    #[test]
    fn the_rng_repeats_per_seed() {
        let a = identity::Keypair::ed25519_from_bytes([1; 32]).unwrap().public().to_peer_id();
        let b = identity::Keypair::ed25519_from_bytes([2; 32]).unwrap().public().to_peer_id();
        let draw = |p: &PeerId| {
            let mut r = Rng::seeded(&p.to_bytes());
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(&a), draw(&a));
        assert_ne!(draw(&a), draw(&b));
        let mut r = Rng::seeded(&[]);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }

    #[test]
    fn answers_echo_status_and_serve_nothing() {
        let status = sync::Status {
            genesis: vision_node::chain::Hash([1; 32]),
            tip: vision_node::chain::Hash([2; 32]),
            height: 9,
            total_work: 10,
        };
        assert_eq!(answer(Some(&Request::Status(status))), Response::Status(status));
        assert_eq!(answer(Some(&Request::BlocksByRange { start: 0, count: 2 })), Response::Blocks(vec![]));
        assert_eq!(answer(None), Response::Blocks(vec![]));
    }

    #[test]
    fn targets_need_a_peer_id() {
        let peer = identity::Keypair::ed25519_from_bytes([3; 32]).unwrap().public().to_peer_id();
        let addr: Multiaddr = format!("/memory/42/p2p/{peer}").parse().unwrap();
        assert_eq!(target_peer(&addr), Some(peer));
        assert_eq!(target_peer(&"/memory/42".parse().unwrap()), None);
    }

    #[test]
    fn cheap_blocks_fail_in_context_and_walk_blocks_are_valid_side_blocks() {
        let (mut genesis, _) = genesis_with_accounts(1, 1_000);
        genesis.initial_difficulty = 64;
        let config = NodeConfig { genesis, ..NodeConfig::devnet() };
        let core = Node::open_core(&config).unwrap();
        for _ in 0..4 {
            let b = vision_node::testkit::next_block(core.chain(), Vec::new(), Address([1; 32])).unwrap();
            core.import_block(&b, BlockSource::Miner).unwrap();
        }
        let tip = core.chain().tip();
        for variant in 0..3 {
            let b = cheap_block(&core, variant, variant).unwrap();
            assert_eq!(b.header.difficulty, 1);
            assert_eq!(b.header.parent == tip.hash, variant != 1, "variant {variant}");
            assert!(core.import_block(&b, BlockSource::Network).is_err(), "variant {variant}");
        }
        assert!(cheap_block(&core, 2, 2).unwrap().encoded_len() > 300_000, "the large body");
        assert_eq!(core.chain().tip(), tip);

        let side = Node::open_core(&config).unwrap();
        copy_to_fork(&core, &side).unwrap();
        assert_eq!(side.chain().tip().header.height, tip.header.height - WALK_FORK_DEPTH);
        assert!(walk_block(&side, 10.0, 7).unwrap().is_none(), "a budget short of the difficulty makes no block");
        let b = walk_block(&side, 1e9, 7).unwrap().unwrap();
        assert_eq!(side.chain().tip().hash, b.hash());
        assert_eq!(b.header.height % 2, 1, "odd height: stamped at the median time past + 1");
        let next = walk_block(&side, 1e9, 8).unwrap().unwrap();
        assert!(next.header.timestamp_ms + 1_000 >= now_ms(), "even height: stamped at the future limit");
        // Both are valid blocks for the honest node (the branch may even win: stamps 1 ms apart
        // raise its difficulty above the honest one).
        core.import_block(&b, BlockSource::Network).unwrap();
        core.import_block(&next, BlockSource::Network).unwrap();
        assert!(core.chain().read().unwrap().block_meta(&next.hash()).unwrap().is_some());
    }

    #[test]
    fn invalid_blocks_pass_the_header_checks_and_fail_on_the_signature() {
        let (genesis, _) = genesis_with_accounts(1, 1_000);
        let core = Node::open_core(&NodeConfig { genesis, ..NodeConfig::devnet() }).unwrap();
        let tip = core.chain().tip();
        let a = invalid_block(&core, 1).unwrap().unwrap();
        let b = invalid_block(&core, 2).unwrap().unwrap();
        assert_ne!(a.encode(), b.encode(), "every round gossips another message");
        for block in [&a, &b] {
            assert_eq!(block.header.parent, tip.hash);
            assert_eq!(block.header.height, tip.header.height + 1);
            assert!(meets_difficulty(&block.hash(), block.header.difficulty));
            assert_eq!(block.header.tx_root, tx_root(&block.transactions));
            check_header_stateless(core.chain().params(), &block.header, now_ms()).unwrap();
            match core.import_block(block, BlockSource::Network) {
                Err(e @ ImportError::Block(BlockError::InvalidSignature(_))) => {
                    assert_eq!(e.peer_action(), Some(PeerAction::Fatal))
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(core.chain().tip(), tip);
    }
}
