//! Graphs: building a [`Dag`] from its plan, running it on the round's pool, and checking its
//! report against the plan and against what its tasks recorded.

use std::panic;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use jobpool::{
    Context, Dag, Event, Failure, FailureMode, ModuleReport, ModuleState, RunOptions, RunReport,
    SkipReason, TaskResult,
};

use crate::jobs::{spin, Env};
use crate::monitor::{fail, lock, tick, PanicsOnDrop, ON_PURPOSE};
use crate::plan::{Condition, GraphPlan, ModulePlan, ModuleTask};
use crate::round::RoundState;

/// Runs a graph as planned on the round's pool and checks its report.
pub(crate) fn run_graph(env: &Env, plan: GraphPlan, origin: &str) {
    let ledger = Arc::new(GraphLedger::new(&plan, origin));
    let dag = build_graph(&plan, &ledger);
    let options = RunOptions::new()
        .failure_mode(plan.mode)
        .on_event(observer(&ledger, plan.observer_panics));
    lock(&env.round.graphs_in_flight).push(ledger.clone());
    let report = dag
        .run_with(&env.pool, options)
        .unwrap_or_else(|err| fail(format_args!("a planned graph was refused: {err}")));
    lock(&env.round.graphs_in_flight).retain(|g| !Arc::ptr_eq(g, &ledger));
    check_report(&plan, &ledger, &report, &env.round);
    env.round.graphs.fetch_add(1, SeqCst);
}

fn module_name(module: usize) -> String {
    format!("m{module}")
}

/// The value task `task` of module `module` returns.
fn module_value(module: usize, task: usize) -> u64 {
    ((module as u64) << 32) | task as u64
}

/// What module `module` outputs when it is done.
fn module_output(plan: &GraphPlan, module: usize) -> Vec<u64> {
    (0..plan.modules[module].tasks.len())
        .map(|task| module_value(module, task))
        .collect()
}

fn build_graph(plan: &GraphPlan, ledger: &Arc<GraphLedger>) -> Dag {
    let mut dag = Dag::new();
    for (m, module) in plan.modules.iter().enumerate() {
        let tasks: Vec<_> = module
            .tasks
            .iter()
            .enumerate()
            .map(|(t, &task)| {
                let ledger = ledger.clone();
                let after = module.after.clone();
                let outputs: Vec<Vec<u64>> =
                    after.iter().map(|&d| module_output(plan, d)).collect();
                move |ctx: &Context| -> TaskResult<u64> {
                    ledger.run_task(m, t, &after, &outputs, ctx, task)
                }
            })
            .collect();
        let declared = dag
            .module(module_name(m), module.cap, tasks)
            .and_then(|r| r.after(module.after.iter().map(|&d| module_name(d))));
        if let Err(err) = declared {
            fail(format_args!("declaring a planned module: {err}"));
        }
        let condition = module.condition;
        if condition != Condition::None {
            let declared = dag.skip_if(&module_name(m), move |_| match condition {
                Condition::Panic => panic!("{ON_PURPOSE}: the skip condition of m{m}"),
                _ => condition == Condition::Skip,
            });
            if let Err(err) = declared {
                fail(format_args!("declaring a condition: {err}"));
            }
        }
    }
    dag
}

/// Counts each module's start and end events; panics on purpose at every start if told to.
fn observer(ledger: &Arc<GraphLedger>, panics: bool) -> impl Fn(&Event<'_>) + Send + Sync {
    let ledger = ledger.clone();
    move |event: &Event<'_>| {
        let Some(module) = event.module[1..]
            .parse::<usize>()
            .ok()
            .and_then(|m| ledger.modules.get(m))
        else {
            fail(format_args!(
                "an event of an unknown module {}",
                event.module
            ))
        };
        match event.state {
            None => module.start_events.fetch_add(1, SeqCst),
            Some(_) => module.end_events.fetch_add(1, SeqCst),
        };
        if panics && event.state.is_none() {
            panic!(
                "{ON_PURPOSE}: the observer, at the start of {}",
                event.module
            );
        }
    }
}

/// What a graph's tasks record, per module.
pub(crate) struct GraphLedger {
    /// Who runs it and how, for the hang report.
    label: String,
    modules: Vec<ModuleLedger>,
}

#[derive(Default)]
struct ModuleLedger {
    running: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
    ended: AtomicUsize,
    /// Set when a dependent module started: no task of this one may start after.
    sealed: AtomicBool,
    runs: Vec<AtomicUsize>,
    start_events: AtomicUsize,
    end_events: AtomicUsize,
}

impl GraphLedger {
    fn new(plan: &GraphPlan, origin: &str) -> GraphLedger {
        GraphLedger {
            label: format!("graph ({origin}, {:?})", plan.mode),
            modules: plan
                .modules
                .iter()
                .map(|m| ModuleLedger {
                    runs: m.tasks.iter().map(|_| AtomicUsize::new(0)).collect(),
                    ..ModuleLedger::default()
                })
                .collect(),
        }
    }

