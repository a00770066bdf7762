//! The inbox: where a submission leaves its job when every worker is busy and a job at least
//! as urgent is already queued, so that it does not wait for the run queue's lock
//! (README.md, rule 12).
//!
//! A program that submits many jobs in a loop while the pool is busy used to take the
//! registry's lock once per job, against the workers that take it to pop: with more workers
//! than cores, a worker that lost its core while holding the lock held up the submitter and
//! every other worker. A job that would go behind a queued one and that no idle worker waits
//! for needs nothing from that lock at once: no decision of a busy worker depends on it (the
//! job at least as urgent already counts in `queued_min`), and no sleeper needs waking. So
//! the submitter leaves it here, under a lock of its own held for one `Vec::push`, and the
//! next worker to look at the run queue moves every job here into it (`Registry::drain`).
//!
//! The inbox takes part in three store-then-look pairs, each with a `SeqCst` fence on both
//! sides (loom models fences, not `SeqCst` loads and stores):
//! - the submitter adds its job, then looks at the idle workers (`Aside::idle`); a worker
//!   going idle counts itself, then looks here before it sleeps. Either the worker finds the
//!   job, or the submitter finds the worker and takes the registry's lock to queue the job and
//!   wake a sleeper;
//! - the submitter adds its job, then looks at `queued_min` again; a worker that raises
//!   `queued_min` (it popped the least key) stores it, then looks here. Either the submitter
//!   sees the raised minimum and queues its job itself, or the worker sees the job and queues
//!   it: the job never stays here with a key below `queued_min`, where busy workers deciding
//!   whether to yield to a queued job would not see it;
//! - the submitter counts its job live, then looks at `closed`; `shutdown` sets `closed`, and
//!   a worker looks at the live count before it exits. Either the submitter sees the pool
//!   closed and takes its count back (the job goes the locked way, which refuses it), or the
//!   worker sees the job live and stays.

use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::sync::Arc;

use super::Schedulable;
use crate::sync::{AtomicBool, AtomicUsize, Mutex};

/// Jobs submitted to a busy pool, not yet in the run queue, with their keys.
pub(crate) struct Inbox {
    entries: Mutex<Vec<(Arc<dyn Schedulable>, u64)>>,
    /// `entries.len()`, readable without the lock: a worker's look at an empty inbox is one
    /// load.
    len: AtomicUsize,
    /// Set, under the registry's lock, by `shutdown`: a submission from outside the pool
    /// that sees it goes the locked way, which refuses it.
    closed: AtomicBool,
}

impl Inbox {
    pub(crate) fn new() -> Inbox {
        Inbox {
            entries: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Adds `job`, of key `key`. The caller then looks at the idle workers and `queued_min`,
    /// after a `SeqCst` fence.
    pub(crate) fn push(&self, job: Arc<dyn Schedulable>, key: u64) {
        let mut entries = self.entries.lock();
        entries.push((job, key));
        self.len.store(entries.len(), Relaxed);
    }

    /// Whether the inbox holds no job. A worker that must not miss a job pushed before its
    /// last `SeqCst` fence (the pairs in the module's docs) looks after that fence; the
    /// entries themselves are read under the lock.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Acquire) == 0
    }

    /// Takes every job in the inbox, in the order they came.
    pub(crate) fn take(&self) -> Vec<(Arc<dyn Schedulable>, u64)> {
        let mut entries = Vec::new();
        self.swap(&mut entries);
        entries
    }

    /// Swaps the inbox's entries with `entries`, an empty vector (whose capacity the inbox
    /// keeps, so that a drain and a submission allocate nothing).
    pub(crate) fn swap(&self, entries: &mut Vec<(Arc<dyn Schedulable>, u64)>) {
        debug_assert!(entries.is_empty());
        let mut inbox = self.entries.lock();
        self.len.store(0, Relaxed);
        std::mem::swap(&mut *inbox, entries);
    }

    /// Whether `shutdown` closed the inbox (read after a `SeqCst` fence, see above).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Closes the inbox; the caller, `shutdown`, holds the registry's lock and fences after.
    pub(crate) fn close(&self) {
        self.closed.store(true, SeqCst);
    }
}
