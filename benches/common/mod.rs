//! Helpers shared by the benches (a folder, so cargo does not take it for a bench target): the chain
//! generator, the raw signature-verification limit, medians, criterion's stored medians, the
//! node's own import-time metrics, and the CPU other processes take during a run.
//!
//! Every bench compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::time::Instant;

use rayon::prelude::*;
use vision_node::chain::Chain;
use vision_node::chain::genesis::Genesis;
use vision_node::chain::import::DEFAULT_MAX_REORG_DEPTH;
use vision_node::chain::types::{Address, Block, Transaction};
use vision_node::state::Store;
use vision_node::testkit::{next_block, transfer};
use vision_node::verify::Verifier;
use vision_node::wallet::Keypair;

/// Criterion's median per-iteration time for `group/bench`, read from its `estimates.json` (found
/// the way criterion finds its home, minus the `cargo metadata` fallback).
pub fn criterion_median(group: &str, bench: &str) -> Option<f64> {
    use std::path::PathBuf;
    let home = std::env::var_os("CRITERION_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from).join("criterion")
    });
    let text = std::fs::read_to_string(home.join(group).join(bench).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(v["median"]["point_estimate"].as_f64()? * 1e-9)
}

/// Median (mean of the middle two for an even count); NaN for an empty slice.
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

/// Median of the per-round ratios `a[i] / b[i]`.
pub fn median_ratio(a: &[f64], b: &[f64]) -> f64 {
    median(&a.iter().zip(b).map(|(x, y)| x / y).collect::<Vec<_>>())
}

/// Builds `blocks` blocks of `txs_per_block` transfers on `chain`'s tip, which must be the genesis
/// (nonces start at 0). `keys` are the funded accounts; the senders of block `b` are accounts
/// `b * txs_per_block ..` (mod `keys.len()`), distinct within a block with nonces tracked per
/// sender, and each recipient is another funded account, so a transfer changes two existing
/// accounts. `import` must import each block into `chain` before the next one is built.
pub fn build_chain(
    chain: &Chain,
    keys: &[Keypair],
    blocks: usize,
    txs_per_block: usize,
    mut import: impl FnMut(&Block),
) -> Vec<Block> {
    let chain_id = chain.genesis().chain_id;
    let genesis_hash = chain.params().genesis_hash;
    let miner = Address([0x4d; 32]);
    let mut nonces = vec![0u64; keys.len()];
    let n = keys.len();
    let mut out = Vec::with_capacity(blocks);
    for b in 0..blocks {
        let plan: Vec<(usize, usize, u64)> = (0..txs_per_block)
            .map(|j| {
                let from = (b * txs_per_block + j) % n;
                let to = (from + 1 + 7919 * (b + 1)) % n;
                let nonce = nonces[from];
                nonces[from] += 1;
                (from, to, nonce)
            })
            .collect();
        let txs: Vec<Transaction> = plan
            .par_iter()
            .map(|&(from, to, nonce)| {
                transfer(&keys[from], keys[to].address(), 1 + u128::from(nonce), 1, nonce, chain_id, &genesis_hash)
            })
            .collect();
        let block = next_block(chain, txs, miner).expect("next_block");
        import(&block);
        out.push(block);
    }
    out
}

/// [`build_chain`] on a throw-away in-memory chain.
pub fn build_blocks(genesis: &Genesis, keys: &[Keypair], blocks: usize, txs_per_block: usize) -> Vec<Block> {
    let store = Store::in_memory(genesis).expect("in-memory store");
    let chain = Chain::new(store, genesis.clone(), Verifier::default(), DEFAULT_MAX_REORG_DEPTH).expect("chain");
    build_chain(&chain, keys, blocks, txs_per_block, |block| {
        chain.import(block, |_| {}).expect("import while building");
    })
}

/// Inputs of the raw dalek batch (the raw limit of signature verification), prepared outside the
/// timed section: messages, signatures and already decompressed verifying keys.
pub struct Raw {
    msgs: Vec<Vec<u8>>,
    sigs: Vec<ed25519_dalek::Signature>,
    keys: Vec<ed25519_dalek::VerifyingKey>,
}

impl Raw {
    pub fn new(txs: &[&Transaction], genesis_hash: &vision_node::chain::types::Hash) -> Self {
        Raw {
            msgs: txs.iter().map(|t| t.signing_bytes(genesis_hash)).collect(),
            sigs: txs.iter().map(|t| ed25519_dalek::Signature::from_bytes(&t.signature)).collect(),
            keys: txs
                .iter()
                .map(|t| ed25519_dalek::VerifyingKey::from_bytes(t.from.as_bytes()).expect("valid key"))
                .collect(),
        }
    }

