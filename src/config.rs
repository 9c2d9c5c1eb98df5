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
        let node = NodeConfig {
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
        let args = RunArgs { config: Some(path), data_dir: Some("/from/flag".into()), ..Default::default() };
        let c = args.resolve().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
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
        std::fs::write(&path, "mine_threads = 0\n").unwrap();
        assert!(matches!(RunArgs { config: Some(path), ..Default::default() }.resolve(), Err(ConfigError::Invalid(_))));
    }
}
