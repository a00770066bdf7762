//! Fallible tasks and retries: errors reported with their attempts, retries that wait off the
//! workers, the retry budget, and what cancel, shutdown and shutdown_now do to waiting retries.

mod pool_common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use jobpool::{GaveUp, Pool, Retry, TaskContext, TaskError};
use pool_common::Latch;

/// A policy with a fixed delay and no jitter.
fn every(delay: Duration, attempts: u32) -> Retry {
    Retry::attempts(attempts)
        .backoff(delay, 1.0, delay)
        .jitter(0.0)
}

#[derive(Debug)]
struct Busy;
impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("busy")
    }
}
impl std::error::Error for Busy {}

#[test]
fn errors_are_reported_with_their_index_attempts_and_reason() {
    let pool = Pool::new(2);
    let policy = every(Duration::ZERO, 3).retry_if(|e| e.is::<Busy>());
    let job = pool
        .job()
        .cap(2)
        .retry(policy)
        .submit_fallible((0..4).map(|i| {
            move |cx: &TaskContext| -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
                match i {
                    0 => Ok(cx.attempt() as usize),
                    1 if cx.attempt() < 2 => Err(Busy.into()),
                    1 => Ok(10 + cx.attempt() as usize),
                    2 => Err("re-link your account".into()),
                    _ => Err(Busy.into()),
                }
            }
        }));
    let p_err = job.wait().unwrap_err();
    let failures: Vec<_> = p_err
        .failures()
        .map(|(i, f)| (i, f.attempts(), f.gave_up(), f.error().to_string()))
        .collect();
    assert_eq!(
        failures,
        [
            (2, 1, GaveUp::Permanent, "re-link your account".to_owned()),
            (3, 3, GaveUp::AttemptsUsedUp, "busy".to_owned()),
        ]
    );
    assert!(p_err.to_string().contains("2 of 4 tasks failed"), "{p_err}");
    let results = p_err.into_results();
    assert_eq!(results[0], Ok(1));
    assert_eq!(results[1], Ok(12));
    assert!(matches!(&results[3], Err(TaskError::Failed(f)) if f.downcast_ref::<Busy>().is_some()));
}

#[test]
fn a_retry_waits_off_the_workers_and_cancel_cancels_it() {
    // One thread. A's only task fails and waits a minute to be retried; B, submitted after,
    // runs to the end meanwhile: the waiting retry holds neither the worker nor A's token.
    let pool = Pool::new(1);
    let failed = Latch::new(1);
    let f = failed.clone();
    let a = pool
        .job()
        .retry(every(Duration::from_secs(60), 2))
        .submit_fallible(vec![move |_: &TaskContext| -> Result<(), Busy> {
            f.count_down();
            Err(Busy)
        }]);
    failed.wait();
    let b = pool.submit((0..5).map(|i| move || i), 1);
    assert_eq!(b.wait().unwrap(), vec![0, 1, 2, 3, 4]);
    let p = a.progress();
    assert_eq!((p.waiting_retry, p.running, p.retries), (1, 0, 1));
    a.cancel();
    let err = a.wait().unwrap_err();
    assert_eq!(err.cancelled().collect::<Vec<_>>(), vec![0]);
}

#[test]
fn a_retry_comes_back_after_its_delay_and_runs_within_the_cap() {
    let pool = Pool::new(4);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let delay = Duration::from_millis(20);
    let tasks = (0..40).map(|i| {
        let (running, peak) = (running.clone(), peak.clone());
        move |cx: &TaskContext| -> Result<Instant, Busy> {
            let now = running.fetch_add(1, SeqCst) + 1;
            peak.fetch_max(now, SeqCst);
            std::thread::yield_now();
            running.fetch_sub(1, SeqCst);
            if i % 3 == 0 && cx.attempt() == 1 {
                Err(Busy)
            } else {
                Ok(Instant::now())
            }
        }
    });
    let start = Instant::now();
    let job = pool
        .job()
        .cap(2)
        .retry(every(delay, 2))
        .submit_fallible(tasks);
    let ends = job.wait().unwrap();
    assert!(peak.load(SeqCst) <= 2, "peak {}", peak.load(SeqCst));
    // A retried task ran again no sooner than its delay after the job started.
    for (i, end) in ends.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        assert!(
            end.duration_since(start) >= delay,
            "task {i} retried too early"
        );
    }
}

