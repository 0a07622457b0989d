//! The crash harness: a plan with agents of random duration, merging behind
//! a check, and the coordinator killed with SIGKILL at random instants, then
//! restarted, again and again. Afterwards every task is merged exactly once,
//! every commit an agent made is on the target (or under
//! `refs/orch/backup/`), and no agent process is left. At every kill
//! `state.json` was whole, `events.jsonl` readable to its last complete
//! line, and every task the state called merged was on the target; after
//! every restart the state agrees with the target: each task whose merge
//! the target held at the kill is merged in the first state the new run
//! writes.
//!
//! Four variants, each behind a 0.3 s check: `merge` with 30 tasks;
//! `rebase` and `squash` with 12 tasks and a 0.3 s `post_merge` hook, so
//! that kills land during checks and hooks too (issue 12); and `merge` with
//! 16 tasks in batches of 4, two checked at once (speculatively, and the
//! halves of a batch that a random red check makes bisect), so that kills
//! land during batched and speculative checks (issue 14). Every check
//! records the commit it passed; every move of the target orch made (its
//! reflog) must be to one of those: no commit landed unchecked.
//!
//! A fifth loop, with no check, kills a run of 120 tasks whose agents
//! commit nothing (they land without moving the target, their branches
//! deleted and worktrees recycled at once), 10 times.
//!
//! CI runs 10 kills of the first and 6 of each other. By hand, for 100:
//! `ORCH_CRASH_KILLS=100 cargo test --test cli crash -- --nocapture`
//! (`ORCH_CRASH_SEED` replays a run; the seed is printed).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::common::{DEADLINE, TestEnv, wait_until};

fn plan(tasks: usize) -> String {
    let mut text = String::new();
    for i in 1..=tasks {
        text.push_str(&format!("[[task]]\nid = \"T{i:02}\"\n"));
        if i > 5 {
            text.push_str(&format!("depends_on = [\"T{:02}\"]\n", i - 5));
        }
    }
    text
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Checks what must hold at any instant: the state parses whole (`orch
/// status` reads it) and every line of the event log but a torn last one
/// is an event with a larger `seq` than the one before.
fn check_files(env: &TestEnv, kill: u64) {
    let out = env.orch().args(["status", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "kill {kill}: state.json unreadable: {}",
        env.render(&out)
    );
    let text =
        std::fs::read_to_string(env.repo().join(".orchestrator/events.jsonl")).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    let mut last = 0;
    for line in complete.lines().filter(|l| !l.is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("kill {kill}: a complete event line is broken ({e}): {line}")
        });
        let seq = event["seq"].as_u64().unwrap();
        assert!(seq > last, "kill {kill}: seq {seq} after {last}");
        last = seq;
    }
}

/// One run of the harness.
struct Variant {
    strategy: &'static str,
    tasks: usize,
    /// Kills when `ORCH_CRASH_KILLS` is not set.
    kills: u64,
    /// A slow `post_merge` hook, so that kills land during it too.
    post_merge_hook: bool,
    /// `merge.batch` and `merge.max_parallel_checks`.
    batch: u32,
    parallel: u32,
    /// The check fails now and then (one in `flaky` runs), so that batches
    /// are bisected; 0: never.
    flaky: u32,
}

