//! Helpers for tests, benchmarks and simulations: small genesis files with funded keys, signed
//! transfers, and solved blocks built on a chain's tip. Not used by the node itself.
//!
//! Blocks built here carry the timestamp `parent + target block time`, so the retarget keeps the
//! difficulty where the genesis put it (1 in [`genesis_with_accounts`]) no matter how fast they
//! are produced, and chains of hundreds of blocks build in milliseconds.

use crate::chain::Chain;
use crate::chain::genesis::{Allocation, Genesis};
use crate::chain::types::{Address, Block, Transaction};
use crate::miner::{solve, template_from};
use crate::state::StoreError;
use crate::wallet::Keypair;

/// Chain id of [`genesis_with_accounts`].
pub const TEST_CHAIN_ID: u32 = 7;

/// Deterministic key `i` of the test accounts.
pub fn test_key(i: u32) -> Keypair {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[4] = 0xa5;
    Keypair::from_seed(&seed)
}

/// A genesis with difficulty 1, 1 s target, fee minimum 1, and `n` accounts holding `balance`.
pub fn genesis_with_accounts(n: u32, balance: u128) -> (Genesis, Vec<Keypair>) {
    let keys: Vec<Keypair> = (0..n).map(test_key).collect();
    let genesis = Genesis {
        chain_id: TEST_CHAIN_ID,
        timestamp_ms: 1_700_000_000_000,
        initial_difficulty: 1,
        target_block_time_ms: 1_000,
        block_reward: 1_000,
        min_fee: 1,
        allocations: keys.iter().map(|k| Allocation { address: k.address(), balance }).collect(),
    };
    (genesis, keys)
}

/// A transfer signed for the network of `chain_id` and `genesis_hash`
/// ([`vision_primitives::keys::signed_transfer`]).
pub use vision_primitives::keys::signed_transfer as transfer;

/// A solved block on `chain`'s tip with `txs` (all must execute), timestamped one target block
/// time after its parent.
pub fn next_block(chain: &Chain, txs: Vec<Transaction>, miner: Address) -> Result<Block, StoreError> {
    let n = txs.len();
    let mut dropped = 0;
    let t = template_from(chain, txs, miner, |_| dropped += 1)?;
    assert_eq!(dropped, 0, "testkit::next_block: {dropped} of {n} transactions do not execute");
    let parent_ts = chain.tip().header.timestamp_ms;
    Ok(solve(&t, parent_ts + chain.params().target_block_time_ms))
}
