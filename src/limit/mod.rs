//! Limits shared by several jobs: a cap on how many of their tasks run at once, and a rate of
//! task starts, held for all of them together.
//!
//! A job takes a slot of each of its limiters' caps when it takes one of its own tokens, and
//! gives it back with the token; it takes a start slot of each rate before it starts a task.
//! A job that finds a limiter full is *held*: it is not runnable (no worker looks at it) and
//! waits in the limiter's list, or for a timer when the next start slot is due, and is made
//! runnable again when a slot frees up (`src/scheduler/README.md`, rule 9).

mod gcra;

pub use gcra::Rate;
pub(crate) use gcra::Slot as StartSlot;

use std::fmt;
use std::sync::Arc;

use crate::sync::{Instant, Mutex};
use gcra::Gcra;

/// A job held by a limiter, to be made runnable again when the limiter has room.
pub(crate) trait Held: Send + Sync {
    /// Clears the hold and queues the job if it is runnable (rule 1). Called with no lock held.
    fn release_hold(self: Arc<Self>);
}

/// A cap and a rate shared by every job it is given to: at most `cap` tasks of all those
/// jobs run at once, and their tasks start at most at `rate`, whichever jobs they belong to.
///
/// Give the same limiter to each job that calls one service ([`JobBuilder::limit`]), or to
/// every job of a tree of sub-jobs, so that the whole tree stays within the cap. A task waiting
/// on a sub-job lends its slot of the cap to the sub-job's tasks on the same thread, so a tree
/// of waits never deadlocks, even under a cap of 1 on a pool of 1 thread.
///
/// Give it to *every* job of the tree: a task holding a slot that waits on a sub-job *without*
/// the limiter, whose tasks (on other threads, with no slot to lend) wait on jobs *with* it,
/// waits forever once the cap is taken by such waiting tasks.
///
/// A limiter is a cheap handle: clones share one limit. Its cap and rate may be changed while
/// jobs run; a lowered cap takes effect as running tasks end.
///
/// [`JobBuilder::limit`]: crate::JobBuilder::limit
///
/// # Examples
///
/// ```
/// use jobpool::{Limiter, Pool};
///
/// let pool = Pool::new(4);
/// let partner_api = Limiter::new().with_cap(2);
/// // Two jobs, each with a cap of 2 of its own: together they run at most 2 tasks at once.
/// let a = pool.job().cap(2).limit(&partner_api).submit((0..10).map(|i| move || i));
/// let b = pool.job().cap(2).limit(&partner_api).submit((0..10).map(|i| move || i));
/// a.wait().unwrap();
/// b.wait().unwrap();
/// assert!(partner_api.peak_running() <= 2);
/// ```
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Mutex<LimitState>>,
}

struct LimitState {
    cap: Option<usize>,
    running: usize,
    peak_running: usize,
    rate: Option<Gcra>,
    starts: u64,
    /// Jobs held because the cap was full.
    held: Vec<Arc<dyn Held>>,
    /// Jobs waiting for a start slot (each also has a timer for it), once each: a changed
    /// rate releases them at once.
    rate_waiting: Vec<Arc<dyn Held>>,
}

impl Limiter {
    /// A limiter with no cap and no rate, to be given them with [`with_cap`](Self::with_cap)
    /// and [`with_rate`](Self::with_rate) (or later with [`set_cap`](Self::set_cap) and
    /// [`set_rate`](Self::set_rate)).
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = jobpool::Limiter::new();
    /// assert_eq!((limiter.cap(), limiter.rate()), (None, None));
    /// ```
    pub fn new() -> Limiter {
        Limiter {
            inner: Arc::new(Mutex::new(LimitState {
                cap: None,
                running: 0,
                peak_running: 0,
                rate: None,
                starts: 0,
                held: Vec::new(),
                rate_waiting: Vec::new(),
            })),
        }
    }

    /// The same limiter with a shared cap of `cap` running tasks.
    ///
    /// # Panics
    ///
    /// If `cap` is 0: no task could ever run.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(jobpool::Limiter::new().with_cap(3).cap(), Some(3));
    /// ```
    pub fn with_cap(self, cap: usize) -> Limiter {
        assert!(cap > 0, "Limiter::with_cap(0): no task could ever run");
        self.set_cap(Some(cap));
        self
    }

    /// The same limiter with a shared rate of task starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Limiter, Rate};
    /// let limiter = Limiter::new().with_rate(Rate::per_second(5));
    /// assert_eq!(limiter.rate(), Some(Rate::per_second(5)));
    /// ```
    pub fn with_rate(self, rate: Rate) -> Limiter {
        self.set_rate(Some(rate));
        self
    }

    /// Changes the cap (`None`: no cap) while jobs run. A raised cap lets held jobs run at
    /// once; a lowered one takes effect as running tasks end.
    ///
    /// # Panics
    ///
    /// If the cap is `Some(0)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = jobpool::Limiter::new().with_cap(1);
    /// limiter.set_cap(Some(4));
    /// assert_eq!(limiter.cap(), Some(4));
    /// ```
    pub fn set_cap(&self, cap: Option<usize>) {
        assert!(
            cap != Some(0),
            "Limiter::set_cap(Some(0)): no task could ever run"
        );
        let held = {
            let mut st = self.inner.lock();
            st.cap = cap;
            std::mem::take(&mut st.held)
        };
        release(held);
    }

