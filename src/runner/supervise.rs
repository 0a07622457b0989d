//! The supervisor: `orch __supervise <spec.json>`, one per attempt.
//!
//! Started by the coordinator in a session of its own. It outlives the
//! coordinator if need be; everything it knows is in the run folder.
//!
//! Theory of operation:
//! 1. install signal handlers (TERM, INT, HUP), then write `supervisor.json`,
//!    then look for a stop asked before it (by `orch cancel`, or by a
//!    restart that found no `supervisor.json`: `RunFolder::settle`), which
//!    ends the attempt before any agent starts;
//! 2. when the spec confines the agent and the agent runs here: make its
//!    private temp folder (`TMPDIR`) and build the Landlock ruleset, before
//!    the fork; a ruleset that cannot be built is a failure to start, never
//!    an unconfined run. A cluster job's agent runs on a node and is
//!    confined there (`crate::runner::node`); what runs here is `orch
//!    __job` and `srun`, unconfined;
//! 3. spawn the agent in a new process group with the prompt on stdin, its
//!    stdout and stderr into one capped `agent.log`; a confined agent
//!    restricts itself in `pre_exec` (two async-signal-safe system calls,
//!    see `crate::sandbox`);
//! 4. wait for the first of: the agent exits, the timeout, a signal. On a
//!    timeout or a first signal: SIGTERM to the group, SIGKILL after the grace
//!    period; a second signal means SIGKILL now. Meanwhile, twice a second,
//!    the commits a confined agent's git hooks recorded in the run folder are
//!    moved into `events.jsonl`, which the agent cannot write;
//! 5. whatever the agent left in its group is stopped too, the last commits
//!    are moved, the temp folder is removed;
//! 6. when the spec asks for it, the worktree was watched from just before
//!    the agent started (`crate::runner::watch`): what changed goes to
//!    `changes.json`;
//! 7. `exit.json` is written atomically, last.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use rustix::io::FdFlags;
use rustix::process::Signal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use crate::plan::FullId;
use crate::runner::confine::{COMMITS_FILE, COMMITS_VAR, Sandbox};
use crate::runner::spec::{self, Changes, Confined, End, ExitRecord, Spec, SupervisorInfo};
use crate::runner::terminate::{self, Method, Reason};
use crate::runner::watch::Watch;
use crate::state::Timestamp;
use crate::state::events::{EventKind, EventLog};

/// Set only by orch's own tests: the supervisor waits this many
/// milliseconds before it records itself, so that a test can kill the
/// coordinator while a supervisor is alive and not yet recorded.
pub const TEST_DELAY_VAR: &str = "ORCH_TEST_SUPERVISOR_DELAY_MS";

/// How long to wait for the output pipes to drain once the group is gone.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// How often the watch of the worktree reads its events (the kernel keeps
/// 16,384 by default; more are dropped, and the worktree is then scanned).
const DRAIN_WATCH_EVERY: Duration = Duration::from_millis(50);

/// How often the git hooks' commit records are moved into `events.jsonl`.
const FORWARD_EVERY: Duration = Duration::from_millis(500);

/// Runs the supervisor for the spec at `spec_path`; the exit code is 0 when
/// `exit.json` was written. Given `go_fd` (a supervisor started while its
/// attempt's worktree is prepared, `crate::runner::spawn::Waiting`), it
/// first waits for a byte on that pipe, and ends at once, having touched
/// nothing, when the pipe ends without one.
pub fn main(spec_path: &Path, done_fd: Option<i32>, go_fd: Option<i32>) -> ExitCode {
    let done = Done::adopt(done_fd);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orch supervisor: cannot start: {e}");
            return ExitCode::from(255);
        }
    };
    if let Some(fd) = go_fd
        && !told_to_go(fd)
    {
        return ExitCode::SUCCESS;
    }
    match runtime.block_on(supervise(spec_path, &done)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orch supervisor: {e}");
            ExitCode::from(255)
        }
    }
}

