//! `.orchestrator.toml`: the model, its defaults and its validation (DESIGN §2.2).
//!
//! Unknown keys are errors with line and column, never silently ignored.
//! Durations are humantime strings (`45m`, `1h 30m`). A missing file means
//! all defaults. Every key, with its default, is in `.orchestrator.toml.example`
//! and `docs/config.md`; a test loads the example.
//!
//! This module reads only the config: it never reads the plan or the state.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::git::merge::MergeStrategy;
pub use presets::{Agent, FinalMessage};

pub mod presets;
use crate::plan::diag::{Location, PathSeg};
use crate::plan::locate::{LineIndex, toml_offsets};
pub use crate::plan::{ExecutorChoice, ExecutorKind};

/// The name of the config file at the repository root.
pub const FILE_NAME: &str = ".orchestrator.toml";

/// A duration written as `45m`, `30s`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration `{text}`: {e} (write it like `45m`, `30s` or `1h 30m`)"
            ))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A size in bytes, written as an integer or with a unit: `20MiB`, `512 KiB`, `1GB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `20MiB`, `512 kib`, `1GB`, `4096`.
    pub fn parse(text: &str) -> Option<ByteSize> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().ok()?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            _ => return None,
        };
        number.checked_mul(factor).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(text) => ByteSize::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size `{text}` (write it like `20MiB`, `512KiB` or `1GB`)"
                ))
            }),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// The whole config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The plan file, relative to the repository root.
    pub plan: PathBuf,
    pub git: GitConfig,
    pub agent: AgentConfig,
    /// Presets a task can pick with `agent = "name"`.
    pub agents: BTreeMap<String, AgentPreset>,
    pub retry: RetryConfig,
    pub scheduling: SchedulingConfig,
    /// Named resources and how many tasks may hold each at once.
    pub resources: BTreeMap<String, u32>,
    pub hooks: HooksConfig,
    pub merge: MergeConfig,
    pub policy: PolicyConfig,
    /// Where agents (and, with `merge.executor`, checks) run.
    pub executor: ExecutorConfig,
    pub metrics: MetricsConfig,
    /// Where events are sent (`[[notify]]`, one table per destination).
    pub notify: Vec<NotifyConfig>,
    pub sandbox: SandboxConfig,
}

/// `[metrics]`: the live coordinator's Prometheus endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The address `orch run` serves `/metrics` on; unset: no endpoint.
    pub listen: Option<std::net::SocketAddr>,
}

/// One `[[notify]]` destination: which events, and where they go.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Names the destination in the outbox and in messages (default `notify-<n>`, from 1).
    pub name: Option<String>,
    /// Event names (`task.failed`, `run.finished`, ...); `*` is every event.
    pub events: Vec<String>,
    /// A URL the event is POSTed to as JSON, signed as Standard Webhooks describes.
    pub webhook: Option<String>,
    /// The signing secret (`whsec_` and base64, as Standard Webhooks writes it).
    pub secret: Option<String>,
    /// An environment variable holding the secret instead (kept out of the repository).
    pub secret_env: Option<String>,
    /// A command (argv, never run through a shell) that gets the event as JSON on stdin.
    pub command: Option<Vec<String>>,
    /// How long one delivery may take; longer is a failure.
    #[serde(default = "default_notify_timeout")]
    pub timeout: Dur,
    /// The waits between attempts after the first, immediate one; each is
    /// stretched by a random 0 to 20 %.
    #[serde(default = "default_notify_retry")]
    pub retry: Vec<Dur>,
}

fn default_notify_timeout() -> Dur {
    Dur(Duration::from_secs(15))
}

/// The schedule webhook providers use: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub fn default_notify_retry() -> Vec<Dur> {
    [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
        .into_iter()
        .map(|s| Dur(Duration::from_secs(s)))
        .collect()
}

impl NotifyConfig {
    /// Returns the destination's name: its own, else `notify-<n>` for the
    /// `n`th table (from 1).
    pub fn name_at(&self, n: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("notify-{}", n + 1))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            plan: PathBuf::from("plan.toml"),
            git: GitConfig::default(),
            agent: AgentConfig::default(),
            agents: BTreeMap::new(),
            retry: RetryConfig::default(),
            scheduling: SchedulingConfig::default(),
            resources: BTreeMap::new(),
            hooks: HooksConfig::default(),
            merge: MergeConfig::default(),
            policy: PolicyConfig::default(),
            executor: ExecutorConfig::default(),
            metrics: MetricsConfig::default(),
            notify: Vec::new(),
            sandbox: SandboxConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitConfig {
    /// The branch work is merged into; unset means the branch checked out at the root.
    pub target: Option<String>,
    pub branch_prefix: String,
    /// Where task worktrees go, relative to the repository root; `{repo}` is its folder name.
    pub worktree_root: String,
    pub merge_strategy: MergeStrategy,
    /// A worktree tracking at least this many files is watched while its
    /// agent runs, instead of scanned when it ends (docs/architecture.md,
    /// "What a task costs"); 0 watches every one.
    pub watch_min_files: u64,
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            target: None,
            branch_prefix: "orch/".to_owned(),
            worktree_root: "../{repo}.worktrees".to_owned(),
            merge_strategy: MergeStrategy::Merge,
            watch_min_files: 20_000,
        }
    }
}

/// How the prompt reaches the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PromptMode {
    #[default]
    Stdin,
    File,
}

/// What one agent run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentUnit {
    #[default]
    Task,
    Subtask,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The preset tasks run when they name none (`claude` when neither
    /// this nor `command` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// An agent of one's own instead of a preset: its argv, never run
    /// through a shell. `{prompt_file}` and `{last_message_file}` are replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    pub prompt: PromptMode,
    /// Where the agent's final message is read from (for its summary).
    pub final_message: FinalMessage,
    /// Files the agent leaves in the worktree that must never be committed.
    pub exclude: Vec<String>,
    pub unit: AgentUnit,
    pub timeout: Dur,
    pub max_parallel: u32,
    /// Commit what the agent left uncommitted.
    pub auto_commit: bool,
    /// How long an agent has between SIGTERM and SIGKILL.
    pub grace: Dur,
    /// Output kept in `agent.log`; the rest is dropped with a marker.
    pub log_limit: ByteSize,
    /// Extra environment variables for the agent.
    pub env: BTreeMap<String, String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            preset: None,
            command: None,
            prompt: PromptMode::Stdin,
            final_message: FinalMessage::Output,
            exclude: Vec::new(),
            unit: AgentUnit::Task,
            timeout: Dur(Duration::from_secs(45 * 60)),
            max_parallel: 4,
            auto_commit: true,
            grace: Dur(Duration::from_secs(10)),
            log_limit: ByteSize(20 << 20),
            env: BTreeMap::new(),
        }
    }
}

/// A named agent a task can pick: a built-in preset
/// ([`presets::builtin`]) changed key by key, or one of the user's own.
/// Unset keys come from the built-in preset of that name, then `[agent]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPreset {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Added to the built-in preset's and to `agent.env`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_message: Option<FinalMessage>,
    /// Exit codes of this agent never retried (on top of `retry.permanent_exit_codes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent_exit_codes: Option<Vec<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    /// Exit codes that mean the agent hit a rate or usage limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_exit_codes: Option<Vec<i32>>,
    /// Regular expressions that, found in the output of an attempt that
    /// failed, mean it hit a rate or usage limit; a group named `reset`
    /// says when the limit resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_patterns: Option<Vec<String>>,
    /// Where its JSON output reports tokens and cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<presets::UsagePaths>,
    /// Where its output names its session (`"json.<field>"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<presets::JsonField>,
    /// The argv that continues session `{session_id}`; comes with `command`
    /// (a table that sets `command` and not this one resumes nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub transient_exit_codes: Vec<i32>,
    pub permanent_exit_codes: Vec<i32>,
    /// How long an agent pauses after a rate or usage limit that named no reset time.
    pub limit_pause: LimitPause,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            backoff: Backoff::default(),
            transient_exit_codes: vec![75],
            permanent_exit_codes: vec![2],
            limit_pause: LimitPause::default(),
        }
    }
}

