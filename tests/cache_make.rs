//! The make-style hello/world build with a cache: a module re-runs exactly when its inputs, by
//! content, or its dependencies' outputs changed, and the report says why.
//!
//! ```make
//! all: hello.out world.out
//! hello.out: hello        world.out: world
//! hello: hello.o          world: world.o
//! hello.o: hello.c        world.o: world.c
//! ```
//!
//! Each "compile" drops the comment lines of its source, so a change to a comment alone gives
//! the same object (early cutoff).
#![cfg(feature = "cache")]

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use jobpool::{
    Cache, CacheStatus, Context, Dag, ModuleState, Plan, Pool, RunOptions, RunReason, RunReport,
    SkipReason, TaskResult,
};

/// A checkout of the sources, a cache, and the names of the modules whose tasks ran.
struct Build {
    _dir: tempfile::TempDir,
    src: PathBuf,
    cache: Cache,
    ran: Arc<Mutex<BTreeSet<String>>>,
    pool: Pool,
    /// The link step's version.
    link_version: &'static str,
    /// Whether the link step's output shows its version.
    link_shows_version: bool,
}

impl Build {
    fn new() -> Build {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        for word in ["hello", "world"] {
            fs::write(
                src.join(format!("{word}.c")),
                format!("// {word}\nputs {word}\n"),
            )
            .unwrap();
        }
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        Build {
            _dir: dir,
            src,
            cache,
            ran: Arc::default(),
            pool: Pool::new(3),
            link_version: "1",
            link_shows_version: false,
        }
    }

    fn source(&self, word: &str) -> PathBuf {
        self.src.join(format!("{word}.c"))
    }

    fn graph(&self) -> Dag {
        let mut dag = Dag::new();
        let ran = |name: String| {
            let ran = self.ran.clone();
            move || {
                ran.lock().unwrap().insert(name.clone());
            }
        };
        for word in ["hello", "world"] {
            let source = self.source(word);
            let note = ran(format!("{word}.o"));
            let path = source.clone();
            dag.cached_module(
                format!("{word}.o"),
                1,
                [move |_: &Context| -> TaskResult<String> {
                    note();
                    let code = fs::read_to_string(&path)?;
                    let code: Vec<&str> = code.lines().filter(|l| !l.starts_with("//")).collect();
                    Ok(format!("obj[{}]", code.join(";")))
                }],
            )
            .unwrap()
            .version("cc-1")
            .input_file(&source);

            let note = ran(word.to_owned());
            let object = format!("{word}.o");
            let shown = if self.link_shows_version {
                self.link_version
            } else {
                ""
            };
            dag.cached_module(
                word,
                1,
                [move |ctx: &Context| -> TaskResult<String> {
                    note();
                    Ok(format!("exe{shown}[{}]", ctx.output::<String>(&object)?[0]))
                }],
            )
            .unwrap()
            .after([format!("{word}.o")])
            .unwrap()
            .version(self.link_version);

            let note = ran(format!("{word}.out"));
            let program = word.to_owned();
            dag.cached_module(
                format!("{word}.out"),
                1,
                [move |ctx: &Context| -> TaskResult<String> {
                    note();
                    Ok(format!("ran {}", ctx.output::<String>(&program)?[0]))
                }],
            )
            .unwrap()
            .after([word])
            .unwrap();
        }
        let note = ran("all".to_owned());
        dag.cached_module(
            "all",
            1,
            [move |ctx: &Context| -> TaskResult<String> {
                note();
                let hello = &ctx.output::<String>("hello.out")?[0];
                let world = &ctx.output::<String>("world.out")?[0];
                Ok(format!("{hello} + {world}"))
            }],
        )
        .unwrap()
        .after(["hello.out", "world.out"])
        .unwrap();
        dag
    }

