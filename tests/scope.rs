//! Scoped jobs (`Pool::scope`): tasks that borrow the caller's data, and a scope that never
//! returns while one of its tasks, or anything a task captured, still exists: after panics in
//! tasks and in the body, early returns, cancels, leaked handles, nested scopes, and scopes
//! opened inside the pool's own tasks.

mod pool_common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;

use jobpool::{Pool, TaskError};
use pool_common::{quiet_panics, within_hang_limit, Gate, Meter, ON_PURPOSE};
use proptest::prelude::*;

/// Counts its drop in a borrowed counter: a scoped task capturing one proves, once the scope
/// has returned, that the task (run or not) was dropped inside the scope.
struct DropsInto<'a>(&'a AtomicUsize);

impl Drop for DropsInto<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn tasks_borrow_shared_and_mutable_data_and_results_come_back_in_order() {
    let pool = Pool::new(3);
    let names = ["ada".to_owned(), "grace".to_owned(), "barbara".to_owned()];
    let mut lengths = vec![0; names.len()];
    let upper = pool.scope(|s| {
        let _filled = s.submit(
            names
                .iter()
                .zip(lengths.iter_mut())
                .map(|(n, slot)| move || *slot = n.len()),
            2,
        );
        s.submit(names.iter().map(|n| move || n.to_uppercase()), 1)
            .wait()
            .unwrap()
    });
    assert_eq!(lengths, vec![3, 5, 7]);
    assert_eq!(upper, vec!["ADA", "GRACE", "BARBARA"]);
}

#[test]
fn the_cap_holds_for_scoped_jobs() {
    let pool = Pool::new(4);
    let meter = Meter::new();
    pool.scope(|s| {
        let _metered = s.submit(
            (0..200).map(|_| {
                || {
                    let (_inside, _) = meter.enter();
                    std::thread::yield_now();
                }
            }),
            2,
        );
    });
    assert!(meter.peak() <= 2, "{} ran at once", meter.peak());
}

#[test]
fn a_panicking_task_reaches_its_handle_and_the_scope_still_waits_for_the_rest() {
    quiet_panics();
    let pool = Pool::new(2);
    let ran = AtomicUsize::new(0);
    let err = pool.scope(|s| {
        let job = s.submit(
            (0..20).map(|i| {
                let ran = &ran;
                move || {
                    ran.fetch_add(1, SeqCst);
                    if i == 7 {
                        panic!("{ON_PURPOSE}: task 7");
                    }
                }
            }),
            2,
        );
        job.wait().unwrap_err()
    });
    assert_eq!(ran.load(SeqCst), 20);
    assert_eq!(
        err.panics().collect::<Vec<_>>(),
        vec![(7, "on purpose: task 7")]
    );
}

#[test]
fn a_panicking_body_waits_for_its_jobs_before_the_panic_goes_on() {
    quiet_panics();
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open = gate.opener();
    let done = AtomicUsize::new(0);
    let (started_tx, started) = mpsc::channel();
    let gate = &gate;
    std::thread::scope(|threads| {
        // Opens the gate once the blocking task has started, i.e. after the body has returned
        // control to the pool; the scope must wait for it rather than return with the panic.
        threads.spawn(move || {
            started.recv().unwrap();
            gate.open(1);
        });
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.scope(|s| {
                let (done, started_tx) = (&done, started_tx.clone());
                let _detached = s.submit(
                    vec![move || {
                        started_tx.send(()).unwrap();
                        gate.pass();
                        done.fetch_add(1, SeqCst);
                    }],
                    1,
                );
                panic!("{ON_PURPOSE}: the body");
            })
        }));
        assert!(outcome.is_err());
        assert_eq!(
            done.load(SeqCst),
            1,
            "the scope returned before its task ran"
        );
    });
}

#[test]
fn an_early_return_and_a_leaked_handle_still_wait_for_every_task() {
    #[allow(clippy::manual_find)] // the early `return` out of the scope's body is the point
    fn first_even<'a>(pool: &Pool, items: &'a [u32], seen: &'a AtomicUsize) -> Option<u32> {
        pool.scope(|s| {
            let job = s.submit(
                items.iter().map(|&x| {
                    move || {
                        seen.fetch_add(1, SeqCst);
                        x
                    }
                }),
                2,
            );
            std::mem::forget(s.submit(items.iter().map(|_| || seen.fetch_add(1, SeqCst)), 1));
            // Returns early, maybe before the leaked job has run: the scope still waits for it.
            for x in job.wait().unwrap() {
                if x % 2 == 0 {
                    return Some(x);
                }
            }
            None
        })
    }
    let pool = Pool::new(2);
    let items: Vec<u32> = (1..100).collect();
    let seen = AtomicUsize::new(0);
    assert_eq!(first_even(&pool, &items, &seen), Some(2));
    assert_eq!(seen.load(SeqCst), 2 * items.len());
}

#[test]
fn cancelled_tasks_are_dropped_inside_the_scope() {
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open = gate.opener();
    let drops = AtomicUsize::new(0);
    let (started_tx, started) = mpsc::channel();
    pool.scope(|s| {
        let job = s.submit(
            (0..10).map(|i| {
                let (captured, gate, started_tx) = (DropsInto(&drops), &gate, started_tx.clone());
                move || {
                    let _captured = captured;
                    if i == 0 {
                        started_tx.send(()).unwrap();
                        gate.pass();
                    }
                }
            }),
            1,
        );
        started.recv().unwrap();
        job.cancel();
        gate.open(1);
    });
    assert_eq!(drops.load(SeqCst), 10);
}

