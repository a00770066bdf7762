#![cfg(feature = "cache")]
#![cfg(unix)]
//! The cache's promises under the faults a cache directory meets in real use, with real
//! processes and real directories (no mocks):
//!
//! - two processes running one graph on one cache at the same moment both get correct outputs,
//!   and leave a cache in which a third run finds everything;
//! - a process killed by SIGKILL in the middle of writing an entry leaves a temporary file,
//!   never a half-written entry: the next run runs the module again, and the one after re-uses
//!   it; a fresh temporary file is not taken for abandoned by `Cache::prune`;
//! - a damaged entry (bytes flipped, or truncated) is never used: its module runs again and
//!   says why; a damaged index costs nothing but hints;
//! - an entry that cannot be written (a full disk, a `tmp` path that is not a directory) does
//!   not fail the run: the output is used, the status carries the error, and the next run does
//!   not find a (wrong) entry;
//! - a cache directory on a read-only file system cannot be opened.
//!
//! The child processes are this test binary again (`std::env::current_exe()`), running one
//! worker test (`--exact <name>`) that does nothing unless [`ROLE`] is set in its environment.
//! The full-disk and read-only tests mount a small tmpfs, so they need root; where `mount`
//! fails they print a note and pass. Unix only: the tests send SIGKILL, mount file systems and
//! read the messages of Unix errors.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use jobpool::{
    Cache, CacheStatus, Context, Dag, ModuleReport, Pool, RunOptions, RunReason, RunReport,
    TaskResult,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// ------------------------------------------------------------------------------------------
// Child processes
// ------------------------------------------------------------------------------------------

/// The environment variable that tells a worker test, in a child process, what to do; a worker
/// test returns at once when it is not set to its role (as in every ordinary run).
const ROLE: &str = "JOBPOOL_CACHE_FAULTS_ROLE";
/// The role of [`worker_runs_the_shared_graph`].
const SHARED_GRAPH_ROLE: &str = "shared-graph";
/// The role of [`worker_writes_one_big_entry`].
const BIG_ENTRY_ROLE: &str = "big-entry";

/// The cache directory a worker opens.
const CACHE_VAR: &str = "JOBPOOL_CACHE_FAULTS_CACHE";
/// The directory of the shared graph's input files.
const INPUTS_VAR: &str = "JOBPOOL_CACHE_FAULTS_INPUTS";
/// The directory where workers leave their `ready-<id>` and `done-<id>` marker files.
const SYNC_VAR: &str = "JOBPOOL_CACHE_FAULTS_SYNC";
/// A worker's number.
const ID_VAR: &str = "JOBPOOL_CACHE_FAULTS_ID";
/// The size in bytes of the big entry's output.
const SIZE_VAR: &str = "JOBPOOL_CACHE_FAULTS_SIZE";

/// How long a wait on another process may take before the test fails instead of hanging.
const HANG: Duration = Duration::from_secs(60);

/// Starts this test binary again, running only the worker test `test` with `role`.
fn spawn_worker(test: &str, role: &str, vars: &[(&str, &OsStr)]) -> Child {
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start a worker process")
}

