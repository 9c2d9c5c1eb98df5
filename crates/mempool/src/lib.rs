//! The transaction pool: bounded by count and bytes, ordered per sender by nonce and across
//! senders by fee.
//!
//! # Invariants
//! - For every sender, the pooled nonces form one gap-free run starting at the sender's nonce in
//!   the tip state, and the sender's balance covers the amount plus fee of the whole run. So any
//!   prefix of a sender's run is executable on top of the tip, in order.
//! - `len() <= max_txs` and `bytes() <= max_bytes` at all times.
//!
//! When full, the lowest-fee transaction is evicted together with the same sender's later nonces
//! (which would otherwise be left behind a gap), and a newcomer must pay more than the lowest fee
//! in the pool: the entry fee rises as the pool fills with better-paying transactions. A pooled
//! transaction can be replaced by one with the same sender and nonce paying at least
//! [`REPLACEMENT_BUMP_PERCENT`] more.
//!
//! A sender holds at most [`Limits::max_per_sender`] transactions ([`DEFAULT_MAX_PER_SENDER`]):
//! one sender cannot take the whole pool, and the work one eviction (a transaction with its later
//! nonces) or one sender's revalidation at a new tip can cost is bounded by it.
//!
//! Admission costs O(log n) per transaction, whatever the length of the sender's run: each sender's
//! run keeps the sum of its costs, so the balance rule reads one number instead of walking the run
//! (`benches/admission.rs`: flat from depth 0 to 10,000; `docs/performance.md`).
//!
//! The pool does not check signatures or stateless rules: callers pass only transactions that
//! passed those (see `node::Core::submit_transactions`). [`Mempool::precheck`] gives, before the
//! signature is checked, the refusals `insert` would certainly give.

#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use thiserror::Error;

use vision_primitives::bounds::Resource;
use vision_primitives::consensus::TxError;
use vision_primitives::errors::PeerAction;
use vision_primitives::types::{Address, Block, Hash, Transaction};
use vision_primitives::verify::InvalidSignature;
use vision_state::{Account, StoreError};

pub mod events;

/// Default cap on pooled transactions.
pub const DEFAULT_MAX_TXS: usize = 100_000;
/// Default cap on pooled bytes (encoded transactions).
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Pooled transactions, in the resource registry (cap: [`DEFAULT_MAX_TXS`], `--mempool-max-txs`).
pub const MEMPOOL_TXS: Resource = Resource::new("mempool_txs", "mempool::DEFAULT_MAX_TXS", DEFAULT_MAX_TXS);
/// Pooled bytes, in the resource registry (cap: [`DEFAULT_MAX_BYTES`], `--mempool-max-bytes`).
pub const MEMPOOL_BYTES: Resource = Resource::new("mempool_bytes", "mempool::DEFAULT_MAX_BYTES", DEFAULT_MAX_BYTES);
/// Default cap on one sender's pooled transactions: 4% of the default pool and 40% of a full block
/// (`miner::DEFAULT_MAX_BLOCK_TXS`, 10,000), more than one sender gets mined per block under fee
/// competition; it bounds an eviction cascade and a sender's revalidation to 4,096 entries.
pub const DEFAULT_MAX_PER_SENDER: usize = 4_096;
/// The longest sender run in the pool, in the resource registry (cap: [`DEFAULT_MAX_PER_SENDER`]).
pub const MEMPOOL_SENDER_TXS: Resource =
    Resource::new("mempool_sender_txs", "mempool::DEFAULT_MAX_PER_SENDER", DEFAULT_MAX_PER_SENDER);
/// The resources of this layer.
pub const RESOURCES: [Resource; 3] = [MEMPOOL_TXS, MEMPOOL_BYTES, MEMPOOL_SENDER_TXS];
/// A replacement must pay this much more than the transaction it replaces, in percent.
pub const REPLACEMENT_BUMP_PERCENT: u128 = 10;
/// Transactions older than this are dropped at the next new tip.
pub const DEFAULT_TX_TTL: Duration = Duration::from_secs(3 * 3600);

/// Why a transaction was not pooled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MempoolError {
    /// Already pooled.
    #[error("transaction {0} is already in the mempool")]
    AlreadyKnown(Hash),
    /// Fails a nonce or balance rule against tip state plus pooled transactions.
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// The pool is full and the fee is not above the lowest pooled fee.
    #[error("mempool is full; a fee of at least {min_fee} is needed to enter")]
    Full {
        /// Smallest fee that would enter now.
        min_fee: u128,
    },
    /// The sender already has [`Limits::max_per_sender`] transactions pooled (a replacement is
    /// still possible).
    #[error("the sender already has {cap} transactions in the mempool (the per-sender cap); wait until some are mined")]
    SenderFull {
        /// The cap.
        cap: usize,
    },
    /// Same sender and nonce as a pooled transaction, without a high enough fee.
    #[error("replacement fee {got} too low; at least {min} needed to replace the pooled transaction")]
    ReplacementUnderpriced {
        /// Required fee.
        min: u128,
        /// Offered fee.
        got: u128,
    },
    /// State could not be read.
    #[error("state unavailable: {0}")]
    Store(String),
}

impl From<StoreError> for MempoolError {
    fn from(e: StoreError) -> Self {
        MempoolError::Store(e.to_string())
    }
}

