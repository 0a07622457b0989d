//! The crash harness: a 30-task plan with agents of random duration, merging
//! behind a check, and the coordinator killed with SIGKILL at random
//! instants, then restarted, again and again. Afterwards every task is
//! merged exactly once, every commit an agent made is on the target (or
//! under `refs/orch/backup/`), no agent process is left, and at every kill
//! `state.json` was whole and `events.jsonl` readable to its last complete
//! line.
//!
//! CI runs 10 kills. By hand, for 100:
//! `ORCH_CRASH_KILLS=100 cargo test --test cli crash -- --nocapture`
//! (`ORCH_CRASH_SEED` replays a run; the seed is printed).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::common::TestEnv;

const TASKS: usize = 30;

fn plan() -> String {
    let mut text = String::new();
    for i in 1..=TASKS {
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

#[test]
fn sigkill_at_random_instants_loses_nothing_and_merges_once() {
    let kills = env_number("ORCH_CRASH_KILLS", 10);
    let seed = env_number("ORCH_CRASH_SEED", fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    println!("crash harness: {kills} kills, seed {seed}");
    let env = TestEnv::new();
    env.init_repo();
    let (outside, allow) = env.outside();
    let log = outside.join("agent-commits.log");
    env.configure(
        "crashy.sh",
        &format!(
            "[agent.env]\nHARNESS_LOG = {:?}\nHARNESS_MAX_MS = \"{}\"\n\n[policy]\nchecks = [{{ name = \"quick\", run = \"sleep 0.3; test -f README.md\", timeout = \"30s\" }}]\n{allow}",
            log.display().to_string(),
            // Enough work that the plan outlasts the kills: 30 tasks of
            // 0.15 s per kill on average, three at once, is 1.5 s of work
            // per kill against the 1.05 s a kill waits on average.
            (kills * 300).max(1500)
        ),
    );
    env.edit_config("max_parallel = 2", "max_parallel = 3");
    env.write("plan.toml", &plan());
    env.git(&env.repo(), ["add", "-A"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "plan"]);

    let started = Instant::now();
    let mut killed_with_work = 0;
    let mut killed_mid_merge = 0;
    let mut killed = 0;
    for kill in 1..=kills {
        let mut run = env
            .orch()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let after = Duration::from_millis(rng.u64(100..2000));
        let deadline = Instant::now() + after;
        let mut ended = None;
        while Instant::now() < deadline && ended.is_none() {
            ended = run.try_wait().unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        if ended.is_some() {
            println!("kill {kill}: the run had finished already");
            break;
        }
        kill_process(Pid::from_raw(run.id() as i32).unwrap(), Signal::KILL).unwrap();
        run.wait().unwrap();
        killed += 1;
        check_files(&env, kill);
        let path = env.repo().join(".orchestrator/state.json");
        let state: serde_json::Value = std::fs::read_to_string(path)
            .map(|text| serde_json::from_str(&text).unwrap())
            .unwrap_or_default();
        let statuses: Vec<&str> = state["items"]
            .as_object()
            .map(|items| {
                items
                    .values()
                    .filter_map(|i| i["status"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        killed_with_work += usize::from(statuses.contains(&"running"));
        killed_mid_merge += usize::from(statuses.contains(&"merging"));
    }
    let out = env.orch().arg("run").output().unwrap();
    check_files(&env, kills + 1);
    assert!(
        out.status.success(),
        "the last run: {}\n{}",
        env.render(&out),
        env.run(["status"])
    );
    let wall = started.elapsed();

    // Every task merged, each exactly once on the target.
    let status = env.state();
    let merges = env.git(
        &env.repo(),
        ["log", "--first-parent", "--format=%s", "main"],
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for subject in merges.lines() {
        if let Some(rest) = subject.strip_prefix("Merge task ") {
            let id = rest.split(':').next().unwrap().to_owned();
            *counts.entry(id).or_default() += 1;
        }
    }
    for i in 1..=TASKS {
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

    let events = env.events();
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    let attempts: usize = (1..=TASKS)
        .map(|i| {
            status["items"][format!("T{i:02}")]["attempts"]
                .as_array()
                .map_or(0, |a| a.len())
        })
        .sum();
    println!(
        "crash harness: {killed} of {kills} SIGKILLs made ({killed_with_work} with agents at work, {killed_mid_merge} during a merge), {TASKS} tasks merged once each, {} agent commits all kept, {attempts} attempts ({} interrupted), {} runs, {:.1} s",
        made.lines().count(),
        count("task.interrupted"),
        count("run.started"),
        wall.as_secs_f64()
    );
}
