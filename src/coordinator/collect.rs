//! Collecting a finished attempt, on a blocking thread: reading `exit.json`,
//! the agent's report and final message (moved from the worktree to the run
//! folder), what its output says of limits, usage and its session
//! ([`crate::runner::output`]), running `post_agent`, staging conflicts the
//! agent resolved without `git add`, committing what the agent left, adding the
//! `Orch-Task` trailer to commits made around the hook
//! ([`crate::git::trailers`]), and counting its commits. It decides
//! nothing: [`super::judge`] reads the [`AttemptReport`].
//!
//! Collection is idempotent (committing leftovers twice commits nothing the
//! second time), so an attempt collected before a crash is collected again
//! after it.

use std::path::PathBuf;

use crate::config::FinalMessage;
use crate::config::presets::{LAST_MESSAGE_FILE, RESULT_FILE};
use crate::git::cmd::{self, CommandError};
use crate::git::trailers::{self, Vouched};
use crate::git::{GitError, commit, refs};
use crate::runner::folder::RunFolder;
use crate::runner::hook::{self, HookError};
use crate::runner::spawn::AgentFiles;
use crate::runner::spec::{AgentResult, Changes, End, ExitRecord, JobRecord, UNRESOLVED};
use crate::runner::{final_message, output};

/// How many of an attempt's newest commits `task.completed` lists.
const LOG_COMMITS: usize = 10;

/// The most of an agent's summary that is kept (in `state.json`, in
/// reasons, in the prompts of dependent tasks); the rest is cut with a
/// marker. An agent's own report is not trusted to stay small.
pub const MAX_SUMMARY: usize = 64 * 1024;

/// What collection needs; built by the decision core.
#[derive(Debug, Clone)]
pub struct Collection {
    pub folder: RunFolder,
    pub repo: PathBuf,
    pub worktree: Option<PathBuf>,
    pub branch: Option<String>,
    /// The unit's base commit: commits are counted from it.
    pub base: Option<String>,
    pub auto_commit: bool,
    /// The message of the commit of leftover changes.
    pub message: String,
    /// For an attempt resolving conflicts: the target, to look for markers
    /// in what changed since.
    pub conflict_with: Option<String>,
    /// Run after an agent that exited 0, before its leftovers are committed.
    pub post_agent: Option<hook::Stage>,
    /// `workspace = "git"`: where the job pushed the agent's work.
    pub fetch_back: Option<FetchBack>,
    /// Where the agent's final message is.
    pub final_message: FinalMessage,
    /// Where its output says it hit a limit, its usage and its session.
    pub output: output::Spec,
    /// The target branch: its commits are never given trailers.
    pub target: String,
    /// The trailers every commit of the unit carries (`Orch-Task: <id>`, and
    /// `Orch-Subtask:` in subtask mode).
    pub trailers: Vec<String>,
    /// The id backup refs are kept under (the task's).
    pub task: String,
}

/// Where a job of the git workspace pushed its work: the branch (brought
/// into the task's worktree by fast-forward only) and the result file.
#[derive(Debug, Clone)]
pub struct FetchBack {
    pub remote: String,
    pub branch: String,
    pub result_ref: String,
}

