//! Feeds arbitrary bytes to `Block::decode` (gossip blocks, sync responses, API block submission)
//! and to `BlockHeader::decode`, and asserts: no panic; on `Ok`, the encoding is canonical
//! (`encode` gives back exactly the input, `encoded_len` matches), the header decoded alone equals
//! the block's header, and hashing, the transactions root and the PoW check do not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vision_node::chain::consensus::meets_difficulty;
use vision_node::chain::types::{Block, BlockHeader, HEADER_LEN, tx_root};

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = BlockHeader::decode(data) {
        assert_eq!(header.encode()[..], data[..], "header encoding is not canonical");
        let _ = meets_difficulty(&header.hash(), header.difficulty);
    }
    let Ok(block) = Block::decode(data) else { return };
    assert_eq!(block.encode(), data, "block encoding is not canonical");
    assert_eq!(block.encoded_len(), data.len());
    assert_eq!(BlockHeader::decode(&data[..HEADER_LEN]), Ok(block.header));
    let _ = tx_root(&block.transactions);
    let _ = meets_difficulty(&block.hash(), block.header.difficulty);
});
