//! Strategy 6, static partition: the tasks are split among the N threads before they start,
//! and each thread runs its slice with no shared queue: the floor for the cost of dispatch.
//!
//! A job's tasks go, evenly, to the `min(k, N)` threads with the least work so far, so its
//! cap holds by construction; each thread runs its slice in submission order.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{unbounded, Sender};

use super::sync::Latch;
use super::workload::{Body, JobSpec};
use super::Report;

type Slice = Box<dyn FnOnce() + Send>;

/// N threads, each with an inbox for its slice of a run.
pub struct StaticPool {
    inboxes: Vec<Sender<Slice>>,
    threads: Vec<JoinHandle<()>>,
}

impl StaticPool {
    pub fn new(threads: usize) -> StaticPool {
        let (inboxes, threads) = (0..threads)
            .map(|_| {
                let (tx, rx) = unbounded::<Slice>();
                let thread = std::thread::spawn(move || {
                    while let Ok(slice) = rx.recv() {
                        slice();
                    }
                });
                (tx, thread)
            })
            .unzip();
        StaticPool { inboxes, threads }
    }

    /// Splits the tasks, hands each thread its slice, and waits for all of them.
    pub fn run<B: Body>(&self, jobs: &[JobSpec<B>]) -> Report {
        let n = self.inboxes.len();
        let mut slices: Vec<Vec<B>> = (0..n).map(|_| Vec::new()).collect();
        // Planned load per thread: task lengths, or task counts for empty tasks.
        let mut load = vec![0u128; n];
        let mut order: Vec<usize> = (0..n).collect();
        for job in jobs {
            job.body.submitted();
            let width = job.cap.min(n).min(job.tasks);
            if width == 0 {
                continue;
            }
            order.sort_by_key(|&t| load[t]);
            let cost = job.body.nominal().as_nanos().max(1);
            for (i, &t) in order[..width].iter().enumerate() {
                let count = job.tasks / width + usize::from(i < job.tasks % width);
                slices[t].extend(std::iter::repeat(job.body.clone()).take(count));
                load[t] += cost * count as u128;
            }
        }
        let done = Arc::new(Latch::new(n));
        for (inbox, slice) in self.inboxes.iter().zip(slices) {
            let done = done.clone();
            let run = move || {
                for body in slice {
                    // black_box: the call happens, even for an empty task.
                    std::hint::black_box(&body).run();
                }
                done.count_down(1);
            };
            inbox.send(Box::new(run)).expect("thread alive");
        }
        done.wait();
        Report::default()
    }
}

impl Drop for StaticPool {
    fn drop(&mut self) {
        self.inboxes.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
