//! Node configuration: command-line flags, `VISION_*` environment variables and a TOML file all map
//! onto one [`RunConfig`].
//!
//! Precedence, highest first: flag, environment variable, config file, built-in default. Every
//! flag of `vision-node run` has an environment variable (`--data-dir` ↔ `VISION_DATA_DIR`, and so
//! on) and a config-file key with the same name in snake case (`data_dir`). Unknown keys in the
//! file are an error, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;
use thiserror::Error;

use crate::chain::genesis::{Genesis, GenesisError, dev_keypair};
use crate::chain::import::DEFAULT_MAX_REORG_DEPTH;
use crate::chain::types::Address;
use crate::mempool::{DEFAULT_MAX_BYTES, DEFAULT_MAX_TXS, Limits};
use crate::miner::{DEFAULT_MAX_BLOCK_TXS, MinerConfig};
use crate::node::NodeConfig;

/// Default API address: localhost only.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:7070";
/// Default admin API address: localhost only, never public by default.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:7071";
/// Default p2p listen address.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/7000";
/// Name of the node key file inside the data directory.
pub const NODE_KEY_FILE: &str = "node-key";
/// Default number of mining threads.
pub const DEFAULT_MINE_THREADS: usize = 1;

/// A configuration problem; the message says which setting and what to do.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("config file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// The genesis file.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Flags of `vision-node run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// TOML config file; its keys are the flags' names in snake case.
    #[arg(long, env = "VISION_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory [default: $HOME/.vision-node/devnet, or ./vision-data without HOME].
    #[arg(long, env = "VISION_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Genesis file [default: the embedded devnet].
    #[arg(long, env = "VISION_GENESIS", value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Mine blocks [default: true]; `--mine false` turns it off.
    #[arg(long, env = "VISION_MINE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub mine: Option<bool>,
    /// Address receiving rewards and fees [default: devnet dev account 0].
    #[arg(long, env = "VISION_MINER", value_name = "ADDRESS")]
    pub miner: Option<Address>,
    /// Mining threads [default: 1].
    #[arg(long, env = "VISION_MINE_THREADS", value_name = "N")]
    pub mine_threads: Option<usize>,
    /// HTTP API listen address [default: 127.0.0.1:7070].
    #[arg(long, env = "VISION_API_ADDR", value_name = "HOST:PORT")]
    pub api_addr: Option<SocketAddr>,
    /// Log format [default: pretty].
    #[arg(long, env = "VISION_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Deepest reorganisation followed [default: 1000].
    #[arg(long, env = "VISION_MAX_REORG_DEPTH", value_name = "BLOCKS")]
    pub max_reorg_depth: Option<u64>,
    /// Mempool cap in transactions [default: 100000].
    #[arg(long, env = "VISION_MEMPOOL_MAX_TXS", value_name = "N")]
    pub mempool_max_txs: Option<usize>,
    /// Mempool cap in bytes [default: 67108864].
    #[arg(long, env = "VISION_MEMPOOL_MAX_BYTES", value_name = "BYTES")]
    pub mempool_max_bytes: Option<usize>,
    /// Join the peer-to-peer network [default: true].
    #[arg(long, env = "VISION_NETWORK", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub network: Option<bool>,
    /// P2p listen multiaddr, repeatable [default: /ip4/0.0.0.0/tcp/7000].
    #[arg(long, env = "VISION_LISTEN", value_name = "MULTIADDR", value_delimiter = ',')]
    pub listen: Vec<crate::p2p::Multiaddr>,
    /// Address to announce to peers besides the listen addresses, repeatable.
    #[arg(long, env = "VISION_EXTERNAL_ADDR", value_name = "MULTIADDR", value_delimiter = ',')]
    pub external_addr: Vec<crate::p2p::Multiaddr>,
    /// Bootstrap peer multiaddr (ending in /p2p/PEER_ID), repeatable.
    #[arg(long, env = "VISION_BOOTSTRAP", value_name = "MULTIADDR", value_delimiter = ',')]
    pub bootstrap: Vec<crate::p2p::Multiaddr>,
    /// Node key file, created on first run [default: DATA_DIR/node-key].
    #[arg(long, env = "VISION_NODE_KEY", value_name = "FILE")]
    pub node_key: Option<PathBuf>,
    /// Peer count to dial towards [default: 50].
    #[arg(long, env = "VISION_TARGET_PEERS", value_name = "N")]
    pub target_peers: Option<usize>,
    /// Maximum connected peers [default: 600].
    #[arg(long, env = "VISION_MAX_PEERS", value_name = "N")]
    pub max_peers: Option<usize>,
    /// Length of score-triggered bans in seconds [default: 1800].
    #[arg(long, env = "VISION_BAN_DURATION_SECS", value_name = "SECS")]
    pub ban_duration_secs: Option<u64>,
    /// Half-life of peer score decay in seconds [default: 600].
    #[arg(long, env = "VISION_SCORE_HALF_LIFE_SECS", value_name = "SECS")]
    pub score_half_life_secs: Option<u64>,
    /// Admin API listen address (ban, unban, add peer) [default: 127.0.0.1:7071].
    #[arg(long, env = "VISION_ADMIN_ADDR", value_name = "HOST:PORT")]
    pub admin_addr: Option<SocketAddr>,
    /// Prometheus metrics listen address, serving /metrics [default: 127.0.0.1:9615].
    #[arg(long, env = "VISION_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,
}

