//! The run-folder protocol's one owner: the files of an attempt's folder
//! (`runs/<full id>/<n>/`) or a check's (`checks/<task>/<check>/`), whether
//! its supervisor and agent are still alive, and stopping them.
//!
//! Every command that reads `supervisor.json` or signals what it names goes
//! through [`RunFolder`]: the coordinator (stop, adoption, reconcile), `orch
//! cancel` without a run, `orch doctor`. A pid is only ever signalled after
//! it is shown to be the process the folder recorded, not an unrelated one
//! that reused the pid ([`crate::process::is_same`]): by its start time, or,
//! for folders written before start times were recorded, by its command line
//! naming this folder's `spec.json`.
//!
//! | file | written by | when |
//! | --- | --- | --- |
//! | `spec.json` | coordinator | before the supervisor starts |
//! | `prompt.md` | coordinator | before the supervisor starts |
//! | `supervisor.json` | supervisor | as soon as it runs, again once the agent started |
//! | `agent.log` | supervisor | while the agent runs (capped) |
//! | `result.json` | collection | moved from the worktree, when the agent wrote a report |
//! | `last-message.md` | collection | moved from the worktree, when the agent wrote its final message there |
//! | `changes.json` | supervisor | when it watched the worktree: once the agent's group is gone, before `exit.json` |
//! | `exit.json` | supervisor | last, atomically |
//! | `supervisor.log` | supervisor | its own errors, if any |
//! | `job.json` | `orch __job` (cluster executors) | once the job is known, again when it runs and when it ended |
//! | `post_create.log`, `post_agent.log` | coordinator | while those lifecycle hooks run |

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::Signal;
use crate::runner::executor::{self, Detached};
use crate::runner::spec::{
    CHANGES, Changes, EXIT, End, ExitRecord, JOB, JobRecord, LAST_MESSAGE, LOG, PROMPT, RESULT,
    SPEC, STOP, SUPERVISOR, Spec, SupervisorInfo, UNRESOLVED,
};
use crate::runner::terminate;
use crate::state::Timestamp;

/// How long [`RunFolder::settle`] waits for a supervisor that recorded
/// itself just as it was asked to stop to show whether it started its agent.
const UNRECORDED_WAIT: Duration = Duration::from_secs(10);

/// How long past its grace [`RunFolder::stop_leftover`] waits for a
/// supervisor it asked to stop before it kills it.
const LEFTOVER_MARGIN: Duration = Duration::from_secs(3);

/// One run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    dir: PathBuf,
}

/// Whether a folder's supervisor is at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// `exit.json` is written: the attempt is over.
    Exited,
    /// Its supervisor is alive (and is this folder's).
    Running { supervisor: u32 },
    /// No report and no supervisor: the attempt was cut short.
    Gone,
}

/// How hard to stop a folder's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM to the supervisor, which stops its agent's group (TERM, grace, KILL).
    Ask,
    /// SIGKILL to the agent's group now, and SIGTERM to the supervisor.
    Kill,
}

/// What a stop reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The supervisor was signalled.
    Supervisor,
    /// The supervisor was gone; its agent's group was stopped directly.
    Group,
    /// Nothing of this folder's was alive.
    Nothing,
}

