//! Scenario files (`simulations/scenarios/*.toml`): the network, the timeline of events and the
//! named checks. Unknown keys are errors, so a typo in a scenario fails loudly instead of being
//! ignored.
//!
//! ```toml
//! name = "propagation"
//! nodes = 100            # honest nodes started at the beginning (`--nodes` overrides)
//! degree = 8             # average links per node of the random topology
//! seed = 1               # `--seed` overrides; printed at start
//! duration_s = 30        # length of the timeline after the warm-up
//! [links]
//! latency_ms = [10, 80]  # one-way latency of each link, uniform in this range
//! bandwidth_kbps = 20000 # per direction; 0 is unlimited
//! [[events]]
//! at_s = 0
//! do = "mine"
//! node = "random"
//! count = 10
//! every_ms = 2000
//! [[checks]]
//! name = "95% of nodes have each block within 2 s"
//! kind = "arrival"
//! percentile = 95
//! max_ms = 2000
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::attack::AttackKind;

/// Why a scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Reading the file.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Parsing it.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (used for the output directory).
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Honest nodes started at the beginning.
    pub nodes: usize,
    /// Honest nodes held back for `join` events.
    #[serde(default)]
    pub late_nodes: usize,
    /// Average links per node.
    #[serde(default = "default_degree")]
    pub degree: usize,
    /// Seed of every random choice.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Nodes keep their chain in redb files (`disk`, needed to kill and restart them) or in
    /// redb's in-memory backend (`memory`).
    #[serde(default)]
    pub storage: Storage,
    /// Time for the network to form before the timeline starts.
    #[serde(default = "default_warmup")]
    pub warmup_s: f64,
    /// Length of the timeline.
    pub duration_s: f64,
    /// Link model.
    #[serde(default)]
    pub links: LinkConfig,
    /// Chain settings.
    #[serde(default)]
    pub chain: ChainConfig,
    /// Peer manager settings of the honest nodes.
    #[serde(default)]
    pub peers: PeerConfig,
    /// After the nodes stop, replay the mined blocks of the final chain on raw gossipsub swarms
    /// over the same topology and links (same origins, same sizes, same spacing) and report the
    /// nodes' arrival delays against theirs (`--raw-baseline` turns it on too). Needs a static
    /// network: no partition, heal, churn, join or attack event.
    #[serde(default)]
    pub raw_baseline: bool,
    /// The timeline.
    #[serde(default)]
    pub events: Vec<Event>,
    /// What must hold.
    #[serde(default)]
    pub checks: Vec<Check>,
}

fn default_degree() -> usize {
    8
}
fn default_seed() -> u64 {
    1
}
fn default_warmup() -> f64 {
    5.0
}

/// Where nodes keep their chain.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Storage {
    /// redb's in-memory backend.
    #[default]
    Memory,
    /// redb files in a temporary directory.
    Disk,
}

/// The link model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// One-way latency range in ms (uniform per link).
    pub latency_ms: [u64; 2],
    /// Bandwidth per direction in kbit/s; 0 is unlimited.
    pub bandwidth_kbps: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig { latency_ms: [10, 50], bandwidth_kbps: 0 }
    }
}

/// Chain settings of the scenario's genesis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Funded accounts that `submit` events send from.
    pub accounts: u32,
    /// Target block time (the retarget aims at it).
    pub target_block_time_ms: u64,
    /// The genesis difficulty (1: every nonce meets it; the attacks on difficulty need more).
    #[serde(default = "one_u64")]
    pub initial_difficulty: u64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig { accounts: 64, target_block_time_ms: 1_000, initial_difficulty: 1 }
    }
}

fn one_u64() -> u64 {
    1
}

/// Peer manager settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Hard cap of connections per node.
    pub max_peers: usize,
    /// Slots inbound peers may not take.
    pub min_outbound_peers: usize,
    /// Ban length in seconds.
    pub ban_duration_s: u64,
}

