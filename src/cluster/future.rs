//! Awaiting a remote job from async code: [`RemoteJobFuture`], what `.await` on a
//! [`RemoteJob`] runs.
//!
//! The wait itself is [`RemoteJob::wait`], on a thread of its own: the client's runtime is
//! internal to the submitter, and the caller's executor may be any (or none of tokio's), so
//! the future neither runs on that runtime nor asks the caller's for anything. The thread
//! sends the results on a one-shot channel, whose receiver is the future: it is woken through
//! the waker it was polled with. As with a local [`JobHandle`](crate::JobHandle), `.await`
//! consumes the handle (the job is [`IntoFuture`], not a `Future`).
//!
//! Dropping the future before it completes lets the job run on, as dropping the handle does:
//! the thread is told to stop waiting, and does within about 200 ms.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::{ClusterError, RemoteFailure, RemoteJob};

/// What awaiting a remote job gives: what [`RemoteJob::wait`] returns.
type Results<O> = Result<Vec<Result<O, RemoteFailure>>, ClusterError>;

/// The future of a remote job's results: what `.await` on a [`RemoteJob`] runs (the job is
/// [`IntoFuture`]). Its output is what [`RemoteJob::wait`] returns.
///
/// Any executor will do: a thread of its own waits for the job and wakes the future. Dropping
/// it before it completes lets the job run on, and that thread ends soon after.
///
/// # Examples
///
/// ```no_run
/// use jobpool::cluster::{Broker, Submitter, TaskTypes};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mut types = TaskTypes::new();
/// let square = types.register("square", |x: u64| Ok(x * x));
/// let submitter = Submitter::connect(&Broker::new("nats://127.0.0.1:4222"))?;
/// let squares = submitter.submit(&square, 0..10u64, 2)?.await?;
/// assert_eq!(squares[3], Ok(9));
/// # Ok(())
/// # }
/// ```
pub struct RemoteJobFuture<O> {
    results: Result<oneshot::Receiver<Results<O>>, Option<ClusterError>>,
    abandoned: Arc<AtomicBool>,
}

impl<O: DeserializeOwned + Send + 'static> IntoFuture for RemoteJob<O> {
    type Output = Results<O>;
    type IntoFuture = RemoteJobFuture<O>;

    fn into_future(self) -> RemoteJobFuture<O> {
        let (send, receive) = oneshot::channel();
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = abandoned.clone();
        let waiting = std::thread::Builder::new()
            .name("jobpool-remote-wait".to_owned())
            .spawn(move || {
                if let Some(results) = self.wait_unless(&stop).transpose() {
                    let _ = send.send(results);
                }
            });
        RemoteJobFuture {
            results: match waiting {
                Ok(_) => Ok(receive),
                Err(err) => Err(Some(ClusterError::Thread(err.to_string()))),
            },
            abandoned,
        }
    }
}

impl<O> Future for RemoteJobFuture<O> {
    type Output = Results<O>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Results<O>> {
        match &mut self.results {
            Ok(receive) => match Pin::new(receive).poll(cx) {
                Poll::Ready(Ok(results)) => Poll::Ready(results),
                // The waiting thread ended without a word: it panicked.
                Poll::Ready(Err(_)) => Poll::Ready(Err(ClusterError::Thread(
                    "the thread waiting for the remote job stopped".to_owned(),
                ))),
                Poll::Pending => Poll::Pending,
            },
            Err(error) => Poll::Ready(Err(error
                .take()
                .expect("a RemoteJobFuture polled after it completed"))),
        }
    }
}

impl<O> Drop for RemoteJobFuture<O> {
    fn drop(&mut self) {
        self.abandoned.store(true, Relaxed);
    }
}

impl<O> fmt::Debug for RemoteJobFuture<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJobFuture").finish_non_exhaustive()
    }
}