/// The config file: the same settings as [`RunArgs`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`RunArgs::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`RunArgs::genesis`].
    pub genesis: Option<PathBuf>,
    /// See [`RunArgs::mine`].
    pub mine: Option<bool>,
    /// See [`RunArgs::miner`].
    pub miner: Option<Address>,
    /// See [`RunArgs::mine_threads`].
    pub mine_threads: Option<usize>,
    /// See [`RunArgs::api_addr`].
    pub api_addr: Option<SocketAddr>,
    /// See [`RunArgs::log_format`].
    pub log_format: Option<LogFormat>,
    /// See [`RunArgs::max_reorg_depth`].
    pub max_reorg_depth: Option<u64>,
    /// See [`RunArgs::mempool_max_txs`].
    pub mempool_max_txs: Option<usize>,
    /// See [`RunArgs::mempool_max_bytes`].
    pub mempool_max_bytes: Option<usize>,
    /// See [`RunArgs::network`].
    pub network: Option<bool>,
    /// See [`RunArgs::listen`].
    pub listen: Option<Vec<String>>,
    /// See [`RunArgs::external_addr`].
    pub external_addr: Option<Vec<String>>,
    /// See [`RunArgs::bootstrap`].
    pub bootstrap: Option<Vec<String>>,
    /// See [`RunArgs::node_key`].
    pub node_key: Option<PathBuf>,
    /// See [`RunArgs::target_peers`].
    pub target_peers: Option<usize>,
    /// See [`RunArgs::max_peers`].
    pub max_peers: Option<usize>,
    /// See [`RunArgs::ban_duration_secs`].
    pub ban_duration_secs: Option<u64>,
    /// See [`RunArgs::score_half_life_secs`].
    pub score_half_life_secs: Option<u64>,
    /// See [`RunArgs::admin_addr`].
    pub admin_addr: Option<SocketAddr>,
    /// See [`RunArgs::metrics_addr`].
    pub metrics_addr: Option<SocketAddr>,
}

fn multiaddrs(
    key: &str,
    flag: Vec<crate::p2p::Multiaddr>,
    file: Option<Vec<String>>,
) -> Result<Vec<crate::p2p::Multiaddr>, ConfigError> {
    if !flag.is_empty() {
        return Ok(flag);
    }
    file.unwrap_or_default()
        .iter()
        .map(|s| s.parse().map_err(|e| ConfigError::Invalid(format!("{key}: {s:?} is not a multiaddr: {e}"))))
        .collect()
}

impl FileConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.display().to_string(), source })?;
        toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.display().to_string(), message: e.to_string() })
    }
}

/// Fully resolved settings of `vision-node run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Node settings.
    pub node: NodeConfig,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
}

/// The default data directory.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".vision-node").join("devnet"),
        None => PathBuf::from("vision-data"),
    }
}

