//! What a listener receives: one [`PoolEvent`] per thing that happened to a job, a task or a
//! graph's module.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Priority;

/// A job's identity in events and statistics: unique within the process, and increasing
/// with the submissions of one thread (ids are handed to each thread in blocks).
///
/// # Examples
///
/// ```
/// use jobpool::Pool;
///
/// let pool = Pool::new(1);
/// let a = pool.submit(vec![|| ()], 1);
/// let b = pool.submit(vec![|| ()], 1);
/// assert!(a.id() < b.id());
/// println!("{}", a.id()); // "job 12", say
/// # a.wait().unwrap(); b.wait().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub(crate) u64);

impl JobId {
    /// The id as a number.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(1);
    /// let job = pool.submit(vec![|| ()], 1);
    /// assert!(job.id().get() > 0);
    /// # job.wait().unwrap();
    /// ```
    pub fn get(self) -> u64 {
        self.0
    }

    /// The next id: each thread takes a block of ids at a time from a process-wide counter,
    /// so a submission costs no shared write.
    pub(crate) fn next() -> JobId {
        const BLOCK: u64 = 1024;
        static NEXT_BLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        std::thread_local! {
            /// The next id of this thread's block, and the end of the block.
            static IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
        }
        IDS.with(|ids| {
            let (mut next, mut end) = ids.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
                end = next + BLOCK;
            }
            ids.set((next + 1, end));
            JobId(next)
        })
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// One thing that happened in a pool, as a listener ([`Pool::events`](crate::Pool::events))
/// receives it.
///
/// # Examples
///
/// ```
/// use jobpool::{EventKind, Pool};
///
/// let pool = Pool::new(2);
/// let events = pool.events(1024);
/// pool.job().name("resize").submit((0..3).map(|i| move || i)).wait()?;
/// let started = events
///     .try_iter()
///     .filter(|e| matches!(e.kind, EventKind::TaskStarted { .. }))
///     .inspect(|e| assert_eq!(e.name.as_deref(), Some("resize")))
///     .count();
/// assert_eq!(started, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolEvent {
    /// When it happened.
    pub time: Instant,
    /// The index of the worker thread that saw it (from 0, as in
    /// [`PoolBuilder::thread_name`](crate::PoolBuilder::thread_name)), or `None` for another
    /// thread (a submission, a `cancel` from outside the pool).
    pub worker: Option<usize>,
    /// The job it is about; `None` for a graph's module events.
    pub job: Option<JobId>,
    /// The job's name ([`JobBuilder::name`](crate::JobBuilder::name)), or for a module event,
    /// the module's.
    pub name: Option<Arc<str>>,
    /// What happened.
    pub kind: EventKind,
}

#[cfg(test)]
impl PoolEvent {
    /// An event of `kind` now, on worker 0, about job 1: for unit tests.
    pub(crate) fn for_test(kind: EventKind) -> PoolEvent {
        PoolEvent {
            time: Instant::now(),
            worker: Some(0),
            job: Some(JobId(1)),
            name: None,
            kind,
        }
    }
}

/// What a [`PoolEvent`] says happened.
///
/// A job's events come in this order: `JobSubmitted`, then `JobStarted` when a worker takes
/// its first token, then for each task that runs `TaskStarted` and `TaskEnded` (once per
/// attempt), with `JobHeld` whenever a limiter makes it wait, and last `JobFinished`. Tasks that
/// never start (cancelled or timed out while pending) have no task events; `JobFinished` counts
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// The job was accepted.
    JobSubmitted {
        /// Its number of tasks.
        tasks: usize,
        /// Its cap.
        cap: usize,
        /// Its priority.
        priority: Priority,
    },
    /// A worker took the job's first token.
    JobStarted,
    /// A task started, on `worker`.
    TaskStarted {
        /// The task's index in its job.
        index: usize,
        /// Which attempt this is, from 1.
        attempt: u32,
    },
    /// A task's attempt ended, on the worker it started on.
    TaskEnded {
        /// The task's index in its job.
        index: usize,
        /// Which attempt this was, from 1.
        attempt: u32,
        /// How it ended.
        outcome: TaskOutcome,
    },
    /// A limiter refused the job a start: its shared cap is full, or its rate's next start
    /// slot is not due. The job holds no worker until it is released.
    JobHeld {
        /// When the next start slot is due, for a rate; `None` for a full cap.
        until: Option<Instant>,
    },
    /// Every task of the job has an outcome.
    JobFinished {
        /// Tasks that returned a value.
        done: usize,
        /// Tasks that failed for good or panicked.
        failed: usize,
        /// Tasks cancelled or timed out before they started.
        not_run: usize,
    },
    /// A graph's module was submitted as a job (its dependencies had ended).
    ModuleStarted {
        /// The graph's run, told apart from other runs of the same graph.
        run: u64,
    },
    /// A graph's module ended.
    ModuleEnded {
        /// The graph's run.
        run: u64,
        /// How it ended, as [`ModuleState`](crate::ModuleState)'s `Display` says it.
        state: String,
    },
}

/// How one attempt of a task ended, in [`EventKind::TaskEnded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskOutcome {
    /// It returned a value.
    Done,
    /// It returned an error, and will not be tried again.
    Failed,
    /// It panicked, and will not be tried again.
    Panicked,
    /// It failed and is to be tried again after `after` (off the workers). The outcome is told
    /// as the attempt ends; if by the time it is recorded the job was stopped (cancelled, or
    /// past its deadline) or its retry budget is full, the task is not tried again and no
    /// further event follows: it ends as its job's `JobFinished` counts it (not run, or
    /// failed), and [`Stats::retries`](crate::Stats::retries) counts only the retries
    /// scheduled.
    Retrying {
        /// The delay before the next attempt.
        after: Duration,
    },
    /// It was claimed, but the job was cancelled before it started.
    Cancelled,
    /// It was claimed, but the job's deadline passed before it started.
    TimedOut,
}

impl fmt::Display for TaskOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskOutcome::Done => f.write_str("done"),
            TaskOutcome::Failed => f.write_str("failed"),
            TaskOutcome::Panicked => f.write_str("panicked"),
            TaskOutcome::Retrying { after } => write!(f, "retrying after {after:?}"),
            TaskOutcome::Cancelled => f.write_str("cancelled"),
            TaskOutcome::TimedOut => f.write_str("timed out"),
        }
    }
}
