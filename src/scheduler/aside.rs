//! Entries set aside: where a worker in a turn keeps its job's run-queue entry while no other
//! worker could take it (README.md, rule 11).
//!
//! A worker that claims a chunk of a job with a free token left used to push the job's entry
//! back into the run queue at once, so that another worker could take that token. With every
//! other worker busy and the queue holding work at least as urgent, no one pops that entry
//! before the job ends, and then it is dead: two takings of the contended run-queue lock per
//! job for nothing. Instead the worker keeps the entry in a slot of its own, and the one kind
//! of worker that could use it soon, an idle one, takes it from there before it spins or
//! sleeps.
//!
//! The protocol is the classic store-then-look pair on both sides, with `SeqCst`:
//! - a worker setting an entry aside stores it in its slot, then reads `idle`; if a worker is
//!   idle, it takes the entry back (if it is still there) and pushes it to the run queue;
//! - a worker going idle adds itself to `idle`, then looks in every slot, and takes the first
//!   entry it finds, which it runs as if popped from the queue.
//!
//! Either the idle worker sees the entry, or the other sees the idle worker (the slot's lock
//! orders the two looks at the slot, `idle` the two at the counter): an entry is never left
//! aside while a worker sleeps for want of work.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use crossbeam::utils::CachePadded;

use super::Schedulable;
use crate::sync::{fence, AtomicUsize, Mutex};

/// A worker's slot: the entry it set aside, if any; on a cache line of its own, since its
/// worker takes its lock at most twice a chunk and the others only when idle.
type Slot = CachePadded<Mutex<Option<Arc<dyn Schedulable>>>>;

/// One slot per worker, and the count of idle workers.
pub(crate) struct Aside {
    slots: Box<[Slot]>,
    /// Workers that found the run queue empty and have not found work since (spinning or
    /// asleep).
    idle: AtomicUsize,
}

impl Aside {
    pub(crate) fn new(workers: usize) -> Aside {
        Aside {
            slots: (0..workers)
                .map(|_| CachePadded::new(Mutex::new(None)))
                .collect(),
            idle: AtomicUsize::new(0),
        }
    }

    /// Sets `job`'s entry aside in `worker`'s slot. Returns it instead, for the run queue,
    /// when a worker is idle (it would sleep on an entry it cannot see) or the slot is taken
    /// (by the job of an outer turn of the same worker).
    pub(crate) fn set(
        &self,
        worker: usize,
        job: Arc<dyn Schedulable>,
    ) -> Option<Arc<dyn Schedulable>> {
        let slot = &self.slots[worker];
        {
            let mut slot = slot.lock();
            if slot.is_some() {
                return Some(job);
            }
            *slot = Some(job);
        }
        if self.idle.load(SeqCst) > 0 {
            // Taken back unless an idle worker took it meanwhile.
            return self.take(worker);
        }
        None
    }

    /// Takes back the entry `worker` set aside, if no idle worker took it.
    pub(crate) fn take(&self, worker: usize) -> Option<Arc<dyn Schedulable>> {
        self.slots[worker].lock().take()
    }

    /// Counts the calling worker idle: from now on, a worker setting an entry aside pushes
    /// it instead. The caller then looks in the slots (`take_any`).
    pub(crate) fn enter_idle(&self) {
        self.idle.fetch_add(1, SeqCst);
        // Counted, then the looks (here at the slots, in `find_work` at the inbox, rule 12).
        fence(SeqCst);
    }

    /// How many workers are idle. A submitter leaving a job in the inbox reads this after its
    /// own fence (rule 12).
    #[inline]
    pub(crate) fn idle_workers(&self) -> usize {
        self.idle.load(SeqCst)
    }

    /// Takes the first entry set aside, if any, for an idle worker to run as if popped.
    pub(crate) fn take_any(&self) -> Option<Arc<dyn Schedulable>> {
        self.slots.iter().find_map(|slot| slot.lock().take())
    }

    /// How many entries of jobs not finished wait aside (for `Pool::stats`: each is its
    /// job's one entry, as a queued job's is).
    pub(crate) fn live_len(&self) -> usize {
        let live = |slot: &Slot| slot.lock().as_ref().is_some_and(|job| !job.is_finished());
        self.slots.iter().filter(|slot| live(slot)).count()
    }

    /// The calling worker is no longer idle.
    pub(crate) fn leave_idle(&self) {
        self.idle.fetch_sub(1, SeqCst);
    }
}
