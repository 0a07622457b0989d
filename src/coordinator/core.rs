//! The coordinator's decision core: the run's live state and every rule
//! about it, with no I/O.
//!
//! ```text
//!   Input ──▶ RunState::handle(input, now) ──▶ Vec<Effect> ──▶ executor
//!   (runner exits, collections, merges,                      (spawns, git,
//!    inbox commands, signals, ticks)                          signals, files)
//! ```
//!
//! [`RunState::handle`] takes one [`Input`] and the time, changes the state
//! through [`lifecycle::next`] only, and returns what must happen as
//! [`Effect`]s: data, carried out by `super::executor`. It never reads a
//! file, runs git, signals a process or looks at a clock, so every rule is
//! unit-tested by feeding it inputs (see the tests at the bottom and in
//! `judge.rs` and `after_merge.rs`). [`Input::Tick`] ends a batch of inputs:
//! it schedules, steps subtasks and starts the next merge.
//!
//! The fields are grouped by concern: [`Env`] (what the run was given,
//! immutable), the persisted [`State`] plus a dirty flag and the items
//! touched since the executor last asked (it records what changed in them
//! alone: `state::changes`), [`InFlight`] (work handed to the executor and
//! not yet back), [`MergeSlot`] (the merge queue's chain of candidates,
//! `train.rs`), and the run's stopping or halting.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{AgentUnit, Config};
use crate::coordinator::collect::{AttemptReport, Collection};
use crate::coordinator::control;
use crate::coordinator::judge::Retryable;
use crate::coordinator::workspace::{FreeWorktree, Provisioned};
use crate::git::GitError;
use crate::lifecycle::{self, Status, Transition, Unit};
use crate::merge_queue::build::{BuildReport, LinkSpec, Onto};
use crate::merge_queue::candidate::Checked;
use crate::merge_queue::review::Verdict as ReviewVerdict;
use crate::merge_queue::{LandLink, Landing, MergeError};
use crate::plan::{FullId, ItemIdx, Kind, Plan};
use crate::runner::folder::{self, RunFolder};
use crate::runner::hook;
use crate::runner::prompt::PromptContext;
use crate::schedule::{self, Limits, Readiness, TaskView};
use crate::state::changes::Touched;
use crate::state::events::EventKind;
use crate::state::inbox;
use crate::state::model::{Outcome, Purpose, Timestamp};
use crate::state::{State, StateDir};

/// How often adopted supervisors and the inbox are checked without a wake-up.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a second Ctrl-C waits for supervisors to report before giving up.
pub const KILL_WAIT: Duration = Duration::from_secs(3);
/// How long merging pauses after it had to wait (a dirty target checkout).
pub const WAIT_PAUSE: Duration = Duration::from_secs(2);

/// The time, as the core sees it: wall clock for what is recorded, the
/// monotonic clock for deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub wall: SystemTime,
    pub mono: Instant,
}

impl Now {
    /// Reads both clocks (the executor's job; tests make their own).
    pub fn real() -> Now {
        Now {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    /// Returns this time moved on by `d`.
    pub fn after(self, d: Duration) -> Now {
        Now {
            wall: self.wall + d,
            mono: self.mono + d,
        }
    }
}

/// What `orch run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Leave finished tasks in `awaiting_merge`.
    pub no_merge: bool,
    pub max_parallel: Option<usize>,
    /// Only start these tasks (phases and milestones mean every task inside).
    pub only: Option<Vec<ItemIdx>>,
    /// Start no agents; only drain the merge queue (`orch merge`).
    pub merge_only: bool,
}

/// What the run was given; never changes during the run.
#[derive(Debug)]
pub struct Env {
    pub plan: Arc<Plan>,
    pub config: Arc<Config>,
    pub repo: PathBuf,
    pub state_dir: StateDir,
    pub target: String,
    pub worktree_root: PathBuf,
    pub options: Options,
    /// Per task node: whether `--only` selects it.
    pub in_scope: Vec<bool>,
    /// What `--only` names, by id: kept so that scope survives a new plan.
    pub only: Option<Vec<FullId>>,
    pub limits: Limits,
    /// The digest of the plan file (`run.started`), when known.
    pub plan_digest: Option<String>,
    /// How agents and hooks are confined; unconfined unless the driver says.
    pub sandbox: crate::runner::confine::Setup,
}

impl Env {
    /// Builds the environment of a run.
    pub fn new(
        plan: Arc<Plan>,
        config: Arc<Config>,
        repo: PathBuf,
        state_dir: StateDir,
        target: String,
        options: Options,
    ) -> Env {
        let only = options
            .only
            .as_ref()
            .map(|o| o.iter().map(|i| plan.item(*i).id.clone()).collect());
        let in_scope = scope(&plan, options.only.as_deref());
        let worktree_root =
            crate::coordinator::workspace::worktree_root(&repo, &config.git.worktree_root);
        let limits = config.limits(options.max_parallel);
        Env {
            plan,
            config,
            repo,
            state_dir,
            target,
            worktree_root,
            options,
            in_scope,
            only,
            limits,
            plan_digest: None,
            sandbox: crate::runner::confine::Setup::unconfined(),
        }
    }

