//! Submitting jobs to the cluster, and collecting their results.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer, message::PublishMessage};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::protocol::{self, JobRecord, ResultMessage, TaskMessage};
use super::{runtime, Broker, ClusterError, TaskType};
use crate::Priority;

/// How many tasks a submitter publishes before it waits for the server's acknowledgements.
const ACK_WINDOW: usize = 1000;

/// Submits jobs to the cluster's workers, and attaches to jobs submitted before.
///
/// # Examples
///
/// ```no_run
/// use jobpool::cluster::{Broker, Submitter, TaskTypes};
///
/// let mut types = TaskTypes::new();
/// let square = types.register("square", |x: u64| Ok(x * x));
/// let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
/// let job = submitter.submit(&square, 0..100u64, 5)?; // at most 5 at once, cluster-wide
/// println!("job {}", job.id()); // keep it to attach again after a restart
/// let squares: Vec<u64> = job.wait()?.into_iter().collect::<Result<_, _>>()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Submitter {
    shared: Arc<Shared>,
}

/// What a submitter and its jobs share.
struct Shared {
    runtime: tokio::runtime::Runtime,
    js: jetstream::Context,
    ack_wait: Duration,
    /// The clean-ups of finished jobs (see [`RemoteJob::finish`]) still under way.
    cleanups: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// How long a submitter, when the last of its handles is dropped, waits for the clean-ups of
/// its finished jobs.
const CLEANUP_GRACE: Duration = Duration::from_secs(5);

impl Drop for Shared {
    /// Lets the finished jobs' clean-ups end (for [`CLEANUP_GRACE`] at most), so that a
    /// process that exits right after its last `wait` leaves no job behind.
    fn drop(&mut self) {
        let cleanups = std::mem::take(self.cleanups.get_mut());
        if cleanups.is_empty() {
            return;
        }
        self.runtime.block_on(async {
            let all = futures_util::future::join_all(cleanups);
            let _ = tokio::time::timeout(CLEANUP_GRACE, all).await;
        });
    }
}

impl Submitter {
    /// Connects to `broker`.
    ///
    /// # Errors
    ///
    /// If the broker cannot be reached in 10 s, refuses the login, or cannot create the
    /// cluster's streams.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use jobpool::cluster::{Broker, Submitter};
    ///
    /// let broker = Broker::new("nats://127.0.0.1:4222").token(std::env::var("NATS_TOKEN")?);
    /// let submitter = Submitter::connect(&broker)?;
    /// # let _ = submitter;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(broker: &Broker) -> Result<Submitter, ClusterError> {
        let runtime = runtime()?;
        let js = runtime.block_on(broker.connect())?;
        Ok(Submitter {
            shared: Arc::new(Shared {
                runtime,
                js,
                ack_wait: broker.ack_wait,
                cleanups: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Submits a job: one task of type `task_type` per argument, of which at most `cap` run
    /// at once across the cluster, at [`Priority::Normal`].
    ///
    /// # Errors
    ///
    /// [`ClusterError::ZeroCap`], an argument that does not serialize, or the broker's.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use jobpool::cluster::{Broker, Submitter, TaskTypes};
    ///
    /// let mut types = TaskTypes::new();
    /// let square = types.register("square", |x: u64| Ok(x * x));
    /// let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
    /// let job = submitter.submit(&square, 1..=3u64, 2)?; // at most 2 at once, cluster-wide
    /// assert_eq!(job.wait()?, [Ok(1), Ok(4), Ok(9)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit<A, O, I>(
        &self,
        task_type: &TaskType<A, O>,
        arguments: I,
        cap: usize,
    ) -> Result<RemoteJob<O>, ClusterError>
    where
        A: Serialize,
        O: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.submit_with_priority(task_type, arguments, cap, Priority::Normal)
    }

    /// [`submit`](Self::submit), at `priority`: workers take the tasks of higher priority jobs
    /// first (then those of older jobs).
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use jobpool::Priority;
    /// # use jobpool::cluster::{Broker, Submitter, TaskTypes};
    /// # let mut types = TaskTypes::new();
    /// # let square = types.register("square", |x: u64| Ok(x * x));
    /// # let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
    /// // Workers take these tasks before those of jobs at `Normal` or `Low`.
    /// let urgent = submitter.submit_with_priority(&square, 0..10u64, 4, Priority::High)?;
    /// let squares = urgent.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_with_priority<A, O, I>(
        &self,
        task_type: &TaskType<A, O>,
        arguments: I,
        cap: usize,
        priority: Priority,
    ) -> Result<RemoteJob<O>, ClusterError>
    where
        A: Serialize,
        O: DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        if cap == 0 {
            return Err(ClusterError::ZeroCap);
        }
        let tasks: Vec<Vec<u8>> = arguments
            .into_iter()
            .map(|argument| protocol::encode(&argument))
            .collect::<Result<_, _>>()?;
        let record = JobRecord {
            id: new_job_id(),
            task_type: task_type.name().to_owned(),
            tasks: tasks.len() as u64,
            cap: cap as u64,
            priority: priority_rank(priority),
            submitted_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            cancelled: false,
            done: false,
            types: {
                let (argument, output) = task_type.type_names();
                (argument.to_owned(), output.to_owned())
            },
        };
        let shared = &self.shared;
        shared.runtime.block_on(async {
            let js = &shared.js;
            js.create_consumer_on_stream(
                protocol::consumer_config(&record.id, record.cap, shared.ack_wait),
                protocol::TASKS,
            )
            .await
            .map_err(|err| {
                ClusterError::Broker(format!("cannot create the job's consumer: {err}"))
            })?;
            publish_record(js, &record).await?;
            let mut acks = Vec::with_capacity(tasks.len().min(ACK_WINDOW));
            for (index, argument) in tasks.into_iter().enumerate() {
                let message = TaskMessage {
                    index: index as u64,
                    argument,
                };
                let publish = PublishMessage::build()
                    .payload(protocol::encode(&message)?.into())
                    .message_id(format!("{}.{index}", record.id));
                let ack = js
                    .send_publish(protocol::task_subject(&record.id), publish)
                    .await
                    .map_err(|err| ClusterError::Broker(format!("cannot publish a task: {err}")))?;
                acks.push(ack);
                // The client lets at most 5,000 acknowledgements wait at once: take them in
                // windows well under that, or a large job never finishes submitting.
                if acks.len() == ACK_WINDOW {
                    stored(&mut acks).await?;
                }
            }
            stored(&mut acks).await?;
            Ok::<(), ClusterError>(())
        })?;
        Ok(RemoteJob::new(self.shared.clone(), record))
    }

