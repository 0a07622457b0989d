//! Scale: a plan of 5,000 tasks run to the end, merges included, with a
//! trivial agent (`true`; tasks allow no changes) and `max_parallel = 16`.
//! Reports the wall time, the coordinator's CPU time per task, its peak
//! resident memory, and how many `state.json` writes it made and their
//! bytes (from `run.finished`). Then the same with 500 tasks, for the
//! state bytes written per task (target: at 5,000 tasks at most 2x the
//! figure at 500). Run with `cargo bench --bench scale` (or `bench/run`);
//! `ORCH_BENCH_TASKS` (comma separated) changes the sizes.

mod common;

use std::time::Instant;

use common::{figure, run_orch, write_config};

fn main() {
    if !common::wanted() {
        return;
    }
    let sizes: Vec<usize> = std::env::var("ORCH_BENCH_TASKS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![5000, 500]);
    let mut per_task = Vec::new();
    for (i, tasks) in sizes.iter().copied().enumerate() {
        let bytes = run(tasks, i == 0);
        per_task.push((tasks, bytes / tasks as f64));
    }
    for (tasks, bytes) in &per_task {
        let small = per_task
            .iter()
            .min_by_key(|(t, _)| *t)
            .filter(|(t, _)| t != tasks);
        figure(
            &format!("{tasks}-task run: state bytes written per task"),
            &format!("{:.1} KiB", bytes / 1024.0),
            &small.map_or(String::new(), |(t, b)| {
                format!("{:.1} KiB at {t} tasks (target 2x)", b / 1024.0)
            }),
            small.map(|(_, b)| bytes / b),
        );
    }
}

/// Runs `tasks` tasks to the end and returns the state bytes written;
/// prints every figure when `all` is set.
fn run(tasks: usize, all: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::make_repo(dir.path(), 10, 2);
    write_config(&repo, "true", 16, "");
    let plan: String = (0..tasks)
        .map(|i| {
            let deps = if i >= 16 {
                format!("depends_on = [\"T{}\"]\n", i - 16)
            } else {
                String::new()
            };
            format!("[[task]]\nid = \"T{i}\"\nexpect_changes = false\n{deps}")
        })
        .collect();
    std::fs::write(repo.join("plan.toml"), plan).unwrap();
    let start = Instant::now();
    let events = run_orch(&repo, &["run"]);
    let wall = start.elapsed();
    let finished = events
        .iter()
        .rev()
        .find(|e| e["event"] == "run.finished")
        .expect("run.finished");
    let merged = finished["counts"]["merged"].as_u64().unwrap_or(0);
    assert_eq!(merged as usize, tasks, "every task merged: {finished}");
    let cpu_ms = finished["cpu_ms"].as_u64().unwrap_or(0) as f64;
    let rss_mib = finished["peak_rss_kb"].as_u64().unwrap_or(0) as f64 / 1024.0;
    let writes = finished["state_writes"].as_u64().unwrap_or(0);
    let bytes_mib = finished["state_bytes"].as_u64().unwrap_or(0) as f64 / (1 << 20) as f64;
    println!(
        "{tasks} tasks (chains of 16), agent `true`, max_parallel 16, merges included: all merged"
    );
    println!(
        "  wall time                 {:.1} s ({:.1} ms per task)",
        wall.as_secs_f64(),
        wall.as_secs_f64() * 1000.0 / tasks as f64
    );
    println!(
        "  coordinator CPU per task  {:.2} ms",
        cpu_ms / tasks as f64
    );
    println!("  coordinator peak RSS      {rss_mib:.1} MiB");
    println!("  state.json writes         {writes} ({bytes_mib:.1} MiB in all)");
    let bytes = finished["state_bytes"].as_u64().unwrap_or(0) as f64;
    if !all {
        return bytes;
    }
    figure(
        &format!("{tasks}-task run, merges included: wall per task"),
        &format!("{:.1} ms", wall.as_secs_f64() * 1000.0 / tasks as f64),
        "",
        None,
    );
    figure(
        &format!("{tasks}-task run: coordinator CPU per task"),
        &format!("{:.2} ms", cpu_ms / tasks as f64),
        "",
        None,
    );
    figure(
        &format!("{tasks}-task run: coordinator peak RSS"),
        &format!("{rss_mib:.1} MiB"),
        "",
        None,
    );
    figure(
        &format!("{tasks}-task run: state.json writes"),
        &format!("{writes} ({bytes_mib:.1} MiB)"),
        "",
        None,
    );
    bytes
}
