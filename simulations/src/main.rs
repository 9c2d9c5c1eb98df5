//! `vision-sim`: runs many real Vision nodes in one process over libp2p's memory transport with
//! emulated links, plays a scenario's timeline, checks its named assertions and writes CSV results
//! and PNG plots. See `simulations/README.md` and `docs/simulations.md`.
//!
//! Exit status: 0 when every check held, 1 when one failed, 2 when the run could not be done
//! (bad scenario file, a node that did not start).

#![forbid(unsafe_code)]

mod attack;
mod baseline;
mod net;
mod plot;
mod record;
mod report;
mod rng;
mod runner;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::report::Outcome;
use crate::runner::Runner;
use crate::scenario::{CheckKind, Scenario};

/// [`CheckKind::CheapBlocksNotStored`]: no live honest node has any block a `cheap-blocks`
/// attacker gossiped.
fn cheap_blocks_not_stored(runner: &Runner, name: &str) -> Outcome {
    let sent: Vec<_> = runner
        .attacker_blocks()
        .into_iter()
        .filter(|(_, kind, _)| *kind == attack::AttackKind::CheapBlocks)
        .flat_map(|(_, _, blocks)| blocks)
        .collect();
    if sent.is_empty() {
        return Outcome::new(name, false, "no cheap-blocks attacker gossiped a block");
    }
    match runner.stored_by_nodes(&sent) {
        Ok(stored) => {
            let holders: Vec<String> = stored
                .iter()
                .filter(|(_, n, _)| *n > 0)
                .map(|(i, n, b)| format!("node {i}: {n} ({b} bytes)"))
                .collect();
            Outcome::new(
                name,
                holders.is_empty(),
                format!(
                    "{} cheap blocks gossiped ({} bytes), stored by {} of {} nodes{}",
                    sent.len(),
                    sent.iter().map(|b| b.2).sum::<usize>(),
                    holders.len(),
                    stored.len(),
                    if holders.is_empty() { String::new() } else { format!(": {}", holders.join(", ")) }
                ),
            )
        }
        Err(e) => Outcome::new(name, false, e),
    }
}

/// [`CheckKind::TimestampWalkBounded`]: the walkers' branches and the honest chains keep their
/// difficulty, and each honest node stored at most `max_side_bytes` of the walkers' blocks.
fn timestamp_walk_bounded(runner: &Runner, name: &str, fraction: f64, max_side_bytes: u64, initial: u64) -> Outcome {
    let sent: Vec<_> = runner
        .attacker_blocks()
        .into_iter()
        .filter(|(_, kind, _)| *kind == attack::AttackKind::TimestampWalk)
        .flat_map(|(_, _, blocks)| blocks)
        .collect();
    if sent.is_empty() {
        return Outcome::new(name, false, "no timestamp-walk attacker made a block");
    }
    let floor = fraction * initial as f64;
    let branch_low = sent.iter().map(|b| b.1).min().unwrap_or(0);
    let (stored, main_low) = match (runner.stored_by_nodes(&sent), runner.lowest_canonical_difficulty()) {
        (Ok(s), Ok(m)) => (s, m),
        (Err(e), _) | (_, Err(e)) => return Outcome::new(name, false, e),
    };
    let most = stored.iter().map(|(_, n, b)| (*b, *n)).max().unwrap_or((0, 0));
    let main = main_low.map_or(initial, |(d, _)| d);
    let ok = branch_low as f64 >= floor && main as f64 >= floor && most.0 as u64 <= max_side_bytes;
    Outcome::new(
        name,
        ok,
        format!(
            "{} side blocks ({} bytes); lowest difficulty on the branch {branch_low} ({:.3} of {initial}), on the honest \
             chains {main} ({:.3}); floor {floor:.0}; most stored by one node: {} blocks, {} bytes (bound {max_side_bytes})",
            sent.len(),
            sent.iter().map(|b| b.2).sum::<usize>(),
            branch_low as f64 / initial as f64,
            main as f64 / initial as f64,
            most.1,
            most.0,
        ),
    )
}