    /// The job of id `job`, submitted before (by this process or another, perhaps one that
    /// died): its results, those stored before this call included, are collected as for a job
    /// just submitted.
    ///
    /// # Errors
    ///
    /// [`ClusterError::UnknownJob`] if no job has this id, [`ClusterError::UnknownTaskType`]
    /// if it is not of type `task_type`, or the broker's.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use jobpool::cluster::{Broker, Submitter, TaskTypes};
    ///
    /// let mut types = TaskTypes::new(); // the same task types as the process that submitted
    /// let square = types.register("square", |x: u64| Ok(x * x));
    /// let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
    /// let id = std::env::args().nth(1).ok_or("usage: collect JOB_ID")?; // from RemoteJob::id
    /// let squares = submitter.attach(&square, &id)?.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach<A, O>(
        &self,
        task_type: &TaskType<A, O>,
        job: &str,
    ) -> Result<RemoteJob<O>, ClusterError>
    where
        O: DeserializeOwned,
    {
        let record = self
            .shared
            .runtime
            .block_on(read_record(&self.shared.js, job))?;
        if record.task_type != task_type.name() {
            return Err(ClusterError::UnknownTaskType(format!(
                "{} (job {job} is of type {})",
                task_type.name(),
                record.task_type
            )));
        }
        Ok(RemoteJob::new(self.shared.clone(), record))
    }
}

