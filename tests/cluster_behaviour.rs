#![cfg(feature = "cluster")]
//! The cluster's behaviour in one process, against a real nats-server per test: priorities,
//! delayed retries, bad input, cancellation, changing the cap, and credentials.
//!
//! Workers and submitters live in the test process, so the task closures share state with the
//! test (`Arc`s): run orders, attempt counts, concurrency. Threads are ordered with latches,
//! never with sleeps (the sleeps inside tasks are only their work), and every wait has a
//! deadline, so that a hang fails the test with a message instead of blocking it.

mod cluster_common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use jobpool::cluster::{
    Broker, ClusterError, RemoteFailure, RemoteJob, RemoteTaskError, Submitter, TaskType,
    TaskTypes, Worker,
};
use jobpool::{Priority, Retry};
use serde::de::DeserializeOwned;

use cluster_common::NatsServer;

/// The longest any single wait of these tests may take before the test fails.
const LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Runs `f` on a thread of its own and returns its value, or fails the test if it takes longer
/// than `limit` (the thread is then left behind: the test fails anyway).
fn bounded<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not return within {limit:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Waits for every result of `job`, within `limit`.
fn wait_job<O: DeserializeOwned + Send + 'static>(
    what: &str,
    job: &Arc<RemoteJob<O>>,
    limit: Duration,
) -> Vec<Result<O, RemoteFailure>> {
    let job = job.clone();
    bounded(&format!("{what}: RemoteJob::wait"), limit, move || {
        job.wait()
    })
    .unwrap_or_else(|err| panic!("{what}: RemoteJob::wait failed: {err}"))
}

/// Stops `worker` within `LIMIT`, and returns how many tasks it ran.
fn stop_worker(worker: Worker) -> usize {
    bounded("Worker::stop", LIMIT, move || worker.stop()).expect("the worker stops cleanly")
}

/// A one-shot latch: `open` once, `wait` for it with a deadline (a [`Counter`] that reaches 1).
#[derive(Default)]
struct Latch(Counter);

impl Latch {
    fn new() -> Arc<Latch> {
        Arc::new(Latch::default())
    }

    fn open(&self) {
        self.0.add();
    }

    /// Whether it opened within `limit`.
    fn wait(&self, limit: Duration) -> bool {
        self.0.wait_for(1, limit)
    }
}

/// A counter one can wait on: `wait_for(n)` returns once it reached `n`.
#[derive(Default)]
struct Counter {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Counter {
    fn new() -> Arc<Counter> {
        Arc::new(Counter::default())
    }

    fn add(&self) {
        *self.count.lock().unwrap() += 1;
        self.changed.notify_all();
    }

    fn get(&self) -> usize {
        *self.count.lock().unwrap()
    }

    /// Whether it reached `n` within `limit`.
    fn wait_for(&self, n: usize, limit: Duration) -> bool {
        let count = self.count.lock().unwrap();
        let (count, _) = self
            .changed
            .wait_timeout_while(count, limit, |count| *count < n)
            .unwrap();
        *count >= n
    }
}

/// How many tasks run at once right now, and the most seen since the last `take_max`.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    max: AtomicUsize,
    max_ever: AtomicUsize,
}

impl Concurrency {
    fn enter(&self) {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
        self.max_ever.fetch_max(now, SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, SeqCst);
    }

    fn take_max(&self) -> usize {
        self.max.swap(self.now.load(SeqCst), SeqCst)
    }
}

/// What happened, in the order it happened.
type Log<E> = Arc<Mutex<Vec<E>>>;

fn log<E>(log: &Log<E>, event: E) {
    log.lock().unwrap().push(event);
}

/// A broker with a short ack wait, so that a lost task would come back soon.
fn broker(server: &NatsServer) -> Broker {
    Broker::new(server.url()).ack_wait(Duration::from_secs(5))
}

/// `square` on 1, 2, 3 gives 1, 4, 9: the worker is alive and well.
fn assert_worker_still_runs(submitter: &Submitter, square: &TaskType<u64, u64>, after: &str) {
    let job = Arc::new(submitter.submit(square, [1u64, 2, 3], 2).unwrap());
    let results = wait_job(&format!("the job after {after}"), &job, LIMIT);
    assert_eq!(
        results,
        vec![Ok(1), Ok(4), Ok(9)],
        "the worker no longer runs jobs after {after}"
    );
}

