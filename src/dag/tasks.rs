//! A module's tasks behind one type-erased face, so one graph holds modules of any output type.

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use super::context::{Context, ErasedOutput, Inputs};
use super::control::JobControl;
use super::report::Failure;
use crate::{Canceller, JobError, Pool, SubmitErrorKind, TaskContext, TaskError};

/// What a module's task returns: its output, or any error (a task may use `?` on any error
/// type). An error makes the module fail, once the task has used up its retries
/// ([`ModuleRef::retry`](crate::ModuleRef::retry)).
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

    /// Submits the tasks to `pool` as one job of cap `cap` with the module's job options
    /// `control`, each task handed a [`Context`] on `inputs`, and arranges for `on_end` to be
    /// called when the job ends (on the worker that ran the last task, or on this thread if it
    /// has ended already).
    /// `stage` is the run's rank (its start) and whether the module is one of its first stage.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        pool: &Pool,
        cap: usize,
        control: &JobControl,
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
        control: &JobControl,
        stage: (u64, bool),
        inputs: Arc<Inputs>,
        probe: Arc<ConcurrencyProbe>,
        on_end: OnJobEnd,
    ) -> Result<Canceller, SubmitErrorKind> {
        // Each task is submitted as a fallible task, so the job's retry policy can call it
        // again; every attempt is handed a context that knows which attempt it is.
        let jobs = self.tasks.iter().enumerate().map(|(index, task)| {
            let task = task.clone();
            let inputs = inputs.clone();
            let probe = probe.clone();
            move |cx: &TaskContext<'_>| {
                let _running = probe.enter();
                let context = Context::for_attempt(inputs.clone(), index, cx);
                task(&context)
            }
        });
        let job = pool.job().name(inputs.module.clone()).cap(cap);
        let job = control.apply(job.run_stage(stage));
        let submitted = match &control.retry {
            Some(retry) => job.retry(retry.clone()).try_submit_fallible(jobs),
            None => job.try_submit_fallible(jobs),
        };
        let handle = submitted.map_err(|err| err.kind())?;
        // The tasks hold what they need; let go of the rest before the callback may run here.
        drop(inputs);
        let canceller = handle.canceller();
        let timeout = control.timeout;
        handle.on_finish(move |results| on_end(outcome(results, timeout)));
        Ok(canceller)
    }
}

/// Sorts a finished job's results into the module's outcome; `timeout` is the module's, to say
/// so in the failure of tasks its deadline kept from starting.
///
/// A task's error comes as [`TaskError::Failed`], with its attempts; it is reported as
/// [`Failure::TaskError`] with the [`TaskFailure`](crate::TaskFailure) as its error. Tasks that
/// timed out are reported together, as one [`Failure::TimedOut`] after the others.
fn outcome<T: Send + Sync + 'static>(
    results: Result<Vec<T>, JobError<T>>,
    timeout: Option<Duration>,
) -> JobOutcome {
    let results: Vec<Result<T, TaskError>> = match results {
        Ok(results) => results.into_iter().map(Ok).collect(),
        Err(err) => err.into_results(),
    };
    let mut outputs = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    let mut timed_out = Vec::new();
    let mut cancelled = false;
    for (task, result) in results.into_iter().enumerate() {
        match result {
            Ok(value) => outputs.push(value),
            Err(TaskError::Panicked(message)) => {
                failures.push(Failure::TaskPanicked { task, message })
            }
            Err(TaskError::Failed(failure)) => failures.push(Failure::TaskError {
                task,
                error: Box::new(failure),
            }),
            Err(TaskError::TimedOut) => timed_out.push(task),
            Err(_) => cancelled = true,
        }
    }
    if !timed_out.is_empty() {
        failures.push(Failure::TimedOut {
            tasks: timed_out,
            timeout: timeout.unwrap_or_default(),
        });
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
    use crate::{GaveUp, TaskFailure};

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
    fn outcome_sorts_failures_and_timeouts_before_cancellations() {
        let ok: Result<Vec<u8>, JobError<u8>> = Ok(vec![1, 2]);
        assert!(
            matches!(outcome(ok, None), JobOutcome::Done(out) if out.downcast_ref::<Vec<u8>>() == Some(&vec![1, 2]))
        );
        let failure = TaskFailure::new("bad".into(), 2, GaveUp::AttemptsUsedUp);
        let err = JobError::new(vec![
            Ok(1u8),
            Err(TaskError::TimedOut),
            Err(TaskError::Cancelled),
            Err(TaskError::Failed(failure)),
            Err(TaskError::TimedOut),
        ]);
        let timeout = Duration::from_millis(5);
        let JobOutcome::Failed(failures) = outcome(Err(err), Some(timeout)) else {
            panic!("not failed");
        };
        assert!(matches!(&failures[0], Failure::TaskError { task: 3, .. }));
        assert_eq!(failures[0].attempts(), Some(2));
        assert!(
            matches!(&failures[1], Failure::TimedOut { tasks, timeout: t } if tasks == &[1, 4] && *t == timeout)
        );
        let cancelled = JobError::new(vec![Ok(1u8), Err(TaskError::Cancelled)]);
        assert!(matches!(
            outcome(Err(cancelled), None),
            JobOutcome::Cancelled
        ));
    }
}
