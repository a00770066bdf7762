//! Incremental runs with jobpool's cache (feature `cache`) against ninja, on one generated
//! graph of 10,000 modules, in one interleaved run.
//!
//! ```text
//! cargo run --release -p jobpool-bench --example incremental_vs_ninja          # 7 rounds
//! cargo run --release -p jobpool-bench --example incremental_vs_ninja -- --rounds 11
//! cargo run --release -p jobpool-bench --example incremental_vs_ninja -- --modules 1000
//! cargo run --release -p jobpool-bench --example incremental_vs_ninja -- --only hash,overhead
//! cargo run --release -p jobpool-bench --example incremental_vs_ninja -- --only graph
//! ```
//!
//! Options: `--rounds N` (7), `--modules N` (10,000), `--threads N` (2: jobpool's
//! `Pool::new(N)` and ninja's `-j N`), `--hash-mib N` (1024), `--overhead-modules N` (400),
//! `--only graph,hash,overhead` (all three), `--dir DIR` (the system's temporary directory).
//! Everything it writes goes to a fresh directory under `DIR`, removed at the end (`--keep`
//! keeps it).
//!
//! **The graph.** C chains of L modules (C = round(sqrt(modules)), L = modules / C: 100 x 100
//! for 10,000). Module `m{c}_{j}` depends on `m{c}_{j-1}` (its predecessor in the chain), and
//! every 10th module of a chain (j % 10 == 9) also on `m{c+k}_{j-1}` for k = 1..=4 (chains
//! taken modulo C): 1,000 fan-in modules of 5 dependencies, 13,900 edges, depth 100. Each module
//! has one input file `in/m{c}_{j}` of 4 KiB (pseudo-random, different in every file) and one
//! output:
//!
//! - **ninja** (Debian's `ninja-build`; this program installs nothing, and skips the ninja parts
//!   if `ninja` is not on PATH): one edge per module, `rule m` with
//!   `command = head -q -c 64 $in > $out`, from the input file and the dependencies' outputs
//!   to `out/m{c}_{j}`. `head -c 64` rather than `cat`: `cat` of a chain would make outputs
//!   grow along it (and multiply at the fan-ins); an output here is at most 6 x 64 bytes.
//!   Run as `ninja -C <dir> -j <threads>`; the edges it ran are counted from its `[n/t]`
//!   status lines.
//! - **jobpool**: one `Dag::cached_module` per module, one task, `input_file(in/m{c}_{j})`,
//!   after its dependencies; the task reads its input file and returns a `u64`: the xxh3 of
//!   the file mixed with its dependencies' outputs. The cache is `<dir>/jobpool-cache`.
//!   A jobpool run is a **whole process**, as ninja's is: this program's own binary
//!   (`std::env::current_exe()`) run as
//!   `incremental_vs_ninja build <dir> --modules N --threads N`, which builds the `Dag`, opens
//!   the `Cache`, makes a `Pool::new(threads)`, runs, drops it all and exits, printing on
//!   stdout how many modules were read from the cache and how many ran
//!   (`!cache_status().is_hit()`), and its own timings.
//!
//! **Setup**, untimed in the tables: the inputs are written, both tools build everything once
//! (ninja runs 10,000 processes: its first build is printed, with jobpool's, for information).
//!
//! **The racy-timestamp guard.** jobpool trusts a file's recorded digest only if the file's
//! modification and change times are more than 2 s older than the moment it was hashed
//! (src/cache/files.rs): a file hashed within 2 s of its last write (or touch) is hashed again
//! on the next run. So after the
//! inputs are written, and after every touch, the program waits until 2.5 s have passed since
//! the write, then makes one untimed run of each tool (the *settling* runs, whose times are
//! printed apart), and only then times no-op runs. Without that, a no-op run right after a
//! build would re-hash every recently written input.
//!
//! **Rounds**, each: (1) a no-op run of each tool, in alternating order (ninja first in even
//! rounds); (2) every input's modification time set to now (`File::set_modified`, content
//! unchanged), then the first run of each tool after it, in alternating order: ninja must run
//! every edge, jobpool must run no module (every input is re-hashed, the fingerprints are
//! unchanged); (3) the settling runs. Printed: each tool's median wall time [min-max] over the
//! rounds, the jobpool/ninja ratio taken per round (paired), and the counts.
//!
//! **Breakdown.** After the rounds, a few more jobpool no-op processes run with `--split`: the
//! child then also reports how long `Dag::run_with` spent before the run's clock started
//! (checking the graph, loading the cache's index), in the run (the look-ups), and after its
//! end (writing the index back), taken from the run's events; and, single-threaded after the
//! run, what a `stat` of every input, a read of every entry file and a read of the index file
//! cost alone. ninja's own `-d stats` of one no-op run is printed beside it.
//!
//! **Hashing** (`hash`): a file of 1 GiB (`--hash-mib`) is written and read once (so it is in
//! the page cache), then read in 256 KiB blocks on one thread, as src/cache/files.rs does:
//! (a) read only, (b) BLAKE3 (`blake3::Hasher::update`, the crate jobpool uses), (c) xxh3
//! (`xxhash_rust::xxh3::Xxh3`, non-cryptographic, for comparison); rotating order, GB/s
//! (1 GB = 10^9 bytes).
//!
//! **The cost of caching** (`overhead`): 400 modules (`--overhead-modules`, the same chain and
//! fan-in shape: 20 x 20) whose task reads its 4 KiB input and sleeps 1 ms, all of which run:
//! (a) without a cache, (b) with a fresh, empty cache (`Cache::open` of a new directory, timed
//! with the run): every module is looked up, misses, runs, and is stored. And, to tell what the
//! file system alone costs there, (c): what storing those entries takes without jobpool: in a
//! fresh directory, 2 threads each write half of 400 files of 48 bytes (an entry's size: a
//! 40-byte header and a small payload) to `tmp/`, `create_dir_all` their shard directory and
//! rename them into it, as the cache does for every entry it stores. One pool for all runs,
//! rotating order (a b c, b c a, c a b, ...), one untimed run of each first; paired ratios
//! b/a and (b - a)/c.
//!
//! **Noise.** This machine has 2 cores, shared with other work. A difference under about 20%
//! is noise unless it holds in every round (a paired ratio whose whole range is on one side of
//! 1). The load average is printed at the start and at the end.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use jobpool::{Cache, Context, Dag, Event, Pool, RunOptions, TaskResult};
use jobpool_bench::summary::median;

