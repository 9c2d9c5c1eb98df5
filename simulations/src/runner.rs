//! Runs one scenario: starts the honest nodes (each a real [`vision_node::node::Node`] with its
//! own redb database, mempool, peer manager, gossipsub and sync) over the memory transport and the
//! scenario's [`SimNet`], waits for the network to form, plays the timeline, then evaluates the
//! checks and writes the results.
//!
//! What is recorded, all against the timeline's start:
//! - every block each node applies to its canonical chain, when (from the node's own event
//!   stream, so a block counts when the node imported it, not when bytes arrived);
//! - every block mined by the runner, on which node, when;
//! - each node's height every [`SAMPLE_EVERY`];
//! - for every attacker, each linked honest node's score of it and whether it banned it;
//! - at the end, each node's gossipsub counters (messages received on the blocks topic with and
//!   without duplicates), read from the node's own `/metrics` registry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId, identity};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vision_node::chain::genesis::Genesis;
use vision_node::chain::types::{Address, Hash};
use vision_node::node::{BlockSource, Core, Event, Node, NodeConfig, TxSource};
use vision_node::p2p::gossip::Topics;
use vision_node::p2p::link::Links;
use vision_node::p2p::{NetworkConfig, NetworkHandle, TransportKind, peer_manager};
use vision_node::wallet::Keypair;
use vision_tools::raw_gossip::topic_counter;

use crate::attack::{AttackKind, Attacker, AttackerConfig, SentBlock};
use crate::net::{ATTACKER_PORT_BASE, PORT_BASE, SimNet, draw_link, random_topology};
use crate::record::{Arrival, Join, Mined, ScoreSample};
use crate::report::Results;
use crate::rng::Rng;
use crate::scenario::{Action, NamedNode, NodeSel, Scenario, Storage};

/// How often heights and attacker scores are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Balance of each funded account.
const ACCOUNT_BALANCE: u128 = 1_000_000_000_000;

/// An attacker and what the runner knows of it.
pub struct AttackerRec {
    /// Running attacker (taken when stopped).
    pub handle: Option<Attacker>,
    /// Its peer id.
    pub peer_id: PeerId,
    /// What it does.
    pub kind: AttackKind,
    /// Honest nodes it is linked to.
    pub targets: Vec<usize>,
    /// When it started (ms after the timeline start).
    pub started_ms: f64,
    /// When each target first listed it as banned.
    pub banned_at: BTreeMap<usize, f64>,
    /// When each target was first seen to have cut it off (banned, or disconnected and refused
    /// by its score), if it still had at the last sample.
    pub cut_off_at: BTreeMap<usize, f64>,
}

/// A running honest node as the background tasks see it.
pub type LiveNode = (Arc<Core>, NetworkHandle);

/// What the background tasks share with the runner.
pub struct Shared {
    /// The timeline's start (set when the warm-up ends); every time recorded is relative to it.
    pub t0: Mutex<Instant>,
    /// Live honest nodes' cores and network handles, by node number.
    pub live: Mutex<Vec<Option<LiveNode>>>,
    /// First application of each block at each node.
    pub arrivals: Mutex<HashMap<(usize, Hash), Arrival>>,
    /// Blocks the runner mined.
    pub mined: Mutex<Vec<Mined>>,
    /// (ms, node, height) samples.
    pub heights: Mutex<Vec<(f64, usize, u64)>>,
    /// Attacker score samples.
    pub scores: Mutex<Vec<ScoreSample>>,
    /// (ms, whether every live node had the same tip) samples.
    pub agree: Mutex<Vec<(f64, bool)>>,
    /// Attackers whose scores are sampled: (number, peer id, linked honest nodes).
    pub watch: Mutex<Vec<(usize, PeerId, Vec<usize>)>>,
}

impl Shared {
    /// Milliseconds since the timeline start.
    pub fn now_ms(&self) -> f64 {
        ms_since(*self.t0.lock())
    }

    /// Live honest node numbers.
    pub fn live_nodes(&self) -> Vec<usize> {
        self.live.lock().iter().enumerate().filter_map(|(i, l)| l.as_ref().map(|_| i)).collect()
    }

    /// Node `i`'s core, if it is running.
    pub fn core(&self, i: usize) -> Option<Arc<Core>> {
        self.live.lock().get(i).and_then(|l| l.as_ref().map(|(c, _)| c.clone()))
    }

