//! Starting attempts: provisioning the worktree, rendering the prompt,
//! spawning the supervisor; and stepping through subtasks.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Map;

/// The file, in a task's run folder, that says `post_create` succeeded in
/// the worktree the task has now.
const POST_CREATE_DONE: &str = "post_create.done";

use super::workspace::{self, FreeWorktree};
use super::{Coordinator, Live, Msg, control};
use crate::config::PromptMode;
use crate::lifecycle::{Event as Transition, Status, Unit};
use crate::plan::{FullId, Item, ItemIdx};
use crate::runner::hook;
use crate::runner::prompt::{
    self, DependencyView, ItemView, PlanView, PreviousView, ProblemView, PromptContext,
};
use crate::runner::spawn::{self, AttemptPlan};
use crate::state::events::EventKind;
use crate::state::model::{Attempt, MergeProblem, Outcome, Purpose, Timestamp};

impl Coordinator {
    /// Starts a task chosen by the scheduler: opens an attempt and provisions.
    pub(super) fn start_task(&mut self, ti: ItemIdx) {
        let plan = Arc::clone(&self.plan);
        let id = plan.item(ti).id.clone();
        if self.status(&id) == Status::Pending {
            self.transition(&id, Unit::Task, Transition::Promote);
        }
        let number = self.open_attempt(&id);
        self.transition(&id, Unit::Task, Transition::Start);
        self.emit(
            Some(&id),
            EventKind::TaskStarted {
                attempt: number,
                title: plan.item(ti).title.clone(),
                purpose: None,
            },
        );
        self.begin_provision(id, number);
    }

    /// Appends a new, running attempt record and returns its number. A retry
    /// of an attempt that fixed a conflict or a red check keeps its purpose.
    fn open_attempt(&mut self, id: &FullId) -> u32 {
        let entry = control::entry(&self.plan, &mut self.state, id);
        let inherited = entry
            .attempts
            .last()
            .filter(|a| {
                matches!(
                    a.outcome,
                    Some(Outcome::Failed { .. } | Outcome::Interrupted { .. })
                )
            })
            .and_then(|a| a.purpose);
        self.open_attempt_for(id, inherited)
    }

    /// Appends a new, running attempt record with a purpose and returns its number.
    pub(super) fn open_attempt_for(&mut self, id: &FullId, purpose: Option<Purpose>) -> u32 {
        let entry = control::entry(&self.plan, &mut self.state, id);
        let number = entry.attempts.len() as u32 + 1;
        entry.attempts.push(Attempt {
            number,
            started: Timestamp::now(),
            finished: None,
            outcome: None,
            purpose,
        });
        entry.not_before = None;
        entry.reason = None;
        self.dirty = true;
        self.attempts_started += 1;
        number
    }

    /// Takes a free worktree to recycle, if there is one.
    fn claim_free(&mut self) -> Option<(FullId, FreeWorktree)> {
        while let Some(owner) = self.free.pop_front() {
            let Some(s) = self.state.items.get(&owner) else {
                continue;
            };
            let usable =
                matches!(s.status, Status::AwaitingMerge | Status::Merged) && !self.busy(&owner);
            if let (true, Some(path)) = (usable, s.worktree.clone())
                && path.is_dir()
            {
                // A merged task's worktree was detached by the merge's cleanup.
                let branch = if s.status == Status::Merged {
                    None
                } else {
                    s.branch.clone()
                };
                return Some((owner, FreeWorktree { path, branch }));
            }
        }
        None
    }

