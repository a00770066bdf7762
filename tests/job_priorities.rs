//! Priorities (a high job gets the next worker, within one task), aging (a low job progresses
//! under a stream of high work), and deadlines (tasks not started in time are timed out).

mod pool_common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobpool::{Pool, Priority, Retry, TaskContext, TaskError};
use pool_common::{hold_a_worker, Gate, Latch};

/// Submits an urgent job: three tasks at `Priority::High` that log "u0" to "u2".
fn submit_urgent(pool: &Pool, log: &Arc<Mutex<Vec<String>>>) -> jobpool::JobHandle<()> {
    let log = log.clone();
    pool.job()
        .priority(Priority::High)
        .submit((0..3).map(move |i| {
            let log = log.clone();
            move || log.lock().unwrap().push(format!("u{i}"))
        }))
}

#[test]
fn a_high_priority_job_gets_the_worker_after_one_task() {
    // One thread runs a bulk job; its first task waits at a gate until an urgent job is in.
    let pool = Pool::new(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (gate, started) = (Gate::new(), Latch::new(1));
    let bulk = {
        let (log, gate, started) = (log.clone(), gate.clone(), started.clone());
        pool.job().cap(1).submit((0..50).map(move |i| {
            let (log, gate, started) = (log.clone(), gate.clone(), started.clone());
            move || {
                if i == 0 {
                    started.count_down();
                    gate.pass();
                }
                log.lock().unwrap().push(format!("b{i}"));
            }
        }))
    };
    started.wait();
    let urgent = submit_urgent(&pool, &log);
    gate.open_all();
    urgent.wait().unwrap();
    bulk.wait().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log[..4], ["b0", "u0", "u1", "u2"], "{log:?}");
}

#[test]
fn a_high_priority_job_cuts_a_chunk_claimed_while_a_normal_job_waited() {
    // One thread and a time slice of an hour: the bulk job's worker does not give way to the
    // normal job queued behind it, and claims its next chunks while that job waits. b1 to b7
    // are instant, so b8 and b9 are claimed in one chunk (chunks grow 1, then up to 8; if the
    // machine slows a chunk down they are claimed apart, and the test passes all the same).
    // While b8 waits at its gate, an urgent job comes: it goes before the normal job, so it
    // asks the worker to look up from its chunk, and runs between b8 and b9.
    let pool = Pool::builder()
        .threads(1)
        .time_slice(Duration::from_secs(3600))
        .build()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let gate = Gate::new();
    let _open = gate.opener();
    let (first, eighth) = (Latch::new(1), Latch::new(1));
    let bulk = {
        let (log, gate) = (log.clone(), gate.clone());
        let (first, eighth) = (first.clone(), eighth.clone());
        pool.job().cap(1).submit((0..20).map(move |i| {
            let (log, gate) = (log.clone(), gate.clone());
            let (first, eighth) = (first.clone(), eighth.clone());
            move || {
                match i {
                    0 => first.count_down(),
                    8 => eighth.count_down(),
                    _ => {}
                }
                if i == 0 || i == 8 {
                    gate.pass();
                }
                log.lock().unwrap().push(format!("b{i}"));
            }
        }))
    };
    first.wait();
    let normal = {
        let log = log.clone();
        pool.submit(vec![move || log.lock().unwrap().push("n".to_string())], 1)
    };
    gate.open(1);
    eighth.wait();
    let urgent = submit_urgent(&pool, &log);
    gate.open_all();
    urgent.wait().unwrap();
    normal.wait().unwrap();
    bulk.wait().unwrap();
    let log = log.lock().unwrap();
    let b8 = log.iter().position(|entry| entry == "b8").unwrap();
    assert_eq!(log[b8 + 1..b8 + 4], ["u0", "u1", "u2"], "{log:?}");
}

