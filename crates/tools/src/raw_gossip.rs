//! Raw gossipsub: N bare libp2p swarms that run only gossipsub, as the baseline the node's block
//! propagation is measured against (`vision-node bench propagation`, `vision-sim` with
//! `raw_baseline`; results in `docs/performance.md` "Propagation").
//!
//! Each raw node is built from the node's own pieces, so the only difference from a real node is
//! what happens between receiving a block and forwarding it:
//! - transport: [`vision_p2p::behaviour::build_transport`] (TCP + noise + yamux, or the memory
//!   transport, optionally shaped by emulated [`Links`]);
//! - gossipsub: [`gossip::config`] (mesh degrees, heartbeat, message size cap, content ids,
//!   validation mode), [`gossipsub::MessageAuthenticity::Signed`], the node's peer-score parameters
//!   and thresholds, and the node's blocks topic name;
//! - no identify, ping, Kademlia, sync protocol, peer manager, decoding, verification or import.
//!
//! The node's gossip config holds every message until the application reports a verdict
//! (`validate_messages`); a raw node reports `Accept` the moment gossipsub hands it a message, so
//! gossipsub forwards it at once. That is the raw limit of the topology: a message cannot spread
//! faster through these links with this gossipsub configuration. The node's delay above it is what
//! the node does on the path: its checks before relaying (decode, header, PoW; `p2p::service`
//! relays before the import), the import at the receiving end (signatures, state, commit), and the
//! rest of its stack (identify, ping, Kademlia, sync, peer manager) sharing the same tasks.
//!
//! Arrival at a node is when its task receives gossipsub's `Message` event (first copy), measured
//! from just before the publish command is sent. One task per swarm, all on the caller's tokio
//! runtime, so the raw nodes share the machine the same way in-process nodes do.
//!
//! Caps: at most [`MAX_NODES`] nodes and [`MAX_EDGES`] edges; each task takes commands through a
//! channel of [`COMMAND_CAP`]; only one message is in flight at a time (concurrent
//! [`RawNet::propagate`] calls queue), and the arrival record holds that one message's id and one
//! slot per node; payloads above gossipsub's [`gossip::MAX_MESSAGE_BYTES`] are refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identity};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::BenchError;
use vision_p2p::TransportKind;
use vision_p2p::behaviour::{IDLE_CONNECTION_TIMEOUT, build_transport};
use vision_p2p::gossip::{self, Topics};
use vision_p2p::link::Links;

/// Most raw nodes in one network.
pub const MAX_NODES: usize = 1_000;
/// Most edges in one network.
pub const MAX_EDGES: usize = 100_000;
/// Commands queued for one raw node's task (publish, dial, state); callers wait when it is full.
pub const COMMAND_CAP: usize = 16;
/// How often [`RawNet::start`] asks the nodes for their listen addresses and mesh sizes.
pub const READY_POLL: Duration = Duration::from_millis(50);
/// How long [`RawNet::shutdown`] waits for the tasks to stop before aborting them.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The network to build.
#[derive(Debug, Clone)]
pub struct RawNetConfig {
    /// TCP or memory.
    pub transport: TransportKind,
    /// Emulated links (memory transport only). `local` is ignored: each node's own port is the one
    /// in its listen address, which must then be a fixed `/memory/N` (not 0).
    pub links: Option<Links>,
    /// One listen address per node (`/ip4/127.0.0.1/tcp/0`, `/memory/N`; port 0 picks one).
    pub listen: Vec<Multiaddr>,
    /// Undirected edges between node indexes; the lower index dials the higher.
    pub edges: Vec<(usize, usize)>,
}

/// Gossipsub's own counters summed over the raw nodes, on the blocks topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipCounts {
    /// Messages received, duplicates included.
    pub received: u64,
    /// First copies received.
    pub first_copies: u64,
}

impl GossipCounts {
    /// Duplicates received per first copy (`None` before any message).
    pub fn duplicates_per_first_copy(&self) -> Option<f64> {
        (self.first_copies > 0)
            .then(|| self.received.saturating_sub(self.first_copies) as f64 / self.first_copies as f64)
    }
}

