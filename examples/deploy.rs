//! A deployment the way an old task runner did it, one module after another, now as a graph:
//! each module starts the moment the modules it needs are up, with its own cap.
//!
//! ```text
//! registry   database   cache
//!               |   \    /
//!        migrations  api
//!                     |
//!                    web
//! ```
//!
//! Run with `cargo run --example deploy`. The "work" is sleeping, to stand for waiting on
//! remote machines.

use std::thread::sleep;
use std::time::{Duration, Instant};

use jobpool::{Context, Dag, Event, Pool, RunOptions, TaskResult};

/// One step of a deployment: `hosts` hosts to set up, `step_ms` each, `cap` at a time.
struct Step {
    name: &'static str,
    cap: usize,
    hosts: usize,
    step_ms: u64,
    after: &'static [&'static str],
}

const STEPS: &[Step] = &[
    Step {
        name: "registry",
        cap: 2,
        hosts: 4,
        step_ms: 40,
        after: &[],
    },
    Step {
        name: "database",
        cap: 1,
        hosts: 3,
        step_ms: 50,
        after: &[],
    },
    Step {
        name: "cache",
        cap: 3,
        hosts: 6,
        step_ms: 30,
        after: &[],
    },
    Step {
        name: "api",
        cap: 4,
        hosts: 8,
        step_ms: 40,
        after: &["database", "cache"],
    },
    Step {
        name: "web",
        cap: 4,
        hosts: 8,
        step_ms: 30,
        after: &["api"],
    },
    Step {
        name: "migrations",
        cap: 1,
        hosts: 2,
        step_ms: 60,
        after: &["database"],
    },
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dag = Dag::new();
    for step in STEPS {
        let step_ms = step.step_ms;
        let hosts = (0..step.hosts).map(move |host| {
            move |ctx: &Context| -> TaskResult<String> {
                sleep(Duration::from_millis(step_ms));
                Ok(format!("{}-{host}", ctx.module()))
            }
        });
        dag.module(step.name, step.cap, hosts)?.after(step.after)?;
    }

    let pool = Pool::new(8);
    println!("schedule (ms from the start):");
    let options = RunOptions::new().on_event(|event: &Event<'_>| match event.state {
        None => println!("{:>7.1}  start  {}", ms(event.at), event.module),
        Some(state) => println!(
            "{:>7.1}  {:<6} {}",
            ms(event.at),
            state.label(),
            event.module
        ),
    });
    let started = Instant::now();
    let report = dag.run_with(&pool, options)?;
    let graph_time = started.elapsed();

    println!("\n{report}\n");
    // Run one after another, the modules would have taken the sum of their durations.
    let in_sequence: Duration = report.modules().iter().filter_map(|m| m.duration()).sum();
    println!(
        "in sequence: {:.0} ms; as a graph: {:.0} ms; saved {:.0} ms ({:.0}%)",
        ms(in_sequence),
        ms(graph_time),
        ms(in_sequence.saturating_sub(graph_time)),
        100.0 * (1.0 - graph_time.as_secs_f64() / in_sequence.as_secs_f64())
    );
    assert!(report.is_success());
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
