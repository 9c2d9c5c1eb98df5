//! `vision-node bench peers`: a peer-load tool. It opens up to `--count` libp2p connections to one
//! node over TCP, each from a fresh identity running the node's own stack
//! ([`vision_p2p::behaviour::build_swarm`]: noise, yamux, identify, ping, Kademlia, gossipsub
//! subscribed to both topics, the sync protocol), and holds them. Like a real peer, each one answers
//! the node's sync requests (its status echoes the node's, so the node never tries to sync from it;
//! block requests get an empty answer), sends its own status request every
//! [`vision_p2p::service::STATUS_INTERVAL`], and drops (ignores) the gossip it receives. A peer whose
//! connection fails or closes dials again after [`REDIAL_DELAY`].
//!
//! For each step of `--steps` (peer counts, e.g. `0,250,500,1000`) the tool grows or shrinks the set
//! of peers to that count, dialing at most [`MAX_PENDING_DIALS`] at once (below the node's
//! `MAX_PENDING_INCOMING`), waits `--settle` seconds, then measures for `--duration` seconds: the
//! latency of `GET /v1/status` on `--api` (one keep-alive connection, every `--api-interval-ms`), the
//! node's connected-peer count and height from those answers, and, with `--pid` (loopback only), the
//! node's RSS and CPU from `/proc` (also without its `miner-*` threads, which take whatever CPU is
//! idle), the CPU of the other `--pid` processes (the rest of a local cluster), of this tool, and of
//! everything else on the machine.
//! It prints one row per step as the step ends and the whole table at the end, then a `RESULT` line
//! per step for scripts.
//!
//! To hold 1,000 peers the node needs `--max-peers` above 1,000 plus its reserved outbound slots
//! (`min_outbound_peers` = 8): e.g. `--max-peers 1100`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, gossipsub, identity, request_response};
use tokio_util::sync::CancellationToken;

use super::{ApiUrl, BenchError, CpuWindow, HttpConn, Millis, Table, fetch_status, fmt_cores};
use vision_p2p::TransportKind;
use vision_p2p::behaviour::{BehaviourEvent, build_swarm};
use vision_p2p::gossip::Topics;
use vision_p2p::peer_manager;
use vision_p2p::service::STATUS_INTERVAL;
use vision_p2p::sync::{Request, Response, Status};

/// Most connections the tool opens (`--count` and every step).
pub const MAX_COUNT: usize = 20_000;
/// Dials in flight at once (the node accepts at most `behaviour::MAX_PENDING_INCOMING` = 128
/// connections in their handshake).
pub const MAX_PENDING_DIALS: usize = 64;
/// Wait before a peer whose dial failed or whose connection closed dials again.
pub const REDIAL_DELAY: Duration = Duration::from_secs(2);
/// How often each peer checks its timers (status request, redial).
pub const PEER_TICK: Duration = Duration::from_millis(250);
/// Most latency samples kept per step (at the default 20 ms interval, 10 s give 500).
pub const MAX_SAMPLES_PER_STEP: usize = 1_000_000;

/// Flags of `vision-node bench peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {
    /// The node's p2p address, e.g. /ip4/127.0.0.1/tcp/7000 (a /p2p/PEER_ID suffix is optional).
    #[arg(long, value_name = "MULTIADDR")]
    pub target: Multiaddr,
    /// Connections to hold at the last step.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub count: usize,
    /// Peer counts to measure at, comma-separated, each at most --count [default: 0,COUNT].
    #[arg(long, value_name = "N[,N..]", value_delimiter = ',')]
    pub steps: Vec<usize>,
    /// The node's API URL (latency, peer count, height).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:7070")]
    pub api: String,
    /// Measurement window at each step, in seconds.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub duration: u64,
    /// The node's process id (on this machine), for its RSS and CPU; further pids (e.g. the rest of
    /// a local cluster) are reported together as "cluster CPU" and left out of "others".
    #[arg(long, value_name = "PID[,PID..]", value_delimiter = ',')]
    pub pid: Vec<String>,
    /// Interval between two `GET /v1/status`, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub api_interval_ms: u64,
    /// Wait after a step's connections are up before measuring, in seconds.
    #[arg(long, value_name = "S", default_value_t = 3)]
    pub settle: u64,
    /// Give up growing to a step after this many seconds (the row then shows how many are held).
    #[arg(long, value_name = "S", default_value_t = 120)]
    pub ramp_timeout: u64,
}

