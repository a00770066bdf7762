//! Plans: what a job, a task, a graph will do, all drawn from the round's generator before
//! anything is submitted, so that a replay of the round runs the same plan.

use std::time::Duration;

use jobpool::{FailureMode, Priority, Rate, Retry};

use crate::rng::Rng;

/// How deep jobs nest: a task's sub-job's task's sub-job, and so on.
const MAX_DEPTH: usize = 3;

/// What one task does when it runs.
pub(crate) enum Act {
    /// Returns at once (most tasks).
    Return,
    /// Busy for a while: a few µs, rarely 1 ms.
    Spin(Duration),
    /// Asleep for up to 1 ms, as a task waiting on I/O would be.
    Sleep(Duration),
    /// Panics with a message.
    Panic,
    /// Panics with a `PanicsOnDrop` payload.
    PanicWithPanickyPayload,
    /// Submits a sub-job to its own pool and consumes it as planned.
    Nest(Box<JobPlan>),
    /// Runs a small graph on its own pool.
    RunGraph(Box<GraphPlan>),
    /// Cancels the job its own job was given as a victim.
    CancelVictim,
}

impl Act {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Act::Return => "returns",
            Act::Spin(_) => "spins",
            Act::Sleep(_) => "sleeps",
            Act::Panic | Act::PanicWithPanickyPayload => "panics",
            Act::Nest(_) => "nests a sub-job",
            Act::RunGraph(_) => "runs a graph",
            Act::CancelVictim => "cancels another job",
        }
    }
}

pub(crate) struct TaskPlan {
    /// What the task does (a fallible task: on its first attempt, and never a panic: its
    /// attempts say how each ends).
    pub(crate) act: Act,
    /// The task owns a value that panics when dropped, unless the task ran.
    pub(crate) panics_if_dropped_unrun: bool,
    /// How each attempt of a fallible task ends, the last repeated for any attempt after it;
    /// empty for a plain task.
    pub(crate) attempts: Vec<Attempt>,
}

impl TaskPlan {
    fn plain(act: Act) -> TaskPlan {
        TaskPlan {
            act,
            panics_if_dropped_unrun: false,
            attempts: Vec::new(),
        }
    }
}

/// How one attempt of a fallible task ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Attempt {
    Ok,
    /// Returns an error worth retrying.
    Err,
    /// Returns an error whose message says it is permanent (not worth retrying, when the
    /// job's policy has `retry_if`).
    Permanent,
    Panic,
    PanicWithPanickyPayload,
}

impl Attempt {
    pub(crate) fn panics(self) -> bool {
        matches!(self, Attempt::Panic | Attempt::PanicWithPanickyPayload)
    }
}

/// What a fallible task's error message holds when the error is permanent.
pub(crate) const PERMANENT: &str = "permanent";

pub(crate) struct JobPlan {
    pub(crate) cap: usize,
    pub(crate) tasks: Vec<TaskPlan>,
    /// Caps set one after the other while the job runs.
    pub(crate) limits: Vec<usize>,
    pub(crate) consume: Consume,
    /// Submitted through `Pool::job` with these options, or `None`: `Pool::try_submit`.
    pub(crate) control: Option<Control>,
}

impl JobPlan {
    /// Whether the job's tasks are fallible.
    pub(crate) fn fallible(&self) -> bool {
        self.control.as_ref().is_some_and(|c| c.fallible)
    }

    /// Inserts a task that does `act` and (if fallible) succeeds on its first attempt.
    pub(crate) fn insert_task(&mut self, at: usize, act: Act) {
        let mut task = TaskPlan::plain(act);
        if self.fallible() {
            task.attempts.push(Attempt::Ok);
        }
        self.tasks.insert(at, task);
    }
}

/// A job's options, for `Pool::job()`.
#[derive(Clone, Debug)]
pub(crate) struct Control {
    pub(crate) priority: Priority,
    /// The round's limiter the job is under, by index.
    pub(crate) limiter: Option<usize>,
    /// A deadline this long after the job is submitted.
    pub(crate) timeout: Option<Duration>,
    pub(crate) fail_fast: bool,
    /// `submit_fallible` rather than `submit`.
    pub(crate) fallible: bool,
    /// The retry policy (fallible jobs only).
    pub(crate) retry: Option<RetryPlan>,
}

