//! Signature verification throughput: the node's verifier against the naive baseline and the raw limit.
//!
//! Input: 10,000 signed transfers from 10,000 distinct keys, generated once before anything is timed.
//!
//! - `verify_10k/sequential_one_by_one`: [`vision_node::verify::verify_tx`] on each transaction on one
//!   thread (the naive baseline a node without batching would run).
//! - `verify_10k/node_parallel_verifier`: `Verifier::default().verify_txs`, the path block import takes
//!   (cofactored batch equation, chunks on rayon, canonical-encoding and small-order checks included).
//! - `verify_10k/raw_dalek_batch_all_cores`: the **raw limit**: `ed25519_dalek::verify_batch` over
//!   rayon chunks of `n / (2 * threads)` on all cores, with messages, decompressed verifying keys and
//!   signatures prepared outside the timed section. It does less than the node must (no small-order
//!   or canonical-`y` checks, keys already decompressed, cofactorless), so the node can only approach it.
//! - `verify_10k/raw_dalek_batch_all_cores_keys_from_bytes`: the raw limit on the node's own input:
//!   the same batches, but each `VerifyingKey` is decompressed from the transaction's 32 bytes inside
//!   the timed section, as the node must (a transaction carries its key compressed). Still no
//!   small-order or canonical-`y` checks, still cofactorless.
//! - `verify_10k/raw_dalek_batch_one_core`: the same raw batch as one call on one thread, for reference.
//!
//! `threshold_sweep/{sequential,parallel}/n` (n = 1..256) compares one-by-one verification with the
//! always-parallel verifier (`Verifier::new(1)`); the crossover justifies `DEFAULT_PARALLEL_THRESHOLD`.
//! `min_chunk_sweep/n{64,256}/c` splits 64 or 256 signatures into chunks of `c` (as the verifier does,
//! with the public `prepare` + `check_batch`, one rayon task per chunk): small chunks spread the work
//! over more cores, large chunks amortise each batch's shared doublings; `MIN_CHUNK` is the balance.
//!
//! After criterion, a full run (no filter) measures every comparison again **round-robin**: each round
//! runs all variants of a comparison back to back and ratios are taken within a round, so load from
//! other processes on a shared machine hits both sides of a ratio alike. In the sweeps each variant
//! then starts with the rayon workers asleep (as block import does, after applying the previous
//! block), while criterion's back-to-back iterations keep them awake; both are worth reading. The
//! summary printed at the end (criterion medians, then round-robin medians of ratios) is what
//! `docs/performance.md` and ADR 004 quote.

mod common;
use common::criterion_median;

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use rayon::prelude::*;
use vision_node::chain::types::{Address, Hash, Transaction};
use vision_node::testkit::{TEST_CHAIN_ID, test_key, transfer};
use vision_node::verify::{self, DEFAULT_PARALLEL_THRESHOLD, MIN_CHUNK, Path, Verifier};

const N: usize = 10_000;
const SAMPLES: usize = 10;
const SWEEP: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const CHUNK_SWEEP: [usize; 2] = [64, 256];
const CHUNKS: [usize; 6] = [8, 16, 32, 64, 128, 256];
/// The genesis hash the transactions are signed for (any network will do).
const G: Hash = Hash([0x42; 32]);

/// Transactions and the raw-batch inputs, built once.
struct Inputs {
    txs: Vec<Transaction>,
    raw: Raw,
}

fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let txs: Vec<Transaction> = (0..N as u32)
            .into_par_iter()
            .map(|i| transfer(&test_key(i), Address([0x42; 32]), 1 + u128::from(i), 1, 0, TEST_CHAIN_ID, &G))
            .collect();
        let raw = Raw::new(&txs);
        // Every path accepts the honest signatures before anything is timed.
        assert!(txs.iter().all(|t| verify::verify_tx(t, &G).is_ok()));
        assert_eq!(Verifier::default().verify_txs(&txs, &G), Ok(Path::Parallel));
        assert!(raw.all_cores() && raw.all_cores_keys_from_bytes() && raw.one_core());
        Inputs { txs, raw }
    })
}