    /// The node `sel` names (`last` is the highest of the first `initial` nodes); a random one is
    /// drawn among the live nodes. `None` when no node is live.
    pub fn pick(&self, sel: NodeSel, initial: usize, rng: &mut Rng) -> Option<usize> {
        match sel {
            NodeSel::Index(i) => Some(i),
            NodeSel::Named(NamedNode::Last) => Some(initial - 1),
            NodeSel::Named(NamedNode::Random) => {
                let live = self.live_nodes();
                (!live.is_empty()).then(|| live[rng.below(live.len() as u64) as usize])
            }
        }
    }
}

struct SimNode {
    port: u64,
    keypair: identity::Keypair,
    node: Option<Node>,
    recorder: Option<JoinHandle<()>>,
}

/// A scenario being run.
pub struct Runner {
    /// The scenario (after overrides).
    pub scenario: Scenario,
    rng: Rng,
    net: Arc<SimNet>,
    genesis: Genesis,
    accounts: Vec<Keypair>,
    nonces: Vec<u64>,
    /// The node each account's transfers go to (so one account's nonces never split between
    /// two sides of a partition).
    home: Vec<Option<usize>>,
    next_account: usize,
    topics: Topics,
    nodes: Vec<SimNode>,
    next_late: usize,
    shared: Arc<Shared>,
    t0: Instant,
    _data: Option<tempfile::TempDir>,
    data_root: Option<PathBuf>,
    background: Vec<JoinHandle<()>>,
    samplers: Vec<JoinHandle<()>>,
    /// Attackers started.
    pub attackers: Vec<AttackerRec>,
    /// Late joins.
    pub joins: Vec<Join>,
    /// Transfers accepted by `submit` events.
    pub submitted: Vec<Hash>,
    /// When the last event ran (ms after the timeline start).
    pub last_event_ms: f64,
    /// Every event run: (its `do` name, ms after the timeline start).
    pub event_times: Vec<(&'static str, f64)>,
    /// Nodes down at the moment (churn).
    down: HashSet<usize>,
}

fn memory_addr(port: u64, peer: &PeerId) -> Multiaddr {
    format!("/memory/{port}/p2p/{peer}").parse().expect("a memory multiaddr with a peer id is valid")
}

fn miner_address(i: usize) -> Address {
    let mut a = [0xa0u8; 32];
    a[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Address(a)
}

impl Runner {
    /// Prepares the network (no node started yet).
    pub fn new(scenario: Scenario) -> Result<Runner, String> {
        let rng = Rng::new(scenario.seed);
        let total = scenario.nodes + scenario.late_nodes;
        let net = Arc::new(SimNet::default());
        let mut topo_rng = rng.fork("topology");
        let mut link_rng = rng.fork("links");
        for (a, b) in random_topology(total, scenario.degree, &mut topo_rng) {
            let spec = draw_link(scenario.links.latency_ms, scenario.links.bandwidth_kbps, &mut link_rng);
            net.link(PORT_BASE + a as u64, PORT_BASE + b as u64, spec);
        }
        let (mut genesis, accounts) =
            vision_node::testkit::genesis_with_accounts(scenario.chain.accounts, ACCOUNT_BALANCE);
        genesis.target_block_time_ms = scenario.chain.target_block_time_ms;
        genesis.initial_difficulty = scenario.chain.initial_difficulty.max(1);
        let genesis_hash = genesis.block().hash();
        let mut key_rng = rng.fork("node keys");
        let nodes = (0..total)
            .map(|i| {
                let mut seed = key_rng.bytes32();
                let keypair =
                    identity::Keypair::ed25519_from_bytes(&mut seed).map_err(|e| format!("node key {i}: {e}"))?;
                Ok(SimNode { port: PORT_BASE + i as u64, keypair, node: None, recorder: None })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let (data, data_root) = match scenario.storage {
            Storage::Memory => (None, None),
            Storage::Disk => {
                let dir = tempfile::Builder::new()
                    .prefix("vision-sim-")
                    .tempdir()
                    .map_err(|e| format!("temporary directory: {e}"))?;
                let root = dir.path().to_path_buf();
                (Some(dir), Some(root))
            }
        };
        let shared = Arc::new(Shared {
            t0: Mutex::new(Instant::now()),
            live: Mutex::new(vec![None; total]),
            arrivals: Default::default(),
            mined: Default::default(),
            heights: Default::default(),
            scores: Default::default(),
            watch: Default::default(),
            agree: Default::default(),
        });
        Ok(Runner {
            nonces: vec![0; accounts.len()],
            home: vec![None; accounts.len()],
            accounts,
            next_account: 0,
            topics: Topics::new(&genesis_hash),
            genesis,
            net,
            nodes,
            next_late: scenario.nodes,
            shared,
            t0: Instant::now(),
            _data: data,
            data_root,
            background: Vec::new(),
            samplers: Vec::new(),
            attackers: Vec::new(),
            joins: Vec::new(),
            submitted: Vec::new(),
            last_event_ms: 0.0,
            event_times: Vec::new(),
            down: HashSet::new(),
            rng,
            scenario,
        })
    }

    /// Milliseconds since the timeline start (negative during the warm-up).
    pub fn now_ms(&self) -> f64 {
        ms_since(self.t0)
    }

    /// The link model (for the report).
    pub fn net(&self) -> &SimNet {
        &self.net
    }

    /// The gossip topics of the scenario's network.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    fn peer_config(&self) -> peer_manager::Config {
        let p = &self.scenario.peers;
        peer_manager::Config {
            target_peers: self.scenario.degree,
            max_peers: p.max_peers,
            min_outbound_peers: p.min_outbound_peers.min(self.scenario.degree / 2),
            ban_duration: Duration::from_secs(p.ban_duration_s),
            ..peer_manager::Config::default()
        }
    }

    fn node_config(&self, i: usize) -> NodeConfig {
        let n = &self.nodes[i];
        let bootstrap = self
            .net
            .neighbours(n.port)
            .into_iter()
            .filter(|p| *p < ATTACKER_PORT_BASE)
            .map(|p| {
                let j = (p - PORT_BASE) as usize;
                memory_addr(p, &self.nodes[j].keypair.public().to_peer_id())
            })
            .collect();
        let network = NetworkConfig {
            keypair: n.keypair.clone(),
            listen: vec![format!("/memory/{}", n.port).parse().expect("valid memory address")],
            external: Vec::new(),
            bootstrap,
            transport: TransportKind::Memory,
            peers: self.peer_config(),
            dial_known_peers: self.data_root.is_some(),
            links: Some(Links { model: self.net.clone(), local: n.port }),
        };
        NodeConfig {
            data_dir: self.data_root.as_ref().map(|r| r.join(format!("node-{i}"))),
            genesis: self.genesis.clone(),
            network: Some(network),
            ..NodeConfig::devnet()
        }
    }

    async fn start_node(&mut self, i: usize) -> Result<(), String> {
        let node = Node::builder()
            .config(self.node_config(i))
            .start()
            .await
            .map_err(|e| format!("node {i} did not start: {e}"))?;
        let core = node.core().clone();
        let net = node.network().cloned().ok_or_else(|| format!("node {i} has no network"))?;
        let mut events = core.subscribe();
        let shared = self.shared.clone();
        let recorder = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::NewHead { applied, .. }) => {
                        let at_ms = shared.now_ms();
                        let mut arrivals = shared.arrivals.lock();
                        for b in applied.iter() {
                            let hash = b.hash();
                            arrivals.entry((i, hash)).or_insert(Arrival {
                                node: i,
                                hash,
                                height: b.header.height,
                                at_ms,
                            });
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(node = i, missed = n, "recorder fell behind the node's events");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        self.shared.live.lock()[i] = Some((core, net));
        self.nodes[i].node = Some(node);
        self.nodes[i].recorder = Some(recorder);
        Ok(())
    }

    async fn stop_node(&mut self, i: usize) {
        self.shared.live.lock()[i] = None;
        if let Some(node) = self.nodes[i].node.take() {
            node.shutdown().await;
        }
        if let Some(r) = self.nodes[i].recorder.take() {
            r.abort();
        }
    }

    /// Live honest node numbers.
    pub fn live(&self) -> Vec<usize> {
        self.shared.live_nodes()
    }

    fn core(&self, i: usize) -> Option<Arc<Core>> {
        self.shared.core(i)
    }

    /// Starts the initial nodes and waits for every one to have a peer and for the warm-up.
    pub async fn start(&mut self) -> Result<(), String> {
        let begin = Instant::now();
        for i in 0..self.scenario.nodes {
            self.start_node(i).await?;
        }
        tracing::info!(nodes = self.scenario.nodes, took_ms = begin.elapsed().as_millis() as u64, "nodes started");
        let warm_until = begin + Duration::from_secs_f64(self.scenario.warmup_s);
        let deadline = warm_until + Duration::from_secs(60);
        loop {
            let lonely =
                self.shared.live.lock().iter().flatten().filter(|(_, net)| net.info().peer_count() == 0).count();
            let now = Instant::now();
            if lonely == 0 && now >= warm_until {
                break;
            }
            if now > deadline {
                return Err(format!("{lonely} nodes still have no peer after the warm-up plus 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.t0 = Instant::now();
        *self.shared.t0.lock() = self.t0;
        let shared = self.shared.clone();
        self.samplers.push(tokio::spawn(sample_heights(shared.clone())));
        self.samplers.push(tokio::spawn(sample_scores(shared)));
        Ok(())
    }

    /// Plays the timeline to its end.
    pub async fn play(&mut self) -> Result<(), String> {
        let mut queue: Vec<(f64, Step)> =
            self.scenario.events.iter().map(|e| (e.at_s * 1000.0, Step::Scenario(e.action.clone()))).collect();
        while !queue.is_empty() {
            let next = queue
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.0.total_cmp(&b.1.0))
                .map(|(i, _)| i)
                .expect("the queue is not empty");
            let (at_ms, step) = queue.remove(next);
            tokio::time::sleep_until(self.t0 + Duration::from_secs_f64(at_ms / 1000.0)).await;
            tracing::info!(at_s = at_ms / 1000.0, ?step, "event");
            let kind = match &step {
                Step::Scenario(a) => a.kind(),
                Step::Restart(_) => "restart",
            };
            self.event_times.push((kind, self.now_ms()));
            if let Some(later) = self.run_step(step).await? {
                queue.push(later);
            }
            self.last_event_ms = self.now_ms();
        }
        tokio::time::sleep_until(self.t0 + Duration::from_secs_f64(self.scenario.duration_s)).await;
        // Mining tasks end after their count; wait for them so every block is known.
        for t in std::mem::take(&mut self.background) {
            let _ = t.await;
        }
        Ok(())
    }

    async fn run_step(&mut self, step: Step) -> Result<Option<(f64, Step)>, String> {
        match step {
            Step::Restart(nodes) => {
                for i in nodes {
                    self.start_node(i).await?;
                    self.down.remove(&i);
                }
            }
            Step::Scenario(action) => match action {
                Action::Mine { node, count, every_ms } => {
                    let task = self.spawn_miner(node, count, every_ms);
                    self.background.push(task);
                }
                Action::Submit { node, count } => self.submit(node, count).await?,
                Action::Partition { groups } => {
                    let total = self.nodes.len();
                    let size = total.div_ceil(groups);
                    let ports: Vec<Vec<u64>> = (0..groups)
                        .map(|g| (g * size..((g + 1) * size).min(total)).map(|i| self.nodes[i].port).collect())
                        .collect();
                    self.net.partition(&ports);
                }
                Action::Heal => self.net.heal(),
                Action::Churn { count, down_ms } => {
                    let candidates: Vec<usize> = self.live();
                    let victims = self.rng.choose(&candidates, count);
                    for i in &victims {
                        self.down.insert(*i);
                        self.stop_node(*i).await;
                    }
                    tracing::info!(?victims, down_ms, "churn: nodes down");
                    return Ok(Some((self.now_ms() + down_ms as f64, Step::Restart(victims))));
                }
                Action::Join { count } => {
                    let target_height = self.best_height();
                    for _ in 0..count {
                        let i = self.next_late;
                        self.next_late += 1;
                        self.start_node(i).await?;
                        self.joins.push(Join { node: i, at_ms: self.now_ms(), target_height });
                    }
                }
                Action::Attack { kind, count, targets, period_ms } => {
                    for _ in 0..count {
                        self.spawn_attacker(kind, targets, Duration::from_millis(period_ms))?;
                    }
                }
            },
        }
        Ok(None)
    }

    fn best_height(&self) -> u64 {
        self.shared.live.lock().iter().flatten().map(|(c, _)| c.chain().tip().header.height).max().unwrap_or(0)
    }

    fn spawn_miner(&mut self, sel: NodeSel, count: u32, every_ms: u64) -> JoinHandle<()> {
        let mut rng = self.rng.fork(&format!("miner {}", self.background.len()));
        let shared = self.shared.clone();
        let initial = self.scenario.nodes;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(every_ms.max(1)));
            for _ in 0..count {
                tick.tick().await;
                let Some(i) = shared.pick(sel, initial, &mut rng) else { continue };
                let Some(core) = shared.core(i) else {
                    tracing::warn!(node = i, "not mining: node is down");
                    continue;
                };
                let mined = tokio::task::spawn_blocking(move || mine_one(&core, miner_address(i))).await;
                match mined {
                    Ok(Ok((hash, height, bytes))) => {
                        let at_ms = shared.now_ms();
                        shared.mined.lock().push(Mined { hash, height, origin: i, at_ms, bytes });
                    }
                    Ok(Err(e)) => tracing::warn!(node = i, error = %e, "mining failed"),
                    Err(e) => tracing::warn!(node = i, error = %e, "mining task failed"),
                }
            }
        })
    }

    async fn submit(&mut self, sel: NodeSel, count: u32) -> Result<(), String> {
        let Some(i) = self.shared.pick(sel, self.scenario.nodes, &mut self.rng) else { return Ok(()) };
        let Some(core) = self.core(i) else {
            tracing::warn!(node = i, "not submitting: node is down");
            return Ok(());
        };
        let chain_id = self.genesis.chain_id;
        let genesis_hash = self.genesis.hash();
        // This node's accounts, plus unclaimed ones until there is one per transfer.
        let mut mine: Vec<usize> = (0..self.accounts.len()).filter(|k| self.home[*k] == Some(i)).collect();
        for k in 0..self.accounts.len() {
            if mine.len() >= count as usize {
                break;
            }
            if self.home[k].is_none() {
                self.home[k] = Some(i);
                mine.push(k);
            }
        }
        if mine.is_empty() {
            return Err(format!("no account left for node {i}: raise chain.accounts"));
        }
        let txs: Vec<_> = (0..count)
            .map(|_| {
                let k = mine[self.next_account % mine.len()];
                self.next_account += 1;
                let nonce = self.nonces[k];
                self.nonces[k] += 1;
                let to = Address(self.rng.bytes32());
                vision_node::testkit::transfer(&self.accounts[k], to, 1, 1, nonce, chain_id, &genesis_hash)
            })
            .collect();
        let results = tokio::task::spawn_blocking(move || core.submit_transactions(&txs, TxSource::Api))
            .await
            .map_err(|e| format!("submit task: {e}"))?;
        let mut refused = 0;
        for r in results {
            match r {
                Ok(id) => self.submitted.push(id),
                Err(e) => {
                    refused += 1;
                    tracing::warn!(node = i, error = %e, "transfer refused");
                }
            }
        }
        if refused > 0 {
            return Err(format!("{refused} of {count} transfers refused by node {i}"));
        }
        Ok(())
    }

    fn spawn_attacker(&mut self, kind: AttackKind, targets: usize, period: Duration) -> Result<(), String> {
        let k = self.attackers.len();
        let port = ATTACKER_PORT_BASE + k as u64;
        let live = self.live();
        let chosen = self.rng.choose(&live, targets);
        let mut link_rng = self.rng.fork(&format!("attacker {k} links"));
        for t in &chosen {
            let spec = draw_link(self.scenario.links.latency_ms, self.scenario.links.bandwidth_kbps, &mut link_rng);
            self.net.link(port, self.nodes[*t].port, spec);
        }
        let reference = self.core(chosen[0]).ok_or("attack target is down")?;
        let mut seed = self.rng.bytes32();
        let keypair = identity::Keypair::ed25519_from_bytes(&mut seed).map_err(|e| e.to_string())?;
        let target_addrs = chosen
            .iter()
            .map(|t| memory_addr(self.nodes[*t].port, &self.nodes[*t].keypair.public().to_peer_id()))
            .collect();
        let attacker = Attacker::spawn(AttackerConfig {
            kind,
            keypair,
            links: Links { model: self.net.clone(), local: port },
            targets: target_addrs,
            topics: self.topics.clone(),
            reference,
            genesis: self.genesis.clone(),
            period,
        })?;
        tracing::info!(attacker = k, peer = %attacker.peer_id, ?kind, targets = ?chosen, "attacker started");
        self.shared.watch.lock().push((k, attacker.peer_id, chosen.clone()));
        self.attackers.push(AttackerRec {
            peer_id: attacker.peer_id,
            kind,
            handle: Some(attacker),
            targets: chosen,
            started_ms: self.now_ms(),
            banned_at: BTreeMap::new(),
            cut_off_at: BTreeMap::new(),
        });
        Ok(())
    }

    /// Waits until every live honest node has the same tip, up to `limit` after the last event or
    /// mined block (whichever came later). Returns (when the last node applied that tip, ms after
    /// that reference).
    pub async fn wait_converged(&self, limit: Duration) -> Result<f64, String> {
        let last_block = self.shared.mined.lock().iter().map(|m| m.at_ms).fold(f64::MIN, f64::max);
        let reference = self.last_event_ms.max(last_block);
        let deadline = self.t0 + Duration::from_secs_f64((reference / 1000.0).max(0.0)) + limit;
        loop {
            let tips: Vec<(usize, Hash, u64)> = self
                .shared
                .live
                .lock()
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.as_ref().map(|(c, _)| (i, c.chain().tip().hash, c.chain().tip().header.height)))
                .collect();
            if let Some((_, tip, _)) = tips.first()
                && tips.iter().all(|t| t.1 == *tip)
            {
                // When did the last node get there? The recorder saw each node apply the tip.
                let arrivals = self.shared.arrivals.lock();
                let at = tips
                    .iter()
                    .map(|(i, _, _)| arrivals.get(&(*i, *tip)).map_or(self.now_ms(), |a| a.at_ms))
                    .fold(f64::MIN, f64::max);
                return Ok((at - reference).max(0.0));
            }
            if Instant::now() >= deadline {
                let mut by_tip: BTreeMap<(u64, String), usize> = BTreeMap::new();
                for (_, h, height) in &tips {
                    *by_tip.entry((*height, h.short())).or_default() += 1;
                }
                return Err(format!("tips still differ {:.1} s after the last event: {by_tip:?}", limit.as_secs_f64()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How long after the last event of `kind` every live node first had the same tip (from the
    /// samples), in ms; `None` if they never did afterwards.
    pub fn agreement_after(&self, kind: &str) -> Option<f64> {
        let at = self.event_times.iter().rev().find(|(k, _)| *k == kind)?.1;
        self.shared.agree.lock().iter().find(|(t, ok)| *t >= at && *ok).map(|(t, _)| t - at)
    }

    /// The cores of the nodes running now, with their numbers.
    fn live_cores(&self) -> Vec<(usize, Arc<Core>)> {
        self.shared
            .live
            .lock()
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_ref().map(|(c, _)| (i, c.clone())))
            .collect()
    }

    /// The canonical hash at every height, per live node (up to the lowest tip).
    pub fn chains(&self) -> Result<Vec<(usize, Vec<Hash>)>, String> {
        let live = self.live_cores();
        let min = live.iter().map(|(_, c)| c.chain().tip().header.height).min().unwrap_or(0);
        live.into_iter()
            .map(|(i, c)| {
                let r = c.chain().read().map_err(|e| e.to_string())?;
                let hashes = (0..=min)
                    .map(|h| {
                        r.canonical_hash(h).map_err(|e| e.to_string())?.ok_or(format!("node {i}: no block at {h}"))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok((i, hashes))
            })
            .collect()
    }

    /// The blocks each attacker gossiped so far: (attacker number, kind, [(hash, difficulty, bytes)]).
    pub fn attacker_blocks(&self) -> Vec<(usize, AttackKind, Vec<SentBlock>)> {
        self.attackers
            .iter()
            .enumerate()
            .filter_map(|(k, a)| a.handle.as_ref().map(|h| (k, a.kind, h.stats.blocks.lock().clone())))
            .collect()
    }

    /// Which of `hashes` each live honest node stored (any status): (node, stored count, bytes).
    pub fn stored_by_nodes(&self, blocks: &[SentBlock]) -> Result<Vec<(usize, usize, usize)>, String> {
        let live = self.live_cores();
        live.into_iter()
            .map(|(i, c)| {
                let r = c.chain().read().map_err(|e| e.to_string())?;
                let mut count = 0;
                let mut bytes = 0;
                for (hash, _, len) in blocks {
                    if r.block_meta(hash).map_err(|e| e.to_string())?.is_some() {
                        count += 1;
                        bytes += len;
                    }
                }
                Ok((i, count, bytes))
            })
            .collect()
    }

    /// The lowest difficulty on any live honest node's canonical chain above height 2 (heights 1
    /// and 2 get the genesis difficulty), with the node.
    pub fn lowest_canonical_difficulty(&self) -> Result<Option<(u64, usize)>, String> {
        let live = self.live_cores();
        let mut lowest: Option<(u64, usize)> = None;
        for (i, c) in live {
            let r = c.chain().read().map_err(|e| e.to_string())?;
            for height in 3..=c.chain().tip().header.height {
                let Some(hash) = r.canonical_hash(height).map_err(|e| e.to_string())? else { break };
                let Some(meta) = r.block_meta(&hash).map_err(|e| e.to_string())? else { break };
                if lowest.is_none_or(|(d, _)| meta.header.difficulty < d) {
                    lowest = Some((meta.header.difficulty, i));
                }
            }
        }
        Ok(lowest)
    }

    /// Waits until every submitted transfer is in every live node's chain; returns the missing
    /// (node, transfer) count at the deadline.
    pub async fn wait_included(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let live: Vec<Arc<Core>> = self.shared.live.lock().iter().flatten().map(|(c, _)| c.clone()).collect();
            let missing: usize = live
                .iter()
                .map(|c| match c.chain().read() {
                    Ok(r) => self.submitted.iter().filter(|id| !matches!(r.tx_location(id), Ok(Some(_)))).count(),
                    Err(_) => self.submitted.len(),
                })
                .sum();
            if missing == 0 || Instant::now() >= deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Reads each live node's gossipsub counters for the blocks topic: (node, received including
    /// duplicates, received first copies).
    pub fn gossip_counts(&self) -> Vec<(usize, u64, u64)> {
        let topic = self.topics.blocks.hash().to_string();
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.node.as_ref().map(|node| (i, node.metrics_text())))
            .map(|(i, text)| {
                let all = topic_counter(&text, "vision_p2p_gossipsub_topic_msg_recv_counts_unfiltered_total", &topic);
                let first = topic_counter(&text, "vision_p2p_gossipsub_topic_msg_recv_counts_total", &topic);
                (i, all, first)
            })
            .collect()
    }

    /// Block imports that changed a tip, summed over the live nodes: (seconds, imports), from each
    /// node's `vision_block_import_duration_seconds` histogram.
    pub fn import_times(&self) -> (f64, u64) {
        self.nodes.iter().filter_map(|n| n.node.as_ref().map(|node| node.metrics_text())).fold(
            (0.0, 0),
            |(s, c), text| {
                let value = |name: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                (
                    s + value("vision_block_import_duration_seconds_sum"),
                    c + value("vision_block_import_duration_seconds_count") as u64,
                )
            },
        )
    }

    /// Bans and cut-offs seen so far, merged from the score samples (in time order): a pair is cut
    /// off from the first sample of a cut-off that lasted to its last sample.
    fn merge_bans(&mut self) {
        let samples = self.shared.scores.lock().clone();
        for s in samples {
            let rec = &mut self.attackers[s.attacker];
            if s.banned {
                let e = rec.banned_at.entry(s.node).or_insert(s.at_ms);
                *e = e.min(s.at_ms);
            }
            if s.cut_off || s.banned {
                rec.cut_off_at.entry(s.node).or_insert(s.at_ms);
            } else {
                rec.cut_off_at.remove(&s.node);
            }
        }
    }

    /// Stops attackers, samplers and nodes; returns everything recorded.
    pub async fn finish(mut self) -> Results {
        self.merge_bans();
        let gossip = self.gossip_counts();
        let import = self.import_times();
        for a in &mut self.attackers {
            if let Some(h) = a.handle.take() {
                h.stop().await;
            }
        }
        for t in self.background.drain(..).chain(self.samplers.drain(..)) {
            t.abort();
        }
        let chains = self.chains().unwrap_or_default();
        let live_at_end = self.live();
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
        let shared = &self.shared;
        let mut arrivals: Vec<Arrival> = shared.arrivals.lock().values().copied().collect();
        arrivals.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        Results {
            arrivals,
            mined: shared.mined.lock().clone(),
            heights: shared.heights.lock().clone(),
            scores: shared.scores.lock().clone(),
            attackers: self
                .attackers
                .iter()
                .map(|a| {
                    (a.peer_id, a.kind, a.targets.clone(), a.started_ms, a.banned_at.clone(), a.cut_off_at.clone())
                })
                .collect(),
            gossip,
            import,
            joins: self.joins.clone(),
            live_at_end,
            final_height: chains.first().map(|(_, h)| h.len() as u64 - 1).unwrap_or(0),
            canonical: chains.first().map(|(_, h)| h.iter().copied().collect()).unwrap_or_default(),
        }
    }
}

/// A step of the timeline: a scenario event or a restart the runner scheduled itself.
#[derive(Debug)]
enum Step {
    Scenario(Action),
    Restart(Vec<usize>),
}

fn ms_since(t0: Instant) -> f64 {
    let now = Instant::now();
    if now >= t0 { (now - t0).as_secs_f64() * 1000.0 } else { -((t0 - now).as_secs_f64() * 1000.0) }
}

/// Mines one block on `core`'s tip with its pool's best transactions and imports it (the node's
/// network layer then publishes it, as for its own miner). Returns its hash, height and encoded size.
fn mine_one(core: &Core, miner: Address) -> Result<(Hash, u64, usize), String> {
    let template = vision_node::miner::build_template(
        core.chain(),
        core.mempool(),
        miner,
        vision_node::miner::DEFAULT_MAX_BLOCK_TXS,
    )
    .map_err(|e| e.to_string())?;
    let block = vision_node::miner::solve(&template, vision_node::chain::consensus::now_ms());
    core.import_block(&block, BlockSource::Miner).map_err(|e| e.to_string())?;
    Ok((block.hash(), block.header.height, block.encoded_len()))
}

async fn sample_heights(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let at = shared.now_ms();
        let tips: Vec<(usize, vision_node::chain::import::Tip)> = shared
            .live
            .lock()
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_ref().map(|(c, _)| (i, c.chain().tip())))
            .collect();
        let agree = tips.windows(2).all(|w| w[0].1.hash == w[1].1.hash);
        shared.agree.lock().push((at, agree));
        shared.heights.lock().extend(tips.iter().map(|(i, t)| (at, *i, t.header.height)));
    }
}

async fn sample_scores(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        let at_ms = shared.now_ms();
        let watch = shared.watch.lock().clone();
        let mut targets: Vec<usize> = watch.iter().flat_map(|(_, _, t)| t.iter().copied()).collect();
        targets.sort_unstable();
        targets.dedup();
        for node in targets {
            let Some(net) = shared.live.lock().get(node).and_then(|l| l.as_ref().map(|(_, n)| n.clone())) else {
                continue;
            };
            for (k, peer, ts) in &watch {
                if !ts.contains(&node) {
                    continue;
                }
                let Ok(st) = net.standing(*peer).await else { continue };
                let score = st.connected.then_some(st.score);
                let cut_off = !st.connected && st.refused;
                shared.scores.lock().push(ScoreSample { at_ms, node, attacker: *k, score, banned: st.banned, cut_off });
            }
        }
    }
}

/// The output directory for a run.
pub fn default_out(scenario: &Scenario) -> PathBuf {
    Path::new("target").join("sim").join(format!("{}-n{}-s{}", scenario.name, scenario.nodes, scenario.seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_counter_reads_one_topic() {
        let text = "# TYPE x counter\n\
            vision_p2p_gossipsub_topic_msg_recv_counts_total{hash=\"/a\"} 7\n\
            vision_p2p_gossipsub_topic_msg_recv_counts_total{hash=\"/b\"} 9\n\
            vision_p2p_gossipsub_topic_msg_recv_counts_unfiltered_total{hash=\"/a\"} 12\n";
        assert_eq!(topic_counter(text, "vision_p2p_gossipsub_topic_msg_recv_counts_total", "/a"), 7);
        assert_eq!(topic_counter(text, "vision_p2p_gossipsub_topic_msg_recv_counts_unfiltered_total", "/a"), 12);
        assert_eq!(topic_counter(text, "vision_p2p_gossipsub_topic_msg_recv_counts_total", "/c"), 0);
    }
}
