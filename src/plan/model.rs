//! The plan as the rest of `orch` sees it: an arena of items in plan order.
//!
//! Items are stored in pre-order (a parent before its children, siblings in
//! the order the file lists them), so "plan order" is simply the arena index
//! and every subtree is a contiguous range of indices. Ids are validated
//! [`FullId`]s; dependencies are already resolved to arena indices. The model
//! is built only by [`crate::plan::build`] and is immutable afterwards.
//!
//! Invariants: every `FullId` is unique; a child's id extends its parent's;
//! `depends_on` never names the item itself, an ancestor or a descendant.

use std::fmt;
use std::ops::Range;

use std::hash::Hasher;

use hashbrown::HashTable;
use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::plan::graph::Graph;

/// The level of an item in the plan hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Phase,
    Milestone,
    Task,
    Subtask,
}

impl Kind {
    /// Returns the lowercase name used in messages and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Phase => "phase",
            Kind::Milestone => "milestone",
            Kind::Task => "task",
            Kind::Subtask => "subtask",
        }
    }

    /// Returns the level nested directly below this one.
    pub fn child(self) -> Option<Kind> {
        match self {
            Kind::Phase => Some(Kind::Milestone),
            Kind::Milestone => Some(Kind::Task),
            Kind::Task => Some(Kind::Subtask),
            Kind::Subtask => None,
        }
    }

    /// Returns whether items of this kind only organise other items.
    pub fn is_container(self) -> bool {
        matches!(self, Kind::Phase | Kind::Milestone)
    }

    /// Parses a level name as hacky-hack's `type` field writes it.
    pub(crate) fn from_type_name(name: &str) -> Option<Kind> {
        [Kind::Phase, Kind::Milestone, Kind::Task, Kind::Subtask]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest local id, in bytes.
pub const MAX_LOCAL_ID: usize = 64;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdFault {
    #[error("ids cannot be empty")]
    Empty,
    #[error("an id segment is empty (`..` or a leading or trailing `.`)")]
    EmptySegment,
    #[error("a segment is {len} characters long; the limit is {MAX_LOCAL_ID}")]
    TooLong { len: usize },
    #[error(
        "{} is not allowed; ids become branch and folder names, so use only letters, digits, `_` and `-`",
        describe_char(*ch)
    )]
    BadChar { ch: char },
}

