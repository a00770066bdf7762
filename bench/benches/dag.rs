//! How close the dependency graph comes to the best possible schedule, and what it costs per
//! module.
//!
//! - `layered`: 10 layers of 10 modules, each of 20 tasks of 1 ms (cap 4); every module of a
//!   layer depends on every module of the layer before.
//! - `fan_out_in`: one module, then 50 modules of 8 tasks of 1 ms (cap 2) that need it, then one
//!   module that needs them all.
//! - `overhead_chain` / `overhead_wide`: 1000 modules of one empty task, in a chain or side by
//!   side: the run's time divided by 1000 is the scheduling cost per module.
//!
//! For the first two, the bench also prints the makespan against the lower bound
//! `max(critical path, total work / N)`, computed from the measured task times. The tasks
//! sleep rather than spin, so that the figure measures the scheduling rather than how busy the
//! machine's cores are. Run with `cargo bench -p jobpool-bench --bench dag`; add `-- --quick` for a short run.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use jobpool::{Context, Dag, Pool, TaskResult};

const THREADS: usize = 8;
const TASK: Duration = Duration::from_millis(1);

/// Work for one task, and the nanoseconds it really took added to `spent`.
fn work(spent: &Arc<AtomicU64>) -> impl Fn(&Context) -> TaskResult<()> + Send + Sync + 'static {
    let spent = spent.clone();
    move |_| {
        let start = Instant::now();
        std::thread::sleep(TASK);
        spent.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        Ok(())
    }
}

/// A graph, and its shape for the bound: (tasks, cap) per module and its dependencies.
struct Workload {
    dag: Dag,
    shape: Vec<(usize, usize, Vec<usize>)>,
    spent: Arc<AtomicU64>,
}

fn workload(shape: Vec<(usize, usize, Vec<usize>)>) -> Workload {
    let spent = Arc::new(AtomicU64::new(0));
    let mut dag = Dag::new();
    for (i, (tasks, cap, deps)) in shape.iter().enumerate() {
        let tasks = (0..*tasks).map(|_| work(&spent));
        dag.module(format!("m{i}"), *cap, tasks)
            .unwrap()
            .after(deps.iter().map(|d| format!("m{d}")))
            .unwrap();
    }
    Workload { dag, shape, spent }
}

fn layered() -> Workload {
    let (layers, width) = (10, 10);
    let shape = (0..layers * width)
        .map(|i| {
            let layer = i / width;
            let deps = if layer == 0 {
                vec![]
            } else {
                ((layer - 1) * width..layer * width).collect()
            };
            (20, 4, deps)
        })
        .collect();
    workload(shape)
}

fn fan_out_in() -> Workload {
    let mut shape = vec![(8, 2, vec![])];
    shape.extend((0..50).map(|_| (8, 2, vec![0])));
    shape.push((8, 2, (1..=50).collect()));
    workload(shape)
}

/// Two lower bounds on the makespan of one run that spent `spent` in its tasks: the plain
/// `max(critical path, total work / N)`, and a tighter one for graphs in layers where every
/// module needs every module of the layer before (both workloads here): the layers cannot
/// overlap, so the sum over layers of `max(longest module, layer's work / N)`.
fn lower_bounds(w: &Workload, spent: Duration, threads: usize) -> (Duration, Duration) {
    let tasks: usize = w.shape.iter().map(|(t, _, _)| t).sum();
    let per_task = spent / tasks as u32;
    // The shortest a module can take: its tasks in rounds of min(cap, threads).
    let shortest = |t: usize, cap: usize| per_task * t.div_ceil(cap.min(threads)) as u32;
    let mut finish = vec![Duration::ZERO; w.shape.len()];
    let mut depth = vec![0; w.shape.len()];
    for (i, (t, cap, deps)) in w.shape.iter().enumerate() {
        let ready = deps.iter().map(|&d| finish[d]).max().unwrap_or_default();
        finish[i] = ready + shortest(*t, *cap);
        depth[i] = deps.iter().map(|&d| depth[d] + 1).max().unwrap_or(0);
    }
    let critical = finish.into_iter().max().unwrap_or_default();
    let plain = critical.max(spent / threads as u32);
    let layers = depth.iter().max().map_or(0, |d| d + 1);
    let layered: Duration = (0..layers)
        .map(|layer| {
            let members = w.shape.iter().zip(&depth).filter(|(_, d)| **d == layer);
            let (mut longest, mut work) = (Duration::ZERO, Duration::ZERO);
            for ((t, cap, _), _) in members {
                longest = longest.max(shortest(*t, *cap));
                work += per_task * *t as u32;
            }
            longest.max(work / threads as u32)
        })
        .sum();
    (plain, layered.max(plain))
}

fn report_bound(name: &str, w: &Workload, pool: &Pool) {
    for _ in 0..3 {
        w.spent.store(0, Relaxed);
        let start = Instant::now();
        let report = w.dag.run(pool).unwrap();
        let makespan = start.elapsed();
        assert!(report.is_success());
        let spent = Duration::from_nanos(w.spent.load(Relaxed));
        let (plain, layered) = lower_bounds(w, spent, pool.threads());
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "{name}: makespan {:.1} ms; bound max(critical path, work/N) {:.1} ms, ratio {:.3}; \
             layer-by-layer bound {:.1} ms, ratio {:.3}",
            ms(makespan),
            ms(plain),
            ms(makespan) / ms(plain),
            ms(layered),
            ms(makespan) / ms(layered),
        );
    }
}

fn empty_modules(chain: bool) -> Dag {
    let mut dag = Dag::new();
    for i in 0..1000 {
        let module = dag
            .module(format!("m{i}"), 1, [|_: &Context| Ok(())])
            .unwrap();
        if chain && i > 0 {
            module.after([format!("m{}", i - 1)]).unwrap();
        }
    }
    dag
}

fn bench(c: &mut Criterion) {
    let pool = Pool::new(THREADS);
    let mut group = c.benchmark_group("dag");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));

    let layered = layered();
    report_bound("layered 10x10x20 x 1ms", &layered, &pool);
    group.bench_function("layered_10x10x20_1ms", |b| {
        b.iter(|| layered.dag.run(&pool).unwrap())
    });

    let fan = fan_out_in();
    report_bound("fan-out/in 1+50+1 x 8 x 1ms", &fan, &pool);
    group.bench_function("fan_out_in_50x8_1ms", |b| {
        b.iter(|| fan.dag.run(&pool).unwrap())
    });

    for (name, chain) in [("overhead_chain_1000", true), ("overhead_wide_1000", false)] {
        let dag = empty_modules(chain);
        let start = Instant::now();
        let runs = 20;
        for _ in 0..runs {
            dag.run(&pool).unwrap();
        }
        eprintln!(
            "{name}: {:.2} us per module",
            start.elapsed().as_secs_f64() * 1e6 / (runs as f64 * 1000.0)
        );
        group.bench_function(name, |b| b.iter(|| dag.run(&pool).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
