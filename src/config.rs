//! Node configuration: command-line flags, `VISION_*` environment variables and a TOML file all map
//! onto one [`RunConfig`].
//!
//! **Each setting is written once**, as a field of the settings struct of its subsystem:
//! [`ChainSettings`], [`MinerSettings`], [`ApiSettings`], [`MempoolSettings`],
//! [`NetworkSettings`] and [`LogSettings`], flattened into [`RunArgs`]. Every one of them derives
//! both clap's `Args` and serde's `Serialize`/`Deserialize`, so the one field `data_dir` is at once
//!
//! - the flag `--data-dir`, listed under its subsystem's heading in `vision-node run --help`;
//! - the environment variable `VISION_DATA_DIR` (the `env` next to the flag);
//! - the config-file key `data_dir`: the file is flat TOML whose keys are the field names, i.e. the
//!   flags' names in snake case.
//!
//! A unit test checks that these three names agree for every field, and that every flag round-trips
//! through the file, so a new field needs no code beyond its declaration (and its use in the
//! resolution into [`NodeConfig`]).
//!
//! Precedence, highest first: flag, environment variable, config file, built-in default. Clap puts
//! the flag over the environment variable; [`RunArgs::merged`] lays that over the file with one
//! generic step ([`overlay`]: both sides become JSON objects and every set key of the command line
//! replaces the file's); [`RunArgs::resolve`] fills what is still unset from the defaults (a
//! `DEFAULT_*` constant next to each settings struct, or in the layer that owns the setting) and
//! checks ranges. Unknown keys in the file are an error naming the key and its line, so a typo never
//! silently falls back to a default.
//!
//! Multiaddrs (`listen`, `external_addr`, `bootstrap`) are kept as strings in the settings: the
//! command line checks them as it parses (clap's error names the flag), the file's are checked by
//! the resolution (`listen: "x" is not a multiaddr: ...`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chain::genesis::{Genesis, GenesisError, dev_keypair};
use crate::chain::import::DEFAULT_MAX_REORG_DEPTH;
use crate::chain::types::{Address, MAX_TX_LEN};
use crate::mempool::{DEFAULT_MAX_BYTES, DEFAULT_MAX_TXS, Limits};
use crate::miner::{DEFAULT_MAX_BLOCK_TXS, MinerConfig};
use crate::node::NodeConfig;
use crate::p2p::{Multiaddr, NetworkConfig};

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

/// Flags of `vision-node run`: the config file's path and the settings of each subsystem.
///
/// The same struct is what the config file holds (without `config`): see [`RunArgs::merged`].
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
pub struct RunArgs {
    /// TOML config file; its keys are the flags' names in snake case.
    #[arg(long, env = "VISION_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Chain and storage.
    #[command(flatten)]
    #[serde(flatten)]
    pub chain: ChainSettings,
    /// Mining.
    #[command(flatten)]
    #[serde(flatten)]
    pub miner: MinerSettings,
    /// The HTTP listeners.
    #[command(flatten)]
    #[serde(flatten)]
    pub api: ApiSettings,
    /// Mempool caps.
    #[command(flatten)]
    #[serde(flatten)]
    pub mempool: MempoolSettings,
    /// Peer-to-peer networking.
    #[command(flatten)]
    #[serde(flatten)]
    pub network: NetworkSettings,
    /// Logging.
    #[command(flatten)]
    #[serde(flatten)]
    pub log: LogSettings,
}

// Every settings struct below: each field is an `Option` (unset = `None`), and is at once a flag,
// a `VISION_*` variable and a file key (see the module docs). Serde needs no per-field attribute:
// a missing key deserializes to `None`, and `None` serializes to null, which [`overlay`] skips.

/// Chain and storage settings.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Chain")]
pub struct ChainSettings {
    /// Data directory [default: $HOME/.vision-node/devnet, or ./vision-data without HOME].
    #[arg(long, env = "VISION_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Genesis file [default: the embedded devnet].
    #[arg(long, env = "VISION_GENESIS", value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Deepest reorganisation followed [default: 1000].
    #[arg(long, env = "VISION_MAX_REORG_DEPTH", value_name = "BLOCKS")]
    pub max_reorg_depth: Option<u64>,
}

/// The default data directory.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".vision-node").join("devnet"),
        None => PathBuf::from("vision-data"),
    }
}

impl ChainSettings {
    /// The data directory, or [`default_data_dir`].
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    /// The genesis file's genesis, or the embedded devnet's.
    pub fn genesis(&self) -> Result<Genesis, ConfigError> {
        Ok(match &self.genesis {
            Some(p) => Genesis::load(p)?,
            None => Genesis::devnet(),
        })
    }

    /// The reorg depth, or [`DEFAULT_MAX_REORG_DEPTH`].
    pub fn max_reorg_depth(&self) -> u64 {
        self.max_reorg_depth.unwrap_or(DEFAULT_MAX_REORG_DEPTH)
    }
}

/// Default number of mining threads.
pub const DEFAULT_MINE_THREADS: usize = 1;