/// Caps of the pool.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most transactions.
    pub max_txs: usize,
    /// Most bytes.
    pub max_bytes: usize,
    /// Most transactions of one sender.
    pub max_per_sender: usize,
    /// Age after which a transaction is dropped.
    pub ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_txs: DEFAULT_MAX_TXS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_per_sender: DEFAULT_MAX_PER_SENDER,
            ttl: DEFAULT_TX_TTL,
        }
    }
}

struct Entry {
    tx: Transaction,
    /// `tx.total_cost()`, which fits (checked on insertion).
    cost: u128,
    seq: u64,
    size: usize,
    added: Instant,
}

/// One sender's pooled run.
#[derive(Default)]
struct Queue {
    /// Nonce to id.
    txs: BTreeMap<u64, Hash>,
    /// Amount plus fee summed over `txs`: exact, since the run's total never exceeds the balance
    /// it was admitted against (a `u128`).
    spent: u128,
}

impl Queue {
    /// The nonce after the run's last.
    fn next(&self) -> Option<u64> {
        self.txs.keys().next_back().map(|n| n + 1)
    }
}

/// What a caller's batch holds ahead of a transaction from the same sender, for
/// [`Mempool::precheck`]: keep one per sender and pass it to each of that sender's transactions in
/// batch order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ahead {
    /// Earlier transactions that passed and extend the run.
    count: u64,
    /// Their amount plus fee.
    cost: u128,
    /// An earlier transaction that passed replaces a pooled one or an earlier one of the batch:
    /// the run's total is then unknown until insertion, and the balance is left to `insert`.
    replaces: bool,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<Hash, Entry>,
    /// Sender to its run.
    by_sender: HashMap<Address, Queue>,
    /// Run length to the number of senders with a run that long (the longest, for the registry).
    run_lengths: BTreeMap<usize, usize>,
    /// (fee, newest first, id): the first element is the eviction candidate.
    by_fee: BTreeSet<(u128, Reverse<u64>, Hash)>,
    /// Insertion order, for expiry.
    by_seq: BTreeMap<u64, Hash>,
    bytes: usize,
    seq: u64,
    version: u64,
    evicted: u64,
    /// High-water marks of `by_id.len()` and `bytes`, taken after every insertion.
    peak_len: usize,
    peak_bytes: usize,
    /// High-water mark of the longest run.
    peak_run: usize,
    /// Pooled entries and runs read or written (a work count for the admission test: it must not
    /// grow with the length of a sender's run).
    touched: u64,
}

/// Counters and gauges for metrics and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Pooled transactions.
    pub len: usize,
    /// Pooled bytes.
    pub bytes: usize,
    /// Transactions evicted for space since start.
    pub evicted: u64,
    /// Smallest fee that enters right now.
    pub min_fee_to_enter: u128,
    /// Most transactions pooled at once since start.
    pub peak_len: usize,
    /// Most bytes pooled at once since start.
    pub peak_bytes: usize,
    /// Transactions of the sender with the most pooled.
    pub longest_run: usize,
    /// Most transactions one sender had pooled at once since start.
    pub peak_run: usize,
}

/// The pool.
pub struct Mempool {
    inner: Mutex<Inner>,
    limits: Limits,
    min_fee: u128,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool").field("stats", &self.stats()).finish()
    }
}

impl Inner {
    /// A run's length changed from `old` to `new` (0: no run).
    fn run_length(&mut self, old: usize, new: usize) {
        if old > 0
            && let Some(n) = self.run_lengths.get_mut(&old)
        {
            *n -= 1;
            if *n == 0 {
                self.run_lengths.remove(&old);
            }
        }
        if new > 0 {
            *self.run_lengths.entry(new).or_default() += 1;
            self.peak_run = self.peak_run.max(new);
        }
    }

    fn remove(&mut self, id: &Hash) -> Option<Entry> {
        let e = self.by_id.remove(id)?;
        self.touched += 1;
        self.by_fee.remove(&(e.tx.fee, Reverse(e.seq), *id));
        self.by_seq.remove(&e.seq);
        if let Some(q) = self.by_sender.get_mut(&e.tx.from)
            && q.txs.remove(&e.tx.nonce).is_some()
        {
            q.spent -= e.cost;
            let len = q.txs.len();
            if len == 0 {
                self.by_sender.remove(&e.tx.from);
            }
            self.run_length(len + 1, len);
        }
        self.bytes -= e.size;
        self.version += 1;
        Some(e)
    }

    /// Removes `id` and every later nonce of the same sender.
    fn remove_with_descendants(&mut self, id: &Hash) -> usize {
        let Some(e) = self.by_id.get(id) else { return 0 };
        let (from, nonce) = (e.tx.from, e.tx.nonce);
        let ids: Vec<Hash> =
            self.by_sender.get(&from).map(|q| q.txs.range(nonce..).map(|(_, id)| *id).collect()).unwrap_or_default();
        ids.iter().filter(|id| self.remove(id).is_some()).count()
    }

    /// Pools `tx`, whose cost is `cost` and which the caller checked against the run.
    fn add(&mut self, tx: Transaction, cost: u128) -> Hash {
        let id = tx.id();
        self.touched += 1;
        self.seq += 1;
        let size = tx.encoded_len();
        self.by_fee.insert((tx.fee, Reverse(self.seq), id));
        self.by_seq.insert(self.seq, id);
        let q = self.by_sender.entry(tx.from).or_default();
        q.txs.insert(tx.nonce, id);
        q.spent += cost;
        let len = q.txs.len();
        self.run_length(len - 1, len);
        self.by_id.insert(id, Entry { tx, cost, seq: self.seq, size, added: Instant::now() });
        self.bytes += size;
        self.version += 1;
        self.peak_len = self.peak_len.max(self.by_id.len());
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        id
    }

