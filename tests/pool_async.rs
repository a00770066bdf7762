//! Awaiting jobs from async code: `JobHandle` as a future (`JobFuture`) and
//! `Completions::poll_next`, driven by minimal executors written here (no runtime dependency).
//!
//! The executors poll only after a wake: a thread parks until its waker was called since the
//! last poll. So a test that passes proves the wake-ups came (no busy polling could hide a lost
//! one), and the counts of polls and wakes say so too. Nothing sleeps: gates and latches order
//! the events.

mod pool_common;

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use jobpool::{Completions, JobFuture, Pool, TaskError};
use pool_common::{
    hold_a_worker, quiet_panics, within_hang_limit, DropCount, Gate, Latch, ON_PURPOSE,
};

/// A waker that unparks the thread that made it, and counts its wakes.
struct Unparker {
    thread: Thread,
    wakes: AtomicUsize,
}

impl Unparker {
    fn new() -> Arc<Unparker> {
        Arc::new(Unparker {
            thread: thread::current(),
            wakes: AtomicUsize::new(0),
        })
    }

    fn wakes(&self) -> usize {
        self.wakes.load(SeqCst)
    }

    /// Parks this thread until the waker has been called more than `seen` times in all.
    fn park_past(&self, seen: usize) {
        while self.wakes() == seen {
            thread::park();
        }
    }
}

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        self.thread.unpark();
    }
}

/// What `block_on` saw: the polls it made and the wakes it got.
#[derive(Debug, Clone, Copy)]
struct Run {
    polls: usize,
    wakes: usize,
}

/// A single-threaded executor: polls `future` on this thread, and after a `Pending` parks
/// until the waker is called. Every poll but the first follows a wake.
fn block_on_counting<F: Future>(future: F) -> (F::Output, Run) {
    let mut future = pin!(future);
    let unparker = Unparker::new();
    let waker = Waker::from(unparker.clone());
    let mut cx = Context::from_waker(&waker);
    let mut polls = 0;
    loop {
        // Read before the poll, so that a wake during the poll is not missed.
        let seen = unparker.wakes();
        polls += 1;
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            let run = Run {
                polls,
                wakes: unparker.wakes(),
            };
            assert!(run.polls <= run.wakes + 1, "polled without a wake: {run:?}");
            return (output, run);
        }
        unparker.park_past(seen);
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    block_on_counting(future).0
}

/// The ready queue of `join_all`: indices of futures whose wakers were called.
struct ReadyQueue {
    ready: Mutex<VecDeque<usize>>,
    thread: Thread,
}

/// The waker of one future of `join_all`: queues its index, counts, and unparks the executor.
struct IndexWaker {
    index: usize,
    queue: Arc<ReadyQueue>,
    wakes: AtomicUsize,
}

impl Wake for IndexWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        self.queue.ready.lock().unwrap().push_back(self.index);
        self.queue.thread.unpark();
    }
}

/// A join-all executor on this thread: polls each future once, in order, then only the futures
/// whose wakers were called, round-robin in the order of their wakes; parks while none was.
/// Returns the outputs in the futures' order and how many times each future was woken.
fn join_all<'a, O>(futures: Vec<Pin<Box<dyn Future<Output = O> + 'a>>>) -> (Vec<O>, Vec<usize>) {
    let n = futures.len();
    let queue = Arc::new(ReadyQueue {
        ready: Mutex::new((0..n).collect()),
        thread: thread::current(),
    });
    let wakers: Vec<Arc<IndexWaker>> = (0..n)
        .map(|index| {
            Arc::new(IndexWaker {
                index,
                queue: queue.clone(),
                wakes: AtomicUsize::new(0),
            })
        })
        .collect();
    let mut futures: Vec<Option<_>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<O>> = (0..n).map(|_| None).collect();
    let mut left = n;
    let mut polls = 0;
    while left > 0 {
        let next = queue.ready.lock().unwrap().pop_front();
        let Some(index) = next else {
            thread::park();
            continue;
        };
        let Some(future) = futures[index].as_mut() else {
            continue; // woken after it completed
        };
        polls += 1;
        let waker = Waker::from(wakers[index].clone());
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            outputs[index] = Some(output);
            futures[index] = None;
            left -= 1;
        }
    }
    let wakes: Vec<usize> = wakers.iter().map(|w| w.wakes.load(SeqCst)).collect();
    assert!(
        polls <= n + wakes.iter().sum::<usize>(),
        "polled without a wake"
    );
    (outputs.into_iter().map(Option::unwrap).collect(), wakes)
}

