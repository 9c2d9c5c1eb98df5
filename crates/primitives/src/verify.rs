//! Signature verification: the consensus rule for one signature, and the parallel verifier that
//! checks many at once with ed25519 batch verification spread over rayon.
//!
//! # The rule ("strict")
//! A signature `(R, S)` by key `A` over message `M` is valid iff
//! 1. `S` is a canonical scalar (`S < l`);
//! 2. `A` and `R` are canonical point encodings (`y < p`) that decompress, and neither is of small order;
//! 3. the *cofactored* equation `[8]([S]B - R - [k]A) = 0` holds, with `k = SHA-512(R || A || M) mod l`.
//!
//! Cofactored, because it is the only equation for which batch verification and one-by-one
//! verification agree on every input: ed25519-dalek's own `verify_batch` is cofactorless, and a
//! signature whose `R` carries a torsion component can pass a cofactorless batch while failing
//! `verify_strict` (or the other way round). A consensus rule must not depend on which path a node
//! happened to take, so both paths here check the same cofactored equation (the reasoning of
//! ZIP-215). Requirement 2 keeps the equation from being satisfiable by keys or `R`s of small order.
//!
//! Transaction ids do not cover the signature (see `chain::types`), so the torsion malleability the
//! cofactored equation allows cannot give one transaction two ids.
//!
//! # The message
//! A transaction's signature is checked over [`Transaction::signing_bytes`] for the verifying
//! node's genesis hash: every entry point here takes it. A transaction signed for another network
//! (another genesis, even with the same chain id) is a `Mismatch`. The [`SigCache`] key covers the
//! genesis hash too, so a cache can never vouch for a signature checked against another network.
//!
//! # The parallel verifier
//! Below [`DEFAULT_PARALLEL_THRESHOLD`] signatures, each is checked on the calling thread. At or above
//! it, the signatures are split into chunks (at least [`MIN_CHUNK`] each), each chunk is checked as
//! one random linear combination on a rayon worker, and a failing chunk is re-checked one by one to
//! name the culprit. The threshold is explained, with the numbers, in
//! `docs/adr/004-parallel-verification-threshold.md`.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use thiserror::Error;

use crate::types::{Hash, Transaction};

/// Below this many signatures the verifier checks them one by one on the calling thread; at or
/// above it, in parallel batches. From `benches/verify.rs` (ADR 004): one signature is checked
/// faster alone, two are a toss-up, and from 4 on the batch path wins by 1.2x or more in every
/// paired measurement, under load included (a batch shares its doublings across signatures).
pub const DEFAULT_PARALLEL_THRESHOLD: usize = 4;
/// Smallest chunk handed to one rayon task. Each batch has a fixed cost of about 1.5-2 signatures
/// (the doublings it shares, the basepoint term, the randomness, the task); at 32 that is ~5% of
/// the chunk, while 64 signatures still split across two cores (ADR 004).
pub const MIN_CHUNK: usize = 32;

/// Why a signature is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// `S` is not below the group order.
    #[error("signature scalar is not canonical")]
    NonCanonicalScalar,
    /// The public key is not a canonical encoding of a curve point.
    #[error("public key is not a valid curve point")]
    InvalidKey,
    /// The public key is a point of small order.
    #[error("public key is of small order")]
    WeakKey,
    /// `R` is not a canonical encoding of a curve point.
    #[error("signature R is not a valid curve point")]
    InvalidR,
    /// `R` is a point of small order.
    #[error("signature R is of small order")]
    WeakR,
    /// The verification equation does not hold.
    #[error("signature does not verify")]
    Mismatch,
}

/// One signature with its key and message, checked for well-formedness and ready for the equation.
pub struct Prepared {
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// True iff the 255-bit field element in `bytes` (sign bit ignored) is at least `p = 2^255 - 19`.
fn non_canonical_y(bytes: &[u8; 32]) -> bool {
    bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|b| *b == 0xff) && bytes[0] >= 0xed
}

