//! What a run of a graph reports: every module's state, times, size and peak running (the most of its tasks that ran at once).

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::human::{HumanCap, HumanDuration};
use crate::{GaveUp, TaskFailure};

use super::context::{downcast_output, Input};
use super::error::OutputError;

/// One reason a module failed.
///
/// A task's error is reported once the task will not be tried again: it used up the attempts
/// of its module's [`Retry`](crate::Retry) policy ([`ModuleRef::retry`](crate::ModuleRef::retry);
/// one attempt without a policy), or the policy found the error permanent. Tasks that the
/// module's [`timeout`](crate::ModuleRef::timeout) kept from starting are reported together as
/// one [`Failure::TimedOut`].
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, Failure, ModuleState, Pool, TaskResult};
///
/// let mut dag = Dag::new();
/// dag.module("parse", 2, ["1", "x"].map(|s| move |_: &Context| -> TaskResult<u32> { Ok(s.parse()?) }))?;
/// let report = dag.run(&Pool::new(2))?;
/// let ModuleState::Failed(failures) = report.module("parse").unwrap().state() else { panic!() };
/// assert!(matches!(&failures[0], Failure::TaskError { task: 1, .. }));
/// assert_eq!(failures[0].to_string(), "task 1 returned an error: invalid digit found in string");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// A task returned an error, and was not tried again.
    ///
    /// `error` is a [`TaskFailure`]: the error of the task's last attempt, how many attempts
    /// it had and why it was not tried again. Read it with [`task_failure`](Self::task_failure)
    /// (then [`TaskFailure::downcast_ref`] gets the task's own error type back; `error` itself
    /// downcasts only to `TaskFailure`), or [`attempts`](Self::attempts). It is shown as the
    /// task's error alone when the task ran once and no policy said otherwise, as a module
    /// without retries always reports it.
    TaskError {
        /// The task's index in its module.
        task: usize,
        /// The error it returned, as a [`TaskFailure`].
        error: Box<dyn Error + Send + Sync>,
    },
    /// A task panicked.
    TaskPanicked {
        /// The task's index in its module.
        task: usize,
        /// The panic's message.
        message: String,
    },
    /// The module's skip condition panicked; no task ran.
    ConditionPanicked {
        /// The panic's message.
        message: String,
    },
    /// The module's [`timeout`](crate::ModuleRef::timeout) passed before these tasks started
    /// (or, for a task waiting to be retried, before its next attempt). Tasks running then
    /// were not stopped; their own results are reported as usual.
    TimedOut {
        /// The tasks' indices in their module, in order.
        tasks: Vec<usize>,
        /// The module's timeout.
        timeout: Duration,
    },
}

