//! The core's rules for starting attempts: opening them, asking for a
//! worktree, stepping through subtasks, building the agent's command and
//! prompt; and for closing them as failed (retry with backoff, or not) or
//! succeeded.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Map;

use super::core::{
    Effect, LaunchRequest, Live, Now, PrepareError, PromptRequest, ProvisionRequest, RunState,
    claim_free,
};
use crate::config::{Agent, Backoff, ExecutorConfig, ExecutorKind, PromptMode, WorkspaceMode};
use crate::coordinator::collect::FetchBack;
use crate::coordinator::judge::Retryable;
use crate::coordinator::workspace::{self, Freshness, Provisioned};
use crate::git::GitError;
use crate::lifecycle::{Status, Transition, Unit};
use crate::plan::{FullId, Item, ItemIdx};
use crate::runner::executor::{Cluster, GitTransport, Placement, PushBack, TargetMerge};
use crate::runner::folder::RunFolder;
use crate::runner::hook;
use crate::runner::prompt::{
    self, DependencyView, ItemView, PlanView, PreviousView, ProblemView, PromptContext,
};
use crate::runner::spawn::AgentFiles;
use crate::state::events::EventKind;
use crate::state::model::{Attempt, MergeProblem, Outcome, Purpose, Timestamp};

/// What the state lacks to start an attempt (a bug or a plan edited under the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotLaunchable {
    #[error("the task left the plan")]
    TaskLeftPlan,
    #[error("the item left the plan")]
    ItemLeftPlan,
    #[error("the task has no worktree")]
    NoWorktree,
    #[error("the agent preset the item names is not in the config")]
    UnknownAgent,
}

/// What happens after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Retry {
    /// Run again, no sooner than after this wait.
    After(Duration),
    /// No retry: the failure says so.
    No,
    /// No retry: every attempt is spent.
    Exhausted,
}

/// Decides whether a failed attempt is retried, and after how long: the
/// `n`th retry waits `initial * factor^(n-1)`, at most `max`, scaled by
/// `jitter` (0.5 to 1 when on). Pure; `random` is in `[0, 1)`.
pub fn retry_after(
    retryable: Retryable,
    counted: u32,
    max_attempts: u32,
    backoff: &Backoff,
    random: f64,
) -> Retry {
    match (retryable, counted < max_attempts) {
        (Retryable::No, _) => Retry::No,
        (Retryable::Yes, false) => Retry::Exhausted,
        (Retryable::Yes, true) => Retry::After(crate::runner::classify::backoff(
            backoff,
            counted + 1,
            random,
        )),
    }
}

impl RunState {
    /// Starts a task chosen by the scheduler: opens an attempt and asks for its worktree.
    pub(super) fn start_task(&mut self, ti: ItemIdx, now: Now) {
        let plan = Arc::clone(&self.env.plan);
        let id = plan.item(ti).id.clone();
        if self.status(&id) == Status::Pending {
            self.transition(&id, Transition::Promote);
        }
        let number = self.open_attempt_inheriting(&id, now);
        let purpose = self
            .state
            .items
            .get(&id)
            .and_then(|s| s.attempts.last())
            .and_then(|a| a.purpose);
        self.transition(&id, Transition::Start);
        self.emit(
            Some(&id),
            EventKind::TaskStarted {
                attempt: number,
                title: plan.item(ti).title.clone(),
                purpose,
                confined: self.env.sandbox.confinement.confines(),
            },
        );
        self.begin_provision(id, number);
    }

    /// Appends a new, running attempt record and returns its number. A retry
    /// of an attempt that fixed a conflict or a red check keeps its purpose.
    fn open_attempt_inheriting(&mut self, id: &FullId, now: Now) -> u32 {
        let inherited = self
            .state
            .items
            .get(id)
            .and_then(|s| s.attempts.last())
            .filter(|a| {
                matches!(
                    a.outcome,
                    Some(Outcome::Failed { .. } | Outcome::Interrupted { .. })
                )
            })
            .and_then(|a| a.purpose);
        self.open_attempt_for(id, inherited, now)
    }

    /// Appends a new, running attempt record with a purpose and returns its number.
    pub(super) fn open_attempt_for(
        &mut self,
        id: &FullId,
        purpose: Option<Purpose>,
        now: Now,
    ) -> u32 {
        let number = self.entry(id).attempts.len() as u32 + 1;
        let confined = self.env.sandbox.confinement.confines();
        let entry = self.entry(id);
        entry.attempts.push(Attempt {
            number,
            started: Timestamp::at(now.wall),
            finished: None,
            outcome: None,
            purpose,
            job: None,
            confined,
            agent: None,
            session: None,
            resumed: false,
            usage: None,
            paused_until: None,
        });
        entry.not_before = None;
        entry.reason = None;
        self.attempts_started += 1;
        number
    }

