//! A round: a fresh pool, random steps on the test thread, an ending, and the final checks
//! once every task, result and callback of the round is gone.

use std::fmt::Write as _;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use jobpool::{Pool, Stats};

use crate::events::{plan_listeners, EventStats, Listening};
use crate::graph::{run_graph, GraphLedger};
use crate::jobs::{finish, hand_off, spin, submit, Env, Submitted, Waiting};
use crate::ledger::{Alive, JobLedger, LimitMeter};
use crate::monitor::{fail, lock, step, MONITOR, WORKER_NAME};
use crate::plan::{pick_tree, plan_graph, plan_job, plan_limiters, Act, JobPlan, LimiterPlan};
use crate::rng::Rng;

/// The most threads a round's pool has.
const MAX_THREADS: usize = 4;

/// What one round did.
#[derive(Default)]
pub(crate) struct RoundStats {
    pub(crate) number: u64,
    pub(crate) jobs: usize,
    pub(crate) tasks: usize,
    pub(crate) graphs: usize,
    pub(crate) took: Duration,
    /// What the round's listeners heard, if it had any.
    pub(crate) events: EventStats,
}

/// How a round ends.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// Takes every open job's outcome, then `shutdown()`.
    DrainThenShutdown,
    /// Takes every open job's outcome, then drops the test thread's pool handle.
    DrainThenDrop,
    /// `shutdown()` with work in flight, then takes the open jobs' outcomes.
    ShutdownInFlight,
    /// `shutdown_now()` with work in flight, then takes the open jobs' outcomes.
    ShutdownNowInFlight,
    /// Drops the test thread's pool handle with work in flight (tasks may hold handles of
    /// their own), then takes the open jobs' outcomes.
    DropInFlight,
}

impl Ending {
    fn draw(rng: &mut Rng) -> Ending {
        match rng.range(0, 4) {
            0 => Ending::DrainThenShutdown,
            1 => Ending::DrainThenDrop,
            2 => Ending::ShutdownInFlight,
            3 => Ending::ShutdownNowInFlight,
            _ => Ending::DropInFlight,
        }
    }

    fn drains_first(self) -> bool {
        matches!(self, Ending::DrainThenShutdown | Ending::DrainThenDrop)
    }
}

/// What every task of a round shares: the ledgers of its jobs, and how the round is ending.
pub(crate) struct RoundState {
    pool: String,
    pub(crate) alive: Arc<Alive>,
    /// The limiters jobs of the round may share.
    pub(crate) limiters: Vec<Arc<LimitMeter>>,
    pub(crate) jobs: Mutex<Vec<Arc<JobLedger>>>,
    pub(crate) graphs: AtomicUsize,
    pub(crate) graph_tasks: AtomicUsize,
    pub(crate) graphs_in_flight: Mutex<Vec<Arc<GraphLedger>>>,
    ending: Mutex<Option<Ending>>,
    /// Set before `shutdown_now` is called.
    pub(crate) cancel_all: AtomicBool,
    /// Set before the pool is shut down or dropped.
    pub(crate) shutting_down: AtomicBool,
    /// Set once `shutdown` or `shutdown_now` returned.
    pub(crate) shut_down: AtomicBool,
    pub(crate) callbacks_registered: AtomicUsize,
    pub(crate) callbacks_called: AtomicUsize,
}

impl RoundState {
    fn new(pool: String, limiters: &[LimiterPlan]) -> RoundState {
        RoundState {
            pool,
            alive: Arc::default(),
            limiters: limiters
                .iter()
                .enumerate()
                .map(|(id, plan)| Arc::new(LimitMeter::new(id, plan)))
                .collect(),
            jobs: Mutex::default(),
            graphs: AtomicUsize::new(0),
            graph_tasks: AtomicUsize::new(0),
            graphs_in_flight: Mutex::default(),
            ending: Mutex::new(None),
            cancel_all: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
            callbacks_registered: AtomicUsize::new(0),
            callbacks_called: AtomicUsize::new(0),
        }
    }

