//! A worker process's side: pulling tasks from the jobs' consumers and running them on a local
//! pool; see `README.md` beside this file for the protocol.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, AckKind};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::protocol::{self, JobRecord, ResultMessage, TaskMessage, PULL_EXPIRES, UNANSWERED};
use super::registry::{Attempt, ErasedType};
use super::{runtime, Broker, ClusterError, TaskTypes};
use crate::job::retry::Decision;
use crate::{Pool, TaskError};

/// The largest result a worker publishes; a larger one is replaced by an error that says so
/// (the server's default maximum payload is 1 MiB).
const MAX_RESULT: usize = 900 * 1024;

/// How long a worker with nothing to do waits before it looks again at its jobs' consumers
/// (sooner if a job is submitted or a task of its own ends).
const IDLE_LOOK: Duration = Duration::from_millis(20);

/// How much work a worker holds per thread, for a job of short tasks: from the time its last
/// task here took, it pulls that many of its tasks per thread (up to [`PULL_AHEAD`]), so that
/// its threads do not wait for a round trip to the broker between two tasks. A job whose
/// tasks take longer gets one task per thread.
const WORK_AHEAD: Duration = Duration::from_millis(1);

/// The most tasks of a job a worker holds per thread.
const PULL_AHEAD: usize = 32;

/// A process's worker: runs the tasks of the task types it knows, on a local pool, as the
/// broker hands them out; see the [module docs](super).
///
/// # Examples
///
/// ```no_run
/// use jobpool::cluster::{Broker, TaskTypes, Worker};
///
/// let mut types = TaskTypes::new();
/// types.register("square", |x: u64| Ok(x * x));
/// let worker = Worker::start(&Broker::new("nats://127.0.0.1:4222"), types, 8)?;
/// worker.run_until_signal()?; // until SIGTERM or Ctrl-C, then finishes what it holds
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Worker {
    runtime: tokio::runtime::Runtime,
    state: Arc<WorkerState>,
    main: Option<tokio::task::JoinHandle<Result<(), ClusterError>>>,
}

/// What the worker's loops share.
struct WorkerState {
    js: jetstream::Context,
    types: TaskTypes,
    pool: Pool,
    threads: usize,
    ack_wait: Duration,
    /// Where answers run (the worker's runtime).
    runtime: tokio::runtime::Handle,
    /// The jobs it knows, by id.
    jobs: Mutex<HashMap<String, JobRecord>>,
    /// How long the last task of each job took here (see [`WORK_AHEAD`]).
    took: Mutex<HashMap<String, Duration>>,
    /// Tasks fetched whose attempt has not ended.
    running: AtomicUsize,
    /// Tasks whose attempt ended, and whose answer to the broker is not done.
    answering: AtomicUsize,
    /// Stop fetching (then finish what it holds).
    stopping: AtomicBool,
    /// Something changed: a job, or a task ended.
    changed: Notify,
    /// A job record was read (for whoever waits on a job's request now).
    record_seen: Notify,
    /// Tasks run, for the caller.
    ran: AtomicUsize,
}

/// A task fetched, with how its attempt ended.
struct Ended {
    message: jetstream::Message,
    job: String,
    index: u64,
    attempt: u64,
    outcome: Result<Attempt, TaskError>,
    task_type: Arc<ErasedType>,
}

