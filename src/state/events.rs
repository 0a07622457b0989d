//! `events.jsonl`: the append-only log of everything that happened, and the
//! schema of its lines.
//!
//! One JSON object a line: `{"seq":17,"ts":"…","event":"task.merged","id":"P1.M1.T1",…}`:
//! `seq`, `ts`, `event`, `id` (absent for `run.*` events), then the event's
//! own fields. [`EventKind`] is the schema: one variant per event name, its
//! fields in the order they are written. `docs/state.md` (section
//! "`events.jsonl`") documents the same shapes, and a test parses its
//! examples.
//!
//! Reading is lenient, so that logs written by other versions keep working:
//! fields a reader does not know are ignored, and a line whose event it does
//! not know, or that does not parse, is skipped.
//!
//! Each line goes out in one `write` on a file opened for appending, so a
//! crash leaves at most one incomplete last line; readers skip it, and the
//! next writer starts on a fresh line. `seq` continues from the last
//! complete line.
//!
//! How events read to a person is [`crate::narrate`]'s business.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::git::merge::MergeStrategy;
use crate::lifecycle::Status;
use crate::plan::FullId;
use crate::state::model::{PauseCause, Purpose, Timestamp, Usage};

/// The log's file name inside the state dir.
pub const FILE_NAME: &str = "events.jsonl";

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "Line")]
pub struct Event {
    /// 1, 2, ...: unique and increasing across every writer of the file.
    pub seq: u64,
    pub ts: Timestamp,
    /// The task or subtask; `None` for `run.*` events.
    pub id: Option<FullId>,
    pub kind: EventKind,
}

/// What happened: the event's name (DESIGN §3, plus the run's own
/// bookkeeping) and its fields.
///
/// A field in an `Option` is written as `null` when unknown, unless its doc
/// says it is left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum EventKind {
    /// A coordinator starts: its pid, the target branch, the tasks in scope
    /// and whether it was told not to merge.
    #[serde(rename = "run.started")]
    RunStarted {
        pid: u32,
        target: String,
        tasks: usize,
        no_merge: bool,
        /// The SHA-256 of the plan file it runs (a copy is in `plans/`);
        /// left out when unknown (`orch merge`, older logs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan_digest: Option<String>,
        /// Whether agents and hooks are confined, and why not; left out by
        /// writers older than the sandbox.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<crate::sandbox::Confinement>,
    },
    /// The plan changed: at start, since the plan the last run ran
    /// (`live` false); during a run, a saved plan was applied (`live`
    /// true). Lists of ids; each is left out when empty.
    #[serde(rename = "plan.changed")]
    PlanChanged {
        /// The digest of the plan before (null when no copy of it is
        /// left) and of the plan now.
        from: Option<String>,
        to: String,
        live: bool,
        #[serde(flatten)]
        changes: PlanChanges,
    },
    /// A saved plan was not applied: its errors, each `file:line:col: message`.
    #[serde(rename = "plan.refused")]
    PlanRefused { errors: Vec<String> },
    /// What start-up found of the attempts a dead coordinator left: adopted
    /// (their supervisors still run), collected (they ended meanwhile) and
    /// interrupted (nothing left of them; they run again). Left out when
    /// nothing was found.
    #[serde(rename = "run.recovered")]
    RunRecovered {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adopted: Vec<FullId>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        collected: Vec<FullId>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        interrupted: Vec<FullId>,
    },
    /// The first Ctrl-C or SIGTERM: `agents` attempts are being stopped.
    #[serde(rename = "run.stopping")]
    RunStopping { agents: usize },
    /// The coordinator ends, also after a Ctrl-C (not when it is killed).
    #[serde(rename = "run.finished")]
    RunFinished {
        elapsed_ms: u64,
        /// Attempts started by this run.
        attempts: u32,
        interrupted: bool,
        /// Tasks in scope by status.
        counts: BTreeMap<Status, usize>,
        /// Left out where `/proc` cannot tell (Linux only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu_ms: Option<u64>,
        /// In KiB; left out where `/proc` cannot tell (Linux only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peak_rss_kb: Option<u64>,
        /// `state.json` writes by this run, and the bytes they wrote. Logs
        /// from before these fields read as 0.
        #[serde(default)]
        state_writes: u64,
        #[serde(default)]
        state_bytes: u64,
    },
    /// A pending task becomes ready.
    #[serde(rename = "task.ready")]
    TaskReady,
    /// An attempt opens; `purpose` (left out when none) when a merge hands
    /// the task back to its agent.
    #[serde(rename = "task.started")]
    TaskStarted {
        attempt: u32,
        /// Older writers wrote `null` for an item missing from the plan; it
        /// reads as empty.
        #[serde(default, deserialize_with = "null_as_empty")]
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        purpose: Option<Purpose>,
        /// The agent runs under the sandbox (docs/run.md); left out when not.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        confined: bool,
    },
    /// A cluster executor placed an attempt: its job's id, and its node
    /// once it runs (a second event when the node becomes known).
    #[serde(rename = "task.placed")]
    TaskPlaced {
        attempt: u32,
        executor: String,
        job: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    /// A commit lands on a task branch (`id` is the subtask when
    /// `ORCH_SUBTASK_ID` names one).
    #[serde(rename = "task.commit")]
    TaskCommit {
        commit: String,
        subject: String,
        branch: Option<String>,
        #[serde(flatten)]
        source: CommitSource,
        /// Left out when the hook ran without `ORCH_ATTEMPT`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// An attempt succeeded. Each field but `attempt` is left out when
    /// unknown (`log` when empty).
    #[serde(rename = "task.completed")]
    TaskCompleted {
        attempt: u32,
        /// Commits on the branch since `base`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commits: Option<u32>,
        /// The newest 10 commits at most, newest first, as `(short id, subject)`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log: Vec<(String, String)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
    },
    /// An attempt failed and the item will run again after the backoff.
    #[serde(rename = "task.retrying")]
    TaskRetrying {
        attempt: u32,
        reason: String,
        retry_in_ms: u64,
    },
    /// An attempt was cut short by the coordinator stopping, or its
    /// supervisor was gone on restart; it does not count.
    #[serde(rename = "task.interrupted")]
    TaskInterrupted {
        attempt: u32,
        reason: String,
        /// It ended on a rate or usage limit; left out when not.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        limited: bool,
    },
    /// The item failed for good. `attempt` is left out when a merge failed,
    /// or a check failed with no agent to fix it.
    #[serde(rename = "task.failed")]
    TaskFailed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        reason: String,
    },
    /// A required dependency or the phase barrier cannot be met: `by` is the
    /// item that blocks it.
    #[serde(rename = "task.blocked")]
    TaskBlocked { by: FullId, reason: String },
    /// A person's retry or resolve unblocks it.
    #[serde(rename = "task.unblocked")]
    TaskUnblocked,
    /// A merge begins; `tip` is the branch tip recorded when it was queued.
    #[serde(rename = "merge.started")]
    MergeStarted {
        branch: String,
        tip: Option<String>,
        strategy: MergeStrategy,
    },
    /// The merge conflicts (`files` is empty when `ff-only` cannot land the
    /// branch).
    #[serde(rename = "merge.conflicted")]
    MergeConflicted {
        files: Vec<String>,
        onto: String,
        reason: String,
    },
    /// The target's checkout is not clean, or the target kept moving.
    #[serde(rename = "merge.waiting")]
    MergeWaiting { reason: String },
    /// The branch moved after it was queued: its new `tip`, and the ref that
    /// keeps the old one when commits were dropped.
    #[serde(rename = "merge.requeued")]
    MergeRequeued {
        reason: String,
        tip: String,
        backup: Option<String>,
    },
    /// The checks start on a candidate: `candidate` merges `tasks` (in
    /// order, the event's `id` last) onto `onto` (the target's head, or the
    /// candidate ahead of it, checked meanwhile), in check worktree `slot`.
    #[serde(rename = "check.started")]
    CheckStarted {
        candidate: String,
        onto: String,
        tasks: Vec<FullId>,
        slot: u32,
    },
    /// A check passed on a candidate; `candidate` and `tasks` (left out
    /// when unknown) say which, as in `check.started`.
    #[serde(rename = "check.passed")]
    CheckPassed {
        check: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tasks: Vec<FullId>,
    },
    /// A check, or a policy rule (`check` is `policy.<rule>`, `log` is
    /// `None`), refused the candidate; `log` is relative to the repository
    /// root. `candidate` and `tasks` as in `check.passed`.
    #[serde(rename = "check.failed")]
    CheckFailed {
        check: String,
        reason: String,
        log: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tasks: Vec<FullId>,
    },
    /// The target moved while candidates were checked (someone committed):
    /// they are built again, from `from` to `onto`, the new head, and
    /// checked again. `tasks`: those the candidates held, in order.
    #[serde(rename = "merge.rebuilt")]
    MergeRebuilt {
        tasks: Vec<FullId>,
        from: String,
        onto: String,
    },
    /// The conflict radar: the task's branch and `other`'s (both active)
    /// change the same `paths`.
    #[serde(rename = "radar.overlap")]
    RadarOverlap { other: FullId, paths: Vec<String> },
    /// A review command starts on the task, whose checks passed.
    #[serde(rename = "review.started")]
    ReviewStarted { review: String },
    /// The task waits for a person's review (`orch approve` or `orch reject`).
    #[serde(rename = "review.waiting")]
    ReviewWaiting { review: String },
    /// A review approved the task (`by` is the review's name, or `person`).
    #[serde(rename = "review.approved")]
    ReviewApproved { by: String },
    /// A review rejected the task, saying why.
    #[serde(rename = "review.rejected")]
    ReviewRejected { by: String, reason: String },
    /// A person asked to revert the merged task; `dependents`: merged tasks
    /// that depend on it, which the revert does not undo.
    #[serde(rename = "revert.queued")]
    RevertQueued { dependents: Vec<FullId> },
    /// The target moved to `commit`, which undoes the task's work, on top of `onto`.
    #[serde(rename = "task.reverted")]
    TaskReverted { commit: String, onto: String },
    /// The revert could not land (it conflicts, or the checks fail with it);
    /// the task stays merged.
    #[serde(rename = "revert.refused")]
    RevertRefused { reason: String },
    /// The target moved to the task's work, `commit`.
    #[serde(rename = "task.merged")]
    TaskMerged {
        commit: String,
        #[serde(flatten)]
        how: Merged,
    },
    /// A person cancelled it, or the task it belongs to.
    #[serde(rename = "task.cancelled")]
    TaskCancelled { by: Actor },
    /// A person resolved it.
    #[serde(rename = "task.resolved")]
    TaskResolved { by: Actor },
    /// A person retried it.
    #[serde(rename = "task.retried")]
    TaskRetried { by: Actor },
    /// A `post_merge` command, or the cleanup after a merge, failed; the
    /// merge stands.
    #[serde(rename = "hook.failed")]
    HookFailed { reason: String },
    /// The tokens and cost an attempt's agent reported (`id` is the task or
    /// subtask); each figure left out when unknown.
    #[serde(rename = "task.usage")]
    TaskUsage {
        attempt: u32,
        agent: String,
        #[serde(flatten)]
        usage: Usage,
    },
    /// Nothing is launched for `agent` (`*`: every agent) until `until`
    /// (`null`: until a person resumes it). For a limit, `id` is the unit
    /// whose `attempt` hit it and `reason` what its agent said; both are
    /// left out for a person's pause.
    #[serde(rename = "agent.paused")]
    AgentPaused {
        agent: String,
        until: Option<Timestamp>,
        cause: PauseCause,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Launching for `agent` goes on: its pause ended (`time`) or a person
    /// lifted it (`person`).
    #[serde(rename = "agent.resumed")]
    AgentResumed { agent: String, cause: ResumeCause },
}

/// What ended a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResumeCause {
    /// Its time came.
    Time,
    /// `orch resume`.
    Person,
}

