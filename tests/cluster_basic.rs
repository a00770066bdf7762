//! The cluster in one process, against a real nats-server: a worker and a submitter.
#![cfg(feature = "cluster")]

mod cluster_common;

use std::time::Duration;

use jobpool::cluster::{Broker, Submitter, TaskTypes, Worker};

#[test]
fn a_job_runs_on_a_worker_and_its_results_come_back_in_order() {
    let Some(server) = cluster_common::NatsServer::start() else {
        return;
    };
    let broker = Broker::new(server.url()).ack_wait(Duration::from_secs(5));
    let mut types = TaskTypes::new();
    let square = types.register("square", |x: u64| Ok(x * x));
    let worker = Worker::start(&broker, types.clone(), 4).unwrap();
    let submitter = Submitter::connect(&broker).unwrap();
    let job = submitter.submit(&square, 0..50u64, 3).unwrap();
    let results: Vec<u64> = job
        .wait()
        .unwrap()
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(worker.stop().unwrap(), 50);
}

#[test]
fn completions_come_as_results_arrive_each_once() {
    let Some(server) = cluster_common::NatsServer::start() else {
        return;
    };
    let broker = Broker::new(server.url()).ack_wait(Duration::from_secs(5));
    let mut types = TaskTypes::new();
    let double = types.register("double", |x: u64| Ok(2 * x));
    let worker = Worker::start(&broker, types.clone(), 2).unwrap();
    let submitter = Submitter::connect(&broker).unwrap();
    let job = submitter.submit(&double, 0..30u64, 2).unwrap();
    let mut seen: Vec<(usize, u64)> = job
        .completions()
        .map(|(index, result)| (index, result.unwrap()))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..30).map(|i| (i, 2 * i as u64)).collect::<Vec<_>>());
    assert_eq!(job.progress().unwrap(), (30, 30));
    drop(worker);
}

/// A task longer than the ack wait is not given to another worker: its worker tells the
/// broker it is still at it.
#[test]
fn a_task_longer_than_the_ack_wait_runs_once() {
    let Some(server) = cluster_common::NatsServer::start() else {
        return;
    };
    let broker = Broker::new(server.url()).ack_wait(Duration::from_millis(600));
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    let mut types = TaskTypes::new();
    let slow = types.register("slow", move |x: u64| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(2000)); // more than three ack waits
        Ok(x)
    });
    // Two workers: a redelivery would have somewhere to go.
    let workers = [
        Worker::start(&broker, types.clone(), 1).unwrap(),
        Worker::start(&broker, types.clone(), 1).unwrap(),
    ];
    let submitter = Submitter::connect(&broker).unwrap();
    let job = submitter.submit(&slow, [7u64], 1).unwrap();
    assert_eq!(job.wait().unwrap(), [Ok(7)]);
    let ran: usize = workers.into_iter().map(|w| w.stop().unwrap()).sum();
    assert_eq!(
        (ran, runs.load(std::sync::atomic::Ordering::SeqCst)),
        (1, 1)
    );
}

/// A job larger than the client's limit of acknowledgements in flight (5,000) is submitted
/// and runs.
#[test]
fn a_job_of_six_thousand_tasks_is_submitted_and_runs() {
    let Some(server) = cluster_common::NatsServer::start() else {
        return;
    };
    let broker = Broker::new(server.url());
    let mut types = TaskTypes::new();
    let inc = types.register("inc", |x: u32| Ok(x + 1));
    let worker = Worker::start(&broker, types.clone(), 2).unwrap();
    let submitter = Submitter::connect(&broker).unwrap();
    let job = submitter.submit(&inc, 0..6000u32, 1000).unwrap();
    let results = job.wait().unwrap();
    assert!(results
        .iter()
        .enumerate()
        .all(|(i, r)| r == &Ok(i as u32 + 1)));
    drop(worker);
}

/// Polls `future` on this thread until it is ready, parking in between: an executor of no
/// runtime, woken only through the waker.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn a_remote_job_can_be_awaited_and_a_dropped_future_lets_it_run_on() {
    let Some(server) = cluster_common::NatsServer::start() else {
        return;
    };
    let broker = Broker::new(server.url()).ack_wait(Duration::from_secs(5));
    let mut types = TaskTypes::new();
    let square = types.register("square", |x: u64| Ok(x * x));
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let gated = types.register("gated", move |x: u64| {
        go_rx.lock().unwrap().recv().unwrap();
        Ok(x)
    });
    let worker = Worker::start(&broker, types.clone(), 2).unwrap();
    let submitter = Submitter::connect(&broker).unwrap();

    let job = submitter.submit(&square, 0..20u64, 4).unwrap();
    let squares = block_on(async { job.await }).unwrap();
    assert_eq!(squares[7], Ok(49));
    assert_eq!(squares.len(), 20);

    // A future polled once and dropped: the job runs on, and is collected by another handle.
    let job = submitter.submit(&gated, [5u64], 1).unwrap();
    let id = job.id();
    let mut future = Box::pin(std::future::IntoFuture::into_future(job));
    let waker = std::task::Waker::noop();
    let polled =
        std::future::Future::poll(future.as_mut(), &mut std::task::Context::from_waker(waker));
    assert!(polled.is_pending());
    drop(future);
    go_tx.send(()).unwrap();
    let again = submitter.attach(&gated, &id).unwrap();
    assert_eq!(again.wait().unwrap(), [Ok(5)]);
    assert_eq!(worker.stop().unwrap(), 21);
}
