//! Where tasks landed on the target, read from git alone: what makes the
//! state agree with the target after a crash, whatever status the state
//! file had recorded, and what tells a merge orch made from work that was
//! put on the target some other way.
//!
//! A task counts as landed when, on the target's first-parent history:
//! - the merge journal names it and its candidate is there (any strategy;
//!   a batch's candidate names each of its tasks with its own commit);
//! - or a commit there has the subject `Merge task <id>:` and the trailer
//!   `Orch-Task: <id>` (`merge` and `squash` write both);
//! - or, for `rebase`, a commit there is the replay of the branch tip kept
//!   under `refs/orch/backup/<id>/<n>` before it landed (same author, time
//!   and message).
//!
//! A task whose branch had no commits of its own ([`landed_empty`]) lands
//! without a commit: its branch, queued at its base, being gone while the
//! target holds the base is its landing (the queue deletes it at once).
//!
//! A branch tip that is merely contained in the target is not evidence: a
//! person (or an agent) may have moved the target onto it, and that is not
//! a merge that passed policy. Nor is a merge the state already recorded
//! for a task a person runs again after it merged (`orch retry`): only a
//! landing newer than that one counts.
//!
//! The walk goes newest first and stops once every task sought is found or
//! its base (where its branch started, which its landing must follow) or
//! its recorded merge is passed, or after [`MAX_WALK`] commits.

use std::collections::{BTreeMap, BTreeSet};

use git2::{Oid, Repository};

use super::land::Journal;

/// The most first-parent commits looked at.
pub const MAX_WALK: usize = 10_000;

/// A task to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sought {
    pub task: String,
    /// Where its branch started, if known.
    pub base: Option<Oid>,
    /// The newest tip kept under `refs/orch/backup/<id>/`, if any.
    pub backup: Option<Oid>,
    /// The merge the state recorded for the task before a person ran it
    /// again: neither it nor anything older is a landing of the new run.
    pub merged_before: Option<Oid>,
}

/// Returns the subject's task id if `message` is an orch merge commit's:
/// `Merge task <id>: …` with an `Orch-Task: <id>` trailer.
pub fn merged_task(message: &str) -> Option<&str> {
    task_of(message, "Merge task ", "Orch-Task")
}

/// Returns `<id>` when `message`'s subject is `<prefix><id>: …` and a line
/// after it is the trailer `<key>: <id>`.
fn task_of<'m>(message: &'m str, prefix: &str, key: &str) -> Option<&'m str> {
    let subject = message.lines().next()?;
    let rest = subject.strip_prefix(prefix)?;
    let (id, _) = rest.split_once(':')?;
    let trailer = format!("{key}: {id}");
    message
        .lines()
        .skip(1)
        .any(|l| l.trim_end() == trailer)
        .then_some(id)
}

/// What identifies a replayed commit: its author, author time and message.
#[derive(Debug, PartialEq, Eq)]
struct Replay {
    name: Vec<u8>,
    email: Vec<u8>,
    time: i64,
    message: Vec<u8>,
}

fn replay_key(commit: &git2::Commit<'_>) -> Replay {
    let author = commit.author();
    Replay {
        name: author.name_bytes().to_vec(),
        email: author.email_bytes().to_vec(),
        time: author.when().seconds(),
        message: commit.message_bytes().to_vec(),
    }
}

