//! The merge queue's cost, next to plain git in the same run.
//! Run with `cargo bench --bench merge` (or `bench/run`).
//!
//! 1. Merges without checks: 15 task branches waiting in the queue on a
//!    repository of 5,000 files, `orch merge` from the tasks joining the
//!    queue to the target moving (the longest `merge_ms`; the cleanup of
//!    worktrees and branches after it is not counted), per merge (the queue
//!    merges them as one batch, each with its own merge commit, and moves
//!    the target once),
//!    next to the median `git merge --no-ff` of the same branches in a
//!    worktree. Measured twice: with the target checked out in the
//!    repository's own checkout (which orch then fast-forwards), and with it
//!    not checked out (a pure ref update). Target: at most 0.25x. (Before
//!    issue 14 this was one merge's own `merge_ms`, the queue merging one
//!    task at a time.)
//! 2. A whole run of 20 tasks (the agent commits one file, no checks,
//!    `max_parallel = 2`) next to a plain bash script that does, per task,
//!    `git worktree add`, the agent, `git commit`, `git merge --no-ff`,
//!    `git worktree remove`. Target: at most 0.5x.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    commit_agent, git, git_command, make_repo, median, ms, run_orch, sealed, write_config,
};

const FILES: usize = 5000;
const FOLDERS: usize = 200;
const MERGES: usize = 15;
const TASKS: usize = 20;

fn plan(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[task]]\nid = \"T{i}\"\n"))
        .collect()
}

/// Prepares a repository whose `MERGES` tasks wait in the merge queue.
fn queued_repo(dir: &Path) -> std::path::PathBuf {
    let repo = make_repo(dir, FILES, FOLDERS);
    write_config(&repo, commit_agent().to_str().unwrap(), 2, "");
    std::fs::write(repo.join("plan.toml"), plan(MERGES)).unwrap();
    run_orch(&repo, &["run", "--no-merge"]);
    repo
}

/// Returns the time per merge: from the tasks joining the queue to the
/// target moving (the longest `merge_ms`, measured by the coordinator),
/// over the tasks merged.
fn merge_times(events: &[serde_json::Value]) -> Duration {
    let times: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "task.merged")
        .filter_map(|m| m["merge_ms"].as_u64())
        .collect();
    Duration::from_millis(*times.iter().max().unwrap()) / times.len() as u32
}

/// Merges copies of the task branches with `git merge --no-ff` in a worktree
/// at the original target, and returns the median time of one merge.
fn baseline(repo: &Path, root: &Path) -> Duration {
    let wt = root.join("baseline-wt");
    let initial = git_command(repo)
        .args(["rev-list", "--max-parents=0", "main"])
        .output()
        .unwrap();
    let initial = String::from_utf8(initial.stdout).unwrap().trim().to_owned();
    git(
        repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "baseline",
            wt.to_str().unwrap(),
            &initial,
        ],
    );
    let times = (0..MERGES)
        .map(|i| {
            let branch = format!("copy/T{i}");
            let start = Instant::now();
            git(
                &wt,
                &[
                    "merge",
                    "--no-ff",
                    "-q",
                    "-m",
                    &format!("Merge T{i}"),
                    &branch,
                ],
            );
            start.elapsed()
        })
        .collect();
    median(times)
}

fn script_run(dir: &Path) -> Duration {
    let repo = make_repo(dir, FILES, FOLDERS);
    let agent = commit_agent();
    let script = format!(
        r#"set -e
for i in $(seq 0 {last}); do
  git worktree add -q -b task/T$i ../wt/T$i main
  (cd ../wt/T$i && ORCH_TASK_ID=T$i ORCH_ATTEMPT=1 {agent} < /dev/null)
  (cd ../wt/T$i && git add -A && {{ git diff --cached --quiet || git commit -q -m leftovers; }})
  git merge --no-ff -q -m "Merge T$i" task/T$i
  git worktree remove ../wt/T$i
done
"#,
        last = TASKS - 1,
        agent = agent.display()
    );
    let start = Instant::now();
    let out = sealed("bash", &repo)
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn orch_run(dir: &Path) -> Duration {
    let repo = make_repo(dir, FILES, FOLDERS);
    write_config(&repo, commit_agent().to_str().unwrap(), 2, "");
    std::fs::write(repo.join("plan.toml"), plan(TASKS)).unwrap();
    let start = Instant::now();
    run_orch(&repo, &["run"]);
    start.elapsed()
}

fn main() {
    if !common::wanted() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    let checked_out = queued_repo(&dir.path().join("a"));
    for i in 0..MERGES {
        git(
            &checked_out,
            &["branch", &format!("copy/T{i}"), &format!("orch/T{i}")],
        );
    }
    let events = run_orch(&checked_out, &["merge"]);
    let orch_checked_out = merge_times(&events);
    let base = baseline(&checked_out, dir.path());
    let base_d = base;

    let detached = queued_repo(&dir.path().join("c"));
    git(&detached, &["switch", "-q", "-c", "elsewhere"]);
    let events = run_orch(&detached, &["merge"]);
    let orch_ref_only = merge_times(&events);

    println!("repo: {FILES} files in {FOLDERS} folders; {MERGES} merges without checks, per merge");
    println!("{:<58} {:>10} {:>7}", "measure", "median", "ratio");
    println!(
        "{:<58} {:>10} {:>7}",
        "git merge --no-ff in a worktree (baseline)",
        ms(base),
        "1.00"
    );
    let ratio = |d: Duration, b: Duration| d.as_secs_f64() / b.as_secs_f64();
    println!(
        "{:<58} {:>10} {:>7.2}",
        "orch merge, target not checked out (ref update)",
        ms(orch_ref_only),
        ratio(orch_ref_only, base)
    );
    println!(
        "{:<58} {:>10} {:>7.2}",
        "orch merge, target checked out (fast-forwards it)",
        ms(orch_checked_out),
        ratio(orch_checked_out, base)
    );

    let script = script_run(&dir.path().join("s"));
    let orch = orch_run(&dir.path().join("o"));
    println!();
    println!("whole run: {TASKS} tasks, agent commits one file, no checks");
    println!("{:<58} {:>10} {:>7}", "measure", "per task", "ratio");
    println!(
        "{:<58} {:>10} {:>7}",
        "bash: worktree add, agent, commit, merge --no-ff, remove",
        ms(script / TASKS as u32),
        "1.00"
    );
    println!(
        "{:<58} {:>10} {:>7.2}",
        "orch run (max_parallel 2)",
        ms(orch / TASKS as u32),
        ratio(orch, script)
    );
    let base = format!("git merge --no-ff {}", ms(base));
    common::figure(
        "per merge, 15 queued, no checks, target not checked out",
        &ms(orch_ref_only),
        &base,
        Some(ratio(orch_ref_only, base_d)),
    );
    common::figure(
        "per merge, 15 queued, no checks, target checked out",
        &ms(orch_checked_out),
        &base,
        Some(ratio(orch_checked_out, base_d)),
    );
    common::figure(
        &format!("whole run per task, {TASKS} tasks"),
        &ms(orch / TASKS as u32),
        &format!("bash script {}", ms(script / TASKS as u32)),
        Some(ratio(orch, script)),
    );
}
