//! `orch plan graph`: the task graph as Graphviz DOT or Mermaid.
//!
//! Tasks are nodes, clustered by phase and milestone. Edges point from a
//! dependency to the task that needs it (the direction work flows); optional
//! dependencies are dashed. A dependency on a phase or milestone is drawn
//! from its cluster. Each task's label ends with its dependency level
//! (Kahn's: 1 needs no other task), and in DOT the tasks of one cluster at
//! the same level share a rank.

use std::fmt::Write;

use crate::plan::{Item, ItemIdx, Kind, Plan, Target};

/// Renders the plan as a DOT digraph.
pub fn dot(plan: &Plan) -> String {
    let mut out =
        String::from("digraph plan {\n  rankdir=LR;\n  compound=true;\n  node [shape=box];\n");
    for root in plan.roots() {
        dot_item(plan, *root, 1, &mut out);
    }
    dot_ranks(plan, plan.roots(), "  ", &mut out);
    let graph = plan.graph();
    for (t, &task) in graph.tasks().iter().enumerate() {
        for edge in graph.deps_of(t as u32) {
            let style = if edge.required { "" } else { " style=dashed" };
            let to = quote(plan.item(task).id.as_str());
            match edge.target {
                Target::Task(v) => {
                    let from = quote(plan.item(graph.tasks()[v as usize]).id.as_str());
                    let attrs = if style.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", style.trim())
                    };
                    let _ = writeln!(out, "  {from} -> {to}{attrs};");
                }
                Target::Container(c) => {
                    let container = graph.container(c);
                    if container.tasks.is_empty() {
                        continue;
                    }
                    let first = graph.tasks()[container.tasks.start as usize];
                    let from = quote(plan.item(first).id.as_str());
                    let cluster = quote(&format!("cluster_{}", plan.item(container.item).id));
                    let _ = writeln!(out, "  {from} -> {to} [ltail={cluster}{style}];");
                }
            }
        }
    }
    out.push_str("}\n");
    out
}

fn dot_item(plan: &Plan, idx: ItemIdx, depth: usize, out: &mut String) {
    let item = plan.item(idx);
    let pad = "  ".repeat(depth);
    match item.kind {
        Kind::Phase | Kind::Milestone => {
            let _ = writeln!(
                out,
                "{pad}subgraph {} {{",
                quote(&format!("cluster_{}", item.id))
            );
            let _ = writeln!(out, "{pad}  label={};", quote(&label(item)));
            for child in &item.children {
                dot_item(plan, *child, depth + 1, out);
            }
            dot_ranks(plan, &item.children, &format!("{pad}  "), out);
            let _ = writeln!(out, "{pad}}}");
        }
        Kind::Task => {
            let text = format!("{}\n{}\n{}", item.id, item.title, level_text(plan, idx));
            let _ = writeln!(
                out,
                "{pad}{} [label={}];",
                quote(item.id.as_str()),
                quote(&text)
            );
        }
        Kind::Subtask => {}
    }
}

/// Writes `{ rank=same; ... }` for the tasks among `items` that share a level.
fn dot_ranks(plan: &Plan, items: &[ItemIdx], pad: &str, out: &mut String) {
    let graph = plan.graph();
    let mut by_level: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
    for idx in items {
        if let Some(t) = graph.task_node(*idx) {
            by_level
                .entry(graph.level(t))
                .or_default()
                .push(plan.item(*idx).id.as_str());
        }
    }
    for ids in by_level.values().filter(|ids| ids.len() > 1) {
        let quoted: Vec<String> = ids.iter().map(|id| quote(id)).collect();
        let _ = writeln!(out, "{pad}{{ rank=same; {}; }}", quoted.join("; "));
    }
}

/// Returns `level N` for a task.
fn level_text(plan: &Plan, task: ItemIdx) -> String {
    let graph = plan.graph();
    graph
        .task_node(task)
        .map(|t| format!("level {}", graph.level(t)))
        .unwrap_or_default()
}

fn label(item: &Item) -> String {
    if item.title == item.id.local() {
        item.id.to_string()
    } else {
        format!("{}: {}", item.id, item.title)
    }
}

/// Quotes a DOT identifier or label.
fn quote(text: &str) -> String {
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

/// Renders the plan as a Mermaid flowchart. Node ids are `t<n>` for tasks and
/// `c<n>` for phases and milestones, since Mermaid ids cannot hold dots.
pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for root in plan.roots() {
        mermaid_item(plan, *root, 1, &mut out);
    }
    let graph = plan.graph();
    for (t, _) in graph.tasks().iter().enumerate() {
        for edge in graph.deps_of(t as u32) {
            let from = match edge.target {
                Target::Task(v) => format!("t{v}"),
                Target::Container(c) => format!("c{}", graph.container(c).item.index()),
            };
            let arrow = if edge.required { "-->" } else { "-.->" };
            let _ = writeln!(out, "  {from} {arrow} t{t}");
        }
    }
    out
}

fn mermaid_item(plan: &Plan, idx: ItemIdx, depth: usize, out: &mut String) {
    let item = plan.item(idx);
    let pad = "  ".repeat(depth);
    match item.kind {
        Kind::Phase | Kind::Milestone => {
            let _ = writeln!(
                out,
                "{pad}subgraph c{} [\"{}\"]",
                idx.index(),
                mermaid_text(&label(item))
            );
            for child in &item.children {
                mermaid_item(plan, *child, depth + 1, out);
            }
            let _ = writeln!(out, "{pad}end");
        }
        Kind::Task => {
            let Some(node) = plan.graph().task_node(idx) else {
                return;
            };
            let text = format!(
                "{}<br/>{}<br/>{}",
                item.id,
                mermaid_text(&item.title),
                level_text(plan, idx)
            );
            let _ = writeln!(out, "{pad}t{node}[\"{text}\"]");
        }
        Kind::Subtask => {}
    }
}

fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;").replace('\n', " ")
}
