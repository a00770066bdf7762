//! A dependency graph of named modules on top of the pool, run the way `make -j` runs a
//! makefile.
//!
//! - A *module* is a named set of tasks with its own cap k. When all the modules it depends on
//!   have ended, its tasks are submitted to the pool as one job: at most k of them run at once.
//! - Modules that do not depend on each other run at the same time, sharing the pool's threads.
//! - A task is handed a [`Context`]: the typed outputs of the modules it depends on, and the
//!   pool, to start sub-jobs of its own.
//! - A module can be skipped at run time by a condition; its dependents still run.
//! - A module's job takes the options a job does ([`ModuleRef::retry`], [`ModuleRef::rate`],
//!   [`ModuleRef::limit`], [`ModuleRef::priority`], [`ModuleRef::timeout`]): a failing task is
//!   retried, and the module fails only once a task has used up its attempts (or failed with an
//!   error its policy finds permanent), or its timeout passed before some tasks started.
//! - If a module fails, the modules that depend on it are skipped and every other module still
//!   runs ([`FailureMode::KeepGoing`], like `make -k`), or everything that has not started is
//!   cancelled ([`FailureMode::FailFast`]).
//! - The graph is checked before anything runs (duplicate names, unknown dependencies, cycles),
//!   and can be run again: running does not consume it.
//! - A run may be limited to some targets and what they need ([`RunOptions::targets`]).
//! - With the `cache` feature, a module declared with `Dag::cached_module` is re-used from a
//!   cache instead of run when its fingerprint (its inputs by content, its dependencies'
//!   outputs) is unchanged; a module that runs again and gives the same output does not make
//!   its dependents run.
//!
//! The files: `graph.rs` checks a graph and finds cycles, `tasks.rs` keeps a module's tasks
//! behind one type-erased face, `run.rs` is the driver (its protocol is described there),
//! `context.rs` is what a task sees, `control.rs` a module's job options, `report.rs` what a
//! run reports, `dot.rs` the Graphviz export, `incremental.rs` a run with a cache (the cache
//! itself is `src/cache/`).

#[cfg(feature = "cache")]
mod cached;
pub(crate) mod context;
pub(crate) mod control;
mod dot;
mod error;
mod graph;
#[cfg(feature = "cache")]
mod incremental;
mod options;
mod report;
mod run;
pub(crate) mod tasks;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use context::Context;
pub use error::{DagError, OutputError};
pub use options::{Event, FailureMode, RunOptions};
pub use report::{Failure, ModuleReport, ModuleState, RunReport, SkipReason};
pub use tasks::TaskResult;

use control::{JobControl, MAX_LIMITERS};
use graph::{ModuleSpec, Plan};
use tasks::{ModuleTasks, TaskFn, TypedTasks};

use crate::{Limiter, Pool, Priority, Rate, Retry};

/// A graph of named modules, each a set of tasks with its own cap, that depend on each other.
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, Pool, TaskResult};
///
/// let mut dag = Dag::new();
/// dag.module("fetch-users", 4, (0..8).map(|page| move |_: &Context| -> TaskResult<Vec<String>> {
///     Ok(vec![format!("user-{page}")])
/// }))?;
/// dag.module("fetch-orders", 2, (0..4).map(|page| move |_: &Context| -> TaskResult<u32> { Ok(page * 10) }))?;
/// dag.module("report", 1, [|ctx: &Context| -> TaskResult<String> {
///     let users = ctx.output::<Vec<String>>("fetch-users")?.concat().len();
///     let orders: u32 = ctx.output::<u32>("fetch-orders")?.iter().sum();
///     Ok(format!("{users} users, {orders} in orders"))
/// }])?
/// .after(["fetch-users", "fetch-orders"])?;
///
/// let pool = Pool::new(4);
/// let report = dag.run(&pool)?; // blocks until every module has ended
/// assert!(report.is_success());
/// assert_eq!(report.output::<String>("report")?, ["8 users, 60 in orders"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Dag {
    modules: Vec<ModuleSpec>,
    index: HashMap<Arc<str>, usize>,
}

impl Dag {
    /// An empty graph.
    ///
    /// # Examples
    ///
    /// ```
    /// let dag = jobpool::Dag::new();
    /// assert!(dag.is_empty());
    /// ```
    pub fn new() -> Dag {
        Dag::default()
    }

