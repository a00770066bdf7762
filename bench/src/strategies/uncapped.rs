//! Strategy 5, uncapped: the same jobs with their caps ignored, on rayon and on the plain
//! shared-queue pool (`QueuePool::run(jobs, false)`). What the caps cost, and a baseline for
//! the dispatch of one task. Its peaks show the caps it breaks.

use super::workload::{Body, JobSpec};
use super::Report;

/// Every task spawned into one rayon scope.
pub fn run_rayon<B: Body>(pool: &rayon::ThreadPool, jobs: &[JobSpec<B>]) -> Report {
    pool.scope(|s| {
        for job in jobs {
            job.body.submitted();
            for _ in 0..job.tasks {
                let body = job.body.clone();
                s.spawn(move |_| body.run());
            }
        }
    });
    Report::default()
}
