//! Scale: a 5,000-task plan run to the end, merges included, with a trivial
//! agent (`true`; tasks allow no changes) and `max_parallel = 16`. Reports
//! the wall time, the coordinator's CPU time per task, its peak resident
//! memory, and how many `state.json` writes it made and their bytes (from
//! `run.finished`). Run with `cargo bench --bench scale` (or `bench/run`);
//! `ORCH_BENCH_TASKS` changes the size.

mod common;

use std::time::Instant;

use common::{figure, run_orch, write_config};

fn main() {
    if !common::wanted() {
        return;
    }
    let tasks: usize = std::env::var("ORCH_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
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
}