    /// Returns the branch of a task.
    pub fn branch(&self, task: &FullId) -> String {
        format!("{}{}", self.config.git.branch_prefix, task)
    }

    /// Returns whether merging is on for this run.
    pub fn merges(&self) -> bool {
        !self.options.no_merge
    }
}

/// Something that happened, for the core to decide on.
#[derive(Debug)]
pub enum Input {
    /// The end of a batch of inputs, or a timer: schedule, step subtasks,
    /// start the next merge, enforce the kill deadline.
    Tick,
    /// SIGINT or SIGTERM (a second one escalates).
    Signal,
    /// A task's worktree is ready (or could not be made).
    Provisioned {
        task: FullId,
        attempt: u32,
        /// The finished task whose free worktree was offered, if any.
        free_owner: Option<FullId>,
        result: Result<Provisioned, GitError>,
        /// How `post_create` went, when the worktree was provisioned.
        prepared: Result<(), PrepareError>,
    },
    /// An attempt's supervisor could not be started.
    LaunchFailed {
        unit: FullId,
        attempt: u32,
        error: LaunchError,
    },
    /// An attempt's supervisor is gone (exited, or seen gone while adopted).
    Exited { unit: FullId, attempt: u32 },
    /// A cluster executor says where an attempt runs (its job, its node).
    Placed {
        unit: FullId,
        attempt: u32,
        job: crate::state::model::AttemptJob,
    },
    /// An attempt was collected.
    Collected {
        unit: FullId,
        attempt: u32,
        report: Box<AttemptReport>,
    },
    /// A build of links of the merge queue's chain ended.
    Built { epoch: u64, report: BuildReport },
    /// The checks of a candidate ended.
    Checked {
        slot: u32,
        commit: String,
        checked: Checked,
    },
    /// A review command ended.
    Reviewed {
        task: FullId,
        review: String,
        verdict: Result<ReviewVerdict, MergeError>,
    },
    /// The landing of a candidate ended.
    Landed(Box<Landing>),
    /// A task waiting on the target's checkout was asked about again:
    /// `waiting` says why it still cannot land, `None` when it can.
    Probed {
        task: FullId,
        waiting: Option<String>,
    },
    /// The radar read the branches it was asked about: each branch's tip
    /// and changed paths, or `None` when the branch is gone.
    Radar {
        seen: Vec<(FullId, crate::merge_queue::radar::Reading)>,
    },
    /// A landing's `post_merge` hooks ended, with each task's failure.
    PostMerged {
        failures: Vec<(FullId, hook::HookError)>,
    },
    /// A person's command from the inbox.
    Command {
        received: inbox::Received,
        command: inbox::Request,
    },
    /// The plan file was saved with a valid plan (`replan.rs`).
    PlanChanged(Box<super::replan::NewPlan>),
    /// The plan file was saved with errors, each `file:line:col: message`.
    PlanRefused { errors: Vec<String> },
}

/// Why `post_create` did not prepare a worktree.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Hook(#[from] hook::HookError),
    #[error("cannot record that post_create ran in `{}`", path.display())]
    Marker {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why an attempt's supervisor did not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Prompt(#[from] crate::runner::prompt::PromptError),
    #[error("cannot start the supervisor")]
    Spawn(#[source] std::io::Error),
}

/// Something the executor must do.
#[derive(Debug)]
pub enum Effect {
    /// Append an event to `events.jsonl` and show it.
    Emit { id: Option<FullId>, kind: EventKind },
    /// The state changed: write it (the executor batches writes).
    Persist,
    /// Write the state now, before anything that follows (a landed merge
    /// reaches disk before its `post_merge` hooks run, and before the next
    /// merge overwrites the journal).
    Flush,
    /// Run a landed merge's `post_merge` hooks.
    PostMerge(Box<PostMergeRequest>),
    /// Give a task its branch and worktree, then run `post_create`.
    Provision(Box<ProvisionRequest>),
    /// Prepare a run folder and start the supervisor of one attempt.
    Launch(Box<LaunchRequest>),
    /// Watch an adopted attempt's run folder until its supervisor is gone.
    Watch {
        unit: FullId,
        attempt: u32,
        folder: RunFolder,
    },
    /// Collect an attempt whose supervisor is gone.
    Collect {
        unit: FullId,
        attempt: u32,
        collection: Box<Collection>,
    },
    /// Stop an attempt's processes.
    Stop {
        folder: RunFolder,
        how: folder::Stop,
    },
    /// Build links of the merge queue's chain.
    Build {
        epoch: u64,
        onto: Onto,
        links: Vec<LinkSpec>,
    },
    /// Check a candidate in check worktree `slot`.
    Check(Box<CheckRequest>),
    /// Stop the check running in `slot`.
    CancelCheck { slot: u32 },
    /// Run a review command on a task whose checks passed.
    Review(Box<ReviewRequest>),
    /// Land a checked candidate.
    Land(Box<LandRequest>),
    /// Ask whether a task waiting on the target's checkout can land now.
    Probe(Box<ProbeRequest>),
    /// Read the branches of active tasks whose tip may have moved (the radar).
    Radar(Vec<RadarRequest>),
    /// Ask everything of the merge queue in flight to stop (checks,
    /// reviews, a landing that has not moved the target).
    StopMerge,
    /// Ask the landing under way to leave the target alone if it has not
    /// moved it yet.
    StopLanding,
    /// Stop a check left running by an earlier coordinator.
    StopCheck(RunFolder),
    /// Answer an inbox command.
    Reply {
        received: inbox::Received,
        reply: inbox::Reply,
    },
}

/// What provisioning a task needs.
#[derive(Debug)]
pub struct ProvisionRequest {
    pub task: FullId,
    pub attempt: u32,
    pub request: crate::coordinator::workspace::Request,
    pub free_owner: Option<FullId>,
    /// `post_create`, when it has commands.
    pub post_create: Option<hook::Stage>,
    /// The file saying `post_create` ran in the worktree the task has.
    pub marker: PathBuf,
    /// The run folder of the attempt launched once the worktree is ready,
    /// when that is the task's own (not a subtask's): its supervisor can
    /// start loading meanwhile (`crate::runner::spawn::Waiting`).
    pub run_dir: Option<PathBuf>,
}

/// What starting one attempt needs.
#[derive(Debug)]
pub struct LaunchRequest {
    pub task: FullId,
    pub unit: FullId,
    pub attempt: u32,
    pub folder: RunFolder,
    /// The agent's argv, `{prompt_file}` and `{last_message_file}` not yet replaced.
    pub command: Vec<String>,
    /// The session the attempt continues (`command` is the agent's
    /// `resume_command`, with it in place of `{session_id}`).
    pub session: Option<String>,
    /// Where the agent writes its report and final message.
    pub agent_files: crate::runner::spawn::AgentFiles,
    pub prompt: PromptRequest,
    pub prompt_on_stdin: bool,
    pub cwd: PathBuf,
    /// The task's executor, with its resources and (`workspace = "git"`)
    /// how the job reaches the branch.
    pub placement: crate::runner::executor::Placement,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub grace: Duration,
    pub log_limit: u64,
    /// What the agent may write; `None`: it runs unconfined.
    pub sandbox: Option<crate::runner::confine::Grant>,
    /// The worktree is known to be clean as the attempt starts: the
    /// supervisor may watch it if it tracks at least this many files, and
    /// collection then ask git about what the agent changed alone
    /// (`crate::runner::watch`).
    pub watch: Option<u64>,
}

/// A prompt to render: the executor fills in the log tails it names, then
/// renders the template (an override in the state dir wins).
#[derive(Debug)]
pub struct PromptRequest {
    pub template: (&'static str, &'static str),
    pub templates: PathBuf,
    pub context: PromptContext,
    /// The previous attempt's log, for `previous.log_tail`.
    pub previous_log: Option<PathBuf>,
    /// The red check's log, for `problem.log_tail`.
    pub problem_log: Option<PathBuf>,
}

/// What running `post_merge` needs from the core; the executor adds the
/// commands from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostMergeRequest {
    /// The tasks that landed, each with its commit, in order.
    pub landed: Vec<(FullId, String)>,
    /// Where the hooks run: the target's checkout, or the merge worktree.
    pub dir: PathBuf,
}

/// What checking a candidate needs from the core; the executor adds the
/// checks and the rest from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    pub slot: u32,
    pub commit: String,
    /// Every task the candidate merges onto the target, in order; the last
    /// one's folder holds the logs.
    pub tasks: Vec<FullId>,
}