    /// Asks the executor for the task's worktree (and `post_create`).
    pub(super) fn begin_provision(&mut self, task: FullId, attempt: u32) {
        let previous = self.state.items.get(&task).and_then(|s| s.worktree.clone());
        let base = self.state.items.get(&task).and_then(|s| s.base.clone());
        // Recycling moves another task's worktree, possibly before the state
        // saying that task is done reaches disk. After a crash in between,
        // the task is collected again from its branch (a gone worktree,
        // `judge.rs`), and the move is finished by the next provisioning
        // (`workspace::finish_cut_recycle`).
        let free = claim_free(self);
        let purpose = self.open_purpose(&task);
        let branch = self.env.branch(&task);
        let request = workspace::Request {
            repo: self.env.repo.clone(),
            target: self.env.target.clone(),
            branch: branch.clone(),
            path: self.env.worktree_root.join(task.as_str()),
            previous,
            base,
            free: free.as_ref().map(|(_, f)| f.clone()),
            // A job of the git workspace merges the target in its clone on
            // the node (`placement_of`); the worktree here stays clean, so
            // that the job's merge commit comes back by fast-forward.
            merge_target: (purpose == Some(Purpose::Conflict)
                && self.fetch_back_of(&task, &task, attempt).is_none())
            .then(|| self.env.target.clone()),
        };
        let post_create = self.hook_stage(
            "post_create",
            &self.env.config.hooks.post_create,
            &task,
            attempt,
            &branch,
        );
        let marker = self.env.state_dir.post_create_marker(&task);
        let run_dir = self
            .env
            .plan
            .lookup(task.as_str())
            .is_some_and(|ti| !self.steps_through(ti, purpose))
            .then(|| self.env.state_dir.run_dir(&task, attempt));
        self.flight.provisioning.insert(task.clone());
        self.effect(Effect::Provision(Box::new(ProvisionRequest {
            task,
            attempt,
            request,
            free_owner: free.map(|(owner, _)| owner),
            post_create,
            marker,
            run_dir,
        })));
    }

    /// Returns the variables every command run for a task sees (agents and hooks).
    pub(super) fn task_vars(
        &self,
        task: &FullId,
        attempt: u32,
        branch: &str,
    ) -> Vec<(String, String)> {
        vec![
            ("ORCH_TASK_ID".to_owned(), task.to_string()),
            ("ORCH_TASK_TITLE".to_owned(), self.title_of(task)),
            ("ORCH_ATTEMPT".to_owned(), attempt.to_string()),
            ("ORCH_BRANCH".to_owned(), branch.to_owned()),
            ("ORCH_TARGET".to_owned(), self.env.target.clone()),
            (
                "ORCH_STATE_DIR".to_owned(),
                self.env.state_dir.path().display().to_string(),
            ),
        ]
    }

    /// Returns a lifecycle hook ready to run for an attempt, or `None` when it has no commands.
    pub(super) fn hook_stage(
        &self,
        name: &'static str,
        commands: &[String],
        task: &FullId,
        attempt: u32,
        branch: &str,
    ) -> Option<hook::Stage> {
        if commands.is_empty() {
            return None;
        }
        let run_dir = self.env.state_dir.run_dir(task, attempt);
        let log = RunFolder::new(run_dir.clone()).hook_log(name);
        Some(hook::Stage {
            name,
            commands: commands.to_vec(),
            env: self.task_vars(task, attempt, branch),
            log,
            timeout: self.env.config.agent.timeout.0,
            sandbox: self.env.sandbox.grant(&run_dir, branch, &self.env.target),
        })
    }

