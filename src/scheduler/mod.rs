//! The registry: the shared run queue of jobs, and how idle workers sleep and wake.
//!
//! The protocol that connects this module with the jobs (who may put a job in the run queue,
//! when a token comes back, and why no wake-up is ever lost) is written down in `README.md`
//! beside this file.

mod run_queue;
pub(crate) mod worker;

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::utils::CachePadded;

use crate::error::SubmitErrorKind;
use crate::sync::{thread, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex};
use crate::unwind::drop_each_quietly;
use run_queue::RunQueue;

/// A job as the scheduler sees it: something a worker can pop from the run queue and run.
pub(crate) trait Schedulable: Send + Sync + 'static {
    /// Runs the job on the current worker after it was popped from the run queue: takes a
    /// token if one is free and runs tasks while the scheduler's rules allow.
    fn run_popped(self: Arc<Self>);

    /// The job's attained service, its key in the run queue: nanoseconds its tasks have run.
    fn attained(&self) -> u64;

    /// Whether every task of the job has an outcome. Such a job can never be runnable again,
    /// so its run-queue entry is dead and can be dropped without a look at the job (README.md,
    /// rule 2). A job whose tasks are merely all claimed is not dead: a claimed task may be
    /// handed back unstarted.
    fn is_finished(&self) -> bool;
}

/// How many times an idle worker looks at the run queue, yielding its core in between, before
/// it goes to sleep. Spinning briefly saves a sleep and a wake-up (a context switch each) when
/// work arrives in quick succession, as when a program submits many small jobs in a loop.
#[cfg(not(loom))]
const SPIN_ROUNDS: usize = 32;
/// Under loom every yield is a scheduling point to explore: spin once.
#[cfg(loom)]
const SPIN_ROUNDS: usize = 1;

/// The state shared by a pool's workers and handles.
pub(crate) struct Registry {
    /// Tells the pool's worker threads apart from every other thread (see `worker.rs`).
    id: usize,
    threads: usize,
    time_slice: Duration,
    shared: Mutex<Shared>,
    /// Idle workers sleep here; notified under `shared`'s lock (see README.md).
    work_available: Condvar,
    /// `shared.queue.min_key()`, readable without the lock: how little service the least served
    /// queued job has had. Written under the lock; read `Relaxed` by workers deciding whether to
    /// yield (a heuristic) and by spinning workers (who re-check under the lock).
    queued_min: AtomicU64,
    /// Jobs accepted and not yet finished (their completion callbacks included).
    live_jobs: AtomicUsize,
    /// What a worker checks before every task, whatever the job: on a cache line of its own,
    /// away from `queued_min` and the lock, written only when it changes.
    gate: CachePadded<PoolGate>,
}

/// The pool-wide flags a worker checks before each task.
#[derive(Default)]
struct PoolGate {
    /// Set once by `shutdown(cancel = true)`: pending tasks are cancelled instead of run.
    cancel_all: AtomicBool,
    /// Bumped when a job is queued while no worker is idle to take it: every worker in a chunk
    /// then ends it after its current task and looks at the run queue's fairness rule, so a
    /// waiting job is never held up by a chunk of tasks that turned long (README.md, rule 3).
    yield_requests: AtomicU64,
}

/// What `Registry::shared` guards.
struct Shared {
    queue: RunQueue,
    /// Workers blocked on `work_available`.
    sleepers: usize,
    /// Idle workers polling the queue between yields; each re-checks under the lock before
    /// it sleeps, so a job pushed while one spins needs no notification.
    spinners: usize,
    /// Notifications sent to sleepers that have not woken up yet.
    wakeups: usize,
    /// No more jobs from outside the pool; workers leave once no job is live.
    shutdown: bool,
    /// The value last written to `Registry::queued_min`.
    published_min: u64,
}

impl Registry {
    pub(crate) fn new(threads: usize, time_slice: Duration) -> Registry {
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        Registry {
            id: NEXT_ID.fetch_add(1, Relaxed),
            threads,
            time_slice,
            shared: Mutex::new(Shared {
                queue: RunQueue::default(),
                sleepers: 0,
                spinners: 0,
                wakeups: 0,
                shutdown: false,
                published_min: u64::MAX,
            }),
            work_available: Condvar::new(),
            queued_min: AtomicU64::new(u64::MAX),
            live_jobs: AtomicUsize::new(0),
            gate: CachePadded::new(PoolGate::default()),
        }
    }

    /// The number of worker threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// How long a worker keeps serving one job while a less served job waits.
    pub(crate) fn time_slice(&self) -> Duration {
        self.time_slice
    }

    /// Whether the current thread is one of this pool's workers.
    pub(crate) fn is_current_worker(&self) -> bool {
        worker::current_registry_id() == self.id
    }

    /// Accepts a new job and, if it has tasks, puts it in the run queue with key 0.
    ///
    /// After `shutdown` only the pool's own workers may still submit (a running task that
    /// starts sub-jobs is part of work already accepted).
    pub(crate) fn admit(&self, job: Option<Arc<dyn Schedulable>>) -> Result<(), SubmitErrorKind> {
        let mut shared = self.shared.lock();
        if shared.shutdown && !self.is_current_worker() {
            return Err(SubmitErrorKind::ShutDown);
        }
        if let Some(job) = job {
            // Counted under the lock that workers hold when they decide to exit: a worker
            // never leaves while an admitted job is not finished.
            self.live_jobs.fetch_add(1, SeqCst);
            self.push_locked(&mut shared, job, 0);
        }
        Ok(())
    }