/// What a review command needs from the core.
#[derive(Debug, Clone)]
pub struct ReviewRequest {
    pub task: FullId,
    /// The task as the review prompt shows it.
    pub view: crate::runner::prompt::ItemView,
    /// The name of the `[[policy.review]]` entry.
    pub review: String,
    pub worktree: PathBuf,
    pub branch: String,
    /// The task's commit in the chain, and the commit before it.
    pub commit: String,
    pub prev: String,
}

/// What landing a candidate needs from the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandRequest {
    /// The target head the chain was built on.
    pub onto: String,
    pub candidate: String,
    pub links: Vec<LandLink>,
}

/// What asking about a task waiting on the target's checkout needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    pub task: FullId,
    pub title: String,
    pub branch: String,
    pub base: Option<String>,
}

/// A branch the radar reads, with the tip it had last time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadarRequest {
    pub task: FullId,
    pub branch: String,
    pub known: Option<String>,
}

/// An attempt whose supervisor is running (or whose report is awaited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub task: FullId,
    pub attempt: u32,
    pub folder: RunFolder,
}

/// Work handed to the executor and not yet back.
#[derive(Debug, Default)]
pub struct InFlight {
    pub live: BTreeMap<FullId, Live>,
    pub provisioning: BTreeSet<FullId>,
    /// Units whose collection is under way.
    pub finishing: BTreeSet<FullId>,
    /// Tasks running one agent per subtask.
    pub stepping: BTreeSet<FullId>,
    /// Tasks whose worktree collection found gone (stepping re-provisions).
    pub worktree_lost: BTreeSet<FullId>,
    /// Tasks whose worktree was just made or recycled clean, with no
    /// `post_create` and no merge for the agent: the first attempt launched
    /// there may be watched instead of scanned (`crate::runner::watch`).
    pub clean: BTreeSet<FullId>,
    /// Finished tasks whose worktrees may be recycled, oldest first.
    pub free: VecDeque<FullId>,
    /// The last known tip of each task branch.
    pub tips: BTreeMap<FullId, String>,
    /// Tasks whose branch kept its place at provisioning while the target
    /// moved on: how many target commits it lacks (told to the agent).
    pub behind: BTreeMap<FullId, u32>,
    /// What the scheduler needs of each task, kept in step with the state
    /// by [`RunState::sync`] (rebuilding it on every pass would cost a map
    /// lookup per task per pass).
    pub views: Vec<TaskView>,
    /// Limits each agent hit in a row (the pause after one that names no
    /// reset time grows with it); cleared by an attempt that ends otherwise.
    pub limit_hits: BTreeMap<String, u32>,
}

