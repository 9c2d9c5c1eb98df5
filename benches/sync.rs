//! Sync throughput: a fresh node catches up with a peer over loopback TCP through the real sync
//! protocol, against importing the same blocks directly and against the raw loopback TCP limit.
//!
//! Setup (not timed): a genesis with 10,000 funded accounts and a chain of [`BLOCKS`] blocks of
//! [`TXS_PER_BLOCK`] transfers (distinct senders within a block; `common::build_chain`, the generator
//! `import.rs` uses), built directly on node A's core (`Node::open_core` on a temp data dir, each block
//! through `Core::import_block`), so the chain ends up in A's redb file. That core is then dropped,
//! closing the database.
//!
//! - `sync/tcp_200x1000`: one iteration starts node A on that data dir and a fresh node B (a new temp
//!   data dir, so writing B's genesis with its 10,000 accounts is timed) with `Node::builder()`, both on
//!   the TCP transport (noise, yamux) listening on `/ip4/127.0.0.1/tcp/0`, no miner, no API; B
//!   bootstraps to A's listen address. The clock stops when B's canonical tip is A's tip (polled every
//!   millisecond). In between everything is the node's own code: dial, identify, the status exchange,
//!   `BlocksByRange` requests pipelined by B's sync driver (`MAX_INFLIGHT`, cut to the response byte
//!   cap), A serving them from its store, and B's block worker importing each batch through
//!   `Core::import_sync_batch` (full verification, execution, one commit per block, fsync'd at the end of
//!   the batch). After the clock stops both nodes shut down and their databases close (not timed).
//! - `sync/import_200x1000`: the block-import figure: the same blocks, in order, through
//!   `Core::import_block` into a fresh redb file (`Node::open_core` on a new temp dir, outside the timed
//!   part): one block at a time, every signature verified in its block, one fsync'd commit per block,
//!   as `import.rs` times `Chain::import`.
//! - `sync/import_batch_200x1000`: the same blocks through `Core::import_sync_batch`, the function B's block
//!   worker calls on each sync batch (all signatures of the batch verified first as one parallel batch,
//!   commits deferred but the batch's last), in the batches sync imports them: requests of
//!   `MAX_BLOCKS_PER_REQUEST` blocks, each answer cut to the response byte cap as `serve_blocks` cuts
//!   it, the rest asked for again (47 + 17 blocks per 64 here). Sync minus this is the network's cost.
//! - `sync/raw_tcp_200x1000`: the raw limit of the transport: the same blocks' encodings (the bytes of
//!   the `Blocks` responses) written through one plain `std::net` loopback TCP connection and read by
//!   another thread (connection set-up included; no noise, no yamux, no decoding).
//!
//! After criterion, a full run (no filter) repeats the four round-robin ([`ROUNDS`] rounds, ratios
//! taken within a round) and prints tx/s and blocks/s for each, sync as a percentage of block import
//! (the goal is at least 80%) and of batch import, where the sync time goes (both nodes
//! started, B connected, first block imported, done; the node's own import histograms for B and both
//! direct imports; block import's time per block by quarter of the chain), and the CPU of this process
//! and of other processes during the run. See `docs/performance.md`.

mod common;
use common::{CpuMeter, ImportSums, build_chain, criterion_median, median, median_ratio};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use tokio::runtime::Runtime;
use vision_node::chain::ImportOutcome;
use vision_node::chain::genesis::Genesis;
use vision_node::chain::types::{Block, Hash};
use vision_node::node::{BlockSource, Core, Node, NodeConfig};
use vision_node::p2p::sync::{MAX_BLOCKS_PER_REQUEST, MAX_RESPONSE_BYTES};
use vision_node::p2p::{NetworkConfig, TransportKind};
use vision_node::testkit::genesis_with_accounts;

const ACCOUNTS: u32 = 10_000;
const BLOCKS: usize = 200;
const TXS_PER_BLOCK: usize = 1_000;
const TXS: usize = BLOCKS * TXS_PER_BLOCK;
const SAMPLES: usize = 10;
const ROUNDS: usize = 5;
/// A sync that has not finished by then is a failure, not a slow result.
const SYNC_DEADLINE: Duration = Duration::from_secs(600);

