//! W6, the flood: runs of a small graph arriving faster than the pool can serve them.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example flood                # 3 rounds
//! cargo run --release -p jobpool-bench --example flood -- --rounds 7
//! ```
//!
//! Pool of N = 4 threads. A *run* is one `Dag` of three modules, each task a 1 ms sleep:
//! `fetch` 12 tasks, cap 4 -> `aggregate` 4 tasks, cap 2 -> `store` 1 task, cap 1. That is
//! 17 ms of work and a critical path of 3 + 2 + 1 = 6 ms. 400 runs arrive evenly over 1 s (one
//! every 2.5 ms), then none: 400 runs/s against a capacity of N / 17 ms = 235 runs/s, 1.7x.
//!
//! Per run it records the arrival (when `Dag::run` was called) and when `store` was done (the
//! call's instant plus the report's end of `store`, which is measured from the start of the
//! run), and reports:
//!
//! - the runs done during the flood (by 1 s after the first arrival), and that as a share of
//!   the capacity during the flood, `N / 17 ms x 1 s = 235` runs (tasks of exactly 1 ms);
//! - the mean and the 99th percentile of the latency, arrival to `store` done;
//! - the makespan (first arrival to last `store` done) over its lower bound
//!   `LB = max(total work / N, last arrival - first arrival + one run's critical path)`,
//!   computed from the task lengths measured in that round (a 1 ms sleep lasts about 1.08 ms
//!   here); with 1 ms tasks, `total work / N = 400 x 17 ms / 4 = 1.7 s`.
//!
//! The same figures are computed for an idealised "oldest run first" schedule of the same
//! flood, simulated in `jobpool_bench::flood_sim`: with the measured task length (the
//! reference for the latency target) and with tasks of exactly 1 ms.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use jobpool::{Context, Dag, Pool, TaskResult};
use jobpool_bench::cli::positive;
use jobpool_bench::flood_sim::{oldest_run_first, RunTimes, Stats, Workload};
use jobpool_bench::summary::load_average;

/// The nominal length of every task.
const TASK: Duration = Duration::from_millis(1);
/// Stack of a driver thread: it only validates the graph, submits `fetch` and waits.
const DRIVER_STACK: usize = 256 * 1024;
/// Time left between the last driver thread being ready and the first arrival.
const START_MARGIN: Duration = Duration::from_millis(20);
/// Informational targets: runs done during the flood / capacity, at least.
const TARGET_FLOOD_SHARE: f64 = 0.90;
/// Mean latency / the simulated oldest-run-first mean latency, at most.
const TARGET_LATENCY_RATIO: f64 = 1.15;
/// Makespan / (total work / N), at most.
const TARGET_MAKESPAN_RATIO: f64 = 1.05;

// `Dag::run(&self, ..)` is called from many threads at once on one shared graph and pool.
const _: () = {
    const fn shared_between_threads<T: Sync>() {}
    shared_between_threads::<Dag>();
    shared_between_threads::<Pool>();
};

/// The W6 graph: every task sleeps for [`TASK`] and adds how long it really took to `spent`.
fn w6_dag(spent: &Arc<AtomicU64>) -> Dag {
    let task = |spent: &Arc<AtomicU64>| {
        let spent = spent.clone();
        move |_: &Context| -> TaskResult<()> {
            let start = Instant::now();
            thread::sleep(TASK);
            spent.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
            Ok(())
        }
    };
    let mut dag = Dag::new();
    dag.module("fetch", 4, (0..12).map(|_| task(spent)))
        .expect("a new name");
    dag.module("aggregate", 2, (0..4).map(|_| task(spent)))
        .expect("a new name")
        .after(["fetch"])
        .expect("fetch exists");
    dag.module("store", 1, [task(spent)])
        .expect("a new name")
        .after(["aggregate"])
        .expect("aggregate exists");
    dag
}

/// One round of the flood on jobpool.
struct Round {
    stats: Stats,
    /// The mean length of a task in this round.
    task: Duration,
    /// How late the arrivals were against the schedule: the most and the mean.
    max_lateness: Duration,
    mean_lateness: Duration,
}

/// One run as a driver thread saw it.
struct Driven {
    /// How late `Dag::run` was called against the schedule.
    lateness: Duration,
    /// From the scheduled first arrival.
    times: RunTimes,
}

