//! Running one claimed chunk of a job's tasks: the loop a worker spends its time in.
//!
//! It comes in two copies, chosen per chunk by whether anyone listens to the pool's events
//! (`TELL`): the copy for nobody listening has no event code in it at all, since on tasks of a
//! few nanoseconds even a branch per task not taken shows (BENCHMARKS.md, "Observability").

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;

use super::state::{ChunkOutcomes, Failure};
use super::task::{JobContext, Ran, Task};
use super::{JobCore, Mode, TaskGate, TIMED_OUT};
use crate::observe::{EventKind, TaskOutcome};
use crate::scheduler::Registry;
use crate::sync::Instant;
use crate::unwind::{catch, drop_each_quietly};

/// How many of a job's `pending` tasks one token may claim at once (README.md, rule 3), at
/// least one: a token's share of them, `pending / parallelism` rounded up (guided
/// self-scheduling), where `parallelism` is `min(k, N)` with the cap in force; or, while the
/// job's entry waits `aside` (no worker idle, queued jobs go first), all of them but one for
/// each other token. Either way, while there are enough, a task stays pending for every other
/// token.
pub(super) fn share(pending: usize, parallelism: usize, aside: bool) -> usize {
    let parallelism = parallelism.max(1);
    let share = if aside {
        pending.saturating_sub(parallelism - 1)
    } else {
        pending.div_ceil(parallelism)
    };
    share.max(1)
}

/// What a chunk's run needs to know besides its tasks.
pub(super) struct ChunkRun {
    /// The index of the chunk's first task.
    pub(super) first: usize,
    /// The job's `hand_back` counter when the chunk was claimed.
    pub(super) hand_back: u64,
    /// The pool's `yield_requests` as the worker read it before it decided to claim the
    /// chunk, plus the ask its own push of the job made at the claim, if any (README.md,
    /// rule 3).
    pub(super) yield_requests: u64,
    /// The job's `looks` when the chunk was claimed.
    pub(super) looks: u32,
    /// Whether, when the chunk was claimed, nothing stopped the job or the pool and the job's
    /// results were not wanted one by one: while `looks` and `yield_requests` keep their
    /// values, a task may start without a look at anything else.
    pub(super) quiet: bool,
    pub(super) mode: Mode,
}

impl ChunkRun {
    /// Whether the two counters a quiet chunk watches, the job's `looks` and the pool's
    /// `yield_requests`, still have the values the chunk started from (`looks` at its claim,
    /// `yield_requests` before it): then nothing needs the chunk's next task to wait or not
    /// start (rule 3).
    #[inline]
    fn unmoved(&self, gate: &TaskGate, registry: &Registry) -> bool {
        // Both compared, then one branch, not one a counter: on empty tasks the quiet loop is
        // bound by its branches, not by its loads.
        let looks = u64::from(gate.looks.load(Relaxed) ^ self.looks);
        (looks | (registry.yield_requests() ^ self.yield_requests)) == 0
    }
}