fn sleep_ms(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

// ---------------------------------------------------------------------------------------------
// 1. Priorities
// ---------------------------------------------------------------------------------------------

#[test]
fn a_high_priority_job_overtakes_a_running_low_priority_job() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let broker = broker(&server);
    let order: Log<(char, u64, Instant)> = Log::default();
    let first_low_started = Latch::new();
    let high_submitted = Latch::new();

    let mut types = TaskTypes::new();
    let low = {
        let order = order.clone();
        let first_low_started = first_low_started.clone();
        let high_submitted = high_submitted.clone();
        types.register("low", move |i: u64| -> Result<u64, RemoteTaskError> {
            log(&order, ('L', i, Instant::now()));
            if i == 0 {
                // Keep the single thread busy until the high-priority job is on the broker.
                first_low_started.open();
                if !high_submitted.wait(LIMIT) {
                    return Err("the test never submitted the high-priority job".into());
                }
            }
            sleep_ms(30);
            Ok(i)
        })
    };
    let high = {
        let order = order.clone();
        types.register("high", move |i: u64| -> Result<u64, RemoteTaskError> {
            log(&order, ('H', i, Instant::now()));
            sleep_ms(30);
            Ok(100 + i)
        })
    };

    let worker = Worker::start(&broker, types, 1).expect("the worker connects");
    let submitter = Submitter::connect(&broker).expect("the submitter connects");
    let low_job = Arc::new(
        submitter
            .submit_with_priority(&low, 0..20u64, 1, Priority::Low)
            .unwrap(),
    );
    assert!(
        first_low_started.wait(LIMIT),
        "the low-priority job's first task did not start within {LIMIT:?}"
    );
    let high_job = Arc::new(
        submitter
            .submit_with_priority(&high, 0..3u64, 3, Priority::High)
            .unwrap(),
    );
    high_submitted.open();

    let high_results = wait_job("the high-priority job", &high_job, LIMIT);
    assert_eq!(high_results, vec![Ok(100), Ok(101), Ok(102)]);
    let low_results = wait_job("the low-priority job", &low_job, LIMIT);
    assert_eq!(low_results, (0..20u64).map(Ok).collect::<Vec<_>>());
    assert_eq!(stop_worker(worker), 23);

    let began = order.lock().unwrap()[0].2;
    let order: Vec<(char, u64)> = order
        .lock()
        .unwrap()
        .iter()
        .map(|&(kind, i, at)| {
            println!("{kind}{i} started at {:?}", at - began);
            (kind, i)
        })
        .collect();
    assert_eq!(order.len(), 23, "each task runs once: {order:?}");
    assert_eq!(order[0], ('L', 0), "the low job's first task runs first");
    let last_high = order
        .iter()
        .rposition(|&(kind, _)| kind == 'H')
        .expect("the high-priority tasks ran");
    // Beyond the one running when the high job arrived (L0), at most one more low task may
    // have been fetched before the worker read the high job's record.
    let lows_overtaking = order[1..last_high]
        .iter()
        .filter(|&&(kind, _)| kind == 'L')
        .count();
    assert!(
        lows_overtaking <= 1,
        "{lows_overtaking} low-priority tasks ran before the last high-priority one \
         (besides the one running when it was submitted): {order:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Delayed retries: the worker is free during the backoff
// ---------------------------------------------------------------------------------------------

/// An event of the retry test: a kind, the task's argument, its attempt, when.
type RetryEvent = (&'static str, u64, usize, Instant);

#[test]
fn a_retried_task_waits_on_the_broker_and_leaves_the_worker_free() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let broker = broker(&server);
    let events: Log<RetryEvent> = Log::default();
    let attempts: Arc<Mutex<HashMap<u64, usize>>> = Arc::default();
    let first_attempt_started = Latch::new();
    let quick_submitted = Latch::new();

    let policy = Retry::attempts(3)
        .backoff(Duration::from_millis(300), 1.0, Duration::from_millis(300))
        .jitter(0.0);
    let mut types = TaskTypes::new();
    let flaky = {
        let events = events.clone();
        let attempts = attempts.clone();
        let first_attempt_started = first_attempt_started.clone();
        let quick_submitted = quick_submitted.clone();
        types.register_with_retry(
            "flaky",
            policy,
            move |i: u64| -> Result<u64, RemoteTaskError> {
                let n = {
                    let mut attempts = attempts.lock().unwrap();
                    let n = attempts.entry(i).or_insert(0);
                    *n += 1;
                    *n
                };
                log(&events, ("start", i, n, Instant::now()));
                if i == 7 && n == 1 {
                    // The other job goes to the broker while this first attempt runs.
                    first_attempt_started.open();
                    if !quick_submitted.wait(LIMIT) {
                        return Err("the test never submitted the other job".into());
                    }
                }
                // 7 succeeds on its third attempt; any other argument always fails.
                let result = if i == 7 && n >= 3 {
                    Ok(i * 10)
                } else {
                    Err(format!("attempt {n} of {i} fails").into())
                };
                log(&events, ("end", i, n, Instant::now()));
                result
            },
        )
    };
    let quick = {
        let events = events.clone();
        types.register("quick", move |i: u64| -> Result<u64, RemoteTaskError> {
            log(&events, ("quick", i, 1, Instant::now()));
            sleep_ms(20);
            Ok(i)
        })
    };
    let fails = types.register("fails", |i: u64| -> Result<u64, RemoteTaskError> {
        Err(format!("no luck with {i}").into())
    });

    let worker = Worker::start(&broker, types, 1).expect("the worker connects");
    let submitter = Submitter::connect(&broker).expect("the submitter connects");
    let flaky_job = Arc::new(submitter.submit(&flaky, [7u64], 1).unwrap());
    assert!(
        first_attempt_started.wait(LIMIT),
        "the flaky task's first attempt did not start within {LIMIT:?}"
    );
    let quick_job = Arc::new(submitter.submit(&quick, 0..15u64, 1).unwrap());
    quick_submitted.open();

    let flaky_results = wait_job("the flaky job", &flaky_job, LIMIT);
    assert_eq!(flaky_results, vec![Ok(70)], "the third attempt succeeds");
    assert_eq!(
        attempts.lock().unwrap()[&7],
        3,
        "the flaky task ran 3 times"
    );
    let quick_results = wait_job("the quick job", &quick_job, LIMIT);
    assert_eq!(quick_results, (0..15u64).map(Ok).collect::<Vec<_>>());

    let events = events.lock().unwrap().clone();
    let at = |kind: &str, n: usize| {
        events
            .iter()
            .position(|&(k, i, attempt, _)| k == kind && i == 7 && attempt == n)
            .unwrap_or_else(|| panic!("no `{kind}` of attempt {n}: {events:?}"))
    };
    let (end_1, start_2) = (at("end", 1), at("start", 2));
    let quick_between = events[end_1..start_2]
        .iter()
        .filter(|&&(kind, ..)| kind == "quick")
        .count();
    assert!(
        quick_between >= 1,
        "no task of the other job ran on the single thread while the flaky task waited for its \
         retry: the worker was held during the backoff: {events:?}"
    );
    let backoff = events[start_2].3 - events[end_1].3;
    println!("{quick_between} quick tasks ran during a backoff of {backoff:?}");
    assert!(
        backoff >= Duration::from_millis(250),
        "the second attempt came {backoff:?} after the first failed: the 300 ms backoff was not \
         honoured"
    );
    let backoff = events[at("start", 3)].3 - events[at("end", 2)].3;
    assert!(
        backoff >= Duration::from_millis(250),
        "the third attempt came {backoff:?} after the second failed: the 300 ms backoff was not \
         honoured"
    );

    // A task without a retry policy fails for good at once, with its own error text; a task
    // that always fails gives up after its attempts, with its last error.
    let fails_job = Arc::new(submitter.submit(&fails, [5u64], 1).unwrap());
    let exhausted_job = Arc::new(submitter.submit(&flaky, [99u64], 1).unwrap());
    let failure = wait_job("the failing job", &fails_job, LIMIT)
        .pop()
        .unwrap()
        .expect_err("the task fails");
    assert_eq!(failure.message(), "no luck with 5");
    assert_eq!(failure.attempt(), 1);
    let failure = wait_job("the job that uses up its attempts", &exhausted_job, LIMIT)
        .pop()
        .unwrap()
        .expect_err("the task fails on every attempt");
    assert_eq!(failure.message(), "attempt 3 of 99 fails");
    assert_eq!(failure.attempt(), 3);
    assert_eq!(attempts.lock().unwrap()[&99], 3);
    assert_eq!(stop_worker(worker), 3 + 15 + 1 + 3);
}

// ---------------------------------------------------------------------------------------------
// 3. Bad input: a failure for the task, and the worker lives on
// ---------------------------------------------------------------------------------------------

/// A server; a worker of one thread that knows `square` and whatever `more` registers; a
/// submitter. Each test registers its submitter-side task types in a `TaskTypes` of its own.
struct BadInputSetup {
    worker: Worker,
    submitter: Submitter,
    square: TaskType<u64, u64>,
    _server: NatsServer,
}

fn bad_input_setup(more: impl FnOnce(&mut TaskTypes)) -> Option<BadInputSetup> {
    let server = NatsServer::start()?;
    let broker = broker(&server);
    let mut types = TaskTypes::new();
    let square = types.register("square", |x: u64| Ok(x * x));
    more(&mut types);
    let worker = Worker::start(&broker, types, 1).expect("the worker connects");
    let submitter = Submitter::connect(&broker).expect("the submitter connects");
    Some(BadInputSetup {
        worker,
        submitter,
        square,
        _server: server,
    })
}

/// The single result of a one-task job, which must be a failure.
fn single_failure<O: DeserializeOwned + Send + std::fmt::Debug + 'static>(
    what: &str,
    job: RemoteJob<O>,
) -> RemoteFailure {
    let mut results = wait_job(what, &Arc::new(job), LIMIT);
    assert_eq!(results.len(), 1);
    match results.pop().unwrap() {
        Err(failure) => failure,
        Ok(output) => panic!("{what}: expected a RemoteFailure, got Ok({output:?})"),
    }
}

#[test]
fn an_argument_of_another_type_is_a_failure_naming_both_types() {
    // The worker's `echo` takes a u64; the submitter's, a String. (postcard, not
    // self-describing, reads a String's length prefix as a valid u64: the mismatch shows only
    // because the job record names its types, which the worker checks.)
    let Some(setup) = bad_input_setup(|types| {
        types.register("echo", |x: u64| Ok(x));
    }) else {
        return;
    };
    let echo: TaskType<String, u64> =
        TaskTypes::new().register("echo", |s: String| Ok(s.len() as u64));
    let job = setup
        .submitter
        .submit(&echo, ["hello".to_owned()], 1)
        .unwrap();
    let failure = single_failure("a String argument to a u64 task", job);
    assert!(
        failure.message().contains("takes `u64`")
            && failure
                .message()
                .contains("submitted for `alloc::string::String`"),
        "unexpected message: {failure}"
    );
    assert_worker_still_runs(&setup.submitter, &setup.square, "a bad argument");
    stop_worker(setup.worker);
}

#[test]
fn an_argument_of_another_type_the_other_way_round_is_a_failure_too() {
    // The other way round: a u64 would be read as a String's length, with no bytes after it.
    let Some(setup) = bad_input_setup(|types| {
        types.register("echo", |s: String| Ok(s));
    }) else {
        return;
    };
    let echo: TaskType<u64, String> = TaskTypes::new().register("echo", |x: u64| Ok(x.to_string()));
    let job = setup.submitter.submit(&echo, [1_000u64], 1).unwrap();
    let failure = single_failure("a u64 argument to a String task", job);
    assert!(
        failure.message().contains("submitted for `u64`"),
        "unexpected message: {failure}"
    );
    assert_worker_still_runs(&setup.submitter, &setup.square, "a bad argument");
    stop_worker(setup.worker);
}

#[test]
fn an_unknown_task_type_is_a_failure_saying_so() {
    let Some(setup) = bad_input_setup(|_| {}) else {
        return;
    };
    let ghost: TaskType<u64, u64> = TaskTypes::new().register("ghost", Ok);
    let job = setup.submitter.submit(&ghost, [1u64], 1).unwrap();
    let failure = single_failure("a task type the worker does not know", job);
    assert!(
        failure.message().contains("no task type `ghost`"),
        "unexpected message: {failure}"
    );
    assert_worker_still_runs(&setup.submitter, &setup.square, "an unknown task type");
    stop_worker(setup.worker);
}

#[test]
fn an_oversized_result_is_a_failure_saying_it_is_too_large() {
    let big = |n: u64| -> Result<Vec<u8>, RemoteTaskError> { Ok(vec![7u8; n as usize]) };
    let Some(setup) = bad_input_setup(|types| {
        types.register("big", big);
    }) else {
        return;
    };
    let big = TaskTypes::new().register("big", big);
    let job = Arc::new(
        setup
            .submitter
            .submit(&big, [1u64 << 20, 800 * 1024, 16], 1)
            .unwrap(),
    );
    let mut results = wait_job("results of 1 MiB, 800 KiB and 16 bytes", &job, LIMIT);
    assert_eq!(results.len(), 3);
    assert_eq!(results.pop().unwrap(), Ok(vec![7u8; 16]));
    let fits = results.pop().unwrap();
    assert!(
        matches!(&fits, Ok(bytes) if bytes.len() == 800 * 1024),
        "a result of 800 KiB, under the limit, comes back: {:?}",
        fits.map(|bytes| bytes.len())
    );
    let failure = results.pop().unwrap().expect_err("1 MiB is too large");
    assert!(
        failure.message().contains("the result is") && failure.message().contains("more than"),
        "unexpected message: {failure}"
    );
    assert_worker_still_runs(&setup.submitter, &setup.square, "an oversized result");
    stop_worker(setup.worker);
}

#[test]
fn a_panicking_task_is_a_failure_with_the_panic_message() {
    let boom = |i: u64| -> Result<u64, RemoteTaskError> { panic!("boom number {i}") };
    let Some(setup) = bad_input_setup(|types| {
        types.register("boom", boom);
    }) else {
        return;
    };
    let boom = TaskTypes::new().register("boom", boom);
    let job = setup.submitter.submit(&boom, [3u64], 1).unwrap();
    let failure = single_failure("a panicking task", job);
    assert!(
        failure.message().contains("boom number 3") && failure.message().contains("panicked"),
        "unexpected message: {failure}"
    );
    assert_worker_still_runs(&setup.submitter, &setup.square, "a panic");
    stop_worker(setup.worker);
}

// ---------------------------------------------------------------------------------------------
// 4. Cancel
// ---------------------------------------------------------------------------------------------

#[test]
fn a_cancelled_job_stops_and_reports_the_rest_cancelled() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let broker = broker(&server);
    let started = Counter::new();
    let mut types = TaskTypes::new();
    let slow = {
        let started = started.clone();
        types.register("slow", move |i: u64| -> Result<u64, RemoteTaskError> {
            started.add();
            sleep_ms(20);
            Ok(i + 1000)
        })
    };
    let worker = Worker::start(&broker, types, 2).expect("the worker connects");
    let submitter = Submitter::connect(&broker).expect("the submitter connects");
    let job = Arc::new(submitter.submit(&slow, 0..50u64, 1).unwrap());

    let deadline = Instant::now() + LIMIT;
    let known_at_cancel = loop {
        let (known, total) = job.progress().expect("progress");
        assert_eq!(total, 50);
        if known >= 3 {
            break known;
        }
        assert!(
            Instant::now() < deadline,
            "only {known} results within {LIMIT:?}"
        );
    };
    {
        let job = job.clone();
        bounded("RemoteJob::cancel", LIMIT, move || job.cancel()).expect("cancel");
    }
    let cancelled_at = Instant::now();
    let results = wait_job("the cancelled job", &job, LIMIT);
    let waited = cancelled_at.elapsed();
    let started_at_wait = started.get();
    assert!(
        waited < Duration::from_secs(3),
        "wait() took {waited:?} after cancel()"
    );
    assert_eq!(results.len(), 50);
    for (i, result) in results.iter().enumerate().take(known_at_cancel) {
        assert_eq!(
            result,
            &Ok(i as u64 + 1000),
            "task {i} had its result before the cancel"
        );
    }
    let mut ok = 0;
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(value) => {
                assert_eq!(*value, i as u64 + 1000);
                ok += 1;
            }
            Err(failure) => assert_eq!(failure, &RemoteFailure::cancelled(), "task {i}"),
        }
    }
    assert!(ok >= known_at_cancel);
    assert!(ok < 50, "every task ran: the cancel did nothing");
    assert!(
        started_at_wait < 50,
        "{started_at_wait} of 50 tasks ran in all"
    );
    assert!(
        ok <= started_at_wait,
        "{ok} results, {started_at_wait} started"
    );
    println!(
        "{known_at_cancel} results at cancel, {ok} Ok in all, {started_at_wait} started, \
         wait() took {waited:?}"
    );
    let ran = stop_worker(worker);
    assert_eq!(
        started.get(),
        started_at_wait,
        "tasks started after wait() returned on a cancelled job"
    );
    assert_eq!(ran, started_at_wait, "the worker ran what started");
}