impl EventKind {
    /// Returns the dotted name written as `event`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunStarted { .. } => "run.started",
            EventKind::PlanChanged { .. } => "plan.changed",
            EventKind::PlanRefused { .. } => "plan.refused",
            EventKind::RunRecovered { .. } => "run.recovered",
            EventKind::RunStopping { .. } => "run.stopping",
            EventKind::RunFinished { .. } => "run.finished",
            EventKind::TaskReady => "task.ready",
            EventKind::TaskStarted { .. } => "task.started",
            EventKind::TaskPlaced { .. } => "task.placed",
            EventKind::TaskCommit { .. } => "task.commit",
            EventKind::TaskCompleted { .. } => "task.completed",
            EventKind::TaskRetrying { .. } => "task.retrying",
            EventKind::TaskInterrupted { .. } => "task.interrupted",
            EventKind::TaskFailed { .. } => "task.failed",
            EventKind::TaskBlocked { .. } => "task.blocked",
            EventKind::TaskUnblocked => "task.unblocked",
            EventKind::MergeStarted { .. } => "merge.started",
            EventKind::MergeConflicted { .. } => "merge.conflicted",
            EventKind::MergeWaiting { .. } => "merge.waiting",
            EventKind::MergeRequeued { .. } => "merge.requeued",
            EventKind::CheckStarted { .. } => "check.started",
            EventKind::CheckPassed { .. } => "check.passed",
            EventKind::CheckFailed { .. } => "check.failed",
            EventKind::MergeRebuilt { .. } => "merge.rebuilt",
            EventKind::RadarOverlap { .. } => "radar.overlap",
            EventKind::ReviewStarted { .. } => "review.started",
            EventKind::ReviewWaiting { .. } => "review.waiting",
            EventKind::ReviewApproved { .. } => "review.approved",
            EventKind::ReviewRejected { .. } => "review.rejected",
            EventKind::RevertQueued { .. } => "revert.queued",
            EventKind::TaskReverted { .. } => "task.reverted",
            EventKind::RevertRefused { .. } => "revert.refused",
            EventKind::TaskMerged { .. } => "task.merged",
            EventKind::TaskCancelled { .. } => "task.cancelled",
            EventKind::TaskResolved { .. } => "task.resolved",
            EventKind::TaskRetried { .. } => "task.retried",
            EventKind::HookFailed { .. } => "hook.failed",
            EventKind::TaskUsage { .. } => "task.usage",
            EventKind::AgentPaused { .. } => "agent.paused",
            EventKind::AgentResumed { .. } => "agent.resumed",
        }
    }
}

