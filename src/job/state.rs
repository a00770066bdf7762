//! A job's state under its lock: pending tasks, tokens, and every task's outcome.

use std::any::{Any, TypeId};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::task::Waker;
use std::time::Duration;

use super::task::RetryCause;
use super::Next;
use crate::error::{GaveUp, JobError, TaskError, TaskFailure};
use crate::observe::{Counts, TaskOutcome};
use crate::sync::Instant;

/// The named states of one task's result slot.
pub(crate) enum Slot<T> {
    /// Not finished: pending, or claimed by a worker that has not reported it yet.
    Waiting,
    /// Ran and returned this value.
    Done(T),
    /// Ran and panicked; the message is in `JobState::panics`.
    Panicked,
    /// Never started.
    Cancelled,
    /// Failed for good; the failure is in `JobState::failures`.
    Failed,
    /// Not started when the job's deadline passed.
    TimedOut,
    /// Reported and handed to the user already (through `Completions`).
    Taken,
}

/// The outcomes of one chunk of claimed tasks, gathered without a lock and recorded at once.
///
/// Values go in `values`; the rarer failures go on the side, so that the common path writes
/// one value per task, and nothing at all for tasks that return `()`.
pub(crate) struct ChunkOutcomes<F, T> {
    /// The values of the tasks that returned one, in order: a task's offset in the chunk is
    /// its place here plus the failures before it. (No `Option` per task: for tasks that
    /// return `()`, pushing a value is adding one to a length.)
    values: Vec<T>,
    /// `(offset in the chunk, failure)`, in order.
    pub(crate) failures: Vec<(usize, Failure<F>)>,
}

/// Why a claimed task has no value (yet).
pub(crate) enum Failure<F> {
    Panicked(String),
    Cancelled,
    /// Not started before the job's deadline.
    TimedOut,
    Failed(TaskFailure),
    /// To be run again after a delay.
    Retry(F, Duration, RetryCause),
}

/// A task waiting to be retried: off the workers, in its job's state, until `due`.
pub(crate) struct Delayed<F> {
    pub(crate) due: Instant,
    pub(crate) index: usize,
    pub(crate) task: F,
}

impl<F> PartialEq for Delayed<F> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<F> Eq for Delayed<F> {}

impl<F> PartialOrd for Delayed<F> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<F> Ord for Delayed<F> {
    /// The earliest is the greatest, for `BinaryHeap`.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.index).cmp(&(self.due, self.index))
    }
}

