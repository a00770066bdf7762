//! The pool's events and statistics: every job's events come in order, every task attempt has
//! one start and one end on the same worker, a listener that never reads does not slow the pool
//! and loses only what it had no room for, and the statistics add up; and a property test of
//! random jobs (failures, panics, retries, cancels) holding the events and statistics against
//! what the tasks counted themselves.
//!
//! Threads line up on channels; no test sleeps to order events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;

use jobpool::{
    Context, Dag, EventKind, JobId, Pool, PoolEvent, Retry, TaskContext, TaskOutcome, TaskResult,
};

/// Long enough never to pass on a slow machine; only there to fail instead of hanging.
const HANG: Duration = Duration::from_secs(30);

/// The events of each job, in the order received.
fn by_job(events: &[PoolEvent]) -> HashMap<JobId, Vec<PoolEvent>> {
    let mut jobs: HashMap<JobId, Vec<PoolEvent>> = HashMap::new();
    for event in events {
        if let Some(job) = event.job {
            jobs.entry(job).or_default().push(event.clone());
        }
    }
    jobs
}

/// Checks the order of one job's events; returns its task ends as (index, attempt, outcome).
fn check_job(events: &[PoolEvent]) -> Vec<(usize, u32, TaskOutcome)> {
    assert!(
        matches!(events[0].kind, EventKind::JobSubmitted { .. }),
        "{events:#?}"
    );
    assert!(
        matches!(events.last().unwrap().kind, EventKind::JobFinished { .. }),
        "{events:#?}"
    );
    let started = events.iter().position(|e| e.kind == EventKind::JobStarted);
    let mut open: HashMap<(usize, u32), Option<usize>> = HashMap::new();
    let mut ends = Vec::new();
    for (at, event) in events.iter().enumerate() {
        match &event.kind {
            EventKind::TaskStarted { index, attempt } => {
                assert!(
                    started.is_some_and(|s| s < at),
                    "a task started before its job"
                );
                assert!(event.worker.is_some(), "tasks run on workers");
                let before = open.insert((*index, *attempt), event.worker);
                assert!(
                    before.is_none(),
                    "task {index} attempt {attempt} started twice"
                );
            }
            EventKind::TaskEnded {
                index,
                attempt,
                outcome,
            } => {
                if matches!(outcome, TaskOutcome::Cancelled | TaskOutcome::TimedOut) {
                    ends.push((*index, *attempt, *outcome));
                    continue;
                }
                let worker = open
                    .remove(&(*index, *attempt))
                    .unwrap_or_else(|| panic!("task {index} attempt {attempt} ended unstarted"));
                assert_eq!(
                    worker, event.worker,
                    "a task ends on the worker it started on"
                );
                ends.push((*index, *attempt, *outcome));
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "tasks started and never ended: {open:?}");
    ends.sort_by_key(|&(i, a, _)| (i, a));
    ends
}

#[test]
fn each_job_tells_its_submission_start_tasks_and_end_in_order() {
    let pool = Pool::new(2);
    let events = pool.events(100_000);
    let jobs: Vec<_> = (0..20)
        .map(|j| {
            pool.job()
                .name(format!("job-{j}"))
                .cap(1 + j % 3)
                .submit((0..50).map(|i| move || i))
        })
        .collect();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id()).collect();
    for job in jobs {
        job.wait().unwrap();
    }
    drop(pool);
    let events: Vec<PoolEvent> = events.iter().collect();
    let jobs = by_job(&events);
    for (j, id) in ids.iter().enumerate() {
        let job = &jobs[id];
        assert!(job
            .iter()
            .all(|e| e.name.as_deref() == Some(format!("job-{j}").as_str())));
        let ends = check_job(job);
        let expected: Vec<_> = (0..50).map(|i| (i, 1, TaskOutcome::Done)).collect();
        assert_eq!(ends, expected);
        assert_eq!(
            job.last().unwrap().kind,
            EventKind::JobFinished {
                done: 50,
                failed: 0,
                not_run: 0
            }
        );
    }
}

#[test]
fn retries_panics_and_failures_are_told_per_attempt() {
    let pool = Pool::new(1);
    let events = pool.events(1024);
    let retry = Retry::attempts(3)
        .backoff(Duration::from_millis(1), 1.0, Duration::from_millis(1))
        .jitter(0.0);
    let job = pool
        .job()
        .name("flaky")
        .retry(retry)
        .submit_fallible((0..3).map(|i| {
            move |cx: &TaskContext<'_>| -> Result<u32, std::io::Error> {
                match i {
                    // Succeeds on its second attempt.
                    0 if cx.attempt() < 2 => Err(std::io::Error::other("not yet")),
                    // Never succeeds.
                    1 => Err(std::io::Error::other("down")),
                    _ => Ok(i),
                }
            }
        }));
    let (id, panicky) = (job.id(), pool.submit(vec![|| panic!("boom")], 1));
    assert!(job.wait().is_err());
    let panicky_id = panicky.id();
    assert!(panicky.wait().is_err());
    drop(pool);
    let events: Vec<PoolEvent> = events.iter().collect();
    let jobs = by_job(&events);

    let ends = check_job(&jobs[&id]);
    let retrying = TaskOutcome::Retrying {
        after: Duration::from_millis(1),
    };
    assert_eq!(
        ends,
        vec![
            (0, 1, retrying),
            (0, 2, TaskOutcome::Done),
            (1, 1, retrying),
            (1, 2, retrying),
            (1, 3, TaskOutcome::Failed),
            (2, 1, TaskOutcome::Done),
        ]
    );
    assert_eq!(
        jobs[&id].last().unwrap().kind,
        EventKind::JobFinished {
            done: 2,
            failed: 1,
            not_run: 0
        }
    );
    let ends = check_job(&jobs[&panicky_id]);
    assert_eq!(ends, vec![(0, 1, TaskOutcome::Panicked)]);
}

