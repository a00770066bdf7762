//! Model checks of the token protocol and shutdown with loom.
//!
//! Built only with `--cfg loom`, which routes every lock, condition variable, atomic and thread
//! of the scheduler through loom (see `src/sync.rs`), so these explore the real scheduler code
//! under every interleaving loom considers. Run them with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test loom
//! ```
#![cfg(loom)]

use std::sync::Arc;
use std::time::Duration;

use jobpool::{Pool, SubmitErrorKind};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

/// `n` tasks that each add one to `runs`.
fn counting_tasks(n: usize, runs: &Arc<AtomicUsize>) -> Vec<impl FnOnce() + Send + 'static> {
    (0..n)
        .map(|_| {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, SeqCst);
            }
        })
        .collect()
}

/// Explores schedules with up to `bound` preemptions: enough to interleave a submit, a token
/// take and return, a re-queue and a sleep/wake, within a run time CI can afford.
fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    builder.check(f);
}

/// Two workers share one job of cap 1: the cap holds, each task runs once, results in order,
/// and shutdown (dropping the pool) joins both workers.
#[test]
fn cap_one_on_two_workers() {
    model(3, || {
        let pool = Pool::new(2);
        let active = Arc::new(AtomicUsize::new(0));
        let tasks = (0..2).map(|i| {
            let active = active.clone();
            move || {
                assert_eq!(
                    active.fetch_add(1, SeqCst),
                    0,
                    "two tasks of a cap-1 job ran at once"
                );
                active.fetch_sub(1, SeqCst);
                i
            }
        });
        assert_eq!(pool.submit(tasks, 1).wait().unwrap(), vec![0, 1]);
    });
}

/// Two jobs submitted one after the other to a one-thread pool whose worker may be asleep,
/// spinning or running: neither submission's wake-up is lost.
#[test]
fn no_lost_wakeup_between_jobs() {
    model(3, || {
        let pool = Pool::new(1);
        let a = pool.submit(vec![|| 1], 1);
        let b = pool.submit(vec![|| 2], 1);
        assert_eq!(b.wait().unwrap(), vec![2]);
        assert_eq!(a.wait().unwrap(), vec![1]);
    });
}

/// A task waits on a sub-job in a one-thread pool: the worker runs the sub-job itself.
#[test]
fn nested_wait_on_one_worker() {
    model(3, || {
        let pool = Pool::new(1);
        let inner = pool.clone();
        let job = pool.submit(
            vec![move || inner.submit(vec![|| 20, || 22], 1).wait().unwrap()],
            1,
        );
        assert_eq!(job.wait().unwrap(), vec![vec![20, 22]]);
    });
}

/// Raising the cap while the job runs re-queues it; every task still runs exactly once.
#[test]
fn set_cap_while_running() {
    model(3, || {
        let pool = Pool::new(2);
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks = counting_tasks(3, &runs);
        let job = pool.submit(tasks, 1);
        job.set_cap(2).unwrap();
        job.wait().unwrap();
        assert_eq!(runs.load(SeqCst), 3);
    });
}

/// Cancelling races with the worker: every task either ran once or is reported cancelled.
#[test]
fn cancel_races_with_worker() {
    model(3, || {
        let pool = Pool::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks = counting_tasks(2, &runs);
        let job = pool.submit(tasks, 1);
        job.cancel();
        let ran = runs.load(SeqCst);
        match job.wait() {
            Ok(results) => assert_eq!(results.len(), 2),
            Err(err) => {
                let cancelled = err.cancelled().count();
                let done = err.succeeded();
                assert_eq!(cancelled + done, 2);
                assert!(done >= ran);
                assert_eq!(runs.load(SeqCst), done);
                assert_eq!(err.panics().count(), 0);
            }
        }
    });
}

/// Shutdown races with a detached job: every accepted task runs, the workers exit, and
/// later submissions from outside are refused.
#[test]
fn shutdown_finishes_accepted_work() {
    model(3, || {
        let pool = Pool::new(2);
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks = counting_tasks(2, &runs);
        drop(pool.submit(tasks, 2));
        pool.shutdown();
        assert_eq!(runs.load(SeqCst), 2);
        let err = pool.try_submit(vec![|| ()], 1).unwrap_err();
        assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
    });
}