    pub(super) fn on_provisioned(
        &mut self,
        task: FullId,
        attempt: u32,
        free_owner: Option<FullId>,
        result: Result<Provisioned, GitError>,
        prepared: Result<(), PrepareError>,
        now: Now,
    ) {
        self.flight.provisioning.remove(&task);
        if let Some(owner) = free_owner {
            match &result {
                Ok(p) if p.free == workspace::FreeFate::Recycled => {
                    if let Some(s) = self.state.items.get_mut(&owner) {
                        s.worktree = None;
                        self.touch_item(&owner);
                    }
                }
                Ok(p) if p.free == workspace::FreeFate::Unusable => {}
                _ => self.flight.free.push_back(owner),
            }
        }
        let provisioned = match result {
            Err(GitError::NoSuchBranch { branch }) if branch == self.env.target => {
                self.interrupt(&task, attempt, "the target branch is gone", now);
                self.halt_target_gone();
                return;
            }
            Err(e) => {
                if self.is_open(&task, attempt) && self.stopping.is_some() {
                    // Cut short by a deliberate stop: not the worktree's fault.
                    let reason = format!(
                        "stopped while its worktree was prepared ({})",
                        crate::text::error_chain(&e)
                    );
                    self.interrupt(&task, attempt, &reason, now);
                } else if self.is_open(&task, attempt) {
                    let reason = format!(
                        "cannot prepare the worktree: {}",
                        crate::text::error_chain(&e)
                    );
                    self.fail_attempt(&task, attempt, reason, Retryable::No, now);
                }
                return;
            }
            Ok(p) => p,
        };
        if !self.is_open(&task, attempt) {
            return;
        }
        self.flight.worktree_lost.remove(&task);
        if provisioned.how != workspace::How::Reused
            && self.env.config.hooks.post_create.is_empty()
            && self.open_purpose(&task) != Some(Purpose::Conflict)
        {
            self.flight.clean.insert(task.clone());
        } else {
            self.flight.clean.remove(&task);
        }
        let branch = self.env.branch(&task);
        let entry = self.entry(&task);
        entry.worktree = Some(provisioned.worktree.clone());
        entry.branch = Some(branch);
        if let Some(base) = provisioned.base.clone() {
            entry.base = Some(base);
        }
        self.flight
            .tips
            .insert(task.clone(), provisioned.tip.clone());
        match provisioned.freshness {
            Freshness::Behind { commits } => {
                self.flight.behind.insert(task.clone(), commits);
            }
            Freshness::Current => {
                self.flight.behind.remove(&task);
            }
            Freshness::Restarted { .. } => {
                self.flight.behind.remove(&task);
                self.forget_step_bases(&task);
            }
        }
        if let Err(e) = prepared {
            if self.stopping.is_some() {
                self.interrupt(&task, attempt, "stopped while post_create ran", now);
                return;
            }
            self.fail_attempt(
                &task,
                attempt,
                crate::text::error_chain(&e),
                Retryable::Yes,
                now,
            );
            return;
        }
        if self.stopping.is_some() {
            self.interrupt(&task, attempt, "stopped before the agent started", now);
            return;
        }
        let Some(ti) = self.env.plan.lookup(task.as_str()) else {
            return;
        };
        let purpose = self.open_purpose(&task);
        if self.steps_through(ti, purpose) {
            self.flight.stepping.insert(task.clone());
            self.advance_steps(&task, now);
        } else if self.unit_paused(&task, &task, now) {
            self.interrupt(&task, attempt, "its agent was paused meanwhile", now);
        } else {
            self.launch_unit(&task, &task, attempt, now);
        }
    }

    /// Forgets the bases of a task's unfinished subtasks once its branch
    /// started again from the target: their commits count from the new tip.
    fn forget_step_bases(&mut self, task: &FullId) {
        let Some(ti) = self.env.plan.lookup(task.as_str()) else {
            return;
        };
        let plan = Arc::clone(&self.env.plan);
        for sub in &plan.item(ti).children {
            let id = &plan.item(*sub).id;
            if let Some(s) = self.state.items.get_mut(id)
                && !s.status.is_terminal()
                && s.base.take().is_some()
            {
                self.touch_item(id);
            }
        }
    }

    /// Returns whether `attempt` is the open attempt of a running item.
    fn is_open(&self, id: &FullId, attempt: u32) -> bool {
        self.open_attempt(id) == Some(attempt) && self.status(id) == Status::Running
    }