/// The size of every input file.
const INPUT_SIZE: usize = 4096;
/// Every `FAN_EVERY`-th module of a chain is a fan-in module...
const FAN_EVERY: usize = 10;
/// ...that also depends on the modules before it in this many other chains.
const FAN_EXTRA: usize = 4;
/// How long after a file's last write jobpool trusts its stat record (2 s), plus a margin.
const SETTLE: Duration = Duration::from_millis(2500);
/// The read block of the hashing loop, as in src/cache/files.rs.
const BLOCK: usize = 256 * 1024;
/// The task length of the overhead graph.
const TASK: Duration = Duration::from_millis(1);
/// Targets.
const TARGET_NOOP_RATIO: f64 = 2.0;
const TARGET_NOOP_MS: f64 = 200.0;
const TARGET_HASH_GBS: f64 = 1.0;
const TARGET_OVERHEAD: f64 = 1.05;
/// jobpool no-op processes run with `--split` after the rounds.
const SPLIT_RUNS: usize = 5;

// ---------------------------------------------------------------------------------------------
// The graph

/// C chains of L modules, with a fan-in module every [`FAN_EVERY`] in each chain.
#[derive(Clone, Copy)]
struct Shape {
    chains: usize,
    length: usize,
}

impl Shape {
    fn for_modules(modules: usize) -> Shape {
        let chains = ((modules as f64).sqrt().round() as usize).max(1);
        Shape {
            chains,
            length: (modules / chains).max(1),
        }
    }

    fn len(self) -> usize {
        self.chains * self.length
    }

    /// Every module as (chain, position), chain by chain.
    fn modules(self) -> impl Iterator<Item = (usize, usize)> {
        (0..self.chains).flat_map(move |c| (0..self.length).map(move |j| (c, j)))
    }

    fn name(c: usize, j: usize) -> String {
        format!("m{c}_{j}")
    }

    /// The modules `(c, j)` depends on.
    fn dependencies(self, c: usize, j: usize) -> Vec<(usize, usize)> {
        let mut deps = Vec::new();
        if j > 0 {
            deps.push((c, j - 1));
            if j % FAN_EVERY == FAN_EVERY - 1 {
                for k in 1..=FAN_EXTRA.min(self.chains - 1) {
                    deps.push(((c + k) % self.chains, j - 1));
                }
            }
        }
        deps
    }

    fn edges(self) -> usize {
        self.modules()
            .map(|(c, j)| self.dependencies(c, j).len())
            .sum()
    }
}

/// A pseudo-random generator (splitmix64), for file contents.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// Writes the 4 KiB input file of every module of `shape` into `dir`.
fn write_inputs(dir: &Path, shape: Shape, seed: u64) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut content = vec![0u8; INPUT_SIZE];
    for (i, (c, j)) in shape.modules().enumerate() {
        SplitMix(seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d)).fill(&mut content);
        fs::write(dir.join(Shape::name(c, j)), &content)?;
    }
    Ok(())
}

/// Writes `<dir>/build.ninja`: one edge per module.
fn write_build_ninja(dir: &Path, shape: Shape) -> io::Result<()> {
    let mut out = String::with_capacity(shape.len() * 64);
    out.push_str("# Generated by jobpool-bench's examples/incremental.rs\n");
    out.push_str("rule m\n  command = head -q -c 64 $in > $out\n\n");
    for (c, j) in shape.modules() {
        let name = Shape::name(c, j);
        out.push_str(&format!("build out/{name}: m in/{name}"));
        for (dc, dj) in shape.dependencies(c, j) {
            out.push_str(&format!(" out/{}", Shape::name(dc, dj)));
        }
        out.push('\n');
    }
    fs::write(dir.join("build.ninja"), out)
}

