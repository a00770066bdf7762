//! The driver: hands each module to the pool the moment its last dependency ends, and records
//! how every module ended.
//!
//! # How a run proceeds
//!
//! All of a run's bookkeeping is in one `RunState` behind one lock. No thread is blocked per
//! module: the pool calls back (`JobHandle::on_finish`) on the worker that finished a module's
//! last task, and that callback does the bookkeeping and starts what became ready.
//!
//! - **Ending a module** (`end`, under the lock): record its state, and for each dependent count
//!   one dependency less; a dependent with none left is put on the `ready` queue.
//! - **Draining** (`drain`): one thread at a time (the one that set `draining`) takes modules off
//!   `ready` and decides each one: *skipped* if a dependency failed (or was skipped because of a
//!   failure), *cancelled* if a dependency was cancelled or the run is stopping (fail-fast),
//!   *asked* if it has a skip condition not asked yet, otherwise *started*: its tasks are
//!   submitted as one job, with the module's job options (`control.rs`: a retry policy, limits,
//!   a priority, a timeout counted from now). A task being retried keeps its module's job, and
//!   so the module, from ending; the job ends once every task has succeeded, failed for good,
//!   or been kept from starting by the timeout. The drainer runs no user code and waits for none: each decision is
//!   a look at `RunState`, and asking or starting is a submission, which returns at once. So a
//!   module is submitted as soon as its last dependency ends, whatever other modules' conditions
//!   and tasks are doing. The lock is released while a job is submitted, so a module can end
//!   while the drainer is busy; the drainer sees whatever that put on `ready` when it takes the
//!   lock back. A thread that ends a module while another drains leaves the new ready modules
//!   to it, so there is no recursion even when jobs end at once (a module of no tasks ends
//!   inside its own submission).
//! - **Asking a condition** (`ask`, `ask_condition`, `condition_answered`): the condition is a
//!   job of its own on the run's pool, one task of cap 1, so it runs on a worker like any task,
//!   beside other conditions and tasks, never on the drainer. A module's `ConditionStage` goes
//!   from `Unasked` to `Asking` (its job is on the pool, its canceller in the module's slot) to
//!   `Answered`. When the job ends, its callback records the answer under the lock: `true` ends
//!   the module skipped, a panic ends it failed (`Failure::ConditionPanicked`), a job cancelled
//!   before its task ran ends it cancelled, and `false` puts it back on `ready`, where the
//!   drainer starts it (or cancels it, if the run began stopping meanwhile); then the callback
//!   drains, as the end of a job does. The task holds only the run and the module's index: it
//!   takes the condition and the dependencies' outputs from `RunState` when it runs (they are
//!   there until every module has ended, and this one has not), so a condition task dropped
//!   unrun, whenever that happens, holds none of the user's code and no handle of the pool.
//! - **Helping** (`help_until_finished`): `run` called on one of the pool's own workers runs
//!   the tasks of the graph's jobs itself, conditions' as well as modules', since a pool with no
//!   other free worker would run neither.
//! - **The end of the run**: the drainer that finds `ready` empty and every module ended lets
//!   go of the run's `Pool` handle, then sets `finished` and wakes `Dag::run`. Every module ends
//!   exactly once (by a verdict of the drainer, or by the callback of its one condition job or
//!   its one task job), and every end, like every "run" answer, is followed by a drain (by its
//!   own thread or by the drainer it found), so the last end is always seen.
//! - **Fail-fast**: the end of a failed module sets `stopping` and takes the cancellers of every
//!   job on the pool, conditions' included; they are called with the lock released (a cancel
//!   may end a job, and so call back into the run, on this very thread). A condition already
//!   running answers all the same, and a "run" answer meets the drainer's `stopping` check. A
//!   job submitted while that happened is cancelled by the drainer when it takes the lock back
//!   and sees `stopping`.
//! - **Targets**: a run with targets ends every module they do not need as skipped
//!   (`SkipReason::NotNeeded`) when it becomes ready; none of its dependents is needed either.
//! - **A cache** (feature `cache`; the steps are in `incremental.rs`): a cached module whose
//!   condition said "run" is *looked up* first (`look_up`, `looked_up`), as a job of its own
//!   like a condition: `Verdict::LookUp` submits it, its canceller is kept as a condition's is,
//!   and its callback either ends the module (a hit, with the stored output) or puts it back on
//!   `ready`, where the drainer starts it. The worker that ends a cached module's job stores
//!   its output (`store`) before it takes the lock to end the module, so the output's digest is
//!   in the module's slot before any dependent is looked up. A *dry run* (`Dag::explain`) looks
//!   modules up and starts none: each module ends as done with its plan.
//! - **Events** are told under the lock, so one at a time: a module's start when its tasks are
//!   submitted, its end when it ends. A module's first event comes after the end of each of its
//!   dependencies, and its start before its end.

