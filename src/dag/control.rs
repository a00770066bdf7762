//! A module's job options: how its tasks are retried, limited, prioritised and timed out, given
//! to its job each time a run starts it.
//!
//! The options are kept as declared, not as a ready `JobBuilder`, because a graph runs again:
//! each run builds its module's job afresh. So a module's own rate is a new limiter per run
//! (as [`JobBuilder::rate`](crate::JobBuilder::rate) makes one per job), and its timeout is
//! measured from the moment the run starts the module, not from when it was declared.

use std::time::Duration;

use crate::limit::{Limiter, Rate};
use crate::scheduler::priority::Priority;
use crate::{JobBuilder, Retry};

/// The most limiters a job takes (see [`JobBuilder::limit`](crate::JobBuilder::limit)); a
/// module's own rate counts as one.
pub(crate) const MAX_LIMITERS: usize = 64;

/// The job options of one module, as declared with [`ModuleRef`](crate::ModuleRef).
#[derive(Clone, Debug, Default)]
pub(crate) struct JobControl {
    pub(crate) retry: Option<Retry>,
    pub(crate) rate: Option<Rate>,
    pub(crate) limiters: Vec<Limiter>,
    pub(crate) priority: Priority,
    pub(crate) timeout: Option<Duration>,
}

impl JobControl {
    /// How many limiters the module's job will have.
    pub(crate) fn limiter_count(&self) -> usize {
        self.limiters.len() + usize::from(self.rate.is_some())
    }

    /// Gives `job` every option but the retry policy (which changes the builder's type). Called
    /// when the module starts, so the timeout counts from now.
    pub(crate) fn apply<'p>(&self, mut job: JobBuilder<'p>) -> JobBuilder<'p> {
        job = job.priority(self.priority);
        for limiter in &self.limiters {
            job = job.limit(limiter);
        }
        if let Some(rate) = self.rate {
            job = job.rate(rate);
        }
        if let Some(timeout) = self.timeout {
            job = job.timeout(timeout);
        }
        job
    }
}
