//! What a node keeps of invalid blocks (issue #14, item 3), and the operator's way back when a
//! block was marked invalid by mistake (item 7's `reconsider`):
//!
//! - `children_of_an_invalid_block_are_remembered_as_hashes_not_stored`: a block found invalid by
//!   execution keeps its header (status invalid) but not its body; children of it, however large,
//!   are refused as known invalid and remembered in a bounded in-memory set: the database file does
//!   not grow with their bodies.
//! - `reconsider_forgets_an_invalid_block_and_its_descendants`: `Chain::reconsider` clears the
//!   block and its descendants, so that they are judged again when delivered again.

use vision_node::chain::consensus::BlockError;
use vision_node::chain::genesis::Genesis;
use vision_node::chain::types::{Address, Block, BlockHeader, Transaction, tx_root};
use vision_node::chain::{ImportError, ImportOutcome};
use vision_node::mempool::Limits;
use vision_node::node::{BlockSource, Core, Node, NodeConfig};
use vision_node::state::BlockStatus;
use vision_node::testkit::{TEST_CHAIN_ID, genesis_with_accounts, next_block, transfer};
use vision_node::wallet::Keypair;

fn core(genesis: &Genesis, dir: &std::path::Path) -> Core {
    let config = NodeConfig {
        data_dir: Some(dir.to_path_buf()),
        genesis: genesis.clone(),
        mempool: Limits::default(),
        ..NodeConfig::devnet()
    };
    Node::open_core(&config).unwrap()
}

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
    (from..from + n).map(|nonce| transfer(key, Address([4; 32]), 1, 1, nonce, TEST_CHAIN_ID)).collect()
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
    let z = core(&genesis, dir.path());
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
    let z = core(&genesis, dir.path());
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
