//! jobpool against rayon's fastest path, `(0..n).into_par_iter().for_each(..)`, and against
//! rayon's `scope` + `spawn` (one heap-allocated task each), side by side in one interleaved
//! run: the table the issue asks for, time per task on empty tasks. Beside them runs a bare
//! pool of jobpool's shape (`jobpool_bench::bare_shape`: one shared queue of per-job entries,
//! a token count per job, and none of jobpool's other promises), which shows what the shape
//! itself costs.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example vs_rayon                   # 15 rounds
//! cargo run --release -p jobpool-bench --example vs_rayon -- --rounds 3
//! cargo run --release -p jobpool-bench --example vs_rayon -- --only big --threads 2
//! ```
//!
//! **Workloads**, for each pool size N (`--threads`, default 2 and 8), on a `jobpool::Pool` of
//! N threads and a rayon `ThreadPool` of N threads, both built once:
//!
//! - **one big job** (`big`): 200,000 empty tasks. jobpool: one job, cap k = N, its results
//!   returned in order (a `Vec<()>`); rayon `par_iter`: `(0..n).into_par_iter().for_each(..)`
//!   under `install`; rayon `scope` + `spawn`: every task `spawn`ed into one scope.
//! - **many small jobs** (`small`): 20,000 jobs of 8 empty tasks, cap k = 2. jobpool: every job
//!   submitted, then each handle waited for; rayon `par_iter`: one task `spawn`ed per job into
//!   one scope, running the job's `(0..8).into_par_iter().for_each(..)`; rayon `scope` +
//!   `spawn`: the 160,000 tasks `spawn`ed into one scope. rayon has no per-job cap, so its
//!   rows ignore the cap of 2: they are baselines, not the same contract.
//!
//! The bare pool runs each workload as jobpool does (the same jobs, caps and waits), with
//! tasks `|| ()` and no results.
//!
//! jobpool's tasks are `|| ()`; its results go through `black_box`. The `par_iter` body passes
//! its index through `black_box`: with a truly empty body the compiler drops the loop over a
//! chunk's items, and only the splitting would be timed.
//!
//! **Interleaved**: each of R rounds (`--rounds`, default 15) runs every contender of every
//! (workload, N) once, the contenders' order rotating from round to round, so that a noisy
//! episode on the machine hits all of them alike; every contender gets one untimed warm-up run
//! first. Printed per (workload, N): each contender's median ns per task with [min-max] over
//! the rounds, and the ratios jobpool / `par_iter`, jobpool / `scope` + `spawn` and bare pool
//! / `par_iter` taken per round (paired) before their median, with their range and the rounds
//! in which the first of each pair was slower; then the whole as a markdown table. The load
//! average is printed at the start and at the end.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jobpool::Pool;
use jobpool_bench::bare_shape::BarePool;
use jobpool_bench::cli::positive;
use jobpool_bench::summary::{load_average, median, spread};
use rayon::prelude::*;

/// One big job: its tasks (its cap is N).
const BIG_TASKS: usize = 200_000;
/// Many small jobs: jobs, tasks per job, and each job's cap.
const SMALL_JOBS: usize = 20_000;
const SMALL_TASKS: usize = 8;
const SMALL_CAP: usize = 2;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    /// One job of `BIG_TASKS` empty tasks, cap N.
    Big,
    /// `SMALL_JOBS` jobs of `SMALL_TASKS` empty tasks, cap `SMALL_CAP`.
    Small,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::Big, Workload::Small];

    /// The name `--only` takes.
    fn key(self) -> &'static str {
        match self {
            Workload::Big => "big",
            Workload::Small => "small",
        }
    }

    /// The row's name in the table, as the issue words it.
    fn label(self, threads: usize) -> String {
        match self {
            Workload::Big => format!("one big job, N = {threads}"),
            Workload::Small => format!("many small jobs, N = {threads}"),
        }
    }

    fn title(self, threads: usize) -> String {
        match self {
            Workload::Big => format!("{BIG_TASKS} empty tasks in one job, k = N = {threads}"),
            Workload::Small => format!(
                "{SMALL_JOBS} jobs x {SMALL_TASKS} empty tasks, k = {SMALL_CAP}, N = {threads} \
                 (rayon: uncapped, a baseline: it has no per-job cap)"
            ),
        }
    }

    fn tasks(self) -> usize {
        match self {
            Workload::Big => BIG_TASKS,
            Workload::Small => SMALL_JOBS * SMALL_TASKS,
        }
    }
}

/// The contenders, in the table's column order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Contender {
    ParIter,
    Jobpool,
    BareShape,
    ScopeSpawn,
}

impl Contender {
    const ALL: [Contender; 4] = [
        Contender::ParIter,
        Contender::Jobpool,
        Contender::BareShape,
        Contender::ScopeSpawn,
    ];

    fn name(self) -> &'static str {
        match self {
            Contender::ParIter => "rayon par_iter",
            Contender::Jobpool => "jobpool",
            Contender::BareShape => "bare shape",
            Contender::ScopeSpawn => "rayon scope+spawn",
        }
    }
}

