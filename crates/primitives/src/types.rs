//! Chain data types: hashes, addresses, transactions, block headers and blocks, with their canonical
//! encodings (see `protocols/encoding.md`).
//!
//! Identities:
//! - a transaction's id ([`Transaction::id`]) is BLAKE3 of its *unsigned* encoding, so re-encoding or
//!   mutating a signature never changes which transaction it is;
//! - a transaction's signature covers its unsigned encoding followed by the genesis hash of the
//!   network it is for ([`Transaction::signing_bytes`]): the chain id alone does not tell apart two
//!   networks that share it, the genesis hash does, so a transaction never replays between them;
//! - a transaction's witness hash ([`Transaction::witness_hash`]) is BLAKE3 of the full encoding,
//!   signature included; the block's transactions root commits to witness hashes, so the body is
//!   committed byte for byte;
//! - a block's hash is BLAKE3 of its header encoding and is also its proof-of-work hash.

use std::fmt;
use std::str::FromStr;

use bech32::{Bech32m, Hrp, primitives::decode::CheckedHrpstring};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::encoding::{DecodeError, Reader, Writer};

/// Encoding version of transactions and headers that this node writes and accepts.
pub const ENCODING_VERSION: u8 = 1;
/// Kind tag of a plain value transfer.
pub const TX_KIND_TRANSFER: u8 = 0;
/// Encoded size of a transfer transaction.
pub const TRANSFER_TX_LEN: usize = 1 + 1 + 4 + 32 + 8 + 16 + 32 + 16 + 64;
/// Encoded size of a block header.
pub const HEADER_LEN: usize = 1 + 8 + 32 + 8 + 8 + 32 + 32 + 32 + 8;
/// Offset of the PoW nonce inside an encoded header (it is the last field).
pub const HEADER_NONCE_OFFSET: usize = HEADER_LEN - 8;
/// Most transactions one block may carry (decoders refuse more before allocating).
pub const MAX_BLOCK_TXS: usize = 20_000;
/// Most bytes one encoded block may take.
pub const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;
/// Largest encoded transaction any kind may have (decoders refuse longer length prefixes).
pub const MAX_TX_LEN: usize = 16 * 1024;
/// Human-readable part of addresses.
pub const ADDRESS_HRP: &str = "vis";

/// A 32-byte BLAKE3 digest, shown as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash (parent of nothing, root of nothing).
    pub const ZERO: Hash = Hash([0; 32]);
    /// BLAKE3 of `data`.
    pub fn digest(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// First 8 hex characters, for logs and topic names.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", hex::encode(self.0))
    }
}

/// Why a string is not a hash.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseHashError {
    /// Not hex.
    #[error("hash is not valid hex: {0}")]
    Hex(String),
    /// Wrong length.
    #[error("hash must be 32 bytes (64 hex characters), got {0} bytes")]
    Length(usize),
}

impl FromStr for Hash {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(s).map_err(|e| ParseHashError::Hex(e.to_string()))?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| ParseHashError::Length(bytes.len()))?;
        Ok(Hash(arr))
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An account: an ed25519 public key. Shown as bech32m with the `vis` prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 32]);

