//! A pool's life: shutdown, shutdown_now, dropping the last handle, detached jobs, and the
//! submissions a pool refuses (bad input, or after shutdown).

mod pool_common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use jobpool::{BuildError, Pool, SubmitErrorKind, TaskError};
use pool_common::{counters, quiet_panics, values, DropCount, Gate, Latch, ON_PURPOSE};

/// Counts down its latch when the worker thread that holds it exits.
struct ExitGuard(Arc<Latch>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.count_down();
    }
}

thread_local! {
    static EXIT_GUARD: RefCell<Option<ExitGuard>> = const { RefCell::new(None) };
}

/// Plants an exit guard in each of the pool's `n` threads; the returned latch opens once every
/// one of them has exited.
fn watch_threads(pool: &Pool, n: usize) -> Arc<Latch> {
    let exited = Latch::new(n);
    let meet = Latch::new(n);
    pool.submit(
        (0..n).map(|_| {
            let (exited, meet) = (exited.clone(), meet.clone());
            move || {
                // All n meet, so each of these tasks runs on its own thread.
                meet.arrive_and_wait();
                EXIT_GUARD.with(|g| *g.borrow_mut() = Some(ExitGuard(exited)));
            }
        }),
        n,
    )
    .wait()
    .unwrap();
    exited
}

/// Spins (yielding, never sleeping) until the pool refuses submissions from this thread.
fn wait_until_shut_down(pool: &Pool) {
    while pool.try_submit(Vec::<fn()>::new(), 1).is_ok() {
        std::thread::yield_now();
    }
}

/// Detached jobs of many tasks each: after `shutdown` returns every accepted task has run,
/// exactly once, and every worker thread has exited.
#[test]
fn shutdown_runs_every_accepted_task_and_joins_the_threads() {
    let pool = Pool::new(3);
    let exited = watch_threads(&pool, 3);
    let runs = counters(5 * 200);
    for j in 0..5 {
        let tasks = (0..200).map(|i| {
            let runs = runs.clone();
            move || {
                runs[j * 200 + i].fetch_add(1, SeqCst);
            }
        });
        drop(pool.submit(tasks, j + 1));
    }
    pool.shutdown();
    assert_eq!(values(&runs), vec![1; 1000]);
    assert!(
        exited.is_open(),
        "shutdown returned before the worker threads exited"
    );
    // Idempotent.
    pool.shutdown();
    pool.shutdown_now();
}

/// Dropping the last handle does what `shutdown` does: finishes accepted work and joins.
#[test]
fn dropping_the_last_handle_finishes_work_and_joins() {
    let pool = Pool::new(2);
    let exited = watch_threads(&pool, 2);
    let ran = Arc::new(AtomicUsize::new(0));
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let clone = pool.clone();
    let tasks = (0..100).map(|i| {
        let (ran, gate) = (ran.clone(), gate.clone());
        move || {
            if i == 0 {
                gate.pass();
            }
            ran.fetch_add(1, SeqCst);
        }
    });
    drop(pool.submit(tasks, 1));
    drop(pool);
    // Another handle is alive: the pool still runs.
    gate.open(1);
    let more = clone.submit(vec![|| 1], 1);
    drop(more);
    drop(clone);
    assert_eq!(ran.load(SeqCst), 100);
    assert!(exited.is_open());
}

/// A job whose handle is dropped at once still runs to its end.
#[test]
fn detached_job_runs_to_the_end() {
    let pool = Pool::new(2);
    let all_ran = Latch::new(50);
    let runs = counters(50);
    drop(pool.submit(
        (0..50).map(|i| {
            let (all_ran, runs) = (all_ran.clone(), runs.clone());
            move || {
                runs[i].fetch_add(1, SeqCst);
                all_ran.count_down();
            }
        }),
        2,
    ));
    all_ran.wait();
    assert_eq!(values(&runs), vec![1; 50]);
}

