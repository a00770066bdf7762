//! jobpool's side: jobs through a `Submitter` to worker processes running jobpool `Worker`s,
//! and the local `Pool` of the overhead part.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jobpool::cluster::{Submitter, TaskType};
use jobpool::Pool;

use crate::children::Types;

/// One job, timed.
pub(crate) struct Timed {
    /// From the call of `submit` to the end of `wait`.
    pub(crate) elapsed: Duration,
    /// `submit` alone: the job's consumer made, its record and every task published and
    /// stored.
    pub(crate) submit: Duration,
    /// The worker processes that ran its tasks.
    pub(crate) pids: BTreeSet<u32>,
}

/// A job of `tasks` tasks of type `task`, each with `argument`, cap `cap`: submitted, then
/// waited for (`RemoteJob::wait`); checks that every task succeeded.
pub(crate) fn run_job(
    submitter: &Submitter,
    task: &TaskType<u64, u32>,
    argument: u64,
    tasks: usize,
    cap: usize,
) -> Timed {
    let start = Instant::now();
    let job = submitter
        .submit(task, (0..tasks).map(|_| argument), cap)
        .expect("a job submitted");
    let submit = start.elapsed();
    let results = job.wait().expect("the job's results");
    let elapsed = start.elapsed();
    assert_eq!(results.len(), tasks);
    let pids = results
        .into_iter()
        .map(|r| r.expect("every task succeeds"))
        .collect();
    Timed {
        elapsed,
        submit,
        pids,
    }
}

/// Jobs of 20 ms tasks (cap: every worker thread) until each of the `workers` processes has
/// run one: each is then connected, follows the jobs, and pulls. Returns how many jobs it
/// took.
pub(crate) fn warm_up(
    submitter: &Submitter,
    types: &Types,
    workers: &[u32],
    threads: usize,
) -> usize {
    let wanted: BTreeSet<u32> = workers.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let total = workers.len() * threads;
    for jobs in 1..=50 {
        seen.extend(run_job(submitter, &types.sleep_ms, 20, total * 2, total).pids);
        if wanted.is_subset(&seen) {
            return jobs;
        }
    }
    panic!("some worker processes ran no task of 50 jobs: {wanted:?} against {seen:?}");
}

/// The overhead part's local contender: the same job of sleeping tasks on a local pool.
pub(crate) fn local_sleep_job(pool: &Pool, tasks: usize, ms: u64, cap: usize) -> Duration {
    let start = Instant::now();
    let job = pool.submit(
        (0..tasks).map(move |_| move || std::thread::sleep(Duration::from_millis(ms))),
        cap,
    );
    job.wait().expect("the local job");
    start.elapsed()
}