/// Polls `future` once with `waker`.
fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

#[test]
fn awaiting_a_job_gives_what_wait_gives() {
    let pool = Pool::new(4);
    let job = pool.submit((1..=100).map(|i| move || i * 2), 3);
    let results = block_on(async { job.await }).unwrap();
    assert_eq!(results, (1..=100).map(|i| i * 2).collect::<Vec<_>>());
}

#[test]
fn awaiting_a_job_of_no_tasks_is_ready_at_once() {
    let pool = Pool::new(1);
    let (results, run) = block_on_counting(pool.submit(Vec::<fn() -> u8>::new(), 1).into_future());
    assert_eq!(results.unwrap(), Vec::<u8>::new());
    assert_eq!((run.polls, run.wakes), (1, 0));
}

#[test]
fn awaiting_several_jobs_one_after_the_other() {
    let pool = Pool::new(3);
    // Submitted up front, awaited in reverse order of submission...
    let early: Vec<_> = (0..5)
        .map(|j| pool.submit((0..20).map(move |i| move || j * 100 + i), 2))
        .collect();
    let sums = block_on(async {
        let mut sums = Vec::new();
        for job in early.into_iter().rev() {
            sums.push(job.await.unwrap().iter().sum::<usize>());
        }
        // ...then each submitted only once the one before it is done.
        for j in 0..5 {
            let job = pool.submit((0..20).map(move |i| move || j * 100 + i), 2);
            sums.push(job.await.unwrap().iter().sum::<usize>());
        }
        sums
    });
    let sum = |j: usize| (0..20).map(|i| j * 100 + i).sum::<usize>();
    let expected: Vec<usize> = (0..5).rev().chain(0..5).map(sum).collect();
    assert_eq!(sums, expected);
}

#[test]
fn a_panicking_task_comes_back_as_a_job_error() {
    quiet_panics();
    let pool = Pool::new(2);
    let tasks: Vec<Box<dyn FnOnce() -> i32 + Send>> = vec![
        Box::new(|| 1),
        Box::new(|| panic!("{ON_PURPOSE}: task 1")),
        Box::new(|| 3),
    ];
    let mut err = block_on(pool.submit(tasks, 2).into_future()).unwrap_err();
    let panics: Vec<(usize, String)> = err.panics().map(|(i, m)| (i, m.to_owned())).collect();
    assert_eq!(panics, vec![(1, format!("{ON_PURPOSE}: task 1"))]);
    assert_eq!(err.results_mut()[0], Ok(1));
    assert_eq!(err.results_mut()[2], Ok(3));
}

