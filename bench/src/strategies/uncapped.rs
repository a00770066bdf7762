//! Strategy 5, uncapped: the same jobs with their caps ignored, on rayon (two ways) and on the
//! plain shared-queue pool (`QueuePool::run(jobs, false)`). What the caps cost, and a baseline
//! for the dispatch of one task. Its peaks show the caps it breaks.
//!
//! rayon runs the jobs either as independent closures (`scope` + `spawn`, one heap-allocated
//! task each) or on its data-parallel path (one `par_iter` per job, which splits the job's
//! index range in halves as idle workers steal them, and allocates nothing per task).

use rayon::prelude::*;

use super::workload::{Body, JobSpec};
use super::Report;

/// Every task spawned into one rayon scope.
pub fn run_rayon_spawn<B: Body>(pool: &rayon::ThreadPool, jobs: &[JobSpec<B>]) -> Report {
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

/// Each job one `(0..tasks).into_par_iter().for_each(..)`, the jobs spawned into one rayon
/// scope so that they run side by side. The tasks share the job's body by reference.
pub fn run_rayon_par_iter<B: Body>(pool: &rayon::ThreadPool, jobs: &[JobSpec<B>]) -> Report {
    pool.scope(|s| {
        for job in jobs {
            job.body.submitted();
            s.spawn(move |_| {
                (0..job.tasks).into_par_iter().for_each(|_| {
                    // black_box: the call happens, even for an empty task.
                    std::hint::black_box(&job.body).run();
                })
            });
        }
    });
    Report::default()
}
