//! Records a small image pipeline run on 4 threads and writes its timeline as a Chrome trace,
//! to look at in Perfetto:
//!
//! ```text
//! cargo run --example trace [-- path/to/trace.json]
//! ```
//!
//! The graph: `download` (6 images, 3 at a time) feeds `decode` (2 at a time) and `metadata`;
//! `thumbnails` (after `decode`) may start only one task every 20 ms; `upload` fails once and is
//! retried; `report` waits for everything. In the trace, each worker thread has a track with a
//! slice per task attempt; each job and each module is an async slice from its start to its
//! end; the thumbnails' waits for a start slot show as `held: rate` inside their job; the
//! failed upload attempt says `retrying after 10ms` in its arguments.

use std::thread::sleep;
use std::time::Duration;

use jobpool::{Context, Dag, Pool, Rate, Recorder, Retry, TaskResult};

/// What a step "takes", per image.
fn work(millis: u64) {
    sleep(Duration::from_millis(millis));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "trace.json".into());
    let images: usize = 6;

    let mut dag = Dag::new();
    dag.module(
        "download",
        3,
        (0..images).map(|i| {
            move |_: &Context| -> TaskResult<Vec<u8>> {
                work(15 + 5 * (i % 3) as u64);
                Ok(vec![i as u8; 1024])
            }
        }),
    )?;
    dag.module(
        "decode",
        2,
        (0..images).map(|i| {
            move |ctx: &Context| -> TaskResult<usize> {
                let bytes = &ctx.output::<Vec<u8>>("download")?[i];
                work(10);
                Ok(bytes.len())
            }
        }),
    )?
    .after(["download"])?;
    dag.module(
        "metadata",
        1,
        (0..2).map(|_| {
            |ctx: &Context| -> TaskResult<usize> {
                work(8);
                Ok(ctx.output::<Vec<u8>>("download")?.len())
            }
        }),
    )?
    .after(["download"])?;
    dag.module(
        "thumbnails",
        3,
        (0..images).map(|i| {
            move |ctx: &Context| -> TaskResult<usize> {
                let size = ctx.output::<usize>("decode")?[i];
                work(5);
                Ok(size / 16)
            }
        }),
    )?
    .after(["decode"])?
    .rate(Rate::new(1, Duration::from_millis(20)));
    dag.module(
        "upload",
        3,
        (0..3).map(|i| {
            move |ctx: &Context| -> TaskResult<usize> {
                let thumbnails: usize = ctx.output::<usize>("thumbnails")?.iter().sum();
                work(12);
                if i == 1 && ctx.attempt() == 1 {
                    return Err("connection reset".into());
                }
                Ok(thumbnails / 3)
            }
        }),
    )?
    .after(["thumbnails"])?
    .retry(
        Retry::attempts(3)
            .backoff(Duration::from_millis(10), 2.0, Duration::from_millis(40))
            .jitter(0.0),
    );
    dag.module(
        "report",
        1,
        [|ctx: &Context| -> TaskResult<String> {
            let uploaded: usize = ctx.output::<usize>("upload")?.iter().sum();
            let described = ctx.output::<usize>("metadata")?.len();
            work(5);
            Ok(format!(
                "{uploaded} bytes uploaded, {described} metadata records"
            ))
        }],
    )?
    .after(["upload", "metadata"])?;

    let pool = Pool::new(4);
    let recorder = Recorder::start(&pool, 100_000);
    let report = dag.run(&pool)?;
    let timeline = recorder.finish();
    println!("{report}\n");
    println!("{}\n", report.output::<String>("report")?[0]);

    timeline.save(&path)?;
    println!(
        "{} events recorded ({} lost), written to {path}",
        timeline.events().len(),
        timeline.lost()
    );
    println!("Open it at https://ui.perfetto.dev (\"Open trace file\"), or in chrome://tracing (\"Load\").");
    Ok(())
}
