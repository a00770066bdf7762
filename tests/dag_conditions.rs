//! Skip conditions in a running graph: a condition that takes its time holds back no other
//! module, conditions are asked side by side, and everything else about them still holds (a
//! panic fails the module, fail-fast cancels, a graph run from a task of a one-thread pool
//! finishes, the observer hears one event at a time and in order).
//!
//! The slow conditions here wait on a latch that another module's task opens: such a graph
//! finishes only if that module is submitted while the condition is still being asked. No test
//! sleeps to order events; the hang limit only turns a would-be hang into a failure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use jobpool::{
    Context, Dag, Event, FailureMode, ModuleState, Pool, RunOptions, SkipReason, TaskResult,
};

/// How long a run may take before it counts as hung.
const HANG: Duration = Duration::from_secs(10);

/// How long a latch waits before giving up: longer than `HANG`, so that a run blocked on a
/// latch is reported as the hang it is.
const LATCH_LIMIT: Duration = Duration::from_secs(20);

/// Runs `body` on a thread of its own and fails if it does not return within `HANG`.
fn within_hang_limit<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    rx.recv_timeout(HANG)
        .expect("the graph never finished: a module was held back by another's condition")
}

/// A countdown: `wait` returns once `count_down` was called as many times as it was made for.
struct Latch {
    left: Mutex<usize>,
    zero: Condvar,
}

impl Latch {
    fn new(count: usize) -> Arc<Latch> {
        Arc::new(Latch {
            left: Mutex::new(count),
            zero: Condvar::new(),
        })
    }

    fn count_down(&self) {
        let mut left = self.left.lock().unwrap();
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.zero.notify_all();
        }
    }

    /// Waits until the count is zero; false if it was not within `LATCH_LIMIT`.
    fn wait(&self) -> bool {
        let left = self.left.lock().unwrap();
        let (left, _) = self
            .zero
            .wait_timeout_while(left, LATCH_LIMIT, |left| *left > 0)
            .unwrap();
        *left == 0
    }
}

fn noop(_: &Context) -> TaskResult<()> {
    Ok(())
}

/// A task that opens `latch`.
fn opens(latch: &Arc<Latch>) -> impl Fn(&Context) -> TaskResult<()> + Send + Sync + 'static {
    let latch = latch.clone();
    move |_| {
        latch.count_down();
        Ok(())
    }
}

/// A condition that waits until `latch` opens, then lets its module run.
fn waits_for(latch: &Arc<Latch>) -> impl Fn(&Context) -> bool + Send + Sync + 'static {
    let latch = latch.clone();
    // Had the latch not opened, skipping the module shows in the report.
    move |_| !latch.wait()
}

fn state<'r>(report: &'r jobpool::RunReport, module: &str) -> &'r ModuleState {
    report.module(module).unwrap().state()
}

#[test]
fn a_slow_condition_does_not_hold_back_an_unrelated_module() {
    // `slow` comes first, so a driver that asks conditions in turn asks it before it submits
    // `quick`; and `slow`'s condition waits until `quick`'s task has run.
    for threads in [2, 4] {
        let report = within_hang_limit(move || {
            let quick_ran = Latch::new(1);
            let mut dag = Dag::new();
            dag.module("slow", 1, [noop])
                .unwrap()
                .skip_if(waits_for(&quick_ran));
            dag.module("quick", 1, [opens(&quick_ran)]).unwrap();
            dag.run(&Pool::new(threads)).unwrap()
        });
        assert!(report.is_success(), "{threads} threads: {report}");
        assert!(state(&report, "slow").is_done(), "{report}");
    }
}

#[test]
fn a_slow_condition_does_not_hold_back_a_sibling() {
    // `root` ends and makes both `slow` and `sibling` ready at once; `slow`'s condition waits
    // for `sibling`'s task. Both orders of declaration, so that the condition is met first in
    // one of them, whichever order the ready modules are taken in.
    for slow_first in [true, false] {
        let report = within_hang_limit(move || {
            let sibling_ran = Latch::new(1);
            let mut dag = Dag::new();
            dag.module("root", 1, [noop]).unwrap();
            let slow = |dag: &mut Dag| {
                dag.module("slow", 1, [noop])
                    .unwrap()
                    .after(["root"])
                    .unwrap()
                    .skip_if(waits_for(&sibling_ran));
            };
            if slow_first {
                slow(&mut dag);
            }
            dag.module("sibling", 1, [opens(&sibling_ran)])
                .unwrap()
                .after(["root"])
                .unwrap();
            if !slow_first {
                slow(&mut dag);
            }
            dag.run(&Pool::new(2)).unwrap()
        });
        assert!(report.is_success(), "slow first: {slow_first}: {report}");
        assert!(state(&report, "slow").is_done(), "{report}");
    }
}

