//! The merge queue at the speed of the checks (issue 14).
//! Run with `cargo bench --bench queue` (or `bench/run queue`).
//!
//! 20 tasks finish together (20 agents at once, each commits one file), and
//! every candidate runs one check that sleeps 5 s. Measured: from the first
//! `task.completed` to the last `task.merged`, for `merge.batch = 1` with
//! `merge.max_parallel_checks = 1` (the queue before issue 14: each task
//! checked alone, one at a time) and for the defaults (batches of 8, two
//! checked at once); then the same with one task whose change makes the
//! check fail (`on_check_failure = "stop"`, so the others' landing is what
//! is timed). Also the queue's throughput: tasks landed per minute of check
//! time (each check run counted in full, stopped ones included).
//! Targets: all green at most 0.2x of `batch = 1`; one red at most 0.4x.
//!
//! `ORCH_BENCH_CHECK_SECS` sets the check's length (a quick look: 1), and
//! `ORCH_BENCH_QUEUE_TASKS` the number of tasks (20; the first
//! measurement was 8 tasks with a 3 s check).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{commit_agent, figure, make_repo, run_orch, ts, write_config};

/// The number of tasks, unless `ORCH_BENCH_QUEUE_TASKS` says otherwise.
const TASKS: usize = 20;
/// The task whose change makes the check fail in the red runs (the last
/// one when there are fewer).
const RED: usize = 7;

fn plan(tasks: usize) -> String {
    (0..tasks)
        .map(|i| format!("[[task]]\nid = \"T{i:02}\"\n"))
        .collect()
}

/// What one run of the queue took.
struct Measured {
    /// First task finished to last task merged.
    wall: Duration,
    landed: usize,
    check_runs: usize,
}

fn measure(
    dir: &Path,
    tasks: usize,
    batch: Option<(u32, u32)>,
    red: bool,
    check_secs: u64,
) -> Measured {
    let repo = make_repo(dir, 200, 20);
    let culprit = if red {
        format!(" && test ! -e work-T{:02}.txt", RED.min(tasks - 1))
    } else {
        String::new()
    };
    let merge = match batch {
        Some((batch, parallel)) => {
            format!("batch = {batch}\nmax_parallel_checks = {parallel}\n")
        }
        None => String::new(),
    };
    let extra = format!(
        "[merge]\non_check_failure = \"stop\"\n{merge}\n[policy]\nchecks = [{{ name = \"slow\", run = \"sleep {check_secs}{culprit}\" }}]\n"
    );
    write_config(&repo, commit_agent().to_str().unwrap(), tasks, &extra);
    std::fs::write(repo.join("plan.toml"), plan(tasks)).unwrap();
    let events = run_orch_allowing_failures(&repo);
    let first_done = events
        .iter()
        .filter(|e| e["event"] == "task.completed")
        .map(|e| ts(&e["ts"]))
        .min()
        .unwrap();
    let merged: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "task.merged")
        .map(|e| ts(&e["ts"]))
        .collect();
    let last = merged.iter().max().copied().unwrap();
    Measured {
        wall: last.duration_since(first_done).unwrap(),
        landed: merged.len(),
        check_runs: events
            .iter()
            .filter(|e| e["event"] == "check.started")
            .count(),
    }
}

/// Runs `orch run`; a red run ends with a failed task (exit 1).
fn run_orch_allowing_failures(repo: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orch"))
        .current_dir(repo)
        .arg("run")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "orch run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = run_orch;
    let text = std::fs::read_to_string(repo.join(".orchestrator/events.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Tasks landed per minute of check time.
fn throughput(m: &Measured, check_secs: u64) -> f64 {
    m.landed as f64 / (m.check_runs as f64 * check_secs as f64 / 60.0)
}

fn main() {
    if !common::wanted() {
        return;
    }
    let check_secs: u64 = std::env::var("ORCH_BENCH_CHECK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let tasks: usize = std::env::var("ORCH_BENCH_QUEUE_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(TASKS);
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut run = |batch, red| {
        n += 1;
        measure(
            &dir.path().join(format!("r{n}")),
            tasks,
            batch,
            red,
            check_secs,
        )
    };
    let one_by_one = Some((1, 1));
    let green_1 = run(one_by_one, false);
    let green = run(None, false);
    let red_1 = run(one_by_one, true);
    let red = run(None, true);
    println!("{tasks} tasks finishing together, one check of {check_secs} s per candidate");
    println!(
        "{:<44} {:>10} {:>8} {:>7} {:>16}",
        "queue", "wall", "checks", "landed", "per check-min"
    );
    for (name, m) in [
        ("all green, batch = 1 (one at a time)", &green_1),
        ("all green, defaults (batch 8, 2 at once)", &green),
        ("one red, batch = 1 (one at a time)", &red_1),
        ("one red, defaults (batch 8, 2 at once)", &red),
    ] {
        println!(
            "{name:<44} {:>10} {:>8} {:>7} {:>16.1}",
            secs(m.wall),
            m.check_runs,
            m.landed,
            throughput(m, check_secs)
        );
    }
    let ratio = |a: &Measured, b: &Measured| a.wall.as_secs_f64() / b.wall.as_secs_f64();
    let label = |what: &str| format!("queue, {tasks} tasks, {check_secs} s check, {what}");
    figure(
        &label("all green, batch = 1: first finished to last merged"),
        &secs(green_1.wall),
        "",
        None,
    );
    figure(
        &label("all green, defaults: first finished to last merged"),
        &secs(green.wall),
        &format!("batch = 1 {} (target 0.2x)", secs(green_1.wall)),
        Some(ratio(&green, &green_1)),
    );
    figure(
        &label("one red, batch = 1: first finished to last merged"),
        &secs(red_1.wall),
        "",
        None,
    );
    figure(
        &label("one red, defaults: first finished to last merged"),
        &secs(red.wall),
        &format!("batch = 1 {} (target 0.4x)", secs(red_1.wall)),
        Some(ratio(&red, &red_1)),
    );
    for (what, m, base) in [("all green", &green, &green_1), ("one red", &red, &red_1)] {
        figure(
            &label(&format!("{what}, tasks landed per check-minute")),
            &format!("{:.1}", throughput(m, check_secs)),
            &format!("batch = 1 {:.1}", throughput(base, check_secs)),
            Some(throughput(m, check_secs) / throughput(base, check_secs)),
        );
    }
}
