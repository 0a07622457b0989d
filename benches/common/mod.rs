//! Shared by the benchmarks: generated repositories, timing helpers, and
//! running `orch` with a sealed git environment.

#![allow(
    dead_code,
    reason = "each benchmark uses a different part of this module"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Returns a `git` command for `dir` that ignores the machine's config.
pub fn git_command(dir: &Path) -> Command {
    sealed("git", dir)
}

/// Returns a command for `dir` whose git ignores the machine's config.
pub fn sealed(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com");
    cmd
}

/// Runs git; panics on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let out = git_command(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates `dir/repo` with `files` source files spread over `folders`, committed on `main`.
pub fn make_repo(dir: &Path, files: usize, folders: usize) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    for i in 0..files {
        let folder = repo.join(format!("src/mod{:03}", i % folders.max(1)));
        std::fs::create_dir_all(&folder).unwrap();
        let body = format!("// file {i}\npub fn f{i}() -> usize {{\n    {i}\n}}\n").repeat(8);
        std::fs::write(folder.join(format!("file{i:05}.rs")), body).unwrap();
    }
    std::fs::write(repo.join("README.md"), "# bench\n").unwrap();
    git(&repo, &["add", "-A"]);
    // No `gc --auto` in the background (thousands of loose objects start
    // one), to compete with what is measured.
    git(&repo, &["-c", "gc.auto=0", "commit", "-q", "-m", "initial"]);
    repo
}

/// Writes an `.orchestrator.toml` with `agent` as the command.
pub fn write_config(repo: &Path, agent: &str, max_parallel: usize, extra: &str) {
    let config = format!(
        "[git]\ntarget = \"main\"\n\n[agent]\ncommand = [{agent:?}]\nmax_parallel = {max_parallel}\n\n[hooks]\ninstall = false\n\n{extra}\n"
    );
    std::fs::write(repo.join(".orchestrator.toml"), config).unwrap();
}

/// Returns the `orch` binary measured: `ORCH_BENCH_BIN` when set (another
/// build, say the target branch's, for a baseline), else this build's.
pub fn orch_bin() -> PathBuf {
    std::env::var_os("ORCH_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_orch")))
}

/// Runs `orch` with `args` in `repo` and returns the events it recorded.
pub fn run_orch(repo: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(orch_bin())
        .current_dir(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orch {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(repo.join(".orchestrator/events.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Parses an event timestamp.
pub fn ts(v: &serde_json::Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The fixture agent that commits one file.
pub fn commit_agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agents/commit.sh")
}

/// Returns whether `cargo bench` asked for the benchmarks to run (and not
/// `cargo test --all-targets`, which runs this binary without `--bench`).
pub fn wanted() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Prints one figure for `bench/run`'s table, as a tab-separated line
/// starting with `@figure`: the measure, its value, the baseline measured
/// in the same run (or a target), and the ratio to it.
pub fn figure(measure: &str, value: &str, baseline: &str, ratio: Option<f64>) {
    let ratio = ratio.map_or(String::new(), |r| format!("{r:.2}"));
    println!("@figure\t{measure}\t{value}\t{baseline}\t{ratio}");
}
