//! The cost of caching: a graph of 1 ms tasks run without a cache and with a fresh one,
//! and what storing its entries costs the file system alone.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use jobpool::{Cache, Pool, RunOptions};
use jobpool_bench::summary::{median, spread};

use crate::graph::{build_dag, write_inputs, Shape, SplitMix};
use crate::{verdict, Args};

/// The task length of the overhead graph.
const TASK: Duration = Duration::from_millis(1);
/// Target.
const TARGET_OVERHEAD: f64 = 1.05;

pub(crate) fn overhead_part(args: &Args, root: &Path) {
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
    println!("  a no cache          {:>22}", spread(&a, 1));
    println!(
        "  b fresh cache       {:>22}   (run_with alone {})",
        spread(&b, 1),
        spread(&b_run, 1)
    );
    let ratios: Vec<f64> = b.iter().zip(&a).map(|(b, a)| b / a).collect();
    let slower = ratios.iter().filter(|&&r| r > 1.0).count();
    println!(
        "  b/a per round: {}, cache slower in {slower} of {} rounds; per module: {:.1} us \
         of wall time",
        spread(&ratios, 3),
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
        spread(&c, 1),
        spread(
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
