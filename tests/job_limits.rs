//! Limiters: a cap and a rate shared by several jobs, trees of sub-jobs under one shared cap
//! (the waiting task lends its slot), held jobs that hold no worker, and limits changed while
//! jobs run.

mod pool_common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobpool::{Limiter, Pool, Rate};
use pool_common::{Gate, Latch, Meter};

#[test]
fn a_shared_cap_holds_for_all_its_jobs_together() {
    let pool = Pool::new(4);
    let limiter = Limiter::new().with_cap(2);
    let meter = Meter::new();
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            let tasks = (0..20).map(|_| {
                let meter = meter.clone();
                move || {
                    let (_inside, _) = meter.enter();
                    std::thread::yield_now();
                }
            });
            pool.job().cap(2).limit(&limiter).submit(tasks)
        })
        .collect();
    for job in jobs {
        job.wait().unwrap();
    }
    assert!(meter.peak() <= 2, "peak {}", meter.peak());
    assert!(limiter.peak_running() <= 2);
    assert_eq!(limiter.running(), 0);
}

#[test]
fn a_held_job_holds_no_worker() {
    // The shared cap of 1 is taken by A's task, which waits at a gate. B, under the same
    // limiter, is held; C, free of it, runs to the end on the other worker meanwhile.
    let pool = Pool::new(2);
    let limiter = Limiter::new().with_cap(1);
    let (gate, started) = (Gate::new(), Latch::new(1));
    let (g, s) = (gate.clone(), started.clone());
    let a = pool.job().limit(&limiter).submit(vec![move || {
        s.count_down();
        g.pass();
    }]);
    started.wait();
    let b = pool.job().limit(&limiter).submit(vec![|| "b"]);
    let c = pool.submit((0..100).map(|i| move || i), 2);
    assert_eq!(c.wait().unwrap().len(), 100);
    assert!(b.progress().held || b.progress().pending == 1);
    assert_eq!(b.progress().done, 0);
    gate.open_all();
    a.wait().unwrap();
    assert_eq!(b.wait().unwrap(), vec!["b"]);
}

/// A tree of jobs, `fanout` sub-jobs per task down to `depth`, every job under `limiter`;
/// each task waits for its sub-jobs. Returns the number of leaves.
fn tree(pool: &Pool, limiter: &Limiter, meter: &Arc<Meter>, depth: usize, fanout: usize) -> usize {
    let tasks = (0..fanout).map(|_| {
        let (pool2, limiter2, meter2) = (pool.clone(), limiter.clone(), meter.clone());
        move || {
            {
                let (_inside, _) = meter2.enter();
                std::thread::yield_now();
            }
            if depth == 0 {
                1
            } else {
                tree(&pool2, &limiter2, &meter2, depth - 1, fanout)
            }
        }
    });
    let job = pool.job().cap(fanout).limit(limiter).submit(tasks);
    job.wait().unwrap().iter().sum()
}

#[test]
fn a_tree_of_sub_jobs_stays_within_its_shared_cap_without_deadlock() {
    for threads in [1, 2] {
        for cap in [1, 2] {
            let pool = Pool::new(threads);
            let limiter = Limiter::new().with_cap(cap);
            let meter = Meter::new();
            let root = {
                let (p, l, m) = (pool.clone(), limiter.clone(), meter.clone());
                pool.submit(vec![move || tree(&p, &l, &m, 3, 2)], 1)
            };
            assert_eq!(
                root.wait().unwrap(),
                vec![16],
                "{threads} threads, cap {cap}"
            );
            // Tasks that wait lend their slot: the ones doing work are never more than the cap.
            assert!(
                meter.peak() <= cap,
                "{threads} threads, cap {cap}: peak {}",
                meter.peak()
            );
        }
    }
}

