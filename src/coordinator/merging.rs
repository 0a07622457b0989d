//! The core's side of the merge queue: picking the next task, asking for
//! its merge, and applying the decision on its outcome (`after_merge.rs`).

use super::after_merge::{self, AfterMerge, Next, Requeue, Stop};
use super::control;
use super::core::{Effect, Halt, MergeRequest, Now, PostMergeRequest, RunState, WAIT_PAUSE};
use crate::lifecycle::{Status, Transition};
use crate::merge_queue::MergeOutcome;
use crate::plan::FullId;
use crate::runner::hook::HookError;
use crate::state::events::{EventKind, Merged};
use crate::state::inbox::{self, Action};
use crate::state::model::{LostHead, MergeProblem, Purpose, Queued, Timestamp};

impl RunState {
    /// Starts the next merge when none runs and one waits.
    pub(super) fn maybe_merge(&mut self, now: Now) {
        if !self.env.merges()
            || self.stopping.is_some()
            || self.halt.is_some()
            || self.merge.merging.is_some()
            || self.merge.post_merge.is_some()
        {
            return;
        }
        if self.merge.pause_until.is_some_and(|until| now.mono < until) {
            return;
        }
        if let Some(task) = crate::merge_queue::queue::next(&self.env.plan, &self.state) {
            self.start_merge(task);
        }
    }

    fn start_merge(&mut self, task: FullId) {
        let Some(idx) = self.env.plan.lookup(task.as_str()) else {
            return;
        };
        self.transition(&task, Transition::MergeStart);
        let default_branch = self.env.branch(&task);
        let title = self.env.plan.item(idx).title.clone();
        let landed = self.state.landed.clone();
        let entry = self.entry(&task);
        let request = MergeRequest {
            task: task.clone(),
            title,
            branch: entry.branch.clone().unwrap_or(default_branch),
            queued_tip: entry.queued.as_ref().and_then(|q| q.tip.clone()),
            base: entry.base.clone(),
            worktree: entry.worktree.clone(),
            landed,
            merged_before: entry.merge_commit.clone(),
        };
        self.merge.merging = Some(task.clone());
        self.emit(
            Some(&task),
            EventKind::MergeStarted {
                branch: request.branch.clone(),
                tip: request.queued_tip.clone(),
                strategy: self.env.config.git.merge_strategy,
            },
        );
        self.effect(Effect::StartMerge(Box::new(request)));
    }

    /// Stops starting and merging because the target branch is gone.
    pub(super) fn halt_target_gone(&mut self) {
        if self.halt.is_none() {
            self.halt = Some(Halt::TargetGone {
                last: self.merge.target_seen.clone(),
            });
        }
    }

    /// Stops starting and merging because the target lost `lost`, the head
    /// orch last landed; the state remembers it was reported.
    pub(super) fn halt_target_rewound(&mut self, lost: String, backup: String) {
        self.state.lost = Some(LostHead {
            commit: lost.clone(),
            backup: backup.clone(),
        });
        self.touch();
        if self.halt.is_none() {
            self.halt = Some(Halt::TargetRewound { lost, backup });
        }
    }