impl<F, T> ChunkOutcomes<F, T> {
    pub(crate) fn new() -> Self {
        ChunkOutcomes {
            values: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// The tasks with an outcome so far.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.values.len() + self.failures.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether no task of the chunk started: each was handed back unstarted, or cancelled or
    /// timed out before it started.
    pub(crate) fn none_started(&self) -> bool {
        self.values.is_empty()
            && self
                .failures
                .iter()
                .all(|(_, f)| matches!(f, Failure::Cancelled | Failure::TimedOut))
    }

    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        self.values.push(value);
    }

    /// Whether the tasks return `()`: then a chunk's quiet loop (`run_quiet`) pushes no value
    /// per task, and its caller adds them all at once with [`Self::push_units`].
    #[inline]
    pub(crate) fn units() -> bool
    where
        T: 'static,
    {
        TypeId::of::<T>() == TypeId::of::<()>()
    }

    /// Adds the values of `n` tasks that returned `()`, for the tasks `run_quiet` ran without
    /// pushing them. Nothing for any other `T`.
    ///
    /// Why the quiet loop does not push them: `Vec::push` holds a call (to grow the vector)
    /// that may unwind, so the vector's length lives in memory across the loop, and the
    /// counters the loop loads (atomics) keep the compiler from keeping it in a register: each
    /// task paid a store and a reload of the length, about 30% of an empty task's cost.
    #[inline]
    pub(crate) fn push_units(&mut self, n: usize)
    where
        T: 'static,
    {
        if let Some(units) = (&mut self.values as &mut dyn Any).downcast_mut::<Vec<()>>() {
            units.resize(units.len() + n, ());
        }
    }

    #[cold]
    pub(crate) fn push_failure(&mut self, failure: Failure<F>) {
        self.failures.push((self.len(), failure));
    }

    /// How the last task pushed ended, for its event.
    pub(crate) fn last_outcome(&self) -> TaskOutcome {
        let last = self.len().wrapping_sub(1);
        match self.failures.last() {
            Some((offset, failure)) if *offset == last => match failure {
                Failure::Panicked(_) => TaskOutcome::Panicked,
                Failure::Cancelled => TaskOutcome::Cancelled,
                Failure::TimedOut => TaskOutcome::TimedOut,
                Failure::Failed(_) => TaskOutcome::Failed,
                Failure::Retry(_, after, _) => TaskOutcome::Retrying { after: *after },
            },
            _ => TaskOutcome::Done,
        }
    }
}

/// Moves the first `n` tasks of `from` to the end of `into`, in order.
///
/// Many tasks that capture nothing (zero-sized closures) move as a count: a deque's `drain`
/// takes them one at a time, a loop of one step a task under the job's lock (a claim of
/// 100,000 empty tasks), where splitting the deque and appending the front part moves no
/// element. For a few, the loop is the cheaper. Other tasks are moved one by one, as they
/// must be, into `into`'s kept capacity.
fn move_front<F>(from: &mut VecDeque<F>, n: usize, into: &mut Vec<F>) {
    if std::mem::size_of::<F>() == 0 && n > 64 {
        let rest = from.split_off(n);
        into.append(&mut Vec::from(std::mem::replace(from, rest)));
    } else {
        into.extend(from.drain(..n));
    }
}

/// Every task's outcome, kept in one of two ways.
///
/// While every task recorded so far returned a value, only the values are kept, as runs of
/// consecutive tasks: recording a chunk appends its values to the run it continues (or starts
/// a run), and a finished job's results are its one run. A job of tasks that return `()` thus
/// keeps nothing per task, and a job's results come back without a pass over its tasks. Most
/// jobs have a single run all along (a chunk mostly continues the run, or ends where it
/// starts), kept inline: no allocation. The first failure, the first `Completions` consumer,
/// or a cancel turns the runs into one slot per task (`slots`), which every other path uses.
pub(crate) enum Results<T> {
    /// One run: the values of tasks `first..first + values.len()` (at the start, none).
    Run(usize, Vec<T>),
    /// `(index of the first, values)`, in no order; the runs neither overlap nor touch (two
    /// runs that come to touch are merged). Every task outside them is waiting.
    Runs(Vec<(usize, Vec<T>)>),
    /// One per task, in submission order.
    Slots(Vec<Slot<T>>),
}

impl<T> Results<T> {
    /// Adds the values of tasks `first..first + values.len()` to the runs, leaving `values`
    /// empty (with its capacity, when the values were copied into a run). Not for slots.
    fn add(&mut self, first: usize, values: &mut Vec<T>) {
        match self {
            Results::Run(start, run) => {
                if run.is_empty() {
                    *start = first;
                    run.append(values);
                } else if *start + run.len() == first {
                    run.append(values);
                } else if first + values.len() == *start {
                    values.append(run);
                    std::mem::swap(run, values);
                    *start = first;
                } else {
                    let one = (*start, std::mem::take(run));
                    *self = Results::Runs(vec![one, (first, std::mem::take(values))]);
                }
            }
            Results::Runs(runs) => Self::add_run(runs, first, values),
            Results::Slots(_) => unreachable!("values are added to slots one by one"),
        }
    }

    fn add_run(runs: &mut Vec<(usize, Vec<T>)>, first: usize, values: &mut Vec<T>) {
        let end = first + values.len();
        match runs.iter().position(|(f, run)| f + run.len() == first) {
            Some(at) => runs[at].1.append(values),
            None => runs.push((first, std::mem::take(values))),
        }
        // The run that now ends at `end` may meet the one that starts there.
        if let Some(next) = runs.iter().position(|(f, _)| *f == end) {
            let (_, mut following) = runs.swap_remove(next);
            if let Some(run) = runs.iter_mut().find(|(f, run)| f + run.len() == end) {
                run.1.append(&mut following);
            }
        }
    }