impl fmt::Debug for Submitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submitter").finish_non_exhaustive()
    }
}

/// Where a priority stands among others: higher runs first.
fn priority_rank(priority: Priority) -> i8 {
    match priority {
        Priority::Low => -1,
        Priority::Normal => 0,
        Priority::High => 1,
    }
}

/// A new job id: 128 random bits, in hexadecimal.
fn new_job_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut words = [0u64; 2];
    for (n, word) in words.iter_mut().enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Relaxed));
        hasher.write_u32(std::process::id());
        hasher.write_usize(n);
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        *word = hasher.finish();
    }
    format!("{:016x}{:016x}", words[0], words[1])
}

/// Waits until the server has stored every task in `acks`.
async fn stored(acks: &mut Vec<jetstream::context::PublishAckFuture>) -> Result<(), ClusterError> {
    for ack in acks.drain(..) {
        ack.await
            .map_err(|err| ClusterError::Broker(format!("a task was not stored: {err}")))?;
    }
    Ok(())
}

async fn publish_record(js: &jetstream::Context, record: &JobRecord) -> Result<(), ClusterError> {
    js.publish(
        protocol::job_subject(&record.id),
        protocol::encode(record)?.into(),
    )
    .await
    .map_err(|err| ClusterError::Broker(format!("cannot publish the job's record: {err}")))?
    .await
    .map_err(|err| ClusterError::Broker(format!("the job's record was not stored: {err}")))?;
    Ok(())
}

async fn read_record(js: &jetstream::Context, job: &str) -> Result<JobRecord, ClusterError> {
    let jobs = protocol::stream(js, protocol::JOBS).await?;
    let message = jobs
        .get_last_raw_message_by_subject(&protocol::job_subject(job))
        .await
        .map_err(|_| ClusterError::UnknownJob(job.to_owned()))?;
    protocol::decode(&message.payload)
}

/// Why a task of a remote job has no output.
///
/// # Examples
///
/// ```
/// let failure = jobpool::cluster::RemoteFailure::cancelled();
/// assert_eq!(failure.to_string(), "cancelled before it ran");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFailure {
    message: String,
    attempt: u64,
    /// The task never ran: its job was cancelled first.
    cancelled: bool,
}

impl RemoteFailure {
    /// The failure of a task that never ran: its job was cancelled first.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::RemoteFailure;
    ///
    /// let failure = RemoteFailure::cancelled();
    /// assert!(failure.is_cancelled());
    /// assert_eq!(failure.attempt(), 0);
    /// ```
    pub fn cancelled() -> RemoteFailure {
        RemoteFailure {
            message: "cancelled before it ran".to_owned(),
            attempt: 0,
            cancelled: true,
        }
    }

    /// The error, in words (the task's own error, a panic's message, or why the task could
    /// not run).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::RemoteFailure;
    ///
    /// let failure = RemoteFailure::cancelled();
    /// assert_eq!(failure.message(), "cancelled before it ran");
    /// assert_eq!(failure.to_string(), failure.message()); // Display shows the message
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The attempt that failed, from 1 (0 for a task that never ran).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::cluster::RemoteFailure;
    ///
    /// let failure = RemoteFailure::cancelled();
    /// assert_eq!(failure.attempt(), 0); // it never ran
    /// ```
    pub fn attempt(&self) -> u64 {
        self.attempt
    }

    /// Whether the task never ran because its job was cancelled first.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(jobpool::cluster::RemoteFailure::cancelled().is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }
}

impl fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteFailure {}

/// A job running on the cluster: its results as they arrive, in order once all have.
///
/// Any number of processes may hold a `RemoteJob` of one job (see [`Submitter::attach`]).
pub struct RemoteJob<O> {
    shared: Arc<Shared>,
    record: Mutex<JobRecord>,
    collected: Mutex<Collected>,
    output: PhantomData<fn() -> O>,
}

