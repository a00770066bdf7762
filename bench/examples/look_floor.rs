//! What a look before each task costs, on one thread: the floor under jobpool's per-task cost
//! on a big job of empty tasks, against rayon's `par_iter`, which looks at nothing.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example look_floor
//! ```
//!
//! Every task of a jobpool job is looked at before it starts (`src/scheduler/README.md`, rule
//! 3: the job's `looks` and the pool's `yield_requests` compared with their values at the
//! claim), so that a cancel, a `shutdown_now` or a job queued meanwhile stops what has not
//! started. Five loops over n = 4,000,000 items, interleaved, 31 rounds, ns per item, median
//! [min-max], all on the calling thread (the two one-thread pools run theirs on their worker):
//!
//! - **bare**: `black_box(i)` per item, nothing else;
//! - **look**: the same, after a look as the quiet loop makes it: two relaxed loads of
//!   counters on lines of their own, compared with the values read before the loop, one
//!   branch for both, and how many items are left looked at once per four;
//! - **look, a branch each**: the two compares with a branch each, and the count before each
//!   item (the quiet loop before 5616e13);
//! - **rayon `par_iter`**: `(0..n).into_par_iter().for_each(|i| black_box(i))` on a rayon pool
//!   of one thread;
//! - **jobpool**: one job of n tasks `|| ()`, cap 1, on a pool of one thread, its results
//!   waited for: the look, plus everything else a job does (claims, chunk ends, results).
//!
//! The counters never move here: the loops run to the end.

use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam::utils::CachePadded;
use jobpool_bench::summary::spread;
use rayon::prelude::*;

const ITEMS: usize = 4_000_000;
const ROUNDS: usize = 31;

/// Stand-ins for a job's `looks` and a pool's `yield_requests`, each on a line of its own.
static LOOKS: CachePadded<AtomicU64> = CachePadded::new(AtomicU64::new(0));
static YIELD_REQUESTS: CachePadded<AtomicU64> = CachePadded::new(AtomicU64::new(0));

/// `black_box(i)` for each of `n` items.
#[inline(never)]
fn bare(n: usize) {
    for i in 0..n {
        black_box(i);
    }
}

/// As `bare`, each item after a look: both counters compared, one branch; the count of what
/// is left looked at once per four. Returns the item before which a counter moved, or `n`.
#[inline(never)]
fn look(n: usize, looks: u64, yield_requests: u64) -> usize {
    let mut i = 0;
    while i + 4 <= n {
        for _ in 0..4 {
            if (LOOKS.load(Relaxed) ^ looks) | (YIELD_REQUESTS.load(Relaxed) ^ yield_requests) != 0
            {
                return i;
            }
            black_box(i);
            i += 1;
        }
    }
    for i in i..n {
        if (LOOKS.load(Relaxed) ^ looks) | (YIELD_REQUESTS.load(Relaxed) ^ yield_requests) != 0 {
            return i;
        }
        black_box(i);
    }
    n
}

/// As `look`, with a branch for each counter and the count looked at before each item.
#[inline(never)]
fn look_branch_each(n: usize, looks: u64, yield_requests: u64) -> usize {
    for i in 0..n {
        if LOOKS.load(Relaxed) != looks || YIELD_REQUESTS.load(Relaxed) != yield_requests {
            return i;
        }
        black_box(i);
    }
    n
}

/// Nanoseconds per item of one run of `f`.
fn per_item(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_nanos() as f64 / ITEMS as f64
}

fn main() {
    // Written once, so that the compiler cannot take the counters for constants.
    LOOKS.store(black_box(0), Relaxed);
    YIELD_REQUESTS.store(black_box(0), Relaxed);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a rayon pool");
    let pool = jobpool::Pool::new(1);
    let names = [
        "bare",
        "look",
        "look, a branch each",
        "rayon par_iter",
        "jobpool",
    ];
    let mut ns: [Vec<f64>; 5] = Default::default();
    for _ in 0..ROUNDS {
        let n = black_box(ITEMS);
        let (looks, requests) = (black_box(0), black_box(0));
        ns[0].push(per_item(|| bare(n)));
        ns[1].push(per_item(|| assert_eq!(look(n, looks, requests), n)));
        ns[2].push(per_item(|| {
            assert_eq!(look_branch_each(n, looks, requests), n)
        }));
        ns[3].push(per_item(|| {
            rayon.install(|| {
                (0..n).into_par_iter().for_each(|i| {
                    black_box(i);
                })
            })
        }));
        ns[4].push(per_item(|| {
            black_box(pool.submit((0..n).map(|_| || ()), 1).wait().unwrap());
        }));
    }
    println!("{ITEMS} items on one thread, ns per item, median [min-max] of {ROUNDS}:");
    for (name, samples) in names.iter().zip(&ns) {
        println!("  {name:20} {}", spread(samples, 3));
    }
}
