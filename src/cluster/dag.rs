//! A graph's module whose tasks run on the cluster: [`Dag::remote_module`].
//!
//! # How a remote module runs
//!
//! To the graph's driver a remote module is a module like any other (its `ModuleTasks` face):
//! it is started when its last dependency ends, and it ends when the callback it was handed
//! is called, once. What it does in between:
//!
//! 1. **Launch**, a job of one task on the run's pool, with the module's job options (its
//!    retry policy, limits, priority, timeout): the task reads the dependencies' outputs, makes
//!    the arguments, and submits the remote job. A failure or panic here is the module's, as
//!    a local task's would be.
//! 2. **Wait**, on a thread of its own, not on the pool: no worker is held while the remote
//!    job runs. (Not on the client's runtime either: the submitter's last handle may be let go
//!    there, which shuts that runtime down.) When every remote task has its
//!    result, the module ends: done with the outputs in argument order, failed with each
//!    remote failure, or cancelled.
//!
//! Cancelling the module (fail-fast elsewhere in the graph) cancels whichever step it is in:
//! the launch job, or the remote job. A cancel that comes while the launch task is submitting
//! is seen when the launch ends, which then cancels the remote job it made.

use std::any::type_name;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{RemoteJob, Submitter, TaskType};
use crate::dag::context::{Context, Inputs};
use crate::dag::control::JobControl;
use crate::dag::tasks::{ConcurrencyProbe, JobOutcome, ModuleTasks, OnJobEnd, TaskResult};
use crate::job::Cancel;
use crate::{
    Canceller, Dag, DagError, Failure, GaveUp, ModuleRef, Pool, SubmitErrorKind, TaskError,
    TaskFailure,
};

/// Makes a remote module's arguments from its [`Context`].
type Arguments<A> = Arc<dyn Fn(&Context) -> TaskResult<Vec<A>> + Send + Sync>;

impl Dag {
    /// Adds a module whose tasks run on the cluster (feature `cluster`): when its last
    /// dependency ends, `arguments` is called with the module's [`Context`] (to read the
    /// dependencies' outputs), and its result is submitted through `submitter` as a job of
    /// `task_type`, one task per argument, of which at most `cap` run at once across the
    /// cluster. The module's output, which its dependents read with [`Context::output`], is
    /// the tasks' outputs in the order of the arguments.
    ///
    /// No thread of the run's pool waits for the remote job: `arguments` and the submission
    /// run as one task on the pool, then a thread of its own waits. The
    /// module's job options ([`ModuleRef::retry`], limits, priority, timeout) apply to that
    /// first task; the remote tasks retry by their task type's policy
    /// ([`TaskTypes::register_with_retry`](super::TaskTypes::register_with_retry)) and take
    /// the module's priority. A remote task that fails for good is
    /// [`Failure::TaskError`] of the module, at the task's index, with the
    /// [`RemoteFailure`](super::RemoteFailure) as the [`TaskFailure`]'s error; a broker error is one failure at
    /// index 0. In the report the module counts as one task.
    ///
    /// # Errors
    ///
    /// As [`Dag::module`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use jobpool::cluster::{Broker, Submitter, TaskTypes, Worker};
    /// use jobpool::{Context, Dag, Pool};
    ///
    /// let mut types = TaskTypes::new();
    /// let square = types.register("square", |x: u64| Ok(x * x));
    /// let broker = Broker::new("nats://127.0.0.1:4222");
    /// let _worker = Worker::start(&broker, types, 4)?; // usually in other processes
    /// let submitter = Submitter::connect(&broker)?;
    ///
    /// let mut dag = Dag::new();
    /// dag.remote_module("squares", &submitter, &square, 4, |_: &Context| Ok((1..=10u64).collect()))?;
    /// dag.remote_module("squares again", &submitter, &square, 4, |cx: &Context| {
    ///     Ok(cx.output::<u64>("squares")?.to_vec())
    /// })?
    /// .after(["squares"])?;
    /// let report = dag.run(&Pool::new(2))?;
    /// assert_eq!(report.output::<u64>("squares again").unwrap()[1], 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remote_module<N, A, O, F>(
        &mut self,
        name: N,
        submitter: &Submitter,
        task_type: &TaskType<A, O>,
        cap: usize,
        arguments: F,
    ) -> Result<ModuleRef<'_>, DagError>
    where
        N: Into<String>,
        A: Serialize + Send + Sync + 'static,
        O: DeserializeOwned + Send + Sync + 'static,
        F: Fn(&Context) -> TaskResult<Vec<A>> + Send + Sync + 'static,
    {
        let tasks = RemoteTasks {
            submitter: submitter.clone(),
            task_type: task_type.clone(),
            arguments: Arc::new(arguments),
        };
        self.add_module(name.into(), cap, Arc::new(tasks))
    }
}

