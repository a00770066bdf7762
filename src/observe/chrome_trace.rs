//! A [`Timeline`] as a trace in the Trace Event Format (JSON), which
//! [Perfetto](https://ui.perfetto.dev) ("Open trace file") and `chrome://tracing` open:
//!
//! How it is drawn is documented on `Timeline::write_chrome_trace`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::event::{EventKind, JobId, PoolEvent, TaskOutcome};
use super::recorder::Timeline;

impl Timeline {
    /// Writes the timeline as a trace in the Trace Event Format (the JSON object form), for
    /// [Perfetto](https://ui.perfetto.dev) ("Open trace file") or `chrome://tracing`. Writes
    /// through a buffer of its own, so `w` need not be buffered. The trace shows:
    ///
    /// - a track per worker thread ("worker 0", "worker 1", ...), and one after them, "other
    ///   threads", for what happened elsewhere (submissions, a `cancel` from outside the pool);
    /// - on a worker's track, a slice per task attempt, named after its job (or `job N` for a job
    ///   without a name), with the job's id, the task's index, the attempt and how it ended
    ///   (`done`, `failed`, `panicked`, `retrying after 100ms`, ...) as arguments. A task that
    ///   waits on a sub-job runs the sub-job's tasks itself: those appear nested inside it;
    /// - a job as an async slice (category `job`) from its submission to its end, with its tasks,
    ///   cap, priority, how long it waited for its first token (`queued_us`) and its counts of
    ///   tasks done, failed and not run. Inside it, the times a limiter held it back: `held: rate`
    ///   until its rate's next start slot, `held: limit full` until its next task started;
    /// - a graph's module as an async slice (category `module`) from its start to its end, with the
    ///   graph's run and the module's end state; a module that ended without starting (skipped) as
    ///   an instant;
    /// - a task cancelled or timed out after a worker claimed it, as an instant on that thread.
    ///
    /// Timestamps are in microseconds (to the nanosecond, as decimals) from the timeline's
    /// earliest event. A slice whose start or end is missing from the timeline (lost, or still
    /// running when the recording stopped) is left out: what lost events leave is partial but
    /// never wrong. The JSON is written by hand, strings escaped as JSON wants.
    ///
    /// # Errors
    ///
    /// The first error `w` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, Recorder};
    ///
    /// let pool = Pool::new(2);
    /// let recorder = Recorder::start(&pool, 1_000);
    /// pool.job().name("a \"quoted\" name").submit(vec![|| ()]).wait()?;
    /// let mut json = Vec::new();
    /// recorder.finish().write_chrome_trace(&mut json)?;
    /// let json = String::from_utf8(json)?;
    /// assert!(json.contains(r#""name":"a \"quoted\" name""#));
    /// assert!(json.contains(r#""ph":"X""#)); // the task's slice
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_chrome_trace<W: Write>(&self, w: W) -> io::Result<()> {
        let origin = self.events.iter().map(|e| e.time).min();
        let mut out = TraceWriter {
            w: BufWriter::new(w),
            origin: origin.unwrap_or_else(Instant::now),
            pid: std::process::id(),
            first: true,
        };
        out.w.write_all(b"{\"traceEvents\":[")?;
        self.write_tracks(&mut out)?;
        self.write_slices(&mut out)?;
        write!(
            out.w,
            "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{{\"recorder\":\"jobpool\",\
             \"events\":{},\"evicted\":{},\"dropped\":{}}}}}\n",
            self.events.len(),
            self.evicted,
            self.dropped
        )?;
        out.w.flush()
    }

