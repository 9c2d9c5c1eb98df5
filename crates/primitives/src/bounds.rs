//! Resource bounds: an open registry of every bounded queue, cache, channel and table of the node,
//! with its cap and how much of it is in use now and at peak.
//!
//! The registry knows no layer. Each layer declares its own [`Resource`]s next to the constants that
//! cap them (`vision_mempool::MEMPOOL_TXS`, `p2p::service::TX_JOBS`, ...) and registers them
//! with [`Bounds::register`] when it is built; the code that owns a resource enforces the cap (a
//! bounded channel, an LRU, an explicit check) and records its occupancy with [`Bounds::record`] at
//! the points where it grows, so the peak is the high-water mark seen at those points.
//! [`BoundsCollector`] exports three gauge families on `/metrics`, all labelled `resource`:
//!
//! - `vision_resource_cap`: the cap;
//! - `vision_resource_used`: the occupancy at the last record (or at scrape time, for resources
//!   read at scrape);
//! - `vision_resource_peak`: the highest occupancy recorded since start.
//!
//! `peak <= cap` for every resource is what the hardening tests check under floods
//! (`tests/it/flood.rs`); `docs/metrics.md` lists every resource with its constant.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// A bounded resource: its `resource` label value, the constant that caps it, and that cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resource {
    name: &'static str,
    constant: &'static str,
    default_cap: usize,
}

impl Resource {
    /// A resource labelled `name`, capped by the constant named `constant` whose value is
    /// `default_cap` (operators may configure another cap with [`Bounds::set_cap`]).
    pub const fn new(name: &'static str, constant: &'static str, default_cap: usize) -> Self {
        Resource { name, constant, default_cap }
    }

    /// The `resource` label value.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The path of the constant that caps it, as `docs/metrics.md` names it.
    pub fn constant(self) -> &'static str {
        self.constant
    }

    /// The cap when nothing is configured: the named constant.
    pub fn default_cap(self) -> usize {
        self.default_cap
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

/// Caps and occupancy of every registered [`Resource`], in the order they were registered.
///
/// Resources are few (tens) and registered at start, so a lookup is a short scan under a read
/// lock; recording a resource nobody registered registers it with its default cap.
#[derive(Debug, Default)]
pub struct Bounds {
    slots: RwLock<Vec<(Resource, Arc<Slot>)>>,
}

impl Bounds {
    /// Registers `r` with its default cap (nothing happens if it is registered already).
    pub fn register(&self, r: Resource) {
        self.slot(r);
    }

    /// Registers every resource of `rs`.
    pub fn register_all(&self, rs: &[Resource]) {
        for r in rs {
            self.register(*r);
        }
    }

    fn slot(&self, r: Resource) -> Arc<Slot> {
        if let Some((_, s)) = self.slots.read().iter().find(|(x, _)| x.name == r.name) {
            return s.clone();
        }
        let mut slots = self.slots.write();
        if let Some((_, s)) = slots.iter().find(|(x, _)| x.name == r.name) {
            return s.clone();
        }
        let s = Arc::new(Slot::default());
        s.cap.store(r.default_cap as u64, Ordering::Relaxed);
        slots.push((r, s.clone()));
        s
    }

    /// Sets the cap of `r` (for caps the operator configures).
    pub fn set_cap(&self, r: Resource, cap: usize) {
        self.slot(r).cap.store(cap as u64, Ordering::Relaxed);
    }

    /// Records that `used` of `r` is in use now.
    pub fn record(&self, r: Resource, used: usize) {
        self.record_with_peak(r, used, used);
    }

    /// Records a resource that keeps its own high-water mark (the mempool).
    pub fn record_with_peak(&self, r: Resource, used: usize, peak: usize) {
        let slot = self.slot(r);
        slot.used.store(used as u64, Ordering::Relaxed);
        slot.peak.fetch_max(used.max(peak) as u64, Ordering::Relaxed);
    }

    /// The occupancy of `r`.
    pub fn usage(&self, r: Resource) -> Usage {
        let slot = self.slot(r);
        Usage {
            resource: r,
            cap: slot.cap.load(Ordering::Relaxed),
            used: slot.used.load(Ordering::Relaxed),
            peak: slot.peak.load(Ordering::Relaxed),
        }
    }

    /// The occupancy of every registered resource, in registration order.
    pub fn all(&self) -> Vec<Usage> {
        let rs: Vec<Resource> = self.slots.read().iter().map(|(r, _)| *r).collect();
        rs.into_iter().map(|r| self.usage(r)).collect()
    }
}

/// Exports [`Bounds`] at scrape time, after `refresh` has recorded what is read at scrape.
pub struct BoundsCollector {
    bounds: Arc<Bounds>,
    refresh: Box<dyn Fn(&Bounds) + Send + Sync>,
}

impl std::fmt::Debug for BoundsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundsCollector").field("bounds", &self.bounds).finish()
    }
}

impl BoundsCollector {
    /// A collector of `bounds`; `refresh` records the resources read at scrape time.
    pub fn new(bounds: Arc<Bounds>, refresh: impl Fn(&Bounds) + Send + Sync + 'static) -> Self {
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

    const JOBS: Resource = Resource::new("jobs", "test::JOBS_CAP", 256);
    const POOL: Resource = Resource::new("pool", "test::POOL_CAP", 10);

    #[test]
    fn peaks_are_high_water_marks_and_caps_default_to_the_constants() {
        let b = Bounds::default();
        b.register_all(&[JOBS, POOL]);
        assert_eq!(b.usage(JOBS).cap, 256);
        b.record(JOBS, 7);
        b.record(JOBS, 3);
        assert_eq!(b.usage(JOBS), Usage { resource: JOBS, cap: 256, used: 3, peak: 7 });
        b.record_with_peak(POOL, 5, 9);
        assert_eq!(b.usage(POOL).peak, 9);
        b.set_cap(POOL, 12);
        assert_eq!(b.usage(POOL).cap, 12);
        b.register(JOBS);
        assert_eq!(b.all().len(), 2, "registering twice keeps one slot");
        assert_eq!(b.usage(JOBS).peak, 7, "registering twice keeps the record");
    }

    #[test]
    fn the_collector_exports_three_families_for_every_resource() {
        let bounds = Arc::new(Bounds::default());
        bounds.register_all(&[JOBS, POOL]);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(BoundsCollector::new(bounds, |b| b.record(POOL, 42))));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for r in ["jobs", "pool"] {
            for family in ["vision_resource_cap", "vision_resource_used", "vision_resource_peak"] {
                assert!(text.contains(&format!("{family}{{resource=\"{r}\"}}")), "{family} {r}:\n{text}");
            }
        }
        assert!(text.contains("vision_resource_peak{resource=\"pool\"} 42"), "{text}");
    }
}
