//! `vision-node bench propagation`: block propagation delay across a cluster of running nodes on
//! this machine, and raw gossipsub on the same topology in the same run.
//!
//! **Node side.** One thread per `--api` node holds a WebSocket on `GET /v1/ws` subscribed to
//! `new_heads` (blocking tungstenite) and stamps every `new_head` with one process-wide
//! [`Instant`] clock (all nodes are on this machine, so their announcements share a clock). A
//! node announces a block once it has imported it and made it its tip. The first node to announce
//! a hash is the block's origin: its miner, whose import finished and which publishes the block
//! right after. The delay at every other node is its announcement time minus the origin's, so it
//! covers gossip transfer plus the receiver's decode, validation and import (the WebSocket
//! delivery adds about the same small amount at both ends). Counting starts once every socket
//! is subscribed; it stops after `--blocks` blocks reached every node (or after `--duration`
//! seconds), then waits at most `--timeout` for the blocks still in flight. A block some node never
//! announced within `--timeout` is *missed* there (lost a fork race, or skipped inside a batch
//! import: a node announces only its new tip). Delays come from the blocks every node announced.
//!
//! **Raw baseline.** Then, in this process, a [`RawNet`] of as many gossipsub nodes as `--api`
//! entries, built from the node's own transport (TCP on loopback) and gossipsub configuration on
//! the cluster's blocks topic, connected like the cluster (its edges are read from each node's `GET /v1/peers`), forwards
//! without validating or importing. For every measured block, in order, the raw node with the
//! block's origin index publishes a payload of the block's encoded size (from its transaction
//! count: every transaction is a fixed-size transfer) and the delivery delay at every other raw
//! node is recorded. [`RAW_WARMUP`] messages before them are not counted.
//!
//! The report is a markdown table (node, raw gossipsub, node/raw ratio: p50, p99, max, mean,
//! samples), the block sizes (transactions and bytes), the delays by block size class and by
//! receiving node, and a `RESULT key=value ...` line.
//! Blocks carry transactions only when something sends them: run `bench load` alongside.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use clap::Args;
use tungstenite::Message;

use super::raw_gossip::{RawNet, RawNetConfig};
use super::{ApiUrl, BenchError, HttpConn, Millis, Table, fetch_status};
use vision_node::api::ws::WsMessage;
use vision_node::chain::types::{HEADER_LEN, Hash, TRANSFER_TX_LEN};
use vision_p2p::{PeerInfo, TransportKind};

/// Most nodes (`--api` entries): one thread and one socket each.
pub const MAX_NODES: usize = 64;
/// Most blocks one run waits for (`--blocks`).
pub const MAX_BLOCKS: u64 = 100_000;
/// Most blocks tracked at once while they propagate; further new hashes are not tracked (counted
/// as untracked) until some complete or expire.
pub const MAX_TRACKED_BLOCKS: usize = 10_000;
/// Announcements queued from the socket threads to the tracker (a reader whose send blocks
/// stamped its announcement before, so a full queue delays nothing it measures).
pub const EVENT_QUEUE_CAP: usize = 1024;
/// Read timeout of a socket thread: how often it checks whether the run is over.
pub const SOCKET_POLL: Duration = Duration::from_millis(100);
/// Largest WebSocket message accepted from the node (`new_head` messages are ~300 bytes).
pub const MAX_WS_MESSAGE_BYTES: usize = 64 * 1024;
/// Block size classes of the by-size table, in transactions (inclusive bounds).
pub const SIZE_BUCKETS: &[(usize, usize, &str)] =
    &[(0, 0, "0 tx"), (1, 499, "1-499 tx"), (500, 1_999, "500-1,999 tx"), (2_000, usize::MAX, "2,000+ tx")];