#[test]
fn a_module_whose_dependency_ends_while_a_condition_is_asked_starts_at_once() {
    // `first` runs; `slow`'s condition waits for `second`, which needs `first`: `second` must
    // be submitted when `first` ends, while `slow`'s condition is still being asked.
    let report = within_hang_limit(|| {
        let second_ran = Latch::new(1);
        let mut dag = Dag::new();
        dag.module("first", 1, [noop]).unwrap();
        dag.module("slow", 1, [noop])
            .unwrap()
            .skip_if(waits_for(&second_ran));
        dag.module("second", 1, [opens(&second_ran)])
            .unwrap()
            .after(["first"])
            .unwrap();
        dag.run(&Pool::new(2)).unwrap()
    });
    assert!(report.is_success(), "{report}");
    assert!(state(&report, "slow").is_done(), "{report}");
}

#[test]
fn conditions_are_asked_at_the_same_time() {
    // Each condition waits until every condition has begun: this finishes only if they are
    // asked side by side, one per thread.
    for modules in [2, 4] {
        let report = within_hang_limit(move || {
            let all_asked = Latch::new(modules);
            let mut dag = Dag::new();
            dag.module("root", 1, [noop]).unwrap();
            for m in 0..modules {
                let all_asked = all_asked.clone();
                dag.module(format!("m{m}"), 1, [noop])
                    .unwrap()
                    .after(["root"])
                    .unwrap()
                    .skip_if(move |_| {
                        all_asked.count_down();
                        // Odd modules are skipped, even ones run, once all have been asked.
                        !all_asked.wait() || m % 2 == 1
                    });
            }
            dag.run(&Pool::new(modules)).unwrap()
        });
        for m in 0..modules {
            let expected = if m % 2 == 1 {
                ModuleState::Skipped(SkipReason::Condition)
            } else {
                ModuleState::Done
            };
            assert_eq!(state(&report, &format!("m{m}")), &expected, "{report}");
        }
    }
}

#[test]
fn fail_fast_cancels_a_module_whose_condition_is_being_asked() {
    // `asked`'s condition is running when `bad` fails, and answers "run" after that: the run is
    // stopping by then, so `asked` ends cancelled and none of its tasks run.
    let asking = Latch::new(1);
    let bad_failed = Latch::new(1);
    let answered_after_failure = Arc::new(AtomicBool::new(false));
    let asked_ran = Arc::new(AtomicUsize::new(0));
    let mut dag = Dag::new();
    let started = asking.clone();
    dag.module(
        "bad",
        1,
        [move |_: &Context| -> TaskResult<()> {
            assert!(started.wait());
            Err("broken".into())
        }],
    )
    .unwrap();
    let counter = asked_ran.clone();
    let (opener, failed, answered) = (
        asking.clone(),
        bad_failed.clone(),
        answered_after_failure.clone(),
    );
    dag.module(
        "asked",
        1,
        [move |_: &Context| -> TaskResult<()> {
            counter.fetch_add(1, SeqCst);
            Ok(())
        }],
    )
    .unwrap()
    .skip_if(move |_| {
        opener.count_down();
        answered.store(failed.wait(), SeqCst);
        false
    });
    let opener = bad_failed.clone();
    let options = RunOptions::new()
        .failure_mode(FailureMode::FailFast)
        .on_event(move |event: &Event<'_>| {
            if event.module == "bad" && event.state.is_some_and(ModuleState::is_failed) {
                opener.count_down();
            }
        });
    let report = within_hang_limit(move || dag.run_with(&Pool::new(2), options).unwrap());
    assert!(answered_after_failure.load(SeqCst));
    assert!(state(&report, "bad").is_failed(), "{report}");
    assert!(state(&report, "asked").is_cancelled(), "{report}");
    assert_eq!(report.module("asked").unwrap().start(), None);
    assert_eq!(asked_ran.load(SeqCst), 0);
}

