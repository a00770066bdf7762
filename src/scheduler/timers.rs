//! The pool's timers: jobs that have something due at a later time (a task waiting to be
//! retried, a rate limit's next start slot, a deadline).
//!
//! A timer holds no task: it names the job and the instant, and when it fires, the job looks
//! at what is due (README.md, rule 9). The heap lives under the registry's lock; its earliest
//! instant is mirrored in an atomic, as nanoseconds since the registry's epoch, so that a busy
//! worker can tell at the end of each chunk, with one load, whether a timer is due.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::Schedulable;
use crate::sync::Instant;

/// One timer.
pub(crate) struct Timer {
    pub(crate) due: Instant,
    seq: u64,
    pub(crate) job: Arc<dyn Schedulable>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    /// The earliest timer is the greatest, for `BinaryHeap`.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// The timers of one pool, earliest first. Not synchronized: under the registry's lock.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Timer>,
    next_seq: u64,
}

impl Timers {
    /// Adds a timer; returns whether it is now the earliest.
    pub(crate) fn add(&mut self, due: Instant, job: Arc<dyn Schedulable>) -> bool {
        let earliest = self.next_due().map_or(true, |next| due < next);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Timer { due, seq, job });
        earliest
    }

    /// The earliest instant a timer is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|t| t.due)
    }

    /// Moves the timers due at `now` (every timer, with `all`) into `due`.
    pub(crate) fn take_due(&mut self, now: Instant, all: bool, due: &mut Vec<Timer>) {
        while self.heap.peek().is_some_and(|t| all || t.due <= now) {
            due.extend(self.heap.pop());
        }
    }
}
