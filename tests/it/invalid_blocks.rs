//! What a node keeps of invalid blocks (issue #14, item 3), and the operator's way back when a
//! block was marked invalid by mistake (item 7's `reconsider`):
//!
//! - `children_of_an_invalid_block_are_remembered_as_hashes_not_stored`: a block found invalid by
//!   execution keeps its header (status invalid) but not its body; children of it, however large,
//!   are refused as known invalid and remembered in a bounded in-memory set: the database file does
//!   not grow with their bodies.
//! - `reconsider_forgets_an_invalid_block_and_its_descendants`: `Chain::reconsider` clears the
//!   block and its descendants, so that they are judged again when delivered again.
//! - `admin_reconsider_makes_a_real_node_judge_a_block_again`: the same through the admin API and
//!   `vision-node admin reconsider`, on a real node fed by peers on real transports.

use vision_node::chain::consensus::BlockError;
use vision_node::chain::types::{Address, Block, BlockHeader, Transaction, tx_root};
use vision_node::chain::{ImportError, ImportOutcome};
use vision_node::node::{BlockSource, Core};
use vision_node::state::BlockStatus;
use vision_node::testkit::{TEST_CHAIN_ID, genesis_with_accounts, next_block, transfer};
use vision_node::wallet::Keypair;

use crate::common::test_core;

/// A child of `parent` (PoW at difficulty 1 holds for any nonce) carrying `txs`.
fn child_of(parent: &BlockHeader, txs: Vec<Transaction>, salt: u64) -> Block {
    let header = BlockHeader {
        height: parent.height + 1,
        parent: vision_node::chain::types::Block { header: *parent, transactions: Vec::new() }.hash(),
        timestamp_ms: parent.timestamp_ms + 1_000 + salt,
        tx_root: tx_root(&txs),
        ..*parent
    };
    Block { header, transactions: txs }
}

/// `n` signed transfers of `key` from nonce `from`.
fn transfers(key: &Keypair, from: u64, n: u64) -> Vec<Transaction> {
    let gh = genesis_with_accounts(2, 1_000_000_000_000).0.hash();
    (from..from + n).map(|nonce| transfer(key, Address([4; 32]), 1, 1, nonce, TEST_CHAIN_ID, &gh)).collect()
}

fn db_bytes(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join(vision_node::state::DB_FILE)).unwrap().len()
}

/// A chain with one good block, then a block whose state root is wrong on top of it.
fn with_invalid_block(z: &Core) -> (Block, Block) {
    let good = next_block(z.chain(), Vec::new(), Address([1; 32])).unwrap();
    z.import_block(&good, BlockSource::Network).unwrap();
    let mut bad = next_block(z.chain(), Vec::new(), Address([1; 32])).unwrap();
    bad.header.state_root.0[0] ^= 1;
    let err = z.import_block(&bad, BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::StateRootMismatch { .. })), "{err}");
    (good, bad)
}

#[test]
fn children_of_an_invalid_block_are_remembered_as_hashes_not_stored() {
    const CHILDREN: u64 = 20;
    const TXS: u64 = 1_000;
    let (genesis, keys) = genesis_with_accounts(2, 1_000_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let z = test_core(&genesis, Some(dir.path()), None);
    let (_, bad) = with_invalid_block(&z);
    {
        let r = z.chain().read().unwrap();
        assert_eq!(r.block_meta(&bad.hash()).unwrap().map(|m| m.status), Some(BlockStatus::Invalid));
        assert_eq!(r.body(&bad.hash()).unwrap(), None, "the body of a block found invalid is not kept");
    }
    assert!(z.chain().is_known_invalid(&bad.hash()).unwrap());

    let before = db_bytes(dir.path());
    let mut body_bytes = 0;
    for i in 0..CHILDREN {
        let child = child_of(&bad.header, transfers(&keys[0], i * TXS, TXS), i);
        body_bytes += child.encode().len() as u64;
        let err = z.import_block(&child, BlockSource::Network).unwrap_err();
        assert!(matches!(err, ImportError::Block(BlockError::KnownInvalid(h)) if h == bad.hash()), "{err}");
        assert!(z.chain().read().unwrap().block_meta(&child.hash()).unwrap().is_none(), "child {i} was stored");
        assert!(z.chain().is_known_invalid(&child.hash()).unwrap(), "child {i} is not remembered as invalid");
        // Its own child is refused by the remembered hash.
        let grandchild = child_of(&child.header, Vec::new(), 0);
        let err = z.import_block(&grandchild, BlockSource::Network).unwrap_err();
        assert!(matches!(err, ImportError::Block(BlockError::KnownInvalid(h)) if h == child.hash()), "{err}");
        let again = z.import_block(&child, BlockSource::Network).unwrap_err();
        assert!(matches!(again, ImportError::Block(BlockError::KnownInvalid(h)) if h == child.hash()), "{again}");
    }
    let grown = db_bytes(dir.path()).saturating_sub(before);
    eprintln!("{CHILDREN} children of an invalid block, {body_bytes} bytes of bodies: database grew {grown} bytes");
    assert!(grown < body_bytes / 10, "the database grew {grown} bytes with {body_bytes} bytes of invalid bodies");
}

#[test]
fn reconsider_forgets_an_invalid_block_and_its_descendants() {
    let (genesis, _) = genesis_with_accounts(2, 1_000_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let z = test_core(&genesis, Some(dir.path()), None);
    let (good, bad) = with_invalid_block(&z);
    let child = child_of(&bad.header, Vec::new(), 0);
    assert!(matches!(
        z.import_block(&child, BlockSource::Network),
        Err(ImportError::Block(BlockError::KnownInvalid(_)))
    ));

    // Reconsidering the child clears its invalid ancestor too: both are forgotten.
    let r = z.chain().reconsider(&child.hash()).unwrap();
    assert_eq!(r.forgotten, 1, "{r:?}");
    assert_eq!(r.invalid_descendants_cleared, 1, "{r:?}");
    assert!(!z.chain().is_known_invalid(&bad.hash()).unwrap());
    assert!(!z.chain().is_known_invalid(&child.hash()).unwrap());
    assert!(z.chain().read().unwrap().block_meta(&bad.hash()).unwrap().is_none());
    // Delivered again, they are judged again: the bad block by its real fault, the child as an orphan.
    let err = z.import_block(&child, BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::UnknownParent(_))), "{err}");
    let err = z.import_block(&bad, BlockSource::Network).unwrap_err();
    assert!(matches!(err, ImportError::Block(BlockError::StateRootMismatch { .. })), "{err}");
    // A block that is not invalid cannot be reconsidered.
    assert!(z.chain().reconsider(&good.hash()).is_err());
    assert_eq!(z.chain().tip().hash, good.hash());
    let next = next_block(z.chain(), Vec::new(), Address([1; 32])).unwrap();
    assert!(matches!(z.import_block(&next, BlockSource::Network).unwrap(), ImportOutcome::NewTip { .. }));
}

