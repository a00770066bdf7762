//! Checking a graph before it runs: every dependency resolved, no cycle; and the plan that
//! results, with the edges as indices both ways.
//!
//! Cycles are found by one depth-first search over the whole graph (time linear in modules +
//! edges). A module is *white* before the search reaches it, *grey* while the search is inside
//! it (it is on the search's stack), *black* once every module it depends on is known to be
//! free of cycles. An edge into a grey module closes a cycle, made of the stack from that module
//! to the top.

use std::collections::HashMap;
use std::sync::Arc;

use super::context::Context;
use super::control::JobControl;
use super::error::DagError;
use super::tasks::ModuleTasks;

/// A skip condition: `true` skips the module.
pub(crate) type Condition = Arc<dyn Fn(&Context) -> bool + Send + Sync>;

/// A module as the user declared it.
pub(crate) struct ModuleSpec {
    pub(crate) name: Arc<str>,
    pub(crate) cap: usize,
    /// The names of the modules it depends on, in the order given, without repeats.
    pub(crate) after: Vec<String>,
    pub(crate) tasks: Arc<dyn ModuleTasks>,
    pub(crate) skip_if: Option<Condition>,
    /// Its job's options: retries, limits, priority, timeout.
    pub(crate) control: JobControl,
    /// How its output is cached, if it is.
    #[cfg(feature = "cache")]
    pub(crate) cache: Option<super::incremental::CacheSpec>,
}

/// A module of a checked graph: its place in the graph and its size.
pub(crate) struct PlannedModule {
    pub(crate) name: Arc<str>,
    pub(crate) cap: usize,
    pub(crate) task_count: usize,
    /// The name of its tasks' output type.
    pub(crate) output_type: &'static str,
    /// The modules it depends on (indices into `Plan::modules`).
    pub(crate) dependencies: Vec<usize>,
    /// The modules that depend on it.
    pub(crate) dependents: Vec<usize>,
    /// How its output is cached, if it is.
    #[cfg(feature = "cache")]
    pub(crate) cache: Option<Arc<super::incremental::CacheSpec>>,
}

/// The user's code of a module: kept apart from `PlannedModule`, so that a run can let go of
/// it as soon as every module has ended.
pub(crate) struct ModuleBody {
    pub(crate) tasks: Arc<dyn ModuleTasks>,
    pub(crate) skip_if: Option<Condition>,
    /// Its job's options (a retry policy may hold the user's code: `Retry::retry_if`).
    pub(crate) control: Arc<JobControl>,
}

/// A checked graph, ready to run: it has no cycle and every dependency exists.
pub(crate) struct Plan {
    pub(crate) modules: Vec<PlannedModule>,
    /// One per module, in the same order.
    pub(crate) bodies: Vec<ModuleBody>,
}

/// The search's marks; see the module docs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Not reached yet.
    White,
    /// On the search's stack.
    Grey,
    /// Done: nothing reachable from it closes a cycle.
    Black,
}

