//! Block acceptance under attack (issue #14, items 1 and 2), against real `vision-node` processes.
//!
//! The setting is the one of [`crate::misbehaving`]: `a` (the node under test, not mining), `b` (an
//! honest node bootstrapped to `a`, which every in-process peer refuses, so whatever reaches `b`
//! came through `a`), and in-process peers on the node's own stack. The genesis starts at
//! difficulty 2^12, so a block on the real chain costs about 4,000 hashes and a block that claims
//! difficulty 1 is a lie the header and its parent expose.
//!
//! - Blocks with difficulty 1 on the real tip, on an unknown parent, and of the maximum size:
//!   `b` never receives them, `a` stores none of them, and the sender is stopped within a few
//!   messages: banned at once for a wrong difficulty (the sender's fault, `Fatal`), disconnected
//!   after three orphans whose parents it cannot give (`LowTolerance` each; its score is kept, so
//!   it is banned if it comes back for more).
//! - An orphan whose header turns out invalid once its parent arrives, forwarded by a careless
//!   relay: the relay keeps its score, the orphan's signed author is banned.
//! - Blocks below the reorg window, relayed by an honest node that lags behind: not relayed, and
//!   the relay is not charged.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use vision_node::chain::types::{Address, Block, Hash, Transaction, TxKind};
use vision_node::node::BlockSource;
use vision_node::testkit::next_block;

use crate::common::{NodeProcess, wait_for};
use crate::misbehaving::{
    Setting, assert_honest_service, attack_until, attack_until_banned, ban_reason, banned, bans, listed, metric,
    multiaddr, score, start,
};

/// Difficulty of the test chain: every real block costs ~4,000 hashes.
const DIFFICULTY: u64 = 1 << 12;
/// Messages a lying sender may get through before it is banned.
const FEW: u64 = 8;
/// Gossiped block messages a node has judged (any result).
const BLOCK_MESSAGES: &str = r#"vision_p2p_gossip_messages_total{topic="blocks""#;

/// A block on `a`'s tip (the setting's local chain) claiming difficulty 1, nonce `variant`.
fn cheap_block_on_tip(s: &Setting, variant: u64, body: Vec<Transaction>) -> Block {
    let mut block = next_block(s.local.chain(), vec![], Address([0xe1; 32])).unwrap();
    block.header.difficulty = 1;
    block.header.nonce = variant;
    block.transactions = body;
    block
}

/// A difficulty-1 block on a parent nobody has.
fn cheap_orphan(s: &Setting, variant: u64) -> Block {
    let mut block = cheap_block_on_tip(s, variant, Vec::new());
    block.header.parent = Hash([0xa0 ^ (variant as u8); 32]);
    block.header.parent.0[31] = (variant >> 8) as u8;
    block
}

/// The largest body a block may carry: 20,000 transfers (3.6 MB), unsigned (the header check
/// comes first, so the body is never looked at).
fn max_body() -> Vec<Transaction> {
    let tx = Transaction {
        chain_id: vision_node::testkit::TEST_CHAIN_ID,
        from: Address([6; 32]),
        nonce: 0,
        fee: 1,
        kind: TxKind::Transfer { to: Address([7; 32]), amount: 1 },
        signature: [0; 64],
    };
    vec![tx; vision_node::chain::types::MAX_BLOCK_TXS]
}

/// Whether `node` stored the block `hash` (any status).
fn stored(node: &NodeProcess, hash: &Hash) -> bool {
    node.client().get::<serde_json::Value>(&format!("/v1/blocks/{hash}")).is_ok()
}

/// What `a` does to a sender of cheap blocks.
enum Verdict<'r> {
    /// Bans it at once for one of these reasons (the header alone proves the lie: `Fatal`).
    Banned(&'r [&'r str]),
    /// Disconnects it after charging it this reason a few times (`LowTolerance` each: an orphan
    /// whose parent the sender cannot give is wrong, but not proof of malice).
    Disconnected(&'r str),
}

