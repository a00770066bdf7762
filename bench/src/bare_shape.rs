//! A bare pool of jobpool's shape: how little a pool can cost that runs jobs on N threads
//! pulling from **one shared queue of per-job entries**, each job with its own cap kept by a
//! **token count**, when it keeps none of jobpool's other promises. `vs_rayon` runs it beside
//! jobpool and rayon's `par_iter`, so that the part of jobpool's cost that comes with the shape
//! can be told from the part that comes with everything else.
//!
//! What it keeps of the shape:
//! - one queue shared by every worker (crossbeam's lock-free `Injector`, cheaper than the
//!   locked priority queue jobpool needs for its order of service), holding a job at most
//!   once per free token;
//! - a token taken (a compare-and-swap under the cap) before a worker runs a job's tasks and
//!   given back after, and the job queued again when a token is still free and tasks remain,
//!   so that the cap is reached;
//! - tasks claimed in chunks, a token's share of what remains (`remaining / cap`), by one
//!   `fetch_add`;
//! - idle workers that yield 32 times, then sleep until a push wakes them; a waiter that
//!   blocks until the job's last task ran.
//!
//! What it leaves out, each a promise of jobpool's: the tasks' results (jobpool returns them
//! in order) and their panics (a panic here kills the worker); cancellation, deadlines and
//! the per-task checks that make them stop tasks not started; retries, limiters, priorities,
//! the order of service and its clock; handing claimed tasks back; changing the cap; nested
//! waits that help; shutdown that finishes accepted work; observability. It is a benchmark
//! contender, not a pool to use.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::deque::{Injector, Steal};
use crossbeam::utils::CachePadded;
use parking_lot::{Condvar, Mutex};

/// How many times an idle worker yields its core, looking at the queue between, before it
/// sleeps (jobpool's `find_work` spins as many rounds).
const SPIN_ROUNDS: usize = 32;

/// A job as the queue sees it.
trait Entry: Send + Sync {
    /// Takes a token, if one is free, and runs the job's tasks with it.
    fn run(self: Arc<Self>, shared: &Shared);
}

/// What the workers and the submitters share.
struct Shared {
    queue: Injector<Arc<dyn Entry>>,
    /// Workers asleep, or about to sleep, on `wake`.
    sleepers: CachePadded<AtomicUsize>,
    sleep: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
}

impl Shared {
    /// Queues `entry` and wakes a sleeping worker if there is one.
    fn push(&self, entry: Arc<dyn Entry>) {
        self.queue.push(entry);
        // SeqCst: pairs with the sleeper's `fetch_add` on `sleepers` before its look at the
        // queue: either it sees this entry, or this sees it counted and wakes it.
        fence(SeqCst);
        if self.sleepers.load(SeqCst) > 0 {
            let _sleep = self.sleep.lock();
            self.wake.notify_one();
        }
    }

