//! W7 and W8: what the job-control API (priorities, retries off the workers) changes, against
//! what the same program does with plain jobs.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example job_control                  # 3 rounds
//! cargo run --release -p jobpool-bench --example job_control -- --rounds 7
//! cargo run --release -p jobpool-bench --example job_control -- --only w8
//! ```
//!
//! Each round runs version (a) then version (b) of a workload; figures are printed per round,
//! then as medians over the rounds with [min-max]. A ratio between (a) and (b) is taken per
//! round before its median is taken.
//!
//! **W7, urgent jobs.** Pool of N = 2 threads. A batch of 16 bulk jobs of 32,500 tasks each,
//! cap 2, every task spinning for 15 µs (7.8 s of work, 3.9 s on 2 threads). 0.3 s into the
//! batch the main thread submits 4 urgent jobs of 200 such tasks each, cap 2: 12 ms of work,
//! 6 ms on 2 threads. (a) every job at `Priority::Normal` (`pool.submit(tasks, 2)`); (b) the
//! urgent jobs with `pool.job().cap(2).priority(Priority::High)`. Reported per version:
//!
//! - the urgent latency: the last of the 4 jobs to finish, from the first urgent submission to
//!   its `wait()` returning (each job is waited for by a thread of its own, blocked in `wait`),
//!   and the mean over the 4 jobs of their own submission to their own `wait()` returning;
//! - for comparison, when the last urgent task ended (the pool's side of the latency), and the
//!   longest gap between a job's last task ending and its `wait()` returning (the waiting
//!   thread's wake-up, on a machine whose cores the workers keep busy);
//! - the target for the last one, `1.1 x urgent work / N + one bulk task`, from the task
//!   lengths measured in that run (with tasks of exactly 15 µs: 6.6 + 0.015 ms);
//! - the bulk batch's makespan, from the first bulk submission to the last bulk job's `wait()`
//!   returning, over the lower bound (all the work measured in that run, bulk and urgent) / N;
//! - informational: the longest `pool.waited(Priority::Normal)` that the main thread saw,
//!   sampling it about every 250 µs while the urgent jobs ran (it sleeps in between, so as not
//!   to take one of the 2 cores from the workers).
//!
//! **W8, retries.** Pool of N = 4 threads. One job of 1,000 tasks, cap 4, each a 1 ms sleep;
//! every 5th task (by index) fails on its first attempt and succeeds on its second, after a
//! 10 ms backoff. (a) the retry written inside the task, as one would without a retry policy:
//! the task sleeps out the backoff on its worker and tries again; (b) `pool.job().cap(4)
//! .retry(Retry::attempts(2).backoff(10 ms, 1.0, 10 ms).jitter(0.0)).submit_fallible(..)`,
//! whose failing tasks wait for their retry holding no worker. Reported: the makespan over its
//! lower bound, work / N, where work is the measured length of every attempt's sleep
//! (1,000 + 200 attempts; a 1 ms sleep lasts about 1.07 ms here, so about 320 ms / 4 threads);
//! and checks that every task succeeded, that 1,200 attempts ran, and that (b)'s job counted
//! exactly 200 retries.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use jobpool::{JobHandle, Pool, Priority, Retry, TaskContext};
use jobpool_bench::cli::positive;
use jobpool_bench::summary::load_average;

// ---- W7 ----

/// Pool size for W7.
const W7_THREADS: usize = 2;
/// Length of every W7 task: a spin on the clock.
const SPIN: Duration = Duration::from_micros(15);
/// The bulk batch: jobs, tasks per job, cap.
const BULK_JOBS: usize = 16;
const BULK_TASKS: usize = 32_500;
const BULK_CAP: usize = 2;
/// The urgent jobs: jobs, tasks per job, cap.
const URGENT_JOBS: usize = 4;
const URGENT_TASKS: usize = 200;
const URGENT_CAP: usize = 2;
/// When the urgent jobs arrive, after the first bulk submission.
const ARRIVAL: Duration = Duration::from_millis(300);
/// How often the main thread samples `pool.waited(Priority::Normal)` while urgent jobs run.
const SAMPLE_EVERY: Duration = Duration::from_micros(250);
/// The last urgent job finishes within this times (urgent work / N), plus one bulk task.
const URGENT_TARGET_RATIO: f64 = 1.1;

