//! The user's side of a job: waiting for it, watching it, steering it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Cancel, JobControl, Next};
use crate::error::{JobError, TaskError, TimedOut, ZeroCapError};
use crate::sync::Instant;

/// A handle to a submitted job: wait for its results, take them as they come, or steer it.
///
/// Dropping a handle without waiting *detaches* the job: it still runs to the end, and its
/// results are dropped.
///
/// # Which calls block
///
/// - Block the calling thread: [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout), and
///   taking results from [`Completions`] as an iterator ([`next`](Completions::next),
///   [`next_timeout`](Completions::next_timeout)). On one of the pool's own workers they run
///   the job's tasks meanwhile. Outside the handle, [`Pool::scope`](crate::Pool::scope) and
///   [`Dag::run`](crate::Dag::run) block until their jobs are done, and dropping the last
///   [`Pool`](crate::Pool) handle and [`Pool::shutdown`](crate::Pool::shutdown) until every
///   accepted task is.
/// - Never block, and never run a task: `.await` on the handle (it is
///   [`IntoFuture`](std::future::IntoFuture), to a [`JobFuture`](crate::JobFuture)) and
///   [`Completions::poll_next`] / [`Completions::next_async`]. Use these in async code, with
///   any executor: they are woken through `std`'s [`Waker`](std::task::Waker). Inside one of
///   the pool's own tasks use `wait` (see [`JobFuture`](crate::JobFuture) for why).
/// - Return at once: everything else ([`progress`](Self::progress), [`cancel`](Self::cancel),
///   [`set_cap`](Self::set_cap), [`completions`](Self::completions), ...).
///   [`on_finish`](Self::on_finish) runs the callback on the calling thread if the job has
///   finished already.
///
/// # Examples
///
/// ```
/// use jobpool::Pool;
///
/// let pool = Pool::new(4);
/// let job = pool.submit((1..=10).map(|i| move || i * i), 2);
/// assert_eq!(job.wait().unwrap(), vec![1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
/// ```
///
/// In async code, await it instead (any executor; this one is a minimal `block_on`, in full in
/// [`JobFuture`](crate::JobFuture)'s example):
///
/// ```
/// # use std::future::Future;
/// # use std::sync::Arc;
/// # use std::task::{Context, Poll, Wake, Waker};
/// # struct Unpark(std::thread::Thread);
/// # impl Wake for Unpark {
/// #     fn wake(self: Arc<Self>) { self.0.unpark(); }
/// # }
/// # fn block_on<F: Future>(future: F) -> F::Output {
/// #     let mut future = std::pin::pin!(future);
/// #     let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
/// #     let mut cx = Context::from_waker(&waker);
/// #     loop {
/// #         if let Poll::Ready(output) = future.as_mut().poll(&mut cx) { return output; }
/// #         std::thread::park();
/// #     }
/// # }
/// use jobpool::Pool;
///
/// let pool = Pool::new(4);
/// let job = pool.submit((1..=10).map(|i| move || i * i), 2);
/// let squares = block_on(async { job.await })?;
/// assert_eq!(squares.iter().sum::<i32>(), 385);
/// # Ok::<(), jobpool::JobError<i32>>(())
/// ```
#[must_use = "dropping a JobHandle detaches the job: it runs, but its results are lost"]
pub struct JobHandle<T> {
    pub(super) job: Arc<dyn JobControl<T>>,
    cancel: Arc<dyn Cancel>,
}

