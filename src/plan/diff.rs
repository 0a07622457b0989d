//! Plan versions: a plan file's digest, and what changed between two plans.
//!
//! Pure: [`digest`] hashes the file's bytes (SHA-256, hex), so the same file
//! always has the same digest and any edit (even a comment) makes a new one;
//! [`diff`] compares two validated plans item by item (tasks and subtasks,
//! by full id), so a change that only moves text around reads as no change.
//! `docs/plan.md` ("Plan versions") says how runs use them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::{FullId, Item, Kind, Plan};

/// Returns the SHA-256 of a plan file's bytes, as 64 hex digits.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in hash.iter() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Returns the first 12 hex digits of a digest, as messages show it.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// What changed from one plan to the next, over tasks and subtasks; each
/// list is in the plan order of the plan that has the item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDiff {
    pub added: Vec<FullId>,
    pub removed: Vec<FullId>,
    pub retitled: Vec<Retitled>,
    /// Dependencies added, removed or made optional or required.
    pub dependencies: Vec<DepsChanged>,
    pub priorities: Vec<Reprioritized>,
    /// Anything else an agent is told: description, acceptance, context,
    /// agent, executor, resources, `expect_changes`, extra fields.
    pub redefined: Vec<FullId>,
}

/// A new title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retitled {
    pub id: FullId,
    pub from: String,
    pub to: String,
}

/// New dependencies, each written `ID` or `ID?` (optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepsChanged {
    pub id: FullId,
    pub from: Vec<String>,
    pub to: Vec<String>,
}

/// A new priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reprioritized {
    pub id: FullId,
    pub from: u8,
    pub to: u8,
}

impl PlanDiff {
    /// Returns whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.retitled.is_empty()
            && self.dependencies.is_empty()
            && self.priorities.is_empty()
            && self.redefined.is_empty()
    }

    /// Returns the items kept from one plan to the other whose definition
    /// changed in any way, each once, sorted.
    pub fn changed(&self) -> BTreeSet<&FullId> {
        self.retitled
            .iter()
            .map(|r| &r.id)
            .chain(self.dependencies.iter().map(|d| &d.id))
            .chain(self.priorities.iter().map(|p| &p.id))
            .chain(self.redefined.iter())
            .collect()
    }
}

/// Compares the tasks and subtasks of two plans.
pub fn diff(old: &Plan, new: &Plan) -> PlanDiff {
    let mut out = PlanDiff::default();
    fn leaves(plan: &Plan) -> impl Iterator<Item = &Item> {
        plan.items()
            .iter()
            .filter(|i| matches!(i.kind, Kind::Task | Kind::Subtask))
    }
    for item in leaves(old) {
        if new.lookup(item.id.as_str()).is_none() {
            out.removed.push(item.id.clone());
        }
    }
    for item in leaves(new) {
        let Some(before) = old.lookup(item.id.as_str()).map(|i| old.item(i)) else {
            out.added.push(item.id.clone());
            continue;
        };
        if before.title != item.title {
            out.retitled.push(Retitled {
                id: item.id.clone(),
                from: before.title.clone(),
                to: item.title.clone(),
            });
        }
        let (from, to) = (deps(old, before), deps(new, item));
        if from != to {
            out.dependencies.push(DepsChanged {
                id: item.id.clone(),
                from,
                to,
            });
        }
        if before.priority != item.priority {
            out.priorities.push(Reprioritized {
                id: item.id.clone(),
                from: before.priority.level(),
                to: item.priority.level(),
            });
        }
        let redefined = before.description() != item.description()
            || before.acceptance() != item.acceptance()
            || before.context() != item.context()
            || before.agent() != item.agent()
            || before.executor() != item.executor()
            || before.resources() != item.resources()
            || before.expect_changes != item.expect_changes
            || before.extra() != item.extra();
        if redefined {
            out.redefined.push(item.id.clone());
        }
    }
    out
}

/// Returns an item's dependencies as sorted `ID` (required) or `ID?` (optional).
fn deps(plan: &Plan, item: &Item) -> Vec<String> {
    let mut out: Vec<String> = item
        .depends_on
        .iter()
        .map(|d| {
            let id = &plan.item(d.target).id;
            if d.required {
                id.to_string()
            } else {
                format!("{id}?")
            }
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::Rules;

    fn plan(text: &str) -> Plan {
        crate::plan::from_bytes(Path::new("plan.toml"), text.as_bytes(), &Rules::default()).unwrap()
    }

    #[test]
    fn digests_are_sha256_of_the_bytes() {
        assert_eq!(
            digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(short(&digest(b"")), "e3b0c44298fc");
    }

    #[test]
    fn every_kind_of_change_is_found_once() {
        let old = plan(
            "[[task]]\nid = \"A\"\ntitle = \"Alpha\"\n[[task]]\nid = \"B\"\n[[task.subtask]]\nid = \"S1\"\n\
             [[task]]\nid = \"C\"\ndepends_on = [\"A\"]\n[[task]]\nid = \"D\"\ndescription = \"old\"\n",
        );
        let new = plan(
            "[[task]]\nid = \"A\"\ntitle = \"Alpha, again\"\npriority = 1\n[[task]]\nid = \"C\"\n\
             depends_on = [{ id = \"A\", required = false }]\n[[task]]\nid = \"D\"\ndescription = \"new\"\n\
             [[task]]\nid = \"E\"\n",
        );
        let d = diff(&old, &new);
        let ids = |v: &[FullId]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&d.added), ["E"]);
        assert_eq!(ids(&d.removed), ["B", "B.S1"]);
        assert_eq!(d.retitled[0].to, "Alpha, again");
        assert_eq!(
            (&d.dependencies[0].from, &d.dependencies[0].to),
            (&vec!["A".to_owned()], &vec!["A?".to_owned()])
        );
        assert_eq!((d.priorities[0].from, d.priorities[0].to), (2, 1));
        assert_eq!(ids(&d.redefined), ["D"]);
        let changed: Vec<&str> = d.changed().iter().map(|i| i.as_str()).collect();
        assert_eq!(changed, ["A", "C", "D"]);
        assert!(diff(&new, &new).is_empty());
    }
}
