//! The Slurm executor: `srun` options, asking the cluster about a job, and
//! `orch __job`, the small program the supervisor runs in place of the agent.
//!
//! ```text
//!  supervisor ──▶ orch __job spec.json ──▶ srun --job-name=… -- agent …   (same process group)
//!                   │ squeue / scontrol / sacct: id, node, how it ended
//!                   └──▶ job.json
//! ```
//!
//! `srun` runs the command on a node with the supervisor's pipes as its
//! stdin and output (so the log and the prompt work as for a local agent),
//! propagates its exit code, and ends its job when it is signalled or dies.
//! `orch __job` adds what `srun` does not say: the job's id and node while
//! it runs, how the cluster ended it (`TIMEOUT`, `NODE_FAIL`, `PREEMPTED`,
//! `OUT_OF_MEMORY`), and a `scancel` on the first stop signal so that a
//! cancelled job leaves the queue even before it started. Every job has a
//! name unique to its attempt, so it can be found and cancelled before its
//! id is known, or after the processes that knew it are gone.
//!
//! Slurm's own words are parsed only from machine formats: `squeue -o`
//! with a separator, `scontrol -o` (one `key=value` line), `sacct -P`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use crate::config::ExecutorConfig;
use crate::runner::node;
use crate::runner::spec::{self, JobRecord, JobSpec, Spec};

/// The executor's name in `job.json`.
pub const NAME: &str = "slurm";

/// How often `orch __job` asks for the job's id and node until it runs.
const FIND_INTERVAL: Duration = Duration::from_millis(500);
/// How long `orch __job` waits for an ended job's final state.
const SETTLE_WAIT: Duration = Duration::from_secs(20);

/// Returns the job's time limit in whole minutes (Slurm's unit), rounded up, at least 1.
pub fn minutes(timeout: Duration) -> u64 {
    timeout.as_secs().div_ceil(60).max(1)
}

/// Returns `srun` and its options for one job, ending with `--`.
pub fn submit_command(
    cfg: &ExecutorConfig,
    name: &str,
    chdir: &Path,
    timeout: Duration,
) -> Vec<String> {
    let mut argv = vec![
        "srun".to_owned(),
        "--quiet".to_owned(),
        format!("--job-name={name}"),
        "--nodes=1".to_owned(),
        "--ntasks=1".to_owned(),
        format!("--chdir={}", chdir.display()),
        format!("--time={}", minutes(timeout)),
    ];
    let mut opt = |flag: &str, value: &Option<String>| {
        if let Some(v) = value {
            argv.push(format!("--{flag}={v}"));
        }
    };
    opt("partition", &cfg.partition);
    opt("account", &cfg.account);
    opt("mem", &cfg.mem);
    opt("gres", &cfg.gres);
    if let Some(cpus) = cfg.cpus {
        argv.push(format!("--cpus-per-task={cpus}"));
    }
    argv.extend(cfg.extra_args.iter().cloned());
    argv.push("--".to_owned());
    argv
}

/// Returns whether a job in this state still holds (or waits for) a node.
pub fn is_alive(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
    )
}

/// How the cluster ended a job, as orch reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// It ran to its end; the exit code says how it went.
    Finished,
    /// Killed at its time limit.
    TimeLimit,
    /// Its node failed, or it was preempted: not the agent's doing.
    Lost,
    /// Killed for using more memory than it asked for.
    OutOfMemory,
    /// Cancelled (by orch, or by someone with `scancel`).
    Cancelled,
}

/// Reads a final job record; `None` while the job is alive or unknown.
pub fn job_end(job: &JobRecord) -> Option<JobEnd> {
    let state = job.state.as_deref()?;
    if job.reason.as_deref() == Some("TimeLimit") || state == "TIMEOUT" || state == "DEADLINE" {
        return Some(JobEnd::TimeLimit);
    }
    match state {
        "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" => Some(JobEnd::Lost),
        "OUT_OF_MEMORY" => Some(JobEnd::OutOfMemory),
        "CANCELLED" => Some(JobEnd::Cancelled),
        s if is_alive(s) => None,
        _ => Some(JobEnd::Finished),
    }
}

/// Runs a Slurm command and returns its stdout when it succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn node_of(list: &str) -> Option<String> {
    let list = list.trim();
    (!list.is_empty() && list != "(null)" && list != "None assigned").then(|| list.to_owned())
}

