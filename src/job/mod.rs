//! A job: its tasks, its tokens, and how a worker runs it.
//!
//! The token protocol between jobs and the run queue is described in
//! `src/scheduler/README.md`; the rule numbers in comments below refer to it.

mod builder;
mod chunk;
mod future;
mod handle;
#[cfg(all(test, not(loom)))]
mod results_tests;
pub(crate) mod retry;
#[cfg(test)]
mod run_stage_tests;
mod state;
mod task;
mod wait;

pub use builder::{JobBuilder, NoRetry, RetryState, WithRetry};
pub use future::JobFuture;
pub use handle::{Canceller, Completions, JobHandle, Progress};
pub use retry::Retry;
pub use task::TaskContext;

use std::collections::VecDeque;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::{JobError, TaskError};
use crate::limit::{self, Held, Limiter, StartSlot};
use crate::observe::{EventKind, JobId, TaskOutcome};
use crate::scheduler::priority::{self, Priority, Stage};
use crate::scheduler::{worker, Registry, Schedulable};
use crate::sync::{
    AtomicBool, AtomicU32, AtomicU64, AtomicU8, Condvar, Instant, Mutex, MutexGuard,
};
use crate::unwind::{call_quietly, drop_each_quietly};
use chunk::ChunkRun;
use future::wake_quietly;
use state::{ChunkOutcomes, Failure, FinishCallback, JobState};
use task::{JobContext, Task};
use wait::Awaited;

/// A chunk of tasks claimed at once should take about this long to run. Chunks start at one
/// task and grow (2 to 8 times) while they run faster than this, so very short tasks are
/// claimed many at a time (one lock per chunk, not per task) while long tasks are claimed one
/// by one (a claimed task is one no other worker can start).
const CHUNK_TARGET: Duration = Duration::from_micros(20);

/// The largest chunk, whatever the tasks' length.
const MAX_CHUNK: usize = 4096;

/// A duration in whole nanoseconds, saturating (584 years of service overflow a `u64`).
#[inline]
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Who is running a job's tasks, which decides when it stops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A worker that popped the job from the run queue: it hands its token back at the end of
    /// a time slice if a less served job waits (fairness).
    Scheduled,
    /// A worker waiting for this very job (a task called `wait` on it): it keeps running the
    /// job's tasks while there are any, since it has nothing else to do, but not past
    /// `until`, and for one chunk only when `one_chunk` (a `Completions` consumer, who wants
    /// each result as soon as it is there).
    Helping {
        until: Option<Instant>,
        one_chunk: bool,
    },
}

impl Mode {
    /// Whether the worker waits with a deadline, and so reads the clock after each task.
    fn has_deadline(&self) -> bool {
        matches!(self, Mode::Helping { until: Some(_), .. })
    }
}

/// What a worker checks before it starts each task of a claimed chunk. Read before every
/// task; written rarely (a cancel, a deadline, a hand-back, the job's end). It is not padded to
/// a cache line of its own: that would make every job's shared state 128-byte aligned and
/// about three times its size (896 bytes against 248). Its line may hold the job's lock, which
/// workers write once per chunk, not per task; chunks grow to thousands of tasks when tasks
/// are short, so the reads before each task almost always hit a line that stays put.
#[derive(Default)]
pub(crate) struct TaskGate {
    /// Set by `cancel` (`CANCELLED`) or when the job's deadline passes (`TIMED_OUT`): claimed
    /// tasks that have not started are cancelled or timed out.
    pub(crate) stopped: AtomicU8,
    /// Bumped (under the job's lock) whenever someone needs the tasks that workers have
    /// claimed and not started: the cap was lowered, a token came back with no task pending
    /// while others are taken, a worker waiting on the job wants a task to run. A worker that
    /// sees it change starts no more tasks of its chunk and hands them back, which bounds how
    /// long a claimed task waits for its claimer to about one task, whatever the task lengths
    /// (rule 3).
    hand_back: AtomicU64,
    /// Set once the job's results are taken through `Completions`, which promises each result
    /// as its task returns: a worker then ends its chunk after each task, so that the result is
    /// recorded (and a waiting consumer woken) before the worker starts another task.
    results_wanted: AtomicBool,
    /// Set once every task has an outcome: the job can never be runnable again, so its
    /// run-queue entry is dead and may be dropped without a look at its state (README.md,
    /// rule 2). Written under the job's lock, read `Relaxed` by the run queue.
    finished: AtomicBool,
    /// Bumped (`Release`) after each change of `stopped`, `hand_back` or `results_wanted`, so
    /// that a worker checks one counter before each task instead of three fields: if it did
    /// not move since the chunk's claim (read `Acquire`, before the fields), none of them did
    /// (README.md, rule 3). Those three are written only through `stop`, `ask_back` and
    /// `want_results`, which bump it.
    looks: AtomicU32,
}

impl TaskGate {
    /// Stops the job's claimed tasks that have not started (`CANCELLED` or `TIMED_OUT`),
    /// unless it was stopped already.
    fn stop(&self, why: u8) {
        if self
            .stopped
            .compare_exchange(0, why, Relaxed, Relaxed)
            .is_ok()
        {
            self.looks.fetch_add(1, Release);
        }
    }

    /// Asks the workers holding claimed tasks to hand back the ones they have not started.
    fn ask_back(&self) {
        self.hand_back.fetch_add(1, Relaxed);
        self.looks.fetch_add(1, Release);
    }

