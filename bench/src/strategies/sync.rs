//! The small synchronization pieces the hand-written strategies share: a count-down latch
//! (Go's `sync.WaitGroup`) and a counting semaphore that records when a worker blocks on it.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// Opens when its count reaches zero.
#[derive(Debug)]
pub struct Latch {
    remaining: AtomicUsize,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Latch {
    pub fn new(count: usize) -> Latch {
        Latch {
            remaining: AtomicUsize::new(count),
            open: Mutex::new(count == 0),
            opened: Condvar::new(),
        }
    }

    /// Counts `n` tasks done.
    #[inline]
    pub fn count_down(&self, n: usize) {
        // AcqRel: the task that opens the latch acquires every earlier task's effects, and
        // releases them all to `wait` through the mutex.
        if self.remaining.fetch_sub(n, AcqRel) == n {
            *self.open.lock() = true;
            self.opened.notify_all();
        }
    }

    /// Blocks until the count is zero.
    pub fn wait(&self) {
        // Acquire pairs with the AcqRel of the last `count_down`.
        if self.remaining.load(Acquire) == 0 {
            return;
        }
        let mut open = self.open.lock();
        while !*open {
            self.opened.wait(&mut open);
        }
    }
}

/// How long workers sat blocked on job semaphores during one run.
#[derive(Debug, Default)]
pub struct BlockStats {
    /// Tasks of any job waiting to start, across the run (kept only for tracked runs).
    queued: AtomicUsize,
    /// Times a worker blocked on a semaphore.
    pub events: AtomicU64,
    /// ... of which, times when other jobs had tasks waiting to start.
    pub events_runnable: AtomicU64,
    /// Nanoseconds blocked, in all.
    pub blocked_ns: AtomicU64,
    /// ... of which, blocks that began while other jobs had tasks waiting to start.
    pub blocked_runnable_ns: AtomicU64,
}

/// A job's counting semaphore, with the count of its tasks waiting to start.
#[derive(Debug)]
pub struct JobSemaphore {
    permits: Mutex<usize>,
    freed: Condvar,
    waiters: AtomicUsize,
    /// The job's tasks spawned and not yet started (kept only for tracked runs).
    queued: AtomicUsize,
}

impl JobSemaphore {
    pub fn new(permits: usize) -> JobSemaphore {
        JobSemaphore {
            permits: Mutex::new(permits),
            freed: Condvar::new(),
            waiters: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
        }
    }

    /// A task of this job was queued (tracked runs only).
    #[inline]
    pub fn queued(&self, stats: &BlockStats) {
        self.queued.fetch_add(1, Relaxed);
        stats.queued.fetch_add(1, Relaxed);
    }

    /// Takes a permit, blocking the calling worker while the job is at its cap. With `track`,
    /// counts the task as started and records the block, and whether other jobs had tasks
    /// waiting when it began.
    #[inline]
    pub fn acquire(&self, stats: &BlockStats, track: bool) {
        if track {
            self.queued.fetch_sub(1, Relaxed);
            stats.queued.fetch_sub(1, Relaxed);
        }
        let mut permits = self.permits.lock();
        if *permits > 0 {
            *permits -= 1;
            return;
        }
        self.acquire_slow(permits, stats, track);
    }

    #[cold]
    fn acquire_slow(
        &self,
        mut permits: parking_lot::MutexGuard<'_, usize>,
        stats: &BlockStats,
        track: bool,
    ) {
        let others_waiting = track && stats.queued.load(Relaxed) > self.queued.load(Relaxed);
        let start = Instant::now();
        self.waiters.fetch_add(1, Relaxed);
        while *permits == 0 {
            self.freed.wait(&mut permits);
        }
        self.waiters.fetch_sub(1, Relaxed);
        *permits -= 1;
        drop(permits);
        if track {
            let ns = start.elapsed().as_nanos() as u64;
            stats.events.fetch_add(1, Relaxed);
            stats.blocked_ns.fetch_add(ns, Relaxed);
            if others_waiting {
                stats.events_runnable.fetch_add(1, Relaxed);
                stats.blocked_runnable_ns.fetch_add(ns, Relaxed);
            }
        }
    }

    /// Gives a permit back.
    #[inline]
    pub fn release(&self) {
        let mut permits = self.permits.lock();
        *permits += 1;
        // `waiters` changes only under the lock, so Relaxed reads it exactly here.
        if self.waiters.load(Relaxed) > 0 {
            self.freed.notify_one();
        }
    }
}
