//! A fixed pool of worker threads that runs many jobs at once, each job with its own
//! concurrency cap.
//!
//! # The model
//!
//! - A [`Pool`] owns N worker threads, fixed for its life.
//! - A *job* is a batch of tasks (closures) submitted together with a cap k:
//!   [`Pool::submit`] returns a [`JobHandle`] to wait for the results, in submission order.
//! - The cap is a count of tokens: a worker takes one of the job's k tokens before it runs one
//!   of the job's tasks and returns it after, so at most k of the job's tasks run at once. No
//!   worker ever blocks on a cap: when a job has no free token, workers run other jobs' tasks.
//! - Jobs share the workers fairly: the job that has had the least service goes first, so a
//!   small job submitted behind a big one is not stuck behind the big one's backlog.
//! - A task may submit jobs to its own pool and wait for them; the waiting worker runs the
//!   awaited job's tasks itself, so nesting never deadlocks, even with one thread.
//! - A panicking task does not take its worker down: the panic is reported on its job's
//!   handle, and the job's other tasks still run.
//! - [`Pool::scope`] runs jobs whose tasks borrow from the caller's stack, as
//!   `std::thread::scope` does for threads.
//!
//! # The dependency graph
//!
//! On top of jobs, a [`Dag`] holds named *modules*, each a set of tasks with its own cap, that
//! depend on each other. Running it submits each module as one job the moment its last
//! dependency has finished, so independent modules run at once (like `make -j`); a module's
//! tasks read the typed outputs of its dependencies through a [`Context`]. A failed module's
//! dependents are skipped while the rest runs on (like `make -k`), and the [`RunReport`] says
//! what happened to every module.
//!
//! # Example
//!
//! ```
//! use jobpool::Pool;
//!
//! let pool = Pool::new(8);
//! // Probe a fragile service gently and a sturdy one hard, on the same 8 threads.
//! let fragile = pool.submit((0..20).map(|i| move || format!("fragile/{i}")), 1);
//! let sturdy = pool.submit((0..20).map(|i| move || format!("sturdy/{i}")), 8);
//! let fragile = fragile.wait()?;
//! let sturdy = sturdy.wait()?;
//! assert_eq!(fragile[0], "fragile/0");
//! assert_eq!(sturdy.len(), 20);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

#[cfg(feature = "cache")]
mod cache;
#[cfg(feature = "cluster")]
pub mod cluster;
mod dag;
mod error;
mod human;
mod job;
mod limit;
mod observe;
mod pool;
mod scheduler;
mod scope;
mod sync;
mod unwind;

#[cfg(feature = "cache")]
pub use cache::{
    Cache, CacheError, CacheStatus, Explanation, Plan, Pruned, RunReason, CACHE_DIR_VAR,
    DEFAULT_MAX_SIZE,
};
pub use dag::{
    Context, Dag, DagError, Event, Failure, FailureMode, ModuleRef, ModuleReport, ModuleState,
    OutputError, RunOptions, RunReport, SkipReason, TaskResult,
};
pub use error::{
    BuildError, GaveUp, JobError, SubmitError, SubmitErrorKind, TaskError, TaskFailure, TimedOut,
    ZeroCapError,
};
pub use job::{
    Canceller, Completions, JobBuilder, JobFuture, JobHandle, NoRetry, Progress, Retry, RetryState,
    TaskContext, WithRetry,
};
pub use limit::{Limiter, Rate};
pub use observe::{EventKind, Events, JobId, PoolEvent, Recorder, Stats, TaskOutcome, Timeline};
pub use pool::{Pool, PoolBuilder};
pub use scheduler::priority::Priority;
pub use scope::Scope;

#[cfg(doctest)]
mod compile_fail;

/// The README's examples, run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
