//! Ledgers: what a job's tasks record as they run (runs, drops, how many run at once), and the
//! checks of every outcome against them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

use jobpool::{JobError, JobHandle, TaskError};

use crate::monitor::{fail, lock, tick, ON_PURPOSE};
use crate::plan::{Act, JobPlan};
use crate::round::RoundState;

/// Counts the objects a round waits for before its final checks (tasks not yet dropped,
/// results not yet dropped, callbacks not yet run).
#[derive(Default)]
pub(crate) struct Alive {
    pub(crate) count: AtomicUsize,
    lock: Mutex<()>,
    none_left: Condvar,
}

impl Alive {
    /// Blocks until every object counted is gone.
    pub(crate) fn wait_until_none(&self) {
        let mut guard = lock(&self.lock);
        while self.count.load(SeqCst) != 0 {
            guard = self
                .none_left
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// One object counted in [`Alive`] until dropped.
pub(crate) struct AliveToken(Arc<Alive>);

impl AliveToken {
    pub(crate) fn new(alive: &Arc<Alive>) -> AliveToken {
        alive.count.fetch_add(1, SeqCst);
        AliveToken(alive.clone())
    }
}

impl Drop for AliveToken {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, SeqCst) == 1 {
            // Under the lock, so a waiter between its check and its wait cannot miss this.
            let _guard = lock(&self.0.lock);
            self.0.none_left.notify_all();
        }
        tick();
    }
}

/// What a task's outcome should be.
#[derive(Clone, Copy, PartialEq)]
enum Expected {
    Value,
    /// A panic with [`JobLedger::panic_message`].
    Panic,
    /// A panic with a payload that is not a string.
    PanicWithPayload,
}

/// What one job's tasks record as they run; read by the checks, and by the watchdog.
pub(crate) struct JobLedger {
    pub(crate) id: usize,
    /// Who submitted it and how its outcome is taken, for reports.
    pub(crate) label: String,
    expected: Vec<Expected>,
    /// What each task does, for the hang report.
    acts: Vec<&'static str>,
    alive: Arc<Alive>,
    cap_now: AtomicUsize,
    /// The largest cap the job ever had: raised before a raise takes effect.
    cap_max: AtomicUsize,
    running: AtomicUsize,
    peak: AtomicUsize,
    pub(crate) runs: Vec<AtomicUsize>,
    ends: Vec<AtomicUsize>,
    drops: Vec<AtomicUsize>,
    /// Threads blocked right now taking the job's outcome (`wait`, polls, completions).
    pub(crate) waiting: AtomicUsize,
    results_made: AtomicUsize,
    results_dropped: AtomicUsize,
    /// Set before anything cancels the job.
    pub(crate) cancel_requested: AtomicBool,
    pub(crate) accepted: AtomicBool,
}

impl JobLedger {
    /// The ledger of job `id`, about to be submitted as `plan` says.
    pub(crate) fn new(id: usize, origin: &str, plan: &JobPlan, alive: &Arc<Alive>) -> JobLedger {
        let counters = || (0..plan.tasks.len()).map(|_| AtomicUsize::new(0)).collect();
        JobLedger {
            id,
            label: format!(
                "job {id} ({origin}, {} tasks, cap {}, {:?})",
                plan.tasks.len(),
                plan.cap,
                plan.consume
            ),
            expected: plan
                .tasks
                .iter()
                .map(|task| match task.act {
                    Act::Panic => Expected::Panic,
                    Act::PanicWithPanickyPayload => Expected::PanicWithPayload,
                    _ => Expected::Value,
                })
                .collect(),
            acts: plan.tasks.iter().map(|task| task.act.name()).collect(),
            alive: alive.clone(),
            cap_now: AtomicUsize::new(plan.cap),
            cap_max: AtomicUsize::new(plan.cap),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            runs: counters(),
            ends: counters(),
            drops: counters(),
            waiting: AtomicUsize::new(0),
            results_made: AtomicUsize::new(0),
            results_dropped: AtomicUsize::new(0),
            cancel_requested: AtomicBool::new(false),
            accepted: AtomicBool::new(false),
        }
    }

    fn total(&self) -> usize {
        self.expected.len()
    }

    pub(crate) fn panic_message(&self, index: usize) -> String {
        format!("{ON_PURPOSE}: task {index} of job {}", self.id)
    }

    /// Task `index` of the job starts: checks the cap. The guard ends it.
    fn enter(&self, index: usize) -> Inside<'_> {
        tick();
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        let cap = self.cap_max.load(SeqCst);
        if now > cap {
            fail(format_args!(
                "cap: {now} tasks of {} ran at once; its cap was never above {cap}",
                self.label
            ));
        }
        Inside(self, index)
    }

    /// Sets the job's cap, recording a raise before it can take effect.
    pub(crate) fn set_cap(&self, handle: &JobHandle<Yield>, limit: usize) {
        self.cap_max.fetch_max(limit, SeqCst);
        self.cap_now.store(limit, SeqCst);
        if let Err(err) = handle.set_cap(limit) {
            fail(format_args!("set_cap({limit}) on {}: {err}", self.label));
        }
        tick();
    }

