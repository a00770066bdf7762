//! Scoped jobs: jobs whose tasks borrow from the caller's stack, with [`Pool::scope`].
//!
//! # Soundness
//!
//! The pool's workers run boxed `'static` tasks. A scoped task borrows data that lives for
//! `'env` (at least as long as the scope), so [`Scope::submit`] erases the task's lifetime to
//! `'static` before it hands it to the pool: the one `unsafe` operation of the crate. It is
//! sound if no task, nor anything it captured, is touched after `'env` ends. That is what the
//! scope guarantees, by these rules:
//!
//! 1. **Every task is counted.** Each task is wrapped in a [`Counted`] that holds the task and
//!    a [`TaskToken`]. The token is created (the scope's `live` count goes up) before the task
//!    is handed to the pool, and dropped (the count goes down) only once the task and
//!    everything it captured are gone: after the task has returned or unwound (the task is
//!    consumed by the call and its captures dropped inside it), or after the never-run wrapper
//!    was dropped (a cancelled task, a submission refused). Struct fields drop in declaration
//!    order, so the task drops before its token, also when a drop panics (`Drop` of a struct
//!    whose field's drop panics still drops the remaining fields).
//! 2. **The scope waits for the count to reach zero** before [`Pool::scope`] returns, whether
//!    the body returned or panicked (the panic is caught, the scope waits, then the panic is
//!    resumed). Nothing can end the wait early: the count is the scope's own, not the handles',
//!    so a leaked or dropped `JobHandle` changes nothing.
//! 3. **Nothing else escapes.** A task's result must be `'static` (it outlives the scope in the
//!    job's handle); a panic payload is `'static` by type. The `JobHandle` returned by
//!    [`Scope::submit`] holds no task (only results and control), so it may outlive the
//!    scope. The `Scope` itself is reachable only as `&'scope Scope<'scope, 'env>`, with
//!    `'scope` invariant and chosen by [`Pool::scope`] (a higher-ranked closure), so it cannot
//!    be smuggled out of the body; the compile-fail examples on [`Pool::scope`] pin this.
//!
//! # Progress
//!
//! The waiting thread must not starve the tasks it waits for: when it is one of the pool's own
//! workers (a scope opened inside a task), it first waits for each scoped job as
//! [`JobHandle::wait`] does, running the job's tasks itself, so a scope works even in a pool of
//! one thread. Then it blocks until the count reaches zero, which can only be waiting for the
//! drops of cancelled tasks, done by the thread that cancelled them.

#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::{JobHandle, Pool, SubmitErrorKind};

/// A scope in which jobs may borrow from the caller's stack; see [`Pool::scope`].
///
/// # Examples
///
/// ```
/// use jobpool::Pool;
///
/// let pool = Pool::new(2);
/// let words = vec!["alpha", "beta", "gamma"];
/// let total = pool.scope(|s| {
///     let lengths = s.submit(words.iter().map(|w| move || w.len()), 2);
///     lengths.wait().unwrap().into_iter().sum::<usize>()
/// });
/// assert_eq!(total, 14);
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    pool: &'scope Pool,
    state: Arc<ScopeState>,
    /// Waits, one per job submitted in the scope, run before the scope returns.
    waits: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    /// `'scope` is invariant, so a `&'scope Scope` cannot be stretched or shrunk.
    scope: PhantomData<&'scope mut &'scope ()>,
    /// Tasks may borrow for `'env`.
    env: PhantomData<&'env mut &'env ()>,
}

/// The count of a scope's tasks that still exist, shared with their tokens.
#[derive(Default)]
struct ScopeState {
    live: Mutex<usize>,
    /// Notified when `live` reaches zero.
    none_live: Condvar,
}

/// Counts one task as live until dropped (rule 1 of the module docs).
struct TaskToken(Arc<ScopeState>);

impl TaskToken {
    fn new(state: &Arc<ScopeState>) -> TaskToken {
        *state.live.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        TaskToken(state.clone())
    }
}

impl Drop for TaskToken {
    fn drop(&mut self) {
        let mut live = self.0.live.lock().unwrap_or_else(PoisonError::into_inner);
        *live -= 1;
        if *live == 0 {
            self.0.none_live.notify_all();
        }
    }
}

/// A scoped task and its token. Fields drop in order: the task (and its captures) first, then
/// the token.
struct Counted<F> {
    task: F,
    _token: TaskToken,
}

impl<F: FnOnce() -> T, T> Counted<F> {
    fn run(self) -> T {
        let Counted { task, _token } = self;
        // `_token` lives until the end of this call, so it drops after `task` has run (or
        // unwound) and dropped its captures.
        task()
    }
}

/// A scoped task as the pool sees it: boxed, lifetime erased.
type Erased<T> = Box<dyn FnOnce() -> T + Send + 'static>;