/// Nanoseconds spun by the bulk tasks of the current W7 run.
static BULK_SPENT: AtomicU64 = AtomicU64::new(0);
/// Bulk tasks run in the current W7 run.
static BULK_RUN: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds spun by the urgent tasks of the current W7 run.
static URGENT_SPENT: AtomicU64 = AtomicU64::new(0);
/// Per urgent job, when its last task ended, in nanoseconds after its submission.
static URGENT_LAST_END: [AtomicU64; URGENT_JOBS] = [const { AtomicU64::new(0) }; URGENT_JOBS];

// ---- W8 ----

/// Pool size, cap and size of the W8 job.
const W8_THREADS: usize = 4;
const W8_CAP: usize = 4;
const W8_TASKS: usize = 1_000;
/// Length of one attempt of a W8 task: a sleep.
const NAP: Duration = Duration::from_millis(1);
/// Every `FLAKY_EVERY`th task (by index, from 0) fails on its first attempt.
const FLAKY_EVERY: usize = 5;
/// The wait before the second attempt.
const BACKOFF: Duration = Duration::from_millis(10);
/// Attempts per task, the first included.
const ATTEMPTS: u32 = 2;

/// Nanoseconds slept by every attempt of the current W8 run.
static W8_SPENT: AtomicU64 = AtomicU64::new(0);
/// Attempts run in the current W8 run.
static W8_ATTEMPTS: AtomicU64 = AtomicU64::new(0);

