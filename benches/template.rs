//! Block-template latency with and without the miner's template cache, under a full mempool.
//!
//! Setup (not timed): a genesis with [`SENDERS`] funded accounts on a redb file in a temp dir
//! (`Node::open_core`, default pool caps), and a full pool: [`SENDERS`] × [`NONCES`] =
//! `mempool::DEFAULT_MAX_TXS` (100,000) signed transfers, every sender paying one fee of its own on
//! all its nonces, admitted through `Core::submit_transactions` (stateless rules, signatures, pool),
//! the path the API and gossip take. A template holds at most `DEFAULT_MAX_BLOCK_TXS` (10,000) of them.
//!
//! - `template/cache_hit`: `core.templates().get(..)` with the tip and pool unchanged since the last
//!   call (what a miner thread gets when nothing happened since its last round): key, lock, clone.
//! - `template/cache_miss`: `core.templates().get(..)` alternating between two miner addresses, so
//!   every call misses and rebuilds inside the cache (what the miner gets after a new tip, or after a
//!   pool change once the template is older than `miner::TEMPLATE_REFRESH`).
//! - `template/build_template`: `miner::build_template`, the uncached function the cache calls on a
//!   miss: `Mempool::select` of the best 10,000 (fee order, nonce order per sender), then
//!   `miner::template_from`: execution against the tip state in redb, the state root and the tx root.
//! - `template/select` and `template/template_from`: its two stages alone (the selected transactions
//!   are cloned outside the timed part).
//! - `template/raw_select_execute`: the raw limit of the same work on plain data: the same 10,000
//!   picked from a `Vec` of the pooled transactions (`select_nth_unstable` + sort by fee, then age) and
//!   executed (nonce, balance, credit, fees) on a `HashMap` of the 10,000 accounts, no state root, no
//!   tx root. It picks exactly the transactions the pool selects (checked before timing).
//! - `template/raw_cached_clone`: the raw limit of a hit: a `parking_lot::Mutex<Template>` locked
//!   and the template cloned (an `Arc` of the transactions).
//! - `template/search_round`: one `miner::search` round of `ROUND_HASHES` nonces (no solution at
//!   this difficulty): the hashing a miner thread does between two looks at the tip and the pool.
//!
//! After criterion, a full run (no filter) measures hit, miss, uncached build and both raw limits
//! again round-robin ([`ROUNDS`] rounds, ratios within a round), plus a hit after the pool changed
//! within `TEMPLATE_REFRESH` of the build (one pooled transaction taken out and put back), and prints
//! the cut in latency the cache gives, each figure against its raw limit, and how many search rounds
//! one rebuild costs. Hits are timed 1,000 in a row (one is below the clock's resolution).

mod common;
use common::{CpuMeter, criterion_median, median, median_ratio};

use std::cmp::Reverse;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, SamplingMode};
use parking_lot::Mutex;
use rayon::prelude::*;
use vision_node::chain::genesis::Genesis;
use vision_node::chain::types::{Address, HEADER_LEN, MAX_BLOCK_BYTES, Transaction};
use vision_node::mempool::DEFAULT_MAX_TXS;
use vision_node::miner::{DEFAULT_MAX_BLOCK_TXS, ROUND_HASHES, Template, build_template, search, template_from};
use vision_node::node::{Core, Node, NodeConfig, TxSource};
use vision_node::testkit::{genesis_with_accounts, transfer};
use vision_node::util::splitmix64;

const SENDERS: usize = 10_000;
const NONCES: usize = 10;
const BALANCE: u128 = 1_000_000_000_000_000_000;
const SAMPLES: usize = 20;
const ROUNDS: usize = 15;
const MINER: Address = Address([0x4d; 32]);
const OTHER_MINER: Address = Address([0x4e; 32]);
const MAX_TXS: usize = DEFAULT_MAX_BLOCK_TXS;
const MAX_BYTES: usize = MAX_BLOCK_BYTES - HEADER_LEN - 4;