impl Failure {
    /// The index of the task that failed; `None` for a failure of the whole module (its skip
    /// condition panicked, or its timeout passed).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, ModuleState, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("second-fails", 2, [0, 1].map(|i| move |_: &Context| -> TaskResult<()> {
    ///     if i == 1 { Err("disk full".into()) } else { Ok(()) }
    /// }))?;
    /// let report = dag.run(&Pool::new(2))?;
    /// let ModuleState::Failed(failures) = report.module("second-fails").unwrap().state() else { panic!() };
    /// assert_eq!(failures[0].task(), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn task(&self) -> Option<usize> {
        match self {
            Failure::TaskError { task, .. } | Failure::TaskPanicked { task, .. } => Some(*task),
            Failure::ConditionPanicked { .. } | Failure::TimedOut { .. } => None,
        }
    }

    /// For a task that returned an error: its error, its number of attempts and why it was not
    /// tried again.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobpool::{Context, Dag, GaveUp, ModuleState, Pool, Retry, TaskResult};
    ///
    /// #[derive(Debug)]
    /// struct Busy;
    /// impl std::fmt::Display for Busy {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("busy") }
    /// }
    /// impl std::error::Error for Busy {}
    ///
    /// let mut dag = Dag::new();
    /// dag.module("call", 1, [|_: &Context| -> TaskResult<()> { Err(Busy.into()) }])?
    ///     .retry(Retry::attempts(2).backoff(Duration::from_millis(1), 1.0, Duration::from_millis(1)));
    /// let report = dag.run(&Pool::new(1))?;
    /// let ModuleState::Failed(failures) = report.module("call").unwrap().state() else { panic!() };
    /// let failure = failures[0].task_failure().unwrap();
    /// assert_eq!((failure.attempts(), failure.gave_up()), (2, GaveUp::AttemptsUsedUp));
    /// assert!(failure.downcast_ref::<Busy>().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn task_failure(&self) -> Option<&TaskFailure> {
        match self {
            Failure::TaskError { error, .. } => error.downcast_ref::<TaskFailure>(),
            _ => None,
        }
    }

    /// How many times the failed task ran, for a task that returned an error; `None` for any
    /// other failure (a panic does not tell how many attempts came before it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobpool::{Context, Dag, ModuleState, Pool, Retry, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("flaky", 1, [|_: &Context| -> TaskResult<()> { Err("timeout".into()) }])?
    ///     .retry(Retry::attempts(3).backoff(Duration::from_millis(1), 1.0, Duration::from_millis(1)));
    /// let report = dag.run(&Pool::new(1))?;
    /// let ModuleState::Failed(failures) = report.module("flaky").unwrap().state() else { panic!() };
    /// assert_eq!(failures[0].attempts(), Some(3));
    /// assert_eq!(
    ///     failures[0].to_string(),
    ///     "task 0 returned an error after 3 attempts (no attempts left): timeout",
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Failure::TaskError { .. } => Some(self.task_failure().map_or(1, TaskFailure::attempts)),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TaskError { task, error } => match error.downcast_ref::<TaskFailure>() {
                // One attempt and no policy said otherwise: just the error, as without retries.
                Some(failure)
                    if failure.attempts() > 1 || failure.gave_up() != GaveUp::AttemptsUsedUp =>
                {
                    let attempts = failure.attempts();
                    let s = if attempts == 1 { "" } else { "s" };
                    write!(
                        f,
                        "task {task} returned an error after {attempts} attempt{s} ({}): {}",
                        failure.gave_up(),
                        failure.error()
                    )
                }
                Some(failure) => write!(f, "task {task} returned an error: {}", failure.error()),
                None => write!(f, "task {task} returned an error: {error}"),
            },
            Failure::TaskPanicked { task, message } => write!(f, "task {task} panicked: {message}"),
            Failure::ConditionPanicked { message } => {
                write!(f, "the skip condition panicked: {message}")
            }
            Failure::TimedOut { tasks, timeout } => {
                let s = if tasks.len() == 1 { "" } else { "s" };
                write!(
                    f,
                    "the module timed out after {}: task{s} ",
                    HumanDuration(*timeout)
                )?;
                for (n, task) in tasks.iter().enumerate() {
                    write!(f, "{}{task}", if n == 0 { "" } else { ", " })?;
                }
                f.write_str(" did not start in time")
            }
        }
    }
}

/// Why a module did not run.
///
/// # Examples
///
/// ```
/// use jobpool::SkipReason;
///
/// let why = SkipReason::DependencyFailed { failed: "fetch".into() };
/// assert_eq!(why.to_string(), "skipped because `fetch` failed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// Its condition ([`ModuleRef::skip_if`](crate::ModuleRef::skip_if)) said so. Its
    /// dependents still ran.
    Condition,
    /// A module it depends on, directly or through others, failed.
    DependencyFailed {
        /// The failed module (the first one found, when several failed).
        failed: String,
    },
    /// The run had targets ([`RunOptions::targets`](crate::RunOptions::targets)), and none of
    /// them needs this module.
    NotNeeded,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Condition => f.write_str("skipped by its condition"),
            SkipReason::DependencyFailed { failed } => {
                write!(f, "skipped because `{failed}` failed")
            }
            SkipReason::NotNeeded => f.write_str("not needed by the targets"),
        }
    }
}

/// How a module ended, in a [`RunReport`].
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, ModuleState, Pool, SkipReason, TaskResult};
///
/// let mut dag = Dag::new();
/// dag.module("broken", 1, [|_: &Context| -> TaskResult<()> { Err("disk full".into()) }])?;
/// dag.module("after-broken", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.after(["broken"])?;
/// dag.module("independent", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
/// let report = dag.run(&Pool::new(2))?;
/// assert!(report.module("broken").unwrap().state().is_failed());
/// assert_eq!(
///     report.module("after-broken").unwrap().state(),
///     &ModuleState::Skipped(SkipReason::DependencyFailed { failed: "broken".into() }),
/// );
/// assert_eq!(report.module("independent").unwrap().state(), &ModuleState::Done);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ModuleState {
    /// Every task returned `Ok`.
    Done,
    /// At least one task returned an error (after its retries) or panicked, or the module's
    /// timeout passed before some tasks started ([`Failure::TimedOut`]); every other task still
    /// ran.
    Failed(Vec<Failure>),
    /// The module did not run; its tasks never started.
    Skipped(SkipReason),
    /// Some or all of its tasks never started: the run was stopping after a failure (fail-fast
    /// mode), or the pool was shut down.
    Cancelled,
}

