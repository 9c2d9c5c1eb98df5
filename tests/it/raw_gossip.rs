//! The raw gossipsub baseline (`vision_tools::raw_gossip`): bare gossipsub swarms on the
//! memory transport with emulated links deliver a block-sized message to every node, no sooner
//! than the links allow, and refuse bad input with errors.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vision_node::p2p::TransportKind;
use vision_node::p2p::link::{LinkModel, LinkSpec, Links};
use vision_tools::BenchError;
use vision_tools::raw_gossip::{RawNet, RawNetConfig};

/// Every pair may link, each link with the same spec (the edges decide the topology).
struct Uniform(LinkSpec);

impl LinkModel for Uniform {
    fn link(&self, _from: u64, _to: u64) -> Option<(LinkSpec, CancellationToken)> {
        Some((self.0, CancellationToken::new()))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Memory ports unlikely to collide with other tests in this process.
fn port_base(offset: u64) -> u64 {
    7_000_000 + u64::from(std::process::id() % 10_000) * 100 + offset
}

#[test]
fn a_line_of_five_raw_nodes_delivers_100_kb_everywhere_no_sooner_than_the_links_allow() {
    runtime().block_on(async {
        const LATENCY: Duration = Duration::from_millis(10);
        let base = port_base(0);
        let cfg = RawNetConfig {
            transport: TransportKind::Memory,
            links: Some(Links { model: Arc::new(Uniform(LinkSpec { latency: LATENCY, bytes_per_sec: 0 })), local: 0 }),
            listen: (0..5).map(|i| format!("/memory/{}", base + i).parse().unwrap()).collect(),
            edges: vec![(0, 1), (1, 2), (2, 3), (3, 4)],
        };
        let net = RawNet::start(cfg, Duration::from_secs(30)).await.expect("the line forms a mesh");
        assert_eq!(net.len(), 5);
        let timeout = Duration::from_secs(10);
        for (round, from) in [0usize, 4].into_iter().enumerate() {
            let mut payload = vec![0xab; 100_000];
            payload[0] = round as u8;
            let delays = net.propagate(from, payload, timeout).await;
            assert_eq!(delays.len(), 5);
            assert_eq!(delays[from], Some(Duration::ZERO));
            let far = 4 - from;
            for (i, d) in delays.iter().enumerate() {
                let d = d.unwrap_or_else(|| panic!("node {i} never got the message from node {from}"));
                assert!(d < timeout, "node {i}: {d:?}");
            }
            // Four hops of 10 ms one-way latency each lie between the two ends of the line.
            let far_delay = delays[far].unwrap();
            assert!(far_delay >= 4 * LATENCY, "the far end got it in {far_delay:?}, below 4 x {LATENCY:?}");
        }
        let counts = net.gossip_counts();
        // Two messages, each a first copy at four nodes.
        assert_eq!(counts.first_copies, 8, "{counts:?}");
        assert!(counts.received >= counts.first_copies, "{counts:?}");
        net.shutdown().await;
    });
}

#[test]
fn bad_input_gets_errors_not_panics() {
    runtime().block_on(async {
        let memory = |n: usize| -> Vec<libp2p::Multiaddr> { (0..n).map(|_| "/memory/0".parse().unwrap()).collect() };
        let cfg = |listen, edges| RawNetConfig { transport: TransportKind::Memory, links: None, listen, edges };
        let t = Duration::from_secs(30);
        for (what, bad) in [
            ("one node", cfg(memory(1), vec![])),
            ("an edge to a missing node", cfg(memory(2), vec![(0, 2)])),
            ("a self loop", cfg(memory(2), vec![(1, 1)])),
            (
                "a TCP address on memory",
                cfg(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap(), "/memory/0".parse().unwrap()], vec![(0, 1)]),
            ),
        ] {
            assert!(matches!(RawNet::start(bad, t).await, Err(BenchError::Usage(_))), "{what} was accepted");
        }
        let links =
            Links { model: Arc::new(Uniform(LinkSpec { latency: Duration::ZERO, bytes_per_sec: 0 })), local: 0 };
        let unshapeable = RawNetConfig { links: Some(links), ..cfg(memory(2), vec![(0, 1)]) };
        assert!(matches!(RawNet::start(unshapeable, t).await, Err(BenchError::Usage(_))), "links without fixed ports");

        let net = RawNet::start(cfg(memory(2), vec![(0, 1)]), t).await.expect("two nodes on port 0 connect");
        let short = Duration::from_secs(5);
        assert!(matches!(net.try_propagate(2, vec![1], short).await, Err(BenchError::Usage(_))));
        let huge = vec![0; vision_node::p2p::gossip::MAX_MESSAGE_BYTES + 1];
        assert!(matches!(net.try_propagate(0, huge, short).await, Err(BenchError::Usage(_))));
        let delays = net.try_propagate(0, b"once".to_vec(), short).await.expect("published");
        assert!(delays.iter().all(Option::is_some), "{delays:?}");
        // Gossipsub refuses to publish the same message twice; the caller gets an error or,
        // through `propagate`, nothing, and the network keeps working.
        assert!(net.try_propagate(1, b"once".to_vec(), short).await.is_err());
        assert_eq!(net.propagate(1, b"once".to_vec(), short).await, vec![None, None]);
        assert!(net.propagate(1, b"twice".to_vec(), short).await.iter().all(Option::is_some));
        net.shutdown().await;
    });
}
