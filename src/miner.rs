//! The miner: block templates from the mempool (cached until the tip or the mempool changes) and
//! proof-of-work search on dedicated threads.
//!
//! A template is built from one read snapshot: the tip, the difficulty and minimum timestamp the
//! rules require of its child, and the best transactions of the pool executed against that tip's
//! state (which gives the state root). The miner sees the node only through [`MinerAccess`], which
//! the node implements: found blocks go through its `submit_mined`, which is `Core::import_block`,
//! the same path as blocks from anywhere else.
//!
//! Each search round hashes at most [`ROUND_HASHES`] nonces, then looks whether the tip or the
//! mempool changed (and the template must be refreshed) or shutdown was asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::chain::Chain;
use crate::chain::consensus::{meets_difficulty, now_ms};
use crate::chain::types::{
    Address, Block, BlockHeader, ENCODING_VERSION, HEADER_LEN, HEADER_NONCE_OFFSET, Hash, MAX_BLOCK_BYTES, Transaction,
    tx_root,
};
use crate::chain::{ImportError, ImportOutcome};
use crate::mempool::Mempool;
use crate::state::{ExecError, StoreError, execute};

/// What the miner needs of the node: a template to search on, the two signals that it went stale,
/// and the door for the blocks it finds.
pub trait MinerAccess: Send + Sync + 'static {
    /// The template for `miner` with at most `max_txs` transactions ([`TemplateCache::get`]).
    fn template(&self, miner: Address, max_txs: usize) -> Result<Template, StoreError>;
    /// The canonical tip's hash.
    fn tip_hash(&self) -> Hash;
    /// The pool's version (changes whenever the pool does).
    fn mempool_version(&self) -> u64;
    /// Imports a block this miner found.
    fn submit_mined(&self, block: &Block) -> Result<ImportOutcome, ImportError>;
}

/// Most transactions the miner puts in one block.
pub const DEFAULT_MAX_BLOCK_TXS: usize = 10_000;
/// Nonces hashed between checks for a new tip, new transactions or shutdown.
pub const ROUND_HASHES: u64 = 20_000;

/// An unsolved block.
#[derive(Debug, Clone)]
pub struct Template {
    /// Header with nonce 0 and the minimum admissible timestamp.
    pub header: BlockHeader,
    /// Transactions, executable in order on the parent state.
    pub transactions: Arc<Vec<Transaction>>,
}

/// Builds a template on the current tip for `miner` from the best pooled transactions.
/// Transactions that fail execution (the pool's view lagged) are dropped from the pool.
pub fn build_template(
    chain: &Chain,
    mempool: &Mempool,
    miner: Address,
    max_txs: usize,
) -> Result<Template, StoreError> {
    let txs = mempool.select(max_txs, MAX_BLOCK_BYTES - HEADER_LEN - 4);
    template_from(chain, txs, miner, |bad| {
        mempool.remove_with_descendants(&bad.id());
    })
}

/// Builds a template on the current tip with the given transactions, in order. A transaction that
/// fails execution is passed to `on_bad` and left out with the same sender's later nonces.
pub fn template_from(
    chain: &Chain,
    mut txs: Vec<Transaction>,
    miner: Address,
    mut on_bad: impl FnMut(&Transaction),
) -> Result<Template, StoreError> {
    let r = chain.read()?;
    let (tip, difficulty, min_ts) = chain.next_block_rules(&r)?;
    let accounts = r.accounts()?;
    let diff = loop {
        match execute(&accounts, chain.params(), &txs, &miner) {
            Ok(diff) => break diff,
            Err(ExecError::Store(e)) => return Err(e),
            Err(ExecError::Tx { index, .. }) if index < txs.len() => {
                let bad = txs[index];
                on_bad(&bad);
                txs.retain(|t| !(t.from == bad.from && t.nonce >= bad.nonce));
            }
            Err(ExecError::Tx { .. }) => {
                // Only the miner's own credit can fail here: mine an empty block.
                txs.clear();
            }
        }
    };
    let state_root = diff.apply_to(&r.lthash()?).root();
    Ok(Template {
        header: BlockHeader {
            version: ENCODING_VERSION,
            height: tip.header.height + 1,
            parent: tip.hash,
            timestamp_ms: min_ts,
            difficulty,
            miner,
            tx_root: tx_root(&txs),
            state_root,
            nonce: 0,
        },
        transactions: Arc::new(txs),
    })
}

/// Hashes nonces `start..start+count` for `header`; on success the header holds the winning nonce.
pub fn search(header: &mut BlockHeader, start: u64, count: u64) -> bool {
    let mut bytes = header.encode();
    for nonce in start..start.saturating_add(count) {
        bytes[HEADER_NONCE_OFFSET..].copy_from_slice(&nonce.to_le_bytes());
        if meets_difficulty(&Hash::digest(&bytes), header.difficulty) {
            header.nonce = nonce;
            return true;
        }
    }
    false
}

/// Solves a template completely with the timestamp `timestamp_ms` (raised to the template's
/// minimum). For tests, benchmarks and simulations at low difficulty.
pub fn solve(template: &Template, timestamp_ms: u64) -> Block {
    let mut header = template.header;
    header.timestamp_ms = header.timestamp_ms.max(timestamp_ms);
    let mut start = 0;
    while !search(&mut header, start, ROUND_HASHES) {
        start += ROUND_HASHES;
    }
    Block { header, transactions: template.transactions.to_vec() }
}

