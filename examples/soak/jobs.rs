//! Jobs: submitting one as planned, what its tasks do, and taking its outcome (waits, polls,
//! completions, callbacks) while steering its cap.

use std::hint;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use jobpool::{Canceller, JobBuilder, JobHandle, Pool, RetryState, SubmitError, TaskContext};

use crate::graph::run_graph;
use crate::ledger::{AliveToken, JobLedger, Seen, TaskProbe, Yield};
use crate::monitor::{fail, on_worker, PanicsOnDrop, ON_PURPOSE};
use crate::plan::{follow_up_plan, Act, CallbackEnd, Consume, Control, JobPlan, TaskPlan};
use crate::round::RoundState;

/// What a task needs to submit work of its own.
#[derive(Clone)]
pub(crate) struct Env {
    pub(crate) pool: Pool,
    pub(crate) round: Arc<RoundState>,
}

/// A submitted job, with what its tasks record.
pub(crate) struct Submitted {
    pub(crate) handle: JobHandle<Yield>,
    pub(crate) ledger: Arc<JobLedger>,
    limits: Vec<usize>,
    consume: Consume,
}

impl Submitted {
    /// Sets each planned cap in turn, from this thread.
    fn steer_all(&self) {
        for &limit in &self.limits {
            self.ledger.set_cap(&self.handle, limit);
        }
    }
}

type Task = Box<dyn FnOnce() -> Yield + Send>;
type FallibleTask = Box<dyn FnMut(&TaskContext<'_>) -> Result<Yield, String> + Send>;

/// Drops tasks the pool handed back; a task dropped unrun may panic on purpose.
fn drop_refused<F>(refused: SubmitError<F>) {
    for task in refused.into_tasks() {
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(task)));
    }
}

/// Submits the job's tasks as its plan says: plain tasks with `Pool::try_submit` or through
/// `Pool::job` with options, or fallible ones through `Pool::job`. Returns the kind of error
/// if the pool refused them (the tasks are dropped).
fn submit_tasks(
    env: &Env,
    ledger: &Arc<JobLedger>,
    plan: TaskPlans,
    cap: usize,
    control: Option<Control>,
) -> Result<JobHandle<Yield>, String> {
    let Some(control) = control else {
        let TaskPlans::Plain(tasks) = plan else {
            unreachable!("fallible tasks come with job control")
        };
        return env.pool.try_submit(tasks, cap).map_err(|refused| {
            let why = refused.to_string();
            drop_refused(refused);
            why
        });
    };
    let mut builder = env.pool.job().cap(cap).priority(control.priority);
    if let Some(limiter) = control.limiter {
        builder = builder.limit(&env.round.limiters[limiter].limiter);
    }
    builder = builder.fail_fast(control.fail_fast);
    if let Some(timeout) = control.timeout {
        // The pool's deadline is at or after the ledger's: the ledger's is read first.
        let _ = ledger.deadline.set(Instant::now() + timeout);
        builder = builder.timeout(timeout);
    }
    let submitted = match plan {
        TaskPlans::Plain(tasks) => builder.try_submit(tasks).map_err(|refused| {
            let why = refused.to_string();
            drop_refused(refused);
            why
        }),
        TaskPlans::Fallible(tasks) => match control.retry {
            Some(retry) => submit_fallible(builder.retry(retry.policy()), tasks),
            None => submit_fallible(builder, tasks),
        },
    };
    submitted
}

fn submit_fallible<R: RetryState>(
    builder: JobBuilder<'_, R>,
    tasks: Vec<FallibleTask>,
) -> Result<JobHandle<Yield>, String> {
    builder.try_submit_fallible(tasks).map_err(|refused| {
        let why = refused.to_string();
        drop_refused(refused);
        why
    })
}

enum TaskPlans {
    Plain(Vec<Task>),
    Fallible(Vec<FallibleTask>),
}

