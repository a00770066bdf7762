//! A module's tasks behind one type-erased face, so one graph holds modules of any output type.

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use super::context::{Context, ErasedOutput, Inputs};
use super::report::Failure;
use crate::{Canceller, JobError, Pool, SubmitErrorKind, TaskError};

/// What a module's task returns: its output, or any error (a task may use `?` on any error
/// type). An error makes the module fail.
///
/// # Examples
///
/// ```
/// use jobpool::{Context, TaskResult};
///
/// fn parse(_: &Context) -> TaskResult<u16> {
///     Ok("8080".parse()?)
/// }
/// # let _ = parse;
/// ```
pub type TaskResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// A stored task: shared, so running the graph does not consume it.
pub(crate) type TaskFn<T> = Arc<dyn Fn(&Context) -> TaskResult<T> + Send + Sync>;

/// How a module's job ended.
pub(crate) enum JobOutcome {
    /// Every task returned `Ok`: their outputs, an `Arc<Vec<T>>`.
    Done(ErasedOutput),
    /// At least one task failed.
    Failed(Vec<Failure>),
    /// No task failed, but some never started.
    Cancelled,
}

/// Called once with the outcome when a module's job ends.
pub(crate) type OnJobEnd = Box<dyn FnOnce(JobOutcome) + Send>;

/// A module's tasks, whatever their output type.
pub(crate) trait ModuleTasks: Send + Sync {
    /// The number of tasks.
    fn len(&self) -> usize;

    /// The name of the tasks' output type.
    fn output_type(&self) -> &'static str;

    /// Submits the tasks to `pool` as one job of cap `cap`, each task handed a [`Context`] on
    /// `inputs`, and arranges for `on_end` to be called when the job ends (on the worker that
    /// ran the last task, or on this thread if it has ended already).
    /// `stage` is the run's rank (its start) and whether the module is one of its first stage.
    fn submit(
        &self,
        pool: &Pool,
        cap: usize,
        stage: (u64, bool),
        inputs: Arc<Inputs>,
        probe: Arc<ConcurrencyProbe>,
        on_end: OnJobEnd,
    ) -> Result<Canceller, SubmitErrorKind>;
}

/// The tasks of a module whose tasks produce `T`.
pub(crate) struct TypedTasks<T> {
    pub(crate) tasks: Vec<TaskFn<T>>,
}

impl<T: Send + Sync + 'static> ModuleTasks for TypedTasks<T> {
    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn output_type(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn submit(
        &self,
        pool: &Pool,
        cap: usize,
        stage: (u64, bool),
        inputs: Arc<Inputs>,
        probe: Arc<ConcurrencyProbe>,
        on_end: OnJobEnd,
    ) -> Result<Canceller, SubmitErrorKind> {
        let jobs = self.tasks.iter().enumerate().map(|(index, task)| {
            let task = task.clone();
            let context = Context::new(inputs.clone(), index);
            let probe = probe.clone();
            move || {
                let _running = probe.enter();
                task(&context)
            }
        });
        let handle = pool
            .job()
            .cap(cap)
            .run_stage(stage)
            .try_submit(jobs)
            .map_err(|err| err.kind())?;
        // The tasks hold what they need; let go of the rest before the callback may run here.
        drop(inputs);
        let canceller = handle.canceller();
        handle.on_finish(move |results| on_end(outcome(results)));
        Ok(canceller)
    }
}

/// Sorts a finished job's results into the module's outcome.
fn outcome<T: Send + Sync + 'static>(
    results: Result<Vec<TaskResult<T>>, JobError<TaskResult<T>>>,
) -> JobOutcome {
    let results: Vec<Result<TaskResult<T>, TaskError>> = match results {
        Ok(results) => results.into_iter().map(Ok).collect(),
        Err(err) => err.into_results(),
    };
    let mut outputs = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    let mut cancelled = false;
    for (task, result) in results.into_iter().enumerate() {
        match result {
            Ok(Ok(value)) => outputs.push(value),
            Ok(Err(error)) => failures.push(Failure::TaskError { task, error }),
            Err(TaskError::Panicked(message)) => {
                failures.push(Failure::TaskPanicked { task, message })
            }
            Err(TaskError::Failed(failure)) => failures.push(Failure::TaskError {
                task,
                error: Box::new(failure),
            }),
            Err(_) => cancelled = true,
        }
    }
    if !failures.is_empty() {
        JobOutcome::Failed(failures)
    } else if cancelled {
        JobOutcome::Cancelled
    } else {
        JobOutcome::Done(Arc::new(outputs))
    }
}

/// Counts a module's running tasks and remembers the most that ran at once.
#[derive(Default)]
pub(crate) struct ConcurrencyProbe {
    active: AtomicUsize,
    peak: AtomicUsize,
}

impl ConcurrencyProbe {
    /// Counts a task in until the returned guard is dropped (also when the task panics).
    #[inline]
    pub(crate) fn enter(&self) -> ProbeGuard<'_> {
        // Relaxed: `peak` is read once the job has finished, and the job's lock (taken by every
        // worker as it reports its tasks, and by the callback that reads it) orders it.
        let now = self.active.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
        ProbeGuard(self)
    }

    /// The most tasks that ran at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Relaxed)
    }
}

/// Counts a task out of its [`ConcurrencyProbe`] when dropped.
pub(crate) struct ProbeGuard<'a>(&'a ConcurrencyProbe);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_counts_the_peak_and_lets_go_on_drop() {
        let probe = ConcurrencyProbe::default();
        let a = probe.enter();
        let b = probe.enter();
        drop(a);
        let c = probe.enter();
        assert_eq!(probe.peak(), 2);
        drop((b, c));
        assert_eq!(probe.active.load(Relaxed), 0);
    }

    #[test]
    fn outcome_sorts_failures_before_cancellations() {
        let ok: Result<Vec<TaskResult<u8>>, _> = Ok(vec![Ok(1), Ok(2)]);
        assert!(
            matches!(outcome(ok), JobOutcome::Done(out) if out.downcast_ref::<Vec<u8>>() == Some(&vec![1, 2]))
        );
        let err: Result<Vec<TaskResult<u8>>, _> = Ok(vec![Ok(1), Err("bad".into())]);
        assert!(matches!(outcome(err), JobOutcome::Failed(f) if f.len() == 1));
    }
}