/// Inputs of the raw dalek batch, prepared outside the timed section.
struct Raw {
    msgs: Vec<Vec<u8>>,
    sigs: Vec<ed25519_dalek::Signature>,
    keys: Vec<ed25519_dalek::VerifyingKey>,
}

impl Raw {
    fn new(txs: &[Transaction]) -> Self {
        Raw {
            msgs: txs.iter().map(|t| t.signing_bytes(&G)).collect(),
            sigs: txs.iter().map(|t| ed25519_dalek::Signature::from_bytes(&t.signature)).collect(),
            keys: txs
                .iter()
                .map(|t| ed25519_dalek::VerifyingKey::from_bytes(t.from.as_bytes()).expect("valid key"))
                .collect(),
        }
    }

    fn batch(&self, lo: usize, hi: usize) -> bool {
        let msgs: Vec<&[u8]> = self.msgs[lo..hi].iter().map(Vec::as_slice).collect();
        ed25519_dalek::verify_batch(&msgs, &self.sigs[lo..hi], &self.keys[lo..hi]).is_ok()
    }

    /// [`Raw::batch`] with the keys decompressed from their bytes first, inside the timing.
    fn batch_keys_from_bytes(&self, lo: usize, hi: usize) -> bool {
        let keys: Option<Vec<ed25519_dalek::VerifyingKey>> = self.keys[lo..hi]
            .iter()
            .map(|k| ed25519_dalek::VerifyingKey::from_bytes(black_box(k.as_bytes())).ok())
            .collect();
        let Some(keys) = keys else { return false };
        let msgs: Vec<&[u8]> = self.msgs[lo..hi].iter().map(Vec::as_slice).collect();
        ed25519_dalek::verify_batch(&msgs, &self.sigs[lo..hi], &keys).is_ok()
    }

    /// One batch per chunk of `n / (2 * threads)`, on all rayon threads.
    fn all_cores(&self) -> bool {
        self.chunked_on_all_cores(Raw::batch)
    }

    /// [`Raw::all_cores`], keys decompressed inside the timing.
    fn all_cores_keys_from_bytes(&self) -> bool {
        self.chunked_on_all_cores(Raw::batch_keys_from_bytes)
    }

    fn chunked_on_all_cores(&self, batch: fn(&Raw, usize, usize) -> bool) -> bool {
        let n = self.msgs.len();
        let chunk = n.div_ceil(2 * rayon::current_num_threads()).max(1);
        (0..n.div_ceil(chunk)).into_par_iter().all(|c| batch(self, c * chunk, ((c + 1) * chunk).min(n)))
    }

    /// All signatures as one batch on the calling thread.
    fn one_core(&self) -> bool {
        self.batch(0, self.msgs.len())
    }
}

fn sequential(txs: &[Transaction]) {
    for tx in txs {
        verify::verify_tx(black_box(tx), &G).unwrap();
    }
}

fn node(v: Verifier, txs: &[Transaction]) {
    assert!(v.verify_txs(black_box(txs), &G).is_ok());
}

/// What `Verifier::verify_txs` does on the parallel path, with the chunk size as a parameter.
fn chunked(txs: &[Transaction], chunk: usize) {
    let ok = txs.par_chunks(chunk).all(|c| {
        let prepared: Vec<verify::Prepared> =
            c.iter().map(|t| verify::prepare(t.from.as_bytes(), &t.signing_bytes(&G), &t.signature).unwrap()).collect();
        verify::check_batch(&prepared)
    });
    assert!(ok);
}

fn verify_10k(c: &mut Criterion) {
    let Inputs { txs, raw } = inputs();
    let mut g = c.benchmark_group("verify_10k");
    g.sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(N as u64));
    g.bench_function("sequential_one_by_one", |b| b.iter(|| sequential(txs)));
    g.bench_function("node_parallel_verifier", |b| b.iter(|| node(Verifier::default(), txs)));
    g.bench_function("raw_dalek_batch_all_cores", |b| b.iter(|| assert!(black_box(raw).all_cores())));
    g.bench_function("raw_dalek_batch_all_cores_keys_from_bytes", |b| {
        b.iter(|| assert!(black_box(raw).all_cores_keys_from_bytes()))
    });
    g.bench_function("raw_dalek_batch_one_core", |b| b.iter(|| assert!(black_box(raw).one_core())));
    g.finish();
}

