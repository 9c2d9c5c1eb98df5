//! The address manager: which peers we know of, which of them we reached ourselves, and whom to
//! dial next, in the spirit of Bitcoin Core's addrman (`docs/adr/015-address-manager.md`).
//!
//! # Why
//! Identities are free. Before this module, every address any peer announced (inbound peers
//! included) went into one book of 2,000 entries that evicted the longest unseen, and after a
//! restart the node dialled the most recently seen: a few thousand fresh identities churning
//! through inbound slots flushed the honest peers out, and the restarted node dialled only the
//! attacker (an eclipse). Here what an identity can do is bounded by the network group it comes
//! from, which is not free.
//!
//! # Tables
//! - **new**: peers heard of and never reached by us: [`NEW_BUCKETS`] × [`NEW_BUCKET_SIZE`] slots.
//!   A peer's bucket is chosen by a keyed hash of *the group of the peer that told us* (the
//!   source) and of its own group, so that one source group reaches at most
//!   [`NEW_BUCKETS_PER_SOURCE_GROUP`] buckets (128 slots of 4,096) however many addresses it
//!   announces; its slot in the bucket by a keyed hash of its id. A newcomer takes a slot only
//!   when it is free or its occupant is terrible ([`AddrMan::is_terrible`]): announcing never
//!   pushes out a peer that may still be good.
//! - **tried**: peers we connected to ourselves (outbound): [`TRIED_BUCKETS`] ×
//!   [`TRIED_BUCKET_SIZE`] slots, the bucket chosen by the peer's own group so one group reaches
//!   at most [`TRIED_BUCKETS_PER_GROUP`] buckets. A peer announced by an inbound connection never
//!   gets here by being announced: only an outbound connection we made moves it. On a slot
//!   collision the occupant keeps its slot if it was reached within [`TRIED_COLLISION_GRACE`]
//!   (Core tests the old one before evicting; here recent success stands for that test), else it
//!   goes back to new.
//! - **anchors**: the (at most [`MAX_ANCHORS`]) outbound peers connected longest, saved with the
//!   book and dialled first after a restart (Core's anchors.dat), so a restart under attack starts
//!   from the peers the node trusted before it.
//!
//! Secret bucket positions: the hash key is derived from the node's secret key
//! ([`AddrMan::new`]), so an attacker cannot compute which ids land in which slot.
//!
//! # Choosing outbound peers
//! [`AddrMan::select`] takes tried or new at even odds (whichever has entries), starts at a random
//! slot and returns the first peer that is not excluded (connected, banned, being dialled), whose
//! group holds none of our outbound peers (at most one outbound peer per network group), and
//! whose backoff after failed dials ([`retry_after`]) has passed.
//!
//! # Groups
//! [`AddrGroup`]: the /16 of an IPv4 address and the /32 of an IPv6 address (the same groups as
//! the inbound caps, [`crate::ip_limits::Group`]); the host's own 127.0.0.1 and ::1 are one group
//! per port (several nodes of one operator on one host); private-network addresses (a LAN, a
//! Docker network, usually one /16) one group per host: they are kept only from peers on that
//! network, and grouped by /16 a cluster would allow one outbound peer; DNS names and the memory
//! transport one group per name or port.
//!
//! Pure state: no I/O, no clock (times are arguments), no randomness (the caller passes a random
//! number to [`AddrMan::select`]). Persistence is by record: [`AddrMan::take_changes`] lists the
//! peers whose record changed since the last call; [`encode_record`] / [`decode_record`] are the
//! stored format.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::ip_limits::Group;

/// Buckets of the new table.
pub const NEW_BUCKETS: usize = 256;
/// Slots per new bucket.
pub const NEW_BUCKET_SIZE: usize = 16;
/// Buckets of the tried table.
pub const TRIED_BUCKETS: usize = 64;
/// Slots per tried bucket.
pub const TRIED_BUCKET_SIZE: usize = 16;
/// New buckets that the addresses told by one source group can reach.
pub const NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 8;
/// Tried buckets that the peers of one group can reach.
pub const TRIED_BUCKETS_PER_GROUP: u64 = 4;
/// Peers the manager holds at most: every slot of both tables.
pub const MAX_ENTRIES: usize = NEW_BUCKETS * NEW_BUCKET_SIZE + TRIED_BUCKETS * TRIED_BUCKET_SIZE;
// The store keeps one record per slot.
const _: () = assert!(MAX_ENTRIES == vision_state::MAX_STORED_PEERS);

