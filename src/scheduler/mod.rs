//! The registry: the shared run queue of jobs, and how idle workers sleep and wake.
//!
//! The protocol that connects this module with the jobs (who may put a job in the run queue,
//! when a token comes back, and why no wake-up is ever lost) is written down in `README.md`
//! beside this file.

#[cfg(all(test, not(loom)))]
mod admit_tests;
mod aside;
#[cfg(all(test, not(loom)))]
mod ask_tests;
mod inbox;
#[cfg(all(test, loom))]
mod inbox_tests;
#[cfg(test)]
mod key_job;
pub(crate) mod priority;
mod run_queue;
mod timers;
pub(crate) mod worker;

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::utils::CachePadded;

use crate::error::SubmitErrorKind;
use crate::observe::{self, Counters, Counts, EventKind, JobId, Listeners, PoolEvent, Stats};
use crate::sync::{
    fence, thread, AtomicBool, AtomicU64, AtomicUsize, Condvar, Instant, Mutex, MutexGuard,
};
use crate::unwind::{call_quietly, drop_each_quietly};
use aside::Aside;
use inbox::Inbox;
use priority::Priority;
use run_queue::RunQueue;
use timers::Timers;

/// A job as the scheduler sees it: something a worker can pop from the run queue and run.
pub(crate) trait Schedulable: Send + Sync + 'static {
    /// Runs the job on the current worker after it was popped from the run queue at `now`:
    /// takes a token if one is free and runs tasks while the scheduler's rules allow.
    fn run_popped(self: Arc<Self>, now: Instant);

    /// The job's key in the run queue: its priority, stage and rank (`priority.rs`); for a
    /// plain job the rank is its attained service, the nanoseconds its tasks have run.
    fn key(&self) -> u64;

    /// A timer the job set has fired at `now` (or the pool is cancelling every task): the job
    /// looks at what is due (README.md, rule 9).
    fn on_timer(self: Arc<Self>, now: Instant);

    /// Whether every task of the job has an outcome. Such a job can never be runnable again,
    /// so its run-queue entry is dead and can be dropped without a look at the job (README.md,
    /// rule 2). A job whose tasks are merely all claimed is not dead: a claimed task may be
    /// handed back unstarted.
    fn is_finished(&self) -> bool;
}

/// How many times an idle worker looks at the run queue, yielding its core in between, before
/// it goes to sleep. Spinning briefly saves a sleep and a wake-up (a context switch each) when
/// work arrives in quick succession, as when a program submits many small jobs in a loop.
#[cfg(not(loom))]
const SPIN_ROUNDS: usize = 32;
/// Under loom every yield is a scheduling point to explore: spin once.
#[cfg(loom)]
const SPIN_ROUNDS: usize = 1;

/// The state shared by a pool's workers and handles.
pub(crate) struct Registry {
    /// Tells the pool's worker threads apart from every other thread (see `worker.rs`).
    id: usize,
    threads: usize,
    time_slice: Duration,
    /// The run queue and the counts of idle workers (see README.md). On cache lines of its
    /// own: every submission and every look at the queue takes this lock, and before the
    /// padding its word shared a line with fields read on every submission and its data one
    /// with `queued_min`, read after every chunk.
    shared: CachePadded<Mutex<Shared>>,
    /// Idle workers sleep here; notified under `shared`'s lock (see README.md).
    work_available: Condvar,
    /// `shared.queue.min_key()`, readable without the lock: how little service the least served
    /// queued job has had. Written under the lock; read `Relaxed` by workers deciding whether to
    /// yield (a heuristic) and by spinning workers (who re-check under the lock).
    queued_min: AtomicU64,
    /// Jobs accepted and not yet finished (their completion callbacks included). Written by
    /// every submission and every job's end: on a cache line of its own, away from the fields
    /// workers read after every chunk.
    live_jobs: CachePadded<AtomicUsize>,
    /// The instant timers count from.
    epoch: Instant,
    /// The earliest timer, in nanoseconds since `epoch` (`u64::MAX`: none). Written under the
    /// lock; read `Relaxed` by busy workers after each chunk, who then take the lock and fire
    /// what is due (a stale value only makes a timer fire one chunk later, or a look for
    /// nothing).
    next_timer: AtomicU64,
    /// What a worker checks before every task, whatever the job: on a cache line of its own,
    /// away from `queued_min` and the lock, written only when it changes.
    gate: CachePadded<PoolGate>,
    /// Who listens to the pool's events (`observe/listeners.rs`).
    listeners: CachePadded<Listeners>,
    /// The counts behind `Pool::stats`, one slot per worker (`observe/stats.rs`).
    counters: Counters,
    /// The entries workers in a turn keep aside instead of pushing them (`aside.rs`, rule 11).
    aside: Aside,
    /// Jobs submitted while every worker was busy behind a job at least as urgent, not yet in
    /// the run queue (`inbox.rs`, rule 12). On cache lines of its own: the submitters write
    /// it, and the workers read it at every look for work.
    inbox: CachePadded<Inbox>,
}