#[test]
fn a_cancelled_job_counts_its_unstarted_tasks_at_its_end() {
    let pool = Pool::new(1);
    let events = pool.events(1024);
    let (started, running) = channel();
    let (release, gate) = channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let job = pool.submit(
        (0..5).map(|i| {
            let (started, gate) = (started.clone(), gate.clone());
            move || {
                started.send(i).unwrap();
                if i == 0 {
                    gate.lock().unwrap().recv_timeout(HANG).unwrap();
                }
            }
        }),
        1,
    );
    assert_eq!(running.recv_timeout(HANG).unwrap(), 0);
    job.cancel();
    release.send(()).unwrap();
    let id = job.id();
    assert!(job.wait().is_err());
    drop(pool);
    let events: Vec<PoolEvent> = events.iter().collect();
    let job_events = &by_job(&events)[&id];
    let ends = check_job(job_events);
    assert_eq!(ends, vec![(0, 1, TaskOutcome::Done)]);
    assert_eq!(
        job_events.last().unwrap().kind,
        EventKind::JobFinished {
            done: 1,
            failed: 0,
            not_run: 4
        }
    );
}

#[test]
fn a_listener_that_never_reads_loses_events_and_counts_each_one() {
    let pool = Pool::new(2);
    let stuck = pool.events(1);
    let (jobs, tasks) = (100, 100);
    for _ in 0..jobs {
        pool.submit((0..tasks).map(|_| || ()), 2).wait().unwrap();
    }
    drop(pool);
    // Per job: submitted, started, finished, and a start and an end per task.
    let told = jobs * (3 + 2 * tasks) as u64;
    assert_eq!(stuck.iter().count(), 1);
    assert_eq!(stuck.dropped(), told - 1);
}

