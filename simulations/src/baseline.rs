//! The raw gossipsub baseline of a run (`raw_baseline = true` or `--raw-baseline`): after the
//! nodes stop, the same network is rebuilt from bare gossipsub swarms
//! ([`vision_tools::raw_gossip`]: the node's transport and gossipsub configuration, no
//! validation, no import, forwarding at once) and the run's mining is replayed on it.
//!
//! Same network: one raw node per initial honest node, the same edges and the same drawn
//! [`LinkSpec`] per edge (copied from the run's [`SimNet`] onto ports
//! [`RAW_PORT_BASE`]` + i`, so the raw nodes never meet the nodes' ports), the scenario's blocks
//! topic. Same traffic: each block of the final chain becomes one message of its encoded size,
//! published by raw node `origin` at the block's mining time relative to the first block (later
//! if the previous message is still spreading: one message is in flight at a time).
//!
//! A node's arrival is its `NewHead`: the block was imported. On the way, every node relayed it only
//! after decoding it and checking its header and PoW (`p2p::service`: relay before import), and the
//! last hop imported it (signatures, state, commit); each node's swarm task also carries identify,
//! ping, Kademlia, sync and the peer manager. A raw node's arrival is gossipsub handing it the
//! message, which it relays at once. The difference is what the node's work on the path costs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use vision_node::chain::types::Hash;
use vision_node::p2p::TransportKind;
use vision_node::p2p::gossip::Topics;
use vision_node::p2p::link::{LinkSpec, Links};
use vision_tools::raw_gossip::{GossipCounts, RawNet, RawNetConfig};

use crate::net::{PORT_BASE, SimNet};
use crate::record::{Arrival, Mined};

/// Memory port of raw node `i` is `RAW_PORT_BASE + i` (nodes use [`PORT_BASE`], attackers
/// `ATTACKER_PORT_BASE`).
pub const RAW_PORT_BASE: u64 = 3_000_000;
/// How long the raw nodes have to connect and form their meshes.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one replayed block may take to reach every raw node.
pub const BLOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the baseline needs from the run before its nodes stop.
pub struct Plan {
    /// Raw nodes (the initial honest nodes).
    nodes: usize,
    /// Edges between them with their links.
    links: Vec<(usize, usize, LinkSpec)>,
    /// The scenario's gossip topics.
    topics: Topics,
}

impl Plan {
    /// The first `nodes` honest nodes of `net` and the links between them.
    pub fn new(net: &SimNet, nodes: usize, topics: &Topics) -> Plan {
        let index = |port: u64| port.checked_sub(PORT_BASE).map(|i| i as usize).filter(|i| *i < nodes);
        let links = net.links().into_iter().filter_map(|(a, b, spec)| Some((index(a)?, index(b)?, spec))).collect();
        Plan { nodes, links, topics: topics.clone() }
    }
}

/// One block replayed on raw gossipsub.
#[derive(Debug, Clone, Serialize)]
pub struct RawBlock {
    /// The block's height in the node run.
    pub height: u64,
    /// The node (and raw node) that mined (published) it.
    pub origin: usize,
    /// Message size in bytes.
    pub bytes: usize,
    /// When it was published, ms after the first replayed block.
    pub at_ms: f64,
    /// Arrival delay at each raw node in ms (0 at the origin; `None`: not within [`BLOCK_TIMEOUT`]).
    pub delays_ms: Vec<Option<f64>>,
}

/// The baseline's recorded data.
#[derive(Debug, Clone)]
pub struct RawRun {
    /// Per replayed block.
    pub blocks: Vec<RawBlock>,
    /// Gossipsub's counters summed over the raw nodes.
    pub gossip: GossipCounts,
    /// Raw nodes.
    pub nodes: usize,
    /// Edges.
    pub links: usize,
}

/// What the comparison needs of the node run.
pub struct NodeRun<'a> {
    /// Blocks mined by the runner.
    pub mined: &'a [Mined],
    /// Hashes of the agreed chain at the end.
    pub canonical: &'a std::collections::HashSet<Hash>,
    /// First application of each block at each node.
    pub arrivals: &'a [Arrival],
    /// Block imports that changed a tip, over all nodes: (total seconds, count).
    pub import: (f64, u64),
}

