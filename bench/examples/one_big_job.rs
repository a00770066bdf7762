//! The per-task cost of one big job of empty tasks, with nothing else around it: the figure
//! that W1 (`compare_strategies`) measures on a job too short (0.2 ms) to tell a per-task
//! change from a few microseconds of wake-up.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example one_big_job                # 4,000,000 tasks
//! cargo run --release -p jobpool-bench --example one_big_job -- 200000      # twice W1's
//! ```
//!
//! Pool of 2 threads, one job of `n` empty tasks with cap 2, submitted and waited for 41 times;
//! prints the median time per task with [min-max] in nanoseconds.

use std::time::Instant;

const JOBS: usize = 41;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(4_000_000, |arg| arg.parse().expect("a number of tasks"));
    let pool = jobpool::Pool::new(2);
    let mut per_task: Vec<f64> = (0..JOBS)
        .map(|_| {
            let start = Instant::now();
            pool.submit((0..n).map(|_| || ()), 2).wait().unwrap();
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    per_task.sort_by(f64::total_cmp);
    println!(
        "{n} empty tasks in one job, cap 2, N = 2: {:.3} [{:.3}-{:.3}] ns/task, median of {JOBS}",
        per_task[JOBS / 2],
        per_task[0],
        per_task[JOBS - 1]
    );
}
