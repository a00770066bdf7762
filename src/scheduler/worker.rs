//! The worker threads: what each runs, and how a thread knows it is one of them.

use std::cell::Cell;
use std::sync::Arc;

use super::Registry;
use crate::sync::thread_local;
use crate::unwind::call_quietly;

thread_local! {
    // loom's `thread_local!` takes no `const` initializer.
    #[allow(clippy::missing_const_for_thread_local)]
    /// The id of the registry whose worker this thread is, or 0.
    static CURRENT_REGISTRY: Cell<usize> = Cell::new(0);
}

/// The id of the registry the current thread works for, or 0 for any other thread.
pub(crate) fn current_registry_id() -> usize {
    CURRENT_REGISTRY.with(Cell::get)
}

/// The body of a worker thread: run jobs from the run queue until the pool shuts down.
///
/// Nothing unwinds out of this loop, so a worker lives as long as its pool.
pub(crate) fn worker_main(registry: Arc<Registry>) {
    CURRENT_REGISTRY.with(|id| id.set(registry.id));
    while let Some(job) = registry.find_work() {
        // Tasks, callbacks and the drop of cancelled tasks are caught where they run; what can
        // still unwind here is the drop of a detached job's results, when this worker holds the
        // job's last reference. It must not end the worker.
        call_quietly(|| job.run_popped());
    }
}
