//! Resource bounds: every bounded queue, cache, channel and table of the node, with its cap and how
//! much of it is in use now and at peak.
//!
//! Each [`Resource`] names the constant (or the configured override) that caps it. The code that
//! owns the resource enforces the cap (a bounded channel, an LRU, an explicit check) and records
//! its occupancy here with [`Bounds::record`] at the points where it grows, so the peak is the
//! high-water mark seen at those points. [`BoundsCollector`] exports three gauge families on
//! `/metrics`, all labelled `resource`:
//!
//! - `vision_resource_cap`: the cap;
//! - `vision_resource_used`: the occupancy at the last record (or at scrape time, for resources
//!   read at scrape);
//! - `vision_resource_peak`: the highest occupancy recorded since start.
//!
//! `peak <= cap` for every resource is what the hardening tests check under floods
//! (`tests/it/flood.rs`); `docs/metrics.md` lists every resource with its constant.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// A bounded resource of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Pooled transactions (`mempool::DEFAULT_MAX_TXS`, `--mempool-max-txs`).
    MempoolTxs,
    /// Pooled bytes (`mempool::DEFAULT_MAX_BYTES`, `--mempool-max-bytes`).
    MempoolBytes,
    /// Verified-signature cache entries (`verify::SIG_CACHE_CAP`).
    SigCache,
    /// Node events not yet read by the slowest subscriber (`node::EVENT_CHANNEL_CAP`).
    CoreEvents,
    /// Blocks queued for the block worker (`p2p::service::BLOCK_QUEUE_CAP`).
    BlockJobs,
    /// Transaction batches queued for the tx worker (`p2p::service::TX_QUEUE_CAP`).
    TxJobs,
    /// Worker results queued for the network loop (`p2p::service::RESULT_QUEUE_CAP`).
    Results,
    /// Orphan blocks held while their ancestors are fetched (`p2p::service::ORPHAN_CAP`).
    Orphans,
    /// Own transactions waiting to be gossiped (`p2p::service::TX_OUTBOX_CAP`).
    TxOutbox,
    /// Sync responses being read from the store (`p2p::service::MAX_SERVING`).
    SyncServing,
    /// Bytes of block responses not yet written to their peers
    /// (`p2p::service::MAX_UNSENT_RESPONSE_BYTES`).
    SyncUnsentBytes,
    /// Our range requests in flight while syncing (`p2p::service::MAX_INFLIGHT`).
    SyncInflight,
    /// Commands queued for the network task (`p2p::COMMAND_CHANNEL_CAP`).
    Commands,
    /// Connected peers (`p2p::peer_manager::DEFAULT_MAX_PEERS`, `--max-peers`).
    Peers,
    /// Banned peers held by the peer manager (`p2p::peer_manager::MAX_BANS`).
    Bans,
    /// Scores kept for disconnected peers (`p2p::peer_manager::MAX_RETAINED_SCORES`).
    RetainedScores,
    /// Peers remembered in redb (`state::MAX_STORED_PEERS`).
    StoredPeers,
    /// WebSocket clients (`api::ws::MAX_CLIENTS`).
    WsClients,
}

impl Resource {
    /// Every resource, in the order of the metrics.
    pub const ALL: [Resource; 18] = [
        Resource::MempoolTxs,
        Resource::MempoolBytes,
        Resource::SigCache,
        Resource::CoreEvents,
        Resource::BlockJobs,
        Resource::TxJobs,
        Resource::Results,
        Resource::Orphans,
        Resource::TxOutbox,
        Resource::SyncServing,
        Resource::SyncUnsentBytes,
        Resource::SyncInflight,
        Resource::Commands,
        Resource::Peers,
        Resource::Bans,
        Resource::RetainedScores,
        Resource::StoredPeers,
        Resource::WsClients,
    ];