/// Publishes `make(round)` from a fresh peer until `a` reaches `verdict` on it; checks that nothing
/// reached `b` or `a`'s store and returns the rounds it took.
fn cheap_attack(
    s: &Setting,
    a: &NodeProcess,
    b: &NodeProcess,
    what: &str,
    verdict: Verdict,
    make: impl Fn(u64) -> Block,
) -> u64 {
    let b_seen = metric(b, BLOCK_MESSAGES);
    let b_height = b.status().height;
    let evil = s.stack_peer(a, &[b]);
    let evil_id = evil.id;
    wait_for("the attacker connected", Duration::from_secs(30), || listed(a, &evil_id).then_some(()));
    let mut sent = Vec::new();
    let publish = |round| {
        let block = make(round);
        sent.push(block.hash());
        // An error until gossipsub knows a's subscription: retried by the next round.
        let _ = evil.publish(block.encode());
    };
    let settle = Duration::from_millis(400);
    let nothing_went_through = |sent: &[Hash]| {
        for h in sent {
            assert!(!stored(a, h), "{what}: a stored {h}");
            assert!(!stored(b, h), "{what}: b has {h}");
        }
        assert_eq!(metric(b, BLOCK_MESSAGES), b_seen, "{what}: a relayed a block message to b");
        assert_eq!(b.status().height, b_height);
    };
    let rounds = match verdict {
        Verdict::Banned(reasons) => {
            let rounds = attack_until_banned(a, &evil_id, what, settle, publish);
            nothing_went_through(&sent);
            let reason = wait_for("the ban in the log", Duration::from_secs(10), || ban_reason(a, &evil_id));
            assert!(reasons.contains(&reason.as_str()), "{what}: banned for {reason}, expected one of {reasons:?}");
            rounds
        }
        Verdict::Disconnected(reason) => {
            let charged = |a: &NodeProcess| {
                metric(a, &format!(r#"vision_p2p_peer_actions_total{{action="low_tolerance",reason="{reason}""#))
            };
            let before = charged(a);
            let rounds =
                attack_until(&format!("{what}: {evil_id} disconnected"), settle, || !listed(a, &evil_id), publish);
            nothing_went_through(&sent);
            // Three charges take a score from 0 past the disconnect threshold (-20).
            assert!(charged(a) >= before + 3.0, "{what}: charged {} times for {reason}", charged(a) - before);
            assert!(banned(a, &evil_id).is_none(), "{what}: banned, not merely disconnected");
            rounds
        }
    };
    assert!(rounds <= FEW, "{what}: stopped only after {rounds} messages");
    rounds
}

#[test]
fn difficulty_one_blocks_are_neither_relayed_nor_stored_and_their_sender_is_cut_off() {
    let s = Setting::with_difficulty(DIFFICULTY);
    let (a, b, h) = start(&s, &[]);
    let t0 = Instant::now();

    let rounds = cheap_attack(
        &s,
        &a,
        &b,
        "difficulty 1 on the tip",
        Verdict::Banned(&["block_header_out_of_context"]),
        |round| cheap_block_on_tip(&s, round, Vec::new()),
    );
    eprintln!("difficulty 1 on the tip: banned after {rounds} messages");

    let body = max_body();
    let rounds = cheap_attack(
        &s,
        &a,
        &b,
        "maximum size, difficulty 1",
        Verdict::Banned(&["block_header_out_of_context"]),
        |round| {
            let block = cheap_block_on_tip(&s, 1_000 + round, body.clone());
            assert!(block.encoded_len() > 3_500_000, "{}", block.encoded_len());
            block
        },
    );
    eprintln!("maximum size with difficulty 1: banned after {rounds} messages");

    let rounds = cheap_attack(
        &s,
        &a,
        &b,
        "difficulty 1 on an unknown parent",
        Verdict::Disconnected("unresolvable_orphan"),
        |round| cheap_orphan(&s, round),
    );
    eprintln!("difficulty 1 on unknown parents: disconnected after {rounds} messages");

    // Honest service goes on: the next real block reaches b through a.
    assert_honest_service(&a, &b, &h);
    s.feed_block(&h, &[&a, &b]);
    assert!(bans(&b).is_empty(), "b banned nobody: nothing reached it");
    eprintln!("cheap block attacks done in {:?}", t0.elapsed());
}

#[test]
fn an_orphan_found_invalid_once_its_parent_arrives_costs_its_author_not_the_relay() {
    let s = Setting::with_difficulty(DIFFICULTY);
    let (a, b, h) = start(&s, &[]);
    let a_id: PeerId = a.peer_id().parse().unwrap();
    let b_id: PeerId = b.peer_id().parse().unwrap();
    // The relay forwards whatever it gets (careless, not malicious) and serves the parent by hash.
    let relay = s.relay_peer(&[&b]);
    let relay_addr = relay.listen();
    relay.dial(multiaddr(&a));
    wait_for("the relay connected to a", Duration::from_secs(60), || listed(&a, &relay.id).then_some(()));
    // The author reaches a only through the relay.
    let author = s.idle_peer(&[a_id, b_id]);
    author.dial(relay_addr);

    // The parent: a real next block, known to the relay only. The orphan: its child, with a
    // difficulty the retarget does not give (its header is invalid in context, which only a node
    // holding the parent can see), published by the author.
    let parent = next_block(s.local.chain(), vec![], Address([0xb2; 32])).unwrap();
    s.local.import_block(&parent, BlockSource::Miner).unwrap();
    relay.served.lock().unwrap().insert(parent.hash(), parent.clone());
    let mut orphan = next_block(s.local.chain(), vec![], Address([0xe2; 32])).unwrap();
    orphan.header.difficulty = 1;
    wait_for("the author to publish the orphan", Duration::from_secs(60), || author.publish(orphan.encode()).ok());

    // a fetches the parent from the relay, imports it, then finds the orphan out of context.
    a.wait_height(parent.header.height, Duration::from_secs(60));
    wait_for("the orphan's author banned", Duration::from_secs(60), || banned(&a, &author.id));
    assert_eq!(ban_reason(&a, &author.id).as_deref(), Some("block_header_out_of_context"));
    assert!(!stored(&a, &orphan.hash()));
    assert!(listed(&a, &relay.id), "the relay is still connected");
    let relay_score = score(&a, &relay.id);
    assert!(relay_score.is_some_and(|x| x >= 0.0), "the relay is not charged: {relay_score:?}");
    assert!(banned(&a, &relay.id).is_none());
    assert_honest_service(&a, &b, &h);
}

#[test]
fn blocks_below_the_reorg_window_relayed_by_a_lagging_honest_node_cost_it_nothing() {
    let s = Setting::with_difficulty(DIFFICULTY);
    let depth = 4u64;
    let (a, b, h) = start(&s, &["--max-reorg-depth", &depth.to_string()]);
    // Ten competing children of the tip (height 1), each with real work at the right difficulty:
    // what a node that fell behind may still hold and relay.
    let siblings: Vec<Block> =
        (0..10u8).map(|i| next_block(s.local.chain(), vec![], Address([0xc0 + i; 32])).unwrap()).collect();
    // a moves on until they are below its reorg window.
    for _ in 0..depth + 3 {
        s.feed_block(&h, &[&a, &b]);
    }
    let laggard = s.stack_peer(&a, &[&b]);
    let laggard_id: PeerId = laggard.id;
    wait_for("the laggard connected", Duration::from_secs(60), || listed(&a, &laggard_id).then_some(()));
    let b_seen = metric(&b, BLOCK_MESSAGES);
    let ignored_before = metric(&a, crate::misbehaving::BLOCKS_IGNORED);
    // Under the old rule each cost LowTolerance, and ten banned the relay.
    for blk in &siblings {
        wait_for("the old block published", Duration::from_secs(60), || laggard.publish(blk.encode()).ok());
    }
    wait_for("the old blocks judged", Duration::from_secs(60), || {
        (metric(&a, crate::misbehaving::BLOCKS_IGNORED) >= ignored_before + siblings.len() as f64).then_some(())
    });
    assert_eq!(score(&a, &laggard_id), Some(0.0), "the lagging relay is not charged");
    assert!(banned(&a, &laggard_id).is_none());
    for blk in &siblings {
        assert!(!stored(&a, &blk.hash()), "a stored a block below its window");
    }
    assert_eq!(metric(&b, BLOCK_MESSAGES), b_seen, "nothing below the window was relayed");
}
