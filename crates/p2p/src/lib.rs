//! The network layer: a libp2p swarm (TCP or in-memory transport, noise, yamux, identify, ping,
//! Kademlia, connection limits, a block list, gossipsub and the `/vision/sync/1` request-response
//! protocol), owned by one task ([`service`]), plus the peer manager that scores peers.
//!
//! libp2p stays inside this crate: the only one of the workspace that names it (ADR 010). The rest
//! of the node sees a cloneable [`NetworkHandle`] (bounded command channel with one-shot replies),
//! shared [`NetInfo`], and peers and addresses as [`PeerId`], [`Multiaddr`] and [`NodeKey`]. The
//! network reaches the chain only through [`ChainAccess`] (tip, store reads, `import_block`,
//! `submit_transactions`), which the node implements, and turns the `PeerAction` of every error
//! into a score change in the [`peer_manager`].

#![warn(missing_docs)]
#![forbid(unsafe_code)]

// `#[derive(NetworkBehaviour)]` generates an undocumented event enum.
pub mod addrman;
#[allow(missing_docs)]
pub mod behaviour;
pub mod chain_access;
pub mod gossip;
pub mod ip_limits;
pub mod link;
pub mod metrics;
pub mod peer_manager;
pub mod service;
pub mod stall;
pub mod sync;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use libp2p::identity;
use parking_lot::RwLock;
use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use vision_primitives::keys::{KeyError, Zeroizing, read_provided_secret_file, write_secret_file};

pub use chain_access::{ChainAccess, ImportMode, ImportQueue, ImportReply, ImportWork, Imported};
/// The address and identity types the rest of the node uses to talk about peers; nothing outside
/// this crate names libp2p (`scripts/check-layers.py`).
pub use libp2p::identity::Keypair as NodeKey;
pub use libp2p::{Multiaddr, PeerId};
pub use service::{Service, peer_of};

/// Capacity of the command channel into the swarm task; callers wait (async) when it is full.
pub const COMMAND_CHANNEL_CAP: usize = 64;
/// Commands queued for the network task, in the resource registry.
pub const COMMANDS: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("commands", "p2p::COMMAND_CHANNEL_CAP", COMMAND_CHANNEL_CAP);

/// Which transport the swarm runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    /// TCP (with DNS resolution) + noise + yamux: real use.
    #[default]
    Tcp,
    /// libp2p's in-process memory transport + noise + yamux: tests and simulations
    /// (listen on `/memory/N`).
    Memory,
}

/// Network settings.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The node's identity.
    pub keypair: identity::Keypair,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Addresses to announce besides the listen addresses (e.g. behind NAT or in Docker).
    pub external: Vec<Multiaddr>,
    /// Peers to dial at start and to seed Kademlia with (`/ip4/.../tcp/.../p2p/<peer id>`).
    pub bootstrap: Vec<Multiaddr>,
    /// Transport.
    pub transport: TransportKind,
    /// Peer scoring, bans, limits.
    pub peers: peer_manager::Config,
    /// Whether to dial the peers remembered in the database at start.
    pub dial_known_peers: bool,
    /// Emulated links (latency, bandwidth, topology, cuts) for the memory transport; `None` is a
    /// perfect network. Ignored on TCP.
    pub links: Option<link::Links>,
}

impl NetworkConfig {
    /// Defaults with the given key: TCP, no listen address, no bootstrap.
    pub fn new(keypair: identity::Keypair) -> Self {
        NetworkConfig {
            keypair,
            listen: Vec::new(),
            external: Vec::new(),
            bootstrap: Vec::new(),
            transport: TransportKind::Tcp,
            peers: peer_manager::Config::default(),
            dial_known_peers: true,
            links: None,
        }
    }
}

/// Why the network could not start or a command failed.
#[derive(Debug, Error)]
pub enum NetworkError {
    /// The node key file.
    #[error("node key {path}: {message}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Transport or behaviour construction.
    #[error("cannot build the network stack: {0}")]
    Build(String),
    /// Listening failed.
    #[error("cannot listen on {addr}: {message} (choose another --listen)")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        message: String,
    },
    /// The swarm task is gone (node shutting down).
    #[error("the network task has stopped")]
    Stopped,
    /// A command was refused.
    #[error("{0}")]
    Refused(String),
}