impl Worker {
    /// Connects to `broker`, starts a local pool of `threads` threads, and starts running the
    /// tasks of the task types in `types`. It runs until [`stop`](Self::stop) or, with
    /// [`run_until_signal`](Self::run_until_signal), until the process is told to stop.
    ///
    /// # Errors
    ///
    /// As [`Submitter::connect`](super::Submitter::connect).
    ///
    /// # Panics
    ///
    /// If `threads` is 0.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use jobpool::cluster::{Broker, TaskTypes, Worker};
    ///
    /// let mut types = TaskTypes::new();
    /// types.register("square", |x: u64| Ok(x * x));
    /// let threads = std::thread::available_parallelism()?.get();
    /// let worker = Worker::start(&Broker::new("nats://127.0.0.1:4222"), types, threads)?;
    /// // It runs tasks in the background until stopped (or dropped).
    /// let ran = worker.stop()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(
        broker: &Broker,
        types: TaskTypes,
        threads: usize,
    ) -> Result<Worker, ClusterError> {
        assert!(
            threads > 0,
            "Worker::start: a worker needs at least one thread"
        );
        let runtime = runtime()?;
        let js = runtime.block_on(broker.connect())?;
        let state = Arc::new(WorkerState {
            js,
            types,
            pool: Pool::new(threads),
            threads,
            ack_wait: broker.ack_wait,
            runtime: runtime.handle().clone(),
            jobs: Mutex::new(HashMap::new()),
            took: Mutex::new(HashMap::new()),
            running: AtomicUsize::new(0),
            answering: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            changed: Notify::new(),
            record_seen: Notify::new(),
            ran: AtomicUsize::new(0),
        });
        let main = runtime.spawn(state.clone().main());
        Ok(Worker {
            runtime,
            state,
            main: Some(main),
        })
    }

    /// Blocks until the process gets SIGTERM or SIGINT (Ctrl-C), then stops as
    /// [`stop`](Self::stop) does: nothing it holds is dropped.
    ///
    /// # Errors
    ///
    /// As [`stop`](Self::stop).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use jobpool::cluster::{Broker, TaskTypes, Worker};
    /// # let mut types = TaskTypes::new();
    /// # types.register("square", |x: u64| Ok(x * x));
    /// let worker = Worker::start(&Broker::new("nats://127.0.0.1:4222"), types, 8)?;
    /// let ran = worker.run_until_signal()?; // blocks until SIGTERM or Ctrl-C
    /// println!("stopped after {ran} tasks");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_until_signal(self) -> Result<usize, ClusterError> {
        self.runtime.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let mut terminate = signal(SignalKind::terminate())
                    .map_err(|err| ClusterError::Connect(format!("cannot watch SIGTERM: {err}")))?;
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
            Ok::<(), ClusterError>(())
        })?;
        self.stop()
    }

    /// Stops taking tasks, finishes the tasks it holds and reports their results, and returns
    /// how many tasks it ran.
    ///
    /// # Errors
    ///
    /// The broker's error that ended the worker's loop early, if one did.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use jobpool::cluster::{Broker, Submitter, TaskTypes, Worker};
    ///
    /// let mut types = TaskTypes::new();
    /// let square = types.register("square", |x: u64| Ok(x * x));
    /// let broker = Broker::new("nats://127.0.0.1:4222");
    /// let worker = Worker::start(&broker, types, 4)?;
    /// Submitter::connect(&broker)?.submit(&square, 0..10u64, 4)?.wait()?;
    /// let ran = worker.stop()?; // other workers may have run some of the 10
    /// println!("this worker ran {ran} tasks");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(mut self) -> Result<usize, ClusterError> {
        self.state.stopping.store(true, Relaxed);
        self.state.changed.notify_one();
        let ended = match self.main.take() {
            Some(main) => self.runtime.block_on(main).unwrap_or_else(|err| {
                Err(ClusterError::Broker(format!("the worker failed: {err}")))
            }),
            None => Ok(()),
        };
        ended.map(|()| self.state.ran.load(Relaxed))
    }

    /// How many tasks it has run so far.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use jobpool::cluster::{Broker, Submitter, TaskTypes, Worker};
    /// # let mut types = TaskTypes::new();
    /// # let square = types.register("square", |x: u64| Ok(x * x));
    /// # let broker = Broker::new("nats://127.0.0.1:4222");
    /// let worker = Worker::start(&broker, types, 4)?;
    /// Submitter::connect(&broker)?.submit(&square, 0..10u64, 4)?.wait()?;
    /// println!("{} tasks run here so far", worker.tasks_run());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tasks_run(&self) -> usize {
        self.state.ran.load(Relaxed)
    }
}