/// Runs the flood once on `pool`.
///
/// How runs are started: `Dag::run` blocks its caller until the run has ended, and under the
/// flood up to a few hundred runs are under way at once, so a small set of driver threads
/// cannot start every run on time (a driver waiting in one run would make the next arrival it
/// owns late). Each run therefore gets its own driver thread, none of them a pool worker. They
/// are all started, with small stacks, before the flood begins, and wait on a barrier; then
/// each sleeps until its own arrival instant and calls `run`. So the arrival clock is never
/// held up by thread creation or by an earlier run; a driver only takes CPU time to wake up,
/// validate the graph and submit `fetch` (the same work any caller of `run` does), and then
/// sleeps until its run ends. What remains, the wake-up delay of a sleeping thread on a busy
/// machine, is measured: every run's lateness against its scheduled arrival is reported, and
/// latencies count from the actual call, so the pool is not charged for it.
fn flood_once(dag: &Dag, pool: &Pool, workload: &Workload, spent: &AtomicU64) -> Round {
    let ready = Barrier::new(workload.arrivals + 1);
    let origin: OnceLock<Instant> = OnceLock::new();
    spent.store(0, Relaxed);
    let driven: Vec<Driven> = thread::scope(|s| {
        let drivers: Vec<_> = (0..workload.arrivals)
            .map(|index| {
                let (ready, origin) = (&ready, &origin);
                thread::Builder::new()
                    .name(format!("flood-driver-{index}"))
                    .stack_size(DRIVER_STACK)
                    .spawn_scoped(s, move || {
                        ready.wait();
                        let origin = *origin.get().expect("set before the barrier opens");
                        let scheduled = origin + workload.arrival(index);
                        if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                            thread::sleep(wait);
                        }
                        let called = Instant::now();
                        let report = dag.run(pool).expect("the W6 graph is valid");
                        assert!(report.is_success(), "a W6 run failed:\n{report}");
                        let store = report
                            .module("store")
                            .and_then(|m| m.end())
                            .expect("store ran");
                        Driven {
                            lateness: called - scheduled,
                            times: RunTimes {
                                arrival: called - origin,
                                done: called + store - origin,
                            },
                        }
                    })
                    .expect("a driver thread starts")
            })
            .collect();
        origin.set(Instant::now() + START_MARGIN).expect("set once");
        ready.wait();
        drivers
            .into_iter()
            .map(|d| d.join().expect("a driver thread panicked"))
            .collect()
    });

    let tasks: usize = workload.stages.iter().map(|s| s.tasks).sum::<usize>() * workload.arrivals;
    let task = Duration::from_nanos(spent.load(Relaxed) / tasks as u64);
    let times: Vec<RunTimes> = driven.iter().map(|d| d.times).collect();
    let measured = Workload::w6(task);
    Round {
        stats: Stats::new(&measured, &times),
        task,
        max_lateness: driven.iter().map(|d| d.lateness).max().unwrap_or_default(),
        mean_lateness: driven.iter().map(|d| d.lateness).sum::<Duration>()
            / driven.len().max(1) as u32,
    }
}

/// W6 with tasks of length `task`, served by the simulated oldest-run-first schedule.
fn simulate(task: Duration) -> Stats {
    let workload = Workload::w6(task);
    Stats::new(&workload, &oldest_run_first(&workload))
}

