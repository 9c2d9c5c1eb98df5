//! Consensus rules that need no database: proof of work, difficulty retargeting, timestamp rules,
//! header and body checks, and stateless transaction checks. Every node must agree on these
//! byte for byte; each rule has a unit test that feeds it the invalid case. The specification an
//! independent implementation follows is `protocols/consensus.md`.
//!
//! Proof of work: the first 16 bytes of the block hash, read as a big-endian `u128`, must not exceed
//! `floor((2^128 - 1) / difficulty)`. The work of a block is its difficulty; fork choice sums it.
//!
//! A header is checked in two steps: [`check_header_stateless`] (version, height, PoW against its
//! own difficulty field, the future-time limit) and [`check_header_context`] against its parent and
//! up to [`CONTEXT_SPAN`] ancestors (height, the difficulty the retarget requires, median time).
//! Only the second makes the proof of work mean anything: a header's own difficulty field is
//! whatever its maker chose until it is compared with the retarget's.

use thiserror::Error;

use super::encoding::DecodeError;
use super::types::{Block, BlockHeader, ENCODING_VERSION, Hash, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, Transaction, tx_root};
use crate::errors::PeerAction;
use crate::retarget;
use crate::verify::{InvalidSignature, Path, SigCache, SignatureError, Verifier};

/// A block may be at most this many target block times ahead of our clock
/// ([`ChainParams::max_future_drift_ms`]).
pub const FUTURE_LIMIT_BLOCKS: u64 = 3;
/// ... and never less than this far (milliseconds): the clock skew tolerated between honest nodes.
pub const MIN_FUTURE_LIMIT_MS: u64 = 1_000;
/// A block's timestamp must exceed the median of this many ancestors' timestamps.
pub const MEDIAN_TIME_SPAN: usize = 11;
/// Difficulty never goes below this.
pub const MIN_DIFFICULTY: u64 = 1;
/// Headers a child's context holds, its parent included: the retarget's `N + 1` timestamps
/// ([`retarget::LWMA_WINDOW`] + 1), which also cover the [`MEDIAN_TIME_SPAN`].
pub const CONTEXT_SPAN: usize = retarget::LWMA_WINDOW + 1;
const _: () = assert!(CONTEXT_SPAN >= MEDIAN_TIME_SPAN);

/// The parameters every node of a network shares, fixed by its genesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    /// Chain id transactions must carry.
    pub chain_id: u32,
    /// Block time the retarget steers towards (ms).
    pub target_block_time_ms: u64,
    /// Difficulty of height 1.
    pub initial_difficulty: u64,
    /// New coins per block, to the miner.
    pub block_reward: u128,
    /// Smallest fee a transaction may pay.
    pub min_fee: u128,
    /// Hash of the genesis block.
    pub genesis_hash: Hash,
}

impl ChainParams {
    /// How far (ms) a block's timestamp may be ahead of the local clock:
    /// `max(FUTURE_LIMIT_BLOCKS × T, MIN_FUTURE_LIMIT_MS)` (3 s on the devnet). Small against the
    /// retarget window (60 T), so timestamps stamped ahead move the difficulty little
    /// (`docs/adr/011-difficulty-retarget.md`); above the clock skew of NTP-synchronised hosts.
    pub fn max_future_drift_ms(&self) -> u64 {
        self.target_block_time_ms.saturating_mul(FUTURE_LIMIT_BLOCKS).max(MIN_FUTURE_LIMIT_MS)
    }
}