    /// A finished job's values, if every task is in one run (which the caller checked: every
    /// task returned one).
    fn take_all(&mut self) -> Option<Vec<T>> {
        match self {
            Results::Run(0, values) => Some(std::mem::take(values)),
            Results::Runs(runs) => match &mut runs[..] {
                [(0, values)] => Some(std::mem::take(values)),
                _ => None,
            },
            _ => None,
        }
    }

    /// One slot per task, made from the runs if there are none yet.
    fn slots(&mut self, total: usize) -> &mut Vec<Slot<T>> {
        match self {
            Results::Run(first, values) => {
                let runs = vec![(*first, std::mem::take(values))];
                *self = Results::Slots(Self::slots_of(runs, total));
            }
            Results::Runs(runs) => {
                *self = Results::Slots(Self::slots_of(std::mem::take(runs), total));
            }
            Results::Slots(_) => {}
        }
        match self {
            Results::Slots(slots) => slots,
            _ => unreachable!("just made slots"),
        }
    }

    #[cold]
    fn slots_of(runs: Vec<(usize, Vec<T>)>, total: usize) -> Vec<Slot<T>> {
        let mut slots = Vec::with_capacity(total);
        slots.resize_with(total, || Slot::Waiting);
        for (first, values) in runs {
            for (slot, value) in slots[first..].iter_mut().zip(values) {
                *slot = Slot::Done(value);
            }
        }
        slots
    }
}

/// A completion callback registered with `JobHandle::on_finish`.
pub(crate) type FinishCallback<T> = Box<dyn FnOnce(Result<Vec<T>, JobError<T>>) + Send>;

/// Everything about a job that its lock guards.
///
/// What every job needs is kept inline; what few jobs need (tasks handed back, failures,
/// cancellations, retries, a completion log, a callback, an async waiter) is in [`Rare`],
/// allocated the first time one of them is needed. So a plain job's shared state stays small
/// (BENCHMARKS.md, "Memory").
pub(crate) struct JobState<F, T> {
    /// Tasks not yet claimed, in submission order; the front one has index `next_index`.
    pub(crate) pending: VecDeque<F>,
    /// Every task's outcome.
    results: Results<T>,
    rare: Option<Box<Rare<F, T>>>,
    pub(crate) next_index: usize,
    /// The number of tasks, fixed at submission.
    total: usize,
    /// Tokens taken: workers running (or between two of) this job's tasks.
    pub(crate) running: usize,
    /// The cap k: at most this many tokens are taken at once.
    pub(crate) cap: usize,
    pub(crate) done: usize,
    /// The most tokens ever taken at once.
    pub(crate) peak_running: usize,
    /// `done` as last added to the pool's statistics (the other counts are in `Rare`).
    reported_done: usize,
    /// The most tasks that may wait to be retried at once (the retry budget).
    retry_budget: u32,
    /// Threads blocked until the job finishes (`wait`, `wait_timeout`).
    pub(crate) finish_waiters: u32,
    /// Threads blocked until the job reports its next result (`Completions`).
    pub(crate) result_waiters: u32,
    /// Workers blocked inside the job (waiting on it) until a token frees up.
    pub(crate) helpers: u32,
    /// Whether the job has an entry in the run queue, or one is being pushed (README.md).
    pub(crate) queued: bool,
    /// Held by a limiter whose cap was full: not runnable until the limiter releases it
    /// (rule 9).
    pub(crate) held: bool,
    /// Waiting for a rate's next start slot: not runnable until a timer releases it.
    pub(crate) rate_wait: bool,
    /// Set once the job's end was reported to the registry and the callback.
    pub(crate) finish_reported: bool,
    /// Set once a worker took the job's first token (for its `JobStarted` event).
    pub(crate) started: bool,
}

/// The part of a job's state that few jobs need; see [`JobState`].
struct Rare<F, T> {
    /// Tasks claimed in a chunk but handed back unstarted (the cap was lowered while they
    /// waited in the chunk), as runs of consecutive indices: `(index of the first, tasks)`.
    /// Claimed again before `pending`.
    returned: VecDeque<(usize, VecDeque<F>)>,
    /// The number of tasks in `returned`.
    returned_len: usize,
    /// `(index, message)` of every task that panicked.
    panics: Vec<(usize, String)>,
    /// `(index, failure)` of every task that failed for good.
    failures: Vec<(usize, TaskFailure)>,
    panicked: usize,
    cancelled: usize,
    failed: usize,
    timed_out: usize,
    /// Tasks waiting to be retried, earliest first: neither pending nor finished (rule 9).
    delayed: BinaryHeap<Delayed<F>>,
    /// Retries scheduled so far.
    retries: usize,
    /// The earliest timer this job has set and not seen fire, if any.
    timer_at: Option<Instant>,
    /// Tasks that will not run again (a retry refused), to be dropped with the lock released.
    dropped: Vec<F>,
    /// Indices in completion order, kept once a `Completions` iterator exists.
    log: Option<VecDeque<usize>>,
    /// The counts but `done` last added to the pool's statistics.
    reported: Counts,
    on_finish: Option<FinishCallback<T>>,
    /// The waker of the task awaiting the job from async code (a `JobFuture`, or a
    /// `Completions` polled with `poll_next`), left by a poll that found nothing to take, and
    /// taken by whoever gives it something (README.md, rule 8). One slot is enough: awaiting a
    /// `JobHandle` and `completions` both consume it, so a job has at most one async waiter.
    waker: Option<Waker>,
}

impl<F, T> Rare<F, T> {
    fn panicked(&mut self, index: usize, message: String) -> Slot<T> {
        self.panicked += 1;
        self.panics.push((index, message));
        Slot::Panicked
    }