impl Address {
    /// The raw public key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// Checksum or character set wrong: most often a typo.
    #[error("invalid address {input:?}: {reason} (check for a typo; addresses look like vis1...)")]
    Invalid {
        /// What was given.
        input: String,
        /// What the bech32m decoder said.
        reason: String,
    },
    /// Valid bech32m but for another network or purpose.
    #[error("address {input:?} has prefix {hrp:?}, expected \"vis\"")]
    WrongPrefix {
        /// What was given.
        input: String,
        /// The prefix found.
        hrp: String,
    },
    /// Valid bech32m but not 32 bytes.
    #[error("address {input:?} holds {len} bytes, expected 32")]
    WrongLength {
        /// What was given.
        input: String,
        /// Bytes found.
        len: usize,
    },
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(ADDRESS_HRP);
        bech32::encode_lower_to_fmt::<Bech32m, _>(f, hrp, &self.0).map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let checked = CheckedHrpstring::new::<Bech32m>(s)
            .map_err(|e| AddressError::Invalid { input: s.to_string(), reason: e.to_string() })?;
        if checked.hrp().to_lowercase() != ADDRESS_HRP {
            return Err(AddressError::WrongPrefix { input: s.to_string(), hrp: checked.hrp().to_string() });
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::WrongLength { input: s.to_string(), len: bytes.len() })?;
        // BIP-173/350: the 4 bits left over after the 32nd byte must be zero. Without this check
        // 16 different strings (with valid checksums) would name the same address.
        checked
            .validate_segwit_padding()
            .map_err(|e| AddressError::Invalid { input: s.to_string(), reason: e.to_string() })?;
        Ok(Address(arr))
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a transaction does. New kinds get new tags; old encodings never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxKind {
    /// Move `amount` base units from the sender to `to`.
    Transfer {
        /// Recipient.
        to: Address,
        /// Base units moved.
        amount: u128,
    },
}

impl TxKind {
    /// The kind tag written on the wire.
    pub fn tag(&self) -> u8 {
        match self {
            TxKind::Transfer { .. } => TX_KIND_TRANSFER,
        }
    }
}

/// A signed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Chain the transaction is valid on (replay protection across networks).
    pub chain_id: u32,
    /// Sender; also the public key the signature verifies under.
    pub from: Address,
    /// Sender's nonce; must equal the account nonce when applied.
    pub nonce: u64,
    /// Fee in base units, paid to the miner.
    pub fee: u128,
    /// Kind-specific body.
    pub kind: TxKind,
    /// ed25519 signature over [`Transaction::signing_bytes`] (which binds the genesis hash).
    pub signature: [u8; 64],
}

impl Transaction {
    fn write_unsigned(&self, w: &mut Writer) {
        w.u8(ENCODING_VERSION);
        w.u8(self.kind.tag());
        w.u32(self.chain_id);
        w.bytes(&self.from.0);
        w.u64(self.nonce);
        w.u128(self.fee);
        match self.kind {
            TxKind::Transfer { to, amount } => {
                w.bytes(&to.0);
                w.u128(amount);
            }
        }
    }

    /// The message the signature covers on the network whose genesis hash is `genesis_hash`: the
    /// encoding without the signature, then the 32 bytes of the genesis hash (consensus: see
    /// `protocols/encoding.md`, "Signing message"). The genesis hash is not part of the encoding
    /// or of the id; a node supplies its own, so a transaction signed for another network that
    /// shares the chain id fails verification.
    pub fn signing_bytes(&self, genesis_hash: &Hash) -> Vec<u8> {
        let mut w = Writer::with_capacity(TRANSFER_TX_LEN - 64 + 32);
        self.write_unsigned(&mut w);
        w.bytes(&genesis_hash.0);
        w.finish()
    }

    /// Appends the full canonical encoding to `w`.
    pub fn write(&self, w: &mut Writer) {
        self.write_unsigned(w);
        w.bytes(&self.signature);
    }

