//! Mempool admission against the depth of the sender's run (issue #15: "a sender with 10,000
//! queued nonces: admission time per transaction stays flat").
//!
//! Setup (not timed): one sender with `depth` pooled transactions (nonces `0..depth`, a per-sender
//! cap raised to 20,000 so that 10,000 fit), signed before timing.
//!
//! - `admission/insert/<depth>`: `Mempool::insert` of nonce `depth` (the next one), for depth 0,
//!   1,000 and 10,000; the transaction is taken out again after each timed insert (untimed), so
//!   every iteration sees the same pool.
//! - `admission/precheck/<depth>`: `Mempool::precheck` of the same transaction (the check before
//!   the signature).
//!
//! For a figure that does not depend on the machine's load, `ADMISSION_CALLGRIND=<depth>` skips
//! criterion and runs 1,000 insert/remove rounds at that depth through [`admit`], a function
//! callgrind can collect on its own:
//!
//! ```text
//! cargo bench -p vision-mempool --bench admission --no-run   # prints the binary's path
//! ADMISSION_CALLGRIND=10000 valgrind --tool=callgrind --toggle-collect='*admission::admit*' \
//!     --callgrind-out-file=/tmp/cg.10000 target/release/deps/admission-<hash>
//! callgrind_annotate /tmp/cg.10000 | head      # total instructions / 1,000 = per insert
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use vision_mempool::{Ahead, Limits, Mempool};
use vision_primitives::keys::Keypair;
use vision_primitives::types::{Address, Transaction, TxKind};
use vision_state::Account;

/// Depths of the sender's run measured.
const DEPTHS: [usize; 3] = [0, 1_000, 10_000];
/// Rounds of the callgrind mode.
const CALLGRIND_ROUNDS: u64 = 1_000;

fn account() -> Account {
    Account { balance: u128::MAX / 2, nonce: 0 }
}

fn signed(kp: &Keypair, n: usize) -> Vec<Transaction> {
    (0..n as u64)
        .map(|nonce| {
            let mut t = Transaction {
                chain_id: 1,
                from: kp.address(),
                nonce,
                fee: 10,
                kind: TxKind::Transfer { to: Address([0xee; 32]), amount: 1 },
                signature: [0; 64],
            };
            kp.sign_tx(&mut t, &vision_primitives::types::Hash::ZERO);
            t
        })
        .collect()
}

/// A pool holding `txs[..depth]`.
fn pool_at(txs: &[Transaction], depth: usize) -> Mempool {
    let pool = Mempool::new(Limits { max_per_sender: 20_000, ..Limits::default() }, 1);
    for t in &txs[..depth] {
        pool.insert(*t, account()).expect("setup: every nonce in order enters");
    }
    pool
}

/// One admission, kept out of line so that callgrind can collect it alone.
#[inline(never)]
fn admit(pool: &Mempool, tx: Transaction) {
    if let Err(e) = pool.insert(tx, account()) {
        panic!("the next nonce must enter: {e}");
    }
}

fn bench(c: &mut Criterion) {
    let kp = Keypair::from_seed(&[7; 32]);
    let txs = signed(&kp, DEPTHS[2] + 1);
    let mut g = c.benchmark_group("admission");
    g.measurement_time(Duration::from_secs(3));
    for depth in DEPTHS {
        let pool = pool_at(&txs, depth);
        let next = txs[depth];
        g.bench_function(format!("insert/{depth}"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    admit(&pool, black_box(next));
                    timed += start.elapsed();
                    pool.remove_with_descendants(&next.id());
                }
                timed
            })
        });
        g.bench_function(format!("precheck/{depth}"), |b| {
            b.iter(|| pool.precheck(black_box(&next), account(), &mut Ahead::default()))
        });
        assert_eq!(pool.len(), depth, "every iteration saw the same pool");
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(depth) = std::env::var("ADMISSION_CALLGRIND") {
        let depth: usize =
            depth.parse().unwrap_or_else(|_| panic!("ADMISSION_CALLGRIND={depth:?}: a depth, e.g. 10000"));
        let kp = Keypair::from_seed(&[7; 32]);
        let txs = signed(&kp, depth + 1);
        let pool = pool_at(&txs, depth);
        let next = txs[depth];
        for _ in 0..CALLGRIND_ROUNDS {
            admit(&pool, black_box(next));
            pool.remove_with_descendants(&next.id());
        }
        println!("callgrind mode: {CALLGRIND_ROUNDS} inserts at depth {depth}");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
