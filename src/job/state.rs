//! A job's state under its lock: pending tasks, tokens, and every task's outcome.

use std::collections::VecDeque;
use std::task::Waker;

use super::Next;
use crate::error::{JobError, TaskError};

/// The named states of one task's result slot.
pub(crate) enum Slot<T> {
    /// Not finished: pending, or claimed by a worker that has not reported it yet.
    Waiting,
    /// Ran and returned this value.
    Done(T),
    /// Ran and panicked; the message is in `JobState::panics`.
    Panicked,
    /// Never started.
    Cancelled,
    /// Reported and handed to the user already (through `Completions`).
    Taken,
}

/// The outcomes of one chunk of claimed tasks, gathered without a lock and recorded at once.
///
/// Values go in `values` (`None` where a task failed); the rarer failures go on the side, so
/// that for most result types the common path writes one small value per task.
pub(crate) struct ChunkOutcomes<T> {
    pub(crate) values: Vec<Option<T>>,
    /// `(offset in the chunk, failure)`.
    pub(crate) failures: Vec<(usize, Failure)>,
}

/// Why a claimed task has no value.
pub(crate) enum Failure {
    Panicked(String),
    Cancelled,
}

impl<T> ChunkOutcomes<T> {
    pub(crate) fn new() -> Self {
        ChunkOutcomes {
            values: Vec::new(),
            failures: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        self.values.push(Some(value));
    }

    #[cold]
    pub(crate) fn push_failure(&mut self, failure: Failure) {
        self.failures.push((self.values.len(), failure));
        self.values.push(None);
    }
}

/// A completion callback registered with `JobHandle::on_finish`.
pub(crate) type FinishCallback<T> = Box<dyn FnOnce(Result<Vec<T>, JobError<T>>) + Send>;

/// Everything about a job that its lock guards.
pub(crate) struct JobState<F, T> {
    /// Tasks not yet claimed, in submission order; the front one has index `next_index`.
    pub(crate) pending: VecDeque<F>,
    pub(crate) next_index: usize,
    /// Tasks claimed in a chunk but handed back unstarted (the cap was lowered while they
    /// waited in the chunk), as runs of consecutive indices: `(index of the first, tasks)`.
    /// Claimed again before `pending`.
    returned: VecDeque<(usize, VecDeque<F>)>,
    /// The number of tasks in `returned`.
    returned_len: usize,
    /// The number of tasks, fixed at submission.
    total: usize,
    /// Tokens taken: workers running (or between two of) this job's tasks.
    pub(crate) running: usize,
    /// The cap k: at most this many tokens are taken at once.
    pub(crate) cap: usize,
    /// Whether the job has an entry in the run queue, or one is being pushed (README.md).
    pub(crate) queued: bool,
    /// One per task, in submission order.
    pub(crate) slots: Vec<Slot<T>>,
    /// `(index, message)` of every task that panicked.
    pub(crate) panics: Vec<(usize, String)>,
    pub(crate) done: usize,
    pub(crate) panicked: usize,
    pub(crate) cancelled: usize,
    /// The most tokens ever taken at once.
    pub(crate) peak_running: usize,
    /// Threads blocked until the job finishes (`wait`, `wait_timeout`).
    pub(crate) finish_waiters: usize,
    /// Threads blocked until the job reports its next result (`Completions`).
    pub(crate) result_waiters: usize,
    /// Workers blocked inside the job (waiting on it) until a token frees up.
    pub(crate) helpers: usize,
    /// Indices in completion order, kept once a `Completions` iterator exists.
    pub(crate) log: Option<VecDeque<usize>>,
    /// Set once the job's end was reported to the registry and the callback.
    pub(crate) finish_reported: bool,
    pub(crate) on_finish: Option<FinishCallback<T>>,
    /// The waker of the task awaiting the job from async code (a `JobFuture`, or a
    /// `Completions` polled with `poll_next`), left by a poll that found nothing to take, and
    /// taken by whoever gives it something (README.md, rule 8). One slot is enough: awaiting a
    /// `JobHandle` and `completions` both consume it, so a job has at most one async waiter.
    pub(crate) waker: Option<Waker>,
}

impl<F, T> JobState<F, T> {
    pub(crate) fn new(pending: VecDeque<F>, cap: usize) -> Self {
        let total = pending.len();
        let mut slots = Vec::with_capacity(total);
        slots.resize_with(total, || Slot::Waiting);
        JobState {
            pending,
            next_index: 0,
            returned: VecDeque::new(),
            returned_len: 0,
            total,
            running: 0,
            cap,
            queued: false,
            slots,
            panics: Vec::new(),
            done: 0,
            panicked: 0,
            cancelled: 0,
            peak_running: 0,
            finish_waiters: 0,
            result_waiters: 0,
            helpers: 0,
            log: None,
            finish_reported: false,
            on_finish: None,
            waker: None,
        }
    }

