//! Waits from inside the pool that must make progress or fail loudly: polling a sub-job with
//! a zero timeout, and waiting on one's own job.

mod pool_common;

use std::sync::mpsc;
use std::time::Duration;

use jobpool::{JobHandle, Pool, TaskError};
use pool_common::within_hang_limit;

/// More polls than a correct pool ever needs for a sub-job of two instant tasks (each poll runs
/// at least one of its tasks); a pool that never helps while polling spins past it.
const POLL_LIMIT: usize = 1_000_000;

#[test]
fn polling_a_sub_job_with_a_zero_timeout_runs_it_on_a_one_thread_pool() {
    let polls = within_hang_limit(|| {
        let pool = Pool::new(1);
        let inner = pool.clone();
        let job = pool.submit(
            vec![move || {
                let sub = inner.submit(vec![|| 20, || 22], 1);
                let mut polls = 0;
                while sub.wait_timeout(Duration::ZERO).is_err() {
                    polls += 1;
                    assert!(polls < POLL_LIMIT, "the poll never ran the sub-job");
                }
                (sub.wait().unwrap(), polls)
            }],
            1,
        );
        job.wait().unwrap().pop().unwrap()
    })
    .expect("hung");
    assert_eq!(polls.0, vec![20, 22]);
    assert!(polls.1 <= 2, "{} polls for two tasks", polls.1);
}

#[test]
fn polling_completions_with_a_zero_timeout_runs_the_sub_job_on_a_one_thread_pool() {
    let seen = within_hang_limit(|| {
        let pool = Pool::new(1);
        let inner = pool.clone();
        let job = pool.submit(
            vec![move || {
                let mut results = inner.submit((0..3).map(|i| move || i), 1).completions();
                let mut seen = Vec::new();
                for _ in 0..POLL_LIMIT {
                    match results.next_timeout(Duration::ZERO) {
                        Ok(Some((index, result))) => seen.push((index, result.unwrap())),
                        Ok(None) => return seen,
                        Err(_timed_out) => {}
                    }
                }
                panic!("the poll never ran the sub-job");
            }],
            1,
        );
        job.wait().unwrap().pop().unwrap()
    })
    .expect("hung");
    assert_eq!(seen, vec![(0, 0), (1, 1), (2, 2)]);
}

/// Submits a job of one task that receives its own job's handle and does `wait_on` with it;
/// returns what the outer job reports for that task.
fn wait_on_own_job<F>(wait_on: F) -> Result<(), TaskError>
where
    F: FnOnce(JobHandle<()>) + Send + 'static,
{
    let pool = Pool::new(1);
    let (handle_tx, handle_rx) = mpsc::channel::<JobHandle<()>>();
    let (result_tx, result_rx) = mpsc::channel();
    let job = pool.submit(
        vec![move || {
            let own = handle_rx.recv().unwrap();
            let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_on(own)));
            result_tx
                .send(waited.map_err(|p| {
                    let message = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    TaskError::Panicked(message)
                }))
                .unwrap();
        }],
        1,
    );
    handle_tx.send(job).unwrap();
    result_rx.recv().unwrap()
}

#[test]
fn a_task_that_waits_on_its_own_job_panics_instead_of_hanging() {
    let outcome = within_hang_limit(|| wait_on_own_job(|own| drop(own.wait()))).expect("hung");
    let Err(TaskError::Panicked(message)) = outcome else {
        panic!("the wait returned: {outcome:?}")
    };
    assert!(message.contains("its own job"), "{message}");
}

#[test]
fn a_task_that_takes_its_own_jobs_completions_panics_instead_of_hanging() {
    let outcome = within_hang_limit(|| wait_on_own_job(|own| own.completions().for_each(drop)))
        .expect("hung");
    assert!(
        matches!(outcome, Err(TaskError::Panicked(_))),
        "{outcome:?}"
    );
}

#[test]
fn a_sub_job_that_waits_on_the_job_waiting_for_it_panics_instead_of_hanging() {
    // Job A's task waits on sub-job B, whose task waits on A: a cycle of waits on one thread.
    let b_outcome = within_hang_limit(|| {
        let pool = Pool::new(1);
        let inner = pool.clone();
        let (handle_tx, handle_rx) = mpsc::channel::<JobHandle<()>>();
        let (result_tx, result_rx) = mpsc::channel();
        let a = pool.submit(
            vec![move || {
                let a = handle_rx.recv().unwrap();
                let b = inner.submit(vec![move || drop(a.wait())], 1);
                result_tx
                    .send(b.wait().map_err(|err| err.into_results()))
                    .unwrap();
            }],
            1,
        );
        handle_tx.send(a).unwrap();
        result_rx.recv().unwrap()
    })
    .expect("a cycle of waits hung");
    let Err(results) = b_outcome else {
        panic!("B's wait on A returned")
    };
    assert!(
        matches!(&results[0], Err(TaskError::Panicked(m)) if m.contains("its own job")),
        "{results:?}"
    );
}
