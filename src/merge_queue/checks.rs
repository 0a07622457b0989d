//! Running policy checks on a merge candidate, in `.orchestrator/merge/`.
//!
//! The merge worktree belongs to orch: it is created once, detached, and
//! moved to each candidate; before each move it is reset and cleaned of
//! untracked files, but never of ignored ones, so build caches persist
//! between merges. Each check runs under a supervisor (like an agent: own
//! session and process group, timeout, capped log), with its output in
//! `checks/<full id>/<check>.log`. With `merge.executor = "slurm"` the
//! check runs as a cluster job (`runner::executor`): in the merge worktree
//! on the shared filesystem, or, with `workspace = "git"`, in a clone of the
//! candidate that is pushed to `refs/orch/check/<full id>` on the remote.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Check;
use crate::git::{GitError, cmd, worktree};
use crate::runner::executor::{self, Cluster, GitTransport, Placement};
use crate::runner::folder::RunFolder;
use crate::runner::slurm::{self, JobEnd};
use crate::runner::spawn::spawn_supervisor_blocking;
use crate::runner::spec::{End, ExitRecord};
use crate::runner::terminate::signal_name;
use crate::state::StateDir;

/// What a check run needs.
#[derive(Debug, Clone)]
pub struct CheckRun {
    pub orch: PathBuf,
    pub state_dir: PathBuf,
    pub task: String,
    pub target: String,
    pub log_limit: u64,
    pub grace: Duration,
    /// Set to stop the running check (the run is stopping).
    pub stop: Arc<AtomicBool>,
    /// The pid of the running check's supervisor, for the coordinator.
    pub running: Arc<Mutex<Option<u32>>>,
    /// Where checks run (`merge.executor`, with the `[executor]` settings).
    pub placement: Placement,
    /// For checks on a cluster without a shared filesystem: the remote the
    /// candidate is pushed to, the node's scratch folder, and this repository.
    pub git: Option<CheckTransport>,
}

/// How a check job of the git workspace gets the candidate.
#[derive(Debug, Clone)]
pub struct CheckTransport {
    pub repo: PathBuf,
    pub remote: String,
    pub scratch: String,
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckEnd {
    Passed,
    Failed(CheckFailure),
    Stopped,
}

/// Why a check failed; it reads after "check `<name>` failed: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckFailure {
    #[error("exit code {code}")]
    Exited { code: i32 },
    #[error("killed by {}", signal_name(*signal))]
    Signaled { signal: i32 },
    #[error("timed out after {}", humantime::format_duration(*after))]
    TimedOut { after: Duration },
    /// Its command could not be started; `error` is the supervisor's
    /// account from `exit.json`.
    #[error("cannot start: {error}")]
    CannotStart { error: String },
    /// Its supervisor ended without writing `exit.json`.
    #[error("its supervisor ended without a report (status {status})")]
    NoReport { status: ExitStatus },
}

/// Puts the merge worktree at `commit`, creating it if needed.
pub fn prepare(
    repo: &Path,
    state_dir: &Path,
    commit: &str,
    admin: &Mutex<()>,
) -> Result<PathBuf, GitError> {
    let dir = StateDir::at(state_dir).merge_worktree();
    let known = worktree::list(repo)?
        .iter()
        .any(|e| e.path == dir && !e.prunable);
    if !known {
        let _guard = admin.lock().unwrap_or_else(|p| p.into_inner());
        worktree::prune(repo)?;
        if dir.exists() {
            return Err(GitError::PathTaken { path: dir });
        }
        cmd::run(
            repo,
            [
                "worktree".as_ref(),
                "add".as_ref(),
                "--quiet".as_ref(),
                "--detach".as_ref(),
                dir.as_os_str(),
                commit.as_ref(),
            ] as [&std::ffi::OsStr; 6],
        )?;
        return Ok(dir);
    }
    cmd::run(&dir, ["reset", "--quiet", "--hard"])?;
    cmd::run(&dir, ["clean", "--quiet", "-d", "--force"])?;
    cmd::run(&dir, ["checkout", "--quiet", "--detach", commit])?;
    Ok(dir)
}