    /// The full canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(TRANSFER_TX_LEN);
        self.write(&mut w);
        w.finish()
    }

    /// Length of the full encoding.
    pub fn encoded_len(&self) -> usize {
        match self.kind {
            TxKind::Transfer { .. } => TRANSFER_TX_LEN,
        }
    }

    /// Decodes one transaction from the reader.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8()?;
        if version != ENCODING_VERSION {
            return Err(DecodeError::UnknownVersion { what: "transaction", version });
        }
        let tag = r.u8()?;
        if tag != TX_KIND_TRANSFER {
            return Err(DecodeError::UnknownTxKind(tag));
        }
        let chain_id = r.u32()?;
        let from = Address(r.array()?);
        let nonce = r.u64()?;
        let fee = r.u128()?;
        let to = Address(r.array()?);
        let amount = r.u128()?;
        let signature = r.array()?;
        Ok(Transaction { chain_id, from, nonce, fee, kind: TxKind::Transfer { to, amount }, signature })
    }

    /// Decodes exactly one transaction; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tx = Self::read(&mut r)?;
        r.finish()?;
        Ok(tx)
    }

    /// The transaction id: BLAKE3 of the unsigned encoding.
    pub fn id(&self) -> Hash {
        let mut w = Writer::with_capacity(TRANSFER_TX_LEN);
        self.write_unsigned(&mut w);
        Hash::digest(&w.finish())
    }

    /// BLAKE3 of the full encoding, signature included (leaf of the transactions root).
    pub fn witness_hash(&self) -> Hash {
        Hash::digest(&self.encode())
    }

    /// Recipient and amount, for kinds that move value.
    pub fn transfer(&self) -> (Address, u128) {
        match self.kind {
            TxKind::Transfer { to, amount } => (to, amount),
        }
    }

    /// Amount plus fee: what the sender must hold. `None` on overflow (never valid).
    pub fn total_cost(&self) -> Option<u128> {
        let (_, amount) = self.transfer();
        amount.checked_add(self.fee)
    }
}

/// A block header. Its BLAKE3 hash is the block hash and the proof-of-work hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Encoding/consensus version.
    pub version: u8,
    /// Height; genesis is 0.
    pub height: u64,
    /// Hash of the parent block.
    pub parent: Hash,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Expected hashes to find this block; the PoW target is `floor((2^128-1) / difficulty)`.
    pub difficulty: u64,
    /// Receives the block reward and the fees.
    pub miner: Address,
    /// Binary Merkle root of the transactions' witness hashes.
    pub tx_root: Hash,
    /// Commitment to every account after this block (see `state::lthash`).
    pub state_root: Hash,
    /// Proof-of-work nonce (last so that miners rewrite only the tail).
    pub nonce: u64,
}

impl BlockHeader {
    /// The canonical encoding ([`HEADER_LEN`] bytes).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut w = Writer::with_capacity(HEADER_LEN);
        self.write(&mut w);
        let mut out = [0u8; HEADER_LEN];
        out.copy_from_slice(&w.finish());
        out
    }

    /// Appends the canonical encoding to `w`.
    pub fn write(&self, w: &mut Writer) {
        w.u8(self.version);
        w.u64(self.height);
        w.bytes(&self.parent.0);
        w.u64(self.timestamp_ms);
        w.u64(self.difficulty);
        w.bytes(&self.miner.0);
        w.bytes(&self.tx_root.0);
        w.bytes(&self.state_root.0);
        w.u64(self.nonce);
    }

    /// Decodes a header from the reader.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8()?;
        if version != ENCODING_VERSION {
            return Err(DecodeError::UnknownVersion { what: "block header", version });
        }
        Ok(BlockHeader {
            version,
            height: r.u64()?,
            parent: Hash(r.array()?),
            timestamp_ms: r.u64()?,
            difficulty: r.u64()?,
            miner: Address(r.array()?),
            tx_root: Hash(r.array()?),
            state_root: Hash(r.array()?),
            nonce: r.u64()?,
        })
    }

    /// Decodes exactly one header.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let h = Self::read(&mut r)?;
        r.finish()?;
        Ok(h)
    }

    /// The block hash (BLAKE3 of the encoding).
    pub fn hash(&self) -> Hash {
        Hash::digest(&self.encode())
    }
}

/// A block: header plus transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// Transactions in execution order.
    pub transactions: Vec<Transaction>,
}

impl Block {
    /// The block hash.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Appends the body encoding: `u32` count, then each transaction as `u32` length + bytes.
    pub fn write_body(txs: &[Transaction], w: &mut Writer) {
        w.u32(txs.len() as u32);
        for tx in txs {
            w.u32(tx.encoded_len() as u32);
            tx.write(w);
        }
    }