#[test]
fn scopes_nest_and_tasks_submit_to_their_scope() {
    let pool = Pool::new(2);
    let rows: Vec<Vec<u64>> = (0..6)
        .map(|r| (0..50).map(|c| r * 100 + c).collect())
        .collect();
    let row_sums = AtomicUsize::new(0);
    let total: u64 = pool.scope(|outer| {
        let per_row = outer.submit(
            rows.iter().map(|row| {
                let row_sums = &row_sums;
                move || {
                    // A scope inside a task of the outer scope, borrowing the outer data.
                    let sums = outer.pool().scope(|inner| {
                        inner
                            .submit(row.chunks(10).map(|c| move || c.iter().sum::<u64>()), 2)
                            .wait()
                            .unwrap()
                    });
                    // And a job submitted to the outer scope from one of its tasks.
                    let _counted = outer.submit(vec![move || row_sums.fetch_add(1, SeqCst)], 1);
                    sums.iter().sum::<u64>()
                }
            }),
            2,
        );
        per_row.wait().unwrap().iter().sum()
    });
    let expected: u64 = rows.iter().flatten().sum();
    assert_eq!(total, expected);
    assert_eq!(row_sums.load(SeqCst), rows.len());
}

#[test]
fn a_scope_inside_a_task_of_a_one_thread_pool_runs_its_jobs_itself() {
    let total = within_hang_limit(|| {
        let pool = Pool::new(1);
        let inner = pool.clone();
        let job = pool.submit(
            vec![move || {
                let data: Vec<u32> = (1..=100).collect();
                inner.scope(|s| {
                    let halves =
                        s.submit(data.chunks(50).map(|c| move || c.iter().sum::<u32>()), 1);
                    halves.wait().unwrap().iter().sum::<u32>()
                })
            }],
            1,
        );
        job.wait().unwrap()[0]
    })
    .expect("a scope inside a task of a one-thread pool hung");
    assert_eq!(total, 5050);
}

#[test]
fn a_refused_scoped_job_drops_its_tasks_at_once() {
    let pool = Pool::new(1);
    let drops = AtomicUsize::new(0);
    pool.scope(|s| {
        let tasks = (0..3).map(|_| {
            let captured = DropsInto(&drops);
            move || drop(captured)
        });
        assert!(s.try_submit(tasks, 0).is_err());
        assert_eq!(drops.load(SeqCst), 3);
    });
    pool.shutdown();
    let refused = pool.scope(|s| s.try_submit(vec![|| ()], 1).unwrap_err());
    assert_eq!(refused, jobpool::SubmitErrorKind::ShutDown);
}

#[test]
fn cancelled_scoped_tasks_report_cancelled() {
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _open = gate.opener();
    let (started_tx, started) = mpsc::channel();
    let err = pool.scope(|s| {
        let job = s.submit(
            (0..3).map(|i| {
                let (gate, started_tx) = (&gate, started_tx.clone());
                move || {
                    if i == 0 {
                        started_tx.send(()).unwrap();
                        gate.pass();
                    }
                }
            }),
            1,
        );
        started.recv().unwrap();
        job.cancel();
        gate.open(1);
        job.wait().unwrap_err()
    });
    assert_eq!(err.cancelled().collect::<Vec<_>>(), vec![1, 2]);
    let mut err = err;
    assert_eq!(err.results_mut()[1], Err(TaskError::Cancelled));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Scoped jobs (borrowing a vector) and ordinary ones (owning theirs) on one pool: every
    /// task runs once, every cap holds, and every task is gone when the scope returns.
    #[test]
    fn scoped_and_ordinary_jobs_mix(
        threads in 1..=4usize,
        jobs in prop::collection::vec((any::<bool>(), 1..=3usize, 0..60usize), 1..6),
    ) {
        let pool = Pool::new(threads);
        let data: Vec<usize> = (0..64).collect();
        let runs = AtomicUsize::new(0);
        let drops = AtomicUsize::new(0);
        let mut ordinary = Vec::new();
        let expected: usize = jobs.iter().map(|&(_, _, n)| n).sum();
        let scoped_sum: usize = pool.scope(|s| {
            let mut handles = Vec::new();
            for &(scoped, cap, n) in &jobs {
                if scoped {
                    let meter = Meter::new();
                    let tasks = (0..n).map(|i| {
                        let (data, runs, meter, captured) = (&data, &runs, meter.clone(), DropsInto(&drops));
                        move || {
                            let _captured = captured;
                            let (_inside, _) = meter.enter();
                            runs.fetch_add(1, SeqCst);
                            data[i]
                        }
                    });
                    handles.push((s.submit(tasks, cap), meter, cap, n));
                } else {
                    let owned = data.clone();
                    let tasks = (0..n).map(move |i| {
                        let owned = owned.clone();
                        move || owned[i]
                    });
                    ordinary.push((pool.submit(tasks, cap), n));
                }
            }
            handles
                .into_iter()
                .map(|(job, meter, cap, n)| {
                    let results = job.wait().unwrap();
                    assert_eq!(results, (0..n).collect::<Vec<_>>());
                    assert!(meter.peak() <= cap);
                    results.len()
                })
                .sum()
        });
        let scoped_tasks: usize = jobs.iter().filter(|j| j.0).map(|j| j.2).sum();
        prop_assert_eq!(scoped_sum, scoped_tasks);
        prop_assert_eq!(runs.load(SeqCst), scoped_tasks);
        prop_assert_eq!(drops.load(SeqCst), scoped_tasks);
        let mut ordinary_tasks = 0;
        for (job, n) in ordinary {
            prop_assert_eq!(job.wait().unwrap(), (0..n).collect::<Vec<_>>());
            ordinary_tasks += n;
        }
        prop_assert_eq!(scoped_tasks + ordinary_tasks, expected);
    }
}
