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

use super::priority::{self, LEVELS};
use super::Schedulable;
use crate::sync::Instant;

/// How many stale keys one pop refreshes at most before it takes the top entry as it is.
const MAX_REFRESHES: usize = 4;

/// The number of priorities.
const PRIORITIES: usize = LEVELS / 2;

/// One job in the run queue.
struct Entry {
    /// The job's rank within its level when pushed (or last refreshed).
    rank: u64,
    /// Push order, to break ties first-come first-served.
    seq: u64,
    job: Arc<dyn Schedulable>,
    /// When the job was queued, as far as the queue knows (`RunQueue::clock`).
    since: Instant,
}

impl Entry {
    /// The entry served first is the greatest in `BinaryHeap` terms: smallest rank, then oldest.
    fn order(&self) -> (std::cmp::Reverse<u64>, std::cmp::Reverse<u64>) {
        (std::cmp::Reverse(self.rank), std::cmp::Reverse(self.seq))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.order() == other.order()
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
        self.order().cmp(&other.order())
    }
}

/// The jobs of one level (a priority and a stage, see `priority.rs`).
///
/// Jobs of rank 0 (new jobs that have had no service yet) wait in a plain FIFO, since no rank
/// is smaller and they need no ordering among themselves but arrival: a burst of submissions
/// costs O(1) per job, not a heap operation on a heap as large as the burst.
#[derive(Default)]
struct Level {
    /// Jobs of rank 0, in push order, with when each was queued.
    fresh: VecDeque<(Arc<dyn Schedulable>, Instant)>,
    heap: BinaryHeap<Entry>,
}

impl Level {
    fn len(&self) -> usize {
        self.fresh.len() + self.heap.len()
    }

    fn min_rank(&self) -> Option<u64> {
        if self.fresh.is_empty() {
            self.heap.peek().map(|e| e.rank)
        } else {
            Some(0)
        }
    }
}

/// A min-queue of runnable jobs by key: priority first, then stage, then rank (see
/// `priority.rs`). Not synchronized: the registry keeps it under its lock.
///
/// **Aging.** A priority is served ahead of the ones below it, but not forever: each time a
/// job is popped from a priority while a lower priority has jobs waiting, the lower one is
/// *passed over* once, and a priority passed over `aging_turns` times in a row gets the next
/// pop. So while it has runnable jobs, a priority gets at least one turn (a worker for one time
/// slice, or one task when tasks are longer) in every `aging_turns + 1`, whatever runs above it.
pub(crate) struct RunQueue {
    levels: [Level; LEVELS],
    /// Per priority, how many pops in a row served a higher priority while it waited.
    passed_over: [usize; PRIORITIES],
    /// Per priority, since when it has had jobs waiting without a turn.
    waiting_since: [Option<Instant>; PRIORITIES],
    aging_turns: usize,
    next_seq: u64,
    /// The latest clock reading the queue was given (by a pop, a push into an empty priority,
    /// or a look at the oldest wait): the time a push is stamped with, so that a push reads no
    /// clock. A stamp is early by at most the time since that reading, so a wait is never
    /// under-reported; `None` before the first reading.
    clock: Option<Instant>,
}

impl Default for RunQueue {
    fn default() -> Self {
        RunQueue::new(usize::MAX)
    }
}

impl RunQueue {
    /// A run queue whose lower priorities get a turn after `aging_turns` pops of higher ones.
    pub(crate) fn new(aging_turns: usize) -> Self {
        RunQueue {
            levels: Default::default(),
            passed_over: [0; PRIORITIES],
            waiting_since: [None; PRIORITIES],
            aging_turns: aging_turns.max(1),
            next_seq: 0,
            clock: None,
        }
    }

    /// Adds `job` with the given key. `now` is read only when the job's priority had no job
    /// waiting.
    pub(crate) fn push_at(
        &mut self,
        job: Arc<dyn Schedulable>,
        key: u64,
        now: impl FnOnce() -> Instant,
    ) {
        let p = priority::level(key) / 2;
        let since = match (self.waiting_since[p], self.clock) {
            (Some(_), Some(clock)) => clock,
            _ => {
                let now = now();
                self.tick(now);
                self.waiting_since[p].get_or_insert(now);
                now
            }
        };
        self.push(job, key, since);
    }