impl<T: Send + 'static> JobHandle<T> {
    pub(crate) fn new(job: Arc<dyn JobControl<T>>, cancel: Arc<dyn Cancel>) -> Self {
        JobHandle { job, cancel }
    }

    /// Blocks until every task has finished; returns their results in submission order.
    /// In async code, `.await` the handle instead: the same results, without blocking (see
    /// [`JobFuture`](crate::JobFuture)).
    ///
    /// Called from one of the pool's own tasks, `wait` does not block the worker while the
    /// job has work it may start: the worker runs the job's tasks itself (within the job's cap),
    /// so nested jobs cannot deadlock, even in a pool of one thread.
    ///
    /// # Errors
    ///
    /// If any task panicked or was cancelled, a [`JobError`] that says which, and holds the
    /// results of every task that did run.
    ///
    /// # Panics
    ///
    /// If called from one of this job's own tasks, or from a task of a job that one of this
    /// job's tasks is waiting for on the same thread: the job could not finish while the call
    /// waits, so it would never return. The panic is the calling task's, and is reported on its
    /// own job's handle. (A cycle of waits through tasks on different threads is not detected.)
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(1);
    /// let inner = pool.clone();
    /// // A task that starts a sub-job and waits for it, on a pool of one thread.
    /// let job = pool.submit(vec![move || inner.submit(vec![|| 20, || 22], 1).wait().unwrap().iter().sum::<i32>()], 1);
    /// assert_eq!(job.wait().unwrap(), vec![42]);
    /// ```
    pub fn wait(self) -> Result<Vec<T>, JobError<T>> {
        self.job.wait()
    }

    /// Blocks until the job has finished or `timeout` has passed. After `Ok(())`,
    /// [`wait`](Self::wait) returns at once.
    ///
    /// On one of the pool's own workers it runs the job's tasks while it waits, as `wait` does,
    /// so it may return later than `timeout` by up to about the length of one task. It runs at
    /// least one of them whatever the timeout, so a task that polls a sub-job with
    /// `wait_timeout(Duration::ZERO)` in a loop gets it done, even on a pool of one thread.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] if the job has not finished within `timeout`.
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait) does, when called from a task that the job could not finish
    /// without.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(2);
    /// let job = pool.submit(vec![|| 1, || 2], 2);
    /// while job.wait_timeout(Duration::from_millis(10)).is_err() {
    ///     println!("still running: {:?}", job.progress());
    /// }
    /// assert_eq!(job.wait().unwrap(), vec![1, 2]);
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<(), TimedOut> {
        let deadline = Instant::now().checked_add(timeout);
        if self.job.clone().wait_until(deadline) {
            Ok(())
        } else {
            Err(TimedOut)
        }
    }

    /// Whether every task has finished (run, panicked, or been cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(1);
    /// let job = pool.submit(Vec::<fn()>::new(), 1);
    /// assert!(job.is_finished()); // a job of no tasks is finished at once
    /// job.wait().unwrap();
    /// ```
    pub fn is_finished(&self) -> bool {
        let p = self.progress();
        p.done + p.panicked + p.cancelled + p.failed + p.timed_out == p.total
    }

    /// The job's identity in the pool's events ([`PoolEvent::job`](crate::PoolEvent::job)).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(1);
    /// let job = pool.submit(vec![|| ()], 1);
    /// println!("{} is running", job.id());
    /// # job.wait().unwrap();
    /// ```
    pub fn id(&self) -> crate::JobId {
        self.job.job_id()
    }

    /// The job's name, if it was given one ([`JobBuilder::name`](crate::JobBuilder::name)).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(1);
    /// let job = pool.job().name("index").submit(vec![|| ()]);
    /// assert_eq!(job.name(), Some("index"));
    /// assert_eq!(pool.submit(vec![|| ()], 1).name(), None);
    /// # job.wait().unwrap();
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.job.name()
    }

    /// A snapshot of the job's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(2);
    /// let job = pool.submit(vec![|| (), || ()], 1);
    /// assert!(job.wait_timeout(std::time::Duration::from_secs(10)).is_ok());
    /// let p = job.progress();
    /// assert_eq!((p.total, p.done, p.pending, p.running), (2, 2, 0, 0));
    /// assert_eq!(p.peak_running, 1);
    /// ```
    pub fn progress(&self) -> Progress {
        self.job.progress()
    }

    /// Cancels the tasks that have not started: they never start, and are reported as
    /// [`TaskError::Cancelled`]. Running tasks finish. [`wait`](Self::wait) then returns a
    /// [`JobError`] that holds the results of the tasks that did run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(1);
    /// let (started_tx, started) = mpsc::channel();
    /// let (go, go_rx) = mpsc::channel::<()>();
    /// let first = move || { started_tx.send(()).unwrap(); go_rx.recv().unwrap(); 1 };
    /// let tasks: Vec<Box<dyn FnOnce() -> i32 + Send>> = vec![Box::new(first), Box::new(|| 2)];
    /// let job = pool.submit(tasks, 1);
    /// started.recv().unwrap(); // the first task is running, the second is pending
    /// job.cancel();
    /// go.send(()).unwrap();
    /// let mut err = job.wait().unwrap_err();
    /// assert_eq!(err.cancelled().collect::<Vec<_>>(), vec![1]);
    /// assert_eq!(err.results_mut()[0], Ok(1));
    /// ```
    pub fn cancel(&self) {
        self.cancel.clone().cancel();
    }

    /// A cheap, cloneable handle that can only [`cancel`](Canceller::cancel) the job, for code
    /// that does not own the `JobHandle` (say, after [`on_finish`](Self::on_finish) took it).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(1);
    /// let job = pool.submit((0..3).map(|i| move || i), 1);
    /// let canceller = job.canceller();
    /// std::thread::spawn(move || canceller.cancel()).join().unwrap();
    /// // Some tasks may have run before the cancel; none starts after it.
    /// if let Err(err) = job.wait() {
    ///     assert!(err.was_cancelled());
    /// }
    /// ```
    pub fn canceller(&self) -> Canceller {
        Canceller {
            cancel: self.cancel.clone(),
        }
    }

    /// Changes the job's cap while it runs. Raising it lets more tasks start at once, at once
    /// if workers are free; lowering it starts no new task until fewer than `cap` run.
    ///
    /// # Errors
    ///
    /// [`ZeroCapError`] if `cap` is 0; the cap is left as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(4);
    /// let job = pool.submit((0..100).map(|i| move || i), 1);
    /// job.set_cap(4).unwrap();
    /// assert_eq!(job.progress().cap, 4);
    /// assert_eq!(job.wait().unwrap().len(), 100);
    /// ```
    pub fn set_cap(&self, cap: usize) -> Result<(), ZeroCapError> {
        if cap == 0 {
            return Err(ZeroCapError);
        }
        self.job.clone().set_cap(cap);
        Ok(())
    }

    /// Turns the handle into an iterator over results in the order tasks finish, each with
    /// its task's index. Tasks that finished before this call come first, in index order.
    ///
    /// Taking the next result (by [`Iterator::next`] or [`Completions::next_timeout`]) panics,
    /// as [`wait`](Self::wait) does, when called from a task that the job could not finish
    /// without.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(2);
    /// let job = pool.submit((0..5).map(|i| move || i * 10), 2);
    /// let mut seen: Vec<(usize, i32)> = job
    ///     .completions()
    ///     .map(|(index, result)| (index, result.unwrap()))
    ///     .collect();
    /// seen.sort();
    /// assert_eq!(seen, vec![(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);
    /// ```
    pub fn completions(self) -> Completions<T> {
        self.job.start_log();
        Completions {
            handle: self,
            waiting: false,
        }
    }

    /// Runs `callback` with the job's results when it finishes, instead of waiting for them.
    ///
    /// The callback runs on the thread that finished the job: the worker that ran its last
    /// task, or the thread that cancelled it, or this thread at once if the job has finished
    /// already. It runs outside any cap: keep it short, or submit a job from it (submissions
    /// from a callback on a worker are accepted even during shutdown). A panic in the callback
    /// is caught and ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(2);
    /// let (tx, rx) = mpsc::channel();
    /// pool.submit(vec![|| 1, || 2], 2).on_finish(move |results| tx.send(results.unwrap()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), vec![1, 2]);
    /// ```
    pub fn on_finish<C>(self, callback: C)
    where
        C: FnOnce(Result<Vec<T>, JobError<T>>) + Send + 'static,
    {
        self.job.clone().on_finish(Box::new(callback));
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.job.job_id().get())
            .field("name", &self.job.name())
            .field("progress", &self.job.progress())
            .finish()
    }
}