/// Erases the lifetime of a boxed scoped task.
fn erase<'scope, T>(task: Box<dyn FnOnce() -> T + Send + 'scope>) -> Erased<T> {
    // SAFETY: the box's type differs only in its lifetime bound, so the layout and vtable are
    // the same. The task is wrapped in a `Counted` (it is the `task` given to `Scope::submit`),
    // whose token keeps `Pool::scope` from returning until the task has run or been dropped
    // with everything it captured (module docs, rules 1 and 2); so nothing with the lifetime
    // `'scope` is used after `'scope` ends.
    unsafe { std::mem::transmute::<Box<dyn FnOnce() -> T + Send + 'scope>, Erased<T>>(task) }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Submits a job whose tasks may borrow anything that outlives the scope: at most `cap` of
    /// them run at once, as with [`Pool::submit`]. The job's results must not borrow (they
    /// outlive the scope in the handle).
    ///
    /// # Panics
    ///
    /// If `cap` is 0, or the pool was shut down; [`try_submit`](Scope::try_submit) returns
    /// these as errors instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::Pool;
    ///
    /// let pool = Pool::new(2);
    /// let mut counts = [0usize; 4];
    /// let text = "a scoped job borrows the caller's data";
    /// pool.scope(|s| {
    ///     // Tasks may even borrow mutably, one slot each.
    ///     s.submit(counts.iter_mut().enumerate().map(|(i, slot)| move || *slot = text.len() + i), 2);
    /// });
    /// assert_eq!(counts, [38, 39, 40, 41]);
    /// ```
    pub fn submit<I, F, T>(&'scope self, tasks: I, cap: usize) -> JobHandle<T>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'static,
    {
        match self.try_submit(tasks, cap) {
            Ok(handle) => handle,
            Err(kind) => panic!("Scope::submit: {kind}"),
        }
    }

    /// Submits a job as [`submit`](Scope::submit) does, or says why it cannot. The tasks of a
    /// refused job are dropped (they may borrow, so they cannot be handed back the way
    /// [`Pool::try_submit`] hands back `'static` tasks).
    ///
    /// # Errors
    ///
    /// [`SubmitErrorKind::ZeroCap`] if `cap` is 0, [`SubmitErrorKind::ShutDown`] if the pool
    /// was shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, SubmitErrorKind};
    ///
    /// let pool = Pool::new(1);
    /// let data = [1, 2, 3];
    /// pool.scope(|s| {
    ///     let refused = s.try_submit(data.iter().map(|x| move || x * 2), 0);
    ///     assert_eq!(refused.unwrap_err(), SubmitErrorKind::ZeroCap);
    /// });
    /// ```
    pub fn try_submit<I, F, T>(
        &'scope self,
        tasks: I,
        cap: usize,
    ) -> Result<JobHandle<T>, SubmitErrorKind>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'static,
    {
        let tasks: Vec<Erased<T>> = tasks
            .into_iter()
            .map(|task| {
                let counted = Counted {
                    task,
                    _token: TaskToken::new(&self.state),
                };
                erase(Box::new(move || counted.run()))
            })
            .collect();
        // A refused submission drops the tasks here, each with its token.
        let handle = self.pool.try_submit(tasks, cap).map_err(|err| err.kind())?;
        let wait = handle.finish_waiter();
        self.waits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(wait);
        Ok(handle)
    }

    /// The pool the scope submits to.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(3);
    /// pool.scope(|s| assert_eq!(s.pool().threads(), 3));
    /// ```
    pub fn pool(&self) -> &Pool {
        self.pool
    }

    /// Waits until every job submitted in the scope has finished and every task is gone (module
    /// docs, "Progress").
    fn wait_for_all(&self) {
        loop {
            let next = self
                .waits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match next {
                // A task may submit to the scope while this waits: look again after each. A
                // wait cannot panic in practice; if one did, the count below still holds.
                Some(wait) => crate::unwind::call_quietly(wait),
                None => break,
            }
        }
        let mut live = self
            .state
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *live > 0 {
            live = self
                .state
                .none_live
                .wait(live)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let live = *self
            .state
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Scope")
            .field("pool", self.pool)
            .field("live_tasks", &live)
            .finish()
    }
}

/// Runs `body` with a new scope on `pool`; see [`Pool::scope`].
pub(crate) fn scope<'env, B, R>(pool: &Pool, body: B) -> R
where
    B: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let scope = Scope {
        pool,
        state: Arc::new(ScopeState::default()),
        waits: Mutex::new(Vec::new()),
        scope: PhantomData,
        env: PhantomData,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| body(&scope)));
    // Rule 2: whatever the body did, no task outlives the scope.
    scope.wait_for_all();
    match outcome {
        Ok(value) => value,
        Err(payload) => resume_unwind(payload),
    }
}