// ---------------------------------------------------------------------------------------------
// Beyond the brief: waiting, cancelling and progress from several handles and threads
// ---------------------------------------------------------------------------------------------

/// Starts `job.wait()` on a thread of its own; its outcome comes on the receiver.
fn spawn_wait<O: DeserializeOwned + Send + 'static>(
    job: &Arc<RemoteJob<O>>,
) -> mpsc::Receiver<Result<Vec<Result<O, RemoteFailure>>, ClusterError>> {
    let (tx, rx) = mpsc::channel();
    let job = job.clone();
    thread::spawn(move || {
        let _ = tx.send(job.wait());
    });
    rx
}

/// Opens its latch when dropped: declared after a worker, it is dropped before it, so that a
/// failed assertion with tasks held at the latch fails the test instead of hanging it in the
/// worker's drop (which finishes the tasks it holds).
struct OpenOnDrop(Arc<Latch>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[test]
fn a_job_cancelled_through_another_handle_ends_every_wait() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let broker = broker(&server);
    let started = Counter::new();
    let mut types = TaskTypes::new();
    let slow = {
        let started = started.clone();
        types.register("slow", move |i: u64| -> Result<u64, RemoteTaskError> {
            started.add();
            sleep_ms(20);
            Ok(i)
        })
    };
    let worker = Worker::start(&broker, types, 2).expect("the worker connects");
    let submitter = Submitter::connect(&broker).expect("the submitter connects");
    let job = Arc::new(submitter.submit(&slow, 0..50u64, 1).unwrap());
    // Another process's handle on the same job.
    let elsewhere = Submitter::connect(&broker).expect("a second submitter connects");
    let attached = Arc::new(elsewhere.attach(&slow, &job.id()).expect("attach"));
    let waits = [
        ("the submitting handle", spawn_wait(&job)),
        (
            "a handle attached by another submitter",
            spawn_wait(&attached),
        ),
    ];
    assert!(
        started.wait_for(3, LIMIT),
        "3 tasks did not start within {LIMIT:?}"
    );
    {
        let job = job.clone();
        bounded("RemoteJob::cancel", LIMIT, move || job.cancel()).expect("cancel");
    }
    let limit = Duration::from_secs(3);
    let deadline = Instant::now() + limit;
    let mut hung = Vec::new();
    for (which, wait) in waits {
        match wait.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(results) => {
                let results = results.expect("wait");
                assert_eq!(results.len(), 50);
                assert!(
                    results.contains(&Err(RemoteFailure::cancelled())),
                    "{which}: no task reported cancelled"
                );
            }
            Err(_) => hung.push(which),
        }
    }
    assert!(
        hung.is_empty(),
        "wait() on {hung:?} did not return within {limit:?} of the job's cancel"
    );
    assert!(started.get() < 50);
    stop_worker(worker);
}