/// A child's exit status and output, to show when it failed.
fn show(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether this process is a worker started for `role`.
fn acting_as(role: &str) -> bool {
    std::env::var(ROLE).is_ok_and(|r| r == role)
}

/// A path from the environment of a worker.
fn path_var(var: &str) -> PathBuf {
    std::env::var_os(var)
        .unwrap_or_else(|| panic!("{var} is not set"))
        .into()
}

/// Polls until `done` holds, for a condition that another process makes true (a file it
/// writes); panics after [`HANG`]. Never used to order threads of one process.
fn wait_for_other_process(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ------------------------------------------------------------------------------------------
// The cache directory, as the tests look at it from outside
// ------------------------------------------------------------------------------------------

/// The magic of an entry file (`src/cache/mod.rs`), then the BLAKE3 digest of the payload.
const ENTRY_MAGIC: &[u8; 8] = b"JPENTRY1";
/// The size of a sealed file's header: magic and digest (`src/cache/sealed.rs`).
const HEADER: usize = 8 + 32;

/// Every entry file: `<cache>/entries/<shard>/<fingerprint>`, sorted.
fn entry_files(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(shards) = fs::read_dir(cache.join("entries")) else {
        return found;
    };
    for shard in shards {
        let shard = shard.expect("cannot list the entries").path();
        if shard.is_dir() {
            for entry in fs::read_dir(&shard).expect("cannot list a shard") {
                found.push(entry.expect("cannot list a shard").path());
            }
        }
    }
    found.sort();
    found
}

/// The temporary files in `<cache>/tmp`, with their sizes.
fn temporary_files(cache: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(files) = fs::read_dir(cache.join("tmp")) else {
        return Vec::new();
    };
    files
        .flatten()
        .filter(|f| f.path().extension().is_some_and(|e| e == "tmp"))
        .filter_map(|f| Some((f.path(), f.metadata().ok()?.len())))
        .collect()
}

/// Checks that the entry file at `path` is whole: its magic, and its payload's digest.
fn unseal(path: &Path) -> Result<(), String> {
    let bytes = fs::read(path).map_err(|err| format!("cannot read it: {err}"))?;
    if bytes.len() < HEADER {
        return Err(format!("{} bytes, shorter than a header", bytes.len()));
    }
    if &bytes[..8] != ENTRY_MAGIC {
        return Err("wrong magic".into());
    }
    if blake3::hash(&bytes[HEADER..]).as_bytes()[..] != bytes[8..HEADER] {
        return Err(format!("{} bytes, not matching its digest", bytes.len()));
    }
    Ok(())
}

/// Asserts that every entry of the cache is whole.
fn assert_every_entry_unseals(cache: &Path) {
    for entry in entry_files(cache) {
        if let Err(why) = unseal(&entry) {
            panic!("entry {} is damaged: {why}", entry.display());
        }
    }
}

// ------------------------------------------------------------------------------------------
// The shared graph: 30 cached modules in chains and fans, each reading an input file
// ------------------------------------------------------------------------------------------

/// The tasks of each module of the shared graph (and its cap).
const TASKS: usize = 2;

/// Each module of the shared graph and its dependencies, dependencies first: 5 chains of 4
/// links, 9 fans each joining the end of a chain with a link of another (so links fan out),
/// and a sink after every fan.
fn graph_spec() -> Vec<(String, Vec<String>)> {
    let mut spec = Vec::new();
    for chain in 0..5 {
        for link in 0..4 {
            let deps = match link {
                0 => vec![],
                _ => vec![format!("chain{chain}-{}", link - 1)],
            };
            spec.push((format!("chain{chain}-{link}"), deps));
        }
    }
    for fan in 0..9 {
        let deps = vec![
            format!("chain{}-3", fan % 5),
            format!("chain{}-{}", (fan + 1) % 5, fan % 4),
        ];
        spec.push((format!("fan{fan}"), deps));
    }
    spec.push((
        "sink".into(),
        (0..9).map(|fan| format!("fan{fan}")).collect(),
    ));
    spec
}

/// The text of module `name`'s input file.
fn input_text(name: &str) -> String {
    format!("the input of {name}\n")
}

/// Writes the input file of every module of the shared graph into `inputs`.
fn write_inputs(inputs: &Path) {
    fs::create_dir_all(inputs).unwrap();
    for (name, _) in graph_spec() {
        fs::write(inputs.join(format!("{name}.txt")), input_text(&name)).unwrap();
    }
}

/// FNV-1a over `bytes`, from `hash`.
fn mix(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What task `task` of module `name` returns: 16 numbers mixed from its input's text and its
/// dependencies' outputs (a few hundred bytes per module once stored).
fn task_value(name: &str, task: usize, input: &str, deps: &[&[Vec<u64>]]) -> Vec<u64> {
    let mut hash = mix(0xcbf2_9ce4_8422_2325, name.as_bytes());
    hash = mix(hash, &(task as u64).to_le_bytes());
    hash = mix(hash, input.as_bytes());
    for value in deps.iter().flat_map(|dep| dep.iter()).flatten() {
        hash = mix(hash, &value.to_le_bytes());
    }
    (0..16u8).map(|i| mix(hash, &[i])).collect()
}

/// The shared graph, reading its input files from `inputs`.
fn shared_graph(inputs: &Path) -> Dag {
    let mut dag = Dag::new();
    for (name, deps) in graph_spec() {
        let file = inputs.join(format!("{name}.txt"));
        let tasks = (0..TASKS).map(|task| {
            let (name, deps, file) = (name.clone(), deps.clone(), file.clone());
            move |ctx: &Context| -> TaskResult<Vec<u64>> {
                let input = fs::read_to_string(&file)?;
                let outputs = deps
                    .iter()
                    .map(|dep| ctx.output::<Vec<u64>>(dep))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(task_value(&name, task, &input, &outputs))
            }
        });
        dag.cached_module(name.clone(), TASKS, tasks)
            .unwrap()
            .version("1")
            .input_file(&file)
            .after(&deps)
            .unwrap();
    }
    dag
}

/// The shared graph's outputs, computed without it.
fn expected_outputs() -> HashMap<String, Vec<Vec<u64>>> {
    let mut outputs: HashMap<String, Vec<Vec<u64>>> = HashMap::new();
    for (name, deps) in graph_spec() {
        let deps: Vec<&[Vec<u64>]> = deps.iter().map(|d| &outputs[d][..]).collect();
        let output = (0..TASKS)
            .map(|task| task_value(&name, task, &input_text(&name), &deps))
            .collect();
        outputs.insert(name, output);
    }
    outputs
}

/// Asserts that a run of the shared graph succeeded with the right output in every module.
fn assert_shared_outputs(report: &RunReport) {
    assert!(report.is_success(), "the run failed:\n{report}");
    let expected = expected_outputs();
    assert_eq!(report.modules().len(), expected.len());
    for (name, output) in &expected {
        let got = report.output::<Vec<u64>>(name).unwrap();
        assert_eq!(got, &output[..], "wrong output of {name}");
    }
}

/// The modules of `report` whose status is not a hit, with their statuses.
fn not_hits(report: &RunReport) -> Vec<(&str, &CacheStatus)> {
    report
        .modules()
        .iter()
        .filter(|m| !m.cache_status().is_hit())
        .map(|m| (m.name(), m.cache_status()))
        .collect()
}

/// Asserts that every module of `report` was read from the cache.
fn assert_all_hits(report: &RunReport, when: &str) {
    let ran = not_hits(report);
    assert!(ran.is_empty(), "{when}, modules ran: {ran:?}\n{report}");
}

/// Runs `dag` on a pool of two threads with `cache`.
fn run(dag: &Dag, cache: &Cache) -> RunReport {
    dag.run_with(&Pool::new(2), RunOptions::new().cache(cache))
        .expect("the graph is valid")
}

/// The store error of a module that ran, or a panic.
fn store_error(module: &ModuleReport) -> &str {
    match module.cache_status() {
        CacheStatus::Ran {
            store_error: Some(error),
            ..
        } => error,
        other => panic!(
            "{}: expected a store error, got the status `{other}`",
            module.name()
        ),
    }
}

// ------------------------------------------------------------------------------------------
// A big output, for the write that is killed and the full disk
// ------------------------------------------------------------------------------------------

/// Bytes that serde writes as one byte string (for postcard: its length, then the bytes), not
/// byte by byte as it does a `Vec<u8>`, so that encoding hundreds of megabytes is a copy even
/// in a debug build.
#[derive(Debug, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob(bytes.to_vec()))
            }
            fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(bytes))
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

/// The byte every big output is made of.
const FILL: u8 = 7;

/// A graph of one cached module, `big`, whose output is `size` bytes of [`FILL`].
fn big_graph(size: usize) -> Dag {
    let mut dag = Dag::new();
    dag.cached_module(
        "big",
        1,
        [move |_: &Context| -> TaskResult<Blob> { Ok(Blob(vec![FILL; size])) }],
    )
    .unwrap()
    .version("1")
    .input_value("size", &size);
    dag
}

/// Asserts that module `big` of `report` has its right output, of `size` bytes.
fn assert_big_output(report: &RunReport, size: usize) {
    assert!(report.is_success(), "the run failed:\n{report}");
    let output = report.output::<Blob>("big").unwrap();
    assert_eq!(output.len(), 1);
    let bytes = &output[0].0;
    assert_eq!(bytes.len(), size, "the output of `big` has the wrong size");
    let fill = [FILL; 1 << 16];
    // Chunk by chunk, so that each comparison is a `memcmp`, fast in a debug build too.
    assert!(
        bytes.chunks(fill.len()).all(|c| c == &fill[..c.len()]),
        "the output of `big` has wrong bytes"
    );
}

// ------------------------------------------------------------------------------------------
// A small tmpfs, mounted for a test
// ------------------------------------------------------------------------------------------

/// A tmpfs mounted on a directory, unmounted when dropped (also when the test fails).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on `dir`, created if needed;
    /// `None` if that cannot be done (not root, or no `mount` in this container).
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs {
                dir: dir.to_owned(),
            }),
            Ok(out) => {
                println!("mount: {}", String::from_utf8_lossy(&out.stderr).trim());
                None
            }
            Err(err) => {
                println!("mount: {err}");
                None
            }
        }
    }

    /// Makes it read-only.
    fn remount_read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.dir)
            .output()
            .expect("cannot run mount");
        assert!(
            out.status.success(),
            "cannot remount read-only: {}",
            show(&out)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.dir).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Busy (a file left open by a failed test): detach it now, freed once closed.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// The note printed by a test that needs a tmpfs where none can be mounted.
