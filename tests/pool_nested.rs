//! Nested jobs: tasks that submit jobs to their own pool and wait for them. A waiting worker
//! runs the awaited job's tasks itself (within the job's cap), so nesting never deadlocks.

mod pool_common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use jobpool::{JobHandle, Pool};
use pool_common::{Gate, Meter};

/// Waits for the job without consuming its handle, so its progress can be read after.
fn finish<T: Send + 'static>(job: &JobHandle<T>) {
    while job.wait_timeout(Duration::from_secs(3600)).is_err() {}
}

/// N = 1: the only worker runs a task that waits on a sub-job; it runs the sub-job itself.
#[test]
fn one_thread_task_waits_on_a_sub_job() {
    let pool = Pool::new(1);
    let inner = pool.clone();
    let job = pool.submit(
        vec![move || {
            let me = std::thread::current().id();
            let sub = inner.submit(
                (1..=10).map(|i| move || (i, std::thread::current().id())),
                3,
            );
            let results = sub.wait().unwrap();
            assert!(results.iter().all(|(_, thread)| *thread == me));
            results.iter().map(|(i, _)| i).sum::<i32>()
        }],
        1,
    );
    assert_eq!(job.wait().unwrap(), vec![55]);
}

/// The sub-job's tasks run on the waiting worker, and `wait_timeout` and `completions` help
/// the same way `wait` does (N = 1, so any other behaviour hangs).
#[test]
fn one_thread_wait_timeout_and_completions_help_too() {
    let pool = Pool::new(1);
    let inner = pool.clone();
    let job = pool.submit(
        vec![move || {
            let me = std::thread::current().id();
            let sub = inner.submit((0..5).map(|i| move || (i, std::thread::current().id())), 2);
            while sub.wait_timeout(Duration::from_secs(3600)).is_err() {}
            let first = sub.wait().unwrap();
            assert!(first.iter().all(|(_, t)| *t == me));
            let sub = inner.submit((0..5).map(|i| move || i * 2), 1);
            let mut seen: Vec<_> = sub.completions().map(|(i, r)| (i, r.unwrap())).collect();
            seen.sort();
            assert_eq!(seen, (0..5).map(|i| (i, i * 2)).collect::<Vec<_>>());
            first.len() + seen.len()
        }],
        1,
    );
    assert_eq!(job.wait().unwrap(), vec![10]);
}

/// A tree of jobs: every task above the leaves submits a job of two children and waits for it;
/// a leaf returns 1. The root's result counts the leaves; each job's cap is checked from
/// inside its parent.
fn tree(
    pool: &Pool,
    depth: u32,
    cap: usize,
    leaves: &Arc<AtomicUsize>,
    over_cap: &Arc<AtomicUsize>,
) -> usize {
    if depth == 0 {
        leaves.fetch_add(1, SeqCst);
        return 1;
    }
    let children = (0..2).map(|_| {
        let (pool2, leaves, over_cap) = (pool.clone(), leaves.clone(), over_cap.clone());
        move || tree(&pool2, depth - 1, cap, &leaves, &over_cap)
    });
    let job = pool.submit(children, cap);
    finish(&job);
    if job.progress().peak_running > cap {
        over_cap.fetch_add(1, SeqCst);
    }
    job.wait().unwrap().iter().sum()
}

fn run_tree(threads: usize, depth: u32, cap: usize) {
    let pool = Pool::new(threads);
    let leaves = Arc::new(AtomicUsize::new(0));
    let over_cap = Arc::new(AtomicUsize::new(0));
    let root = {
        let (pool2, leaves, over_cap) = (pool.clone(), leaves.clone(), over_cap.clone());
        pool.submit(
            vec![move || tree(&pool2, depth, cap, &leaves, &over_cap)],
            1,
        )
    };
    assert_eq!(
        root.wait().unwrap(),
        vec![1 << depth],
        "threads={threads} cap={cap}"
    );
    assert_eq!(leaves.load(SeqCst), 1 << depth);
    assert_eq!(over_cap.load(SeqCst), 0);
}

#[test]
fn tree_of_depth_7_on_one_thread() {
    run_tree(1, 7, 1);
    run_tree(1, 7, 2);
}

#[test]
fn tree_of_depth_7_on_three_threads() {
    run_tree(3, 7, 1);
    run_tree(3, 7, 2);
}

/// A chain: each task submits one sub-job and waits, 32 deep, on two threads.
#[test]
fn deep_chain_of_waits() {
    fn chain(pool: &Pool, depth: usize) -> usize {
        if depth == 0 {
            return 0;
        }
        let pool2 = pool.clone();
        1 + pool
            .submit(vec![move || chain(&pool2, depth - 1)], 1)
            .wait()
            .unwrap()[0]
    }
    let pool = Pool::new(2);
    let pool2 = pool.clone();
    assert_eq!(
        pool.submit(vec![move || chain(&pool2, 32)], 1)
            .wait()
            .unwrap(),
        vec![32]
    );
}

