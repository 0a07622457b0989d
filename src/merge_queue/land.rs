//! Step 4 and 5: landing a checked candidate. The target moves from the
//! head the chain was built on to the candidate in one compare-and-swap (or
//! its checkout is brought along under git's rule), over every task the
//! candidate holds, each with its own commit; then each task's worktree and
//! branch are cleaned up.
//!
//! Before the target moves, `merge.json` names the candidate, the head it
//! was built on and each task's own commit, so a coordinator killed at any
//! instant can tell on restart which tasks landed ([`super::evidence`]).
//! A checkout that cannot take the candidate (a path the merge changes is
//! modified there, or a file is in the way) names the tasks whose change
//! it is, so that the others can land without them. That check is the
//! checkout move's own, right before it writes ([`checkout::fast_forward`]),
//! so it comes after `merge.json` and the backups (a tip the newest backup
//! keeps is not kept again when the landing is tried again).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git2::{Oid, Repository};
use serde::{Deserialize, Serialize};

use crate::git::merge::{self, Built, MergeStrategy};
use crate::git::{GitError, cmd, refs, worktree};
use crate::runner::hook;
use crate::state::StateDir;

use super::checkout::{self, Blocker, Forwarded, Refusal, Resumed, Stuck};
use super::outcome::{MergeError, MergeOutcome, PostMergeError, WaitReason, WorktreeAfter};

/// The journal written before the target moves, in the state dir: the name
/// of [`StateDir::merge_journal`], which new code should use.
pub const JOURNAL: &str = "merge.json";

/// What `merge.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The candidate's last task.
    pub task: String,
    pub candidate: String,
    /// The target head the candidate was built on.
    pub onto: String,
    /// Every task the candidate lands, in order, with its own commit (left
    /// out by writers older than batches, whose candidate held `task` alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<JournalTask>,
}

/// A task a journaled candidate lands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalTask {
    pub task: String,
    pub commit: String,
    /// A revert of the task's work rather than the work itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revert: bool,
}

impl Journal {
    /// Returns every task the journal names with its own commit.
    pub fn landings(&self) -> Vec<JournalTask> {
        if self.tasks.is_empty() {
            vec![JournalTask {
                task: self.task.clone(),
                commit: self.candidate.clone(),
                revert: false,
            }]
        } else {
            self.tasks.clone()
        }
    }
}

/// What landing a candidate needs.
#[derive(Debug, Clone)]
pub struct LandJob {
    pub repo: PathBuf,
    pub state_dir: PathBuf,
    pub target: String,
    pub strategy: MergeStrategy,
    /// The target head the chain was built on.
    pub onto: String,
    pub candidate: String,
    /// The tasks the candidate holds, in order.
    pub links: Vec<LandLink>,
    pub delete_branch: bool,
    pub remove_worktree: bool,
    pub admin: Arc<Mutex<()>>,
    /// Set when the run stops: the target is left alone if it has not moved.
    pub stop: Arc<AtomicBool>,
}

/// One task of a candidate being landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandLink {
    pub task: String,
    /// Its own commit in the chain.
    pub commit: String,
    /// The commit before it in the chain (the target, for the first).
    pub prev: String,
    /// What it merges: `None` for a revert.
    pub branch: Option<LandBranch>,
}

/// The branch a link merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandBranch {
    pub name: String,
    pub tip: String,
    pub worktree: Option<PathBuf>,
}

/// How landing a candidate ended.
#[derive(Debug)]
pub enum Landing {
    /// The target is at the candidate.
    Landed {
        /// From the start of the landing to the target moving.
        took: Duration,
        /// Where `post_merge` is to run: the target's checkout, or the merge worktree.
        hooks_in: PathBuf,
        links: Vec<LinkLanded>,
    },
    /// The target is no longer at the head the chain was built on (someone
    /// committed): the chain is rebuilt on `head`.
    TargetMoved { head: String },
    /// The target's checkout cannot take the candidate now; `tasks` are those
    /// whose change is in the way (empty: none of them in particular).
    Blocked { why: WaitReason, tasks: Vec<String> },
    /// It ended otherwise: the target is gone, was moved under orch, the run
    /// stopped, or git failed.
    Ended(MergeOutcome),
}