    pub(super) fn on_merged(&mut self, task: FullId, outcome: MergeOutcome, now: Now) {
        self.merge.merging = None;
        let cancels = std::mem::take(&mut self.merge.cancels);
        if self.status(&task) != Status::Merging {
            self.answer_cancels(&task, cancels, now);
            return;
        }
        if !cancels.is_empty() {
            if !matches!(outcome, MergeOutcome::Merged { .. }) {
                self.answer_cancels(&task, cancels, now);
                return;
            }
            for received in cancels {
                let reply = inbox::Reply::refused(format!(
                    "cannot cancel `{task}`: its merge landed before it could be stopped; it is `merged`"
                ));
                self.effect(Effect::Reply { received, reply });
            }
        }
        let rules = after_merge::Rules {
            target: &self.env.target,
            on_conflict: self.env.config.merge.on_conflict,
            on_check_failure: self.env.config.merge.on_check_failure,
            attempts_left: self.attempts_left(&task),
            last_wait: self.merge.last_wait.as_deref(),
        };
        match after_merge::decide(&outcome, rules) {
            AfterMerge::Landed => self.landed(&task, outcome),
            AfterMerge::Conflicted {
                reason,
                files,
                onto,
                next,
            } => {
                let entry = self.entry(&task);
                entry.merge_problem = Some(MergeProblem::Conflicts {
                    files: files.clone(),
                });
                entry.reason = Some(reason.clone());
                self.transition(&task, Transition::Conflict);
                self.emit(
                    Some(&task),
                    EventKind::MergeConflicted {
                        files,
                        onto,
                        reason: reason.clone(),
                    },
                );
                match next {
                    Next::Agent => self.hand_back(&task, Purpose::Conflict, now),
                    Next::Person => {
                        self.entry(&task).reason = Some(format!(
                            "{reason}; waiting for a person: fix the branch and `orch retry {task}`, or `orch resolve {task}`"
                        ));
                    }
                }
            }
            AfterMerge::Red {
                check,
                reason,
                log,
                passed,
                next,
            } => {
                for name in passed {
                    self.emit(Some(&task), EventKind::CheckPassed { check: name });
                }
                let shown = log.as_ref().map(|l| self.env.state_dir.show(l));
                let full = match &shown {
                    Some(log) => format!("{reason}; log: {log}"),
                    None => reason.clone(),
                };
                self.emit(
                    Some(&task),
                    EventKind::CheckFailed {
                        check: check.clone(),
                        reason: reason.clone(),
                        log: shown,
                    },
                );
                let entry = self.entry(&task);
                entry.merge_problem = Some(MergeProblem::Check {
                    name: check,
                    reason,
                    log,
                });
                entry.reason = Some(full.clone());
                match next {
                    Next::Agent => self.hand_back(&task, Purpose::CheckFailure, now),
                    Next::Person => {
                        self.transition(&task, Transition::CheckFailed);
                        self.emit(
                            Some(&task),
                            EventKind::TaskFailed {
                                attempt: None,
                                reason: full,
                            },
                        );
                    }
                }
            }
            AfterMerge::Requeued(Requeue {
                reason,
                tip,
                announce_wait,
                announce_requeue,
                pause,
                halt,
            }) => {
                self.requeue(&task, &reason, tip.clone(), now);
                if announce_wait {
                    self.emit(
                        Some(&task),
                        EventKind::MergeWaiting {
                            reason: reason.clone(),
                        },
                    );
                }
                if let Some(backup) = announce_requeue {
                    self.emit(
                        Some(&task),
                        EventKind::MergeRequeued {
                            reason: reason.clone(),
                            tip: tip.unwrap_or_default(),
                            backup,
                        },
                    );
                }
                if pause {
                    self.merge.last_wait = Some(reason);
                    self.merge.pause_until = Some(now.mono + WAIT_PAUSE);
                }
                match halt {
                    Some(Stop::TargetGone) => self.halt_target_gone(),
                    Some(Stop::TargetRewound { lost, backup, .. }) => {
                        self.halt_target_rewound(lost, backup)
                    }
                    None => {}
                }
            }
            AfterMerge::Failed { reason } => {
                self.entry(&task).reason = Some(reason.clone());
                self.transition(&task, Transition::CheckFailed);
                self.emit(
                    Some(&task),
                    EventKind::TaskFailed {
                        attempt: None,
                        reason,
                    },
                );
            }
        }
    }

    /// Applies people's cancels of a task whose merge was stopped for them,
    /// and answers each the same way.
    fn answer_cancels(&mut self, task: &FullId, cancels: Vec<inbox::Received>, now: Now) {
        if cancels.is_empty() {
            return;
        }
        let applied = control::apply(
            &self.env.plan,
            &mut self.state,
            Action::Cancel,
            task.as_str(),
            Timestamp::at(now.wall),
        );
        let reply = match applied {
            Ok(applied) => {
                self.touch_all();
                self.flight.views = crate::state::task_views(&self.env.plan, Some(&self.state));
                for (id, kind) in applied.events {
                    self.emit(Some(&id), kind);
                }
                inbox::Reply::ok(format!("{} `{task}`", Action::Cancel.past()))
            }
            Err(e) => inbox::Reply::refused(e.to_string()),
        };
        for received in cancels {
            self.effect(Effect::Reply {
                received,
                reply: reply.clone(),
            });
        }
    }