/// Mining settings.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Mining")]
pub struct MinerSettings {
    /// Mine blocks [default: true on the embedded devnet or when --miner is given, else false].
    #[arg(long, env = "VISION_MINE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub mine: Option<bool>,
    /// Address receiving rewards and fees; giving it turns mining on [default: devnet dev account
    /// 0, a published key: a WARN says so].
    #[arg(long, env = "VISION_MINER", value_name = "ADDRESS")]
    pub miner: Option<Address>,
    /// Mining threads [default: 1].
    #[arg(long, env = "VISION_MINE_THREADS", value_name = "N")]
    pub mine_threads: Option<usize>,
}

impl MinerSettings {
    /// Whether the node mines: `mine` when set; otherwise on the embedded devnet (`devnet`, where
    /// `vision-node run` with no flag is a mining dev node) or when a reward address is given. A
    /// node of any other network with neither setting does not mine, so it never pays rewards to
    /// a published dev key unasked.
    pub fn mining(&self, devnet: bool) -> bool {
        self.mine.unwrap_or(devnet || self.miner.is_some())
    }

    /// The miner's configuration, `None` when mining is off ([`MinerSettings::mining`]).
    pub fn resolve(&self, devnet: bool) -> Result<Option<MinerConfig>, ConfigError> {
        let mine = self.mining(devnet);
        let threads = self.mine_threads.unwrap_or(DEFAULT_MINE_THREADS);
        if mine && threads == 0 {
            return Err(ConfigError::Invalid("mine_threads must be at least 1 (or set mine = false)".into()));
        }
        let address = self.miner.unwrap_or_else(|| dev_keypair(0).address());
        Ok(mine.then_some(MinerConfig { address, threads, max_block_txs: DEFAULT_MAX_BLOCK_TXS }))
    }
}

/// Default API address: localhost only.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:7070";
/// Default admin API address: localhost only, never public by default.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:7071";

/// The HTTP listeners: API, admin API, Prometheus metrics.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "API")]
pub struct ApiSettings {
    /// HTTP API listen address [default: 127.0.0.1:7070].
    #[arg(long, env = "VISION_API_ADDR", value_name = "HOST:PORT")]
    pub api_addr: Option<SocketAddr>,
    /// Admin API listen address (ban, unban, add peer) [default: 127.0.0.1:7071].
    #[arg(long, env = "VISION_ADMIN_ADDR", value_name = "HOST:PORT")]
    pub admin_addr: Option<SocketAddr>,
    /// Prometheus metrics listen address, serving /metrics [default: 127.0.0.1:9615].
    #[arg(long, env = "VISION_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    /// File holding the admin API's bearer token, at least 32 characters [default: the cookie
    /// DATA_DIR/admin.cookie, 32 random bytes in hex created on first start].
    #[arg(long, env = "VISION_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Host name the admin API also answers to, besides its own address, localhost, 127.0.0.1 and
    /// ::1 (repeatable; NAME for the admin port, NAME:PORT, or * to turn the Host check off).
    #[arg(long, env = "VISION_ADMIN_ALLOWED_HOST", value_name = "HOST", value_delimiter = ',')]
    pub admin_allowed_host: Option<Vec<String>>,
    /// Web origin (https://host or https://host:port) whose browser requests the admin API accepts (repeatable;
    /// none by default: requests carrying an Origin header are refused).
    #[arg(long, env = "VISION_ADMIN_ALLOWED_ORIGIN", value_name = "ORIGIN", value_delimiter = ',')]
    pub admin_allowed_origin: Option<Vec<String>>,
    /// Public API requests per second one client address may make, sustained (127.0.0.1 and ::1
    /// are not limited; IPv6 clients count per /64) [default: 50].
    #[arg(long, env = "VISION_API_RATE_PER_IP", value_name = "N")]
    pub api_rate_per_ip: Option<u32>,
    /// Public API requests one client address may make at once after being idle [default: 100].
    #[arg(long, env = "VISION_API_BURST_PER_IP", value_name = "N")]
    pub api_burst_per_ip: Option<u32>,
    /// Public API requests served at once, over all clients; more are answered 503 busy
    /// [default: 128].
    #[arg(long, env = "VISION_API_MAX_IN_FLIGHT", value_name = "N")]
    pub api_max_in_flight: Option<usize>,
    /// Longest a public API request may take before it is answered 503 timeout [default: 10].
    #[arg(long, env = "VISION_API_TIMEOUT_SECS", value_name = "SECS")]
    pub api_timeout_secs: Option<u64>,
    /// Store reads the public API runs at once, on the blocking pool [default: 4].
    #[arg(long, env = "VISION_API_STORE_READERS", value_name = "N")]
    pub api_store_readers: Option<usize>,
}

/// A built-in default value.
fn parse_default<T: FromStr>(what: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid(format!("default {what}: {value:?}")))
}