    /// Provisions the task's worktree on a blocking thread.
    pub(super) fn begin_provision(&mut self, task: FullId, attempt: u32) {
        let entry = control::entry(&self.plan, &mut self.state, &task);
        let previous = entry.worktree.clone();
        // Recycling moves another task's worktree, possibly before the state
        // saying that task is done reaches disk. After a crash in between,
        // the task is collected again from its branch (`finish.rs`: a gone
        // worktree), and the move is finished by the next provisioning
        // (`workspace::finish_cut_recycle`).
        let free = self.claim_free();
        let purpose = control::entry(&self.plan, &mut self.state, &task)
            .open_attempt()
            .and_then(|a| a.purpose);
        let req = workspace::Request {
            repo: self.repo_root.clone(),
            target: self.target.clone(),
            branch: format!("{}{}", self.config.git.branch_prefix, task),
            path: self.worktree_root.join(task.as_str()),
            previous,
            free: free.as_ref().map(|(_, f)| f.clone()),
            merge_target: (purpose == Some(Purpose::Conflict)).then(|| self.target.clone()),
        };
        let free_owner = free.map(|(owner, _)| owner);
        let post_create = self.hook_stage(
            "post_create",
            &self.config.hooks.post_create,
            &task,
            attempt,
            &req.branch,
        );
        let marker = self
            .state_dir
            .path()
            .join("runs")
            .join(task.as_str())
            .join(POST_CREATE_DONE);
        self.provisioning.insert(task.clone());
        let tx = self.tx.clone();
        let admin = Arc::clone(&self.worktree_admin);
        tokio::task::spawn_blocking(move || {
            let guard = admin
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let result = workspace::provision(&req);
            drop(guard);
            let target_gone = matches!(
                &result,
                Err(crate::git::GitError::NoSuchBranch { branch }) if *branch == req.target
            );
            let result = result.map_err(|e| crate::text::error_chain(&e));
            let prepared = match (&result, post_create) {
                (Ok(p), Some(stage)) => prepare(stage, p, &marker),
                _ => Ok(()),
            };
            let _ = tx.send(Msg::Provisioned {
                task,
                attempt,
                result,
                free_owner,
                prepared,
                target_gone,
            });
        });
    }