const NO_TMPFS: &str = "skipped: cannot mount a tmpfs (this test needs root and `mount`)";

// ------------------------------------------------------------------------------------------
// 1. Two processes on one cache at once
// ------------------------------------------------------------------------------------------

/// Two processes run one graph on one cache at once: both right, then a third run hits all.
#[test]
fn two_processes_share_one_cache_at_the_same_moment() {
    let dir = tempfile::tempdir().unwrap();
    let (cache_dir, inputs, sync) = (
        dir.path().join("cache"),
        dir.path().join("inputs"),
        dir.path().join("sync"),
    );
    write_inputs(&inputs);
    fs::create_dir(&sync).unwrap();

    let workers: Vec<Child> = (0..2)
        .map(|id| {
            let id = id.to_string();
            let vars = [
                (CACHE_VAR, cache_dir.as_os_str()),
                (INPUTS_VAR, inputs.as_os_str()),
                (SYNC_VAR, sync.as_os_str()),
                (ID_VAR, OsStr::new(&id)),
            ];
            spawn_worker("worker_runs_the_shared_graph", SHARED_GRAPH_ROLE, &vars)
        })
        .collect();
    for (id, worker) in workers.into_iter().enumerate() {
        let output = worker.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "worker {id} failed: {}",
            show(&output)
        );
        let done = sync.join(format!("done-{id}"));
        let summary = fs::read_to_string(&done)
            .unwrap_or_else(|_| panic!("worker {id} did not run its test: {}", show(&output)));
        println!("worker {id}: {summary}");
    }

    let cache = Cache::open(&cache_dir).unwrap();
    let report = run(&shared_graph(&inputs), &cache);
    assert_shared_outputs(&report);
    assert_all_hits(&report, "after both workers");
    assert_every_entry_unseals(&cache_dir);
    assert_eq!(entry_files(&cache_dir).len(), graph_spec().len());
}