    /// Adds a module: `tasks`, of which at most `cap` run at once, once every module it depends
    /// on (see [`ModuleRef::after`]) has ended. Returns a handle to declare its dependencies,
    /// its skip condition and its job's options (retries, limits, priority, timeout).
    ///
    /// Each task is called with the module's [`Context`] and returns a [`TaskResult`]; the
    /// module's output, which its dependents read with [`Context::output`], is its tasks'
    /// results in the order given. Tasks are `Fn`, not `FnOnce`, so the graph can run again.
    ///
    /// # Errors
    ///
    /// [`DagError::DuplicateModule`] if a module has that name already, [`DagError::ZeroCap`] if
    /// `cap` is 0. The graph is left as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, DagError, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("ping", 3, (0..10).map(|host| move |_: &Context| -> TaskResult<bool> { Ok(host % 2 == 0) }))?;
    /// let zero = dag.module("never", 0, [|_: &Context| -> TaskResult<()> { Ok(()) }]);
    /// assert_eq!(zero.unwrap_err(), DagError::ZeroCap { module: "never".into() });
    /// assert_eq!(dag.len(), 1);
    /// # Ok::<(), DagError>(())
    /// ```
    ///
    /// Tasks run on the pool's threads, several at once, so they must be `Send + Sync`:
    ///
    /// ```compile_fail
    /// use std::rc::Rc;
    /// use jobpool::{Context, Dag};
    ///
    /// let shared = Rc::new(5);
    /// let mut dag = Dag::new();
    /// dag.module("x", 1, [move |_: &Context| Ok(*shared)]);
    /// ```
    pub fn module<N, I, F, T>(
        &mut self,
        name: N,
        cap: usize,
        tasks: I,
    ) -> Result<ModuleRef<'_>, DagError>
    where
        N: Into<String>,
        I: IntoIterator<Item = F>,
        F: Fn(&Context) -> TaskResult<T> + Send + Sync + 'static,
        T: Send + Sync + 'static,
    {
        let tasks: Vec<TaskFn<T>> = tasks
            .into_iter()
            .map(|task| Arc::new(task) as TaskFn<T>)
            .collect();
        self.add_module(name.into(), cap, Arc::new(TypedTasks { tasks }))
    }

