//! Memory and storage of deep reorganisations and side branches (issue #14, item 6 and "nothing
//! stored that did not earn it").
//!
//! - **Peak RSS of a 1,000-block reorg.** The parent test builds, on disk, a canonical branch A of
//!   `blocks` blocks and a competing branch B of the same length stored as side chain (every block
//!   valid: signed transfers, state roots), plus B's next block, which makes B heavier. A child
//!   process (this test binary again, running only [`reorg_memory_child`]) opens the database
//!   through a [`Core`], reads its own `VmRSS`, imports that one block (disconnect `blocks`
//!   blocks, connect `blocks + 1`, the pool follows, the event is sent) and reads its `VmHWM`.
//!   Measuring in a fresh process keeps the parent's allocations (building and signing both
//!   branches) out of the number. CI runs 1,000 blocks of 200 transfers; the `#[ignore]`d run takes
//!   its sizes from `VISION_REORG_BLOCKS` / `VISION_REORG_TXS` (`docs/performance.md`).
//! - **Unrequested low-work side blocks are not stored**; requested ones are; stale side branches
//!   are pruned and `db check` passes.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rayon::prelude::*;
use vision_node::chain::genesis::Genesis;
use vision_node::chain::import::{Arrival, Durability};
use vision_node::chain::types::{Address, Block, Hash};
use vision_node::chain::{ImportError, ImportOutcome, Transaction};
use vision_node::mempool::Limits;
use vision_node::node::{BlockSource, Core, Node, NodeConfig};
use vision_node::testkit::{TEST_CHAIN_ID, genesis_with_accounts, next_block, transfer};
use vision_node::wallet::Keypair;

/// Set in the child: the directory holding the database and the block that triggers the reorg.
const CHILD_ENV: &str = "VISION_REORG_MEMORY_DIR";
/// Funded senders; each block's transfers are spread over them.
const SENDERS: u32 = 8;
/// Bound on the reorg's peak RSS growth in the CI run (1,000 blocks of 200 transfers, ~36 KB
/// each, so ~36 MB per branch): the child's `VmHWM` after the reorg minus its `VmRSS` before it.
/// It covers redb's page cache (`state::DB_CACHE_BYTES`, 128 MiB, which a reorg reading both
/// branches fills) plus a working set independent of the depth; the code before the streaming
/// reorg held both branches' bodies three times over on top of that (`docs/performance.md`).
const CI_PEAK_GROWTH_BOUND_KIB: u64 = 256 * 1024;

fn config(genesis: &Genesis, dir: Option<&Path>, max_reorg_depth: u64) -> NodeConfig {
    NodeConfig {
        data_dir: dir.map(|d| d.to_path_buf()),
        genesis: genesis.clone(),
        max_reorg_depth,
        mempool: Limits::default(),
        ..NodeConfig::devnet()
    }
}

fn setup_genesis() -> (Genesis, Vec<Keypair>) {
    genesis_with_accounts(SENDERS, u128::MAX / 4)
}

/// `n` transfers for block `height` of a branch: sender `j % SENDERS`, nonces continuing each
/// sender's sequence, recipients and amounts distinct per branch (so the two branches spend the
/// same nonces: the losing branch's transactions do not return to the pool).
fn transfers(keys: &[Keypair], gh: &Hash, branch: u8, height: usize, n: usize) -> Vec<Transaction> {
    assert_eq!(n % SENDERS as usize, 0, "transfers per block: a multiple of {SENDERS}");
    let per_sender = n / SENDERS as usize;
    (0..n)
        .into_par_iter()
        .map(|j| {
            let s = j % SENDERS as usize;
            let nonce = (height * per_sender + j / SENDERS as usize) as u64;
            let to = Address([branch.wrapping_add(j as u8); 32]);
            transfer(&keys[s], to, 1 + u128::from(branch), 1, nonce, TEST_CHAIN_ID, gh)
        })
        .collect()
}

/// Builds the database in `dir` (branch A canonical, branch B stored as side chain) and writes
/// B's next block to `dir/trigger.block`.
fn build(dir: &Path, blocks: usize, txs: usize) {
    let (genesis, keys) = setup_genesis();
    let depth = blocks as u64 + 10;
    let a = Node::open_core(&config(&genesis, Some(&dir.join("db")), depth)).unwrap();
    let b = Node::open_core(&config(&genesis, None, depth)).unwrap();
    for h in 0..blocks {
        let block =
            next_block(a.chain(), transfers(&keys, &a.chain().params().genesis_hash, 0, h, txs), Address([0xa0; 32]))
                .unwrap();
        assert!(matches!(a.import_block(&block, BlockSource::Miner).unwrap(), ImportOutcome::NewTip { .. }));
    }
    for h in 0..=blocks {
        let block =
            next_block(b.chain(), transfers(&keys, &b.chain().params().genesis_hash, 1, h, txs), Address([0xb0; 32]))
                .unwrap();
        b.import_block(&block, BlockSource::Miner).unwrap();
        if h < blocks {
            // Sync asked for it: stored as side chain (equal work, the first seen keeps the tip).
            assert_eq!(a.import_block(&block, BlockSource::Network).unwrap(), ImportOutcome::SideChain);
        } else {
            std::fs::write(dir.join("trigger.block"), block.encode()).unwrap();
        }
    }
}