    /// Runs the graph with `options` and the cache; returns the report and the modules that ran.
    fn run_with(&self, options: RunOptions) -> (RunReport, Vec<String>) {
        self.ran.lock().unwrap().clear();
        let report = self
            .graph()
            .run_with(&self.pool, options.cache(&self.cache))
            .unwrap();
        assert!(report.is_success(), "{report}");
        let ran: Vec<String> = self.ran.lock().unwrap().iter().cloned().collect();
        // What ran and what the report says ran agree.
        for module in report.modules() {
            let hit = module.cache_status().is_hit();
            let skipped = module.state().is_skipped();
            assert_eq!(
                ran.contains(&module.name().to_owned()),
                !hit && !skipped,
                "{}: {}",
                module.name(),
                module.cache_status()
            );
        }
        (report, ran)
    }

    fn run(&self) -> (RunReport, Vec<String>) {
        self.run_with(RunOptions::new())
    }
}

/// The final output, as a full build computes it.
fn final_output(report: &RunReport) -> String {
    report.output::<String>("all").unwrap()[0].clone()
}

fn why(report: &RunReport, module: &str) -> RunReason {
    let status = report.module(module).unwrap().cache_status();
    status
        .why()
        .cloned()
        .unwrap_or_else(|| panic!("{module}: {status}"))
}

