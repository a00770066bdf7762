//! Lowering a job's cap while its tasks are claimed in chunks never loses the job.
//!
//! The path that once did (README.md of the scheduler, "Why rule 1 once had a hole"): the job's
//! last queue entry is popped while every one of its tasks is claimed, so it is dropped as dead;
//! then the cap is lowered, a worker hands unstarted claimed tasks back, and the last token
//! comes back with tasks pending. The job must be queued again then.

mod pool_common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use jobpool::Pool;
use pool_common::{within_hang_limit, Gate};

/// The pool's time slice: the worker in the job yields to a less served job only after it.
const SLICE: Duration = Duration::from_millis(20);

fn run_for(length: Duration) {
    let start = Instant::now();
    while start.elapsed() < length {
        std::hint::spin_loop();
    }
}

/// A task that says it started, then waits at its gate, then runs for `length`.
fn blocking(
    started: &mpsc::Sender<&'static str>,
    name: &'static str,
    gate: &std::sync::Arc<Gate>,
    length: Duration,
) -> Box<dyn FnOnce() + Send> {
    let (started, gate) = (started.clone(), gate.clone());
    Box::new(move || {
        started.send(name).unwrap();
        gate.pass();
        run_for(length);
    })
}

/// One run of the set-up; returns whether job J finished.
fn lower_the_cap_while_every_task_is_claimed() -> bool {
    let pool = Pool::builder()
        .threads(2)
        .time_slice(SLICE)
        .build()
        .unwrap();
    let (started_tx, started) = mpsc::channel();
    let (gate_b, gate_t0, gate_t4, gate_c) = (Gate::new(), Gate::new(), Gate::new(), Gate::new());
    let _open = [
        gate_b.opener(),
        gate_t0.opener(),
        gate_t4.opener(),
        gate_c.opener(),
    ];

    // B holds one of the two workers.
    let b = pool.submit(vec![blocking(&started_tx, "b", &gate_b, Duration::ZERO)], 1);
    assert_eq!(started.recv().unwrap(), "b");

    // J, cap 1: t0 and t4 wait at their gates; the others return at once. t0 runs long enough
    // for the chunk after it to start small, so that the chunks that follow claim the rest.
    let mut tasks: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    for i in 0..8 {
        tasks.push(match i {
            0 => blocking(&started_tx, "t0", &gate_t0, Duration::from_millis(1)),
            // Runs past the time slice, so the worker yields at the end of its chunk.
            4 => blocking(
                &started_tx,
                "t4",
                &gate_t4,
                SLICE + Duration::from_millis(5),
            ),
            _ => Box::new(|| ()),
        });
    }
    let j = pool.submit(tasks, 1);
    assert_eq!(started.recv().unwrap(), "t0");
    j.set_cap(2).unwrap(); // J gets a queue entry
    gate_t0.open(1);
    assert_eq!(started.recv().unwrap(), "t4");

    // The freed worker pops J's entry (every task of J may be claimed now), then a marker job
    // queued behind it, so the entry has been dealt with once the marker is done.
    gate_b.open(1);
    b.wait().unwrap();
    pool.submit(vec![|| ()], 1).wait().unwrap();

    j.set_cap(1).unwrap();
    // C: one task that waits at its gate, and one that says it started. C's entry makes J's
    // worker yield at the end of its chunk, and then that worker runs C's second task.
    let c1_started = started_tx.clone();
    let c = pool.submit(
        vec![
            blocking(&started_tx, "c0", &gate_c, Duration::ZERO),
            Box::new(move || c1_started.send("c1").unwrap()) as Box<dyn FnOnce() + Send>,
        ],
        2,
    );
    assert_eq!(started.recv().unwrap(), "c0");
    gate_t4.open(1);
    assert_eq!(started.recv().unwrap(), "c1");
    gate_c.open(1);
    c.wait().unwrap();

    let finished = j.wait_timeout(Duration::from_secs(5)).is_ok();
    if !finished {
        eprintln!("lost: {:?}", j.progress());
        j.cancel(); // a lost job ends only by cancel; the pool can shut down then
    }
    finished
}

#[test]
fn lowering_the_cap_after_the_last_entry_was_dropped_does_not_lose_the_job() {
    for round in 0..5 {
        let finished =
            within_hang_limit(lower_the_cap_while_every_task_is_claimed).expect("the set-up hung");
        assert!(finished, "round {round}: job J was lost");
    }
}
