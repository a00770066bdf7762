//! What can be wrong with a graph before it runs, and with a task's request for an input.

use std::error::Error;
use std::fmt;

/// Why a [`Dag`](crate::Dag) cannot be built or run: found before any task runs.
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, DagError, TaskResult};
///
/// let mut dag = Dag::new();
/// dag.module("a", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
/// let err = dag.module("a", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }]).unwrap_err();
/// assert_eq!(err, DagError::DuplicateModule { name: "a".into() });
/// assert_eq!(err.to_string(), "there is already a module named `a`");
/// # Ok::<(), DagError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DagError {
    /// Two modules were given the same name.
    DuplicateModule {
        /// The name given twice.
        name: String,
    },
    /// A module was given a cap of 0: none of its tasks could ever run.
    ZeroCap {
        /// The module.
        module: String,
    },
    /// A module was made to depend on itself (the shortest cycle, `a -> a`).
    SelfDependency {
        /// The module.
        module: String,
    },
    /// A module depends on a name that no module of the graph has.
    UnknownDependency {
        /// The module that names the dependency.
        module: String,
        /// The name no module has.
        dependency: String,
    },
    /// [`after`](crate::ModuleRef::after) or [`Dag::after`](crate::Dag::after) named a module
    /// that is not in the graph (as the dependent, not the dependency).
    UnknownModule {
        /// The name no module has.
        name: String,
    },
    /// The dependencies form a cycle, so no module of it could ever start.
    Cycle {
        /// The modules of the cycle in order, each depending on the next; the first is repeated
        /// at the end (`["a", "b", "c", "a"]`: a depends on b, b on c, c on a). It starts at the
        /// member of the cycle that was added to the graph first.
        path: Vec<String>,
    },
}

impl fmt::Display for DagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DagError::DuplicateModule { name } => {
                write!(f, "there is already a module named `{name}`")
            }
            DagError::ZeroCap { module } => write!(
                f,
                "module `{module}` has a cap of 0, so none of its tasks could ever run"
            ),
            DagError::SelfDependency { module } => {
                write!(
                    f,
                    "module `{module}` depends on itself ({module} -> {module})"
                )
            }
            DagError::UnknownDependency { module, dependency } => write!(
                f,
                "module `{module}` depends on `{dependency}`, but no module has that name"
            ),
            DagError::UnknownModule { name } => write!(f, "no module is named `{name}`"),
            DagError::Cycle { path } => write!(
                f,
                "the dependencies form a cycle ({}); `a -> b` reads `a` depends on `b`",
                path.join(" -> ")
            ),
        }
    }
}

impl Error for DagError {}

/// Why a task could not have the output it asked its [`Context`](crate::Context) (or a
/// [`RunReport`](crate::RunReport)) for.
///
/// A task can pass it on with `?`: the module then fails with this message.
///
/// # Examples
///
/// ```
/// use jobpool::{Context, Dag, OutputError, Pool, TaskResult};
///
/// let mut dag = Dag::new();
/// dag.module("count", 1, [|_: &Context| -> TaskResult<u32> { Ok(3) }])?;
/// dag.module("use", 1, [|ctx: &Context| -> TaskResult<()> {
///     let err = ctx.output::<String>("count").unwrap_err();
///     assert!(matches!(err, OutputError::WrongType { .. }));
///     let err = ctx.output::<u32>("nothing").unwrap_err();
///     assert!(matches!(err, OutputError::NotADependency { .. }));
///     Ok(())
/// }])?.after(["count"])?;
/// assert!(dag.run(&Pool::new(1))?.is_success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputError {
    /// The module asked for is not a dependency of the asking module (or, for a report, not a
    /// module of the graph). Only a dependency is certain to have finished.
    NotADependency {
        /// The module whose task asked (empty for a report).
        module: String,
        /// The module asked for.
        requested: String,
    },
    /// The module's tasks produce another type than the one asked for.
    WrongType {
        /// The module asked for.
        module: String,
        /// The type asked for.
        requested: &'static str,
        /// The type its tasks produce.
        actual: &'static str,
    },
    /// The module was skipped by its condition, or did not finish, so it has no output.
    NoOutput {
        /// The module asked for.
        module: String,
    },
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::NotADependency { module, requested } if module.is_empty() => {
                write!(f, "no module is named `{requested}`")
            }
            OutputError::NotADependency { module, requested } => write!(
                f,
                "module `{module}` asked for the output of `{requested}`, which is not one of its dependencies"
            ),
            OutputError::WrongType {
                module,
                requested,
                actual,
            } => write!(
                f,
                "the tasks of `{module}` produce `{actual}`, not `{requested}`"
            ),
            OutputError::NoOutput { module } => {
                write!(f, "module `{module}` was skipped or did not finish, so it has no output")
            }
        }
    }
}

impl Error for OutputError {}
