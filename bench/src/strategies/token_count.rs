//! Strategy 1, token count: jobpool itself. Each job holds k tokens; a worker takes one before
//! it runs one of the job's tasks and gives it back after, and never blocks on a cap: when a
//! job has no free token, the job is simply not in the run queue.

use jobpool::Pool;

use super::workload::{Body, JobSpec};
use super::Report;

/// Submits every job, then waits for every handle.
pub fn run<B: Body>(pool: &Pool, jobs: &[JobSpec<B>]) -> Report {
    let handles: Vec<_> = jobs
        .iter()
        .map(|job| {
            job.body.submitted();
            let body = &job.body;
            let tasks = (0..job.tasks).map(|_| {
                let body = body.clone();
                move || body.run()
            });
            pool.submit(tasks, job.cap)
        })
        .collect();
    let mut report = Report::default();
    if B::TRACKED {
        // The pool's own count of tokens taken at once, to set beside the tasks' probes.
        for handle in &handles {
            while handle
                .wait_timeout(std::time::Duration::from_secs(60))
                .is_err()
            {}
        }
        report.pool_peaks = Some(handles.iter().map(|h| h.progress().peak_running).collect());
    }
    for handle in handles {
        handle.wait().expect("no task panics");
    }
    report
}
