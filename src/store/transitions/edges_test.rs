//! The week state diagram in docs/design.md and the transitions' guards agree: every edge the
//! diagram gives a transition's label is one that transition's `FROM`/`TO` (the statuses bound
//! into its `WHERE status IN (...)` guard and its `SET status`), and the other way round.

use std::collections::BTreeSet;

use super::EDGES;
use crate::status::WeekStatus;

/// The marker the edge list follows in docs/design.md (the next fenced block is the list).
const MARKER: &str = "<!-- week edges:";

/// (label, from, to) of every edge of `design`'s edge list whose label is in `labels`.
fn documented_edges(design: &str, labels: &BTreeSet<&str>) -> BTreeSet<(String, String, String)> {
    let start = design
        .find(MARKER)
        .expect("docs/design.md marks its edge list");
    let block = design[start..]
        .split("```")
        .nth(1)
        .expect("a fenced block follows the marker");
    let mut edges = BTreeSet::new();
    for line in block.lines() {
        let parts: Vec<&str> = line.split("──").collect();
        let [from, label, rest] = parts[..] else {
            continue;
        };
        if !labels.contains(label.trim()) {
            continue;
        }
        let to = rest
            .trim_start_matches('►')
            .split_whitespace()
            .next()
            .unwrap_or_default();
        for status in from.split(',') {
            edges.insert((label.trim().into(), status.trim().into(), to.into()));
        }
    }
    edges
}

fn coded_edges() -> BTreeSet<(String, String, String)> {
    EDGES
        .iter()
        .flat_map(|edge| {
            edge.from.iter().map(move |from| {
                let to = edge.to.as_str().to_string();
                (edge.label.to_string(), from.as_str().to_string(), to)
            })
        })
        .collect()
}

#[test]
fn the_design_diagram_and_the_transition_guards_name_the_same_edges() {
    let design = include_str!("../../../docs/design.md");
    let labels: BTreeSet<&str> = EDGES.iter().map(|edge| edge.label).collect();
    let documented = documented_edges(design, &labels);
    for (_, from, to) in &documented {
        for status in [from, to] {
            assert!(
                status.parse::<WeekStatus>().is_ok(),
                "docs/design.md names an unknown week status `{status}`"
            );
        }
    }
    let coded = coded_edges();
    let undocumented: Vec<_> = coded.difference(&documented).collect();
    let unguarded: Vec<_> = documented.difference(&coded).collect();
    assert!(
        undocumented.is_empty() && unguarded.is_empty(),
        "edges in the guards but not in docs/design.md: {undocumented:?}; \
         in docs/design.md but not in the guards: {unguarded:?}"
    );
}

#[test]
fn a_changed_guard_would_be_caught() {
    let labels = BTreeSet::from(["Submitted"]);
    let design = format!("{MARKER} -->\n```text\nrunning ──Submitted──► downloading\n```\n");
    let documented = documented_edges(&design, &labels);
    let coded: BTreeSet<_> = coded_edges()
        .into_iter()
        .filter(|(label, _, _)| label == "Submitted")
        .collect();
    assert_ne!(documented, coded);
    assert_eq!(documented.len(), 1);
}
