//! Networking through real node processes on loopback: discovery from bootstrap addresses, block
//! and transaction gossip, sync of a late joiner, a partition that heals by reorganisation, and a
//! SIGKILLed node that reconnects to its remembered peers without `--bootstrap`.

use std::time::Duration;

use vision_node::wallet::Keypair;

use crate::common::{
    NodeProcess, balance, ban, converge, dial, expected, genesis, http_get, included, samples, sum, unban, wait_for,
};

#[test]
fn three_nodes_discover_gossip_and_mine_each_others_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Keypair::from_seed(&[1; 32]);
    let g = genesis(dir.path(), &[&alice], 300, 2_000);
    let a = NodeProcess::start_networked(&dir.path().join("a"), &["--genesis", &g, "--mine", "true"]);
    let boot = a.multiaddr();
    let b = NodeProcess::start_networked(
        &dir.path().join("b"),
        &["--genesis", &g, "--mine", "false", "--bootstrap", &boot],
    );
    let c = NodeProcess::start_networked(
        &dir.path().join("c"),
        &["--genesis", &g, "--mine", "false", "--bootstrap", &boot],
    );
    // Everyone sees everyone: b and c found each other through Kademlia.
    for n in [&a, &b, &c] {
        wait_for("two peers each", Duration::from_secs(30), || (n.status().peers >= 2).then_some(()));
    }
    let peers: Vec<vision_node::p2p::PeerInfo> = b.client().get("/v1/peers").unwrap();
    assert!(peers.iter().any(|p| p.peer_id == c.peer_id()), "b knows c: {peers:?}");
    // A peer's agent string arrives with identify, after the connection counts as a peer: wait for
    // it (asserting at once failed under load, when identify had not finished yet).
    wait_for("every peer's agent string", Duration::from_secs(30), || {
        let peers: Vec<vision_node::p2p::PeerInfo> = b.client().get("/v1/peers").unwrap();
        peers.iter().all(|p| p.client.as_deref().is_some_and(|c| c.starts_with("vision-node/"))).then_some(())
    });
    // Blocks mined by a reach b and c.
    a.wait_height(5, Duration::from_secs(60));
    converge(&[&a, &b, &c], Duration::from_secs(30));
    // A transfer sent to c's API is gossiped to a, which mines it; everyone sees it included.
    let bob = Keypair::from_seed(&[2; 32]).address();
    let tx = c.client().send(&alice, bob, 4_321, Some(10), &expected(&g)).unwrap();
    wait_for("the transfer included everywhere", Duration::from_secs(30), || {
        [&a, &b, &c].iter().all(|n| included(n, &tx.id())).then_some(())
    });
    let st = c.client().tx(&tx.id()).unwrap();
    let block: vision_node::api::BlockJson = c.client().get(&format!("/v1/blocks/{}", st.height.unwrap())).unwrap();
    assert_eq!(
        block.miner,
        vision_node::chain::genesis::dev_keypair(0).address(),
        "mined by a (default miner address)"
    );
    converge(&[&a, &b, &c], Duration::from_secs(30));
    for n in [&a, &b, &c] {
        assert_eq!(balance(n, &bob), "4321");
    }
}

#[test]
fn late_joiner_syncs_a_long_chain() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis(dir.path(), &[], 20, 200);
    let a_dir = dir.path().join("a");
    let a = NodeProcess::start_networked(&a_dir, &["--genesis", &g, "--mine", "true"]);
    a.wait_height(320, Duration::from_secs(120));
    // Stop mining so the target is fixed, then let a fresh node join.
    assert!(a.terminate());
    let a = NodeProcess::start_networked(&a_dir, &["--genesis", &g, "--mine", "false"]);
    let target = a.status();
    assert!(target.height >= 320);
    let b = NodeProcess::start_networked(
        &dir.path().join("b"),
        &["--genesis", &g, "--mine", "false", "--bootstrap", &a.multiaddr()],
    );
    let tip = converge(&[&a, &b], Duration::from_secs(60));
    assert_eq!(tip, target.tip_hash.to_string());
    assert_eq!(b.status().height, target.height);
    assert!(!b.status().syncing);
    assert!(b.logs.lock().unwrap().iter().any(|v| v["fields"]["message"] == "sync complete"));
}

