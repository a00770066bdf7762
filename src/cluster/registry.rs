//! Task types: named functions from a serializable argument to a serializable output, shared by
//! the submitters and the workers of a cluster.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Retry;

/// A task's error, as a task type's function returns it.
pub type RemoteTaskError = Box<dyn Error + Send + Sync>;

/// How one attempt of a task ended, on a worker.
pub(crate) enum Attempt {
    /// The output, serialized.
    Done(Vec<u8>),
    /// The function returned an error.
    Failed(RemoteTaskError),
    /// The argument did not deserialize, or the output did not serialize: not worth a retry.
    Unusable(String),
}

/// Runs one attempt of a task from its serialized argument.
pub(crate) type RunAttempt = Box<dyn Fn(&[u8]) -> Attempt + Send + Sync>;

/// A task type with its types erased: what a worker runs.
pub(crate) struct ErasedType {
    pub(crate) run: RunAttempt,
    pub(crate) retry: Option<Retry>,
    /// The names of its argument and output types.
    pub(crate) types: (&'static str, &'static str),
}

/// The task types a cluster's processes know, by name: register the same ones, under the same
/// names and types, in the submitters and the workers (the usual way: one function that builds
/// them, in a crate both use).
///
/// # Examples
///
/// ```
/// use jobpool::cluster::TaskTypes;
///
/// let mut types = TaskTypes::new();
/// let square = types.register("square", |x: u64| Ok(x * x));
/// assert_eq!(square.name(), "square");
/// assert!(types.contains("square"));
/// ```
#[derive(Clone, Default)]
pub struct TaskTypes {
    types: HashMap<String, Arc<ErasedType>>,
}

impl TaskTypes {
    /// No task type.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::TaskTypes;
    ///
    /// let types = TaskTypes::new();
    /// assert!(!types.contains("square"));
    /// ```
    pub fn new() -> TaskTypes {
        TaskTypes::default()
    }

    /// Registers `task` as the task type `name`, and returns the handle a submitter submits it
    /// with. A task that returns an error fails for good; see
    /// [`register_with_retry`](Self::register_with_retry).
    ///
    /// # Panics
    ///
    /// If a task type of that name is registered already.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::TaskTypes;
    ///
    /// let mut types = TaskTypes::new();
    /// // Any error the function returns is the task's failure: here, a number that does not parse.
    /// let parse = types.register("parse", |s: String| Ok(s.trim().parse::<u64>()?));
    /// assert_eq!(parse.name(), "parse");
    /// assert!(types.contains("parse"));
    /// ```
    pub fn register<A, O, F>(&mut self, name: &str, task: F) -> TaskType<A, O>
    where
        A: Serialize + DeserializeOwned + 'static,
        O: Serialize + DeserializeOwned + 'static,
        F: Fn(A) -> Result<O, RemoteTaskError> + Send + Sync + 'static,
    {
        self.insert(name, task, None)
    }

    /// Registers `task` as the task type `name`, retried under `retry` on whichever worker
    /// pulls it next: the delay between attempts is spent on the broker, not on a worker.
    ///
    /// # Panics
    ///
    /// If a task type of that name is registered already.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{cluster::TaskTypes, Retry};
    ///
    /// let mut types = TaskTypes::new();
    /// types.register_with_retry("fetch", Retry::attempts(3), |url: String| Ok(url.len()));
    /// ```
    pub fn register_with_retry<A, O, F>(
        &mut self,
        name: &str,
        retry: Retry,
        task: F,
    ) -> TaskType<A, O>
    where
        A: Serialize + DeserializeOwned + 'static,
        O: Serialize + DeserializeOwned + 'static,
        F: Fn(A) -> Result<O, RemoteTaskError> + Send + Sync + 'static,
    {
        self.insert(name, task, Some(retry))
    }

    fn insert<A, O, F>(&mut self, name: &str, task: F, retry: Option<Retry>) -> TaskType<A, O>
    where
        A: Serialize + DeserializeOwned + 'static,
        O: Serialize + DeserializeOwned + 'static,
        F: Fn(A) -> Result<O, RemoteTaskError> + Send + Sync + 'static,
    {
        assert!(
            !self.types.contains_key(name),
            "TaskTypes::register: a task type named `{name}` is registered already"
        );
        let run = move |argument: &[u8]| -> Attempt {
            let argument: A = match postcard::take_from_bytes(argument) {
                Ok((argument, [])) => argument,
                Ok((_, rest)) => {
                    return Attempt::Unusable(format!(
                        "the argument does not deserialize: {} bytes left over",
                        rest.len()
                    ))
                }
                Err(err) => {
                    return Attempt::Unusable(format!("the argument does not deserialize: {err}"))
                }
            };
            match task(argument) {
                Ok(output) => match postcard::to_stdvec(&output) {
                    Ok(bytes) => Attempt::Done(bytes),
                    Err(err) => Attempt::Unusable(format!("the output does not serialize: {err}")),
                },
                Err(err) => Attempt::Failed(err),
            }
        };
        let erased = ErasedType {
            run: Box::new(run),
            retry,
            types: type_names::<A, O>(),
        };
        self.types.insert(name.to_owned(), Arc::new(erased));
        TaskType {
            name: name.into(),
            types: PhantomData,
        }
    }

    /// Whether a task type named `name` is registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::TaskTypes;
    ///
    /// let mut types = TaskTypes::new();
    /// types.register("square", |x: u64| Ok(x * x));
    /// assert!(types.contains("square"));
    /// assert!(!types.contains("cube"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<ErasedType>> {
        self.types.get(name).cloned()
    }
}

impl fmt::Debug for TaskTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.types.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("TaskTypes").field("names", &names).finish()
    }
}

/// A registered task type, from argument `A` to output `O`: what a submitter submits.
///
/// # Examples
///
/// ```
/// use jobpool::cluster::TaskTypes;
///
/// let mut types = TaskTypes::new();
/// let len = types.register("len", |s: String| Ok(s.len()));
/// assert_eq!(len.name(), "len");
/// ```
pub struct TaskType<A, O> {
    name: Arc<str>,
    types: PhantomData<fn(A) -> O>,
}

impl<A, O> TaskType<A, O> {
    /// The task type's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::TaskTypes;
    ///
    /// let mut types = TaskTypes::new();
    /// let square = types.register("square", |x: u64| Ok(x * x));
    /// assert_eq!(square.name(), "square");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names of its argument and output types.
    pub(crate) fn type_names(&self) -> (&'static str, &'static str) {
        type_names::<A, O>()
    }
}

/// The names of a task type's argument and output types.
fn type_names<A, O>() -> (&'static str, &'static str) {
    (std::any::type_name::<A>(), std::any::type_name::<O>())
}

impl<A, O> Clone for TaskType<A, O> {
    fn clone(&self) -> Self {
        TaskType {
            name: self.name.clone(),
            types: PhantomData,
        }
    }
}

impl<A, O> fmt::Debug for TaskType<A, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskType").field(&self.name).finish()
    }
}
