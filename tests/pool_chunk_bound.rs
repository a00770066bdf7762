//! A chunk of claimed tasks is bounded by time as it runs: when a job's tasks turn long after
//! many short ones, a worker that claimed many at once hands the rest back after the first
//! long one, so a result, a deadline or another worker never waits behind more than about one
//! task.
//!
//! The long tasks here busy-run for a known time: they are the input under test (tasks whose
//! length changes), not a way of ordering threads, which latches and gates do.

mod pool_common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobpool::Pool;
use pool_common::{within_hang_limit, Gate, Latch};

/// Comfortably past the chunk's time budget (tens of microseconds).
const LONG: Duration = Duration::from_millis(2);

/// Enough instant tasks for chunks to grow past the number of long tasks behind them.
const INSTANT: usize = 300;

fn run_for(length: Duration) {
    let start = Instant::now();
    while start.elapsed() < length {
        std::hint::spin_loop();
    }
}

#[test]
fn a_result_is_reported_before_the_next_long_task_of_its_chunk_ends() {
    // Each long task starts only once the consumer has seen the result of the one before it:
    // if a worker kept running its chunk without reporting, the next long task would wait at
    // its gate for a result that is only reported when the chunk ends.
    const LONG_TASKS: usize = 5;
    let seen = within_hang_limit(|| {
        let pool = Pool::new(1);
        let gate = Gate::new();
        let tasks = (0..INSTANT + LONG_TASKS).map(|i| {
            let gate = gate.clone();
            move || {
                if i >= INSTANT {
                    gate.pass();
                    run_for(LONG);
                }
                i
            }
        });
        let mut results = pool.submit(tasks, 1).completions();
        gate.open(1);
        let mut seen = 0;
        for (index, result) in results.by_ref() {
            assert_eq!(result.unwrap(), index);
            seen += 1;
            if index >= INSTANT {
                gate.open(1);
            }
        }
        seen
    })
    .expect("a finished result waited in its chunk behind a task that could not start");
    assert_eq!(seen, INSTANT + 5);
}

#[test]
fn a_timed_wait_on_a_worker_returns_after_about_one_long_task() {
    let long_started = within_hang_limit(|| {
        let pool = Pool::new(1);
        let inner = pool.clone();
        let job = pool.submit(
            vec![move || {
                let started = Arc::new(AtomicUsize::new(0));
                let tasks = (0..INSTANT + 10).map(|i| {
                    let started = started.clone();
                    move || {
                        if i >= INSTANT {
                            started.fetch_add(1, SeqCst);
                            run_for(LONG);
                        }
                    }
                });
                let sub = inner.submit(tasks, 1);
                let finished = sub.wait_timeout(Duration::from_millis(1)).is_ok();
                let long_started = started.load(SeqCst);
                sub.wait().unwrap();
                (finished, long_started)
            }],
            1,
        );
        job.wait().unwrap().pop().unwrap()
    })
    .expect("hung");
    assert!(!long_started.0, "ten tasks of 2 ms finished within 1 ms");
    assert!(
        long_started.1 <= 1,
        "a 1 ms wait ran {} tasks of 2 ms",
        long_started.1
    );
}

#[test]
fn raising_the_cap_reaches_tasks_already_claimed_in_a_chunk() {
    // Job J, cap 1: seven instant tasks, then a, b and c. With one token, chunks grow 1, 2, 4, 8
    // while the tasks take no time, so one worker claims a, b and c in one chunk (if the machine
    // slows a chunk down, they are claimed apart, and the test passes all the same). While a
    // runs the cap goes up to 2; then b and c meet at a rendezvous, which they can only leave
    // if they run at once, on the two workers: the worker holding them must hand one back.
    let finished = within_hang_limit(|| {
        let pool = Pool::new(2);
        let gate = Gate::new();
        let _open = gate.opener();
        let meet = Latch::new(2);
        let (a_started_tx, a_started) = std::sync::mpsc::channel();
        let tasks = (0..10).map(|i| {
            let (gate, meet, a_started) = (gate.clone(), meet.clone(), a_started_tx.clone());
            move || match i {
                7 => {
                    a_started.send(()).unwrap();
                    gate.pass();
                }
                8 | 9 => meet.arrive_and_wait(),
                _ => {}
            }
        });
        let job = pool.submit(tasks, 1);
        a_started.recv().unwrap();
        job.set_cap(2).unwrap();
        gate.open(1);
        job.wait().is_ok()
    });
    assert_eq!(finished, Some(true), "b waited for c in the same chunk");
}

#[test]
fn a_job_submitted_while_every_worker_is_busy_waits_for_about_one_task() {
    // One worker, a zero time slice: the worker yields to a less served job at the end of any
    // chunk. Job J: seven instant tasks, then a and b, claimed in one chunk (chunks grow 1, 2,
    // 4, 8; if the machine slows a chunk down they are claimed apart, and the test passes all
    // the same). While a runs, job S is submitted; it must run between a and b, not after b.
    let order = within_hang_limit(|| {
        let pool = Pool::builder()
            .threads(1)
            .time_slice(Duration::ZERO)
            .build()
            .unwrap();
        let gate = Gate::new();
        let _open = gate.opener();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (a_started_tx, a_started) = std::sync::mpsc::channel();
        let tasks = (0..9).map(|i| {
            let (gate, order, a_started) = (gate.clone(), order.clone(), a_started_tx.clone());
            move || match i {
                7 => {
                    a_started.send(()).unwrap();
                    gate.pass();
                    order.lock().unwrap().push("a");
                }
                8 => order.lock().unwrap().push("b"),
                _ => {}
            }
        });
        let job = pool.submit(tasks, 1);
        a_started.recv().unwrap();
        let s = {
            let order = order.clone();
            pool.submit(vec![move || order.lock().unwrap().push("s")], 1)
        };
        gate.open(1);
        s.wait().unwrap();
        job.wait().unwrap();
        let order = order.lock().unwrap().clone();
        order
    })
    .expect("hung");
    assert_eq!(order, ["a", "s", "b"]);
}
