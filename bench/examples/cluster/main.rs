//! jobpool's cluster (feature `cluster`) on a NATS JetStream server: its throughput and latency
//! against the raw JetStream round trip on the same server, and its overhead against a local
//! pool, with 1, 2 and 4 worker processes.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example cluster                  # 5 rounds, ~3 min
//! cargo run --release -p jobpool-bench --example cluster -- --rounds 7
//! cargo run --release -p jobpool-bench --example cluster -- --only throughput,latency
//! cargo run --release -p jobpool-bench --example cluster -- --workers 2 --jobpool-tasks 20000
//! ```
//!
//! Needs `nats-server` (2.9 or later) on the PATH: the program starts its own,
//! `nats-server -js -a 127.0.0.1 -p <free port> -sd <fresh temporary directory>`, and kills it
//! (and removes its store) at the end. The worker processes are this program's own binary,
//! `cluster worker --url URL --threads T` (a jobpool `Worker` of T threads) or
//! `cluster raw-worker --url URL --batch B` (the baseline's worker), started afresh for every
//! contender of every round and killed after it; they also exit when the parent dies (their
//! standard input ends).
//!
//! Options: `--rounds N` (5), `--workers 1,2,4`, `--threads T` (2 per worker process),
//! `--tasks N` (20,000: the raw throughput run; also the most a sized jobpool job gets),
//! `--jobpool-tasks N` (by default sized from a pilot job, see below), `--cap K` (1,000),
//! `--latency-jobs N` (200), `--sleep-tasks N` (400), `--sleep-ms MS` (10), `--raw-batch B`
//! (100), `--only throughput,latency,overhead` (all three).
//!
//! **Contenders**, per worker count W, interleaved: in round r they run in the order
//! (jobpool, raw, local) rotated by r, so that an episode of a slow machine hits all of them
//! alike. Each jobpool contender starts W worker processes, runs warm-up jobs of 20 ms tasks
//! until every process has run one (so each is connected, follows the jobs and pulls), then
//! the throughput job, the latency jobs and the sleeping job, one after the other, through
//! one `Submitter` (the parent's, connected once).
//!
//! 1. **Throughput**: one job of empty tasks (`u64 -> u32`: it hands back the worker's
//!    process id), cap 1,000, from `submit` to the end of `RemoteJob::wait`: tasks/s. Its size
//!    is `--jobpool-tasks`, or else, per W, sized from an untimed pilot job of 200 tasks so
//!    that a job lasts about 3 s: at least 200, at most 5,000 and `--tasks` (a slow cluster
//!    would otherwise take minutes a round).
//!    Against **raw JetStream**: `--tasks` messages published to a work-queue stream, each
//!    with a message id as jobpool's tasks (all sent one after the other, the
//!    acknowledgements awaited as they come on a task of their own), pulled by W raw worker
//!    processes from one durable consumer (`MaxAckPending` = the cap) in batches of
//!    `--raw-batch`, each message answered on a tokio task of its own (publish the reply to a
//!    results stream, await its acknowledgement, then `Ack`: the order a jobpool worker
//!    keeps), the replies read by an ordered consumer made before the first publish:
//!    messages/s from the first publish to the last reply read. Both streams on file storage,
//!    as jobpool's. The ratio jobpool / raw is taken per round. Target: its median at least
//!    0.5.
//! 2. **Latency**: `--latency-jobs` jobs of one empty task (cap 1), one after the other, each
//!    from `submit` to the end of `wait` (the job's consumer made, its record and its task
//!    published, the result read, the job marked done and its consumer deleted): the median
//!    and the 99th percentile (nearest rank) of each round. Against raw JetStream: as many
//!    round trips one after the other: publish one message (acknowledged), read its reply
//!    (one consumer for the whole round, made before). No target; the ratio of the medians
//!    is printed.
//! 3. **Overhead**: a job of `--sleep-tasks` tasks that sleep `--sleep-ms` (400 x 10 ms) with
//!    cap = every worker thread (W x T), on the cluster, against the same job on one local
//!    `Pool::new(W x T)` in this process (`pool.submit(tasks, W x T)`). Target: the cluster
//!    takes less than 5% longer (the median of the ratios taken per round at most 1.05).
//!
//! Printed: a line per round, then per W each figure's median [min-max] over the rounds, the
//! paired ratios, and whether the targets are met; at the end, one table for all W.
//!
//! **Noise.** This machine has 2 cores; with 4 worker processes, 8 worker threads, the
//! server and the submitter share them. The load average is printed at the start and the end.

