//! Awaiting a job from async code, on `std`'s `Future` and `Waker` alone, with no runtime:
//! [`JobFuture`] (what `.await` on a [`JobHandle`] runs) and [`Completions::poll_next`].
//!
//! A poll never blocks and never runs a task. Under the job's lock it either takes what it
//! awaits (the results, or the next result) or leaves its task's waker in the job's state, and
//! whoever records a result or finishes the job takes the waker under the same lock and wakes
//! it once the lock is released (rule 8 of `src/scheduler/README.md`). So no wake-up is lost,
//! and with no async waiter the scheduler pays one branch per recorded chunk.
//!
//! Why `IntoFuture` for `JobHandle` rather than `Future`: `.await` then consumes the handle and
//! yields what [`JobHandle::wait`] returns, so `job.await?` reads as `job.wait()?` does, and a
//! `JobHandle` never becomes a spent future whose results were taken (which `wait` or
//! `completions` after a poll would have to report somehow). The state a future needs (whether
//! it left a waker, whether it completed) lives in [`JobFuture`], not in every handle.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::{Completions, JobCore, JobHandle, JobState, Next};
use crate::error::{JobError, TaskError};
use crate::unwind::call_quietly;

/// The future of a job's results: what `.await` on a [`JobHandle`] runs (the handle is
/// [`IntoFuture`]). Its output is what [`JobHandle::wait`] returns.
///
/// It needs no particular runtime: any executor will do, since it is woken through the
/// [`Waker`] it was polled with, by whichever thread finishes the job. Polling never blocks and
/// never runs one of the job's tasks.
///
/// Dropping it before it completes detaches the job, as dropping a [`JobHandle`] does: the job
/// runs to the end and its results are dropped; the waker it left is taken back.
///
/// Awaiting a job inside one of its own pool's tasks is not like [`wait`](JobHandle::wait)
/// there: the worker does not run the awaited job's tasks meanwhile. A task that blocks its
/// worker in an executor's `block_on` holds that worker idle, and if every worker is held so,
/// the job never runs. In a pool's task, call `wait`; await from threads of your own.
///
/// # Panics
///
/// Polling it again after it returned `Ready` panics.
///
/// # Examples
///
/// Any executor works; here is a minimal one, which parks its thread until the job's last
/// task wakes it:
///
/// ```
/// use std::future::Future;
/// use std::sync::Arc;
/// use std::task::{Context, Poll, Wake, Waker};
/// use jobpool::Pool;
///
/// struct Unpark(std::thread::Thread);
///
/// impl Wake for Unpark {
///     fn wake(self: Arc<Self>) {
///         self.0.unpark();
///     }
/// }
///
/// fn block_on<F: Future>(future: F) -> F::Output {
///     let mut future = std::pin::pin!(future);
///     let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
///     let mut cx = Context::from_waker(&waker);
///     loop {
///         if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
///             return output;
///         }
///         std::thread::park();
///     }
/// }
///
/// let pool = Pool::new(4);
/// let squares = pool.submit((1..=4).map(|i| move || i * i), 2);
/// let cubes = pool.submit((1..=4).map(|i| move || i * i * i), 2);
/// let sums = block_on(async {
///     let squares: i32 = squares.await?.iter().sum();
///     let cubes: i32 = cubes.await?.iter().sum();
///     Ok::<_, jobpool::JobError<i32>>((squares, cubes))
/// })?;
/// assert_eq!(sums, (30, 100));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless polled; dropping a JobFuture detaches the job"]
pub struct JobFuture<T> {
    handle: JobHandle<T>,
    /// Whether the last poll returned `Pending`, leaving a waker in the job.
    waiting: bool,
    /// Whether a poll returned the results.
    done: bool,
}

impl<T: Send + 'static> JobFuture<T> {
    /// The job's handle, to watch or steer the job while it is awaited.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::IntoFuture;
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(1);
    /// let job = pool.submit((0..100).map(|i| move || i), 1).into_future();
    /// job.handle().set_cap(2).unwrap();
    /// assert_eq!(job.handle().progress().cap, 2);
    /// ```
    pub fn handle(&self) -> &JobHandle<T> {
        &self.handle
    }
}

impl<T: Send + 'static> Future for JobFuture<T> {
    type Output = Result<Vec<T>, JobError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.done, "a JobFuture was polled after it completed");
        let poll = this.handle.job.poll_finish(cx);
        this.waiting = poll.is_pending();
        this.done = poll.is_ready();
        poll
    }
}

impl<T> Drop for JobFuture<T> {
    fn drop(&mut self) {
        // The results stay in the job (dropped with it, as for a dropped handle); only the
        // waker, which could keep the executor's task alive until the job ends, is taken back.
        if self.waiting {
            self.handle.job.forget_waker();
        }
    }
}

impl<T> fmt::Debug for JobFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobFuture")
            .field("handle", &self.handle)
            .field("done", &self.done)
            .finish()
    }
}

