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

mod context;
mod control;
mod dot;
mod error;
mod graph;
#[cfg(feature = "cache")]
mod incremental;
mod options;
mod report;
mod run;
mod tasks;

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
use tasks::{TaskFn, TypedTasks};

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
        let name = name.into();
        if self.index.contains_key(name.as_str()) {
            return Err(DagError::DuplicateModule { name });
        }
        if cap == 0 {
            return Err(DagError::ZeroCap { module: name });
        }
        let tasks: Vec<TaskFn<T>> = tasks
            .into_iter()
            .map(|task| Arc::new(task) as TaskFn<T>)
            .collect();
        let name: Arc<str> = name.into();
        let index = self.modules.len();
        self.index.insert(name.clone(), index);
        self.modules.push(ModuleSpec {
            name,
            cap,
            after: Vec::new(),
            tasks: Arc::new(TypedTasks { tasks }),
            skip_if: None,
            control: JobControl::default(),
            #[cfg(feature = "cache")]
            cache: None,
        });
        Ok(ModuleRef { dag: self, index })
    }

    /// Adds a module whose output is cached, as [`module`](Self::module) adds one: a run with
    /// a cache ([`RunOptions::cache`]) re-uses its stored output instead of running it when
    /// its fingerprint is unchanged. The fingerprint covers the module's name, its
    /// [`version`](ModuleRef::version), its output type and number of tasks, its declared
    /// inputs ([`input_file`](ModuleRef::input_file), [`input_dir`](ModuleRef::input_dir),
    /// [`input_env`](ModuleRef::input_env), [`input_value`](ModuleRef::input_value)) and the
    /// outputs of the modules it depends on. Its tasks' results are stored with serde, so `T`
    /// must be serializable.
    ///
    /// Declare everything a task reads: what is not declared is not in the fingerprint, and a
    /// change to it does not make the module run again. Bump the version when the tasks' code
    /// changes.
    ///
    /// A module that runs again and produces the output it produced before does not make its
    /// dependents run (early cutoff). A module declared with [`module`](Self::module) is not
    /// cached: it always runs, and so do the cached modules that depend on it directly
    /// ([`RunReason::DependencyNotCached`](crate::RunReason::DependencyNotCached)); they are
    /// not stored, but the digests of their outputs still let the modules after them be cut
    /// off.
    ///
    /// Only with the `cache` feature.
    ///
    /// # Errors
    ///
    /// As [`module`](Self::module).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// # let source = dir.path().join("hello.c");
    /// std::fs::write(&source, "int main() { return 0; }")?;
    /// let cache = Cache::open(dir.path().join("cache"))?;
    /// let mut dag = Dag::new();
    /// let path = source.clone();
    /// dag.cached_module("hello.o", 1, [move |_: &Context| -> TaskResult<usize> {
    ///     Ok(std::fs::read(&path)?.len()) // "compile"
    /// }])?
    /// .version("cc-12")
    /// .input_file(&source)
    /// .input_env("CFLAGS");
    ///
    /// let pool = Pool::new(2);
    /// let options = || RunOptions::new().cache(&cache);
    /// assert!(!dag.run_with(&pool, options())?.module("hello.o").unwrap().cache_status().is_hit());
    /// assert!(dag.run_with(&pool, options())?.module("hello.o").unwrap().cache_status().is_hit());
    /// std::fs::write(&source, "int main() { return 1; }")?;
    /// let report = dag.run_with(&pool, options())?;
    /// let why = report.module("hello.o").unwrap().cache_status().to_string();
    /// assert!(why.starts_with("ran: input `file ") && why.ends_with("hello.c` changed"), "{why}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    pub fn cached_module<N, I, F, T>(
        &mut self,
        name: N,
        cap: usize,
        tasks: I,
    ) -> Result<ModuleRef<'_>, DagError>
    where
        N: Into<String>,
        I: IntoIterator<Item = F>,
        F: Fn(&Context) -> TaskResult<T> + Send + Sync + 'static,
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let module = self.module(name, cap, tasks)?;
        let index = module.index;
        self.modules[index].cache =
            Some(incremental::CacheSpec::new(incremental::Codec::of::<T>()));
        Ok(ModuleRef { dag: self, index })
    }

    /// Tells what a run with `options` would do with each module, and why, without running
    /// any: [`Plan::Cached`](crate::Plan::Cached) if its stored output would be used, or the
    /// reason it would run. Inputs are hashed and the cache is read, on the pool, as a run
    /// would; skip conditions are not asked (they may need outputs that are not there), and a
    /// module after one that would run is told as
    /// [`Plan::RunsIfChanged`](crate::Plan::RunsIfChanged). It stores and removes no entry;
    /// it does write the cache's index of hints (the digests of the files it read), so that
    /// the next run need not read them again.
    ///
    /// Only with the `cache` feature.
    ///
    /// # Errors
    ///
    /// As [`run_with`](Self::run_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Plan, Pool, RunOptions, RunReason, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("fetch", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])?.version("1");
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// dag.module("fetch-v2", 1, [|_: &Context| -> TaskResult<u8> { Ok(2) }])?;
    ///
    /// let plan = dag.explain(&pool, RunOptions::new().cache(&cache))?;
    /// assert_eq!(plan.get("fetch"), Some(&Plan::Cached));
    /// assert_eq!(plan.get("fetch-v2"), Some(&Plan::NotCached));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    pub fn explain(
        &self,
        pool: &Pool,
        options: RunOptions,
    ) -> Result<crate::Explanation, DagError> {
        let plan = graph::plan(&self.modules, &self.index)?;
        let needed = self.needed(&plan, &options)?;
        Ok(run::explain(plan, pool, options, needed))
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

    /// The spec of a cached module, to declare its version and inputs.
    #[cfg(feature = "cache")]
    #[track_caller]
    fn cache_spec(&mut self, what: &str) -> &mut incremental::CacheSpec {
        let spec = &mut self.dag.modules[self.index];
        match &mut spec.cache {
            Some(cache) => cache,
            None => panic!(
                "ModuleRef::{what}: module `{}` was declared with Dag::module, which does not \
                 cache its output; declare it with Dag::cached_module",
                spec.name
            ),
        }
    }

    /// Sets the module's version (empty unless set): a string to change whenever its tasks'
    /// code changes, so that a run with a cache does not re-use the output of the old code.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`] (it has no cache), as for every input.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, RunReason, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let pool = Pool::new(1);
    /// for version in ["1", "2"] {
    ///     let mut dag = Dag::new();
    ///     dag.cached_module("resize", 1, [|_: &Context| -> TaskResult<u32> { Ok(640) }])?.version(version);
    ///     let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    ///     if version == "2" {
    ///         let why = report.module("resize").unwrap().cache_status().why().cloned();
    ///         assert_eq!(why, Some(RunReason::VersionChanged { from: "1".into(), to: "2".into() }));
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    #[track_caller]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.cache_spec("version").version = version.into();
        self
    }

    /// Declares a file the module reads: its content (not its timestamps) is part of the
    /// module's fingerprint, so the module runs again when the file's content changes, and
    /// not when it is only touched. A file that does not exist is an input too: the module
    /// runs again when it appears. A symbolic link is followed. Reported as `file <path>`.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let config = dir.path().join("app.toml");
    /// std::fs::write(&config, "workers = 4")?;
    /// let cache = Cache::open(dir.path().join("cache"))?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("check", 1, [|_: &Context| -> TaskResult<bool> { Ok(true) }])?.input_file(&config);
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// std::fs::write(&config, "workers = 4")?; // written again, same content
    /// let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// assert!(report.module("check").unwrap().cache_status().is_hit());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    #[track_caller]
    pub fn input_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        let path = path.as_ref();
        let input = incremental::InputDecl {
            label: format!("file {}", path.display()),
            source: incremental::Source::File(path.to_owned()),
        };
        self.cache_spec("input_file").inputs.push(input);
        self
    }

    /// Declares a directory the module reads: the names, kinds and contents of everything
    /// under it are part of the module's fingerprint (symbolic links by their targets, not
    /// followed). Reported as `dir <path>`.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, RunReason, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let src = dir.path().join("src");
    /// std::fs::create_dir(&src)?;
    /// std::fs::write(src.join("a.rs"), "fn a() {}")?;
    /// let cache = Cache::open(dir.path().join("cache"))?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("lint", 1, [|_: &Context| -> TaskResult<u32> { Ok(0) }])?.input_dir(&src);
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// std::fs::write(src.join("b.rs"), "fn b() {}")?; // a new file
    /// let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// let why = report.module("lint").unwrap().cache_status().why().cloned();
    /// assert!(matches!(why, Some(RunReason::InputChanged { input }) if input.starts_with("dir ")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    #[track_caller]
    pub fn input_dir(mut self, path: impl AsRef<std::path::Path>) -> Self {
        let path = path.as_ref();
        let input = incremental::InputDecl {
            label: format!("dir {}", path.display()),
            source: incremental::Source::Dir(path.to_owned()),
        };
        self.cache_spec("input_dir").inputs.push(input);
        self
    }

    /// Declares an environment variable the module reads: its value, or that it is not set,
    /// is part of the module's fingerprint, read when the run looks the module up. Reported as
    /// `env <name>`.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("cc", 1, [|_: &Context| -> TaskResult<String> {
    ///     Ok(std::env::var("MY_CFLAGS").unwrap_or_default())
    /// }])?
    /// .input_env("MY_CFLAGS");
    /// let pool = Pool::new(1);
    /// std::env::set_var("MY_CFLAGS", "-O2");
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// std::env::set_var("MY_CFLAGS", "-O3");
    /// let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// assert_eq!(report.output::<String>("cc")?, ["-O3"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    #[track_caller]
    pub fn input_env(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        let input = incremental::InputDecl {
            label: format!("env {name}"),
            source: incremental::Source::Env(name.into()),
        };
        self.cache_spec("input_env").inputs.push(input);
        self
    }

    /// Declares a value the module's tasks use (a setting, a list of hosts), hashed now with
    /// its [`Hash`](std::hash::Hash) into the module's fingerprint. Reported as `label`.
    ///
    /// `Hash` is stable from run to run of one build of a program; a new Rust release may hash
    /// some standard types differently, and then the module runs once more (never the other
    /// way round). For a value that is serializable, [`input_bytes`](Self::input_bytes) of
    /// its serialized form does not depend on the compiler.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, RunReason, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let pool = Pool::new(1);
    /// for width in [640, 640, 800] {
    ///     let mut dag = Dag::new();
    ///     dag.cached_module("thumbnail", 1, [move |_: &Context| -> TaskResult<u32> { Ok(width / 2) }])?
    ///         .input_value("width", &width);
    ///     let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    ///     let status = report.module("thumbnail").unwrap().cache_status();
    ///     if width == 800 {
    ///         assert_eq!(status.why(), Some(&RunReason::InputChanged { input: "width".into() }));
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    #[track_caller]
    pub fn input_value<V: std::hash::Hash + ?Sized>(mut self, label: &str, value: &V) -> Self {
        let input = incremental::InputDecl::value(label, value);
        self.cache_spec("input_value").inputs.push(input);
        self
    }

    /// Declares bytes the module's tasks depend on (a serialized setting, a downloaded
    /// manifest) as an input of its fingerprint. Reported as `label`.
    ///
    /// # Panics
    ///
    /// If the module was declared with [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, TaskResult};
    ///
    /// let settings = serde_json::json!({ "quality": 85 });
    /// let mut dag = Dag::new();
    /// dag.cached_module("encode", 1, [|_: &Context| -> TaskResult<u8> { Ok(85) }])?
    ///     .input_bytes("settings", serde_json::to_vec(&settings)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    #[track_caller]
    pub fn input_bytes(mut self, label: &str, bytes: impl AsRef<[u8]>) -> Self {
        let input = incremental::InputDecl::bytes(label, bytes.as_ref());
        self.cache_spec("input_bytes").inputs.push(input);
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
