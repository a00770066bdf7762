//! A plain shared-queue pool: N workers pull boxed tasks from one MPMC channel, first in,
//! first out. Strategy 3 runs it with a semaphore per job, strategy 5 without.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{unbounded, Receiver, Sender};

use super::sync::{BlockStats, JobSemaphore, Latch};
use super::workload::{Body, JobSpec};
use super::Report;

/// A queued task and the job it belongs to.
struct QueuedTask {
    run: Box<dyn FnOnce() + Send>,
    job: Arc<QueuedJob>,
}

/// What a queued task's worker needs of its job.
struct QueuedJob {
    done: Latch,
    /// The job's semaphore, if it is capped this way.
    semaphore: Option<JobSemaphore>,
    stats: Arc<BlockStats>,
    track: bool,
}

/// N workers around one shared FIFO queue.
pub struct QueuePool {
    queue: Option<Sender<QueuedTask>>,
    threads: Vec<JoinHandle<()>>,
}

impl QueuePool {
    pub fn new(threads: usize) -> QueuePool {
        let (queue, inbox) = unbounded::<QueuedTask>();
        let threads = (0..threads)
            .map(|_| {
                let inbox = inbox.clone();
                std::thread::spawn(move || worker(inbox))
            })
            .collect();
        QueuePool {
            queue: Some(queue),
            threads,
        }
    }

    /// Queues every task of every job, then waits for every job. With `capped`, each task
    /// first takes a permit of its job's semaphore, blocking its worker while the job is at its
    /// cap.
    pub fn run<B: Body>(&self, jobs: &[JobSpec<B>], capped: bool) -> Report {
        let queue = self.queue.as_ref().expect("pool is running");
        let stats = Arc::new(BlockStats::default());
        let handles: Vec<Arc<QueuedJob>> = jobs
            .iter()
            .map(|job| {
                job.body.submitted();
                let shared = Arc::new(QueuedJob {
                    done: Latch::new(job.tasks),
                    semaphore: capped.then(|| JobSemaphore::new(job.cap)),
                    stats: stats.clone(),
                    track: B::TRACKED,
                });
                for _ in 0..job.tasks {
                    if let (true, Some(semaphore)) = (B::TRACKED, &shared.semaphore) {
                        semaphore.queued(&stats);
                    }
                    let body = job.body.clone();
                    let task = QueuedTask {
                        run: Box::new(move || body.run()),
                        job: shared.clone(),
                    };
                    queue.send(task).expect("workers alive");
                }
                shared
            })
            .collect();
        for job in &handles {
            job.done.wait();
        }
        Report::with_blocks(capped && B::TRACKED, &stats)
    }
}

fn worker(inbox: Receiver<QueuedTask>) {
    while let Ok(task) = inbox.recv() {
        let job = task.job;
        if let Some(semaphore) = &job.semaphore {
            semaphore.acquire(&job.stats, job.track);
        }
        (task.run)();
        if let Some(semaphore) = &job.semaphore {
            semaphore.release();
        }
        job.done.count_down(1);
    }
}

impl Drop for QueuePool {
    fn drop(&mut self) {
        self.queue.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