#[test]
fn partition_heals_to_the_heaviest_chain_and_reorged_transactions_are_mined_again() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Keypair::from_seed(&[1; 32]);
    let carol = Keypair::from_seed(&[3; 32]);
    let g = genesis(dir.path(), &[&alice, &carol], 200, 2_000);
    let a = NodeProcess::start_networked(&dir.path().join("a"), &["--genesis", &g, "--mine", "true"]);
    let b = NodeProcess::start_networked(
        &dir.path().join("b"),
        &["--genesis", &g, "--mine", "false", "--bootstrap", &a.multiaddr()],
    );
    let c = NodeProcess::start_networked(
        &dir.path().join("c"),
        &["--genesis", &g, "--mine", "true", "--bootstrap", &a.multiaddr()],
    );
    for n in [&a, &b, &c] {
        wait_for("two peers each", Duration::from_secs(30), || (n.status().peers >= 2).then_some(()));
    }
    a.wait_height(3, Duration::from_secs(60));
    converge(&[&a, &b, &c], Duration::from_secs(30));

    // Split {a, b} | {c}: every side bans the other (the admin "disconnect and block").
    let (pa, pb, pc) = (a.peer_id(), b.peer_id(), c.peer_id());
    ban(&c, &pa);
    ban(&c, &pb);
    ban(&a, &pc);
    ban(&b, &pc);
    wait_for("c alone", Duration::from_secs(20), || (c.status().peers == 0 && a.status().peers == 1).then_some(()));
    let split_height = a.status().height.max(c.status().height);

    // Each side mines its own transfer.
    let x = Keypair::from_seed(&[7; 32]).address();
    let y = Keypair::from_seed(&[8; 32]).address();
    let tx_ab = a.client().send(&alice, x, 111, Some(10), &expected(&g)).unwrap();
    let tx_c = c.client().send(&carol, y, 222, Some(10), &expected(&g)).unwrap();
    wait_for("both sides mined past the split", Duration::from_secs(60), || {
        (included(&a, &tx_ab.id())
            && included(&c, &tx_c.id())
            && a.status().height >= split_height + 4
            && c.status().height >= split_height + 4)
            .then_some(())
    });
    let tip_ab = a.status().tip_hash;
    let tip_c = c.status().tip_hash;
    assert_ne!(tip_ab, tip_c, "the sides diverged");
    assert!(!included(&a, &tx_c.id()) && !included(&c, &tx_ab.id()));

    // Heal: lift the bans and reconnect.
    unban(&c, &pa);
    unban(&c, &pb);
    unban(&a, &pc);
    unban(&b, &pc);
    dial(&c, &a.multiaddr());

    converge(&[&a, &b, &c], Duration::from_secs(60));
    // Both transfers end up in the one chain: the loser's went back to its mempool and was mined again.
    wait_for("both transfers included everywhere", Duration::from_secs(60), || {
        [&a, &b, &c].iter().all(|n| included(n, &tx_ab.id()) && included(n, &tx_c.id())).then_some(())
    });
    converge(&[&a, &b, &c], Duration::from_secs(60));
    // Each side's old tip is stored on its own side; exactly one of them left the canonical chain.
    let off_chain = [(&a, tip_ab), (&c, tip_c)]
        .iter()
        .filter(|(node, t)| {
            let blk: vision_node::api::BlockJson = node.client().get(&format!("/v1/blocks/{t}")).unwrap();
            !blk.canonical
        })
        .count();
    assert_eq!(off_chain, 1, "exactly one side's tip was reorganised away");
    for who in [alice.address(), carol.address(), x, y] {
        let bal = balance(&a, &who);
        assert_eq!(balance(&b, &who), bal);
        assert_eq!(balance(&c, &who), bal);
    }
    assert_eq!(balance(&a, &x), "111");
    assert_eq!(balance(&a, &y), "222");
}

#[test]
fn killed_node_reconnects_to_known_peers_without_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis(dir.path(), &[], 300, 2_000);
    let a = NodeProcess::start_networked(&dir.path().join("a"), &["--genesis", &g, "--mine", "true"]);
    let b_dir = dir.path().join("b");
    let b = NodeProcess::start_networked(&b_dir, &["--genesis", &g, "--mine", "false", "--bootstrap", &a.multiaddr()]);
    wait_for("b connected", Duration::from_secs(30), || (b.status().peers >= 1).then_some(()));
    converge(&[&a, &b], Duration::from_secs(30));
    let peer_id = b.peer_id();
    // The peer book is written in batches (`service/peer_book.rs`, at most `FLUSH_INTERVAL` after
    // a change): kill b once it holds a.
    wait_for("b's peer book to hold a", Duration::from_secs(30), || {
        (sum(&samples(&http_get(&b.metrics, "/metrics")), r#"vision_resource_used{resource="stored_peers"}"#) >= 1.0)
            .then_some(())
    });
    b.kill9();
    a.wait_height(a.status().height + 3, Duration::from_secs(60));
    // No --bootstrap: b dials the peers it remembered in its database.
    let b = NodeProcess::start_networked(&b_dir, &["--genesis", &g, "--mine", "false"]);
    assert_eq!(b.peer_id(), peer_id, "the node key persisted");
    wait_for("b reconnected", Duration::from_secs(30), || (b.status().peers >= 1).then_some(()));
    converge(&[&a, &b], Duration::from_secs(30));
}