    /// The canonical encoding: header, then body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(HEADER_LEN + 4 + self.transactions.len() * (4 + TRANSFER_TX_LEN));
        self.header.write(&mut w);
        Self::write_body(&self.transactions, &mut w);
        w.finish()
    }

    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + self.transactions.iter().map(|t| 4 + t.encoded_len()).sum::<usize>()
    }

    /// Decodes a body (transaction list) from the reader, refusing more than [`MAX_BLOCK_TXS`].
    pub fn read_body(r: &mut Reader<'_>) -> Result<Vec<Transaction>, DecodeError> {
        let count = r.u32()? as usize;
        if count > MAX_BLOCK_TXS {
            return Err(DecodeError::TooLarge {
                what: "block transaction count",
                got: count as u64,
                cap: MAX_BLOCK_TXS as u64,
            });
        }
        // Each transaction takes at least its 4-byte prefix plus one byte; a count that cannot
        // fit in what is left is refused before allocating.
        if count > r.remaining() / 5 {
            return Err(DecodeError::UnexpectedEnd { offset: r.position(), needed: count * 5 - r.remaining() });
        }
        let mut txs = Vec::with_capacity(count);
        for _ in 0..count {
            let bytes = r.length_prefixed(MAX_TX_LEN, "transaction length")?;
            let len = bytes.len();
            let mut inner = Reader::new(bytes);
            let tx = Transaction::read(&mut inner)?;
            let actual = inner.position();
            if actual != len {
                return Err(DecodeError::LengthMismatch { what: "transaction", declared: len, actual });
            }
            txs.push(tx);
        }
        Ok(txs)
    }

    /// Decodes exactly one block, refusing inputs above [`MAX_BLOCK_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(DecodeError::TooLarge {
                what: "block size",
                got: bytes.len() as u64,
                cap: MAX_BLOCK_BYTES as u64,
            });
        }
        let mut r = Reader::new(bytes);
        let header = BlockHeader::read(&mut r)?;
        let transactions = Self::read_body(&mut r)?;
        r.finish()?;
        Ok(Block { header, transactions })
    }
}

/// Binary Merkle root over `leaves` with BLAKE3.
///
/// Internal nodes are `BLAKE3(0x01 || left || right)`; a node without a sibling is carried up
/// unchanged (never duplicated, so two different lists cannot share a root the way Bitcoin's
/// duplicated-last-leaf rule allowed). The root of no leaves is [`Hash::ZERO`].
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::ZERO;
    }
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [l, r] => {
                    let mut h = blake3::Hasher::new();
                    h.update(&[0x01]);
                    h.update(&l.0);
                    h.update(&r.0);
                    next.push(Hash(*h.finalize().as_bytes()));
                }
                [single] => next.push(*single),
                _ => unreachable!("chunks(2) yields one or two items"),
            }
        }
        level = next;
    }
    level[0]
}

