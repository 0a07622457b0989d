//! The task-level dependency graph: lifting, levels, cycles, subtask order.
//!
//! Nodes are tasks (numbered in plan order) and containers: a phase or
//! milestone that something depends on becomes one node standing for "every
//! task inside it", so a dependency on a large milestone costs one edge, not
//! one per task. A task's edges are its own dependencies, its subtasks'
//! dependencies on other tasks (DESIGN §2.1: lifted, since merges happen per
//! task) and the dependencies of its phase and milestone (inherited).
//!
//! Everything here is iterative (Kahn for order and levels, Tarjan for
//! cycles), so a 10,000-long chain cannot overflow the stack. Edges point
//! from a task to what it depends on; a cycle is reported in that direction,
//! `A -> B -> A` meaning "A depends on B, which depends on A".

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::ops::Range;

use rustc_hash::FxHashMap;

use crate::plan::build::key_path;
use crate::plan::diag::{Diagnostic, Problem};
use crate::plan::model::{FullId, Item, ItemIdx, Kind};

const NONE: u32 = u32::MAX;

/// What an edge points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A task node.
    Task(u32),
    /// A container node: every task of a phase or milestone.
    Container(u32),
}

/// A dependency of a task.
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub target: Target,
    pub required: bool,
    /// The item whose `depends_on` declared this edge.
    pub(crate) origin: ItemIdx,
}

/// A phase or milestone that something depends on.
#[derive(Debug, Clone)]
pub struct Container {
    pub item: ItemIdx,
    /// The task nodes inside it (contiguous, since tasks are in plan order).
    pub tasks: Range<u32>,
}

/// The dependency graph of a plan's tasks.
#[derive(Debug, Default)]
pub struct Graph {
    tasks: Vec<ItemIdx>,
    task_node: Vec<u32>,
    containers: Vec<Container>,
    deps_start: Vec<u32>,
    deps: Vec<Edge>,
    topo: Vec<u32>,
    level: Vec<u32>,
    levels: u32,
    phase: Vec<u32>,
    phases: Vec<ItemIdx>,
    sub_start: Vec<u32>,
    sub_order: Vec<ItemIdx>,
}

impl Graph {
    /// Builds the graph and reports cycles into `diagnostics`.
    pub(crate) fn build(items: &[Item], diagnostics: &mut Vec<Diagnostic>) -> Graph {
        let mut g = Graph {
            task_node: vec![NONE; items.len()],
            ..Graph::default()
        };
        let mut phase_of_item = vec![NONE; items.len()];
        for (i, item) in items.iter().enumerate() {
            phase_of_item[i] = match item.parent {
                Some(parent) => phase_of_item[parent.index()],
                None if item.kind == Kind::Phase => {
                    g.phases.push(ItemIdx(i as u32));
                    g.phases.len() as u32 - 1
                }
                None => NONE,
            };
            if item.kind == Kind::Task {
                g.task_node[i] = g.tasks.len() as u32;
                g.tasks.push(ItemIdx(i as u32));
                g.phase.push(phase_of_item[i]);
            }
        }
        g.lift_edges(items);
        let done = g.order();
        if g.topo.len() < g.tasks.len() {
            g.report_cycles(items, &done, diagnostics);
        }
        g.order_subtasks(items, diagnostics);
        g
    }