/// The results read so far.
struct Collected {
    /// Per task: its outcome, once known.
    outcomes: Vec<Option<Result<Vec<u8>, RemoteFailure>>>,
    known: usize,
    /// The indices of the tasks with a result, in the order their results were read.
    arrived: Vec<usize>,
    /// The results stream, read from its start.
    reader: Option<consumer::pull::Ordered>,
}

impl<O: DeserializeOwned> RemoteJob<O> {
    fn new(shared: Arc<Shared>, record: JobRecord) -> RemoteJob<O> {
        let outcomes = (0..record.tasks).map(|_| None).collect();
        RemoteJob {
            shared,
            record: Mutex::new(record),
            collected: Mutex::new(Collected {
                outcomes,
                known: 0,
                arrived: Vec::new(),
                reader: None,
            }),
            output: PhantomData,
        }
    }

    /// The job's id: give it to [`Submitter::attach`] to collect the results elsewhere.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use jobpool::cluster::{Broker, Submitter, TaskTypes};
    /// # let mut types = TaskTypes::new();
    /// # let square = types.register("square", |x: u64| Ok(x * x));
    /// # let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
    /// let job = submitter.submit(&square, 0..100u64, 5)?;
    /// let id = job.id();
    /// let same = submitter.attach(&square, &id)?; // as another process would
    /// assert_eq!(same.id(), id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> String {
        self.record.lock().id.clone()
    }

    /// How many tasks have a result, and how many the job has.
    ///
    /// # Errors
    ///
    /// The broker's.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use jobpool::cluster::{Broker, Submitter, TaskTypes};
    /// # let mut types = TaskTypes::new();
    /// # let square = types.register("square", |x: u64| Ok(x * x));
    /// # let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
    /// let job = submitter.submit(&square, 0..100u64, 5)?;
    /// let (done, total) = job.progress()?;
    /// assert!(done <= total && total == 100);
    /// println!("{done} of {total} tasks done");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn progress(&self) -> Result<(usize, usize), ClusterError> {
        let mut collected = self.collected.lock();
        self.read(&mut collected, Some(Duration::from_millis(5)))?;
        Ok((collected.known, collected.outcomes.len()))
    }

    /// The tasks' results as they arrive, in the order they arrive, each with its task's
    /// index (results stored before the call come first). The iterator ends when every task
    /// has its result, or the job was cancelled and no result came for a while.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use jobpool::cluster::{Broker, Submitter, TaskTypes};
    ///
    /// let mut types = TaskTypes::new();
    /// let square = types.register("square", |x: u64| Ok(x * x));
    /// let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
    /// let job = submitter.submit(&square, 0..10u64, 2)?;
    /// for (index, result) in job.completions() {
    ///     println!("task {index}: {:?}", result);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn completions(&self) -> RemoteCompletions<'_, O> {
        RemoteCompletions {
            job: self,
            next: 0,
            quiet_reads: 0,
        }
    }

    /// Blocks until every task has a result, or the job was cancelled (through this handle or
    /// another); returns the results in the order of the arguments. A task cancelled before it
    /// ran is `Err(RemoteFailure::cancelled())`; an output that does not deserialize as `O`
    /// is that task's error.
    ///
    /// # Errors
    ///
    /// The broker's.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use jobpool::cluster::{Broker, Submitter, TaskTypes};
    /// # let mut types = TaskTypes::new();
    /// # let square = types.register("square", |x: u64| Ok(x * x));
    /// # let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
    /// let job = submitter.submit(&square, 0..4u64, 2)?;
    /// assert_eq!(job.wait()?, [Ok(0), Ok(1), Ok(4), Ok(9)]); // in the order of the arguments
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait(&self) -> Result<Vec<Result<O, RemoteFailure>>, ClusterError> {
        let results = self.wait_unless(&AtomicBool::new(false))?;
        Ok(results.unwrap_or_else(|| unreachable!("never abandoned")))
    }

    /// [`wait`](Self::wait), giving up (`None`) soon after `abandoned` is set.
    pub(super) fn wait_unless(
        &self,
        abandoned: &AtomicBool,
    ) -> Result<Option<Vec<Result<O, RemoteFailure>>>, ClusterError> {
        // A reader quiet for this long is made anew (it may be lost with a server that
        // restarted, which the client notices only after its heartbeats go missing); the
        // wait doubles each time, up to 30 s.
        let mut renew_after = Duration::from_secs(2);
        let mut quiet_since = std::time::Instant::now();
        loop {
            if abandoned.load(Relaxed) {
                return Ok(None);
            }
            // The lock is taken for one read at a time, so `progress` answers meanwhile.
            let mut collected = self.collected.lock();
            let before = collected.known;
            self.read(&mut collected, Some(Duration::from_millis(200)))?;
            if collected.known == collected.outcomes.len() {
                break;
            }
            if collected.known > before {
                quiet_since = std::time::Instant::now();
                renew_after = Duration::from_secs(2);
            } else if quiet_since.elapsed() >= renew_after {
                // (Dropped on the client's runtime: its subscription unsubscribes there.)
                let _inside = self.shared.runtime.enter();
                collected.reader = None;
                quiet_since = std::time::Instant::now();
                renew_after = (renew_after * 2).min(Duration::from_secs(30));
            }
            drop(collected);
            if self.record.lock().cancelled {
                break;
            }
            if self.collected.lock().known == before {
                // Nothing new for a while: the job may have been cancelled through another
                // handle (then its missing results never come).
                let shared = &self.shared;
                let id = self.record.lock().id.clone();
                // (Not readable while the broker is away: then wait on.)
                let latest = shared.runtime.block_on(read_record(&shared.js, &id));
                if latest.is_ok_and(|latest| latest.cancelled) {
                    self.record.lock().cancelled = true;
                    let mut collected = self.collected.lock();
                    self.read(&mut collected, Some(Duration::from_millis(200)))?;
                    break;
                }
            }
        }
        let collected = self.collected.lock();
        if collected.known == collected.outcomes.len() {
            self.finish();
        }
        Ok(Some(
            collected
                .outcomes
                .iter()
                .map(|outcome| result_of(outcome.as_ref()))
                .collect(),
        ))
    }

    /// Every task has its result: marks the job done and deletes its consumer, so that
    /// workers forget it. In the background, so `wait` returns meanwhile; the submitter waits
    /// for it when it is dropped. Best effort: a consumer left behind holds no task.
    fn finish(&self) {
        let mut record = self.record.lock();
        if record.done {
            return;
        }
        record.done = true;
        let (js, record) = (self.shared.js.clone(), record.clone());
        let cleanup = self.shared.runtime.spawn(async move {
            let _ = publish_record(&js, &record).await;
            // Workers that asked for its tasks before they read the record get their answer
            // first (see the protocol).
            tokio::time::sleep(protocol::CONSUMER_LINGER).await;
            let _ = js
                .delete_consumer_from_stream(protocol::consumer_name(&record.id), protocol::TASKS)
                .await;
        });
        let mut cleanups = self.shared.cleanups.lock();
        cleanups.retain(|cleanup| !cleanup.is_finished());
        cleanups.push(cleanup);
    }

    /// Stops the job: tasks not handed to a worker yet never run, and are reported as
    /// cancelled; tasks running finish, and their results are kept.
    ///
    /// # Errors
    ///
    /// The broker's.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use jobpool::cluster::{Broker, Submitter, TaskTypes};
    /// # let mut types = TaskTypes::new();
    /// # let square = types.register("square", |x: u64| Ok(x * x));
    /// # let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
    /// let job = submitter.submit(&square, 0..1000u64, 2)?;
    /// job.cancel()?;
    /// let results = job.wait()?; // returns once the running tasks have reported
    /// let never_ran = results.iter().filter(|r| matches!(r, Err(f) if f.is_cancelled()));
    /// println!("{} tasks never ran", never_ran.count());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(&self) -> Result<(), ClusterError> {
        let mut record = self.record.lock();
        let shared = &self.shared;
        *record = shared
            .runtime
            .block_on(read_record(&shared.js, &record.id))?;
        record.cancelled = true;
        shared.runtime.block_on(async {
            publish_record(&shared.js, &record).await?;
            let tasks = protocol::stream(&shared.js, protocol::TASKS).await?;
            tasks
                .purge()
                .filter(protocol::task_subject(&record.id))
                .await
                .map_err(|err| ClusterError::Broker(format!("cannot drop the tasks: {err}")))?;
            Ok(())
        })
    }

    /// Changes the job's cap, cluster-wide: with a lower cap, running tasks finish and no new
    /// one starts until fewer than the new cap run.
    ///
    /// # Errors
    ///
    /// [`ClusterError::ZeroCap`], or the broker's.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use jobpool::cluster::ClusterError;
    /// # use jobpool::cluster::{Broker, Submitter, TaskTypes};
    /// # let mut types = TaskTypes::new();
    /// # let square = types.register("square", |x: u64| Ok(x * x));
    /// # let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
    /// let job = submitter.submit(&square, 0..1000u64, 2)?;
    /// job.set_cap(10)?; // more workers came up: up to 10 at once, cluster-wide
    /// assert_eq!(job.set_cap(0), Err(ClusterError::ZeroCap));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_cap(&self, cap: usize) -> Result<(), ClusterError> {
        if cap == 0 {
            return Err(ClusterError::ZeroCap);
        }
        let mut record = self.record.lock();
        let shared = &self.shared;
        // From the latest record, so as not to undo a cancel made through another handle.
        *record = shared
            .runtime
            .block_on(read_record(&shared.js, &record.id))?;
        record.cap = cap as u64;
        shared.runtime.block_on(async {
            let tasks = protocol::stream(&shared.js, protocol::TASKS).await?;
            tasks
                .update_consumer(protocol::consumer_config(
                    &record.id,
                    record.cap,
                    shared.ack_wait,
                ))
                .await
                .map_err(|err| ClusterError::Broker(format!("cannot change the cap: {err}")))?;
            publish_record(&shared.js, &record).await
        })
    }

    /// Reads the results stored since the last read, until every task has one, or the stream
    /// has been quiet for `quiet` (for ever if `None`).
    ///
    /// The reader is a consumer the server keeps in memory, gone if the server restarts: then
    /// (or on any error reading) it is made anew at the next read, from the start of the
    /// job's results, whose repeats are ignored. So a read never fails; while the broker is
    /// away it is quiet.
    fn read(&self, collected: &mut Collected, quiet: Option<Duration>) -> Result<(), ClusterError> {
        let id = self.record.lock().id.clone();
        let shared = &self.shared;
        let pause = quiet.unwrap_or(Duration::from_millis(200));
        shared.runtime.block_on(async {
            if collected.reader.is_none() {
                match new_reader(&shared.js, &id).await {
                    Ok(reader) => collected.reader = Some(reader),
                    Err(_) => {
                        tokio::time::sleep(pause).await;
                        return Ok(());
                    }
                }
            }
            let Some(reader) = collected.reader.as_mut() else {
                unreachable!("made just above");
            };
            while collected.known < collected.outcomes.len() {
                let next = match quiet {
                    Some(quiet) => match tokio::time::timeout(quiet, reader.next()).await {
                        Ok(next) => next,
                        Err(_) => return Ok(()),
                    },
                    None => reader.next().await,
                };
                let Some(Ok(message)) = next else {
                    // The reader ended or failed (the server restarted): read anew next time.
                    collected.reader = None;
                    return Ok(());
                };
                let result: ResultMessage = protocol::decode(&message.payload)?;
                let Some(slot) = collected.outcomes.get_mut(result.index as usize) else {
                    continue;
                };
                if slot.is_none() {
                    *slot = Some(result.outcome.map_err(|message| RemoteFailure {
                        message,
                        attempt: result.attempt,
                        cancelled: false,
                    }));
                    collected.known += 1;
                    collected.arrived.push(result.index as usize);
                }
            }
            Ok(())
        })
    }
}