    /// A ledger for a job about to be submitted.
    pub(crate) fn open_ledger(&self, origin: &str, plan: &JobPlan) -> Arc<JobLedger> {
        let mut jobs = lock(&self.jobs);
        let id = jobs.len();
        let ledger = Arc::new(JobLedger::new(
            id,
            origin,
            plan,
            &self.alive,
            &self.limiters,
        ));
        jobs.push(ledger.clone());
        ledger
    }

    pub(crate) fn ending(&self) -> String {
        lock(&self.ending).map_or("no ending yet".to_owned(), |e| format!("{e:?}"))
    }

    /// The final checks of the round, once every task, result and callback is gone.
    fn check_settled(&self) {
        let (registered, called) = (
            self.callbacks_registered.load(SeqCst),
            self.callbacks_called.load(SeqCst),
        );
        if registered != called {
            fail(format_args!(
                "{registered} on_finish callbacks registered, {called} called"
            ));
        }
        for job in lock(&self.jobs).iter() {
            job.check_settled(self);
        }
        for limiter in &self.limiters {
            limiter.check_settled();
        }
    }

    fn stats(&self) -> RoundStats {
        let jobs = lock(&self.jobs);
        let runs: usize = jobs
            .iter()
            .map(|j| j.runs.iter().map(|r| r.load(SeqCst)).sum::<usize>())
            .sum();
        RoundStats {
            jobs: jobs.len(),
            tasks: runs + self.graph_tasks.load(SeqCst),
            graphs: self.graphs.load(SeqCst),
            ..RoundStats::default()
        }
    }

    pub(crate) fn describe_in_flight(&self, report: &mut String) {
        let _ = write!(
            report,
            "\n  the pool: {}; ending: {}; objects alive: {}; on_finish callbacks: {} of {} called",
            self.pool,
            self.ending(),
            self.alive.count.load(SeqCst),
            self.callbacks_called.load(SeqCst),
            self.callbacks_registered.load(SeqCst),
        );
        let jobs = lock(&self.jobs);
        let in_flight: Vec<_> = jobs.iter().filter(|j| j.in_flight()).collect();
        let _ = write!(
            report,
            "\n  jobs in flight: {} of {}",
            in_flight.len(),
            jobs.len()
        );
        for job in in_flight.iter().take(20) {
            let _ = write!(report, "\n    {}", job.describe(self));
        }
        for graph in lock(&self.graphs_in_flight).iter() {
            let _ = write!(report, "\n  {}", graph.describe());
        }
        for limiter in &self.limiters {
            let _ = write!(report, "\n  {}", limiter.describe());
        }
    }
}

/// A round being played: its pool, its generator, and what the test thread still holds.
pub(crate) struct Round {
    number: u64,
    start: Instant,
    rng: Rng,
    threads: usize,
    /// The round's limiters, as planned.
    limiters: Vec<LimiterPlan>,
    env: Env,
    /// Jobs submitted by the test thread whose outcome it will take later.
    open: Vec<Submitted>,
    /// Threads that cancel a job, joined at the end of the round.
    cancellers: Vec<thread::JoinHandle<()>>,
    /// The pool's listeners, in the rounds that have them.
    listening: Option<Listening>,
}

impl Round {
    pub(crate) fn new(seed: u64, number: u64) -> Round {
        let start = Instant::now();
        MONITOR.round.store(number, SeqCst);
        let mut rng = Rng::for_round(seed, number);
        let threads = rng.range(1, MAX_THREADS);
        let slice = match rng.range(0, 9) {
            0 => Some(Duration::ZERO),
            1..=2 => Some(rng.micros(1, 10)),
            _ => None,
        };
        let limiters = plan_limiters(&mut rng);
        let listen = plan_listeners(seed, number);
        let mut description = match slice {
            Some(slice) => format!("{threads} threads, time slice {slice:?}"),
            None => format!("{threads} threads"),
        };
        for (i, limiter) in limiters.iter().enumerate() {
            let _ = write!(description, ", limiter {i}: cap {}", limiter.cap);
            if let Some(rate) = limiter.rate {
                let _ = write!(description, ", rate {rate}");
            }
        }
        if let Some(listen) = listen {
            let _ = write!(description, ", {listen}");
        }
        step(format!("round {number}: building the pool ({description})"));
        let mut builder = Pool::builder()
            .threads(threads)
            .thread_name(|i| format!("{WORKER_NAME}-{i}"));
        if let Some(slice) = slice {
            builder = builder.time_slice(slice);
        }
        let pool = builder
            .build()
            .unwrap_or_else(|err| fail(format_args!("building the pool: {err}")));
        let listening = listen.map(|plan| Listening::start(&pool, plan));
        let round = Arc::new(RoundState::new(description, &limiters));
        *lock(&MONITOR.round_state) = Some(round.clone());
        Round {
            number,
            start,
            rng,
            threads,
            limiters,
            env: Env { pool, round },
            open: Vec::new(),
            cancellers: Vec::new(),
            listening,
        }
    }