/// One timed sync, with the moments (from the start of the clock) its phases ended.
#[derive(Debug, Clone, Copy)]
struct SyncRun {
    /// A and B started (B's genesis written).
    started: Duration,
    /// B connected to A.
    connected: Duration,
    /// B imported its first block.
    first_block: Duration,
    /// B's tip is A's tip.
    total: Duration,
    /// B's own import histograms over the whole sync.
    sums: ImportSums,
}

struct Fixture {
    genesis: Genesis,
    blocks: Vec<Block>,
    tip: Hash,
    /// Node A's data dir, holding the whole chain.
    dir_a: tempfile::TempDir,
    /// The blocks' encodings, back to back (the raw TCP payload).
    bytes: Vec<u8>,
    /// The blocks as sync's batches.
    batches: Vec<Vec<Block>>,
    rt: Runtime,
}

fn config(dir: &Path, genesis: &Genesis, network: Option<NetworkConfig>) -> NodeConfig {
    NodeConfig { data_dir: Some(dir.to_path_buf()), genesis: genesis.clone(), network, ..NodeConfig::devnet() }
}

fn tcp_net(bootstrap: Option<Multiaddr>) -> NetworkConfig {
    let mut net = NetworkConfig::new(libp2p::identity::Keypair::generate_ed25519());
    net.transport = TransportKind::Tcp;
    net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("multiaddr")];
    net.bootstrap = bootstrap.into_iter().collect();
    net.dial_known_peers = false;
    net
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().expect("temp dir")
}