/// The pause after a rate or usage limit that named no reset time (or one
/// already past): `initial`, times `factor` for each further limit the
/// agent hits in a row, at most `max`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitPause {
    pub initial: Dur,
    pub factor: f64,
    pub max: Dur,
}

impl Default for LimitPause {
    fn default() -> Self {
        LimitPause {
            initial: Dur(Duration::from_secs(5 * 60)),
            factor: 2.0,
            max: Dur(Duration::from_secs(60 * 60)),
        }
    }
}

impl LimitPause {
    /// Returns the pause after the `hits`th limit in a row (1 or more).
    pub fn after(&self, hits: u32) -> Duration {
        let exponent = hits.saturating_sub(1).min(64) as i32;
        let raw = self.initial.0.as_secs_f64() * self.factor.powi(exponent);
        Duration::from_secs_f64(raw.min(self.max.0.as_secs_f64()).max(0.0))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    pub initial: Dur,
    pub factor: f64,
    pub max: Dur,
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Dur(Duration::from_secs(30)),
            factor: 2.0,
            max: Dur(Duration::from_secs(600)),
            jitter: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulingConfig {
    pub phase_barrier: bool,
    /// A waiting ready task gains one priority level per period; `0s` turns aging off.
    pub aging: Dur,
    /// Hold back a ready task whose `context` globs match a path a running
    /// task changed (the conflict radar).
    pub avoid_overlap: bool,
}

impl Default for SchedulingConfig {
    fn default() -> Self {
        SchedulingConfig {
            phase_barrier: true,
            aging: Dur(Duration::from_secs(600)),
            avoid_overlap: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    pub post_create: Vec<String>,
    pub post_agent: Vec<String>,
    pub post_merge: Vec<String>,
    /// Install the git hooks of DESIGN §8 when `orch run` starts.
    pub install: bool,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            post_create: Vec::new(),
            post_agent: Vec::new(),
            post_merge: Vec::new(),
            install: true,
        }
    }
}

/// What to do when a merge needs a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Hand the task back to its agent.
    #[default]
    Agent,
    /// Wait for a person.
    Stop,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MergeConfig {
    /// `false` is the same as `orch run --no-merge`.
    pub enabled: bool,
    pub on_conflict: OnFailure,
    pub on_check_failure: OnFailure,
    /// Delete a task's branch once its work is in the target.
    pub delete_branch: bool,
    /// Remove a task's worktree once merged (else it is kept for reuse).
    pub remove_worktree: bool,
    /// The most tasks one candidate merges before its checks run (1: each
    /// task is checked on its own).
    pub batch: u32,
    /// The most check runs at once, each in its own check worktree:
    /// candidates checked on top of one still being checked, and the halves
    /// of a red batch.
    pub max_parallel_checks: u32,
    /// Where policy checks run: `local`, or `slurm` with the `[executor]` settings.
    pub executor: ExecutorKind,
}

/// The default of `merge.batch`.
pub const DEFAULT_BATCH: u32 = 8;
/// The default of `merge.max_parallel_checks`.
pub const DEFAULT_PARALLEL_CHECKS: u32 = 2;

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig {
            enabled: true,
            on_conflict: OnFailure::Agent,
            on_check_failure: OnFailure::Agent,
            delete_branch: true,
            remove_worktree: false,
            batch: DEFAULT_BATCH,
            max_parallel_checks: DEFAULT_PARALLEL_CHECKS,
            executor: ExecutorKind::Local,
        }
    }
}

