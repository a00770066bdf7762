#![cfg(feature = "cluster")]
#![cfg(unix)]
//! The cluster with real processes on a real `nats-server`: worker processes and a submitter
//! process, killed (SIGKILL) or stopped (SIGTERM) by the test, and the server itself killed
//! and started again.
//!
//! 1. The cap holds across three worker processes: the intervals the tasks report (wall
//!    clock, one machine) never overlap more than k, and do reach k.
//! 2. A worker killed in the middle of a job loses no task: its tasks in flight run again on
//!    another worker, and every result comes back right.
//! 3. A submitter killed after submitting: another process attaches to the job by its id and
//!    collects every result.
//! 4. The server killed and started again in the middle of a job: the job still completes
//!    (the submitter's reader of the results is made anew after the restart).
//!
//! The child processes are this test binary again (`std::env::current_exe()`), running one
//! child test (`--exact <name>`) that does nothing unless [`ROLE`] is set in its environment.
//! A child exits by itself if its parent dies or after [`CHILD_LIFETIME`]; the parent kills
//! every child it started when a test ends, passed or failed ([`Procs`]). The tests take one
//! lock ([`one_at_a_time`]): each starts a server and several processes, and on a small
//! machine their timing (tasks of tens of milliseconds) would suffer from running at once.

mod cluster_common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster_common::NatsServer;
use jobpool::cluster::{
    Broker, ClusterError, RemoteFailure, RemoteJob, Submitter, TaskType, TaskTypes, Worker,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

// ------------------------------------------------------------------------------------------
// The task types, registered alike in every process
// ------------------------------------------------------------------------------------------

/// What a `sleepy` task reports: which task, its output, when it ran, and where.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Run {
    index: u64,
    value: u64,
    /// Nanoseconds since the Unix epoch (one machine, one clock for every process).
    start_ns: u64,
    end_ns: u64,
    pid: u32,
}

/// The output of task `index`.
fn expected_value(index: u64) -> u64 {
    index * index + 1
}

fn now_ns() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    u64::try_from(since.as_nanos()).expect("a clock before 2554")
}

/// Appends `line` to this process's task log, `<LOG_VAR>/tasks-<pid>.log`, in one write (so
/// another process reading the file sees whole lines, and sees them at once); nothing in a
/// process without [`LOG_VAR`].
fn log_line(line: &str) {
    let Some(dir) = std::env::var_os(LOG_VAR) else {
        return;
    };
    let path = Path::new(&dir).join(format!("tasks-{}.log", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()));
    file.write_all(line.as_bytes())
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
}

struct Types {
    types: TaskTypes,
    /// `(index, milliseconds)`: logs `start <index> <pid>`, sleeps, logs `end <index> <pid>`.
    sleepy: TaskType<(u64, u64), Run>,
    /// Another type, to attach with the wrong one.
    other: TaskType<u64, u64>,
}

fn task_types() -> Types {
    let mut types = TaskTypes::new();
    let sleepy = types.register("sleepy", |(index, sleep_ms): (u64, u64)| {
        let pid = std::process::id();
        let start_ns = now_ns();
        log_line(&format!("start {index} {pid}\n"));
        std::thread::sleep(Duration::from_millis(sleep_ms));
        let end_ns = now_ns();
        log_line(&format!("end {index} {pid}\n"));
        Ok(Run {
            index,
            value: expected_value(index),
            start_ns,
            end_ns,
            pid,
        })
    });
    let other = types.register("other", |x: u64| Ok(x));
    Types {
        types,
        sleepy,
        other,
    }
}

// ------------------------------------------------------------------------------------------
// Child processes
// ------------------------------------------------------------------------------------------

/// The environment variable that tells a child test what to do; a child test returns at once
/// when it is not set to its role (as in every ordinary run).
const ROLE: &str = "JOBPOOL_CLUSTER_PROCS_ROLE";
/// The role of [`child_worker`].
const WORKER_ROLE: &str = "worker";
/// The role of [`child_submitter`].
const SUBMITTER_ROLE: &str = "submitter";