    /// Adds a module of any kind of tasks: [`module`](Self::module)'s checks and bookkeeping.
    pub(crate) fn add_module(
        &mut self,
        name: String,
        cap: usize,
        tasks: Arc<dyn ModuleTasks>,
    ) -> Result<ModuleRef<'_>, DagError> {
        if self.index.contains_key(name.as_str()) {
            return Err(DagError::DuplicateModule { name });
        }
        if cap == 0 {
            return Err(DagError::ZeroCap { module: name });
        }
        let name: Arc<str> = name.into();
        let index = self.modules.len();
        self.index.insert(name.clone(), index);
        self.modules.push(ModuleSpec {
            name,
            cap,
            after: Vec::new(),
            tasks,
            skip_if: None,
            control: JobControl::default(),
            #[cfg(feature = "cache")]
            cache: None,
        });
        Ok(ModuleRef { dag: self, index })
    }

    /// Which modules the targets of `options` need, if it has targets.
    fn needed(&self, plan: &Plan, options: &RunOptions) -> Result<Option<Vec<bool>>, DagError> {
        let Some(targets) = &options.targets else {
            return Ok(None);
        };
        let mut needed = vec![false; plan.modules.len()];
        let mut stack = Vec::new();
        for target in targets {
            stack.push(self.index_of(target)?);
        }
        while let Some(module) = stack.pop() {
            if !std::mem::replace(&mut needed[module], true) {
                stack.extend(&plan.modules[module].dependencies);
            }
        }
        Ok(Some(needed))
    }

    /// Makes `module` depend on `dependencies`: it starts only once they have all ended, and
    /// its tasks can read their outputs. The dependencies need not exist yet; [`run`](Self::run)
    /// checks that they do.
    ///
    /// # Errors
    ///
    /// [`DagError::UnknownModule`] if no module is named `module`;
    /// [`DagError::SelfDependency`] if `dependencies` names `module` itself (then no dependency
    /// is added).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, DagError, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("link", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// dag.module("compile", 4, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// dag.after("link", ["compile"])?;
    /// assert_eq!(dag.dependencies("link"), Some(vec!["compile"]));
    /// assert_eq!(dag.after("link", ["link"]).unwrap_err(), DagError::SelfDependency { module: "link".into() });
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn after<I, S>(&mut self, module: &str, dependencies: I) -> Result<(), DagError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let index = self.index_of(module)?;
        self.add_dependencies(index, dependencies)
    }

    /// The position of `module` in the graph.
    fn index_of(&self, module: &str) -> Result<usize, DagError> {
        self.index
            .get(module)
            .copied()
            .ok_or_else(|| DagError::UnknownModule {
                name: module.to_owned(),
            })
    }

    fn add_dependencies<I, S>(&mut self, index: usize, dependencies: I) -> Result<(), DagError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let spec = &mut self.modules[index];
        let mut added: Vec<String> = Vec::new();
        for dep in dependencies {
            let dep = dep.as_ref();
            if dep == &*spec.name {
                return Err(DagError::SelfDependency {
                    module: spec.name.to_string(),
                });
            }
            if !spec.after.iter().chain(&added).any(|d| d == dep) {
                added.push(dep.to_owned());
            }
        }
        spec.after.append(&mut added);
        Ok(())
    }

    /// Makes `module` skipped whenever `condition` returns `true`. It is asked at run time,
    /// when the module's dependencies have ended, with the module's [`Context`] (so it can look
    /// at their outputs). A skipped module runs none of its tasks; its dependents still run, and
    /// can tell it was skipped with [`Context::skipped`]. A panicking condition fails the module.
    ///
    /// The condition is asked on one of the pool's threads, as a task of its own, so a slow
    /// condition holds back no other module; like a task, a condition that blocks until
    /// another module's task has run needs another free worker for that task.
    ///
    /// # Errors
    ///
    /// [`DagError::UnknownModule`] if no module is named `module`.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, ModuleState, Pool, SkipReason, TaskResult};
    ///
    /// let linked_accounts = ["github"];
    /// let mut dag = Dag::new();
    /// for network in ["github", "gitlab"] {
    ///     dag.module(network, 2, [|_: &Context| -> TaskResult<u32> { Ok(1) }])?;
    ///     dag.skip_if(network, move |_| !linked_accounts.contains(&network))?;
    /// }
    /// let report = dag.run(&Pool::new(2))?;
    /// assert!(report.module("github").unwrap().state().is_done());
    /// assert_eq!(report.module("gitlab").unwrap().state(), &ModuleState::Skipped(SkipReason::Condition));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn skip_if<C>(&mut self, module: &str, condition: C) -> Result<(), DagError>
    where
        C: Fn(&Context) -> bool + Send + Sync + 'static,
    {
        let index = self.index_of(module)?;
        self.modules[index].skip_if = Some(Arc::new(condition));
        Ok(())
    }

    /// The number of modules.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(jobpool::Dag::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// Whether the graph has no module.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(jobpool::Dag::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The names of the modules, in the order they were added.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("b", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// dag.module("a", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// assert_eq!(dag.names().collect::<Vec<_>>(), ["b", "a"]);
    /// # Ok::<(), jobpool::DagError>(())
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.modules.iter().map(|m| &*m.name)
    }

    /// The names `module` depends on, in the order given; `None` if no module has that name.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("web", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.after(["api", "cdn"])?;
    /// assert_eq!(dag.dependencies("web"), Some(vec!["api", "cdn"]));
    /// assert_eq!(dag.dependencies("db"), None);
    /// # Ok::<(), jobpool::DagError>(())
    /// ```
    pub fn dependencies(&self, module: &str) -> Option<Vec<&str>> {
        let index = *self.index.get(module)?;
        Some(
            self.modules[index]
                .after
                .iter()
                .map(String::as_str)
                .collect(),
        )
    }

    /// Checks the graph as [`run`](Self::run) does, without running it.
    ///
    /// # Errors
    ///
    /// [`DagError::UnknownDependency`] if a module depends on a name no module has, and
    /// [`DagError::Cycle`] if the dependencies form a cycle, with the cycle's path. Found in
    /// time linear in the number of modules and dependencies.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, DagError, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// for (name, dep) in [("a", "b"), ("b", "c"), ("c", "a")] {
    ///     dag.module(name, 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.after([dep])?;
    /// }
    /// let err = dag.validate().unwrap_err();
    /// assert_eq!(err, DagError::Cycle { path: vec!["a".into(), "b".into(), "c".into(), "a".into()] });
    /// assert!(err.to_string().contains("a -> b -> c -> a"));
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn validate(&self) -> Result<(), DagError> {
        graph::plan(&self.modules, &self.index).map(drop)
    }

    /// Runs the graph on `pool` and blocks until every module has ended; the same as
    /// [`run_with`](Self::run_with) with the default [`RunOptions`] (keep going after a
    /// failure).
    ///
    /// A module is submitted to the pool the moment its last dependency ends. A failed module
    /// does not make `run` return an error: it is in the [`RunReport`].
    ///
    /// `run` may be called from one of `pool`'s own tasks (a module that expands into a graph
    /// of its own): the worker then runs the graph's jobs itself while it waits, so a pool of
    /// one thread can still finish the graph.
    ///
    /// # Errors
    ///
    /// What [`validate`](Self::validate) finds; then nothing has run.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("one", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])?;
    /// let pool = Pool::new(2);
    /// let first = dag.run(&pool)?;
    /// let second = dag.run(&pool)?; // a graph can run again
    /// assert_eq!(first.output::<u8>("one")?, second.output::<u8>("one")?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&self, pool: &Pool) -> Result<RunReport, DagError> {
        self.run_with(pool, RunOptions::default())
    }

    /// Runs the graph on `pool` as `options` say, and blocks until every module has ended.
    ///
    /// # Errors
    ///
    /// What [`validate`](Self::validate) finds, and [`DagError::UnknownModule`] for a target
    /// ([`RunOptions::targets`]) that is not in the graph; then nothing has run.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, FailureMode, Pool, RunOptions, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("fails", 1, [|_: &Context| -> TaskResult<()> { Err("no".into()) }])?;
    /// dag.module("after-fails", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.after(["fails"])?;
    /// let report = dag.run_with(&Pool::new(1), RunOptions::new().failure_mode(FailureMode::FailFast))?;
    /// assert!(!report.is_success());
    /// assert!(report.module("after-fails").unwrap().state().is_skipped());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_with(&self, pool: &Pool, options: RunOptions) -> Result<RunReport, DagError> {
        let plan = graph::plan(&self.modules, &self.index)?;
        let needed = self.needed(&plan, &options)?;
        Ok(run::run(plan, pool, options, needed))
    }
}