/// What the child measured.
#[derive(Debug)]
struct Measured {
    rss_before_kib: u64,
    hwm_after_kib: u64,
    reverted: usize,
    applied: usize,
    ms: u128,
}

fn measure(blocks: usize, txs: usize) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    build(dir.path(), blocks, txs);
    eprintln!("built {blocks} + {} blocks of {txs} transfers in {:?}", blocks + 1, t.elapsed());
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["reorg_memory::reorg_memory_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .env("VISION_REORG_BLOCKS", blocks.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let Some(line) = stdout.lines().find_map(|l| l.find("REORG_MEMORY ").map(|i| &l[i..])) else {
        panic!("child did not report:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    };
    let field = |name: &str| -> u128 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let m = Measured {
        rss_before_kib: field("rss_before_kib") as u64,
        hwm_after_kib: field("hwm_after_kib") as u64,
        reverted: field("reverted") as usize,
        applied: field("applied") as usize,
        ms: field("ms"),
    };
    let db_bytes =
        std::fs::metadata(dir.path().join("db").join(vision_node::state::DB_FILE)).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "reorg of {} blocks ({txs} transfers each): RSS before {} MiB, peak {} MiB, growth {} MiB, {} ms; database {} MiB",
        m.reverted,
        m.rss_before_kib / 1024,
        m.hwm_after_kib / 1024,
        m.hwm_after_kib.saturating_sub(m.rss_before_kib) / 1024,
        m.ms,
        db_bytes >> 20
    );
    m
}

/// The child: opens the database built by [`build`], imports the trigger block, reports memory.
/// Does nothing unless started by [`measure`].
#[test]
#[ignore = "run as a child process by the reorg memory tests"]
fn reorg_memory_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let dir = Path::new(&dir);
    let blocks: u64 = std::env::var("VISION_REORG_BLOCKS").unwrap().parse().unwrap();
    let (genesis, _) = setup_genesis();
    let core = Node::open_core(&config(&genesis, Some(&dir.join("db")), blocks + 10)).unwrap();
    let block = Block::decode(&std::fs::read(dir.join("trigger.block")).unwrap()).unwrap();
    let mut events = core.subscribe();
    let rss_before = proc_kib("VmRSS:");
    let t = Instant::now();
    // `VISION_REORG_CHAIN_ONLY=1`: the chain's import alone, without the pool update and the
    // event (to tell the two apart by hand).
    let outcome = if std::env::var_os("VISION_REORG_CHAIN_ONLY").is_some() {
        core.chain().import(&block, |_| {}).unwrap().0
    } else {
        core.import_block(&block, BlockSource::Network).unwrap()
    };
    let ms = t.elapsed().as_millis();
    let (reverted, applied) = match &outcome {
        ImportOutcome::NewTip { reverted, applied } => (reverted.len(), applied.len()),
        other => panic!("no reorg: {other:?}"),
    };
    // The event is part of the path (subscribers hold it until they read it).
    let _ = events.try_recv();
    let hwm_after = proc_kib("VmHWM:");
    println!(
        "REORG_MEMORY rss_before_kib={rss_before} hwm_after_kib={hwm_after} reverted={reverted} applied={applied} ms={ms}"
    );
}

fn proc_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn reorg_of_1000_blocks_peak_rss_is_bounded() {
    let m = measure(1_000, 200);
    assert_eq!((m.reverted, m.applied), (1_000, 1_001));
    let growth = m.hwm_after_kib.saturating_sub(m.rss_before_kib);
    assert!(growth <= CI_PEAK_GROWTH_BOUND_KIB, "peak RSS grew {growth} KiB over {CI_PEAK_GROWTH_BOUND_KIB}: {m:?}");
}

/// By hand: `VISION_REORG_BLOCKS=1000 VISION_REORG_TXS=2000 cargo test --release --test it --
/// --ignored --nocapture reorg_memory::large_reorg_peak_rss` (numbers in `docs/performance.md`).
#[test]
#[ignore = "slow: builds two branches of large blocks; run by hand"]
fn large_reorg_peak_rss() {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let m = measure(env("VISION_REORG_BLOCKS", 1_000), env("VISION_REORG_TXS", 2_000));
    eprintln!("{m:?}");
}

