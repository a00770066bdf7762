//! Property tests of the dependency graph: random acyclic graphs run with every dependency
//! respected and every task run exactly once; the same graphs with a back edge are refused
//! with a cycle that really is one; a run of some targets runs exactly what they need.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use jobpool::{Context, Dag, DagError, ModuleState, Pool, SkipReason};
use proptest::prelude::*;
use proptest::sample::Index;

/// A random graph: per module, its cap, its task count and its dependencies, each an earlier
/// module (so the graph is acyclic).
#[derive(Debug, Clone)]
struct Spec {
    modules: Vec<(usize, usize, Vec<usize>)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    prop::collection::vec(
        (
            1..=4usize,
            0..=4usize,
            prop::collection::vec(any::<Index>(), 0..4),
        ),
        1..=50,
    )
    .prop_map(|raw| {
        let modules = raw
            .into_iter()
            .enumerate()
            .map(|(j, (cap, tasks, deps))| {
                let mut deps: Vec<usize> = if j == 0 {
                    Vec::new()
                } else {
                    deps.iter().map(|d| d.index(j)).collect()
                };
                deps.sort_unstable();
                deps.dedup();
                (cap, tasks, deps)
            })
            .collect();
        Spec { modules }
    })
}

fn name(i: usize) -> String {
    format!("m{i}")
}

/// Per task: how many times it ran, and its start and end tick on a global clock.
struct Record {
    clock: AtomicUsize,
    runs: Vec<Vec<AtomicUsize>>,
    spans: Mutex<Vec<(usize, usize)>>,
}

fn build(spec: &Spec, record: &Arc<Record>) -> Dag {
    let mut dag = Dag::new();
    for (i, (cap, tasks, deps)) in spec.modules.iter().enumerate() {
        let work = (0..*tasks).map(|task| {
            let record = record.clone();
            move |_: &Context| {
                let start = record.clock.fetch_add(1, SeqCst);
                record.runs[i][task].fetch_add(1, SeqCst);
                let end = record.clock.fetch_add(1, SeqCst);
                let mut spans = record.spans.lock().unwrap();
                spans[i].0 = spans[i].0.min(start);
                spans[i].1 = spans[i].1.max(end);
                Ok(())
            }
        });
        dag.module(name(i), *cap, work)
            .unwrap()
            .after(deps.iter().map(|&d| name(d)))
            .unwrap();
    }
    dag
}

/// The modules that depend on `from`, directly or not (including `from`).
fn dependents_of(spec: &Spec, from: usize) -> HashSet<usize> {
    let mut reached = HashSet::from([from]);
    for (j, (_, _, deps)) in spec.modules.iter().enumerate().skip(from + 1) {
        if deps.iter().any(|d| reached.contains(d)) {
            reached.insert(j);
        }
    }
    reached
}

