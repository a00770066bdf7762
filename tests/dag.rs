//! The dependency graph run as a whole: order, overlap, caps, validation, failures, outputs,
//! skipping, nested jobs, re-runs and the report. No test sleeps to order events: threads line
//! up on barriers, latches and channels. Timeouts only turn a would-be hang into a failure.

mod dag_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};

use dag_common::{Latch, HANG};
use jobpool::{
    Context, Dag, DagError, Event, Failure, FailureMode, ModuleState, OutputError, Pool,
    RunOptions, SkipReason, TaskResult,
};

fn noop(_: &Context) -> TaskResult<()> {
    Ok(())
}

/// A global clock: every task takes a tick when it starts and when it ends.
#[derive(Default)]
struct Ticks {
    clock: AtomicUsize,
    /// Per module: (first start tick, last end tick).
    spans: Mutex<HashMap<String, (usize, usize)>>,
}

impl Ticks {
    fn task(self: &Arc<Self>) -> impl Fn(&Context) -> TaskResult<()> + Send + Sync + 'static {
        let ticks = self.clone();
        move |ctx| {
            let start = ticks.clock.fetch_add(1, SeqCst);
            std::thread::yield_now();
            let end = ticks.clock.fetch_add(1, SeqCst);
            let mut spans = ticks.spans.lock().unwrap();
            let span = spans
                .entry(ctx.module().to_owned())
                .or_insert((usize::MAX, 0));
            span.0 = span.0.min(start);
            span.1 = span.1.max(end);
            Ok(())
        }
    }
}

#[test]
fn no_module_starts_before_all_its_dependencies_finished() {
    let ticks = Arc::new(Ticks::default());
    // A diamond with a tail and a shortcut: d needs b and c, which need a; e needs d and a.
    let edges: &[(&str, &[&str])] = &[
        ("a", &[]),
        ("b", &["a"]),
        ("c", &["a"]),
        ("d", &["b", "c"]),
        ("e", &["d", "a"]),
        ("f", &[]),
    ];
    let mut dag = Dag::new();
    for &(name, deps) in edges {
        let tasks = (0..6).map(|_| ticks.task());
        dag.module(name, 3, tasks).unwrap().after(deps).unwrap();
    }
    for _ in 0..20 {
        ticks.spans.lock().unwrap().clear();
        let report = dag.run(&Pool::new(4)).unwrap();
        assert!(report.is_success(), "{report}");
        let spans = ticks.spans.lock().unwrap();
        for &(name, deps) in edges {
            for dep in deps {
                assert!(
                    spans[*dep].1 < spans[name].0,
                    "{name} started (tick {}) before {dep} ended (tick {})",
                    spans[name].0,
                    spans[*dep].1
                );
                // The report agrees: handed to the pool after its dependency's last task.
                let (m, d) = (report.module(name).unwrap(), report.module(dep).unwrap());
                assert!(d.end().unwrap() <= m.start().unwrap());
            }
        }
    }
}

#[test]
fn independent_modules_run_at_the_same_time() {
    // Each module's only task waits for the other's: this finishes only if both run at once.
    let barrier = Arc::new(Barrier::new(2));
    let mut dag = Dag::new();
    for name in ["left", "right"] {
        let barrier = barrier.clone();
        dag.module(name, 1, [move |_: &Context| Ok(barrier.wait().is_leader())])
            .unwrap();
    }
    let report = dag.run(&Pool::new(2)).unwrap();
    let leaders: usize = ["left", "right"]
        .iter()
        .map(|m| report.output::<bool>(m).unwrap()[0] as usize)
        .sum();
    assert_eq!(leaders, 1);
}

#[test]
fn a_module_starts_when_its_own_dependencies_end_not_a_whole_level() {
    // `slow` and `first` have no dependencies; `second` needs only `first`. `slow` waits until
    // `second` has run: with level-by-level scheduling, `second` would wait for `slow`.
    let second_ran = Arc::new(Latch::default());
    let mut dag = Dag::new();
    let seen = second_ran.clone();
    dag.module("slow", 1, [move |_: &Context| Ok(seen.wait())])
        .unwrap();
    dag.module("first", 1, [noop]).unwrap();
    let opener = second_ran.clone();
    dag.module(
        "second",
        1,
        [move |_: &Context| {
            opener.open();
            Ok(())
        }],
    )
    .unwrap()
    .after(["first"])
    .unwrap();
    let report = dag.run(&Pool::new(2)).unwrap();
    assert_eq!(report.output::<bool>("slow").unwrap(), [true]);
}