use crate::observe::EventKind;
use crate::scheduler::Registry;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::context::{Context, Input, Inputs};
use super::graph::{ModuleBody, Plan, PlannedModule};
#[cfg(feature = "cache")]
use super::incremental::{DependencyDigest, LookUp, RunCache};
use super::options::{Event, FailureMode, Observer, RunOptions};
use super::report::{Failure, ModuleReport, ModuleState, RunReport, SkipReason};
use super::tasks::{ConcurrencyProbe, JobOutcome};
#[cfg(feature = "cache")]
use crate::cache::{CacheStatus, Digest, ModuleRecord, Plan as CachePlan};
use crate::unwind::call_quietly;
use crate::{Canceller, JobError, Pool, TaskError};

/// One run of a plan, shared by the thread that called `run` and the pool's callbacks.
///
/// A callback may still hold it for a moment after `run` returned, so it holds no user code:
/// the tasks, conditions and observer are in `RunState`, released before `run` returns.
struct Run {
    /// Tells this run's module events apart from other runs' in the pool's events.
    id: u64,
    /// The pool's registry, for its listeners.
    registry: Arc<Registry>,
    modules: Vec<PlannedModule>,
    failure_mode: FailureMode,
    /// Per module: whether the run's targets need it (`None`: no targets, all are run).
    needed: Option<Vec<bool>>,
    /// The run's cache, if it has one.
    #[cfg(feature = "cache")]
    cache: Option<RunCache>,
    /// Look modules up, run none (`Dag::explain`).
    #[cfg(feature = "cache")]
    dry_run: bool,
    started: Instant,
    state: Mutex<RunState>,
    /// Wakes `run` once `RunState::finished` is set, and a driver helping on a worker when
    /// there may be work for it.
    finished: Condvar,
    /// A driver helping on a worker (`help_until_finished`) waits on `finished` for work.
    helper_waiting: AtomicBool,
}

/// Everything about a run that its lock guards.
struct RunState {
    /// The pool, until every module has ended.
    pool: Option<Pool>,
    /// The modules' tasks and conditions, until every module has ended.
    bodies: Vec<ModuleBody>,
    /// Told of every event, until every module has ended.
    observer: Option<Observer>,
    /// Per module: how many of its dependencies have not ended.
    waiting_for: Vec<usize>,
    modules: Vec<ModuleSlot>,
    /// Modules whose dependencies have all ended, not yet decided.
    ready: VecDeque<usize>,
    /// A thread is taking modules off `ready`.
    draining: bool,
    /// Modules that have not ended.
    unended: usize,
    /// Fail-fast mode saw a failure: start nothing more.
    stopping: bool,
    /// Every module has ended and the run let go of the pool.
    finished: bool,
}

/// One module's part of `RunState`.
#[derive(Default)]
struct ModuleSlot {
    /// `Some` once it ended.
    state: Option<ModuleState>,
    start: Option<Duration>,
    end: Option<Duration>,
    peak: usize,
    /// What its dependents see: its output, or that it was skipped by its condition.
    output: Option<Input>,
    /// Cancels its job while it is on the pool (for fail-fast): its condition's, then its
    /// tasks'.
    canceller: Option<Canceller>,
    /// How far it is in asking its skip condition.
    condition: ConditionStage,
    /// Its look-up in the cache was submitted.
    #[cfg(feature = "cache")]
    looked_up: bool,
    /// Its look-up job is on the pool.
    #[cfg(feature = "cache")]
    looking: bool,
    /// The fingerprint to store its output under, after a miss.
    #[cfg(feature = "cache")]
    record: Option<Box<ModuleRecord>>,
    /// The digest of its output, if it has one (a cached module that ended done).
    #[cfg(feature = "cache")]
    digest: Option<Digest>,
    #[cfg(feature = "cache")]
    cache_status: CacheStatus,
    /// Its output was stored in the cache's index (a small one), written at the end of the run.
    #[cfg(feature = "cache")]
    stored_in_index: bool,
    /// What a dry run found it would do.
    #[cfg(feature = "cache")]
    plan: Option<CachePlan>,
}