impl fmt::Debug for Dag {
    /// As a derived `Debug` would show it, with each module's tasks counted (closures have no
    /// `Debug` of their own): `Dag { modules: [Module { name: "fetch", cap: 2, tasks: 3,
    /// after: [], skip_if: false }] }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// One module, shown as a struct.
        struct Shown<'a>(&'a graph::ModuleSpec);

        impl fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Module")
                    .field("name", &self.0.name)
                    .field("cap", &self.0.cap)
                    .field("tasks", &self.0.tasks.len())
                    .field("after", &self.0.after)
                    .field("skip_if", &self.0.skip_if.is_some())
                    .finish()
            }
        }

        let modules: Vec<Shown<'_>> = self.modules.iter().map(Shown).collect();
        f.debug_struct("Dag").field("modules", &modules).finish()
    }
}

/// A module just added by [`Dag::module`], to declare what it depends on, when to skip it, and
/// the options of its job, as a [`JobBuilder`](crate::JobBuilder) takes them: a retry policy,
/// a rate, shared limiters, a priority and a timeout.
///
/// The options hold for each run of the graph: the module's own rate and its timeout start
/// afresh each time a run starts the module.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jobpool::{Context, Dag, Limiter, Priority, Rate, Retry, TaskResult};
///
/// let partner_api = Limiter::new().with_cap(4); // shared with other modules and jobs
/// let mut dag = Dag::new();
/// dag.module("api", 2, [|_: &Context| -> TaskResult<()> { Ok(()) }])?
///     .after(["database", "cache"])?
///     .skip_if(|_| std::env::var_os("NO_API").is_some())
///     .retry(Retry::attempts(3))
///     .rate(Rate::per_second(50))
///     .limit(&partner_api)
///     .priority(Priority::High)
///     .timeout(Duration::from_secs(30));
/// assert_eq!(dag.dependencies("api"), Some(vec!["database", "cache"]));
/// # Ok::<(), jobpool::DagError>(())
/// ```
pub struct ModuleRef<'a> {
    dag: &'a mut Dag,
    index: usize,
}

