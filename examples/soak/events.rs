//! Events: in about half the rounds the pool has a listener ([`Pool::events`]), read by a
//! thread of its own while the round runs, and in some of those a second, tiny listener that
//! is never read, so that it drops events under the round's load. Once the round's pool is gone
//! (its events then end), every job's events are checked against the order the pool promises,
//! against each other, against what the job's tasks counted in their ledger, and their sums
//! against [`Pool::stats`].
//!
//! # What it checks
//!
//! Per job, on whatever the listener received (a listener that was full lost events, but what
//! it kept is in the order told, so these hold for any listener):
//!
//! - `JobSubmitted` comes first, `JobFinished` last, each at most once, `JobStarted` at most
//!   once and before any task event;
//! - a task's events come attempt after attempt, each attempt's `TaskStarted` before its
//!   `TaskEnded`, on the same worker (one of the pool's); a `TaskEnded` `Cancelled` or
//!   `TimedOut` (a task claimed, never started) has no start; nothing follows a task's end
//!   other than `Retrying`;
//! - `JobFinished`'s counts add up to the job's tasks, and are no fewer than the ends told.
//!
//! If the listener lost nothing, also:
//!
//! - every job has its `JobSubmitted` and `JobFinished`, every attempt started has its end, and
//!   the attempts of a task are numbered 1, 2, ... with only the last ending other than
//!   `Retrying`;
//! - `JobFinished` says `done` for exactly the tasks whose last end was `Done`, `failed` for
//!   those that failed or panicked (and perhaps some whose retry never came: the retry budget
//!   refused it), `not_run` for the rest;
//! - every job the soak's ledgers say was accepted has its events: its task count, one
//!   `TaskStarted` per run its tasks counted, and one `done` per result they made;
//! - every module of a graph ends once, after its start if it had one, and the round's graph
//!   runs all show;
//! - when the round ended with `shutdown` or `shutdown_now` (after which every job finished,
//!   and the statistics are exact), `Pool::stats()` counts the tasks done, failed and not run
//!   that the `JobFinished` events add up to, and retries between those a next attempt
//!   followed and every `Retrying` end;
//! - the tiny listener kept the first events told, as many as it had room for, and counted
//!   every other one dropped.
//!
//! If the listener lost some, the round skips these and counts what was lost.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use jobpool::{EventKind, Events, JobId, Pool, PoolEvent, Stats, TaskOutcome};

use crate::monitor::{fail, lock, step};
use crate::rng::Rng;
use crate::round::RoundState;

/// How many events the read listener holds between two reads: a round tells a few hundred on
/// average, and the reader takes them every [`READ_EVERY`]. The channel's slots are made when
/// it is: a bigger one costs a listened round more than its events do.
const CAPACITY: usize = 4096;
/// How often the reader thread takes what the listener holds: a timer, not a way to order
/// anything. Blocking in `recv` instead would have workers wake the reader at every event.
const READ_EVERY: Duration = Duration::from_micros(500);
/// The most events the tiny listener holds.
const TINY_MAX: usize = 8;
/// Mixed into the seed of the listeners' own generator: drawing from the round's generator
/// would have changed every round's plan, and the replays of failures found before.
const SALT: u64 = 0x6576_656E_7473; // "events"
/// The most events a failure report lists of a job.
const REPORT_EVENTS: usize = 40;

/// Whether a round listens, and with a tiny listener of what capacity.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListenPlan {
    tiny: Option<usize>,
}

/// Round `round` of `seed` listens half the time, and half of those with a tiny listener
/// too; drawn from a generator of (seed, round), so that a replay listens alike.
pub(crate) fn plan_listeners(seed: u64, round: u64) -> Option<ListenPlan> {
    let mut rng = Rng::for_round(seed ^ SALT, round);
    rng.percent(50).then(|| ListenPlan {
        tiny: rng.percent(50).then(|| rng.range(1, TINY_MAX)),
    })
}