/// Worker of `two_processes_share_one_cache_at_the_same_moment` (a no-op in an ordinary run).
#[test]
fn worker_runs_the_shared_graph() {
    if !acting_as(SHARED_GRAPH_ROLE) {
        return;
    }
    let (cache_dir, inputs, sync) = (
        path_var(CACHE_VAR),
        path_var(INPUTS_VAR),
        path_var(SYNC_VAR),
    );
    let id = std::env::var(ID_VAR).unwrap();
    // Line up with the other worker: both open the cache and run at the same moment.
    fs::write(sync.join(format!("ready-{id}")), "").unwrap();
    wait_for_other_process("both workers to be ready", || {
        (0..2).all(|i| sync.join(format!("ready-{i}")).exists())
    });
    let cache = Cache::open(&cache_dir).unwrap();
    let dag = shared_graph(&inputs);

    let first = run(&dag, &cache);
    assert_shared_outputs(&first);
    for module in first.modules() {
        match module.cache_status() {
            CacheStatus::Hit
            | CacheStatus::Ran {
                store_error: None, ..
            } => {}
            other => panic!("{}: unexpected status `{other}`", module.name()),
        }
    }
    let hits = first.modules().len() - not_hits(&first).len();
    // Everything is stored now, by this process or the other.
    let second = run(&dag, &cache);
    assert_shared_outputs(&second);
    assert_all_hits(&second, &format!("the second run of worker {id}"));
    fs::write(
        sync.join(format!("done-{id}")),
        format!("{hits} of 30 modules found stored by the other worker in its first run"),
    )
    .unwrap();
}

// ------------------------------------------------------------------------------------------
// 2. kill -9 during a write
// ------------------------------------------------------------------------------------------