mod children;
mod cluster_side;
mod raw;
mod report;
mod server;

use std::time::{Duration, Instant};

use jobpool::cluster::{Broker, Submitter};
use jobpool::Pool;
use jobpool_bench::cli::positive;
use jobpool_bench::summary::{load_average, median};

use children::{task_types, Types, Workers};
use cluster_side::{local_sleep_job, run_job, warm_up};
use raw::Raw;
use report::{p99, print_table};
use server::NatsServer;

/// Target: jobpool's throughput over the raw one's, at least.
const TARGET_THROUGHPUT: f64 = 0.5;
/// Target: the cluster's time for the sleeping job over a local pool's, at most.
const TARGET_OVERHEAD: f64 = 1.05;
/// The pilot job's size, and how long a sized throughput job should last.
const PILOT_TASKS: usize = 200;
const THROUGHPUT_JOB: Duration = Duration::from_secs(3);
/// The most tasks a sized throughput job gets: `Submitter::submit` of a larger job never
/// returns (as of 7189f22: it holds every publish's acknowledgement until the last task is
/// sent, and the client lets no more than 5,000 be pending; `--jobpool-tasks` overrides).
const SUBMIT_LIMIT: usize = 5000;

struct Args {
    rounds: usize,
    workers: Vec<usize>,
    threads: usize,
    tasks: usize,
    jobpool_tasks: Option<usize>,
    cap: usize,
    latency_jobs: usize,
    sleep_tasks: usize,
    sleep_ms: u64,
    raw_batch: usize,
    throughput: bool,
    latency: bool,
    overhead: bool,
}

fn args() -> Args {
    let mut args = Args {
        rounds: 5,
        workers: vec![1, 2, 4],
        threads: 2,
        tasks: 20_000,
        jobpool_tasks: None,
        cap: 1000,
        latency_jobs: 200,
        sleep_tasks: 400,
        sleep_ms: 10,
        raw_batch: 100,
        throughput: true,
        latency: true,
        overhead: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |flag: &str| positive(it.next(), flag);
        match arg.as_str() {
            "--rounds" => args.rounds = number("--rounds"),
            "--threads" => args.threads = number("--threads"),
            "--tasks" => args.tasks = number("--tasks"),
            "--jobpool-tasks" => args.jobpool_tasks = Some(number("--jobpool-tasks")),
            "--cap" => args.cap = number("--cap"),
            "--latency-jobs" => args.latency_jobs = number("--latency-jobs"),
            "--sleep-tasks" => args.sleep_tasks = number("--sleep-tasks"),
            "--sleep-ms" => args.sleep_ms = number("--sleep-ms") as u64,
            "--raw-batch" => args.raw_batch = number("--raw-batch"),
            "--workers" => {
                let list = it.next().expect("--workers takes a list such as 1,2,4");
                args.workers = list
                    .split(',')
                    .map(|n| n.parse().ok().filter(|&n| n > 0))
                    .collect::<Option<_>>()
                    .expect("--workers takes a list of positive numbers");
            }
            "--only" => {
                let parts = it.next().expect("--only takes throughput,latency,overhead");
                (args.throughput, args.latency, args.overhead) = (false, false, false);
                for part in parts.split(',') {
                    match part {
                        "throughput" => args.throughput = true,
                        "latency" => args.latency = true,
                        "overhead" => args.overhead = true,
                        other => panic!("--only: unknown part {other:?}"),
                    }
                }
            }
            other => panic!(
                "unknown argument {other:?}; try --rounds N, --workers 1,2,4, --threads T, \
                 --tasks N, --jobpool-tasks N, --cap K, --latency-jobs N, --sleep-tasks N, \
                 --sleep-ms MS, --raw-batch B, --only throughput,latency,overhead"
            ),
        }
    }
    args
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let child = match argv.get(1).map(String::as_str) {
        Some("worker") => Some(children::jobpool_worker(&argv[2..])),
        Some("raw-worker") => Some(children::raw_worker(&argv[2..])),
        _ => None,
    };
    if let Some(result) = child {
        if let Err(err) = result {
            eprintln!("cluster {}: {err}", argv[1]);
            std::process::exit(1);
        }
        return;
    }
    let args = args();
    let started = Instant::now();
    let server = NatsServer::start();
    let url = server.url();
    // What a sleep of `--sleep-ms` lasts here.
    let t = Instant::now();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(args.sleep_ms));
    }
    let sleep = t.elapsed() / 20;
    println!(
        "cluster: {} round(s), {:?} worker processes x {} threads, {} cores, load average {}; \
         {} on {url}; a {} ms sleep lasts {:.3} ms",
        args.rounds,
        args.workers,
        args.threads,
        num_cpus::get(),
        load_average(),
        NatsServer::version(),
        args.sleep_ms,
        sleep.as_secs_f64() * 1e3
    );
    let types = task_types();
    let submitter = Submitter::connect(&Broker::new(url.clone())).expect("the submitter");
    let mut raw = Raw::setup(&url, args.cap);
    let mut rows = Vec::new();
    for &workers in &args.workers {
        let phase = Phase {
            args: &args,
            workers,
            url: &url,
            types: &types,
            submitter: &submitter,
            sleep,
        };
        rows.push((workers, phase.run(&mut raw)));
    }
    print_table(&args, &rows);
    println!(
        "\nwhole run {:.1?}; load average now {}",
        started.elapsed(),
        load_average()
    );
}