/// Tasks that count how many of their module run at once (and how many of all modules), and
/// wait at a barrier of the module's cap so the cap is reached, not only respected.
fn capped_module(
    dag: &mut Dag,
    name: &str,
    cap: usize,
    tasks: usize,
    overall: &Arc<(AtomicUsize, AtomicUsize)>,
) -> Arc<(AtomicUsize, AtomicUsize)> {
    let mine = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let barrier = Arc::new(Barrier::new(cap));
    let work = (0..tasks).map(|_| {
        let (mine, overall, barrier) = (mine.clone(), overall.clone(), barrier.clone());
        move |_: &Context| {
            let (active, peak) = &*mine;
            peak.fetch_max(active.fetch_add(1, SeqCst) + 1, SeqCst);
            overall
                .1
                .fetch_max(overall.0.fetch_add(1, SeqCst) + 1, SeqCst);
            barrier.wait();
            overall.0.fetch_sub(1, SeqCst);
            active.fetch_sub(1, SeqCst);
            Ok(())
        }
    });
    dag.module(name, cap, work).unwrap();
    mine
}

#[test]
fn each_module_reaches_its_cap_and_never_exceeds_it() {
    let overall = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let mut dag = Dag::new();
    // Caps add up to the pool's 6 threads, so every module can hold its cap at once.
    let caps = [("one", 1), ("two", 2), ("three", 3)];
    let peaks: Vec<_> = caps
        .iter()
        .map(|&(name, cap)| capped_module(&mut dag, name, cap, 4 * cap, &overall))
        .collect();
    let gather = capped_module(&mut dag, "after-all", 2, 6, &overall);
    dag.after("after-all", ["one", "two", "three"]).unwrap();
    let report = dag.run(&Pool::new(6)).unwrap();
    assert!(report.is_success(), "{report}");
    for ((name, cap), peak) in caps.iter().zip(&peaks) {
        assert_eq!(peak.1.load(SeqCst), *cap, "{name}");
        assert_eq!(report.module(name).unwrap().peak_running(), *cap, "{name}");
    }
    assert_eq!(gather.1.load(SeqCst), 2);
    assert!(overall.1.load(SeqCst) <= 6);
}

#[test]
fn the_pool_bound_holds_across_modules() {
    // Caps add up to 12 on a pool of 3: no more than 3 tasks ever run at once.
    let overall = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let mut dag = Dag::new();
    let mut peaks = Vec::new();
    for (i, cap) in [3, 3, 3, 3].into_iter().enumerate() {
        let mine = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let work = (0..30).map(|_| {
            let (mine, overall) = (mine.clone(), overall.clone());
            move |_: &Context| {
                mine.1.fetch_max(mine.0.fetch_add(1, SeqCst) + 1, SeqCst);
                overall
                    .1
                    .fetch_max(overall.0.fetch_add(1, SeqCst) + 1, SeqCst);
                std::thread::yield_now();
                overall.0.fetch_sub(1, SeqCst);
                mine.0.fetch_sub(1, SeqCst);
                Ok(())
            }
        });
        dag.module(format!("m{i}"), cap, work).unwrap();
        peaks.push(mine);
    }
    let report = dag.run(&Pool::new(3)).unwrap();
    assert!(report.is_success());
    assert!(overall.1.load(SeqCst) <= 3);
    for (peak, line) in peaks.iter().zip(report.modules()) {
        assert!(peak.1.load(SeqCst) <= 3);
        assert!(line.peak_running() <= 3);
    }
}

fn chain(dag: &mut Dag, edges: &[(&str, &str)]) {
    for &(name, dep) in edges {
        if dag.dependencies(name).is_none() {
            dag.module(name, 1, [noop]).unwrap();
        }
        dag.after(name, [dep]).unwrap();
    }
}

