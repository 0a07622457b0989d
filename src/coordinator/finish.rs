//! Collecting a finished attempt: reading `exit.json` and `result.json`,
//! committing what the agent left (on a blocking thread), and deciding.

use std::path::PathBuf;

use super::{Coordinator, Msg, control};
use crate::git::{commit, refs};
use crate::lifecycle::Status;
use crate::plan::FullId;
use crate::runner::classify::{self, Verdict};
use crate::runner::hook;
use crate::runner::spec::{self, AgentResult, ExitRecord};
use crate::state::events::{CommitSource, EventKind};
use crate::state::model::Purpose;

/// How many of an attempt's newest commits `task.completed` lists.
const LOG_COMMITS: usize = 10;

/// What the blocking collection found.
#[derive(Debug, Default)]
pub struct Report {
    pub exit: Option<ExitRecord>,
    pub result: Option<AgentResult>,
    /// Why `result.json` could not be read, if it exists but is invalid.
    pub result_error: Option<String>,
    /// The commit made of leftover changes, if any.
    pub committed: Option<String>,
    pub commit_error: Option<String>,
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
    pub hook_error: Option<String>,
    /// The worktree the state records, when it no longer exists.
    pub worktree_gone: Option<PathBuf>,
}

/// What collection needs.
struct Input {
    run_dir: PathBuf,
    repo: PathBuf,
    worktree: Option<PathBuf>,
    branch: Option<String>,
    base: Option<String>,
    auto_commit: bool,
    message: String,
    /// For an attempt resolving conflicts: the target, to look for markers
    /// in what changed since.
    conflict_with: Option<String>,
    /// Run after an agent that exited 0, before its leftovers are committed.
    post_agent: Option<hook::Stage>,
}

fn collect(input: Input) -> Report {
    let mut report = Report {
        exit: crate::fsio::read_json(&input.run_dir.join(spec::EXIT))
            .ok()
            .flatten(),
        ..Report::default()
    };
    match crate::fsio::read_json::<AgentResult>(&input.run_dir.join(spec::RESULT)) {
        Ok(result) => report.result = result,
        Err(e) => report.result_error = Some(e.to_string()),
    }
    let exited_cleanly = matches!(
        report.exit.as_ref().map(|e| &e.end),
        Some(spec::End::Exited { code: 0 })
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
        report.hook_error = Some(crate::text::error_chain(&e));
    }
    if let (Some(worktree), Some(_)) = (worktree, &input.conflict_with) {
        report.unresolved = commit::unmerged_paths(worktree).unwrap_or_default();
    }
    if exited_cleanly
        && report.hook_error.is_none()
        && input.auto_commit
        && report.unresolved.is_empty()
        && let Some(worktree) = worktree
    {
        match commit::commit_all(worktree, &input.message) {
            Ok(sha) => report.committed = sha,
            Err(e) => report.commit_error = Some(crate::text::error_chain(&e)),
        }
    }
    if let (Some(worktree), Some(target)) = (worktree, &input.conflict_with)
        && report.unresolved.is_empty()
    {
        report.markers = commit::files_with_markers(worktree, target).unwrap_or_default();
    }
    if let Some(branch) = &input.branch
        && let Ok(Some(tip)) = refs::branch_tip(&input.repo, branch)
    {
        report.tip = Some(tip.to_string());
        if let Some(base) = input.base.as_deref().and_then(refs::parse_oid) {
            report.commits = refs::commits_on_branch(&input.repo, base, tip).ok();
            report.log =
                refs::recent_commits(&input.repo, base, tip, LOG_COMMITS).unwrap_or_default();
        }
    }
    report
}