/// How far a module is in asking its skip condition; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ConditionStage {
    /// Not asked yet, or it has no condition.
    #[default]
    Unasked,
    /// Its condition's job is on the pool.
    Asking,
    /// Its condition's job has ended.
    Answered,
}

/// What happens to a ready module.
enum Verdict {
    /// Submit its skip condition as a job of its own.
    Ask,
    /// Submit its tasks as one job.
    Start,
    /// End it without running anything.
    End(ModuleState),
    /// Submit its look-up in the cache as a job of its own.
    #[cfg(feature = "cache")]
    LookUp,
    /// A dry run: end it (as done) with what a run would do.
    #[cfg(feature = "cache")]
    Plan(CachePlan),
}

/// Runs a checked graph on `pool` and blocks until every module has ended. `needed` says which
/// modules the run's targets need (`None`: all).
pub(crate) fn run(
    plan: Plan,
    pool: &Pool,
    options: RunOptions,
    needed: Option<Vec<bool>>,
) -> RunReport {
    let (run, slots, elapsed) = execute(plan, pool, options, needed);
    let mut outputs = Vec::with_capacity(slots.len());
    let modules = run
        .modules
        .iter()
        .zip(slots)
        .map(|(module, slot)| {
            outputs.push(slot.output);
            ModuleReport {
                name: module.name.to_string(),
                cap: module.cap,
                tasks: module.task_count,
                state: slot.state.unwrap_or(ModuleState::Cancelled),
                start: slot.start,
                end: slot.end,
                peak_running: slot.peak,
                #[cfg(feature = "cache")]
                cache_status: slot.cache_status,
            }
        })
        .collect();
    RunReport {
        modules,
        outputs,
        elapsed,
    }
}

/// Looks every module up in the cache as a run would, and runs none; see `Dag::explain`.
#[cfg(feature = "cache")]
pub(crate) fn explain(
    plan: Plan,
    pool: &Pool,
    mut options: RunOptions,
    needed: Option<Vec<bool>>,
) -> crate::cache::Explanation {
    options.dry_run = true;
    let (run, slots, _) = execute(plan, pool, options, needed);
    let modules = run
        .modules
        .iter()
        .zip(slots)
        .map(|(module, slot)| {
            let plan = slot.plan.unwrap_or(match slot.state {
                Some(ModuleState::Skipped(SkipReason::NotNeeded)) => CachePlan::NotNeeded,
                _ => CachePlan::NotCached,
            });
            (module.name.to_string(), plan)
        })
        .collect();
    crate::cache::Explanation { modules }
}

/// Runs a checked graph and returns how each module ended, and how long the run took.
fn execute(
    plan: Plan,
    pool: &Pool,
    options: RunOptions,
    needed: Option<Vec<bool>>,
) -> (Arc<Run>, Vec<ModuleSlot>, Duration) {
    let Plan {
        modules: plan,
        bodies,
    } = plan;
    let count = plan.len();
    let waiting_for: Vec<usize> = plan.iter().map(|m| m.dependencies.len()).collect();
    let ready = (0..count).filter(|&i| waiting_for[i] == 0).collect();
    let mut modules = Vec::with_capacity(count);
    modules.resize_with(count, ModuleSlot::default);
    static NEXT_RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let run = Arc::new(Run {
        id: NEXT_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        registry: pool.registry().clone(),
        modules: plan,
        failure_mode: options.failure_mode,
        needed,
        #[cfg(feature = "cache")]
        cache: options
            .cache
            .map(|cache| RunCache::new(cache, options.force)),
        #[cfg(feature = "cache")]
        dry_run: options.dry_run,
        started: Instant::now(),
        state: Mutex::new(RunState {
            pool: Some(pool.clone()),
            bodies,
            observer: options.observer,
            waiting_for,
            modules,
            ready,
            draining: false,
            unended: count,
            stopping: false,
            finished: false,
        }),
        finished: Condvar::new(),
        helper_waiting: AtomicBool::new(false),
    });
    run.drain(run.state.lock());

    let mut st = run.state.lock();
    if pool.is_worker_thread() {
        // Called from one of the pool's own tasks: this worker must not just block, or a pool
        // with no other free worker could never run the graph. It runs the graph's jobs itself.
        st = run.help_until_finished(st);
    }
    while !st.finished {
        run.finished.wait(&mut st);
    }
    let elapsed = run.started.elapsed();
    let slots = std::mem::take(&mut st.modules);
    drop(st);
    #[cfg(feature = "cache")]
    let mut slots = slots;
    #[cfg(feature = "cache")]
    if let Some(Err(error)) = run.cache.as_ref().map(|cache| cache.finish(run.dry_run)) {
        // The small entries of this run were to be kept in the index.
        for slot in slots.iter_mut().filter(|slot| slot.stored_in_index) {
            if let CacheStatus::Ran { store_error, .. } = &mut slot.cache_status {
                *store_error = Some(error.clone());
            }
        }
    }
    (run, slots, elapsed)
}