    /// Writes the trace ([`write_chrome_trace`](Self::write_chrome_trace)) to the file at
    /// `path`: first to a file beside it (its name followed by `.tmp`), then renamed, so that
    /// the file at `path` is never half written.
    ///
    /// # Errors
    ///
    /// An error creating, writing or renaming the file; the temporary file is then removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Pool, Recorder};
    ///
    /// let pool = Pool::new(2);
    /// let recorder = Recorder::start(&pool, 1_000);
    /// pool.submit((0..4).map(|i| move || i), 2).wait()?;
    /// let path = std::env::temp_dir().join(format!("jobpool-doc-{}.json", std::process::id()));
    /// recorder.finish().save(&path)?;
    /// assert!(std::fs::read_to_string(&path)?.contains("traceEvents"));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let mut temporary = OsString::from(path.as_os_str());
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let written = File::create(&temporary)
            .and_then(|file| {
                let mut file = BufWriter::new(file);
                self.write_chrome_trace(&mut file)?;
                file.into_inner().map_err(|e| e.into_error())
            })
            .and_then(|_| fs::rename(&temporary, path));
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written
    }

    /// The metadata events: the process's name, and a named track per worker and one for
    /// other threads, in that order.
    fn write_tracks<W: Write>(&self, out: &mut TraceWriter<W>) -> io::Result<()> {
        out.metadata("process_name", None, "jobpool")?;
        for worker in 0..self.threads {
            out.metadata("thread_name", Some(worker), &format!("worker {worker}"))?;
            out.thread_order(worker)?;
        }
        out.metadata("thread_name", Some(self.threads), "other threads")?;
        out.thread_order(self.threads)
    }

    /// The slices and instants, in one pass that pairs each end with its start.
    fn write_slices<W: Write>(&self, out: &mut TraceWriter<W>) -> io::Result<()> {
        let other = self.threads;
        let tid = |event: &PoolEvent| event.worker.unwrap_or(other);
        let mut tasks: HashMap<(JobId, usize, u32), &PoolEvent> = HashMap::new();
        let mut jobs: HashMap<JobId, JobSpan<'_>> = HashMap::new();
        let mut modules: HashMap<(u64, Option<&str>), &PoolEvent> = HashMap::new();
        let mut module_spans: u64 = 0;
        for event in &self.events {
            match (&event.kind, event.job) {
                (EventKind::JobSubmitted { .. }, Some(job)) => {
                    jobs.insert(job, JobSpan::new(event));
                }
                (EventKind::JobStarted, Some(job)) => {
                    if let Some(span) = jobs.get_mut(&job) {
                        span.started.get_or_insert(event.time);
                    }
                }
                (EventKind::TaskStarted { index, attempt }, Some(job)) => {
                    tasks.insert((job, *index, *attempt), event);
                    if let Some(span) = jobs.get_mut(&job) {
                        span.release(event.time);
                    }
                }
                (
                    EventKind::TaskEnded {
                        index,
                        attempt,
                        outcome,
                    },
                    Some(job),
                ) => {
                    let how = outcome.to_string();
                    let args = [
                        ("job", Arg::Num(job.get())),
                        ("index", Arg::Num(*index as u64)),
                        ("attempt", Arg::Num(u64::from(*attempt))),
                        ("outcome", Arg::Str(&how)),
                    ];
                    let name = job_name(event, job);
                    match tasks.remove(&(job, *index, *attempt)) {
                        Some(start) => {
                            let ended = Phase::Complete {
                                dur: event.time.saturating_duration_since(start.time),
                                color: color(outcome),
                            };
                            out.event(ended, &name, "task", tid(start), start.time, &args)?;
                        }
                        // Claimed, then dropped before it started: it has no start.
                        None if matches!(
                            outcome,
                            TaskOutcome::Cancelled | TaskOutcome::TimedOut
                        ) =>
                        {
                            out.event(
                                Phase::Instant,
                                &name,
                                "task",
                                tid(event),
                                event.time,
                                &args,
                            )?;
                        }
                        // Its start was lost.
                        None => {}
                    }
                }
                (EventKind::JobHeld { until }, Some(job)) => {
                    if let Some(span) = jobs.get_mut(&job) {
                        span.holds.push(Hold {
                            from: event.time,
                            until: *until,
                            rate: until.is_some(),
                        });
                    }
                }
                (EventKind::JobFinished { .. }, Some(job)) => {
                    if let Some(span) = jobs.remove(&job) {
                        let tid = tid(span.submitted);
                        span.write(out, event, job, tid)?;
                    }
                }
                (EventKind::ModuleStarted { run }, _) => {
                    modules.insert((*run, event.name.as_deref()), event);
                }
                (EventKind::ModuleEnded { run, state }, _) => {
                    let name = event.name.as_deref().unwrap_or("module");
                    let args = [("run", Arg::Num(*run)), ("state", Arg::Str(state))];
                    match modules.remove(&(*run, event.name.as_deref())) {
                        Some(start) => {
                            module_spans += 1;
                            let (id, at) = (module_spans, start.time);
                            out.event(Phase::Begin { id }, name, "module", tid(start), at, &args)?;
                            out.event(
                                Phase::End { id },
                                name,
                                "module",
                                tid(start),
                                event.time,
                                &[],
                            )?;
                        }
                        None => out.event(
                            Phase::Instant,
                            name,
                            "module",
                            tid(event),
                            event.time,
                            &args,
                        )?,
                    }
                }
                // Every job event has a job; nothing else to draw.
                (_, None) => {}
            }
        }
        Ok(())
    }
}