/// Outbound peers remembered as anchors.
pub const MAX_ANCHORS: usize = 4;
/// Addresses kept per peer.
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// A tried peer reached within this long keeps its slot against a newcomer.
pub const TRIED_COLLISION_GRACE: Duration = Duration::from_secs(4 * 3600);
/// A peer not seen for this long is terrible.
pub const HORIZON: Duration = Duration::from_secs(30 * 24 * 3600);
/// A peer never reached is terrible after this many failed dials.
pub const MAX_FAILURES_NEVER_REACHED: u32 = 3;
/// A peer reached before is terrible after this many failed dials in a row.
pub const MAX_FAILURES: u32 = 10;

/// Resource registry entry: peers held by the address manager.
pub const ADDRMAN_ENTRIES: vision_primitives::bounds::Resource =
    vision_primitives::bounds::Resource::new("addrman_entries", "addrman::MAX_ENTRIES", MAX_ENTRIES);

/// The diversity group of a peer's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddrGroup {
    /// An IP network group.
    Net(Group),
    /// 127.0.0.1 or ::1 with this port: a process on our own host.
    Host(u16),
    /// A private-network address (RFC 1918, RFC 6598, link-local, IPv6 unique or link-local):
    /// one group per host.
    Private(IpAddr),
    /// A name or an address without IP (DNS, memory transport): a hash of it.
    Name(u64),
    /// No address.
    Unknown,
}

impl AddrGroup {
    /// The group of `addr` (of its first component that says where).
    pub fn of(addr: &Multiaddr) -> AddrGroup {
        let mut parts = addr.iter();
        let first = parts.next();
        let port = parts.find_map(|p| match p {
            Protocol::Tcp(port) | Protocol::Udp(port) => Some(port),
            _ => None,
        });
        match first {
            Some(Protocol::Ip4(ip)) if ip == Ipv4Addr::LOCALHOST => AddrGroup::Host(port.unwrap_or(0)),
            Some(Protocol::Ip6(ip)) if ip == Ipv6Addr::LOCALHOST => AddrGroup::Host(port.unwrap_or(0)),
            Some(Protocol::Ip4(ip)) if private_network(IpAddr::V4(ip)) => AddrGroup::Private(IpAddr::V4(ip)),
            Some(Protocol::Ip6(ip)) if private_network(IpAddr::V6(ip)) => AddrGroup::Private(IpAddr::V6(ip)),
            Some(Protocol::Ip4(ip)) => AddrGroup::Net(Group::of(IpAddr::V4(ip))),
            Some(Protocol::Ip6(ip)) => AddrGroup::Net(Group::of(IpAddr::V6(ip))),
            Some(other) => {
                let text = other.to_string();
                let port_text = port.map(|p| p.to_string()).unwrap_or_default();
                let h = blake3::hash(format!("{text}/{port_text}").as_bytes());
                AddrGroup::Name(u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8])))
            }
            None => AddrGroup::Unknown,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            AddrGroup::Net(Group::V4(o)) => [&[4u8][..], o].concat(),
            AddrGroup::Net(Group::V6(o)) => [&[6u8][..], o].concat(),
            AddrGroup::Host(port) => [&[1u8][..], &port.to_le_bytes()].concat(),
            AddrGroup::Name(h) => [&[2u8][..], &h.to_le_bytes()].concat(),
            AddrGroup::Private(IpAddr::V4(ip)) => [&[3u8][..], &ip.octets()].concat(),
            AddrGroup::Private(IpAddr::V6(ip)) => [&[5u8][..], &ip.octets()].concat(),
            AddrGroup::Unknown => vec![0],
        }
    }
}

/// Whether `ip` is in a private network's range (RFC 1918, RFC 6598, IPv4 and IPv6 link-local,
/// IPv6 unique local; IPv4-mapped forms too). Loopback is not: 127.0.0.1 and ::1 are the host
/// (per port), and the rest of 127.0.0.0/8 never leaves a machine, so it is grouped like public
/// addresses (which is how one machine plays hosts of many networks in the tests).
pub fn private_network(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || v4.is_link_local() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => private_network(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
            }
        },
    }
}

