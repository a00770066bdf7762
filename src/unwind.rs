//! Panic plumbing: turning a caught panic payload into the message a job handle reports.

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

/// Drops each of `values` under `catch_unwind`: a task that never ran may own values whose
/// `Drop` panics, and that panic must not take a worker down or skip the job's bookkeeping.
/// The panic hook has printed the message already.
pub(crate) fn drop_each_quietly<I: IntoIterator>(values: I) {
    for value in values {
        let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;
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
}