/// What the collection found.
#[derive(Debug, Default)]
pub struct AttemptReport {
    pub exit: Option<ExitRecord>,
    /// The cluster's account of the attempt's job, when it ran as one.
    pub job: Option<JobRecord>,
    /// Why the work a job pushed could not be brought back.
    pub fetch_error: Option<CommandError>,
    pub result: Option<AgentResult>,
    /// Why `result.json` could not be read, if it exists but is invalid.
    pub result_error: Option<std::io::Error>,
    /// The agent's final message, read where its preset says.
    pub final_message: Option<String>,
    /// The rate or usage limit the attempt failed on, if it did.
    pub limit: Option<output::LimitHit>,
    /// The tokens and cost the agent reported (for a resumed session, as
    /// its CLI counts them: `usage.session_totals` say which are the
    /// session's).
    pub usage: Option<crate::state::model::Usage>,
    /// The session the agent's output named.
    pub session: Option<String>,
    /// The commits given their trailer, if any lacked it.
    pub vouched: Option<Vouched>,
    /// Why trailers could not be added (the merge's `require_trailer` may refuse).
    pub vouch_error: Option<GitError>,
    /// The commit made of leftover changes, if any.
    pub committed: Option<String>,
    /// When the look for leftover changes began, if it found none (when
    /// it committed some, the commit ran the repository's hooks, which may
    /// leave files): recycling the worktree soon after need not look again
    /// ([`crate::coordinator::workspace::FreeWorktree::clean_since`]).
    pub clean_since: Option<std::time::Instant>,
    pub commit_error: Option<GitError>,
    /// Commits on the branch since the unit's base.
    pub commits: Option<u32>,
    /// The newest of them, as (short id, subject), newest first.
    pub log: Vec<(String, String)>,
    /// The branch tip after collection.
    pub tip: Option<String>,
    /// Files still in conflict after an attempt that was to resolve them.
    pub unresolved: Vec<String>,
    /// Files committed with conflict markers in them.
    pub markers: Vec<String>,
    /// How the `post_agent` hook failed, if it did.
    pub hook_error: Option<HookError>,
    /// The worktree the state records, when it no longer exists.
    pub worktree_gone: Option<PathBuf>,
    /// The worktree is no longer on the task's branch, or the branch is
    /// gone: nothing was committed for the agent.
    pub off_branch: Option<OffBranch>,
}

/// How an attempt's worktree left its branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffBranch {
    /// The branch was deleted while the agent ran.
    Deleted { branch: String, worktree: PathBuf },
    /// The worktree was switched to another branch (`None`: detached).
    Switched {
        branch: String,
        now: Option<String>,
        worktree: PathBuf,
    },
}

/// Says how the worktree left `branch`, if it did: leftovers are then not
/// committed (they would land on another branch, or make a root commit
/// that recreates a deleted one).
fn off_branch(
    repo: &std::path::Path,
    worktree: &std::path::Path,
    branch: &str,
) -> Option<OffBranch> {
    let now = crate::git::worktree::current_branch(worktree).ok()?;
    if now.as_deref() != Some(branch) {
        return Some(OffBranch::Switched {
            branch: branch.to_owned(),
            now,
            worktree: worktree.to_owned(),
        });
    }
    match refs::branch_tip(repo, branch) {
        Ok(None) => Some(OffBranch::Deleted {
            branch: branch.to_owned(),
            worktree: worktree.to_owned(),
        }),
        _ => None,
    }
}

/// Brings a job's pushed branch into the task's worktree (fast-forward
/// only: a branch that moved both here and there is an error, never
/// overwritten), and the agent's report and final message into the run
/// folder, with the list of files it left in conflict (a conflict
/// hand-back whose merge it did not commit). Returns the remote branch's tip.
fn fetch_back(
    back: &FetchBack,
    worktree: &std::path::Path,
    folder: &RunFolder,
) -> Result<String, CommandError> {
    let branch_ref = format!("refs/heads/{}", back.branch);
    cmd::run(worktree, ["fetch", "--quiet", &back.remote, &branch_ref])?;
    let remote_tip = cmd::stdout(worktree, ["rev-parse", "FETCH_HEAD"])?;
    cmd::run(worktree, ["merge", "--quiet", "--ff-only", &remote_tip])?;
    if cmd::run(
        worktree,
        ["fetch", "--quiet", &back.remote, &back.result_ref],
    )
    .is_ok()
    {
        for (name, to) in [
            (RESULT_FILE, folder.result_file()),
            (LAST_MESSAGE_FILE, folder.last_message_file()),
            (UNRESOLVED, folder.unresolved_file()),
        ] {
            if !to.exists()
                && let Ok(out) = cmd::run(worktree, ["show", &format!("FETCH_HEAD:{name}")])
            {
                let _ = crate::fsio::write_atomically(&to, &out.stdout);
            }
        }
        let delete = format!(":{}", back.result_ref);
        let _ = cmd::run(worktree, ["push", "--quiet", &back.remote, &delete]);
    }
    Ok(remote_tip)
}

