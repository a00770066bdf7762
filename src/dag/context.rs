//! What a module's task sees: the outputs of the modules it depends on, and the pool.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::error::OutputError;
use crate::{Pool, TaskContext};

/// A finished module's output, type-erased: an `Arc<Vec<T>>`, one `T` per task.
pub(crate) type ErasedOutput = Arc<dyn Any + Send + Sync>;

/// What one dependency left for its dependents.
#[derive(Clone)]
pub(crate) enum Input {
    /// It ran: the results of its tasks, and the name of their type.
    Output(ErasedOutput, &'static str),
    /// Its condition skipped it.
    Skipped,
}

/// Everything a module's tasks share: built once when the module starts.
pub(crate) struct Inputs {
    pub(crate) module: Arc<str>,
    pub(crate) pool: Pool,
    /// One entry per dependency, in the order `after` named them.
    pub(crate) dependencies: Vec<(Arc<str>, Input)>,
}

impl Inputs {
    fn find(&self, name: &str) -> Result<&Input, OutputError> {
        self.dependencies
            .iter()
            .find(|(dep, _)| &**dep == name)
            .map(|(_, input)| input)
            .ok_or_else(|| OutputError::NotADependency {
                module: self.module.to_string(),
                requested: name.to_owned(),
            })
    }
}

/// Reads a type-erased output as the `Vec<T>` it is.
pub(crate) fn downcast_output<'a, T: 'static>(
    module: &str,
    input: &'a Input,
) -> Result<&'a [T], OutputError> {
    match input {
        Input::Output(output, actual) => output
            .downcast_ref::<Vec<T>>()
            .map(Vec::as_slice)
            .ok_or_else(|| OutputError::WrongType {
                module: module.to_owned(),
                requested: std::any::type_name::<T>(),
                actual,
            }),
        Input::Skipped => Err(OutputError::NoOutput {
            module: module.to_owned(),
        }),
    }
}

/// What a module's task (or its skip condition) is handed: the outputs of the modules it
/// depends on, typed, and the pool it runs on.
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, Pool, TaskResult};
///
/// let mut dag = Dag::new();
/// dag.module("users", 2, (0..2).map(|i| move |_: &Context| -> TaskResult<String> { Ok(format!("user{i}")) }))?;
/// dag.module("greet", 1, [|ctx: &Context| -> TaskResult<String> {
///     let users: &[String] = ctx.output("users")?; // one result per task of `users`
///     Ok(format!("hello {}", users.join(" and ")))
/// }])?.after(["users"])?;
/// let report = dag.run(&Pool::new(2))?;
/// assert_eq!(report.output::<String>("greet")?, ["hello user0 and user1"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Context {
    inputs: Arc<Inputs>,
    task: usize,
    attempt: u32,
    deadline: Option<Instant>,
}

impl Context {
    /// The context of a skip condition (`task` 0), which is asked once and has no deadline.
    pub(crate) fn new(inputs: Arc<Inputs>, task: usize) -> Self {
        Context {
            inputs,
            task,
            attempt: 1,
            deadline: None,
        }
    }

    /// The context of one attempt of task `task`, as its job's `cx` describes it.
    pub(crate) fn for_attempt(inputs: Arc<Inputs>, task: usize, cx: &TaskContext<'_>) -> Self {
        Context {
            inputs,
            task,
            attempt: cx.attempt(),
            deadline: cx.deadline(),
        }
    }

