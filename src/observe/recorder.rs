//! Recording a pool's events in the background into a [`Timeline`]: the [`Recorder`], its
//! thread and its ring buffer. What a timeline becomes in a trace viewer is in
//! `chrome_trace.rs`.
//!
//! [`Recorder::start`] listens to a pool ([`Pool::events`]) and hands the events to a thread of
//! its own, which keeps the most recent ones in a ring buffer; [`Recorder::finish`] stops it and
//! returns the [`Timeline`].
//!
//! # Memory
//!
//! The timeline keeps at most `capacity` events (the number given to [`Recorder::start`]): the
//! ring buffer grows with the events up to that and then drops the oldest for each new one.
//! An event is `size_of::<PoolEvent>()` bytes (104 on 64-bit targets today) plus, for a
//! module's end, its state's text; job names are shared with the jobs (a reference count).
//! Between the pool and the recorder's thread the events pass through the recorder's listener,
//! a bounded channel of `capacity` events, at least 1,024 and at most 16,384, allocated up
//! front. So a recorder of capacity N holds at most about (N + min(max(N, 1024), 16384)) × 104
//! bytes: 210 kB for N = 1,000, 12 MB for N = 100,000.
//!
//! # Lost events
//!
//! An event is lost when it falls out of the ring buffer ([`Timeline::evicted`]) or finds the
//! listener full because the recorder's thread fell behind ([`Timeline::dropped`]); both are
//! counted ([`Timeline::lost`]). A slice whose start or end is missing from the timeline is left
//! out of the trace: a task, job or module whose first event was lost, and one that was still
//! running when the recording stopped. What lost events leave is partial but never wrong.
//!
//! # Timestamps
//!
//! In microseconds (to the nanosecond, as decimals) from the earliest event of the timeline.
//! Each event's time is read on the thread it happened on, just before it is told, so the
//! slices of one thread never overlap other than by nesting, and a job's span contains its
//! tasks.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{
    AtomicBool,
    Ordering::{Acquire, Release},
};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::event::PoolEvent;
use super::listeners::Events;
use crate::Pool;

/// The smallest listener a recorder subscribes: room for a burst while its thread wakes up.
const LISTENER_MIN: usize = 1024;
/// The largest listener a recorder subscribes: a channel allocates all its slots up front.
const LISTENER_MAX: usize = 16_384;
/// How often the recorder's thread looks at its stop flag while no event comes: the longest
/// [`Recorder::finish`] waits.
const TICK: Duration = Duration::from_millis(10);

/// Records a pool's events in the background, keeping the most recent ones, for a
/// [`Timeline`].
///
/// It listens from [`start`](Recorder::start) until [`finish`](Recorder::finish) (dropping it
/// stops it too, and throws the events away). The pool is not kept alive by it: once the pool
/// is gone, the recorder keeps what it had. While it records, the pool tells it every event,
/// at the cost [`Events`](crate::Events) describes.
///
/// **Memory** is bounded: the timeline keeps at most `capacity` events (the number given to
/// [`start`](Recorder::start)), the oldest going first, each about 104 bytes (a
/// [`PoolEvent`](crate::PoolEvent); job names are shared with the jobs). On the way, events
/// wait in the recorder's listener, a channel of `capacity` events but at least 1,024 and at
/// most 16,384: about (N + min(max(N, 1024), 16384)) × 104 bytes for a capacity of N, 210 kB
/// for N = 1,000 and 12 MB for N = 100,000. Events lost on the way are counted
/// ([`Timeline::lost`]); what the trace shows is on [`Timeline::write_chrome_trace`].
///
/// # Examples
///
/// ```
/// use jobpool::{Pool, Recorder};
///
/// let pool = Pool::new(2);
/// let recorder = Recorder::start(&pool, 10_000);
/// pool.job().name("resize").cap(2).submit((0..8).map(|i| move || i * 2)).wait()?;
/// let timeline = recorder.finish();
/// assert_eq!(timeline.lost(), 0);
///
/// let mut json = Vec::new();
/// timeline.write_chrome_trace(&mut json)?;
/// assert!(json.starts_with(br#"{"traceEvents":["#));
/// // Or straight to a file, for https://ui.perfetto.dev:
/// // timeline.save("trace.json")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Recorder {
    /// Set by `finish` (or a drop) to stop the thread.
    stop: Arc<AtomicBool>,
    /// The recorder's thread, which returns what it recorded; `None` once joined.
    thread: Option<JoinHandle<Timeline>>,
}

