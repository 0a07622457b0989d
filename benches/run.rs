//! `orch run --no-merge`: the cost of giving a task its worktree, next to
//! plain `git worktree add -b` on the same repository in the same run, and the
//! coordinator's own CPU time per task as the plan grows.
//! Run with `cargo bench --bench run` (or `bench/run`).
//!
//! 1. A repository of 5,000 files in 200 folders. Baseline: the median of
//!    `git worktree add -b` on it. orch: a 20-task plan whose agent commits
//!    one file, `max_parallel = 2`; per task, the time from `task.started`
//!    (the scheduler picked it) to the supervisor starting the agent
//!    (`agent_started` in `supervisor.json`, after the watch of the
//!    worktree), median over the tasks. Target: at most 0.5x.
//! 2. 1,000 and 5,000 trivial tasks (agent `true`): the coordinator's CPU
//!    time (`cpu_ms` of `run.finished`, the process itself, not its children)
//!    divided by the number of tasks. It should stay flat.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{commit_agent, git, make_repo, median, ms, run_orch, ts, write_config};

const FILES: usize = 5000;
const FOLDERS: usize = 200;
const TASKS: usize = 20;
const BASELINE_RUNS: usize = 11;

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

fn provisioning(repo: &Path, events: &[serde_json::Value]) -> Duration {
    let times = events
        .iter()
        .filter(|e| e["event"] == "task.started")
        .map(|e| {
            let id = e["id"].as_str().unwrap();
            let info = repo.join(format!(".orchestrator/runs/{id}/1/supervisor.json"));
            let info: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(info).unwrap()).unwrap();
            // The agent starts once its supervisor has watched the worktree;
            // a build that does not say when: its supervisor's start.
            let agent = match &info["agent_started"] {
                serde_json::Value::Null => &info["started"],
                at => at,
            };
            ts(agent).duration_since(ts(&e["ts"])).unwrap_or_default()
        })
        .collect();
    median(times)
}

fn cpu_per_task(dir: &Path, tasks: usize) -> (Duration, Duration) {
    let repo = make_repo(&dir.join(format!("trivial{tasks}")), 20, 2);
    write_config(&repo, "true", 4, "");
    let plan: String = (0..tasks)
        .map(|i| format!("[[task]]\nid = \"T{i}\"\nexpect_changes = false\n"))
        .collect();
    std::fs::write(repo.join("plan.toml"), plan).unwrap();
    let events = run_orch(&repo, &["run", "--no-merge"]);
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
    if !common::wanted() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(&dir.path().join("big"), FILES, FOLDERS);
    let base = baseline(&repo, &dir.path().join("baseline"));
    write_config(&repo, commit_agent().to_str().unwrap(), 2, "");
    let plan: String = (0..TASKS)
        .map(|i| format!("[[task]]\nid = \"T{i}\"\n"))
        .collect();
    std::fs::write(repo.join("plan.toml"), plan).unwrap();
    let events = run_orch(&repo, &["run", "--no-merge"]);
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
    common::figure(
        "task started -> agent started (5,000-file repo)",
        &ms(provision),
        &format!("git worktree add -b {}", ms(base)),
        Some(provision.as_secs_f64() / base.as_secs_f64()),
    );
    for tasks in [1000, 5000] {
        let (cpu, wall) = cpu_per_task(dir.path(), tasks);
        println!(
            "{:<46} {:>10} {:>9}",
            format!("coordinator CPU per task, {tasks} trivial tasks"),
            ms(cpu),
            format!("(wall {})", ms(wall))
        );
        common::figure(
            &format!("coordinator CPU per task, {tasks} trivial tasks, --no-merge"),
            &ms(cpu),
            "flat as tasks grow",
            None,
        );
    }
}