/// A running raw gossipsub network.
pub struct RawNet {
    nodes: Vec<RawNode>,
    topic: IdentTopic,
    shared: Arc<Shared>,
    /// One message in flight at a time.
    publishing: tokio::sync::Mutex<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    cancel: CancellationToken,
    _stop_on_drop: DropGuard,
}

struct RawNode {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    /// Gossipsub's metrics of this node (message counts with and without duplicates).
    registry: Registry,
}

enum Command {
    Publish { data: Vec<u8>, reply: oneshot::Sender<Result<MessageId, String>> },
    Dial { addr: Multiaddr, reply: oneshot::Sender<Result<(), String>> },
    State { reply: oneshot::Sender<NodeState> },
}

#[derive(Debug, Clone, Default)]
struct NodeState {
    listen: Vec<Multiaddr>,
    connected: usize,
    mesh: usize,
}

/// The message in flight and who has it.
struct Inflight {
    id: MessageId,
    start: Instant,
    arrivals: Vec<Option<Duration>>,
    missing: usize,
}

struct Shared {
    inflight: Mutex<Option<Inflight>>,
    /// Woken when the in-flight message has reached every node.
    all_arrived: Notify,
}

impl Shared {
    fn arrived(&self, node: usize, id: &MessageId, at: Instant) {
        let mut guard = self.inflight.lock();
        let Some(f) = guard.as_mut().filter(|f| f.id == *id) else { return };
        if let Some(slot) = f.arrivals.get_mut(node)
            && slot.is_none()
        {
            *slot = Some(at.saturating_duration_since(f.start));
            f.missing -= 1;
            if f.missing == 0 {
                self.all_arrived.notify_one();
            }
        }
    }
}

fn setup(msg: impl Into<String>) -> BenchError {
    BenchError::Setup(msg.into())
}

fn memory_port(addr: &Multiaddr) -> Option<u64> {
    addr.iter().find_map(|p| match p {
        Protocol::Memory(port) => Some(port),
        _ => None,
    })
}

/// Checks the config; returns each node's distinct neighbour count.
fn check(cfg: &RawNetConfig) -> Result<Vec<usize>, BenchError> {
    let n = cfg.listen.len();
    if !(2..=MAX_NODES).contains(&n) {
        return Err(BenchError::Usage(format!("a raw gossipsub network needs 2 to {MAX_NODES} nodes, got {n}")));
    }
    if cfg.edges.len() > MAX_EDGES {
        return Err(BenchError::Usage(format!("{} edges is more than {MAX_EDGES}", cfg.edges.len())));
    }
    if cfg.links.is_some() && cfg.transport != TransportKind::Memory {
        return Err(BenchError::Usage("emulated links need the memory transport".into()));
    }
    for (i, addr) in cfg.listen.iter().enumerate() {
        let port = memory_port(addr);
        match cfg.transport {
            TransportKind::Memory if port.is_none() => {
                return Err(BenchError::Usage(format!("node {i}: {addr} is not a /memory address")));
            }
            TransportKind::Memory if cfg.links.is_some() && port == Some(0) => {
                return Err(BenchError::Usage(format!(
                    "node {i}: emulated links need a fixed memory port, not {addr}"
                )));
            }
            TransportKind::Tcp if port.is_some() => {
                return Err(BenchError::Usage(format!("node {i}: {addr} is a memory address on TCP")));
            }
            _ => {}
        }
    }
    let mut set = BTreeSet::new();
    for &(a, b) in &cfg.edges {
        if a >= n || b >= n || a == b {
            return Err(BenchError::Usage(format!("edge ({a}, {b}) is not between two of the {n} nodes")));
        }
        set.insert((a.min(b), a.max(b)));
    }
    let mut degree = vec![0; n];
    for (a, b) in set {
        degree[a] += 1;
        degree[b] += 1;
    }
    Ok(degree)
}

