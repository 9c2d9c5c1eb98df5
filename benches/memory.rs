//! Memory of the node's core with a full mempool and after a flood of 1,000,000 transactions, and
//! the admission throughput during the flood against the raw signature-verification limit.
//!
//! Not a criterion benchmark (what it measures is a process's resident memory, once, in order); a
//! `harness = false` bench so that it builds with the others and runs with
//! `cargo bench --bench memory`. In one fresh process:
//!
//! 1. `start`: VmRSS and VmHWM of the bench process (from `/proc/self/status`) before anything.
//! 2. `core opened`: a genesis funding [`POOL_SENDERS`] + [`FLOOD_SENDERS`] accounts written to a redb
//!    file in a temp dir (`Node::open_core`, default pool caps); the keys are not kept (each sender's key
//!    is derived again when its transactions are signed).
//! 3. `pool full`: [`POOL_SENDERS`] × [`NONCES`] = `mempool::DEFAULT_MAX_TXS` (100,000) transfers
//!    admitted through `Core::submit_transactions`, the path of the API and gossip (stateless rules,
//!    signatures through the parallel verifier and the signature cache, pool insertion), sender fees
//!    1 ..= 1,000.
//! 4. `after flood` (and `flood, first 25/50/75%` on the way): [`FLOOD`] (1,000,000) more transfers
//!    through the same path, in batches of [`CHUNK`]: [`FLOOD_SENDERS`] × [`NONCES`], sender `j`
//!    paying `1,001 + j` on all its nonces, so every one outbids the cheapest pooled transaction and
//!    enters, evicting it: the pool stays at its cap while 1,000,000 transactions pass through it.
//!    VmHWM is reset (`/proc/self/clear_refs` = 5) before the flood, so its rows show the flood's peak.
//!
//! After rows 3 and 4 the bench calls glibc's `malloc_trim(0)` and reads again (`same, malloc_trim(0)`):
//! the difference is free memory the allocator keeps; the node never calls it, so the first reading is
//! what a node's RSS shows. The flood is measured from the trimmed full-pool reading.
//!
//! Transactions are signed [`CHUNK`] at a time just before they are submitted and dropped after, so
//! the bench never holds more than one chunk besides what the node keeps. Each row also gives the
//! pool's length and bytes (`Mempool::stats`), the signature cache's entries, and the raw size of the
//! pooled transactions (`len × size_of::<Transaction>()`), the floor any pool of them needs.
//!
//! Admission throughput: each flood chunk is timed through `submit_transactions`, then the same chunk
//! through the raw limit (`ed25519_dalek::verify_batch` on all cores with keys decompressed outside
//! the timed part, `common::Raw`); the per-chunk ratio's median is printed.
//!
//! Without the `--bench` argument (`cargo test --benches`) it runs at 1/100 of the sizes, as a check.

mod common;
use common::{CpuMeter, Raw, median, median_ratio};

use std::time::Instant;

use rayon::prelude::*;
use vision_node::chain::genesis::{Allocation, Genesis};
use vision_node::chain::types::{Address, Transaction};
use vision_node::mempool::DEFAULT_MAX_TXS;
use vision_node::node::{Core, Node, NodeConfig, TxSource};
use vision_node::testkit::{TEST_CHAIN_ID, genesis_with_accounts, test_key, transfer};
use vision_node::util::splitmix64;

const NONCES: usize = 10;
const POOL_SENDERS: usize = DEFAULT_MAX_TXS / NONCES;
const FLOOD: usize = 1_000_000;
const FLOOD_SENDERS: usize = FLOOD / NONCES;
const CHUNK: usize = 10_000;
const BALANCE: u128 = 1_000_000_000_000_000_000;

/// Sizes of one run (full, or 1/100 as a check).
#[derive(Clone, Copy)]
struct Sizes {
    pool_senders: usize,
    flood_senders: usize,
    chunk: usize,
}

