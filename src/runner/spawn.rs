//! Preparing an attempt's run folder and starting its supervisor.
//!
//! An attempt has files in two places: its run folder in the state dir
//! (`prompt.md`, `spec.json`, the log) and, inside the task's worktree, the
//! folder [`AgentFiles`] names, where the agent writes its report and final
//! message. Those are inside the worktree because a sandboxed agent may
//! write nowhere else; git never sees them (the folder has the state dir's
//! name, which `info/exclude` lists), and collection moves them to the run
//! folder.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::runner::executor::{self, Placement};
use crate::runner::spec::{self, Spec};

/// The hidden subcommand that runs a supervisor.
pub const SUPERVISE_COMMAND: &str = "__supervise";

/// The files an agent writes inside its worktree (docs/config.md, "Environment variables").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFiles {
    /// The folder holding them.
    pub dir: PathBuf,
    /// `ORCH_RESULT_FILE`.
    pub result: PathBuf,
    /// `{last_message_file}`.
    pub last_message: PathBuf,
}

impl AgentFiles {
    /// Returns the files of an agent working in `worktree`.
    pub fn in_worktree(worktree: &Path) -> AgentFiles {
        use crate::config::presets::{AGENT_DIR, LAST_MESSAGE_FILE, RESULT_FILE};
        let dir = worktree.join(AGENT_DIR);
        AgentFiles {
            result: dir.join(RESULT_FILE),
            last_message: dir.join(LAST_MESSAGE_FILE),
            dir,
        }
    }

    /// Removes what an earlier attempt (or the task that had this worktree
    /// before) left, so that nothing stale is read as this attempt's.
    pub fn clear(&self) -> io::Result<()> {
        for file in [&self.result, &self.last_message] {
            match fs::remove_file(file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Everything needed to run one attempt.
#[derive(Debug, Clone)]
pub struct AttemptPlan {
    pub run_dir: PathBuf,
    /// The agent's argv, `{prompt_file}` and `{last_message_file}` not yet replaced.
    pub command: Vec<String>,
    pub agent_files: AgentFiles,
    pub prompt: String,
    pub prompt_on_stdin: bool,
    pub cwd: PathBuf,
    /// Which engine runs it, and how a job reaches the files.
    pub placement: Placement,
    /// `ORCH_*` and configured variables.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub grace: Duration,
    pub log_limit: u64,
    /// Confine the agent (docs/run.md, "What an agent may write").
    pub sandbox: Option<crate::runner::spec::Confined>,
    /// Watch the worktree while the agent runs, if it tracks at least
    /// this many files ([`crate::runner::watch`]).
    pub watch: Option<u64>,
}

/// Writes `prompt.md` and `spec.json` into a fresh run folder, and clears
/// the agent's files in the worktree; the attempt's executor decides what
/// the supervisor runs ([`executor::spec`]). `orch` is this binary.
pub fn prepare(plan: &AttemptPlan, orch: &Path) -> io::Result<Spec> {
    fs::create_dir_all(&plan.run_dir)?;
    crate::fsio::remove_if_present(&plan.run_dir.join(spec::STOP))?;
    plan.agent_files.clear()?;
    fs::create_dir_all(&plan.agent_files.dir)?;
    let prompt_path = plan.run_dir.join(spec::PROMPT);
    crate::fsio::write_atomically(&prompt_path, plan.prompt.as_bytes())?;
    let attempt = executor::Attempt {
        argv: plan.command.clone(),
        last_message: Some(plan.agent_files.last_message.clone()),
        env: plan.env.clone(),
        dir: plan.cwd.clone(),
        prompt: Some(prompt_path),
        prompt_on_stdin: plan.prompt_on_stdin,
        log: plan.run_dir.join(spec::LOG),
        log_limit: plan.log_limit,
        timeout: plan.timeout,
        grace: plan.grace,
        sandbox: plan.sandbox.clone(),
        watch: plan.watch,
    };
    let spec = executor::spec(&plan.placement, attempt, &plan.run_dir, orch);
    crate::fsio::write_json(&plan.run_dir.join(spec::SPEC), &spec)?;
    Ok(spec)
}

/// Starts `orch __supervise <spec>` from a blocking thread, in a session of
/// its own, with its own output thrown away (its log is the spec's).
pub fn spawn_supervisor_blocking(orch: &Path, spec: &Path) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(orch);
    cmd.arg(SUPERVISE_COMMAND)
        .arg(spec)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: as in `spawn_supervisor`: `setsid` is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    cmd.spawn()
}

/// Starts `orch __supervise` for a prepared run folder, in a session of its own.
pub fn spawn_supervisor(orch: &Path, run_dir: &Path) -> io::Result<tokio::process::Child> {
    let log = fs::File::create(run_dir.join("supervisor.log"))?;
    let mut cmd = tokio::process::Command::new(orch);
    cmd.arg(SUPERVISE_COMMAND)
        .arg(run_dir.join(spec::SPEC))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false);
    // SAFETY: `setsid` is async-signal-safe and touches no memory of ours;
    // it only makes the child leader of a new session, so that a terminal's
    // Ctrl-C and the coordinator's death do not reach it.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    cmd.spawn()
}
