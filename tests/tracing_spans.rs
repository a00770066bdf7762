//! With the `tracing` feature, every job has a span and every task attempt a child span of it,
//! entered on the worker that runs the task, so a subscriber sees the task's own events inside
//! it.
#![cfg(feature = "tracing")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};

use jobpool::Pool;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A span as the subscriber saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: &'static str,
    parent: Option<u64>,
    fields: HashMap<String, String>,
    /// Threads that entered it.
    entered_on: Vec<String>,
}

/// Records every span, its parent and fields, and which span each event happened in.
#[derive(Default)]
struct Recorder {
    next: AtomicU64,
    spans: Mutex<HashMap<u64, Seen>>,
    /// Per thread, the spans entered, innermost last.
    stacks: Mutex<HashMap<std::thread::ThreadId, Vec<u64>>>,
    /// (message, innermost span) of every event.
    events: Mutex<Vec<(String, Option<u64>)>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The subscriber: a handle on the shared recorder.
struct Shared(Arc<Recorder>);

impl Subscriber for Shared {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.0.next.fetch_add(1, SeqCst) + 1;
        let mut seen = Seen {
            name: span.metadata().name(),
            parent: span.parent().map(Id::into_u64),
            ..Seen::default()
        };
        if span.is_contextual() {
            let stacks = self.0.stacks.lock().unwrap();
            seen.parent = stacks
                .get(&std::thread::current().id())
                .and_then(|s| s.last().copied());
        }
        span.record(&mut Fields(&mut seen.fields));
        self.0.spans.lock().unwrap().insert(id, seen);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.0.spans.lock().unwrap();
        if let Some(seen) = spans.get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let stacks = self.0.stacks.lock().unwrap();
        let inner = stacks
            .get(&std::thread::current().id())
            .and_then(|s| s.last().copied());
        self.0.events.lock().unwrap().push((message, inner));
    }

    fn enter(&self, span: &Id) {
        let thread = std::thread::current();
        self.0
            .stacks
            .lock()
            .unwrap()
            .entry(thread.id())
            .or_default()
            .push(span.into_u64());
        let name = thread.name().unwrap_or("?").to_owned();
        if let Some(seen) = self.0.spans.lock().unwrap().get_mut(&span.into_u64()) {
            seen.entered_on.push(name);
        }
    }

    fn exit(&self, span: &Id) {
        let mut stacks = self.0.stacks.lock().unwrap();
        let stack = stacks.entry(std::thread::current().id()).or_default();
        if let Some(at) = stack.iter().rposition(|&s| s == span.into_u64()) {
            stack.remove(at);
        }
    }
}

/// The process-wide recorder: worker threads use the global dispatcher, so the tests share
/// one, and each looks only at the spans under its own job (told apart by name).
fn recorder() -> Arc<Recorder> {
    static RECORDER: OnceLock<Arc<Recorder>> = OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let recorder = Arc::new(Recorder::default());
            tracing::dispatcher::set_global_default(tracing::Dispatch::new(Shared(
                recorder.clone(),
            )))
            .expect("no other global subscriber in this test binary");
            recorder
        })
        .clone()
}

/// The id and span of the one job named `name`, and the spans of its tasks.
fn job_and_tasks(recorder: &Recorder, name: &str) -> (u64, Seen, Vec<Seen>) {
    let spans = recorder.spans.lock().unwrap().clone();
    let jobs: Vec<_> = spans
        .iter()
        .filter(|(_, s)| s.name == "job" && s.fields.get("name").map(String::as_str) == Some(name))
        .collect();
    assert_eq!(jobs.len(), 1, "one span for job {name}");
    let (&job, job_span) = jobs[0];
    let mut tasks: Vec<Seen> = spans
        .values()
        .filter(|s| s.name == "task" && s.parent == Some(job))
        .cloned()
        .collect();
    tasks.sort_by_key(|s| (s.fields["index"].clone(), s.fields["attempt"].clone()));
    (job, job_span.clone(), tasks)
}

#[test]
fn a_job_has_a_span_and_each_task_a_child_span_entered_on_its_worker() {
    let recorder = recorder();
    {
        let pool = Pool::builder()
            .threads(2)
            .thread_name(|i| format!("traced-{i}"))
            .build()
            .unwrap();
        let request = tracing::info_span!("request");
        let job = request.in_scope(|| {
            pool.job()
                .name("resize")
                .cap(2)
                .submit((0..4).map(|i| move || tracing::info!("resizing {i}")))
        });
        job.wait().unwrap();
    }

    let (job, job_span, tasks) = job_and_tasks(&recorder, "resize");
    let spans = recorder.spans.lock().unwrap().clone();
    let request = &spans[&job_span
        .parent
        .expect("the job nests in the submitter's span")];
    assert_eq!(request.name, "request");
    assert_eq!(tasks.len(), 4, "one span per task attempt");
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(task.parent, Some(job));
        assert_eq!(task.fields["index"], i.to_string());
        assert_eq!(task.fields["attempt"], "1");
        assert_eq!(
            task.fields["job"], "resize",
            "the job's name, in the task's span too"
        );
        assert_eq!(task.entered_on.len(), 1);
        assert!(
            task.entered_on[0].starts_with("traced-"),
            "{:?}",
            task.entered_on
        );
    }

    // Each task's own event happened inside its task span.
    let events = recorder.events.lock().unwrap().clone();
    for i in 0..4 {
        let (_, inner) = events
            .iter()
            .find(|(m, _)| *m == format!("resizing {i}"))
            .unwrap();
        let span = &spans[&inner.expect("inside a span")];
        assert_eq!(span.name, "task");
        assert_eq!(span.fields["index"], i.to_string());
    }
}

#[test]
fn a_retried_task_has_a_span_per_attempt() {
    let recorder = recorder();
    {
        let pool = Pool::new(1);
        let retry = jobpool::Retry::attempts(3).backoff(
            std::time::Duration::from_millis(1),
            1.0,
            std::time::Duration::from_millis(1),
        );
        let job = pool.job().name("flaky").retry(retry).submit_fallible(vec![
            |cx: &jobpool::TaskContext<'_>| -> Result<u32, std::io::Error> {
                if cx.attempt() < 3 {
                    Err(std::io::Error::other("flaky"))
                } else {
                    Ok(cx.attempt())
                }
            },
        ]);
        assert_eq!(job.wait().unwrap(), vec![3]);
    }
    let (_, _, tasks) = job_and_tasks(&recorder, "flaky");
    let attempts: Vec<_> = tasks.iter().map(|s| s.fields["attempt"].clone()).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
}