    fn failed(&mut self, index: usize, failure: TaskFailure) -> Slot<T> {
        self.failed += 1;
        self.failures.push((index, failure));
        Slot::Failed
    }
}

impl<F, T> Default for Rare<F, T> {
    fn default() -> Self {
        Rare {
            returned: VecDeque::new(),
            returned_len: 0,
            panics: Vec::new(),
            failures: Vec::new(),
            panicked: 0,
            cancelled: 0,
            failed: 0,
            timed_out: 0,
            delayed: BinaryHeap::new(),
            retries: 0,
            timer_at: None,
            dropped: Vec::new(),
            log: None,
            reported: Counts::default(),
            on_finish: None,
            waker: None,
        }
    }
}

impl<F, T> JobState<F, T> {
    pub(crate) fn new(pending: VecDeque<F>, cap: usize, retry_budget: usize) -> Self {
        let total = pending.len();
        JobState {
            pending,
            results: Results::Run(0, Vec::new()),
            rare: None,
            next_index: 0,
            total,
            running: 0,
            cap,
            done: 0,
            peak_running: 0,
            reported_done: 0,
            retry_budget: u32::try_from(retry_budget).unwrap_or(u32::MAX),
            finish_waiters: 0,
            result_waiters: 0,
            helpers: 0,
            queued: false,
            held: false,
            rate_wait: false,
            finish_reported: false,
            started: false,
        }
    }

