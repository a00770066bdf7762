//! Waiting for a job: blocking until it finishes or reports a result, and, on one of the
//! pool's own workers, running its tasks meanwhile (README.md, rule 5), firing the pool's
//! timers when the waiting worker may be the only one awake to do it (rule 9).

use std::sync::Arc;

use super::state::JobState;
use super::task::Task;
use super::{JobCore, Mode};
use crate::limit;
use crate::scheduler::worker;
use crate::sync::{Condvar, Instant, MutexGuard};

/// What a thread blocked on a job waits for, which decides what wakes it.
#[derive(Clone, Copy)]
pub(super) enum Awaited {
    /// The job's end (`wait`, `wait_timeout`).
    Finish,
    /// The job's next result (`Completions`).
    Result,
}

/// The count a blocked thread is in. A worker waiting for the job to finish waits for a free
/// token (to help) or the end (`helpers`); any thread waiting for a result is woken by every
/// result and every token returned (`result_waiters`), so a worker also helps when it can.
fn waiter_count<F, T>(st: &mut JobState<F, T>, helping: bool, awaited: Awaited) -> &mut u32 {
    match (helping, awaited) {
        (true, Awaited::Finish) => &mut st.helpers,
        (false, Awaited::Finish) => &mut st.finish_waiters,
        (_, Awaited::Result) => &mut st.result_waiters,
    }
}

impl<F, T> JobCore<F, T>
where
    F: Task<T>,
    T: Send + 'static,
{
    /// Blocks until the job is finished or `deadline` passes; returns whether it finished.
    pub(super) fn wait_until(self: &Arc<Self>, deadline: Option<Instant>) -> bool {
        self.wait_for(deadline, Awaited::Finish, |st| {
            st.is_finished().then_some(())
        })
        .is_some()
    }

    /// Blocks until `ready` finds what the caller waits for (and returns it), or until
    /// `deadline` passes (`None`). `awaited` says which notifications wake the caller.
    ///
    /// On one of the pool's own workers this does not block while the job has a pending task
    /// and a free token: the worker runs the job's tasks itself (rule 5), so a task can wait
    /// on a sub-job even in a pool of one thread.
    pub(super) fn wait_for<R>(
        self: &Arc<Self>,
        deadline: Option<Instant>,
        awaited: Awaited,
        mut ready: impl FnMut(&mut JobState<F, T>) -> Option<R>,
    ) -> Option<R> {
        let helping = self.registry.is_current_worker();
        if helping && worker::RunningJob::is_running_here(self.id()) {
            panic!(
                "a task waited on its own job, or on a job one of whose tasks is waiting for \
                 this one: the job cannot finish while the task waits, so the wait would never end"
            );
        }
        let mut st = self.state.lock();
        // A worker runs at least one chunk of the job before it looks at the clock, so a wait
        // of any length (zero included) makes progress: a task that polls a sub-job with
        // `wait_timeout(Duration::ZERO)` in a loop gets it done, even on a pool of one thread.
        let mut helped = false;
        loop {
            if let Some(found) = ready(&mut st) {
                return Some(found);
            }
            let now = Instant::now();
            // A worker fires due timers before it decides anything: a poll with a zero timeout
            // from the only worker must still bring back a retry or a start slot (rule 9).
            if helping && self.registry.timer_due(now) {
                drop(st);
                self.registry.fire_timers(now);
                st = self.state.lock();
                continue;
            }
            let expired = deadline.is_some_and(|d| now >= d);
            if helping && self.may_run_lent(&st) && !(expired && helped) {
                match self.take_token(&mut st) {
                    Ok(slots) => {
                        let one_chunk = matches!(awaited, Awaited::Result);
                        let mode = Mode::Helping {
                            until: deadline,
                            one_chunk,
                        };
                        self.run_with_token(st, mode, now, slots);
                        helped = true;
                    }
                    Err(released) => {
                        // Held by a full limiter, which releases it when a slot frees up.
                        drop(st);
                        limit::release(released);
                    }
                }
                st = self.state.lock();
                continue;
            }
            if expired {
                return None;
            }
            if helping {
                // This worker could take a token and run the job's tasks.
                self.ask_if_a_token_is_idle(&st);
            }
            let condvar = match (helping, awaited) {
                (true, Awaited::Finish) => &self.token_freed,
                _ => &self.progress,
            };
            // A worker blocked here may be the only one awake to fire timers, among them the
            // ones this job waits for (a retry, a start slot): it wakes for the earliest and
            // fires what is due (rule 9).
            let until = match (helping, self.registry.next_timer()) {
                (true, Some(timer)) => Some(deadline.map_or(timer, |d| d.min(timer))),
                _ => deadline,
            };
            *waiter_count(&mut st, helping, awaited) += 1;
            st = self.block(st, condvar, until);
            *waiter_count(&mut st, helping, awaited) -= 1;
            if helping && self.registry.timer_due(Instant::now()) {
                drop(st);
                self.registry.fire_timers(Instant::now());
                st = self.state.lock();
            }
        }
    }

    fn block<'a>(
        &self,
        st: MutexGuard<'a, JobState<F, T>>,
        condvar: &Condvar,
        deadline: Option<Instant>,
    ) -> MutexGuard<'a, JobState<F, T>> {
        match deadline {
            Some(deadline) => condvar.wait_until(st, deadline),
            None => condvar.wait(st),
        }
    }
}