impl fmt::Display for ListenPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tiny {
            Some(tiny) => write!(f, "listened to (and by a tiny listener of {tiny})"),
            None => f.write_str("listened to"),
        }
    }
}

/// A round's listeners, from the moment its pool is built (before any job, so that every job
/// is heard from its submission on).
pub(crate) struct Listening {
    plan: ListenPlan,
    threads: usize,
    reader: JoinHandle<(Events, Vec<PoolEvent>)>,
    stop: Arc<AtomicBool>,
    tiny: Option<Events>,
}

impl Listening {
    pub(crate) fn start(pool: &Pool, plan: ListenPlan) -> Listening {
        let events = pool.events(CAPACITY);
        let tiny = plan.tiny.map(|capacity| pool.events(capacity));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            thread::Builder::new()
                .name("soak-events".into())
                .spawn(move || read(events, &stop))
                .unwrap_or_else(|err| fail(format_args!("starting the events reader: {err}")))
        };
        Listening {
            plan,
            threads: pool.threads(),
            reader,
            stop,
            tiny,
        }
    }

    /// Once every task, result and callback of the round is gone and the pool was shut down
    /// or dropped: reads the events to their end (they end once the pool, its workers and its
    /// jobs are gone) and checks them. `stats`: the pool's, read once `shutdown` returned.
    pub(crate) fn check(self, number: u64, round: &RoundState, stats: Option<Stats>) -> EventStats {
        step(format!(
            "round {number}: reading the pool's events to their end (they end once the pool, \
             its workers and every job are gone)"
        ));
        self.stop.store(true, SeqCst);
        self.reader.thread().unpark();
        let (events, mut got) = self
            .reader
            .join()
            .unwrap_or_else(|_| fail("the events reader thread panicked"));
        got.extend(events.iter());
        let lost = events.dropped();
        step(format!("round {number}: checking {} events", got.len()));
        let heard = Heard::sort(&got, lost == 0, self.threads, round);
        let mut counts = EventStats {
            rounds: 1,
            events: got.len() as u64,
            lost,
            jobs: heard.jobs.len() as u64,
            ..EventStats::default()
        };
        if lost == 0 {
            counts.complete = 1;
            heard.check_ledgers(round);
            heard.check_graphs(round);
            if let Some(stats) = stats {
                heard.check_stats(&stats);
                counts.stats = 1;
            }
        }
        if let (Some(tiny), Some(capacity)) = (self.tiny, self.plan.tiny) {
            counts.tiny = 1;
            counts.tiny_dropped = tiny.dropped();
            check_tiny(&tiny, capacity, &got, lost);
        }
        counts
    }
}

/// The reader thread: takes what the listener holds every [`READ_EVERY`] until told to stop
/// (the test thread reads the rest).
fn read(events: Events, stop: &AtomicBool) -> (Events, Vec<PoolEvent>) {
    let mut got = Vec::new();
    while !stop.load(SeqCst) {
        got.extend(events.try_iter());
        thread::park_timeout(READ_EVERY);
    }
    (events, got)
}

/// The tiny listener, never read, held the first events told, as many as fit, and dropped
/// every other one.
fn check_tiny(tiny: &Events, capacity: usize, got: &[PoolEvent], lost: u64) {
    let kept: Vec<PoolEvent> = tiny.iter().collect();
    let dropped = tiny.dropped();
    let told = got.len() as u64 + lost;
    let fits = capacity.min(told as usize);
    if kept.len() as u64 + dropped != told || kept.len() != fits {
        fail(format_args!(
            "events: a listener of {capacity} never read kept {} events and dropped {dropped}; \
             the pool told {told} (the listener read received {}, lost {lost})",
            kept.len(),
            got.len()
        ));
    }
    if lost == 0 {
        let same = |a: &PoolEvent, b: &PoolEvent| {
            (a.time, a.worker, a.job, &a.kind) == (b.time, b.worker, b.job, &b.kind)
        };
        if let Some(at) = (0..fits).find(|&i| !same(&kept[i], &got[i])) {
            fail(format_args!(
                "events: a listener of {capacity} never read holds {:?} as event {at}; the \
                 listener read got {:?}",
                kept[at], got[at]
            ));
        }
    }
}