impl ApiSettings {
    /// The API address, or [`DEFAULT_API_ADDR`].
    pub fn api_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.api_addr.map_or_else(|| parse_default("API address", DEFAULT_API_ADDR), Ok)
    }

    /// The admin API address, or [`DEFAULT_ADMIN_ADDR`].
    pub fn admin_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.admin_addr.map_or_else(|| parse_default("admin address", DEFAULT_ADMIN_ADDR), Ok)
    }

    /// The metrics address, or [`crate::metrics::DEFAULT_METRICS_ADDR`].
    pub fn metrics_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.metrics_addr.map_or_else(|| parse_default("metrics address", crate::metrics::DEFAULT_METRICS_ADDR), Ok)
    }

    /// The public API's limits, or their defaults ([`crate::api::limits`]); each must be at least 1.
    pub fn api_limits(&self) -> Result<crate::api::limits::Limits, ConfigError> {
        use crate::api::limits as l;
        let limits = l::Limits {
            rate_per_ip: self.api_rate_per_ip.unwrap_or(l::DEFAULT_RATE_PER_IP),
            burst_per_ip: self.api_burst_per_ip.unwrap_or(l::DEFAULT_BURST_PER_IP),
            max_in_flight: self.api_max_in_flight.unwrap_or(l::DEFAULT_MAX_IN_FLIGHT),
            timeout: self.api_timeout_secs.map_or(l::DEFAULT_TIMEOUT, Duration::from_secs),
            store_readers: self.api_store_readers.unwrap_or(l::DEFAULT_STORE_READERS),
        };
        if limits.rate_per_ip == 0
            || limits.burst_per_ip == 0
            || limits.max_in_flight == 0
            || limits.timeout.is_zero()
            || limits.store_readers == 0
        {
            return Err(ConfigError::Invalid(
                "api_rate_per_ip, api_burst_per_ip, api_max_in_flight, api_timeout_secs and api_store_readers must be at least 1".into(),
            ));
        }
        Ok(limits)
    }

    /// The admin API's token source and the Hosts and Origins it accepts (checked when the node
    /// starts the admin API: `crate::api::auth`).
    pub fn admin_auth(&self) -> crate::api::auth::AdminAuthConfig {
        crate::api::auth::AdminAuthConfig {
            token_file: self.admin_token_file.clone(),
            allowed_hosts: self.admin_allowed_host.clone().unwrap_or_default(),
            allowed_origins: self.admin_allowed_origin.clone().unwrap_or_default(),
        }
    }
}

/// Mempool caps.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Mempool")]
pub struct MempoolSettings {
    /// Mempool cap in transactions [default: 100000].
    #[arg(long, env = "VISION_MEMPOOL_MAX_TXS", value_name = "N")]
    pub mempool_max_txs: Option<usize>,
    /// Mempool cap in bytes [default: 67108864].
    #[arg(long, env = "VISION_MEMPOOL_MAX_BYTES", value_name = "BYTES")]
    pub mempool_max_bytes: Option<usize>,
    /// Transactions one sender may have pooled [default: 4096].
    #[arg(long, env = "VISION_MEMPOOL_MAX_PER_SENDER", value_name = "N")]
    pub mempool_max_per_sender: Option<usize>,
}

impl MempoolSettings {
    /// The pool's limits, defaults from [`DEFAULT_MAX_TXS`] and [`DEFAULT_MAX_BYTES`].
    pub fn resolve(&self) -> Result<Limits, ConfigError> {
        let max_txs = self.mempool_max_txs.unwrap_or(DEFAULT_MAX_TXS);
        let max_bytes = self.mempool_max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        let max_per_sender = self.mempool_max_per_sender.unwrap_or(crate::mempool::DEFAULT_MAX_PER_SENDER);
        if max_txs == 0 || max_bytes < MAX_TX_LEN || max_per_sender == 0 {
            return Err(ConfigError::Invalid(format!(
                "mempool caps too small: mempool_max_txs and mempool_max_per_sender must be >= 1 and mempool_max_bytes >= {MAX_TX_LEN}"
            )));
        }
        Ok(Limits { max_txs, max_bytes, max_per_sender, ..Limits::default() })
    }
}

/// Whether `run` joins the network by default.
pub const DEFAULT_NETWORK: bool = true;
/// Default p2p listen address.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/7000";
/// Name of the node key file inside the data directory.
pub const NODE_KEY_FILE: &str = "node-key";