impl std::fmt::Display for AddrGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddrGroup::Net(g) => write!(f, "{g}"),
            AddrGroup::Host(port) => write!(f, "this host, port {port}"),
            AddrGroup::Private(ip) => write!(f, "private host {ip}"),
            AddrGroup::Name(h) => write!(f, "name {h:016x}"),
            AddrGroup::Unknown => f.write_str("unknown"),
        }
    }
}

/// How long after its last failed dial a peer with `failures` failures in a row may be dialled
/// again: 30 s, doubling per failure, at most an hour.
pub fn retry_after(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(30u64.saturating_mul(1u64 << (failures - 1).min(7)).min(3600))
}

/// What the manager knows of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where to dial it (at most [`MAX_ADDRS_PER_PEER`]), as it announced them.
    pub addrs: Vec<Multiaddr>,
    /// The group of the peer that told us (its own, when it announced itself to us on an
    /// outbound connection).
    pub source: AddrGroup,
    /// Whether we connected to it ourselves (the tried table).
    pub tried: bool,
    /// When it was last heard of (unix ms).
    pub last_seen_ms: u64,
    /// When we last connected to it (unix ms; 0: never).
    pub last_success_ms: u64,
    /// When we last dialled it (unix ms; 0: never).
    pub last_attempt_ms: u64,
    /// Failed dials since the last success.
    pub failures: u32,
}

impl Record {
    /// The group of its first address.
    pub fn group(&self) -> AddrGroup {
        self.addrs.first().map_or(AddrGroup::Unknown, AddrGroup::of)
    }
}

/// Where a peer sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    New(usize),
    Tried(usize),
}

#[derive(Debug, Clone)]
struct Entry {
    record: Record,
    slot: Slot,
}

/// What [`AddrMan::take_changes`] returns: records to write (`None`: to delete), and the anchors
/// if they changed.
pub type Changes = (Vec<(PeerId, Option<Record>)>, Option<Vec<PeerId>>);

/// Outcome of [`AddrMan::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new peer took a free slot (or a terrible one's).
    Inserted,
    /// A known peer's record was refreshed.
    Updated,
    /// Known, and the teller is not the peer itself: nothing changed.
    Known,
    /// Its slot holds a peer that may still be good: not kept.
    Collision,
    /// No address to keep.
    NoAddress,
}

/// The address manager (see the module docs).
#[derive(Debug)]
pub struct AddrMan {
    key: [u8; 32],
    entries: HashMap<PeerId, Entry>,
    new: Vec<Option<PeerId>>,
    tried: Vec<Option<PeerId>>,
    anchors: Vec<PeerId>,
    /// Peers whose stored record is out of date (changed, or gone: then not in `entries`).
    changed: BTreeSet<PeerId>,
    anchors_changed: bool,
}