#[test]
fn starts_never_exceed_the_rate_plus_the_burst() {
    let pool = Pool::new(4);
    let rate = Rate::new(50, Duration::from_secs(1)).burst(3); // one per 20 ms
    let limiter = Limiter::new().with_rate(rate);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let jobs: Vec<_> = (0..2)
        .map(|_| {
            let tasks = (0..8).map(|_| {
                let starts = starts.clone();
                move || starts.lock().unwrap().push(Instant::now())
            });
            pool.job().cap(4).limit(&limiter).submit(tasks)
        })
        .collect();
    for job in jobs {
        job.wait().unwrap();
    }
    let mut starts = starts.lock().unwrap().clone();
    starts.sort();
    assert_eq!(limiter.starts(), 16);
    let interval = rate.interval();
    for (i, &from) in starts.iter().enumerate() {
        for window in [1u32, 2, 5, 10] {
            let w = interval * window;
            let n = starts[i..].iter().take_while(|&&t| t < from + w).count() as u32;
            // The limiter grants at most burst + window starts in the window; a task starts a
            // moment after its grant, which can bring one more into a window.
            assert!(n <= 3 + window + 1, "{n} starts within {w:?}");
        }
    }
    // The whole run cannot be faster than the rate allows.
    let span = starts[15].duration_since(starts[0]);
    assert!(span >= interval * (16 - 3), "16 starts in {span:?}");
}

#[test]
fn a_raised_shared_cap_lets_held_jobs_run_at_once() {
    let pool = Pool::new(3);
    let limiter = Limiter::new().with_cap(1);
    let three = Latch::new(3);
    let tasks = |latch: &Arc<Latch>| {
        let latch = latch.clone();
        vec![move || latch.arrive_and_wait()]
    };
    let a = pool.job().limit(&limiter).submit(tasks(&three));
    let b = pool.job().limit(&limiter).submit(tasks(&three));
    let c = pool.job().limit(&limiter).submit(tasks(&three));
    // Under a cap of 1 the three tasks could never meet at the latch of 3.
    limiter.set_cap(Some(3));
    for job in [a, b, c] {
        job.wait().unwrap();
    }
    assert_eq!(limiter.peak_running(), 3);
}

#[test]
fn a_rate_changed_while_jobs_run_applies_to_the_next_starts() {
    let pool = Pool::new(2);
    let limiter = Limiter::new().with_rate(Rate::new(1, Duration::from_secs(3600)));
    let ran = Arc::new(AtomicUsize::new(0));
    let tasks = (0..5).map(|_| {
        let ran = ran.clone();
        move || ran.fetch_add(1, SeqCst)
    });
    let job = pool.job().cap(2).limit(&limiter).submit(tasks);
    // One start an hour: lift the limit, the rest start at the next timer or at once.
    while ran.load(SeqCst) == 0 {
        std::thread::yield_now();
    }
    limiter.set_rate(Some(Rate::new(1000, Duration::from_secs(1))));
    // The held job set a timer for its next slot an hour away; the new rate releases it when
    // the limiter is changed.
    assert_eq!(job.wait_timeout(Duration::from_secs(60)), Ok(()));
    assert_eq!(ran.load(SeqCst), 5);
}

/// A job under two rates, the second with no slot free for an hour: the slot of the first,
/// taken before the second refused, is given back. It counts no start, and another job under
/// the first rate alone (one start an hour) starts at once.
#[test]
fn a_start_slot_taken_before_another_limiter_refused_is_given_back() {
    let pool = Pool::new(1);
    let events = pool.events(64);
    let hourly = || Limiter::new().with_rate(Rate::new(1, Duration::from_secs(3600)));
    let (first, second) = (hourly(), hourly());
    pool.job().limit(&second).submit([|| ()]).wait().unwrap();
    let held = pool.job().limit(&first).limit(&second).submit([|| ()]);
    // Refused by the second limiter once its turn came (the pool's one worker is free).
    let refused = loop {
        let event = events
            .recv_timeout(Duration::from_secs(60))
            .expect("no JobHeld");
        if let jobpool::EventKind::JobHeld { until: Some(_) } = event.kind {
            break event;
        }
    };
    let starts_when_refused = (first.starts(), second.starts());
    let alone = pool.job().limit(&first).submit([|| ()]);
    let alone_ran = alone.wait_timeout(Duration::from_secs(60)).is_ok();
    // Cancelled before any assertion: a job waiting an hour for its slot would hold up the
    // pool's drop after a failed one.
    alone.cancel();
    held.cancel();
    assert_eq!(refused.job, Some(held.id()));
    assert_eq!(starts_when_refused, (0, 1), "starts of (first, second)");
    assert!(alone_ran, "the first limiter's slot stayed taken");
    assert_eq!(first.starts(), 1);
    assert!(held.wait().unwrap_err().was_cancelled());
}
