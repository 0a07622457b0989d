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
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

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

/// The descriptor a supervisor started by [`spawn_supervisor`] finds the
/// write end of its [`Supervisor::done`] pipe on (`--done-fd`).
const DONE_FD: i32 = 3;

/// The descriptor a supervisor started by [`start_waiting`] finds the read
/// end of its go pipe on (`--go-fd`).
const GO_FD: i32 = 4;

/// A supervisor started by [`spawn_supervisor`].
pub struct Supervisor {
    pub child: tokio::process::Child,
    /// Reaches its end once the supervisor has written `exit.json`, or is
    /// gone: whichever comes first, and the process may outlive it (closing
    /// the worktree's watch, `crate::runner::supervise`).
    pub done: tokio::net::unix::pipe::Receiver,
}

impl Supervisor {
    /// Waits for `exit.json` to be written or for the supervisor to be gone.
    pub async fn done(&mut self) {
        let mut byte = [0; 1];
        while let Ok(1..) = self.done.read(&mut byte).await {}
    }
}

/// Starts `orch __supervise` for a prepared run folder, in a session of its
/// own, with the write end of its [`Supervisor::done`] pipe as descriptor 3.
pub fn spawn_supervisor(orch: &Path, run_dir: &Path) -> io::Result<Supervisor> {
    start(orch, run_dir, None)
}

/// A supervisor started ahead of its attempt, while the task's worktree is
/// prepared: it loads (the process, its libraries, its runtime) meanwhile,
/// then waits to be told to go before it reads `spec.json` or writes
/// anything. Dropped without [`Waiting::go`], it ends without a trace: the
/// end of its go pipe tells it so, the coordinator's death included.
pub struct Waiting {
    supervisor: Supervisor,
    go: io::PipeWriter,
    run_dir: PathBuf,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("pid", &self.supervisor.child.id())
            .field("run_dir", &self.run_dir)
            .finish()
    }
}

impl Waiting {
    /// The run folder it was started for.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Tells it to go on: its run folder must be prepared. `Err` when it
    /// is gone already.
    pub fn go(mut self) -> io::Result<Supervisor> {
        use std::io::Write;
        self.go.write_all(b"g")?;
        Ok(self.supervisor)
    }
}

/// Starts `orch __supervise` for the run folder `run_dir` (made when
/// missing), waiting to be told to go (`--go-fd`); see [`Waiting`].
pub fn start_waiting(orch: &Path, run_dir: &Path) -> io::Result<Waiting> {
    fs::create_dir_all(run_dir)?;
    let (read, go) = io::pipe()?;
    let supervisor = start(orch, run_dir, Some(read.into()))?;
    Ok(Waiting {
        supervisor,
        go,
        run_dir: run_dir.to_owned(),
    })
}

/// Starts `orch __supervise`, with its done pipe as descriptor 3 and, when
/// given, the read end of its go pipe as descriptor 4 (closed here once
/// passed on, so that a write to the pipe fails once the process is gone).
fn start(orch: &Path, run_dir: &Path, go: Option<std::os::fd::OwnedFd>) -> io::Result<Supervisor> {
    let log = fs::File::create(run_dir.join("supervisor.log"))?;
    let (sender, done) = tokio::net::unix::pipe::pipe()?;
    let sender = sender.into_blocking_fd()?;
    let waits = go.is_some();
    // Above the descriptors the child's are moved to, so that no move
    // overwrites another's source (0 to 2 are replaced in the child
    // before `pre_exec` runs).
    let above = |fd: &std::os::fd::OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, GO_FD + 1);
    let moves: Vec<(std::os::fd::OwnedFd, i32)> =
        std::iter::once(above(&sender).map(|fd| (fd, DONE_FD)))
            .chain(go.iter().map(|fd| above(fd).map(|fd| (fd, GO_FD))))
            .collect::<Result<_, _>>()?;
    drop((sender, go));
    let raw: Vec<(i32, i32)> = moves.iter().map(|(fd, to)| (fd.as_raw_fd(), *to)).collect();
    let mut cmd = tokio::process::Command::new(orch);
    cmd.arg(SUPERVISE_COMMAND)
        .arg(run_dir.join(spec::SPEC))
        .arg("--done-fd")
        .arg(DONE_FD.to_string());
    if waits {
        cmd.arg("--go-fd").arg(GO_FD.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false);
    // SAFETY: `setsid` and `dup2` are async-signal-safe and touch no
    // memory of ours (`raw` is only read). `setsid` makes the child leader
    // of a new session, so that a terminal's Ctrl-C and the coordinator's
    // death do not reach it; `dup2` puts each pipe where the supervisor
    // looks for it, without close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            for (from, to) in &raw {
                if libc::dup2(*from, *to) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(moves);
    Ok(Supervisor { child, done })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a shell script with `body` in orch's place in `dir`.
    fn stand_in(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("orch");
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// The pipe is the process's descriptor 3, and its end is seen when the
    /// process closes it, while the process itself goes on.
    #[tokio::test]
    async fn the_done_pipe_ends_when_closed_not_when_the_process_ends() {
        let dir = tempfile::tempdir().unwrap();
        // In orch's place: checks its arguments, closes descriptor 3 and
        // lingers, as a supervisor closing its watch does.
        let stand_in = stand_in(
            dir.path(),
            "[ \"$1 $3 $4\" = \"__supervise --done-fd 3\" ] || exit 9\nexec 3>&-\nexec sleep 600\n",
        );
        let mut supervisor = spawn_supervisor(&stand_in, dir.path()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(60), supervisor.done()).await;
        let still_running = supervisor.child.try_wait().unwrap().is_none();
        supervisor.child.kill().await.unwrap();
        assert!(ended.is_ok(), "the pipe did not end");
        assert!(still_running, "the pipe ended with the process");
    }

    /// A supervisor started ahead reads its go pipe as descriptor 4: one
    /// told to go finds a byte there, one dropped finds the pipe's end.
    #[tokio::test]
    async fn a_supervisor_started_ahead_waits_for_its_go_or_the_pipes_end() {
        let dir = tempfile::tempdir().unwrap();
        // In orch's place: checks its arguments, and writes what it read
        // on descriptor 4 (nothing at the pipe's end) to `read`.
        let stand_in = stand_in(
            dir.path(),
            "[ \"$1 $3 $4 $5 $6\" = \"__supervise --done-fd 3 --go-fd 4\" ] || exit 9\nhead -c 1 <&4 > \"$(dirname \"$2\")/read.tmp\" && mv \"$(dirname \"$2\")/read.tmp\" \"$(dirname \"$2\")/read\"\n",
        );
        let read = |run_dir: PathBuf| async move {
            let read = run_dir.join("read");
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !read.exists() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the stand-in never read"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            fs::read(read).unwrap()
        };
        let told = dir.path().join("runs/T/1");
        let waiting = start_waiting(&stand_in, &told).unwrap();
        assert_eq!(waiting.run_dir(), told.as_path());
        let mut supervisor = waiting.go().unwrap();
        assert_eq!(read(told).await, b"g");
        assert!(supervisor.child.wait().await.unwrap().success());
        let dropped = dir.path().join("runs/T/2");
        drop(start_waiting(&stand_in, &dropped).unwrap());
        assert_eq!(read(dropped).await, b"", "the pipe's end");
    }
}
