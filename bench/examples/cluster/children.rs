//! The worker processes: this program's own binary run as `cluster worker ...` (a jobpool
//! [`Worker`]) or `cluster raw-worker ...` (the raw JetStream baseline's worker), and what the
//! parent needs to start, await and kill them.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use jobpool::cluster::{Broker, TaskType, TaskTypes, Worker};

use crate::raw;

/// The task types, registered alike in the workers and the submitter.
pub(crate) struct Types {
    pub(crate) types: TaskTypes,
    /// The empty task: hands back the worker's process id (so that the parent can tell which
    /// worker ran it), nothing else.
    pub(crate) empty: TaskType<u64, u32>,
    /// Sleeps for the argument, in milliseconds; hands back the worker's process id.
    pub(crate) sleep_ms: TaskType<u64, u32>,
}

pub(crate) fn task_types() -> Types {
    let mut types = TaskTypes::new();
    let empty = types.register("empty", |_: u64| Ok(std::process::id()));
    let sleep_ms = types.register("sleep_ms", |ms: u64| {
        std::thread::sleep(Duration::from_millis(ms));
        Ok(std::process::id())
    });
    Types {
        types,
        empty,
        sleep_ms,
    }
}

/// The value of `--name`, if given.
fn option(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Exits this process once its standard input ends: when the parent closes its end, or dies.
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
}

/// `cluster worker --url URL --threads T`: a jobpool worker of T threads, until killed.
pub(crate) fn jobpool_worker(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    exit_with_parent();
    let url = option(args, "--url").ok_or("--url URL")?;
    let threads: usize = option(args, "--threads").ok_or("--threads T")?.parse()?;
    let worker = Worker::start(&Broker::new(url), task_types().types, threads)?;
    println!("ready {}", std::process::id());
    worker.run_until_signal()?;
    Ok(())
}

/// `cluster raw-worker --url URL --batch B`: the raw baseline's worker, until killed.
pub(crate) fn raw_worker(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    exit_with_parent();
    let url = option(args, "--url").ok_or("--url URL")?;
    let batch: usize = option(args, "--batch").ok_or("--batch B")?.parse()?;
    let runtime = raw::runtime();
    runtime.block_on(async move {
        let js = async_nats::jetstream::new(async_nats::connect(url.as_str()).await?);
        let consumer = raw::workers_consumer(&js)
            .await
            .map_err(|err| err.to_string())?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(batch)
            .expires(Duration::from_secs(5))
            .messages()
            .await?;
        println!("ready {}", std::process::id());
        while let Some(message) = messages.next().await {
            let Ok(message) = message else { continue };
            let js = js.clone();
            // Each message answered on a task of its own, as a jobpool worker does: publish the
            // reply, wait for the server to have stored it, then acknowledge the message.
            tokio::spawn(async move {
                let reply = raw::reply_subject(&message.subject);
                let mut payload = message.payload.to_vec();
                payload.extend_from_slice(&std::process::id().to_le_bytes());
                if let Ok(stored) = js.publish(reply, payload.into()).await {
                    if stored.await.is_ok() {
                        let _ = message.ack().await;
                    }
                }
            });
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

/// Worker processes started by the parent; killed when dropped (the parent's end of their
/// standard input closes too, so they exit even if the parent dies first).
pub(crate) struct Workers {
    children: Vec<Child>,
    pub(crate) pids: Vec<u32>,
}

impl Workers {
    /// Starts `count` processes of this binary with `args`, and waits for each to say it is
    /// ready (connected, and for a raw worker, pulling).
    pub(crate) fn start(count: usize, args: &[String]) -> Workers {
        let exe = std::env::current_exe().expect("this program's path");
        let mut workers = Workers {
            children: Vec::new(),
            pids: Vec::new(),
        };
        let mut outputs: Vec<BufReader<ChildStdout>> = Vec::new();
        for _ in 0..count {
            let mut child = Command::new(&exe)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("a worker process starts");
            outputs.push(BufReader::new(child.stdout.take().expect("piped")));
            workers.pids.push(child.id());
            workers.children.push(child);
        }
        for output in &mut outputs {
            let mut line = String::new();
            output.read_line(&mut line).expect("a worker's output");
            assert!(
                line.starts_with("ready"),
                "a worker did not start: {line:?}"
            );
        }
        workers
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
    }
}