    /// Changes the rate (`None`: no rate) while jobs run; it applies from the next start on,
    /// afresh (its burst is available at once), and jobs waiting for a start slot try again.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Limiter, Rate};
    /// let limiter = Limiter::new().with_rate(Rate::per_second(1));
    /// limiter.set_rate(None);
    /// assert_eq!(limiter.rate(), None);
    /// ```
    pub fn set_rate(&self, rate: Option<Rate>) {
        let held = {
            let mut st = self.inner.lock();
            match (&mut st.rate, rate) {
                (Some(gcra), Some(rate)) => gcra.set_rate(rate),
                (slot, rate) => *slot = rate.map(Gcra::new),
            }
            let mut held = std::mem::take(&mut st.held);
            held.append(&mut st.rate_waiting);
            held
        };
        release(held);
    }

    /// The shared cap, if any.
    pub fn cap(&self) -> Option<usize> {
        self.inner.lock().cap
    }

    /// The shared rate, if any.
    pub fn rate(&self) -> Option<Rate> {
        self.inner.lock().rate.as_ref().map(Gcra::rate)
    }

    /// How many tasks of the limiter's jobs run now (slots of the cap taken; counted only
    /// while the limiter has a cap).
    pub fn running(&self) -> usize {
        self.inner.lock().running
    }

    /// The most tasks of the limiter's jobs that ever ran at once (while it had a cap).
    pub fn peak_running(&self) -> usize {
        self.inner.lock().peak_running
    }

    /// How many tasks of the limiter's jobs have started under its rate.
    pub fn starts(&self) -> u64 {
        self.inner.lock().starts
    }

    /// This limiter's identity, to find whether the current thread holds one of its slots.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }

    /// Takes a slot of the cap, or puts `job` on the list. Always succeeds without a cap (then
    /// nothing is counted, and `release_slot` is not to be called: it returns `false`).
    pub(crate) fn take_slot(&self, job: &Arc<dyn Held>) -> Result<bool, ()> {
        let mut st = self.inner.lock();
        match st.cap {
            None => Ok(false),
            Some(cap) if st.running < cap => {
                st.running += 1;
                st.peak_running = st.peak_running.max(st.running);
                Ok(true)
            }
            Some(_) => {
                st.held.push(job.clone());
                Err(())
            }
        }
    }

    /// Takes the job of identity `job` (its address) off both lists: it finished.
    pub(crate) fn forget(&self, job: usize) {
        let mut st = self.inner.lock();
        let other = |held: &Arc<dyn Held>| Arc::as_ptr(held) as *const () as usize != job;
        st.held.retain(other);
        st.rate_waiting.retain(other);
    }

    /// Gives back a slot of the cap; returns the jobs to release once the caller's locks are
    /// released.
    #[must_use]
    pub(crate) fn release_slot(&self) -> Vec<Arc<dyn Held>> {
        let mut st = self.inner.lock();
        st.running = st.running.saturating_sub(1);
        if st.cap.is_some_and(|cap| st.running < cap) {
            std::mem::take(&mut st.held)
        } else {
            Vec::new()
        }
    }

    /// Takes a start slot of the rate at `now` for `job`, or says when the next slot is free
    /// (the job then sets a timer for it, and is on the list a changed rate releases). The
    /// slot (`None` without a rate) goes to `give_back_start` if its task does not start after all.
    pub(crate) fn try_start(
        &self,
        now: Instant,
        job: &Arc<dyn Held>,
    ) -> Result<Option<StartSlot>, Instant> {
        let mut st = self.inner.lock();
        let Some(gcra) = &mut st.rate else {
            return Ok(None);
        };
        let same = |other: &Arc<dyn Held>| {
            Arc::as_ptr(other) as *const () == Arc::as_ptr(job) as *const ()
        };
        match gcra.try_start(now) {
            Ok(slot) => {
                st.starts += 1;
                if !st.rate_waiting.is_empty() {
                    st.rate_waiting.retain(|other| !same(other));
                }
                Ok(Some(slot))
            }
            Err(at) => {
                if !st.rate_waiting.iter().any(same) {
                    st.rate_waiting.push(job.clone());
                }
                Err(at)
            }
        }
    }

    /// Gives back a start slot whose task did not start (handed back unstarted, cancelled, or
    /// another limiter of its job refused it): it is not counted in `starts`, and the rate
    /// frees it if no other slot was taken since (`Gcra::give_back`).
    pub(crate) fn give_back_start(&self, slot: StartSlot) {
        let mut st = self.inner.lock();
        st.starts = st.starts.saturating_sub(1);
        if let Some(gcra) = &mut st.rate {
            gcra.give_back(slot);
        }
    }
}

/// Releases held jobs, with no lock held.
pub(crate) fn release(held: Vec<Arc<dyn Held>>) {
    for job in held {
        job.release_hold();
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new()
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("Limiter")
            .field("cap", &st.cap)
            .field("running", &st.running)
            .field("rate", &st.rate.as_ref().map(Gcra::rate))
            .field("held_jobs", &st.held.len())
            .finish()
    }
}
