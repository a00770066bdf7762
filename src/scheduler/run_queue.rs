//! The shared run queue: the jobs that have a pending task and a free token, least served first.
//!
//! Each entry is one job, keyed by the job's *attained service* (how many of its tasks have
//! started) at the moment the entry was pushed, with ties broken by push order. Popping the least
//! served job first is what keeps a small job from waiting behind a big job's backlog: a job that
//! just arrived has attained nothing and goes to the front (the "least attained service" policy
//! of network schedulers). Equal keys are served in push order, so jobs that have received the
//! same service take turns, round-robin.
//!
//! A key goes stale while its job runs elsewhere (its attained service grows). Stale keys are
//! refreshed lazily: [`RunQueue::pop`] re-reads the top entry's attained service and, if the entry
//! is no longer the least served, puts it back with its fresh key and looks again.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::Schedulable;

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
#[derive(Default)]
pub(crate) struct RunQueue {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
}

impl RunQueue {
    /// Adds `job` with the given attained service.
    pub(crate) fn push(&mut self, job: Arc<dyn Schedulable>, key: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { key, seq, job });
    }

    /// Removes and returns the least served job, refreshing stale keys on the way.
    pub(crate) fn pop(&mut self) -> Option<Arc<dyn Schedulable>> {
        // Each round either returns or makes one key fresh; bound the rounds anyway, since
        // running jobs keep making keys stale again.
        for _ in 0..self.heap.len() {
            let mut top = self.heap.pop()?;
            let fresh = top.job.attained();
            if fresh > top.key {
                top.key = fresh;
                if self
                    .heap
                    .peek()
                    .is_some_and(|next| next.rank() > top.rank())
                {
                    self.heap.push(top);
                    continue;
                }
            }
            return Some(top.job);
        }
        self.heap.pop().map(|e| e.job)
    }

    /// The smallest key in the queue (possibly stale, so possibly too small), or `u64::MAX`.
    pub(crate) fn min_key(&self) -> u64 {
        self.heap.peek().map_or(u64::MAX, |e| e.key)
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
        let order: Vec<_> = std::iter::from_fn(|| q.pop())
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
        assert_eq!(name(q.pop().unwrap(), &all), "b");
        assert_eq!(name(q.pop().unwrap(), &all), "a");
        assert!(q.is_empty());
    }
}