#[test]
fn a_graphs_modules_are_told_and_their_jobs_named_after_them() {
    let pool = Pool::new(2);
    let events = pool.events(10_000);
    let mut dag = Dag::new();
    dag.module(
        "fetch",
        2,
        (0..4).map(|i| move |_: &Context| -> TaskResult<u32> { Ok(i) }),
    )
    .unwrap();
    dag.module(
        "sum",
        1,
        [|cx: &Context| -> TaskResult<u32> { Ok(cx.output::<u32>("fetch")?.iter().sum()) }],
    )
    .unwrap()
    .after(["fetch"])
    .unwrap();
    assert!(dag.run(&pool).unwrap().is_success());
    drop(pool);
    let events: Vec<PoolEvent> = events.iter().collect();
    let modules: Vec<(String, &EventKind)> = events
        .iter()
        .filter(|e| e.job.is_none())
        .map(|e| (e.name.as_deref().unwrap().to_owned(), &e.kind))
        .collect();
    let run = match modules[0].1 {
        EventKind::ModuleStarted { run } => *run,
        other => panic!("{other:?}"),
    };
    let ended = |module: &str| {
        (
            module.to_owned(),
            EventKind::ModuleEnded {
                run,
                state: "done".into(),
            },
        )
    };
    let modules: Vec<(String, EventKind)> =
        modules.into_iter().map(|(m, k)| (m, k.clone())).collect();
    assert_eq!(
        modules,
        vec![
            ("fetch".to_owned(), EventKind::ModuleStarted { run }),
            ended("fetch"),
            ("sum".to_owned(), EventKind::ModuleStarted { run }),
            ended("sum"),
        ]
    );
    let jobs = by_job(&events);
    let mut names: Vec<_> = jobs
        .values()
        .map(|e| {
            check_job(e);
            e[0].name.as_deref().unwrap().to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["fetch", "sum"]);
}

/// A job whose free token waits for a worker counts as queued even while a busy worker keeps
/// its entry aside instead of in the run queue (the scheduler's README, rule 11). N = 2: X's two
/// tasks hold both workers; J (cap 2) and E are submitted behind them; X's first task ends, its
/// worker starts J's first task, and, with E queued and no worker idle, keeps J's entry aside.
/// `n` tasks that each say when they start, then wait to be released: one `send` on the
/// returned sender lets one of them go.
fn gated_tasks(n: usize) -> (Vec<impl FnOnce() + Send>, Receiver<()>, Sender<()>) {
    let (started, running) = channel();
    let (release, gate) = channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let tasks = (0..n)
        .map(|_| {
            let (started, gate) = (started.clone(), gate.clone());
            move || {
                started.send(()).unwrap();
                gate.lock().unwrap().recv_timeout(HANG).unwrap();
            }
        })
        .collect();
    (tasks, running, release)
}

#[test]
fn statistics_count_a_job_kept_aside_as_queued() {
    let pool = Pool::new(2);
    let (x_tasks, x_running, x_release) = gated_tasks(2);
    let x = pool.submit(x_tasks, 2);
    for _ in 0..2 {
        x_running.recv_timeout(HANG).unwrap();
    }
    let (j_tasks, j_running, j_release) = gated_tasks(3);
    let j = pool.submit(j_tasks, 2);
    let e = pool.submit([|| ()], 1);
    assert_eq!(pool.stats().jobs_queued, 2, "J and E wait");
    x_release.send(()).unwrap();
    j_running.recv_timeout(HANG).unwrap();
    let stats = pool.stats();
    assert_eq!(
        stats.jobs_queued, 2,
        "E waits in the run queue, and J for its second token"
    );
    assert_eq!(stats.jobs_running, 2, "X and J");

    x_release.send(()).unwrap();
    x.wait().unwrap();
    e.wait().unwrap();
    for _ in 0..3 {
        j_release.send(()).unwrap();
    }
    j.wait().unwrap();
    assert_eq!(pool.stats().jobs_queued, 0);
}

#[test]
fn statistics_show_busy_workers_queued_jobs_and_counts() {
    let pool = Pool::new(2);
    let (blocking, running, release) = gated_tasks(2);
    let blockers = pool.submit(blocking, 2);
    for _ in 0..2 {
        running.recv_timeout(HANG).unwrap();
    }
    let waiting = pool.submit((0..3).map(|i| move || i), 1);
    let stats = pool.stats();
    assert_eq!(stats.threads, 2);
    assert_eq!(stats.busy, 2);
    assert_eq!((stats.idle, stats.sleeping), (0, 0));
    assert_eq!(
        stats.jobs_running, 1,
        "both workers are in the blockers' turns"
    );
    assert_eq!(stats.jobs_queued, 1);
    assert_eq!(stats.jobs_live, 2);
    assert!(stats.oldest_wait.is_some());
    assert_eq!(stats.tasks_done, 0);

    release.send(()).unwrap();
    release.send(()).unwrap();
    blockers.wait().unwrap();
    waiting.wait().unwrap();
    let failing = pool.submit(vec![|| panic!("counted")], 1);
    assert!(failing.wait().is_err());
    let stats = pool.stats();
    assert_eq!(stats.tasks_done, 5);
    assert_eq!(stats.tasks_failed, 1);
    assert_eq!(stats.tasks_not_run, 0);
    assert_eq!(stats.jobs_queued, 0);
    assert_eq!(stats.oldest_wait, None);
}

#[test]
fn a_job_of_no_tasks_is_told_submitted_then_finished() {
    let pool = Pool::new(1);
    let events = pool.events(16);
    let job = pool.submit(Vec::<fn()>::new(), 1);
    assert!(job.wait().unwrap().is_empty());
    drop(pool);
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert!(matches!(kinds[0], EventKind::JobSubmitted { tasks: 0, .. }));
    assert_eq!(
        kinds[1..],
        [EventKind::JobFinished {
            done: 0,
            failed: 0,
            not_run: 0
        }]
    );
}

/// One random task: fails its first `fails` attempts (or panics on them, with `panics`).
#[derive(Debug, Clone, Copy)]
struct RandomTask {
    fails: u32,
    panics: bool,
}

fn random_job() -> impl Strategy<Value = (Vec<RandomTask>, usize, u32, bool)> {
    let task = (0u32..3, prop::bool::weighted(0.2))
        .prop_map(|(fails, panics)| RandomTask { fails, panics });
    (
        prop::collection::vec(task, 0..12),
        1usize..4,
        1u32..4,
        prop::bool::weighted(0.2),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random jobs (failures, panics, retries, cancels): every job's events are in order, each
    /// attempt the task made was told once, with how it ended, and the end of each job and the
    /// pool's statistics agree with the events.
    #[test]
    fn events_and_statistics_agree_with_what_the_tasks_did(
        jobs in prop::collection::vec(random_job(), 1..6),
    ) {
        let pool = Pool::new(2);
        let events = pool.events(1 << 16);
        let retry = |attempts| {
            Retry::attempts(attempts)
                .backoff(Duration::from_micros(50), 1.0, Duration::from_micros(50))
                .retry_panics(true)
        };
        let mut handles = Vec::new();
        for (tasks, cap, attempts, cancel) in &jobs {
            let made: Vec<Arc<AtomicU32>> = tasks.iter().map(|_| Arc::default()).collect();
            let bodies = tasks.iter().zip(&made).map(|(task, made)| {
                let (task, made) = (*task, made.clone());
                move |cx: &TaskContext<'_>| -> Result<(), std::io::Error> {
                    made.fetch_add(1, SeqCst);
                    if cx.attempt() <= task.fails {
                        if task.panics {
                            panic!("attempt {}", cx.attempt());
                        }
                        return Err(std::io::Error::other("transient"));
                    }
                    Ok(())
                }
            });
            let job = pool.job().cap(*cap).retry(retry(*attempts)).submit_fallible(bodies);
            if *cancel {
                job.cancel();
            }
            handles.push((job.id(), made, job));
        }
        let mut made_by_job = Vec::new();
        for (id, made, job) in handles {
            let _ = job.wait();
            made_by_job.push((id, made));
        }
        let stats = pool.stats();
        drop(pool);
        let events: Vec<PoolEvent> = events.iter().collect();
        let by_job = by_job(&events);
        let (mut done, mut failed, mut not_run) = (0u64, 0u64, 0u64);
        let (mut retries_asked, mut retries_followed) = (0u64, 0u64);
        for (id, made) in made_by_job {
            let job = &by_job[&id];
            let ends = check_job(job);
            for (index, made) in made.iter().enumerate() {
                let made = made.load(SeqCst);
                let attempts: Vec<_> = ends
                    .iter()
                    .filter(|e| e.0 == index && !matches!(e.2, TaskOutcome::Cancelled))
                    .collect();
                // Every attempt the task made was told, in order, and nothing else ran.
                prop_assert_eq!(attempts.len() as u32, made, "task {} of {:?}", index, id);
                for (n, end) in attempts.iter().enumerate() {
                    prop_assert_eq!(end.1, n as u32 + 1);
                    // Only the last attempt may end other than retrying.
                    let retrying = matches!(end.2, TaskOutcome::Retrying { .. });
                    prop_assert!(retrying || n + 1 == attempts.len(), "{:?}", end);
                }
            }
            // A retry asked for is scheduled unless the job stopped (or its budget was full)
            // by the time it was recorded: then the task's last end says `Retrying`.
            let asked = ends
                .iter()
                .filter(|e| matches!(e.2, TaskOutcome::Retrying { .. }))
                .count() as u64;
            let followed = ends
                .windows(2)
                .filter(|w| w[0].0 == w[1].0 && matches!(w[0].2, TaskOutcome::Retrying { .. }))
                .count() as u64;
            retries_asked += asked;
            retries_followed += followed;
            match job.last().unwrap().kind {
                EventKind::JobFinished { done: d, failed: f, not_run: n } => {
                    let told_done = ends.iter().filter(|e| e.2 == TaskOutcome::Done).count();
                    prop_assert_eq!(d, told_done);
                    prop_assert_eq!(d + f + n, made.len());
                    done += d as u64;
                    failed += f as u64;
                    not_run += n as u64;
                }
                ref other => prop_assert!(false, "last event {:?}", other),
            }
        }
        prop_assert_eq!(
            (stats.tasks_done, stats.tasks_failed, stats.tasks_not_run),
            (done, failed, not_run)
        );
        prop_assert!(
            (retries_followed..=retries_asked).contains(&stats.retries),
            "retries {} not within {}..={}",
            stats.retries,
            retries_followed,
            retries_asked
        );
        prop_assert_eq!(events.iter().filter(|e| e.job.is_none()).count(), 0);
    }
}