#[test]
fn fail_fast_cancels_a_module_whose_condition_has_not_answered_yet() {
    // `bad` fails at once; `asked`'s condition, if it gets to run before the failure cancels it,
    // waits for the failure before it answers "run". Either way `asked` ends cancelled and none
    // of its tasks run. Repeated, so that both ways come up.
    for _ in 0..20 {
        let bad_failed = Latch::new(1);
        let asked_ran = Arc::new(AtomicUsize::new(0));
        let mut dag = Dag::new();
        dag.module(
            "bad",
            1,
            [|_: &Context| -> TaskResult<()> { Err("broken".into()) }],
        )
        .unwrap();
        let counter = asked_ran.clone();
        let failed = bad_failed.clone();
        dag.module(
            "asked",
            1,
            [move |_: &Context| -> TaskResult<()> {
                counter.fetch_add(1, SeqCst);
                Ok(())
            }],
        )
        .unwrap()
        .skip_if(move |_| !failed.wait());
        let opener = bad_failed.clone();
        let options = RunOptions::new()
            .failure_mode(FailureMode::FailFast)
            .on_event(move |event: &Event<'_>| {
                if event.state.is_some_and(ModuleState::is_failed) {
                    opener.count_down();
                }
            });
        let report = within_hang_limit(move || dag.run_with(&Pool::new(2), options).unwrap());
        assert!(state(&report, "asked").is_cancelled(), "{report}");
        assert_eq!(report.module("asked").unwrap().start(), None);
        assert_eq!(asked_ran.load(SeqCst), 0);
    }
}

/// A graph with every kind of condition: `a` is asked and runs, `b` is skipped by its
/// condition, `c`'s condition panics, `d` runs after the skipped `b` and sees it skipped, `e`
/// is skipped because `c` failed.
fn every_kind_of_condition() -> Dag {
    let mut dag = Dag::new();
    dag.module("a", 1, [|_: &Context| -> TaskResult<u32> { Ok(1) }])
        .unwrap()
        .skip_if(|_| false);
    dag.module("b", 1, [|_: &Context| -> TaskResult<u32> { Ok(2) }])
        .unwrap()
        .after(["a"])
        .unwrap()
        // A condition sees the outputs of the module's dependencies.
        .skip_if(|ctx| ctx.output::<u32>("a").unwrap() == [1]);
    dag.module("c", 1, [noop])
        .unwrap()
        .after(["a"])
        .unwrap()
        .skip_if(|_| panic!("cannot decide"));
    dag.module(
        "d",
        1,
        [|ctx: &Context| -> TaskResult<bool> { Ok(ctx.skipped("b")?) }],
    )
    .unwrap()
    .after(["b"])
    .unwrap()
    .skip_if(|ctx| !ctx.skipped("b").unwrap());
    dag.module("e", 1, [noop])
        .unwrap()
        .after(["c", "a"])
        .unwrap()
        .skip_if(|_| false);
    dag
}

/// Checks a report of `every_kind_of_condition`.
fn check_every_kind_of_condition(report: &jobpool::RunReport) {
    assert!(state(report, "a").is_done(), "{report}");
    assert_eq!(
        state(report, "b"),
        &ModuleState::Skipped(SkipReason::Condition)
    );
    assert_eq!(
        state(report, "c").to_string(),
        "failed: the skip condition panicked: cannot decide"
    );
    assert_eq!(report.output::<bool>("d").unwrap(), [true]);
    assert_eq!(
        state(report, "e"),
        &ModuleState::Skipped(SkipReason::DependencyFailed { failed: "c".into() })
    );
    for never_started in ["b", "c", "e"] {
        assert_eq!(report.module(never_started).unwrap().start(), None);
    }
}

#[test]
fn every_kind_of_condition_ends_its_module_as_it_should() {
    for threads in [1, 3] {
        let report = within_hang_limit(move || every_kind_of_condition().run(&Pool::new(threads)));
        check_every_kind_of_condition(&report.unwrap());
    }
}

/// A task of a one-thread pool runs a graph with conditions on that pool: the worker asks the
/// conditions itself while it waits, as it runs the graph's tasks, instead of blocking the only
/// thread.
#[test]
fn a_graph_with_conditions_run_from_a_task_of_a_one_thread_pool_finishes() {
    let report = within_hang_limit(|| {
        let pool = Pool::new(1);
        let inner = pool.clone();
        let job = pool.submit(vec![move || every_kind_of_condition().run(&inner)], 1);
        job.wait().unwrap().pop().unwrap()
    });
    check_every_kind_of_condition(&report.unwrap());
}

/// Every worker of a pool runs a graph with conditions at once: each waiting worker asks its
/// own graph's conditions.
#[test]
fn graphs_with_conditions_run_from_every_worker_finish() {
    let reports = within_hang_limit(|| {
        let pool = Pool::new(2);
        let tasks = (0..4).map(|_| {
            let pool = pool.clone();
            move || every_kind_of_condition().run(&pool).unwrap()
        });
        pool.submit(tasks, 4).wait().unwrap()
    });
    for report in &reports {
        check_every_kind_of_condition(report);
    }
}

