//! An eclipse attempt (issue #15): 5,000 sybil identities from 64 network groups churn through a
//! node's inbound slots, each announcing an address of its own through identify, and the node is
//! then killed and restarted without `--bootstrap`. Before the address manager
//! (`crates/p2p/src/addrman.rs`) the stored peer book kept the 2,000 most recently seen peers
//! and a restarted node dialled those: all sybils, the honest peers long flushed out. Now:
//! addresses told by inbound peers go to the "new" table, where one source group reaches 8 of its
//! 256 buckets and pushes out nobody who may still be good; only our own outbound connections
//! move a peer to "tried"; the outbound peers we had become anchors, written with the peer book
//! and dialled first after a restart; and at most one outbound peer is taken per network group.
//!
//! Stated bound: after the restart the node has outbound connections to all 4 honest peers, each
//! in its own network group (127.10/16 ..= 127.13/16), and no two outbound peers share a group.
//! Time is compressed: an hour of churn at about 1.4 new identities a second is 5,000
//! identities, played here as fast as the node takes them (batches of 100).
//!
//! Every address in 127.0.0.0/8 reaches the loopback interface, so one machine plays all the
//! hosts: honest nodes listen on 127.1x.0.1, sybils connect from 127.100-163.x.y (TCP bound to
//! the source address, `inbound_limits.rs`) and announce addresses there on which nothing
//! listens. (Sybils the node can reach, which would get to "tried" through the node's own dials,
//! are the unit tests' case: `addrman::tests`.)

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId, identity};
use vision_node::p2p::behaviour::secure;

use crate::common::{NodeProcess, genesis, wait_for};
use crate::inbound_limits::FromAddr;
use crate::misbehaving::{RawPeer, metric, multiaddr, peers};

/// Sybil identities in all.
const SYBILS: usize = 5_000;
/// Network groups they come from: 127.100.0.0/16 ..= 127.163.0.0/16.
const SYBIL_GROUPS: usize = 64;
/// Identities connected at once.
const BATCH: usize = 100;
/// The honest peers' addresses, one network group each.
const HONEST: [&str; 4] = ["127.10.0.1", "127.11.0.1", "127.12.0.1", "127.13.0.1"];

/// The network group of a peer listed by the API: the /16 of its connection's address.
fn group_of(addr: &str) -> Option<String> {
    let ip = addr.strip_prefix("/ip4/")?.split('/').next()?;
    let o: Vec<&str> = ip.split('.').collect();
    Some(format!("{}.{}", o.first()?, o.get(1)?))
}

/// The node's outbound peers: (peer id, network group).
fn outbound(node: &NodeProcess) -> Vec<(String, String)> {
    peers(node)
        .into_iter()
        .filter(|p| p.direction == "outbound")
        .map(|p| {
            let g = p.addresses.first().and_then(|a| group_of(a)).unwrap_or_default();
            (p.peer_id, g)
        })
        .collect()
}

/// Sybil `i`: its source address and the address it announces.
fn sybil_addr(i: usize) -> (IpAddr, Multiaddr) {
    let g = i % SYBIL_GROUPS;
    let n = i / SYBIL_GROUPS;
    let ip = IpAddr::from([127, 100 + g as u8, (n / 250) as u8, (n % 250) as u8 + 1]);
    let announce: Multiaddr = format!("/ip4/{ip}/tcp/{}", 40_000 + (i % 20_000)).parse().unwrap();
    (ip, announce)
}

