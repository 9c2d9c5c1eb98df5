//! Gossip validation of a block: what the loop answers gossipsub (relay or not) and whom it
//! charges, decided from the message bytes and the chain's state before any import.
//!
//! The order of the checks (see `protocols/gossip.md` §4.1): decode; the header's stateless
//! checks (version, proof of work against its own difficulty field, clock); below the reorg
//! window; already known (and then, whether stored as invalid). Only an unknown block that passes
//! all of them is relayed and handed to the import worker. The sender's connection and rate limit
//! are checked by the loop first, since they are the peer manager's state.

use libp2p::gossipsub::MessageAcceptance;
use vision_primitives::consensus::{BlockError, check_header_stateless};
use vision_primitives::errors::PeerAction;
use vision_primitives::types::Block;
use vision_state::BlockStatus;

use crate::chain_access::ChainAccess;

/// Who pays for a block that fails gossip validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charged {
    /// The peer that sent us the message: it could have checked this itself.
    Sender,
    /// The peer that signed the message (its author), when it is not us: a relay could not know.
    Author,
}

/// The verdict on a gossiped block.
#[derive(Debug)]
pub enum Judgement {
    /// Relay it (Accept) and import it.
    Relay(Box<Block>),
    /// Do not relay it; nobody is charged.
    Ignore,
    /// Answer gossipsub `acceptance` and charge `charged` with `action`, labelled `reason`.
    Penalize {
        /// What gossipsub is told.
        acceptance: MessageAcceptance,
        /// Who pays.
        charged: Charged,
        /// How much.
        action: PeerAction,
        /// The reason label of the penalty metric.
        reason: &'static str,
    },
}

/// Judges the gossiped block `data` against the chain at wall-clock time `now_ms`.
pub fn judge_block(core: &dyn ChainAccess, data: &[u8], now_ms: u64) -> Judgement {
    let penalize = |acceptance, charged, action, reason| Judgement::Penalize { acceptance, charged, action, reason };
    let block = match Block::decode(data) {
        Ok(b) => b,
        Err(_) => {
            return penalize(MessageAcceptance::Reject, Charged::Sender, PeerAction::LowTolerance, "undecodable_block");
        }
    };
    match check_header_stateless(core.params(), &block.header, now_ms) {
        Ok(()) => {
            let delay_ms = now_ms.saturating_sub(block.header.timestamp_ms);
            core.observe_block_propagation_delay(delay_ms as f64 / 1000.0);
        }
        Err(e @ BlockError::TimestampInFuture { .. }) => {
            tracing::debug!(error = %e, "block from the future ignored");
            return Judgement::Ignore;
        }
        Err(e) => {
            tracing::info!(error = %e, "invalid block header from gossip");
            let action = e.peer_action().unwrap_or(PeerAction::LowTolerance);
            return penalize(MessageAcceptance::Reject, Charged::Sender, action, "invalid_block_header");
        }
    }
    // Below the reorg window: it can never become canonical (the import would refuse it
    // unverified); do not relay it. No honest node relays such a block either. Ignore, not
    // Reject: the peer manager's `LowTolerance` bans after five, where gossipsub's own penalty
    // would only graylist the sender after a few and leave it connected.
    let tip_height = core.tip().header.height;
    if block.header.height.saturating_add(core.max_reorg_depth()) <= tip_height {
        return penalize(MessageAcceptance::Ignore, Charged::Sender, PeerAction::LowTolerance, "deep_fork_block");
    }
    let known = core.store().read().ok().and_then(|r| r.block_meta(&block.hash()).ok().flatten());
    match known.map(|m| m.status) {
        // Like a body found invalid at import: the signed author pays, not the relay, which may
        // have forwarded it honestly before anyone could know.
        Some(BlockStatus::Invalid) => {
            penalize(MessageAcceptance::Ignore, Charged::Author, PeerAction::Fatal, "known_invalid_block")
        }
        Some(_) => Judgement::Ignore,
        // Relay now (see `protocols/gossip.md`); a bad body found by the import is charged to the
        // block's author, not to whoever relayed it.
        None => Judgement::Relay(Box::new(block)),
    }
}
