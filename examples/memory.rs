//! What a queued task and a job cost in memory, counted by a global allocator.
//!
//! ```text
//! cargo run --release --example memory
//! ```
//!
//! The pool is held busy by a blocker task while the jobs are submitted, so nothing runs
//! during the count, and only the submitting thread's allocations are counted: what is
//! counted is what the submissions allocate and keep (the live bytes after them). The handles go into a vector allocated before
//! the count, so the caller's own storage is not counted.
//!
//! Where the bytes go: `Pool::submit` collects the tasks, unboxed, into a `VecDeque<F>` inside
//! the job (nothing at all for zero-sized closures); each job is one `Arc`'d struct (its lock,
//! counters and condition variables) plus that vector, and an entry in the pool's run queue
//! (for a job not yet served, a 16-byte pointer in a FIFO that grows by doubling). Results take
//! no room until tasks return them: the values are kept as they come, in runs of consecutive
//! tasks (`size_of::<T>()` a task, nothing for `()`), and only a job with a failure or a
//! `Completions` consumer gets one slot per task.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;

use jobpool::{JobHandle, Pool};

/// Counts bytes and allocations, and a histogram of allocation sizes, over `System`.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Allocations by size, for sizes below `SIZES`; larger ones count in the last bucket.
const SIZES: usize = 1024;
static BY_SIZE: [AtomicUsize; SIZES + 1] = [const { AtomicUsize::new(0) }; SIZES + 1];
/// The sizes of the first `LARGE` allocations of `SIZES` bytes or more, in order.
const LARGE: usize = 64;
static LARGE_SIZES: [AtomicUsize; LARGE] = [const { AtomicUsize::new(0) }; LARGE];
static LARGE_COUNT: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so it
// upholds `GlobalAlloc`'s contract exactly as `System` does; the counters touch no memory
// that is allocated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            FREED.fetch_add(layout.size(), Relaxed);
        }
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            FREED.fetch_add(layout.size(), Relaxed);
        }
        count_alloc(new_size);
        // SAFETY: the caller upholds `realloc`'s contract for `ptr`, `layout`, `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