/// Resolves every dependency and checks there is no cycle.
///
/// # Errors
///
/// [`DagError::UnknownDependency`] for a name no module has (the first found, in the order the
/// modules were added), then [`DagError::Cycle`] for the first cycle found.
pub(crate) fn plan(
    specs: &[ModuleSpec],
    index: &HashMap<Arc<str>, usize>,
) -> Result<Plan, DagError> {
    let mut dependencies = Vec::with_capacity(specs.len());
    for spec in specs {
        let resolved = spec
            .after
            .iter()
            .map(|dep| {
                index
                    .get(dep.as_str())
                    .copied()
                    .ok_or_else(|| DagError::UnknownDependency {
                        module: spec.name.to_string(),
                        dependency: dep.clone(),
                    })
            })
            .collect::<Result<Vec<usize>, DagError>>()?;
        dependencies.push(resolved);
    }
    if let Some(cycle) = find_cycle(&dependencies) {
        let path = cycle.iter().map(|&i| specs[i].name.to_string()).collect();
        return Err(DagError::Cycle { path });
    }
    let mut dependents = vec![Vec::new(); specs.len()];
    for (module, deps) in dependencies.iter().enumerate() {
        for &dep in deps {
            dependents[dep].push(module);
        }
    }
    let modules = specs
        .iter()
        .zip(dependencies)
        .zip(dependents)
        .map(|((spec, dependencies), dependents)| PlannedModule {
            name: spec.name.clone(),
            cap: spec.cap,
            task_count: spec.tasks.len(),
            output_type: spec.tasks.output_type(),
            dependencies,
            dependents,
            #[cfg(feature = "cache")]
            cache: spec.cache.clone().map(Arc::new),
        })
        .collect();
    let bodies = specs
        .iter()
        .map(|spec| ModuleBody {
            tasks: spec.tasks.clone(),
            skip_if: spec.skip_if.clone(),
            control: Arc::new(spec.control.clone()),
        })
        .collect();
    Ok(Plan { modules, bodies })
}

/// The first cycle of the graph whose module `i` depends on `dependencies[i]`, as the indices
/// of its modules in order (each depending on the next), starting from its smallest index and
/// repeating it at the end. Iterative, so deep graphs cannot overflow the stack.
pub(crate) fn find_cycle(dependencies: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut marks = vec![Mark::White; dependencies.len()];
    // The search's stack: (module, how many of its dependencies were looked at).
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..dependencies.len() {
        if marks[root] != Mark::White {
            continue;
        }
        marks[root] = Mark::Grey;
        stack.push((root, 0));
        while let Some(top) = stack.last_mut() {
            let (module, next) = *top;
            let Some(&dep) = dependencies[module].get(next) else {
                marks[module] = Mark::Black;
                stack.pop();
                continue;
            };
            top.1 += 1;
            match marks[dep] {
                Mark::White => {
                    marks[dep] = Mark::Grey;
                    stack.push((dep, 0));
                }
                Mark::Grey => {
                    // The grey modules are exactly those on the stack, in order.
                    let from = stack.iter().position(|&(m, _)| m == dep)?;
                    let mut cycle: Vec<usize> = stack[from..].iter().map(|&(m, _)| m).collect();
                    let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                    cycle.rotate_left(first);
                    cycle.push(cycle[0]);
                    return Some(cycle);
                }
                Mark::Black => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::find_cycle;

    #[test]
    fn acyclic_graphs_have_no_cycle() {
        assert_eq!(find_cycle(&[]), None);
        assert_eq!(find_cycle(&[vec![], vec![0], vec![0, 1]]), None);
        // A diamond reached twice is not a cycle.
        assert_eq!(find_cycle(&[vec![1, 2], vec![3], vec![3], vec![]]), None);
    }

    #[test]
    fn cycles_come_in_order_from_their_first_module() {
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
        assert_eq!(find_cycle(&[vec![1], vec![0]]), Some(vec![0, 1, 0]));
        // Reached from 0, which is not in the cycle 1 -> 2 -> 3 -> 1.
        assert_eq!(
            find_cycle(&[vec![1], vec![2], vec![3], vec![1]]),
            Some(vec![1, 2, 3, 1])
        );
        // Entered in the middle: 1 -> 2 -> 0 -> 1 is rotated to start at 0.
        assert_eq!(
            find_cycle(&[vec![1], vec![2], vec![0]]),
            Some(vec![0, 1, 2, 0])
        );
        assert_eq!(find_cycle(&[vec![], vec![2], vec![1]]), Some(vec![1, 2, 1]));
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let mut deps: Vec<Vec<usize>> = (0..n)
            .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
            .collect();
        assert_eq!(find_cycle(&deps), None);
        deps[n - 1].push(0);
        assert_eq!(find_cycle(&deps).map(|c| c.len()), Some(n + 1));
    }
}