/// Spins on the clock until `d` has passed; returns how long it really took.
#[inline]
fn spin(d: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let spent = start.elapsed();
        if spent >= d {
            return spent;
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One W7 bulk task.
fn bulk_task() {
    BULK_SPENT.fetch_add(nanos(spin(SPIN)), Relaxed);
    BULK_RUN.fetch_add(1, Relaxed);
}

/// One task of urgent job `job`, submitted at `submitted`.
fn urgent_task(job: usize, submitted: Instant) {
    URGENT_SPENT.fetch_add(nanos(spin(SPIN)), Relaxed);
    URGENT_LAST_END[job].fetch_max(nanos(submitted.elapsed()), Relaxed);
}

/// How W7 submits its urgent jobs.
#[derive(Clone, Copy, PartialEq)]
enum Urgent {
    /// (a) `pool.submit(tasks, cap)`: `Priority::Normal`, like the bulk jobs.
    Plain,
    /// (b) `pool.job().cap(cap).priority(Priority::High).submit(tasks)`.
    High,
}

/// One W7 run as measured.
struct W7Run {
    /// From the first urgent submission to the last urgent `wait()` returning.
    last: Duration,
    /// Mean over the urgent jobs of their submission to their `wait()` returning.
    mean: Duration,
    /// From the first urgent submission to the end of the last urgent task (what `last` would
    /// be if the waiting threads woke at once).
    last_task_end: Duration,
    /// The longest an urgent job's waiting thread took to return from `wait()` after the
    /// job's last task ended: the operating system's wake-up delay, plus a lock or two.
    wake_gap: Duration,
    /// `URGENT_TARGET_RATIO x urgent work / N + one bulk task`, from measured lengths.
    target: Duration,
    /// First bulk submission to the last bulk `wait()` returning.
    makespan: Duration,
    /// All the work of the run (bulk and urgent, measured) / N.
    lower_bound: Duration,
    /// The mean bulk task.
    bulk_task: Duration,
    /// The longest `pool.waited(Priority::Normal)` seen while the urgent jobs ran, and how
    /// many samples were taken.
    longest_normal_wait: Option<Duration>,
    samples: usize,
    /// How late the urgent jobs were submitted against `ARRIVAL`.
    arrival_lateness: Duration,
    /// From the first urgent submission to the last (the main thread may lose its core in
    /// between).
    submit_spread: Duration,
}

impl W7Run {
    fn over_target(&self) -> f64 {
        self.last.as_secs_f64() / self.target.as_secs_f64()
    }

    fn over_bound(&self) -> f64 {
        self.makespan.as_secs_f64() / self.lower_bound.as_secs_f64()
    }
}

/// Submits urgent job `job` as `how` says.
fn submit_urgent(pool: &Pool, how: Urgent, job: usize, submitted: Instant) -> JobHandle<()> {
    let tasks = (0..URGENT_TASKS).map(move |_| move || urgent_task(job, submitted));
    match how {
        Urgent::Plain => pool.submit(tasks, URGENT_CAP),
        Urgent::High => pool
            .job()
            .cap(URGENT_CAP)
            .priority(Priority::High)
            .submit(tasks),
    }
}

/// Runs W7 once on `pool`, the urgent jobs submitted as `how` says.
fn w7_once(pool: &Pool, how: Urgent) -> W7Run {
    BULK_SPENT.store(0, Relaxed);
    BULK_RUN.store(0, Relaxed);
    URGENT_SPENT.store(0, Relaxed);
    for end in &URGENT_LAST_END {
        end.store(0, Relaxed);
    }
    let urgent_done = AtomicUsize::new(0);

    thread::scope(|s| {
        // One thread per urgent job, started before the batch, blocked in `wait` while the
        // job runs, so that each job's end is seen when it happens.
        let (senders, waiters): (Vec<_>, Vec<_>) = (0..URGENT_JOBS)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<(Instant, JobHandle<()>)>();
                let urgent_done = &urgent_done;
                let waiter = s.spawn(move || {
                    let (submitted, handle) = rx.recv().expect("the main thread submits");
                    let result = handle.wait();
                    let returned = Instant::now();
                    urgent_done.fetch_add(1, Relaxed);
                    assert!(result.is_ok(), "an urgent job failed: {:?}", result.err());
                    (submitted, returned)
                });
                (tx, waiter)
            })
            .unzip();

        let origin = Instant::now();
        let bulk: Vec<JobHandle<()>> = (0..BULK_JOBS)
            .map(|_| pool.submit((0..BULK_TASKS).map(|_| bulk_task), BULK_CAP))
            .collect();

        if let Some(wait) = (origin + ARRIVAL).checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let arrival = Instant::now();
        for (job, tx) in senders.into_iter().enumerate() {
            let submitted = Instant::now();
            let handle = submit_urgent(pool, how, job, submitted);
            tx.send((submitted, handle)).expect("the waiter is alive");
        }

        let mut longest_normal_wait: Option<Duration> = None;
        let mut samples = 0;
        while urgent_done.load(Relaxed) < URGENT_JOBS {
            if let Some(waited) = pool.waited(Priority::Normal) {
                longest_normal_wait = longest_normal_wait.max(Some(waited));
            }
            samples += 1;
            thread::sleep(SAMPLE_EVERY);
        }

        let ends: Vec<(Instant, Instant)> = waiters
            .into_iter()
            .map(|w| w.join().expect("a waiter thread panicked"))
            .collect();
        for handle in bulk {
            handle.wait().expect("a bulk job failed");
        }
        let makespan = origin.elapsed();

        let bulk_run = BULK_RUN.load(Relaxed);
        assert_eq!(bulk_run, (BULK_JOBS * BULK_TASKS) as u64, "bulk tasks lost");
        let bulk_spent = Duration::from_nanos(BULK_SPENT.load(Relaxed));
        let urgent_spent = Duration::from_nanos(URGENT_SPENT.load(Relaxed));
        let bulk_task = bulk_spent / bulk_run as u32;
        // When each urgent job's last task ended, and when its `wait()` returned.
        let task_ends: Vec<(Instant, Instant)> = ends
            .iter()
            .zip(&URGENT_LAST_END)
            .map(|(&(submitted, returned), end)| {
                (
                    submitted + Duration::from_nanos(end.load(Relaxed)),
                    returned,
                )
            })
            .collect();
        let last_task_end = task_ends
            .iter()
            .map(|&(ended, _)| ended - arrival)
            .max()
            .expect("urgent jobs");
        let wake_gap = task_ends
            .iter()
            .map(|&(ended, returned)| returned.saturating_duration_since(ended))
            .max()
            .expect("urgent jobs");
        W7Run {
            last: ends
                .iter()
                .map(|&(_, returned)| returned - arrival)
                .max()
                .expect("urgent jobs"),
            mean: ends
                .iter()
                .map(|&(submitted, returned)| returned - submitted)
                .sum::<Duration>()
                / URGENT_JOBS as u32,
            last_task_end,
            wake_gap,
            target: (urgent_spent / W7_THREADS as u32).mul_f64(URGENT_TARGET_RATIO) + bulk_task,
            makespan,
            lower_bound: (bulk_spent + urgent_spent) / W7_THREADS as u32,
            bulk_task,
            longest_normal_wait,
            samples,
            arrival_lateness: arrival - (origin + ARRIVAL),
            submit_spread: ends
                .iter()
                .map(|&(submitted, _)| submitted - arrival)
                .max()
                .expect("urgent jobs"),
        }
    })
}

