//! Admission to a busy pool (rule 12 of README.md) when accepting the job unwinds.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use super::key_job::Key;
use super::Registry;

/// A job of key 5 is queued and no worker is idle, so a job of key 7 takes the inbox's way,
/// which counts it live before it is accepted. If accepting it unwinds, the count goes back:
/// a count left behind would keep `shutdown`'s workers waiting for a job that never was.
#[test]
fn a_submission_to_a_busy_pool_that_unwinds_is_not_counted_live() {
    let registry = Registry::new(1, Duration::from_micros(100), 16);
    registry.push(Arc::new(Key(5)), 5);
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        registry.admit(Some(Arc::new(Key(7))), || panic!("accepting unwinds"))
    }));
    assert!(unwound.is_err());
    assert_eq!(registry.live_jobs.load(SeqCst), 0);
    assert!(
        registry.inbox.is_empty(),
        "a job not accepted is in the inbox"
    );
}