/// The merge queue: its chain of candidates and what else it waits on.
#[derive(Debug, Default)]
pub struct MergeSlot {
    /// The chain of candidates (`train.rs`).
    pub train: super::train::Train,
    /// Tasks whose change a file in the target's checkout is in the way of:
    /// out of the chain, asked about again after [`WAIT_PAUSE`].
    pub parked: BTreeMap<FullId, Parked>,
    /// Tasks that merge cleanly onto the target but conflict with tasks
    /// ahead of them in the chain, not landed yet: out of the chain, each
    /// with those tasks; it rejoins once none of them is in the chain.
    pub held: BTreeMap<FullId, Vec<FullId>>,
    /// Merging waits until then (a move of the target's checkout cut short
    /// cannot be finished yet).
    pub pause_until: Option<Instant>,
    /// The last reason merging waited, so that it is reported once.
    pub last_wait: Option<String>,
    /// The target's newest commit orch has seen.
    pub target_seen: Option<String>,
    /// The tasks whose `post_merge` hooks run; nothing lands meanwhile.
    pub post_merge: Vec<FullId>,
    /// People's cancels of tasks being landed: answered once the landing
    /// has ended (cancelled) or landed them first (refused).
    pub cancels: Vec<(FullId, inbox::Received)>,
    /// When the radar reads the branches again (`None`: at the next tick).
    pub radar_due: Option<Instant>,
    /// A read of the radar is under way.
    pub radar_busy: bool,
}

/// A task waiting for the target's checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// When it is asked about again.
    pub until: Instant,
    /// A probe is under way.
    pub probing: bool,
}

/// How the run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    Graceful,
    /// A second signal: groups were killed; attempts still unreported at
    /// `until` are recorded as interrupted.
    Kill {
        until: Instant,
    },
}

/// Why the run cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// The target branch was deleted: nothing more starts or merges.
    TargetGone { last: Option<String> },
    /// The target no longer contains `lost`, the head orch last landed:
    /// it was moved under orch. `lost` is kept at `backup`.
    TargetRewound { lost: String, backup: String },
}

/// The run's live state and its rules.
#[derive(Debug)]
pub struct RunState {
    pub(super) env: Env,
    pub(super) state: State,
    /// The state changed since the last [`Effect::Persist`].
    dirty: bool,
    /// The items that may have changed since [`RunState::take_touched`]
    /// (the executor records their changes).
    touched: Touched,
    pub(super) flight: InFlight,
    pub(super) merge: MergeSlot,
    pub(super) stopping: Option<Stopping>,
    pub(super) halt: Option<Halt>,
    /// Attempts started by this run.
    pub(super) attempts_started: u32,
    /// Backoff jitter; seeded, so that tests are repeatable.
    pub(super) rng: fastrand::Rng,
    out: Vec<Effect>,
}

