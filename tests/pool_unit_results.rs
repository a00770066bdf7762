//! Tasks that return `()` run their chunks through a loop that pushes no value per task: the
//! values are counted from the tasks taken (`ChunkOutcomes::push_units`). Property tests that
//! the count is right whatever ends a chunk early: a task's panic, a cancel from inside the
//! job, and other jobs queued meanwhile (which cut chunks short, README rule 3).

mod pool_common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, OnceLock};

use jobpool::{Canceller, Pool, TaskError};
use pool_common::{counters, quiet_panics, values, within_hang_limit, ON_PURPOSE};
use proptest::prelude::*;

/// A job of `n` empty tasks; the ones in `panics` panic, and the task `cancel_at` cancels the
/// job. Checks that every task ran at most once, and that the results say exactly which: a
/// value for each task that ran and returned, a panic for each that panicked, a cancel for
/// each that never started. (A miscount by one either way leaves the job unfinished: the hang
/// limit turns that into a failure.)
fn check(
    threads: usize,
    cap: usize,
    n: usize,
    panics: Vec<usize>,
    cancel_at: Option<usize>,
    others: usize,
) -> Result<(), TestCaseError> {
    let pool = Pool::new(threads);
    let runs = counters(n);
    let canceller: Arc<OnceLock<Canceller>> = Arc::new(OnceLock::new());
    let tasks = (0..n).map(|i| {
        let (runs, canceller, panics) = (runs.clone(), canceller.clone(), panics.clone());
        move || {
            runs[i].fetch_add(1, SeqCst);
            if cancel_at == Some(i) {
                // Set once the submission returned, right after this task may have started.
                let canceller = loop {
                    match canceller.get() {
                        Some(canceller) => break canceller,
                        None => std::thread::yield_now(),
                    }
                };
                canceller.cancel();
            }
            if panics.contains(&i) {
                panic!("{ON_PURPOSE}: task {i}");
            }
        }
    });
    let job = pool.submit(tasks, cap);
    canceller.set(job.canceller()).ok().unwrap();
    // Jobs submitted while it runs: each push asks busy workers to end their chunks.
    let small: Vec<_> = (0..others)
        .map(|_| pool.submit((0..3).map(|_| || ()), 1))
        .collect();
    let outcome = job.wait();
    for other in small {
        prop_assert_eq!(other.wait().ok(), Some(vec![(); 3]));
    }
    let ran = values(&runs);
    prop_assert!(ran.iter().all(|&r| r <= 1), "a task ran twice: {:?}", ran);
    match outcome {
        Ok(results) => {
            prop_assert_eq!(results.len(), n);
            prop_assert!(ran.iter().all(|&r| r == 1));
            prop_assert!(panics.iter().all(|&i| i >= n));
        }
        Err(mut err) => {
            let results = err.results_mut();
            prop_assert_eq!(results.len(), n);
            for (i, result) in results.iter().enumerate() {
                match result {
                    Ok(()) => prop_assert!(ran[i] == 1 && !panics.contains(&i), "task {}", i),
                    Err(TaskError::Panicked(message)) => {
                        prop_assert!(ran[i] == 1 && panics.contains(&i), "task {}", i);
                        prop_assert_eq!(message, &format!("{ON_PURPOSE}: task {i}"));
                    }
                    Err(TaskError::Cancelled) => {
                        prop_assert!(ran[i] == 0, "task {} ran and was reported cancelled", i)
                    }
                    Err(other) => prop_assert!(false, "task {}: {:?}", i, other),
                }
            }
            for &i in panics.iter().filter(|&&i| i < n && ran[i] == 1) {
                prop_assert!(matches!(results[i], Err(TaskError::Panicked(_))));
            }
            if cancel_at.is_none() {
                prop_assert!(ran.iter().all(|&r| r == 1));
            }
        }
    }
    pool.shutdown();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_task_returning_unit_is_counted_once(
        threads in 1..=3usize,
        cap in 1..=3usize,
        n in 0..4000usize,
        panics in prop::collection::vec(0..4000usize, 0..4),
        cancel_at in prop::option::weighted(0.3, 0..4000usize),
        others in 0..20usize,
    ) {
        quiet_panics();
        within_hang_limit(move || check(threads, cap, n, panics, cancel_at, others))
            .unwrap_or_else(|| Err(TestCaseError::fail("the job never ended")))?;
    }
}

#[test]
fn a_big_job_of_unit_tasks_returns_one_value_for_each() {
    let pool = Pool::new(2);
    for n in [0, 1, 2, 1000, 100_000] {
        let results = pool.submit((0..n).map(|_| || ()), 2).wait().unwrap();
        assert_eq!(results.len(), n);
    }
}

/// Tasks that capture nothing are zero-sized: their claims move no element (more than 64 move
/// as a count) and the quiet loop keeps its place in registers, put back when a task panics.
/// Every task must still run once, and each panic be reported once, at the task that ran it.
#[test]
fn zero_sized_tasks_that_panic_are_each_run_once() {
    use std::sync::atomic::AtomicUsize;
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    quiet_panics();
    let pool = Pool::new(2);
    let n = 20_000;
    let task = || {
        // The run, not the index: which task panics depends on the order they run in.
        if RUNS.fetch_add(1, SeqCst) % 997 == 0 {
            panic!("{ON_PURPOSE}");
        }
    };
    assert_eq!(std::mem::size_of_val(&task), 0);
    let mut err = pool
        .submit((0..n).map(|_| task), 2)
        .wait()
        .expect_err("some tasks panic");
    assert_eq!(RUNS.load(SeqCst), n);
    let results = err.results_mut();
    assert_eq!(results.len(), n);
    let panicked = results
        .iter()
        .filter(|result| matches!(result, Err(TaskError::Panicked(_))))
        .count();
    assert_eq!(panicked, n.div_ceil(997));
    assert!(results
        .iter()
        .all(|result| matches!(result, Ok(()) | Err(TaskError::Panicked(_)))));
    pool.shutdown();
}
