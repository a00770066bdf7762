//! The graph as Graphviz DOT, coloured by a run's states when a report is given.

use std::fmt::Write as _;

use super::report::{ModuleState, RunReport};
use super::Dag;
use crate::human::HumanDuration;

/// The fill colour of a module in a given state.
fn colour(state: &ModuleState) -> &'static str {
    match state {
        ModuleState::Done => "palegreen",
        ModuleState::Failed(_) => "salmon",
        ModuleState::Skipped(_) => "lightgrey",
        ModuleState::Cancelled => "orange",
    }
}

/// `text` as a DOT quoted string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Dag {
    /// The graph in Graphviz DOT: a box per module (its name, task count and cap), an arrow
    /// from each dependency to its dependent. Given a [`RunReport`] of this graph, each box is
    /// coloured by its module's state (done green, failed red, skipped grey, cancelled orange)
    /// and shows the state and the time the module took. Render with `dot -Tsvg`.
    ///
    /// # Examples
    ///
    /// ```
    /// use jobpool::{Context, Dag, Pool, TaskResult};
    ///
    /// let mut dag = Dag::new();
    /// dag.module("compile", 2, [|_: &Context| -> TaskResult<()> { Ok(()) }])?;
    /// dag.module("link", 1, [|_: &Context| -> TaskResult<()> { Ok(()) }])?.after(["compile"])?;
    /// let plain = dag.to_dot(None);
    /// assert!(plain.starts_with("digraph dag {"));
    /// assert!(plain.contains("\"compile\" -> \"link\";"));
    ///
    /// let report = dag.run(&Pool::new(2))?;
    /// assert!(dag.to_dot(Some(&report)).contains("fillcolor=palegreen"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_dot(&self, report: Option<&RunReport>) -> String {
        let mut dot = String::new();
        dot.push_str("digraph dag {\n");
        dot.push_str("  rankdir=LR;\n");
        dot.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=white];\n");
        for module in &self.modules {
            let mut label = format!(
                "{}\n{} task{}, cap {}",
                module.name,
                module.tasks.len(),
                if module.tasks.len() == 1 { "" } else { "s" },
                module.cap
            );
            let mut attributes = String::new();
            if let Some(line) = report.and_then(|r| r.module(&module.name)) {
                let _ = write!(label, "\n{}", line.state().label());
                if let Some(took) = line.duration() {
                    let _ = write!(label, " in {}", HumanDuration(took));
                }
                let _ = write!(attributes, ", fillcolor={}", colour(line.state()));
                if let ModuleState::Failed(_) | ModuleState::Skipped(_) = line.state() {
                    let _ = write!(
                        attributes,
                        ", tooltip={}",
                        quoted(&line.state().to_string())
                    );
                }
            }
            let _ = writeln!(
                dot,
                "  {} [label={}{attributes}];",
                quoted(&module.name),
                quoted(&label)
            );
        }
        for module in &self.modules {
            for dep in &module.after {
                let _ = writeln!(dot, "  {} -> {};", quoted(dep), quoted(&module.name));
            }
        }
        dot.push_str("}\n");
        dot
    }
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn names_are_quoted_and_escaped() {
        assert_eq!(quoted("plain"), "\"plain\"");
        assert_eq!(quoted("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
        assert_eq!(quoted("two\nlines"), "\"two\\nlines\"");
    }
}