/// A swarm running only gossipsub as the node configures it, subscribed to `topic`, with its
/// gossipsub metrics registered in `registry`.
fn build_swarm(
    transport: TransportKind,
    keypair: &identity::Keypair,
    links: Option<&Links>,
    topic: &IdentTopic,
    topics: &Topics,
    registry: &mut Registry,
) -> Result<Swarm<gossipsub::Behaviour>, BenchError> {
    let transport = build_transport(transport, keypair, links).map_err(|e| setup(format!("transport: {e}")))?;
    let config = gossip::config().map_err(|e| setup(format!("gossipsub config: {e}")))?;
    let mut behaviour = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(keypair.clone()), config)
        .map_err(|e| setup(format!("gossipsub: {e}")))?
        .with_metrics(registry, gossipsub::MetricsConfig::default());
    behaviour
        .with_peer_score(gossip::score_params(topics), gossip::score_thresholds())
        .map_err(|e| setup(format!("gossipsub peer score: {e}")))?;
    behaviour.subscribe(topic).map_err(|e| setup(format!("subscribe: {e}")))?;
    Ok(Swarm::new(
        transport,
        behaviour,
        keypair.public().to_peer_id(),
        libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT),
    ))
}

/// Topics whose blocks topic is `blocks` (the score parameters are keyed by topic hash; the
/// transaction topic is unused here).
fn topics_for(blocks: &IdentTopic) -> Topics {
    Topics { blocks: blocks.clone(), txs: IdentTopic::new(format!("{blocks}/unused-txs")) }
}

impl RawNet {
    /// Starts every swarm on the current tokio runtime, dials the edges, waits (up to
    /// `ready_timeout`) until every node has at least min(its degree, mesh_n_low) mesh peers on the
    /// topic. The topic is the devnet's blocks topic; see [`RawNet::start_on`] for another.
    pub async fn start(cfg: RawNetConfig, ready_timeout: Duration) -> Result<RawNet, BenchError> {
        let genesis = vision_node::chain::genesis::Genesis::devnet().block().hash();
        RawNet::start_on(cfg, Topics::new(&genesis).blocks, ready_timeout).await
    }

    /// [`RawNet::start`] on the given topic (e.g. a simulation's own genesis's blocks topic).
    pub async fn start_on(cfg: RawNetConfig, topic: IdentTopic, ready_timeout: Duration) -> Result<RawNet, BenchError> {
        let degree = check(&cfg)?;
        let n = cfg.listen.len();
        let deadline = tokio::time::Instant::now() + ready_timeout;
        let topics = topics_for(&topic);
        let shared = Arc::new(Shared { inflight: Mutex::new(None), all_arrived: Notify::new() });
        let cancel = CancellationToken::new();
        let mut net = RawNet {
            nodes: Vec::with_capacity(n),
            topic: topic.clone(),
            shared: shared.clone(),
            publishing: tokio::sync::Mutex::new(()),
            tasks: Vec::with_capacity(n),
            cancel: cancel.clone(),
            _stop_on_drop: cancel.clone().drop_guard(),
        };
        for (i, addr) in cfg.listen.iter().enumerate() {
            let keypair = identity::Keypair::generate_ed25519();
            let links = cfg
                .links
                .as_ref()
                .map(|l| Links { model: l.model.clone(), local: memory_port(addr).unwrap_or_default() });
            let mut registry = Registry::default();
            let mut swarm = build_swarm(cfg.transport, &keypair, links.as_ref(), &topic, &topics, &mut registry)?;
            swarm.listen_on(addr.clone()).map_err(|e| setup(format!("node {i}: listen on {addr}: {e}")))?;
            let (tx, rx) = mpsc::channel(COMMAND_CAP);
            let task = NodeTask { index: i, swarm, commands: rx, shared: shared.clone(), topic: topic.clone() };
            net.tasks.push(tokio::spawn(task.run(cancel.clone())));
            net.nodes.push(RawNode { peer_id: keypair.public().to_peer_id(), commands: tx, registry });
        }
        let result = net.connect(&cfg.edges, &degree, deadline, ready_timeout).await;
        match result {
            Ok(()) => Ok(net),
            Err(e) => {
                net.shutdown().await;
                Err(e)
            }
        }
    }

