//! Probe groups of simulated HTTP endpoints, each group with its own concurrency cap, on one
//! shared pool of 8 threads.
//!
//! Each probe is a task that "sends a request" (sleeps a few milliseconds, as a network round
//! trip would) and returns the status it got. A fragile legacy service is probed one request at
//! a time (k = 1), a rate-limited partner API two at a time, and our own sturdy edge servers
//! eight at a time, all at once on the same threads. For each group the example prints its cap,
//! the peak concurrency the probes observed, and how long the group took.
//!
//! ```text
//! cargo run --release --example endpoints
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use jobpool::Pool;

/// One endpoint group: a name, how many endpoints it has, its cap, and its round-trip time.
struct Group {
    name: &'static str,
    endpoints: usize,
    cap: usize,
    round_trip: Duration,
}

/// What a probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Up,
    Down,
}

/// Counts the probes of one group in flight, and the most ever in flight at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A simulated request: one endpoint in seven is down.
fn probe(group: &str, endpoint: usize, round_trip: Duration) -> Status {
    thread::sleep(round_trip);
    let hash = group
        .bytes()
        .fold(endpoint, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    if hash % 7 == 0 {
        Status::Down
    } else {
        Status::Up
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let groups = [
        Group {
            name: "legacy-billing (hit gently)",
            endpoints: 12,
            cap: 1,
            round_trip: Duration::from_millis(5),
        },
        Group {
            name: "partner-api (rate limited)",
            endpoints: 24,
            cap: 2,
            round_trip: Duration::from_millis(5),
        },
        Group {
            name: "edge-servers",
            endpoints: 96,
            cap: 8,
            round_trip: Duration::from_millis(3),
        },
        Group {
            name: "internal-metrics",
            endpoints: 40,
            cap: 4,
            round_trip: Duration::from_millis(2),
        },
    ];
    let pool = Pool::new(8);
    println!(
        "probing {} groups on a pool of {} threads\n",
        groups.len(),
        pool.threads()
    );

    let started = Instant::now();
    let jobs: Vec<_> = groups
        .iter()
        .map(|group| {
            let in_flight = Arc::new(InFlight::default());
            let probes = (0..group.endpoints).map(|endpoint| {
                let in_flight = in_flight.clone();
                let (name, round_trip) = (group.name, group.round_trip);
                move || {
                    in_flight.enter();
                    let status = probe(name, endpoint, round_trip);
                    in_flight.leave();
                    (status, started.elapsed())
                }
            });
            let job = pool.submit(probes, group.cap);
            (group, in_flight, job)
        })
        .collect();

    println!(
        "{:<30} {:>5} {:>5} {:>9} {:>6} {:>10} {:>12}",
        "group", "n", "cap", "peak seen", "down", "time", "serial time"
    );
    for (group, in_flight, job) in jobs {
        let results = job.wait()?;
        let finished = results.iter().map(|(_, at)| *at).max().unwrap_or_default();
        let down = results
            .iter()
            .filter(|(status, _)| *status == Status::Down)
            .count();
        let peak = in_flight.peak.load(Ordering::SeqCst);
        assert!(
            peak <= group.cap,
            "{}: {peak} probes in flight, cap {}",
            group.name,
            group.cap
        );
        println!(
            "{:<30} {:>5} {:>5} {:>9} {:>6} {:>8.1}ms {:>10.1}ms",
            group.name,
            group.endpoints,
            group.cap,
            peak,
            down,
            finished.as_secs_f64() * 1e3,
            (group.round_trip * group.endpoints as u32).as_secs_f64() * 1e3,
        );
    }
    println!(
        "\nall groups done in {:.1} ms; no group ever exceeded its cap",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