impl RunFolder {
    pub fn new(dir: impl Into<PathBuf>) -> RunFolder {
        RunFolder { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn spec_file(&self) -> PathBuf {
        self.dir.join(SPEC)
    }

    pub fn prompt_file(&self) -> PathBuf {
        self.dir.join(PROMPT)
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join(LOG)
    }

    pub fn result_file(&self) -> PathBuf {
        self.dir.join(RESULT)
    }

    /// Returns where the agent's final message is kept (moved here from the worktree).
    pub fn last_message_file(&self) -> PathBuf {
        self.dir.join(LAST_MESSAGE)
    }

    /// Returns where the files a job of the git workspace left in conflict
    /// are kept (brought here from its result commit).
    pub fn unresolved_file(&self) -> PathBuf {
        self.dir.join(UNRESOLVED)
    }

    pub fn exit_file(&self) -> PathBuf {
        self.dir.join(EXIT)
    }

    pub fn stop_file(&self) -> PathBuf {
        self.path().join(STOP)
    }

    pub fn supervisor_file(&self) -> PathBuf {
        self.dir.join(SUPERVISOR)
    }

    pub fn job_file(&self) -> PathBuf {
        self.dir.join(JOB)
    }

    /// Reads `spec.json`; an unreadable one counts as absent.
    pub fn load_spec(&self) -> Option<Spec> {
        crate::fsio::read_json(&self.spec_file()).ok().flatten()
    }

    /// Reads `changes.json`, the paths the agent changed as the supervisor
    /// watched them; absent or unreadable: the worktree must be scanned.
    pub fn load_changes(&self) -> Option<Changes> {
        crate::fsio::read_json(&self.dir.join(CHANGES))
            .ok()
            .flatten()
    }

    /// Reads `job.json` (cluster executors); an unreadable one counts as absent.
    pub fn load_job(&self) -> Option<JobRecord> {
        crate::fsio::read_json(&self.job_file()).ok().flatten()
    }

    /// Returns the log of a lifecycle hook run for this attempt.
    pub fn hook_log(&self, stage: &str) -> PathBuf {
        self.dir.join(format!("{stage}.log"))
    }

    /// Reads `supervisor.json`; an unreadable one counts as absent.
    pub fn load_supervisor(&self) -> Option<SupervisorInfo> {
        crate::fsio::read_json(&self.supervisor_file())
            .ok()
            .flatten()
    }

    /// Reads `exit.json`.
    pub fn load_exit(&self) -> io::Result<Option<ExitRecord>> {
        crate::fsio::read_json(&self.exit_file())
    }

    /// Returns whether the supervisor wrote its report.
    pub fn has_exited(&self) -> bool {
        self.exit_file().exists()
    }

    /// Returns whether `info` names a live process that is this folder's supervisor.
    fn is_supervisor(&self, info: &SupervisorInfo) -> bool {
        crate::process::is_same(info.pid, info.start_ticks, Some(&self.spec_file()))
    }

    /// Returns the supervisor's pid when it is alive and is this folder's.
    pub fn live_supervisor(&self) -> Option<u32> {
        let info = self.load_supervisor()?;
        self.is_supervisor(&info).then_some(info.pid)
    }

    /// Returns the agent's process group when processes of it are left and
    /// it is this folder's agent's: its leader has the recorded start time,
    /// or (leader gone, or no start time recorded) this folder's supervisor
    /// is still alive to vouch for it.
    pub fn live_agent_group(&self) -> Option<u32> {
        let info = self.load_supervisor()?;
        let pgid = info.agent_pgid?;
        if !terminate::group_alive(pgid) {
            return None;
        }
        let leader_checked = info.agent_start_ticks.is_some() && crate::process::alive(pgid);
        let ours = if leader_checked {
            crate::process::is_same(pgid, info.agent_start_ticks, None)
        } else {
            self.is_supervisor(&info)
        };
        ours.then_some(pgid)
    }

    /// Returns whether the attempt is over, running, or was cut short.
    pub fn liveness(&self) -> Liveness {
        if self.has_exited() {
            return Liveness::Exited;
        }
        match self.live_supervisor() {
            Some(supervisor) => Liveness::Running { supervisor },
            None => Liveness::Gone,
        }
    }

    /// Asks the cluster about an attempt whose supervisor is gone, and
    /// records its account in `job.json`: a job that completed gets the
    /// `exit.json` its supervisor could not write and is
    /// [`Liveness::Exited`] (its work is collected); a job that ended
    /// otherwise, or was still alive without its `srun` (and is cancelled),
    /// was cut short and is [`Liveness::Gone`]. Otherwise the same as
    /// [`RunFolder::liveness`], after making sure a supervisor that had not
    /// recorded itself starts no agent ([`RunFolder::stop_unrecorded`]).
    /// Blocking.
    pub fn settle(&self) -> Liveness {
        let now = self.liveness();
        if now != Liveness::Gone {
            return now;
        }
        let now = self.stop_unrecorded();
        if now != Liveness::Gone {
            return now;
        }
        let Some(spec) = self.load_spec().filter(|s| s.job.is_some()) else {
            return now;
        };
        let job = match executor::detached(&spec, self.load_job().as_ref()) {
            Detached::Unknown => return Liveness::Gone,
            Detached::Orphaned(job) => {
                let _ = crate::fsio::write_json(&self.job_file(), &job);
                return Liveness::Gone;
            }
            Detached::Ended(job) => job,
        };
        let recorded = crate::fsio::write_json(&self.job_file(), &job);
        if job.state.as_deref() != Some("COMPLETED") || recorded.is_err() {
            return Liveness::Gone;
        }
        let record = ExitRecord {
            end: End::Exited {
                code: job.exit_code.unwrap_or(0),
            },
            started: self
                .load_supervisor()
                .map(|s| s.started)
                .unwrap_or_else(Timestamp::now),
            finished: Timestamp::now(),
            output_bytes: 0,
            log_truncated: false,
        };
        match crate::fsio::write_json(&self.exit_file(), &record) {
            Ok(()) => Liveness::Exited,
            Err(_) => Liveness::Gone,
        }
    }

    /// Makes sure an attempt that looks cut short does not start its agent
    /// later. A supervisor started just before its coordinator was killed
    /// may not have recorded itself yet: it survives the coordinator, and
    /// would start its agent in a worktree the restart gives to another
    /// attempt. A folder without `supervisor.json` gets the stop request,
    /// which the supervisor looks for once it has recorded itself and before
    /// any agent starts ([`RunFolder::stop`]'s order, the other way round):
    /// one of the two sees the other. A supervisor that recorded itself
    /// meanwhile is watched until it shows which came first: it stops
    /// without an agent (the attempt is [`Liveness::Gone`]), or its agent
    /// started (it is [`Liveness::Running`], and adopted). Blocks up to
    /// [`UNRECORDED_WAIT`] (a supervisor still between the two then is
    /// alive, and adopted).
    fn stop_unrecorded(&self) -> Liveness {
        // Recorded (or ended) since it was found gone: look again.
        if self.supervisor_file().exists() || self.has_exited() {
            return self.liveness();
        }
        if !self.path().is_dir() {
            return Liveness::Gone;
        }
        if std::fs::write(self.stop_file(), "").is_err() {
            return Liveness::Gone;
        }
        let deadline = std::time::Instant::now() + UNRECORDED_WAIT;
        loop {
            // Alive first, then the report: a supervisor found dead had
            // written all it ever will.
            let alive = self
                .load_supervisor()
                .is_some_and(|info| self.is_supervisor(&info));
            let exit = self.load_exit().ok().flatten();
            let info = self.load_supervisor();
            if let Some(now) = after_stop_request(exit.as_ref(), info.as_ref(), alive) {
                return now;
            }
            if std::time::Instant::now() >= deadline {
                return self.liveness();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops a supervisor of this folder left from a run killed before
    /// it, for a folder found gone and about to be used again (a check's,
    /// after a restart): one started just before its coordinator was
    /// killed outlives it, may not have recorded itself (or did so only
    /// since the folder was found gone), and would otherwise find its stop
    /// request cleared by the folder's next run and start its command
    /// beside that run's. It is found by its command line (`orch
    /// __supervise <this folder's spec.json>`), after the stop request is
    /// written (which one caught in the instant it execs still sees), and
    /// gets SIGTERM: its handler, installed before it records itself, ends
    /// it at the stop request before its command starts, or stops the
    /// command's group after (TERM, its grace, KILL). One still alive after
    /// its grace and [`LEFTOVER_MARGIN`] is killed, with the group it
    /// recorded. Returns how many were found. Blocking.
    pub fn stop_leftover(&self) -> io::Result<usize> {
        if self.has_exited() || !self.path().is_dir() {
            return Ok(0);
        }
        std::fs::write(self.stop_file(), "")?;
        let Ok(spec) = self.spec_file().canonicalize() else {
            return Ok(0);
        };
        let supervisors =
            crate::process::with_args(crate::runner::spawn::SUPERVISE_COMMAND, |arg| {
                arg.canonicalize().is_ok_and(|arg| arg == spec)
            });
        if supervisors.is_empty() {
            return Ok(0);
        }
        for &pid in &supervisors {
            crate::process::signal(pid, Signal::TERM)?;
        }
        let grace = self.load_spec().map_or(Duration::ZERO, |s| s.grace);
        let deadline = std::time::Instant::now() + grace + LEFTOVER_MARGIN;
        let alive = |pid: &u32| crate::process::alive(*pid) && !crate::process::is_zombie(*pid);
        while supervisors.iter().any(alive) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for pid in supervisors.iter().filter(|pid| alive(pid)) {
            crate::process::signal(*pid, Signal::KILL)?;
        }
        if let Some(pgid) = self.live_agent_group() {
            crate::process::signal_group(pgid, Signal::KILL)?;
        }
        Ok(supervisors.len())
    }

    /// Stops this folder's processes without waiting: the supervisor, or
    /// with [`Stop::Kill`] the agent's group at once too. An attempt's
    /// cluster job is cancelled too when its supervisor cannot do it (it is
    /// gone, or is being killed).
    pub fn stop(&self, how: Stop) -> io::Result<Stopped> {
        // First the request, then the look for the supervisor, which
        // records itself first and then looks for the request: one of the
        // two sees the other.
        if self.path().is_dir() {
            std::fs::write(self.stop_file(), "")?;
        }
        if how == Stop::Kill
            && let Some(pgid) = self.live_agent_group()
        {
            crate::process::signal_group(pgid, Signal::KILL)?;
        }
        let supervisor = self.live_supervisor();
        if (how == Stop::Kill || supervisor.is_none())
            && !self.has_exited()
            && let Some(spec) = self.load_spec().filter(|s| s.job.is_some())
        {
            executor::cancel(&spec, self.load_job().as_ref())?;
        }
        match supervisor {
            Some(pid) => {
                crate::process::signal(pid, Signal::TERM)?;
                Ok(Stopped::Supervisor)
            }
            None => Ok(Stopped::Nothing),
        }
    }

    /// Stops an attempt whose supervisor may have died before its agent
    /// (a coordinator killed together with it): the supervisor when it is
    /// alive, else the agent's group, TERM then KILL after `grace`. Blocks
    /// up to `grace`.
    pub fn stop_orphan(&self, grace: Duration) -> io::Result<Stopped> {
        if let Some(pid) = self.live_supervisor() {
            crate::process::signal(pid, Signal::TERM)?;
            return Ok(Stopped::Supervisor);
        }
        if !self.has_exited()
            && let Some(spec) = self.load_spec().filter(|s| s.job.is_some())
        {
            executor::cancel(&spec, self.load_job().as_ref())?;
        }
        match self.live_agent_group() {
            Some(pgid) => {
                terminate::stop_group_blocking(pgid, terminate::Method::TermThenKill { grace })?;
                Ok(Stopped::Group)
            }
            None => Ok(Stopped::Nothing),
        }
    }
}

/// Decides what a folder asked to stop before its supervisor recorded
/// itself shows ([`RunFolder::stop_unrecorded`]): its report, and its
/// record read after it, and whether the supervisor was alive before both
/// were read. `None`: it recorded itself and has neither started its agent
/// nor ended yet.
fn after_stop_request(
    exit: Option<&ExitRecord>,
    info: Option<&SupervisorInfo>,
    alive: bool,
) -> Option<Liveness> {
    let agent_started = info.is_some_and(|i| i.agent_started.is_some());
    match (exit, info) {
        // It found the request: nothing ran.
        (Some(exit), _) if exit.end == End::Stopped && !agent_started => Some(Liveness::Gone),
        (Some(_), _) => Some(Liveness::Exited),
        // Not recorded yet: it will find the request.
        (None, None) => Some(Liveness::Gone),
        (None, Some(_)) if !alive => Some(Liveness::Gone),
        (None, Some(info)) if info.agent_pgid.is_some() => Some(Liveness::Running {
            supervisor: info.pid,
        }),
        (None, Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;
    use crate::state::Timestamp;

    fn write_info(folder: &RunFolder, info: &SupervisorInfo) {
        std::fs::create_dir_all(folder.path()).unwrap();
        crate::fsio::write_json(&folder.supervisor_file(), info).unwrap();
    }

    #[test]
    fn a_pid_reused_by_an_unrelated_process_is_never_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::new(dir.path().join("runs/T1/1"));
        let mut stranger = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = stranger.id();
        let ticks = crate::process::start_ticks(pid).unwrap();
        // A record from before the stranger existed: same pid, earlier start.
        write_info(
            &folder,
            &SupervisorInfo {
                pid,
                start_ticks: Some(ticks - 1),
                agent_pgid: Some(pid),
                agent_start_ticks: Some(ticks - 1),
                agent_started: None,
                started: Timestamp::now(),
            },
        );
        assert_eq!(folder.live_supervisor(), None);
        assert_eq!(folder.live_agent_group(), None);
        assert_eq!(folder.liveness(), Liveness::Gone);
        assert_eq!(folder.stop(Stop::Kill).unwrap(), Stopped::Nothing);
        assert_eq!(
            folder.stop_orphan(Duration::from_millis(10)).unwrap(),
            Stopped::Nothing
        );
        // An old record without start times: the command line decides.
        write_info(
            &folder,
            &SupervisorInfo {
                pid,
                start_ticks: None,
                agent_pgid: Some(pid),
                agent_start_ticks: None,
                agent_started: None,
                started: Timestamp::now(),
            },
        );
        assert_eq!(folder.live_supervisor(), None);
        assert_eq!(folder.stop(Stop::Kill).unwrap(), Stopped::Nothing);
        assert_eq!(stranger.try_wait().unwrap(), None, "the stranger lives");
        // The same process, recorded as it is, is found and stopped.
        write_info(
            &folder,
            &SupervisorInfo {
                pid,
                start_ticks: Some(ticks),
                agent_pgid: Some(pid),
                agent_start_ticks: Some(ticks),
                agent_started: None,
                started: Timestamp::now(),
            },
        );
        assert_eq!(folder.live_agent_group(), Some(pid));
        assert_eq!(folder.liveness(), Liveness::Running { supervisor: pid });
        folder.stop(Stop::Kill).unwrap();
        let status = stranger.wait().unwrap();
        assert!(!status.success());
    }

    #[test]
    fn a_supervisor_asked_to_stop_before_it_recorded_itself_is_gone_unless_its_agent_started() {
        let info = |agent: bool| SupervisorInfo {
            pid: 4242,
            start_ticks: Some(1),
            agent_pgid: agent.then_some(4243),
            agent_start_ticks: None,
            agent_started: agent.then(Timestamp::now),
            started: Timestamp::now(),
        };
        let exit = |end: End| ExitRecord {
            end,
            started: Timestamp::now(),
            finished: Timestamp::now(),
            output_bytes: 0,
            log_truncated: false,
        };
        let stopped = exit(End::Stopped);
        let exited = exit(End::Exited { code: 0 });
        let running = Some(Liveness::Running { supervisor: 4242 });
        let cases = [
            // Not recorded: it finds the request once it is.
            (None, None, false, Some(Liveness::Gone)),
            // Recorded, then found the request: no agent ran.
            (
                Some(&stopped),
                Some(info(false)),
                false,
                Some(Liveness::Gone),
            ),
            // Recorded before the request: its agent ran, and ended.
            (
                Some(&exited),
                Some(info(true)),
                false,
                Some(Liveness::Exited),
            ),
            (
                Some(&stopped),
                Some(info(true)),
                false,
                Some(Liveness::Exited),
            ),
            // It failed to start its agent: that is its report.
            (
                Some(&exit(End::SpawnFailed {
                    error: "missing".to_owned(),
                    transient: false,
                })),
                Some(info(false)),
                false,
                Some(Liveness::Exited),
            ),
            // Its agent runs: adopted.
            (None, Some(info(true)), true, running),
            // Recorded, alive, and neither yet: look again.
            (None, Some(info(false)), true, None),
            // Dead without a report.
            (None, Some(info(false)), false, Some(Liveness::Gone)),
            (None, Some(info(true)), false, Some(Liveness::Gone)),
        ];
        for (exit, info, alive, expected) in cases {
            assert_eq!(
                after_stop_request(exit, info.as_ref(), alive),
                expected,
                "{exit:?} {info:?} {alive}"
            );
        }
    }
}
