//! The worker threads: what each runs, and how a thread knows it is one of them.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::Registry;
use crate::sync::thread_local;
use crate::unwind::call_quietly;

thread_local! {
    // loom's `thread_local!` takes no `const` initializer.
    #[allow(clippy::missing_const_for_thread_local)]
    /// The id of the registry whose worker this thread is (or 0), and the worker's index in
    /// its pool, from 0: one cell, so that both come with one thread-local access.
    static CURRENT_REGISTRY: Cell<(usize, usize)> = Cell::new((0, 0));

    #[allow(clippy::missing_const_for_thread_local)]
    /// The jobs whose tasks this thread is running, outermost first: more than one when a task
    /// waits on another job and the worker runs that job's tasks meanwhile.
    static RUNNING_JOBS: RefCell<Vec<usize>> = RefCell::new(Vec::new());

    #[allow(clippy::missing_const_for_thread_local)]
    /// The limiters whose slots the tasks running on this thread hold, one entry per job on
    /// `RUNNING_JOBS` with limiters: a task waiting further up the stack lends its slots to
    /// the jobs it waits on (README.md, rule 9).
    static HELD_SLOTS: RefCell<Vec<usize>> = RefCell::new(Vec::new());
}

/// The id of the registry the current thread works for, or 0 for any other thread.
pub(crate) fn current_registry_id() -> usize {
    CURRENT_REGISTRY.with(Cell::get).0
}

/// This thread's index among the workers of registry `registry`, or `None` for any other
/// thread.
#[inline]
pub(crate) fn worker_index_in(registry: usize) -> Option<usize> {
    let (id, index) = CURRENT_REGISTRY.with(Cell::get);
    (id == registry).then_some(index)
}

/// The body of worker thread `index`: run jobs from the run queue until the pool shuts down.
///
/// Nothing unwinds out of this loop, so a worker lives as long as its pool.
pub(crate) fn worker_main(registry: Arc<Registry>, index: usize) {
    CURRENT_REGISTRY.with(|id| id.set((registry.id, index)));
    while let Some((job, now)) = registry.find_work() {
        // Tasks, callbacks and the drop of cancelled tasks are caught where they run; what can
        // still unwind here is the drop of a detached job's results, when this worker holds the
        // job's last reference. It must not end the worker.
        call_quietly(|| job.run_popped(now));
    }
}

/// Marks a job as having a task running on this thread, until dropped.
///
/// A job on this list cannot finish before the current thread returns to it, so a wait on it
/// from this thread could never end: `wait` panics instead of hanging (see `JobCore::wait_for`).
/// Only entered and left once per run of a job's tasks, not per task.
pub(crate) struct RunningJob {
    limiters: usize,
}

impl RunningJob {
    /// Puts the job with identity `job`, and the identities of its limiters, on this thread's
    /// lists.
    pub(crate) fn enter(job: usize, limiters: &[usize]) -> RunningJob {
        RUNNING_JOBS.with(|jobs| jobs.borrow_mut().push(job));
        if !limiters.is_empty() {
            HELD_SLOTS.with(|held| held.borrow_mut().extend_from_slice(limiters));
        }
        RunningJob {
            limiters: limiters.len(),
        }
    }

    /// Whether a task running on this thread holds a slot of the limiter `limiter`: a job it
    /// waits on may use that slot while it waits.
    pub(crate) fn holds_slot_of(limiter: usize) -> bool {
        HELD_SLOTS.with(|held| held.borrow().contains(&limiter))
    }

    /// Whether a task of the job with identity `job` is running on this thread.
    pub(crate) fn is_running_here(job: usize) -> bool {
        RUNNING_JOBS.with(|jobs| jobs.borrow().contains(&job))
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        RUNNING_JOBS.with(|jobs| jobs.borrow_mut().pop());
        if self.limiters > 0 {
            HELD_SLOTS.with(|held| {
                let mut held = held.borrow_mut();
                let len = held.len() - self.limiters;
                held.truncate(len);
            });
        }
    }
}