    /// One `ed25519_dalek::verify_batch` per chunk of `n / (2 * threads)`, on all rayon threads.
    pub fn all_cores(&self) -> bool {
        let n = self.msgs.len();
        let chunk = n.div_ceil(2 * rayon::current_num_threads()).max(1);
        (0..n.div_ceil(chunk)).into_par_iter().all(|c| {
            let (lo, hi) = (c * chunk, ((c + 1) * chunk).min(n));
            let msgs: Vec<&[u8]> = self.msgs[lo..hi].iter().map(Vec::as_slice).collect();
            ed25519_dalek::verify_batch(&msgs, &self.sigs[lo..hi], &self.keys[lo..hi]).is_ok()
        })
    }
}

/// Seconds a node spent importing blocks, summed from its own histograms (`vision_*_seconds_sum`
/// in the Prometheus text of `vision_node::metrics::encode`).
#[derive(Debug, Default, Clone, Copy)]
pub struct ImportSums {
    /// `block_import_duration`: the whole `Core::import_block` of each block.
    pub import: f64,
    /// `signature_verification_duration`, every path: the verify stage.
    pub verify: f64,
    /// `state_apply_duration`: execution, state root, block/undo/index writes.
    pub apply: f64,
    /// `db_commit_duration`: the redb commit (fsync).
    pub commit: f64,
}

impl ImportSums {
    pub fn from_metrics(text: &str) -> Self {
        let sum = |name: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        ImportSums {
            import: sum("vision_block_import_duration_seconds_sum"),
            verify: sum("vision_signature_verification_duration_seconds_sum"),
            apply: sum("vision_state_apply_duration_seconds_sum"),
            commit: sum("vision_db_commit_duration_seconds_sum"),
        }
    }
}

/// Jiffies (USER_HZ = 100 per second on Linux) of all CPUs busy since boot, from `/proc/stat`.
fn busy_jiffies() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    [0, 1, 2, 5, 6, 7].iter().filter_map(|i| f.get(*i)).sum()
}

/// Jiffies this process ran (user + system, all threads), from `/proc/self/stat`.
fn own_jiffies() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    // Fields after the command: state(3) ... utime(14) stime(15), so indices 11 and 12 here.
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// CPU used by this process and by everything else on the machine since [`CpuMeter::start`], in
/// percent of one core (the machine has `nproc` × 100%).
pub struct CpuMeter {
    at: Instant,
    busy: u64,
    own: u64,
}

impl CpuMeter {
    pub fn start() -> Self {
        CpuMeter { at: Instant::now(), busy: busy_jiffies(), own: own_jiffies() }
    }

    /// (this process, other processes), in percent of one core.
    pub fn percent(&self) -> (f64, f64) {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let own = own_jiffies().saturating_sub(self.own) as f64;
        let busy = busy_jiffies().saturating_sub(self.busy) as f64;
        (own / secs, (busy - own).max(0.0) / secs)
    }

    /// One line for the summaries.
    pub fn line(&self) -> String {
        let (own, other) = self.percent();
        format!(
            "CPU over {:.0} s: this bench {own:.0}%, other processes {other:.0}% (of one core; {} cores)",
            self.at.elapsed().as_secs_f64(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        )
    }
}

/// A global allocator that forwards to the system allocator and, only while [`count_allocs`] runs,
/// counts allocations (and reallocations) and the bytes they ask for, on every thread. Outside
/// counting it costs one relaxed load per call, so timed sections are not affected. A bench opts
/// in with `#[global_allocator] static A: common::CountingAlloc = common::CountingAlloc;`.
pub struct CountingAlloc;

static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static ALLOCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static ALLOC_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl CountingAlloc {
    fn note(size: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        if COUNTING.load(Relaxed) {
            ALLOCS.fetch_add(1, Relaxed);
            ALLOC_BYTES.fetch_add(size as u64, Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `std::alloc::System`; the counters have no effect
// on the memory returned.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        Self::note(layout.size());
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        Self::note(new_size);
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

/// Allocations (including reallocations) and bytes requested on all threads while `f` ran. Only
/// meaningful in a bench that installed [`CountingAlloc`]; one count at a time.
pub fn count_allocs<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    use std::sync::atomic::Ordering::SeqCst;
    ALLOCS.store(0, SeqCst);
    ALLOC_BYTES.store(0, SeqCst);
    COUNTING.store(true, SeqCst);
    let r = f();
    COUNTING.store(false, SeqCst);
    (r, ALLOCS.load(SeqCst), ALLOC_BYTES.load(SeqCst))
}