/// One task of a landed candidate.
#[derive(Debug)]
pub struct LinkLanded {
    pub task: String,
    pub commit: String,
    pub prev: String,
    /// The backup ref of the branch's old tip (`squash`, `rebase`, a replayed `ff-only`).
    pub backup: Option<String>,
    pub branch_deleted: bool,
    pub worktree: WorktreeAfter,
    /// Cleaning up failed; the merge stands.
    pub cleanup: Option<PostMergeError>,
}

/// Lands a checked candidate. Blocking.
pub fn land(job: &LandJob) -> Landing {
    let started = Instant::now();
    match move_target(job) {
        Ok(Some(checkout)) => {
            let took = started.elapsed();
            let links = job
                .links
                .iter()
                .map(|link| cleanup_link(job, link))
                .collect();
            Landing::Landed {
                took,
                hooks_in: checkout.unwrap_or_else(|| StateDir::at(&job.state_dir).merge_worktree()),
                links,
            }
        }
        Ok(None) => match head(job) {
            Ok(head) => Landing::TargetMoved {
                head: head.to_string(),
            },
            Err(ended) => *ended,
        },
        Err(ended) => *ended,
    }
}

/// A landing that ended before the target moved (boxed: it travels in every `Err`).
type Ended = Box<Landing>;

fn failed(error: impl Into<MergeError>) -> Ended {
    Box::new(Landing::Ended(MergeOutcome::Failed {
        error: error.into(),
    }))
}

/// Reads the target's head; a target gone ends the landing.
fn head(job: &LandJob) -> Result<Oid, Ended> {
    let git = Repository::open(&job.repo).map_err(|e| failed(GitError::git(&job.repo)(e)))?;
    head_in(job, &git)
}

/// Reads the target's head through `git`, the repository already open
/// (libgit2 reads the branch's ref file again each time).
fn head_in(job: &LandJob, git: &Repository) -> Result<Oid, Ended> {
    refs::tip(git, &job.target)
        .map_err(|e| failed(GitError::git(&job.repo)(e)))?
        .ok_or(Box::new(Landing::Ended(MergeOutcome::TargetGone)))
}

/// Writes the journal and moves the target from `onto` to the candidate:
/// `Some(checkout)` once it moved (with the checkout it brought along),
/// `None` when the target was elsewhere.
fn move_target(job: &LandJob) -> Result<Option<Option<PathBuf>>, Ended> {
    let repo = &job.repo;
    let state_dir = StateDir::at(&job.state_dir);
    let git = Repository::open(repo).map_err(|e| failed(GitError::git(repo)(e)))?;
    let (Some(onto), Some(candidate)) =
        (refs::parse_oid(&job.onto), refs::parse_oid(&job.candidate))
    else {
        return Ok(None);
    };
    if head_in(job, &git)? != onto {
        return Ok(None);
    }
    if job.stop.load(Ordering::SeqCst) {
        return Err(Box::new(Landing::Ended(MergeOutcome::Interrupted)));
    }
    let checkout = worktree::checked_out_at(&git, &job.target);
    if checkout.is_some() {
        match checkout::resume(repo, &state_dir).map_err(failed)? {
            Resumed::Waiting(stuck) => {
                return Err(Box::new(Landing::Blocked {
                    why: WaitReason::CheckoutStuck(stuck),
                    tasks: Vec::new(),
                }));
            }
            Resumed::Completed { .. } => return Ok(None),
            Resumed::Nothing | Resumed::Abandoned => {}
        }
    }
    let journal = Journal {
        task: job.links.last().map(|l| l.task.clone()).unwrap_or_default(),
        candidate: job.candidate.clone(),
        onto: job.onto.clone(),
        tasks: job
            .links
            .iter()
            .map(|l| JournalTask {
                task: l.task.clone(),
                commit: l.commit.clone(),
                revert: l.branch.is_none(),
            })
            .collect(),
    };
    let path = state_dir.merge_journal();
    if checkout.is_none() {
        clear_cut_swap(&git, &job.target, &path)?;
    }
    crate::fsio::write_json(&path, &journal)
        .map_err(|source| failed(MergeError::Journal { path, source }))?;
    for link in &job.links {
        backup(job, link).map_err(failed)?;
    }
    let tasks: Vec<&str> = job.links.iter().map(|l| l.task.as_str()).collect();
    let message = format!("orch: merge {}", tasks.join(" "));
    let moved = match &checkout {
        Some(dir) => {
            match checkout::fast_forward(&state_dir, dir, &job.target, onto, candidate, &message)
                .map_err(failed)?
            {
                Forwarded::Moved => true,
                Forwarded::TargetMoved => false,
                Forwarded::Stuck(stuck) => {
                    return Err(Box::new(Landing::Blocked {
                        why: WaitReason::CheckoutStuck(stuck),
                        tasks: Vec::new(),
                    }));
                }
                Forwarded::Refused(Refusal::InTheWay(blockers)) => {
                    let tasks = owners(&git, job, &blockers);
                    return Err(Box::new(Landing::Blocked {
                        why: WaitReason::TargetDirty {
                            target: job.target.clone(),
                            checkout: dir.clone(),
                            blockers,
                        },
                        tasks,
                    }));
                }
                Forwarded::Refused(Refusal::Git(source)) if head_in(job, &git)? == onto => {
                    let blockers = checkout::blockers(dir, onto, candidate).unwrap_or_default();
                    let tasks = owners(&git, job, &blockers);
                    return Err(Box::new(Landing::Blocked {
                        why: WaitReason::FastForwardRefused {
                            target: job.target.clone(),
                            checkout: dir.clone(),
                            blockers,
                            source,
                        },
                        tasks,
                    }));
                }
                Forwarded::Refused(_) => false,
            }
        }
        None => {
            let moved = refs::swap(
                &git,
                &format!("refs/heads/{}", job.target),
                onto,
                candidate,
                &message,
            )
            .map_err(|e| failed(GitError::git(repo)(e)))?;
            // Still at `onto` but not moved: its lock file is held, by a git
            // at work or one killed mid-write (then for ever, until removed).
            let lock = git
                .commondir()
                .join("refs/heads")
                .join(format!("{}.lock", job.target));
            if !moved && head_in(job, &git)? == onto && lock.exists() {
                return Err(Box::new(Landing::Blocked {
                    why: WaitReason::CheckoutStuck(Stuck::Locked { lock }),
                    tasks: Vec::new(),
                }));
            }
            moved
        }
    };
    Ok(moved.then_some(checkout))
}