/// The median of `values` (the lower middle one for an even count).
fn median<T: PartialOrd + Copy>(values: impl IntoIterator<Item = T>) -> T {
    let mut values: Vec<T> = values.into_iter().collect();
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    values[(values.len() - 1) / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One line of the table.
struct Row {
    name: String,
    finished: usize,
    mean: f64,
    p99: f64,
    makespan: f64,
    over_bound: f64,
}

impl Row {
    fn new(name: impl Into<String>, s: &Stats) -> Row {
        Row {
            name: name.into(),
            finished: s.finished_in_flood,
            mean: ms(s.mean_latency),
            p99: ms(s.p99_latency),
            makespan: ms(s.makespan),
            over_bound: s.makespan_over_bound(),
        }
    }

    fn print(&self, capacity: f64) {
        println!(
            "  {:<40} {:>6} {:>5.1}%  {:>8.1} {:>8.1} {:>9.1} {:>7.3}",
            self.name,
            self.finished,
            100.0 * self.finished as f64 / capacity,
            self.mean,
            self.p99,
            self.makespan,
            self.over_bound
        );
    }
}

fn rounds() -> usize {
    let mut rounds = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = positive(args.next(), "--rounds");
            }
            other => panic!("unknown argument {other:?}; try --rounds R"),
        }
    }
    rounds
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn main() {
    let rounds = rounds();
    let nominal = Workload::w6(TASK);
    let capacity = nominal.capacity();
    println!(
        "flood (W6): {} round(s), {} cores, load average {}",
        rounds,
        num_cpus::get(),
        load_average()
    );
    println!(
        "  pool N = {}; {} runs, one every {:?} ({:?}), then none; a run: fetch 12 x 1 ms cap 4 \
         -> aggregate 4 x 1 ms cap 2 -> store 1 x 1 ms cap 1 ({:?} of work, critical path {:?})",
        nominal.workers,
        nominal.arrivals,
        nominal.spacing,
        nominal.flood(),
        nominal.work_per_run(),
        nominal.critical_path()
    );
    println!(
        "  capacity during the flood = N / work per run x flood = {} / {:?} x {:?} = {:.1} runs \
         ({:.2}x overload)",
        nominal.workers,
        nominal.work_per_run(),
        nominal.flood(),
        capacity,
        nominal.arrivals as f64 / capacity
    );
    println!(
        "  LB = max(total work / N, last arrival - first arrival + one run's critical path), \
         from the round's measured task length (with 1 ms tasks: max({:?}, {:?}))",
        nominal.total_work() / nominal.workers as u32,
        nominal.arrival(nominal.arrivals - 1) + nominal.critical_path()
    );

    let spent = Arc::new(AtomicU64::new(0));
    let dag = w6_dag(&spent);
    let pool = Pool::new(nominal.workers);
    // Warm-up: one run alone, which also checks the graph.
    let alone = dag.run(&pool).expect("the W6 graph is valid");
    println!(
        "  one run alone: {:.2} ms (critical path {:?})",
        ms(alone.elapsed()),
        nominal.critical_path()
    );

    let started = Instant::now();
    let mut results: Vec<Round> = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let r = flood_once(&dag, &pool, &nominal, &spent);
        println!(
            "  round {}: mean task {:.3} ms; arrivals late by at most {:.3} ms (mean {:.3} ms); \
             LB {:.1} ms",
            round + 1,
            ms(r.task),
            ms(r.max_lateness),
            ms(r.mean_lateness),
            ms(r.stats.lower_bound)
        );
        results.push(r);
    }

    let task = median(results.iter().map(|r| r.task));
    let simulated = simulate(task);
    let simulated_1ms = simulate(TASK);

    println!();
    println!(
        "  {:<40} {:>13}  {:>8} {:>8} {:>9} {:>7}",
        "schedule", "done in flood", "mean ms", "p99 ms", "makespan", "ms/LB"
    );
    for (i, r) in results.iter().enumerate() {
        Row::new(format!("jobpool, round {}", i + 1), &r.stats).print(capacity);
    }
    let jobpool = Row {
        name: format!("jobpool, median of {rounds}"),
        finished: median(results.iter().map(|r| r.stats.finished_in_flood)),
        mean: median(results.iter().map(|r| ms(r.stats.mean_latency))),
        p99: median(results.iter().map(|r| ms(r.stats.p99_latency))),
        makespan: median(results.iter().map(|r| ms(r.stats.makespan))),
        over_bound: median(results.iter().map(|r| r.stats.makespan_over_bound())),
    };
    jobpool.print(capacity);
    Row::new(
        format!("oldest-run-first (simulated, {:.3} ms)", ms(task)),
        &simulated,
    )
    .print(capacity);
    Row::new("oldest-run-first (simulated, 1 ms)", &simulated_1ms).print(capacity);
    println!(
        "  (done in flood: runs done by 1 s after the first arrival, and / capacity {capacity:.1})"
    );

    let share = jobpool.finished as f64 / capacity;
    let latency_ratio = median(results.iter().map(|r| {
        let reference = simulate(r.task);
        r.stats.mean_latency.as_secs_f64() / reference.mean_latency.as_secs_f64()
    }));
    let makespan_ratio = median(results.iter().map(|r| r.stats.makespan_over_work()));
    println!();
    println!("targets (informational; medians over the rounds, ratios taken per round):");
    println!(
        "  done during the flood / capacity {:.3} >= {TARGET_FLOOD_SHARE:.2}: {}",
        share,
        verdict(share >= TARGET_FLOOD_SHARE)
    );
    println!(
        "  mean latency / simulated oldest-run-first mean latency (the round's task length) \
         {:.3} <= {TARGET_LATENCY_RATIO:.2}: {}",
        latency_ratio,
        verdict(latency_ratio <= TARGET_LATENCY_RATIO)
    );
    println!(
        "  makespan / (total work / N) {:.3} <= {TARGET_MAKESPAN_RATIO:.2}: {}",
        makespan_ratio,
        verdict(makespan_ratio <= TARGET_MAKESPAN_RATIO)
    );
    println!(
        "whole run {:.1?}; load average now {}",
        started.elapsed(),
        load_average()
    );
}