impl RunArgs {
    /// Merges flags/environment over the config file over defaults.
    pub fn resolve(&self) -> Result<RunConfig, ConfigError> {
        let file = match &self.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let data_dir = self.data_dir.clone().or(file.data_dir).unwrap_or_else(default_data_dir);
        let genesis = match self.genesis.clone().or(file.genesis) {
            Some(p) => Genesis::load(&p)?,
            None => Genesis::devnet(),
        };
        let mine = self.mine.or(file.mine).unwrap_or(true);
        let threads = self.mine_threads.or(file.mine_threads).unwrap_or(DEFAULT_MINE_THREADS);
        if mine && threads == 0 {
            return Err(ConfigError::Invalid("mine_threads must be at least 1 (or set mine = false)".into()));
        }
        let address = self.miner.or(file.miner).unwrap_or_else(|| dev_keypair(0).address());
        let api_addr = match self.api_addr.or(file.api_addr) {
            Some(a) => a,
            None => DEFAULT_API_ADDR.parse().map_err(|_| ConfigError::Invalid("default API address".into()))?,
        };
        let max_txs = self.mempool_max_txs.or(file.mempool_max_txs).unwrap_or(DEFAULT_MAX_TXS);
        let max_bytes = self.mempool_max_bytes.or(file.mempool_max_bytes).unwrap_or(DEFAULT_MAX_BYTES);
        if max_txs == 0 || max_bytes < crate::chain::types::MAX_TX_LEN {
            return Err(ConfigError::Invalid(format!(
                "mempool caps too small: mempool_max_txs must be >= 1 and mempool_max_bytes >= {}",
                crate::chain::types::MAX_TX_LEN
            )));
        }
        let network = if self.network.or(file.network).unwrap_or(true) {
            let key_path = self.node_key.clone().or(file.node_key).unwrap_or_else(|| data_dir.join(NODE_KEY_FILE));
            let keypair =
                crate::p2p::load_or_create_node_key(&key_path).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            let mut net = crate::p2p::NetworkConfig::new(keypair);
            net.listen = multiaddrs("listen", self.listen.clone(), file.listen)?;
            if net.listen.is_empty() {
                net.listen.push(DEFAULT_LISTEN.parse().map_err(|_| ConfigError::Invalid("default listen".into()))?);
            }
            net.external = multiaddrs("external_addr", self.external_addr.clone(), file.external_addr)?;
            net.bootstrap = multiaddrs("bootstrap", self.bootstrap.clone(), file.bootstrap)?;
            for b in &net.bootstrap {
                if crate::p2p::peer_of(b).is_none() {
                    return Err(ConfigError::Invalid(format!("bootstrap address {b} must end in /p2p/<peer id>")));
                }
            }
            let p = &mut net.peers;
            p.target_peers = self.target_peers.or(file.target_peers).unwrap_or(p.target_peers);
            p.max_peers = self.max_peers.or(file.max_peers).unwrap_or(p.max_peers);
            if p.max_peers == 0 || p.target_peers > p.max_peers {
                return Err(ConfigError::Invalid(format!(
                    "max_peers ({}) must be at least 1 and at least target_peers ({})",
                    p.max_peers, p.target_peers
                )));
            }
            if let Some(s) = self.ban_duration_secs.or(file.ban_duration_secs) {
                p.ban_duration = std::time::Duration::from_secs(s);
            }
            if let Some(s) = self.score_half_life_secs.or(file.score_half_life_secs) {
                if s == 0 {
                    return Err(ConfigError::Invalid("score_half_life_secs must be at least 1".into()));
                }
                p.score_half_life = std::time::Duration::from_secs(s);
            }
            Some(net)
        } else {
            None
        };
        let admin_addr = match self.admin_addr.or(file.admin_addr) {
            Some(a) => a,
            None => DEFAULT_ADMIN_ADDR.parse().map_err(|_| ConfigError::Invalid("default admin address".into()))?,
        };
        let metrics_addr = match self.metrics_addr.or(file.metrics_addr) {
            Some(a) => a,
            None => crate::metrics::DEFAULT_METRICS_ADDR
                .parse()
                .map_err(|_| ConfigError::Invalid("default metrics address".into()))?,
        };
        let node = NodeConfig {
            network,
            admin_addr: Some(admin_addr),
            metrics_addr: Some(metrics_addr),
            data_dir: Some(data_dir.clone()),
            genesis,
            miner: mine.then_some(MinerConfig { address, threads, max_block_txs: DEFAULT_MAX_BLOCK_TXS }),
            api_addr: Some(api_addr),
            max_reorg_depth: self.max_reorg_depth.or(file.max_reorg_depth).unwrap_or(DEFAULT_MAX_REORG_DEPTH),
            mempool: Limits { max_txs, max_bytes, ..Limits::default() },
            verify_threshold: crate::verify::DEFAULT_PARALLEL_THRESHOLD,
        };
        Ok(RunConfig { node, data_dir, log_format: self.log_format.or(file.log_format).unwrap_or_default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vision.toml");
        std::fs::write(&path, "data_dir = \"/from/file\"\nmine_threads = 3\nmempool_max_txs = 500\n").unwrap();
        let data = dir.path().join("flag");
        let args = RunArgs { config: Some(path), data_dir: Some(data.clone()), ..Default::default() };
        let c = args.resolve().unwrap();
        assert_eq!(c.data_dir, data);
        assert!(data.join(NODE_KEY_FILE).exists(), "node key created on first use");
        assert_eq!(c.node.miner.unwrap().threads, 3);
        assert_eq!(c.node.mempool.max_txs, 500);
        assert_eq!(c.node.api_addr.unwrap().to_string(), DEFAULT_API_ADDR);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vision.toml");
        std::fs::write(&path, "data_dri = \"/typo\"\n").unwrap();
        let err = RunArgs { config: Some(path.clone()), ..Default::default() }.resolve().unwrap_err();
        assert!(err.to_string().contains("data_dri"), "{err}");
        std::fs::write(&path, "network = false\nbootstrap = [\"/ip4/1.2.3.4/tcp/1\"]\n").unwrap();
        assert!(
            RunArgs { config: Some(path.clone()), ..Default::default() }.resolve().is_ok(),
            "ignored without network"
        );
        std::fs::write(&path, "bootstrap = [\"/ip4/1.2.3.4/tcp/1\"]\nnode_key = \"/nonexistent-dir-x/k\"\n").unwrap();
        assert!(RunArgs { config: Some(path.clone()), ..Default::default() }.resolve().is_err());
        std::fs::write(&path, "mine_threads = 0\n").unwrap();
        assert!(matches!(RunArgs { config: Some(path), ..Default::default() }.resolve(), Err(ConfigError::Invalid(_))));
    }
}