impl Recorder {
    /// Starts recording `pool`'s events, keeping the most recent `capacity` of them (at least
    /// one). Events that happen from this call on are recorded; none before.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start the recorder's thread, as
    /// [`std::thread::spawn`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{EventKind, Pool, Recorder};
    ///
    /// let pool = Pool::new(1);
    /// let before = pool.submit(vec![|| ()], 1);
    /// before.wait()?;
    /// let recorder = Recorder::start(&pool, 1_000);
    /// let job = pool.submit(vec![|| ()], 1);
    /// let id = job.id();
    /// job.wait()?;
    /// let timeline = recorder.finish();
    /// assert!(timeline.events().iter().all(|e| e.job == Some(id)));
    /// assert!(matches!(timeline.events()[0].kind, EventKind::JobSubmitted { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(pool: &Pool, capacity: usize) -> Recorder {
        let capacity = capacity.max(1);
        let events = pool.events(capacity.clamp(LISTENER_MIN, LISTENER_MAX));
        let threads = pool.threads();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::Builder::new()
            .name("jobpool-recorder".into())
            .spawn({
                let stop = stop.clone();
                move || record(events, Ring::new(capacity), &stop, threads)
            })
            .expect("failed to start the recorder's thread");
        Recorder {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops recording and returns the timeline: every event told before this call (that was
    /// not lost, see [`Timeline::lost`]), in the order the pool told them.
    ///
    /// Waits for the recorder's thread to take in the last events: at most about 10 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{EventKind, Pool, Recorder};
    ///
    /// let pool = Pool::new(2);
    /// let recorder = Recorder::start(&pool, 1_000);
    /// pool.submit((0..4).map(|i| move || i), 2).wait()?;
    /// let timeline = recorder.finish();
    /// // The job's last event was told before `wait` returned.
    /// let last = timeline.events().last().unwrap();
    /// assert!(matches!(last.kind, EventKind::JobFinished { done: 4, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish(mut self) -> Timeline {
        // Release pairs with the thread's Acquire load: the events told before this call are
        // in the listener by then, and the thread takes them in before it returns.
        self.stop.store(true, Release);
        let thread = self.thread.take().expect("a recorder is joined only once");
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Release);
            // Its panic, if any, was printed already; a drop does not panic again.
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("recording", &self.thread.is_some())
            .finish()
    }
}

/// The recorder's thread: takes events in until stopped (or until the pool is gone), then takes
/// what is left in the listener.
fn record(events: Events, mut ring: Ring, stop: &AtomicBool, threads: usize) -> Timeline {
    // Acquire pairs with the Release store in `finish`: once the flag is seen, every event told
    // before `finish` was called is in the listener, for the `try_iter` below.
    while !stop.load(Acquire) {
        let asked = Instant::now();
        match events.recv_timeout(TICK) {
            Some(event) => ring.push(event),
            // A receive gives up before its timeout only when no sender is left: the pool is
            // gone, and nothing more will come.
            None if asked.elapsed() < TICK => break,
            None => {}
        }
    }
    for event in events.try_iter() {
        ring.push(event);
    }
    Timeline {
        events: ring.events.into(),
        evicted: ring.evicted,
        dropped: events.dropped(),
        threads,
    }
}

/// The most recent events, at most `capacity` of them, and a count of those that fell out.
struct Ring {
    events: VecDeque<PoolEvent>,
    capacity: usize,
    evicted: u64,
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        Ring {
            events: VecDeque::new(),
            capacity,
            evicted: 0,
        }
    }

    fn push(&mut self, event: PoolEvent) {
        let len = self.events.len();
        if len == self.capacity {
            self.events.pop_front();
            self.evicted += 1;
        } else if len == self.events.capacity() {
            // Doubles, as a `VecDeque` would, but never past `capacity`: the bound holds for
            // the memory, not only for the length.
            self.events
                .reserve_exact(len.max(16).min(self.capacity - len));
        }
        self.events.push_back(event);
    }
}

