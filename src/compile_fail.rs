//! Compile-fail doctests: the `Send` and `'static` rules of the pool's API, pinned so that a
//! change to a signature that loosens them fails `cargo test --doc` (as rayon-core's
//! `src/compile_fail/` does). Nothing here is API; the module only holds doc tests.
//!
//! The control case compiles: a task capturing owned, `Send` data and returning a `Send`
//! value is accepted.
//!
//! ```
//! use std::sync::Arc;
//! let pool = jobpool::Pool::new(1);
//! let shared = Arc::new(vec![1, 2, 3]);
//! let job = pool.submit((0..3).map(|i| { let shared = shared.clone(); move || shared[i] }), 1);
//! assert_eq!(job.wait().unwrap(), vec![1, 2, 3]);
//! ```
//!
//! A task must be `Send`: it runs on a worker thread. An `Rc` cannot cross threads.
//!
//! ```compile_fail,E0277
//! use std::rc::Rc;
//! let pool = jobpool::Pool::new(1);
//! let rc = Rc::new(5);
//! let _job = pool.submit(vec![move || *rc], 1);
//! ```
//!
//! A task's result must be `Send`: it is handed back to the thread that waits.
//!
//! ```compile_fail,E0277
//! use std::rc::Rc;
//! let pool = jobpool::Pool::new(1);
//! let _job = pool.submit(vec![|| Rc::new(5)], 1);
//! ```
//!
//! A task must be `'static`: it may outlive the stack frame that submitted it (a detached job
//! runs on after its handle is dropped), so it cannot borrow from that frame.
//!
//! ```compile_fail,E0597
//! let pool = jobpool::Pool::new(1);
//! let local = vec![1, 2, 3];
//! let borrowed = &local;
//! let _job = pool.submit(vec![move || borrowed.len()], 1);
//! ```
//!
//! `try_submit` has the same rules.
//!
//! ```compile_fail,E0277
//! use std::rc::Rc;
//! let pool = jobpool::Pool::new(1);
//! let rc = Rc::new(5);
//! let _job = pool.try_submit(vec![move || *rc], 1);
//! ```
//!
//! An `on_finish` callback runs on a worker thread, so it must be `Send` too.
//!
//! ```compile_fail,E0277
//! use std::rc::Rc;
//! let pool = jobpool::Pool::new(1);
//! let rc = Rc::new(5);
//! pool.submit(vec![|| 1], 1).on_finish(move |_| drop(rc));
//! ```
//!
//! ... and `'static`.
//!
//! ```compile_fail,E0597
//! let pool = jobpool::Pool::new(1);
//! let mut total = 0;
//! let sum = &mut total;
//! pool.submit(vec![|| 1], 1).on_finish(move |r| *sum += r.unwrap()[0]);
//! ```
