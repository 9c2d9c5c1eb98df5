//! Who pays for a bad block: the charge table of `docs/adr/012-charging-for-bad-blocks.md` in code.
//!
//! The rule: charge the one who could have known. Every honest node checks a gossiped block's
//! header against its parent before relaying it, and a node serves only blocks it stored, which it
//! stored only after their header and stateless body checks. So:
//!
//! - a **sender** (the peer that gave us the block) is charged for what it could have checked from
//!   the header and the parent it must have had: decoding, version, proof of work, difficulty,
//!   height, timestamps, an invalid parent;
//! - the **author** (the peer that signed the gossip message) is charged for what only an import
//!   finds (the body and its execution): a relay never is;
//! - a **server** (a peer that answered a sync request) is charged for everything it stored and
//!   served, except the execution of a block fetched by hash (it may hold that block on a side
//!   branch it never executed);
//! - **nobody** for a clock disagreement, a block below the reorg window by less than another
//!   window (a lagging honest node relays those), an unknown parent, or our own storage failing; a
//!   gossiped block more than a whole window below costs its sender `LowTolerance`.
//!
//! An orphan (a gossiped block whose parent arrived later) is charged to its author even for
//! header faults: the relay may have had a different parent in mind when it relayed, and the issue
//! this table answers (#14) asks that relays never pay for blocks they did not make.
//!
//! A gossiped **transaction batch** ([`judge_tx_batch`]) is judged transaction by transaction, and
//! its sender pays for each one it could have known to be bad: an honest node relays a batch only
//! when every transaction in it entered its pool, signature checked, so a bad signature, another
//! chain id or an overflowing amount in a batch is the sender's fault, once per transaction. What
//! depends on our pool or our tip (nonce, balance, fee against a full pool, the per-sender cap) is
//! nobody's fault (`docs/adr/014-charging-for-bad-transactions.md`).

use vision_mempool::{MempoolError, SubmitError};
use vision_primitives::consensus::BlockError;
use vision_primitives::errors::PeerAction;
use vision_primitives::types::Hash;
use vision_state::ImportError;

/// How a block reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<P> {
    /// Gossiped, with its parent known on arrival.
    Gossip {
        /// The peer that forwarded it to us.
        sender: P,
        /// The peer that signed the gossip message.
        author: Option<P>,
    },
    /// Gossiped before its parent, imported once the parent arrived.
    Orphan {
        /// The peer that forwarded it to us.
        sender: Option<P>,
        /// The peer that signed the gossip message.
        author: Option<P>,
    },
    /// Served by a peer we asked for it by hash (an orphan's ancestor).
    ByHash {
        /// The peer that served it.
        server: P,
    },
    /// Served by a peer as part of its canonical chain (range sync).
    ByRange {
        /// The peer that served it.
        server: P,
    },
}

/// Which check found a fault: one row group of the charge table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The header alone: version, height 0, difficulty floor, proof of work.
    Header,
    /// Our clock: the timestamp is too far ahead (may become valid).
    Clock,
    /// The header against its parent and ancestors: height, difficulty, median time.
    Context,
    /// The parent is known to be invalid.
    ParentInvalid,
    /// The body without state: size, count, transactions root, duplicates, signatures.
    Body,
    /// Executing the body against the parent's state: a transaction's rules, the state root.
    Execution,
    /// The block itself is known to be invalid (found by an earlier import).
    KnownInvalid,
    /// Below the reorg window, but by less than another window: it can never become canonical
    /// here, yet a node that lags behind by up to a window relays it honestly.
    Window,
    /// More than a whole window below the reorg window: no honest node relays it (one that lags
    /// that far behind is syncing, and blocks it syncs are not gossiped).
    DeepFork,
    /// The parent is unknown: not a fault.
    UnknownParent,
}

impl Found {
    /// Classifies `error`, raised for the block whose hash is `hash`.
    pub fn of(error: &BlockError, hash: &Hash) -> Found {
        use BlockError as E;
        match error {
            E::Decode(_)
            | E::UnsupportedVersion(_)
            | E::InsufficientWork { .. }
            | E::DifficultyTooLow(_)
            | E::NotGenesis => Found::Header,
            E::TimestampInFuture { .. } => Found::Clock,
            E::TimestampTooOld { .. } | E::WrongHeight { .. } | E::WrongDifficulty { .. } => Found::Context,
            E::TooManyTransactions(_)
            | E::TooLarge(_)
            | E::TxRootMismatch
            | E::DuplicateTransaction(_)
            | E::InvalidSignature(_) => Found::Body,
            E::InvalidTransaction { .. } | E::StateRootMismatch { .. } => Found::Execution,
            E::KnownInvalid(h) if h == hash => Found::KnownInvalid,
            E::KnownInvalid(_) => Found::ParentInvalid,
            E::ReorgTooDeep { .. } => Found::Window,
            E::UnknownParent(_) => Found::UnknownParent,
        }
    }