/// How a job reaches the task's files (docs/scaling.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceMode {
    /// Worktrees (and the repository with its state dir) are on a
    /// filesystem the nodes see: the job runs in the worktree itself.
    #[default]
    Shared,
    /// No shared filesystem: the job fetches the task branch from
    /// `executor.remote`, runs the agent in a clone, and pushes the branch back.
    Git,
}

/// `[executor]`: where agents run, and with what resources.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    pub kind: ExecutorKind,
    pub workspace: WorkspaceMode,
    /// `workspace = "git"`: the remote (URL or path) both this machine and
    /// the nodes reach.
    pub remote: Option<String>,
    /// `workspace = "git"`: the folder on the node where jobs clone (an
    /// absolute path; each attempt takes a folder inside it).
    pub scratch: String,
    pub partition: Option<String>,
    pub account: Option<String>,
    /// CPUs per task (`--cpus-per-task`).
    pub cpus: Option<u32>,
    /// Memory per node, as Slurm writes it (`--mem`, `8G`).
    pub mem: Option<String>,
    /// Generic resources (`--gres`, `gpu:1`).
    pub gres: Option<String>,
    /// More `srun` options, passed as they are.
    pub extra_args: Vec<String>,
    /// How long a job may wait in the cluster's queue before it starts; the
    /// time limit (`--time`) is the task's timeout and counts from the start.
    pub queue_wait: Dur,
    /// The `orch` binary on the nodes, which confines the agent there
    /// (`orch __confine`); unset: the path of the `orch` that runs.
    pub orch: Option<String>,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            kind: ExecutorKind::Local,
            workspace: WorkspaceMode::Shared,
            remote: None,
            scratch: "/tmp".to_owned(),
            partition: None,
            account: None,
            cpus: None,
            mem: None,
            gres: None,
            extra_args: Vec::new(),
            queue_wait: Dur(Duration::from_secs(3600)),
            orch: None,
        }
    }
}