/// A transaction that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxError {
    /// Signed for another network.
    #[error("transaction is for chain {got}, this node runs chain {expected}")]
    WrongChainId {
        /// Our chain id.
        expected: u32,
        /// The transaction's.
        got: u32,
    },
    /// Fee below the network minimum.
    #[error("fee {got} is below the minimum of {min}")]
    FeeTooLow {
        /// The minimum.
        min: u128,
        /// The fee paid.
        got: u128,
    },
    /// Amount plus fee does not fit in 128 bits.
    #[error("amount plus fee overflows")]
    CostOverflow,
    /// The signature is invalid.
    #[error("bad signature: {0}")]
    BadSignature(SignatureError),
    /// The nonce was already used.
    #[error("nonce {got} is too low; the account's next nonce is {expected}")]
    NonceTooLow {
        /// Next usable nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce leaves a gap.
    #[error("nonce gap: got nonce {got}, the next nonce is {expected}; send the missing ones first")]
    NonceGap {
        /// Next usable nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The sender cannot pay amount plus fee.
    #[error("insufficient balance: need {need}, have {have}")]
    InsufficientBalance {
        /// Amount plus fee (plus what pending transactions already spend).
        need: u128,
        /// What the account holds.
        have: u128,
    },
    /// A credit would overflow the recipient's balance.
    #[error("balance overflow")]
    BalanceOverflow,
}

impl TxError {
    /// How a peer that relayed this transaction is judged. State-dependent failures (nonce,
    /// balance) and a merely low fee can come from honest peers that see another tip or fee
    /// floor, so they cost nothing.
    pub fn peer_action(&self) -> Option<PeerAction> {
        match self {
            TxError::BadSignature(_) | TxError::CostOverflow => Some(PeerAction::MidTolerance),
            TxError::WrongChainId { .. } => Some(PeerAction::LowTolerance),
            TxError::FeeTooLow { .. }
            | TxError::NonceTooLow { .. }
            | TxError::NonceGap { .. }
            | TxError::InsufficientBalance { .. }
            | TxError::BalanceOverflow => None,
        }
    }
}

/// A block that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockError {
    /// The bytes do not decode.
    #[error("undecodable block: {0}")]
    Decode(#[from] DecodeError),
    /// A header version this node does not run.
    #[error("unsupported block version {0}")]
    UnsupportedVersion(u8),
    /// The hash does not meet the difficulty.
    #[error("proof of work does not meet difficulty {difficulty}")]
    InsufficientWork {
        /// The header's difficulty.
        difficulty: u64,
    },
    /// A difficulty of zero or below the minimum.
    #[error("difficulty {0} is below the minimum")]
    DifficultyTooLow(u64),
    /// Timestamp too far ahead of our clock ([`ChainParams::max_future_drift_ms`]); may become
    /// valid later.
    #[error(
        "timestamp {timestamp_ms} is too far ahead of local time {now_ms} (beyond the future-time limit, max(3 target block times, 1 s))"
    )]
    TimestampInFuture {
        /// The block's timestamp.
        timestamp_ms: u64,
        /// Our clock.
        now_ms: u64,
    },
    /// Timestamp not above the median of recent ancestors.
    #[error("timestamp {timestamp_ms} is not above the median {median_ms} of the last {MEDIAN_TIME_SPAN} blocks")]
    TimestampTooOld {
        /// The block's timestamp.
        timestamp_ms: u64,
        /// The ancestors' median.
        median_ms: u64,
    },
    /// Height is not parent height + 1.
    #[error("height {got} does not follow parent height {parent}")]
    WrongHeight {
        /// Parent's height.
        parent: u64,
        /// The block's height.
        got: u64,
    },
    /// Difficulty differs from the retarget rule's.
    #[error("difficulty {got} differs from the required {expected}")]
    WrongDifficulty {
        /// Required.
        expected: u64,
        /// Found.
        got: u64,
    },
    /// More transactions than a block may carry.
    #[error("block has {0} transactions, above the cap of {MAX_BLOCK_TXS}")]
    TooManyTransactions(usize),
    /// Encoded block larger than allowed.
    #[error("block is {0} bytes, above the cap of {MAX_BLOCK_BYTES}")]
    TooLarge(usize),
    /// The transactions root does not match the body.
    #[error("transactions root mismatch")]
    TxRootMismatch,
    /// The same transaction twice.
    #[error("transaction {0} appears twice")]
    DuplicateTransaction(Hash),
    /// A transaction's signature is invalid.
    #[error("invalid signature: {0}")]
    InvalidSignature(InvalidSignature),
    /// A transaction breaks a rule.
    #[error("transaction {index} is invalid: {error}")]
    InvalidTransaction {
        /// Position in the block.
        index: usize,
        /// The rule it breaks.
        error: TxError,
    },
    /// The state root does not match the state after applying the block.
    #[error("state root mismatch: header says {header}, computed {computed}")]
    StateRootMismatch {
        /// In the header.
        header: Hash,
        /// Computed.
        computed: Hash,
    },
    /// The parent is not known (an orphan: fetch the ancestors).
    #[error("unknown parent {0}")]
    UnknownParent(Hash),
    /// The parent, or this block, was found invalid before.
    #[error("block or its ancestor {0} is known to be invalid")]
    KnownInvalid(Hash),
    /// Adopting the branch would revert more blocks than allowed.
    #[error("reorg of depth {depth} exceeds the limit of {limit}")]
    ReorgTooDeep {
        /// Blocks that would be reverted.
        depth: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A second genesis block.
    #[error("a block at height 0 can only be the genesis block")]
    NotGenesis,
}

