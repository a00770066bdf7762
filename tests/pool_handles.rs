//! Job handles: panics, cancel, set_cap, completions, on_finish, wait_timeout, progress.

mod pool_common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use jobpool::{JobHandle, Pool, TaskError, TimedOut};
use pool_common::{counters, quiet_panics, values, DropCount, Gate, Latch, Meter, ON_PURPOSE};

/// Waits for the job without consuming its handle, so its progress can be read after.
fn finish<T: Send + 'static>(job: &JobHandle<T>) {
    while job.wait_timeout(Duration::from_secs(3600)).is_err() {}
}

// ---------------------------------------------------------------------------------------------
// Panics

/// A pool of one thread: a task panics, the job's other tasks still run, the message and index
/// reach `JobError::panics`, and the single worker is still alive for the next job.
#[test]
fn panicking_task_is_reported_and_the_worker_survives() {
    quiet_panics();
    let pool = Pool::new(1);
    let worker_name = |pool: &Pool| {
        pool.submit(
            vec![|| std::thread::current().name().unwrap().to_owned()],
            1,
        )
        .wait()
        .unwrap()
        .remove(0)
    };
    let before = worker_name(&pool);
    let runs = counters(5);
    let job = pool.submit(
        (0..5).map(|i| {
            let runs = runs.clone();
            move || {
                runs[i].fetch_add(1, SeqCst);
                if i == 1 || i == 3 {
                    panic!("{ON_PURPOSE}: task {i}");
                }
                i * 10
            }
        }),
        1,
    );
    let mut err = job.wait().unwrap_err();
    assert_eq!(
        err.panics().collect::<Vec<_>>(),
        vec![(1, "on purpose: task 1"), (3, "on purpose: task 3")]
    );
    assert!(!err.was_cancelled());
    assert_eq!(
        err.results_mut(),
        &[
            Ok(0),
            Err(TaskError::Panicked("on purpose: task 1".into())),
            Ok(20),
            Err(TaskError::Panicked("on purpose: task 3".into())),
            Ok(40),
        ]
    );
    assert_eq!(values(&runs), vec![1; 5]);
    // The one worker lived through both panics (same thread, not a replacement).
    assert_eq!(pool.submit(vec![|| 7], 1).wait().unwrap(), vec![7]);
    assert_eq!(worker_name(&pool), before);
}

/// Panics in the middle of chunks of many short tasks (back to back, first and last): each is
/// reported at its index, every other task runs once and returns its value in order.
#[test]
fn panics_among_many_short_tasks_are_reported_at_their_index() {
    quiet_panics();
    const N: usize = 20_000;
    let panicking = [0, 1, 2, 4_999, 5_000, 12_345, N - 1];
    let runs = counters(N);
    let job = Pool::new(1).submit(
        (0..N).map(|i| {
            let runs = runs.clone();
            move || {
                runs[i].fetch_add(1, SeqCst);
                if panicking.contains(&i) {
                    panic!("{ON_PURPOSE}: task {i}");
                }
                i
            }
        }),
        1,
    );
    let mut err = job.wait().unwrap_err();
    assert_eq!(err.panics().map(|(i, _)| i).collect::<Vec<_>>(), panicking);
    for (i, result) in err.results_mut().iter().enumerate() {
        match result {
            Ok(value) => assert_eq!(*value, i),
            Err(error) => {
                assert!(panicking.contains(&i));
                assert_eq!(
                    *error,
                    TaskError::Panicked(format!("{ON_PURPOSE}: task {i}"))
                );
            }
        }
    }
    assert_eq!(values(&runs), vec![1; N]);
}