/// A task's result as the user gets it, from its outcome as read (`None`: it has none, and its
/// job was cancelled): an output that does not deserialize as `O` is the task's error.
fn result_of<O: DeserializeOwned>(
    outcome: Option<&Result<Vec<u8>, RemoteFailure>>,
) -> Result<O, RemoteFailure> {
    match outcome {
        Some(Ok(bytes)) => protocol::decode(bytes).map_err(|err| RemoteFailure {
            message: format!("the output does not deserialize: {err}"),
            attempt: 0,
            cancelled: false,
        }),
        Some(Err(failure)) => Err(failure.clone()),
        None => Err(RemoteFailure::cancelled()),
    }
}

/// A reader of job `id`'s results, from their start.
async fn new_reader(
    js: &jetstream::Context,
    id: &str,
) -> Result<consumer::pull::Ordered, ClusterError> {
    let results = protocol::stream(js, protocol::RESULTS).await?;
    results
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: protocol::result_subject(id),
            ..Default::default()
        })
        .await
        .map_err(|err| ClusterError::Broker(err.to_string()))?
        .messages()
        .await
        .map_err(|err| ClusterError::Broker(err.to_string()))
}

impl<O> Drop for RemoteJob<O> {
    fn drop(&mut self) {
        // The reader's subscription unsubscribes from the client's runtime.
        let _inside = self.shared.runtime.enter();
        drop(self.collected.get_mut().reader.take());
    }
}

