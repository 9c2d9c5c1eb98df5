//! Block import throughput through the real path, against the raw signature-verification limit.
//!
//! Setup (not timed): a genesis with 10,000 funded accounts and a chain of [`BLOCKS`] blocks of
//! [`TXS_PER_BLOCK`] transfers each (distinct senders within a block, nonces tracked per sender),
//! built with `testkit::next_block` on an in-memory chain (`common::build_blocks`, shared with `sync.rs`).
//!
//! - `import/redb_file_20x1000`: imports those blocks, in order, into a **fresh redb file** in a temp
//!   directory (`Store::open`) through `Chain::import`: stateless header and body checks, every
//!   signature through the node's parallel verifier, state execution, state-root check, undo data
//!   and indexes, and one redb commit (fsync) per block. Opening the store (which writes the genesis
//!   allocations) is outside the timed part. Throughput is in transactions.
//! - `import/check_body_20x1000`: the verify stage alone (`consensus::check_body`, what
//!   `ImportTimings::verify` times) on the same blocks, back to back.
//! - `import/raw_dalek_batch_all_cores`: the **raw limit**: `ed25519_dalek::verify_batch` of the same
//!   signatures over rayon chunks of `n / (2 * threads)` on all cores, with messages, decompressed
//!   keys and signatures prepared outside the timed section. No node imports faster than it can
//!   verify the signatures, and this is the fastest the library verifies them.
//!
//! After criterion, a full run (no filter) repeats import, verify stage and raw limit round-robin
//! (ratios taken within a round, so load from other processes hits both sides alike) and prints
//! import tx/s, its percentage of the raw limit, and where import time goes (verify / apply /
//! commit, from `ImportTimings`). It then counts heap allocations (`common::CountingAlloc`, all
//! threads) in one more, untimed import and in the verify stage alone, per block and per transaction.
//! See `docs/performance.md`.

mod common;
use common::{CountingAlloc, Raw, build_blocks, count_allocs, criterion_median, median};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use vision_node::chain::Chain;
use vision_node::chain::consensus::check_body;
use vision_node::chain::genesis::Genesis;
use vision_node::chain::import::{DEFAULT_MAX_REORG_DEPTH, ImportOutcome};
use vision_node::chain::types::{Block, Transaction};
use vision_node::state::Store;
use vision_node::testkit::genesis_with_accounts;
use vision_node::verify::Verifier;

const ACCOUNTS: u32 = 10_000;
const BLOCKS: usize = 20;
const TXS_PER_BLOCK: usize = 1_000;
const TXS: usize = BLOCKS * TXS_PER_BLOCK;
const SAMPLES: usize = 10;
const ROUNDS: usize = 7;

/// Wall time of one import run and the sums of its `ImportTimings`.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    total: Duration,
    verify: Duration,
    apply: Duration,
    commit: Duration,
}

struct Fixture {
    genesis: Genesis,
    blocks: Vec<Block>,
    raw: Raw,
}

impl Fixture {
    fn new() -> Self {
        let t = Instant::now();
        let (genesis, keys) = genesis_with_accounts(ACCOUNTS, 1_000_000_000_000_000_000);
        let blocks = build_blocks(&genesis, &keys, BLOCKS, TXS_PER_BLOCK);
        eprintln!("setup: {BLOCKS} blocks x {TXS_PER_BLOCK} transfers built in {:.1?}", t.elapsed());
        let all: Vec<&Transaction> = blocks.iter().flat_map(|b| b.transactions.iter()).collect();
        let raw = Raw::new(&all, &genesis.hash());
        assert!(raw.all_cores());
        Fixture { genesis, blocks, raw }
    }

    /// Imports the blocks into a fresh redb file. Only the imports are timed, not opening the store.
    fn import_fresh(&self) -> Run {
        let dir = tempfile::Builder::new().prefix("vision-import-bench").tempdir().expect("temp dir");
        let store = Store::open(dir.path(), &self.genesis).expect("open store");
        let chain =
            Chain::new(store, self.genesis.clone(), Verifier::default(), DEFAULT_MAX_REORG_DEPTH).expect("chain");
        let mut run = Run::default();
        let start = Instant::now();
        for block in &self.blocks {
            let (outcome, t) = chain.import(black_box(block), |_| {}).expect("import");
            assert!(matches!(outcome, ImportOutcome::NewTip { .. }));
            run.verify += t.verify;
            run.apply += t.apply;
            run.commit += t.commit;
        }
        run.total = start.elapsed();
        assert_eq!(chain.tip().header.height, self.blocks.len() as u64);
        run
    }

    /// The verify stage of import alone, on every block.
    fn check_bodies(&self) {
        let params = self.genesis.params();
        let v = Verifier::default();
        for block in &self.blocks {
            check_body(&params, black_box(block), &v, None).expect("valid body");
        }
    }
}

