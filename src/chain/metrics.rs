//! Metrics of block import and transaction admission (registered under `vision_`), recorded by
//! [`crate::node::Core`], the one path every block and transaction takes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Where a block came from.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SourceLabel {
    /// Our miner.
    Miner,
    /// The API.
    Api,
    /// The network.
    Network,
}

/// What importing a block did.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum OutcomeLabel {
    /// Became (part of) the canonical chain.
    NewTip,
    /// Stored on a side chain.
    SideChain,
    /// Already stored.
    Known,
    /// Parent unknown.
    Orphan,
    /// Broke a rule.
    Invalid,
    /// Not stored by storage policy: an unrequested side-chain block too far behind the tip's work.
    NotStored,
    /// Timestamp too far ahead; may be retried.
    Future,
    /// Our storage failed.
    Error,
}

/// Labels of `blocks_imported_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ImportLabels {
    /// Where the block came from.
    pub source: SourceLabel,
    /// What happened.
    pub outcome: OutcomeLabel,
}

/// Signature verification path.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum PathLabel {
    /// One by one on the calling thread.
    Sequential,
    /// Batches on the rayon pool.
    Parallel,
    /// Every signature already verified (signature cache).
    Cached,
}

/// Labels of `verify_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    /// The path.
    pub path: PathLabel,
}

/// Where a transaction came from.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum TxSourceLabel {
    /// The API.
    Api,
    /// Gossip.
    Network,
    /// Returned by a reorganisation.
    Reorg,
}

/// Admission result of a transaction.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum TxResultLabel {
    /// Pooled.
    Accepted,
    /// Refused (any reason).
    Rejected,
}

/// Labels of `transactions_submitted_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TxLabels {
    /// Source.
    pub source: TxSourceLabel,
    /// Result.
    pub result: TxResultLabel,
}

/// Labels of `transaction_signature_checks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TxSourceLabels {
    /// Source.
    pub source: TxSourceLabel,
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    // 100 µs .. ~13 s.
    exponential_buckets(0.0001, 2.0, 18)
}

/// Chain and admission metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Blocks by source and outcome.
    pub blocks_imported: Family<ImportLabels, Counter>,
    /// Whole import of one block.
    pub import_duration: Histogram,
    /// Signature verification of one block, by path.
    pub verify_duration: Family<PathLabels, Histogram>,
    /// State execution and writes of one block import (or reorg).
    pub apply_duration: Histogram,
    /// redb commit of one block import (or reorg).
    pub db_commit_duration: Histogram,
    /// Reorganisations.
    pub reorgs: Counter,
    /// Blocks reverted per reorganisation.
    pub reorg_depth: Histogram,
    /// Transactions in blocks that became canonical.
    pub transactions_imported: Counter,
    /// Transactions offered to the pool, by source and result.
    pub transactions_submitted: Family<TxLabels, Counter>,
    /// Signatures handed to the verifier at admission, by source.
    pub transaction_signature_checks: Family<TxSourceLabels, Counter>,
    /// Block propagation delay: local receipt time minus the block's timestamp.
    pub block_propagation_delay: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            blocks_imported: Family::default(),
            import_duration: Histogram::new(seconds_buckets()),
            verify_duration: Family::new_with_constructor(|| Histogram::new(seconds_buckets())),
            apply_duration: Histogram::new(seconds_buckets()),
            db_commit_duration: Histogram::new(seconds_buckets()),
            reorgs: Counter::default(),
            reorg_depth: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            transactions_imported: Counter::default(),
            transactions_submitted: Family::default(),
            transaction_signature_checks: Family::default(),
            // 10 ms .. ~80 s.
            block_propagation_delay: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
        }
    }
}

impl Metrics {
    /// Registers every family (names get the registry's prefix).
    pub fn register(&self, r: &mut Registry) {
        r.register("blocks_imported", "Blocks offered for import, by source and outcome", self.blocks_imported.clone());
        r.register_with_unit(
            "block_import_duration",
            "Time to import one block (checks, verification, state, commit)",
            Unit::Seconds,
            self.import_duration.clone(),
        );
        r.register_with_unit(
            "signature_verification_duration",
            "Time to verify the signatures of one block, by path",
            Unit::Seconds,
            self.verify_duration.clone(),
        );
        r.register_with_unit(
            "state_apply_duration",
            "Time to execute and write one block import or reorganisation",
            Unit::Seconds,
            self.apply_duration.clone(),
        );
        r.register_with_unit(
            "db_commit_duration",
            "Time of the redb commit of one block import or reorganisation",
            Unit::Seconds,
            self.db_commit_duration.clone(),
        );
        r.register("reorgs", "Chain reorganisations", self.reorgs.clone());
        r.register("reorg_depth", "Blocks reverted per reorganisation", self.reorg_depth.clone());
        r.register(
            "transactions_imported",
            "Transactions in blocks that became canonical",
            self.transactions_imported.clone(),
        );
        r.register(
            "transactions_submitted",
            "Transactions offered to the mempool, by source and result",
            self.transactions_submitted.clone(),
        );
        r.register(
            "transaction_signature_checks",
            "Transaction signatures handed to the verifier at mempool admission, by source",
            self.transaction_signature_checks.clone(),
        );
        r.register_with_unit(
            "block_propagation_delay",
            "Receipt time of a gossiped block minus its timestamp",
            Unit::Seconds,
            self.block_propagation_delay.clone(),
        );
    }
}

vision_primitives::snake_case_label_value!(SourceLabel, OutcomeLabel, PathLabel, TxSourceLabel, TxResultLabel);
