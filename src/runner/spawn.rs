//! Preparing an attempt's run folder and starting its supervisor.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::runner::executor::{self, Placement};
use crate::runner::spec::{self, Spec};

/// The hidden subcommand that runs a supervisor.
pub const SUPERVISE_COMMAND: &str = "__supervise";

/// Everything needed to run one attempt.
#[derive(Debug, Clone)]
pub struct AttemptPlan {
    pub run_dir: PathBuf,
    /// The agent's argv, `{prompt_file}` not yet replaced.
    pub command: Vec<String>,
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
}

/// Writes `prompt.md` and `spec.json` into a fresh run folder; the
/// attempt's executor decides what the supervisor runs
/// ([`executor::spec`]). `orch` is this binary.
pub fn prepare(plan: &AttemptPlan, orch: &Path) -> io::Result<Spec> {
    fs::create_dir_all(&plan.run_dir)?;
    let prompt_path = plan.run_dir.join(spec::PROMPT);
    crate::fsio::write_atomically(&prompt_path, plan.prompt.as_bytes())?;
    let attempt = executor::Attempt {
        argv: plan.command.clone(),
        env: plan.env.clone(),
        dir: plan.cwd.clone(),
        prompt: Some(prompt_path),
        prompt_on_stdin: plan.prompt_on_stdin,
        log: plan.run_dir.join(spec::LOG),
        log_limit: plan.log_limit,
        timeout: plan.timeout,
        grace: plan.grace,
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
