//! What listening to a pool's events (`Pool::events`) costs, on the two dispatch workloads of
//! `compare_strategies`, in one interleaved run.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example observe_cost                  # 7 rounds
//! cargo run --release -p jobpool-bench --example observe_cost -- --rounds 11
//! cargo run --release -p jobpool-bench --example observe_cost -- --w1-tasks 200000
//! cargo run --release -p jobpool-bench --example observe_cost -- --drained-capacity 1048576
//! ```
//!
//! **Workloads**, built by `strategies::workload` and run by `strategies::token_count::run`
//! exactly as `compare_strategies` times jobpool's row (every job submitted, then every handle
//! waited for), on a pool of N = 2 threads, scored in ns per task (a run's wall time / its
//! tasks):
//!
//! - **W1**: one job of 100,000 empty tasks, cap k = N = 2 (`--w1-tasks` changes the count);
//! - **W2**: 10,000 jobs of 8 empty tasks each, cap k = 2.
//!
//! **Variants**, run A B C A B C ... (every variant once per round, in that order), each on a
//! fresh pool of its own built for that round, given one untimed warm-up run of the workload,
//! then one timed run:
//!
//! - **(a) no listener**: what every user who never calls `events` pays;
//! - **(b) drained**: a listener with a large buffer (65,536 events; `--drained-capacity`)
//!   subscribed after the warm-up, read by a thread of its own that counts what it receives
//!   until the pool is gone. That thread competes with the 2 workers for the 2 cores, as a real
//!   listener would. Reported: events received, and dropped because the buffer was full;
//! - **(c) stuck**: a listener of 1,024 events (`--stuck-capacity`) that is never read, so it
//!   is full after the first 1,024 events and every later one is dropped: shows that a stuck
//!   listener does not block the pool (the run ends) and what telling it costs. Reported:
//!   events dropped.
//!
//! Printed per workload: each variant's median ns per task with [min-max] over the rounds;
//! the ratios b/a and c/a taken per round (paired) before their median, with their range and
//! the number of rounds in which the listener was slower; and the cost of one event, as
//! `(b - a)` per task / 2 (a task makes two events, `TaskStarted` and `TaskEnded`) and as
//! `(b - a)` per run / the events the run told (received + dropped), which also counts each
//! job's `JobSubmitted`, `JobStarted` and `JobFinished` (W2: 19 events per 8 tasks).
//!
//! **Noise.** This machine has 2 cores, shared with other work. A difference under about 20%
//! between two variants is noise unless it holds in every round (a paired ratio whose whole
//! range is on one side of 1). The load average is printed at the start and at the end.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use jobpool::Pool;
use jobpool_bench::cli::positive;
use jobpool_bench::strategies::token_count;
use jobpool_bench::strategies::workload::{self, Workload};
use jobpool_bench::summary::{load_average, median, spread};

/// The pool's threads, as in `compare_strategies` on this 2-core machine.
const THREADS: usize = 2;

/// The variants, in the order they run in each round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// (a) No listener.
    Quiet,
    /// (b) A listener with a large buffer, drained by a thread of its own.
    Drained,
    /// (c) A listener with a small buffer, never drained.
    Stuck,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Quiet, Variant::Drained, Variant::Stuck];

    fn label(self, args: &Args) -> String {
        match self {
            Variant::Quiet => "a no listener".into(),
            Variant::Drained => format!("b drained, buffer {}", args.drained_capacity),
            Variant::Stuck => format!("c never read, buffer {}", args.stuck_capacity),
        }
    }
}

/// One timed run of one variant.
struct Sample {
    elapsed: Duration,
    /// Events the listener received (b only).
    received: u64,
    /// Events dropped because the listener's buffer was full (b and c).
    dropped: u64,
}

impl Sample {
    fn ns_per_task(&self, w: &Workload) -> f64 {
        self.elapsed.as_nanos() as f64 / w.total_tasks() as f64
    }

    /// Every event the pool told its listener during the run.
    fn told(&self) -> u64 {
        self.received + self.dropped
    }
}

/// Runs `w`'s jobs of empty tasks the way `compare_strategies` times jobpool.
fn run_workload(pool: &Pool, w: &Workload) -> Duration {
    let jobs = w.empty_specs();
    let start = Instant::now();
    token_count::run(pool, &jobs);
    start.elapsed()
}

/// Builds a pool for `variant`, warms it up with one run of `w`, subscribes its listener (if
/// any) and times one run of `w`.
fn run_variant(variant: Variant, w: &Workload, args: &Args) -> Sample {
    let pool = Pool::new(THREADS);
    run_workload(&pool, w);
    match variant {
        Variant::Quiet => {
            let elapsed = run_workload(&pool, w);
            Sample {
                elapsed,
                received: 0,
                dropped: 0,
            }
        }
        Variant::Drained => {
            let events = pool.events(args.drained_capacity);
            let received = Arc::new(AtomicU64::new(0));
            // The reader is running before the timed run starts.
            let ready = Arc::new(Barrier::new(2));
            let reader = {
                let (received, ready) = (received.clone(), ready.clone());
                thread::spawn(move || {
                    ready.wait();
                    // Ends once the pool and its jobs' handles are gone.
                    for _ in events.iter() {
                        received.fetch_add(1, Relaxed);
                    }
                    events.dropped()
                })
            };
            ready.wait();
            let elapsed = run_workload(&pool, w);
            drop(pool);
            let dropped = reader.join().expect("the reader does not panic");
            Sample {
                elapsed,
                received: received.load(Relaxed),
                dropped,
            }
        }
        Variant::Stuck => {
            let events = pool.events(args.stuck_capacity);
            let elapsed = run_workload(&pool, w);
            // After the workers are joined: every event of the run has been told.
            drop(pool);
            Sample {
                elapsed,
                received: 0,
                dropped: events.dropped(),
            }
        }
    }
}