    /// The `resource` label value.
    pub fn name(self) -> &'static str {
        match self {
            Resource::MempoolTxs => "mempool_txs",
            Resource::MempoolBytes => "mempool_bytes",
            Resource::SigCache => "sig_cache",
            Resource::CoreEvents => "core_events",
            Resource::BlockJobs => "block_jobs",
            Resource::TxJobs => "tx_jobs",
            Resource::Results => "results",
            Resource::Orphans => "orphans",
            Resource::TxOutbox => "tx_outbox",
            Resource::SyncServing => "sync_serving",
            Resource::SyncUnsentBytes => "sync_unsent_bytes",
            Resource::SyncInflight => "sync_inflight",
            Resource::Commands => "commands",
            Resource::Peers => "peers",
            Resource::Bans => "bans",
            Resource::RetainedScores => "retained_scores",
            Resource::StoredPeers => "stored_peers",
            Resource::WsClients => "ws_clients",
        }
    }

    /// The cap when nothing is configured: the named constant.
    pub fn default_cap(self) -> usize {
        use crate::p2p::{peer_manager, service};
        match self {
            Resource::MempoolTxs => crate::mempool::DEFAULT_MAX_TXS,
            Resource::MempoolBytes => crate::mempool::DEFAULT_MAX_BYTES,
            Resource::SigCache => crate::verify::SIG_CACHE_CAP,
            Resource::CoreEvents => crate::node::EVENT_CHANNEL_CAP,
            Resource::BlockJobs => service::BLOCK_QUEUE_CAP,
            Resource::TxJobs => service::TX_QUEUE_CAP,
            Resource::Results => service::RESULT_QUEUE_CAP,
            Resource::Orphans => service::ORPHAN_CAP,
            Resource::TxOutbox => service::TX_OUTBOX_CAP,
            Resource::SyncServing => service::MAX_SERVING,
            Resource::SyncUnsentBytes => service::MAX_UNSENT_RESPONSE_BYTES,
            Resource::SyncInflight => service::MAX_INFLIGHT,
            Resource::Commands => crate::p2p::COMMAND_CHANNEL_CAP,
            Resource::Peers => peer_manager::DEFAULT_MAX_PEERS,
            Resource::Bans => peer_manager::MAX_BANS,
            Resource::RetainedScores => peer_manager::MAX_RETAINED_SCORES,
            Resource::StoredPeers => crate::state::MAX_STORED_PEERS,
            Resource::WsClients => crate::api::ws::MAX_CLIENTS,
        }
    }

    fn index(self) -> usize {
        Resource::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct Slot {
    cap: AtomicU64,
    used: AtomicU64,
    peak: AtomicU64,
}

/// Occupancy of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Which resource.
    pub resource: Resource,
    /// Its cap.
    pub cap: u64,
    /// In use at the last record.
    pub used: u64,
    /// Highest use recorded.
    pub peak: u64,
}

/// Caps and occupancy of every [`Resource`]; shared by the node's parts through `node::Core`.
#[derive(Debug)]
pub struct Bounds {
    slots: [Slot; Resource::ALL.len()],
}

impl Default for Bounds {
    fn default() -> Self {
        let b = Bounds { slots: Default::default() };
        for r in Resource::ALL {
            b.set_cap(r, r.default_cap());
        }
        b
    }
}

impl Bounds {
    /// Sets the cap of `r` (for caps the operator configures).
    pub fn set_cap(&self, r: Resource, cap: usize) {
        self.slots[r.index()].cap.store(cap as u64, Ordering::Relaxed);
    }

    /// Records that `used` of `r` is in use now.
    pub fn record(&self, r: Resource, used: usize) {
        let slot = &self.slots[r.index()];
        slot.used.store(used as u64, Ordering::Relaxed);
        slot.peak.fetch_max(used as u64, Ordering::Relaxed);
    }

    /// Records a resource that keeps its own high-water mark (the mempool).
    pub fn record_with_peak(&self, r: Resource, used: usize, peak: usize) {
        self.record(r, used);
        self.slots[r.index()].peak.fetch_max(peak as u64, Ordering::Relaxed);
    }