/// Removes the branch lock the last landing's own compare-and-swap left,
/// when a kill cut that landing short (`journal` is its `merge.json`, not
/// yet replaced): libgit2 takes the lock in orch's process and writes the
/// candidate into it only as it renames it. A lock the journal does not
/// explain is left to its holder ([`checkout::own_branch_lock`]), and the
/// swap then waits on it. The target checked out is not this one's: the
/// checkout's own journal clears that ([`checkout::resume`]).
fn clear_cut_swap(git: &Repository, target: &str, journal: &std::path::Path) -> Result<(), Ended> {
    let lock = checkout::branch_lock(git, target);
    if !lock.exists() {
        return Ok(());
    }
    let last: Option<Journal> = crate::fsio::read_json(journal).ok().flatten();
    let Some(candidate) = last.and_then(|j| refs::parse_oid(&j.candidate)) else {
        return Ok(());
    };
    if checkout::own_branch_lock(&lock, candidate, journal) {
        crate::fsio::remove_if_present(&lock)
            .map_err(|e| failed(checkout::journal_err(&lock)(e)))?;
    }
    Ok(())
}

/// Keeps the branch's old tip under `refs/orch/backup/<id>/<n>` when what
/// lands is not the branch's own commits (`squash`, `rebase`, a replayed
/// `ff-only`), so that deleting the branch loses no commit. A tip the
/// newest backup already keeps is not kept twice (a landing the target's
/// checkout refused, tried again).
fn backup(job: &LandJob, link: &LandLink) -> Result<(), GitError> {
    let Some(branch) = &link.branch else {
        return Ok(());
    };
    let rewritten = match job.strategy {
        MergeStrategy::Squash | MergeStrategy::Rebase => true,
        MergeStrategy::FfOnly => link.commit != branch.tip,
        MergeStrategy::Merge => false,
    };
    if let (true, Some(tip)) = (rewritten, refs::parse_oid(&branch.tip))
        && refs::latest_backup(&job.repo, &link.task)?.map(|(_, kept)| kept) != Some(tip)
    {
        refs::backup(&job.repo, &link.task, tip)?;
    }
    Ok(())
}