/// With fail-fast, a panic among many short tasks on one worker cancels every task after it,
/// none of which starts.
#[test]
fn fail_fast_stops_a_chunk_of_short_tasks_at_its_first_panic() {
    quiet_panics();
    const N: usize = 20_000;
    let runs = counters(N);
    let job = Pool::new(1).job().fail_fast(true).submit((0..N).map(|i| {
        let runs = runs.clone();
        move || {
            runs[i].fetch_add(1, SeqCst);
            if i == 3_000 {
                panic!("{ON_PURPOSE}: task {i}");
            }
        }
    }));
    let err = job.wait().unwrap_err();
    assert_eq!(
        err.panics().map(|(i, _)| i).collect::<Vec<_>>(),
        vec![3_000]
    );
    assert_eq!(
        err.cancelled().collect::<Vec<_>>(),
        (3_001..N).collect::<Vec<_>>()
    );
    let expected: Vec<usize> = (0..N).map(|i| usize::from(i <= 3_000)).collect();
    assert_eq!(values(&runs), expected);
}

/// Every task of a job panics, on several workers at once: all are reported, none kills a
/// worker (the pool runs a job that needs all of its workers at once afterwards).
#[test]
fn every_task_panicking_kills_no_worker() {
    quiet_panics();
    let pool = Pool::new(3);
    let err = pool
        .submit(
            (0..30).map(|i| move || -> usize { panic!("{ON_PURPOSE} {i}") }),
            3,
        )
        .wait()
        .unwrap_err();
    let panics: Vec<usize> = err.panics().map(|(i, _)| i).collect();
    assert_eq!(panics, (0..30).collect::<Vec<_>>());
    for (i, message) in err.panics() {
        assert_eq!(message, format!("{ON_PURPOSE} {i}"));
    }
    let meet = Latch::new(3);
    let all_three = pool.submit(
        (0..3).map(|_| {
            let meet = meet.clone();
            move || meet.arrive_and_wait()
        }),
        3,
    );
    all_three.wait().unwrap();
}

/// A panic with a non-string payload is still reported, as a placeholder message.
#[test]
fn non_string_panic_payload_is_reported() {
    quiet_panics();
    let pool = Pool::new(1);
    let err = pool
        .submit(vec![|| std::panic::panic_any(42_u32)], 1)
        .wait()
        .unwrap_err();
    assert_eq!(err.panics().map(|(i, _)| i).collect::<Vec<_>>(), vec![0]);
}

/// A panicking `on_finish` callback, run on the pool's only worker, does not kill it.
#[test]
fn panicking_on_finish_callback_kills_no_worker() {
    quiet_panics();
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let job = pool.submit(
        vec![{
            let gate = gate.clone();
            move || gate.pass()
        }],
        1,
    );
    let (called_tx, called) = mpsc::channel();
    // The job cannot have finished: its task waits at the gate, so the callback runs on the
    // worker that finishes the task.
    job.on_finish(move |results| {
        called_tx.send(results.is_ok()).unwrap();
        panic!("{ON_PURPOSE}: callback");
    });
    gate.open(1);
    assert!(called.recv().unwrap());
    assert_eq!(pool.submit(vec![|| 1, || 2], 1).wait().unwrap(), vec![1, 2]);
}

/// `on_finish` on a job that has finished already runs the callback at once on the caller's
/// thread; the docs promise "a panic in the callback is caught and ignored".
#[test]
fn panicking_on_finish_callback_on_a_finished_job_is_caught() {
    quiet_panics();
    let pool = Pool::new(1);
    let job = pool.submit(vec![|| 1], 1);
    finish(&job);
    let (called_tx, called) = mpsc::channel();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        job.on_finish(move |results| {
            called_tx.send(results.unwrap()).unwrap();
            panic!("{ON_PURPOSE}: late callback");
        })
    }));
    assert_eq!(called.recv().unwrap(), vec![1]);
    assert!(
        outcome.is_ok(),
        "the callback's panic escaped JobHandle::on_finish"
    );
}

// ---------------------------------------------------------------------------------------------
// on_finish

