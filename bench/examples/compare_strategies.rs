//! Issue 4: token counts against the other ways people cap concurrency per job, on W1-W5, in
//! one table.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example compare_strategies             # 7 rounds
//! cargo run --release -p jobpool-bench --example compare_strategies -- --quick  # 2 rounds
//! cargo run --release -p jobpool-bench --example compare_strategies -- --rounds 11
//! cargo run --release -p jobpool-bench --example compare_strategies -- --only W2,W5
//! ```
//!
//! Strategies run interleaved (every strategy once per round, the order rotating each round),
//! so a noisy episode on the machine hits all of them alike; each figure is the median over
//! rounds with the min-max spread beside it. Ratios to rayon and to the static partition are
//! taken per round (paired) before the median.
//!
//! Caps are checked, not assumed: every task of a checked run records how many tasks of its
//! job run at once. W3-W5 are checked on every timed run; W1 and W2 time empty tasks (a probe
//! would cost more than the task), so they are checked in a separate run of the same jobs with
//! 1 us tasks. A strategy that lets a job exceed its cap is marked as breaking it; its times
//! are a baseline, not a result.
//!
//! The strategies are in `bench/src/strategies/`; criterion benchmarks of W1, W2 and W5 are
//! in `bench/benches/strategies.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use jobpool_bench::cli::positive;
use jobpool_bench::strategies::workload::{self, Score, Work, Workload};
use jobpool_bench::strategies::{Blocks, Kind, Report, Strategy};
use jobpool_bench::summary::{load_average, median};

/// W5's CPU work in all, in milliseconds (a run takes about this / N).
const W5_WORK_MS: u64 = 120;
/// Task length in the cap-check runs of W1 and W2: long enough for tasks to overlap.
const CHECK_TASK: Duration = Duration::from_micros(1);

/// One strategy's run of one workload.
struct Sample {
    elapsed: Duration,
    /// ns per task, makespan / LB, or small-job latency / its reference.
    score: f64,
    small_latency: Option<Duration>,
}

/// What a checked run saw.
#[derive(Default, Clone)]
struct Check {
    /// Per job: the most of its tasks seen running at once, over every checked run.
    peaks: Vec<usize>,
    /// The most tasks of all jobs seen running at once.
    run_peak: usize,
    /// jobpool's own `peak_running` per job.
    pool_peaks: Option<Vec<usize>>,
    blocks: Vec<Blocks>,
    stalls: u64,
    runs: usize,
}

impl Check {
    fn add(&mut self, peaks: &[usize], run_peak: usize, report: Report) {
        if self.peaks.is_empty() {
            self.peaks = vec![0; peaks.len()];
        }
        for (seen, &p) in self.peaks.iter_mut().zip(peaks) {
            *seen = (*seen).max(p);
        }
        self.run_peak = self.run_peak.max(run_peak);
        if let Some(pool) = report.pool_peaks {
            let seen = self.pool_peaks.get_or_insert_with(|| vec![0; pool.len()]);
            for (seen, p) in seen.iter_mut().zip(pool) {
                *seen = (*seen).max(p);
            }
        }
        self.blocks.extend(report.blocks);
        self.stalls += report.stalls.unwrap_or(0);
        self.runs += 1;
    }

    /// Whether every job stayed within its cap (by the tasks' probes and, for jobpool, by the
    /// pool's own count).
    fn caps_held(&self, w: &Workload) -> bool {
        let within = |peaks: &[usize]| peaks.iter().zip(&w.jobs).all(|(&p, j)| p <= j.cap);
        within(&self.peaks) && self.pool_peaks.as_deref().map_or(true, within)
    }
}

/// Measured lengths of the sleeps the workloads use.
struct Clock {
    sleeps: BTreeMap<Duration, Duration>,
}

impl Clock {
    fn measure(workloads: &[Workload]) -> Clock {
        let mut sleeps = BTreeMap::new();
        for w in workloads {
            for j in &w.jobs {
                if let Work::Sleep(d) = j.work {
                    sleeps
                        .entry(d)
                        .or_insert_with(|| workload::measure_sleep(d, 30));
                }
            }
        }
        Clock { sleeps }
    }

    /// How long a task of `work` really takes: measured for sleeps, nominal otherwise.
    fn length(&self, work: Work) -> Duration {
        match work {
            Work::Sleep(d) => self.sleeps[&d],
            other => other.nominal(),
        }
    }
}

/// W4's yardstick: one task of the big job (what the small job may wait for at most, with
/// preemption at task ends) plus the small job's own work.
fn small_job_reference(w: &Workload, clock: &Clock) -> Duration {
    let big = &w.jobs[0];
    let small = w.jobs.last().expect("W4 has jobs");
    let waves = small.tasks.div_ceil(small.cap.min(w.threads));
    clock.length(big.work) + clock.length(small.work) * waves as u32
}

