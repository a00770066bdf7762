//! The core pool against rayon, on empty tasks: what dispatching one task costs.
//!
//! - W1: one job of 100 000 empty tasks with cap k = N (the pool's whole width).
//! - W2: 10 000 jobs of 8 empty tasks each with cap k = 2, all submitted, then all waited.
//!
//! Each workload is one criterion group with jobpool and two rayon baselines side by side, on a
//! rayon `ThreadPool` of the same N threads, uncapped:
//!
//! - `rayon_spawn`: every task `scope.spawn`ed, one heap-allocated task each, the way one
//!   would hand rayon a list of independent closures;
//! - `rayon_par_iter`: rayon's data-parallel path, `(0..n).into_par_iter().for_each(..)`, which
//!   splits the range in halves on demand and allocates nothing per element. In W2, one
//!   `par_iter` per job, each job `scope.spawn`ed, so that the jobs still run side by side.
//!
//! The `par_iter` body passes the index through `black_box`, so that the loop over the
//! elements is not optimized away: each element still costs a little, as a task does.
//!
//! Throughput is in tasks, so criterion's "thrpt" line reads as tasks per second; its time
//! divided by the task count is the cost per task. Pools are built once per group, outside the
//! measured loop.
//!
//! `cargo bench -p jobpool-bench --bench pool`; a comparison with other ways of capping
//! concurrency is in `benches/strategies.rs` and `examples/compare_strategies.rs`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use jobpool::Pool;
use rayon::prelude::*;

/// W1: tasks in the one job.
const W1_TASKS: usize = 100_000;
/// W2: jobs, tasks per job, and each job's cap.
const W2_JOBS: usize = 10_000;
const W2_TASKS_PER_JOB: usize = 8;
const W2_CAP: usize = 2;

fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

/// W1 on jobpool: one job, k = N.
fn w1_jobpool(pool: &Pool) {
    let job = pool.submit((0..W1_TASKS).map(|_| || ()), pool.threads());
    job.wait().expect("no task panics");
}

/// W1 on rayon: every task spawned into one scope.
fn w1_rayon_spawn(pool: &rayon::ThreadPool) {
    pool.scope(|s| {
        for _ in 0..W1_TASKS {
            s.spawn(|_| ());
        }
    });
}

/// W1 on rayon's data-parallel path: one `par_iter` over the tasks.
fn w1_rayon_par_iter(pool: &rayon::ThreadPool) {
    pool.install(|| {
        (0..W1_TASKS).into_par_iter().for_each(|i| {
            black_box(i);
        })
    });
}

/// W2 on jobpool: every job submitted, then every handle waited.
fn w2_jobpool(pool: &Pool) {
    let jobs: Vec<_> = (0..W2_JOBS)
        .map(|_| pool.submit((0..W2_TASKS_PER_JOB).map(|_| || ()), W2_CAP))
        .collect();
    for job in jobs {
        job.wait().expect("no task panics");
    }
}

/// W2 on rayon: the same tasks, uncapped, in one scope.
fn w2_rayon_spawn(pool: &rayon::ThreadPool) {
    pool.scope(|s| {
        for _ in 0..W2_JOBS {
            for _ in 0..W2_TASKS_PER_JOB {
                s.spawn(|_| ());
            }
        }
    });
}

/// W2 on rayon's data-parallel path: each job one `par_iter`, uncapped, spawned in one scope.
fn w2_rayon_par_iter(pool: &rayon::ThreadPool) {
    pool.scope(|s| {
        for _ in 0..W2_JOBS {
            s.spawn(|_| {
                (0..W2_TASKS_PER_JOB).into_par_iter().for_each(|i| {
                    black_box(i);
                })
            });
        }
    });
}

fn w1(c: &mut Criterion) {
    let threads = num_cpus::get();
    let mut group = c.benchmark_group(format!("W1 one job of {W1_TASKS} empty tasks, k=N"));
    group.throughput(Throughput::Elements(W1_TASKS as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    let pool = Pool::new(threads);
    group.bench_function(BenchmarkId::new("jobpool", format!("N={threads}")), |b| {
        b.iter(|| w1_jobpool(&pool))
    });
    drop(pool);
    let pool = rayon_pool(threads);
    group.bench_function(
        BenchmarkId::new("rayon_spawn", format!("N={threads}")),
        |b| b.iter(|| w1_rayon_spawn(&pool)),
    );
    group.bench_function(
        BenchmarkId::new("rayon_par_iter", format!("N={threads}")),
        |b| b.iter(|| w1_rayon_par_iter(&pool)),
    );
    group.finish();
}

fn w2(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!(
        "W2 {W2_JOBS} jobs of {W2_TASKS_PER_JOB} empty tasks, k={W2_CAP}"
    ));
    group.throughput(Throughput::Elements((W2_JOBS * W2_TASKS_PER_JOB) as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    let mut sizes = vec![num_cpus::get()];
    if !sizes.contains(&8) {
        sizes.push(8);
    }
    for threads in sizes {
        let pool = Pool::new(threads);
        group.bench_function(BenchmarkId::new("jobpool", format!("N={threads}")), |b| {
            b.iter(|| w2_jobpool(&pool))
        });
        drop(pool);
        let pool = rayon_pool(threads);
        group.bench_function(
            BenchmarkId::new("rayon_spawn", format!("N={threads}")),
            |b| b.iter(|| w2_rayon_spawn(&pool)),
        );
        group.bench_function(
            BenchmarkId::new("rayon_par_iter", format!("N={threads}")),
            |b| b.iter(|| w2_rayon_par_iter(&pool)),
        );
    }
    group.finish();
}

criterion_group!(benches, w1, w2);
criterion_main!(benches);