/// One worker count's rounds.
struct Phase<'a> {
    args: &'a Args,
    workers: usize,
    url: &'a str,
    types: &'a Types,
    submitter: &'a Submitter,
    /// What one sleeping task's sleep lasts.
    sleep: Duration,
}

/// A phase's figures, one entry per round.
#[derive(Default)]
struct Figures {
    jobpool_tasks: usize,
    jp_rate: Vec<f64>,
    jp_submit_ms: Vec<f64>,
    raw_rate: Vec<f64>,
    rate_ratio: Vec<f64>,
    jp_lat: Vec<f64>,
    jp_lat_p99: Vec<f64>,
    jp_lat_submit: Vec<f64>,
    raw_lat: Vec<f64>,
    raw_lat_p99: Vec<f64>,
    lat_ratio: Vec<f64>,
    cluster_s: Vec<f64>,
    local_s: Vec<f64>,
    overhead: Vec<f64>,
    ideal_s: f64,
}

/// One round of one contender.
#[derive(Default)]
struct Round {
    rate: Option<f64>,
    submit_ms: Option<f64>,
    latencies: Option<Vec<f64>>,
    latency_submit: Option<f64>,
    sleep_s: Option<f64>,
    note: String,
}

impl Phase<'_> {
    fn threads(&self) -> usize {
        self.workers * self.args.threads
    }

    fn jobpool_args(&self) -> Vec<String> {
        let threads = self.args.threads.to_string();
        ["worker", "--url", self.url, "--threads", &threads]
            .map(str::to_owned)
            .to_vec()
    }

    fn run(&self, raw: &mut Raw) -> Figures {
        let args = self.args;
        let mut figures = Figures {
            ideal_s: args.sleep_tasks as f64 * self.sleep.as_secs_f64() / self.threads() as f64,
            ..Figures::default()
        };
        println!(
            "\n== {} worker process(es) x {} threads = {} threads",
            self.workers,
            args.threads,
            self.threads()
        );
        if args.throughput {
            figures.jobpool_tasks = match args.jobpool_tasks {
                Some(n) => n,
                None => {
                    let procs = Workers::start(self.workers, &self.jobpool_args());
                    warm_up(self.submitter, self.types, &procs.pids, args.threads);
                    let t = run_job(self.submitter, &self.types.empty, 0, PILOT_TASKS, args.cap);
                    let rate = PILOT_TASKS as f64 / t.elapsed.as_secs_f64();
                    let n = (rate * THROUGHPUT_JOB.as_secs_f64() / 100.0).round() as usize * 100;
                    let n = n.clamp(PILOT_TASKS, args.tasks.min(SUBMIT_LIMIT));
                    println!(
                        "  pilot job: {PILOT_TASKS} empty tasks at {rate:.0} tasks/s: jobpool's \
                         throughput jobs get {n} tasks"
                    );
                    n
                }
            };
        }
        let pool = Pool::new(self.threads());
        for round in 0..args.rounds {
            let mut line = Vec::new();
            let (mut jp, mut rw, mut local) = (Round::default(), Round::default(), None);
            for contender in 0..3 {
                match (round + contender) % 3 {
                    0 => jp = self.jobpool_round(figures.jobpool_tasks),
                    1 => rw = self.raw_round(raw),
                    _ if args.overhead => {
                        let cap = self.threads();
                        let d = local_sleep_job(&pool, args.sleep_tasks, args.sleep_ms, cap);
                        local = Some(d.as_secs_f64());
                    }
                    _ => {}
                }
            }
            if let (Some(j), Some(r)) = (jp.rate, rw.rate) {
                figures.jp_rate.push(j);
                figures.jp_submit_ms.extend(jp.submit_ms);
                figures.raw_rate.push(r);
                figures.rate_ratio.push(j / r);
                line.push(format!(
                    "throughput {j:.0} / {r:.0} per s ({}{})",
                    jp.note, rw.note
                ));
            }
            if let (Some(mut j), Some(mut r)) = (jp.latencies, rw.latencies) {
                let (jm, rm) = (median(&j), median(&r));
                figures.jp_lat.push(jm);
                figures.jp_lat_p99.push(p99(&mut j));
                figures.jp_lat_submit.extend(jp.latency_submit);
                figures.raw_lat.push(rm);
                figures.raw_lat_p99.push(p99(&mut r));
                figures.lat_ratio.push(jm / rm);
                line.push(format!("latency {jm:.2} / {rm:.3} ms"));
            }
            if let (Some(c), Some(l)) = (jp.sleep_s, local) {
                figures.cluster_s.push(c);
                figures.local_s.push(l);
                figures.overhead.push(c / l);
                line.push(format!("{} ms tasks {c:.3} / {l:.3} s", args.sleep_ms));
            }
            println!(
                "  round {}: jobpool / baseline: {}",
                round + 1,
                line.join("; ")
            );
        }
        figures.print(args, self);
        figures
    }

    /// W jobpool workers: the throughput job, the latency jobs, the sleeping job.
    fn jobpool_round(&self, tasks: usize) -> Round {
        let args = self.args;
        let types = self.types;
        let procs = Workers::start(self.workers, &self.jobpool_args());
        let warm = warm_up(self.submitter, types, &procs.pids, args.threads);
        let mut round = Round::default();
        if args.throughput {
            let t = run_job(self.submitter, &types.empty, 0, tasks, args.cap);
            round.rate = Some(tasks as f64 / t.elapsed.as_secs_f64());
            round.submit_ms = Some(t.submit.as_secs_f64() * 1e3);
            round.note = format!(
                "jobpool: {} of {} processes ran tasks, {warm} warm-up job(s); ",
                t.pids.len(),
                self.workers
            );
        }
        if args.latency {
            let mut submit = Vec::new();
            let times = (0..args.latency_jobs)
                .map(|_| {
                    let t = run_job(self.submitter, &types.empty, 0, 1, 1);
                    submit.push(t.submit.as_secs_f64() * 1e3);
                    t.elapsed.as_secs_f64() * 1e3
                })
                .collect();
            round.latencies = Some(times);
            round.latency_submit = Some(median(&submit));
        }
        if args.overhead {
            let (ms, n, cap) = (args.sleep_ms, args.sleep_tasks, self.threads());
            let t = run_job(self.submitter, &types.sleep_ms, ms, n, cap);
            round.sleep_s = Some(t.elapsed.as_secs_f64());
        }
        round
    }

    /// W raw workers: the throughput run and the round trips.
    fn raw_round(&self, raw: &mut Raw) -> Round {
        let args = self.args;
        let mut round = Round::default();
        if !args.throughput && !args.latency {
            return round;
        }
        let batch = args.raw_batch.to_string();
        let procs = Workers::start(
            self.workers,
            &["raw-worker", "--url", self.url, "--batch", &batch].map(str::to_owned),
        );
        // Until every process has answered a message (at most 10 tries).
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10 {
            seen.extend(raw.throughput(50 * self.workers).pids);
            if procs.pids.iter().all(|pid| seen.contains(pid)) {
                break;
            }
        }
        if args.throughput {
            let t = raw.throughput(args.tasks);
            round.rate = Some(args.tasks as f64 / t.elapsed.as_secs_f64());
            round.note = format!(
                "raw: {} of {} processes answered",
                t.pids.len(),
                self.workers
            );
        }
        if args.latency {
            let times = raw.latency(args.latency_jobs);
            round.latencies = Some(times.iter().map(|d| d.as_secs_f64() * 1e3).collect());
        }
        round
    }
}