/// Returns the tasks whose own change writes a blocking path.
fn owners(git: &Repository, job: &LandJob, blockers: &[Blocker]) -> Vec<String> {
    let mut out = Vec::new();
    for link in &job.links {
        let (Some(prev), Some(commit)) =
            (refs::parse_oid(&link.prev), refs::parse_oid(&link.commit))
        else {
            continue;
        };
        let Ok(changes) = merge::diff_summary(git, &job.repo, prev, commit, false) else {
            continue;
        };
        if changes
            .iter()
            .any(|c| blockers.iter().any(|b| path_covers(&b.path, &c.path)))
        {
            out.push(link.task.clone());
        }
    }
    out
}

/// Returns whether blocking `path` stands in the way of writing `changed`
/// (the same path, a file where the change needs a folder, or something
/// left in a folder the change replaces with a file).
fn path_covers(path: &str, changed: &str) -> bool {
    let under = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    changed == path || under(changed, path) || under(path, changed)
}

/// Step 5 for one task, once the target holds the candidate: frees its
/// worktree and deletes its branch. Nothing here undoes the merge.
fn cleanup_link(job: &LandJob, link: &LandLink) -> LinkLanded {
    let backup = link
        .branch
        .as_ref()
        .and_then(|_| refs::latest_backup(&job.repo, &link.task).ok().flatten())
        .filter(|_| match job.strategy {
            MergeStrategy::Squash | MergeStrategy::Rebase => true,
            MergeStrategy::FfOnly => link.branch.as_ref().is_some_and(|b| b.tip != link.commit),
            MergeStrategy::Merge => false,
        })
        .map(|(name, _)| name);
    let tidy = Cleanup {
        repo: &job.repo,
        admin: &job.admin,
        delete_branch: job.delete_branch,
        remove_worktree: job.remove_worktree,
    };
    let (worktree, branch_deleted, cleanup) = match &link.branch {
        None => (WorktreeAfter::Untouched, false, None),
        Some(branch) => match tidy.run(branch) {
            Ok((after, deleted)) => (after, deleted, None),
            Err(e) => (
                WorktreeAfter::Untouched,
                false,
                Some(PostMergeError::Cleanup(e)),
            ),
        },
    };
    LinkLanded {
        task: link.task.clone(),
        commit: link.commit.clone(),
        prev: link.prev.clone(),
        backup,
        branch_deleted,
        worktree,
        cleanup,
    }
}

/// What freeing a landed task's worktree and branch needs.
pub(super) struct Cleanup<'a> {
    pub repo: &'a std::path::Path,
    pub admin: &'a Mutex<()>,
    pub delete_branch: bool,
    pub remove_worktree: bool,
}

impl Cleanup<'_> {
    /// Frees the task's worktree and deletes its branch, as configured.
    /// Never touches a worktree with changes; the branch stays while a
    /// worktree has it.
    ///
    /// Runs under the worktree-admin lock, so that it never races a task
    /// being given this worktree.
    pub(super) fn run(&self, branch: &LandBranch) -> Result<(WorktreeAfter, bool), GitError> {
        let repo = self.repo;
        let _guard = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let mut after = WorktreeAfter::Untouched;
        if let Some(wt) = branch.worktree.as_ref().filter(|w| w.is_dir())
            && worktree::current_branch(wt)?.as_deref() == Some(branch.name.as_str())
            && worktree::dirty_files(wt)?.is_empty()
        {
            if self.remove_worktree {
                worktree::remove(repo, wt)?;
                after = WorktreeAfter::Removed;
            } else {
                cmd::run(wt, ["switch", "--quiet", "--detach"])?;
                after = WorktreeAfter::Detached(wt.clone());
            }
        }
        let mut deleted = false;
        if self.delete_branch
            && !worktree::holds(repo, &branch.name)?
            && refs::branch_tip(repo, &branch.name)?.map(|t| t.to_string())
                == Some(branch.tip.clone())
        {
            refs::delete_branch(repo, &branch.name)?;
            deleted = true;
        }
        Ok((after, deleted))
    }
}

/// What asking whether a task waiting on the target's checkout can land now needs.
#[derive(Debug, Clone)]
pub struct ProbeJob {
    pub repo: PathBuf,
    pub target: String,
    pub strategy: MergeStrategy,
    pub task: String,
    pub title: String,
    pub branch: String,
    pub base: Option<String>,
}

