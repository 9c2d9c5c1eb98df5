//! The sync server: reading the blocks or headers a request asks for ([`serve_blocks`],
//! [`serve_headers`]) and the budgets that keep serving bounded ([`ServeBudget`]). Blocks stored as
//! invalid are never served: a peer that fetched one would find it invalid and charge us for it.
//!
//! Two budgets, both in the resource registry: responses being read from the store at once
//! ([`MAX_SERVING`], at most [`MAX_SERVING_PER_PEER`] per peer), and bytes of block responses
//! handed to libp2p but not yet written ([`MAX_UNSENT_RESPONSE_BYTES`], at most
//! [`MAX_UNSENT_RESPONSE_BYTES_PER_PEER`] per peer). A response being read counts against the
//! unsent budget at its largest, so reads and writes stay within it together. Over a budget the
//! answer is "busy": not the asking peer's fault, no penalty (rate limits, which are, come first).

use std::collections::HashMap;
use std::hash::Hash as StdHash;

use vision_primitives::types::{Block, BlockHeader, HEADER_LEN, Hash};
use vision_state::{BlockStatus, Store};

use crate::chain_access::ChainAccess;
use crate::sync::{self, MAX_RESPONSE_BYTES};

/// Range requests we keep in flight while syncing; a peer serving us may have as many.
const PEER_INFLIGHT: usize = crate::service::sync_client::MAX_INFLIGHT;
/// Sync responses being read from the store at once.
pub const MAX_SERVING: usize = 32;
/// Responses being read for one peer at once (one peer cannot take the whole [`MAX_SERVING`]).
pub const MAX_SERVING_PER_PEER: usize = PEER_INFLIGHT;
/// Bytes of block responses not yet written to their peers, across all peers: with the
/// per-peer cap, about 8 slow readers are needed to fill it.
pub const MAX_UNSENT_RESPONSE_BYTES: usize = 128 * 1024 * 1024;
/// Bytes of block responses not yet written to one peer: one response's worth. A peer that has
/// not read what it asked for is answered "read your earlier responses first" (no penalty: pings
/// close a link that is really dead, see `tests/it/slow_readers.rs`).
pub const MAX_UNSENT_RESPONSE_BYTES_PER_PEER: usize = sync::MAX_RESPONSE_BYTES;

/// Encoded length of a `Blocks` response (see `protocols/sync.md`).
pub fn blocks_response_len(blocks: &[Block]) -> usize {
    5 + blocks.iter().map(|b| 4 + b.encoded_len()).sum::<usize>()
}

/// Encoded length of a `Headers` response (see `protocols/sync.md`).
pub fn headers_response_len(headers: &[BlockHeader]) -> usize {
    5 + headers.len() * HEADER_LEN
}

/// Whether a request may be served now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Serve it.
    Yes,
    /// The peer has not read what it asked for already.
    SlowReader,
    /// We are busy (too many reads, or the unsent budget is taken).
    Busy,
}

/// Reads in progress and bytes not yet written, by peer `P` and request `R`.
#[derive(Debug)]
pub struct ServeBudget<P, R> {
    serving: usize,
    serving_by_peer: HashMap<P, usize>,
    unsent: HashMap<R, (P, usize)>,
    unsent_bytes: usize,
}

impl<P, R> Default for ServeBudget<P, R> {
    fn default() -> Self {
        ServeBudget { serving: 0, serving_by_peer: HashMap::new(), unsent: HashMap::new(), unsent_bytes: 0 }
    }
}

impl<P: Copy + Eq + StdHash, R: Eq + StdHash> ServeBudget<P, R> {
    /// Whether a request from `peer` may be served now.
    pub fn admit(&self, peer: &P) -> Admit {
        if self.unsent_of(peer) >= MAX_UNSENT_RESPONSE_BYTES_PER_PEER {
            return Admit::SlowReader;
        }
        let peer_serving = self.serving_by_peer.get(peer).copied().unwrap_or(0);
        if self.serving >= MAX_SERVING
            || peer_serving >= MAX_SERVING_PER_PEER
            || self.unsent_bytes + (self.serving + 1) * MAX_RESPONSE_BYTES > MAX_UNSENT_RESPONSE_BYTES
        {
            return Admit::Busy;
        }
        Admit::Yes
    }