impl BlockError {
    /// How a peer that sent this block is judged.
    pub fn peer_action(&self) -> Option<PeerAction> {
        match self {
            BlockError::TimestampInFuture { .. } | BlockError::UnknownParent(_) => None,
            BlockError::ReorgTooDeep { .. } => Some(PeerAction::LowTolerance),
            _ => Some(PeerAction::Fatal),
        }
    }
}

/// The PoW target for a difficulty: the largest admissible value of the hash's first 16 bytes.
pub fn pow_target(difficulty: u64) -> u128 {
    u128::MAX / u128::from(difficulty.max(1))
}

/// True iff `hash` meets `difficulty`.
pub fn meets_difficulty(hash: &Hash, difficulty: u64) -> bool {
    let mut hi = [0u8; 16];
    hi.copy_from_slice(&hash.0[..16]);
    u128::from_be_bytes(hi) <= pow_target(difficulty)
}

/// Difficulty required of the child of `parent`, by the LWMA retarget ([`retarget::lwma_next`]).
///
/// `earlier` holds `parent`'s ancestors, oldest first, ending with `parent`'s own parent: the last
/// [`CONTEXT_SPAN`]` - 1` of them are read (fewer exist only near genesis). The genesis block is
/// never in the retarget window, so the children of genesis and of block 1 get the initial
/// difficulty.
pub fn next_difficulty(params: &ChainParams, parent: &BlockHeader, earlier: &[BlockHeader]) -> u64 {
    let mut window: Vec<(u64, u64)> = Vec::with_capacity(CONTEXT_SPAN);
    let from = earlier.len().saturating_sub(CONTEXT_SPAN - 1);
    for h in earlier[from..].iter().chain(std::iter::once(parent)) {
        if h.height > 0 {
            window.push((h.timestamp_ms, h.difficulty));
        }
    }
    retarget::lwma_next(params.target_block_time_ms, params.initial_difficulty, &window).max(MIN_DIFFICULTY)
}

/// Median of the given timestamps (any order; empty gives 0).
pub fn median_time(timestamps: &[u64]) -> u64 {
    if timestamps.is_empty() {
        return 0;
    }
    let mut v = timestamps.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Header checks that need neither ancestors nor state: version, height, PoW against the header's
/// own difficulty, clock drift ([`ChainParams::max_future_drift_ms`]). Passing them proves
/// nothing about work until [`check_header_context`] has compared the difficulty with the
/// retarget's.
pub fn check_header_stateless(params: &ChainParams, header: &BlockHeader, now_ms: u64) -> Result<(), BlockError> {
    if header.version != ENCODING_VERSION {
        return Err(BlockError::UnsupportedVersion(header.version));
    }
    if header.height == 0 {
        return Err(BlockError::NotGenesis);
    }
    if header.difficulty < MIN_DIFFICULTY {
        return Err(BlockError::DifficultyTooLow(header.difficulty));
    }
    if !meets_difficulty(&header.hash(), header.difficulty) {
        return Err(BlockError::InsufficientWork { difficulty: header.difficulty });
    }
    if header.timestamp_ms > now_ms.saturating_add(params.max_future_drift_ms()) {
        return Err(BlockError::TimestampInFuture { timestamp_ms: header.timestamp_ms, now_ms });
    }
    Ok(())
}

/// What a header is checked against: its parent and the ancestors before it.
#[derive(Debug, Clone, Copy)]
pub struct HeaderContext<'a> {
    /// The parent header.
    pub parent: &'a BlockHeader,
    /// The parent's ancestors, oldest first, ending with the parent's parent: the last
    /// `CONTEXT_SPAN - 1` are read (all of them exist unless they reach genesis).
    pub earlier: &'a [BlockHeader],
}