#[test]
fn progress_answers_while_another_thread_waits() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let broker = broker(&server);
    let started = Counter::new();
    let release = Latch::new();
    let mut types = TaskTypes::new();
    let gated = {
        let started = started.clone();
        let release = release.clone();
        types.register("gated", move |i: u64| -> Result<u64, RemoteTaskError> {
            started.add();
            if !release.wait(LIMIT) {
                return Err("never released".into());
            }
            Ok(i)
        })
    };
    let worker = Worker::start(&broker, types, 2).expect("the worker connects");
    let _release_on_failure = OpenOnDrop(release.clone());
    let submitter = Submitter::connect(&broker).expect("the submitter connects");
    let job = Arc::new(submitter.submit(&gated, 0..2u64, 2).unwrap());
    assert!(
        started.wait_for(1, LIMIT),
        "no task started within {LIMIT:?}"
    );
    // The job cannot end before `release`: this wait() blocks until then.
    let waiting = spawn_wait(&job);
    let (tx, answered) = mpsc::channel();
    {
        let job = job.clone();
        thread::spawn(move || {
            // Many calls, so that some come while the other thread is in wait().
            for _ in 0..20 {
                let _ = tx.send(job.progress());
            }
        });
    }
    let limit = Duration::from_secs(2);
    let mut calls = 0;
    let mut blocked = false;
    while calls < 20 {
        match answered.recv_timeout(limit) {
            Ok(progress) => {
                let (known, total) = progress.expect("progress");
                assert_eq!((known, total), (0, 2));
                calls += 1;
            }
            Err(_) => {
                blocked = true;
                break;
            }
        }
    }
    release.open();
    let results = waiting
        .recv_timeout(LIMIT)
        .expect("wait() returns once released");
    assert_eq!(results.expect("wait"), vec![Ok(0), Ok(1)]);
    assert!(
        !blocked,
        "progress() call {} did not answer within {limit:?} while another thread was in wait() \
         (it answered only after the job ended)",
        calls + 1
    );
    stop_worker(worker);
}