/// Raw messages published (and not counted) before the measured ones, after the raw network is up.
pub const RAW_WARMUP: usize = 3;
/// How long the raw network may take to connect and form its mesh.
pub const RAW_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `vision-node bench propagation`.
#[derive(Debug, Args)]
pub struct PropagationArgs {
    /// API URLs of the cluster's nodes (2 or more, all on this machine), comma-separated.
    #[arg(long, value_name = "URL,URL[,URL..]", value_delimiter = ',', required = true)]
    pub api: Vec<String>,
    /// Stop after this many blocks reached every node.
    #[arg(long, value_name = "N", default_value_t = 30, conflicts_with = "duration")]
    pub blocks: u64,
    /// Measure for this many seconds instead of a number of blocks.
    #[arg(long, value_name = "S")]
    pub duration: Option<u64>,
    /// Seconds a block may take to reach every node (else it is missed where it did not arrive),
    /// the longest wait for the next block before giving up, and the raw baseline's wait per
    /// message.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub timeout: u64,
    /// Skip the raw gossipsub baseline.
    #[arg(long)]
    pub no_raw: bool,
}

/// What a socket thread tells the tracker.
#[derive(Debug)]
enum WsEvent {
    /// The node confirmed the `new_heads` subscription.
    Subscribed { node: usize },
    /// The node announced a new tip.
    Head { node: usize, hash: Hash, tx_count: usize, at: Instant },
    /// The socket failed or the node closed it.
    Closed { node: usize, reason: String },
}

/// A block while it propagates.
#[derive(Debug, Clone)]
struct InFlight {
    tx_count: usize,
    origin: usize,
    first: Instant,
    /// Announcement time at each node.
    at: Vec<Option<Instant>>,
}

/// A block every node announced.
#[derive(Debug, Clone)]
struct Measured {
    tx_count: usize,
    origin: usize,
    /// Delay at each node (the origin's is zero).
    delays: Vec<Duration>,
}

/// Matches announcements of the same hash across nodes; memory stays within
/// [`MAX_TRACKED_BLOCKS`] in flight plus one entry per measured block.
#[derive(Debug)]
struct Tracker {
    nodes: usize,
    timeout: Duration,
    in_flight: HashMap<Hash, InFlight>,
    /// Hashes already measured or missed (announcements of them at other nodes are ignored).
    done: HashSet<Hash>,
    measured: Vec<Measured>,
    /// Per node: blocks it never announced within the timeout.
    missed_at: Vec<u64>,
    /// Blocks some node never announced.
    missed: u64,
    /// New hashes not tracked because [`MAX_TRACKED_BLOCKS`] were in flight.
    untracked: u64,
    /// Whether new hashes are still taken (false once the run's end is reached).
    open: bool,
}

impl Tracker {
    fn new(nodes: usize, timeout: Duration) -> Tracker {
        Tracker {
            nodes,
            timeout,
            in_flight: HashMap::new(),
            done: HashSet::new(),
            measured: Vec::new(),
            missed_at: vec![0; nodes],
            missed: 0,
            untracked: 0,
            open: true,
        }
    }

    /// Records that `node` announced `hash` at `at`; returns whether the block is new.
    fn head(&mut self, node: usize, hash: Hash, tx_count: usize, at: Instant) -> bool {
        if node >= self.nodes || self.done.contains(&hash) {
            return false;
        }
        if let Some(b) = self.in_flight.get_mut(&hash) {
            if b.at[node].is_none() {
                b.at[node] = Some(at);
            }
            if b.at.iter().all(Option::is_some)
                && let Some(b) = self.in_flight.remove(&hash)
            {
                let delays = b.at.iter().map(|t| t.map_or(Duration::ZERO, |t| t.saturating_duration_since(b.first)));
                self.measured.push(Measured { tx_count: b.tx_count, origin: b.origin, delays: delays.collect() });
                self.done.insert(hash);
            }
            return false;
        }
        if !self.open {
            return false;
        }
        if self.in_flight.len() >= MAX_TRACKED_BLOCKS {
            self.untracked += 1;
            return false;
        }
        let mut at_nodes = vec![None; self.nodes];
        at_nodes[node] = Some(at);
        if self.nodes == 1 {
            self.measured.push(Measured { tx_count, origin: node, delays: vec![Duration::ZERO] });
            self.done.insert(hash);
        } else {
            self.in_flight.insert(hash, InFlight { tx_count, origin: node, first: at, at: at_nodes });
        }
        true
    }