/// The ids a plan change touched (`plan.changed`); each list is left out
/// when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChanges {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<FullId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<FullId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retitled: Vec<FullId>,
    /// Dependencies added, removed, or made optional or required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<FullId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<FullId>,
    /// Anything else an agent is told (description, acceptance, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redefined: Vec<FullId>,
    /// Removed items that had not started: dropped from the state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<FullId>,
    /// Merged tasks whose definition changed; their work stays merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_changed: Vec<FullId>,
    /// Removed tasks whose branch holds work not in the target: kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<KeptBranch>,
}

/// A task gone from the plan whose branch holds work not in the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptBranch {
    pub id: FullId,
    pub branch: String,
}

/// How a commit reached the task branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitSource {
    /// The `post-commit` hook saw it, by an agent or a person: `"via":"hook"`.
    Hook,
    /// `orch` committed what the agent left uncommitted: `"auto":true`.
    Auto,
}

impl Serialize for CommitSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self {
            CommitSource::Hook => map.serialize_entry("via", "hook")?,
            CommitSource::Auto => map.serialize_entry("auto", &true)?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CommitSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            via: Option<String>,
            #[serde(default)]
            auto: bool,
        }
        let raw = Raw::deserialize(d)?;
        match (raw.via.as_deref(), raw.auto) {
            (Some("hook"), _) => Ok(CommitSource::Hook),
            (Some(other), _) => Err(D::Error::custom(format!("unknown commit source `{other}`"))),
            (None, true) => Ok(CommitSource::Auto),
            (None, false) => Err(D::Error::custom("a commit with neither `via` nor `auto`")),
        }
    }
}

/// How a task's work reached the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// The merge queue moved the target: `onto` is the target commit it
    /// merged onto, `backup` (`null` when none) the
    /// `refs/orch/backup/<id>/<n>` ref kept by `squash` and `rebase`.
    Landed {
        onto: String,
        strategy: MergeStrategy,
        backup: Option<String>,
        branch_deleted: bool,
        merge_ms: u64,
    },
    /// Found already in the target on start, after a crash: `"recovered":true`.
    Recovered,
}

impl Serialize for Merged {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Merged::Landed {
                onto,
                strategy,
                backup,
                branch_deleted,
                merge_ms,
            } => {
                let mut map = s.serialize_map(Some(5))?;
                map.serialize_entry("onto", onto)?;
                map.serialize_entry("strategy", strategy)?;
                map.serialize_entry("backup", backup)?;
                map.serialize_entry("branch_deleted", branch_deleted)?;
                map.serialize_entry("merge_ms", merge_ms)?;
                map.end()
            }
            Merged::Recovered => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("recovered", &true)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Merged {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            recovered: bool,
            onto: Option<String>,
            strategy: Option<MergeStrategy>,
            backup: Option<String>,
            branch_deleted: Option<bool>,
            merge_ms: Option<u64>,
        }
        let raw = Raw::deserialize(d)?;
        if raw.recovered {
            return Ok(Merged::Recovered);
        }
        Ok(Merged::Landed {
            onto: raw.onto.ok_or_else(|| D::Error::missing_field("onto"))?,
            strategy: raw
                .strategy
                .ok_or_else(|| D::Error::missing_field("strategy"))?,
            backup: raw.backup,
            branch_deleted: raw
                .branch_deleted
                .ok_or_else(|| D::Error::missing_field("branch_deleted"))?,
            // Logs from before `merge_ms` existed read as 0.
            merge_ms: raw.merge_ms.unwrap_or(0),
        })
    }
}

/// Who asked for a change made from outside the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    /// A person, through `orch retry|cancel|resolve` or the dashboard: `"person"`.
    Person,
}

/// Reads a string field that may be `null` (as empty).
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Option::<String>::deserialize(d).map(Option::unwrap_or_default)
}

/// A line as read: the kind's fields and `event` are what is left once
/// `seq`, `ts` and `id` are taken.
#[derive(Deserialize)]
struct Line {
    seq: u64,
    ts: Timestamp,
    #[serde(default)]
    id: Option<FullId>,
    #[serde(flatten)]
    kind: EventKind,
}

impl From<Line> for Event {
    fn from(line: Line) -> Event {
        Event {
            seq: line.seq,
            ts: line.ts,
            id: line.id,
            kind: line.kind,
        }
    }
}

impl Serialize for Event {
    /// Writes `seq`, `ts`, `event`, `id`, then the kind's fields in order.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The derived form puts `event` first; it goes after `ts` instead,
        // so the kind's fields go through a map first, which keeps their
        // order because serde_json's `preserve_order` feature is on.
        let Value::Object(fields) = serde_json::to_value(&self.kind).map_err(S::Error::custom)?
        else {
            return Err(S::Error::custom(
                "an event kind is not written as an object",
            ));
        };
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("seq", &self.seq)?;
        map.serialize_entry("ts", &self.ts)?;
        map.serialize_entry("event", self.kind.name())?;
        if let Some(id) = &self.id {
            map.serialize_entry("id", id)?;
        }
        for (key, value) in fields.iter().filter(|(key, _)| *key != "event") {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Why no event can be appended: the last one used the largest `seq`.
///
/// `seq` never wraps (it would no longer be unique and increasing); the log
/// refuses instead, and the run stops as on any failure to append.
#[derive(Debug, thiserror::Error)]
#[error(
    "`seq` reached {}, the largest there is, so no event can follow it in `events.jsonl`; move the file aside to start numbering again",
    u64::MAX
)]
pub struct SeqExhausted;

/// An open log, positioned for appending.
#[derive(Debug)]
pub struct EventLog {
    file: File,
    path: PathBuf,
    /// `None` once `seq` reached `u64::MAX`.
    next_seq: Option<u64>,
    /// The file's length after our last write: when it differs, another
    /// process appended, and `next_seq` is read again from the file.
    known_len: u64,
}

