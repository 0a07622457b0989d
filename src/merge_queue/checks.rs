//! Running policy checks on a merge candidate, in a check worktree:
//! `.orchestrator/merge/`, and `merge-2/`, `merge-3/`... when
//! `merge.max_parallel_checks` lets several candidates be checked at once.
//!
//! A check worktree belongs to orch: it is created once, detached, and
//! moved to each candidate; before each move it is reset and cleaned of
//! untracked files, but never of ignored ones, so build caches persist
//! between merges. Each check runs under a supervisor (like an agent: own
//! session and process group, timeout, capped log), with its output in
//! `checks/<full id>/<check>.log`, `<full id>` being the candidate's last
//! task. With `merge.executor = "slurm"` a check runs as a cluster job
//! (`runner::executor`): in the check worktree on the shared filesystem,
//! or, with `workspace = "git"`, in a clone of the candidate that is pushed
//! to `refs/orch/check/<full id>` on the remote. Review commands always run
//! on this machine (their prompt and the task's worktree are here).

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
    /// The candidate's last task: its folder holds the logs.
    pub task: String,
    /// Every task the candidate merges onto the target, in order.
    pub tasks: Vec<String>,
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

/// Puts check worktree `slot` at `commit`, creating it if needed.
pub fn prepare(
    repo: &Path,
    state_dir: &Path,
    slot: u32,
    commit: &str,
    admin: &Mutex<()>,
) -> Result<PathBuf, GitError> {
    let dir = StateDir::at(state_dir).check_worktree(slot);
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
    let command = Command {
        run: &check.run,
        timeout: check.timeout.0,
        folder: state_dir.check_dir(&ctx.task, &check.name),
        log: state_dir.check_log(&ctx.task, &check.name),
        env: vec![
            ("ORCH_TASK_ID".to_owned(), ctx.task.clone()),
            ("ORCH_TASKS".to_owned(), ctx.tasks.join(" ")),
            ("ORCH_CHECK".to_owned(), check.name.clone()),
            ("ORCH_MERGE_COMMIT".to_owned(), commit.to_owned()),
            ("ORCH_TARGET".to_owned(), ctx.target.clone()),
        ],
        stdin: None,
        commit: Some(commit),
    };
    run_command(ctx, &command, dir)
}

/// A command orch runs under a supervisor to judge a merge: a check, or a
/// review command.
#[derive(Debug, Clone)]
pub struct Command<'a> {
    /// Run with `sh -c`.
    pub run: &'a str,
    pub timeout: Duration,
    /// Its run folder (`spec.json`, `supervisor.json`, `exit.json`).
    pub folder: PathBuf,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
    /// Fed to its stdin.
    pub stdin: Option<PathBuf>,
    /// The candidate a check judges: it runs where `merge.executor` says
    /// (on a cluster without a shared filesystem, this commit is pushed for
    /// the job). `None`: it runs on this machine (a review command).
    pub commit: Option<&'a str>,
}

/// Runs a command in `dir` under a supervisor until it ends, is stopped
/// (`ctx.stop`), or times out.
pub fn run_command(
    ctx: &CheckRun,
    command: &Command<'_>,
    dir: &Path,
) -> Result<CheckEnd, std::io::Error> {
    let run_dir = command.folder.clone();
    std::fs::create_dir_all(&run_dir)?;
    let folder = RunFolder::new(run_dir.clone());
    for stale in [
        folder.exit_file(),
        folder.supervisor_file(),
        folder.job_file(),
        folder.stop_file(),
    ] {
        crate::fsio::remove_if_present(&stale)?;
    }
    let placement = match (command.commit, &ctx.placement, &ctx.git) {
        (None, _, _) => Placement::Local,
        (Some(commit), Placement::Slurm(cluster), Some(git)) => {
            let check_ref = format!("refs/orch/check/{}", ctx.task);
            Placement::Slurm(Box::new(Cluster {
                settings: cluster.settings.clone(),
                git: Some(GitTransport {
                    repo: git.repo.clone(),
                    remote: git.remote.clone(),
                    publish: format!("+{commit}:{check_ref}"),
                    fetch: check_ref,
                    push_back: None,
                    merge: None,
                    scratch: git.scratch.clone(),
                }),
            }))
        }
        (Some(_), placement, _) => placement.clone(),
    };
    let attempt = executor::Attempt {
        argv: vec!["sh".to_owned(), "-c".to_owned(), command.run.to_owned()],
        last_message: None,
        env: command.env.clone(),
        dir: dir.to_owned(),
        prompt_on_stdin: command.stdin.is_some(),
        prompt: command.stdin.clone(),
        log: command.log.clone(),
        log_limit: ctx.log_limit,
        timeout: command.timeout,
        grace: ctx.grace,
        sandbox: None,
        watch: None,
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
                after: command.timeout,
            }));
        }
    }
    Ok(match exit.map(|e| e.end) {
        _ if asked => CheckEnd::Stopped,
        Some(End::Exited { code: 0 }) => CheckEnd::Passed,
        Some(End::Exited { code }) => CheckEnd::Failed(CheckFailure::Exited { code }),
        Some(End::Signaled { signal }) => CheckEnd::Failed(CheckFailure::Signaled { signal }),
        Some(End::TimedOut) => CheckEnd::Failed(CheckFailure::TimedOut {
            after: command.timeout,
        }),
        Some(End::Stopped) => CheckEnd::Stopped,
        Some(End::SpawnFailed { error, .. }) => {
            CheckEnd::Failed(CheckFailure::CannotStart { error })
        }
        None => CheckEnd::Failed(CheckFailure::NoReport { status }),
    })
}