/// The broker's URL.
const URL_VAR: &str = "JOBPOOL_CLUSTER_PROCS_URL";
/// The ack wait, in milliseconds, of the child's `Broker`.
const ACK_WAIT_VAR: &str = "JOBPOOL_CLUSTER_PROCS_ACK_WAIT_MS";
/// A worker's threads.
const THREADS_VAR: &str = "JOBPOOL_CLUSTER_PROCS_THREADS";
/// A child's name, for its marker files.
const NAME_VAR: &str = "JOBPOOL_CLUSTER_PROCS_NAME";
/// The directory of the marker files (`ready-<name>`, `ran-<name>`, `job-id`).
const DIR_VAR: &str = "JOBPOOL_CLUSTER_PROCS_DIR";
/// The directory of the task logs (see [`log_line`]).
const LOG_VAR: &str = "JOBPOOL_CLUSTER_PROCS_LOG";

/// How long a wait on another process (or on the broker) may take before the test fails
/// instead of hanging.
const HANG: Duration = Duration::from_secs(60);
/// How long a child lives at most, whatever happens to its parent.
const CHILD_LIFETIME: Duration = Duration::from_secs(150);

/// The submitter child's job: 30 tasks of 50 ms, at most 3 at once.
const SUBMITTED_TASKS: u64 = 30;
const SUBMITTED_SLEEP_MS: u64 = 50;
const SUBMITTED_CAP: usize = 3;

