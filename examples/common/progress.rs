//! Live progress for the examples that run long: a bar per job, labelled with the job's name,
//! under a line of the pool's statistics. Driven only by the public API: the pool's events
//! (`Pool::events`) and its statistics (`Pool::stats`), read on a drawing thread of its own.
//!
//! Drawn only when stdout is a terminal, so that a pipe or a CI log gets exactly what the example
//! prints without it. The bars go to stderr (indicatif's default), and are cleared once the
//! example is done with them: what stays on the screen is the example's own output.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use jobpool::{EventKind, JobId, Pool, PoolEvent, TaskOutcome};

/// How often the bars are brought up to date.
const TICK: Duration = Duration::from_millis(50);

/// Events kept between two ticks. An event that finds the listener full is dropped, and its bar
/// would lag: this is far more than the examples produce in one tick.
const EVENTS: usize = 1 << 16;

/// Bars drawn while it lives; dropping it draws the last events, then clears the bars.
pub struct LiveProgress {
    /// Dropped to tell the drawing thread to stop.
    stop: Option<Sender<()>>,
    drawer: Option<JoinHandle<()>>,
}

impl LiveProgress {
    /// Draws `pool`'s jobs from now on (jobs submitted earlier get no bar), or returns `None`
    /// when stdout is not a terminal.
    pub fn start(pool: &Pool) -> Option<LiveProgress> {
        if !std::io::stdout().is_terminal() {
            return None;
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let events = pool.events(EVENTS);
        let pool = pool.clone();
        let drawer = thread::spawn(move || {
            let (mut bars, mut stopping) = (Bars::new(), false);
            loop {
                bars.show_pool(&pool);
                events.try_iter().for_each(|event| bars.apply(event));
                if stopping {
                    break;
                }
                // Waiting on the channel is the tick: nothing is ever sent, so it ends in a
                // timeout, or in a disconnection when the `LiveProgress` is dropped.
                stopping = stopped.recv_timeout(TICK) != Err(RecvTimeoutError::Timeout);
            }
            bars.clear();
        });
        Some(LiveProgress {
            stop: Some(stop),
            drawer: Some(drawer),
        })
    }
}

impl Drop for LiveProgress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
    }
}

/// What the events said so far about one job.
struct JobBar {
    bar: ProgressBar,
    cap: usize,
    started: bool,
    running: usize,
    waiting_retry: usize,
    /// Held by a limiter: `Some(true)` for its rate, `Some(false)` for its cap.
    held: Option<bool>,
}

impl JobBar {
    fn message(&self) -> String {
        if !self.started {
            return "queued".into();
        }
        let mut message = format!("{}/{} running", self.running, self.cap);
        match self.held {
            Some(true) => message += ", held (rate)",
            Some(false) => message += ", held (cap)",
            None => {}
        }
        if self.waiting_retry > 0 {
            message += &format!(", {} to retry", self.waiting_retry);
        }
        message
    }
}

/// The line of pool statistics on top, and a bar per job under it, in submission order.
struct Bars {
    multi: MultiProgress,
    pool: ProgressBar,
    style: ProgressStyle,
    jobs: HashMap<JobId, JobBar>,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::new();
        let pool = multi.add(
            ProgressBar::new_spinner()
                .with_style(ProgressStyle::with_template("{prefix:<23} {wide_msg}").unwrap())
                .with_prefix("pool"),
        );
        let style = ProgressStyle::with_template(
            "{prefix:<23} [{bar:20.cyan/blue}] {pos:>3}/{len:<3} {wide_msg}",
        )
        .unwrap()
        .progress_chars("=> ");
        Bars {
            multi,
            pool,
            style,
            jobs: HashMap::new(),
        }
    }

    fn apply(&mut self, event: PoolEvent) {
        let Some(id) = event.job else {
            return; // a graph's module event: its module's job has events of its own
        };
        if let EventKind::JobSubmitted { tasks, cap, .. } = event.kind {
            let name = event
                .name
                .map_or_else(|| id.to_string(), |name| name.to_string());
            let bar = ProgressBar::new(tasks as u64)
                .with_style(self.style.clone())
                .with_prefix(name);
            let job = JobBar {
                bar: self.multi.add(bar),
                cap,
                started: false,
                running: 0,
                waiting_retry: 0,
                held: None,
            };
            job.bar.set_message(job.message());
            self.jobs.insert(id, job);
            return;
        }
        let Some(job) = self.jobs.get_mut(&id) else {
            return; // submitted before the bars started
        };
        match event.kind {
            EventKind::JobStarted => job.started = true,
            EventKind::JobHeld { until } => job.held = Some(until.is_some()),
            EventKind::TaskStarted { attempt, .. } => {
                job.running += 1;
                job.held = None;
                if attempt > 1 {
                    job.waiting_retry = job.waiting_retry.saturating_sub(1);
                }
            }
            EventKind::TaskEnded { outcome, .. } => match outcome {
                // Claimed, then stopped before it started: it never ran.
                TaskOutcome::Cancelled | TaskOutcome::TimedOut => job.bar.inc(1),
                TaskOutcome::Retrying { .. } => {
                    job.running = job.running.saturating_sub(1);
                    job.waiting_retry += 1;
                }
                _ => {
                    job.running = job.running.saturating_sub(1);
                    job.bar.inc(1);
                }
            },
            EventKind::JobFinished {
                done,
                failed,
                not_run,
            } => {
                job.bar.set_position((done + failed + not_run) as u64);
                let mut message = format!("{done} done");
                if failed > 0 {
                    message += &format!(", {failed} failed");
                }
                if not_run > 0 {
                    message += &format!(", {not_run} not run");
                }
                job.bar.finish_with_message(message);
                return;
            }
            _ => return,
        }
        job.bar.set_message(job.message());
    }

    fn show_pool(&self, pool: &Pool) {
        let s = pool.stats();
        self.pool.set_message(format!(
            "{}/{} workers busy; jobs: {} running, {} queued",
            s.busy, s.threads, s.jobs_running, s.jobs_queued
        ));
    }

    /// Clears every line. A bar dropped unfinished draws itself once more (indicatif finishes it
    /// on drop), so each is finished first, where it stands.
    fn clear(self) {
        self.pool.abandon();
        self.jobs.values().for_each(|job| job.bar.abandon());
        let _ = self.multi.clear();
    }
}