struct Args {
    rounds: usize,
    w1_tasks: Option<usize>,
    drained_capacity: usize,
    stuck_capacity: usize,
}

fn args() -> Args {
    let mut args = Args {
        rounds: 7,
        w1_tasks: None,
        drained_capacity: 65_536,
        stuck_capacity: 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |flag: &str| positive(it.next(), flag);
        match arg.as_str() {
            "--rounds" => args.rounds = number("--rounds"),
            "--w1-tasks" => args.w1_tasks = Some(number("--w1-tasks")),
            "--drained-capacity" => args.drained_capacity = number("--drained-capacity"),
            "--stuck-capacity" => args.stuck_capacity = number("--stuck-capacity"),
            other => panic!(
                "unknown argument {other:?}; try --rounds N, --w1-tasks N, \
                 --drained-capacity N or --stuck-capacity N"
            ),
        }
    }
    args
}

fn main() {
    let args = args();
    let mut w1 = workload::w1(THREADS);
    if let Some(tasks) = args.w1_tasks {
        w1.jobs[0].tasks = tasks;
        w1.title = format!("one job of {tasks} empty tasks, k=N={THREADS}");
    }
    let workloads = [w1, workload::w2(THREADS)];
    let started = Instant::now();
    println!(
        "observe_cost: {} round(s), N = {THREADS} threads, {} cores, load average {}",
        args.rounds,
        num_cpus::get(),
        load_average()
    );

    // samples[workload][variant]
    let mut samples: Vec<Vec<Vec<Sample>>> = workloads
        .iter()
        .map(|_| Variant::ALL.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..args.rounds {
        for (wi, w) in workloads.iter().enumerate() {
            for (vi, &variant) in Variant::ALL.iter().enumerate() {
                samples[wi][vi].push(run_variant(variant, w, &args));
            }
        }
        eprintln!(
            "round {}/{} done at {:.1?}",
            round + 1,
            args.rounds,
            started.elapsed()
        );
    }

    for (w, samples) in workloads.iter().zip(&samples) {
        report(w, samples, &args);
    }
    println!();
    println!(
        "whole run {:.1?}; load average now {}",
        started.elapsed(),
        load_average()
    );
}

/// Prints one workload's table, ratios and cost per event.
fn report(w: &Workload, samples: &[Vec<Sample>], args: &Args) {
    let index = |v: Variant| Variant::ALL.iter().position(|&x| x == v).unwrap();
    let (a, b, c) = (
        &samples[index(Variant::Quiet)],
        &samples[index(Variant::Drained)],
        &samples[index(Variant::Stuck)],
    );
    let ns = |s: &[Sample]| -> Vec<f64> { s.iter().map(|x| x.ns_per_task(w)).collect() };
    let counts = |s: &[Sample], f: fn(&Sample) -> u64| -> Vec<f64> {
        s.iter().map(|x| f(x) as f64).collect()
    };

    println!();
    println!("== {}: {} ({} tasks)", w.name, w.title, w.total_tasks());
    println!(
        "  {:<30} {:>24} {:>9}  listener (per run, median [min-max])",
        "variant", "ns/task [min-max]", "run ms"
    );
    for (v, s) in Variant::ALL.iter().zip(samples) {
        let ms: Vec<f64> = s.iter().map(|x| x.elapsed.as_secs_f64() * 1e3).collect();
        let listener = match v {
            Variant::Quiet => "-".to_string(),
            Variant::Drained => format!(
                "received {}, dropped {}",
                spread(&counts(s, |x| x.received), 0),
                spread(&counts(s, |x| x.dropped), 0)
            ),
            Variant::Stuck => format!("dropped {}", spread(&counts(s, |x| x.dropped), 0)),
        };
        println!(
            "  {:<30} {:>24} {:>9.2}  {listener}",
            v.label(args),
            spread(&ns(s), 2),
            median(&ms),
        );
    }

    let (a_ns, b_ns, c_ns) = (ns(a), ns(b), ns(c));
    for (name, other) in [("b/a", &b_ns), ("c/a", &c_ns)] {
        let ratios: Vec<f64> = other.iter().zip(&a_ns).map(|(x, y)| x / y).collect();
        let slower = ratios.iter().filter(|&&r| r > 1.0).count();
        println!(
            "  {name} per round: {}, listener slower in {slower} of {} rounds",
            spread(&ratios, 2),
            ratios.len()
        );
    }

    // The cost of one event, per round: the listener's extra time over the events it caused.
    let per_task_over_2: Vec<f64> = b_ns.iter().zip(&a_ns).map(|(x, y)| (x - y) / 2.0).collect();
    let per_event_told: Vec<f64> = b
        .iter()
        .zip(a)
        .map(|(x, y)| (x.elapsed.as_nanos() as f64 - y.elapsed.as_nanos() as f64) / x.told() as f64)
        .collect();
    let told_per_task: Vec<f64> = b
        .iter()
        .map(|x| x.told() as f64 / w.total_tasks() as f64)
        .collect();
    println!(
        "  per event, drained: (b - a) per task / 2 = {} ns; \
         (b - a) per run / events told = {} ns ({} events per task)",
        spread(&per_task_over_2, 1),
        spread(&per_event_told, 1),
        spread(&told_per_task, 3),
    );
    let c_per_event: Vec<f64> = c_ns.iter().zip(&a_ns).map(|(x, y)| (x - y) / 2.0).collect();
    println!(
        "  per event, never read (mostly dropped): (c - a) per task / 2 = {} ns",
        spread(&c_per_event, 1)
    );
}