/// Says why the task's change still cannot be written into the target's
/// checkout, or `None` when nothing is in its way any more (or the target
/// is checked out nowhere). Blocking.
pub fn probe(job: &ProbeJob) -> Option<WaitReason> {
    let git = Repository::open(&job.repo).ok()?;
    let dir = worktree::checked_out_at(&git, &job.target)?;
    let head = refs::tip(&git, &job.target).ok()??;
    let tip = refs::tip(&git, &job.branch).ok()??;
    let base = job.base.as_deref().and_then(refs::parse_oid);
    let message = super::build::merge_message(&job.task, &job.title);
    let Ok(Built::Candidate(candidate)) =
        merge::build(&git, &job.repo, job.strategy, head, tip, base, &message)
    else {
        return None;
    };
    let blockers = checkout::blockers(&dir, head, candidate).ok()?;
    (!blockers.is_empty()).then(|| WaitReason::TargetDirty {
        target: job.target.clone(),
        checkout: dir,
        blockers,
    })
}

/// What `post_merge` needs, once a merge has landed and is on disk.
#[derive(Debug, Clone)]
pub struct PostMerge {
    pub state_dir: PathBuf,
    pub target: String,
    /// The tasks that landed, each with its commit, in order.
    pub landed: Vec<(String, String)>,
    /// The target's checkout, or the merge worktree.
    pub dir: PathBuf,
    pub commands: Vec<String>,
    pub timeout: Duration,
}