    /// Drops what no longer fits the sender's tip state: used nonces, then anything after a gap
    /// or beyond the balance.
    fn revalidate_sender(&mut self, from: &Address, account: Account) {
        let Some(q) = self.by_sender.get(from) else { return };
        let entries: Vec<(u64, Hash)> = q.txs.iter().map(|(n, id)| (*n, *id)).collect();
        let mut expected = account.nonce;
        let mut spent: u128 = 0;
        let mut drop_rest = false;
        for (nonce, id) in entries {
            if nonce < account.nonce {
                self.remove(&id);
                continue;
            }
            if !drop_rest {
                spent = spent.saturating_add(self.by_id[&id].cost);
                if nonce != expected || spent > account.balance {
                    drop_rest = true;
                }
                expected += 1;
            }
            if drop_rest {
                self.remove(&id);
            }
        }
    }
}

impl Mempool {
    /// An empty pool with the given caps; `min_fee` is the network's minimum fee.
    pub fn new(limits: Limits, min_fee: u128) -> Self {
        Mempool { inner: Mutex::new(Inner::default()), limits, min_fee }
    }

    /// The caps.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Pools `tx`, whose sender's tip state is `account`. The transaction must already have passed
    /// the stateless rules and its signature check.
    pub fn insert(&self, tx: Transaction, account: Account) -> Result<Hash, MempoolError> {
        let id = tx.id();
        let size = tx.encoded_len();
        let cost = tx.total_cost().ok_or(TxError::CostOverflow)?;
        let mut inner = self.inner.lock();
        inner.touched += 1;
        if inner.by_id.contains_key(&id) {
            return Err(MempoolError::AlreadyKnown(id));
        }
        if tx.nonce < account.nonce {
            return Err(TxError::NonceTooLow { expected: account.nonce, got: tx.nonce }.into());
        }
        inner.touched += 1;
        let queue = inner.by_sender.get(&tx.from);
        let next = queue.and_then(Queue::next).unwrap_or(account.nonce);
        let replaced = queue.and_then(|q| q.txs.get(&tx.nonce)).copied();
        let (run, spent) = queue.map_or((0, 0), |q| (q.txs.len(), q.spent));
        if tx.nonce > next {
            return Err(TxError::NonceGap { expected: next, got: tx.nonce }.into());
        }
        let mut spent_by_others = spent;
        if let Some(old_id) = replaced {
            inner.touched += 1;
            let old = &inner.by_id[&old_id];
            let old_fee = old.tx.fee;
            spent_by_others -= old.cost;
            let min = old_fee.saturating_add((old_fee * REPLACEMENT_BUMP_PERCENT).div_ceil(100).max(1));
            if tx.fee < min {
                return Err(MempoolError::ReplacementUnderpriced { min, got: tx.fee });
            }
        } else if run >= self.limits.max_per_sender {
            return Err(MempoolError::SenderFull { cap: self.limits.max_per_sender });
        }
        // Checked, not saturated: the run's total must stay exact (`Queue::spent`).
        let Some(need) = spent_by_others.checked_add(cost) else {
            return Err(TxError::InsufficientBalance { need: u128::MAX, have: account.balance }.into());
        };
        if need > account.balance {
            return Err(TxError::InsufficientBalance { need, have: account.balance }.into());
        }
        if let Some(old_id) = replaced {
            inner.remove(&old_id);
        }
        // Make room: evict the cheapest (with its sender's later nonces) while full.
        while inner.by_id.len() + 1 > self.limits.max_txs || inner.bytes + size > self.limits.max_bytes {
            let Some(&(low_fee, _, low_id)) = inner.by_fee.iter().next() else {
                return Err(MempoolError::Full { min_fee: self.min_fee });
            };
            inner.touched += 1;
            let low_tx = inner.by_id[&low_id].tx;
            let own_predecessor = low_tx.from == tx.from && low_tx.nonce < tx.nonce;
            if tx.fee <= low_fee || own_predecessor {
                return Err(MempoolError::Full { min_fee: low_fee.saturating_add(1) });
            }
            let n = inner.remove_with_descendants(&low_id);
            inner.evicted += n as u64;
        }
        Ok(inner.add(tx, cost))
    }

