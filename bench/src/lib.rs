//! Benchmarks of `jobpool`, kept out of the library's own package so that building the
//! library, its examples and its tests never builds criterion or rayon.
//!
//! - `benches/pool.rs`: the core pool against rayon on empty tasks (criterion).
//! - `benches/strategies.rs`: the ways to cap concurrency per job, under criterion.
//! - `benches/dag.rs`: how close the dependency graph comes to the best schedule.
//! - `examples/compare_strategies.rs`: every strategy on W1-W5, interleaved, in one table.
//! - `examples/flood.rs`: W6, runs of a small graph arriving faster than the pool can serve
//!   them, against an oldest-run-first schedule simulated in [`flood_sim`].
//! - `examples/job_control.rs`: W7, urgent jobs arriving during a bulk batch, with and without
//!   `Priority::High`; W8, flaky tasks retried inside the task or under a `Retry` policy.
//! - `examples/one_big_job.rs`, `examples/small_jobs.rs`: W1 and W2 alone, to compare builds.
//! - `examples/observe_cost.rs`: what listening to a pool's events costs on W1 and W2.
//! - `examples/vs_rayon.rs`: one big job and many small jobs against rayon's `par_iter`, with
//!   [`bare_shape`], a bare pool of jobpool's shape, beside them.
//!
//! ```text
//! cargo bench -p jobpool-bench                      # every suite
//! cargo bench -p jobpool-bench --bench pool
//! cargo run --release -p jobpool-bench --example compare_strategies
//! ```
//!
//! The strategies themselves are in [`strategies`]. The figures they gave are in
//! `BENCHMARKS.md` at the repository's root.

pub mod bare_shape;
pub mod cli;
pub mod flood_sim;
pub mod strategies;
pub mod summary;