fn cycle_of(err: DagError) -> Vec<String> {
    match err {
        DagError::Cycle { path } => path,
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn cycles_are_named_in_order() {
    // Length 1: refused as soon as it is declared.
    let mut dag = Dag::new();
    let err = dag
        .module("a", 1, [noop])
        .unwrap()
        .after(["a"])
        .unwrap_err();
    assert_eq!(err, DagError::SelfDependency { module: "a".into() });
    assert!(err.to_string().contains("(a -> a)"));
    assert_eq!(dag.dependencies("a"), Some(vec![]));

    // Length 2.
    let mut dag = Dag::new();
    chain(&mut dag, &[("a", "b"), ("b", "a")]);
    assert_eq!(cycle_of(dag.validate().unwrap_err()), ["a", "b", "a"]);

    // Length 5, reached from a module outside it, declared out of order.
    let mut dag = Dag::new();
    for name in ["entry", "v", "w", "x", "y", "z"] {
        dag.module(name, 1, [noop]).unwrap();
    }
    chain(
        &mut dag,
        &[
            ("entry", "x"),
            ("x", "y"),
            ("y", "z"),
            ("z", "v"),
            ("v", "w"),
            ("w", "x"),
        ],
    );
    let err = dag.validate().unwrap_err();
    assert_eq!(cycle_of(err.clone()), ["v", "w", "x", "y", "z", "v"]);
    assert!(
        err.to_string().contains("v -> w -> x -> y -> z -> v"),
        "{err}"
    );
    // `run` refuses it too, before running anything.
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    dag.module(
        "free",
        1,
        [move |_: &Context| Ok(counter.fetch_add(1, SeqCst))],
    )
    .unwrap();
    assert!(matches!(
        dag.run(&Pool::new(1)),
        Err(DagError::Cycle { .. })
    ));
    assert_eq!(ran.load(SeqCst), 0);
}

#[test]
fn every_other_mistake_is_a_clear_error() {
    let mut dag = Dag::new();
    dag.module("a", 2, [noop]).unwrap();
    assert_eq!(
        dag.module("a", 1, [noop]).unwrap_err(),
        DagError::DuplicateModule { name: "a".into() }
    );
    assert_eq!(
        dag.module("b", 0, [noop]).unwrap_err(),
        DagError::ZeroCap { module: "b".into() }
    );
    assert_eq!(
        dag.after("nobody", ["a"]).unwrap_err(),
        DagError::UnknownModule {
            name: "nobody".into()
        }
    );
    assert_eq!(dag.len(), 1);
    dag.module("c", 1, [noop])
        .unwrap()
        .after(["a", "missing"])
        .unwrap();
    let err = dag.run(&Pool::new(1)).unwrap_err();
    assert_eq!(
        err,
        DagError::UnknownDependency {
            module: "c".into(),
            dependency: "missing".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "module `c` depends on `missing`, but no module has that name"
    );
    // Naming a dependency twice adds it once.
    dag.after("c", ["a", "a"]).unwrap();
    assert_eq!(dag.dependencies("c"), Some(vec!["a", "missing"]));
}

/// Runs a graph where `broken` fails, and checks that exactly its transitive dependents are
/// skipped and everything else ran every task.
#[test]
fn a_failure_skips_exactly_its_transitive_dependents() {
    let ran: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let edges: &[(&str, &[&str])] = &[
        ("root", &[]),
        ("broken", &["root"]),
        ("panics", &[]),
        ("child", &["broken"]),
        ("grandchild", &["child", "root"]),
        ("mixed", &["grandchild", "fine"]),
        ("fine", &["root"]),
        ("fine-child", &["fine"]),
        ("after-panic", &["panics", "fine"]),
    ];
    let mut dag = Dag::new();
    for &(name, deps) in edges {
        let tasks = (0..3).map(|task| {
            let ran = ran.clone();
            move |ctx: &Context| -> TaskResult<()> {
                *ran.lock()
                    .unwrap()
                    .entry(ctx.module().to_owned())
                    .or_default() += 1;
                match (ctx.module(), task) {
                    ("broken", 1) => Err("disk full".into()),
                    ("panics", 2) => panic!("out of cheese"),
                    _ => Ok(()),
                }
            }
        });
        dag.module(name, 2, tasks).unwrap().after(deps).unwrap();
    }
    let report = dag.run(&Pool::new(3)).unwrap();
    assert!(!report.is_success());

    let skipped_by = |failed: &str| {
        ModuleState::Skipped(SkipReason::DependencyFailed {
            failed: failed.into(),
        })
    };
    for name in ["child", "grandchild", "mixed"] {
        assert_eq!(
            report.module(name).unwrap().state(),
            &skipped_by("broken"),
            "{name}"
        );
        assert_eq!(report.module(name).unwrap().start(), None);
    }
    assert_eq!(
        report.module("after-panic").unwrap().state(),
        &skipped_by("panics")
    );
    for name in ["root", "fine", "fine-child"] {
        assert!(report.module(name).unwrap().state().is_done(), "{name}");
    }
    let ModuleState::Failed(failures) = report.module("broken").unwrap().state() else {
        panic!("broken did not fail");
    };
    assert!(matches!(
        &failures[..],
        [Failure::TaskError { task: 1, .. }]
    ));
    assert_eq!(
        failures[0].to_string(),
        "task 1 returned an error: disk full"
    );
    let ModuleState::Failed(failures) = report.module("panics").unwrap().state() else {
        panic!("panics did not fail");
    };
    assert_eq!(failures[0].to_string(), "task 2 panicked: out of cheese");
    assert_eq!(report.failed().count(), 2);

    // Every task of every module that was not skipped ran, once; no skipped module ran.
    let ran = ran.lock().unwrap();
    for &(name, _) in edges {
        let expected = if report.module(name).unwrap().state().is_skipped() {
            0
        } else {
            3
        };
        assert_eq!(ran.get(name).copied().unwrap_or(0), expected, "{name}");
    }
}

#[test]
fn fail_fast_cancels_what_has_not_started() {
    let (running_started, bad_failed) = (Arc::new(Latch::default()), Arc::new(Latch::default()));
    let mut dag = Dag::new();
    let started = running_started.clone();
    dag.module(
        "bad",
        1,
        [move |_: &Context| -> TaskResult<()> {
            assert!(started.wait());
            Err("broken".into())
        }],
    )
    .unwrap();
    dag.module("after-bad", 1, [noop])
        .unwrap()
        .after(["bad"])
        .unwrap();
    // `running` is running when `bad` fails, and finishes its task.
    let (started, failed) = (running_started.clone(), bad_failed.clone());
    dag.module(
        "running",
        1,
        [move |_: &Context| {
            started.open();
            Ok(failed.wait())
        }],
    )
    .unwrap();
    dag.module("after-running", 1, [noop])
        .unwrap()
        .after(["running"])
        .unwrap();
    let opener = bad_failed.clone();
    let options = RunOptions::new()
        .failure_mode(FailureMode::FailFast)
        .on_event(move |event: &Event<'_>| {
            if event.module == "bad" && event.state.is_some_and(ModuleState::is_failed) {
                opener.open();
            }
        });
    let report = dag.run_with(&Pool::new(2), options).unwrap();
    assert!(report.module("bad").unwrap().state().is_failed());
    assert_eq!(
        report.module("after-bad").unwrap().state(),
        &ModuleState::Skipped(SkipReason::DependencyFailed {
            failed: "bad".into()
        })
    );
    assert_eq!(report.output::<bool>("running").unwrap(), [true]);
    assert!(report.module("running").unwrap().state().is_done());
    assert!(report
        .module("after-running")
        .unwrap()
        .state()
        .is_cancelled());
    assert_eq!(report.module("after-running").unwrap().start(), None);

    // Without fail-fast, the same graph runs `after-running`.
    let report = dag.run(&Pool::new(2)).unwrap();
    assert!(report.module("after-running").unwrap().state().is_done());
}

#[test]
fn fail_fast_cancels_the_pending_tasks_of_running_modules() {
    // `long` has 200 tasks, one at a time; `bad` fails once the first has started, and the first
    // waits until `bad` has failed. Whatever
    // ran before the cancel reached it ran once; no task ran after `long` was reported
    // cancelled, and `long` is reported done only if every task ran.
    let (long_started, bad_failed) = (Arc::new(Latch::default()), Arc::new(Latch::default()));
    let ran = Arc::new(AtomicUsize::new(0));
    let mut dag = Dag::new();
    let started = long_started.clone();
    dag.module(
        "bad",
        1,
        [move |_: &Context| -> TaskResult<()> {
            assert!(started.wait());
            Err("broken".into())
        }],
    )
    .unwrap();
    let tasks = (0..200).map(|task| {
        let (started, failed, ran) = (long_started.clone(), bad_failed.clone(), ran.clone());
        move |_: &Context| {
            if task == 0 {
                started.open();
                assert!(failed.wait());
            }
            ran.fetch_add(1, SeqCst);
            Ok(())
        }
    });
    dag.module("long", 1, tasks).unwrap();
    let opener = bad_failed.clone();
    let options = RunOptions::new()
        .failure_mode(FailureMode::FailFast)
        .on_event(move |event: &Event<'_>| {
            if event.state.is_some_and(ModuleState::is_failed) {
                opener.open();
            }
        });
    let report = dag.run_with(&Pool::new(2), options).unwrap();
    let ran = ran.load(SeqCst);
    let long = report.module("long").unwrap();
    assert!(ran >= 1);
    match long.state() {
        ModuleState::Cancelled => assert!(ran < 200),
        ModuleState::Done => assert_eq!(ran, 200),
        other => panic!("long ended {other:?}"),
    }
}

#[test]
fn outputs_flow_along_edges_typed() {
    let mut dag = Dag::new();
    dag.module(
        "users",
        2,
        (0..3).map(|i| move |_: &Context| Ok(format!("user{i}"))),
    )
    .unwrap();
    dag.module(
        "orders",
        2,
        (0..4).map(|i| move |_: &Context| Ok(i * 100_u64)),
    )
    .unwrap();
    dag.module(
        "report",
        1,
        [|ctx: &Context| {
            let users = ctx.output::<String>("users")?;
            let total: u64 = ctx.output::<u64>("orders")?.iter().sum();
            Ok(format!("{} -> {total}", users.join(",")))
        }],
    )
    .unwrap()
    .after(["users", "orders"])
    .unwrap();
    let report = dag.run(&Pool::new(3)).unwrap();
    assert_eq!(
        report.output::<String>("report").unwrap(),
        ["user0,user1,user2 -> 600"]
    );
    assert_eq!(report.output::<u64>("orders").unwrap(), [0, 100, 200, 300]);
}

#[test]
fn misused_outputs_are_clear_errors_not_panics() {
    let mut dag = Dag::new();
    dag.module("number", 1, [|_: &Context| Ok(7_u32)]).unwrap();
    dag.module("other", 1, [|_: &Context| Ok(8_u32)]).unwrap();
    dag.module(
        "wrong-type",
        1,
        [|ctx: &Context| Ok(ctx.output::<String>("number")?.len())],
    )
    .unwrap()
    .after(["number"])
    .unwrap();
    dag.module(
        "not-a-dep",
        1,
        [|ctx: &Context| Ok(ctx.output::<u32>("other")?[0])],
    )
    .unwrap()
    .after(["number"])
    .unwrap();
    let checks = |ctx: &Context| -> TaskResult<()> {
        assert_eq!(
            ctx.output::<String>("number").unwrap_err(),
            OutputError::WrongType {
                module: "number".into(),
                requested: std::any::type_name::<String>(),
                actual: std::any::type_name::<u32>(),
            }
        );
        assert_eq!(
            ctx.output::<u32>("nowhere").unwrap_err(),
            OutputError::NotADependency {
                module: "checks".into(),
                requested: "nowhere".into()
            }
        );
        assert!(ctx.skipped("other").is_err());
        assert!(!ctx.skipped("number")?);
        Ok(())
    };
    dag.module("checks", 1, [checks])
        .unwrap()
        .after(["number"])
        .unwrap();
    let report = dag.run(&Pool::new(2)).unwrap();
    assert!(report.module("checks").unwrap().state().is_done());
    let wrong = report.module("wrong-type").unwrap().state().to_string();
    assert!(
        wrong.contains("the tasks of `number` produce `u32`, not `alloc::string::String`"),
        "{wrong}"
    );
    let not_dep = report.module("not-a-dep").unwrap().state().to_string();
    assert!(
        not_dep.contains("asked for the output of `other`, which is not one of its dependencies"),
        "{not_dep}"
    );
    assert!(matches!(
        report.output::<u32>("nowhere"),
        Err(OutputError::NotADependency { .. })
    ));
    assert!(matches!(
        report.output::<u32>("not-a-dep"),
        Err(OutputError::NoOutput { .. })
    ));
}

#[test]
fn skipped_modules_let_their_dependents_run_and_see_it() {
    struct User {
        linked: Vec<&'static str>,
    }
    let user = Arc::new(User {
        linked: vec!["github"],
    });
    let mut dag = Dag::new();
    dag.module("profile", 1, [|_: &Context| Ok(2_u32)]).unwrap();
    let networks = ["github", "gitlab", "bitbucket"];
    for network in networks {
        let user = user.clone();
        dag.module(
            network,
            2,
            (0..2).map(|_| |ctx: &Context| Ok(ctx.output::<u32>("profile")?[0])),
        )
        .unwrap()
        .after(["profile"])
        .unwrap()
        // The condition sees the dependencies' outputs too.
        .skip_if(move |ctx| {
            !user.linked.contains(&network) || ctx.output::<u32>("profile").unwrap()[0] == 0
        });
    }
    dag.module(
        "summary",
        1,
        [move |ctx: &Context| {
            let mut fetched = Vec::new();
            for network in networks {
                if !ctx.skipped(network)? {
                    fetched.push(format!("{network}:{}", ctx.output::<u32>(network)?.len()));
                }
            }
            Ok(fetched.join(" "))
        }],
    )
    .unwrap()
    .after(networks)
    .unwrap();
    let report = dag.run(&Pool::new(2)).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.output::<String>("summary").unwrap(), ["github:2"]);
    for skipped in ["gitlab", "bitbucket"] {
        let line = report.module(skipped).unwrap();
        assert_eq!(line.state(), &ModuleState::Skipped(SkipReason::Condition));
        assert_eq!((line.start(), line.peak_running()), (None, 0));
    }
}