/// Counters shared by every peer task.
#[derive(Default)]
struct Counters {
    /// Peers with an established connection.
    connected: AtomicUsize,
    /// Dials in flight.
    dialing: AtomicUsize,
    /// Dials that failed (refused, limits, handshake).
    dial_failures: AtomicU64,
    /// Established connections that closed while the peer was still wanted.
    drops: AtomicU64,
    /// Gossip messages received (blocks and transaction batches the node forwarded).
    gossip: AtomicU64,
    /// Sync requests the node sent us.
    requests_in: AtomicU64,
}

/// One measured step.
struct StepResult {
    step: usize,
    held: usize,
    node_peers: (usize, usize),
    api_ms: Millis,
    api_errors: u64,
    blocks: u64,
    rss_kib: Option<u64>,
    cpu: super::CpuUse,
    dial_failures: u64,
    drops: u64,
    ramp_secs: f64,
}

/// Runs `bench peers`.
pub fn run(args: PeersArgs) -> Result<(), BenchError> {
    let mut steps = if args.steps.is_empty() { vec![0, args.count] } else { args.steps.clone() };
    steps.dedup();
    if args.count > MAX_COUNT || steps.iter().any(|s| *s > args.count) {
        return Err(BenchError::Usage(format!(
            "--count must be at most {MAX_COUNT} and every --steps value at most --count ({})",
            args.count
        )));
    }
    if args.duration == 0 {
        return Err(BenchError::Usage("--duration must be at least 1".into()));
    }
    let api = ApiUrl::parse(&args.api)?;
    let pids = super::parse_pids(&args.pid)?;
    if !pids.is_empty() && !api.is_loopback() {
        return Err(BenchError::Usage("--pid only makes sense for a node on this machine (loopback --api)".into()));
    }
    if let Some(pid) = pids.iter().find(|p| super::proc_cpu_ticks(**p).is_none()) {
        return Err(BenchError::Usage(format!("--pid {pid}: no such process readable in /proc")));
    }
    let status = fetch_status(&mut HttpConn::new(&api))?;
    let total_work = status.total_work.parse().map_err(|_| BenchError::Protocol {
        url: api.text.clone(),
        message: format!("total_work {:?} is not a number", status.total_work),
    })?;
    let start = Status { genesis: status.genesis_hash, tip: status.tip_hash, height: status.height, total_work };
    let topics = Topics::new(&status.genesis_hash);
    eprintln!(
        "bench peers: target {} (API {}, {} peers now), steps {:?}, {} s per step",
        args.target, api.text, status.peers, steps, args.duration
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-peers")
        .build()
        .map_err(|e| BenchError::Io(format!("cannot start the async runtime: {e}")))?;
    let counters = Arc::new(Counters::default());
    let mut results = Vec::new();
    let mut table = Table::new(&[
        "peers asked",
        "held",
        "node peers min-max",
        "API p50 ms",
        "API p99 ms",
        "API max ms",
        "API errors",
        "node RSS MiB",
        "node CPU cores",
        "node CPU w/o miner",
        "blocks imported",
        "tool CPU cores",
        "cluster CPU cores",
        "others CPU cores",
        "dial failures / drops",
    ]);
    rt.block_on(async {
        let mut peers: Vec<(CancellationToken, tokio::task::JoinHandle<()>)> = Vec::new();
        for &step in &steps {
            let ramp_start = Instant::now();
            while peers.len() > step {
                if let Some((cancel, handle)) = peers.pop() {
                    cancel.cancel();
                    let _ = handle.await;
                }
            }
            let ramp_deadline = ramp_start + Duration::from_secs(args.ramp_timeout);
            while peers.len() < step && Instant::now() < ramp_deadline {
                if counters.dialing.load(Ordering::Relaxed) >= MAX_PENDING_DIALS {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let cancel = CancellationToken::new();
                counters.dialing.fetch_add(1, Ordering::Relaxed);
                let handle = tokio::spawn(peer_task(
                    args.target.clone(),
                    topics.clone(),
                    start,
                    counters.clone(),
                    cancel.clone(),
                ));
                peers.push((cancel, handle));
            }
            while counters.connected.load(Ordering::Relaxed) < step && Instant::now() < ramp_deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let ramp_secs = ramp_start.elapsed().as_secs_f64();
            tokio::time::sleep(Duration::from_secs(args.settle)).await;
            let (failures0, drops0) =
                (counters.dial_failures.load(Ordering::Relaxed), counters.drops.load(Ordering::Relaxed));
            let (api2, pids2, duration, interval) = (
                api.clone(),
                pids.clone(),
                Duration::from_secs(args.duration),
                Duration::from_millis(args.api_interval_ms),
            );
            let probe = tokio::task::spawn_blocking(move || probe_api(&api2, &pids2, duration, interval)).await;
            let Ok(probe) = probe else {
                return Err(BenchError::Io("the API probe thread panicked".into()));
            };
            let r = StepResult {
                step,
                held: counters.connected.load(Ordering::Relaxed),
                node_peers: probe.node_peers,
                api_ms: probe.latencies_ms,
                api_errors: probe.errors,
                blocks: probe.blocks,
                rss_kib: probe.rss_kib,
                cpu: probe.cpu,
                dial_failures: counters.dial_failures.load(Ordering::Relaxed) - failures0,
                drops: counters.drops.load(Ordering::Relaxed) - drops0,
                ramp_secs,
            };
            let row = step_row(&r);
            eprintln!("bench peers: step {step}: held {} after {:.1} s ramp; {}", r.held, r.ramp_secs, row.join(" | "));
            table.row(row);
            results.push(r);
        }
        for (cancel, _) in &peers {
            cancel.cancel();
        }
        for (_, handle) in peers {
            let _ = handle.await;
        }
        Ok(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(5));

    println!("machine: {}; target {}; {} s per step", super::machine_description(), args.target, args.duration);
    println!("{}", table.render());
    for r in &results {
        let lat = &r.api_ms;
        println!(
            "RESULT step={} held={} node_peers_min={} node_peers_max={} api_p50_ms={:.2} api_p99_ms={:.2} \
             api_errors={} rss_mib={} node_cpu_cores={} node_cpu_without_miner={} blocks={}",
            r.step,
            r.held,
            r.node_peers.0,
            r.node_peers.1,
            lat.percentile(50.0),
            lat.percentile(99.0),
            r.api_errors,
            r.rss_kib.map_or("n/a".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
            fmt_cores(r.cpu.pids.first().and_then(|p| p.1)),
            fmt_cores(r.cpu.pid_without(0, "miner")),
            r.blocks
        );
    }
    Ok(())
}

fn step_row(r: &StepResult) -> Vec<String> {
    let lat = &r.api_ms;
    vec![
        r.step.to_string(),
        r.held.to_string(),
        format!("{}-{}", r.node_peers.0, r.node_peers.1),
        format!("{:.2}", lat.percentile(50.0)),
        format!("{:.2}", lat.percentile(99.0)),
        format!("{:.2}", lat.max()),
        r.api_errors.to_string(),
        r.rss_kib.map_or("n/a".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        fmt_cores(r.cpu.pids.first().and_then(|p| p.1)),
        fmt_cores(r.cpu.pid_without(0, "miner")),
        r.blocks.to_string(),
        fmt_cores(r.cpu.own),
        cluster_cores(&r.cpu),
        fmt_cores(r.cpu.others()),
        format!("{} / {}", r.dial_failures, r.drops),
    ]
}

/// CPU of the watched processes after the first (the rest of the cluster), or `-` without any.
fn cluster_cores(cpu: &super::CpuUse) -> String {
    if cpu.pids.len() < 2 {
        return "-".into();
    }
    let sum: Option<f64> = cpu.pids[1..].iter().map(|p| p.1).sum();
    fmt_cores(sum)
}

/// What the API probe measured over one window.
struct Probe {
    latencies_ms: Millis,
    errors: u64,
    node_peers: (usize, usize),
    blocks: u64,
    rss_kib: Option<u64>,
    cpu: super::CpuUse,
}

/// `GET /v1/status` every `interval` for `duration` on one keep-alive connection; the CPU of the
/// watched processes over the window and the first one's RSS at the end.
fn probe_api(api: &ApiUrl, pids: &[u32], duration: Duration, interval: Duration) -> Probe {
    let cpu = CpuWindow::start(pids);
    let mut conn = HttpConn::new(api);
    let end = Instant::now() + duration;
    let mut p = Probe {
        latencies_ms: Millis::new(),
        errors: 0,
        node_peers: (usize::MAX, 0),
        blocks: 0,
        rss_kib: None,
        cpu: Default::default(),
    };
    let mut heights = (None, None);
    while Instant::now() < end && p.latencies_ms.len() < MAX_SAMPLES_PER_STEP as u64 {
        let t = Instant::now();
        match conn.request("GET", "/v1/status", None) {
            Ok(r) if r.status == 200 => {
                p.latencies_ms.record(t.elapsed().as_secs_f64() * 1e3);
                if let Ok(s) = serde_json::from_slice::<vision_node::api::Status>(&r.body) {
                    p.node_peers = (p.node_peers.0.min(s.peers), p.node_peers.1.max(s.peers));
                    heights = (heights.0.or(Some(s.height)), Some(s.height));
                }
            }
            _ => p.errors += 1,
        }
        if let Some(rest) = interval.checked_sub(t.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    if p.node_peers.0 == usize::MAX {
        p.node_peers.0 = 0;
    }
    if let (Some(a), Some(b)) = heights {
        p.blocks = b.saturating_sub(a);
    }
    p.cpu = cpu.finish();
    p.rss_kib = pids.first().and_then(|p| super::proc_rss_kib(*p));
    p
}

/// One peer: a fresh identity on the node's stack, connected to `target` until cancelled.
async fn peer_task(
    target: Multiaddr,
    topics: Topics,
    start: Status,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    // The caller counted this peer's first dial as in flight.
    let mut dialing = true;
    let finish_dial = |dialing: &mut bool| {
        if std::mem::take(dialing) {
            counters.dialing.fetch_sub(1, Ordering::Relaxed);
        }
    };
    let keypair = identity::Keypair::generate_ed25519();
    let swarm = build_swarm(TransportKind::Tcp, &keypair, None, &peer_manager::Config::default(), &topics, None);
    let Ok(mut swarm) = swarm else {
        counters.dial_failures.fetch_add(1, Ordering::Relaxed);
        finish_dial(&mut dialing);
        return;
    };
    for t in [&topics.blocks, &topics.txs] {
        let _ = swarm.behaviour_mut().gossipsub.subscribe(t);
    }
    let mut status = start;
    let mut node: Option<PeerId> = None;
    let mut redial_at: Option<Instant> = None;
    let mut last_status = Instant::now();
    if swarm.dial(target.clone()).is_err() {
        counters.dial_failures.fetch_add(1, Ordering::Relaxed);
        finish_dial(&mut dialing);
        redial_at = Some(Instant::now() + REDIAL_DELAY);
    }
    let mut tick = tokio::time::interval(PEER_TICK);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                let now = Instant::now();
                if let Some(peer) = node
                    && now.duration_since(last_status) >= STATUS_INTERVAL
                {
                    last_status = now;
                    swarm.behaviour_mut().sync.send_request(&peer, Ok(Request::Status(status)));
                }
                if node.is_none() && !dialing && redial_at.is_some_and(|t| now >= t) {
                    redial_at = None;
                    if counters.dialing.load(Ordering::Relaxed) < MAX_PENDING_DIALS {
                        counters.dialing.fetch_add(1, Ordering::Relaxed);
                        dialing = true;
                        if swarm.dial(target.clone()).is_err() {
                            counters.dial_failures.fetch_add(1, Ordering::Relaxed);
                            finish_dial(&mut dialing);
                            redial_at = Some(now + REDIAL_DELAY);
                        }
                    } else {
                        redial_at = Some(now + PEER_TICK);
                    }
                }
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                    finish_dial(&mut dialing);
                    if num_established.get() == 1 && node.is_none() {
                        node = Some(peer_id);
                        counters.connected.fetch_add(1, Ordering::Relaxed);
                        last_status = Instant::now();
                        swarm.behaviour_mut().sync.send_request(&peer_id, Ok(Request::Status(status)));
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } if node == Some(peer_id) => {
                    node = None;
                    counters.connected.fetch_sub(1, Ordering::Relaxed);
                    counters.drops.fetch_add(1, Ordering::Relaxed);
                    redial_at = Some(Instant::now() + REDIAL_DELAY);
                }
                SwarmEvent::OutgoingConnectionError { .. } => {
                    counters.dial_failures.fetch_add(1, Ordering::Relaxed);
                    finish_dial(&mut dialing);
                    if node.is_none() {
                        redial_at = Some(Instant::now() + REDIAL_DELAY);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    counters.requests_in.fetch_add(1, Ordering::Relaxed);
                    let response = match request {
                        // Echo the node's status: equal work, so it never syncs from us.
                        Ok(Request::Status(theirs)) => {
                            status = theirs;
                            Response::Status(theirs)
                        }
                        _ => Response::Blocks(Vec::new()),
                    };
                    let _ = swarm.behaviour_mut().sync.send_response(channel, response);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    ..
                })) => {
                    counters.gossip.fetch_add(1, Ordering::Relaxed);
                    let _ = swarm.behaviour_mut().gossipsub.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        gossipsub::MessageAcceptance::Ignore,
                    );
                }
                _ => {}
            },
        }
    }
    finish_dial(&mut dialing);
    if node.is_some() {
        counters.connected.fetch_sub(1, Ordering::Relaxed);
    }
}