    /// Task `t` of module `m`: checks that its dependencies have ended and gave the outputs
    /// they should, then does what it was planned to.
    fn run_task(
        &self,
        m: usize,
        t: usize,
        after: &[usize],
        outputs: &[Vec<u64>],
        ctx: &Context,
        task: ModuleTask,
    ) -> TaskResult<u64> {
        let _inside = self.enter(m, t);
        for (&d, expected) in after.iter().zip(outputs) {
            self.check_dependency(m, d, expected, ctx);
        }
        match task {
            ModuleTask::Ok => Ok(module_value(m, t)),
            ModuleTask::Spin(length) => {
                spin(length);
                Ok(module_value(m, t))
            }
            ModuleTask::Err => Err(format!("{ON_PURPOSE}: task {t} of m{m} failed").into()),
            ModuleTask::Panic => panic!("{ON_PURPOSE}: task {t} of m{m}"),
            ModuleTask::PanicWithPanickyPayload => panic::panic_any(PanicsOnDrop),
        }
    }

    /// Task `t` of module `m` starts: counts its run, checks its module's cap and that no
    /// dependent has started. The guard ends it.
    fn enter(&self, m: usize, t: usize) -> ModuleInside<'_> {
        let module = &self.modules[m];
        tick();
        if module.runs[t].fetch_add(1, SeqCst) > 0 {
            fail(format_args!("task {t} of module m{m} ran twice in one run"));
        }
        module.started.fetch_add(1, SeqCst);
        let running = module.running.fetch_add(1, SeqCst) + 1;
        module.peak.fetch_max(running, SeqCst);
        if module.sealed.load(SeqCst) {
            fail(format_args!(
                "a task of m{m} started after a module depending on it"
            ));
        }
        ModuleInside(module)
    }

    /// Module `m` started: dependency `d` must have ended, with the output it should have.
    fn check_dependency(&self, m: usize, d: usize, expected: &[u64], ctx: &Context) {
        let dep = &self.modules[d];
        // Sealed before the counts are read, and a task of `d` counts itself started before
        // it reads the seal: one of the two sees the other.
        dep.sealed.store(true, SeqCst);
        if dep.started.load(SeqCst) != dep.ended.load(SeqCst) {
            fail(format_args!(
                "m{m} started while its dependency m{d} still ran"
            ));
        }
        let name = module_name(d);
        match ctx.output::<u64>(&name) {
            Ok(output) if output == expected => {}
            Ok(output) => fail(format_args!(
                "m{m} read {output:?} from m{d}, not {expected:?}"
            )),
            Err(err) => {
                if ctx.skipped(&name).ok() != Some(true) {
                    fail(format_args!(
                        "m{m} found no output of m{d}, not skipped: {err}"
                    ));
                }
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        let modules: Vec<String> = self
            .modules
            .iter()
            .enumerate()
            .map(|(m, module)| {
                format!(
                    "m{m} {} of {} tasks started, {} ended",
                    module.started.load(SeqCst),
                    module.runs.len(),
                    module.ended.load(SeqCst)
                )
            })
            .collect();
        format!("{}: {}", self.label, modules.join("; "))
    }
}

/// A task of a module is running.
struct ModuleInside<'a>(&'a ModuleLedger);

impl Drop for ModuleInside<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, SeqCst);
        self.0.ended.fetch_add(1, SeqCst);
        tick();
    }
}

/// How a module should end when nothing is cancelled.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Want {
    Done,
    Failed,
    SkippedByCondition,
    SkippedAfterFailure,
}

/// The states of a run in which nothing is cancelled. Dependencies come before their
/// dependents in a plan.
fn wanted_states(plan: &GraphPlan) -> Vec<Want> {
    let mut wanted: Vec<Want> = Vec::new();
    for module in &plan.modules {
        let after_failure = module
            .after
            .iter()
            .any(|&d| matches!(wanted[d], Want::Failed | Want::SkippedAfterFailure));
        wanted.push(if after_failure {
            Want::SkippedAfterFailure
        } else if module.condition == Condition::Panic {
            Want::Failed
        } else if module.condition == Condition::Skip {
            Want::SkippedByCondition
        } else if module.tasks.iter().any(|t| t.fails()) {
            Want::Failed
        } else {
            Want::Done
        });
    }
    wanted
}

