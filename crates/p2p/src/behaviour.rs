//! The composed libp2p behaviour and the swarm construction (transport injection lives here).

use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, MemoryTransport, Transport as _};
use libp2p::core::upgrade::Version;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits, gossipsub, identify, identity, kad, noise,
    ping, request_response, tcp, yamux,
};

use super::link::Links;
use super::{NetworkError, TransportKind, sync};

/// Identify protocol version: peers on other protocol families are visible in logs.
pub const PROTOCOL_VERSION: &str = "/vision/1";
/// Kademlia protocol name (separate from IPFS's DHT).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/vision/kad/1");
/// Timeout of one sync request.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent inbound sync streams per connection.
pub const SYNC_MAX_CONCURRENT_STREAMS: usize = 16;
/// How often each connection is pinged.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A ping unanswered this long fails. libp2p-ping forgives a connection's first failure and
/// reports the second in a row, on which we close the connection: a silently dead link (a
/// partition, a frozen process, a peer that stopped reading) is dropped within about
/// 2 × (`PING_INTERVAL` + `PING_TIMEOUT`) = 20 s. Measured 40 s with 10 s + 10 s
/// (`tests/it/partition.rs`, `tests/it/slow_readers.rs`).
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections to one peer.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Inbound connections still in the handshake.
pub const MAX_PENDING_INCOMING: u32 = 128;
/// Outbound dials in flight.
pub const MAX_PENDING_OUTGOING: u32 = 64;
/// Idle connections (no stream in use) are closed after this.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything the swarm speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Refuses and closes connections of banned peers.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Caps on inbound connections per IP address and per network group (`ip_limits`).
    pub ip_limits: super::ip_limits::Behaviour,
    /// Caps on pending and established connections (total, inbound, per peer).
    pub limits: connection_limits::Behaviour,
    /// Exchanges agent strings and listen addresses.
    pub identify: identify::Behaviour,
    /// Keeps connections alive and measures round trips.
    pub ping: ping::Behaviour,
    /// Peer discovery, seeded from `--bootstrap`.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Block and transaction propagation.
    pub gossipsub: gossipsub::Behaviour,
    /// `/vision/sync/1`: status, blocks by range, blocks by hash.
    pub sync: request_response::Behaviour<sync::NodeCodec>,
}

/// Builds the behaviour for `keypair`. `max_peers` caps established connections, of which
/// `min_outbound` are kept free of inbound ones, so an inbound flood never leaves us unable to
/// dial out; `inbound` caps inbound connections per IP address and network group.
/// With `gossip_metrics`, gossipsub registers its own metrics there (mesh sizes, messages received
/// with and without duplicates, scores).
pub fn build_behaviour(
    keypair: &identity::Keypair,
    max_peers: u32,
    min_outbound: u32,
    inbound: super::ip_limits::Limits,
    topics: &super::gossip::Topics,
    gossip_metrics: Option<&mut prometheus_client::registry::Registry>,
) -> Result<Behaviour, NetworkError> {
    let peer_id = keypair.public().to_peer_id();
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(max_peers))
        .with_max_established_incoming(Some(max_peers.saturating_sub(min_outbound).max(1)))
        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
        .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
        .with_max_pending_outgoing(Some(MAX_PENDING_OUTGOING));
    let mut gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(keypair.clone()),
        super::gossip::config().map_err(NetworkError::Build)?,
    )
    .map_err(|e| NetworkError::Build(e.to_string()))?;
    if let Some(registry) = gossip_metrics {
        gossipsub = gossipsub.with_metrics(registry, gossipsub::MetricsConfig::default());
    }
    gossipsub
        .with_peer_score(super::gossip::score_params(topics), super::gossip::score_thresholds())
        .map_err(NetworkError::Build)?;
    let mut kad_config = kad::Config::new(KAD_PROTOCOL);
    kad_config.set_query_timeout(Duration::from_secs(30));
    // The swarm task bootstraps Kademlia itself when it wants peers (and only once it knows some).
    kad_config.set_periodic_bootstrap_interval(None);
    let mut kad = kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
    kad.set_mode(Some(kad::Mode::Server));
    Ok(Behaviour {
        blocked: allow_block_list::Behaviour::default(),
        ip_limits: super::ip_limits::Behaviour::new(inbound),
        limits: connection_limits::Behaviour::new(limits),
        identify: identify::Behaviour::new(
            identify::Config::new(PROTOCOL_VERSION.to_string(), keypair.public())
                .with_agent_version(format!("vision-node/{}", env!("CARGO_PKG_VERSION"))),
        ),
        ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL).with_timeout(PING_TIMEOUT)),
        kad,
        gossipsub,
        sync: request_response::Behaviour::new(
            // Version 2 first: requests prefer it, and fall back to version 1 with an older peer.
            [
                (sync::PROTOCOL_V2, request_response::ProtocolSupport::Full),
                (sync::PROTOCOL, request_response::ProtocolSupport::Full),
            ],
            request_response::Config::default()
                .with_request_timeout(SYNC_REQUEST_TIMEOUT)
                .with_max_concurrent_streams(SYNC_MAX_CONCURRENT_STREAMS),
        ),
    })
}

/// The transport for `kind`, authenticated with noise and multiplexed with yamux. On the memory
/// transport, `links` (if any) shapes every connection this side dials ([`super::link`]).
pub fn build_transport(
    kind: TransportKind,
    keypair: &identity::Keypair,
    links: Option<&Links>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, NetworkError> {
    let noise = noise::Config::new(keypair).map_err(|e| NetworkError::Build(e.to_string()))?;
    Ok(match (kind, links.cloned()) {
        (TransportKind::Tcp, _) => {
            let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                .map(|conn, _| super::stall::StallGuard::new(conn));
            let dns = libp2p::dns::tokio::Transport::system(tcp).map_err(|e| NetworkError::Build(e.to_string()))?;
            secure(dns, noise)
        }
        (TransportKind::Memory, None) => secure(MemoryTransport::default(), noise),
        (TransportKind::Memory, Some(links)) => secure(
            MemoryTransport::default()
                .and_then(move |conn, endpoint| super::link::shape(conn, endpoint, links.clone())),
            noise,
        ),
    })
}

/// Noise, then yamux, with a 20 s timeout on the whole upgrade, on any raw transport (public for
/// tests that bring their own, e.g. TCP from a chosen source address).
pub fn secure<T>(transport: T, noise: noise::Config) -> Boxed<(PeerId, StreamMuxerBox)>
where
    T: libp2p::Transport + Send + Unpin + 'static,
    T::Output: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
{
    transport
        .upgrade(Version::V1)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .timeout(Duration::from_secs(20))
        .boxed()
}

/// A swarm with the node's behaviour on the given transport (see [`build_transport`] and
/// [`build_behaviour`]).
pub fn build_swarm(
    kind: TransportKind,
    keypair: &identity::Keypair,
    links: Option<&Links>,
    peers: &super::peer_manager::Config,
    topics: &super::gossip::Topics,
    gossip_metrics: Option<&mut prometheus_client::registry::Registry>,
) -> Result<Swarm<Behaviour>, NetworkError> {
    let transport = build_transport(kind, keypair, links)?;
    let max_peers = u32::try_from(peers.max_peers).unwrap_or(u32::MAX);
    let min_outbound = u32::try_from(peers.min_outbound_peers).unwrap_or(u32::MAX);
    let behaviour = build_behaviour(keypair, max_peers, min_outbound, peers.inbound, topics, gossip_metrics)?;
    Ok(Swarm::new(
        transport,
        behaviour,
        keypair.public().to_peer_id(),
        libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT),
    ))
}
