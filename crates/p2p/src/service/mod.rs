//! The swarm task: the one owner of the libp2p [`Swarm`] and its event loop, which dispatches
//! to components that each do one thing:
//!
//! - [`validate`]: gossip validation of a block, headers first (relay, orphan or drop);
//! - [`charge`](mod@charge): who pays for a bad block (the charge table of ADR 012);
//! - [`deep_fork`]: peers on the other side of a fork deeper than the reorg window (reported,
//!   disconnected and refused for a while, never charged);
//! - [`sync_client`]: which peer to sync from and which ranges to ask for (a pure state machine);
//! - [`serve`]: the sync server's store reads and budgets;
//! - [`orphans`]: blocks waiting for their parent;
//! - [`workers`]: the transaction worker thread, owned and joined by the loop, and the replies
//!   that bring the node importer's results back;
//! - the peer manager (`crate::peer_manager`) for scores, bans and rate limits.
//!
//! ```text
//!  commands (admin/API) ─┐                      ┌─> validate ─> node importer ─┐ (ChainAccess::queue_import:
//!  tx outbox (API and   ─┤                      │   (gossip)    (its thread)   │  gossip, orphans, fetched
//!   reorg txs to gossip) ├─> event loop ────────┤                              │  blocks, sync batches)
//!  core events (mined)  ─┤   (owns Swarm,       └─> tx worker ─────────────────┴─> results back to the loop:
//!  swarm events ─────────┘    PeerManager, Sync)                                  gossip verdicts, penalties,
//!                                                                                 sync progress, orphans
//! ```
//!
//! Own transactions reach the loop through a bounded channel of their own ([`TX_OUTBOX_CAP`]), not
//! the core's event broadcast: the loop may fall behind the broadcast under load and lose events,
//! and a transaction lost there would never be gossiped. A lost block event only delays the block:
//! the loop then publishes the tip again.
//!
//! Nothing here blocks the loop: block imports run on the node's import thread and transaction
//! batches on the tx worker (bounded queues, a full queue drops the work and counts it), store
//! reads for serving sync requests and the peer book's writes on the blocking pool. The tx worker
//! and the blocking tasks are owned by the loop: when it stops it joins the worker and waits for
//! the tasks; the node stops its importer after the loop has ended.
//!
//! Gossip validation (headers first, [`validate`]): a block is relayed (Accept) once it decodes,
//! passes the header's stateless checks and its header checks out against a stored, valid parent
//! (difficulty, median time, proof of work against the required difficulty); full import follows
//! on the node's import thread. Relaying before the body is checked keeps propagation fast, and a relayed block
//! has cost its maker a real block's work. A block whose parent is unknown is not relayed: it waits
//! in the orphan pool with its sender and author while its parent is fetched from the sender. Who
//! pays for a bad block is the charge table's business ([`charge`](mod@charge), ADR 012): the sender for what
//! the header and its parent show, the block's *author* (the peer that signed the gossip message,
//! StrictSign) for what only import finds; an author we are not connected to is banned all the
//! same, so it is refused when it dials. A transaction batch is judged after
//! the worker checked every transaction, each on its own (`charge::judge_tx_batch`): Reject if
//! any is the sender's fault (one charge per faulty transaction), Accept if every one is in the
//! pool and one is new, Ignore otherwise; new transactions of a batch that is not relayed go out
//! in the node's own next batch.
//!
//! Sync, headers first ([`sync_client`]): every peer's [`Status`] is exchanged on connect and every
//! [`STATUS_INTERVAL`]. A peer claiming more work than our tip is only a candidate: its canonical
//! headers are fetched (`HeadersByRange`, `/vision/sync/2`) and checked (each follows the previous
//! one and meets its difficulty, which must be the one the retarget requires after its ancestors:
//! [`chain_view`]) and their work summed before any body is asked for. A candidate whose
//! headers do not connect, miss their work, prove less than it claimed or do not come within
//! `HEADER_TIMEOUT` is charged and rotated out, and the next one is tried. Bodies of the proven
//! chain come in batches of [`BATCH`] blocks, up to [`MAX_INFLIGHT`] requests at once, spread over
//! every peer whose tip is on that chain; each block is checked against its proven header (hash,
//! transactions root) before it is queued for import, in order. A server that times out or sends a
//! block that is not the proven one is charged and not asked again for that chain.