    /// Blocks first announced more than the timeout before `now` count as missed where they did
    /// not arrive.
    fn expire(&mut self, now: Instant) {
        let timeout = self.timeout;
        let expired: Vec<Hash> = self
            .in_flight
            .iter()
            .filter(|(_, b)| now.saturating_duration_since(b.first) > timeout)
            .map(|(h, _)| *h)
            .collect();
        for h in expired {
            if let Some(b) = self.in_flight.remove(&h) {
                self.missed += 1;
                for (n, t) in b.at.iter().enumerate() {
                    if t.is_none() {
                        self.missed_at[n] += 1;
                    }
                }
                self.done.insert(h);
            }
        }
    }
}

/// Encoded size of a block of `tx_count` transfers ([`vision_node::chain::types::Block::encoded_len`]:
/// header, `u32` count, then each transaction as `u32` length + bytes), which is what gossip
/// carries.
pub fn block_bytes(tx_count: usize) -> usize {
    HEADER_LEN + 4 + tx_count * (4 + TRANSFER_TX_LEN)
}

/// Summary of a set of delays in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    samples: usize,
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Stats {
    fn of(ms: impl IntoIterator<Item = f64>) -> Stats {
        let ms: Millis = ms.into_iter().collect();
        Stats {
            samples: ms.len() as usize,
            p50: ms.percentile(50.0),
            p99: ms.percentile(99.0),
            max: ms.max(),
            mean: ms.mean(),
        }
    }

    fn row(&self, name: &str) -> Vec<String> {
        vec![
            name.to_string(),
            format!("{:.2}", self.p50),
            format!("{:.2}", self.p99),
            format!("{:.2}", self.max),
            format!("{:.2}", self.mean),
            self.samples.to_string(),
        ]
    }
}

