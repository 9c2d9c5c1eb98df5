//! Feeds arbitrary bytes to `Transaction::decode` (the decoder behind API submissions, gossip
//! batches and block bodies) and asserts: no panic; on `Ok`, the encoding is canonical (`encode`
//! gives back exactly the input, `encoded_len` is the input length), a one-transaction gossip batch
//! of it round-trips, and deriving its id, witness hash and total cost does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vision_node::chain::types::Transaction;
use vision_node::p2p::gossip::{decode_tx_batch, encode_tx_batch};

fuzz_target!(|data: &[u8]| {
    let Ok(tx) = Transaction::decode(data) else { return };
    assert_eq!(tx.encode(), data, "transaction encoding is not canonical");
    assert_eq!(tx.encoded_len(), data.len());
    let genesis = vision_node::chain::types::Hash([7; 32]);
    let signing = tx.signing_bytes(&genesis);
    assert_eq!(signing[..signing.len() - 32], data[..data.len() - 64], "signing bytes start with the unsigned prefix");
    assert_eq!(signing[signing.len() - 32..], genesis.0, "signing bytes end with the genesis hash");
    let batch = encode_tx_batch(&[tx]);
    assert_eq!(decode_tx_batch(&batch).expect("a one-transaction batch decodes"), vec![tx]);
    let _ = (tx.id(), tx.witness_hash(), tx.total_cost());
});