/// Finds where each sought task landed on `head`'s first-parent history.
pub fn find(
    repo: &Repository,
    head: Oid,
    sought: &[Sought],
    journal: Option<&Journal>,
) -> Result<BTreeMap<String, Oid>, git2::Error> {
    let mut found = BTreeMap::new();
    if let Some(journal) = journal
        && let Ok(candidate) = Oid::from_str(&journal.candidate)
        && contains(repo, head, candidate)?
    {
        for landing in journal.landings().into_iter().filter(|l| !l.revert) {
            let Some(s) = sought.iter().find(|s| s.task == landing.task) else {
                continue;
            };
            let Ok(commit) = Oid::from_str(&landing.commit) else {
                continue;
            };
            let recorded = s
                .merged_before
                .map(|before| contains(repo, before, commit))
                .transpose()?
                .unwrap_or(false);
            if !recorded {
                found.insert(landing.task.clone(), commit);
            }
        }
    }
    let mut open: BTreeSet<&str> = sought
        .iter()
        .map(|s| s.task.as_str())
        .filter(|t| !found.contains_key(*t))
        .collect();
    if open.is_empty() {
        return Ok(found);
    }
    let mut bases: BTreeMap<Oid, Vec<&str>> = BTreeMap::new();
    let mut recorded: BTreeMap<Oid, Vec<&str>> = BTreeMap::new();
    let mut replays: Vec<(&str, Replay)> = Vec::new();
    for s in sought.iter().filter(|s| open.contains(s.task.as_str())) {
        if let Some(base) = s.base {
            bases.entry(base).or_default().push(&s.task);
        }
        if let Some(before) = s.merged_before {
            recorded.entry(before).or_default().push(&s.task);
        }
        if let Some(commit) = s.backup.and_then(|b| repo.find_commit(b).ok()) {
            replays.push((&s.task, replay_key(&commit)));
        }
    }
    let mut walk = repo.revwalk()?;
    walk.simplify_first_parent()?;
    walk.push(head)?;
    for oid in walk.take(MAX_WALK) {
        if open.is_empty() {
            break;
        }
        let oid = oid?;
        // A recorded merge is no landing of the new run, and nothing
        // older is either: the task stops being sought before it matches.
        if let Some(tasks) = recorded.get(&oid) {
            for task in tasks {
                open.remove(task);
            }
        }
        let commit = repo.find_commit(oid)?;
        let message = String::from_utf8_lossy(commit.message_bytes());
        if let Some(id) = merged_task(&message)
            && open.remove(id)
        {
            found.insert(id.to_owned(), oid);
        }
        if !replays.is_empty() {
            let key = replay_key(&commit);
            for (task, replay) in &replays {
                if *replay == key && open.remove(task) {
                    found.insert((*task).to_owned(), oid);
                }
            }
        }
        if let Some(tasks) = bases.get(&oid) {
            for task in tasks {
                open.remove(task);
            }
        }
    }
    Ok(found)
}

/// Whether a task whose branch had no commits of its own landed: its
/// branch, queued at its base, is gone, and the target holds that base.
/// Such a branch lands without moving the target: the queue frees its
/// worktree and deletes the branch at once, before the state records the
/// merge, and nothing else shows it. A person who deleted that branch lost
/// nothing either: the target holds all of its work (none).
pub fn landed_empty(
    repo: &Repository,
    head: Oid,
    branch: &str,
    base: Oid,
    queued: Oid,
) -> Result<bool, git2::Error> {
    Ok(queued == base
        && crate::git::refs::tip(repo, branch)?.is_none()
        && contains(repo, head, base)?)
}

/// Returns the subject's task id if `message` is an orch revert commit's:
/// `Revert task <id>: …` with an `Orch-Revert: <id>` trailer.
pub fn reverted_task(message: &str) -> Option<&str> {
    task_of(message, "Revert task ", "Orch-Revert")
}

/// Finds the revert commits of merged tasks on `head`'s first-parent
/// history: `sought` maps each task asked to be reverted to its merge
/// commit, which its revert must follow.
pub fn find_reverts(
    repo: &Repository,
    head: Oid,
    sought: &BTreeMap<String, Oid>,
    journal: Option<&Journal>,
) -> Result<BTreeMap<String, Oid>, git2::Error> {
    let mut found = BTreeMap::new();
    if let Some(journal) = journal
        && let Ok(candidate) = Oid::from_str(&journal.candidate)
        && contains(repo, head, candidate)?
    {
        for landing in journal.landings().into_iter().filter(|l| l.revert) {
            if sought.contains_key(&landing.task)
                && let Ok(commit) = Oid::from_str(&landing.commit)
            {
                found.insert(landing.task.clone(), commit);
            }
        }
    }
    let mut open: BTreeMap<Oid, &str> = BTreeMap::new();
    for (task, merged) in sought.iter().filter(|(t, _)| !found.contains_key(*t)) {
        open.insert(*merged, task.as_str());
    }
    if open.is_empty() {
        return Ok(found);
    }
    let mut walk = repo.revwalk()?;
    walk.simplify_first_parent()?;
    walk.push(head)?;
    let mut looking: Vec<&str> = open.values().copied().collect();
    for oid in walk.take(MAX_WALK) {
        if looking.is_empty() {
            break;
        }
        let oid = oid?;
        if let Some(task) = open.get(&oid) {
            // Its merge: no revert of it lies further back.
            looking.retain(|t| t != task);
            continue;
        }
        let commit = repo.find_commit(oid)?;
        let message = String::from_utf8_lossy(commit.message_bytes());
        if let Some(id) = reverted_task(&message)
            && let Some(i) = looking.iter().position(|t| *t == id)
        {
            looking.remove(i);
            found.insert(id.to_owned(), oid);
        }
    }
    Ok(found)
}

