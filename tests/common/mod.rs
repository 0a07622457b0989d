//! Test environment shared by the integration tests: a sealed temp dir, the
//! `orch` binary and the real `git` CLI run with a fixed environment, and
//! rendering of command output for snapshots (stdout, stderr, exit status).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub mod model_api;

/// A temp dir with a home, a scratch folder and (usually) a repository.
pub struct TestEnv {
    dir: TempDir,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("orch-test-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        TestEnv { dir }
    }

    /// Returns the temp dir's canonical path.
    pub fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    /// Returns the repository folder (created by [`TestEnv::init_repo`]).
    pub fn repo(&self) -> PathBuf {
        self.root().join("repo")
    }

    /// Creates `repo/` with branch `main` and one commit.
    pub fn init_repo(&self) -> PathBuf {
        let repo = self.repo();
        std::fs::create_dir_all(&repo).unwrap();
        self.git(&repo, ["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README.md"), "# Test repo\n").unwrap();
        self.git(&repo, ["add", "README.md"]);
        self.git(&repo, ["commit", "-q", "-m", "initial commit"]);
        repo
    }

    /// Writes a file inside the repository, creating folders.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.repo().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Returns the sealed environment every command runs with.
    pub fn vars(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let root = self.root();
        let fixed = [
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("GIT_CONFIG_SYSTEM", "/dev/null"),
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("GIT_AUTHOR_NAME", "Test Author"),
            ("GIT_AUTHOR_EMAIL", "author@example.com"),
            ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
            ("GIT_COMMITTER_NAME", "Test Committer"),
            ("GIT_COMMITTER_EMAIL", "committer@example.com"),
            ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
            ("GIT_CONFIG_COUNT", "2"),
            ("GIT_CONFIG_KEY_0", "init.defaultBranch"),
            ("GIT_CONFIG_VALUE_0", "main"),
            ("GIT_CONFIG_KEY_1", "commit.gpgsign"),
            ("GIT_CONFIG_VALUE_1", "false"),
            ("LC_ALL", "C"),
            ("NO_COLOR", "1"),
            ("COLUMNS", "100"),
        ];
        let mut vars = vec![
            ("PATH", std::env::var_os("PATH").unwrap_or_default()),
            ("HOME", root.join("home").into()),
            ("TMPDIR", root.join("tmp").into()),
        ];
        vars.extend(fixed.iter().map(|(k, v)| (*k, (*v).into())));
        vars
    }

    fn seal(&self, cmd: &mut Command) {
        cmd.env_clear().envs(self.vars());
    }

    /// Returns an `orch` command run in the repository folder.
    pub fn orch(&self) -> Command {
        self.orch_in(&self.repo())
    }

    /// Starts orch with `args` in the background, its stderr piped (read
    /// by [`wait_exit`]).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.orch()
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Returns an `orch` command run in `dir`.
    pub fn orch_in(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
        self.seal(&mut cmd);
        cmd.current_dir(dir);
        cmd
    }

    /// Runs `orch` with `args` in the repository and renders the result for a snapshot.
    pub fn run<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = self.orch().args(args).output().unwrap();
        self.render(&output)
    }

    /// Runs the real `git` CLI and returns its stdout; panics on failure.
    pub fn git<I, S>(&self, dir: &Path, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        self.seal(&mut cmd);
        let output = cmd.current_dir(dir).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "git failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs the real `git` CLI and returns whether it succeeded.
    pub fn git_ok<I, S>(&self, dir: &Path, args: I) -> bool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        self.seal(&mut cmd);
        cmd.current_dir(dir)
            .args(args)
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Renders output as stdout, then stderr under a marker, then a non-zero exit status.
    pub fn render(&self, output: &Output) -> String {
        let mut text = self.filter(&String::from_utf8_lossy(&output.stdout));
        let stderr = self.filter(&String::from_utf8_lossy(&output.stderr));
        if !stderr.is_empty() {
            text.push_str("------- stderr -------\n");
            text.push_str(&stderr);
        }
        match output.status.code() {
            Some(0) => {}
            Some(code) => text.push_str(&format!("[exit status: {code}]\n")),
            None => text.push_str("[killed by a signal]\n"),
        }
        text
    }

    /// Replaces machine-specific paths with placeholders.
    pub fn filter(&self, text: &str) -> String {
        text.replace(&self.root().display().to_string(), "$TEMP")
    }
}

impl TestEnv {
    /// Copies a file from `tests/fixtures/` into the repository as `dest`.
    pub fn copy_fixture(&self, rel: &str, dest: &str) -> PathBuf {
        let text = std::fs::read_to_string(fixture(rel)).unwrap();
        self.write(dest, &text)
    }
}

/// How long tests wait for something that should happen.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