    pub(crate) fn play(mut self) -> RoundStats {
        let steps = self.rng.range(2, 12);
        for n in 1..=steps {
            match self.rng.range(0, 99) {
                0..=34 => self.submit_job(n),
                35..=54 => self.finish_open_job(n),
                55..=61 => self.steer_open_job(n),
                62..=64 => self.steer_limiter(n),
                65..=74 => self.steer_from_another_thread(n),
                75..=84 => self.cancel_open_job(n),
                _ => self.run_graph(n),
            }
        }
        self.end()
    }

    fn submit_job(&mut self, n: usize) {
        let tree = pick_tree(&mut self.rng, &self.limiters);
        let plan = plan_job(&mut self.rng, self.threads, 0, tree, false);
        step(format!(
            "step {n}: submitting a job of {} tasks",
            plan.tasks.len()
        ));
        if let Some(job) = submit(&self.env, plan, "from the test thread", None) {
            if let Some(job) = hand_off(job, &self.env) {
                self.open.push(job);
            }
        }
    }

    /// Removes a random open job, if there is one.
    fn pick_open_job(&mut self) -> Option<Submitted> {
        if self.open.is_empty() {
            return None;
        }
        let index = self.rng.range(0, self.open.len() - 1);
        Some(self.open.swap_remove(index))
    }

    fn finish_open_job(&mut self, n: usize) {
        if let Some(job) = self.pick_open_job() {
            step(format!("step {n}: finishing {}", job.ledger.label));
            finish(job, &self.env.round);
        }
    }

    /// A burst of cap changes from the test thread.
    fn steer_open_job(&mut self, n: usize) {
        let Some(job) = self.pick_open_job() else {
            return;
        };
        step(format!("step {n}: steering {}", job.ledger.label));
        for _ in 0..self.rng.range(1, 8) {
            let limit = self.rng.range(1, self.threads + 2);
            job.ledger.set_cap(&job.handle, limit);
            if self.rng.percent(50) {
                spin(self.rng.micros(0, 20));
            }
        }
        self.open.push(job);
    }

    /// Changes a limiter's cap while its jobs run (the limiter's meter allows the largest
    /// cap it ever had, as a job's does).
    fn steer_limiter(&mut self, n: usize) {
        if self.limiters.is_empty() {
            return;
        }
        let limiter = self.env.round.limiters[self.rng.range(0, self.limiters.len() - 1)].clone();
        step(format!("step {n}: steering limiter {}", limiter.id));
        for _ in 0..self.rng.range(1, 4) {
            limiter.set_cap(self.rng.range(1, 3));
            spin(self.rng.micros(0, 20));
        }
    }

    /// Cap changes from a steering thread while the test thread waits for the job to end.
    fn steer_from_another_thread(&mut self, n: usize) {
        let Some(job) = self.pick_open_job() else {
            return;
        };
        step(format!(
            "step {n}: steering {} from a thread",
            job.ledger.label
        ));
        let limits: Vec<(usize, Duration)> = (0..self.rng.range(1, 20))
            .map(|_| (self.rng.range(1, self.threads + 2), self.rng.micros(0, 50)))
            .collect();
        thread::scope(|scope| {
            scope.spawn(|| {
                for &(limit, pause) in &limits {
                    job.ledger.set_cap(&job.handle, limit);
                    spin(pause);
                }
            });
            let _waiting = Waiting::new(&job.ledger);
            while job.handle.wait_timeout(Duration::from_millis(1)).is_err() {}
        });
        self.open.push(job);
    }