/// `shutdown_now` from outside, while a task runs: it finishes, the pending ones never start
/// and are reported cancelled (and dropped exactly once), and the threads are joined.
#[test]
fn shutdown_now_cancels_pending_tasks_and_reports_them() {
    let pool = Pool::new(1);
    let exited = watch_threads(&pool, 1);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let runs = counters(10);
    let drops = Arc::new(AtomicUsize::new(0));
    let job = pool.submit(
        (0..10).map(|i| {
            let (gate, started_tx, runs) = (gate.clone(), started_tx.clone(), runs.clone());
            let guard = DropCount(drops.clone());
            move || {
                let _guard = guard;
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
    // A second job, not started at all.
    let second = pool.submit((0..5).map(|i| move || i), 1);
    started.recv().unwrap();
    let stopper = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown_now())
    };
    wait_until_shut_down(&pool);
    gate.open(1);
    stopper.join().unwrap();
    assert!(exited.is_open());
    let mut err = job.wait().unwrap_err();
    assert_eq!(err.results_mut()[0], Ok(0));
    assert_eq!(
        err.cancelled().collect::<Vec<_>>(),
        (1..10).collect::<Vec<_>>()
    );
    let mut expected_runs = vec![0; 10];
    expected_runs[0] = 1;
    assert_eq!(values(&runs), expected_runs);
    assert_eq!(drops.load(SeqCst), 10);
    let mut err = second.wait().unwrap_err();
    assert_eq!(err.cancelled().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert!(err
        .results_mut()
        .iter()
        .all(|r| r == &Err(TaskError::Cancelled)));
}

/// Panics when dropped: a task that captures one panics if dropped without running.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{ON_PURPOSE}: dropped a cancelled task");
    }
}

/// N = 1. `shutdown_now` cancels a pending task whose captured value panics when dropped. The
/// panic must not take the worker down before the job's end is reported: the job's
/// `on_finish` callback still runs (with the task reported cancelled).
#[test]
fn panicking_drop_of_a_cancelled_task_still_reports_the_job() {
    quiet_panics();
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let held: Box<dyn FnOnce() -> u8 + Send> = Box::new({
        let gate = gate.clone();
        move || {
            started_tx.send(()).unwrap();
            gate.pass();
            0
        }
    });
    let bomb = PanicOnDrop;
    let doomed: Box<dyn FnOnce() -> u8 + Send> = Box::new(move || {
        std::mem::forget(bomb);
        1
    });
    let (finished_tx, finished) = mpsc::channel();
    pool.submit(vec![held, doomed], 1).on_finish(move |r| {
        finished_tx
            .send(r.unwrap_err().cancelled().collect::<Vec<_>>())
            .unwrap()
    });
    started.recv().unwrap();
    let stopper = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown_now())
    };
    wait_until_shut_down(&pool);
    gate.open(1);
    stopper.join().unwrap();
    assert_eq!(
        finished.recv().ok(),
        Some(vec![1]),
        "the job's on_finish callback never ran: the worker died dropping the cancelled task"
    );
}

/// `shutdown_now` called by a task returns at once; the job's later tasks are cancelled.
#[test]
fn shutdown_now_from_a_task() {
    let pool = Pool::new(1);
    let inner = pool.clone();
    let job = pool.submit(
        (0..10).map(|i| {
            let inner = inner.clone();
            move || {
                if i == 3 {
                    inner.shutdown_now();
                }
                i
            }
        }),
        1,
    );
    drop(inner);
    let err = job.wait().unwrap_err();
    assert_eq!(
        err.cancelled().collect::<Vec<_>>(),
        (4..10).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.try_submit(vec![|| ()], 1).unwrap_err().kind(),
        SubmitErrorKind::ShutDown
    );
    pool.shutdown();
}

