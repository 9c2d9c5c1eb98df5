//! Inbound connections per IP address and per network group: identities are free, addresses are
//! not, so an attacker with one address (or one /16) gets a handful of our inbound slots however
//! many peer ids it makes up.
//!
//! - [`Tally`] is the rule as a pure state machine (unit-tested below): connections are counted
//!   from the moment they arrive (pending, before the handshake, so a flood of half-open
//!   connections is capped too) until they close; an arrival over either cap is refused.
//! - [`Behaviour`] plugs it into the swarm: `handle_pending_inbound_connection` refuses with
//!   [`InboundRefused`] (the loop counts it in `vision_p2p_inbound_refused_total{reason}`), and
//!   connection closes and failed upgrades release the slot.
//!
//! A network group is the /16 of an IPv4 address and the /32 of an IPv6 address (an IPv4-mapped
//! IPv6 address counts as IPv4), the grouping Bitcoin Core's address manager uses: one operator
//! rarely holds addresses in many of them. The host's own loopback address (127.0.0.1, ::1) is not
//! counted: it is the operator's own processes (a local cluster, tools), and whoever can connect
//! from it already runs code on the host. Other loopback addresses (127.0.0.2 ...) are counted
//! like any address, which is how the tests exercise the rule on one machine. Transports without
//! IP addresses (the simulator's memory transport) are not limited.
//!
//! Outbound connections are ours to choose and are not counted here (diversity of outbound peers
//! is the address book's business).

use std::collections::HashMap;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Default cap of inbound connections from one IP address.
pub const DEFAULT_MAX_INBOUND_PER_IP: usize = 8;
/// Default cap of inbound connections from one network group (/16 IPv4, /32 IPv6).
pub const DEFAULT_MAX_INBOUND_PER_GROUP: usize = 32;

/// A network group: the /16 of an IPv4 address or the /32 of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// The first two octets.
    V4([u8; 2]),
    /// The first four octets.
    V6([u8; 4]),
}

impl Group {
    /// The group of `ip`.
    pub fn of(ip: IpAddr) -> Group {
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                Group::V4([o[0], o[1]])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Group::of(IpAddr::V4(v4)),
                None => {
                    let o = v6.octets();
                    Group::V6([o[0], o[1], o[2], o[3]])
                }
            },
        }
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Group::V4([a, b]) => write!(f, "{a}.{b}.0.0/16"),
            Group::V6([a, b, c, d]) => {
                write!(f, "{:x}:{:x}::/32", u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))
            }
        }
    }
}

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Inbound connections from one IP address.
    pub per_ip: usize,
    /// Inbound connections from one network group.
    pub per_group: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { per_ip: DEFAULT_MAX_INBOUND_PER_IP, per_group: DEFAULT_MAX_INBOUND_PER_GROUP }
    }
}

/// Why an inbound connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InboundRefused {
    /// Its address holds `per_ip` inbound connections already.
    #[error("{0} inbound connections from this address already")]
    PerIp(usize),
    /// Its network group holds `per_group` inbound connections already.
    #[error("{0} inbound connections from this network group already")]
    PerGroup(usize),
}

impl InboundRefused {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            InboundRefused::PerIp(_) => "per_ip",
            InboundRefused::PerGroup(_) => "per_group",
        }
    }
}

/// The IP address of a connection's remote end, if it has one that is counted.
pub fn counted_ip(addr: &Multiaddr) -> Option<IpAddr> {
    let ip = addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })?;
    let host = match ip {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => {
            v6 == std::net::Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    };
    (!host).then_some(ip)
}

/// Inbound connections counted per address and per group.
#[derive(Debug, Default)]
pub struct Tally {
    limits: Limits,
    conns: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
    per_group: HashMap<Group, usize>,
}

impl Tally {
    /// An empty tally with these caps (a cap of 0 counts as 1: a node that takes inbound
    /// connections at all takes one from each address).
    pub fn new(limits: Limits) -> Self {
        Tally {
            limits: Limits { per_ip: limits.per_ip.max(1), per_group: limits.per_group.max(1) },
            ..Tally::default()
        }
    }

    /// Counts connection `id` from `ip`, or refuses it (and counts nothing).
    pub fn admit(&mut self, id: ConnectionId, ip: IpAddr) -> Result<(), InboundRefused> {
        let group = Group::of(ip);
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip {
            return Err(InboundRefused::PerIp(self.limits.per_ip));
        }
        if self.per_group.get(&group).copied().unwrap_or(0) >= self.limits.per_group {
            return Err(InboundRefused::PerGroup(self.limits.per_group));
        }
        if self.conns.insert(id, ip).is_none() {
            *self.per_ip.entry(ip).or_default() += 1;
            *self.per_group.entry(group).or_default() += 1;
        }
        Ok(())
    }