    /// Adds `job` with the given key, queued at `since` (a job moved within the queue keeps
    /// its time).
    fn push(&mut self, job: Arc<dyn Schedulable>, key: u64, since: Instant) {
        let level = &mut self.levels[priority::level(key)];
        let rank = priority::rank(key);
        if rank == 0 {
            level.fresh.push_back((job, since));
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        level.heap.push(Entry {
            rank,
            seq,
            job,
            since,
        });
    }

    /// Moves the queue's clock on to `now`.
    fn tick(&mut self, now: Instant) {
        match self.clock {
            Some(clock) if clock >= now => {}
            _ => self.clock = Some(now),
        }
    }

    /// How long the job queued longest (of those not finished) has waited, at `now`; `None`
    /// when none waits. Looks at every entry: for a statistics reading, not for the workers.
    pub(crate) fn oldest_wait(&mut self, now: Instant) -> Option<std::time::Duration> {
        self.tick(now);
        self.live_entries()
            .map(|since| now.saturating_duration_since(since))
            .max()
    }

    /// How many queued jobs are not finished (a dead entry waits only to be dropped): looks
    /// at every entry, as `oldest_wait` does.
    pub(crate) fn live_len(&self) -> usize {
        self.live_entries().count()
    }

    /// When each queued job not finished was queued, in no particular order.
    fn live_entries(&self) -> impl Iterator<Item = Instant> + '_ {
        let fresh = self.levels.iter().flat_map(|level| level.fresh.iter());
        let queued = self.levels.iter().flat_map(|level| level.heap.iter());
        fresh
            .map(|(job, since)| (job, *since))
            .chain(queued.map(|entry| (&entry.job, entry.since)))
            .filter(|(job, _)| !job.is_finished())
            .map(|(_, since)| since)
    }

    /// Whether priority `p` has jobs waiting (dead entries included).
    fn waiting(&self, p: usize) -> bool {
        self.levels[2 * p].len() + self.levels[2 * p + 1].len() > 0
    }

    /// Removes and returns the job to serve next: from the highest priority with jobs, unless
    /// a lower one is due a turn (aging); within it, the lowest key, refreshing stale keys on
    /// the way. The entries of finished jobs are moved to `dead`, for the caller to drop once
    /// it has released its lock (dropping the last reference to a job drops its results).
    pub(crate) fn pop(
        &mut self,
        now: Instant,
        dead: &mut Vec<Arc<dyn Schedulable>>,
    ) -> Option<Arc<dyn Schedulable>> {
        self.tick(now);
        let found = self.pop_job(dead);
        for p in 0..PRIORITIES {
            if !self.waiting(p) {
                self.waiting_since[p] = None;
            }
        }
        if let Some(job) = &found {
            let p = priority::level(job.key()) / 2;
            if self.waiting(p) {
                self.waiting_since[p] = Some(now);
            }
        }
        found
    }

    /// How long priority `p` has had jobs waiting without a turn, at `now`.
    pub(crate) fn waited(&self, p: usize, now: Instant) -> Option<std::time::Duration> {
        self.waiting_since[p].map(|since| now.saturating_duration_since(since))
    }

    fn pop_job(&mut self, dead: &mut Vec<Arc<dyn Schedulable>>) -> Option<Arc<dyn Schedulable>> {
        loop {
            let best = (0..PRIORITIES).find(|&p| self.waiting(p))?;
            let aged = (best + 1..PRIORITIES)
                .find(|&p| self.waiting(p) && self.passed_over[p] >= self.aging_turns);
            let chosen = aged.unwrap_or(best);
            for p in chosen + 1..PRIORITIES {
                if self.waiting(p) {
                    self.passed_over[p] += 1;
                }
            }
            self.passed_over[chosen] = 0;
            for level in [2 * chosen, 2 * chosen + 1] {
                if let Some(job) = self.pop_level(level, dead) {
                    return Some(job);
                }
            }
            // Every entry of that priority was dead: look again.
        }
    }