/// What the listeners of the rounds heard.
#[derive(Default, Clone, Copy)]
pub(crate) struct EventStats {
    /// Rounds listened to.
    pub(crate) rounds: u64,
    /// Of them, rounds whose listener lost nothing (checked in full).
    pub(crate) complete: u64,
    pub(crate) events: u64,
    /// Events the read listener lost, being full.
    pub(crate) lost: u64,
    /// Jobs whose events were checked.
    pub(crate) jobs: u64,
    /// Rounds whose statistics were held against their events (heard in full, and ended
    /// with `shutdown` or `shutdown_now`).
    pub(crate) stats: u64,
    /// Rounds with a tiny listener, and the events it dropped.
    pub(crate) tiny: u64,
    pub(crate) tiny_dropped: u64,
}

impl EventStats {
    pub(crate) fn add(&mut self, other: &EventStats) {
        self.rounds += other.rounds;
        self.complete += other.complete;
        self.events += other.events;
        self.lost += other.lost;
        self.jobs += other.jobs;
        self.stats += other.stats;
        self.tiny += other.tiny;
        self.tiny_dropped += other.tiny_dropped;
    }
}

impl fmt::Display for EventStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rounds listened to ({} heard in full, {} held against the statistics), {} events \
             of {} jobs checked, {} lost; {} tiny listeners dropped {}",
            self.rounds,
            self.complete,
            self.stats,
            self.events,
            self.jobs,
            self.lost,
            self.tiny,
            self.tiny_dropped
        )
    }
}

/// The events of a round, by job and by graph module, each job's already checked.
struct Heard<'a> {
    jobs: HashMap<JobId, Tally<'a>>,
    /// A graph's module events, by (run, module).
    modules: HashMap<(u64, &'a str), Vec<&'a PoolEvent>>,
}