impl ExecutorConfig {
    /// Returns the settings a task runs with: `[executor]`, overridden by
    /// the task's own `executor` choice.
    pub fn resolve(&self, choice: Option<&ExecutorChoice>) -> ExecutorConfig {
        let mut out = self.clone();
        let Some(c) = choice else {
            return out;
        };
        if let Some(kind) = c.kind {
            out.kind = kind;
        }
        let or = |mine: &Option<String>, base: Option<String>| mine.clone().or(base);
        out.partition = or(&c.partition, out.partition);
        out.account = or(&c.account, out.account);
        out.mem = or(&c.mem, out.mem);
        out.gres = or(&c.gres, out.gres);
        out.cpus = c.cpus.or(out.cpus);
        if let Some(extra) = &c.extra_args {
            out.extra_args = extra.clone();
        }
        out
    }
}

/// What agents (and the `post_create` and `post_agent` hooks) may write
/// (docs/config.md `[sandbox]`, docs/run.md "What an agent may write").
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Confine them where the kernel can (Landlock); `false` says loudly that they are not.
    pub enabled: bool,
    /// Paths they may write besides their worktree, its git paths, their run
    /// folder and a private temp folder: absolute, `~/…` for the home
    /// folder, or `$VAR…` for a folder an environment variable names (left
    /// out when it is unset). Setting it replaces [`DEFAULT_ALLOW_WRITE`].
    pub allow_write: Vec<String>,
    /// `false` refuses TCP `bind` and `connect` (Landlock ABI 4, Linux 6.7).
    pub network: bool,
}

/// What agents may write by default besides their own folders: the agent
/// CLIs' own config and cache folders, and the common caches.
pub const DEFAULT_ALLOW_WRITE: &[&str] = &[
    "~/.claude",
    "~/.claude.json",
    "$CLAUDE_CONFIG_DIR",
    "~/.codex",
    "$CODEX_HOME",
    "~/.gemini",
    "~/.aider",
    "~/.cache",
    "~/.npm",
];

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: true,
            allow_write: DEFAULT_ALLOW_WRITE
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            network: true,
        }
    }
}

impl SandboxConfig {
    /// Returns `allow_write` with `~` made the home folder and `$VAR` the
    /// folder `var` says the variable holds; an entry whose folder is unknown
    /// (no home folder, an unset or empty variable) is left out.
    pub fn allow_write_paths(
        &self,
        home: Option<&Path>,
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Vec<PathBuf> {
        self.allow_write
            .iter()
            .filter_map(|p| {
                if let Some(rest) = p.strip_prefix('~') {
                    return home.map(|h| h.join(rest.trim_start_matches('/')));
                }
                if let Some(rest) = p.strip_prefix('$') {
                    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
                    let base = var(name).filter(|v| !v.is_empty())?;
                    let base = PathBuf::from(base);
                    return Some(if tail.is_empty() {
                        base
                    } else {
                        base.join(tail)
                    });
                }
                Some(PathBuf::from(p))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub checks: Vec<Check>,
    pub forbidden_paths: Vec<String>,
    pub max_changed_files: Option<u32>,
    pub max_changed_lines: Option<u32>,
    /// Every commit of a task must carry its `Orch-Task:` trailer.
    pub require_trailer: bool,
    /// Reviews after the checks (`[[policy.review]]`), each of which must
    /// approve a task before it lands.
    pub review: Vec<Review>,
}

impl PolicyConfig {
    /// Compiles `forbidden_paths`.
    pub fn forbidden(&self) -> Result<ForbiddenPaths, BadGlob> {
        ForbiddenPaths::new(&self.forbidden_paths)
    }
}

/// `policy.forbidden_paths` with its globs compiled.
///
/// Compiled here rather than in the merge queue's policy because the
/// config's validation and the `pre-commit` hook need it too, and neither
/// may depend on the merge queue.
#[derive(Debug, Clone)]
pub struct ForbiddenPaths {
    set: GlobSet,
    patterns: Vec<String>,
}

/// A `policy.forbidden_paths` glob that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid glob `{pattern}` in `policy.forbidden_paths`")]
pub struct BadGlob {
    pub pattern: String,
    #[source]
    pub source: globset::Error,
}

impl ForbiddenPaths {
    /// Compiles the patterns; the error names the one that does not parse.
    pub fn new(patterns: &[String]) -> Result<ForbiddenPaths, BadGlob> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = Glob::new(pattern).map_err(|source| BadGlob {
                pattern: pattern.clone(),
                source,
            })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|source| BadGlob {
            pattern: patterns.join(", "),
            source,
        })?;
        Ok(ForbiddenPaths {
            set,
            patterns: patterns.to_vec(),
        })
    }

    /// Returns the first pattern `path` matches, if any.
    pub fn matching(&self, path: &str) -> Option<&str> {
        let hits = self.set.matches(path);
        hits.first().map(|i| self.patterns[*i].as_str())
    }
}

/// A command that must pass on the merged result.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    /// Run with `sh -c` in `.orchestrator/merge/`.
    pub run: String,
    #[serde(default = "default_check_timeout")]
    pub timeout: Dur,
}

fn default_check_timeout() -> Dur {
    Dur(Duration::from_secs(20 * 60))
}

/// A review a task must pass after its checks (`[[policy.review]]`): a
/// command whose verdict gates the merge, or a person (`manual = true`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    pub name: String,
    /// Run with `sh -c` in the task's worktree, the review prompt on stdin
    /// and in `$ORCH_PROMPT_FILE`. Exit 0 approves, unless it wrote a
    /// verdict to `$ORCH_REVIEW_FILE`.
    #[serde(default)]
    pub run: Option<String>,
    /// A person approves (`orch approve`) or rejects (`orch reject`).
    #[serde(default)]
    pub manual: bool,
    #[serde(default = "default_check_timeout")]
    pub timeout: Dur,
}

