//! What a run with a cache says of each module: re-used, or run and why; and what a dry run
//! ([`Dag::explain`](crate::Dag::explain)) says would happen.

use std::fmt;

/// Whether a module's output came from the cache, and if not, why the module ran; see
/// [`ModuleReport::cache_status`](crate::ModuleReport::cache_status).
///
/// # Examples
///
/// ```
/// use jobpool::{Cache, CacheStatus, Context, Dag, Pool, RunOptions, RunReason, TaskResult};
///
/// # let dir = tempfile::tempdir()?;
/// let cache = Cache::open(dir.path())?;
/// let mut dag = Dag::new();
/// dag.cached_module("greeting", 1, [|_: &Context| -> TaskResult<String> { Ok("hi".into()) }])?;
/// let pool = Pool::new(1);
/// let first = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
/// let status = first.module("greeting").unwrap().cache_status();
/// assert_eq!(status, &CacheStatus::Ran { why: RunReason::NoEntry, store_error: None });
/// assert_eq!(status.to_string(), "ran: nothing stored for it");
/// let second = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
/// assert_eq!(second.module("greeting").unwrap().cache_status().to_string(), "cached");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CacheStatus {
    /// The cache played no part: the run had none, the module was declared with
    /// [`Dag::module`](crate::Dag::module) (not cached), or it never got as far as a look-up
    /// (skipped or cancelled).
    #[default]
    NotCached,
    /// Its output was read from the cache; its tasks did not run.
    Hit,
    /// It was looked up and ran.
    Ran {
        /// Why it ran.
        why: RunReason,
        /// Why its output could not be stored, if it could not (a full disk). A module that
        /// failed or was cancelled is never stored, and that is not an error.
        store_error: Option<String>,
    },
}

impl CacheStatus {
    /// Whether the module's output was read from the cache.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(jobpool::CacheStatus::Hit.is_hit());
    /// ```
    pub fn is_hit(&self) -> bool {
        matches!(self, CacheStatus::Hit)
    }

    /// Why the module ran, if it was looked up and ran.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{CacheStatus, RunReason};
    ///
    /// let status = CacheStatus::Ran { why: RunReason::Forced, store_error: None };
    /// assert_eq!(status.why(), Some(&RunReason::Forced));
    /// assert_eq!(CacheStatus::Hit.why(), None);
    /// ```
    pub fn why(&self) -> Option<&RunReason> {
        match self {
            CacheStatus::Ran { why, .. } => Some(why),
            _ => None,
        }
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheStatus::NotCached => f.write_str("not cached"),
            CacheStatus::Hit => f.write_str("cached"),
            CacheStatus::Ran { why, store_error } => {
                write!(f, "ran: {why}")?;
                if let Some(error) = store_error {
                    write!(f, " (not stored: {error})")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a module with a cache ran (or, in a dry run, would run) instead of re-using a stored
/// output.
///
/// Inputs are named by their labels: `file hello.c`, `dir src`, `env CC`, or the name given to
/// a value.
///
/// # Examples
///
/// ```
/// use jobpool::RunReason;
///
/// let why = RunReason::InputChanged { input: "file hello.c".into() };
/// assert_eq!(why.to_string(), "input `file hello.c` changed");
/// let why = RunReason::DependencyChanged { dependency: "hello.o".into() };
/// assert_eq!(why.to_string(), "the output of `hello.o` changed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunReason {
    /// Nothing is stored for the module, nor known of it: its first run with this cache.
    NoEntry,
    /// The run was told to run it ([`RunOptions::force`](crate::RunOptions::force)).
    Forced,
    /// Its version string changed.
    VersionChanged {
        /// The version its stored output was made with.
        from: String,
        /// Its version now.
        to: String,
    },
    /// Its output type or its number of tasks changed.
    ModuleChanged {
        /// What changed, in words.
        what: String,
    },
    /// The content of an input changed.
    InputChanged {
        /// The input's label.
        input: String,
    },
    /// An input was declared that was not before.
    InputAdded {
        /// The input's label.
        input: String,
    },
    /// An input declared before is not any more.
    InputRemoved {
        /// The input's label.
        input: String,
    },
    /// An input could not be read (other than not existing, which is a state of its own): the
    /// module ran without the cache, and its output was not stored.
    InputUnreadable {
        /// The input's label.
        input: String,
        /// The I/O error.
        error: String,
    },
    /// The output of a dependency changed, or it depends on different modules than before.
    DependencyChanged {
        /// The dependency.
        dependency: String,
    },
    /// A dependency does not cache its output ([`Dag::module`](crate::Dag::module)), so
    /// nothing tells whether it changed: its direct dependents always run (and are not
    /// stored).
    DependencyNotCached {
        /// The dependency.
        dependency: String,
    },
    /// Its fingerprint is unchanged, but the stored output is gone (pruned or cleared).
    EntryMissing,
    /// The stored output was damaged (its checksum did not match) or could not be decoded as
    /// the module's output type; it is replaced.
    EntryCorrupt {
        /// What was wrong.
        detail: String,
    },
}

impl fmt::Display for RunReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunReason::NoEntry => f.write_str("nothing stored for it"),
            RunReason::Forced => f.write_str("forced"),
            RunReason::VersionChanged { from, to } => {
                write!(f, "version changed from `{from}` to `{to}`")
            }
            RunReason::ModuleChanged { what } => f.write_str(what),
            RunReason::InputChanged { input } => write!(f, "input `{input}` changed"),
            RunReason::InputAdded { input } => write!(f, "input `{input}` was added"),
            RunReason::InputRemoved { input } => write!(f, "input `{input}` was removed"),
            RunReason::InputUnreadable { input, error } => {
                write!(f, "input `{input}` could not be read: {error}")
            }
            RunReason::DependencyChanged { dependency } => {
                write!(f, "the output of `{dependency}` changed")
            }
            RunReason::DependencyNotCached { dependency } => {
                write!(f, "`{dependency}` is not cached")
            }
            RunReason::EntryMissing => f.write_str("its stored output was removed"),
            RunReason::EntryCorrupt { detail } => {
                write!(f, "its stored output is damaged ({detail})")
            }
        }
    }
}