#[test]
fn five_thousand_sybils_do_not_eclipse_a_restarted_node() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis(dir.path(), &[], 1_000, 2_000);
    let miner =
        NodeProcess::start_networked_on(&dir.path().join("h0"), HONEST[0], &["--genesis", &g, "--mine", "true"]);
    let mut honest = vec![miner];
    for (i, ip) in HONEST.iter().enumerate().skip(1) {
        let boot = honest[0].multiaddr();
        honest.push(NodeProcess::start_networked_on(
            &dir.path().join(format!("h{i}")),
            ip,
            &["--genesis", &g, "--mine", "false", "--bootstrap", &boot],
        ));
    }
    let honest_ids: BTreeSet<String> = honest.iter().map(|h| h.peer_id()).collect();
    let t_dir = dir.path().join("t");
    let mut args: Vec<String> = ["--genesis", g.as_str(), "--mine", "false"].map(String::from).to_vec();
    for h in &honest {
        args.extend(["--bootstrap".to_string(), h.multiaddr()]);
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = NodeProcess::start_networked(&t_dir, &arg_refs);
    let honest_outbound = |node: &NodeProcess| -> BTreeSet<String> {
        outbound(node).into_iter().map(|(p, _)| p).filter(|p| honest_ids.contains(p)).collect()
    };
    wait_for("t's outbound connections to the 4 honest peers", Duration::from_secs(60), || {
        (honest_outbound(&t).len() == HONEST.len()).then_some(())
    });

    // The churn.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let target = multiaddr(&t);
    let churn_start = Instant::now();
    let (mut connected, mut identified) = (0usize, 0usize);
    for batch in 0..SYBILS / BATCH {
        let sybils: Vec<(PeerId, RawPeer)> = (batch * BATCH..(batch + 1) * BATCH)
            .map(|i| {
                let (source, announce) = sybil_addr(i);
                let keypair = identity::Keypair::generate_ed25519();
                let id = keypair.public().to_peer_id();
                let noise = libp2p::noise::Config::new(&keypair).unwrap();
                (id, RawPeer::spawn_announcing(&rt, keypair, secure(FromAddr { source }, noise), &[announce]))
            })
            .collect();
        for (_, s) in &sybils {
            s.dial(target.clone());
        }
        let settled = |s: &RawPeer| {
            s.link.established.load(Ordering::SeqCst) > 0 || s.link.dial_failures.load(Ordering::SeqCst) > 0
        };
        wait_for("a batch of sybils connected or refused", Duration::from_secs(60), || {
            sybils.iter().all(|(_, s)| settled(s)).then_some(())
        });
        // Until t has their identify (their addresses) or they are gone.
        wait_for("t to identify the batch", Duration::from_secs(60), || {
            let listed = peers(&t);
            sybils
                .iter()
                .filter(|(_, s)| s.link.connected.load(Ordering::SeqCst))
                .all(|(id, _)| {
                    let id = id.to_string();
                    listed.iter().find(|p| p.peer_id == id).is_none_or(|p| p.client.is_some())
                })
                .then_some(())
        });
        connected += sybils.iter().filter(|(_, s)| s.link.established.load(Ordering::SeqCst) > 0).count();
        let listed = peers(&t);
        identified += sybils
            .iter()
            .filter(|(id, _)| listed.iter().any(|p| p.peer_id == id.to_string() && p.client.is_some()))
            .count();
        drop(sybils);
    }
    eprintln!(
        "eclipse: {SYBILS} sybil identities from {SYBIL_GROUPS} /16s in {:.1} s: {connected} connected, {identified} identified by t",
        churn_start.elapsed().as_secs_f64()
    );
    assert!(identified >= SYBILS / 2, "the attack reached the node: {identified} of {SYBILS} identified");
    assert_eq!(honest_outbound(&t).len(), HONEST.len(), "t kept its honest outbound peers during the churn");

    // A peer-book write after the churn (records and anchors on disk), then kill -9.
    let writes = metric(&t, "vision_p2p_peer_book_writes_total");
    wait_for("a peer-book write after the churn", Duration::from_secs(30), || {
        (metric(&t, "vision_p2p_peer_book_writes_total") > writes).then_some(())
    });
    t.kill9();

    let restarted = Instant::now();
    let t = NodeProcess::start_networked(&t_dir, &["--genesis", &g, "--mine", "false"]);
    let back =
        wait_for("the restarted t's outbound connections to the 4 honest peers", Duration::from_secs(60), || {
            (honest_outbound(&t).len() == HONEST.len()).then_some(restarted.elapsed())
        });
    let out = outbound(&t);
    let groups: BTreeSet<&String> = out.iter().map(|(_, g)| g).collect();
    let honest_groups: BTreeSet<&String> = out.iter().filter(|(p, _)| honest_ids.contains(p)).map(|(_, g)| g).collect();
    eprintln!(
        "eclipse: restarted t has its 4 honest outbound peers after {:.2} s; outbound {out:?}",
        back.as_secs_f64()
    );
    assert_eq!(honest_groups.len(), HONEST.len(), "honest outbound peers in 4 network groups: {out:?}");
    assert_eq!(groups.len(), out.len(), "at most one outbound peer per network group: {out:?}");
    let entries = metric(&t, r#"vision_resource_used{resource="addrman_entries"}"#);
    eprintln!("eclipse: t knows {entries} peers after the restart");
    assert!(entries <= vision_node::p2p::addrman::MAX_ENTRIES as f64);
    drop(honest);
}
