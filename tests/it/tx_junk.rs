//! Transaction gossip that cannot be abused (issue #15), against real `vision-node` processes.
//!
//! Node `a` (the node under test, not mining, difficulty-1 test genesis) has an honest real node
//! `b` bootstrapped to it and an honest in-process peer `h`; the in-process attackers refuse
//! connections to `b`, so whatever `b` receives came through `a` (see `misbehaving.rs` for the
//! peers on the node's own libp2p stack).
//!
//! 1. **Junk signatures.** An attacker gossips one batch: one valid minimum-fee transfer followed
//!    by [`JUNK`] transfers that pass every cheap check (a funded sender, consecutive nonces,
//!    amounts it can pay) but whose signatures are well-formed and wrong (another transfer's
//!    signature). An honest relay checks every signature before relaying, so the sender is
//!    charged per bad signature: it is banned for `invalid_transaction` from this one batch. `a`
//!    checks at most the batch once plus `MAX_BAD_SIGNATURES_PER_BATCH` signatures one by one
//!    (`vision_transaction_signature_checks_total`), not the old culprit-by-culprit re-verification
//!    (quadratic: ~500,000 checks for this batch). The valid transfer is pooled and reaches `b` in
//!    a batch `a` publishes itself; none of the junk ever reaches `b`.
//! 2. **Junk that cannot pay.** A second attacker gossips one valid transfer followed by
//!    [`JUNK`] transfers from unfunded keys, properly signed. The pool's pre-checks refuse them
//!    before any signature is checked (exactly one signature check: the valid one's), nobody is
//!    charged (a relay on another tip may honestly see a balance we do not), the batch is not
//!    relayed, and only the valid transfer reaches `b`.
//!
//! Throughout, `b` and `h` stay connected and served.

use std::time::Duration;

use vision_node::chain::types::{Address, Hash, Transaction};
use vision_node::p2p::gossip::encode_tx_batch;
use vision_node::testkit::{TEST_CHAIN_ID, test_key, transfer};
use vision_node::wallet::Keypair;

use crate::common::wait_for;
use crate::misbehaving::{Setting, assert_honest_service, ban_reason, banned, metric, score, start};

/// Junk transactions per batch: with the valid one, just under the batch cap of 1,024.
const JUNK: u64 = 1_000;
/// Signature checks of `a`, from gossip.
const SIG_CHECKS: &str = r#"vision_transaction_signature_checks_total{source="network"}"#;
/// Transactions from gossip that `b` pooled / refused.
const B_ACCEPTED: &str = r#"vision_transactions_submitted_total{source="network",result="accepted"}"#;
const B_REFUSED: &str = r#"vision_transactions_submitted_total{source="network",result="rejected"}"#;
/// Charges for invalid transactions on `a`.
const TX_CHARGES: &str = r#"vision_p2p_peer_actions_total{action="mid_tolerance",reason="invalid_transaction"}"#;
/// Most signature checks one batch of `n` may cost: the batch once, then one by one until
/// `MAX_BAD_SIGNATURES_PER_BATCH` (16) bad ones are found.
fn check_bound(n: u64) -> f64 {
    (n + 16) as f64
}

/// `tx` with the signature of a transfer that differs in amount: well-formed, wrong.
fn junk_signature(from: &Keypair, nonce: u64, gh: &Hash) -> Transaction {
    let mut tx = transfer(from, Address([0x3a; 32]), 1, 1, nonce, TEST_CHAIN_ID, gh);
    tx.signature = transfer(from, Address([0x3a; 32]), 2, 1, nonce, TEST_CHAIN_ID, gh).signature;
    tx
}

#[test]
fn a_junk_transaction_batch_gets_its_sender_banned_costs_bounded_checks_and_is_not_relayed() {
    let s = Setting::new();
    let (a, b, h) = start(&s, &[]);
    // The setting's two funded accounts (`genesis_with_accounts(2, ..)`).
    let (payer, victim) = (test_key(0), test_key(1));
    let gh = s.genesis_hash();

    // 1. One valid transfer, then junk signatures over payable transfers of a funded account.
    let valid = transfer(&payer, Address([0x51; 32]), 5, 1, 0, TEST_CHAIN_ID, &gh);
    let mut batch = vec![valid];
    batch.extend((0..JUNK).map(|n| junk_signature(&victim, n, &gh)));
    let checks_before = metric(&a, SIG_CHECKS);
    let evil = s.stack_peer(&a, &[&b]);
    wait_for("the junk batch published", Duration::from_secs(15), || {
        evil.publish_on(true, encode_tx_batch(&batch)).ok()
    });
    wait_for("the junk sender banned", Duration::from_secs(20), || banned(&a, &evil.id));
    let reason = wait_for("the ban in a's log", Duration::from_secs(5), || ban_reason(&a, &evil.id));
    assert_eq!(reason, "invalid_transaction");
    let charges = metric(&a, TX_CHARGES);
    assert!(charges >= 10.0, "charged per junk transaction: {charges} charges (10 ban)");
    let checks = metric(&a, SIG_CHECKS) - checks_before;
    eprintln!("junk signatures: banned after 1 batch, {charges} charges, {checks} signature checks for {JUNK} junk");
    assert!(checks >= 1.0, "the signature checks are counted");
    assert!(
        checks <= check_bound(JUNK + 1),
        "{checks} signature checks for a batch of {}: above the bound {}",
        JUNK + 1,
        check_bound(JUNK + 1)
    );
    // The valid transfer was pooled and reached b through a's own batch; no junk reached b.
    wait_for("the valid transfer pooled at b", Duration::from_secs(20), || {
        (b.status().mempool_size == 1 && metric(&b, B_ACCEPTED) == 1.0).then_some(())
    });
    assert_eq!(a.status().mempool_size, 1, "only the valid transfer is pooled at a");
    assert_eq!(metric(&b, B_REFUSED), 0.0, "b never saw a junk transaction");

    // 2. One valid transfer, then properly signed transfers from unfunded keys.
    let valid2 = transfer(&payer, Address([0x52; 32]), 5, 1, 1, TEST_CHAIN_ID, &gh);
    let mut batch2 = vec![valid2];
    batch2.extend((0..JUNK).map(|i| {
        let mut seed = [0x77; 32];
        seed[..8].copy_from_slice(&i.to_le_bytes());
        transfer(&Keypair::from_seed(&seed), Address([0x3b; 32]), 1, 1, 0, TEST_CHAIN_ID, &gh)
    }));
    let checks_before = metric(&a, SIG_CHECKS);
    let poor = s.stack_peer(&a, &[&b]);
    wait_for("the unpayable batch published", Duration::from_secs(15), || {
        poor.publish_on(true, encode_tx_batch(&batch2)).ok()
    });
    wait_for("the second valid transfer pooled at b", Duration::from_secs(20), || {
        (b.status().mempool_size == 2 && metric(&b, B_ACCEPTED) == 2.0).then_some(())
    });
    assert_eq!(metric(&a, SIG_CHECKS) - checks_before, 1.0, "only the payable transfer's signature was checked");
    assert_eq!(a.status().mempool_size, 2);
    assert_eq!(metric(&b, B_REFUSED), 0.0, "b never saw an unpayable transaction");
    assert_eq!(score(&a, &poor.id), Some(0.0), "unpayable transactions cost their relay nothing");
    assert!(banned(&a, &poor.id).is_none());

    assert_honest_service(&a, &b, &h);
}
