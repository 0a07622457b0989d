//! `orch __confine`: the agent's sandbox on a machine where orch's
//! supervisor does not run, a cluster node (docs/scaling.md, "The sandbox").
//!
//! ```text
//!  this machine:  supervisor ──▶ orch __job ──▶ srun … --            (unconfined: orch and srun)
//!  the node:      slurmstepd ──▶ orch __confine <grant> -- agent …   (the agent confined)
//! ```
//!
//! When a run confines its agents, a cluster job's command is
//! [`argv`]: `orch __confine <grant as JSON> -- <agent argv>`. On the node,
//! in the folder the agent works in (the worktree, or the job's clone), it:
//! 1. builds the grant's ruleset for that folder, with a private temp
//!    folder, before the fork, as the supervisor does on this machine
//!    ([`Sandbox::prepare`]). A node that cannot confine (no Landlock, an ABI
//!    older than 3, or one that cannot refuse TCP when the grant asks it to)
//!    exits [`CANNOT_CONFINE`] and says why on stderr (the attempt's log):
//!    the agent never runs unconfined;
//! 2. runs the agent with the ruleset applied in `pre_exec`, `TMPDIR` its
//!    temp folder and `ORCH_COMMITS_FILE` in the grant's run folder (the
//!    supervisor moves those commits into `events.jsonl` when the folder is
//!    shared);
//! 3. waits for it and exits as it did. Stop signals reach every process
//!    of the job step from Slurm, the agent's included; this process lives
//!    on after them only to remove the temp folder.
//!
//! The timeout, the log, `exit.json` and the commits' events stay with the
//! supervisor on the submitting machine. `orch __confine --probe` says
//! whether a node can confine (`orch doctor` runs it as a job).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

use crate::runner::confine::{COMMITS_FILE, COMMITS_VAR, Grant, Sandbox};
use crate::sandbox::{NETWORK_ABI, Support};

/// The hidden subcommand that confines an agent on a node.
pub const CONFINE_COMMAND: &str = "__confine";

/// The exit code of `orch __confine` when it cannot confine the agent
/// (`EX_CONFIG` of `sysexits.h`); `orch __job` records it as the job's
/// error, which is not retried.
pub const CANNOT_CONFINE: u8 = 78;

/// Returns the command a job runs on its node to run `agent` confined by
/// `grant`; `orch` is the `orch` binary as the node sees it.
pub fn argv(orch: &str, grant: &Grant, agent: impl IntoIterator<Item = String>) -> Vec<String> {
    // A `Grant` is paths, strings and a bool: it always serializes.
    let grant = serde_json::to_string(grant).unwrap_or_default();
    let mut argv = vec![
        orch.to_owned(),
        CONFINE_COMMAND.to_owned(),
        grant,
        "--".to_owned(),
    ];
    argv.extend(agent);
    argv
}

/// Returns the node's name, for messages.
fn node_name() -> String {
    std::env::var("SLURMD_NODENAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "the node".to_owned())
}

/// `orch __confine --probe`: says whether this machine can confine (its
/// Landlock ABI on stdout, or why not on stderr), and exits 0 when it can.
pub fn probe_main() -> ExitCode {
    match crate::sandbox::probe() {
        Support::Available { abi } => {
            println!("{}: Landlock ABI {abi}", node_name());
            ExitCode::SUCCESS
        }
        Support::Unavailable(why) => {
            eprintln!("orch: cannot confine the agent on `{}`: {why}", node_name());
            ExitCode::from(CANNOT_CONFINE)
        }
    }
}

/// `orch __confine <grant> -- <argv>`: runs `argv` confined by the grant,
/// in the current folder, and exits as it did.
pub fn main(grant: &str, argv: &[OsString]) -> ExitCode {
    let cannot = |why: String| {
        eprintln!("orch: cannot confine the agent on `{}`: {why}", node_name());
        ExitCode::from(CANNOT_CONFINE)
    };
    let grant: Grant = match serde_json::from_str(grant) {
        Ok(grant) => grant,
        Err(e) => return cannot(format!("the grant does not read: {e}")),
    };
    let Some((program, args)) = argv.split_first() else {
        return cannot("no agent command".to_owned());
    };
    if grant.block_tcp
        && let Support::Available { abi } = crate::sandbox::probe()
        && abi < NETWORK_ABI
    {
        return cannot(format!(
            "`[sandbox] network = false` needs Landlock ABI {NETWORK_ABI} (Linux 6.7), and this kernel has {abi}"
        ));
    }
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => return cannot(format!("cannot read the current folder: {e}")),
    };
    let sandbox = match Sandbox::prepare(&cwd, &grant, &temp_base()) {
        Ok(sandbox) => sandbox,
        Err(e) => return cannot(crate::text::error_chain(&e)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return cannot(format!("cannot start: {e}")),
    };
    let code = runtime.block_on(run(&sandbox, &grant.run_dir, program, args));
    drop(sandbox);
    code
}

/// Returns where the temp folder goes: `TMPDIR` when the node has that
/// folder (a job gets the submitting machine's environment), else `/tmp`.
fn temp_base() -> PathBuf {
    let base = std::env::temp_dir();
    if base.is_dir() {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

async fn run(sandbox: &Sandbox, run_dir: &Path, program: &OsString, args: &[OsString]) -> ExitCode {
    // Caught, not ignored: an exec resets caught signals, so the agent gets
    // Slurm's signals with their usual effect.
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("orch: cannot install signal handlers on `{}`", node_name());
        return ExitCode::from(CANNOT_CONFINE);
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("TMPDIR", sandbox.temp.path())
        .env(COMMITS_VAR, run_dir.join(COMMITS_FILE))
        .kill_on_drop(false);
    let ruleset = std::sync::Arc::clone(&sandbox.ruleset);
    // SAFETY: the closure only calls `Ruleset::restrict_self`, which makes
    // two async-signal-safe system calls and allocates nothing.
    unsafe {
        cmd.pre_exec(move || ruleset.restrict_self());
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            eprintln!(
                "orch: cannot start the agent on `{}`: {}",
                node_name(),
                crate::runner::classify::spawn_error(&program.to_string_lossy(), &cwd, &e)
            );
            return ExitCode::from(127);
        }
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {}
        }
    };
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)),
            (None, None) => ExitCode::from(1),
        },
        Err(e) => {
            eprintln!("orch: lost the agent on `{}`: {e}", node_name());
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_command_carries_the_grant_before_the_agent() {
        let grant = Grant {
            run_dir: "/s/runs/T1/1".into(),
            branch: "orch/T1".to_owned(),
            target: "main".to_owned(),
            allow_write: vec!["/home/u/.cache".into()],
            block_tcp: false,
        };
        let argv = argv("/opt/orch", &grant, ["agent".to_owned(), "-p".to_owned()]);
        assert_eq!(argv[..2], ["/opt/orch", "__confine"]);
        assert_eq!(argv[3..], ["--", "agent", "-p"]);
        let back: Grant = serde_json::from_str(&argv[2]).unwrap();
        assert_eq!(back, grant);
    }
}