/// Runs one check on the candidate checked out in `dir`.
pub fn run(
    ctx: &CheckRun,
    check: &Check,
    dir: &Path,
    commit: &str,
) -> Result<CheckEnd, std::io::Error> {
    let state_dir = StateDir::at(&ctx.state_dir);
    let run_dir = state_dir.check_dir(&ctx.task, &check.name);
    std::fs::create_dir_all(&run_dir)?;
    let folder = RunFolder::new(run_dir.clone());
    for stale in [
        folder.exit_file(),
        folder.supervisor_file(),
        folder.job_file(),
    ] {
        crate::fsio::remove_if_present(&stale)?;
    }
    let placement = match (&ctx.placement, &ctx.git) {
        (Placement::Slurm(cluster), Some(git)) => {
            let check_ref = format!("refs/orch/check/{}", ctx.task);
            Placement::Slurm(Box::new(Cluster {
                settings: cluster.settings.clone(),
                git: Some(GitTransport {
                    repo: git.repo.clone(),
                    remote: git.remote.clone(),
                    publish: format!("+{commit}:{check_ref}"),
                    fetch: check_ref,
                    push_back: None,
                    scratch: git.scratch.clone(),
                }),
            }))
        }
        (placement, _) => placement.clone(),
    };
    let attempt = executor::Attempt {
        argv: vec!["sh".to_owned(), "-c".to_owned(), check.run.clone()],
        last_message: None,
        env: vec![
            ("ORCH_TASK_ID".to_owned(), ctx.task.clone()),
            ("ORCH_CHECK".to_owned(), check.name.clone()),
            ("ORCH_MERGE_COMMIT".to_owned(), commit.to_owned()),
            ("ORCH_TARGET".to_owned(), ctx.target.clone()),
        ],
        dir: dir.to_owned(),
        prompt: None,
        prompt_on_stdin: false,
        log: state_dir.check_log(&ctx.task, &check.name),
        log_limit: ctx.log_limit,
        timeout: check.timeout.0,
        grace: ctx.grace,
        sandbox: None,
    };
    let spec = executor::spec(&placement, attempt, &run_dir, &ctx.orch);
    let spec_path = folder.spec_file();
    crate::fsio::write_json(&spec_path, &spec)?;
    let mut child = spawn_supervisor_blocking(&ctx.orch, &spec_path)?;
    *ctx.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(child.id());
    let mut asked = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if ctx.stop.load(Ordering::SeqCst) && !asked {
            let _ = crate::process::signal(child.id(), rustix::process::Signal::TERM);
            asked = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    *ctx.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let exit: Option<ExitRecord> = folder.load_exit()?;
    let job = folder.load_job();
    if let Some(job) = &job
        && !asked
    {
        if let Some(error) = &job.error {
            return Ok(CheckEnd::Failed(CheckFailure::CannotStart {
                error: error.clone(),
            }));
        }
        if slurm::job_end(job) == Some(JobEnd::TimeLimit) {
            return Ok(CheckEnd::Failed(CheckFailure::TimedOut {
                after: check.timeout.0,
            }));
        }
    }
    Ok(match exit.map(|e| e.end) {
        _ if asked => CheckEnd::Stopped,
        Some(End::Exited { code: 0 }) => CheckEnd::Passed,
        Some(End::Exited { code }) => CheckEnd::Failed(CheckFailure::Exited { code }),
        Some(End::Signaled { signal }) => CheckEnd::Failed(CheckFailure::Signaled { signal }),
        Some(End::TimedOut) => CheckEnd::Failed(CheckFailure::TimedOut {
            after: check.timeout.0,
        }),
        Some(End::Stopped) => CheckEnd::Stopped,
        Some(End::SpawnFailed { error, .. }) => {
            CheckEnd::Failed(CheckFailure::CannotStart { error })
        }
        None => CheckEnd::Failed(CheckFailure::NoReport { status }),
    })
}