/// Returns the folder task worktrees go in: `worktree_root` with `{repo}`
/// replaced, relative to the repository root, normalized without touching
/// the disk.
pub fn worktree_root(repo_root: &Path, template: &str) -> PathBuf {
    let name = repo_root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".to_owned());
    normalize(&repo_root.join(template.replace("{repo}", &name)))
}

/// Removes `.` and resolves `..` lexically.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A config that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{}: {message}", path.display(), at_text(.location))]
    Invalid {
        path: PathBuf,
        location: Option<Location>,
        message: String,
    },
}

impl ConfigError {
    /// Returns the error naming the file as `shown` (a path relative to the user).
    pub fn shown_as(mut self, shown: &Path) -> ConfigError {
        match &mut self {
            ConfigError::Read { path, .. } | ConfigError::Invalid { path, .. } => {
                *path = shown.to_owned();
            }
        }
        self
    }
}

fn at_text(location: &Option<Location>) -> String {
    location
        .map(|l| l.to_string())
        .unwrap_or_else(|| "?".to_owned())
}

/// A loaded config and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// `None` when no file exists and defaults apply.
    pub path: Option<PathBuf>,
}

impl Config {
    /// Reads the config at `path`; a missing file gives the defaults when `optional`.
    pub fn load(path: &Path, optional: bool) -> Result<Loaded, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Loaded {
                    config: Config::default(),
                    path: None,
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let config = Config::from_text(path, &text)?;
        Ok(Loaded {
            config,
            path: Some(path.to_owned()),
        })
    }