/// Finds the newest job of this name (pending, running or recently ended).
pub fn find(name: &str) -> Option<JobRecord> {
    let text = output(
        "squeue",
        &[
            "--noheader",
            "--states=all",
            "--name",
            name,
            "--format=%i|%T|%N|%r",
        ],
    )?;
    let line = text.lines().rfind(|l| !l.trim().is_empty())?;
    let mut fields = line.split('|');
    let (id, state, node, reason) = (fields.next()?, fields.next()?, fields.next(), fields.next());
    Some(JobRecord {
        executor: NAME.to_owned(),
        id: Some(id.trim().to_owned()),
        node: node.and_then(node_of),
        state: Some(state.trim().to_owned()),
        reason: reason.map(|r| r.trim().to_owned()).filter(|r| r != "None"),
        ..JobRecord::default()
    })
}

/// Asks the cluster about a job: `scontrol` while the controller remembers
/// it, else `sacct` where accounting is on.
pub fn query(id: &str) -> Option<JobRecord> {
    if let Some(text) = output("scontrol", &["--oneliner", "show", "job", id]) {
        return parse_scontrol(&text);
    }
    let text = output(
        "sacct",
        &[
            "--noheader",
            "--parsable2",
            "--allocations",
            "--jobs",
            id,
            "--format=State,ExitCode,NodeList,Reason",
        ],
    )?;
    parse_sacct(id, &text)
}

/// Parses `scontrol --oneliner show job` (space-separated `key=value`).
pub fn parse_scontrol(text: &str) -> Option<JobRecord> {
    let line = text.lines().next()?;
    let mut job = JobRecord {
        executor: NAME.to_owned(),
        ..JobRecord::default()
    };
    for pair in line.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        match key {
            "JobId" => job.id = Some(value.to_owned()),
            "JobState" => job.state = Some(value.to_owned()),
            "Reason" => job.reason = Some(value.to_owned()).filter(|r| r != "None"),
            "NodeList" => job.node = node_of(value),
            "ExitCode" => (job.exit_code, job.signal) = exit_pair(value),
            _ => {}
        }
    }
    job.id.is_some().then_some(job)
}

/// Parses `sacct --parsable2` lines of State, ExitCode, NodeList, Reason.
pub fn parse_sacct(id: &str, text: &str) -> Option<JobRecord> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut fields = line.split('|');
    let state = fields.next()?.split_whitespace().next()?.to_owned();
    let (exit_code, signal) = fields.next().map(exit_pair).unwrap_or((None, None));
    let node = fields.next().and_then(node_of);
    let reason = fields
        .next()
        .map(str::to_owned)
        .filter(|r| !r.is_empty() && r != "None");
    Some(JobRecord {
        executor: NAME.to_owned(),
        id: Some(id.to_owned()),
        node,
        state: Some(state),
        reason,
        exit_code,
        signal,
        error: None,
    })
}

fn exit_pair(value: &str) -> (Option<i32>, Option<i32>) {
    let (code, sig) = value.split_once(':').unwrap_or((value, "0"));
    (code.parse().ok(), sig.parse().ok().filter(|s| *s != 0))
}