/// After `shutdown_now`, a task may still submit a sub-job and wait for it (N = 1): the wait
/// must return (with the sub-job's tasks cancelled), not hang.
#[test]
fn task_waiting_on_a_sub_job_after_shutdown_now_does_not_hang() {
    let pool = Pool::new(1);
    let inner = pool.clone();
    let job = pool.submit(
        vec![move || {
            inner.shutdown_now();
            let sub = inner.submit(vec![|| 1, || 2], 1);
            sub.wait().map_err(|e| e.cancelled().count())
        }],
        1,
    );
    let result = job.wait().unwrap().remove(0);
    assert_eq!(result, Err(2));
    pool.shutdown();
}

/// During `shutdown`, a running task may still submit sub-jobs, waited for or detached, and
/// they all run before `shutdown` returns; outside submissions are refused meanwhile.
#[test]
fn tasks_may_submit_sub_jobs_during_shutdown() {
    let pool = Pool::new(2);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let detached_runs = Arc::new(AtomicUsize::new(0));
    let inner = pool.clone();
    let counted = detached_runs.clone();
    let task_gate = gate.clone();
    let job = pool.submit(
        vec![move || {
            started_tx.send(()).unwrap();
            task_gate.pass();
            let counted = counted.clone();
            drop(inner.submit(
                (0..20).map(move |_| {
                    let counted = counted.clone();
                    move || {
                        counted.fetch_add(1, SeqCst);
                    }
                }),
                2,
            ));
            inner
                .submit((1..=4).map(|i| move || i), 2)
                .wait()
                .unwrap()
                .iter()
                .sum::<i32>()
        }],
        1,
    );
    started.recv().unwrap();
    let stopper = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown())
    };
    wait_until_shut_down(&pool);
    assert_eq!(
        pool.try_submit(vec![|| 0], 1).unwrap_err().kind(),
        SubmitErrorKind::ShutDown
    );
    gate.open(1);
    stopper.join().unwrap();
    assert_eq!(detached_runs.load(SeqCst), 20);
    assert_eq!(job.wait().unwrap(), vec![10]);
}

/// Submissions after `shutdown` from outside are refused with `ShutDown`, and the tasks are
/// handed back untouched (not run, not dropped).
#[test]
fn try_submit_after_shutdown_hands_the_tasks_back() {
    let pool = Pool::new(2);
    pool.shutdown();
    let runs = counters(3);
    let drops = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let runs = runs.clone();
            let guard = DropCount(drops.clone());
            move || {
                let _guard = guard;
                runs[i].fetch_add(1, SeqCst);
                i
            }
        })
        .collect();
    let err = pool.try_submit(tasks, 2).unwrap_err();
    assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
    assert_eq!(
        err.to_string(),
        "the pool is shut down and takes no more jobs"
    );
    let tasks = err.into_tasks();
    assert_eq!(values(&runs), vec![0; 3]);
    assert_eq!(drops.load(SeqCst), 0);
    let results: Vec<usize> = tasks.into_iter().map(|t| t()).collect();
    assert_eq!(results, vec![0, 1, 2]);
    assert_eq!(drops.load(SeqCst), 3);
    // Empty jobs are refused too.
    let empty = pool.try_submit(Vec::<fn()>::new(), 1).unwrap_err();
    assert_eq!(empty.kind(), SubmitErrorKind::ShutDown);
}

#[test]
#[should_panic(expected = "Pool::submit: the pool is shut down and takes no more jobs")]
fn submit_after_shutdown_panics() {
    let pool = Pool::new(1);
    pool.shutdown();
    let _ = pool.submit(vec![|| ()], 1);
}