    fn lift_edges(&mut self, items: &[Item]) {
        let mut container_of: FxHashMap<ItemIdx, u32> = FxHashMap::default();
        let mut scratch: Vec<Edge> = Vec::new();
        self.deps_start.reserve(self.tasks.len() + 1);
        self.deps_start.push(0);
        for t in 0..self.tasks.len() {
            let ti = self.tasks[t];
            scratch.clear();
            let task = &items[ti.index()];
            let ancestors = std::iter::successors(task.parent, |p| items[p.index()].parent);
            let sources = std::iter::once(ti)
                .chain(task.children.iter().copied())
                .chain(ancestors);
            for src in sources {
                for dep in &items[src.index()].depends_on {
                    let d = dep.target;
                    let target = match items[d.index()].kind {
                        Kind::Task => Target::Task(self.task_node[d.index()]),
                        Kind::Subtask => {
                            let parent = items[d.index()].parent.map(|p| self.task_node[p.index()]);
                            match parent {
                                Some(p) if p != t as u32 && p != NONE => Target::Task(p),
                                _ => continue,
                            }
                        }
                        Kind::Phase | Kind::Milestone => {
                            let next = self.containers.len() as u32;
                            let c = *container_of.entry(d).or_insert(next);
                            if c == next {
                                let range = items[d.index()].descendants(d);
                                let start = self.tasks.partition_point(|x| x.index() < range.start);
                                let end = self.tasks.partition_point(|x| x.index() < range.end);
                                self.containers.push(Container {
                                    item: d,
                                    tasks: start as u32..end as u32,
                                });
                            }
                            Target::Container(c)
                        }
                    };
                    if target == Target::Task(t as u32) {
                        continue;
                    }
                    scratch.push(Edge {
                        target,
                        required: dep.required,
                        origin: src,
                    });
                }
            }
            scratch.sort_by_key(|e| e.target);
            let start = self.deps.len();
            for edge in scratch.drain(..) {
                match self.deps[start..].last_mut() {
                    Some(last) if last.target == edge.target => last.required |= edge.required,
                    _ => self.deps.push(edge),
                }
            }
            self.deps_start.push(self.deps.len() as u32);
        }
    }

    fn node(&self, target: Target) -> usize {
        match target {
            Target::Task(t) => t as usize,
            Target::Container(c) => self.tasks.len() + c as usize,
        }
    }

    /// Kahn's algorithm over tasks and containers; fills `topo` and levels.
    fn order(&mut self) -> Vec<bool> {
        let nt = self.tasks.len();
        let nc = self.containers.len();
        let mut indegree = vec![0u32; nt + nc];
        let mut dependents_count = vec![0u32; nt + nc + 1];
        for (t, degree) in indegree.iter_mut().enumerate().take(nt) {
            *degree = self.deps_start[t + 1] - self.deps_start[t];
            for e in self.deps_of(t as u32) {
                dependents_count[self.node(e.target)] += 1;
            }
        }
        for (c, container) in self.containers.iter().enumerate() {
            indegree[nt + c] = container.tasks.len() as u32;
        }
        let dependents_start = prefix_sums(&dependents_count);
        let mut fill = dependents_start.clone();
        let mut dependents = vec![0u32; *dependents_start.last().unwrap_or(&0) as usize];
        for t in 0..nt {
            for e in self.deps_of(t as u32) {
                let n = self.node(e.target);
                dependents[fill[n] as usize] = t as u32;
                fill[n] += 1;
            }
        }
        let mut within_count = vec![0u32; nt + 1];
        for container in &self.containers {
            for t in container.tasks.clone() {
                within_count[t as usize] += 1;
            }
        }
        let within_start = prefix_sums(&within_count);
        let mut fill = within_start.clone();
        let mut within = vec![0u32; *within_start.last().unwrap_or(&0) as usize];
        for (c, container) in self.containers.iter().enumerate() {
            for t in container.tasks.clone() {
                within[fill[t as usize] as usize] = c as u32;
                fill[t as usize] += 1;
            }
        }

        let mut level = vec![0u32; nt + nc];
        let mut done = vec![false; nt + nc];
        let mut queue: VecDeque<usize> = (0..nt + nc).filter(|n| indegree[*n] == 0).collect();
        self.topo.reserve(nt);
        while let Some(n) = queue.pop_front() {
            done[n] = true;
            if n < nt {
                let l = 1 + self
                    .deps_of(n as u32)
                    .iter()
                    .map(|e| level[self.node(e.target)])
                    .max()
                    .unwrap_or(0);
                level[n] = l;
                self.levels = self.levels.max(l);
                self.topo.push(n as u32);
                for &c in &within[within_start[n] as usize..within_start[n + 1] as usize] {
                    let cn = nt + c as usize;
                    indegree[cn] -= 1;
                    if indegree[cn] == 0 {
                        queue.push_back(cn);
                    }
                }
            } else {
                let range = self.containers[n - nt].tasks.clone();
                level[n] = range.map(|t| level[t as usize]).max().unwrap_or(0);
            }
            for &d in &dependents[dependents_start[n] as usize..dependents_start[n + 1] as usize] {
                indegree[d as usize] -= 1;
                if indegree[d as usize] == 0 {
                    queue.push_back(d as usize);
                }
            }
        }
        level.truncate(nt);
        self.level = level;
        done
    }