/// Reads the node key at `path`, creating it (mode 0600, crash-safely) if missing. The file holds
/// the 32-byte ed25519 secret as hex; it is refused when group or others have access to it.
pub fn load_or_create_node_key(path: &Path) -> Result<identity::Keypair, NetworkError> {
    if path.exists() {
        return load_existing_node_key(path);
    }
    let kp = identity::Keypair::generate_ed25519();
    match write_node_key(path, &kp) {
        Ok(()) => Ok(kp),
        // Another process created it since the look above: use theirs.
        Err(_) if path.exists() => load_existing_node_key(path),
        Err(e) => Err(e),
    }
}

/// The [`NetworkError::Key`] of a key-file error (whose text would repeat the path).
fn node_key_error(path: &Path, e: KeyError) -> NetworkError {
    let message = match e {
        KeyError::Io { source, .. } => source.to_string(),
        KeyError::Exists(_) => "already exists; choose another --out or delete it first".into(),
        KeyError::Invalid { message, .. } => message,
        KeyError::Permissions { mode, .. } => format!(
            "is accessible to group or others (mode {mode:03o}); run `chmod 600 {}` (and treat the key as \
             exposed if anyone else could read it)",
            path.display()
        ),
        KeyError::Random(m) => m,
    };
    NetworkError::Key { path: path.display().to_string(), message }
}

/// Reads an existing node key file. Refused when group or others have access to a file of our own;
/// a file owned by another user that they may only read (an orchestrator's read-only secret mount)
/// is used with a warning (see `vision_primitives::keys::read_provided_secret_file`).
pub fn load_existing_node_key(path: &Path) -> Result<identity::Keypair, NetworkError> {
    let err = |message: String| NetworkError::Key { path: path.display().to_string(), message };
    let (text, loose) = read_provided_secret_file(path).map_err(|e| node_key_error(path, e))?;
    if let Some(mode) = loose {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:o}"),
            "node key is readable by others and owned by another user (a mounted secret?); anyone who can \
             read it can impersonate this node: mount it for this node's user only (mode 0400)"
        );
    }
    let hex_secret = text.trim();
    if hex_secret.len() != 64 {
        return Err(err(format!("must hold 32 bytes (64 hex digits), holds {} characters", hex_secret.len())));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_secret, &mut *bytes).map_err(|e| err(format!("not hex: {e}")))?;
    identity::Keypair::ed25519_from_bytes(&mut *bytes).map_err(|e| err(e.to_string()))
}

/// A fresh node key (ed25519, from OS randomness).
pub fn generate_node_key() -> NodeKey {
    identity::Keypair::generate_ed25519()
}

/// The peer id of a node key.
pub fn peer_id_of(key: &NodeKey) -> PeerId {
    key.public().to_peer_id()
}

/// Writes a node key file (mode 0600, crash-safely: `vision_primitives::keys::write_secret_file`);
/// refuses to overwrite.
pub fn write_node_key(path: &Path, kp: &identity::Keypair) -> Result<(), NetworkError> {
    let err = |message: String| NetworkError::Key { path: path.display().to_string(), message };
    // The ed25519 key pair wipes itself when dropped; its bytes (secret || public) are wiped here.
    let pair = Zeroizing::new(
        kp.clone().try_into_ed25519().map_err(|_| err("only ed25519 node keys are supported".into()))?.to_bytes(),
    );
    let mut line = Zeroizing::new([0u8; 65]);
    hex::encode_to_slice(&pair[..32], &mut line[..64]).expect("64 hex digits for 32 bytes");
    line[64] = b'\n';
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    write_secret_file(path, &*line).map_err(|e| node_key_error(path, e))
}

/// Shared, cheaply readable facts about the network (for `/v1/status`).
#[derive(Debug)]
pub struct NetInfo {
    /// Our peer id.
    pub peer_id: PeerId,
    listen: RwLock<Vec<Multiaddr>>,
    peers: AtomicUsize,
    syncing: AtomicBool,
    /// Peers on the other side of a fork deeper than the reorg window (reported by `/v1/status`,
    /// kept by the operator through the admin API).
    pub deep_forks: service::deep_fork::Registry,
}

impl NetInfo {
    fn new(peer_id: PeerId) -> Self {
        NetInfo {
            peer_id,
            listen: RwLock::new(Vec::new()),
            peers: AtomicUsize::new(0),
            syncing: AtomicBool::new(false),
            deep_forks: service::deep_fork::Registry::default(),
        }
    }
    /// Addresses we listen on.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.read().clone()
    }
    /// Connected peers.
    pub fn peer_count(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }
    /// Whether we are catching up with a peer that has more work.
    pub fn syncing(&self) -> bool {
        self.syncing.load(Ordering::Relaxed)
    }
}

