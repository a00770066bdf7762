//! Strategy 4, a pool per job: each job gets k threads of its own, started when it is
//! submitted, which drain the job's queue and exit. The cap holds by construction, but the
//! process runs the sum of all caps in threads, not N, and pays a thread start per token.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::sync::Latch;
use super::workload::{Body, JobSpec};
use super::Report;

/// Starts each job's threads as it is submitted, then waits for every job.
pub fn run<B: Body>(jobs: &[JobSpec<B>]) -> Report {
    let latches: Vec<Arc<Latch>> = jobs
        .iter()
        .map(|job| {
            job.body.submitted();
            let queue: VecDeque<_> = (0..job.tasks)
                .map(|_| {
                    let body = job.body.clone();
                    move || body.run()
                })
                .collect();
            let queue = Arc::new(Mutex::new(queue));
            let done = Arc::new(Latch::new(job.tasks));
            for _ in 0..job.cap.min(job.tasks) {
                let queue = queue.clone();
                let done = done.clone();
                // Detached: a job's threads end with its queue; the latch says when.
                std::thread::spawn(move || loop {
                    let Some(task) = queue.lock().pop_front() else {
                        break;
                    };
                    task();
                    done.count_down(1);
                });
            }
            done
        })
        .collect();
    for latch in latches {
        latch.wait();
    }
    Report::default()
}
