//! A graph whose modules' tasks are remote task types: each module is submitted to the cluster
//! when its last dependency ends, and its tasks' arguments come from its dependencies'
//! outputs.
#![cfg(feature = "cluster")]

mod cluster_common;

use std::sync::Arc;
use std::time::Duration;

use jobpool::cluster::{Broker, Submitter, TaskTypes, Worker};
use jobpool::{Context, Dag, Pool, TaskResult};

#[test]
fn a_graph_of_three_remote_modules_passes_outputs_along_its_edges() {
    let Some(server) = cluster_common::NatsServer::start() else {
        return;
    };
    let broker = Broker::new(server.url()).ack_wait(Duration::from_secs(5));
    let mut types = TaskTypes::new();
    let square = types.register("square", |x: u64| Ok((x * x, std::process::id())));
    let add = types.register("add", |(a, b): (u64, u64)| Ok(a + b));
    // Two workers, of 2 threads each.
    let workers: Vec<Worker> = (0..2)
        .map(|_| Worker::start(&broker, types.clone(), 2).unwrap())
        .collect();
    let submitter = Arc::new(Submitter::connect(&broker).unwrap());

    let mut dag = Dag::new();
    let (remote, task) = (submitter.clone(), square.clone());
    dag.module(
        "squares",
        1,
        [move |_: &Context| -> TaskResult<Vec<u64>> {
            let job = remote.submit(&task, 1..=10u64, 3)?;
            Ok(job
                .wait()?
                .into_iter()
                .map(|r| r.map(|(s, _)| s))
                .collect::<Result<_, _>>()?)
        }],
    )
    .unwrap();
    let (remote, task) = (submitter.clone(), add.clone());
    dag.module(
        "pairs",
        1,
        [move |ctx: &Context| -> TaskResult<Vec<u64>> {
            let squares = &ctx.output::<Vec<u64>>("squares")?[0];
            let pairs: Vec<(u64, u64)> = squares.chunks(2).map(|p| (p[0], p[1])).collect();
            let job = remote.submit(&task, pairs, 2)?;
            Ok(job.wait()?.into_iter().collect::<Result<_, _>>()?)
        }],
    )
    .unwrap()
    .after(["squares"])
    .unwrap();
    let (remote, task) = (submitter.clone(), add.clone());
    dag.module(
        "total",
        1,
        [move |ctx: &Context| -> TaskResult<u64> {
            let sums = &ctx.output::<Vec<u64>>("pairs")?[0];
            let job = remote.submit(&task, [(sums.iter().sum::<u64>(), 0)], 1)?;
            Ok(job.wait()?.pop().unwrap()?)
        }],
    )
    .unwrap()
    .after(["pairs"])
    .unwrap();

    let report = dag.run(&Pool::new(2)).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.output::<Vec<u64>>("pairs").unwrap()[0],
        [1 + 4, 9 + 16, 25 + 36, 49 + 64, 81 + 100]
    );
    assert_eq!(report.output::<u64>("total").unwrap(), [385]);
    let ran: usize = workers.into_iter().map(|w| w.stop().unwrap()).sum();
    assert_eq!(ran, 10 + 5 + 1);
}