/// Waits until every other holder of `core` (network tasks, block worker) has let go, then drops it,
/// which closes its database.
async fn close(core: Arc<Core>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Arc::strong_count(&core) > 1 {
        assert!(Instant::now() < deadline, "a node's core is still held 30 s after shutdown");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Fixture {
    fn new() -> Self {
        let t = Instant::now();
        let (genesis, keys) = genesis_with_accounts(ACCOUNTS, 1_000_000_000_000_000_000);
        let dir_a = temp_dir("vision-sync-bench-a");
        let blocks = {
            let core = Node::open_core(&config(dir_a.path(), &genesis, None)).expect("open A");
            build_chain(core.chain(), &keys, BLOCKS, TXS_PER_BLOCK, |block| {
                let outcome = core.import_block(block, BlockSource::Miner).expect("import into A");
                assert!(matches!(outcome, ImportOutcome::NewTip { .. }));
            })
        };
        let tip = blocks.last().expect("blocks").hash();
        let bytes: Vec<u8> = blocks.iter().flat_map(Block::encode).collect();
        eprintln!(
            "setup: {BLOCKS} blocks x {TXS_PER_BLOCK} transfers built and written to node A in {:.1?} ({:.1} MB encoded)",
            t.elapsed(),
            bytes.len() as f64 / 1e6
        );
        let batches = sync_batches(&blocks);
        eprintln!(
            "sync imports them in {} batches of {:?} blocks",
            batches.len(),
            batches.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        Fixture { genesis, blocks, tip, dir_a, bytes, batches, rt }
    }

    /// Starts A on the full data dir and a fresh B, times B's catch-up, shuts both down.
    fn sync_once(&self) -> SyncRun {
        self.rt.block_on(async {
            let dir_b = temp_dir("vision-sync-bench-b");
            let start = Instant::now();
            let a = Node::builder()
                .config(config(self.dir_a.path(), &self.genesis, Some(tcp_net(None))))
                .start()
                .await
                .expect("start A");
            let a_info = a.network().expect("A is networked").info().clone();
            let a_addr = loop {
                if let Some(addr) = a_info.listen_addrs().into_iter().next() {
                    break addr.with(Protocol::P2p(a_info.peer_id));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            assert_eq!(a.core().chain().tip().hash, self.tip, "A holds the chain");
            let b = Node::builder()
                .config(config(dir_b.path(), &self.genesis, Some(tcp_net(Some(a_addr)))))
                .start()
                .await
                .expect("start B");
            let started = start.elapsed();
            let b_info = b.network().expect("B is networked").info().clone();
            let (mut connected, mut first_block) = (None, None);
            loop {
                let tip = b.core().chain().tip();
                if connected.is_none() && b_info.peer_count() > 0 {
                    connected = Some(start.elapsed());
                }
                if first_block.is_none() && tip.header.height > 0 {
                    first_block = Some(start.elapsed());
                }
                if tip.hash == self.tip {
                    break;
                }
                assert!(start.elapsed() < SYNC_DEADLINE, "B stuck at height {} of {BLOCKS}", tip.header.height);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let total = start.elapsed();
            let sums = ImportSums::from_metrics(&b.metrics_text());
            let cores = [a.core().clone(), b.core().clone()];
            a.shutdown().await;
            b.shutdown().await;
            for core in cores {
                close(core).await;
            }
            SyncRun {
                started,
                connected: connected.unwrap_or(total),
                first_block: first_block.unwrap_or(total),
                total,
                sums,
            }
        })
    }

    /// Imports the blocks into a fresh redb file through `Core::import_block`; opening is not timed.
    /// Also returns each block's import time in seconds.
    fn import_once(&self) -> (Duration, ImportSums, Vec<f64>) {
        let dir = temp_dir("vision-sync-bench-import");
        let core = Arc::new(Node::open_core(&config(dir.path(), &self.genesis, None)).expect("open"));
        let registry = vision_node::metrics::registry(&core);
        let mut each = Vec::with_capacity(self.blocks.len());
        let start = Instant::now();
        for block in &self.blocks {
            let t = Instant::now();
            let outcome = core.import_block(std::hint::black_box(block), BlockSource::Network).expect("import");
            each.push(t.elapsed().as_secs_f64());
            assert!(matches!(outcome, ImportOutcome::NewTip { .. }));
        }
        let elapsed = start.elapsed();
        assert_eq!(core.chain().tip().hash, self.tip);
        (elapsed, ImportSums::from_metrics(&vision_node::metrics::encode(&registry)), each)
    }

    /// Imports sync's batches into a fresh redb file through `Core::import_sync_batch`; opening and
    /// cloning the batches are not timed.
    fn import_batch_once(&self) -> (Duration, ImportSums) {
        let dir = temp_dir("vision-sync-bench-batch");
        let core = Arc::new(Node::open_core(&config(dir.path(), &self.genesis, None)).expect("open"));
        let registry = vision_node::metrics::registry(&core);
        let batches = self.batches.clone();
        let start = Instant::now();
        for batch in batches {
            let n = batch.len();
            let tried = core.import_sync_batch(std::hint::black_box(batch), BlockSource::Network);
            assert!(tried.len() == n && tried.iter().all(|(_, r)| r.is_ok()), "batch import failed");
        }
        let elapsed = start.elapsed();
        assert_eq!(core.chain().tip().hash, self.tip);
        (elapsed, ImportSums::from_metrics(&vision_node::metrics::encode(&registry)))
    }

    /// The raw limit of loopback TCP on the same bytes.
    fn raw_tcp(&self) -> Duration {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let start = Instant::now();
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 256 * 1024];
            let mut n = 0;
            loop {
                match s.read(&mut buf).expect("read") {
                    0 => break n,
                    k => n += k,
                }
            }
        });
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(&self.bytes).expect("write");
        drop(s);
        let n = reader.join().expect("reader");
        let elapsed = start.elapsed();
        assert_eq!(n, self.bytes.len());
        elapsed
    }
}

/// The batches sync imports `blocks` in: `BlocksByRange` requests of [`MAX_BLOCKS_PER_REQUEST`], each
/// answer cut to the response byte budget (as `p2p::service::serve_blocks` cuts it) and the rest asked
/// for again; the importer takes each answer as one batch.
fn sync_batches(blocks: &[Block]) -> Vec<Vec<Block>> {
    let budget = MAX_RESPONSE_BYTES - 5;
    let mut out = Vec::new();
    for request in blocks.chunks(MAX_BLOCKS_PER_REQUEST as usize) {
        let mut rest = request;
        while !rest.is_empty() {
            let mut used = 0;
            let n = rest
                .iter()
                .take_while(|b| {
                    used += b.encoded_len() + 4;
                    used <= budget
                })
                .count()
                .max(1);
            out.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
    }
    out
}

fn bench(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("sync");
    // Flat sampling, one iteration per sample: each iteration is seconds long.
    g.sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(TXS as u64));
    g.bench_function(format!("tcp_{BLOCKS}x{TXS_PER_BLOCK}"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| f.sync_once().total).sum())
    });
    g.bench_function(format!("import_{BLOCKS}x{TXS_PER_BLOCK}"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| f.import_once().0).sum())
    });
    g.bench_function(format!("import_batch_{BLOCKS}x{TXS_PER_BLOCK}"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| f.import_batch_once().0).sum())
    });
    g.measurement_time(Duration::from_secs(3));
    g.bench_function(format!("raw_tcp_{BLOCKS}x{TXS_PER_BLOCK}"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| f.raw_tcp()).sum())
    });
    g.finish();
}