/// N = 2. Job S (cap 1) has its token held by one worker, whose task is held at a gate. A task
/// on the other worker waits on S: it cannot take a second token, so it waits without
/// breaking the cap, and S finishes once let go.
#[test]
fn waiting_on_a_sub_job_whose_only_token_another_worker_holds() {
    let pool = Pool::new(2);
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let meter = Meter::new();
    let (started_tx, started) = mpsc::channel();
    let s = pool.submit(
        (0..6).map(|i| {
            let (gate, meter, started_tx) = (gate.clone(), meter.clone(), started_tx.clone());
            move || {
                let (_inside, _) = meter.enter();
                started_tx.send(i).unwrap();
                gate.pass();
                i
            }
        }),
        1,
    );
    assert_eq!(started.recv().unwrap(), 0);
    let (waiting_tx, waiting) = mpsc::channel();
    let waiter = pool.submit(
        vec![move || {
            waiting_tx.send(()).unwrap();
            finish(&s);
            let peak = s.progress().peak_running;
            (s.wait().unwrap(), peak)
        }],
        1,
    );
    waiting.recv().unwrap();
    // Let S's tasks through one at a time: each must have started alone.
    for i in 1..6 {
        gate.open(1);
        assert_eq!(started.recv().unwrap(), i);
    }
    gate.open(1);
    let (results, peak) = waiter.wait().unwrap().remove(0);
    assert_eq!(results, (0..6).collect::<Vec<_>>());
    assert_eq!(peak, 1);
    assert_eq!(meter.peak(), 1);
}

/// Every worker of a pool of 3 runs a task that waits on its own sub-job, whose tasks wait on
/// sub-sub-jobs: with no idle worker left, the waiters must run the work themselves.
#[test]
fn every_worker_waiting_at_once() {
    let pool = Pool::new(3);
    let (started_tx, started) = mpsc::channel();
    let gate = Gate::new();
    let _open_at_exit = gate.opener();
    let job = pool.submit(
        (0..3).map(|i| {
            let (pool, started_tx, gate) = (pool.clone(), started_tx.clone(), gate.clone());
            move || {
                started_tx.send(()).unwrap();
                gate.pass(); // until all three workers run one of these
                let inner = pool.clone();
                let sub = pool.submit(
                    (0..4).map(move |j| {
                        let inner = inner.clone();
                        move || {
                            inner
                                .submit((0..3).map(move |k| move || i + j + k), 2)
                                .wait()
                                .unwrap()
                                .iter()
                                .sum::<usize>()
                        }
                    }),
                    2,
                );
                sub.wait().unwrap().iter().sum::<usize>()
            }
        }),
        3,
    );
    for _ in 0..3 {
        started.recv().unwrap();
    }
    gate.open(3);
    // Task i: sum over j<4, k<3 of (i + j + k) = 12i + 3*6 + 4*3 = 12i + 30.
    assert_eq!(job.wait().unwrap(), vec![30, 42, 54]);
}

/// A task consumes a sub-job's results as they come, and the sub-job's second task waits until
/// the consumer has seen the first result: the waiting worker hands each result over as soon as
/// it has it, rather than running every task it can first.
#[test]
fn completions_consumed_on_a_worker_come_one_by_one() {
    let pool = Pool::new(1);
    let inner = pool.clone();
    let seen = pool_common::within_hang_limit(move || {
        let consumer = move || {
            let (seen_tx, seen_rx) = mpsc::channel::<()>();
            let tasks: Vec<Box<dyn FnOnce() -> u32 + Send>> = vec![
                Box::new(|| 0),
                Box::new(move || {
                    seen_rx.recv().unwrap();
                    1
                }),
            ];
            let mut results = inner.submit(tasks, 1).completions();
            let first = results.next().unwrap();
            seen_tx.send(()).unwrap();
            let second = results.next().unwrap();
            (first.0, second.0)
        };
        pool.submit(vec![consumer], 1).wait().unwrap()
    });
    assert_eq!(seen, Some(vec![(0, 1)]), "the first result was held back");
}

/// A task waits for the next result of a sub-job whose only token another worker holds: it is
/// woken by the result, although that worker keeps its token for the next task.
#[test]
fn a_worker_waiting_for_a_result_is_woken_by_it() {
    for _ in 0..10 {
        let pool = Pool::builder()
            .threads(2)
            .time_slice(Duration::from_secs(3600))
            .build()
            .unwrap();
        let inner = pool.clone();
        let first = pool_common::within_hang_limit(move || {
            let consumer = move || {
                let (seen_tx, seen_rx) = mpsc::channel::<()>();
                let (started_tx, started) = mpsc::channel::<()>();
                let (go, go_rx) = mpsc::channel::<()>();
                let tasks: Vec<Box<dyn FnOnce() -> u32 + Send>> = vec![
                    Box::new(move || {
                        started_tx.send(()).unwrap();
                        go_rx.recv().unwrap();
                        0
                    }),
                    Box::new(move || {
                        seen_rx.recv().unwrap();
                        1
                    }),
                ];
                let job = inner.submit(tasks, 1);
                started.recv().unwrap(); // the other worker holds the only token
                let mut results = job.completions();
                go.send(()).unwrap();
                let first = results.next().unwrap();
                seen_tx.send(()).unwrap();
                results.next().unwrap().1.unwrap();
                first.0
            };
            pool.submit(vec![consumer], 1).wait().unwrap()
        });
        assert_eq!(
            first,
            Some(vec![0]),
            "the waiting worker was never woken by the result"
        );
    }
}

/// `wait_timeout` on a worker runs the sub-job's tasks only until its deadline: with tasks far
/// longer than the timeout it returns after the first.
#[test]
fn wait_timeout_on_a_worker_stops_helping_at_its_deadline() {
    let pool = Pool::new(1);
    let inner = pool.clone();
    let done = pool
        .submit(
            vec![move || {
                let job = inner.submit(
                    (0..10).map(|_| || std::thread::sleep(Duration::from_millis(20))),
                    1,
                );
                let finished = job.wait_timeout(Duration::from_millis(1)).is_ok();
                let done = job.progress().done;
                drop(job);
                (finished, done)
            }],
            1,
        )
        .wait()
        .unwrap();
    assert_eq!(
        done,
        vec![(false, 1)],
        "the waiting worker ran past its deadline"
    );
}
