//! Per-task cost as the repository grows: the same run on generated
//! repositories of 500, 5,000 and 50,000 files (`ORCH_BENCH_FILES`, comma
//! separated, changes the sizes), each packed as a clone has it; 12 tasks
//! (`ORCH_BENCH_TASKS` changes the count). Run with `cargo bench --bench
//! files` (or `bench/run`).
//!
//! For each size, on clones of the same repository, each over a second
//! old before it is used (see `clone`):
//!
//! 1. The plain-git loop: per task `git worktree add`, the agent (it commits
//!    one file; timed alone), `git add -A` and a commit of what is left,
//!    `git merge --no-ff` in the main checkout (timed alone: the baseline of
//!    one merge), `git worktree remove`. The script reads bash's own clock
//!    (`EPOCHREALTIME`), so that timing it starts no process.
//! 2. `orch run` of the same tasks, one at a time (`max_parallel = 1`),
//!    three times (`ORCH_BENCH_ROUNDS`), the builds taking turns (in the
//!    other order each round), each figure the median of its runs; the
//!    target checked out in the main checkout (orch fast-forwards it): the
//!    whole run per task, the coordinator's own CPU per task (`cpu_ms` of
//!    `run.finished`) and with its children (git, hooks; the agents too),
//!    the run's own time per task (the whole run less its agents' time,
//!    from each agent's start in `supervisor.json` to its `exit.json`)
//!    beside the loop's (the loop less its agents'),
//!    the median time from the agent's exit (`exit.json`) to
//!    `task.completed` (on the critical path: the next task starts then),
//!    and from `task.started` to the agent's start (the worktree made or
//!    recycled, the supervisor started, the worktree's watch set up).
//! 3. One merge: on a third clone, each task in turn is queued (`orch run
//!    --no-merge`) and merged alone (`orch merge`, no agent at work
//!    meanwhile: tasks queued together land together and share one
//!    `merge_ms`), the median merge (from joining the queue to the target
//!    and its checkout moved: `merge_ms` of `task.merged`, read to the
//!    microsecond from the debug log, see `orch_merge`), next to the median
//!    `git merge --no-ff` of step 1.
//!
//! With `ORCH_BENCH_BASE` set to another `orch` binary (say the target
//! branch's, built elsewhere), steps 2 and 3 run with it too, on clones of
//! the same repository, and its figures are printed beside this build's as
//! the baseline of the same run.
//!
//! Targets: coordinator CPU per task at 50,000 files at most 2x the figure
//! at 5,000; agent exit -> task completed at 50,000 files at most 50 ms;
//! one merge at most 0.25x `git merge --no-ff`; the whole run per task at
//! most 0.25x the plain-git loop at every size.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{commit_agent, figure, git, median, ms, sealed, ts, write_config};

/// Tasks per run: 12, or `ORCH_BENCH_TASKS` (issue 15 measured with 20).
fn tasks() -> usize {
    count_from_env("ORCH_BENCH_TASKS", 12)
}