impl Run {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Wakes a driver helping on a worker (`help_until_finished`), if one waits, to look for
    /// work again. Only then: `run`'s own thread waits for the end of the run alone, and waking
    /// it at every module's end would cost a thread switch each time. The flag is read without
    /// the lock, so a helper that starts to wait just after may miss this wake-up; it looks
    /// again within `LOOK_AGAIN` anyway.
    fn wake_helper(&self) {
        if self.helper_waiting.load(Relaxed) {
            self.finished.notify_all();
        }
    }

    /// On a worker of the run's pool: runs the tasks of the graph's jobs on the pool (the
    /// modules' and their conditions') until the run finishes, as a worker that waits on one
    /// job runs that job's tasks.
    ///
    /// When none of them has a pending task and a free token, every token is held by a task
    /// running elsewhere, and the worker waits for the next job to be submitted or to end (all
    /// notify `finished`). A running job can also become runnable again without either (a
    /// worker hands a token back at the end of its time slice, and that job goes to the run
    /// queue, where any idle worker takes it); should every other worker be busy, the wait
    /// looks again after a millisecond rather than trust that some worker will come by.
    fn help_until_finished<'a>(
        &'a self,
        mut st: MutexGuard<'a, RunState>,
    ) -> MutexGuard<'a, RunState> {
        const LOOK_AGAIN: Duration = Duration::from_millis(1);
        while !st.finished {
            let running: Vec<Canceller> = st
                .modules
                .iter()
                .filter_map(|m| m.canceller.clone())
                .collect();
            drop(st);
            let mut ran = false;
            for job in &running {
                ran |= job.help();
            }
            drop(running);
            st = self.state.lock();
            if !ran && !st.finished {
                self.helper_waiting.store(true, Relaxed);
                self.finished.wait_for(&mut st, LOOK_AGAIN);
                self.helper_waiting.store(false, Relaxed);
            }
        }
        st
    }

    /// Tells the observer, if any; called under the lock, so events come one at a time.
    fn emit(&self, st: &RunState, module: usize, state: Option<&ModuleState>) {
        #[cfg(feature = "cache")]
        if self.dry_run {
            return;
        }
        if self.registry.listening() {
            let run = self.id;
            let kind = match state {
                None => EventKind::ModuleStarted { run },
                Some(state) => EventKind::ModuleEnded {
                    run,
                    state: state.to_string(),
                },
            };
            self.registry
                .tell(None, Some(&self.modules[module].name), kind);
        }
        if let Some(observer) = &st.observer {
            let event = Event {
                module: &self.modules[module].name,
                at: self.now(),
                state,
            };
            // A panicking observer must not stop the run; the panic hook printed it already.
            call_quietly(|| observer(&event));
        }
    }

    /// Takes modules off `ready` until there are none, unless another thread does already; see
    /// the module docs.
    fn drain<'a>(self: &'a Arc<Self>, mut st: MutexGuard<'a, RunState>) {
        if st.draining {
            return;
        }
        st.draining = true;
        while let Some(module) = st.ready.pop_front() {
            st = match self.verdict(&st, module) {
                Verdict::End(state) => {
                    // Only a failure returns cancellers, and a verdict is never a failure.
                    let _not_a_failure = self.end(&mut st, module, state);
                    st
                }
                Verdict::Ask => self.ask(st, module),
                Verdict::Start => self.start(st, module),
                #[cfg(feature = "cache")]
                Verdict::LookUp => self.look_up(st, module),
                #[cfg(feature = "cache")]
                Verdict::Plan(plan) => {
                    st.modules[module].plan = Some(plan);
                    let _not_a_failure = self.end(&mut st, module, ModuleState::Done);
                    st
                }
            };
        }
        st.draining = false;
        if st.unended == 0 && !st.finished {
            let pool = st.pool.take();
            let bodies = std::mem::take(&mut st.bodies);
            let observer = st.observer.take();
            drop(st);
            // Let go of the pool and the user's code before `run` returns: the caller's pool
            // handle, not this one (perhaps on a worker), is to be the pool's last, and the
            // tasks are to be dropped when the caller drops the graph.
            drop((pool, bodies, observer));
            let mut st = self.state.lock();
            st.finished = true;
            self.finished.notify_all();
        }
    }

    /// Decides a ready module: skip it, cancel it, ask its condition, or start it.
    fn verdict(&self, st: &RunState, module: usize) -> Verdict {
        if self.needed.as_ref().is_some_and(|needed| !needed[module]) {
            return Verdict::End(ModuleState::Skipped(SkipReason::NotNeeded));
        }
        #[cfg(feature = "cache")]
        if self.dry_run {
            return self.dry_verdict(st, module);
        }
        let mut cancelled = st.stopping;
        for &dep in &self.modules[module].dependencies {
            match &st.modules[dep].state {
                Some(ModuleState::Failed(_)) => {
                    let failed = self.modules[dep].name.to_string();
                    return Verdict::End(ModuleState::Skipped(SkipReason::DependencyFailed {
                        failed,
                    }));
                }
                Some(ModuleState::Skipped(SkipReason::DependencyFailed { failed })) => {
                    let failed = failed.clone();
                    return Verdict::End(ModuleState::Skipped(SkipReason::DependencyFailed {
                        failed,
                    }));
                }
                Some(ModuleState::Cancelled) => cancelled = true,
                _ => {}
            }
        }
        if cancelled {
            Verdict::End(ModuleState::Cancelled)
        } else if st.bodies[module].skip_if.is_some()
            && st.modules[module].condition == ConditionStage::Unasked
        {
            Verdict::Ask
        } else {
            #[cfg(feature = "cache")]
            if self.cache.is_some()
                && self.modules[module].cache.is_some()
                && !st.modules[module].looked_up
            {
                return Verdict::LookUp;
            }
            Verdict::Start
        }
    }

    /// What the module's tasks and its condition see: its dependencies' outputs, and `pool`.
    fn inputs(&self, st: &RunState, module: usize, pool: Pool) -> Arc<Inputs> {
        let planned = &self.modules[module];
        let dependencies = planned
            .dependencies
            .iter()
            .map(|&dep| {
                let input = st.modules[dep].output.clone();
                (
                    self.modules[dep].name.clone(),
                    input.unwrap_or(Input::Skipped),
                )
            })
            .collect();
        Arc::new(Inputs {
            module: planned.name.clone(),
            pool,
            dependencies,
        })
    }

    /// Submits the module's skip condition as a job of its own, one task of cap 1, whose end
    /// comes to `condition_answered`; returns with the lock held again.
    fn ask<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, RunState>,
        module: usize,
    ) -> MutexGuard<'a, RunState> {
        st.modules[module].condition = ConditionStage::Asking;
        self.submit_step(
            st,
            module,
            move |run| run.ask_condition(module),
            move |run, answer| run.condition_answered(module, answer),
            |slot| slot.condition == ConditionStage::Asking,
        )
    }

    /// Submits `task`, a step of `module` before its tasks (asking its condition, looking it
    /// up), as a job of its own of one task, whose end comes to `on_end`; keeps the job's
    /// canceller (for fail-fast, and for a driver helping on a worker) while `pending` says the
    /// module still waits for it. Returns with the lock held again.
    fn submit_step<'a, T: Send + 'static>(
        self: &'a Arc<Self>,
        st: MutexGuard<'a, RunState>,
        module: usize,
        task: impl FnOnce(&Run) -> T + Send + 'static,
        on_end: impl FnOnce(&Arc<Run>, Result<Vec<T>, JobError<T>>) + Send + 'static,
        pending: fn(&ModuleSlot) -> bool,
    ) -> MutexGuard<'a, RunState> {
        let Some(pool) = st.pool.clone() else {
            unreachable!("the run holds its pool until every module has ended");
        };
        drop(st);
        let step = {
            let run = self.clone();
            move || task(&run)
        };
        let submitted = pool.try_submit([step], 1);
        drop(pool);
        let Ok(job) = submitted else {
            // The pool was shut down: nothing of the module runs.
            let mut st = self.state.lock();
            let _not_a_failure = self.end(&mut st, module, ModuleState::Cancelled);
            return st;
        };
        let canceller = job.canceller();
        let run = self.clone();
        job.on_finish(move |result| on_end(&run, result));
        let st = self.state.lock();
        if pending(&st.modules[module]) {
            self.keep_canceller(st, module, canceller)
        } else {
            // The job ended already, and `on_end` has run.
            st
        }
    }

    /// The task of a condition's job, on a worker: asks the module's condition. A panic is the
    /// pool's to catch and report, as for any task.
    fn ask_condition(&self, module: usize) -> bool {
        let st = self.state.lock();
        let (Some(condition), Some(pool)) = (st.bodies[module].skip_if.clone(), st.pool.clone())
        else {
            unreachable!(
                "a module being asked has a condition, and the run holds the conditions and \
                 its pool until every module has ended"
            );
        };
        let inputs = self.inputs(&st, module, pool);
        drop(st);
        condition(&Context::new(inputs, 0))
    }

    /// Called by the pool when a module's condition job ended: ends the module, or puts it back
    /// on `ready` to be started.
    fn condition_answered(
        self: &Arc<Self>,
        module: usize,
        answer: Result<Vec<bool>, JobError<bool>>,
    ) {
        // The job's one task: its answer, or why it has none.
        let answer = match answer {
            Ok(mut answers) => answers.pop().ok_or(TaskError::Cancelled),
            Err(err) => err
                .into_results()
                .pop()
                .unwrap_or(Err(TaskError::Cancelled)),
        };
        let mut st = self.state.lock();
        let slot = &mut st.modules[module];
        slot.condition = ConditionStage::Answered;
        slot.canceller = None;
        let state = match answer {
            Ok(false) => None,
            Ok(true) => {
                slot.output = Some(Input::Skipped);
                Some(ModuleState::Skipped(SkipReason::Condition))
            }
            Err(TaskError::Panicked(message)) => {
                Some(ModuleState::Failed(vec![Failure::ConditionPanicked {
                    message,
                }]))
            }
            // Cancelled (a condition is a plain task: it neither fails nor has a deadline).
            Err(_) => Some(ModuleState::Cancelled),
        };
        match state {
            // The drainer starts it, or cancels it if the run is stopping.
            None => st.ready.push_back(module),
            Some(state) => {
                let cancels = self.end(&mut st, module, state);
                st = self.cancel_all(st, cancels);
            }
        }
        self.drain(st);
        self.wake_helper();
    }

    /// Keeps the canceller of a module's job just submitted and not ended yet, for fail-fast
    /// and for a driver helping on a worker; or cancels the job, if the run began stopping
    /// while it was submitted (the failure took only the cancellers it found).
    fn keep_canceller<'a>(
        &'a self,
        mut st: MutexGuard<'a, RunState>,
        module: usize,
        canceller: Canceller,
    ) -> MutexGuard<'a, RunState> {
        if st.stopping {
            drop(st);
            canceller.cancel();
            self.state.lock()
        } else {
            st.modules[module].canceller = Some(canceller);
            // A driver helping on a worker has a new job to run.
            self.wake_helper();
            st
        }
    }

    /// Submits the module's tasks as one job; returns with the lock held again.
    fn start<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, RunState>,
        module: usize,
    ) -> MutexGuard<'a, RunState> {
        let cap = self.modules[module].cap;
        let tasks = st.bodies[module].tasks.clone();
        let control = st.bodies[module].control.clone();
        let Some(pool) = st.pool.clone() else {
            unreachable!("the run holds its pool until every module has ended");
        };
        let inputs = self.inputs(&st, module, pool.clone());
        if st.modules[module].start.is_none() {
            // (A cached module started with its look-up.)
            st.modules[module].start = Some(self.now());
            self.emit(&st, module, None);
        }
        drop(st);
        let probe = Arc::new(ConcurrencyProbe::default());
        let on_end = {
            let run = self.clone();
            let probe = probe.clone();
            Box::new(move |outcome| run.job_ended(module, outcome, &probe))
        };
        // The run's later stages go before new runs' first stages: a pool finishes the runs it
        // started before it starts more (scheduler README, rule 10).
        let stage = (
            pool.run_rank(self.started),
            self.modules[module].dependencies.is_empty(),
        );
        let submitted = tasks.submit(&pool, cap, &control, stage, inputs, probe, on_end);
        drop((pool, tasks, control));
        let mut st = self.state.lock();
        match submitted {
            Ok(canceller) if st.modules[module].state.is_none() => {
                st = self.keep_canceller(st, module, canceller);
            }
            // The job ended already, inside `submit`.
            Ok(_) => {}
            // The pool was shut down.
            Err(_) => {
                let _not_a_failure = self.end(&mut st, module, ModuleState::Cancelled);
            }
        }
        st
    }

    /// Called by the pool when a module's job ended.
    fn job_ended(self: &Arc<Self>, module: usize, outcome: JobOutcome, probe: &ConcurrencyProbe) {
        #[cfg(feature = "cache")]
        let stored = self.store(module, &outcome);
        let mut st = self.state.lock();
        #[cfg(feature = "cache")]
        if let Some(stored) = stored {
            let slot = &mut st.modules[module];
            slot.digest = stored.digest;
            slot.stored_in_index = stored.in_index;
            if let CacheStatus::Ran { store_error, .. } = &mut slot.cache_status {
                *store_error = stored.error;
            }
        }
        st.modules[module].peak = probe.peak();
        let state = match outcome {
            JobOutcome::Done(output) => {
                let ty = self.modules[module].output_type;
                st.modules[module].output = Some(Input::Output(output, ty));
                ModuleState::Done
            }
            JobOutcome::Failed(failures) => ModuleState::Failed(failures),
            JobOutcome::Cancelled => ModuleState::Cancelled,
        };
        let cancels = self.end(&mut st, module, state);
        let st = self.cancel_all(st, cancels);
        self.drain(st);
        self.wake_helper();
    }

    /// Calls `cancels` with the lock released (a cancel may end a job on this thread).
    fn cancel_all<'a>(
        &'a self,
        st: MutexGuard<'a, RunState>,
        cancels: Vec<Canceller>,
    ) -> MutexGuard<'a, RunState> {
        if cancels.is_empty() {
            return st;
        }
        drop(st);
        for canceller in cancels {
            canceller.cancel();
        }
        self.state.lock()
    }

    /// Records that a module ended and readies its dependents. Returns the jobs to cancel, if
    /// this failure stops a fail-fast run.
    #[must_use]
    fn end(&self, st: &mut RunState, module: usize, state: ModuleState) -> Vec<Canceller> {
        let slot = &mut st.modules[module];
        if slot.start.is_some() {
            slot.end = Some(self.now());
        }
        slot.canceller = None;
        self.emit(st, module, Some(&state));
        let mut cancels = Vec::new();
        if state.is_failed() && self.failure_mode == FailureMode::FailFast && !st.stopping {
            st.stopping = true;
            cancels = st
                .modules
                .iter_mut()
                .filter_map(|m| m.canceller.take())
                .collect();
        }
        st.modules[module].state = Some(state);
        st.unended -= 1;
        for &dependent in &self.modules[module].dependents {
            st.waiting_for[dependent] -= 1;
            if st.waiting_for[dependent] == 0 {
                st.ready.push_back(dependent);
            }
        }
        cancels
    }
}