    /// A read for `peer` starts.
    pub fn start(&mut self, peer: P) {
        self.serving += 1;
        *self.serving_by_peer.entry(peer).or_default() += 1;
    }

    /// The read for `peer` ended with a response of `bytes` (block responses only) for `request`.
    /// Returns false when its bytes do not fit the unsent budget: answer "busy" instead.
    pub fn finish(&mut self, peer: P, request: R, bytes: Option<usize>) -> bool {
        self.serving = self.serving.saturating_sub(1);
        if let Some(n) = self.serving_by_peer.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.serving_by_peer.remove(&peer);
            }
        }
        let Some(bytes) = bytes else { return true };
        if self.unsent_bytes + bytes > MAX_UNSENT_RESPONSE_BYTES
            || self.unsent_of(&peer) + bytes > MAX_UNSENT_RESPONSE_BYTES_PER_PEER.max(bytes)
        {
            return false;
        }
        self.unsent.insert(request, (peer, bytes));
        self.unsent_bytes += bytes;
        true
    }

    /// The response to `request` was written, or never will be: its bytes leave the budget.
    pub fn gone(&mut self, request: &R) {
        if let Some((_, bytes)) = self.unsent.remove(request) {
            self.unsent_bytes -= bytes;
        }
    }

    /// Reads in progress.
    pub fn serving(&self) -> usize {
        self.serving
    }

    /// Bytes handed to libp2p and not yet written.
    pub fn unsent_bytes(&self) -> usize {
        self.unsent_bytes
    }

    fn unsent_of(&self, peer: &P) -> usize {
        self.unsent.values().filter(|(p, _)| p == peer).map(|(_, b)| b).sum()
    }
}

/// The blocks a sync response carries: `Ok(hashes)` for `BlocksByHash` (stored blocks, any
/// branch), `Err((start, count))` for `BlocksByRange` (the canonical chain, stopping at its tip),
/// cut to the response byte budget. Public so that the fuzz targets serve exactly as the node does.
pub fn serve_blocks(core: &dyn ChainAccess, what: Result<Vec<Hash>, (u64, u32)>) -> Result<Vec<Block>, String> {
    serve_blocks_from(core.store(), what)
}

