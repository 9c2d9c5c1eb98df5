//! The simulated network: which nodes are linked (a random connected graph of a given average
//! degree), what each link is like (latency drawn per link, one bandwidth), and partitions. It is
//! the [`LinkModel`] every node's memory transport asks before a dial, so the topology is enforced
//! below libp2p: a dial to a node without a link fails, and a partition cancels the cut links,
//! which closes their connections on both sides.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use vision_node::p2p::link::{LinkModel, LinkSpec};

use crate::rng::Rng;

/// Memory port of honest node `i` is `PORT_BASE + i`; attackers start at [`ATTACKER_PORT_BASE`].
pub const PORT_BASE: u64 = 1_000_000;
/// First memory port of the attackers.
pub const ATTACKER_PORT_BASE: u64 = 2_000_000;

/// Links, partitions and the cut tokens of live links.
#[derive(Debug, Default)]
pub struct SimNet {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Undirected links keyed (low port, high port).
    links: HashMap<(u64, u64), LinkSpec>,
    /// Partition group of each port while partitioned; ports not listed are in group 0.
    groups: Option<HashMap<u64, usize>>,
    /// The token handed out for each link in use; cancelled when the link is cut.
    tokens: HashMap<(u64, u64), CancellationToken>,
}

fn key(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

impl SimNet {
    /// Adds (or replaces) the link between ports `a` and `b`.
    pub fn link(&self, a: u64, b: u64, spec: LinkSpec) {
        self.inner.lock().links.insert(key(a, b), spec);
    }

    /// Every link, as (low port, high port, spec), sorted.
    pub fn links(&self) -> Vec<(u64, u64, LinkSpec)> {
        let mut v: Vec<_> = self.inner.lock().links.iter().map(|(k, s)| (k.0, k.1, *s)).collect();
        v.sort_by_key(|(a, b, _)| (*a, *b));
        v
    }

    /// Ports linked to `port`.
    pub fn neighbours(&self, port: u64) -> Vec<u64> {
        let inner = self.inner.lock();
        let mut v: Vec<u64> = inner
            .links
            .keys()
            .filter_map(|(a, b)| {
                if *a == port {
                    Some(*b)
                } else if *b == port {
                    Some(*a)
                } else {
                    None
                }
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Splits the network: `groups[i]` lists the ports of group `i`; ports in no list join group 0.
    /// Links between groups are cut at once (their connections close) and refuse new dials.
    pub fn partition(&self, groups: &[Vec<u64>]) {
        let mut inner = self.inner.lock();
        let map: HashMap<u64, usize> =
            groups.iter().enumerate().flat_map(|(g, ports)| ports.iter().map(move |p| (*p, g))).collect();
        let group = |p: &u64| map.get(p).copied().unwrap_or(0);
        let cut: Vec<(u64, u64)> = inner.tokens.keys().filter(|(a, b)| group(a) != group(b)).copied().collect();
        for k in cut {
            if let Some(t) = inner.tokens.remove(&k) {
                t.cancel();
            }
        }
        inner.groups = Some(map);
    }

    /// Ends a partition: every link may be dialed again (the nodes redial on their own).
    pub fn heal(&self) {
        self.inner.lock().groups = None;
    }
}

impl LinkModel for SimNet {
    fn link(&self, from: u64, to: u64) -> Option<(LinkSpec, CancellationToken)> {
        let mut inner = self.inner.lock();
        let k = key(from, to);
        let spec = *inner.links.get(&k)?;
        if let Some(groups) = &inner.groups {
            let g = |p: u64| groups.get(&p).copied().unwrap_or(0);
            if g(from) != g(to) {
                return None;
            }
        }
        let token = inner.tokens.entry(k).or_default();
        if token.is_cancelled() {
            *token = CancellationToken::new();
        }
        Some((spec, token.clone()))
    }
}

/// A random connected graph on `n` nodes with about `degree` links per node: a random spanning
/// tree (node `i` links to a random earlier node) plus random extra links until the average
/// degree is reached. Returns sorted (low, high) index pairs.
pub fn random_topology(n: usize, degree: usize, rng: &mut Rng) -> Vec<(usize, usize)> {
    let mut edges = BTreeSet::new();
    for i in 1..n {
        let j = rng.below(i as u64) as usize;
        edges.insert((j, i));
    }
    let want = (n * degree / 2).min(n * (n - 1) / 2);
    let mut attempts = 0;
    while edges.len() < want && attempts < want * 20 {
        attempts += 1;
        let a = rng.below(n as u64) as usize;
        let b = rng.below(n as u64) as usize;
        if a != b {
            edges.insert((a.min(b), a.max(b)));
        }
    }
    edges.into_iter().collect()
}

/// A link spec with a latency drawn from `latency_ms` and the given bandwidth.
pub fn draw_link(latency_ms: [u64; 2], bandwidth_kbps: u64, rng: &mut Rng) -> LinkSpec {
    LinkSpec {
        latency: Duration::from_millis(rng.between(latency_ms[0], latency_ms[1])),
        bytes_per_sec: bandwidth_kbps * 1000 / 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected(n: usize, edges: &[(usize, usize)]) -> bool {
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(x) = stack.pop() {
            for (a, b) in edges {
                let y = if *a == x {
                    *b
                } else if *b == x {
                    *a
                } else {
                    continue;
                };
                if !seen[y] {
                    seen[y] = true;
                    stack.push(y);
                }
            }
        }
        seen.iter().all(|s| *s)
    }

    #[test]
    fn topology_is_connected_with_the_asked_degree_and_repeatable() {
        let e = random_topology(100, 8, &mut Rng::new(3));
        assert!(connected(100, &e));
        assert_eq!(e.len(), 400);
        assert!(e.iter().all(|(a, b)| a < b));
        assert_eq!(e, random_topology(100, 8, &mut Rng::new(3)));
        assert_ne!(e, random_topology(100, 8, &mut Rng::new(4)));
        // Asking for more links than a complete graph has gives the complete graph.
        assert_eq!(random_topology(4, 10, &mut Rng::new(1)).len(), 6);
    }

    #[test]
    fn partitions_cut_links_between_groups_only_and_heal_restores_them() {
        let net = SimNet::default();
        let spec = LinkSpec { latency: Duration::from_millis(5), bytes_per_sec: 0 };
        net.link(1, 2, spec);
        net.link(2, 3, spec);
        assert!(net.link_missing(1, 3));
        let (_, t12) = LinkModel::link(&net, 1, 2).unwrap();
        let (_, t23) = LinkModel::link(&net, 3, 2).unwrap();
        net.partition(&[vec![1, 2], vec![3]]);
        assert!(!t12.is_cancelled());
        assert!(t23.is_cancelled());
        assert!(LinkModel::link(&net, 2, 3).is_none());
        net.heal();
        let (_, again) = LinkModel::link(&net, 2, 3).unwrap();
        assert!(!again.is_cancelled());
        assert_eq!(net.neighbours(2), vec![1, 3]);
    }

    impl SimNet {
        fn link_missing(&self, a: u64, b: u64) -> bool {
            LinkModel::link(self, a, b).is_none()
        }
    }
}