/// `shutdown_now` races with a running job: each task ran once or was cancelled, never both.
#[test]
fn shutdown_now_cancels_or_runs_each_task_once() {
    model(3, || {
        let pool = Pool::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks = counting_tasks(2, &runs);
        let job = pool.submit(tasks, 1);
        pool.shutdown_now();
        let done = match job.wait() {
            Ok(results) => results.len(),
            Err(err) => {
                assert_eq!(err.cancelled().count() + err.succeeded(), 2);
                err.succeeded()
            }
        };
        assert_eq!(runs.load(SeqCst), done);
    });
}

/// With a zero time slice a worker hands its token back at every task end while a less
/// served job waits: the yield and re-queue path keeps both jobs' tasks exactly once.
#[test]
fn fairness_yield_and_requeue() {
    model(3, || {
        let pool = Pool::builder()
            .threads(1)
            .time_slice(Duration::ZERO)
            .build()
            .unwrap();
        let big = pool.submit(vec![|| 1, || 2, || 3], 1);
        let small = pool.submit(vec![|| 10], 1);
        assert_eq!(small.wait().unwrap(), vec![10]);
        assert_eq!(big.wait().unwrap(), vec![1, 2, 3]);
    });
}

/// A task waits on a sub-job of cap 1 whose token the other worker may hold: the waiting
/// worker blocks until the token comes back, then helps; no wake-up between them is lost.
#[test]
fn waiting_worker_and_token_held_elsewhere() {
    model(3, || {
        let pool = Pool::new(2);
        let inner = pool.clone();
        let job = pool.submit(
            vec![move || inner.submit(vec![|| 1, || 2], 1).wait().unwrap()],
            1,
        );
        assert_eq!(job.wait().unwrap(), vec![vec![1, 2]]);
    });
}

/// Lowering the cap while both workers may be inside chunks of the job: a worker that sees it
/// hands its unstarted tasks back, and they are claimed again; every task still runs exactly
/// once and the results stay in order.
#[test]
fn lowering_the_cap_hands_claimed_tasks_back() {
    model(2, || {
        let pool = Pool::new(2);
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks = (0..4).map(|i| {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, SeqCst);
                i
            }
        });
        let job = pool.submit(tasks, 2);
        job.set_cap(1).unwrap();
        assert_eq!(job.wait().unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(runs.load(SeqCst), 4);
    });
}

/// A one-shot signal between a model's threads, built on loom's lock and condition variable.
#[derive(Default)]
struct Signal {
    set: loom::sync::Mutex<bool>,
    changed: loom::sync::Condvar,
}

impl Signal {
    fn new() -> Arc<Signal> {
        Arc::new(Signal::default())
    }

