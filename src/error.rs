//! The errors of the pool: building it, submitting to it, and what a finished job reports.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use sync_wrapper::SyncWrapper;

/// Why [`PoolBuilder::build`](crate::PoolBuilder::build) could not build a pool.
///
/// # Examples
///
/// ```
/// use jobpool::{BuildError, Pool};
///
/// let err = Pool::builder().threads(0).build().unwrap_err();
/// assert_eq!(err, BuildError::ZeroThreads);
/// assert_eq!(err.to_string(), "a pool needs at least one worker thread (threads(0) was given)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `threads(0)`: a pool needs at least one worker.
    ZeroThreads,
    /// The operating system refused to start a worker thread.
    Spawn(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroThreads => {
                f.write_str("a pool needs at least one worker thread (threads(0) was given)")
            }
            BuildError::Spawn(why) => write!(f, "could not start a worker thread: {why}"),
        }
    }
}

impl Error for BuildError {}

/// What was wrong with a submission; see [`SubmitError`].
///
/// # Examples
///
/// ```
/// use jobpool::{Pool, SubmitErrorKind};
///
/// let pool = Pool::new(1);
/// let err = pool.try_submit(vec![|| 1], 0).unwrap_err();
/// assert_eq!(err.kind(), SubmitErrorKind::ZeroCap);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubmitErrorKind {
    /// The job's cap was 0: it could never run a task.
    ZeroCap,
    /// The pool was shut down (by [`Pool::shutdown`](crate::Pool::shutdown) or
    /// [`Pool::shutdown_now`](crate::Pool::shutdown_now)) and takes no more jobs.
    ShutDown,
}

impl fmt::Display for SubmitErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitErrorKind::ZeroCap => "a job's cap must be at least 1 (0 was given)",
            SubmitErrorKind::ShutDown => "the pool is shut down and takes no more jobs",
        })
    }
}

impl Error for SubmitErrorKind {}

/// A submission the pool refused, with the tasks handed back untouched.
///
/// Returned by [`Pool::try_submit`](crate::Pool::try_submit); [`Pool::submit`](crate::Pool::submit)
/// panics with the same message instead.
///
/// It is `Send + Sync + 'static` whatever the tasks are (they are reachable only by value, through
/// [`into_tasks`](SubmitError::into_tasks)), so `?` turns it into a
/// `Box<dyn Error + Send + Sync>` or an `anyhow::Error`:
///
/// ```
/// use jobpool::Pool;
///
/// fn submit_boxed() -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
///     let pool = Pool::new(1);
///     let tasks: Vec<Box<dyn FnOnce() -> u32 + Send>> = vec![Box::new(|| 7)];
///     let job = pool.try_submit(tasks, 1)?;
///     Ok(job.wait()?[0])
/// }
/// assert_eq!(submit_boxed().unwrap(), 7);
/// ```
///
/// # Examples
///
/// ```
/// use jobpool::{Pool, SubmitErrorKind};
///
/// let pool = Pool::new(1);
/// pool.shutdown();
/// let err = pool.try_submit(vec![|| "hello"], 1).unwrap_err();
/// assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
/// let tasks = err.into_tasks(); // nothing was run or dropped
/// assert_eq!(tasks.len(), 1);
/// ```
pub struct SubmitError<F> {
    kind: SubmitErrorKind,
    tasks: SyncWrapper<Vec<F>>,
}

impl<F> SubmitError<F> {
    pub(crate) fn new(kind: SubmitErrorKind, tasks: Vec<F>) -> Self {
        SubmitError {
            kind,
            tasks: SyncWrapper::new(tasks),
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> SubmitErrorKind {
        self.kind
    }

    /// The tasks that were not submitted, in submission order.
    pub fn into_tasks(self) -> Vec<F> {
        self.tasks.into_inner()
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind, f)
    }
}

impl<F> Error for SubmitError<F> {}

/// [`JobHandle::set_cap`](crate::JobHandle::set_cap) was given 0.
///
/// # Examples
///
/// ```
/// use jobpool::Pool;
///
/// let pool = Pool::new(1);
/// let job = pool.submit(vec![|| ()], 1);
/// let err = job.set_cap(0).unwrap_err();
/// assert_eq!(err.to_string(), "a job's cap must be at least 1 (0 was given)");
/// job.wait().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroCapError;

impl fmt::Display for ZeroCapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&SubmitErrorKind::ZeroCap, f)
    }
}

impl Error for ZeroCapError {}