    fn pop(&self) -> Option<Arc<dyn Entry>> {
        loop {
            match self.queue.steal() {
                Steal::Success(entry) => return Some(entry),
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    fn work(&self) {
        'look: loop {
            if let Some(entry) = self.pop() {
                entry.run(self);
                continue;
            }
            for _ in 0..SPIN_ROUNDS {
                std::thread::yield_now();
                if !self.queue.is_empty() {
                    continue 'look;
                }
            }
            let mut sleep = self.sleep.lock();
            // SeqCst: pairs with the fence in `push` (above).
            self.sleepers.fetch_add(1, SeqCst);
            if self.queue.is_empty() && !self.stop.load(SeqCst) {
                self.wake.wait(&mut sleep);
            }
            self.sleepers.fetch_sub(1, SeqCst);
            if self.stop.load(SeqCst) && self.queue.is_empty() {
                return;
            }
        }
    }
}

/// One job: its tasks, its cap, and the counts that share them out.
struct Job<F> {
    tasks: Box<[F]>,
    cap: usize,
    /// Tokens taken.
    running: AtomicUsize,
    /// The index of the first task not claimed yet.
    next: AtomicUsize,
    /// Tasks that ran.
    done: AtomicUsize,
    ended: Mutex<bool>,
    end: Condvar,
}

impl<F: Fn() + Send + Sync + 'static> Entry for Job<F> {
    fn run(self: Arc<Self>, shared: &Shared) {
        let total = self.tasks.len();
        let mut running = self.running.load(Relaxed);
        loop {
            if running >= self.cap || self.next.load(Relaxed) >= total {
                return; // No token free, or nothing left to claim: a stale entry.
            }
            match self
                .running
                .compare_exchange_weak(running, running + 1, Acquire, Relaxed)
            {
                Ok(_) => break,
                Err(now) => running = now,
            }
        }
        if running + 1 < self.cap && self.next.load(Relaxed) < total {
            shared.push(self.clone());
        }
        let mut ran = 0;
        loop {
            let next = self.next.load(Relaxed);
            if next >= total {
                break;
            }
            let share = ((total - next) / self.cap).max(1);
            let first = self.next.fetch_add(share, Relaxed);
            if first >= total {
                break;
            }
            let end = total.min(first + share);
            for task in &self.tasks[first..end] {
                // black_box: the call happens, even for an empty task (as `par_iter`'s
                // body passes its index through `black_box`).
                std::hint::black_box(task)();
            }
            ran += end - first;
        }
        // Every task is claimed: no token given back leaves one unclaimed.
        self.running.fetch_sub(1, Release);
        // AcqRel: the last count sees every task's effects, and the waiter sees them through
        // the lock below (or through `done`, Acquire, in `wait`).
        if ran > 0 && self.done.fetch_add(ran, AcqRel) + ran == total {
            *self.ended.lock() = true;
            self.end.notify_all();
        }
    }
}

/// The handle of a job submitted to a [`BarePool`].
pub struct BareJob<F> {
    job: Arc<Job<F>>,
}

impl<F> BareJob<F> {
    /// Blocks until every task of the job ran.
    pub fn wait(self) {
        let job = &self.job;
        // Acquire: pairs with the last worker's `fetch_add` on `done`.
        if job.done.load(Acquire) == job.tasks.len() {
            return;
        }
        let mut ended = job.ended.lock();
        while !*ended {
            job.end.wait(&mut ended);
        }
    }
}

/// N threads and their shared queue (see the module's docs).
pub struct BarePool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl BarePool {
    pub fn new(threads: usize) -> BarePool {
        let shared = Arc::new(Shared {
            queue: Injector::new(),
            sleepers: CachePadded::new(AtomicUsize::new(0)),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let threads = (0..threads)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || shared.work())
            })
            .collect();
        BarePool { shared, threads }
    }

    /// Submits one job of `tasks`, at most `cap` of them running at once.
    pub fn submit<F, I>(&self, tasks: I, cap: usize) -> BareJob<F>
    where
        F: Fn() + Send + Sync + 'static,
        I: IntoIterator<Item = F>,
    {
        assert!(cap > 0, "cap 0");
        let tasks: Box<[F]> = tasks.into_iter().collect();
        let empty = tasks.is_empty();
        let job = Arc::new(Job {
            tasks,
            cap,
            running: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            ended: Mutex::new(empty),
            end: Condvar::new(),
        });
        if !empty {
            self.shared.push(job.clone());
        }
        BareJob { job }
    }
}

impl Drop for BarePool {
    /// Stops the workers once the queue is empty, and joins them.
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        {
            let _sleep = self.shared.sleep.lock();
            self.shared.wake.notify_all();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    use super::BarePool;

    #[test]
    fn every_task_runs_once_under_its_cap() {
        let pool = BarePool::new(3);
        let jobs: Vec<_> = (0..200)
            .map(|n| {
                let count = Arc::new(AtomicUsize::new(0));
                let (active, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
                let tasks: Vec<_> = (0..n % 17)
                    .map(|_| {
                        let (count, active, peak) = (count.clone(), active.clone(), peak.clone());
                        move || {
                            peak.fetch_max(active.fetch_add(1, Relaxed) + 1, Relaxed);
                            count.fetch_add(1, Relaxed);
                            active.fetch_sub(1, Relaxed);
                        }
                    })
                    .collect();
                let cap = 1 + n % 2;
                (pool.submit(tasks, cap), count, peak, n % 17, cap)
            })
            .collect();
        for (job, count, peak, tasks, cap) in jobs {
            job.wait();
            assert_eq!(count.load(Relaxed), tasks);
            assert!(peak.load(Relaxed) <= cap);
        }
    }
}