thread_local! {
    /// Whether this thread's allocations are counted (only the submitting thread's are).
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Counts the allocations of the current thread while `f` runs.
fn counted<R>(f: impl FnOnce() -> R) -> R {
    COUNTING.with(|c| c.set(true));
    let result = f();
    COUNTING.with(|c| c.set(false));
    result
}

fn counting() -> bool {
    COUNTING.with(|c| c.get())
}

fn count_alloc(size: usize) {
    if !counting() {
        return;
    }
    ALLOCATED.fetch_add(size, Relaxed);
    ALLOCATIONS.fetch_add(1, Relaxed);
    BY_SIZE[size.min(SIZES)].fetch_add(1, Relaxed);
    if size >= SIZES {
        let i = LARGE_COUNT.fetch_add(1, Relaxed);
        if i < LARGE {
            LARGE_SIZES[i].store(size, Relaxed);
        }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counters at one moment.
#[derive(Clone)]
struct Snapshot {
    allocated: usize,
    freed: usize,
    allocations: usize,
    by_size: Vec<usize>,
    large: usize,
}

fn snapshot() -> Snapshot {
    Snapshot {
        allocated: ALLOCATED.load(Relaxed),
        freed: FREED.load(Relaxed),
        allocations: ALLOCATIONS.load(Relaxed),
        by_size: BY_SIZE.iter().map(|c| c.load(Relaxed)).collect(),
        large: LARGE_COUNT.load(Relaxed),
    }
}

/// What happened between two snapshots.
struct Delta {
    live: usize,
    allocated: usize,
    allocations: usize,
    /// size -> number of allocations of that size.
    by_size: BTreeMap<usize, usize>,
    /// The sizes of the large allocations, in order.
    large: Vec<usize>,
}

fn delta(before: &Snapshot, after: &Snapshot) -> Delta {
    let by_size = (0..=SIZES)
        .filter_map(|s| {
            let n = after.by_size[s] - before.by_size[s];
            (n > 0).then_some((s, n))
        })
        .collect();
    Delta {
        live: (after.allocated - after.freed) - (before.allocated - before.freed),
        allocated: after.allocated - before.allocated,
        allocations: after.allocations - before.allocations,
        by_size,
        large: (before.large..after.large.min(LARGE))
            .map(|i| LARGE_SIZES[i].load(Relaxed))
            .collect(),
    }
}

/// Holds every worker of `pool` until dropped, so submitted jobs stay queued.
struct Blocker {
    release: Vec<mpsc::Sender<()>>,
    job: Option<JobHandle<()>>,
}

fn block(pool: &Pool) -> Blocker {
    let n = pool.threads();
    let (started_tx, started) = mpsc::channel();
    let mut release = Vec::new();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<()>();
            release.push(tx);
            let started = started_tx.clone();
            move || {
                started.send(()).unwrap();
                let _ = rx.recv();
            }
        })
        .collect();
    let job = pool.submit(tasks, n);
    for _ in 0..n {
        started.recv().unwrap();
    }
    Blocker {
        release,
        job: Some(job),
    }
}

impl Drop for Blocker {
    fn drop(&mut self) {
        self.release.clear();
        if let Some(job) = self.job.take() {
            job.wait().unwrap();
        }
    }
}

fn print(what: &str, per: &str, count: usize, d: &Delta) {
    println!("{what}:");
    println!(
        "  live after submit: {} bytes = {:.2} bytes per {per}",
        d.live,
        d.live as f64 / count as f64
    );
    println!(
        "  allocated: {} bytes in {} allocations ({:.2} bytes, {:.2} allocations per {per})",
        d.allocated,
        d.allocations,
        d.allocated as f64 / count as f64,
        d.allocations as f64 / count as f64
    );
    let sizes: Vec<String> = d
        .by_size
        .iter()
        .map(|(size, n)| {
            let size = if *size == SIZES {
                format!(">={SIZES}")
            } else {
                size.to_string()
            };
            format!("{n} x {size} B")
        })
        .collect();
    println!("  allocation sizes: {}", sizes.join(", "));
    if !d.large.is_empty() {
        let large: Vec<String> = d.large.iter().map(|s| s.to_string()).collect();
        println!("  the large ones, in order: {} B", large.join(", "));
    }
}

/// Tasks in each of the one-job measurements.
const TASKS: usize = 100_000;

/// Counts what `submit` allocates for one job of `TASKS` tasks, with the pool held busy so
/// that nothing runs meanwhile, prints it per task, then lets the job run.
fn measure_one_job<T: Send + 'static>(
    pool: &Pool,
    title: &str,
    submit: impl FnOnce(&Pool) -> jobpool::JobHandle<T>,
) {
    let blocker = block(pool);
    let before = snapshot();
    let job = counted(|| submit(pool));
    let after = snapshot();
    print(title, "task", TASKS, &delta(&before, &after));
    drop(blocker);
    job.wait().unwrap();
}

fn main() {
    const JOBS: usize = 10_000;
    let pool = Pool::new(2);

    // One job of 100 000 zero-sized closures returning ().
    measure_one_job(
        &pool,
        &format!("one job of {TASKS} zero-sized tasks returning ()"),
        |pool| pool.submit((0..TASKS).map(|_| || ()), 2),
    );

    // One job of 100 000 closures that capture 8 bytes and return a u64.
    measure_one_job(
        &pool,
        &format!("one job of {TASKS} tasks capturing a u64 and returning a u64"),
        |pool| pool.submit((0..TASKS as u64).map(|i| move || i * 2), 2),
    );

    // 10 000 jobs of one zero-sized task each.
    let blocker = block(&pool);
    let mut handles = Vec::with_capacity(JOBS);
    let before = snapshot();
    counted(|| {
        for _ in 0..JOBS {
            handles.push(pool.submit([|| ()], 1));
        }
    });
    let after = snapshot();
    print(
        &format!("{JOBS} jobs of one zero-sized task each"),
        "job",
        JOBS,
        &delta(&before, &after),
    );
    drop(blocker);
    for job in handles {
        job.wait().unwrap();
    }

    println!();
    println!("A queued task costs its closure, unboxed (size_of::<F>(), here 0 or 8 bytes), in");
    println!("the job's VecDeque<F>; its result takes size_of::<T>() once it is returned.");
    println!("A job costs one Arc'd JobCore (the most common size above, once per job; the");
    println!("task deque of zero-sized closures allocates nothing), and a 16-byte entry in the");
    println!("run queue's FIFO of jobs not yet served, which grows by doubling (the few large");
    println!("allocations). What few jobs use (a name, a deadline, limiters, retries, failures,");
    println!("a completion log, a callback) is boxed apart and allocated only when used, so a");
    println!("plain job's JobCore stays small.");
}