    pub(crate) fn total(&self) -> usize {
        self.total
    }

    /// Tasks not claimed (or handed back unstarted).
    #[inline]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len() + self.returned_len
    }

    /// Every task has an outcome.
    pub(crate) fn is_finished(&self) -> bool {
        self.done + self.panicked + self.cancelled == self.total()
    }

    /// A pending task and a free token: the condition for being in the run queue.
    #[inline]
    pub(crate) fn is_runnable(&self) -> bool {
        self.pending_len() > 0 && self.running < self.cap
    }

    /// Takes a token. The caller checked `is_runnable`.
    #[inline]
    pub(crate) fn take_token(&mut self) {
        debug_assert!(self.is_runnable());
        self.running += 1;
        self.peak_running = self.peak_running.max(self.running);
    }

    /// Moves up to `n` pending tasks, of consecutive indices, into `into`; returns the index of
    /// the first.
    #[inline]
    pub(crate) fn claim(&mut self, n: usize, into: &mut Vec<F>) -> usize {
        if let Some((first, run)) = self.returned.front_mut() {
            let index = *first;
            let n = n.min(run.len());
            into.extend(run.drain(..n));
            *first += n;
            self.returned_len -= n;
            if run.is_empty() {
                self.returned.pop_front();
            }
            return index;
        }
        let first = self.next_index;
        let n = n.min(self.pending.len());
        into.extend(self.pending.drain(..n));
        self.next_index += n;
        first
    }

    /// Hands back claimed tasks that never started, the first of index `first`.
    pub(crate) fn hand_back(&mut self, first: usize, tasks: VecDeque<F>) {
        if tasks.is_empty() {
            return;
        }
        self.returned_len += tasks.len();
        let at = self.returned.partition_point(|(i, _)| *i < first);
        self.returned.insert(at, (first, tasks));
    }

    /// Records the outcomes of tasks `first..first + outcomes.values.len()`.
    pub(crate) fn record(&mut self, first: usize, outcomes: &mut ChunkOutcomes<T>) {
        let n = outcomes.values.len();
        let slots = &mut self.slots[first..first + n];
        for (slot, value) in slots.iter_mut().zip(outcomes.values.drain(..)) {
            if let Some(value) = value {
                *slot = Slot::Done(value);
            }
        }
        self.done += n - outcomes.failures.len();
        for (offset, failure) in outcomes.failures.drain(..) {
            let index = first + offset;
            self.slots[index] = match failure {
                Failure::Panicked(message) => {
                    self.panicked += 1;
                    self.panics.push((index, message));
                    Slot::Panicked
                }
                Failure::Cancelled => {
                    self.cancelled += 1;
                    Slot::Cancelled
                }
            };
        }
        if let Some(log) = &mut self.log {
            log.extend(first..first + n);
        }
    }