impl Default for PeerConfig {
    fn default() -> Self {
        let d = vision_node::p2p::peer_manager::Config::default();
        PeerConfig {
            max_peers: d.max_peers,
            min_outbound_peers: d.min_outbound_peers,
            ban_duration_s: d.ban_duration.as_secs(),
        }
    }
}

/// Which honest node an event acts on.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum NodeSel {
    /// Node number `i`.
    Index(usize),
    /// `"random"` (a random live node, drawn each time) or `"last"` (the highest-numbered
    /// node started at the beginning).
    Named(NamedNode),
}

/// Named node selections.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NamedNode {
    /// A random live node, drawn each time.
    Random,
    /// The highest-numbered node started at the beginning.
    Last,
}

/// One timed event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// Seconds after the timeline starts.
    pub at_s: f64,
    /// What happens.
    #[serde(flatten)]
    pub action: Action,
}

/// What an event does.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum Action {
    /// Mine `count` blocks on `node`, one every `every_ms` (in the background).
    Mine {
        /// Where.
        node: NodeSel,
        /// How many.
        #[serde(default = "one")]
        count: u32,
        /// Spacing.
        #[serde(default = "default_every")]
        every_ms: u64,
    },
    /// Submit `count` transfers from the funded accounts to `node`'s pool.
    Submit {
        /// Where.
        node: NodeSel,
        /// How many.
        count: u32,
    },
    /// Cut every link between `groups` contiguous groups of the honest nodes.
    Partition {
        /// How many groups.
        groups: usize,
    },
    /// Restore every link.
    Heal,
    /// Shut `count` random live nodes down (their links close), and start them again with the
    /// same key and database after `down_ms`.
    Churn {
        /// How many.
        count: usize,
        /// Time down.
        down_ms: u64,
    },
    /// Start `count` of the late nodes; they sync from their neighbours.
    Join {
        /// How many.
        count: usize,
    },
    /// Start `count` attackers of `kind`, each linked to `targets` random honest nodes.
    Attack {
        /// What they do.
        kind: AttackKind,
        /// How many.
        #[serde(default = "one_usize")]
        count: usize,
        /// Honest nodes each one is linked to.
        targets: usize,
        /// Time between attack rounds.
        #[serde(default = "default_period")]
        period_ms: u64,
    },
}

impl Action {
    /// The event's `do` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Mine { .. } => "mine",
            Action::Submit { .. } => "submit",
            Action::Partition { .. } => "partition",
            Action::Heal => "heal",
            Action::Churn { .. } => "churn",
            Action::Join { .. } => "join",
            Action::Attack { .. } => "attack",
        }
    }
}

fn one() -> u32 {
    1
}
fn one_usize() -> usize {
    1
}
fn default_every() -> u64 {
    1_000
}
fn default_period() -> u64 {
    200
}

/// A named assertion; the run exits non-zero if one fails.
#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    /// What it asserts, in words.
    pub name: String,
    /// How.
    #[serde(flatten)]
    pub kind: CheckKind,
}

