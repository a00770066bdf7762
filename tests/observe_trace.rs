//! The timeline recorder and its Chrome trace: the JSON is valid Trace Event Format, every task
//! attempt is one slice on the worker that ran it, at the time it ran, inside its job's span;
//! modules are spans around their tasks; waits on a limiter show inside the job; the ring
//! buffer keeps the last events and counts the others.
//!
//! Threads line up on channels; no test sleeps to order events. Times are compared in whole
//! nanoseconds, as the trace writes them (microseconds with three decimals).

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobpool::{
    Context, Dag, EventKind, JobId, Limiter, Pool, PoolEvent, Rate, Recorder, Retry, TaskContext,
    TaskResult, Timeline,
};
use serde_json::Value;

/// Long enough never to pass on a slow machine; only there to fail instead of hanging.
const HANG: Duration = Duration::from_secs(30);

/// A trace event's time field, in nanoseconds.
fn ns(value: &Value) -> i64 {
    let micros = value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"));
    (micros * 1000.0).round() as i64
}

/// An event's time in the trace, in nanoseconds: from the timeline's earliest event.
fn ns_of(timeline: &Timeline, at: Instant) -> i64 {
    let origin = timeline.events().iter().map(|e| e.time).min().unwrap();
    at.duration_since(origin).as_nanos() as i64
}

/// A complete slice (`X`) of a task attempt, as the trace has it.
#[derive(Debug, Clone)]
struct Slice {
    name: String,
    tid: u64,
    start: i64,
    end: i64,
    job: u64,
    index: u64,
    attempt: u64,
    outcome: String,
}

/// An async slice (`b` ... `e`), as the trace has it.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    id: u64,
    start: i64,
    end: i64,
    depth: usize,
    args: Value,
}

/// An async slice begun: its name, start and arguments.
type Begun = (String, i64, Value);

/// What a trace holds, checked for form on the way.
struct Trace {
    json: Value,
    slices: Vec<Slice>,
    /// Async slices by category, each with its nesting depth within its id.
    spans: HashMap<String, Vec<Span>>,
    instants: Vec<Value>,
}

impl Trace {
    fn events(&self) -> &[Value] {
        self.json["traceEvents"].as_array().unwrap()
    }

    /// The outermost span of each id of `cat`.
    fn outer(&self, cat: &str) -> HashMap<u64, Span> {
        self.spans
            .get(cat)
            .into_iter()
            .flatten()
            .filter(|s| s.depth == 0)
            .map(|s| (s.id, s.clone()))
            .collect()
    }
}