/// The write end of a pipe the coordinator reads (`--done-fd`): closed
/// as soon as `exit.json` is written, so that the coordinator collects the
/// attempt without waiting for this process to end. Ending can take a
/// while after that: closing the worktree's watch waits for the kernel to
/// free its marks (0.1 to 16 ms measured). Without the pipe (a supervisor
/// adopted after a restart, a check's), the process's end says it.
struct Done(std::cell::Cell<Option<OwnedFd>>);

impl Done {
    /// Takes the descriptor the coordinator passed, marked close-on-exec
    /// so that no child (the agent above all) holds the pipe open.
    fn adopt(fd: Option<i32>) -> Done {
        let owned = fd.filter(|fd| *fd > 2).and_then(|fd| {
            // SAFETY: only asks whether `fd` is open; nothing is closed.
            let open = rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).is_ok();
            // SAFETY: the coordinator passed this descriptor for this
            // process alone, and nothing else here owns it.
            open.then(|| unsafe { OwnedFd::from_raw_fd(fd) })
        });
        let owned = owned.filter(|fd| rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC).is_ok());
        Done(std::cell::Cell::new(owned))
    }

    /// Tells the coordinator that `exit.json` is written (or never will be).
    fn close(&self) {
        drop(self.0.take());
    }
}

/// Waits for one byte on the inherited descriptor `fd` and closes it;
/// `false` when the pipe ended first (or `fd` is no pipe of ours).
fn told_to_go(fd: i32) -> bool {
    if fd <= 2 {
        return false;
    }
    // SAFETY: only asks whether `fd` is open; nothing is closed.
    if rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).is_err() {
        return false;
    }
    // SAFETY: the coordinator passed this descriptor for this process
    // alone, and nothing else here owns it.
    let go = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(&go, &mut byte) {
            Ok(n) => return n == 1,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

fn run_dir(spec_path: &Path) -> PathBuf {
    spec_path.parent().map(Path::to_owned).unwrap_or_default()
}

async fn supervise(spec_path: &Path, done: &Done) -> std::io::Result<()> {
    let dir = run_dir(spec_path);
    let spec: Spec = crate::fsio::read_json(spec_path)?
        .ok_or_else(|| std::io::Error::other(format!("`{}` is missing", spec_path.display())))?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let started = Timestamp::now();
    let mut info = SupervisorInfo {
        pid: std::process::id(),
        start_ticks: crate::process::own_start_ticks(),
        agent_pgid: None,
        agent_start_ticks: None,
        agent_started: None,
        started,
    };
    if let Some(ms) = std::env::var(TEST_DELAY_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    crate::fsio::write_json(&dir.join(spec::SUPERVISOR), &info)?;

    let finish = |end: End, output_bytes: u64, log_truncated: bool| {
        let record = ExitRecord {
            end,
            started,
            finished: Timestamp::now(),
            output_bytes,
            log_truncated,
        };
        let written = crate::fsio::write_json(&dir.join(spec::EXIT), &record);
        done.close();
        written
    };
    // A stop asked for before this process recorded itself found no one to
    // signal: it is honoured here, before any agent starts.
    if dir.join(spec::STOP).exists() {
        return finish(End::Stopped, 0, false);
    }

    let Some((program, args)) = spec.argv.split_first() else {
        return finish(
            End::SpawnFailed {
                error: "the agent command is empty".to_owned(),
                transient: false,
            },
            0,
            false,
        );
    };
    let mut forwarder = spec
        .sandbox
        .as_ref()
        .and_then(|c| CommitForwarder::new(&dir, c));
    // A cluster job's agent runs on a node, confined there by `orch
    // __confine` (its job command); this process runs `orch __job` itself.
    let confine_here = spec.sandbox.as_ref().filter(|_| spec.job.is_none());
    let sandbox = match confine_here
        .map(|c| Sandbox::prepare(&spec.cwd, &c.grant, &std::env::temp_dir()))
        .transpose()
    {
        Ok(sandbox) => sandbox,
        Err(error) => {
            let error = format!(
                "cannot confine the agent: {}",
                crate::text::error_chain(&error)
            );
            return finish(
                End::SpawnFailed {
                    error,
                    transient: false,
                },
                0,
                false,
            );
        }
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .process_group(0)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    for var in &spec.env_remove {
        cmd.env_remove(var);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if spec.job.is_none() {
        cmd.envs(crate::git::worktree::agent_config_env(
            &spec.cwd,
            config_count(&spec).as_deref(),
        ));
    }
    if let Some(sandbox) = &sandbox {
        cmd.env("TMPDIR", sandbox.temp.path())
            .env(COMMITS_VAR, dir.join(COMMITS_FILE));
        let ruleset = std::sync::Arc::clone(&sandbox.ruleset);
        // SAFETY: the closure only calls `Ruleset::restrict_self`, which
        // makes two async-signal-safe system calls and allocates nothing.
        unsafe {
            cmd.pre_exec(move || ruleset.restrict_self());
        }
    }
    // A clean worktree is watched from before the agent starts, so that
    // collection asks git about what the agent changed alone.
    let mut watch = match spec.watch.filter(|_| spec.job.is_none()) {
        Some(min_files) => match Watch::start(&spec.cwd, min_files) {
            Ok(Ok(watch)) => Some(watch),
            Ok(Err(skipped)) => {
                record_changes(&dir, skipped);
                None
            }
            Err(e) => {
                let why = format!("the worktree could not be watched: {e}");
                record_changes(&dir, Changes::Unknown { why });
                None
            }
        },
        None => None,
    };
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let transient = matches!(
                rustix::io::Errno::from_io_error(&e),
                Some(
                    rustix::io::Errno::AGAIN
                        | rustix::io::Errno::NOMEM
                        | rustix::io::Errno::NFILE
                        | rustix::io::Errno::MFILE
                        | rustix::io::Errno::TXTBSY
                )
            );
            let error = crate::runner::classify::spawn_error(program, &spec.cwd, &e);
            return finish(End::SpawnFailed { error, transient }, 0, false);
        }
    };
    let Some(pgid) = child.id() else {
        return finish(
            End::SpawnFailed {
                error: "the agent exited at once".to_owned(),
                transient: true,
            },
            0,
            false,
        );
    };
    info.agent_pgid = Some(pgid);
    info.agent_started = Some(Timestamp::now());
    // The child is not reaped before `wait` below, so its `/proc` entry is there.
    info.agent_start_ticks = crate::process::start_ticks(pgid);
    crate::fsio::write_json(&dir.join(spec::SUPERVISOR), &info)?;

    if let (Some(mut stdin), Some(prompt)) = (child.stdin.take(), spec.stdin.clone()) {
        tokio::spawn(async move {
            if let Ok(bytes) = tokio::fs::read(&prompt).await {
                let _ = stdin.write_all(&bytes).await;
            }
            let _ = stdin.shutdown().await;
        });
    }
    let (chunks_tx, chunks_rx) = mpsc::channel::<Vec<u8>>(64);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, chunks_tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, chunks_tx.clone()));
    }
    drop(chunks_tx);
    let writer = tokio::spawn(write_log(spec.log.clone(), spec.log_limit, chunks_rx));

    let (exit_tx, mut exit_rx) = oneshot::channel();
    tokio::spawn(async move {
        let _ = exit_tx.send(child.wait().await);
    });

    let timeout = tokio::time::sleep(spec.timeout);
    tokio::pin!(timeout);
    let mut forward_tick = tokio::time::interval(FORWARD_EVERY);
    let mut watch_tick = tokio::time::interval(DRAIN_WATCH_EVERY);
    let stop_reason = loop {
        tokio::select! {
        _ = watch_tick.tick(), if watch.is_some() => {
            if let Some(w) = watch.as_mut() {
                w.drain();
            }
            continue;
        }
        _ = forward_tick.tick(), if forwarder.is_some() => {
            if let Some(f) = forwarder.as_mut() {
                f.forward();
            }
            continue;
        }
        status = &mut exit_rx => {
            let end = match status {
                Ok(Ok(status)) => end_of(status),
                Ok(Err(e)) => End::SpawnFailed {
                    error: format!("waiting for the agent failed: {e}"),
                    transient: true,
                },
                Err(_) => End::SpawnFailed {
                    error: "lost the agent".to_owned(),
                    transient: true,
                },
            };
            stop_leftovers(pgid, spec.grace).await;
            let (bytes, truncated) = drain(writer).await;
            if let Some(f) = forwarder.as_mut() {
                f.forward();
            }
            if let Some(w) = watch.as_mut() {
                record_changes(&dir, w.finish());
            }
            drop(sandbox);
            // The watch is closed once `exit.json` is written and the
            // coordinator told (`Done`): closing it waits for the kernel to
            // free its marks.
            return finish(end, bytes, truncated);
        }
        _ = &mut timeout => break Reason::Timeout,
        _ = term.recv() => break Reason::Requested,
        _ = int.recv() => break Reason::Requested,
        _ = hup.recv() => break Reason::Requested,
        }
    };

    let end = if stop_reason == Reason::Timeout {
        End::TimedOut
    } else {
        End::Stopped
    };
    let mut exited = false;
    let _ = crate::process::signal_group(pgid, Signal::TERM);
    if let Method::TermThenKill { grace } = terminate::method(stop_reason, spec.grace) {
        let grace_over = tokio::time::sleep(grace);
        tokio::pin!(grace_over);
        tokio::select! {
            _ = &mut exit_rx => exited = true,
            _ = &mut grace_over => {}
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    let _ = crate::process::signal_group(pgid, Signal::KILL);
    if !exited {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut exit_rx).await;
    }
    let _ = crate::process::signal_group(pgid, Signal::KILL);
    let (bytes, truncated) = drain(writer).await;
    if let Some(f) = forwarder.as_mut() {
        f.forward();
    }
    if let Some(w) = watch.as_mut() {
        record_changes(&dir, w.finish());
    }
    drop(sandbox);
    finish(end, bytes, truncated)
}