// ---- W8 ----

/// Attempt `attempt` of W8 task `index`: a 1 ms sleep, then an error if the task is one of the
/// flaky ones and this is its first attempt.
fn attempt(index: usize, attempt: u32) -> Result<usize, &'static str> {
    let start = Instant::now();
    thread::sleep(NAP);
    W8_SPENT.fetch_add(nanos(start.elapsed()), Relaxed);
    W8_ATTEMPTS.fetch_add(1, Relaxed);
    if index % FLAKY_EVERY == 0 && attempt == 1 {
        Err("a flaky task's first attempt")
    } else {
        Ok(index)
    }
}

/// How W8 retries its failing tasks.
#[derive(Clone, Copy, PartialEq)]
enum Retries {
    /// (a) inside the task, sleeping out the backoff on the worker.
    InTask,
    /// (b) under a `Retry` policy, the backoff off the workers.
    Policy,
}

/// One W8 run as measured.
struct W8Run {
    makespan: Duration,
    /// The measured work (every attempt's sleep) / N.
    lower_bound: Duration,
    /// The mean length of one attempt.
    nap: Duration,
    attempts: u64,
    /// Every task returned its own index.
    all_succeeded: bool,
    /// `progress().retries` of (b)'s job.
    retries: Option<usize>,
}

impl W8Run {
    fn over_bound(&self) -> f64 {
        self.makespan.as_secs_f64() / self.lower_bound.as_secs_f64()
    }
}

/// Runs W8 once on `pool`, retrying as `how` says.
fn w8_once(pool: &Pool, how: Retries) -> W8Run {
    W8_SPENT.store(0, Relaxed);
    W8_ATTEMPTS.store(0, Relaxed);
    let start = Instant::now();
    let (results, retries) = match how {
        Retries::InTask => {
            let job = pool.submit(
                (0..W8_TASKS).map(|index| {
                    move || {
                        let mut n = 1;
                        loop {
                            match attempt(index, n) {
                                Err(_) if n < ATTEMPTS => {
                                    thread::sleep(BACKOFF);
                                    n += 1;
                                }
                                outcome => return outcome,
                            }
                        }
                    }
                }),
                W8_CAP,
            );
            let results = job
                .wait()
                .map(|r| r.into_iter().collect::<Result<Vec<_>, _>>());
            (results.ok().and_then(Result::ok), None)
        }
        Retries::Policy => {
            let policy = Retry::attempts(ATTEMPTS)
                .backoff(BACKOFF, 1.0, BACKOFF)
                .jitter(0.0);
            let job = pool.job().cap(W8_CAP).retry(policy).submit_fallible(
                (0..W8_TASKS).map(|_| |cx: &TaskContext| attempt(cx.index(), cx.attempt())),
            );
            job.wait_timeout(Duration::from_secs(600))
                .expect("W8 ends within 10 minutes");
            let retries = job.progress().retries;
            (job.wait().ok(), Some(retries))
        }
    };
    let makespan = start.elapsed();
    let attempts = W8_ATTEMPTS.load(Relaxed);
    let spent = Duration::from_nanos(W8_SPENT.load(Relaxed));
    W8Run {
        makespan,
        lower_bound: spent / W8_THREADS as u32,
        nap: spent / attempts.max(1) as u32,
        attempts,
        all_succeeded: results.is_some_and(|r| r.iter().copied().eq(0..W8_TASKS)),
        retries,
    }
}