impl TestEnv {
    /// Writes `.orchestrator.toml` with `command` (a script in
    /// `tests/fixtures/agents/`) as the agent and quick retries, plus `extra`.
    pub fn configure(&self, script: &str, extra: &str) {
        let agent = fixture("agents").join(script);
        let config = format!(
            "[git]\ntarget = \"main\"\nwatch_min_files = 0\n\n[agent]\ncommand = [{agent:?}]\nmax_parallel = 2\ngrace = \"500ms\"\n\n[retry.backoff]\ninitial = \"10ms\"\nmax = \"50ms\"\njitter = false\n\n[hooks]\ninstall = false\n\n{extra}\n"
        );
        self.write(".orchestrator.toml", &config);
    }

    /// Replaces the first `from` in `.orchestrator.toml` with `to`; `from`
    /// must be there, so a test never runs on a config it did not mean.
    pub fn edit_config(&self, from: &str, to: &str) {
        let path = self.repo().join(".orchestrator.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        assert!(config.contains(from), "{from:?} not in the config");
        std::fs::write(path, config.replacen(from, to, 1)).unwrap();
    }

    /// Returns a folder outside the repository that agents and hooks may
    /// write, and the `[sandbox]` table that allows it: for tests whose
    /// hooks or agents leave traces outside their worktree on purpose.
    pub fn outside(&self) -> (PathBuf, String) {
        let dir = self.root().join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        let table = format!(
            "[sandbox]\nallow_write = [{:?}]\n",
            dir.display().to_string()
        );
        (dir, table)
    }

    /// Returns the path of a fixture agent.
    pub fn agent(&self, script: &str) -> String {
        fixture("agents").join(script).display().to_string()
    }

    /// Reads `.orchestrator/state.json`.
    pub fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.repo().join(".orchestrator/state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Returns the worktree of an item in `state.json`; it must have one.
    pub fn worktree_of(&self, id: &str) -> PathBuf {
        let state = self.state();
        let path = state["items"][id]["worktree"].as_str();
        PathBuf::from(path.unwrap_or_else(|| panic!("{id} has no worktree: {state}")))
    }

    /// Returns the status of an item in `state.json`.
    pub fn status_of(&self, id: &str) -> String {
        self.state()["items"][id]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Reads every event from `events.jsonl`.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.repo().join(".orchestrator/events.jsonl"))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Returns the agent process groups recorded in every run folder.
    pub fn agent_groups(&self) -> Vec<i32> {
        let mut out = Vec::new();
        let runs = self.repo().join(".orchestrator/runs");
        for unit in std::fs::read_dir(runs).into_iter().flatten().flatten() {
            for attempt in std::fs::read_dir(unit.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let info = attempt.path().join("supervisor.json");
                let Ok(text) = std::fs::read_to_string(info) else {
                    continue;
                };
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                if let Some(pgid) = v["agent_pgid"].as_i64() {
                    out.push(pgid as i32);
                }
            }
        }
        out
    }

    /// Asserts that no process of any agent group is left (polling briefly,
    /// since killed processes are reaped asynchronously).
    pub fn assert_no_agent_left(&self) {
        for pgid in self.agent_groups() {
            let gone = wait_until(DEADLINE, || group_gone(pgid));
            assert!(gone, "process group {pgid} still has processes");
        }
    }
}

/// Returns whether no live process is left in the group: `kill(-pgid, 0)`
/// finds none, or only zombies waiting for init to collect them.
pub fn group_gone(pgid: i32) -> bool {
    let pid = rustix::process::Pid::from_raw(pgid).unwrap();
    if matches!(
        rustix::process::test_kill_process_group(pid),
        Err(rustix::io::Errno::SRCH)
    ) {
        return true;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
            return false;
        }
    }
    true
}

/// Waits (up to [`DEADLINE`]) for a process started by [`TestEnv::spawn`]
/// to end; returns its status and what it wrote to stderr.
pub fn wait_exit(child: &mut std::process::Child) -> std::process::Output {
    let mut status = None;
    assert!(
        wait_until(DEADLINE, || {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "the run did not end"
    );
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
    }
    std::process::Output {
        status: status.unwrap(),
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    }
}

/// Polls `cond` every 20 ms until it holds or `deadline` passes.
pub fn wait_until(deadline: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Returns the path of a file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Returns insta settings whose filters replace what differs from one run to
/// the next (oids, clock times, durations, `_ms` figures, pids, resource
/// counts) with placeholders, so a snapshot of run or merge output is stable
/// on a busy machine. Temp paths are [`TestEnv::filter`]'s job.
pub fn stable_output() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in [
        (r"\b[0-9a-f]{7,40}\b", "[OID]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TIME]"),
        (r"\[\d\d:\d\d\]", "[MM:SS]"),
        (r"\b(\d+m\d\ds|\d+(\.\d+)?m?s)\b", "[DURATION]"),
        (
            r#""([a-z_]+_ms|pid|peak_rss_kb|state_writes|state_bytes|abi)":\d+"#,
            r#""$1":[N]"#,
        ),
    ] {
        settings.add_filter(pattern, replacement);
    }
    settings
}
