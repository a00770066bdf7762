//! Strategy 2, channel of channels: the "dynamic pool" pattern from Go.
//!
//! N workers receive job channels from one shared channel. A job is a channel of its tasks,
//! filled and closed by the submitter; to cap the job at k, its channel is sent k times into
//! the shared channel. A worker that receives it runs tasks from it until it is closed and
//! empty, then goes back to the shared channel for another job. At most k workers hold the
//! job's channel at once, so the cap holds; but a worker stays with its job to the end, so
//! jobs are served first come, first served.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{unbounded, Receiver, Sender, TryRecvError};

use super::sync::Latch;
use super::workload::{Body, JobSpec};
use super::Report;

type Task = Box<dyn FnOnce() + Send>;

/// One copy of a job's channel, as it travels through the shared channel.
struct JobChannel {
    tasks: Receiver<Task>,
    /// Go's `WaitGroup` for the job: `Done` after each task.
    done: Arc<Latch>,
}

/// The pool: N workers and the shared channel of job channels.
pub struct ChanOfChans {
    jobs: Option<Sender<JobChannel>>,
    threads: Vec<JoinHandle<()>>,
    /// Times a worker found its job's channel open but empty and blocked on it (a job still
    /// being filled). Jobs here are closed before they are dispatched, so this stays 0.
    stalls: Arc<AtomicU64>,
}

impl ChanOfChans {
    pub fn new(threads: usize) -> ChanOfChans {
        let (jobs, inbox) = unbounded::<JobChannel>();
        let stalls = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let inbox = inbox.clone();
                let stalls = stalls.clone();
                std::thread::spawn(move || worker(inbox, stalls))
            })
            .collect();
        ChanOfChans {
            jobs: Some(jobs),
            threads,
            stalls,
        }
    }

    /// Fills and closes each job's channel, sends it k times into the shared channel, then
    /// waits for every job.
    pub fn run<B: Body>(&self, jobs: &[JobSpec<B>]) -> Report {
        let shared = self.jobs.as_ref().expect("pool is running");
        let stalls_before = self.stalls.load(Relaxed);
        let latches: Vec<Arc<Latch>> = jobs
            .iter()
            .map(|job| {
                job.body.submitted();
                let (tx, rx) = unbounded::<Task>();
                for _ in 0..job.tasks {
                    let body = job.body.clone();
                    tx.send(Box::new(move || body.run()))
                        .expect("receiver alive");
                }
                drop(tx); // closed: a worker that finds it empty moves on
                let done = Arc::new(Latch::new(job.tasks));
                for _ in 0..job.cap {
                    let copy = JobChannel {
                        tasks: rx.clone(),
                        done: done.clone(),
                    };
                    shared.send(copy).expect("workers alive");
                }
                done
            })
            .collect();
        for latch in latches {
            latch.wait();
        }
        Report {
            stalls: Some(self.stalls.load(Relaxed) - stalls_before),
            ..Report::default()
        }
    }
}

fn worker(inbox: Receiver<JobChannel>, stalls: Arc<AtomicU64>) {
    while let Ok(job) = inbox.recv() {
        loop {
            let task = match job.tasks.try_recv() {
                Ok(task) => task,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    stalls.fetch_add(1, Relaxed);
                    match job.tasks.recv() {
                        Ok(task) => task,
                        Err(_) => break,
                    }
                }
            };
            task();
            job.done.count_down(1);
        }
    }
}

impl Drop for ChanOfChans {
    fn drop(&mut self) {
        self.jobs.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