/// Returns whether `commit` is `head` or one of its ancestors.
fn contains(repo: &Repository, head: Oid, commit: Oid) -> Result<bool, git2::Error> {
    Ok(commit == head || repo.graph_descendant_of(head, commit)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_commit_needs_both_its_subject_and_its_trailer() {
        let table = [
            ("Merge task T1: Do it\n\nOrch-Task: T1\n", Some("T1")),
            (
                "Merge task P1.M1.T2: x: y\n\nOrch-Task: P1.M1.T2",
                Some("P1.M1.T2"),
            ),
            ("Merge task T1: Do it\n", None),
            ("Merge task T1: Do it\n\nOrch-Task: T2\n", None),
            ("Add a file\n\nOrch-Task: T1\n", None),
        ];
        for (message, want) in table {
            assert_eq!(merged_task(message), want, "{message:?}");
        }
    }

    /// Commits `message` on `parent` (an empty tree will do: only the
    /// history is read).
    fn commit(repo: &Repository, parent: Option<Oid>, message: &str) -> Oid {
        let sig = git2::Signature::new("T", "t@example.com", &git2::Time::new(0, 0)).unwrap();
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let parents: Vec<git2::Commit<'_>> = parent
            .map(|p| repo.find_commit(p).unwrap())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repo.commit(None, &sig, &sig, message, &tree, &parents)
            .unwrap()
    }

    #[test]
    fn a_merge_recorded_before_a_retry_is_not_a_landing_of_the_new_run() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init(tmp.path()).unwrap();
        let base = commit(&repo, None, "base");
        let first = commit(&repo, Some(base), "Merge task T1: x\n\nOrch-Task: T1\n");
        let head = commit(&repo, Some(first), "Merge task T2: y\n\nOrch-Task: T2\n");
        let journal = Journal {
            task: "T1".to_owned(),
            candidate: first.to_string(),
            onto: base.to_string(),
            tasks: Vec::new(),
        };
        let sought = |merged_before| Sought {
            task: "T1".to_owned(),
            base: Some(base),
            backup: None,
            merged_before,
        };
        for journal in [None, Some(&journal)] {
            let found = find(&repo, head, &[sought(None)], journal).unwrap();
            assert_eq!(found.get("T1"), Some(&first), "{journal:?}");
            let found = find(&repo, head, &[sought(Some(first))], journal).unwrap();
            assert_eq!(found.get("T1"), None, "{journal:?}");
        }
        let again = commit(
            &repo,
            Some(head),
            "Merge task T1: x\n\nOrch-Task: T1\n\nagain",
        );
        let found = find(&repo, again, &[sought(Some(first))], Some(&journal)).unwrap();
        assert_eq!(found.get("T1"), Some(&again));
    }

    #[test]
    fn a_branch_with_no_commits_landed_when_it_is_gone_and_the_target_holds_its_base() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init(tmp.path()).unwrap();
        let base = commit(&repo, None, "base");
        let head = commit(&repo, Some(base), "later");
        let aside = commit(&repo, None, "elsewhere");
        let own = commit(&repo, Some(base), "the agent's work");
        repo.branch("orch/T2", &repo.find_commit(base).unwrap(), false)
            .unwrap();
        // (branch, base, queued tip, landed)
        let table = [
            ("orch/T1", base, base, true),
            ("orch/T2", base, base, false),
            ("orch/T1", base, own, false),
            ("orch/T1", aside, aside, false),
        ];
        for (branch, base, queued, want) in table {
            assert_eq!(
                landed_empty(&repo, head, branch, base, queued).unwrap(),
                want,
                "{branch} {base} {queued}"
            );
        }
    }
}