/// Sender `i`'s fee on all its transactions: 1 ..= 1,000, spread by SplitMix64.
fn fee_of(i: usize) -> u128 {
    1 + u128::from(splitmix64(i as u64) % 1_000)
}

/// The pool as plain data, for the raw limit.
struct RawPool {
    /// (fee, admission order, transaction), in admission order.
    txs: Vec<(u128, u64, Transaction)>,
    /// Balance and nonce of every account.
    accounts: HashMap<Address, (u128, u64)>,
    block_reward: u128,
}

impl RawPool {
    /// The best `MAX_TXS` by (fee, oldest first), executed on a diff over `accounts`.
    fn select_execute(&self) -> (Vec<Transaction>, u128) {
        let key = |(fee, seq, _): &(u128, u64, Transaction)| (Reverse(*fee), *seq);
        let mut picked: Vec<&(u128, u64, Transaction)> = self.txs.iter().collect();
        let k = MAX_TXS.min(picked.len());
        if k < picked.len() {
            picked.select_nth_unstable_by_key(k, |e| key(e));
            picked.truncate(k);
        }
        picked.sort_unstable_by_key(|e| key(e));
        let mut diff: HashMap<Address, (u128, u64)> = HashMap::with_capacity(2 * k + 1);
        let mut fees = 0u128;
        let mut out = Vec::with_capacity(k);
        for (_, _, tx) in picked {
            let (to, amount) = tx.transfer();
            let sender = *diff.entry(tx.from).or_insert_with(|| self.accounts[&tx.from]);
            let cost = tx.total_cost().expect("cost");
            assert!(sender.1 == tx.nonce && sender.0 >= cost, "raw execution: invalid transaction");
            diff.insert(tx.from, (sender.0 - cost, sender.1 + 1));
            let recipient = diff.entry(to).or_insert_with(|| self.accounts.get(&to).copied().unwrap_or((0, 0)));
            recipient.0 += amount;
            fees += tx.fee;
            out.push(*tx);
        }
        let miner = diff.entry(MINER).or_insert((0, 0));
        miner.0 += self.block_reward + fees;
        (out, fees)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    core: Core,
    selected: Vec<Transaction>,
    raw: RawPool,
    cached: Mutex<Template>,
}

impl Fixture {
    fn new() -> Self {
        let t = Instant::now();
        let (genesis, keys): (Genesis, _) = genesis_with_accounts(SENDERS as u32, BALANCE);
        let genesis_hash = genesis.hash();
        let dir = tempfile::Builder::new().prefix("vision-template-bench").tempdir().expect("temp dir");
        let core = Node::open_core(&NodeConfig {
            data_dir: Some(dir.path().to_path_buf()),
            genesis: genesis.clone(),
            ..NodeConfig::devnet()
        })
        .expect("open core");
        assert_eq!(core.mempool().limits().max_txs, DEFAULT_MAX_TXS);
        assert_eq!(SENDERS * NONCES, DEFAULT_MAX_TXS);
        // Sender-major order (each sender's nonces in a row), so every transaction is valid when offered.
        let txs: Vec<Transaction> = (0..SENDERS * NONCES)
            .into_par_iter()
            .map(|k| {
                let (i, nonce) = (k / NONCES, (k % NONCES) as u64);
                let to = keys[(i + 1 + 7919 * (nonce as usize + 1)) % SENDERS].address();
                transfer(&keys[i], to, 1 + u128::from(nonce), fee_of(i), nonce, genesis.chain_id, &genesis_hash)
            })
            .collect();
        for chunk in txs.chunks(10_000) {
            let results = core.submit_transactions(chunk, TxSource::Api);
            assert!(results.iter().all(Result::is_ok), "every transaction is admitted");
        }
        assert_eq!(core.mempool().len(), DEFAULT_MAX_TXS, "the pool is full");
        let raw = RawPool {
            txs: txs.iter().enumerate().map(|(seq, tx)| (tx.fee, seq as u64, *tx)).collect(),
            accounts: genesis.allocations.iter().map(|a| (a.address, (a.balance, 0))).collect(),
            block_reward: genesis.block_reward,
        };
        let selected = core.mempool().select(MAX_TXS, MAX_BYTES);
        assert_eq!(selected.len(), MAX_TXS);
        // The raw limit picks the very same transactions, in the same order.
        assert_eq!(raw.select_execute().0, selected, "raw selection differs from the pool's");
        let template = build_template(core.chain(), core.mempool(), MINER, MAX_TXS).expect("template");
        assert_eq!(template.transactions.len(), MAX_TXS);
        assert_eq!(core.mempool().len(), DEFAULT_MAX_TXS, "building dropped nothing");
        eprintln!(
            "setup: {} transactions from {SENDERS} senders signed and admitted in {:.1?}",
            core.mempool().len(),
            t.elapsed()
        );
        Fixture { _dir: dir, core, selected, raw, cached: Mutex::new(template) }
    }

