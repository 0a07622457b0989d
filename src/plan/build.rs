//! Raw tree to validated [`Plan`]: ids, nesting, dependencies.
//!
//! Every problem is collected, not just the first: a bad id skips only its
//! own subtree, an unknown dependency only that entry. Problems carry
//! structural paths; [`crate::plan::locate`] turns them into positions.
//!
//! Dependency resolution (DESIGN §2.1): a dependency with a dot is a full id;
//! one without is a sibling's local id first, then a top-level full id. A
//! dependency on the item itself, an ancestor or a descendant is rejected
//! here, so the graph never sees a self-loop.

use serde_json::Value;

use crate::plan::diag::{Diagnostic, Locus, PathSeg, Problem};
use crate::plan::graph::Graph;
use crate::plan::model::{
    Dep, Details, FullId, IdIndex, Item, ItemIdx, Kind, LIST_KEYS, Origin, Plan, PlanStatus,
    Priority, check_local_id, title_fault,
};
use crate::plan::parse::{
    KeyFault, KeyProblem, RawChildren, RawDep, RawItem, RawPlan, RawPriority,
};

/// How many unknown dependencies get a full "did you mean" search over every id.
const FULL_SUGGESTION_BUDGET: usize = 50;

/// Builds the plan and returns it with every problem found. With problems,
/// the plan holds what could be built (an item with a bad id is left out
/// with its subtree), so that the config's rules can still be checked on
/// the rest and every error is reported in one pass.
pub(crate) fn build(raw: RawPlan<'_>) -> (Plan, Vec<Diagnostic>) {
    let mut b = Builder::default();
    b.plan_level(&raw.problems);
    let (lists, title, extra) = (raw.lists, raw.title, raw.extra);
    if lists.is_empty() {
        let hint = looks_like_taskmaster(&extra).then_some(
            "this looks like a Taskmaster file: convert it with `orch plan import taskmaster`",
        );
        b.diagnostics
            .push(Diagnostic::new(Problem::NoTasks { hint }, Locus::File));
    }
    let total = count_items(&lists);
    b.items.reserve_exact(total);
    b.raw_deps.reserve_exact(total);
    b.tree(lists);
    b.finish_subtrees();
    b.resolve_dependencies();
    let graph = Graph::build(&b.items, &mut b.diagnostics);
    if b.items.iter().all(|i| i.kind != Kind::Task) && b.diagnostics.is_empty() {
        b.diagnostics.push(Diagnostic::new(
            Problem::NoTasks { hint: None },
            Locus::File,
        ));
    }
    let plan = Plan {
        title,
        extra,
        items: b.items,
        roots: b.roots,
        index: b.index,
        graph,
        dependency_count: b.dependency_count,
    };
    (plan, b.diagnostics)
}

/// Counts the raw items, so the arena is allocated once at its final size.
fn count_items(lists: &[RawChildren<'_>]) -> usize {
    let mut total = 0;
    let mut stack: Vec<&RawChildren<'_>> = lists.iter().collect();
    while let Some(list) = stack.pop() {
        total += list.items.len();
        stack.extend(list.items.iter().flat_map(|i| i.children.iter()));
    }
    total
}

fn looks_like_taskmaster(extra: &serde_json::Map<String, Value>) -> bool {
    extra
        .values()
        .any(|v| v.get("tasks").is_some_and(Value::is_array))
}

/// Returns the document path of an item already in the arena.
pub(crate) fn item_path(items: &[Item], idx: ItemIdx) -> Vec<PathSeg> {
    let mut chain = Vec::new();
    let mut cur = Some(idx);
    while let Some(i) = cur {
        let item = &items[i.index()];
        chain.push(PathSeg::Index(item.origin.index as usize));
        chain.push(PathSeg::Key(item.origin.key().to_owned()));
        cur = item.parent;
    }
    chain.reverse();
    chain
}

/// Returns the path of a key of an item already in the arena.
pub(crate) fn key_path(items: &[Item], idx: ItemIdx, key: &str) -> Locus {
    let mut path = item_path(items, idx);
    path.push(PathSeg::Key(key.to_owned()));
    Locus::Path(path)
}

/// Where a raw item sits: its parent, the list it is in, and its level.
#[derive(Debug, Clone, Copy)]
struct Place {
    parent: Option<ItemIdx>,
    key: &'static str,
    index: u32,
    kind: Kind,
}

#[derive(Default)]
struct Builder<'a> {
    items: Vec<Item>,
    roots: Vec<ItemIdx>,
    index: IdIndex,
    raw_deps: Vec<Option<Vec<RawDep<'a>>>>,
    diagnostics: Vec<Diagnostic>,
    dependency_count: usize,
}