/// Gives the remote the branch as collection left it (the trailers orch
/// added, a `post_agent` commit), so that the next job of the branch builds
/// on it: a push that replaces only the tip fetched back
/// (`--force-with-lease`), whose old commits the backup ref keeps.
fn push_back(
    back: &FetchBack,
    worktree: &std::path::Path,
    remote_tip: &str,
    local_tip: &str,
) -> Result<(), CommandError> {
    if remote_tip == local_tip {
        return Ok(());
    }
    let branch_ref = format!("refs/heads/{}", back.branch);
    let lease = format!("--force-with-lease={branch_ref}:{remote_tip}");
    let refspec = format!("{local_tip}:{branch_ref}");
    cmd::run(
        worktree,
        ["push", "--quiet", &lease, &back.remote, &refspec],
    )?;
    Ok(())
}

/// Collects one attempt. Blocking.
pub fn collect(input: Collection) -> AttemptReport {
    // A supervisor gone without its report may leave a cluster job that
    // completed (its `exit.json` is then written from the cluster's
    // account) or one still running without its `srun` (cancelled).
    if !input.folder.has_exited() {
        input.folder.settle();
    }
    let mut report = AttemptReport {
        exit: input.folder.load_exit().ok().flatten(),
        job: input.folder.load_job(),
        ..AttemptReport::default()
    };
    // A job that never ran (its push or its submission refused) left
    // nothing to bring back.
    let mut remote_tip = None;
    if let (Some(back), Some(worktree)) = (&input.fetch_back, &input.worktree)
        && worktree.is_dir()
        && report.job.as_ref().is_none_or(|j| j.error.is_none())
    {
        match fetch_back(back, worktree, &input.folder) {
            Ok(tip) => remote_tip = Some(tip),
            Err(e) => report.fetch_error = Some(e),
        }
    }
    if let Some(worktree) = &input.worktree {
        let files = AgentFiles::in_worktree(worktree);
        keep(&files.result, &input.folder.result_file());
        keep(&files.last_message, &input.folder.last_message_file());
    }
    match crate::fsio::read_json::<AgentResult>(&input.folder.result_file()) {
        Ok(result) => {
            report.result = result.map(|mut r| {
                r.summary = r.summary.map(|s| crate::text::cap(s, MAX_SUMMARY));
                r
            })
        }
        Err(e) => report.result_error = Some(e),
    }
    report.final_message = final_message::read(
        &input.final_message,
        &input.folder.log_file(),
        &input.folder.last_message_file(),
    );
    let said = output::read(
        &input.output,
        &input.folder.log_file(),
        report.exit.as_ref(),
        report.result.as_ref(),
        std::time::SystemTime::now(),
    );
    report.limit = said.limit;
    report.usage = said.usage;
    report.session = said.session;
    let exited_cleanly = matches!(
        report.exit.as_ref().map(|e| &e.end),
        Some(End::Exited { code: 0 })
    );
    // A worktree that is gone was recycled for another task after this
    // attempt was first collected (and the state saying so was lost in a
    // crash), or deleted by hand. Either way the branch holds what was
    // committed; there is nothing left to run hooks on or to commit.
    let worktree = input.worktree.as_ref().filter(|w| {
        let here = w.is_dir();
        if !here {
            report.worktree_gone = Some((*w).clone());
        }
        here
    });
    if exited_cleanly
        && let (Some(stage), Some(worktree)) = (&input.post_agent, worktree)
        && let Err(e) = stage.run(worktree)
    {
        report.hook_error = Some(e);
    }
    if let (Some(worktree), Some(branch)) = (worktree, &input.branch) {
        report.off_branch = off_branch(&input.repo, worktree, branch);
    }
    if let (Some(worktree), Some(_)) = (worktree, &input.conflict_with) {
        let unmerged = commit::unmerged_paths(worktree).unwrap_or_default();
        report.unresolved = if exited_cleanly {
            commit::stage_resolved(worktree, &unmerged).unwrap_or(unmerged)
        } else {
            unmerged
        };
        // A job of the git workspace merged in its clone, not here: its
        // list is kept in the run folder, so a second collection (after a
        // crash) reads it too.
        if input.fetch_back.is_some()
            && let Ok(text) = std::fs::read_to_string(input.folder.unresolved_file())
        {
            report
                .unresolved
                .extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        }
    }
    if exited_cleanly
        && report.off_branch.is_none()
        && report.hook_error.is_none()
        && input.auto_commit
        && report.unresolved.is_empty()
        && let Some(worktree) = worktree
    {
        let began = std::time::Instant::now();
        match commit::commit_all(worktree, &input.message, &scope(&input, worktree)) {
            // Found clean; not when orch committed, which ran the
            // repository's commit hooks, and a hook may write files.
            Ok(None) => report.clean_since = Some(began),
            Ok(sha) => report.committed = sha,
            Err(e) => report.commit_error = Some(e),
        }
    }
    if let (Some(worktree), Some(target)) = (worktree, &input.conflict_with)
        && report.unresolved.is_empty()
    {
        report.markers = commit::files_with_markers(worktree, target).unwrap_or_default();
    }
    if let (Some(branch), Some(_)) = (&input.branch, worktree) {
        let since = input.base.as_deref().and_then(refs::parse_oid);
        match trailers::vouch(
            &input.repo,
            branch,
            &input.target,
            since,
            &input.trailers,
            &input.task,
        ) {
            Ok(vouched) => report.vouched = vouched,
            Err(e) => report.vouch_error = Some(e),
        }
    }
    // One open of the repository for the branch's tip and its commits.
    let git = input
        .branch
        .as_ref()
        .and_then(|_| git2::Repository::open(&input.repo).ok());
    if let (Some(branch), Some(git)) = (&input.branch, &git)
        && let Ok(Some(tip)) = refs::tip(git, branch)
    {
        report.tip = Some(tip.to_string());
        if let (Some(back), Some(remote_tip), Some(worktree)) =
            (&input.fetch_back, &remote_tip, worktree)
            && let Err(e) = push_back(back, worktree, remote_tip, &tip.to_string())
        {
            report.fetch_error = Some(e);
        }
        if let Some(base) = input.base.as_deref().and_then(refs::parse_oid) {
            report.commits = refs::commits_on_branch(git, base, tip).ok();
            report.log = refs::recent_commits(git, base, tip, LOG_COMMITS).unwrap_or_default();
        }
    }
    report
}