fn decompress(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if non_canonical_y(bytes) {
        return None;
    }
    CompressedEdwardsY(*bytes).decompress()
}

/// Checks everything but the equation and computes `k`.
pub fn prepare(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> Result<Prepared, SignatureError> {
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig[32..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)).ok_or(SignatureError::NonCanonicalScalar)?;
    let a = decompress(key).ok_or(SignatureError::InvalidKey)?;
    if a.is_small_order() {
        return Err(SignatureError::WeakKey);
    }
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig[..32]);
    let r = decompress(&r_bytes).ok_or(SignatureError::InvalidR)?;
    if r.is_small_order() {
        return Err(SignatureError::WeakR);
    }
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(key);
    h.update(msg);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h.finalize());
    let k = Scalar::from_bytes_mod_order_wide(&wide);
    Ok(Prepared { a, r, s, k })
}

impl Prepared {
    /// The cofactored equation for this one signature.
    pub fn check(&self) -> Result<(), SignatureError> {
        let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &(-self.a), &self.s);
        if (sb_minus_ka - self.r).mul_by_cofactor().is_identity() { Ok(()) } else { Err(SignatureError::Mismatch) }
    }
}

/// Verifies one signature under the consensus rule.
pub fn verify_signature(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> Result<(), SignatureError> {
    prepare(key, msg, sig)?.check()
}

/// Verifies a transaction's signature on the network whose genesis hash is `genesis_hash`.
pub fn verify_tx(tx: &Transaction, genesis_hash: &Hash) -> Result<(), SignatureError> {
    verify_signature(tx.from.as_bytes(), &tx.signing_bytes(genesis_hash), &tx.signature)
}

/// Checks all prepared signatures as one random linear combination (cofactored).
///
/// Sound up to 2^-128: the 128-bit coefficients come from BLAKE3 keyed with fresh OS randomness,
/// so a peer cannot grind signatures that cancel out.
pub fn check_batch(items: &[Prepared]) -> bool {
    if items.is_empty() {
        return true;
    }
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        // Without randomness a batch proves nothing; fall back to one by one.
        return items.iter().all(|p| p.check().is_ok());
    }
    let mut xof = blake3::Hasher::new_keyed(&seed).finalize_xof();
    let zs: Vec<Scalar> = items
        .iter()
        .map(|_| {
            let mut z = [0u8; 16];
            xof.fill(&mut z);
            Scalar::from(u128::from_le_bytes(z))
        })
        .collect();
    let b_coeff: Scalar = items.iter().zip(&zs).map(|(p, z)| z * p.s).sum();
    let scalars =
        std::iter::once(-b_coeff).chain(zs.iter().copied()).chain(items.iter().zip(&zs).map(|(p, z)| z * p.k));
    let points =
        std::iter::once(ED25519_BASEPOINT_POINT).chain(items.iter().map(|p| p.r)).chain(items.iter().map(|p| p.a));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).mul_by_cofactor().is_identity()
}

/// The first invalid signature in a list, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("transaction {index}: {error}")]
pub struct InvalidSignature {
    /// Index of the culprit in the list given.
    pub index: usize,
    /// What is wrong with it.
    pub error: SignatureError,
}

/// Which path the verifier took (reported so metrics can split the timings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// One by one on the calling thread.
    Sequential,
    /// Batches on the rayon pool.
    Parallel,
    /// Every signature was found in the [`SigCache`]: nothing to verify.
    Cached,
}

/// Most entries in a [`SigCache`]: above the mempool's default cap (100,000), so every pooled
/// transaction's signature stays cached until its block arrives (~96 bytes each, ~15 MB in all).
pub const SIG_CACHE_CAP: usize = 150_000;
/// Verified-signature cache entries, in the resource registry (cap: [`SIG_CACHE_CAP`]).
pub const SIG_CACHE: crate::bounds::Resource =
    crate::bounds::Resource::new("sig_cache", "verify::SIG_CACHE_CAP", SIG_CACHE_CAP);

