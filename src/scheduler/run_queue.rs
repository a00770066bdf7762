//! The shared run queue: the jobs that have a pending task and a free token, least served first.
//!
//! Each entry is one job, keyed by the job's *attained service* (how long its tasks have run,
//! in nanoseconds summed over its tokens) at the moment the entry was pushed, with ties broken
//! by push order. Popping the least served job first is what keeps a small job from waiting
//! behind a big job's backlog: a job that just arrived has attained nothing and goes to the
//! front (the "least attained service" policy of network schedulers). Equal keys are served in
//! push order, so jobs that have received the same service take turns, round-robin.
//!
//! A key goes stale while its job runs elsewhere (its attained service grows). Stale keys are
//! refreshed lazily: [`RunQueue::pop`] re-reads the top entry's attained service and, if the entry
//! is no longer the least served, puts it back with its fresh key and looks again.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use super::Schedulable;

/// How many stale keys one pop refreshes at most before it takes the top entry as it is.
const MAX_REFRESHES: usize = 4;

/// One job in the run queue.
struct Entry {
    /// The job's attained service when pushed (or last refreshed).
    key: u64,
    /// Push order, to break ties first-come first-served.
    seq: u64,
    job: Arc<dyn Schedulable>,
}

impl Entry {
    /// The entry served first is the greatest in `BinaryHeap` terms: smallest key, then oldest.
    fn rank(&self) -> (std::cmp::Reverse<u64>, std::cmp::Reverse<u64>) {
        (std::cmp::Reverse(self.key), std::cmp::Reverse(self.seq))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// A min-queue of runnable jobs by attained service. Not synchronized: the registry keeps it
/// under its lock.
///
/// Jobs that have had no service yet (key 0: just submitted) wait in a plain FIFO, since no key
/// is smaller and they need no ordering among themselves but arrival: a burst of submissions
/// costs O(1) per job, not a heap operation on a heap as large as the burst.
#[derive(Default)]
pub(crate) struct RunQueue {
    fresh: VecDeque<Arc<dyn Schedulable>>,
    heap: BinaryHeap<Entry>,
    next_seq: u64,
}

impl RunQueue {
    /// Adds `job` with the given attained service.
    pub(crate) fn push(&mut self, job: Arc<dyn Schedulable>, key: u64) {
        if key == 0 {
            self.fresh.push_back(job);
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { key, seq, job });
    }

    /// Removes and returns the least served job, refreshing stale keys on the way. The entries
    /// of finished jobs are moved to `dead`, for the caller to drop once
    /// it has released its lock (dropping the last reference to a job drops its results).
    pub(crate) fn pop(
        &mut self,
        dead: &mut Vec<Arc<dyn Schedulable>>,
    ) -> Option<Arc<dyn Schedulable>> {
        while let Some(job) = self.fresh.pop_front() {
            match job.attained() {
                _ if job.is_finished() => dead.push(job),
                0 => return Some(job),
                // Served since it was queued (a waiting worker helped it): no longer fresh.
                attained => self.push(job, attained),
            }
        }
        let mut refreshed = 0;
        while let Some(mut top) = self.heap.pop() {
            if top.job.is_finished() {
                dead.push(top.job);
                continue;
            }
            let fresh = top.job.attained();
            // A few refreshes per pop are enough to serve the least served job in practice;
            // the bound keeps a pop cheap however many keys went stale.
            if fresh > top.key && refreshed < MAX_REFRESHES {
                top.key = fresh;
                if self
                    .heap
                    .peek()
                    .is_some_and(|next| next.rank() > top.rank())
                {
                    self.heap.push(top);
                    refreshed += 1;
                    continue;
                }
            }
            return Some(top.job);
        }
        None
    }

    /// The smallest key in the queue (possibly stale, so possibly too small), or `u64::MAX`.
    pub(crate) fn min_key(&self) -> u64 {
        if self.fresh.is_empty() {
            self.heap.peek().map_or(u64::MAX, |e| e.key)
        } else {
            0
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.fresh.len() + self.heap.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::AtomicU64;
    use std::sync::atomic::Ordering::Relaxed;

    struct Fake {
        name: &'static str,
        attained: AtomicU64,
    }

    impl Schedulable for Fake {
        fn run_popped(self: Arc<Self>) {}
        fn attained(&self) -> u64 {
            self.attained.load(Relaxed)
        }
        fn is_finished(&self) -> bool {
            self.name == "finished"
        }
    }

    fn fake(name: &'static str, attained: u64) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            attained: AtomicU64::new(attained),
        })
    }

    fn name(job: Arc<dyn Schedulable>, all: &[&Arc<Fake>]) -> &'static str {
        all.iter()
            .find(|f| std::ptr::addr_eq(Arc::as_ptr(f), Arc::as_ptr(&job)))
            .map(|f| f.name)
            .unwrap()
    }

    #[test]
    fn least_served_first_then_push_order() {
        let (a, b, c) = (fake("a", 5), fake("b", 0), fake("c", 0));
        let mut q = RunQueue::default();
        q.push(a.clone(), 5);
        q.push(b.clone(), 0);
        q.push(c.clone(), 0);
        assert_eq!(q.min_key(), 0);
        let all = [&a, &b, &c];
        let order: Vec<_> = std::iter::from_fn(|| q.pop(&mut Vec::new()))
            .map(|j| name(j, &all))
            .collect();
        assert_eq!(order, ["b", "c", "a"]);
        assert_eq!(q.min_key(), u64::MAX);
    }

    #[test]
    fn stale_keys_are_refreshed_on_pop() {
        let (a, b) = (fake("a", 0), fake("b", 3));
        let mut q = RunQueue::default();
        q.push(a.clone(), 0);
        q.push(b.clone(), 3);
        a.attained.store(10, Relaxed); // a ran elsewhere since it was pushed
        let all = [&a, &b];
        assert_eq!(name(q.pop(&mut Vec::new()).unwrap(), &all), "b");
        assert_eq!(name(q.pop(&mut Vec::new()).unwrap(), &all), "a");
        assert!(q.is_empty());
    }

    #[test]
    fn finished_jobs_are_dropped() {
        let (a, b) = (fake("finished", 0), fake("b", 7));
        let mut q = RunQueue::default();
        q.push(a, 0);
        q.push(b.clone(), 7);
        assert_eq!(name(q.pop(&mut Vec::new()).unwrap(), &[&b]), "b");
        assert!(q.pop(&mut Vec::new()).is_none());
    }
}
