//! A sync peer that lies about its work (issue #14, item 5), against a real `vision-node` process.
//!
//! An honest node (`honest`, a real process, not mining) holds a chain of [`CHAIN_LEN`] blocks on a
//! difficulty-1 test genesis, built in this process and written to its data directory before it
//! starts. A fresh node (`fresh`, a real process, empty database) bootstraps to a liar: an
//! in-process peer on the node's own libp2p stack (`build_swarm`: the same behaviour, codec and
//! caps) whose status claims a tip at height 10^9 with `u128::MAX / 2` total work, far more than
//! the honest chain. Once the liar is connected, `fresh` is told to dial `honest` too. The liar
//! then:
//!
//! - (a) `silent`: never answers a block or header request (each request stays open until the
//!   requester gives up);
//! - (b) `broken`: answers at once, with blocks and headers that do not connect (random parents)
//!   and headers whose hash misses the difficulty they claim;
//! - (c) `cheap`: serves a chain of its own on our genesis, 3,000 headers (and their empty blocks)
//!   that connect and meet their own difficulty of 1 but are stamped 1 ms apart, where the retarget
//!   requires more; its status claims exactly the work those headers add up to (3,001), ten times
//!   the honest chain's. Checked only link by link and against their own difficulty, the headers
//!   prove that work, and the blocks would be downloaded and fail at import; checked in context,
//!   they are refused before any block is asked for (the liar counts the range requests it gets).
//!
//! In both cases `fresh` must reach the honest tip within [`SYNC_BOUND`] of dialing `honest`, and
//! the liar must be charged: banned (`GET /admin/bans`) or its score below zero in `/v1/peers`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, identity, request_response};
use vision_node::chain::consensus::meets_difficulty;
use vision_node::chain::types::{Address, Block, BlockHeader, Hash, tx_root};
use vision_node::node::{BlockSource, Node, NodeConfig};
use vision_node::p2p::behaviour::{BehaviourEvent, build_swarm};
use vision_node::p2p::gossip::Topics;
use vision_node::p2p::sync::{Request, Response, Status};
use vision_node::p2p::{BanInfo, PeerInfo, TransportKind, peer_manager};
use vision_node::testkit::{genesis_with_accounts, next_block};

use crate::common::{NodeProcess, dial, wait_for};

/// Blocks of the honest chain.
const CHAIN_LEN: u64 = 300;
/// How long the fresh node may take to reach the honest tip once it dials the honest node.
const SYNC_BOUND: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lie {
    /// Never answers a block or header request.
    Silent,
    /// Answers with ranges and headers that do not connect or miss their proof of work.
    Broken,
    /// Serves a connected chain of cheap headers that break the retarget (see the module docs).
    Cheap,
}

/// Headers of the cheap chain.
const CHEAP_LEN: u64 = 3_000;

/// The cheap chain: blocks 1..=CHEAP_LEN on `genesis`, difficulty 1, 1 ms apart, no transactions.
fn cheap_chain(genesis: &Block) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::with_capacity(CHEAP_LEN as usize);
    let mut prev = genesis.header;
    for height in 1..=CHEAP_LEN {
        let mut h = prev;
        h.height = height;
        h.parent = prev.hash();
        h.timestamp_ms = genesis.header.timestamp_ms + height;
        h.difficulty = 1;
        h.miner = Address([0xcc; 32]);
        h.tx_root = tx_root(&[]);
        h.nonce = 0;
        out.push(Block { header: h, transactions: vec![] });
        prev = h;
    }
    out
}

/// The liar's status: far more work than anyone, at a height nobody has.
fn lying_status(genesis: Hash) -> Status {
    Status { genesis, tip: Hash([0x66; 32]), height: 1_000_000_000, total_work: u128::MAX / 2 }
}

/// A header at `height` whose parent is random (it connects to nothing), with a hash that meets its
/// difficulty of 1 (every hash does) or, if `bad_pow`, misses a difficulty of 2^40.
fn fake_header(template: &BlockHeader, height: u64, salt: u64, bad_pow: bool) -> BlockHeader {
    let mut h = *template;
    h.height = height;
    h.parent = Hash::digest(&[&height.to_le_bytes()[..], &salt.to_le_bytes()[..]].concat());
    h.timestamp_ms = template.timestamp_ms + height * 1_000;
    h.difficulty = if bad_pow { 1 << 40 } else { 1 };
    h.nonce = salt << 20;
    while bad_pow && meets_difficulty(&h.hash(), h.difficulty) {
        h.nonce += 1;
    }
    h
}