/// Sets `path`'s modification time, as `touch -d` does.
fn set_mtime(path: &Path, time: SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

const ALL: [&str; 7] = [
    "all",
    "hello",
    "hello.o",
    "hello.out",
    "world",
    "world.o",
    "world.out",
];

/// First run: everything; second: nothing; a changed source: its chain and `all`.
#[test]
fn a_changed_source_reruns_exactly_its_chain_and_the_final_module() {
    let build = Build::new();
    let (first, ran) = build.run();
    assert_eq!(ran, ALL);
    assert!(first
        .modules()
        .iter()
        .all(|m| m.cache_status().why() == Some(&RunReason::NoEntry)));

    let (second, ran) = build.run();
    assert!(ran.is_empty(), "{ran:?}");
    assert!(second.modules().iter().all(|m| m.cache_status().is_hit()));
    assert_eq!(final_output(&second), final_output(&first));
    assert_eq!(
        final_output(&second),
        "ran exe[obj[puts hello]] + ran exe[obj[puts world]]"
    );

    fs::write(build.source("hello"), "// hello\nputs HELLO\n").unwrap();
    let (third, ran) = build.run();
    assert_eq!(ran, ["all", "hello", "hello.o", "hello.out"]);
    let source = format!("file {}", build.source("hello").display());
    assert_eq!(
        why(&third, "hello.o"),
        RunReason::InputChanged { input: source }
    );
    assert_eq!(
        why(&third, "hello"),
        RunReason::DependencyChanged {
            dependency: "hello.o".into()
        }
    );
    assert_eq!(
        why(&third, "all"),
        RunReason::DependencyChanged {
            dependency: "hello.out".into()
        }
    );
    assert_eq!(
        final_output(&third),
        "ran exe[obj[puts HELLO]] + ran exe[obj[puts world]]"
    );
    let text = third.to_string();
    assert!(text.contains("cached"), "{text}");
    assert!(
        text.contains("ran: the output of `hello.o` changed"),
        "{text}"
    );
}

/// `touch` without a change re-runs nothing; new content with an old time re-runs.
#[test]
fn timestamps_do_not_decide_content_does() {
    let build = Build::new();
    build.run();
    let later = SystemTime::now() + Duration::from_secs(3600);
    for word in ["hello", "world"] {
        set_mtime(&build.source(word), later);
    }
    let (_, ran) = build.run();
    assert!(ran.is_empty(), "touching re-ran {ran:?}");

    // New content of the same size, with the modification time set back to before the last
    // run: a timestamp-based tool would see nothing new.
    let path = build.source("world");
    let before = fs::metadata(&path).unwrap().modified().unwrap();
    fs::write(&path, "// world\nputs WORLD\n").unwrap();
    set_mtime(&path, before - Duration::from_secs(86_400));
    let (report, ran) = build.run();
    assert_eq!(ran, ["all", "world", "world.o", "world.out"]);
    assert!(final_output(&report).ends_with("ran exe[obj[puts WORLD]]"));
}

/// A module that re-runs and gives the same output stops the re-run there.
#[test]
fn early_cutoff_stops_at_an_unchanged_output() {
    let build = Build::new();
    build.run();
    fs::write(build.source("hello"), "// a new comment\nputs hello\n").unwrap();
    let (report, ran) = build.run();
    assert_eq!(ran, ["hello.o"]);
    assert!(report.module("hello").unwrap().cache_status().is_hit());
    assert!(report.module("all").unwrap().cache_status().is_hit());
}

/// A version bump re-runs the module, and its dependents only if its output changed.
#[test]
fn a_version_bump_reruns_the_module_and_what_its_new_output_changes() {
    let mut build = Build::new();
    build.run();
    build.link_version = "2";
    let (report, ran) = build.run();
    // The link step's output does not show its version: cut off right after it.
    assert_eq!(ran, ["hello", "world"]);
    assert_eq!(
        why(&report, "hello"),
        RunReason::VersionChanged {
            from: "1".into(),
            to: "2".into()
        }
    );

    build.link_version = "3";
    build.link_shows_version = true;
    let (report, ran) = build.run();
    assert_eq!(ran, ["all", "hello", "hello.out", "world", "world.out"]);
    assert_eq!(
        final_output(&report),
        "ran exe3[obj[puts hello]] + ran exe3[obj[puts world]]"
    );
}

/// `targets` runs a part, from the cache where it can; `force` runs a module anyway.
#[test]
fn a_part_runs_from_the_cache_and_forced_modules_run() {
    let build = Build::new();
    let (report, ran) = build.run_with(RunOptions::new().targets(["hello.out"]));
    assert_eq!(ran, ["hello", "hello.o", "hello.out"]);
    for module in ["world.o", "world", "world.out", "all"] {
        assert_eq!(
            report.module(module).unwrap().state(),
            &ModuleState::Skipped(SkipReason::NotNeeded)
        );
        assert_eq!(
            report.module(module).unwrap().cache_status(),
            &CacheStatus::NotCached
        );
    }
    let (_, ran) = build.run_with(RunOptions::new().targets(["all"]));
    assert_eq!(ran, ["all", "world", "world.o", "world.out"]);

    let (report, ran) = build.run_with(RunOptions::new().force(["hello.o"]));
    assert_eq!(ran, ["hello.o"]);
    assert_eq!(why(&report, "hello.o"), RunReason::Forced);
    let (_, ran) = build.run_with(RunOptions::new().force_all());
    assert_eq!(ran, ALL);

    let unknown = build
        .graph()
        .run_with(&build.pool, RunOptions::new().targets(["nope"]));
    assert!(unknown.unwrap_err().to_string().contains("nope"));
}

/// `explain` says what would run, and why, and runs nothing.
#[test]
fn explain_tells_what_would_run_without_running_it() {
    let build = Build::new();
    build.ran.lock().unwrap().clear();
    let options = || RunOptions::new().cache(&build.cache);
    let plan = build.graph().explain(&build.pool, options()).unwrap();
    assert_eq!(plan.get("hello.o"), Some(&Plan::Run(RunReason::NoEntry)));
    assert_eq!(
        plan.get("hello"),
        Some(&Plan::RunsIfChanged {
            dependency: "hello.o".into()
        })
    );
    assert!(build.ran.lock().unwrap().is_empty());

    build.run();
    build.ran.lock().unwrap().clear();
    fs::write(build.source("world"), "// world\nputs planet\n").unwrap();
    let plan = build.graph().explain(&build.pool, options()).unwrap();
    assert!(build.ran.lock().unwrap().is_empty(), "explain ran tasks");
    let source = format!("file {}", build.source("world").display());
    assert_eq!(
        plan.get("world.o"),
        Some(&Plan::Run(RunReason::InputChanged { input: source }))
    );
    for cached in ["hello.o", "hello", "hello.out"] {
        assert_eq!(plan.get(cached), Some(&Plan::Cached), "{cached}");
    }
    assert_eq!(
        plan.get("all"),
        Some(&Plan::RunsIfChanged {
            dependency: "world.out".into()
        })
    );
    assert_eq!(plan.would_run().collect::<Vec<_>>(), ["world.o"]);
    let plan = build
        .graph()
        .explain(&build.pool, options().targets(["hello"]))
        .unwrap();
    assert_eq!(plan.get("world.o"), Some(&Plan::NotNeeded));
    // Explaining changed nothing: the run does what it said.
    let (_, ran) = build.run();
    assert_eq!(ran, ["all", "world", "world.o", "world.out"]);
}

/// A failed module is not stored; a module after a non-cached one always runs.
#[test]
fn failures_are_not_stored_and_uncached_dependencies_rerun_their_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let pool = Pool::new(2);
    let graph = |fail: bool| {
        let mut dag = Dag::new();
        dag.cached_module(
            "flaky",
            1,
            [move |_: &Context| -> TaskResult<u8> {
                if fail {
                    Err("down".into())
                } else {
                    Ok(1)
                }
            }],
        )
        .unwrap();
        dag.module("clock", 1, [|_: &Context| -> TaskResult<u8> { Ok(7) }])
            .unwrap();
        dag.cached_module("report", 1, [|_: &Context| -> TaskResult<u8> { Ok(2) }])
            .unwrap()
            .after(["clock"])
            .unwrap();
        dag.cached_module("summary", 1, [|_: &Context| -> TaskResult<u8> { Ok(3) }])
            .unwrap()
            .after(["report"])
            .unwrap();
        dag
    };
    let options = || RunOptions::new().cache(&cache);
    let report = graph(true).run_with(&pool, options()).unwrap();
    assert!(report.module("flaky").unwrap().state().is_failed());
    let report = graph(false).run_with(&pool, options()).unwrap();
    assert_eq!(why(&report, "flaky"), RunReason::NoEntry);
    assert_eq!(
        report.module("clock").unwrap().cache_status(),
        &CacheStatus::NotCached
    );
    let report = graph(false).run_with(&pool, options()).unwrap();
    assert!(report.module("flaky").unwrap().cache_status().is_hit());
    assert_eq!(
        why(&report, "report"),
        RunReason::DependencyNotCached {
            dependency: "clock".into()
        }
    );
    // `report` ran again but gave the same output: `summary` is cut off.
    assert!(report.module("summary").unwrap().cache_status().is_hit());
}

