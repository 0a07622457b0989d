//! The core's rules for an attempt whose supervisor is gone: ask for its
//! collection, then apply the judgement (`judge.rs`) to its item.

use super::core::{Effect, Now, RunState};
use super::judge::{self, Judgement};
use crate::config::presets::UsageFigure;
use crate::coordinator::collect::{AttemptReport, Collection};
use crate::plan::FullId;
use crate::runner::output;
use crate::state::events::{CommitSource, EventKind};
use crate::state::model::{Attempt, AttemptJob, Purpose, Usage};

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
        let agent = self.agent_of_unit(&task, &unit);
        let final_message = agent
            .as_ref()
            .map(|a| a.final_message.clone())
            .unwrap_or_default();
        let output = agent
            .map(|a| output::Spec {
                limit_exit_codes: a.limit_exit_codes,
                limit_patterns: a.limit_patterns,
                usage: a.usage,
                session: a.session,
            })
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
            output,
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
        let agent = self.agent_of_unit(&live.task, &unit);
        let agent_name = agent.as_ref().map(|a| a.name().to_owned());
        let resumed = self.record_agent_output(&unit, attempt, &report, agent.as_ref());
        let expect_changes = self
            .env
            .plan
            .lookup(unit.as_str())
            .is_none_or(|i| self.env.plan.item(i).expect_changes);
        let mut retry = self.env.config.retry.clone();
        if let Some(agent) = agent {
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
            resumed,
        };
        let judgement = judge::judge(&report, rules);
        if let Some(agent) = &agent_name
            && !matches!(judgement, Judgement::Limited(_))
        {
            self.flight.limit_hits.remove(agent);
        }
        match judgement {
            Judgement::Limited(hit) => {
                let agent = agent_name.unwrap_or_default();
                self.on_limited(&unit, attempt, &agent, hit, now);
            }
            Judgement::ResumeRefused => {
                let entry = self.entry(&unit);
                let session = entry
                    .open_attempt_mut()
                    .filter(|a| a.number == attempt)
                    .and_then(|a| a.session.take())
                    .unwrap_or_default();
                let reason = format!(
                    "the agent could not continue its session `{session}`; the next attempt starts a new one"
                );
                self.interrupt(&unit, attempt, &reason, now);
            }
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

    /// Records on the open attempt what its agent's output said of its
    /// session and usage (emitting `task.usage`), and returns whether the
    /// attempt was asked to continue a session.
    fn record_agent_output(
        &mut self,
        unit: &FullId,
        attempt: u32,
        report: &AttemptReport,
        agent: Option<&crate::config::Agent>,
    ) -> bool {
        let totals: &[UsageFigure] = agent
            .and_then(|a| a.usage.as_ref())
            .map(|u| u.session_totals.as_slice())
            .unwrap_or_default();
        let entry = self.entry(unit);
        let Some(index) = entry
            .attempts
            .iter()
            .position(|a| a.number == attempt && a.outcome.is_none())
        else {
            return false;
        };
        let (before, rest) = entry.attempts.split_at_mut(index);
        let open = &mut rest[0];
        let resumed = open.resumed;
        let usage = report
            .usage
            .map(|raw| own_usage(&raw, totals, before, open));
        open.usage = usage;
        if let Some(session) = &report.session {
            open.session = Some(session.clone());
        }
        let name = open.agent.clone();
        if let Some(usage) = usage {
            self.emit(
                Some(unit),
                EventKind::TaskUsage {
                    attempt,
                    agent: name
                        .or_else(|| agent.map(|a| a.name().to_owned()))
                        .unwrap_or_default(),
                    usage,
                },
            );
        }
        resumed
    }
}

/// Returns the share of `raw` an attempt added. The figures its agent's
/// output counts for the whole session (`totals`) include what the
/// earlier attempts of the same session recorded, which is taken off.
pub(super) fn own_usage(
    raw: &Usage,
    totals: &[UsageFigure],
    before: &[Attempt],
    this: &Attempt,
) -> Usage {
    let Some(session) = this.session.as_deref().filter(|_| this.resumed) else {
        return *raw;
    };
    let earlier = Usage::total(
        before
            .iter()
            .filter(|a| a.session.as_deref() == Some(session)),
    )
    .unwrap_or_default();
    let less = |figure: UsageFigure, now: Option<u64>, then: Option<u64>| match now {
        Some(n) if totals.contains(&figure) => Some(n.saturating_sub(then.unwrap_or(0))),
        other => other,
    };
    Usage {
        input_tokens: less(
            UsageFigure::InputTokens,
            raw.input_tokens,
            earlier.input_tokens,
        ),
        output_tokens: less(
            UsageFigure::OutputTokens,
            raw.output_tokens,
            earlier.output_tokens,
        ),
        cached_tokens: less(
            UsageFigure::CachedTokens,
            raw.cached_tokens,
            earlier.cached_tokens,
        ),
        cost_usd: match raw.cost_usd {
            Some(c) if totals.contains(&UsageFigure::CostUsd) => {
                Some((c - earlier.cost_usd.unwrap_or(0.0)).max(0.0))
            }
            other => other,
        },
    }
}
