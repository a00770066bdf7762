//! A graph's modules with the options of a job: retries (a module fails only once a task has
//! used up its attempts), a limiter shared by several modules, a timeout per run, a priority.
//!
//! No test sleeps to order events: threads line up on latches. The timeout tests wait for a
//! deadline to pass, which is what they are about; their margins are wide.

mod dag_common;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dag_common::Latch;
use jobpool::{
    Context, Dag, Event, Failure, GaveUp, Limiter, ModuleState, Pool, Priority, Retry, RunOptions,
    SkipReason, TaskResult,
};

/// Retries at once, so the tests do not wait for the default backoff.
fn quick(attempts: u32) -> Retry {
    Retry::attempts(attempts).backoff(Duration::from_millis(1), 1.0, Duration::from_millis(1))
}

/// Waits until `deadline` has passed, and a little more: a job's deadline takes effect when the
/// pool's timer for it fires, which the next task start can beat by a moment. The timeouts are
/// wide enough for a first task to start in time on a loaded machine.
fn outlast(deadline: Option<Instant>) {
    const TIMER_LAG: Duration = Duration::from_millis(20);
    let until = deadline.expect("the module has a timeout") + TIMER_LAG;
    while Instant::now() < until {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
}

fn failures(state: &ModuleState) -> &[Failure] {
    match state {
        ModuleState::Failed(failures) => failures,
        other => panic!("not failed: {other}"),
    }
}

#[derive(Debug, PartialEq)]
struct Flaky(u32);

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "flaky on attempt {}", self.0)
    }
}

impl std::error::Error for Flaky {}

#[test]
fn tasks_that_fail_twice_succeed_on_their_third_attempt_and_dependents_run() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut dag = Dag::new();
    let tasks = (0..4u32).map(|i| {
        let calls = calls.clone();
        move |ctx: &Context| -> TaskResult<u32> {
            calls.fetch_add(1, SeqCst);
            if ctx.attempt() < 3 {
                Err(Flaky(ctx.attempt()).into())
            } else {
                Ok(i * 10 + ctx.attempt())
            }
        }
    });
    dag.module("flaky", 2, tasks).unwrap().retry(quick(3));
    dag.module(
        "sum",
        1,
        [|ctx: &Context| -> TaskResult<u32> { Ok(ctx.output::<u32>("flaky")?.iter().sum()) }],
    )
    .unwrap()
    .after(["flaky"])
    .unwrap();

    let report = dag.run(&Pool::new(2)).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.output::<u32>("flaky").unwrap(), [3, 13, 23, 33]);
    assert_eq!(report.output::<u32>("sum").unwrap(), [72]);
    assert_eq!(calls.load(SeqCst), 4 * 3, "each task ran three times");

    // The graph runs again, and each run's tasks get their attempts afresh.
    let again = dag.run(&Pool::new(2)).unwrap();
    assert!(again.is_success(), "{again}");
    assert_eq!(calls.load(SeqCst), 2 * 4 * 3);
}

#[test]
fn a_task_that_uses_up_its_attempts_fails_the_module_and_its_dependents_are_skipped() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let ran_after = Arc::new(AtomicUsize::new(0));
    let after = ran_after.clone();
    let mut dag = Dag::new();
    let tasks = (0..2).map(move |i| {
        let counted = counted.clone();
        move |ctx: &Context| -> TaskResult<u32> {
            if i == 0 {
                return Ok(0);
            }
            counted.fetch_add(1, SeqCst);
            Err(Flaky(ctx.attempt()).into())
        }
    });
    dag.module("broken", 2, tasks).unwrap().retry(quick(2));
    dag.module(
        "after-broken",
        1,
        [move |_: &Context| -> TaskResult<()> {
            after.fetch_add(1, SeqCst);
            Ok(())
        }],
    )
    .unwrap()
    .after(["broken"])
    .unwrap();
    dag.module(
        "independent",
        1,
        [|_: &Context| -> TaskResult<()> { Ok(()) }],
    )
    .unwrap()
    .retry(quick(2));

    let report = dag.run(&Pool::new(2)).unwrap();
    assert!(!report.is_success());
    assert_eq!(calls.load(SeqCst), 2, "the failing task ran exactly twice");
    let failures = failures(report.module("broken").unwrap().state());
    assert_eq!(failures.len(), 1);
    assert!(matches!(&failures[0], Failure::TaskError { task: 1, .. }));
    assert_eq!(
        (failures[0].task(), failures[0].attempts()),
        (Some(1), Some(2))
    );
    let failure = failures[0].task_failure().expect("a task failure");
    assert_eq!(failure.attempts(), 2);
    assert_eq!(failure.gave_up(), GaveUp::AttemptsUsedUp);
    assert_eq!(failure.downcast_ref::<Flaky>(), Some(&Flaky(2)));
    let message = "task 1 returned an error after 2 attempts (no attempts left): \
                   flaky on attempt 2";
    assert_eq!(failures[0].to_string(), message);
    assert!(report.to_string().contains(message), "{report}");

    assert_eq!(
        report.module("after-broken").unwrap().state(),
        &ModuleState::Skipped(SkipReason::DependencyFailed {
            failed: "broken".into()
        })
    );
    assert_eq!(ran_after.load(SeqCst), 0);
    assert!(report.module("independent").unwrap().state().is_done());
}