    fn set(&self) {
        *self.set.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn wait(&self) {
        let mut set = self.set.lock().unwrap();
        while !*set {
            set = self.changed.wait(set).unwrap();
        }
    }
}

/// A task that counts its run, says it started, and returns only once `may_end` is set.
fn pausing_task(
    runs: &Arc<AtomicUsize>,
    started: &Arc<Signal>,
    may_end: &Arc<Signal>,
) -> Box<dyn FnOnce() + Send> {
    let (runs, started, may_end) = (runs.clone(), started.clone(), may_end.clone());
    Box::new(move || {
        runs.fetch_add(1, SeqCst);
        started.set();
        may_end.wait();
    })
}

/// The hole rule 1 once had (the scheduler's README, "Why rule 1 once had a hole"): the job's
/// last queue entry is popped while every task is claimed, and dropped as dead; the cap is
/// then lowered, so the worker in the job hands its unstarted task back and, its time slice
/// over and a fresh job waiting, returns its token. The job has a pending task and a free
/// token again, so it must be queued again: otherwise `wait` never returns.
///
/// Job J (cap 1) has tasks a, b, c. While a runs, J's cap goes up to 2, which queues J; the
/// worker then claims b and c in one chunk (its chunks grow, and it yields only after its
/// 2 µs slice: under loom each clock reading is 1 µs later). While b runs, the other worker
/// may pop J's entry, the cap goes back to 1 and a fresh job is submitted; c is handed back.
#[test]
fn lowering_the_cap_after_a_dead_entry_was_dropped_requeues_the_job() {
    model(2, || {
        let pool = Pool::builder()
            .threads(2)
            .time_slice(Duration::from_micros(2))
            .build()
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let (a_runs, a_may_end) = (Signal::new(), Signal::new());
        let (b_runs, b_may_end) = (Signal::new(), Signal::new());
        let tasks: Vec<Box<dyn FnOnce() + Send>> = vec![
            pausing_task(&runs, &a_runs, &a_may_end),
            pausing_task(&runs, &b_runs, &b_may_end),
            Box::new(counting_tasks(1, &runs).pop().unwrap()),
        ];
        let job = pool.submit(tasks, 1);
        a_runs.wait();
        job.set_cap(2).unwrap();
        a_may_end.set();
        b_runs.wait();
        job.set_cap(1).unwrap();
        let fresh = pool.submit(vec![|| ()], 1);
        b_may_end.set();
        job.wait().unwrap();
        fresh.wait().unwrap();
        assert_eq!(runs.load(SeqCst), 3);
    });
}

/// A worker that returns its token with nothing pending while the other worker holds a chunk
/// asks for the chunk's unstarted tasks back (rule 3): they are handed back and run by one of
/// the two, each exactly once, the results still in order. With five tasks and cap 2 the
/// second worker's chunks grow past one task while the first runs out of work.
#[test]
fn an_idle_worker_asks_for_claimed_tasks_back() {
    model(2, || {
        let pool = Pool::new(2);
        let runs = Arc::new(AtomicUsize::new(0));
        let tasks = (0..5).map(|i| {
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, SeqCst);
                i
            }
        });
        assert_eq!(pool.submit(tasks, 2).wait().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(runs.load(SeqCst), 5);
    });
}