    /// The label of the penalty metric and log line.
    pub fn reason(self) -> &'static str {
        match self {
            Found::Header => "invalid_block_header",
            Found::Clock => "block_from_the_future",
            Found::Context => "block_header_out_of_context",
            Found::ParentInvalid => "invalid_parent",
            Found::Body => "invalid_block_body",
            Found::Execution => "invalid_block_execution",
            Found::KnownInvalid => "known_invalid_block",
            Found::Window => "below_reorg_window",
            Found::DeepFork => "deep_fork_block",
            Found::UnknownParent => "unknown_parent",
        }
    }
}

/// A charge: who pays, how much, and the reason label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge<P> {
    /// The peer charged.
    pub peer: P,
    /// How much.
    pub action: PeerAction,
    /// The reason label.
    pub reason: &'static str,
}

/// Who pays for `found` on a block that came by `route`; `local` is our own id (never charged).
pub fn charge<P: Copy + Eq>(route: Route<P>, found: Found, local: P) -> Option<Charge<P>> {
    use Found as F;
    use PeerAction::{Fatal, LowTolerance};
    let (peer, action) = match (route, found) {
        (_, F::Clock | F::Window | F::UnknownParent) => return None,
        (Route::Gossip { sender, .. }, F::Header | F::Context) => (Some(sender), Fatal),
        (Route::Gossip { sender, .. }, F::ParentInvalid | F::DeepFork) => (Some(sender), LowTolerance),
        // Found only by gossip validation, from the header's height.
        (_, F::DeepFork) => return None,
        (Route::Gossip { author, .. }, F::Body | F::Execution | F::KnownInvalid) => (author, Fatal),
        // Found once the parent arrived: whatever it is, the author made it.
        (Route::Orphan { author, .. }, F::ParentInvalid) => (author, LowTolerance),
        (Route::Orphan { author, .. }, _) => (author, Fatal),
        (Route::ByHash { server }, F::Header | F::Context | F::Body) => (Some(server), Fatal),
        (Route::ByHash { server }, F::ParentInvalid) => (Some(server), LowTolerance),
        // It may be on a side branch the server stored but never executed.
        (Route::ByHash { .. }, F::Execution | F::KnownInvalid) => return None,
        (Route::ByRange { server }, F::Header | F::Context | F::Body | F::Execution) => (Some(server), Fatal),
        (Route::ByRange { server }, F::ParentInvalid | F::KnownInvalid) => (Some(server), LowTolerance),
    };
    peer.filter(|p| *p != local).map(|peer| Charge { peer, action, reason: found.reason() })
}

/// [`charge`] for an import error: a storage failure is ours, and a block not stored by storage
/// policy (an unrequested low-work side-chain block) is no fault; nobody pays for either.
pub fn charge_import<P: Copy + Eq>(route: Route<P>, error: &ImportError, hash: &Hash, local: P) -> Option<Charge<P>> {
    match error {
        ImportError::Block(e) => charge(route, Found::of(e, hash), local),
        // Storage policy on unrequested low-work side blocks: no verdict, nobody pays.
        ImportError::Store(_) | ImportError::LowWorkSideBlock { .. } => None,
    }
}

/// Most charges one transaction batch earns its sender: past the 10 `MidTolerance` (or 5
/// `LowTolerance`) that ban a peer at score 0, more reports only cost the loop time.
pub const MAX_TX_CHARGES_PER_BATCH: usize = 32;

/// What becomes of a gossiped transaction batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxVerdict {
    /// Relay it as received: every transaction is in our pool, at least one is new.
    Relay,
    /// Not relayed, and gossipsub's score counts an invalid message: some transaction is the
    /// sender's fault.
    Reject,
    /// Not relayed, no fault: nothing new, or some transaction refused for a reason of our own.
    Ignore,
}

/// The judgement of a gossiped transaction batch (`protocols/gossip.md` §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxJudgement {
    /// What becomes of the message.
    pub verdict: TxVerdict,
    /// What the sender pays: one report per faulty transaction, at most
    /// [`MAX_TX_CHARGES_PER_BATCH`] in all, as (action, number of reports).
    pub charges: Vec<(PeerAction, usize)>,
    /// Indices of the transactions that entered our pool but travel on only if we publish them
    /// ourselves (the message is not relayed): every new one, unless the verdict is `Relay`.
    pub republish: Vec<usize>,
}

