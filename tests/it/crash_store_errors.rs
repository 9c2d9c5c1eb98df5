//! Storage errors are not consensus failures (issue #14, item 7), part of the crash suite
//! (`cargo test --release --features fault-injection --test it crash`): an I/O error injected
//! while a block is connected (`state::fault::io_error`, point `connect.before_state_root`) fails
//! that import with `ImportError::Store`, records nothing about the block, and the same block
//! imports once the disk recovers.
//!
//! - `crash_store_error_in_connect_leaves_the_block_importable`: in-process, on a plain extension
//!   and inside a reorganisation;
//! - `crash_store_error_on_a_syncing_node_does_not_fork_it_off`: a real `vision-node` process `x`
//!   syncing from a mining peer `p` gets one injected error (environment `VISION_FAULT_IO`); it
//!   must still reach `p`'s tip, which it never could when the error marked the block invalid.

use std::time::Duration;

use vision_node::chain::types::{Address, Block};
use vision_node::chain::{ImportError, ImportOutcome};
use vision_node::node::{BlockSource, Core};
use vision_node::state::BlockStatus;
use vision_node::testkit::{TEST_CHAIN_ID, genesis_with_accounts, next_block, test_key, transfer};

use crate::common::{NodeProcess, test_core, wait_for};

const POINT: &str = "connect.before_state_root";

fn status(core: &Core, b: &Block) -> Option<BlockStatus> {
    core.chain().read().unwrap().block_meta(&b.hash()).unwrap().map(|m| m.status)
}

#[test]
fn crash_store_error_in_connect_leaves_the_block_importable() {
    let (genesis, keys) = genesis_with_accounts(2, 1_000_000_000);
    let gh = genesis.hash();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let x = test_core(&genesis, Some(dirs[0].path()), None);
    let y = test_core(&genesis, Some(dirs[1].path()), None);

    // Plain extension: the error fails the import and leaves no trace of the block.
    let b1 = next_block(
        x.chain(),
        vec![transfer(&keys[0], Address([1; 32]), 5, 1_000, 0, TEST_CHAIN_ID, &gh)],
        Address([7; 32]),
    )
    .unwrap();
    vision_node::fault::arm_io_error(POINT, 1);
    let e = x.import_block(&b1, BlockSource::Network).unwrap_err();
    assert!(matches!(e, ImportError::Store(_)), "a disk error is a storage error: {e:?}");
    assert_eq!(e.peer_action(), None, "nobody is charged for our disk");
    assert_ne!(status(&x, &b1), Some(BlockStatus::Invalid), "a disk error marked the block invalid");
    // The disk recovered: the same block is delivered again and becomes the tip.
    let outcome = x.import_block(&b1, BlockSource::Network).unwrap();
    assert!(matches!(outcome, ImportOutcome::NewTip { .. }), "{outcome:?}");
    assert_eq!(x.chain().tip().hash, b1.hash());

    // Inside a reorganisation: y builds a heavier branch from genesis; x fails on its first block.
    let branch: Vec<Block> = (0..2u64)
        .map(|i| {
            let tx = transfer(&keys[1], Address([2; 32]), 9, 1_000, i, TEST_CHAIN_ID, &gh);
            let b = next_block(y.chain(), vec![tx], Address([8; 32])).unwrap();
            y.import_block(&b, BlockSource::Miner).unwrap();
            b
        })
        .collect();
    assert_eq!(x.import_block(&branch[0], BlockSource::Network).unwrap(), ImportOutcome::SideChain);
    vision_node::fault::arm_io_error(POINT, 1);
    let e = x.import_block(&branch[1], BlockSource::Network).unwrap_err();
    assert!(matches!(e, ImportError::Store(_)), "{e:?}");
    assert_eq!(x.chain().tip().hash, b1.hash(), "the failed reorg left the old tip");
    for b in &branch {
        assert_ne!(status(&x, b), Some(BlockStatus::Invalid), "a disk error marked a branch block invalid");
    }
    let outcome = x.import_block(&branch[1], BlockSource::Network).unwrap();
    assert!(matches!(&outcome, ImportOutcome::NewTip { reverted, .. } if reverted.len() == 1), "{outcome:?}");
    assert_eq!(x.chain().tip().hash, branch[1].hash());
    vision_node::fault::arm_io_error(POINT, 0);
}

#[test]
fn crash_store_error_on_a_syncing_node_does_not_fork_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let (genesis, _) = genesis_with_accounts(2, 1_000_000_000);
    let genesis_path = dir.path().join("genesis.toml");
    genesis.save(&genesis_path).unwrap();
    let genesis = genesis_path.to_str().unwrap().to_string();
    let p = NodeProcess::start_networked(
        &dir.path().join("p"),
        &["--genesis", &genesis, "--mine-threads", "1", "--miner", &test_key(100).address().to_string()],
    );
    p.wait_height(3, Duration::from_secs(60));
    // x fails the first block it connects with an injected disk error, then the disk is fine.
    let x = NodeProcess::start_with_env(
        &dir.path().join("x"),
        &["--genesis", &genesis, "--mine", "false", "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", &p.multiaddr()],
        &[("VISION_FAULT_IO", format!("{POINT}:1"))],
    );
    // p keeps mining on the block x failed: x follows only if that block was not marked invalid.
    let target = p.height().unwrap() + 3;
    p.wait_height(target, Duration::from_secs(60));
    wait_for("x to follow p past the block its disk failed", Duration::from_secs(60), || {
        let (xs, ps) = (x.client().status().ok()?, p.client().status().ok()?);
        (xs.height >= target && ps.height >= xs.height).then_some(())
    });
    let stderr = x.raw_lines();
    assert!(
        stderr.iter().any(|l| l.contains(&format!("I/O error injected at {POINT}"))),
        "the injected error did not fire: {stderr:?}"
    );
}