/// A cancel while the only worker is inside a chunk of the job (rule 3: before each task the
/// worker compares the job's `looks` counter, which the cancel moves): no task after the one
/// running starts, whether it was claimed in the same chunk or is still pending. Tasks 1 to 3
/// are the worker's second chunk (its chunks grow: under loom each clock reading is 1 µs
/// later).
#[test]
fn a_cancel_stops_the_rest_of_a_claimed_chunk() {
    model(2, || {
        let pool = Pool::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let (started, may_end) = (Signal::new(), Signal::new());
        let mut tasks: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
        tasks.push(Box::new(counting_tasks(1, &runs).pop().unwrap()));
        tasks.push(pausing_task(&runs, &started, &may_end));
        for task in counting_tasks(2, &runs) {
            tasks.push(Box::new(task));
        }
        let job = pool.submit(tasks, 1);
        started.wait();
        job.cancel();
        may_end.set();
        let err = job.wait().unwrap_err();
        assert_eq!(err.cancelled().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(runs.load(SeqCst), 2);
    });
}

/// The same for `shutdown_now` from a task (the pool's `yield_requests`, which it moves, is
/// the other counter compared before each task): the task after it, in the same chunk, never
/// starts.
#[test]
fn shutdown_now_stops_the_rest_of_a_claimed_chunk() {
    model(2, || {
        let pool = Pool::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let stopper = pool.clone();
        let tasks: Vec<Box<dyn FnOnce() + Send>> = vec![
            Box::new(counting_tasks(1, &runs).pop().unwrap()),
            Box::new(move || stopper.shutdown_now()),
            Box::new(counting_tasks(1, &runs).pop().unwrap()),
        ];
        let err = pool.submit(tasks, 1).wait().unwrap_err();
        assert_eq!(err.cancelled().collect::<Vec<_>>(), vec![2]);
        assert_eq!(runs.load(SeqCst), 1);
    });
}

/// Rule 11: a worker in a turn of job J, with a free token of J left and a job at least as
/// urgent queued (E), keeps J's entry aside instead of pushing it; the other worker, once it
/// has run E and finds the queue empty, must find it there, whether it looks before or after
/// the entry is stored (store, then look, on both sides). J's two tasks must meet (`a` waits
/// until `b` has started), so if the entry stayed out of sight the second worker would sleep
/// and `a` wait forever, which loom reports as a deadlock.
#[test]
fn an_idle_worker_finds_the_entry_set_aside() {
    model(2, || {
        let pool = Pool::new(2);
        let b_started = Signal::new();
        let tasks: Vec<Box<dyn FnOnce() + Send>> = vec![
            {
                let b_started = b_started.clone();
                Box::new(move || b_started.wait())
            },
            Box::new(move || b_started.set()),
        ];
        let j = pool.submit(tasks, 2);
        let e = pool.submit(vec![|| ()], 1);
        j.wait().unwrap();
        e.wait().unwrap();
    });
}

/// A job submitted while both workers are inside chunks of another job asks them to look up
/// (the pool's yield requests, rule 3); with a zero time slice they yield to it. Every task of
/// both jobs runs exactly once.
#[test]
fn a_job_queued_while_every_worker_is_busy_asks_them_to_yield() {
    model(2, || {
        let pool = Pool::builder()
            .threads(2)
            .time_slice(Duration::ZERO)
            .build()
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let big = pool.submit(counting_tasks(4, &runs), 2);
        let small = pool.submit(counting_tasks(1, &runs), 1);
        small.wait().unwrap();
        big.wait().unwrap();
        assert_eq!(runs.load(SeqCst), 5);
    });
}

/// Rule 3's bound for a job that goes first: an urgent job submitted while the one worker is
/// between two chunks of a normal job (it has just decided not to yield, and is about to claim
/// its next chunk of two tasks) still gets the worker after one task of that chunk. At most one
/// task of the normal job starts between the urgent job's submission and its run.
#[test]
fn an_urgent_job_submitted_between_two_chunks_waits_for_one_task() {
    model(2, || {
        let pool = Pool::new(1);
        let submitted = Arc::new(AtomicBool::new(false));
        let urgent_ran = Arc::new(AtomicBool::new(false));
        let started_meanwhile = Arc::new(AtomicUsize::new(0));
        let bulk = {
            let (submitted, urgent_ran) = (submitted.clone(), urgent_ran.clone());
            let started_meanwhile = started_meanwhile.clone();
            pool.job().cap(1).submit((0..3).map(move |_| {
                let (submitted, urgent_ran) = (submitted.clone(), urgent_ran.clone());
                let started_meanwhile = started_meanwhile.clone();
                move || {
                    if submitted.load(SeqCst) && !urgent_ran.load(SeqCst) {
                        started_meanwhile.fetch_add(1, SeqCst);
                    }
                }
            }))
        };
        let urgent = {
            let urgent_ran = urgent_ran.clone();
            pool.job()
                .priority(jobpool::Priority::High)
                .submit(vec![move || urgent_ran.store(true, SeqCst)])
        };
        submitted.store(true, SeqCst);
        urgent.wait().unwrap();
        bulk.wait().unwrap();
        let meanwhile = started_meanwhile.load(SeqCst);
        assert!(
            meanwhile <= 1,
            "{meanwhile} tasks of the normal job started while the urgent job waited"
        );
    });
}

/// A waker for `block_on` below: a flag under loom's lock, and loom's condition variable.
/// (loom's own `future::block_on` needs its `futures` feature.)
#[derive(Default)]
struct Wakeup {
    woken: loom::sync::Mutex<bool>,
    changed: loom::sync::Condvar,
}

impl std::task::Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        *self.woken.lock().unwrap() = true;
        self.changed.notify_all();
    }
}

/// Polls `future` until it is ready, blocking on the waker between polls. A lost wake-up
/// leaves this thread blocked for good, and with it every thread of the model (the pool's
/// workers sleep once no job is runnable), which loom reports as a deadlock.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let wakeup = Arc::new(Wakeup::default());
    let waker = std::task::Waker::from(wakeup.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let mut woken = wakeup.woken.lock().unwrap();
        while !*woken {
            woken = wakeup.changed.wait(woken).unwrap();
        }
        *woken = false;
    }
}

