//! Property tests of job control over random jobs whose tasks fail at random: every task runs
//! until it succeeds, fails permanently or uses up its attempts, never more; no job's cap and no
//! shared limiter's cap is ever exceeded, retries included; a shared rate never lets more starts
//! through in any window than its burst plus the window's worth of the rate; and every task's
//! outcome is reported exactly once, consistent with what the task itself counted.

mod pool_common;

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobpool::{GaveUp, JobHandle, Limiter, Pool, Rate, Retry, TaskContext, TaskError};
use pool_common::Meter;
use proptest::prelude::*;

/// The error a task returns: `Transient` is retried, `Permanent` is not (the policy's
/// `retry_if` excludes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Transient,
    Permanent,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} fault")
    }
}

impl std::error::Error for Fault {}

/// What one task does: its first `fails` attempts return `Fault::Transient`; the next one
/// returns `Fault::Permanent` if `then_permanent`, or else its value. Each attempt yields the
/// thread `yields` times, so that tasks overlap.
#[derive(Debug, Clone, Copy)]
struct Plan {
    fails: u32,
    then_permanent: bool,
    yields: usize,
}

/// How a task must end, under a policy of `attempts` attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    /// Returned its value on attempt `n`.
    Ok(u32),
    /// Failed for good after `n` attempts, for this reason.
    Failed(u32, GaveUp),
}

impl Plan {
    fn expected(&self, attempts: u32) -> Expected {
        if self.fails >= attempts {
            Expected::Failed(attempts, GaveUp::AttemptsUsedUp)
        } else if self.then_permanent {
            Expected::Failed(self.fails + 1, GaveUp::Permanent)
        } else {
            Expected::Ok(self.fails + 1)
        }
    }

    /// How many times the task must run under a policy of `attempts` attempts.
    fn runs(&self, attempts: u32) -> u32 {
        match self.expected(attempts) {
            Expected::Ok(n) | Expected::Failed(n, _) => n,
        }
    }
}

/// A retry policy with tiny backoffs, so that many cases fit in a few seconds.
#[derive(Debug, Clone)]
struct Policy {
    attempts: u32,
    initial: Duration,
    factor: f64,
    max: Duration,
    jitter: f64,
}

impl Policy {
    fn retry(&self) -> Retry {
        Retry::attempts(self.attempts)
            .backoff(self.initial, self.factor, self.max)
            .jitter(self.jitter)
            .retry_if(|e| e.downcast_ref::<Fault>() != Some(&Fault::Permanent))
    }
}

#[derive(Debug, Clone)]
struct JobSpec {
    cap: usize,
    /// Which of the case's shared limiters the job is under, if any (an index, taken modulo
    /// the number of limiters).
    limiter: Option<usize>,
    policy: Policy,
    tasks: Vec<Plan>,
}

