//! W6, the flood: its workload, the statistics it is scored by, and a simulation of the
//! schedule it is compared with.
//!
//! A *run* is a chain of stages (W6: `fetch` 12 tasks of cap 4, then `aggregate` 4 tasks of
//! cap 2, then `store` 1 task); a stage's tasks become runnable when every task of the stage
//! before it is done. Runs arrive evenly spaced, faster than the workers can serve them, then
//! stop arriving. The example `examples/flood.rs` runs this on jobpool (each run a `Dag`);
//! [`oldest_run_first`] computes what an idealised scheduler would have done with it, and
//! [`Stats`] scores either the same way.
//!
//! The simulation is deterministic and pure: N identical workers, every task of a stage
//! exactly the stage's task length, no overhead at all. Whenever a worker is free it starts a
//! runnable task of the *oldest* run that has one (respecting the stage's cap). That is the
//! schedule that finishes runs in the order they arrived, as early as the workers allow.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// One stage of a run: `tasks` tasks of length `task`, at most `cap` of them at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// How many tasks the stage has.
    pub tasks: usize,
    /// How many of them may run at once (at least 1).
    pub cap: usize,
    /// How long each task takes.
    pub task: Duration,
}

/// A flood: `arrivals` runs, one every `spacing` from time zero, each a chain of `stages`,
/// served by `workers` workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The number of workers (the pool's threads), N.
    pub workers: usize,
    /// How many runs arrive.
    pub arrivals: usize,
    /// The time between two arrivals.
    pub spacing: Duration,
    /// The stages of every run, in order.
    pub stages: Vec<Stage>,
}

impl Workload {
    /// W6 with tasks of length `task` (1 ms nominally): N = 4 workers; 400 runs, one every
    /// 2.5 ms (1 s in all); each run `fetch` 12 tasks of cap 4, then `aggregate` 4 tasks of
    /// cap 2, then `store` 1 task of cap 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobpool_bench::flood_sim::Workload;
    ///
    /// let w6 = Workload::w6(Duration::from_millis(1));
    /// assert_eq!(w6.work_per_run(), Duration::from_millis(17));
    /// assert_eq!(w6.critical_path(), Duration::from_millis(6));
    /// assert_eq!(w6.capacity().floor(), 235.0);
    /// ```
    pub fn w6(task: Duration) -> Workload {
        Workload {
            workers: 4,
            arrivals: 400,
            spacing: Duration::from_micros(2500),
            stages: vec![
                Stage {
                    tasks: 12,
                    cap: 4,
                    task,
                },
                Stage {
                    tasks: 4,
                    cap: 2,
                    task,
                },
                Stage {
                    tasks: 1,
                    cap: 1,
                    task,
                },
            ],
        }
    }

    /// The work of one run: every task's length, summed.
    pub fn work_per_run(&self) -> Duration {
        self.stages.iter().map(|s| s.task * count(s.tasks)).sum()
    }

    /// The work of every run together.
    pub fn total_work(&self) -> Duration {
        self.work_per_run() * count(self.arrivals)
    }

    /// How long one run takes at the least, alone on the workers: each stage takes
    /// `ceil(tasks / min(cap, N))` task lengths.
    pub fn critical_path(&self) -> Duration {
        self.stages
            .iter()
            .map(|s| s.task * count(s.tasks.div_ceil(s.cap.min(self.workers).max(1))))
            .sum()
    }

    /// How long runs keep arriving: `arrivals x spacing` (the last run arrives one spacing
    /// before its end).
    pub fn flood(&self) -> Duration {
        self.spacing * count(self.arrivals)
    }

    /// When the `index`-th run (from 0) arrives.
    pub fn arrival(&self, index: usize) -> Duration {
        self.spacing * count(index)
    }

    /// How many runs the workers could finish while runs arrive, were they busy all along:
    /// `N / work per run x flood` (W6: 4 / 17 ms x 1 s = 235.3).
    pub fn capacity(&self) -> f64 {
        self.workers as f64 * self.flood().as_secs_f64() / self.work_per_run().as_secs_f64()
    }

    /// Panics unless the workload can be served: at least one worker, every cap at least 1.
    fn check(&self) {
        assert!(self.workers > 0, "a workload needs at least one worker");
        assert!(
            self.stages.iter().all(|s| s.cap > 0),
            "every stage needs a cap of at least 1"
        );
    }
}

