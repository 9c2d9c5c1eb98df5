//! What a run produced: the recorded data, the checks' outcomes, the numbers derived from them,
//! and the files written (CSV for every series, PNG plots, `summary.json`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use libp2p::PeerId;
use serde::Serialize;
use vision_node::chain::types::Hash;

use crate::attack::AttackKind;
use crate::plot::{self, Series};
use crate::record::{Arrival, Delays, Join, Mined, ScoreSample};
use crate::scenario::{CheckKind, Scenario};

/// Width of the time slots score samples are grouped in.
const SLOT_MS: f64 = 250.0;

/// A check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The check's name from the scenario.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The measured value, in words.
    pub detail: String,
}

impl Outcome {
    /// An outcome.
    pub fn new(name: &str, passed: bool, detail: impl Into<String>) -> Outcome {
        Outcome { name: name.to_string(), passed, detail: detail.into() }
    }
}

/// An attacker as recorded: (peer id, kind, linked honest nodes, start ms, first ban ms per node).
pub type AttackerSummary = (PeerId, AttackKind, Vec<usize>, f64, BTreeMap<usize, f64>, BTreeMap<usize, f64>);

/// Everything recorded in a run.
pub struct Results {
    /// First application of each block at each node, by time.
    pub arrivals: Vec<Arrival>,
    /// Blocks mined by the runner.
    pub mined: Vec<Mined>,
    /// (ms, node, height) samples.
    pub heights: Vec<(f64, usize, u64)>,
    /// Attacker score samples.
    pub scores: Vec<ScoreSample>,
    /// (peer id, kind, targets, start ms, first ban ms per target, cut-off ms per target: from the
    /// first sample of a cut-off that lasted to the end).
    pub attackers: Vec<AttackerSummary>,
    /// (node, blocks-topic messages received with duplicates, first copies).
    pub gossip: Vec<(usize, u64, u64)>,
    /// Block imports that changed a tip, over all nodes: (total seconds, count).
    pub import: (f64, u64),
    /// Late joins.
    pub joins: Vec<Join>,
    /// Honest nodes alive at the end.
    pub live_at_end: Vec<usize>,
    /// Height of the agreed chain at the end.
    pub final_height: u64,
    /// The blocks of the agreed chain (a mined block not in it went stale: another block at its
    /// height won).
    pub canonical: std::collections::HashSet<Hash>,
}

/// Arrival delays of one mined block over the nodes alive at the end that had joined before it
/// was mined (ms after mining; `None` for nodes that never applied it).
fn delays(r: &Results, by: &HashMap<(usize, Hash), f64>, m: &Mined) -> Vec<Option<f64>> {
    let joined_later = |n: &usize| r.joins.iter().any(|j| j.node == *n && j.at_ms > m.at_ms);
    r.live_at_end
        .iter()
        .filter(|n| !joined_later(n))
        .map(|n| by.get(&(*n, m.hash)).map(|t| (t - m.at_ms).max(0.0)))
        .collect()
}

/// Per mined block: (block, p50, p95, p100, fraction reached).
#[derive(Debug, Clone, Serialize)]
pub struct BlockStats {
    /// Height.
    pub height: u64,
    /// Hash (short).
    pub hash: String,
    /// Node that mined it.
    pub origin: usize,
    /// When it was mined, ms after the timeline start.
    pub mined_ms: f64,
    /// Median arrival delay over nodes, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_ms: Option<f64>,
    /// Last node, ms (None if some node never got it).
    pub p100_ms: Option<f64>,
    /// Fraction of the nodes alive at the end that applied it.
    pub reached: f64,
    /// Whether it is in the agreed chain at the end.
    pub canonical: bool,
}

/// Derived numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Honest nodes at the start.
    pub nodes: usize,
    /// Links.
    pub links: usize,
    /// Per mined block.
    pub blocks: Vec<BlockStats>,
    /// Mined blocks that lost to another block at their height.
    pub stale_blocks: usize,
    /// Median over blocks of the final chain of the 95th-percentile arrival.
    pub p95_median_ms: Option<f64>,
    /// Worst over blocks of the 95th-percentile arrival.
    pub p95_worst_ms: Option<f64>,
    /// Worst over blocks of the last arrival.
    pub p100_worst_ms: Option<f64>,
    /// Blocks-topic gossip messages received per block over the whole network (with duplicates).
    pub messages_per_block: Option<f64>,
    /// ... of which first copies.
    pub first_copies_per_block: Option<f64>,
    /// Duplicates per first copy.
    pub duplicate_ratio: Option<f64>,
    /// Height of the agreed chain at the end.
    pub final_height: u64,
    /// The nodes against raw gossipsub on the same network (`raw_baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_baseline: Option<crate::baseline::Comparison>,
    /// Check outcomes.
    pub checks: Vec<Outcome>,
}

