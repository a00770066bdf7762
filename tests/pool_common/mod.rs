//! Synchronization helpers shared by the `pool_*` integration tests.
//!
//! None of them sleeps: tests order events with latches, gates and channels only.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};

/// A countdown: `wait` returns once `count_down` was called `n` times.
#[derive(Debug)]
pub struct Latch {
    left: Mutex<usize>,
    zero: Condvar,
}

impl Latch {
    pub fn new(n: usize) -> Arc<Latch> {
        Arc::new(Latch {
            left: Mutex::new(n),
            zero: Condvar::new(),
        })
    }

    pub fn count_down(&self) {
        let mut left = self.left.lock().unwrap();
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.zero.notify_all();
        }
    }

    pub fn wait(&self) {
        let mut left = self.left.lock().unwrap();
        while *left > 0 {
            left = self.zero.wait(left).unwrap();
        }
    }

    /// Counts down, then waits for the others: a one-shot rendezvous of `n` parties.
    pub fn arrive_and_wait(&self) {
        self.count_down();
        self.wait();
    }

    pub fn is_open(&self) -> bool {
        *self.left.lock().unwrap() == 0
    }
}

/// A gate that lets through one caller of `pass` per permit given with `open`.
#[derive(Debug, Default)]
pub struct Gate {
    permits: Mutex<usize>,
    changed: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    /// Lets `n` more callers of `pass` through.
    pub fn open(&self, n: usize) {
        *self.permits.lock().unwrap() += n;
        self.changed.notify_all();
    }

    /// Lets every caller through from now on.
    pub fn open_all(&self) {
        self.open(usize::MAX / 2);
    }

    /// A guard that lets every caller through when dropped. Declared after the pool, it is
    /// dropped before it, so a failed assertion with tasks still held at the gate fails the
    /// test instead of hanging it in the pool's drop (which waits for every accepted task).
    pub fn opener(self: &Arc<Self>) -> OpenOnDrop {
        OpenOnDrop(self.clone())
    }

    /// Blocks until a permit is available, and takes it.
    pub fn pass(&self) {
        let mut permits = self.permits.lock().unwrap();
        while *permits == 0 {
            permits = self.changed.wait(permits).unwrap();
        }
        *permits -= 1;
    }
}

/// Opens its gate for good when dropped; from [`Gate::opener`].
pub struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open_all();
    }
}

/// Measures how many callers are inside a section at once.
#[derive(Debug, Default)]
pub struct Meter {
    active: AtomicUsize,
    peak: AtomicUsize,
}

impl Meter {
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter::default())
    }

    /// Enters the section: `peak = max(peak, active + 1)`. Leaves it when the guard drops.
    /// Returns the guard and how many were inside before this caller.
    pub fn enter(&self) -> (Inside<'_>, usize) {
        let before = self.active.fetch_add(1, SeqCst);
        self.peak.fetch_max(before + 1, SeqCst);
        (Inside(self), before)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(SeqCst)
    }

    pub fn active(&self) -> usize {
        self.active.load(SeqCst)
    }
}

/// Inside a `Meter`'s section until dropped.
pub struct Inside<'a>(&'a Meter);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, SeqCst);
    }
}

/// Counts its own drops in a shared counter: moved into a task, it proves the task was dropped
/// (run or not) exactly once.
#[derive(Debug)]
pub struct DropCount(pub Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// One counter per task, to prove each ran exactly once.
pub fn counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

/// The counters' values.
pub fn values(counters: &[AtomicUsize]) -> Vec<usize> {
    counters.iter().map(|c| c.load(SeqCst)).collect()
}

/// Every panic raised on purpose by these tests starts with this.
pub const ON_PURPOSE: &str = "on purpose";

/// Silences the panic hook for panics whose message starts with [`ON_PURPOSE`], keeping the
/// default report for every other panic. Idempotent.
pub fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with(ON_PURPOSE)) {
                previous(info);
            }
        }));
    });
}

/// Runs `body` on a thread of its own; `None` if it has not returned within 10 s. Only turns a
/// would-be hang into a failure: a correct pool passes whatever the limit.
#[allow(dead_code)]
pub fn within_hang_limit<R: Send + 'static>(
    body: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10)).ok()
}

/// Submits one task that waits at `gate`, and returns once it runs: on a pool of one thread,
/// its only worker is then held until the gate lets the task through.
pub fn hold_a_worker(pool: &jobpool::Pool, gate: &Arc<Gate>) -> jobpool::JobHandle<()> {
    let started = Latch::new(1);
    let holder = {
        let (gate, started) = (gate.clone(), started.clone());
        pool.submit(
            vec![move || {
                started.count_down();
                gate.pass();
            }],
            1,
        )
    };
    started.wait();
    holder
}