/// Transactions whose signatures verified, least recently used evicted first, keyed by
/// [`cache_key`]: BLAKE3 of the genesis hash and the whole encoding, signature included, so an
/// entry vouches for exactly that message (the genesis hash is part of it), key and signature
/// under the rule above. Transactions verified at mempool admission are therefore not verified
/// again when their block is imported (Bitcoin Core's signature cache does the same). Only
/// successes are cached.
pub struct SigCache {
    inner: parking_lot::Mutex<lru::LruCache<[u8; 32], ()>>,
}

impl std::fmt::Debug for SigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigCache({} entries)", self.inner.lock().len())
    }
}

impl SigCache {
    /// An empty cache of at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        let cap = std::num::NonZeroUsize::new(cap).unwrap_or(std::num::NonZeroUsize::MIN);
        SigCache { inner: parking_lot::Mutex::new(lru::LruCache::new(cap)) }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The parallel verifier.
#[derive(Debug, Clone, Copy)]
pub struct Verifier {
    /// Lists shorter than this are checked sequentially.
    pub threshold: usize,
}

impl Default for Verifier {
    fn default() -> Self {
        Self { threshold: DEFAULT_PARALLEL_THRESHOLD }
    }
}

/// The [`SigCache`] key of `tx` checked on the network of `genesis_hash`:
/// `BLAKE3(genesis_hash || full encoding)`.
pub fn cache_key(tx: &Transaction, genesis_hash: &Hash) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(genesis_hash.as_bytes());
    h.update(&tx.encode());
    *h.finalize().as_bytes()
}

fn verify_chunk(txs: &[Transaction], genesis_hash: &Hash, offset: usize) -> Result<(), InvalidSignature> {
    let mut prepared = Vec::with_capacity(txs.len());
    for (i, tx) in txs.iter().enumerate() {
        let p = prepare(tx.from.as_bytes(), &tx.signing_bytes(genesis_hash), &tx.signature)
            .map_err(|error| InvalidSignature { index: offset + i, error })?;
        prepared.push(p);
    }
    if check_batch(&prepared) {
        return Ok(());
    }
    // The batch failed: find the culprit one by one.
    for (i, p) in prepared.iter().enumerate() {
        p.check().map_err(|error| InvalidSignature { index: offset + i, error })?;
    }
    // Unreachable unless the batch's randomness was unlucky at 2^-128; every one verified.
    Ok(())
}

impl Verifier {
    /// A verifier with the given threshold.
    pub fn new(threshold: usize) -> Self {
        Self { threshold }
    }

    /// Which path a list of `n` signatures takes.
    pub fn path_for(&self, n: usize) -> Path {
        if n < self.threshold.max(1) { Path::Sequential } else { Path::Parallel }
    }

    /// Like [`Verifier::verify_txs`], but skips transactions whose [`cache_key`] is in `cache` and
    /// adds the ones that verify.
    pub fn verify_txs_cached(
        &self,
        txs: &[Transaction],
        genesis_hash: &Hash,
        cache: &SigCache,
    ) -> Result<Path, InvalidSignature> {
        let hashes: Vec<[u8; 32]> = txs.iter().map(|t| cache_key(t, genesis_hash)).collect();
        let todo: Vec<usize> = {
            let mut c = cache.inner.lock();
            (0..txs.len()).filter(|i| c.get(&hashes[*i]).is_none()).collect()
        };
        if todo.is_empty() {
            return Ok(Path::Cached);
        }
        let subset: Vec<Transaction> = todo.iter().map(|i| txs[*i]).collect();
        let path = self
            .verify_txs(&subset, genesis_hash)
            .map_err(|e| InvalidSignature { index: todo[e.index], error: e.error })?;
        let mut c = cache.inner.lock();
        for i in todo {
            c.put(hashes[i], ());
        }
        Ok(path)
    }

