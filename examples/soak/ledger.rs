//! Ledgers: what a job's tasks record as they run (runs, drops, how many run at once), and the
//! checks of every outcome against them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread::{self, ThreadId};
use std::time::Instant;

use jobpool::{GaveUp, JobError, JobHandle, JobId, Limiter, TaskContext, TaskError};

use crate::monitor::{fail, lock, tick, PanicsOnDrop, ON_PURPOSE};
use crate::plan::{Act, Attempt, JobPlan, LimiterPlan, RetryPlan, PERMANENT};
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

/// A limiter shared by some of a round's jobs, and how many threads run its tasks.
///
/// A task waiting on a sub-job under the same limiter lends its slot to the sub-job's tasks
/// that its thread runs while it waits, so the cap bounds the threads running the limiter's
/// tasks (counting nested ones once), not the tasks: the meter counts threads.
pub(crate) struct LimitMeter {
    pub(crate) id: usize,
    pub(crate) limiter: Limiter,
    /// The largest cap the limiter ever had: raised before a raise takes effect.
    cap_max: AtomicUsize,
    /// How many of the limiter's tasks each thread is in (nested ones included).
    depth: Mutex<HashMap<ThreadId, usize>>,
    peak: AtomicUsize,
}

impl LimitMeter {
    pub(crate) fn new(id: usize, plan: &LimiterPlan) -> LimitMeter {
        let mut limiter = Limiter::new().with_cap(plan.cap);
        if let Some(rate) = plan.rate {
            limiter = limiter.with_rate(rate);
        }
        LimitMeter {
            id,
            limiter,
            cap_max: AtomicUsize::new(plan.cap),
            depth: Mutex::default(),
            peak: AtomicUsize::new(0),
        }
    }

    /// Sets the limiter's cap, recording a raise before it can take effect.
    pub(crate) fn set_cap(&self, cap: usize) {
        self.cap_max.fetch_max(cap, SeqCst);
        self.limiter.set_cap(Some(cap));
        tick();
    }

    /// A task under the limiter starts on this thread: checks the cap.
    fn enter(&self, task: &str) {
        let mut depth = lock(&self.depth);
        *depth.entry(thread::current().id()).or_insert(0) += 1;
        let threads = depth.len();
        self.peak.fetch_max(threads, SeqCst);
        let cap = self.cap_max.load(SeqCst);
        if threads > cap {
            fail(format_args!(
                "limiter cap: {task} started while tasks under limiter {} ran on {} other \
                 threads; its cap was never above {cap}",
                self.id,
                threads - 1
            ));
        }
    }

    fn exit(&self) {
        let mut depth = lock(&self.depth);
        let me = thread::current().id();
        let left = depth.get_mut(&me).map(|d| {
            *d -= 1;
            *d
        });
        if left == Some(0) {
            depth.remove(&me);
        }
    }

    /// The final check: the limiter's own count agrees.
    ///
    /// Every task and result is gone when this runs, but a worker gives a slot back a moment
    /// after its last task returns: a job whose tasks all failed leaves nothing behind to wait
    /// for, and a pool dropped by one of its own tasks is not joined. So the count is given a
    /// second to settle; a slot that was really kept stays counted.
    pub(crate) fn check_settled(&self) {
        let cap = self.cap_max.load(SeqCst);
        let settle_by = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while self.limiter.running() != 0 && std::time::Instant::now() < settle_by {
            thread::yield_now();
        }
        let (peak, running) = (self.limiter.peak_running(), self.limiter.running());
        if peak > cap || running != 0 {
            fail(format_args!(
                "limiter {}: peak_running {peak} (cap never above {cap}), running {running} \
                 at the end of the round",
                self.id
            ));
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "limiter {}: {:?}, cap at most {}, tasks on {} threads now, {} at most",
            self.id,
            self.limiter,
            self.cap_max.load(SeqCst),
            lock(&self.depth).len(),
            self.peak.load(SeqCst)
        )
    }
}

/// What a task's outcome should be.
#[derive(Clone, PartialEq)]
enum Expected {
    Value,
    /// A panic with [`JobLedger::panic_message`].
    Panic,
    /// A panic with a payload that is not a string.
    PanicWithPayload,
    /// A fallible task: attempt `n` ends as the `n`th of these (the last repeats).
    Attempts(Vec<Attempt>),
}

