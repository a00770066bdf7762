//! Graphs whose modules' tasks are remote task types (`Dag::remote_module`): each module is
//! submitted to the cluster when its last dependency ends, and its tasks' arguments come from
//! its dependencies' outputs.
#![cfg(feature = "cluster")]

mod cluster_common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobpool::cluster::{Broker, RemoteFailure, Submitter, TaskTypes, Worker};
use jobpool::{Context, Dag, Failure, ModuleState, Pool, SkipReason, TaskResult};

#[test]
fn a_graph_of_three_remote_modules_passes_outputs_along_its_edges() {
    let Some(server) = cluster_common::NatsServer::start() else {
        return;
    };
    let broker = Broker::new(server.url()).ack_wait(Duration::from_secs(5));
    let mut types = TaskTypes::new();
    let square = types.register("square", |x: u64| Ok(x * x));
    let add = types.register("add", |(a, b): (u64, u64)| Ok(a + b));
    // Two workers, of 2 threads each.
    let workers: Vec<Worker> = (0..2)
        .map(|_| Worker::start(&broker, types.clone(), 2).unwrap())
        .collect();
    let submitter = Submitter::connect(&broker).unwrap();

    let mut dag = Dag::new();
    dag.remote_module("squares", &submitter, &square, 3, |_: &Context| {
        Ok((1..=10u64).collect())
    })
    .unwrap();
    dag.remote_module("pairs", &submitter, &add, 2, |cx: &Context| {
        let squares = cx.output::<u64>("squares")?;
        Ok(squares.chunks(2).map(|p| (p[0], p[1])).collect())
    })
    .unwrap()
    .after(["squares"])
    .unwrap();
    dag.remote_module("total", &submitter, &add, 1, |cx: &Context| {
        Ok(vec![(cx.output::<u64>("pairs")?.iter().sum(), 0)])
    })
    .unwrap()
    .after(["pairs"])
    .unwrap();
    // A local module reads a remote one's output as any other.
    dag.module(
        "check",
        1,
        [|cx: &Context| -> TaskResult<bool> { Ok(cx.output::<u64>("total")?[0] == 385) }],
    )
    .unwrap()
    .after(["total"])
    .unwrap();

    let report = dag.run(&Pool::new(1)).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.output::<u64>("pairs").unwrap(),
        [1 + 4, 9 + 16, 25 + 36, 49 + 64, 81 + 100]
    );
    assert_eq!(report.output::<u64>("total").unwrap(), [385]);
    assert_eq!(report.output::<bool>("check").unwrap(), [true]);
    let ran: usize = workers.into_iter().map(|w| w.stop().unwrap()).sum();
    assert_eq!(ran, 10 + 5 + 1);
}

/// Two remote modules whose tasks can only end together: on a pool of one thread they run at
/// once only if no thread of the pool waits for a remote job.
#[test]
fn remote_modules_hold_no_thread_of_the_pool_while_they_run() {
    let Some(server) = cluster_common::NatsServer::start() else {
        return;
    };
    let broker = Broker::new(server.url()).ack_wait(Duration::from_secs(5));
    // Each task says it started, then waits to hear that the other did (a rendezvous; a
    // timeout makes a failure, not a hang).
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_rx = Arc::new(Mutex::new(started_rx));
    let mut types = TaskTypes::new();
    let started_tx = Mutex::new(started_tx);
    let meet = types.register("meet", move |side: u8| {
        started_tx.lock().unwrap().send(()).unwrap();
        match started_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20))
        {
            Ok(()) => Ok(side),
            Err(_) => Err("the other module's task never started".into()),
        }
    });
    let worker = Worker::start(&broker, types, 2).unwrap();
    let submitter = Submitter::connect(&broker).unwrap();
    let mut dag = Dag::new();
    for (name, side) in [("left", 0u8), ("right", 1u8)] {
        dag.remote_module(name, &submitter, &meet, 1, move |_: &Context| {
            Ok(vec![side])
        })
        .unwrap();
    }
    let report = dag.run(&Pool::new(1)).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.output::<u8>("left").unwrap(), [0]);
    assert_eq!(report.output::<u8>("right").unwrap(), [1]);
    assert_eq!(worker.stop().unwrap(), 2);
}

#[test]
fn a_remote_failure_fails_the_module_and_skips_its_dependents() {
    let Some(server) = cluster_common::NatsServer::start() else {
        return;
    };
    let broker = Broker::new(server.url()).ack_wait(Duration::from_secs(5));
    let mut types = TaskTypes::new();
    let check = types.register("check", |x: u64| {
        if x == 2 {
            Err(format!("{x} is not allowed").into())
        } else {
            Ok(x)
        }
    });
    let _worker = Worker::start(&broker, types, 2).unwrap();
    let submitter = Submitter::connect(&broker).unwrap();
    let mut dag = Dag::new();
    dag.remote_module("checks", &submitter, &check, 2, |_: &Context| {
        Ok(vec![1u64, 2, 3])
    })
    .unwrap();
    dag.remote_module("after", &submitter, &check, 1, |_: &Context| Ok(vec![1u64]))
        .unwrap()
        .after(["checks"])
        .unwrap();
    // The arguments themselves may fail: then nothing is submitted.
    dag.remote_module("no arguments", &submitter, &check, 1, |_: &Context| {
        Err("cannot make the arguments".into())
    })
    .unwrap();

    let report = dag.run(&Pool::new(2)).unwrap();
    let ModuleState::Failed(failures) = report.module("checks").unwrap().state() else {
        panic!("not failed: {report}");
    };
    assert_eq!(failures.len(), 1);
    let Failure::TaskError { task, .. } = &failures[0] else {
        panic!("not a task's error: {:?}", failures[0]);
    };
    assert_eq!(*task, 1);
    let remote = failures[0]
        .task_failure()
        .and_then(|failure| failure.downcast_ref::<RemoteFailure>())
        .expect("a remote failure");
    assert_eq!(remote.message(), "2 is not allowed");
    assert_eq!(
        report.module("after").unwrap().state(),
        &ModuleState::Skipped(SkipReason::DependencyFailed {
            failed: "checks".into()
        })
    );
    let ModuleState::Failed(failures) = report.module("no arguments").unwrap().state() else {
        panic!("not failed: {report}");
    };
    assert!(failures[0]
        .to_string()
        .contains("cannot make the arguments"));
}