#[test]
fn a_permanent_error_fails_the_module_at_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let mut dag = Dag::new();
    dag.module(
        "unlinked",
        1,
        [move |_: &Context| -> TaskResult<()> {
            counted.fetch_add(1, SeqCst);
            Err("the account was unlinked".into())
        }],
    )
    .unwrap()
    .retry(quick(5).retry_if(|e| !e.to_string().contains("unlinked")));

    let report = dag.run(&Pool::new(1)).unwrap();
    assert_eq!(calls.load(SeqCst), 1);
    let failures = failures(report.module("unlinked").unwrap().state());
    assert!(failures[0].task_failure().unwrap().is_permanent());
    assert_eq!(
        failures[0].to_string(),
        "task 0 returned an error after 1 attempt (a permanent error): the account was unlinked"
    );
}

#[test]
fn without_a_retry_policy_a_failing_task_runs_once_and_reads_as_before() {
    let mut dag = Dag::new();
    dag.module(
        "once",
        1,
        [|ctx: &Context| -> TaskResult<()> { Err(Flaky(ctx.attempt()).into()) }],
    )
    .unwrap();
    let report = dag.run(&Pool::new(1)).unwrap();
    let failures = failures(report.module("once").unwrap().state());
    assert_eq!(failures[0].attempts(), Some(1));
    assert_eq!(
        failures[0].to_string(),
        "task 0 returned an error: flaky on attempt 1"
    );
}

#[test]
fn a_shared_limiter_caps_two_modules_together() {
    let limiter = Limiter::new().with_cap(1);
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    // `a`'s tasks wait until `b` is on the pool, so the two modules are in flight together and
    // only the limiter keeps their tasks apart.
    let b_started = Arc::new(Latch::default());
    let mut dag = Dag::new();
    for name in ["a", "b"] {
        let tasks = (0..8).map(|_| {
            let (active, peak, b_started) = (active.clone(), peak.clone(), b_started.clone());
            move |_: &Context| -> TaskResult<()> {
                peak.fetch_max(active.fetch_add(1, SeqCst) + 1, SeqCst);
                if name == "a" {
                    assert!(b_started.wait(), "b never started");
                }
                std::thread::yield_now();
                active.fetch_sub(1, SeqCst);
                Ok(())
            }
        });
        dag.module(name, 4, tasks).unwrap().limit(&limiter);
    }
    let opener = b_started.clone();
    let options = RunOptions::new().on_event(move |event: &Event<'_>| {
        if event.module == "b" && event.state.is_none() {
            opener.open();
        }
    });

    let report = dag.run_with(&Pool::new(4), options).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(peak.load(SeqCst), 1, "across both modules");
    assert_eq!(limiter.peak_running(), 1);
    let (a, b) = (report.module("a").unwrap(), report.module("b").unwrap());
    assert!(b.start().unwrap() <= a.end().unwrap(), "{report}");
    assert_eq!((a.peak_running(), b.peak_running()), (1, 1));
}

#[test]
fn a_module_whose_work_outlasts_its_timeout_fails_with_the_timeout_as_the_reason() {
    let mut dag = Dag::new();
    // One task at a time: the first works until the timeout has passed, so the others never start.
    let tasks = (0..3).map(|_| {
        |ctx: &Context| -> TaskResult<()> {
            outlast(ctx.deadline());
            Ok(())
        }
    });
    dag.module("slow", 1, tasks)
        .unwrap()
        .timeout(Duration::from_millis(100));
    dag.module(
        "after-slow",
        1,
        [|_: &Context| -> TaskResult<()> { Ok(()) }],
    )
    .unwrap()
    .after(["slow"])
    .unwrap();

    let report = dag.run(&Pool::new(2)).unwrap();
    let slow = report.module("slow").unwrap();
    let failures = failures(slow.state());
    assert!(
        matches!(
            failures,
            [Failure::TimedOut { tasks, timeout }]
                if tasks == &[1, 2] && *timeout == Duration::from_millis(100)
        ),
        "{report}"
    );
    assert_eq!(
        failures[0].to_string(),
        "the module timed out after 100 ms: tasks 1, 2 did not start in time"
    );
    assert!(report.to_string().contains("timed out"), "{report}");
    assert_eq!(
        report.module("after-slow").unwrap().state(),
        &ModuleState::Skipped(SkipReason::DependencyFailed {
            failed: "slow".into()
        })
    );
}

#[test]
fn the_timeout_counts_from_the_modules_start_in_each_run() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let declared = Instant::now();
    let mut dag = Dag::new();
    // `late` starts only after its own timeout has passed since it was declared.
    dag.module(
        "first",
        1,
        [move |_: &Context| -> TaskResult<()> {
            outlast(Some(declared + 2 * TIMEOUT));
            Ok(())
        }],
    )
    .unwrap();
    dag.module(
        "late",
        2,
        (0..2).map(|i| move |_: &Context| -> TaskResult<u32> { Ok(i) }),
    )
    .unwrap()
    .after(["first"])
    .unwrap()
    .timeout(TIMEOUT);

    let pool = Pool::new(2);
    for run in 0..2 {
        let report = dag.run(&pool).unwrap();
        assert!(report.is_success(), "run {run}: {report}");
        assert_eq!(report.output::<u32>("late").unwrap(), [0, 1]);
    }
}

#[test]
fn a_high_priority_module_runs() {
    let mut dag = Dag::new();
    dag.module(
        "bulk",
        2,
        (0..10).map(|i| move |_: &Context| -> TaskResult<u32> { Ok(i) }),
    )
    .unwrap()
    .priority(Priority::Low);
    dag.module(
        "urgent",
        1,
        [|_: &Context| -> TaskResult<&str> { Ok("now") }],
    )
    .unwrap()
    .priority(Priority::High)
    .retry(quick(2));
    let report = dag.run(&Pool::new(2)).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.output::<&str>("urgent").unwrap(), ["now"]);
    assert_eq!(report.output::<u32>("bulk").unwrap().len(), 10);
}