    /// From now on every chunk ends after each task, so that each result is recorded as its
    /// task returns.
    fn want_results(&self) {
        self.results_wanted.store(true, Relaxed);
        self.looks.fetch_add(1, Release);
    }

    /// The counter a worker compares before each task, and whether the fields behind it let
    /// a chunk run on at the time of the claim: not stopped, results not wanted one by one.
    fn looks_at_claim(&self) -> (u32, bool) {
        let looks = self.looks.load(Acquire);
        let quiet = self.stopped.load(Relaxed) == 0 && !self.results_wanted.load(Relaxed);
        (looks, quiet)
    }
}

/// `TaskGate::stopped`: the job was cancelled.
const CANCELLED: u8 = 1;
/// `TaskGate::stopped`: the job's deadline passed.
const TIMED_OUT: u8 = 2;

/// What a job was submitted with besides its tasks and cap; fixed for its life.
#[derive(Default)]
pub(crate) struct Settings {
    /// The job's name, for events, errors and `Debug`.
    pub(crate) name: Option<Arc<str>>,
    pub(crate) priority: Priority,
    /// For a module of a dependency graph's run: the run's start (nanoseconds since the pool's
    /// epoch, at least 1) and whether the module is one of the run's first stage.
    pub(crate) run: Option<(u64, bool)>,
    /// The job's deadline: for the timers, and as the user gave it (for the task context).
    pub(crate) deadline: Option<(Instant, std::time::Instant)>,
    /// Shared caps and rates, at most 64.
    pub(crate) limiters: Vec<Limiter>,
    /// Stop at the first task that fails for good: cancel what has not started.
    pub(crate) fail_fast: bool,
}

/// A job's [`Settings`] as its core keeps them: what most jobs leave unset (a name, a run
/// stage, a deadline, limiters) is boxed, and absent unless set, so that a plain job's shared
/// state stays small.
pub(crate) struct JobSettings {
    pub(crate) priority: Priority,
    pub(crate) fail_fast: bool,
    extra: Option<Box<ExtraSettings>>,
}

/// The settings most jobs leave unset.
struct ExtraSettings {
    name: Option<Arc<str>>,
    run: Option<(u64, bool)>,
    deadline: Option<(Instant, std::time::Instant)>,
    limiters: Vec<Limiter>,
}

impl From<Settings> for JobSettings {
    fn from(settings: Settings) -> Self {
        let Settings {
            name,
            priority,
            run,
            deadline,
            limiters,
            fail_fast,
        } = settings;
        let extra = (name.is_some() || run.is_some() || deadline.is_some() || !limiters.is_empty())
            .then(|| {
                Box::new(ExtraSettings {
                    name,
                    run,
                    deadline,
                    limiters,
                })
            });
        JobSettings {
            priority,
            fail_fast,
            extra,
        }
    }
}

impl JobSettings {
    #[inline]
    pub(crate) fn name(&self) -> Option<&Arc<str>> {
        self.extra.as_ref().and_then(|extra| extra.name.as_ref())
    }

    #[inline]
    pub(crate) fn run(&self) -> Option<(u64, bool)> {
        self.extra.as_ref().and_then(|extra| extra.run)
    }

    #[inline]
    pub(crate) fn deadline(&self) -> Option<(Instant, std::time::Instant)> {
        self.extra.as_ref().and_then(|extra| extra.deadline)
    }

    #[inline]
    pub(crate) fn limiters(&self) -> &[Limiter] {
        self.extra.as_ref().map_or(&[], |extra| &extra.limiters)
    }
}

/// A job's shared core. `F` is the task type and `T` its result.
pub(crate) struct JobCore<F, T> {
    registry: Arc<Registry>,
    /// The job's identity in events and statistics.
    job_id: JobId,
    /// The job's `tracing` span, if a subscriber wants it: its tasks' spans are its children.
    /// Boxed, so that with no subscriber listening a job's state stays as small as without
    /// the feature.
    #[cfg(feature = "tracing")]
    span: Option<Box<tracing::Span>>,
    settings: JobSettings,
    state: Mutex<JobState<F, T>>,
    /// Wakes threads waiting for the job to finish (`finish_waiters`) or to report a result
    /// (`result_waiters`). Notified only for what they wait for: a thread that waits for the
    /// job to finish is not woken for every chunk of results.
    progress: Condvar,
    /// Wakes workers waiting inside the job for a free token (`helpers`).
    token_freed: Condvar,
    /// Nanoseconds its tasks have run so far, summed over tokens: the job's *attained
    /// service*, its key in the run queue. Added to after every chunk; read `Relaxed` by the
    /// run queue and the fairness check, where a stale value only delays a refresh.
    service: AtomicU64,
    /// Checked before each task starts (and by the run queue).
    gate: TaskGate,
}

/// What follows a change of a job's state, found under its lock and carried out after.
#[must_use]
struct Settled<T> {
    push: bool,
    /// `Some` when the job just finished: the callback to call, if one was registered.
    finished: Option<Option<CallbackCall<T>>>,
    /// The async waiter's waker, when it has something to take (rule 8).
    wake: Option<Waker>,
}

/// A completion callback with the results it is to be called with.
type CallbackCall<T> = (FinishCallback<T>, Result<Vec<T>, JobError<T>>);

