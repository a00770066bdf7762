//! Issue 4 under criterion: the ways to cap concurrency per job (see
//! `src/strategies/mod.rs`), compared per workload, one criterion group per workload.
//!
//! - W1: one job of 100 000 empty tasks, k = N.
//! - W2: 10 000 jobs of 8 empty tasks, k = 2.
//! - W5: CPU-bound jobs of 10-100 us spinning tasks, caps 1..=N.
//!
//! N is the number of cores. Throughput is in tasks. Criterion times runs only: whether each
//! strategy kept its caps, the sleeping workloads (W3, W4) and the whole table with targets
//! are in `cargo run --release -p jobpool-bench --example compare_strategies`.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use jobpool_bench::strategies::workload::{self, Workload};
use jobpool_bench::strategies::{Kind, Strategy};

/// Milliseconds of CPU work in W5 (so about this / N per run).
const W5_WORK_MS: u64 = 60;

fn group<'a>(c: &'a mut Criterion, w: &Workload) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(format!("{} {}", w.name, w.title));
    group
        .throughput(Throughput::Elements(w.total_tasks() as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

/// W1 and W2: empty tasks, timing dispatch alone.
fn empty(c: &mut Criterion, w: Workload) {
    let jobs = w.empty_specs();
    let mut group = group(c, &w);
    for kind in Kind::ALL {
        let strategy = Strategy::new(kind, w.threads);
        group.bench_function(kind.id(), |b| b.iter(|| strategy.run(&jobs)));
    }
    group.finish();
}

fn w1(c: &mut Criterion) {
    empty(c, workload::w1(num_cpus::get()));
}

fn w2(c: &mut Criterion) {
    empty(c, workload::w2(num_cpus::get()));
}

fn w5(c: &mut Criterion) {
    let w = workload::w5(num_cpus::get(), W5_WORK_MS);
    let mut group = group(c, &w);
    for kind in Kind::ALL {
        let strategy = Strategy::new(kind, w.threads);
        group.bench_function(kind.id(), |b| {
            b.iter_batched(
                || w.tracked_specs(None).0,
                |jobs| strategy.run(&jobs),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, w1, w2, w5);
criterion_main!(benches);
