//! Misbehaving peers against a real `vision-node` process.
//!
//! The node under test (`a`) runs with `--mine false` on a difficulty-1 test genesis, so its chain
//! only moves when the test feeds it blocks. Around it:
//!
//! - an honest real node (`b`, the same binary, bootstrapped to `a`), which must stay connected to
//!   `a` and keep following its chain;
//! - an honest in-process peer (`h`, the node's own libp2p stack from
//!   [`vision_node::p2p::behaviour::build_swarm`]) that feeds valid blocks to `a` over gossip and
//!   times `BlocksByRange` requests to `a` while the attacks run (each answered within an honest peer's patience, `HONEST_LATENCY`);
//! - one in-process evil peer per scenario, each with a fresh identity:
//!   (a) gossips a block whose header and PoW are fine but whose transaction signature is broken
//!   (with a matching transactions root) → `Fatal`;
//!   (b) gossips a block whose hash misses its header's difficulty → `Fatal`;
//!   (c) sends sync frames with a correct length prefix and garbage payloads → `LowTolerance` each;
//!   (d) sends sync frames whose length prefix is above `MAX_REQUEST_BYTES` → `LowTolerance` each;
//!   (e) floods valid `BlocksByRange { start: 0, count: 64 }` requests → rate limited, `MidTolerance`
//!   each.
//!   (f) 80 junk frames of the maximum request size at once, while `h`'s requests are timed;
//!   (g) a genuine block's header over an altered body (same block hash): the sender is charged and
//!   the genuine block, published afterwards by `h`, is still accepted and relayed;
//!   (h) a transaction with a broken signature costs its sender score, one below the fee minimum
//!   does not;
//!   (i) a block 5 s beyond the future limit (three target block times, at least 1 s) is ignored
//!   without penalty, and accepted (through sync from `b`) once it is within the limit.
//!   (j) 1,000 inbound connections from one address: `a` keeps its outbound peer and its API.
//!
//!   The sync attackers speak `/vision/sync/1` through their own behaviour with [`RawCodec`], which
//!   writes caller-made bytes, length prefix included. They send in bursts (reconnecting if dropped)
//!   until banned; one burst is enough, since faults in quick succession must reach the ban threshold
//!   rather than stop at the disconnect threshold.
//!
//! The in-process peers refuse connections to `b`, so everything `b` sees came through `a`: in
//! particular `a` relays the block of (a) after its header and PoW checks, and `b` must then charge
//! the invalid body to the block's signed author (the attacker), never to `a` for relaying it.
//!
//! Every attacker must end up in `GET /admin/bans` (with the expected reason in `a`'s log) and out of
//! `GET /v1/peers`, while `b` and `h` stay connected and served and a block fed afterwards still
//! reaches `b`. Finally the bans survive a restart (persisted in redb; a banned peer that dials again
//! is turned away) and expire on time (`--ban-duration-secs`), after which the same peer id connects
//! again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, identity, ping, request_response};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use vision_node::chain::consensus::meets_difficulty;
use vision_node::chain::types::{Address, Block, tx_root};
use vision_node::node::{BlockSource, Core, Node, NodeConfig};
use vision_node::p2p::behaviour::{self, BehaviourEvent, build_swarm, build_transport};
use vision_node::p2p::gossip::{Topics, encode_tx_batch};
use vision_node::p2p::sync::{self, MAX_REQUEST_BYTES, RawCodec, Request, Response};
use vision_node::p2p::{BanInfo, PeerInfo, TransportKind, peer_manager};
use vision_node::testkit::{TEST_CHAIN_ID, genesis_with_accounts, next_block, transfer};
use vision_node::wallet::Keypair;

use crate::common::{NodeProcess, http_get, samples, sum, wait_for};

/// Longest acceptable answer time of an honest sync request while attacks run: the patience of an
/// honest syncing peer, which rotates a node out when a request goes unanswered this long
/// (`sync_client::HEADER_TIMEOUT`, 10 s). A bound of the protocol, not of this machine: it used to be
/// 2 s, which a request missed on a loaded machine while the node served everybody (seen while
/// other suites loaded both cores). The slowest answer is printed for the record.
const HONEST_LATENCY: Duration = vision_node::p2p::service::sync_client::HEADER_TIMEOUT;
/// Longest acceptable answer time of the API under a connection flood: the container health
/// check's timeout (`HEALTHCHECK --timeout=5s` in the Dockerfile), past which the node is
/// reported unhealthy.
const API_LATENCY: Duration = Duration::from_secs(5);
/// Time one attack scenario may take before the test gives up.
const ATTACK_TIMEOUT: Duration = Duration::from_secs(60);
/// Ban length of the restart-and-expiry test.
const SHORT_BAN_SECS: u64 = 8;

// ----- the setting: genesis, nodes, a local chain to build blocks on ---------------------------------

/// What every test shares: a temp dir with the genesis file, the runtime of the in-process peers and
/// a local copy of the chain fed to the node under test.
pub(crate) struct Setting {
    dir: tempfile::TempDir,
    genesis_file: String,
    keys: Vec<Keypair>,
    topics: Topics,
    /// In-memory chain mirroring what was fed to `a`; blocks are built on its tip.
    pub(crate) local: Core,
    rt: Runtime,
}

impl Setting {
    pub(crate) fn new() -> Setting {
        Self::with_difficulty(1)
    }

    /// A setting whose genesis starts at `difficulty` (1: every nonce meets it).
    pub(crate) fn with_difficulty(difficulty: u64) -> Setting {
        Self::with_genesis(|g| g.initial_difficulty = difficulty)
    }

    /// A setting whose test genesis (difficulty 1, 1 s target) is changed by `edit` first.
    pub(crate) fn with_genesis(edit: impl FnOnce(&mut vision_node::chain::genesis::Genesis)) -> Setting {
        let dir = tempfile::tempdir().unwrap();
        let (mut genesis, keys) = genesis_with_accounts(2, 1_000_000_000);
        edit(&mut genesis);
        let genesis_file = dir.path().join("genesis.toml");
        genesis.save(&genesis_file).unwrap();
        let local = Node::open_core(&NodeConfig { genesis: genesis.clone(), ..NodeConfig::devnet() }).unwrap();
        let topics = Topics::new(&local.chain().params().genesis_hash);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        Setting { genesis_file: genesis_file.to_str().unwrap().to_string(), dir, keys, topics, local, rt }
    }