/// A template whose pool has changed since it was built is still served for this long (on the same
/// tip): under a transaction flood the pool changes thousands of times a second, and rebuilding on
/// every change (selecting and executing up to a block of transactions each time) took the miner's
/// core and stretched block gaps to 27 s in the million-transaction flood (`tests/it/flood.rs`).
/// Bitcoin Core's `getblocktemplate` likewise reuses a template for a few seconds while only its
/// mempool changed. A new tip always rebuilds at once.
pub const TEMPLATE_REFRESH: Duration = Duration::from_millis(500);

/// Template cache keyed by tip hash and mempool version (see [`TEMPLATE_REFRESH`]).
#[derive(Default)]
pub struct TemplateCache {
    slot: Mutex<Option<Cached>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Cached {
    tip: Hash,
    pool_version: u64,
    built: Instant,
    template: Template,
}

impl TemplateCache {
    /// The cached template if it was built on the current tip for this miner, and either the pool
    /// is unchanged or the template is younger than [`TEMPLATE_REFRESH`]; else a fresh one.
    pub fn get(
        &self,
        chain: &Chain,
        mempool: &Mempool,
        miner: Address,
        max_txs: usize,
    ) -> Result<Template, StoreError> {
        let (tip, pool_version) = (chain.tip().hash, mempool.version());
        let mut slot = self.slot.lock();
        if let Some(c) = slot.as_ref()
            && c.tip == tip
            && c.template.header.miner == miner
            && (c.pool_version == pool_version || c.built.elapsed() < TEMPLATE_REFRESH)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(c.template.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let built = Instant::now();
        let t = build_template(chain, mempool, miner, max_txs)?;
        // Keyed by the tip the template was actually built on.
        *slot = Some(Cached { tip: t.header.parent, pool_version, built, template: t.clone() });
        Ok(t)
    }

    /// (hits, misses) since start.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}

/// Mining settings.
#[derive(Debug, Clone, Copy)]
pub struct MinerConfig {
    /// Receives rewards and fees.
    pub address: Address,
    /// Search threads.
    pub threads: usize,
    /// Most transactions per block.
    pub max_block_txs: usize,
}

/// Running miner threads; stopped and joined by [`Miner::stop`] or on drop.
pub struct Miner {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Miner {
    /// Starts `config.threads` search threads.
    pub fn start(core: Arc<dyn MinerAccess>, config: MinerConfig) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for i in 0..config.threads.max(1) {
            let core = core.clone();
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("miner-{i}"))
                    .spawn(move || mine_loop(core.as_ref(), config, i as u64, &stop))?,
            );
        }
        Ok(Miner { stop, threads })
    }

    /// Stops searching and waits for the threads (an import in flight completes first).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn mine_loop(core: &dyn MinerAccess, config: MinerConfig, thread: u64, stop: &AtomicBool) {
    // Disjoint nonce ranges per thread; a random offset so restarts do not redo work.
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let mut next_nonce = (thread << 56) | (u64::from_le_bytes(seed) >> 8);
    while !stop.load(Ordering::Relaxed) {
        let template = match core.template(config.address, config.max_block_txs) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot build a block template; miner pausing");
                std::thread::sleep(std::time::Duration::from_secs(1));
                continue;
            }
        };
        let version = core.mempool_version();
        let mut header = template.header;
        header.timestamp_ms = header.timestamp_ms.max(now_ms());
        loop {
            if search(&mut header, next_nonce, ROUND_HASHES) {
                next_nonce = next_nonce.wrapping_add(ROUND_HASHES);
                let block = Block { header, transactions: template.transactions.to_vec() };
                match core.submit_mined(&block) {
                    Ok(_) => tracing::debug!(height = header.height, hash = %block.hash(), "mined block"),
                    Err(e) => tracing::warn!(error = %e, "mined block was not imported"),
                }
                break;
            }
            next_nonce = next_nonce.wrapping_add(ROUND_HASHES);
            if stop.load(Ordering::Relaxed)
                || core.tip_hash() != template.header.parent
                || core.mempool_version() != version
            {
                break;
            }
            header.timestamp_ms = header.timestamp_ms.max(now_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Node, NodeConfig};
    use crate::testkit::{TEST_CHAIN_ID, genesis_with_accounts, transfer};

    #[test]
    fn a_template_outlives_pool_changes_for_the_refresh_interval_but_not_a_new_tip() {
        let (genesis, keys) = genesis_with_accounts(2, 1_000_000);
        let g = genesis.hash();
        let core = Node::open_core(&NodeConfig { genesis, ..NodeConfig::devnet() }).unwrap();
        let miner = Address([7; 32]);
        let get = || core.templates().get(core.chain(), core.mempool(), miner, DEFAULT_MAX_BLOCK_TXS).unwrap();
        let empty = get();
        core.submit_transaction(transfer(&keys[0], Address([9; 32]), 5, 1, 0, TEST_CHAIN_ID, &g)).unwrap();
        // The pool changed: the template built a moment ago is still served.
        assert!(get().transactions.is_empty());
        assert_eq!(core.templates().counts(), (1, 1));
        std::thread::sleep(TEMPLATE_REFRESH);
        assert_eq!(get().transactions.len(), 1, "rebuilt once the refresh interval passed");
        // A new tip rebuilds at once, whatever the template's age.
        let block = solve(&get(), empty.header.timestamp_ms);
        core.import_block(&block, crate::node::BlockSource::Miner).unwrap();
        core.submit_transaction(transfer(&keys[1], Address([9; 32]), 5, 1, 0, TEST_CHAIN_ID, &g)).unwrap();
        let next = get();
        assert_eq!(next.header.parent, block.hash());
        assert_eq!(next.transactions.len(), 1);
    }
}