/// A wait with a timeout ended before what it waited for: [`JobHandle::wait_timeout`] found the
/// job unfinished, or [`Completions::next_timeout`] found no new result.
///
/// [`JobHandle::wait_timeout`]: crate::JobHandle::wait_timeout
/// [`Completions::next_timeout`]: crate::Completions::next_timeout
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use jobpool::{Pool, TimedOut};
///
/// let pool = Pool::new(1);
/// let (go, go_rx) = mpsc::channel::<()>();
/// let job = pool.submit(vec![move || go_rx.recv().unwrap()], 1);
/// assert_eq!(job.wait_timeout(Duration::from_millis(1)), Err(TimedOut));
/// go.send(()).unwrap();
/// assert_eq!(job.wait_timeout(Duration::from_secs(60)), Ok(()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the wait timed out")
    }
}

impl Error for TimedOut {}

/// Why one task produced no result.
///
/// # Examples
///
/// ```
/// use jobpool::{Pool, TaskError};
///
/// let pool = Pool::new(1);
/// let tasks: Vec<Box<dyn FnOnce() -> u32 + Send>> =
///     vec![Box::new(|| 1), Box::new(|| panic!("no luck"))];
/// let err = pool.submit(tasks, 1).wait().unwrap_err();
/// let results = err.into_results();
/// assert_eq!(results[0], Ok(1));
/// assert_eq!(results[1], Err(TaskError::Panicked("no luck".to_owned())));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked (on its last attempt); this is the panic's message.
    Panicked(String),
    /// The task never started: its job was cancelled or the pool shut down with
    /// [`Pool::shutdown_now`](crate::Pool::shutdown_now).
    Cancelled,
    /// A fallible task returned an error and will not be tried again: see [`TaskFailure`]
    /// for the error, the number of attempts and why it was not retried.
    Failed(TaskFailure),
    /// The job's deadline passed before the task started (or, for a task waiting to be retried,
    /// before its next attempt): see [`JobBuilder::deadline`](crate::JobBuilder::deadline).
    TimedOut,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(msg) => write!(f, "task panicked: {msg}"),
            TaskError::Cancelled => f.write_str("task cancelled before it started"),
            TaskError::Failed(failure) => fmt::Display::fmt(failure, f),
            TaskError::TimedOut => f.write_str("the job's deadline passed before the task started"),
        }
    }
}

impl Error for TaskError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TaskError::Failed(failure) => Some(failure.error()),
            _ => None,
        }
    }
}

/// Why a failed task was not tried again.
///
/// # Examples
///
/// ```
/// use jobpool::GaveUp;
/// assert_eq!(GaveUp::Permanent.to_string(), "a permanent error");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GaveUp {
    /// The job's [`Retry`](crate::Retry) policy found the error not worth retrying
    /// ([`Retry::retry_if`](crate::Retry::retry_if)).
    Permanent,
    /// The task used up its attempts ([`Retry::attempts`](crate::Retry::attempts); 1 for a
    /// job without a retry policy).
    AttemptsUsedUp,
    /// As many of the job's tasks were waiting to be retried as its policy allows
    /// ([`Retry::max_waiting`](crate::Retry::max_waiting)), so this one was not retried.
    RetryBudget,
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GaveUp::Permanent => "a permanent error",
            GaveUp::AttemptsUsedUp => "no attempts left",
            GaveUp::RetryBudget => "the job's retry budget was used up",
        })
    }
}

/// The error of a fallible task that failed for good: the error its last attempt returned, how
/// many attempts it had, and why it was not tried again.
///
/// The error is kept as the task returned it, behind an `Arc` (so the failure is `Clone`);
/// [`downcast_ref`](TaskFailure::downcast_ref) gets the task's own error type back. Two failures
/// compare equal when their attempts, reasons and error messages are equal.
///
/// # Examples
///
/// ```
/// use jobpool::{GaveUp, Pool, TaskContext, TaskError};
///
/// #[derive(Debug)]
/// struct Unlinked;
/// impl std::fmt::Display for Unlinked {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("the user must re-link their account")
///     }
/// }
/// impl std::error::Error for Unlinked {}
///
/// let pool = Pool::new(1);
/// let job = pool.job().submit_fallible(vec![|_: &TaskContext| -> Result<u32, Unlinked> { Err(Unlinked) }]);
/// let err = job.wait().unwrap_err();
/// let (index, failure) = err.failures().next().unwrap();
/// assert_eq!((index, failure.attempts(), failure.gave_up()), (0, 1, GaveUp::AttemptsUsedUp));
/// assert!(failure.downcast_ref::<Unlinked>().is_some());
/// ```
#[derive(Clone)]
pub struct TaskFailure {
    error: Arc<dyn Error + Send + Sync>,
    attempts: u32,
    gave_up: GaveUp,
}

impl TaskFailure {
    pub(crate) fn new(error: Box<dyn Error + Send + Sync>, attempts: u32, gave_up: GaveUp) -> Self {
        TaskFailure {
            error: error.into(),
            attempts,
            gave_up,
        }
    }

