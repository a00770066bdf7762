//! Property tests of chunks cut short (the scheduler's README, rule 3): jobs whose tasks turn
//! from instant to long part-way, whose caps go down and up while they run, taken whole or
//! through `Completions`, next to jobs submitted while every worker is busy. Whatever is handed
//! back and claimed again, every task runs exactly once, the cap in force is held, and every
//! result comes back once, in order for `wait`.

mod pool_common;

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use jobpool::Pool;
use pool_common::{counters, values, Meter};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct JobSpec {
    /// Instant tasks first, then this many that run for `long_micros`.
    instant: usize,
    long: usize,
    long_micros: u64,
    /// The cap at submission, and the caps set one after the other while the job runs.
    cap: usize,
    cap_changes: Vec<usize>,
    /// Taken through `Completions` rather than `wait`.
    completions: bool,
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (
        0..300usize,
        0..12usize,
        1..300u64,
        1..=4usize,
        prop::collection::vec(1..=4usize, 0..4),
        any::<bool>(),
    )
        .prop_map(
            |(instant, long, long_micros, cap, cap_changes, completions)| JobSpec {
                instant,
                long,
                long_micros,
                cap,
                cap_changes,
                completions,
            },
        )
}

fn run_for(micros: u64) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(micros) {
        std::hint::spin_loop();
    }
}

fn check(threads: usize, specs: Vec<JobSpec>) -> Result<(), TestCaseError> {
    let pool = Pool::new(threads);
    let mut jobs = Vec::new();
    for spec in &specs {
        let n = spec.instant + spec.long;
        let runs = counters(n);
        let meter = Meter::new();
        let tasks = (0..n).map(|i| {
            let (runs, meter, instant, micros) =
                (runs.clone(), meter.clone(), spec.instant, spec.long_micros);
            move || {
                let (_inside, _) = meter.enter();
                runs[i].fetch_add(1, SeqCst);
                if i >= instant {
                    run_for(micros);
                }
                i
            }
        });
        jobs.push((pool.submit(tasks, spec.cap), runs, meter));
    }
    for (spec, (job, runs, meter)) in specs.iter().zip(jobs) {
        let n = spec.instant + spec.long;
        for &cap in &spec.cap_changes {
            job.set_cap(cap).unwrap();
        }
        // Tasks running when a cap is lowered finish, so the highest cap the job had bounds it.
        let most = spec.cap_changes.iter().copied().fold(spec.cap, usize::max);
        let results: Vec<usize> = if spec.completions {
            let mut seen: Vec<usize> = job
                .completions()
                .map(|(index, result)| {
                    assert_eq!(result.unwrap(), index);
                    index
                })
                .collect();
            seen.sort_unstable();
            seen
        } else {
            job.wait().unwrap()
        };
        prop_assert_eq!(results, (0..n).collect::<Vec<_>>());
        prop_assert_eq!(values(&runs), vec![1; n]);
        prop_assert!(
            meter.peak() <= most,
            "{} ran at once, cap {}",
            meter.peak(),
            most
        );
    }
    pool.shutdown();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn chunks_cut_short_keep_every_task_once_and_every_cap(
        threads in 1..=4usize,
        specs in prop::collection::vec(job_spec(), 1..=4),
    ) {
        check(threads, specs)?;
    }
}
