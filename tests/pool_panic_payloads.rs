//! Panics whose payload panics again when dropped: a task's, a completion callback's, a
//! cancelled task's captured value, a graph's observer and skip condition. Each is caught, the
//! job's bookkeeping is done, and nothing unwinds into the worker or the caller.

mod pool_common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};

use jobpool::{Context, Dag, FailureMode, ModuleState, Pool, RunOptions, TaskError, TaskResult};
use pool_common::{quiet_panics, within_hang_limit, Gate};

/// A panic payload (`std::panic::panic_any(PanicsOnDrop)`) whose `Drop` panics, with a payload
/// of its own kind, unless the thread is unwinding already.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            std::panic::panic_any(PanicsOnDrop);
        }
    }
}

/// Quiets the hook for these payloads (they carry no message) as well as for `on purpose`.
fn quiet() {
    quiet_panics();
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<PanicsOnDrop>() {
                previous(info);
            }
        }));
    });
}

#[test]
fn a_task_whose_panic_payload_panics_when_dropped_is_reported_and_the_job_goes_on() {
    quiet();
    let results = within_hang_limit(|| {
        let pool = Pool::new(1);
        let tasks: Vec<Box<dyn FnOnce() -> u8 + Send>> = vec![
            Box::new(|| std::panic::panic_any(PanicsOnDrop)),
            Box::new(|| 2),
        ];
        let err = pool.submit(tasks, 1).wait().unwrap_err();
        let results = err.into_results();
        // The pool is still whole: its one worker runs the next job.
        assert_eq!(pool.submit(vec![|| 3], 1).wait().unwrap(), vec![3]);
        results
    })
    .expect("the job hung: the payload's panic escaped the worker's catch");
    assert_eq!(
        results[0],
        Err(TaskError::Panicked("<non-string panic payload>".into()))
    );
    assert_eq!(results[1], Ok(2));
}

#[test]
fn a_callback_whose_panic_payload_panics_when_dropped_does_not_reach_the_canceller() {
    quiet();
    let outcome = within_hang_limit(|| {
        let pool = Pool::new(1);
        let gate = Gate::new();
        let _open = gate.opener();
        let (started_tx, started) = mpsc::channel();
        let blocker = {
            let gate = gate.clone();
            pool.submit(
                vec![move || {
                    started_tx.send(()).unwrap();
                    gate.pass();
                }],
                1,
            )
        };
        started.recv().unwrap(); // the one worker is busy: the job below stays pending
        let job = pool.submit(vec![|| ()], 1);
        let canceller = job.canceller();
        let called = Arc::new(AtomicUsize::new(0));
        let seen = called.clone();
        job.on_finish(move |_| {
            seen.fetch_add(1, SeqCst);
            std::panic::panic_any(PanicsOnDrop);
        });
        // Cancelling finishes the job, so the callback runs on this thread.
        let cancel = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| canceller.cancel()));
        gate.open(1);
        blocker.wait().unwrap();
        (cancel.is_ok(), called.load(SeqCst))
    })
    .expect("hung");
    assert_eq!(
        outcome,
        (true, 1),
        "the callback's panic reached the canceller"
    );
}

/// A value captured by a task that panics, with a `PanicsOnDrop` payload, when dropped.
struct DropPanicsWithPayload;

impl Drop for DropPanicsWithPayload {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            std::panic::panic_any(PanicsOnDrop);
        }
    }
}

#[test]
fn cancelling_a_task_whose_drop_panics_with_such_a_payload_cancels_the_rest() {
    quiet();
    let outcome = within_hang_limit(|| {
        let pool = Pool::new(1);
        let gate = Gate::new();
        let _open = gate.opener();
        let (started_tx, started) = mpsc::channel();
        let first: Box<dyn FnOnce() + Send> = {
            let gate = gate.clone();
            Box::new(move || {
                started_tx.send(()).unwrap();
                gate.pass();
            })
        };
        let captured = DropPanicsWithPayload;
        let second: Box<dyn FnOnce() + Send> = Box::new(move || drop(captured));
        let third: Box<dyn FnOnce() + Send> = Box::new(|| ());
        let job = pool.submit(vec![first, second, third], 1);
        started.recv().unwrap();
        let cancel = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.cancel()));
        gate.open(1);
        let err = job.wait().unwrap_err();
        (cancel.is_ok(), err.cancelled().collect::<Vec<_>>())
    })
    .expect("hung");
    assert_eq!(outcome, (true, vec![1, 2]));
}

#[test]
fn a_graph_whose_observer_and_condition_panic_with_such_payloads_still_ends() {
    quiet();
    let report = within_hang_limit(|| {
        let mut dag = Dag::new();
        dag.module("a", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])
            .unwrap();
        dag.module("b", 1, [|_: &Context| -> TaskResult<u8> { Ok(2) }])
            .unwrap()
            .after(["a"])
            .unwrap()
            .skip_if(|_| std::panic::panic_any(PanicsOnDrop));
        let options = RunOptions::new()
            .failure_mode(FailureMode::KeepGoing)
            .on_event(|_| std::panic::panic_any(PanicsOnDrop));
        let report = dag.run_with(&Pool::new(2), options).unwrap();
        let b = report.module("b").unwrap().state();
        (
            report.module("a").unwrap().state().is_done(),
            matches!(b, ModuleState::Failed(f) if f.len() == 1),
            format!("{b:?}"),
        )
    })
    .expect("the graph run hung");
    assert!(report.0);
    assert!(report.1, "b: {}", report.2);
}
