//! Submitting a job with options: a cap, a priority, a deadline, limiters, and (for fallible
//! tasks) a retry policy.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::retry::Retry;
use super::task::{Fallible, TaskContext};
use super::{spawn, JobHandle, Settings};
use crate::error::{SubmitError, SubmitErrorKind};
use crate::limit::{Limiter, Rate};
use crate::scheduler::priority::Priority;
use crate::Pool;

/// The state of a [`JobBuilder`] without a retry policy: it submits plain tasks
/// ([`submit`](JobBuilder::submit)) or fallible ones ([`submit_fallible`](JobBuilder::submit_fallible)).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetry;

/// The state of a [`JobBuilder`] given a [`Retry`] policy: it submits only fallible tasks,
/// which can be called again ([`submit_fallible`](JobBuilder::submit_fallible)).
#[derive(Debug, Clone)]
pub struct WithRetry(Arc<Retry>);

/// Options for one job, from [`Pool::job`]: its cap, priority, deadline, shared limiters,
/// whether it stops at its first failure and, for fallible tasks, how it retries them.
///
/// A retry policy needs tasks that can run again, so once [`retry`](Self::retry) is given the
/// builder only takes fallible tasks (`FnMut(&TaskContext) -> Result<T, E>`); plain `FnOnce`
/// tasks are refused at compile time:
///
/// ```compile_fail
/// use jobpool::{Pool, Retry};
/// let pool = Pool::new(1);
/// pool.job().retry(Retry::attempts(3)).submit(vec![|| 1]); // a FnOnce cannot be retried
/// ```
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jobpool::{Pool, Priority, Rate, Retry, TaskContext};
///
/// let pool = Pool::new(4);
/// let probe = |cx: &TaskContext| -> Result<String, std::io::Error> {
///     Ok(format!("endpoint {} answered", cx.index()))
/// };
/// let job = pool
///     .job()
///     .cap(2)
///     .priority(Priority::High)
///     .rate(Rate::per_second(1000).burst(10))
///     .timeout(Duration::from_secs(30))
///     .retry(Retry::attempts(3).backoff(Duration::from_millis(5), 2.0, Duration::from_millis(100)))
///     .submit_fallible(vec![probe; 8]);
/// assert_eq!(job.wait()?.len(), 8);
/// # Ok::<(), jobpool::JobError<String>>(())
/// ```
#[must_use = "a job builder submits nothing until one of its submit methods is called"]
pub struct JobBuilder<'p, R = NoRetry> {
    pool: &'p Pool,
    cap: usize,
    settings: Settings,
    retry: R,
}

impl Pool {
    /// Starts a job with options (cap 1 unless set). See [`JobBuilder`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(2);
    /// let job = pool.job().cap(2).submit((0..4).map(|i| move || i * 10));
    /// assert_eq!(job.wait().unwrap(), vec![0, 10, 20, 30]);
    /// ```
    pub fn job(&self) -> JobBuilder<'_> {
        JobBuilder {
            pool: self,
            cap: 1,
            settings: Settings::default(),
            retry: NoRetry,
        }
    }
}

impl<'p, R> JobBuilder<'p, R> {
    /// At most `cap` tasks of the job run at once (1 unless set). A cap of 0 is refused when
    /// the job is submitted.
    pub fn cap(mut self, cap: usize) -> Self {
        self.cap = cap;
        self
    }

    /// Names the job: the name appears in the pool's events and timelines, in the job's
    /// [`JobError`](crate::JobError) and in its handle's `Debug` output.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(2);
    /// let job = pool.job().name("thumbnails").submit(vec![|| panic!("corrupt image")]);
    /// assert_eq!(job.name(), Some("thumbnails"));
    /// let err = job.wait().unwrap_err();
    /// assert_eq!(err.to_string(), "job thumbnails: 1 of 1 tasks panicked (task 0: corrupt image)");
    /// ```
    pub fn name(mut self, name: impl Into<std::sync::Arc<str>>) -> Self {
        self.settings.name = Some(name.into());
        self
    }

