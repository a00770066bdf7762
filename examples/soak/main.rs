//! A randomized soak of the pool: round after round, a fresh [`Pool`] gets a random mix of work,
//! and every outcome is checked against counters the tasks keep themselves.
//!
//! # What a round does
//!
//! It builds a pool of 1-4 threads (sometimes with a tiny time slice) and, in random order:
//!
//! - submits jobs with random caps (sometimes above the thread count) and 0-200 tasks, mostly
//!   instant, some spinning a few µs, rarely busy for 1 ms or asleep for up to 1 ms;
//! - raises and lowers caps while jobs run: from the test thread, from a steering thread, and
//!   from tasks steering the sub-jobs they started;
//! - lets tasks panic, some with a payload whose `Drop` panics in turn, and gives some tasks a
//!   captured value that panics when dropped unrun (so cancelling them runs a panicking drop);
//! - cancels jobs: from the test thread, from a thread of their own, from another job's task;
//! - nests jobs up to three levels: a task submits a sub-job to its own pool and waits for it,
//!   polls it with `wait_timeout` (also `Duration::ZERO`), or takes its `completions()`;
//! - detaches jobs, registers `on_finish` callbacks (some panic, some submit a follow-up job),
//!   drops results unread;
//! - runs small random graphs (`Dag`), from the test thread or from a task, with modules that
//!   fail, are skipped by a condition, or have a condition that panics;
//! - submits some jobs through `Pool::job` with random priorities, sometimes fail-fast or with
//!   a deadline a few hundred µs away; some of them fallible, each attempt of a task ending
//!   as planned (a value, an error, a permanent error, a panic), under a random `Retry` policy
//!   (1-4 attempts, backoffs of at most 2 ms, some with `retry_panics`, `max_waiting` or a
//!   `retry_if` that refuses permanent errors);
//! - gives the round 0-2 shared `Limiter`s (cap 1-3, sometimes a rate of a few thousand
//!   starts a second), used by a job of the test thread and its sub-jobs (one limiter per
//!   tree of jobs, so that trees cannot wait on each other's limiters crosswise, and every
//!   sub-job of a job under it under it too, as `Limiter` asks), and changes their caps while
//!   jobs run;
//! - ends with `shutdown()`, `shutdown_now()` or by dropping the pool, sometimes while work is
//!   still in flight.
//!
//! # What it checks
//!
//! 1. **Cap**: no more of a job's tasks run at once than the largest cap the job ever had (a
//!    lowered cap lets the tasks running at that moment finish); for a job never steered, that
//!    is the cap it was submitted with. A graph's modules likewise, also by their reports. No
//!    more threads run a limiter's tasks at once than the largest cap it ever had (a task
//!    waiting on a sub-job under the same limiter lends its slot to the sub-job's tasks its
//!    thread runs, so a thread counts once), and the limiter's own `peak_running` agrees.
//! 2. **Exactly once**: no task runs twice; every outcome a consumer sees (from `wait`,
//!    `completions`, `on_finish`) is the value its task returned, a panic the task was meant to
//!    raise, or a cancellation something asked for; every task and every result is dropped
//!    exactly once; every `on_finish` callback runs; unless its job was cancelled or the pool
//!    shut down with `shutdown_now`, every accepted task ran. A graph's modules end as their
//!    plan says, after their dependencies, with the outputs their tasks returned. A fallible
//!    task's attempts run one at a time, numbered in order, never more than its policy allows
//!    and none after its outcome was reported; the outcome is what its last attempt did: a
//!    value of that attempt, `Failed` with exactly that many attempts, that error and the right
//!    `GaveUp` (permanent, attempts used up, or the retry budget), or the panic. A task reported
//!    `Cancelled` or `TimedOut` never started or was waiting to be retried, and something
//!    cancelled it (a cancel, `shutdown_now`, a failure in a fail-fast job) or its deadline
//!    passed.
//! 3. **No hang**: every `wait`, shutdown and graph run returns. A watchdog thread ends the
//!    process if nothing moved for 20 s, and says what was in flight, with every thread's
//!    stack when gdb is installed and may attach.
//! 4. **Events**: in half the rounds (drawn from the seed and the round) the pool has a
//!    listener, and in half of those a tiny one that is never read and drops events. Once the
//!    pool is gone, each job's events come in the promised order (submitted first, started
//!    before its tasks, each attempt's start and end on one worker, finished last), and if the
//!    listener lost none: every attempt started ended, every job finished with counts that add
//!    up to its tasks and agree with its tasks' ends and with what its tasks counted, and
//!    after `shutdown` the sums agree with `Pool::stats()`. The tiny listener kept the first
//!    events and counted every other one dropped.
//!
//! A failed check prints `soak FAILED: seed=S round=R: <what>` and the command that replays the
//! round, and exits with status 1.
//!
//! # Running it
//!
//! ```text
//! cargo run --release --example soak                            # 60 s, seed from the clock
//! cargo run --release --example soak -- --seconds 3600          # an hour
//! cargo run --release --example soak -- --seed 7 --seconds 600  # a given seed
//! cargo run --release --example soak -- --seed 7 --round 123    # replay one round
//! ```
//!
//! Every random choice of a round follows from (seed, round), so a replay runs the same plan.
//! The threads interleave differently on every run, though, so a rare failure may need the
//! replay repeated a few times.
//!
//! The files: `round.rs` plays a round (the steps of the test thread, the ending, the final
//! checks), `plan.rs` draws what jobs, tasks and graphs will do, `jobs.rs` submits jobs and
//! takes their outcomes, `ledger.rs` is what tasks record and the checks on it, `graph.rs` runs
//! and checks graphs, `events.rs` listens to the pool and checks what it heard, `monitor.rs` is
//! the watchdog, the panic hook and how failures are reported, `rng.rs` the random generator.