    /// Cancels an open job: from the test thread, from a thread of its own, or from a task of
    /// another job.
    fn cancel_open_job(&mut self, n: usize) {
        let Some(job) = self.pick_open_job() else {
            return;
        };
        step(format!("step {n}: cancelling {}", job.ledger.label));
        job.ledger.cancel_requested.store(true, SeqCst);
        match self.rng.range(0, 2) {
            0 => job.handle.cancel(),
            1 => {
                let (canceller, pause) = (job.handle.canceller(), self.rng.micros(0, 200));
                self.cancellers.push(thread::spawn(move || {
                    spin(pause);
                    canceller.cancel();
                }));
            }
            _ => {
                let mut plan = plan_job(&mut self.rng, self.threads, 1, None, false);
                let at = self.rng.range(0, plan.tasks.len());
                plan.insert_task(at, Act::CancelVictim);
                let origin = format!("cancels job {}", job.ledger.id);
                let victim = job.handle.canceller();
                if let Some(canceller_job) = submit(&self.env, plan, &origin, Some(&victim)) {
                    if let Some(canceller_job) = hand_off(canceller_job, &self.env) {
                        self.open.push(canceller_job);
                    }
                }
            }
        }
        self.open.push(job);
    }

    fn run_graph(&mut self, n: usize) {
        let plan = plan_graph(&mut self.rng, self.threads);
        step(format!(
            "step {n}: running a graph of {} modules",
            plan.modules.len()
        ));
        run_graph(&self.env, plan, "from the test thread");
    }

    /// Ends the round as drawn, takes the outcome of every open job, waits until every task,
    /// result and callback is gone, and makes the final checks.
    fn end(mut self) -> RoundStats {
        let ending = Ending::draw(&mut self.rng);
        let Round {
            number,
            start,
            env: Env { pool, round },
            mut open,
            cancellers,
            listening,
            ..
        } = self;
        *lock(&round.ending) = Some(ending);
        if ending.drains_first() {
            finish_all(mem::take(&mut open), &round);
        }
        step(format!("round {number}: {ending:?}"));
        let stats = close_pool(pool, &round, ending);
        finish_all(open, &round);
        step(format!("round {number}: joining the canceller threads"));
        for canceller in cancellers {
            canceller
                .join()
                .unwrap_or_else(|_| fail("a canceller thread panicked"));
        }
        step(format!(
            "round {number}: waiting for every task, result and callback to be gone"
        ));
        round.alive.wait_until_none();
        round.check_settled();
        let events = listening.map_or_else(EventStats::default, |listening| {
            listening.check(number, &round, stats)
        });
        *lock(&MONITOR.round_state) = None;
        RoundStats {
            number,
            took: start.elapsed(),
            events,
            ..round.stats()
        }
    }
}

/// Takes the outcome of each of `open`, as planned.
fn finish_all(open: Vec<Submitted>, round: &RoundState) {
    for job in open {
        step(format!("ending the round: finishing {}", job.ledger.label));
        finish(job, round);
    }
}

/// Shuts the pool down as `ending` says, or drops the test thread's handle. Returns the pool's
/// statistics once `shutdown` returned: every job has finished then, so their counts are exact.
fn close_pool(pool: Pool, round: &RoundState, ending: Ending) -> Option<Stats> {
    round.shutting_down.store(true, SeqCst);
    match ending {
        Ending::DrainThenShutdown | Ending::ShutdownInFlight => pool.shutdown(),
        Ending::ShutdownNowInFlight => {
            round.cancel_all.store(true, SeqCst);
            pool.shutdown_now();
        }
        Ending::DrainThenDrop | Ending::DropInFlight => {
            drop(pool);
            return None;
        }
    }
    round.shut_down.store(true, SeqCst);
    Some(pool.stats())
}