impl<'a> Heard<'a> {
    /// Sorts the events by job and module, and checks each job's; `complete`: the listener
    /// lost none.
    fn sort(
        events: &'a [PoolEvent],
        complete: bool,
        threads: usize,
        round: &RoundState,
    ) -> Heard<'a> {
        let mut jobs: HashMap<JobId, Vec<&PoolEvent>> = HashMap::new();
        let mut modules: HashMap<(u64, &str), Vec<&PoolEvent>> = HashMap::new();
        for event in events {
            match (event.job, &event.kind) {
                (None, EventKind::ModuleStarted { run } | EventKind::ModuleEnded { run, .. }) => {
                    let Some(name) = event.name.as_deref() else {
                        fail(format_args!(
                            "events: a module event with no name: {event:?}"
                        ))
                    };
                    modules.entry((*run, name)).or_default().push(event);
                }
                (Some(job), _) => jobs.entry(job).or_default().push(event),
                (None, _) => fail(format_args!("events: an event of no job: {event:?}")),
            }
        }
        let jobs = jobs
            .into_iter()
            .map(|(id, events)| {
                let tally = Tally::check(&events, complete, threads)
                    .unwrap_or_else(|what| fail(job_failure(id, &events, &what, round)));
                (id, tally)
            })
            .collect();
        Heard { jobs, modules }
    }

    /// Every accepted job of the soak's ledgers was heard, as its tasks counted.
    fn check_ledgers(&self, round: &RoundState) {
        for ledger in lock(&round.jobs).iter() {
            if !ledger.accepted.load(SeqCst) {
                continue;
            }
            let Some(&id) = ledger.job_id.get() else {
                fail(format_args!("{}: accepted, with no job id", ledger.label))
            };
            let Some(tally) = self.jobs.get(&id) else {
                fail(format_args!(
                    "events: {} ({id}): accepted, yet no event of it was told",
                    ledger.label
                ))
            };
            let wrong = |what: String| -> ! {
                fail(format_args!("events: {} ({id}): {what}", ledger.label))
            };
            if tally.tasks != Some(ledger.total()) {
                wrong(format!(
                    "submitted with {} tasks, told {:?}",
                    ledger.total(),
                    tally.tasks
                ));
            }
            for (index, runs) in ledger.runs.iter().enumerate() {
                let (runs, told) = (runs.load(SeqCst), tally.starts(index));
                if runs != told {
                    wrong(format!(
                        "task {index} counted {runs} runs; {told} starts were told"
                    ));
                }
            }
            let made = ledger.results_made.load(SeqCst);
            if tally.finished.map(|f| f.0) != Some(made) {
                wrong(format!(
                    "its tasks made {made} results; its end was told as {:?} (done, failed, \
                     not run)",
                    tally.finished
                ));
            }
        }
    }

    /// Every module of every graph run ended once, after its start if it had one, and every
    /// graph the round ran was heard.
    fn check_graphs(&self, round: &RoundState) {
        for (&(run, module), events) in &self.modules {
            let kinds: Vec<bool> = events
                .iter()
                .map(|e| matches!(e.kind, EventKind::ModuleEnded { .. }))
                .collect();
            if kinds != [true] && kinds != [false, true] {
                fail(format_args!(
                    "events: module {module} of graph run {run}: told {events:?}; a module \
                     ends once, after its start if it had one"
                ));
            }
        }
        let mut runs: Vec<u64> = self.modules.keys().map(|&(run, _)| run).collect();
        runs.sort_unstable();
        runs.dedup();
        let graphs = round.graphs.load(SeqCst);
        if runs.len() != graphs {
            fail(format_args!(
                "events: {graphs} graphs ran, the events tell of {} runs",
                runs.len()
            ));
        }
    }

    /// The statistics, read once `shutdown` returned, count what the jobs' ends add up to.
    fn check_stats(&self, stats: &Stats) {
        let (mut done, mut failed, mut not_run) = (0, 0, 0);
        let (mut retried, mut retrying) = (0, 0);
        for tally in self.jobs.values() {
            if let Some((d, f, n)) = tally.finished {
                (done, failed, not_run) = (done + d as u64, failed + f as u64, not_run + n as u64);
            }
            retried += tally.retried;
            retrying += tally.retrying;
        }
        let counted = (stats.tasks_done, stats.tasks_failed, stats.tasks_not_run);
        if counted != (done, failed, not_run) || stats.retries < retried || stats.retries > retrying
        {
            fail(format_args!(
                "events: after shutdown, Pool::stats() counts {counted:?} tasks (done, failed, \
                 not run) and {} retries; the jobs' ends add up to {:?}, and {retrying} attempts \
                 ended retrying, {retried} of them followed by a next attempt ({stats})",
                stats.retries,
                (done, failed, not_run)
            ));
        }
    }
}

/// What a job's events add up to, once checked.
#[derive(Default)]
struct Tally<'a> {
    /// The task count `JobSubmitted` told, if heard.
    tasks: Option<usize>,
    /// `JobFinished`'s (done, failed, not run), if heard.
    finished: Option<(usize, usize, usize)>,
    /// Each task's events, in order.
    task_events: HashMap<usize, Vec<TaskEvent<'a>>>,
    /// Attempts that ended `Retrying`, and those of them a next attempt followed.
    retrying: u64,
    retried: u64,
}

/// One of a task's events.
#[derive(Clone, Copy)]
struct TaskEvent<'a> {
    attempt: u32,
    /// `None` for `TaskStarted`.
    end: Option<TaskOutcome>,
    event: &'a PoolEvent,
}

impl TaskEvent<'_> {
    /// Where it belongs in the task's history: attempt by attempt, each start before its end.
    fn key(&self) -> (u32, bool) {
        (self.attempt, self.end.is_some())
    }
}

/// The ends of a task claimed and never started.
fn unstarted(outcome: TaskOutcome) -> bool {
    matches!(outcome, TaskOutcome::Cancelled | TaskOutcome::TimedOut)
}