// ---- reporting ----

/// The median of `values` (the lower middle one for an even count).
fn median<T: PartialOrd + Copy>(values: impl IntoIterator<Item = T>) -> T {
    let mut values: Vec<T> = values.into_iter().collect();
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    values[(values.len() - 1) / 2]
}

/// `median [min-max]` of `values`, each printed with `decimals` decimals.
fn spread(values: impl IntoIterator<Item = f64>, decimals: usize) -> String {
    let values: Vec<f64> = values.into_iter().collect();
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.d$} [{:.d$}-{:.d$}]",
        median(values.iter().copied()),
        min,
        max,
        d = decimals
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// The command line: `--rounds R`, `--only w7|w8`.
struct Args {
    rounds: usize,
    w7: bool,
    w8: bool,
}

fn args() -> Args {
    let mut parsed = Args {
        rounds: 3,
        w7: true,
        w8: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                parsed.rounds = positive(args.next(), "--rounds");
            }
            "--only" => match args.next().as_deref() {
                Some("w7") => parsed.w8 = false,
                Some("w8") => parsed.w7 = false,
                _ => panic!("--only takes w7 or w8"),
            },
            other => panic!("unknown argument {other:?}; try --rounds R, --only w7|w8"),
        }
    }
    parsed
}

fn w7(rounds: usize) {
    let urgent_work = SPIN * (URGENT_JOBS * URGENT_TASKS) as u32;
    let nominal_target = (urgent_work / W7_THREADS as u32).mul_f64(URGENT_TARGET_RATIO) + SPIN;
    println!(
        "== W7, urgent jobs: N = {W7_THREADS}; {BULK_JOBS} bulk jobs x {BULK_TASKS} x {} µs \
         spins, cap {BULK_CAP} ({:.1?} of work); {:?} in, {URGENT_JOBS} urgent jobs x \
         {URGENT_TASKS} x {} µs, cap {URGENT_CAP} ({:?} of work)",
        SPIN.as_micros(),
        SPIN * (BULK_JOBS * BULK_TASKS) as u32,
        ARRIVAL,
        SPIN.as_micros(),
        urgent_work,
    );
    println!(
        "  (a) every job Normal: pool.submit(tasks, {URGENT_CAP}); (b) urgent jobs \
         pool.job().cap({URGENT_CAP}).priority(Priority::High)"
    );
    println!(
        "  target: last urgent job done, from the first urgent submission, within \
         {URGENT_TARGET_RATIO} x urgent work / N + one bulk task, from the run's measured task \
         lengths (with exact {} µs tasks: {:.3} ms)",
        SPIN.as_micros(),
        ms(nominal_target)
    );
    println!(
        "  last = last urgent wait() returned; mean = mean of each urgent job's submission to \
         wait(); tasks = last urgent task ended; wake gap = longest from a job's last task to its \
         wait() returning; Normal waited = longest pool.waited(Normal) \
         sampled every ~{} µs while urgent jobs ran",
        SAMPLE_EVERY.as_micros()
    );

    let pool = Pool::new(W7_THREADS);
    let mut runs: Vec<(W7Run, W7Run)> = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let a = w7_once(&pool, Urgent::Plain);
        print_w7(round, "(a) Normal", &a);
        let b = w7_once(&pool, Urgent::High);
        print_w7(round, "(b) High  ", &b);
        runs.push((a, b));
    }

    println!("  medians over {rounds} round(s) [min-max]:");
    for (name, pick) in [
        (
            "(a) Normal",
            (|r: &(W7Run, W7Run)| &r.0) as fn(&(W7Run, W7Run)) -> &W7Run,
        ),
        ("(b) High  ", |r: &(W7Run, W7Run)| &r.1),
    ] {
        let of = |f: fn(&W7Run) -> f64, decimals| spread(runs.iter().map(|r| f(pick(r))), decimals);
        let waits: Vec<f64> = runs
            .iter()
            .filter_map(|r| pick(r).longest_normal_wait.map(ms))
            .collect();
        println!(
            "  {name}: urgent last {} ms, mean {} ms, target {} ms, last/target {}; tasks {} ms, \
             tasks/target {}; wake gap {} ms; bulk makespan {} ms, /LB {}; Normal waited at most {}",
            of(|r| ms(r.last), 3),
            of(|r| ms(r.mean), 3),
            of(|r| ms(r.target), 3),
            of(W7Run::over_target, 3),
            of(|r| ms(r.last_task_end), 3),
            of(|r| r.last_task_end.as_secs_f64() / r.target.as_secs_f64(), 3),
            of(|r| ms(r.wake_gap), 3),
            of(|r| ms(r.makespan), 1),
            of(W7Run::over_bound, 4),
            if waits.is_empty() {
                "(never waiting when sampled)".to_owned()
            } else {
                format!("{} ms", spread(waits, 3))
            },
        );
    }
    let ratio = median(runs.iter().map(|(_, b)| b.over_target()));
    println!(
        "  target, (b) last urgent job / target {ratio:.3} <= 1.00: {}  (per round: {})",
        verdict(ratio <= 1.0),
        spread(runs.iter().map(|(_, b)| b.over_target()), 3)
    );
    let tasks = median(
        runs.iter()
            .map(|(_, b)| b.last_task_end.as_secs_f64() / b.target.as_secs_f64()),
    );
    println!(
        "  (informational) the same, to the last urgent task's end instead of wait() returning \
         {tasks:.3} <= 1.00: {}",
        verdict(tasks <= 1.0)
    );
    println!(
        "  (b)/(a), paired per round: urgent last {}, bulk makespan {}",
        spread(
            runs.iter()
                .map(|(a, b)| b.last.as_secs_f64() / a.last.as_secs_f64()),
            3
        ),
        spread(
            runs.iter()
                .map(|(a, b)| b.makespan.as_secs_f64() / a.makespan.as_secs_f64()),
            4
        ),
    );
}

