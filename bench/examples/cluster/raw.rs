//! The raw JetStream baseline: the same round trip as a task's, with nothing of jobpool's
//! around it. A work-queue stream `RAW_WORK` (subjects `raw.work.<run>`), one durable pull
//! consumer `raw-workers` shared by every raw worker, and a results stream `RAW_RESULTS`
//! (subjects `raw.result.<run>`), both on file storage as jobpool's streams are.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use futures_util::StreamExt;

const WORK: &str = "RAW_WORK";
const RESULTS: &str = "RAW_RESULTS";
const CONSUMER: &str = "raw-workers";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A runtime as jobpool's cluster makes for a submitter or a worker: one thread.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Where a worker answers a message of `subject` (`raw.work.<run>` -> `raw.result.<run>`).
pub(crate) fn reply_subject(subject: &str) -> String {
    format!("raw.result.{}", subject.rsplit('.').next().unwrap_or(""))
}

/// The consumer the raw workers pull from.
pub(crate) async fn workers_consumer(
    js: &jetstream::Context,
) -> Result<consumer::PullConsumer, Error> {
    let stream = js.get_stream(WORK).await?;
    let consumer = stream.get_consumer(CONSUMER).await?;
    Ok(consumer)
}

/// The parent's side: a connection on a runtime of its own, as a jobpool `Submitter` has.
pub(crate) struct Raw {
    runtime: tokio::runtime::Runtime,
    js: jetstream::Context,
    runs: u64,
}

/// One run of the throughput part.
pub(crate) struct Throughput {
    /// From the first publish to the last reply read.
    pub(crate) elapsed: Duration,
    /// The worker processes that answered.
    pub(crate) pids: BTreeSet<u32>,
}

impl Raw {
    /// Connects, creates the streams and the workers' consumer (its `MaxAckPending` is
    /// `max_pending`, as a job's cap is its consumer's).
    pub(crate) fn setup(url: &str, max_pending: usize) -> Raw {
        let runtime = runtime();
        let js = runtime.block_on(async {
            let js = jetstream::new(async_nats::connect(url).await?);
            js.get_or_create_stream(stream::Config {
                name: WORK.to_owned(),
                subjects: vec!["raw.work.*".to_owned()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?
            .get_or_create_consumer(
                CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(CONSUMER.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: max_pending as i64,
                    ..Default::default()
                },
            )
            .await?;
            js.get_or_create_stream(stream::Config {
                name: RESULTS.to_owned(),
                subjects: vec!["raw.result.*".to_owned()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await?;
            Ok::<_, Error>(js)
        });
        Raw {
            runtime,
            js: js.expect("the raw baseline's streams"),
            runs: 0,
        }
    }

    fn next_run(&mut self) -> String {
        self.runs += 1;
        format!("p{}r{}", std::process::id(), self.runs)
    }

    /// Publishes `n` messages (each with a message id, as jobpool's tasks; all sent, then
    /// every acknowledgement awaited, as jobpool's submitter does), while a collector reads
    /// the replies (an ordered consumer, as jobpool's results are read).
    pub(crate) fn throughput(&mut self, n: usize) -> Throughput {
        let run = self.next_run();
        let js = self.js.clone();
        self.runtime
            .block_on(async move {
                let mut replies = replies_of(&js, &run).await?;
                let start = Instant::now();
                let collector = tokio::spawn(async move {
                    let mut pids = BTreeSet::new();
                    let mut seen = 0;
                    while seen < n {
                        let reply = replies.next().await.ok_or("the replies ended")??;
                        let pid = reply.payload.get(8..12).ok_or("a short reply")?;
                        pids.insert(u32::from_le_bytes(pid.try_into()?));
                        seen += 1;
                    }
                    Ok::<_, Error>((start.elapsed(), pids))
                });
                // The acknowledgements are awaited as they come, by a task of their own: the
                // client lets 5,000 of them be pending at most (a publish waits for a free
                // one), so awaiting them only after the last publish would never end.
                let (acks, mut pending) = tokio::sync::mpsc::unbounded_channel();
                let acker = tokio::spawn(async move {
                    while let Some(ack) = pending.recv().await {
                        ack.await?;
                    }
                    Ok::<_, Error>(())
                });
                let subject = format!("raw.work.{run}");
                for i in 0..n as u64 {
                    let message = PublishMessage::build()
                        .payload(i.to_le_bytes().to_vec().into())
                        .message_id(format!("{run}.{i}"));
                    acks.send(js.send_publish(subject.clone(), message).await?)?;
                }
                drop(acks);
                acker.await??;
                let (elapsed, pids) = collector.await??;
                Ok::<_, Error>(Throughput { elapsed, pids })
            })
            .expect("a raw throughput run")
    }

    /// `n` round trips one after the other: publish one message (acknowledged), read its
    /// reply. The latency of each.
    pub(crate) fn latency(&mut self, n: usize) -> Vec<Duration> {
        let run = self.next_run();
        let js = self.js.clone();
        self.runtime
            .block_on(async move {
                let mut replies = replies_of(&js, &run).await?;
                let subject = format!("raw.work.{run}");
                let mut times = Vec::with_capacity(n);
                for i in 0..n as u64 {
                    let start = Instant::now();
                    let message = PublishMessage::build()
                        .payload(i.to_le_bytes().to_vec().into())
                        .message_id(format!("{run}.{i}"));
                    js.send_publish(subject.clone(), message).await?.await?;
                    let reply = replies.next().await.ok_or("the replies ended")??;
                    times.push(start.elapsed());
                    assert_eq!(reply.payload.get(..8), Some(&i.to_le_bytes()[..]));
                }
                Ok::<_, Error>(times)
            })
            .expect("a raw latency run")
    }
}

/// A reader of run `run`'s replies, made before its first message is published.
async fn replies_of(js: &jetstream::Context, run: &str) -> Result<consumer::pull::Ordered, Error> {
    Ok(js
        .get_stream(RESULTS)
        .await?
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: format!("raw.result.{run}"),
            ..Default::default()
        })
        .await?
        .messages()
        .await?)
}
