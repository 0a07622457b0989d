//! The one wrapper for running the `git` CLI.
//!
//! Every invocation gets a fixed environment: the repository-discovery
//! variables are removed (a `GIT_DIR` leaking in from a hook would point git
//! elsewhere), messages are in the C locale, and git never prompts. Exit
//! codes and `--porcelain` output are read; human messages never are (they
//! are passed on as the error's detail). Each call logs its argv, folder and
//! duration at debug level.
//!
//! Every git child runs in a process group of its own, so the signals a
//! terminal sends to its foreground job (Ctrl-C's SIGINT, SIGHUP, `timeout`)
//! reach orch and never a git in the middle of writing a checkout, an index
//! or a worktree's admin files. orch stops in an orderly way: a git command
//! under way is let finish (they are short, and a half-written checkout is
//! worse than a late stop), then nothing more starts.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Variables that would redirect git away from the folder it is run in.
pub const DISCOVERY_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// Set on every git orch runs itself, so that orch's own git hooks stay
/// out of orch's commits (the hooks still chain to the user's).
pub const INTERNAL_VAR: &str = "ORCH_INTERNAL_GIT";

/// Returns the git processes an orch started (they carry [`INTERNAL_VAR`])
/// that still run with their working folder in one of `roots`, each with
/// its start time, git's housekeeping left out. Empty where there is no
/// `/proc`.
pub fn strays(roots: &[PathBuf]) -> Vec<(u32, Option<u64>)> {
    let me = std::process::id();
    let marker = format!("{INTERNAL_VAR}=1");
    let roots: Vec<PathBuf> = roots
        .iter()
        .map(|r| r.canonicalize().unwrap_or_else(|_| r.clone()))
        .collect();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
        })
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| roots.iter().any(|r| cwd.starts_with(r)))
        })
        .filter(|pid| !crate::process::is_zombie(*pid))
        .filter(|pid| !housekeeping(*pid))
        .map(|pid| (pid, crate::process::start_ticks(pid)))
        .collect()
}

/// Returns whether a process is git's own housekeeping (`git gc --auto`,
/// `git maintenance`, which a commit may leave running in the background
/// for long): it changes nothing orch reads, and is not waited for.
fn housekeeping(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|b| *b == 0)
            .any(|a| a == b"gc" || a == b"maintenance")
    })
}

/// Waits, up to `timeout`, for the git processes [`strays`] finds now to
/// end, and returns how many there were. A coordinator killed while its
/// git ran (git has a process group of its own, so that a Ctrl-C meant for
/// orch does not cut it) leaves that git running: the next coordinator
/// waits for it before it reads the repository or moves anything, rather
/// than race it (a `git worktree add` half done looks like a folder in the
/// way).
pub fn wait_for_strays(roots: &[PathBuf], timeout: Duration) -> usize {
    let found = strays(roots);
    let deadline = Instant::now() + timeout;
    let running = |(pid, ticks): &(u32, Option<u64>)| {
        crate::process::is_same(*pid, *ticks, None) && !crate::process::is_zombie(*pid)
    };
    while found.iter().any(running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    found.len()
}

/// A `git` command that could not run or exited non-zero.
#[derive(Debug, thiserror::Error)]
#[error("`git {}` failed in `{}`{}", argv.join(" "), dir.display(), detail(.code, .stderr))]
pub struct CommandError {
    pub argv: Vec<String>,
    pub dir: PathBuf,
    /// `None` when git could not be started or died by a signal.
    pub code: Option<i32>,
    pub stderr: String,
}

fn detail(code: &Option<i32>, stderr: &str) -> String {
    let first = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    match (code, first.is_empty()) {
        (Some(code), true) => format!(" (exit code {code})"),
        (Some(code), false) => format!(" (exit code {code}): {first}"),
        (None, _) if !first.is_empty() => format!(": {first}"),
        (None, _) => String::new(),
    }
}

/// Returns a `git` command for `dir` with the fixed environment, in a
/// process group of its own.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env(INTERNAL_VAR, "1");
    for var in DISCOVERY_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `git args...` in `dir` and returns its output; non-zero exits are errors.
pub fn run<I, S>(dir: &Path, args: I) -> Result<Output, CommandError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let argv: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let start = Instant::now();
    let output = command(dir).args(&args).output();
    tracing::debug!(argv = ?argv, cwd = %dir.display(), elapsed = ?start.elapsed(), "git");
    let output = output.map_err(|e| CommandError {
        argv: argv.clone(),
        dir: dir.to_owned(),
        code: None,
        stderr: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(CommandError {
            argv,
            dir: dir.to_owned(),
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(output)
}

/// Runs git and returns its stdout as text, trimmed of the final newline.
pub fn stdout<I, S>(dir: &Path, args: I) -> Result<String, CommandError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = run(dir, args)?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strays_are_orchs_own_git_in_the_roots_and_are_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let other = dir.path().join("other");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        run(&repo, ["init", "-q"]).unwrap();
        let mut git = command(&repo)
            .args(["-c", "alias.nap=!sleep 0.5", "nap"])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while strays(std::slice::from_ref(&repo)).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !strays(std::slice::from_ref(&repo)).is_empty(),
            "the running git is found"
        );
        assert!(strays(&[other]).is_empty(), "only in the roots given");
        let waited = wait_for_strays(std::slice::from_ref(&repo), Duration::from_secs(30));
        assert!(waited >= 1);
        assert!(strays(std::slice::from_ref(&repo)).is_empty(), "it ended");
        assert!(git.wait().unwrap().success());
    }
}