    async fn connect(
        &self,
        edges: &[(usize, usize)],
        degree: &[usize],
        deadline: tokio::time::Instant,
        ready_timeout: Duration,
    ) -> Result<(), BenchError> {
        // Every node's actual listen address (port 0 becomes a real port).
        let addrs = loop {
            let states = self.states().await?;
            if states.iter().all(|s| !s.listen.is_empty()) {
                break states.into_iter().map(|s| s.listen[0].clone()).collect::<Vec<_>>();
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(setup(format!("raw nodes not listening within {ready_timeout:?}")));
            }
            tokio::time::sleep(READY_POLL).await;
        };
        let dials: BTreeSet<(usize, usize)> = edges.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
        for (a, b) in dials {
            let addr = addrs[b].clone().with(Protocol::P2p(self.nodes[b].peer_id));
            let (reply, rx) = oneshot::channel();
            self.send(a, Command::Dial { addr: addr.clone(), reply }).await?;
            rx.await
                .map_err(|_| setup(format!("raw node {a} stopped")))?
                .map_err(|e| setup(format!("raw node {a}: dial {addr}: {e}")))?;
        }
        let mesh_n_low = gossip::config().map_err(setup)?.mesh_n_low();
        loop {
            let states = self.states().await?;
            let short: Vec<String> = states
                .iter()
                .zip(degree)
                .enumerate()
                .filter(|(_, (s, d))| s.mesh < (**d).min(mesh_n_low))
                .map(|(i, (s, d))| format!("node {i}: {} mesh peers, {} connected, degree {d}", s.mesh, s.connected))
                .collect();
            if short.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(setup(format!(
                    "raw gossipsub mesh not formed within {ready_timeout:?} (want min(degree, {mesh_n_low})): {}",
                    short.join("; ")
                )));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    async fn send(&self, node: usize, cmd: Command) -> Result<(), BenchError> {
        let n = self.nodes.get(node).ok_or_else(|| BenchError::Usage(format!("no raw node {node}")))?;
        n.commands.send(cmd).await.map_err(|_| setup(format!("raw node {node} stopped")))
    }

    async fn states(&self) -> Result<Vec<NodeState>, BenchError> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let (reply, rx) = oneshot::channel();
            self.send(i, Command::State { reply }).await?;
            out.push(rx.await.map_err(|_| setup(format!("raw node {i} stopped")))?);
        }
        Ok(out)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the network has no node (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The topic the nodes publish on.
    pub fn topic(&self) -> &IdentTopic {
        &self.topic
    }

    /// Each node's mesh peer count on the topic, now.
    pub async fn mesh_sizes(&self) -> Result<Vec<usize>, BenchError> {
        Ok(self.states().await?.into_iter().map(|s| s.mesh).collect())
    }

    /// Publishes `payload` (made unique by the caller) from node `from`, returns each node's
    /// arrival delay measured from just before publish (Some(0) for `from`, None for nodes it did
    /// not reach within `timeout`). A bad `from`, an oversized or repeated payload, or a failed
    /// publish gives `None` everywhere (see [`RawNet::try_propagate`] for the reason).
    pub async fn propagate(&self, from: usize, payload: Vec<u8>, timeout: Duration) -> Vec<Option<Duration>> {
        match self.try_propagate(from, payload, timeout).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "raw gossipsub publish failed");
                vec![None; self.nodes.len()]
            }
        }
    }

    /// [`RawNet::propagate`], with the reason when nothing could be published.
    pub async fn try_propagate(
        &self,
        from: usize,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<Option<Duration>>, BenchError> {
        let n = self.nodes.len();
        if from >= n {
            return Err(BenchError::Usage(format!("no raw node {from} (the network has {n})")));
        }
        if payload.len() > gossip::MAX_MESSAGE_BYTES {
            return Err(BenchError::Usage(format!(
                "payload of {} bytes is above gossipsub's cap of {}",
                payload.len(),
                gossip::MAX_MESSAGE_BYTES
            )));
        }
        let _one_at_a_time = self.publishing.lock().await;
        let id = gossip::message_id(&payload);
        let start = Instant::now();
        let mut arrivals = vec![None; n];
        arrivals[from] = Some(Duration::ZERO);
        *self.shared.inflight.lock() = Some(Inflight { id, start, arrivals, missing: n - 1 });
        let (reply, rx) = oneshot::channel();
        let published = match self.send(from, Command::Publish { data: payload, reply }).await {
            Ok(()) => rx
                .await
                .map_err(|_| setup(format!("raw node {from} stopped")))
                .and_then(|r| r.map_err(|e| BenchError::Setup(format!("raw node {from}: publish: {e}")))),
            Err(e) => Err(e),
        };
        if let Err(e) = published {
            self.shared.inflight.lock().take();
            return Err(e);
        }
        let deadline = tokio::time::Instant::from_std(start) + timeout;
        loop {
            if self.shared.inflight.lock().as_ref().is_none_or(|f| f.missing == 0) {
                break;
            }
            // A permit left by an earlier message only wakes us early; the loop checks again.
            if tokio::time::timeout_at(deadline, self.shared.all_arrived.notified()).await.is_err() {
                break;
            }
        }
        Ok(self.shared.inflight.lock().take().map(|f| f.arrivals).unwrap_or_else(|| vec![None; n]))
    }

    /// Gossipsub's message counters on the topic, summed over the nodes (so far).
    pub fn gossip_counts(&self) -> GossipCounts {
        let hash = self.topic.hash().to_string();
        let mut total = GossipCounts::default();
        for node in &self.nodes {
            let mut text = String::new();
            if prometheus_client::encoding::text::encode(&mut text, &node.registry).is_err() {
                continue;
            }
            total.received += topic_counter(&text, "topic_msg_recv_counts_unfiltered_total", &hash);
            total.first_copies += topic_counter(&text, "topic_msg_recv_counts_total", &hash);
        }
        total
    }

    /// Stops every node (closing their connections) and waits for the tasks, at most
    /// [`STOP_TIMEOUT`].
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        for t in self.tasks.drain(..) {
            let abort = t.abort_handle();
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// The value of `name{hash="topic"}` in a Prometheus text exposition (0 when absent): gossipsub's
/// per-topic counters, here and in `vision-sim`.
pub fn topic_counter(text: &str, name: &str, topic: &str) -> u64 {
    let label = format!("hash=\"{topic}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// One raw node's swarm and its command queue.
struct NodeTask {
    index: usize,
    swarm: Swarm<gossipsub::Behaviour>,
    commands: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    topic: IdentTopic,
}

impl NodeTask {
    async fn run(mut self, cancel: CancellationToken) {
        let mut listen = Vec::new();
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                cmd = self.commands.recv() => match cmd {
                    None => break,
                    Some(Command::Publish { data, reply }) => {
                        let r = self.swarm.behaviour_mut().publish(self.topic.clone(), data).map_err(|e| e.to_string());
                        let _ = reply.send(r);
                    }
                    Some(Command::Dial { addr, reply }) => {
                        let _ = reply.send(self.swarm.dial(addr).map_err(|e| e.to_string()));
                    }
                    Some(Command::State { reply }) => {
                        let topic = self.topic.hash();
                        let _ = reply.send(NodeState {
                            listen: listen.clone(),
                            connected: self.swarm.connected_peers().count(),
                            mesh: self.swarm.behaviour().mesh_peers(&topic).count(),
                        });
                    }
                },
                ev = self.swarm.select_next_some() => match ev {
                    SwarmEvent::Behaviour(gossipsub::Event::Message { propagation_source, message_id, .. }) => {
                        self.shared.arrived(self.index, &message_id, Instant::now());
                        // Forward at once: no validation beyond gossipsub's own (signature, size).
                        let _ = self.swarm.behaviour_mut().report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Accept,
                        );
                    }
                    SwarmEvent::NewListenAddr { address, .. } => listen.push(address),
                    SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                        tracing::debug!(node = self.index, peer = ?peer_id, %error, "raw dial failed");
                    }
                    _ => {}
                },
            }
        }
    }
}