/// Submits a job as planned. Returns `None` if the pool refused it, which it may only do to a
/// thread other than its workers, once it is shutting down.
pub(crate) fn submit(
    env: &Env,
    plan: JobPlan,
    origin: &str,
    victim: Option<&Canceller>,
) -> Option<Submitted> {
    let ledger = env.round.open_ledger(origin, &plan);
    let fallible = plan.fallible();
    let JobPlan {
        cap,
        tasks,
        limits,
        consume,
        control,
    } = plan;
    let tasks = tasks.into_iter().enumerate();
    let tasks = if fallible {
        TaskPlans::Fallible(
            tasks
                .map(|(index, task)| make_fallible_task(&ledger, index, task, env, victim))
                .collect(),
        )
    } else {
        TaskPlans::Plain(
            tasks
                .map(|(index, task)| make_task(&ledger, index, task, env, victim))
                .collect(),
        )
    };
    match submit_tasks(env, &ledger, tasks, cap, control) {
        Ok(handle) => {
            if env.round.shut_down.load(SeqCst) && !on_worker() {
                fail(format_args!(
                    "{}: accepted after shutdown returned",
                    ledger.label
                ));
            }
            let _ = ledger.job_id.set(handle.id());
            ledger.accepted.store(true, SeqCst);
            Some(Submitted {
                handle,
                ledger,
                limits,
                consume,
            })
        }
        Err(refused) => {
            if on_worker() || !env.round.shutting_down.load(SeqCst) {
                let whose = if on_worker() {
                    "a worker"
                } else {
                    "the test thread"
                };
                fail(format_args!(
                    "{}: refused from {whose}: {refused}",
                    ledger.label
                ));
            }
            None
        }
    }
}

/// Task `index` of a job: a probe around what the task does, holding the pool only if it
/// submits work of its own.
fn make_task(
    ledger: &Arc<JobLedger>,
    index: usize,
    plan: TaskPlan,
    env: &Env,
    victim: Option<&Canceller>,
) -> Task {
    let probe = TaskProbe::new(ledger, index, plan.panics_if_dropped_unrun);
    // Only the tasks that submit work hold a pool handle, so that dropping the test thread's
    // handle often shuts the pool down at once.
    let env = matches!(plan.act, Act::Nest(_) | Act::RunGraph(_)).then(|| env.clone());
    let victim = victim
        .filter(|_| matches!(plan.act, Act::CancelVictim))
        .cloned();
    let act = plan.act;
    Box::new(move || probe.run(|ledger, index| perform(act, env, victim, ledger, index)))
}

/// Fallible task `index` of a job: on its first attempt it does what its plan says, and each
/// attempt ends as planned (a value, an error, a panic).
fn make_fallible_task(
    ledger: &Arc<JobLedger>,
    index: usize,
    plan: TaskPlan,
    env: &Env,
    victim: Option<&Canceller>,
) -> FallibleTask {
    let mut probe = TaskProbe::new(ledger, index, plan.panics_if_dropped_unrun);
    let env = matches!(plan.act, Act::Nest(_) | Act::RunGraph(_)).then(|| env.clone());
    let victim = victim
        .filter(|_| matches!(plan.act, Act::CancelVictim))
        .cloned();
    let mut first = Some((plan.act, env, victim));
    Box::new(move |cx: &TaskContext<'_>| {
        probe.attempt(cx, |ledger, index| {
            if let Some((act, env, victim)) = first.take() {
                perform(act, env, victim, ledger, index);
            }
        })
    })
}

/// What a task does.
fn perform(
    act: Act,
    env: Option<Env>,
    victim: Option<Canceller>,
    ledger: &JobLedger,
    index: usize,
) {
    match act {
        Act::Return => {}
        Act::Spin(length) => spin(length),
        Act::Sleep(length) => thread::sleep(length),
        Act::Panic => panic!("{}", ledger.panic_message(index)),
        Act::PanicWithPanickyPayload => panic::panic_any(PanicsOnDrop),
        Act::Nest(plan) => {
            let env = env.expect("a nesting task holds the pool");
            let origin = format!("sub-job of task {index} of job {}", ledger.id);
            if let Some(job) = submit(&env, *plan, &origin, None).and_then(|j| hand_off(j, &env)) {
                finish(job, &env.round);
            }
        }
        Act::RunGraph(plan) => {
            let env = env.expect("a graph task holds the pool");
            let origin = format!("from task {index} of job {}", ledger.id);
            run_graph(&env, *plan, &origin);
        }
        Act::CancelVictim => {
            if let Some(victim) = victim {
                victim.cancel();
            }
        }
    }
}