mod events;
mod graph;
mod jobs;
mod ledger;
mod monitor;
mod plan;
mod rng;
mod round;

use std::env;
use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::process;
use std::str::FromStr;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use events::EventStats;
use monitor::{fail, install_panic_hook, lock, payload_message, start_watchdog, MONITOR};
use rng::Rng;
use round::{Round, RoundStats};

// Every atomic in the soak is `SeqCst`: it is a checker, not a hot path, and one ordering
// everywhere spares each counter an argument about what it pairs with.

/// How long the soak runs without `--seconds`.
const DEFAULT_SECONDS: f64 = 60.0;
/// How often the soak says how far it got.
const STATUS_EVERY: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: cargo run --release --example soak -- [--seed S] [--seconds D] [--round R]
  --seed S      the seed (default: from the clock, printed at the start)
  --seconds D   how long to run rounds (default 60)
  --round R     run only round R of seed S, to replay a failure";

fn main() {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    MONITOR.seed.store(seed, SeqCst);
    install_panic_hook();
    start_watchdog();
    match args.round {
        Some(round) => replay(seed, round),
        None => soak(seed, args.duration),
    }
}

/// Runs rounds 1, 2, ... until `duration` is over (at least one round).
fn soak(seed: u64, duration: Duration) {
    println!("soak: seed={seed}, for {duration:.0?} (replay a round with --seed {seed} --round R)");
    let start = Instant::now();
    let mut totals = Totals::default();
    let mut next_status = STATUS_EVERY;
    while totals.rounds == 0 || start.elapsed() < duration {
        totals.add(&play(seed, totals.rounds + 1));
        if start.elapsed() >= next_status {
            println!("soak: {:.0?}: {totals}", start.elapsed());
            next_status += STATUS_EVERY;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("soak passed: {totals} in {secs:.1} s, seed={seed}");
}

/// Runs round `round` of `seed` alone.
fn replay(seed: u64, round: u64) {
    println!("soak: replaying round {round} of seed {seed}");
    let mut totals = Totals::default();
    totals.add(&play(seed, round));
    println!("soak passed: {totals}, seed={seed}");
}

/// Plays one round. A panic that reaches the test thread is a failure: every panic the soak
/// raises on purpose is raised where the pool must catch it.
fn play(seed: u64, number: u64) -> RoundStats {
    match panic::catch_unwind(AssertUnwindSafe(|| Round::new(seed, number).play())) {
        Ok(stats) => stats,
        Err(payload) => {
            let what = payload_message(&*payload).to_owned();
            mem::forget(payload); // a `PanicsOnDrop` would panic again
            let doing = lock(&MONITOR.step).clone();
            fail(format_args!(
                "a panic escaped onto the test thread ({doing}): {what}"
            ))
        }
    }
}

struct Args {
    seed: Option<u64>,
    duration: Duration,
    round: Option<u64>,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            seed: None,
            duration: Duration::from_secs_f64(DEFAULT_SECONDS),
            round: None,
        };
        let mut words = env::args().skip(1);
        while let Some(flag) = words.next() {
            if flag == "--help" || flag == "-h" {
                println!("{USAGE}");
                process::exit(0);
            }
            let Some(value) = words.next() else {
                usage_error(&format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--seed" => args.seed = Some(parse_value(&flag, &value)),
                "--round" => args.round = Some(parse_value(&flag, &value)),
                "--seconds" => {
                    args.duration = Duration::try_from_secs_f64(parse_value(&flag, &value))
                        .unwrap_or_else(|_| usage_error("--seconds takes a number >= 0"))
                }
                _ => usage_error(&format!("unknown argument `{flag}`")),
            }
        }
        if args.round.is_some() && args.seed.is_none() {
            usage_error("--round replays a round of a given --seed");
        }
        args
    }
}

fn parse_value<T: FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage_error(&format!("{flag} {value}: not a valid value")))
}

fn usage_error(what: &str) -> ! {
    eprintln!("soak: {what}\n{USAGE}");
    process::exit(2)
}

fn seed_from_clock() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Rng::new(nanos).next_u64() % 1_000_000_000 // short enough to type
}

/// What the whole soak did.
#[derive(Default)]
struct Totals {
    rounds: u64,
    jobs: usize,
    tasks: usize,
    graphs: usize,
    took: Duration,
    /// The slowest round: its number and length.
    slowest: (u64, Duration),
    events: EventStats,
}

impl Totals {
    fn add(&mut self, round: &RoundStats) {
        self.rounds += 1;
        self.jobs += round.jobs;
        self.tasks += round.tasks;
        self.graphs += round.graphs;
        self.took += round.took;
        self.events.add(&round.events);
        if round.took > self.slowest.1 {
            self.slowest = (round.number, round.took);
        }
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rounds ({:.1?} each on average, the slowest {:.1?}: round {}), {} jobs, \
             {} tasks run, {} graphs, {} panics on purpose; events: {}",
            self.rounds,
            self.took / self.rounds.max(1) as u32,
            self.slowest.1,
            self.slowest.0,
            self.jobs,
            self.tasks,
            self.graphs,
            MONITOR.panics_on_purpose.load(SeqCst),
            self.events
        )
    }
}