/// Peer-to-peer settings. The defaults of the peer limits and scores are those of
/// [`crate::p2p::peer_manager::Config`].
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Network")]
pub struct NetworkSettings {
    /// Join the peer-to-peer network [default: true].
    #[arg(long, env = "VISION_NETWORK", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub network: Option<bool>,
    /// P2p listen multiaddr, repeatable [default: /ip4/0.0.0.0/tcp/7000].
    #[arg(long, env = "VISION_LISTEN", value_name = "MULTIADDR", value_delimiter = ',', value_parser = multiaddr_arg)]
    pub listen: Option<Vec<String>>,
    /// Address to announce to peers besides the listen addresses, repeatable.
    #[arg(long, env = "VISION_EXTERNAL_ADDR", value_name = "MULTIADDR", value_delimiter = ',', value_parser = multiaddr_arg)]
    pub external_addr: Option<Vec<String>>,
    /// Bootstrap peer multiaddr (ending in /p2p/PEER_ID), repeatable.
    #[arg(long, env = "VISION_BOOTSTRAP", value_name = "MULTIADDR", value_delimiter = ',', value_parser = multiaddr_arg)]
    pub bootstrap: Option<Vec<String>>,
    /// Node key file, created on first run [default: DATA_DIR/node-key].
    #[arg(long, env = "VISION_NODE_KEY", value_name = "FILE")]
    pub node_key: Option<PathBuf>,
    /// Peer count to dial towards [default: 50].
    #[arg(long, env = "VISION_TARGET_PEERS", value_name = "N")]
    pub target_peers: Option<usize>,
    /// Maximum connected peers [default: 600].
    #[arg(long, env = "VISION_MAX_PEERS", value_name = "N")]
    pub max_peers: Option<usize>,
    /// Inbound connections from one IP address; 127.0.0.1 and ::1 are not counted [default: 8].
    #[arg(long, env = "VISION_MAX_INBOUND_PER_IP", value_name = "N")]
    pub max_inbound_per_ip: Option<usize>,
    /// Inbound connections from one network group (an IPv4 /16, an IPv6 /32) [default: 32].
    #[arg(long, env = "VISION_MAX_INBOUND_PER_SUBNET", value_name = "N")]
    pub max_inbound_per_subnet: Option<usize>,
    /// Length of score-triggered bans in seconds [default: 1800].
    #[arg(long, env = "VISION_BAN_DURATION_SECS", value_name = "SECS")]
    pub ban_duration_secs: Option<u64>,
    /// Half-life of peer score decay in seconds [default: 600].
    #[arg(long, env = "VISION_SCORE_HALF_LIFE_SECS", value_name = "SECS")]
    pub score_half_life_secs: Option<u64>,
}

/// Clap's check of a multiaddr flag (kept as a string in [`NetworkSettings`]).
fn multiaddr_arg(s: &str) -> Result<String, String> {
    s.parse::<Multiaddr>().map(|_| s.to_string()).map_err(|e| e.to_string())
}

/// The multiaddrs of a list setting; `key` names it in the error.
fn multiaddrs(key: &str, list: &Option<Vec<String>>) -> Result<Vec<Multiaddr>, ConfigError> {
    list.iter()
        .flatten()
        .map(|s| s.parse().map_err(|e| ConfigError::Invalid(format!("{key}: {s:?} is not a multiaddr: {e}"))))
        .collect()
}

impl NetworkSettings {
    /// The network's configuration (`None` when the network is off); the node key is loaded, or
    /// created in `data_dir` on first run.
    pub fn resolve(&self, data_dir: &Path) -> Result<Option<NetworkConfig>, ConfigError> {
        if !self.network.unwrap_or(DEFAULT_NETWORK) {
            return Ok(None);
        }
        let key_path = self.node_key.clone().unwrap_or_else(|| data_dir.join(NODE_KEY_FILE));
        let keypair =
            crate::p2p::load_or_create_node_key(&key_path).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut net = NetworkConfig::new(keypair);
        net.listen = multiaddrs("listen", &self.listen)?;
        if net.listen.is_empty() {
            net.listen.push(parse_default("listen", DEFAULT_LISTEN)?);
        }
        net.external = multiaddrs("external_addr", &self.external_addr)?;
        net.bootstrap = multiaddrs("bootstrap", &self.bootstrap)?;
        for b in &net.bootstrap {
            if crate::p2p::peer_of(b).is_none() {
                return Err(ConfigError::Invalid(format!("bootstrap address {b} must end in /p2p/<peer id>")));
            }
        }
        let p = &mut net.peers;
        p.target_peers = self.target_peers.unwrap_or(p.target_peers);
        p.max_peers = self.max_peers.unwrap_or(p.max_peers);
        if p.max_peers == 0 || p.target_peers > p.max_peers {
            return Err(ConfigError::Invalid(format!(
                "max_peers ({}) must be at least 1 and at least target_peers ({})",
                p.max_peers, p.target_peers
            )));
        }
        p.inbound.per_ip = self.max_inbound_per_ip.unwrap_or(p.inbound.per_ip);
        p.inbound.per_group = self.max_inbound_per_subnet.unwrap_or(p.inbound.per_group);
        if p.inbound.per_ip == 0 || p.inbound.per_group < p.inbound.per_ip {
            return Err(ConfigError::Invalid(format!(
                "max_inbound_per_ip ({}) must be at least 1 and at most max_inbound_per_subnet ({})",
                p.inbound.per_ip, p.inbound.per_group
            )));
        }
        if let Some(s) = self.ban_duration_secs {
            p.ban_duration = Duration::from_secs(s);
        }
        if let Some(s) = self.score_half_life_secs {
            if s == 0 {
                return Err(ConfigError::Invalid("score_half_life_secs must be at least 1".into()));
            }
            p.score_half_life = Duration::from_secs(s);
        }
        Ok(Some(net))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Logging")]
pub struct LogSettings {
    /// Log format [default: pretty].
    #[arg(long, env = "VISION_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Lays the set fields of `high` over `low`, for any settings struct: both are serialized to JSON
/// objects and every key of `high` that is not null (an unset `Option`) replaces `low`'s. This is
/// the whole merge: a new field needs nothing here.
pub fn overlay<T: Serialize + DeserializeOwned>(low: &T, high: &T) -> Result<T, ConfigError> {
    let object = |t: &T| match serde_json::to_value(t) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(ConfigError::Invalid(format!("settings are not a struct: {other}"))),
        Err(e) => Err(ConfigError::Invalid(format!("settings: {e}"))),
    };
    let mut merged = object(low)?;
    merged.extend(object(high)?.into_iter().filter(|(_, v)| !v.is_null()));
    serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| ConfigError::Invalid(format!("settings: {e}")))
}

impl RunArgs {
    /// The config file's keys: every settings field, by its serde name.
    pub fn file_keys() -> Vec<String> {
        match serde_json::to_value(RunArgs::default()) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        }
    }