impl ModuleState {
    /// Whether the module ran and every task succeeded.
    pub fn is_done(&self) -> bool {
        matches!(self, ModuleState::Done)
    }

    /// Whether a task of the module failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, ModuleState::Failed(_))
    }

    /// Whether the module was skipped, for any reason.
    pub fn is_skipped(&self) -> bool {
        matches!(self, ModuleState::Skipped(_))
    }

    /// Whether the module was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ModuleState::Cancelled)
    }

    /// A one-word name for the state: `done`, `failed`, `skipped` or `cancelled`.
    pub fn label(&self) -> &'static str {
        match self {
            ModuleState::Done => "done",
            ModuleState::Failed(_) => "failed",
            ModuleState::Skipped(_) => "skipped",
            ModuleState::Cancelled => "cancelled",
        }
    }
}

impl PartialEq for ModuleState {
    /// States are equal when they have the same kind; failures are compared by their messages.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ModuleState::Failed(a), ModuleState::Failed(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_string() == b.to_string())
            }
            (ModuleState::Skipped(a), ModuleState::Skipped(b)) => a == b,
            (a, b) => a.label() == b.label() && !a.is_failed() && !a.is_skipped(),
        }
    }
}

impl fmt::Display for ModuleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleState::Failed(failures) => {
                f.write_str("failed: ")?;
                for (n, failure) in failures.iter().enumerate() {
                    write!(f, "{}{failure}", if n == 0 { "" } else { "; " })?;
                }
                Ok(())
            }
            ModuleState::Skipped(why) => fmt::Display::fmt(why, f),
            other => f.write_str(other.label()),
        }
    }
}

/// One module's line in a [`RunReport`].
///
/// Times are measured from the start of the run. A module *starts* when it is handed to the
/// pool, the moment its last dependency finished; it *ends* when its last task finished.
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, Pool, TaskResult};
///
/// let mut dag = Dag::new();
/// dag.module("work", 2, (0..4).map(|i| move |_: &Context| -> TaskResult<i32> { Ok(i) }))?;
/// let report = dag.run(&Pool::new(2))?;
/// let work = report.module("work").unwrap();
/// assert!(work.state().is_done());
/// assert_eq!((work.tasks(), work.cap()), (4, 2));
/// assert!(work.peak_running() <= 2);
/// assert!(work.start().unwrap() <= work.end().unwrap());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ModuleReport {
    pub(crate) name: String,
    pub(crate) cap: usize,
    pub(crate) tasks: usize,
    pub(crate) state: ModuleState,
    pub(crate) start: Option<Duration>,
    pub(crate) end: Option<Duration>,
    pub(crate) peak_running: usize,
    #[cfg(feature = "cache")]
    pub(crate) cache_status: crate::CacheStatus,
}

impl ModuleReport {
    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the module ended.
    pub fn state(&self) -> &ModuleState {
        &self.state
    }

    /// When the module was handed to the pool, from the start of the run; `None` if it never
    /// was (skipped, or cancelled before it started).
    pub fn start(&self) -> Option<Duration> {
        self.start
    }

    /// When the module's last task finished, from the start of the run; `None` if it never
    /// started.
    pub fn end(&self) -> Option<Duration> {
        self.end
    }

    /// How long the module took from start to end, if it started.
    pub fn duration(&self) -> Option<Duration> {
        Some(self.end?.saturating_sub(self.start?))
    }

    /// The number of the module's tasks.
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// The module's cap: at most this many of its tasks ran at once.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The most of the module's tasks that ran at once.
    pub fn peak_running(&self) -> usize {
        self.peak_running
    }

    /// Whether the module's output was read from the run's cache, or why it ran; see
    /// [`RunOptions::cache`](crate::RunOptions::cache).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Cache, Context, Dag, Pool, RunOptions, TaskResult};
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// let mut dag = Dag::new();
    /// dag.cached_module("config", 1, [|_: &Context| -> TaskResult<String> { Ok("x=1".into()) }])?
    ///     .input_value("x", &1);
    /// let pool = Pool::new(1);
    /// dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// let report = dag.run_with(&pool, RunOptions::new().cache(&cache))?;
    /// assert_eq!(report.module("config").unwrap().cache_status().to_string(), "cached");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "cache")]
    pub fn cache_status(&self) -> &crate::CacheStatus {
        &self.cache_status
    }
}