/// SIGKILL during an entry's write leaves no entry: the module runs again, then is re-used.
#[test]
fn a_process_killed_while_writing_leaves_no_entry() {
    // If the child renames its entry before the kill lands, try again with a longer write.
    for size in [256 << 20, 384 << 20, 512 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        let size_text = size.to_string();
        let vars = [
            (CACHE_VAR, cache_dir.as_os_str()),
            (SIZE_VAR, OsStr::new(&size_text)),
        ];
        let mut child = spawn_worker("worker_writes_one_big_entry", BIG_ENTRY_ROLE, &vars);

        // Wait for a temporary file to appear and grow past a megabyte (the cache's probe
        // and index files are tiny), then kill the child at once.
        let deadline = Instant::now() + HANG;
        let mut seen = false;
        while !seen {
            seen = temporary_files(&cache_dir)
                .iter()
                .any(|(_, len)| *len >= 1 << 20);
            if !seen && child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "no temporary file grew");
            std::thread::yield_now();
        }
        let _ = child.kill(); // SIGKILL; an error if it exited already
        let output = child.wait_with_output().unwrap();

        let entries = entry_files(&cache_dir);
        if !entries.is_empty() {
            assert!(seen || output.status.success(), "{}", show(&output));
            println!("{size} bytes: the entry was written before the kill; trying a bigger one");
            continue;
        }
        assert_eq!(
            output.status.signal(),
            Some(9),
            "the child was not killed, yet wrote no entry: {}",
            show(&output)
        );
        assert_every_entry_unseals(&cache_dir);
        let left = temporary_files(&cache_dir);
        let (temporary, written) = left
            .iter()
            .find(|(_, len)| *len >= 1 << 20)
            .cloned()
            .expect("the killed write left no temporary file");
        println!("{size} bytes: killed with {written} bytes of a bigger entry written");

        // A fresh temporary file may belong to a running process: prune keeps it.
        let cache = Cache::open(&cache_dir).unwrap();
        let pruned = cache.prune().unwrap();
        assert_eq!(pruned.temporary_files_removed, 0);
        assert!(temporary.exists(), "prune removed a fresh temporary file");

        let dag = big_graph(size);
        let again = run(&dag, &cache);
        assert_big_output(&again, size);
        assert_eq!(
            again.module("big").unwrap().cache_status(),
            &CacheStatus::Ran {
                why: RunReason::NoEntry,
                store_error: None
            }
        );
        assert_eq!(entry_files(&cache_dir).len(), 1);
        assert_every_entry_unseals(&cache_dir);

        let third = run(&dag, &cache);
        assert_big_output(&third, size);
        assert!(third.module("big").unwrap().cache_status().is_hit());
        assert!(temporary.exists(), "the left temporary file was taken away");
        return;
    }
    panic!("every attempt, the child wrote its entry before it could be killed");
}

/// Worker of `a_process_killed_while_writing_leaves_no_entry` (a no-op in an ordinary run).
#[test]
fn worker_writes_one_big_entry() {
    if !acting_as(BIG_ENTRY_ROLE) {
        return;
    }
    let size: usize = std::env::var(SIZE_VAR).unwrap().parse().unwrap();
    let cache = Cache::open(path_var(CACHE_VAR)).unwrap();
    let report = run(&big_graph(size), &cache);
    // Reached only if the parent was too late to kill it.
    assert_big_output(&report, size);
    let status = report.module("big").unwrap().cache_status();
    assert!(
        matches!(
            status,
            CacheStatus::Ran {
                store_error: None,
                ..
            }
        ),
        "{status}"
    );
}

// ------------------------------------------------------------------------------------------
// 3. Damaged entries, damaged index
// ------------------------------------------------------------------------------------------

/// A fresh cache in `dir` holding every module of the shared graph, and the graph.
fn cache_with_every_module_stored(dir: &Path) -> (Cache, Dag) {
    let inputs = dir.join("inputs");
    write_inputs(&inputs);
    let cache = Cache::open(dir.join("cache")).unwrap();
    let dag = shared_graph(&inputs);
    let first = run(&dag, &cache);
    assert_shared_outputs(&first);
    assert_eq!(entry_files(cache.dir()).len(), graph_spec().len());
    (cache, dag)
}

