//! What the strategies run: task bodies, jobs, the workloads W1-W5 and their lower bounds.
//!
//! Every strategy is handed the same `&[JobSpec<B>]`: a list of jobs, each `tasks` copies of
//! one body `B` with a cap. Each strategy turns the bodies into its own kind of task (an
//! unboxed closure for jobpool and rayon, a boxed one for the channel pools), which is part
//! of what is compared.

use std::hint::spin_loop;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The body of every task of a job. Cloned once per task.
pub trait Body: Clone + Send + Sync + 'static {
    /// Whether running it records concurrency and completion (`Tracked`); strategies skip
    /// their own bookkeeping for untracked bodies, so timed empty-task runs pay for nothing
    /// but dispatch.
    const TRACKED: bool;

    /// Runs one task.
    fn run(&self);

    /// Called by the strategy just before it submits the body's job.
    #[inline]
    fn submitted(&self) {}

    /// How long one task is meant to take (for static partitioning by load).
    fn nominal(&self) -> Duration;
}

/// An empty task: measures dispatch alone. Zero-sized, so a closure around it is too.
#[derive(Clone, Copy, Debug, Default)]
pub struct Empty;

impl Body for Empty {
    const TRACKED: bool = false;

    #[inline]
    fn run(&self) {}

    fn nominal(&self) -> Duration {
        Duration::ZERO
    }
}

/// What a tracked task does between its concurrency probes.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// Nothing.
    Nothing,
    /// `thread::sleep`: I/O-like, takes no core.
    Sleep(Duration),
    /// Busy-loops on the clock: CPU-bound.
    Spin(Duration),
}

impl Work {
    /// The intended length (a sleep overshoots it; see `measure_sleep`).
    pub fn nominal(self) -> Duration {
        match self {
            Work::Nothing => Duration::ZERO,
            Work::Sleep(d) | Work::Spin(d) => d,
        }
    }

    fn run(self) {
        match self {
            Work::Nothing => {}
            Work::Sleep(d) => std::thread::sleep(d),
            Work::Spin(d) => spin_for(d),
        }
    }
}

/// Busy-waits for `d` on the monotonic clock.
pub fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        spin_loop();
    }
}

/// Concurrency across all jobs of one run.
#[derive(Debug, Default)]
pub struct RunProbe {
    active: AtomicUsize,
    /// The most tasks (of any jobs) that ever ran at once.
    pub peak: AtomicUsize,
}

/// One job's probe: its concurrency, and when it was submitted and finished.
#[derive(Debug)]
pub struct JobProbe {
    run: Arc<RunProbe>,
    active: AtomicUsize,
    /// The most of the job's tasks that ever ran at once.
    pub peak: AtomicUsize,
    remaining: AtomicUsize,
    submitted_at: OnceLock<Instant>,
    finished_at: OnceLock<Instant>,
}

impl JobProbe {
    /// From the job's submission to the end of its last task.
    pub fn latency(&self) -> Option<Duration> {
        Some(
            self.finished_at
                .get()?
                .duration_since(*self.submitted_at.get()?),
        )
    }

    /// Whether every task ran.
    pub fn all_ran(&self) -> bool {
        self.remaining.load(Relaxed) == 0
    }
}

/// A task that records how many tasks of its job (and of the run) run at once around `work`:
/// `peak.fetch_max(active.fetch_add(1) + 1)`, the work, `active.fetch_sub(1)`.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub work: Work,
    pub probe: Arc<JobProbe>,
}

impl Body for Tracked {
    const TRACKED: bool = true;

    fn run(&self) {
        let p = &self.probe;
        // Relaxed suffices: each counter is one atomic variable, whose modification order
        // alone decides the peaks; nothing else is published through them.
        p.peak
            .fetch_max(p.active.fetch_add(1, Relaxed) + 1, Relaxed);
        p.run
            .peak
            .fetch_max(p.run.active.fetch_add(1, Relaxed) + 1, Relaxed);
        self.work.run();
        p.run.active.fetch_sub(1, Relaxed);
        p.active.fetch_sub(1, Relaxed);
        if p.remaining.fetch_sub(1, Relaxed) == 1 {
            let _ = p.finished_at.set(Instant::now());
        }
    }

    fn submitted(&self) {
        let _ = self.probe.submitted_at.set(Instant::now());
    }

    fn nominal(&self) -> Duration {
        self.work.nominal()
    }
}

/// One job as handed to a strategy: `tasks` copies of `body`, at most `cap` at once.
#[derive(Clone, Debug)]
pub struct JobSpec<B> {
    pub tasks: usize,
    pub cap: usize,
    pub body: B,
}

/// One job of a workload, before bodies are made for it.
#[derive(Clone, Copy, Debug)]
pub struct JobShape {
    pub tasks: usize,
    pub cap: usize,
    pub work: Work,
}

/// How a workload is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    /// Wall time per task (W1, W2).
    NsPerTask,
    /// Makespan over the lower bound (W3, W5).
    MakespanOverBound,
    /// The last job's latency over one task of the first job plus its own work (W4).
    SmallJobLatency,
}

/// A workload: jobs submitted at once to a pool of `threads`.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: &'static str,
    pub title: String,
    pub threads: usize,
    pub jobs: Vec<JobShape>,
    pub score: Score,
}

impl Workload {
    pub fn total_tasks(&self) -> usize {
        self.jobs.iter().map(|j| j.tasks).sum()
    }

    /// Jobs of empty, untracked tasks (for timing dispatch alone).
    pub fn empty_specs(&self) -> Vec<JobSpec<Empty>> {
        self.jobs
            .iter()
            .map(|j| JobSpec {
                tasks: j.tasks,
                cap: j.cap,
                body: Empty,
            })
            .collect()
    }

