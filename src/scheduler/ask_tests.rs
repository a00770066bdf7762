//! The asks to look up from chunks (rule 3 of README.md): which of them a push reports as its
//! own, for its worker not to count as news.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::key_job::Key;
use super::Registry;
use crate::sync::Instant;

/// A worker pushes its job (key 5) into an empty queue while no worker is idle: the job goes
/// first and asks the busy workers to look up, and the push reports that ask as its own. The
/// push also moves in a job left in the inbox (key 3; left there while a job of key 1 was
/// queued, which a pop took meanwhile), which goes first in turn and asks too. That ask is not
/// the pushing worker's: its next chunk, which watches for a change from what it read before
/// plus its own ask, must see it.
#[test]
fn a_push_reports_its_own_ask_and_not_an_inbox_jobs() {
    let registry = Registry::new(1, Duration::from_micros(100), 16);
    registry.inbox.push(Arc::new(Key(3)), 3);
    let seen = registry.yield_requests_seen();
    let asked = registry.push(Arc::new(Key(5)), 5);
    assert!(
        asked,
        "a job pushed into an empty queue went first and did not ask"
    );
    let watched = seen + u64::from(asked);
    assert_ne!(
        registry.yield_requests(),
        watched,
        "the inbox job's ask is counted as the pushing worker's own"
    );
    assert_eq!(registry.yield_requests(), seen + 2);
}

/// One step of a registry's life, as its threads take them one at a time.
#[derive(Debug, Clone)]
enum Step {
    /// A worker pushes a job of this key (a free token of its job, at its claim).
    Push(u64),
    /// A submission to a busy pool leaves a job of this key in the inbox, before its second
    /// look at the queued minimum (rule 12): the minimum it read first may have been raised
    /// since by a pop, so the key may be below it until the submitter looks again.
    Inbox(u64),
    /// A worker's look for work: the inbox moved in, a pop, the new minimum published.
    Pop,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u64..8).prop_map(Step::Push),
        (0u64..8).prop_map(Step::Inbox),
        Just(Step::Pop),
    ]
}

proptest! {
    /// Whatever came before, with no worker idle, a push reports an ask exactly when its job
    /// went below the queued minimum, and then the counter moved by that ask and by one more
    /// if a job of the inbox went below the pushed one in turn; a push that does not go first
    /// moves nothing. The published minimum is always the queue's.
    #[test]
    fn a_push_reports_an_ask_exactly_when_its_job_goes_first(
        steps in proptest::collection::vec(step(), 0..40),
    ) {
        let registry = Registry::new(1, Duration::from_micros(100), 16);
        // The keys in the inbox, as this test put them there.
        let mut inbox: Vec<u64> = Vec::new();
        for step in steps {
            let min = registry.queued_min.load(Relaxed);
            match step {
                Step::Push(key) => {
                    let before = registry.yield_requests();
                    let asked = registry.push(Arc::new(Key(key)), key);
                    prop_assert_eq!(asked, key < min);
                    let inbox_went_first = asked && inbox.iter().any(|&k| k < key);
                    prop_assert_eq!(
                        registry.yield_requests() - before,
                        u64::from(asked) + u64::from(inbox_went_first)
                    );
                }
                Step::Inbox(key) => {
                    registry.inbox.push(Arc::new(Key(key)), key);
                    inbox.push(key);
                }
                Step::Pop => {
                    let mut shared = registry.shared.lock();
                    registry.drain(&mut shared);
                    let mut dead = Vec::new();
                    let popped = shared.queue.pop(Instant::now(), &mut dead);
                    registry.publish_min(&mut shared);
                    drop(shared);
                    drop(popped);
                }
            }
            if registry.inbox.is_empty() {
                inbox.clear();
            }
            let queued = registry.shared.lock().queue.min_key();
            prop_assert_eq!(registry.queued_min.load(Relaxed), queued);
        }
    }
}