/// [`serve_blocks`] from a store.
pub fn serve_blocks_from(store: &Store, what: Result<Vec<Hash>, (u64, u32)>) -> Result<Vec<Block>, String> {
    let r = store.read().map_err(|e| e.to_string())?;
    // Payload = tag (1) + count (4) + per block (4 + length).
    let budget = sync::MAX_RESPONSE_BYTES - 5;
    let mut used = 0;
    let mut out = Vec::new();
    let mut push = |b: Block| -> bool {
        let len = b.encoded_len() + 4;
        if used + len > budget {
            return false;
        }
        used += len;
        out.push(b);
        true
    };
    match what {
        Ok(hashes) => {
            for h in hashes {
                // Stored as invalid: answered as not found.
                if r.block_meta(&h).map_err(|e| e.to_string())?.is_none_or(|m| m.status == BlockStatus::Invalid) {
                    continue;
                }
                if let Some(b) = r.block(&h).map_err(|e| e.to_string())?
                    && !push(b)
                {
                    break;
                }
            }
        }
        Err((start, count)) => {
            for height in start..start.saturating_add(u64::from(count)) {
                let Some(h) = r.canonical_hash(height).map_err(|e| e.to_string())? else { break };
                // Canonical blocks are connected, so never invalid; checked all the same, since
                // serving one would get us charged.
                if r.block_meta(&h).map_err(|e| e.to_string())?.is_none_or(|m| m.status == BlockStatus::Invalid) {
                    break;
                }
                let Some(b) = r.block(&h).map_err(|e| e.to_string())? else { break };
                if !push(b) {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The canonical headers at heights `start .. start + count` (stopping at the tip), for
/// `HeadersByRange`. `count` is at most `MAX_HEADERS_PER_REQUEST` (the decoder's cap), so the answer
/// is at most 322 005 bytes, well inside a response frame.
pub fn serve_headers(core: &dyn ChainAccess, start: u64, count: u32) -> Result<Vec<BlockHeader>, String> {
    serve_headers_from(core.store(), start, count)
}

/// [`serve_headers`] from a store.
pub fn serve_headers_from(store: &Store, start: u64, count: u32) -> Result<Vec<BlockHeader>, String> {
    let r = store.read().map_err(|e| e.to_string())?;
    let count = count.min(sync::MAX_HEADERS_PER_REQUEST);
    let mut out = Vec::with_capacity(count as usize);
    for height in start..start.saturating_add(u64::from(count)) {
        let Some(h) = r.canonical_hash(height).map_err(|e| e.to_string())? else { break };
        let Some(meta) = r.block_meta(&h).map_err(|e| e.to_string())? else { break };
        if meta.status == BlockStatus::Invalid {
            break;
        }
        out.push(meta.header);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_cannot_take_every_read() {
        let mut b = ServeBudget::<u8, u32>::default();
        for _ in 0..MAX_SERVING_PER_PEER {
            assert_eq!(b.admit(&1), Admit::Yes);
            b.start(1);
        }
        assert_eq!(b.admit(&1), Admit::Busy);
        assert_eq!(b.admit(&2), Admit::Yes, "another peer is still served");
        assert!(b.finish(1, 0, None));
        assert_eq!(b.admit(&1), Admit::Yes);
    }

    #[test]
    fn a_peer_that_does_not_read_is_told_so_and_bytes_leave_when_written() {
        let mut b = ServeBudget::<u8, u32>::default();
        b.start(1);
        assert!(b.finish(1, 7, Some(MAX_UNSENT_RESPONSE_BYTES_PER_PEER)));
        assert_eq!(b.unsent_bytes(), MAX_UNSENT_RESPONSE_BYTES_PER_PEER);
        assert_eq!(b.admit(&1), Admit::SlowReader);
        b.start(1);
        assert!(!b.finish(1, 8, Some(10)), "over the per-peer budget: answered busy");
        b.gone(&7);
        assert_eq!(b.unsent_bytes(), 0);
        assert_eq!(b.admit(&1), Admit::Yes);
        assert_eq!(b.serving(), 0);
    }

    #[test]
    fn reads_and_unsent_bytes_share_the_total_budget() {
        let mut b = ServeBudget::<u32, u32>::default();
        let per_peer = MAX_UNSENT_RESPONSE_BYTES_PER_PEER;
        let peers = (MAX_UNSENT_RESPONSE_BYTES / per_peer) as u32;
        for p in 0..peers {
            b.start(p);
            assert!(b.finish(p, p, Some(per_peer)));
        }
        assert_eq!(b.admit(&(peers + 1)), Admit::Busy, "the whole budget is unsent");
    }

    #[test]
    fn blocks_stored_as_invalid_are_never_served() {
        use vision_primitives::genesis::Genesis;
        use vision_state::BlockMeta;
        let genesis = Genesis::devnet();
        let store = Store::in_memory(&genesis).unwrap();
        let g = genesis.block();
        let mut bad = g.clone();
        bad.header.height = 1;
        bad.header.parent = g.hash();
        let mut side = bad.clone();
        side.header.nonce = 7;
        let w = store.write().unwrap();
        w.put_block(&bad, &BlockMeta { header: bad.header, total_work: 0, status: BlockStatus::Invalid }).unwrap();
        w.put_block(&side, &BlockMeta { header: side.header, total_work: 2, status: BlockStatus::HeaderValid })
            .unwrap();
        w.commit().unwrap();
        let served = serve_blocks_from(&store, Ok(vec![bad.hash(), side.hash(), g.hash()])).unwrap();
        assert_eq!(served, vec![side, g.clone()], "the invalid block is answered as not found");
        assert_eq!(serve_blocks_from(&store, Err((0, 64))).unwrap(), vec![g.clone()]);
        assert_eq!(serve_headers_from(&store, 0, 2000).unwrap(), vec![g.header]);
        assert!(serve_headers_from(&store, 1, 10).unwrap().is_empty());
    }
}
