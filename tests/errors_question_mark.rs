//! Every error the crate returns converts with `?` into `Box<dyn Error + Send + Sync>` and
//! `anyhow::Error`, whatever the tasks and results are: here boxed tasks (which are not `Sync`)
//! returning a `Cell` (which is not `Sync` either), and the tasks and results stay reachable.

use std::cell::Cell;
use std::error::Error;
use std::time::Duration;

use jobpool::{
    BuildError, Context, Dag, DagError, JobError, OutputError, Pool, SubmitError, SubmitErrorKind,
    TaskError, TaskResult, TimedOut, ZeroCapError,
};

type BoxedTask = Box<dyn FnOnce() -> Cell<u32> + Send>;
type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// What `?` needs to make a `Box<dyn Error + Send + Sync>` or an `anyhow::Error` of `E`.
fn converts<E: Error + Send + Sync + 'static>() {}

#[test]
fn every_error_type_is_send_sync_and_static() {
    converts::<BuildError>();
    converts::<SubmitError<BoxedTask>>();
    converts::<SubmitErrorKind>();
    converts::<ZeroCapError>();
    converts::<TaskError>();
    converts::<JobError<Cell<u32>>>();
    converts::<TimedOut>();
    converts::<DagError>();
    converts::<OutputError>();
}

fn boxed_tasks() -> Vec<BoxedTask> {
    vec![
        Box::new(|| Cell::new(1)),
        Box::new(|| panic!("task 1 fails")),
    ]
}

fn submit_and_wait_boxed(pool: &Pool) -> Result<Vec<Cell<u32>>, BoxError> {
    let job = pool.try_submit(boxed_tasks(), 1)?;
    job.wait_timeout(Duration::from_secs(60))?;
    Ok(job.wait()?)
}

fn submit_and_wait_anyhow(pool: &Pool) -> anyhow::Result<Vec<Cell<u32>>> {
    let job = pool.try_submit(boxed_tasks(), 1)?;
    job.wait_timeout(Duration::from_secs(60))?;
    Ok(job.wait()?)
}

#[test]
fn a_failed_job_converts_and_keeps_its_results() {
    let pool = Pool::new(1);
    let err = submit_and_wait_boxed(&pool).unwrap_err();
    assert_eq!(
        err.to_string(),
        "1 of 2 tasks panicked (task 1: task 1 fails)"
    );
    let job_error = err.downcast::<JobError<Cell<u32>>>().unwrap();
    let results = job_error.into_results();
    assert_eq!(results[0].as_ref().unwrap().get(), 1);

    let err = submit_and_wait_anyhow(&pool).unwrap_err();
    let mut job_error = err.downcast::<JobError<Cell<u32>>>().unwrap();
    assert_eq!(job_error.results_mut()[0].as_ref().unwrap().get(), 1);
}

#[test]
fn a_refused_submission_converts_and_hands_the_tasks_back() {
    let pool = Pool::new(1);
    pool.shutdown();
    let err = submit_and_wait_boxed(&pool).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the pool is shut down and takes no more jobs"
    );
    let refused = err.downcast::<SubmitError<BoxedTask>>().unwrap();
    assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
    let mut tasks = refused.into_tasks();
    assert_eq!(tasks.remove(0)().get(), 1);

    let err = submit_and_wait_anyhow(&pool).unwrap_err();
    let refused = err.downcast::<SubmitError<BoxedTask>>().unwrap();
    assert_eq!(refused.into_tasks().len(), 2);
}

#[test]
fn the_other_errors_convert_too() -> Result<(), BoxError> {
    fn all() -> anyhow::Result<()> {
        let pool = Pool::builder().threads(1).build()?;
        let job = pool.try_submit(vec![|| ()], 1)?;
        job.set_cap(2)?;
        job.wait_timeout(Duration::from_secs(60))?;
        job.wait()?;
        let mut dag = Dag::new();
        dag.module("one", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])?;
        let report = dag.run(&pool)?;
        assert_eq!(report.output::<u8>("one")?, &[1]);
        Err(ZeroCapError.into())
    }
    let err = all().unwrap_err();
    assert!(err.downcast_ref::<ZeroCapError>().is_some());
    let kind: BoxError = Box::new(SubmitErrorKind::ZeroCap);
    assert_eq!(
        kind.to_string(),
        "a job's cap must be at least 1 (0 was given)"
    );
    Err::<(), _>(TimedOut).or_else(|timed_out| -> Result<(), BoxError> {
        assert_eq!(timed_out.to_string(), "the wait timed out");
        Ok(())
    })
}
