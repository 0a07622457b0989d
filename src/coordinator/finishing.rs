//! The core's rules for an attempt whose supervisor is gone: ask for its
//! collection, then apply the judgement (`judge.rs`) to its item.

use super::core::{Effect, Now, RunState};
use super::judge::{self, Judgement};
use crate::coordinator::collect::{AttemptReport, Collection};
use crate::plan::FullId;
use crate::state::events::{CommitSource, EventKind};
use crate::state::model::{AttemptJob, Purpose};

/// Returns the state's record of a cluster job, once the job has an id.
pub fn attempt_job(job: &crate::runner::spec::JobRecord) -> Option<AttemptJob> {
    Some(AttemptJob {
        executor: job.executor.clone(),
        id: job.id.clone()?,
        node: job.node.clone(),
    })
}

impl RunState {
    /// Asks for the collection of an attempt whose supervisor is gone.
    pub(super) fn on_exited(&mut self, unit: FullId, attempt: u32) {
        let Some(live) = self
            .flight
            .live
            .get(&unit)
            .filter(|l| l.attempt == attempt)
            .cloned()
        else {
            return;
        };
        if !self.flight.finishing.insert(unit.clone()) {
            return;
        }
        let task = live.task.clone();
        let task_state = self.state.items.get(&task);
        let unit_state = self.state.items.get(&unit);
        let trailers = self.unit_trailers(&task, &unit);
        let message = self.leftover_message(&task, &unit, attempt);
        let final_message = self
            .agent_of_unit(&task, &unit)
            .map(|a| a.final_message)
            .unwrap_or_default();
        let worktree = task_state.and_then(|s| s.worktree.clone());
        let branch = task_state.and_then(|s| s.branch.clone());
        let base = unit_state.and_then(|s| s.base.clone());
        let conflict_with = unit_state
            .and_then(|s| s.open_attempt())
            .filter(|a| a.purpose == Some(Purpose::Conflict))
            .map(|_| self.env.target.clone());
        let post_agent = self
            .hook_stage(
                "post_agent",
                &self.env.config.hooks.post_agent,
                &task,
                attempt,
                branch.as_deref().unwrap_or_default(),
            )
            .map(|mut stage| {
                stage.log = live.folder.hook_log("post_agent");
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
        let collection = Collection {
            folder: live.folder,
            repo: self.env.repo.clone(),
            worktree,
            branch,
            base,
            auto_commit: self.env.config.agent.auto_commit,
            message,
            conflict_with,
            post_agent,
            fetch_back: self.fetch_back_of(&task, &unit, attempt),
            final_message,
            target: self.env.target.clone(),
            trailers,
            task: task.to_string(),
        };
        self.effect(Effect::Collect {
            unit,
            attempt,
            collection: Box::new(collection),
        });
    }

    /// Records where a cluster executor runs (or ran) an attempt, and says
    /// so when it is news: the job's id, then its node. A job too short for
    /// the executor's poll is recorded when it is collected.
    pub(super) fn on_placed(&mut self, unit: &FullId, attempt: u32, job: AttemptJob) {
        let Some(open) = self
            .state
            .items
            .get(unit)
            .and_then(|s| s.attempts.iter().find(|a| a.number == attempt))
        else {
            return;
        };
        if open.job.as_ref() == Some(&job) || (open.job.is_some() && job.node.is_none()) {
            return;
        }
        if let Some(a) = self
            .entry(unit)
            .attempts
            .iter_mut()
            .find(|a| a.number == attempt)
        {
            a.job = Some(job.clone());
        }
        self.emit(
            Some(unit),
            EventKind::TaskPlaced {
                attempt,
                executor: job.executor,
                job: job.id,
                node: job.node,
            },
        );
    }

    /// Decides what a collected attempt means for its item.
    pub(super) fn on_collected(
        &mut self,
        unit: FullId,
        attempt: u32,
        report: AttemptReport,
        now: Now,
    ) {
        self.flight.finishing.remove(&unit);
        let Some(live) = self.flight.live.remove(&unit) else {
            return;
        };
        if let Some(tip) = &report.tip {
            self.flight.tips.insert(live.task.clone(), tip.clone());
        }
        if let Some(job) = report.job.as_ref().and_then(attempt_job) {
            self.on_placed(&unit, attempt, job);
        }
        if report.worktree_gone.is_some() {
            self.flight.worktree_lost.insert(live.task.clone());
        }
        if let Some(sha) = &report.committed {
            let branch = self
                .state
                .items
                .get(&live.task)
                .and_then(|s| s.branch.clone());
            self.emit(
                Some(&unit),
                EventKind::TaskCommit {
                    commit: sha.clone(),
                    subject: self.title_of(&unit),
                    branch,
                    source: CommitSource::Auto,
                    attempt: Some(attempt),
                },
            );
        }
        if let Some(e) = &report.vouch_error {
            tracing::warn!(unit = %unit, error = %crate::text::error_chain(e), "cannot add the Orch-Task trailer to the agent's commits");
        }
        if self.open_attempt(&unit) != Some(attempt) {
            return;
        }
        let summary = report
            .result
            .as_ref()
            .and_then(|r| r.summary.clone())
            .or_else(|| {
                let clean = matches!(
                    report.exit.as_ref().map(|e| &e.end),
                    Some(crate::runner::spec::End::Exited { code: 0 })
                );
                clean.then(|| report.final_message.clone()).flatten()
            });
        if let Some(summary) = summary {
            self.entry(&unit).summary = Some(summary);
        }
        let expect_changes = self
            .env
            .plan
            .lookup(unit.as_str())
            .is_none_or(|i| self.env.plan.item(i).expect_changes);
        let mut retry = self.env.config.retry.clone();
        if let Some(agent) = self.agent_of_unit(&live.task, &unit) {
            retry
                .permanent_exit_codes
                .extend(agent.permanent_exit_codes);
            retry
                .transient_exit_codes
                .retain(|c| !retry.permanent_exit_codes.contains(c));
        }
        let rules = judge::Rules {
            retry: &retry,
            timeout: self.unit_timeout(&live.task, &unit),
            stopping: self.stopping.is_some(),
            expect_changes,
        };
        match judge::judge(&report, rules) {
            Judgement::Interrupted { reason } => self.interrupt(&unit, attempt, reason, now),
            Judgement::Failed { reason, retry } => {
                self.fail_attempt(&unit, attempt, reason, retry, now)
            }
            Judgement::Succeeded => {
                let duration = report
                    .exit
                    .as_ref()
                    .and_then(|e| e.finished.0.duration_since(e.started.0).ok());
                self.succeed(&unit, attempt, report.commits, report.log, duration, now);
            }
        }
    }
}
