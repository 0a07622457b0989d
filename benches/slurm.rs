//! The Slurm executor's cost per task, next to the local executor on the
//! same plan in the same run (docs/scaling.md). Run with `cargo bench
//! --bench slurm` (or `bench/run slurm`); needs what `scripts/slurm-up`
//! needs (root, apt), and says `SKIPPED` otherwise.
//!
//! A 12-task plan whose agent commits one file, `max_parallel = 4`,
//! `--no-merge`, run once with `[executor] kind = "local"` and once with
//! `"slurm"` on a single-node cluster on this machine. Per task: the time
//! from `task.started` to `task.completed` (worktree, agent, collection),
//! median over the tasks. The difference is what Slurm adds: `srun`'s
//! submission and scheduling, `orch __job` asking `squeue`, and the job's
//! final state. Also: how long `scripts/slurm-up` takes to bring the
//! cluster up (packages already installed).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{commit_agent, make_repo, median, ms, ts, write_config};

const TASKS: usize = 12;

fn run(repo: &Path, conf: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .current_dir(repo)
        .args(["run", "--no-merge"])
        .env("SLURM_CONF", conf)
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

/// Median time from `task.started` to `task.completed`.
fn per_task(events: &[serde_json::Value]) -> Duration {
    let started = |id: &str| {
        events
            .iter()
            .find(|e| e["event"] == "task.started" && e["id"] == id)
            .map(|e| ts(&e["ts"]))
            .unwrap()
    };
    let times = events
        .iter()
        .filter(|e| e["event"] == "task.completed")
        .map(|e| {
            ts(&e["ts"])
                .duration_since(started(e["id"].as_str().unwrap()))
                .unwrap_or_default()
        })
        .collect::<Vec<_>>();
    assert_eq!(times.len(), TASKS, "every task completed");
    median(times)
}

fn main() {
    if !common::wanted() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-up");
    let start = Instant::now();
    let out = Command::new(script)
        .arg(&cluster)
        .arg(std::process::id().to_string())
        .output()
        .unwrap();
    let up = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(conf) = stdout.lines().find_map(|l| l.strip_prefix("SLURM_CONF=")) else {
        println!(
            "SKIPPED: slurm bench: scripts/slurm-up failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    };
    let plan: String = (0..TASKS)
        .map(|i| format!("[[task]]\nid = \"T{i}\"\n"))
        .collect();
    let mut medians = Vec::new();
    for kind in ["local", "slurm"] {
        let repo = make_repo(&dir.path().join(kind), 200, 20);
        write_config(
            &repo,
            commit_agent().to_str().unwrap(),
            4,
            &format!("[executor]\nkind = \"{kind}\"\n"),
        );
        std::fs::write(repo.join("plan.toml"), &plan).unwrap();
        medians.push(per_task(&run(&repo, conf)));
    }
    let (local, slurm) = (medians[0], medians[1]);
    let overhead = slurm.saturating_sub(local);
    println!("{TASKS} tasks, max_parallel 4, agent commits one file, --no-merge");
    println!("{:<46} {:>10}", "measure", "median");
    println!("{:<46} {:>10}", "scripts/slurm-up: cluster up", ms(up));
    println!(
        "{:<46} {:>10}",
        "task started -> completed, local",
        ms(local)
    );
    println!(
        "{:<46} {:>10}",
        "task started -> completed, slurm",
        ms(slurm)
    );
    println!(
        "{:<46} {:>10}",
        "Slurm executor overhead per task",
        ms(overhead)
    );
    common::figure(
        "task started -> completed, Slurm executor",
        &ms(slurm),
        &format!("local executor {}", ms(local)),
        Some(slurm.as_secs_f64() / local.as_secs_f64()),
    );
    common::figure(
        "Slurm executor overhead per task (scheduler latency)",
        &ms(overhead),
        "none expected beyond the scheduler's own",
        None,
    );
    common::figure(
        "single-node Slurm up (scripts/slurm-up, installed)",
        &ms(up),
        "seconds",
        None,
    );
}