impl HeaderContext<'_> {
    /// The difficulty the child must carry.
    pub fn next_difficulty(&self, params: &ChainParams) -> u64 {
        next_difficulty(params, self.parent, self.earlier)
    }

    /// The median of the last [`MEDIAN_TIME_SPAN`] timestamps, parent included: the child's
    /// timestamp must exceed it.
    pub fn median_time_past(&self) -> u64 {
        let from = self.earlier.len().saturating_sub(MEDIAN_TIME_SPAN - 1);
        let times: Vec<u64> = self.earlier[from..]
            .iter()
            .map(|h| h.timestamp_ms)
            .chain(std::iter::once(self.parent.timestamp_ms))
            .collect();
        median_time(&times)
    }
}

/// Header checks against the parent: height, difficulty, median time.
pub fn check_header_context(
    params: &ChainParams,
    header: &BlockHeader,
    ctx: &HeaderContext<'_>,
) -> Result<(), BlockError> {
    if Some(header.height) != ctx.parent.height.checked_add(1) {
        return Err(BlockError::WrongHeight { parent: ctx.parent.height, got: header.height });
    }
    let expected = ctx.next_difficulty(params);
    if header.difficulty != expected {
        return Err(BlockError::WrongDifficulty { expected, got: header.difficulty });
    }
    let median_ms = ctx.median_time_past();
    if header.timestamp_ms <= median_ms {
        return Err(BlockError::TimestampTooOld { timestamp_ms: header.timestamp_ms, median_ms });
    }
    Ok(())
}

/// Stateless transaction checks (everything but signature, nonce and balance).
pub fn check_tx_stateless(params: &ChainParams, tx: &Transaction) -> Result<(), TxError> {
    if tx.chain_id != params.chain_id {
        return Err(TxError::WrongChainId { expected: params.chain_id, got: tx.chain_id });
    }
    if tx.fee < params.min_fee {
        return Err(TxError::FeeTooLow { min: params.min_fee, got: tx.fee });
    }
    if tx.total_cost().is_none() {
        return Err(TxError::CostOverflow);
    }
    Ok(())
}

/// Body checks that need no state: size caps, transactions root, duplicates, stateless
/// transaction rules and every signature (through the parallel verifier; signatures found in
/// `cache` were verified before and are skipped).
pub fn check_body(
    params: &ChainParams,
    block: &Block,
    verifier: &Verifier,
    cache: Option<&SigCache>,
) -> Result<Path, BlockError> {
    let n = block.transactions.len();
    if n > MAX_BLOCK_TXS {
        return Err(BlockError::TooManyTransactions(n));
    }
    let size = block.encoded_len();
    if size > MAX_BLOCK_BYTES {
        return Err(BlockError::TooLarge(size));
    }
    if tx_root(&block.transactions) != block.header.tx_root {
        return Err(BlockError::TxRootMismatch);
    }
    let mut seen = std::collections::HashSet::with_capacity(n);
    for (index, tx) in block.transactions.iter().enumerate() {
        if !seen.insert(tx.id()) {
            return Err(BlockError::DuplicateTransaction(tx.id()));
        }
        check_tx_stateless(params, tx).map_err(|error| BlockError::InvalidTransaction { index, error })?;
    }
    match cache {
        Some(cache) => verifier.verify_txs_cached(&block.transactions, &params.genesis_hash, cache),
        None => verifier.verify_txs(&block.transactions, &params.genesis_hash),
    }
    .map_err(BlockError::InvalidSignature)
}