/// Runs `bench propagation`.
pub fn run(args: PropagationArgs) -> Result<(), BenchError> {
    let urls = ApiUrl::parse_list(&args.api)?;
    if urls.len() < 2 || urls.len() > MAX_NODES {
        return Err(BenchError::Usage(format!(
            "--api needs 2 to {MAX_NODES} node URLs, comma-separated (got {}): delays are measured between nodes",
            urls.len()
        )));
    }
    if let Some(u) = urls.iter().find(|u| !u.is_loopback()) {
        return Err(BenchError::Usage(format!(
            "--api {}: every node must be on this machine (loopback), since one clock times them all",
            u.text
        )));
    }
    if args.duration.is_none() && (args.blocks == 0 || args.blocks > MAX_BLOCKS) {
        return Err(BenchError::Usage(format!("--blocks must be 1..={MAX_BLOCKS}")));
    }
    if args.duration == Some(0) || args.timeout == 0 {
        return Err(BenchError::Usage("--duration and --timeout must be at least 1".into()));
    }
    let timeout = Duration::from_secs(args.timeout);

    // The cluster: reachable, one network, and its topology.
    let mut statuses = Vec::new();
    for u in &urls {
        statuses.push(fetch_status(&mut HttpConn::new(u))?);
    }
    if let Some((u, s)) = urls.iter().zip(&statuses).find(|(_, s)| s.genesis_hash != statuses[0].genesis_hash) {
        return Err(BenchError::Setup(format!(
            "{} runs genesis {} but {} runs {}: all --api nodes must be one network",
            u.text, s.genesis_hash, urls[0].text, statuses[0].genesis_hash
        )));
    }
    let ids: Vec<String> = urls
        .iter()
        .zip(&statuses)
        .map(|(u, s)| {
            s.peer_id.clone().ok_or_else(|| {
                BenchError::Setup(format!("{} runs without networking: nothing propagates to or from it", u.text))
            })
        })
        .collect::<Result<_, _>>()?;
    let mut peer_lists = Vec::new();
    for u in &urls {
        let peers: Vec<PeerInfo> = HttpConn::new(u).get_json("/v1/peers")?;
        peer_lists.push(peers.into_iter().map(|p| p.peer_id).collect::<Vec<_>>());
    }
    let (edges, outside) = topology(&ids, &peer_lists);
    if !connected(urls.len(), &edges) {
        return Err(BenchError::Setup(format!(
            "the nodes are not all connected to each other (links {edges:?} between --api indexes): \
             wait until every node has its peers"
        )));
    }
    eprintln!(
        "bench propagation: {} nodes at height {}, links {edges:?}{}; {}",
        urls.len(),
        statuses[0].height,
        if outside.iter().any(|n| *n > 0) { format!(" (peers outside --api: {outside:?})") } else { String::new() },
        match args.duration {
            Some(s) => format!("measuring for {s} s"),
            None => format!("measuring {} blocks", args.blocks),
        }
    );

    let tracker = watch_nodes(&urls, &args, timeout)?;
    let node_ms: Vec<f64> = tracker
        .measured
        .iter()
        .flat_map(|m| m.delays.iter().enumerate().filter(move |(i, _)| *i != m.origin).map(|(_, d)| ms(*d)))
        .collect();
    let node = Stats::of(node_ms);
    let mut origins = vec![0u64; urls.len()];
    for m in &tracker.measured {
        origins[m.origin] += 1;
    }
    let mut per_node: Vec<Vec<f64>> = vec![Vec::new(); urls.len()];
    for m in &tracker.measured {
        for (i, d) in m.delays.iter().enumerate().filter(|(i, _)| *i != m.origin) {
            per_node[i].push(ms(*d));
        }
    }
    let blocks = tracker.measured.len();

    // The raw baseline: the same sizes from the same origins over the same links.
    let raw = if args.no_raw {
        None
    } else {
        let sizes: Vec<(usize, usize)> = tracker.measured.iter().map(|m| (m.origin, block_bytes(m.tx_count))).collect();
        eprintln!("bench propagation: raw gossipsub baseline, {} messages over links {edges:?}", sizes.len());
        let topic = vision_p2p::gossip::Topics::new(&statuses[0].genesis_hash).blocks;
        Some(run_raw(urls.len(), topic, &edges, &sizes, timeout)?)
    };

    let mut table = Table::new(&["delay (ms)", "p50", "p99", "max", "mean", "samples"]);
    table.row(node.row("node (import at origin → import at peer)"));
    let raw_stats = raw.as_ref().map(|(d, _)| Stats::of(d.iter().map(|(_, ms)| *ms)));
    if let Some(r) = &raw_stats {
        table.row(r.row("raw gossipsub (publish → delivery)"));
        let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}", a / b) } else { "n/a".into() };
        table.row(vec![
            "node / raw".into(),
            ratio(node.p50, r.p50),
            ratio(node.p99, r.p99),
            ratio(node.max, r.max),
            ratio(node.mean, r.mean),
            String::new(),
        ]);
    }
    // Transactions per block: nearest-rank percentiles from an HDR histogram of the counts (exact
    // below 2048 transactions, within 0.1% above, never above the largest block).
    let mut txs = hdrhistogram::Histogram::<u64>::new(super::HISTOGRAM_SIGFIG).expect("3 significant figures");
    for m in &tracker.measured {
        txs.record(m.tx_count as u64).expect("an auto-resizing histogram takes any block size");
    }
    let tx_max = tracker.measured.iter().map(|m| m.tx_count).max().unwrap_or(0) as f64;
    let tx_at = |p: f64| (txs.value_at_quantile(p / 100.0) as f64).min(tx_max);
    let bytes = |tx: f64| block_bytes(tx as usize);
    let tx_p50 = tx_at(50.0);
    let mut by_size =
        Table::new(&["block size", "blocks", "node p50 ms", "node p99 ms", "raw p50 ms", "raw p99 ms", "node/raw p50"]);
    for &(lo, hi, name) in SIZE_BUCKETS {
        let in_bucket = |k: usize| (lo..=hi).contains(&tracker.measured[k].tx_count);
        let count = (0..blocks).filter(|k| in_bucket(*k)).count();
        if count == 0 {
            continue;
        }
        let n = Stats::of((0..blocks).filter(|k| in_bucket(*k)).flat_map(|k| {
            let m = &tracker.measured[k];
            m.delays.iter().enumerate().filter(move |(i, _)| *i != m.origin).map(|(_, d)| ms(*d))
        }));
        let r = raw.as_ref().map(|(d, _)| Stats::of(d.iter().filter(|(k, _)| in_bucket(*k)).map(|(_, v)| *v)));
        let cell = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        by_size.row(vec![
            name.to_string(),
            count.to_string(),
            format!("{:.2}", n.p50),
            format!("{:.2}", n.p99),
            cell(r.map(|r| r.p50)),
            cell(r.map(|r| r.p99)),
            cell(r.filter(|r| r.p50 > 0.0).map(|r| n.p50 / r.p50)),
        ]);
    }
    let mut by_node = Table::new(&["receiving node", "p50 ms", "p99 ms", "max ms", "samples", "origin of", "missed"]);
    for (i, d) in per_node.into_iter().enumerate() {
        let s = Stats::of(d);
        by_node.row(vec![
            format!("{i} ({})", urls[i].text),
            format!("{:.2}", s.p50),
            format!("{:.2}", s.p99),
            format!("{:.2}", s.max),
            s.samples.to_string(),
            origins[i].to_string(),
            tracker.missed_at[i].to_string(),
        ]);
    }

    println!(
        "machine: {}; {} nodes, links {edges:?}; {blocks} blocks reached every node, {} missed by some node{}",
        super::machine_description(),
        urls.len(),
        tracker.missed,
        if tracker.untracked > 0 { format!(", {} untracked", tracker.untracked) } else { String::new() }
    );
    println!(
        "block size: transactions p50 {tx_p50:.0}, p99 {:.0}, max {tx_max:.0}; bytes p50 {}, max {}",
        tx_at(99.0),
        bytes(tx_p50),
        bytes(tx_max)
    );
    println!("{}", table.render());
    println!();
    println!("{}", by_size.render());
    println!();
    println!("{}", by_node.render());
    let raw_part = match (&raw, &raw_stats) {
        (Some((_, raw_missed)), Some(r)) => format!(
            "raw_samples={} raw_missed={raw_missed} raw_p50_ms={:.2} raw_p99_ms={:.2} raw_max_ms={:.2} \
             ratio_p50={:.2} ratio_p99={:.2}",
            r.samples,
            r.p50,
            r.p99,
            r.max,
            if r.p50 > 0.0 { node.p50 / r.p50 } else { 0.0 },
            if r.p99 > 0.0 { node.p99 / r.p99 } else { 0.0 },
        ),
        _ => "raw_samples=0".into(),
    };
    println!(
        "RESULT nodes={} blocks={blocks} missed={} samples={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} \
         tx_p50={tx_p50:.0} tx_max={tx_max:.0} bytes_p50={} bytes_max={} {raw_part}",
        urls.len(),
        tracker.missed,
        node.samples,
        node.p50,
        node.p99,
        node.max,
        bytes(tx_p50),
        bytes(tx_max),
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Links between the `--api` nodes (pairs of indexes, smaller first) from each node's peer list,
/// and how many peers outside the list each node has.
fn topology(ids: &[String], peer_lists: &[Vec<String>]) -> (Vec<(usize, usize)>, Vec<usize>) {
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut edges = std::collections::BTreeSet::new();
    let mut outside = vec![0; ids.len()];
    for (i, peers) in peer_lists.iter().enumerate() {
        for p in peers {
            match index.get(p.as_str()) {
                Some(&j) if j != i => {
                    edges.insert((i.min(j), i.max(j)));
                }
                Some(_) => {}
                None => outside[i] += 1,
            }
        }
    }
    (edges.into_iter().collect(), outside)
}

/// Whether `edges` connect all of `0..n`.
fn connected(n: usize, edges: &[(usize, usize)]) -> bool {
    let mut seen = vec![false; n];
    let mut stack = vec![0];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        for &(a, b) in edges {
            if a == i && !seen[b] {
                stack.push(b);
            } else if b == i && !seen[a] {
                stack.push(a);
            }
        }
    }
    seen.iter().all(|s| *s)
}

