//! Network metrics (registered under `vision_p2p_`), recorded by the swarm task, plus libp2p's own
//! swarm/gossipsub/identify/kad/ping metrics under `vision_p2p_libp2p_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// Connection direction.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum DirectionLabel {
    /// They dialed us.
    Inbound,
    /// We dialed them.
    Outbound,
}

/// Labels with a direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// Direction.
    pub direction: DirectionLabel,
}

/// Score ranges for the score distribution.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ScoreRange {
    /// Below the ban threshold (-50).
    BelowMinus50,
    /// [-50, -20).
    Minus50ToMinus20,
    /// [-20, 0).
    Minus20To0,
    /// [0, 20).
    ZeroTo20,
    /// [20, 50).
    Plus20To50,
    /// 50 and above.
    Plus50AndAbove,
}

impl ScoreRange {
    /// The range a score falls in.
    pub fn of(score: f64) -> Self {
        match score {
            s if s < -50.0 => ScoreRange::BelowMinus50,
            s if s < -20.0 => ScoreRange::Minus50ToMinus20,
            s if s < 0.0 => ScoreRange::Minus20To0,
            s if s < 20.0 => ScoreRange::ZeroTo20,
            s if s < 50.0 => ScoreRange::Plus20To50,
            _ => ScoreRange::Plus50AndAbove,
        }
    }
    /// Every range.
    pub const ALL: [ScoreRange; 6] = [
        ScoreRange::BelowMinus50,
        ScoreRange::Minus50ToMinus20,
        ScoreRange::Minus20To0,
        ScoreRange::ZeroTo20,
        ScoreRange::Plus20To50,
        ScoreRange::Plus50AndAbove,
    ];
}

/// Labels of the score distribution.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScoreLabels {
    /// Score range.
    pub range: ScoreRange,
}

/// Labels of peer actions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// Tolerance class.
    pub action: String,
    /// Why.
    pub reason: String,
}

/// Labels of bans.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: String,
}

/// Gossip topic.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum TopicLabel {
    /// Blocks.
    Blocks,
    /// Transaction batches.
    Txs,
    /// Anything else.
    Other,
}

/// Validation result.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ResultLabel {
    /// Accepted (relayed).
    Accept,
    /// Rejected (invalid; the sender is penalised).
    Reject,
    /// Ignored (duplicate, too early, or dropped).
    Ignore,
}

/// Labels of gossip messages.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GossipLabels {
    /// Topic.
    pub topic: TopicLabel,
    /// Result.
    pub result: ResultLabel,
}

/// Labels with a topic only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    /// Topic.
    pub topic: TopicLabel,
}

/// Sync message kind.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SyncKind {
    /// Status exchange.
    Status,
    /// Blocks (by range or by hash).
    Blocks,
    /// Headers (by range).
    Headers,
}

/// Sync result.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SyncResult {
    /// Answered.
    Ok,
    /// Refused or failed.
    Error,
    /// Rate limited.
    RateLimited,
    /// Undecodable or oversized.
    Invalid,
}

/// Labels of sync requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// Who asked.
    pub direction: DirectionLabel,
    /// What.
    pub kind: SyncKind,
    /// How it ended.
    pub result: SyncResult,
}

/// Labels of dropped work.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The queue that was full.
    pub queue: String,
}

/// Network metrics.
#[derive(Clone, Default)]
pub struct Metrics {
    /// Connected peers by direction.
    pub peers: Family<DirectionLabels, Gauge>,
    /// Connected peers by score range.
    pub peer_scores: Family<ScoreLabels, Gauge>,
    /// Peer actions reported, by tolerance and reason.
    pub peer_actions: Family<ActionLabels, Counter>,
    /// Bans by reason.
    pub bans: Family<ReasonLabels, Counter>,
    /// Peers currently banned.
    pub banned_peers: Gauge,
    /// Gossip messages received, by topic and validation result.
    pub gossip_messages: Family<GossipLabels, Counter>,
    /// Gossip payload bytes received, by topic.
    pub gossip_bytes: Family<TopicLabels, Counter>,
    /// Sync requests, by direction, kind and result.
    pub sync_requests: Family<SyncLabels, Counter>,
    /// Sync response payload bytes, by direction.
    pub sync_response_bytes: Family<DirectionLabels, Counter>,
    /// Work dropped because a bounded queue was full, by queue.
    pub dropped: Family<QueueLabels, Counter>,
    /// 1 while catching up with a peer that has more work.
    pub syncing: Gauge,
    /// Height of the peer being synced from (0 when not syncing).
    pub sync_target_height: Gauge,
    /// Orphan blocks held.
    pub orphans: Gauge,
    /// Durable writes of the peer book and bans (each a batch: `service::peer_book`).
    pub peer_book_writes: Counter,
    /// Inbound connections refused by the per-address and per-group caps (`ip_limits`), by reason.
    pub inbound_refused: Family<ReasonLabels, Counter>,
    /// libp2p's own metrics.
    pub libp2p: Option<std::sync::Arc<libp2p::metrics::Metrics>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("p2p::Metrics")
    }
}

impl Metrics {
    /// Metrics registered in `r` (names get its prefix).
    pub fn new(r: &mut Registry) -> Self {
        let m = Metrics {
            // libp2p prefixes its own families with `libp2p_`.
            libp2p: Some(std::sync::Arc::new(libp2p::metrics::Metrics::new(r))),
            ..Metrics::default()
        };
        r.register("peers", "Connected peers by direction", m.peers.clone());
        r.register("peer_scores", "Connected peers by score range", m.peer_scores.clone());
        r.register("peer_actions", "Misbehaviour reports by tolerance and reason", m.peer_actions.clone());
        r.register("bans", "Peer bans by reason", m.bans.clone());
        r.register("banned_peers", "Peers currently banned", m.banned_peers.clone());
        r.register(
            "gossip_messages",
            "Gossip messages received by topic and validation result",
            m.gossip_messages.clone(),
        );
        r.register_with_unit("gossip", "Gossip payload bytes received by topic", Unit::Bytes, m.gossip_bytes.clone());
        r.register("sync_requests", "Sync requests by direction, kind and result", m.sync_requests.clone());
        r.register_with_unit(
            "sync_response",
            "Sync response payload bytes by direction",
            Unit::Bytes,
            m.sync_response_bytes.clone(),
        );
        r.register("dropped_messages", "Work dropped because a bounded queue was full", m.dropped.clone());
        r.register("syncing", "1 while catching up with a peer that has more work", m.syncing.clone());
        r.register("sync_target_height", "Height of the peer being synced from", m.sync_target_height.clone());
        r.register("orphan_blocks", "Blocks held until their parent arrives", m.orphans.clone());
        r.register(
            "peer_book_writes",
            "Durable writes of the peer book and bans, each a batch of the changes of a few seconds",
            m.peer_book_writes.clone(),
        );
        r.register(
            "inbound_refused",
            "Inbound connections refused by the per-address (per_ip) and per-network-group (per_group) caps",
            m.inbound_refused.clone(),
        );
        m
    }
}

vision_primitives::snake_case_label_value!(DirectionLabel, ScoreRange, TopicLabel, ResultLabel, SyncKind, SyncResult);
