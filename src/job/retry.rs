//! A job's retry policy: how many attempts a failing task gets, how long it waits between them,
//! and which errors are worth another attempt.

use std::error::Error;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::error::GaveUp;

/// Decides which errors are worth retrying.
type RetryIf = Arc<dyn Fn(&(dyn Error + 'static)) -> bool + Send + Sync>;

/// How a job retries its failing tasks: at most [`attempts`](Retry::attempts) runs per task,
/// with exponential backoff and jitter between them, only for errors that
/// [`retry_if`](Retry::retry_if) finds worth it, and with at most
/// [`max_waiting`](Retry::max_waiting) of the job's tasks waiting to be retried at once.
///
/// A task waiting for its next attempt holds no worker and no token: it sits in the pool's
/// timers until it is due, then goes back to its job's pending tasks and runs within the job's
/// cap (and limits) like any other.
///
/// The delay before attempt `n + 1` is `initial * factor^(n - 1)`, at most `max`, then
/// shortened by a random fraction of up to [`jitter`](Retry::jitter) of itself (half, unless
/// set), so that tasks that failed together do not all come back in the same instant.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jobpool::{Pool, Retry, TaskContext};
///
/// let pool = Pool::new(2);
/// let flaky = |cx: &TaskContext| -> Result<u32, String> {
///     if cx.attempt() < 3 { Err(format!("try {} failed", cx.attempt())) } else { Ok(7) }
/// };
/// let policy = Retry::attempts(5).backoff(Duration::from_millis(1), 2.0, Duration::from_millis(50));
/// let job = pool.job().cap(2).retry(policy).submit_fallible(vec![flaky; 4]);
/// assert_eq!(job.wait().unwrap(), vec![7; 4]);
/// ```
#[derive(Clone)]
pub struct Retry {
    attempts: u32,
    initial: Duration,
    factor: f64,
    max: Duration,
    jitter: f64,
    retry_panics: bool,
    max_waiting: usize,
    retry_if: Option<RetryIf>,
}

/// What to do with a task whose attempt failed.
pub(crate) enum Decision {
    /// Run it again after this long.
    After(Duration),
    /// Report it failed.
    GiveUp(GaveUp),
}

impl Retry {
    /// At most `attempts` runs per task, the first included (so `attempts(1)` never retries),
    /// with the default backoff: 100 ms, doubling, at most 10 s, jittered by up to half.
    ///
    /// # Panics
    ///
    /// If `attempts` is 0: a task runs at least once.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = jobpool::Retry::attempts(3);
    /// assert_eq!(policy.max_attempts(), 3);
    /// ```
    pub fn attempts(attempts: u32) -> Retry {
        assert!(
            attempts > 0,
            "Retry::attempts(0): a task runs at least once"
        );
        Retry {
            attempts,
            initial: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.5,
            retry_panics: false,
            max_waiting: usize::MAX,
            retry_if: None,
        }
    }

    /// Exponential backoff: the first retry waits `initial`, each next one `factor` times
    /// longer, never more than `max` (before jitter).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = jobpool::Retry::attempts(4)
    ///     .backoff(Duration::from_millis(10), 3.0, Duration::from_millis(50))
    ///     .jitter(0.0);
    /// let delays: Vec<_> = (1..4).map(|n| policy.delay_after(n)).collect();
    /// assert_eq!(delays, [10, 30, 50].map(Duration::from_millis));
    /// ```
    pub fn backoff(mut self, initial: Duration, factor: f64, max: Duration) -> Retry {
        self.initial = initial;
        self.factor = if factor.is_finite() && factor >= 1.0 {
            factor
        } else {
            1.0
        };
        self.max = max.max(initial);
        self
    }

    /// The largest fraction (0 to 1) by which each delay is shortened at random; 0.5 unless
    /// set. Tasks that failed at the same moment then come back spread over half the delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = jobpool::Retry::attempts(2).backoff(Duration::from_millis(100), 2.0, Duration::from_secs(1)).jitter(1.0);
    /// assert!(policy.delay_after(1) <= Duration::from_millis(100));
    /// ```
    pub fn jitter(mut self, fraction: f64) -> Retry {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Retries only the errors for which `worth_it` returns `true`; any other error is
    /// reported at once as permanent ([`GaveUp::Permanent`]). The error is the one the task
    /// returned, converted to `dyn Error`: `downcast_ref` reads it as its own type. Without
    /// it, every error is retried.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{GaveUp, Pool, Retry, TaskContext};
    ///
    /// #[derive(Debug)]
    /// enum ApiError { Busy, Unlinked }
    /// impl std::fmt::Display for ApiError {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") }
    /// }
    /// impl std::error::Error for ApiError {}
    ///
    /// let policy = Retry::attempts(5)
    ///     .backoff(std::time::Duration::ZERO, 1.0, std::time::Duration::ZERO)
    ///     .retry_if(|e| !matches!(e.downcast_ref::<ApiError>(), Some(ApiError::Unlinked)));
    /// let pool = Pool::new(1);
    /// let job = pool.job().retry(policy).submit_fallible(vec![
    ///     |_: &TaskContext| -> Result<(), ApiError> { Err(ApiError::Unlinked) },
    ///     |_: &TaskContext| -> Result<(), ApiError> { Err(ApiError::Busy) },
    /// ]);
    /// let err = job.wait().unwrap_err();
    /// let failures: Vec<_> = err.failures().map(|(i, f)| (i, f.attempts(), f.gave_up())).collect();
    /// assert_eq!(failures, [(0, 1, GaveUp::Permanent), (1, 5, GaveUp::AttemptsUsedUp)]);
    /// ```
    pub fn retry_if<P>(mut self, worth_it: P) -> Retry
    where
        P: Fn(&(dyn Error + 'static)) -> bool + Send + Sync + 'static,
    {
        self.retry_if = Some(Arc::new(worth_it));
        self
    }

    /// Whether a task that panics is retried too (it is not, unless set): its panic counts as
    /// a failed attempt, and a panic on the last attempt is reported as
    /// [`TaskError::Panicked`](crate::TaskError::Panicked).
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = jobpool::Retry::attempts(3).retry_panics(true);
    /// # drop(policy);
    /// ```
    pub fn retry_panics(mut self, yes: bool) -> Retry {
        self.retry_panics = yes;
        self
    }

    /// The job's retry budget: at most `n` of its tasks wait to be retried at once. A task
    /// that fails while `n` others wait is not retried but reported failed
    /// ([`GaveUp::RetryBudget`]), so that a service that fails every request does not get a
    /// storm of retries back. Unbounded unless set.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = jobpool::Retry::attempts(5).max_waiting(10);
    /// # drop(policy);
    /// ```
    pub fn max_waiting(mut self, n: usize) -> Retry {
        self.max_waiting = n;
        self
    }

    /// The most runs a task gets, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay before the retry that follows failed attempt `attempt` (from 1), before
    /// jitter.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(1024) as i32;
        let secs = self.initial.as_secs_f64() * self.factor.powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The most tasks of the job waiting to be retried at once.
    pub(crate) fn budget(&self) -> usize {
        self.max_waiting
    }

    /// What follows failed attempt `attempt` of task `index`, which returned `error` (or
    /// panicked, `error == None`).
    pub(crate) fn decide(
        &self,
        error: Option<&(dyn Error + 'static)>,
        attempt: u32,
        seed: u64,
    ) -> Decision {
        match error {
            None if !self.retry_panics => return Decision::GiveUp(GaveUp::AttemptsUsedUp),
            Some(error)
                if self
                    .retry_if
                    .as_ref()
                    .is_some_and(|worth_it| !worth_it(error)) =>
            {
                return Decision::GiveUp(GaveUp::Permanent)
            }
            _ => {}
        }
        if attempt >= self.attempts {
            return Decision::GiveUp(GaveUp::AttemptsUsedUp);
        }
        let delay = self.delay_after(attempt);
        let cut = self.jitter * unit_random(seed);
        Decision::After(delay.mul_f64(1.0 - cut))
    }
}

/// A number in `[0, 1)` drawn from `seed` and a per-process random key: cheap, and different
/// for every task, attempt and run of the program.
fn unit_random(seed: u64) -> f64 {
    use std::sync::OnceLock;
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut hasher = KEYS.get_or_init(Default::default).build_hasher();
    hasher.write_u64(seed);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("attempts", &self.attempts)
            .field("initial", &self.initial)
            .field("factor", &self.factor)
            .field("max", &self.max)
            .field("jitter", &self.jitter)
            .field("retry_panics", &self.retry_panics)
            .field("max_waiting", &self.max_waiting)
            .field("retry_if", &self.retry_if.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_maximum_and_jitter_only_shortens_them() {
        let policy =
            Retry::attempts(10).backoff(Duration::from_millis(10), 2.0, Duration::from_millis(100));
        let delays: Vec<_> = (1..=6).map(|n| policy.delay_after(n).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 100, 100]);
        for seed in 0..1000 {
            let Decision::After(d) = policy.decide(Some(&fmt::Error), 3, seed) else {
                panic!("retried")
            };
            assert!(d <= Duration::from_millis(40) && d >= Duration::from_millis(20));
        }
    }

    #[test]
    fn jitter_spreads_tasks_that_failed_together() {
        let policy =
            Retry::attempts(2).backoff(Duration::from_secs(1), 1.0, Duration::from_secs(1));
        let mut delays: Vec<_> = (0..100)
            .map(|seed| match policy.decide(Some(&fmt::Error), 1, seed) {
                Decision::After(d) => d,
                Decision::GiveUp(_) => unreachable!(),
            })
            .collect();
        delays.sort();
        delays.dedup();
        assert!(delays.len() > 90, "only {} distinct delays", delays.len());
    }

    #[test]
    fn panics_are_retried_only_when_asked() {
        let policy = Retry::attempts(3);
        assert!(matches!(
            policy.decide(None, 1, 0),
            Decision::GiveUp(GaveUp::AttemptsUsedUp)
        ));
        assert!(matches!(
            policy.retry_panics(true).decide(None, 1, 0),
            Decision::After(_)
        ));
    }

    #[test]
    fn the_last_attempt_gives_up() {
        let policy = Retry::attempts(2);
        assert!(matches!(
            policy.decide(Some(&fmt::Error), 1, 0),
            Decision::After(_)
        ));
        assert!(matches!(
            policy.decide(Some(&fmt::Error), 2, 0),
            Decision::GiveUp(GaveUp::AttemptsUsedUp)
        ));
    }
}
