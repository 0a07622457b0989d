//! The coordinator's side of the merge queue: picking the next task,
//! starting the blocking merge, and applying what came of it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Coordinator, Msg, control};
use crate::config::OnFailure;
use crate::lifecycle::{Event as Transition, Status, Unit};
use crate::merge_queue::checks::CheckRun;
use crate::merge_queue::{self, Job, Outcome, WorktreeAfter};
use crate::plan::FullId;
use crate::runner::spec::{self, SupervisorInfo};
use crate::state::events::{EventKind, Merged};
use crate::state::model::{MergeProblem, Purpose, Queued, Timestamp};

/// How long merging pauses after it had to wait (a dirty target checkout).
const WAIT_PAUSE: Duration = Duration::from_secs(2);

/// The merge in progress.
#[derive(Debug)]
pub(super) struct MergeRun {
    pub stop: Arc<AtomicBool>,
    pub check: Arc<Mutex<Option<u32>>>,
}

impl Coordinator {
    /// Returns whether merging is on for this run.
    pub(super) fn merges(&self) -> bool {
        !self.options.no_merge
    }

    /// Starts the next merge when none runs and one waits.
    pub(super) fn maybe_merge(&mut self) {
        if !self.merges()
            || self.stopping.is_some()
            || self.halted.is_some()
            || self.merging.is_some()
        {
            return;
        }
        if self.merge_pause.is_some_and(|until| Instant::now() < until) {
            return;
        }
        if let Some(task) = merge_queue::queue::next(&self.plan, &self.state) {
            self.start_merge(task);
        }
    }