#[derive(Clone, Debug)]
pub(crate) struct RetryPlan {
    pub(crate) attempts: u32,
    initial: Duration,
    factor: f64,
    max: Duration,
    pub(crate) retry_panics: bool,
    pub(crate) max_waiting: Option<usize>,
    /// `retry_if` refuses errors whose message holds [`PERMANENT`].
    pub(crate) permanent_errors: bool,
}

impl RetryPlan {
    pub(crate) fn policy(&self) -> Retry {
        let mut policy = Retry::attempts(self.attempts)
            .backoff(self.initial, self.factor, self.max)
            .retry_panics(self.retry_panics);
        if let Some(n) = self.max_waiting {
            policy = policy.max_waiting(n);
        }
        if self.permanent_errors {
            policy = policy.retry_if(|error| !error.to_string().contains(PERMANENT));
        }
        policy
    }
}

/// A limiter shared by the jobs of a round: a cap of 1-3, sometimes a rate.
pub(crate) struct LimiterPlan {
    pub(crate) cap: usize,
    pub(crate) rate: Option<Rate>,
}

pub(crate) fn plan_limiters(rng: &mut Rng) -> Vec<LimiterPlan> {
    let count = match rng.range(0, 9) {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    };
    (0..count)
        .map(|_| LimiterPlan {
            cap: rng.range(1, 3),
            rate: rng.percent(25).then(|| {
                Rate::per_second(rng.range(2000, 6000) as u32).burst(rng.range(1, 4) as u32)
            }),
        })
        .collect()
}

/// The limiter a tree of jobs (a job of the test thread and its sub-jobs) may use: one at
/// most, so that no two trees wait on each other's limiters crosswise (a deadlock of the
/// test, not of the pool: lending covers waits under the same limiter only). Every sub-job of
/// a job under it is under it too, as `Limiter` asks: lending is per thread, so a task holding
/// a slot while it waits on a job outside the limiter, a task of which (on another thread)
/// waits on a job under it, would wait forever.
#[derive(Clone, Copy)]
pub(crate) struct Tree {
    pub(crate) limiter: usize,
    pub(crate) rated: bool,
}

pub(crate) fn pick_tree(rng: &mut Rng, limiters: &[LimiterPlan]) -> Option<Tree> {
    if limiters.is_empty() || rng.percent(30) {
        return None;
    }
    let limiter = rng.range(0, limiters.len() - 1);
    Some(Tree {
        limiter,
        rated: limiters[limiter].rate.is_some(),
    })
}

/// How a job's submitter takes its outcome.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Consume {
    /// `wait`.
    Wait,
    /// `wait_timeout(d)` in a loop (also `Duration::ZERO`), then `wait`.
    PollWaitTimeout(Duration),
    /// Iterates `completions()` to the end.
    Completions,
    /// `Completions::next_timeout(d)` in a loop (also `Duration::ZERO`).
    PollNextTimeout(Duration),
    /// Takes this many completions, then drops the rest unread.
    SomeCompletions(usize),
    /// An `on_finish` callback, which ends as said.
    OnFinish(CallbackEnd),
    /// Drops the handle: the job runs on, detached.
    Detach,
    /// `cancel`, then `wait`.
    CancelThenWait,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum CallbackEnd {
    Return,
    /// Submits a small detached job from the callback.
    FollowUp,
    Panic,
    PanicWithPanickyPayload,
}

