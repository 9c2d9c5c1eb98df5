//! Identities are free, addresses are not (issue #15): 1,000 fresh peer ids dialing from one IP
//! address, then 1,000 from one /16, get only the per-address and per-group caps of inbound
//! connections (`crates/p2p/src/ip_limits.rs`, defaults 8 and 32), refused before any handshake
//! and counted in `vision_p2p_inbound_refused_total{reason}`; the node keeps its honest outbound
//! peer and still gets blocks through it. The identities that get in change the peer book in
//! batches (`service/peer_book.rs`), not with one durable write each.
//!
//! The attackers are the raw peers of `misbehaving.rs` (identify, ping and `/vision/sync/1`, each a
//! fresh ed25519 identity) over a TCP transport of this file that binds its socket to a chosen
//! source address before connecting: every address in 127.0.0.0/8 reaches the loopback interface,
//! so one machine can play many hosts. (127.0.0.1 itself, the host's own address, is not counted by
//! the rule; the other loopback addresses are.)

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::{Multiaddr, PeerId, Transport, identity};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
use vision_node::p2p::behaviour::secure;
use vision_node::p2p::ip_limits::{DEFAULT_MAX_INBOUND_PER_GROUP, DEFAULT_MAX_INBOUND_PER_IP};
use vision_node::p2p::service::peer_book::FLUSH_INTERVAL;

use crate::common::wait_for;
use crate::misbehaving::{RawPeer, Setting, listed, metric, multiaddr, peers};

/// Identities per flood.
const FLOOD: usize = 1_000;

/// Dials TCP from a fixed source address; never listens.
pub(crate) struct FromAddr {
    pub(crate) source: IpAddr,
}

impl Transport for FromAddr {
    type Output = Compat<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(&mut self, _id: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _id: ListenerId) -> bool {
        false
    }

    fn dial(&mut self, addr: Multiaddr, _opts: DialOpts) -> Result<Self::Dial, TransportError<Self::Error>> {
        let mut parts = addr.iter();
        let dest = match (parts.next(), parts.next()) {
            (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) => SocketAddr::new(ip.into(), port),
            _ => return Err(TransportError::MultiaddrNotSupported(addr)),
        };
        let source = self.source;
        Ok(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            Ok(socket.connect(dest).await?.compat())
        }
        .boxed())
    }

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}

/// A raw peer with a fresh identity whose connections come from `source`, announcing an address
/// there (on which nothing listens) through identify.
fn raw_peer_from(s: &Setting, source: IpAddr, port: u16) -> RawPeer {
    let keypair = identity::Keypair::generate_ed25519();
    let noise = libp2p::noise::Config::new(&keypair).unwrap();
    let announce: Multiaddr = format!("/ip4/{source}/tcp/{port}").parse().unwrap();
    RawPeer::spawn_announcing(s.runtime(), keypair, secure(FromAddr { source }, noise), &[announce])
}

/// Dials `target` from every peer and waits until each has connected or been refused; returns
/// how many are connected then.
fn flood(peers: &[RawPeer], target: &Multiaddr, what: &str) -> usize {
    for p in peers {
        p.dial(target.clone());
    }
    let settled =
        |p: &RawPeer| p.link.established.load(Ordering::SeqCst) > 0 || p.link.dial_failures.load(Ordering::SeqCst) > 0;
    wait_for(what, Duration::from_secs(180), || peers.iter().all(settled).then_some(()));
    peers.iter().filter(|p| p.link.connected.load(Ordering::SeqCst)).count()
}

/// Inbound peers `node` lists whose connection comes from an address `from` accepts.
fn listed_from(node: &crate::common::NodeProcess, from: impl Fn(&str) -> bool) -> usize {
    peers(node).iter().filter(|p| p.direction == "inbound" && p.addresses.first().is_some_and(|a| from(a))).count()
}