    /// Returns the variables every command run for a task sees (agents and hooks).
    pub(super) fn task_vars(
        &self,
        task: &FullId,
        attempt: u32,
        branch: &str,
    ) -> Vec<(String, String)> {
        let title = self
            .plan
            .lookup(task.as_str())
            .map(|i| self.plan.item(i).title.clone())
            .unwrap_or_default();
        vec![
            ("ORCH_TASK_ID".to_owned(), task.to_string()),
            ("ORCH_TASK_TITLE".to_owned(), title),
            ("ORCH_ATTEMPT".to_owned(), attempt.to_string()),
            ("ORCH_BRANCH".to_owned(), branch.to_owned()),
            ("ORCH_TARGET".to_owned(), self.target.clone()),
            (
                "ORCH_STATE_DIR".to_owned(),
                self.state_dir.path().display().to_string(),
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
        let log =
            control::run_dir(self.state_dir.path(), task, attempt).join(format!("{name}.log"));
        Some(hook::Stage {
            name,
            commands: commands.to_vec(),
            env: self.task_vars(task, attempt, branch),
            log,
            timeout: self.config.agent.timeout.0,
        })
    }

    pub(super) fn on_provisioned(
        &mut self,
        task: FullId,
        attempt: u32,
        result: Result<workspace::Provisioned, String>,
        free_owner: Option<FullId>,
        prepared: Result<(), String>,
    ) {
        self.provisioning.remove(&task);
        if let Some(owner) = free_owner {
            let recycled = matches!(&result, Ok(p) if p.unused_free.is_none());
            if recycled {
                if let Some(s) = self.state.items.get_mut(&owner) {
                    s.worktree = None;
                }
            } else {
                self.free.push_back(owner);
            }
        }
        let open = control::entry(&self.plan, &mut self.state, &task)
            .open_attempt()
            .is_some_and(|a| a.number == attempt);
        if !open || self.status(&task) != Status::Running {
            return;
        }
        let provisioned = match result {
            Ok(p) => p,
            Err(reason) => {
                self.fail_attempt(
                    &task,
                    attempt,
                    format!("cannot prepare the worktree: {reason}"),
                    false,
                );
                return;
            }
        };
        let branch = format!("{}{}", self.config.git.branch_prefix, task);
        let entry = control::entry(&self.plan, &mut self.state, &task);
        entry.worktree = Some(provisioned.worktree.clone());
        entry.branch = Some(branch);
        if let Some(base) = provisioned.base.clone() {
            entry.base = Some(base);
        }
        self.tips.insert(task.clone(), provisioned.tip.clone());
        self.dirty = true;
        if let Err(reason) = prepared {
            self.fail_attempt(&task, attempt, reason, true);
            return;
        }
        if self.stopping.is_some() {
            self.interrupt(&task, attempt, "stopped before the agent started");
            return;
        }
        let Some(ti) = self.plan.lookup(task.as_str()) else {
            return;
        };
        let purpose = self
            .state
            .items
            .get(&task)
            .and_then(|s| s.open_attempt())
            .and_then(|a| a.purpose);
        if self.steps(ti) && purpose.is_none() {
            self.stepping.insert(task.clone());
            self.advance_steps(&task);
        } else {
            self.launch_unit(&task, &task, attempt);
        }
    }

    /// Runs the next subtask of a task that runs one agent per subtask, or
    /// finishes the task when all are done.
    pub(super) fn advance_steps(&mut self, task: &FullId) {
        if self.stopping.is_some() || self.status(task) != Status::Running {
            self.stepping.remove(task);
            return;
        }
        let Some(ti) = self.plan.lookup(task.as_str()) else {
            return;
        };
        let worktree_ok = self
            .state
            .items
            .get(task)
            .and_then(|s| s.worktree.as_ref())
            .is_some_and(|w| w.is_dir());
        let task_attempt = self
            .state
            .items
            .get(task)
            .and_then(|s| s.open_attempt())
            .map(|a| a.number);
        if !worktree_ok {
            if let Some(attempt) = task_attempt {
                self.begin_provision(task.clone(), attempt);
            }
            return;
        }
        let plan = Arc::clone(&self.plan);
        let node = plan.graph().task_node(ti);
        let order: Vec<FullId> = node
            .map(|n| {
                plan.graph()
                    .subtasks(n)
                    .iter()
                    .map(|s| plan.item(*s).id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let now = SystemTime::now();
        for sub in order {
            let (status, not_before) = {
                let entry = control::entry(&plan, &mut self.state, &sub);
                (entry.status, entry.not_before)
            };
            match status {
                Status::Done | Status::Resolved | Status::Cancelled => continue,
                Status::Running | Status::Blocked => return,
                Status::Failed => {
                    let reason = format!("subtask `{sub}` failed");
                    if let Some(attempt) = task_attempt {
                        self.fail_attempt(task, attempt, reason, false);
                    }
                    self.stepping.remove(task);
                    return;
                }
                Status::Retrying if not_before.is_some_and(|at| at.0 > now) => return,
                Status::Pending | Status::Ready | Status::Retrying => {
                    if status == Status::Pending {
                        self.transition(&sub, Unit::Subtask, Transition::Promote);
                    }
                    let number = self.open_attempt(&sub);
                    if self.state.items.get(&sub).is_some_and(|s| s.base.is_none()) {
                        let tip = self.tips.get(task).cloned();
                        control::entry(&plan, &mut self.state, &sub).base = tip;
                    }
                    self.transition(&sub, Unit::Subtask, Transition::Start);
                    let title = plan
                        .lookup(sub.as_str())
                        .map(|i| plan.item(i).title.clone())
                        .unwrap_or_default();
                    self.emit(
                        Some(&sub),
                        EventKind::TaskStarted {
                            attempt: number,
                            title,
                            purpose: None,
                        },
                    );
                    self.launch_unit(task, &sub, number);
                    return;
                }
                Status::AwaitingMerge | Status::Merging | Status::Conflicted | Status::Merged => {
                    return;
                }
            }
        }
        self.stepping.remove(task);
        if let Some(attempt) = task_attempt {
            self.succeed(task, attempt, None, &[], None);
        }
    }

    /// Prepares the run folder and starts the supervisor for one attempt.
    pub(super) fn launch_unit(&mut self, task: &FullId, unit: &FullId, attempt: u32) {
        let run_dir = control::run_dir(self.state_dir.path(), unit, attempt);
        let plan = match self.attempt_plan(task, unit, attempt, &run_dir) {
            Ok(plan) => plan,
            Err(reason) => {
                self.fail_attempt(unit, attempt, reason, false);
                return;
            }
        };
        let spawned =
            spawn::prepare(&plan).and_then(|_| spawn::spawn_supervisor(&self.orch_exe, &run_dir));
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                self.fail_attempt(
                    unit,
                    attempt,
                    format!("cannot start the supervisor: {e}"),
                    true,
                );
                return;
            }
        };
        self.live.insert(
            unit.clone(),
            Live {
                task: task.clone(),
                attempt,
                run_dir,
                supervisor: child.id(),
                own: true,
            },
        );
        let tx = self.tx.clone();
        let unit = unit.clone();
        tokio::spawn(async move {
            let _ = child.wait().await;
            let _ = tx.send(Msg::Exited { unit, attempt });
        });
    }

    /// Returns the agent preset a unit picks (its own `agent`, else its task's).
    fn preset(&self, ti: ItemIdx, ui: ItemIdx) -> Option<&crate::config::AgentPreset> {
        let plan = &self.plan;
        let name = plan.item(ui).agent().or_else(|| plan.item(ti).agent());
        name.and_then(|n| self.config.agents.get(n))
    }

    /// Returns how long a unit's agent may run: its preset's `timeout`, else `agent.timeout`.
    pub(super) fn unit_timeout(&self, task: &FullId, unit: &FullId) -> Duration {
        let (Some(ti), Some(ui)) = (
            self.plan.lookup(task.as_str()),
            self.plan.lookup(unit.as_str()),
        ) else {
            return self.config.agent.timeout.0;
        };
        self.preset(ti, ui)
            .and_then(|p| p.timeout)
            .unwrap_or(self.config.agent.timeout)
            .0
    }

    /// Builds the argv, environment and prompt of an attempt.
    fn attempt_plan(
        &self,
        task: &FullId,
        unit: &FullId,
        attempt: u32,
        run_dir: &std::path::Path,
    ) -> Result<AttemptPlan, String> {
        let plan = &self.plan;
        let ti = plan.lookup(task.as_str()).ok_or("the task left the plan")?;
        let ui = plan.lookup(unit.as_str()).ok_or("the item left the plan")?;
        let task_state = self.state.items.get(task);
        let worktree = task_state
            .and_then(|s| s.worktree.clone())
            .ok_or("the task has no worktree")?;
        let branch = task_state
            .and_then(|s| s.branch.clone())
            .unwrap_or_default();
        let agent = &self.config.agent;
        let preset = self.preset(ti, ui);
        let command = preset
            .map(|p| p.command.clone())
            .unwrap_or_else(|| agent.command.clone());
        let mode = preset.and_then(|p| p.prompt).unwrap_or(agent.prompt);
        let timeout = preset.and_then(|p| p.timeout).unwrap_or(agent.timeout).0;
        let result_file = run_dir.join(crate::runner::spec::RESULT);
        let prompt_file = run_dir.join(crate::runner::spec::PROMPT);
        let context = self.prompt_context(
            ti,
            (ui != ti).then_some(ui),
            attempt,
            &worktree,
            &branch,
            &result_file,
        );
        let purpose = task_state
            .and_then(|s| s.open_attempt())
            .and_then(|a| a.purpose);
        let template = match purpose {
            Some(Purpose::Conflict) => prompt::CONFLICT,
            Some(Purpose::CheckFailure) => prompt::CHECK_FAILURE,
            None if ui == ti => prompt::TASK,
            None => prompt::SUBTASK,
        };
        let text = prompt::render(template, &self.state_dir.path().join("templates"), &context)
            .map_err(|e| crate::text::error_chain(&e))?;
        let mut env: Vec<(String, String)> = agent.env.clone().into_iter().collect();
        if let Some(p) = preset {
            env.extend(p.env.clone());
        }
        let path = |p: &std::path::Path| p.display().to_string();
        env.extend(self.task_vars(task, attempt, &branch));
        env.extend([
            ("ORCH_WORKTREE".to_owned(), path(&worktree)),
            ("ORCH_PROMPT_FILE".to_owned(), path(&prompt_file)),
            ("ORCH_RESULT_FILE".to_owned(), path(&result_file)),
        ]);
        if ui != ti {
            env.push(("ORCH_SUBTASK_ID".to_owned(), unit.to_string()));
        }
        Ok(AttemptPlan {
            run_dir: run_dir.to_owned(),
            command,
            prompt: text,
            prompt_on_stdin: mode == PromptMode::Stdin,
            cwd: worktree,
            env,
            timeout,
            grace: agent.grace.0,
            log_limit: agent.log_limit.0,
        })
    }

    fn prompt_context(
        &self,
        ti: ItemIdx,
        sub: Option<ItemIdx>,
        attempt: u32,
        worktree: &std::path::Path,
        branch: &str,
        result_file: &std::path::Path,
    ) -> PromptContext {
        let plan = &self.plan;
        let view = |idx: ItemIdx| item_view(plan.item(idx));
        let mut parents: Vec<ItemView> = plan.ancestors(ti).map(view).collect();
        parents.reverse();
        let subtasks = plan
            .graph()
            .task_node(ti)
            .map(|n| plan.graph().subtasks(n).iter().map(|s| view(*s)).collect())
            .unwrap_or_default();
        let mut dependencies = Vec::new();
        if let Some(node) = plan.graph().task_node(ti) {
            for edge in plan.graph().deps_of(node) {
                let targets: Vec<ItemIdx> = match edge.target {
                    crate::plan::Target::Task(v) => vec![plan.tasks()[v as usize]],
                    crate::plan::Target::Container(c) => plan
                        .graph()
                        .container(c)
                        .tasks
                        .clone()
                        .map(|v| plan.tasks()[v as usize])
                        .collect(),
                };
                for d in targets {
                    let item = plan.item(d);
                    let state = self.state.items.get(&item.id);
                    dependencies.push(DependencyView {
                        id: item.id.to_string(),
                        title: item.title.clone(),
                        status: self.status(&item.id).to_string(),
                        summary: state.and_then(|s| s.summary.clone()),
                    });
                }
            }
        }
        let unit_id = &plan.item(sub.unwrap_or(ti)).id;
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
            let log = control::run_dir(self.state_dir.path(), unit_id, last.number)
                .join(crate::runner::spec::LOG);
            Some(PreviousView {
                reason,
                log_tail: prompt::log_tail(&log, 30),
            })
        });
        let problem = self
            .state
            .items
            .get(&plan.item(ti).id)
            .and_then(|s| s.merge_problem.clone())
            .map(|p| match p {
                MergeProblem::Conflicts { files } => ProblemView {
                    files,
                    check: None,
                    reason: None,
                    log_tail: None,
                },
                MergeProblem::Check { name, reason, log } => ProblemView {
                    files: Vec::new(),
                    log_tail: log.as_deref().and_then(|l| prompt::log_tail(l, 60)),
                    check: Some(name),
                    reason: Some(reason),
                },
            });
        PromptContext {
            problem,
            plan: PlanView {
                title: plan.title.clone(),
            },
            task: view(ti),
            subtask: sub.map(view),
            parents,
            subtasks,
            dependencies,
            attempt,
            previous,
            branch: branch.to_owned(),
            target: self.target.clone(),
            worktree: worktree.display().to_string(),
            result_file: result_file.display().to_string(),
        }
    }

    /// Closes an attempt as failed, then retries the item or fails it.
    pub(super) fn fail_attempt(
        &mut self,
        unit: &FullId,
        attempt: u32,
        reason: String,
        retry: bool,
    ) {
        let max = self.config.retry.max_attempts;
        let kind = self.unit_of(unit);
        let entry = control::entry(&self.plan, &mut self.state, unit);
        let Some(open) = entry.open_attempt_mut().filter(|a| a.number == attempt) else {
            return;
        };
        open.outcome = Some(Outcome::Failed {
            reason: reason.clone(),
            retry,
        });
        open.finished = Some(Timestamp::now());
        let counted = entry.counted_attempts();
        self.dirty = true;
        if entry.status != Status::Running {
            return;
        }
        if retry && counted < max {
            let wait = crate::runner::classify::backoff(
                &self.config.retry.backoff,
                counted + 1,
                fastrand::f64(),
            );
            let entry = control::entry(&self.plan, &mut self.state, unit);
            entry.not_before = Some(Timestamp::at(SystemTime::now() + wait));
            entry.reason = Some(reason.clone());
            self.transition(unit, kind, Transition::FailTransient);
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
        let final_reason = if retry {
            format!("{reason} (attempt {attempt} of {max}; no attempts left)")
        } else {
            reason
        };
        control::entry(&self.plan, &mut self.state, unit).reason = Some(final_reason.clone());
        self.transition(unit, kind, Transition::FailPermanent);
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
            self.stepping.remove(&task);
            let task_attempt = self
                .state
                .items
                .get(&task)
                .and_then(|s| s.open_attempt())
                .map(|a| a.number);
            if let Some(n) = task_attempt {
                self.fail_attempt(&task, n, format!("subtask `{unit}` failed"), false);
            }
        }
    }

    /// Closes an attempt as a success and moves the item on.
    pub(super) fn succeed(
        &mut self,
        unit: &FullId,
        attempt: u32,
        commits: Option<u32>,
        log: &[(String, String)],
        duration: Option<Duration>,
    ) {
        let kind = self.unit_of(unit);
        let entry = control::entry(&self.plan, &mut self.state, unit);
        let Some(open) = entry.open_attempt_mut().filter(|a| a.number == attempt) else {
            return;
        };
        open.outcome = Some(Outcome::Succeeded {
            commits: commits.unwrap_or(0),
        });
        open.finished = Some(Timestamp::now());
        entry.reason = None;
        self.dirty = true;
        if entry.status != Status::Running {
            return;
        }
        self.transition(unit, kind, Transition::Succeed);
        let completed = EventKind::TaskCompleted {
            attempt,
            commits,
            log: log.to_vec(),
            duration_ms: duration.map(|d| d.as_millis() as u64),
        };
        self.emit(Some(unit), completed);
        if kind == Unit::Task {
            let tip = self.tips.get(unit).cloned();
            self.enqueue(unit, tip);
            self.free.push_back(unit.clone());
        } else if let Some(task) = self.task_of(unit) {
            self.advance_steps(&task);
        }
    }

    /// Returns the task a subtask belongs to.
    pub(super) fn task_of(&self, unit: &FullId) -> Option<FullId> {
        let idx = self.plan.lookup(unit.as_str())?;
        let task = self.plan.task_of(idx)?;
        Some(self.plan.item(task).id.clone())
    }
}

fn item_view(item: &Item) -> ItemView {
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

/// Runs `post_create` in a worktree just created or recycled for its task,
/// or again in one where it failed last time; a worktree the task keeps
/// from an attempt where it succeeded is left alone.
fn prepare(
    mut stage: hook::Stage,
    provisioned: &workspace::Provisioned,
    marker: &std::path::Path,
) -> Result<(), String> {
    if provisioned.how != workspace::How::Reused {
        let _ = std::fs::remove_file(marker);
    } else if marker.exists() {
        return Ok(());
    }
    let worktree = &provisioned.worktree;
    stage
        .env
        .push(("ORCH_WORKTREE".to_owned(), worktree.display().to_string()));
    stage
        .run(worktree)
        .map_err(|e| crate::text::error_chain(&e))?;
    let note = |e: std::io::Error| format!("cannot record that post_create ran: {e}");
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).map_err(note)?;
    }
    std::fs::write(marker, worktree.display().to_string()).map_err(note)
}