/// A job at `depth` (0: the test thread's) of a tree of jobs that may use the limiter `tree`;
/// `under_limiter`: its parent job is under it.
pub(crate) fn plan_job(
    rng: &mut Rng,
    threads: usize,
    depth: usize,
    tree: Option<Tree>,
    under_limiter: bool,
) -> JobPlan {
    let control = if under_limiter {
        Some(plan_control(rng, tree, true))
    } else {
        rng.percent(40).then(|| plan_control(rng, tree, false))
    };
    let limited = control.as_ref().is_some_and(|c| c.limiter.is_some());
    let tasks = if limited && tree.is_some_and(|t| t.rated) {
        // A few thousand starts a second: keep the round short.
        rng.range(0, if depth > 0 { 6 } else { 20 })
    } else if depth > 0 {
        rng.range(0, 20)
    } else {
        match rng.range(0, 99) {
            0..=4 => 0,
            5..=39 => rng.range(1, 8),
            40..=74 => rng.range(9, 60),
            _ => rng.range(61, 200),
        }
    };
    let cap = if rng.percent(5) {
        1000
    } else {
        rng.range(1, threads + 2)
    };
    let limits = if rng.percent(30) {
        (0..rng.range(1, 6))
            .map(|_| rng.range(1, threads + 2))
            .collect()
    } else {
        Vec::new()
    };
    let fallible = control.as_ref().is_some_and(|c| c.fallible);
    JobPlan {
        cap,
        tasks: (0..tasks)
            .map(|_| plan_task(rng, threads, depth, tree, fallible, limited))
            .collect(),
        limits,
        consume: plan_consume(rng),
        control,
    }
}

/// A job's options; `under_limiter`: the job's parent is under the tree's limiter.
fn plan_control(rng: &mut Rng, tree: Option<Tree>, under_limiter: bool) -> Control {
    let fallible = rng.percent(60);
    Control {
        priority: Priority::ALL[rng.range(0, 2)],
        limiter: tree
            .filter(|_| under_limiter || rng.percent(70))
            .map(|t| t.limiter),
        timeout: rng.percent(10).then(|| rng.micros(0, 300)),
        fail_fast: rng.percent(10),
        fallible,
        retry: (fallible && rng.percent(80)).then(|| RetryPlan {
            attempts: rng.range(1, 4) as u32,
            initial: rng.micros(0, 1000),
            factor: 1.0 + rng.range(0, 10) as f64 / 10.0,
            max: rng.micros(0, 2000),
            retry_panics: rng.percent(50),
            max_waiting: rng.percent(25).then(|| rng.range(0, 3)),
            permanent_errors: rng.percent(30),
        }),
    }
}

/// How the attempts of a fallible task end: a few failures, then (mostly) a success.
fn plan_attempts(rng: &mut Rng) -> Vec<Attempt> {
    let failure = |rng: &mut Rng| match rng.range(0, 99) {
        0..=59 => Attempt::Err,
        60..=74 => Attempt::Permanent,
        75..=94 => Attempt::Panic,
        _ => Attempt::PanicWithPanickyPayload,
    };
    let failures = match rng.range(0, 9) {
        0..=4 => 0,
        5..=7 => 1,
        _ => rng.range(2, 4),
    };
    let mut attempts: Vec<Attempt> = (0..failures).map(|_| failure(rng)).collect();
    attempts.push(if rng.percent(85) {
        Attempt::Ok
    } else {
        failure(rng)
    });
    attempts
}

fn plan_task(
    rng: &mut Rng,
    threads: usize,
    depth: usize,
    tree: Option<Tree>,
    fallible: bool,
    under_limiter: bool,
) -> TaskPlan {
    let nests = depth < MAX_DEPTH;
    let act = match rng.range(0, 999) {
        0..=799 => Act::Return,
        800..=939 => Act::Spin(rng.micros(1, 20)),
        940..=944 => Act::Spin(Duration::from_millis(1)),
        945..=949 => Act::Sleep(rng.micros(50, 1000)),
        950..=969 => Act::Panic,
        970..=979 => Act::PanicWithPanickyPayload,
        980..=994 if nests => Act::Nest(Box::new(plan_job(
            rng,
            threads,
            depth + 1,
            tree,
            under_limiter,
        ))),
        995..=999 if nests => Act::RunGraph(Box::new(plan_graph(rng, threads))),
        _ => Act::Return,
    };
    // A fallible task's attempts say whether it panics.
    let act = match act {
        Act::Panic | Act::PanicWithPanickyPayload if fallible => Act::Return,
        act => act,
    };
    TaskPlan {
        act,
        panics_if_dropped_unrun: rng.percent(5),
        attempts: if fallible {
            plan_attempts(rng)
        } else {
            Vec::new()
        },
    }
}