/// A positive count from `var`, or `default`.
fn count_from_env(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn sizes() -> Vec<usize> {
    std::env::var("ORCH_BENCH_FILES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![500, 5000, 50_000])
}

/// The first `n` tasks.
fn plan(n: usize) -> String {
    (0..n)
        .map(|i| format!("[[task]]\nid = \"T{i}\"\n"))
        .collect()
}

/// Makes the repository once per size, packed (every object of a
/// generated repository is loose otherwise, and git then stats one object
/// file per path, which no cloned repository does).
fn template(dir: &Path, files: usize) -> PathBuf {
    let repo = common::make_repo(dir, files, (files / 25).max(1));
    git(&repo, &["gc", "-q"]);
    repo
}

/// Clones the template into `dir/repo`, the target `main` checked out,
/// and waits until the checkout is over a second old: git compares file
/// times with the index's to the second, so for a second after the clone
/// every entry is racily clean, and each git that writes the index reads
/// every file again (one merge at 500 files took 6 to 7 ms in that second,
/// 4 ms after it). A person's checkout was not written a moment ago.
fn clone(template: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let repo = dir.join("repo");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--no-local",
            template.to_str().unwrap(),
            repo.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(1100));
    repo
}

/// What the plain-git loop measured.
struct Loop {
    /// Wall time per task.
    task: Duration,
    /// The agent's time per task (the mean).
    agent: Duration,
    /// The median `git merge --no-ff`.
    merge: Duration,
}

/// Runs the plain-git loop.
fn plain_git(repo: &Path) -> Loop {
    let merges = repo.join("../merge-times");
    let agents = repo.join("../agent-times");
    let script = format!(
        r#"set -e
now() {{ t=${{EPOCHREALTIME/[.,]/}}; }}
for i in $(seq 0 {last}); do
  git worktree add -q -b task/T$i ../wt/T$i main
  now; s=$t
  (cd ../wt/T$i && ORCH_TASK_ID=T$i ORCH_ATTEMPT=1 {agent} < /dev/null)
  now; echo $(( t - s )) >> {agents}
  (cd ../wt/T$i && git add -A && {{ git diff --cached --quiet || git commit -q -m leftovers; }})
  now; s=$t
  git merge --no-ff -q -m "Merge T$i" task/T$i
  now; echo $(( t - s )) >> {merges}
  git worktree remove ../wt/T$i
done
"#,
        last = tasks() - 1,
        agent = commit_agent().display(),
        agents = agents.display(),
        merges = merges.display(),
    );
    let start = Instant::now();
    let out = sealed("bash", repo)
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let times = |file: &Path| -> Vec<Duration> {
        std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .map(|l| Duration::from_micros(l.trim().parse().unwrap()))
            .collect()
    };
    let n = tasks() as u32;
    Loop {
        task: wall / n,
        agent: times(&agents).iter().sum::<Duration>() / n,
        merge: median(times(&merges)),
    }
}

/// What one `orch run` measured, per task.
#[derive(Clone, Copy)]
struct Orch {
    wall: Duration,
    cpu: Duration,
    cpu_with_children: Duration,
    exit_to_completed: Duration,
    /// The agents' time per task (the mean): from each agent's start to
    /// its `exit.json`.
    agent: Duration,
    /// From `task.started` to the agent's start (`agent_started` in
    /// `supervisor.json`; a build that does not record it: the
    /// supervisor's own start, which it then follows at once).
    start_to_agent: Duration,
}

impl Orch {
    /// The median of each figure over `runs`.
    fn median(runs: &[Orch]) -> Orch {
        let of = |f: fn(&Orch) -> Duration| median(runs.iter().map(f).collect());
        Orch {
            wall: of(|o| o.wall),
            cpu: of(|o| o.cpu),
            cpu_with_children: of(|o| o.cpu_with_children),
            exit_to_completed: of(|o| o.exit_to_completed),
            agent: of(|o| o.agent),
            start_to_agent: of(|o| o.start_to_agent),
        }
    }
}

/// Whole runs per build and size, the builds alternated: 3, or
/// `ORCH_BENCH_ROUNDS`.
fn rounds() -> usize {
    count_from_env("ORCH_BENCH_ROUNDS", 3)
}

fn orch_command(bin: &Path, repo: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

fn events(repo: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(repo.join(".orchestrator/events.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Merges the tasks one at a time: each in turn is queued (`orch run
/// --no-merge` of a plan that grows by one task) and merged alone (`orch
/// merge`; the tasks queued together land together and share one
/// `merge_ms`); returns the median merge.
///
/// Each merge is read to the microsecond from the coordinator's debug log
/// (`took_us` of "landed"), since `merge_ms` of `task.merged` is whole
/// milliseconds, truncated, and a merge takes a few. A build that does not
/// log it (an older one, as the baseline) is read from `merge_ms` plus
/// half a millisecond, the middle of the millisecond it truncated.
fn orch_merge(bin: &Path, repo: &Path) -> Duration {
    write_config(repo, commit_agent().to_str().unwrap(), 1, "");
    let mut logged = Vec::new();
    for n in 1..=tasks() {
        std::fs::write(repo.join("plan.toml"), plan(n)).unwrap();
        let status = orch_command(bin, repo, &["run", "--no-merge"])
            .status()
            .unwrap();
        assert!(status.success(), "orch run --no-merge: {status}");
        let out = orch_command(bin, repo, &["merge"])
            .env("RUST_LOG", "orch::coordinator::merging=debug")
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success(), "orch merge: {}", out.status);
        logged.extend(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| l.contains(" landed "))
                .filter_map(|l| l.split("took_us=").nth(1))
                .filter_map(|v| v.split_whitespace().next()?.parse().ok())
                .map(Duration::from_micros),
        );
    }
    let merges: Vec<Duration> = events(repo)
        .iter()
        .filter(|e| e["event"] == "task.merged")
        .filter_map(|m| m["merge_ms"].as_u64().map(Duration::from_millis))
        .map(|truncated| truncated + Duration::from_micros(500))
        .collect();
    assert_eq!(merges.len(), tasks(), "every task merged once");
    if logged.len() == merges.len() {
        median(logged)
    } else {
        median(merges)
    }
}

fn orch(bin: &Path, repo: &Path) -> Orch {
    write_config(repo, commit_agent().to_str().unwrap(), 1, "");
    std::fs::write(repo.join("plan.toml"), plan(tasks())).unwrap();
    let start = Instant::now();
    let mut child = orch_command(bin, repo, &["run"]).spawn().unwrap();
    let (status, usage) = wait_with_usage(&mut child);
    let wall = start.elapsed();
    assert!(status == 0, "orch run exited {status}");
    let events = events(repo);
    let finished = events
        .iter()
        .rev()
        .find(|e| e["event"] == "run.finished")
        .unwrap();
    assert_eq!(
        finished["counts"]["merged"].as_u64(),
        Some(tasks() as u64),
        "{finished}"
    );
    let cpu = Duration::from_millis(finished["cpu_ms"].as_u64().unwrap());
    let latencies = events
        .iter()
        .filter(|e| e["event"] == "task.completed")
        .map(|e| {
            let exit = run_file(repo, e, "exit.json");
            ts(&e["ts"])
                .duration_since(ts(&exit["finished"]))
                .unwrap_or_default()
        })
        .collect();
    let (starts, agents): (Vec<Duration>, Vec<Duration>) = events
        .iter()
        .filter(|e| e["event"] == "task.started")
        .map(|e| {
            let supervisor = run_file(repo, e, "supervisor.json");
            let exit = run_file(repo, e, "exit.json");
            let agent = match &supervisor["agent_started"] {
                serde_json::Value::Null => exit["started"].clone(),
                at => at.clone(),
            };
            (
                ts(&agent).duration_since(ts(&e["ts"])).unwrap_or_default(),
                ts(&exit["finished"])
                    .duration_since(ts(&agent))
                    .unwrap_or_default(),
            )
        })
        .unzip();
    let n = tasks() as u32;
    Orch {
        agent: agents.iter().sum::<Duration>() / n,
        start_to_agent: median(starts),
        wall: wall / n,
        cpu: cpu / n,
        cpu_with_children: usage / n,
        exit_to_completed: median(latencies),
    }
}

/// Reads a JSON file of the run folder of the attempt an event names.
fn run_file(repo: &Path, event: &serde_json::Value, name: &str) -> serde_json::Value {
    let path = repo.join(format!(
        ".orchestrator/runs/{}/{}/{name}",
        event["id"].as_str().unwrap(),
        event["attempt"]
    ));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Waits for `child` and returns its exit code and the CPU time of it and
/// all its descendants (`wait4`).
fn wait_with_usage(child: &mut std::process::Child) -> (i32, Duration) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data, and `pid` is our own child, not yet reaped.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to live locals.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid, "wait4");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, tv(usage.ru_utime) + tv(usage.ru_stime))
}

fn main() {
    if !common::wanted() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let mut builds = vec![("", common::orch_bin())];
    if let Some(base) = std::env::var_os("ORCH_BENCH_BASE") {
        builds.push((" (before)", PathBuf::from(base)));
    }
    println!(
        "{} tasks one at a time, agent commits one file, target checked out",
        tasks()
    );
    println!(
        "{:>7} {:>9} {:>10} {:>10} {:>6} {:>10} {:>12} {:>11} {:>10} {:>10} {:>10} {:>6}",
        "files",
        "build",
        "orch/task",
        "git/task",
        "ratio",
        "orch CPU",
        "+children",
        "start->agent",
        "exit->done",
        "orch merge",
        "git merge",
        "ratio"
    );
    let mut cpu_at: Vec<(&str, usize, Duration)> = Vec::new();
    for files in sizes() {
        let generated = Instant::now();
        let template = template(&dir.path().join(format!("t{files}")), files);
        let generated = generated.elapsed();
        let baseline = plain_git(&clone(&template, &dir.path().join(format!("g{files}"))));
        let (git_task, git_merge) = (baseline.task, baseline.merge);
        // One run of a build moves by half from the next on this machine,
        // and the build run first was often the slower: the builds take
        // turns, in the other order each round, and each figure is the
        // median of its runs.
        let mut runs: Vec<Vec<Orch>> = vec![Vec::new(); builds.len()];
        for round in 0..rounds() {
            let mut order: Vec<usize> = (0..builds.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for b in order {
                let bin = &builds[b].1;
                let at = dir.path().join(format!("o{files}-{b}-{round}"));
                runs[b].push(orch(bin, &clone(&template, &at)));
                std::fs::remove_dir_all(&at).unwrap();
            }
        }
        for (b, (label, bin)) in builds.iter().enumerate() {
            let o = Orch::median(&runs[b]);
            let merge = orch_merge(
                bin,
                &clone(&template, &dir.path().join(format!("m{files}-{b}"))),
            );
            println!(
                "{files:>7} {:>9} {:>10} {:>10} {:>6.2} {:>10} {:>12} {:>11} {:>10} {:>10} {:>10} {:>6.2}   (repo made in {:.1} s)",
                if label.is_empty() { "this" } else { "before" },
                ms(o.wall),
                ms(git_task),
                ratio(o.wall, git_task),
                ms(o.cpu),
                ms(o.cpu_with_children),
                ms(o.start_to_agent),
                ms(o.exit_to_completed),
                ms(merge),
                ms(git_merge),
                ratio(merge, git_merge),
                generated.as_secs_f64(),
            );
            let n = format!("{files} files{label}");
            figure(
                &format!("whole run per task, {n}"),
                &ms(o.wall),
                &format!("plain-git loop {}", ms(git_task)),
                Some(ratio(o.wall, git_task)),
            );
            let own = o.wall.saturating_sub(o.agent);
            let loop_own = git_task.saturating_sub(baseline.agent);
            figure(
                &format!("own time per task (run less agent), {n}"),
                &format!("{} (agent {})", ms(own), ms(o.agent)),
                &format!(
                    "plain-git loop less agent {} (agent {})",
                    ms(loop_own),
                    ms(baseline.agent)
                ),
                Some(ratio(own, loop_own)),
            );
            let previous = cpu_at.iter().rev().find(|(l, _, _)| l == label);
            figure(
                &format!("coordinator CPU per task, {n}"),
                &ms(o.cpu),
                &previous.map_or(String::new(), |(_, f, c)| {
                    format!("{} at {f} files", ms(*c))
                }),
                previous.map(|(_, _, c)| ratio(o.cpu, *c)),
            );
            figure(
                &format!("coordinator and its git, CPU per task, {n}"),
                &ms(o.cpu_with_children),
                "agent's own git included",
                None,
            );
            figure(
                &format!("agent exit -> task completed, {n}"),
                &ms(o.exit_to_completed),
                "target 50 ms",
                Some(o.exit_to_completed.as_secs_f64() / 0.05),
            );
            figure(
                &format!("task started -> agent started, {n}"),
                &ms(o.start_to_agent),
                "worktree, supervisor, watch",
                None,
            );
            figure(
                &format!("one merge, target checked out, {n}"),
                &ms(merge),
                &format!("git merge --no-ff {}", ms(git_merge)),
                Some(ratio(merge, git_merge)),
            );
            cpu_at.push((label, files, o.cpu));
        }
    }
}