#[derive(Parser)]
#[command(name = "vision-sim", version, about = "Simulations of many real Vision nodes in one process")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario file and writes its results.
    Run {
        /// The scenario (e.g. simulations/scenarios/propagation.toml).
        scenario: PathBuf,
        /// Overrides the number of honest nodes started at the beginning.
        #[arg(long)]
        nodes: Option<usize>,
        /// Overrides the seed of every random choice.
        #[arg(long)]
        seed: Option<u64>,
        /// Output directory (default: `target/sim/<name>-n<nodes>-s<seed>`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also measure raw gossipsub on the same network after the run (as `raw_baseline = true`).
        #[arg(long)]
        raw_baseline: bool,
        /// Overrides the links' one-way latency range, e.g. `0,0` for links without latency.
        #[arg(long, value_name = "LOW,HIGH", value_parser = parse_range)]
        latency_ms: Option<[u64; 2]>,
    },
    /// Lists the scenarios in a directory with their descriptions.
    List {
        /// Where the scenario files are.
        #[arg(default_value = "simulations/scenarios")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,vision_sim=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
    let cli = Cli::parse();
    match cli.command {
        Command::List { dir } => list(&dir),
        Command::Run { scenario, nodes, seed, out, raw_baseline, latency_ms } => {
            let mut s = match Scenario::load(&scenario) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(n) = nodes {
                s.nodes = n;
            }
            if let Some(seed) = seed {
                s.seed = seed;
            }
            s.raw_baseline |= raw_baseline;
            if let Some(l) = latency_ms {
                s.links.latency_ms = l;
            }
            if let Err(e) = s.validate() {
                eprintln!("error: {}: {e}", scenario.display());
                return ExitCode::from(2);
            }
            let out = out.unwrap_or_else(|| runner::default_out(&s));
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(run(s, out)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `LOW,HIGH` (two integers).
fn parse_range(s: &str) -> Result<[u64; 2], String> {
    let (a, b) = s.split_once(',').ok_or("expected LOW,HIGH, e.g. 20,100")?;
    let n = |x: &str| x.trim().parse::<u64>().map_err(|e| format!("{x:?}: {e}"));
    Ok([n(a)?, n(b)?])
}

fn list(dir: &std::path::Path) -> ExitCode {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let mut paths: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
    paths.sort();
    let mut ok = true;
    for p in paths {
        match Scenario::load(&p) {
            Ok(s) => println!("{:<18} {:>4} nodes  {}", s.name, s.nodes, s.description),
            Err(e) => {
                ok = false;
                eprintln!("error: {e}");
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(2) }
}

/// Runs a scenario; `Ok(true)` when every check held.
async fn run(scenario: Scenario, out: PathBuf) -> Result<bool, String> {
    println!(
        "scenario {} | seed {} | {} nodes (+{} late) | degree {} | latency {:?} ms | bandwidth {} kbit/s | storage {:?}",
        scenario.name,
        scenario.seed,
        scenario.nodes,
        scenario.late_nodes,
        scenario.degree,
        scenario.links.latency_ms,
        scenario.links.bandwidth_kbps,
        scenario.storage,
    );
    println!(
        "repeat with: vision-sim run <file> --nodes {} --seed {} --latency-ms {},{}{}",
        scenario.nodes,
        scenario.seed,
        scenario.links.latency_ms[0],
        scenario.links.latency_ms[1],
        if scenario.raw_baseline { " --raw-baseline" } else { "" }
    );
    let checks = scenario.checks.clone();
    let mut runner = Runner::new(scenario.clone())?;
    let links = runner.net().links().len();
    runner.start().await?;
    tracing::info!(links, "network formed; timeline starts");
    runner.play().await?;

    // Checks that need the nodes running, in file order.
    let mut live: Vec<Option<Outcome>> = vec![None; checks.len()];
    for (i, c) in checks.iter().enumerate() {
        live[i] = match &c.kind {
            CheckKind::Converged { within_s, after } => {
                let waited = runner.wait_converged(Duration::from_secs_f64(*within_s)).await;
                let n = runner.live().len();
                Some(match (waited, after) {
                    (Err(e), _) => Outcome::new(&c.name, false, e),
                    (Ok(_), Some(kind)) => match runner.agreement_after(kind) {
                        Some(ms) => Outcome::new(
                            &c.name,
                            ms <= within_s * 1000.0,
                            format!("{n} nodes first on one tip {:.2} s after the last {kind}", ms / 1000.0),
                        ),
                        None => Outcome::new(&c.name, false, format!("nodes never agreed after the last {kind}")),
                    },
                    (Ok(ms), None) => Outcome::new(
                        &c.name,
                        ms <= within_s * 1000.0,
                        format!("{n} nodes on one tip {:.2} s after the last event or block", ms / 1000.0),
                    ),
                })
            }
            CheckKind::IdenticalChains => Some(match runner.chains() {
                Ok(chains) => {
                    let differ = chains.iter().filter(|(_, h)| *h != chains[0].1).count();
                    let heights = chains.first().map(|(_, h)| h.len().saturating_sub(1)).unwrap_or(0);
                    Outcome::new(
                        &c.name,
                        differ == 0 && !chains.is_empty(),
                        format!("{} nodes compared at heights 0..={heights}; {differ} differ", chains.len()),
                    )
                }
                Err(e) => Outcome::new(&c.name, false, e),
            }),
            CheckKind::Included { within_s } => {
                let missing = runner.wait_included(Duration::from_secs_f64(*within_s)).await;
                Some(Outcome::new(
                    &c.name,
                    missing == 0 && !runner.submitted.is_empty(),
                    format!("{} transfers x {} nodes; {missing} missing", runner.submitted.len(), runner.live().len()),
                ))
            }
            CheckKind::CheapBlocksNotStored => Some(cheap_blocks_not_stored(&runner, &c.name)),
            CheckKind::TimestampWalkBounded { min_difficulty_fraction, max_side_bytes } => {
                Some(timestamp_walk_bounded(
                    &runner,
                    &c.name,
                    *min_difficulty_fraction,
                    *max_side_bytes,
                    scenario.chain.initial_difficulty,
                ))
            }
            _ => None,
        };
    }
    let plan = scenario.raw_baseline.then(|| baseline::Plan::new(runner.net(), scenario.nodes, runner.topics()));
    let results = runner.finish().await;
    // The raw baseline runs once the nodes are stopped, so it has the machine to itself.
    let raw = match &plan {
        Some(plan) => {
            let run = baseline::NodeRun {
                mined: &results.mined,
                canonical: &results.canonical,
                arrivals: &results.arrivals,
                import: results.import,
            };
            Some(baseline::run(plan, &run).await.map(|r| baseline::Comparison::new(&run, &r)))
        }
        None => None,
    };
    for (i, c) in checks.iter().enumerate() {
        if matches!(c.kind, CheckKind::RawReceived) {
            live[i] = Some(match &raw {
                Some(Ok(cmp)) => Outcome::new(
                    &c.name,
                    cmp.pairs > 0 && cmp.raw_reached == cmp.pairs,
                    format!(
                        "{} blocks x {} receiving nodes: raw gossipsub reached {} of {} pairs",
                        cmp.blocks,
                        cmp.nodes.saturating_sub(1),
                        cmp.raw_reached,
                        cmp.pairs
                    ),
                ),
                Some(Err(e)) => Outcome::new(&c.name, false, e.clone()),
                None => Outcome::new(&c.name, false, "the raw baseline did not run"),
            });
        }
    }
    let outcomes: Vec<Outcome> = checks
        .iter()
        .zip(live)
        .map(|(c, l)| {
            l.or_else(|| results.evaluate(&c.name, &c.kind))
                .unwrap_or_else(|| Outcome::new(&c.name, false, "not evaluated"))
        })
        .collect();
    let mut summary = results.summary(&scenario, links, outcomes.clone());
    summary.raw_baseline = raw.as_ref().and_then(|r| r.as_ref().ok()).cloned();
    let files = results.write(&out, &summary)?;

    println!();
    if let (Some(med), Some(worst)) = (summary.p95_median_ms, summary.p95_worst_ms) {
        println!("block arrival p95: median over blocks {med:.0} ms, worst {worst:.0} ms");
    }
    if let Some(w) = summary.p100_worst_ms {
        println!("block arrival p100 (last node), worst block: {w:.0} ms");
    }
    if let (Some(all), Some(first), Some(dup)) =
        (summary.messages_per_block, summary.first_copies_per_block, summary.duplicate_ratio)
    {
        println!(
            "gossip per block: {all:.0} messages received network-wide, {first:.0} first copies, {dup:.2} duplicates per first copy"
        );
    }
    println!("final height {}, {} mined blocks went stale", summary.final_height, summary.stale_blocks);
    match (&raw, &summary.raw_baseline) {
        (_, Some(cmp)) => {
            println!();
            println!(
                "raw gossipsub baseline: the same {} nodes, {} links and {} blocks (origins, sizes, spacing), \
                 arrival after mining (node) or publish (raw), origin excluded:",
                cmp.nodes, cmp.links, cmp.blocks
            );
            println!("{}", cmp.table());
            if let (Some(m), Some(d)) = (cmp.raw_messages_per_block, cmp.raw_duplicate_ratio) {
                println!(
                    "raw gossip per block: {m:.0} messages received network-wide, {d:.2} duplicates per first copy"
                );
            }
            if let Some(ms) = cmp.node_import_mean_ms {
                println!(
                    "node block import (checks, signatures, state, commit): mean {ms:.1} ms over {} imports",
                    cmp.node_imports
                );
            }
        }
        (Some(Err(e)), None) => println!("raw gossipsub baseline failed: {e}"),
        _ => {}
    }
    println!();
    let mut passed = true;
    for o in &outcomes {
        passed &= o.passed;
        println!("[{}] {}: {}", if o.passed { "PASS" } else { "FAIL" }, o.name, o.detail);
    }
    println!();
    println!("wrote {} files to {}: {}", files.len(), out.display(), files.join(", "));
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    println!("{} passed, {} failed", outcomes.len() - failed, failed);
    Ok(passed)
}