/// The operator's way back, end to end on a real node: a block found invalid by execution (a wrong
/// state root, gossiped by a peer that is banned for it) is reconsidered with `vision-node admin
/// reconsider`. Before, a child of it is refused at once (`invalid_parent`); after, another child
/// is an orphan whose parent the node fetches by hash and executes again from scratch: it fails
/// again and is recorded invalid again (the server of a block by hash is not charged for its
/// execution: ADR 012). Reconsidering a block that is not known invalid, or a malformed hash, is a
/// clear error.
#[test]
fn admin_reconsider_makes_a_real_node_judge_a_block_again() {
    use std::time::Duration;

    use crate::common::{cli, cli_ok, wait_for};
    use crate::misbehaving::{Setting, ban_reason, banned, listed, metric, start};

    let s = Setting::new();
    let (a, b, _h) = start(&s, &[]);
    let bad = {
        let mut b = next_block(s.local.chain(), vec![], Address([0xee; 32])).unwrap();
        b.header.state_root = vision_node::chain::types::Hash([0x55; 32]);
        b
    };
    let hash = bad.hash().to_string();
    let admin = a.admin.clone();
    let data_dir = a.data_dir.display().to_string();
    // A child of the bad block (difficulty 1: every nonce meets it; the header is valid in context).
    let child = |nonce: u64| {
        let header = BlockHeader {
            height: bad.header.height + 1,
            parent: bad.hash(),
            timestamp_ms: bad.header.timestamp_ms + 1,
            tx_root: tx_root(&[]),
            nonce,
            ..bad.header
        };
        Block { header, transactions: Vec::new() }
    };
    let publish = |peer: &crate::misbehaving::StackPeer, block: &Block| {
        let data = block.encode();
        wait_for("published", Duration::from_secs(60), || peer.publish(data.clone()).ok());
    };

    let first = s.stack_peer(&a, &[&b]);
    wait_for("the first sender connected", Duration::from_secs(60), || listed(&a, &first.id).then_some(()));
    publish(&first, &bad);
    wait_for("the first sender banned", Duration::from_secs(60), || banned(&a, &first.id));
    assert_eq!(ban_reason(&a, &first.id).as_deref(), Some("invalid_block_execution"));

    // Before: a child is refused on sight, its parent being known invalid.
    let parent_invalid = r#"vision_p2p_peer_actions_total{action="low_tolerance",reason="invalid_parent""#;
    let before = metric(&a, parent_invalid);
    let second = s.stack_peer(&a, &[&b]);
    wait_for("the second sender connected", Duration::from_secs(60), || listed(&a, &second.id).then_some(()));
    publish(&second, &child(1));
    wait_for("the child refused", Duration::from_secs(60), || (metric(&a, parent_invalid) > before).then_some(()));

    // Errors: not known invalid; not a hash.
    let out = cli(&["admin", "reconsider", &"ab".repeat(32), "--admin", &admin, "--data-dir", &data_dir]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not known invalid"), "{err}");
    let out = cli(&["admin", "reconsider", "not-a-hash", "--admin", &admin, "--data-dir", &data_dir]);
    assert!(!out.status.success() && !out.stderr.is_empty());

    let said = cli_ok(&["admin", "reconsider", &hash, "--admin", &admin, "--data-dir", &data_dir]);
    assert!(said.contains("1 stored blocks"), "{said}");
    let out = cli(&["admin", "reconsider", &hash, "--admin", &admin, "--data-dir", &data_dir]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not known invalid"), "the verdict is gone");

    // After: another child is an orphan; its parent, fetched from the peer that sent the child, is
    // executed again from scratch, fails again and is recorded invalid again.
    let invalid = r#"vision_blocks_imported_total{source="network",outcome="invalid""#;
    let before = metric(&a, invalid);
    let third = s.stack_peer(&a, &[&b]);
    third.served.lock().unwrap().insert(bad.hash(), bad.clone());
    wait_for("the third sender connected", Duration::from_secs(60), || listed(&a, &third.id).then_some(()));
    publish(&third, &child(2));
    wait_for("the parent judged again", Duration::from_secs(60), || (metric(&a, invalid) > before).then_some(()));
    let said = cli_ok(&["admin", "reconsider", &hash, "--admin", &admin, "--data-dir", &data_dir]);
    assert!(said.contains("1 stored blocks"), "recorded invalid again: {said}");
    assert!(banned(&a, &third.id).is_none(), "a server by hash is not charged for execution");
}