impl<'a> Builder<'a> {
    fn plan_level(&mut self, problems: &[KeyProblem]) {
        for p in problems {
            let locus = Locus::Path(vec![PathSeg::Key(p.key.clone())]);
            self.key_problem("the plan", p, locus);
        }
    }

    fn key_problem(&mut self, owner: &str, p: &KeyProblem, locus: Locus) {
        let problem = match &p.what {
            KeyFault::Misspelled(suggestion) => Problem::MisspelledField {
                owner: owner.to_owned(),
                field: p.key.clone(),
                suggestion,
            },
            KeyFault::Duplicate => Problem::DuplicateField {
                owner: owner.to_owned(),
                field: p.key.clone(),
            },
            KeyFault::BadPriority(value) => Problem::BadValue {
                owner: owner.to_owned(),
                field: "priority",
                detail: format!(
                    "{value} is not a priority; use 0 (urgent) to 3 (low), or critical, high, medium or low"
                ),
            },
        };
        self.diagnostics.push(Diagnostic::new(problem, locus));
    }

    fn tree(&mut self, lists: Vec<RawChildren<'a>>) {
        let mut accepted: Option<&'static str> = None;
        for mut list in lists {
            if let Some(first) = accepted {
                self.diagnostics.push(Diagnostic::new(
                    Problem::MixedLevels {
                        owner: "the plan".to_owned(),
                        first,
                        second: list.key,
                    },
                    Locus::Path(vec![PathSeg::Key(list.key.to_owned())]),
                ));
                continue;
            }
            accepted = Some(list.key);
            if list.kind == Some(Kind::Subtask) {
                self.diagnostics.push(Diagnostic::new(
                    Problem::SubtasksAtTop { key: list.key },
                    Locus::Path(vec![PathSeg::Key(list.key.to_owned())]),
                ));
                continue;
            }
            self.list(None, &mut list);
        }
    }

    /// Builds the items of one list, each followed by its subtree (pre-order).
    ///
    /// Recursion is bounded: a list is only descended into when it holds the
    /// next level down, so the depth is at most four.
    fn list(&mut self, parent: Option<ItemIdx>, list: &mut RawChildren<'a>) {
        for (index, raw) in list.items.iter_mut().enumerate() {
            let kind = match list.kind {
                Some(kind) => kind,
                None => raw
                    .type_name
                    .as_deref()
                    .and_then(Kind::from_type_name)
                    .unwrap_or(Kind::Phase),
            };
            let place = Place {
                parent,
                key: list.key,
                index: index as u32,
                kind,
            };
            self.item(raw, place);
        }
    }

    fn pending_path(&self, p: &Place) -> Vec<PathSeg> {
        let mut path = match p.parent {
            Some(parent) => item_path(&self.items, parent),
            None => Vec::new(),
        };
        path.push(PathSeg::Key(p.key.to_owned()));
        path.push(PathSeg::Index(p.index as usize));
        path
    }

    /// Returns the locus of `key` in the item being built (computed only for errors).
    fn pending_key(&self, p: &Place, key: &str) -> Locus {
        let mut path = self.pending_path(p);
        path.push(PathSeg::Key(key.to_owned()));
        Locus::Path(path)
    }