    /// The error the task's last attempt returned.
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.error
    }

    /// The error, if it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error.downcast_ref::<E>()
    }

    /// How many times the task ran (1 for a task that was not retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why it was not tried again.
    pub fn gave_up(&self) -> GaveUp {
        self.gave_up
    }

    /// Whether the error was permanent (not worth retrying), rather than one the task gave
    /// up on.
    pub fn is_permanent(&self) -> bool {
        self.gave_up == GaveUp::Permanent
    }
}

impl fmt::Debug for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFailure")
            .field("error", &self.error)
            .field("attempts", &self.attempts)
            .field("gave_up", &self.gave_up)
            .finish()
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = self.attempts;
        let s = if attempts == 1 { "" } else { "s" };
        write!(
            f,
            "task failed after {attempts} attempt{s} ({}): {}",
            self.gave_up, self.error
        )
    }
}

impl Error for TaskFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.error)
    }
}

impl PartialEq for TaskFailure {
    fn eq(&self, other: &Self) -> bool {
        self.attempts == other.attempts
            && self.gave_up == other.gave_up
            && (Arc::ptr_eq(&self.error, &other.error)
                || self.error.to_string() == other.error.to_string())
    }
}

impl Eq for TaskFailure {}

impl std::hash::Hash for TaskFailure {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.attempts.hash(state);
        self.gave_up.hash(state);
        self.error.to_string().hash(state);
    }
}

/// A job in which at least one task panicked or was cancelled.
///
/// Every other task still ran; their results are reachable through
/// [`into_results`](JobError::into_results) and [`results_mut`](JobError::results_mut), in
/// submission order. Which tasks failed, and why, is readable through a shared reference
/// ([`panics`](JobError::panics), [`cancelled`](JobError::cancelled)).
///
/// It is `Send + Sync + 'static` whatever the result type is (the results are reachable only
/// by value or through `&mut`), so `?` turns it into a `Box<dyn Error + Send + Sync>` or an
/// `anyhow::Error`, even for results that are not `Sync`.
///
/// # Examples
///
/// ```
/// use jobpool::Pool;
///
/// let pool = Pool::new(2);
/// let job = pool.submit((0..4).map(|i| move || if i == 2 { panic!("bad input {i}") } else { i }), 2);
/// let err = job.wait().unwrap_err();
/// assert_eq!(err.panics().collect::<Vec<_>>(), vec![(2, "bad input 2")]);
/// assert_eq!(err.to_string(), "1 of 4 tasks panicked (task 2: bad input 2)");
/// let done: Vec<_> = err.into_results().into_iter().filter_map(Result::ok).collect();
/// assert_eq!(done, vec![0, 1, 3]);
/// ```
pub struct JobError<T> {
    /// Every task's outcome, reachable only by value or `&mut`, so that the error is `Sync`.
    results: SyncWrapper<Vec<Result<T, TaskError>>>,
    /// The number of tasks.
    total: usize,
    /// Which tasks failed and how; boxed, to keep the error (and every `Result` holding it)
    /// small.
    why: Box<Why>,
}

/// The tasks of a [`JobError`] that have no value, by reason, each in index order.
#[derive(Default)]
struct Why {
    /// `(index, message)` of every task that panicked.
    panics: Vec<(usize, String)>,
    /// Tasks cancelled before they started.
    cancelled: Vec<usize>,
    /// `(index, failure)` of every fallible task that failed for good.
    failures: Vec<(usize, TaskFailure)>,
    /// Tasks the job's deadline stopped.
    timed_out: Vec<usize>,
    /// The job's name, if it has one.
    name: Option<std::sync::Arc<str>>,
}

impl<T> JobError<T> {
    pub(crate) fn new(results: Vec<Result<T, TaskError>>) -> Self {
        let mut why = Why::default();
        for (i, result) in results.iter().enumerate() {
            match result {
                Err(TaskError::Panicked(message)) => why.panics.push((i, message.clone())),
                Err(TaskError::Cancelled) => why.cancelled.push(i),
                Err(TaskError::Failed(failure)) => why.failures.push((i, failure.clone())),
                Err(TaskError::TimedOut) => why.timed_out.push(i),
                Ok(_) => {}
            }
        }
        JobError {
            total: results.len(),
            results: SyncWrapper::new(results),
            why: Box::new(why),
        }
    }

    /// With the job's name, for `Display`.
    pub(crate) fn named(mut self, name: Option<&std::sync::Arc<str>>) -> Self {
        self.why.name = name.cloned();
        self
    }

    /// The name of the job, if it was given one
    /// ([`JobBuilder::name`](crate::JobBuilder::name)).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(1);
    /// let err = pool.job().name("upload").submit(vec![|| panic!("no network")]).wait().unwrap_err();
    /// assert_eq!(err.job_name(), Some("upload"));
    /// ```
    pub fn job_name(&self) -> Option<&str> {
        self.why.name.as_deref()
    }