impl Expected {
    /// How attempt `attempt` (from 1) of a fallible task ends.
    fn attempt(&self, attempt: usize) -> Attempt {
        match self {
            Expected::Attempts(ends) => ends[(attempt.max(1) - 1).min(ends.len() - 1)],
            Expected::Value => Attempt::Ok,
            Expected::Panic => Attempt::Panic,
            Expected::PanicWithPayload => Attempt::PanicWithPanickyPayload,
        }
    }
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
    /// The limiter the job is under, if any.
    limiter: Option<Arc<LimitMeter>>,
    /// The job's retry policy (fallible jobs).
    retry: Option<RetryPlan>,
    fail_fast: bool,
    /// The job's deadline, set before it is submitted: tasks may time out once it passed.
    pub(crate) deadline: OnceLock<Instant>,
    /// Set before any task of the job fails or panics: a fail-fast job may cancel the rest.
    failed_any: AtomicBool,
    cap_now: AtomicUsize,
    /// The largest cap the job ever had: raised before a raise takes effect.
    cap_max: AtomicUsize,
    running: AtomicUsize,
    peak: AtomicUsize,
    pub(crate) runs: Vec<AtomicUsize>,
    ends: Vec<AtomicUsize>,
    drops: Vec<AtomicUsize>,
    /// One more than the task's runs when its outcome was reported; 0 until then.
    reported: Vec<AtomicUsize>,
    /// Threads blocked right now taking the job's outcome (`wait`, polls, completions).
    pub(crate) waiting: AtomicUsize,
    pub(crate) results_made: AtomicUsize,
    results_dropped: AtomicUsize,
    /// Set before anything cancels the job.
    pub(crate) cancel_requested: AtomicBool,
    pub(crate) accepted: AtomicBool,
    /// The pool's id of the job, set before `accepted`: the events tell of it.
    pub(crate) job_id: OnceLock<JobId>,
}

impl JobLedger {
    /// The ledger of job `id`, about to be submitted as `plan` says.
    pub(crate) fn new(
        id: usize,
        origin: &str,
        plan: &JobPlan,
        alive: &Arc<Alive>,
        limiters: &[Arc<LimitMeter>],
    ) -> JobLedger {
        let counters = || (0..plan.tasks.len()).map(|_| AtomicUsize::new(0)).collect();
        let control = plan.control.as_ref();
        let mut label = format!(
            "job {id} ({origin}, {} tasks, cap {}, {:?}",
            plan.tasks.len(),
            plan.cap,
            plan.consume
        );
        if let Some(control) = control {
            let _ = write!(label, ", {control:?}");
        }
        label.push(')');
        JobLedger {
            id,
            label,
            expected: plan
                .tasks
                .iter()
                .map(|task| match task.act {
                    _ if !task.attempts.is_empty() => Expected::Attempts(task.attempts.clone()),
                    Act::Panic => Expected::Panic,
                    Act::PanicWithPanickyPayload => Expected::PanicWithPayload,
                    _ => Expected::Value,
                })
                .collect(),
            acts: plan.tasks.iter().map(|task| task.act.name()).collect(),
            alive: alive.clone(),
            limiter: control.and_then(|c| c.limiter).map(|l| limiters[l].clone()),
            retry: control.and_then(|c| c.retry.clone()),
            fail_fast: control.is_some_and(|c| c.fail_fast),
            deadline: OnceLock::new(),
            failed_any: AtomicBool::new(false),
            cap_now: AtomicUsize::new(plan.cap),
            cap_max: AtomicUsize::new(plan.cap),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            runs: counters(),
            ends: counters(),
            drops: counters(),
            reported: counters(),
            waiting: AtomicUsize::new(0),
            results_made: AtomicUsize::new(0),
            results_dropped: AtomicUsize::new(0),
            cancel_requested: AtomicBool::new(false),
            accepted: AtomicBool::new(false),
            job_id: OnceLock::new(),
        }
    }

    pub(crate) fn total(&self) -> usize {
        self.expected.len()
    }

    pub(crate) fn panic_message(&self, index: usize) -> String {
        format!("{ON_PURPOSE}: task {index} of job {}", self.id)
    }

    /// The message of attempt `attempt` of fallible task `index`, which fails or panics
    /// (`failure` says how).
    fn failure_message(&self, index: usize, attempt: usize, failure: Attempt) -> String {
        let permanent = if failure == Attempt::Permanent {
            PERMANENT
        } else {
            "retryable"
        };
        format!(
            "{ON_PURPOSE}: attempt {attempt} of task {index} of job {}, {permanent}",
            self.id
        )
    }

    /// The most attempts a task of the job gets.
    fn max_attempts(&self) -> usize {
        self.retry.as_ref().map_or(1, |r| r.attempts as usize)
    }

    /// Whether attempt `attempt` of a fallible task, ending as `end`, is to be retried (or
    /// reported as given up because of the retry budget).
    fn retryable(&self, end: Attempt, attempt: usize) -> bool {
        let Some(retry) = &self.retry else {
            return false;
        };
        let worth_it = match end {
            Attempt::Ok => false,
            Attempt::Err => true,
            Attempt::Permanent => !retry.permanent_errors,
            Attempt::Panic | Attempt::PanicWithPanickyPayload => retry.retry_panics,
        };
        worth_it && attempt < retry.attempts as usize
    }

