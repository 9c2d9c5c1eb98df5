//! Gossip: topic names, payload encodings, content-addressed message ids and the gossipsub
//! configuration (validation mode, peer-score parameters). Specified in `protocols/gossip.md`.
//!
//! Topics (`<net>` = first 8 hex digits of the genesis hash):
//! - `/vision/<net>/blocks/1`: one block, its canonical encoding;
//! - `/vision/<net>/txs/1`: a batch of transactions, `u32 count ‖ (u32 length ‖ tx)*` (the block body
//!   encoding), at most [`MAX_TX_BATCH`].
//!
//! Message ids are the first 20 bytes of BLAKE3 of the payload, so the same block or batch from two
//! peers is one message. Validation is manual: every message is reported Accept, Reject or Ignore
//! after the node's own checks, which feeds gossipsub's peer scoring.

use std::time::Duration;

use libp2p::gossipsub::{self, IdentTopic, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams};

use vision_primitives::encoding::{DecodeError, Reader, Writer};
use vision_primitives::types::{Block, Hash, MAX_BLOCK_BYTES, Transaction};

/// Most transactions per gossip batch.
pub const MAX_TX_BATCH: usize = 1024;
/// Largest gossip message: one maximum-size block plus framing.
pub const MAX_MESSAGE_BYTES: usize = MAX_BLOCK_BYTES + 1024;
/// Messages gossipsub queues for one peer's connection before it drops further publishes and
/// forwards to it (gossipsub's default is 5,000). At the largest transaction batch (~190 KB) a
/// peer that stops reading holds at most ~48 MB here until it is disconnected: each heartbeat in
/// which messages to it were dropped costs it `HighTolerance` (`slow_peer`), and a connection that
/// stops answering pings is closed after two failed pings (`behaviour::PING_TIMEOUT`).
pub const PEER_QUEUE_CAP: usize = 256;

/// The two topics of a network.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Blocks.
    pub blocks: IdentTopic,
    /// Transaction batches.
    pub txs: IdentTopic,
}

impl Topics {
    /// Topics of the network with this genesis.
    pub fn new(genesis: &Hash) -> Self {
        let net = genesis.short();
        Topics {
            blocks: IdentTopic::new(format!("/vision/{net}/blocks/1")),
            txs: IdentTopic::new(format!("/vision/{net}/txs/1")),
        }
    }
}

/// Encodes a transaction batch.
pub fn encode_tx_batch(txs: &[Transaction]) -> Vec<u8> {
    let mut w = Writer::default();
    Block::write_body(txs, &mut w);
    w.finish()
}

/// Decodes a transaction batch, refusing more than [`MAX_TX_BATCH`].
pub fn decode_tx_batch(bytes: &[u8]) -> Result<Vec<Transaction>, DecodeError> {
    let mut r = Reader::new(bytes);
    // Peek at the count before decoding anything.
    let count = Reader::new(bytes).u32()? as usize;
    if count > MAX_TX_BATCH {
        return Err(DecodeError::TooLarge {
            what: "transaction batch size",
            got: count as u64,
            cap: MAX_TX_BATCH as u64,
        });
    }
    let txs = Block::read_body(&mut r)?;
    r.finish()?;
    Ok(txs)
}

/// Content-addressed message id.
pub fn message_id(data: &[u8]) -> MessageId {
    MessageId::from(&blake3::hash(data).as_bytes()[..20])
}

/// Gossipsub configuration: strict signing, manual validation, content ids, size cap.
pub fn config() -> Result<gossipsub::Config, String> {
    gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| message_id(&m.data))
        .max_transmit_size(MAX_MESSAGE_BYTES)
        .heartbeat_interval(Duration::from_millis(700))
        .duplicate_cache_time(Duration::from_secs(120))
        .connection_handler_queue_len(PEER_QUEUE_CAP)
        .build()
        .map_err(|e| e.to_string())
}

/// Peer-score thresholds (see `docs/adr/006-gossipsub-scoring.md`): below -100 a peer's gossip is
/// not sent to, below -200 it is not published to, below -400 its messages are ignored.
pub fn score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -200.0,
        graylist_threshold: -400.0,
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// Peer-score parameters: invalid messages weigh heavily on both topics; first deliveries earn a
/// little.
pub fn score_params(topics: &Topics) -> PeerScoreParams {
    let mut params = PeerScoreParams::default();
    for (topic, weight) in [(&topics.blocks, 1.0), (&topics.txs, 0.5)] {
        let t = TopicScoreParams {
            topic_weight: weight,
            first_message_deliveries_weight: 1.0,
            first_message_deliveries_decay: 0.9,
            first_message_deliveries_cap: 50.0,
            // Time in the mesh counts in seconds (the default quantum is 1 ms, which saturates the
            // bonus after 3.6 s and lets a mesh peer absorb invalid messages).
            time_in_mesh_quantum: Duration::from_secs(1),
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.5,
            // No mesh-delivery requirements: block rate is too low to judge peers by it.
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            ..TopicScoreParams::default()
        };
        params.topics.insert(topic.hash(), t);
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_are_capped() {
        let kp = vision_primitives::keys::Keypair::from_seed(&[1; 32]);
        let txs: Vec<Transaction> = (0..3)
            .map(|n| {
                vision_primitives::keys::signed_transfer(
                    &kp,
                    vision_primitives::types::Address([2; 32]),
                    1,
                    1,
                    n,
                    1,
                    &vision_primitives::types::Hash::ZERO,
                )
            })
            .collect();
        assert_eq!(decode_tx_batch(&encode_tx_batch(&txs)).unwrap(), txs);
        let mut w = Writer::default();
        w.u32(MAX_TX_BATCH as u32 + 1);
        assert!(matches!(decode_tx_batch(&w.finish()), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn topics_name_the_network() {
        let t = Topics::new(&Hash([0xab; 32]));
        assert_eq!(t.blocks.to_string(), "/vision/abababab/blocks/1");
        assert_eq!(t.txs.to_string(), "/vision/abababab/txs/1");
        assert_eq!(message_id(b"x"), message_id(b"x"));
        assert_ne!(message_id(b"x"), message_id(b"y"));
    }

    #[test]
    fn config_builds() {
        config().unwrap();
        score_params(&Topics::new(&Hash::ZERO)).validate().unwrap();
        score_thresholds().validate().unwrap();
    }
}