/// Declaring an input on a module that does not cache is a mistake caught at once.
#[test]
#[should_panic(expected = "declared with Dag::module, which does not cache its output")]
fn inputs_of_an_uncached_module_are_refused() {
    let mut dag = Dag::new();
    dag.module("plain", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])
        .unwrap()
        .input_env("HOME");
}

/// A run that leaves the cache over its bound removes the least recently used entries.
#[test]
fn a_run_keeps_the_cache_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(2);
    let graph = |names: &[&'static str]| {
        let mut dag = Dag::new();
        for &name in names {
            dag.cached_module(
                name,
                1,
                [move |_: &Context| -> TaskResult<Vec<u8>> { Ok(name.as_bytes().repeat(1000)) }],
            )
            .unwrap();
        }
        dag
    };
    let roomy = Cache::open(dir.path()).unwrap();
    graph(&["old"])
        .run_with(&pool, RunOptions::new().cache(&roomy))
        .unwrap();
    let one_entry = roomy.size().unwrap();
    // Room for one entry of each size only: the run's own entry stays, the older one goes.
    let bounded = roomy.clone().with_max_size(one_entry + 100);
    graph(&["new"])
        .run_with(&pool, RunOptions::new().cache(&bounded))
        .unwrap();
    assert!(bounded.size().unwrap() <= one_entry + 100);
    let report = graph(&["old", "new"])
        .run_with(&pool, RunOptions::new().cache(&roomy))
        .unwrap();
    assert!(!report.module("old").unwrap().cache_status().is_hit());
    assert!(report.module("new").unwrap().cache_status().is_hit());
}
