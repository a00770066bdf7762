//! Priorities, and the run-queue key that orders jobs by priority, then by service.
//!
//! A key is one `u64`, smaller first: the top 3 bits are the job's *level*, the other 61 its
//! *rank* within the level. Each priority has two levels: first the work of runs already
//! started (the later stages of a dependency graph's run, ranked by the run's age, oldest
//! first), then new work (every plain job, and a graph's first stage, ranked by attained
//! service, least first). So a pool finishes what it started before it starts more, within a
//! priority, while a new small job still overtakes a big one's backlog (README.md, rule 10).

use std::fmt;

/// How urgent a job is. A worker looking for work serves the highest priority first; a job of
/// higher priority submitted while lower ones run gets the next worker that finishes a task.
/// Lower priorities are not starved: a priority that has waited longer than the pool's
/// [`aging`](crate::PoolBuilder::aging) limit gets the next free worker (for one time slice or
/// one task), whatever waits above it.
///
/// # Examples
///
/// ```
/// use jobpool::{Pool, Priority};
///
/// let pool = Pool::new(2);
/// let bulk = pool.job().priority(Priority::Low).submit((0..100).map(|i| move || i));
/// let urgent = pool.job().priority(Priority::High).submit(vec![|| "now"]);
/// assert_eq!(urgent.wait().unwrap(), vec!["now"]);
/// bulk.wait().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Served before everything else.
    High,
    /// The default.
    #[default]
    Normal,
    /// Served when nothing else waits, and at least once per aging limit.
    Low,
}

impl Priority {
    /// Every priority, highest first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// 0 for the highest.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        })
    }
}

/// The number of levels: two per priority.
pub(crate) const LEVELS: usize = 6;

const RANK_BITS: u32 = 61;
const RANK_MAX: u64 = (1 << RANK_BITS) - 1;

/// Where a job sits within its priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// A later stage of a run that has started: ranked by the run's start, oldest first.
    Continuing,
    /// New work: ranked by attained service, least first.
    New,
}

/// The key of a job of priority `priority` and stage `stage`, with rank `rank`.
#[inline]
pub(crate) fn key(priority: Priority, stage: Stage, rank: u64) -> u64 {
    let level = priority.index() * 2 + (stage == Stage::New) as usize;
    ((level as u64) << RANK_BITS) | rank.min(RANK_MAX)
}

/// The level of a key: its priority and stage.
#[inline]
pub(crate) fn level(key: u64) -> usize {
    (key >> RANK_BITS) as usize
}

/// The rank of a key within its level.
#[inline]
pub(crate) fn rank(key: u64) -> u64 {
    key & RANK_MAX
}

/// The priority of a level.
#[cfg(test)]
pub(crate) fn priority_of_level(level: usize) -> Priority {
    Priority::ALL[level / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_priority_then_stage_then_rank() {
        let keys = [
            key(Priority::High, Stage::Continuing, 9),
            key(Priority::High, Stage::New, 0),
            key(Priority::High, Stage::New, 5),
            key(Priority::Normal, Stage::Continuing, 0),
            key(Priority::Normal, Stage::New, u64::MAX),
            key(Priority::Low, Stage::New, 0),
        ];
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(level(keys[4]), 3);
        assert_eq!(rank(keys[2]), 5);
        assert_eq!(priority_of_level(level(keys[5])), Priority::Low);
    }
}
