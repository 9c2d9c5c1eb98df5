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
//!
//! Besides aborting points, *I/O error points* ([`io_error`]) make an operation fail with a
//! [`StoreError`](crate::StoreError) instead, as a disk error would, to prove that a storage failure is never taken
//! for a consensus failure (issue #14, item 7). They are armed by the environment variable
//! `VISION_FAULT_IO` (`name:count,...`: the first `count` hits of `name` fail) or, in-process, by
//! `arm_io_error` (feature `fault-injection`). Points:
//! - `connect.before_state_root`: a block was executed against the tip state, its state root not
//!   yet compared (a read of the accounts table failing).

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

/// A named I/O error point: returns a [`StoreError`] while the point is armed (feature
/// `fault-injection` only; see the module docs).
#[cfg(feature = "fault-injection")]
pub fn io_error(name: &'static str) -> Result<(), crate::error::StoreError> {
    imp::io_error(name)
}

/// A named I/O error point; without the `fault-injection` feature it never fails.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn io_error(_name: &'static str) -> Result<(), crate::error::StoreError> {
    Ok(())
}

/// Arms the I/O error point `name` for its next `count` hits on the calling thread (`count` 0
/// disarms it). Thread-local, so that tests running in parallel in one process do not consume each
/// other's errors; an import runs its connect on the thread that called it.
#[cfg(feature = "fault-injection")]
pub fn arm_io_error(name: &str, count: u64) {
    imp::arm_io_error(name, count)
}

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

    /// Armed I/O error points and how many more hits fail; read from `VISION_FAULT_IO` first.
    fn armed() -> &'static parking_lot::Mutex<Vec<(String, u64)>> {
        static ARMED: OnceLock<parking_lot::Mutex<Vec<(String, u64)>>> = OnceLock::new();
        ARMED.get_or_init(|| {
            let from_env = std::env::var("VISION_FAULT_IO")
                .map(|v| {
                    v.split(',')
                        .filter_map(|item| {
                            let (name, count) = item.trim().split_once(':')?;
                            Some((name.to_string(), count.parse().ok()?))
                        })
                        .collect()
                })
                .unwrap_or_default();
            parking_lot::Mutex::new(from_env)
        })
    }

    thread_local! {
        static ARMED_HERE: std::cell::RefCell<Vec<(String, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    pub fn arm_io_error(name: &str, count: u64) {
        ARMED_HERE.with_borrow_mut(|a| {
            a.retain(|(n, _)| n != name);
            if count > 0 {
                a.push((name.to_string(), count));
            }
        });
    }

    /// Takes one hit of `name` from `list`; true if it was armed.
    fn take(list: &mut [(String, u64)], name: &str) -> bool {
        match list.iter_mut().find(|(n, c)| n == name && *c > 0) {
            Some(entry) => {
                entry.1 -= 1;
                true
            }
            None => false,
        }
    }

    pub fn io_error(name: &'static str) -> Result<(), crate::error::StoreError> {
        let fire = ARMED_HERE.with_borrow_mut(|a| take(a, name)) || take(&mut armed().lock(), name);
        if !fire {
            return Ok(());
        }
        eprintln!("I/O error injected at {name}");
        Err(crate::error::StoreError::Db(format!("injected I/O error at {name}")))
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