impl RunState {
    /// Returns the core of a run over `state`; `target_tip` is the
    /// target's head at start.
    pub fn new(
        env: Env,
        mut state: State,
        target_tip: Option<String>,
        rng: fastrand::Rng,
    ) -> RunState {
        state.target = Some(env.target.clone());
        let mut core = RunState {
            env,
            state,
            dirty: true,
            touched: Touched {
                all: true,
                ..Touched::default()
            },
            flight: InFlight::default(),
            merge: MergeSlot {
                target_seen: target_tip,
                ..MergeSlot::default()
            },
            stopping: None,
            halt: None,
            attempts_started: 0,
            rng,
            out: Vec::new(),
        };
        core.flight.views = core.task_views();
        core
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn halt(&self) -> Option<&Halt> {
        self.halt.as_ref()
    }

    pub fn stopping(&self) -> Option<Stopping> {
        self.stopping
    }

    pub fn attempts_started(&self) -> u32 {
        self.attempts_started
    }

    /// Returns the items that may have changed since the last call, and
    /// forgets them.
    pub fn take_touched(&mut self) -> Touched {
        std::mem::take(&mut self.touched)
    }

    /// Records the run's start in the state (its pid and time).
    pub fn set_run_record(&mut self, record: crate::state::model::RunRecord) {
        self.state.run = Some(record);
        self.dirty = true;
    }

    /// Takes one input and returns what must happen.
    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Effect> {
        match input {
            Input::Tick => self.tick(now),
            Input::Signal => self.on_signal(now),
            Input::Provisioned {
                task,
                attempt,
                free_owner,
                result,
                prepared,
            } => self.on_provisioned(task, attempt, free_owner, result, prepared, now),
            Input::LaunchFailed {
                unit,
                attempt,
                error,
            } => {
                self.flight.live.remove(&unit);
                let retry = match error {
                    LaunchError::Spawn(_) => Retryable::Yes,
                    LaunchError::Prompt(_) => Retryable::No,
                };
                let reason = crate::text::error_chain(&error);
                self.fail_attempt(&unit, attempt, reason, retry, now);
            }
            Input::Exited { unit, attempt } => self.on_exited(unit, attempt),
            Input::Placed { unit, attempt, job } => self.on_placed(&unit, attempt, job),
            Input::Collected {
                unit,
                attempt,
                report,
            } => self.on_collected(unit, attempt, *report, now),
            Input::Built { epoch, report } => self.on_built(epoch, report, now),
            Input::Checked {
                slot,
                commit,
                checked,
            } => self.on_checked(slot, &commit, checked),
            Input::Reviewed {
                task,
                review,
                verdict,
            } => self.on_reviewed(task, review, verdict, now),
            Input::Landed(landing) => self.on_landed(*landing, now),
            Input::Probed { task, waiting } => self.on_probed(task, waiting, now),
            Input::Radar { seen } => self.on_radar(seen, now),
            Input::PostMerged { failures } => self.on_post_merged(failures),
            Input::Command { received, command } => self.on_command(received, command, now),
            Input::PlanChanged(new) => self.on_plan_changed(*new, now),
            Input::PlanRefused { errors } => self.on_plan_refused(errors),
        }
        self.drain()
    }

    /// Returns the effects gathered so far (for `replan.rs`).
    pub(super) fn drain_effects(&mut self) -> Vec<Effect> {
        self.drain()
    }

    /// Returns the effects gathered so far from index `from` on.
    pub(super) fn pending_effects(&self, from: usize) -> &[Effect] {
        self.out.get(from..).unwrap_or_default()
    }

    /// Returns the effects gathered so far, with one [`Effect::Persist`]
    /// when the state changed.
    fn drain(&mut self) -> Vec<Effect> {
        if std::mem::take(&mut self.dirty) {
            self.out.push(Effect::Persist);
        }
        std::mem::take(&mut self.out)
    }

    /// Returns the effects of starting the run: its event, and what the
    /// state must catch up on (`recovery.rs`).
    pub fn start(&mut self, facts: super::recovery::Facts, now: Now) -> Vec<Effect> {
        let tasks = self.env.in_scope.iter().filter(|s| **s).count();
        self.emit(
            None,
            EventKind::RunStarted {
                pid: facts.pid,
                target: self.env.target.clone(),
                tasks,
                no_merge: self.env.options.no_merge,
                plan_digest: self.env.plan_digest.clone(),
                sandbox: Some(self.env.sandbox.confinement),
            },
        );
        self.touched.all = true;
        let before = self.out.len();
        self.recover_landed(&facts, now);
        self.recover(&facts, now);
        self.recover_merges(&facts);
        self.report_recovery(before);
        self.flight.views = self.task_views();
        self.drain()
    }

    fn tick(&mut self, now: Now) {
        if let Some(Stopping::Kill { until }) = self.stopping
            && now.mono >= until
        {
            let left: Vec<(FullId, u32)> = self
                .flight
                .live
                .iter()
                .map(|(u, l)| (u.clone(), l.attempt))
                .collect();
            for (unit, attempt) in left {
                self.flight.live.remove(&unit);
                self.interrupt(&unit, attempt, "killed by a second Ctrl-C", now);
            }
        }
        self.expire_pauses(now);
        if self.stopping.is_none() && self.halt.is_none() && !self.env.options.merge_only {
            self.schedule_and_launch(now);
        }
        if self.stopping.is_none() && self.halt.is_none() && !self.env.options.merge_only {
            self.maybe_scan(now);
        }
        self.maybe_merge(now);
    }

    /// Records an event.
    pub(super) fn emit(&mut self, id: Option<&FullId>, kind: EventKind) {
        self.out.push(Effect::Emit {
            id: id.cloned(),
            kind,
        });
    }

    pub(super) fn effect(&mut self, effect: Effect) {
        self.out.push(effect);
    }

    /// Marks the state's top-level fields as changed.
    pub(super) fn touch(&mut self) {
        self.dirty = true;
    }

    /// Marks an item's state as changed.
    pub(super) fn touch_item(&mut self, id: &FullId) {
        self.dirty = true;
        self.touched.ids.insert(id.clone());
    }

    /// Marks every item's state as possibly changed (a person's command,
    /// a plan change: rare, and they may reach many items).
    pub(super) fn touch_all(&mut self) {
        self.dirty = true;
        self.touched.all = true;
    }

    /// Returns the state entry of an item, creating it from the plan if needed.
    pub(super) fn entry(&mut self, id: &FullId) -> &mut crate::state::ItemState {
        self.touch_item(id);
        control::entry(&self.env.plan, &mut self.state, id)
    }

    /// Moves an item through the lifecycle table. An illegal transition is
    /// a bug: it panics in debug builds and is logged in release builds.
    pub(super) fn transition(&mut self, id: &FullId, event: Transition) -> Status {
        let unit = self.unit_of(id);
        self.touched.ids.insert(id.clone());
        let entry = control::entry(&self.env.plan, &mut self.state, id);
        let status = match lifecycle::next(unit, entry.status, event) {
            Ok(to) => {
                entry.status = to;
                self.dirty = true;
                to
            }
            Err(illegal) => {
                debug_assert!(false, "{id}: {illegal}");
                tracing::error!(id = %id, error = %illegal, "illegal transition");
                entry.status
            }
        };
        self.sync(id);
        status
    }

    /// Brings the scheduler's view of a task in line with its state entry.
    pub(super) fn sync(&mut self, id: &FullId) {
        let Some(node) = self
            .env
            .plan
            .lookup(id.as_str())
            .and_then(|i| self.env.plan.graph().task_node(i))
        else {
            return;
        };
        let (Some(view), Some(s)) = (
            self.flight.views.get_mut(node as usize),
            self.state.items.get(id),
        ) else {
            return;
        };
        *view = TaskView {
            status: s.status,
            ready_since: s.ready_since.map(|t| t.0),
            not_before: s.not_before.map(|t| t.0),
            overlaps: view.overlaps,
        };
    }

    pub(super) fn status(&self, id: &FullId) -> Status {
        control::status_of(&self.env.plan, &self.state, id)
    }

    pub(super) fn unit_of(&self, id: &FullId) -> Unit {
        match self
            .env
            .plan
            .lookup(id.as_str())
            .map(|i| self.env.plan.item(i).kind)
        {
            Some(Kind::Subtask) => Unit::Subtask,
            _ => Unit::Task,
        }
    }

    /// Returns whether a task runs one agent per subtask.
    pub(super) fn steps(&self, task: ItemIdx) -> bool {
        self.env.config.agent.unit == AgentUnit::Subtask
            && !self.env.plan.item(task).children.is_empty()
    }

    /// Returns whether a provisioned task's attempt steps through its
    /// subtasks (each its own attempt), not runs the task's own: a task
    /// handed back (`purpose`) runs its own.
    pub(super) fn steps_through(&self, task: ItemIdx, purpose: Option<Purpose>) -> bool {
        self.steps(task) && purpose.is_none()
    }

    /// Returns the task a subtask belongs to.
    pub(super) fn task_of(&self, unit: &FullId) -> Option<FullId> {
        let idx = self.env.plan.lookup(unit.as_str())?;
        let task = self.env.plan.task_of(idx)?;
        Some(self.env.plan.item(task).id.clone())
    }

    /// Returns an item's title.
    pub(super) fn title_of(&self, unit: &FullId) -> String {
        self.env
            .plan
            .lookup(unit.as_str())
            .map(|i| self.env.plan.item(i).title.clone())
            .unwrap_or_default()
    }

    /// Returns the number of the open attempt of an item.
    pub(super) fn open_attempt(&self, id: &FullId) -> Option<u32> {
        self.state
            .items
            .get(id)
            .and_then(|s| s.open_attempt())
            .map(|a| a.number)
    }

    /// Returns why the open attempt of an item runs, when not for its work
    /// alone (a conflict, a red check, a review handed back).
    pub(super) fn open_purpose(&self, id: &FullId) -> Option<Purpose> {
        self.state
            .items
            .get(id)
            .and_then(|s| s.open_attempt())
            .and_then(|a| a.purpose)
    }

    fn task_views(&self) -> Vec<TaskView> {
        crate::state::task_views(&self.env.plan, Some(&self.state))
    }

    /// Returns whether a task has an agent, a provisioning or a collection under way.
    pub(super) fn busy(&self, task: &FullId) -> bool {
        self.flight.provisioning.contains(task)
            || self.flight.live.values().any(|l| &l.task == task)
            || self
                .flight
                .finishing
                .iter()
                .any(|u| u == task || task.is_ancestor_of(u))
    }

    /// Returns the scheduler's answer at `now`, holding back the tasks
    /// whose agent is paused.
    fn schedule(&self, now: Now) -> schedule::Schedule {
        schedule::schedule_holding(
            &self.env.plan,
            &self.flight.views,
            now.wall,
            &self.env.limits,
            &|t| self.pause_hold(t, now),
        )
    }

    fn schedule_and_launch(&mut self, now: Now) {
        if self.env.config.scheduling.avoid_overlap {
            self.hold_overlapping();
        }
        let plan = Arc::clone(&self.env.plan);
        let s = self.schedule(now);
        for (t, readiness) in s.readiness.iter().enumerate() {
            if !self.env.in_scope[t] {
                continue;
            }
            let id = &plan.item(plan.tasks()[t]).id;
            match readiness {
                Readiness::Ready if self.flight.views[t].status == Status::Pending => {
                    self.entry(id).ready_since = Some(Timestamp::at(now.wall));
                    self.transition(id, Transition::Promote);
                    self.emit(Some(id), EventKind::TaskReady);
                }
                Readiness::Blocked(blocker) => {
                    let reason = self.blocked_reason(*blocker);
                    let by = match blocker {
                        schedule::Blocker::Dependency(by) | schedule::Blocker::Barrier(by) => {
                            plan.item(*by).id.clone()
                        }
                    };
                    self.transition(id, Transition::Block);
                    self.entry(id).reason = Some(reason.clone());
                    self.emit(Some(id), EventKind::TaskBlocked { by, reason });
                }
                _ => {}
            }
        }
        for t in s.start {
            let ti = plan.tasks()[t as usize];
            let id = plan.item(ti).id.clone();
            if self.env.in_scope[t as usize] && !self.flight.provisioning.contains(&id) {
                self.start_task(ti, now);
            }
        }
        let stepping: Vec<FullId> = self.flight.stepping.iter().cloned().collect();
        for task in stepping {
            if !self.busy(&task) {
                self.advance_steps(&task, now);
            }
        }
    }

    /// Says why a task is blocked, naming what blocks it and its status (a
    /// phase's or milestone's derived, as `orch status` shows it, and the
    /// task inside that blocks when the container itself is not finished).
    fn blocked_reason(&self, blocker: schedule::Blocker) -> String {
        let (by, how) = match blocker {
            schedule::Blocker::Dependency(by) => (by, "required dependency"),
            schedule::Blocker::Barrier(by) => (by, "phase barrier: earlier task"),
        };
        let plan = &self.env.plan;
        let by_id = &plan.item(by).id;
        let status = self.item_status(by);
        if plan.item(by).kind.is_container() && !status.is_dead() {
            let dead = plan
                .item(by)
                .descendants(by)
                .map(|i| plan.item(ItemIdx(i as u32)))
                .filter(|item| item.kind == Kind::Task)
                .map(|item| (&item.id, self.status(&item.id)))
                .find(|(_, s)| s.is_dead());
            if let Some((task, task_status)) = dead {
                return format!(
                    "{how} `{by_id}` cannot be met: its task `{task}` is {task_status}"
                );
            }
        }
        format!("{how} `{by_id}` is {status}")
    }

    /// Returns an item's status; a phase's or milestone's is derived from
    /// its children (at most three levels down).
    fn item_status(&self, idx: ItemIdx) -> Status {
        let item = self.env.plan.item(idx);
        if item.kind.is_container() {
            lifecycle::derive(item.children.iter().map(|c| self.item_status(*c)))
        } else {
            self.status(&item.id)
        }
    }

    /// Applies a person's command from the inbox.
    fn on_command(&mut self, received: inbox::Received, command: inbox::Request, now: Now) {
        let Some((action, id)) = command.order.about_item() else {
            let reply = self.on_pause_order(&command.order, now);
            self.effect(Effect::Reply { received, reply });
            return;
        };
        let id = id.clone();
        // A cancel of a task being landed waits for how the landing ends
        // (the file stays in the inbox until answered: seen again, it is the
        // same command); one of a task elsewhere in the queue takes it out.
        let received = if action == inbox::Action::Cancel && self.status(&id) == Status::Merging {
            match self.cancel_in_queue(received, &id) {
                Some(received) => received,
                None => return,
            }
        } else {
            received
        };
        let result = control::apply_with(
            &self.env.plan,
            &mut self.state,
            action,
            id.as_str(),
            command.reason.as_deref(),
            Timestamp::at(now.wall),
        );
        let reply = match result {
            Ok(applied) => {
                self.touch_all();
                self.flight.views = self.task_views();
                for (id, kind) in applied.events {
                    if matches!(
                        kind,
                        EventKind::TaskRetried { .. } | EventKind::TaskResolved { .. }
                    ) {
                        self.flight.stepping.remove(&id);
                    }
                    self.emit(Some(&id), kind);
                }
                for stop in applied.stop {
                    self.stop_attempt(&stop.unit, folder::Stop::Ask);
                }
                inbox::Reply::ok(format!("{} `{id}`", action.past()))
            }
            Err(e) => inbox::Reply::refused(e.to_string()),
        };
        self.effect(Effect::Reply { received, reply });
    }

    /// Asks an attempt's processes to stop.
    pub(super) fn stop_attempt(&mut self, unit: &FullId, how: folder::Stop) {
        if let Some(live) = self.flight.live.get(unit) {
            let folder = live.folder.clone();
            self.effect(Effect::Stop { folder, how });
        }
    }

    fn on_signal(&mut self, now: Now) {
        let units: Vec<FullId> = self.flight.live.keys().cloned().collect();
        match self.stopping {
            None => {
                self.stopping = Some(Stopping::Graceful);
                self.emit(
                    None,
                    EventKind::RunStopping {
                        agents: units.len(),
                    },
                );
                for unit in &units {
                    self.stop_attempt(unit, folder::Stop::Ask);
                }
            }
            Some(_) => {
                self.stopping = Some(Stopping::Kill {
                    until: now.mono + KILL_WAIT,
                });
                for unit in &units {
                    self.stop_attempt(unit, folder::Stop::Kill);
                }
            }
        }
        if !self.merge.train.idle() {
            self.effect(Effect::StopMerge);
        }
    }

    /// Records an attempt as interrupted: it does not count, and the item is retried.
    pub(super) fn interrupt(&mut self, unit: &FullId, attempt: u32, reason: &str, now: Now) {
        let entry = self.entry(unit);
        let Some(open) = entry.open_attempt_mut().filter(|a| a.number == attempt) else {
            return;
        };
        open.outcome = Some(Outcome::Interrupted {
            reason: reason.to_owned(),
        });
        open.finished = Some(Timestamp::at(now.wall));
        entry.not_before = None;
        if entry.status == Status::Running {
            self.transition(unit, Transition::Interrupt);
        }
        self.emit(
            Some(unit),
            EventKind::TaskInterrupted {
                attempt,
                reason: reason.to_owned(),
                limited: false,
            },
        );
    }

    /// Returns whether the run is over: nothing in flight and nothing more
    /// can start or merge (or, when stopping or halted, nothing in flight).
    pub fn done(&self, now: Now) -> bool {
        let quiet = self.flight.live.is_empty()
            && self.flight.provisioning.is_empty()
            && self.flight.finishing.is_empty()
            && !self.queue_busy();
        if self.stopping.is_some() || self.halt.is_some() {
            return quiet;
        }
        if !quiet {
            return false;
        }
        let views = &self.flight.views;
        let merging = self.env.merges() && self.queue_has_work();
        if self.env.options.merge_only {
            return !merging;
        }
        let s = self.schedule(now);
        let in_scope = &self.env.in_scope;
        let startable = s.start.iter().any(|t| in_scope[*t as usize]);
        let paused = s
            .held
            .iter()
            .any(|(t, why)| in_scope[*t as usize] && matches!(why, schedule::Hold::Paused { .. }));
        let waiting_retry = views.iter().enumerate().any(|(t, v)| {
            in_scope[t]
                && v.status == Status::Retrying
                && v.not_before.is_some_and(|at| at > now.wall)
        });
        let promotable = s.readiness.iter().enumerate().any(|(t, r)| {
            in_scope[t]
                && matches!(r, Readiness::Blocked(_))
                && matches!(views[t].status, Status::Pending | Status::Ready)
        });
        !(startable
            || paused
            || waiting_retry
            || promotable
            || merging
            || !self.flight.stepping.is_empty())
    }

    /// Returns when the core must be ticked even if nothing happens.
    pub fn next_wake(&self, now: Now) -> Instant {
        let mut wake = now.mono + POLL_INTERVAL;
        let retries = self
            .flight
            .views
            .iter()
            .filter(|v| v.status == Status::Retrying)
            .filter_map(|v| v.not_before);
        let steps = self
            .flight
            .stepping
            .iter()
            .filter_map(|task| self.env.plan.lookup(task.as_str()))
            .flat_map(|task| self.env.plan.item(task).children.iter())
            .filter_map(|sub| self.state.items.get(&self.env.plan.item(*sub).id))
            .filter(|s| s.status == Status::Retrying)
            .filter_map(|s| s.not_before.map(|t| t.0));
        if let Some(at) = retries.chain(steps).chain(self.next_pause_end(now)).min() {
            wake = wake.min(now.mono + at.duration_since(now.wall).unwrap_or_default());
        }
        if let Some(Stopping::Kill { until }) = self.stopping {
            wake = wake.min(until);
        }
        if let Some(pause) = self.merge.pause_until {
            wake = wake.min(pause.max(now.mono));
        }
        for parked in self.merge.parked.values().filter(|p| !p.probing) {
            wake = wake.min(parked.until.max(now.mono));
        }
        wake
    }

    /// Returns the tasks in scope by status.
    pub fn counts(&self) -> BTreeMap<Status, usize> {
        let plan = &self.env.plan;
        let mut counts: BTreeMap<Status, usize> = BTreeMap::new();
        for (t, task) in plan.tasks().iter().enumerate() {
            if self.env.in_scope[t] {
                *counts.entry(self.status(&plan.item(*task).id)).or_default() += 1;
            }
        }
        counts
    }

    /// Marks the run's record finished.
    pub fn finish(&mut self, now: Now) {
        if let Some(run) = self.state.run.as_mut() {
            run.finished = Some(Timestamp::at(now.wall));
        }
        self.dirty = true;
    }
}

/// Marks the tasks `--only` selects (all when unset).
pub(super) fn scope(plan: &Plan, only: Option<&[ItemIdx]>) -> Vec<bool> {
    let Some(only) = only else {
        return vec![true; plan.tasks().len()];
    };
    plan.tasks()
        .iter()
        .map(|t| {
            only.iter().any(|o| {
                *o == *t || {
                    let range = plan.item(*o).descendants(*o);
                    range.contains(&t.index())
                }
            })
        })
        .collect()
}

/// Takes a free worktree to recycle from the front of the list, if one is usable.
pub(super) fn claim_free(core: &mut RunState) -> Option<(FullId, FreeWorktree)> {
    while let Some(owner) = core.flight.free.pop_front() {
        let Some(s) = core.state.items.get(&owner) else {
            continue;
        };
        let usable =
            matches!(s.status, Status::AwaitingMerge | Status::Merged) && !core.busy(&owner);
        if let (true, Some(path)) = (usable, s.worktree.clone()) {
            // A merged task's worktree was detached by the merge's cleanup.
            let branch = if s.status == Status::Merged {
                None
            } else {
                s.branch.clone()
            };
            return Some((
                owner,
                FreeWorktree {
                    path,
                    branch,
                    clean_since: None,
                },
            ));
        }
    }
    None
}