impl AddrMan {
    /// An empty manager whose bucket positions are keyed by `key` (secret: derive it from the
    /// node's secret key, so positions are stable across restarts and unknown to others).
    pub fn new(key: [u8; 32]) -> AddrMan {
        AddrMan {
            key,
            entries: HashMap::new(),
            new: vec![None; NEW_BUCKETS * NEW_BUCKET_SIZE],
            tried: vec![None; TRIED_BUCKETS * TRIED_BUCKET_SIZE],
            anchors: Vec::new(),
            changed: BTreeSet::new(),
            anchors_changed: false,
        }
    }

    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        for p in parts {
            h.update(&(p.len() as u32).to_le_bytes());
            h.update(p);
        }
        u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap_or([0; 8]))
    }

    fn new_slot(&self, peer: &PeerId, group: AddrGroup, source: AddrGroup) -> usize {
        let (g, s) = (group.bytes(), source.bytes());
        let within = self.hash(&[b"new-1", &g, &s]) % NEW_BUCKETS_PER_SOURCE_GROUP;
        let bucket = (self.hash(&[b"new-2", &s, &within.to_le_bytes()]) % NEW_BUCKETS as u64) as usize;
        let pos = (self.hash(&[b"new-pos", &(bucket as u64).to_le_bytes(), &peer.to_bytes()]) % NEW_BUCKET_SIZE as u64)
            as usize;
        bucket * NEW_BUCKET_SIZE + pos
    }

    fn tried_slot(&self, peer: &PeerId, group: AddrGroup) -> usize {
        let g = group.bytes();
        let within = self.hash(&[b"tried-1", &peer.to_bytes()]) % TRIED_BUCKETS_PER_GROUP;
        let bucket = (self.hash(&[b"tried-2", &g, &within.to_le_bytes()]) % TRIED_BUCKETS as u64) as usize;
        let pos = (self.hash(&[b"tried-pos", &(bucket as u64).to_le_bytes(), &peer.to_bytes()])
            % TRIED_BUCKET_SIZE as u64) as usize;
        bucket * TRIED_BUCKET_SIZE + pos
    }

    /// Peers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no peer is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Peers in the tried table.
    pub fn tried_count(&self) -> usize {
        self.tried.iter().filter(|s| s.is_some()).count()
    }

    /// What is known of `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<&Record> {
        self.entries.get(peer).map(|e| &e.record)
    }

    /// Whether `record` is not worth keeping against a newcomer: unseen for [`HORIZON`], or its
    /// dials keep failing ([`MAX_FAILURES_NEVER_REACHED`] if never reached, else
    /// [`MAX_FAILURES`]).
    pub fn is_terrible(record: &Record, now_ms: u64) -> bool {
        let unseen = now_ms.saturating_sub(record.last_seen_ms) > HORIZON.as_millis() as u64;
        let failing = if record.last_success_ms == 0 {
            record.failures >= MAX_FAILURES_NEVER_REACHED
        } else {
            record.failures >= MAX_FAILURES
        };
        unseen || failing
    }

    fn forget(&mut self, peer: &PeerId) {
        if let Some(e) = self.entries.remove(peer) {
            match e.slot {
                Slot::New(i) => self.new[i] = None,
                Slot::Tried(i) => self.tried[i] = None,
            }
            self.changed.insert(*peer);
        }
    }

    /// `peer` announced at `addrs` by a peer of group `source`; `by_itself`: the peer announced
    /// its own addresses (identify), which replace what others said of it. Never moves a peer to
    /// tried ([`AddrMan::connected_outbound`] does).
    pub fn add(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        source: AddrGroup,
        by_itself: bool,
        now_ms: u64,
    ) -> Added {
        let mut addrs = addrs;
        addrs.truncate(MAX_ADDRS_PER_PEER);
        if let Some(e) = self.entries.get_mut(&peer) {
            if !by_itself {
                return Added::Known;
            }
            e.record.last_seen_ms = now_ms;
            if !addrs.is_empty() {
                e.record.addrs = addrs;
            }
            self.changed.insert(peer);
            return Added::Updated;
        }
        if addrs.is_empty() {
            return Added::NoAddress;
        }
        let record = Record {
            addrs,
            source,
            tried: false,
            last_seen_ms: now_ms,
            last_success_ms: 0,
            last_attempt_ms: 0,
            failures: 0,
        };
        self.insert_new(peer, record, now_ms)
    }

    fn insert_new(&mut self, peer: PeerId, mut record: Record, now_ms: u64) -> Added {
        record.tried = false;
        let slot = self.new_slot(&peer, record.group(), record.source);
        if let Some(occupant) = self.new[slot] {
            let terrible = self.entries.get(&occupant).is_none_or(|e| Self::is_terrible(&e.record, now_ms));
            if !terrible {
                return Added::Collision;
            }
            self.forget(&occupant);
        }
        self.new[slot] = Some(peer);
        self.entries.insert(peer, Entry { record, slot: Slot::New(slot) });
        self.changed.insert(peer);
        Added::Inserted
    }

    /// We connected to `peer` at `addr` ourselves: it moves to (or stays in) tried. A peer we
    /// dialled without knowing it (a bootstrap address) is added first, told by its own group.
    pub fn connected_outbound(&mut self, peer: PeerId, addr: &Multiaddr, now_ms: u64) {
        // Collisions in new do not matter for a peer we did not know: it goes to tried below.
        self.entries.entry(peer).or_insert_with(|| Entry {
            record: Record {
                addrs: vec![addr.clone()],
                source: AddrGroup::of(addr),
                tried: false,
                last_seen_ms: now_ms,
                last_success_ms: 0,
                last_attempt_ms: 0,
                failures: 0,
            },
            slot: Slot::New(usize::MAX),
        });
        let Some(entry) = self.entries.get_mut(&peer) else { return };
        entry.record.last_success_ms = now_ms;
        entry.record.last_seen_ms = now_ms;
        entry.record.failures = 0;
        if !entry.record.addrs.contains(addr) {
            entry.record.addrs.insert(0, addr.clone());
            entry.record.addrs.truncate(MAX_ADDRS_PER_PEER);
        }
        self.changed.insert(peer);
        if let Slot::Tried(_) = entry.slot {
            return;
        }
        let old = entry.slot;
        let group = entry.record.group();
        let slot = self.tried_slot(&peer, group);
        if let Some(occupant) = self.tried[slot] {
            let grace = TRIED_COLLISION_GRACE.as_millis() as u64;
            let recent =
                self.entries.get(&occupant).is_some_and(|e| now_ms.saturating_sub(e.record.last_success_ms) < grace);
            if recent {
                // The occupant stays; the newcomer stays in new (if it was there).
                if old == Slot::New(usize::MAX) {
                    let record = self.entries.remove(&peer).map(|e| e.record);
                    if let Some(record) = record {
                        let _ = self.insert_new(peer, record, now_ms);
                    }
                }
                return;
            }
            // The occupant goes back to new (or is forgotten if its new slot is taken).
            if let Some(mut e) = self.entries.remove(&occupant) {
                self.tried[slot] = None;
                e.record.tried = false;
                let _ = self.insert_new(occupant, e.record, now_ms);
                self.changed.insert(occupant);
            }
        }
        if let Slot::New(i) = old
            && i < self.new.len()
            && self.new[i] == Some(peer)
        {
            self.new[i] = None;
        }
        self.tried[slot] = Some(peer);
        if let Some(e) = self.entries.get_mut(&peer) {
            e.slot = Slot::Tried(slot);
            e.record.tried = true;
        }
    }

    /// We are dialling `peer`.
    pub fn attempt(&mut self, peer: &PeerId, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(peer) {
            e.record.last_attempt_ms = now_ms;
            self.changed.insert(*peer);
        }
    }

    /// A dial of `peer` failed.
    pub fn failed(&mut self, peer: &PeerId, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(peer) {
            e.record.failures = e.record.failures.saturating_add(1);
            e.record.last_attempt_ms = now_ms;
            self.changed.insert(*peer);
        }
    }

    /// A peer to dial: see the module docs. `random` picks the table and the starting slot;
    /// `excluded` says which peers not to return (connected, banned, being dialled);
    /// `outbound_groups` are the groups of our outbound peers.
    pub fn select(
        &self,
        random: u64,
        now_ms: u64,
        outbound_groups: &BTreeSet<AddrGroup>,
        excluded: impl Fn(&PeerId) -> bool,
    ) -> Option<(PeerId, Vec<Multiaddr>)> {
        let tried_first = random & 1 == 0;
        let order: [&[Option<PeerId>]; 2] =
            if tried_first { [&self.tried, &self.new] } else { [&self.new, &self.tried] };
        for table in order {
            let n = table.len();
            let start = ((random >> 1) % n as u64) as usize;
            for k in 0..n {
                let Some(peer) = table[(start + k) % n] else { continue };
                let Some(e) = self.entries.get(&peer) else { continue };
                let r = &e.record;
                let waited = now_ms.saturating_sub(r.last_attempt_ms) >= retry_after(r.failures).as_millis() as u64;
                if waited && !outbound_groups.contains(&r.group()) && !excluded(&peer) {
                    return Some((peer, r.addrs.clone()));
                }
            }
        }
        None
    }

    /// The anchors to dial first after a restart.
    pub fn anchors(&self) -> &[PeerId] {
        &self.anchors
    }

    /// Our outbound peers, connected longest first: the first [`MAX_ANCHORS`] become the anchors.
    pub fn set_anchors(&mut self, outbound_longest_first: &[PeerId]) {
        let next: Vec<PeerId> = outbound_longest_first.iter().take(MAX_ANCHORS).copied().collect();
        if next != self.anchors {
            self.anchors = next;
            self.anchors_changed = true;
        }
    }

    /// Records out of date in the store since the last call: `(peer, Some(record))` to write,
    /// `(peer, None)` to delete; and the anchors if they changed.
    pub fn take_changes(&mut self) -> Changes {
        let changed = std::mem::take(&mut self.changed);
        let records = changed.into_iter().map(|p| (p, self.entries.get(&p).map(|e| e.record.clone()))).collect();
        let anchors = std::mem::take(&mut self.anchors_changed).then(|| self.anchors.clone());
        (records, anchors)
    }

    /// Whether changes wait for [`AddrMan::take_changes`].
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty() || self.anchors_changed
    }

    /// Rebuilds the tables from stored records (tried ones first, so they keep their slots) and
    /// anchors. What does not fit (collisions) is forgotten and deleted at the next write.
    pub fn load(&mut self, records: Vec<(PeerId, Record)>, anchors: Vec<PeerId>, now_ms: u64) {
        let (tried, new): (Vec<_>, Vec<_>) = records.into_iter().partition(|(_, r)| r.tried);
        for (peer, record) in tried {
            let slot = self.tried_slot(&peer, record.group());
            if self.tried[slot].is_none() && !record.addrs.is_empty() {
                self.tried[slot] = Some(peer);
                self.entries.insert(peer, Entry { record, slot: Slot::Tried(slot) });
            } else if self.insert_new(peer, record, now_ms) != Added::Inserted {
                self.changed.insert(peer);
            }
        }
        for (peer, record) in new {
            if record.addrs.is_empty() || self.insert_new(peer, record, now_ms) != Added::Inserted {
                self.changed.insert(peer);
            }
        }
        // Loading is not a change, except for what did not fit.
        self.changed.retain(|p| !self.entries.contains_key(p));
        self.anchors = anchors.into_iter().take(MAX_ANCHORS).collect();
        self.anchors_changed = false;
    }
}