/// Two threads call `shutdown` at once while a task is held. Each call must return only after
/// every accepted task ran (the promise of `shutdown`), whichever thread joins the workers.
///
/// The held task is let go when a `shutdown` call returns, or after a grace period if none
/// does; the grace period only bounds how long the test looks for the bug, a correct pool
/// passes whatever it is.
#[test]
fn concurrent_shutdowns_both_wait_for_accepted_work() {
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let task_done = Arc::new(AtomicUsize::new(0));
    let job = {
        let (gate, task_done) = (gate.clone(), task_done.clone());
        pool.submit(
            vec![move || {
                started_tx.send(()).unwrap();
                gate.pass();
                task_done.store(1, SeqCst);
            }],
            1,
        )
    };
    drop(job);
    started.recv().unwrap();
    let (returned_tx, returned) = mpsc::channel();
    let stoppers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, task_done, returned_tx) =
                (pool.clone(), task_done.clone(), returned_tx.clone());
            std::thread::spawn(move || {
                pool.shutdown();
                let done = task_done.load(SeqCst);
                returned_tx.send(()).unwrap();
                done
            })
        })
        .collect();
    let _ = returned.recv_timeout(Duration::from_millis(500));
    gate.open(1);
    let seen: Vec<usize> = stoppers.into_iter().map(|s| s.join().unwrap()).collect();
    assert_eq!(
        seen,
        vec![1, 1],
        "a shutdown() call returned while an accepted task was still running"
    );
}

/// The last handle dropped by one of the pool's own tasks: the threads cannot be joined from
/// there, but they exit on their own once the work is done.
#[test]
fn last_handle_dropped_by_a_task_lets_the_threads_exit() {
    let pool = Pool::new(2);
    let exited = watch_threads(&pool, 2);
    let (handle_tx, handle_rx) = mpsc::channel::<Pool>();
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let gate2 = gate.clone();
    let job = pool.submit(
        vec![move || {
            gate2.pass();
            let last: Pool = handle_rx.recv().unwrap();
            drop(last);
            7
        }],
        1,
    );
    let (tx, rx) = mpsc::channel();
    job.on_finish(move |r| tx.send(r.unwrap()).unwrap());
    handle_tx.send(pool).unwrap();
    gate.open(1);
    assert_eq!(rx.recv().unwrap(), vec![7]);
    exited.wait();
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn zero_threads_is_a_build_error() {
    let err = Pool::builder().threads(0).build().unwrap_err();
    assert_eq!(err, BuildError::ZeroThreads);
}

#[test]
#[should_panic(expected = "Pool::new(0): a pool needs at least one worker thread")]
fn pool_new_zero_panics() {
    let _ = Pool::new(0);
}

/// A cap of 0 is refused and the tasks handed back, untouched.
#[test]
fn zero_cap_is_a_submit_error() {
    let pool = Pool::new(1);
    let drops = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let guard = DropCount(drops.clone());
            move || {
                let _guard = guard;
                i
            }
        })
        .collect();
    let err = pool.try_submit(tasks, 0).unwrap_err();
    assert_eq!(err.kind(), SubmitErrorKind::ZeroCap);
    assert_eq!(
        err.to_string(),
        "a job's cap must be at least 1 (0 was given)"
    );
    assert_eq!(drops.load(SeqCst), 0);
    let tasks = err.into_tasks();
    assert_eq!(tasks.len(), 4);
    assert_eq!(pool.submit(tasks, 1).wait().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(drops.load(SeqCst), 4);
}

#[test]
#[should_panic(expected = "Pool::submit: a job's cap must be at least 1 (0 was given)")]
fn submit_with_zero_cap_panics() {
    let pool = Pool::new(1);
    let _ = pool.submit(vec![|| ()], 0);
}

/// A job of no tasks has finished at once, with an empty result.
#[test]
fn empty_job_finishes_at_once() {
    let pool = Pool::new(1);
    let job = pool.submit(Vec::<fn() -> u8>::new(), 3);
    assert!(job.is_finished());
    assert!(job.wait_timeout(Duration::ZERO).is_ok());
    let p = job.progress();
    assert_eq!(
        (p.total, p.pending, p.running, p.done, p.peak_running),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(job.wait().unwrap(), Vec::<u8>::new());
    assert_eq!(pool.submit(Vec::<fn()>::new(), 1).completions().count(), 0);
}