/// What a run would do with one module, as [`Dag::explain`](crate::Dag::explain) tells it.
///
/// # Examples
///
/// ```
/// use jobpool::{Plan, RunReason};
///
/// assert_eq!(Plan::Cached.to_string(), "cached");
/// assert_eq!(Plan::Run(RunReason::Forced).to_string(), "would run: forced");
/// let plan = Plan::RunsIfChanged { dependency: "compile".into() };
/// assert_eq!(plan.to_string(), "would run if the output of `compile` changes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Plan {
    /// Its stored output would be used.
    Cached,
    /// It would run, for this reason.
    Run(RunReason),
    /// A dependency would run first; whether this module then runs depends on that
    /// dependency's new output (early cutoff).
    RunsIfChanged {
        /// The first such dependency.
        dependency: String,
    },
    /// It does not cache its output ([`Dag::module`](crate::Dag::module)): it would run.
    NotCached,
    /// It is not needed for the run's targets ([`RunOptions::targets`](crate::RunOptions::targets)).
    NotNeeded,
}

impl Plan {
    /// Whether the module would certainly run.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(jobpool::Plan::NotCached.would_run());
    /// assert!(!jobpool::Plan::Cached.would_run());
    /// ```
    pub fn would_run(&self) -> bool {
        matches!(self, Plan::Run(_) | Plan::NotCached)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Plan::Cached => f.write_str("cached"),
            Plan::Run(why) => write!(f, "would run: {why}"),
            Plan::RunsIfChanged { dependency } => {
                write!(f, "would run if the output of `{dependency}` changes")
            }
            Plan::NotCached => f.write_str("would run: not cached"),
            Plan::NotNeeded => f.write_str("not needed"),
        }
    }
}

/// What a run would do, module by module, as [`Dag::explain`](crate::Dag::explain) tells it
/// without running anything.
///
/// # Examples
///
/// ```
/// use jobpool::{Cache, Context, Dag, Plan, Pool, RunOptions, TaskResult};
///
/// # let dir = tempfile::tempdir()?;
/// let cache = Cache::open(dir.path())?;
/// let mut dag = Dag::new();
/// dag.cached_module("a", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])?;
/// dag.cached_module("b", 1, [|_: &Context| -> TaskResult<u8> { Ok(2) }])?.after(["a"])?;
/// let pool = Pool::new(2);
/// let plan = dag.explain(&pool, RunOptions::new().cache(&cache))?;
/// assert!(plan.get("a").unwrap().would_run());
/// assert_eq!(plan.get("b"), Some(&Plan::RunsIfChanged { dependency: "a".into() }));
///
/// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
/// let plan = dag.explain(&pool, RunOptions::new().cache(&cache))?;
/// assert_eq!(plan.would_run().count(), 0);
/// println!("{plan}"); // a line per module: its name and its plan
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub(crate) modules: Vec<(String, Plan)>,
}

impl Explanation {
    /// Every module and its plan, in the order the modules were added.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Plan, Pool, RunOptions, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("plain", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// let plan = dag.explain(&Pool::new(1), RunOptions::new())?;
    /// assert_eq!(plan.modules().collect::<Vec<_>>(), [("plain", &Plan::NotCached)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn modules(&self) -> impl Iterator<Item = (&str, &Plan)> + '_ {
        self.modules
            .iter()
            .map(|(name, plan)| (name.as_str(), plan))
    }

    /// The plan of module `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("plain", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// let plan = dag.explain(&Pool::new(1), RunOptions::new())?;
    /// assert!(plan.get("plain").is_some() && plan.get("other").is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.modules.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// The modules that would certainly run.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("plain", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// let plan = dag.explain(&Pool::new(1), RunOptions::new())?;
    /// assert_eq!(plan.would_run().collect::<Vec<_>>(), ["plain"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn would_run(&self) -> impl Iterator<Item = &str> + '_ {
        self.modules
            .iter()
            .filter(|(_, plan)| plan.would_run())
            .map(|(name, _)| name.as_str())
    }
}

impl fmt::Display for Explanation {
    /// A line per module: its name, then its plan.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.modules.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (n, (name, plan)) in self.modules.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{name:<width$}  {plan}")?;
        }
        Ok(())
    }
}