    /// The rare part, made if it was not.
    #[cold]
    fn rare_mut(&mut self) -> &mut Rare<F, T> {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Tasks that panicked.
    pub(crate) fn panicked(&self) -> usize {
        self.rare.as_ref().map_or(0, |rare| rare.panicked)
    }

    /// Tasks that never started (cancelled).
    pub(crate) fn cancelled(&self) -> usize {
        self.rare.as_ref().map_or(0, |rare| rare.cancelled)
    }

    /// Tasks that failed for good.
    pub(crate) fn failed(&self) -> usize {
        self.rare.as_ref().map_or(0, |rare| rare.failed)
    }

    /// Tasks not started before the job's deadline.
    pub(crate) fn timed_out(&self) -> usize {
        self.rare.as_ref().map_or(0, |rare| rare.timed_out)
    }

    /// Retries scheduled so far.
    pub(crate) fn retries(&self) -> usize {
        self.rare.as_ref().map_or(0, |rare| rare.retries)
    }

    /// Tasks waiting to be retried.
    pub(crate) fn waiting_retry(&self) -> usize {
        self.rare.as_ref().map_or(0, |rare| rare.delayed.len())
    }

    /// Takes the tasks that will not run again, to be dropped with the lock released.
    pub(crate) fn take_dropped(&mut self) -> Vec<F> {
        self.rare
            .as_mut()
            .map_or_else(Vec::new, |rare| std::mem::take(&mut rare.dropped))
    }

    /// Forgets the job's timer (it fired).
    pub(crate) fn timer_fired(&mut self) {
        if let Some(rare) = &mut self.rare {
            rare.timer_at = None;
        }
    }

    pub(crate) fn set_on_finish(&mut self, callback: FinishCallback<T>) {
        self.rare_mut().on_finish = Some(callback);
    }

    pub(crate) fn take_on_finish(&mut self) -> Option<FinishCallback<T>> {
        self.rare.as_mut().and_then(|rare| rare.on_finish.take())
    }

    /// The async waiter's waker slot (made if needed).
    pub(crate) fn waker_slot(&mut self) -> &mut Option<Waker> {
        &mut self.rare_mut().waker
    }

    /// Takes the async waiter's waker, if one was left.
    pub(crate) fn take_waker(&mut self) -> Option<Waker> {
        self.rare.as_mut().and_then(|rare| rare.waker.take())
    }

    /// What changed in the job's counts since they were last taken, if anything; the counts
    /// are marked taken.
    #[inline]
    pub(crate) fn take_unreported(&mut self) -> Option<Counts> {
        let done = (self.done - self.reported_done) as u64;
        self.reported_done = self.done;
        let mut new = Counts {
            done,
            ..Counts::default()
        };
        if let Some(rare) = &mut self.rare {
            let counts = Counts {
                done: 0,
                failed: (rare.failed + rare.panicked) as u64,
                not_run: (rare.cancelled + rare.timed_out) as u64,
                retries: rare.retries as u64,
            };
            let since = counts.since(&rare.reported);
            rare.reported = counts;
            new.failed = since.failed;
            new.not_run = since.not_run;
            new.retries = since.retries;
        }
        (!new.is_zero()).then_some(new)
    }

    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Tasks not claimed (or handed back unstarted).
    #[inline]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len() + self.rare.as_ref().map_or(0, |rare| rare.returned_len)
    }

    /// Tasks with an outcome.
    #[inline]
    pub(crate) fn ended(&self) -> usize {
        self.done
            + self.rare.as_ref().map_or(0, |rare| {
                rare.panicked + rare.cancelled + rare.failed + rare.timed_out
            })
    }

    /// Every task has an outcome.
    #[inline]
    pub(crate) fn is_finished(&self) -> bool {
        self.ended() == self.total()
    }

    /// A pending task and a free token, and no limiter holding the job: the condition for
    /// being in the run queue.
    #[inline]
    pub(crate) fn is_runnable(&self) -> bool {
        self.pending_len() > 0 && self.running < self.cap && !self.held && !self.rate_wait
    }

    /// Takes a token. The caller checked `is_runnable`.
    #[inline]
    pub(crate) fn take_token(&mut self) {
        // Not `is_runnable`: a worker waiting on a held job may run it on a lent slot.
        debug_assert!(self.pending_len() > 0 && self.running < self.cap);
        self.running += 1;
        self.peak_running = self.peak_running.max(self.running);
    }