/// One connected peer, as `/v1/peers` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PeerInfo {
    /// Peer id.
    pub peer_id: String,
    /// Addresses (the connection's remote address first).
    pub addresses: Vec<String>,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Score in [-100, 100].
    pub score: f64,
    /// The peer's agent string from identify.
    pub client: Option<String>,
    /// Its advertised chain height, if known.
    pub height: Option<u64>,
}

/// How the peer manager stands with a peer: what decides whether a connection from it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PeerStanding {
    /// Connected now.
    pub connected: bool,
    /// Banned now.
    pub banned: bool,
    /// Its score (kept for disconnected peers only while it is low, see `peer_manager`).
    pub score: f64,
    /// Refused on connection: banned, or its score at or below the disconnect threshold (a peer
    /// cut off by its score before it reached the ban threshold stays cut off until the score
    /// decays above it).
    pub refused: bool,
}

/// A ban, as the admin API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct BanInfo {
    /// Peer id.
    pub peer_id: String,
    /// When the ban ends (unix ms).
    pub until_unix_ms: u64,
}

/// A command to the swarm task.
#[derive(Debug)]
pub enum Command {
    /// Connected peers.
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// Current bans.
    Bans(oneshot::Sender<Vec<BanInfo>>),
    /// A peer's standing, connected or not ([`PeerStanding`]).
    Standing {
        /// The peer.
        peer: PeerId,
        /// Its standing.
        reply: oneshot::Sender<PeerStanding>,
    },
    /// Ban a peer for a while (disconnects it).
    Ban {
        /// The peer.
        peer: PeerId,
        /// For how long.
        duration: Duration,
        /// Done.
        reply: oneshot::Sender<()>,
    },
    /// Lift a ban.
    Unban {
        /// The peer.
        peer: PeerId,
        /// Done.
        reply: oneshot::Sender<()>,
    },
    /// Dial an address.
    Dial {
        /// Where.
        addr: Multiaddr,
        /// Dial started, or why not.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// A cloneable handle to the swarm task.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    info: Arc<NetInfo>,
}

impl NetworkHandle {
    /// Shared network facts.
    pub fn info(&self) -> &Arc<NetInfo> {
        &self.info
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NetworkError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| NetworkError::Stopped)?;
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetworkError> {
        self.ask(Command::Peers).await
    }

    /// Current bans.
    pub async fn bans(&self) -> Result<Vec<BanInfo>, NetworkError> {
        self.ask(Command::Bans).await
    }

    /// How the peer manager stands with `peer`, connected or not.
    pub async fn standing(&self, peer: PeerId) -> Result<PeerStanding, NetworkError> {
        self.ask(|reply| Command::Standing { peer, reply }).await
    }

    /// Bans `peer` for `duration`.
    pub async fn ban(&self, peer: PeerId, duration: Duration) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Ban { peer, duration, reply }).await
    }

    /// Lifts a ban.
    pub async fn unban(&self, peer: PeerId) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Unban { peer, reply }).await
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?.map_err(NetworkError::Refused)
    }
}

#[cfg(test)]
mod node_key_tests {
    use super::*;

    #[test]
    fn node_key_round_trip_no_overwrite_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("node-key");
        let kp = load_or_create_node_key(&path).unwrap();
        assert_eq!(load_or_create_node_key(&path).unwrap().public(), kp.public());
        assert_eq!(load_existing_node_key(&path).unwrap().public(), kp.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65, "64 hex digits and a newline: {text:?}");
        let before = std::fs::read(&path).unwrap();
        let err = write_node_key(&path, &generate_node_key()).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["node-key"]);
    }

    #[cfg(unix)]
    #[test]
    fn group_readable_node_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-key");
        let kp = load_or_create_node_key(&path).unwrap();
        for mode in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            for result in [load_existing_node_key(&path), load_or_create_node_key(&path)] {
                let msg = result.unwrap_err().to_string();
                assert!(msg.contains(&format!("chmod 600 {}", path.display())), "{mode:o}: {msg}");
                assert!(msg.starts_with(&format!("node key {}:", path.display())), "{msg}");
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_existing_node_key(&path).unwrap().public(), kp.public());
    }

    #[test]
    fn bad_node_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body, expect) in [
            ("empty", "", "must hold 32 bytes"),
            ("short", "abcd\n", "must hold 32 bytes"),
            ("nothex", &format!("{}\n", "zz".repeat(32)), "not hex"),
        ] {
            let path = dir.path().join(name);
            write_secret_file(&path, body.as_bytes()).unwrap();
            let msg = load_existing_node_key(&path).unwrap_err().to_string();
            assert!(msg.contains(expect), "{name}: {msg}");
        }
    }
}
