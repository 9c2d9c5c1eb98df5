//! What a run records (blocks mined, block arrivals at nodes, attacker score samples, late joins)
//! and the arrival-delay percentiles computed from it. The runner writes the records; the report
//! and the raw-gossipsub baseline read them.

use vision_node::chain::types::Hash;

/// A block the runner mined.
#[derive(Debug, Clone)]
pub struct Mined {
    /// Its hash.
    pub hash: Hash,
    /// Its height.
    pub height: u64,
    /// The node that mined it.
    pub origin: usize,
    /// When (ms after the timeline start).
    pub at_ms: f64,
    /// Its encoded size in bytes (what gossip carries).
    pub bytes: usize,
}

/// A node applied a block.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The node.
    pub node: usize,
    /// The block.
    pub hash: Hash,
    /// Its height.
    pub height: u64,
    /// When (ms after the timeline start).
    pub at_ms: f64,
}

/// One score sample of an attacker at an honest node.
#[derive(Debug, Clone)]
pub struct ScoreSample {
    /// Ms after the timeline start.
    pub at_ms: f64,
    /// The honest node.
    pub node: usize,
    /// The attacker's number.
    pub attacker: usize,
    /// Its score there while connected.
    pub score: Option<f64>,
    /// Whether the node has banned it.
    pub banned: bool,
    /// Whether it is cut off there: not connected, and refused on connection (banned, or its
    /// score at or below the disconnect threshold).
    pub cut_off: bool,
}

/// A late node's join.
#[derive(Debug, Clone)]
pub struct Join {
    /// The node.
    pub node: usize,
    /// When (ms after the timeline start).
    pub at_ms: f64,
    /// The best height among the live nodes then.
    pub target_height: u64,
}

/// Arrival delays in ms where a miss (`None`: never arrived) counts as slower than any arrival.
///
/// Percentiles are nearest rank over arrivals and misses together (`None` when the rank falls
/// among the misses). The arrivals are kept in an HDR histogram ([`vision_tools::Millis`]): a
/// percentile is the upper end of its sample's bucket, up to 0.1% above the sample (exact below
/// 2.048 ms) and never above the slowest arrival.
pub(crate) struct Delays {
    arrived: vision_tools::Millis,
    missed: u64,
}

impl Delays {
    pub(crate) fn of(v: impl IntoIterator<Item = Option<f64>>) -> Delays {
        let mut d = Delays { arrived: vision_tools::Millis::new(), missed: 0 };
        for x in v {
            match x {
                Some(ms) => d.arrived.record(ms),
                None => d.missed += 1,
            }
        }
        d
    }

    /// How many arrived.
    pub(crate) fn arrived(&self) -> u64 {
        self.arrived.len()
    }

    /// How many never arrived.
    pub(crate) fn missed(&self) -> u64 {
        self.missed
    }

    /// The `p`-th percentile: the `ceil(p/100 * n)`-th fastest of all `n` (at least the first).
    pub(crate) fn percentile(&self, p: f64) -> Option<f64> {
        let total = self.arrived.len() + self.missed;
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        (rank <= self.arrived.len()).then(|| self.arrived.at_rank(rank))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_treat_missing_as_slowest() {
        // Below 2.048 ms the histogram is exact.
        let d = Delays::of(vec![Some(0.3), None, Some(0.1), Some(0.2)]);
        assert_eq!(d.percentile(50.0), Some(0.2));
        assert_eq!(d.percentile(75.0), Some(0.3));
        assert_eq!(d.percentile(100.0), None);
        assert_eq!(Delays::of(vec![]).percentile(50.0), None);
        // Above, within 0.1% of the sample and never above the slowest arrival.
        let d = Delays::of(vec![Some(30.0), None, Some(10.0), Some(20.0)]);
        let p50 = d.percentile(50.0).unwrap();
        assert!((20.0..=20.02).contains(&p50), "{p50}");
        assert_eq!(d.percentile(75.0), Some(30.0));
    }
}
