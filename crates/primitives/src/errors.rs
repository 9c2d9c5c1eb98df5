//! Cross-layer error vocabulary.
//!
//! Every layer that handles input from a peer classifies its errors with
//! [`PeerAction`] (through a `peer_action()` method on its error type), so that how much a
//! misbehaviour costs a peer is decided by one policy table in the peer manager, not scattered
//! across the code. Layers below the network never ban anyone themselves.

use serde::Serialize;

/// How bad a peer's misbehaviour was, in the tolerance terms Lighthouse uses.
///
/// The peer manager turns each action into a score penalty (see `p2p::peer_manager` and
/// `docs/adr/005-peer-scoring-policy.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerAction {
    /// Proof of malice or a broken implementation (invalid block, bad PoW): ban at once.
    Fatal,
    /// Clearly wrong, tolerated only a few times (e.g. oversized or undecodable frames).
    LowTolerance,
    /// Wrong, tolerated some times (e.g. an invalid transaction signature).
    MidTolerance,
    /// Possibly honest trouble, tolerated many times (e.g. a timeout).
    HighTolerance,
}

impl PeerAction {
    /// Stable lowercase name, used as a metrics label and in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            PeerAction::Fatal => "fatal",
            PeerAction::LowTolerance => "low_tolerance",
            PeerAction::MidTolerance => "mid_tolerance",
            PeerAction::HighTolerance => "high_tolerance",
        }
    }
}
