//! Fork choice and reorganisation on one store: two competing branches from a common prefix are
//! imported into a third node; the heavier wins, the state equals a clean replay of the winning
//! branch, and transactions only the losing branch had are back in the mempool. Also: ties keep
//! the first seen branch, an invalid block in a heavier branch leaves the old tip untouched, and
//! the reorg depth limit holds.

use vision_node::chain::consensus::BlockError;
use vision_node::chain::genesis::Genesis;
use vision_node::chain::types::{Address, Block};
use vision_node::chain::{ImportError, ImportOutcome};
use vision_node::errors::PeerAction;
use vision_node::node::{BlockSource, Core};
use vision_node::testkit::{TEST_CHAIN_ID, genesis_with_accounts, next_block, transfer};
use vision_node::wallet::Keypair;

use crate::common::test_core;

/// Mines `n` blocks on `core`, block i carrying `txs(i)`, importing each; returns them.
fn extend(
    core: &Core,
    n: usize,
    miner: Address,
    mut txs: impl FnMut(usize) -> Vec<vision_node::chain::Transaction>,
) -> Vec<Block> {
    (0..n)
        .map(|i| {
            let b = next_block(core.chain(), txs(i), miner).unwrap();
            core.import_block(&b, BlockSource::Miner).unwrap();
            b
        })
        .collect()
}

fn import_all(core: &Core, blocks: &[Block]) -> Vec<ImportOutcome> {
    blocks.iter().map(|b| core.import_block(b, BlockSource::Network).unwrap()).collect()
}

struct Setup {
    genesis: Genesis,
    keys: Vec<Keypair>,
    prefix: Vec<Block>,
    branch_a: Vec<Block>,
    branch_b: Vec<Block>,
}

/// Prefix of 2 blocks; branch A of 3 blocks (keys 0 and 2 pay), branch B of `b_len` blocks
/// (keys 1 and 2 pay; key 2's transfer is the same transaction on both branches).
fn setup(b_len: usize) -> Setup {
    let (genesis, keys) = genesis_with_accounts(4, 1_000_000_000);
    let gh = genesis.hash();
    let a = test_core(&genesis, None, Some(100));
    let b = test_core(&genesis, None, Some(100));
    let prefix = extend(&a, 2, Address([0xaa; 32]), |i| {
        vec![transfer(&keys[3], Address([3; 32]), 10, 5, i as u64, TEST_CHAIN_ID, &gh)]
    });
    import_all(&b, &prefix);
    let shared = transfer(&keys[2], Address([2; 32]), 7, 5, 0, TEST_CHAIN_ID, &gh);
    let branch_a = extend(&a, 3, Address([0xa1; 32]), |i| {
        let mut v = vec![transfer(&keys[0], Address([1; 32]), 100 + i as u128, 10, i as u64, TEST_CHAIN_ID, &gh)];
        if i == 1 {
            v.push(shared);
        }
        v
    });
    let branch_b = extend(&b, b_len, Address([0xb1; 32]), |i| {
        let mut v = vec![transfer(&keys[1], Address([1; 32]), 200 + i as u128, 10, i as u64, TEST_CHAIN_ID, &gh)];
        if i == 0 {
            v.push(shared);
        }
        v
    });
    Setup { genesis, keys, prefix, branch_a, branch_b }
}