    fn start_merge(&mut self, task: FullId) {
        let plan = Arc::clone(&self.plan);
        let Some(idx) = plan.lookup(task.as_str()) else {
            return;
        };
        self.transition(&task, Unit::Task, Transition::MergeStart);
        let entry = control::entry(&plan, &mut self.state, &task);
        let branch = entry
            .branch
            .clone()
            .unwrap_or_else(|| format!("{}{}", self.config.git.branch_prefix, task));
        let queued_tip = entry.queued.as_ref().and_then(|q| q.tip.clone());
        let job = Job {
            repo: self.repo_root.clone(),
            state_dir: self.state_dir.path().to_owned(),
            task: task.to_string(),
            title: plan.item(idx).title.clone(),
            branch: branch.clone(),
            queued_tip: queued_tip.clone(),
            base: entry.base.clone(),
            target: self.target.clone(),
            strategy: self.config.git.merge_strategy,
            policy: self.policy.clone(),
            checks: self.config.policy.checks.clone(),
            check_run: CheckRun {
                orch: self.orch_exe.clone(),
                state_dir: self.state_dir.path().to_owned(),
                task: task.to_string(),
                target: self.target.clone(),
                log_limit: self.config.agent.log_limit.0,
                grace: self.config.agent.grace.0,
                stop: Arc::new(AtomicBool::new(false)),
                running: Arc::new(Mutex::new(None)),
            },
            delete_branch: self.config.merge.delete_branch,
            remove_worktree: self.config.merge.remove_worktree,
            task_worktree: entry.worktree.clone(),
            post_merge: self.config.hooks.post_merge.clone(),
            hook_timeout: self.config.agent.timeout.0,
            admin: Arc::clone(&self.worktree_admin),
        };
        self.merging = Some(MergeRun {
            stop: Arc::clone(&job.check_run.stop),
            check: Arc::clone(&job.check_run.running),
        });
        let started = EventKind::MergeStarted {
            branch,
            tip: queued_tip,
            strategy: self.config.git.merge_strategy,
        };
        self.emit(Some(&task), started);
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let outcome = merge_queue::run(&job);
            let _ = tx.send(Msg::Merged { task, outcome });
        });
    }

    /// Asks the merge in progress to stop (the run is stopping).
    pub(super) fn stop_merge(&mut self) {
        if let Some(run) = &self.merging {
            run.stop.store(true, Ordering::SeqCst);
            let pid = *run.check.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(pid) = pid {
                let _ = crate::process::signal(pid, rustix::process::Signal::TERM);
            }
        }
    }

    pub(super) fn on_merged(&mut self, task: FullId, outcome: Outcome) {
        self.merging = None;
        if self.status(&task) != Status::Merging {
            return;
        }
        match outcome {
            Outcome::Merged {
                commit,
                onto,
                took,
                checks,
                branch_deleted,
                backup,
                worktree,
                hook_failures,
            } => {
                self.merge_pause = None;
                self.target_seen = Some(commit.clone());
                for check in checks {
                    self.emit(Some(&task), EventKind::CheckPassed { check });
                }
                let entry = control::entry(&self.plan, &mut self.state, &task);
                entry.merge_commit = Some(commit.clone());
                entry.merge_problem = None;
                entry.reason = None;
                entry.queued = None;
                if branch_deleted {
                    entry.branch = None;
                }
                match &worktree {
                    WorktreeAfter::Removed => entry.worktree = None,
                    WorktreeAfter::Detached(_) => self.free.push_back(task.clone()),
                    WorktreeAfter::Untouched => {}
                }
                self.transition(&task, Unit::Task, Transition::Merge);
                let merged = EventKind::TaskMerged {
                    commit,
                    how: Merged::Landed {
                        onto,
                        strategy: self.config.git.merge_strategy,
                        backup,
                        branch_deleted,
                        merge_ms: took.as_millis() as u64,
                    },
                };
                self.emit(Some(&task), merged);
                for failure in hook_failures {
                    let reason = crate::text::error_chain(&failure);
                    self.emit(Some(&task), EventKind::HookFailed { reason });
                }
            }
            Outcome::Conflicts { files, onto } => {
                let reason = format!(
                    "merging with `{}` conflicts in {}",
                    self.target,
                    list(&files)
                );
                self.conflicted(&task, reason, files, onto);
            }
            Outcome::NotFastForward { onto } => {
                let reason = format!(
                    "`{}` has moved on and `ff-only` cannot land the branch",
                    self.target
                );
                self.conflicted(&task, reason, Vec::new(), onto);
            }
            Outcome::Refused { refusals } => {
                let reason = refusals
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                let rule = refusals.first().map(|r| r.rule).unwrap_or("policy");
                self.red(&task, format!("policy.{rule}"), reason, None);
            }
            Outcome::CheckFailed {
                check,
                failure,
                log,
                passed,
            } => {
                for check in passed {
                    self.emit(Some(&task), EventKind::CheckPassed { check });
                }
                let reason = format!("check `{check}` failed: {failure}");
                self.red(&task, check, reason, Some(log));
            }
            Outcome::Waiting { why } => {
                let reason = crate::text::error_chain(&why);
                self.requeue(&task, &reason, None);
                let changed = self.last_wait.as_deref() != Some(reason.as_str());
                if changed {
                    let waiting = EventKind::MergeWaiting {
                        reason: reason.clone(),
                    };
                    self.emit(Some(&task), waiting);
                }
                self.last_wait = Some(reason);
                self.merge_pause = Some(Instant::now() + WAIT_PAUSE);
            }
            Outcome::BranchMoved { tip, backup } => {
                let reason = match &backup {
                    Some(kept) => format!(
                        "the branch was moved by hand, dropping commits; the old tip is kept as `{kept}`; queued again"
                    ),
                    None => "the branch moved after it was queued; queued again".to_owned(),
                };
                self.requeue(&task, &reason, Some(tip.clone()));
                self.emit(
                    Some(&task),
                    EventKind::MergeRequeued {
                        reason,
                        tip,
                        backup,
                    },
                );
            }
            Outcome::TargetGone => {
                let reason = format!("target branch `{}` is gone", self.target);
                self.requeue(&task, &reason, None);
                self.emit(Some(&task), EventKind::MergeWaiting { reason });
                self.halt_target_gone();
            }
            Outcome::Interrupted => {
                self.requeue(&task, "the run stopped during the merge", None);
            }
            Outcome::Failed { error } => {
                let reason = format!("merge failed: {}", crate::text::error_chain(&error));
                control::entry(&self.plan, &mut self.state, &task).reason = Some(reason.clone());
                self.transition(&task, Unit::Task, Transition::CheckFailed);
                let failed = EventKind::TaskFailed {
                    attempt: None,
                    reason,
                };
                self.emit(Some(&task), failed);
            }
        }
    }

    /// Puts a merging task back in the queue (a new branch tip when it moved).
    fn requeue(&mut self, task: &FullId, reason: &str, tip: Option<String>) {
        let entry = control::entry(&self.plan, &mut self.state, task);
        entry.reason = Some(format!("waiting to merge: {reason}"));
        if let Some(tip) = tip {
            entry.queued = Some(Queued {
                at: Timestamp::now(),
                tip: Some(tip),
            });
        }
        self.transition(task, Unit::Task, Transition::Requeue);
    }

    fn attempts_left(&self, task: &FullId) -> bool {
        let used = self
            .state
            .items
            .get(task)
            .map_or(0, |s| s.counted_attempts());
        used < self.config.retry.max_attempts
    }

    fn conflicted(&mut self, task: &FullId, reason: String, files: Vec<String>, onto: String) {
        let entry = control::entry(&self.plan, &mut self.state, task);
        entry.merge_problem = Some(MergeProblem::Conflicts {
            files: files.clone(),
        });
        entry.reason = Some(reason.clone());
        self.transition(task, Unit::Task, Transition::Conflict);
        let conflicted = EventKind::MergeConflicted {
            files,
            onto,
            reason: reason.clone(),
        };
        self.emit(Some(task), conflicted);
        if self.config.merge.on_conflict == OnFailure::Agent && self.attempts_left(task) {
            self.hand_back(task, Purpose::Conflict);
        } else {
            let entry = control::entry(&self.plan, &mut self.state, task);
            entry.reason = Some(format!(
                "{reason}; waiting for a person: fix the branch and `orch retry {task}`, or `orch resolve {task}`"
            ));
        }
    }

    /// A red check or a policy refusal: the agent tries again, or the task fails.
    fn red(&mut self, task: &FullId, check: String, reason: String, log: Option<PathBuf>) {
        let shown = log.as_ref().map(|l| self.state_dir.show(l));
        let full = match &shown {
            Some(log) => format!("{reason}; log: {log}"),
            None => reason.clone(),
        };
        let failed = EventKind::CheckFailed {
            check: check.clone(),
            reason: reason.clone(),
            log: shown,
        };
        self.emit(Some(task), failed);
        let entry = control::entry(&self.plan, &mut self.state, task);
        entry.merge_problem = Some(MergeProblem::Check {
            name: check,
            reason: reason.clone(),
            log,
        });
        entry.reason = Some(full.clone());
        if self.config.merge.on_check_failure == OnFailure::Agent && self.attempts_left(task) {
            self.hand_back(task, Purpose::CheckFailure);
        } else {
            self.transition(task, Unit::Task, Transition::CheckFailed);
            let failed = EventKind::TaskFailed {
                attempt: None,
                reason: full,
            };
            self.emit(Some(task), failed);
        }
    }

    /// Runs the task's agent again to fix a conflict or a red check.
    fn hand_back(&mut self, task: &FullId, purpose: Purpose) {
        self.transition(task, Unit::Task, Transition::HandBack);
        let number = self.open_attempt_for(task, Some(purpose));
        let title = self
            .plan
            .lookup(task.as_str())
            .map(|i| self.plan.item(i).title.clone())
            .unwrap_or_default();
        let started = EventKind::TaskStarted {
            attempt: number,
            title,
            purpose: Some(purpose),
        };
        self.emit(Some(task), started);
        self.begin_provision(task.clone(), number);
    }

    /// Called when a task enters `awaiting_merge`: it joins the queue.
    pub(super) fn enqueue(&mut self, task: &FullId, tip: Option<String>) {
        let entry = control::entry(&self.plan, &mut self.state, task);
        entry.queued = Some(Queued {
            at: Timestamp::now(),
            tip,
        });
    }

    /// On start: merges that landed before a crash are recorded, the others
    /// go back to the queue, and checks left running are stopped.
    pub(super) fn reconcile_merges(&mut self) {
        let journal: Option<merge_queue::Journal> =
            crate::fsio::read_json(&self.state_dir.path().join(merge_queue::JOURNAL))
                .ok()
                .flatten();
        let target_tip = crate::git::refs::branch_tip(&self.repo_root, &self.target)
            .ok()
            .flatten();
        let repo = self.repo_root.clone();
        let in_target = move |oid: Option<&str>| -> bool {
            match (oid.and_then(crate::git::refs::parse_oid), target_tip) {
                (Some(oid), Some(tip)) => {
                    crate::git::refs::is_ancestor(&repo, oid, tip).unwrap_or(false)
                }
                _ => false,
            }
        };
        let waiting: Vec<(FullId, Status, Option<String>)> = self
            .state
            .items
            .iter()
            .filter(|(_, s)| matches!(s.status, Status::Merging | Status::AwaitingMerge))
            .map(|(id, s)| (id.clone(), s.status, s.branch.clone()))
            .collect();
        for (task, status, branch) in waiting {
            let journaled = journal
                .as_ref()
                .filter(|j| j.task == task.as_str())
                .map(|j| j.candidate.clone());
            let tip = branch
                .as_deref()
                .and_then(|b| {
                    crate::git::refs::branch_tip(&self.repo_root, b)
                        .ok()
                        .flatten()
                })
                .map(|t| t.to_string());
            let landed = journaled.clone().filter(|c| in_target(Some(c)));
            let landed = landed.or_else(|| tip.clone().filter(|t| in_target(Some(t))));
            if let Some(commit) = landed {
                control::entry(&self.plan, &mut self.state, &task).merge_commit =
                    Some(commit.clone());
                self.transition(&task, Unit::Task, Transition::Merge);
                let merged = EventKind::TaskMerged {
                    commit,
                    how: Merged::Recovered,
                };
                self.emit(Some(&task), merged);
            } else if status == Status::Merging {
                self.transition(&task, Unit::Task, Transition::Requeue);
            }
        }
        let checks = self.state_dir.path().join("checks");
        for task_dir in std::fs::read_dir(&checks).into_iter().flatten().flatten() {
            for check_dir in std::fs::read_dir(task_dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let dir = check_dir.path();
                if dir.join(spec::EXIT).exists() {
                    continue;
                }
                let info: Option<SupervisorInfo> =
                    crate::fsio::read_json(&dir.join(spec::SUPERVISOR))
                        .ok()
                        .flatten();
                if let Some(info) = info.filter(|i| crate::process::alive(i.pid)) {
                    let _ = crate::process::signal(info.pid, rustix::process::Signal::TERM);
                }
            }
        }
    }
}

fn list(files: &[String]) -> String {
    let shown: Vec<String> = files.iter().take(10).map(|f| format!("`{f}`")).collect();
    let more = files.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