    /// Verifies every transaction's signature on the network of `genesis_hash`; on failure names
    /// the lowest failing index.
    pub fn verify_txs(&self, txs: &[Transaction], genesis_hash: &Hash) -> Result<Path, InvalidSignature> {
        if self.path_for(txs.len()) == Path::Sequential {
            for (index, tx) in txs.iter().enumerate() {
                verify_tx(tx, genesis_hash).map_err(|error| InvalidSignature { index, error })?;
            }
            return Ok(Path::Sequential);
        }
        let threads = rayon::current_num_threads().max(1);
        let chunk = txs.len().div_ceil(threads * 2).max(MIN_CHUNK);
        let failures: Vec<InvalidSignature> = txs
            .par_chunks(chunk)
            .enumerate()
            .filter_map(|(ci, c)| verify_chunk(c, genesis_hash, ci * chunk).err())
            .collect();
        match failures.into_iter().min_by_key(|f| f.index) {
            Some(f) => Err(f),
            None => Ok(Path::Parallel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use crate::types::{Address, TxKind};

    /// The genesis hash the test transactions are signed for.
    const G: Hash = Hash([0x6e; 32]);

    fn signed(n: usize) -> Vec<Transaction> {
        (0..n)
            .map(|i| {
                let kp = Keypair::from_seed(&[i as u8; 32]);
                let mut tx = Transaction {
                    chain_id: 7,
                    from: kp.address(),
                    nonce: i as u64,
                    fee: 10,
                    kind: TxKind::Transfer { to: Address([9; 32]), amount: 1 },
                    signature: [0; 64],
                };
                kp.sign_tx(&mut tx, &G);
                tx
            })
            .collect()
    }

    #[test]
    fn honest_signatures_verify_on_both_paths() {
        let txs = signed(100);
        assert_eq!(Verifier::new(1000).verify_txs(&txs, &G), Ok(Path::Sequential));
        assert_eq!(Verifier::new(1).verify_txs(&txs, &G), Ok(Path::Parallel));
        // ed25519-dalek's strict verification agrees on honest signatures.
        for tx in &txs {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(tx.from.as_bytes()).unwrap();
            let sig = ed25519_dalek::Signature::from_bytes(&tx.signature);
            vk.verify_strict(&tx.signing_bytes(&G), &sig).unwrap();
        }
    }

    #[test]
    fn the_cache_skips_only_what_verified() {
        let cache = SigCache::new(1_000);
        let v = Verifier::new(1);
        let mut txs = signed(50);
        assert_eq!(v.verify_txs_cached(&txs[..20], &G, &cache), Ok(Path::Parallel));
        assert_eq!(cache.len(), 20);
        assert_eq!(v.verify_txs_cached(&txs[..20], &G, &cache), Ok(Path::Cached));
        // A bad signature among cached ones is still found, with its index in the full list.
        txs[33].signature[0] ^= 1;
        assert_eq!(v.verify_txs_cached(&txs, &G, &cache).unwrap_err().index, 33);
        assert_eq!(cache.len(), 20, "nothing from a failed list is cached");
        // A cached transaction with its signature altered is a different witness: verified again.
        let mut altered = txs[3];
        altered.signature[1] ^= 1;
        assert!(v.verify_txs_cached(&[altered], &G, &cache).is_err());
        // Capacity holds.
        let small = SigCache::new(5);
        v.verify_txs_cached(&signed(12), &G, &small).unwrap();
        assert_eq!(small.len(), 5);
    }

    /// Signatures bind the genesis hash: a transaction signed for one network fails on another
    /// with the same chain id, on both paths, and a cache entry made on one network does not
    /// vouch for it on the other.
    #[test]
    fn a_signature_for_another_genesis_fails() {
        let other = Hash([0x6f; 32]);
        let txs = signed(40);
        assert_eq!(verify_tx(&txs[0], &G), Ok(()));
        assert_eq!(verify_tx(&txs[0], &other), Err(SignatureError::Mismatch));
        for v in [Verifier::new(1), Verifier::new(10_000)] {
            assert_eq!(v.verify_txs(&txs, &other).unwrap_err().index, 0);
        }
        let cache = SigCache::new(100);
        assert_eq!(Verifier::new(1).verify_txs_cached(&txs, &G, &cache), Ok(Path::Parallel));
        assert_eq!(Verifier::new(1).verify_txs_cached(&txs, &G, &cache), Ok(Path::Cached));
        assert!(Verifier::new(1).verify_txs_cached(&txs, &other, &cache).is_err());
        assert_ne!(cache_key(&txs[0], &G), cache_key(&txs[0], &other));
        // The message is the unsigned encoding, then the genesis hash.
        let msg = txs[0].signing_bytes(&G);
        assert_eq!(msg[..msg.len() - 32], txs[0].encode()[..txs[0].encoded_len() - 64]);
        assert_eq!(msg[msg.len() - 32..], G.0);
    }

    #[test]
    fn culprit_is_found_on_both_paths() {
        let mut txs = signed(200);
        txs[137].nonce += 1; // the signature no longer covers the message
        txs[150].signature[5] ^= 1;
        for v in [Verifier::new(1), Verifier::new(10_000)] {
            let err = v.verify_txs(&txs, &G).unwrap_err();
            assert_eq!(err.index, 137);
        }
    }

    #[test]
    fn malformed_parts_get_their_own_error() {
        let tx = signed(1)[0];
        let msg = tx.signing_bytes(&G);
        let mut sig = tx.signature;
        sig[63] = 0xff; // S >= l
        assert_eq!(verify_signature(tx.from.as_bytes(), &msg, &sig), Err(SignatureError::NonCanonicalScalar));
        // The identity point (y = 1) is of small order, as a key and as R.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(verify_signature(&identity, &msg, &tx.signature), Err(SignatureError::WeakKey));
        let mut sig = tx.signature;
        sig[..32].copy_from_slice(&identity);
        assert_eq!(verify_signature(tx.from.as_bytes(), &msg, &sig), Err(SignatureError::WeakR));
        // y = p is a non-canonical encoding of y = 0.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xed;
        non_canonical[31] = 0x7f;
        assert_eq!(verify_signature(&non_canonical, &msg, &tx.signature), Err(SignatureError::InvalidKey));
        let mut sig = tx.signature;
        sig[..32].copy_from_slice(&non_canonical);
        assert_eq!(verify_signature(tx.from.as_bytes(), &msg, &sig), Err(SignatureError::InvalidR));
        let mut msg2 = msg.clone();
        msg2[3] ^= 1;
        assert_eq!(verify_signature(tx.from.as_bytes(), &msg2, &tx.signature), Err(SignatureError::Mismatch));
    }

    #[test]
    fn torsioned_r_is_judged_the_same_by_batch_and_single() {
        // Add a point of order 8 to R: the cofactored equation accepts it on both paths, so batch
        // and one-by-one verification can never disagree (ed25519-dalek's cofactorless batch
        // could). The transaction id ignores the signature, so this is not id malleability.
        use curve25519_dalek::constants::EIGHT_TORSION;
        let mut txs = signed(40);
        let r = CompressedEdwardsY(txs[3].signature[..32].try_into().unwrap()).decompress().unwrap();
        let r2 = (r + EIGHT_TORSION[1]).compress();
        txs[3].signature[..32].copy_from_slice(r2.as_bytes());
        let id_before = signed(40)[3].id();
        assert_eq!(txs[3].id(), id_before);
        let single = verify_tx(&txs[3], &G);
        let batch = Verifier::new(1).verify_txs(&txs, &G);
        assert_eq!(single.is_ok(), batch.is_ok());
    }
}