    /// The tasks that panicked, as `(task index, panic message)`, in submission order.
    pub fn panics(&self) -> impl Iterator<Item = (usize, &str)> + '_ {
        self.why.panics.iter().map(|(i, m)| (*i, m.as_str()))
    }

    /// The indices of the tasks that were cancelled before they started.
    pub fn cancelled(&self) -> impl Iterator<Item = usize> + '_ {
        self.why.cancelled.iter().copied()
    }

    /// Whether any task was cancelled (the job was cancelled, or the pool shut down with
    /// [`Pool::shutdown_now`](crate::Pool::shutdown_now)).
    pub fn was_cancelled(&self) -> bool {
        !self.why.cancelled.is_empty()
    }

    /// The fallible tasks that failed for good, as `(task index, failure)`, in submission
    /// order: each with its error, its number of attempts and why it was not retried.
    pub fn failures(&self) -> impl Iterator<Item = (usize, &TaskFailure)> + '_ {
        self.why.failures.iter().map(|(i, f)| (*i, f))
    }

    /// The indices of the tasks that the job's deadline stopped before they started.
    pub fn timed_out(&self) -> impl Iterator<Item = usize> + '_ {
        self.why.timed_out.iter().copied()
    }

    /// Whether the job's deadline passed with tasks not started: the reason the job ended
    /// early.
    pub fn deadline_passed(&self) -> bool {
        !self.why.timed_out.is_empty()
    }

    /// The number of tasks in the job.
    pub fn tasks(&self) -> usize {
        self.total
    }

    /// How many tasks returned a value.
    pub fn succeeded(&self) -> usize {
        self.total
            - self.why.panics.len()
            - self.why.cancelled.len()
            - self.why.failures.len()
            - self.why.timed_out.len()
    }

    /// Every task's outcome, in submission order, to read or take values out of in place.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, TaskError};
    ///
    /// let pool = Pool::new(1);
    /// let tasks: Vec<Box<dyn FnOnce() -> String + Send>> =
    ///     vec![Box::new(|| "kept".to_owned()), Box::new(|| panic!("lost"))];
    /// let mut err = pool.submit(tasks, 1).wait().unwrap_err();
    /// let first = std::mem::replace(&mut err.results_mut()[0], Err(TaskError::Cancelled));
    /// assert_eq!(first.unwrap(), "kept");
    /// ```
    pub fn results_mut(&mut self) -> &mut [Result<T, TaskError>] {
        self.results.get_mut()
    }

    /// Every task's outcome, in submission order, by value.
    pub fn into_results(self) -> Vec<Result<T, TaskError>> {
        self.results.into_inner()
    }
}

impl<T> fmt::Debug for JobError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("name", &self.job_name())
            .field("tasks", &self.total)
            .field("panics", &self.panics().collect::<Vec<_>>())
            .field("cancelled", &self.cancelled().count())
            .field("failures", &self.why.failures)
            .field("timed_out", &self.why.timed_out.len())
            .finish()
    }
}

impl<T> fmt::Display for JobError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 3;
        if let Some(name) = &self.why.name {
            write!(f, "job {name}: ")?;
        }
        let total = self.total;
        let panics = self.why.panics.len();
        let cancelled = self.why.cancelled.len();
        let mut sep = "";
        if panics > 0 {
            write!(f, "{panics} of {total} tasks panicked (")?;
            for (n, (i, msg)) in self.panics().take(SHOWN).enumerate() {
                write!(f, "{}task {i}: {msg}", if n == 0 { "" } else { "; " })?;
            }
            if panics > SHOWN {
                write!(f, "; and {} more", panics - SHOWN)?;
            }
            f.write_str(")")?;
            sep = ", ";
        }
        let failed = self.why.failures.len();
        if failed > 0 {
            write!(f, "{sep}{failed} of {total} tasks failed (")?;
            for (n, (i, failure)) in self.why.failures.iter().take(SHOWN).enumerate() {
                let attempts = failure.attempts();
                write!(
                    f,
                    "{}task {i}: {} after {attempts} attempt{}, {}",
                    if n == 0 { "" } else { "; " },
                    failure.error(),
                    if attempts == 1 { "" } else { "s" },
                    failure.gave_up()
                )?;
            }
            if failed > SHOWN {
                write!(f, "; and {} more", failed - SHOWN)?;
            }
            f.write_str(")")?;
            sep = ", ";
        }
        let timed_out = self.why.timed_out.len();
        if timed_out > 0 {
            write!(
                f,
                "{sep}the job's deadline passed: {timed_out} of {total} tasks never ran"
            )?;
            sep = ", ";
        }
        if cancelled > 0 {
            write!(f, "{sep}{cancelled} of {total} tasks cancelled")?;
        }
        Ok(())
    }
}

impl<T> Error for JobError<T> {}