/// Watches every node's `new_heads` until the run's end, then waits for the blocks in flight.
fn watch_nodes(urls: &[ApiUrl], args: &PropagationArgs, timeout: Duration) -> Result<Tracker, BenchError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = sync_channel(EVENT_QUEUE_CAP);
    let mut threads = Vec::new();
    for (node, url) in urls.iter().enumerate() {
        let socket = connect_ws(url)?;
        let (tx, stop) = (tx.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name(format!("ws-{node}"))
            .spawn(move || read_heads(node, socket, &tx, &stop))
            .map_err(|e| BenchError::Io(format!("cannot start a socket thread: {e}")))?;
        threads.push(handle);
    }
    drop(tx);
    let result = track(urls, &rx, args, timeout);
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    for t in threads {
        let _ = t.join();
    }
    result
}

/// The tracker loop: counts from the moment every socket is subscribed.
fn track(
    urls: &[ApiUrl],
    rx: &Receiver<WsEvent>,
    args: &PropagationArgs,
    timeout: Duration,
) -> Result<Tracker, BenchError> {
    let n = urls.len();
    let mut tracker = Tracker::new(n, timeout);
    let mut subscribed = vec![false; n];
    let connect_deadline = Instant::now() + timeout;
    while !subscribed.iter().all(|s| *s) {
        let left = connect_deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(WsEvent::Subscribed { node }) => subscribed[node] = true,
            Ok(WsEvent::Head { .. }) => {}
            Ok(WsEvent::Closed { node, reason }) => return Err(closed(&urls[node], &reason)),
            Err(_) => {
                let i = subscribed.iter().position(|s| !s).unwrap_or(0);
                return Err(BenchError::Protocol {
                    url: urls[i].text.clone(),
                    message: format!("no answer to the new_heads subscription within {} s", timeout.as_secs()),
                });
            }
        }
    }
    let start = Instant::now();
    let window_end = args.duration.map(|s| start + Duration::from_secs(s));
    let mut last_new = start;
    let mut closing_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        tracker.expire(now);
        if tracker.open {
            let enough = match window_end {
                Some(end) => now >= end,
                None => tracker.measured.len() as u64 >= args.blocks,
            };
            if enough {
                tracker.open = false;
                closing_at = Some(now);
            } else if now.saturating_duration_since(last_new) > timeout {
                if tracker.measured.is_empty() {
                    return Err(BenchError::Setup(format!(
                        "no block reached every node within {} s: is a node mining, and are they connected?",
                        timeout.as_secs()
                    )));
                }
                eprintln!("bench propagation: no new block for {} s; ending the run", timeout.as_secs());
                tracker.open = false;
                closing_at = Some(now);
            }
        }
        if let Some(t) = closing_at
            && (tracker.in_flight.is_empty() || now.saturating_duration_since(t) > timeout)
        {
            tracker.expire(now + timeout + Duration::from_millis(1));
            break;
        }
        match rx.recv_timeout(SOCKET_POLL) {
            Ok(WsEvent::Head { node, hash, tx_count, at }) => {
                let before = tracker.measured.len();
                if tracker.head(node, hash, tx_count, at) {
                    last_new = at;
                }
                if tracker.measured.len() > before && tracker.measured.len().is_multiple_of(10) {
                    eprintln!("bench propagation: {} blocks measured", tracker.measured.len());
                }
            }
            Ok(WsEvent::Subscribed { .. }) => {}
            Ok(WsEvent::Closed { node, reason }) => return Err(closed(&urls[node], &reason)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(BenchError::Io("every socket thread stopped".into()));
            }
        }
    }
    Ok(tracker)
}

