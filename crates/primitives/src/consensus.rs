//! Consensus rules that need no database: proof of work, difficulty retargeting, timestamp rules,
//! header and body checks, and stateless transaction checks. Every node must agree on these
//! byte for byte; each rule has a unit test that feeds it the invalid case.
//!
//! Proof of work: the first 16 bytes of the block hash, read as a big-endian `u128`, must not exceed
//! `floor((2^128 - 1) / difficulty)`. The work of a block is its difficulty; fork choice sums it.

use thiserror::Error;

use super::encoding::DecodeError;
use super::types::{Block, BlockHeader, ENCODING_VERSION, Hash, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, Transaction, tx_root};
use crate::errors::PeerAction;
use crate::verify::{InvalidSignature, Path, SigCache, SignatureError, Verifier};

/// A block may be at most this far ahead of our clock (milliseconds).
pub const MAX_FUTURE_DRIFT_MS: u64 = 15_000;
/// A block's timestamp must exceed the median of this many ancestors' timestamps.
pub const MEDIAN_TIME_SPAN: usize = 11;
/// Difficulty never goes below this.
pub const MIN_DIFFICULTY: u64 = 1;
/// Damping of the per-block retarget: one block moves difficulty by at most 1/8 up and 2/8 down.
pub const RETARGET_DAMPING: u64 = 8;
/// Observed block times are clamped to this many target times before retargeting.
pub const RETARGET_MAX_RATIO: u64 = 3;

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
    /// Timestamp too far ahead of our clock; may become valid later.
    #[error("timestamp {timestamp_ms} is more than {MAX_FUTURE_DRIFT_MS} ms ahead of local time {now_ms}")]
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

/// Difficulty required of the child of `parent`.
///
/// `grandparent_ts` is the timestamp of `parent`'s parent (`None` when `parent` is genesis). The
/// observed time `t = parent.ts - grandparent.ts` is clamped to `[0, 3T]` and the difficulty moves
/// by `d * (T - t) / (8T)`: linear in `t`, so the average block time converges on `T`; at most
/// +1/8 and -2/8 per block. Small difficulties move by at least one so they can grow from 1.
pub fn next_difficulty(params: &ChainParams, parent: &BlockHeader, grandparent_ts: Option<u64>) -> u64 {
    let Some(gp_ts) = grandparent_ts else {
        return params.initial_difficulty.max(MIN_DIFFICULTY);
    };
    let target = params.target_block_time_ms.max(1) as i128;
    let observed = (parent.timestamp_ms.saturating_sub(gp_ts) as i128).min(target * RETARGET_MAX_RATIO as i128);
    let d = parent.difficulty as i128;
    let mut delta = d * (target - observed) / (target * RETARGET_DAMPING as i128);
    if delta == 0 && observed != target {
        delta = if observed < target { 1 } else { -1 };
    }
    (d + delta).clamp(MIN_DIFFICULTY as i128, u64::MAX as i128) as u64
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

/// Header checks that need neither ancestors nor state: version, PoW, clock drift.
pub fn check_header_stateless(header: &BlockHeader, now_ms: u64) -> Result<(), BlockError> {
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
    if header.timestamp_ms > now_ms.saturating_add(MAX_FUTURE_DRIFT_MS) {
        return Err(BlockError::TimestampInFuture { timestamp_ms: header.timestamp_ms, now_ms });
    }
    Ok(())
}

/// What a header is checked against: its parent and the timestamps before it.
pub struct HeaderContext<'a> {
    /// The parent header.
    pub parent: &'a BlockHeader,
    /// Timestamp of the parent's parent (`None` if the parent is genesis).
    pub grandparent_ts: Option<u64>,
    /// Timestamps of up to [`MEDIAN_TIME_SPAN`] most recent ancestors, parent included.
    pub recent_timestamps: &'a [u64],
}

