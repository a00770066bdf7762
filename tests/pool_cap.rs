//! Caps: at most k of a job's tasks run at once, k of them do run when there is work and
//! workers, every task runs exactly once, and a capped job never holds idle workers back.

mod pool_common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use jobpool::{JobHandle, Pool};
use pool_common::{counters, values, DropCount, Gate, Latch, Meter};

/// Waits for the job without consuming its handle, so its progress can be read after.
fn finish<T: Send + 'static>(job: &JobHandle<T>) {
    while job.wait_timeout(Duration::from_secs(3600)).is_err() {}
}

/// One job of `tasks` tasks with cap `k` on `n` threads. The first `min(k, n, tasks)` tasks to
/// start meet at a one-shot rendezvous before any of them leaves, so the run cannot end unless
/// that many run at once; every task records how many run beside it.
fn cap_held_and_reached(n: usize, k: usize, tasks: usize) {
    let pool = Pool::new(n);
    let meter = Meter::new();
    let expected = k.min(n).min(tasks);
    let meet = Latch::new(expected);
    let job = pool.submit(
        (0..tasks).map(|i| {
            let (meter, meet) = (meter.clone(), meet.clone());
            move || {
                let (_inside, _) = meter.enter();
                meet.arrive_and_wait();
                // Give the others a chance to overlap with this one after the rendezvous too.
                for _ in 0..10 {
                    std::thread::yield_now();
                }
                i
            }
        }),
        k,
    );
    finish(&job);
    let progress = job.progress();
    assert_eq!(
        job.wait().unwrap(),
        (0..tasks).collect::<Vec<_>>(),
        "n={n} k={k}"
    );
    assert!(
        meter.peak() <= k,
        "n={n} k={k}: {} ran at once",
        meter.peak()
    );
    assert_eq!(meter.peak(), expected, "n={n} k={k} tasks={tasks}");
    assert_eq!(progress.peak_running, expected, "n={n} k={k} tasks={tasks}");
    assert_eq!(progress.cap, k);
}

#[test]
fn cap_of_one_serializes() {
    cap_held_and_reached(1, 1, 8);
    cap_held_and_reached(4, 1, 16);
}

#[test]
fn cap_below_threads_is_held_and_reached() {
    cap_held_and_reached(4, 2, 16);
    cap_held_and_reached(8, 3, 30);
    cap_held_and_reached(3, 2, 7);
}

#[test]
fn cap_equal_to_threads_is_held_and_reached() {
    cap_held_and_reached(2, 2, 10);
    cap_held_and_reached(4, 4, 16);
}

#[test]
fn cap_above_threads_uses_every_thread() {
    cap_held_and_reached(3, 8, 20);
    cap_held_and_reached(2, 100, 9);
}

#[test]
fn fewer_tasks_than_cap_all_run_at_once() {
    cap_held_and_reached(4, 10, 3);
    cap_held_and_reached(6, 6, 5);
}

/// Every task runs exactly once, its result lands at its index, and every closure is dropped
/// exactly once (short tasks are claimed in chunks, which this also covers).
#[test]
fn every_task_runs_once_and_results_keep_submission_order() {
    const TASKS: usize = 2_000;
    let pool = Pool::new(4);
    let runs = counters(TASKS);
    let drops = Arc::new(AtomicUsize::new(0));
    let job = pool.submit(
        (0..TASKS).map(|i| {
            let runs = runs.clone();
            let guard = DropCount(drops.clone());
            move || {
                let _guard = guard;
                runs[i].fetch_add(1, SeqCst);
                i * 3
            }
        }),
        3,
    );
    let results = job.wait().unwrap();
    assert_eq!(results, (0..TASKS).map(|i| i * 3).collect::<Vec<_>>());
    assert_eq!(values(&runs), vec![1; TASKS]);
    assert_eq!(drops.load(SeqCst), TASKS);
}

/// Many jobs at once, each with its own cap: all finish, each task once, each cap held.
#[test]
fn concurrent_jobs_each_hold_their_own_cap() {
    let pool = Pool::new(4);
    let jobs: Vec<_> = (1..=6)
        .map(|k| {
            let meter = Meter::new();
            let runs = counters(50);
            let job = pool.submit(
                (0..50).map(|i| {
                    let (meter, runs) = (meter.clone(), runs.clone());
                    move || {
                        let (_inside, _) = meter.enter();
                        runs[i].fetch_add(1, SeqCst);
                        std::thread::yield_now();
                        i + k
                    }
                }),
                k,
            );
            (k, meter, runs, job)
        })
        .collect();
    for (k, meter, runs, job) in jobs {
        assert_eq!(
            job.wait().unwrap(),
            (0..50).map(|i| i + k).collect::<Vec<_>>()
        );
        assert_eq!(values(&runs), vec![1; 50]);
        assert!(meter.peak() <= k, "cap {k}: {} at once", meter.peak());
    }
}

