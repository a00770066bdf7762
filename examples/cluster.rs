//! The endpoints workload across worker processes, on a NATS JetStream server (feature
//! `cluster`): one binary, two sub-commands.
//!
//! ```text
//! nats-server -js -a 127.0.0.1 -p 4222 -sd /tmp/jobpool-nats &      # the broker
//! cargo build --release --example cluster --features cluster
//! for i in 1 2 3; do target/release/examples/cluster worker & done  # three workers
//! target/release/examples/cluster submit                            # the job, k = 6
//! ```
//!
//! `worker [--threads N] [--url URL]` runs a worker of N threads (4) until SIGTERM or Ctrl-C,
//! then finishes the tasks it holds. `submit [--tasks N] [--cap K] [--url URL]` submits a job of
//! N probes (200) of simulated endpoints, each a call of 20-80 ms, at most K (6) at once across
//! all the workers; it prints its progress, then which worker process served how many probes
//! and the most probes that ran at once. Kill a worker with `kill -9` while the job runs: its
//! probes are delivered again to the others after the ack wait (2 s here), and the job
//! completes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobpool::cluster::{Broker, Submitter, TaskType, TaskTypes, Worker};
use serde::{Deserialize, Serialize};

/// One probe: an endpoint, and how long it takes to answer.
#[derive(Serialize, Deserialize)]
struct Probe {
    endpoint: String,
    latency_ms: u64,
}

/// What a probe found, and who ran it, when.
#[derive(Serialize, Deserialize)]
struct Answer {
    status: u16,
    worker_pid: u32,
    start_ns: u128,
    end_ns: u128,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The task types, the same in the workers and the submitter.
fn task_types() -> (TaskTypes, TaskType<Probe, Answer>) {
    let mut types = TaskTypes::new();
    let probe = types.register("probe", |probe: Probe| {
        let start_ns = now_ns();
        std::thread::sleep(Duration::from_millis(probe.latency_ms)); // the network round trip
        let status = if probe.endpoint.contains("service-7.") {
            503
        } else {
            200
        };
        Ok(Answer {
            status,
            worker_pid: std::process::id(),
            start_ns,
            end_ns: now_ns(),
        })
    });
    (types, probe)
}

/// The value of `--name`, if given.
fn option(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = option(&args, "--url").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let broker = Broker::new(url).ack_wait(Duration::from_secs(2));
    let (types, probe) = task_types();
    match args.first().map(String::as_str) {
        Some("worker") => {
            let threads = option(&args, "--threads").map_or(Ok(4), |t| t.parse())?;
            let worker = Worker::start(&broker, types, threads)?;
            println!("worker {} ready, {threads} threads", std::process::id());
            let ran = worker.run_until_signal()?;
            println!("worker {} stopped after {ran} probes", std::process::id());
        }
        Some("submit") => {
            let tasks: u64 = option(&args, "--tasks").map_or(Ok(200), |t| t.parse())?;
            let cap: usize = option(&args, "--cap").map_or(Ok(6), |t| t.parse())?;
            let submitter = Submitter::connect(&broker)?;
            let probes = (0..tasks).map(|i| Probe {
                endpoint: format!("https://service-{}.example/health", i % 10),
                latency_ms: 20 + (i * 37) % 61,
            });
            let started = Instant::now();
            let job = submitter.submit(&probe, probes, cap)?;
            println!(
                "job {} submitted: {tasks} probes, at most {cap} at once",
                job.id()
            );
            loop {
                let (done, all) = job.progress()?;
                println!("  {done:>4} / {all} done after {:.1?}", started.elapsed());
                if done == all {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            let answers: Vec<Answer> = job.wait()?.into_iter().collect::<Result<_, _>>()?;
            let mut by_worker: BTreeMap<u32, usize> = BTreeMap::new();
            for answer in &answers {
                *by_worker.entry(answer.worker_pid).or_default() += 1;
            }
            let mut edges: Vec<(u128, i32)> = answers
                .iter()
                .flat_map(|a| [(a.start_ns, 1), (a.end_ns, -1)])
                .collect();
            edges.sort_unstable_by_key(|&(at, delta)| (at, delta));
            let (mut running, mut peak) = (0, 0);
            for (_, delta) in edges {
                running += delta;
                peak = peak.max(running);
            }
            let unhealthy = answers.iter().filter(|a| a.status != 200).count();
            println!(
                "done in {:.1?}: {unhealthy} unhealthy endpoints; probes per worker process: \
                 {by_worker:?}; at most {peak} at once (cap {cap})",
                started.elapsed()
            );
        }
        _ => {
            eprintln!("usage: cluster worker [--threads N] [--url URL]");
            eprintln!("       cluster submit [--tasks N] [--cap K] [--url URL]");
            std::process::exit(2);
        }
    }
    Ok(())
}