/// Writes `timeline` as a trace and parses it back, checking the Trace Event Format on the way.
fn trace(timeline: &Timeline) -> Trace {
    let mut bytes = Vec::new();
    timeline.write_chrome_trace(&mut bytes).unwrap();
    let json: Value = serde_json::from_slice(&bytes).expect("the trace is valid JSON");
    let events = json["traceEvents"]
        .as_array()
        .expect("an object with a traceEvents array");
    let pid = &events[0]["pid"];
    let mut slices = Vec::new();
    let mut spans: HashMap<String, Vec<Span>> = HashMap::new();
    // The async slices begun and not yet ended, by category and id: (name, start, args).
    let mut open: HashMap<(String, u64), Vec<Begun>> = HashMap::new();
    let mut instants = Vec::new();
    for event in events {
        assert_eq!(&event["pid"], pid, "one process: {event}");
        let name = event["name"].as_str().expect("a name").to_owned();
        let ph = event["ph"].as_str().expect("a phase");
        if ph != "M" {
            assert!(event["tid"].is_u64(), "{event}");
            assert!(event["cat"].is_string(), "{event}");
        }
        let cat = event["cat"].as_str().unwrap_or_default().to_owned();
        match ph {
            "M" => assert!(event["args"].is_object(), "{event}"),
            "X" => {
                let args = &event["args"];
                let start = ns(&event["ts"]);
                slices.push(Slice {
                    name,
                    tid: event["tid"].as_u64().unwrap(),
                    start,
                    end: start + ns(&event["dur"]),
                    job: args["job"].as_u64().unwrap(),
                    index: args["index"].as_u64().unwrap(),
                    attempt: args["attempt"].as_u64().unwrap(),
                    outcome: args["outcome"].as_str().unwrap().to_owned(),
                });
            }
            "b" => {
                let id = event["id"].as_u64().expect("a numeric id");
                let args = event.get("args").cloned().unwrap_or_default();
                open.entry((cat, id))
                    .or_default()
                    .push((name, ns(&event["ts"]), args));
            }
            "e" => {
                let id = event["id"].as_u64().expect("a numeric id");
                let stack = open
                    .get_mut(&(cat.clone(), id))
                    .expect("an end after a begin");
                let (begun, start, args) = stack.pop().expect("an end after a begin");
                assert_eq!(begun, name, "an async slice ends with its own name");
                let end = ns(&event["ts"]);
                assert!(start <= end, "{name} ends before it starts");
                let depth = stack.len();
                if let Some((outer, outer_start, _)) = stack.last() {
                    assert!(*outer_start <= start, "{name} starts before {outer}");
                }
                spans.entry(cat).or_default().push(Span {
                    name,
                    id,
                    start,
                    end,
                    depth,
                    args,
                });
            }
            "i" => instants.push(event.clone()),
            other => panic!("unexpected phase {other}: {event}"),
        }
    }
    assert!(
        open.values().all(Vec::is_empty),
        "async slices begun and never ended: {open:?}"
    );
    // An inner async slice ends no later than its outer one.
    for list in spans.values() {
        for inner in list.iter().filter(|s| s.depth > 0) {
            let outer = list
                .iter()
                .find(|s| {
                    s.id == inner.id
                        && s.depth == inner.depth - 1
                        && s.start <= inner.start
                        && inner.start <= s.end
                })
                .expect("a nested slice has its outer slice");
            assert!(inner.end <= outer.end, "{inner:?} outlasts {outer:?}");
        }
    }
    Trace {
        json,
        slices,
        spans,
        instants,
    }
}

/// Every task attempt in the timeline, paired: (job, index, attempt) -> (worker, start, end).
fn attempts(timeline: &Timeline) -> HashMap<(u64, u64, u64), (u64, i64, i64)> {
    let mut started: HashMap<(u64, u64, u64), &PoolEvent> = HashMap::new();
    let mut attempts = HashMap::new();
    for event in timeline.events() {
        let job = event.job.map(JobId::get);
        match event.kind {
            EventKind::TaskStarted { index, attempt } => {
                started.insert((job.unwrap(), index as u64, attempt.into()), event);
            }
            EventKind::TaskEnded { index, attempt, .. } => {
                let key = (job.unwrap(), index as u64, u64::from(attempt));
                if let Some(start) = started.remove(&key) {
                    let worker = start.worker.expect("tasks run on workers") as u64;
                    let times = (ns_of(timeline, start.time), ns_of(timeline, event.time));
                    attempts.insert(key, (worker, times.0, times.1));
                }
            }
            _ => {}
        }
    }
    attempts
}

