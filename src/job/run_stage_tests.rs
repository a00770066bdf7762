//! The run queue's order between the modules of dependency-graph runs (scheduler README, rule
//! 10): a run that has started goes before a newer run's first stage, from its first token on.
//!
//! Both workers are held by a blocker job while the jobs are queued, then let go one at a time,
//! so which job each one takes next is the run queue's choice alone.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Pool;

/// Long enough never to pass on a slow machine; only there to fail instead of hanging.
const HANG: Duration = Duration::from_secs(30);

/// A gate a task waits at until the test opens it.
struct Gate(Sender<()>, Arc<Mutex<Receiver<()>>>);

impl Gate {
    fn new() -> Self {
        let (open, wait) = channel();
        Gate(open, Arc::new(Mutex::new(wait)))
    }

    fn open(&self) {
        self.0.send(()).unwrap();
    }

    /// What a task calls to wait at the gate.
    fn waiter(&self) -> impl Fn() + Send + Sync + 'static {
        let wait = self.1.clone();
        move || {
            wait.lock()
                .unwrap()
                .recv_timeout(HANG)
                .expect("the gate opens");
        }
    }
}

/// Holds both workers of a 2-thread pool until each gate is opened.
struct Blocked {
    pool: Pool,
    gates: [Gate; 2],
    _blockers: crate::JobHandle<()>,
}

fn blocked_pool() -> Blocked {
    let pool = Pool::new(2);
    let gates = [Gate::new(), Gate::new()];
    let (started, running) = channel();
    let tasks = gates.iter().map(|gate| {
        let (started, wait) = (started.clone(), gate.waiter());
        move || {
            started.send(()).unwrap();
            wait();
        }
    });
    let blockers = pool.submit(tasks.collect::<Vec<_>>(), 2);
    for _ in 0..2 {
        running
            .recv_timeout(HANG)
            .expect("both workers run a blocker");
    }
    Blocked {
        pool,
        gates,
        _blockers: blockers,
    }
}

/// Tasks that log `name` and their index as they start; task 0 waits at `gate` if given.
fn logged(
    name: &'static str,
    n: usize,
    log: &Sender<(&'static str, usize)>,
    gate: Option<&Gate>,
) -> Vec<impl FnOnce() + Send + 'static> {
    (0..n)
        .map(|i| {
            let log = log.clone();
            let wait = gate.filter(|_| i == 0).map(Gate::waiter);
            move || {
                log.send((name, i)).unwrap();
                if let Some(wait) = wait {
                    wait();
                }
            }
        })
        .collect()
}

#[test]
fn a_first_stage_that_started_goes_before_a_newer_runs_first_stage() {
    let Blocked { pool, gates, .. } = blocked_pool();
    let (log, seen) = channel();
    let hold = Gate::new();
    let older =
        pool.job()
            .cap(2)
            .run_stage((1, true))
            .submit(logged("older", 2, &log, Some(&hold)));
    let newer = pool
        .job()
        .cap(2)
        .run_stage((2, true))
        .submit(logged("newer", 2, &log, None));

    // The first free worker takes the oldest queued job, and stays in its task 0.
    gates[0].open();
    assert_eq!(seen.recv_timeout(HANG).unwrap(), ("older", 0));
    // The older run has started: the next free worker runs its other task, not the newer run.
    gates[1].open();
    assert_eq!(seen.recv_timeout(HANG).unwrap(), ("older", 1));

    hold.open();
    older.wait().unwrap();
    newer.wait().unwrap();
}

#[test]
fn a_later_stage_goes_before_a_newer_runs_first_stage_queued_before_it() {
    let Blocked { pool, gates, .. } = blocked_pool();
    let (log, seen) = channel();
    let newer = pool
        .job()
        .run_stage((2, true))
        .submit(logged("newer", 1, &log, None));
    let later_stage =
        pool.job()
            .run_stage((1, false))
            .submit(logged("older, later stage", 1, &log, None));

    gates[0].open();
    assert_eq!(seen.recv_timeout(HANG).unwrap(), ("older, later stage", 0));
    gates[1].open();
    assert_eq!(seen.recv_timeout(HANG).unwrap(), ("newer", 0));
    later_stage.wait().unwrap();
    newer.wait().unwrap();
}