impl EventLog {
    /// Opens (or creates) the log and finds the next sequence number.
    pub fn open(path: &Path) -> io::Result<EventLog> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        Ok(EventLog {
            file,
            path: path.to_owned(),
            next_seq: Some(1),
            known_len: u64::MAX,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event and returns it as written.
    ///
    /// Writers in other processes (`orch retry` without a run, the git
    /// hooks) append to the same file, so each append holds an exclusive
    /// lock on it and, when the file grew behind our back, continues the
    /// sequence from its last line: `seq` stays unique and increasing.
    pub fn append(&mut self, id: Option<&FullId>, kind: EventKind) -> io::Result<Event> {
        self.file.lock()?;
        let result = self.append_locked(id, kind);
        let unlocked = self.file.unlock();
        let record = result?;
        unlocked?;
        Ok(record)
    }

    fn append_locked(&mut self, id: Option<&FullId>, kind: EventKind) -> io::Result<Event> {
        if self.file.metadata()?.len() != self.known_len {
            let (last_seq, ends_cleanly) = last_complete(&mut self.file)?;
            if !ends_cleanly {
                self.file.write_all(b"\n")?;
            }
            let after_last = match last_seq {
                None => Some(1),
                Some(last) => last.checked_add(1),
            };
            self.next_seq = self.next_seq.zip(after_last).map(|(a, b)| a.max(b));
        }
        let seq = self
            .next_seq
            .ok_or_else(|| io::Error::other(SeqExhausted))?;
        let record = Event {
            seq,
            ts: Timestamp::now(),
            id: id.cloned(),
            kind,
        };
        let mut line = serde_json::to_vec(&record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.next_seq = seq.checked_add(1);
        self.known_len = self.file.metadata()?.len();
        Ok(record)
    }
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Reads the tail of the file: the last complete line's `seq`, and whether
/// the file ends with a newline (or is empty).
fn last_complete(file: &mut File) -> io::Result<(Option<u64>, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((None, true));
    }
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut tail)?;
    let ends_cleanly = tail.last() == Some(&b'\n');
    // The last piece is empty when the file ends cleanly, torn otherwise.
    // Only `seq` is read, so that a line of an event this build does not
    // know still counts.
    let seq = tail
        .split(|b| *b == b'\n')
        .rev()
        .skip(1)
        .find_map(|line| serde_json::from_slice::<SeqOnly>(line).ok())
        .map(|e| e.seq);
    Ok((seq, ends_cleanly))
}

/// Reads every complete, well-formed event; a torn last line is skipped.
pub fn read_all(path: &Path) -> io::Result<Vec<Event>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        if let Ok(event) = serde_json::from_slice::<Event>(&line) {
            out.push(event);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn id(s: &str) -> FullId {
        FullId::parse(s).unwrap()
    }

    const TIP: &str = "9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d";
    const ONTO: &str = "5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382";
    const MERGE: &str = "15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1";
    const PLAN_DIGEST: &str = "3f2a9c1d7e5b4a60918273645546372819a0b1c2d3e4f5061728394a5b6c7d8e";
    const PLAN_DIGEST_2: &str = "9c1d3f2a7e5b4a60918273645546372819a0b1c2d3e4f5061728394a5b6c7d8e";

    /// Every kind at least once, with each way a field can be written
    /// (`null`, left out, hook or auto commit, landed or recovered merge).
    fn samples() -> Vec<EventKind> {
        let person = Actor::Person;
        vec![
            EventKind::RunStarted {
                pid: 4242,
                target: "main".to_owned(),
                tasks: 7,
                no_merge: false,
                plan_digest: None,
                sandbox: None,
            },
            EventKind::RunStarted {
                pid: 4242,
                target: "main".to_owned(),
                tasks: 7,
                no_merge: true,
                plan_digest: None,
                sandbox: Some(crate::sandbox::Confinement::Confined {
                    abi: 7,
                    network: crate::sandbox::Network::Open,
                }),
            },
            EventKind::RunStarted {
                pid: 4242,
                target: "main".to_owned(),
                tasks: 7,
                no_merge: false,
                plan_digest: None,
                sandbox: Some(crate::sandbox::Confinement::Unavailable {
                    why: crate::sandbox::Unavailable::NoLandlock,
                }),
            },
            EventKind::RunStarted {
                pid: 4242,
                target: "main".to_owned(),
                tasks: 7,
                no_merge: false,
                plan_digest: Some(PLAN_DIGEST.to_owned()),
                sandbox: None,
            },
            EventKind::PlanChanged {
                from: Some(PLAN_DIGEST.to_owned()),
                to: PLAN_DIGEST_2.to_owned(),
                live: false,
                changes: PlanChanges {
                    added: vec![id("T5")],
                    removed: vec![id("T3"), id("T4")],
                    retitled: vec![id("T1")],
                    dependencies: vec![id("T2")],
                    priorities: vec![id("T2")],
                    redefined: vec![id("T1")],
                    dropped: vec![id("T4")],
                    merged_changed: vec![id("T1")],
                    kept: vec![KeptBranch {
                        id: id("T3"),
                        branch: "orch/T3".to_owned(),
                    }],
                },
            },
            EventKind::PlanChanged {
                from: None,
                to: PLAN_DIGEST_2.to_owned(),
                live: true,
                changes: PlanChanges::default(),
            },
            EventKind::PlanRefused {
                errors: vec!["plan.toml:3:7: unknown field `titel`".to_owned()],
            },
            EventKind::RunRecovered {
                adopted: vec![id("T1")],
                collected: vec![id("T2")],
                interrupted: Vec::new(),
            },
            EventKind::RunStopping { agents: 2 },
            EventKind::RunFinished {
                elapsed_ms: 61_000,
                attempts: 5,
                interrupted: false,
                counts: BTreeMap::from([(Status::Merged, 3), (Status::Failed, 1)]),
                cpu_ms: Some(420),
                peak_rss_kb: Some(10_240),
                state_writes: 12,
                state_bytes: 3456,
            },
            EventKind::RunFinished {
                elapsed_ms: 61_000,
                attempts: 5,
                interrupted: true,
                counts: BTreeMap::new(),
                cpu_ms: None,
                peak_rss_kb: None,
                state_writes: 0,
                state_bytes: 0,
            },
            EventKind::TaskReady,
            EventKind::TaskStarted {
                attempt: 1,
                title: "Ledger tables".to_owned(),
                purpose: None,
                confined: false,
            },
            EventKind::TaskStarted {
                attempt: 3,
                title: "Ledger tables".to_owned(),
                purpose: Some(Purpose::CheckFailure),
                confined: true,
            },
            EventKind::TaskPlaced {
                attempt: 3,
                executor: "slurm".to_owned(),
                job: "4242".to_owned(),
                node: Some("node07".to_owned()),
            },
            EventKind::TaskCommit {
                commit: "f624be5c9ccf46de48f50dfa809370f6afa3f9fc".to_owned(),
                subject: "Add the ledger".to_owned(),
                branch: Some("orch/P1.M1.T1".to_owned()),
                source: CommitSource::Hook,
                attempt: Some(2),
            },
            EventKind::TaskCommit {
                commit: "f624be5c9ccf46de48f50dfa809370f6afa3f9fc".to_owned(),
                subject: "Add the ledger".to_owned(),
                branch: Some("orch/P1.M1.T1".to_owned()),
                source: CommitSource::Hook,
                attempt: None,
            },
            EventKind::TaskCommit {
                commit: TIP.to_owned(),
                subject: "Ledger tables".to_owned(),
                branch: Some("orch/P1.M1.T1".to_owned()),
                source: CommitSource::Auto,
                attempt: Some(1),
            },
            EventKind::TaskCommit {
                commit: TIP.to_owned(),
                subject: "Ledger tables".to_owned(),
                branch: None,
                source: CommitSource::Auto,
                attempt: Some(1),
            },
            EventKind::TaskCompleted {
                attempt: 1,
                commits: Some(2),
                log: vec![
                    ("9b1e0c4d2".to_owned(), "Ledger tables".to_owned()),
                    ("f624be5c9".to_owned(), "Add \"the\" ledger".to_owned()),
                ],
                duration_ms: Some(391_060),
            },
            EventKind::TaskCompleted {
                attempt: 1,
                commits: None,
                log: Vec::new(),
                duration_ms: None,
            },
            EventKind::TaskRetrying {
                attempt: 1,
                reason: "exit code 1".to_owned(),
                retry_in_ms: 15_000,
            },
            EventKind::TaskInterrupted {
                attempt: 2,
                reason: "the run stopped".to_owned(),
                limited: false,
            },
            EventKind::TaskFailed {
                attempt: Some(3),
                reason: "exit code 2".to_owned(),
            },
            EventKind::TaskFailed {
                attempt: None,
                reason: "merge failed: boom".to_owned(),
            },
            EventKind::TaskBlocked {
                by: id("P1.M1.T0"),
                reason: "required dependency `P1.M1.T0` is failed".to_owned(),
            },
            EventKind::TaskUnblocked,
            EventKind::MergeStarted {
                branch: "orch/P1.M1.T1".to_owned(),
                tip: Some(TIP.to_owned()),
                strategy: MergeStrategy::FfOnly,
            },
            EventKind::MergeStarted {
                branch: "orch/P1.M1.T1".to_owned(),
                tip: None,
                strategy: MergeStrategy::Merge,
            },
            EventKind::MergeConflicted {
                files: vec!["a.rs".to_owned(), "b.rs".to_owned()],
                onto: ONTO.to_owned(),
                reason: "merging with `main` conflicts in `a.rs`, `b.rs`".to_owned(),
            },
            EventKind::MergeWaiting {
                reason: "the target's checkout is not clean".to_owned(),
            },
            EventKind::MergeRequeued {
                reason: "the branch moved after it was queued; queued again".to_owned(),
                tip: TIP.to_owned(),
                backup: None,
            },
            EventKind::MergeRequeued {
                reason: "moved by hand".to_owned(),
                tip: TIP.to_owned(),
                backup: Some("refs/orch/backup/P1.M1.T1/1".to_owned()),
            },
            EventKind::CheckStarted {
                candidate: MERGE.to_owned(),
                onto: ONTO.to_owned(),
                tasks: vec![id("P1.M1.T0"), id("P1.M1.T1")],
                slot: 1,
            },
            EventKind::CheckPassed {
                check: "test".to_owned(),
                candidate: None,
                tasks: Vec::new(),
            },
            EventKind::CheckPassed {
                check: "test".to_owned(),
                candidate: Some(MERGE.to_owned()),
                tasks: vec![id("P1.M1.T0"), id("P1.M1.T1")],
            },
            EventKind::CheckFailed {
                check: "test".to_owned(),
                reason: "exit code 1".to_owned(),
                log: Some(".orchestrator/checks/P1.M1.T1/test.log".to_owned()),
                candidate: Some(MERGE.to_owned()),
                tasks: vec![id("P1.M1.T0"), id("P1.M1.T1")],
            },
            EventKind::CheckFailed {
                check: "policy.paths".to_owned(),
                reason: "touches `secret`".to_owned(),
                log: None,
                candidate: None,
                tasks: Vec::new(),
            },
            EventKind::MergeRebuilt {
                tasks: vec![id("P1.M1.T0"), id("P1.M1.T1")],
                from: ONTO.to_owned(),
                onto: TIP.to_owned(),
            },
            EventKind::RadarOverlap {
                other: id("P1.M1.T2"),
                paths: vec!["src/ledger.rs".to_owned()],
            },
            EventKind::ReviewStarted {
                review: "claude".to_owned(),
            },
            EventKind::ReviewWaiting {
                review: "lead".to_owned(),
            },
            EventKind::ReviewApproved {
                by: "person".to_owned(),
            },
            EventKind::ReviewRejected {
                by: "claude".to_owned(),
                reason: "the migration has no down step".to_owned(),
            },
            EventKind::RevertQueued {
                dependents: vec![id("P1.M1.T2")],
            },
            EventKind::TaskReverted {
                commit: TIP.to_owned(),
                onto: MERGE.to_owned(),
            },
            EventKind::RevertRefused {
                reason: "reverting `P1.M1.T1` conflicts with `main` in `a.rs`".to_owned(),
            },
            EventKind::TaskMerged {
                commit: MERGE.to_owned(),
                how: Merged::Landed {
                    onto: ONTO.to_owned(),
                    strategy: MergeStrategy::Squash,
                    backup: Some("refs/orch/backup/P1.M1.T1/1".to_owned()),
                    branch_deleted: true,
                    merge_ms: 2700,
                },
            },
            EventKind::TaskMerged {
                commit: MERGE.to_owned(),
                how: Merged::Landed {
                    onto: ONTO.to_owned(),
                    strategy: MergeStrategy::Merge,
                    backup: None,
                    branch_deleted: false,
                    merge_ms: 2700,
                },
            },
            EventKind::TaskMerged {
                commit: MERGE.to_owned(),
                how: Merged::Recovered,
            },
            EventKind::TaskCancelled { by: person },
            EventKind::TaskResolved { by: person },
            EventKind::TaskRetried { by: person },
            EventKind::HookFailed {
                reason: "`post_merge` failed".to_owned(),
            },
            EventKind::TaskInterrupted {
                attempt: 2,
                reason: "usage limit of `claude`: Claude AI usage limit reached|1767286800"
                    .to_owned(),
                limited: true,
            },
            EventKind::TaskUsage {
                attempt: 1,
                agent: "claude".to_owned(),
                usage: Usage {
                    input_tokens: Some(1200),
                    output_tokens: Some(340),
                    cached_tokens: Some(800),
                    cost_usd: Some(0.0123),
                },
            },
            EventKind::TaskUsage {
                attempt: 2,
                agent: "gemini".to_owned(),
                usage: Usage {
                    input_tokens: Some(300),
                    output_tokens: Some(60),
                    cached_tokens: None,
                    cost_usd: None,
                },
            },
            EventKind::AgentPaused {
                agent: "claude".to_owned(),
                until: Some(Timestamp(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_286_800),
                )),
                cause: PauseCause::Limit,
                attempt: Some(2),
                reason: Some("Claude AI usage limit reached|1767286800".to_owned()),
            },
            EventKind::AgentPaused {
                agent: "*".to_owned(),
                until: None,
                cause: PauseCause::Person,
                attempt: None,
                reason: None,
            },
            EventKind::AgentResumed {
                agent: "claude".to_owned(),
                cause: ResumeCause::Time,
            },
            EventKind::AgentResumed {
                agent: "*".to_owned(),
                cause: ResumeCause::Person,
            },
        ]
    }

    /// Numbers the kinds; a new kind fails to compile here until it gets a
    /// number, and then `samples_cover_every_kind` until it gets a sample.
    fn ordinal(kind: &EventKind) -> usize {
        match kind {
            EventKind::RunStarted { .. } => 0,
            EventKind::RunStopping { .. } => 1,
            EventKind::RunFinished { .. } => 2,
            EventKind::TaskReady => 3,
            EventKind::TaskStarted { .. } => 4,
            EventKind::TaskCommit { .. } => 5,
            EventKind::TaskCompleted { .. } => 6,
            EventKind::TaskRetrying { .. } => 7,
            EventKind::TaskInterrupted { .. } => 8,
            EventKind::TaskFailed { .. } => 9,
            EventKind::TaskBlocked { .. } => 10,
            EventKind::TaskUnblocked => 11,
            EventKind::MergeStarted { .. } => 12,
            EventKind::MergeConflicted { .. } => 13,
            EventKind::MergeWaiting { .. } => 14,
            EventKind::MergeRequeued { .. } => 15,
            EventKind::CheckPassed { .. } => 16,
            EventKind::CheckFailed { .. } => 17,
            EventKind::TaskMerged { .. } => 18,
            EventKind::TaskCancelled { .. } => 19,
            EventKind::TaskResolved { .. } => 20,
            EventKind::TaskRetried { .. } => 21,
            EventKind::HookFailed { .. } => 22,
            EventKind::PlanChanged { .. } => 23,
            EventKind::PlanRefused { .. } => 24,
            EventKind::RunRecovered { .. } => 25,
            EventKind::TaskUsage { .. } => 26,
            EventKind::AgentPaused { .. } => 27,
            EventKind::AgentResumed { .. } => 28,
            EventKind::TaskPlaced { .. } => 29,
            EventKind::CheckStarted { .. } => 30,
            EventKind::MergeRebuilt { .. } => 31,
            EventKind::RadarOverlap { .. } => 32,
            EventKind::ReviewStarted { .. } => 33,
            EventKind::ReviewWaiting { .. } => 34,
            EventKind::ReviewApproved { .. } => 35,
            EventKind::ReviewRejected { .. } => 36,
            EventKind::RevertQueued { .. } => 37,
            EventKind::TaskReverted { .. } => 38,
            EventKind::RevertRefused { .. } => 39,
        }
    }

    const KINDS: usize = 40;

    fn line(seq: u64, kind: EventKind) -> Event {
        let run = matches!(
            kind,
            EventKind::RunStarted { .. }
                | EventKind::RunStopping { .. }
                | EventKind::RunFinished { .. }
                | EventKind::PlanChanged { .. }
                | EventKind::PlanRefused { .. }
                | EventKind::RunRecovered { .. }
                | EventKind::AgentResumed { .. }
                | EventKind::AgentPaused {
                    cause: PauseCause::Person,
                    ..
                }
        );
        Event {
            seq,
            ts: Timestamp(SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_268_800_123)),
            id: (!run).then(|| id("P1.M1.T1")),
            kind,
        }
    }