#[test]
fn the_retry_budget_bounds_how_many_tasks_wait_to_be_retried() {
    // Four tasks fail at the same instant (a barrier of 4); the budget lets one wait.
    let pool = Pool::new(4);
    let barrier = Arc::new(Barrier::new(4));
    let tasks = (0..4).map(|_| {
        let barrier = barrier.clone();
        move |cx: &TaskContext| -> Result<(), Busy> {
            if cx.attempt() == 1 {
                barrier.wait();
                Err(Busy)
            } else {
                Ok(())
            }
        }
    });
    let policy = every(Duration::from_millis(500), 2).max_waiting(1);
    let job = pool.job().cap(4).retry(policy).submit_fallible(tasks);
    let err = job.wait().unwrap_err();
    let reasons: Vec<_> = err.failures().map(|(_, f)| f.gave_up()).collect();
    assert_eq!(reasons, [GaveUp::RetryBudget; 3]);
    assert_eq!(err.succeeded(), 1);
}

#[test]
fn panics_are_retried_only_when_the_policy_says_so() {
    let pool = Pool::new(1);
    let flaky = |cx: &TaskContext| -> Result<u32, Busy> {
        if cx.attempt() == 1 {
            panic!("first attempt panics");
        }
        Ok(cx.attempt())
    };
    let not_retried = pool
        .job()
        .retry(every(Duration::ZERO, 3))
        .submit_fallible(vec![flaky]);
    assert_eq!(
        not_retried.wait().unwrap_err().panics().collect::<Vec<_>>(),
        vec![(0, "first attempt panics")]
    );
    let policy = every(Duration::ZERO, 3).retry_panics(true);
    let retried = pool.job().retry(policy).submit_fallible(vec![flaky]);
    assert_eq!(retried.wait().unwrap(), vec![2]);
}

#[test]
fn shutdown_lets_waiting_retries_run() {
    let pool = Pool::new(2);
    let (failed, failed_rx) = mpsc::channel();
    let job = pool
        .job()
        .cap(2)
        .retry(every(Duration::from_millis(30), 2))
        .submit_fallible((0..4).map(|_| {
            let failed = failed.clone();
            move |cx: &TaskContext| -> Result<u32, Busy> {
                if cx.attempt() == 1 {
                    let _ = failed.send(());
                    return Err(Busy);
                }
                Ok(cx.attempt())
            }
        }));
    for _ in 0..4 {
        failed_rx.recv().unwrap();
    }
    // Every task waits to be retried: shutdown must not end the pool before they run.
    pool.shutdown();
    assert_eq!(job.wait().unwrap(), vec![2; 4]);
}

#[test]
fn shutdown_now_cancels_waiting_retries_at_once() {
    let pool = Pool::new(1);
    let failed = Latch::new(1);
    let f = failed.clone();
    let job = pool
        .job()
        .retry(every(Duration::from_secs(3600), 2))
        .submit_fallible(vec![move |_: &TaskContext| -> Result<(), Busy> {
            f.count_down();
            Err(Busy)
        }]);
    failed.wait();
    pool.shutdown_now(); // returns once the worker is joined: no hour-long wait
    assert_eq!(job.wait().unwrap_err().cancelled().count(), 1);
}

#[test]
fn a_task_waiting_on_a_retrying_sub_job_on_one_thread_does_not_hang() {
    // The only worker waits on a sub-job whose task waits to be retried: the waiting worker
    // fires the timer itself.
    let pool = Pool::new(1);
    let inner = pool.clone();
    let outer = pool.submit(
        vec![move || {
            let sub = inner
                .job()
                .retry(every(Duration::from_millis(10), 3))
                .submit_fallible(vec![|cx: &TaskContext| -> Result<u32, Busy> {
                    if cx.attempt() < 3 {
                        Err(Busy)
                    } else {
                        Ok(cx.attempt())
                    }
                }]);
            sub.wait().unwrap()[0]
        }],
        1,
    );
    assert_eq!(outer.wait().unwrap(), vec![3]);
}
