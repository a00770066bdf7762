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

/// Submits the job `detach` makes while the pool's only worker is held, drops its handle, lets
/// the worker go, and checks that the worker still runs a later job.
fn detach_then_check_the_worker<F>(pool: &Pool, detach: F)
where
    F: FnOnce(&Pool),
{
    let (go, go_rx) = mpsc::channel::<()>();
    let held = pool.submit(vec![move || go_rx.recv().unwrap()], 1);
    detach(pool);
    go.send(()).unwrap();
    held.wait().unwrap();
    let later = pool.clone();
    let result = within_hang_limit(move || later.submit(vec![|| 42], 1).wait().unwrap());
    assert_eq!(
        result,
        Some(vec![42]),
        "the only worker died or deadlocked dropping a result"
    );
}

/// Detached, cap 1: the worker's own reference is the job's last, dropped after it ran.
#[test]
fn a_panicking_drop_of_a_detached_result_does_not_kill_the_worker() {
    quiet_panics();
    detach_then_check_the_worker(&Pool::new(1), |pool| {
        drop(pool.submit(vec![|| PanicOnDrop], 1))
    });
}

/// A pool of one thread with a long time slice.
fn one_thread() -> Pool {
    Pool::builder()
        .threads(1)
        .time_slice(Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// Detached, cap 2 on one thread: the job re-queues itself after its first claim, the worker
/// runs both tasks, and the run queue's dead entry holds the last reference: it is dropped off
/// the registry lock, under `catch_unwind`.
#[test]
fn a_dead_queue_entry_drops_its_results_off_the_lock() {
    quiet_panics();
    detach_then_check_the_worker(&one_thread(), |pool| {
        drop(pool.submit(vec![|| PanicOnDrop, || PanicOnDrop], 2))
    });
}

/// The same path with a result that submits when dropped: no deadlock on the registry lock.
#[test]
fn a_result_that_submits_when_dropped_does_not_deadlock() {
    detach_then_check_the_worker(&one_thread(), |pool| {
        let (a, b) = (pool.clone(), pool.clone());
        drop(pool.submit([a, b].map(|p| move || SubmitOnDrop(p)), 2));
    });
}