    /// Records the occupancy of a bounded tokio mpsc channel from a sender of it.
    pub fn record_channel<T>(&self, r: Resource, tx: &tokio::sync::mpsc::Sender<T>) {
        self.record(r, tx.max_capacity() - tx.capacity());
    }

    /// The occupancy of `r`.
    pub fn usage(&self, r: Resource) -> Usage {
        let slot = &self.slots[r.index()];
        Usage {
            resource: r,
            cap: slot.cap.load(Ordering::Relaxed),
            used: slot.used.load(Ordering::Relaxed),
            peak: slot.peak.load(Ordering::Relaxed),
        }
    }

    /// The occupancy of every resource.
    pub fn all(&self) -> Vec<Usage> {
        Resource::ALL.iter().map(|r| self.usage(*r)).collect()
    }
}

/// Exports [`Bounds`] at scrape time, after `refresh` has recorded what is read at scrape.
pub struct BoundsCollector {
    bounds: std::sync::Arc<Bounds>,
    refresh: Box<dyn Fn(&Bounds) + Send + Sync>,
}

impl std::fmt::Debug for BoundsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundsCollector").field("bounds", &self.bounds).finish()
    }
}

impl BoundsCollector {
    /// A collector of `bounds`; `refresh` records the resources read at scrape time.
    pub fn new(bounds: std::sync::Arc<Bounds>, refresh: impl Fn(&Bounds) + Send + Sync + 'static) -> Self {
        BoundsCollector { bounds, refresh: Box::new(refresh) }
    }
}

impl Collector for BoundsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        (self.refresh)(&self.bounds);
        let usages = self.bounds.all();
        type Pick = fn(&Usage) -> u64;
        let families: [(&str, &str, Pick); 3] = [
            ("vision_resource_cap", "Cap of a bounded queue, cache, channel or table", |u| u.cap),
            ("vision_resource_used", "Occupancy of a bounded resource at its last record", |u| u.used),
            ("vision_resource_peak", "Highest occupancy of a bounded resource since start", |u| u.peak),
        ];
        for (name, help, pick) in families {
            let probe = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(name, help, None, probe.metric_type())?;
            for u in &usages {
                let labels = [("resource", u.resource.name())];
                let g = ConstGauge::new(i64::try_from(pick(u)).unwrap_or(i64::MAX));
                g.encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_high_water_marks_and_caps_default_to_the_constants() {
        let b = Bounds::default();
        assert_eq!(b.usage(Resource::TxJobs).cap, crate::p2p::service::TX_QUEUE_CAP as u64);
        b.record(Resource::TxJobs, 7);
        b.record(Resource::TxJobs, 3);
        assert_eq!(b.usage(Resource::TxJobs), Usage { resource: Resource::TxJobs, cap: 256, used: 3, peak: 7 });
        b.record_with_peak(Resource::MempoolTxs, 5, 9);
        assert_eq!(b.usage(Resource::MempoolTxs).peak, 9);
        b.set_cap(Resource::Peers, 12);
        assert_eq!(b.usage(Resource::Peers).cap, 12);
        let names: std::collections::HashSet<_> = Resource::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), Resource::ALL.len(), "label values are unique");
    }

    #[test]
    fn docs_metrics_lists_every_resource() {
        let doc = include_str!("../docs/metrics.md");
        for r in Resource::ALL {
            assert!(doc.contains(&format!("| `{}` |", r.name())), "docs/metrics.md has no row for {}", r.name());
        }
    }

    #[test]
    fn the_collector_exports_three_families_for_every_resource() {
        let bounds = std::sync::Arc::new(Bounds::default());
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(BoundsCollector::new(bounds, |b| b.record(Resource::SigCache, 42))));
        let text = crate::metrics::encode(&registry);
        for r in Resource::ALL {
            for family in ["vision_resource_cap", "vision_resource_used", "vision_resource_peak"] {
                assert!(text.contains(&format!("{family}{{resource=\"{}\"}}", r.name())), "{family} {r:?}:\n{text}");
            }
        }
        assert!(text.contains("vision_resource_peak{resource=\"sig_cache\"} 42"), "{text}");
    }
}