/// The three pools of one size, built once.
struct Pools {
    threads: usize,
    jobpool: Pool,
    bare: BarePool,
    rayon: rayon::ThreadPool,
}

impl Pools {
    fn new(threads: usize) -> Pools {
        Pools {
            threads,
            jobpool: Pool::new(threads),
            bare: BarePool::new(threads),
            rayon: rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("rayon pool"),
        }
    }

    /// Runs `workload` once on `contender` and returns its wall time.
    fn run(&self, workload: Workload, contender: Contender) -> Duration {
        let start = Instant::now();
        match (workload, contender) {
            (Workload::Big, Contender::Jobpool) => big_jobpool(&self.jobpool, self.threads),
            (Workload::Big, Contender::ParIter) => big_par_iter(&self.rayon),
            (Workload::Big, Contender::BareShape) => big_bare(&self.bare, self.threads),
            (Workload::Big, Contender::ScopeSpawn) => scope_spawn(&self.rayon, BIG_TASKS),
            (Workload::Small, Contender::Jobpool) => small_jobpool(&self.jobpool),
            (Workload::Small, Contender::ParIter) => small_par_iter(&self.rayon),
            (Workload::Small, Contender::BareShape) => small_bare(&self.bare),
            (Workload::Small, Contender::ScopeSpawn) => {
                scope_spawn(&self.rayon, SMALL_JOBS * SMALL_TASKS)
            }
        }
        start.elapsed()
    }
}

/// One big job on jobpool: cap `cap`, the results (in order) waited for.
fn big_jobpool(pool: &Pool, cap: usize) {
    let results = pool
        .submit((0..BIG_TASKS).map(|_| || ()), cap)
        .wait()
        .expect("no task panics");
    black_box(results);
}

/// One big job on the bare pool of jobpool's shape: cap `cap`, no results.
fn big_bare(pool: &BarePool, cap: usize) {
    pool.submit((0..BIG_TASKS).map(|_| || ()), cap).wait();
}

/// One big job on rayon's data-parallel path.
fn big_par_iter(pool: &rayon::ThreadPool) {
    pool.install(|| {
        (0..BIG_TASKS).into_par_iter().for_each(|i| {
            black_box(i);
        })
    });
}

/// `tasks` empty tasks, each `spawn`ed into one rayon scope.
fn scope_spawn(pool: &rayon::ThreadPool, tasks: usize) {
    pool.scope(|s| {
        for _ in 0..tasks {
            s.spawn(|_| ());
        }
    });
}

/// Many small jobs on jobpool: every job submitted, then each handle waited for.
fn small_jobpool(pool: &Pool) {
    let handles: Vec<_> = (0..SMALL_JOBS)
        .map(|_| pool.submit((0..SMALL_TASKS).map(|_| || ()), SMALL_CAP))
        .collect();
    for handle in handles {
        black_box(handle.wait().expect("no task panics"));
    }
}

/// Many small jobs on the bare pool of jobpool's shape, as on jobpool.
fn small_bare(pool: &BarePool) {
    let jobs: Vec<_> = (0..SMALL_JOBS)
        .map(|_| pool.submit((0..SMALL_TASKS).map(|_| || ()), SMALL_CAP))
        .collect();
    for job in jobs {
        job.wait();
    }
}

/// Many small jobs on rayon: each job one `par_iter`, uncapped, the jobs spawned into one
/// scope so that they run side by side.
fn small_par_iter(pool: &rayon::ThreadPool) {
    pool.scope(|s| {
        for _ in 0..SMALL_JOBS {
            s.spawn(|_| {
                (0..SMALL_TASKS).into_par_iter().for_each(|i| {
                    black_box(i);
                })
            });
        }
    });
}

/// One (workload, N) of the table, with its samples in ns per task, per contender.
struct Cell<'p> {
    workload: Workload,
    pools: &'p Pools,
    ns: [Vec<f64>; 4],
}

impl Cell<'_> {
    fn samples(&self, contender: Contender) -> &[f64] {
        let i = Contender::ALL.iter().position(|&c| c == contender).unwrap();
        &self.ns[i]
    }

    /// `one`'s time over `other`'s, per round.
    fn ratios(&self, one: Contender, other: Contender) -> Vec<f64> {
        self.samples(one)
            .iter()
            .zip(self.samples(other))
            .map(|(a, b)| a / b)
            .collect()
    }
}

/// `median [min-max]` in ns per task, with about three significant digits.
fn ns_summary(values: &[f64]) -> String {
    let med = median(values);
    let digits = if med >= 100.0 {
        0
    } else if med >= 10.0 {
        1
    } else {
        2
    };
    spread(values, digits)
}

/// A paired ratio: `median [min-max]`, and in how many rounds `one` was slower.
fn ratio_summary(one: Contender, ratios: &[f64]) -> String {
    let slower = ratios.iter().filter(|&&r| r > 1.0).count();
    // Against scope+spawn the ratio can be 0.004: three decimals below 0.1.
    let digits = if median(ratios) >= 0.1 { 2 } else { 3 };
    format!(
        "{}, {} slower in {slower}/{}",
        spread(ratios, digits),
        one.name(),
        ratios.len()
    )
}