#[test]
fn a_panicking_condition_fails_its_module() {
    let mut dag = Dag::new();
    dag.module("odd", 1, [noop])
        .unwrap()
        .skip_if(|_| panic!("cannot decide"));
    dag.module("after-odd", 1, [noop])
        .unwrap()
        .after(["odd"])
        .unwrap();
    let report = dag.run(&Pool::new(1)).unwrap();
    assert_eq!(
        report.module("odd").unwrap().state().to_string(),
        "failed: the skip condition panicked: cannot decide"
    );
    assert!(report.module("after-odd").unwrap().state().is_skipped());
}

/// A group with sub-groups, as in an organisation's tree of teams.
struct Group {
    members: usize,
    subgroups: Vec<Arc<Group>>,
}

fn tree(depth: usize, fan_out: usize) -> Arc<Group> {
    Arc::new(Group {
        members: depth + 1,
        subgroups: if depth == 0 {
            Vec::new()
        } else {
            (0..fan_out).map(|_| tree(depth - 1, fan_out)).collect()
        },
    })
}

/// Counts the members of `group` and its sub-groups, one sub-job per level.
fn count_members(pool: &Pool, group: &Arc<Group>) -> usize {
    let children = group.subgroups.iter().map(|sub| {
        let (pool, sub) = (pool.clone(), sub.clone());
        move || count_members(&pool, &sub)
    });
    let below: usize = pool.submit(children, 2).wait().unwrap().iter().sum();
    group.members + below
}