    /// Ends a landed merge's `post_merge` hooks.
    pub(super) fn on_post_merged(&mut self, task: FullId, result: Result<(), HookError>) {
        self.merge.post_merge = None;
        if let Err(failure) = result {
            self.emit(
                Some(&task),
                EventKind::HookFailed {
                    reason: crate::text::error_chain(&failure),
                },
            );
        }
    }

    /// Records a task whose work is in the target; the state is written at
    /// once, before its `post_merge` hooks run.
    fn landed(&mut self, task: &FullId, outcome: MergeOutcome) {
        let MergeOutcome::Merged {
            commit,
            onto,
            took,
            checks,
            branch_deleted,
            backup,
            worktree,
            hooks_in,
            hook_failures,
        } = outcome
        else {
            return;
        };
        self.merge.pause_until = None;
        self.merge.target_seen = Some(commit.clone());
        if hooks_in.is_some() {
            self.state.landed = Some(commit.clone());
        }
        for check in checks {
            self.emit(Some(task), EventKind::CheckPassed { check });
        }
        let entry = self.entry(task);
        entry.merge_commit = Some(commit.clone());
        entry.merge_problem = None;
        entry.reason = None;
        entry.queued = None;
        if branch_deleted {
            entry.branch = None;
        }
        match &worktree {
            crate::merge_queue::WorktreeAfter::Removed => entry.worktree = None,
            crate::merge_queue::WorktreeAfter::Detached(_) => {
                self.flight.free.push_back(task.clone())
            }
            crate::merge_queue::WorktreeAfter::Untouched => {}
        }
        self.transition(task, Transition::Merge);
        self.emit(
            Some(task),
            EventKind::TaskMerged {
                commit: commit.clone(),
                how: Merged::Landed {
                    onto,
                    strategy: self.env.config.git.merge_strategy,
                    backup,
                    branch_deleted,
                    merge_ms: took.as_millis() as u64,
                },
            },
        );
        for failure in hook_failures {
            self.emit(
                Some(task),
                EventKind::HookFailed {
                    reason: crate::text::error_chain(&failure),
                },
            );
        }
        self.effect(Effect::Flush);
        if let Some(dir) = hooks_in
            && !self.env.config.hooks.post_merge.is_empty()
        {
            self.merge.post_merge = Some(task.clone());
            self.effect(Effect::PostMerge(Box::new(PostMergeRequest {
                task: task.clone(),
                commit,
                dir,
            })));
        }
    }

    /// Puts a merging task back in the queue (at a new branch tip when it moved).
    fn requeue(&mut self, task: &FullId, reason: &str, tip: Option<String>, now: Now) {
        let entry = self.entry(task);
        entry.reason = Some(format!("waiting to merge: {reason}"));
        if let Some(tip) = tip {
            entry.queued = Some(Queued {
                at: Timestamp::at(now.wall),
                tip: Some(tip),
            });
        }
        self.transition(task, Transition::Requeue);
    }

    fn attempts_left(&self, task: &FullId) -> bool {
        let used = self
            .state
            .items
            .get(task)
            .map_or(0, |s| s.counted_attempts());
        used < self.env.config.retry.max_attempts
    }

    /// Runs the task's agent again to fix a conflict or a red check.
    fn hand_back(&mut self, task: &FullId, purpose: Purpose, now: Now) {
        self.transition(task, Transition::HandBack);
        let number = self.open_attempt_for(task, Some(purpose), now);
        self.emit(
            Some(task),
            EventKind::TaskStarted {
                attempt: number,
                title: self.title_of(task),
                purpose: Some(purpose),
                confined: self.env.sandbox.confinement.confines(),
            },
        );
        self.begin_provision(task.clone(), number);
    }

    /// Called when a task enters `awaiting_merge`: it joins the queue.
    pub(super) fn enqueue(&mut self, task: &FullId, tip: Option<String>, now: Now) {
        self.entry(task).queued = Some(Queued {
            at: Timestamp::at(now.wall),
            tip,
        });
    }
}
