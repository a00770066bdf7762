//! The pool's listeners: each a bounded channel, fed without ever blocking a worker.
//!
//! A listener is a [`crossbeam::channel::bounded`] channel of the capacity its subscriber chose.
//! A worker that has an event to tell hands it to each listener with `try_send`: when the
//! channel is full the event is dropped and counted in that listener's `dropped`, so a slow
//! listener loses events but never holds up the pool. Listeners whose [`Events`] was dropped
//! are removed at the next event.
//!
//! Whether anyone listens is one flag (`Registry::listening`), read once per chunk of tasks:
//! with no listener the pool builds no event and reads no clock for one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use super::event::PoolEvent;

/// The senders of every listener of one pool.
#[derive(Default)]
pub(crate) struct Listeners {
    /// Whether `list` is not empty: read before building any event.
    listening: AtomicBool,
    list: Mutex<Vec<Listener>>,
}

struct Listener {
    sender: Sender<PoolEvent>,
    dropped: Arc<AtomicU64>,
    /// Its `Events` was dropped.
    gone: bool,
}

impl Listeners {
    /// Whether anyone listens: one load, on every path that could tell an event.
    #[inline]
    pub(crate) fn listening(&self) -> bool {
        self.listening.load(Relaxed)
    }

    /// A new listener that keeps up to `capacity` events not yet received.
    pub(crate) fn subscribe(&self, capacity: usize) -> Events {
        let (sender, receiver) = channel::bounded(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut list = self.list.lock();
        list.push(Listener {
            sender,
            dropped: dropped.clone(),
            gone: false,
        });
        self.listening.store(true, Relaxed);
        Events { receiver, dropped }
    }

    /// Hands `event` to every listener that has room; counts it dropped for those that do not.
    #[cold]
    #[inline(never)]
    pub(crate) fn tell(&self, event: PoolEvent) {
        let mut list = self.list.lock();
        let mut gone = false;
        for listener in list.iter_mut() {
            match listener.sender.try_send(event.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    listener.dropped.fetch_add(1, Relaxed);
                }
                Err(TrySendError::Disconnected(_)) => {
                    listener.gone = true;
                    gone = true;
                }
            }
        }
        if gone {
            list.retain(|listener| !listener.gone);
            if list.is_empty() {
                self.listening.store(false, Relaxed);
            }
        }
    }
}

/// A listener's end: the events of a pool, from [`Pool::events`](crate::Pool::events).
///
/// It holds up to the capacity it was made with; while it is full, new events are dropped and
/// counted ([`dropped`](Events::dropped)), so a listener that falls behind never slows the
/// pool. Dropping it unsubscribes. Once the pool is gone (the pool dropped, its workers
/// finished, and the handles of its jobs dropped), [`iter`](Events::iter) ends after the events
/// left.
///
/// # Cost
///
/// - **Nobody listening**: a worker reads one flag per chunk of tasks (a chunk is one task
///   for tasks of 20 µs and more, up to 4,096 for empty ones) and builds no event.
/// - **Someone listening**: each event costs a clock read, a lock shared by the pool's
///   threads, a clone of the job's name (a reference count) and a `try_send` per listener;
///   a task makes two events (start and end). BENCHMARKS.md ("Observability") has the
///   measured cost per event.
/// - **A slow listener** never blocks a worker: an event that finds the listener full is
///   dropped and counted. Size the capacity for the bursts between two reads: a listener
///   that reads in a loop rarely needs more than a few thousand.
///
/// # Examples
///
/// ```
/// use jobpool::{EventKind, Pool};
///
/// let pool = Pool::new(2);
/// let events = pool.events(4);
/// pool.submit((0..100).map(|_| || ()), 2).wait()?;
/// // 4 kept; the rest were dropped, not waited for.
/// assert_eq!(events.try_iter().count(), 4);
/// assert!(events.dropped() > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Events {
    receiver: Receiver<PoolEvent>,
    dropped: Arc<AtomicU64>,
}

impl Events {
    /// Waits for the next event; `None` once the pool is gone (see [`Events`]) and every event
    /// was received.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{EventKind, Pool};
    ///
    /// let pool = Pool::new(1);
    /// let events = pool.events(64);
    /// let job = pool.submit(vec![|| ()], 1);
    /// let first = events.recv().unwrap();
    /// assert_eq!(first.job, Some(job.id()));
    /// assert!(matches!(first.kind, EventKind::JobSubmitted { tasks: 1, cap: 1, .. }));
    /// # job.wait().unwrap();
    /// ```
    pub fn recv(&self) -> Option<PoolEvent> {
        self.receiver.recv().ok()
    }

    /// Waits at most `timeout` for the next event.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = jobpool::Pool::new(1);
    /// let events = pool.events(64);
    /// assert!(events.recv_timeout(Duration::from_millis(1)).is_none());
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Option<PoolEvent> {
        self.receiver.recv_timeout(timeout).ok()
    }

    /// The next event if one is there.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(1);
    /// let events = pool.events(64);
    /// assert!(events.try_recv().is_none());
    /// ```
    pub fn try_recv(&self) -> Option<PoolEvent> {
        self.receiver.try_recv().ok()
    }

    /// The events there now, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(1);
    /// let events = pool.events(64);
    /// pool.submit(vec![|| ()], 1).wait().unwrap();
    /// assert!(events.try_iter().count() >= 4); // submitted, started, task started, ended, ...
    /// ```
    pub fn try_iter(&self) -> impl Iterator<Item = PoolEvent> + '_ {
        self.receiver.try_iter()
    }

    /// Every event, waiting for each; ends once the pool is gone (see [`Events`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(1);
    /// let events = pool.events(64);
    /// pool.submit(vec![|| ()], 1).wait().unwrap();
    /// drop(pool);
    /// assert!(events.iter().count() >= 4);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = PoolEvent> + '_ {
        self.receiver.iter()
    }

    /// Events dropped so far because this listener was full.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = jobpool::Pool::new(1);
    /// let events = pool.events(1024);
    /// pool.submit(vec![|| ()], 1).wait().unwrap();
    /// assert_eq!(events.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("waiting", &self.receiver.len())
            .field("capacity", &self.receiver.capacity())
            .field("dropped", &self.dropped())
            .finish()
    }
}