#[test]
fn modules_expand_recursively_into_nested_jobs() {
    let root = tree(4, 3);
    // 3^4 leaves of 1 member, 3^3 groups of 2, ... 1 group of 5.
    let expected: usize = (0..=4)
        .map(|depth| 3_usize.pow(4 - depth) * (depth as usize + 1))
        .sum();
    for threads in [1, 2] {
        let mut dag = Dag::new();
        let roots = root.subgroups.clone();
        dag.module(
            "groups",
            2,
            roots
                .into_iter()
                .map(|group| move |ctx: &Context| Ok(count_members(ctx.pool(), &group))),
        )
        .unwrap();
        let top = root.members;
        dag.module(
            "total",
            1,
            [move |ctx: &Context| Ok(top + ctx.output::<usize>("groups")?.iter().sum::<usize>())],
        )
        .unwrap()
        .after(["groups"])
        .unwrap();
        let report = dag.run(&Pool::new(threads)).unwrap();
        assert_eq!(
            report.output::<usize>("total").unwrap(),
            [expected],
            "{threads} threads"
        );
    }
}

#[test]
fn the_same_graph_runs_again() {
    let ran = Arc::new(AtomicUsize::new(0));
    let mut dag = Dag::new();
    let counter = ran.clone();
    dag.module(
        "count",
        2,
        (0..5).map(move |i| {
            let counter = counter.clone();
            move |_: &Context| {
                counter.fetch_add(1, SeqCst);
                Ok(i)
            }
        }),
    )
    .unwrap();
    dag.module(
        "sum",
        1,
        [|ctx: &Context| Ok(ctx.output::<i32>("count")?.iter().sum::<i32>())],
    )
    .unwrap()
    .after(["count"])
    .unwrap();
    let pool = Pool::new(2);
    for run in 1..=3 {
        let report = dag.run(&pool).unwrap();
        assert_eq!(report.output::<i32>("sum").unwrap(), [10]);
        assert_eq!(ran.load(SeqCst), 5 * run);
    }
}

