//! A small seeded generator (SplitMix64) for every random choice of a run: topology, link
//! latencies, node picks, keys. The same seed gives the same choices on every machine, which is
//! what makes a failing run repeatable; it is not for cryptography.

use vision_node::util::{SPLITMIX64_GAMMA, splitmix64};

/// SplitMix64 (Steele, Lea and Flood): a 64-bit state, one add and two multiply-xorshifts per draw.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// An independent generator for a named purpose, so adding draws in one place does not shift
    /// the choices made elsewhere.
    pub fn fork(&self, purpose: &str) -> Rng {
        let mut h = self.0 ^ SPLITMIX64_GAMMA;
        for b in purpose.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Rng(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(SPLITMIX64_GAMMA);
        splitmix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift; the bias for the n used here (< 2^20) is negligible.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.below(hi - lo + 1) }
    }

    /// 32 random bytes (e.g. a key seed).
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }

    /// `k` distinct picks from `items` (all of them if `k >= items.len()`), in random order.
    pub fn choose<T: Copy>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut pool = items.to_vec();
        let k = k.min(pool.len());
        for i in 0..k {
            let j = i + self.below((pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws_and_forks_differ() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::new(7);
        let mut y = Rng::new(7);
        assert_eq!(
            (0..100).map(|_| x.next_u64()).collect::<Vec<_>>(),
            (0..100).map(|_| y.next_u64()).collect::<Vec<_>>()
        );
        assert_ne!(Rng::new(7).fork("topology").next_u64(), Rng::new(7).fork("latency").next_u64());
    }

    #[test]
    fn below_and_choose_stay_in_range() {
        let mut r = Rng::new(1);
        for n in 1..50 {
            assert!(r.below(n) < n);
        }
        let picks = r.choose(&[1, 2, 3, 4, 5, 6], 4);
        assert_eq!(picks.len(), 4);
        let mut sorted = picks.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 4, "distinct");
        assert_eq!(r.choose(&[1, 2], 5).len(), 2);
        assert_eq!(r.between(3, 3), 3);
    }
}
