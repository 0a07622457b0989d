//! The sandbox's cost per attempt: the same run confined (the default) and
//! unconfined (`[sandbox] enabled = false`), alternated in the same process
//! so that both see the same machine. Run with `cargo bench --bench sandbox`
//! (or `bench/run sandbox`).
//!
//! 1. A 500-file repository, 20 tasks whose agent commits one file
//!    (`git add`, `git commit`: git runs confined too), `max_parallel = 2`,
//!    `--no-merge`, three runs of each kind. Per attempt: from `task.started`
//!    to the supervisor starting the agent (`supervisor.json` `started` is
//!    written before the ruleset is built, so this one excludes it), and the
//!    whole attempt, from `task.started` to `exit.json` `finished` (the
//!    ruleset, the agent's git and the temp folder included). Medians over
//!    all attempts of a kind.
//! 2. Building one attempt's ruleset (`sandbox::prepare` of a policy of 15
//!    paths), median of 200, in this process.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{commit_agent, make_repo, median, ms, run_orch, ts, write_config};

const TASKS: usize = 20;
const ROUNDS: usize = 3;

/// Returns, per attempt, (task started -> supervisor started, task started -> attempt finished).
fn attempts(repo: &Path, events: &[serde_json::Value]) -> Vec<(Duration, Duration)> {
    events
        .iter()
        .filter(|e| e["event"] == "task.started")
        .map(|e| {
            let id = e["id"].as_str().unwrap();
            let dir = repo.join(format!(".orchestrator/runs/{id}/1"));
            let read = |name: &str| -> serde_json::Value {
                serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
            };
            let started = ts(&e["ts"]);
            let since = |t| ts(t).duration_since(started).unwrap_or_default();
            (
                since(&read("supervisor.json")["started"]),
                since(&read("exit.json")["finished"]),
            )
        })
        .collect()
}

fn one_run(dir: &Path, name: &str, extra: &str) -> Vec<(Duration, Duration)> {
    let repo = make_repo(&dir.join(name), 500, 20);
    write_config(&repo, commit_agent().to_str().unwrap(), 2, extra);
    let plan: String = (0..TASKS)
        .map(|i| format!("[[task]]\nid = \"T{i}\"\n"))
        .collect();
    std::fs::write(repo.join("plan.toml"), plan).unwrap();
    let events = run_orch(&repo, &["run", "--no-merge"]);
    let started = events.iter().find(|e| e["event"] == "run.started").unwrap();
    let confined = started["sandbox"]["mode"] == "confined";
    assert_eq!(confined, extra.is_empty(), "{started}");
    attempts(&repo, &events)
}

fn prepare_cost(dir: &Path) -> Duration {
    let mut write: Vec<std::path::PathBuf> = (0..6)
        .map(|i| {
            let p = dir.join(format!("rule{i}"));
            std::fs::create_dir_all(&p).unwrap();
            p
        })
        .collect();
    write.extend(
        orch::runner::confine::DEVICES
            .iter()
            .map(std::path::PathBuf::from),
    );
    let policy = orch::sandbox::Policy {
        write,
        block_tcp: false,
    };
    let times = (0..200)
        .map(|_| {
            let start = Instant::now();
            let ruleset = orch::sandbox::prepare(&policy).unwrap();
            let took = start.elapsed();
            drop(ruleset);
            took
        })
        .collect();
    median(times)
}

fn main() {
    if !common::wanted() {
        return;
    }
    if let orch::sandbox::Support::Unavailable(why) = orch::sandbox::probe() {
        println!("SKIPPED: the sandbox benchmark needs Landlock: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut confined, mut open) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        confined.extend(one_run(dir.path(), &format!("confined{round}"), ""));
        open.extend(one_run(
            dir.path(),
            &format!("open{round}"),
            "[sandbox]\nenabled = false\n",
        ));
    }
    let launch = |v: &[(Duration, Duration)]| median(v.iter().map(|a| a.0).collect());
    let whole = |v: &[(Duration, Duration)]| median(v.iter().map(|a| a.1).collect());
    let prepare = prepare_cost(dir.path());
    println!(
        "repo: 500 files; {TASKS} tasks x {ROUNDS} runs of each kind, max_parallel 2, agent commits one file"
    );
    println!(
        "{:<52} {:>10} {:>10} {:>7}",
        "measure (median per attempt)", "confined", "unconfined", "ratio"
    );
    for (name, c, o) in [
        (
            "task started -> supervisor started",
            launch(&confined),
            launch(&open),
        ),
        (
            "task started -> attempt finished (whole attempt)",
            whole(&confined),
            whole(&open),
        ),
    ] {
        let ratio = c.as_secs_f64() / o.as_secs_f64();
        println!("{name:<52} {:>10} {:>10} {ratio:>7.2}", ms(c), ms(o));
        common::figure(
            &format!("sandbox: {name}"),
            &ms(c),
            &format!("unconfined {}", ms(o)),
            Some(ratio),
        );
    }
    println!(
        "{:<52} {:>10}",
        "building one ruleset (sandbox::prepare, 15 paths)",
        format!("{:.0} us", prepare.as_secs_f64() * 1e6)
    );
    common::figure(
        "sandbox: building one attempt's ruleset",
        &format!("{:.0} us", prepare.as_secs_f64() * 1e6),
        "small next to an attempt",
        None,
    );
}