/// The callback gets every result in order, including failures, exactly once.
#[test]
fn on_finish_gets_the_results() {
    quiet_panics();
    let pool = Pool::new(2);
    let (tx, rx) = mpsc::channel();
    pool.submit((0..10).map(|i| move || i * 2), 2)
        .on_finish(move |results| tx.send(results.unwrap()).unwrap());
    assert_eq!(
        rx.recv().unwrap(),
        (0..10).map(|i| i * 2).collect::<Vec<_>>()
    );
    assert!(rx.recv().is_err(), "called more than once");

    let (tx, rx) = mpsc::channel();
    pool.submit(
        (0..3).map(|i| {
            move || {
                if i == 1 {
                    panic!("{ON_PURPOSE} on_finish");
                }
                i
            }
        }),
        1,
    )
    .on_finish(move |results| tx.send(results.unwrap_err().into_results()).unwrap());
    assert_eq!(
        rx.recv().unwrap(),
        vec![
            Ok(0),
            Err(TaskError::Panicked(format!("{ON_PURPOSE} on_finish"))),
            Ok(2)
        ]
    );
}

/// A job of no tasks has finished at once: the callback runs before `on_finish` returns.
#[test]
fn on_finish_of_an_empty_job_runs_at_once() {
    let pool = Pool::new(1);
    let called = Arc::new(AtomicUsize::new(0));
    let seen = called.clone();
    pool.submit(Vec::<fn() -> u8>::new(), 1)
        .on_finish(move |results| {
            assert!(results.unwrap().is_empty());
            seen.fetch_add(1, SeqCst);
        });
    assert_eq!(called.load(SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// cancel

/// N = 1: ten short tasks, then one held at a gate, then 89 more. Cancelled while the held task
/// runs: it finishes; the 89 never start (even those already claimed in the worker's chunk),
/// are reported `Cancelled`, and every closure is dropped exactly once.
#[test]
fn cancel_stops_tasks_not_started_and_lets_running_ones_finish() {
    const TASKS: usize = 100;
    const HELD: usize = 10;
    let pool = Pool::new(1);
    let runs = counters(TASKS);
    let drops = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let job = pool.submit(
        (0..TASKS).map(|i| {
            let (runs, gate, started_tx) = (runs.clone(), gate.clone(), started_tx.clone());
            let guard = DropCount(drops.clone());
            move || {
                let _guard = guard;
                runs[i].fetch_add(1, SeqCst);
                if i == HELD {
                    started_tx.send(()).unwrap();
                    gate.pass();
                }
                i
            }
        }),
        1,
    );
    started.recv().unwrap();
    job.cancel();
    gate.open(1);
    finish(&job);
    let p = job.progress();
    assert_eq!(
        (p.done, p.cancelled, p.panicked, p.running, p.pending),
        (HELD + 1, TASKS - HELD - 1, 0, 0, 0)
    );
    let mut err = job.wait().unwrap_err();
    assert!(err.was_cancelled());
    assert_eq!(
        err.cancelled().collect::<Vec<_>>(),
        (HELD + 1..TASKS).collect::<Vec<_>>()
    );
    for (i, result) in err.results_mut().iter().enumerate() {
        if i <= HELD {
            assert_eq!(result, &Ok(i));
        } else {
            assert_eq!(result, &Err(TaskError::Cancelled));
        }
    }
    let mut expected_runs = vec![1; HELD + 1];
    expected_runs.resize(TASKS, 0);
    assert_eq!(values(&runs), expected_runs);
    assert_eq!(drops.load(SeqCst), TASKS);
}

/// `canceller()` cancels from another thread, after the handle moved into `on_finish`.
#[test]
fn canceller_cancels_from_another_thread() {
    let pool = Pool::new(2);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let runs = counters(20);
    let job = pool.submit(
        (0..20).map(|i| {
            let (runs, gate, started_tx) = (runs.clone(), gate.clone(), started_tx.clone());
            move || {
                runs[i].fetch_add(1, SeqCst);
                if i == 0 {
                    started_tx.send(()).unwrap();
                    gate.pass();
                }
                i
            }
        }),
        1,
    );
    let canceller = job.canceller();
    let (results_tx, results) = mpsc::channel();
    job.on_finish(move |r| results_tx.send(r).unwrap());
    started.recv().unwrap();
    std::thread::spawn(move || canceller.cancel())
        .join()
        .unwrap();
    gate.open(1);
    let mut err = results.recv().unwrap().unwrap_err();
    assert_eq!(err.results_mut()[0], Ok(0));
    assert_eq!(
        err.cancelled().collect::<Vec<_>>(),
        (1..20).collect::<Vec<_>>()
    );
    let mut expected_runs = vec![0; 20];
    expected_runs[0] = 1;
    assert_eq!(values(&runs), expected_runs);
}

/// A task cancels its own job (N = 1, cap 1: tasks run one after another): the tasks up to and
/// including it complete, the rest are cancelled. The canceller is put at each of tasks 1 to
/// 39 in turn: whatever sizes the chunks take (they grow from one task, as fast as the clock
/// allows), a task at each place of a turn of the quiet loop (four tasks a turn) comes right
/// after a canceller in the same chunk.
#[test]
fn a_task_can_cancel_its_own_job() {
    for canceller in 1..40 {
        let pool = Pool::new(1);
        let slot: Arc<Mutex<Option<jobpool::Canceller>>> = Arc::new(Mutex::new(None));
        let gate = Gate::new();
        let _open_at_exit = gate.opener();
        let runs = counters(50);
        let job = pool.submit(
            (0..50).map(|i| {
                let (slot, gate, runs) = (slot.clone(), gate.clone(), runs.clone());
                move || {
                    runs[i].fetch_add(1, SeqCst);
                    if i == 0 {
                        gate.pass(); // until the canceller is in its slot
                    }
                    if i == canceller {
                        slot.lock().unwrap().as_ref().unwrap().cancel();
                    }
                    i
                }
            }),
            1,
        );
        *slot.lock().unwrap() = Some(job.canceller());
        gate.open(1);
        let err = job.wait().unwrap_err();
        assert_eq!(
            err.cancelled().collect::<Vec<_>>(),
            (canceller + 1..50).collect::<Vec<_>>(),
            "cancelled by task {canceller}"
        );
        let runs = values(&runs);
        assert!(runs[..=canceller].iter().all(|&r| r == 1), "{runs:?}");
        assert!(runs[canceller + 1..].iter().all(|&r| r == 0), "{runs:?}");
    }
}

/// Cancelling a finished job changes nothing.
#[test]
fn cancel_after_finish_is_a_no_op() {
    let pool = Pool::new(2);
    let job = pool.submit((0..10).map(|i| move || i), 2);
    finish(&job);
    job.cancel();
    job.canceller().cancel();
    assert_eq!(job.wait().unwrap(), (0..10).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// set_cap

/// N = 4, cap 1: the first task waits for three more to run beside it, which only a raised cap
/// allows. Raised to 4, the four meet.
#[test]
fn raising_the_cap_lets_more_tasks_run_at_once() {
    let pool = Pool::new(4);
    let meet = Latch::new(4);
    let meter = Meter::new();
    let (started_tx, started) = mpsc::channel();
    let job = pool.submit(
        (0..12).map(|i| {
            let (meet, meter, started_tx) = (meet.clone(), meter.clone(), started_tx.clone());
            move || {
                let (_inside, _) = meter.enter();
                started_tx.send(i).unwrap();
                meet.arrive_and_wait();
                i
            }
        }),
        1,
    );
    assert_eq!(started.recv().unwrap(), 0);
    assert_eq!(job.progress().peak_running, 1);
    job.set_cap(4).unwrap();
    assert_eq!(job.progress().cap, 4);
    finish(&job);
    assert_eq!(job.progress().peak_running, 4);
    assert_eq!(job.wait().unwrap(), (0..12).collect::<Vec<_>>());
    assert_eq!(meter.peak(), 4);
}

/// N = 4, cap 4: four tasks run, the cap is lowered to 1, they are let go. Every task that
/// starts after them starts alone: once the running ones drained, no two run at once.
#[test]
fn lowering_the_cap_serializes_once_running_tasks_drain() {
    const TASKS: usize = 40;
    let pool = Pool::new(4);
    let first_wave = Latch::new(4);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let meter = Meter::new();
    let order = Arc::new(AtomicUsize::new(0));
    let peak_after = Arc::new(AtomicUsize::new(0));
    let job = pool.submit(
        (0..TASKS).map(|i| {
            let (first_wave, gate, meter) = (first_wave.clone(), gate.clone(), meter.clone());
            let (order, peak_after) = (order.clone(), peak_after.clone());
            move || {
                let (_inside, others) = meter.enter();
                if order.fetch_add(1, SeqCst) < 4 {
                    first_wave.count_down();
                    gate.pass();
                } else {
                    peak_after.fetch_max(others + 1, SeqCst);
                    std::thread::yield_now();
                }
                i
            }
        }),
        4,
    );
    first_wave.wait();
    job.set_cap(1).unwrap();
    gate.open(4);
    finish(&job);
    let p = job.progress();
    assert_eq!((p.cap, p.peak_running), (1, 4));
    assert_eq!(job.wait().unwrap(), (0..TASKS).collect::<Vec<_>>());
    assert_eq!(meter.peak(), 4);
    assert_eq!(
        peak_after.load(SeqCst),
        1,
        "tasks ran together after the cap was lowered to 1"
    );
}

/// `set_cap(0)` is refused and leaves the cap as it was.
#[test]
fn set_cap_zero_is_an_error() {
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let job = pool.submit(
        vec![{
            let gate = gate.clone();
            move || gate.pass()
        }],
        3,
    );
    let err = job.set_cap(0).unwrap_err();
    assert_eq!(err, jobpool::ZeroCapError);
    assert_eq!(
        err.to_string(),
        "a job's cap must be at least 1 (0 was given)"
    );
    assert_eq!(job.progress().cap, 3);
    gate.open(1);
    job.wait().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Completions

/// Every index comes exactly once, with its own result, and then the iterator ends.
#[test]
fn completions_report_every_task_once() {
    const TASKS: usize = 300;
    let pool = Pool::new(3);
    let job = pool.submit((0..TASKS).map(|i| move || i * 7), 3);
    let mut seen = vec![0; TASKS];
    for (index, result) in job.completions() {
        assert_eq!(result, Ok(index * 7));
        seen[index] += 1;
    }
    assert_eq!(seen, vec![1; TASKS]);
}

/// While the only task that could finish is held at a gate, `next_timeout` times out; once
/// let go, results come in and the iterator ends.
#[test]
fn completions_next_timeout_times_out_while_a_task_is_held() {
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let mut results = pool
        .submit(
            (0..2).map(|i| {
                let (gate, started_tx) = (gate.clone(), started_tx.clone());
                move || {
                    if i == 0 {
                        started_tx.send(()).unwrap();
                        gate.pass();
                    }
                    i
                }
            }),
            1,
        )
        .completions();
    started.recv().unwrap();
    assert_eq!(
        results.next_timeout(Duration::from_millis(5)).unwrap_err(),
        TimedOut
    );
    assert_eq!(results.handle().progress().done, 0);
    gate.open(1);
    let timeout = Duration::from_secs(3600);
    assert_eq!(results.next_timeout(timeout).unwrap(), Some((0, Ok(0))));
    assert_eq!(results.next_timeout(timeout).unwrap(), Some((1, Ok(1))));
    assert_eq!(results.next_timeout(timeout).unwrap(), None);
    assert_eq!(results.next(), None);
}

/// Tasks that finished before `completions()` come first, in index order.
#[test]
fn completions_start_with_finished_tasks_in_index_order() {
    let pool = Pool::new(4);
    let job = pool.submit((0..40).map(|i| move || i), 4);
    finish(&job);
    let order: Vec<usize> = job.completions().map(|(i, _)| i).collect();
    assert_eq!(order, (0..40).collect::<Vec<_>>());
}

/// Panicked and cancelled tasks are reported through completions too.
#[test]
fn completions_report_panics_and_cancellations() {
    quiet_panics();
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let job = pool.submit(
        (0..6).map(|i| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            move || {
                if i == 1 {
                    panic!("{ON_PURPOSE} {i}");
                }
                if i == 2 {
                    started_tx.send(()).unwrap();
                    gate.pass();
                }
                i
            }
        }),
        1,
    );
    let results = job.completions();
    started.recv().unwrap();
    results.handle().cancel();
    gate.open(1);
    let mut all: Vec<_> = results.collect();
    all.sort_by_key(|(i, _)| *i);
    assert_eq!(
        all,
        vec![
            (0, Ok(0)),
            (1, Err(TaskError::Panicked(format!("{ON_PURPOSE} 1")))),
            (2, Ok(2)),
            (3, Err(TaskError::Cancelled)),
            (4, Err(TaskError::Cancelled)),
            (5, Err(TaskError::Cancelled)),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// wait_timeout and progress

/// `wait_timeout` says `false` while a task is held, `true` once the job finished.
#[test]
fn wait_timeout_reports_whether_the_job_finished() {
    let pool = Pool::new(2);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let job = pool.submit(
        vec![{
            let gate = gate.clone();
            move || {
                started_tx.send(()).unwrap();
                gate.pass();
                5
            }
        }],
        1,
    );
    started.recv().unwrap();
    assert!(job.wait_timeout(Duration::from_millis(5)).is_err());
    assert!(job.wait_timeout(Duration::ZERO).is_err());
    assert!(!job.is_finished());
    gate.open(1);
    assert!(job.wait_timeout(Duration::from_secs(3600)).is_ok());
    assert!(job.is_finished());
    assert!(job.wait_timeout(Duration::ZERO).is_ok());
    assert_eq!(job.wait().unwrap(), vec![5]);
}

/// The counters while one task is held and four are pending, and after the end.
#[test]
fn progress_counts_tasks_in_every_state() {
    quiet_panics();
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let job = pool.submit(
        (0..5).map(|i| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            move || {
                if i == 0 {
                    started_tx.send(()).unwrap();
                    gate.pass();
                }
                if i == 3 {
                    panic!("{ON_PURPOSE} progress");
                }
                i
            }
        }),
        2,
    );
    started.recv().unwrap();
    let p = job.progress();
    assert_eq!(
        (
            p.total,
            p.pending,
            p.running,
            p.done,
            p.panicked,
            p.cancelled,
            p.cap
        ),
        (5, 4, 1, 0, 0, 0, 2)
    );
    assert_eq!(p.peak_running, 1);
    gate.open(1);
    finish(&job);
    let p = job.progress();
    assert_eq!(
        (
            p.total,
            p.pending,
            p.running,
            p.done,
            p.panicked,
            p.cancelled
        ),
        (5, 0, 0, 4, 1, 0)
    );
    // One thread: never more than one of the job's tokens taken at once, whatever its cap.
    assert_eq!(p.peak_running, 1);
    assert_eq!(job.wait().unwrap_err().panics().count(), 1);
}

/// Lowering the cap also stops the tasks a worker has claimed in a chunk but not started: with
/// two gated tasks running and the cap lowered to 1, finishing one lets no other task start
/// while the second still runs. (The grace period only bounds how long the test looks for a
/// task that starts too early; a correct pool starts none, whatever its length.)
#[test]
fn lowering_the_cap_stops_claimed_chunks_too() {
    let pool = Pool::builder()
        .threads(2)
        .time_slice(Duration::from_secs(3600))
        .build()
        .unwrap();
    // Many short tasks first, so that workers claim chunks of several; then gated ones.
    const SHORT: usize = 2000;
    const GATED: usize = 50;
    let gate = Gate::new();
    let _open_on_exit = gate.opener();
    let (started_tx, started) = mpsc::channel::<usize>();
    let tasks: Vec<Box<dyn FnOnce() + Send>> = (0..SHORT + GATED)
        .map(|i| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            Box::new(move || {
                if i >= SHORT {
                    started_tx.send(i).unwrap();
                    gate.pass();
                }
            }) as Box<dyn FnOnce() + Send>
        })
        .collect();
    let job = pool.submit(tasks, 2);
    started.recv().unwrap();
    started.recv().unwrap(); // both workers hold a gated task
    job.set_cap(1).unwrap();
    gate.open(1); // one of the two finishes; the other still runs
    let too_early = started.recv_timeout(Duration::from_millis(300)).ok();
    gate.open_all();
    job.wait().unwrap();
    assert_eq!(
        too_early, None,
        "a task started while another ran, after the cap was lowered to 1"
    );
}