struct Args {
    rounds: usize,
    workloads: Vec<Workload>,
    threads: Vec<usize>,
}

fn args() -> Args {
    let mut args = Args {
        rounds: 15,
        workloads: Workload::ALL.to_vec(),
        threads: vec![2, 8],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rounds" => {
                args.rounds = positive(it.next(), "--rounds");
            }
            "--only" => {
                let names = it
                    .next()
                    .expect("--only takes workload names, as big,small");
                args.workloads = names
                    .split(',')
                    .map(|name| {
                        let name = name.trim().to_lowercase();
                        Workload::ALL
                            .into_iter()
                            .find(|w| w.key() == name)
                            .unwrap_or_else(|| panic!("unknown workload {name:?}: big or small"))
                    })
                    .collect();
            }
            "--threads" => {
                let sizes = it.next().expect("--threads takes pool sizes, as 2,8");
                args.threads = sizes
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse()
                            .ok()
                            .filter(|&n: &usize| n > 0)
                            .unwrap_or_else(|| panic!("--threads: {n:?} is not a positive number"))
                    })
                    .collect();
            }
            other => panic!(
                "unknown argument {other:?}; try --rounds R, --only big,small or --threads 2,8"
            ),
        }
    }
    args
}

fn main() {
    let args = args();
    let started = Instant::now();
    let load_at_start = load_average();
    println!(
        "vs_rayon: {} round(s), N in {:?}, {} cores, load average {load_at_start}",
        args.rounds,
        args.threads,
        num_cpus::get(),
    );

    let pools: Vec<Pools> = args.threads.iter().map(|&n| Pools::new(n)).collect();
    let mut cells: Vec<Cell> = args
        .workloads
        .iter()
        .flat_map(|&workload| {
            pools.iter().map(move |pools| Cell {
                workload,
                pools,
                ns: Default::default(),
            })
        })
        .collect();

    // One untimed run of everything: threads started, caches and allocator warm.
    for cell in &cells {
        for contender in Contender::ALL {
            cell.pools.run(cell.workload, contender);
        }
    }

    for round in 0..args.rounds {
        for cell in &mut cells {
            for i in 0..Contender::ALL.len() {
                let ci = (i + round) % Contender::ALL.len();
                let elapsed = cell.pools.run(cell.workload, Contender::ALL[ci]);
                let ns = elapsed.as_nanos() as f64 / cell.workload.tasks() as f64;
                cell.ns[ci].push(ns);
            }
        }
        eprintln!(
            "round {}/{} done at {:.1?}",
            round + 1,
            args.rounds,
            started.elapsed()
        );
    }
    let load_at_end = load_average();

    for cell in &cells {
        let w = cell.workload;
        println!();
        println!(
            "== {}: {}",
            w.label(cell.pools.threads),
            w.title(cell.pools.threads)
        );
        println!(
            "  {:<18} {:>24} {:>8}",
            "contender", "ns/task [min-max]", "run ms"
        );
        for contender in Contender::ALL {
            let ns = cell.samples(contender);
            let ms: Vec<f64> = ns.iter().map(|x| x * w.tasks() as f64 / 1e6).collect();
            println!(
                "  {:<18} {:>24} {:>8.2}",
                contender.name(),
                ns_summary(ns),
                median(&ms)
            );
        }
        for (one, other) in [
            (Contender::Jobpool, Contender::ParIter),
            (Contender::Jobpool, Contender::ScopeSpawn),
            (Contender::BareShape, Contender::ParIter),
        ] {
            println!(
                "  {} / {} per round: {}",
                one.name(),
                other.name(),
                ratio_summary(one, &cell.ratios(one, other))
            );
        }
    }

    println!();
    println!(
        "ns per task, median [min-max] over {} interleaved round(s); the ratios to rayon \
         par_iter taken per round, median [min-max], and the rounds in which the one over \
         par_iter was slower. \
         Many small jobs: rayon ignores the cap of 2 (it has none). Load average {load_at_start} \
         at the start, {load_at_end} at the end.",
        args.rounds
    );
    println!();
    println!(
        "| workload | rayon par_iter | jobpool | rayon scope+spawn | jobpool / par_iter | \
         bare shape | bare shape / par_iter |"
    );
    println!("|---|---|---|---|---|---|---|");
    for cell in &cells {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell.workload.label(cell.pools.threads),
            ns_summary(cell.samples(Contender::ParIter)),
            ns_summary(cell.samples(Contender::Jobpool)),
            ns_summary(cell.samples(Contender::ScopeSpawn)),
            ratio_summary(
                Contender::Jobpool,
                &cell.ratios(Contender::Jobpool, Contender::ParIter)
            ),
            ns_summary(cell.samples(Contender::BareShape)),
            ratio_summary(
                Contender::BareShape,
                &cell.ratios(Contender::BareShape, Contender::ParIter)
            ),
        );
    }
    println!();
    println!("whole run {:.1?}", started.elapsed());
}
