//! Call groups of simulated HTTP endpoints on one shared pool of 8 threads, each group under
//! the controls it needs.
//!
//! Each call is a task that "sends a request" (sleeps, as a network round trip would) and
//! records, in the group's log, when it started and ended. The groups:
//!
//! - a fragile legacy service, called gently: one request at a time (cap 1);
//! - a partner API with a real rate limit: two jobs share one [`Limiter`] (3 requests at once
//!   and 20 starts per second, bursts of 5, for both jobs together);
//! - webhooks that fail now and then, retried with exponential backoff: some recover after one
//!   or two failures, some answer with a permanent error (the user must re-link their account),
//!   which is not retried, and some stay down until their attempts are used up;
//! - a bulk sweep of our own edge servers, which keeps every worker busy;
//! - while all that runs, a routine report and then an urgent fraud check of high priority:
//!   the urgent one, submitted second, gets the workers first.
//!
//! For each group the example prints its cap, the peak the job reached, the rate it started
//! calls at, its attempts and retries, its failures by kind, and its time. Caps, rates and
//! counts are also checked against what the tasks recorded: the example panics if a job broke
//! its cap, or the partner API's jobs their shared cap or rate.
//!
//! In a terminal, a bar per job shows the run as it happens (`common/progress.rs`), and is
//! cleared before the report; into a pipe, the example prints the report alone.
//!
//! ```text
//! cargo run --release --example endpoints
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use jobpool::{GaveUp, JobHandle, Limiter, Pool, Priority, Progress, Rate, Retry, TaskContext};

#[path = "common/progress.rs"]
mod progress;

/// What a failing call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallError {
    /// 503: the service is busy or down; another try may work.
    Unavailable,
    /// 401: no try will work until the user re-links their account.
    Unlinked,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallError::Unavailable => "503 service unavailable",
            CallError::Unlinked => "401 the user must re-link their account",
        })
    }
}

impl Error for CallError {}

/// How a simulated webhook endpoint answers.
#[derive(Debug, Clone, Copy)]
enum Webhook {
    Healthy,
    /// Fails this many times, then answers.
    FailsFirst(u32),
    /// Always answers 401.
    Unlinked,
    /// Always answers 503.
    Down,
}

impl Webhook {
    fn answer(self, attempt: u32) -> Result<u32, CallError> {
        match self {
            Webhook::FailsFirst(n) if attempt <= n => Err(CallError::Unavailable),
            Webhook::Healthy | Webhook::FailsFirst(_) => Ok(attempt),
            Webhook::Unlinked => Err(CallError::Unlinked),
            Webhook::Down => Err(CallError::Unavailable),
        }
    }
}

/// The webhook endpoints, repeated: 6 healthy, 4 flaky, 1 unlinked and 1 down in every 12.
const WEBHOOKS: [Webhook; 12] = [
    Webhook::Healthy,
    Webhook::FailsFirst(1),
    Webhook::Healthy,
    Webhook::FailsFirst(2),
    Webhook::Healthy,
    Webhook::Unlinked,
    Webhook::Healthy,
    Webhook::FailsFirst(1),
    Webhook::Down,
    Webhook::Healthy,
    Webhook::FailsFirst(1),
    Webhook::Healthy,
];

/// What the tasks of one group (or of the jobs under one limiter) recorded.
struct Log {
    epoch: Instant,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    /// When every call (every attempt) started, since the epoch.
    starts: Mutex<Vec<Duration>>,
    /// When the last call ended, since the epoch.
    last_end: Mutex<Duration>,
}

impl Log {
    fn new(epoch: Instant) -> Arc<Log> {
        Arc::new(Log {
            epoch,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            starts: Mutex::new(Vec::new()),
            last_end: Mutex::new(Duration::ZERO),
        })
    }

    fn enter(&self) {
        self.starts.lock().unwrap().push(self.epoch.elapsed());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut last_end = self.last_end.lock().unwrap();
        *last_end = (*last_end).max(self.epoch.elapsed());
    }

    fn starts(&self) -> Vec<Duration> {
        let mut starts = self.starts.lock().unwrap().clone();
        starts.sort();
        starts
    }
}

/// A simulated request of `round_trip`, recorded in every log given.
fn call(logs: &[Arc<Log>], round_trip: Duration) {
    logs.iter().for_each(|log| log.enter());
    thread::sleep(round_trip);
    logs.iter().for_each(|log| log.leave());
}

/// `n` plain calls recorded in `logs`; each returns its attempt number, 1.
fn calls(
    n: usize,
    logs: &[&Arc<Log>],
    round_trip: Duration,
) -> Vec<impl FnOnce() -> u32 + Send + 'static> {
    let logs: Vec<Arc<Log>> = logs.iter().map(|&log| log.clone()).collect();
    (0..n)
        .map(|_| {
            let logs = logs.clone();
            move || {
                call(&logs, round_trip);
                1
            }
        })
        .collect()
}