    /// Whether a task may be reported cancelled.
    fn may_be_cancelled(&self, round: &RoundState) -> bool {
        self.cancel_requested.load(SeqCst) || round.cancel_all.load(SeqCst)
    }

    /// Checks what `wait` (or an `on_finish` callback) was given.
    pub(crate) fn check_results(
        &self,
        results: Result<Vec<Yield>, JobError<Yield>>,
        round: &RoundState,
    ) {
        let outcomes: Vec<Result<Yield, TaskError>> = match results {
            Ok(values) => values.into_iter().map(Ok).collect(),
            Err(err) => {
                if err.succeeded() == err.tasks() {
                    fail(format_args!(
                        "{}: a JobError, yet no task failed",
                        self.label
                    ));
                }
                err.into_results()
            }
        };
        if outcomes.len() != self.total() {
            fail(format_args!(
                "{}: {} outcomes for {} tasks",
                self.label,
                outcomes.len(),
                self.total()
            ));
        }
        for (index, outcome) in outcomes.iter().enumerate() {
            self.check_outcome(index, outcome, round);
        }
    }

    /// Checks one task's outcome against what the task did.
    fn check_outcome(&self, index: usize, outcome: &Result<Yield, TaskError>, round: &RoundState) {
        let task = format!("task {index} of {}", self.label);
        let ran = self.runs[index].load(SeqCst);
        match (outcome, self.expected[index]) {
            (Ok(value), Expected::Value) => {
                if (value.job, value.index) != (self.id, index) {
                    fail(format_args!(
                        "{task}: its result is that of task {} of job {}",
                        value.index, value.job
                    ));
                }
            }
            (Err(TaskError::Panicked(_)), Expected::PanicWithPayload) if ran == 1 => {}
            (Err(TaskError::Panicked(message)), Expected::Panic) if ran == 1 => {
                if *message != self.panic_message(index) {
                    fail(format_args!(
                        "{task}: reported the panic message {message:?}"
                    ));
                }
            }
            (Err(TaskError::Cancelled), _) if ran == 0 => {
                if !self.may_be_cancelled(round) {
                    fail(format_args!(
                        "{task}: reported cancelled, yet nothing cancelled it"
                    ));
                }
            }
            (outcome, _) => {
                let outcome = match outcome {
                    Ok(_) => "a value".to_owned(),
                    Err(err) => err.to_string(),
                };
                let expected = match self.expected[index] {
                    Expected::Value => "a value",
                    _ => "a panic",
                };
                fail(format_args!(
                    "{task}: reported {outcome}; it ran {ran} times, meant to give {expected}"
                ));
            }
        }
    }

    /// The final checks, once every task and result of the round has been dropped.
    pub(crate) fn check_settled(&self, round: &RoundState) {
        let accepted = self.accepted.load(SeqCst);
        for index in 0..self.total() {
            let (runs, drops) = (
                self.runs[index].load(SeqCst),
                self.drops[index].load(SeqCst),
            );
            let task = format!("task {index} of {}", self.label);
            if drops != 1 {
                fail(format_args!("{task}: dropped {drops} times"));
            }
            if !accepted && runs > 0 {
                fail(format_args!("{task}: ran, yet its job was refused"));
            }
            if accepted && runs == 0 && !self.may_be_cancelled(round) {
                fail(format_args!(
                    "{task}: never ran, yet nothing cancelled it (the round ended with {})",
                    round.ending()
                ));
            }
        }
        let (made, dropped) = (
            self.results_made.load(SeqCst),
            self.results_dropped.load(SeqCst),
        );
        if made != dropped {
            fail(format_args!(
                "{}: {made} results made, {dropped} dropped",
                self.label
            ));
        }
    }

    /// Whether the job is not over: a task not yet dropped (not run, or running), or a
    /// thread still blocked taking its outcome.
    pub(crate) fn in_flight(&self) -> bool {
        self.waiting.load(SeqCst) > 0 || self.drops.iter().any(|d| d.load(SeqCst) == 0)
    }

