//! What a run prints: each worker count's figures, and the summary tables.

use jobpool_bench::summary::{median, spread};

use crate::{Args, Figures, Phase, TARGET_OVERHEAD, TARGET_THROUGHPUT};

impl Figures {
    pub(crate) fn print(&self, args: &Args, phase: &Phase) {
        let threads = phase.threads();
        println!(
            "  -- {} worker process(es), median [min-max] over {} rounds:",
            phase.workers, args.rounds
        );
        if !self.rate_ratio.is_empty() {
            println!(
                "  throughput, jobpool, a job of {} empty tasks, cap {}: {} tasks/s \
                 (submit() alone {} ms)",
                self.jobpool_tasks,
                args.cap,
                spread(&self.jp_rate, 0),
                spread(&self.jp_submit_ms, 1)
            );
            println!(
                "  throughput, raw JetStream, {} messages: {} msgs/s",
                args.tasks,
                spread(&self.raw_rate, 0)
            );
            let met = median(&self.rate_ratio) >= TARGET_THROUGHPUT;
            println!(
                "  throughput, jobpool / raw, per round: {}; target >= {TARGET_THROUGHPUT}: {}",
                spread(&self.rate_ratio, 4),
                verdict(met)
            );
        }
        if !self.lat_ratio.is_empty() {
            println!(
                "  latency, jobpool, {} jobs of 1 task: median {} ms, p99 {} ms \
                 (submit() alone: median {} ms)",
                args.latency_jobs,
                spread(&self.jp_lat, 2),
                spread(&self.jp_lat_p99, 2),
                spread(&self.jp_lat_submit, 2)
            );
            println!(
                "  latency, raw JetStream, {} round trips: median {} ms, p99 {} ms",
                args.latency_jobs,
                spread(&self.raw_lat, 3),
                spread(&self.raw_lat_p99, 3)
            );
            println!(
                "  latency, jobpool / raw (medians), per round: {}",
                spread(&self.lat_ratio, 1)
            );
        }
        if !self.overhead.is_empty() {
            println!(
                "  {} x {} ms tasks, cap {threads}: cluster {} s, local Pool::new({threads}) {} s \
                 (ideal {:.3} s)",
                args.sleep_tasks,
                args.sleep_ms,
                spread(&self.cluster_s, 3),
                spread(&self.local_s, 3),
                self.ideal_s
            );
            let met = median(&self.overhead) <= TARGET_OVERHEAD;
            println!(
                "  overhead, cluster / local, per round: {}; target <= {TARGET_OVERHEAD}: {}",
                spread(&self.overhead, 3),
                verdict(met)
            );
        }
    }
}

/// The summary of every worker count, one row each.
pub(crate) fn print_table(args: &Args, rows: &[(usize, Figures)]) {
    println!(
        "\n== summary: median [min-max] over {} rounds; ratios paired per round",
        args.rounds
    );
    if args.throughput {
        println!(
            "\n| workers x threads | jobpool tasks/s | raw msgs/s | jobpool / raw | target >= 0.5 |"
        );
        println!("|---|---|---|---|---|");
        for (workers, f) in rows {
            println!(
                "| {workers} x {} | {} | {} | {} | {} |",
                args.threads,
                spread(&f.jp_rate, 0),
                spread(&f.raw_rate, 0),
                spread(&f.rate_ratio, 4),
                verdict(median(&f.rate_ratio) >= TARGET_THROUGHPUT)
            );
        }
    }
    if args.latency {
        println!("\n| workers x threads | jobpool median ms | jobpool p99 ms | raw median ms | raw p99 ms | jobpool / raw |");
        println!("|---|---|---|---|---|---|");
        for (workers, f) in rows {
            println!(
                "| {workers} x {} | {} | {} | {} | {} | {} |",
                args.threads,
                spread(&f.jp_lat, 2),
                spread(&f.jp_lat_p99, 2),
                spread(&f.raw_lat, 3),
                spread(&f.raw_lat_p99, 3),
                spread(&f.lat_ratio, 1)
            );
        }
    }
    if args.overhead {
        println!(
            "\n| workers x threads | cluster s | local pool s | cluster / local | target <= 1.05 |"
        );
        println!("|---|---|---|---|---|");
        for (workers, f) in rows {
            println!(
                "| {workers} x {} | {} | {} | {} | {} |",
                args.threads,
                spread(&f.cluster_s, 3),
                spread(&f.local_s, 3),
                spread(&f.overhead, 3),
                verdict(median(&f.overhead) <= TARGET_OVERHEAD)
            );
        }
    }
}

/// The 99th percentile (nearest rank).
pub(crate) fn p99(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64) * 0.99).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}