/// The jobpool graph of `shape`: a cached module per module, whose task reads its input file
/// from `inputs`, waits `task_sleep` if any, and mixes the file's xxh3 with its dependencies'
/// outputs. `cached`: declared with `cached_module` and `input_file`, or else with `module`.
fn build_dag(shape: Shape, inputs: &Path, task_sleep: Option<Duration>, cached: bool) -> Dag {
    let mut dag = Dag::new();
    for (c, j) in shape.modules() {
        let name = Shape::name(c, j);
        let input = inputs.join(&name);
        let deps: Vec<String> = shape
            .dependencies(c, j)
            .into_iter()
            .map(|(dc, dj)| Shape::name(dc, dj))
            .collect();
        let task = {
            let (input, deps) = (input.clone(), deps.clone());
            move |ctx: &Context| -> TaskResult<u64> {
                let bytes = fs::read(&input)?;
                if let Some(sleep) = task_sleep {
                    std::thread::sleep(sleep);
                }
                let mut acc = xxhash_rust::xxh3::xxh3_64(&bytes);
                for dep in &deps {
                    acc = acc.rotate_left(7) ^ ctx.output::<u64>(dep)?[0];
                }
                Ok(acc)
            }
        };
        let module = if cached {
            dag.cached_module(name, 1, [task])
                .expect("unique names")
                .version("1")
                .input_file(&input)
        } else {
            dag.module(name, 1, [task]).expect("unique names")
        };
        module.after(deps).expect("no self-dependency");
    }
    dag
}

// ---------------------------------------------------------------------------------------------
// The child: one jobpool run as a whole process

/// `incremental_vs_ninja build <dir> --modules N --threads N [--split]`: builds the graph,
/// opens the cache, runs, and prints its counts and timings as `key=value` on one line of
/// stdout.
fn child(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let main_start = Instant::now();
    let dir = PathBuf::from(args.first().ok_or("build needs a directory")?);
    let mut modules = 10_000;
    let mut threads = 2;
    let mut split = false;
    let mut it = args[1..].iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--modules" => modules = it.next().ok_or("--modules N")?.parse()?,
            "--threads" => threads = it.next().ok_or("--threads N")?.parse()?,
            "--split" => split = true,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let shape = Shape::for_modules(modules);
    let mut line: Vec<(&str, String)> = Vec::new();
    let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);

    let t = Instant::now();
    let dag = build_dag(shape, &dir.join("in"), None, true);
    line.push(("graph_ms", ms(t.elapsed())));
    let t = Instant::now();
    let cache = Cache::open(dir.join("jobpool-cache"))?;
    line.push(("open_ms", ms(t.elapsed())));
    let t = Instant::now();
    let pool = Pool::new(threads);
    line.push(("pool_ms", ms(t.elapsed())));

    // With --split: the first event's instant minus its offset is the run's own start.
    let run_start: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let mut options = RunOptions::new().cache(&cache);
    if split {
        let run_start = run_start.clone();
        options = options.on_event(move |event: &Event<'_>| {
            run_start.get_or_init(|| Instant::now() - event.at);
        });
    }
    let called = Instant::now();
    let report = dag.run_with(&pool, options)?;
    let returned = Instant::now();
    line.push(("run_ms", ms(returned - called)));
    if !report.is_success() {
        return Err("the run failed".into());
    }
    let hit = report
        .modules()
        .iter()
        .filter(|m| m.cache_status().is_hit())
        .count();
    line.push(("modules", report.modules().len().to_string()));
    line.push(("hit", hit.to_string()));
    line.push(("ran", (report.modules().len() - hit).to_string()));
    if let Some(&start) = run_start.get() {
        let end = start + report.elapsed();
        line.push(("pre_ms", ms(start.saturating_duration_since(called))));
        line.push(("looked_ms", ms(report.elapsed())));
        line.push(("post_ms", ms(returned.saturating_duration_since(end))));
    }

    let t = Instant::now();
    drop(report);
    drop(dag);
    drop(pool);
    line.push(("drop_ms", ms(t.elapsed())));
    line.push(("main_ms", ms(main_start.elapsed())));

    if split {
        // Single-threaded floors, after the run (not part of main_ms).
        let t = Instant::now();
        for (c, j) in shape.modules() {
            let path = dir.join("in").join(Shape::name(c, j));
            let meta = fs::metadata(&path)?;
            std::hint::black_box((meta.len(), std::path::absolute(&path)?));
        }
        line.push(("stat_inputs_ms", ms(t.elapsed())));
        let t = Instant::now();
        let mut entries = 0;
        for shard in fs::read_dir(dir.join("jobpool-cache").join("entries"))? {
            for entry in fs::read_dir(shard?.path())? {
                std::hint::black_box(fs::read(entry?.path())?);
                entries += 1;
            }
        }
        line.push(("read_entries_ms", ms(t.elapsed())));
        line.push(("entries", entries.to_string()));
        let t = Instant::now();
        let index = fs::read(dir.join("jobpool-cache").join("index"))?;
        line.push(("read_index_ms", ms(t.elapsed())));
        line.push(("index_kib", format!("{:.0}", index.len() as f64 / 1024.0)));
        let t = Instant::now();
        std::hint::black_box(blake3::hash(&index));
        line.push(("blake3_index_ms", ms(t.elapsed())));
    }

    let text: Vec<String> = line.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("child {}", text.join(" "));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The harness

