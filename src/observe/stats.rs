//! Counters for [`Pool::stats`](crate::Pool::stats), kept per worker so that counting costs a
//! worker no shared cache line.
//!
//! Each worker thread has a slot of its own, written only by that thread (a load and a store,
//! no read-modify-write) once per chunk of tasks, and read by `stats` with relaxed loads. Counts
//! that change off the workers (a `cancel` from another thread) go to one shared slot, with
//! `fetch_add`. A reading is a sum over the slots: each count is exact once the pool is quiet,
//! and at most a chunk behind while it runs.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crossbeam::utils::CachePadded;

/// What a pool is doing now, and has done since it started: from
/// [`Pool::stats`](crate::Pool::stats).
///
/// # Examples
///
/// ```
/// use jobpool::Pool;
///
/// let pool = Pool::new(2);
/// pool.submit((0..10).map(|i| move || i), 2).wait()?;
/// let stats = pool.stats();
/// assert_eq!(stats.threads, 2);
/// assert_eq!(stats.tasks_done, 10); // counted before `wait` returns
/// println!("{stats}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// The pool's worker threads.
    pub threads: usize,
    /// Workers in a job's turn: running its tasks, or inside a task (waiting on a sub-job, say).
    pub busy: usize,
    /// Workers looking for work, not yet asleep.
    pub idle: usize,
    /// Workers asleep for want of work.
    pub sleeping: usize,
    /// Jobs accepted and not finished (their completion callbacks included: a job counts until
    /// a moment after its `wait` returns).
    pub jobs_live: usize,
    /// Jobs waiting in the run queue for a worker: jobs with a task pending and a free token,
    /// some of whose other tasks may be running.
    pub jobs_queued: usize,
    /// Jobs a worker is in a turn of now (for a worker that runs a job it waits on, the inner
    /// one).
    pub jobs_running: usize,
    /// Tasks that returned a value, since the pool started.
    pub tasks_done: u64,
    /// Tasks that failed for good or panicked, since the pool started.
    pub tasks_failed: u64,
    /// Tasks cancelled or timed out before they started, since the pool started.
    pub tasks_not_run: u64,
    /// Retries scheduled, since the pool started.
    pub retries: u64,
    /// How long the job that has waited longest in the run queue for a worker has waited;
    /// `None` when none waits. The run queue stamps a job with the latest time it knows (its
    /// last pop, or the last reading of the statistics) rather than read the clock at every
    /// push, so this may be over by the time since then. A job submitted while every worker
    /// was busy behind a job at least as urgent skips the run queue's lock: it is stamped only
    /// when a worker next looks for work (or at this reading), with the run queue's latest
    /// reading, which may come before or after its submission, so its wait may be over or
    /// under. Reading it looks at every queued job (under the run queue's lock): cheap at a
    /// UI's pace, not in a tight loop.
    pub oldest_wait: Option<Duration>,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} threads ({} busy, {} idle, {} sleeping); jobs: {} live, {} queued, {} running; \
             tasks: {} done, {} failed, {} not run, {} retries",
            self.threads,
            self.busy,
            self.idle,
            self.sleeping,
            self.jobs_live,
            self.jobs_queued,
            self.jobs_running,
            self.tasks_done,
            self.tasks_failed,
            self.tasks_not_run,
            self.retries
        )?;
        if let Some(wait) = self.oldest_wait {
            write!(f, "; oldest wait {wait:?}")?;
        }
        Ok(())
    }
}

/// How a job's counts changed: tasks done, failed, not run, and retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) not_run: u64,
    pub(crate) retries: u64,
}

impl Counts {
    pub(crate) fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    /// What changed from `before` to `self` (counts only grow).
    pub(crate) fn since(&self, before: &Counts) -> Counts {
        Counts {
            done: self.done - before.done,
            failed: self.failed - before.failed,
            not_run: self.not_run - before.not_run,
            retries: self.retries - before.retries,
        }
    }
}

#[derive(Default)]
struct Slot {
    done: AtomicU64,
    failed: AtomicU64,
    not_run: AtomicU64,
    retries: AtomicU64,
    /// The job this worker is in a turn of (its `JobId`), or 0.
    current_job: AtomicU64,
}

/// One slot per worker, and one shared by every other thread (the last).
pub(crate) struct Counters {
    slots: Box<[CachePadded<Slot>]>,
}

impl Counters {
    pub(crate) fn new(threads: usize) -> Self {
        Counters {
            slots: (0..=threads).map(|_| CachePadded::default()).collect(),
        }
    }

    /// Adds `counts` to the slot of worker `worker`, or to the shared slot for `None`.
    #[inline]
    pub(crate) fn add(&self, worker: Option<usize>, counts: Counts) {
        match worker {
            Some(i) => {
                // Only worker `i` writes its slot: no read-modify-write needed.
                let slot = &self.slots[i];
                let add = |counter: &AtomicU64, n: u64| {
                    if n > 0 {
                        counter.store(counter.load(Relaxed) + n, Relaxed);
                    }
                };
                add(&slot.done, counts.done);
                add(&slot.failed, counts.failed);
                add(&slot.not_run, counts.not_run);
                add(&slot.retries, counts.retries);
            }
            None => {
                let slot = &self.slots[self.slots.len() - 1];
                slot.done.fetch_add(counts.done, Relaxed);
                slot.failed.fetch_add(counts.failed, Relaxed);
                slot.not_run.fetch_add(counts.not_run, Relaxed);
                slot.retries.fetch_add(counts.retries, Relaxed);
            }
        }
    }

    /// Says that worker `worker` is in a turn of job `job` (0: of none); returns what it said
    /// before, to be said again when the turn ends.
    #[inline]
    pub(crate) fn set_current_job(&self, worker: usize, job: u64) -> u64 {
        let slot = &self.slots[worker].current_job;
        let before = slot.load(Relaxed);
        slot.store(job, Relaxed);
        before
    }

    /// Fills in the counts of `stats` and its busy workers and running jobs.
    pub(crate) fn read(&self, stats: &mut Stats) {
        let mut jobs: Vec<u64> = Vec::new();
        for slot in self.slots.iter() {
            stats.tasks_done += slot.done.load(Relaxed);
            stats.tasks_failed += slot.failed.load(Relaxed);
            stats.tasks_not_run += slot.not_run.load(Relaxed);
            stats.retries += slot.retries.load(Relaxed);
            let job = slot.current_job.load(Relaxed);
            if job != 0 {
                jobs.push(job);
            }
        }
        stats.busy = jobs.len();
        jobs.sort_unstable();
        jobs.dedup();
        stats.jobs_running = jobs.len();
    }
}