    /// Parses and validates config text; `path` names it in messages.
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let lines = LineIndex::new(text);
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            location: e.span().map(|s| lines.location(s.start)),
            message: e.message().trim_end().to_owned(),
        })?;
        if let Some((keys, message)) = config.first_problem() {
            let segs: Vec<PathSeg> = keys.iter().map(|k| PathSeg::Key((*k).to_owned())).collect();
            let offset = toml_offsets(text, &[segs]).pop().flatten();
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                location: offset.map(|o| lines.location(o)),
                message,
            });
        }
        Ok(config)
    }

    /// Refuses what only the repository's place tells: a `git.worktree_root`
    /// inside the repository at `repo_root`, where every task worktree would
    /// be a copy of the repository inside the user's checkout. `path` is the
    /// config file, read again to point at the key.
    pub fn check_placement(&self, path: &Path, repo_root: &Path) -> Result<(), ConfigError> {
        let root = worktree_root(repo_root, &self.git.worktree_root);
        if !root.starts_with(repo_root) {
            return Ok(());
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines = LineIndex::new(&text);
        let key = vec![
            PathSeg::Key("git".to_owned()),
            PathSeg::Key("worktree_root".to_owned()),
        ];
        let offset = toml_offsets(&text, &[key]).pop().flatten();
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            location: offset.map(|o| lines.location(o)),
            message: format!(
                "`git.worktree_root` `{}` is inside the repository (`{}`): every task worktree would be a copy of the repository in your checkout; put them beside it, like the default `../{{repo}}.worktrees`",
                self.git.worktree_root,
                root.display()
            ),
        })
    }

    /// Returns the first value that parses but makes no sense, with its key path.
    fn first_problem(&self) -> Option<(Vec<&str>, String)> {
        if let Some(problem) = self.agent_problem() {
            return Some(problem);
        }
        if self.agent.max_parallel == 0 {
            return Some((
                vec!["agent", "max_parallel"],
                "`agent.max_parallel` must be at least 1".to_owned(),
            ));
        }
        if self.agent.timeout.0.is_zero() {
            return Some((
                vec!["agent", "timeout"],
                "`agent.timeout` must be longer than zero".to_owned(),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Some((
                vec!["retry", "max_attempts"],
                "`retry.max_attempts` must be at least 1".to_owned(),
            ));
        }
        let factor = self.retry.backoff.factor;
        if !(factor.is_finite() && factor >= 1.0) {
            return Some((
                vec!["retry", "backoff"],
                format!("`retry.backoff.factor` must be 1.0 or more, not {factor}"),
            ));
        }
        let factor = self.retry.limit_pause.factor;
        if !(factor.is_finite() && factor >= 1.0) {
            return Some((
                vec!["retry", "limit_pause"],
                format!("`retry.limit_pause.factor` must be 1.0 or more, not {factor}"),
            ));
        }
        if let Some(code) = self
            .retry
            .transient_exit_codes
            .iter()
            .find(|c| self.retry.permanent_exit_codes.contains(c))
        {
            return Some((
                vec!["retry", "permanent_exit_codes"],
                format!("exit code {code} is listed as both transient and permanent"),
            ));
        }
        let probe = format!("refs/heads/{}x", self.git.branch_prefix);
        if !git2::Reference::is_valid_name(&probe) {
            return Some((
                vec!["git", "branch_prefix"],
                format!(
                    "`git.branch_prefix` `{}` does not make valid branch names",
                    self.git.branch_prefix
                ),
            ));
        }
        if let Some(target) = &self.git.target
            && !git2::Branch::name_is_valid(target).unwrap_or(false)
        {
            return Some((
                vec!["git", "target"],
                format!("`git.target` `{target}` is not a valid branch name"),
            ));
        }
        let unknown_placeholder = self
            .git
            .worktree_root
            .replace("{repo}", "")
            .contains(['{', '}']);
        if unknown_placeholder {
            return Some((
                vec!["git", "worktree_root"],
                format!(
                    "`git.worktree_root` `{}` uses a placeholder other than `{{repo}}`",
                    self.git.worktree_root
                ),
            ));
        }
        if let Some(problem) = self.executor_problem() {
            return Some(problem);
        }
        if let Err(e) = self.policy.forbidden() {
            return Some((vec!["policy", "forbidden_paths"], e.to_string()));
        }
        let mut destinations = std::collections::BTreeSet::new();
        for (n, notify) in self.notify.iter().enumerate() {
            let name = notify.name_at(n);
            let problem = if crate::plan::model::check_local_id(&name).is_err() {
                Some(format!(
                    "notify name `{name}` may use only letters, digits, `_` and `-` (it names outbox files)"
                ))
            } else if !destinations.insert(name.clone()) {
                Some(format!("notify `{name}` is defined twice"))
            } else if notify.webhook.is_some() == notify.command.is_some() {
                Some(format!(
                    "notify `{name}` needs exactly one of `webhook` and `command`"
                ))
            } else if notify.command.as_ref().is_some_and(|c| c.is_empty()) {
                Some(format!("notify `{name}`: `command` is empty"))
            } else if notify.events.is_empty() {
                Some(format!(
                    "notify `{name}` has no `events`; list their names, or `*` for all"
                ))
            } else if notify.secret.is_some() && notify.secret_env.is_some() {
                Some(format!(
                    "notify `{name}` has both `secret` and `secret_env`; keep one"
                ))
            } else if notify.webhook.is_none()
                && (notify.secret.is_some() || notify.secret_env.is_some())
            {
                Some(format!("notify `{name}`: a secret only signs a `webhook`"))
            } else if let Some(url) = notify
                .webhook
                .as_ref()
                .filter(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                Some(format!(
                    "notify `{name}`: webhook `{url}` must start with `http://` or `https://`"
                ))
            } else if notify.timeout.0.is_zero() {
                Some(format!(
                    "notify `{name}`: `timeout` must be longer than zero"
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Some((vec!["notify"], problem));
            }
        }
        if let Some(path) = self.sandbox.allow_write.iter().find(|p| {
            let var = p
                .strip_prefix('$')
                .map(|r| r.split('/').next().unwrap_or(""));
            let var_ok = var.is_some_and(|v| {
                !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            !(p.starts_with('/') || *p == "~" || p.starts_with("~/") || var_ok)
        }) {
            return Some((
                vec!["sandbox", "allow_write"],
                format!(
                    "`sandbox.allow_write` entry `{path}` must be absolute, or start with `~/` or `$VAR`"
                ),
            ));
        }
        if self.merge.batch == 0 {
            return Some((
                vec!["merge", "batch"],
                "`merge.batch` must be at least 1".to_owned(),
            ));
        }
        if self.merge.max_parallel_checks == 0 {
            return Some((
                vec!["merge", "max_parallel_checks"],
                "`merge.max_parallel_checks` must be at least 1".to_owned(),
            ));
        }
        let mut reviewers = std::collections::BTreeSet::new();
        for review in &self.policy.review {
            let name = &review.name;
            let problem = if crate::plan::model::check_local_id(name).is_err() {
                Some(format!(
                    "review name `{name}` may use only letters, digits, `_` and `-` (it names a log file)"
                ))
            } else if !reviewers.insert(name.as_str()) {
                Some(format!("review `{name}` is defined twice"))
            } else if review.manual == review.run.is_some() {
                Some(format!(
                    "review `{name}` needs exactly one of `run` and `manual = true`"
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Some((vec!["policy", "review"], problem));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for check in &self.policy.checks {
            if crate::plan::model::check_local_id(&check.name).is_err() {
                return Some((
                    vec!["policy", "checks"],
                    format!(
                        "check name `{}` may use only letters, digits, `_` and `-` (it names a log file)",
                        check.name
                    ),
                ));
            }
            if !names.insert(check.name.as_str()) {
                return Some((
                    vec!["policy", "checks"],
                    format!("check `{}` is defined twice", check.name),
                ));
            }
        }
        None
    }

    /// Returns what makes no sense in `[executor]`, with its key path.
    fn executor_problem(&self) -> Option<(Vec<&str>, String)> {
        let e = &self.executor;
        if e.workspace == WorkspaceMode::Git {
            if e.remote.as_deref().is_none_or(str::is_empty) {
                return Some((
                    vec!["executor", "workspace"],
                    "`executor.workspace = \"git\"` needs `executor.remote`, a remote the nodes reach"
                        .to_owned(),
                ));
            }
            if !e.scratch.starts_with('/') {
                return Some((
                    vec!["executor", "scratch"],
                    format!(
                        "`executor.scratch` `{}` must be an absolute path",
                        e.scratch
                    ),
                ));
            }
        }
        if let Some(orch) = e.orch.as_deref()
            && !orch.starts_with('/')
        {
            return Some((
                vec!["executor", "orch"],
                format!("`executor.orch` `{orch}` must be an absolute path"),
            ));
        }
        if e.cpus == Some(0) {
            return Some((
                vec!["executor", "cpus"],
                "`executor.cpus` must be at least 1".to_owned(),
            ));
        }
        None
    }

    /// Returns the scheduler's limits, with `max_parallel` (`--max-parallel`)
    /// in place of `agent.max_parallel` when given.
    ///
    /// `orch run`, `orch run --dry-run` and `orch plan next` all take their
    /// limits from here, so `plan next` lists tasks in the order `run` starts
    /// them. The config knows the scheduler, not the other way round: the
    /// scheduler stays a pure function of plan, snapshot, time and limits.
    pub fn limits(&self, max_parallel: Option<usize>) -> crate::schedule::Limits {
        crate::schedule::Limits {
            max_parallel: max_parallel.unwrap_or(self.agent.max_parallel as usize),
            resources: self.resources.clone(),
            phase_barrier: self.scheduling.phase_barrier,
            aging: Some(self.scheduling.aging.0).filter(|a| !a.is_zero()),
        }
    }

    /// Returns what the config adds to plan validation.
    pub fn plan_rules(&self) -> crate::plan::Rules {
        crate::plan::Rules {
            phase_barrier: self.scheduling.phase_barrier,
            resources: Some(self.resources.clone()),
            agents: Some(self.agent_names().into_iter().collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(Path::new(".orchestrator.toml"), text)
    }

    /// Collects the dotted key paths of a TOML table.
    fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) if !t.is_empty() => keys(&path, t, out),
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn allow_write_expands_the_home_folder_and_variables() {
        let sandbox = SandboxConfig {
            allow_write: [
                "~/.cache",
                "$CODEX_HOME",
                "$CODEX_HOME/logs",
                "$UNSET",
                "/opt/x",
            ]
            .map(str::to_owned)
            .to_vec(),
            ..SandboxConfig::default()
        };
        let var = |name: &str| (name == "CODEX_HOME").then(|| std::ffi::OsString::from("/c"));
        assert_eq!(
            sandbox.allow_write_paths(Some(Path::new("/home/u")), var),
            ["/home/u/.cache", "/c", "/c/logs", "/opt/x"].map(PathBuf::from)
        );
        assert_eq!(
            sandbox.allow_write_paths(None, |_| None),
            [PathBuf::from("/opt/x")]
        );
    }

    #[test]
    fn the_example_loads_and_names_every_key() {
        let example = include_str!("../.orchestrator.toml.example");
        parse(example).unwrap();
        let mut default = Config::default();
        default.git.target = Some("main".to_owned());
        default.policy.max_changed_files = Some(0);
        let table = toml::Table::try_from(&default).unwrap();
        let mut all = Vec::new();
        keys("", &table, &mut all);
        for key in all {
            let last = key.rsplit('.').next().unwrap();
            let named = example.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{last} ="))
                    || l.starts_with(&format!("[{key}]"))
                    || l.starts_with(&format!("[[{key}]]"))
                    || l.starts_with(&format!("[{key}."))
            });
            assert!(named, "`{key}` is missing from .orchestrator.toml.example");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("20MiB"), Some(ByteSize(20 << 20)));
        assert_eq!(ByteSize::parse("512 kib"), Some(ByteSize(512 << 10)));
        assert_eq!(ByteSize::parse("1GB"), Some(ByteSize(1_000_000_000)));
        assert_eq!(ByteSize::parse("4096"), Some(ByteSize(4096)));
        assert_eq!(ByteSize::parse("lots"), None);
        assert_eq!(
            parse("[agent]\nlog_limit = 1024\n")
                .unwrap()
                .agent
                .log_limit,
            ByteSize(1024)
        );
    }

    #[test]
    fn empty_config_is_all_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.agent.max_parallel, 4);
        assert_eq!(config.agent.timeout, Dur(Duration::from_secs(2700)));
        assert_eq!(config.git.branch_prefix, "orch/");
        assert!(config.scheduling.phase_barrier);
        assert_eq!(config.retry.transient_exit_codes, [75]);
    }

    #[test]
    fn durations_are_parsed_by_humantime() {
        let config =
            parse("[agent]\ntimeout = \"1h 30m\"\n[retry.backoff]\ninitial = \"5s\"\n").unwrap();
        assert_eq!(config.agent.timeout.0, Duration::from_secs(5400));
        assert_eq!(config.retry.backoff.initial.0, Duration::from_secs(5));
        let err = parse("[agent]\ntimeout = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(".orchestrator.toml:2:11: invalid duration `soon`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let err = parse("[agent]\nmax_paralel = 3\n").unwrap_err().to_string();
        assert!(
            err.starts_with(".orchestrator.toml:2:1: unknown field `max_paralel`"),
            "{err}"
        );
    }

    #[test]
    fn nonsense_values_name_their_key() {
        let err = parse("[agent]\nmax_parallel = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            ".orchestrator.toml:2:1: `agent.max_parallel` must be at least 1"
        );
        let err = parse("[git]\nbranch_prefix = \"a..b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not make valid branch names"), "{err}");
        let err = parse("[retry]\ntransient_exit_codes = [2]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("both transient and permanent"), "{err}");
    }

    #[test]
    fn a_task_overrides_the_executor_settings() {
        let config = parse(
            "[executor]\nkind = \"slurm\"\npartition = \"batch\"\ncpus = 2\nextra_args = [\"--exclusive\"]\n",
        )
        .unwrap();
        let choice = ExecutorChoice {
            cpus: Some(8),
            gres: Some("gpu:1".to_owned()),
            ..ExecutorChoice::default()
        };
        let task = config.executor.resolve(Some(&choice));
        assert_eq!(task.kind, ExecutorKind::Slurm);
        assert_eq!(task.partition.as_deref(), Some("batch"));
        assert_eq!(task.cpus, Some(8));
        assert_eq!(task.gres.as_deref(), Some("gpu:1"));
        assert_eq!(task.extra_args, ["--exclusive"]);
        let local = ExecutorChoice {
            kind: Some(ExecutorKind::Local),
            ..ExecutorChoice::default()
        };
        assert_eq!(
            config.executor.resolve(Some(&local)).kind,
            ExecutorKind::Local
        );
        assert_eq!(config.executor.resolve(None), config.executor);
    }

    #[test]
    fn the_git_workspace_needs_a_remote_and_hands_conflicts_back() {
        let err = parse("[executor]\nkind = \"slurm\"\nworkspace = \"git\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs `executor.remote`"), "{err}");
        let config = parse("[executor]\nworkspace = \"git\"\nremote = \"r.git\"\n").unwrap();
        assert_eq!(config.merge.on_conflict, OnFailure::Agent);
        parse("[executor]\nworkspace = \"git\"\nremote = \"r.git\"\n[merge]\non_conflict = \"stop\"\n")
            .unwrap();
        let err = parse("[executor]\nworkspace = \"git\"\nremote = \"r.git\"\nscratch = \"tmp\"\n[merge]\non_conflict = \"stop\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be an absolute path"), "{err}");
    }
}