    #[test]
    fn samples_cover_every_kind() {
        let mut seen = [false; KINDS];
        for kind in samples() {
            seen[ordinal(&kind)] = true;
        }
        let missing: Vec<usize> = (0..KINDS).filter(|n| !seen[*n]).collect();
        assert!(missing.is_empty(), "kinds without a sample: {missing:?}");
    }

    #[test]
    fn every_kind_is_written_as_before() {
        let text: String = samples()
            .into_iter()
            .enumerate()
            .map(|(n, kind)| serde_json::to_string(&line(n as u64 + 1, kind)).unwrap() + "\n")
            .collect();
        insta::assert_snapshot!(text, @r#"
        {"seq":1,"ts":"2026-01-01T12:00:00.123Z","event":"run.started","pid":4242,"target":"main","tasks":7,"no_merge":false}
        {"seq":2,"ts":"2026-01-01T12:00:00.123Z","event":"run.started","pid":4242,"target":"main","tasks":7,"no_merge":true,"sandbox":{"mode":"confined","abi":7,"network":"open"}}
        {"seq":3,"ts":"2026-01-01T12:00:00.123Z","event":"run.started","pid":4242,"target":"main","tasks":7,"no_merge":false,"sandbox":{"mode":"unavailable","reason":"no_landlock"}}
        {"seq":4,"ts":"2026-01-01T12:00:00.123Z","event":"run.started","pid":4242,"target":"main","tasks":7,"no_merge":false,"plan_digest":"3f2a9c1d7e5b4a60918273645546372819a0b1c2d3e4f5061728394a5b6c7d8e"}
        {"seq":5,"ts":"2026-01-01T12:00:00.123Z","event":"plan.changed","from":"3f2a9c1d7e5b4a60918273645546372819a0b1c2d3e4f5061728394a5b6c7d8e","to":"9c1d3f2a7e5b4a60918273645546372819a0b1c2d3e4f5061728394a5b6c7d8e","live":false,"added":["T5"],"removed":["T3","T4"],"retitled":["T1"],"dependencies":["T2"],"priorities":["T2"],"redefined":["T1"],"dropped":["T4"],"merged_changed":["T1"],"kept":[{"id":"T3","branch":"orch/T3"}]}
        {"seq":6,"ts":"2026-01-01T12:00:00.123Z","event":"plan.changed","from":null,"to":"9c1d3f2a7e5b4a60918273645546372819a0b1c2d3e4f5061728394a5b6c7d8e","live":true}
        {"seq":7,"ts":"2026-01-01T12:00:00.123Z","event":"plan.refused","errors":["plan.toml:3:7: unknown field `titel`"]}
        {"seq":8,"ts":"2026-01-01T12:00:00.123Z","event":"run.recovered","adopted":["T1"],"collected":["T2"]}
        {"seq":9,"ts":"2026-01-01T12:00:00.123Z","event":"run.stopping","agents":2}
        {"seq":10,"ts":"2026-01-01T12:00:00.123Z","event":"run.finished","elapsed_ms":61000,"attempts":5,"interrupted":false,"counts":{"merged":3,"failed":1},"cpu_ms":420,"peak_rss_kb":10240,"state_writes":12,"state_bytes":3456}
        {"seq":11,"ts":"2026-01-01T12:00:00.123Z","event":"run.finished","elapsed_ms":61000,"attempts":5,"interrupted":true,"counts":{},"state_writes":0,"state_bytes":0}
        {"seq":12,"ts":"2026-01-01T12:00:00.123Z","event":"task.ready","id":"P1.M1.T1"}
        {"seq":13,"ts":"2026-01-01T12:00:00.123Z","event":"task.started","id":"P1.M1.T1","attempt":1,"title":"Ledger tables"}
        {"seq":14,"ts":"2026-01-01T12:00:00.123Z","event":"task.started","id":"P1.M1.T1","attempt":3,"title":"Ledger tables","purpose":"check_failure","confined":true}
        {"seq":15,"ts":"2026-01-01T12:00:00.123Z","event":"task.placed","id":"P1.M1.T1","attempt":3,"executor":"slurm","job":"4242","node":"node07"}
        {"seq":16,"ts":"2026-01-01T12:00:00.123Z","event":"task.commit","id":"P1.M1.T1","commit":"f624be5c9ccf46de48f50dfa809370f6afa3f9fc","subject":"Add the ledger","branch":"orch/P1.M1.T1","via":"hook","attempt":2}
        {"seq":17,"ts":"2026-01-01T12:00:00.123Z","event":"task.commit","id":"P1.M1.T1","commit":"f624be5c9ccf46de48f50dfa809370f6afa3f9fc","subject":"Add the ledger","branch":"orch/P1.M1.T1","via":"hook"}
        {"seq":18,"ts":"2026-01-01T12:00:00.123Z","event":"task.commit","id":"P1.M1.T1","commit":"9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d","subject":"Ledger tables","branch":"orch/P1.M1.T1","auto":true,"attempt":1}
        {"seq":19,"ts":"2026-01-01T12:00:00.123Z","event":"task.commit","id":"P1.M1.T1","commit":"9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d","subject":"Ledger tables","branch":null,"auto":true,"attempt":1}
        {"seq":20,"ts":"2026-01-01T12:00:00.123Z","event":"task.completed","id":"P1.M1.T1","attempt":1,"commits":2,"log":[["9b1e0c4d2","Ledger tables"],["f624be5c9","Add \"the\" ledger"]],"duration_ms":391060}
        {"seq":21,"ts":"2026-01-01T12:00:00.123Z","event":"task.completed","id":"P1.M1.T1","attempt":1}
        {"seq":22,"ts":"2026-01-01T12:00:00.123Z","event":"task.retrying","id":"P1.M1.T1","attempt":1,"reason":"exit code 1","retry_in_ms":15000}
        {"seq":23,"ts":"2026-01-01T12:00:00.123Z","event":"task.interrupted","id":"P1.M1.T1","attempt":2,"reason":"the run stopped"}
        {"seq":24,"ts":"2026-01-01T12:00:00.123Z","event":"task.failed","id":"P1.M1.T1","attempt":3,"reason":"exit code 2"}
        {"seq":25,"ts":"2026-01-01T12:00:00.123Z","event":"task.failed","id":"P1.M1.T1","reason":"merge failed: boom"}
        {"seq":26,"ts":"2026-01-01T12:00:00.123Z","event":"task.blocked","id":"P1.M1.T1","by":"P1.M1.T0","reason":"required dependency `P1.M1.T0` is failed"}
        {"seq":27,"ts":"2026-01-01T12:00:00.123Z","event":"task.unblocked","id":"P1.M1.T1"}
        {"seq":28,"ts":"2026-01-01T12:00:00.123Z","event":"merge.started","id":"P1.M1.T1","branch":"orch/P1.M1.T1","tip":"9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d","strategy":"ff-only"}
        {"seq":29,"ts":"2026-01-01T12:00:00.123Z","event":"merge.started","id":"P1.M1.T1","branch":"orch/P1.M1.T1","tip":null,"strategy":"merge"}
        {"seq":30,"ts":"2026-01-01T12:00:00.123Z","event":"merge.conflicted","id":"P1.M1.T1","files":["a.rs","b.rs"],"onto":"5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382","reason":"merging with `main` conflicts in `a.rs`, `b.rs`"}
        {"seq":31,"ts":"2026-01-01T12:00:00.123Z","event":"merge.waiting","id":"P1.M1.T1","reason":"the target's checkout is not clean"}
        {"seq":32,"ts":"2026-01-01T12:00:00.123Z","event":"merge.requeued","id":"P1.M1.T1","reason":"the branch moved after it was queued; queued again","tip":"9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d","backup":null}
        {"seq":33,"ts":"2026-01-01T12:00:00.123Z","event":"merge.requeued","id":"P1.M1.T1","reason":"moved by hand","tip":"9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d","backup":"refs/orch/backup/P1.M1.T1/1"}
        {"seq":34,"ts":"2026-01-01T12:00:00.123Z","event":"check.started","id":"P1.M1.T1","candidate":"15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1","onto":"5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382","tasks":["P1.M1.T0","P1.M1.T1"],"slot":1}
        {"seq":35,"ts":"2026-01-01T12:00:00.123Z","event":"check.passed","id":"P1.M1.T1","check":"test"}
        {"seq":36,"ts":"2026-01-01T12:00:00.123Z","event":"check.passed","id":"P1.M1.T1","check":"test","candidate":"15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1","tasks":["P1.M1.T0","P1.M1.T1"]}
        {"seq":37,"ts":"2026-01-01T12:00:00.123Z","event":"check.failed","id":"P1.M1.T1","check":"test","reason":"exit code 1","log":".orchestrator/checks/P1.M1.T1/test.log","candidate":"15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1","tasks":["P1.M1.T0","P1.M1.T1"]}
        {"seq":38,"ts":"2026-01-01T12:00:00.123Z","event":"check.failed","id":"P1.M1.T1","check":"policy.paths","reason":"touches `secret`","log":null}
        {"seq":39,"ts":"2026-01-01T12:00:00.123Z","event":"merge.rebuilt","id":"P1.M1.T1","tasks":["P1.M1.T0","P1.M1.T1"],"from":"5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382","onto":"9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d"}
        {"seq":40,"ts":"2026-01-01T12:00:00.123Z","event":"radar.overlap","id":"P1.M1.T1","other":"P1.M1.T2","paths":["src/ledger.rs"]}
        {"seq":41,"ts":"2026-01-01T12:00:00.123Z","event":"review.started","id":"P1.M1.T1","review":"claude"}
        {"seq":42,"ts":"2026-01-01T12:00:00.123Z","event":"review.waiting","id":"P1.M1.T1","review":"lead"}
        {"seq":43,"ts":"2026-01-01T12:00:00.123Z","event":"review.approved","id":"P1.M1.T1","by":"person"}
        {"seq":44,"ts":"2026-01-01T12:00:00.123Z","event":"review.rejected","id":"P1.M1.T1","by":"claude","reason":"the migration has no down step"}
        {"seq":45,"ts":"2026-01-01T12:00:00.123Z","event":"revert.queued","id":"P1.M1.T1","dependents":["P1.M1.T2"]}
        {"seq":46,"ts":"2026-01-01T12:00:00.123Z","event":"task.reverted","id":"P1.M1.T1","commit":"9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d","onto":"15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1"}
        {"seq":47,"ts":"2026-01-01T12:00:00.123Z","event":"revert.refused","id":"P1.M1.T1","reason":"reverting `P1.M1.T1` conflicts with `main` in `a.rs`"}
        {"seq":48,"ts":"2026-01-01T12:00:00.123Z","event":"task.merged","id":"P1.M1.T1","commit":"15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1","onto":"5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382","strategy":"squash","backup":"refs/orch/backup/P1.M1.T1/1","branch_deleted":true,"merge_ms":2700}
        {"seq":49,"ts":"2026-01-01T12:00:00.123Z","event":"task.merged","id":"P1.M1.T1","commit":"15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1","onto":"5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382","strategy":"merge","backup":null,"branch_deleted":false,"merge_ms":2700}
        {"seq":50,"ts":"2026-01-01T12:00:00.123Z","event":"task.merged","id":"P1.M1.T1","commit":"15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1","recovered":true}
        {"seq":51,"ts":"2026-01-01T12:00:00.123Z","event":"task.cancelled","id":"P1.M1.T1","by":"person"}
        {"seq":52,"ts":"2026-01-01T12:00:00.123Z","event":"task.resolved","id":"P1.M1.T1","by":"person"}
        {"seq":53,"ts":"2026-01-01T12:00:00.123Z","event":"task.retried","id":"P1.M1.T1","by":"person"}
        {"seq":54,"ts":"2026-01-01T12:00:00.123Z","event":"hook.failed","id":"P1.M1.T1","reason":"`post_merge` failed"}
        {"seq":55,"ts":"2026-01-01T12:00:00.123Z","event":"task.interrupted","id":"P1.M1.T1","attempt":2,"reason":"usage limit of `claude`: Claude AI usage limit reached|1767286800","limited":true}
        {"seq":56,"ts":"2026-01-01T12:00:00.123Z","event":"task.usage","id":"P1.M1.T1","attempt":1,"agent":"claude","input_tokens":1200,"output_tokens":340,"cached_tokens":800,"cost_usd":0.0123}
        {"seq":57,"ts":"2026-01-01T12:00:00.123Z","event":"task.usage","id":"P1.M1.T1","attempt":2,"agent":"gemini","input_tokens":300,"output_tokens":60}
        {"seq":58,"ts":"2026-01-01T12:00:00.123Z","event":"agent.paused","id":"P1.M1.T1","agent":"claude","until":"2026-01-01T17:00:00.000Z","cause":"limit","attempt":2,"reason":"Claude AI usage limit reached|1767286800"}
        {"seq":59,"ts":"2026-01-01T12:00:00.123Z","event":"agent.paused","agent":"*","until":null,"cause":"person"}
        {"seq":60,"ts":"2026-01-01T12:00:00.123Z","event":"agent.resumed","agent":"claude","cause":"time"}
        {"seq":61,"ts":"2026-01-01T12:00:00.123Z","event":"agent.resumed","agent":"*","cause":"person"}
        "#);
    }

    #[test]
    fn every_kind_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut log = EventLog::open(&path).unwrap();
        let mut written = Vec::new();
        for (n, kind) in samples().into_iter().enumerate() {
            let unit = (n % 2 == 0).then(|| id("P1.M1.T1"));
            let event = log.append(unit.as_ref(), kind.clone()).unwrap();
            assert_eq!((&event.kind, &event.id), (&kind, &unit));
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(
                json["event"],
                kind.name(),
                "the name agrees with serde's tag"
            );
            written.push(event);
        }
        assert_eq!(read_all(&path).unwrap(), written);
    }