/// The transactions root of a body.
pub fn tx_root(txs: &[Transaction]) -> Hash {
    let leaves: Vec<Hash> = txs.iter().map(Transaction::witness_hash).collect();
    merkle_root(&leaves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_address() -> impl Strategy<Value = Address> {
        any::<[u8; 32]>().prop_map(Address)
    }

    prop_compose! {
        fn arb_tx()(chain_id in any::<u32>(), from in arb_address(), nonce in any::<u64>(),
                    fee in any::<u128>(), to in arb_address(), amount in any::<u128>(),
                    sig in proptest::collection::vec(any::<u8>(), 64)) -> Transaction {
            let mut signature = [0u8; 64];
            signature.copy_from_slice(&sig);
            Transaction { chain_id, from, nonce, fee, kind: TxKind::Transfer { to, amount }, signature }
        }
    }

    prop_compose! {
        fn arb_header()(height in any::<u64>(), parent in any::<[u8; 32]>(), timestamp_ms in any::<u64>(),
                        difficulty in any::<u64>(), miner in arb_address(), tx_root in any::<[u8; 32]>(),
                        state_root in any::<[u8; 32]>(), nonce in any::<u64>()) -> BlockHeader {
            BlockHeader { version: ENCODING_VERSION, height, parent: Hash(parent), timestamp_ms, difficulty,
                          miner, tx_root: Hash(tx_root), state_root: Hash(state_root), nonce }
        }
    }

    proptest! {
        #[test]
        fn transaction_round_trips(tx in arb_tx()) {
            let bytes = tx.encode();
            prop_assert_eq!(bytes.len(), TRANSFER_TX_LEN);
            prop_assert_eq!(Transaction::decode(&bytes).unwrap(), tx);
        }

        #[test]
        fn block_round_trips(header in arb_header(), txs in proptest::collection::vec(arb_tx(), 0..20)) {
            let block = Block { header, transactions: txs };
            let bytes = block.encode();
            prop_assert_eq!(bytes.len(), block.encoded_len());
            let back = Block::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &block);
            prop_assert_eq!(back.encode(), bytes);
        }

        #[test]
        fn decoders_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Transaction::decode(&bytes);
            let _ = BlockHeader::decode(&bytes);
            let _ = Block::decode(&bytes);
        }

        #[test]
        fn address_round_trips(a in arb_address()) {
            let s = a.to_string();
            prop_assert!(s.starts_with("vis1"));
            prop_assert_eq!(s.parse::<Address>().unwrap(), a);
        }
    }

    #[test]
    fn mistyped_address_is_rejected_with_a_clear_error() {
        let s = Address([7; 32]).to_string();
        let mut chars: Vec<char> = s.chars().collect();
        let i = 10;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        let err = typo.parse::<Address>().unwrap_err();
        assert!(matches!(err, AddressError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("typo"));
        let other = bech32::encode::<Bech32m>(Hrp::parse("btc").unwrap(), &[7; 32]).unwrap();
        assert!(matches!(other.parse::<Address>(), Err(AddressError::WrongPrefix { .. })));
        let short = bech32::encode::<Bech32m>(Hrp::parse("vis").unwrap(), &[7; 20]).unwrap();
        assert!(matches!(short.parse::<Address>(), Err(AddressError::WrongLength { len: 20, .. })));
        let bech32_not_m = bech32::encode::<bech32::Bech32>(Hrp::parse("vis").unwrap(), &[7; 32]).unwrap();
        assert!(bech32_not_m.parse::<Address>().is_err());
    }

    #[test]
    fn unknown_kind_and_version_are_refused() {
        let tx = Transaction {
            chain_id: 1,
            from: Address([1; 32]),
            nonce: 0,
            fee: 1,
            kind: TxKind::Transfer { to: Address([2; 32]), amount: 5 },
            signature: [0; 64],
        };
        let mut bytes = tx.encode();
        bytes[1] = 9;
        assert_eq!(Transaction::decode(&bytes), Err(DecodeError::UnknownTxKind(9)));
        bytes[0] = 2;
        assert!(matches!(Transaction::decode(&bytes), Err(DecodeError::UnknownVersion { version: 2, .. })));
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut w = Writer::default();
        BlockHeader {
            version: 1,
            height: 1,
            parent: Hash::ZERO,
            timestamp_ms: 0,
            difficulty: 1,
            miner: Address::default(),
            tx_root: Hash::ZERO,
            state_root: Hash::ZERO,
            nonce: 0,
        }
        .write(&mut w);
        w.u32(u32::MAX);
        assert!(matches!(Block::decode(&w.finish()), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn merkle_root_shapes() {
        let a = Hash([1; 32]);
        let b = Hash([2; 32]);
        let c = Hash([3; 32]);
        assert_eq!(merkle_root(&[]), Hash::ZERO);
        assert_eq!(merkle_root(&[a]), a);
        assert_ne!(merkle_root(&[a, b]), merkle_root(&[b, a]));
        // An odd leaf is carried up, not duplicated: [a,b,c] != [a,b,c,c].
        assert_ne!(merkle_root(&[a, b, c]), merkle_root(&[a, b, c, c]));
    }
}
