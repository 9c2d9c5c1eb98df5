//! Nodes as a library: several nodes built with `Node::builder()` in one process, connected over
//! libp2p's in-memory transport (what the simulations use), agree on one chain and relay
//! transactions, all of them even when submitted in bursts far larger than the node's event
//! broadcast.

use std::time::Duration;

use vision_node::chain::genesis::{Allocation, Genesis};
use vision_node::node::Node;
use vision_node::p2p::{NetworkConfig, TransportKind};
use vision_node::wallet::Keypair;

fn memory_net(port: u64, bootstrap: Option<(u64, libp2p::PeerId)>) -> NetworkConfig {
    let mut net = NetworkConfig::new(libp2p::identity::Keypair::generate_ed25519());
    net.transport = TransportKind::Memory;
    net.listen = vec![format!("/memory/{port}").parse().unwrap()];
    if let Some((p, id)) = bootstrap {
        net.bootstrap = vec![format!("/memory/{p}/p2p/{id}").parse().unwrap()];
    }
    net.dial_known_peers = false;
    net
}

#[test]
fn three_in_process_nodes_over_the_memory_transport() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let alice = Keypair::from_seed(&[1; 32]);
        let genesis = Genesis {
            chain_id: 44,
            timestamp_ms: 1_700_000_000_000,
            initial_difficulty: 1_000,
            target_block_time_ms: 200,
            block_reward: 1_000,
            min_fee: 10,
            allocations: vec![Allocation { address: alice.address(), balance: 1_000_000 }],
        };
        // Unlikely to collide with other tests' memory ports in this process.
        let base = 40_000 + u64::from(std::process::id() % 10_000);
        let first = memory_net(base, None);
        let first_id = first.keypair.public().to_peer_id();
        let miner = Keypair::from_seed(&[9; 32]).address();
        let a = Node::builder().genesis(genesis.clone()).network(first).mine(miner, 1).start().await.unwrap();
        let b = Node::builder()
            .genesis(genesis.clone())
            .network(memory_net(base + 1, Some((base, first_id))))
            .start()
            .await
            .unwrap();
        let c = Node::builder()
            .genesis(genesis.clone())
            .network(memory_net(base + 2, Some((base, first_id))))
            .start()
            .await
            .unwrap();
        let nodes = [&a, &b, &c];
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let peers: Vec<usize> = nodes.iter().map(|n| n.network().unwrap().info().peer_count()).collect();
            let tips: Vec<_> = nodes.iter().map(|n| n.core().chain().tip()).collect();
            if peers.iter().all(|p| *p >= 2)
                && tips[0].header.height >= 5
                && tips.iter().all(|t| t.hash == tips[0].hash)
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no agreement: peers {peers:?}, tips {tips:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A transaction submitted to c is relayed and mined by a.
        let tx = vision_node::testkit::transfer(
            &alice,
            Keypair::from_seed(&[2; 32]).address(),
            7,
            10,
            0,
            44,
            &genesis.hash(),
        );
        c.core().submit_transaction(tx).unwrap();
        let id = tx.id();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !nodes.iter().all(|n| n.core().chain().read().unwrap().tx_location(&id).unwrap().is_some()) {
            assert!(std::time::Instant::now() < deadline, "transaction not mined everywhere");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for n in [a, b, c] {
            n.shutdown().await;
        }
    });
}

/// 20,000 transactions submitted to A in bursts of 2,000, each burst twice the event broadcast's
/// capacity (`EVENT_CHANNEL_CAP` = 1,024), so the swarm task lags behind the broadcast: every one
/// must still reach B's pool by gossip (own transactions go through the network's outbox, not the
/// broadcast). Nobody mines, so the pools only grow.
#[test]
fn bursts_of_api_transactions_larger_than_the_event_broadcast_are_all_gossiped() {
    use vision_node::node::{EVENT_CHANNEL_CAP, TxSource};
    use vision_node::testkit::{TEST_CHAIN_ID, genesis_with_accounts, transfer};
    const SENDERS: u32 = 2_000;
    const NONCES: u64 = 10;
    const BURST: usize = 2_000;
    const { assert!(BURST > EVENT_CHANNEL_CAP) };
    let (genesis, keys) = genesis_with_accounts(SENDERS, 1_000_000);
    let gh = genesis.hash();
    let sink = Keypair::from_seed(&[3; 32]).address();
    // Nonce-major order, so every burst is gap-free for its senders.
    let txs: Vec<_> = (0..NONCES)
        .flat_map(|nonce| keys.iter().map(move |k| (k, nonce)))
        .map(|(k, nonce)| transfer(k, sink, 1, 2, nonce, TEST_CHAIN_ID, &gh))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let base = 45_000 + u64::from(std::process::id() % 10_000);
        let first = memory_net(base, None);
        let first_id = first.keypair.public().to_peer_id();
        let a = Node::builder().genesis(genesis.clone()).network(first).start().await.unwrap();
        let b = Node::builder()
            .genesis(genesis.clone())
            .network(memory_net(base + 1, Some((base, first_id))))
            .start()
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // Connected, and gossipsub's mesh formed (its heartbeat is 1 s): a probe transaction arrives.
        a.core().submit_transactions(&txs[..1], TxSource::Api)[0].as_ref().unwrap();
        while b.core().mempool().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the nodes never connected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut events = a.core().subscribe();
        for burst in txs[1..].chunks(BURST) {
            let results = a.core().submit_transactions(burst, TxSource::Api);
            assert!(results.iter().all(|r| r.is_ok()), "A refused a transaction");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The bursts did overflow the broadcast: a subscriber that read nothing lagged.
        assert!(matches!(events.try_recv(), Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while b.core().mempool().len() < txs.len() {
            assert!(
                std::time::Instant::now() < deadline,
                "B's pool holds {} of the {} transactions A pooled ({} in A's)",
                b.core().mempool().len(),
                txs.len(),
                a.core().mempool().len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(a.core().mempool().len(), txs.len());
        for n in [a, b] {
            n.shutdown().await;
        }
    });
}