    /// The lines of the doc's `json event` block.
    fn documented_lines() -> Vec<&'static str> {
        let doc = include_str!("../../docs/state.md");
        let start = doc.find("```json event\n").unwrap() + "```json event\n".len();
        let len = doc[start..].find("```").unwrap();
        doc[start..start + len].lines().collect()
    }

    #[test]
    fn documented_and_old_lines_read_and_write_back_the_same() {
        let recovered = r#"{"seq":9,"ts":"2026-01-01T12:06:33.910Z","event":"task.merged","id":"P1.M1.T1","commit":"15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1","recovered":true}"#;
        let mut lines = documented_lines();
        assert!(lines.len() >= 7, "{lines:?}");
        lines.push(recovered);
        for text in &lines {
            let event: Event = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(serde_json::to_string(&event).unwrap(), *text);
        }
        let last: Event = serde_json::from_str(recovered).unwrap();
        assert_eq!(
            last.kind,
            EventKind::TaskMerged {
                commit: MERGE.to_owned(),
                how: Merged::Recovered
            }
        );
        let hook: Event = serde_json::from_str(lines[1]).unwrap();
        assert!(matches!(
            hook.kind,
            EventKind::TaskCommit {
                source: CommitSource::Hook,
                attempt: Some(1),
                ..
            }
        ));
    }

    /// Lines of other versions: unknown fields are ignored, fields added
    /// later read as their defaults, and unknown events and lines that do
    /// not parse are skipped.
    #[test]
    fn readers_skip_what_they_do_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let text = [
            r#"{"seq":1,"ts":"2026-01-01T12:00:00.000Z","event":"task.ready","id":"T1","later":[1,2]}"#,
            r#"{"seq":3,"ts":"2026-01-01T12:00:00.000Z","event":"task.failed","id":"T1"}"#,
            r#"not json"#,
            r#"{"seq":5,"ts":"2026-01-01T12:00:00.000Z","event":"task.started","id":"T1","attempt":2,"title":null,"mood":"calm"}"#,
            r#"{"seq":6,"ts":"2026-01-01T12:00:00.000Z","event":"task.merged","id":"T1","commit":"abc","onto":"def","strategy":"merge","backup":null,"branch_deleted":true}"#,
            r#"{"seq":7,"ts":"2026-01-01T12:00:00.000Z","event":"run.finished","elapsed_ms":5,"attempts":1,"interrupted":false,"counts":{"merged":1}}"#,
            r#"{"seq":8,"ts":"2026-01-01T12:00:00.000Z","event":"task.teleported","id":"T1"}"#,
        ]
        .join("\n");
        std::fs::write(&path, text + "\n").unwrap();
        let read = read_all(&path).unwrap();
        let got: Vec<(u64, &EventKind)> = read.iter().map(|e| (e.seq, &e.kind)).collect();
        assert_eq!(
            got,
            [
                (1, &EventKind::TaskReady),
                (
                    5,
                    &EventKind::TaskStarted {
                        attempt: 2,
                        title: String::new(),
                        purpose: None,
                        confined: false,
                    }
                ),
                (
                    6,
                    &EventKind::TaskMerged {
                        commit: "abc".to_owned(),
                        how: Merged::Landed {
                            onto: "def".to_owned(),
                            strategy: MergeStrategy::Merge,
                            backup: None,
                            branch_deleted: true,
                            merge_ms: 0
                        }
                    }
                ),
                (
                    7,
                    &EventKind::RunFinished {
                        elapsed_ms: 5,
                        attempts: 1,
                        interrupted: false,
                        counts: BTreeMap::from([(Status::Merged, 1)]),
                        cpu_ms: None,
                        peak_rss_kb: None,
                        state_writes: 0,
                        state_bytes: 0
                    }
                ),
            ]
        );
        let mut log = EventLog::open(&path).unwrap();
        let next = log
            .append(None, EventKind::RunStopping { agents: 0 })
            .unwrap();
        assert_eq!(next.seq, 9, "a line of an unknown event still counts");
    }

    #[test]
    fn sequence_continues_across_opens_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let id = id("T1");
        let mut log = EventLog::open(&path).unwrap();
        log.append(None, EventKind::RunStopping { agents: 0 })
            .unwrap();
        log.append(
            Some(&id),
            EventKind::TaskStarted {
                attempt: 1,
                title: "One".to_owned(),
                purpose: None,
                confined: false,
            },
        )
        .unwrap();
        drop(log);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":3,\"ts\":\"20").unwrap();
        drop(file);
        let mut log = EventLog::open(&path).unwrap();
        let failed = EventKind::TaskFailed {
            attempt: None,
            reason: "gone".to_owned(),
        };
        let e = log.append(Some(&id), failed).unwrap();
        assert_eq!(e.seq, 3);
        let all = read_all(&path).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(matches!(
            all[1].kind,
            EventKind::TaskStarted { attempt: 1, .. }
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"event\":\"task.started\""), "{text}");
    }

    #[test]
    fn issue_18_a_sequence_at_its_largest_is_refused_not_wrapped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let last = format!(
            "{{\"seq\":{},\"ts\":\"2026-01-01T12:00:00.123Z\",\"event\":\"task.ready\",\"id\":\"T1\"}}\n",
            u64::MAX - 1
        );
        std::fs::write(&path, &last).unwrap();
        let mut log = EventLog::open(&path).unwrap();
        let e = log
            .append(None, EventKind::RunStopping { agents: 0 })
            .unwrap();
        assert_eq!(e.seq, u64::MAX, "the largest number is still used");
        let written = std::fs::read_to_string(&path).unwrap();
        let refused = log
            .append(None, EventKind::RunStopping { agents: 0 })
            .unwrap_err();
        insta::assert_snapshot!(refused, @"`seq` reached 18446744073709551615, the largest there is, so no event can follow it in `events.jsonl`; move the file aside to start numbering again");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            written,
            "nothing was appended"
        );
        drop(log);
        let mut log = EventLog::open(&path).unwrap();
        assert!(
            log.append(None, EventKind::TaskReady).is_err(),
            "another writer refuses too"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    }

    #[test]
    fn two_writers_keep_the_sequence_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut run = EventLog::open(&path).unwrap();
        let mut hook = EventLog::open(&path).unwrap();
        let unit = id("T1");
        run.append(None, EventKind::RunStopping { agents: 1 })
            .unwrap();
        hook.append(Some(&unit), EventKind::TaskReady).unwrap();
        hook.append(Some(&unit), EventKind::TaskUnblocked).unwrap();
        run.append(None, EventKind::RunStopping { agents: 1 })
            .unwrap();
        let seqs: Vec<u64> = read_all(&path).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }
}