    /// The refusals [`Mempool::insert`] would certainly give, checked without the signature (which
    /// costs far more): already pooled, nonce below the account's, a nonce gap, a sender at its cap,
    /// a balance that cannot pay the run, or a full pool that the fee does not enter. `ahead` is what
    /// the caller's batch holds before `tx` from the same sender (start each sender at
    /// `Ahead::default()`); it is updated when `tx` passes. Passing says nothing: `insert` decides.
    /// O(log n), like `insert`.
    pub fn precheck(&self, tx: &Transaction, account: Account, ahead: &mut Ahead) -> Result<(), MempoolError> {
        let cost = tx.total_cost().ok_or(TxError::CostOverflow)?;
        let inner = self.inner.lock();
        let id = tx.id();
        if inner.by_id.contains_key(&id) {
            return Err(MempoolError::AlreadyKnown(id));
        }
        if tx.nonce < account.nonce {
            return Err(TxError::NonceTooLow { expected: account.nonce, got: tx.nonce }.into());
        }
        let queue = inner.by_sender.get(&tx.from);
        let pooled_next = queue.and_then(Queue::next).unwrap_or(account.nonce);
        let next = pooled_next.saturating_add(ahead.count);
        if tx.nonce > next {
            return Err(TxError::NonceGap { expected: pooled_next, got: tx.nonce }.into());
        }
        // Below `next`: it replaces a pooled transaction or an earlier one of the batch.
        let replaces = tx.nonce < next;
        let (run, spent) = queue.map_or((0, 0), |q| (q.txs.len(), q.spent));
        if !replaces {
            let cap = self.limits.max_per_sender;
            if (run as u64).saturating_add(ahead.count) >= cap as u64 {
                return Err(MempoolError::SenderFull { cap });
            }
            if !ahead.replaces {
                let need = spent.checked_add(ahead.cost).and_then(|s| s.checked_add(cost)).unwrap_or(u128::MAX);
                if need > account.balance {
                    return Err(TxError::InsufficientBalance { need, have: account.balance }.into());
                }
            }
        }
        let full = inner.by_id.len() >= self.limits.max_txs || inner.bytes + tx.encoded_len() > self.limits.max_bytes;
        if full
            && tx.nonce >= pooled_next
            && let Some(&(low_fee, _, _)) = inner.by_fee.iter().next()
            && tx.fee <= low_fee
        {
            return Err(MempoolError::Full { min_fee: low_fee.saturating_add(1) });
        }
        if replaces {
            ahead.replaces = true;
        } else {
            ahead.count += 1;
            ahead.cost = ahead.cost.saturating_add(cost);
        }
        Ok(())
    }

    /// Removes transactions included in `applied`, drops what the new state invalidates, and
    /// returns transactions of `reverted` blocks (not re-included) to the pool; returns those that
    /// re-entered it. `account` reads the new tip state.
    pub fn on_new_tip(
        &self,
        reverted: &[Block],
        applied: &[Block],
        account: &dyn Fn(&Address) -> Result<Account, StoreError>,
    ) -> Result<Vec<Transaction>, StoreError> {
        let included: HashSet<Hash> = applied.iter().flat_map(|b| b.transactions.iter().map(|t| t.id())).collect();
        let mut touched: BTreeSet<Address> = BTreeSet::new();
        for b in reverted.iter().chain(applied) {
            touched.insert(b.header.miner);
            for t in &b.transactions {
                touched.insert(t.from);
                touched.insert(t.transfer().0);
            }
        }
        let mut returned: Vec<Transaction> = reverted
            .iter()
            .flat_map(|b| b.transactions.iter().copied())
            .filter(|t| !included.contains(&t.id()))
            .collect();
        returned.sort_by_key(|t| (t.from, t.nonce));
        {
            let mut inner = self.inner.lock();
            for id in &included {
                inner.remove(id);
            }
        }
        // Per sender: returned transactions may precede pooled ones, so the sender's pooled run
        // from the first returned nonce is put aside and everything re-admitted in nonce order.
        let mut back = Vec::new();
        let mut i = 0;
        while i < returned.len() {
            let from = returned[i].from;
            let end = returned[i..].iter().position(|t| t.from != from).map_or(returned.len(), |n| i + n);
            let acc = account(&from)?;
            let mut run: Vec<(Transaction, bool)> = returned[i..end].iter().map(|t| (*t, true)).collect();
            run.extend(self.take_sender_from(&from, returned[i].nonce).into_iter().map(|t| (t, false)));
            run.sort_by_key(|(t, _)| t.nonce);
            for (tx, was_returned) in run {
                if self.insert(tx, acc).is_ok() && was_returned {
                    back.push(tx);
                }
            }
            i = end;
        }
        let mut inner = self.inner.lock();
        // Expire the oldest beyond the TTL.
        while let Some(id) = inner.by_seq.values().next().copied() {
            if inner.by_id[&id].added.elapsed() < self.limits.ttl {
                break;
            }
            inner.remove_with_descendants(&id);
        }
        for addr in &touched {
            if inner.by_sender.contains_key(addr) {
                let acc = account(addr)?;
                inner.revalidate_sender(addr, acc);
            }
        }
        Ok(back)
    }

    /// Removes and returns the sender's pooled transactions with nonce >= `nonce`.
    fn take_sender_from(&self, from: &Address, nonce: u64) -> Vec<Transaction> {
        let mut inner = self.inner.lock();
        let ids: Vec<Hash> =
            inner.by_sender.get(from).map(|q| q.txs.range(nonce..).map(|(_, id)| *id).collect()).unwrap_or_default();
        ids.iter().filter_map(|id| inner.remove(id)).map(|e| e.tx).collect()
    }

    /// Up to `max_txs` transactions (and `max_bytes`), highest fee first across senders, each
    /// sender's in nonce order.
    pub fn select(&self, max_txs: usize, max_bytes: usize) -> Vec<Transaction> {
        let inner = self.inner.lock();
        // Heap of each sender's next transaction: (fee, oldest first, id).
        let mut heap: BinaryHeap<(u128, Reverse<u64>, Hash)> = inner
            .by_sender
            .values()
            .filter_map(|q| q.txs.values().next())
            .map(|id| {
                let e = &inner.by_id[id];
                (e.tx.fee, Reverse(e.seq), *id)
            })
            .collect();
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some((_, _, id)) = heap.pop() {
            if out.len() >= max_txs {
                break;
            }
            let e = &inner.by_id[&id];
            if bytes + e.size > max_bytes {
                continue; // this sender's later nonces cannot go in without it
            }
            bytes += e.size;
            out.push(e.tx);
            if let Some((_, next)) = inner.by_sender[&e.tx.from].txs.range(e.tx.nonce + 1..).next() {
                let n = &inner.by_id[next];
                heap.push((n.tx.fee, Reverse(n.seq), *next));
            }
        }
        out
    }