/// Counts its drops.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn tasks_and_outputs_are_dropped_once_and_not_leaked() {
    let task_drops = Arc::new(AtomicUsize::new(0));
    let output_drops = Arc::new(AtomicUsize::new(0));
    let mut dag = Dag::new();
    let tasks = (0..4).map(|_| {
        let held = DropCount(task_drops.clone());
        let output_drops = output_drops.clone();
        move |_: &Context| {
            let _ = &held;
            Ok(DropCount(output_drops.clone()))
        }
    });
    dag.module("make", 2, tasks).unwrap();
    dag.module(
        "read",
        2,
        (0..3).map(|_| |ctx: &Context| Ok(ctx.output::<DropCount>("make")?.len())),
    )
    .unwrap()
    .after(["make"])
    .unwrap();
    let pool = Pool::new(2);
    for _ in 0..2 {
        let report = dag.run(&pool).unwrap();
        assert_eq!(report.output::<usize>("read").unwrap(), [4, 4, 4]);
        assert_eq!(task_drops.load(SeqCst), 0);
        drop(report);
    }
    // Each run's 4 outputs were dropped with its report, and nothing else holds them.
    assert_eq!(output_drops.load(SeqCst), 8);
    drop(dag);
    assert_eq!(task_drops.load(SeqCst), 4);
}

