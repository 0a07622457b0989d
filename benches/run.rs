//! `orch run --no-merge`: the cost of giving a task its worktree, next to
//! plain `git worktree add -b` on the same repository in the same run, and the
//! coordinator's own CPU time per task as the plan grows.
//! Run with `cargo bench --bench run` (or `bench/run`).
//!
//! 1. A repository of 5,000 files in 200 folders. Baseline: the median of
//!    `git worktree add -b` on it. orch: a 20-task plan whose agent commits
//!    one file, `max_parallel = 2`; per task, the time from `task.started`
//!    (the scheduler picked it) to the supervisor starting the agent
//!    (`supervisor.json`), median over the tasks. Target: at most 0.5x.
//! 2. 1,000 and 5,000 trivial tasks (agent `true`): the coordinator's CPU
//!    time (`cpu_ms` of `run.finished`, the process itself, not its children)
//!    divided by the number of tasks. It should stay flat.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FILES: usize = 5000;
const FOLDERS: usize = 200;
const TASKS: usize = 20;
const BASELINE_RUNS: usize = 11;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_repo(dir: &Path, files: usize, folders: usize) -> PathBuf {
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
    git(&repo, &["commit", "-q", "-m", "initial"]);
    repo
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn baseline(repo: &Path, root: &Path) -> Duration {
    let times = (0..BASELINE_RUNS)
        .map(|i| {
            let path = root.join(format!("wt{i}"));
            let start = Instant::now();
            git(
                repo,
                &[
                    "worktree",
                    "add",
                    "-q",
                    "-b",
                    &format!("bench/{i}"),
                    path.to_str().unwrap(),
                    "main",
                ],
            );
            start.elapsed()
        })
        .collect();
    median(times)
}

fn write_config(repo: &Path, agent: &str, max_parallel: usize) {
    let config = format!(
        "[git]\ntarget = \"main\"\n\n[agent]\ncommand = [{agent:?}]\nmax_parallel = {max_parallel}\n\n[hooks]\ninstall = false\n"
    );
    std::fs::write(repo.join(".orchestrator.toml"), config).unwrap();
}

fn run_orch(repo: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .current_dir(repo)
        .args(["run", "--no-merge"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orch run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(repo.join(".orchestrator/events.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ts(v: &serde_json::Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

fn provisioning(repo: &Path, events: &[serde_json::Value]) -> Duration {
    let times = events
        .iter()
        .filter(|e| e["event"] == "task.started")
        .map(|e| {
            let id = e["id"].as_str().unwrap();
            let info = repo.join(format!(".orchestrator/runs/{id}/1/supervisor.json"));
            let info: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(info).unwrap()).unwrap();
            ts(&info["started"])
                .duration_since(ts(&e["ts"]))
                .unwrap_or_default()
        })
        .collect();
    median(times)
}

fn cpu_per_task(dir: &Path, tasks: usize) -> (Duration, Duration) {
    let repo = make_repo(&dir.join(format!("trivial{tasks}")), 20, 2);
    write_config(&repo, "true", 4);
    let plan: String = (0..tasks)
        .map(|i| format!("[[task]]\nid = \"T{i}\"\nexpect_changes = false\n"))
        .collect();
    std::fs::write(repo.join("plan.toml"), plan).unwrap();
    let events = run_orch(&repo);
    let finished = events
        .iter()
        .rev()
        .find(|e| e["event"] == "run.finished")
        .unwrap();
    let cpu = Duration::from_millis(finished["cpu_ms"].as_u64().unwrap_or(0));
    let wall = Duration::from_millis(finished["elapsed_ms"].as_u64().unwrap_or(0));
    (cpu / tasks as u32, wall / tasks as u32)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(&dir.path().join("big"), FILES, FOLDERS);
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agents/commit.sh");
    let base = baseline(&repo, &dir.path().join("baseline"));
    write_config(&repo, agent.to_str().unwrap(), 2);
    let plan: String = (0..TASKS)
        .map(|i| format!("[[task]]\nid = \"T{i}\"\n"))
        .collect();
    std::fs::write(repo.join("plan.toml"), plan).unwrap();
    let events = run_orch(&repo);
    let provision = provisioning(&repo, &events);
    println!(
        "repo: {FILES} files in {FOLDERS} folders; {TASKS} tasks, max_parallel 2, agent commits one file"
    );
    println!("{:<46} {:>10} {:>9}", "measure", "median", "ratio");
    println!(
        "{:<46} {:>10} {:>9}",
        "git worktree add -b (baseline)",
        ms(base),
        "1.00"
    );
    println!(
        "{:<46} {:>10} {:>9.2}",
        "orch: task started -> agent started",
        ms(provision),
        provision.as_secs_f64() / base.as_secs_f64()
    );
    for tasks in [1000, 5000] {
        let (cpu, wall) = cpu_per_task(dir.path(), tasks);
        println!(
            "{:<46} {:>10} {:>9}",
            format!("coordinator CPU per task, {tasks} trivial tasks"),
            ms(cpu),
            format!("(wall {})", ms(wall))
        );
    }
}