fn acting_as(role: &str) -> bool {
    std::env::var(ROLE).is_ok_and(|r| r == role)
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// The broker as the parent described it to this child.
fn child_broker() -> Broker {
    let ack_wait_ms: u64 = var(ACK_WAIT_VAR).parse().expect("a number of milliseconds");
    Broker::new(var(URL_VAR)).ack_wait(Duration::from_millis(ack_wait_ms))
}

/// In a child: a thread that ends the process if the parent dies (the child is adopted by
/// another process) or after [`CHILD_LIFETIME`], so that no child outlives its test.
fn start_watchdog() {
    let parent = std::os::unix::process::parent_id();
    let born = Instant::now();
    std::thread::spawn(move || loop {
        if std::os::unix::process::parent_id() != parent {
            eprintln!("watchdog: the parent process is gone; exiting");
            std::process::exit(3);
        }
        if born.elapsed() > CHILD_LIFETIME {
            eprintln!("watchdog: alive for {CHILD_LIFETIME:?}; exiting");
            std::process::exit(4);
        }
        std::thread::sleep(Duration::from_millis(50));
    });
}

/// Child: a worker process. Connects, says `ready-<name>`, runs until SIGTERM
/// (`Worker::run_until_signal`), then writes how many tasks it ran to `ran-<name>`. A no-op in
/// an ordinary run.
#[test]
fn child_worker() {
    if !acting_as(WORKER_ROLE) {
        return;
    }
    start_watchdog();
    let dir = PathBuf::from(var(DIR_VAR));
    let name = var(NAME_VAR);
    let threads: usize = var(THREADS_VAR).parse().expect("a number of threads");
    let worker =
        Worker::start(&child_broker(), task_types().types, threads).expect("the worker starts");
    fs::write(dir.join(format!("ready-{name}")), "").unwrap();
    let ran = worker
        .run_until_signal()
        .expect("the worker's loop ended with an error");
    fs::write(dir.join(format!("ran-{name}")), ran.to_string()).unwrap();
}

/// Child: a submitter process. Submits the job, writes its id to `job-id`, then waits for the
/// results until the parent kills it. A no-op in an ordinary run.
#[test]
fn child_submitter() {
    if !acting_as(SUBMITTER_ROLE) {
        return;
    }
    start_watchdog();
    let dir = PathBuf::from(var(DIR_VAR));
    let types = task_types();
    let submitter = Submitter::connect(&child_broker()).expect("the submitter connects");
    let arguments = (0..SUBMITTED_TASKS).map(|index| (index, SUBMITTED_SLEEP_MS));
    let job = submitter
        .submit(&types.sleepy, arguments, SUBMITTED_CAP)
        .expect("the job is submitted");
    let temporary = dir.join("job-id.tmp");
    fs::write(&temporary, job.id()).unwrap();
    fs::rename(&temporary, dir.join("job-id")).unwrap();
    // As a submitter does: wait for the results. The parent kills this process meanwhile.
    let results = job.wait();
    fs::write(dir.join("collected"), format!("{results:?}")).unwrap();
    wait_for_other_process("the parent to kill this submitter", || false);
}

// ------------------------------------------------------------------------------------------
// The parent's side
// ------------------------------------------------------------------------------------------

/// One test at a time in this file (see the module docs); a failed test does not stop the
/// others.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls until `done` holds, for a condition that another process makes true; panics after
/// [`HANG`]. Never used to order threads of one process.
fn wait_for_other_process(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A started child.
struct Proc {
    name: String,
    pid: u32,
    child: Option<Child>,
}

/// The children of one test, and their directory (marker files, task logs, and each child's
/// stdout and stderr); every child still running is killed when dropped.
struct Procs {
    dir: tempfile::TempDir,
    procs: Vec<Proc>,
}

impl Procs {
    fn new() -> Procs {
        Procs {
            dir: tempfile::tempdir().expect("a directory for the children"),
            procs: Vec::new(),
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts this test binary again as `name`, running only the child test `test` in `role`.
    fn spawn(&mut self, name: &str, test: &str, role: &str, vars: &[(&str, String)]) -> u32 {
        let file = |ext: &str| {
            fs::File::create(self.dir().join(format!("{name}.{ext}")))
                .expect("a file for the child's output")
        };
        let child = Command::new(std::env::current_exe().expect("the test binary's path"))
            .args(["--exact", test, "--nocapture", "--test-threads", "1"])
            .env(ROLE, role)
            .env(NAME_VAR, name)
            .env(DIR_VAR, self.dir())
            .env(LOG_VAR, self.dir())
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("cannot start a child process");
        let pid = child.id();
        self.procs.push(Proc {
            name: name.to_owned(),
            pid,
            child: Some(child),
        });
        pid
    }

    /// Starts a worker process of `threads` threads.
    fn spawn_worker(&mut self, name: &str, url: &str, threads: usize, ack_wait: Duration) -> u32 {
        let vars = [
            (URL_VAR, url.to_owned()),
            (THREADS_VAR, threads.to_string()),
            (ACK_WAIT_VAR, ack_wait.as_millis().to_string()),
        ];
        self.spawn(name, "child_worker", WORKER_ROLE, &vars)
    }

    fn get(&mut self, name: &str) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no child named {name}"))
    }

    fn pid(&mut self, name: &str) -> u32 {
        self.get(name).pid
    }

    fn name_of(&self, pid: u32) -> Option<&str> {
        self.procs
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| p.name.as_str())
    }

    /// The child's stdout and stderr so far, to show when something went wrong.
    fn output(&self, name: &str) -> String {
        let read = |ext: &str| {
            fs::read_to_string(self.dir().join(format!("{name}.{ext}"))).unwrap_or_default()
        };
        format!(
            "--- {name} stdout ---\n{}--- {name} stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    /// Panics, with the child's output, if it has exited.
    fn assert_alive(&mut self, name: &str) {
        let child = self.get(name).child.as_mut().expect("a child still owned");
        if let Some(status) = child.try_wait().expect("cannot poll a child") {
            panic!(
                "child {name} exited early ({status})\n{}",
                self.output(name)
            );
        }
    }

    /// Waits until the child wrote the file `marker` (in the directory), or fails if it exits
    /// first or after [`HANG`].
    /// Starts a worker process per name, all at once, and waits until each is connected.
    fn start_workers(&mut self, names: &[&str], url: &str, threads: usize, ack_wait: Duration) {
        for name in names {
            self.spawn_worker(name, url, threads, ack_wait);
        }
        for name in names {
            self.wait_for_marker(name, &format!("ready-{name}"));
        }
    }

    fn wait_for_marker(&mut self, name: &str, marker: &str) {
        let path = self.dir().join(marker);
        wait_for_other_process(&format!("{name} to write {marker}"), || {
            self.assert_alive(name);
            path.exists()
        });
    }

    /// Waits for the child to exit (after a signal), at most [`HANG`].
    fn wait_exit(&mut self, name: &str) -> ExitStatus {
        let mut child = self.get(name).child.take().expect("a child still owned");
        let deadline = Instant::now() + HANG;
        loop {
            if let Some(status) = child.try_wait().expect("cannot poll a child") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "child {name} did not exit in {HANG:?}\n{}",
                    self.output(name)
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL, and its exit status.
    fn sigkill(&mut self, name: &str) -> ExitStatus {
        let child = self.get(name).child.as_mut().expect("a child still owned");
        child.kill().expect("cannot kill a child");
        self.wait_exit(name)
    }

    /// Stops a worker with SIGTERM once it watches for it (`Worker::run_until_signal`), checks
    /// that it exited cleanly, and returns how many tasks it says it ran.
    fn stop_worker(&mut self, name: &str) -> usize {
        let pid = self.pid(name);
        wait_for_other_process(&format!("{name} to watch SIGTERM"), || {
            self.assert_alive(name);
            catches_sigterm(pid).unwrap_or(true)
        });
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("cannot run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = self.wait_exit(name);
        assert!(
            status.success(),
            "worker {name} did not stop cleanly on SIGTERM ({status})\n{}",
            self.output(name)
        );
        let ran = fs::read_to_string(self.dir().join(format!("ran-{name}")))
            .unwrap_or_else(|_| panic!("{name} wrote no ran-{name}\n{}", self.output(name)));
        ran.trim().parse().expect("a number of tasks")
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        for i in 0..self.procs.len() {
            if let Some(mut child) = self.procs[i].child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            if failed {
                eprintln!("{}", self.output(&self.procs[i].name));
            }
        }
    }
}

/// Whether process `pid` has a handler for SIGTERM (Linux's `/proc/<pid>/status`, `SigCgt`);
/// `None` where that cannot be read.
fn catches_sigterm(pid: u32) -> Option<bool> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    Some(mask & (1 << (15 - 1)) != 0)
}

/// One line of a task log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Logged {
    start: bool,
    index: u64,
    pid: u32,
}

/// Every whole line of every task log in `dir`.
fn read_logs(dir: &Path) -> Vec<Logged> {
    let mut lines = Vec::new();
    for entry in fs::read_dir(dir).expect("cannot list the logs").flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with("tasks-") && name.ends_with(".log")) {
            continue;
        }
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        // Only lines with their newline: a line being written is not read half.
        let whole = &text[..text.rfind('\n').map_or(0, |at| at + 1)];
        for line in whole.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            let [kind, index, pid] = words[..] else {
                panic!("a bad log line in {name}: {line:?}");
            };
            lines.push(Logged {
                start: kind == "start",
                index: index.parse().expect("an index"),
                pid: pid.parse().expect("a pid"),
            });
        }
    }
    lines
}

fn ends_logged(dir: &Path) -> usize {
    read_logs(dir).iter().filter(|l| !l.start).count()
}

/// Waits for `job` with a deadline: `wait` runs on a thread of its own, left behind if it
/// hangs (the test fails then).
fn wait_bounded<O>(job: RemoteJob<O>, what: &str) -> Vec<Result<O, RemoteFailure>>
where
    O: DeserializeOwned + Send + 'static,
{
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(job.wait());
    });
    match receiver.recv_timeout(HANG) {
        Ok(Ok(results)) => results,
        Ok(Err(err)) => panic!("{what}: wait() failed: {err}"),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: wait() did not return in {HANG:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: wait() panicked"),
    }
}

/// Polls `job.progress()` until at least `at_least` tasks have a result.
fn wait_for_results<O: DeserializeOwned>(job: &RemoteJob<O>, at_least: usize) -> usize {
    let deadline = Instant::now() + HANG;
    loop {
        let (known, _) = job.progress().expect("progress()");
        if known >= at_least {
            return known;
        }
        assert!(
            Instant::now() < deadline,
            "only {known} results after {HANG:?}, waiting for {at_least}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Checks that there is one right result per task of a job of `tasks` sleepy tasks of
/// `sleep_ms` each, and returns them.
fn check_runs(results: Vec<Result<Run, RemoteFailure>>, tasks: u64, sleep_ms: u64) -> Vec<Run> {
    assert_eq!(results.len() as u64, tasks, "one result per task");
    results
        .into_iter()
        .enumerate()
        .map(|(i, result)| {
            let run = result.unwrap_or_else(|failure| panic!("task {i} failed: {failure}"));
            assert_eq!(
                run.index, i as u64,
                "the result of task {i} is out of place"
            );
            assert_eq!(run.value, expected_value(i as u64), "task {i}'s output");
            assert!(
                run.end_ns - run.start_ns >= sleep_ms * 1_000_000,
                "task {i} ran for less than {sleep_ms} ms: {run:?}"
            );
            run
        })
        .collect()
}

/// The most intervals open at one moment (half-open: one ending when another starts does not
/// overlap it).
fn max_overlap(intervals: impl IntoIterator<Item = (u64, u64)>) -> usize {
    let mut events: Vec<(u64, i64)> = Vec::new();
    for (start, end) in intervals {
        events.push((start, 1));
        events.push((end, -1));
    }
    // At one instant, ends (-1) sort before starts (+1).
    events.sort_unstable();
    let (mut open, mut most) = (0i64, 0i64);
    for (_, step) in events {
        open += step;
        most = most.max(open);
    }
    most as usize
}

/// How many tasks each process ran, among `runs`.
fn runs_per_pid(runs: &[Run]) -> BTreeMap<u32, usize> {
    let mut per_pid = BTreeMap::new();
    for run in runs {
        *per_pid.entry(run.pid).or_insert(0) += 1;
    }
    per_pid
}

/// This process's task types and submitter, connected before any worker starts: its
/// connection creates the cluster's streams, so that the workers, starting at once, find them.
/// (Processes that create the streams at the same moment on a fresh server may fail: see
/// `ensure_streams` in `src/cluster/protocol.rs`; this file does not test that race.) The
/// jobs' consumers take their ack wait from the submitter's broker.
fn connect_first(server: &NatsServer, ack_wait: Duration) -> (Types, Submitter) {
    let broker = Broker::new(server.url()).ack_wait(ack_wait);
    let submitter = Submitter::connect(&broker).expect("the test's submitter connects");
    (task_types(), submitter)
}

// ------------------------------------------------------------------------------------------
// 1. The cap across the cluster
// ------------------------------------------------------------------------------------------

/// 3 worker processes of 4 threads (12 slots), a job of 60 tasks of 40 ms with k = 5: at no
/// moment do more than 5 run, across the processes, and 5 do run at once; more than one
/// process runs tasks.
#[test]
fn the_cap_holds_across_worker_processes() {
    let _one = one_at_a_time();
    let Some(server) = NatsServer::start() else {
        return;
    };
    let began = Instant::now();
    let (tasks, sleep_ms, cap) = (60u64, 40u64, 5usize);
    let ack_wait = Duration::from_secs(10);
    let (types, submitter) = connect_first(&server, ack_wait);
    let mut procs = Procs::new();
    let names = ["w0", "w1", "w2"];
    procs.start_workers(&names, &server.url(), 4, ack_wait);

    let job = submitter
        .submit(&types.sleepy, (0..tasks).map(|i| (i, sleep_ms)), cap)
        .unwrap();
    let runs = check_runs(wait_bounded(job, "the job"), tasks, sleep_ms);

    let overlap = max_overlap(runs.iter().map(|r| (r.start_ns, r.end_ns)));
    let per_pid = runs_per_pid(&runs);
    println!("most tasks at once: {overlap}; results per worker process: {per_pid:?}");
    assert!(
        overlap <= cap,
        "{overlap} tasks ran at once, over the cap of {cap}"
    );
    assert_eq!(overlap, cap, "the cap of {cap} was never reached");
    for pid in per_pid.keys() {
        assert!(procs.name_of(*pid).is_some(), "pid {pid} is no worker");
    }
    assert!(
        per_pid.len() >= 2,
        "one worker process ran every task: {per_pid:?}"
    );

    // Each worker stops cleanly on SIGTERM, and ran as many tasks as its log shows.
    let logs = read_logs(procs.dir());
    let mut ran_total = 0;
    for name in names {
        let pid = procs.pid(name);
        let ran = procs.stop_worker(name);
        let ended = logs.iter().filter(|l| !l.start && l.pid == pid).count();
        assert_eq!(
            ran, ended,
            "{name} says it ran {ran} tasks; its log shows {ended}"
        );
        ran_total += ran;
    }
    assert!(
        ran_total >= tasks as usize,
        "{ran_total} runs for {tasks} tasks"
    );
    println!("{ran_total} runs; {:?}", began.elapsed());
}

// ------------------------------------------------------------------------------------------
// 2. A worker killed in the middle of a job
// ------------------------------------------------------------------------------------------

/// 3 worker processes of 3 threads, a job of 40 tasks of 100 ms with k = 6 and an ack wait of
/// 1 s; once results come in, SIGKILL the worker with the most tasks in flight. The job
/// completes with every output right; each task the killed worker had in flight ran again,
/// to its end, on another worker; and the cap still holds.
#[test]
fn a_worker_killed_mid_job_loses_no_task() {
    let _one = one_at_a_time();
    let Some(server) = NatsServer::start() else {
        return;
    };
    let began = Instant::now();
    let (tasks, sleep_ms, cap) = (40u64, 100u64, 6usize);
    let ack_wait = Duration::from_secs(1);
    let (types, submitter) = connect_first(&server, ack_wait);
    let mut procs = Procs::new();
    let names = ["w0", "w1", "w2"];
    procs.start_workers(&names, &server.url(), 3, ack_wait);

    let job = submitter
        .submit(&types.sleepy, (0..tasks).map(|i| (i, sleep_ms)), cap)
        .unwrap();
    let known = wait_for_results(&job, cap);

    // The victim: the worker with the most tasks started and not ended, by its log.
    let mut victim = None;
    wait_for_other_process("a worker with a task in flight", || {
        let logs = read_logs(procs.dir());
        let in_flight = |pid: u32| {
            let started: BTreeSet<u64> = logs
                .iter()
                .filter(|l| l.start && l.pid == pid)
                .map(|l| l.index)
                .collect();
            let ended: BTreeSet<u64> = logs
                .iter()
                .filter(|l| !l.start && l.pid == pid)
                .map(|l| l.index)
                .collect();
            started.difference(&ended).count()
        };
        victim = names
            .iter()
            .map(|name| (in_flight(procs.pid(name)), *name))
            .filter(|(n, _)| *n > 0)
            .max();
        victim.is_some()
    });
    let (_, victim) = victim.expect("a victim");
    let victim_pid = procs.pid(victim);
    let status = procs.sigkill(victim);
    assert_eq!(
        status.signal(),
        Some(9),
        "{victim} was not killed: {status}"
    );

    // What the killed worker had started and not finished: it never published those.
    let logs = read_logs(procs.dir());
    let of_victim = |start: bool| -> BTreeSet<u64> {
        logs.iter()
            .filter(|l| l.start == start && l.pid == victim_pid)
            .map(|l| l.index)
            .collect()
    };
    let cut_off: BTreeSet<u64> = of_victim(true)
        .difference(&of_victim(false))
        .copied()
        .collect();
    println!("killed {victim} after {known} results, with tasks {cut_off:?} in flight");
    assert!(
        !cut_off.is_empty(),
        "{victim} finished its tasks before the kill landed"
    );

    let runs = check_runs(wait_bounded(job, "the job"), tasks, sleep_ms);
    let logs = read_logs(procs.dir());
    for &index in &cut_off {
        let run = runs[index as usize];
        assert_ne!(
            run.pid, victim_pid,
            "task {index}'s result comes from the killed worker, which never ended it"
        );
        assert!(
            logs.iter()
                .any(|l| !l.start && l.index == index && l.pid == run.pid),
            "task {index} ran again on {:?} without a log of it",
            procs.name_of(run.pid)
        );
    }
    for run in &runs {
        assert!(
            procs.name_of(run.pid).is_some(),
            "pid {} is no worker",
            run.pid
        );
    }
    let overlap = max_overlap(runs.iter().map(|r| (r.start_ns, r.end_ns)));
    assert!(
        overlap <= cap,
        "{overlap} tasks ran at once, over the cap of {cap}"
    );
    let starts = logs.iter().filter(|l| l.start).count();
    println!(
        "{starts} runs started for {tasks} tasks ({} again); most at once: {overlap}; \
         results per worker process: {:?}",
        starts - tasks as usize,
        runs_per_pid(&runs)
    );
    assert!(starts > tasks as usize, "no task ran twice");

    for name in names.iter().filter(|name| **name != victim) {
        procs.stop_worker(name);
    }
    println!("{:?}", began.elapsed());
}

/// 2 worker processes of 2 threads, a job of 16 tasks of 300 ms with k = 4 and an ack wait of
/// 2 minutes; once a worker has tasks in flight, it gets SIGTERM. It finishes them and
/// reports their results before it exits (its log ends every task it started), so the job
/// completes long before any ack wait, and no task runs twice: nothing it held was dropped.
#[test]
fn a_worker_stopped_with_sigterm_mid_job_finishes_what_it_holds() {
    let _one = one_at_a_time();
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (tasks, sleep_ms, cap) = (16u64, 300u64, 4usize);
    // Longer than `HANG`: a task dropped by the stopping worker would fail `wait_bounded`.
    let ack_wait = Duration::from_secs(120);
    let (types, submitter) = connect_first(&server, ack_wait);
    let mut procs = Procs::new();
    let names = ["w0", "w1"];
    procs.start_workers(&names, &server.url(), 2, ack_wait);
    let job = submitter
        .submit(&types.sleepy, (0..tasks).map(|i| (i, sleep_ms)), cap)
        .unwrap();

    let in_flight = |procs: &Procs, pid: u32| {
        let logs = read_logs(procs.dir());
        let of = |start: bool| -> BTreeSet<u64> {
            logs.iter()
                .filter(|l| l.start == start && l.pid == pid)
                .map(|l| l.index)
                .collect()
        };
        of(true).difference(&of(false)).count()
    };
    let pids = names.map(|name| procs.pid(name));
    let mut stopped = None;
    wait_for_other_process("a worker with a task in flight", || {
        stopped = (0..names.len()).find(|&i| in_flight(&procs, pids[i]) > 0);
        stopped.is_some()
    });
    let stopped = names[stopped.expect("a worker to stop")];
    let stopped_pid = procs.pid(stopped);
    let ran = procs.stop_worker(stopped);
    assert_eq!(
        in_flight(&procs, stopped_pid),
        0,
        "{stopped} exited with tasks it started and never ended"
    );

    let runs = check_runs(wait_bounded(job, "the job"), tasks, sleep_ms);
    let logs = read_logs(procs.dir());
    let ended_by_stopped = logs
        .iter()
        .filter(|l| !l.start && l.pid == stopped_pid)
        .count();
    assert!(ran > 0, "{stopped} ran nothing");
    assert_eq!(
        ran, ended_by_stopped,
        "{stopped} says it ran {ran} tasks; its log shows {ended_by_stopped}"
    );
    let starts = logs.iter().filter(|l| l.start).count();
    assert_eq!(
        starts, tasks as usize,
        "{starts} runs for {tasks} tasks: a task the stopped worker held ran again"
    );
    let overlap = max_overlap(runs.iter().map(|r| (r.start_ns, r.end_ns)));
    assert!(
        overlap <= cap,
        "{overlap} tasks ran at once, over the cap of {cap}"
    );
    println!(
        "{stopped} stopped after {ran} tasks; results per worker process: {:?}",
        runs_per_pid(&runs)
    );
    let other = names.iter().find(|name| **name != stopped).unwrap();
    procs.stop_worker(other);
}

// ------------------------------------------------------------------------------------------
// 3. A submitter killed after submitting
// ------------------------------------------------------------------------------------------

/// Two worker processes run a job that a submitter process submitted and then died
/// (SIGKILL) waiting for; this process attaches to the job by its id and collects all 30
/// results, those stored before it attached included.
#[test]
fn a_job_outlives_its_killed_submitter() {
    let _one = one_at_a_time();
    let Some(server) = NatsServer::start() else {
        return;
    };
    let began = Instant::now();
    let ack_wait = Duration::from_secs(10);
    let (types, submitter) = connect_first(&server, ack_wait);
    let mut procs = Procs::new();
    let names = ["w0", "w1"];
    procs.start_workers(&names, &server.url(), 2, ack_wait);

    let vars = [
        (URL_VAR, server.url()),
        (ACK_WAIT_VAR, ack_wait.as_millis().to_string()),
    ];
    procs.spawn("submitter", "child_submitter", SUBMITTER_ROLE, &vars);
    procs.wait_for_marker("submitter", "job-id");
    let status = procs.sigkill("submitter");
    assert_eq!(
        status.signal(),
        Some(9),
        "the submitter was not killed: {status}"
    );
    let ended_at_kill = ends_logged(procs.dir());
    assert!(
        (ended_at_kill as u64) < SUBMITTED_TASKS,
        "the job was over before its submitter was killed"
    );
    let id = fs::read_to_string(procs.dir().join("job-id")).unwrap();

    // Some results are stored while no process collects them.
    wait_for_other_process("tasks to end with no submitter", || {
        ends_logged(procs.dir()) >= 2 * SUBMITTED_CAP
    });

    match submitter.attach(&types.other, &id) {
        Err(ClusterError::UnknownTaskType(_)) => {}
        other => panic!("attached with the wrong task type: {other:?}"),
    }
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(
        submitter.attach(&types.sleepy, unknown).unwrap_err(),
        ClusterError::UnknownJob(unknown.to_owned())
    );
    let job = submitter.attach(&types.sleepy, &id).unwrap();
    assert_eq!(job.id(), id);
    let runs = check_runs(
        wait_bounded(job, "the attached job"),
        SUBMITTED_TASKS,
        SUBMITTED_SLEEP_MS,
    );
    let overlap = max_overlap(runs.iter().map(|r| (r.start_ns, r.end_ns)));
    assert!(
        overlap <= SUBMITTED_CAP,
        "{overlap} tasks ran at once, over the cap of {SUBMITTED_CAP}"
    );
    for run in &runs {
        assert!(
            procs.name_of(run.pid).is_some(),
            "pid {} is no worker",
            run.pid
        );
    }
    println!(
        "{ended_at_kill} tasks had ended when the submitter was killed; results per worker \
         process: {:?}",
        runs_per_pid(&runs)
    );
    for name in names {
        procs.stop_worker(name);
    }
    println!("{:?}", began.elapsed());
}

// ------------------------------------------------------------------------------------------
// 4. The server restarted in the middle of a job
// ------------------------------------------------------------------------------------------

/// A worker process runs a job of 40 tasks of 50 ms with k = 4; after some results the
/// server is killed (SIGKILL) and started again on its port and store. The job completes
/// with every output right, and the worker still stops cleanly.
///
/// The submitter's reader of the results is a consumer the server keeps in memory, gone with
/// the restart: `RemoteJob::read` makes a new one and reads the results from their start.
#[test]
fn a_job_survives_a_restart_of_the_server() {
    let _one = one_at_a_time();
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let began = Instant::now();
    let (tasks, sleep_ms, cap) = (40u64, 50u64, 4usize);
    let ack_wait = Duration::from_secs(2);
    let (types, submitter) = connect_first(&server, ack_wait);
    let mut procs = Procs::new();
    procs.spawn_worker("w0", &server.url(), 4, ack_wait);
    procs.wait_for_marker("w0", "ready-w0");

    let job = submitter
        .submit(&types.sleepy, (0..tasks).map(|i| (i, sleep_ms)), cap)
        .unwrap();
    let known = wait_for_results(&job, 2 * cap);
    server.restart();
    println!("restarted the server after {known} results");

    let runs = check_runs(
        wait_bounded(job, "the job across the restart"),
        tasks,
        sleep_ms,
    );
    let overlap = max_overlap(runs.iter().map(|r| (r.start_ns, r.end_ns)));
    assert!(
        overlap <= cap,
        "{overlap} tasks ran at once, over the cap of {cap}"
    );
    let starts = read_logs(procs.dir()).iter().filter(|l| l.start).count();
    let ran = procs.stop_worker("w0");
    println!(
        "{starts} runs started for {tasks} tasks, the worker says it ran {ran}; {:?}",
        began.elapsed()
    );
}
