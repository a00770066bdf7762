//! A job that is only a key, for the registry's own tests: it runs nothing and never
//! finishes.

use std::sync::Arc;

use super::Schedulable;
use crate::sync::Instant;

/// A job that is only a key.
pub(super) struct Key(pub(super) u64);

impl Schedulable for Key {
    fn run_popped(self: Arc<Self>, _now: Instant) {}

    fn key(&self) -> u64 {
        self.0
    }

    fn on_timer(self: Arc<Self>, _now: Instant) {}

    fn is_finished(&self) -> bool {
        false
    }
}
