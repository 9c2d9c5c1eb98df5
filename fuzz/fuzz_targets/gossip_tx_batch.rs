//! Feeds arbitrary bytes to `p2p::gossip::decode_tx_batch` (payloads of the `/vision/<net>/txs/1`
//! gossip topic) and asserts: no panic; on `Ok`, at most `MAX_TX_BATCH` transactions and
//! `encode_tx_batch` gives back exactly the input (canonical encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vision_node::p2p::gossip::{MAX_TX_BATCH, decode_tx_batch, encode_tx_batch};

fuzz_target!(|data: &[u8]| {
    let Ok(txs) = decode_tx_batch(data) else { return };
    assert!(txs.len() <= MAX_TX_BATCH, "batch of {} accepted", txs.len());
    assert_eq!(encode_tx_batch(&txs), data, "batch encoding is not canonical");
});
