//! Ways to run many jobs, each with a concurrency cap, on a fixed set of threads: compact,
//! faithful versions of what people do instead of a token count, to measure jobpool against
//! (issue 4). Shared by `benches/strategies.rs` and `examples/compare_strategies.rs`.
//!
//! | # | strategy | file |
//! |---|----------|------|
//! | 1 | token count (jobpool) | `token_count.rs` |
//! | 2 | channel of channels (Go's dynamic pool) | `chan_of_chans.rs` |
//! | 3 | semaphore in the task, on a shared queue and on rayon | `semaphore.rs`, `queue_pool.rs` |
//! | 4 | a pool (k threads) per job | `pool_per_job.rs` |
//! | 5 | uncapped: rayon `spawn`, rayon `par_iter`, a shared queue | `uncapped.rs`, `queue_pool.rs` |
//! | 6 | static partition | `static_partition.rs` |
//!
//! The workloads, task bodies and lower bounds are in `workload.rs`.

pub mod chan_of_chans;
pub mod pool_per_job;
pub mod queue_pool;
pub mod semaphore;
pub mod static_partition;
pub mod sync;
pub mod token_count;
pub mod uncapped;
pub mod workload;

use std::sync::atomic::Ordering::Relaxed;

use sync::BlockStats;
use workload::{Body, JobSpec};

/// What a strategy reports of one run, beside what the tasks' probes saw.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Semaphore strategies: how workers blocked on caps.
    pub blocks: Option<Blocks>,
    /// jobpool: each job's `peak_running`, the pool's own count.
    pub pool_peaks: Option<Vec<usize>>,
    /// Channel of channels: times a worker blocked on an open, empty job channel.
    pub stalls: Option<u64>,
}

/// Time workers spent blocked on job semaphores in one run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Blocks {
    pub events: u64,
    pub events_runnable: u64,
    pub blocked_ns: u64,
    pub blocked_runnable_ns: u64,
}

impl Report {
    fn with_blocks(tracked: bool, stats: &BlockStats) -> Report {
        Report {
            blocks: tracked.then(|| Blocks {
                events: stats.events.load(Relaxed),
                events_runnable: stats.events_runnable.load(Relaxed),
                blocked_ns: stats.blocked_ns.load(Relaxed),
                blocked_runnable_ns: stats.blocked_runnable_ns.load(Relaxed),
            }),
            ..Report::default()
        }
    }
}

/// Which strategy, without its threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    TokenCount,
    ChanOfChans,
    SemaphoreQueue,
    SemaphoreRayon,
    PoolPerJob,
    UncappedRayonSpawn,
    UncappedRayonParIter,
    UncappedQueue,
    StaticPartition,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::TokenCount,
        Kind::ChanOfChans,
        Kind::SemaphoreQueue,
        Kind::SemaphoreRayon,
        Kind::PoolPerJob,
        Kind::UncappedRayonSpawn,
        Kind::UncappedRayonParIter,
        Kind::UncappedQueue,
        Kind::StaticPartition,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::TokenCount => "1 token count (jobpool)",
            Kind::ChanOfChans => "2 channel of channels",
            Kind::SemaphoreQueue => "3 semaphore, shared queue",
            Kind::SemaphoreRayon => "3 semaphore, rayon",
            Kind::PoolPerJob => "4 pool per job",
            Kind::UncappedRayonSpawn => "5 uncapped rayon spawn",
            Kind::UncappedRayonParIter => "5 uncapped rayon par_iter",
            Kind::UncappedQueue => "5 uncapped shared queue",
            Kind::StaticPartition => "6 static partition",
        }
    }

    /// A short name for criterion's benchmark ids.
    pub fn id(self) -> &'static str {
        match self {
            Kind::TokenCount => "jobpool",
            Kind::ChanOfChans => "chan_of_chans",
            Kind::SemaphoreQueue => "semaphore_queue",
            Kind::SemaphoreRayon => "semaphore_rayon",
            Kind::PoolPerJob => "pool_per_job",
            Kind::UncappedRayonSpawn => "uncapped_rayon",
            Kind::UncappedRayonParIter => "uncapped_rayon_par_iter",
            Kind::UncappedQueue => "uncapped_queue",
            Kind::StaticPartition => "static_partition",
        }
    }

    /// Whether it enforces the jobs' caps (the uncapped ones are baselines).
    pub fn enforces_caps(self) -> bool {
        !matches!(
            self,
            Kind::UncappedRayonSpawn | Kind::UncappedRayonParIter | Kind::UncappedQueue
        )
    }
}

