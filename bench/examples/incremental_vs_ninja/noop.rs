//! No-op and touched runs of the generated graph, jobpool against ninja: the tools, the
//! rounds, the settling runs after every write, and the breakdown of a jobpool no-op run.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use jobpool_bench::summary::{median, spread};

use crate::graph::{write_build_ninja, write_inputs, Shape};
use crate::{started_hint, timed, verdict, Args, FAN_EVERY, FAN_EXTRA, INPUT_SIZE};

/// How long after a file's last write jobpool trusts its stat record (2 s), plus a margin.
const SETTLE: Duration = Duration::from_millis(2500);
/// Targets.
const TARGET_NOOP_RATIO: f64 = 2.0;
const TARGET_NOOP_MS: f64 = 200.0;
/// jobpool no-op processes run with `--split` after the rounds.
const SPLIT_RUNS: usize = 5;

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

pub(crate) fn graph_part(args: &Args, root: &Path) {
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
        spread(&nj, 1),
        spread(&noop_j.iter().map(|r| r.get("ran")).collect::<Vec<_>>(), 0),
        spread(&noop_j.iter().map(|r| r.get("hit")).collect::<Vec<_>>(), 0),
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
            spread(&nn, 1),
            spread(
                &noop_n.iter().map(|r| r.edges as f64).collect::<Vec<_>>(),
                0
            )
        );
        let ratios: Vec<f64> = nj.iter().zip(&nn).map(|(j, n)| j / n).collect();
        let slower = ratios.iter().filter(|&&r| r > 1.0).count();
        println!(
            "      jobpool/ninja per round: {}, jobpool slower in {slower} of {} rounds",
            spread(&ratios, 2),
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
        spread(&tj, 1),
        spread(&ran, 0),
        spread(&touch_j.iter().map(|r| r.get("hit")).collect::<Vec<_>>(), 0),
        spread(
            &touch_j.iter().map(|r| r.get("run_ms")).collect::<Vec<_>>(),
            1
        ),
    );
    println!(
        "        started {} s after the touch",
        spread(
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
            spread(&tn, 1),
            spread(&edges, 0)
        );
        let ratios: Vec<f64> = tj.iter().zip(&tn).map(|(j, n)| j / n).collect();
        println!("      jobpool/ninja per round: {}", spread(&ratios, 4));
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
        spread(&ms_of(&settle_j), 1)
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
        println!("      {:<18} {:>20}  {what}", key, spread(&v, 1));
    };
    println!(
        "      {:<18} {:>20}  the whole process, from the parent (with the floors below)",
        "wall_ms",
        spread(&walls_j(&splits), 1)
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
