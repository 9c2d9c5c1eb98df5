//! Stale side branches: stored blocks that can never become canonical, deleted in bounded batches.
//!
//! A stored block that is not canonical, at a height at or below `tip height - max reorg depth`,
//! forks off the canonical chain deeper than any reorganisation the node follows (the import
//! refuses such blocks outright), and so does every stored block above it. [`prune_stale`] finds
//! the lowest such block through the `side` index (`schema::SIDE`: every stored block that is not
//! canonical, by height), collects the stored blocks above it (its subtree, at most
//! [`PRUNE_SCAN_ENTRIES`] index entries read), and deletes them highest first, at most
//! [`PRUNE_BATCH_BLOCKS`] per call: header, body and index entry. Deleting descendants before
//! ancestors keeps "every stored block but genesis has its parent stored" after any batch, so the
//! import calls this inside its own write transaction and a crash anywhere leaves a consistent
//! store. A subtree larger than the scan budget is left alone (and logged): pruning never stalls
//! an import.

use std::collections::HashSet;

use crate::{StoreError, WriteView};
use vision_primitives::types::Hash;

/// Most stale blocks deleted per import: enough to keep up with a tip that advances one block per
/// import (each height leaves the window once), small enough that an import never waits on a
/// large deletion (a 4 MiB body's pages are freed per block).
pub const PRUNE_BATCH_BLOCKS: usize = 32;

/// Most `side` index entries (58 bytes each) read per import while collecting a stale subtree:
/// bounds the cost of pruning when nothing can be deleted.
pub const PRUNE_SCAN_ENTRIES: usize = 16_384;

