//! The conflict radar: which active tasks (running, or on their way to the
//! target) change the same files, read from their branches while they work.
//!
//! [`changes`] reads, for one branch, every path it changes against the
//! point where it left the target (`git merge-base`), with libgit2: a
//! diff of two trees, no checkout. The coordinator asks again whenever a
//! branch's tip moves (each commit), so the radar follows the work as it
//! is committed. [`overlaps`] pairs the tasks up (pure), and [`held_back`]
//! says which ready tasks `[scheduling] avoid_overlap` holds back: those
//! whose `context` globs match a path a running task changes.

use std::collections::BTreeMap;
use std::path::Path;

use git2::Repository;
use globset::{Glob, GlobSetBuilder};

use crate::git::{GitError, merge, refs};
use crate::lifecycle::Status;
use crate::plan::{FullId, ItemIdx, Plan};
use crate::state::State;
use crate::state::model::RADAR_PATHS;

/// What the radar read of one branch: its tip and the paths it changes,
/// or `None` when the branch is gone.
pub type Reading = Option<(String, Vec<String>)>;

/// Returns a branch's tip and the paths it changes against the target
/// (sorted, at most [`RADAR_PATHS`]), or `None` when the branch is gone.
/// Blocking.
pub fn changes(repo: &Path, target: &str, branch: &str) -> Result<Reading, GitError> {
    let git = Repository::open(repo).map_err(GitError::git(repo))?;
    let Some(tip) = refs::tip(&git, branch).map_err(GitError::git(repo))? else {
        return Ok(None);
    };
    let Some(head) = refs::tip(&git, target).map_err(GitError::git(repo))? else {
        return Ok(None);
    };
    let base = git.merge_base(head, tip).map_err(GitError::git(repo))?;
    let mut paths: Vec<String> = merge::diff_summary(&git, repo, base, tip, false)?
        .into_iter()
        .map(|c| c.path)
        .collect();
    paths.sort();
    paths.dedup();
    paths.truncate(RADAR_PATHS);
    Ok(Some((tip.to_string(), paths)))
}

/// Returns, for each task, the other tasks that change some of the same
/// paths, with those paths (sorted).
pub fn overlaps(
    changes: &BTreeMap<FullId, Vec<String>>,
) -> BTreeMap<FullId, BTreeMap<FullId, Vec<String>>> {
    let mut out: BTreeMap<FullId, BTreeMap<FullId, Vec<String>>> = BTreeMap::new();
    let tasks: Vec<(&FullId, &Vec<String>)> = changes.iter().collect();
    for (i, (a, pa)) in tasks.iter().enumerate() {
        for (b, pb) in &tasks[i + 1..] {
            let shared: Vec<String> = pa
                .iter()
                .filter(|p| pb.binary_search(p).is_ok())
                .cloned()
                .collect();
            if shared.is_empty() {
                continue;
            }
            out.entry((*a).clone())
                .or_default()
                .insert((*b).clone(), shared.clone());
            out.entry((*b).clone())
                .or_default()
                .insert((*a).clone(), shared);
        }
    }
    out
}

/// Returns whether the radar watches a task in this status.
pub fn watches(status: Status) -> bool {
    matches!(
        status,
        Status::Running
            | Status::AwaitingMerge
            | Status::Merging
            | Status::AwaitingReview
            | Status::Conflicted
    )
}

/// Returns the ready tasks whose `context` globs match a path a running
/// task changes, each with one such running task (`[scheduling]
/// avoid_overlap`).
pub fn held_back(plan: &Plan, state: &State) -> BTreeMap<ItemIdx, ItemIdx> {
    let running: Vec<(ItemIdx, &Vec<String>)> = state
        .items
        .iter()
        .filter(|(_, s)| s.status == Status::Running)
        .filter_map(|(id, s)| Some((plan.lookup(id.as_str())?, &s.radar.as_ref()?.changes)))
        .filter(|(_, changes)| !changes.is_empty())
        .collect();
    let mut out = BTreeMap::new();
    if running.is_empty() {
        return out;
    }
    for &task in plan.tasks() {
        let item = plan.item(task);
        let status = state
            .items
            .get(&item.id)
            .map(|s| s.status)
            .unwrap_or_else(|| item.initial.into());
        if !matches!(status, Status::Pending | Status::Ready | Status::Retrying)
            || item.context().is_empty()
        {
            continue;
        }
        let mut builder = GlobSetBuilder::new();
        for pattern in item.context() {
            // A context entry that is not a glob names a path, or a folder.
            if let Ok(glob) = Glob::new(pattern) {
                builder.add(glob);
            }
            if let Ok(glob) = Glob::new(&format!("{}/**", pattern.trim_end_matches('/'))) {
                builder.add(glob);
            }
        }
        let Ok(set) = builder.build() else {
            continue;
        };
        if let Some((by, _)) = running
            .iter()
            .filter(|(by, _)| *by != task)
            .find(|(_, changes)| changes.iter().any(|p| set.is_match(p)))
        {
            out.insert(task, *by);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> FullId {
        FullId::parse(s).unwrap()
    }

    #[test]
    fn tasks_overlap_on_the_paths_they_share() {
        let changes = BTreeMap::from([
            (id("A"), vec!["a.rs".to_owned(), "lib.rs".to_owned()]),
            (id("B"), vec!["b.rs".to_owned(), "lib.rs".to_owned()]),
            (id("C"), vec!["c.rs".to_owned()]),
        ]);
        let found = overlaps(&changes);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[&id("A")][&id("B")], ["lib.rs"]);
        assert_eq!(found[&id("B")][&id("A")], ["lib.rs"]);
        assert!(!found.contains_key(&id("C")));
    }

    #[test]
    fn a_ready_task_whose_context_a_running_task_changes_is_held_back() {
        let plan = crate::plan::from_bytes(
            Path::new("plan.toml"),
            b"[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\ncontext = [\"src/ledger\"]\n[[task]]\nid = \"C\"\ncontext = [\"docs/*.md\"]\n",
            &crate::plan::Rules::default(),
        )
        .unwrap();
        let mut state = State::default();
        let mut a = crate::state::ItemState::new(Status::Running);
        a.radar = Some(crate::state::model::Radar {
            tip: "t".to_owned(),
            changes: vec!["src/ledger/mod.rs".to_owned()],
            overlaps: BTreeMap::new(),
        });
        state.items.insert(id("A"), a);
        let held = held_back(&plan, &state);
        let b = plan.lookup("B").unwrap();
        assert_eq!(held.get(&b), plan.lookup("A").as_ref());
        assert_eq!(held.len(), 1, "C's context is elsewhere");
    }
}