pub mod chain_view;
pub mod charge;
pub mod deep_fork;
pub mod orphans;
pub mod peer_book;
pub mod serve;
pub mod sync_client;
pub mod validate;
pub mod workers;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::request_response::{self, InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::behaviour::{Behaviour, BehaviourEvent, build_swarm};
use super::gossip::{MAX_TX_BATCH, Topics, decode_tx_batch, encode_tx_batch};
use super::metrics::{GossipLabels, ReasonLabels, ResultLabel, TopicLabel, TopicLabels};
use super::peer_manager::{self, Direction, Effect, PeerManager, RateClass};
use super::sync::{ErrorCode, Refused, Request, Response, Status};
use super::{BanInfo, COMMAND_CHANNEL_CAP, Command, NetInfo, NetworkConfig, NetworkError, NetworkHandle, PeerInfo};
use crate::addrman::{AddrGroup, AddrMan};
use crate::chain_access::{ChainAccess, ImportMode, ImportWork};
use vision_mempool::events::{BlockSource, Event};
use vision_primitives::consensus::{BlockError, now_ms};
use vision_primitives::errors::PeerAction;
use vision_primitives::types::{Block, Hash, Transaction};
use vision_state::{ImportError, ImportOutcome};

use charge::{Route, charge, charge_import};
pub use orphans::{ORPHAN_BYTES_CAP, ORPHAN_CAP, ORPHANS_PER_PEER};
use orphans::{Orphan, OrphanPool};
use serve::{Admit, ServeBudget, blocks_response_len, headers_response_len};
pub use serve::{
    MAX_SERVING, MAX_SERVING_PER_PEER, MAX_UNSENT_RESPONSE_BYTES, MAX_UNSENT_RESPONSE_BYTES_PER_PEER, serve_blocks,
    serve_headers,
};
pub use sync_client::{BATCH, HEADER_BATCH, MAX_INFLIGHT, MAX_SYNC_HEADERS};
use sync_client::{BatchOutcome, Output, SyncClient};
use validate::{Judgement, admit_block};
use workers::{Done, Job, Workers, batch_reply, block_reply};
pub use workers::{RESULT_QUEUE_CAP, TX_QUEUE_CAP};

/// How often statuses are refreshed.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// Most dials from the address manager per status round.
pub const MAX_DIALS_PER_ROUND: usize = 8;
/// How often the INFO status line (peers, height, sync) is logged.
pub const STATUS_LOG_INTERVAL: Duration = Duration::from_secs(30);
/// Housekeeping period (peer manager heartbeat, dialing, sync scheduling, tx batch flush).
pub const TICK: Duration = Duration::from_millis(100);
/// An orphan at most this many blocks above our tip has its parent fetched by hash; further ahead,
/// range sync catches up instead.
pub const ORPHAN_FETCH_GAP: u64 = 8;
/// Own transactions (submitted through the API, or returned to the pool by a reorganisation)
/// waiting to be gossiped: the outbox channel from the core plus the batch being filled. When it
/// is full, the newest are not queued (`dropped{queue="tx_outbox"}`); they stay in the pool.
pub const TX_OUTBOX_CAP: usize = 16 * MAX_TX_BATCH;

/// Transaction batches queued for the tx worker, in the resource registry.
pub const TX_JOBS: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("tx_jobs", "p2p::service::TX_QUEUE_CAP", TX_QUEUE_CAP);
/// Worker results queued for the network loop, in the resource registry.
pub const RESULTS: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("results", "p2p::service::RESULT_QUEUE_CAP", RESULT_QUEUE_CAP);
/// Orphan blocks held while their ancestors are fetched, in the resource registry.
pub const ORPHANS: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("orphans", "p2p::service::ORPHAN_CAP", ORPHAN_CAP);
/// Encoded bytes of the orphan blocks held, in the resource registry.
pub const ORPHAN_BYTES: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("orphan_bytes", "p2p::service::ORPHAN_BYTES_CAP", ORPHAN_BYTES_CAP);
/// Peers with a peer-book or ban change waiting to be written, in the resource registry.
pub const PEER_BOOK_PENDING: vision_primitives::bounds::Resource = vision_primitives::bounds::Resource::new(
    "peer_book_pending",
    "p2p::service::peer_book::MAX_PENDING_CHANGES",
    peer_book::MAX_PENDING_CHANGES,
);
/// Own transactions waiting to be gossiped, in the resource registry.
pub const TX_OUTBOX: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("tx_outbox", "p2p::service::TX_OUTBOX_CAP", TX_OUTBOX_CAP);
/// Sync responses being read from the store, in the resource registry.
pub const SYNC_SERVING: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("sync_serving", "p2p::service::MAX_SERVING", MAX_SERVING);
/// Bytes of block responses not yet written to their peers, in the resource registry.
pub const SYNC_UNSENT_BYTES: vision_primitives::bounds::Resource = vision_primitives::bounds::Resource::new(
    "sync_unsent_bytes",
    "p2p::service::MAX_UNSENT_RESPONSE_BYTES",
    MAX_UNSENT_RESPONSE_BYTES,
);
/// Our range requests in flight while syncing, in the resource registry.
pub const SYNC_INFLIGHT: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("sync_inflight", "p2p::service::MAX_INFLIGHT", MAX_INFLIGHT);
/// Verified headers held by the sync under way (headers first), in the resource registry.
pub const SYNC_HEADERS: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("sync_headers", "p2p::service::MAX_SYNC_HEADERS", MAX_SYNC_HEADERS);
/// Header requests cost one `blocks_requested` token per this many headers (a header is 161
/// bytes, a block up to 4 MiB): a full `HeadersByRange` of 2,000 costs 32.
pub const HEADERS_PER_BLOCK_TOKEN: u32 = 64;

/// Records the occupancy of a bounded channel from a sender of it.
fn record_channel<T>(
    bounds: &vision_primitives::bounds::Bounds,
    r: vision_primitives::bounds::Resource,
    tx: &tokio::sync::mpsc::Sender<T>,
) {
    bounds.record(r, tx.max_capacity() - tx.capacity());
}

#[derive(Debug, Clone)]
enum Pending {
    /// A status request to this peer (at most one per peer in flight).
    Status(PeerId),
    Range {
        start: u64,
        count: u32,
    },
    Hash(Vec<Hash>),
    /// A header request of the sync client.
    Headers {
        start: u64,
    },
}

/// What a block or header request asks the store for.
enum Serve {
    Hashes(Vec<Hash>),
    Range(u64, u32),
    Headers(u64, u32),
}

/// The swarm task.
pub struct Service {
    swarm: Swarm<Behaviour>,
    core: Arc<dyn ChainAccess>,
    peers: PeerManager,
    topics: Topics,
    info: Arc<NetInfo>,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Receiver<Event>,
    tx_jobs: mpsc::Sender<Job>,
    results: mpsc::Receiver<Done>,
    results_tx: mpsc::Sender<Done>,
    pending: HashMap<OutboundRequestId, Pending>,
    sync: SyncClient<PeerId>,
    orphans: OrphanPool<PeerId>,
    /// Own transactions to gossip, from [`ChainAccess::attach_gossip_outbox`] (at most [`TX_OUTBOX_CAP`]).
    outbox: mpsc::Receiver<Transaction>,
    /// Whether the outbox's sender is still attached (a second network on this core replaces it).
    outbox_open: bool,
    /// Transactions taken from the outbox for the next gossip batch: published when it holds
    /// [`MAX_TX_BATCH`], or at the next tick.
    outbox_batch: Vec<Transaction>,
    serve: ServeBudget<PeerId, InboundRequestId>,
    /// The import threads, joined when the loop ends.
    workers: Option<Workers>,
    /// Store work on the blocking pool (sync reads, peer book and ban writes), awaited when the
    /// loop ends so that nothing of the network outlives it.
    blocking: tokio::task::JoinSet<()>,
    /// Peer-book and ban changes waiting to be written ([`peer_book`]).
    peer_book: peer_book::PeerBookWrites,
    /// Whom we know of and whom to dial ([`crate::addrman`]).
    addrman: AddrMan,
    /// Anchors dialled at start and not connected yet (a failure is logged at INFO).
    dialing_anchors: std::collections::HashSet<PeerId>,
    /// Mixed into the random numbers of outbound selection.
    select_counter: u64,
    /// The peer-book write in progress, if any (one at a time, so writes land in order).
    peer_book_flush: Option<tokio::task::JoinHandle<()>>,
    /// Peers whose score crossed the disconnect threshold, disconnected at the next tick.
    disconnect_at_tick: Vec<PeerId>,
    bootstrap: Vec<Multiaddr>,
    /// Our listeners (closed at shutdown).
    listeners: Vec<libp2p::core::transport::ListenerId>,
    last_status_round: Instant,
    last_status_log: Instant,
    last_kad_bootstrap: Instant,
    shutdown: CancellationToken,
    metrics: super::metrics::Metrics,
}

fn unix_ms() -> u64 {
    now_ms()
}

impl Service {
    /// Builds the swarm, starts listening and dialing, spawns the workers and the event loop on
    /// the current tokio runtime. Returns the handle.
    pub fn spawn(
        config: NetworkConfig,
        core: Arc<dyn ChainAccess>,
        registry: &mut prometheus_client::registry::Registry,
        shutdown: CancellationToken,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> Result<NetworkHandle, NetworkError> {
        let topics = Topics::new(&core.genesis_hash());
        let metrics = super::metrics::Metrics::new(registry);
        let mut swarm = build_swarm(
            config.transport,
            &config.keypair,
            config.links.as_ref(),
            &config.peers,
            &topics,
            Some(registry.sub_registry_with_prefix("gossipsub")),
        )?;
        let local = *swarm.local_peer_id();
        for t in [&topics.blocks, &topics.txs] {
            swarm.behaviour_mut().gossipsub.subscribe(t).map_err(|e| NetworkError::Build(e.to_string()))?;
        }
        let mut listeners = Vec::new();
        for addr in &config.listen {
            listeners.push(
                swarm
                    .listen_on(addr.clone())
                    .map_err(|e| NetworkError::Listen { addr: addr.clone(), message: e.to_string() })?,
            );
        }
        for addr in &config.external {
            swarm.add_external_address(addr.clone());
        }
        // Bans from the database.
        let store = core.store();
        let bans: Vec<(PeerId, u64)> = store
            .load_bans()
            .map_err(|e| NetworkError::Build(e.to_string()))?
            .into_iter()
            .filter_map(|(id, until)| PeerId::from_bytes(&id).ok().map(|p| (p, until)))
            .collect();
        let peers = PeerManager::new(config.peers.clone(), bans, unix_ms());
        core.bounds().set_cap(peer_manager::PEERS, config.peers.max_peers);
        for (p, _) in peers.bans() {
            swarm.behaviour_mut().blocked.block_peer(p);
        }
        // Bootstrap and remembered peers.
        for addr in &config.bootstrap {
            if let Some(peer) = peer_of(addr) {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap address");
            }
        }
        // The address manager, from the stored book (or, once, from the table before it).
        let mut peer_book = peer_book::PeerBookWrites::default();
        let mut addrman = AddrMan::new(addrman_key(&config.keypair));
        load_addrman(store, &mut addrman, &mut peer_book)?;
        let mut dialing_anchors = std::collections::HashSet::new();
        if config.dial_known_peers {
            // Anchors first (the outbound peers we had before the restart), then peers of other
            // groups from the tables.
            let now_ms = unix_ms();
            let mut groups = std::collections::BTreeSet::new();
            let anchors: Vec<PeerId> = addrman.anchors().to_vec();
            for peer in anchors {
                let Some(record) = addrman.get(&peer) else { continue };
                if peer == local || peers.is_banned(&peer, now_ms) || record.addrs.is_empty() {
                    continue;
                }
                groups.insert(record.group());
                let addrs = record.addrs.clone();
                addrman.attempt(&peer, now_ms);
                dialing_anchors.insert(peer);
                let _ = swarm.dial(libp2p::swarm::dial_opts::DialOpts::peer_id(peer).addresses(addrs).build());
            }
            let more = config.peers.min_outbound_peers.saturating_sub(dialing_anchors.len());
            let mut dialled = Vec::new();
            for i in 0..more as u64 {
                let Some((peer, addrs)) = addrman.select(random_u64(i), now_ms, &groups, |p| {
                    *p == local || dialing_anchors.contains(p) || dialled.contains(p) || peers.is_banned(p, now_ms)
                }) else {
                    break;
                };
                if let Some(first) = addrs.first() {
                    groups.insert(AddrGroup::of(first));
                }
                addrman.attempt(&peer, now_ms);
                dialled.push(peer);
                let _ = swarm.dial(libp2p::swarm::dial_opts::DialOpts::peer_id(peer).addresses(addrs).build());
            }
            tracing::info!(
                anchors = dialing_anchors.len(),
                others = dialled.len(),
                known = addrman.len(),
                tried = addrman.tried_count(),
                "dialling remembered peers"
            );
        }

        let info = Arc::new(NetInfo::new(local));
        info.deep_forks.metrics().register(registry);
        let window = core.max_reorg_depth();
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CHANNEL_CAP);
        let (tx_tx, tx_rx) = mpsc::channel(TX_QUEUE_CAP);
        let (res_tx, res_rx) = mpsc::channel(RESULT_QUEUE_CAP);
        let workers = Workers::spawn(&core, tx_rx, &res_tx, &shutdown)?;
        // The channel and the batch being filled hold at most TX_OUTBOX_CAP together.
        let outbox = core.attach_gossip_outbox(TX_OUTBOX_CAP - MAX_TX_BATCH);
        let service = Service {
            swarm,
            events: core.subscribe(),
            core,
            peers,
            topics,
            info: info.clone(),
            commands: cmd_rx,
            tx_jobs: tx_tx,
            results: res_rx,
            results_tx: res_tx,
            pending: HashMap::new(),
            sync: {
                let mut sync = SyncClient::new();
                sync.set_reorg_window(window);
                sync
            },
            orphans: OrphanPool::default(),
            outbox,
            outbox_open: true,
            outbox_batch: Vec::with_capacity(MAX_TX_BATCH),
            serve: ServeBudget::default(),
            workers: Some(workers),
            blocking: tokio::task::JoinSet::new(),
            peer_book,
            addrman,
            dialing_anchors,
            select_counter: 0,
            peer_book_flush: None,
            disconnect_at_tick: Vec::new(),
            bootstrap: config.bootstrap,
            listeners,
            last_status_round: Instant::now(),
            last_status_log: Instant::now(),
            last_kad_bootstrap: Instant::now(),
            shutdown,
            metrics,
        };
        tracing::info!(peer_id = %local, "network started");
        tasks.spawn(service.run());
        Ok(NetworkHandle { commands: cmd_tx, info })
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = MAX_TX_BATCH.saturating_sub(self.outbox_batch.len());
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                Some(cmd) = self.commands.recv() => self.on_command(cmd),
                Some(done) = self.results.recv() => self.on_done(done),
                // Before the swarm, whose events never run out under load.
                n = self.outbox.recv_many(&mut self.outbox_batch, room), if self.outbox_open && room > 0 => {
                    self.on_outbox(n)
                }
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                ev = self.events.recv() => self.on_core_event(ev),
                _ = tick.tick() => self.on_tick(),
            }
        }
        // Close the listeners explicitly: the memory transport frees a port only this way, so a
        // node restarted in the same process (simulations) can listen on it again.
        for id in std::mem::take(&mut self.listeners) {
            self.swarm.remove_listener(id);
        }
        self.stop_workers().await;
        tracing::info!("network stopped");
    }

    /// Ends the workers and the blocking tasks and waits for them: the job queues' senders are
    /// dropped (a worker finishes the job in hand, then sees its queue closed), the results queue
    /// is drained meanwhile so that no worker waits on it.
    /// Writes the waiting peer-book and ban changes in one transaction on the blocking pool, if a
    /// write is due and none is in progress.
    fn flush_peer_book(&mut self, now: Instant) {
        self.note_addrman_changes(now);
        if self.peer_book_flush.as_ref().is_some_and(|h| !h.is_finished()) || !self.peer_book.due(now) {
            return;
        }
        let changes = self.peer_book.take();
        let core = self.core.clone();
        let writes = self.metrics.peer_book_writes.clone();
        self.peer_book_flush =
            Some(tokio::task::spawn_blocking(move || write_peer_book(core.as_ref(), &changes, &writes)));
    }

    /// The anchors brought up to date (our outbound peers, connected longest first; anchors not
    /// reached since the restart stay until a dial of them fails, so a restart right after a
    /// restart still knows them), and the address manager's changed records handed to the
    /// peer-book writes.
    fn note_addrman_changes(&mut self, now: Instant) {
        let mut outbound: Vec<(Instant, PeerId)> = self
            .peers
            .peers()
            .into_iter()
            .filter(|p| p.direction == Direction::Outbound)
            .map(|p| (p.connected_since, p.peer))
            .collect();
        outbound.sort();
        let mut anchors: Vec<PeerId> = outbound.into_iter().map(|(_, p)| p).collect();
        for old in self.addrman.anchors().to_vec() {
            let still_good = self.addrman.get(&old).is_some_and(|r| r.failures == 0);
            if anchors.len() < crate::addrman::MAX_ANCHORS && still_good && !anchors.contains(&old) {
                anchors.push(old);
            }
        }
        self.addrman.set_anchors(&anchors);
        if !self.addrman.has_changes() {
            return;
        }
        let (records, anchors) = self.addrman.take_changes();
        for (peer, record) in records {
            let record = record.as_ref().map(crate::addrman::encode_record);
            if !self.peer_book.record(peer.to_bytes(), record, now) {
                self.drop_count("peer_book");
            }
        }
        if let Some(anchors) = anchors {
            self.peer_book.anchors(anchors.iter().map(|p| p.to_bytes()).collect(), now);
        }
    }

    async fn stop_workers(&mut self) {
        let (closed_txs, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx_jobs, closed_txs));
        let (closed_results, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.results_tx, closed_results));
        self.results.close();
        while self.results.recv().await.is_some() {}
        while self.blocking.join_next().await.is_some() {}
        // The peer book: the write in progress, then whatever is left (none lost at shutdown).
        if let Some(h) = self.peer_book_flush.take() {
            let _ = h.await;
        }
        self.note_addrman_changes(Instant::now());
        if !self.peer_book.is_empty() {
            let changes = self.peer_book.take();
            let core = self.core.clone();
            let writes = self.metrics.peer_book_writes.clone();
            let _ = tokio::task::spawn_blocking(move || write_peer_book(core.as_ref(), &changes, &writes)).await;
        }
        if let Some(workers) = self.workers.take() {
            let _ = tokio::task::spawn_blocking(move || workers.join()).await;
        }
    }

    fn drop_count(&mut self, queue: &'static str) {
        self.drop_many(queue, 1);
    }

    fn drop_many(&mut self, queue: &'static str, n: u64) {
        self.metrics.dropped.get_or_create(&super::metrics::QueueLabels { queue: queue.to_string() }).inc_by(n);
    }

    fn our_status(&self) -> Status {
        let tip = self.core.tip();
        Status {
            genesis: self.core.genesis_hash(),
            tip: tip.hash,
            height: tip.header.height,
            total_work: tip.total_work,
        }
    }

    // ----- peer management -------------------------------------------------------------------

    fn report(&mut self, peer: PeerId, action: PeerAction, reason: &'static str) {
        tracing::debug!(%peer, action = action.as_str(), reason, "peer penalised");
        self.metrics
            .peer_actions
            .get_or_create(&super::metrics::ActionLabels {
                action: action.as_str().to_string(),
                reason: reason.to_string(),
            })
            .inc();
        let effects = self.peers.report(peer, action, reason, Instant::now(), unix_ms());
        for effect in effects {
            match effect {
                // A score-triggered disconnect waits for the next tick, so the rest of a burst the
                // peer already sent is still judged: faults in quick succession reach the ban
                // threshold, as the policy table says, instead of being cut off at the disconnect
                // threshold (after which the peer is turned away and could never be banned).
                Effect::Disconnect { peer } => {
                    if !self.disconnect_at_tick.contains(&peer) {
                        self.disconnect_at_tick.push(peer);
                    }
                }
                other => self.apply(vec![other]),
            }
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Disconnect { peer } => {
                    tracing::debug!(%peer, score = self.peers.score(&peer), "disconnecting peer (score)");
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
                Effect::Ban { peer, until_unix_ms, reason } => {
                    tracing::warn!(%peer, reason, until_unix_ms, "peer banned");
                    self.metrics.bans.get_or_create(&ReasonLabels { reason: reason.to_string() }).inc();
                    self.swarm.behaviour_mut().blocked.block_peer(peer);
                    self.swarm.behaviour_mut().kad.remove_peer(&peer);
                    self.sync.on_peer_gone(&peer);
                    self.peer_book.ban(peer.to_bytes(), until_unix_ms, Instant::now());
                }
                Effect::Unban { peer } => {
                    tracing::info!(%peer, "ban lifted");
                    self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                    self.peer_book.unban(peer.to_bytes(), Instant::now());
                }
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Peers(reply) => {
                let list = self
                    .peers
                    .peers()
                    .into_iter()
                    .map(|p| PeerInfo {
                        peer_id: p.peer.to_string(),
                        addresses: p.addrs.iter().map(|a| a.to_string()).collect(),
                        direction: match p.direction {
                            Direction::Inbound => "inbound".into(),
                            Direction::Outbound => "outbound".into(),
                        },
                        score: p.score,
                        client: p.agent.clone(),
                        height: self.sync.status(&p.peer).map(|s| s.height),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::Standing { peer, reply } => {
                let banned = self.peers.is_banned(&peer, unix_ms());
                let score = self.peers.score(&peer);
                let refused = banned || score <= self.peers.config().disconnect_threshold;
                let connected = self.swarm.is_connected(&peer);
                let _ = reply.send(super::PeerStanding { connected, banned, score, refused });
            }
            Command::Bans(reply) => {
                let now = unix_ms();
                let list = self
                    .peers
                    .bans()
                    .into_iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(p, until)| BanInfo { peer_id: p.to_string(), until_unix_ms: until })
                    .collect();
                let _ = reply.send(list);
            }
            Command::Ban { peer, duration, reply } => {
                let effects = self.peers.ban(peer, duration, "admin", unix_ms());
                self.apply(effects);
                let _ = reply.send(());
            }
            Command::Unban { peer, reply } => {
                let effects = self.peers.unban(peer);
                self.apply(effects);
                let _ = reply.send(());
            }
            Command::Dial { addr, reply } => {
                if let Some(p) = peer_of(&addr) {
                    self.swarm.behaviour_mut().kad.add_address(&p, addr.clone());
                }
                let _ = reply.send(self.swarm.dial(addr).map_err(|e| e.to_string()));
            }
        }
    }

    // ----- local events to publish -----------------------------------------------------------

    fn on_core_event(&mut self, ev: Result<Event, broadcast::error::RecvError>) {
        match ev {
            Ok(Event::NewHead { applied, source, .. }) => {
                if matches!(source, BlockSource::Miner | BlockSource::Api)
                    && let Some(b) = applied.last()
                {
                    let topic = self.topics.blocks.clone();
                    if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, b.encode()) {
                        tracing::debug!(error = %e, "block not published");
                    }
                }
            }
            // Transactions to gossip come through the outbox, which loses none to lag.
            Ok(Event::TxPooled { .. }) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "network fell behind the node's events");
                self.drop_many("core_events", n);
                // A missed event may have been our own new block: publish the tip again. If it
                // came from the network, gossipsub knows its id and publishes nothing. Never the
                // genesis block: no block at height 0 is ever gossiped, and peers treat one as
                // invalid (found by `inprocess::bursts_of_api_transactions…`, which lags before
                // anything is mined).
                let tip = self.core.tip();
                if tip.header.height > 0
                    && let Ok(Some(b)) = self.core.store().read().and_then(|r| r.block(&tip.hash))
                {
                    let _ = self.swarm.behaviour_mut().gossipsub.publish(self.topics.blocks.clone(), b.encode());
                }
            }
            Err(broadcast::error::RecvError::Closed) => self.shutdown.cancel(),
        }
    }

    /// `n` transactions were moved from the outbox to the next batch (0: the outbox was closed).
    fn on_outbox(&mut self, n: usize) {
        if n == 0 {
            self.outbox_open = false;
        } else if self.outbox_batch.len() >= MAX_TX_BATCH {
            self.flush_outbox();
        }
    }

    /// Publishes the pending batch of own transactions, if any.
    fn flush_outbox(&mut self) {
        if self.outbox_batch.is_empty() {
            return;
        }
        let topic = self.topics.txs.clone();
        let msg = encode_tx_batch(&self.outbox_batch);
        self.outbox_batch.clear();
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, msg) {
            tracing::debug!(error = %e, "transaction batch not published");
        }
    }

    // ----- periodic work ---------------------------------------------------------------------

    fn on_tick(&mut self) {
        let now = Instant::now();
        while self.blocking.try_join_next().is_some() {}
        let effects = self.peers.heartbeat(now, unix_ms());
        self.apply(effects);
        let disconnect: Vec<Effect> =
            self.disconnect_at_tick.drain(..).map(|peer| Effect::Disconnect { peer }).collect();
        self.apply(disconnect);
        for p in self.peers.excess_peers(now) {
            tracing::debug!(peer = %p, "disconnecting peer (too many peers)");
            let _ = self.swarm.disconnect_peer_id(p);
        }
        self.flush_outbox();
        self.flush_peer_book(now);
        let dropped = self.core.take_gossip_outbox_dropped();
        if dropped > 0 {
            self.drop_many("tx_outbox", dropped);
        }
        self.info.peers.store(self.peers.connected_count(), Ordering::Relaxed);
        self.update_gauges();
        if now.duration_since(self.last_status_log) >= STATUS_LOG_INTERVAL {
            self.last_status_log = now;
            self.info.deep_forks.expire(now);
            let tip = self.core.tip();
            tracing::info!(
                peers = self.peers.connected_count(),
                inbound = self.peers.inbound_count(),
                outbound = self.peers.outbound_count(),
                banned = self.peers.ban_count(),
                height = tip.header.height,
                tip = %tip.hash.short(),
                syncing = self.sync.is_syncing(),
                mempool = self.core.mempool_len(),
                "status"
            );
        }
        if now.duration_since(self.last_status_round) >= STATUS_INTERVAL {
            self.last_status_round = now;
            let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
            for p in connected {
                self.send_status(p);
            }
            if self.peers.wants_more_peers() {
                self.find_peers(now);
            }
        }
        self.drive_sync();
    }

    fn update_gauges(&self) {
        use super::metrics::{DirectionLabel, DirectionLabels, ScoreLabels, ScoreRange};
        let m = &self.metrics;
        m.peers
            .get_or_create(&DirectionLabels { direction: DirectionLabel::Inbound })
            .set(self.peers.inbound_count() as i64);
        m.peers
            .get_or_create(&DirectionLabels { direction: DirectionLabel::Outbound })
            .set(self.peers.outbound_count() as i64);
        let mut counts = [0i64; 6];
        for p in self.peers.peers() {
            let i = ScoreRange::ALL.iter().position(|r| *r == ScoreRange::of(p.score)).unwrap_or(0);
            counts[i] += 1;
        }
        for (range, n) in ScoreRange::ALL.iter().zip(counts) {
            m.peer_scores.get_or_create(&ScoreLabels { range: *range }).set(n);
        }
        m.banned_peers.set(self.peers.ban_count() as i64);
        m.syncing.set(i64::from(self.sync.is_syncing()));
        m.sync_target_height.set(self.sync.target_height().map_or(0, |h| h as i64));
        m.orphans.set(self.orphans.len() as i64);
        self.record_bounds();
    }

    /// Records the occupancy of the network's bounded resources (`crate::bounds`): every tick,
    /// and after each push onto a worker queue.
    fn record_bounds(&self) {
        let b = self.core.bounds();
        record_channel(b, TX_JOBS, &self.tx_jobs);
        record_channel(b, RESULTS, &self.results_tx);
        b.record(super::COMMANDS, self.commands.len());
        b.record(ORPHANS, self.orphans.len());
        b.record(PEER_BOOK_PENDING, self.peer_book.len());
        b.record(crate::addrman::ADDRMAN_ENTRIES, self.addrman.len());
        b.record(TX_OUTBOX, self.outbox.len() + self.outbox_batch.len());
        b.record(SYNC_SERVING, self.serve.serving());
        b.record(SYNC_UNSENT_BYTES, self.serve.unsent_bytes());
        b.record(SYNC_INFLIGHT, self.pending.values().filter(|p| matches!(p, Pending::Range { .. })).count());
        b.record(SYNC_HEADERS, self.sync.headers_held());
        b.record(deep_fork::DEEP_FORKS, self.info.deep_forks.len());
        b.record(peer_manager::PEERS, self.peers.connected_count());
        b.record(peer_manager::BANS, self.peers.ban_count());
        b.record(peer_manager::RETAINED_SCORES, self.peers.retained_count());
    }

    fn find_peers(&mut self, now: Instant) {
        if now.duration_since(self.last_kad_bootstrap) >= Duration::from_secs(30) {
            self.last_kad_bootstrap = now;
            if self.peers.connected_count() > 0 {
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
        }
        // Short of outbound peers (e.g. after a partition or an address change): dial the bootstrap
        // nodes we are not connected to.
        if self.peers.outbound_count() < self.peers.config().min_outbound_peers {
            for addr in self.bootstrap.clone() {
                if peer_of(&addr).is_none_or(|p| !self.swarm.is_connected(&p)) {
                    let _ = self.swarm.dial(addr);
                }
            }
        }
        // Dial peers from the address manager: at most one outbound peer per network group.
        let summaries = self.peers.peers();
        let outbound: Vec<&peer_manager::PeerSummary> =
            summaries.iter().filter(|p| p.direction == Direction::Outbound).collect();
        let mut groups: std::collections::BTreeSet<AddrGroup> =
            outbound.iter().filter_map(|p| p.addrs.first()).map(AddrGroup::of).collect();
        let config = self.peers.config();
        let wanted = config
            .target_peers
            .saturating_sub(summaries.len())
            .max(config.min_outbound_peers.saturating_sub(outbound.len()))
            .min(MAX_DIALS_PER_ROUND);
        let now_ms = unix_ms();
        let local = *self.swarm.local_peer_id();
        let mut dialled = Vec::new();
        for _ in 0..wanted {
            self.select_counter = self.select_counter.wrapping_add(1);
            let swarm = &self.swarm;
            let peers = &self.peers;
            let Some((peer, addrs)) = self.addrman.select(random_u64(self.select_counter), now_ms, &groups, |p| {
                *p == local || swarm.is_connected(p) || dialled.contains(p) || peers.is_banned(p, now_ms)
            }) else {
                break;
            };
            if let Some(first) = addrs.first() {
                groups.insert(AddrGroup::of(first));
            }
            self.addrman.attempt(&peer, now_ms);
            dialled.push(peer);
            let _ = self.swarm.dial(libp2p::swarm::dial_opts::DialOpts::peer_id(peer).addresses(addrs).build());
        }
    }

    /// Asks `peer` for its status, unless a status request to it is already in flight: blocks
    /// gossiped faster than the answer comes back (each may call this) must not add up to a
    /// request flood that the peer's rate limit would punish us for.
    fn send_status(&mut self, peer: PeerId) {
        if self.pending.values().any(|p| matches!(p, Pending::Status(q) if *q == peer)) {
            return;
        }
        let status = self.our_status();
        self.request(peer, Request::Status(status), Pending::Status(peer));
    }

    /// Sends a sync request within our budget for `peer` (requests and blocks asked, below what a
    /// peer with default limits accepts, see `SYNC_REQUEST_SENT_LIMIT`). Returns false, sending
    /// nothing, when the budget is spent: the caller retries later.
    fn request(&mut self, peer: PeerId, request: Request, pending: Pending) -> bool {
        let now = Instant::now();
        let blocks = match &request {
            Request::Status(_) => 0,
            Request::BlocksByRange { count, .. } => *count,
            Request::BlocksByHash(hashes) => hashes.len() as u32,
            Request::HeadersByRange { count, .. } => count.div_ceil(HEADERS_PER_BLOCK_TOKEN),
        };
        if !self.peers.allow(&peer, RateClass::SyncRequestSent, 1, now)
            || (blocks > 0 && !self.peers.allow(&peer, RateClass::BlocksAsked, blocks, now))
        {
            self.drop_count("sync_requests_paced");
            return false;
        }
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, Ok(request));
        self.pending.insert(id, pending);
        true
    }

    // ----- swarm events ----------------------------------------------------------------------

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        if let Some(m) = &self.metrics.libp2p {
            use libp2p::metrics::Recorder;
            m.record(&ev);
            match &ev {
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => m.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => m.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => m.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => m.record(e),
                _ => {}
            }
        }
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "p2p listening");
                self.info.listen.write().push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.info.listen.write().retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                let (direction, addr) = if endpoint.is_dialer() {
                    (Direction::Outbound, endpoint.get_remote_address().clone())
                } else {
                    (Direction::Inbound, endpoint.get_remote_address().clone())
                };
                if self.info.deep_forks.refuses_connection(&peer_id, Instant::now()) {
                    // On the other side of a deep fork the operator chose not to follow: refused
                    // for a while (deep_fork.rs).
                    tracing::info!(peer = %peer_id, "peer on the other side of a deep fork refused");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if direction == Direction::Outbound {
                    self.addrman.connected_outbound(peer_id, &addr, unix_ms());
                    if self.dialing_anchors.remove(&peer_id) {
                        tracing::info!(peer = %peer_id, %addr, "anchor peer reconnected");
                    }
                }
                if num_established.get() == 1 {
                    tracing::debug!(peer = %peer_id, %addr, ?direction, "peer connected");
                    let effects = self.peers.on_connected(peer_id, direction, addr, Instant::now());
                    self.apply(effects);
                    // At once, not at the next tick: `/v1/status` must agree with `/v1/peers`
                    // (a test that saw a peer listed then read a stale count on a loaded machine).
                    self.info.peers.store(self.peers.connected_count(), Ordering::Relaxed);
                    self.send_status(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } => {
                tracing::debug!(peer = %peer_id, cause = ?cause, "peer disconnected");
                self.peers.on_disconnected(&peer_id);
                self.info.peers.store(self.peers.connected_count(), Ordering::Relaxed);
                self.sync.on_peer_gone(&peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id, mut info, ..
            })) => {
                // A peer reached over a real network announces its loopback and private-range
                // addresses too; dialing them would reach ourselves or our own network (a scan on
                // the peer's behalf). Keep them only for peers reached over such an address.
                let connection =
                    self.peers.peers().into_iter().find(|p| p.peer == peer_id).and_then(|p| p.addrs.first().cloned());
                let private_peer = connection.as_ref().is_some_and(is_private);
                if !private_peer {
                    info.listen_addrs.retain(|a| !is_private(a));
                }
                for a in &info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, a.clone());
                }
                self.peers.on_identify(peer_id, info.agent_version.clone(), info.listen_addrs.clone());
                // Told by itself; its group is the source (an inbound peer's addresses go to new
                // and only our own dial moves them to tried).
                let source = connection.as_ref().map_or(AddrGroup::Unknown, AddrGroup::of);
                self.addrman.add(peer_id, info.listen_addrs, source, true, unix_ms());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(libp2p::kad::Event::RoutingUpdated {
                peer, addresses, ..
            })) => {
                // Discovered: into new, told by its own group (kad does not say who told it).
                let addrs = addresses.into_vec();
                let source = addrs.first().map_or(AddrGroup::Unknown, AddrGroup::of);
                self.addrman.add(peer, addrs, source, false, unix_ms());
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            })) => {
                // Its queue (`gossip::PEER_QUEUE_CAP`) overflowed during the last heartbeat.
                tracing::debug!(peer = %peer_id, ?failed_messages, "gossip messages to a slow peer dropped");
                self.drop_many("gossip_peer_queue", (failed_messages.priority + failed_messages.non_priority) as u64);
                self.report(peer_id, PeerAction::HighTolerance, "slow_peer");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event { peer, connection, result: Err(e) })) => {
                // libp2p's ping no longer closes connections itself: a link that stopped answering
                // (a partition, a dead host) is closed here so the peer slot is freed and redialed.
                tracing::debug!(%peer, error = %e, "ping failed; closing the connection");
                self.swarm.close_connection(connection);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let Some(peer) = peer_id {
                    self.addrman.failed(&peer, unix_ms());
                    if self.dialing_anchors.remove(&peer) {
                        tracing::info!(%peer, %error, "cannot reach an anchor peer (an outbound peer before the restart)");
                    }
                }
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                let refused = match &error {
                    libp2p::swarm::ListenError::Denied { cause } => {
                        cause.downcast_ref::<crate::ip_limits::InboundRefused>().map(|r| r.reason())
                    }
                    _ => None,
                };
                if let Some(reason) = refused {
                    self.metrics.inbound_refused.get_or_create(&ReasonLabels { reason: reason.to_string() }).inc();
                }
                tracing::debug!(%send_back_addr, %error, "inbound connection failed");
            }
            _ => {}
        }
    }

    /// Reports a gossip verdict to gossipsub (which scores the peer by it) and counts it.
    fn verdict(&mut self, id: &MessageId, source: &PeerId, topic: TopicLabel, acceptance: MessageAcceptance) {
        let result = match acceptance {
            MessageAcceptance::Accept => ResultLabel::Accept,
            MessageAcceptance::Reject => ResultLabel::Reject,
            MessageAcceptance::Ignore => ResultLabel::Ignore,
        };
        self.metrics.gossip_messages.get_or_create(&GossipLabels { topic, result }).inc();
        let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(id, source, acceptance);
    }

    fn on_gossip(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        let topic = if message.topic == self.topics.blocks.hash() {
            TopicLabel::Blocks
        } else if message.topic == self.topics.txs.hash() {
            TopicLabel::Txs
        } else {
            TopicLabel::Other
        };
        self.metrics.gossip_bytes.get_or_create(&TopicLabels { topic }).inc_by(message.data.len() as u64);
        let gs = |s: &mut Self, acceptance| s.verdict(&id, &source, topic, acceptance);
        // A message still in flight from a peer we just disconnected or banned: nothing to judge
        // (charging it `gossip_rate_limit`, as a refused token would, named the wrong reason).
        if !self.peers.is_connected(&source) {
            gs(self, MessageAcceptance::Ignore);
            return;
        }
        if !self.peers.allow(&source, RateClass::GossipMessage, 1, Instant::now()) {
            gs(self, MessageAcceptance::Ignore);
            self.report(source, PeerAction::MidTolerance, "gossip_rate_limit");
            return;
        }
        if message.topic == self.topics.blocks.hash() {
            let route = Route::Gossip { sender: source, author: message.source };
            match admit_block(self.core.as_ref(), &message.data, now_ms(), route, &self.results_tx) {
                Judgement::Queued => gs(self, MessageAcceptance::Accept),
                Judgement::QueueFull => {
                    gs(self, MessageAcceptance::Ignore);
                    self.drop_count("block_jobs");
                }
                Judgement::Orphan(block) => {
                    gs(self, MessageAcceptance::Ignore);
                    self.add_orphan(Orphan { block: *block, from: Some(source), author: message.source });
                }
                Judgement::Ignore => gs(self, MessageAcceptance::Ignore),
                Judgement::Undecodable => {
                    gs(self, MessageAcceptance::Reject);
                    self.report(source, PeerAction::LowTolerance, "undecodable_block");
                }
                Judgement::Penalize { acceptance, found } => {
                    gs(self, acceptance);
                    let local = *self.swarm.local_peer_id();
                    if let Some(c) = charge(route, found, local) {
                        self.report(c.peer, c.action, c.reason);
                    }
                }
            }
        } else if message.topic == self.topics.txs.hash() {
            match decode_tx_batch(&message.data) {
                Ok(txs) => {
                    if let Err(mpsc::error::TrySendError::Full(Job::Txs { msg, .. })) =
                        self.tx_jobs.try_send(Job::Txs { txs, from: source, msg: id.clone() })
                    {
                        self.verdict(&msg, &source, TopicLabel::Txs, MessageAcceptance::Ignore);
                        self.drop_count("tx_jobs");
                    }
                    record_channel(self.core.bounds(), TX_JOBS, &self.tx_jobs);
                }
                Err(_) => {
                    gs(self, MessageAcceptance::Reject);
                    self.report(source, PeerAction::LowTolerance, "undecodable_tx_batch");
                }
            }
        } else {
            gs(self, MessageAcceptance::Ignore);
        }
    }

    /// Hands blocks to the node's importer, each on its own (held to the side-branch margin);
    /// their results come back as [`Done::Block`] with `route`.
    fn queue_blocks(&mut self, blocks: Vec<Block>, route: Route<PeerId>) {
        let work = ImportWork { blocks, mode: ImportMode::Unrequested };
        if self.core.queue_import(work, block_reply(route, self.results_tx.clone())).is_err() {
            self.drop_count("block_jobs");
        }
    }

    fn on_sync_event(&mut self, ev: request_response::Event<Result<Request, Refused>, Response>) {
        use request_response::{Event as E, Message, OutboundFailure};
        match ev {
            E::Message { peer, message: Message::Request { request_id, request: Ok(request), channel }, .. } => {
                self.on_request(peer, request_id, request, channel)
            }
            E::Message { peer, message: Message::Request { request: Err(Refused(why)), channel, .. }, .. } => {
                tracing::info!(%peer, error = %why, "bad sync request");
                self.respond(channel, Response::Error { code: ErrorCode::InvalidRequest, message: why });
                self.report(peer, PeerAction::LowTolerance, "bad_sync_request");
            }
            E::Message { peer, message: Message::Response { request_id, response }, .. } => {
                let pending = self.pending.remove(&request_id);
                self.on_response(peer, pending, response);
            }
            E::OutboundFailure { peer, request_id, error, .. } => {
                let pending = self.pending.remove(&request_id);
                let kind = match pending {
                    Some(Pending::Status(_)) => super::metrics::SyncKind::Status,
                    Some(Pending::Headers { .. }) => super::metrics::SyncKind::Headers,
                    _ => super::metrics::SyncKind::Blocks,
                };
                self.count_sync(super::metrics::DirectionLabel::Outbound, kind, super::metrics::SyncResult::Error);
                match &pending {
                    // A server that timed out or broke the stream is not asked for this chain
                    // again (the timeout is charged below); a peer that speaks only version 1
                    // cannot prove its work and is rotated out, uncharged.
                    Some(Pending::Range { start, .. }) => self.sync.range_failed(peer, *start, true),
                    Some(Pending::Headers { start }) => self.sync.headers_failed(peer, *start, true, Instant::now()),
                    // The timeout (or broken stream) is charged below; the orphans it sent are
                    // not worth holding for a parent it did not give.
                    Some(Pending::Hash(asked)) => self.unresolved_orphans(peer, asked, false),
                    _ => {}
                }
                match error {
                    OutboundFailure::Timeout => self.report(peer, PeerAction::HighTolerance, "sync_timeout"),
                    OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        self.report(peer, PeerAction::LowTolerance, "bad_sync_response")
                    }
                    _ => {}
                }
            }
            E::InboundFailure { peer, request_id, error, .. } => {
                self.response_gone(request_id);
                self.on_inbound_failure(peer, error)
            }
            E::ResponseSent { request_id, .. } => self.response_gone(request_id),
        }
    }

    /// A block response was written, or will never be: its bytes leave the unsent budget.
    fn response_gone(&mut self, request_id: InboundRequestId) {
        self.serve.gone(&request_id);
    }

    fn on_inbound_failure(&mut self, peer: PeerId, error: request_response::InboundFailure) {
        use request_response::InboundFailure;
        match error {
            InboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                tracing::info!(%peer, error = %e, "bad sync request");
                self.report(peer, PeerAction::LowTolerance, "bad_sync_request");
            }
            // A stream cut short (UnexpectedEof) is what a peer that crashed or lost its link
            // looks like: not misbehaviour, no penalty.
            _ => {}
        }
    }

    /// Answers a request; false when the answer cannot be sent (the connection or the request
    /// is gone already).
    fn respond(&mut self, channel: ResponseChannel<Response>, response: Response) -> bool {
        // Inbound requests are counted by the answer we give them.
        self.count_response(super::metrics::DirectionLabel::Inbound, &response);
        self.swarm.behaviour_mut().sync.send_response(channel, response).is_ok()
    }

    fn count_sync(
        &self,
        direction: super::metrics::DirectionLabel,
        kind: super::metrics::SyncKind,
        result: super::metrics::SyncResult,
    ) {
        self.metrics.sync_requests.get_or_create(&super::metrics::SyncLabels { direction, kind, result }).inc();
    }

    fn count_response(&self, direction: super::metrics::DirectionLabel, response: &Response) {
        use super::metrics::{SyncKind, SyncResult};
        let (kind, result, bytes) = match response {
            Response::Status(_) => (SyncKind::Status, SyncResult::Ok, 89),
            Response::Blocks(b) => (SyncKind::Blocks, SyncResult::Ok, blocks_response_len(b)),
            Response::Headers(h) => (SyncKind::Headers, SyncResult::Ok, headers_response_len(h)),
            Response::Error { code: ErrorCode::RateLimited, message } => {
                (SyncKind::Blocks, SyncResult::RateLimited, 4 + message.len())
            }
            Response::Error { code: ErrorCode::InvalidRequest, message } => {
                (SyncKind::Blocks, SyncResult::Invalid, 4 + message.len())
            }
            Response::Error { message, .. } => (SyncKind::Blocks, SyncResult::Error, 4 + message.len()),
        };
        self.count_sync(direction, kind, result);
        self.metrics
            .sync_response_bytes
            .get_or_create(&super::metrics::DirectionLabels { direction })
            .inc_by(bytes as u64);
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        let now = Instant::now();
        if !self.peers.allow(&peer, RateClass::SyncRequest, 1, now) {
            self.respond(
                channel,
                Response::Error { code: ErrorCode::RateLimited, message: "too many requests".into() },
            );
            self.report(peer, PeerAction::MidTolerance, "sync_rate_limit");
            return;
        }
        let hashes_or_range = match request {
            Request::Status(status) => {
                let ours = self.our_status();
                if status.genesis != ours.genesis {
                    self.respond(
                        channel,
                        Response::Error {
                            code: ErrorCode::WrongNetwork,
                            message: format!("genesis is {}", ours.genesis),
                        },
                    );
                    let _ = self.swarm.disconnect_peer_id(peer);
                    return;
                }
                self.respond(channel, Response::Status(ours));
                self.on_peer_status(peer, status);
                return;
            }
            Request::BlocksByRange { start, count } => Serve::Range(start, count),
            Request::BlocksByHash(hashes) => Serve::Hashes(hashes),
            Request::HeadersByRange { start, count } => Serve::Headers(start, count),
        };
        let cost = match &hashes_or_range {
            Serve::Hashes(h) => h.len() as u32,
            Serve::Range(_, count) => *count,
            Serve::Headers(_, count) => count.div_ceil(HEADERS_PER_BLOCK_TOKEN),
        };
        // Charged before any "busy" answer: a peer asking for too much pays for it whether or not
        // we have room to serve it (honest peers pace their asks below this, see
        // `BLOCKS_ASKED_LIMIT`).
        if !self.peers.allow(&peer, RateClass::BlocksRequested, cost, now) {
            self.respond(channel, Response::Error { code: ErrorCode::RateLimited, message: "too many blocks".into() });
            self.report(peer, PeerAction::MidTolerance, "blocks_rate_limit");
            return;
        }
        match self.serve.admit(&peer) {
            Admit::Yes => {}
            Admit::SlowReader => {
                // It has not read what it asked for: a slow reader (or a stalled link); no
                // penalty, pings close a link that is really dead.
                self.respond(
                    channel,
                    Response::Error {
                        code: ErrorCode::RateLimited,
                        message: "read your earlier responses first".into(),
                    },
                );
                self.drop_count("sync_unsent_peer");
                return;
            }
            Admit::Busy => {
                // We are busy: not this peer's fault.
                self.respond(
                    channel,
                    Response::Error { code: ErrorCode::RateLimited, message: "busy, retry later".into() },
                );
                self.drop_count("sync_serving");
                return;
            }
        }
        self.serve.start(peer);
        let core = self.core.clone();
        let results = self.results_tx.clone();
        self.blocking.spawn_blocking(move || {
            let served = match hashes_or_range {
                Serve::Hashes(hashes) => serve_blocks(core.as_ref(), Ok(hashes)).map(Response::Blocks),
                Serve::Range(start, count) => serve_blocks(core.as_ref(), Err((start, count))).map(Response::Blocks),
                Serve::Headers(start, count) => serve_headers(core.as_ref(), start, count).map(Response::Headers),
            };
            let response = served.unwrap_or_else(|e| Response::Error { code: ErrorCode::ServerError, message: e });
            let _ = results.blocking_send(Done::Served { peer, request_id, channel, response });
        });
    }

    fn on_response(&mut self, peer: PeerId, pending: Option<Pending>, response: Response) {
        self.count_response(super::metrics::DirectionLabel::Outbound, &response);
        match (pending, response) {
            (Some(Pending::Status(_)), Response::Status(status)) => {
                if status.genesis != self.core.genesis_hash() {
                    tracing::info!(%peer, theirs = %status.genesis, "peer is on another network; disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer);
                    return;
                }
                self.on_peer_status(peer, status);
            }
            (Some(Pending::Range { start, count }), Response::Blocks(blocks)) => {
                let outputs = self.sync.on_range(peer, start, count, blocks);
                self.carry_out(outputs);
                self.drive_sync();
            }
            (Some(Pending::Hash(asked)), Response::Blocks(blocks)) => {
                // Parents it does not have: the orphans it sent for them cannot be resolved.
                let missing: Vec<Hash> =
                    asked.iter().filter(|h| !blocks.iter().any(|b| b.hash() == **h)).copied().collect();
                self.unresolved_orphans(peer, &missing, true);
                if blocks.is_empty() {
                    return;
                }
                if blocks.len() > asked.len() || blocks.iter().any(|b| !asked.contains(&b.hash())) {
                    self.report(peer, PeerAction::LowTolerance, "unrequested_blocks");
                    return;
                }
                self.queue_blocks(blocks, Route::ByHash { server: peer });
            }
            (Some(Pending::Headers { start }), Response::Headers(headers)) => {
                let ours = self.our_status();
                let outputs = match self.core.store().read() {
                    Ok(read) => {
                        // What we hold (the anchor of a header chain must be a stored block that
                        // is not known invalid), and the header rules in context.
                        let view = chain_view::StoreView { read, params: self.core.params(), now_ms: unix_ms() };
                        self.sync.on_headers(peer, start, headers, &ours, Instant::now(), &view)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the store to check headers");
                        self.sync.headers_failed(peer, start, false, Instant::now());
                        Vec::new()
                    }
                };
                self.carry_out(outputs);
                self.drive_sync();
            }
            (Some(Pending::Headers { start }), Response::Error { .. }) => {
                self.sync.headers_failed(peer, start, false, Instant::now())
            }
            (Some(Pending::Range { start, .. }), Response::Error { .. }) => self.sync.range_failed(peer, start, false),
            (Some(Pending::Headers { start }), _) => {
                self.report(peer, PeerAction::LowTolerance, "unexpected_sync_response");
                self.sync.headers_failed(peer, start, true, Instant::now());
            }
            (_, Response::Error { code, message }) => {
                tracing::debug!(%peer, ?code, %message, "sync request refused");
            }
            (_, _) => self.report(peer, PeerAction::LowTolerance, "unexpected_sync_response"),
        }
    }

    // ----- results of chain work -------------------------------------------------------------

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Served { peer, request_id, channel, mut response } => {
                let bytes = match &response {
                    Response::Blocks(blocks) => Some(blocks_response_len(blocks)),
                    Response::Headers(headers) => Some(headers_response_len(headers)),
                    _ => None,
                };
                if self.serve.finish(peer, request_id, bytes) {
                    self.core.bounds().record(SYNC_UNSENT_BYTES, self.serve.unsent_bytes());
                } else {
                    self.drop_count("sync_unsent");
                    response = Response::Error { code: ErrorCode::RateLimited, message: "busy, retry later".into() };
                }
                // A request whose connection closed while its blocks were read had its
                // `InboundFailure` before its bytes were counted: no event will ever take them out
                // of the unsent budget, so they leave it here. (Under load, reads are slow enough
                // for this to happen; the leaked bytes kept `slow_readers` from seeing the budget
                // empty.)
                if !self.respond(channel, response) {
                    self.response_gone(request_id);
                }
            }
            Done::Txs { from, msg, acceptance, charges, republish } => {
                self.verdict(&msg, &from, TopicLabel::Txs, acceptance);
                for (action, reports) in charges {
                    for _ in 0..reports {
                        self.report(from, action, "invalid_transaction");
                    }
                }
                // Pooled but not relayed: into our own next batch (at most one batch's worth, so
                // the outbox stays within `TX_OUTBOX_CAP`).
                for tx in republish {
                    if self.outbox_batch.len() >= MAX_TX_BATCH {
                        self.flush_outbox();
                    }
                    self.outbox_batch.push(tx);
                }
            }
            Done::Block { hash, block, route, result } => self.on_block_done(hash, *block, route, result),
            Done::Batch { from, start, imported, failure } => {
                let outcome = match failure {
                    None => BatchOutcome::Imported(imported),
                    Some((_, ImportError::Block(BlockError::UnknownParent(_)))) if imported == 0 => {
                        BatchOutcome::NoFork
                    }
                    // Our tip moved on while the chain was downloaded: a deep fork, nobody's fault.
                    Some((_, ImportError::Block(BlockError::ReorgTooDeep { depth, .. }))) => {
                        BatchOutcome::DeepFork { depth }
                    }
                    Some((block, e)) => {
                        tracing::warn!(peer = %from, height = block.header.height, error = %e, "sync batch rejected");
                        let penalty = match &e {
                            // (Sync batches are requested: never refused as low-work side blocks.)
                            ImportError::Store(_) | ImportError::LowWorkSideBlock { .. } => None,
                            ImportError::Block(BlockError::UnknownParent(_)) => Some(PeerAction::LowTolerance),
                            ImportError::Block(b) => b.peer_action(),
                        };
                        BatchOutcome::Rejected { imported, penalty }
                    }
                };
                let rejected = matches!(outcome, BatchOutcome::Rejected { .. });
                let outputs = self.sync.on_batch_done(from, start, outcome, Instant::now());
                self.carry_out(outputs);
                if !rejected {
                    self.drive_sync();
                }
            }
        }
    }

    fn on_block_done(
        &mut self,
        hash: Hash,
        block: Block,
        route: Route<PeerId>,
        result: Result<ImportOutcome, ImportError>,
    ) {
        let sender = match route {
            Route::Gossip { sender, .. } => Some(sender),
            Route::Orphan { sender, .. } => sender,
            Route::ByHash { server } | Route::ByRange { server } => Some(server),
        };
        match result {
            Ok(ImportOutcome::NewTip { .. }) => {
                // Only a block that moved our tip earns its sender score: side-chain blocks cost
                // their sender only proof of work, and a stream of them must not buy the standing
                // that delays a later disconnect.
                if let Some(p) = sender {
                    self.peers.reward(&p, 1.0, Instant::now());
                }
                self.release_orphans(hash);
            }
            Ok(ImportOutcome::SideChain) => self.release_orphans(hash),
            Ok(ImportOutcome::AlreadyKnown) => self.release_orphans(hash),
            Err(ImportError::Block(BlockError::UnknownParent(_))) => {
                // A gossiped block whose parent went away between judgement and import, or a
                // fetched ancestor that is itself an orphan: keep it, with who brought it.
                let (from, author) = match route {
                    Route::Gossip { sender, author } => (Some(sender), author),
                    Route::Orphan { sender, author } => (sender, author),
                    Route::ByHash { server } | Route::ByRange { server } => (Some(server), None),
                };
                self.add_orphan(Orphan { block, from, author });
            }
            Err(e) => {
                tracing::info!(error = %e, ?route, "block rejected");
                let local = *self.swarm.local_peer_id();
                if let Some(c) = charge_import(route, &e, &hash, local) {
                    self.report(c.peer, c.action, c.reason);
                }
            }
        }
    }

    fn add_orphan(&mut self, orphan: Orphan<PeerId>) {
        let height = orphan.block.header.height;
        let parent = orphan.block.header.parent;
        let from = orphan.from;
        let inserted = self.orphans.insert(orphan);
        self.drop_many("orphans", inserted.evicted as u64);
        self.core.bounds().record(ORPHAN_BYTES, self.orphans.bytes());
        let Some(p) = from.filter(|p| self.swarm.is_connected(p)) else { return };
        let ours = self.core.tip().header.height;
        tracing::debug!(%p, height, %parent, syncing = self.sync.is_syncing(), first = inserted.first_for_parent, "orphan kept");
        if self.sync.is_syncing() || height > ours + ORPHAN_FETCH_GAP {
            // Far ahead, or already catching up: range sync fills the gap. Ask the sender for its
            // status so a sync towards it starts now rather than at the next status round.
            if !self.sync.is_syncing() {
                self.send_status(p);
            }
            return;
        }
        // One fetch per missing parent, from the peer that sent the orphan (an honest relay had
        // the parent: it checked the header against it); a fetch skipped for budget is covered by
        // a later orphan's fetch or by range sync.
        if inserted.first_for_parent {
            self.request(p, Request::BlocksByHash(vec![parent]), Pending::Hash(vec![parent]));
        }
    }

    /// `peer` could not give us the parents in `asked`: the orphans it sent for them are dropped
    /// and it is charged once for each parent (an honest relay has the parent of what it relays).
    fn unresolved_orphans(&mut self, peer: PeerId, asked: &[Hash], charge_it: bool) {
        for parent in asked {
            if self.orphans.forget_from(parent, &peer) > 0 && charge_it {
                self.report(peer, PeerAction::LowTolerance, "unresolvable_orphan");
            }
        }
        self.core.bounds().record(ORPHAN_BYTES, self.orphans.bytes());
    }

    fn release_orphans(&mut self, hash: Hash) {
        for o in self.orphans.release(&hash) {
            self.queue_blocks(vec![o.block], Route::Orphan { sender: o.from, author: o.author });
        }
        self.core.bounds().record(ORPHAN_BYTES, self.orphans.bytes());
    }

    // ----- sync ------------------------------------------------------------------------------

    fn drive_sync(&mut self) {
        let ours = self.our_status();
        let inflight = self.pending.values().filter(|p| matches!(p, Pending::Range { .. })).count();
        let now_ms = unix_ms();
        let peers = &self.peers;
        let outputs = self.sync.drive(&ours, inflight, Instant::now(), |p| peers.is_banned(p, now_ms));
        self.info.syncing.store(self.sync.is_syncing(), Ordering::Relaxed);
        self.carry_out(outputs);
    }

    /// Carries out what the sync client asked for, in order.
    fn carry_out(&mut self, outputs: Vec<Output<PeerId>>) {
        let mut requests_open = true;
        for output in outputs {
            match output {
                Output::RequestHeaders { peer, start, count } => {
                    if !self.request(peer, Request::HeadersByRange { start, count }, Pending::Headers { start }) {
                        self.sync.headers_failed(peer, start, false, Instant::now());
                    }
                }
                Output::Request { peer, start, count } => {
                    if !requests_open {
                        self.sync.range_failed(peer, start, false);
                        continue;
                    }
                    if !self.request(peer, Request::BlocksByRange { start, count }, Pending::Range { start, count }) {
                        // Over budget: ask for this range and the ones after it on a later tick.
                        self.sync.range_failed(peer, start, false);
                        requests_open = false;
                    }
                }
                Output::Import { peer, start, blocks } => {
                    let work = ImportWork { blocks, mode: ImportMode::SyncBatch };
                    if self.core.queue_import(work, batch_reply(peer, start, self.results_tx.clone())).is_err() {
                        self.drop_count("block_jobs");
                        self.sync.import_dropped();
                    }
                }
                Output::Penalty { peer, action, reason } => self.report(peer, action, reason),
                Output::AskStatus(peer) => self.send_status(peer),
                Output::DeepFork { peer, fork_height, depth, their_height, their_work } => {
                    self.on_deep_fork(peer, fork_height, depth, their_height, their_work)
                }
            }
        }
    }
}