fn describe_char(ch: char) -> String {
    match ch {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

/// The longest title accepted, in bytes. A title travels in the agent's
/// environment (`ORCH_TASK_TITLE`), where Linux caps one string at 128 KiB
/// and all of them together at a few times that; past the cap the agent
/// cannot even start. 16 KiB leaves room for everything else.
pub const MAX_TITLE: usize = 16 * 1024;

/// Returns why a title cannot be passed to an agent, if it cannot: a NUL
/// byte (no environment string can hold one) or more than [`MAX_TITLE`] bytes.
pub fn title_fault(title: &str) -> Option<String> {
    if title.contains('\0') {
        return Some("a title cannot hold a NUL byte (`\\u0000`): it is passed to the agent in its environment".to_owned());
    }
    if title.len() > MAX_TITLE {
        return Some(format!(
            "the title is {} bytes long, more than the {MAX_TITLE} an agent's environment can safely carry; put the detail in `description`",
            title.len()
        ));
    }
    None
}

/// Checks one local id (a single segment, no dots).
pub fn check_local_id(s: &str) -> Result<(), IdFault> {
    if s.is_empty() {
        return Err(IdFault::Empty);
    }
    if let Some(ch) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(IdFault::BadChar { ch });
    }
    if s.len() > MAX_LOCAL_ID {
        return Err(IdFault::TooLong { len: s.len() });
    }
    Ok(())
}

/// A dotted path of local ids (`P1.M2.T3.S1`), valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FullId(Box<str>);

impl FullId {
    /// Parses a full id, checking every segment.
    pub fn parse(s: &str) -> Result<FullId, IdFault> {
        if s.is_empty() {
            return Err(IdFault::Empty);
        }
        for segment in s.split('.') {
            match check_local_id(segment) {
                Err(IdFault::Empty) => return Err(IdFault::EmptySegment),
                other => other?,
            }
        }
        Ok(FullId(s.into()))
    }

    /// Wraps a string already checked by [`FullId::parse`] or built from checked parts.
    pub(crate) fn from_checked(s: String) -> FullId {
        FullId(s.into_boxed_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the last segment.
    pub fn local(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or(&self.0)
    }

    /// Returns whether `other` lies strictly below this id.
    pub fn is_ancestor_of(&self, other: &FullId) -> bool {
        other.0.len() > self.0.len()
            && other.0.starts_with(&*self.0)
            && other.0.as_bytes()[self.0.len()] == b'.'
    }
}

impl fmt::Display for FullId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for FullId {
    type Error = IdFault;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        FullId::parse(&s)
    }
}

impl From<FullId> for String {
    fn from(id: FullId) -> String {
        id.0.into()
    }
}

impl std::borrow::Borrow<str> for FullId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The position of an item in [`Plan::items`], which is also its plan order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemIdx(pub(crate) u32);

impl ItemIdx {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Task priority: 0 urgent, 1 high, 2 normal, 3 low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Priority(u8);

impl Priority {
    pub const URGENT: Priority = Priority(0);
    pub const NORMAL: Priority = Priority(2);
    pub const LOWEST: Priority = Priority(3);

    /// Returns the priority for 0..=3.
    pub fn new(level: u8) -> Option<Priority> {
        (level <= Self::LOWEST.0).then_some(Priority(level))
    }

    /// Parses the names Taskmaster and others use (`critical`, `high`, ...).
    pub fn from_name(name: &str) -> Option<Priority> {
        let level = match name.to_ascii_lowercase().as_str() {
            "urgent" | "critical" => 0,
            "high" => 1,
            "normal" | "medium" => 2,
            "low" => 3,
            _ => return None,
        };
        Some(Priority(level))
    }

    pub fn level(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

/// The status an item starts with, from the plan's own `status` field (DESIGN §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanStatus {
    #[default]
    Pending,
    Resolved,
    Cancelled,
    /// Waiting for a person (`review`, `blocked`): no agent starts on it
    /// and its dependents wait, as Taskmaster's own `next` skips it.
    Held,
}

impl PlanStatus {
    /// Maps a status written by another tool: done-like values resolve,
    /// dropped ones cancel, ones waiting for a person hold.
    pub fn from_text(text: &str) -> PlanStatus {
        match text.to_ascii_lowercase().as_str() {
            "done" | "complete" | "completed" | "resolved" | "merged" => PlanStatus::Resolved,
            "cancelled" | "canceled" | "deferred" | "obsolete" => PlanStatus::Cancelled,
            "review" | "blocked" => PlanStatus::Held,
            _ => PlanStatus::Pending,
        }
    }
}

/// A resolved dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dep {
    pub target: ItemIdx,
    /// `false`: wait for the dependency to finish, whatever its outcome.
    pub required: bool,
}

/// The keys a list of items can be written under.
pub(crate) const LIST_KEYS: [&str; 9] = [
    "phase",
    "phases",
    "milestone",
    "milestones",
    "task",
    "tasks",
    "subtask",
    "subtasks",
    "backlog",
];

/// Where an item sits in the source document, for error locations.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    /// The key of the list the item was in, as an index into [`LIST_KEYS`].
    pub list_key: u8,
    /// Its position in that list.
    pub index: u32,
    /// Whether its dependencies were written as `dependencies` (else `depends_on`).
    pub deps_alias: bool,
}

impl Origin {
    pub fn key(self) -> &'static str {
        LIST_KEYS[self.list_key as usize]
    }

    pub fn deps_key(self) -> &'static str {
        if self.deps_alias {
            "dependencies"
        } else {
            "depends_on"
        }
    }
}

/// One node of the plan: a phase, milestone, task or subtask.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    pub id: FullId,
    pub title: String,
    pub priority: Priority,
    pub depends_on: Vec<Dep>,
    pub expect_changes: bool,
    /// The status implied by the plan's own `status` field.
    pub initial: PlanStatus,
    pub parent: Option<ItemIdx>,
    pub children: Vec<ItemIdx>,
    /// Fields most items of large generated plans leave out; `None` when all are empty.
    pub(crate) details: Option<Box<Details>>,
    /// One past the last index of this item's subtree.
    pub(crate) subtree_end: u32,
    pub(crate) origin: Origin,
}

/// Where agents and checks run (`[executor] kind`, a task's `executor`).
///
/// Defined with the plan because a task names it; the config re-exports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    /// On this machine, under a supervisor.
    #[default]
    Local,
    /// As a Slurm job, started with `srun` by the supervisor.
    Slurm,
}

impl ExecutorKind {
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

/// A task's executor choice: `executor = "slurm"`, or a table that picks the
/// kind and overrides the resources of `[executor]` (`executor = { cpus = 8 }`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorChoice {
    pub kind: Option<ExecutorKind>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub cpus: Option<u32>,
    pub mem: Option<String>,
    pub gres: Option<String>,
    pub extra_args: Option<Vec<String>>,
}