/// The pool-wide flags a worker checks before each task.
#[derive(Default)]
struct PoolGate {
    /// Set once by `shutdown(cancel = true)`: pending tasks are cancelled instead of run.
    cancel_all: AtomicBool,
    /// Bumped when the least queued key falls (a job is queued that goes before every queued
    /// one) while no worker is idle to take it: every worker in a chunk then ends it after its
    /// current task and looks at the run queue's fairness rule, so that job is not held up by
    /// a chunk of tasks that turned long (README.md, rule 3).
    /// Bumped (`Release`) as well once `cancel_all` is set, so that it is the one pool-wide
    /// word a worker compares before each task.
    yield_requests: AtomicU64,
}

/// What `Registry::shared` guards.
struct Shared {
    queue: RunQueue,
    /// Workers blocked on `work_available`.
    sleepers: usize,
    /// Idle workers polling the queue between yields; each re-checks under the lock before
    /// it sleeps, so a job pushed while one spins needs no notification.
    spinners: usize,
    /// Notifications sent to sleepers that have not woken up yet.
    wakeups: usize,
    /// No more jobs from outside the pool; workers leave once no job is live.
    shutdown: bool,
    /// Workers that have left (rule 7). Once all have, no job can be live again, and an entry
    /// or a timer still handed in is of a finished job: it is dropped, not kept.
    workers_left: usize,
    /// The value last written to `Registry::queued_min`.
    published_min: u64,
    /// The inbox's entries, swapped out at each drain: the two vectors keep their capacity, so
    /// that neither a submission nor a drain allocates.
    drained: Vec<(Arc<dyn Schedulable>, u64)>,
    timers: Timers,
}

impl Registry {
    pub(crate) fn new(threads: usize, time_slice: Duration, aging_turns: usize) -> Registry {
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        Registry {
            id: NEXT_ID.fetch_add(1, Relaxed),
            threads,
            time_slice,
            shared: CachePadded::new(Mutex::new(Shared {
                queue: RunQueue::new(aging_turns),
                sleepers: 0,
                spinners: 0,
                wakeups: 0,
                shutdown: false,
                workers_left: 0,
                published_min: u64::MAX,
                drained: Vec::new(),
                timers: Timers::default(),
            })),
            work_available: Condvar::new(),
            queued_min: AtomicU64::new(u64::MAX),
            live_jobs: CachePadded::new(AtomicUsize::new(0)),
            epoch: Instant::now(),
            next_timer: AtomicU64::new(u64::MAX),
            gate: CachePadded::new(PoolGate::default()),
            listeners: CachePadded::new(Listeners::default()),
            counters: Counters::new(threads),
            aside: Aside::new(threads),
            inbox: CachePadded::new(Inbox::new()),
        }
    }

    /// The index of the current thread among this pool's workers, or `None` for another
    /// thread.
    #[inline]
    pub(crate) fn worker_index(&self) -> Option<usize> {
        worker::worker_index_in(self.id)
    }

    /// Whether anyone listens to the pool's events: one load.
    #[inline]
    pub(crate) fn listening(&self) -> bool {
        self.listeners.listening()
    }

    /// A new listener to the pool's events.
    pub(crate) fn subscribe(&self, capacity: usize) -> observe::Events {
        self.listeners.subscribe(capacity)
    }

    /// Tells the listeners, if any, that `kind` happened to job `job` (named `name`), now, on
    /// this thread.
    #[inline]
    pub(crate) fn tell(&self, job: Option<JobId>, name: Option<&Arc<str>>, kind: EventKind) {
        if self.listening() {
            self.listeners.tell(PoolEvent {
                // The std clock, also under loom: the time is for users.
                time: std::time::Instant::now(),
                worker: self.worker_index(),
                job,
                name: name.cloned(),
                kind,
            });
        }
    }