/// Cancels a job by id, or by its name when the id is not known.
pub fn cancel(id: Option<&str>, name: &str) -> std::io::Result<()> {
    let mut cmd = Command::new("scancel");
    match id {
        Some(id) => cmd.arg(id),
        None => cmd.arg(format!("--name={name}")),
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
}

/// What a probe job printed, or why it did not run.
#[derive(Debug)]
pub enum Probe {
    /// It ran and exited 0 with this output.
    Ran { stdout: String },
    /// It ran (or `srun` did) and failed.
    Failed { code: Option<i32>, stderr: String },
    /// It did not end within the wait (it was cancelled).
    TimedOut,
}

/// Runs `argv` as a short job with the executor's resources, in `chdir`
/// on the node, and waits for it at most `wait`. Blocking.
pub fn probe(
    cfg: &ExecutorConfig,
    chdir: &Path,
    argv: &[String],
    wait: Duration,
) -> std::io::Result<Probe> {
    let name = format!("orch-probe-{:08x}", fastrand::u32(..));
    let submit = submit_command(cfg, &name, chdir, Duration::from_secs(60));
    let mut child = Command::new(&submit[0])
        .args(&submit[1..])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + wait;
    loop {
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            return Ok(if out.status.success() {
                Probe::Ran {
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                }
            } else {
                Probe::Failed {
                    code: out.status.code(),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                }
            });
        }
        if Instant::now() >= deadline {
            let _ = cancel(None, &name);
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Probe::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asks the cluster how the job of a run folder stands: by its recorded
/// id, else by its name. `None` when the cluster does not know it.
pub fn ask(job: &JobSpec, recorded: Option<&JobRecord>) -> Option<JobRecord> {
    let known = recorded
        .and_then(|r| r.id.as_deref())
        .and_then(query)
        .or_else(|| {
            find(&job.name).and_then(|found| found.id.as_deref().and_then(query).or(Some(found)))
        })?;
    let mut job = known;
    if job.node.is_none() {
        job.node = recorded.and_then(|r| r.node.clone());
    }
    Some(job)
}

/// `orch __job <spec.json>`: publishes the workspace if asked, submits the
/// job with `srun`, records it in `job.json`, cancels it on the first stop
/// signal, and exits as `srun` did once the cluster says how the job ended.
pub fn job_main(spec_path: &Path) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orch: cannot start the job runner: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(run_job(spec_path)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orch: {e}");
            ExitCode::from(70)
        }
    }
}

async fn run_job(spec_path: &Path) -> std::io::Result<ExitCode> {
    let dir: PathBuf = spec_path.parent().map(Path::to_owned).unwrap_or_default();
    let record_path = dir.join(spec::JOB);
    let spec: Spec = crate::fsio::read_json(spec_path)?
        .ok_or_else(|| std::io::Error::other(format!("`{}` is missing", spec_path.display())))?;
    let job = spec
        .job
        .ok_or_else(|| std::io::Error::other("the spec names no job"))?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut record = JobRecord {
        executor: NAME.to_owned(),
        ..JobRecord::default()
    };
    let fail = |record: &mut JobRecord, error: String| -> std::io::Result<ExitCode> {
        eprintln!("orch: {error}");
        record.error = Some(error);
        crate::fsio::write_json(&record_path, record)?;
        Ok(ExitCode::from(70))
    };
    if let Some(publish) = &job.publish {
        let pushed = tokio::task::spawn_blocking({
            let p = publish.clone();
            move || {
                let mut args = vec!["push", "--quiet", &p.remote, &p.refspec];
                args.extend(p.also.iter().map(String::as_str));
                crate::git::cmd::run(&p.repo, &args)
            }
        })
        .await
        .map_err(std::io::Error::other)?;
        if let Err(e) = pushed {
            let error = format!(
                "cannot push `{}` to `{}` for the job: {}",
                publish.refspec,
                publish.remote,
                crate::text::error_chain(&e)
            );
            return fail(&mut record, error);
        }
    }
    let Some((program, args)) = job.submit.split_first() else {
        return fail(&mut record, "the job's submit command is empty".to_owned());
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .args(&job.argv)
        .kill_on_drop(false)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return fail(&mut record, format!("cannot run `{program}`: {e}")),
    };
    let mut cancelled = false;
    let mut next_look = tokio::time::Instant::now() + FIND_INTERVAL / 5;
    let status = loop {
        let placed = record.node.is_some() && record.state.as_deref() == Some("RUNNING");
        let look = tokio::time::sleep_until(next_look);
        tokio::select! {
            status = child.wait() => break status?,
            _ = look, if !placed => {
                next_look = tokio::time::Instant::now() + FIND_INTERVAL;
                let name = job.name.clone();
                if let Ok(Some(found)) = tokio::task::spawn_blocking(move || find(&name)).await
                    && (found.id != record.id || found.node != record.node || found.state != record.state)
                {
                    record.id = found.id;
                    record.node = found.node;
                    record.state = found.state;
                    crate::fsio::write_json(&record_path, &record)?;
                }
            }
            _ = term.recv() => cancel_once(&mut cancelled, &record, &job.name).await,
            _ = int.recv() => cancel_once(&mut cancelled, &record, &job.name).await,
            _ = hup.recv() => cancel_once(&mut cancelled, &record, &job.name).await,
        }
    };
    let deadline = Instant::now() + SETTLE_WAIT;
    loop {
        let (j, r) = (job.clone(), record.clone());
        let asked = tokio::task::spawn_blocking(move || ask(&j, Some(&r)))
            .await
            .ok()
            .flatten();
        if let Some(found) = asked {
            let settled = found.state.as_deref().is_some_and(|s| !is_alive(s))
                || found.reason.as_deref() == Some("TimeLimit");
            record = JobRecord {
                error: None,
                ..found
            };
            if settled {
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(FIND_INTERVAL).await;
    }
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 70,
    };
    if job.confined && !cancelled && code == i32::from(node::CANNOT_CONFINE) {
        let on = record
            .node
            .as_deref()
            .map(|n| format!(" `{n}`"))
            .unwrap_or_default();
        record.error = Some(format!(
            "the node{on} cannot confine the agent (`[sandbox]`); the attempt's log says why"
        ));
    }
    crate::fsio::write_json(&record_path, &record)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(70)))
}

