//! Where one big job's time goes against rayon's `par_iter`: the cost of a job of n empty
//! tasks for n from 1 to 1,000,000, so that the cost per job (the start and the end: waking
//! workers, the waiter's wake-up) and the cost per task (the slope) can be told apart.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example job_size_sweep               # N = 2
//! cargo run --release -p jobpool-bench --example job_size_sweep -- --threads 8
//! cargo run --release -p jobpool-bench --example job_size_sweep -- --idle-ms 5   # cold starts
//! ```
//!
//! For each n, 41 rounds; each round runs one jobpool job (n tasks `|| ()`, cap k = N, its
//! results waited for) and one `(0..n).into_par_iter().for_each(..)` under rayon's `install`,
//! in alternating order, each timed from submission to the return of `wait` (`install`).
//! Printed per n: each contender's median µs per job with [min-max], and jobpool over
//! `par_iter`, taken per round. Then the slope between the two largest n, in ns per task.
//!
//! With `--idle-ms M`, the program sleeps M ms before each job (untimed), so that both pools'
//! workers have gone to sleep when it starts: every job then pays for waking them, as a job
//! that comes after a quiet spell does. Without it, a pool's workers may still be awake from
//! its last job, or asleep after the other pool's.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jobpool::Pool;
use jobpool_bench::cli::positive;
use jobpool_bench::summary::{median, spread};
use rayon::prelude::*;

const SIZES: [usize; 6] = [1, 1_000, 10_000, 100_000, 200_000, 1_000_000];
const ROUNDS: usize = 41;

/// One job of `n` empty tasks on jobpool, cap `cap`; its time in µs.
fn jobpool_job(pool: &Pool, n: usize, cap: usize) -> f64 {
    let start = Instant::now();
    black_box(
        pool.submit((0..n).map(|_| || ()), cap)
            .wait()
            .expect("no task panics"),
    );
    start.elapsed().as_secs_f64() * 1e6
}

/// `(0..n).into_par_iter()` on rayon; its time in µs.
fn par_iter_job(pool: &rayon::ThreadPool, n: usize) -> f64 {
    let start = Instant::now();
    pool.install(|| {
        (0..n).into_par_iter().for_each(|i| {
            black_box(i);
        })
    });
    start.elapsed().as_secs_f64() * 1e6
}

fn main() {
    let mut threads = 2;
    let mut idle = Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => threads = positive(args.next(), "--threads"),
            "--idle-ms" => {
                idle = Duration::from_millis(positive(args.next(), "--idle-ms") as u64);
            }
            other => {
                eprintln!(
                    "unknown argument {other:?}; usage: job_size_sweep [--threads N] [--idle-ms M]"
                );
                std::process::exit(2);
            }
        }
    }
    let pool = Pool::new(threads);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool");
    println!(
        "jobs of n empty tasks, N = k = {threads}: µs per job, median [min-max] of {ROUNDS}, \
         {} ms idle before each",
        idle.as_millis()
    );
    let mut medians = Vec::new();
    for n in SIZES {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let ours_first = round % 2 == 0;
            for ours_now in [ours_first, !ours_first] {
                std::thread::sleep(idle);
                if ours_now {
                    ours.push(jobpool_job(&pool, n, threads));
                } else {
                    theirs.push(par_iter_job(&rayon, n));
                }
            }
        }
        let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
        println!(
            "  n = {n:>9}: jobpool {:>22}  par_iter {:>22}  jobpool / par_iter {}",
            spread(&ours, 1),
            spread(&theirs, 1),
            spread(&ratios, 2)
        );
        medians.push((n, median(&ours), median(&theirs)));
    }
    let [.., (n1, ours1, theirs1), (n2, ours2, theirs2)] = medians[..] else {
        unreachable!("two sizes at least")
    };
    let per_task = |a: f64, b: f64| (b - a) * 1e3 / (n2 - n1) as f64;
    println!(
        "slope from n = {n1} to {n2}: jobpool {:.3} ns a task, par_iter {:.3}",
        per_task(ours1, ours2),
        per_task(theirs1, theirs2)
    );
}
