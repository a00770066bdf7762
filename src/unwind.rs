//! Panic plumbing: running user code so that no panic escapes into the scheduler, and turning a
//! caught panic payload into the message a job handle reports.
//!
//! A caught payload is user data too: `std::panic::panic_any(x)` makes `x` the payload, and its
//! `Drop` may panic in turn. Dropping a payload right after `catch_unwind` would let that second
//! panic unwind through the scheduler (with a token held and outcomes unrecorded), so every
//! payload caught here is dropped by [`discard`], under `catch_unwind` again.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The message carried by a panic payload: the `&str` or `String` given to `panic!`, or a
/// placeholder for payloads of other types (such as `std::panic::panic_any(42)`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

/// Runs `f`; a panic is caught and comes back as its message, the payload dropped safely.
#[inline]
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = panic_message(&*payload);
        discard(payload);
        message
    })
}

/// Runs `f` and ignores a panic in it: for user code whose failure the scheduler has nowhere to
/// report (completion callbacks, observers). The panic hook has printed the message already.
pub(crate) fn call_quietly(f: impl FnOnce()) {
    let _ignored: Result<(), String> = catch(f);
}

/// Drops a caught panic payload. If its `Drop` panics, that second payload is leaked rather
/// than dropped: it could panic again, and a leak of one allocation in so odd a case is better
/// than a panic with no end.
#[cold]
pub(crate) fn discard(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// Drops each of `values` under `catch_unwind`: a task that never ran may own values whose
/// `Drop` panics, and that panic must not take a worker down or skip the job's bookkeeping.
/// The panic hook has printed the message already.
pub(crate) fn drop_each_quietly<I: IntoIterator>(values: I) {
    for value in values {
        call_quietly(move || drop(value));
    }
}

#[cfg(test)]
mod tests {
    use super::{call_quietly, catch, panic_message};
    use std::panic::catch_unwind;

    #[test]
    fn messages_of_every_payload_kind() {
        let p = catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&*p), "plain");
        let p = catch_unwind(|| panic!("formatted {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*p), "formatted 7");
        let p = catch_unwind(|| std::panic::panic_any(42_u8)).unwrap_err();
        assert_eq!(panic_message(&*p), "<non-string panic payload>");
    }

    /// A payload whose `Drop` panics (with a payload of its own kind, so dropping that one
    /// would panic again).
    struct PanicsOnDrop;

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                std::panic::panic_any(PanicsOnDrop);
            }
        }
    }

    #[test]
    fn a_payload_that_panics_when_dropped_stays_caught() {
        let caught = catch(|| std::panic::panic_any(PanicsOnDrop));
        assert_eq!(caught.unwrap_err(), "<non-string panic payload>");
        call_quietly(|| std::panic::panic_any(PanicsOnDrop));
    }
}