/// A run with a cache: looking modules up, storing their outputs, and a dry run's verdicts
/// (see `incremental.rs` for the steps).
#[cfg(feature = "cache")]
impl Run {
    /// A dry run's verdict on a ready module: what a run would do with it.
    fn dry_verdict(&self, st: &RunState, module: usize) -> Verdict {
        let planned = &self.modules[module];
        if self.cache.is_none() || planned.cache.is_none() {
            return Verdict::Plan(CachePlan::NotCached);
        }
        if st.modules[module].looked_up {
            // A miss; its plan was set when the look-up ended.
            return Verdict::End(ModuleState::Done);
        }
        let mut pending = None;
        for &dep in &planned.dependencies {
            let dependency = self.modules[dep].name.to_string();
            match &st.modules[dep].plan {
                _ if self.modules[dep].cache.is_none() => {
                    let why = crate::RunReason::DependencyNotCached { dependency };
                    return Verdict::Plan(CachePlan::Run(why));
                }
                Some(CachePlan::Run(_) | CachePlan::RunsIfChanged { .. }) => {
                    pending.get_or_insert(dependency);
                }
                _ => {}
            }
        }
        match pending {
            Some(dependency) => Verdict::Plan(CachePlan::RunsIfChanged { dependency }),
            None => Verdict::LookUp,
        }
    }