/// The job's first task holds its only worker; the job is cancelled while a future waits on
/// it. The cancel does not finish the job (a task still runs), the task's end does, and wakes
/// the future.
#[test]
fn a_cancelled_job_comes_back_as_a_job_error() {
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _opener = gate.opener();
    let started = Latch::new(1);
    let first = {
        let (gate, started) = (gate.clone(), started.clone());
        move || {
            started.count_down();
            gate.pass();
            0
        }
    };
    let mut tasks: Vec<Box<dyn FnOnce() -> i32 + Send>> = vec![Box::new(first)];
    tasks.extend((1..4).map(|i| Box::new(move || i) as Box<dyn FnOnce() -> i32 + Send>));
    let job = pool.submit(tasks, 1);
    started.wait();
    let canceller = job.canceller();
    let gate_in_future = gate.clone();
    let (result, run) = block_on_counting(async move {
        let mut job = job.into_future();
        // The first poll finds the job running, and leaves the waker.
        let mut first_poll = true;
        std::future::poll_fn(|cx| {
            let poll = Pin::new(&mut job).poll(cx);
            if first_poll {
                first_poll = false;
                assert!(poll.is_pending());
                canceller.cancel();
                gate_in_future.open(1);
            }
            poll
        })
        .await
    });
    let mut err = result.unwrap_err();
    assert_eq!(err.cancelled().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(err.results_mut()[0], Ok(0));
    assert!(run.wakes >= 1, "{run:?}");
}

/// Every task is pending behind another job that holds the only worker: the cancel finishes the
/// job at once, and the cancelling thread wakes the future.
#[test]
fn a_cancel_that_finishes_the_job_wakes_its_future() {
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _opener = gate.opener();
    let holder = hold_a_worker(&pool, &gate);
    let mut job = pool.submit((0..3).map(|i| move || i), 1).into_future();
    let unparker = Unparker::new();
    let waker = Waker::from(unparker.clone());
    assert!(poll_once(&mut job, &waker).is_pending());
    job.handle().cancel();
    assert_eq!(unparker.wakes(), 1, "the cancel did not wake the future");
    let Poll::Ready(result) = poll_once(&mut job, &waker) else {
        panic!("woken, but not ready");
    };
    assert_eq!(result.unwrap_err().cancelled().count(), 3);
    gate.open(1);
    holder.wait().unwrap();
}

/// The future is polled once while the job's only task is held, then the task is let go: the
/// worker that finishes the job calls the waker, which unparks this thread, and the next poll
/// is ready.
#[test]
fn a_pending_future_is_woken_by_the_worker_that_finishes_the_job() {
    let result = within_hang_limit(|| {
        let pool = Pool::new(2);
        let gate = Gate::new();
        let _opener = gate.opener();
        let task_gate = gate.clone();
        let mut job = pool
            .submit(
                vec![move || {
                    task_gate.pass();
                    42
                }],
                1,
            )
            .into_future();
        let unparker = Unparker::new();
        let waker = Waker::from(unparker.clone());
        assert!(poll_once(&mut job, &waker).is_pending());
        gate.open(1);
        unparker.park_past(0);
        assert!(unparker.wakes() >= 1);
        match poll_once(&mut job, &waker) {
            Poll::Ready(results) => results.unwrap(),
            Poll::Pending => panic!("woken, but not ready"),
        }
    });
    assert_eq!(result, Some(vec![42]), "the waker was never called");
}

/// Polled with one waker and then another: only the last one is woken, and the first is
/// dropped (the job keeps no reference to it).
#[test]
fn a_new_waker_replaces_the_old_one() {
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _opener = gate.opener();
    let task_gate = gate.clone();
    let mut job = pool.submit(vec![move || task_gate.pass()], 1).into_future();
    let (old, new) = (Unparker::new(), Unparker::new());
    let old_waker = Waker::from(old.clone());
    let new_waker = Waker::from(new.clone());
    assert!(poll_once(&mut job, &old_waker).is_pending());
    assert!(poll_once(&mut job, &old_waker).is_pending()); // `will_wake`: kept, not cloned again
    assert_eq!(
        Arc::strong_count(&old),
        3,
        "the job holds one clone of the waker"
    );
    assert!(poll_once(&mut job, &new_waker).is_pending());
    assert_eq!(
        Arc::strong_count(&old),
        2,
        "the replaced waker is still held"
    );
    gate.open(1);
    new.park_past(0);
    assert_eq!(old.wakes(), 0);
    assert!(poll_once(&mut job, &new_waker).is_ready());
}

#[test]
#[should_panic(expected = "polled after it completed")]
fn polling_a_completed_future_again_panics() {
    let pool = Pool::new(1);
    let mut job = pool.submit(vec![|| 1], 1).into_future();
    let waker = Waker::from(Unparker::new());
    while poll_once(&mut job, &waker).is_pending() {
        thread::park();
    }
    let _ = poll_once(&mut job, &waker);
}

/// Three tasks on three workers, let go in the order 2, 0, 1: `poll_next` reports them in that
/// order, each after a wake, then the end.
#[test]
fn completions_by_poll_next_in_finish_order() {
    let result = within_hang_limit(|| {
        let pool = Pool::new(3);
        let started = Latch::new(3);
        let gates: Vec<Arc<Gate>> = (0..3).map(|_| Gate::new()).collect();
        let _openers: Vec<_> = gates.iter().map(|g| g.opener()).collect();
        let tasks = (0..3).map(|i| {
            let (gate, started) = (gates[i].clone(), started.clone());
            move || {
                started.count_down();
                gate.pass();
                i * 10
            }
        });
        let mut results = pool.submit(tasks, 3).completions();
        started.wait(); // one task on each worker
        let unparker = Unparker::new();
        let waker = Waker::from(unparker.clone());
        let mut cx = Context::from_waker(&waker);
        let mut order = Vec::new();
        for i in [2, 0, 1] {
            let seen = unparker.wakes();
            assert!(results.poll_next(&mut cx).is_pending());
            gates[i].open(1);
            unparker.park_past(seen);
            match results.poll_next(&mut cx) {
                Poll::Ready(Some((index, result))) => order.push((index, result.unwrap())),
                other => panic!("woken, but {:?}", other.map(|o| o.map(|(i, _)| i))),
            }
        }
        assert!(matches!(results.poll_next(&mut cx), Poll::Ready(None)));
        assert!(matches!(results.poll_next(&mut cx), Poll::Ready(None)));
        order
    });
    assert_eq!(result, Some(vec![(2, 20), (0, 0), (1, 10)]));
}

/// One worker, cap 1: the worker keeps its token from task to task, and the consumer is woken
/// after each one (the wake carried to the worker's next claim), not only at the end.
#[test]
fn completions_are_woken_for_each_task_while_the_worker_keeps_its_token() {
    let result = within_hang_limit(|| {
        let pool = Pool::new(1);
        let gates: Vec<Arc<Gate>> = (0..4).map(|_| Gate::new()).collect();
        let _openers: Vec<_> = gates.iter().map(|g| g.opener()).collect();
        let tasks = (0..4).map(|i| {
            let gate = gates[i].clone();
            move || {
                gate.pass();
                i
            }
        });
        let mut results = pool.submit(tasks, 1).completions();
        let unparker = Unparker::new();
        let waker = Waker::from(unparker.clone());
        let mut cx = Context::from_waker(&waker);
        let mut seen = Vec::new();
        for gate in &gates {
            let wakes = unparker.wakes();
            assert!(results.poll_next(&mut cx).is_pending());
            gate.open(1);
            unparker.park_past(wakes);
            match results.poll_next(&mut cx) {
                Poll::Ready(Some((index, Ok(value)))) => seen.push((index, value)),
                _ => panic!("woken, but no result"),
            }
        }
        assert!(matches!(results.poll_next(&mut cx), Poll::Ready(None)));
        seen
    });
    assert_eq!(result, Some(vec![(0, 0), (1, 1), (2, 2), (3, 3)]));
}

#[test]
fn next_async_reports_every_task_once_cancelled_ones_too() {
    let pool = Pool::new(1);
    let gate = Gate::new();
    let _opener = gate.opener();
    let started = Latch::new(1);
    let first = {
        let (gate, started) = (gate.clone(), started.clone());
        move || {
            started.count_down();
            gate.pass();
            0
        }
    };
    let mut tasks: Vec<Box<dyn FnOnce() -> i32 + Send>> = vec![Box::new(first)];
    tasks.extend((1..5).map(|i| Box::new(move || i) as Box<dyn FnOnce() -> i32 + Send>));
    let mut results = pool.submit(tasks, 1).completions();
    started.wait();
    results.handle().cancel();
    gate.open(1);
    let mut seen = block_on(async {
        let mut seen = Vec::new();
        while let Some(item) = results.next_async().await {
            seen.push(item);
        }
        seen
    });
    seen.sort_by_key(|(i, _)| *i);
    let mut expected = vec![(0, Ok(0))];
    expected.extend((1..5).map(|i| (i, Err(TaskError::Cancelled))));
    assert_eq!(seen, expected);
}

/// `n` tasks held at `gate`, each counting its run in `runs` and returning a result that counts
/// its drop in `drops`. Returns `(tasks, runs, drops)`.
#[allow(clippy::type_complexity)]
fn counted_tasks(
    n: usize,
    gate: &Arc<Gate>,
) -> (
    Vec<impl FnOnce() -> DropCount + Send + 'static>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let runs = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let tasks = (0..n)
        .map(|_| {
            let (gate, runs, drops) = (gate.clone(), runs.clone(), drops.clone());
            move || {
                gate.pass();
                runs.fetch_add(1, SeqCst);
                DropCount(drops)
            }
        })
        .collect();
    (tasks, runs, drops)
}

/// A future dropped while it waits: the job still runs every task once, every result is dropped
/// once, the waker it left is released at once, and nothing wakes it later.
///
/// The drops are counted once the pool is dropped (its workers joined), not as soon as the last
/// task returns: the last reference to a detached job may be a dead run-queue entry that a
/// worker popped just before it went to sleep, and holds until it wakes.
#[test]
fn a_future_dropped_before_completion_detaches_the_job() {
    let pool = Pool::new(2);
    let gate = Gate::new();
    let _opener = gate.opener();
    let (tasks, runs, drops) = counted_tasks(6, &gate);
    let mut job = pool.submit(tasks, 2).into_future();
    let unparker = Unparker::new();
    let waker = Waker::from(unparker.clone());
    assert!(poll_once(&mut job, &waker).is_pending());
    assert_eq!(Arc::strong_count(&unparker), 3, "the job holds the waker");
    drop(job);
    assert_eq!(Arc::strong_count(&unparker), 2, "the job kept the waker");
    gate.open_all();
    drop(pool);
    assert_eq!(runs.load(SeqCst), 6);
    assert_eq!(drops.load(SeqCst), 6);
    assert_eq!(unparker.wakes(), 0);
}

/// The same for `Completions` dropped while its `poll_next` waits, after taking one result.
/// The waiting poll uses a waker of its own: the worker that woke the first one may still hold
/// it for a moment (a waker's `wake` runs before its drop), which would blur the count.
#[test]
fn completions_dropped_while_waiting_release_the_waker_and_the_results() {
    let pool = Pool::new(2);
    let gate = Gate::new();
    let _opener = gate.opener();
    let (tasks, runs, drops) = counted_tasks(5, &gate);
    let mut results = pool.submit(tasks, 2).completions();
    let first_unparker = Unparker::new();
    let first_waker = Waker::from(first_unparker.clone());
    let mut cx = Context::from_waker(&first_waker);
    assert!(results.poll_next(&mut cx).is_pending());
    gate.open(1);
    first_unparker.park_past(0);
    let Poll::Ready(Some((_, Ok(first)))) = results.poll_next(&mut cx) else {
        panic!("woken, but no result");
    };
    drop(first);
    let unparker = Unparker::new();
    let waker = Waker::from(unparker.clone());
    // Nothing more is let through yet, so this poll waits and leaves the waker.
    assert!(results
        .poll_next(&mut Context::from_waker(&waker))
        .is_pending());
    assert_eq!(Arc::strong_count(&unparker), 3, "the job holds the waker");
    drop(results);
    assert_eq!(Arc::strong_count(&unparker), 2, "the job kept the waker");
    gate.open_all();
    drop(pool);
    assert_eq!(runs.load(SeqCst), 5);
    assert_eq!(drops.load(SeqCst), 5);
    assert_eq!(unparker.wakes(), 0);
}

/// The future of `next_async` dropped while it waits loses no result: the next call gets it.
#[test]
fn a_dropped_next_async_loses_no_result() {
    let pool = Pool::new(2);
    let gate = Gate::new();
    let _opener = gate.opener();
    let task_gate = gate.clone();
    let mut results = pool
        .submit(
            (0..3).map(|i| {
                let gate = task_gate.clone();
                move || {
                    gate.pass();
                    i
                }
            }),
            2,
        )
        .completions();
    {
        let mut next = pin!(results.next_async());
        let waker = Waker::from(Unparker::new());
        assert!(next
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
    }
    gate.open_all();
    let mut seen = block_on(async {
        let mut seen = Vec::new();
        while let Some((index, result)) = results.next_async().await {
            seen.push((index, result.unwrap()));
        }
        seen
    });
    seen.sort();
    assert_eq!(seen, vec![(0, 0), (1, 1), (2, 2)]);
}

/// A task polls a future of another job of its one-thread pool: the poll returns `Pending` at
/// once (it neither blocks the only worker nor runs the job's tasks), and the future, sent out
/// of the pool, completes once the worker is free.
#[test]
fn polling_from_a_worker_never_blocks_and_never_runs_tasks() {
    let result = within_hang_limit(|| {
        let pool = Pool::new(1);
        let inner = pool.clone();
        let (tx, rx) = mpsc::channel::<JobFuture<i32>>();
        let outer = pool.submit(
            vec![move || {
                let mut job = inner.submit(vec![|| 7], 1).into_future();
                let waker = Waker::from(Unparker::new());
                let pending = poll_once(&mut job, &waker).is_pending();
                tx.send(job).unwrap();
                pending
            }],
            1,
        );
        assert_eq!(outer.wait().unwrap(), vec![true]);
        block_on(rx.recv().unwrap()).unwrap()
    });
    assert_eq!(result, Some(vec![7]));
}

/// Many jobs awaited at once on one thread by the join-all executor, each future polled only
/// when its own waker was called; a gate holds every task until each future has been polled
/// once, so all of them wait at the same time, and each is woken.
#[test]
fn many_futures_awaited_at_once() {
    let result = within_hang_limit(|| {
        let pool = Pool::new(4);
        let gate = Gate::new();
        let _opener = gate.opener();
        const JOBS: usize = 64;
        let jobs: Vec<JobFuture<usize>> = (0..JOBS)
            .map(|j| {
                let tasks = (0..8).map(|i| {
                    let gate = gate.clone();
                    move || {
                        gate.pass();
                        j * 8 + i
                    }
                });
                pool.submit(tasks, 1 + j % 3).into_future()
            })
            .collect();
        let mut futures: Vec<Pin<Box<dyn Future<Output = usize>>>> = jobs
            .into_iter()
            .map(|job| {
                Box::pin(async move { job.await.unwrap().iter().sum::<usize>() })
                    as Pin<Box<dyn Future<Output = usize>>>
            })
            .collect();
        // Polled last in the first round: lets the tasks go once every job's future waits.
        let opener = gate.clone();
        futures.push(Box::pin(async move {
            opener.open_all();
            0
        }));
        let (sums, wakes) = join_all(futures);
        for (j, sum) in sums.iter().take(JOBS).enumerate() {
            assert_eq!(*sum, (0..8).map(|i| j * 8 + i).sum::<usize>());
        }
        assert!(
            wakes.iter().take(JOBS).all(|&w| w >= 1),
            "a future that waited was never woken: {wakes:?}"
        );
        sums.len()
    });
    assert_eq!(result, Some(65));
}

/// `JobFuture`s and `Completions` consumers mixed, and jobs awaited from inside the futures of
/// others, on the join-all executor.
#[test]
fn futures_and_completions_side_by_side() {
    let pool = Pool::new(3);
    let consumers: Vec<Completions<usize>> = (0..8)
        .map(|j| {
            pool.submit((0..10).map(move |i| move || j + i), 2)
                .completions()
        })
        .collect();
    let mut futures: Vec<Pin<Box<dyn Future<Output = usize> + '_>>> = Vec::new();
    for mut results in consumers {
        futures.push(Box::pin(async move {
            let mut total = 0;
            while let Some((_, result)) = results.next_async().await {
                total += result.unwrap();
            }
            total
        }));
    }
    for j in 0..8 {
        let pool = &pool;
        futures.push(Box::pin(async move {
            let first = pool.submit((0..10).map(move |i| move || j + i), 3).await;
            let first: usize = first.unwrap().iter().sum();
            let second = pool.submit(vec![move || first * 2], 1).await;
            second.unwrap()[0]
        }));
    }
    let (totals, _) = join_all(futures);
    let one = |j: usize| (0..10).map(|i| j + i).sum::<usize>();
    let expected: Vec<usize> = (0..8).map(one).chain((0..8).map(|j| one(j) * 2)).collect();
    assert_eq!(totals, expected);
}

/// The futures can move to other threads, as multi-threaded executors need.
#[test]
fn futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let pool = Pool::new(1);
    let job = pool.submit(vec![|| 1], 1).into_future();
    send(&job);
    let mut results = pool.submit(vec![|| 1], 1).completions();
    send(&results.next_async());
    send(&results);
    drop(job);
}