fn closed(url: &ApiUrl, reason: &str) -> BenchError {
    BenchError::Unreachable { url: format!("{}/v1/ws", url.text), message: reason.to_string() }
}

type Socket = tungstenite::WebSocket<TcpStream>;

/// Opens `/v1/ws` on `url` and sends the `new_heads` subscription.
fn connect_ws(url: &ApiUrl) -> Result<Socket, BenchError> {
    let ws_url = format!("ws://{}/v1/ws", url.host);
    let unreachable = |message: String| BenchError::Unreachable { url: ws_url.clone(), message };
    let stream =
        TcpStream::connect_timeout(&url.addr, super::CONNECT_TIMEOUT).map_err(|e| unreachable(e.to_string()))?;
    stream.set_nodelay(true).map_err(|e| unreachable(e.to_string()))?;
    stream.set_read_timeout(Some(super::IO_TIMEOUT)).map_err(|e| unreachable(e.to_string()))?;
    stream.set_write_timeout(Some(super::IO_TIMEOUT)).map_err(|e| unreachable(e.to_string()))?;
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
    let (mut socket, _) = tungstenite::client::client_with_config(ws_url.as_str(), stream, Some(config))
        .map_err(|e| unreachable(format!("WebSocket handshake failed: {e}")))?;
    socket
        .send(Message::text(r#"{"subscribe": ["new_heads"]}"#))
        .map_err(|e| unreachable(format!("cannot subscribe: {e}")))?;
    socket.get_ref().set_read_timeout(Some(SOCKET_POLL)).map_err(|e| unreachable(e.to_string()))?;
    Ok(socket)
}

/// A socket thread: stamps every `new_head` and hands it to the tracker until `stop`.
fn read_heads(node: usize, mut socket: Socket, tx: &SyncSender<WsEvent>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let msg = match socket.read() {
            Ok(m) => m,
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) => {
                let _ = tx.send(WsEvent::Closed { node, reason: e.to_string() });
                return;
            }
        };
        let at = Instant::now();
        let Message::Text(text) = msg else {
            if let Message::Close(frame) = msg {
                let reason = frame.map_or_else(|| "closed by the node".into(), |f| format!("closed: {}", f.reason));
                let _ = tx.send(WsEvent::Closed { node, reason });
                return;
            }
            continue;
        };
        let event = match serde_json::from_str::<WsMessage>(text.as_str()) {
            Ok(WsMessage::NewHead { hash, tx_count, .. }) => WsEvent::Head { node, hash, tx_count, at },
            Ok(WsMessage::Subscribed { .. }) => WsEvent::Subscribed { node },
            Ok(WsMessage::Error { code, message }) => WsEvent::Closed { node, reason: format!("{code}: {message}") },
            Ok(_) => continue,
            Err(e) => WsEvent::Closed { node, reason: format!("undocumented message {text:?}: {e}") },
        };
        let last = matches!(event, WsEvent::Closed { .. });
        if tx.send(event).is_err() || last {
            return;
        }
    }
    let _ = socket.close(None);
    let _ = socket.flush();
}