/// The checks every recording passes: each attempt is one slice, on its worker, at its times,
/// inside its job's span; one thread's slices only nest.
fn check_tasks(timeline: &Timeline, trace: &Trace) {
    let attempts = attempts(timeline);
    let mut seen = HashSet::new();
    let jobs = trace.outer("job");
    for slice in &trace.slices {
        let key = (slice.job, slice.index, slice.attempt);
        assert!(seen.insert(key), "attempt {key:?} drawn twice");
        let (worker, start, end) = attempts[&key];
        assert_eq!(slice.tid, worker, "{slice:?} on the wrong worker");
        assert_eq!((slice.start, slice.end), (start, end), "{slice:?}");
        if let Some(job) = jobs.get(&slice.job) {
            assert!(
                job.start <= slice.start && slice.end <= job.end,
                "{slice:?} outside its job {job:?}"
            );
            assert_eq!(slice.name, job.name);
        }
    }
    assert_eq!(seen.len(), attempts.len(), "every attempt is drawn");
    // On one thread, two slices are apart or one holds the other.
    let mut by_tid: HashMap<u64, Vec<&Slice>> = HashMap::new();
    for slice in &trace.slices {
        by_tid.entry(slice.tid).or_default().push(slice);
    }
    for slices in by_tid.values_mut() {
        slices.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        let mut stack: Vec<&Slice> = Vec::new();
        for slice in slices.iter() {
            while stack.last().is_some_and(|top| top.end <= slice.start) {
                stack.pop();
            }
            if let Some(top) = stack.last() {
                assert!(slice.end <= top.end, "{slice:?} overlaps {top:?}");
            }
            stack.push(slice);
        }
    }
}

#[test]
fn every_attempt_is_one_slice_on_its_worker_inside_its_jobs_span() {
    let pool = Pool::new(3);
    let recorder = Recorder::start(&pool, 100_000);
    let names = ["plain", "with \"quotes\" and \\", "tab\tnewline\n\u{1}é✓"];
    let jobs: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            pool.job()
                .name(*name)
                .cap(1 + j)
                .submit((0..40).map(|i| move || i))
        })
        .collect();
    let unnamed = pool.submit((0..10).map(|i| move || i), 2);
    let retry = Retry::attempts(3)
        .backoff(Duration::from_millis(1), 1.0, Duration::from_millis(1))
        .jitter(0.0);
    let flaky = pool
        .job()
        .name("flaky")
        .retry(retry)
        .submit_fallible((0..4).map(|i| {
            move |cx: &TaskContext<'_>| -> Result<u32, std::io::Error> {
                match i {
                    0 if cx.attempt() < 2 => Err(std::io::Error::other("not yet")),
                    1 => Err(std::io::Error::other("down")),
                    _ => Ok(i),
                }
            }
        }));
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id()).collect();
    let (unnamed_id, flaky_id) = (unnamed.id(), flaky.id());
    for job in jobs {
        job.wait().unwrap();
    }
    unnamed.wait().unwrap();
    assert!(flaky.wait().is_err());
    let timeline = recorder.finish();
    assert_eq!(timeline.lost(), 0);
    let trace = trace(&timeline);
    check_tasks(&timeline, &trace);

    // 120 + 10 + 4 first attempts, 1 retry of task 0 and 2 of task 1.
    assert_eq!(trace.slices.len(), 137);
    let spans = trace.outer("job");
    for (id, name) in ids.iter().zip(names) {
        assert_eq!(spans[&id.get()].name, name);
        assert_eq!(spans[&id.get()].args["done"], 40);
    }
    assert_eq!(spans[&unnamed_id.get()].name, unnamed_id.to_string());
    let flaky = &spans[&flaky_id.get()];
    assert_eq!(flaky.args["done"], 3);
    assert_eq!(flaky.args["failed"], 1);
    let outcomes: Vec<(u64, u64, &str)> = {
        let mut o: Vec<_> = trace
            .slices
            .iter()
            .filter(|s| s.job == flaky_id.get())
            .map(|s| (s.index, s.attempt, s.outcome.as_str()))
            .collect();
        o.sort();
        o
    };
    assert_eq!(
        outcomes,
        [
            (0, 1, "retrying after 1ms"),
            (0, 2, "done"),
            (1, 1, "retrying after 1ms"),
            (1, 2, "retrying after 1ms"),
            (1, 3, "failed"),
            (2, 1, "done"),
            (3, 1, "done"),
        ]
    );

    // A named track per worker, and one for the other threads.
    let threads: HashMap<u64, &str> = trace
        .events()
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            (
                e["tid"].as_u64().unwrap(),
                e["args"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        threads,
        HashMap::from([
            (0, "worker 0"),
            (1, "worker 1"),
            (2, "worker 2"),
            (3, "other threads")
        ])
    );
    assert_eq!(trace.json["otherData"]["events"], timeline.events().len());
}

