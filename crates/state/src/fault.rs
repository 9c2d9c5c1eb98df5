//! Test-only fault injection: named points inside block import, reorganisation and start-up where
//! the process can be made to abort, to prove that a crash at any of them loses no committed data
//! and leaves nothing half-applied (issue #5, `tests/it/crash.rs`).
//!
//! The points exist only with the cargo feature `fault-injection`, which release builds do not
//! enable; without it [`point`] is an empty inline function. With it, three environment
//! variables of the process decide:
//!
//! - `VISION_FAULT_RATE`: probability in [0, 1] that a hit of a point aborts (unset or 0: never);
//! - `VISION_FAULT_SEED`: seed of the draws (default 0), so a failing run can be repeated;
//! - `VISION_FAULT_POINTS`: comma-separated name prefixes (e.g. `reorg.,open.`); only points whose
//!   name starts with one of them can fire (unset: every point).
//!
//! A firing point prints `fault injected at <name> (hit <n>)` to stderr and calls
//! [`std::process::abort`]: no destructor runs, no buffer is flushed, as with a power cut after
//! the last `fsync`.
//!
//! Points (the name says where the process stops):
//! - `open.after_create`: the database file was opened (redb's repair after a crash ran);
//! - `open.after_init`: tables and genesis are in place;
//! - `import.after_put_block`: the block is stored in the open write transaction;
//! - `import.before_commit`: the block is connected (or recorded as side chain), not committed;
//! - `import.after_commit`: committed, the in-memory tip not yet moved;
//! - `reorg.after_disconnect`: one block of the old branch disconnected, inside the transaction;
//! - `reorg.after_connect`: one block of the new branch connected, inside the transaction;
//! - `invalid.before_commit`: an invalid branch is being recorded as such.

/// A named fault point; aborts the process when the configured draw says so (feature
/// `fault-injection` only).
#[cfg(feature = "fault-injection")]
pub fn point(name: &'static str) {
    imp::point(name)
}

/// A named fault point; without the `fault-injection` feature it does nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &'static str) {}

#[cfg(feature = "fault-injection")]
mod imp {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Config {
        rate: f64,
        seed: u64,
        prefixes: Vec<String>,
    }

    static CONFIG: OnceLock<Config> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    fn config() -> &'static Config {
        CONFIG.get_or_init(|| Config {
            rate: std::env::var("VISION_FAULT_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(0.0),
            seed: std::env::var("VISION_FAULT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0),
            prefixes: std::env::var("VISION_FAULT_POINTS")
                .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                .unwrap_or_default(),
        })
    }

    /// SplitMix64 of (seed, hit): a uniform draw in [0, 1).
    fn draw(seed: u64, hit: u64) -> f64 {
        let z = vision_primitives::util::splitmix64(seed ^ hit.wrapping_mul(vision_primitives::util::SPLITMIX64_GAMMA));
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn point(name: &'static str) {
        let c = config();
        if c.rate <= 0.0 || !(c.prefixes.is_empty() || c.prefixes.iter().any(|p| name.starts_with(p.as_str()))) {
            return;
        }
        let hit = HITS.fetch_add(1, Ordering::Relaxed);
        if draw(c.seed, hit) < c.rate {
            eprintln!("fault injected at {name} (hit {hit})");
            std::process::abort();
        }
    }
}