/// VmRSS and VmHWM of this process, in MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// Hands the heap memory glibc's malloc keeps free back to the kernel (`malloc_trim(0)`), so that the
/// next reading shows the memory still in use rather than what the allocator retains; false where
/// there is no glibc.
fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only releases free memory of glibc's own heaps; it takes no pointers.
        unsafe { malloc_trim(0) };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` value 5).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// [`NONCES`] transfers from each of `senders` (test keys), each sender's nonces in a row, paying
/// `fee(sender)`, to an address outside the genesis.
fn sign(
    senders: std::ops::Range<usize>,
    fee: impl Fn(usize) -> u128 + Sync,
    genesis_hash: &vision_node::chain::types::Hash,
) -> Vec<Transaction> {
    senders
        .into_par_iter()
        .flat_map_iter(|i| {
            let key = test_key(i as u32);
            let to = Address([0x42; 32]);
            let fee = fee(i);
            (0..NONCES as u64).map(move |n| transfer(&key, to, 1 + u128::from(n), fee, n, TEST_CHAIN_ID, genesis_hash))
        })
        .collect()
}

struct Row {
    phase: &'static str,
    rss: (f64, f64),
    len: usize,
    bytes: usize,
    sig_cache: usize,
    evicted: u64,
}

fn row(phase: &'static str, core: Option<&Core>) -> Row {
    let rss = rss();
    let (len, bytes, evicted, sig_cache) = core.map_or((0, 0, 0, 0), |c| {
        let s = c.mempool().stats();
        (s.len, s.bytes, s.evicted, c.chain().sig_cache_len())
    });
    Row { phase, rss, len, bytes, sig_cache, evicted }
}

fn main() {
    let full = std::env::args().skip(1).collect::<Vec<_>>() == ["--bench"];
    let sizes = if full {
        Sizes { pool_senders: POOL_SENDERS, flood_senders: FLOOD_SENDERS, chunk: CHUNK }
    } else {
        Sizes { pool_senders: POOL_SENDERS / 100, flood_senders: FLOOD_SENDERS / 100, chunk: CHUNK / 100 }
    };
    let cpu = CpuMeter::start();
    let mut rows = vec![row("start", None)];

    // Genesis: pool senders 0.., flood senders after them.
    let t = Instant::now();
    let accounts = sizes.pool_senders + sizes.flood_senders;
    let addresses: Vec<Address> = (0..accounts as u32).into_par_iter().map(|i| test_key(i).address()).collect();
    let (template, _) = genesis_with_accounts(0, 0);
    let genesis = Genesis {
        allocations: addresses.into_iter().map(|address| Allocation { address, balance: BALANCE }).collect(),
        ..template
    };
    let dir = tempfile::Builder::new().prefix("vision-memory-bench").tempdir().expect("temp dir");
    let core = Node::open_core(&NodeConfig {
        data_dir: Some(dir.path().to_path_buf()),
        genesis: genesis.clone(),
        ..NodeConfig::devnet()
    })
    .expect("open core");
    let genesis_hash = genesis.hash();
    drop(genesis);
    let max_txs = core.mempool().limits().max_txs;
    eprintln!("setup: genesis of {accounts} accounts written in {:.1?}", t.elapsed());
    rows.push(row("core opened, pool empty", Some(&core)));

    // Fill the pool.
    let t = Instant::now();
    let pool_fee = |i: usize| 1 + u128::from(splitmix64(i as u64) % 1_000);
    for start in (0..sizes.pool_senders).step_by(sizes.chunk / NONCES) {
        let txs = sign(start..(start + sizes.chunk / NONCES).min(sizes.pool_senders), pool_fee, &genesis_hash);
        let results = core.submit_transactions(&txs, TxSource::Api);
        assert!(results.iter().all(Result::is_ok), "every pool transaction is admitted");
    }
    eprintln!("pool: {} transactions admitted in {:.1?}", core.mempool().len(), t.elapsed());
    if full {
        assert_eq!(core.mempool().len(), max_txs, "the pool is full");
    }
    rows.push(row("pool full", Some(&core)));
    let trimmed = trim();
    rows.push(row("  same, malloc_trim(0)", Some(&core)));

    // The flood.
    let peak_reset = reset_peak();
    let t = Instant::now();
    let flood_fee = |i: usize| 1_001 + (i - sizes.pool_senders) as u128;
    let (mut node_secs, mut raw_secs, mut rejected) = (Vec::new(), Vec::new(), 0usize);
    let first = sizes.pool_senders;
    let last = sizes.pool_senders + sizes.flood_senders;
    for start in (first..last).step_by(sizes.chunk / NONCES) {
        let txs = sign(start..(start + sizes.chunk / NONCES).min(last), flood_fee, &genesis_hash);
        let t = Instant::now();
        let results = core.submit_transactions(&txs, TxSource::Network);
        node_secs.push(t.elapsed().as_secs_f64());
        rejected += results.iter().filter(|r| r.is_err()).count();
        let refs: Vec<&Transaction> = txs.iter().collect();
        let raw = Raw::new(&refs, &genesis_hash);
        let t = Instant::now();
        assert!(raw.all_cores());
        raw_secs.push(t.elapsed().as_secs_f64());
        let done = (start + sizes.chunk / NONCES - first) * NONCES;
        for (quarter, phase) in [(1, "flood, first 25%"), (2, "flood, first 50%"), (3, "flood, first 75%")] {
            if done == quarter * (last - first) * NONCES / 4 {
                rows.push(row(phase, Some(&core)));
            }
        }
    }
    let flood_secs = t.elapsed().as_secs_f64();
    let flood = sizes.flood_senders * NONCES;
    assert!(core.mempool().len() <= max_txs);
    rows.push(row("after flood", Some(&core)));
    trim();
    rows.push(row("  same, malloc_trim(0)", Some(&core)));

    eprintln!();
    eprintln!(
        "== memory summary: pool cap {max_txs} transactions, flood of {flood} through Core::submit_transactions =="
    );
    eprintln!(
        "{:<26} {:>10} {:>10} {:>9} {:>11} {:>11} {:>10} {:>10}",
        "phase", "VmRSS MiB", "VmHWM MiB", "pool txs", "pool MiB", "raw MiB", "sig cache", "evicted"
    );
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    for r in &rows {
        eprintln!(
            "{:<26} {:>10.1} {:>10.1} {:>9} {:>11.1} {:>11.1} {:>10} {:>10}",
            r.phase,
            r.rss.0,
            r.rss.1,
            r.len,
            mib(r.bytes),
            mib(r.len * std::mem::size_of::<Transaction>()),
            r.sig_cache,
            r.evicted
        );
    }
    let find = |phase: &str| rows.iter().find(|r| r.phase == phase).expect("row");
    let (opened, pool) = (find("core opened, pool empty"), find("pool full"));
    let (after, trimmed_rows) = (find("after flood"), rows.iter().filter(|r| r.phase.contains("malloc_trim")));
    let trimmed_rows: Vec<&Row> = trimmed_rows.collect();
    let (pool_trimmed, after_trimmed) = (trimmed_rows[0], trimmed_rows[1]);
    eprintln!(
        "(VmHWM reset before the flood: {peak_reset}; 'pool MiB' = encoded bytes, 'raw MiB' = len × {} B)",
        std::mem::size_of::<Transaction>()
    );
    eprintln!(
        "RSS growth for a full pool: {:.1} MiB = {:.0} B per pooled transaction ({:.1}x its in-memory size, {:.1}x its encoding)",
        pool.rss.0 - opened.rss.0,
        (pool.rss.0 - opened.rss.0) * 1024.0 * 1024.0 / pool.len.max(1) as f64,
        (pool.rss.0 - opened.rss.0) / mib(pool.len * std::mem::size_of::<Transaction>()).max(1e-9),
        (pool.rss.0 - opened.rss.0) / mib(pool.bytes).max(1e-9)
    );
    eprintln!(
        "RSS after the flood vs full pool: {:+.1} MiB; flood peak (VmHWM) {:+.1} MiB above the full-pool RSS",
        after.rss.0 - pool_trimmed.rss.0,
        after.rss.1 - pool_trimmed.rss.0
    );
    eprintln!(
        "in use after malloc_trim (glibc: {trimmed}): full pool {:.1} MiB, after the flood {:.1} MiB ({:+.1} MiB)",
        pool_trimmed.rss.0,
        after_trimmed.rss.0,
        after_trimmed.rss.0 - pool_trimmed.rss.0
    );
    let node_total: f64 = node_secs.iter().sum();
    let raw_total: f64 = raw_secs.iter().sum();
    eprintln!(
        "flood admission: {} accepted, {rejected} rejected; {:.0} tx/s through submit_transactions ({:.1} s), raw signature limit {:.0} tx/s",
        flood - rejected,
        flood as f64 / node_total,
        node_total,
        flood as f64 / raw_total
    );
    eprintln!(
        "  admission as % of the raw limit, median over {} chunks of {}: {:.1}% (chunk medians: node {:.1} ms, raw {:.1} ms)",
        node_secs.len(),
        sizes.chunk,
        100.0 * median_ratio(&raw_secs, &node_secs),
        median(&node_secs) * 1e3,
        median(&raw_secs) * 1e3
    );
    eprintln!("  flood wall time incl. signing the transactions: {flood_secs:.1} s");
    eprintln!("{}", cpu.line());
}