/// One submitted job and what it recorded.
struct Group {
    name: &'static str,
    rate_limit: String,
    submitted: Duration,
    log: Arc<Log>,
    job: JobHandle<u32>,
}

/// Tasks that failed the same way: one line of the report.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Failed {
    /// Why they were not tried again, as (rank, words): permanent errors first (rank 0), then
    /// the tasks that gave up.
    why: (u8, &'static str),
    attempts: u32,
    error: String,
}

impl Failed {
    fn why(gave_up: GaveUp) -> (u8, &'static str) {
        match gave_up {
            GaveUp::Permanent => (0, "permanent, not retried"),
            GaveUp::AttemptsUsedUp => (1, "gave up, attempts used up"),
            GaveUp::RetryBudget => (2, "gave up, retry budget used up"),
            _ => (3, "gave up"),
        }
    }

    fn is_permanent(&self) -> bool {
        self.why.0 == 0
    }
}

/// One row of the table, and the failures behind it.
struct Row {
    name: &'static str,
    rate_limit: String,
    submitted: Duration,
    log: Arc<Log>,
    progress: Progress,
    /// The attempt each successful task succeeded on.
    succeeded_on: Vec<u32>,
    /// Failed tasks by kind, attempts and error: their indices.
    failures: BTreeMap<Failed, Vec<usize>>,
}

impl Row {
    fn finish(group: Group) -> Result<Row, Box<dyn Error>> {
        let Group {
            name,
            rate_limit,
            submitted,
            log,
            job,
        } = group;
        job.wait_timeout(Duration::from_secs(60))?;
        let progress = job.progress();
        let mut failures = BTreeMap::<_, Vec<usize>>::new();
        let results = match job.wait() {
            Ok(values) => values.into_iter().map(Ok).collect(),
            Err(err) => {
                for (index, failure) in err.failures() {
                    let key = Failed {
                        why: Failed::why(failure.gave_up()),
                        attempts: failure.attempts(),
                        error: failure.error().to_string(),
                    };
                    failures.entry(key).or_default().push(index);
                }
                if err.panics().count() + err.cancelled().count() + err.timed_out().count() > 0 {
                    return Err(format!("{name}: {err}").into());
                }
                err.into_results()
            }
        };
        let succeeded_on = results.into_iter().filter_map(Result::ok).collect();
        let row = Row {
            name,
            rate_limit,
            submitted,
            log,
            progress,
            succeeded_on,
            failures,
        };
        row.check();
        Ok(row)
    }

    /// What the tasks recorded agrees with the job's counters, and no cap was broken.
    fn check(&self) {
        let (name, p) = (self.name, &self.progress);
        let seen = self.log.peak.load(Ordering::SeqCst);
        assert!(
            seen <= p.peak_running && p.peak_running <= p.cap,
            "{name}: {seen} calls in flight, the job's peak {}, cap {}",
            p.peak_running,
            p.cap
        );
        assert_eq!(self.attempts(), p.total + p.retries, "{name}: attempts");
        assert_eq!(p.done + p.failed, p.total, "{name}: outcomes");
    }

    fn attempts(&self) -> usize {
        self.log.starts.lock().unwrap().len()
    }

    fn failed(&self, permanent: bool) -> usize {
        self.failures
            .iter()
            .filter(|(failed, _)| failed.is_permanent() == permanent)
            .map(|(_, tasks)| tasks.len())
            .sum()
    }

    /// From submission to the end of the last call.
    fn time(&self) -> Duration {
        let last_end = *self.log.last_end.lock().unwrap();
        last_end.saturating_sub(self.submitted)
    }
}

const WEBHOOKS_NAME: &str = "webhooks (retried)";
const ROUTINE_NAME: &str = "report (routine)";
const URGENT_NAME: &str = "fraud-check (urgent)";

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A rate as this example prints it: "20/s, burst 5".
fn rate_label(rate: Rate) -> String {
    format!(
        "{:.0}/s, burst {}",
        1.0 / rate.interval().as_secs_f64(),
        rate.burst_size()
    )
}

/// The most `starts` (sorted) in any window `[t, t + window)`.
fn busiest(starts: &[Duration], window: Duration) -> usize {
    let mut first = 0;
    (0..starts.len())
        .map(|last| {
            while starts[last] - starts[first] >= window {
                first += 1;
            }
            last - first + 1
        })
        .max()
        .unwrap_or(0)
}

