//! Seeing what a pool does: job names and ids, events for listeners, statistics, and a
//! timeline recorder.
//!
//! # Cost
//!
//! - **Nobody listening**: a worker reads one flag per chunk of tasks (a chunk is one task for
//!   tasks of 20 µs and more, up to 4,096 for empty ones) and per submission, and builds no
//!   event. The statistics cost a worker a store into a cache line of its own per chunk and per
//!   turn (`stats.rs`).
//! - **Someone listening**: each event costs a clock read, a lock shared by the pool's threads,
//!   a clone of the job's name (a reference count) and a `try_send` per listener: about
//!   0.13 µs per event measured, two events per task (BENCHMARKS.md, "Observability").
//! - **A slow listener** never blocks a worker: each listener is a bounded channel, and an event
//!   that finds it full is dropped and counted ([`Events::dropped`]).

mod chrome_trace;
mod event;
mod listeners;
mod recorder;
mod stats;

pub use event::{EventKind, JobId, PoolEvent, TaskOutcome};
pub use listeners::Events;
pub(crate) use listeners::Listeners;
pub use recorder::{Recorder, Timeline};
pub use stats::Stats;
pub(crate) use stats::{Counters, Counts};