/// Stored format of a record, version 1: `0x01 ‖ flags u8 (bit 0: tried) ‖ last_seen u64 ‖
/// last_success u64 ‖ last_attempt u64 ‖ failures u32 ‖ source group (u8 length ‖ bytes) ‖
/// address count u8 ‖ (u16 length ‖ multiaddr bytes)*`, integers little-endian.
pub fn encode_record(r: &Record) -> Vec<u8> {
    let mut out = vec![1u8, u8::from(r.tried)];
    for v in [r.last_seen_ms, r.last_success_ms, r.last_attempt_ms] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&r.failures.to_le_bytes());
    let source = r.source.bytes();
    out.push(source.len() as u8);
    out.extend_from_slice(&source);
    let addrs: Vec<Vec<u8>> =
        r.addrs.iter().map(|a| a.to_vec()).filter(|a| a.len() <= u16::MAX as usize).take(MAX_ADDRS_PER_PEER).collect();
    out.push(addrs.len() as u8);
    for a in addrs {
        out.extend_from_slice(&(a.len() as u16).to_le_bytes());
        out.extend_from_slice(&a);
    }
    out
}

/// Reads what [`encode_record`] wrote; `None` for anything else (a corrupt record is forgotten).
pub fn decode_record(bytes: &[u8]) -> Option<Record> {
    let mut r = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        if r.len() < n {
            return None;
        }
        let (head, tail) = r.split_at(n);
        r = tail;
        Some(head)
    };
    if take(1)? != [1] {
        return None;
    }
    let tried = match take(1)?[0] {
        0 => false,
        1 => true,
        _ => return None,
    };
    let mut u64s = [0u64; 3];
    for v in &mut u64s {
        *v = u64::from_le_bytes(take(8)?.try_into().ok()?);
    }
    let failures = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let source_len = take(1)?[0] as usize;
    let source = group_from_bytes(take(source_len)?)?;
    let n = take(1)?[0] as usize;
    if n > MAX_ADDRS_PER_PEER {
        return None;
    }
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
        addrs.push(Multiaddr::try_from(take(len)?.to_vec()).ok()?);
    }
    if !r.is_empty() {
        return None;
    }
    Some(Record {
        addrs,
        source,
        tried,
        last_seen_ms: u64s[0],
        last_success_ms: u64s[1],
        last_attempt_ms: u64s[2],
        failures,
    })
}