impl ModuleRef<'_> {
    /// Makes the module depend on `dependencies`, as [`Dag::after`] does.
    ///
    /// # Errors
    ///
    /// [`DagError::SelfDependency`] if `dependencies` names the module itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, DagError, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// let err = dag.module("a", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.after(["a"]).unwrap_err();
    /// assert_eq!(err.to_string(), "module `a` depends on itself (a -> a)");
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn after<I, S>(self, dependencies: I) -> Result<Self, DagError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.dag.add_dependencies(self.index, dependencies)?;
        Ok(self)
    }

    /// Makes the module skipped whenever `condition` returns `true`, as [`Dag::skip_if`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("optional", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.skip_if(|_| true);
    /// assert!(dag.run(&Pool::new(1))?.module("optional").unwrap().state().is_skipped());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn skip_if<C>(self, condition: C) -> Self
    where
        C: Fn(&Context) -> bool + Send + Sync + 'static,
    {
        self.dag.modules[self.index].skip_if = Some(Arc::new(condition));
        self
    }

    /// Retries the module's failing tasks under `policy`, as
    /// [`JobBuilder::retry`](crate::JobBuilder::retry) does for a job: a task that returns an
    /// error is called again (with a new [`Context`], whose [`attempt`](Context::attempt) says
    /// which), and the module fails only if a task has used up its attempts, or returned an
    /// error the policy finds permanent ([`Retry::retry_if`]). Its [`Failure::TaskError`] then
    /// tells the number of attempts. Without a policy, a task runs once.
    ///
    /// A task waiting for its next attempt holds no worker. Its dependents wait for the module
    /// to end, retries included.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use jobpool::{Context, Dag, Pool, Retry, TaskResult};
    ///
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let counted = calls.clone();
    /// let mut dag = Dag::new();
    /// dag.module("flaky", 1, [move |_: &Context| -> TaskResult<&str> {
    ///     // Fails on its first call, succeeds on its second.
    ///     if counted.fetch_add(1, Ordering::Relaxed) == 0 { Err("connection reset".into()) } else { Ok("ok") }
    /// }])?
    /// .retry(Retry::attempts(2).backoff(Duration::from_millis(1), 1.0, Duration::from_millis(1)));
    /// let report = dag.run(&Pool::new(1))?;
    /// assert_eq!(report.output::<&str>("flaky")?, ["ok"]);
    /// assert_eq!(calls.load(Ordering::Relaxed), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retry(self, policy: Retry) -> Self {
        self.dag.modules[self.index].control.retry = Some(policy);
        self
    }

    /// Limits the starts of the module's tasks to `rate`, as
    /// [`JobBuilder::rate`](crate::JobBuilder::rate) does: a limiter of the module's own, new
    /// in each run (to share a rate with other modules or jobs, give them one [`Limiter`]
    /// with [`limit`](Self::limit)). Retries are starts too.
    ///
    /// # Panics
    ///
    /// If the module has 64 limiters already (a rate counts as one), as
    /// [`JobBuilder::limit`](crate::JobBuilder::limit) would when the module starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, Rate, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("polite-crawler", 4, (0..5).map(|page| move |_: &Context| -> TaskResult<u32> { Ok(page) }))?
    ///     .rate(Rate::per_second(1000).burst(5));
    /// assert!(dag.run(&Pool::new(4))?.is_success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rate(self, rate: Rate) -> Self {
        let control = &mut self.dag.modules[self.index].control;
        if control.rate.is_none() {
            assert!(
                control.limiter_count() < MAX_LIMITERS,
                "ModuleRef::rate: a module takes at most {MAX_LIMITERS} limiters"
            );
        }
        control.rate = Some(rate);
        self
    }

    /// Puts the module's job under `limiter`, shared with other modules and jobs, as
    /// [`JobBuilder::limit`](crate::JobBuilder::limit) does: its cap and rate hold for all of
    /// them together, on top of the module's own cap. A module may have several limiters.
    ///
    /// # Panics
    ///
    /// If the module has 64 limiters already (its own [`rate`](Self::rate) counts as one).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Limiter, Pool, TaskResult};
    ///
    /// let database = Limiter::new().with_cap(2);
    /// let mut dag = Dag::new();
    /// for table in ["users", "orders"] {
    ///     dag.module(table, 4, (0..4).map(|_| |_: &Context| -> TaskResult<()> { Ok(()) }))?
    ///         .limit(&database); // both modules together: at most 2 tasks at once
    /// }
    /// assert!(dag.run(&Pool::new(4))?.is_success());
    /// assert!(database.peak_running() <= 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limit(self, limiter: &Limiter) -> Self {
        let control = &mut self.dag.modules[self.index].control;
        assert!(
            control.limiter_count() < MAX_LIMITERS,
            "ModuleRef::limit: a module takes at most {MAX_LIMITERS} limiters"
        );
        control.limiters.push(limiter.clone());
        self
    }

    /// The priority of the module's job ([`Priority::Normal`] unless set), as
    /// [`JobBuilder::priority`](crate::JobBuilder::priority) gives a job's.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, Priority, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("urgent", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.priority(Priority::High);
    /// assert!(dag.run(&Pool::new(1))?.is_success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn priority(self, priority: Priority) -> Self {
        self.dag.modules[self.index].control.priority = priority;
        self
    }

    /// Gives the module `timeout` in each run, counted from the moment the run starts it (its
    /// last dependency ended): tasks not started by then never start, nor do retries due after
    /// it, and the module fails with [`Failure::TimedOut`], naming them (its dependents are
    /// skipped, as after any failure). Running tasks are not stopped: they can look at
    /// [`Context::deadline`]. A module whose every task started in time is not failed by its
    /// timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use jobpool::{Context, Dag, Failure, ModuleState, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// // One task at a time; the first works past the timeout, so the second never starts.
    /// dag.module("slow", 1, (0..2).map(|_| |ctx: &Context| -> TaskResult<()> {
    ///     while ctx.deadline().is_some_and(|d| Instant::now() < d + Duration::from_millis(20)) {
    ///         std::thread::sleep(Duration::from_millis(1));
    ///     }
    ///     Ok(())
    /// }))?
    /// .timeout(Duration::from_millis(50));
    /// let report = dag.run(&Pool::new(1))?;
    /// let ModuleState::Failed(failures) = report.module("slow").unwrap().state() else { panic!() };
    /// assert!(matches!(&failures[..], [Failure::TimedOut { tasks, .. }] if tasks.contains(&1)));
    /// assert!(failures[0].to_string().starts_with("the module timed out after 50.0 ms: task"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.dag.modules[self.index].control.timeout = Some(timeout);
        self
    }

    /// The module's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// assert_eq!(dag.module("x", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.name(), "x");
    /// # Ok::<(), jobpool::DagError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.dag.modules[self.index].name
    }
}