/// Rule 8: a future awaits a job while the only worker runs and records its tasks. Whether the
/// poll leaves its waker before or after the last outcome is recorded, the future is woken.
#[test]
fn awaiting_a_job_never_loses_its_wake_up() {
    model(3, || {
        let pool = Pool::new(1);
        let job = pool.submit(vec![|| 1, || 2], 1);
        let results = block_on(std::future::IntoFuture::into_future(job));
        assert_eq!(results.unwrap(), vec![1, 2]);
    });
}

/// The same for `Completions::poll_next`, where a lost wake-up between two results would only
/// delay the first unless the second waits for it: the second task runs only once the consumer
/// has seen the first result. The worker keeps its token between the two tasks, so the first
/// wake-up is the one it carries to its next claim (rule 8); the second comes with the end.
#[test]
fn polling_completions_never_loses_a_wake_up() {
    model(3, || {
        let pool = Pool::new(1);
        let first_seen = Signal::new();
        let waits = first_seen.clone();
        let tasks: Vec<Box<dyn FnOnce() -> i32 + Send>> = vec![
            Box::new(|| 1),
            Box::new(move || {
                waits.wait();
                2
            }),
        ];
        let mut results = pool.submit(tasks, 1).completions();
        let seen = block_on(async {
            let first = results.next_async().await.map(|(i, r)| (i, r.unwrap()));
            first_seen.set();
            let second = results.next_async().await.map(|(i, r)| (i, r.unwrap()));
            let end = results.next_async().await.map(|(i, _)| i);
            (first, second, end)
        });
        assert_eq!(seen, (Some((0, 1)), Some((1, 2)), None));
    });
}

/// A retry policy that retries once, after 1 µs of the stand-in clock.
fn retry_once() -> jobpool::Retry {
    let delay = Duration::from_micros(1);
    jobpool::Retry::attempts(2)
        .backoff(delay, 1.0, delay)
        .jitter(0.0)
}

