//! A task that captures nothing and returns `()` costs no allocation, from submission to the
//! end of `wait`: a job of twice the tasks makes (about) as many allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use jobpool::Pool;

/// The system allocator, counting allocations (every thread's).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made while a job of `tasks` empty tasks is submitted and waited for.
fn allocations_for(pool: &Pool, tasks: usize) -> usize {
    let before = ALLOCATIONS.load(Relaxed);
    let results = pool.submit((0..tasks).map(|_| || ()), 2).wait().unwrap();
    assert_eq!(results.len(), tasks);
    drop(results);
    ALLOCATIONS.load(Relaxed) - before
}

#[test]
fn empty_tasks_allocate_nothing_per_task() {
    let pool = Pool::new(2);
    // Warm up: the workers' first turns set up what they keep.
    allocations_for(&pool, 10_000);
    let small = allocations_for(&pool, 100_000);
    let large = allocations_for(&pool, 1_000_000);
    println!("100,000 tasks: {small} allocations; 1,000,000 tasks: {large}");
    // A few hundred at most (the job, its result slots, the threads' wake-ups and parking):
    // not one per task, which would be 100,000 and 1,000,000.
    for (tasks, made) in [(100_000, small), (1_000_000, large)] {
        assert!(
            made < 1_000,
            "a job of {tasks} empty tasks made {made} allocations"
        );
    }
}
