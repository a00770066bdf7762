//! How a graph is run: what happens after a failure, and who is told as modules start and end.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::report::ModuleState;
#[cfg(doc)]
use super::report::SkipReason;

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
    /// The modules to run, with what they need; `None`: all of them.
    pub(crate) targets: Option<Vec<String>>,
    #[cfg(feature = "cache")]
    pub(crate) cache: Option<crate::Cache>,
    #[cfg(feature = "cache")]
    pub(crate) force: super::incremental::Force,
    /// Look up, run nothing (`Dag::explain`).
    #[cfg(feature = "cache")]
    pub(crate) dry_run: bool,
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

    /// Runs only `targets` and the modules they need, directly or through others, as
    /// `make hello world` builds only those targets. Every other module is reported skipped
    /// ([`SkipReason::NotNeeded`]), and [`Dag::run_with`](crate::Dag::run_with) fails with
    /// [`DagError::UnknownModule`](crate::DagError::UnknownModule) if a target is not in the
    /// graph. With a cache (`RunOptions::cache`, feature `cache`), what can be re-used is.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, RunOptions, SkipReason, ModuleState, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("hello.o", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// dag.module("hello", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.after(["hello.o"])?;
    /// dag.module("world", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// let report = dag.run_with(&Pool::new(2), RunOptions::new().targets(["hello"]))?;
    /// assert!(report.module("hello.o").unwrap().state().is_done());
    /// assert_eq!(report.module("world").unwrap().state(), &ModuleState::Skipped(SkipReason::NotNeeded));
    /// assert!(report.is_success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn targets<I, S>(mut self, targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.targets = Some(targets.into_iter().map(Into::into).collect());
        self
    }

    /// Runs the graph with `cache`: a module declared with
    /// [`Dag::cached_module`](crate::Dag::cached_module) whose fingerprint (its name, version,
    /// inputs and its dependencies' outputs) has an entry in the cache is not run; its stored
    /// output is used. Every other module runs, and a cached module's output is stored. Each
    /// module's [`cache_status`](crate::ModuleReport::cache_status) says which, and why.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("sum", 1, [|_: &Context| -> TaskResult<u64> { Ok((1..=100).sum()) }])?;
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// let again = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// assert!(again.module("sum").unwrap().cache_status().is_hit());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    pub fn cache(mut self, cache: &crate::Cache) -> Self {
        self.cache = Some(cache.clone());
        self
    }

    /// Runs `modules` even if the cache holds their outputs ([`RunReason::Forced`]), and
    /// stores their new outputs; their dependents run only if those outputs changed.
    ///
    /// [`RunReason::Forced`]: crate::RunReason::Forced
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, RunReason, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("fetch", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])?;
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// let forced = dag.run_with(&pool, RunOptions::new().cache(&cache).force(["fetch"]))?;
    /// assert_eq!(forced.module("fetch").unwrap().cache_status().why(), Some(&RunReason::Forced));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    pub fn force<I, S>(mut self, modules: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let modules = modules.into_iter().map(Into::into).collect();
        self.force = super::incremental::Force::Modules(modules);
        self
    }

    /// Runs every cached module, as [`force`](Self::force) does for some.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("a", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])?;
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// let report = dag.run_with(&pool, RunOptions::new().cache(&cache).force_all())?;
    /// assert!(!report.module("a").unwrap().cache_status().is_hit());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    pub fn force_all(mut self) -> Self {
        self.force = super::incremental::Force::All;
        self
    }
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = f.debug_struct("RunOptions");
        shown
            .field("failure_mode", &self.failure_mode)
            .field("observer", &self.observer.is_some())
            .field("targets", &self.targets);
        #[cfg(feature = "cache")]
        shown
            .field("cache", &self.cache)
            .field("force", &self.force);
        shown.finish()
    }
}