impl Service {
    /// `peer`'s chain has more work than ours but forks `depth` blocks below our tip, deeper than
    /// the reorg window: record and report it, and disconnect the peer without a penalty (it is
    /// refused for `deep_fork::DEEP_FORK_COOLDOWN`).
    /// A peer's status (asked or told): the sync client takes it, unless the peer is on the other
    /// side of a deep fork and still claims more work than ours, which disconnects it (refused
    /// until its cooldown ends: `deep_fork.rs`).
    fn on_peer_status(&mut self, peer: PeerId, status: Status) {
        let ours = self.core.tip().total_work;
        if self.info.deep_forks.refuses(&peer, Instant::now(), status.total_work, ours) {
            tracing::info!(%peer, "peer on the other side of a deep fork refused");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        self.sync.on_status(peer, status);
    }

    fn on_deep_fork(&mut self, peer: PeerId, fork_height: u64, depth: u64, their_height: u64, their_work: u128) {
        let ours = self.our_status();
        let window = self.core.max_reorg_depth();
        let fork = deep_fork::DeepFork {
            peer: peer.to_string(),
            fork_height,
            depth,
            window,
            our_height: ours.height,
            our_work: ours.total_work.to_string(),
            their_height,
            their_work: their_work.to_string(),
            since_unix_ms: unix_ms(),
        };
        if self.info.deep_forks.record(peer, fork, Instant::now()) {
            tracing::warn!(
                %peer,
                fork_height,
                depth,
                window,
                our_height = ours.height,
                our_work = %ours.total_work,
                their_height,
                their_work = %their_work,
                "deep fork: this peer's chain has more work than ours (proven by its headers) but forks from ours \
                 {depth} blocks below our tip, deeper than our reorg window of {window} blocks, so it is not \
                 followed; the peer is disconnected without a penalty and refused for {} min. The network was \
                 split for longer than the window. Choose: to keep our chain and stop this report run \
                 `vision-node admin deep-fork keep` (POST /admin/chain/deep-forks/keep); to follow the chain \
                 with more work restart once with `--max-reorg-depth {}` and dial that side \
                 (docs/runbook.md, \"A fork deeper than the reorg window\")",
                deep_fork::DEEP_FORK_COOLDOWN.as_secs() / 60,
                depth.saturating_add(depth / 2).max(window.saturating_mul(2)),
            );
        }
        let _ = self.swarm.disconnect_peer_id(peer);
    }
}

/// One durable write of peer-book changes; records the book's size.
fn write_peer_book(
    core: &dyn ChainAccess,
    changes: &[vision_state::PeerBookChange],
    writes: &prometheus_client::metrics::counter::Counter,
) {
    match core.store().save_peer_book(changes) {
        Ok(stored) => {
            writes.inc();
            core.bounds().record(vision_state::STORED_PEERS, stored as usize);
        }
        Err(e) => tracing::error!(error = %e, changes = changes.len(), "cannot write the peer book and bans"),
    }
}

/// Whether `addr` is in a range that is not reachable across the internet: loopback, private
/// (RFC 1918), shared (RFC 6598, carrier-grade NAT), link-local, unspecified; IPv6 loopback,
/// unique local (fc00::/7), link-local (fe80::/10), unspecified, and IPv4-mapped forms of those.
pub fn is_private(addr: &Multiaddr) -> bool {
    fn v4(ip: std::net::Ipv4Addr) -> bool {
        let o = ip.octets();
        ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || (o[0] == 100 && (o[1] & 0xc0) == 64)
    }
    addr.iter().any(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => v4(ip),
        libp2p::multiaddr::Protocol::Ip6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => v4(mapped),
            None => {
                let s = ip.segments();
                ip.is_loopback() || ip.is_unspecified() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
            }
        },
        _ => false,
    })
}

