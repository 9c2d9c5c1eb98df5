//! The state commitment: a lattice (homomorphic multiset) hash over all accounts.
//!
//! Each non-empty account `(address, balance, nonce)` maps to a 2048-byte element, the BLAKE3 XOF
//! output of `"vision/account/v1" || address || balance (u128 LE) || nonce (u64 LE)`, read as 1024
//! little-endian `u16` lanes. The accumulator is the lane-wise sum of all elements modulo 2^16 (the
//! LtHash construction of Bellare–Micciancio as deployed by Meta and Solana). Updating one account
//! subtracts its old element and adds its new one, so a block costs O(accounts it changes), not
//! O(all accounts). The state root in headers is `BLAKE3("vision/state/v1" || accumulator)`.
//!
//! An account with zero balance and zero nonce is absent: it contributes nothing.

use crate::types::{Address, Hash};

/// Number of 16-bit lanes.
pub const LANES: usize = 1024;
/// Encoded size of an accumulator.
pub const LTHASH_BYTES: usize = LANES * 2;

const ELEMENT_DOMAIN: &[u8] = b"vision/account/v1";
const ROOT_DOMAIN: &[u8] = b"vision/state/v1";

/// A lattice-hash accumulator.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash(pub Box<[u16; LANES]>);

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash(root {})", self.root())
    }
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash(Box::new([0u16; LANES]))
    }
}

fn element(address: &Address, balance: u128, nonce: u64) -> [u16; LANES] {
    let mut h = blake3::Hasher::new();
    h.update(ELEMENT_DOMAIN);
    h.update(address.as_bytes());
    h.update(&balance.to_le_bytes());
    h.update(&nonce.to_le_bytes());
    let mut bytes = [0u8; LTHASH_BYTES];
    h.finalize_xof().fill(&mut bytes);
    let mut lanes = [0u16; LANES];
    for (lane, pair) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
        *lane = u16::from_le_bytes([pair[0], pair[1]]);
    }
    lanes
}

impl LtHash {
    /// Adds an account (no-op for an empty one).
    pub fn insert(&mut self, address: &Address, balance: u128, nonce: u64) {
        if balance == 0 && nonce == 0 {
            return;
        }
        let e = element(address, balance, nonce);
        for (a, b) in self.0.iter_mut().zip(e.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// Removes an account previously inserted (no-op for an empty one).
    pub fn remove(&mut self, address: &Address, balance: u128, nonce: u64) {
        if balance == 0 && nonce == 0 {
            return;
        }
        let e = element(address, balance, nonce);
        for (a, b) in self.0.iter_mut().zip(e.iter()) {
            *a = a.wrapping_sub(*b);
        }
    }

    /// The state root committed in headers.
    pub fn root(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(ROOT_DOMAIN);
        h.update(&self.to_bytes());
        Hash(*h.finalize().as_bytes())
    }

    /// Little-endian lanes, for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LTHASH_BYTES);
        for lane in self.0.iter() {
            out.extend_from_slice(&lane.to_le_bytes());
        }
        out
    }

    /// Reads stored lanes; `None` unless exactly [`LTHASH_BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != LTHASH_BYTES {
            return None;
        }
        let mut lanes = Box::new([0u16; LANES]);
        for (lane, pair) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([pair[0], pair[1]]);
        }
        Some(LtHash(lanes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_and_remove_undoes_insert() {
        let a = Address([1; 32]);
        let b = Address([2; 32]);
        let mut x = LtHash::default();
        x.insert(&a, 10, 0);
        x.insert(&b, 5, 3);
        let mut y = LtHash::default();
        y.insert(&b, 5, 3);
        y.insert(&a, 10, 0);
        assert_eq!(x.root(), y.root());
        y.remove(&a, 10, 0);
        y.insert(&a, 11, 0);
        assert_ne!(x.root(), y.root());
        y.remove(&a, 11, 0);
        y.insert(&a, 10, 0);
        assert_eq!(x.root(), y.root());
        assert_eq!(LtHash::from_bytes(&x.to_bytes()).unwrap(), x);
    }

    #[test]
    fn empty_accounts_are_absent() {
        let mut x = LtHash::default();
        x.insert(&Address([3; 32]), 0, 0);
        assert_eq!(x, LtHash::default());
    }
}