/// A fallible task that fails on its first attempt, counting its attempts.
fn fails_once(
    attempts: &Arc<AtomicUsize>,
) -> impl FnMut(&jobpool::TaskContext<'_>) -> Result<u32, String> + Send + 'static {
    let attempts = attempts.clone();
    move |cx| {
        attempts.fetch_add(1, SeqCst);
        if cx.attempt() == 1 {
            Err("first attempt fails".into())
        } else {
            Ok(cx.attempt())
        }
    }
}

/// A retry comes due while the only worker has nothing else to do (it sleeps, or under loom
/// yields, until its timer): the retry runs, once (rule 9).
#[test]
fn a_retry_comes_due_while_the_worker_sleeps() {
    model(2, || {
        let pool = Pool::new(1);
        let attempts = Arc::new(AtomicUsize::new(0));
        let job = pool
            .job()
            .retry(retry_once())
            .submit_fallible(vec![fails_once(&attempts)]);
        assert_eq!(job.wait().unwrap(), vec![2]);
        assert_eq!(attempts.load(SeqCst), 2);
    });
}

/// `cancel` races a retry that is waiting or coming due: the task ends exactly once, either
/// retried to success or cancelled, never both, never lost.
#[test]
fn cancel_races_a_due_retry() {
    model(2, || {
        let pool = Pool::new(1);
        let attempts = Arc::new(AtomicUsize::new(0));
        let job = pool
            .job()
            .retry(retry_once())
            .submit_fallible(vec![fails_once(&attempts)]);
        job.cancel();
        match job.wait() {
            Ok(values) => {
                assert_eq!(values, vec![2]);
                assert_eq!(attempts.load(SeqCst), 2);
            }
            Err(err) => {
                assert_eq!(err.cancelled().collect::<Vec<_>>(), vec![0]);
                assert!(attempts.load(SeqCst) <= 1);
            }
        }
    });
}

/// `shutdown` while a retry waits: it is accepted work, so the worker stays until it has run.
#[test]
fn shutdown_lets_a_pending_retry_run() {
    model(2, || {
        let pool = Pool::new(1);
        let attempts = Arc::new(AtomicUsize::new(0));
        let job = pool
            .job()
            .retry(retry_once())
            .submit_fallible(vec![fails_once(&attempts)]);
        pool.shutdown();
        assert_eq!(job.wait().unwrap(), vec![2]);
        assert_eq!(attempts.load(SeqCst), 2);
    });
}

/// Two jobs share a limiter's cap of 1 on two workers: never two tasks at once, and the held
/// job is released when the other's slot comes back (rule 9).
#[test]
fn two_jobs_sharing_a_cap() {
    model(2, || {
        let pool = Pool::new(2);
        let limiter = jobpool::Limiter::new().with_cap(1);
        let active = Arc::new(AtomicUsize::new(0));
        let task = |active: &Arc<AtomicUsize>| {
            let active = active.clone();
            move || {
                assert_eq!(
                    active.fetch_add(1, SeqCst),
                    0,
                    "the shared cap of 1 was exceeded"
                );
                active.fetch_sub(1, SeqCst);
            }
        };
        let a = pool.job().limit(&limiter).submit(vec![task(&active)]);
        let b = pool.job().limit(&limiter).submit(vec![task(&active)]);
        a.wait().unwrap();
        b.wait().unwrap();
    });
}

/// On one worker, a task under a shared cap of 1 waits on a sub-job under the same limiter:
/// the waiting task lends its slot, so the sub-job runs (rule 9).
#[test]
fn a_waiting_task_lends_its_slot_to_the_awaited_sub_job() {
    model(2, || {
        let pool = Pool::new(1);
        let limiter = jobpool::Limiter::new().with_cap(1);
        let (inner, lim) = (pool.clone(), limiter.clone());
        let outer = pool.job().limit(&limiter).submit(vec![move || {
            let sub = inner.job().limit(&lim).submit(vec![|| 41]);
            sub.wait().unwrap()[0] + 1
        }]);
        assert_eq!(outer.wait().unwrap(), vec![42]);
    });
}

/// A pool of one worker, busy in a task of job `first` until `may_end` is set, with job
/// `second` queued behind it: the next job submitted from outside goes to the inbox (rule 12),
/// unless the worker has ended its task meanwhile.
struct BusyPool {
    pool: Pool,
    runs: Arc<AtomicUsize>,
    may_end: Arc<Signal>,
    first: jobpool::JobHandle<()>,
    second: jobpool::JobHandle<()>,
}

impl BusyPool {
    fn new() -> BusyPool {
        let pool = Pool::new(1);
        let runs = Arc::new(AtomicUsize::new(0));
        let (started, may_end) = (Signal::new(), Signal::new());
        let first = pool.submit(vec![pausing_task(&runs, &started, &may_end)], 1);
        started.wait();
        let second = pool.submit(counting_tasks(1, &runs), 1);
        BusyPool {
            pool,
            runs,
            may_end,
            first,
            second,
        }
    }

    /// Waits for `first` and `second`; returns how many tasks ran in all.
    fn wait(self) -> usize {
        self.first.wait().unwrap();
        self.second.wait().unwrap();
        self.runs.load(SeqCst)
    }
}

/// Rule 12: a job submitted while the only worker is busy and another job is queued is left
/// in the inbox, off the run queue's lock, while the worker ends its task, runs the queued job
/// and goes idle. Either the worker finds the job when it looks before it sleeps, or the
/// submitter finds the worker idle (or the queue emptied) and queues the job itself: if the
/// job stayed out of sight, `wait` would never return, which loom reports as a deadlock.
#[test]
fn a_job_left_in_the_inbox_is_found_by_a_worker_going_idle() {
    model(2, || {
        let busy = BusyPool::new();
        busy.may_end.set();
        let third = busy.pool.submit(counting_tasks(1, &busy.runs), 1);
        third.wait().unwrap();
        assert_eq!(busy.wait(), 3);
    });
}

/// Rule 12 with two submitters: two threads submit to a busy pool at once while its worker
/// ends its task, runs the queued job and goes idle. Each job is either found in the inbox by
/// the worker going idle or queued by its own submitter; neither is lost when the other
/// submitter moves the inbox, or pushes behind it, meanwhile.
#[test]
fn two_submissions_to_a_busy_pool_are_both_found() {
    model(2, || {
        let busy = BusyPool::new();
        busy.may_end.set();
        let other = {
            let (pool, runs) = (busy.pool.clone(), busy.runs.clone());
            loom::thread::spawn(move || {
                pool.submit(counting_tasks(1, &runs), 1).wait().unwrap();
            })
        };
        let third = busy.pool.submit(counting_tasks(1, &busy.runs), 1);
        third.wait().unwrap();
        other.join().unwrap();
        assert_eq!(busy.wait(), 4);
    });
}

/// Rule 12 and the statistics: `Pool::stats` and `Pool::waited` move the inbox into the run
/// queue too, from a thread that is neither a worker nor a submitter. Read while a job is
/// submitted to a busy pool and its worker goes idle, they lose no job (each is run, and
/// `wait` returns) and count no job that was never accepted.
#[test]
fn reading_the_statistics_while_a_job_waits_in_the_inbox_loses_nothing() {
    model(2, || {
        let busy = BusyPool::new();
        let reader = {
            let pool = busy.pool.clone();
            loom::thread::spawn(move || {
                let stats = pool.stats();
                assert!(stats.jobs_queued <= 2 && stats.jobs_live <= 3);
                let _ = pool.waited(jobpool::Priority::Normal);
            })
        };
        busy.may_end.set();
        let third = busy.pool.submit(counting_tasks(1, &busy.runs), 1);
        third.wait().unwrap();
        reader.join().unwrap();
        assert_eq!(busy.wait(), 3);
    });
}

/// Rule 12 and shutdown: a job submitted to a busy pool races `shutdown` from another thread.
/// It is refused, or accepted and run: the worker never leaves while it is live (`shutdown`
/// returns only once the workers have left, and the job's `wait` would never return).
#[test]
fn a_submission_to_a_busy_pool_racing_shutdown_runs_or_is_refused() {
    model(2, || {
        let busy = BusyPool::new();
        let closer = {
            let (pool, may_end) = (busy.pool.clone(), busy.may_end.clone());
            loom::thread::spawn(move || {
                may_end.set();
                pool.shutdown();
            })
        };
        let third = busy.pool.try_submit(counting_tasks(1, &busy.runs), 1);
        closer.join().unwrap();
        let expected = match third {
            Ok(third) => {
                third.wait().unwrap();
                3
            }
            Err(err) => {
                assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
                2
            }
        };
        assert_eq!(busy.wait(), expected);
    });
}

/// Adds one to its count when dropped.
struct CountsDrops(Arc<AtomicUsize>);

impl Drop for CountsDrops {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Rule 9 and shutdown: a job with a deadline, submitted and detached while another thread
/// shuts the pool down, is refused or runs, and is freed once the pool is gone (its result with
/// it). Its deadline's timer is set after the push: the job may finish and the worker leave
/// before that, and the timer, were it kept then, would hold the job, and through it the
/// pool's registry, forever (rule 7).
#[test]
fn a_job_with_a_deadline_submitted_while_the_pool_shuts_down_is_freed() {
    model(3, || {
        let pool = Pool::new(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let (pool, result) = (pool.clone(), CountsDrops(drops.clone()));
            loom::thread::spawn(move || {
                let job = pool.job().timeout(Duration::from_secs(3600));
                drop(job.try_submit(vec![move || result]));
            })
        };
        pool.shutdown();
        submitter.join().unwrap();
        drop(pool);
        assert_eq!(drops.load(SeqCst), 1, "the job's result was never dropped");
    });
}

/// Rule 1 and shutdown: a thread outside the pool, holding no `Pool` handle, raises a running
/// job's cap while the last handle is dropped. The raise queues the job, but the worker, still
/// in its turn, may run the job's last task before the push lands, and leave. The entry then
/// pushed is of a finished job, into a pool with no worker: it is dropped, not kept, and the
/// job with it (its results too). Kept, it held the job, and through it the pool's registry,
/// forever.
#[test]
fn a_job_queued_after_the_workers_left_is_freed() {
    model(3, || {
        let pool = Pool::new(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let tasks = (0..2).map(|_| {
            let result = CountsDrops(drops.clone());
            move || result
        });
        let job = pool.submit(tasks, 1);
        let steerer = loom::thread::spawn(move || {
            let _ = job.set_cap(2);
        });
        drop(pool);
        steerer.join().unwrap();
        assert_eq!(
            drops.load(SeqCst),
            2,
            "the job's results were never dropped"
        );
    });
}
