//! The composed libp2p behaviour and the swarm construction (transport injection lives here).

use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, MemoryTransport, Transport as _};
use libp2p::core::upgrade::Version;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, connection_limits, gossipsub, identify, identity, kad,
    noise, ping, request_response, tcp, yamux,
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
    // Kademlia is for finding peers only: records and provider records that peers send are handed
    // to us as events (which the service ignores) instead of being stored, so no peer can park
    // data on this node (issue #15).
    kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
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
            let tcp = NewPortForDials(tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)))
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

/// A transport whose dials always take a new local port (`PortUse::New`), whatever the behaviour
/// asked. With port reuse (the swarm's default) TCP binds a dial's socket to `0.0.0.0:<listen
/// port>`, and that bind fails with `EADDRINUSE` while any socket of the host holds that port on
/// another address (a connection in TIME_WAIT, another process's ephemeral port): the listen port
/// is random on each start, so after a restart every dial failed, for as long as such a socket
/// lived (up to a minute), in about one restart out of twenty in the integration suite
/// (`network::killed_node_reconnects_...`) and in every restart after 5,000 connections had just
/// closed (`eclipse.rs`). Reusing the listen port only makes the observed address of an outbound
/// connection dialable, which nothing here relies on (our listen addresses are announced through
/// identify).
struct NewPortForDials<T>(T);

impl<T: libp2p::Transport + Unpin> libp2p::Transport for NewPortForDials<T> {
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(
        &mut self,
        id: libp2p::core::transport::ListenerId,
        addr: Multiaddr,
    ) -> Result<(), libp2p::core::transport::TransportError<Self::Error>> {
        self.0.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: libp2p::core::transport::ListenerId) -> bool {
        self.0.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: libp2p::core::transport::DialOpts,
    ) -> Result<Self::Dial, libp2p::core::transport::TransportError<Self::Error>> {
        let opts = libp2p::core::transport::DialOpts { port_use: libp2p::core::transport::PortUse::New, ..opts };
        self.0.dial(addr, opts)
    }

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<libp2p::core::transport::TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll(cx)
    }
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
