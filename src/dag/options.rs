//! How a graph is run: what happens after a failure, and who is told as modules start and end.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::report::ModuleState;

/// What happens to the rest of the graph once a module fails.
///
/// # Examples
///
/// ```
/// use jobpool::{FailureMode, RunOptions};
///
/// let options = RunOptions::new().failure_mode(FailureMode::FailFast);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Like `make -k`: the failed module's dependents are skipped, every other module runs to
    /// the end.
    #[default]
    KeepGoing,
    /// Stop as soon as possible: the failed module's dependents are skipped, and every task that
    /// has not started, in any module, is cancelled (running tasks finish).
    FailFast,
}

/// Something that happened to a module during a run, as told to
/// [`RunOptions::on_event`].
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, Event, Pool, RunOptions, TaskResult};
/// use std::sync::{Arc, Mutex};
///
/// let mut dag = Dag::new();
/// dag.module("a", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let seen = log.clone();
/// let options = RunOptions::new().on_event(move |event: &Event<'_>| {
///     seen.lock().unwrap().push(format!("{} {}", event.module, event.state.map_or("started", |s| s.label())));
/// });
/// dag.run_with(&Pool::new(1), options)?;
/// assert_eq!(*log.lock().unwrap(), ["a started", "a done"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Event<'a> {
    /// The module.
    pub module: &'a str,
    /// When, from the start of the run.
    pub at: Duration,
    /// `None` when the module was just handed to the pool; its final state when it ended
    /// (including when it was skipped or cancelled without starting).
    pub state: Option<&'a ModuleState>,
}

/// Called with each [`Event`] of a run.
pub(crate) type Observer = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// How [`Dag::run_with`](crate::Dag::run_with) runs a graph.
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, FailureMode, Pool, RunOptions, TaskResult};
///
/// let mut dag = Dag::new();
/// dag.module("build", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
/// let options = RunOptions::new()
///     .failure_mode(FailureMode::FailFast)
///     .on_event(|event| println!("{:?}: {}", event.at, event.module));
/// assert!(dag.run_with(&Pool::new(2), options)?.is_success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
#[must_use = "options do nothing until given to Dag::run_with"]
pub struct RunOptions {
    pub(crate) failure_mode: FailureMode,
    pub(crate) observer: Option<Observer>,
}

impl RunOptions {
    /// The defaults: [`FailureMode::KeepGoing`], no observer.
    pub fn new() -> Self {
        RunOptions::default()
    }

    /// What happens after a failure (default [`FailureMode::KeepGoing`]).
    pub fn failure_mode(mut self, mode: FailureMode) -> Self {
        self.failure_mode = mode;
        self
    }

    /// Calls `observer` as each module starts and ends. Calls are made one at a time, in the
    /// order the events happened, on whichever thread saw the event (often a worker): keep it
    /// short. A panic in it is caught and ignored.
    pub fn on_event<O>(mut self, observer: O) -> Self
    where
        O: Fn(&Event<'_>) + Send + Sync + 'static,
    {
        self.observer = Some(Arc::new(observer));
        self
    }
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("failure_mode", &self.failure_mode)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}
