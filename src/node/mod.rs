//! Wiring: the shared [`Core`] through which every block and transaction enters, the [`Node`]
//! that owns the database, miner and API server, and graceful shutdown.
//!
//! Build a node in-process with [`Node::builder`] (tests, simulations) or from the CLI (`run`).
//! Blocks enter through [`Core::import_block`] (miner, API) or the import thread that takes the
//! network's blocks (`importer.rs`). Shutdown order: stop accepting API requests and end the
//! network task, stop the miner (an import in flight completes), then the import thread (the
//! import in hand completes, queued peer blocks are dropped), then drop the chain, which closes the
//! database. Every committed block survives; nothing is half-applied because each import is one
//! redb transaction.

mod importer;

pub use importer::{IMPORT_JOBS, IMPORT_QUEUE_CAP, Importer};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::chain::consensus::{TxError, check_tx_stateless};
use crate::chain::genesis::Genesis;
use crate::chain::import::DEFAULT_MAX_REORG_DEPTH;
use crate::chain::types::{Address, Block, Hash, Transaction};
use crate::chain::{Chain, ImportError, ImportOutcome};
use crate::mempool::{Limits, MAX_BAD_SIGNATURES_PER_BATCH, Mempool, MempoolError};
use crate::miner::{DEFAULT_MAX_BLOCK_TXS, Miner, MinerConfig, TemplateCache};
use crate::state::{Store, StoreError};
use crate::verify::{InvalidSignature, Verifier};

/// Capacity of the event broadcast channel; a subscriber that falls further behind loses the
/// oldest events (and is told how many) instead of growing memory.
pub const EVENT_CHANNEL_CAP: usize = 1024;
/// Most body bytes a reorganisation's `Event::NewHead` carries in `applied`: the newest applied
/// blocks that fit (always at least the new tip block), so that a deep reorg of full blocks is not
/// copied into the event channel whole (issue #14: 1,000 blocks of 4 MiB). Counts (`reverted`,
/// the tip) stay exact; subscribers see the transactions of older applied blocks in the store.
pub const REORG_EVENT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Node events not yet read by the slowest subscriber, in the resource registry.
pub const CORE_EVENTS: crate::bounds::Resource =
    crate::bounds::Resource::new("core_events", "node::EVENT_CHANNEL_CAP", EVENT_CHANNEL_CAP);

/// Every resource of the node, in the order `/metrics` lists them: each layer declares its own
/// next to the constant that caps it, and [`Core::new`] registers them all.
pub fn all_resources() -> Vec<crate::bounds::Resource> {
    use crate::p2p::{peer_manager as pm, service as svc};
    let mut rs = crate::mempool::RESOURCES.to_vec();
    rs.extend([crate::verify::SIG_CACHE, CORE_EVENTS, crate::state::INVALID_DESCENDANTS]);
    rs.extend([IMPORT_JOBS, svc::TX_JOBS, svc::RESULTS, svc::ORPHANS, svc::ORPHAN_BYTES, svc::TX_OUTBOX]);
    rs.extend([svc::PEER_BOOK_PENDING, crate::p2p::addrman::ADDRMAN_ENTRIES]);
    rs.extend([svc::SYNC_SERVING, svc::SYNC_UNSENT_BYTES, svc::SYNC_INFLIGHT, svc::SYNC_HEADERS, crate::p2p::COMMANDS]);
    rs.push(svc::deep_fork::DEEP_FORKS);
    rs.extend([pm::PEERS, pm::BANS, pm::RETAINED_SCORES, crate::state::STORED_PEERS, crate::api::ws::WS_CLIENTS]);
    rs.extend(crate::api::limits::RESOURCES);
    rs
}

pub use vision_mempool::SubmitError;
pub use vision_mempool::events::{BlockSource, Event, TxSource};