/// Where collection looks for what the agent left: the paths its
/// supervisor saw change (`changes.json`, a worktree clean at the start)
/// and those where `HEAD` moved since, unless something else wrote there
/// since (`post_agent`), a merge was left for the agent, or the agent ran
/// elsewhere.
fn scope(input: &Collection, worktree: &std::path::Path) -> commit::Scope {
    let Some(Changes::Paths { head, mut paths }) = input.folder.load_changes() else {
        return commit::Scope::Whole;
    };
    if input.post_agent.is_some() || input.conflict_with.is_some() || input.fetch_back.is_some() {
        return commit::Scope::Whole;
    }
    let moved = git2::Repository::open(worktree).and_then(|repo| {
        let now = repo.head()?.peel_to_tree()?.id();
        let then = git2::Oid::from_str(&head)?;
        crate::git::tree::changes(&repo, then, now)
    });
    match moved {
        Ok(moved) if paths.len() + moved.len() <= crate::runner::watch::MAX_PATHS => {
            paths.extend(moved.into_iter().map(|c| c.path));
            commit::Scope::Paths(paths)
        }
        _ => commit::Scope::Whole,
    }
}

/// Moves a file the agent wrote in its worktree to the run folder, where
/// the attempt's record is kept (an unreadable one stays where it is).
fn keep(from: &std::path::Path, to: &std::path::Path) {
    let Ok(bytes) = std::fs::read(from) else {
        return;
    };
    if crate::fsio::write_atomically(to, &bytes).is_ok() {
        let _ = std::fs::remove_file(from);
    }
}