/// Judges a gossiped batch from the results of `submit_transactions`, one per transaction.
pub fn judge_tx_batch(results: &[Result<Hash, SubmitError>]) -> TxJudgement {
    let mut charges: Vec<(PeerAction, usize)> = Vec::new();
    let faults = results.iter().filter_map(|r| r.as_ref().err().and_then(SubmitError::peer_action));
    for action in faults.take(MAX_TX_CHARGES_PER_BATCH) {
        match charges.iter_mut().find(|(a, _)| *a == action) {
            Some((_, n)) => *n += 1,
            None => charges.push((action, 1)),
        }
    }
    let new: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_ok()).collect();
    let all_pooled =
        results.iter().all(|r| matches!(r, Ok(_) | Err(SubmitError::Mempool(MempoolError::AlreadyKnown(_)))));
    let verdict = if !charges.is_empty() {
        TxVerdict::Reject
    } else if all_pooled && !new.is_empty() {
        TxVerdict::Relay
    } else {
        TxVerdict::Ignore
    };
    let republish = if verdict == TxVerdict::Relay { Vec::new() } else { new };
    TxJudgement { verdict, charges, republish }
}

#[cfg(test)]
mod tests {
    use vision_mempool::MAX_BAD_SIGNATURES_PER_BATCH;
    use vision_primitives::consensus::TxError;
    use vision_primitives::verify::{InvalidSignature, SignatureError};
    use vision_state::StoreError;

    use super::*;

    const US: u8 = 0;
    const SENDER: u8 = 1;
    const AUTHOR: u8 = 2;
    const SERVER: u8 = 3;

    fn who(route: Route<u8>, e: BlockError) -> Option<(u8, PeerAction)> {
        let hash = Hash([9; 32]);
        charge(route, Found::of(&e, &hash), US).map(|c| (c.peer, c.action))
    }

    fn gossip() -> Route<u8> {
        Route::Gossip { sender: SENDER, author: Some(AUTHOR) }
    }

    #[test]
    fn a_relay_is_never_charged_for_what_only_import_finds() {
        let body = [
            BlockError::TxRootMismatch,
            BlockError::TooLarge(1),
            BlockError::StateRootMismatch { header: Hash([1; 32]), computed: Hash([2; 32]) },
            BlockError::KnownInvalid(Hash([9; 32])),
        ];
        for e in body {
            assert_eq!(who(gossip(), e.clone()), Some((AUTHOR, PeerAction::Fatal)), "{e}");
            let orphan = Route::Orphan { sender: Some(SENDER), author: Some(AUTHOR) };
            assert_eq!(who(orphan, e.clone()), Some((AUTHOR, PeerAction::Fatal)), "{e}");
        }
    }

    #[test]
    fn a_sender_pays_for_what_the_header_and_its_parent_show() {
        for e in [
            BlockError::InsufficientWork { difficulty: 5 },
            BlockError::WrongDifficulty { expected: 2, got: 1 },
            BlockError::TimestampTooOld { timestamp_ms: 1, median_ms: 2 },
        ] {
            assert_eq!(who(gossip(), e.clone()), Some((SENDER, PeerAction::Fatal)), "{e}");
        }
        assert_eq!(who(gossip(), BlockError::KnownInvalid(Hash([1; 32]))), Some((SENDER, PeerAction::LowTolerance)));
    }

    #[test]
    fn an_orphan_found_out_of_context_charges_its_author_not_the_relay() {
        let orphan = Route::Orphan { sender: Some(SENDER), author: Some(AUTHOR) };
        assert_eq!(who(orphan, BlockError::WrongDifficulty { expected: 2, got: 1 }), Some((AUTHOR, PeerAction::Fatal)));
        // Our own orphan (we signed it) charges nobody.
        let ours = Route::Orphan { sender: Some(SENDER), author: Some(US) };
        assert_eq!(who(ours, BlockError::TxRootMismatch), None);
    }

    #[test]
    fn nobody_pays_for_clocks_windows_unknown_parents_or_our_disk() {
        for e in [
            BlockError::TimestampInFuture { timestamp_ms: 2, now_ms: 1 },
            BlockError::ReorgTooDeep { depth: 1_001, limit: 1_000 },
            BlockError::UnknownParent(Hash([1; 32])),
        ] {
            for route in [gossip(), Route::ByHash { server: SERVER }, Route::ByRange { server: SERVER }] {
                assert_eq!(who(route, e.clone()), None, "{e} {route:?}");
            }
        }
        assert_eq!(charge(gossip(), Found::Window, US), None);
        let deep = charge(gossip(), Found::DeepFork, US).map(|c| (c.peer, c.action, c.reason));
        assert_eq!(deep, Some((SENDER, PeerAction::LowTolerance, "deep_fork_block")));
        let disk = ImportError::Store(StoreError::Corrupt("injected".into()));
        assert_eq!(charge_import(gossip(), &disk, &Hash([9; 32]), US), None);
        let low_work = ImportError::LowWorkSideBlock { branch_work: 10, tip_work: 100 };
        let orphan = Route::Orphan { sender: Some(SENDER), author: Some(AUTHOR) };
        for route in [gossip(), orphan] {
            assert_eq!(charge_import(route, &low_work, &Hash([9; 32]), US), None, "{route:?}");
        }
    }