/// The less common fields of an item, kept out of line so large plans stay small.
#[derive(Debug, Clone, Default)]
pub struct Details {
    pub description: Option<String>,
    /// Resource name and amount, counted against `[resources]` in the config.
    pub resources: Vec<(String, u32)>,
    pub agent: Option<String>,
    /// Where the item's agent runs, and with what, when it differs from `[executor]`.
    pub executor: Option<ExecutorChoice>,
    pub acceptance: Vec<String>,
    pub context: Vec<String>,
    /// The `status` field as written, if any.
    pub status_text: Option<String>,
    /// Fields `orch` does not know, kept for prompt templates.
    pub extra: Map<String, Value>,
}

impl Details {
    pub(crate) fn is_empty(&self) -> bool {
        self.description.is_none()
            && self.resources.is_empty()
            && self.agent.is_none()
            && self.executor.is_none()
            && self.acceptance.is_empty()
            && self.context.is_empty()
            && self.status_text.is_none()
            && self.extra.is_empty()
    }
}

impl Item {
    /// Returns the arena range of this item's descendants.
    pub fn descendants(&self, me: ItemIdx) -> Range<usize> {
        me.index() + 1..self.subtree_end as usize
    }

    pub fn description(&self) -> Option<&str> {
        self.details.as_ref()?.description.as_deref()
    }

    /// Returns the resources the item holds while it runs.
    pub fn resources(&self) -> &[(String, u32)] {
        self.details
            .as_ref()
            .map(|d| d.resources.as_slice())
            .unwrap_or_default()
    }

    /// Returns the agent preset the item picks, if any.
    pub fn agent(&self) -> Option<&str> {
        self.details.as_ref()?.agent.as_deref()
    }

    /// Returns the item's executor choice (`executor = ...`), if it makes one.
    pub fn executor(&self) -> Option<&ExecutorChoice> {
        self.details.as_ref()?.executor.as_ref()
    }

    pub fn acceptance(&self) -> &[String] {
        self.details
            .as_ref()
            .map(|d| d.acceptance.as_slice())
            .unwrap_or_default()
    }

    /// Returns the paths the agent should start from.
    pub fn context(&self) -> &[String] {
        self.details
            .as_ref()
            .map(|d| d.context.as_slice())
            .unwrap_or_default()
    }

    /// Returns the `status` field as the plan wrote it.
    pub fn status_text(&self) -> Option<&str> {
        self.details.as_ref()?.status_text.as_deref()
    }

    /// Returns the fields `orch` does not know, if any.
    pub fn extra(&self) -> Option<&Map<String, Value>> {
        self.details
            .as_ref()
            .map(|d| &d.extra)
            .filter(|e| !e.is_empty())
    }
}

/// Full id to item, without a second copy of each id: the table holds
/// indices and compares against the ids in the arena.
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    table: HashTable<ItemIdx>,
}

impl IdIndex {
    fn hash(id: &str) -> u64 {
        let mut h = FxHasher::default();
        h.write(id.as_bytes());
        h.finish()
    }

    /// Returns the item with this full id.
    pub(crate) fn get(&self, items: &[Item], id: &str) -> Option<ItemIdx> {
        self.table
            .find(Self::hash(id), |i| items[i.index()].id.as_str() == id)
            .copied()
    }

    /// Adds the last item of the arena; its id must not be in the index yet.
    pub(crate) fn insert_last(&mut self, items: &[Item]) {
        let idx = ItemIdx(items.len() as u32 - 1);
        let hash = Self::hash(items[idx.index()].id.as_str());
        self.table
            .insert_unique(hash, idx, |i| Self::hash(items[i.index()].id.as_str()));
    }
}

/// A validated plan.
#[derive(Debug)]
pub struct Plan {
    pub title: Option<String>,
    pub extra: Map<String, Value>,
    pub(crate) items: Vec<Item>,
    pub(crate) roots: Vec<ItemIdx>,
    pub(crate) index: IdIndex,
    pub(crate) graph: Graph,
    pub(crate) dependency_count: usize,
}

