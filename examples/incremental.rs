//! The hello/world build of `make_pipeline`, with a cache: only what really changed runs again.
//!
//! ```make
//! all: hello.out world.out
//! hello.out: hello        world.out: world
//! hello: hello.o          world: world.o
//! hello.o: hello.c        world.o: world.c
//! ```
//!
//! The sources are written to a fresh directory, and the build runs five times on one cache:
//!
//! 1. from scratch: everything runs;
//! 2. again: nothing runs, every output comes from the cache;
//! 3. after `touch`ing every source (new times, same content): nothing runs, where `make`
//!    would rebuild everything;
//! 4. after a real change to `hello.c` (explained first by a dry run): the hello chain and
//!    `all` run, the world chain does not;
//! 5. after a change to a comment in `world.c`: `world.o` runs, produces the same object, and
//!    nothing after it runs (early cutoff).
//!
//! For every module, each run prints `cached` or why it ran.
//!
//! `cargo run --release --example incremental --features cache`

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use jobpool::{Cache, Context, Dag, Pool, RunOptions, RunReport, TaskResult};

/// An object file: the source's lines without comments, as a compiler would see them.
fn compile(source: &Path) -> TaskResult<String> {
    let code = fs::read_to_string(source)?;
    let code: Vec<&str> = code
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("//") && !line.is_empty())
        .collect();
    Ok(code.join(" "))
}

/// The build graph over the sources in `src`.
fn build_graph(src: &Path) -> Result<Dag, Box<dyn std::error::Error>> {
    let mut dag = Dag::new();
    for word in ["hello", "world"] {
        let source: PathBuf = src.join(format!("{word}.c"));
        let object = format!("{word}.o");
        let path = source.clone();
        dag.cached_module(object.clone(), 1, [move |_: &Context| compile(&path)])?
            .version("cc 12.2 -O2")
            .input_file(&source)
            .input_env("CFLAGS");

        let linked = object.clone();
        dag.cached_module(
            word,
            1,
            [move |ctx: &Context| -> TaskResult<String> {
                Ok(format!("a.out<{}>", ctx.output::<String>(&linked)?[0]))
            }],
        )?
        .after([object])?
        .version("ld 2.40");

        let program = word.to_owned();
        dag.cached_module(
            format!("{word}.out"),
            1,
            [move |ctx: &Context| -> TaskResult<String> {
                let binary = &ctx.output::<String>(&program)?[0];
                Ok(format!("output of {binary}"))
            }],
        )?
        .after([word])?;
    }
    dag.cached_module(
        "all",
        1,
        [|ctx: &Context| -> TaskResult<String> {
            let hello = &ctx.output::<String>("hello.out")?[0];
            let world = &ctx.output::<String>("world.out")?[0];
            Ok(format!("{hello}\n{world}"))
        }],
    )?
    .after(["hello.out", "world.out"])?;
    Ok(dag)
}

fn print_run(title: &str, report: &RunReport) {
    println!("{title}");
    for module in report.modules() {
        println!("  {:<10} {}", module.name(), module.cache_status());
    }
    let ran = report
        .modules()
        .iter()
        .filter(|m| !m.cache_status().is_hit())
        .count();
    println!("  -> {ran} of {} modules ran\n", report.modules().len());
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("src");
    fs::create_dir(&src)?;
    fs::write(src.join("hello.c"), "// greets\nputs(\"hello\");\n")?;
    fs::write(
        src.join("world.c"),
        "// names the world\nputs(\"world\");\n",
    )?;
    let cache = Cache::open(dir.path().join(".jobpool-cache"))?;
    println!(
        "sources in {}, cache in {}\n",
        src.display(),
        cache.dir().display()
    );

    let pool = Pool::new(3);
    let run = || -> Result<RunReport, Box<dyn std::error::Error>> {
        let report = build_graph(&src)?.run_with(&pool, RunOptions::new().cache(&cache))?;
        assert!(report.is_success(), "{report}");
        Ok(report)
    };

    let first = run()?;
    print_run("1. from scratch", &first);
    assert!(first.modules().iter().all(|m| !m.cache_status().is_hit()));

    let second = run()?;
    print_run("2. again, nothing changed", &second);
    assert!(second.modules().iter().all(|m| m.cache_status().is_hit()));

    let later = SystemTime::now() + Duration::from_secs(60);
    for source in ["hello.c", "world.c"] {
        fs::File::options()
            .write(true)
            .open(src.join(source))?
            .set_modified(later)?;
    }
    let third = run()?;
    print_run("3. every source touched, none changed", &third);
    assert!(third.modules().iter().all(|m| m.cache_status().is_hit()));

    fs::write(src.join("hello.c"), "// greets\nputs(\"hello, again\");\n")?;
    let plan = build_graph(&src)?.explain(&pool, RunOptions::new().cache(&cache))?;
    println!("4a. hello.c changed; what would run (a dry run):");
    for line in plan.to_string().lines() {
        println!("  {line}");
    }
    println!();
    let fourth = run()?;
    print_run("4b. hello.c changed: the run", &fourth);
    let ran: Vec<&str> = fourth
        .modules()
        .iter()
        .filter(|m| !m.cache_status().is_hit())
        .map(|m| m.name())
        .collect();
    assert_eq!(ran, ["hello.o", "hello", "hello.out", "all"]);

    fs::write(
        src.join("world.c"),
        "// names the whole world\nputs(\"world\");\n",
    )?;
    let fifth = run()?;
    print_run("5. a comment in world.c changed: early cutoff", &fifth);
    let ran: Vec<&str> = fifth
        .modules()
        .iter()
        .filter(|m| !m.cache_status().is_hit())
        .map(|m| m.name())
        .collect();
    assert_eq!(ran, ["world.o"]);

    println!("final output:\n{}", fifth.output::<String>("all")?[0]);
    Ok(())
}