/// Cancels a job from anywhere; from [`JobHandle::canceller`].
///
/// [`cancel`](Canceller::cancel) does what [`JobHandle::cancel`] does: tasks that have not
/// started never start, and are reported as cancelled.
///
/// # Examples
///
/// ```
/// use jobpool::Pool;
///
/// let pool = Pool::new(2);
/// let job = pool.submit(vec![|| 1], 1);
/// let canceller = job.canceller();
/// let results = job.wait(); // finished before any cancel
/// canceller.cancel(); // cancelling a finished job does nothing
/// assert_eq!(results.unwrap(), vec![1]);
/// ```
#[derive(Clone)]
pub struct Canceller {
    cancel: Arc<dyn Cancel>,
}

impl Canceller {
    /// A canceller of something that is not a job of the pool (a remote job of a graph's
    /// module).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn of(cancel: Arc<dyn Cancel>) -> Canceller {
        Canceller { cancel }
    }

    /// Cancels the job's tasks that have not started.
    pub fn cancel(&self) {
        self.cancel.clone().cancel();
    }

    /// On one of the pool's own workers, runs the job's tasks while it has a pending task and a
    /// free token; returns whether it ran any. Elsewhere does nothing. For code that waits, on a
    /// worker, for several jobs at once (the DAG driver).
    pub(crate) fn help(&self) -> bool {
        self.cancel.clone().help()
    }
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller").finish_non_exhaustive()
    }
}