/// A chain of `n` blocks on `core` with one transfer each from `key` (nonces from `nonce`).
fn extend(core: &Core, n: usize, key: &Keypair, nonce: u64, miner: u8) -> Vec<Block> {
    (0..n)
        .map(|i| {
            let txs = vec![transfer(
                key,
                Address([miner; 32]),
                1,
                1,
                nonce + i as u64,
                TEST_CHAIN_ID,
                &core.chain().params().genesis_hash,
            )];
            let b = next_block(core.chain(), txs, Address([miner; 32])).unwrap();
            core.import_block(&b, BlockSource::Miner).unwrap();
            b
        })
        .collect()
}

fn side_bytes(core: &Core) -> u64 {
    let r = core.chain().read().unwrap();
    r.side_blocks_from(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|(_, h, _)| r.block(h).unwrap().map_or(0, |b| b.encoded_len() as u64))
        .sum()
}

#[test]
fn unrequested_low_work_side_blocks_are_not_stored_and_stale_branches_are_pruned() {
    let (genesis, keys) = genesis_with_accounts(2, 1_000_000_000);
    let max_depth = 10;
    let dir = tempfile::tempdir().unwrap();
    let a = Node::open_core(&config(&genesis, Some(dir.path()), max_depth)).unwrap();
    let b = Node::open_core(&config(&genesis, None, max_depth)).unwrap();
    let prefix = extend(&a, 2, &keys[0], 0, 0xa0);
    for blk in &prefix {
        b.import_block(blk, BlockSource::Network).unwrap();
    }
    // A: tip at height 12 (work 13). B: a side branch forking at height 2.
    extend(&a, 10, &keys[0], 2, 0xa0);
    let side = extend(&b, 6, &keys[1], 0, 0xb0);
    let unrequested =
        |blk: &Block| a.import_block_with(blk, BlockSource::Network, Durability::Immediate, Arrival::Unrequested);
    // Height 3: branch work 4, 6 blocks' margin: 10 < 13. Not stored, not invalid, nobody charged.
    let err = unrequested(&side[0]).unwrap_err();
    assert!(matches!(err, ImportError::LowWorkSideBlock { branch_work: 4, tip_work: 13 }), "{err}");
    assert!(!err.is_consensus_failure() && err.peer_action().is_none());
    assert!(a.chain().read().unwrap().block_meta(&side[0].hash()).unwrap().is_none(), "nothing stored");
    assert!(!a.chain().is_known_invalid(&side[0].hash()).unwrap());
    assert_eq!(side_bytes(&a), 0);
    // Asked for (sync): stored whatever its work; its children then within the margin also when
    // unrequested (height 7: work 8 + 6 >= 13), but not before (height 4 and 5: 5 + 6, 6 + 6 < 13).
    assert_eq!(a.import_block(&side[0], BlockSource::Network).unwrap(), ImportOutcome::SideChain);
    assert!(matches!(unrequested(&side[1]), Err(ImportError::LowWorkSideBlock { .. })));
    for blk in &side[1..4] {
        assert_eq!(a.import_block(blk, BlockSource::Network).unwrap(), ImportOutcome::SideChain);
    }
    assert_eq!(unrequested(&side[4]).unwrap(), ImportOutcome::SideChain, "height 7 is within the margin");
    let stored = side_bytes(&a);
    assert_eq!(stored, side[..5].iter().map(|b| b.encoded_len() as u64).sum::<u64>());
    eprintln!("side-chain bytes stored: {stored} of {} offered", side.iter().map(|b| b.encoded_len()).sum::<usize>());

    // The tip moves on until the branch's fork (height 2) is below the window: its blocks go,
    // highest first, a batch per import, and `db check` passes after every step.
    for nonce in 12..16 {
        extend(&a, 1, &keys[0], nonce, 0xa0);
        let report = vision_node::chain::check::check(a.chain().store(), &genesis, a.chain().verifier());
        assert!(report.is_ok(), "{report:?}");
    }
    // Tip 16, window 10: heights <= 6 are stale, and so is everything above them on the branch.
    assert_eq!(side_bytes(&a), 0, "stale side branch pruned");
    for blk in &side[..5] {
        assert!(a.chain().read().unwrap().block_meta(&blk.hash()).unwrap().is_none());
    }
    drop(a);
    let report = vision_node::chain::check::check(
        &vision_node::state::Store::open(dir.path(), &genesis).unwrap(),
        &genesis,
        &vision_node::verify::Verifier::default(),
    );
    assert!(report.is_ok(), "{report:?}");
}