// ---------------------------------------------------------------------------------------------
// 5. set_cap
// ---------------------------------------------------------------------------------------------

#[test]
fn raising_the_cap_lets_more_tasks_run_at_once_and_never_more() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let broker = broker(&server);
    let concurrency = Arc::new(Concurrency::default());
    let started = Counter::new();
    let mut types = TaskTypes::new();
    let task = {
        let concurrency = concurrency.clone();
        let started = started.clone();
        types.register("task", move |i: u64| -> Result<u64, RemoteTaskError> {
            concurrency.enter();
            started.add();
            sleep_ms(30);
            concurrency.leave();
            Ok(i)
        })
    };
    let worker = Worker::start(&broker, types, 4).expect("the worker connects");
    let submitter = Submitter::connect(&broker).expect("the submitter connects");
    let job = Arc::new(submitter.submit(&task, 0..40u64, 1).unwrap());

    assert!(
        started.wait_for(5, LIMIT),
        "5 tasks did not start within {LIMIT:?}"
    );
    let max_at_cap_1 = concurrency.take_max();
    assert_eq!(
        max_at_cap_1, 1,
        "with a cap of 1, {max_at_cap_1} tasks ran at once"
    );
    {
        let job = job.clone();
        bounded("RemoteJob::set_cap", LIMIT, move || job.set_cap(4)).expect("set_cap");
    }
    let results = wait_job("the job", &job, LIMIT);
    assert_eq!(results, (0..40u64).map(Ok).collect::<Vec<_>>());
    let max_at_cap_4 = concurrency.take_max();
    let max_ever = concurrency.max_ever.load(SeqCst);
    println!("at once: {max_at_cap_1} at cap 1, {max_at_cap_4} at cap 4, {max_ever} ever");
    assert_eq!(stop_worker(worker), 40);
    assert!(max_ever <= 4, "{max_ever} tasks ran at once, more than 4");
    assert_eq!(
        max_at_cap_4, 4,
        "with the cap raised to 4 on a worker of 4 threads, at most {max_at_cap_4} ran at once"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Credentials
// ---------------------------------------------------------------------------------------------

#[test]
fn credentials_are_never_printed() {
    let broker = Broker::new("nats://127.0.0.1:4222").token("s3cr3t");
    let shown = format!("{broker:?}");
    assert!(!shown.contains("s3cr3t"), "the token is shown: {shown}");
    let shown = format!("{broker:#?}");
    assert!(!shown.contains("s3cr3t"), "the token is shown: {shown}");
    let broker = Broker::new("nats://127.0.0.1:4222").user_password("alice", "pa55w0rd");
    let shown = format!("{broker:?}");
    assert!(
        !shown.contains("pa55w0rd"),
        "the password is shown: {shown}"
    );
    assert!(!shown.contains("alice"), "the user name is shown: {shown}");
}

/// How a connection attempt ended, and how long it took.
type Attempted = (Result<(), ClusterError>, Duration);

#[test]
fn a_wrong_or_missing_token_is_refused_with_a_connect_error() {
    let Some(server) = NatsServer::start_with(&["--auth", "s3cr3t"]) else {
        return;
    };
    let brokers = [
        (
            "with a wrong token",
            Broker::new(server.url()).token("wr0ng"),
        ),
        ("without a token", Broker::new(server.url())),
    ];
    // Each login, as a submitter and as a worker, all at once (a refusal may take the
    // library's whole connect timeout).
    let mut attempts: Vec<(String, thread::JoinHandle<Attempted>)> = Vec::new();
    for (what, broker) in brokers {
        let submitter = broker.clone();
        attempts.push((
            format!("Submitter::connect {what}"),
            thread::spawn(move || {
                let began = Instant::now();
                (Submitter::connect(&submitter).map(drop), began.elapsed())
            }),
        ));
        attempts.push((
            format!("Worker::start {what}"),
            thread::spawn(move || {
                let began = Instant::now();
                let started = Worker::start(&broker, TaskTypes::new(), 1);
                let took = began.elapsed();
                (started.map(|worker| drop(worker.stop())), took)
            }),
        ));
    }
    // The library's own connect timeout is 10 s; allow a little more.
    let limit = Duration::from_secs(15);
    let deadline = Instant::now() + limit;
    let mut wrong = Vec::new();
    for (who, attempt) in attempts {
        while !attempt.is_finished() {
            assert!(
                Instant::now() < deadline,
                "{who} hangs: no answer within {limit:?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
        match attempt.join().expect("no panic") {
            (Err(ClusterError::Connect(why)), _) => {
                assert!(
                    !why.contains("s3cr3t") && !why.contains("wr0ng"),
                    "{who}: the error shows the token: {why}"
                );
            }
            (Err(other), took) => wrong.push(format!(
                "{who}: expected ClusterError::Connect, got {other:?} after {took:?}"
            )),
            (Ok(()), _) => wrong.push(format!("{who} succeeded")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_right_token_connects_and_runs_jobs() {
    let Some(server) = NatsServer::start_with(&["--auth", "s3cr3t"]) else {
        return;
    };
    let broker = Broker::new(server.url())
        .token("s3cr3t")
        .ack_wait(Duration::from_secs(5));
    let mut types = TaskTypes::new();
    let square = types.register("square", |x: u64| Ok(x * x));
    let worker = {
        let broker = broker.clone();
        bounded("Worker::start with the right token", LIMIT, move || {
            Worker::start(&broker, types, 2)
        })
        .expect("the worker connects with the right token")
    };
    let submitter = bounded(
        "Submitter::connect with the right token",
        LIMIT,
        move || Submitter::connect(&broker),
    )
    .expect("the submitter connects with the right token");
    assert_worker_still_runs(&submitter, &square, "connecting with a token");
    assert_eq!(stop_worker(worker), 3);
}

/// Connects a worker and a submitter through `broker` and runs a job; `login` names the way
/// in, for the messages.
fn assert_login_runs_jobs(broker: Broker, login: &str) {
    let mut types = TaskTypes::new();
    let square = types.register("square", |x: u64| Ok(x * x));
    let worker = {
        let broker = broker.clone();
        bounded(&format!("Worker::start with {login}"), LIMIT, move || {
            Worker::start(&broker, types, 2)
        })
        .unwrap_or_else(|err| panic!("the worker does not connect with {login}: {err}"))
    };
    let submitter = bounded(
        &format!("Submitter::connect with {login}"),
        LIMIT,
        move || Submitter::connect(&broker),
    )
    .unwrap_or_else(|err| panic!("the submitter does not connect with {login}: {err}"));
    assert_worker_still_runs(&submitter, &square, &format!("connecting with {login}"));
    assert_eq!(stop_worker(worker), 3);
}

#[test]
fn a_user_and_password_log_in_and_a_wrong_password_is_refused() {
    let Some(server) = NatsServer::start_with(&["--user", "alice", "--pass", "pa55w0rd"]) else {
        return;
    };
    let wrong = Broker::new(server.url()).user_password("alice", "wr0ng");
    // The library's own connect timeout is 10 s; allow a little more.
    let refused = bounded(
        "Submitter::connect with a wrong password",
        Duration::from_secs(15),
        move || Submitter::connect(&wrong).map(drop),
    );
    match refused {
        Err(ClusterError::Connect(why)) => assert!(
            !why.contains("wr0ng") && !why.contains("pa55w0rd"),
            "the error shows a password: {why}"
        ),
        other => panic!("a wrong password: expected ClusterError::Connect, got {other:?}"),
    }
    let right = Broker::new(server.url())
        .user_password("alice", "pa55w0rd")
        .ack_wait(Duration::from_secs(5));
    assert_login_runs_jobs(right, "a user and password");
}

/// A certificate authority and a certificate it signed for 127.0.0.1, made with the
/// `openssl` command in `dir`: (the authority's certificate, the server's, the server's
/// key); `None` (after a printed note) without `openssl`.
fn certificates(dir: &std::path::Path) -> Option<[std::path::PathBuf; 3]> {
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    if openssl(&["version"]).is_err() {
        println!("skipped: no openssl command to make a test certificate with");
        return None;
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &key[..],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
        [
            &["req"][..],
            &key[..],
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "server.ext",
        ],
    ];
    for (step, subject) in steps
        .iter()
        .zip(["/CN=jobpool test CA", "/CN=127.0.0.1", ""])
    {
        let mut args = step.clone();
        if !subject.is_empty() {
            args.extend(["-days", "1", "-subj", subject]);
        }
        let status = openssl(&args).expect("openssl runs");
        assert!(status.success(), "openssl {args:?} failed");
    }
    Some(["ca.pem", "server.pem", "server.key"].map(|file| dir.join(file)))
}

#[test]
fn tls_with_a_private_authority_connects_and_runs_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let Some([authority, certificate, key]) = certificates(dir.path()) else {
        return;
    };
    let (certificate, key) = (certificate.to_str().unwrap(), key.to_str().unwrap());
    let options = ["--tls", "--tlscert", certificate, "--tlskey", key];
    let Some(server) = NatsServer::start_with(&options) else {
        return;
    };
    // Without the authority the server's certificate is not trusted.
    let untrusted = Broker::new(server.url()).require_tls(true);
    let refused = bounded(
        "Submitter::connect without the authority",
        Duration::from_secs(15),
        move || Submitter::connect(&untrusted).map(drop),
    );
    assert!(
        matches!(refused, Err(ClusterError::Connect(_))),
        "an untrusted certificate: expected ClusterError::Connect, got {refused:?}"
    );
    let trusted = Broker::new(server.url())
        .require_tls(true)
        .root_certificate(&authority)
        .ack_wait(Duration::from_secs(5));
    assert_login_runs_jobs(trusted, "TLS");
}

// ---------------------------------------------------------------------------------------------
// Beyond the brief: throughput with finished jobs around
// ---------------------------------------------------------------------------------------------

#[test]
fn finished_jobs_do_not_slow_a_worker_down() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let broker = broker(&server);
    let starts: Log<Instant> = Log::default();
    let mut types = TaskTypes::new();
    let instant = {
        let starts = starts.clone();
        types.register("instant", move |i: u64| -> Result<u64, RemoteTaskError> {
            log(&starts, Instant::now());
            Ok(i)
        })
    };
    let worker = Worker::start(&broker, types, 1).expect("the worker connects");
    let submitter = Submitter::connect(&broker).expect("the submitter connects");
    // Two jobs that finish: the worker has seen them.
    for _ in 0..2 {
        let done = Arc::new(submitter.submit(&instant, [0u64], 1).unwrap());
        assert_eq!(wait_job("a one-task job", &done, LIMIT), vec![Ok(0)]);
    }
    starts.lock().unwrap().clear();
    let job = Arc::new(submitter.submit(&instant, 0..6u64, 1).unwrap());
    assert_eq!(
        wait_job("the measured job", &job, LIMIT),
        (0..6u64).map(Ok).collect::<Vec<_>>()
    );
    stop_worker(worker);
    let starts = starts.lock().unwrap().clone();
    let mut gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    // One job alone: about 20 ms between two tasks of no work (the worker's idle look).
    assert!(
        median < Duration::from_millis(150),
        "with 2 finished jobs known to the worker, its tasks of no work start {median:?} apart \
         (median; gaps {gaps:?})"
    );
}