impl Results {
    fn arrival_index(&self) -> HashMap<(usize, Hash), f64> {
        self.arrivals.iter().map(|a| ((a.node, a.hash), a.at_ms)).collect()
    }

    /// Per-block arrival statistics.
    pub fn block_stats(&self) -> Vec<BlockStats> {
        let by = self.arrival_index();
        self.mined
            .iter()
            .map(|m| {
                let d = Delays::of(delays(self, &by, m));
                let arrived = d.arrived();
                let reached = arrived as f64 / (arrived + d.missed()).max(1) as f64;
                BlockStats {
                    height: m.height,
                    hash: m.hash.short(),
                    origin: m.origin,
                    mined_ms: m.at_ms,
                    p50_ms: d.percentile(50.0),
                    p95_ms: d.percentile(95.0),
                    p100_ms: d.percentile(100.0),
                    reached,
                    canonical: self.canonical.contains(&m.hash),
                }
            })
            .collect()
    }

    /// Evaluates a check on the recorded data; `None` for checks evaluated while the nodes ran.
    pub fn evaluate(&self, name: &str, kind: &CheckKind) -> Option<Outcome> {
        let by = self.arrival_index();
        Some(match kind {
            CheckKind::AllReceived { fraction } => {
                let stats: Vec<BlockStats> = self.block_stats().into_iter().filter(|b| b.canonical).collect();
                if stats.is_empty() {
                    return Some(Outcome::new(name, false, "no mined block is in the final chain"));
                }
                let worst = stats.iter().map(|b| b.reached).fold(1.0, f64::min);
                Outcome::new(
                    name,
                    worst >= *fraction,
                    format!(
                        "{} blocks in the final chain ({} stale); the least-spread reached {:.1}% of {} nodes",
                        stats.len(),
                        self.mined.len() - stats.len(),
                        worst * 100.0,
                        self.live_at_end.len()
                    ),
                )
            }
            CheckKind::Arrival { percentile: p, max_ms } => {
                let canonical: Vec<&Mined> = self.mined.iter().filter(|m| self.canonical.contains(&m.hash)).collect();
                if canonical.is_empty() {
                    return Some(Outcome::new(name, false, "no mined block is in the final chain"));
                }
                let per_block: Vec<Option<f64>> =
                    canonical.iter().map(|m| Delays::of(delays(self, &by, m)).percentile(*p)).collect();
                let worst = per_block.iter().copied().try_fold(0.0, |acc: f64, x| x.map(|v| acc.max(v)));
                match worst {
                    Some(w) => Outcome::new(
                        name,
                        w <= *max_ms,
                        format!(
                            "worst p{p} over {} blocks of the final chain: {w:.0} ms (bound {max_ms} ms)",
                            per_block.len()
                        ),
                    ),
                    None => {
                        Outcome::new(name, false, format!("a block of the final chain never reached {p}% of the nodes"))
                    }
                }
            }
            CheckKind::AttackersCutOff { within_s, banned: ban_required } => {
                let banning: Vec<_> = self.attackers.iter().filter(|a| a.1.banned_by_honest()).collect();
                if banning.is_empty() {
                    return Some(Outcome::new(name, false, "no banning attacker ran"));
                }
                let mut worst: f64 = 0.0;
                let mut missing = Vec::new();
                let (mut pairs, mut banned) = (0, 0);
                for (k, (peer, kind, targets, start, bans, cut_off)) in self.attackers.iter().enumerate() {
                    if !kind.banned_by_honest() {
                        continue;
                    }
                    for t in targets {
                        pairs += 1;
                        banned += usize::from(bans.contains_key(t));
                        let defended = if *ban_required { bans.get(t) } else { cut_off.get(t) };
                        match defended {
                            Some(at) => worst = worst.max(at - start),
                            None => missing.push(format!("attacker {k} ({kind:?}, {}) at node {t}", short_peer(peer))),
                        }
                    }
                }
                let ok = missing.is_empty() && worst <= within_s * 1000.0;
                let detail = if missing.is_empty() {
                    format!(
                        "{pairs} (attacker, honest neighbour) pairs cut off ({banned} banned, {} refused at a score at or \
                         below the disconnect threshold); slowest after {:.1} s",
                        pairs - banned,
                        worst / 1000.0
                    )
                } else {
                    let what = if *ban_required { "banned" } else { "cut off" };
                    format!("not {what}: {}", missing.join(", "))
                };
                Outcome::new(name, ok, detail)
            }
            CheckKind::NotEclipsed => {
                let Some(first) = self.attackers.iter().map(|a| a.3).reduce(f64::min) else {
                    return Some(Outcome::new(name, false, "no attacker ran"));
                };
                let mut victims: Vec<usize> = self.attackers.iter().flat_map(|a| a.2.iter().copied()).collect();
                victims.sort_unstable();
                victims.dedup();
                victims.retain(|v| self.live_at_end.contains(v));
                let blocks: Vec<&Mined> = self.mined.iter().filter(|m| m.at_ms >= first).collect();
                if blocks.is_empty() {
                    return Some(Outcome::new(name, false, "no block was mined during the attack"));
                }
                let missed: usize =
                    victims.iter().map(|v| blocks.iter().filter(|m| !by.contains_key(&(*v, m.hash))).count()).sum();
                Outcome::new(
                    name,
                    missed == 0,
                    format!(
                        "{} attacked nodes, {} blocks mined during the attack, {missed} (node, block) misses",
                        victims.len(),
                        blocks.len()
                    ),
                )
            }
            CheckKind::Synced { within_s } => {
                if self.joins.is_empty() {
                    return Some(Outcome::new(name, false, "no node joined"));
                }
                let mut worst: Option<f64> = Some(0.0);
                for j in &self.joins {
                    let reached = self
                        .arrivals
                        .iter()
                        .filter(|a| a.node == j.node && a.height >= j.target_height)
                        .map(|a| a.at_ms - j.at_ms)
                        .reduce(f64::min);
                    worst = match (worst, reached) {
                        (Some(w), Some(r)) => Some(w.max(r)),
                        _ => None,
                    };
                }
                match worst {
                    Some(w) => Outcome::new(
                        name,
                        w <= within_s * 1000.0,
                        format!(
                            "{} late nodes reached height {} ; slowest in {:.1} s",
                            self.joins.len(),
                            self.joins[0].target_height,
                            w / 1000.0
                        ),
                    ),
                    None => Outcome::new(name, false, "a late node never reached the height it joined behind"),
                }
            }
            CheckKind::Converged { .. }
            | CheckKind::CheapBlocksNotStored
            | CheckKind::TimestampWalkBounded { .. }
            | CheckKind::IdenticalChains
            | CheckKind::Included { .. }
            | CheckKind::RawReceived => return None,
        })
    }