struct Args {
    rounds: usize,
    modules: usize,
    threads: usize,
    hash_mib: usize,
    overhead_modules: usize,
    graph: bool,
    hash: bool,
    overhead: bool,
    keep: bool,
    dir: PathBuf,
}

fn args() -> Args {
    let mut args = Args {
        rounds: 7,
        modules: 10_000,
        threads: 2,
        hash_mib: 1024,
        overhead_modules: 400,
        graph: true,
        hash: true,
        overhead: true,
        keep: false,
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |what: &str| -> usize {
            it.next()
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| panic!("{what} takes a positive number"))
        };
        match arg.as_str() {
            "--rounds" => args.rounds = number("--rounds"),
            "--modules" => args.modules = number("--modules"),
            "--threads" => args.threads = number("--threads"),
            "--hash-mib" => args.hash_mib = number("--hash-mib"),
            "--overhead-modules" => args.overhead_modules = number("--overhead-modules"),
            "--keep" => args.keep = true,
            "--dir" => args.dir = PathBuf::from(it.next().expect("--dir takes a directory")),
            "--only" => {
                let parts = it.next().expect("--only takes graph,hash,overhead");
                (args.graph, args.hash, args.overhead) = (false, false, false);
                for part in parts.split(',') {
                    match part {
                        "graph" => args.graph = true,
                        "hash" => args.hash = true,
                        "overhead" => args.overhead = true,
                        other => panic!("--only: unknown part {other:?}"),
                    }
                }
            }
            other => panic!(
                "unknown argument {other:?}; try --rounds N, --modules N, --threads N, \
                 --hash-mib N, --overhead-modules N, --only graph,hash,overhead, --dir DIR, --keep"
            ),
        }
    }
    args
}

/// One timed process: its wall time, its stdout.
struct Timed {
    wall: Duration,
    stdout: String,
}

fn timed(command: &mut Command) -> Timed {
    command.stdin(Stdio::null()).stdout(Stdio::piped());
    let start = Instant::now();
    let output = command.output().expect("the command starts");
    let wall = start.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        panic!("{command:?} failed ({}):\n{stdout}", output.status);
    }
    Timed { wall, stdout }
}

/// A run of ninja: wall time and edges run.
struct NinjaRun {
    wall: Duration,
    edges: usize,
}

/// A run of the jobpool child: wall time, and its `key=value` report.
struct JobpoolRun {
    wall: Duration,
    report: HashMap<String, f64>,
}

impl JobpoolRun {
    fn get(&self, key: &str) -> f64 {
        *self
            .report
            .get(key)
            .unwrap_or_else(|| panic!("the child reports {key}"))
    }
}

struct Tools {
    dir: PathBuf,
    ninja: bool,
    modules: usize,
    threads: usize,
}

impl Tools {
    fn ninja(&self, extra: &[&str]) -> NinjaRun {
        let t = timed(
            Command::new("ninja")
                .arg("-C")
                .arg(&self.dir)
                .arg("-j")
                .arg(self.threads.to_string())
                .args(extra),
        );
        let edges = t.stdout.lines().filter(|l| l.starts_with('[')).count();
        NinjaRun {
            wall: t.wall,
            edges,
        }
    }

    fn jobpool(&self, split: bool) -> JobpoolRun {
        let exe = std::env::current_exe().expect("the example's own path");
        let mut command = Command::new(exe);
        command
            .arg("build")
            .arg(&self.dir)
            .arg("--modules")
            .arg(self.modules.to_string())
            .arg("--threads")
            .arg(self.threads.to_string());
        if split {
            command.arg("--split");
        }
        let t = timed(&mut command);
        let line = t
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("child "))
            .unwrap_or_else(|| panic!("no report from the child:\n{}", t.stdout));
        let report = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
            .collect();
        JobpoolRun {
            wall: t.wall,
            report,
        }
    }
}

