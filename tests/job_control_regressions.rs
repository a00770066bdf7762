//! Job control's edge cases, each once a bug: a graph driven from the only worker fires its
//! timers; a waiting task runs a held sub-job on its lent slot; a completion callback lends no
//! slot it gave back; finished jobs are freed from limiters' lists and from timers.

mod pool_common;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use jobpool::{Context, Dag, Limiter, Pool, Rate, Retry, TaskResult};
use pool_common::{Gate, Latch};

#[test]
fn a_graph_run_from_the_only_worker_fires_its_retry_timers() {
    let pool = Pool::new(1);
    let calls = Arc::new(AtomicU32::new(0));
    let (c, p) = (calls.clone(), pool.clone());
    let job = pool.submit(
        vec![move || {
            let mut dag = Dag::new();
            let c = c.clone();
            let delay = Duration::from_millis(2);
            dag.module(
                "flaky",
                1,
                [move |_: &Context| -> TaskResult<u32> {
                    if c.fetch_add(1, SeqCst) == 0 {
                        Err("once".into())
                    } else {
                        Ok(1)
                    }
                }],
            )
            .unwrap()
            .retry(Retry::attempts(2).backoff(delay, 1.0, delay).jitter(0.0));
            dag.run(&p).unwrap().is_success()
        }],
        1,
    );
    assert_eq!(job.wait().unwrap(), vec![true]);
    assert_eq!(calls.load(SeqCst), 2);
}

#[test]
fn a_waiting_task_runs_a_held_sub_job_on_its_lent_slot() {
    // Two workers, a shared cap of 1 held by A's task. The other worker pops the sub-job B,
    // finds the cap full and holds B; A's task then waits on B and runs it on its own slot.
    let pool = Pool::new(2);
    let limiter = Limiter::new().with_cap(1);
    let (p, l) = (pool.clone(), limiter.clone());
    let a = pool.job().limit(&limiter).submit(vec![move || {
        let b = p.job().limit(&l).submit((0..4).map(|i| move || i));
        while !b.progress().held {
            std::thread::yield_now();
        }
        b.wait().unwrap().len()
    }]);
    assert_eq!(a.wait().unwrap(), vec![4]);
    assert_eq!(limiter.peak_running(), 1);
}

#[test]
fn a_completion_callback_lends_no_slot_it_gave_back() {
    // J's slot goes back to the limiter (cap 1) and M takes it; J's callback, still on J's
    // worker, submits K under the same limiter and polls it. K must be held behind M, not run
    // on a slot J no longer has.
    let pool = Pool::new(2);
    let limiter = Limiter::new().with_cap(1);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let measured = |running: &Arc<AtomicUsize>, peak: &Arc<AtomicUsize>| {
        let (running, peak) = (running.clone(), peak.clone());
        move || {
            peak.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
            running.fetch_sub(1, SeqCst);
        }
    };
    let (j_gate, m_gate) = (Gate::new(), Gate::new());
    let (j_started, m_started) = (Latch::new(1), Latch::new(1));
    let j = {
        let (g, s, task) = (j_gate.clone(), j_started.clone(), measured(&running, &peak));
        pool.job()
            .limit(&limiter)
            .submit(vec![move || running_inside(&s, &g, task)])
    };
    // J holds the limiter's one slot before M comes: with both submitted at once, M could
    // take it first, and J, held behind M, would never run the callback that lets M end.
    j_started.wait();
    let m = {
        let (g, s, task) = (m_gate.clone(), m_started.clone(), measured(&running, &peak));
        pool.job()
            .limit(&limiter)
            .submit(vec![move || running_inside(&s, &g, task)])
    };
    let (done, done_rx) = std::sync::mpsc::channel();
    {
        let (p, l, s, g) = (
            pool.clone(),
            limiter.clone(),
            m_started.clone(),
            m_gate.clone(),
        );
        let task = measured(&running, &peak);
        j.on_finish(move |_| {
            s.wait(); // M holds the limiter's one slot, its task waiting at its gate
            let k = p.job().limit(&l).submit(vec![task]);
            let ran_at_once = k.wait_timeout(Duration::ZERO).is_ok();
            g.open_all();
            k.wait().unwrap();
            done.send(ran_at_once).unwrap();
        });
    }
    j_gate.open_all();
    assert!(
        !done_rx.recv().unwrap(),
        "K ran on a slot the callback's job gave back"
    );
    m.wait().unwrap();
    assert_eq!(peak.load(SeqCst), 1);
}

/// Counts down `started`, waits at `gate`, then runs `task`.
fn running_inside(started: &Latch, gate: &Gate, task: impl FnOnce()) {
    started.count_down();
    gate.pass();
    task();
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_job_cancelled_while_waiting_for_a_start_slot_is_freed() {
    let drops = Arc::new(AtomicUsize::new(0));
    let pool = Pool::new(1);
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let d = drops.clone();
            move || Counted(d)
        })
        .collect();
    let job = pool
        .job()
        .rate(Rate::new(1, Duration::from_secs(3600)))
        .submit(tasks);
    while !job.progress().held {
        std::thread::yield_now();
    }
    job.cancel();
    drop(job); // detached: the first task's result stays in the job
    pool.shutdown();
    drop(pool);
    assert_eq!(
        drops.load(SeqCst),
        1,
        "the job was kept alive by its limiter or timer"
    );
}

#[test]
fn a_finished_job_with_a_distant_deadline_is_freed_at_shutdown() {
    let drops = Arc::new(AtomicUsize::new(0));
    let pool = Pool::new(1);
    let d = drops.clone();
    let job = pool
        .job()
        .timeout(Duration::from_secs(3600))
        .submit(vec![move || Counted(d)]);
    while !job.is_finished() {
        std::thread::yield_now();
    }
    drop(job);
    pool.shutdown();
    drop(pool);
    assert_eq!(
        drops.load(SeqCst),
        1,
        "the job was kept alive by its deadline's timer"
    );
}

#[test]
fn polling_a_retrying_sub_job_with_a_zero_timeout_on_one_thread_gets_it_done() {
    let pool = Pool::new(1);
    let inner = pool.clone();
    let outer = pool.submit(
        vec![move || {
            let delay = Duration::from_micros(200);
            let sub = inner
                .job()
                .retry(Retry::attempts(2).backoff(delay, 1.0, delay).jitter(0.0))
                .submit_fallible(vec![|cx: &jobpool::TaskContext| -> Result<u32, String> {
                    if cx.attempt() == 1 {
                        Err("once".into())
                    } else {
                        Ok(cx.attempt())
                    }
                }]);
            while sub.wait_timeout(Duration::ZERO).is_err() {}
            sub.wait().unwrap()[0]
        }],
        1,
    );
    assert_eq!(outer.wait().unwrap(), vec![2]);
}