/// The modules `targets` need, directly or not (including themselves).
fn needed_by(spec: &Spec, targets: &[usize]) -> HashSet<usize> {
    let mut needed: HashSet<usize> = targets.iter().copied().collect();
    for j in (0..spec.modules.len()).rev() {
        if needed.contains(&j) {
            needed.extend(spec.modules[j].2.iter().copied());
        }
    }
    needed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_run_of_some_targets_runs_exactly_what_they_need(
        spec in spec(),
        picks in prop::collection::vec(any::<Index>(), 1..4),
        threads in 1..=3usize,
    ) {
        let n = spec.modules.len();
        let targets: Vec<usize> = picks.iter().map(|p| p.index(n)).collect();
        let record = Arc::new(Record {
            clock: AtomicUsize::new(0),
            runs: spec.modules.iter().map(|(_, t, _)| (0..*t).map(|_| AtomicUsize::new(0)).collect()).collect(),
            spans: Mutex::new(vec![(usize::MAX, 0); n]),
        });
        let dag = build(&spec, &record);
        let options = jobpool::RunOptions::new().targets(targets.iter().map(|&t| name(t)));
        let report = dag.run_with(&Pool::new(threads), options).unwrap();
        prop_assert!(report.is_success());
        let needed = needed_by(&spec, &targets);
        for i in 0..n {
            let runs: usize = record.runs[i].iter().map(|r| r.load(SeqCst)).sum();
            let state = report.module(&name(i)).unwrap().state();
            if needed.contains(&i) {
                prop_assert_eq!(runs, spec.modules[i].1, "m{} is needed", i);
                prop_assert_eq!(state, &ModuleState::Done);
            } else {
                prop_assert_eq!(runs, 0, "m{} is not needed", i);
                prop_assert_eq!(state, &ModuleState::Skipped(SkipReason::NotNeeded));
            }
        }
    }

    #[test]
    fn random_graphs_respect_every_dependency_and_run_each_task_once(
        spec in spec(),
        threads in 1..=4usize,
    ) {
        let n = spec.modules.len();
        let record = Arc::new(Record {
            clock: AtomicUsize::new(0),
            runs: spec.modules.iter().map(|(_, t, _)| (0..*t).map(|_| AtomicUsize::new(0)).collect()).collect(),
            spans: Mutex::new(vec![(usize::MAX, 0); n]),
        });
        let dag = build(&spec, &record);
        let report = dag.run(&Pool::new(threads)).unwrap();
        prop_assert!(report.is_success());
        let spans = record.spans.lock().unwrap();
        for (i, (cap, tasks, deps)) in spec.modules.iter().enumerate() {
            for task in &record.runs[i] {
                prop_assert_eq!(task.load(SeqCst), 1);
            }
            let line = report.module(&name(i)).unwrap();
            prop_assert!(line.peak_running() <= *cap.min(&threads));
            prop_assert_eq!(line.tasks(), *tasks);
            for &d in deps {
                let dep = report.module(&name(d)).unwrap();
                prop_assert!(dep.end().unwrap() <= line.start().unwrap());
                if *tasks > 0 && spec.modules[d].1 > 0 {
                    prop_assert!(spans[d].1 < spans[i].0, "m{} started before m{} ended", i, d);
                }
            }
        }
    }

    #[test]
    fn a_back_edge_is_refused_as_a_cycle(spec in spec(), pick in any::<Index>(), far in any::<Index>()) {
        let mut spec = spec;
        if spec.modules.len() < 2 {
            spec.modules.push((1, 1, vec![0]));
        }
        if spec.modules.iter().all(|(_, _, deps)| deps.is_empty()) {
            spec.modules[1].2.push(0);
        }
        // A module with a dependent, and one of its transitive dependents.
        let with_dependents: Vec<usize> = (0..spec.modules.len())
            .filter(|&i| dependents_of(&spec, i).len() > 1)
            .collect();
        let from = with_dependents[pick.index(with_dependents.len())];
        let mut reached: Vec<usize> = dependents_of(&spec, from).into_iter().filter(|&j| j != from).collect();
        reached.sort_unstable();
        let to = reached[far.index(reached.len())];
        spec.modules[from].2.push(to); // `from` now depends on a module that depends on it

        let record = Arc::new(Record { clock: AtomicUsize::new(0), runs: spec.modules.iter().map(|(_, t, _)| (0..*t).map(|_| AtomicUsize::new(0)).collect()).collect(), spans: Mutex::new(vec![]) });
        let dag = build(&spec, &record);
        let path = match dag.validate() {
            Err(DagError::Cycle { path }) => path,
            other => return Err(TestCaseError::fail(format!("expected a cycle, got {other:?}"))),
        };
        prop_assert!(path.len() >= 3);
        prop_assert_eq!(path.first(), path.last());
        let index = |n: &str| n[1..].parse::<usize>().unwrap();
        for pair in path.windows(2) {
            let (a, b) = (index(&pair[0]), index(&pair[1]));
            prop_assert!(spec.modules[a].2.contains(&b), "{} does not depend on {}", pair[0], pair[1]);
        }
        prop_assert!(path.windows(2).any(|p| index(&p[0]) == from && index(&p[1]) == to));
    }
}