    /// Removes one transaction and the sender's later nonces (e.g. found unexecutable).
    pub fn remove_with_descendants(&self, id: &Hash) -> usize {
        self.inner.lock().remove_with_descendants(id)
    }

    /// A pooled transaction.
    pub fn get(&self, id: &Hash) -> Option<Transaction> {
        self.inner.lock().by_id.get(id).map(|e| e.tx)
    }

    /// True if pooled.
    pub fn contains(&self, id: &Hash) -> bool {
        self.inner.lock().by_id.contains_key(id)
    }

    /// The next nonce the sender should use, counting pooled transactions.
    pub fn pending_nonce(&self, from: &Address, state_nonce: u64) -> u64 {
        self.inner.lock().by_sender.get(from).and_then(Queue::next).unwrap_or(state_nonce)
    }

    /// Changes on every insert and removal (the miner's template cache key).
    pub fn version(&self) -> u64 {
        self.inner.lock().version
    }

    /// Number of pooled transactions.
    pub fn len(&self) -> usize {
        self.inner.lock().by_id.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        let inner = self.inner.lock();
        let full = inner.by_id.len() >= self.limits.max_txs
            || inner.bytes + vision_primitives::types::TRANSFER_TX_LEN > self.limits.max_bytes;
        let min_fee_to_enter = match inner.by_fee.iter().next() {
            Some((fee, _, _)) if full => fee.saturating_add(1),
            _ => self.min_fee,
        };
        Stats {
            len: inner.by_id.len(),
            bytes: inner.bytes,
            evicted: inner.evicted,
            min_fee_to_enter,
            peak_len: inner.peak_len,
            peak_bytes: inner.peak_bytes,
            longest_run: inner.run_lengths.keys().next_back().copied().unwrap_or(0),
            peak_run: inner.peak_run,
        }
    }

    /// Pooled entries and runs read or written since start (the admission test's work count).
    #[cfg(test)]
    fn touched(&self) -> u64 {
        self.inner.lock().touched
    }
}

/// Bad signatures after which the rest of a submitted batch is not checked
/// ([`SubmitError::Unverified`]): each costs a signature check one by one, and 16 `MidTolerance`
/// charges (−80) ban a gossip sender from any score up to +30, so one batch is all a sender of
/// junk signatures gets. A batch costs at most its length plus this many signature checks.
pub const MAX_BAD_SIGNATURES_PER_BATCH: usize = 16;

/// Why a submitted transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SubmitError {
    /// A stateless rule.
    #[error(transparent)]
    Rule(#[from] TxError),
    /// The signature.
    #[error("invalid signature: {}", .0.error)]
    Signature(InvalidSignature),
    /// The pool refused it.
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    /// Its signature was not checked: the batch it came in already held
    /// [`MAX_BAD_SIGNATURES_PER_BATCH`] bad signatures.
    #[error(
        "signature not checked: its batch already held {0} bad signatures; submit the transaction again without them"
    )]
    Unverified(usize),
}