/// A job's name in the trace: its own, or `job N`.
fn job_name(event: &PoolEvent, job: JobId) -> Cow<'_, str> {
    match event.name.as_deref() {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(job.to_string()),
    }
}

/// A colour `chrome://tracing` gives the slice of an attempt that did not succeed (Perfetto
/// picks its own).
fn color(outcome: &TaskOutcome) -> Option<&'static str> {
    match outcome {
        TaskOutcome::Failed | TaskOutcome::Panicked => Some("terrible"),
        TaskOutcome::Retrying { .. } => Some("bad"),
        _ => None,
    }
}

/// What the timeline says of one job so far, from its submission.
struct JobSpan<'a> {
    submitted: &'a PoolEvent,
    /// When a worker took its first token.
    started: Option<Instant>,
    /// The times a limiter held it; those before `open` have an end.
    holds: Vec<Hold>,
    open: usize,
}

/// One time a limiter held a job back.
struct Hold {
    from: Instant,
    /// Its rate's next start slot; for a full limit, the job's next task start (`None` until
    /// then).
    until: Option<Instant>,
    rate: bool,
}

impl<'a> JobSpan<'a> {
    fn new(submitted: &'a PoolEvent) -> JobSpan<'a> {
        JobSpan {
            submitted,
            started: None,
            holds: Vec::new(),
            open: 0,
        }
    }

    /// A task started at `at`: the holds of a full limit before it are over.
    fn release(&mut self, at: Instant) {
        for hold in &mut self.holds[self.open..] {
            hold.until.get_or_insert(at);
        }
        self.open = self.holds.len();
    }

    /// The job's async slice, with its waits on limiters nested inside it.
    fn write<W: Write>(
        mut self,
        out: &mut TraceWriter<W>,
        finished: &PoolEvent,
        job: JobId,
        tid: usize,
    ) -> io::Result<()> {
        let EventKind::JobSubmitted {
            tasks,
            cap,
            priority,
        } = &self.submitted.kind
        else {
            unreachable!("a job's span starts at its submission")
        };
        let EventKind::JobFinished {
            done,
            failed,
            not_run,
        } = &finished.kind
        else {
            unreachable!("a job's span ends at its end")
        };
        let (begin, end) = (self.submitted.time, finished.time.max(self.submitted.time));
        let queued = self.started.map(|at| at.saturating_duration_since(begin));
        let priority = priority.to_string();
        let mut args = vec![
            ("job", Arg::Num(job.get())),
            ("tasks", Arg::Num(*tasks as u64)),
            ("cap", Arg::Num(*cap as u64)),
            ("priority", Arg::Str(&priority)),
            ("done", Arg::Num(*done as u64)),
            ("failed", Arg::Num(*failed as u64)),
            ("not_run", Arg::Num(*not_run as u64)),
        ];
        if let Some(queued) = queued {
            args.push(("queued_us", Arg::Micros(queued)));
        }
        let name = job_name(self.submitted, job);
        let id = job.get();
        out.event(Phase::Begin { id }, &name, "job", tid, begin, &args)?;
        for wait in self.waits(begin, end) {
            let (name, args) = match wait.slot {
                Some(slot) => ("held: rate", vec![("slot_due_us", out.at(slot))]),
                None => ("held: limit full", Vec::new()),
            };
            out.event(Phase::Begin { id }, name, "job", tid, wait.from, &args)?;
            out.event(Phase::End { id }, name, "job", tid, wait.until, &[])?;
        }
        out.event(Phase::End { id }, &name, "job", tid, end, &[])
    }
}

impl JobSpan<'_> {
    /// The times the job was held, within its span from `begin` to `end`, as slices that nest
    /// in it: holds of one kind that overlap (two workers refused the same start slot, say)
    /// are one wait, until the later end; a hold of the other kind cuts the one before it
    /// short.
    fn waits(&mut self, begin: Instant, end: Instant) -> Vec<Wait> {
        self.holds.sort_by_key(|hold| hold.from);
        let mut waits: Vec<Wait> = Vec::new();
        for hold in &self.holds {
            let from = hold.from.clamp(begin, end);
            let until = hold.until.unwrap_or(end).clamp(from, end);
            let slot = hold.until.filter(|_| hold.rate);
            match waits.last_mut() {
                Some(last) if from < last.until && last.slot.is_some() == hold.rate => {
                    last.until = last.until.max(until);
                    last.slot = last.slot.max(slot);
                }
                Some(last) if from < last.until => {
                    last.until = from;
                    waits.push(Wait { from, until, slot });
                }
                _ => waits.push(Wait { from, until, slot }),
            }
        }
        waits
    }
}