/// Checks a graph's report against its plan and against what its tasks recorded.
///
/// A module ends as [`wanted_states`] says, unless it is cancelled, which only a fail-fast run
/// with a failing module or a `shutdown_now` may do.
fn check_report(plan: &GraphPlan, ledger: &GraphLedger, report: &RunReport, round: &RoundState) {
    let wanted = wanted_states(plan);
    let fail_fast = plan.mode == FailureMode::FailFast && wanted.contains(&Want::Failed);
    let may_cancel = fail_fast || round.cancel_all.load(SeqCst);
    for (m, module) in plan.modules.iter().enumerate() {
        let name = module_name(m);
        let checked = match report.module(&name) {
            Some(got) => check_module(module, &ledger.modules[m], got, wanted[m], may_cancel)
                .and_then(|()| check_output(plan, m, got.state(), report)),
            None => Err("missing from the report".to_owned()),
        };
        if let Err(problem) = checked {
            fail(format_args!(
                "graph module {name} (wanted {:?}): {problem}",
                wanted[m]
            ));
        }
        let runs: usize = ledger.modules[m].runs.iter().map(|r| r.load(SeqCst)).sum();
        round.graph_tasks.fetch_add(runs, SeqCst);
    }
}

/// One module's report: its state, cap, size, events, task runs and failures.
fn check_module(
    plan: &ModulePlan,
    ledger: &ModuleLedger,
    got: &ModuleReport,
    wanted: Want,
    may_cancel: bool,
) -> Result<(), String> {
    let state = got.state();
    if !state_as_wanted(state, wanted, may_cancel) {
        return Err(format!("ended {state}"));
    }
    let peak = ledger.peak.load(SeqCst);
    if got.peak_running() > plan.cap || peak > plan.cap {
        return Err(format!(
            "cap {}: {peak} tasks ran at once (the report says {})",
            plan.cap,
            got.peak_running()
        ));
    }
    if (got.tasks(), got.cap()) != (plan.tasks.len(), plan.cap) {
        return Err(format!("reported {} tasks, cap {}", got.tasks(), got.cap()));
    }
    let (starts, ends) = (
        ledger.start_events.load(SeqCst),
        ledger.end_events.load(SeqCst),
    );
    if ends != 1 || starts > 1 {
        return Err(format!("observed {starts} starts and {ends} ends"));
    }
    let runs: Vec<usize> = ledger.runs.iter().map(|r| r.load(SeqCst)).collect();
    if !runs_as_state_says(state, &runs, plan.condition, may_cancel) {
        return Err(format!("ended {state}, its tasks ran {runs:?} times"));
    }
    match state {
        ModuleState::Failed(failures) => check_failures(plan, failures),
        _ => Ok(()),
    }
}

fn state_as_wanted(state: &ModuleState, wanted: Want, may_cancel: bool) -> bool {
    match (state, wanted) {
        (ModuleState::Done, Want::Done)
        | (ModuleState::Failed(_), Want::Failed)
        | (ModuleState::Skipped(SkipReason::Condition), Want::SkippedByCondition)
        | (ModuleState::Skipped(SkipReason::DependencyFailed { .. }), Want::SkippedAfterFailure) => {
            true
        }
        (ModuleState::Cancelled, _) => may_cancel,
        _ => false,
    }
}

/// A done module ran every task once, a skipped one none; a failed one ran every task (none
/// if its condition failed it), unless the run was cancelling.
fn runs_as_state_says(
    state: &ModuleState,
    runs: &[usize],
    condition: Condition,
    may_cancel: bool,
) -> bool {
    let all_ran = runs.iter().all(|&r| r == 1);
    let none_ran = runs.iter().all(|&r| r == 0);
    match state {
        ModuleState::Done => all_ran,
        ModuleState::Skipped(_) => none_ran,
        ModuleState::Failed(_) if may_cancel => true,
        ModuleState::Failed(_) if condition == Condition::Panic => none_ran,
        ModuleState::Failed(_) => all_ran,
        _ => true,
    }
}

/// Each failure of a failed module is one its plan has.
fn check_failures(module: &ModulePlan, failures: &[Failure]) -> Result<(), String> {
    for failure in failures {
        let planned = match failure {
            Failure::TaskError { task, .. } => module.tasks.get(*task) == Some(&ModuleTask::Err),
            Failure::TaskPanicked { task, .. } => matches!(
                module.tasks.get(*task),
                Some(ModuleTask::Panic | ModuleTask::PanicWithPanickyPayload)
            ),
            Failure::ConditionPanicked { .. } => module.condition == Condition::Panic,
            _ => false,
        };
        if !planned {
            return Err(format!("failed with an unplanned failure: {failure}"));
        }
    }
    Ok(())
}

/// A done module's output, as the report gives it, is what its tasks returned.
fn check_output(
    plan: &GraphPlan,
    m: usize,
    state: &ModuleState,
    report: &RunReport,
) -> Result<(), String> {
    let expected = module_output(plan, m);
    match report.output::<u64>(&module_name(m)) {
        Ok(output) if state.is_done() && output != expected => Err(format!(
            "done, with the output {output:?}, not {expected:?}"
        )),
        Err(err) if state.is_done() => Err(format!("done, with no output: {err}")),
        _ => Ok(()),
    }
}
