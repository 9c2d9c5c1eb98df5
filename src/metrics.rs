//! Prometheus metrics: the registry, the `/metrics` endpoint, and the scrape-time collector for
//! values that already live in the node (heights, pool sizes, cache counters).
//!
//! Each module owns one `Metrics` struct (`chain::metrics`, `p2p::metrics`) registered under its
//! own prefix, and [`CoreCollector`] reads the values the chain, mempool and miner already keep; everything is in base units (seconds, bytes),
//! counters end in `_total`, and nothing is a rate (Prometheus computes those). `docs/metrics.md`
//! lists every family.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Content type of the OpenMetrics text format (what Prometheus asks for).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format (served to clients that do not ask for
/// OpenMetrics, e.g. `curl` and `promtool check metrics`).
pub const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites OpenMetrics text into the classic Prometheus text format: counter families are named
/// with their `_total` suffix, info families with `_info` (as gauges), and the `# UNIT` and `# EOF`
/// lines are dropped. Samples are unchanged.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_string(), "untyped"),
                k => (name.to_string(), k),
            };
            if let Some((h, text)) = help.take()
                && rest.starts_with(h)
            {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Encodes the registry in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}

/// The `/metrics` router: OpenMetrics for clients that accept it, the classic text format otherwise.
pub fn router(registry: Arc<Registry>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| {
            let registry = registry.clone();
            async move {
                let openmetrics = headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("application/openmetrics-text"));
                let text = encode(&registry);
                if openmetrics {
                    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
                } else {
                    ([(header::CONTENT_TYPE, CONTENT_TYPE_PROMETHEUS)], to_prometheus_text(&text)).into_response()
                }
            }
        }),
    )
}

pub use vision_primitives::util::snake_case;

/// Default metrics address: localhost only.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9615";

/// What `/metrics` reads of the node at scrape time; the node implements it for its core.
pub trait ScrapeSource: Send + Sync + 'static {
    /// The canonical tip.
    fn tip(&self) -> crate::chain::Tip;
    /// The pool's counters and caps.
    fn mempool(&self) -> (crate::mempool::Stats, crate::mempool::Limits);
    /// The template cache's hits and misses.
    fn template_counts(&self) -> (u64, u64);
    /// The import and admission metrics, registered once.
    fn chain_metrics(&self) -> &crate::chain::metrics::Metrics;
    /// The resource registry.
    fn bounds(&self) -> Arc<crate::bounds::Bounds>;
    /// Records the resources read at scrape time (the pool, caches, the event channel).
    fn record_bounds(&self);
}

/// Scrape-time values of the chain, the pool and the miner's template cache.
pub struct CoreCollector {
    core: Arc<dyn ScrapeSource>,
}

impl std::fmt::Debug for CoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoreCollector")
    }
}

impl CoreCollector {
    /// A collector reading `core` at every scrape.
    pub fn new(core: Arc<dyn ScrapeSource>) -> Self {
        CoreCollector { core }
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

fn gauge_f(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

impl Collector for CoreCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let tip = self.core.tip();
        gauge(&mut e, "vision_chain_height", "Height of the canonical tip", tip.header.height as i64)?;
        gauge_f(&mut e, "vision_chain_total_work", "Cumulative work of the canonical tip", tip.total_work as f64)?;
        gauge(&mut e, "vision_chain_difficulty", "Difficulty of the canonical tip", tip.header.difficulty as i64)?;
        let (stats, limits) = self.core.mempool();
        gauge(&mut e, "vision_mempool_transactions", "Transactions in the mempool", stats.len as i64)?;
        gauge(&mut e, "vision_mempool_bytes", "Encoded bytes of the transactions in the mempool", stats.bytes as i64)?;
        gauge(&mut e, "vision_mempool_max_transactions", "Mempool cap in transactions", limits.max_txs as i64)?;
        gauge(&mut e, "vision_mempool_max_bytes", "Mempool cap in bytes", limits.max_bytes as i64)?;
        counter(&mut e, "vision_mempool_evictions", "Transactions evicted from the full mempool", stats.evicted)?;
        gauge_f(
            &mut e,
            "vision_mempool_min_fee_to_enter",
            "Smallest fee that enters the mempool now (base units)",
            stats.min_fee_to_enter as f64,
        )?;
        let (hits, misses) = self.core.template_counts();
        counter(&mut e, "vision_miner_template_cache_hits", "Block templates served from the cache", hits)?;
        counter(&mut e, "vision_miner_template_cache_misses", "Block templates built afresh", misses)?;
        Ok(())
    }
}

/// Builds the registry of a node: the core's own metrics, the scrape-time collector, and (when
/// networked) the network's.
pub fn registry<S: ScrapeSource>(core: &Arc<S>) -> Registry {
    let mut registry = Registry::default();
    core.chain_metrics().register(registry.sub_registry_with_prefix("vision"));
    registry.register_collector(Box::new(CoreCollector::new(core.clone())));
    let at_scrape = core.clone();
    registry.register_collector(Box::new(crate::bounds::BoundsCollector::new(core.bounds(), move |_| {
        at_scrape.record_bounds()
    })));
    registry
}

/// Serves `/metrics` on `addr` until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: tokio_util::sync::CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "metrics listening");
    tasks.spawn(async move {
        let serve =
            axum::serve(listener, router(registry)).with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total() {
        let om = "# HELP x Things.\n# TYPE x counter\nx_total 3\n# HELP d Time.\n# TYPE d histogram\n# UNIT d seconds\nd_count 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n# HELP d Time.\n# TYPE d histogram\nd_count 1\n"
        );
        assert_eq!(snake_case("NewTip"), "new_tip");
    }

    #[test]
    fn every_resource_is_registered_once_and_documented() {
        let all = crate::node::all_resources();
        let names: std::collections::HashSet<_> = all.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), all.len(), "label values are unique");
        let doc = include_str!("../docs/metrics.md");
        for r in &all {
            assert!(doc.contains(&format!("| `{}` |", r.name())), "docs/metrics.md has no row for {}", r.name());
        }
    }
}