/// The assertions the runner knows.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CheckKind {
    /// Every mined block reached at least `fraction` of the honest nodes alive at the end.
    AllReceived {
        /// 1.0 is every node.
        #[serde(default = "full")]
        fraction: f64,
    },
    /// For every mined block, `percentile` % of the nodes had it within `max_ms` of its mining.
    Arrival {
        /// E.g. 95.
        percentile: f64,
        /// Bound in ms.
        max_ms: f64,
    },
    /// Every live honest node reaches the same tip within `within_s`: of the last event or
    /// mined block, or, with `after`, of the last event of that kind (e.g. `"heal"`), measured on
    /// the runner's samples of every node's tip.
    Converged {
        /// Bound in seconds.
        within_s: f64,
        /// An event kind (`heal`, `join`, `churn`, `partition`, `mine`, `submit`, `attack`), or
        /// `restart` (the runner's restart of the nodes a `churn` shut down).
        #[serde(default)]
        after: Option<String>,
    },
    /// Every live honest node has the same block hash at every height (checked after `converged`).
    IdenticalChains,
    /// Every transfer accepted by a `submit` event is in every live honest node's chain.
    Included {
        /// How long to wait for it after convergence.
        #[serde(default = "default_include_wait")]
        within_s: f64,
    },
    /// Every honest node linked to an attacker of a banning kind (`invalid-blocks`, `junk-frames`,
    /// `request-flood`, `cheap-blocks`) cuts it off within `within_s` of the attack's start and
    /// until the end: bans it, or disconnects it and refuses it on connection while its score is at
    /// or below the disconnect threshold (which one depends on how many of a burst's bad messages
    /// arrive before the disconnect takes effect: ADR 005).
    AttackersCutOff {
        /// Bound in seconds.
        within_s: f64,
        /// Require a ban (for attacks whose first message is a fatal fault, e.g. `cheap-blocks`).
        #[serde(default)]
        banned: bool,
    },
    /// Every honest node linked to an attacker (including `silent` ones) still gets every block
    /// mined after the attack started (it was not eclipsed).
    NotEclipsed,
    /// No live honest node stored any block a `cheap-blocks` attacker gossiped (checked while the
    /// nodes run, after `converged`).
    CheapBlocksNotStored,
    /// Against `timestamp-walk` attackers (checked while the nodes run): the lowest difficulty on
    /// each attacker's branch and on every honest node's canonical chain is at least
    /// `min_difficulty_fraction` of the genesis difficulty, and no honest node stored more than
    /// `max_side_bytes` of the attackers' blocks.
    TimestampWalkBounded {
        /// E.g. 0.15 (ADR 011: a 30% side branch stays at or above 0.196).
        min_difficulty_fraction: f64,
        /// Bound on the attackers' blocks (encoded bytes) each honest node stored.
        max_side_bytes: u64,
    },
    /// Late joiners reach the tip they joined behind within `within_s` of joining.
    Synced {
        /// Bound in seconds.
        within_s: f64,
    },
    /// The raw gossipsub baseline (`raw_baseline`) delivered every replayed block to every node.
    RawReceived,
}