    #[test]
    fn a_server_pays_for_what_it_stored_but_not_for_side_branches_it_never_ran() {
        let by_hash = Route::ByHash { server: SERVER };
        let by_range = Route::ByRange { server: SERVER };
        assert_eq!(who(by_hash, BlockError::TxRootMismatch), Some((SERVER, PeerAction::Fatal)));
        assert_eq!(who(by_hash, BlockError::InvalidTransaction { index: 0, error: sample_tx_error() }), None);
        assert_eq!(who(by_hash, BlockError::KnownInvalid(Hash([9; 32]))), None);
        assert_eq!(
            who(by_range, BlockError::InvalidTransaction { index: 0, error: sample_tx_error() }),
            Some((SERVER, PeerAction::Fatal))
        );
    }

    fn sample_tx_error() -> vision_primitives::consensus::TxError {
        vision_primitives::consensus::TxError::WrongChainId { expected: 1, got: 2 }
    }

    fn ok(i: u8) -> Result<Hash, SubmitError> {
        Ok(Hash([i; 32]))
    }

    fn bad_signature(index: usize) -> Result<Hash, SubmitError> {
        Err(SubmitError::Signature(InvalidSignature { index, error: SignatureError::Mismatch }))
    }

    #[test]
    fn a_batch_is_relayed_only_when_every_transaction_is_pooled() {
        let known = Err(SubmitError::Mempool(MempoolError::AlreadyKnown(Hash([7; 32]))));
        let relay = judge_tx_batch(&[ok(1), known.clone(), ok(2)]);
        assert_eq!(relay, TxJudgement { verdict: TxVerdict::Relay, charges: vec![], republish: vec![] });
        assert_eq!(judge_tx_batch(std::slice::from_ref(&known)).verdict, TxVerdict::Ignore);
        assert_eq!(judge_tx_batch(&[]).verdict, TxVerdict::Ignore);
        // Refusals that depend on our tip or our pool: not relayed, nobody charged, and the new ones
        // travel on in our own batch.
        for refusal in [
            SubmitError::Mempool(MempoolError::Invalid(TxError::InsufficientBalance { need: 2, have: 0 })),
            SubmitError::Mempool(MempoolError::Invalid(TxError::NonceGap { expected: 0, got: 5 })),
            SubmitError::Mempool(MempoolError::SenderFull { cap: 4_096 }),
            SubmitError::Mempool(MempoolError::Full { min_fee: 11 }),
            SubmitError::Rule(TxError::FeeTooLow { min: 2, got: 1 }),
        ] {
            let j = judge_tx_batch(&[ok(1), Err(refusal.clone()), ok(2)]);
            assert_eq!(
                j,
                TxJudgement { verdict: TxVerdict::Ignore, charges: vec![], republish: vec![0, 2] },
                "{refusal}"
            );
        }
    }

    #[test]
    fn the_sender_pays_per_faulty_transaction() {
        // One valid transfer carrying a thousand bad signatures: rejected, the valid one republished,
        // the sender charged once per bad signature found (the rest were not checked).
        let mut results = vec![ok(1)];
        results.extend((1..=MAX_BAD_SIGNATURES_PER_BATCH).map(bad_signature));
        results.extend((0..1_000 - MAX_BAD_SIGNATURES_PER_BATCH).map(|_| Err(SubmitError::Unverified(16))));
        let j = judge_tx_batch(&results);
        assert_eq!(j.verdict, TxVerdict::Reject);
        assert_eq!(j.charges, vec![(PeerAction::MidTolerance, MAX_BAD_SIGNATURES_PER_BATCH)]);
        assert_eq!(j.republish, vec![0]);
        // Charges add up by action, and stop at the cap.
        let wrong_chain = Err(SubmitError::Rule(TxError::WrongChainId { expected: 1, got: 2 }));
        let j = judge_tx_batch(&[bad_signature(0), wrong_chain.clone(), bad_signature(2)]);
        assert_eq!(j.charges, vec![(PeerAction::MidTolerance, 2), (PeerAction::LowTolerance, 1)]);
        let many = vec![wrong_chain; 1_000];
        assert_eq!(judge_tx_batch(&many).charges, vec![(PeerAction::LowTolerance, MAX_TX_CHARGES_PER_BATCH)]);
    }
}