    fn successors(&self, n: usize, done: &[bool], out: &mut Vec<usize>) {
        out.clear();
        let nt = self.tasks.len();
        if n < nt {
            out.extend(
                self.deps_of(n as u32)
                    .iter()
                    .map(|e| self.node(e.target))
                    .filter(|m| !done[*m]),
            );
        } else {
            out.extend(
                self.containers[n - nt]
                    .tasks
                    .clone()
                    .map(|t| t as usize)
                    .filter(|m| !done[*m]),
            );
        }
    }

    fn node_id<'a>(&self, items: &'a [Item], n: usize) -> &'a FullId {
        let nt = self.tasks.len();
        let item = if n < nt {
            self.tasks[n]
        } else {
            self.containers[n - nt].item
        };
        &items[item.index()].id
    }

    /// Reports one cycle per strongly connected component of unordered nodes.
    fn report_cycles(&self, items: &[Item], done: &[bool], diagnostics: &mut Vec<Diagnostic>) {
        for scc in tarjan(done.len(), done, |n, out| self.successors(n, done, out)) {
            if scc.len() < 2 {
                continue;
            }
            let Some(&start) = scc.iter().filter(|n| **n < self.tasks.len()).min() else {
                continue;
            };
            let mut in_scc = vec![false; done.len()];
            for &n in &scc {
                in_scc[n] = true;
            }
            let Some(cycle) =
                shortest_cycle(start, &in_scc, |n, out| self.successors(n, done, out))
            else {
                continue;
            };
            let path: Vec<FullId> = cycle
                .iter()
                .map(|n| self.node_id(items, *n).clone())
                .collect();
            let origin = self
                .deps_of(start as u32)
                .iter()
                .find(|e| self.node(e.target) == cycle[1])
                .map(|e| e.origin)
                .unwrap_or(self.tasks[start]);
            let locus = key_path(items, origin, items[origin.index()].origin.deps_key());
            diagnostics.push(Diagnostic::new(Problem::Cycle { path }, locus));
        }
    }

    /// Orders each task's subtasks by their dependencies on siblings, plan order first.
    fn order_subtasks(&mut self, items: &[Item], diagnostics: &mut Vec<Diagnostic>) {
        self.sub_start.reserve(self.tasks.len() + 1);
        self.sub_start.push(0);
        let mut local: FxHashMap<ItemIdx, usize> = FxHashMap::default();
        for &ti in &self.tasks {
            let subs = &items[ti.index()].children;
            if subs.is_empty() {
                self.sub_start.push(self.sub_order.len() as u32);
                continue;
            }
            local.clear();
            local.extend(subs.iter().enumerate().map(|(k, s)| (*s, k)));
            let sibling_deps: Vec<Vec<usize>> = subs
                .iter()
                .map(|s| {
                    items[s.index()]
                        .depends_on
                        .iter()
                        .filter_map(|d| local.get(&d.target).copied())
                        .collect()
                })
                .collect();
            let mut indegree: Vec<usize> = sibling_deps.iter().map(Vec::len).collect();
            let mut dependents = vec![Vec::new(); subs.len()];
            for (k, deps) in sibling_deps.iter().enumerate() {
                for &d in deps {
                    dependents[d].push(k);
                }
            }
            let mut heap: BinaryHeap<Reverse<usize>> = (0..subs.len())
                .filter(|k| indegree[*k] == 0)
                .map(Reverse)
                .collect();
            let mut done = vec![false; subs.len()];
            let before = self.sub_order.len();
            while let Some(Reverse(k)) = heap.pop() {
                done[k] = true;
                self.sub_order.push(subs[k]);
                for &d in &dependents[k] {
                    indegree[d] -= 1;
                    if indegree[d] == 0 {
                        heap.push(Reverse(d));
                    }
                }
            }
            if self.sub_order.len() - before < subs.len() {
                let not_done: Vec<bool> = done.clone();
                for scc in tarjan(subs.len(), &not_done, |n, out| {
                    out.clear();
                    out.extend(sibling_deps[n].iter().copied().filter(|m| !done[*m]));
                }) {
                    if scc.len() < 2 {
                        continue;
                    }
                    let start = scc.iter().copied().min().unwrap_or(scc[0]);
                    let mut in_scc = vec![false; subs.len()];
                    for &n in &scc {
                        in_scc[n] = true;
                    }
                    let Some(cycle) = shortest_cycle(start, &in_scc, |n, out| {
                        out.clear();
                        out.extend(sibling_deps[n].iter().copied().filter(|m| !done[*m]));
                    }) else {
                        continue;
                    };
                    let path = cycle
                        .iter()
                        .map(|k| items[subs[*k].index()].id.clone())
                        .collect();
                    let origin = subs[start];
                    let locus = key_path(items, origin, items[origin.index()].origin.deps_key());
                    diagnostics.push(Diagnostic::new(Problem::Cycle { path }, locus));
                }
                for (k, s) in subs.iter().enumerate() {
                    if !done[k] {
                        self.sub_order.push(*s);
                    }
                }
            }
            self.sub_start.push(self.sub_order.len() as u32);
        }
    }

    /// Reports dependencies that the phase barrier would turn into a deadlock.
    pub(crate) fn barrier_problems(&self, items: &[Item]) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for t in 0..self.tasks.len() {
            let p = self.phase[t];
            if p == NONE {
                continue;
            }
            for e in self.deps_of(t as u32) {
                let q = match e.target {
                    Target::Task(v) => self.phase[v as usize],
                    Target::Container(c) => {
                        let range = &self.containers[c as usize].tasks;
                        if range.is_empty() {
                            continue;
                        }
                        self.phase[range.end as usize - 1]
                    }
                };
                if q == NONE || q <= p {
                    continue;
                }
                let dep = match e.target {
                    Target::Task(v) => items[self.tasks[v as usize].index()].id.clone(),
                    Target::Container(c) => {
                        items[self.containers[c as usize].item.index()].id.clone()
                    }
                };
                let problem = Problem::AgainstPhaseBarrier {
                    from: items[self.tasks[t].index()].id.clone(),
                    dep,
                    from_phase: items[self.phases[p as usize].index()].id.clone(),
                    dep_phase: items[self.phases[q as usize].index()].id.clone(),
                };
                let locus = key_path(items, e.origin, items[e.origin.index()].origin.deps_key());
                out.push(Diagnostic::new(problem, locus));
            }
        }
        out
    }

    /// Returns the task items in plan order; a task's node number is its position here.
    pub fn tasks(&self) -> &[ItemIdx] {
        &self.tasks
    }

    /// Returns the node of a task item.
    pub fn task_node(&self, item: ItemIdx) -> Option<u32> {
        self.task_node
            .get(item.index())
            .copied()
            .filter(|n| *n != NONE)
    }

    /// Returns a task's dependencies, one edge per distinct target.
    pub fn deps_of(&self, task: u32) -> &[Edge] {
        let t = task as usize;
        &self.deps[self.deps_start[t] as usize..self.deps_start[t + 1] as usize]
    }

    pub fn container(&self, c: u32) -> &Container {
        &self.containers[c as usize]
    }

    pub fn containers(&self) -> &[Container] {
        &self.containers
    }

    /// Returns task nodes in an order where every task comes after its dependencies.
    pub fn topo_order(&self) -> &[u32] {
        &self.topo
    }

    /// Returns the level of a task: 1 plus the deepest level it depends on.
    pub fn level(&self, task: u32) -> u32 {
        self.level[task as usize]
    }

    /// Returns the number of levels (the longest dependency chain, in tasks).
    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// Returns the ordinal of the top-level phase a task is in, if the plan has phases.
    pub fn phase(&self, task: u32) -> Option<u32> {
        Some(self.phase[task as usize]).filter(|p| *p != NONE)
    }

    /// Returns the top-level phases in order.
    pub fn phases(&self) -> &[ItemIdx] {
        &self.phases
    }

    /// Returns a task's subtasks in the order they run.
    pub fn subtasks(&self, task: u32) -> &[ItemIdx] {
        let t = task as usize;
        &self.sub_order[self.sub_start[t] as usize..self.sub_start[t + 1] as usize]
    }

    /// Returns the number of dependency edges between task nodes and containers.
    pub fn edge_count(&self) -> usize {
        self.deps.len()
    }
}

