//! What a worker runs: a plain task (a closure called once), or a fallible task that may be
//! tried again, and the context a fallible task sees.

use std::error::Error;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::retry::{Decision, Retry};
use super::TaskGate;
use crate::error::{GaveUp, TaskFailure};
use crate::scheduler::Registry;
use crate::unwind::catch;

/// One task of a job whose results are `T`, as a worker runs it.
///
/// Running consumes the task; a task that wants another attempt hands itself back
/// ([`Ran::Retry`]), which is how a retry's need to call the task again is checked at compile
/// time: only [`Fallible`] tasks (an `FnMut`) can do it, a plain `FnOnce` task cannot.
pub(crate) trait Task<T>: Send + Sized + 'static {
    /// Whether the task may fail or ask to be retried. A plain task only returns a value or
    /// panics, and a worker runs it through [`run_plain`](Task::run_plain), the path of
    /// least cost (no `Ran` to build and match, per task).
    const FALLIBLE: bool;

    fn run(self, job: &JobContext<'_>) -> Ran<Self, T>;

    /// Runs a task that is not `FALLIBLE`.
    fn run_plain(self) -> T;

    /// The attempt that running the task now makes, from 1 (for events).
    fn next_attempt(&self) -> u32 {
        1
    }
}

/// How one attempt of a task ended.
pub(crate) enum Ran<W, T> {
    Value(T),
    /// Panicked, and is not retried.
    Panicked(String),
    /// Returned an error, and is not retried.
    Failed(TaskFailure),
    /// Failed, and is to run again after `after`, unless the job's retry budget is used up;
    /// `cause` is reported if it is not retried after all.
    Retry {
        task: W,
        after: Duration,
        cause: RetryCause,
    },
}

/// Why a task is to be retried, kept to report it if the retry cannot happen.
pub(crate) enum RetryCause {
    Error(Box<dyn Error + Send + Sync>, u32),
    Panic(String),
}

impl<F, T> Task<T> for F
where
    F: FnOnce() -> T + Send + 'static,
{
    const FALLIBLE: bool = false;

    #[inline]
    fn run(self, _job: &JobContext<'_>) -> Ran<Self, T> {
        Ran::Value(self())
    }

    #[inline]
    fn run_plain(self) -> T {
        self()
    }
}

/// What every task of a job may ask about the job while it runs.
pub(crate) struct JobContext<'a> {
    pub(crate) gate: &'a TaskGate,
    pub(crate) registry: &'a Registry,
    pub(crate) deadline: Option<Instant>,
    /// Tells one job's tasks from another's, for retry jitter.
    pub(crate) job_id: usize,
}

/// A fallible task: called with a [`TaskContext`], returns `Result<T, E>`, and may be called
/// again under its job's [`Retry`] policy.
pub(crate) struct Fallible<G, E> {
    task: G,
    index: usize,
    /// The attempts made so far.
    attempts: u32,
    retry: Option<Arc<Retry>>,
    _error: PhantomData<fn() -> E>,
}

impl<G, E> Fallible<G, E> {
    pub(crate) fn new(task: G, index: usize, retry: Option<Arc<Retry>>) -> Self {
        Fallible {
            task,
            index,
            attempts: 0,
            retry,
            _error: PhantomData,
        }
    }

    /// The user's task, back out of its wrapper (for a refused submission).
    pub(crate) fn into_inner(self) -> G {
        self.task
    }
}

impl<G, T, E> Task<T> for Fallible<G, E>
where
    G: FnMut(&TaskContext<'_>) -> Result<T, E> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>> + 'static,
    T: 'static,
{
    const FALLIBLE: bool = true;

    fn run_plain(self) -> T {
        unreachable!("a fallible task is run with `run`")
    }

    fn next_attempt(&self) -> u32 {
        self.attempts + 1
    }

    fn run(mut self, job: &JobContext<'_>) -> Ran<Self, T> {
        self.attempts += 1;
        let attempt = self.attempts;
        let cx = TaskContext {
            index: self.index,
            attempt,
            job,
        };
        let task = &mut self.task;
        let outcome = catch(|| task(&cx));
        let seed = (job.job_id as u64)
            .rotate_left(32)
            .wrapping_add((self.index as u64) << 8)
            .wrapping_add(u64::from(attempt));
        match outcome {
            Ok(Ok(value)) => Ran::Value(value),
            Ok(Err(error)) => {
                let error: Box<dyn Error + Send + Sync> = error.into();
                let decision = match &self.retry {
                    Some(policy) => policy.decide(Some(&*error), attempt, seed),
                    None => Decision::GiveUp(GaveUp::AttemptsUsedUp),
                };
                match decision {
                    Decision::After(after) => Ran::Retry {
                        task: self,
                        after,
                        cause: RetryCause::Error(error, attempt),
                    },
                    Decision::GiveUp(why) => Ran::Failed(TaskFailure::new(error, attempt, why)),
                }
            }
            Err(message) => match self.retry.as_ref().map(|p| p.decide(None, attempt, seed)) {
                Some(Decision::After(after)) => Ran::Retry {
                    task: self,
                    after,
                    cause: RetryCause::Panic(message),
                },
                _ => Ran::Panicked(message),
            },
        }
    }
}

/// What a fallible task knows about itself while it runs: which task it is, which attempt,
/// and whether it should stop early (its job was cancelled or its deadline passed).
///
/// A running task is never stopped from outside (a thread cannot be pre-empted safely): a
/// long task that wants to honour a cancel or a deadline looks here between steps of its work.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jobpool::{Pool, TaskContext};
///
/// let pool = Pool::new(1);
/// let job = pool.job().timeout(Duration::from_secs(60)).submit_fallible((0..3).map(|_| {
///     |cx: &TaskContext| -> Result<String, String> {
///         assert!(!cx.is_cancelled() && !cx.deadline_passed() && cx.deadline().is_some());
///         Ok(format!("task {} attempt {}", cx.index(), cx.attempt()))
///     }
/// }));
/// assert_eq!(job.wait().unwrap()[2], "task 2 attempt 1");
/// ```
pub struct TaskContext<'a> {
    index: usize,
    attempt: u32,
    job: &'a JobContext<'a>,
}

impl TaskContext<'_> {
    /// The task's index in its job, from 0 in submission order.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Which attempt this is: 1 the first time the task runs, 2 for its first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the job was cancelled (or the pool shut down with
    /// [`shutdown_now`](crate::Pool::shutdown_now)) since the task started: its result will be
    /// kept, but nobody may want it.
    pub fn is_cancelled(&self) -> bool {
        self.job.gate.stopped.load(Relaxed) != 0 || self.job.registry.cancelling()
    }

    /// The job's deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.job.deadline
    }

    /// Whether the job's deadline has passed.
    pub fn deadline_passed(&self) -> bool {
        self.job.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

impl fmt::Debug for TaskContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("index", &self.index)
            .field("attempt", &self.attempt)
            .field("deadline", &self.job.deadline)
            .finish_non_exhaustive()
    }
}