impl<'a> Tally<'a> {
    /// Checks a job's events; `complete`: the listener lost none.
    fn check(events: &[&'a PoolEvent], complete: bool, threads: usize) -> Result<Self, String> {
        let mut tally = Tally::default();
        let mut started_at = None;
        let mut first_task_event = None;
        for (at, &event) in events.iter().enumerate() {
            let (index, attempt, end) = match event.kind {
                EventKind::JobSubmitted { tasks, .. } => {
                    if at != 0 {
                        return Err(format!("JobSubmitted is event {at}, not the first"));
                    }
                    tally.tasks = Some(tasks);
                    continue;
                }
                EventKind::JobStarted => {
                    if started_at.replace(at).is_some() {
                        return Err("JobStarted twice".into());
                    }
                    continue;
                }
                EventKind::JobHeld { .. } => continue,
                EventKind::JobFinished {
                    done,
                    failed,
                    not_run,
                } => {
                    if at != events.len() - 1 {
                        return Err(format!(
                            "JobFinished is event {at} of {}: events came after it",
                            events.len()
                        ));
                    }
                    tally.finished = Some((done, failed, not_run));
                    continue;
                }
                EventKind::TaskStarted { index, attempt } => (index, attempt, None),
                EventKind::TaskEnded {
                    index,
                    attempt,
                    outcome,
                } => (index, attempt, Some(outcome)),
                ref other => return Err(format!("a job's event of kind {other:?}")),
            };
            first_task_event.get_or_insert(at);
            if !event.worker.is_some_and(|w| w < threads) {
                return Err(format!(
                    "event {at}, of task {index}, on {:?}: not one of the pool's {threads} workers",
                    event.worker
                ));
            }
            if attempt == 0 || tally.tasks.is_some_and(|tasks| index >= tasks) {
                return Err(format!("event {at}: attempt {attempt} of task {index}"));
            }
            tally.task_events.entry(index).or_default().push(TaskEvent {
                attempt,
                end,
                event,
            });
        }
        match (started_at, first_task_event) {
            (Some(started), Some(task)) if task < started => {
                return Err(format!("a task event (event {task}) before JobStarted"));
            }
            (None, Some(task)) if complete => {
                return Err(format!("a task event (event {task}), and no JobStarted"));
            }
            _ => {}
        }
        let mut ends = [0usize; 4]; // done, failed, not run, retrying: by each task's last end
        for (&index, steps) in &tally.task_events {
            check_task_order(steps).map_err(|what| format!("task {index}: {what}"))?;
            if complete {
                check_task_complete(steps).map_err(|what| format!("task {index}: {what}"))?;
            }
            for (n, step) in steps.iter().enumerate() {
                if let Some(TaskOutcome::Retrying { .. }) = step.end {
                    tally.retrying += 1;
                    tally.retried += u64::from(n + 1 < steps.len());
                }
            }
            match steps.last().and_then(|s| s.end) {
                Some(TaskOutcome::Done) => ends[0] += 1,
                Some(TaskOutcome::Failed | TaskOutcome::Panicked) => ends[1] += 1,
                Some(outcome) if unstarted(outcome) => ends[2] += 1,
                Some(TaskOutcome::Retrying { .. }) => ends[3] += 1,
                _ => {}
            }
        }
        if complete && (tally.tasks.is_none() || tally.finished.is_none()) {
            return Err("no JobSubmitted first, or no JobFinished last".into());
        }
        if let (Some(tasks), Some((done, failed, not_run))) = (tally.tasks, tally.finished) {
            let [ends_done, ends_failed, ends_not_run, ends_retrying] = ends;
            let told = format!(
                "its end told {done} done, {failed} failed, {not_run} not run, of {tasks} tasks; \
                 {ends_done} tasks ended done, {ends_failed} failed or panicked, {ends_not_run} \
                 cancelled or timed out once claimed, {ends_retrying} retrying"
            );
            if done + failed + not_run != tasks
                || done < ends_done
                || failed < ends_failed
                || not_run < ends_not_run
            {
                return Err(told);
            }
            // Told in full, a task's last end says how it ended, except `Retrying`: a retry the
            // budget refused (failed), or one cancelled or timed out before it came (not run).
            if complete && (done != ends_done || failed > ends_failed + ends_retrying) {
                return Err(told);
            }
        }
        Ok(tally)
    }

    /// How many times task `index` was told started.
    fn starts(&self, index: usize) -> usize {
        self.task_events
            .get(&index)
            .map_or(0, |steps| steps.iter().filter(|s| s.end.is_none()).count())
    }
}

/// The order of a task's events, of which some may have been lost: attempt after attempt, each
/// start before its end and on the same worker, a claimed task's `Cancelled` or `TimedOut` with
/// no start, and nothing after an end other than `Retrying`.
fn check_task_order(steps: &[TaskEvent<'_>]) -> Result<(), String> {
    for pair in steps.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        if after.key() <= before.key() {
            return Err(format!(
                "{:?} after {:?}: out of order",
                after.event.kind, before.event.kind
            ));
        }
        match (before.end, after.end) {
            (Some(TaskOutcome::Retrying { .. }), _) => {}
            (Some(end), _) => {
                return Err(format!("{:?} after its end ({end})", after.event.kind));
            }
            (None, Some(end)) if after.attempt == before.attempt => {
                if unstarted(end) {
                    return Err(format!(
                        "attempt {} started, then ended {end}, as unstarted",
                        after.attempt
                    ));
                }
                if after.event.worker != before.event.worker {
                    return Err(format!(
                        "attempt {} started on worker {:?}, ended on {:?}",
                        after.attempt, before.event.worker, after.event.worker
                    ));
                }
            }
            // A later attempt: the end of this one was lost (a listener told everything has
            // it, `check_task_complete`).
            (None, _) => {}
        }
    }
    Ok(())
}

/// A task's events, every one told: attempts 1, 2, ... each a start and an end, every end but
/// the last `Retrying`; or, last, a claimed attempt's `Cancelled` or `TimedOut` alone.
fn check_task_complete(steps: &[TaskEvent<'_>]) -> Result<(), String> {
    let mut at = 0;
    let mut attempt = 1;
    while at < steps.len() {
        let step = steps[at];
        if step.attempt != attempt {
            return Err(format!(
                "{:?} where attempt {attempt} was due",
                step.event.kind
            ));
        }
        let end = match step.end {
            Some(end) if unstarted(end) => end,
            Some(end) => return Err(format!("attempt {attempt} ended {end}, never started")),
            None => match steps.get(at + 1).and_then(|s| s.end) {
                Some(end) => {
                    at += 1;
                    end
                }
                None => return Err(format!("attempt {attempt} started, never ended")),
            },
        };
        at += 1;
        match end {
            TaskOutcome::Retrying { .. } => attempt += 1,
            end if at < steps.len() => {
                return Err(format!("attempt {attempt} ended {end}, and more came"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A failure report of job `id`: what is wrong, which job it is, and what was heard of it.
fn job_failure(id: JobId, events: &[&PoolEvent], what: &str, round: &RoundState) -> String {
    let mut report = format!("events: {id}");
    let jobs = lock(&round.jobs);
    if let Some(ledger) = jobs.iter().find(|j| j.job_id.get() == Some(&id)) {
        let _ = write!(report, " ({})", ledger.label);
    } else if let Some(name) = events.iter().find_map(|e| e.name.as_deref()) {
        let _ = write!(report, " (named {name:?}: a graph's module)");
    } else {
        report.push_str(" (not the soak's: a graph's condition)");
    }
    let _ = write!(report, ": {what}; its events, as heard:");
    for (at, event) in events.iter().enumerate().take(REPORT_EVENTS) {
        let _ = write!(
            report,
            "\n    {at}: {:?} on worker {:?}",
            event.kind, event.worker
        );
    }
    if events.len() > REPORT_EVENTS {
        let _ = write!(report, "\n    ... {} more", events.len() - REPORT_EVENTS);
    }
    report
}