    /// Marks every pending task cancelled and returns the tasks, to be dropped by the caller
    /// once the lock is released (dropping a task runs user code).
    pub(crate) fn cancel_pending(&mut self) -> VecDeque<F> {
        let mut tasks = VecDeque::new();
        let returned = std::mem::take(&mut self.returned);
        self.returned_len = 0;
        let first = self.next_index;
        let pending = std::mem::take(&mut self.pending);
        self.next_index += pending.len();
        let runs = returned
            .into_iter()
            .chain(std::iter::once((first, pending)));
        for (first, run) in runs {
            for index in first..first + run.len() {
                self.slots[index] = Slot::Cancelled;
                if let Some(log) = &mut self.log {
                    log.push_back(index);
                }
            }
            self.cancelled += run.len();
            tasks.extend(run);
        }
        tasks
    }

    /// The next outcome for a `Completions` consumer: `Ready` with the first task in the log,
    /// `Exhausted` once every task has been reported, `None` while neither (the caller waits).
    pub(crate) fn next_outcome(&mut self) -> Option<Next<T>> {
        match self.log.as_mut().and_then(|log| log.pop_front()) {
            Some(index) => Some(Next::Ready(index, self.take_outcome(index))),
            None => self.is_finished().then_some(Next::Exhausted),
        }
    }

    /// Takes the async waiter's waker if the waiter now has something to take (rule 8), for
    /// the caller to wake once the lock is released. With no async waiter, one branch: this
    /// runs after every recorded chunk.
    #[inline]
    pub(crate) fn waker_to_wake(&mut self) -> Option<Waker> {
        if self.waker.is_some() {
            self.waker_if_news()
        } else {
            None
        }
    }

    /// The waker, if the job finished or (for a `Completions` consumer, the only waiter with a
    /// log) a result waits in the log.
    #[cold]
    fn waker_if_news(&mut self) -> Option<Waker> {
        let news = self.is_finished() || self.log.as_ref().is_some_and(|log| !log.is_empty());
        if news {
            self.waker.take()
        } else {
            None
        }
    }

    /// Starts the completion log with the tasks that finished already, in index order.
    pub(crate) fn start_log(&mut self) {
        if self.log.is_none() {
            let finished = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !matches!(s, Slot::Waiting));
            self.log = Some(finished.map(|(i, _)| i).collect());
        }
    }

    /// Takes the outcome of a finished task out of its slot.
    pub(crate) fn take_outcome(&mut self, index: usize) -> Result<T, TaskError> {
        match std::mem::replace(&mut self.slots[index], Slot::Taken) {
            Slot::Done(value) => Ok(value),
            Slot::Panicked => {
                let message = self
                    .panics
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, m)| m.clone());
                Err(TaskError::Panicked(message.unwrap_or_default()))
            }
            Slot::Cancelled => Err(TaskError::Cancelled),
            Slot::Waiting | Slot::Taken => unreachable!("task {index} has no outcome to take"),
        }
    }

    /// The results of a finished job, in submission order.
    pub(crate) fn take_results(&mut self) -> Result<Vec<T>, JobError<T>> {
        debug_assert!(self.is_finished());
        let slots = std::mem::take(&mut self.slots);
        if self.panicked == 0 && self.cancelled == 0 {
            let values = slots.into_iter().map(|slot| match slot {
                Slot::Done(value) => value,
                _ => unreachable!("a finished job with no failures has only done tasks"),
            });
            return Ok(values.collect());
        }
        let mut panics = std::mem::take(&mut self.panics);
        panics.sort_unstable_by_key(|(i, _)| *i);
        let mut panics = panics.into_iter();
        let results = slots.into_iter().map(|slot| match slot {
            Slot::Done(value) => Ok(value),
            Slot::Panicked => Err(TaskError::Panicked(
                panics.next().map(|(_, m)| m).unwrap_or_default(),
            )),
            Slot::Cancelled => Err(TaskError::Cancelled),
            Slot::Waiting | Slot::Taken => {
                unreachable!("a finished job has an outcome for every task")
            }
        });
        Err(JobError::new(results.collect()))
    }
}