/// The chain, the pool and the template cache, shared by the miner, the API and the network.
pub struct Core {
    chain: Chain,
    metrics: crate::chain::metrics::Metrics,
    mempool: Mempool,
    templates: TemplateCache,
    bounds: Arc<crate::bounds::Bounds>,
    events: broadcast::Sender<Event>,
    /// Where pooled transactions to gossip (from the API and returned by reorganisations) go: the
    /// network task's bounded outbox, once it has attached ([`Core::attach_gossip_outbox`]).
    /// A channel of its own, not the event broadcast: a subscriber that lags loses broadcast
    /// events, and a lost transaction here is never gossiped (its sender's later nonces are then
    /// refused by every other node as gaps).
    gossip_outbox: parking_lot::Mutex<Option<mpsc::Sender<Transaction>>>,
    /// Transactions not queued for gossip because the outbox was full, not yet counted by the
    /// network task ([`Core::take_gossip_outbox_dropped`]).
    gossip_outbox_dropped: AtomicU64,
    /// The import queue, open while the node's [`Importer`] runs (`importer.rs`).
    importer: importer::Queue,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("chain", &self.chain).finish()
    }
}

impl Core {
    /// The chain, for reads (tip, parameters, read snapshots). Blocks enter through
    /// [`Core::import_block`] (and the traits the miner, the API and the network see), never through
    /// the chain directly: only that path updates the pool, the metrics and the subscribers.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The transaction pool, for reads; transactions enter through [`Core::submit_transactions`].
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The miner's template cache.
    pub fn templates(&self) -> &TemplateCache {
        &self.templates
    }

    /// Import and admission metrics.
    pub fn metrics(&self) -> &crate::chain::metrics::Metrics {
        &self.metrics
    }

    /// Caps and occupancy of every bounded resource (`vision_resource_*`).
    pub fn bounds(&self) -> &Arc<crate::bounds::Bounds> {
        &self.bounds
    }