#[test]
fn a_task_waiting_on_a_sub_job_holds_the_sub_jobs_slices() {
    let pool = Arc::new(Pool::new(1));
    let recorder = Recorder::start(&pool, 10_000);
    let inner_pool = pool.clone();
    let outer = pool.job().name("outer").submit((0..2).map(move |_| {
        let pool = inner_pool.clone();
        move || {
            let inner = pool.job().name("inner").submit((0..3).map(|i| move || i));
            inner.wait().unwrap().len()
        }
    }));
    assert_eq!(outer.wait().unwrap(), [3, 3]);
    let timeline = recorder.finish();
    let trace = trace(&timeline);
    check_tasks(&timeline, &trace);
    let (outer, inner): (Vec<&Slice>, Vec<&Slice>) =
        trace.slices.iter().partition(|s| s.name == "outer");
    assert_eq!((outer.len(), inner.len()), (2, 6));
    // One worker: it ran each inner task inside the outer task that waited on it.
    for slice in inner {
        assert!(outer
            .iter()
            .any(|o| o.start <= slice.start && slice.end <= o.end));
    }
}

#[test]
fn a_graphs_modules_are_spans_around_their_tasks_and_skipped_ones_instants() {
    let pool = Pool::new(2);
    let recorder = Recorder::start(&pool, 10_000);
    let mut dag = Dag::new();
    let step = |n: u32| (0..n).map(|i| move |_: &Context| -> TaskResult<u32> { Ok(i) });
    dag.module("fetch", 2, step(4)).unwrap();
    dag.module("parse", 2, step(3))
        .unwrap()
        .after(["fetch"])
        .unwrap();
    dag.module("index", 1, step(2))
        .unwrap()
        .after(["fetch"])
        .unwrap();
    dag.module("report", 1, step(1))
        .unwrap()
        .after(["parse", "index"])
        .unwrap();
    dag.module(
        "broken",
        1,
        [|_: &Context| -> TaskResult<u32> { Err("no disk".into()) }],
    )
    .unwrap();
    dag.module("after-broken", 1, step(1))
        .unwrap()
        .after(["broken"])
        .unwrap();
    let report = dag.run(&pool).unwrap();
    assert!(!report.is_success());
    let timeline = recorder.finish();
    let trace = trace(&timeline);
    check_tasks(&timeline, &trace);

    let modules: HashMap<&str, &Span> = trace.spans["module"]
        .iter()
        .map(|s| (s.name.as_str(), s))
        .collect();
    let mut names: Vec<&str> = modules.keys().copied().collect();
    names.sort();
    assert_eq!(names, ["broken", "fetch", "index", "parse", "report"]);
    assert_eq!(modules["fetch"].args["state"], "done");
    assert!(modules["broken"].args["state"]
        .as_str()
        .unwrap()
        .starts_with("failed"));
    // Each module's tasks, and its job, lie inside it.
    for (name, module) in &modules {
        let tasks: Vec<&Slice> = trace.slices.iter().filter(|s| s.name == *name).collect();
        assert!(!tasks.is_empty(), "{name} has its tasks");
        for task in tasks {
            assert!(
                module.start <= task.start && task.end <= module.end,
                "{task:?}"
            );
        }
    }
    for job in trace.outer("job").values() {
        let module = modules[job.name.as_str()];
        assert!(
            module.start <= job.start && job.end <= module.end,
            "{job:?}"
        );
    }
    // A module starts once its dependencies have ended.
    for (module, dependencies) in [
        ("parse", &["fetch"][..]),
        ("index", &["fetch"]),
        ("report", &["parse", "index"]),
    ] {
        for dependency in dependencies {
            assert!(modules[dependency].end <= modules[module].start);
        }
    }
    // The skipped module never started: an instant.
    let skipped: Vec<&Value> = trace
        .instants
        .iter()
        .filter(|e| e["cat"] == "module")
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["name"], "after-broken");
    assert!(skipped[0]["args"]["state"]
        .as_str()
        .unwrap()
        .starts_with("skipped"));
}