fn plan(max_fails: u32) -> impl Strategy<Value = Plan> {
    (0..=max_fails, prop::bool::weighted(0.2), 0..=3usize).prop_map(
        |(fails, then_permanent, yields)| Plan {
            fails,
            then_permanent,
            yields,
        },
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    (1..=4u32, 0..=2000u64, 1.0..=2.0f64, 0..=2u64, 0.0..=1.0f64).prop_map(
        |(attempts, initial_us, factor, max_ms, jitter)| Policy {
            attempts,
            initial: Duration::from_micros(initial_us),
            factor,
            max: Duration::from_millis(max_ms),
            jitter,
        },
    )
}

fn job_spec(max_tasks: usize, max_fails: u32) -> impl Strategy<Value = JobSpec> {
    (
        1..=3usize,
        prop::option::of(0..4usize),
        policy(),
        prop::collection::vec(plan(max_fails), 0..=max_tasks),
    )
        .prop_map(|(cap, limiter, policy, tasks)| JobSpec {
            cap,
            limiter,
            policy,
            tasks,
        })
}

/// What the tasks of one job measured.
struct Probes {
    /// Tasks of this job inside their body at once.
    job: Arc<Meter>,
    /// Attempts per task, counted by the task itself.
    attempts: Arc<Vec<AtomicU32>>,
    /// Attempts whose `TaskContext::attempt()` differed from the task's own count, or whose
    /// `index()` was not the task's.
    context_mismatches: Arc<AtomicUsize>,
}

/// One shared limiter of a case, with what its jobs' tasks measured under it.
struct Shared {
    limiter: Limiter,
    cap: Option<usize>,
    /// Tasks of all its jobs inside their body at once.
    meter: Arc<Meter>,
}

/// Submits `spec` to `pool`, under `shared` if given; every attempt's start instant is pushed
/// to `starts`.
fn submit(
    pool: &Pool,
    spec: &JobSpec,
    shared: Option<&Shared>,
    starts: &Arc<Mutex<Vec<Instant>>>,
) -> (JobHandle<(usize, u32)>, Probes) {
    let probes = Probes {
        job: Meter::new(),
        attempts: Arc::new(spec.tasks.iter().map(|_| AtomicU32::new(0)).collect()),
        context_mismatches: Arc::new(AtomicUsize::new(0)),
    };
    let mut builder = pool.job().cap(spec.cap);
    if let Some(shared) = shared {
        builder = builder.limit(&shared.limiter);
    }
    let tasks = spec.tasks.iter().copied().enumerate().map(|(i, plan)| {
        let job_meter = probes.job.clone();
        let shared_meter = shared.map(|s| s.meter.clone());
        let attempts = probes.attempts.clone();
        let mismatches = probes.context_mismatches.clone();
        let starts = starts.clone();
        move |cx: &TaskContext| -> Result<(usize, u32), Fault> {
            // Read first, as close to the limiter's grant as a task can be.
            let started = Instant::now();
            let _in_job = job_meter.enter();
            let _in_shared = shared_meter.as_deref().map(Meter::enter);
            let n = attempts[i].fetch_add(1, SeqCst) + 1;
            if cx.attempt() != n || cx.index() != i {
                mismatches.fetch_add(1, SeqCst);
            }
            starts.lock().unwrap().push(started);
            for _ in 0..plan.yields {
                std::thread::yield_now();
            }
            if n <= plan.fails {
                Err(Fault::Transient)
            } else if plan.then_permanent {
                Err(Fault::Permanent)
            } else {
                Ok((i, n))
            }
        }
    });
    let job = builder.retry(spec.policy.retry()).submit_fallible(tasks);
    (job, probes)
}

/// Waits for `job` and checks that each task's outcome is reported once, as its plan says, and
/// that the task ran exactly as many times as the outcome reports.
fn check_outcomes(
    spec: &JobSpec,
    job: JobHandle<(usize, u32)>,
    probes: &Probes,
) -> Result<(), TestCaseError> {
    let n = spec.tasks.len();
    let attempts = spec.policy.attempts;
    let expected: Vec<Expected> = spec.tasks.iter().map(|p| p.expected(attempts)).collect();
    let results: Vec<Result<(usize, u32), TaskError>> = match job.wait() {
        Ok(values) => values.into_iter().map(Ok).collect(),
        Err(err) => {
            prop_assert_eq!(err.tasks(), n);
            prop_assert!(!err.was_cancelled() && !err.deadline_passed());
            prop_assert_eq!(err.panics().count(), 0);
            // The failures list names each failed task once, in order, as its plan says.
            let failures: Vec<(usize, Expected)> = err
                .failures()
                .map(|(i, f)| (i, Expected::Failed(f.attempts(), f.gave_up())))
                .collect();
            let designed: Vec<(usize, Expected)> = expected
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, e)| matches!(e, Expected::Failed(..)))
                .collect();
            prop_assert_eq!(failures, designed);
            err.into_results()
        }
    };
    prop_assert_eq!(results.len(), n, "one outcome per task");
    let ran: Vec<u32> = probes.attempts.iter().map(|a| a.load(SeqCst)).collect();
    let runs: Vec<u32> = spec.tasks.iter().map(|p| p.runs(attempts)).collect();
    prop_assert_eq!(
        &ran,
        &runs,
        "attempts counted by the tasks (policy {:?})",
        spec.policy
    );
    for (i, result) in results.iter().enumerate() {
        match (result, expected[i]) {
            (Ok(value), Expected::Ok(attempt)) => prop_assert_eq!(*value, (i, attempt)),
            (Err(TaskError::Failed(failure)), Expected::Failed(attempts, why)) => {
                prop_assert_eq!((failure.attempts(), failure.gave_up()), (attempts, why));
                let fault = if why == GaveUp::Permanent {
                    Fault::Permanent
                } else {
                    Fault::Transient
                };
                prop_assert_eq!(failure.downcast_ref::<Fault>(), Some(&fault));
            }
            (result, expected) => {
                prop_assert!(false, "task {}: {:?}, expected {:?}", i, result, expected)
            }
        }
    }
    prop_assert_eq!(probes.context_mismatches.load(SeqCst), 0);
    Ok(())
}