    fn get(&self, miner: Address) -> Template {
        self.core.templates().get(self.core.chain(), self.core.mempool(), miner, MAX_TXS).expect("template")
    }

    /// Changes the pool's version without changing its contents: takes the cheapest sender's last
    /// transaction out and puts it back.
    fn touch_pool(&self) {
        let (_, _, tx) =
            *self.raw.txs.iter().filter(|(_, _, t)| t.nonce == NONCES as u64 - 1).min_by_key(|e| e.0).expect("tx");
        assert_eq!(self.core.mempool().remove_with_descendants(&tx.id()), 1);
        let account = self.core.chain().read().and_then(|r| r.account(&tx.from)).expect("account");
        self.core.mempool().insert(tx, account).expect("re-insert");
    }

    fn build(&self) -> Template {
        build_template(self.core.chain(), self.core.mempool(), MINER, MAX_TXS).expect("template")
    }
}

/// `secs` in ns, µs or ms, whichever reads best; "-" for NaN (not measured there).
fn duration(secs: f64) -> String {
    match secs {
        s if s.is_nan() => "-".into(),
        s if s < 1e-6 => format!("{:.1} ns", s * 1e9),
        s if s < 1e-3 => format!("{:.2} µs", s * 1e6),
        s => format!("{:.2} ms", s * 1e3),
    }
}

/// Times `f` once.
fn time<T>(f: impl FnOnce() -> T) -> f64 {
    let t = Instant::now();
    black_box(f());
    t.elapsed().as_secs_f64()
}

fn bench(c: &mut Criterion, f: &Fixture) {
    let mut g = c.benchmark_group("template");
    g.sample_size(SAMPLES).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    // Prime the cache for MINER.
    f.get(MINER);
    g.bench_function("cache_hit", |b| b.iter(|| f.get(black_box(MINER))));
    g.bench_function("raw_cached_clone", |b| b.iter(|| black_box(&f.cached).lock().clone()));
    g.sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(4));
    let mut flip = false;
    g.bench_function("cache_miss", |b| {
        b.iter(|| {
            flip = !flip;
            f.get(if flip { OTHER_MINER } else { MINER })
        })
    });
    g.bench_function("build_template", |b| b.iter(|| f.build()));
    g.bench_function("select", |b| b.iter(|| f.core.mempool().select(black_box(MAX_TXS), MAX_BYTES)));
    g.bench_function("template_from", |b| {
        b.iter_batched(
            || f.selected.clone(),
            |txs| template_from(f.core.chain(), txs, MINER, |_| panic!("a selected transaction failed")),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("raw_select_execute", |b| b.iter(|| black_box(&f.raw).select_execute()));
    g.bench_function("search_round", |b| {
        let mut header = f.cached.lock().header;
        header.difficulty = u64::MAX;
        b.iter(|| assert!(!search(black_box(&mut header), 0, ROUND_HASHES)))
    });
    g.finish();
    assert_eq!(f.core.mempool().len(), DEFAULT_MAX_TXS, "the pool is still full");
}

fn summary(f: &Fixture, cpu: &CpuMeter) {
    let rr_cpu = CpuMeter::start();
    let (mut hits, mut misses, mut builds, mut raws, mut clones) = (vec![], vec![], vec![], vec![], vec![]);
    let mut window_hits = vec![];
    // Leave OTHER_MINER's template in the slot: each round then misses exactly twice.
    f.get(OTHER_MINER);
    let (hits0, misses0) = f.core.templates().counts();
    for _ in 0..ROUNDS {
        f.get(MINER);
        // A hit is far below the clock's resolution alone: time 1,000 in a row.
        hits.push(time(|| (0..1_000).map(|_| f.get(MINER)).last()) / 1_000.0);
        clones.push(time(|| (0..1_000).map(|_| f.cached.lock().clone()).last()) / 1_000.0);
        // The pool changed since the build, but the template is younger than TEMPLATE_REFRESH.
        f.touch_pool();
        window_hits.push(time(|| (0..1_000).map(|_| f.get(MINER)).last()) / 1_000.0);
        misses.push(time(|| f.get(OTHER_MINER)));
        builds.push(time(|| f.build()));
        raws.push(time(|| f.raw.select_execute()));
    }
    let (hits1, misses1) = f.core.templates().counts();
    assert_eq!(f.core.mempool().len(), DEFAULT_MAX_TXS, "the pool is still full");
    let med = |name: &str| criterion_median("template", name).unwrap_or(f64::NAN);

    eprintln!();
    eprintln!(
        "== template summary: pool full ({} transactions from {SENDERS} senders), templates of {MAX_TXS} ==",
        f.core.mempool().len()
    );
    eprintln!("{:<52} {:>14} | {:>15}", "", "criterion med", "round-robin med");
    for (name, bench, rr) in [
        ("cache hit (TemplateCache::get, unchanged key)", "cache_hit", median(&hits)),
        ("cache hit, pool changed < TEMPLATE_REFRESH ago", "-", median(&window_hits)),
        ("raw limit of a hit (Mutex<Template> lock + clone)", "raw_cached_clone", median(&clones)),
        ("cache miss (TemplateCache::get, key changed)", "cache_miss", median(&misses)),
        ("uncached build (miner::build_template)", "build_template", median(&builds)),
        ("  of which Mempool::select", "select", f64::NAN),
        ("  of which miner::template_from", "template_from", f64::NAN),
        ("raw limit of a build (plain select + execute)", "raw_select_execute", median(&raws)),
        ("one search round (ROUND_HASHES nonces)", "search_round", f64::NAN),
    ] {
        eprintln!("{name:<52} {:>14} | {:>15}", duration(med(bench)), duration(rr));
    }
    eprintln!("round-robin ({ROUNDS} rounds), median of per-round ratios:");
    eprintln!("  latency cut by a hit vs an uncached build:   {:>8.4}%", 100.0 * (1.0 - median_ratio(&hits, &builds)));
    eprintln!("  latency cut by a hit vs a cache miss:        {:>8.4}%", 100.0 * (1.0 - median_ratio(&hits, &misses)));
    eprintln!("  uncached build is x times its raw limit:     {:>8.1}x", median_ratio(&builds, &raws));
    eprintln!("  cache hit is x times its raw limit:          {:>8.1}x", median_ratio(&hits, &clones));
    eprintln!("  a miss costs x search rounds:                {:>8.1}", med("cache_miss") / med("search_round"));
    eprintln!(
        "  cache counts in the round-robin: {} hits, {} misses (expected {} and {})",
        hits1 - hits0,
        misses1 - misses0,
        2_000 * ROUNDS,
        2 * ROUNDS
    );
    eprintln!("round-robin part: {}", rr_cpu.line());
    eprintln!("whole run:        {}", cpu.line());
}

fn main() {
    let cpu = CpuMeter::start();
    let f = Fixture::new();
    let mut c = Criterion::default().without_plots().configure_from_args();
    bench(&mut c, &f);
    c.final_summary();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--bench"] {
        summary(&f, &cpu);
    }
}