fn ninja_version() -> Option<String> {
    let out = Command::new("ninja").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("build") {
        if let Err(err) = child(&argv[2..]) {
            eprintln!("incremental_vs_ninja build: {err}");
            std::process::exit(1);
        }
        return;
    }
    let args = args();
    let started = *START.get_or_init(Instant::now);
    let dir = args.dir.join(format!(
        "jobpool-incremental-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ));
    fs::create_dir_all(&dir).expect("the temporary directory");
    println!(
        "incremental_vs_ninja: {} round(s), {} threads, {} cores, load average {}, in {}",
        args.rounds,
        args.threads,
        num_cpus::get(),
        load_average(),
        dir.display()
    );

    if args.graph {
        graph_part(&args, &dir);
    }
    if args.hash {
        hash_part(&args, &dir);
    }
    if args.overhead {
        overhead_part(&args, &dir);
    }

    if args.keep {
        println!("\nkept {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(&dir);
    }
    println!(
        "\nwhole run {:.1?}; load average now {}",
        started.elapsed(),
        load_average()
    );
}

/// Sleeps until `SETTLE` after `since`.
fn settle_after(since: Instant) {
    let wait = SETTLE.saturating_sub(since.elapsed());
    std::thread::sleep(wait);
}

/// Sets the modification time of every input of `shape` in `dir` to now.
fn touch_all(dir: &Path, shape: Shape) -> io::Result<()> {
    let now = SystemTime::now();
    for (c, j) in shape.modules() {
        fs::File::options()
            .write(true)
            .open(dir.join(Shape::name(c, j)))?
            .set_modified(now)?;
    }
    Ok(())
}

fn graph_part(args: &Args, root: &Path) {
    let shape = Shape::for_modules(args.modules);
    let dir = root.join("graph");
    let inputs = dir.join("in");
    let version = ninja_version();
    println!();
    println!(
        "== no-op and touched runs: {} modules ({} chains x {}, a fan-in of {} every {}th), \
         {} edges, inputs of {} bytes",
        shape.len(),
        shape.chains,
        shape.length,
        FAN_EXTRA + 1,
        FAN_EVERY,
        shape.edges(),
        INPUT_SIZE
    );
    match &version {
        Some(v) => println!("  ninja {v}: `ninja -C <dir> -j {}`", args.threads),
        None => println!(
            "  ninja is not on PATH: install it with `apt-get install ninja-build` (Debian, \
             Ubuntu) to compare; the ninja parts are skipped"
        ),
    }
    let t = Instant::now();
    write_inputs(&inputs, shape, 0x1234).expect("write the inputs");
    write_build_ninja(&dir, shape).expect("write build.ninja");
    let written = Instant::now();
    println!("  inputs and build.ninja written in {:.1?}", t.elapsed());
    let tools = Tools {
        dir: dir.clone(),
        ninja: version.is_some(),
        modules: args.modules,
        threads: args.threads,
    };

    // Setup: the first builds.
    if tools.ninja {
        let first = tools.ninja(&[]);
        assert_eq!(
            first.edges,
            shape.len(),
            "ninja's first build runs every edge"
        );
        println!(
            "  first build, ninja: {:.2} s ({} edges run)",
            first.wall.as_secs_f64(),
            first.edges
        );
    }
    let first = tools.jobpool(false);
    assert_eq!(first.get("ran") as usize, shape.len());
    println!(
        "  first build, jobpool: {:.2} s ({} modules ran; in the child: run_with {:.0} ms)",
        first.wall.as_secs_f64(),
        first.get("ran"),
        first.get("run_ms")
    );
    // Settle: a run of each once every input is older than the racy window.
    settle_after(written);
    let settling = settle(&tools, shape);
    println!(
        "  settling runs, {:.1} s after writing the inputs: jobpool {:.1} ms, ninja {}",
        written.elapsed().as_secs_f64() - settling.0.as_secs_f64(),
        settling.0.as_secs_f64() * 1e3,
        settling
            .1
            .map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
    );

    let mut noop_j = Vec::new();
    let mut noop_n = Vec::new();
    let mut touch_j = Vec::new();
    let mut touch_n = Vec::new();
    let mut touch_j_after = Vec::new();
    let mut settle_j = Vec::new();
    for round in 0..args.rounds {
        let ninja_first = round % 2 == 0;
        // (1) no-op.
        for turn in 0..2 {
            if (turn == 0) == ninja_first {
                if tools.ninja {
                    noop_n.push(tools.ninja(&[]));
                }
            } else {
                noop_j.push(tools.jobpool(false));
            }
        }
        // (2) touch every input, then the first run after it.
        touch_all(&inputs, shape).expect("touch the inputs");
        let touched = Instant::now();
        for turn in 0..2 {
            if (turn == 0) == ninja_first {
                if tools.ninja {
                    touch_n.push(tools.ninja(&[]));
                }
            } else {
                touch_j_after.push(touched.elapsed());
                touch_j.push(tools.jobpool(false));
            }
        }
        // (3) settle.
        settle_after(touched);
        settle_j.push(settle(&tools, shape).0);
        eprintln!(
            "round {}/{} done at {:.1?}",
            round + 1,
            args.rounds,
            started_hint()
        );
    }

    // Every count must hold in every round.
    for r in &noop_j {
        assert_eq!(r.get("ran"), 0.0, "a jobpool no-op run ran a module");
        assert_eq!(r.get("hit") as usize, shape.len());
    }
    for r in &noop_n {
        assert_eq!(r.edges, 0, "a ninja no-op run ran an edge");
    }
    let ms_of = |d: &[Duration]| -> Vec<f64> { d.iter().map(|d| d.as_secs_f64() * 1e3).collect() };
    let walls_j = |runs: &[JobpoolRun]| ms_of(&runs.iter().map(|r| r.wall).collect::<Vec<_>>());
    let walls_n = |runs: &[NinjaRun]| ms_of(&runs.iter().map(|r| r.wall).collect::<Vec<_>>());

    println!();
    println!(
        "  (1) no-op run, wall ms of the whole process, median [min-max] over {} rounds",
        args.rounds
    );
    let nj = walls_j(&noop_j);
    println!(
        "      jobpool {:>22}   (ran {}, read from the cache {})",
        summary(&nj, 1),
        summary(&noop_j.iter().map(|r| r.get("ran")).collect::<Vec<_>>(), 0),
        summary(&noop_j.iter().map(|r| r.get("hit")).collect::<Vec<_>>(), 0),
    );
    let child_keys = [
        "graph_ms", "open_ms", "pool_ms", "run_ms", "drop_ms", "main_ms",
    ];
    let parts: Vec<String> = child_keys
        .iter()
        .map(|k| {
            let v: Vec<f64> = noop_j.iter().map(|r| r.get(k)).collect();
            format!("{} {:.1}", k.trim_end_matches("_ms"), median(&v))
        })
        .collect();
    println!("        in the child, ms (medians): {}", parts.join(", "));
    println!(
        "        process start and exit (wall - main): {:.1} ms",
        median(
            &noop_j
                .iter()
                .map(|r| r.wall.as_secs_f64() * 1e3 - r.get("main_ms"))
                .collect::<Vec<_>>()
        )
    );
    if tools.ninja {
        let nn = walls_n(&noop_n);
        println!(
            "      ninja   {:>22}   (edges run {})",
            summary(&nn, 1),
            summary(
                &noop_n.iter().map(|r| r.edges as f64).collect::<Vec<_>>(),
                0
            )
        );
        let ratios: Vec<f64> = nj.iter().zip(&nn).map(|(j, n)| j / n).collect();
        let slower = ratios.iter().filter(|&&r| r > 1.0).count();
        println!(
            "      jobpool/ninja per round: {}, jobpool slower in {slower} of {} rounds",
            summary(&ratios, 2),
            ratios.len()
        );
        println!(
            "      target jobpool/ninja <= {TARGET_NOOP_RATIO:.2}: {}",
            verdict(median(&ratios) <= TARGET_NOOP_RATIO)
        );
    }
    println!(
        "      target jobpool <= {TARGET_NOOP_MS:.0} ms: {} ({:.1} ms)",
        verdict(median(&nj) <= TARGET_NOOP_MS),
        median(&nj)
    );

    println!();
    println!(
        "  (2) first run after setting every input's mtime to now (content unchanged), wall ms"
    );
    let tj = walls_j(&touch_j);
    let ran: Vec<f64> = touch_j.iter().map(|r| r.get("ran")).collect();
    println!(
        "      jobpool {:>22}   (ran {}, read from the cache {}; in the child: run_with {} ms)",
        summary(&tj, 1),
        summary(&ran, 0),
        summary(&touch_j.iter().map(|r| r.get("hit")).collect::<Vec<_>>(), 0),
        summary(
            &touch_j.iter().map(|r| r.get("run_ms")).collect::<Vec<_>>(),
            1
        ),
    );
    println!(
        "        started {} s after the touch",
        summary(
            &touch_j_after
                .iter()
                .map(|d| d.as_secs_f64())
                .collect::<Vec<_>>(),
            1
        )
    );
    if tools.ninja {
        let tn = walls_n(&touch_n);
        let edges: Vec<f64> = touch_n.iter().map(|r| r.edges as f64).collect();
        println!(
            "      ninja   {:>22}   (edges run {})",
            summary(&tn, 1),
            summary(&edges, 0)
        );
        let ratios: Vec<f64> = tj.iter().zip(&tn).map(|(j, n)| j / n).collect();
        println!("      jobpool/ninja per round: {}", summary(&ratios, 4));
        println!(
            "      ninja ran every edge in every round: {}",
            verdict(touch_n.iter().all(|r| r.edges == shape.len()))
        );
    }
    println!(
        "      target: jobpool ran 0 modules in every round: {}",
        verdict(ran.iter().all(|&r| r == 0.0))
    );
    println!(
        "      settling run (jobpool, {:.1} s after the touch, re-hashes the inputs whose \
         records were racy): {} ms",
        SETTLE.as_secs_f64(),
        summary(&ms_of(&settle_j), 1)
    );

    // Breakdown of a jobpool no-op run.
    println!();
    println!(
        "  breakdown of a jobpool no-op run: {SPLIT_RUNS} more processes with --split, \
         medians [min-max], ms"
    );
    let splits: Vec<JobpoolRun> = (0..SPLIT_RUNS).map(|_| tools.jobpool(true)).collect();
    let show = |key: &str, what: &str| {
        let v: Vec<f64> = splits.iter().map(|r| r.get(key)).collect();
        println!("      {:<18} {:>20}  {what}", key, summary(&v, 1));
    };
    println!(
        "      {:<18} {:>20}  the whole process, from the parent (with the floors below)",
        "wall_ms",
        summary(&walls_j(&splits), 1)
    );
    show("main_ms", "main, start to end");
    show(
        "graph_ms",
        "building the Dag (10,000 cached_module + after)",
    );
    show("open_ms", "Cache::open");
    show("pool_ms", "Pool::new");
    show("run_ms", "Dag::run_with, of which:");
    show(
        "pre_ms",
        "  before the run's clock: checking the graph, loading the index",
    );
    show(
        "looked_ms",
        "  the run: a look-up job per module (stat, fingerprint, entry read)",
    );
    show("post_ms", "  after the run's end: writing the index back");
    show("drop_ms", "dropping the report, the Dag and the Pool");
    println!("    single-threaded floors, measured in the child after its run:");
    show(
        "stat_inputs_ms",
        "fs::metadata + path::absolute of every input",
    );
    show("read_entries_ms", "fs::read of every entry file");
    show("read_index_ms", "fs::read of the index file");
    show("index_kib", "the index file's size, KiB");
    show("blake3_index_ms", "BLAKE3 of the index file (its checksum)");
    if tools.ninja {
        let stats = timed(
            Command::new("ninja")
                .arg("-C")
                .arg(&dir)
                .arg("-d")
                .arg("stats"),
        );
        println!(
            "    ninja -d stats, one no-op run ({:.1} ms):",
            stats.wall.as_secs_f64() * 1e3
        );
        for line in stats.stdout.lines() {
            println!("      | {line}");
        }
    }
}

static START: OnceLock<Instant> = OnceLock::new();

fn started_hint() -> Duration {
    START.get_or_init(Instant::now).elapsed()
}

/// The settling runs: one untimed-in-the-tables run of each tool; checks nothing ran.
fn settle(tools: &Tools, shape: Shape) -> (Duration, Option<Duration>) {
    let j = tools.jobpool(false);
    assert_eq!(j.get("ran"), 0.0, "a settling run ran a module");
    assert_eq!(j.get("hit") as usize, shape.len());
    let n = tools.ninja.then(|| {
        let n = tools.ninja(&[]);
        assert_eq!(n.edges, 0, "a settling ninja run ran an edge");
        n.wall
    });
    (j.wall, n)
}

// ---------------------------------------------------------------------------------------------
// Hashing

/// Reads `path` in [`BLOCK`]s, handing each to `update`; returns the bytes read.
fn read_blocks(path: &Path, mut update: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut file = fs::File::open(path)?;
    let mut buffer = vec![0u8; BLOCK];
    let mut total = 0;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                update(&buffer[..n]);
                total += n as u64;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(total)
}

fn hash_part(args: &Args, root: &Path) {
    let path = root.join("big");
    let size = args.hash_mib << 20;
    println!();
    println!(
        "== hashing a {} MiB file in the page cache, one thread, blocks of {} KiB, GB/s \
         (10^9 bytes), median [min-max] over {} rounds",
        args.hash_mib,
        BLOCK / 1024,
        args.rounds
    );
    println!("  CPU: {}", cpu_summary());
    {
        let mut file = io::BufWriter::new(fs::File::create(&path).expect("create the file"));
        let mut block = vec![0u8; 1 << 20];
        let mut rng = SplitMix(42);
        rng.fill(&mut block);
        for i in 0..args.hash_mib {
            block[..8].copy_from_slice(&(i as u64).to_le_bytes());
            file.write_all(&block).expect("write the file");
        }
        file.flush().expect("write the file");
    }
    // Into the page cache.
    let read = read_blocks(&path, |b| {
        std::hint::black_box(b);
    })
    .expect("read the file");
    assert_eq!(read, size as u64);

    type Contender = (&'static str, fn(&Path) -> u64);
    let contenders: [Contender; 3] = [
        ("a read only", |p| {
            let mut x = 0u64;
            read_blocks(p, |b| x ^= u64::from(b[0])).unwrap();
            x
        }),
        ("b BLAKE3", |p| {
            let mut hasher = blake3::Hasher::new();
            read_blocks(p, |b| {
                hasher.update(b);
            })
            .unwrap();
            u64::from(hasher.finalize().as_bytes()[0])
        }),
        ("c xxh3-64", |p| {
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            read_blocks(p, |b| hasher.update(b)).unwrap();
            hasher.digest()
        }),
    ];
    let mut gbs: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for round in 0..args.rounds {
        for k in 0..contenders.len() {
            let i = (round + k) % contenders.len();
            let t = Instant::now();
            std::hint::black_box(contenders[i].1(&path));
            gbs[i].push(size as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
    }
    for ((name, _), v) in contenders.iter().zip(&gbs) {
        println!("  {name:<12} {:>22} GB/s", summary(v, 2));
    }
    let blake3 = median(&gbs[1]);
    println!(
        "  target BLAKE3 >= {TARGET_HASH_GBS:.1} GB/s: {} ({blake3:.2}); xxh3/BLAKE3 per round: {}",
        verdict(blake3 >= TARGET_HASH_GBS),
        summary(
            &gbs[2]
                .iter()
                .zip(&gbs[1])
                .map(|(x, b)| x / b)
                .collect::<Vec<_>>(),
            2
        )
    );
    let _ = fs::remove_file(&path);
}

fn cpu_summary() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "?".into());
    let flags: Vec<&str> = info
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let simd: Vec<&str> = ["sse4_1", "avx2", "avx512f", "avx512vl"]
        .into_iter()
        .filter(|f| flags.contains(f))
        .collect();
    format!("{model}; {}", simd.join(" "))
}

// ---------------------------------------------------------------------------------------------
// The cost of caching

fn overhead_part(args: &Args, root: &Path) {
    let shape = Shape::for_modules(args.overhead_modules);
    let dir = root.join("overhead");
    let inputs = dir.join("in");
    write_inputs(&inputs, shape, 0x5678).expect("write the inputs");
    let pool = Pool::new(args.threads);
    let plain = build_dag(shape, &inputs, Some(TASK), false);
    let cached = build_dag(shape, &inputs, Some(TASK), true);
    // What a 1 ms sleep lasts here.
    let t = Instant::now();
    for _ in 0..100 {
        std::thread::sleep(TASK);
    }
    let sleep_ms = t.elapsed().as_secs_f64() * 1e3 / 100.0;
    println!();
    println!(
        "== the cost of caching: {} modules ({} chains x {}), each one task that reads its \
         4 KiB input and sleeps 1 ms (measured {sleep_ms:.3} ms), Pool::new({}), all run; \
         wall ms, median [min-max] over {} rounds",
        shape.len(),
        shape.chains,
        shape.length,
        args.threads,
        args.rounds
    );
    let mut fresh = 0;
    let mut run_cached = |timed_rounds: &mut Vec<f64>, run_only: &mut Vec<f64>| {
        fresh += 1;
        let cache_dir = dir.join(format!("cache-{fresh}"));
        let t = Instant::now();
        let cache = Cache::open(&cache_dir).expect("open a fresh cache");
        let called = Instant::now();
        let report = cached
            .run_with(&pool, RunOptions::new().cache(&cache))
            .expect("a valid graph");
        let end = Instant::now();
        assert!(report.is_success());
        let ran = report
            .modules()
            .iter()
            .filter(|m| !m.cache_status().is_hit())
            .count();
        assert_eq!(ran, shape.len(), "with a fresh cache every module runs");
        timed_rounds.push((end - t).as_secs_f64() * 1e3);
        run_only.push((end - called).as_secs_f64() * 1e3);
        drop(report);
        fs::remove_dir_all(&cache_dir).expect("remove the cache");
    };
    let run_plain = |timed_rounds: &mut Vec<f64>| {
        let t = Instant::now();
        let report = plain
            .run_with(&pool, RunOptions::new())
            .expect("a valid graph");
        timed_rounds.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(report.is_success());
    };
    let mut files_round = 0;
    let mut run_files = |timed_rounds: &mut Vec<f64>| {
        files_round += 1;
        let files_dir = dir.join(format!("files-{files_round}"));
        timed_rounds.push(store_files(&files_dir, shape.len(), args.threads) * 1e3);
        fs::remove_dir_all(&files_dir).expect("remove the files");
    };
    // Warm-up.
    run_plain(&mut Vec::new());
    run_cached(&mut Vec::new(), &mut Vec::new());
    run_files(&mut Vec::new());
    let (mut a, mut b, mut b_run, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        for k in 0..3 {
            match (round + k) % 3 {
                0 => run_plain(&mut a),
                1 => run_cached(&mut b, &mut b_run),
                _ => run_files(&mut c),
            }
        }
    }
    let lb = shape.len() as f64 * sleep_ms / args.threads as f64;
    println!("  work / N = {lb:.1} ms");
    println!("  a no cache          {:>22}", summary(&a, 1));
    println!(
        "  b fresh cache       {:>22}   (run_with alone {})",
        summary(&b, 1),
        summary(&b_run, 1)
    );
    let ratios: Vec<f64> = b.iter().zip(&a).map(|(b, a)| b / a).collect();
    let slower = ratios.iter().filter(|&&r| r > 1.0).count();
    println!(
        "  b/a per round: {}, cache slower in {slower} of {} rounds; per module: {:.1} us \
         of wall time",
        summary(&ratios, 3),
        ratios.len(),
        (median(&b) - median(&a)) * 1e3 / shape.len() as f64
    );
    println!(
        "  target b/a <= {TARGET_OVERHEAD:.2}: {}",
        verdict(median(&ratios) <= TARGET_OVERHEAD)
    );
    println!(
        "  c the file system alone: {} entries written and renamed by {} threads, no jobpool: \
         {} ms; (b - a) / c per round: {}",
        shape.len(),
        args.threads,
        summary(&c, 1),
        summary(
            &a.iter()
                .zip(&b)
                .zip(&c)
                .map(|((a, b), c)| (b - a) / c)
                .collect::<Vec<_>>(),
            2
        )
    );
}

/// What storing `count` entries costs the file system alone: `threads` threads write their
/// share of `count` 48-byte files to `dir/tmp/`, create their shard directories under
/// `dir/entries/` and rename the files into them, as `Cache::write_entry` does. Returns the
/// seconds it took, directories included.
fn store_files(dir: &Path, count: usize, threads: usize) -> f64 {
    let start = Instant::now();
    let (tmp, entries) = (dir.join("tmp"), dir.join("entries"));
    fs::create_dir_all(&tmp).expect("create tmp/");
    fs::create_dir_all(&entries).expect("create entries/");
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (tmp, entries) = (&tmp, &entries);
            scope.spawn(move || {
                let mut rng = SplitMix(t as u64);
                for k in (t..count).step_by(threads) {
                    let name = format!("{:016x}{:016x}", rng.next(), rng.next());
                    let temporary = tmp.join(format!("{k}.tmp"));
                    fs::write(&temporary, [7u8; 48]).expect("write a file");
                    let shard = entries.join(&name[..2]);
                    fs::create_dir_all(&shard).expect("create a shard");
                    fs::rename(&temporary, shard.join(name)).expect("rename a file");
                }
            });
        }
    });
    start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------

/// `median [min-max]` with `digits` decimals.
fn summary(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let med = median(values);
    format!("{med:.digits$} [{min:.digits$}-{max:.digits$}]")
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
