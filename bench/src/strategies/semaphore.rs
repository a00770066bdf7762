//! Strategy 3, semaphore in the task: the pool knows nothing of caps; each task first takes a
//! permit of its job's counting semaphore, so a worker that picks a task of a job at its cap
//! blocks until one of the job's running tasks ends, even if other jobs' tasks wait behind it.
//!
//! Two pools carry it: the plain shared queue (`QueuePool::run(jobs, true)`) and rayon
//! (below).

use std::sync::Arc;

use super::sync::{BlockStats, JobSemaphore};
use super::workload::{Body, JobSpec};
use super::Report;

/// Every task spawned into one rayon scope, each wrapped in its job's semaphore.
pub fn run_rayon<B: Body>(pool: &rayon::ThreadPool, jobs: &[JobSpec<B>]) -> Report {
    let stats = Arc::new(BlockStats::default());
    let semaphores: Vec<JobSemaphore> = jobs.iter().map(|j| JobSemaphore::new(j.cap)).collect();
    pool.scope(|s| {
        for (job, semaphore) in jobs.iter().zip(&semaphores) {
            job.body.submitted();
            for _ in 0..job.tasks {
                if B::TRACKED {
                    semaphore.queued(&stats);
                }
                let body = job.body.clone();
                let stats = &stats;
                s.spawn(move |_| {
                    semaphore.acquire(stats, B::TRACKED);
                    body.run();
                    semaphore.release();
                });
            }
        }
    });
    Report::with_blocks(B::TRACKED, &stats)
}
