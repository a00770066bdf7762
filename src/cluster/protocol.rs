//! What lives on the broker (see `README.md` beside this file): the streams, their subjects,
//! and the messages, encoded with postcard.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use serde::{Deserialize, Serialize};

use super::ClusterError;

/// The stream of job records.
pub(crate) const JOBS: &str = "JOBPOOL_JOBS";
/// The work queue of tasks.
pub(crate) const TASKS: &str = "JOBPOOL_TASKS";
/// The stream of results.
pub(crate) const RESULTS: &str = "JOBPOOL_RESULTS";

/// How long results and job records are kept.
/// How long the broker may hold a worker's request for a job's tasks before it answers with
/// none.
pub(crate) const PULL_EXPIRES: Duration = Duration::from_millis(10);

/// How long a worker waits for the answer to a request for a job's tasks before it gives the
/// request up: the broker (2.9) never answers a request to a consumer deleted under it.
pub(crate) const UNANSWERED: Duration = Duration::from_millis(200);

/// How long a finished job's consumer lives on after its record says done: longer than any
/// request for its tasks that a worker made before it read that record, so that none waits
/// [`UNANSWERED`].
pub(crate) const CONSUMER_LINGER: Duration = Duration::from_millis(100);

const KEPT_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) fn job_subject(job: &str) -> String {
    format!("jobpool.job.{job}")
}

pub(crate) fn task_subject(job: &str) -> String {
    format!("jobpool.task.{job}")
}

pub(crate) fn result_subject(job: &str) -> String {
    format!("jobpool.result.{job}")
}

pub(crate) fn consumer_name(job: &str) -> String {
    format!("job-{job}")
}

/// A job's record, in `JOBPOOL_JOBS`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct JobRecord {
    pub(crate) id: String,
    pub(crate) task_type: String,
    pub(crate) tasks: u64,
    pub(crate) cap: u64,
    /// Higher runs first.
    pub(crate) priority: i8,
    /// When it was submitted, in milliseconds since the Unix epoch (older runs first among
    /// equal priorities).
    pub(crate) submitted_ms: u64,
    pub(crate) cancelled: bool,
    /// Every task has its result (set by the first collector that saw them all).
    pub(crate) done: bool,
    /// The names of the argument and output types the job was submitted with: a worker whose
    /// task type of that name has other types fails the tasks, rather than read one type as
    /// another (postcard's encoding carries no types).
    pub(crate) types: (String, String),
}

/// One task, in `JOBPOOL_TASKS`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TaskMessage {
    pub(crate) index: u64,
    /// The argument, serialized by the submitter.
    pub(crate) argument: Vec<u8>,
}

/// How one task ended, in `JOBPOOL_RESULTS`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResultMessage {
    pub(crate) index: u64,
    /// The attempt that gave it (1 for the first delivery).
    pub(crate) attempt: u64,
    /// The output serialized by the worker, or the error, in words.
    pub(crate) outcome: Result<Vec<u8>, String>,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ClusterError> {
    postcard::to_stdvec(value).map_err(|err| ClusterError::Encoding(err.to_string()))
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ClusterError> {
    postcard::from_bytes(bytes).map_err(|err| ClusterError::Encoding(err.to_string()))
}

/// The stream `name`, which `ensure_streams` made.
pub(crate) async fn stream(
    js: &jetstream::Context,
    name: &str,
) -> Result<jetstream::stream::Stream, ClusterError> {
    js.get_stream(name)
        .await
        .map_err(|err| ClusterError::Broker(err.to_string()))
}

/// Creates the three streams if they do not exist (any process may, first).
pub(crate) async fn ensure_streams(js: &jetstream::Context) -> Result<(), ClusterError> {
    let configs = [
        stream::Config {
            name: JOBS.to_owned(),
            subjects: vec!["jobpool.job.*".to_owned()],
            max_messages_per_subject: 1,
            max_age: KEPT_FOR,
            storage: stream::StorageType::File,
            ..Default::default()
        },
        stream::Config {
            name: TASKS.to_owned(),
            subjects: vec!["jobpool.task.*".to_owned()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        },
        stream::Config {
            name: RESULTS.to_owned(),
            subjects: vec!["jobpool.result.*".to_owned()],
            max_age: KEPT_FOR,
            storage: stream::StorageType::File,
            ..Default::default()
        },
    ];
    for config in configs {
        // Two processes starting on a new server may both create a stream; the slower one's
        // create fails (its subjects overlap the other's), and then the stream exists.
        let name = config.name.clone();
        if let Err(err) = js.get_or_create_stream(config).await {
            js.get_stream(&name)
                .await
                .map_err(|_| ClusterError::Broker(format!("cannot create a stream: {err}")))?;
        }
    }
    Ok(())
}

/// The configuration of a job's consumer: its cap is `MaxAckPending`.
pub(crate) fn consumer_config(job: &str, cap: u64, ack_wait: Duration) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(consumer_name(job)),
        filter_subject: task_subject(job),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        max_ack_pending: i64::try_from(cap).unwrap_or(i64::MAX),
        ..Default::default()
    }
}