impl<F, T> JobCore<F, T>
where
    F: Task<T>,
    T: Send + 'static,
{
    pub(crate) fn new(registry: Arc<Registry>, state: JobState<F, T>, settings: Settings) -> Self {
        let settings = JobSettings::from(settings);
        let job_id = JobId::next();
        #[cfg(feature = "tracing")]
        let span = tracing::info_span!(
            "job",
            id = job_id.get(),
            name = settings.name().map_or("", |name| &**name),
            priority = %settings.priority,
        );
        #[cfg(feature = "tracing")]
        let span = (!span.is_disabled()).then(|| Box::new(span));
        JobCore {
            registry,
            job_id,
            #[cfg(feature = "tracing")]
            span,
            settings,
            state: Mutex::new(state),
            progress: Condvar::new(),
            token_freed: Condvar::new(),
            service: AtomicU64::new(0),
            gate: TaskGate::default(),
        }
    }

    /// Runs tasks holding one token (already taken, under `st`, with the limiter slots in
    /// `slots`) until the job has no pending task, its cap was lowered below the tokens in
    /// use, a limiter holds it, or `mode` says to stop (see [`Mode`]). `now` is a recent clock
    /// reading. Returns the token before it returns.
    fn run_with_token<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, JobState<F, T>>,
        mode: Mode,
        now: Instant,
        slots: u64,
    ) {
        // While this thread runs the job's tasks, a wait on the job from one of them could
        // never end (`wait_for`), and its limiters' slots are lent to what they wait on.
        let running_here = worker::RunningJob::enter(self.id(), &self.limiter_ids(slots));
        // Only workers run tasks (a thread outside the pool waits without helping).
        let worker = self.registry.worker_index();
        let _in_turn = worker.map(|w| InTurn::new(&self.registry, w, self.job_id));
        if !st.started {
            st.started = true;
            self.tell(EventKind::JobStarted);
        }
        if matches!(self.settings.run(), Some((_, true))) && self.service.load(Relaxed) == 0 {
            // A run's first stage counts as started from its first token, not from the end of
            // its first chunk: pushed back below, it ranks with its run, not behind new runs.
            // (A read first: only its first turn writes.)
            self.service.fetch_max(1, Relaxed);
        }
        let limited = !self.settings.limiters().is_empty();
        // The start slots of the rates taken for the chunk's one task (rule 9).
        let mut start_slots = Vec::new();
        let mut chunk: Vec<F> = Vec::new();
        let mut outcomes = ChunkOutcomes::new();
        let mut chunk_len = 1;
        // The worker whose slot may hold the job's entry, set aside there (rule 11).
        let mut aside: Option<usize> = None;
        let cx = JobContext {
            gate: &self.gate,
            registry: &self.registry,
            deadline: self.settings.deadline().map(|(_, d)| d),
            job_id: self.id(),
        };
        // The async waiter's waker, taken after a chunk was recorded and woken after the next
        // claim, once the lock is released (rule 8).
        let mut wake: Option<Waker> = None;
        // One clock read per chunk (the end of one chunk is the start of the next), and one
        // per task only for a worker waiting with a deadline.
        let slice_start = now;
        let mut chunk_start = slice_start;
        // The pool's asks to look up as this worker last read them, before it decided to
        // claim: the next chunk watches for a change from there, less its own (rule 3).
        let mut asks_seen = self.registry.yield_requests_seen();
        loop {
            // A deadline is checked at each claim as well as by its timer, so no task starts
            // after it, whenever the timer fires (rule 9).
            if let Some((deadline, _)) = self.settings.deadline() {
                if chunk_start >= deadline {
                    self.gate.stop(TIMED_OUT);
                    self.ask_for_claimed_tasks();
                    let dropped = st.time_out_pending();
                    return self.end_turn(st, slots, running_here, dropped, aside);
                }
            }
            // A job under a limiter starts one task per claim, each with a start slot of every
            // rate (rule 9); a refused job is held until the slot is due.
            if limited {
                start_slots.clear();
                if let Err(at) = self.try_start(chunk_start, &mut start_slots) {
                    self.tell(EventKind::JobHeld {
                        until: Some(crate::sync::to_std(at)),
                    });
                    st.rate_wait = true;
                    if st.needs_timer(at) {
                        self.registry.add_timer(at, self.clone());
                    }
                    return self.end_turn(st, slots, running_here, VecDeque::new(), aside);
                }
                chunk_len = 1;
            }
            // Guided chunking: never claim more than one token's share of what is left, so the
            // job's other tokens always find tasks to run, under the cap now in force (it may
            // have been raised since the last claim: then a worker that comes for a new token
            // must find a task pending, not wait behind a task of this chunk, which may be
            // waiting for it). While the job's entry waits aside, every worker is busy and
            // queued jobs go first: its other tokens are not about to be taken, so the share
            // leaves one task pending for each of them and no more (rule 3).
            let parallelism = self.registry.threads().min(st.cap);
            let share = chunk::share(st.pending_len(), parallelism, aside.is_some());
            let first = st.claim(chunk_len.min(share), &mut chunk);
            let (looks, job_quiet) = self.gate.looks_at_claim();
            let hand_back = self.gate.hand_back.load(Relaxed);
            let push = self.queue_if_runnable(&mut st);
            drop(st);
            // A free token for another worker: in a turn from the run queue, the entry waits
            // aside while no worker is idle and queued jobs go first (rule 11). A push of this
            // job that goes first asks every busy worker to look up, this one too: not news
            // to it, so not counted against its chunk.
            let asked_here = match (push, worker) {
                (true, Some(w)) if matches!(mode, Mode::Scheduled) => {
                    let pushed = self.registry.push_or_set_aside(w, self.clone(), self.key());
                    aside = pushed.is_none().then_some(w);
                    pushed.unwrap_or(false)
                }
                (true, _) => self.registry.push(self.clone(), self.key()),
                (false, Some(w)) if aside.is_some() && self.registry.goes_first(self.key()) => {
                    // The queued jobs that went first were taken: into the queue with it.
                    aside = None;
                    self.registry
                        .take_aside(w)
                        .is_some_and(|entry| self.registry.push(entry, self.key()))
                }
                _ => false,
            };
            if let Some(waker) = wake.take() {
                wake_quietly(waker);
            }
            // Timers due (retries, rate slots, deadlines of any job) are fired by whichever
            // worker passes by first: one load per chunk (rule 9).
            self.registry.fire_timers(chunk_start);
            // Read after the asks seen (`yield_requests_seen`).
            let pool_quiet = !self.registry.cancelling();
            // Once per chunk, so that a chunk's task events come in pairs.
            let listening = self.registry.listening();

            let mut tasks = Some(chunk.drain(..));
            let chunk_run = ChunkRun {
                first,
                hand_back,
                yield_requests: asks_seen + u64::from(asked_here),
                looks,
                quiet: job_quiet && pool_quiet,
                mode,
            };
            // Two copies of the loop: the one for nobody listening has no event code at all.
            let handed_back = if listening {
                self.run_chunk::<true>(&mut tasks, &mut outcomes, &chunk_run, &cx)
            } else {
                self.run_chunk::<false>(&mut tasks, &mut outcomes, &chunk_run, &cx)
            };
            drop(tasks);
            if !start_slots.is_empty() && outcomes.none_started() {
                // Handed back, cancelled or timed out before it started: its start slots
                // were not used (rule 9).
                self.give_back_starts(&mut start_slots);
            }
            let now = Instant::now();
            let ran_for = now.saturating_duration_since(chunk_start);
            chunk_start = now;
            self.service.fetch_add(nanos(ran_for), Relaxed);
            let started = outcomes.len();
            if ran_for < CHUNK_TARGET {
                // Towards what fits in the target at the rate just measured: a job of a few
                // short tasks then takes two chunks, not one per doubling (rule 3).
                let fit = (started as u128 * CHUNK_TARGET.as_nanos()) / ran_for.as_nanos().max(1);
                chunk_len = (fit as usize)
                    .clamp(chunk_len * 2, chunk_len * 8)
                    .min(MAX_CHUNK);
            } else if ran_for > 2 * CHUNK_TARGET {
                // As many tasks as fit in the target at the rate just measured: tasks that
                // turned long go back to one a chunk at once, not by halvings.
                let fit = (started as u128 * CHUNK_TARGET.as_nanos()) / ran_for.as_nanos().max(1);
                chunk_len = (fit as usize).clamp(1, (chunk_len / 2).max(1));
            }

            st = self.state.lock();
            let stopped = match self.gate.stopped.load(Relaxed) {
                TIMED_OUT => Some(Failure::TimedOut),
                0 if !self.registry.cancelling() => None,
                _ => Some(Failure::Cancelled),
            };
            if let Some(due) = st.record(first, &mut outcomes, now, stopped) {
                // A task waits to be retried: a timer brings it back (rule 9).
                if st.needs_timer(due) {
                    self.registry.add_timer(due, self.clone());
                }
            }
            if let Some(unstarted) = handed_back {
                st.hand_back(first + started, unstarted);
            }
            let mut dropped: VecDeque<F> = if self.registry.cancelling() {
                st.cancel_pending()
            } else {
                Default::default()
            };
            dropped.extend(st.take_dropped());
            if self.settings.fail_fast && st.failed() + st.panicked() > 0 {
                // The first failure stops the job, as a cancel would.
                self.gate.stop(CANCELLED);
                self.ask_for_claimed_tasks();
                dropped.extend(st.cancel_pending());
            }
            // Read before the look at `queued_min` in `should_yield`: a job that goes first
            // and asks in between is either seen there or seen by the next chunk after its
            // first task (rule 3).
            asks_seen = self.registry.yield_requests_seen();
            let stop = match mode {
                Mode::Scheduled => self
                    .registry
                    .should_yield(self.key(), now.saturating_duration_since(slice_start)),
                Mode::Helping { until, one_chunk } => {
                    one_chunk || until.is_some_and(|deadline| now >= deadline)
                }
            };
            // Tasks to drop (cancelled, or refused a retry) are dropped with the lock released,
            // so this worker ends its turn: rare, and simpler than dropping in between.
            if stop || st.pending_len() == 0 || st.running > st.cap || !dropped.is_empty() {
                return self.end_turn(st, slots, running_here, dropped, aside);
            }
            // Keep the token and claim the next chunk (rule 3): no run-queue traffic. The
            // statistics hear of this chunk now (`end_turn` tells them when the turn ends).
            self.report_counts(&mut st, || worker);
            if st.result_waiters > 0 {
                self.progress.notify_all();
            }
            wake = st.waker_to_wake();
        }
    }

    /// Ends a worker's turn in the job: returns its token (and the limiter slots in
    /// `slots`), then, with the job's lock released, drops `dropped` (tasks that will not
    /// run), releases the jobs the limiters let go, and carries out what `settle` decided.
    fn end_turn(
        self: &Arc<Self>,
        mut st: MutexGuard<'_, JobState<F, T>>,
        slots: u64,
        running_here: worker::RunningJob,
        dropped: VecDeque<F>,
        aside: Option<usize>,
    ) {
        // The entry set aside, if no idle worker took it, is no entry any more: `settle` below
        // queues the job if it is runnable (rule 11).
        let entry = aside.and_then(|w| self.registry.take_aside(w));
        if entry.is_some() {
            st.queued = false;
        }
        let released = self.return_token(&mut st, slots);
        // The slots are back: nothing run from here on may borrow them.
        drop(running_here);
        // If whatever is left is claimed by the other tokens, ask for the unstarted part
        // back, so that this worker (or another) can run it meanwhile.
        self.ask_if_a_token_is_idle(&st);
        let settled = self.settle(&mut st);
        drop(st);
        drop(entry);
        drop_each_quietly(dropped);
        limit::release(released);
        self.carry_out(settled);
    }

    /// The job's key in the run queue (`scheduler/priority.rs`): a plain job is new work
    /// ranked by attained service; a module of a graph's run that has started (a first stage:
    /// that has taken a token, see `run_with_token`) is ranked by the run's age.
    #[inline]
    fn job_key(&self) -> u64 {
        let service = self.service.load(Relaxed);
        match self.settings.run() {
            Some((birth, root)) if !root || service > 0 => {
                priority::key(self.settings.priority, Stage::Continuing, birth)
            }
            _ => priority::key(self.settings.priority, Stage::New, service),
        }
    }

    /// The identities of the job's limiters whose slots are in `slots` (the ones lent to
    /// this token are on the thread's list already).
    fn limiter_ids(&self, slots: u64) -> Vec<usize> {
        let limiters = self.settings.limiters().iter().enumerate();
        limiters
            .filter(|(i, _)| slots & (1 << i) != 0)
            .map(|(_, l)| l.id())
            .collect()
    }

    /// Takes a token: one of the job's own, and a slot of each limiter's cap (except those
    /// lent by a task waiting further up this thread's stack, rule 9). Returns the slots
    /// taken, or, if a limiter's cap is full, the jobs to release (other limiters' slots taken
    /// a moment ago and given back) once the job's lock is released: the job is then held, and
    /// on the full limiter's list. The caller checked that the job may run (`is_runnable`, or
    /// `may_run_lent` for a waiting worker).
    fn take_token(self: &Arc<Self>, st: &mut JobState<F, T>) -> Result<u64, Vec<Arc<dyn Held>>> {
        let mut slots = 0u64;
        if !self.settings.limiters().is_empty() {
            let held: Arc<dyn Held> = self.clone();
            for (i, limiter) in self.settings.limiters().iter().enumerate() {
                if worker::RunningJob::holds_slot_of(limiter.id()) {
                    continue;
                }
                match limiter.take_slot(&held) {
                    Ok(true) => slots |= 1 << i,
                    Ok(false) => {}
                    Err(()) => {
                        st.held = true;
                        return Err(self.release_slots(slots));
                    }
                }
            }
        }
        st.take_token();
        Ok(slots)
    }

    /// Gives back the limiter slots in `slots`; returns the jobs to release.
    fn release_slots(&self, slots: u64) -> Vec<Arc<dyn Held>> {
        let mut released = Vec::new();
        for (i, limiter) in self.settings.limiters().iter().enumerate() {
            if slots & (1 << i) != 0 {
                released.extend(limiter.release_slot());
            }
        }
        released
    }

    /// Returns a token taken with `slots`; returns the jobs the limiters release, to be
    /// released once the job's lock is.
    fn return_token(&self, st: &mut JobState<F, T>, slots: u64) -> Vec<Arc<dyn Held>> {
        st.running -= 1;
        self.release_slots(slots)
    }

    /// Takes a start slot of each limiter's rate at `now`, into `taken` (with the limiter's
    /// index), or says when the next is due; a refusal gives back the slots taken before it.
    fn try_start(
        self: &Arc<Self>,
        now: Instant,
        taken: &mut Vec<(usize, StartSlot)>,
    ) -> Result<(), Instant> {
        let held: Arc<dyn Held> = self.clone();
        for (i, limiter) in self.settings.limiters().iter().enumerate() {
            match limiter.try_start(now, &held) {
                Ok(Some(slot)) => taken.push((i, slot)),
                Ok(None) => {}
                Err(at) => {
                    self.give_back_starts(taken);
                    return Err(at);
                }
            }
        }
        Ok(())
    }

    /// Gives back the start slots in `taken`, whose task did not start (rule 9).
    fn give_back_starts(&self, taken: &mut Vec<(usize, StartSlot)>) {
        let limiters = self.settings.limiters();
        for (i, slot) in taken.drain(..) {
            limiters[i].give_back_start(slot);
        }
    }

    /// Whether a worker waiting on this job, further down the stack of tasks that hold slots
    /// of its limiters, may take a token: a task pending, a token of the job's own free, and
    /// no limiter that is not lent holds it.
    fn may_run_lent(&self, st: &JobState<F, T>) -> bool {
        st.pending_len() > 0
            && st.running < st.cap
            && !st.rate_wait
            && (!st.held
                || self
                    .settings
                    .limiters()
                    .iter()
                    .all(|l| worker::RunningJob::holds_slot_of(l.id())))
    }

    /// Asks the workers holding claimed tasks of this job to hand back the ones they have not
    /// started (see [`TaskGate::hand_back`]). Called under the job's lock.
    fn ask_for_claimed_tasks(&self) {
        self.gate.ask_back();
    }

    /// Asks for claimed tasks back if a token is free while every task is claimed: the claimed
    /// tasks that have not started would be better off with whoever can take that token (rule
    /// 3). Called under the job's lock, wherever a token frees up or someone finds none to use.
    fn ask_if_a_token_is_idle(&self, st: &JobState<F, T>) {
        if st.pending_len() == 0 && st.running > 0 && st.running < st.cap {
            self.ask_for_claimed_tasks();
        }
    }

    /// This job's identity, to tell it apart from other jobs on a thread's stack of jobs.
    fn id(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as *const () as usize
    }

    /// Tells the pool's listeners, if any, that `kind` happened to this job.
    #[inline]
    fn tell(&self, kind: EventKind) {
        self.registry
            .tell(Some(self.job_id), self.settings.name(), kind);
    }

    #[cold]
    #[inline(never)]
    fn tell_task_ended(&self, index: usize, attempt: u32, outcome: TaskOutcome) {
        self.tell(EventKind::TaskEnded {
            index,
            attempt,
            outcome,
        });
    }

    /// Adds what changed in the job's counts since the last report to the pool's statistics,
    /// on the slot of the worker `worker` says (`None`: the shared one).
    #[inline]
    fn report_counts(&self, st: &mut JobState<F, T>, worker: impl FnOnce() -> Option<usize>) {
        if let Some(new) = st.take_unreported() {
            self.registry.count(worker(), new);
        }
    }

    /// Rule 1: whoever sees the job runnable and not queued marks it queued and pushes it.
    #[inline]
    fn queue_if_runnable(&self, st: &mut JobState<F, T>) -> bool {
        if st.is_runnable() && !st.queued {
            st.queued = true;
            true
        } else {
            false
        }
    }

    /// After any change to the job's state: decides, under the lock, what must follow.
    fn settle(&self, st: &mut JobState<F, T>) -> Settled<T> {
        self.report_counts(st, || self.registry.worker_index());
        let push = self.queue_if_runnable(st);
        // A waiting worker may run a held job on a lent slot: wake it whenever a token of
        // the job's own is free with a task pending, held or not (it looks again).
        if st.helpers > 0 && ((st.pending_len() > 0 && st.running < st.cap) || st.is_finished()) {
            self.token_freed.notify_all();
        }
        if st.result_waiters > 0 || (st.finish_waiters > 0 && st.is_finished()) {
            self.progress.notify_all();
        }
        let finished = if st.is_finished() && !st.finish_reported {
            st.finish_reported = true;
            self.gate.finished.store(true, Relaxed);
            self.tell(EventKind::JobFinished {
                done: st.done,
                failed: st.failed() + st.panicked(),
                not_run: st.cancelled() + st.timed_out(),
            });
            Some(st.take_on_finish().map(|callback| {
                (
                    callback,
                    st.take_results().map_err(|e| e.named(self.settings.name())),
                )
            }))
        } else {
            None
        };
        let wake = st.waker_to_wake();
        Settled {
            push,
            finished,
            wake,
        }
    }

    /// Carries out what `settle` decided, with the job's lock released.
    fn carry_out(self: &Arc<Self>, settled: Settled<T>) {
        if settled.push {
            self.registry.push(self.clone(), self.key());
        }
        if let Some(callback) = settled.finished {
            // The job counts as finished before its callback runs: a callback that drops the
            // last `Pool` handle joins the workers, who wait for every job to finish. (A
            // callback on a worker may still submit during shutdown: that worker takes the job.)
            // A finished job leaves its limiters' lists, which would otherwise keep it (and
            // its results) alive through the limiter it holds itself.
            for limiter in self.settings.limiters() {
                limiter.forget(Arc::as_ptr(self) as *const () as usize);
            }
            self.registry.job_finished();
            if let Some((callback, results)) = callback {
                // A panicking callback must not take the worker down (nor its payload, when
                // dropped); its message was printed by the panic hook already.
                call_quietly(|| callback(results));
            }
        }
        // Last, as the callback: a waker may run its task at once, and that task may drop the
        // last `Pool` handle (rule 8).
        if let Some(waker) = settled.wake {
            wake_quietly(waker);
        }
    }

    /// Locks, applies `change`, settles and carries out: the common path of handle calls.
    fn change<R>(self: &Arc<Self>, change: impl FnOnce(&mut JobState<F, T>) -> R) -> R {
        let mut st = self.state.lock();
        let result = change(&mut st);
        let settled = self.settle(&mut st);
        drop(st);
        self.carry_out(settled);
        result
    }
}