#[test]
fn a_low_priority_job_progresses_under_a_stream_of_high_work() {
    // 200 high jobs of one 50 µs task each wait, and one low job of 5 tasks: aging gives the
    // low job a turn every 4 turns, so it ends long before the high stream does.
    let pool = Pool::builder().threads(1).aging(4).build().unwrap();
    let gate = Gate::new();
    let blocker = hold_a_worker(&pool, &gate);
    let spin = |d: Duration| {
        let start = Instant::now();
        while start.elapsed() < d {}
    };
    let order = Arc::new(Mutex::new(Vec::new()));
    let high: Vec<_> = (0..200)
        .map(|i| {
            let order = order.clone();
            pool.job().priority(Priority::High).submit(vec![move || {
                spin(Duration::from_micros(50));
                order.lock().unwrap().push(("high", i));
            }])
        })
        .collect();
    let low = {
        let order = order.clone();
        pool.job()
            .priority(Priority::Low)
            .submit((0..5).map(move |i| {
                let order = order.clone();
                move || {
                    spin(Duration::from_micros(50));
                    order.lock().unwrap().push(("low", i));
                }
            }))
    };
    assert!(pool.waited(Priority::Low).is_some());
    gate.open_all();
    blocker.wait().unwrap();
    low.wait().unwrap();
    for job in high {
        job.wait().unwrap();
    }
    let order = order.lock().unwrap();
    let last_low = order.iter().rposition(|(p, _)| *p == "low").unwrap();
    // At most 5 turns of the low job, each after at most 4 high ones (and one slice of up to
    // two of its 50 µs tasks): it is done within the first 5 * 5 + 5 entries.
    assert!(
        last_low < 30,
        "the low job ended at {last_low} of {}",
        order.len()
    );
}

#[test]
fn tasks_not_started_by_the_deadline_are_timed_out() {
    let pool = Pool::new(1);
    let (gate, started) = (Gate::new(), Latch::new(1));
    let (g, s) = (gate.clone(), started.clone());
    let deadline = Instant::now() + Duration::from_millis(50);
    let job = pool
        .job()
        .deadline(deadline)
        .submit_fallible((0..5).map(move |i| {
            let (g, s) = (g.clone(), s.clone());
            move |cx: &TaskContext| -> Result<bool, String> {
                if i == 0 {
                    s.count_down();
                    g.pass();
                }
                Ok(cx.deadline_passed())
            }
        }));
    started.wait();
    // Let the deadline pass while the first task runs: the other four never start.
    while Instant::now() < deadline + Duration::from_millis(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    gate.open_all();
    let err = job.wait().unwrap_err();
    assert!(err.deadline_passed());
    assert_eq!(err.timed_out().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    // The running task was not stopped, and saw the deadline pass.
    assert_eq!(err.into_results()[0], Ok(true));
}

#[test]
fn a_retry_due_after_the_deadline_is_timed_out() {
    let pool = Pool::new(1);
    let policy =
        Retry::attempts(3).backoff(Duration::from_secs(3600), 1.0, Duration::from_secs(3600));
    let job = pool
        .job()
        .timeout(Duration::from_millis(20))
        .retry(policy)
        .submit_fallible(vec![|_: &TaskContext| -> Result<(), String> {
            Err("busy".into())
        }]);
    let results = job.wait().unwrap_err().into_results();
    assert_eq!(results, vec![Err(TaskError::TimedOut)]);
}

#[test]
fn no_task_starts_after_the_deadline_even_before_its_timer_fires() {
    // The first task runs until just past the deadline; the worker claims the next task at
    // once, before any timer can have fired: it must see the deadline itself. (On a machine
    // too busy to start the first task before its deadline, that round proves nothing and is
    // not counted; most rounds must count.)
    let mut counted = 0;
    for _ in 0..20 {
        let pool = Pool::new(1);
        let deadline = Instant::now() + Duration::from_millis(10);
        let job = pool.job().deadline(deadline).submit((0..3).map(move |i| {
            move || {
                if i == 0 {
                    while Instant::now() < deadline {}
                }
                Instant::now()
            }
        }));
        let results = job.wait().unwrap_err().into_results();
        if results[0].is_err() {
            continue;
        }
        counted += 1;
        assert_eq!(
            results[1..],
            [Err(TaskError::TimedOut), Err(TaskError::TimedOut)]
        );
    }
    assert!(
        counted >= 10,
        "the first task started in time in {counted} of 20 rounds"
    );
}