/// Entries with bytes flipped in their middle run again (`EntryCorrupt`), then are re-used.
#[test]
fn entries_with_flipped_bytes_are_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, dag) = cache_with_every_module_stored(dir.path());
    for entry in entry_files(cache.dir()) {
        let mut bytes = fs::read(&entry).unwrap();
        let middle = bytes.len() / 2;
        assert!(middle >= HEADER, "the middle should be in the payload");
        for byte in &mut bytes[middle - 2..middle + 2] {
            *byte ^= 0x5a;
        }
        fs::write(&entry, bytes).unwrap();
    }

    let second = run(&dag, &cache);
    assert_shared_outputs(&second);
    for module in second.modules() {
        match module.cache_status() {
            CacheStatus::Ran {
                why: RunReason::EntryCorrupt { detail },
                store_error: None,
            } => assert!(detail.contains("checksum"), "{detail}"),
            other => panic!("{}: expected EntryCorrupt, got `{other}`", module.name()),
        }
    }
    assert_every_entry_unseals(cache.dir());
    let third = run(&dag, &cache);
    assert_shared_outputs(&third);
    assert_all_hits(&third, "the third run");
}

/// Truncated entries (torn, or shorter than a header) run again; every other module hits.
#[test]
fn truncated_entries_are_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, dag) = cache_with_every_module_stored(dir.path());
    let entries = entry_files(cache.dir());
    let torn = fs::OpenOptions::new()
        .write(true)
        .open(&entries[0])
        .unwrap();
    torn.set_len(torn.metadata().unwrap().len() / 2).unwrap();
    let short = fs::OpenOptions::new()
        .write(true)
        .open(&entries[1])
        .unwrap();
    short.set_len(10).unwrap();
    drop((torn, short));

    let second = run(&dag, &cache);
    assert_shared_outputs(&second);
    let mut details: Vec<String> = not_hits(&second)
        .into_iter()
        .map(|(name, status)| match status {
            CacheStatus::Ran {
                why: RunReason::EntryCorrupt { detail },
                store_error: None,
            } => detail.clone(),
            other => panic!("{name}: expected EntryCorrupt, got `{other}`"),
        })
        .collect();
    details.sort();
    assert_eq!(
        details,
        [
            "the file is truncated",
            "the file's checksum does not match its content"
        ],
        "exactly the two damaged modules run (their dependents' outputs are unchanged):\n{second}"
    );
    assert_every_entry_unseals(cache.dir());
    let third = run(&dag, &cache);
    assert_shared_outputs(&third);
    assert_all_hits(&third, "the third run");
}

/// A damaged, foreign, empty or unreadable index costs no entry: every module still hits.
#[test]
fn a_damaged_index_costs_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, dag) = cache_with_every_module_stored(dir.path());
    let index = cache.dir().join("index");
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 4] = [
        ("bytes flipped in its middle", |index| {
            let mut bytes = fs::read(index).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            fs::write(index, bytes).unwrap();
        }),
        ("not an index", |index| {
            fs::write(index, "not an index").unwrap()
        }),
        ("empty", |index| fs::write(index, "").unwrap()),
        ("a directory", |index| {
            fs::remove_file(index).unwrap();
            fs::create_dir(index).unwrap();
        }),
    ];
    for (what, damage) in damages {
        assert!(index.is_file(), "{what}: no index file to damage");
        damage(&index);
        let report = run(&dag, &cache);
        assert_shared_outputs(&report);
        assert_all_hits(&report, &format!("with an index {what}"));
        if index.is_dir() {
            // Nothing can replace it; the run after still finds every module.
            let report = run(&dag, &cache);
            assert_all_hits(&report, &format!("with an index {what}"));
        }
    }
}

// ------------------------------------------------------------------------------------------
// 4. Full disk
// ------------------------------------------------------------------------------------------