#[test]
fn a_thousand_identities_from_one_address_or_one_subnet_get_only_their_caps() {
    let s = Setting::new();
    // b first, then a dialing it: b is a's outbound peer, and a stack peer feeds blocks to b only,
    // so whatever reaches a arrives over that outbound connection.
    let b = s.node("b", &[]);
    let a = s.node("a", &["--bootstrap", &b.multiaddr()]);
    let b_id: PeerId = b.peer_id().parse().unwrap();
    wait_for("a connected to b", Duration::from_secs(20), || listed(&a, &b_id).then_some(()));
    let feeder = s.stack_peer(&b, &[&a]);
    s.feed_block(&feeder, &[&b, &a]);
    let target = multiaddr(&a);
    let writes_before = metric(&a, "vision_p2p_peer_book_writes_total");
    let flood_start = std::time::Instant::now();

    // 1,000 identities from one address.
    let one_ip: IpAddr = "127.0.0.2".parse().unwrap();
    let attackers: Vec<RawPeer> = (0..FLOOD).map(|i| raw_peer_from(&s, one_ip, 20_000 + i as u16)).collect();
    let connected = flood(&attackers, &target, "every dial from 127.0.0.2 to connect or be refused");
    let seen = listed_from(&a, |addr| addr.starts_with("/ip4/127.0.0.2/"));
    let refused = metric(&a, r#"vision_p2p_inbound_refused_total{reason="per_ip"}"#);
    eprintln!("{FLOOD} identities from {one_ip}: {connected} connected, a lists {seen}, {refused} refused per address");
    assert!(connected <= DEFAULT_MAX_INBOUND_PER_IP, "{connected} connections from one address");
    assert!(seen <= DEFAULT_MAX_INBOUND_PER_IP, "a lists {seen} peers from one address");
    assert!(
        refused >= (FLOOD - DEFAULT_MAX_INBOUND_PER_IP) as f64 * 0.9,
        "only {refused} refused by the per-address cap"
    );

    // 1,000 identities from 1,000 addresses of one /16 (127.9.0.0/16).
    let subnet: Vec<RawPeer> = (0..FLOOD)
        .map(|i| raw_peer_from(&s, IpAddr::from([127, 9, (i / 250) as u8, (i % 250) as u8 + 1]), 7000))
        .collect();
    let connected = flood(&subnet, &target, "every dial from 127.9.0.0/16 to connect or be refused");
    let seen = listed_from(&a, |addr| addr.starts_with("/ip4/127.9."));
    let refused = metric(&a, r#"vision_p2p_inbound_refused_total{reason="per_group"}"#);
    eprintln!(
        "{FLOOD} identities from 127.9.0.0/16: {connected} connected, a lists {seen}, {refused} refused per group"
    );
    assert!(connected <= DEFAULT_MAX_INBOUND_PER_GROUP, "{connected} connections from one /16");
    assert!(seen <= DEFAULT_MAX_INBOUND_PER_GROUP, "a lists {seen} peers from one /16");
    assert!(
        refused >= (FLOOD - DEFAULT_MAX_INBOUND_PER_GROUP) as f64 * 0.9,
        "only {refused} refused by the per-group cap"
    );

    // Every identity that got in told a an address (identify), which the address manager took
    // into its new table (`addrman.rs`; two that fall on one slot keep the first): the peer book
    // wrote the changes in batches, at most one durable write per `FLUSH_INTERVAL` (plus one that
    // was due when the flood began), not one write each.
    let told = listed_from(&a, |addr| addr.starts_with("/ip4/127.0.0.2/") || addr.starts_with("/ip4/127.9."));
    let pending = |n: &crate::common::NodeProcess| metric(n, r#"vision_resource_used{resource="peer_book_pending"}"#);
    wait_for("the flood's peer-book changes to be written", Duration::from_secs(60), || {
        (metric(&a, "vision_p2p_peer_book_writes_total") > writes_before && pending(&a) == 0.0).then_some(())
    });
    let writes = metric(&a, "vision_p2p_peer_book_writes_total") - writes_before;
    let allowed = 1 + flood_start.elapsed().as_secs() / FLUSH_INTERVAL.as_secs() + 1;
    let stored = metric(&a, r#"vision_resource_used{resource="stored_peers"}"#);
    eprintln!("{told} flood peers told a their address; {stored} peers stored, in {writes} writes (at most {allowed})");
    assert!(stored >= 2.0, "b and at least one flood peer in the peer book: {stored}");
    assert!(writes <= allowed as f64, "{writes} peer-book writes for {told} peers, more than {allowed}");

    // The honest outbound peer is kept and still serves: the next block reaches a through b.
    let b_entry = peers(&a).into_iter().find(|p| p.peer_id == b_id.to_string());
    assert_eq!(b_entry.map(|p| p.direction), Some("outbound".to_string()), "a keeps b as its outbound peer");
    let fed = s.feed_block(&feeder, &[&b, &a]);
    assert_eq!(a.status().tip_hash, fed.hash());
}