fn threshold_sweep(c: &mut Criterion) {
    let txs = &inputs().txs;
    let mut g = c.benchmark_group("threshold_sweep");
    g.sample_size(SAMPLES).warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_secs(1));
    for n in SWEEP {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("sequential", n), &txs[..n], |b, txs| b.iter(|| sequential(txs)));
        g.bench_with_input(BenchmarkId::new("parallel", n), &txs[..n], |b, txs| b.iter(|| node(Verifier::new(1), txs)));
    }
    g.finish();
}

fn min_chunk_sweep(c: &mut Criterion) {
    let txs = &inputs().txs;
    let mut g = c.benchmark_group("min_chunk_sweep");
    g.sample_size(SAMPLES).warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_secs(1));
    for n in CHUNK_SWEEP {
        g.throughput(Throughput::Elements(n as u64));
        for chunk in CHUNKS.into_iter().filter(|c| *c <= n) {
            g.bench_with_input(BenchmarkId::new(format!("n{n}"), chunk), &txs[..n], |b, txs| {
                b.iter(|| chunked(txs, chunk))
            });
        }
    }
    g.finish();
}

/// One variant of a round-robin comparison.
type Job<'a> = Box<dyn Fn() + 'a>;

/// Runs every variant once per round, each repeated until it has run for at least `min_time`, and
/// returns the per-iteration times: `[variant][round]`.
fn round_robin(variants: &[Job<'_>], rounds: usize, min_time: Duration) -> Vec<Vec<f64>> {
    let iters: Vec<u32> = variants
        .iter()
        .map(|f| {
            let t = Instant::now();
            f();
            let once = t.elapsed().max(Duration::from_nanos(1));
            (min_time.as_secs_f64() / once.as_secs_f64()).ceil().max(1.0) as u32
        })
        .collect();
    let mut out = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (i, f) in variants.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..iters[i] {
                f();
            }
            out[i].push(t.elapsed().as_secs_f64() / f64::from(iters[i]));
        }
    }
    out
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Median over rounds of `a[r] / b[r]`.
fn ratio(a: &[f64], b: &[f64]) -> f64 {
    median(&a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>())
}