/// Returns, per task, how many times the target's first-parent history
/// holds its landing: its merge commit (`merge`, `squash`), or its agent's
/// commits replayed (`rebase`: a commit message seen twice is a double landing).
fn landings(env: &TestEnv, strategy: &str) -> BTreeMap<String, usize> {
    let log = env.git(
        &env.repo(),
        ["log", "--first-parent", "--format=%s", "main"],
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for subject in log.lines() {
        let id = match strategy {
            "rebase" => subject
                .strip_prefix("Work on ")
                .and_then(|r| r.split(',').next()),
            _ => subject
                .strip_prefix("Merge task ")
                .and_then(|r| r.split(':').next()),
        };
        let Some(id) = id else { continue };
        *seen.entry(subject).or_default() += 1;
        let n = seen[subject];
        let entry = counts.entry(id.to_owned()).or_default();
        *entry = (*entry).max(n);
    }
    counts
}

/// Returns the statuses in `state.json` (empty when there is none yet).
fn statuses(env: &TestEnv) -> (BTreeMap<String, String>, Option<u64>) {
    let path = env.repo().join(".orchestrator/state.json");
    let state: serde_json::Value = std::fs::read_to_string(path)
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap_or_default();
    let items = state["items"]
        .as_object()
        .map(|items| {
            items
                .iter()
                .filter_map(|(id, i)| Some((id.clone(), i["status"].as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    (items, state["run"]["pid"].as_u64())
}

/// Counts the markers of checks or hooks (`<kind>-<pid>`) whose shell still runs.
fn running(dir: &std::path::Path, kind: &str) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(&format!("{kind}-"))?.parse::<u32>().ok()
        })
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        .count()
}

fn harness(v: Variant) {
    let kills = env_number("ORCH_CRASH_KILLS", v.kills);
    let seed = env_number("ORCH_CRASH_SEED", fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let name = v.strategy;
    println!("crash harness ({name}): {kills} kills, seed {seed}");
    let env = TestEnv::new();
    env.init_repo();
    let (outside, allow) = env.outside();
    let log = outside.join("agent-commits.log");
    let marks = outside.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let m = marks.display();
    // The check and the hook say when they run (`<kind>-<pid>` markers);
    // the check records what it passed.
    let passed = outside.join("passed.log");
    let red = match v.flaky {
        0 => String::new(),
        n => format!("test $(( $(od -An -N2 -tu2 /dev/urandom) % {n} )) -ne 0 && "),
    };
    let check = format!(
        "touch {m}/check-$$; sleep 0.3; rm -f {m}/check-$$; test -f README.md && {red}echo $ORCH_MERGE_COMMIT >> {}",
        passed.display()
    );
    let hooks = if v.post_merge_hook {
        format!("post_merge = [\"touch {m}/hook-$$; sleep 0.3; rm -f {m}/hook-$$\"]\n")
    } else {
        String::new()
    };
    env.configure(
        "crashy.sh",
        &format!(
            "[agent.env]\nHARNESS_LOG = {:?}\nHARNESS_MAX_MS = \"{}\"\n\n[policy]\nchecks = [{{ name = \"quick\", run = {:?}, timeout = \"30s\" }}]\n{allow}",
            log.display().to_string(),
            // Enough work that the plan outlasts the kills: 30 tasks of
            // 0.15 s per kill on average, three at once, is 1.5 s of work
            // per kill against the 1.05 s a kill waits on average.
            (kills * 300 * 30 / v.tasks as u64).max(1500),
            check
        ),
    );
    env.edit_config("max_parallel = 2", "max_parallel = 3");
    env.edit_config(
        "[hooks]\ninstall = false\n",
        &format!("[hooks]\ninstall = false\n{hooks}"),
    );
    env.edit_config(
        "target = \"main\"",
        &format!("target = \"main\"\nmerge_strategy = \"{}\"", v.strategy),
    );
    env.edit_config(
        "[hooks]\ninstall = false\n",
        &format!(
            "[merge]\nbatch = {}\nmax_parallel_checks = {}\n\n[hooks]\ninstall = false\n",
            v.batch, v.parallel
        ),
    );
    if v.flaky > 0 {
        // A task blamed for a red check goes back to its agent; enough
        // attempts that chance never fails one for good.
        env.edit_config(
            "[retry.backoff]",
            "[retry]\nmax_attempts = 20\n\n[retry.backoff]",
        );
    }
    env.write("plan.toml", &plan(v.tasks));
    env.git(&env.repo(), ["add", "-A"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "plan"]);

    let started = Instant::now();
    let mut killed_with_work = 0;
    let mut killed_mid_merge = 0;
    let mut killed_in_check = 0;
    let mut killed_in_speculation = 0;
    let mut killed_in_hook = 0;
    let mut killed = 0;
    // The tasks the target held at the last kill.
    let mut landed_before: Vec<String> = Vec::new();
    for kill in 1..=kills {
        let mut run = env
            .orch()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // After a restart, the first state the run writes holds what
        // recovery made of the target.
        let pid = u64::from(run.id());
        let mut ended = None;
        let recorded = wait_until(DEADLINE, || {
            ended = run.try_wait().unwrap();
            ended.is_some() || statuses(&env).1 == Some(pid)
        });
        assert!(recorded, "kill {kill}: the run never wrote its state");
        if ended.is_none() {
            let (items, _) = statuses(&env);
            for task in &landed_before {
                assert_eq!(
                    items.get(task).map(String::as_str),
                    Some("merged"),
                    "kill {kill}: after the restart, {task} is on the target but not merged in the state: {items:?}"
                );
            }
        }
        let after = Duration::from_millis(rng.u64(100..2000));
        let deadline = Instant::now() + after;
        while Instant::now() < deadline && ended.is_none() {
            ended = run.try_wait().unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        if ended.is_some() {
            println!("kill {kill}: the run had finished already");
            break;
        }
        kill_process(Pid::from_raw(run.id() as i32).unwrap(), Signal::KILL).unwrap();
        let checks = running(&marks, "check");
        killed_in_check += usize::from(checks > 0);
        killed_in_speculation += usize::from(checks > 1);
        killed_in_hook += usize::from(running(&marks, "hook") > 0);
        run.wait().unwrap();
        killed += 1;
        check_files(&env, kill);
        let (items, _) = statuses(&env);
        let on_target = landings(&env, v.strategy);
        for (task, status) in &items {
            if status == "merged" {
                assert!(
                    on_target.contains_key(task),
                    "kill {kill}: {task} is merged in the state but not on the target"
                );
            }
        }
        landed_before = on_target.into_keys().collect();
        let values: Vec<&str> = items.values().map(String::as_str).collect();
        killed_with_work += usize::from(values.contains(&"running"));
        killed_mid_merge += usize::from(values.contains(&"merging"));
    }
    let out = env.orch().arg("run").output().unwrap();
    check_files(&env, kills + 1);
    assert!(
        out.status.success(),
        "the last run: {}\n{}\n{}",
        env.render(&out),
        env.run(["status"]),
        std::fs::read_to_string(env.repo().join(".orchestrator/events.jsonl")).unwrap_or_default()
    );
    let wall = started.elapsed();

    // Every task merged, each exactly once on the target.
    let status = env.state();
    let counts = landings(&env, v.strategy);
    for i in 1..=v.tasks {
        let id = format!("T{i:02}");
        assert_eq!(status["items"][&id]["status"], "merged", "{id}");
        assert_eq!(
            counts.get(&id),
            Some(&1),
            "{id} merged exactly once: {counts:?}"
        );
    }
    // Every commit an agent made is on the target or kept as a backup.
    let made = std::fs::read_to_string(&log).unwrap();
    let backups = env.git(
        &env.repo(),
        [
            "for-each-ref",
            "--format=%(objectname)",
            "refs/orch/backup/",
        ],
    );
    let mut lost = Vec::new();
    for sha in made.lines() {
        let reachable = env.git_ok(&env.repo(), ["merge-base", "--is-ancestor", sha, "main"])
            || backups
                .lines()
                .any(|b| env.git_ok(&env.repo(), ["merge-base", "--is-ancestor", sha, b]));
        if !reachable {
            lost.push(sha.to_owned());
        }
    }
    assert!(lost.is_empty(), "commits lost: {lost:?}");
    env.assert_no_agent_left();

    // Every move of the target orch made is to a commit a check passed.
    let passed = std::fs::read_to_string(outside.join("passed.log")).unwrap_or_default();
    let moves = env.git(&env.repo(), ["reflog", "--format=%H %gs", "main"]);
    let unchecked: Vec<&str> = moves
        .lines()
        .filter(|l| {
            l.split_once(' ')
                .is_some_and(|(_, s)| s.starts_with("orch:"))
        })
        .filter_map(|l| l.split(' ').next())
        .filter(|oid| !passed.lines().any(|p| p.trim() == *oid))
        .collect();
    assert!(
        unchecked.is_empty(),
        "landed unchecked: {unchecked:?}\n{moves}"
    );

    let events = env.events();
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    let attempts: usize = (1..=v.tasks)
        .map(|i| {
            status["items"][format!("T{i:02}")]["attempts"]
                .as_array()
                .map_or(0, |a| a.len())
        })
        .sum();
    println!(
        "crash harness ({name}): {killed} of {kills} SIGKILLs made ({killed_with_work} with agents at work, {killed_mid_merge} during a merge, {killed_in_check} during a check, {killed_in_speculation} during two checks at once, {killed_in_hook} during a post_merge hook), {} tasks merged once each, {} agent commits all kept, {attempts} attempts ({} interrupted), {} runs, {:.1} s",
        v.tasks,
        made.lines().count(),
        count("task.interrupted"),
        count("run.started"),
        wall.as_secs_f64()
    );
}

#[test]
fn sigkill_at_random_instants_loses_nothing_and_merges_once() {
    harness(Variant {
        strategy: "merge",
        tasks: 30,
        kills: 10,
        post_merge_hook: false,
        batch: 1,
        parallel: 1,
        flaky: 0,
    });
}

#[test]
fn sigkill_during_checks_and_post_merge_hooks_with_rebase_keeps_state_and_target_in_step() {
    harness(Variant {
        strategy: "rebase",
        tasks: 12,
        kills: 6,
        post_merge_hook: true,
        batch: 1,
        parallel: 1,
        flaky: 0,
    });
}

#[test]
fn sigkill_during_checks_and_post_merge_hooks_with_squash_keeps_state_and_target_in_step() {
    harness(Variant {
        strategy: "squash",
        tasks: 12,
        kills: 6,
        post_merge_hook: true,
        batch: 1,
        parallel: 1,
        flaky: 0,
    });
}

#[test]
fn issue_14_sigkill_during_batched_and_speculative_checks_lands_each_task_once_and_nothing_unchecked()
 {
    harness(Variant {
        strategy: "merge",
        tasks: 16,
        kills: 6,
        post_merge_hook: false,
        batch: 4,
        parallel: 2,
        flaky: 6,
    });
}

/// A task whose agent committed nothing lands without moving the target:
/// the merge queue frees its worktree and deletes its branch at once, and
/// only then does the state record the merge. A kill in between leaves the
/// state with the task waiting to merge and its branch gone; the next run
/// finds it merged (the target holds all of its work: none), not failed
/// with "branch `orch/T1` is gone". The kill's aftermath is made here with
/// git, as the landing leaves it: worktree detached, branch deleted.
#[test]
fn a_kill_after_a_task_with_no_commits_lost_its_branch_to_the_landing_finds_it_merged() {
    let env = TestEnv::new();
    env.init_repo();
    env.write(
        ".orchestrator.toml",
        "[git]\ntarget = \"main\"\n\n[agent]\ncommand = [\"true\"]\n\n[hooks]\ninstall = false\n",
    );
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\nexpect_changes = false\n",
    );
    env.git(&env.repo(), ["add", "-A"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "plan"]);
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let item = &env.state()["items"]["T1"];
    assert_eq!(item["status"], "awaiting_merge", "{item}");
    assert_eq!(item["queued"]["tip"], item["base"], "{item}");
    let worktree = std::path::PathBuf::from(item["worktree"].as_str().unwrap());
    let branch = item["branch"].as_str().unwrap().to_owned();
    let main_before = env.git(&env.repo(), ["rev-parse", "main"]);

    env.git(&worktree, ["switch", "--quiet", "--detach"]);
    env.git(&env.repo(), ["branch", "-q", "-D", &branch]);

    let out = env.orch().arg("run").output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        env.render(&out),
        env.run(["status"])
    );
    assert_eq!(env.status_of("T1"), "merged");
    assert_eq!(
        env.git(&env.repo(), ["rev-parse", "main"]),
        main_before,
        "nothing to land: the target stays"
    );
    let merged: Vec<_> = env
        .events()
        .into_iter()
        .filter(|e| e["event"] == "task.merged")
        .collect();
    assert_eq!(merged.len(), 1, "{merged:?}");
}

/// A coordinator killed after it created a task's branch and before the
/// state recorded where the branch left the target leaves a branch the
/// state knows no base for. The next attempt of a task with no commits
/// reuses it: its base is where the branch left the target, and the target
/// holds all of its work, so it merges (not "put there outside orch").
#[test]
fn a_kill_after_a_task_s_branch_was_made_and_before_its_base_was_recorded_still_merges_a_task_with_no_commits()
 {
    let env = TestEnv::new();
    env.init_repo();
    env.write(
        ".orchestrator.toml",
        "[git]\ntarget = \"main\"\n\n[agent]\ncommand = [\"true\"]\n\n[hooks]\ninstall = false\n",
    );
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\nexpect_changes = false\n",
    );
    env.git(&env.repo(), ["add", "-A"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "plan"]);
    env.git(&env.repo(), ["branch", "orch/T1", "main"]);

    let out = env.orch().arg("run").output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        env.render(&out),
        env.run(["status"])
    );
    assert_eq!(env.status_of("T1"), "merged");
}

/// Tasks whose agents commit nothing land without moving the target; their
/// worktrees are freed and recycled, their branches deleted. The
/// coordinator is killed at random instants (while worktrees are made and
/// recycled, branches deleted, landings recorded) and restarted: the last
/// run ends with every task merged once, and the target as it was.
/// `ORCH_CRASH_KILLS` and `ORCH_CRASH_SEED` as for the harness.
#[test]
fn sigkill_at_random_instants_with_tasks_that_commit_nothing_merges_each_once() {
    let tasks = 120;
    let kills = env_number("ORCH_CRASH_KILLS", 10);
    let seed = env_number("ORCH_CRASH_SEED", fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    println!("no-commit kill loop: {kills} kills, seed {seed}");
    let env = TestEnv::new();
    env.init_repo();
    env.write(
        ".orchestrator.toml",
        "[git]\ntarget = \"main\"\n\n[agent]\ncommand = [\"true\"]\nmax_parallel = 8\n\n[merge]\nbatch = 8\n\n[hooks]\ninstall = false\n",
    );
    let plan: String = (1..=tasks)
        .map(|i| format!("[[task]]\nid = \"T{i:02}\"\nexpect_changes = false\n"))
        .collect();
    env.write("plan.toml", &plan);
    env.git(&env.repo(), ["add", "-A"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "plan"]);
    let main = env.git(&env.repo(), ["rev-parse", "main"]);

    let started = Instant::now();
    let mut killed = 0;
    for kill in 1..=kills {
        let mut run = env
            .orch()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed once it recovered and wrote its state, at a random instant after.
        let pid = u64::from(run.id());
        let mut ended = None;
        let recorded = wait_until(DEADLINE, || {
            ended = run.try_wait().unwrap();
            ended.is_some() || statuses(&env).1 == Some(pid)
        });
        assert!(recorded, "kill {kill}: the run never wrote its state");
        let deadline = Instant::now() + Duration::from_millis(rng.u64(20..400));
        while Instant::now() < deadline && ended.is_none() {
            ended = run.try_wait().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        if ended.is_some() {
            println!("kill {kill}: the run had finished already");
            break;
        }
        kill_process(Pid::from_raw(run.id() as i32).unwrap(), Signal::KILL).unwrap();
        run.wait().unwrap();
        killed += 1;
        check_files(&env, kill);
    }
    let out = env.orch().arg("run").output().unwrap();
    assert!(
        out.status.success(),
        "the last run (seed {seed}): {}\n{}",
        env.render(&out),
        env.run(["status"])
    );
    let (items, _) = statuses(&env);
    assert!(
        items.values().all(|s| s == "merged") && items.len() == tasks,
        "{items:?}"
    );
    let mut merges: BTreeMap<String, usize> = BTreeMap::new();
    for e in env.events().iter().filter(|e| e["event"] == "task.merged") {
        *merges
            .entry(e["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        merges.len() == tasks && merges.values().all(|n| *n == 1),
        "each task merged once: {merges:?}"
    );
    assert_eq!(env.git(&env.repo(), ["rev-parse", "main"]), main);
    let events = env.events();
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    println!(
        "no-commit kill loop: {killed} of {kills} SIGKILLs made, {tasks} tasks merged once each ({} recovered), {} runs, {:.1} s",
        events
            .iter()
            .filter(|e| e["event"] == "task.merged" && e["recovered"] == true)
            .count(),
        count("run.started"),
        started.elapsed().as_secs_f64()
    );
}