impl<F, T> Schedulable for JobCore<F, T>
where
    F: Task<T>,
    T: Send + 'static,
{
    fn run_popped(self: Arc<Self>, now: Instant) {
        let mut st = self.state.lock();
        st.queued = false;
        if self.registry.cancelling() {
            let dropped = st.cancel_pending();
            let settled = self.settle(&mut st);
            drop(st);
            drop_each_quietly(dropped);
            self.carry_out(settled);
            return;
        }
        if !st.is_runnable() {
            // A stale entry: a helper took the last free token, or every task is claimed.
            // With `queued` cleared, whoever makes the job runnable again (a token returned,
            // tasks handed back, the cap raised) re-queues it (rules 1 and 2); if a token is
            // free, the tasks its holders have not started are asked back (rule 3).
            self.ask_if_a_token_is_idle(&st);
            return;
        }
        match self.take_token(&mut st) {
            Ok(slots) => self.run_with_token(st, Mode::Scheduled, now, slots),
            Err(released) => {
                // Held by a full limiter: it releases the job when a slot frees up (rule 9).
                self.tell(EventKind::JobHeld { until: None });
                drop(st);
                limit::release(released);
            }
        }
    }

    #[inline]
    fn key(&self) -> u64 {
        self.job_key()
    }

    #[inline]
    fn is_finished(&self) -> bool {
        self.gate.finished.load(Relaxed)
    }

    fn on_timer(self: Arc<Self>, now: Instant) {
        let mut st = self.state.lock();
        if st.is_finished() {
            return;
        }
        st.timer_fired();
        let mut dropped = VecDeque::new();
        let deadline = self.settings.deadline().map(|(d, _)| d);
        if self.registry.cancelling() {
            dropped = st.cancel_pending();
        } else if deadline.is_some_and(|d| now >= d) {
            // Under the lock, before the pending tasks time out: a worker that records a chunk
            // after this sees the flag and times out the retries it would have delayed.
            self.gate.stop(TIMED_OUT);
            self.ask_for_claimed_tasks();
            dropped = st.time_out_pending();
        } else {
            // A rate's start slot may be due: the job tries again (rule 9).
            st.rate_wait = false;
            let next = st.release_due(now);
            let next = match (next, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(next) = next {
                if st.needs_timer(next) {
                    self.registry.add_timer(next, self.clone());
                }
            }
        }
        let settled = self.settle(&mut st);
        drop(st);
        drop_each_quietly(dropped);
        self.carry_out(settled);
    }
}

impl<F, T> Held for JobCore<F, T>
where
    F: Task<T>,
    T: Send + 'static,
{
    fn release_hold(self: Arc<Self>) {
        self.change(|st| {
            st.held = false;
            st.rate_wait = false;
        });
    }
}

/// What a [`JobHandle`] can do with a job, whatever its task type.
pub(crate) trait JobControl<T>: Send + Sync {
    fn wait_until(self: Arc<Self>, deadline: Option<Instant>) -> bool;
    /// Blocks until the job has finished, and takes its results (one taking of the job's
    /// lock if it has finished already).
    fn wait(self: Arc<Self>) -> Result<Vec<T>, JobError<T>>;
    fn start_log(&self);
    fn next_completion(self: Arc<Self>, deadline: Option<Instant>) -> Next<T>;
    /// Never blocks: the results once the job has finished, else `Pending` with `cx`'s waker
    /// left for whoever finishes it (rule 8).
    fn poll_finish(&self, cx: &mut Context<'_>) -> Poll<Result<Vec<T>, JobError<T>>>;
    /// Never blocks: the next result or the end, else `Pending` with `cx`'s waker left for
    /// whoever records a result (rule 8).
    fn poll_completion(&self, cx: &mut Context<'_>) -> Poll<Next<T>>;
    /// Takes back the waker a `Pending` poll left, when its future goes away.
    fn forget_waker(&self);
    fn set_cap(self: Arc<Self>, cap: usize);
    fn progress(&self) -> Progress;
    fn on_finish(self: Arc<Self>, callback: FinishCallback<T>);
    fn job_id(&self) -> JobId;
    fn name(&self) -> Option<&str>;
}

/// Cancelling a job, or helping it along, whatever its task and result types.
pub(crate) trait Cancel: Send + Sync {
    fn cancel(self: Arc<Self>);

    /// On one of the pool's own workers: runs the job's tasks while it has a pending task and
    /// a free token (rule 5, without blocking when it has none). Returns whether it ran any.
    fn help(self: Arc<Self>) -> bool;
}

impl<F, T> Cancel for JobCore<F, T>
where
    F: Task<T>,
    T: Send + 'static,
{
    fn cancel(self: Arc<Self>) {
        self.gate.stop(CANCELLED);
        let dropped = self.change(|st| st.cancel_pending());
        drop_each_quietly(dropped);
    }

    fn help(self: Arc<Self>) -> bool {
        if !self.registry.is_current_worker() {
            return false;
        }
        // The graph driver on a worker may be the only one awake to fire timers (rule 9).
        self.registry.fire_timers(Instant::now());
        let mut st = self.state.lock();
        if !self.may_run_lent(&st) {
            return false;
        }
        match self.take_token(&mut st) {
            Ok(slots) => {
                let mode = Mode::Helping {
                    until: None,
                    one_chunk: false,
                };
                self.run_with_token(st, mode, Instant::now(), slots);
                true
            }
            Err(released) => {
                drop(st);
                limit::release(released);
                false
            }
        }
    }
}

/// The answer of `JobControl::next_completion`.
pub(crate) enum Next<T> {
    Ready(usize, Result<T, TaskError>),
    TimedOut,
    Exhausted,
}

impl<F, T> JobControl<T> for JobCore<F, T>
where
    F: Task<T>,
    T: Send + 'static,
{
    fn wait_until(self: Arc<Self>, deadline: Option<Instant>) -> bool {
        JobCore::wait_until(&self, deadline)
    }

    fn wait(self: Arc<Self>) -> Result<Vec<T>, JobError<T>> {
        let results = self.wait_for(None, Awaited::Finish, |st| {
            st.is_finished().then(|| st.take_results())
        });
        match results {
            Some(results) => results.map_err(|e| e.named(self.settings.name())),
            None => unreachable!("a wait without a deadline ends with the job"),
        }
    }

    fn start_log(&self) {
        let mut st = self.state.lock();
        st.start_log();
        self.gate.want_results();
    }

    fn next_completion(self: Arc<Self>, deadline: Option<Instant>) -> Next<T> {
        let next = self.wait_for(deadline, Awaited::Result, JobState::next_outcome);
        next.unwrap_or(Next::TimedOut)
    }

    fn poll_finish(&self, cx: &mut Context<'_>) -> Poll<Result<Vec<T>, JobError<T>>> {
        self.poll_for(cx, |st| {
            st.is_finished()
                .then(|| st.take_results().map_err(|e| e.named(self.settings.name())))
        })
    }

    fn poll_completion(&self, cx: &mut Context<'_>) -> Poll<Next<T>> {
        self.poll_for(cx, JobState::next_outcome)
    }

    fn forget_waker(&self) {
        self.drop_waker();
    }

    fn set_cap(self: Arc<Self>, cap: usize) {
        // Raising the cap makes the job runnable again, and `settle` queues it (rule 1);
        // lowering it takes effect as running tasks end (rule 3).
        self.change(|st| {
            if cap < st.cap {
                // Under the lock, so a worker that reads it when it claims a chunk sees
                // either the old cap and the old value, or the new cap and the new value.
                self.ask_for_claimed_tasks();
            }
            st.cap = cap;
            // A raised cap with every task claimed: the new tokens need tasks to run.
            self.ask_if_a_token_is_idle(st);
        });
    }

    fn job_id(&self) -> JobId {
        self.job_id
    }

    fn name(&self) -> Option<&str> {
        self.settings.name().map(|name| &**name)
    }

    fn progress(&self) -> Progress {
        let st = self.state.lock();
        let waiting = st.waiting_retry();
        Progress {
            total: st.total(),
            pending: st.total() - st.ended() - waiting - st.running.min(st.total() - st.ended()),
            running: st.running,
            done: st.done,
            panicked: st.panicked(),
            cancelled: st.cancelled(),
            failed: st.failed(),
            timed_out: st.timed_out(),
            waiting_retry: waiting,
            retries: st.retries(),
            held: st.held || st.rate_wait,
            cap: st.cap,
            peak_running: st.peak_running,
        }
    }

    fn on_finish(self: Arc<Self>, callback: FinishCallback<T>) {
        let mut st = self.state.lock();
        if st.finish_reported {
            // Finished before the callback came: it runs here and now.
            let results = st.take_results().map_err(|e| e.named(self.settings.name()));
            drop(st);
            call_quietly(|| callback(results));
        } else {
            st.set_on_finish(callback);
        }
    }
}

/// Builds a job from its tasks and admits it to the registry.
pub(crate) fn spawn<F, T>(
    registry: &Arc<Registry>,
    tasks: VecDeque<F>,
    cap: usize,
    settings: Settings,
    retry_budget: usize,
) -> Result<JobHandle<T>, (crate::SubmitErrorKind, VecDeque<F>)>
where
    F: Task<T>,
    T: Send + 'static,
{
    let has_tasks = !tasks.is_empty();
    let deadline = settings.deadline.map(|(d, _)| d);
    let tasks_len = tasks.len();
    // Set before the job is shared (no lock to take): `admit` pushes its entry (README.md,
    // rule 1), and its deadline's timer is added below.
    let mut state = JobState::new(tasks, cap, retry_budget);
    if has_tasks {
        state.queued = true;
        if let Some(deadline) = deadline {
            let _set = state.needs_timer(deadline);
        }
    } else {
        state.finish_reported = true;
    }
    let job = Arc::new(JobCore::new(registry.clone(), state, settings));
    let entry: Option<Arc<dyn Schedulable>> =
        has_tasks.then(|| job.clone() as Arc<dyn Schedulable>);
    let submitted = || {
        job.tell(EventKind::JobSubmitted {
            tasks: tasks_len,
            cap,
            priority: job.settings.priority,
        })
    };
    match registry.admit(entry, submitted) {
        Ok(()) => {
            if let (true, Some(deadline)) = (has_tasks, deadline) {
                registry.add_timer(deadline, job.clone());
            }
            if !has_tasks {
                // Finished as it was made: its end follows its submission at once.
                job.tell(EventKind::JobFinished {
                    done: 0,
                    failed: 0,
                    not_run: 0,
                });
            }
            Ok(JobHandle::new(job.clone(), job))
        }
        Err(kind) => {
            let tasks = std::mem::take(&mut job.state.lock().pending);
            Err((kind, tasks))
        }
    }
}

/// Publishes, for `Pool::stats`, that a worker is in a turn of a job, until dropped (then what
/// it was in before: the outer job, for a worker that runs a job it waits on).
struct InTurn<'a> {
    registry: &'a Registry,
    worker: usize,
    before: u64,
}

impl<'a> InTurn<'a> {
    #[inline]
    fn new(registry: &'a Registry, worker: usize, job: JobId) -> Self {
        let before = registry.set_current_job(worker, job.get());
        InTurn {
            registry,
            worker,
            before,
        }
    }
}

impl Drop for InTurn<'_> {
    #[inline]
    fn drop(&mut self) {
        self.registry.set_current_job(self.worker, self.before);
    }
}
#[cfg(all(test, not(loom)))]
mod size_tests {
    use std::mem::{align_of, size_of};

    /// A plain job's shared state, its `Arc`'s one allocation (two counts, then the core), is
    /// at most 256 bytes: what few jobs use is boxed apart (`JobSettings`, `state::Rare`).
    #[test]
    fn a_plain_jobs_shared_state_fits_in_256_bytes() {
        type Core = super::JobCore<fn(), ()>;
        let header = (2 * size_of::<usize>()).next_multiple_of(align_of::<Core>());
        let shared = header + size_of::<Core>();
        assert!(shared <= 256, "a job's shared state is {shared} bytes");
    }
}