/// Deletes up to `batch` stale side-chain blocks (see the module docs) below a tip at
/// `tip_height`, for a node that follows reorganisations up to `max_reorg_depth` blocks deep.
/// Returns how many were deleted. Never touches a canonical block.
pub fn prune_stale(w: &WriteView, tip_height: u64, max_reorg_depth: u64, batch: usize) -> Result<usize, StoreError> {
    let Some(limit) = tip_height.checked_sub(max_reorg_depth) else { return Ok(0) };
    let mut deleted = 0;
    while deleted < batch {
        // The lowest side block: its parent is canonical (every stored block that is not is in
        // the index, at a lower height), so it roots a side branch forking at its parent.
        let Some(&(root_height, root, _)) = w.side_blocks_from(0, 1)?.first() else { break };
        if root_height > limit {
            break;
        }
        let Some(subtree) = subtree(w, root_height, root)? else {
            tracing::warn!(
                %root,
                height = root_height,
                scanned = PRUNE_SCAN_ENTRIES,
                "stale side branch too large to prune within the scan budget; left stored"
            );
            break;
        };
        for hash in subtree.iter().rev().take(batch - deleted) {
            if w.canonical_hash(w.block_meta(hash)?.map_or(0, |m| m.header.height))? == Some(*hash) {
                return Err(StoreError::Corrupt(format!("side index lists canonical block {hash}")));
            }
            w.remove_block(hash)?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        tracing::debug!(deleted, below = limit, "stale side-chain blocks pruned");
    }
    Ok(deleted)
}

/// `root` and every stored block above it, in ascending height order, or `None` if the scan
/// budget ran out before the subtree was complete.
fn subtree(w: &WriteView, root_height: u64, root: Hash) -> Result<Option<Vec<Hash>>, StoreError> {
    let mut members = vec![root];
    let mut doomed: HashSet<Hash> = HashSet::from([root]);
    let mut top = root_height;
    let mut scanned = 0;
    let mut from = root_height + 1;
    loop {
        let chunk = w.side_blocks_from(from, 1_024.min(PRUNE_SCAN_ENTRIES - scanned))?;
        let Some(&(last_height, _, _)) = chunk.last() else { return Ok(Some(members)) };
        for &(height, hash, parent) in &chunk {
            if height > top + 1 {
                // A whole height with no member: nothing above can descend from the root.
                return Ok(Some(members));
            }
            if doomed.contains(&parent) && doomed.insert(hash) {
                members.push(hash);
                top = height;
            }
        }
        scanned += chunk.len();
        if scanned >= PRUNE_SCAN_ENTRIES {
            return Ok(None);
        }
        // Entries at `last_height` may continue past this chunk: restart at that height and skip
        // what was already seen (the set makes re-reading them harmless).
        if from == last_height {
            // A single height holds more than a chunk: go on after the chunk's last key instead.
            return Ok(None);
        }
        from = last_height;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlockMeta, BlockStatus, Store};
    use vision_primitives::genesis::Genesis;
    use vision_primitives::types::{Block, BlockHeader};

    fn header(parent: &BlockHeader, salt: u8) -> BlockHeader {
        BlockHeader { height: parent.height + 1, parent: parent.hash(), nonce: u64::from(salt), ..*parent }
    }

    fn put(w: &WriteView, h: BlockHeader) -> BlockHeader {
        let b = Block { header: h, transactions: Vec::new() };
        w.put_block(&b, &BlockMeta { header: h, total_work: 0, status: BlockStatus::HeaderValid }).unwrap();
        h
    }

    /// A canonical chain of `n` blocks on genesis (CANON only: pruning reads nothing else of it).
    fn canonical(store: &Store, n: u64) -> Vec<BlockHeader> {
        let g = Genesis::devnet().block().header;
        let w = store.write().unwrap();
        let mut out = vec![g];
        for _ in 0..n {
            let h = put(&w, header(out.last().unwrap(), 0));
            w.txn.open_table(crate::schema::CANON).unwrap().insert(h.height, &h.hash().0).unwrap();
            w.txn
                .open_table(crate::schema::SIDE)
                .unwrap()
                .remove(&crate::schema::side_key(h.height, &h.hash()))
                .unwrap();
            out.push(h);
        }
        w.commit().unwrap();
        out
    }

    #[test]
    fn stale_subtrees_go_highest_first_and_fresh_branches_stay() {
        let store = Store::in_memory(&Genesis::devnet()).unwrap();
        let canon = canonical(&store, 20);
        let w = store.write().unwrap();
        // A stale branch forking at height 2: 3a -> 4a -> {5a, 5b}, 4a' on 3a; an invalid header on 5a.
        let a3 = put(&w, header(&canon[2], 1));
        let a4 = put(&w, header(&a3, 1));
        let a4b = put(&w, header(&a3, 2));
        let a5 = put(&w, header(&a4, 1));
        let a5b = put(&w, header(&a4, 2));
        let bad = header(&a5, 1);
        w.put_meta(&bad.hash(), &BlockMeta { header: bad, total_work: 0, status: BlockStatus::Invalid }).unwrap();
        // A fresh branch forking at height 15.
        let f16 = put(&w, header(&canon[15], 1));
        let f17 = put(&w, header(&f16, 1));
        // Tip 20, window 16: heights <= 4 are stale.
        assert_eq!(prune_stale(&w, 20, 16, 3).unwrap(), 3);
        // Highest first: the invalid header, then height 5's two blocks.
        for gone in [bad, a5, a5b] {
            assert!(w.block_meta(&gone.hash()).unwrap().is_none());
        }
        assert!(w.block_meta(&a4.hash()).unwrap().is_some(), "parents stay while children are stored");
        assert_eq!(prune_stale(&w, 20, 16, 32).unwrap(), 3);
        for gone in [a3, a4, a4b] {
            assert!(w.block_meta(&gone.hash()).unwrap().is_none());
            assert!(w.body(&gone.hash()).unwrap().is_none());
        }
        assert_eq!(
            w.side_blocks_from(0, 10).unwrap(),
            vec![(16, f16.hash(), canon[15].hash()), (17, f17.hash(), f16.hash())]
        );
        assert_eq!(prune_stale(&w, 20, 16, 32).unwrap(), 0, "the fresh branch is within the window");
        assert_eq!(prune_stale(&w, 10, 16, 32).unwrap(), 0, "a chain shorter than the window prunes nothing");
        for h in &canon {
            assert!(w.block_meta(&h.hash()).unwrap().is_some(), "canonical blocks are never pruned");
        }
    }
}