#[test]
fn heavier_branch_wins_and_losers_return_to_the_mempool() {
    let s = setup(5);
    let dir = tempfile::tempdir().unwrap();
    let z = test_core(&s.genesis, Some(dir.path()), Some(100));
    import_all(&z, &s.prefix);
    import_all(&z, &s.branch_a);
    assert_eq!(z.chain().tip().hash, s.branch_a[2].hash());
    // A pooled transaction of key 0 that follows branch A's nonces.
    let follow_up = transfer(&s.keys[0], Address([9; 32]), 1, 10, 3, TEST_CHAIN_ID, &s.genesis.hash());
    z.submit_transaction(follow_up).unwrap();

    // B1..B3 have no more work than A's tip: side chain. B4 has more: reorg.
    let outcomes = import_all(&z, &s.branch_b);
    assert_eq!(outcomes[..3], [ImportOutcome::SideChain, ImportOutcome::SideChain, ImportOutcome::SideChain]);
    match &outcomes[3] {
        ImportOutcome::NewTip { reverted, applied } => {
            assert_eq!(reverted.len(), 3);
            assert_eq!(applied.len(), 4);
        }
        other => panic!("expected a reorg, got {other:?}"),
    }
    assert!(matches!(&outcomes[4], ImportOutcome::NewTip { reverted, .. } if reverted.is_empty()));
    assert_eq!(z.chain().tip().hash, s.branch_b[4].hash());

    // Clean replay of prefix + B into a fresh store.
    let w = test_core(&s.genesis, None, Some(100));
    import_all(&w, &s.prefix);
    import_all(&w, &s.branch_b);
    let (zr, wr) = (z.chain().read().unwrap(), w.chain().read().unwrap());
    assert_eq!(zr.all_accounts().unwrap(), wr.all_accounts().unwrap());
    assert_eq!(zr.lthash().unwrap(), wr.lthash().unwrap());
    for (i, b) in s.branch_a.iter().enumerate() {
        for tx in &b.transactions {
            assert_eq!(zr.tx_location(&tx.id()).unwrap().is_some(), tx.from == s.keys[2].address(), "branch A tx {i}");
        }
    }

    // Branch A's transfers by key 0 are back in the pool; the shared one is not (it is in B);
    // the follow-up (nonce 3) is still there behind them.
    for b in &s.branch_a {
        for tx in &b.transactions {
            let expect = tx.from == s.keys[0].address();
            assert_eq!(z.mempool().contains(&tx.id()), expect, "nonce {} of {:?}", tx.nonce, tx.from);
        }
    }
    assert!(z.mempool().contains(&follow_up.id()));
    assert_eq!(z.mempool().len(), 4);

    // They are mined again, in nonce order, on the new tip.
    let template = vision_node::miner::build_template(z.chain(), z.mempool(), Address([0xcc; 32]), 100).unwrap();
    assert_eq!(template.transactions.len(), 4);
    let b = vision_node::miner::solve(&template, z.chain().tip().header.timestamp_ms + 1_000);
    z.import_block(&b, BlockSource::Miner).unwrap();
    assert!(z.mempool().is_empty());
    assert_eq!(z.chain().read().unwrap().account(&s.keys[0].address()).unwrap().nonce, 4);
    drop((zr, wr));

    // The reorged database replays cleanly from genesis.
    let report =
        vision_node::chain::check::check(z.chain().store(), &s.genesis, &vision_node::verify::Verifier::default())
            .unwrap();
    assert_eq!(report.height, 2 + 5 + 1);
}

#[test]
fn equal_work_keeps_the_first_seen() {
    let s = setup(3);
    let z = test_core(&s.genesis, None, Some(100));
    import_all(&z, &s.prefix);
    import_all(&z, &s.branch_a);
    let outcomes = import_all(&z, &s.branch_b);
    assert!(outcomes.iter().all(|o| *o == ImportOutcome::SideChain));
    assert_eq!(z.chain().tip().hash, s.branch_a[2].hash());
    // Importing again is a no-op.
    assert_eq!(z.import_block(&s.branch_b[2], BlockSource::Network).unwrap(), ImportOutcome::AlreadyKnown);
}

#[test]
fn invalid_block_in_heavier_branch_leaves_the_tip_untouched() {
    let mut s = setup(5);
    let z = test_core(&s.genesis, None, Some(100));
    import_all(&z, &s.prefix);
    import_all(&z, &s.branch_a);
    let before = z.chain().read().unwrap().all_accounts().unwrap();
    // Corrupt B4's state root (PoW at difficulty 1 still holds); B5 builds on the corrupt B4.
    s.branch_b[3].header.state_root.0[0] ^= 1;
    s.branch_b[4].header.parent = s.branch_b[3].hash();
    for b in &s.branch_b[..3] {
        z.import_block(b, BlockSource::Network).unwrap();
    }
    let err = z.import_block(&s.branch_b[3], BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::StateRootMismatch { .. })), "{err}");
    assert_eq!(err.peer_action(), Some(PeerAction::Fatal));
    assert_eq!(z.chain().tip().hash, s.branch_a[2].hash());
    assert_eq!(z.chain().read().unwrap().all_accounts().unwrap(), before, "a failed reorg must leave no trace");
    let err = z.import_block(&s.branch_b[4], BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::KnownInvalid(_))), "{err}");
    let again = z.import_block(&s.branch_b[3], BlockSource::Network).unwrap_err();
    assert!(matches!(again, ImportError::Block(BlockError::KnownInvalid(_))), "{again}");
}