/// A time a job waited on a limiter, as drawn.
struct Wait {
    from: Instant,
    until: Instant,
    /// For a rate, when its start slot was due.
    slot: Option<Instant>,
}

/// How an event of the trace is drawn.
#[derive(Clone, Copy)]
enum Phase {
    /// A slice on a thread's track (`X`), lasting `dur`.
    Complete {
        dur: Duration,
        color: Option<&'static str>,
    },
    /// The start of an async slice (`b`), told apart from others of its category by `id`.
    Begin { id: u64 },
    /// The end of an async slice (`e`).
    End { id: u64 },
    /// A point on a thread's track (`i`).
    Instant,
}

/// An argument of a trace event.
enum Arg<'a> {
    Num(u64),
    Str(&'a str),
    /// A time in microseconds: a duration, or an instant since the trace's origin.
    Micros(Duration),
}

/// Writes trace events, comma-separated, one a line.
struct TraceWriter<W: Write> {
    w: BufWriter<W>,
    /// Time 0 of the trace.
    origin: Instant,
    pid: u32,
    /// No event written yet: no comma before the next.
    first: bool,
}

impl<W: Write> TraceWriter<W> {
    /// `at` as an argument: microseconds since the origin.
    fn at(&self, at: Instant) -> Arg<'static> {
        Arg::Micros(at.saturating_duration_since(self.origin))
    }

    fn separate(&mut self) -> io::Result<()> {
        if self.first {
            self.first = false;
            self.w.write_all(b"\n")
        } else {
            self.w.write_all(b",\n")
        }
    }

    /// A metadata event naming the process (`tid` `None`) or a thread.
    fn metadata(&mut self, what: &str, tid: Option<usize>, name: &str) -> io::Result<()> {
        self.separate()?;
        write!(
            self.w,
            "{{\"ph\":\"M\",\"name\":\"{what}\",\"pid\":{}",
            self.pid
        )?;
        if let Some(tid) = tid {
            write!(self.w, ",\"tid\":{tid}")?;
        }
        self.w.write_all(b",\"args\":{\"name\":")?;
        write_json_str(&mut self.w, name)?;
        self.w.write_all(b"}}")
    }

    /// A metadata event that sorts thread `tid` by its number.
    fn thread_order(&mut self, tid: usize) -> io::Result<()> {
        self.separate()?;
        write!(
            self.w,
            "{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{},\"tid\":{tid},\
             \"args\":{{\"sort_index\":{tid}}}}}",
            self.pid
        )
    }

    fn event(
        &mut self,
        phase: Phase,
        name: &str,
        cat: &str,
        tid: usize,
        at: Instant,
        args: &[(&str, Arg<'_>)],
    ) -> io::Result<()> {
        self.separate()?;
        let ph = match phase {
            Phase::Complete { .. } => "X",
            Phase::Begin { .. } => "b",
            Phase::End { .. } => "e",
            Phase::Instant => "i",
        };
        write!(self.w, "{{\"ph\":\"{ph}\",\"name\":")?;
        write_json_str(&mut self.w, name)?;
        self.w.write_all(b",\"cat\":")?;
        write_json_str(&mut self.w, cat)?;
        write!(self.w, ",\"pid\":{},\"tid\":{tid},\"ts\":", self.pid)?;
        write_micros(&mut self.w, at.saturating_duration_since(self.origin))?;
        match phase {
            Phase::Complete { dur, color } => {
                self.w.write_all(b",\"dur\":")?;
                write_micros(&mut self.w, dur)?;
                if let Some(color) = color {
                    write!(self.w, ",\"cname\":\"{color}\"")?;
                }
            }
            Phase::Begin { id } | Phase::End { id } => write!(self.w, ",\"id\":{id}")?,
            Phase::Instant => self.w.write_all(b",\"s\":\"t\"")?,
        }
        if !args.is_empty() {
            self.w.write_all(b",\"args\":{")?;
            for (at, (key, value)) in args.iter().enumerate() {
                if at > 0 {
                    self.w.write_all(b",")?;
                }
                write_json_str(&mut self.w, key)?;
                self.w.write_all(b":")?;
                match value {
                    Arg::Num(n) => write!(self.w, "{n}")?,
                    Arg::Str(s) => write_json_str(&mut self.w, s)?,
                    Arg::Micros(d) => write_micros(&mut self.w, *d)?,
                }
            }
            self.w.write_all(b"}")?;
        }
        self.w.write_all(b"}")
    }
}

/// Writes `d` in microseconds, to the nanosecond: `1234.567`.
fn write_micros(w: &mut impl Write, d: Duration) -> io::Result<()> {
    let nanos = d.as_nanos();
    write!(w, "{}.{:03}", nanos / 1000, nanos % 1000)
}

/// Writes `s` as a JSON string: quoted, with quotes, backslashes and control characters
/// escaped (RFC 8259, section 7).
fn write_json_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(b"\"")?;
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        w.write_all(&bytes[plain..at])?;
        if escape.is_empty() {
            write!(w, "\\u{byte:04x}")?;
        } else {
            w.write_all(escape)?;
        }
        plain = at + 1;
    }
    w.write_all(&bytes[plain..])?;
    w.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> PoolEvent {
        PoolEvent::for_test(kind)
    }

    #[test]
    fn strings_are_escaped_as_json_wants() {
        let tricky: String = (0u8..0x80)
            .map(char::from)
            .chain("é → ✓ 🦀".chars())
            .collect();
        for s in [tricky.as_str(), "", "plain", "\"", "\\", "a\"b\\c\n"] {
            let mut json = Vec::new();
            write_json_str(&mut json, s).unwrap();
            let back: String = serde_json::from_slice(&json).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn micros_are_written_to_the_nanosecond() {
        let mut out = Vec::new();
        for d in [0, 7, 1_000, 1_234_567, 3_000_000_001] {
            write_micros(&mut out, Duration::from_nanos(d)).unwrap();
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0.000 0.007 1.000 1234.567 3000000.001 "
        );
    }

    #[test]
    fn overlapping_holds_of_a_kind_are_one_wait_and_the_other_kind_cuts_in() {
        let begin = Instant::now();
        let at = |ms: u64| begin + Duration::from_millis(ms);
        let submitted = event(EventKind::JobSubmitted {
            tasks: 1,
            cap: 1,
            priority: crate::Priority::Normal,
        });
        let mut span = JobSpan::new(&submitted);
        let hold = |from, until: Option<Instant>| Hold {
            from,
            until,
            rate: until.is_some(),
        };
        // Two workers refused the same slot; then a full limit, released at 60; then a slot
        // past the job's end.
        span.holds = vec![
            hold(at(10), Some(at(30))),
            hold(at(15), Some(at(30))),
            hold(at(25), None),
            hold(at(70), Some(at(500))),
        ];
        span.open = 2;
        span.release(at(60));
        let waits: Vec<_> = span
            .waits(begin, at(100))
            .iter()
            .map(|w| (w.from, w.until, w.slot))
            .collect();
        assert_eq!(
            waits,
            [
                (at(10), at(25), Some(at(30))),
                (at(25), at(60), None),
                (at(70), at(100), Some(at(500))),
            ]
        );
    }
}