/// Runs the raw baseline: `sizes` are (origin index, payload bytes) in publish order. Returns the
/// delivery delays in milliseconds, each with the index in `sizes` of its message, and the number
/// of (message, node) deliveries that timed out.
fn run_raw(
    nodes: usize,
    topic: libp2p::gossipsub::IdentTopic,
    edges: &[(usize, usize)],
    sizes: &[(usize, usize)],
    timeout: Duration,
) -> Result<(Vec<(usize, f64)>, u64), BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-raw")
        .build()
        .map_err(|e| BenchError::Io(format!("cannot start the async runtime: {e}")))?;
    // Port 0: the raw network reads back the ports it got before dialing.
    let any_port: libp2p::Multiaddr =
        "/ip4/127.0.0.1/tcp/0".parse().map_err(|e| BenchError::Io(format!("listen address: {e}")))?;
    let listen = vec![any_port; nodes];
    let cfg = RawNetConfig { transport: TransportKind::Tcp, links: None, listen, edges: edges.to_vec() };
    let result = rt.block_on(async {
        let net = RawNet::start_on(cfg, topic, RAW_READY_TIMEOUT).await?;
        let mut delays = Vec::with_capacity(sizes.len() * nodes.saturating_sub(1));
        let mut missed = 0u64;
        // Warm-up: the first block's size from its origin, not counted.
        let warmup = if sizes.is_empty() { 0 } else { RAW_WARMUP };
        let first = sizes.first().copied().unwrap_or_default();
        for (k, &(origin, bytes)) in std::iter::repeat_n(&first, warmup).chain(sizes).enumerate() {
            let got = net.propagate(origin, payload(k as u64, bytes), timeout).await;
            if k < warmup {
                continue;
            }
            for (_, d) in got.iter().enumerate().filter(|(i, _)| *i != origin) {
                match d {
                    Some(d) => delays.push((k - warmup, ms(*d))),
                    None => missed += 1,
                }
            }
        }
        net.shutdown().await;
        Ok::<_, BenchError>((delays, missed))
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    result
}

/// A distinct payload of `bytes` bytes (gossipsub ids are content hashes, so each must differ).
fn payload(k: u64, bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.max(8));
    let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    out.extend_from_slice(&k.to_le_bytes());
    while out.len() < bytes {
        // xorshift64: incompressible filler.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(bytes.max(8));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision_node::chain::types::{Address, Block, BlockHeader, Transaction, TxKind};

    fn h(b: u8) -> Hash {
        Hash([b; 32])
    }

    #[test]
    fn first_announcement_is_the_origin_and_delays_are_relative_to_it() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut t = Tracker::new(3, Duration::from_secs(1));
        assert!(t.head(1, h(1), 7, ms(100)));
        assert!(!t.head(0, h(1), 7, ms(130)));
        assert!(!t.head(0, h(1), 7, ms(500)), "a second announcement changes nothing");
        assert!(t.measured.is_empty());
        assert!(!t.head(2, h(1), 7, ms(110)));
        assert_eq!(t.measured.len(), 1);
        let m = &t.measured[0];
        assert_eq!((m.origin, m.tx_count), (1, 7));
        assert_eq!(m.delays, vec![Duration::from_millis(30), Duration::ZERO, Duration::from_millis(10)]);
        assert!(!t.head(1, h(1), 7, ms(900)), "a measured block is not new again");
        assert!(t.in_flight.is_empty());
    }

    #[test]
    fn blocks_not_everywhere_within_the_timeout_are_missed_there() {
        let t0 = Instant::now();
        let mut t = Tracker::new(3, Duration::from_secs(1));
        t.head(0, h(1), 0, t0);
        t.head(1, h(1), 0, t0 + Duration::from_millis(5));
        t.expire(t0 + Duration::from_millis(900));
        assert_eq!(t.missed, 0);
        t.expire(t0 + Duration::from_millis(1_100));
        assert_eq!((t.missed, t.missed_at.clone()), (1, vec![0, 0, 1]));
        assert!(!t.head(2, h(1), 0, t0 + Duration::from_secs(2)), "late announcements are ignored");
        assert!(t.measured.is_empty());
        t.open = false;
        assert!(!t.head(0, h(2), 0, t0), "no new blocks once closed");
        assert!(t.in_flight.is_empty());
    }

    #[test]
    fn tracking_is_capped() {
        let t0 = Instant::now();
        let mut t = Tracker::new(2, Duration::from_secs(1));
        for i in 0..MAX_TRACKED_BLOCKS as u64 + 5 {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&i.to_le_bytes());
            t.head(0, Hash(b), 0, t0);
        }
        assert_eq!((t.in_flight.len(), t.untracked), (MAX_TRACKED_BLOCKS, 5));
    }

    #[test]
    fn block_bytes_is_the_encoded_length() {
        let tx = Transaction {
            chain_id: 1,
            from: Address::default(),
            nonce: 0,
            fee: 1,
            kind: TxKind::Transfer { to: Address::default(), amount: 1 },
            signature: [0; 64],
        };
        let header = BlockHeader {
            version: 1,
            height: 1,
            parent: Hash::ZERO,
            timestamp_ms: 0,
            difficulty: 1,
            miner: Address::default(),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            nonce: 0,
        };
        for n in [0, 1, 1000] {
            let b = Block { header, transactions: vec![tx; n] };
            assert_eq!(block_bytes(n), b.encode().len());
        }
    }

    #[test]
    fn topology_from_peer_lists() {
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let lists = vec![vec!["b".to_string(), "x".to_string()], vec!["a".to_string()], vec!["b".to_string()]];
        let (edges, outside) = topology(&ids, &lists);
        assert_eq!(edges, vec![(0, 1), (1, 2)]);
        assert_eq!(outside, vec![1, 0, 0]);
        assert!(connected(3, &edges));
        assert!(!connected(3, &edges[..1]));
    }

    #[test]
    fn payloads_differ_and_have_the_size() {
        let (a, b) = (payload(0, 1000), payload(1, 1000));
        assert_eq!((a.len(), b.len()), (1000, 1000));
        assert_ne!(a, b);
        assert_eq!(payload(2, 3).len(), 8, "at least the counter");
    }
}