    /// A core over an opened chain.
    pub fn new(chain: Chain, limits: Limits) -> Self {
        let mempool = Mempool::new(limits, chain.params().min_fee);
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAP);
        let bounds = Arc::new(crate::bounds::Bounds::default());
        bounds.register_all(&all_resources());
        bounds.set_cap(crate::mempool::MEMPOOL_TXS, limits.max_txs);
        bounds.set_cap(crate::mempool::MEMPOOL_BYTES, limits.max_bytes);
        bounds.set_cap(crate::mempool::MEMPOOL_SENDER_TXS, limits.max_per_sender);
        Core {
            chain,
            mempool,
            templates: TemplateCache::default(),
            bounds,
            events,
            gossip_outbox: parking_lot::Mutex::new(None),
            gossip_outbox_dropped: AtomicU64::new(0),
            importer: importer::Queue::default(),
            metrics: Default::default(),
        }
    }

    /// Creates the outbox of transactions to gossip, holding at most `cap`, and returns its
    /// receiving end (the network task calls this once when it starts; a second call, from a
    /// network restarted in the same process, replaces the first outbox).
    pub fn attach_gossip_outbox(&self, cap: usize) -> mpsc::Receiver<Transaction> {
        let (tx, rx) = mpsc::channel(cap.max(1));
        *self.gossip_outbox.lock() = Some(tx);
        rx
    }

    /// How many transactions were not queued for gossip, the outbox being full, since the last call.
    pub fn take_gossip_outbox_dropped(&self) -> u64 {
        self.gossip_outbox_dropped.swap(0, Ordering::Relaxed)
    }

    /// Queues transactions for the network task to gossip. Without a network nothing is queued;
    /// with its outbox full the rest is counted as dropped (never waits: callers hold no lock, but
    /// the API and the importer must not stall on the network).
    fn queue_for_gossip(&self, txs: impl IntoIterator<Item = Transaction>) {
        let guard = self.gossip_outbox.lock();
        let Some(outbox) = guard.as_ref() else { return };
        let mut dropped = 0;
        for tx in txs {
            match outbox.try_send(tx) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => dropped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        if dropped > 0 {
            self.gossip_outbox_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Records the resources read at scrape time: the mempool (which keeps its own peaks), the
    /// signature cache and the event channel.
    pub fn record_bounds(&self) {
        let stats = self.mempool.stats();
        self.bounds.record_with_peak(crate::mempool::MEMPOOL_TXS, stats.len, stats.peak_len);
        self.bounds.record_with_peak(crate::mempool::MEMPOOL_BYTES, stats.bytes, stats.peak_bytes);
        self.bounds.record_with_peak(crate::mempool::MEMPOOL_SENDER_TXS, stats.longest_run, stats.peak_run);
        self.bounds.record(crate::verify::SIG_CACHE, self.chain.sig_cache_len());
        self.bounds.record(CORE_EVENTS, self.events.len());
        self.bounds.record(IMPORT_JOBS, self.importer.len());
        self.bounds.record(crate::state::INVALID_DESCENDANTS, self.chain.invalid_descendants_len());
    }

    /// Subscribes to events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Brings the pool to a new tip and returns (transactions returned to the pool, applied blocks
    /// for the event). A plain extension uses `block` itself. A reorganisation streams through the
    /// store (bodies read back from `view`, the committed new tip: applied blocks are canonical
    /// there, reverted ones stored as side-chain blocks): applied blocks leave the pool one at a
    /// time, then the reverted blocks' transactions that the new tip has not spent are offered
    /// back in one call, oldest block first and at most the pool's `max_txs` of them (the pool
    /// cannot hold more; the oldest come first because later nonces need them). Holds one applied body at a time, the event's newest
    /// blocks (at most [`REORG_EVENT_MAX_BYTES`]) and at most `max_txs` reverted transactions.
    #[allow(clippy::type_complexity)]
    fn follow_tip(
        &self,
        view: &crate::state::ReadView,
        block: &Block,
        reverted: &[crate::state::BlockRef],
        applied: &[crate::state::BlockRef],
        read: &dyn Fn(&Address) -> Result<crate::state::Account, StoreError>,
    ) -> Result<(Vec<Transaction>, Vec<Block>), StoreError> {
        let hash = block.hash();
        if reverted.is_empty() && applied.len() == 1 && applied[0].hash == hash {
            let back = self.mempool.on_new_tip(&[], std::slice::from_ref(block), read)?;
            return Ok((back, vec![block.clone()]));
        }
        let body = |r: &crate::state::BlockRef| -> Result<Block, StoreError> {
            let transactions =
                view.body(&r.hash)?.ok_or_else(|| StoreError::Corrupt(format!("no body for {}", r.hash)))?;
            Ok(Block { header: r.header, transactions })
        };
        let mut newest: std::collections::VecDeque<Block> = std::collections::VecDeque::new();
        let mut newest_bytes = 0;
        for r in applied {
            let b = if r.hash == hash { block.clone() } else { body(r)? };
            self.mempool.on_new_tip(&[], std::slice::from_ref(&b), read)?;
            newest_bytes += b.encoded_len();
            newest.push_back(b);
            while newest_bytes > REORG_EVENT_MAX_BYTES && newest.len() > 1 {
                newest_bytes -= newest.pop_front().map_or(0, |b| b.encoded_len());
            }
        }
        // One call for every returned transaction, so that a sender's returned run and its pooled
        // later nonces are re-admitted together in nonce order. Only transactions the new tip has
        // not spent (nonce at or above the sender's) are carried: the rest could not re-enter the
        // pool (their senders are in the applied blocks, so their pooled transactions were
        // revalidated there; a recipient of a dropped one is not, and its pooled transactions are
        // checked again when a template executes them).
        let cap = self.mempool.limits().max_txs;
        let mut offered = 0;
        let mut carried = Vec::new();
        let mut nonces: std::collections::HashMap<Address, u64> = std::collections::HashMap::new();
        for r in reverted.iter().rev() {
            if offered >= cap {
                break;
            }
            let mut b = body(r)?;
            let mut unspent = Vec::with_capacity(b.transactions.len().min(cap - offered));
            for tx in b.transactions {
                let nonce = match nonces.get(&tx.from) {
                    Some(n) => *n,
                    None => {
                        // A cache of account nonces, kept within the pool's size.
                        if nonces.len() >= cap {
                            nonces.clear();
                        }
                        let n = read(&tx.from)?.nonce;
                        nonces.insert(tx.from, n);
                        n
                    }
                };
                if tx.nonce >= nonce && unspent.len() < cap - offered {
                    unspent.push(tx);
                }
            }
            b.transactions = unspent;
            offered += b.transactions.len();
            carried.push(b);
        }
        let back = self.mempool.on_new_tip(&carried, &[], read)?;
        Ok((back, newest.into()))
    }

    /// Checks and pools a batch of transactions: stateless rules, then all signatures through the
    /// parallel verifier at once, then the pool. One result per transaction, in order.
    pub fn submit_transactions(&self, txs: &[Transaction], source: TxSource) -> Vec<Result<Hash, SubmitError>> {
        let params = self.chain.params();
        let mut results: Vec<Result<Hash, SubmitError>> =
            txs.iter().map(|t| check_tx_stateless(params, t).map(|_| t.id()).map_err(SubmitError::from)).collect();
        self.precheck_pool(txs, &mut results);
        let to_verify: Vec<usize> = (0..txs.len()).filter(|i| results[*i].is_ok()).collect();
        let checks = self.verify_signatures(txs, &to_verify, &mut results);
        // The pooled transactions to gossip.
        let mut batch = Vec::new();
        let mut snapshot = None;
        for (i, tx) in txs.iter().enumerate() {
            if results[i].is_err() {
                continue;
            }
            results[i] = self.pool_insert(*tx, &mut snapshot);
            if results[i].is_ok() {
                let _ = self.events.send(Event::TxPooled { tx: *tx, source });
                if source != TxSource::Network {
                    batch.push(*tx);
                }
            }
        }
        self.queue_for_gossip(batch);
        use crate::chain::metrics::{TxLabels, TxResultLabel, TxSourceLabel};
        let source = match source {
            TxSource::Api => TxSourceLabel::Api,
            TxSource::Network => TxSourceLabel::Network,
            TxSource::Reorg => TxSourceLabel::Reorg,
        };
        let accepted = results.iter().filter(|r| r.is_ok()).count() as u64;
        let labels = crate::chain::metrics::TxSourceLabels { source };
        self.metrics.transaction_signature_checks.get_or_create(&labels).inc_by(checks);
        let fam = &self.metrics.transactions_submitted;
        fam.get_or_create(&TxLabels { source, result: TxResultLabel::Accepted }).inc_by(accepted);
        fam.get_or_create(&TxLabels { source, result: TxResultLabel::Rejected })
            .inc_by(results.len() as u64 - accepted);
        results
    }

    /// Checks the signatures of `txs[i]` for every `i` in `todo`, marking the bad ones in
    /// `results`; returns the number of signatures handed to the verifier. All at once first (one
    /// parallel batch: the honest case). If that fails, everything before the culprit verified
    /// (the verifier names the lowest failing index) and the rest is checked one by one until
    /// [`MAX_BAD_SIGNATURES_PER_BATCH`] bad ones are found; what is left is not checked
    /// (`SubmitError::Unverified`). So a batch of n costs at most n + 16 signature checks, where
    /// re-verifying the rest after each culprit cost n²/2 for a batch of junk.
    fn verify_signatures(&self, txs: &[Transaction], todo: &[usize], results: &mut [Result<Hash, SubmitError>]) -> u64 {
        if todo.is_empty() {
            return 0;
        }
        let all: Vec<Transaction> = todo.iter().map(|i| txs[*i]).collect();
        let mut checks = all.len() as u64;
        let Err(first) = self.chain.verify_transactions(&all) else { return checks };
        let culprit = todo[first.index];
        results[culprit] = Err(SubmitError::Signature(InvalidSignature { index: culprit, error: first.error }));
        let mut bad = 1;
        for &i in &todo[first.index + 1..] {
            if bad >= MAX_BAD_SIGNATURES_PER_BATCH {
                results[i] = Err(SubmitError::Unverified(bad));
                continue;
            }
            checks += 1;
            if let Err(e) = self.chain.verify_transactions(std::slice::from_ref(&txs[i])) {
                results[i] = Err(SubmitError::Signature(InvalidSignature { index: i, error: e.error }));
                bad += 1;
            }
        }
        checks
    }

    /// Refuses, before their signatures are checked, the transactions the pool would certainly
    /// refuse ([`Mempool::precheck`]): a flood of hopeless transactions (nonce gaps after an
    /// eviction, senders that cannot pay, fees below a full pool's entry fee, senders at their
    /// cap) then costs no signature verification. Gap and balance refusals are dropped (left to
    /// `pool_insert`) if a block moved the tip meanwhile.
    fn precheck_pool(&self, txs: &[Transaction], results: &mut [Result<Hash, SubmitError>]) {
        let tip = self.chain.tip().hash;
        let Ok(read) = self.chain.read() else { return };
        let mut ahead: std::collections::HashMap<Address, crate::mempool::Ahead> = std::collections::HashMap::new();
        let mut refused = Vec::new();
        for (i, tx) in txs.iter().enumerate() {
            if results[i].is_err() {
                continue;
            }
            let Ok(account) = read.account(&tx.from) else { return };
            if let Err(e) = self.mempool.precheck(tx, account, ahead.entry(tx.from).or_default()) {
                refused.push((i, e));
            }
        }
        let moved = self.chain.tip().hash != tip;
        for (i, e) in refused {
            let stale =
                matches!(e, MempoolError::Invalid(TxError::NonceGap { .. } | TxError::InsufficientBalance { .. }));
            if moved && stale {
                continue;
            }
            results[i] = Err(SubmitError::Mempool(e));
        }
    }

    /// Inserts into the pool against the tip state, read from `snapshot` (taken at the first call
    /// of a batch and shared by its transactions while the tip stays the same: one read
    /// transaction per batch, not per transaction). The snapshot and the pool can still disagree
    /// for an instant when a block is imported in between (the pool already follows the new tip,
    /// the snapshot not yet); a nonce or balance refusal is then retried on a fresh snapshot.
    fn pool_insert(
        &self,
        tx: Transaction,
        snapshot: &mut Option<(Hash, crate::state::ReadView)>,
    ) -> Result<Hash, SubmitError> {
        let mut attempts = 0;
        loop {
            // A block imported since the snapshot: take a new one, so that no transaction is
            // judged against an older state than the pool already follows.
            let current = self.chain.tip().hash;
            if snapshot.as_ref().is_none_or(|(tip, _)| *tip != current) {
                *snapshot = Some((current, self.chain.read().map_err(|e| SubmitError::Mempool(e.into()))?));
            }
            let Some((tip, view)) = snapshot.as_ref() else {
                return Err(SubmitError::Mempool(MempoolError::Store("no state snapshot".into())));
            };
            let tip = *tip;
            let account = view.account(&tx.from).map_err(|e| SubmitError::Mempool(e.into()))?;
            let result = self.mempool.insert(tx, account).map_err(SubmitError::from);
            let stale = matches!(
                result,
                Err(SubmitError::Mempool(MempoolError::Invalid(
                    TxError::NonceGap { .. } | TxError::NonceTooLow { .. } | TxError::InsufficientBalance { .. }
                )))
            );
            attempts += 1;
            if !stale || attempts >= 3 || self.chain.tip().hash == tip {
                return result;
            }
        }
    }

    /// Checks and pools one transaction from the API.
    pub fn submit_transaction(&self, tx: Transaction) -> Result<Hash, SubmitError> {
        self.submit_transactions(std::slice::from_ref(&tx), TxSource::Api)
            .pop()
            .unwrap_or(Err(SubmitError::Mempool(MempoolError::Store("no result".into()))))
    }
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Data directory (`None`: in-memory database).
    pub data_dir: Option<PathBuf>,
    /// Genesis.
    pub genesis: Genesis,
    /// Mining, if on.
    pub miner: Option<MinerConfig>,
    /// API listen address (`None`: no API server).
    pub api_addr: Option<SocketAddr>,
    /// Deepest reorg followed.
    pub max_reorg_depth: u64,
    /// Pool caps.
    pub mempool: Limits,
    /// Signatures at which the verifier goes parallel.
    pub verify_threshold: usize,
    /// Networking (`None`: a node on its own).
    pub network: Option<crate::p2p::NetworkConfig>,
    /// Admin API listen address (ban, unban, add peer); `None`: no admin API.
    pub admin_addr: Option<SocketAddr>,
    /// Admin API token source and the Hosts and Origins it accepts (`crate::api::auth`).
    pub admin_auth: crate::api::auth::AdminAuthConfig,
    /// Prometheus `/metrics` listen address; `None`: no metrics endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// The public API's limits: per-client rate, requests in flight, timeout, store readers.
    pub api_limits: crate::api::limits::Limits,
}

impl NodeConfig {
    /// Devnet defaults: in-memory, no mining, no API.
    pub fn devnet() -> Self {
        NodeConfig {
            data_dir: None,
            genesis: Genesis::devnet(),
            miner: None,
            api_addr: None,
            max_reorg_depth: DEFAULT_MAX_REORG_DEPTH,
            mempool: Limits::default(),
            verify_threshold: crate::verify::DEFAULT_PARALLEL_THRESHOLD,
            network: None,
            admin_addr: None,
            admin_auth: Default::default(),
            metrics_addr: None,
            api_limits: Default::default(),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network.
    #[error(transparent)]
    Network(#[from] crate::p2p::NetworkError),
    /// A socket or thread.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Binds `addr` and serves `app` until shutdown; returns the bound address.
async fn serve(
    addr: SocketAddr,
    what: &str,
    flag: &str,
    app: axum::Router,
    shutdown: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<SocketAddr, NodeError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| NodeError::Io {
        context: format!("cannot listen on {addr} for the {what}; choose another {flag}"),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| NodeError::Io { context: format!("{what} address"), source })?;
    tracing::info!(addr = %local, "{what} listening");
    let token = shutdown.clone();
    let what = what.to_string();
    tasks.spawn(async move {
        // With the peer address: the public API's rate limit is per client address.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move { token.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "{what} server failed");
        }
    });
    Ok(local)
}

/// Builds a [`Node`] step by step.
#[derive(Debug, Clone)]
pub struct NodeBuilder {
    config: NodeConfig,
}

impl NodeBuilder {
    /// Uses a data directory instead of memory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }
    /// Uses another genesis.
    pub fn genesis(mut self, genesis: Genesis) -> Self {
        self.config.genesis = genesis;
        self
    }
    /// Mines with one thread to `address`.
    pub fn mine(mut self, address: Address, threads: usize) -> Self {
        self.config.miner = Some(MinerConfig { address, threads, max_block_txs: DEFAULT_MAX_BLOCK_TXS });
        self
    }
    /// Joins the network with these settings.
    pub fn network(mut self, network: crate::p2p::NetworkConfig) -> Self {
        self.config.network = Some(network);
        self
    }
    /// Serves `/metrics` on `addr`.
    pub fn metrics(mut self, addr: SocketAddr) -> Self {
        self.config.metrics_addr = Some(addr);
        self
    }
    /// Serves the admin API on `addr`.
    pub fn admin(mut self, addr: SocketAddr) -> Self {
        self.config.admin_addr = Some(addr);
        self
    }
    /// Serves the API on `addr` (port 0 picks one; see [`Node::api_addr`]).
    pub fn api(mut self, addr: SocketAddr) -> Self {
        self.config.api_addr = Some(addr);
        self
    }
    /// Replaces the whole configuration.
    pub fn config(mut self, config: NodeConfig) -> Self {
        self.config = config;
        self
    }
    /// Opens the database and starts the miner and API server.
    pub async fn start(self) -> Result<Node, NodeError> {
        Node::start(self.config).await
    }
}

/// A running node.
pub struct Node {
    core: Arc<Core>,
    miner: Option<Miner>,
    network: Option<crate::p2p::NetworkHandle>,
    registry: Arc<prometheus_client::registry::Registry>,
    api_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    /// The import thread of a networked node (peer blocks), stopped after the network. Last, so
    /// that a node dropped without [`Node::shutdown`] aborts the network task (which reads the
    /// import results) before the thread is joined.
    importer: Option<Importer>,
}

impl Node {
    /// A builder on devnet defaults.
    pub fn builder() -> NodeBuilder {
        NodeBuilder { config: NodeConfig::devnet() }
    }

    /// Opens the chain described by `config` and returns its core (no miner, no API).
    pub fn open_core(config: &NodeConfig) -> Result<Core, StoreError> {
        let store = match &config.data_dir {
            Some(dir) => Store::open(dir, &config.genesis)?,
            None => Store::in_memory(&config.genesis)?,
        };
        let chain =
            Chain::new(store, config.genesis.clone(), Verifier::new(config.verify_threshold), config.max_reorg_depth)?;
        Ok(Core::new(chain, config.mempool))
    }

    async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let core = Arc::new(tokio::task::block_in_place(|| Self::open_core(&config))?);
        let tip = core.chain.tip();
        tracing::info!(
            genesis = %core.chain.params().genesis_hash,
            chain_id = core.chain.params().chain_id,
            height = tip.header.height,
            tip = %tip.hash,
            "chain opened"
        );
        let shutdown = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut registry = crate::metrics::registry(&core);
        let api_metrics = crate::api::limits::Metrics::register(registry.sub_registry_with_prefix("vision_api"));
        let importer = match config.network {
            Some(_) => Some(
                Importer::start(core.clone(), shutdown.clone())
                    .map_err(|source| NodeError::Io { context: "cannot start the import thread".into(), source })?,
            ),
            None => None,
        };
        let network = match config.network {
            Some(net) => Some(crate::p2p::Service::spawn(
                net,
                core.clone(),
                registry.sub_registry_with_prefix("vision_p2p"),
                shutdown.clone(),
                &mut tasks,
            )?),
            None => None,
        };
        let registry = Arc::new(registry);
        let metrics_addr = match config.metrics_addr {
            Some(addr) => {
                Some(crate::metrics::serve(addr, registry.clone(), shutdown.clone(), &mut tasks).await.map_err(
                    |source| NodeError::Io {
                        context: format!("cannot listen on {addr} for metrics; choose another --metrics-addr"),
                        source,
                    },
                )?)
            }
            None => None,
        };
        let state = crate::api::AppState::new(core.clone(), network.clone(), config.api_limits, api_metrics);
        let api_addr = match config.api_addr {
            Some(addr) => {
                Some(serve(addr, "API", "--api-addr", crate::api::router(state.clone()), &shutdown, &mut tasks).await?)
            }
            None => None,
        };
        let admin_addr = match config.admin_addr {
            Some(addr) => {
                let auth = &config.admin_auth;
                let guard = crate::api::auth::AdminGuard::start(auth, config.data_dir.as_deref(), addr)
                    .map_err(|e| NodeError::Io { context: "admin API".into(), source: std::io::Error::other(e) })?;
                let app = crate::api::admin_router(state, guard.clone());
                let local = serve(addr, "admin API", "--admin-addr", app, &shutdown, &mut tasks).await?;
                guard.bound(local);
                Some(local)
            }
            None => None,
        };
        let miner = match config.miner {
            Some(mc) => {
                tracing::info!(address = %mc.address, threads = mc.threads, "mining");
                if let Some(i) = crate::chain::genesis::dev_key_index(&mc.address) {
                    // Once, at start: the key is public, so whoever reads the source can spend
                    // what this node earns.
                    tracing::warn!(
                        address = %mc.address,
                        "mining rewards go to published dev key {i}, whose secret anyone can derive: \
                         fine on a devnet, never on a network with value; pass --miner ADDRESS \
                         (an address of your own, from `vision-node wallet new`)"
                    );
                }
                Some(
                    Miner::start(core.clone(), mc)
                        .map_err(|source| NodeError::Io { context: "cannot start miner threads".into(), source })?,
                )
            }
            None => {
                tracing::info!(
                    "not mining: pass --miner ADDRESS (your reward address) or --mine true to mine; \
                     a node on a genesis file does not mine by default"
                );
                None
            }
        };
        Ok(Node { core, miner, network, importer, registry, api_addr, admin_addr, metrics_addr, shutdown, tasks })
    }

    /// The shared core.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The node's metrics in the text format `/metrics` serves (also without a metrics server).
    pub fn metrics_text(&self) -> String {
        crate::metrics::encode(&self.registry)
    }

    /// Where the API listens, if it does.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where the admin API listens, if it does.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The network handle, if the node is networked.
    pub fn network(&self) -> Option<&crate::p2p::NetworkHandle> {
        self.network.as_ref()
    }

    /// Stops the API, then the miner (an import in flight completes), then closes the database.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(std::time::Duration::from_secs(10), drain).await.is_err() {
            tracing::warn!("API tasks did not stop within 10 s; aborting them");
            self.tasks.abort_all();
        }
        if let Some(mut m) = self.miner.take() {
            tokio::task::block_in_place(|| m.stop());
        }
        // After the network task has ended: nothing queues blocks any more.
        if let Some(importer) = self.importer.take() {
            tokio::task::block_in_place(|| importer.stop());
        }
        let tip = self.core.chain.tip();
        tracing::info!(height = tip.header.height, tip = %tip.hash, "node stopped");
    }
}

/// The network's door into the node: every peer transaction goes through the same [`Core`]
/// methods as the API's, tagged as coming from the network; peer blocks go to the import queue
/// (its half of the door, `crate::p2p::ImportQueue`, is implemented in `importer.rs`).
impl crate::p2p::ChainAccess for Core {
    fn genesis_hash(&self) -> Hash {
        self.chain.params().genesis_hash
    }

    fn params(&self) -> &crate::chain::consensus::ChainParams {
        self.chain.params()
    }

    fn tip(&self) -> crate::chain::Tip {
        self.chain.tip()
    }

    fn max_reorg_depth(&self) -> u64 {
        self.chain.max_reorg_depth()
    }

    fn store(&self) -> &crate::state::Store {
        self.chain.store()
    }

    fn submit_transactions(&self, txs: &[Transaction]) -> Vec<Result<Hash, SubmitError>> {
        Core::submit_transactions(self, txs, TxSource::Network)
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        Core::subscribe(self)
    }

    fn attach_gossip_outbox(&self, cap: usize) -> mpsc::Receiver<Transaction> {
        Core::attach_gossip_outbox(self, cap)
    }

    fn take_gossip_outbox_dropped(&self) -> u64 {
        Core::take_gossip_outbox_dropped(self)
    }

    fn mempool_len(&self) -> usize {
        self.mempool.len()
    }

    fn observe_block_propagation_delay(&self, seconds: f64) {
        self.metrics.block_propagation_delay.observe(seconds);
    }

    fn bounds(&self) -> &crate::bounds::Bounds {
        &self.bounds
    }
}

/// The miner's door into the node: templates from the node's cache, and found blocks through
/// [`Core::import_block`] like every other block.
impl crate::miner::MinerAccess for Core {
    fn template(&self, miner: Address, max_txs: usize) -> Result<crate::miner::Template, StoreError> {
        self.templates.get(&self.chain, &self.mempool, miner, max_txs)
    }

    fn tip_hash(&self) -> Hash {
        self.chain.tip().hash
    }

    fn mempool_version(&self) -> u64 {
        self.mempool.version()
    }

    fn submit_mined(&self, block: &Block) -> Result<ImportOutcome, ImportError> {
        Core::import_block(self, block, BlockSource::Miner)
    }
}

/// What `/metrics` reads of the node at scrape time.
impl crate::metrics::ScrapeSource for Core {
    fn tip(&self) -> crate::chain::Tip {
        self.chain.tip()
    }

    fn mempool(&self) -> (crate::mempool::Stats, Limits) {
        (self.mempool.stats(), self.mempool.limits())
    }

    fn template_counts(&self) -> (u64, u64) {
        self.templates.counts()
    }

    fn chain_metrics(&self) -> &crate::chain::metrics::Metrics {
        &self.metrics
    }

    fn bounds(&self) -> Arc<crate::bounds::Bounds> {
        self.bounds.clone()
    }

    fn record_bounds(&self) {
        Core::record_bounds(self)
    }
}

/// The API's door into the node: read snapshots, the pool's counters, and submissions tagged as
/// coming from the API.
impl crate::api::NodeAccess for Core {
    fn tip(&self) -> crate::chain::Tip {
        self.chain.tip()
    }

    fn params(&self) -> &crate::chain::consensus::ChainParams {
        self.chain.params()
    }

    fn read(&self) -> Result<crate::state::ReadView, StoreError> {
        self.chain.read()
    }

    fn mempool_stats(&self) -> crate::mempool::Stats {
        self.mempool.stats()
    }

    fn pooled(&self, id: &Hash) -> Option<Transaction> {
        self.mempool.get(id)
    }

    fn pending_nonce(&self, from: &Address, state_nonce: u64) -> u64 {
        self.mempool.pending_nonce(from, state_nonce)
    }

    fn submit_transaction(&self, tx: Transaction) -> Result<Hash, SubmitError> {
        Core::submit_transaction(self, tx)
    }

    fn submit_transactions(&self, txs: &[Transaction]) -> Vec<Result<Hash, SubmitError>> {
        Core::submit_transactions(self, txs, TxSource::Api)
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        Core::subscribe(self)
    }

    fn bounds(&self) -> &crate::bounds::Bounds {
        &self.bounds
    }

    fn bounds_arc(&self) -> Arc<crate::bounds::Bounds> {
        self.bounds.clone()
    }

    fn reconsider_block(&self, hash: &Hash) -> Result<crate::state::Reconsidered, crate::state::ReconsiderError> {
        self.chain.reconsider(hash)
    }
}