impl<O> fmt::Debug for RemoteJob<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJob")
            .field("id", &self.record.lock().id)
            .finish_non_exhaustive()
    }
}

/// The results of a [`RemoteJob`] as they arrive: see [`RemoteJob::completions`].
pub struct RemoteCompletions<'a, O> {
    job: &'a RemoteJob<O>,
    /// How many arrived results it has yielded.
    next: usize,
    /// Reads in a row that brought nothing, once the job is cancelled.
    quiet_reads: u32,
}

impl<O: DeserializeOwned> Iterator for RemoteCompletions<'_, O> {
    type Item = (usize, Result<O, RemoteFailure>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut collected = self.job.collected.lock();
            if let Some(&index) = collected.arrived.get(self.next) {
                self.next += 1;
                let result = result_of(collected.outcomes[index].as_ref());
                return Some((index, result));
            }
            if collected.known == collected.outcomes.len() {
                return None;
            }
            if self.job.record.lock().cancelled && self.quiet_reads >= 5 {
                // Cancelled, and the tasks that were running have had time to report.
                return None;
            }
            let before = collected.arrived.len();
            // A read never fails: the broker's errors are retried (see `read`).
            let _ = self
                .job
                .read(&mut collected, Some(Duration::from_millis(200)));
            if collected.arrived.len() > before {
                self.quiet_reads = 0;
                continue;
            }
            drop(collected);
            self.quiet_reads += 1;
            if self.quiet_reads % 10 == 0 {
                // Quiet for a while: cancelled through another handle?
                let shared = &self.job.shared;
                let id = self.job.record.lock().id.clone();
                if let Ok(latest) = shared.runtime.block_on(read_record(&shared.js, &id)) {
                    if latest.cancelled {
                        self.job.record.lock().cancelled = true;
                        self.quiet_reads = 5;
                    }
                }
            }
        }
    }
}

impl<O> fmt::Debug for RemoteCompletions<'_, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteCompletions")
            .field("yielded", &self.next)
            .finish_non_exhaustive()
    }
}