/// The address manager's bucket key: derived from the node's secret key, so that bucket
/// positions are stable across restarts and unknown to anyone else.
fn addrman_key(keypair: &libp2p::identity::Keypair) -> [u8; 32] {
    let secret = keypair.clone().try_into_ed25519().map(|k| k.secret().as_ref().to_vec()).unwrap_or_default();
    blake3::derive_key("vision-node 2026 address manager bucket key", &secret)
}

/// A random number for outbound selection: a hash of the clock and a counter (the selection
/// needs unpredictability, not cryptographic strength).
fn random_u64(counter: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let h = blake3::hash(&[nanos.to_le_bytes().as_slice(), &counter.to_le_bytes()].concat());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// Fills `addrman` from the store: its records and anchors, or (once, on the first start after
/// the address manager came) the peers of the table before it, as new entries told by their own
/// group, with that table emptied at the first write.
fn load_addrman(
    store: &vision_state::Store,
    addrman: &mut AddrMan,
    peer_book: &mut peer_book::PeerBookWrites,
) -> Result<(), NetworkError> {
    let err = |e: vision_state::StoreError| NetworkError::Build(e.to_string());
    let now_ms = unix_ms();
    let mut records = Vec::new();
    for (id, bytes) in store.load_peer_book().map_err(err)? {
        match (PeerId::from_bytes(&id), crate::addrman::decode_record(&bytes)) {
            (Ok(peer), Some(record)) => records.push((peer, record)),
            // Unreadable: forgotten at the next write.
            _ => {
                peer_book.record(id, None, Instant::now());
            }
        }
    }
    let anchors = store.load_anchors().map_err(err)?.iter().filter_map(|a| PeerId::from_bytes(a).ok()).collect();
    addrman.load(records, anchors, now_ms);
    let legacy = store.load_legacy_peers().map_err(err)?;
    if !legacy.is_empty() {
        for (id, addrs, _) in legacy {
            let Ok(peer) = PeerId::from_bytes(&id) else { continue };
            let addrs: Vec<Multiaddr> = addrs.into_iter().filter_map(|a| Multiaddr::try_from(a).ok()).collect();
            let source = addrs.first().map_or(AddrGroup::Unknown, AddrGroup::of);
            addrman.add(peer, addrs, source, true, now_ms);
        }
        peer_book.drop_legacy(Instant::now());
    }
    Ok(())
}

/// The peer id an address ends in (`.../p2p/<peer id>`), if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::is_private;

    #[test]
    fn private_ranges_are_recognised_and_public_addresses_are_not() {
        for a in [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/127.10.0.1/tcp/1",
            "/ip4/10.1.2.3/tcp/1",
            "/ip4/172.18.0.2/tcp/1",
            "/ip4/192.168.1.1/tcp/1",
            "/ip4/100.64.0.1/tcp/1",
            "/ip4/169.254.1.1/tcp/1",
            "/ip4/0.0.0.0/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip6/fd00::1/tcp/1",
            "/ip6/fe80::1/tcp/1",
            "/ip6/::ffff:192.168.0.1/tcp/1",
        ] {
            assert!(is_private(&a.parse().unwrap()), "{a}");
        }
        for a in [
            "/ip4/8.8.8.8/tcp/1",
            "/ip4/100.128.0.1/tcp/1",
            "/ip4/172.32.0.1/tcp/1",
            "/ip6/2001:db8::1/tcp/1",
            "/dns4/example.org/tcp/1",
        ] {
            assert!(!is_private(&a.parse().unwrap()), "{a}");
        }
    }
}