/// Runs `w` once on `strategy`: timed, and checked if its tasks are not empty.
fn run_once(strategy: &Strategy, w: &Workload, clock: &Clock, check: &mut Check) -> Sample {
    let (elapsed, small_latency) = if w.score == Score::NsPerTask {
        let jobs = w.empty_specs();
        let start = Instant::now();
        strategy.run(&jobs);
        (start.elapsed(), None)
    } else {
        run_checked(strategy, w, None, check)
    };
    let score = match w.score {
        Score::NsPerTask => elapsed.as_nanos() as f64 / w.total_tasks() as f64,
        Score::MakespanOverBound => ratio(elapsed, w.lower_bound(|work| clock.length(work))),
        Score::SmallJobLatency => ratio(
            small_latency.expect("the small job finished"),
            small_job_reference(w, clock),
        ),
    };
    Sample {
        elapsed,
        score,
        small_latency,
    }
}

/// The cap check of W1 and W2: the same jobs, with 1 us tasks that record their concurrency.
fn check_empty_workload(strategy: &Strategy, w: &Workload, check: &mut Check) {
    run_checked(strategy, w, Some(Work::Spin(CHECK_TASK)), check);
}

/// Runs `w`'s jobs (with `work` for every task, if given) on tasks that record their
/// concurrency; asserts every task ran and adds the peaks to `check`. Returns the time taken
/// and the last job's latency.
fn run_checked(
    strategy: &Strategy,
    w: &Workload,
    work: Option<Work>,
    check: &mut Check,
) -> (Duration, Option<Duration>) {
    let (jobs, probes, run) = w.tracked_specs(work);
    let start = Instant::now();
    let report = strategy.run(&jobs);
    let elapsed = start.elapsed();
    assert!(
        probes.iter().all(|p| p.all_ran()),
        "{:?} lost tasks",
        strategy.kind()
    );
    let peaks: Vec<usize> = probes.iter().map(|p| p.peak.load(Relaxed)).collect();
    check.add(&peaks, run.peak.load(Relaxed), report);
    (elapsed, probes.last().and_then(|p| p.latency()))
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn spread(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// `median [min-max]`, with as many decimals as the kind of figure needs.
fn summary(values: &[f64], score: Score) -> String {
    let (min, max) = spread(values);
    let med = median(values);
    let digits = match score {
        // ns per task: three significant digits or so.
        Score::NsPerTask if med >= 100.0 => 0,
        Score::NsPerTask if med >= 10.0 => 1,
        Score::NsPerTask => 2,
        Score::MakespanOverBound | Score::SmallJobLatency => 3,
    };
    format!("{med:.digits$} [{min:.digits$}-{max:.digits$}]")
}

/// One of jobpool's figures: its value and, for a target, the limit it must stay within.
struct Target {
    workload: &'static str,
    what: String,
    value: f64,
    /// `None`: a comparison reported for information, with no target.
    limit: Option<f64>,
}

impl Target {
    fn met(&self) -> bool {
        self.limit.map_or(true, |limit| self.value <= limit)
    }

    fn cell(&self) -> String {
        match self.limit {
            Some(limit) => format!(
                "{} {:.3} <= {:.2}: {}",
                self.what,
                self.value,
                limit,
                if self.met() { "met" } else { "MISSED" }
            ),
            None => format!("{} {:.3} (no target)", self.what, self.value),
        }
    }
}

struct Args {
    rounds: usize,
    quick: bool,
    /// Workload names to run (all if empty).
    only: Vec<String>,
}

fn args() -> Args {
    let mut args = Args {
        rounds: 7,
        quick: false,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                args.quick = true;
                args.rounds = 2;
            }
            "--rounds" => {
                args.rounds = positive(it.next(), "--rounds");
            }
            "--only" => {
                let names = it.next().expect("--only takes workload names, as W1,W3");
                args.only = names.split(',').map(|n| n.trim().to_uppercase()).collect();
            }
            other => {
                panic!("unknown argument {other:?}; try --quick, --rounds N or --only W1,W2")
            }
        }
    }
    args
}