impl SubmitError {
    /// How a peer that relayed this transaction is judged.
    pub fn peer_action(&self) -> Option<PeerAction> {
        match self {
            SubmitError::Rule(e) => e.peer_action(),
            SubmitError::Signature(_) => Some(PeerAction::MidTolerance),
            SubmitError::Mempool(MempoolError::Invalid(e)) => e.peer_action(),
            // Pool state (sender cap, full pool, known) is ours: a relay cannot know it. An
            // unverified transaction may be valid; its batch's bad signatures were charged.
            SubmitError::Mempool(_) | SubmitError::Unverified(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vision_primitives::keys::Keypair;
    use vision_primitives::types::TxKind;

    fn tx(kp: &Keypair, nonce: u64, fee: u128, amount: u128) -> Transaction {
        let mut t = Transaction {
            chain_id: 1,
            from: kp.address(),
            nonce,
            fee,
            kind: TxKind::Transfer { to: Address([0xee; 32]), amount },
            signature: [0; 64],
        };
        kp.sign_tx(&mut t, &vision_primitives::types::Hash::ZERO);
        t
    }

    fn rich() -> Account {
        Account { balance: 1_000_000_000, nonce: 0 }
    }

    #[test]
    fn nonce_rules() {
        let pool = Mempool::new(Limits::default(), 1);
        let a = Keypair::from_seed(&[1; 32]);
        let acc = Account { balance: 1_000_000, nonce: 5 };
        assert_eq!(
            pool.insert(tx(&a, 4, 10, 1), acc),
            Err(MempoolError::Invalid(TxError::NonceTooLow { expected: 5, got: 4 }))
        );
        assert_eq!(
            pool.insert(tx(&a, 6, 10, 1), acc),
            Err(MempoolError::Invalid(TxError::NonceGap { expected: 5, got: 6 }))
        );
        pool.insert(tx(&a, 5, 10, 1), acc).unwrap();
        pool.insert(tx(&a, 6, 10, 1), acc).unwrap();
        assert_eq!(pool.pending_nonce(&a.address(), 5), 7);
        assert!(matches!(pool.insert(tx(&a, 6, 10, 1), acc), Err(MempoolError::AlreadyKnown(_))));
    }

    #[test]
    fn balance_counts_pooled_spending() {
        let pool = Mempool::new(Limits::default(), 1);
        let a = Keypair::from_seed(&[1; 32]);
        let acc = Account { balance: 250, nonce: 0 };
        pool.insert(tx(&a, 0, 10, 100), acc).unwrap();
        pool.insert(tx(&a, 1, 10, 100), acc).unwrap();
        assert_eq!(
            pool.insert(tx(&a, 2, 10, 100), acc),
            Err(MempoolError::Invalid(TxError::InsufficientBalance { need: 330, have: 250 }))
        );
    }

    #[test]
    fn replacement_needs_a_bump() {
        let pool = Mempool::new(Limits::default(), 1);
        let a = Keypair::from_seed(&[1; 32]);
        pool.insert(tx(&a, 0, 100, 1), rich()).unwrap();
        assert_eq!(
            pool.insert(tx(&a, 0, 105, 1), rich()),
            Err(MempoolError::ReplacementUnderpriced { min: 110, got: 105 })
        );
        let id = pool.insert(tx(&a, 0, 110, 1), rich()).unwrap();
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.get(&id).unwrap().fee, 110);
    }

    #[test]
    fn full_pool_evicts_lowest_fee_and_entry_fee_rises() {
        let limits = Limits { max_txs: 3, ..Limits::default() };
        let pool = Mempool::new(limits, 1);
        let ks: Vec<Keypair> = (0..5).map(|i| Keypair::from_seed(&[i; 32])).collect();
        pool.insert(tx(&ks[0], 0, 10, 1), rich()).unwrap();
        pool.insert(tx(&ks[1], 0, 20, 1), rich()).unwrap();
        pool.insert(tx(&ks[2], 0, 30, 1), rich()).unwrap();
        assert_eq!(pool.stats().min_fee_to_enter, 11);
        assert_eq!(pool.insert(tx(&ks[3], 0, 10, 1), rich()), Err(MempoolError::Full { min_fee: 11 }));
        pool.insert(tx(&ks[3], 0, 40, 1), rich()).unwrap();
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.stats().evicted, 1);
        assert_eq!(pool.stats().min_fee_to_enter, 21);
        assert_eq!(pool.pending_nonce(&ks[0].address(), 0), 0, "the 10-fee one was evicted");
    }

    #[test]
    fn eviction_takes_later_nonces_along() {
        let limits = Limits { max_txs: 3, ..Limits::default() };
        let pool = Mempool::new(limits, 1);
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        pool.insert(tx(&a, 0, 5, 1), rich()).unwrap();
        pool.insert(tx(&a, 1, 50, 1), rich()).unwrap();
        pool.insert(tx(&a, 2, 50, 1), rich()).unwrap();
        pool.insert(tx(&b, 0, 10, 1), rich()).unwrap();
        // a's nonce 0 (fee 5) went, and with it nonces 1 and 2: no gaps remain.
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.pending_nonce(&a.address(), 0), 0);
    }

    #[test]
    fn precheck_refuses_only_what_insert_would_refuse() {
        let pool = Mempool::new(Limits { max_txs: 2, ..Limits::default() }, 1);
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        let first = tx(&a, 0, 10, 1);
        pool.precheck(&first, rich(), &mut Ahead::default()).unwrap();
        pool.insert(first, rich()).unwrap();
        let fresh = || Ahead::default();
        assert!(matches!(pool.precheck(&first, rich(), &mut fresh()), Err(MempoolError::AlreadyKnown(_))));
        // Nonce 2 is a gap after nonce 0, unless the batch carries nonce 1 ahead of it.
        let gap = tx(&a, 2, 10, 1);
        let is_gap = |r| matches!(r, Err(MempoolError::Invalid(TxError::NonceGap { .. })));
        assert!(is_gap(pool.precheck(&gap, rich(), &mut fresh())));
        let mut ahead = fresh();
        pool.precheck(&tx(&a, 1, 10, 1), rich(), &mut ahead).unwrap();
        pool.precheck(&gap, rich(), &mut ahead).unwrap();
        let low = Account { nonce: 3, ..rich() };
        assert!(matches!(pool.precheck(&tx(&b, 1, 10, 1), low, &mut fresh()), Err(MempoolError::Invalid(_))));
        // Full: a fee at or below the lowest pooled fee does not enter; above it, insert decides.
        pool.insert(tx(&a, 1, 20, 1), rich()).unwrap();
        let full = pool.precheck(&tx(&b, 0, 10, 1), rich(), &mut fresh());
        assert!(matches!(full, Err(MempoolError::Full { min_fee: 11 })));
        assert_eq!(pool.insert(tx(&b, 0, 10, 1), rich()), Err(MempoolError::Full { min_fee: 11 }));
        pool.precheck(&tx(&b, 0, 11, 1), rich(), &mut fresh()).unwrap();
    }