/// A strategy with its threads (built once, outside any measured loop).
pub enum Strategy {
    TokenCount(jobpool::Pool),
    ChanOfChans(chan_of_chans::ChanOfChans),
    SemaphoreQueue(queue_pool::QueuePool),
    SemaphoreRayon(rayon::ThreadPool),
    PoolPerJob,
    UncappedRayonSpawn(rayon::ThreadPool),
    UncappedRayonParIter(rayon::ThreadPool),
    UncappedQueue(queue_pool::QueuePool),
    StaticPartition(static_partition::StaticPool),
}

impl Strategy {
    /// Starts `kind`'s threads: `threads` of them (a pool per job starts its own per job).
    pub fn new(kind: Kind, threads: usize) -> Strategy {
        let rayon = || {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("rayon pool")
        };
        match kind {
            Kind::TokenCount => Strategy::TokenCount(jobpool::Pool::new(threads)),
            Kind::ChanOfChans => Strategy::ChanOfChans(chan_of_chans::ChanOfChans::new(threads)),
            Kind::SemaphoreQueue => Strategy::SemaphoreQueue(queue_pool::QueuePool::new(threads)),
            Kind::SemaphoreRayon => Strategy::SemaphoreRayon(rayon()),
            Kind::PoolPerJob => Strategy::PoolPerJob,
            Kind::UncappedRayonSpawn => Strategy::UncappedRayonSpawn(rayon()),
            Kind::UncappedRayonParIter => Strategy::UncappedRayonParIter(rayon()),
            Kind::UncappedQueue => Strategy::UncappedQueue(queue_pool::QueuePool::new(threads)),
            Kind::StaticPartition => {
                Strategy::StaticPartition(static_partition::StaticPool::new(threads))
            }
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Strategy::TokenCount(_) => Kind::TokenCount,
            Strategy::ChanOfChans(_) => Kind::ChanOfChans,
            Strategy::SemaphoreQueue(_) => Kind::SemaphoreQueue,
            Strategy::SemaphoreRayon(_) => Kind::SemaphoreRayon,
            Strategy::PoolPerJob => Kind::PoolPerJob,
            Strategy::UncappedRayonSpawn(_) => Kind::UncappedRayonSpawn,
            Strategy::UncappedRayonParIter(_) => Kind::UncappedRayonParIter,
            Strategy::UncappedQueue(_) => Kind::UncappedQueue,
            Strategy::StaticPartition(_) => Kind::StaticPartition,
        }
    }

    /// Submits every job at once and returns when all have finished.
    pub fn run<B: Body>(&self, jobs: &[JobSpec<B>]) -> Report {
        match self {
            Strategy::TokenCount(pool) => token_count::run(pool, jobs),
            Strategy::ChanOfChans(pool) => pool.run(jobs),
            Strategy::SemaphoreQueue(pool) => pool.run(jobs, true),
            Strategy::SemaphoreRayon(pool) => semaphore::run_rayon(pool, jobs),
            Strategy::PoolPerJob => pool_per_job::run(jobs),
            Strategy::UncappedRayonSpawn(pool) => uncapped::run_rayon_spawn(pool, jobs),
            Strategy::UncappedRayonParIter(pool) => uncapped::run_rayon_par_iter(pool, jobs),
            Strategy::UncappedQueue(pool) => pool.run(jobs, false),
            Strategy::StaticPartition(pool) => pool.run(jobs),
        }
    }
}