/// `.await` on a handle waits for the job's results without blocking the thread: see
/// [`JobFuture`].
impl<T: Send + 'static> IntoFuture for JobHandle<T> {
    type Output = Result<Vec<T>, JobError<T>>;
    type IntoFuture = JobFuture<T>;

    fn into_future(self) -> JobFuture<T> {
        JobFuture {
            handle: self,
            waiting: false,
            done: false,
        }
    }
}

impl<T: Send + 'static> Completions<T> {
    /// The next result in the order tasks finish, for async code: `Ready(None)` once every task
    /// has been reported (and on every poll after), `Pending` while no task has finished since
    /// the last result, with `cx`'s waker woken by the next one to finish. The shape of a
    /// stream's `poll_next`, with `&mut self` since `Completions` is `Unpin`.
    ///
    /// Never blocks and never runs a task (see [`JobFuture`] about polling from inside the
    /// pool). A result leaves the job only in the poll that returns it, so a poll that is never
    /// repeated loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::task::{Context, Poll, Wake, Waker};
    /// use jobpool::Pool;
    ///
    /// struct Unpark(std::thread::Thread);
    ///
    /// impl Wake for Unpark {
    ///     fn wake(self: Arc<Self>) {
    ///         self.0.unpark();
    ///     }
    /// }
    ///
    /// let pool = Pool::new(2);
    /// let mut results = pool.submit((0..4).map(|i| move || i * 10), 2).completions();
    /// let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    /// let mut cx = Context::from_waker(&waker);
    /// let mut seen = Vec::new();
    /// loop {
    ///     match results.poll_next(&mut cx) {
    ///         Poll::Ready(Some((index, result))) => seen.push((index, result.unwrap())),
    ///         Poll::Ready(None) => break,
    ///         Poll::Pending => std::thread::park(), // until a worker records a result
    ///     }
    /// }
    /// seen.sort();
    /// assert_eq!(seen, vec![(0, 0), (1, 10), (2, 20), (3, 30)]);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Result<T, TaskError>)>> {
        let poll = self.handle.job.poll_completion(cx);
        self.waiting = poll.is_pending();
        poll.map(|next| match next {
            Next::Ready(index, result) => Some((index, result)),
            Next::Exhausted | Next::TimedOut => None,
        })
    }

    /// The next result in the order tasks finish, awaited: `None` once every task has been
    /// reported. The async form of [`Iterator::next`], by [`poll_next`](Self::poll_next).
    ///
    /// Dropping the future before it completes loses no result: the next call returns it.
    ///
    /// # Examples
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
    /// let pool = Pool::new(2);
    /// let mut results = pool.submit(vec![|| "a", || "b", || "c"], 2).completions();
    /// let total = block_on(async {
    ///     let mut total = 0;
    ///     while let Some((_index, result)) = results.next_async().await {
    ///         total += result.unwrap().len();
    ///     }
    ///     total
    /// });
    /// assert_eq!(total, 3);
    /// ```
    #[allow(clippy::type_complexity)]
    pub async fn next_async(&mut self) -> Option<(usize, Result<T, TaskError>)> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

impl<T> Drop for Completions<T> {
    fn drop(&mut self) {
        // Results not taken are dropped with the job, as for a dropped handle; a waker left by
        // `poll_next` is taken back.
        if self.waiting {
            self.handle.job.forget_waker();
        }
    }
}

impl<F, T> JobCore<F, T>
where
    F: super::task::Task<T>,
    T: Send + 'static,
{
    /// Rule 8: in one critical section of the job's lock, either `ready` finds what the caller
    /// awaits, or the caller's waker is left in the job's state for whoever provides it. A
    /// notifier decides under the same lock whether to take the waker, so either the poll sees
    /// the change or the change sees the waker.
    ///
    /// A waker's clone and drop are the executor's code, and no scheduler lock is held while
    /// user code runs: the waker is cloned before the lock is taken, and whichever waker is
    /// not kept is dropped after it is released. `will_wake` (a comparison) keeps the waker in
    /// place when the same task polls again.
    pub(super) fn poll_for<R>(
        &self,
        cx: &mut Context<'_>,
        ready: impl FnOnce(&mut JobState<F, T>) -> Option<R>,
    ) -> Poll<R> {
        let mut fresh = Some(cx.waker().clone());
        let mut st = self.state.lock();
        let found = ready(&mut st);
        let unneeded = match found {
            // Nothing more to wait for: a waker an earlier poll left goes too.
            Some(_) => st.take_waker(),
            None => {
                let slot = st.waker_slot();
                if slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    None
                } else {
                    std::mem::replace(slot, fresh.take())
                }
            }
        };
        drop(st);
        drop((fresh, unneeded));
        match found {
            Some(found) => Poll::Ready(found),
            None => Poll::Pending,
        }
    }

    /// Takes back the waker a `Pending` poll left, and drops it with the lock released.
    pub(super) fn drop_waker(&self) {
        let waker = self.state.lock().take_waker();
        drop(waker);
    }
}

/// Wakes the async waiter, with no lock held. A waker is the executor's code: like a completion
/// callback, a panic in it must not take a worker down (README.md, "Panics").
pub(super) fn wake_quietly(waker: Waker) {
    call_quietly(|| waker.wake());
}