#[test]
fn a_shut_down_pool_cancels_a_module_with_a_condition_without_asking_it() {
    let pool = Pool::new(1);
    pool.shutdown();
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let mut dag = Dag::new();
    dag.module("a", 1, [noop]).unwrap().skip_if(move |_| {
        counter.fetch_add(1, SeqCst);
        false
    });
    let report = within_hang_limit(move || dag.run(&pool).unwrap());
    assert!(state(&report, "a").is_cancelled(), "{report}");
    assert_eq!(asked.load(SeqCst), 0);
}

/// Counts its drops.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_run_does_not_keep_the_conditions() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut dag = Dag::new();
    for (name, skip) in [("runs", false), ("skipped", true)] {
        let held = DropCount(drops.clone());
        dag.module(name, 1, [noop]).unwrap().skip_if(move |_| {
            let _ = &held;
            skip
        });
    }
    let pool = Pool::new(2);
    for _ in 0..3 {
        let report = dag.run(&pool).unwrap();
        assert!(report.is_success(), "{report}");
        assert_eq!(drops.load(SeqCst), 0);
    }
    drop(dag);
    assert_eq!(drops.load(SeqCst), 2);
}

/// The events of a run, in the order told: each module's name, and its state's label at its end.
type EventLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[test]
fn events_come_one_at_a_time_and_in_order_with_conditions() {
    // A wide graph: `root`, then 12 modules with conditions, then `sink` after them. Every third
    // module is skipped; `m1` and `m4` are slow to answer (each waits for the module after it
    // to run: two threads of four blocked at most, so the tasks they wait for find a thread).
    const WIDE: usize = 12;
    for _ in 0..20 {
        let in_call = Arc::new(AtomicBool::new(false));
        let overlapped = Arc::new(AtomicBool::new(false));
        let log: EventLog = Arc::default();
        let asked = Arc::new(AtomicUsize::new(0));
        let mut dag = Dag::new();
        dag.module("root", 2, [noop, noop]).unwrap();
        let ran: Vec<Arc<Latch>> = (0..WIDE).map(|_| Latch::new(1)).collect();
        for m in 0..WIDE {
            let (asked, next_ran) = (asked.clone(), ran[(m + 1) % WIDE].clone());
            dag.module(format!("m{m}"), 2, [opens(&ran[m]), opens(&ran[m])])
                .unwrap()
                .after(["root"])
                .unwrap()
                .skip_if(move |_| {
                    asked.fetch_add(1, SeqCst);
                    match m {
                        _ if m % 3 == 0 => true,
                        1 | 4 => !next_ran.wait(),
                        _ => false,
                    }
                });
        }
        let names: Vec<String> = (0..WIDE).map(|m| format!("m{m}")).collect();
        dag.module("sink", 1, [noop])
            .unwrap()
            .after(&names)
            .unwrap();
        let (seen, busy, overlap) = (log.clone(), in_call.clone(), overlapped.clone());
        let options = RunOptions::new().on_event(move |event: &Event<'_>| {
            if busy.swap(true, SeqCst) {
                overlap.store(true, SeqCst);
            }
            let state = event.state.map(|s| s.label().to_owned());
            seen.lock().unwrap().push((event.module.to_owned(), state));
            std::thread::yield_now();
            busy.store(false, SeqCst);
        });
        let report = within_hang_limit(move || dag.run_with(&Pool::new(4), options).unwrap());
        assert!(report.is_success(), "{report}");
        assert!(
            !overlapped.load(SeqCst),
            "the observer was called twice at once"
        );
        assert_eq!(asked.load(SeqCst), WIDE, "each condition is asked once");

        // Each module: at most one start, exactly one end, the start first; a skipped module
        // never starts; every dependency ended before the module's first event.
        let log = log.lock().unwrap();
        let mut started: HashMap<&str, usize> = HashMap::new();
        let mut ended: HashMap<&str, usize> = HashMap::new();
        for (at, (module, state)) in log.iter().enumerate() {
            match state {
                None => assert!(
                    started.insert(module, at).is_none(),
                    "{module} started twice"
                ),
                Some(_) => assert!(ended.insert(module, at).is_none(), "{module} ended twice"),
            }
        }
        assert_eq!(ended.len(), WIDE + 2, "{log:?}");
        for m in 0..WIDE {
            let name = format!("m{m}");
            let first = started.get(&*name).copied().unwrap_or(ended[&*name]);
            assert!(ended["root"] < first, "{log:?}");
            assert!(ended[&*name] < started["sink"], "{log:?}");
            if m % 3 == 0 {
                assert!(!started.contains_key(&*name), "{log:?}");
                assert_eq!(log[ended[&*name]].1.as_deref(), Some("skipped"));
            } else {
                assert!(started[&*name] < ended[&*name], "{log:?}");
                assert_eq!(log[ended[&*name]].1.as_deref(), Some("done"));
            }
        }
    }
}