#[test]
fn a_job_held_by_a_full_limit_shows_the_wait_until_its_task_starts() {
    let pool = Pool::new(2);
    let limiter = Limiter::new().with_cap(1);
    let recorder = Recorder::start(&pool, 10_000);
    // A second listener, to know when the second job is held.
    let events = pool.events(10_000);
    let (started, running) = channel();
    let (release, gate) = channel::<()>();
    let gate = Mutex::new(gate);
    let first = pool.job().name("first").limit(&limiter).submit([move || {
        started.send(()).unwrap();
        gate.lock().unwrap().recv_timeout(HANG).unwrap();
    }]);
    running.recv_timeout(HANG).unwrap();
    let second = pool.job().name("second").limit(&limiter).submit([|| ()]);
    let job = second.id().get();
    let held = loop {
        let event = events.recv_timeout(HANG).expect("the second job is held");
        if event.job.map(JobId::get) == Some(job)
            && event.kind == (EventKind::JobHeld { until: None })
        {
            break event;
        }
    };
    release.send(()).unwrap();
    first.wait().unwrap();
    second.wait().unwrap();
    let timeline = recorder.finish();
    let trace = trace(&timeline);
    check_tasks(&timeline, &trace);

    let holds: Vec<&Span> = trace.spans["job"]
        .iter()
        .filter(|s| s.id == job && s.depth == 1)
        .collect();
    assert!(!holds.is_empty());
    assert!(holds.iter().all(|h| h.name == "held: limit full"));
    let task = trace.slices.iter().find(|s| s.job == job).unwrap();
    let hold = holds
        .iter()
        .find(|h| h.start == ns_of(&timeline, held.time))
        .expect("the hold seen is drawn");
    assert_eq!(hold.end, task.start, "held until its task started");
}

#[test]
fn a_job_held_for_a_far_start_slot_waits_until_its_end() {
    let pool = Pool::new(2);
    let recorder = Recorder::start(&pool, 10_000);
    let events = pool.events(10_000);
    // One start an hour: the second task's slot is far away; the job is cancelled meanwhile.
    let job = pool
        .job()
        .name("patient")
        .rate(Rate::new(1, Duration::from_secs(3600)))
        .submit((0..3).map(|i| move || i));
    let id = job.id().get();
    let (held, slot) = loop {
        let event = events.recv_timeout(HANG).expect("the job is held");
        if let EventKind::JobHeld { until: Some(slot) } = event.kind {
            break (event.time, slot);
        }
    };
    job.cancel();
    assert!(job.wait().unwrap_err().was_cancelled());
    let timeline = recorder.finish();
    let trace = trace(&timeline);
    check_tasks(&timeline, &trace);

    let span = &trace.outer("job")[&id];
    assert_eq!(span.args["done"], 1);
    assert_eq!(span.args["not_run"], 2);
    let waits: Vec<&Span> = trace.spans["job"]
        .iter()
        .filter(|s| s.id == id && s.depth == 1)
        .collect();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(waits[0].name, "held: rate");
    assert_eq!(waits[0].start, ns_of(&timeline, held));
    assert_eq!(waits[0].end, span.end, "cut short at the job's end");
    assert_eq!(ns(&waits[0].args["slot_due_us"]), ns_of(&timeline, slot));
}