/// Consumes a job whose outcome is taken without waiting (a callback, or nothing); returns the
/// others, to [`finish`] now or later.
pub(crate) fn hand_off(job: Submitted, env: &Env) -> Option<Submitted> {
    match job.consume {
        Consume::OnFinish(end) => {
            job.steer_all();
            register_callback(job.handle, job.ledger, end, env);
            None
        }
        Consume::Detach => {
            job.steer_all();
            None
        }
        _ => Some(job),
    }
}

/// Takes the job's outcome in an `on_finish` callback, which checks it, then ends as planned.
fn register_callback(
    handle: JobHandle<Yield>,
    ledger: Arc<JobLedger>,
    end: CallbackEnd,
    env: &Env,
) {
    let round = env.round.clone();
    round.callbacks_registered.fetch_add(1, SeqCst);
    // The callback counts as alive until it has run (and submitted its follow-up).
    let alive = AliveToken::new(&round.alive);
    let env = matches!(end, CallbackEnd::FollowUp).then(|| env.clone());
    handle.on_finish(move |results| {
        let _alive = alive;
        round.callbacks_called.fetch_add(1, SeqCst);
        ledger.check_results(results, &round);
        match end {
            CallbackEnd::Return => {}
            CallbackEnd::FollowUp => {
                let env = env.expect("a follow-up callback holds the pool");
                let origin = format!("follow-up of job {}", ledger.id);
                if let Some(job) = submit(&env, follow_up_plan(), &origin, None) {
                    let _ = hand_off(job, &env);
                }
            }
            CallbackEnd::Panic => {
                panic!("{ON_PURPOSE}: the on_finish callback of job {}", ledger.id)
            }
            CallbackEnd::PanicWithPanickyPayload => panic::panic_any(PanicsOnDrop),
        }
    });
}

/// A thread is taking a job's outcome, until dropped.
pub(crate) struct Waiting(Arc<JobLedger>);

impl Waiting {
    pub(crate) fn new(ledger: &Arc<JobLedger>) -> Waiting {
        ledger.waiting.fetch_add(1, SeqCst);
        Waiting(ledger.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, SeqCst);
    }
}

/// Takes a job's outcome as planned (`wait`, polls, completions), steering its cap meanwhile,
/// and checks it.
pub(crate) fn finish(job: Submitted, round: &RoundState) {
    let Submitted {
        handle,
        ledger,
        limits,
        consume,
    } = job;
    let _waiting = Waiting::new(&ledger);
    let steps = limits.len();
    let mut limits = limits.into_iter();
    let mut steer = |handle: &JobHandle<Yield>| {
        if let Some(limit) = limits.next() {
            ledger.set_cap(handle, limit);
        }
    };
    match consume {
        Consume::Wait | Consume::OnFinish(_) | Consume::Detach => {
            for _ in 0..steps {
                steer(&handle);
            }
            ledger.check_results(handle.wait(), round);
        }
        Consume::PollWaitTimeout(timeout) => {
            while handle.wait_timeout(timeout).is_err() {
                steer(&handle);
                thread::yield_now();
            }
            ledger.check_results(handle.wait(), round);
        }
        Consume::Completions => {
            let mut seen = Seen::new(&ledger);
            let mut results = handle.completions();
            steer(results.handle());
            while let Some((index, outcome)) = results.next() {
                steer(results.handle());
                seen.record(index, &outcome, round);
            }
            seen.check_complete();
        }
        Consume::PollNextTimeout(timeout) => {
            let mut seen = Seen::new(&ledger);
            let mut results = handle.completions();
            loop {
                match results.next_timeout(timeout) {
                    Ok(Some((index, outcome))) => seen.record(index, &outcome, round),
                    Ok(None) => break,
                    Err(_timed_out) => {
                        steer(results.handle());
                        thread::yield_now();
                    }
                }
            }
            seen.check_complete();
        }
        Consume::SomeCompletions(wanted) => {
            let mut seen = Seen::new(&ledger);
            let mut results = handle.completions();
            steer(results.handle());
            for (index, outcome) in results.by_ref().take(wanted) {
                seen.record(index, &outcome, round);
            }
            // The rest of the results are dropped unread with `results`.
        }
        Consume::CancelThenWait => {
            steer(&handle);
            ledger.cancel_requested.store(true, SeqCst);
            handle.cancel();
            ledger.check_results(handle.wait(), round);
        }
    }
}

/// Busy for `length`, without sleeping.
pub(crate) fn spin(length: Duration) {
    let start = Instant::now();
    while start.elapsed() < length {
        hint::spin_loop();
    }
}