fn main() {
    let args = args();
    let cores = num_cpus::get();
    let workloads: Vec<Workload> = [
        workload::w1(cores),
        workload::w2(cores),
        workload::w3(),
        workload::w4(),
        workload::w5(cores, W5_WORK_MS),
    ]
    .into_iter()
    .filter(|w| args.only.is_empty() || args.only.iter().any(|n| n == w.name))
    .collect();
    let started = Instant::now();
    println!(
        "compare_strategies: {} round(s), {cores} cores, load average {}",
        args.rounds,
        load_average()
    );

    let clock = Clock::measure(&workloads);
    for (nominal, real) in &clock.sleeps {
        println!(
            "sleep({nominal:?}) measured: median {real:?} (overshoot {:?})",
            real.saturating_sub(*nominal)
        );
    }

    // One set of strategies per pool size, built once.
    let mut sizes: Vec<usize> = workloads.iter().map(|w| w.threads).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let pools: BTreeMap<usize, Vec<Strategy>> = sizes
        .iter()
        .map(|&n| (n, Kind::ALL.iter().map(|&k| Strategy::new(k, n)).collect()))
        .collect();

    // samples[workload][strategy] and checks[workload][strategy]
    let mut samples: Vec<Vec<Vec<Sample>>> = workloads
        .iter()
        .map(|_| Kind::ALL.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut checks: Vec<Vec<Check>> = workloads
        .iter()
        .map(|_| vec![Check::default(); Kind::ALL.len()])
        .collect();

    // Cap checks of the empty-task workloads, and a warm-up of every pool.
    for (wi, w) in workloads.iter().enumerate() {
        if w.score == Score::NsPerTask {
            for (si, strategy) in pools[&w.threads].iter().enumerate() {
                check_empty_workload(strategy, w, &mut checks[wi][si]);
                strategy.run(&w.empty_specs());
            }
        }
    }

    for round in 0..args.rounds {
        for (wi, w) in workloads.iter().enumerate() {
            let strategies = &pools[&w.threads];
            for i in 0..strategies.len() {
                let si = (i + round) % strategies.len();
                let sample = run_once(&strategies[si], w, &clock, &mut checks[wi][si]);
                samples[wi][si].push(sample);
            }
        }
        eprintln!(
            "round {}/{} done at {:.0?}",
            round + 1,
            args.rounds,
            started.elapsed()
        );
    }

    let targets = report(&workloads, &clock, &samples, &checks);
    println!();
    println!("jobpool's targets (this run):");
    for t in &targets {
        println!("  {:<3} {}", t.workload, t.cell());
    }
    let missed = targets.iter().filter(|t| !t.met()).count();
    let with_limit = targets.iter().filter(|t| t.limit.is_some()).count();
    println!(
        "{} of {} targets met; whole run {:.0?}; load average now {}",
        with_limit - missed,
        with_limit,
        started.elapsed(),
        load_average()
    );
    if args.quick {
        println!("(--quick: 2 rounds; medians of so few runs are rough)");
    }
}

/// What the columns of the tables mean, printed above them.
const LEGEND: &str = "\
Columns of each table (one row per strategy; figures are medians over the rounds):
  score     ns/task: a run's wall time / its tasks (W1, W2); makespan/LB: a run's wall
            time / the lower bound LB (W3, W5); latency/ref: the small job's latency /
            one task of the big job plus the small job's own work (W4). [min-max] over
            the rounds. Lower is better.
  ms        run ms: a run's wall time; in W4, small ms: the small job's latency.
  caps      the job that came closest to its cap, as most tasks seen at once / cap,
            over every checked run: ok (held), BROKEN (a capping strategy exceeded
            it), or none (an uncapped baseline, which ignores caps).
  peak/N    the most tasks of all jobs seen at once / the N threads the workload is
            given; above N, the strategy ran more threads than N.
  blocked   time per run that workers sat blocked on a job's cap while other jobs had
            tasks waiting to start, then such blocks / all blocks on caps per run
            (no blocks: a worker never waited on a cap);
            never: it cannot block on a cap (channel of channels: and its stalls,
            waits on an open, empty job channel, in all runs); -: no caps to block
            on, or no shared queue.
  W1 and W2 time empty tasks; their caps, peak/N and blocked columns come from
  separate runs of the same jobs with 1 us tasks.";

/// Prints the table and returns jobpool's targets.
fn report(
    workloads: &[Workload],
    clock: &Clock,
    samples: &[Vec<Vec<Sample>>],
    checks: &[Vec<Check>],
) -> Vec<Target> {
    let index = |kind: Kind| Kind::ALL.iter().position(|&k| k == kind).unwrap();
    let (jobpool, spawn, par_iter, floor) = (
        index(Kind::TokenCount),
        index(Kind::UncappedRayonSpawn),
        index(Kind::UncappedRayonParIter),
        index(Kind::StaticPartition),
    );
    println!();
    println!("{LEGEND}");
    let mut targets = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        println!();
        println!("== {}: {}", w.name, w.title);
        let (unit, ms_column) = match w.score {
            Score::NsPerTask => ("ns/task", "run ms"),
            Score::MakespanOverBound => {
                let lb = w.lower_bound(|work| clock.length(work));
                println!("  lower bound LB = {:.2} ms", lb.as_secs_f64() * 1e3);
                ("makespan/LB", "run ms")
            }
            Score::SmallJobLatency => {
                let r = small_job_reference(w, clock);
                println!(
                    "  ref = one big task + the small job's own work = {:.2} ms",
                    r.as_secs_f64() * 1e3
                );
                ("latency/ref", "small ms")
            }
        };
        println!(
            "  {:<25} {:>21} {:>7} {:>10} {:>6}  blocked",
            "strategy",
            format!("{unit} [min-max]"),
            ms_column,
            "caps",
            "peak/N",
        );
        for (si, kind) in Kind::ALL.iter().enumerate() {
            let s = &samples[wi][si];
            let scores: Vec<f64> = s.iter().map(|x| x.score).collect();
            let ms: Vec<f64> = if w.score == Score::SmallJobLatency {
                s.iter()
                    .filter_map(|x| x.small_latency)
                    .map(|d| d.as_secs_f64() * 1e3)
                    .collect()
            } else {
                s.iter().map(|x| x.elapsed.as_secs_f64() * 1e3).collect()
            };
            let check = &checks[wi][si];
            println!(
                "  {:<25} {:>21} {:>7.1} {:>10} {:>6}  {}",
                kind.name(),
                summary(&scores, w.score),
                median(&ms),
                caps_cell(*kind, w, check),
                format!("{}/{}", check.run_peak, w.threads),
                blocked_cell(*kind, check),
            );
        }
        // jobpool's targets for this workload, from per-round paired ratios.
        let paired = |other: usize| -> Vec<f64> {
            samples[wi][jobpool]
                .iter()
                .zip(&samples[wi][other])
                .map(|(a, b)| a.score / b.score)
                .collect()
        };
        let mut add = |what: &str, values: Vec<f64>, limit: Option<f64>| {
            let t = Target {
                workload: w.name,
                what: what.into(),
                value: median(&values),
                limit,
            };
            let per_round = summary(&values, Score::MakespanOverBound);
            println!("  {}  (per round: {per_round})", t.cell());
            targets.push(t);
        };
        let own: Vec<f64> = samples[wi][jobpool].iter().map(|x| x.score).collect();
        match w.name {
            "W1" => {
                add(
                    "jobpool/rayon spawn, time per task",
                    paired(spawn),
                    Some(0.5),
                );
                add("jobpool/rayon par_iter", paired(par_iter), None);
                add("jobpool/static partition", paired(floor), Some(2.0));
            }
            "W2" => {
                add(
                    "jobpool/rayon spawn, time per task",
                    paired(spawn),
                    Some(1.0),
                );
                add("jobpool/rayon par_iter", paired(par_iter), None);
            }
            "W3" => add("jobpool makespan/LB", own, Some(1.02)),
            "W4" => add("jobpool small-job latency/ref", own, Some(1.1)),
            "W5" => add("jobpool makespan/LB", own, Some(1.05)),
            _ => {}
        }
        if !checks[wi][jobpool].caps_held(w) {
            println!("  jobpool BROKE A CAP here: its figures above are not valid");
        }
    }
    targets
}