    /// Adds a job's new counts to the statistics, on the current thread's slot.
    #[inline]
    pub(crate) fn count(&self, worker: Option<usize>, counts: Counts) {
        self.counters.add(worker, counts);
    }

    /// Says that worker `worker` is in a turn of job `job` (0: none); returns the previous.
    #[inline]
    pub(crate) fn set_current_job(&self, worker: usize, job: u64) -> u64 {
        self.counters.set_current_job(worker, job)
    }

    /// What the pool is doing now, and has done.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = Stats {
            threads: self.threads,
            jobs_live: self.live_jobs.load(Relaxed),
            ..Stats::default()
        };
        {
            let mut shared = self.shared.lock();
            // Jobs in the inbox wait for a worker as queued ones do (rule 12).
            self.drain(&mut shared);
            stats.idle = shared.spinners;
            stats.sleeping = shared.sleepers;
            stats.jobs_queued = shared.queue.live_len();
            stats.oldest_wait = shared.queue.oldest_wait(Instant::now());
        }
        // A job whose entry waits aside (rule 11) waits for a worker as a queued one does.
        // Setting an entry aside reads no clock, so its wait is not in `oldest_wait`. Looked
        // at with the registry's lock released (the slots' locks are never taken under it).
        stats.jobs_queued += self.aside.live_len();
        self.counters.read(&mut stats);
        stats
    }

    /// The number of worker threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Whether the current thread is one of this pool's workers.
    pub(crate) fn is_current_worker(&self) -> bool {
        worker::current_registry_id() == self.id
    }

    /// Accepts a new job and, if it has tasks, puts it in the run queue, or in the inbox when
    /// every worker is busy behind a job at least as urgent (rule 12).
    ///
    /// After `shutdown` only the pool's own workers may still submit (a running task that
    /// starts sub-jobs is part of work already accepted).
    /// `admitted` is called once the job is accepted, before any worker can see it (it tells
    /// the listeners, so that a job's first event is always its submission).
    pub(crate) fn admit(
        &self,
        job: Option<Arc<dyn Schedulable>>,
        admitted: impl FnOnce(),
    ) -> Result<(), SubmitErrorKind> {
        match job {
            Some(job) => match self.admit_to_inbox(job, admitted) {
                Ok(()) => Ok(()),
                Err((job, admitted)) => self.admit_locked(Some(job), admitted),
            },
            None => self.admit_locked(None, admitted),
        }
    }

    /// Admits `job` without the registry's lock, into the inbox, if every worker is busy and
    /// a job at least as urgent is queued (rule 12); hands the job back otherwise.
    #[allow(clippy::type_complexity)]
    fn admit_to_inbox<A: FnOnce()>(
        &self,
        job: Arc<dyn Schedulable>,
        admitted: A,
    ) -> Result<(), (Arc<dyn Schedulable>, A)> {
        let key = job.key();
        // A first look, which decides nothing: the pairs below do.
        if key < self.queued_min.load(Relaxed)
            || self.aside.idle_workers() > 0
            || self.inbox.is_closed()
        {
            return Err((job, admitted));
        }
        // Counted live, then a look at `closed` (with `shutdown`, which closes first, then
        // lets the workers look at the count before they exit).
        self.live_jobs.fetch_add(1, SeqCst);
        // Until the job is accepted, the count goes back on any way out (waking the workers
        // if it was the last, as for a finished job): the pool closed, and the locked way
        // decides; or telling the listeners unwound, and the count left would keep
        // `shutdown`'s workers waiting for the job forever.
        let uncount = Uncount(self);
        fence(SeqCst);
        if self.inbox.is_closed() {
            return Err((job, admitted));
        }
        admitted();
        std::mem::forget(uncount);
        self.inbox.push(job, key);
        // Stored, then a look at the idle workers and at the least queued key, which a worker
        // may have raised since the first look (each of them stores, then looks here).
        fence(SeqCst);
        if self.aside.idle_workers() > 0 || key < self.queued_min.load(Relaxed) {
            // Moved into the run queue, it asks the busy workers to look up from their chunks
            // if it goes first there (`publish_min`, rule 3).
            let mut shared = self.shared.lock();
            self.drain(&mut shared);
        }
        Ok(())
    }

    /// `admit`, under the registry's lock.
    fn admit_locked(
        &self,
        job: Option<Arc<dyn Schedulable>>,
        admitted: impl FnOnce(),
    ) -> Result<(), SubmitErrorKind> {
        let mut shared = self.shared.lock();
        if shared.shutdown && !self.is_current_worker() {
            return Err(SubmitErrorKind::ShutDown);
        }
        // Jobs submitted before this one and left in the inbox go first, as they came.
        self.drain(&mut shared);
        admitted();
        if let Some(job) = job {
            // Counted under the lock that workers hold when they decide to exit: a worker
            // never leaves while an admitted job is not finished.
            self.live_jobs.fetch_add(1, SeqCst);
            let key = job.key();
            self.push_locked(&mut shared, job, key);
        }
        Ok(())
    }

    /// Puts a job back in the run queue. The caller set the job's `queued` flag, under the
    /// job's lock, so a job has at most one entry (README.md, rule 1).
    ///
    /// A thread outside the pool may push the entry of a job whose last task ran between its
    /// decision and the push: if every worker has left meanwhile, the entry is dropped (rule 7).
    ///
    /// Returns whether `job` went first and asked the busy workers to look up from their
    /// chunks (`publish_min`): a worker that pushes its own job between two chunks does not
    /// count that ask as news (rule 3).
    pub(crate) fn push(&self, job: Arc<dyn Schedulable>, key: u64) -> bool {
        match self.unless_gone(self.shared.lock(), job) {
            Some((mut shared, job)) => self.push_locked(&mut shared, job, key),
            None => false,
        }
    }

    /// Hands the lock and `job` back, unless every worker has left: then no job can be live
    /// again (only workers may submit after `shutdown`), and `job`, an entry or a timer handed
    /// in late, would hold its finished job, and through it the registry, forever. So it is
    /// dropped, with the lock released and quietly (it may be a detached job's last
    /// reference), and `None` returned (rule 7).
    #[allow(clippy::type_complexity)]
    fn unless_gone<'a>(
        &'a self,
        shared: MutexGuard<'a, Shared>,
        job: Arc<dyn Schedulable>,
    ) -> Option<(MutexGuard<'a, Shared>, Arc<dyn Schedulable>)> {
        if shared.workers_left < self.threads {
            return Some((shared, job));
        }
        drop(shared);
        drop_each_quietly([job]);
        None
    }

    /// As `push`, for worker `worker` in a turn of the job: unless the job would go before
    /// every queued one, its entry is set aside in the worker's slot instead, while no worker
    /// is idle (rule 11). Returns `None` if it was set aside, and otherwise whether its push
    /// asked (`push`).
    pub(crate) fn push_or_set_aside(
        &self,
        worker: usize,
        job: Arc<dyn Schedulable>,
        key: u64,
    ) -> Option<bool> {
        if self.goes_first(key) {
            return Some(self.push(job, key));
        }
        self.aside.set(worker, job).map(|job| self.push(job, key))
    }

    /// Takes back the entry worker `worker` set aside, if no idle worker took it.
    pub(crate) fn take_aside(&self, worker: usize) -> Option<Arc<dyn Schedulable>> {
        self.aside.take(worker)
    }

    /// Whether a job of key `key` would go before every queued job (or none is queued).
    #[inline]
    pub(crate) fn goes_first(&self, key: u64) -> bool {
        key < self.queued_min.load(Relaxed)
    }

    /// Queues `job` and publishes the least key; returns whether `job` asked (`publish_min`).
    fn push_locked(&self, shared: &mut Shared, job: Arc<dyn Schedulable>, key: u64) -> bool {
        self.enqueue(shared, job, key);
        self.publish_min(shared)
    }

    /// Moves the jobs in the inbox into the run queue (rule 12).
    fn drain(&self, shared: &mut Shared) {
        if self.inbox.is_empty() {
            return;
        }
        self.move_inbox(shared);
        self.publish_min(shared);
    }

    /// Moves the jobs in the inbox into the run queue, in the order they came.
    fn move_inbox(&self, shared: &mut Shared) {
        let mut drained = std::mem::take(&mut shared.drained);
        self.inbox.swap(&mut drained);
        for (job, key) in drained.drain(..) {
            self.enqueue(shared, job, key);
        }
        shared.drained = drained;
    }

    /// Adds a job to the run queue and wakes a sleeper if the queue now needs one (rule 4);
    /// the caller then publishes the least key, which asks the busy workers to look up from
    /// their chunks if the job goes first (rule 3).
    fn enqueue(&self, shared: &mut Shared, job: Arc<dyn Schedulable>, key: u64) {
        shared.queue.push_at(job, key, Instant::now);
        // Wake a sleeper only for work that no awake idle worker will take (README.md, rule 4).
        if shared.sleepers > shared.wakeups && shared.queue.len() > shared.spinners + shared.wakeups
        {
            shared.wakeups += 1;
            self.work_available.notify_one();
        }
    }

    /// Mirrors the run queue's smallest key into `queued_min`, writing the atomic only when
    /// the value changes (every write is a cache miss for the workers that read it).
    ///
    /// When it falls, a job now goes before every job that was queued (or the queue was
    /// empty), and if every worker is busy they are asked to look up from their chunks: each
    /// ends its chunk after its current task and applies the fairness rule, which compares
    /// with `queued_min` (rule 3). A job queued behind one at least as urgent leaves it as it
    /// was, and asks nothing. Whatever queued the job (a push, the inbox moved in by anyone),
    /// the fall is seen here, so a job that goes first always asks, even when the minimum it
    /// goes below was raised a moment before by a pop, and a worker may have read that.
    ///
    /// A job in the inbox was left there while `queued_min` was at most its key (rule 12).
    /// So after a write, which may raise it, the inbox is looked at: stored, then a look
    /// (the submitter looks at `queued_min` after it stored its job), and what is there is
    /// queued, with the new minimum published in turn.
    ///
    /// Returns whether the queue as the caller left it asked: the minimum published before
    /// was the queue's before the caller's change, so the ask is for what the caller queued,
    /// not for a job of the inbox. An ask is released after its new minimum, so a worker that
    /// sees the ask (`yield_requests_seen`) and then looks at `queued_min` sees the job.
    #[inline]
    fn publish_min(&self, shared: &mut Shared) -> bool {
        let mut first_round = true;
        let mut asked = false;
        loop {
            let min = shared.queue.min_key();
            if min == shared.published_min {
                return asked;
            }
            let fell = min < shared.published_min;
            shared.published_min = min;
            self.queued_min.store(min, Relaxed);
            if fell && shared.sleepers == 0 && shared.spinners == 0 {
                self.gate.yield_requests.fetch_add(1, Release);
                asked |= first_round;
            }
            fence(SeqCst);
            if self.inbox.is_empty() {
                return asked;
            }
            first_round = false;
            self.move_inbox(shared);
        }
    }

    /// Whether a worker serving a job of key `key` for `served` should hand its token back:
    /// a job that goes before it waits, and either it is of a higher priority (it gets the
    /// worker after one task) or the worker has served this job for a whole time slice.
    #[inline]
    pub(crate) fn should_yield(&self, key: u64, served: Duration) -> bool {
        let min = self.queued_min.load(Relaxed);
        min < key
            && (served >= self.time_slice || priority::level(min) / 2 < priority::level(key) / 2)
    }

    /// How long the jobs of `priority` have waited for a turn, if any wait.
    pub(crate) fn waited(&self, priority: Priority) -> Option<Duration> {
        let mut shared = self.shared.lock();
        // A job in the inbox waits as a queued one does (rule 12).
        self.drain(&mut shared);
        shared.queue.waited(priority.index(), Instant::now())
    }

    /// The rank of a run that started at `at`: nanoseconds since the epoch, at least 1.
    pub(crate) fn rank_of(&self, at: Instant) -> u64 {
        self.since_epoch(at).saturating_add(1)
    }

    /// Nanoseconds from the registry's epoch to `at`.
    #[inline]
    fn since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Sets a timer: `job.on_timer` is called once `due` has passed. If it is the earliest
    /// timer, a sleeping worker is woken to sleep until it instead (rule 9).
    /// Dropped instead, as `push` drops an entry, if every worker has left (rule 7).
    pub(crate) fn add_timer(&self, due: Instant, job: Arc<dyn Schedulable>) {
        let Some((mut shared, job)) = self.unless_gone(self.shared.lock(), job) else {
            return;
        };
        if shared.timers.add(due, job) {
            self.next_timer.store(self.since_epoch(due), Relaxed);
            if shared.sleepers > shared.wakeups {
                shared.wakeups += 1;
                self.work_available.notify_one();
            }
        }
    }

    /// The earliest timer, if any (read without the lock, so possibly just stale).
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        match self.next_timer.load(Relaxed) {
            u64::MAX => None,
            nanos => self.epoch.checked_add(Duration::from_nanos(nanos)),
        }
    }

    /// Whether a timer is due at `now`: one load, for busy workers after each chunk.
    #[inline]
    pub(crate) fn timer_due(&self, now: Instant) -> bool {
        self.next_timer.load(Relaxed) <= self.since_epoch(now)
    }

    /// Fires the timers due at `now`, if any.
    pub(crate) fn fire_timers(&self, now: Instant) {
        if self.timer_due(now) || (self.cancelling() && self.next_timer.load(Relaxed) != u64::MAX) {
            let shared = self.shared.lock();
            drop(self.fire_timers_locked(shared, now));
        }
    }

    /// Takes the timers due at `now` (all of them once the pool is cancelling), releases the
    /// lock, fires them, and takes the lock again.
    fn fire_timers_locked<'a>(
        &'a self,
        mut shared: MutexGuard<'a, Shared>,
        now: Instant,
    ) -> MutexGuard<'a, Shared> {
        let mut due = Vec::new();
        shared.timers.take_due(now, self.cancelling(), &mut due);
        if due.is_empty() {
            return shared;
        }
        let next = shared
            .timers
            .next_due()
            .map_or(u64::MAX, |d| self.since_epoch(d));
        self.next_timer.store(next, Relaxed);
        drop(shared);
        for timer in due {
            // Firing runs no user code but the drop of tasks it cancels, which it catches; a
            // panic here would only come from a job's last reference being dropped.
            call_quietly(|| timer.job.on_timer(now));
        }
        self.shared.lock()
    }

    /// Sleeps on `work_available` until notified, or until the earliest timer is due.
    fn sleep<'a>(&'a self, shared: MutexGuard<'a, Shared>) -> MutexGuard<'a, Shared> {
        match shared.timers.next_due() {
            None => self.work_available.wait(shared),
            #[cfg(not(loom))]
            Some(due) => self.work_available.wait_until(shared, due),
            // loom has no timed wait: a worker with a timer to keep yields and looks again
            // (each look moves its logical clock on, so the timer comes due).
            #[cfg(loom)]
            Some(_) => {
                drop(shared);
                thread::yield_now();
                self.shared.lock()
            }
        }
    }

    /// Whether `shutdown_now` asked to cancel every pending task.
    #[inline]
    pub(crate) fn cancelling(&self) -> bool {
        self.gate.cancel_all.load(Relaxed)
    }

    /// How many times a worker in a chunk was asked to look up from it; see
    /// `PoolGate::yield_requests`.
    #[inline]
    pub(crate) fn yield_requests(&self) -> u64 {
        self.gate.yield_requests.load(Relaxed)
    }

    /// `yield_requests` as a worker between two chunks reads it, before it looks at
    /// `queued_min` to decide whether to claim the next one (`Acquire`, against the asks'
    /// `Release`): if an ask is in the value, the fairness rule sees the job that asked; if
    /// not, the chunk, which watches for a change from this value, sees the ask (rule 3). The
    /// pool's `cancelling` is read after it, at the claim: if the counter has not moved since,
    /// the pool is still not cancelling.
    pub(crate) fn yield_requests_seen(&self) -> u64 {
        self.gate.yield_requests.load(Acquire)
    }

    /// Blocks until there is a job to run; `None` when the worker should exit.
    ///
    /// The run queue hands back the dead entries it meets; they are dropped here, with the lock
    /// released and under `catch_unwind`: an entry may hold the last reference to a detached
    /// job, whose results are user values with a `Drop` of their own.
    pub(crate) fn find_work(&self) -> Option<(Arc<dyn Schedulable>, Instant)> {
        let mut dead = Vec::new();
        let mut stale = Vec::new();
        // One clock read per look: it times the timers, the waits of each priority, and the
        // slice of the job found. The first look's is read before the lock, which submitters
        // and other workers may be waiting for (the run queue's clock never goes back). The
        // job found is then charged this worker's wait for the lock as service (rule 10):
        // well under a microsecond, unless the lock's holder lost its core meanwhile.
        let mut first_look = Some(Instant::now());
        let mut shared = self.shared.lock();
        let mut spun = false;
        // Counted in `aside`'s idle workers, from the first empty look to the end (rule 11).
        let mut idle = false;
        let found = loop {
            let now = first_look.take().unwrap_or_else(Instant::now);
            if shared
                .timers
                .next_due()
                .is_some_and(|due| due <= now || self.cancelling())
            {
                shared = self.fire_timers_locked(shared, now);
                continue;
            }
            // Jobs left in the inbox while every worker was busy come first into the queue
            // (rule 12): a worker that went idle looks here, after its fence, before it sleeps.
            self.drain(&mut shared);
            let job = shared.queue.pop(now, &mut dead);
            self.publish_min(&mut shared);
            if let Some(job) = job {
                break Some((job, now));
            }
            // Closed, then a look at the live count: a submission that counted its job live
            // before the look keeps the workers here (rule 12).
            fence(SeqCst);
            if shared.shutdown && self.live_jobs.load(SeqCst) == 0 {
                // Timers left are of finished jobs (a deadline not reached): dropped now, or
                // the jobs, which hold the registry, would keep it and each other alive. So
                // are entries of finished jobs left in the inbox after the look above.
                shared.timers.take_due(now, true, &mut stale);
                dead.extend(self.inbox.take().into_iter().map(|(job, _)| job));
                shared.workers_left += 1;
                break None;
            }
            if !spun {
                spun = true;
                shared.spinners += 1;
                drop(shared);
                drop_each_quietly(dead.drain(..));
                // Counted idle first, then a look at the entries set aside (rule 11).
                if !idle {
                    idle = true;
                    self.aside.enter_idle();
                }
                if let Some(job) = self.aside.take_any() {
                    shared = self.shared.lock();
                    shared.spinners -= 1;
                    break Some((job, now));
                }
                for _ in 0..SPIN_ROUNDS {
                    if self.queued_min.load(Relaxed) != u64::MAX || !self.inbox.is_empty() {
                        break;
                    }
                    thread::yield_now();
                }
                shared = self.shared.lock();
                shared.spinners -= 1;
                continue;
            }
            if !dead.is_empty() {
                // Never sleep on dead entries: one may hold the last reference to a detached
                // job, whose results would then wait for this worker's next wake-up, maybe
                // forever. Drop them unlocked, then look at the queue again.
                drop(shared);
                drop_each_quietly(dead.drain(..));
                shared = self.shared.lock();
                continue;
            }
            shared.sleepers += 1;
            shared = self.sleep(shared);
            shared.sleepers -= 1;
            shared.wakeups = shared.wakeups.saturating_sub(1);
            spun = false;
        };
        drop(shared);
        if idle {
            self.aside.leave_idle();
        }
        drop_each_quietly(dead);
        drop_each_quietly(stale);
        found
    }

    /// Stops accepting jobs from outside the pool; with `cancel`, pending tasks are cancelled
    /// rather than run. Workers exit once every accepted job has finished.
    pub(crate) fn shutdown(&self, cancel: bool) {
        let mut shared = self.shared.lock();
        if cancel {
            self.gate.cancel_all.store(true, Relaxed);
            // Workers in a chunk compare only `yield_requests` before each task (rule 3).
            self.gate.yield_requests.fetch_add(1, Release);
        }
        shared.shutdown = true;
        // Closed, then (in `find_work`) a look at the live count, each after a fence: see
        // `admit_to_inbox`.
        self.inbox.close();
        fence(SeqCst);
        // Sleepers must look again: jobs in the queue get cancelled, or no job is live. If a
        // job is live, the thread that finishes the last one wakes them (`job_finished`).
        if cancel || self.live_jobs.load(SeqCst) == 0 {
            self.work_available.notify_all();
        }
    }

    /// Whether `shutdown` was called.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shared.lock().shutdown
    }

    /// Called once per admitted job, after it finished and its completion callback returned.
    pub(crate) fn job_finished(&self) {
        // The lock orders this with `shutdown`: either `shutdown` ran first and this thread
        // sees it and wakes the sleepers, or it runs later and sees `live_jobs` at 0 itself.
        if self.live_jobs.fetch_sub(1, SeqCst) == 1 {
            let shared = self.shared.lock();
            if shared.shutdown {
                self.work_available.notify_all();
            }
        }
    }
}

/// Takes a job back out of the live count when dropped: on a way out between counting a job
/// and accepting it (`Registry::admit_to_inbox`), a return or an unwind.
struct Uncount<'r>(&'r Registry);

impl Drop for Uncount<'_> {
    fn drop(&mut self) {
        self.0.job_finished();
    }
}
