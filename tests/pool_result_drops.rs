//! The results of a detached job are dropped by whichever thread lets go of the job last, often
//! a worker. A result whose `Drop` panics, or submits to the pool, must neither kill that worker
//! nor deadlock it on a scheduler lock.

mod pool_common;

use std::sync::mpsc;
use std::time::Duration;

use jobpool::Pool;
use pool_common::{quiet_panics, within_hang_limit, ON_PURPOSE};

/// A result that panics when dropped.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{ON_PURPOSE}: a result's drop");
        }
    }
}

/// A result that submits a job to its pool when dropped.
struct SubmitOnDrop(Pool);

impl Drop for SubmitOnDrop {
    fn drop(&mut self) {
        let _ = self.0.try_submit(vec![|| ()], 1);
    }
}

/// Holds the only worker of `pool` until the returned sender is used, so that the next job is
/// queued (and detached) before it runs.
fn hold_the_worker(pool: &Pool) -> (mpsc::Sender<()>, jobpool::JobHandle<()>) {
    let (go, go_rx) = mpsc::channel::<()>();
    (go, pool.submit(vec![move || go_rx.recv().unwrap()], 1))
}

/// Detached, cap 1: the worker's own reference is the job's last, dropped after it ran.
#[test]
fn a_panicking_drop_of_a_detached_result_does_not_kill_the_worker() {
    quiet_panics();
    let pool = Pool::new(1);
    let (go, gate) = hold_the_worker(&pool);
    drop(pool.submit(vec![|| PanicOnDrop], 1));
    go.send(()).unwrap();
    gate.wait().unwrap();
    let later = pool.clone();
    let result = within_hang_limit(move || later.submit(vec![|| 42], 1).wait().unwrap());
    assert_eq!(
        result,
        Some(vec![42]),
        "the only worker died dropping a detached result"
    );
}

/// Detached, cap 2 on one thread: the job re-queues itself after its first claim, the worker
/// runs both tasks, and the run queue's dead entry holds the last reference: it is dropped off
/// the registry lock, under `catch_unwind`.
#[test]
fn a_dead_queue_entry_drops_its_results_off_the_lock() {
    quiet_panics();
    let pool = Pool::builder()
        .threads(1)
        .time_slice(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (go, gate) = hold_the_worker(&pool);
    drop(pool.submit(vec![|| PanicOnDrop, || PanicOnDrop], 2));
    go.send(()).unwrap();
    gate.wait().unwrap();
    let later = pool.clone();
    let result = within_hang_limit(move || later.submit(vec![|| 42], 1).wait().unwrap());
    assert_eq!(
        result,
        Some(vec![42]),
        "the only worker died in the run queue"
    );
}

/// The same path with a result that submits when dropped: no deadlock on the registry lock.
#[test]
fn a_result_that_submits_when_dropped_does_not_deadlock() {
    let pool = Pool::builder()
        .threads(1)
        .time_slice(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (go, gate) = hold_the_worker(&pool);
    let (a, b) = (pool.clone(), pool.clone());
    drop(pool.submit([a, b].map(|p| move || SubmitOnDrop(p)), 2));
    go.send(()).unwrap();
    gate.wait().unwrap();
    let later = pool.clone();
    let result = within_hang_limit(move || later.submit(vec![|| 7], 1).wait().unwrap());
    assert_eq!(
        result,
        Some(vec![7]),
        "the worker deadlocked dropping a result"
    );
}
