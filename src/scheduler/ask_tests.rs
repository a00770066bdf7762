//! The asks to look up from chunks (rule 3 of README.md): which of them a push reports as its
//! own, for its worker not to count as news.

use std::sync::Arc;
use std::time::Duration;

use super::key_job::Key;
use super::Registry;

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