fn summary() {
    let Inputs { txs, raw } = inputs();
    let threads = rayon::current_num_threads();
    let us = |s: f64| s * 1e6;
    let ms = |s: f64| s * 1e3;
    let tps = |s: f64| N as f64 / s;

    let names = [
        "sequential_one_by_one",
        "node_parallel_verifier",
        "raw_dalek_batch_all_cores",
        "raw_dalek_batch_one_core",
        "raw_dalek_batch_all_cores_keys_from_bytes",
    ];
    let jobs: [Job<'_>; 5] = [
        Box::new(|| sequential(txs)),
        Box::new(|| node(Verifier::default(), txs)),
        Box::new(|| assert!(raw.all_cores())),
        Box::new(|| assert!(raw.one_core())),
        Box::new(|| assert!(raw.all_cores_keys_from_bytes())),
    ];
    let r = round_robin(&jobs, 7, Duration::ZERO);
    eprintln!();
    eprintln!("== verify summary: {N} signatures from distinct keys, {threads} rayon threads ==");
    eprintln!(
        "{:<42} {:>14} {:>10} | {:>12} {:>10} {:>10}",
        "path", "criterion med", "sig/s", "round-robin", "med ms", "min ms"
    );
    for (i, name) in names.iter().enumerate() {
        let c = criterion_median("verify_10k", name);
        eprintln!(
            "{name:<42} {:>11.2} ms {:>10.0} | {:>12} {:>10.2} {:>10.2}",
            c.map_or(f64::NAN, ms),
            c.map_or(f64::NAN, tps),
            "",
            ms(median(&r[i])),
            ms(min(&r[i]))
        );
    }
    eprintln!("round-robin ({} rounds), median of per-round ratios:", r[0].len());
    eprintln!("  speedup node parallel vs sequential one-by-one: {:.2}x", ratio(&r[0], &r[1]));
    eprintln!("  node parallel as % of raw limit (all cores):    {:.1}%", 100.0 * ratio(&r[2], &r[1]));
    eprintln!("  raw all cores vs raw one core:                  {:.2}x", ratio(&r[3], &r[2]));
    eprintln!("  node parallel as % of raw, keys from bytes:     {:.1}%", 100.0 * ratio(&r[4], &r[1]));
    eprintln!("  raw keys from bytes as % of raw limit:          {:.1}%", 100.0 * ratio(&r[2], &r[4]));

    // Variants 2i and 2i + 1: one by one and always parallel on SWEEP[i] signatures.
    let jobs: Vec<Job<'_>> = SWEEP
        .iter()
        .flat_map(|&n| {
            let t = &txs[..n];
            [Box::new(move || sequential(t)) as Job<'_>, Box::new(move || node(Verifier::new(1), t))]
        })
        .collect();
    let r = round_robin(&jobs, 31, Duration::from_millis(1));
    eprintln!();
    eprintln!(
        "== threshold sweep: sequential vs always-parallel (DEFAULT_PARALLEL_THRESHOLD = {DEFAULT_PARALLEL_THRESHOLD}, MIN_CHUNK = {MIN_CHUNK}) =="
    );
    eprintln!("round-robin, {} rounds; times in us (median), seq/par = median of per-round ratios", r[0].len());
    eprintln!(
        "{:>5} {:>12} {:>12} {:>8} {:>12} {:>12}",
        "n", "sequential", "parallel", "seq/par", "seq us/sig", "par us/sig"
    );
    for (i, n) in SWEEP.iter().enumerate() {
        let (s, p) = (&r[2 * i], &r[2 * i + 1]);
        eprintln!(
            "{n:>5} {:>12.1} {:>12.1} {:>8.2} {:>12.2} {:>12.2}",
            us(median(s)),
            us(median(p)),
            ratio(s, p),
            us(median(s)) / *n as f64,
            us(median(p)) / *n as f64
        );
    }

    let cases: Vec<(usize, usize)> =
        CHUNK_SWEEP.iter().flat_map(|&n| CHUNKS.iter().filter(move |&&c| c <= n).map(move |&c| (n, c))).collect();
    let jobs: Vec<Job<'_>> = cases.iter().map(|&(n, c)| Box::new(move || chunked(&txs[..n], c)) as Job<'_>).collect();
    let r = round_robin(&jobs, 31, Duration::from_millis(2));
    eprintln!();
    eprintln!("== chunk sweep: n signatures in chunks of c, one rayon task per chunk, {threads} threads ==");
    eprintln!("round-robin, {} rounds; vs best = median of per-round ratios to the fastest c for that n", r[0].len());
    eprintln!("{:>5} {:>5} {:>7} {:>10} {:>10} {:>8}", "n", "c", "chunks", "med us", "us/sig", "vs best");
    for n in CHUNK_SWEEP {
        let idx: Vec<usize> = (0..cases.len()).filter(|&i| cases[i].0 == n).collect();
        let best = *idx.iter().min_by(|&&a, &&b| median(&r[a]).total_cmp(&median(&r[b]))).unwrap();
        for i in idx {
            let c = cases[i].1;
            eprintln!(
                "{n:>5} {c:>5} {:>7} {:>10.1} {:>10.2} {:>8.2}",
                n.div_ceil(c),
                us(median(&r[i])),
                us(median(&r[i])) / n as f64,
                ratio(&r[i], &r[best])
            );
        }
    }
}

criterion_group! {
    name = benches;
    // HTML plots triple the run time; the summary printed at the end is what docs/performance.md uses.
    config = Criterion::default().without_plots();
    targets = verify_10k, threshold_sweep, min_chunk_sweep
}

fn main() {
    benches();
    Criterion::default().without_plots().configure_from_args().final_summary();
    // The round-robin summary only on a plain `cargo bench --bench verify`: not under `cargo test --benches`
    // (no `--bench` argument), `--list`, `--profile-time` or a filter, so that quick checks stay quick.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--bench"] {
        summary();
    }
}