/// A recorded stretch of a pool's life: the events a [`Recorder`] kept, to look at or to write
/// out as a trace for Perfetto or `chrome://tracing`.
///
/// # Examples
///
/// ```
/// use jobpool::{EventKind, Pool, Recorder};
///
/// let pool = Pool::new(2);
/// let recorder = Recorder::start(&pool, 1_000);
/// pool.submit((0..3).map(|i| move || i), 2).wait()?;
/// let timeline = recorder.finish();
/// let tasks = timeline
///     .events()
///     .iter()
///     .filter(|e| matches!(e.kind, EventKind::TaskEnded { .. }))
///     .count();
/// assert_eq!(tasks, 3);
/// println!("{timeline:?}"); // Timeline { events: 9, threads: 2, evicted: 0, dropped: 0 }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Timeline {
    pub(super) events: Vec<PoolEvent>,
    pub(super) evicted: u64,
    pub(super) dropped: u64,
    pub(super) threads: usize,
}

impl Timeline {
    /// The events kept, in the order the pool told them (which may differ from the order of
    /// their times by the moment between reading the clock and telling).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{EventKind, Pool, Recorder};
    ///
    /// let pool = Pool::new(1);
    /// let recorder = Recorder::start(&pool, 1_000);
    /// pool.job().name("probe").submit(vec![|| ()]).wait()?;
    /// let timeline = recorder.finish();
    /// let kinds: Vec<_> = timeline.events().iter().map(|e| &e.kind).collect();
    /// assert!(matches!(kinds[0], EventKind::JobSubmitted { tasks: 1, .. }));
    /// assert!(matches!(kinds[1], EventKind::JobStarted));
    /// assert!(timeline.events().iter().all(|e| e.name.as_deref() == Some("probe")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn events(&self) -> &[PoolEvent] {
        &self.events
    }

    /// Events that fell out of the ring buffer to make room for newer ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, Recorder};
    ///
    /// let pool = Pool::new(1);
    /// let recorder = Recorder::start(&pool, 10);
    /// // 2 events per task, and 3 for the job: 203 in all.
    /// pool.submit((0..100).map(|i| move || i), 1).wait()?;
    /// let timeline = recorder.finish();
    /// assert_eq!(timeline.events().len(), 10);
    /// assert_eq!(timeline.evicted() + timeline.dropped(), 193);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Events the pool dropped because the recorder's listener was full: its thread fell
    /// behind (see [`Events::dropped`](crate::Events::dropped)).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, Recorder};
    ///
    /// let pool = Pool::new(2);
    /// let recorder = Recorder::start(&pool, 100_000);
    /// pool.submit((0..100).map(|i| move || i), 2).wait()?;
    /// // A listener of at least 1,024 events holds these 203 even if the thread never ran.
    /// assert_eq!(recorder.finish().dropped(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Every event lost while recording: [`evicted`](Self::evicted) and
    /// [`dropped`](Self::dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, Recorder};
    ///
    /// let pool = Pool::new(1);
    /// let recorder = Recorder::start(&pool, 10_000);
    /// pool.submit((0..10).map(|i| move || i), 1).wait()?;
    /// let timeline = recorder.finish();
    /// assert_eq!(timeline.lost(), 0);
    /// assert_eq!(timeline.events().len(), 23);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lost(&self) -> u64 {
        self.evicted + self.dropped
    }

    /// The pool's number of worker threads. In the trace, workers are the threads numbered
    /// (`tid`) 0 to `threads() - 1`, and other threads share the one numbered `threads()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, Recorder};
    ///
    /// let pool = Pool::new(3);
    /// assert_eq!(Recorder::start(&pool, 100).finish().threads(), 3);
    /// ```
    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl fmt::Debug for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeline")
            .field("events", &self.events.len())
            .field("threads", &self.threads)
            .field("evicted", &self.evicted)
            .field("dropped", &self.dropped)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::event::EventKind;

    fn event(kind: EventKind) -> PoolEvent {
        PoolEvent::for_test(kind)
    }

    #[test]
    fn the_ring_keeps_the_last_events_and_never_allocates_past_its_capacity() {
        let mut ring = Ring::new(1000);
        for index in 0..5000 {
            ring.push(event(EventKind::TaskStarted { index, attempt: 1 }));
            assert!(ring.events.capacity() <= 1000, "{}", ring.events.capacity());
        }
        assert_eq!(ring.events.len(), 1000);
        assert_eq!(ring.evicted, 4000);
        let first = &ring.events[0].kind;
        assert_eq!(
            *first,
            EventKind::TaskStarted {
                index: 4000,
                attempt: 1
            }
        );
    }

    #[test]
    fn an_event_is_about_as_big_as_the_docs_say() {
        if cfg!(target_pointer_width = "64") {
            // The module docs count 104 bytes; update them if this grows.
            assert!(std::mem::size_of::<PoolEvent>() <= 112);
        }
    }
}