    /// Task `index` of the job starts (attempt `attempt`; 1 for a plain task): checks the
    /// job's cap and its limiter's. The guard ends it.
    fn enter(&self, index: usize, attempt: usize) -> Inside<'_> {
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
        if let Some(limiter) = &self.limiter {
            limiter.enter(&format!("task {index} of {}", self.label));
        }
        let meant_to_panic = self.expected[index].attempt(attempt).panics();
        if meant_to_panic {
            self.failed_any.store(true, SeqCst);
        }
        Inside {
            ledger: self,
            index,
            meant_to_panic,
        }
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
        self.cancel_requested.load(SeqCst)
            || round.cancel_all.load(SeqCst)
            || (self.fail_fast && self.failed_any.load(SeqCst))
    }

    /// Whether a task may be reported timed out.
    fn deadline_passed(&self) -> bool {
        self.deadline.get().is_some_and(|d| Instant::now() >= *d)
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
        if self.reported[index].swap(ran + 1, SeqCst) != 0 {
            fail(format_args!("{task}: its outcome was reported twice"));
        }
        if let Expected::Attempts(_) = self.expected[index] {
            return self.check_fallible(&task, index, ran, outcome, round);
        }
        match (outcome, &self.expected[index]) {
            (Ok(value), Expected::Value) => self.check_value(&task, index, value, 1),
            (Err(TaskError::Panicked(_)), Expected::PanicWithPayload) if ran == 1 => {}
            (Err(TaskError::Panicked(message)), Expected::Panic) if ran == 1 => {
                if *message != self.panic_message(index) {
                    fail(format_args!(
                        "{task}: reported the panic message {message:?}"
                    ));
                }
            }
            (Err(TaskError::Cancelled), _) if ran == 0 => self.check_cancelled(&task, round),
            (Err(TaskError::TimedOut), _) if ran == 0 => self.check_timed_out(&task),
            (outcome, expected) => {
                let expected = match expected {
                    Expected::Value => "a value",
                    _ => "a panic",
                };
                fail(format_args!(
                    "{task}: reported {}; it ran {ran} times, meant to give {expected}",
                    describe_outcome(outcome)
                ));
            }
        }
    }

    /// Checks the outcome of a fallible task that ran `ran` attempts.
    fn check_fallible(
        &self,
        task: &str,
        index: usize,
        ran: usize,
        outcome: &Result<Yield, TaskError>,
        round: &RoundState,
    ) {
        let end = self.expected[index].attempt(ran);
        // A task whose last attempt failed in a way worth retrying waits for its next attempt,
        // which a cancel or the deadline may stop; the retry budget may refuse it.
        let retryable = ran > 0 && self.retryable(end, ran);
        let budget = self.retry.as_ref().is_some_and(|r| r.max_waiting.is_some());
        let wrong = |why: &str| -> ! {
            fail(format_args!(
                "{task}: reported {}; it ran {ran} attempts (at most {}), the last meant to end \
                 as {end:?}: {why}",
                describe_outcome(outcome),
                self.max_attempts()
            ))
        };
        if ran > self.max_attempts() {
            wrong("more attempts than its policy allows");
        }
        match outcome {
            Ok(value) if ran > 0 && end == Attempt::Ok => self.check_value(task, index, value, ran),
            Err(TaskError::Failed(failure))
                if ran > 0 && matches!(end, Attempt::Err | Attempt::Permanent) =>
            {
                if failure.attempts() as usize != ran {
                    wrong(&format!("reported {} attempts", failure.attempts()));
                }
                let message = failure.error().to_string();
                if message != self.failure_message(index, ran, end) {
                    wrong(&format!("its error was {message:?}"));
                }
                let permanent = end == Attempt::Permanent
                    && self.retry.as_ref().is_some_and(|r| r.permanent_errors);
                let gave_up = if permanent {
                    GaveUp::Permanent
                } else if retryable {
                    if !budget {
                        wrong("it was to be retried, with no retry budget to refuse it");
                    }
                    GaveUp::RetryBudget
                } else {
                    GaveUp::AttemptsUsedUp
                };
                if failure.gave_up() != gave_up {
                    wrong(&format!("it should have given up with {gave_up:?}"));
                }
            }
            Err(TaskError::Panicked(message)) if ran > 0 && end.panics() => {
                if retryable && !budget {
                    wrong("it was to be retried, with no retry budget to refuse it");
                }
                if end == Attempt::Panic && *message != self.failure_message(index, ran, end) {
                    wrong("the wrong panic message");
                }
            }
            Err(TaskError::Cancelled) if ran == 0 || retryable => self.check_cancelled(task, round),
            Err(TaskError::TimedOut) if ran == 0 || retryable => self.check_timed_out(task),
            _ => wrong("not what its attempts did"),
        }
    }

    fn check_value(&self, task: &str, index: usize, value: &Yield, attempt: usize) {
        if (value.job, value.index, value.attempt) != (self.id, index, attempt) {
            fail(format_args!(
                "{task}: its result is that of attempt {} of task {} of job {}, not of \
                 attempt {attempt}",
                value.attempt, value.index, value.job
            ));
        }
    }

    fn check_cancelled(&self, task: &str, round: &RoundState) {
        if !self.may_be_cancelled(round) {
            fail(format_args!(
                "{task}: reported cancelled, yet nothing cancelled it"
            ));
        }
    }

    fn check_timed_out(&self, task: &str) {
        if !self.deadline_passed() {
            fail(format_args!(
                "{task}: reported timed out, yet its job's deadline ({:?}) has not passed",
                self.deadline.get()
            ));
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
            let reported = self.reported[index].load(SeqCst);
            if reported != 0 && reported != runs + 1 {
                fail(format_args!(
                    "{task}: ran {runs} times, {} when its outcome was reported",
                    reported - 1
                ));
            }
            if accepted && runs == 0 && !self.may_be_cancelled(round) && !self.deadline_passed() {
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
        self.waiting.load(SeqCst) > 0
            || self.drops.iter().any(|d| d.load(SeqCst) == 0)
            || self.results_made.load(SeqCst) != self.results_dropped.load(SeqCst)
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
        let (made, dropped) = (
            self.results_made.load(SeqCst),
            self.results_dropped.load(SeqCst),
        );
        if made != dropped {
            let _ = write!(
                text,
                "; {} of its {made} results not dropped",
                made - dropped
            );
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
struct Inside<'a> {
    ledger: &'a JobLedger,
    index: usize,
    meant_to_panic: bool,
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        let (ledger, index) = (self.ledger, self.index);
        if thread::panicking() && !self.meant_to_panic {
            fail(format_args!(
                "task {index} of {} ({}) unwound from a panic it did not raise: a panic escaped \
                 from the pool's code into the task (a wait or graph run inside it)",
                ledger.label, ledger.acts[index]
            ));
        }
        if let Some(limiter) = &ledger.limiter {
            limiter.exit();
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
        let inside = ledger.enter(self.index, 1);
        work(&ledger, self.index);
        drop(inside);
        Yield::new(ledger, self.index, 1)
    }

    /// Runs one attempt of a fallible task: `work` on the first attempt only, then ends as
    /// the plan says for this attempt. Checks that attempts come one at a time, numbered in
    /// order.
    pub(crate) fn attempt(
        &mut self,
        cx: &TaskContext<'_>,
        work: impl FnOnce(&JobLedger, usize),
    ) -> Result<Yield, String> {
        self.ran = true;
        let (ledger, index) = (self.ledger.clone(), self.index);
        let task = format!("task {index} of {}", ledger.label);
        let running = ledger.runs[index].load(SeqCst) - ledger.ends[index].load(SeqCst);
        let attempt = ledger.runs[index].fetch_add(1, SeqCst) + 1;
        if running != 0 || cx.attempt() as usize != attempt || cx.index() != index {
            fail(format_args!(
                "{task}: attempt {attempt} started with {running} running; the context says \
                 attempt {} of task {}",
                cx.attempt(),
                cx.index()
            ));
        }
        let inside = ledger.enter(index, attempt);
        if attempt == 1 {
            work(&ledger, index);
        }
        let end = ledger.expected[index].attempt(attempt);
        match end {
            Attempt::Ok => {
                drop(inside);
                Ok(Yield::new(ledger, index, attempt))
            }
            Attempt::Err | Attempt::Permanent => {
                ledger.failed_any.store(true, SeqCst);
                drop(inside);
                Err(ledger.failure_message(index, attempt, end))
            }
            Attempt::Panic => panic!("{}", ledger.failure_message(index, attempt, end)),
            Attempt::PanicWithPanickyPayload => std::panic::panic_any(PanicsOnDrop),
        }
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
    /// The attempt that made it (1 for a plain task).
    attempt: usize,
    ledger: Arc<JobLedger>,
    _alive: AliveToken,
}

impl Yield {
    fn new(ledger: Arc<JobLedger>, index: usize, attempt: usize) -> Yield {
        ledger.results_made.fetch_add(1, SeqCst);
        Yield {
            job: ledger.id,
            index,
            attempt,
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

fn describe_outcome(outcome: &Result<Yield, TaskError>) -> String {
    match outcome {
        Ok(_) => "a value".to_owned(),
        Err(err) => err.to_string(),
    }
}