fn prefix_sums(counts: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(counts.len() + 1);
    let mut sum = 0;
    out.push(0);
    for c in counts {
        sum += c;
        out.push(sum);
    }
    out
}

/// Iterative Tarjan over the nodes not marked `skip`; returns the components.
fn tarjan(
    n: usize,
    skip: &[bool],
    mut successors: impl FnMut(usize, &mut Vec<usize>),
) -> Vec<Vec<usize>> {
    struct Walk {
        index: Vec<u32>,
        low: Vec<u32>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: u32,
        frames: Vec<(usize, Vec<usize>, usize)>,
    }
    impl Walk {
        fn enter(&mut self, v: usize, successors: Vec<usize>) {
            self.index[v] = self.counter;
            self.low[v] = self.counter;
            self.counter += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            self.frames.push((v, successors, 0));
        }
    }
    let mut walk = Walk {
        index: vec![NONE; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        counter: 0,
        frames: Vec::new(),
    };
    let mut out = Vec::new();
    for (root, skipped) in skip.iter().enumerate().take(n) {
        if *skipped || walk.index[root] != NONE {
            continue;
        }
        let mut succ = Vec::new();
        successors(root, &mut succ);
        walk.enter(root, succ);
        while let Some(frame) = walk.frames.last_mut() {
            let v = frame.0;
            let next = frame.1.get(frame.2).copied();
            if let Some(w) = next {
                frame.2 += 1;
                if walk.index[w] == NONE {
                    let mut succ = Vec::new();
                    successors(w, &mut succ);
                    walk.enter(w, succ);
                } else if walk.on_stack[w] {
                    walk.low[v] = walk.low[v].min(walk.index[w]);
                }
                continue;
            }
            walk.frames.pop();
            if walk.low[v] == walk.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = walk.stack.pop() {
                    walk.on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(scc);
            }
            if let Some((parent, _, _)) = walk.frames.last() {
                let parent = *parent;
                walk.low[parent] = walk.low[parent].min(walk.low[v]);
            }
        }
    }
    out
}

/// Finds a shortest cycle through `start` inside the component; returns it closed (`a, b, a`).
fn shortest_cycle(
    start: usize,
    in_scc: &[bool],
    mut successors: impl FnMut(usize, &mut Vec<usize>),
) -> Option<Vec<usize>> {
    let mut parent = vec![usize::MAX; in_scc.len()];
    let mut queue = VecDeque::from([start]);
    let mut succ = Vec::new();
    while let Some(v) = queue.pop_front() {
        successors(v, &mut succ);
        for &w in &succ {
            if !in_scc[w] {
                continue;
            }
            if w == start {
                let mut back = Vec::new();
                let mut cur = v;
                while cur != start {
                    back.push(cur);
                    cur = parent[cur];
                }
                back.reverse();
                let mut cycle = Vec::with_capacity(back.len() + 2);
                cycle.push(start);
                cycle.extend(back);
                cycle.push(start);
                return Some(cycle);
            }
            if parent[w] == usize::MAX {
                parent[w] = v;
                queue.push_back(w);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use proptest::prelude::*;

    use crate::plan::{self, Plan, PlanError, Problem, Rules, Target};

    fn load(text: &str) -> Result<Plan, PlanError> {
        plan::from_bytes(Path::new("plan.toml"), text.as_bytes(), &Rules::default())
    }

    fn flat(n: usize, edges: &[(usize, usize)]) -> String {
        let mut text = String::new();
        for i in 0..n {
            let deps: Vec<String> = edges
                .iter()
                .filter(|(from, _)| *from == i)
                .map(|(_, to)| format!("\"T{to}\""))
                .collect();
            text.push_str(&format!(
                "[[task]]\nid = \"T{i}\"\ndepends_on = [{}]\n",
                deps.join(", ")
            ));
        }
        text
    }

    #[test]
    fn levels_count_the_longest_chain() {
        let plan = load(&flat(4, &[(1, 0), (2, 1), (3, 0)])).unwrap();
        let g = plan.graph();
        assert_eq!(g.levels(), 3);
        assert_eq!((0..4).map(|t| g.level(t)).collect::<Vec<_>>(), [1, 2, 3, 2]);
    }

    #[test]
    fn container_dependencies_are_one_edge_and_inherited() {
        let plan = load(
            r#"
            [[milestone]]
            id = "M1"
            [[milestone.task]]
            id = "T1"
            [[milestone.task]]
            id = "T2"
            [[milestone]]
            id = "M2"
            depends_on = ["M1"]
            [[milestone.task]]
            id = "T1"
            [[milestone.task]]
            id = "T2"
            [[milestone.task.subtask]]
            id = "S1"
            depends_on = ["M1.T2"]
        "#,
        )
        .unwrap();
        let g = plan.graph();
        assert_eq!(g.containers().len(), 1);
        assert_eq!(g.container(0).tasks, 0..2);
        assert_eq!(g.deps_of(2).len(), 1, "M2.T1 inherits one edge to M1");
        let targets: Vec<Target> = g.deps_of(3).iter().map(|e| e.target).collect();
        assert_eq!(
            targets,
            [Target::Task(1), Target::Container(0)],
            "lifted subtask edge plus inherited edge"
        );
        assert_eq!(g.levels(), 2);
    }

    #[test]
    fn subtasks_run_in_dependency_order_then_plan_order() {
        let plan = load(
            r#"
            [[task]]
            id = "T1"
            [[task.subtask]]
            id = "A"
            depends_on = ["C"]
            [[task.subtask]]
            id = "B"
            [[task.subtask]]
            id = "C"
        "#,
        )
        .unwrap();
        let order: Vec<&str> = plan
            .graph()
            .subtasks(0)
            .iter()
            .map(|s| plan.item(*s).id.local())
            .collect();
        assert_eq!(order, ["B", "C", "A"]);
    }

    fn dag() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
        (2usize..40).prop_flat_map(|n| {
            let edges = prop::collection::vec((1..n, 0..n), 0..n * 3)
                .prop_map(|pairs| pairs.into_iter().filter(|(a, b)| b < a).collect::<Vec<_>>());
            (Just(n), edges)
        })
    }

    fn any_graph() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
        (2usize..25).prop_flat_map(|n| {
            let edges = prop::collection::vec((0..n, 0..n), 0..n * 2).prop_map(|pairs| {
                pairs
                    .into_iter()
                    .filter(|(a, b)| a != b)
                    .collect::<Vec<_>>()
            });
            (Just(n), edges)
        })
    }

    /// Returns whether the directed graph has a cycle (DFS colouring).
    fn has_cycle(n: usize, edges: &[(usize, usize)]) -> bool {
        fn visit(v: usize, edges: &[(usize, usize)], colour: &mut [u8]) -> bool {
            colour[v] = 1;
            for &(_, w) in edges.iter().filter(|(a, _)| *a == v) {
                if colour[w] == 1 || (colour[w] == 0 && visit(w, edges, colour)) {
                    return true;
                }
            }
            colour[v] = 2;
            false
        }
        let mut colour = vec![0u8; n];
        (0..n).any(|v| colour[v] == 0 && visit(v, edges, &mut colour))
    }

    proptest! {
        #[test]
        fn topological_order_respects_every_edge((n, edges) in dag()) {
            let plan = load(&flat(n, &edges)).unwrap();
            let g = plan.graph();
            let mut position = vec![usize::MAX; n];
            for (i, t) in g.topo_order().iter().enumerate() {
                position[*t as usize] = i;
            }
            prop_assert_eq!(g.topo_order().len(), n);
            for (from, to) in &edges {
                prop_assert!(position[*to] < position[*from], "T{to} must come before T{from}");
                prop_assert!(g.level(*to as u32) < g.level(*from as u32));
            }
        }

        #[test]
        fn every_cycle_is_reported_as_a_real_path((n, edges) in any_graph()) {
            let set: BTreeSet<(usize, usize)> = edges.iter().copied().collect();
            match load(&flat(n, &edges)) {
                Ok(_) => prop_assert!(!has_cycle(n, &edges), "a cycle went unreported"),
                Err(PlanError::Invalid { diagnostics, .. }) => {
                    prop_assert!(has_cycle(n, &edges));
                    prop_assert!(!diagnostics.is_empty());
                    for d in diagnostics {
                        let Problem::Cycle { path } = d.problem else {
                            return Err(TestCaseError::fail(format!("unexpected {:?}", d.problem)));
                        };
                        prop_assert!(path.len() >= 3);
                        prop_assert_eq!(path.first(), path.last());
                        for pair in path.windows(2) {
                            let a: usize = pair[0].as_str()[1..].parse().unwrap();
                            let b: usize = pair[1].as_str()[1..].parse().unwrap();
                            prop_assert!(set.contains(&(a, b)), "T{a} -> T{b} is not an edge");
                        }
                    }
                }
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            }
        }
    }
}
