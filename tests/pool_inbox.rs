//! Jobs submitted while every worker is busy behind a queued job go to the inbox, off the run
//! queue's lock (the scheduler's README, rule 12). Seen from outside, nothing changes: they run
//! in the order they came, a more urgent job still goes first, the statistics count them as
//! queued, and a cancelled one does not keep the pool from shutting down.

mod pool_common;

use std::sync::{Arc, Mutex};

use jobpool::{JobHandle, Pool, Priority};
use pool_common::{hold_a_worker, Gate, OpenOnDrop};

type Log = Arc<Mutex<Vec<String>>>;

/// A pool of one worker held busy by a task at `gate` (opened when `_open_on_failure` drops),
/// and a log for the jobs that follow.
struct BusyPool {
    pool: Pool,
    gate: Arc<Gate>,
    _open_on_failure: OpenOnDrop,
    holder: Option<JobHandle<()>>,
    log: Log,
}

impl BusyPool {
    fn new() -> BusyPool {
        let pool = Pool::new(1);
        let gate = Gate::new();
        let _open_on_failure = gate.opener();
        let holder = hold_a_worker(&pool, &gate);
        BusyPool {
            pool,
            gate,
            _open_on_failure,
            holder: Some(holder),
            log: Log::default(),
        }
    }

    /// One job of one task that logs `name`, of the given priority.
    fn logging_job(&self, name: &str, priority: Priority) -> JobHandle<()> {
        let (log, name) = (self.log.clone(), name.to_string());
        self.pool
            .job()
            .priority(priority)
            .submit(vec![move || log.lock().unwrap().push(name)])
    }

    /// Lets the held worker go, and waits for its task.
    fn release(&mut self) {
        self.gate.open_all();
        if let Some(holder) = self.holder.take() {
            holder.wait().unwrap();
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[test]
fn jobs_submitted_to_a_busy_pool_run_in_the_order_they_came() {
    let mut busy = BusyPool::new();
    // The first is queued; the others find the worker busy behind it.
    let jobs: Vec<_> = (0..50)
        .map(|i| busy.logging_job(&format!("j{i}"), Priority::Normal))
        .collect();
    let stats = busy.pool.stats();
    assert_eq!(stats.jobs_queued, 50, "{stats}");
    assert_eq!(stats.jobs_live, 51, "{stats}");
    busy.release();
    for job in jobs {
        job.wait().unwrap();
    }
    let expected: Vec<_> = (0..50).map(|i| format!("j{i}")).collect();
    assert_eq!(busy.log(), expected);
}

#[test]
fn a_more_urgent_job_submitted_to_a_busy_pool_still_goes_first() {
    let mut busy = BusyPool::new();
    let normal: Vec<_> = (0..5)
        .map(|i| busy.logging_job(&format!("n{i}"), Priority::Normal))
        .collect();
    let high = busy.logging_job("high", Priority::High);
    let low = busy.logging_job("low", Priority::Low);
    assert!(busy.pool.waited(Priority::Low).is_some());
    busy.release();
    high.wait().unwrap();
    low.wait().unwrap();
    for job in normal {
        job.wait().unwrap();
    }
    let log = busy.log();
    assert_eq!(log.first().map(String::as_str), Some("high"), "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("low"), "{log:?}");
}

#[test]
fn a_job_cancelled_in_the_inbox_reports_its_tasks_and_lets_the_pool_shut_down() {
    let mut busy = BusyPool::new();
    let queued = busy.logging_job("queued", Priority::Normal);
    let boxed = busy.logging_job("boxed", Priority::Normal);
    boxed.cancel();
    let err = boxed.wait().unwrap_err();
    assert_eq!(err.cancelled().count(), 1);
    busy.release();
    queued.wait().unwrap();
    busy.pool.shutdown();
    assert_eq!(busy.log(), vec!["queued".to_string()]);
}