fn full() -> f64 {
    1.0
}
fn default_include_wait() -> f64 {
    20.0
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|message| ScenarioError::Parse { path: path.display().to_string(), message })
    }

    /// Parses and checks scenario text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let s: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate()?;
        Ok(s)
    }

    /// Rules a parsed scenario must follow.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes < 2 {
            return Err("nodes: at least 2".into());
        }
        if self.degree < 1 {
            return Err("degree: at least 1".into());
        }
        if self.links.latency_ms[0] > self.links.latency_ms[1] {
            return Err("links.latency_ms: [low, high] with low <= high".into());
        }
        if self.duration_s.is_nan() || self.duration_s <= 0.0 || self.warmup_s.is_nan() || self.warmup_s < 0.0 {
            return Err("duration_s must be > 0 and warmup_s >= 0".into());
        }
        if self.chain.accounts == 0 {
            return Err("chain.accounts: at least 1".into());
        }
        let mut late = 0;
        for (i, e) in self.events.iter().enumerate() {
            if !(e.at_s >= 0.0 && e.at_s <= self.duration_s) {
                return Err(format!("events[{i}].at_s must be within 0..=duration_s"));
            }
            match &e.action {
                Action::Mine { node: NodeSel::Index(n), .. } | Action::Submit { node: NodeSel::Index(n), .. }
                    if *n >= self.nodes =>
                {
                    return Err(format!("events[{i}]: node {n} does not exist (nodes = {})", self.nodes));
                }
                Action::Partition { groups } if *groups < 2 || *groups > self.nodes => {
                    return Err(format!("events[{i}]: partition groups must be in 2..=nodes"));
                }
                Action::Join { count } => late += count,
                Action::Attack { targets: 0, .. } => return Err(format!("events[{i}]: targets must be >= 1")),
                Action::Churn { count, .. } if *count >= self.nodes => {
                    return Err(format!("events[{i}]: churn count must be below nodes"));
                }
                _ => {}
            }
        }
        if self.raw_baseline
            && let Some(e) =
                self.events.iter().find(|e| !matches!(e.action, Action::Mine { .. } | Action::Submit { .. }))
        {
            return Err(format!(
                "raw_baseline replays mining on a static network; a {:?} event changes the network",
                e.action.kind()
            ));
        }
        if late > self.late_nodes {
            return Err(format!("join events start {late} nodes but late_nodes = {}", self.late_nodes));
        }
        for (i, c) in self.checks.iter().enumerate() {
            match &c.kind {
                CheckKind::Arrival { percentile, .. } if !(*percentile > 0.0 && *percentile <= 100.0) => {
                    return Err(format!("checks[{i}]: percentile must be in (0, 100]"));
                }
                CheckKind::AllReceived { fraction } if !(*fraction > 0.0 && *fraction <= 1.0) => {
                    return Err(format!("checks[{i}]: fraction must be in (0, 1]"));
                }
                CheckKind::Converged { after: Some(kind), .. }
                    if !self.events.iter().any(|e| {
                        e.action.kind() == kind.as_str()
                            || (kind == "restart" && matches!(e.action, Action::Churn { .. }))
                    }) =>
                {
                    return Err(format!("checks[{i}]: after = {kind:?}, but no event does {kind:?}"));
                }
                CheckKind::RawReceived if !self.raw_baseline => {
                    return Err(format!("checks[{i}]: raw-received needs raw_baseline = true"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
nodes = 4
duration_s = 10
[[events]]
at_s = 1
do = "mine"
node = "random"
count = 3
[[events]]
at_s = 2
do = "partition"
groups = 2
[[events]]
at_s = 3
do = "heal"
[[events]]
at_s = 4
do = "attack"
kind = "junk-frames"
targets = 2
[[checks]]
name = "one tip"
kind = "converged"
within_s = 20
"#;

    #[test]
    fn parses_events_and_checks() {
        let s = Scenario::parse(MINIMAL).unwrap();
        assert_eq!(s.events.len(), 4);
        assert!(matches!(s.events[0].action, Action::Mine { node: NodeSel::Named(NamedNode::Random), count: 3, .. }));
        assert!(matches!(s.events[1].action, Action::Partition { groups: 2 }));
        assert!(matches!(s.events[2].action, Action::Heal));
        assert!(matches!(s.events[3].action, Action::Attack { kind: AttackKind::JunkFrames, targets: 2, .. }));
        assert!(matches!(s.checks[0].kind, CheckKind::Converged { .. }));
        assert_eq!(s.degree, 8);
    }

    #[test]
    fn bad_scenarios_get_clear_errors() {
        let unknown = MINIMAL.replace("duration_s = 10", "duration_s = 10\nnodez = 3");
        assert!(Scenario::parse(&unknown).unwrap_err().contains("nodez"));
        let late = MINIMAL.replace("at_s = 3\ndo = \"heal\"", "at_s = 3\ndo = \"join\"\ncount = 2");
        assert!(Scenario::parse(&late).unwrap_err().contains("late_nodes"));
        let far = MINIMAL.replace("at_s = 1\n", "at_s = 99\n");
        assert!(Scenario::parse(&far).unwrap_err().contains("at_s"));
        let node = MINIMAL.replace("node = \"random\"", "node = 9");
        assert!(Scenario::parse(&node).unwrap_err().contains("node 9"));
        let action = MINIMAL.replace("do = \"heal\"", "do = \"explode\"");
        assert!(Scenario::parse(&action).is_err());
    }

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 5, "expected the five scenarios in {}", dir.display());
    }
}