impl fmt::Debug for ModuleRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleRef")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_and_sync<T: Send + Sync>() {}

    #[test]
    fn debug_looks_derived_and_the_report_shows_an_unbounded_cap() {
        let mut dag = Dag::new();
        let task = |_: &Context| -> TaskResult<()> { Ok(()) };
        dag.module("fetch", usize::MAX, [task, task]).unwrap();
        dag.module("build", 2, [task])
            .unwrap()
            .after(["fetch"])
            .unwrap();
        assert_eq!(
            format!("{dag:?}"),
            "Dag { modules: [Module { name: \"fetch\", cap: 18446744073709551615, tasks: 2, \
             after: [], skip_if: false }, Module { name: \"build\", cap: 2, tasks: 1, \
             after: [\"fetch\"], skip_if: false }] }"
        );
        let report = dag.run(&crate::Pool::new(2)).unwrap().to_string();
        let fetch = report.lines().find(|l| l.starts_with("fetch")).unwrap();
        assert!(fetch.contains("/∞"), "{report}");
        assert!(!report.contains("18446744073709551615"), "{report}");
    }

    #[test]
    fn graphs_reports_and_contexts_can_be_shared_between_threads() {
        send_and_sync::<Dag>();
        send_and_sync::<RunReport>();
        send_and_sync::<Context>();
        send_and_sync::<DagError>();
    }

    #[test]
    fn a_failed_declaration_leaves_the_graph_as_it_was() {
        let mut dag = Dag::new();
        let noop = |_: &Context| -> TaskResult<()> { Ok(()) };
        dag.module("a", 1, [noop]).unwrap().after(["b"]).unwrap();
        assert!(dag.module("a", 2, [noop]).is_err());
        assert!(dag.after("a", ["c", "a"]).is_err());
        assert_eq!(dag.dependencies("a"), Some(vec!["b"]));
        assert_eq!(dag.names().collect::<Vec<_>>(), ["a"]);
    }
}