fn summary(f: &Fixture, cpu: &CpuMeter) {
    let rr_cpu = CpuMeter::start();
    let (mut syncs, mut imports, mut batched, mut raws) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        syncs.push(f.sync_once());
        imports.push(f.import_once());
        batched.push(f.import_batch_once());
        raws.push(f.raw_tcp().as_secs_f64());
    }
    let secs = |pick: fn(&SyncRun) -> Duration| -> Vec<f64> { syncs.iter().map(|r| pick(r).as_secs_f64()).collect() };
    let totals = secs(|r| r.total);
    let import_secs: Vec<f64> = imports.iter().map(|(d, _, _)| d.as_secs_f64()).collect();
    let batch_secs: Vec<f64> = batched.iter().map(|(d, _)| d.as_secs_f64()).collect();
    let ms = |s: f64| s * 1e3;
    let tps = |s: f64| TXS as f64 / s;
    let bps = |s: f64| BLOCKS as f64 / s;

    eprintln!();
    eprintln!(
        "== sync summary: {BLOCKS} blocks x {TXS_PER_BLOCK} transfers ({:.1} MB), fresh node B from node A over loopback TCP ==",
        f.bytes.len() as f64 / 1e6
    );
    eprintln!(
        "{:<44} {:>13} {:>9} {:>9} | {:>15} {:>9} {:>9}",
        "", "criterion med", "tx/s", "blocks/s", "round-robin med", "tx/s", "blocks/s"
    );
    for (name, bench, rr) in [
        ("sync: start A + fresh B until tips equal", format!("tcp_{BLOCKS}x{TXS_PER_BLOCK}"), median(&totals)),
        ("block import: Core::import_block", format!("import_{BLOCKS}x{TXS_PER_BLOCK}"), median(&import_secs)),
        (
            "batch import: Core::import_sync_batch",
            format!("import_batch_{BLOCKS}x{TXS_PER_BLOCK}"),
            median(&batch_secs),
        ),
        ("raw loopback TCP of the same bytes", format!("raw_tcp_{BLOCKS}x{TXS_PER_BLOCK}"), median(&raws)),
    ] {
        let c = criterion_median("sync", &bench).unwrap_or(f64::NAN);
        eprintln!(
            "{name:<44} {:>10.1} ms {:>9.0} {:>9.1} | {:>12.1} ms {:>9.0} {:>9.1}",
            ms(c),
            tps(c),
            bps(c),
            ms(rr),
            tps(rr),
            bps(rr)
        );
    }
    let after_connect: Vec<f64> = syncs.iter().map(|r| (r.total - r.connected).as_secs_f64()).collect();
    eprintln!("round-robin ({ROUNDS} rounds), median of per-round ratios:");
    for (what, num, den) in [
        ("sync tx/s as % of block import (goal: >= 80%)", &import_secs, &totals),
        ("  same, sync timed from B's connection only", &import_secs, &after_connect),
        ("sync tx/s as % of batch import", &batch_secs, &totals),
        ("  same, sync timed from B's connection only", &batch_secs, &after_connect),
        ("batch import as % of block import", &import_secs, &batch_secs),
    ] {
        eprintln!("  {what:<48} {:>7.1}%", 100.0 * median_ratio(num, den));
    }
    eprintln!("  {:<48} {:>7.2}%", "sync tx/s as % of raw loopback TCP", 100.0 * median_ratio(&raws, &totals));

    let phase = |a: fn(&SyncRun) -> Duration, b: fn(&SyncRun) -> Duration| -> f64 {
        median(&syncs.iter().map(|r| (b(r).saturating_sub(a(r))).as_secs_f64()).collect::<Vec<_>>())
    };
    eprintln!("where the sync time goes (medians over the round-robin syncs):");
    for (what, secs) in [
        ("start A and B (B writes its genesis)", median(&secs(|r| r.started))),
        ("then until B is connected to A", phase(|r| r.started, |r| r.connected)),
        ("then until B imported its first block", phase(|r| r.connected, |r| r.first_block)),
        ("then until B's tip is A's tip", phase(|r| r.first_block, |r| r.total)),
    ] {
        eprintln!("  {what:<42} {:>9.1} ms", ms(secs));
    }
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    let per_block = |s: f64| ms(s) / BLOCKS as f64;
    let sync_sums = |pick: fn(&ImportSums) -> f64| mean(syncs.iter().map(|r| pick(&r.sums)).collect());
    let block_sums = |pick: fn(&ImportSums) -> f64| mean(imports.iter().map(|(_, s, _)| pick(s)).collect());
    let batch_sums = |pick: fn(&ImportSums) -> f64| mean(batched.iter().map(|(_, s)| pick(s)).collect());
    eprintln!("ms per block, from the node's histograms (means over the rounds):");
    eprintln!("  {:<44} {:>11} {:>12} {:>12}", "", "B in sync", "block import", "batch import");
    for (name, pick) in [
        ("Core::import_block_with, whole", (|s: &ImportSums| s.import) as fn(&ImportSums) -> f64),
        ("  verify (signatures left after preverify)", |s| s.verify),
        ("  apply (execute, state root, writes)", |s| s.apply),
        ("  commit (redb; fsync unless deferred)", |s| s.commit),
    ] {
        eprintln!(
            "  {name:<44} {:>11.2} {:>12.2} {:>12.2}",
            per_block(sync_sums(pick)),
            per_block(block_sums(pick)),
            per_block(batch_sums(pick))
        );
    }
    eprintln!(
        "  {:<44} {:>11.2} {:>12.2} {:>12.2}",
        "wall time outside it (preverify; for B also",
        per_block(mean(after_connect.clone()) - sync_sums(|s| s.import)),
        per_block(mean(import_secs.clone()) - block_sums(|s| s.import)),
        per_block(mean(batch_secs.clone()) - batch_sums(|s| s.import))
    );
    eprintln!("  {:<44}", "  waiting for blocks; B from its connection)");
    // Does a block cost more as the chain grows? Block import, by quarter of the chain.
    let quarter = BLOCKS / 4;
    let by_quarter: Vec<String> = (0..4)
        .map(|q| {
            let per_round: Vec<f64> =
                imports.iter().map(|(_, _, each)| mean(each[q * quarter..(q + 1) * quarter].to_vec())).collect();
            format!("{:.1}", ms(median(&per_round)))
        })
        .collect();
    eprintln!("block import, ms per block by quarter of the chain (medians over rounds): {}", by_quarter.join(" / "));
    eprintln!("round-robin part: {}", rr_cpu.line());
    eprintln!("whole run:        {}", cpu.line());
}

fn main() {
    let cpu = CpuMeter::start();
    let f = Fixture::new();
    let mut c = Criterion::default().without_plots().configure_from_args();
    bench(&mut c, &f);
    c.final_summary();
    // The round-robin summary only on a plain `cargo bench --bench sync` (see import.rs).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--bench"] {
        summary(&f, &cpu);
    }
}