/// Header checks against the parent: height, difficulty, median time.
pub fn check_header_context(
    params: &ChainParams,
    header: &BlockHeader,
    ctx: &HeaderContext<'_>,
) -> Result<(), BlockError> {
    if header.height != ctx.parent.height + 1 {
        return Err(BlockError::WrongHeight { parent: ctx.parent.height, got: header.height });
    }
    let expected = next_difficulty(params, ctx.parent, ctx.grandparent_ts);
    if header.difficulty != expected {
        return Err(BlockError::WrongDifficulty { expected, got: header.difficulty });
    }
    let median_ms = median_time(ctx.recent_timestamps);
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
        Some(cache) => verifier.verify_txs_cached(&block.transactions, cache),
        None => verifier.verify_txs(&block.transactions),
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
        let good = mine(header(1, 1000, 1000));
        assert_eq!(check_header_stateless(&good, 1000), Ok(()));
        let mut bad = good;
        // Find a nonce that does not meet the difficulty.
        while meets_difficulty(&bad.hash(), bad.difficulty) {
            bad.nonce += 1;
        }
        assert_eq!(check_header_stateless(&bad, 1000), Err(BlockError::InsufficientWork { difficulty: 1000 }));
        assert!(check_header_stateless(&bad, 1000).unwrap_err().peer_action() == Some(PeerAction::Fatal));
    }

    #[test]
    fn difficulty_one_accepts_everything_and_zero_is_refused() {
        assert!(meets_difficulty(&Hash([0xff; 32]), 1));
        assert!(!meets_difficulty(&Hash([0xff; 32]), 2));
        let h = header(1, 0, 0);
        assert_eq!(check_header_stateless(&h, 0), Err(BlockError::DifficultyTooLow(0)));
    }

    #[test]
    fn future_timestamps_are_refused_without_penalty() {
        let h = mine(header(1, 100_000, 1));
        let err = check_header_stateless(&h, 100_000 - MAX_FUTURE_DRIFT_MS - 1).unwrap_err();
        assert!(matches!(err, BlockError::TimestampInFuture { .. }));
        assert_eq!(err.peer_action(), None);
        assert_eq!(check_header_stateless(&h, 100_000 - MAX_FUTURE_DRIFT_MS), Ok(()));
    }

    #[test]
    fn version_and_height_zero_are_refused() {
        let mut h = header(1, 0, 1);
        h.version = 2;
        assert_eq!(check_header_stateless(&h, 0), Err(BlockError::UnsupportedVersion(2)));
        assert_eq!(check_header_stateless(&header(0, 0, 1), 0), Err(BlockError::NotGenesis));
    }

    #[test]
    fn context_rules() {
        let p = params();
        let parent = header(5, 10_000, 100);
        let ts = [9_000, 9_500, 10_000];
        let ctx = HeaderContext { parent: &parent, grandparent_ts: Some(9_500), recent_timestamps: &ts };
        let want = next_difficulty(&p, &parent, Some(9_500));
        assert_eq!(check_header_context(&p, &header(6, 10_001, want), &ctx), Ok(()));
        assert_eq!(
            check_header_context(&p, &header(7, 10_001, want), &ctx),
            Err(BlockError::WrongHeight { parent: 5, got: 7 })
        );
        assert_eq!(
            check_header_context(&p, &header(6, 10_001, want + 1), &ctx),
            Err(BlockError::WrongDifficulty { expected: want, got: want + 1 })
        );
        assert_eq!(
            check_header_context(&p, &header(6, 9_500, want), &ctx),
            Err(BlockError::TimestampTooOld { timestamp_ms: 9_500, median_ms: 9_500 })
        );
    }

    #[test]
    fn retarget_moves_towards_target_within_bounds() {
        let p = params();
        let parent = header(5, 10_000, 800);
        // Fast block: up, by at most 1/8.
        assert_eq!(next_difficulty(&p, &parent, Some(10_000)), 900);
        // On target: unchanged.
        assert_eq!(next_difficulty(&p, &parent, Some(9_000)), 800);
        // Very slow: down by at most 2/8.
        assert_eq!(next_difficulty(&p, &parent, Some(0)), 600);
        // Slow by half a target: down 1/16.
        assert_eq!(next_difficulty(&p, &parent, Some(8_500)), 750);
        // Genesis child: the initial difficulty.
        assert_eq!(next_difficulty(&p, &parent, None), 100);
        // Small difficulties still move, and never below the minimum.
        assert_eq!(next_difficulty(&p, &header(5, 10_000, 1), Some(10_000)), 2);
        assert_eq!(next_difficulty(&p, &header(5, 10_000, 1), Some(0)), 1);
        // A timestamp below the grandparent's counts as zero elapsed time.
        assert_eq!(next_difficulty(&p, &parent, Some(20_000)), 900);
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
        kp.sign_tx(&mut t);
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

        let mut low_fee = block.clone();
        low_fee.transactions[0].fee = 1;
        kp.sign_tx(&mut low_fee.transactions[0]);
        low_fee.header.tx_root = tx_root(&low_fee.transactions);
        assert!(matches!(
            check_body(&p, &low_fee, &v, None),
            Err(BlockError::InvalidTransaction { index: 0, error: TxError::FeeTooLow { .. } })
        ));
    }
}