    #[test]
    fn precheck_refuses_what_the_balance_cannot_pay_counting_the_run_and_the_batch() {
        let pool = Mempool::new(Limits::default(), 1);
        let a = Keypair::from_seed(&[1; 32]);
        let acc = Account { balance: 300, nonce: 0 };
        pool.insert(tx(&a, 0, 10, 90), acc).unwrap(); // 100 spent
        // The batch: nonce 1 (100) passes, nonce 2 (100) passes, nonce 3 would need 400.
        let mut ahead = Ahead::default();
        pool.precheck(&tx(&a, 1, 10, 90), acc, &mut ahead).unwrap();
        pool.precheck(&tx(&a, 2, 10, 90), acc, &mut ahead).unwrap();
        assert_eq!(
            pool.precheck(&tx(&a, 3, 10, 90), acc, &mut ahead),
            Err(MempoolError::Invalid(TxError::InsufficientBalance { need: 400, have: 300 }))
        );
        // An unfunded sender is refused before anything else costs.
        let poor = Keypair::from_seed(&[2; 32]);
        let none = Account { balance: 0, nonce: 0 };
        let refused = pool.precheck(&tx(&poor, 0, 1, 1), none, &mut Ahead::default());
        assert_eq!(refused, Err(MempoolError::Invalid(TxError::InsufficientBalance { need: 2, have: 0 })));
        // After a replacement in the batch the run's total is unknown: the balance is left to insert,
        // which may accept what a plain sum would refuse.
        let mut ahead = Ahead::default();
        let cheaper = tx(&a, 0, 11, 9); // replaces nonce 0: the run costs 20 + 100 + 100 afterwards
        pool.precheck(&cheaper, acc, &mut ahead).unwrap();
        pool.precheck(&tx(&a, 1, 10, 90), acc, &mut ahead).unwrap();
        pool.precheck(&tx(&a, 2, 10, 90), acc, &mut ahead).unwrap();
        pool.precheck(&tx(&a, 3, 10, 70), acc, &mut ahead).unwrap();
        pool.insert(cheaper, acc).unwrap();
        pool.insert(tx(&a, 1, 10, 90), acc).unwrap();
        pool.insert(tx(&a, 2, 10, 90), acc).unwrap();
        pool.insert(tx(&a, 3, 10, 70), acc).unwrap();
        assert_eq!(pool.len(), 4);
    }

    #[test]
    fn a_sender_holds_at_most_its_cap_and_replacements_still_work() {
        let pool = Mempool::new(Limits { max_per_sender: 3, ..Limits::default() }, 1);
        let a = Keypair::from_seed(&[1; 32]);
        for n in 0..3 {
            pool.insert(tx(&a, n, 10, 1), rich()).unwrap();
        }
        assert_eq!(pool.insert(tx(&a, 3, 10, 1), rich()), Err(MempoolError::SenderFull { cap: 3 }));
        assert!(
            pool.insert(tx(&a, 3, 10, 1), rich()).unwrap_err().to_string().contains("per-sender cap"),
            "the error names the cap"
        );
        let mut ahead = Ahead::default();
        let refused = pool.precheck(&tx(&a, 3, 10, 1), rich(), &mut ahead);
        assert_eq!(refused, Err(MempoolError::SenderFull { cap: 3 }));
        // A replacement does not lengthen the run.
        pool.insert(tx(&a, 1, 20, 1), rich()).unwrap();
        // Others are not affected.
        pool.insert(tx(&Keypair::from_seed(&[2; 32]), 0, 10, 1), rich()).unwrap();
        let stats = pool.stats();
        assert_eq!((stats.len, stats.longest_run, stats.peak_run), (4, 3, 3));
        // The batch counts too: with one pooled, two more pass precheck and the third does not.
        let b = Keypair::from_seed(&[3; 32]);
        pool.insert(tx(&b, 0, 10, 1), rich()).unwrap();
        let mut ahead = Ahead::default();
        pool.precheck(&tx(&b, 1, 10, 1), rich(), &mut ahead).unwrap();
        pool.precheck(&tx(&b, 2, 10, 1), rich(), &mut ahead).unwrap();
        assert_eq!(pool.precheck(&tx(&b, 3, 10, 1), rich(), &mut ahead), Err(MempoolError::SenderFull { cap: 3 }));
        // Removing shortens the run, and the longest run follows; the peak stays.
        let a0 = pool.select(100, usize::MAX).into_iter().find(|t| t.from == a.address() && t.nonce == 0).unwrap();
        assert_eq!(pool.remove_with_descendants(&a0.id()), 3);
        assert_eq!(pool.pending_nonce(&a.address(), 0), 0);
        let stats = pool.stats();
        assert_eq!((stats.longest_run, stats.peak_run), (1, 3));
    }

    /// Admission work does not grow with the sender's run: inserting the next nonce touches the
    /// same number of pooled entries at depth 0, 1,000 and 10,000 (the old balance rule walked the
    /// whole run: 10,000 entries at depth 10,000). Timings: `benches/admission.rs`.
    #[test]
    fn admission_work_does_not_grow_with_the_senders_run() {
        let limits = Limits { max_per_sender: 20_000, ..Limits::default() };
        let a = Keypair::from_seed(&[1; 32]);
        let txs: Vec<Transaction> = (0..10_001).map(|n| tx(&a, n, 10, 1)).collect();
        let mut work = Vec::new();
        for depth in [0usize, 1_000, 10_000] {
            let pool = Mempool::new(limits, 1);
            for t in &txs[..depth] {
                pool.insert(*t, rich()).unwrap();
            }
            let before = pool.touched();
            pool.insert(txs[depth], rich()).unwrap();
            let mut ahead = Ahead::default();
            pool.precheck(&txs[depth], rich(), &mut ahead).unwrap_err(); // known now
            work.push(pool.touched() - before);
        }
        assert!(work[0] > 0);
        assert_eq!(work, vec![work[0]; 3], "entries touched per insert at depth 0, 1,000, 10,000");
    }

