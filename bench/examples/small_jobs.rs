//! The per-job cost of many small jobs of empty tasks, with nothing else around them: W2 of
//! `compare_strategies` alone, so that two builds can be compared run against run.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example small_jobs
//! ```
//!
//! Pool of 2 threads; 10,000 jobs of 8 empty tasks each, cap 2, all submitted, then each waited
//! for, 21 times; prints the median time per task with [min-max] in nanoseconds.

use std::time::Instant;

const JOBS: usize = 10_000;
const TASKS: usize = 8;
const RUNS: usize = 21;

fn main() {
    let pool = jobpool::Pool::new(2);
    let mut per_task: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let jobs: Vec<_> = (0..JOBS)
                .map(|_| pool.submit((0..TASKS).map(|_| || ()), 2))
                .collect();
            for job in jobs {
                job.wait().unwrap();
            }
            start.elapsed().as_nanos() as f64 / (JOBS * TASKS) as f64
        })
        .collect();
    per_task.sort_by(f64::total_cmp);
    println!(
        "{JOBS} jobs of {TASKS} empty tasks, cap 2, N = 2: {:.1} [{:.1}-{:.1}] ns/task, median of {RUNS}",
        per_task[RUNS / 2],
        per_task[0],
        per_task[RUNS - 1]
    );
}