/// What a run of a [`Dag`](crate::Dag) did: a [`ModuleReport`] per module, in the order the
/// modules were added, and the outputs of the modules that finished.
///
/// A failed module does not make [`Dag::run`](crate::Dag::run) return an error: check
/// [`is_success`](Self::is_success), or look at each module.
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, Pool, TaskResult};
///
/// let mut dag = Dag::new();
/// dag.module("compile", 2, ["a.c", "b.c"].map(|f| move |_: &Context| -> TaskResult<String> { Ok(f.replace(".c", ".o")) }))?;
/// dag.module("link", 1, [|ctx: &Context| -> TaskResult<String> { Ok(ctx.output::<String>("compile")?.join("+")) }])?
///     .after(["compile"])?;
/// let report = dag.run(&Pool::new(2))?;
/// assert!(report.is_success());
/// assert_eq!(report.output::<String>("link")?, ["a.o+b.o"]);
/// println!("{report}"); // a table: module, state, start, end, tasks, peak/cap
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RunReport {
    pub(crate) modules: Vec<ModuleReport>,
    pub(crate) outputs: Vec<Option<Input>>,
    pub(crate) elapsed: Duration,
}

impl RunReport {
    /// Every module's report, in the order the modules were added to the graph.
    pub fn modules(&self) -> &[ModuleReport] {
        &self.modules
    }

    /// The report of the module named `name`.
    pub fn module(&self, name: &str) -> Option<&ModuleReport> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// Whether no module failed or was cancelled or skipped because of a failure (modules
    /// skipped by their condition, or not needed by the run's targets, are fine).
    pub fn is_success(&self) -> bool {
        self.modules.iter().all(|m| {
            matches!(
                m.state,
                ModuleState::Done
                    | ModuleState::Skipped(SkipReason::Condition | SkipReason::NotNeeded)
            )
        })
    }

    /// The modules that failed.
    pub fn failed(&self) -> impl Iterator<Item = &ModuleReport> + '_ {
        self.modules.iter().filter(|m| m.state.is_failed())
    }

    /// How long the run took: from the call of `run` until every module had ended.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The results of module `module`'s tasks, in the order its tasks were given.
    ///
    /// # Errors
    ///
    /// [`OutputError::NotADependency`] if no module has that name, [`OutputError::WrongType`]
    /// if its tasks produce another type than `T`, [`OutputError::NoOutput`] if it did not
    /// finish successfully.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("answer", 1, [|_: &Context| -> TaskResult<u8> { Ok(42) }])?;
    /// let report = dag.run(&Pool::new(1))?;
    /// assert_eq!(report.output::<u8>("answer")?, [42]);
    /// assert!(report.output::<u8>("question").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn output<T: Send + Sync + 'static>(&self, module: &str) -> Result<&[T], OutputError> {
        let index = self
            .modules
            .iter()
            .position(|m| m.name == module)
            .ok_or_else(|| OutputError::NotADependency {
                module: String::new(),
                requested: module.to_owned(),
            })?;
        match &self.outputs[index] {
            Some(input) => downcast_output(module, input),
            None => Err(OutputError::NoOutput {
                module: module.to_owned(),
            }),
        }
    }
}

impl fmt::Debug for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunReport")
            .field("modules", &self.modules)
            .field("elapsed", &self.elapsed)
            .finish_non_exhaustive()
    }
}

impl ModuleReport {
    /// Its state as the report's table shows it: with its cache status, if the cache played a
    /// part (`done, cached`, `done, ran: input `file a.c` changed`).
    fn shown_state(&self) -> String {
        #[cfg(feature = "cache")]
        if self.cache_status != crate::CacheStatus::NotCached {
            return format!("{}, {}", self.state, self.cache_status);
        }
        self.state.to_string()
    }
}

/// Formats a time from the start of the run in a unit that fits it, or `-`.
fn since_start(at: Option<Duration>) -> String {
    at.map_or_else(|| "-".to_owned(), |d| HumanDuration(d).to_string())
}

impl fmt::Display for RunReport {
    /// A table with a line per module: name, state, start, end, tasks, peak running / cap.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .modules
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(0)
            .max(6);
        writeln!(
            f,
            "{:<width$}  {:>9}  {:>9}  {:>5}  {:>8}  state",
            "module", "start", "end", "tasks", "peak/cap"
        )?;
        for m in &self.modules {
            writeln!(
                f,
                "{:<width$}  {:>9}  {:>9}  {:>5}  {:>8}  {}",
                m.name,
                since_start(m.start),
                since_start(m.end),
                m.tasks,
                format!("{}/{}", m.peak_running, HumanCap(m.cap)),
                m.shown_state()
            )?;
        }
        write!(f, "elapsed {}", HumanDuration(self.elapsed))
    }
}