    /// The best live job of one level, or `None` when it has none.
    fn pop_level(
        &mut self,
        level: usize,
        dead: &mut Vec<Arc<dyn Schedulable>>,
    ) -> Option<Arc<dyn Schedulable>> {
        while let Some((job, since)) = self.levels[level].fresh.pop_front() {
            if job.is_finished() {
                dead.push(job);
                continue;
            }
            let key = job.key();
            if priority::level(key) == level && priority::rank(key) == 0 {
                return Some(job);
            }
            // Served since it was queued (a waiting worker helped it): no longer fresh.
            self.push(job, key, since);
        }
        let mut refreshed = 0;
        while let Some(mut top) = self.levels[level].heap.pop() {
            if top.job.is_finished() {
                dead.push(top.job);
                continue;
            }
            let key = top.job.key();
            if priority::level(key) != level {
                // Its stage changed (a run's first stage started): it belongs elsewhere.
                self.push(top.job, key, top.since);
                continue;
            }
            let fresh = priority::rank(key);
            // A few refreshes per pop are enough to serve the least served job in practice;
            // the bound keeps a pop cheap however many keys went stale.
            if fresh > top.rank && refreshed < MAX_REFRESHES {
                top.rank = fresh;
                if self.levels[level]
                    .heap
                    .peek()
                    .is_some_and(|next| next.order() > top.order())
                {
                    self.levels[level].heap.push(top);
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
        for (i, level) in self.levels.iter().enumerate() {
            if let Some(rank) = level.min_rank() {
                return ((i as u64) << 61) | rank;
            }
        }
        u64::MAX
    }

    pub(crate) fn len(&self) -> usize {
        self.levels.iter().map(Level::len).sum()
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
        fn run_popped(self: Arc<Self>, _now: Instant) {}
        fn on_timer(self: Arc<Self>, _now: Instant) {}
        fn key(&self) -> u64 {
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
        q.push_at(a.clone(), 5, Instant::now);
        q.push_at(b.clone(), 0, Instant::now);
        q.push_at(c.clone(), 0, Instant::now);
        assert_eq!(q.min_key(), 0);
        let all = [&a, &b, &c];
        let order: Vec<_> = std::iter::from_fn(|| q.pop(Instant::now(), &mut Vec::new()))
            .map(|j| name(j, &all))
            .collect();
        assert_eq!(order, ["b", "c", "a"]);
        assert_eq!(q.min_key(), u64::MAX);
    }

    #[test]
    fn stale_keys_are_refreshed_on_pop() {
        let (a, b) = (fake("a", 0), fake("b", 3));
        let mut q = RunQueue::default();
        q.push_at(a.clone(), 0, Instant::now);
        q.push_at(b.clone(), 3, Instant::now);
        a.attained.store(10, Relaxed); // a ran elsewhere since it was pushed
        let all = [&a, &b];
        assert_eq!(
            name(q.pop(Instant::now(), &mut Vec::new()).unwrap(), &all),
            "b"
        );
        assert_eq!(
            name(q.pop(Instant::now(), &mut Vec::new()).unwrap(), &all),
            "a"
        );
        assert!(q.is_empty());
    }

    #[test]
    fn finished_jobs_are_dropped() {
        let (a, b) = (fake("finished", 0), fake("b", 7));
        let mut q = RunQueue::default();
        q.push_at(a, 0, Instant::now);
        q.push_at(b.clone(), 7, Instant::now);
        assert_eq!(
            name(q.pop(Instant::now(), &mut Vec::new()).unwrap(), &[&b]),
            "b"
        );
        assert!(q.pop(Instant::now(), &mut Vec::new()).is_none());
    }

    #[test]
    fn the_oldest_wait_counts_from_a_stamp_never_later_than_the_push() {
        let ms = std::time::Duration::from_millis;
        let t0 = Instant::now();
        let at = |n| t0.checked_add(ms(n)).unwrap();
        let (a, b, c) = (fake("a", 0), fake("b", 3), fake("c", 0));
        let mut q = RunQueue::default();
        assert_eq!(q.oldest_wait(t0), None);
        // Into an empty priority: the clock is read.
        q.push_at(a.clone(), 0, || at(1));
        // Behind it: stamped with the queue's clock, no reading.
        q.push_at(b.clone(), 3, || unreachable!("no clock read"));
        let all = [&a, &b, &c];
        assert_eq!(name(q.pop(at(10), &mut Vec::new()).unwrap(), &all), "a");
        q.push_at(c.clone(), 0, || unreachable!("no clock read"));
        // b has waited since the stamp it got, 1 ms; c since the pop, 10 ms.
        assert_eq!(q.oldest_wait(at(30)), Some(ms(29)));
        assert_eq!(name(q.pop(at(31), &mut Vec::new()).unwrap(), &all), "c");
        assert_eq!(q.oldest_wait(at(40)), Some(ms(39)));
        assert_eq!(name(q.pop(at(41), &mut Vec::new()).unwrap(), &all), "b");
        assert_eq!(q.oldest_wait(at(50)), None);
    }
}