/// Results in the order their tasks finish, from [`JobHandle::completions`].
///
/// Each item is `(task index, result)`. The iterator ends when every task has been reported;
/// cancelled tasks are reported as `Err(TaskError::Cancelled)`.
///
/// As an iterator it blocks for each result. Async code takes them with
/// [`poll_next`](Completions::poll_next) or [`next_async`](Completions::next_async) instead,
/// which never block.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jobpool::Pool;
///
/// let pool = Pool::new(1);
/// let mut results = pool.submit(vec![|| "a", || "b"], 1).completions();
/// while let Some((index, result)) = results.next_timeout(Duration::from_secs(10)).unwrap() {
///     println!("task {index}: {}", result.unwrap());
/// }
/// ```
pub struct Completions<T> {
    pub(super) handle: JobHandle<T>,
    /// Whether the last [`poll_next`](Completions::poll_next) returned `Pending`, leaving a
    /// waker in the job that a drop must take back (`future.rs`).
    pub(super) waiting: bool,
}

impl<T: Send + 'static> Completions<T> {
    /// The job's handle, to watch or steer the job while results come in.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(1);
    /// let mut results = pool.submit(vec![|| 1, || 2, || 3], 1).completions();
    /// results.handle().set_cap(2).unwrap();
    /// assert_eq!(results.count(), 3);
    /// ```
    pub fn handle(&self) -> &JobHandle<T> {
        &self.handle
    }

    /// The next result, waiting at most `timeout` for it: `Ok(None)` when every task has been
    /// reported. On one of the pool's own workers it runs at least one of the job's tasks
    /// whatever the timeout, as [`JobHandle::wait_timeout`] does.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] if no task finished within `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(1);
    /// let mut results = pool.submit(vec![|| 7], 1).completions();
    /// let (index, result) = results.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
    /// assert_eq!((index, result), (0, Ok(7)));
    /// assert!(results.next_timeout(Duration::from_secs(10)).unwrap().is_none());
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(usize, Result<T, TaskError>)>, TimedOut> {
        match self
            .handle
            .job
            .clone()
            .next_completion(Instant::now().checked_add(timeout))
        {
            Next::Ready(index, result) => Ok(Some((index, result))),
            Next::Exhausted => Ok(None),
            Next::TimedOut => Err(TimedOut),
        }
    }
}

impl<T: Send + 'static> Iterator for Completions<T> {
    type Item = (usize, Result<T, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        match self.handle.job.clone().next_completion(None) {
            Next::Ready(index, result) => Some((index, result)),
            Next::Exhausted | Next::TimedOut => None,
        }
    }
}

impl<T> fmt::Debug for Completions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completions")
            .field("handle", &self.handle)
            .finish()
    }
}

/// A snapshot of a job's counters, from [`JobHandle::progress`].
///
/// `pending + running + waiting_retry + done + panicked + cancelled + failed + timed_out ==
/// total`. Tasks are counted as done when
/// their worker reports them, which for very short tasks happens a chunk at a time.
///
/// # Examples
///
/// ```
/// use jobpool::Pool;
///
/// let pool = Pool::new(1);
/// let job = pool.submit(vec![|| ()], 1);
/// let p = job.progress();
/// assert_eq!(p.total, 1);
/// assert_eq!(p.pending + p.running + p.waiting_retry + p.done + p.panicked + p.cancelled + p.failed + p.timed_out, p.total);
/// job.wait().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Progress {
    /// Tasks in the job.
    pub total: usize,
    /// Tasks that have not started.
    pub pending: usize,
    /// Tasks running now (tokens in use).
    pub running: usize,
    /// Tasks that returned a value.
    pub done: usize,
    /// Tasks that panicked.
    pub panicked: usize,
    /// Tasks cancelled before they started.
    pub cancelled: usize,
    /// Fallible tasks that failed for good (their errors are in the job's [`JobError`]).
    pub failed: usize,
    /// Tasks the job's deadline stopped before they started.
    pub timed_out: usize,
    /// Tasks waiting to be retried: they hold no worker and no token until they are due.
    pub waiting_retry: usize,
    /// Retries scheduled so far, over all tasks.
    pub retries: usize,
    /// Whether a limiter holds the job now (its shared cap is full, or its rate's next start
    /// slot is not due yet).
    pub held: bool,
    /// The job's cap.
    pub cap: usize,
    /// The most tasks of the job that ever ran at once.
    pub peak_running: usize,
}

impl<T: Send + 'static> JobHandle<T> {
    /// A call that blocks until the job has finished (running its tasks meanwhile when made on
    /// one of the pool's workers, as `wait` does), whatever happens to this handle: for a
    /// `Scope`, which must outlive every job submitted in it.
    pub(crate) fn finish_waiter(&self) -> Box<dyn FnOnce() + Send> {
        let job = self.job.clone();
        Box::new(move || {
            job.wait_until(None);
        })
    }
}