/// Runs the `post_merge` hooks of a landing, once per task in order;
/// returns each task's failure. Blocking.
pub fn run_post_merge(post: &PostMerge) -> Vec<(String, hook::HookError)> {
    let mut failures = Vec::new();
    for (task, commit) in &post.landed {
        let env = [
            ("ORCH_TASK_ID", task.as_str()),
            ("ORCH_TARGET", post.target.as_str()),
            ("ORCH_MERGE_COMMIT", commit.as_str()),
        ];
        let log = StateDir::at(&post.state_dir).hook_log(task, "post_merge");
        if let Err(e) = hook::run_all(
            "post_merge",
            &post.commands,
            &post.dir,
            &env,
            &log,
            post.timeout,
        ) {
            failures.push((task.clone(), e));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge_queue::checkout::tests::git;

    #[test]
    fn a_blocking_path_stands_in_the_way_of_itself_and_what_is_under_it() {
        let table = [
            ("a.txt", "a.txt", true),
            ("docs", "docs/x.md", true),
            ("docs", "docs-old/x.md", false),
            ("dfile/notes.txt", "dfile", true),
            ("dfile-old/notes.txt", "dfile", false),
            ("a.txt", "b.txt", false),
        ];
        for (path, changed, expected) in table {
            assert_eq!(path_covers(path, changed), expected, "{path} {changed}");
        }
    }

    /// A kill inside the compare-and-swap of a target checked out nowhere
    /// left `refs/heads/main.lock`, and merging waited on it until a
    /// person removed it. The next landing takes that lock for its own
    /// when the last landing's journal explains it (made within seconds
    /// after it, empty or holding that landing's candidate, open in no
    /// process); any other lock is a git's, and merging waits.
    #[test]
    fn the_branch_lock_a_landing_killed_in_its_swap_left_is_cleared_by_the_next() {
        for (content, held, cleared) in [
            ("", false, true),
            ("candidate", false, true),
            ("other", false, false),
            ("candidate", true, false),
            ("older", false, false),
            // Empty, closed, but taken long after the landing: a git
            // between preparing and committing a transaction that only
            // verifies the branch.
            ("later", false, false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let repo = dir.path().join("repo");
            std::fs::create_dir_all(&repo).unwrap();
            git(&repo, &["init", "-q", "-b", "main"]);
            git(&repo, &["commit", "-q", "--allow-empty", "-m", "base"]);
            let onto = git(&repo, &["rev-parse", "HEAD"]);
            let tree = git(&repo, &["rev-parse", "HEAD^{tree}"]);
            let candidate = git(&repo, &["commit-tree", &tree, "-p", &onto, "-m", "merge"]);
            // The target is checked out nowhere.
            git(&repo, &["switch", "-q", "--detach"]);
            let state = StateDir::at(&dir.path().join("state"));
            std::fs::create_dir_all(state.path()).unwrap();
            let journal = Journal {
                task: "T1".to_owned(),
                candidate: candidate.clone(),
                onto: onto.clone(),
                tasks: Vec::new(),
            };
            crate::fsio::write_json(&state.merge_journal(), &journal).unwrap();
            let lock = repo.join(".git/refs/heads/main.lock");
            let text = match content {
                "candidate" => format!("{candidate}\n"),
                "other" => format!("{onto}\n"),
                _ => String::new(),
            };
            std::fs::write(&lock, text).unwrap();
            let shift = match content {
                "older" => Some(std::time::SystemTime::now() - Duration::from_secs(60)),
                "later" => Some(std::time::SystemTime::now() + Duration::from_secs(60)),
                _ => None,
            };
            if let Some(at) = shift {
                let file = std::fs::File::options().write(true).open(&lock).unwrap();
                file.set_modified(at).unwrap();
            }
            let open = held.then(|| std::fs::File::open(&lock).unwrap());
            let job = LandJob {
                repo: repo.clone(),
                state_dir: state.path().to_owned(),
                target: "main".to_owned(),
                strategy: MergeStrategy::Merge,
                onto: onto.clone(),
                candidate: candidate.clone(),
                links: vec![LandLink {
                    task: "T1".to_owned(),
                    commit: candidate.clone(),
                    prev: onto.clone(),
                    branch: None,
                }],
                delete_branch: false,
                remove_worktree: false,
                admin: Arc::default(),
                stop: Arc::default(),
            };
            let landed = land(&job);
            let case = format!("lock {content:?}, held {held}: {landed:?}");
            let main = git(&repo, &["rev-parse", "main"]);
            if cleared {
                assert!(matches!(landed, Landing::Landed { .. }), "{case}");
                assert_eq!(main, candidate, "{case}");
                assert!(!lock.exists(), "{case}");
            } else {
                assert!(
                    matches!(
                        landed,
                        Landing::Blocked {
                            why: WaitReason::CheckoutStuck(Stuck::Locked { .. }),
                            ..
                        }
                    ),
                    "{case}"
                );
                assert_eq!(main, onto, "{case}");
                assert!(lock.exists(), "the lock is left to its holder: {case}");
            }
            drop(open);
        }
    }

    /// A landed task's branch is deleted only when no worktree has it
    /// checked out: not one with changes (which the cleanup leaves on the
    /// branch), nor one whose folder is gone but not yet pruned (git still
    /// counts it).
    #[test]
    fn a_landed_branch_a_worktree_holds_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "base"]);
        let admin = Mutex::new(());
        let tidy = Cleanup {
            repo: &repo,
            admin: &admin,
            delete_branch: true,
            remove_worktree: false,
        };
        let landed = |name: &str, worktree: Option<PathBuf>| {
            let tip = git(&repo, &["rev-parse", name]);
            let branch = LandBranch {
                name: name.to_owned(),
                tip,
                worktree,
            };
            tidy.run(&branch).unwrap().1
        };
        let wt = |name: &str| dir.path().join("wt").join(name);
        for name in ["changed", "gone", "free"] {
            let path = wt(name).to_string_lossy().into_owned();
            git(&repo, &["worktree", "add", "-q", "-b", name, &path]);
        }
        std::fs::write(wt("changed").join("draft.txt"), "a person's work\n").unwrap();
        std::fs::remove_dir_all(wt("gone")).unwrap();
        git(&wt("free"), &["switch", "-q", "--detach"]);

        assert!(!landed("changed", Some(wt("changed"))));
        assert!(!landed("gone", None));
        assert!(landed("free", None));
        let branches = git(&repo, &["branch", "--format=%(refname:short)"]);
        assert_eq!(
            branches.lines().collect::<Vec<_>>(),
            ["changed", "gone", "main"]
        );
    }

    #[test]
    fn an_old_journal_names_its_one_task() {
        let old: Journal =
            serde_json::from_str(r#"{"task":"T1","candidate":"c1","onto":"o1"}"#).unwrap();
        assert_eq!(
            old.landings(),
            [JournalTask {
                task: "T1".to_owned(),
                commit: "c1".to_owned(),
                revert: false
            }]
        );
    }
}
