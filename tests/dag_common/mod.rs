//! Helpers shared by the dependency-graph integration tests. None of them sleeps.
#![allow(dead_code)]

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Long enough never to fire on a slow machine; only there to fail instead of hanging.
pub const HANG: Duration = Duration::from_secs(30);

/// A gate that opens once and stays open.
#[derive(Default)]
pub struct Latch {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Latch {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Waits until the latch is open; false if it was not open within `HANG`.
    pub fn wait(&self) -> bool {
        let open = self.open.lock().unwrap();
        let (open, _) = self
            .opened
            .wait_timeout_while(open, HANG, |open| !*open)
            .unwrap();
        *open
    }
}