    /// Jobs of tracked tasks doing `work` (or the workload's own work if `None`), and their
    /// probes.
    pub fn tracked_specs(
        &self,
        work: Option<Work>,
    ) -> (Vec<JobSpec<Tracked>>, Vec<Arc<JobProbe>>, Arc<RunProbe>) {
        let run = Arc::new(RunProbe::default());
        let mut probes = Vec::with_capacity(self.jobs.len());
        let specs = self
            .jobs
            .iter()
            .map(|j| {
                let probe = Arc::new(JobProbe {
                    run: run.clone(),
                    active: AtomicUsize::new(0),
                    peak: AtomicUsize::new(0),
                    remaining: AtomicUsize::new(j.tasks),
                    submitted_at: OnceLock::new(),
                    finished_at: OnceLock::new(),
                });
                probes.push(probe.clone());
                JobSpec {
                    tasks: j.tasks,
                    cap: j.cap,
                    body: Tracked {
                        work: work.unwrap_or(j.work),
                        probe,
                    },
                }
            })
            .collect();
        (specs, probes, run)
    }

    /// The makespan no schedule on `threads` workers can beat, taking each task to last
    /// `length(work)`: the total work spread over every worker, and each job's tasks run
    /// `min(cap, threads)` at a time (rounded up to whole waves: a wave lasts one task).
    pub fn lower_bound(&self, length: impl Fn(Work) -> Duration) -> Duration {
        let total: Duration = self
            .jobs
            .iter()
            .map(|j| length(j.work) * j.tasks as u32)
            .sum();
        let spread = total / self.threads as u32;
        let per_job = self
            .jobs
            .iter()
            .map(|j| {
                // Every task of a job has the same length, so its tasks take whole waves.
                let width = j.cap.min(self.threads);
                length(j.work) * j.tasks.div_ceil(width) as u32
            })
            .max()
            .unwrap_or_default();
        spread.max(per_job)
    }
}

/// W1: one job of 100 000 empty tasks, k = N.
pub fn w1(threads: usize) -> Workload {
    Workload {
        name: "W1",
        title: format!("one job of 100000 empty tasks, k=N={threads}"),
        threads,
        jobs: vec![JobShape {
            tasks: 100_000,
            cap: threads,
            work: Work::Nothing,
        }],
        score: Score::NsPerTask,
    }
}

/// W2: 10 000 jobs of 8 empty tasks, k = 2.
pub fn w2(threads: usize) -> Workload {
    Workload {
        name: "W2",
        title: format!("10000 jobs x 8 empty tasks, k=2, N={threads}"),
        threads,
        jobs: vec![
            JobShape {
                tasks: 8,
                cap: 2,
                work: Work::Nothing,
            };
            10_000
        ],
        score: Score::NsPerTask,
    }
}

/// W3: mixed caps, sleeping tasks, N = 8: 64 x 2 ms k=2, 64 x 2 ms k=4, 32 x 1 ms k=8.
pub fn w3() -> Workload {
    let ms = Duration::from_millis;
    Workload {
        name: "W3",
        title: "sleeps, N=8: 64x2ms k=2 + 64x2ms k=4 + 32x1ms k=8".into(),
        threads: 8,
        jobs: vec![
            JobShape {
                tasks: 64,
                cap: 2,
                work: Work::Sleep(ms(2)),
            },
            JobShape {
                tasks: 64,
                cap: 4,
                work: Work::Sleep(ms(2)),
            },
            JobShape {
                tasks: 32,
                cap: 8,
                work: Work::Sleep(ms(1)),
            },
        ],
        score: Score::MakespanOverBound,
    }
}

/// W4: small behind big, N = 4: 400 x 1 ms k=4, then 4 x 1 ms k=4.
pub fn w4() -> Workload {
    let ms = Duration::from_millis;
    Workload {
        name: "W4",
        title: "sleeps, N=4: 400x1ms k=4, then 4x1ms k=4".into(),
        threads: 4,
        jobs: vec![
            JobShape {
                tasks: 400,
                cap: 4,
                work: Work::Sleep(ms(1)),
            },
            JobShape {
                tasks: 4,
                cap: 4,
                work: Work::Sleep(ms(1)),
            },
        ],
        score: Score::SmallJobLatency,
    }
}

/// W5: CPU-bound, N = cores: jobs of spinning tasks of 10-100 us (a fixed pseudo-random
/// sequence), with caps cycling 1..=N; about `total_ms` of work in all.
pub fn w5(threads: usize, total_ms: u64) -> Workload {
    // A fixed LCG, so every strategy and every run gets the same lengths.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let jobs_n = 3 * threads.max(2);
    let per_job = Duration::from_millis(total_ms) / jobs_n as u32;
    let jobs = (0..jobs_n)
        .map(|j| {
            // Each job has one task length (so its bound is exact), 10-100 us.
            let micros = 10 + next() % 91;
            let len = Duration::from_micros(micros);
            JobShape {
                tasks: (per_job.as_nanos() / len.as_nanos()).max(1) as usize,
                cap: 1 + j % threads,
                work: Work::Spin(len),
            }
        })
        .collect();
    Workload {
        name: "W5",
        title: format!(
            "spins 10-100us, N={threads}: {jobs_n} jobs, caps 1..={threads}, ~{total_ms}ms of work"
        ),
        threads,
        jobs,
        score: Score::MakespanOverBound,
    }
}

/// The median real length of `thread::sleep(d)` on this machine, over `samples` sleeps.
pub fn measure_sleep(d: Duration, samples: usize) -> Duration {
    let mut lengths: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            std::thread::sleep(d);
            start.elapsed()
        })
        .collect();
    lengths.sort();
    lengths[lengths.len() / 2]
}
