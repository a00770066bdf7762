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

mod graph;
mod hashing;
mod noop;
mod overhead;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use jobpool_bench::cli::positive;
use jobpool_bench::summary::load_average;

use graph::child;
use hashing::hash_part;
use noop::graph_part;
use overhead::overhead_part;

/// The size of every input file.
const INPUT_SIZE: usize = 4096;
/// Every `FAN_EVERY`-th module of a chain is a fan-in module...
const FAN_EVERY: usize = 10;
/// ...that also depends on the modules before it in this many other chains.
const FAN_EXTRA: usize = 4;

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
        let mut number = |flag: &str| positive(it.next(), flag);
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

// ---------------------------------------------------------------------------------------------
// Shared by the parts

static START: OnceLock<Instant> = OnceLock::new();

fn started_hint() -> Duration {
    START.get_or_init(Instant::now).elapsed()
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}