#[test]
fn a_job_held_by_a_rate_shows_each_wait_inside_its_span() {
    let pool = Pool::new(2);
    let recorder = Recorder::start(&pool, 10_000);
    let job = pool
        .job()
        .name("polite")
        .cap(2)
        .rate(Rate::new(1, Duration::from_millis(5)))
        .submit((0..4).map(|i| move || i));
    let id = job.id().get();
    job.wait().unwrap();
    let timeline = recorder.finish();
    let trace = trace(&timeline);
    check_tasks(&timeline, &trace);

    // However many holds the clock made: each is inside a wait drawn in the job, which starts
    // with a hold and lasts until its slot at most; overlapping holds (two workers refused the
    // same slot) are one wait.
    let told: Vec<(i64, i64)> = timeline
        .events()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::JobHeld { until: Some(at) } => {
                Some((ns_of(&timeline, e.time), ns_of(&timeline, at)))
            }
            _ => None,
        })
        .collect();
    let waits: Vec<&Span> = trace.spans["job"]
        .iter()
        .filter(|s| s.id == id && s.depth == 1)
        .collect();
    assert_eq!(waits.is_empty(), told.is_empty());
    for wait in &waits {
        assert_eq!(wait.name, "held: rate");
        let slot = ns(&wait.args["slot_due_us"]);
        assert!(told.iter().any(|&(at, _)| at == wait.start), "{wait:?}");
        assert!(told.iter().any(|&(_, due)| due == slot), "{wait:?}");
        assert!(wait.end <= slot.max(wait.start), "{wait:?}");
    }
    for (at, due) in told {
        assert!(
            waits
                .iter()
                .any(|w| w.start <= at && at <= w.end && due <= ns(&w.args["slot_due_us"])),
            "the hold at {at} is drawn"
        );
    }
}

#[test]
fn the_ring_keeps_the_last_events_and_counts_the_others() {
    let pool = Pool::new(1);
    let recorder = Recorder::start(&pool, 10);
    let job = pool.submit((0..100).map(|i| move || i), 1);
    let id = job.id();
    job.wait().unwrap();
    let timeline = recorder.finish();
    // Submitted, started, a start and an end per task, finished: 203 told, 10 kept.
    assert_eq!(timeline.events().len(), 10);
    assert_eq!((timeline.evicted(), timeline.dropped()), (193, 0));
    assert_eq!(timeline.lost(), 193);
    let kinds: Vec<EventKind> = timeline.events().iter().map(|e| e.kind.clone()).collect();
    assert!(matches!(kinds[0], EventKind::TaskEnded { index: 95, .. }));
    for (at, index) in (96..100).enumerate() {
        assert_eq!(
            kinds[1 + 2 * at],
            EventKind::TaskStarted { index, attempt: 1 }
        );
        assert!(matches!(kinds[2 + 2 * at], EventKind::TaskEnded { index: i, .. } if i == index));
    }
    assert!(matches!(kinds[9], EventKind::JobFinished { done: 100, .. }));
    assert!(timeline.events().iter().all(|e| e.job == Some(id)));

    // Only what is whole is drawn: the last four tasks; not the job, whose start was lost.
    let trace = trace(&timeline);
    check_tasks(&timeline, &trace);
    let mut drawn: Vec<u64> = trace.slices.iter().map(|s| s.index).collect();
    drawn.sort();
    assert_eq!(drawn, [96, 97, 98, 99]);
    assert!(!trace.spans.contains_key("job"));
    assert_eq!(trace.json["otherData"]["evicted"], 193);
}

#[test]
fn a_recording_outlives_its_pool_and_saves_to_a_file() {
    let pool = Pool::new(2);
    let recorder = Recorder::start(&pool, 1_000);
    pool.submit((0..5).map(|i| move || i), 2).wait().unwrap();
    // With the pool gone, the recorder's thread stops on its own; `finish` still returns all.
    drop(pool);
    let timeline = recorder.finish();
    assert_eq!(timeline.events().len(), 13);

    let dir = std::env::temp_dir().join(format!("jobpool-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.json");
    timeline.save(&path).unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved["traceEvents"], trace(&timeline).json["traceEvents"]);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["trace.json"], "no temporary file is left");
    std::fs::remove_dir_all(&dir).unwrap();
}