/// The liar's answer to a request other than a status (None: keep it unanswered).
fn lie(kind: Lie, request: &Request, template: &Block, cheap: &[Block], salt: u64) -> Option<Response> {
    if kind == Lie::Silent {
        return None;
    }
    if kind == Lie::Cheap {
        let range = |start: u64, count: u32| {
            cheap.iter().skip(start.saturating_sub(1) as usize).take(if start == 0 { 0 } else { count as usize })
        };
        return Some(match request {
            Request::HeadersByRange { start, count } => {
                Response::Headers(range(*start, *count).map(|b| b.header).collect())
            }
            Request::BlocksByRange { start, count } => Response::Blocks(range(*start, *count).cloned().collect()),
            _ => Response::Blocks(Vec::new()),
        });
    }
    let fake_block =
        |height: u64| Block { header: fake_header(&template.header, height, salt, false), transactions: vec![] };
    match request {
        Request::BlocksByRange { start, count } => {
            Some(Response::Blocks((*start..start + u64::from(*count)).map(fake_block).collect()))
        }
        Request::BlocksByHash(hashes) => {
            Some(Response::Blocks(hashes.iter().enumerate().map(|(i, _)| fake_block(i as u64 + 1)).collect()))
        }
        other => answer_headers(other, template, salt),
    }
}

/// Header requests: headers with random parents, every other answer with one that misses its work.
fn answer_headers(request: &Request, template: &Block, salt: u64) -> Option<Response> {
    match request {
        Request::HeadersByRange { start, count } => Some(Response::Headers(
            (*start..start + u64::from(*count))
                .map(|h| fake_header(&template.header, h, salt, salt % 2 == 1 && h == *start + 1))
                .collect(),
        )),
        _ => Some(Response::Blocks(Vec::new())),
    }
}

/// What the liar saw of the node.
#[derive(Default)]
struct LiarLog {
    connected: bool,
    requests: u64,
    /// `BlocksByRange` requests among them.
    ranges: u64,
    listen: Option<Multiaddr>,
}

/// Runs the liar on `rt`: it listens on loopback and answers as `kind` says.
fn spawn_liar(
    rt: &tokio::runtime::Runtime,
    genesis: Hash,
    status: Status,
    template: Block,
    cheap: Vec<Block>,
    kind: Lie,
) -> (PeerId, Arc<Mutex<LiarLog>>) {
    let _enter = rt.enter();
    let keypair = identity::Keypair::generate_ed25519();
    let id = keypair.public().to_peer_id();
    let topics = Topics::new(&genesis);
    let mut swarm =
        build_swarm(TransportKind::Tcp, &keypair, None, &peer_manager::Config::default(), &topics, None).unwrap();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
    let log = Arc::new(Mutex::new(LiarLog::default()));
    let seen = log.clone();
    rt.spawn(async move {
        // Requests left unanswered are held here, so their streams stay open until the requester
        // gives up.
        let mut held = Vec::new();
        let mut salt = 0u64;
        loop {
            let ev = swarm.select_next_some().await;
            match ev {
                SwarmEvent::NewListenAddr { address, .. } => seen.lock().unwrap().listen = Some(address),
                SwarmEvent::ConnectionEstablished { .. } => seen.lock().unwrap().connected = true,
                SwarmEvent::ConnectionClosed { num_established: 0, .. } => seen.lock().unwrap().connected = false,
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Request { request: Ok(request), channel, .. },
                    ..
                })) => {
                    salt += 1;
                    let response = match &request {
                        Request::Status(_) => Some(Response::Status(status)),
                        other => {
                            let mut seen = seen.lock().unwrap();
                            seen.requests += 1;
                            seen.ranges += u64::from(matches!(other, Request::BlocksByRange { .. }));
                            lie(kind, other, &template, &cheap, salt)
                        }
                    };
                    match response {
                        Some(r) => {
                            let _ = swarm.behaviour_mut().sync.send_response(channel, r);
                        }
                        None => held.push(channel),
                    }
                }
                _ => {}
            }
        }
    });
    (id, log)
}

fn charged(node: &NodeProcess, liar: &PeerId) -> Option<String> {
    let bans: Vec<BanInfo> = node.admin_client().get("/admin/bans").ok()?;
    if bans.iter().any(|b| b.peer_id == liar.to_string()) {
        return Some("banned".into());
    }
    let peers: Vec<PeerInfo> = node.client().get("/v1/peers").ok()?;
    peers.iter().find(|p| p.peer_id == liar.to_string() && p.score < 0.0).map(|p| format!("score {}", p.score))
}