async fn cancel_once(cancelled: &mut bool, record: &JobRecord, name: &str) {
    if std::mem::replace(cancelled, true) {
        return;
    }
    let (id, name) = (record.id.clone(), name.to_owned());
    let _ = tokio::task::spawn_blocking(move || cancel(id.as_deref(), &name)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_read_as_orch_reads_them() {
        let rec = |state: &str, reason: Option<&str>| JobRecord {
            state: Some(state.to_owned()),
            reason: reason.map(str::to_owned),
            ..JobRecord::default()
        };
        let table = [
            (rec("COMPLETED", None), Some(JobEnd::Finished)),
            (
                rec("FAILED", Some("NonZeroExitCode")),
                Some(JobEnd::Finished),
            ),
            (rec("TIMEOUT", None), Some(JobEnd::TimeLimit)),
            (
                rec("COMPLETING", Some("TimeLimit")),
                Some(JobEnd::TimeLimit),
            ),
            (rec("NODE_FAIL", None), Some(JobEnd::Lost)),
            (rec("PREEMPTED", None), Some(JobEnd::Lost)),
            (rec("OUT_OF_MEMORY", None), Some(JobEnd::OutOfMemory)),
            (rec("CANCELLED", None), Some(JobEnd::Cancelled)),
            (rec("RUNNING", None), None),
            (rec("PENDING", Some("Resources")), None),
        ];
        for (record, want) in table {
            assert_eq!(job_end(&record), want, "{record:?}");
        }
    }

    #[test]
    fn scontrol_and_sacct_lines_parse() {
        let line = "JobId=5 JobName=orch-T1-1 UserId=root(0) JobState=TIMEOUT Reason=TimeLimit \
                    Dependency=(null) ExitCode=0:15 NodeList=vm BatchHost=vm";
        let job = parse_scontrol(line).unwrap();
        assert_eq!(job.id.as_deref(), Some("5"));
        assert_eq!(job.state.as_deref(), Some("TIMEOUT"));
        assert_eq!(job.reason.as_deref(), Some("TimeLimit"));
        assert_eq!((job.exit_code, job.signal), (Some(0), Some(15)));
        assert_eq!(job.node.as_deref(), Some("vm"));
        let job = parse_sacct("7", "CANCELLED by 0|0:0|n[1-2]|None\n").unwrap();
        assert_eq!(job.state.as_deref(), Some("CANCELLED"));
        assert_eq!((job.exit_code, job.signal), (Some(0), None));
        assert_eq!(job.node.as_deref(), Some("n[1-2]"));
        assert_eq!(job.reason, None);
        let pending =
            parse_scontrol("JobId=9 JobState=PENDING Reason=Resources NodeList=(null)").unwrap();
        assert_eq!(pending.node, None);
    }

    #[test]
    fn srun_options_come_from_the_settings() {
        let cfg = ExecutorConfig {
            partition: Some("gpu".to_owned()),
            cpus: Some(8),
            mem: Some("8G".to_owned()),
            extra_args: vec!["--exclusive".to_owned()],
            ..ExecutorConfig::default()
        };
        let argv = submit_command(
            &cfg,
            "orch-T1-1-ab",
            Path::new("/w/T1"),
            Duration::from_secs(61),
        );
        assert_eq!(
            argv.join(" "),
            "srun --quiet --job-name=orch-T1-1-ab --nodes=1 --ntasks=1 --chdir=/w/T1 --time=2 \
             --partition=gpu --mem=8G --cpus-per-task=8 --exclusive --"
        );
        assert_eq!(minutes(Duration::from_secs(1)), 1);
        assert_eq!(minutes(Duration::from_secs(45 * 60)), 45);
    }
}