    /// The job's priority ([`Priority::Normal`] unless set).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.settings.priority = priority;
        self
    }

    /// The job's deadline: tasks not started by then are not started at all, and are reported
    /// as [`TaskError::TimedOut`](crate::TaskError::TimedOut) (tasks waiting to be retried
    /// too). Running tasks are not stopped (a thread cannot be pre-empted safely): they can
    /// check [`TaskContext::deadline_passed`]. `wait` then returns a
    /// [`JobError`](crate::JobError) whose [`deadline_passed`](crate::JobError::deadline_passed)
    /// says so.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use jobpool::{Pool, TaskError};
    ///
    /// let pool = Pool::new(1);
    /// let slow = move || std::thread::sleep(Duration::from_millis(20));
    /// let job = pool.job().deadline(Instant::now() + Duration::from_millis(5)).submit(vec![slow; 50]);
    /// let err = job.wait().unwrap_err();
    /// assert!(err.deadline_passed());
    /// assert!(err.succeeded() < 50);
    /// ```
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.settings.deadline = Some((crate::sync::from_std(deadline), deadline));
        self
    }

    /// A deadline `timeout` from now; see [`deadline`](Self::deadline).
    pub fn timeout(self, timeout: Duration) -> Self {
        let deadline = Instant::now().checked_add(timeout);
        match deadline {
            Some(deadline) => self.deadline(deadline),
            None => self,
        }
    }

    /// Puts the job under a [`Limiter`] shared with other jobs: its cap and rate hold for all
    /// of them together, on top of each job's own cap. A job may have several limiters (at
    /// most 64).
    ///
    /// # Panics
    ///
    /// If the job has 64 limiters already.
    pub fn limit(mut self, limiter: &Limiter) -> Self {
        assert!(
            self.settings.limiters.len() < 64,
            "JobBuilder::limit: a job takes at most 64 limiters"
        );
        self.settings.limiters.push(limiter.clone());
        self
    }

    /// Limits the job's own task starts to `rate` (a limiter of its own; to share a rate with
    /// other jobs, give them one [`Limiter`] instead). A job waiting for its next start slot
    /// holds no worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use jobpool::{Pool, Rate};
    ///
    /// let pool = Pool::new(4);
    /// let start = Instant::now();
    /// let job = pool.job().cap(4).rate(Rate::per_second(100)).submit((0..5).map(|_| Instant::now));
    /// let starts = job.wait().unwrap();
    /// // One start per 10 ms: the fifth starts at least 40 ms after the first.
    /// assert!(starts[4].duration_since(starts[0]) >= Duration::from_millis(39));
    /// # let _ = start;
    /// ```
    pub fn rate(self, rate: Rate) -> Self {
        let limiter = Limiter::new().with_rate(rate);
        self.limit(&limiter)
    }

    /// Marks the job as a module of a dependency graph's run that started at `rank` (and
    /// whether it is of the run's first stage): see `scheduler/priority.rs`.
    pub(crate) fn run_stage(mut self, stage: (u64, bool)) -> Self {
        self.settings.run = Some(stage);
        self
    }

    /// Stops the job at its first failure (a task that failed for good, or panicked): the
    /// tasks that have not started are cancelled, and reported so, as a dependency graph's
    /// fail-fast does. Running tasks finish.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, TaskContext};
    ///
    /// let pool = Pool::new(1);
    /// let job = pool.job().fail_fast(true).submit_fallible((0..10).map(|i| {
    ///     move |_: &TaskContext| if i == 2 { Err("broken") } else { Ok(i) }
    /// }));
    /// let err = job.wait().unwrap_err();
    /// assert_eq!(err.failures().next().unwrap().0, 2);
    /// assert_eq!(err.cancelled().count(), 7);
    /// ```
    pub fn fail_fast(mut self, yes: bool) -> Self {
        self.settings.fail_fast = yes;
        self
    }

    /// Submits fallible tasks: each gets a [`TaskContext`] (its index, its attempt, whether
    /// the job was cancelled or its deadline passed) and returns `Ok(value)` or an error, which
    /// the job reports as [`TaskError::Failed`](crate::TaskError::Failed) with the number of
    /// attempts, after retrying it under the job's [`Retry`] policy, if any.
    ///
    /// # Panics
    ///
    /// If the cap is 0 or the pool was shut down;
    /// [`try_submit_fallible`](Self::try_submit_fallible) returns these as errors.
    pub fn submit_fallible<I, G, T, E>(self, tasks: I) -> JobHandle<T>
    where
        I: IntoIterator<Item = G>,
        G: FnMut(&TaskContext<'_>) -> Result<T, E> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync>> + 'static,
        T: Send + 'static,
        R: RetryState,
    {
        match self.try_submit_fallible(tasks) {
            Ok(handle) => handle,
            Err(err) => panic!("JobBuilder::submit_fallible: {err}"),
        }
    }

    /// Submits fallible tasks as [`submit_fallible`](Self::submit_fallible) does, or says why
    /// it cannot and hands the tasks back.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with [`SubmitErrorKind::ZeroCap`] or [`SubmitErrorKind::ShutDown`].
    pub fn try_submit_fallible<I, G, T, E>(self, tasks: I) -> Result<JobHandle<T>, SubmitError<G>>
    where
        I: IntoIterator<Item = G>,
        G: FnMut(&TaskContext<'_>) -> Result<T, E> + Send + 'static,
        E: Into<Box<dyn Error + Send + Sync>> + 'static,
        T: Send + 'static,
        R: RetryState,
    {
        let policy = self.retry.policy();
        let budget = policy.as_ref().map_or(usize::MAX, |p| p.budget());
        let tasks: VecDeque<Fallible<G, E>> = tasks
            .into_iter()
            .enumerate()
            .map(|(index, task)| Fallible::new(task, index, policy.clone()))
            .collect();
        let back = |kind, tasks: VecDeque<Fallible<G, E>>| {
            SubmitError::new(kind, tasks.into_iter().map(Fallible::into_inner).collect())
        };
        if self.cap == 0 {
            return Err(back(SubmitErrorKind::ZeroCap, tasks));
        }
        let registry = self.pool.registry();
        spawn(registry, tasks, self.cap, self.settings, budget).map_err(|(kind, t)| back(kind, t))
    }
}

impl<'p> JobBuilder<'p, NoRetry> {
    /// Retries failing tasks under `policy`. From here on the builder takes only fallible
    /// tasks, which can be called again.
    pub fn retry(self, policy: Retry) -> JobBuilder<'p, WithRetry> {
        JobBuilder {
            pool: self.pool,
            cap: self.cap,
            settings: self.settings,
            retry: WithRetry(Arc::new(policy)),
        }
    }

    /// Submits plain tasks, as [`Pool::submit`] does, with the builder's options.
    ///
    /// # Panics
    ///
    /// If the cap is 0 or the pool was shut down; [`try_submit`](Self::try_submit) returns
    /// these as errors.
    pub fn submit<I, F, T>(self, tasks: I) -> JobHandle<T>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.try_submit(tasks) {
            Ok(handle) => handle,
            Err(err) => panic!("JobBuilder::submit: {err}"),
        }
    }

    /// Submits plain tasks, or says why it cannot and hands the tasks back.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with [`SubmitErrorKind::ZeroCap`] or [`SubmitErrorKind::ShutDown`].
    pub fn try_submit<I, F, T>(self, tasks: I) -> Result<JobHandle<T>, SubmitError<F>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let tasks: VecDeque<F> = tasks.into_iter().collect();
        if self.cap == 0 {
            return Err(SubmitError::new(SubmitErrorKind::ZeroCap, tasks.into()));
        }
        let registry = self.pool.registry();
        spawn(registry, tasks, self.cap, self.settings, usize::MAX)
            .map_err(|(kind, tasks)| SubmitError::new(kind, tasks.into()))
    }
}

/// The retry state of a [`JobBuilder`]: [`NoRetry`] or [`WithRetry`].
pub trait RetryState: sealed::Sealed {
    #[doc(hidden)]
    fn policy(&self) -> Option<Arc<Retry>>;
}

impl RetryState for NoRetry {
    fn policy(&self) -> Option<Arc<Retry>> {
        None
    }
}

impl RetryState for WithRetry {
    fn policy(&self) -> Option<Arc<Retry>> {
        Some(self.0.clone())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoRetry {}
    impl Sealed for super::WithRetry {}
}

impl<R: fmt::Debug> fmt::Debug for JobBuilder<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobBuilder")
            .field("cap", &self.cap)
            .field("priority", &self.settings.priority)
            .field("deadline", &self.settings.deadline.map(|(_, d)| d))
            .field("limiters", &self.settings.limiters)
            .field("fail_fast", &self.settings.fail_fast)
            .field("retry", &self.retry)
            .finish()
    }
}