fn group_from_bytes(b: &[u8]) -> Option<AddrGroup> {
    Some(match b {
        [0] => AddrGroup::Unknown,
        [4, a, b] => AddrGroup::Net(Group::V4([*a, *b])),
        [6, a, b, c, d] => AddrGroup::Net(Group::V6([*a, *b, *c, *d])),
        [1, p0, p1] => AddrGroup::Host(u16::from_le_bytes([*p0, *p1])),
        [2, rest @ ..] if rest.len() == 8 => AddrGroup::Name(u64::from_le_bytes(rest.try_into().ok()?)),
        [3, a, b, c, d] => AddrGroup::Private(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
        [5, rest @ ..] if rest.len() == 16 => {
            AddrGroup::Private(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(rest).ok()?)))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn peer() -> PeerId {
        PeerId::random()
    }

    fn at(ip: &str, port: u16) -> Multiaddr {
        format!("/ip4/{ip}/tcp/{port}").parse().unwrap()
    }

    fn group(ip: &str) -> AddrGroup {
        AddrGroup::of(&at(ip, 1))
    }

    #[test]
    fn groups_are_slash_16_host_ports_and_names() {
        assert_eq!(group("20.1.2.3"), group("20.1.200.7"));
        assert_ne!(group("20.1.2.3"), group("20.2.2.3"));
        assert_eq!(AddrGroup::of(&at("127.0.0.1", 7)), AddrGroup::Host(7));
        assert_ne!(AddrGroup::of(&at("127.0.0.1", 7)), AddrGroup::of(&at("127.0.0.1", 8)));
        let mem: Multiaddr = "/memory/5".parse().unwrap();
        let mem2: Multiaddr = "/memory/6".parse().unwrap();
        assert_ne!(AddrGroup::of(&mem), AddrGroup::of(&mem2));
        assert_eq!(AddrGroup::of(&Multiaddr::empty()), AddrGroup::Unknown);
        // A private network (a LAN, a Docker network): one group per host.
        assert_ne!(group("172.18.0.2"), group("172.18.0.3"));
        assert_ne!(group("10.0.0.1"), group("10.0.0.2"));
        assert_eq!(group("192.168.1.7"), AddrGroup::Private("192.168.1.7".parse().unwrap()));
        // The rest of loopback is grouped like public addresses.
        assert_eq!(group("127.10.0.1"), group("127.10.9.9"));
        let private = AddrGroup::Private("fd00::1".parse().unwrap());
        assert_eq!(group_from_bytes(&private.bytes()), Some(private));
        assert_eq!(group_from_bytes(&group("10.1.2.3").bytes()), Some(group("10.1.2.3")));
    }

    #[test]
    fn one_source_group_fills_at_most_its_buckets_and_pushes_nobody_out() {
        let mut am = AddrMan::new([7; 32]);
        // Honest peers told by many sources.
        let honest: Vec<PeerId> = (0..200).map(|_| peer()).collect();
        for (i, p) in honest.iter().enumerate() {
            let ip = format!("{}.{}.0.1", 20 + i / 200, i % 200);
            am.add(*p, vec![at(&ip, 9000)], group(&ip), true, NOW);
        }
        let kept_honest = honest.iter().filter(|p| am.get(p).is_some()).count();
        // 50,000 sybils on one /16, announced by one source group.
        for i in 0..50_000u32 {
            let ip = format!("66.6.{}.{}", (i / 250) % 250, i % 250);
            am.add(peer(), vec![at(&ip, 9000)], group("66.6.0.1"), false, NOW + 1);
        }
        let sybils = am.len() - kept_honest;
        assert!(
            sybils <= (NEW_BUCKETS_PER_SOURCE_GROUP as usize) * NEW_BUCKET_SIZE,
            "{sybils} sybil entries from one source group"
        );
        assert_eq!(honest.iter().filter(|p| am.get(p).is_some()).count(), kept_honest, "no honest peer pushed out");
    }

    #[test]
    fn only_outbound_connections_reach_tried_and_tried_peers_survive_churn() {
        let mut am = AddrMan::new([1; 32]);
        let good = peer();
        am.connected_outbound(good, &at("20.1.0.1", 1), NOW);
        assert!(am.get(&good).unwrap().tried);
        // An inbound peer announcing itself stays in new.
        let inbound = peer();
        am.add(inbound, vec![at("30.1.0.1", 1)], group("30.1.0.1"), true, NOW);
        assert!(!am.get(&inbound).unwrap().tried);
        // Sybils from 64 groups (30.0/16 ..= 30.63/16), 100 each, also reached by us (the worst case): the tried peer
        // reached within the grace keeps its slot.
        for g in 0..64u8 {
            for i in 0..100u8 {
                let ip = format!("30.{g}.0.{i}");
                let p = peer();
                am.add(p, vec![at(&ip, 1)], group(&ip), true, NOW + 1);
                am.connected_outbound(p, &at(&ip, 1), NOW + 1);
            }
        }
        assert!(am.get(&good).is_some_and(|r| r.tried));
        assert!(am.len() <= MAX_ENTRIES);
        // Per group at most TRIED_BUCKETS_PER_GROUP buckets of tried.
        let per_group = am.tried.iter().flatten().filter(|p| am.get(p).unwrap().group() == group("30.3.0.0")).count();
        assert!(per_group <= TRIED_BUCKETS_PER_GROUP as usize * TRIED_BUCKET_SIZE, "{per_group}");
    }

    #[test]
    fn selection_takes_one_peer_per_group_and_waits_after_failures() {
        let mut am = AddrMan::new([2; 32]);
        let a = peer();
        let b = peer();
        let c = peer();
        am.add(a, vec![at("20.1.0.1", 1)], group("9.9.0.1"), true, NOW);
        am.add(b, vec![at("20.1.0.2", 1)], group("9.9.0.1"), true, NOW);
        am.add(c, vec![at("20.2.0.1", 1)], group("9.9.0.1"), true, NOW);
        let mut groups = BTreeSet::new();
        let mut chosen = Vec::new();
        for r in 0..3u64 {
            if let Some((p, _)) = am.select(r * 7919, NOW, &groups, |p| chosen.contains(p)) {
                groups.insert(am.get(&p).unwrap().group());
                chosen.push(p);
            }
        }
        assert_eq!(chosen.len(), 2, "one of a and b (same /16) and c");
        assert!(chosen.contains(&c));
        // A failed dial waits its backoff.
        am.failed(&c, NOW);
        let none = BTreeSet::new();
        for r in 0..16u64 {
            let pick = am.select(r, NOW + 1_000, &none, |p| *p != c);
            assert_ne!(pick.map(|x| x.0), Some(c));
        }
        assert_eq!(am.select(0, NOW + 31_000, &none, |p| *p != c).map(|x| x.0), Some(c));
        assert_eq!(retry_after(20), Duration::from_secs(3600));
    }

    #[test]
    fn terrible_peers_give_up_their_slot() {
        let r = Record {
            addrs: vec![at("20.1.0.1", 1)],
            source: group("20.1.0.1"),
            tried: false,
            last_seen_ms: NOW,
            last_success_ms: 0,
            last_attempt_ms: NOW,
            failures: MAX_FAILURES_NEVER_REACHED,
        };
        assert!(AddrMan::is_terrible(&r, NOW));
        let old = Record { failures: 0, last_seen_ms: NOW - HORIZON.as_millis() as u64 - 1, ..r.clone() };
        assert!(AddrMan::is_terrible(&old, NOW));
        assert!(!AddrMan::is_terrible(&Record { failures: 0, ..r }, NOW));
    }

    #[test]
    fn records_round_trip_and_the_tables_reload() {
        let mut am = AddrMan::new([4; 32]);
        let a = peer();
        let b = peer();
        am.connected_outbound(a, &at("20.1.0.1", 1), NOW);
        am.add(b, vec![at("20.2.0.1", 1), "/dns4/example.org/tcp/1".parse().unwrap()], AddrGroup::Host(3), true, NOW);
        am.failed(&b, NOW + 5);
        am.set_anchors(&[a]);
        let (records, anchors) = am.take_changes();
        assert_eq!(anchors, Some(vec![a]));
        let stored: Vec<(PeerId, Record)> = records
            .into_iter()
            .map(|(p, r)| {
                let r = r.unwrap();
                let bytes = encode_record(&r);
                assert_eq!(decode_record(&bytes).as_ref(), Some(&r));
                (p, decode_record(&bytes).unwrap())
            })
            .collect();
        let mut again = AddrMan::new([4; 32]);
        again.load(stored, vec![a], NOW);
        assert_eq!(again.get(&a), am.get(&a));
        assert_eq!(again.get(&b), am.get(&b));
        assert_eq!(again.anchors(), &[a]);
        assert!(!again.has_changes(), "loading is no change");
        assert_eq!(decode_record(&[2, 0]), None);
        assert_eq!(decode_record(&[]), None);
        let mut long = encode_record(again.get(&a).unwrap());
        long.push(0);
        assert_eq!(decode_record(&long), None);
    }
}
