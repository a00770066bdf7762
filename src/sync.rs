//! The synchronization primitives the scheduler is built from, in one place.
//!
//! Every lock, condition variable, atomic and thread the scheduler uses comes from this module.
//! Normal builds use `parking_lot` and `std`; under `--cfg loom` the same names resolve to
//! [loom]'s model-checked versions, so the loom tests in `tests/loom.rs` explore the real
//! scheduler code rather than a copy of it (the approach of `tokio/src/loom/` and
//! `crossbeam-utils`).
//!
//! The wrappers give both back ends one shape: `lock()` returns the guard directly (a panicking
//! task never runs while a scheduler lock is held, so there is no poisoning to report), and
//! `Condvar::wait` takes and returns the guard, as `std` does.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
    };
    pub(crate) use std::thread;
    pub(crate) use std::time::Instant;

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    /// A mutual-exclusion lock (`parking_lot::Mutex`).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable (`parking_lot::Condvar`).
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(parking_lot::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Waits until notified or until `deadline`; spurious wake-ups are possible.
        pub(crate) fn wait_until<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            deadline: Instant,
        ) -> MutexGuard<'a, T> {
            self.0.wait_until(&mut guard, deadline);
            guard
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
    };
    pub(crate) use loom::thread;

    /// loom explores every interleaving of a deterministic model, so the scheduler's clock
    /// must not depend on real time. Under loom each thread has a logical clock of its own that
    /// every reading moves on by 1 µs: time passes as a thread works, the same way in every
    /// replay of a schedule. Chunks then grow (a chunk lasts a microsecond or two, under the
    /// chunk target), a job that has run has more service than one that has not, and a time
    /// slice of a few microseconds ends after a few chunks, so a model can make a worker yield
    /// exactly where it wants by its choice of slice.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub(crate) struct Instant(std::time::Duration);

    loom::thread_local! {
        static CLOCK: std::cell::Cell<std::time::Duration> =
            std::cell::Cell::new(std::time::Duration::ZERO);
    }

    impl Instant {
        pub(crate) fn now() -> Instant {
            CLOCK.with(|clock| {
                let now = clock.get() + std::time::Duration::from_micros(1);
                clock.set(now);
                Instant(now)
            })
        }

        pub(crate) fn saturating_duration_since(&self, earlier: Instant) -> std::time::Duration {
            self.0.saturating_sub(earlier.0)
        }

        pub(crate) fn checked_add(&self, d: std::time::Duration) -> Option<Instant> {
            self.0.checked_add(d).map(Instant)
        }
    }

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    /// A mutual-exclusion lock (loom's model of `std::sync::Mutex`).
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }

    /// A condition variable (loom's model of `std::sync::Condvar`).
    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap()
        }

        /// loom has no clock: a timed wait is a plain wait that may wake spuriously.
        pub(crate) fn wait_until<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _deadline: Instant,
        ) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap()
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

pub(crate) use imp::*;

/// The scheduler's instant for a `std` instant the user gave (a deadline).
#[cfg(not(loom))]
pub(crate) fn from_std(at: std::time::Instant) -> Instant {
    at
}

/// The scheduler's instant for a `std` instant the user gave (a deadline): under loom, as far
/// from this thread's logical now as it is from the real now.
#[cfg(loom)]
pub(crate) fn from_std(at: std::time::Instant) -> Instant {
    let now = Instant::now();
    now.checked_add(at.saturating_duration_since(std::time::Instant::now()))
        .unwrap_or(now)
}

#[cfg(not(loom))]
pub(crate) use std::thread_local;

#[cfg(loom)]
pub(crate) use loom::thread_local;

/// The `std` instant for a scheduler's instant, for what users see (an event's times).
#[cfg(not(loom))]
pub(crate) fn to_std(at: Instant) -> std::time::Instant {
    at
}

/// The `std` instant for a scheduler's instant: under loom, as far from the real now as it is
/// from this thread's logical now.
#[cfg(loom)]
pub(crate) fn to_std(at: Instant) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(at.saturating_duration_since(Instant::now()))
        .unwrap_or(now)
}