#[test]
fn the_report_has_every_module_state_time_size_and_peak() {
    let mut dag = Dag::new();
    let barrier = Arc::new(Barrier::new(2));
    let wide = (0..4).map(|_| {
        let barrier = barrier.clone();
        move |_: &Context| {
            barrier.wait();
            Ok(())
        }
    });
    dag.module("wide", 2, wide).unwrap();
    dag.module("narrow", 1, [noop, noop])
        .unwrap()
        .after(["wide"])
        .unwrap();
    dag.module("empty", 3, Vec::<fn(&Context) -> TaskResult<()>>::new())
        .unwrap()
        .after(["narrow"])
        .unwrap();
    let report = dag.run(&Pool::new(2)).unwrap();
    let names: Vec<_> = report.modules().iter().map(|m| m.name()).collect();
    assert_eq!(names, ["wide", "narrow", "empty"]);
    let wide = report.module("wide").unwrap();
    assert_eq!((wide.tasks(), wide.cap(), wide.peak_running()), (4, 2, 2));
    let narrow = report.module("narrow").unwrap();
    assert_eq!((narrow.tasks(), narrow.peak_running()), (2, 1));
    let empty = report.module("empty").unwrap();
    assert!(empty.state().is_done());
    assert_eq!((empty.tasks(), empty.peak_running()), (0, 0));
    assert!(wide.end().unwrap() <= narrow.start().unwrap());
    assert!(narrow.end().unwrap() <= empty.start().unwrap());
    assert!(empty.end().unwrap() <= report.elapsed());
    let table = report.to_string();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("wide") && l.contains("2/2") && l.ends_with("done")),
        "{table}"
    );
}

#[test]
fn events_come_in_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut dag = Dag::new();
    dag.module("a", 1, [noop]).unwrap();
    dag.module("b", 1, [noop]).unwrap().after(["a"]).unwrap();
    dag.module("c", 1, [noop])
        .unwrap()
        .after(["b"])
        .unwrap()
        .skip_if(|_| true);
    let seen = log.clone();
    let options = RunOptions::new().on_event(move |event: &Event<'_>| {
        let what = event
            .state
            .map_or("started".to_owned(), ToString::to_string);
        seen.lock()
            .unwrap()
            .push(format!("{} {what}", event.module));
    });
    dag.run_with(&Pool::new(2), options).unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "a started",
            "a done",
            "b started",
            "b done",
            "c skipped by its condition"
        ]
    );
}

#[test]
fn empty_graphs_and_long_chains_of_empty_modules_run() {
    let report = Dag::new().run(&Pool::new(1)).unwrap();
    assert!(report.is_success() && report.modules().is_empty());

    // Modules of no tasks end inside their own submission: no recursion, however long.
    let mut dag = Dag::new();
    let none = || Vec::<fn(&Context) -> TaskResult<()>>::new();
    dag.module("m0", 1, none()).unwrap();
    for i in 1..20_000 {
        dag.module(format!("m{i}"), 1, none())
            .unwrap()
            .after([format!("m{}", i - 1)])
            .unwrap();
    }
    let report = dag.run(&Pool::new(2)).unwrap();
    assert!(report.is_success());
}

#[test]
fn a_shut_down_pool_cancels_the_modules() {
    let pool = Pool::new(1);
    pool.shutdown();
    let mut dag = Dag::new();
    dag.module("a", 1, [noop]).unwrap();
    dag.module("b", 1, [noop]).unwrap().after(["a"]).unwrap();
    let report = dag.run(&pool).unwrap();
    assert!(
        report.modules().iter().all(|m| m.state().is_cancelled()),
        "{report}"
    );
}