/// Milliseconds since the Unix epoch by the local clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Address, TxKind};

    fn params() -> ChainParams {
        ChainParams {
            chain_id: 9,
            target_block_time_ms: 1000,
            initial_difficulty: 100,
            block_reward: 50,
            min_fee: 10,
            genesis_hash: Hash::ZERO,
        }
    }

    fn header(height: u64, ts: u64, difficulty: u64) -> BlockHeader {
        BlockHeader {
            version: ENCODING_VERSION,
            height,
            parent: Hash::ZERO,
            timestamp_ms: ts,
            difficulty,
            miner: Address::default(),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            nonce: 0,
        }
    }

    fn mine(mut h: BlockHeader) -> BlockHeader {
        while !meets_difficulty(&h.hash(), h.difficulty) {
            h.nonce += 1;
        }
        h
    }

    #[test]
    fn pow_is_checked() {
        let p = params();
        let good = mine(header(1, 1000, 1000));
        assert_eq!(check_header_stateless(&p, &good, 1000), Ok(()));
        let mut bad = good;
        // Find a nonce that does not meet the difficulty.
        while meets_difficulty(&bad.hash(), bad.difficulty) {
            bad.nonce += 1;
        }
        assert_eq!(check_header_stateless(&p, &bad, 1000), Err(BlockError::InsufficientWork { difficulty: 1000 }));
        assert!(check_header_stateless(&p, &bad, 1000).unwrap_err().peer_action() == Some(PeerAction::Fatal));
    }

    #[test]
    fn difficulty_one_accepts_everything_and_zero_is_refused() {
        assert!(meets_difficulty(&Hash([0xff; 32]), 1));
        assert!(!meets_difficulty(&Hash([0xff; 32]), 2));
        let h = header(1, 0, 0);
        assert_eq!(check_header_stateless(&params(), &h, 0), Err(BlockError::DifficultyTooLow(0)));
    }

    #[test]
    fn future_timestamps_are_refused_without_penalty() {
        let p = params();
        assert_eq!(p.max_future_drift_ms(), 3_000, "3 target block times of 1 s");
        let h = mine(header(1, 100_000, 1));
        let err = check_header_stateless(&p, &h, 100_000 - 3_000 - 1).unwrap_err();
        assert_eq!(err, BlockError::TimestampInFuture { timestamp_ms: 100_000, now_ms: 96_999 });
        assert_eq!(err.peer_action(), None);
        assert_eq!(check_header_stateless(&p, &h, 100_000 - 3_000), Ok(()));
        // The limit is never below the clock-skew floor, and saturates instead of overflowing.
        let fast = ChainParams { target_block_time_ms: 100, ..params() };
        assert_eq!(fast.max_future_drift_ms(), MIN_FUTURE_LIMIT_MS);
        assert!(matches!(
            check_header_stateless(&fast, &h, 100_000 - 1_001),
            Err(BlockError::TimestampInFuture { .. })
        ));
        assert_eq!(check_header_stateless(&fast, &h, 100_000 - 1_000), Ok(()));
        let slow = ChainParams { target_block_time_ms: u64::MAX, ..params() };
        assert_eq!(slow.max_future_drift_ms(), u64::MAX);
        let far = mine(header(1, u64::MAX, 1));
        assert_eq!(check_header_stateless(&slow, &far, 0), Ok(()));
        assert!(check_header_stateless(&p, &far, u64::MAX - 3_001).is_err());
    }

    #[test]
    fn version_and_height_zero_are_refused() {
        let p = params();
        let mut h = header(1, 0, 1);
        h.version = 2;
        assert_eq!(check_header_stateless(&p, &h, 0), Err(BlockError::UnsupportedVersion(2)));
        assert_eq!(check_header_stateless(&p, &header(0, 0, 1), 0), Err(BlockError::NotGenesis));
    }

    /// Blocks `1..=n` at `gap` ms apart and difficulty `d`, after a genesis at 0.
    fn chain(n: u64, gap: u64, d: u64) -> Vec<BlockHeader> {
        let mut v = vec![header(0, 0, 100)];
        v.extend((1..=n).map(|h| header(h, 1_000_000 + h * gap, d)));
        v
    }

    #[test]
    fn context_rules() {
        let p = params();
        let c = chain(70, 1_000, 800);
        let (parent, earlier) = c.split_last().unwrap();
        let ctx = HeaderContext { parent, earlier };
        let want = ctx.next_difficulty(&p);
        assert_eq!(want, 800, "on target: unchanged");
        let ts = parent.timestamp_ms + 1_000;
        assert_eq!(check_header_context(&p, &header(71, ts, want), &ctx), Ok(()));
        assert_eq!(
            check_header_context(&p, &header(72, ts, want), &ctx),
            Err(BlockError::WrongHeight { parent: 70, got: 72 })
        );
        assert_eq!(
            check_header_context(&p, &header(71, ts, want + 1), &ctx),
            Err(BlockError::WrongDifficulty { expected: want, got: want + 1 })
        );
        assert_eq!(
            check_header_context(&p, &header(71, ts, want - 1), &ctx),
            Err(BlockError::WrongDifficulty { expected: want, got: want - 1 })
        );
        // Median of the last 11 (blocks 60..=70): block 65's timestamp.
        let median_ms = 1_000_000 + 65 * 1_000;
        assert_eq!(ctx.median_time_past(), median_ms);
        assert_eq!(
            check_header_context(&p, &header(71, median_ms, want), &ctx),
            Err(BlockError::TimestampTooOld { timestamp_ms: median_ms, median_ms })
        );
        assert_eq!(check_header_context(&p, &header(71, median_ms + 1, want), &ctx), Ok(()));
        // A parent at u64::MAX height has no valid child (and no overflow).
        let top = header(u64::MAX, 5, 1);
        let ctx = HeaderContext { parent: &top, earlier: &[] };
        assert!(matches!(check_header_context(&p, &header(0, 6, 100), &ctx), Err(BlockError::WrongHeight { .. })));
    }

    #[test]
    fn retarget_follows_the_window() {
        let p = params();
        let next = |c: &[BlockHeader]| {
            let (parent, earlier) = c.split_last().unwrap();
            next_difficulty(&p, parent, earlier)
        };
        // On target: unchanged; twice as fast: doubled; twice as slow: halved.
        assert_eq!(next(&chain(70, 1_000, 800)), 800);
        assert_eq!(next(&chain(70, 500, 800)), 1600);
        assert_eq!(next(&chain(70, 2_000, 800)), 400);
        // Solve times above 6T count as 6T: at most a sixth per window.
        assert_eq!(next(&chain(70, 100_000, 600)), 100);
        // Genesis and block 1 have no solve time in the window: their children get the initial
        // difficulty; block 2's child has one solve time (genesis is never in the window).
        assert_eq!(next(&chain(0, 1_000, 800)), 100);
        assert_eq!(next(&chain(1, 1_000, 800)), 100);
        assert_eq!(next(&chain(2, 250, 800)), 3200);
        // Only the last 61 headers count, whatever the caller passes.
        let mut long = chain(200, 1_000, 800);
        for h in &mut long[1..100] {
            h.timestamp_ms = 1;
        }
        assert_eq!(next(&long), 800);
        // Never below the minimum, never overflowing.
        assert_eq!(next(&chain(70, 100_000, 1)), MIN_DIFFICULTY);
        assert_eq!(next(&chain(70, 1, u64::MAX)), u64::MAX);
    }

    #[test]
    fn timestamps_cannot_walk_the_retarget_down() {
        // The attack on the rule LWMA replaced: +3T then back 2T, over and over, advancing 0.5T per
        // block. Under LWMA the stamped-back blocks count as 1 ms solve times and raise the
        // difficulty; on balance the window sees 0.5T per block and doubles the difficulty.
        let p = params();
        let mut c = chain(61, 1_000, 800);
        let base = c.last().unwrap().timestamp_ms;
        let mut lowest = u64::MAX;
        for i in 1..=200u64 {
            let ts = base + i * 500 + if i % 2 == 1 { 2_500 } else { 0 };
            let (parent, earlier) = c.split_last().unwrap();
            let d = next_difficulty(&p, parent, earlier);
            lowest = lowest.min(d);
            c.push(header(61 + i, ts, d));
        }
        let last = c.last().unwrap().difficulty;
        assert!(lowest >= 700, "the first +3T gap costs at most 1/8: lowest {lowest}");
        assert!(last >= 1_500, "0.5T per block doubles the difficulty: {last}");
    }

    #[test]
    fn median_of_recent_times() {
        assert_eq!(median_time(&[5, 1, 3]), 3);
        assert_eq!(median_time(&[]), 0);
    }

    fn tx(chain_id: u32, fee: u128, amount: u128) -> Transaction {
        Transaction {
            chain_id,
            from: Address([1; 32]),
            nonce: 0,
            fee,
            kind: TxKind::Transfer { to: Address([2; 32]), amount },
            signature: [0; 64],
        }
    }

    #[test]
    fn stateless_tx_rules() {
        let p = params();
        assert_eq!(check_tx_stateless(&p, &tx(9, 10, 1)), Ok(()));
        let e = check_tx_stateless(&p, &tx(8, 10, 1)).unwrap_err();
        assert_eq!(e, TxError::WrongChainId { expected: 9, got: 8 });
        assert_eq!(e.peer_action(), Some(PeerAction::LowTolerance));
        let e = check_tx_stateless(&p, &tx(9, 9, 1)).unwrap_err();
        assert_eq!(e, TxError::FeeTooLow { min: 10, got: 9 });
        assert_eq!(e.peer_action(), None, "a merely low fee is not misbehaviour");
        assert_eq!(check_tx_stateless(&p, &tx(9, u128::MAX, 1)), Err(TxError::CostOverflow));
    }

    #[test]
    fn body_rules() {
        let p = params();
        let kp = crate::keys::Keypair::from_seed(&[3; 32]);
        let mut t = tx(9, 10, 1);
        t.from = kp.address();
        kp.sign_tx(&mut t, &p.genesis_hash);
        let mut block = Block { header: header(1, 0, 1), transactions: vec![t] };
        block.header.tx_root = tx_root(&block.transactions);
        let v = Verifier::default();
        assert!(check_body(&p, &block, &v, None).is_ok());

        let mut bad_root = block.clone();
        bad_root.header.tx_root = Hash([1; 32]);
        assert_eq!(check_body(&p, &bad_root, &v, None), Err(BlockError::TxRootMismatch));

        let mut dup = block.clone();
        dup.transactions.push(t);
        dup.header.tx_root = tx_root(&dup.transactions);
        assert_eq!(check_body(&p, &dup, &v, None), Err(BlockError::DuplicateTransaction(t.id())));

        let mut bad_sig = block.clone();
        bad_sig.transactions[0].signature[0] ^= 1;
        bad_sig.header.tx_root = tx_root(&bad_sig.transactions);
        assert!(matches!(check_body(&p, &bad_sig, &v, None), Err(BlockError::InvalidSignature(_))));

        // Signed for another network with the same chain id: the signature does not verify here.
        let mut other_network = block.clone();
        kp.sign_tx(&mut other_network.transactions[0], &Hash([0x42; 32]));
        other_network.header.tx_root = tx_root(&other_network.transactions);
        assert!(matches!(check_body(&p, &other_network, &v, None), Err(BlockError::InvalidSignature(_))));

        let mut low_fee = block.clone();
        low_fee.transactions[0].fee = 1;
        kp.sign_tx(&mut low_fee.transactions[0], &p.genesis_hash);
        low_fee.header.tx_root = tx_root(&low_fee.transactions);
        assert!(matches!(
            check_body(&p, &low_fee, &v, None),
            Err(BlockError::InvalidTransaction { index: 0, error: TxError::FeeTooLow { .. } })
        ));
    }
}