    /// Runs the next subtask of a task that runs one agent per subtask, or
    /// finishes the task when all are done.
    pub(super) fn advance_steps(&mut self, task: &FullId, now: Now) {
        if self.stopping.is_some() || self.status(task) != Status::Running {
            self.flight.stepping.remove(task);
            return;
        }
        let Some(ti) = self.env.plan.lookup(task.as_str()) else {
            return;
        };
        let task_attempt = self.open_attempt(task);
        let has_worktree = self
            .state
            .items
            .get(task)
            .is_some_and(|s| s.worktree.is_some());
        if !has_worktree || self.flight.worktree_lost.contains(task) {
            if let Some(attempt) = task_attempt {
                self.begin_provision(task.clone(), attempt);
            }
            return;
        }
        let plan = Arc::clone(&self.env.plan);
        let order: Vec<FullId> = plan
            .graph()
            .task_node(ti)
            .map(|n| {
                plan.graph()
                    .subtasks(n)
                    .iter()
                    .map(|s| plan.item(*s).id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for sub in order {
            let (status, not_before) = {
                let entry = self.entry(&sub);
                (entry.status, entry.not_before)
            };
            match status {
                Status::Done | Status::Resolved | Status::Cancelled => continue,
                Status::Running | Status::Blocked => return,
                Status::Failed => {
                    let reason = format!("subtask `{sub}` failed");
                    if let Some(attempt) = task_attempt {
                        self.fail_attempt(task, attempt, reason, Retryable::No, now);
                    }
                    self.flight.stepping.remove(task);
                    return;
                }
                Status::Retrying if not_before.is_some_and(|at| at.0 > now.wall) => return,
                Status::Pending | Status::Ready | Status::Retrying => {
                    if self.unit_paused(task, &sub, now) {
                        return;
                    }
                    if status == Status::Pending {
                        self.transition(&sub, Transition::Promote);
                    }
                    let number = self.open_attempt_inheriting(&sub, now);
                    if self.state.items.get(&sub).is_some_and(|s| s.base.is_none()) {
                        let tip = self.flight.tips.get(task).cloned();
                        self.entry(&sub).base = tip;
                    }
                    self.transition(&sub, Transition::Start);
                    self.emit(
                        Some(&sub),
                        EventKind::TaskStarted {
                            attempt: number,
                            title: self.title_of(&sub),
                            purpose: None,
                            confined: self.env.sandbox.confinement.confines(),
                        },
                    );
                    self.launch_unit(task, &sub, number, now);
                    return;
                }
                Status::AwaitingMerge
                | Status::Merging
                | Status::AwaitingReview
                | Status::Conflicted
                | Status::Merged
                | Status::Reverted => {
                    return;
                }
            }
        }
        self.flight.stepping.remove(task);
        if let Some(attempt) = task_attempt {
            self.succeed(task, attempt, None, Vec::new(), None, now);
        }
    }

    /// Asks the executor to start one attempt's supervisor.
    pub(super) fn launch_unit(&mut self, task: &FullId, unit: &FullId, attempt: u32, now: Now) {
        let folder = RunFolder::new(self.env.state_dir.run_dir(unit, attempt));
        let request = match self.launch_request(task, unit, attempt, folder.clone()) {
            Ok(mut request) => {
                request.watch = self
                    .flight
                    .clean
                    .remove(task)
                    .then_some(self.env.config.git.watch_min_files);
                request
            }
            Err(why) => {
                self.fail_attempt(unit, attempt, why.to_string(), Retryable::No, now);
                return;
            }
        };
        let agent = self.agent_name(task, unit);
        if let Some(open) = self
            .entry(unit)
            .open_attempt_mut()
            .filter(|a| a.number == attempt)
        {
            open.agent = agent;
            open.resumed = request.session.is_some();
            open.session = request.session.clone();
        }
        self.flight.live.insert(
            unit.clone(),
            Live {
                task: task.clone(),
                attempt,
                folder,
            },
        );
        self.effect(Effect::Launch(Box::new(request)));
    }

    /// Returns the agent a unit runs: the preset it names (its own
    /// `agent`, else its task's), or the default agent.
    pub(super) fn agent_of(&self, ti: ItemIdx, ui: ItemIdx) -> Option<Agent> {
        let plan = &self.env.plan;
        let name = plan.item(ui).agent().or_else(|| plan.item(ti).agent());
        self.env.config.agent(name)
    }

    /// Returns the agent of a unit given by ids (`None` once it left the plan).
    pub(super) fn agent_of_unit(&self, task: &FullId, unit: &FullId) -> Option<Agent> {
        let ti = self.env.plan.lookup(task.as_str())?;
        let ui = self.env.plan.lookup(unit.as_str())?;
        self.agent_of(ti, ui)
    }

    /// Returns the session an attempt of `unit` continues, if any: that of
    /// its last finished attempt since the budget began (a person's `orch
    /// retry` starts afresh), when that attempt ran the same agent, was not
    /// cancelled and knew its session, and the agent can resume one.
    fn session_to_resume(&self, unit: &FullId, agent: &Agent) -> Option<String> {
        agent.resume_command.as_ref()?;
        let s = self.state.items.get(unit)?;
        let last = s
            .attempts
            .iter()
            .skip(s.budget_start as usize)
            .rev()
            .find(|a| a.outcome.is_some())?;
        let same_agent = last.agent.as_deref() == Some(agent.name());
        let cancelled = matches!(last.outcome, Some(Outcome::Cancelled));
        (same_agent && !cancelled).then(|| last.session.clone())?
    }

    /// Returns the executor settings of a unit: `[executor]`, overridden by
    /// the unit's own `executor` choice, else its task's.
    pub(super) fn executor_of(&self, ti: ItemIdx, ui: ItemIdx) -> ExecutorConfig {
        let plan = &self.env.plan;
        let choice = plan
            .item(ui)
            .executor()
            .or_else(|| plan.item(ti).executor());
        self.env.config.executor.resolve(choice)
    }

    /// Returns the engine that runs a unit's agent, and for a cluster
    /// executor with `workspace = "git"` how its job reaches the task
    /// branch on the remote (pushed before the job, pushed back by it).
    fn placement_of(&self, task: &FullId, unit: &FullId, attempt: u32) -> Placement {
        let plan = &self.env.plan;
        let (Some(ti), Some(ui)) = (plan.lookup(task.as_str()), plan.lookup(unit.as_str())) else {
            return Placement::Local;
        };
        let settings = self.executor_of(ti, ui);
        if settings.kind == ExecutorKind::Local {
            return Placement::Local;
        }
        let purpose = self.open_purpose(task);
        let git = self.fetch_back_of(task, unit, attempt).map(|back| {
            let branch_ref = format!("refs/heads/{}", back.branch);
            GitTransport {
                repo: self.env.repo.clone(),
                remote: back.remote,
                publish: format!("{branch_ref}:{branch_ref}"),
                fetch: branch_ref,
                push_back: Some(PushBack {
                    branch: back.branch,
                    commit_message: self
                        .env
                        .config
                        .agent
                        .auto_commit
                        .then(|| self.leftover_message(task, unit, attempt)),
                    result_ref: back.result_ref,
                }),
                merge: (unit == task && purpose == Some(Purpose::Conflict)).then(|| TargetMerge {
                    target: self.env.target.clone(),
                    remote_ref: format!("refs/orch/target/{task}"),
                }),
                scratch: settings.scratch.clone(),
            }
        });
        Placement::Slurm(Box::new(Cluster { settings, git }))
    }

    /// Returns where a unit's job pushes its work back, when it runs on a
    /// cluster with `workspace = "git"`.
    pub(super) fn fetch_back_of(
        &self,
        task: &FullId,
        unit: &FullId,
        attempt: u32,
    ) -> Option<FetchBack> {
        let plan = &self.env.plan;
        let (ti, ui) = (plan.lookup(task.as_str())?, plan.lookup(unit.as_str())?);
        let cfg = self.executor_of(ti, ui);
        if cfg.kind == ExecutorKind::Local || cfg.workspace != WorkspaceMode::Git {
            return None;
        }
        Some(FetchBack {
            remote: cfg.remote?,
            branch: self.env.branch(task),
            result_ref: format!("refs/orch/results/{unit}/{attempt}"),
        })
    }

    /// Returns the trailers every commit of a unit carries: `Orch-Task`,
    /// and `Orch-Subtask` for a subtask.
    pub(super) fn unit_trailers(&self, task: &FullId, unit: &FullId) -> Vec<String> {
        let mut trailers = vec![format!("Orch-Task: {task}")];
        if unit != task {
            trailers.push(format!("Orch-Subtask: {unit}"));
        }
        trailers
    }

    /// Returns the message of the commit of what a unit's agent left uncommitted.
    pub(super) fn leftover_message(&self, task: &FullId, unit: &FullId, attempt: u32) -> String {
        format!(
            "{}\n\nWork left uncommitted by the agent of `{unit}`, attempt {attempt}.\n\n{}\n",
            self.title_of(unit),
            self.unit_trailers(task, unit).join("\n")
        )
    }

    /// Returns how long a unit's agent may run: its preset's `timeout`, else `agent.timeout`.
    pub(super) fn unit_timeout(&self, task: &FullId, unit: &FullId) -> Duration {
        self.agent_of_unit(task, unit)
            .map(|a| a.timeout)
            .unwrap_or(self.env.config.agent.timeout.0)
    }

    /// Builds the argv, environment and prompt of an attempt; `Err` says
    /// what the state lacks to start it.
    fn launch_request(
        &self,
        task: &FullId,
        unit: &FullId,
        attempt: u32,
        folder: RunFolder,
    ) -> Result<LaunchRequest, NotLaunchable> {
        let plan = &self.env.plan;
        let ti = plan
            .lookup(task.as_str())
            .ok_or(NotLaunchable::TaskLeftPlan)?;
        let ui = plan
            .lookup(unit.as_str())
            .ok_or(NotLaunchable::ItemLeftPlan)?;
        let task_state = self.state.items.get(task);
        let worktree = task_state
            .and_then(|s| s.worktree.clone())
            .ok_or(NotLaunchable::NoWorktree)?;
        let branch = task_state
            .and_then(|s| s.branch.clone())
            .unwrap_or_default();
        let config = &self.env.config.agent;
        let agent = self.agent_of(ti, ui).ok_or(NotLaunchable::UnknownAgent)?;
        let files = AgentFiles::in_worktree(&worktree);
        let purpose = self.open_purpose(task);
        let session = self.session_to_resume(unit, &agent);
        let template = match (purpose, &session) {
            (_, Some(_)) => prompt::RESUMED,
            (Some(Purpose::Conflict), None) => prompt::CONFLICT,
            (Some(Purpose::CheckFailure), None) => prompt::CHECK_FAILURE,
            (Some(Purpose::Review), None) => prompt::REJECTED,
            (None, None) if ui == ti => prompt::TASK,
            (None, None) => prompt::SUBTASK,
        };
        let command = match (&session, &agent.resume_command) {
            (Some(id), Some(resume)) => resume
                .iter()
                .map(|arg| arg.replace("{session_id}", id))
                .collect(),
            _ => agent.command.clone(),
        };
        let (mut context, previous_log, problem_log) = self.prompt_context(
            ti,
            (ui != ti).then_some(ui),
            attempt,
            &worktree,
            &branch,
            &files.result,
        );
        if self.fetch_back_of(task, unit, attempt).is_some() {
            // A job of the git workspace runs in a clone on its node, whose
            // path is known only once the job is named: the prompt names
            // the variables that hold it there.
            context.worktree = "$ORCH_WORKTREE".to_owned();
            context.result_file = "$ORCH_RESULT_FILE".to_owned();
        }
        let mut env: Vec<(String, String)> = agent.env.clone().into_iter().collect();
        let path = |p: &Path| p.display().to_string();
        env.extend(self.task_vars(task, attempt, &branch));
        env.extend([
            ("ORCH_WORKTREE".to_owned(), path(&worktree)),
            ("ORCH_PROMPT_FILE".to_owned(), path(&folder.prompt_file())),
            ("ORCH_RESULT_FILE".to_owned(), path(&files.result)),
        ]);
        if ui != ti {
            env.push(("ORCH_SUBTASK_ID".to_owned(), unit.to_string()));
        }
        let folder_path = &folder.path().to_owned();
        Ok(LaunchRequest {
            task: task.clone(),
            unit: unit.clone(),
            attempt,
            folder,
            command,
            session,
            agent_files: files,
            prompt: PromptRequest {
                template,
                templates: self.env.state_dir.templates(),
                context,
                previous_log,
                problem_log,
            },
            prompt_on_stdin: agent.prompt == PromptMode::Stdin,
            cwd: worktree,
            placement: self.placement_of(task, unit, attempt),
            env,
            timeout: agent.timeout,
            grace: config.grace.0,
            log_limit: config.log_limit.0,
            sandbox: self
                .env
                .sandbox
                .grant(folder_path, &branch, &self.env.target),
            watch: None,
        })
    }

    /// Returns the prompt's context, and the logs whose tails it shows
    /// (read by the executor).
    fn prompt_context(
        &self,
        ti: ItemIdx,
        sub: Option<ItemIdx>,
        attempt: u32,
        worktree: &Path,
        branch: &str,
        result_file: &Path,
    ) -> (
        PromptContext,
        Option<std::path::PathBuf>,
        Option<std::path::PathBuf>,
    ) {
        let plan = &self.env.plan;
        let view = |idx: ItemIdx| item_view(plan.item(idx));
        let mut parents: Vec<ItemView> = plan.ancestors(ti).map(view).collect();
        parents.reverse();
        let subtasks = plan
            .graph()
            .task_node(ti)
            .map(|n| plan.graph().subtasks(n).iter().map(|s| view(*s)).collect())
            .unwrap_or_default();
        let mut deps: Vec<ItemIdx> = Vec::new();
        if let Some(node) = plan.graph().task_node(ti) {
            for edge in plan.graph().deps_of(node) {
                match edge.target {
                    crate::plan::Target::Task(v) => deps.push(plan.tasks()[v as usize]),
                    crate::plan::Target::Container(c) => deps.extend(
                        plan.graph()
                            .container(c)
                            .tasks
                            .clone()
                            .map(|v| plan.tasks()[v as usize]),
                    ),
                }
            }
        }
        // A step's own dependencies on its siblings, committed on this
        // branch by the steps before it (the others are lifted to the task's).
        if let Some(si) = sub {
            deps.extend(
                plan.item(si)
                    .depends_on
                    .iter()
                    .map(|dep| dep.target)
                    .filter(|d| plan.item(*d).parent == Some(ti)),
            );
        }
        let mut dependencies = Vec::new();
        let mut unmet_dependencies = Vec::new();
        for idx in deps {
            let item = plan.item(idx);
            let status = self.status(&item.id);
            let view = DependencyView {
                id: item.id.to_string(),
                title: item.title.clone(),
                status: status.to_string(),
                summary: self
                    .state
                    .items
                    .get(&item.id)
                    .and_then(|s| s.summary.clone()),
            };
            if status.satisfies() {
                dependencies.push(view);
            } else {
                unmet_dependencies.push(view);
            }
        }
        let unit_id = &plan.item(sub.unwrap_or(ti)).id;
        let mut previous_log = None;
        let previous = self.state.items.get(unit_id).and_then(|s| {
            let last = s
                .attempts
                .iter()
                .rev()
                .find(|a| a.number < attempt && a.outcome.is_some())?;
            let reason = match last.outcome.as_ref()? {
                Outcome::Failed { reason, .. } => reason.clone(),
                Outcome::Interrupted { reason } => format!("interrupted ({reason})"),
                Outcome::Cancelled => "cancelled".to_owned(),
                Outcome::Succeeded { .. } => return None,
            };
            previous_log =
                Some(RunFolder::new(self.env.state_dir.run_dir(unit_id, last.number)).log_file());
            Some(PreviousView {
                reason,
                log_tail: None,
            })
        });
        let mut problem_log = None;
        let problem = self
            .state
            .items
            .get(&plan.item(ti).id)
            .and_then(|s| s.merge_problem.clone())
            .map(|p| match p {
                MergeProblem::Conflicts { files } => ProblemView {
                    files,
                    check: None,
                    reviewer: None,
                    reason: None,
                    log_tail: None,
                },
                MergeProblem::Check { name, reason, log } => {
                    problem_log = log;
                    ProblemView {
                        files: Vec::new(),
                        log_tail: None,
                        check: Some(name),
                        reviewer: None,
                        reason: Some(reason),
                    }
                }
                MergeProblem::Review { by, reason } => ProblemView {
                    files: Vec::new(),
                    check: None,
                    reviewer: Some(by),
                    reason: Some(reason),
                    log_tail: None,
                },
            });
        let context = PromptContext {
            problem,
            plan: PlanView {
                title: plan.title.clone(),
            },
            task: view(ti),
            subtask: sub.map(view),
            parents,
            subtasks,
            dependencies,
            unmet_dependencies,
            attempt,
            previous,
            branch: branch.to_owned(),
            target: self.env.target.clone(),
            behind: self.flight.behind.get(&plan.item(ti).id).copied(),
            worktree: worktree.display().to_string(),
            result_file: result_file.display().to_string(),
            confined: self.env.sandbox.confinement.confines(),
        };
        (context, previous_log, problem_log)
    }

    /// Closes an attempt as failed, then retries the item or fails it.
    pub(super) fn fail_attempt(
        &mut self,
        unit: &FullId,
        attempt: u32,
        reason: String,
        retryable: Retryable,
        now: Now,
    ) {
        let max = self.env.config.retry.max_attempts;
        let kind = self.unit_of(unit);
        let entry = self.entry(unit);
        let Some(open) = entry.open_attempt_mut().filter(|a| a.number == attempt) else {
            return;
        };
        open.outcome = Some(Outcome::Failed {
            reason: reason.clone(),
            retry: retryable == Retryable::Yes,
        });
        open.finished = Some(Timestamp::at(now.wall));
        let counted = entry.counted_attempts();
        if entry.status != Status::Running {
            return;
        }
        let random = self.rng.f64();
        let decision = retry_after(
            retryable,
            counted,
            max,
            &self.env.config.retry.backoff,
            random,
        );
        let final_reason = match decision {
            Retry::After(wait) => {
                let entry = self.entry(unit);
                entry.not_before = Some(Timestamp::at(now.wall + wait));
                entry.reason = Some(reason.clone());
                self.transition(unit, Transition::FailTransient);
                self.emit(
                    Some(unit),
                    EventKind::TaskRetrying {
                        attempt,
                        reason,
                        retry_in_ms: wait.as_millis() as u64,
                    },
                );
                return;
            }
            // Counted within the budget: a person's retry starts a fresh one,
            // while attempt numbers (run folders) go on.
            Retry::Exhausted => {
                format!("{reason} (attempt {counted} of {max}; no attempts left)")
            }
            Retry::No => reason,
        };
        self.entry(unit).reason = Some(final_reason.clone());
        self.transition(unit, Transition::FailPermanent);
        self.emit(
            Some(unit),
            EventKind::TaskFailed {
                attempt: Some(attempt),
                reason: final_reason,
            },
        );
        if kind == Unit::Subtask
            && let Some(task) = self.task_of(unit)
        {
            self.flight.stepping.remove(&task);
            if let Some(n) = self.open_attempt(&task) {
                self.fail_attempt(
                    &task,
                    n,
                    format!("subtask `{unit}` failed"),
                    Retryable::No,
                    now,
                );
            }
        }
    }

    /// Closes an attempt as a success and moves the item on: a task joins
    /// the merge queue, a subtask's task steps on.
    pub(super) fn succeed(
        &mut self,
        unit: &FullId,
        attempt: u32,
        commits: Option<u32>,
        log: Vec<(String, String)>,
        duration: Option<Duration>,
        now: Now,
    ) {
        let kind = self.unit_of(unit);
        let entry = self.entry(unit);
        let Some(open) = entry.open_attempt_mut().filter(|a| a.number == attempt) else {
            return;
        };
        open.outcome = Some(Outcome::Succeeded {
            commits: commits.unwrap_or(0),
        });
        open.finished = Some(Timestamp::at(now.wall));
        entry.reason = None;
        if entry.status != Status::Running {
            return;
        }
        self.transition(unit, Transition::Succeed);
        self.emit(
            Some(unit),
            EventKind::TaskCompleted {
                attempt,
                commits,
                log,
                duration_ms: duration.map(|d| d.as_millis() as u64),
            },
        );
        if kind == Unit::Task {
            let tip = self.flight.tips.get(unit).cloned();
            self.enqueue(unit, tip, now);
            self.flight.free.push_back(unit.clone());
        } else if let Some(task) = self.task_of(unit) {
            self.advance_steps(&task, now);
        }
    }
}

/// A prompt an attempt could get, built as a launch builds it, for `orch
/// doctor` to render before any attempt needs it.
#[derive(Debug)]
pub struct PromptPreview {
    /// The task or subtask it is for.
    pub unit: FullId,
    pub template: (&'static str, &'static str),
    pub context: PromptContext,
}

impl RunState {
    /// Returns every prompt the plan's units can get: the task prompt (or,
    /// one agent per subtask, each subtask's), and the conflict and
    /// check-failure prompts of each task, with a stand-in problem.
    pub fn prompt_previews(&self) -> Vec<PromptPreview> {
        let plan = Arc::clone(&self.env.plan);
        let mut out = Vec::new();
        for &ti in plan.tasks() {
            let task = plan.item(ti).id.clone();
            let worktree = self.env.worktree_root.join(task.as_str());
            let branch = self.env.branch(&task);
            let result = AgentFiles::in_worktree(&worktree).result;
            let mut units: Vec<(ItemIdx, Option<ItemIdx>, (&'static str, &'static str))> =
                Vec::new();
            if self.steps(ti) {
                let subs = plan
                    .graph()
                    .task_node(ti)
                    .map(|n| plan.graph().subtasks(n).to_vec())
                    .unwrap_or_default();
                units.extend(subs.into_iter().map(|s| (ti, Some(s), prompt::SUBTASK)));
            } else {
                units.push((ti, None, prompt::TASK));
            }
            units.push((ti, None, prompt::CONFLICT));
            units.push((ti, None, prompt::CHECK_FAILURE));
            units.push((ti, None, prompt::REJECTED));
            units.push((ti, None, prompt::RESUMED));
            for (ti, sub, template) in units {
                let (mut context, _, _) =
                    self.prompt_context(ti, sub, 1, &worktree, &branch, &result);
                if [
                    prompt::CONFLICT.0,
                    prompt::CHECK_FAILURE.0,
                    prompt::REJECTED.0,
                    prompt::RESUMED.0,
                ]
                .contains(&template.0)
                {
                    context.problem = Some(ProblemView {
                        files: vec!["README.md".to_owned()],
                        check: Some("test".to_owned()),
                        reviewer: Some("lead".to_owned()),
                        reason: Some("exit code 1".to_owned()),
                        log_tail: None,
                    });
                }
                out.push(PromptPreview {
                    unit: plan.item(sub.unwrap_or(ti)).id.clone(),
                    template,
                    context,
                });
            }
        }
        out
    }
}

pub(super) fn item_view(item: &Item) -> ItemView {
    ItemView {
        id: item.id.to_string(),
        kind: item.kind.name(),
        title: item.title.clone(),
        description: item.description().map(str::to_owned),
        priority: item.priority.level(),
        acceptance: item.acceptance().to_vec(),
        context: item.context().to_vec(),
        extra: item.extra().cloned().unwrap_or_else(Map::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    #[test]
    fn retries_back_off_until_the_attempts_are_spent() {
        let backoff = Backoff {
            initial: Dur(Duration::from_secs(30)),
            factor: 2.0,
            max: Dur(Duration::from_secs(600)),
            jitter: false,
        };
        let (yes, no) = (Retryable::Yes, Retryable::No);
        let table = [
            (yes, 1, 3, Retry::After(Duration::from_secs(30))),
            (yes, 2, 3, Retry::After(Duration::from_secs(60))),
            (yes, 3, 3, Retry::Exhausted),
            (no, 1, 3, Retry::No),
            (no, 3, 3, Retry::No),
            (yes, 7, 9, Retry::After(Duration::from_secs(600))),
        ];
        for (retryable, counted, max, expected) in table {
            assert_eq!(
                retry_after(retryable, counted, max, &backoff, 0.0),
                expected,
                "retryable {retryable:?}, {counted} of {max}"
            );
        }
        let jittered = Backoff {
            jitter: true,
            ..backoff
        };
        for random in [0.0, 0.5, 0.999] {
            let Retry::After(wait) = retry_after(Retryable::Yes, 1, 3, &jittered, random) else {
                panic!("expected a retry");
            };
            assert!(wait >= Duration::from_secs(15) && wait <= Duration::from_secs(30));
        }
    }
}