    /// Moves up to `n` pending tasks, of consecutive indices, into `into`; returns the index of
    /// the first.
    #[inline]
    pub(crate) fn claim(&mut self, n: usize, into: &mut Vec<F>) -> usize {
        if let Some(rare) = &mut self.rare {
            if let Some((first, run)) = rare.returned.front_mut() {
                let index = *first;
                let n = n.min(run.len());
                move_front(run, n, into);
                *first += n;
                rare.returned_len -= n;
                if run.is_empty() {
                    rare.returned.pop_front();
                }
                return index;
            }
        }
        let first = self.next_index;
        let n = n.min(self.pending.len());
        move_front(&mut self.pending, n, into);
        self.next_index += n;
        first
    }

    /// Hands back claimed tasks that never started, the first of index `first`.
    pub(crate) fn hand_back(&mut self, first: usize, tasks: VecDeque<F>) {
        if tasks.is_empty() {
            return;
        }
        let rare = self.rare_mut();
        rare.returned_len += tasks.len();
        let at = rare.returned.partition_point(|(i, _)| *i < first);
        rare.returned.insert(at, (first, tasks));
    }

    /// Records the outcomes of tasks `first..first + outcomes.len()`, at `now`. A task
    /// to be retried goes to `delayed` (unless the job stopped, `stopped` saying how, or the
    /// retry budget is used up: then it gets its failure); returns the earliest due instant of the retries added,
    /// for the caller to set a timer if it is earlier than the job's (`needs_timer`).
    pub(crate) fn record(
        &mut self,
        first: usize,
        outcomes: &mut ChunkOutcomes<F, T>,
        now: Instant,
        stopped: Option<Failure<F>>,
    ) -> Option<Instant> {
        let n = outcomes.len();
        if outcomes.failures.is_empty() {
            // (A `Completions` consumer's log needs slots: it made them when it started.)
            if !matches!(self.results, Results::Slots(_)) {
                self.results.add(first, &mut outcomes.values);
                self.done += n;
                return None;
            }
        }
        let slots = &mut self.results.slots(self.total)[first..first + n];
        let mut values = outcomes.values.drain(..);
        if outcomes.failures.is_empty() {
            for (slot, value) in slots.iter_mut().zip(values) {
                *slot = Slot::Done(value);
            }
        } else {
            // The failures' slots are filled below.
            let mut failures = outcomes
                .failures
                .iter()
                .map(|(offset, _)| *offset)
                .peekable();
            for (offset, slot) in slots.iter_mut().enumerate() {
                if failures.next_if_eq(&offset).is_none() {
                    let Some(value) = values.next() else {
                        unreachable!("a task of the chunk without an outcome")
                    };
                    *slot = Slot::Done(value);
                }
            }
        }
        self.done += n - outcomes.failures.len();
        let mut earliest: Option<Instant> = None;
        let mut retried = 0;
        let retry_budget = self.retry_budget as usize;
        if !outcomes.failures.is_empty() {
            let rare = &mut **self.rare.get_or_insert_with(Box::default);
            for (offset, failure) in outcomes.failures.drain(..) {
                let index = first + offset;
                let slot = match failure {
                    Failure::Panicked(message) => rare.panicked(index, message),
                    Failure::Cancelled => {
                        rare.cancelled += 1;
                        Slot::Cancelled
                    }
                    Failure::TimedOut => {
                        rare.timed_out += 1;
                        Slot::TimedOut
                    }
                    Failure::Failed(failure) => rare.failed(index, failure),
                    Failure::Retry(task, after, cause) => {
                        if let Some(stop) = &stopped {
                            rare.dropped.push(task);
                            if matches!(stop, Failure::TimedOut) {
                                rare.timed_out += 1;
                                Slot::TimedOut
                            } else {
                                rare.cancelled += 1;
                                Slot::Cancelled
                            }
                        } else if rare.delayed.len() >= retry_budget {
                            rare.dropped.push(task);
                            match cause {
                                RetryCause::Error(error, attempts) => rare.failed(
                                    index,
                                    TaskFailure::new(error, attempts, GaveUp::RetryBudget),
                                ),
                                RetryCause::Panic(message) => rare.panicked(index, message),
                            }
                        } else {
                            let due = now.checked_add(after).unwrap_or(now);
                            earliest = Some(earliest.map_or(due, |e| e.min(due)));
                            rare.delayed.push(Delayed { due, index, task });
                            rare.retries += 1;
                            retried += 1;
                            continue;
                        }
                    }
                };
                self.results.slots(self.total)[index] = slot;
            }
        }
        if let Some(log) = self.rare.as_mut().and_then(|rare| rare.log.as_mut()) {
            if retried == 0 {
                log.extend(first..first + n);
            } else {
                let slots = self.results.slots(self.total);
                log.extend((first..first + n).filter(|&i| !matches!(slots[i], Slot::Waiting)));
            }
        }
        earliest
    }