    fn item(&mut self, raw: &mut RawItem<'a>, p: Place) {
        let Some(id) = self.full_id(raw, &p) else {
            return;
        };
        if !raw.problems().is_empty() {
            let owner = format!("`{id}`");
            for problem in raw.problems() {
                let locus = self.pending_key(&p, &problem.key);
                self.key_problem(&owner, problem, locus);
            }
        }
        let idx = ItemIdx(self.items.len() as u32);
        if let Some(first) = self.index.get(&self.items, id.as_str()) {
            let related = Locus::Path(item_path(&self.items, first));
            let locus = self.pending_key(&p, "id");
            self.diagnostics
                .push(Diagnostic::new(Problem::DuplicateId { id }, locus).with_related(related));
            return;
        }
        if let Some(detail) = raw.title.as_deref().and_then(title_fault) {
            let locus = self.pending_key(&p, "title");
            let problem = Problem::BadValue {
                owner: format!("`{id}`"),
                field: "title",
                detail,
            };
            self.diagnostics.push(Diagnostic::new(problem, locus));
        }
        let mut children_list = self.child_list(raw, &p, &id);
        let (deps_key, deps) = match raw.deps.take() {
            Some((key, deps)) => (key, Some(deps)),
            None => ("depends_on", None),
        };
        let priority = match raw.priority.take() {
            Some(RawPriority::Level(level)) => u8::try_from(level).ok().and_then(Priority::new),
            Some(RawPriority::Name(name)) => Priority::from_name(&name),
            None => None,
        }
        .unwrap_or_default();
        let initial = raw
            .status
            .as_deref()
            .map(PlanStatus::from_text)
            .unwrap_or_default();
        let details = raw.rare.take().map(|rare| Details {
            description: rare.description,
            resources: rare.resources.unwrap_or_default(),
            agent: rare.agent,
            executor: rare.executor,
            acceptance: rare.acceptance.unwrap_or_default(),
            context: rare.context.unwrap_or_default(),
            status_text: None,
            extra: rare.extra,
        });
        let mut details = details.unwrap_or_default();
        details.status_text = raw.status.take();
        self.items.push(Item {
            kind: p.kind,
            title: raw.title.take().unwrap_or_else(|| id.local().to_owned()),
            id,
            priority,
            depends_on: Vec::new(),
            expect_changes: raw.expect_changes.unwrap_or(true),
            initial,
            parent: p.parent,
            children: Vec::new(),
            details: (!details.is_empty()).then(|| Box::new(details)),
            subtree_end: 0,
            origin: Origin {
                list_key: LIST_KEYS.iter().position(|k| *k == p.key).unwrap_or(0) as u8,
                index: p.index,
                deps_alias: deps_key == "dependencies",
            },
        });
        self.index.insert_last(&self.items);
        self.raw_deps.push(deps);
        match p.parent {
            Some(parent) => self.items[parent.index()].children.push(idx),
            None => self.roots.push(idx),
        }
        if let Some(list) = children_list.as_mut() {
            self.list(Some(idx), list);
        }
    }