fn print_w7(round: usize, name: &str, r: &W7Run) {
    println!(
        "  round {round} {name}: urgent last {:.3} ms (tasks {:.3}, wake gap {:.3}), mean {:.3} \
         ms, target {:.3} ms: {}; bulk makespan {:.1} ms, LB {:.1} ms, /LB {:.4}; bulk task {:.2} µs; \
         Normal waited at most {} ({} samples); urgent submitted {:.3} ms late, over {:.3} ms",
        ms(r.last),
        ms(r.last_task_end),
        ms(r.wake_gap),
        ms(r.mean),
        ms(r.target),
        verdict(r.last <= r.target),
        ms(r.makespan),
        ms(r.lower_bound),
        r.over_bound(),
        us(r.bulk_task),
        r.longest_normal_wait
            .map_or_else(|| "-".to_owned(), |w| format!("{:.3} ms", ms(w))),
        r.samples,
        ms(r.arrival_lateness),
        ms(r.submit_spread),
    );
}

fn w8(rounds: usize) {
    let flaky = W8_TASKS.div_ceil(FLAKY_EVERY);
    println!(
        "== W8, retries: N = {W8_THREADS}; {W8_TASKS} tasks x {:?} sleep, cap {W8_CAP}; every \
         {FLAKY_EVERY}th ({flaky}) fails its first attempt, retried once after {:?}",
        NAP, BACKOFF
    );
    println!(
        "  (a) retry inside the task (the backoff slept on the worker); (b) \
         .retry(Retry::attempts({ATTEMPTS}).backoff({BACKOFF:?}, 1.0, {BACKOFF:?}).jitter(0.0))\
         .submit_fallible(..)"
    );
    println!(
        "  LB = measured work / N, work = every attempt's sleep ({} attempts; with exact 1 ms \
         sleeps {:?} / {W8_THREADS} = {:?})",
        W8_TASKS + flaky,
        NAP * (W8_TASKS + flaky) as u32,
        NAP * (W8_TASKS + flaky) as u32 / W8_THREADS as u32
    );

    let pool = Pool::new(W8_THREADS);
    let mut runs: Vec<(W8Run, W8Run)> = Vec::with_capacity(rounds);
    let mut all_checks = true;
    for round in 1..=rounds {
        let a = w8_once(&pool, Retries::InTask);
        all_checks &= print_w8(round, "(a) in the task", &a, flaky);
        let b = w8_once(&pool, Retries::Policy);
        all_checks &= print_w8(round, "(b) Retry      ", &b, flaky);
        runs.push((a, b));
    }

    println!("  medians over {rounds} round(s) [min-max]:");
    for (name, pick) in [
        (
            "(a) in the task",
            (|r: &(W8Run, W8Run)| &r.0) as fn(&(W8Run, W8Run)) -> &W8Run,
        ),
        ("(b) Retry      ", |r: &(W8Run, W8Run)| &r.1),
    ] {
        println!(
            "  {name}: makespan {} ms, LB {} ms, makespan/LB {}; one attempt {} ms",
            spread(runs.iter().map(|r| ms(pick(r).makespan)), 1),
            spread(runs.iter().map(|r| ms(pick(r).lower_bound)), 1),
            spread(runs.iter().map(|r| pick(r).over_bound()), 3),
            spread(runs.iter().map(|r| ms(pick(r).nap)), 3),
        );
    }
    println!(
        "  (b)/(a) makespan, paired per round: {}",
        spread(
            runs.iter()
                .map(|(a, b)| b.makespan.as_secs_f64() / a.makespan.as_secs_f64()),
            3
        )
    );
    println!(
        "  checks (every task succeeded, {} attempts, (b) counted {flaky} retries) in every \
         run: {}",
        W8_TASKS + flaky,
        if all_checks { "ok" } else { "FAILED" }
    );
}