/// Returns the `GIT_CONFIG_COUNT` the agent would get without orch's
/// additions: the spec's, or this process's unless the spec removes it.
fn config_count(spec: &Spec) -> Option<String> {
    const VAR: &str = "GIT_CONFIG_COUNT";
    match spec.env.iter().rev().find(|(k, _)| k == VAR) {
        Some((_, v)) => Some(v.clone()),
        None if spec.env_remove.iter().any(|r| r == VAR) => None,
        None => std::env::var(VAR).ok(),
    }
}

/// Writes `changes.json`; a record that cannot be written is left out
/// (collection then scans the worktree whole).
fn record_changes(dir: &Path, changes: Changes) {
    let _ = crate::fsio::write_json(&dir.join(spec::CHANGES), &changes);
}

/// Moves the commits a confined agent's git hooks record in the run folder
/// into `events.jsonl`, as `task.commit` events of the attempt's unit.
/// Only complete lines that read as `task.commit` are moved; anything else
/// the agent writes there is skipped.
struct CommitForwarder {
    source: PathBuf,
    events: PathBuf,
    unit: FullId,
    /// Bytes of `source` already handled.
    done: u64,
}

impl CommitForwarder {
    fn new(dir: &Path, confined: &Confined) -> Option<CommitForwarder> {
        Some(CommitForwarder {
            source: dir.join(COMMITS_FILE),
            events: confined.events.clone(),
            unit: FullId::parse(&confined.unit).ok()?,
            done: 0,
        })
    }