    /// Takes the item's child list, reporting lists at the wrong level or more than one.
    fn child_list(
        &mut self,
        raw: &mut RawItem<'a>,
        p: &Place,
        id: &FullId,
    ) -> Option<RawChildren<'a>> {
        let lists = std::mem::take(&mut raw.children);
        let mut chosen: Option<RawChildren<'a>> = None;
        for list in lists {
            let problem = if list.kind != p.kind.child() {
                Problem::WrongLevel {
                    owner: format!("`{id}`"),
                    kind: p.kind,
                    field: list.key.to_owned(),
                }
            } else if let Some(first) = &chosen {
                Problem::MixedLevels {
                    owner: format!("`{id}`"),
                    first: first.key,
                    second: list.key,
                }
            } else {
                chosen = Some(list);
                continue;
            };
            let locus = self.pending_key(p, list.key);
            self.diagnostics.push(Diagnostic::new(problem, locus));
        }
        chosen
    }

    /// Checks the written id and derives the full id; reports and returns `None` if bad.
    fn full_id(&mut self, raw: &RawItem<'a>, p: &Place) -> Option<FullId> {
        let parent_id = p.parent.map(|parent| &self.items[parent.index()].id);
        let Some(written) = raw.id.as_deref() else {
            let owner = match parent_id {
                Some(parent) => format!("{} {} of `{parent}`", ordinal(p.index), p.kind),
                None => format!("{} {} of the plan", ordinal(p.index), p.kind),
            };
            let locus = Locus::Path(self.pending_path(p));
            self.diagnostics
                .push(Diagnostic::new(Problem::MissingId { owner }, locus));
            return None;
        };
        let problem = if !written.contains('.') {
            match check_local_id(written) {
                Ok(()) => {
                    return Some(match parent_id {
                        Some(parent) => {
                            let mut full =
                                String::with_capacity(parent.as_str().len() + 1 + written.len());
                            full.push_str(parent.as_str());
                            full.push('.');
                            full.push_str(written);
                            FullId::from_checked(full)
                        }
                        None => FullId::from_checked(written.to_owned()),
                    });
                }
                Err(fault) => Problem::InvalidId {
                    id: written.to_owned(),
                    fault,
                },
            }
        } else {
            match (FullId::parse(written), parent_id) {
                (Err(fault), _) => Problem::InvalidId {
                    id: written.to_owned(),
                    fault,
                },
                (Ok(_), None) => Problem::DottedTopLevel {
                    id: written.to_owned(),
                    kind: p.kind,
                },
                (Ok(full), Some(parent)) => {
                    let extends = written
                        .strip_prefix(parent.as_str())
                        .and_then(|rest| rest.strip_prefix('.'))
                        .is_some_and(|rest| !rest.contains('.'));
                    if extends {
                        return Some(full);
                    }
                    Problem::NotExtendingParent {
                        id: written.to_owned(),
                        parent: parent.clone(),
                    }
                }
            }
        };
        let locus = self.pending_key(p, "id");
        self.diagnostics.push(Diagnostic::new(problem, locus));
        None
    }

    fn finish_subtrees(&mut self) {
        for i in (0..self.items.len()).rev() {
            let end = match self.items[i].children.last() {
                Some(last) => self.items[last.index()].subtree_end,
                None => i as u32 + 1,
            };
            self.items[i].subtree_end = end;
        }
    }

    fn resolve_dependencies(&mut self) {
        let mut budget = FULL_SUGGESTION_BUDGET;
        let mut scratch = String::new();
        let raw_deps = std::mem::take(&mut self.raw_deps);
        for (i, deps) in raw_deps.into_iter().enumerate() {
            let Some(deps) = deps else { continue };
            let from = ItemIdx(i as u32);
            let mut resolved: Vec<Dep> = Vec::with_capacity(deps.len());
            for (k, dep) in deps.iter().enumerate() {
                let at = || {
                    let mut path = item_path(&self.items, from);
                    path.push(PathSeg::Key(self.items[i].origin.deps_key().to_owned()));
                    path.push(PathSeg::Index(k));
                    Locus::Path(path)
                };
                let Some(target) = self.lookup_dep(from, &dep.id, &mut scratch) else {
                    let suggestion = self.suggest(from, &dep.id, &mut budget);
                    let problem = Problem::UnknownDependency {
                        from: self.items[i].id.clone(),
                        dep: dep.id.to_string(),
                        suggestion,
                    };
                    self.diagnostics.push(Diagnostic::new(problem, at()));
                    continue;
                };
                let item = &self.items[i];
                let end = item.subtree_end as usize;
                let problem = if target == from {
                    Problem::SelfDependency {
                        id: item.id.clone(),
                    }
                } else if target.index() < i
                    && self.items[target.index()].subtree_end as usize >= end
                {
                    Problem::DependsOnAncestor {
                        from: item.id.clone(),
                        dep: self.items[target.index()].id.clone(),
                    }
                } else if target.index() > i && target.index() < end {
                    Problem::DependsOnDescendant {
                        from: item.id.clone(),
                        dep: self.items[target.index()].id.clone(),
                    }
                } else {
                    match resolved.iter_mut().find(|d| d.target == target) {
                        Some(existing) => existing.required |= dep.required,
                        None => resolved.push(Dep {
                            target,
                            required: dep.required,
                        }),
                    }
                    continue;
                };
                self.diagnostics.push(Diagnostic::new(problem, at()));
            }
            self.dependency_count += resolved.len();
            self.items[i].depends_on = resolved;
        }
    }

    fn lookup_dep(&self, from: ItemIdx, dep: &str, scratch: &mut String) -> Option<ItemIdx> {
        if dep.contains('.') {
            return self.index.get(&self.items, dep);
        }
        if let Some(parent) = self.items[from.index()].parent {
            scratch.clear();
            scratch.push_str(self.items[parent.index()].id.as_str());
            scratch.push('.');
            scratch.push_str(dep);
            if let Some(found) = self.index.get(&self.items, scratch) {
                return Some(found);
            }
        }
        self.index.get(&self.items, dep)
    }

    /// Finds the id the author most likely meant.
    fn suggest(&self, from: ItemIdx, dep: &str, budget: &mut usize) -> Option<FullId> {
        let mut ancestor = self.items[from.index()].parent;
        while let Some(a) = ancestor {
            let candidate = format!("{}.{dep}", self.items[a.index()].id);
            if let Some(found) = self.index.get(&self.items, &candidate) {
                return Some(self.items[found.index()].id.clone());
            }
            ancestor = self.items[a.index()].parent;
        }
        if *budget == 0 {
            return None;
        }
        *budget -= 1;
        let limit = (dep.len() / 4).max(2);
        let mut best: Option<(usize, &FullId)> = None;
        for (i, item) in self.items.iter().enumerate() {
            if i == from.index() {
                continue;
            }
            for written in [item.id.as_str(), item.id.local()] {
                if written.len().abs_diff(dep.len()) > limit {
                    continue;
                }
                let d = strsim::levenshtein(dep, written);
                if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, &item.id));
                }
            }
        }
        best.map(|(_, id)| id.clone())
    }
}

fn ordinal(index: u32) -> String {
    let n = index + 1;
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("the {n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_read_naturally() {
        assert_eq!(ordinal(0), "the 1st");
        assert_eq!(ordinal(1), "the 2nd");
        assert_eq!(ordinal(10), "the 11th");
        assert_eq!(ordinal(21), "the 22nd");
    }
}