    /// Reads a config file: unknown keys are refused with their line; each settings struct is read
    /// from the whole file (so a bad value's error names its key and line).
    pub fn load_file(path: &Path) -> Result<RunArgs, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.display().to_string(), source })?;
        let invalid = |message: String| ConfigError::Parse { path: path.display().to_string(), message };
        let keys: std::collections::BTreeMap<toml::Spanned<String>, IgnoredAny> =
            toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let known = Self::file_keys();
        if let Some(key) = keys.keys().find(|k| !known.contains(k.get_ref())) {
            let line = text[..key.span().start].matches('\n').count() + 1;
            return Err(invalid(format!(
                "unknown key `{}` at line {line}; the keys are the flags of `vision-node run` in snake case: {}",
                key.get_ref(),
                known.join(", ")
            )));
        }
        fn group<T: DeserializeOwned>(text: &str) -> Result<T, toml::de::Error> {
            toml::from_str(text)
        }
        let group_err = |e: toml::de::Error| invalid(e.to_string());
        Ok(RunArgs {
            config: None,
            chain: group(&text).map_err(group_err)?,
            miner: group(&text).map_err(group_err)?,
            api: group(&text).map_err(group_err)?,
            mempool: group(&text).map_err(group_err)?,
            network: group(&text).map_err(group_err)?,
            log: group(&text).map_err(group_err)?,
        })
    }

    /// The settings in force: these flags (clap has already put them over the environment) laid
    /// over the config file's, if any. Unset settings stay `None`; [`RunArgs::resolve`] applies the
    /// defaults.
    pub fn merged(&self) -> Result<RunArgs, ConfigError> {
        let file = match &self.config {
            Some(p) => Self::load_file(p)?,
            None => RunArgs::default(),
        };
        Ok(RunArgs { config: self.config.clone(), ..overlay(&file, self)? })
    }

    /// Merges flags/environment over the config file over defaults, and checks the result.
    pub fn resolve(&self) -> Result<RunConfig, ConfigError> {
        let s = self.merged()?;
        let data_dir = s.chain.data_dir();
        let genesis = s.chain.genesis()?;
        let miner = s.miner.resolve(genesis.is_devnet())?;
        let api_addr = s.api.api_addr()?;
        let mempool = s.mempool.resolve()?;
        let network = s.network.resolve(&data_dir)?;
        let node = NodeConfig {
            network,
            admin_addr: Some(s.api.admin_addr()?),
            admin_auth: s.api.admin_auth(),
            metrics_addr: Some(s.api.metrics_addr()?),
            api_limits: s.api.api_limits()?,
            data_dir: Some(data_dir.clone()),
            genesis,
            miner,
            api_addr: Some(api_addr),
            max_reorg_depth: s.chain.max_reorg_depth(),
            mempool,
            verify_threshold: crate::verify::DEFAULT_PARALLEL_THRESHOLD,
        };
        Ok(RunConfig { node, data_dir, log_format: s.log.log_format.unwrap_or_default() })
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use serde_json::{Value, json};

    /// `vision-node run`'s flags as a command of their own.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn with_file(path: PathBuf) -> RunArgs {
        RunArgs { config: Some(path), ..Default::default() }
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vision.toml");
        std::fs::write(&path, "data_dir = \"/from/file\"\nmine_threads = 3\nmempool_max_txs = 500\n").unwrap();
        let data = dir.path().join("flag");
        let args =
            RunArgs { chain: ChainSettings { data_dir: Some(data.clone()), ..Default::default() }, ..with_file(path) };
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
        let err = with_file(path.clone()).resolve().unwrap_err();
        assert!(err.to_string().contains("data_dri"), "{err}");
        std::fs::write(&path, "network = false\nbootstrap = [\"/ip4/1.2.3.4/tcp/1\"]\n").unwrap();
        assert!(with_file(path.clone()).resolve().is_ok(), "ignored without network");
        std::fs::write(&path, "bootstrap = [\"/ip4/1.2.3.4/tcp/1\"]\nnode_key = \"/nonexistent-dir-x/k\"\n").unwrap();
        assert!(with_file(path.clone()).resolve().is_err());
        std::fs::write(&path, "mine_threads = 0\n").unwrap();
        assert!(matches!(with_file(path).resolve(), Err(ConfigError::Invalid(_))));
    }

    /// An unknown key is refused, naming the key and its line, wherever it is; so are `config`
    /// (a flag, not a setting) and tables. A bad value names its key and line too.
    #[test]
    fn file_errors_name_the_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vision.toml");
        let err = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let e = with_file(path.clone()).merged().unwrap_err();
            assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
            e.to_string()
        };
        let e = err("mine = false\n\n# a comment\nmax_peer = 3\nmine_threads = 2\n");
        assert!(e.contains("unknown key `max_peer` at line 4"), "{e}");
        assert!(e.contains("max_peers"), "lists the known keys: {e}");
        let e = err("config = \"other.toml\"\n");
        assert!(e.contains("unknown key `config` at line 1"), "{e}");
        let e = err("[p2p]\nmax_peers = 3\n");
        assert!(e.contains("unknown key `p2p` at line 1"), "{e}");
        let e = err("data_dir = \"d\"\nmine_threads = \"many\"\n");
        assert!(e.contains("line 2") && e.contains("mine_threads") && e.contains("expected usize"), "{e}");
        let e = err("listen = \"/ip4/1.2.3.4/tcp/1\"\n");
        assert!(e.contains("line 1") && e.contains("listen") && e.contains("sequence"), "{e}");
        let e = err("api_addr = \"localhost\"\n");
        assert!(e.contains("api_addr"), "{e}");
        // A multiaddr is checked when the network is resolved, naming the setting.
        std::fs::write(&path, "listen = [\"tcp/7000\"]\n").unwrap();
        let args = RunArgs {
            chain: ChainSettings { data_dir: Some(dir.path().join("d")), ..Default::default() },
            ..with_file(path.clone())
        };
        let e = args.resolve().unwrap_err().to_string();
        assert!(e.starts_with("listen: \"tcp/7000\" is not a multiaddr"), "{e}");
    }

    /// Every settings field is a flag `--kebab-name`, an environment variable `VISION_UPPER_NAME`
    /// and a file key `snake_name`, with no code besides its declaration: the file keys are read
    /// off serde and compared with clap's arguments, and every flag, given a value, round-trips
    /// through a config file unchanged.
    #[test]
    fn every_setting_is_a_flag_an_env_var_and_a_file_key() {
        let keys = RunArgs::file_keys();
        assert!(keys.len() >= 21, "{keys:?}");
        let cmd = Cli::command();
        let args: Vec<&clap::Arg> =
            cmd.get_arguments().filter(|a| !["config", "help"].contains(&a.get_id().as_str())).collect();
        let mut ids: Vec<String> = args.iter().map(|a| a.get_id().to_string()).collect();
        ids.sort();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "clap's flags and the file's keys differ");
        for a in &args {
            let id = a.get_id().as_str();
            assert_eq!(a.get_long(), Some(id.replace('_', "-").as_str()), "{id}: flag name");
            let env = a.get_env().and_then(|e| e.to_str()).unwrap_or_else(|| panic!("{id}: no env var"));
            assert_eq!(env, format!("VISION_{}", id.to_uppercase()), "{id}: env var name");
            assert!(a.get_help_heading().is_some(), "{id}: in a settings group, shown under its heading");
        }

        // Every flag set (a sample value per value name), then written as a config file.
        let peer = crate::p2p::peer_id_of(&crate::p2p::generate_node_key());
        let sample = |name: &str| -> String {
            match name {
                "DIR" | "FILE" => "/var/lib/vision/x".into(),
                "BOOL" => "false".into(),
                "ADDRESS" => dev_keypair(3).address().to_string(),
                "N" | "BLOCKS" | "SECS" => "7".into(),
                "BYTES" => "1048576".into(),
                "HOST:PORT" => "10.1.2.3:4567".into(),
                "FORMAT" => "json".into(),
                "MULTIADDR" => format!("/ip4/10.1.2.3/tcp/7000/p2p/{peer}"),
                "HOST" => "admin.internal".into(),
                "ORIGIN" => "https://ops.example.com".into(),
                other => panic!("give the value name {other} a sample in this test"),
            }
        };
        let mut argv = vec!["vision-node".to_string()];
        for a in &args {
            let name = a.get_value_names().and_then(|n| n.first()).map(|n| n.to_string()).unwrap();
            argv.extend([format!("--{}", a.get_long().unwrap()), sample(&name)]);
        }
        let flags = Cli::try_parse_from(&argv).unwrap().run;
        let json = serde_json::to_value(&flags).unwrap();
        for key in &keys {
            assert!(!json[key].is_null(), "{key} set by its flag");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.toml");
        std::fs::write(&path, toml::to_string(&flags).unwrap()).unwrap();
        assert_eq!(RunArgs::load_file(&path).unwrap(), flags, "every flag is a file key with the same value");
        assert_eq!(with_file(path.clone()).merged().unwrap(), RunArgs { config: Some(path), ..flags });
    }

    /// The `[default: ...]` each flag's help states is the default the resolution applies.
    #[test]
    fn help_states_the_defaults_in_force() {
        use crate::p2p::peer_manager as pm;
        let cmd = Cli::command();
        let defaults = [
            ("max_reorg_depth", DEFAULT_MAX_REORG_DEPTH.to_string()),
            ("mine_threads", DEFAULT_MINE_THREADS.to_string()),
            ("api_addr", DEFAULT_API_ADDR.to_string()),
            ("admin_addr", DEFAULT_ADMIN_ADDR.to_string()),
            ("metrics_addr", crate::metrics::DEFAULT_METRICS_ADDR.to_string()),
            ("api_rate_per_ip", crate::api::limits::DEFAULT_RATE_PER_IP.to_string()),
            ("api_burst_per_ip", crate::api::limits::DEFAULT_BURST_PER_IP.to_string()),
            ("api_max_in_flight", crate::api::limits::DEFAULT_MAX_IN_FLIGHT.to_string()),
            ("api_timeout_secs", crate::api::limits::DEFAULT_TIMEOUT.as_secs().to_string()),
            ("api_store_readers", crate::api::limits::DEFAULT_STORE_READERS.to_string()),
            ("mempool_max_txs", DEFAULT_MAX_TXS.to_string()),
            ("mempool_max_bytes", DEFAULT_MAX_BYTES.to_string()),
            ("mempool_max_per_sender", crate::mempool::DEFAULT_MAX_PER_SENDER.to_string()),
            ("network", DEFAULT_NETWORK.to_string()),
            ("listen", DEFAULT_LISTEN.to_string()),
            ("target_peers", pm::DEFAULT_TARGET_PEERS.to_string()),
            ("max_peers", pm::DEFAULT_MAX_PEERS.to_string()),
            ("max_inbound_per_ip", crate::p2p::ip_limits::DEFAULT_MAX_INBOUND_PER_IP.to_string()),
            ("max_inbound_per_subnet", crate::p2p::ip_limits::DEFAULT_MAX_INBOUND_PER_GROUP.to_string()),
            ("ban_duration_secs", pm::DEFAULT_BAN_DURATION.as_secs().to_string()),
            ("score_half_life_secs", pm::DEFAULT_SCORE_HALF_LIFE.as_secs().to_string()),
            ("log_format", format!("{:?}", LogFormat::default()).to_lowercase()),
        ];
        for (id, value) in defaults {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap_or_else(|| panic!("no flag {id}"));
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains(&format!("[default: {value}]")), "{id}: help {help:?} should say [default: {value}]");
        }
        // The peer settings' defaults are p2p's own.
        let dir = tempfile::tempdir().unwrap();
        let args = RunArgs {
            chain: ChainSettings { data_dir: Some(dir.path().into()), ..Default::default() },
            ..Default::default()
        };
        let peers = args.resolve().unwrap().node.network.unwrap().peers;
        assert_eq!((peers.target_peers, peers.max_peers), (pm::DEFAULT_TARGET_PEERS, pm::DEFAULT_MAX_PEERS));
        assert_eq!(peers.inbound, crate::p2p::ip_limits::Limits::default());
        assert_eq!(
            (peers.ban_duration, peers.score_half_life),
            (pm::DEFAULT_BAN_DURATION, pm::DEFAULT_SCORE_HALF_LIFE)
        );
    }

    /// Mining is on by default only on the embedded devnet or with a reward address; an explicit
    /// `mine` wins either way.
    #[test]
    fn mining_default_depends_on_the_network_and_the_reward_address() {
        let addr = Some(Address([3; 32]));
        let s = |mine, miner| MinerSettings { mine, miner, mine_threads: None };
        assert!(s(None, None).mining(true), "the devnet mines with no flag");
        assert!(!s(None, None).mining(false), "another network does not");
        assert!(s(None, addr).mining(false), "--miner turns it on");
        assert!(s(Some(true), None).mining(false), "--mine true turns it on");
        assert!(!s(Some(false), addr).mining(true), "--mine false wins");
        assert!(s(None, None).resolve(false).unwrap().is_none());
        assert_eq!(s(None, addr).resolve(false).unwrap().unwrap().address, Address([3; 32]));
        let help = Cli::command()
            .get_arguments()
            .find(|a| a.get_id() == "mine")
            .and_then(|a| a.get_help().map(|h| h.to_string()))
            .unwrap_or_default();
        assert!(help.contains("[default: true on the embedded devnet or when --miner is given, else false]"), "{help}");
        // A custom genesis through the resolution: not mining.
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("g.toml");
        let mut custom = Genesis::devnet();
        custom.chain_id = 5;
        custom.save(&g).unwrap();
        let args = |miner: MinerSettings| RunArgs {
            chain: ChainSettings { data_dir: Some(dir.path().into()), genesis: Some(g.clone()), ..Default::default() },
            miner,
            network: NetworkSettings { network: Some(false), ..Default::default() },
            ..Default::default()
        };
        assert!(args(s(None, None)).resolve().unwrap().node.miner.is_none());
        assert!(args(s(None, addr)).resolve().unwrap().node.miner.is_some());
    }

    #[test]
    fn overlay_keeps_what_the_top_leaves_unset() {
        let low = MinerSettings { mine: Some(false), miner: None, mine_threads: Some(2) };
        let high = MinerSettings { mine: Some(true), ..Default::default() };
        assert_eq!(
            overlay(&low, &high).unwrap(),
            MinerSettings { mine: Some(true), miner: None, mine_threads: Some(2) }
        );
        assert_eq!(overlay(&low, &MinerSettings::default()).unwrap(), low);
    }

    /// Set in the child process of [`flag_beats_env_beats_file_beats_default`]: the flags, split on
    /// U+001F.
    const CHILD_ARGS: &str = "VISION_CONFIG_TEST_CHILD_ARGS";

    /// The child: parses its flags and environment like `vision-node run` and prints what they
    /// resolve to.
    #[test]
    fn precedence_child() {
        let Some(args) = std::env::var_os(CHILD_ARGS) else { return };
        let args = args.into_string().unwrap();
        let argv = std::iter::once("vision-node").chain(args.split('\u{1f}').filter(|s| !s.is_empty()));
        let run = Cli::try_parse_from(argv).unwrap().run;
        let merged = run.merged().unwrap();
        let c = run.resolve().unwrap();
        let out = json!({
            "data_dir": c.data_dir,
            "mining": c.node.miner.map(|m| m.threads),
            "mine_threads": merged.miner.mine_threads,
            "api_addr": c.node.api_addr.unwrap().to_string(),
            "listen": c.node.network.unwrap().listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "log_format": format!("{:?}", c.log_format),
        });
        println!("RESOLVED {out}");
    }

    /// Precedence for a path, a bool, a number, an address, a list and an enum: default, then the
    /// file over it, the environment over the file, the flag over the environment. Environment
    /// variables are process-wide, so each case runs in a child process ([`precedence_child`]).
    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let file = d("vision.toml");
        std::fs::write(
            &file,
            format!(
                "data_dir = {:?}\nmine = false\nmine_threads = 2\napi_addr = \"127.0.0.1:7101\"\n\
                 listen = [\"/ip4/127.0.0.1/tcp/7001\"]\nlog_format = \"json\"\n",
                d("file")
            ),
        )
        .unwrap();
        let env = [
            ("VISION_DATA_DIR", d("env")),
            ("VISION_MINE", "true".into()),
            ("VISION_MINE_THREADS", "3".into()),
            ("VISION_API_ADDR", "127.0.0.1:7102".into()),
            ("VISION_LISTEN", "/ip4/127.0.0.1/tcp/7002,/ip4/127.0.0.1/tcp/7012".into()),
            ("VISION_LOG_FORMAT", "pretty".into()),
        ];
        let flags = [
            "--data-dir",
            &d("flag"),
            "--mine",
            "false",
            "--mine-threads",
            "4",
            "--api-addr",
            "127.0.0.1:7103",
            "--listen",
            "/ip4/127.0.0.1/tcp/7003",
            "--log-format",
            "json",
        ]
        .join("\u{1f}");
        let run = |config: bool, env: &[(&str, String)], flags: &str| -> Value {
            let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
            cmd.args(["config::tests::precedence_child", "--exact", "--nocapture", "--test-threads", "1"]);
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("VISION_") {
                    cmd.env_remove(k);
                }
            }
            cmd.env("HOME", d("home")).env(CHILD_ARGS, flags).envs(env.iter().map(|(k, v)| (k, v)));
            if config {
                cmd.env("VISION_CONFIG", &file);
            }
            let out = cmd.output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout
                .lines()
                .find_map(|l| l.split_once("RESOLVED ").map(|(_, json)| json))
                .unwrap_or_else(|| panic!("child printed nothing: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
            serde_json::from_str(line).unwrap()
        };
        let default_dir = Path::new(&d("home")).join(".vision-node").join("devnet");
        assert_eq!(
            run(false, &[], ""),
            json!({"data_dir": default_dir, "mining": 1, "mine_threads": null, "api_addr": "127.0.0.1:7070",
                   "listen": ["/ip4/0.0.0.0/tcp/7000"], "log_format": "Pretty"}),
            "defaults"
        );
        assert_eq!(
            run(true, &[], ""),
            json!({"data_dir": d("file"), "mining": null, "mine_threads": 2, "api_addr": "127.0.0.1:7101",
                   "listen": ["/ip4/127.0.0.1/tcp/7001"], "log_format": "Json"}),
            "the file over the defaults"
        );
        assert_eq!(
            run(true, &env, ""),
            json!({"data_dir": d("env"), "mining": 3, "mine_threads": 3, "api_addr": "127.0.0.1:7102",
                   "listen": ["/ip4/127.0.0.1/tcp/7002", "/ip4/127.0.0.1/tcp/7012"], "log_format": "Pretty"}),
            "the environment over the file"
        );
        assert_eq!(
            run(true, &env, &flags),
            json!({"data_dir": d("flag"), "mining": null, "mine_threads": 4, "api_addr": "127.0.0.1:7103",
                   "listen": ["/ip4/127.0.0.1/tcp/7003"], "log_format": "Json"}),
            "the flags over the environment"
        );
    }
}