#[test]
fn reorg_depth_is_limited() {
    let s = setup(5);
    let z = test_core(&s.genesis, None, Some(2));
    import_all(&z, &s.prefix);
    // A branch that started while it was within the limit grows heavier after the tip moved on:
    // the switch would revert more than 2 blocks, so it is refused.
    z.import_block(&s.branch_a[0], BlockSource::Network).unwrap();
    z.import_block(&s.branch_b[0], BlockSource::Network).unwrap();
    for b in &s.branch_a[1..] {
        z.import_block(b, BlockSource::Network).unwrap();
    }
    assert_eq!(z.chain().tip().hash, s.branch_a[2].hash());
    for b in &s.branch_b[1..3] {
        z.import_block(b, BlockSource::Network).unwrap();
    }
    let err = z.import_block(&s.branch_b[3], BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::ReorgTooDeep { depth: 3, limit: 2 })), "{err}");
    assert_eq!(z.chain().tip().hash, s.branch_a[2].hash());
}

#[test]
fn side_chain_blocks_below_the_reorg_window_are_refused_unstored() {
    // A flood of cheap blocks forking off deep history costs nothing to make at old difficulties;
    // none of them is verified or stored, and the sender is charged.
    let s = setup(5);
    let z = test_core(&s.genesis, None, Some(2));
    import_all(&z, &s.prefix);
    import_all(&z, &s.branch_a);
    let stored_before = z.chain().read().unwrap().all_accounts().unwrap();
    for b in &s.branch_b {
        let err = z.import_block(b, BlockSource::Network).unwrap_err();
        let deep = matches!(err, ImportError::Block(BlockError::ReorgTooDeep { limit: 2, .. }));
        let orphan = matches!(err, ImportError::Block(BlockError::UnknownParent(_)));
        assert!(deep || orphan, "{err}");
        assert!(z.chain().read().unwrap().block_meta(&b.hash()).unwrap().is_none(), "nothing stored");
    }
    let err = z.import_block(&s.branch_b[0], BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::ReorgTooDeep { depth: 3, limit: 2 })), "{err}");
    assert_eq!(err.peer_action(), Some(PeerAction::LowTolerance));
    assert_eq!(z.chain().read().unwrap().all_accounts().unwrap(), stored_before);
    assert_eq!(z.chain().tip().hash, s.branch_a[2].hash());
}

#[test]
fn orphans_and_bad_headers_are_refused() {
    let s = setup(3);
    let z = test_core(&s.genesis, None, Some(100));
    let err = z.import_block(&s.branch_a[0], BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::UnknownParent(_))));
    assert_eq!(err.peer_action(), None, "an orphan is not misbehaviour");
    import_all(&z, &s.prefix);
    let mut wrong_height = s.branch_a[0].clone();
    wrong_height.header.height += 1;
    let err = z.import_block(&wrong_height, BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::WrongHeight { .. })), "{err}");
    let mut wrong_difficulty = s.branch_a[0].clone();
    wrong_difficulty.header.difficulty = 2;
    while !vision_node::chain::consensus::meets_difficulty(&wrong_difficulty.hash(), 2) {
        wrong_difficulty.header.nonce += 1;
    }
    let err = z.import_block(&wrong_difficulty, BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::WrongDifficulty { expected: 1, got: 2 })), "{err}");
    let mut old = s.branch_a[0].clone();
    old.header.timestamp_ms = s.genesis.timestamp_ms;
    let err = z.import_block(&old, BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::TimestampTooOld { .. })), "{err}");
    // None of these touched the tip.
    assert_eq!(z.chain().tip().hash, s.prefix[1].hash());
}