    /// Whether a timer for `due` is needed: none is set for an earlier instant.
    pub(crate) fn needs_timer(&mut self, due: Instant) -> bool {
        let rare = self.rare_mut();
        if rare.timer_at.is_some_and(|at| at <= due) {
            return false;
        }
        rare.timer_at = Some(due);
        true
    }

    /// Moves the retries due at `now` back to the pending tasks (claimed first, by index).
    /// Returns the earliest due instant of those left.
    pub(crate) fn release_due(&mut self, now: Instant) -> Option<Instant> {
        loop {
            let rare = self.rare.as_mut()?;
            match rare.delayed.peek() {
                Some(next) if next.due <= now => {
                    let Some(due) = rare.delayed.pop() else {
                        unreachable!("peeked just above")
                    };
                    self.hand_back(due.index, VecDeque::from([due.task]));
                }
                next => return next.map(|d| d.due),
            }
        }
    }

    /// Marks every pending task, and every task waiting to be retried, cancelled, and
    /// returns the tasks, to be dropped by the caller once the lock is released (dropping a
    /// task runs user code).
    pub(crate) fn cancel_pending(&mut self) -> VecDeque<F> {
        self.end_pending(false)
    }

    /// As `cancel_pending`, for a job whose deadline passed: the tasks are timed out.
    pub(crate) fn time_out_pending(&mut self) -> VecDeque<F> {
        self.end_pending(true)
    }

    fn end_pending(&mut self, timed_out: bool) -> VecDeque<F> {
        let mut tasks = VecDeque::new();
        let first = self.next_index;
        let pending = std::mem::take(&mut self.pending);
        self.next_index += pending.len();
        if pending.is_empty() && self.rare.is_none() {
            return tasks;
        }
        let rare = &mut **self.rare.get_or_insert_with(Box::default);
        let returned = std::mem::take(&mut rare.returned);
        rare.returned_len = 0;
        let delayed = std::mem::take(&mut rare.delayed)
            .into_iter()
            .map(|d| (d.index, VecDeque::from([d.task])));
        let runs = returned
            .into_iter()
            .chain(std::iter::once((first, pending)))
            .chain(delayed);
        for (first, run) in runs {
            for index in first..first + run.len() {
                self.results.slots(self.total)[index] = if timed_out {
                    Slot::TimedOut
                } else {
                    Slot::Cancelled
                };
                if let Some(log) = &mut rare.log {
                    log.push_back(index);
                }
            }
            if timed_out {
                rare.timed_out += run.len();
            } else {
                rare.cancelled += run.len();
            }
            tasks.extend(run);
        }
        tasks.extend(rare.dropped.drain(..));
        tasks
    }

    /// The next outcome for a `Completions` consumer: `Ready` with the first task in the log,
    /// `Exhausted` once every task has been reported, `None` while neither (the caller waits).
    pub(crate) fn next_outcome(&mut self) -> Option<Next<T>> {
        let log = self.rare.as_mut().and_then(|rare| rare.log.as_mut());
        match log.and_then(|log| log.pop_front()) {
            Some(index) => Some(Next::Ready(index, self.take_outcome(index))),
            None => self.is_finished().then_some(Next::Exhausted),
        }
    }