    /// How far the job got, for the hang report.
    pub(crate) fn describe(&self, round: &RoundState) -> String {
        let count =
            |counters: &[AtomicUsize]| counters.iter().filter(|c| c.load(SeqCst) > 0).count();
        let mut text = format!(
            "{}: {} of {} tasks started, {} ended, {} dropped; cap {} (at most {})",
            self.label,
            count(&self.runs),
            self.total(),
            count(&self.ends),
            count(&self.drops),
            self.cap_now.load(SeqCst),
            self.cap_max.load(SeqCst),
        );
        if self.cancel_requested.load(SeqCst) {
            text.push_str("; cancel requested");
        }
        let dropped_unrun = (0..self.total())
            .filter(|&i| self.drops[i].load(SeqCst) > 0 && self.runs[i].load(SeqCst) == 0)
            .count();
        if dropped_unrun > 0 && !self.may_be_cancelled(round) {
            let _ = write!(
                text,
                "; {dropped_unrun} tasks dropped unrun, yet nothing cancelled it"
            );
        }
        let running = (0..self.total())
            .filter(|&i| self.runs[i].load(SeqCst) > self.ends[i].load(SeqCst))
            .map(|i| format!("task {i} ({})", self.acts[i]))
            .collect::<Vec<_>>();
        let pending = (0..self.total())
            .filter(|&i| self.drops[i].load(SeqCst) == 0 && self.runs[i].load(SeqCst) == 0)
            .count();
        if !running.is_empty() {
            let _ = write!(text, "; running: {}", running.join(", "));
        } else if pending > 0 {
            let _ = write!(text, "; {pending} tasks not started, none running");
        }
        if self.waiting.load(SeqCst) > 0 {
            if self.ends.iter().all(|e| e.load(SeqCst) > 0) {
                text.push_str("; a thread still waits for its outcome, though every task ended");
            } else {
                text.push_str("; a thread waits for its outcome");
            }
        }
        text
    }
}

/// A task of a job is running.
struct Inside<'a>(&'a JobLedger, usize);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        let Inside(ledger, index) = *self;
        if thread::panicking() && ledger.expected[index] == Expected::Value {
            fail(format_args!(
                "task {index} of {} ({}) unwound from a panic it did not raise: a panic escaped \
                 from the pool's code into the task (a wait or graph run inside it)",
                ledger.label, ledger.acts[index]
            ));
        }
        ledger.running.fetch_sub(1, SeqCst);
        ledger.ends[index].fetch_add(1, SeqCst);
        tick();
    }
}

/// What a task owns: it records the task's run and its drop (run or not). If the task is
/// dropped unrun and `panics_if_dropped_unrun`, its drop panics.
pub(crate) struct TaskProbe {
    ledger: Arc<JobLedger>,
    index: usize,
    panics_if_dropped_unrun: bool,
    ran: bool,
    _alive: AliveToken,
}

impl TaskProbe {
    /// The probe of task `index` of the job `ledger` records.
    pub(crate) fn new(
        ledger: &Arc<JobLedger>,
        index: usize,
        panics_if_dropped_unrun: bool,
    ) -> TaskProbe {
        TaskProbe {
            ledger: ledger.clone(),
            index,
            panics_if_dropped_unrun,
            ran: false,
            _alive: AliveToken::new(&ledger.alive),
        }
    }

    /// Runs the task's `work`, counting the run and checking the cap; returns its result.
    pub(crate) fn run(mut self, work: impl FnOnce(&JobLedger, usize)) -> Yield {
        self.ran = true;
        let ledger = self.ledger.clone();
        if ledger.runs[self.index].fetch_add(1, SeqCst) > 0 {
            fail(format_args!(
                "task {} of {} ran twice",
                self.index, ledger.label
            ));
        }
        let inside = ledger.enter(self.index);
        work(&ledger, self.index);
        drop(inside);
        Yield::new(ledger, self.index)
    }
}

impl Drop for TaskProbe {
    fn drop(&mut self) {
        self.ledger.drops[self.index].fetch_add(1, SeqCst);
        if self.panics_if_dropped_unrun && !self.ran && !thread::panicking() {
            panic!(
                "{ON_PURPOSE}: task {} of job {} dropped unrun",
                self.index, self.ledger.id
            );
        }
    }
}

/// A task's result: says which task made it, and counts its own drop.
pub(crate) struct Yield {
    job: usize,
    index: usize,
    ledger: Arc<JobLedger>,
    _alive: AliveToken,
}

impl Yield {
    fn new(ledger: Arc<JobLedger>, index: usize) -> Yield {
        ledger.results_made.fetch_add(1, SeqCst);
        Yield {
            job: ledger.id,
            index,
            _alive: AliveToken::new(&ledger.alive),
            ledger,
        }
    }
}

impl Drop for Yield {
    fn drop(&mut self) {
        self.ledger.results_dropped.fetch_add(1, SeqCst);
    }
}

/// The outcomes a `Completions` consumer has seen.
pub(crate) struct Seen<'a> {
    ledger: &'a JobLedger,
    seen: Vec<bool>,
}

impl<'a> Seen<'a> {
    pub(crate) fn new(ledger: &'a JobLedger) -> Seen<'a> {
        Seen {
            ledger,
            seen: vec![false; ledger.total()],
        }
    }

    pub(crate) fn record(
        &mut self,
        index: usize,
        outcome: &Result<Yield, TaskError>,
        round: &RoundState,
    ) {
        if self.seen.get(index) != Some(&false) {
            fail(format_args!(
                "{}: completions reported task {index} twice, or out of range",
                self.ledger.label
            ));
        }
        self.seen[index] = true;
        self.ledger.check_outcome(index, outcome, round);
    }

    pub(crate) fn check_complete(&self) {
        let seen = self.seen.iter().filter(|s| **s).count();
        if seen != self.ledger.total() {
            fail(format_args!(
                "{}: completions ended after {seen} of {} tasks",
                self.ledger.label,
                self.ledger.total()
            ));
        }
    }
}