    /// The genesis hash of the setting's network (what its transactions are signed for).
    pub(crate) fn genesis_hash(&self) -> vision_node::chain::types::Hash {
        self.local.chain().params().genesis_hash
    }

    /// A fresh in-memory chain on the setting's genesis (e.g. an attacker's own copy of the chain).
    pub(crate) fn open_core(&self) -> Core {
        let genesis = vision_node::chain::genesis::Genesis::load(std::path::Path::new(&self.genesis_file)).unwrap();
        Node::open_core(&NodeConfig { genesis, ..NodeConfig::devnet() }).unwrap()
    }

    /// Starts a non-mining node in `name` with `extra` flags.
    pub(crate) fn node(&self, name: &str, extra: &[&str]) -> NodeProcess {
        let mut args = vec!["--genesis", &self.genesis_file, "--mine", "false"];
        args.extend_from_slice(extra);
        NodeProcess::start_networked(&self.dir.path().join(name), &args)
    }

    /// A peer on the node's own stack with a fresh identity, dialing `a` and refusing to connect to
    /// `avoid` (so that whatever reaches those nodes came through `a`).
    pub(crate) fn stack_peer(&self, a: &NodeProcess, avoid: &[&NodeProcess]) -> StackPeer {
        let avoid: Vec<PeerId> = avoid.iter().map(|n| n.peer_id().parse().unwrap()).collect();
        let peer = StackPeer::spawn(&self.rt, &self.topics, &avoid);
        peer.dial(multiaddr(a));
        peer
    }

    /// Like [`Setting::stack_peer`], for a peer that forwards every gossip message unchecked (a
    /// careless relay) and does not dial yet.
    pub(crate) fn relay_peer(&self, avoid: &[&NodeProcess]) -> StackPeer {
        let avoid: Vec<PeerId> = avoid.iter().map(|n| n.peer_id().parse().unwrap()).collect();
        StackPeer::spawn_with(&self.rt, &self.topics, &avoid, true)
    }

    /// A peer on the node's stack that dials nobody yet and refuses `avoid`.
    pub(crate) fn idle_peer(&self, avoid: &[PeerId]) -> StackPeer {
        StackPeer::spawn(&self.rt, &self.topics, avoid)
    }

    /// A raw sync peer with a fresh identity (it connects on its first burst).
    fn raw_peer(&self) -> RawPeer {
        RawPeer::spawn(&self.rt)
    }

    /// The runtime of the in-process peers.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Builds the next valid block, gossips it to `a` through `h` and waits until every node in
    /// `followers` has it.
    pub(crate) fn feed_block(&self, h: &StackPeer, followers: &[&NodeProcess]) -> Block {
        let block = next_block(self.local.chain(), vec![], Address([0xb0; 32])).unwrap();
        self.local.import_block(&block, BlockSource::Miner).unwrap();
        let data = block.encode();
        wait_for("the honest peer to publish a block", Duration::from_secs(15), || h.publish(data.clone()).ok());
        for n in followers {
            n.wait_height(block.header.height, Duration::from_secs(20));
            assert_eq!(n.status().tip_hash, block.hash());
        }
        block
    }

    /// A block on the fed tip with a valid header and PoW (difficulty 1: every nonce meets it) whose
    /// one transaction carries a broken signature under a matching transactions root.
    fn invalid_body_block(&self, variant: u64) -> Vec<u8> {
        let tx = transfer(&self.keys[0], Address([9; 32]), 5, 1, 0, TEST_CHAIN_ID, &self.genesis_hash());
        let mut block = next_block(self.local.chain(), vec![tx], Address([0xee; 32])).unwrap();
        block.transactions[0].signature[0] ^= 0xff;
        block.header.tx_root = tx_root(&block.transactions);
        block.header.nonce = variant;
        assert!(meets_difficulty(&block.hash(), block.header.difficulty));
        block.encode()
    }

    /// A block on the fed tip that claims difficulty 2^40 but whose hash misses it.
    fn bad_pow_block(&self, variant: u64) -> Vec<u8> {
        let mut block = next_block(self.local.chain(), vec![], Address([0xee; 32])).unwrap();
        block.header.difficulty = 1 << 40;
        block.header.nonce = variant << 20;
        while meets_difficulty(&block.hash(), block.header.difficulty) {
            block.header.nonce += 1;
        }
        block.encode()
    }
}

pub(crate) fn multiaddr(node: &NodeProcess) -> Multiaddr {
    node.multiaddr().parse().unwrap()
}

pub(crate) fn peers(node: &NodeProcess) -> Vec<PeerInfo> {
    node.client().get("/v1/peers").unwrap()
}

pub(crate) fn bans(node: &NodeProcess) -> Vec<BanInfo> {
    node.admin_client().get("/admin/bans").unwrap()
}

pub(crate) fn listed(node: &NodeProcess, peer: &PeerId) -> bool {
    peers(node).iter().any(|p| p.peer_id == peer.to_string())
}

pub(crate) fn banned(node: &NodeProcess, peer: &PeerId) -> Option<BanInfo> {
    bans(node).into_iter().find(|b| b.peer_id == peer.to_string())
}

pub(crate) fn now_ms() -> u64 {
    vision_node::chain::consensus::now_ms()
}

/// Runs `attack` (one round of misbehaviour) again and again until `node` bans `evil`, giving the
/// node up to `settle` after each round to react. Returns the rounds it took.
pub(crate) fn attack_until_banned(
    node: &NodeProcess,
    evil: &PeerId,
    what: &str,
    settle: Duration,
    attack: impl FnMut(u64),
) -> u64 {
    attack_until(&format!("{what}: peer {evil} banned"), settle, || banned(node, evil).is_some(), attack)
}