fn plan_consume(rng: &mut Rng) -> Consume {
    let poll = |rng: &mut Rng| {
        if rng.percent(50) {
            Duration::ZERO
        } else {
            rng.micros(1, 200)
        }
    };
    match rng.range(0, 99) {
        0..=29 => Consume::Wait,
        30..=44 => Consume::PollWaitTimeout(poll(rng)),
        45..=59 => Consume::Completions,
        60..=69 => Consume::PollNextTimeout(poll(rng)),
        70..=74 => Consume::SomeCompletions(rng.range(0, 5)),
        75..=84 => Consume::OnFinish(match rng.range(0, 9) {
            0..=4 => CallbackEnd::Return,
            5..=6 => CallbackEnd::FollowUp,
            7..=8 => CallbackEnd::Panic,
            _ => CallbackEnd::PanicWithPanickyPayload,
        }),
        85..=94 => Consume::Detach,
        _ => Consume::CancelThenWait,
    }
}

/// A tiny job an `on_finish` callback submits.
pub(crate) fn follow_up_plan() -> JobPlan {
    JobPlan {
        cap: 1,
        tasks: (0..3).map(|_| TaskPlan::plain(Act::Return)).collect(),
        limits: Vec::new(),
        consume: Consume::Detach,
        control: None,
    }
}

/// A graph of up to 6 modules, each depending on some of the ones before it.
pub(crate) struct GraphPlan {
    pub(crate) modules: Vec<ModulePlan>,
    pub(crate) mode: FailureMode,
    /// The run's observer panics at every module's start.
    pub(crate) observer_panics: bool,
}

pub(crate) struct ModulePlan {
    pub(crate) cap: usize,
    pub(crate) tasks: Vec<ModuleTask>,
    pub(crate) after: Vec<usize>,
    pub(crate) condition: Condition,
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum ModuleTask {
    Ok,
    Spin(Duration),
    Err,
    Panic,
    PanicWithPanickyPayload,
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Condition {
    None,
    Run,
    Skip,
    Panic,
}

impl ModuleTask {
    pub(crate) fn fails(self) -> bool {
        matches!(
            self,
            ModuleTask::Err | ModuleTask::Panic | ModuleTask::PanicWithPanickyPayload
        )
    }
}

pub(crate) fn plan_graph(rng: &mut Rng, threads: usize) -> GraphPlan {
    let modules = (0..rng.range(1, 6))
        .map(|m| {
            let mut tasks: Vec<ModuleTask> = (0..rng.range(0, 8))
                .map(|_| {
                    if rng.percent(90) {
                        ModuleTask::Ok
                    } else {
                        ModuleTask::Spin(rng.micros(1, 50))
                    }
                })
                .collect();
            if !tasks.is_empty() && rng.percent(20) {
                let failing = rng.range(0, tasks.len() - 1);
                tasks[failing] = match rng.range(0, 2) {
                    0 => ModuleTask::Err,
                    1 => ModuleTask::Panic,
                    _ => ModuleTask::PanicWithPanickyPayload,
                };
            }
            ModulePlan {
                cap: rng.range(1, threads + 1),
                tasks,
                after: (0..m).filter(|_| rng.percent(35)).collect(),
                condition: match rng.range(0, 99) {
                    0..=79 => Condition::None,
                    80..=87 => Condition::Run,
                    88..=95 => Condition::Skip,
                    _ => Condition::Panic,
                },
            }
        })
        .collect();
    GraphPlan {
        modules,
        mode: if rng.percent(70) {
            FailureMode::KeepGoing
        } else {
            FailureMode::FailFast
        },
        observer_panics: rng.percent(10),
    }
}