/// A remote module's tasks: how to make its arguments, and where to send them.
struct RemoteTasks<A, O> {
    submitter: Submitter,
    task_type: TaskType<A, O>,
    arguments: Arguments<A>,
}

impl<A, O> ModuleTasks for RemoteTasks<A, O>
where
    A: Serialize + Send + Sync + 'static,
    O: DeserializeOwned + Send + Sync + 'static,
{
    fn len(&self) -> usize {
        1
    }

    fn output_type(&self) -> &'static str {
        type_name::<O>()
    }

    fn submit(
        &self,
        pool: &Pool,
        cap: usize,
        control: &JobControl,
        stage: (u64, bool),
        inputs: Arc<Inputs>,
        _probe: Arc<ConcurrencyProbe>,
        on_end: OnJobEnd,
    ) -> Result<Canceller, SubmitErrorKind> {
        let step = Arc::new(RemoteStep {
            state: Mutex::new(Step::Launching(None)),
        });
        let name = format!("{} (launch)", inputs.module);
        let launch = {
            let (submitter, task_type) = (self.submitter.clone(), self.task_type.clone());
            let arguments = self.arguments.clone();
            let priority = control.priority;
            move |cx: &crate::TaskContext<'_>| -> TaskResult<RemoteJob<O>> {
                let context = Context::for_attempt(inputs.clone(), 0, cx);
                let arguments = arguments(&context)?;
                Ok(submitter.submit_with_priority(&task_type, arguments, cap, priority)?)
            }
        };
        let job = pool.job().name(name);
        let job = control.apply(job.cap(1).run_stage(stage));
        let submitted = match &control.retry {
            Some(retry) => job.retry(retry.clone()).try_submit_fallible([launch]),
            None => job.try_submit_fallible([launch]),
        };
        let handle = submitted.map_err(|err| err.kind())?;
        {
            // (Nothing can cancel before this returns the canceller; kept exact all the same.)
            let mut state = step.state.lock();
            if matches!(*state, Step::Launching(None)) {
                *state = Step::Launching(Some(handle.canceller()));
            }
        }
        let timeout = control.timeout;
        let ended = step.clone();
        handle.on_finish(move |results| {
            let launched = match results {
                Ok(mut jobs) => jobs.pop().ok_or(TaskError::Cancelled),
                Err(err) => err
                    .into_results()
                    .pop()
                    .unwrap_or(Err(TaskError::Cancelled)),
            };
            let remote = match launched {
                Ok(remote) => Arc::new(remote),
                Err(error) => return on_end(launch_failed(error, timeout)),
            };
            let cancelled = {
                let mut state = ended.state.lock();
                let cancelled = matches!(*state, Step::Cancelled);
                *state = Step::Remote(remote.clone());
                cancelled
            };
            if cancelled {
                let _ = remote.cancel();
            }
            // On a thread of its own, not one of the client's runtime: if the submitter's last
            // handle goes with `remote`, its runtime shuts down there.
            let on_end = Arc::new(Mutex::new(Some(on_end)));
            let waiter = on_end.clone();
            let waiting = std::thread::Builder::new()
                .name("jobpool-remote-module".to_owned())
                .spawn(move || {
                    let outcome = remote_outcome(&remote);
                    if let Some(on_end) = waiter.lock().take() {
                        on_end(outcome);
                    }
                });
            if let Err(error) = waiting {
                // No thread to wait on: the module fails, saying why (its remote job runs on).
                if let Some(on_end) = on_end.lock().take() {
                    let why = format!("cannot start a thread to wait for the remote job: {error}");
                    on_end(JobOutcome::Failed(vec![Failure::TaskError {
                        task: 0,
                        error: Box::new(TaskFailure::new(why.into(), 1, GaveUp::AttemptsUsedUp)),
                    }]));
                }
            }
        });
        Ok(Canceller::of(step))
    }
}