/// Builds the raw network for `plan` and replays the mined blocks of the final chain in `results`.
pub async fn run(plan: &Plan, results: &NodeRun<'_>) -> Result<RawRun, String> {
    let mut blocks: Vec<&Mined> = results.mined.iter().filter(|m| results.canonical.contains(&m.hash)).collect();
    blocks.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let model = SimNet::default();
    for (a, b, spec) in &plan.links {
        model.link(RAW_PORT_BASE + *a as u64, RAW_PORT_BASE + *b as u64, *spec);
    }
    let cfg = RawNetConfig {
        transport: TransportKind::Memory,
        links: Some(Links { model: Arc::new(model), local: 0 }),
        listen: (0..plan.nodes)
            .map(|i| format!("/memory/{}", RAW_PORT_BASE + i as u64).parse().expect("a memory multiaddr is valid"))
            .collect(),
        edges: plan.links.iter().map(|(a, b, _)| (*a, *b)).collect(),
    };
    let begin = tokio::time::Instant::now();
    let net = RawNet::start_on(cfg, plan.topics.blocks.clone(), READY_TIMEOUT)
        .await
        .map_err(|e| format!("raw gossipsub baseline: {e}"))?;
    tracing::info!(
        nodes = plan.nodes,
        links = plan.links.len(),
        took_ms = begin.elapsed().as_millis() as u64,
        "raw gossipsub network formed; replaying the mined blocks"
    );
    let first_ms = blocks.first().map_or(0.0, |m| m.at_ms);
    let t0 = tokio::time::Instant::now();
    let mut out = Vec::with_capacity(blocks.len());
    for (k, m) in blocks.iter().enumerate() {
        let offset = Duration::from_secs_f64(((m.at_ms - first_ms) / 1000.0).max(0.0));
        tokio::time::sleep_until(t0 + offset).await;
        let at_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let delays = net.propagate(m.origin, payload(k, m.bytes), BLOCK_TIMEOUT).await;
        out.push(RawBlock {
            height: m.height,
            origin: m.origin,
            bytes: m.bytes,
            at_ms,
            delays_ms: delays.into_iter().map(|d| d.map(|d| d.as_secs_f64() * 1000.0)).collect(),
        });
    }
    let gossip = net.gossip_counts();
    net.shutdown().await;
    Ok(RawRun { blocks: out, gossip, nodes: plan.nodes, links: plan.links.len() })
}

/// `bytes` bytes (at least 16), unique per `k` and per run.
fn payload(k: usize, bytes: usize) -> Vec<u8> {
    let mut p = vec![0u8; bytes.max(16)];
    p[..8].copy_from_slice(&(k as u64).to_le_bytes());
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    p[8..16].copy_from_slice(&nonce.to_le_bytes());
    p
}

/// p50, p95, p99 and the maximum of a set of delays, in ms (`None`: some pair never arrived that
/// early in the order, i.e. the percentile falls among the misses).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
}

impl Percentiles {
    /// Nearest-rank percentiles, misses counted as slowest (from an HDR histogram: see
    /// [`crate::record::Delays`] for the precision).
    pub fn of(v: Vec<Option<f64>>) -> Percentiles {
        let d = crate::record::Delays::of(v);
        Percentiles {
            p50_ms: d.percentile(50.0),
            p95_ms: d.percentile(95.0),
            p99_ms: d.percentile(99.0),
            max_ms: d.percentile(100.0),
        }
    }

    fn ratio(node: Option<f64>, raw: Option<f64>) -> Option<f64> {
        let (n, r) = (node?, raw?);
        (r > 0.0).then(|| n / r)
    }
}

/// The node against raw gossipsub, over (block, node) pairs without the block's origin.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Raw nodes.
    pub nodes: usize,
    /// Edges.
    pub links: usize,
    /// Blocks compared (the final chain's).
    pub blocks: usize,
    /// (block, receiving node) pairs per side.
    pub pairs: usize,
    /// The nodes: arrival (`NewHead`) after the block's mining and import at its origin.
    pub node: Percentiles,
    /// Raw gossipsub: arrival after the publish.
    pub raw: Percentiles,
    /// node / raw at p50, p95, p99 and the maximum.
    pub ratio: [Option<f64>; 4],
    /// Pairs the raw message reached, of `pairs`.
    pub raw_reached: usize,
    /// Pairs the node run's block reached, of `pairs`.
    pub node_reached: usize,
    /// Raw gossipsub: blocks-topic messages received per block, whole network, duplicates included.
    pub raw_messages_per_block: Option<f64>,
    /// Raw gossipsub: duplicates per first copy.
    pub raw_duplicate_ratio: Option<f64>,
    /// The nodes: mean time of one block import (checks, signature verification, state, commit)
    /// over every node's imports that changed its tip, in ms.
    pub node_import_mean_ms: Option<f64>,
    /// How many imports that mean is over.
    pub node_imports: u64,
    /// Per replayed block.
    pub per_block: Vec<RawBlock>,
}

