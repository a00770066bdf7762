//! A rate of task starts, enforced by the generic cell rate algorithm (GCRA).
//!
//! GCRA keeps one instant per limiter, the *theoretical arrival time* `tat`: when the next
//! start would be due if starts came exactly at the rate. A start at `now` conforms when
//! `tat - now <= tolerance`, where the tolerance `(burst - 1) * interval` lets `burst` starts
//! through at once after a quiet spell; a conforming start moves `tat` to
//! `max(tat, now) + interval`. So in any window of length `w`, at most `burst + w / interval`
//! starts conform. It is the token bucket's behaviour with one number of state and no refill
//! loop, which is why it is written here in a few lines under the limiter's lock rather than
//! taken from a crate (`governor` implements the same algorithm lock-free, but our limiter
//! needs a lock anyway for its shared cap and its list of waiting jobs, and the check is one
//! comparison and one addition).

use std::fmt;
use std::time::Duration;

use crate::sync::Instant;

/// A rate limit: at most `starts` task starts per `per`, with bursts of up to `burst` starts at
/// once (1 unless set: starts then come at most one per `per / starts`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jobpool::Rate;
///
/// let rate = Rate::per_second(10).burst(3);
/// assert_eq!(rate.interval(), Duration::from_millis(100));
/// assert_eq!(rate.to_string(), "10 per 1s, bursts of 3");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    starts: u32,
    per: Duration,
    burst: u32,
}

impl Rate {
    /// At most `starts` starts per `per`.
    ///
    /// # Panics
    ///
    /// If `starts` is 0 (no task could ever start) or `per` is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let rate = jobpool::Rate::new(5, Duration::from_millis(500));
    /// assert_eq!(rate.interval(), Duration::from_millis(100));
    /// ```
    pub fn new(starts: u32, per: Duration) -> Rate {
        assert!(starts > 0, "Rate::new(0, ..): no task could ever start");
        assert!(!per.is_zero(), "Rate::new(.., 0s): a rate needs a period");
        Rate {
            starts,
            per,
            burst: 1,
        }
    }

    /// At most `starts` starts per second.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(jobpool::Rate::per_second(4).interval(), std::time::Duration::from_millis(250));
    /// ```
    pub fn per_second(starts: u32) -> Rate {
        Rate::new(starts, Duration::from_secs(1))
    }

    /// Lets up to `burst` starts through at once after a quiet spell (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(jobpool::Rate::per_second(1).burst(5).burst_size(), 5);
    /// ```
    pub fn burst(mut self, burst: u32) -> Rate {
        self.burst = burst.max(1);
        self
    }

    /// The time between two starts at the steady rate: `per / starts`.
    pub fn interval(&self) -> Duration {
        self.per / self.starts
    }

    /// The most starts let through at once.
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The most starts at once beyond the first, as time.
    fn tolerance(&self) -> Duration {
        self.interval() * (self.burst - 1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {:?}", self.starts, self.per)?;
        if self.burst > 1 {
            write!(f, ", bursts of {}", self.burst)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The state of one rate limit.
#[derive(Debug)]
pub(crate) struct Gcra {
    rate: Rate,
    /// The theoretical arrival time of the next start; `None` before the first.
    tat: Option<Instant>,
}

impl Gcra {
    pub(crate) fn new(rate: Rate) -> Self {
        Gcra { rate, tat: None }
    }

    pub(crate) fn rate(&self) -> Rate {
        self.rate
    }

    /// A new rate, applied from the next start on. The debt of starts made at the old rate
    /// is forgiven: the new rate starts afresh, its burst available at once.
    pub(crate) fn set_rate(&mut self, rate: Rate) {
        self.rate = rate;
        self.tat = None;
    }

    /// Takes a start slot at `now`, or says when the next one will be free. The slot taken
    /// can be given back (`give_back`) while no other was taken since.
    pub(crate) fn try_start(&mut self, now: Instant) -> Result<Slot, Instant> {
        let tat = match self.tat {
            Some(tat) if tat > now => tat,
            _ => now,
        };
        let ahead = tat.saturating_duration_since(now);
        let tolerance = self.rate.tolerance();
        if ahead > tolerance {
            // Free once `tat - tolerance` is reached.
            let wait = ahead - tolerance;
            return Err(now.checked_add(wait).unwrap_or(tat));
        }
        let before = self.tat;
        self.tat = tat.checked_add(self.rate.interval()).or(Some(tat));
        Ok(Slot {
            before,
            after: self.tat,
        })
    }

    /// Undoes the start that took `slot` (its task did not start after all), if it was the
    /// last one taken and the rate was not changed since. Otherwise the slot stays used: the
    /// rate is then kept by a margin of one start, never exceeded. (Moving `tat` back by one
    /// interval regardless could let two starts through at once: a start after a quiet spell
    /// sets `tat` from `now`, not from the slot given back.)
    pub(crate) fn give_back(&mut self, slot: Slot) {
        if self.tat == slot.after {
            self.tat = slot.before;
        }
    }
}

/// A start slot taken from a rate: what `tat` was before and after, to undo it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    before: Option<Instant>,
    after: Option<Instant>,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_slot_given_back_is_free_again_only_if_it_was_the_last_taken() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut gcra = Gcra::new(Rate::new(10, Duration::from_secs(1)));
        let first = gcra.try_start(at(0)).unwrap();
        assert_eq!(gcra.try_start(at(0)).unwrap_err(), at(100));
        gcra.give_back(first);
        let again = gcra.try_start(at(0)).unwrap();
        // Taken at 100 ms after `again`, a slot makes `again` not the last: it stays used.
        assert!(gcra.try_start(at(100)).is_ok());
        gcra.give_back(again);
        assert_eq!(gcra.try_start(at(150)).unwrap_err(), at(200));
    }

    #[test]
    fn a_burst_then_the_steady_rate() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut gcra = Gcra::new(Rate::new(10, Duration::from_secs(1)).burst(3));
        for _ in 0..3 {
            assert!(gcra.try_start(at(0)).is_ok());
        }
        // The fourth start is due once the first slot has been paid back: 100 ms later.
        assert_eq!(gcra.try_start(at(0)), Err(at(100)));
        assert!(gcra.try_start(at(100)).is_ok());
        assert_eq!(gcra.try_start(at(150)), Err(at(200)));
        // After a quiet second the whole burst is back.
        for _ in 0..3 {
            assert!(gcra.try_start(at(2000)).is_ok());
        }
        assert!(gcra.try_start(at(2000)).is_err());
    }

    #[test]
    fn no_window_has_more_than_the_burst_plus_the_rate() {
        let start = Instant::now();
        let rate = Rate::new(3, Duration::from_millis(30)).burst(2);
        let mut gcra = Gcra::new(rate);
        let mut starts = Vec::new();
        // Ask every millisecond for a second, as a busy pool would.
        for ms in 0..1000u64 {
            let now = start + Duration::from_millis(ms);
            while gcra.try_start(now).is_ok() {
                starts.push(ms);
            }
        }
        let interval = rate.interval().as_millis() as u64;
        for (i, &from) in starts.iter().enumerate() {
            for window in [1u64, 10, 25, 100, 500] {
                let n = starts[i..]
                    .iter()
                    .take_while(|&&t| t < from + window)
                    .count() as u64;
                assert!(
                    n <= 2 + window / interval,
                    "{n} starts in {window} ms from {from}"
                );
            }
        }
        assert!(starts.len() >= 100, "the rate is reached: {}", starts.len());
    }
}