fn run(kind: Lie) {
    let dir = tempfile::tempdir().unwrap();
    let (genesis, _keys) = genesis_with_accounts(2, 1_000_000_000);
    let genesis_file = dir.path().join("genesis.toml");
    genesis.save(&genesis_file).unwrap();
    let genesis_file = genesis_file.to_str().unwrap().to_string();
    // The honest chain, written to the honest node's data directory before it starts.
    let honest_dir = dir.path().join("honest");
    let (tip, template) = {
        let core = Node::open_core(&NodeConfig {
            data_dir: Some(honest_dir.clone()),
            genesis: genesis.clone(),
            ..NodeConfig::devnet()
        })
        .unwrap();
        let mut last = None;
        for _ in 0..CHAIN_LEN {
            let block = next_block(core.chain(), vec![], Address([0xb0; 32])).unwrap();
            core.import_block(&block, BlockSource::Miner).unwrap();
            last = Some(block);
        }
        let last = last.unwrap();
        (last.hash(), last)
    };
    let flags = ["--genesis", genesis_file.as_str(), "--mine", "false"];
    let honest = NodeProcess::start_networked(&honest_dir, &flags);
    assert_eq!(honest.status().height, CHAIN_LEN);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let genesis_hash = genesis.hash();
    let cheap = cheap_chain(&genesis.block());
    let status = match kind {
        // Exactly the work its headers add up to: genesis (1) and 3,000 blocks of difficulty 1.
        Lie::Cheap => Status {
            genesis: genesis_hash,
            tip: cheap.last().unwrap().hash(),
            height: CHEAP_LEN,
            total_work: u128::from(CHEAP_LEN) + 1,
        },
        _ => lying_status(genesis_hash),
    };
    let (liar, log) = spawn_liar(&rt, genesis_hash, status, template, cheap, kind);
    let liar_addr = wait_for("the liar to listen", Duration::from_secs(10), || log.lock().unwrap().listen.clone());
    let liar_addr = format!("{liar_addr}/p2p/{liar}");
    let mut fresh_flags = flags.to_vec();
    fresh_flags.extend(["--bootstrap", liar_addr.as_str()]);
    let fresh = NodeProcess::start_networked(&dir.path().join("fresh"), &fresh_flags);
    wait_for("the liar to be connected", Duration::from_secs(15), || log.lock().unwrap().connected.then_some(()));
    // The liar's status is in before the honest node is known.
    wait_for("the fresh node to ask the liar for something", Duration::from_secs(15), || {
        (log.lock().unwrap().requests > 0).then_some(())
    });

    let start = Instant::now();
    dial(&fresh, &honest.multiaddr());
    wait_for(&format!("{kind:?}: the fresh node to reach the honest tip"), SYNC_BOUND, || {
        fresh.client().status().ok().filter(|s| s.tip_hash == tip).map(|_| ())
    });
    let took = start.elapsed();
    let how =
        wait_for(&format!("{kind:?}: the liar to be charged"), Duration::from_secs(30), || charged(&fresh, &liar));
    let (requests, ranges) = {
        let log = log.lock().unwrap();
        (log.requests, log.ranges)
    };
    eprintln!(
        "sync_attack {kind:?}: fresh node reached height {CHAIN_LEN} in {:.1} s; liar {how} after {requests} requests \
         ({ranges} for blocks)",
        took.as_secs_f64(),
    );
    if kind == Lie::Cheap {
        // Refused on its headers: banned for them, and no block of that chain was ever asked for.
        let reason = wait_for("the liar's ban in the log", Duration::from_secs(10), || ban_reason(&fresh, &liar));
        assert_eq!(reason, "header_out_of_context");
        assert_eq!(ranges, 0, "blocks were asked of a chain whose headers break the retarget");
    }
}

/// The reason `node` logged when it banned `peer`.
fn ban_reason(node: &NodeProcess, peer: &PeerId) -> Option<String> {
    let id = peer.to_string();
    let logs = node.logs.lock().unwrap();
    logs.iter()
        .find(|v| v["fields"]["message"] == "peer banned" && v["fields"]["peer"] == id.as_str())
        .and_then(|v| v["fields"]["reason"].as_str().map(str::to_string))
}

#[test]
fn a_silent_liar_claiming_maximal_work_does_not_stall_sync() {
    run(Lie::Silent);
}

#[test]
fn a_liar_serving_ranges_that_do_not_connect_does_not_stall_sync() {
    run(Lie::Broken);
}

#[test]
fn a_liar_serving_cheap_headers_that_break_the_retarget_is_refused_before_any_block() {
    run(Lie::Cheap);
}