    #[test]
    fn the_running_total_stays_exact_through_replacement_eviction_and_new_tips() {
        let pool = Mempool::new(Limits { max_txs: 4, ..Limits::default() }, 1);
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        let acc = Account { balance: 1_000, nonce: 0 };
        pool.insert(tx(&a, 0, 10, 90), acc).unwrap();
        pool.insert(tx(&a, 1, 10, 90), acc).unwrap();
        pool.insert(tx(&a, 1, 20, 80), acc).unwrap(); // replacement: 100 + 100
        pool.insert(tx(&a, 2, 30, 770), acc).unwrap(); // exactly the balance: 1,000
        assert!(matches!(
            pool.insert(tx(&a, 3, 30, 0), acc),
            Err(MempoolError::Invalid(TxError::InsufficientBalance { need: 1_030, .. }))
        ));
        // b's dearer transaction evicts a's cheapest (nonce 0) and with it nonces 1 and 2.
        pool.insert(tx(&b, 0, 40, 1), rich()).unwrap();
        pool.insert(tx(&b, 1, 40, 1), rich()).unwrap();
        pool.insert(tx(&b, 2, 40, 1), rich()).unwrap();
        pool.insert(tx(&b, 3, 40, 1), rich()).unwrap();
        assert_eq!(pool.pending_nonce(&a.address(), 0), 0);
        // a's run is empty again: its whole balance is available (b's newest makes room).
        pool.insert(tx(&a, 0, 50, 950), acc).unwrap();
        assert_eq!(pool.stats().evicted, 4);
        let pool = Mempool::new(Limits::default(), 1);
        pool.insert(tx(&a, 0, 500, 500), acc).unwrap();
        let g = vision_primitives::genesis::Genesis::devnet().block();
        let mined = Block { header: g.header, transactions: vec![tx(&a, 0, 500, 500)] };
        pool.on_new_tip(&[], &[mined], &|_| Ok(Account { balance: 0, nonce: 1 })).unwrap();
        assert!(pool.is_empty());
        pool.insert(tx(&a, 1, 10, 990), Account { balance: 1_000, nonce: 1 }).unwrap();
    }

    #[test]
    fn byte_cap_is_respected() {
        let size = vision_primitives::types::TRANSFER_TX_LEN;
        let limits = Limits { max_bytes: size * 2, ..Limits::default() };
        let pool = Mempool::new(limits, 1);
        for i in 0..10u8 {
            let _ = pool.insert(tx(&Keypair::from_seed(&[i; 32]), 0, 10 + i as u128, 1), rich());
            assert!(pool.stats().bytes <= size * 2);
        }
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn select_orders_by_fee_and_nonce() {
        let pool = Mempool::new(Limits::default(), 1);
        let a = Keypair::from_seed(&[1; 32]);
        let b = Keypair::from_seed(&[2; 32]);
        pool.insert(tx(&a, 0, 10, 1), rich()).unwrap();
        pool.insert(tx(&a, 1, 100, 1), rich()).unwrap();
        pool.insert(tx(&b, 0, 50, 1), rich()).unwrap();
        let sel = pool.select(10, usize::MAX);
        let order: Vec<(Address, u64)> = sel.iter().map(|t| (t.from, t.nonce)).collect();
        assert_eq!(order, vec![(b.address(), 0), (a.address(), 0), (a.address(), 1)]);
        assert_eq!(pool.select(2, usize::MAX).len(), 2);
    }

    #[test]
    fn new_tip_removes_included_and_returns_reverted() {
        let pool = Mempool::new(Limits::default(), 1);
        let a = Keypair::from_seed(&[1; 32]);
        let t0 = tx(&a, 0, 10, 1);
        let t1 = tx(&a, 1, 10, 1);
        pool.insert(t0, rich()).unwrap();
        pool.insert(t1, rich()).unwrap();
        let g = vision_primitives::genesis::Genesis::devnet().block();
        let block = Block { header: g.header, transactions: vec![t0] };
        let after = Account { balance: rich().balance - 11, nonce: 1 };
        pool.on_new_tip(&[], std::slice::from_ref(&block), &|_| Ok(after)).unwrap();
        assert!(!pool.contains(&t0.id()));
        assert!(pool.contains(&t1.id()));
        // Revert it: t0 comes back, before t1.
        let back = pool.on_new_tip(std::slice::from_ref(&block), &[], &|_| Ok(rich())).unwrap();
        assert_eq!(back, vec![t0]);
        assert!(pool.contains(&t0.id()) && pool.contains(&t1.id()));
        assert_eq!(pool.select(10, usize::MAX), vec![t0, t1]);
    }

    #[test]
    fn new_tip_drops_what_became_unaffordable() {
        let pool = Mempool::new(Limits::default(), 1);
        let a = Keypair::from_seed(&[1; 32]);
        pool.insert(tx(&a, 0, 10, 100), rich()).unwrap();
        pool.insert(tx(&a, 1, 10, 100), rich()).unwrap();
        let g = vision_primitives::genesis::Genesis::devnet().block();
        let other = Block { header: g.header, transactions: vec![tx(&Keypair::from_seed(&[9; 32]), 0, 1, 1)] };
        // a now has only enough for one: the second is dropped.
        let poor = Account { balance: 150, nonce: 0 };
        let mut touched = other.clone();
        touched.header.miner = a.address();
        pool.on_new_tip(&[], &[touched], &|_| Ok(poor)).unwrap();
        assert_eq!(pool.len(), 1);
    }
}