/// A `usize` count as the `u32` that `Duration` multiplies by.
fn count(n: usize) -> u32 {
    u32::try_from(n).expect("counts in a workload fit in a u32")
}

/// When one run arrived and when its last stage was done, both from the same origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunTimes {
    /// When the run arrived.
    pub arrival: Duration,
    /// When the last task of its last stage was done.
    pub done: Duration,
}

impl RunTimes {
    /// From arrival to done.
    pub fn latency(&self) -> Duration {
        self.done.saturating_sub(self.arrival)
    }
}

/// How a flood was served: the figures W6 reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// The number of runs.
    pub runs: usize,
    /// Runs done by the end of the flood: at most [`Workload::flood`] after the first arrival.
    pub finished_in_flood: usize,
    /// The mean of the runs' latencies (arrival to done).
    pub mean_latency: Duration,
    /// The 99th percentile of the latencies (nearest rank: the smallest latency that at least
    /// 99% of the runs do not exceed).
    pub p99_latency: Duration,
    /// From the first arrival to the last run done.
    pub makespan: Duration,
    /// The least makespan any schedule could reach:
    /// `max(total work / N, last arrival - first arrival + one run's critical path)`.
    pub lower_bound: Duration,
    /// Total work / N: the makespan of a schedule that keeps every worker busy throughout.
    pub work_over_workers: Duration,
}

impl Stats {
    /// Scores `runs`, one entry per run of `workload` (in any order). The bounds come from
    /// `workload` (its task lengths, workers and arrival count), the arrival times from `runs`.
    ///
    /// # Panics
    ///
    /// If `runs` is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobpool_bench::flood_sim::{oldest_run_first, Stats, Workload};
    ///
    /// let mut one = Workload::w6(Duration::from_millis(1));
    /// one.arrivals = 1;
    /// let stats = Stats::new(&one, &oldest_run_first(&one));
    /// assert_eq!(stats.mean_latency, Duration::from_millis(6));
    /// assert_eq!(stats.makespan_over_bound(), 1.0);
    /// ```
    pub fn new(workload: &Workload, runs: &[RunTimes]) -> Stats {
        assert!(!runs.is_empty(), "no runs to score");
        let first = runs.iter().map(|r| r.arrival).min().expect("not empty");
        let last = runs.iter().map(|r| r.arrival).max().expect("not empty");
        let end = runs.iter().map(|r| r.done).max().expect("not empty");
        let mut latencies: Vec<Duration> = runs.iter().map(RunTimes::latency).collect();
        latencies.sort_unstable();
        let n = latencies.len();
        let work_over_workers = workload.total_work() / count(workload.workers);
        Stats {
            runs: n,
            finished_in_flood: runs
                .iter()
                .filter(|r| r.done.saturating_sub(first) <= workload.flood())
                .count(),
            mean_latency: latencies.iter().sum::<Duration>() / count(n),
            p99_latency: latencies[(99 * n).div_ceil(100) - 1],
            makespan: end.saturating_sub(first),
            lower_bound: work_over_workers.max(last - first + workload.critical_path()),
            work_over_workers,
        }
    }

    /// The makespan over its lower bound (at least 1 for any real schedule).
    pub fn makespan_over_bound(&self) -> f64 {
        self.makespan.as_secs_f64() / self.lower_bound.as_secs_f64()
    }

    /// The makespan over total work / N.
    pub fn makespan_over_work(&self) -> f64 {
        self.makespan.as_secs_f64() / self.work_over_workers.as_secs_f64()
    }
}

/// A run inside the simulation.
#[derive(Clone, Copy, Debug)]
struct SimRun {
    arrival: Duration,
    /// The stage it is in; `stages.len()` once done.
    stage: usize,
    /// Of the current stage: tasks started, tasks running, tasks done.
    started: usize,
    running: usize,
    finished: usize,
    done: Option<Duration>,
}

impl SimRun {
    /// Moves past stages with no tasks; marks the run done at `now` if none is left.
    fn skip_empty_stages(&mut self, stages: &[Stage], now: Duration) {
        while self.stage < stages.len() && stages[self.stage].tasks == 0 {
            self.stage += 1;
        }
        if self.stage == stages.len() {
            self.done = Some(now);
        }
    }

