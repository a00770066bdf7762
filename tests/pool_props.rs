//! Property tests over random pool sizes, jobs, caps and task shapes: every cap is held, every
//! task runs exactly once, every job finishes with its results in order, and exactly the tasks
//! designed to panic are reported as panicked.

mod pool_common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use jobpool::{Pool, TaskError};
use pool_common::{counters, quiet_panics, values, Meter, ON_PURPOSE};
use proptest::prelude::*;

/// What one task does.
#[derive(Debug, Clone)]
enum Shape {
    /// Returns its index.
    Plain,
    /// Panics.
    Panic,
    /// Submits a sub-job of `tasks` tasks with cap `cap` to the same pool, waits for it, then
    /// returns its index.
    Nested { tasks: usize, cap: usize },
}

#[derive(Debug, Clone)]
struct JobSpec {
    cap: usize,
    tasks: Vec<Shape>,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        8 => Just(Shape::Plain),
        1 => Just(Shape::Panic),
        1 => (0..=5usize, 1..=3usize).prop_map(|(tasks, cap)| Shape::Nested { tasks, cap }),
    ]
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (1..=10usize, prop::collection::vec(shape(), 0..50))
        .prop_map(|(cap, tasks)| JobSpec { cap, tasks })
}

/// Runs a sub-job from inside a task; returns whether it behaved (results in order, cap held).
fn run_sub_job(pool: &Pool, tasks: usize, cap: usize) -> bool {
    let meter = Meter::new();
    let job = pool.submit(
        (0..tasks).map(|j| {
            let meter = meter.clone();
            move || {
                let (_inside, _) = meter.enter();
                std::thread::yield_now();
                j
            }
        }),
        cap,
    );
    let results = job.wait();
    results.is_ok_and(|r| r == (0..tasks).collect::<Vec<_>>()) && meter.peak() <= cap
}

fn check(threads: usize, specs: Vec<JobSpec>) -> Result<(), TestCaseError> {
    let pool = Pool::new(threads);
    let sub_job_failures = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<_> = specs
        .iter()
        .map(|spec| {
            let meter = Meter::new();
            let runs = counters(spec.tasks.len());
            let tasks = spec.tasks.iter().cloned().enumerate().map(|(i, shape)| {
                let (meter, runs, pool, failures) = (
                    meter.clone(),
                    runs.clone(),
                    pool.clone(),
                    sub_job_failures.clone(),
                );
                move || {
                    let (_inside, _) = meter.enter();
                    runs[i].fetch_add(1, SeqCst);
                    std::thread::yield_now();
                    match shape {
                        Shape::Plain => {}
                        Shape::Panic => panic!("{ON_PURPOSE}: task {i}"),
                        Shape::Nested { tasks, cap } => {
                            if !run_sub_job(&pool, tasks, cap) {
                                failures.fetch_add(1, SeqCst);
                            }
                        }
                    }
                    i
                }
            });
            (pool.submit(tasks, spec.cap), meter, runs)
        })
        .collect();

    for (spec, (job, meter, runs)) in specs.iter().zip(jobs) {
        let n = spec.tasks.len();
        while job.wait_timeout(Duration::from_secs(3600)).is_err() {}
        let progress = job.progress();
        prop_assert!(
            progress.peak_running <= spec.cap,
            "tokens {:?} > cap {}",
            progress,
            spec.cap
        );
        prop_assert!(
            meter.peak() <= spec.cap,
            "{} ran at once, cap {}",
            meter.peak(),
            spec.cap
        );
        prop_assert!(meter.peak() <= threads);
        prop_assert_eq!(values(&runs), vec![1; n]);
        let designed: Vec<usize> = (0..n)
            .filter(|&i| matches!(spec.tasks[i], Shape::Panic))
            .collect();
        match job.wait() {
            Ok(results) => {
                prop_assert!(designed.is_empty(), "panics not reported: {:?}", designed);
                prop_assert_eq!(results, (0..n).collect::<Vec<_>>());
            }
            Err(mut err) => {
                prop_assert!(!err.was_cancelled());
                prop_assert_eq!(err.panics().map(|(i, _)| i).collect::<Vec<_>>(), designed);
                for (i, result) in err.results_mut().iter().enumerate() {
                    match &spec.tasks[i] {
                        Shape::Panic => prop_assert_eq!(
                            result,
                            &Err(TaskError::Panicked(format!("{ON_PURPOSE}: task {i}")))
                        ),
                        _ => prop_assert_eq!(result, &Ok(i)),
                    }
                }
            }
        }
    }
    prop_assert_eq!(sub_job_failures.load(SeqCst), 0);
    pool.shutdown();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn caps_exactly_once_and_completion(
        threads in 1..=8usize,
        specs in prop::collection::vec(job_spec(), 1..=4),
    ) {
        quiet_panics();
        check(threads, specs)?;
    }
}
