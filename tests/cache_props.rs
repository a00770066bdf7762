#![cfg(feature = "cache")]
//! Property tests of incremental graph runs (feature `cache`): random graphs of cached modules
//! (and, in one variant, some modules that are not cached), run again and again on one cache
//! while their inputs change at random. After each change, the modules whose tasks run must be
//! exactly those a model of the cache predicts: a cached module runs when nothing is stored
//! under its fingerprint (its version, its value, its file's content and its dependencies'
//! outputs), when it is forced, or when a dependency is not cached; a module whose dependency
//! ran again and produced the same output is cut off. The reason each module gives, the plan
//! `Dag::explain` gives before the run, and every output are checked against the model too.
//!
//! Outputs are small (`% 3`), so that a module that runs again often produces the output it
//! produced before, and early cutoff happens often. The cache is content-addressed: an input
//! changed and changed back finds the entry stored the first time, so the model keeps every
//! fingerprint stored so far, not just the last one.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jobpool::{
    Cache, CacheStatus, Context, Dag, ModuleState, Plan, Pool, RunOptions, RunReason, SkipReason,
    TaskResult,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// One module of a random graph.
#[derive(Debug, Clone)]
struct ModuleSpec {
    /// Declared with `Dag::cached_module` (else with `Dag::module`).
    cached: bool,
    /// 1 or 2 tasks; task `t` adds `t` to the module's sum.
    tasks: u32,
    /// Earlier modules, in the order given to `after` (no repeats).
    deps: Vec<usize>,
    /// Whether it declares a file input (only a cached module does).
    has_file: bool,
}

/// What the modules read, and can change between runs: per module, its value, its file's
/// content (`None`: the file does not exist), its version (an index into `VERSIONS`).
#[derive(Debug, Clone)]
struct World {
    values: Vec<u32>,
    files: Vec<Option<String>>,
    versions: Vec<usize>,
}

const VERSIONS: [&str; 3] = ["", "1", "2"];

/// A change between two runs. Each `Index` picks a module among those it applies to (any
/// module for a value, those with a file for a file, cached ones for a version); with none, it
/// does nothing.
#[derive(Debug, Clone)]
enum Change {
    Value(Index, u32),
    /// Writes the file: the number, with a newline or not (same output, other content).
    Write(Index, u32, bool),
    /// Sets the file's modification time that many seconds back, content unchanged.
    Touch(Index, u64),
    /// Writes the file and sets its modification time back to what it was (as `cp -p` does):
    /// only the change time (and maybe the size) tells.
    WriteKeepingTime(Index, u32, bool),
    Remove(Index),
    Version(Index, usize),
}

/// What happens before one run: the changes, the modules forced, the targets.
#[derive(Debug, Clone)]
struct Round {
    changes: Vec<Change>,
    force: Vec<Index>,
    targets: Option<Vec<Index>>,
}

#[derive(Debug, Clone)]
struct Case {
    modules: Vec<ModuleSpec>,
    world: World,
    rounds: Vec<Round>,
}

fn name(i: usize) -> String {
    format!("m{i}")
}

fn file_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("input-{i}.txt"))
}

fn file_label(dir: &Path, i: usize) -> String {
    format!("file {}", file_path(dir, i).display())
}

fn content(n: u32, newline: bool) -> String {
    if newline {
        format!("{n}\n")
    } else {
        n.to_string()
    }
}

/// What a module's tasks add for a file's content: its number, 0 if there is no file.
fn file_number(content: Option<&str>) -> u32 {
    content.map_or(0, |c| c.trim().parse().unwrap())
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (any::<Index>(), 0..4u32).prop_map(|(i, v)| Change::Value(i, v)),
        3 => (any::<Index>(), 0..4u32, any::<bool>()).prop_map(|(i, n, nl)| Change::Write(i, n, nl)),
        1 => (any::<Index>(), 10..100_000u64).prop_map(|(i, s)| Change::Touch(i, s)),
        2 => (any::<Index>(), 0..4u32, any::<bool>())
            .prop_map(|(i, n, nl)| Change::WriteKeepingTime(i, n, nl)),
        1 => any::<Index>().prop_map(Change::Remove),
        2 => (any::<Index>(), 0..VERSIONS.len()).prop_map(|(i, v)| Change::Version(i, v)),
    ]
}