    /// Whether a task of the run could start now.
    fn runnable(&self, stages: &[Stage]) -> bool {
        stages
            .get(self.stage)
            .is_some_and(|s| self.done.is_none() && self.started < s.tasks && self.running < s.cap)
    }

    /// One of its running tasks ended at `now`.
    fn task_done(&mut self, stages: &[Stage], now: Duration) {
        self.running -= 1;
        self.finished += 1;
        if self.finished == stages[self.stage].tasks {
            self.stage += 1;
            (self.started, self.running, self.finished) = (0, 0, 0);
            self.skip_empty_stages(stages, now);
        }
    }
}

/// The flood served by the idealised "oldest run first" schedule: each run's arrival and done
/// times, in arrival order.
///
/// Events at the same instant are taken together: every task that ends then, and every run
/// that arrives then, before any free worker picks its next task. A free worker then takes a
/// runnable task of the oldest run that has one. A stage with no tasks takes no time.
///
/// # Panics
///
/// If `workload` has no worker or a stage of cap 0.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jobpool_bench::flood_sim::{oldest_run_first, Stage, Workload};
///
/// let ms = Duration::from_millis(1);
/// let w = Workload {
///     workers: 1,
///     arrivals: 2,
///     spacing: Duration::ZERO,
///     stages: vec![Stage { tasks: 1, cap: 1, task: ms }],
/// };
/// let done: Vec<_> = oldest_run_first(&w).iter().map(|r| r.done).collect();
/// assert_eq!(done, [ms, 2 * ms]);
/// ```
pub fn oldest_run_first(workload: &Workload) -> Vec<RunTimes> {
    workload.check();
    let stages = &workload.stages[..];
    let mut runs: Vec<SimRun> = (0..workload.arrivals)
        .map(|i| SimRun {
            arrival: workload.arrival(i),
            stage: 0,
            started: 0,
            running: 0,
            finished: 0,
            done: None,
        })
        .collect();
    // Task ends: (when, which run), earliest first.
    let mut ends: BinaryHeap<Reverse<(Duration, usize)>> = BinaryHeap::new();
    let mut free = workload.workers;
    // Runs [..arrived] have arrived; runs [..oldest] are done.
    let (mut arrived, mut oldest) = (0, 0);

    loop {
        let next_end = ends.peek().map(|Reverse((at, _))| *at);
        let next_arrival = runs.get(arrived).map(|r| r.arrival);
        let now = match (next_end, next_arrival) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => break,
        };
        while let Some(&Reverse((at, run))) = ends.peek() {
            if at != now {
                break;
            }
            ends.pop();
            free += 1;
            runs[run].task_done(stages, now);
        }
        while arrived < runs.len() && runs[arrived].arrival == now {
            runs[arrived].skip_empty_stages(stages, now);
            arrived += 1;
        }
        while oldest < arrived && runs[oldest].done.is_some() {
            oldest += 1;
        }
        for (index, run) in runs.iter_mut().enumerate().take(arrived).skip(oldest) {
            if free == 0 {
                break;
            }
            while free > 0 && run.runnable(stages) {
                run.started += 1;
                run.running += 1;
                free -= 1;
                ends.push(Reverse((now + stages[run.stage].task, index)));
            }
        }
    }

    runs.iter()
        .map(|r| RunTimes {
            arrival: r.arrival,
            done: r.done.expect("every run ends once no task is left to end"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn stage(tasks: usize, cap: usize) -> Stage {
        Stage {
            tasks,
            cap,
            task: MS,
        }
    }

    fn with_arrivals(mut w: Workload, arrivals: usize, spacing: Duration) -> Workload {
        w.arrivals = arrivals;
        w.spacing = spacing;
        w
    }

    #[test]
    fn one_task_alone_takes_one_task_length() {
        let w = Workload {
            workers: 1,
            arrivals: 1,
            spacing: MS,
            stages: vec![stage(1, 1)],
        };
        let runs = oldest_run_first(&w);
        assert_eq!(
            runs,
            [RunTimes {
                arrival: Duration::ZERO,
                done: MS
            }]
        );
        let stats = Stats::new(&w, &runs);
        assert_eq!((stats.mean_latency, stats.p99_latency), (MS, MS));
        assert_eq!((stats.makespan, stats.lower_bound), (MS, MS));
        assert_eq!(stats.finished_in_flood, 1);
    }

    #[test]
    fn one_w6_run_alone_takes_its_critical_path() {
        let w = with_arrivals(Workload::w6(MS), 1, Duration::from_micros(2500));
        // fetch 12 tasks at 4 at once: 3 ms; aggregate 4 at 2: 2 ms; store 1 ms.
        assert_eq!(w.critical_path(), 6 * MS);
        let runs = oldest_run_first(&w);
        assert_eq!(runs[0].latency(), 6 * MS);
        let stats = Stats::new(&w, &runs);
        assert_eq!(stats.lower_bound, 6 * MS);
        assert_eq!(stats.makespan_over_bound(), 1.0);
    }

    #[test]
    fn the_older_run_goes_first_and_the_younger_fills_the_gaps() {
        // Two W6 runs at once. The first is never delayed: 6 ms. The second gets the workers
        // the first leaves free: 2 during its aggregate (3-5 ms), 3 during its store (5-6 ms),
        // so 7 fetch tasks are done at 6 ms, the other 5 at 7 and 8 ms; then 2 + 1 ms.
        let w = with_arrivals(Workload::w6(MS), 2, Duration::ZERO);
        let latencies: Vec<_> = oldest_run_first(&w).iter().map(|r| r.latency()).collect();
        assert_eq!(latencies, [6 * MS, 11 * MS]);
    }

    #[test]
    fn a_cap_above_the_workers_is_bounded_by_the_workers() {
        let w = Workload {
            workers: 2,
            arrivals: 1,
            spacing: MS,
            stages: vec![stage(6, 8)],
        };
        assert_eq!(w.critical_path(), 3 * MS);
        assert_eq!(oldest_run_first(&w)[0].done, 3 * MS);
    }

    #[test]
    fn stages_without_tasks_take_no_time() {
        let w = Workload {
            workers: 1,
            arrivals: 2,
            spacing: MS,
            stages: vec![stage(0, 1), stage(1, 1), stage(0, 1)],
        };
        let done: Vec<_> = oldest_run_first(&w).iter().map(|r| r.done).collect();
        assert_eq!(done, [MS, 2 * MS]);
        let empty = Workload {
            stages: vec![stage(0, 1)],
            ..w
        };
        let done: Vec<_> = oldest_run_first(&empty).iter().map(|r| r.done).collect();
        assert_eq!(done, [Duration::ZERO, MS]);
    }

    #[test]
    fn the_w6_flood_keeps_the_workers_busy_and_serves_runs_in_order() {
        let w = Workload::w6(MS);
        let runs = oldest_run_first(&w);
        assert_eq!(runs.len(), 400);
        assert!(runs.windows(2).all(|p| p[0].done <= p[1].done));
        assert!(runs.iter().all(|r| r.latency() >= w.critical_path()));
        let stats = Stats::new(&w, &runs);
        // No schedule beats the bound, and no run can be done before the workers did its work.
        assert!(stats.makespan >= stats.lower_bound);
        assert!(stats.finished_in_flood as f64 <= w.capacity());
        // Overloaded from the first run on, the workers never idle until the last run's tail.
        assert!(stats.makespan <= stats.lower_bound + w.critical_path());
        assert_eq!(oldest_run_first(&w), runs, "deterministic");
    }

    #[test]
    fn stats_take_the_nearest_rank_and_count_runs_done_by_the_end_of_the_flood() {
        let w = Workload {
            workers: 1,
            arrivals: 200,
            spacing: MS,
            stages: vec![stage(1, 1)],
        };
        // Run i arrives at i ms and takes i + 1 ms, so the latencies are 1..=200 ms.
        let runs: Vec<RunTimes> = (0..200)
            .map(|i| RunTimes {
                arrival: w.arrival(i),
                done: w.arrival(i) + MS * (count(i) + 1),
            })
            .collect();
        let stats = Stats::new(&w, &runs);
        assert_eq!(stats.p99_latency, 198 * MS);
        assert_eq!(stats.mean_latency, Duration::from_micros(100_500));
        // Done at 2i + 1 ms <= 200 ms for i <= 99.
        assert_eq!(stats.finished_in_flood, 100);
        assert_eq!(stats.makespan, 399 * MS);
        assert_eq!(stats.work_over_workers, 200 * MS);
        assert_eq!(stats.lower_bound, 200 * MS);
    }
}