    /// Submits the module's look-up as a job of its own, one task of cap 1, whose end comes to
    /// `looked_up`; returns with the lock held again.
    fn look_up<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, RunState>,
        module: usize,
    ) -> MutexGuard<'a, RunState> {
        let slot = &mut st.modules[module];
        slot.looked_up = true;
        slot.looking = true;
        slot.start = Some(self.now());
        self.emit(&st, module, None);
        self.submit_step(
            st,
            module,
            move |run| run.look_up_task(module),
            move |run, found| run.looked_up(module, found),
            |slot| slot.looking,
        )
    }

    /// The task of a look-up's job, on a worker.
    fn look_up_task(&self, module: usize) -> LookUp {
        let planned = &self.modules[module];
        let st = self.state.lock();
        let dependencies: Vec<(Arc<str>, DependencyDigest)> = planned
            .dependencies
            .iter()
            .map(|&dep| {
                let slot = &st.modules[dep];
                let digest = match (&slot.output, slot.digest) {
                    (Some(Input::Skipped), _) => DependencyDigest::Skipped,
                    (_, Some(digest)) => DependencyDigest::Output(digest),
                    (_, None) => DependencyDigest::NotCached,
                };
                (self.modules[dep].name.clone(), digest)
            })
            .collect();
        drop(st);
        let (Some(cache), Some(spec)) = (&self.cache, &planned.cache) else {
            unreachable!("only a cached module of a run with a cache is looked up");
        };
        let shape = (planned.output_type, planned.task_count);
        cache.look_up(&planned.name, shape, spec, &dependencies)
    }

    /// Called by the pool when a module's look-up ended: ends the module with its stored
    /// output, or puts it back on `ready` to be started.
    fn looked_up(self: &Arc<Self>, module: usize, found: Result<Vec<LookUp>, JobError<LookUp>>) {
        let found = match found {
            Ok(mut found) => found.pop().ok_or(TaskError::Cancelled),
            Err(err) => err
                .into_results()
                .pop()
                .unwrap_or(Err(TaskError::Cancelled)),
        };
        let mut st = self.state.lock();
        let slot = &mut st.modules[module];
        slot.looking = false;
        slot.canceller = None;
        let (why, record) = match found {
            Ok(LookUp::Hit(output, digest)) => {
                slot.output = Some(Input::Output(output, self.modules[module].output_type));
                slot.digest = Some(digest);
                slot.cache_status = CacheStatus::Hit;
                slot.plan = Some(CachePlan::Cached);
                let cancels = self.end(&mut st, module, ModuleState::Done);
                let st = self.cancel_all(st, cancels);
                self.drain(st);
                self.wake_helper();
                return;
            }
            Ok(LookUp::Miss(why, record)) => (why, record),
            // A stored output whose decoding panicked (a `Deserialize` of the user's): run the
            // module, and store its output anew.
            Err(TaskError::Panicked(message)) => {
                let detail = format!("decoding it panicked: {message}");
                (crate::RunReason::EntryCorrupt { detail }, None)
            }
            Err(_) => {
                let cancels = self.end(&mut st, module, ModuleState::Cancelled);
                let st = self.cancel_all(st, cancels);
                self.drain(st);
                self.wake_helper();
                return;
            }
        };
        slot.record = record;
        slot.plan = Some(CachePlan::Run(why.clone()));
        slot.cache_status = CacheStatus::Ran {
            why,
            store_error: None,
        };
        // The drainer starts it (or, in a dry run, ends it with its plan).
        st.ready.push_back(module);
        self.drain(st);
        self.wake_helper();
    }

    /// On the worker that ended a cached module's job with every task done: stores its output
    /// under its fingerprint (if its look-up found one), and returns the output's digest and
    /// the error that kept it from being stored, if any. `None` if the module is not cached.
    fn store(&self, module: usize, outcome: &JobOutcome) -> Option<super::incremental::Stored> {
        let (JobOutcome::Done(output), Some(cache), Some(spec)) =
            (outcome, &self.cache, &self.modules[module].cache)
        else {
            return None;
        };
        let record = self.state.lock().modules[module].record.take();
        Some(cache.store(&self.modules[module].name, record, &spec.codec, output))
    }
}