fn round() -> impl Strategy<Value = Round> {
    (
        prop::collection::vec(change(), 0..5),
        prop::option::weighted(0.2, prop::collection::vec(any::<Index>(), 1..3)),
        prop::option::weighted(0.2, prop::collection::vec(any::<Index>(), 1..3)),
    )
        .prop_map(|(changes, force, targets)| Round {
            changes,
            force: force.unwrap_or_default(),
            targets,
        })
}

/// A random case: 1 to 12 modules, each not cached with probability `uncached`, and 2 or 3
/// rounds of changes after the first run.
fn case(uncached: f64) -> impl Strategy<Value = Case> {
    let module = (
        prop::bool::weighted(uncached),
        1..=2u32,
        prop::collection::vec(any::<Index>(), 0..4),
        any::<bool>(),
        0..4u32,
        prop::option::weighted(0.85, (0..4u32, any::<bool>())),
    );
    (
        prop::collection::vec(module, 1..=12),
        prop::collection::vec(round(), 2..=3),
    )
        .prop_map(|(raw, rounds)| {
            let mut modules = Vec::new();
            let mut world = World {
                values: Vec::new(),
                files: Vec::new(),
                versions: Vec::new(),
            };
            for (i, (uncached, tasks, deps, has_file, value, file)) in raw.into_iter().enumerate() {
                let mut unique = Vec::new();
                if i > 0 {
                    for d in deps {
                        let d = d.index(i);
                        if !unique.contains(&d) {
                            unique.push(d);
                        }
                    }
                }
                let cached = !uncached;
                let has_file = cached && has_file;
                modules.push(ModuleSpec {
                    cached,
                    tasks,
                    deps: unique,
                    has_file,
                });
                world.values.push(value);
                world
                    .files
                    .push(file.filter(|_| has_file).map(|(n, nl)| content(n, nl)));
                world.versions.push(0);
            }
            Case {
                modules,
                world,
                rounds,
            }
        })
}

/// Picks a module among `candidates` with `index`.
fn pick(candidates: &[usize], index: &Index) -> Option<usize> {
    (!candidates.is_empty()).then(|| candidates[index.index(candidates.len())])
}

/// Applies `change` to the files on disk and to `world`.
fn apply(change: &Change, modules: &[ModuleSpec], world: &mut World, dir: &Path) {
    let all: Vec<usize> = (0..modules.len()).collect();
    let with_file: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| modules[i].has_file)
        .collect();
    let cached: Vec<usize> = all.iter().copied().filter(|&i| modules[i].cached).collect();
    match change {
        Change::Value(i, v) => {
            let i = pick(&all, i).unwrap();
            world.values[i] = *v;
        }
        Change::Write(i, n, nl) => {
            if let Some(i) = pick(&with_file, i) {
                let text = content(*n, *nl);
                fs::write(file_path(dir, i), &text).unwrap();
                world.files[i] = Some(text);
            }
        }
        Change::Touch(i, secs) => {
            if let Some(i) = pick(&with_file, i) {
                if world.files[i].is_some() {
                    let file = fs::File::options()
                        .write(true)
                        .open(file_path(dir, i))
                        .unwrap();
                    file.set_modified(SystemTime::now() - Duration::from_secs(*secs))
                        .unwrap();
                }
            }
        }
        Change::WriteKeepingTime(i, n, nl) => {
            if let Some(i) = pick(&with_file, i) {
                let path = file_path(dir, i);
                let before = fs::metadata(&path).and_then(|m| m.modified()).ok();
                let text = content(*n, *nl);
                fs::write(&path, &text).unwrap();
                if let Some(before) = before {
                    let file = fs::File::options().write(true).open(&path).unwrap();
                    file.set_modified(before).unwrap();
                }
                world.files[i] = Some(text);
            }
        }
        Change::Remove(i) => {
            if let Some(i) = pick(&with_file, i) {
                if world.files[i].take().is_some() {
                    fs::remove_file(file_path(dir, i)).unwrap();
                }
            }
        }
        Change::Version(i, v) => {
            if let Some(i) = pick(&cached, i) {
                world.versions[i] = *v;
            }
        }
    }
}

