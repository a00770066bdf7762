//! A loom model of rule 12's second pair (README.md, `inbox.rs`): a job left in the inbox
//! never hides there below `queued_min`, where busy workers deciding whether to yield to a
//! queued job would not see it. Run with the models of `tests/loom.rs`:
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib inbox_tests`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::key_job::Key;
use super::Registry;
use crate::sync::Instant;

/// A job of key 5 is queued and no worker is idle, so a job of key 7 goes to the inbox. A
/// worker pops the first job meanwhile, which raises `queued_min` to "none". Either the
/// submitter sees the raised minimum after storing its job, or the worker sees the job after
/// storing the minimum; either way the job ends in the run queue, and `queued_min` is 7.
#[test]
fn a_job_left_in_the_inbox_never_hides_below_the_queued_minimum() {
    loom::model(|| {
        let registry = Arc::new(Registry::new(1, Duration::from_micros(100), 16));
        registry.push(Arc::new(Key(5)), 5);
        let worker = {
            let registry = registry.clone();
            loom::thread::spawn(move || {
                // One look of `find_work`, without the parts that do not touch the inbox.
                let mut shared = registry.shared.lock();
                registry.drain(&mut shared);
                let mut dead = Vec::new();
                let popped = shared
                    .queue
                    .pop(Instant::now(), &mut dead)
                    .map(|job| job.key());
                registry.publish_min(&mut shared);
                popped
            })
        };
        registry
            .admit(Some(Arc::new(Key(7))), || {})
            .expect("the pool is open");
        let popped = worker.join().unwrap();
        let _shared = registry.shared.lock();
        let min = registry.queued_min.load(Relaxed);
        for (_, key) in registry.inbox.take() {
            assert!(
                key >= min,
                "a job of key {key} waits in the inbox below the queued minimum {min}"
            );
        }
        if popped == Some(5) {
            assert_eq!(
                min, 7,
                "the job of key 7 is neither queued nor in the inbox"
            );
        }
    });
}

/// Rule 3 with rule 12: a job that goes first asks the busy workers to look up from their
/// chunks, whoever queues it. A job of key 5 is queued, a job of key 7 is submitted, and a
/// worker pops the first job meanwhile, which raises `queued_min` to "none": the job of key 7
/// then goes first, whether its submitter pushes it, moves the inbox itself, or the popping
/// worker moves it in. Only when it was queued behind the job of key 5 before the pop did it
/// go first nowhere, and ask nothing.
#[test]
fn a_job_that_goes_first_after_a_pop_asks_whoever_moves_it_in() {
    loom::model(|| {
        let registry = Arc::new(Registry::new(1, Duration::from_micros(100), 16));
        registry.push(Arc::new(Key(5)), 5);
        let asked_before = registry.yield_requests();
        let worker = {
            let registry = registry.clone();
            loom::thread::spawn(move || {
                let mut shared = registry.shared.lock();
                registry.drain(&mut shared);
                let behind = shared.queue.len() == 2;
                let mut dead = Vec::new();
                shared.queue.pop(Instant::now(), &mut dead);
                registry.publish_min(&mut shared);
                behind
            })
        };
        registry
            .admit(Some(Arc::new(Key(7))), || {})
            .expect("the pool is open");
        let behind = worker.join().unwrap();
        let asked = registry.yield_requests() - asked_before;
        assert_eq!(
            asked,
            u64::from(!behind),
            "the job of key 7 went first ({}) and asked {asked} times",
            !behind
        );
    });
}
