//! The shapes of a run folder's files (`runs/<full id>/<attempt>/`).
//!
//! Which process writes which file, and when: [`crate::runner::folder`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::Timestamp;

pub const SPEC: &str = "spec.json";
pub const PROMPT: &str = "prompt.md";
pub const SUPERVISOR: &str = "supervisor.json";
pub const LOG: &str = "agent.log";
pub const RESULT: &str = "result.json";
pub const LAST_MESSAGE: &str = "last-message.md";
/// The files a job of the git workspace left in conflict (one per line).
pub const UNRESOLVED: &str = "unresolved";
pub const EXIT: &str = "exit.json";
/// Made by [`RunFolder::stop`](crate::runner::folder::RunFolder::stop)
/// before it looks for the supervisor; a supervisor that finds it once it
/// has recorded itself starts no agent (a stop asked for in between).
pub const STOP: &str = "stop";
pub const JOB: &str = "job.json";
/// What the agent changed in its worktree, as the supervisor watched it.
pub const CHANGES: &str = "changes.json";

/// What the supervisor must run, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The agent's argv (never run through a shell).
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Variables set for the agent on top of the supervisor's environment.
    pub env: Vec<(String, String)>,
    /// Variables removed from the agent's environment.
    pub env_remove: Vec<String>,
    /// Fed to the agent's stdin, then closed; `None`: stdin is empty.
    pub stdin: Option<PathBuf>,
    pub log: PathBuf,
    /// Bytes of output kept in the log; the rest is counted and dropped.
    pub log_limit: u64,
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL.
    #[serde(with = "millis")]
    pub grace: Duration,
    /// The cluster job `argv` submits (`orch __job`), when the attempt does
    /// not run on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSpec>,
    /// Confine the agent; `None`: it runs unconfined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Confined>,
    /// Watch `cwd` while the agent runs and write `changes.json`
    /// ([`crate::runner::watch`]) if it tracks at least this many files:
    /// the worktree was clean when the attempt started, and the agent runs
    /// on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<u64>,
}

/// A cluster job: what `orch __job` submits and waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's name, unique to the attempt: the job is found by it even
    /// before its id is known.
    pub name: String,
    /// The whole submitting command (`srun` with its options), up to and
    /// including `--`; the command run on the node follows.
    pub submit: Vec<String>,
    /// What runs on the node.
    pub argv: Vec<String>,
    /// Pushed to the remote before the job is submitted (`workspace = "git"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Publish>,
    /// `argv` confines the agent on the node (`orch __confine`): its exit
    /// code [`crate::runner::node::CANNOT_CONFINE`] means it could not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confined: bool,
}

/// A ref to push before a job starts, so that the node can fetch it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub repo: PathBuf,
    pub remote: String,
    /// What to push: `<local ref or oid>:<remote ref>`, a leading `+` to force.
    pub refspec: String,
    /// More refspecs pushed with it (the target, for a conflict hand-back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

/// `job.json`: the cluster's account of an attempt's job, written by
/// `orch __job` (or by whoever settles a job whose supervisor is gone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The executor's name (`slurm`).
    pub executor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The job's state as the cluster names it (`RUNNING`, `TIMEOUT`, `NODE_FAIL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The cluster's reason for the state, if it gives one (`TimeLimit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The job's exit code and the signal that ended it, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why the job could not be submitted at all (a push refused, no
    /// `srun`), or could not start the agent (a node that cannot confine it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a confined agent runs (docs/run.md, "What an agent may write").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confined {
    /// What it may write besides the temp folder the supervisor makes; the
    /// supervisor works out the paths (`Grant::policy`) before it starts the agent.
    pub grant: crate::runner::confine::Grant,
    /// `events.jsonl`, where the supervisor moves the commits its git hooks
    /// record in the run folder (the agent cannot write the state dir).
    pub events: PathBuf,
    /// The unit (task or subtask) those commits belong to.
    pub unit: String,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Who supervises an attempt: written when the supervisor starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub pid: u32,
    /// When the supervisor process started, in clock ticks since boot: with
    /// the pid, it tells the supervisor from a process that reused its pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// The agent's process group (its pid), once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_pgid: Option<u32>,
    /// When the agent (the group's leader) started, as `start_ticks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_start_ticks: Option<u64>,
    /// When the agent was started (after the watch of its worktree, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_started: Option<Timestamp>,
    pub started: Timestamp,
}

/// How the agent's process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum End {
    /// It exited with a code.
    Exited { code: i32 },
    /// A signal killed it (not sent by the supervisor).
    Signaled { signal: i32 },
    /// It ran past the timeout and was stopped.
    TimedOut,
    /// The supervisor was asked to stop it (cancel, Ctrl-C).
    Stopped,
    /// It could not be started at all; `transient` when trying again may
    /// work (the file is busy being written, the system is out of processes
    /// or memory), not when it is missing or not executable.
    SpawnFailed {
        error: String,
        #[serde(default)]
        transient: bool,
    },
}

/// `changes.json`: the paths an agent changed in its worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Changes {
    /// Every path the agent changed is one of these or lies under one of
    /// them (relative to the worktree; a folder stands for all it holds).
    /// `head` is the tree `HEAD` had when the watch started: the files of
    /// every other path still match it, so where `HEAD` moved since (a
    /// `git reset` that left the files as they were) is looked at too.
    Paths { head: String, paths: Vec<PathBuf> },
    /// The watch could not see everything: the worktree is scanned whole.
    Unknown { why: String },
}

/// `exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub end: End,
    pub started: Timestamp,
    pub finished: Timestamp,
    /// Bytes of output the agent produced (kept or not).
    pub output_bytes: u64,
    pub log_truncated: bool,
}

/// What an agent may report in `ORCH_RESULT_FILE` (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentResult {
    #[serde(default)]
    pub status: Option<ResultStatus>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub retry: Option<bool>,
    /// The agent hit a rate or usage limit that resets then: seconds from
    /// now, or a time (`"17:00"`, RFC 3339, `"in 2 hours"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<RetryAfter>,
}

/// When a limit an agent reports resets: seconds, or a time as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetryAfter {
    Seconds(serde_json::Number),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Done,
    Failed,
    Blocked,
}