/// Runs `specs` on a pool of `threads` threads, jobs with a limiter index sharing
/// `shared[index % shared.len()]`; checks outcomes and every cap. Returns every attempt's start.
fn run(
    threads: usize,
    specs: &[JobSpec],
    shared: &[Shared],
) -> Result<Vec<Instant>, TestCaseError> {
    let pool = Pool::new(threads);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let jobs: Vec<_> = specs
        .iter()
        .map(|spec| {
            let under = match spec.limiter {
                Some(k) if !shared.is_empty() => Some(&shared[k % shared.len()]),
                _ => None,
            };
            submit(&pool, spec, under, &starts)
        })
        .collect();
    for (spec, (job, probes)) in specs.iter().zip(jobs) {
        let peak_tokens = job.progress().peak_running;
        check_outcomes(spec, job, &probes)?;
        prop_assert!(
            peak_tokens <= spec.cap,
            "tokens {} > cap {}",
            peak_tokens,
            spec.cap
        );
        let peak = probes.job.peak();
        prop_assert!(peak <= spec.cap, "{} ran at once, cap {}", peak, spec.cap);
        prop_assert!(
            peak <= threads,
            "{} ran at once on {} threads",
            peak,
            threads
        );
    }
    for (k, s) in shared.iter().enumerate() {
        if let Some(cap) = s.cap {
            let (peak, counted) = (s.meter.peak(), s.limiter.peak_running());
            prop_assert!(
                peak <= cap,
                "limiter {}: {} ran at once, cap {}",
                k,
                peak,
                cap
            );
            prop_assert!(
                counted <= cap,
                "limiter {}: peak_running {} > {}",
                k,
                counted,
                cap
            );
        }
    }
    pool.shutdown();
    let starts = std::mem::take(&mut *starts.lock().unwrap());
    Ok(starts)
}

fn shared(cap: Option<usize>, rate: Option<Rate>) -> Shared {
    let mut limiter = Limiter::new();
    if let Some(cap) = cap {
        limiter = limiter.with_cap(cap);
    }
    if let Some(rate) = rate {
        limiter = limiter.with_rate(rate);
    }
    Shared {
        limiter,
        cap,
        meter: Meter::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Property 1: each task runs until it succeeds, fails permanently or uses up its
    /// attempts, and exactly that many times; its outcome says so. No limiters, no budget.
    #[test]
    fn every_task_runs_until_it_succeeds_or_gives_up(
        threads in 1..=4usize,
        specs in prop::collection::vec(job_spec(12, 3), 1..=3),
    ) {
        let specs: Vec<JobSpec> =
            specs.into_iter().map(|s| JobSpec { limiter: None, ..s }).collect();
        run(threads, &specs, &[])?;
    }

    /// Property 2: several jobs, some sharing capped limiters, with tasks that fail and are
    /// retried: no job runs more than its cap, no limiter more than its cap, at any moment.
    #[test]
    fn no_cap_is_exceeded_across_retries(
        threads in 1..=4usize,
        limiter_caps in prop::collection::vec(1..=3usize, 1..=2),
        specs in prop::collection::vec(job_spec(10, 3), 1..=4),
    ) {
        let limiters: Vec<Shared> =
            limiter_caps.iter().map(|&cap| shared(Some(cap), None)).collect();
        run(threads, &specs, &limiters)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Property 3: jobs sharing a limiter with a rate (and maybe a cap): in every window of a
    /// few intervals, the attempts started (retries included) are at most the burst plus the
    /// window's worth of the rate, plus one.
    #[test]
    fn starts_never_exceed_the_rate_plus_the_burst(
        threads in 1..=4usize,
        per_second in 200..=2000u32,
        burst in 1..=3u32,
        cap in prop::option::of(1..=3usize),
        specs in prop::collection::vec(job_spec(8, 2), 1..=3),
    ) {
        let rate = Rate::per_second(per_second).burst(burst);
        let limiter = shared(cap, Some(rate));
        let specs: Vec<JobSpec> =
            specs.into_iter().map(|s| JobSpec { limiter: Some(0), ..s }).collect();
        let mut starts = run(threads, &specs, std::slice::from_ref(&limiter))?;
        prop_assert_eq!(limiter.limiter.starts(), starts.len() as u64);
        starts.sort();
        let interval = rate.interval();
        // GCRA lets at most `burst + w / interval` starts through in any window of length `w`
        // (`src/limit/gcra.rs`), counted at the instants the limiter granted them. Here each start
        // is the task's own clock reading, taken a moment after its grant (the worker claims the
        // task and calls it, and may be preempted in between), so a start granted just before a
        // window can be seen inside it, next to starts granted on time: the `+ 1` allows for that
        // delay. Runs do see `burst + k` starts in one window, so the check sits one start above
        // what the limiter really lets through, not far above it.
        for (i, &from) in starts.iter().enumerate() {
            for k in [1u32, 2, 3, 5, 10] {
                let window = interval * k;
                let seen = starts[i..].iter().take_while(|&&t| t < from + window).count();
                let allowed = (burst + k + 1) as usize;
                prop_assert!(
                    seen <= allowed,
                    "{} starts in {:?} ({} intervals of {:?}, burst {}) from start {} of {}",
                    seen, window, k, interval, burst, i, starts.len()
                );
            }
        }
    }
}
