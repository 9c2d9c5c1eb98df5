//! Ancestry reads: the headers a child of a stored block is checked against (the retarget window
//! and the median-time-past span), read from the store by parent links, bounded in count.

use crate::{BlockMetaReader, StoreError};
use vision_primitives::consensus::MEDIAN_TIME_SPAN;
use vision_primitives::types::BlockHeader;

/// Timestamps of up to [`MEDIAN_TIME_SPAN`] blocks ending at `parent` (newest first), and the
/// timestamp of `parent`'s own parent if it has one: the context a child of `parent` is checked in.
pub(crate) fn ancestry<R: BlockMetaReader>(r: &R, parent: &BlockHeader) -> Result<(Vec<u64>, Option<u64>), StoreError> {
    let mut times = Vec::with_capacity(MEDIAN_TIME_SPAN);
    times.push(parent.timestamp_ms);
    let mut cur = *parent;
    let mut grandparent_ts = None;
    while times.len() < MEDIAN_TIME_SPAN && cur.height > 0 {
        let m = r
            .block_meta(&cur.parent)?
            .ok_or_else(|| StoreError::Corrupt(format!("ancestor {} missing", cur.parent)))?;
        grandparent_ts.get_or_insert(m.header.timestamp_ms);
        times.push(m.header.timestamp_ms);
        cur = m.header;
    }
    Ok((times, grandparent_ts))
}