/// The most starts beyond the rate in any span between two `starts` (sorted): for each pair
/// `i <= j`, the `j - i + 1` starts of the span minus what the rate allows in its length. A
/// rate with bursts of `b` keeps this at most `b`.
fn most_beyond_rate(starts: &[Duration], rate: Rate) -> f64 {
    let interval = rate.interval().as_secs_f64();
    let mut most = 0.0_f64;
    for i in 0..starts.len() {
        for j in i..starts.len() {
            let span = (starts[j] - starts[i]).as_secs_f64();
            most = most.max((j - i + 1) as f64 - span / interval);
        }
    }
    most
}

fn main() -> Result<(), Box<dyn Error>> {
    let pool = Pool::new(8);
    let live = progress::LiveProgress::start(&pool);
    let epoch = Instant::now();
    let mut groups = Vec::new();

    // A fragile legacy service: one request at a time.
    let (name, log) = ("legacy-billing (gently)", Log::new(epoch));
    groups.push(Group {
        name,
        rate_limit: "none".into(),
        submitted: epoch.elapsed(),
        job: pool
            .job()
            .name(name)
            .cap(1)
            .submit(calls(12, &[&log], ms(20))),
        log,
    });

    // A partner API that allows 20 requests a second (bursts of 5) and 3 at once, to all our
    // jobs together: one limiter, given to both jobs that call it.
    let partner_rate = Rate::per_second(20).burst(5);
    let partner = Limiter::new().with_cap(3).with_rate(partner_rate);
    let partner_log = Log::new(epoch);
    for (name, tasks) in [("partner-api /accounts", 20), ("partner-api /invoices", 16)] {
        let log = Log::new(epoch);
        groups.push(Group {
            name,
            rate_limit: format!("{} *", rate_label(partner_rate)),
            submitted: epoch.elapsed(),
            job: pool.job().name(name).cap(2).limit(&partner).submit(calls(
                tasks,
                &[&log, &partner_log],
                ms(40),
            )),
            log,
        });
    }

    // Webhooks: up to 3 attempts each, 25 ms then 50 ms apart (less up to half, at random);
    // a 401 is not worth another try.
    let retry = Retry::attempts(3)
        .backoff(ms(25), 2.0, ms(200))
        .jitter(0.5)
        .retry_if(|e| e.downcast_ref::<CallError>() != Some(&CallError::Unlinked));
    let log = Log::new(epoch);
    let webhooks = (0..24).map(|i| {
        let (log, webhook) = (log.clone(), WEBHOOKS[i % WEBHOOKS.len()]);
        move |cx: &TaskContext| {
            call(std::slice::from_ref(&log), ms(15));
            webhook.answer(cx.attempt())
        }
    });
    groups.push(Group {
        name: WEBHOOKS_NAME,
        rate_limit: "none".into(),
        submitted: epoch.elapsed(),
        job: pool
            .job()
            .name(WEBHOOKS_NAME)
            .cap(4)
            .retry(retry.clone())
            .submit_fallible(webhooks),
        log,
    });

    // Our own edge servers: many quick calls, 8 at a time, enough to keep every worker busy.
    let (name, log) = ("edge-servers (bulk)", Log::new(epoch));
    groups.push(Group {
        name,
        rate_limit: "none".into(),
        submitted: epoch.elapsed(),
        job: pool
            .job()
            .name(name)
            .cap(8)
            .submit(calls(160, &[&log], ms(10))),
        log,
    });

    // 150 ms in, with every worker busy, two more jobs of the same shape arrive: a routine
    // report first, then the fraud check of an alert, which must not wait its turn.
    thread::sleep(ms(150).saturating_sub(epoch.elapsed()));
    let busy: usize = groups.iter().map(|g| g.job.progress().running).sum();
    for (name, priority) in [
        (ROUTINE_NAME, Priority::Normal),
        (URGENT_NAME, Priority::High),
    ] {
        let log = Log::new(epoch);
        groups.push(Group {
            name,
            rate_limit: "none".into(),
            submitted: epoch.elapsed(),
            job: pool
                .job()
                .name(name)
                .cap(4)
                .priority(priority)
                .submit(calls(8, &[&log], ms(15))),
            log,
        });
    }

    let rows = groups
        .into_iter()
        .map(Row::finish)
        .collect::<Result<Vec<_>, _>>()?;
    let all_done = epoch.elapsed();
    drop(live); // clears the bars, if any, before the report

    println!(
        "{} jobs on {} worker threads, all done in {:.2} s\n",
        rows.len(),
        pool.threads(),
        all_done.as_secs_f64()
    );
    println!(
        "{:<23} {:>5} {:>3} {:>4}  {:<15} {:>8} {:>8} {:>7} {:>4} {:>9} {:>7} {:>7}",
        "group",
        "tasks",
        "cap",
        "peak",
        "rate limit",
        "starts/s",
        "attempts",
        "retries",
        "ok",
        "permanent",
        "gave up",
        "time"
    );
    for row in &rows {
        let p = &row.progress;
        let time = row.time().as_secs_f64();
        println!(
            "{:<23} {:>5} {:>3} {:>4}  {:<15} {:>8.1} {:>8} {:>7} {:>4} {:>9} {:>7} {:>4.0} ms",
            row.name,
            p.total,
            p.cap,
            p.peak_running,
            row.rate_limit,
            row.attempts() as f64 / time,
            row.attempts(),
            p.retries,
            p.done,
            row.failed(true),
            row.failed(false),
            time * 1e3,
        );
    }
    println!(
        "peak: the most tasks of the job that ran at once. starts/s: attempts per second over the\n\
         job's time, from its submission to the end of its last call."
    );

    // The partner limiter: its cap and its rate held for both jobs together, by the tasks'
    // own timestamps.
    let starts = partner_log.starts();
    let first = starts.first().copied().unwrap_or_default();
    let run = partner_log.last_end.lock().unwrap().saturating_sub(first);
    let burst = f64::from(partner_rate.burst_size());
    let per_second = 1.0 / partner_rate.interval().as_secs_f64();
    let beyond = most_beyond_rate(&starts, partner_rate);
    // A task notes its start a moment after the limiter let it through: allow 5 ms of that.
    assert!(
        beyond <= burst + 0.005 * per_second,
        "partner-api: {beyond:.2} starts beyond the rate in one span, with bursts of {burst}"
    );
    assert_eq!(partner.starts(), starts.len() as u64, "partner-api: starts");
    let seen = partner_log.peak.load(Ordering::SeqCst);
    let (shared_cap, shared_peak) = (partner.cap().unwrap_or(0), partner.peak_running());
    assert!(seen <= shared_peak && shared_peak <= shared_cap);
    println!(
        "\n* one limiter shared by both partner-api jobs: {shared_cap} calls at once, {partner_rate}"
    );
    println!(
        "  together: peak {shared_peak} calls at once; {} starts in {:.2} s ({:.1}/s, the first burst included)",
        starts.len(),
        run.as_secs_f64(),
        starts.len() as f64 / run.as_secs_f64(),
    );
    println!(
        "  the most starts in any span of t: {per_second:.0}/s x t + {beyond:.1}; in any 1 s: {}",
        busiest(&starts, Duration::from_secs(1)),
    );

    // The webhooks: who recovered on a retry, and each kind of failure.
    let webhooks = rows.iter().find(|r| r.name == WEBHOOKS_NAME).unwrap();
    println!(
        "\n{}: up to {} attempts, {} ms then {} ms apart (less up to half, at random)",
        webhooks.name,
        retry.max_attempts(),
        retry.delay_after(1).as_millis(),
        retry.delay_after(2).as_millis(),
    );
    let mut recovered = BTreeMap::<u32, usize>::new();
    for &attempt in webhooks.succeeded_on.iter().filter(|&&a| a > 1) {
        *recovered.entry(attempt).or_default() += 1;
    }
    let on: Vec<_> = recovered
        .iter()
        .map(|(attempt, n)| format!("{n} on attempt {attempt}"))
        .collect();
    println!(
        "  {:<27} {:>2} tasks ({})",
        "recovered on a retry:",
        recovered.values().sum::<usize>(),
        on.join(", ")
    );
    for (failed, tasks) in &webhooks.failures {
        let Failed {
            why: (_, why),
            attempts,
            error,
        } = failed;
        let list: Vec<_> = tasks.iter().map(|i| format!("#{i}")).collect();
        println!(
            "  {:<27} {:>2} tasks, {attempts} attempt{} each ({}): {error}",
            format!("{why}:"),
            tasks.len(),
            if *attempts == 1 { "" } else { "s" },
            list.join(", "),
        );
    }

    // The two late jobs: which one the pool served first.
    let late =
        [ROUTINE_NAME, URGENT_NAME].map(|name| rows.iter().find(|r| r.name == name).unwrap());
    println!(
        "\n{:.0} ms in, while {busy} calls of the other jobs ran, two jobs of {} calls (cap {}) came in:",
        late[0].submitted.as_secs_f64() * 1e3,
        late[0].progress.total,
        late[0].progress.cap,
    );
    for (row, how) in late
        .iter()
        .zip(["submitted first, normal", "submitted second, high"])
    {
        println!(
            "  {:<21} {:<33} first call {:>4.1} ms later, done {:>4.1} ms later",
            format!("{}:", row.name),
            format!("{how} priority:"),
            (row.log.starts()[0] - row.submitted).as_secs_f64() * 1e3,
            row.time().as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