    /// Puts a job back in the run queue. The caller set the job's `queued` flag, under the
    /// job's lock, so a job has at most one entry (README.md, rule 1).
    pub(crate) fn push(&self, job: Arc<dyn Schedulable>, key: u64) {
        let mut shared = self.shared.lock();
        self.push_locked(&mut shared, job, key);
    }

    fn push_locked(&self, shared: &mut Shared, job: Arc<dyn Schedulable>, key: u64) {
        shared.queue.push(job, key);
        self.publish_min(shared);
        if shared.sleepers == 0 && shared.spinners == 0 {
            // Every worker is busy: ask them to look up from their chunks (rule 3).
            self.gate.yield_requests.fetch_add(1, Relaxed);
        }
        // Wake a sleeper only for work that no awake idle worker will take (README.md, rule 4).
        if shared.sleepers > shared.wakeups && shared.queue.len() > shared.spinners + shared.wakeups
        {
            shared.wakeups += 1;
            self.work_available.notify_one();
        }
    }

    /// Mirrors the run queue's smallest key into `queued_min`, writing the atomic only when
    /// the value changes (every write is a cache miss for the workers that read it).
    #[inline]
    fn publish_min(&self, shared: &mut Shared) {
        let min = shared.queue.min_key();
        if min != shared.published_min {
            shared.published_min = min;
            self.queued_min.store(min, Relaxed);
        }
    }

    /// Whether a queued job has had less service than `attained`, so that a worker serving a
    /// job with that much service should hand its token back at the end of its time slice.
    #[inline]
    pub(crate) fn less_served_waiting(&self, attained: u64) -> bool {
        self.queued_min.load(Relaxed) < attained
    }

    /// Whether `shutdown_now` asked to cancel every pending task.
    #[inline]
    pub(crate) fn cancelling(&self) -> bool {
        self.gate.cancel_all.load(Relaxed)
    }

    /// How many times a worker in a chunk was asked to look up from it; see
    /// `PoolGate::yield_requests`.
    #[inline]
    pub(crate) fn yield_requests(&self) -> u64 {
        self.gate.yield_requests.load(Relaxed)
    }

    /// Blocks until there is a job to run; `None` when the worker should exit.
    ///
    /// The run queue hands back the dead entries it meets; they are dropped here, with the lock
    /// released and under `catch_unwind`: an entry may hold the last reference to a detached
    /// job, whose results are user values with a `Drop` of their own.
    pub(crate) fn find_work(&self) -> Option<Arc<dyn Schedulable>> {
        let mut dead = Vec::new();
        let mut shared = self.shared.lock();
        let mut spun = false;
        let found = loop {
            let job = shared.queue.pop(&mut dead);
            self.publish_min(&mut shared);
            if job.is_some() {
                break job;
            }
            if shared.shutdown && self.live_jobs.load(SeqCst) == 0 {
                break None;
            }
            if !spun {
                spun = true;
                shared.spinners += 1;
                drop(shared);
                drop_each_quietly(dead.drain(..));
                for _ in 0..SPIN_ROUNDS {
                    if self.queued_min.load(Relaxed) != u64::MAX {
                        break;
                    }
                    thread::yield_now();
                }
                shared = self.shared.lock();
                shared.spinners -= 1;
                continue;
            }
            if !dead.is_empty() {
                // Never sleep on dead entries: one may hold the last reference to a detached
                // job, whose results would then wait for this worker's next wake-up, maybe
                // forever. Drop them unlocked, then look at the queue again.
                drop(shared);
                drop_each_quietly(dead.drain(..));
                shared = self.shared.lock();
                continue;
            }
            shared.sleepers += 1;
            shared = self.work_available.wait(shared);
            shared.sleepers -= 1;
            shared.wakeups = shared.wakeups.saturating_sub(1);
            spun = false;
        };
        drop(shared);
        drop_each_quietly(dead);
        found
    }

    /// Stops accepting jobs from outside the pool; with `cancel`, pending tasks are cancelled
    /// rather than run. Workers exit once every accepted job has finished.
    pub(crate) fn shutdown(&self, cancel: bool) {
        let mut shared = self.shared.lock();
        if cancel {
            self.gate.cancel_all.store(true, Relaxed);
        }
        shared.shutdown = true;
        // Sleepers must look again: jobs in the queue get cancelled, or no job is live. If a
        // job is live, the thread that finishes the last one wakes them (`job_finished`).
        if cancel || self.live_jobs.load(SeqCst) == 0 {
            self.work_available.notify_all();
        }
    }

    /// Whether `shutdown` was called.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shared.lock().shutdown
    }

    /// Called once per admitted job, after it finished and its completion callback returned.
    pub(crate) fn job_finished(&self) {
        // The lock orders this with `shutdown`: either `shutdown` ran first and this thread
        // sees it and wakes the sleepers, or it runs later and sees `live_jobs` at 0 itself.
        if self.live_jobs.fetch_sub(1, SeqCst) == 1 {
            let shared = self.shared.lock();
            if shared.shutdown {
                self.work_available.notify_all();
            }
        }
    }
}