fn import(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("import");
    g.sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(TXS as u64));
    g.bench_function(format!("redb_file_{BLOCKS}x{TXS_PER_BLOCK}"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| f.import_fresh().total).sum())
    });
    g.measurement_time(Duration::from_secs(4));
    g.bench_function(format!("check_body_{BLOCKS}x{TXS_PER_BLOCK}"), |b| b.iter(|| f.check_bodies()));
    g.bench_function("raw_dalek_batch_all_cores", |b| b.iter(|| assert!(black_box(&f.raw).all_cores())));
    g.finish();
}

fn summary(f: &Fixture) {
    // Round-robin: each round runs import, verify stage and raw limit back to back.
    let (mut runs, mut bodies, mut raws) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        runs.push(f.import_fresh());
        let t = Instant::now();
        f.check_bodies();
        bodies.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        assert!(f.raw.all_cores());
        raws.push(t.elapsed().as_secs_f64());
    }
    let totals: Vec<f64> = runs.iter().map(|r| r.total.as_secs_f64()).collect();
    let ratio = |a: &[f64], b: &[f64]| median(&a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>());
    let tps = |secs: f64| TXS as f64 / secs;
    let ms = |secs: f64| secs * 1e3;

    eprintln!();
    eprintln!(
        "== import summary: {BLOCKS} blocks x {TXS_PER_BLOCK} transfers into a fresh redb file, {} rayon threads ==",
        rayon::current_num_threads()
    );
    eprintln!("{:<36} {:>14} {:>10} | {:>14} {:>10}", "", "criterion med", "tx/s", "round-robin med", "tx/s");
    for (name, bench, rr) in [
        ("import (Chain::import, 20 blocks)", format!("redb_file_{BLOCKS}x{TXS_PER_BLOCK}"), median(&totals)),
        ("verify stage alone (check_body)", format!("check_body_{BLOCKS}x{TXS_PER_BLOCK}"), median(&bodies)),
        ("raw dalek batch, all cores", "raw_dalek_batch_all_cores".to_string(), median(&raws)),
    ] {
        let c = criterion_median("import", &bench);
        eprintln!(
            "{name:<36} {:>11.1} ms {:>10.0} | {:>12.1} ms {:>10.0}",
            c.map_or(f64::NAN, ms),
            c.map_or(f64::NAN, tps),
            ms(rr),
            tps(rr)
        );
    }
    eprintln!("round-robin ({ROUNDS} rounds), median of per-round ratios:");
    eprintln!("  import tx/s as % of raw signature limit:       {:>5.1}%", 100.0 * ratio(&raws, &totals));
    eprintln!("  verify stage (check_body) as % of raw limit:   {:>5.1}%", 100.0 * ratio(&raws, &bodies));

    let sum = |pick: fn(&Run) -> Duration| runs.iter().map(|r| pick(r).as_secs_f64()).sum::<f64>();
    let (total, verify, apply, commit) = (sum(|r| r.total), sum(|r| r.verify), sum(|r| r.apply), sum(|r| r.commit));
    let other = total - verify - apply - commit;
    let per_block = |x: f64| ms(x) / (ROUNDS * BLOCKS) as f64;
    let pct = |x: f64| 100.0 * x / total;
    eprintln!("where import time goes (ImportTimings over the round-robin imports, mean per block):");
    eprintln!("  verify (stateless body checks + signatures): {:>6.2} ms  {:>5.1}%", per_block(verify), pct(verify));
    eprintln!("  apply (execute, state root, writes):         {:>6.2} ms  {:>5.1}%", per_block(apply), pct(apply));
    eprintln!("  commit (redb commit, fsync):                 {:>6.2} ms  {:>5.1}%", per_block(commit), pct(commit));
    eprintln!("  other (header checks, known-block lookup):   {:>6.2} ms  {:>5.1}%", per_block(other), pct(other));
    eprintln!("  verify inside import vs check_body alone:    {:>6.2}x", (verify / ROUNDS as f64) / median(&bodies));

    // Heap allocations, counted in untimed runs (the temp dir and store opening included in the
    // import's count are a few hundred, against millions).
    let (_, import_n, import_bytes) = count_allocs(|| f.import_fresh());
    let (_, verify_n, verify_bytes) = count_allocs(|| f.check_bodies());
    let per = |n: u64, d: usize| n as f64 / d as f64;
    eprintln!("heap allocations (all threads, one untimed run each):");
    for (name, n, bytes) in [
        ("import (Chain::import)", import_n, import_bytes),
        ("verify stage alone (check_body)", verify_n, verify_bytes),
    ] {
        eprintln!(
            "  {name:<34} {:>9.0} per block {:>7.1} per tx {:>9.0} bytes per tx",
            per(n, BLOCKS),
            per(n, TXS),
            per(bytes, TXS)
        );
    }
}

fn main() {
    let f = Fixture::new();
    // HTML plots triple the run time; the summary printed at the end is what docs/performance.md uses.
    let mut c = Criterion::default().without_plots().configure_from_args();
    import(&mut c, &f);
    c.final_summary();
    // The round-robin summary only on a plain `cargo bench --bench import`: not under `cargo test --benches`
    // (no `--bench` argument), `--list`, `--profile-time` or a filter, so that quick checks stay quick.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--bench"] {
        summary(&f);
    }
}
