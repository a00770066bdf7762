//! Property tests of how a job keeps its tasks' outcomes (`state::Results`): chunks recorded
//! in any order, by any number of workers, give the results in submission order, whether the
//! values stay in runs to the end or are turned into slots on the way.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::state::{ChunkOutcomes, JobState};
use super::Next;
use crate::sync::Instant;

/// Claims `n` tasks in chunks of the given lengths (the last one takes what is left), then
/// records the chunks in the order `order` gives, each task's value made by `value`. With
/// `log_after = Some(i)`, a `Completions` log starts after the i-th record (the values
/// become slots then), and its outcomes are taken as they come.
fn run<T: PartialEq + std::fmt::Debug>(
    n: usize,
    lengths: &[usize],
    order: &[usize],
    log_after: Option<usize>,
    value: impl Fn(usize) -> T,
) -> Vec<T> {
    let mut st: JobState<usize, T> = JobState::new((0..n).collect::<VecDeque<_>>(), 2, 0);
    let mut chunks = Vec::new();
    for &len in lengths.iter().chain(std::iter::once(&usize::MAX)) {
        let mut tasks = Vec::new();
        let first = st.claim(len.max(1), &mut tasks);
        if tasks.is_empty() {
            break;
        }
        chunks.push((first, tasks));
    }
    let mut taken = Vec::new();
    let now = Instant::now();
    let mut order: Vec<usize> = order.iter().map(|i| i % chunks.len().max(1)).collect();
    order.extend(0..chunks.len());
    let mut recorded = 0;
    for i in order {
        let Some((first, tasks)) = chunks.get_mut(i).map(std::mem::take) else {
            continue;
        };
        if tasks.is_empty() {
            continue;
        }
        let mut outcomes = ChunkOutcomes::new();
        for index in tasks {
            outcomes.push(value(index));
        }
        assert!(st.record(first, &mut outcomes, now, None).is_none());
        recorded += 1;
        if log_after == Some(recorded) {
            st.start_log();
        }
        if log_after.is_some_and(|at| recorded > at) {
            while let Some(Next::Ready(index, outcome)) = st.next_outcome() {
                taken.push((index, outcome.unwrap()));
            }
        }
    }
    assert!(st.is_finished());
    if log_after.is_some_and(|at| recorded >= at) {
        // Everything recorded before the log started, and what came after it, one by one.
        while let Some(Next::Ready(index, outcome)) = st.next_outcome() {
            taken.push((index, outcome.unwrap()));
        }
        taken.sort_by_key(|(index, _)| *index);
        assert_eq!(taken.len(), n);
        return taken.into_iter().map(|(_, value)| value).collect();
    }
    st.take_results()
        .unwrap_or_else(|_| panic!("no task failed"))
}

proptest! {
    #[test]
    fn chunks_recorded_in_any_order_give_the_results_in_order(
        n in 0usize..120,
        lengths in proptest::collection::vec(1usize..20, 0..40),
        order in proptest::collection::vec(0usize..64, 0..40),
    ) {
        let values = run(n, &lengths, &order, None, |i| i * 3 + 1);
        prop_assert_eq!(values, (0..n).map(|i| i * 3 + 1).collect::<Vec<_>>());
        // Tasks that return `()`: the runs keep lengths only.
        prop_assert_eq!(run(n, &lengths, &order, None, |_| ()).len(), n);
    }

    #[test]
    fn a_log_started_midway_sees_every_outcome_once(
        n in 1usize..80,
        lengths in proptest::collection::vec(1usize..12, 0..30),
        order in proptest::collection::vec(0usize..64, 0..30),
        log_after in 1usize..10,
    ) {
        let values = run(n, &lengths, &order, Some(log_after), |i| format!("task {i}"));
        prop_assert_eq!(values, (0..n).map(|i| format!("task {i}")).collect::<Vec<_>>());
    }
}