impl Plan {
    /// Returns every item in plan order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn item(&self, idx: ItemIdx) -> &Item {
        &self.items[idx.index()]
    }

    /// Returns the top-level items.
    pub fn roots(&self) -> &[ItemIdx] {
        &self.roots
    }

    /// Returns the item with this full id.
    pub fn lookup(&self, id: &str) -> Option<ItemIdx> {
        self.index.get(&self.items, id)
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Returns the tasks in plan order.
    pub fn tasks(&self) -> &[ItemIdx] {
        self.graph.tasks()
    }

    /// Returns the number of dependencies declared (after removing repeats).
    pub fn dependency_count(&self) -> usize {
        self.dependency_count
    }

    /// Returns the number of subtasks.
    pub fn subtask_count(&self) -> usize {
        self.items
            .iter()
            .filter(|item| item.kind == Kind::Subtask)
            .count()
    }

    /// Returns the task an item belongs to (itself for a task), if any.
    pub fn task_of(&self, idx: ItemIdx) -> Option<ItemIdx> {
        let item = self.item(idx);
        match item.kind {
            Kind::Task => Some(idx),
            Kind::Subtask => item.parent,
            Kind::Phase | Kind::Milestone => None,
        }
    }

    /// Iterates over the ancestors of an item, nearest first.
    pub fn ancestors(&self, idx: ItemIdx) -> impl Iterator<Item = ItemIdx> + '_ {
        std::iter::successors(self.item(idx).parent, |p| self.item(*p).parent)
    }

    /// Returns the arena indices as typed indices.
    pub fn indices(&self) -> impl Iterator<Item = ItemIdx> + use<'_> {
        (0..self.items.len() as u32).map(ItemIdx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_id_checks_every_segment() {
        assert!(FullId::parse("P1.M2.T3_a-b").is_ok());
        assert_eq!(FullId::parse("P1..T3"), Err(IdFault::EmptySegment));
        assert_eq!(FullId::parse(".P1"), Err(IdFault::EmptySegment));
        assert_eq!(FullId::parse(""), Err(IdFault::Empty));
        assert_eq!(FullId::parse("a/b"), Err(IdFault::BadChar { ch: '/' }));
        assert_eq!(FullId::parse("a b"), Err(IdFault::BadChar { ch: ' ' }));
        assert_eq!(FullId::parse("tâche"), Err(IdFault::BadChar { ch: 'â' }));
        assert_eq!(FullId::parse("x;rm"), Err(IdFault::BadChar { ch: ';' }));
        let long = "a".repeat(65);
        assert_eq!(FullId::parse(&long), Err(IdFault::TooLong { len: 65 }));
        assert!(FullId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn ancestry_respects_segment_boundaries() {
        let m = FullId::parse("P1.M1").unwrap();
        assert!(m.is_ancestor_of(&FullId::parse("P1.M1.T1").unwrap()));
        assert!(!m.is_ancestor_of(&FullId::parse("P1.M10").unwrap()));
        assert!(!m.is_ancestor_of(&m));
        assert_eq!(FullId::parse("P1.M1.T1").unwrap().local(), "T1");
    }

    #[test]
    fn plan_status_maps_other_tools_words() {
        for done in ["done", "completed", "Complete", "DONE"] {
            assert_eq!(PlanStatus::from_text(done), PlanStatus::Resolved, "{done}");
        }
        for gone in ["cancelled", "deferred", "Obsolete"] {
            assert_eq!(PlanStatus::from_text(gone), PlanStatus::Cancelled, "{gone}");
        }
        for held in ["review", "blocked", "Blocked"] {
            assert_eq!(PlanStatus::from_text(held), PlanStatus::Held, "{held}");
        }
        for other in ["pending", "in-progress", "Implementing", "Failed"] {
            assert_eq!(PlanStatus::from_text(other), PlanStatus::Pending, "{other}");
        }
    }

    #[test]
    fn priority_names() {
        assert_eq!(Priority::from_name("Critical"), Some(Priority::URGENT));
        assert_eq!(Priority::from_name("medium"), Some(Priority::NORMAL));
        assert_eq!(Priority::from_name("low"), Some(Priority::LOWEST));
        assert_eq!(Priority::from_name("soon"), None);
        assert_eq!(Priority::new(4), None);
    }

    #[test]
    fn a_task_picks_an_executor_by_name_or_table() {
        let text = "[[task]]\nid = \"A\"\nexecutor = \"slurm\"\n\
                    [[task]]\nid = \"B\"\nexecutor = { cpus = 8, mem = \"16G\" }\n\
                    [[task]]\nid = \"C\"\n";
        let plan = crate::plan::from_bytes(
            std::path::Path::new("plan.toml"),
            text.as_bytes(),
            &crate::plan::Rules::default(),
        )
        .unwrap();
        let executor = |id: &str| plan.item(plan.lookup(id).unwrap()).executor().cloned();
        assert_eq!(
            executor("A"),
            Some(ExecutorChoice {
                kind: Some(ExecutorKind::Slurm),
                ..ExecutorChoice::default()
            })
        );
        assert_eq!(
            executor("B"),
            Some(ExecutorChoice {
                cpus: Some(8),
                mem: Some("16G".to_owned()),
                ..ExecutorChoice::default()
            })
        );
        assert_eq!(executor("C"), None);
        for bad in ["executor = \"kubernetes\"", "executor = { cpu = 8 }"] {
            let text = format!("[[task]]\nid = \"A\"\n{bad}\n");
            let err = crate::plan::from_bytes(
                std::path::Path::new("plan.toml"),
                text.as_bytes(),
                &crate::plan::Rules::default(),
            );
            assert!(err.is_err(), "{bad}");
        }
    }
}