    /// Derives the summary.
    pub fn summary(&self, scenario: &Scenario, links: usize, checks: Vec<Outcome>) -> Summary {
        let blocks = self.block_stats();
        let canonical: Vec<&BlockStats> = blocks.iter().filter(|b| b.canonical).collect();
        let mut p95: Vec<f64> = canonical.iter().filter_map(|b| b.p95_ms).collect();
        p95.sort_by(f64::total_cmp);
        let p95_worst_ms = if canonical.iter().all(|b| b.p95_ms.is_some()) { p95.last().copied() } else { None };
        let p100_worst_ms = canonical.iter().map(|b| b.p100_ms).try_fold(0.0, |acc: f64, x| x.map(|v| acc.max(v)));
        let n = self.mined.len() as f64;
        let all: u64 = self.gossip.iter().map(|g| g.1).sum();
        let first: u64 = self.gossip.iter().map(|g| g.2).sum();
        Summary {
            scenario: scenario.name.clone(),
            seed: scenario.seed,
            nodes: scenario.nodes,
            links,
            p95_median_ms: (!p95.is_empty()).then(|| p95[p95.len() / 2]),
            p95_worst_ms,
            p100_worst_ms: if canonical.is_empty() { None } else { p100_worst_ms },
            stale_blocks: blocks.len() - canonical.len(),
            messages_per_block: (n > 0.0).then(|| all as f64 / n),
            first_copies_per_block: (n > 0.0).then(|| first as f64 / n),
            duplicate_ratio: (first > 0).then(|| (all - first.min(all)) as f64 / first as f64),
            final_height: self.final_height,
            raw_baseline: None,
            blocks,
            checks,
        }
    }