/// N = 4; job A (cap 1) is submitted first, then job B (cap 3). The first task of A and the
/// three tasks of B meet at one rendezvous of 4: it opens only if the workers that cannot take
/// one of A's tokens run B's tasks instead of waiting for A's token.
#[test]
fn capped_job_leaves_idle_workers_to_other_jobs() {
    let pool = Pool::new(4);
    let meet = Latch::new(4);
    let a_meter = Meter::new();
    let b_meter = Meter::new();
    let a = pool.submit(
        (0..4).map(|i| {
            let (meet, meter) = (meet.clone(), a_meter.clone());
            move || {
                let (_inside, _) = meter.enter();
                meet.arrive_and_wait();
                i
            }
        }),
        1,
    );
    let b = pool.submit(
        (0..3).map(|i| {
            let (meet, meter) = (meet.clone(), b_meter.clone());
            move || {
                let (_inside, _) = meter.enter();
                meet.arrive_and_wait();
                i
            }
        }),
        3,
    );
    assert_eq!(a.wait().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(b.wait().unwrap(), vec![0, 1, 2]);
    assert_eq!(a_meter.peak(), 1);
    assert_eq!(b_meter.peak(), 3);
}

/// N = 2; job A (cap 1) has a task blocked until the end and more tasks pending. The other
/// worker must not wait for A's token: job B runs to completion meanwhile.
#[test]
fn blocked_capped_job_does_not_stall_other_jobs() {
    let pool = Pool::new(2);
    let (started_tx, started) = mpsc::channel();
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let a_meter = Meter::new();
    let a = pool.submit(
        (0..5).map(|i| {
            let (started_tx, gate, meter) = (started_tx.clone(), gate.clone(), a_meter.clone());
            move || {
                let (_inside, _) = meter.enter();
                if i == 0 {
                    started_tx.send(()).unwrap();
                    gate.pass();
                }
                i
            }
        }),
        1,
    );
    started.recv().unwrap();
    let b = pool.submit((0..20).map(|i| move || i * i), 1);
    assert_eq!(
        b.wait().unwrap(),
        (0..20).map(|i| i * i).collect::<Vec<_>>()
    );
    // A is still stuck on its first task, and none of its other tasks started.
    let progress = a.progress();
    assert_eq!((progress.done, progress.running), (0, 1));
    gate.open(1);
    assert_eq!(a.wait().unwrap(), vec![0, 1, 2, 3, 4]);
    assert_eq!(a_meter.peak(), 1);
}

/// Events of the fairness test, in the order the main thread sees them.
#[derive(Debug, PartialEq)]
enum Event {
    BigStarted,
    BigDone,
    SmallDone,
}

/// N = 2, time slice 0. A big job (100 tasks, cap 2) has both workers, each task held at a gate
/// the test opens one permit at a time, and only when both workers wait at it. A small job
/// (3 tasks) submitted then must finish after at most one more big task: the worker freed by
/// that task hands the big job's token back to the less served small job instead of starting
/// another big task, and serves the small job while it has been served less. An unfair pool
/// finishes the small job only after the big one.
///
/// "Served less" is time (rule 10 of the scheduler's README), so the test makes sure of it: the
/// gate stays shut 50 ms, and the big task that ends first has then served longer than the
/// small job's three tasks will. Without that wait, a small task that lost its core for a few
/// microseconds outweighed a big task held only while the test opened the gate, and the pool
/// rightly went back to the big job (1 run in about 400).
#[test]
fn small_job_overtakes_a_big_backlog() {
    const BIG: usize = 100;
    let pool = Pool::builder()
        .threads(2)
        .time_slice(Duration::ZERO)
        .build()
        .unwrap();
    let (events_tx, events) = mpsc::channel();
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let big = pool.submit(
        (0..BIG).map(|i| {
            let (events_tx, gate) = (events_tx.clone(), gate.clone());
            move || {
                events_tx.send(Event::BigStarted).unwrap();
                gate.pass();
                events_tx.send(Event::BigDone).unwrap();
                i
            }
        }),
        2,
    );
    assert_eq!(events.recv().unwrap(), Event::BigStarted);
    assert_eq!(events.recv().unwrap(), Event::BigStarted);
    let small = pool.submit(
        (0..3).map(|i| {
            let events_tx = events_tx.clone();
            move || {
                events_tx.send(Event::SmallDone).unwrap();
                i
            }
        }),
        1,
    );
    // Not to line threads up (the gate and the events do that): to give the big job served
    // time that three tiny tasks cannot reach.
    std::thread::sleep(Duration::from_millis(50));
    let (mut waiting_at_gate, mut big_done, mut small_done) = (2, 0, 0);
    while small_done < 3 {
        if waiting_at_gate == 2 {
            // Both workers wait at the gate: let one through (or the test could not go on).
            gate.open(1);
            waiting_at_gate -= 1;
        }
        match events.recv().unwrap() {
            Event::BigStarted => waiting_at_gate += 1,
            Event::BigDone => big_done += 1,
            Event::SmallDone => small_done += 1,
        }
    }
    assert_eq!(
        big_done, 1,
        "the small job finished only after {big_done} of {BIG} big tasks"
    );
    assert_eq!(small.wait().unwrap(), vec![0, 1, 2]);
    gate.open_all();
    assert_eq!(big.wait().unwrap(), (0..BIG).collect::<Vec<_>>());
}