    /// The results of the tasks of dependency `module`, in the order its tasks were given.
    ///
    /// # Errors
    ///
    /// [`OutputError::NotADependency`] if `module` is not a dependency of this module,
    /// [`OutputError::WrongType`] if its tasks produce another type than `T`, and
    /// [`OutputError::NoOutput`] if its condition skipped it (see [`skipped`](Self::skipped)).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("numbers", 3, (1..=3).map(|i| move |_: &Context| -> TaskResult<u64> { Ok(i) }))?;
    /// dag.module("sum", 1, [|ctx: &Context| -> TaskResult<u64> {
    ///     Ok(ctx.output::<u64>("numbers")?.iter().sum())
    /// }])?.after(["numbers"])?;
    /// assert_eq!(dag.run(&Pool::new(2))?.output::<u64>("sum")?, [6]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn output<T: Send + Sync + 'static>(&self, module: &str) -> Result<&[T], OutputError> {
        downcast_output(module, self.inputs.find(module)?)
    }

    /// Whether dependency `module` was skipped by its condition (see
    /// [`ModuleRef::skip_if`](crate::ModuleRef::skip_if)).
    ///
    /// # Errors
    ///
    /// [`OutputError::NotADependency`] if `module` is not a dependency of this module.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("github", 1, [|_: &Context| -> TaskResult<u32> { Ok(7) }])?.skip_if(|_| true);
    /// dag.module("summary", 1, [|ctx: &Context| -> TaskResult<u32> {
    ///     Ok(if ctx.skipped("github")? { 0 } else { ctx.output::<u32>("github")?[0] })
    /// }])?.after(["github"])?;
    /// assert_eq!(dag.run(&Pool::new(1))?.output::<u32>("summary")?, [0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn skipped(&self, module: &str) -> Result<bool, OutputError> {
        Ok(matches!(self.inputs.find(module)?, Input::Skipped))
    }

    /// The pool the graph runs on, to start sub-jobs from a task (and wait for them: the
    /// waiting worker runs the sub-job's tasks, so this never deadlocks, even with one thread).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("squares", 1, [|ctx: &Context| -> TaskResult<u32> {
    ///     let parts = ctx.pool().submit((1..=3).map(|i| move || i * i), 2).wait()?;
    ///     Ok(parts.iter().sum())
    /// }])?;
    /// assert_eq!(dag.run(&Pool::new(1))?.output::<u32>("squares")?, [14]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pool(&self) -> &Pool {
        &self.inputs.pool
    }

    /// The name of the module this task belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("me", 1, [|ctx: &Context| -> TaskResult<String> { Ok(ctx.module().to_owned()) }])?;
    /// assert_eq!(dag.run(&Pool::new(1))?.output::<String>("me")?, ["me"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn module(&self) -> &str {
        &self.inputs.module
    }

    /// The index of this task among its module's tasks (0 in a skip condition).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("indexed", 2, (0..3).map(|_| |ctx: &Context| -> TaskResult<usize> { Ok(ctx.task()) }))?;
    /// assert_eq!(dag.run(&Pool::new(2))?.output::<usize>("indexed")?, [0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn task(&self) -> usize {
        self.task
    }

    /// Which attempt of the task this is: 1 the first time it runs, 2 for its first retry,
    /// and so on (see [`ModuleRef::retry`](crate::ModuleRef::retry)); 1 in a skip condition.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobpool::{Context, Dag, Pool, Retry, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("third-time-lucky", 1, [|ctx: &Context| -> TaskResult<u32> {
    ///     if ctx.attempt() < 3 { Err("not yet".into()) } else { Ok(ctx.attempt()) }
    /// }])?
    /// .retry(Retry::attempts(3).backoff(Duration::from_millis(1), 1.0, Duration::from_millis(1)));
    /// assert_eq!(dag.run(&Pool::new(1))?.output::<u32>("third-time-lucky")?, [3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the module's timeout ends in this run ([`ModuleRef::timeout`](crate::ModuleRef::timeout)),
    /// if it has one; `None` in a skip condition. A running task is never stopped from outside:
    /// a long task that wants to honour its module's timeout looks here between steps.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("bounded", 1, [|ctx: &Context| -> TaskResult<bool> {
    ///     Ok(ctx.deadline().is_some_and(|d| d > Instant::now()))
    /// }])?
    /// .timeout(Duration::from_secs(60));
    /// assert_eq!(dag.run(&Pool::new(1))?.output::<bool>("bounded")?, [true]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dependencies: Vec<&str> = self
            .inputs
            .dependencies
            .iter()
            .map(|(name, _)| &**name)
            .collect();
        f.debug_struct("Context")
            .field("module", &self.module())
            .field("task", &self.task)
            .field("attempt", &self.attempt)
            .field("dependencies", &dependencies)
            .finish()
    }
}