/// A full disk fails the store, not the run; the next run finds no (wrong) entry.
#[test]
fn a_full_disk_fails_the_store_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "256k") else {
        println!("{NO_TMPFS}");
        return;
    };
    let cache_dir = disk.dir.join("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    // `big` (1 MiB) does not fit on the disk; `small`, after it, does.
    let size = 1 << 20;
    let mut dag = big_graph(size);
    dag.cached_module(
        "small",
        1,
        [|ctx: &Context| -> TaskResult<u64> { Ok(ctx.output::<Blob>("big")?[0].0.len() as u64) }],
    )
    .unwrap()
    .after(["big"])
    .unwrap();

    for round in 0..2 {
        let report = run(&dag, &cache);
        assert_big_output(&report, size);
        assert_eq!(report.output::<u64>("small").unwrap(), [size as u64]);
        let big = report.module("big").unwrap();
        assert!(!big.cache_status().is_hit(), "round {round}: {report}");
        let error = store_error(big);
        assert!(error.contains("No space left on device"), "{error}");
        let small = report.module("small").unwrap().cache_status();
        if round == 0 {
            assert_eq!(small.why(), Some(&RunReason::NoEntry), "{report}");
            assert!(matches!(
                small,
                CacheStatus::Ran {
                    store_error: None,
                    ..
                }
            ));
        } else {
            // `big` ran again with the same output: `small` is re-used.
            assert!(small.is_hit(), "{report}");
        }
        // `small`, of a few bytes, is kept in the cache's index, not in a file.
        assert!(entry_files(&cache_dir).is_empty(), "`big` is not stored");
        assert_every_entry_unseals(&cache_dir);
        let left = temporary_files(&cache_dir);
        assert!(left.is_empty(), "a failed write left its file: {left:?}");
    }
    drop(cache);
    drop(disk);
}

// ------------------------------------------------------------------------------------------
// 5. Read-only cache directory
// ------------------------------------------------------------------------------------------

/// `Cache::open` fails on a read-only file system, for a new and for an existing cache.
#[test]
fn a_read_only_cache_directory_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "1m") else {
        println!("{NO_TMPFS}");
        return;
    };
    let existing = disk.dir.join("cache");
    let cache = Cache::open(&existing).unwrap();
    let mut dag = Dag::new();
    dag.cached_module("stored", 1, [|_: &Context| -> TaskResult<u8> { Ok(1) }])
        .unwrap();
    assert!(run(&dag, &cache).is_success());
    disk.remount_read_only();

    for path in [existing.clone(), disk.dir.join("new-cache")] {
        let err = Cache::open(&path).expect_err("opened a cache on a read-only file system");
        let message = err.to_string();
        assert!(
            message.starts_with("cannot open the cache directory"),
            "{message}"
        );
        assert!(message.contains("Read-only file system"), "{message}");
        assert!(err.path().starts_with(&path), "{message}");
    }

    // A cache opened before the file system became read-only: reads work, writes are errors.
    dag.cached_module("new", 1, [|_: &Context| -> TaskResult<u8> { Ok(2) }])
        .unwrap();
    let report = run(&dag, &cache);
    assert!(report.is_success(), "{report}");
    assert_eq!(report.output::<u8>("stored").unwrap(), [1]);
    assert_eq!(report.output::<u8>("new").unwrap(), [2]);
    assert!(report.module("stored").unwrap().cache_status().is_hit());
    let error = store_error(report.module("new").unwrap());
    assert!(error.contains("Read-only file system"), "{error}");
    drop(cache);
    drop(disk);
}

// ------------------------------------------------------------------------------------------
// 6. A write failure without a mount
// ------------------------------------------------------------------------------------------

/// A `tmp` replaced by a regular file after opening fails the stores, not the runs.
#[test]
fn a_tmp_path_that_is_a_file_fails_the_store_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    write_inputs(&inputs);
    let cache_dir = dir.path().join("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    let tmp = cache_dir.join("tmp");
    fs::remove_dir_all(&tmp).unwrap();
    fs::write(&tmp, "not a directory").unwrap();

    let dag = shared_graph(&inputs);
    for round in 0..2 {
        let report = run(&dag, &cache);
        assert_shared_outputs(&report);
        for module in report.modules() {
            assert_eq!(
                module.cache_status().why(),
                Some(&RunReason::NoEntry),
                "round {round}: {report}"
            );
            let error = store_error(module);
            assert!(error.contains("Not a directory"), "{error}");
        }
        assert_eq!(entry_files(&cache_dir), Vec::<PathBuf>::new());
    }

    // Opening it again makes `tmp` a directory (after the file is moved away): stores work.
    fs::remove_file(&tmp).unwrap();
    let cache = Cache::open(&cache_dir).unwrap();
    let stored = run(&dag, &cache);
    assert_shared_outputs(&stored);
    assert!(stored.modules().iter().all(|m| matches!(
        m.cache_status(),
        CacheStatus::Ran {
            store_error: None,
            ..
        }
    )));
    let hits = run(&dag, &cache);
    assert_shared_outputs(&hits);
    assert_all_hits(&hits, "once repaired");
}