    /// Writes the CSV files and plots into `dir`; returns the files written.
    pub fn write(&self, dir: &Path, summary: &Summary) -> Result<Vec<String>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut files = Vec::new();
        let mut csv = |name: &str, header: &[&str], rows: Vec<Vec<String>>| -> Result<(), String> {
            plot::write_csv(&dir.join(name), header, &rows).map_err(|e| format!("{name}: {e}"))?;
            files.push(name.to_string());
            Ok(())
        };
        let by_hash: HashMap<Hash, &Mined> = self.mined.iter().map(|m| (m.hash, m)).collect();
        csv(
            "arrivals.csv",
            &["node", "height", "block", "at_ms", "mined_by", "delay_ms"],
            self.arrivals
                .iter()
                .map(|a| {
                    let m = by_hash.get(&a.hash);
                    vec![
                        a.node.to_string(),
                        a.height.to_string(),
                        a.hash.short(),
                        format!("{:.1}", a.at_ms),
                        m.map(|m| m.origin.to_string()).unwrap_or_default(),
                        m.map(|m| format!("{:.1}", (a.at_ms - m.at_ms).max(0.0))).unwrap_or_default(),
                    ]
                })
                .collect(),
        )?;
        let opt = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "never".into());
        csv(
            "blocks.csv",
            &["height", "block", "origin", "mined_ms", "p50_ms", "p95_ms", "p100_ms", "reached", "canonical"],
            summary
                .blocks
                .iter()
                .map(|b| {
                    vec![
                        b.height.to_string(),
                        b.hash.clone(),
                        b.origin.to_string(),
                        format!("{:.1}", b.mined_ms),
                        opt(b.p50_ms),
                        opt(b.p95_ms),
                        opt(b.p100_ms),
                        format!("{:.4}", b.reached),
                        b.canonical.to_string(),
                    ]
                })
                .collect(),
        )?;
        csv(
            "gossip.csv",
            &["node", "block_msgs_received", "block_msgs_first_copies", "duplicates"],
            self.gossip
                .iter()
                .map(|(n, all, first)| {
                    vec![n.to_string(), all.to_string(), first.to_string(), all.saturating_sub(*first).to_string()]
                })
                .collect(),
        )?;
        csv(
            "heights.csv",
            &["at_ms", "node", "height"],
            self.heights.iter().map(|(t, n, h)| vec![format!("{t:.0}"), n.to_string(), h.to_string()]).collect(),
        )?;
        if !self.scores.is_empty() {
            csv(
                "scores.csv",
                &["at_ms", "node", "attacker", "kind", "score", "banned", "cut_off"],
                self.scores
                    .iter()
                    .map(|s| {
                        vec![
                            format!("{:.0}", s.at_ms),
                            s.node.to_string(),
                            s.attacker.to_string(),
                            format!("{:?}", self.attackers[s.attacker].1),
                            s.score.map(|x| format!("{x:.2}")).unwrap_or_default(),
                            s.banned.to_string(),
                            s.cut_off.to_string(),
                        ]
                    })
                    .collect(),
            )?;
        }
        csv(
            "checks.csv",
            &["check", "passed", "detail"],
            summary.checks.iter().map(|c| vec![c.name.clone(), c.passed.to_string(), c.detail.clone()]).collect(),
        )?;
        if let Some(raw) = &summary.raw_baseline {
            csv(
                "raw_arrivals.csv",
                &["height", "origin", "bytes", "node", "delay_ms"],
                raw.per_block
                    .iter()
                    .flat_map(|b| {
                        b.delays_ms.iter().enumerate().map(move |(n, d)| {
                            vec![
                                b.height.to_string(),
                                b.origin.to_string(),
                                b.bytes.to_string(),
                                n.to_string(),
                                d.map(|v| format!("{v:.1}")).unwrap_or_else(|| "never".into()),
                            ]
                        })
                    })
                    .collect(),
            )?;
        }
        let json = serde_json::to_string_pretty(summary).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("summary.json"), json).map_err(|e| format!("summary.json: {e}"))?;
        files.push("summary.json".into());

        let png = |name: &str, r: Result<(), plot::PlotError>| -> Result<String, String> {
            r.map_err(|e| format!("{name}: {e}"))?;
            Ok(name.to_string())
        };
        let by = self.arrival_index();
        if !self.mined.is_empty() {
            let mut all = Vec::new();
            let mut per_block = Vec::new();
            for m in self.mined.iter().filter(|m| self.canonical.contains(&m.hash)) {
                let d: Vec<f64> = delays(self, &by, m).into_iter().flatten().collect();
                all.extend(d.iter().copied());
                per_block.push((format!("block {}", m.height), d));
            }
            let mut series = vec![(format!("all {} blocks", per_block.len()), all)];
            if let Some(raw) = &summary.raw_baseline {
                let d: Vec<f64> = raw.per_block.iter().flat_map(|b| b.delays_ms.iter().flatten().copied()).collect();
                series.push(("raw gossipsub, same blocks".to_string(), d));
            }
            if per_block.len() <= 8 {
                series.extend(per_block);
            }
            files.push(png(
                "arrival_cdf.png",
                plot::cdf_chart(
                    &dir.join("arrival_cdf.png"),
                    &format!("{}: block arrival over {} nodes", summary.scenario, self.live_at_end.len()),
                    "ms after mining",
                    &series,
                ),
            )?);
        }
        if let (Some(all), Some(first)) = (summary.messages_per_block, summary.first_copies_per_block) {
            files.push(png(
                "messages.png",
                plot::bar_chart(
                    &dir.join("messages.png"),
                    &format!("{}: gossip messages per block ({} nodes)", summary.scenario, self.live_at_end.len()),
                    "",
                    "messages per block, whole network",
                    &[
                        ("received".to_string(), all),
                        ("first copies".to_string(), first),
                        ("duplicates".to_string(), all - first),
                    ],
                ),
            )?);
        }
        let mut per_node: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
        for (t, n, h) in &self.heights {
            per_node.entry(*n).or_default().push((t / 1000.0, *h as f64));
        }
        let height_series: Vec<Series> =
            per_node.into_iter().map(|(n, points)| Series { name: format!("node {n}"), points }).collect();
        files.push(png(
            "heights.png",
            plot::line_chart(
                &dir.join("heights.png"),
                &format!("{}: height per node", summary.scenario),
                "s",
                "height",
                &height_series,
            ),
        )?);
        if !self.scores.is_empty() {
            // Per attacker kind and sample time: the mean score over (attacker, linked honest node)
            // pairs, a banned pair counting at the ban threshold; and how many pairs are banned.
            let ban_line = vision_node::p2p::peer_manager::DEFAULT_BAN_THRESHOLD;
            let mut score_sum: BTreeMap<(String, i64), (f64, usize)> = BTreeMap::new();
            let mut banned: BTreeMap<(String, i64), usize> = BTreeMap::new();
            for s in &self.scores {
                let kind = self.attackers[s.attacker].1.name().to_string();
                let slot = (s.at_ms / SLOT_MS).round() as i64;
                let value = if s.banned { Some(ban_line) } else { s.score };
                if let Some(v) = value {
                    let e = score_sum.entry((kind.clone(), slot)).or_default();
                    e.0 += v;
                    e.1 += 1;
                }
                *banned.entry((kind, slot)).or_default() += usize::from(s.banned);
            }
            let by_kind = |points: Vec<(String, f64, f64)>| -> Vec<Series> {
                let mut m: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                for (k, x, y) in points {
                    m.entry(k).or_default().push((x, y));
                }
                m.into_iter().map(|(name, points)| Series { name, points }).collect()
            };
            let scores = by_kind(
                score_sum
                    .into_iter()
                    .map(|((k, t), (sum, n))| (k, t as f64 * SLOT_MS / 1000.0, sum / n as f64))
                    .collect(),
            );
            files.push(png(
                "attacker_scores.png",
                plot::line_chart(
                    &dir.join("attacker_scores.png"),
                    &format!("attackers' mean score at linked honest nodes (banned = {ban_line})"),
                    "s",
                    "score",
                    &scores,
                ),
            )?);
            let bans =
                by_kind(banned.into_iter().map(|((k, t), n)| (k, t as f64 * SLOT_MS / 1000.0, n as f64)).collect());
            files.push(png(
                "attacker_bans.png",
                plot::line_chart(
                    &dir.join("attacker_bans.png"),
                    "(attacker, linked honest node) pairs banned",
                    "s",
                    "pairs",
                    &bans,
                ),
            )?);
        }
        Ok(files)
    }
}

fn short_peer(p: &PeerId) -> String {
    let s = p.to_string();
    s[s.len().saturating_sub(8)..].to_string()
}