impl<F, T> JobCore<F, T>
where
    F: Task<T>,
    T: Send + 'static,
{
    /// Runs the claimed `tasks` in order, gathering their outcomes, until they are all done or
    /// someone needs the rest (they are returned, unstarted, to be handed back): the job's
    /// `hand_back` counter moved, its results are wanted one by one, the pool asked workers to
    /// look up (rule 3), a task failed in a fail-fast job, or a waiting worker's deadline
    /// passed (rule 5). Tasks claimed after the job was cancelled or timed out are not started.
    /// With `TELL`, each task's start and end is told to the pool's listeners.
    #[inline]
    pub(super) fn run_chunk<const TELL: bool>(
        &self,
        tasks: &mut Option<std::vec::Drain<'_, F>>,
        outcomes: &mut ChunkOutcomes<F, T>,
        run: &ChunkRun,
        cx: &JobContext<'_>,
    ) -> Option<VecDeque<F>> {
        let (gate, registry) = (&self.gate, &*self.registry);
        // Two loads before each task while nothing moves; once something did, the full checks
        // before each task of the rest of the chunk (rule 3).
        let mut quiet = run.quiet;
        // The task before which a counter was seen to move, in the quiet loop below.
        let mut moved: Option<F> = None;
        if quiet && Self::QUIET_LOOP && !TELL && !run.mode.has_deadline() {
            loop {
                let before = tasks.as_ref().map_or(0, ExactSizeIterator::len);
                let quiet_run = catch(|| self.run_quiet(tasks, outcomes, run));
                // The tasks the loop took: the ones it ran, and the one it stopped before or
                // that panicked, if any. For tasks that return `()`, it pushed none of their
                // values: they are added here.
                let taken = before - tasks.as_ref().map_or(0, ExactSizeIterator::len);
                match quiet_run {
                    Ok(None) => {
                        outcomes.push_units(taken);
                        return None;
                    }
                    Ok(Some(task)) => {
                        outcomes.push_units(taken - 1);
                        moved = Some(task);
                        break;
                    }
                    // The task that panicked was taken from `tasks`, and nothing pushed for
                    // it: its outcome goes at its offset, and the loop resumes after it.
                    Err(message) => {
                        outcomes.push_units(taken - 1);
                        outcomes.push_failure(Failure::Panicked(message));
                        if self.settings.fail_fast {
                            return Some(tasks.iter_mut().flatten().collect());
                        }
                    }
                }
            }
        }
        let Some(tasks) = tasks else {
            unreachable!("the quiet loop puts the tasks back")
        };
        while let Some(task) = moved.take().or_else(|| tasks.next()) {
            if !(quiet && run.unmoved(gate, registry)) {
                quiet = false;
                let stopped = gate.stopped.load(Relaxed);
                if stopped != 0 || registry.cancelling() {
                    let timed_out = stopped == TIMED_OUT;
                    if TELL {
                        let outcome = match timed_out {
                            true => TaskOutcome::TimedOut,
                            false => TaskOutcome::Cancelled,
                        };
                        let index = run.first + outcomes.len();
                        self.tell_task_ended(index, task.next_attempt(), outcome);
                    }
                    outcomes.push_failure(if timed_out {
                        Failure::TimedOut
                    } else {
                        Failure::Cancelled
                    });
                    drop_each_quietly([task]);
                    continue;
                }
                let started_any = !outcomes.is_empty();
                if gate.hand_back.load(Relaxed) != run.hand_back
                    || (started_any
                        && (gate.results_wanted.load(Relaxed)
                            || registry.yield_requests() != run.yield_requests))
                {
                    return Some(std::iter::once(task).chain(tasks.by_ref()).collect());
                }
            }
            #[cfg(feature = "tracing")]
            let _task_span = tracing::info_span!(
                parent: self.span.as_ref().and_then(|span| span.id()),
                "task",
                job = self.settings.name().map_or("", |name| &**name),
                index = run.first + outcomes.len(),
                attempt = task.next_attempt(),
            )
            .entered();
            let told = TELL.then(|| {
                let (index, attempt) = (run.first + outcomes.len(), task.next_attempt());
                self.tell(EventKind::TaskStarted { index, attempt });
                (index, attempt)
            });
            // A failure for good: with fail-fast, the job stops here and the rest of the
            // chunk is cancelled.
            let failed = if !F::FALLIBLE {
                match catch(|| task.run_plain()) {
                    Ok(value) => {
                        outcomes.push(value);
                        false
                    }
                    Err(message) => {
                        outcomes.push_failure(Failure::Panicked(message));
                        true
                    }
                }
            } else {
                match catch(|| task.run(cx)) {
                    Ok(Ran::Value(value)) => {
                        outcomes.push(value);
                        false
                    }
                    Ok(Ran::Panicked(message)) | Err(message) => {
                        outcomes.push_failure(Failure::Panicked(message));
                        true
                    }
                    Ok(Ran::Failed(failure)) => {
                        outcomes.push_failure(Failure::Failed(failure));
                        true
                    }
                    Ok(Ran::Retry { task, after, cause }) => {
                        outcomes.push_failure(Failure::Retry(task, after, cause));
                        false
                    }
                }
            };
            if let Some((index, attempt)) = told {
                self.tell_task_ended(index, attempt, outcomes.last_outcome());
            }
            if failed && self.settings.fail_fast {
                return Some(tasks.by_ref().collect());
            }
            // A worker waiting with a deadline is the one claimer no one else can ask to
            // hand back: it looks at the clock itself, after each task (rule 5).
            if let Mode::Helping {
                until: Some(deadline),
                ..
            } = run.mode
            {
                if tasks.len() > 0 && Instant::now() >= deadline {
                    return Some(tasks.by_ref().collect());
                }
            }
        }
        None
    }

    /// Whether a chunk's tasks may go through [`Self::run_quiet`]: tasks that cannot fail
    /// other than by panicking, with no span per task.
    const QUIET_LOOP: bool = !F::FALLIBLE && !cfg!(feature = "tracing");

    /// The common case of [`Self::run_chunk`], in a loop of its own with one `catch_unwind`
    /// around it rather than one per task, so that nothing in it is kept in memory across a
    /// task: runs the tasks while the two counters keep the values they had at the claim
    /// (rule 3), and returns the task before which one moved, unstarted. A panic unwinds out
    /// of it with the task that panicked taken from `tasks` and nothing pushed for it. Tasks
    /// that return `()` have nothing pushed at all: the caller adds their values.
    ///
    /// Never inlined: inlined into `run_with_token`, a big function, the loop kept the
    /// counters' addresses and the values to compare them with on the stack and loaded them
    /// again before every task; on its own, it keeps them in registers. One call per chunk.
    ///
    /// Four tasks a turn, each looked at before it starts as any task is. For empty tasks,
    /// the speed of a loop this short depends on where the linker happens to place it
    /// against the 64-byte blocks of the instruction fetch: a loop of one task a turn (40
    /// bytes) took 0.18 or 0.28 ns a task with the same instructions; two a turn took 0.17
    /// in one program and up to a third more than one a turn in another. Four a turn took
    /// 0.17-0.19 in every build measured (BENCHMARKS.md).
    ///
    /// The tasks are taken from `home` into a local for the loop, and put back on every way
    /// out, a panic's included: left behind the pointer, the iterator's state was stored to
    /// memory before every task, since for the compiler the counters' atomic loads may read
    /// any memory. In a local it stays in registers wherever no task can unwind.
    #[inline(never)]
    fn run_quiet(
        &self,
        home: &mut Option<std::vec::Drain<'_, F>>,
        outcomes: &mut ChunkOutcomes<F, T>,
        run: &ChunkRun,
    ) -> Option<F> {
        let mut back = PutBack {
            tasks: home.take(),
            home,
        };
        let tasks = back.tasks.as_mut()?;
        let (gate, registry) = (&self.gate, &*self.registry);
        // `()` values are not pushed: the caller adds them, counted from what was taken from
        // `tasks` (`ChunkOutcomes::push_units` says why). Known at compile time, so the loop
        // for them has no push in it; dropping a `()` is doing nothing.
        let units = ChunkOutcomes::<F, T>::units();
        // Runs `task` unless a counter moved; else gives it back, unstarted.
        let mut run_one = |task: F| {
            if !run.unmoved(gate, registry) {
                return Some(task);
            }
            let value = task.run_plain();
            if !units {
                outcomes.push(value);
            }
            None
        };
        loop {
            // Unrolled by the compiler (four copies of `run_one`), with one look at how many
            // tasks are left for the four.
            if tasks.len() < 4 {
                for task in tasks.by_ref() {
                    if let Some(unstarted) = run_one(task) {
                        return Some(unstarted);
                    }
                }
                return None;
            }
            for task in tasks.by_ref().take(4) {
                if let Some(unstarted) = run_one(task) {
                    return Some(unstarted);
                }
            }
        }
    }
}

/// An iterator taken out of `home`, put back there when dropped: on a return or an unwind.
struct PutBack<'h, I> {
    tasks: Option<I>,
    home: &'h mut Option<I>,
}

impl<I> Drop for PutBack<'_, I> {
    fn drop(&mut self) {
        *self.home = self.tasks.take();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::share;

    proptest! {
        #[test]
        fn a_share_leaves_a_task_pending_for_every_other_token(
            pending in 0usize..10_000,
            parallelism in 0usize..64,
            aside: bool,
        ) {
            let claimed = share(pending, parallelism, aside);
            prop_assert!(claimed >= 1);
            let others = parallelism.saturating_sub(1);
            if pending > others {
                prop_assert!(pending - claimed >= others, "{claimed} of {pending} claimed");
            }
        }

        #[test]
        fn a_share_aside_is_all_but_one_task_for_every_other_token(
            pending in 0usize..10_000,
            parallelism in 1usize..64,
        ) {
            let aside = share(pending, parallelism, true);
            prop_assert!(aside >= share(pending, parallelism, false));
            if pending >= parallelism {
                prop_assert_eq!(aside, pending - (parallelism - 1));
            }
        }
    }
}