/// Runs `attack` again and again until `done` holds, checking it for up to `settle` after each
/// round; panics after [`ATTACK_TIMEOUT`]. Returns the rounds it took.
pub(crate) fn attack_until(what: &str, settle: Duration, done: impl Fn() -> bool, mut attack: impl FnMut(u64)) -> u64 {
    let deadline = Instant::now() + ATTACK_TIMEOUT;
    for round in 0.. {
        assert!(Instant::now() < deadline, "{what}: not reached after {round} rounds in {ATTACK_TIMEOUT:?}");
        attack(round);
        let settled = Instant::now() + settle;
        while Instant::now() < settled {
            if done() {
                return round + 1;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    unreachable!()
}

/// The reason `node` logged when it banned `peer`.
pub(crate) fn ban_reason(node: &NodeProcess, peer: &PeerId) -> Option<String> {
    let id = peer.to_string();
    let logs = node.logs.lock().unwrap();
    logs.iter()
        .find(|v| v["fields"]["message"] == "peer banned" && v["fields"]["peer"] == id.as_str())
        .and_then(|v| v["fields"]["reason"].as_str().map(str::to_string))
}

/// After a ban: the peer is in the ban list for one of `reasons`, gone from `/v1/peers`, and its side
/// saw the connection close.
fn assert_banned_and_dropped(node: &NodeProcess, evil: &PeerId, link: &Link, what: &str, reasons: &[&str]) {
    let ban = banned(node, evil).unwrap_or_else(|| panic!("{what}: {evil} not in /admin/bans"));
    assert!(ban.until_unix_ms > now_ms(), "{what}: ban already over: {ban:?}");
    let reason = wait_for(&format!("{what}: the ban in the log"), Duration::from_secs(5), || ban_reason(node, evil));
    assert!(reasons.contains(&reason.as_str()), "{what}: banned for {reason}, expected one of {reasons:?}");
    wait_for(&format!("{what}: {evil} out of /v1/peers"), Duration::from_secs(5), || {
        (!listed(node, evil)).then_some(())
    });
    wait_for(&format!("{what}: the node to close the connection"), Duration::from_secs(10), || {
        (!link.connected.load(Ordering::SeqCst)).then_some(())
    });
}

/// The honest side is unharmed: `a` is alive, `b` and `h` are still connected to it with a score
/// above the disconnect threshold, `h`'s sync request is answered quickly, and neither is banned.
pub(crate) fn assert_honest_service(a: &NodeProcess, b: &NodeProcess, h: &StackPeer) {
    assert!(a.status().peers >= 2);
    let list = peers(a);
    for (who, id) in [("b", b.peer_id()), ("h", h.id.to_string())] {
        let p = list.iter().find(|p| p.peer_id == id).unwrap_or_else(|| panic!("{who} dropped by a: {list:?}"));
        assert!(p.score > peer_manager::DEFAULT_DISCONNECT_THRESHOLD, "{who}: {p:?}");
    }
    assert!(listed(b, &a.peer_id().parse().unwrap()), "b still connected to a");
    let latency = h.time_range_request(a);
    assert!(latency < HONEST_LATENCY, "honest request took {latency:?}");
    let ban_list = bans(a);
    assert!(ban_list.iter().all(|x| x.peer_id != h.id.to_string() && x.peer_id != b.peer_id()), "{ban_list:?}");
}

// ----- in-process peers ----------------------------------------------------------------------------

/// What an in-process peer saw of its connection to the node.
#[derive(Debug, Default)]
pub(crate) struct Link {
    pub(crate) connected: AtomicBool,
    pub(crate) established: AtomicU64,
    closed: AtomicU64,
    pub(crate) dial_failures: AtomicU64,
    /// Responses received to raw requests.
    responses: AtomicU64,
    /// Raw requests that failed (stream reset, connection closed, timeout).
    failures: AtomicU64,
}

impl Link {
    fn on_event<E>(&self, ev: &SwarmEvent<E>) {
        match ev {
            SwarmEvent::ConnectionEstablished { .. } => {
                self.established.fetch_add(1, Ordering::SeqCst);
                self.connected.store(true, Ordering::SeqCst);
            }
            SwarmEvent::ConnectionClosed { num_established: 0, .. } => {
                self.closed.fetch_add(1, Ordering::SeqCst);
                self.connected.store(false, Ordering::SeqCst);
            }
            SwarmEvent::OutgoingConnectionError { .. } => {
                self.dial_failures.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}

/// Blocks an in-process peer serves when asked by hash.
pub(crate) type Served = Arc<std::sync::Mutex<std::collections::HashMap<vision_node::chain::types::Hash, Block>>>;

/// The answer an in-process peer gives to the node's sync requests: its status echoed (so the node
/// never tries to sync from us), the blocks of `served` asked by hash, nothing else.
fn answer(request: &Request, served: &Served) -> Response {
    match request {
        Request::Status(status) => Response::Status(*status),
        Request::BlocksByHash(hashes) => {
            let served = served.lock().unwrap();
            Response::Blocks(hashes.iter().filter_map(|h| served.get(h).cloned()).collect())
        }
        _ => Response::Blocks(Vec::new()),
    }
}

enum StackCommand {
    Dial(Multiaddr),
    Listen(oneshot::Sender<Multiaddr>),
    Publish { txs_topic: bool, data: Vec<u8>, reply: oneshot::Sender<Result<(), String>> },
    Request { peer: PeerId, request: Request, reply: oneshot::Sender<Result<Response, String>> },
}

/// A peer running the node's exact stack (gossipsub, sync, identify, ping, kad, limits) in this
/// process, subscribed to both topics.
pub(crate) struct StackPeer {
    pub(crate) id: PeerId,
    commands: mpsc::Sender<StackCommand>,
    pub(crate) link: Arc<Link>,
    /// Blocks it serves by hash.
    pub(crate) served: Served,
}

impl StackPeer {
    pub(crate) fn spawn(rt: &Runtime, topics: &Topics, avoid: &[PeerId]) -> StackPeer {
        Self::spawn_with(rt, topics, avoid, false)
    }

    /// [`StackPeer::spawn`]; a `relay` accepts (and so forwards, with its author's signature) every
    /// gossip message it receives without looking at it.
    pub(crate) fn spawn_with(rt: &Runtime, topics: &Topics, avoid: &[PeerId], relay: bool) -> StackPeer {
        let keypair = identity::Keypair::generate_ed25519();
        let _enter = rt.enter();
        let mut swarm =
            build_swarm(TransportKind::Tcp, &keypair, None, &peer_manager::Config::default(), topics, None).unwrap();
        // Kademlia would find the other nodes through `a` and gossip would then reach them directly.
        for p in avoid {
            swarm.behaviour_mut().blocked.block_peer(*p);
        }
        for t in [&topics.blocks, &topics.txs] {
            swarm.behaviour_mut().gossipsub.subscribe(t).unwrap();
        }
        let (tx, rx) = mpsc::channel(64);
        let link = Arc::new(Link::default());
        let served = Served::default();
        rt.spawn(run_stack_peer(swarm, rx, link.clone(), topics.clone(), served.clone(), relay));
        StackPeer { id: keypair.public().to_peer_id(), commands: tx, link, served }
    }

    pub(crate) fn dial(&self, addr: Multiaddr) {
        self.commands.blocking_send(StackCommand::Dial(addr)).unwrap();
    }

    /// Listens on a loopback port; returns the address with the peer id.
    pub(crate) fn listen(&self) -> Multiaddr {
        let (reply, rx) = oneshot::channel();
        self.commands.blocking_send(StackCommand::Listen(reply)).unwrap();
        rx.blocking_recv().unwrap().with(libp2p::multiaddr::Protocol::P2p(self.id))
    }

    /// Publishes on the blocks topic; an error until the node's subscription is known.
    pub(crate) fn publish(&self, data: Vec<u8>) -> Result<(), String> {
        self.publish_on(false, data)
    }

    /// Publishes on the blocks or the transactions topic.
    pub(crate) fn publish_on(&self, txs_topic: bool, data: Vec<u8>) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.commands.blocking_send(StackCommand::Publish { txs_topic, data, reply }).unwrap();
        rx.blocking_recv().unwrap()
    }

    fn request(&self, peer: PeerId, request: Request) -> Result<Response, String> {
        let (reply, rx) = oneshot::channel();
        self.commands.blocking_send(StackCommand::Request { peer, request, reply }).unwrap();
        rx.blocking_recv().unwrap()
    }

    /// Asks `node` for its first blocks; returns how long the answer took (panics on failure).
    fn time_range_request(&self, node: &NodeProcess) -> Duration {
        let start = Instant::now();
        let res = self.request(node.peer_id().parse().unwrap(), Request::BlocksByRange { start: 0, count: 2 });
        let took = start.elapsed();
        match res {
            Ok(Response::Blocks(blocks)) => assert!(!blocks.is_empty() && blocks[0].header.height == 0, "{blocks:?}"),
            other => panic!("honest range request: {other:?}"),
        }
        took
    }
}

async fn run_stack_peer(
    mut swarm: Swarm<behaviour::Behaviour>,
    mut commands: mpsc::Receiver<StackCommand>,
    link: Arc<Link>,
    topics: Topics,
    served: Served,
    relay: bool,
) {
    let mut pending = std::collections::HashMap::new();
    let mut listening: Option<oneshot::Sender<Multiaddr>> = None;
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                None => break,
                Some(StackCommand::Dial(addr)) => {
                    if swarm.dial(addr).is_err() {
                        link.dial_failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Some(StackCommand::Listen(reply)) => {
                    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
                    listening = Some(reply);
                }
                Some(StackCommand::Publish { txs_topic, data, reply }) => {
                    let topic = if txs_topic { topics.txs.clone() } else { topics.blocks.clone() };
                    let res = swarm.behaviour_mut().gossipsub.publish(topic, data);
                    let _ = reply.send(res.map(|_| ()).map_err(|e| e.to_string()));
                }
                Some(StackCommand::Request { peer, request, reply }) => {
                    let id = swarm.behaviour_mut().sync.send_request(&peer, Ok(request));
                    pending.insert(id, reply);
                }
            },
            ev = swarm.select_next_some() => {
                link.on_event(&ev);
                if let SwarmEvent::NewListenAddr { address, .. } = &ev
                    && let Some(reply) = listening.take()
                {
                    let _ = reply.send(address.clone());
                }
                use request_response::{Event, Message};
                if let SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(libp2p::gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    ..
                })) = &ev
                {
                    let acceptance = if relay {
                        libp2p::gossipsub::MessageAcceptance::Accept
                    } else {
                        libp2p::gossipsub::MessageAcceptance::Ignore
                    };
                    let _ = swarm.behaviour_mut().gossipsub.report_message_validation_result(
                        message_id,
                        propagation_source,
                        acceptance,
                    );
                }
                if let SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) = ev {
                    match ev {
                        Event::Message { message: Message::Request { request, channel, .. }, .. } => {
                            let response = request.as_ref().map(|r| answer(r, &served)).unwrap_or(Response::Blocks(Vec::new()));
                            let _ = swarm.behaviour_mut().sync.send_response(channel, response);
                        }
                        Event::Message { message: Message::Response { request_id, response }, .. } => {
                            if let Some(reply) = pending.remove(&request_id) {
                                let _ = reply.send(Ok(response));
                            }
                        }
                        Event::OutboundFailure { request_id, error, .. } => {
                            if let Some(reply) = pending.remove(&request_id) {
                                let _ = reply.send(Err(error.to_string()));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// A sync-only peer that writes raw bytes on `/vision/sync/1`.
#[derive(NetworkBehaviour)]
struct RawBehaviour {
    /// Looks like a node to the node's identify.
    identify: identify::Behaviour,
    /// Answers the node's pings.
    ping: ping::Behaviour,
    /// Raw frames out, the node's responses in.
    sync: request_response::Behaviour<RawCodec>,
}

enum RawCommand {
    Dial(Multiaddr),
    Send { peer: PeerId, frames: Vec<Vec<u8>> },
}

pub(crate) struct RawPeer {
    id: PeerId,
    commands: mpsc::Sender<RawCommand>,
    pub(crate) link: Arc<Link>,
}

impl RawPeer {
    fn spawn(rt: &Runtime) -> RawPeer {
        let keypair = identity::Keypair::generate_ed25519();
        let transport = {
            let _enter = rt.enter();
            build_transport(TransportKind::Tcp, &keypair, None).unwrap()
        };
        Self::spawn_over(rt, keypair, transport)
    }

    /// A raw peer whose connections go over `transport` (for example TCP from a chosen source
    /// address: `inbound_limits.rs`).
    pub(crate) fn spawn_over(
        rt: &Runtime,
        keypair: identity::Keypair,
        transport: libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    ) -> RawPeer {
        Self::spawn_announcing(rt, keypair, transport, &[])
    }

    /// [`RawPeer::spawn_over`], announcing `addrs` as its own in identify (`eclipse.rs`: sybils
    /// that tell the node where to dial them).
    pub(crate) fn spawn_announcing(
        rt: &Runtime,
        keypair: identity::Keypair,
        transport: libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
        announce: &[Multiaddr],
    ) -> RawPeer {
        let _enter = rt.enter();
        let id = keypair.public().to_peer_id();
        let behaviour = RawBehaviour {
            identify: identify::Behaviour::new(
                identify::Config::new(behaviour::PROTOCOL_VERSION.to_string(), keypair.public())
                    .with_agent_version("misbehaving-test/0".to_string()),
            ),
            ping: ping::Behaviour::new(ping::Config::new()),
            sync: request_response::Behaviour::new(
                [(sync::PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            ),
        };
        let swarm = Swarm::new(
            transport,
            behaviour,
            id,
            libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(Duration::from_secs(60)),
        );
        let mut swarm = swarm;
        for a in announce {
            swarm.add_external_address(a.clone());
        }
        let (tx, rx) = mpsc::channel(64);
        let link = Arc::new(Link::default());
        rt.spawn(run_raw_peer(swarm, rx, link.clone()));
        RawPeer { id, commands: tx, link }
    }

    pub(crate) fn dial(&self, addr: Multiaddr) {
        self.commands.blocking_send(RawCommand::Dial(addr)).unwrap();
    }

    /// Sends every frame as its own request, all at once.
    fn send(&self, peer: PeerId, frames: Vec<Vec<u8>>) {
        self.commands.blocking_send(RawCommand::Send { peer, frames }).unwrap();
    }

    /// One attack round: (re)connects if the node dropped us, then sends `frames` in one burst.
    fn burst(&self, node: &NodeProcess, addr: &Multiaddr, frames: Vec<Vec<u8>>) {
        if !self.link.connected.load(Ordering::SeqCst) {
            let closed = self.link.closed.load(Ordering::SeqCst);
            let failed = self.link.dial_failures.load(Ordering::SeqCst);
            self.dial(addr.clone());
            wait_for("a connection (or a refusal)", Duration::from_secs(10), || {
                (self.link.connected.load(Ordering::SeqCst)
                    || self.link.closed.load(Ordering::SeqCst) > closed
                    || self.link.dial_failures.load(Ordering::SeqCst) > failed)
                    .then_some(())
            });
        }
        self.send(node.peer_id().parse().unwrap(), frames);
    }
}

async fn run_raw_peer(mut swarm: Swarm<RawBehaviour>, mut commands: mpsc::Receiver<RawCommand>, link: Arc<Link>) {
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                None => break,
                Some(RawCommand::Dial(addr)) => {
                    if swarm.dial(addr).is_err() {
                        link.dial_failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Some(RawCommand::Send { peer, frames }) => {
                    for f in frames {
                        swarm.behaviour_mut().sync.send_request(&peer, f);
                    }
                }
            },
            ev = swarm.select_next_some() => {
                link.on_event(&ev);
                use request_response::{Event, Message};
                if let SwarmEvent::Behaviour(RawBehaviourEvent::Sync(ev)) = ev {
                    match ev {
                        Event::Message { message: Message::Request { request, channel, .. }, .. } => {
                            // The node's status request: answered properly, this peer is only
                            // rude when it asks.
                            let response = match Request::decode(&request) {
                                Ok(req) => answer(&req, &Served::default()).encode(),
                                Err(_) => Vec::new(),
                            };
                            let _ = swarm.behaviour_mut().sync.send_response(channel, response);
                        }
                        Event::Message { message: Message::Response { .. }, .. } => {
                            link.responses.fetch_add(1, Ordering::SeqCst);
                        }
                        Event::OutboundFailure { .. } => {
                            link.failures.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// `u32 LE length ‖ payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// A correctly framed payload that is no request: an unknown tag, then pseudo-random bytes.
fn garbage_frame(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut payload = vec![0xee];
    payload.extend((0..63).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    frame(&payload)
}

/// A length prefix far above `MAX_REQUEST_BYTES`, followed by more bytes than the cap.
fn oversized_frame() -> Vec<u8> {
    let mut f = (16 * MAX_REQUEST_BYTES as u32).to_le_bytes().to_vec();
    f.extend(vec![0x5a; 2 * MAX_REQUEST_BYTES]);
    f
}

// ----- the tests -----------------------------------------------------------------------------------

pub(crate) fn start(setting: &Setting, a_flags: &[&str]) -> (NodeProcess, NodeProcess, StackPeer) {
    let a = setting.node("a", a_flags);
    let b = setting.node("b", &["--bootstrap", &a.multiaddr()]);
    let h = setting.stack_peer(&a, &[&b]);
    let (b_id, h_id) = (b.peer_id().parse().unwrap(), h.id);
    wait_for("b and h connected to a", Duration::from_secs(20), || {
        (listed(&a, &b_id) && listed(&a, &h_id)).then_some(())
    });
    // The feeding path works before any attack.
    setting.feed_block(&h, &[&a, &b]);
    (a, b, h)
}

#[test]
fn gossiping_an_invalid_block_or_a_bad_pow_gets_the_sender_banned() {
    let s = Setting::new();
    let (a, b, h) = start(&s, &[]);
    let t0 = Instant::now();

    // (a) Valid header and PoW, broken transaction signature.
    let evil = s.stack_peer(&a, &[&b]);
    let rounds = attack_until_banned(&a, &evil.id, "invalid block", Duration::from_millis(500), |round| {
        let _ = evil.publish(s.invalid_body_block(round));
    });
    assert_banned_and_dropped(&a, &evil.id, &evil.link, "invalid block", &["invalid_block_body"]);
    eprintln!("invalid block: banned after {rounds} publish attempts, {:?}", t0.elapsed());
    assert_honest_service(&a, &b, &h);

    // (b) A hash that misses the header's difficulty.
    let t1 = Instant::now();
    let evil2 = s.stack_peer(&a, &[&b]);
    let rounds = attack_until_banned(&a, &evil2.id, "bad PoW", Duration::from_millis(500), |round| {
        let _ = evil2.publish(s.bad_pow_block(round));
    });
    assert_banned_and_dropped(&a, &evil2.id, &evil2.link, "bad PoW", &["invalid_block_header"]);
    eprintln!("bad PoW: banned after {rounds} publish attempts, {:?}", t1.elapsed());

    // Honest service goes on: b and h are connected and served, the next block reaches b.
    assert_honest_service(&a, &b, &h);
    let next = s.feed_block(&h, &[&a, &b]);
    assert_eq!(next.header.height, 2);
    let ban_list = bans(&a);
    assert_eq!(ban_list.len(), 2, "{ban_list:?}");
    // b saw the invalid block only through a's relay: it may ban its author, never a or h.
    let b_bans = bans(&b);
    assert!(
        b_bans.iter().all(|x| x.peer_id == evil.id.to_string()),
        "b banned someone other than the author of the invalid block: {b_bans:?}"
    );
    let a_id: PeerId = a.peer_id().parse().unwrap();
    assert!(listed(&b, &a_id), "b keeps a");
    eprintln!("gossip attacks done in {:?}", t0.elapsed());
}

#[test]
fn garbage_oversized_and_flooding_sync_peers_are_banned() {
    let s = Setting::new();
    let (a, b, h) = start(&s, &[]);
    let a_id: PeerId = a.peer_id().parse().unwrap();
    let addr = multiaddr(&a);
    let mut worst = Duration::ZERO;
    let honest_probe = |worst: &mut Duration| {
        let took = h.time_range_request(&a);
        *worst = (*worst).max(took);
        assert!(took < HONEST_LATENCY, "honest request took {took:?} during an attack");
    };

    // (c) Correct length prefix, garbage payload.
    let t0 = Instant::now();
    let evil = s.raw_peer();
    let rounds = attack_until_banned(&a, &evil.id, "garbage frames", Duration::from_millis(500), |round| {
        evil.burst(&a, &addr, (0..8).map(|i| garbage_frame(round * 8 + i)).collect());
        honest_probe(&mut worst);
    });
    assert_banned_and_dropped(&a, &evil.id, &evil.link, "garbage frames", &["bad_sync_request"]);
    eprintln!("garbage frames: banned after {rounds} bursts of 8, {:?}", t0.elapsed());

    // (d) A length prefix above the request cap.
    let t1 = Instant::now();
    let evil = s.raw_peer();
    let rounds = attack_until_banned(&a, &evil.id, "oversized frames", Duration::from_millis(500), |_| {
        evil.burst(&a, &addr, vec![oversized_frame(); 8]);
        honest_probe(&mut worst);
    });
    assert_banned_and_dropped(&a, &evil.id, &evil.link, "oversized frames", &["bad_sync_request"]);
    eprintln!("oversized frames: banned after {rounds} bursts of 8, {:?}", t1.elapsed());

    // (e) Valid requests as fast as possible.
    let t2 = Instant::now();
    let evil = s.raw_peer();
    let flood = frame(&Request::BlocksByRange { start: 0, count: 64 }.encode());
    // Each request over the rate limit costs `MidTolerance` (-5). How many are judged before the
    // disconnect at -20 takes effect depends on how fast they arrive: usually enough in one burst
    // for a ban (-50); on a loaded machine sometimes not, and then the flooder is cut off all the
    // same, its every reconnect refused while its score stays at or below the disconnect threshold
    // (`PeerManager::on_connected`), which the test once took for "never banned" (2 of 10 loaded
    // runs). Either is the defence; the test accepts both and says which it saw.
    let rate_charges = || {
        metric(&a, r#"vision_p2p_peer_actions_total{action="mid_tolerance",reason="blocks_rate_limit"}"#)
            + metric(&a, r#"vision_p2p_peer_actions_total{action="mid_tolerance",reason="sync_rate_limit"}"#)
    };
    let charges_before = rate_charges();
    let refused_per_threshold = (-peer_manager::DEFAULT_DISCONNECT_THRESHOLD / 5.0).ceil();
    let cut_off = || {
        banned(&a, &evil.id).is_some()
            || (rate_charges() - charges_before >= refused_per_threshold
                && !listed(&a, &evil.id)
                && evil.link.closed.load(Ordering::SeqCst) >= 2)
    };
    let rounds = attack_until("request flood: the flooder cut off", Duration::from_millis(300), cut_off, |_| {
        evil.burst(&a, &addr, vec![flood.clone(); 64]);
        honest_probe(&mut worst);
    });
    let flood_banned = banned(&a, &evil.id).is_some();
    if flood_banned {
        assert_banned_and_dropped(&a, &evil.id, &evil.link, "request flood", &["blocks_rate_limit", "sync_rate_limit"]);
    } else {
        // Cut off by score: one more reconnect is refused too.
        let closed = evil.link.closed.load(Ordering::SeqCst);
        evil.burst(&a, &addr, vec![flood.clone(); 1]);
        wait_for("the flooder's reconnect refused", Duration::from_secs(10), || {
            (evil.link.closed.load(Ordering::SeqCst) > closed && !listed(&a, &evil.id)).then_some(())
        });
    }
    eprintln!(
        "request flood: {} after {rounds} bursts of 64 ({} answered, {} refused or cut), {:?}",
        if flood_banned { "banned" } else { "disconnected, reconnects refused (score at or below -20)" },
        evil.link.responses.load(Ordering::SeqCst),
        evil.link.failures.load(Ordering::SeqCst),
        t2.elapsed()
    );
    eprintln!("slowest honest request during the attacks: {worst:?}");

    assert!(listed(&b, &a_id));
    assert_honest_service(&a, &b, &h);
    s.feed_block(&h, &[&a, &b]);
    assert_eq!(bans(&a).len(), 2 + usize::from(flood_banned), "{:?}", bans(&a));
    assert!(bans(&b).is_empty());
    eprintln!("sync attacks done in {:?}", t0.elapsed());
}

#[test]
fn bans_survive_a_restart_and_expire_on_time() {
    let s = Setting::new();
    let ban_secs = SHORT_BAN_SECS.to_string();
    let flags = ["--ban-duration-secs", ban_secs.as_str()];
    let a = s.node("a", &flags);
    let evil = s.stack_peer(&a, &[]);
    let before = now_ms();
    attack_until_banned(&a, &evil.id, "bad PoW", Duration::from_millis(500), |round| {
        let _ = evil.publish(s.bad_pow_block(round));
    });
    let after = now_ms();
    assert_banned_and_dropped(&a, &evil.id, &evil.link, "bad PoW", &["invalid_block_header"]);
    let ban = banned(&a, &evil.id).unwrap();
    let ban_ms = SHORT_BAN_SECS * 1000;
    assert!(
        (before + ban_ms..=after + ban_ms).contains(&ban.until_unix_ms),
        "ban until {} not {ban_ms} ms after the attack ({before}..{after})",
        ban.until_unix_ms
    );

    // Restart on the same data dir: the ban is still there.
    let data_dir = a.data_dir.clone();
    assert!(a.terminate());
    let a = s.node("a", &flags);
    assert_eq!(a.data_dir, data_dir);
    assert!(now_ms() < ban.until_unix_ms, "restart took longer than the ban; raise SHORT_BAN_SECS");
    assert_eq!(bans(&a), vec![ban.clone()], "bans after the restart");

    // The banned id dials again and is turned away.
    let established = evil.link.established.load(Ordering::SeqCst);
    let closed = evil.link.closed.load(Ordering::SeqCst);
    let failed = evil.link.dial_failures.load(Ordering::SeqCst);
    evil.dial(multiaddr(&a));
    wait_for("the banned peer's dial to be refused", Duration::from_secs(10), || {
        let link = &evil.link;
        let refused = link.dial_failures.load(Ordering::SeqCst) > failed
            || (link.established.load(Ordering::SeqCst) > established
                && link.closed.load(Ordering::SeqCst) > closed
                && !link.connected.load(Ordering::SeqCst));
        refused.then_some(())
    });
    assert!(!listed(&a, &evil.id), "a banned peer shows up in /v1/peers");

    // Expiry: gone from the ban list at `until`, not before, and the same id connects again.
    let gone_at = wait_for(
        "the ban to expire",
        Duration::from_millis(ban.until_unix_ms.saturating_sub(now_ms()) + 5_000),
        || bans(&a).is_empty().then(now_ms),
    );
    assert!(gone_at >= ban.until_unix_ms, "ban lifted early: at {gone_at}, until {}", ban.until_unix_ms);
    assert!(gone_at < ban.until_unix_ms + 2_000, "ban lifted late: at {gone_at}, until {}", ban.until_unix_ms);
    let addr = multiaddr(&a);
    wait_for("the formerly banned peer to connect again", Duration::from_secs(15), || {
        if listed(&a, &evil.id) {
            return Some(());
        }
        if !evil.link.connected.load(Ordering::SeqCst) {
            evil.dial(addr.clone());
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    });
    let entry = peers(&a).into_iter().find(|p| p.peer_id == evil.id.to_string()).unwrap();
    assert!(entry.score >= 0.0, "served its sentence: {entry:?}");
}

/// The score `node` gives `peer`, if connected.
pub(crate) fn score(node: &NodeProcess, peer: &PeerId) -> Option<f64> {
    peers(node).into_iter().find(|p| p.peer_id == peer.to_string()).map(|p| p.score)
}

/// The sum of `node`'s `/metrics` samples whose series starts with `series`.
pub(crate) fn metric(node: &NodeProcess, series: &str) -> f64 {
    sum(&samples(&http_get(&node.metrics, "/metrics")), series)
}

/// Transactions from gossip that `node` refused.
const NETWORK_TXS_REFUSED: &str = r#"vision_transactions_submitted_total{source="network",result="rejected"}"#;
/// Gossiped blocks `node` reported `Ignore` for.
pub(crate) const BLOCKS_IGNORED: &str = r#"vision_p2p_gossip_messages_total{topic="blocks",result="ignore"}"#;

#[test]
fn a_mutated_body_does_not_poison_the_genuine_block_and_bad_transactions_cost_only_when_invalid() {
    let s = Setting::new();
    let (a, b, h) = start(&s, &[]);

    // A genuine next block with one transfer, and the same header over an altered body (the
    // transfer dropped): the header and its PoW are valid, the transactions root is not.
    let tx = transfer(&s.keys[0], Address([7; 32]), 5, 1, 0, TEST_CHAIN_ID, &s.genesis_hash());
    let genuine = next_block(s.local.chain(), vec![tx], Address([0xb1; 32])).unwrap();
    let mut mutated = genuine.clone();
    mutated.transactions.clear();
    assert_eq!(mutated.hash(), genuine.hash(), "same header, so the same block hash");
    let evil = s.stack_peer(&a, &[&b]);
    wait_for("the evil peer to publish the mutated block", Duration::from_secs(15), || {
        evil.publish(mutated.encode()).ok()
    });
    wait_for("the mutated block's sender penalised", Duration::from_secs(10), || {
        (banned(&a, &evil.id).is_some() || score(&a, &evil.id).is_some_and(|x| x < 0.0)).then_some(())
    });
    assert_eq!(a.status().height, 1, "the mutated block was not imported");
    // The genuine block, same hash, from an honest peer: accepted by a and relayed to b.
    s.local.import_block(&genuine, BlockSource::Miner).unwrap();
    wait_for("h to publish the genuine block", Duration::from_secs(15), || h.publish(genuine.encode()).ok());
    for n in [&a, &b] {
        n.wait_height(2, Duration::from_secs(20));
        assert_eq!(n.status().tip_hash, genuine.hash(), "the genuine block is the tip");
    }
    assert!(score(&a, &h.id).is_some_and(|x| x >= 0.0), "h is not charged for the mutation");

    // Transactions from two fresh peers: one with a broken signature, one merely below the fee
    // minimum. Only the first costs its sender.
    let bad_sig = {
        let mut t = transfer(&s.keys[1], Address([8; 32]), 5, 1, 0, TEST_CHAIN_ID, &s.genesis_hash());
        t.signature[0] ^= 0xff;
        t
    };
    let low_fee = transfer(&s.keys[1], Address([8; 32]), 5, 0, 0, TEST_CHAIN_ID, &s.genesis_hash());
    let refused_before = metric(&a, NETWORK_TXS_REFUSED);
    let liar = s.stack_peer(&a, &[&b]);
    let cheap = s.stack_peer(&a, &[&b]);
    for (peer, tx) in [(&liar, bad_sig), (&cheap, low_fee)] {
        wait_for("a transaction batch published", Duration::from_secs(15), || {
            peer.publish_on(true, encode_tx_batch(&[tx])).ok()
        });
    }
    wait_for("the invalid transaction's sender penalised", Duration::from_secs(10), || {
        score(&a, &liar.id).filter(|x| *x < 0.0)
    });
    // Both transactions judged (a fixed wait would let a slow node pass without judging the cheap one).
    wait_for("both gossiped transactions refused", Duration::from_secs(10), || {
        (metric(&a, NETWORK_TXS_REFUSED) >= refused_before + 2.0).then_some(())
    });
    assert_eq!(score(&a, &cheap.id), Some(0.0), "a low fee is no offence");
    assert!(banned(&a, &cheap.id).is_none());
    assert_eq!(a.status().mempool_size, 0, "neither transaction entered the pool");
}

#[test]
fn a_block_from_the_future_is_ignored_without_penalty_and_accepted_once_its_time_comes() {
    let s = Setting::new();
    let (a, b, h) = start(&s, &[]);
    // 20 s ahead of the clock: 5 s beyond what the rules allow.
    let mut block = next_block(s.local.chain(), vec![], Address([0xf0; 32])).unwrap();
    // The future limit is three target block times, at least 1 s (protocols/consensus.md): the
    // block is stamped 5 s beyond it.
    let limit = s.local.chain().params().max_future_drift_ms();
    block.header.timestamp_ms = now_ms() + limit + 5_000;
    assert!(meets_difficulty(&block.hash(), block.header.difficulty));
    let ignored_before = metric(&a, BLOCKS_IGNORED);
    let early = s.stack_peer(&a, &[&b]);
    wait_for("the early block published", Duration::from_secs(15), || early.publish(block.encode()).ok());
    // Judged (Ignore), however long that takes on a loaded machine, before its fate is checked.
    wait_for("the early block ignored", Duration::from_secs(10), || {
        (metric(&a, BLOCKS_IGNORED) > ignored_before).then_some(())
    });
    assert_eq!(a.status().height, 1, "not imported while too far ahead");
    assert_eq!(score(&a, &early.id), Some(0.0), "a clock ahead is no offence");
    assert!(bans(&a).is_empty());

    // Once it is within the limit (by 1 s), the same block reaches b from another peer, and a,
    // whose gossip has already seen it, gets it from b through sync.
    let ready_at = block.header.timestamp_ms - limit + 1_000;
    std::thread::sleep(Duration::from_millis(ready_at.saturating_sub(now_ms())));
    s.local.import_block(&block, BlockSource::Miner).unwrap();
    let late = s.stack_peer(&b, &[&a]);
    wait_for("the block published to b", Duration::from_secs(15), || late.publish(block.encode()).ok());
    for n in [&b, &a] {
        wait_for("the block accepted once its time came", Duration::from_secs(20), || {
            (n.status().tip_hash == block.hash()).then_some(())
        });
    }
    assert!(bans(&a).is_empty() && bans(&b).is_empty());
    // The chain goes on on top of it.
    s.feed_block(&h, &[&a, &b]);
}

#[test]
fn eighty_maximum_size_junk_frames_while_an_honest_peer_is_served() {
    let s = Setting::new();
    let (a, _b, h) = start(&s, &[]);
    let addr = multiaddr(&a);
    let evil = s.raw_peer();
    let junk = {
        let mut payload = vec![0xee; MAX_REQUEST_BYTES];
        for (i, x) in payload.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(31) | 0x80;
        }
        frame(&payload)
    };
    let mut sent = 0;
    let mut worst = Duration::ZERO;
    attack_until_banned(&a, &evil.id, "maximum-size junk", Duration::from_millis(500), |_| {
        evil.burst(&a, &addr, vec![junk.clone(); 80]);
        sent += 80;
        let took = h.time_range_request(&a);
        worst = worst.max(took);
        assert!(took < HONEST_LATENCY, "honest request took {took:?} during the junk");
    });
    assert_banned_and_dropped(&a, &evil.id, &evil.link, "maximum-size junk", &["bad_sync_request"]);
    eprintln!("{sent} junk frames of {MAX_REQUEST_BYTES} bytes; slowest honest request {worst:?}");
    s.feed_block(&h, &[&a]);
}

#[test]
fn a_thousand_inbound_connections_from_one_address_leave_outbound_peers_served() {
    const FLOOD: usize = 1_000;
    let s = Setting::new();
    // b first, then a dialing it: b is a's outbound peer. A stack peer feeds blocks to b only, so
    // whatever reaches a arrives over that outbound connection.
    let b = s.node("b", &[]);
    let a = s.node("a", &["--bootstrap", &b.multiaddr()]);
    let (a_id, b_id): (PeerId, PeerId) = (a.peer_id().parse().unwrap(), b.peer_id().parse().unwrap());
    wait_for("a connected to b", Duration::from_secs(20), || listed(&a, &b_id).then_some(()));
    let feeder = s.stack_peer(&b, &[&a]);
    s.feed_block(&feeder, &[&b, &a]);

    // 1,000 peers from 127.0.0.1, each its own identity, all dialing a at once.
    let addr = multiaddr(&a);
    let flood: Vec<RawPeer> = (0..FLOOD).map(|_| s.raw_peer()).collect();
    for p in &flood {
        p.dial(addr.clone());
    }
    let settled =
        |p: &RawPeer| p.link.established.load(Ordering::SeqCst) > 0 || p.link.dial_failures.load(Ordering::SeqCst) > 0;
    wait_for("every flood dial to connect or be refused", Duration::from_secs(120), || {
        flood.iter().all(settled).then_some(())
    });
    let connected = flood.iter().filter(|p| p.link.connected.load(Ordering::SeqCst)).count();

    // a stays within its limits, keeps b as an outbound peer, answers its API, and still gets
    // blocks from b.
    let start = Instant::now();
    let status = a.status();
    let api_latency = start.elapsed();
    assert!(api_latency < API_LATENCY, "API took {api_latency:?} under the flood");
    assert!(status.peers <= peer_manager::DEFAULT_MAX_PEERS, "{} peers", status.peers);
    let b_entry = peers(&a).into_iter().find(|p| p.peer_id == b_id.to_string());
    assert_eq!(b_entry.map(|p| p.direction), Some("outbound".to_string()), "a keeps b as outbound peer");
    let fed = s.feed_block(&feeder, &[&b, &a]);
    assert_eq!(a.status().tip_hash, fed.hash());
    assert!(listed(&b, &a_id), "b keeps a");
    eprintln!(
        "{FLOOD} inbound dials: {connected} still connected, a holds {} peers, API answered in {api_latency:?}",
        status.peers
    );
}