/// Where a remote module is, for its canceller.
struct RemoteStep<O> {
    state: Mutex<Step<O>>,
}

enum Step<O> {
    /// The launch job is on the pool (its canceller, once submitted).
    Launching(Option<Canceller>),
    /// Cancelled while launching: the remote job, once made, is cancelled.
    Cancelled,
    /// The remote job runs.
    Remote(Arc<RemoteJob<O>>),
}

impl<O: DeserializeOwned + Send + Sync + 'static> Cancel for RemoteStep<O> {
    fn cancel(self: Arc<Self>) {
        let mut state = self.state.lock();
        match &*state {
            Step::Launching(launch) => {
                let launch = launch.clone();
                *state = Step::Cancelled;
                drop(state);
                if let Some(launch) = launch {
                    launch.cancel();
                }
            }
            Step::Cancelled => {}
            Step::Remote(remote) => {
                let remote = remote.clone();
                drop(state);
                let _ = remote.cancel();
            }
        }
    }

    fn help(self: Arc<Self>) -> bool {
        let launch = match &*self.state.lock() {
            Step::Launching(Some(launch)) => launch.clone(),
            _ => return false,
        };
        launch.help()
    }
}

/// The module's outcome when its launch did not submit a remote job.
fn launch_failed(error: TaskError, timeout: Option<std::time::Duration>) -> JobOutcome {
    match error {
        TaskError::Failed(failure) => JobOutcome::Failed(vec![Failure::TaskError {
            task: 0,
            error: Box::new(failure),
        }]),
        TaskError::Panicked(message) => {
            JobOutcome::Failed(vec![Failure::TaskPanicked { task: 0, message }])
        }
        TaskError::TimedOut => JobOutcome::Failed(vec![Failure::TimedOut {
            tasks: vec![0],
            timeout: timeout.unwrap_or_default(),
        }]),
        _ => JobOutcome::Cancelled,
    }
}

/// Waits for the remote job, and sorts its results into the module's outcome.
fn remote_outcome<O: DeserializeOwned + Send + Sync + 'static>(
    remote: &RemoteJob<O>,
) -> JobOutcome {
    let results = match remote.wait() {
        Ok(results) => results,
        Err(error) => {
            let failure = TaskFailure::new(Box::new(error), 1, GaveUp::AttemptsUsedUp);
            return JobOutcome::Failed(vec![Failure::TaskError {
                task: 0,
                error: Box::new(failure),
            }]);
        }
    };
    let mut outputs = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    let mut cancelled = false;
    for (task, result) in results.into_iter().enumerate() {
        match result {
            Ok(output) => outputs.push(output),
            Err(failure) if failure.is_cancelled() => cancelled = true,
            Err(failure) => {
                let attempts = u32::try_from(failure.attempt()).unwrap_or(u32::MAX).max(1);
                let failure = TaskFailure::new(Box::new(failure), attempts, GaveUp::AttemptsUsedUp);
                failures.push(Failure::TaskError {
                    task,
                    error: Box::new(failure),
                });
            }
        }
    }
    if !failures.is_empty() {
        JobOutcome::Failed(failures)
    } else if cancelled {
        JobOutcome::Cancelled
    } else {
        JobOutcome::Done(Arc::new(outputs))
    }
}