/// Builds the graph for `world`; `ran[i]` counts the tasks of module `i` that ran.
fn build(modules: &[ModuleSpec], world: &World, dir: &Path, ran: &Arc<Vec<AtomicUsize>>) -> Dag {
    let mut dag = Dag::new();
    for (i, module) in modules.iter().enumerate() {
        let value = world.values[i];
        let path = module.has_file.then(|| file_path(dir, i));
        let deps: Vec<String> = module.deps.iter().map(|&d| name(d)).collect();
        let tasks = (0..module.tasks).map(|task| {
            let (ran, path, deps) = (ran.clone(), path.clone(), deps.clone());
            move |ctx: &Context| -> TaskResult<u32> {
                ran[i].fetch_add(1, SeqCst);
                let mut sum = value + task;
                if let Some(path) = &path {
                    match fs::read_to_string(path) {
                        Ok(text) => sum += text.trim().parse::<u32>()?,
                        Err(err) if err.kind() == ErrorKind::NotFound => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                for dep in &deps {
                    sum += ctx.output::<u32>(dep)?.iter().sum::<u32>();
                }
                Ok(sum % 3)
            }
        });
        let declared = if module.cached {
            let declared = dag
                .cached_module(name(i), 2, tasks)
                .unwrap()
                .version(VERSIONS[world.versions[i]])
                .input_value("v", &value);
            match &path {
                Some(path) => declared.input_file(path),
                None => declared,
            }
        } else {
            dag.module(name(i), 2, tasks).unwrap()
        };
        declared.after(&deps).unwrap();
    }
    dag
}

/// What a cached module's fingerprint is made of, in the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Fingerprint {
    version: usize,
    value: u32,
    /// The file's content, if the module has a file.
    file: Option<Option<String>>,
    /// Each dependency and its output.
    deps: Vec<(usize, Vec<u32>)>,
}

/// The cache, as the model sees it.
#[derive(Default)]
struct Model {
    /// Every (module, fingerprint) stored so far.
    stored: HashSet<(usize, Fingerprint)>,
    /// Per module: its fingerprint at its last look-up that could store it (the index's record).
    records: Vec<Option<Fingerprint>>,
}

/// What the model predicts of one run.
#[derive(Debug)]
struct Expected {
    plans: Vec<Plan>,
    ran: Vec<bool>,
    statuses: Vec<CacheStatus>,
    /// `None` for a module the targets do not need.
    outputs: Vec<Option<Vec<u32>>>,
}

/// Why a module whose fingerprint `now` has no entry runs: the first difference from the last
/// one recorded, in the order the fingerprint is made (version, inputs as declared,
/// dependencies as given to `after`).
fn why_miss(previous: Option<&Fingerprint>, now: &Fingerprint, dir: &Path, i: usize) -> RunReason {
    let Some(previous) = previous else {
        return RunReason::NoEntry;
    };
    if previous == now {
        return RunReason::EntryMissing;
    }
    if previous.version != now.version {
        return RunReason::VersionChanged {
            from: VERSIONS[previous.version].to_owned(),
            to: VERSIONS[now.version].to_owned(),
        };
    }
    if previous.value != now.value {
        return RunReason::InputChanged { input: "v".into() };
    }
    if previous.file != now.file {
        return RunReason::InputChanged {
            input: file_label(dir, i),
        };
    }
    let changed = now
        .deps
        .iter()
        .zip(&previous.deps)
        .find(|(a, b)| a != b)
        .expect("two different fingerprints of one module differ somewhere");
    RunReason::DependencyChanged {
        dependency: name(changed.0 .0),
    }
}

impl Model {
    /// Predicts a run of `modules` in `world` with `force` and `needed`, and records in the
    /// model what the run stores.
    fn run(
        &mut self,
        modules: &[ModuleSpec],
        world: &World,
        dir: &Path,
        force: &HashSet<usize>,
        needed: &[bool],
    ) -> Expected {
        let n = modules.len();
        self.records.resize(n, None);
        let mut expected = Expected {
            plans: Vec::with_capacity(n),
            ran: Vec::with_capacity(n),
            statuses: Vec::with_capacity(n),
            outputs: Vec::with_capacity(n),
        };
        for (i, module) in modules.iter().enumerate() {
            if !needed[i] {
                expected.plans.push(Plan::NotNeeded);
                expected.ran.push(false);
                expected.statuses.push(CacheStatus::NotCached);
                expected.outputs.push(None);
                continue;
            }
            let deps: Vec<(usize, Vec<u32>)> = module
                .deps
                .iter()
                .map(|&d| {
                    (
                        d,
                        expected.outputs[d]
                            .clone()
                            .expect("a needed module's dependency is needed"),
                    )
                })
                .collect();
            let file = module.has_file.then(|| world.files[i].clone());
            let sum = world.values[i]
                + file_number(file.as_ref().and_then(|f| f.as_deref()))
                + deps.iter().flat_map(|(_, out)| out).sum::<u32>();
            expected
                .outputs
                .push(Some((0..module.tasks).map(|t| (sum + t) % 3).collect()));
            if !module.cached {
                expected.plans.push(Plan::NotCached);
                expected.ran.push(true);
                expected.statuses.push(CacheStatus::NotCached);
                continue;
            }
            if let Some(&d) = module.deps.iter().find(|&&d| !modules[d].cached) {
                let why = RunReason::DependencyNotCached {
                    dependency: name(d),
                };
                expected.plans.push(Plan::Run(why.clone()));
                expected.ran.push(true);
                expected.statuses.push(CacheStatus::Ran {
                    why,
                    store_error: None,
                });
                continue;
            }
            let fingerprint = Fingerprint {
                version: world.versions[i],
                value: world.values[i],
                file,
                deps,
            };
            let key = (i, fingerprint);
            let forced = force.contains(&i);
            let hit = !forced && self.stored.contains(&key);
            let why = if forced {
                RunReason::Forced
            } else {
                why_miss(self.records[i].as_ref(), &key.1, dir, i)
            };
            let pending = module
                .deps
                .iter()
                .find(|&&d| matches!(expected.plans[d], Plan::Run(_) | Plan::RunsIfChanged { .. }));
            expected.plans.push(match pending {
                Some(&d) => Plan::RunsIfChanged {
                    dependency: name(d),
                },
                None if hit => Plan::Cached,
                None => Plan::Run(why.clone()),
            });
            expected.ran.push(!hit);
            if hit {
                expected.statuses.push(CacheStatus::Hit);
            } else {
                expected.statuses.push(CacheStatus::Ran {
                    why,
                    store_error: None,
                });
            }
            self.records[i] = Some(key.1.clone());
            self.stored.insert(key);
        }
        expected
    }
}

/// Which modules `targets` need (all, without targets).
fn needed(modules: &[ModuleSpec], targets: Option<&[usize]>) -> Vec<bool> {
    let Some(targets) = targets else {
        return vec![true; modules.len()];
    };
    let mut needed = vec![false; modules.len()];
    for &t in targets {
        needed[t] = true;
    }
    for i in (0..modules.len()).rev() {
        if needed[i] {
            for &d in &modules[i].deps {
                needed[d] = true;
            }
        }
    }
    needed
}

/// Runs the case's graph once, then once after each round of changes, each time checking the
/// plan of `Dag::explain` and the run's report against the model.
fn check(case: &Case) -> Result<(), TestCaseError> {
    let Case {
        modules, rounds, ..
    } = case;
    let n = modules.len();
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    fs::create_dir(&inputs).unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let pool = Pool::new(2);
    let mut world = case.world.clone();
    // Written a day ago, as a checkout is: a file's stat record is trusted from the second run
    // on, until something changes the file (a `WriteKeepingTime` changes only its change time).
    let a_day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    for (i, file) in world.files.iter().enumerate() {
        if let Some(text) = file {
            let path = file_path(&inputs, i);
            fs::write(&path, text).unwrap();
            let file = fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(a_day_ago).unwrap();
        }
    }
    let mut model = Model::default();
    let first = Round {
        changes: Vec::new(),
        force: Vec::new(),
        targets: None,
    };
    for (round_no, round) in std::iter::once(&first).chain(rounds).enumerate() {
        for change in &round.changes {
            apply(change, modules, &mut world, &inputs);
        }
        let all: Vec<usize> = (0..n).collect();
        let force: Vec<usize> = round.force.iter().filter_map(|i| pick(&all, i)).collect();
        let targets: Option<Vec<usize>> = round
            .targets
            .as_ref()
            .map(|t| t.iter().filter_map(|i| pick(&all, i)).collect());
        let options = || {
            let mut options = RunOptions::new().cache(&cache);
            if !force.is_empty() {
                options = options.force(force.iter().map(|&i| name(i)));
            }
            if let Some(targets) = &targets {
                options = options.targets(targets.iter().map(|&i| name(i)));
            }
            options
        };
        let needed = needed(modules, targets.as_deref());
        let force_set: HashSet<usize> = force.iter().copied().collect();
        let expected = model.run(modules, &world, &inputs, &force_set, &needed);
        let context = format!("run {round_no} ({world:?}, force {force:?}, targets {targets:?})");

        let ran = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
        let dag = build(modules, &world, &inputs, &ran);

        // The plan, before the run (checked against the model after the run).
        let plan = dag.explain(&pool, options()).unwrap();
        for i in 0..n {
            prop_assert_eq!(ran[i].load(SeqCst), 0, "{}: explain ran m{}", context, i);
        }
        let planned: Vec<Plan> = (0..n)
            .map(|i| plan.get(&name(i)).unwrap().clone())
            .collect();

        let report = dag.run_with(&pool, options()).unwrap();
        prop_assert!(report.is_success(), "{}: {}", context, report);
        let actually_ran: Vec<usize> = (0..n).filter(|&i| ran[i].load(SeqCst) > 0).collect();
        let should_run: Vec<usize> = (0..n).filter(|&i| expected.ran[i]).collect();
        prop_assert_eq!(
            &actually_ran,
            &should_run,
            "{}: the modules that ran",
            context
        );
        if round_no == 0 {
            prop_assert_eq!(actually_ran.len(), n, "the first run runs every module");
        }
        for (i, module) in modules.iter().enumerate() {
            let line = report.module(&name(i)).unwrap();
            let status = line.cache_status();
            let tasks_ran = ran[i].load(SeqCst);
            prop_assert_eq!(
                tasks_ran,
                if expected.ran[i] {
                    module.tasks as usize
                } else {
                    0
                },
                "{}: tasks of m{} that ran",
                context,
                i
            );
            // What the plan says, the run does.
            match &planned[i] {
                Plan::Cached => prop_assert!(tasks_ran == 0 && status.is_hit(), "{context}: m{i}"),
                Plan::Run(_) | Plan::NotCached => prop_assert!(tasks_ran > 0, "{context}: m{i}"),
                Plan::NotNeeded => prop_assert_eq!(
                    line.state(),
                    &ModuleState::Skipped(SkipReason::NotNeeded),
                    "{}: m{}",
                    context,
                    i
                ),
                _ => {}
            }
            prop_assert_eq!(
                status.is_hit(),
                needed[i] && !expected.ran[i],
                "{}: m{}",
                context,
                i
            );
            // Each reason is one this module can have, whatever the model says.
            match status.why() {
                Some(RunReason::DependencyChanged { dependency }) => {
                    let d: usize = dependency[1..].parse().unwrap();
                    prop_assert!(
                        module.deps.contains(&d) && modules[d].cached,
                        "{context}: m{i}"
                    );
                }
                Some(RunReason::DependencyNotCached { dependency }) => {
                    let d: usize = dependency[1..].parse().unwrap();
                    prop_assert!(
                        module.deps.contains(&d) && !modules[d].cached,
                        "{context}: m{i}"
                    );
                }
                Some(RunReason::InputChanged { input }) => prop_assert!(
                    input == "v" || (module.has_file && *input == file_label(&inputs, i)),
                    "{context}: m{i}: {input}"
                ),
                Some(RunReason::Forced) => prop_assert!(force_set.contains(&i)),
                Some(RunReason::VersionChanged { to, .. }) => {
                    prop_assert_eq!(to.as_str(), VERSIONS[world.versions[i]]);
                }
                _ => {}
            }
            prop_assert_eq!(
                status,
                &expected.statuses[i],
                "{}: the status of m{}",
                context,
                i
            );
            if let Some(output) = &expected.outputs[i] {
                prop_assert!(line.state().is_done(), "{}: m{}", context, i);
                prop_assert_eq!(
                    report.output::<u32>(&name(i)).unwrap(),
                    &output[..],
                    "{}: the output of m{}",
                    context,
                    i
                );
            }
        }
        prop_assert_eq!(&planned, &expected.plans, "{}: the plan\n{}", context, plan);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn exactly_the_modules_whose_inputs_changed_run_again(case in case(0.0)) {
        check(&case)?;
    }

    #[test]
    fn with_uncached_modules_their_direct_dependents_always_run(case in case(0.2)) {
        check(&case)?;
    }
}
