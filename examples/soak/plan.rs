//! Plans: what a job, a task, a graph will do, all drawn from the round's generator before
//! anything is submitted, so that a replay of the round runs the same plan.

use std::time::Duration;

use jobpool::FailureMode;

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
    pub(crate) act: Act,
    /// The task owns a value that panics when dropped, unless the task ran.
    pub(crate) panics_if_dropped_unrun: bool,
}

pub(crate) struct JobPlan {
    pub(crate) cap: usize,
    pub(crate) tasks: Vec<TaskPlan>,
    /// Caps set one after the other while the job runs.
    pub(crate) limits: Vec<usize>,
    pub(crate) consume: Consume,
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

pub(crate) fn plan_job(rng: &mut Rng, threads: usize, depth: usize) -> JobPlan {
    let tasks = if depth > 0 {
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
    JobPlan {
        cap,
        tasks: (0..tasks).map(|_| plan_task(rng, threads, depth)).collect(),
        limits,
        consume: plan_consume(rng),
    }
}

fn plan_task(rng: &mut Rng, threads: usize, depth: usize) -> TaskPlan {
    let nests = depth < MAX_DEPTH;
    let act = match rng.range(0, 999) {
        0..=799 => Act::Return,
        800..=939 => Act::Spin(rng.micros(1, 20)),
        940..=944 => Act::Spin(Duration::from_millis(1)),
        945..=949 => Act::Sleep(rng.micros(50, 1000)),
        950..=969 => Act::Panic,
        970..=979 => Act::PanicWithPanickyPayload,
        980..=994 if nests => Act::Nest(Box::new(plan_job(rng, threads, depth + 1))),
        995..=999 if nests => Act::RunGraph(Box::new(plan_graph(rng, threads))),
        _ => Act::Return,
    };
    TaskPlan {
        act,
        panics_if_dropped_unrun: rng.percent(5),
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
        tasks: (0..3)
            .map(|_| TaskPlan {
                act: Act::Return,
                panics_if_dropped_unrun: false,
            })
            .collect(),
        limits: Vec::new(),
        consume: Consume::Detach,
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