    /// Takes the async waiter's waker if the waiter now has something to take (rule 8), for
    /// the caller to wake once the lock is released. With no async waiter, one branch: this
    /// runs after every recorded chunk.
    #[inline]
    pub(crate) fn waker_to_wake(&mut self) -> Option<Waker> {
        if self.rare.as_ref().is_some_and(|rare| rare.waker.is_some()) {
            self.waker_if_news()
        } else {
            None
        }
    }

    /// The waker, if the job finished or (for a `Completions` consumer, the only waiter with a
    /// log) a result waits in the log.
    #[cold]
    fn waker_if_news(&mut self) -> Option<Waker> {
        let log = self.rare.as_ref().and_then(|rare| rare.log.as_ref());
        let news = self.is_finished() || log.is_some_and(|log| !log.is_empty());
        if news {
            self.take_waker()
        } else {
            None
        }
    }

    /// Starts the completion log with the tasks that finished already, in index order.
    pub(crate) fn start_log(&mut self) {
        if !self.rare.as_ref().is_some_and(|rare| rare.log.is_some()) {
            let finished = self
                .results
                .slots(self.total)
                .iter()
                .enumerate()
                .filter(|(_, s)| !matches!(s, Slot::Waiting));
            let log = finished.map(|(i, _)| i).collect();
            self.rare_mut().log = Some(log);
        }
    }

    /// Takes the outcome of a finished task out of its slot.
    pub(crate) fn take_outcome(&mut self, index: usize) -> Result<T, TaskError> {
        match std::mem::replace(&mut self.results.slots(self.total)[index], Slot::Taken) {
            Slot::Done(value) => Ok(value),
            Slot::Panicked => {
                let message = self
                    .rare_mut()
                    .panics
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, m)| m.clone());
                Err(TaskError::Panicked(message.unwrap_or_default()))
            }
            Slot::Cancelled => Err(TaskError::Cancelled),
            Slot::TimedOut => Err(TaskError::TimedOut),
            Slot::Failed => {
                let failures = &mut self.rare_mut().failures;
                let failure = failures.iter().position(|(i, _)| *i == index);
                match failure {
                    Some(at) => Err(TaskError::Failed(failures.swap_remove(at).1)),
                    None => unreachable!("task {index} failed without a failure"),
                }
            }
            Slot::Waiting | Slot::Taken => unreachable!("task {index} has no outcome to take"),
        }
    }

    /// The results of a finished job, in submission order.
    pub(crate) fn take_results(&mut self) -> Result<Vec<T>, JobError<T>> {
        debug_assert!(self.is_finished());
        if self.ended() == self.done {
            // Runs that touch are merged: every task done, the values are one run.
            if let Some(values) = self.results.take_all() {
                return Ok(values);
            }
        }
        let slots = std::mem::take(self.results.slots(self.total));
        if self.ended() == self.done {
            let values = slots.into_iter().map(|slot| match slot {
                Slot::Done(value) => value,
                _ => unreachable!("a finished job with no failures has only done tasks"),
            });
            return Ok(values.collect());
        }
        let rare = self.rare_mut();
        let mut panics = std::mem::take(&mut rare.panics);
        panics.sort_unstable_by_key(|(i, _)| *i);
        let mut panics = panics.into_iter();
        let mut failures = std::mem::take(&mut rare.failures);
        failures.sort_unstable_by_key(|(i, _)| *i);
        let mut failures = failures.into_iter();
        let results = slots.into_iter().map(|slot| match slot {
            Slot::Done(value) => Ok(value),
            Slot::Panicked => Err(TaskError::Panicked(
                panics.next().map(|(_, m)| m).unwrap_or_default(),
            )),
            Slot::Cancelled => Err(TaskError::Cancelled),
            Slot::TimedOut => Err(TaskError::TimedOut),
            Slot::Failed => match failures.next() {
                Some((_, failure)) => Err(TaskError::Failed(failure)),
                None => unreachable!("a failed task without a failure"),
            },
            Slot::Waiting | Slot::Taken => {
                unreachable!("a finished job has an outcome for every task")
            }
        });
        Err(JobError::new(results.collect()))
    }
}