/// The job that came closest to (or furthest past) its cap: `ok`, `BROKEN` or `none` (for the
/// uncapped baselines), then most tasks seen at once / cap.
fn caps_cell(kind: Kind, w: &Workload, check: &Check) -> String {
    let worst = check
        .peaks
        .iter()
        .zip(&w.jobs)
        .max_by(|(p1, j1), (p2, j2)| (**p1 * j2.cap).cmp(&(**p2 * j1.cap)).then(p1.cmp(p2)));
    let verdict = if !kind.enforces_caps() {
        "none"
    } else if check.caps_held(w) {
        "ok"
    } else {
        "BROKEN"
    };
    match worst {
        Some((peak, job)) => format!("{verdict} {peak}/{}", job.cap),
        None => "-".into(),
    }
}

/// Whether workers sat blocked on a cap while other jobs had tasks waiting to start.
fn blocked_cell(kind: Kind, check: &Check) -> String {
    match kind {
        Kind::SemaphoreQueue | Kind::SemaphoreRayon => {
            if check.blocks.is_empty() {
                return "not recorded".into();
            }
            let median_of =
                |f: fn(&Blocks) -> f64| median(&check.blocks.iter().map(f).collect::<Vec<_>>());
            let ms = median_of(|b| b.blocked_runnable_ns as f64 / 1e6);
            let harmful = median_of(|b| b.events_runnable as f64);
            let all = median_of(|b| b.events as f64);
            if all == 0.0 {
                "no blocks".into()
            } else {
                format!("{ms:.1} ms, {harmful:.0}/{all:.0} blocks")
            }
        }
        Kind::TokenCount => "never".into(),
        Kind::ChanOfChans => format!("never ({} stalls)", check.stalls),
        Kind::PoolPerJob => "- (own threads)".into(),
        Kind::UncappedRayonSpawn | Kind::UncappedRayonParIter | Kind::UncappedQueue => {
            "- (no caps)".into()
        }
        Kind::StaticPartition => "- (no queue)".into(),
    }
}