impl Drop for Worker {
    /// Stops as [`stop`](Self::stop) does, if it was not stopped: a worker dropped finishes
    /// and reports the tasks it holds.
    fn drop(&mut self) {
        if let Some(main) = self.main.take() {
            self.state.stopping.store(true, Relaxed);
            self.state.changed.notify_one();
            let _ = self.runtime.block_on(main);
        }
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("threads", &self.state.threads)
            .field("tasks_run", &self.tasks_run())
            .finish()
    }
}

impl WorkerState {
    /// Follows the jobs and fetches tasks until told to stop and nothing is running or being
    /// answered. (Each task's answer is sent by the task's end, see [`start`](Self::start).)
    async fn main(self: Arc<Self>) -> Result<(), ClusterError> {
        let follower = tokio::spawn(self.clone().follow_jobs());
        let mut consumers: HashMap<String, consumer::PullConsumer> = HashMap::new();
        let mut last_heartbeat = tokio::time::Instant::now();
        let mut held: Vec<(jetstream::Message, Arc<AtomicBool>)> = Vec::new();
        loop {
            held.retain(|(_, done)| !done.load(Relaxed));
            if last_heartbeat.elapsed() >= self.ack_wait / 3 {
                // Still at it: the broker restarts the ack wait of each task held.
                last_heartbeat = tokio::time::Instant::now();
                for (message, _) in &held {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
            let stopping = self.stopping.load(Relaxed);
            if stopping && self.running.load(Relaxed) == 0 && self.answering.load(Relaxed) == 0 {
                break;
            }
            let fetched = if stopping {
                0
            } else {
                self.fetch(&mut consumers, &mut held).await
            };
            if fetched == 0 {
                tokio::select! {
                    _ = self.changed.notified() => {}
                    _ = tokio::time::sleep(IDLE_LOOK) => {}
                }
            }
        }
        follower.abort();
        Ok(())
    }

    /// Reads the job records from the start, and keeps `jobs` up to date.
    async fn follow_jobs(self: Arc<Self>) -> Result<(), ClusterError> {
        let stream = protocol::stream(&self.js, protocol::JOBS).await?;
        let mut records = stream
            .create_consumer(consumer::pull::OrderedConfig::default())
            .await
            .map_err(|err| ClusterError::Broker(err.to_string()))?
            .messages()
            .await
            .map_err(|err| ClusterError::Broker(err.to_string()))?;
        while let Some(message) = records.next().await {
            let Ok(message) = message else { continue };
            // A record that does not decode is not a job this version knows: skip it.
            let Ok(record) = protocol::decode::<JobRecord>(&message.payload) else {
                continue;
            };
            self.jobs.lock().insert(record.id.clone(), record);
            self.changed.notify_one();
            self.record_seen.notify_waiters();
        }
        Ok(())
    }

    /// Fetches tasks from the jobs' consumers, highest priority and oldest job first, and
    /// starts them on the pool; returns how many it fetched. It fetches while it holds fewer
    /// tasks than it has threads, or, for a job of short tasks, fewer than [`WORK_AHEAD`]'s
    /// worth per thread (the pool queues them).
    async fn fetch(
        self: &Arc<Self>,
        consumers: &mut HashMap<String, consumer::PullConsumer>,
        held: &mut Vec<(jetstream::Message, Arc<AtomicBool>)>,
    ) -> usize {
        let mut jobs: Vec<JobRecord> = {
            let mut known = self.jobs.lock();
            // Forget the jobs that ended, so that a long-lived worker keeps only live ones.
            known.retain(|_, job| !job.cancelled && !job.done);
            known.values().cloned().collect()
        };
        jobs.sort_by_key(|job| (-job.priority, job.submitted_ms));
        // And their consumers and task times.
        let live: std::collections::HashSet<&str> = jobs.iter().map(|job| &*job.id).collect();
        consumers.retain(|id, _| live.contains(&**id));
        self.took.lock().retain(|id, _| live.contains(&**id));
        let mut fetched = 0;
        for job in jobs {
            let took = self.took.lock().get(&job.id).copied();
            let per_thread = took.map_or(1, |took| {
                (WORK_AHEAD.as_nanos() / took.as_nanos().max(1)).clamp(1, PULL_AHEAD as u128)
                    as usize
            });
            let free = (self.threads * per_thread).saturating_sub(self.running.load(Relaxed));
            if free == 0 {
                continue;
            }
            let consumer = match consumers.get(&job.id) {
                Some(consumer) => consumer.clone(),
                None => {
                    let Ok(consumer) = self
                        .js
                        .get_consumer_from_stream::<consumer::pull::Config, _, _>(
                            protocol::consumer_name(&job.id),
                            protocol::TASKS,
                        )
                        .await
                    else {
                        // Gone (the job ended and was cleaned up): forget the job.
                        self.jobs.lock().remove(&job.id);
                        self.took.lock().remove(&job.id);
                        continue;
                    };
                    consumers.insert(job.id.clone(), consumer.clone());
                    consumer
                }
            };
            // A request the server ends after `PULL_EXPIRES` at the latest: with the job at its
            // cap, the server holds a request until a task of it is acknowledged.
            let request = consumer.batch().max_messages(free).expires(PULL_EXPIRES);
            let Ok(mut batch) = request.messages().await else {
                // The consumer is gone (the job ended): look it up again next time, and
                // forget the job then.
                consumers.remove(&job.id);
                continue;
            };
            // Bounded here too: a request to a consumer deleted meanwhile gets no answer. Then
            // look the consumer up again next time (and forget the job if it is gone).
            let deadline = tokio::time::Instant::now() + UNANSWERED;
            loop {
                // A record that comes meanwhile may end the job: then give the request up
                // rather than keep a new job waiting (see the protocol for why that is safe).
                let record = self.record_seen.notified();
                let next = tokio::select! {
                    next = tokio::time::timeout_at(deadline, batch.next()) => next,
                    _ = record => {
                        if !self.jobs.lock().get(&job.id).is_some_and(|j| !j.done && !j.cancelled) {
                            break;
                        }
                        continue;
                    }
                };
                let Ok(next) = next else {
                    consumers.remove(&job.id);
                    break;
                };
                let Some(message) = next else { break };
                let Ok(message) = message else { continue };
                fetched += 1;
                let done = Arc::new(AtomicBool::new(false));
                held.push((message.clone(), done.clone()));
                self.start(job.clone(), message, done);
            }
        }
        fetched
    }

    /// Runs one fetched task on the pool; its end sends its answer (see
    /// [`answer`](Self::answer)) from the worker's runtime. A task that cannot run is answered
    /// at once.
    fn start(self: &Arc<Self>, job: JobRecord, message: jetstream::Message, done: Arc<AtomicBool>) {
        let attempt = message
            .info()
            .map_or(1, |info| info.delivered.max(1) as u64);
        let task: Result<TaskMessage, _> = protocol::decode(&message.payload);
        let unusable = |message, index, task_type, why: String| {
            done.store(true, Relaxed);
            self.answer_later(Ended {
                message,
                job: job.id.clone(),
                index,
                attempt,
                outcome: Ok(Attempt::Unusable(why)),
                task_type,
            });
        };
        let Some(task_type) = self.types.get(&job.task_type) else {
            let unknown = Arc::new(ErasedType {
                run: Box::new(|_: &[u8]| Attempt::Unusable(String::new())),
                retry: None,
                types: ("", ""),
            });
            let why = format!(
                "no task type `{}` is registered in this worker",
                job.task_type
            );
            let index = task.as_ref().map_or(u64::MAX, |t| t.index);
            return unusable(message, index, unknown, why);
        };
        let (argument_type, output_type) = task_type.types;
        if job.types.0 != argument_type || job.types.1 != output_type {
            let why = format!(
                "the task type `{}` takes `{argument_type}` and gives `{output_type}` in this \
                 worker, but the job was submitted for `{}` to `{}`",
                job.task_type, job.types.0, job.types.1
            );
            let index = task.as_ref().map_or(u64::MAX, |t| t.index);
            return unusable(message, index, task_type, why);
        }
        let Ok(task) = task else {
            let why = "the task's message does not decode".to_owned();
            return unusable(message, u64::MAX, task_type, why);
        };
        let index = task.index;
        let run_type = task_type.clone();
        self.running.fetch_add(1, Relaxed);
        let handle = self
            .pool
            .job()
            .name(format!("{}#{index}", job.task_type))
            .cap(1)
            .submit([move || {
                let started = Instant::now();
                let attempt = (run_type.run)(&task.argument);
                (attempt, started.elapsed())
            }]);
        let state = self.clone();
        handle.on_finish(move |results| {
            let outcome = match results {
                Ok(mut outputs) => outputs.pop().ok_or(TaskError::Cancelled),
                Err(err) => err
                    .into_results()
                    .pop()
                    .unwrap_or(Err(TaskError::Cancelled)),
            };
            if let Ok((_, took)) = &outcome {
                state.took.lock().insert(job.id.clone(), *took);
            }
            state.ran.fetch_add(1, Relaxed);
            done.store(true, Relaxed);
            // Counted as answering before it stops counting as running, so that a stopping
            // worker never sees neither.
            state.answer_later(Ended {
                message,
                job: job.id,
                index,
                attempt,
                outcome: outcome.map(|(attempt, _)| attempt),
                task_type,
            });
            state.running.fetch_sub(1, Relaxed);
            // A thread is free: the main loop may fetch again now.
            state.changed.notify_one();
        });
    }

    /// Sends a task's answer on a task of the worker's runtime of its own, so that a slow
    /// publish holds back no other answer and no fetch.
    fn answer_later(self: &Arc<Self>, ended: Ended) {
        self.answering.fetch_add(1, Relaxed);
        self.runtime.spawn(self.clone().answer(ended));
    }

    /// Publishes a task's result and acknowledges its message, or asks for a retry; see the
    /// protocol.
    async fn answer(self: Arc<Self>, ended: Ended) {
        let Ended {
            message,
            job,
            index,
            attempt,
            outcome,
            task_type,
        } = ended;
        let result = match outcome {
            Ok(Attempt::Done(output)) if output.len() > MAX_RESULT => Err(format!(
                "the result is {} bytes, more than the {MAX_RESULT} a worker publishes",
                output.len()
            )),
            Ok(Attempt::Done(output)) => Ok(output),
            Ok(Attempt::Unusable(why)) => Err(why),
            Ok(Attempt::Failed(error)) => {
                let decision = task_type.retry.as_ref().map(|retry| {
                    retry.decide(Some(error.as_ref()), attempt as u32, index ^ attempt << 32)
                });
                if let Some(Decision::After(delay)) = decision {
                    let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                    self.answered();
                    return;
                }
                Err(error.to_string())
            }
            Err(TaskError::Panicked(why)) => {
                let decision = task_type
                    .retry
                    .as_ref()
                    .map(|retry| retry.decide(None, attempt as u32, index ^ attempt << 32));
                if let Some(Decision::After(delay)) = decision {
                    let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                    self.answered();
                    return;
                }
                Err(format!("the task panicked: {why}"))
            }
            Err(other) => Err(other.to_string()),
        };
        let failed = result.is_err();
        let published = match protocol::encode(&ResultMessage {
            index,
            attempt,
            outcome: result,
        }) {
            Ok(payload) => match self
                .js
                .publish(protocol::result_subject(&job), payload.into())
                .await
            {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            },
            Err(_) => false,
        };
        if published {
            let kind = if failed { AckKind::Term } else { AckKind::Ack };
            let _ = message.ack_with(kind).await;
        }
        // Not published (the broker is away): no ack, so the task is delivered again.
        self.answered();
    }

    /// An answer is done (a stopping worker may be waiting for its last one).
    fn answered(&self) {
        self.answering.fetch_sub(1, Relaxed);
        self.changed.notify_one();
    }
}
