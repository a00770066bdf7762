//! Watching the soak: progress, the watchdog that reports hangs, how a failure is reported,
//! and the panic hook that keeps the panics raised on purpose quiet.

use std::any::Any;
use std::fmt::{self, Write as _};
use std::panic;
use std::process::{self, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::round::RoundState;

/// How long nothing may move before the watchdog calls it a hang.
const HANG_AFTER: Duration = Duration::from_secs(20);
/// How long gdb may take to print every thread's stack for a hang report.
const STACKS_WITHIN: Duration = Duration::from_secs(60);
/// Every panic raised on purpose carries this prefix, or a [`PanicsOnDrop`] payload; the panic
/// hook keeps them quiet.
pub(crate) const ON_PURPOSE: &str = "soak: on purpose";
/// The prefix of the pool's thread names, so code can tell it runs on a worker.
pub(crate) const WORKER_NAME: &str = "soak-worker";

/// What the watchdog and the failure reports read: where the soak is and whether it moves.
pub(crate) struct Monitor {
    pub(crate) seed: AtomicU64,
    pub(crate) round: AtomicU64,
    /// Bumped by every task that starts or ends, every drop the round waits for, every step
    /// of the test thread. Polling loops do not bump it: a poll that never ends is a hang.
    ticks: AtomicU64,
    /// What the test thread is doing.
    pub(crate) step: Mutex<String>,
    /// The round being played, for the hang report.
    pub(crate) round_state: Mutex<Option<Arc<RoundState>>>,
    pub(crate) panics_on_purpose: AtomicU64,
    failing: AtomicBool,
}

pub(crate) static MONITOR: Monitor = Monitor {
    seed: AtomicU64::new(0),
    round: AtomicU64::new(0),
    ticks: AtomicU64::new(0),
    step: Mutex::new(String::new()),
    round_state: Mutex::new(None),
    panics_on_purpose: AtomicU64::new(0),
    failing: AtomicBool::new(false),
};

/// Something moved.
pub(crate) fn tick() {
    MONITOR.ticks.fetch_add(1, SeqCst);
}

/// The test thread starts doing `what`.
pub(crate) fn step(what: impl Into<String>) {
    *lock(&MONITOR.step) = what.into();
    tick();
}

/// Reports a failed check with the seed and round that replay it, and ends the process.
pub(crate) fn fail(what: impl fmt::Display) -> ! {
    if MONITOR.failing.swap(true, SeqCst) {
        // Another thread is reporting a failure, and will end the process.
        loop {
            thread::park();
        }
    }
    let seed = MONITOR.seed.load(SeqCst);
    let round = MONITOR.round.load(SeqCst);
    eprintln!("soak FAILED: seed={seed} round={round}: {what}");
    eprintln!("replay: cargo run --release --example soak -- --seed {seed} --round {round}");
    process::exit(1)
}

/// A lock that shrugs off poisoning: a failed check ends the process rather than unwinding.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends the process if nothing moves for [`HANG_AFTER`]. It wakes every quarter second: a
/// timer, not a way to order events.
pub(crate) fn start_watchdog() {
    let watch = || {
        let mut seen = MONITOR.ticks.load(SeqCst);
        let mut since = Instant::now();
        loop {
            thread::sleep(Duration::from_millis(250));
            let now = MONITOR.ticks.load(SeqCst);
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() >= HANG_AFTER {
                fail(hang_report(since.elapsed()));
            }
        }
    };
    thread::Builder::new()
        .name("soak-watchdog".into())
        .spawn(watch)
        .expect("start the watchdog thread");
}

/// What was in flight when the soak stopped moving.
fn hang_report(stalled: Duration) -> String {
    let mut report = format!("no progress for {stalled:.0?}: a hang");
    let _ = write!(report, "\n  the test thread: {}", lock(&MONITOR.step));
    if let Some(round) = lock(&MONITOR.round_state).as_ref() {
        round.describe_in_flight(&mut report);
    }
    match thread_stacks() {
        Some(stacks) => {
            let _ = write!(report, "\n  every thread's stack (gdb):\n{stacks}");
        }
        None => report.push_str("\n  (no thread stacks: gdb is missing or could not attach)"),
    }
    report
}

/// Every thread's stack, from gdb attached to this process, or `None` if gdb is not installed,
/// may not attach (the machine's ptrace policy), or takes over [`STACKS_WITHIN`]. Where a
/// hang's threads wait is what its report most needs, and a hang in CI is rare and may not
/// come again.
fn thread_stacks() -> Option<String> {
    let mut gdb = Command::new("gdb")
        .args(["-batch", "-nx", "-p", &process::id().to_string()])
        .args(["-ex", "thread apply all bt"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = gdb.stdout.take()?;
    // Read on a thread of its own, so that a gdb that never ends is killed, not waited for.
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let start = Instant::now();
    while gdb.try_wait().ok()?.is_none() {
        if start.elapsed() >= STACKS_WITHIN {
            let _ = gdb.kill();
            let _ = gdb.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let text = reader.join().ok()?;
    text.contains("Thread ").then_some(text)
}

/// A panic payload whose `Drop` panics in turn, with another of its kind, unless the thread is
/// already unwinding: the pool must catch that second panic too.
pub(crate) struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic::panic_any(PanicsOnDrop);
        }
    }
}

/// Keeps the panics raised on purpose quiet (there are many); any other panic is reported as
/// usual and fails the soak.
pub(crate) fn install_panic_hook() {
    let report = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        if payload.is::<PanicsOnDrop>() || payload_message(payload).starts_with(ON_PURPOSE) {
            MONITOR.panics_on_purpose.fetch_add(1, SeqCst);
        } else {
            report(info);
            let thread = thread::current();
            fail(format_args!(
                "unexpected panic on thread `{}`: {}",
                thread.name().unwrap_or("unnamed"),
                payload_message(payload)
            ));
        }
    }));
}

pub(crate) fn payload_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else if payload.is::<PanicsOnDrop>() {
        "<a PanicsOnDrop payload>"
    } else {
        "<a payload of another type>"
    }
}

pub(crate) fn on_worker() -> bool {
    thread::current()
        .name()
        .is_some_and(|name| name.starts_with(WORKER_NAME))
}