    /// Connection `id` closed or failed: its slot is free (nothing if it was not counted).
    pub fn release(&mut self, id: ConnectionId) {
        let Some(ip) = self.conns.remove(&id) else { return };
        let group = Group::of(ip);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        if let Some(n) = self.per_group.get_mut(&group) {
            *n -= 1;
            if *n == 0 {
                self.per_group.remove(&group);
            }
        }
    }

    /// Inbound connections counted from `ip`.
    pub fn from_ip(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Inbound connections counted from `group`.
    pub fn from_group(&self, group: Group) -> usize {
        self.per_group.get(&group).copied().unwrap_or(0)
    }

    /// Connections counted.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is counted.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

/// The swarm behaviour that applies a [`Tally`] to inbound connections.
pub struct Behaviour {
    tally: Tally,
}

impl Behaviour {
    /// With these caps.
    pub fn new(limits: Limits) -> Self {
        Behaviour { tally: Tally::new(limits) }
    }

    /// The counts.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        match counted_ip(remote_addr) {
            Some(ip) => self.tally.admit(connection_id, ip).map_err(ConnectionDenied::new),
            None => Ok(()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => self.tally.release(connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_gets_at_most_its_cap_and_a_closed_slot_is_free_again() {
        let mut t = Tally::new(Limits { per_ip: 3, per_group: 100 });
        let ids: Vec<ConnectionId> = (0..5).map(ConnectionId::new_unchecked).collect();
        for id in &ids[..3] {
            t.admit(*id, ip("10.0.0.1")).unwrap();
        }
        assert_eq!(t.admit(ids[3], ip("10.0.0.1")), Err(InboundRefused::PerIp(3)));
        // Another address of the same group is fine.
        t.admit(ids[4], ip("10.0.0.2")).unwrap();
        t.release(ids[0]);
        t.release(ids[0]);
        assert_eq!(t.from_ip(ip("10.0.0.1")), 2);
        t.admit(ids[3], ip("10.0.0.1")).unwrap();
        assert_eq!(t.from_group(Group::of(ip("10.0.9.9"))), 4);
    }

    #[test]
    fn one_group_gets_at_most_its_cap_whatever_its_addresses() {
        let mut t = Tally::new(Limits { per_ip: 8, per_group: 4 });
        let mut refused = 0;
        for i in 0..1000u32 {
            let a = ip(&format!("203.0.{}.{}", i / 250, i % 250 + 1));
            if t.admit(ConnectionId::new_unchecked(i as usize), a).is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 996);
        assert_eq!(t.len(), 4);
        // The next /16 is another group.
        t.admit(ConnectionId::new_unchecked(5000), ip("203.1.0.1")).unwrap();
    }

    #[test]
    fn groups_are_slash_16_and_slash_32_and_mapped_addresses_count_as_ipv4() {
        assert_eq!(Group::of(ip("192.168.1.1")), Group::of(ip("192.168.200.7")));
        assert_ne!(Group::of(ip("192.168.1.1")), Group::of(ip("192.169.1.1")));
        assert_eq!(Group::of(ip("2001:db8:1::1")), Group::of(ip("2001:db8:ffff::2")));
        assert_ne!(Group::of(ip("2001:db8::1")), Group::of(ip("2001:db9::1")));
        assert_eq!(Group::of(ip("::ffff:192.168.3.4")), Group::of(ip("192.168.9.9")));
        assert_eq!(Group::of(ip("192.168.1.1")).to_string(), "192.168.0.0/16");
        assert_eq!(Group::of(ip("2001:db8::1")).to_string(), "2001:db8::/32");
    }

    #[test]
    fn the_host_itself_and_addressless_transports_are_not_counted() {
        assert_eq!(counted_ip(&"/ip4/127.0.0.1/tcp/5".parse().unwrap()), None);
        assert_eq!(counted_ip(&"/ip6/::1/tcp/5".parse().unwrap()), None);
        assert_eq!(counted_ip(&"/memory/42".parse().unwrap()), None);
        assert_eq!(counted_ip(&"/ip4/127.0.0.2/tcp/5".parse().unwrap()), Some(ip("127.0.0.2")));
        assert_eq!(counted_ip(&"/ip6/2001:db8::1/udp/5/quic-v1".parse().unwrap()), Some(ip("2001:db8::1")));
    }
}
