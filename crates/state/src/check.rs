//! `vision-node db check`: replays the stored canonical chain from genesis with every consensus rule
//! and compares the result with what the database says.
//!
//! Checked: each canonical block links to the one before it; passes the header, body and signature
//! rules; executes without error; its state root equals the replayed state's. At the end the
//! replayed account table must equal the stored one entry for entry, and the stored LtHash must
//! equal the replayed one. Then every stored block's parent is stored, and the side-chain index
//! lists exactly the stored blocks that are not canonical (`schema` invariants).

use std::collections::{HashMap, HashSet, VecDeque};

use thiserror::Error;

use crate::{Account, ReadView, Store, StoreError, execute};
use vision_primitives::consensus::{CONTEXT_SPAN, HeaderContext, check_body, check_header_context};
use vision_primitives::genesis::Genesis;
use vision_primitives::lthash::LtHash;
use vision_primitives::types::Hash;
use vision_primitives::verify::Verifier;

/// What a successful check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Height of the stored tip.
    pub height: u64,
    /// Hash of the stored tip.
    pub tip: Hash,
    /// Transactions replayed.
    pub transactions: u64,
    /// Non-empty accounts.
    pub accounts: usize,
}

/// A mismatch between the stored chain and its replay.
#[derive(Debug, Error)]
pub enum CheckError {
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored chain is inconsistent.
    #[error("height {height}: {message}")]
    Mismatch {
        /// Where.
        height: u64,
        /// What.
        message: String,
    },
}

fn mismatch(height: u64, message: impl Into<String>) -> CheckError {
    CheckError::Mismatch { height, message: message.into() }
}

/// Replays and compares. The node must not be running on the same database.
pub fn check(store: &Store, genesis: &Genesis, verifier: &Verifier) -> Result<CheckReport, CheckError> {
    let params = genesis.params();
    let r = store.read()?;
    let tip = r.tip_hash()?;
    let tip_meta = r.block_meta(&tip)?.ok_or_else(|| mismatch(0, format!("tip {tip} has no stored header")))?;
    let g = genesis.block();
    if r.canonical_hash(0)? != Some(g.hash()) {
        return Err(mismatch(0, "canonical block 0 is not the genesis block"));
    }
    let mut state: HashMap<_, Account> =
        genesis.allocations.iter().map(|a| (a.address, Account { balance: a.balance, nonce: 0 })).collect();
    let mut lt = genesis.lthash();
    // The parent's ancestors, oldest first, as a `HeaderContext` wants them.
    let mut earlier: VecDeque<vision_primitives::types::BlockHeader> = VecDeque::with_capacity(CONTEXT_SPAN);
    let mut parent = g.header;
    let mut parent_hash = g.hash();
    let mut transactions = 0u64;
    for height in 1..=tip_meta.header.height {
        let hash = r.canonical_hash(height)?.ok_or_else(|| mismatch(height, "no canonical block"))?;
        let block = r.block(&hash)?.ok_or_else(|| mismatch(height, format!("block {hash} not stored")))?;
        if block.hash() != hash {
            return Err(mismatch(height, "stored header does not hash to its key"));
        }
        if block.header.parent != parent_hash {
            return Err(mismatch(height, "does not link to the canonical block below it"));
        }
        let ctx = HeaderContext { parent: &parent, earlier: earlier.make_contiguous() };
        check_header_context(&params, &block.header, &ctx).map_err(|e| mismatch(height, e.to_string()))?;
        if !vision_primitives::consensus::meets_difficulty(&hash, block.header.difficulty) {
            return Err(mismatch(height, "proof of work does not meet its difficulty"));
        }
        check_body(&params, &block, verifier, None).map_err(|e| mismatch(height, e.to_string()))?;
        let diff = execute(&state, &params, &block.transactions, &block.header.miner)
            .map_err(|e| mismatch(height, e.to_string()))?;
        lt = diff.apply_to(&lt);
        if lt.root() != block.header.state_root {
            return Err(mismatch(
                height,
                format!("state root {} but replay gives {}", block.header.state_root, lt.root()),
            ));
        }
        for (addr, (_, new)) in diff.changes {
            state.insert(addr, new);
        }
        transactions += block.transactions.len() as u64;
        earlier.push_back(parent);
        if earlier.len() > CONTEXT_SPAN - 1 {
            earlier.pop_front();
        }
        parent = block.header;
        parent_hash = hash;
    }
    state.retain(|_, a| !a.is_empty());
    let stored = r.all_accounts()?;
    if stored.len() != state.len() {
        return Err(mismatch(parent.height, format!("{} stored accounts, replay has {}", stored.len(), state.len())));
    }
    for (addr, acc) in &stored {
        if state.get(addr) != Some(acc) {
            return Err(mismatch(
                parent.height,
                format!("account {addr} is {acc:?}, replay says {:?}", state.get(addr)),
            ));
        }
    }
    let stored_lt: LtHash = r.lthash()?;
    if stored_lt != lt {
        return Err(mismatch(parent.height, "stored state accumulator differs from the replay"));
    }
    check_stored_blocks(&r, parent.height)?;
    Ok(CheckReport { height: parent.height, tip, transactions, accounts: stored.len() })
}

/// The stored-block invariants of `schema`: every stored block but genesis has its parent stored,
/// and `side` lists exactly the stored blocks that are not canonical.
fn check_stored_blocks(r: &ReadView, height: u64) -> Result<(), CheckError> {
    let blocks = r.block_parents_above(0)?;
    let stored: HashSet<Hash> = blocks.iter().map(|(h, _, _)| *h).collect();
    let mut side_expected = HashSet::new();
    for (hash, h, parent) in &blocks {
        if !stored.contains(parent) && r.block_meta(parent)?.is_none() {
            return Err(mismatch(*h, format!("block {hash} is stored but its parent {parent} is not")));
        }
        if r.canonical_hash(*h)? != Some(*hash) {
            side_expected.insert((*h, *hash, *parent));
        }
    }
    let side: HashSet<(u64, Hash, Hash)> = r.side_blocks_from(0, usize::MAX)?.into_iter().collect();
    if side != side_expected {
        return Err(mismatch(
            height,
            format!(
                "side-chain index lists {} blocks, {} stored blocks are not canonical",
                side.len(),
                side_expected.len()
            ),
        ));
    }
    Ok(())
}