/// Prints one W8 run; returns whether its checks passed.
fn print_w8(round: usize, name: &str, r: &W8Run, flaky: usize) -> bool {
    let attempts_ok = r.attempts == (W8_TASKS + flaky) as u64;
    let retries_ok = !matches!(r.retries, Some(n) if n != flaky);
    println!(
        "  round {round} {name}: makespan {:.1} ms, LB {:.1} ms, makespan/LB {:.3}; one attempt \
         {:.3} ms; every task succeeded: {}; attempts {}{}",
        ms(r.makespan),
        ms(r.lower_bound),
        r.over_bound(),
        ms(r.nap),
        if r.all_succeeded { "yes" } else { "NO" },
        r.attempts,
        r.retries
            .map_or_else(String::new, |n| format!("; progress().retries {n}")),
    );
    r.all_succeeded && attempts_ok && retries_ok
}

fn main() {
    let args = args();
    println!(
        "job_control (W7, W8): {} round(s), {} cores, load average {}",
        args.rounds,
        num_cpus::get(),
        load_average()
    );
    let started = Instant::now();
    if args.w7 {
        w7(args.rounds);
    }
    if args.w8 {
        w8(args.rounds);
    }
    println!(
        "whole run {:.1?}; load average now {}",
        started.elapsed(),
        load_average()
    );
}