impl Comparison {
    /// Compares the node run in `results` with the replay `raw` of its final chain's blocks.
    pub fn new(results: &NodeRun<'_>, raw: &RawRun) -> Comparison {
        let by: HashMap<(usize, Hash), f64> = results.arrivals.iter().map(|a| ((a.node, a.hash), a.at_ms)).collect();
        let mut blocks: Vec<&Mined> = results.mined.iter().filter(|m| results.canonical.contains(&m.hash)).collect();
        blocks.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        let receivers = |origin: usize| (0..raw.nodes).filter(move |n| *n != origin);
        let node: Vec<Option<f64>> = blocks
            .iter()
            .flat_map(|m| receivers(m.origin).map(|n| by.get(&(n, m.hash)).map(|t| (t - m.at_ms).max(0.0))))
            .collect();
        let raw_delays: Vec<Option<f64>> = raw
            .blocks
            .iter()
            .flat_map(|b| receivers(b.origin).map(|n| b.delays_ms.get(n).copied().flatten()))
            .collect();
        let (node_reached, raw_reached) = (node.iter().flatten().count(), raw_delays.iter().flatten().count());
        let pairs = node.len();
        let (node, rawp) = (Percentiles::of(node), Percentiles::of(raw_delays));
        let n = raw.blocks.len() as f64;
        Comparison {
            nodes: raw.nodes,
            links: raw.links,
            blocks: raw.blocks.len(),
            pairs,
            ratio: [
                Percentiles::ratio(node.p50_ms, rawp.p50_ms),
                Percentiles::ratio(node.p95_ms, rawp.p95_ms),
                Percentiles::ratio(node.p99_ms, rawp.p99_ms),
                Percentiles::ratio(node.max_ms, rawp.max_ms),
            ],
            node,
            raw: rawp,
            raw_reached,
            node_reached,
            raw_messages_per_block: (n > 0.0).then(|| raw.gossip.received as f64 / n),
            raw_duplicate_ratio: raw.gossip.duplicates_per_first_copy(),
            node_import_mean_ms: (results.import.1 > 0).then(|| results.import.0 * 1000.0 / results.import.1 as f64),
            node_imports: results.import.1,
            per_block: raw.blocks.clone(),
        }
    }

    /// The side-by-side table (markdown).
    pub fn table(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "never".to_string(), |v| format!("{v:.0} ms"));
        let x = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1}x"));
        let row = |name: &str, p: &Percentiles, reached: usize| {
            format!(
                "| {name} | {} | {} | {} | {} | {reached} / {} |",
                ms(p.p50_ms),
                ms(p.p95_ms),
                ms(p.p99_ms),
                ms(p.max_ms),
                self.pairs
            )
        };
        [
            "| block arrival, all (block, node) pairs | p50 | p95 | p99 | max | reached |".to_string(),
            "|---|---:|---:|---:|---:|---:|".to_string(),
            row("node (arrival = block imported)", &self.node, self.node_reached),
            row("raw gossipsub (arrival = message received)", &self.raw, self.raw_reached),
            format!(
                "| node / raw | {} | {} | {} | {} | |",
                x(self.ratio[0]),
                x(self.ratio[1]),
                x(self.ratio[2]),
                x(self.ratio[3])
            ),
        ]
        .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_count_misses_as_slowest() {
        let p = Percentiles::of(vec![Some(3.0), None, Some(1.0), Some(2.0)]);
        assert_eq!(p.p50_ms, Some(2.0));
        assert_eq!(p.max_ms, None);
        // Exact below 2.048 ms, within 0.1% above.
        let q = Percentiles::of((1..=100).map(|v| Some(f64::from(v) / 100.0)).collect());
        assert_eq!((q.p50_ms, q.p95_ms, q.p99_ms, q.max_ms), (Some(0.5), Some(0.95), Some(0.99), Some(1.0)));
        let q = Percentiles::of((1..=100).map(|v| Some(f64::from(v))).collect());
        for (got, want) in [(q.p50_ms, 50.0), (q.p95_ms, 95.0), (q.p99_ms, 99.0), (q.max_ms, 100.0)] {
            let got = got.unwrap();
            assert!(got >= want && got - want <= want / 1000.0, "{got} for {want}");
        }
        assert_eq!(Percentiles::ratio(Some(10.0), Some(4.0)), Some(2.5));
        assert_eq!(Percentiles::ratio(Some(10.0), Some(0.0)), None);
    }

    #[test]
    fn payloads_are_unique_and_sized() {
        assert_eq!(payload(0, 300).len(), 300);
        assert_eq!(payload(0, 3).len(), 16);
        assert_ne!(payload(1, 300), payload(2, 300));
    }
}