#[test]
fn dot_export_shows_edges_and_states() {
    let mut dag = Dag::new();
    dag.module("compile \"hello\"", 2, [noop]).unwrap();
    dag.module(
        "fails",
        1,
        [|_: &Context| -> TaskResult<()> { Err("nope".into()) }],
    )
    .unwrap();
    dag.module("link", 1, [noop])
        .unwrap()
        .after(["compile \"hello\"", "fails"])
        .unwrap();
    let plain = dag.to_dot(None);
    assert!(
        plain.contains("\"compile \\\"hello\\\"\" -> \"link\";"),
        "{plain}"
    );
    assert!(plain.contains("\"fails\" -> \"link\";"));
    assert!(!plain.contains("fillcolor=palegreen"));
    let report = dag.run(&Pool::new(2)).unwrap();
    let coloured = dag.to_dot(Some(&report));
    assert!(coloured.contains("fillcolor=palegreen"));
    assert!(coloured.contains("fillcolor=salmon"));
    assert!(coloured.contains("fillcolor=lightgrey"));
    assert!(
        coloured.contains("skipped because `fails` failed"),
        "{coloured}"
    );
}

#[test]
fn a_task_can_block_on_a_channel_fed_by_another_module() {
    // Two modules talk through a channel while both run: the graph does not serialise them.
    let (tx, rx) = mpsc::channel::<u32>();
    let rx = Arc::new(Mutex::new(rx));
    let mut dag = Dag::new();
    dag.module("producer", 1, [move |_: &Context| Ok(tx.send(5).is_ok())])
        .unwrap();
    dag.module(
        "consumer",
        1,
        [move |_: &Context| Ok(rx.lock().unwrap().recv_timeout(HANG)?)],
    )
    .unwrap();
    let report = dag.run(&Pool::new(2)).unwrap();
    assert_eq!(report.output::<u32>("consumer").unwrap(), [5]);
}

/// Runs `body` on a thread of its own and fails if it does not return within `HANG`.
fn within_hang_limit<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(body()).unwrap());
    rx.recv_timeout(HANG)
        .expect("the graph never finished: a deadlock")
}

/// A diamond a -> (b, c) -> d whose modules each sum their inputs plus one.
fn diamond() -> Dag {
    let mut dag = Dag::new();
    dag.module("a", 1, [|_: &Context| -> TaskResult<u32> { Ok(1) }])
        .unwrap();
    for name in ["b", "c"] {
        dag.module(
            name,
            1,
            [|ctx: &Context| -> TaskResult<u32> { Ok(ctx.output::<u32>("a")?[0] + 1) }],
        )
        .unwrap()
        .after(["a"])
        .unwrap();
    }
    dag.module(
        "d",
        1,
        [|ctx: &Context| -> TaskResult<u32> {
            Ok(ctx.output::<u32>("b")?[0] + ctx.output::<u32>("c")?[0] + 1)
        }],
    )
    .unwrap()
    .after(["b", "c"])
    .unwrap();
    dag
}

/// A task of a one-thread pool runs a whole graph on that pool: the worker runs the graph's
/// jobs itself while it waits, instead of blocking the only thread.
#[test]
fn a_graph_run_from_a_task_of_a_one_thread_pool_finishes() {
    let d = within_hang_limit(|| {
        let pool = Pool::new(1);
        let inner = pool.clone();
        let job = pool.submit(
            vec![move || {
                let report = diamond().run(&inner).unwrap();
                report.output::<u32>("d").unwrap()[0]
            }],
            1,
        );
        job.wait().unwrap()[0]
    });
    assert_eq!(d, 5);
}

/// Every worker of the pool runs a graph of its own at once, and a module's task runs a graph
/// in turn: each waiting worker keeps its graph going.
#[test]
fn graphs_nested_in_every_worker_and_in_modules_finish() {
    let results = within_hang_limit(|| {
        let pool = Pool::new(2);
        let tasks = (0..4).map(|_| {
            let pool = pool.clone();
            move || {
                let mut outer = Dag::new();
                let inner_pool = pool.clone();
                outer
                    .module(
                        "expand",
                        2,
                        (0..2).map(move |_| {
                            let pool = inner_pool.clone();
                            move |_: &Context| -> TaskResult<u32> {
                                let report = diamond().run(&pool)?;
                                Ok(report.output::<u32>("d")?[0])
                            }
                        }),
                    )
                    .unwrap();
                let report = outer.run(&pool).unwrap();
                report.output::<u32>("expand").unwrap().iter().sum::<u32>()
            }
        });
        pool.submit(tasks, 4).wait().unwrap()
    });
    assert_eq!(results, vec![10; 4]);
}