impl Coordinator {
    /// Starts collecting an attempt whose supervisor is gone.
    pub(super) fn on_exited(&mut self, unit: FullId, attempt: u32) {
        let Some(live) = self.live.get(&unit).filter(|l| l.attempt == attempt) else {
            return;
        };
        if !self.finishing.insert(unit.clone()) {
            return;
        }
        let task = live.task.clone();
        let task_state = self.state.items.get(&task);
        let unit_state = self.state.items.get(&unit);
        let title = self.title_of(&unit);
        let trailer = if unit == task {
            format!("Orch-Task: {task}")
        } else {
            format!("Orch-Task: {task}\nOrch-Subtask: {unit}")
        };
        let message = format!(
            "{title}\n\nWork left uncommitted by the agent of `{unit}`, attempt {attempt}.\n\n{trailer}\n"
        );
        let worktree = task_state.and_then(|s| s.worktree.clone());
        let branch = task_state
            .and_then(|s| s.branch.clone())
            .unwrap_or_default();
        let post_agent = self
            .hook_stage(
                "post_agent",
                &self.config.hooks.post_agent,
                &task,
                attempt,
                &branch,
            )
            .map(|mut stage| {
                stage.log = live.run_dir.join("post_agent.log");
                if let Some(w) = &worktree {
                    stage
                        .env
                        .push(("ORCH_WORKTREE".to_owned(), w.display().to_string()));
                }
                if unit != task {
                    stage
                        .env
                        .push(("ORCH_SUBTASK_ID".to_owned(), unit.to_string()));
                }
                stage
            });
        let input = Input {
            run_dir: live.run_dir.clone(),
            post_agent,
            repo: self.repo_root.clone(),
            worktree: task_state.and_then(|s| s.worktree.clone()),
            branch: task_state.and_then(|s| s.branch.clone()),
            base: unit_state.and_then(|s| s.base.clone()),
            auto_commit: self.config.agent.auto_commit,
            message,
            conflict_with: unit_state
                .and_then(|s| s.open_attempt())
                .filter(|a| a.purpose == Some(Purpose::Conflict))
                .map(|_| self.target.clone()),
        };
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let report = collect(input);
            let _ = tx.send(Msg::Finished {
                unit,
                attempt,
                report,
            });
        });
    }

    /// Returns an item's title (the first line of orch's commits for it).
    fn title_of(&self, unit: &FullId) -> String {
        self.plan
            .lookup(unit.as_str())
            .map(|i| self.plan.item(i).title.clone())
            .unwrap_or_default()
    }

    /// Decides what a collected attempt means for its item.
    pub(super) fn on_finished(&mut self, unit: FullId, attempt: u32, report: Report) {
        self.finishing.remove(&unit);
        let Some(live) = self.live.remove(&unit) else {
            return;
        };
        if let Some(tip) = &report.tip {
            self.tips.insert(live.task.clone(), tip.clone());
        }
        if let Some(sha) = &report.committed {
            let commit = EventKind::TaskCommit {
                commit: sha.clone(),
                subject: self.title_of(&unit),
                branch: self
                    .state
                    .items
                    .get(&live.task)
                    .and_then(|s| s.branch.clone()),
                source: CommitSource::Auto,
                attempt: Some(attempt),
            };
            self.emit(Some(&unit), commit);
        }
        let still_open = self
            .state
            .items
            .get(&unit)
            .and_then(|s| s.open_attempt())
            .is_some_and(|a| a.number == attempt);
        if !still_open {
            return;
        }
        if let Some(summary) = report.result.as_ref().and_then(|r| r.summary.clone()) {
            control::entry(&self.plan, &mut self.state, &unit).summary = Some(summary);
        }
        let Some(exit) = report.exit.as_ref() else {
            self.interrupt(
                &unit,
                attempt,
                "the supervisor ended without writing exit.json",
            );
            return;
        };
        let timeout = self.unit_timeout(&live.task, &unit);
        let verdict = classify::classify(exit, report.result.as_ref(), &self.config.retry, timeout);
        let duration = exit.finished.0.duration_since(exit.started.0).ok();
        match verdict {
            Verdict::Stopped if self.stopping.is_some() => {
                self.interrupt(&unit, attempt, "stopped when the run was interrupted");
            }
            Verdict::Stopped => {
                self.fail_attempt(
                    &unit,
                    attempt,
                    "stopped by a signal from outside orch".to_owned(),
                    true,
                );
            }
            Verdict::Failure { .. } if report.worktree_gone.is_some() => {
                let gone = report.worktree_gone.clone().unwrap_or_default();
                let reason = format!(
                    "the worktree `{}` is gone; the branch keeps what the agent committed",
                    gone.display()
                );
                self.fail_attempt(&unit, attempt, reason, true);
            }
            Verdict::Failure { reason, retry } => {
                let reason = match &report.result_error {
                    Some(e) => format!("{reason} (the result file is unreadable: {e})"),
                    None => reason,
                };
                self.fail_attempt(&unit, attempt, reason, retry);
            }
            Verdict::Success => {
                if let Some(reason) = report.hook_error {
                    self.fail_attempt(&unit, attempt, reason, true);
                    return;
                }
                if !report.unresolved.is_empty() {
                    let reason = format!(
                        "conflicts left unresolved in {}",
                        report.unresolved.join(", ")
                    );
                    self.fail_attempt(&unit, attempt, reason, true);
                    return;
                }
                if !report.markers.is_empty() {
                    let reason = format!("conflict markers left in {}", report.markers.join(", "));
                    self.fail_attempt(&unit, attempt, reason, true);
                    return;
                }
                if let Some(e) = report.commit_error {
                    let reason = format!("cannot commit what the agent left: {e}");
                    self.fail_attempt(&unit, attempt, reason, false);
                    return;
                }
                let expect = self
                    .plan
                    .lookup(unit.as_str())
                    .is_none_or(|i| self.plan.item(i).expect_changes);
                if expect && report.commits == Some(0) {
                    let reason = "the agent exited 0 but changed nothing (set `expect_changes = false` on the task if that is right)".to_owned();
                    self.fail_attempt(&unit, attempt, reason, true);
                    return;
                }
                if self.status(&unit) == Status::Running {
                    self.succeed(&unit, attempt, report.commits, &report.log, duration);
                }
            }
        }
    }
}