    fn forward(&mut self) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.source) else {
            return;
        };
        let mut text = Vec::new();
        if file.seek(SeekFrom::Start(self.done)).is_err() || file.read_to_end(&mut text).is_err() {
            return;
        }
        let Some(end) = text.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let commits: Vec<EventKind> = text[..end]
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<EventKind>(line).ok())
            .filter(|kind| matches!(kind, EventKind::TaskCommit { .. }))
            .collect();
        if !commits.is_empty() {
            let Ok(mut log) = EventLog::open(&self.events) else {
                return;
            };
            for kind in commits {
                if log.append(Some(&self.unit), kind).is_err() {
                    return;
                }
            }
        }
        self.done += end as u64 + 1;
    }
}

fn end_of(status: std::process::ExitStatus) -> End {
    match (status.code(), status.signal()) {
        (Some(code), _) => End::Exited { code },
        (None, Some(signal)) => End::Signaled { signal },
        (None, None) => End::Exited { code: -1 },
    }
}

/// Stops what the agent left running in its group after it exited.
async fn stop_leftovers(pgid: u32, grace: Duration) {
    if !terminate::group_alive(pgid) {
        return;
    }
    let Method::TermThenKill { grace } = terminate::method(Reason::Leftovers, grace) else {
        return;
    };
    let _ = crate::process::signal_group(pgid, Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && terminate::group_alive(pgid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = crate::process::signal_group(pgid, Signal::KILL);
}

/// Waits (bounded) for the log writer; a pipe held open by an escaped
/// process must not keep the supervisor from writing `exit.json`.
async fn drain(writer: tokio::task::JoinHandle<(u64, bool)>) -> (u64, bool) {
    match tokio::time::timeout(DRAIN_WAIT, writer).await {
        Ok(Ok(counts)) => counts,
        _ => (0, false),
    }
}

async fn pump(mut from: impl AsyncRead + Unpin, to: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.send(buf[..n].to_vec()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes output to the log up to `limit` bytes, then counts the rest and
/// ends the log with a marker saying how much was dropped. Writes are plain
/// blocking writes: the supervisor has nothing else to do meanwhile, and they
/// are done when the task ends (no write left queued on a thread pool).
async fn write_log(path: PathBuf, limit: u64, mut chunks: mpsc::Receiver<Vec<u8>>) -> (u64, bool) {
    use std::io::Write;
    let mut file = std::fs::File::create(&path).ok();
    let mut total: u64 = 0;
    while let Some(chunk) = chunks.recv().await {
        let room = limit.saturating_sub(total);
        let keep = (chunk.len() as u64).min(room) as usize;
        if keep > 0
            && let Some(f) = file.as_mut()
            && f.write_all(&chunk[..keep]).is_err()
        {
            file = None;
        }
        total += chunk.len() as u64;
    }
    let truncated = total > limit;
    if let Some(f) = file.as_mut()
        && truncated
    {
        let marker = format!(
            "\n[orch: output truncated at {limit} bytes; {} more bytes were discarded]\n",
            total - limit
        );
        let _ = f.write_all(marker.as_bytes());
    }
    (total, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::folder::{self, RunFolder};

    /// A stop asked for before the supervisor recorded itself (the
    /// coordinator's Ctrl-C just after the launch) is honoured: the agent
    /// never starts, and the attempt ends stopped. Without it, nothing
    /// stopped the agent and the run waited for it for ever.
    #[test]
    fn a_stop_asked_before_the_supervisor_recorded_itself_starts_no_agent() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let ran = dir.join("ran");
        let spec = Spec {
            argv: vec!["touch".to_owned(), ran.display().to_string()],
            cwd: dir.clone(),
            env: Vec::new(),
            env_remove: Vec::new(),
            stdin: None,
            log: dir.join(spec::LOG),
            log_limit: 1 << 20,
            timeout: Duration::from_secs(60),
            grace: Duration::from_secs(1),
            job: None,
            sandbox: None,
            watch: None,
        };
        let spec_path = dir.join(spec::SPEC);
        crate::fsio::write_json(&spec_path, &spec).unwrap();
        let run = RunFolder::new(dir.clone());
        assert_eq!(
            run.stop(folder::Stop::Ask).unwrap(),
            folder::Stopped::Nothing,
            "no supervisor yet"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(supervise(&spec_path, &Done::adopt(None)))
            .unwrap();
        assert!(!ran.exists(), "the agent started");
        let exit = run.load_exit().unwrap().unwrap();
        assert_eq!(exit.end, End::Stopped);
    }
}
