//! Paused agents: an attempt that hits a usage limit pauses its agent
//! without spending an attempt, and `orch pause` / `orch resume` do the
//! same by hand, on the state file or through a live run's inbox; `orch
//! status` and `orch plan next` show what is paused.

use std::process::Stdio;

use crate::common::{DEADLINE, TestEnv, wait_until};

fn setup(script: &str, extra: &str, plan: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(script, extra);
    env.write("plan.toml", plan);
    env
}

/// Replaces local clock times (`17:05`, `17:05:09`) with a placeholder.
/// Folds times of day, and the date before one that is not today (a
/// pause of 2 hours started after 22:00 ends tomorrow: `Dec 2 00:08`).
fn clocks(text: &str) -> String {
    regex::Regex::new(r"\b(?:[A-Z][a-z]{2} \d{1,2} )?\d\d:\d\d(:\d\d)?\b")
        .unwrap()
        .replace_all(text, "[HH:MM]")
        .into_owned()
}

fn events_named(env: &TestEnv, name: &str) -> Vec<serde_json::Value> {
    env.events()
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

const TWO: &str =
    "[[task]]\nid = \"T1\"\ntitle = \"One\"\n\n[[task]]\nid = \"T2\"\ntitle = \"Two\"\n";

#[test]
fn a_usage_limit_pauses_its_agent_without_spending_an_attempt_then_it_resumes_by_itself() {
    // One attempt only: had the limit counted, the task would fail.
    let env = setup(
        "limited.sh",
        "[retry]\nmax_attempts = 1\n",
        "[[task]]\nid = \"T1\"\ntitle = \"One\"\n",
    );
    let out = env.orch().arg("run").output().unwrap();
    let shown = env.render(&out);
    assert!(out.status.success(), "{shown}");
    assert_eq!(env.status_of("T1"), "merged");
    let attempts = env.state()["items"]["T1"]["attempts"].clone();
    assert_eq!(attempts[0]["outcome"]["kind"], "interrupted", "{attempts}");
    assert!(attempts[0]["paused_until"].is_string(), "{attempts}");
    assert_eq!(attempts[1]["outcome"]["kind"], "succeeded");
    let paused = events_named(&env, "agent.paused");
    assert_eq!(paused.len(), 1);
    assert_eq!(
        (&paused[0]["agent"], &paused[0]["cause"], &paused[0]["id"]),
        (&"default".into(), &"limit".into(), &"T1".into())
    );
    assert_eq!(events_named(&env, "agent.resumed")[0]["cause"], "time");
    assert!(
        shown.contains("paused    default until") && shown.contains("resumed   default"),
        "the progress lines say so: {shown}"
    );
    assert!(env.state().get("paused").is_none(), "the pause is over");
    let status = env.run(["status"]);
    assert!(status.contains("T1  merged (1 attempt)"), "{status}");
}

#[test]
fn pause_and_resume_without_a_run_change_the_state_and_status_shows_them() {
    let env = setup("commit.sh", "", TWO);
    let out = env.run(["pause", "default", "--until", "2h"]);
    insta::assert_snapshot!(clocks(&out), @"Paused `default` until [HH:MM].");
    let status = env.run(["status"]);
    assert!(
        clocks(&status).contains("Agent `default` is paused until [HH:MM] (paused by a person)."),
        "{status}"
    );
    let json: serde_json::Value = serde_json::from_str(&env.run(["status", "--json"])).unwrap();
    assert_eq!(json["paused"][0]["agent"], "default");
    assert_eq!(json["paused"][0]["cause"], "person");
    let next = env.run(["plan", "next"]);
    assert!(next.contains("agent `default` is paused until"), "{next}");
    insta::assert_snapshot!(env.run(["pause", "clod"]), @"
    ------- stderr -------
    error: `clod` is not an agent (agents: aider, claude, codex, gemini, default)
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["resume", "default"]), @"Resumed `default`.");
    insta::assert_snapshot!(env.run(["resume", "default"]), @"
    ------- stderr -------
    error: `default` is not paused
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["pause", "--all"]), @"Paused every agent until `orch resume --all`.");
    insta::assert_snapshot!(env.run(["resume", "--all"]), @"Resumed every agent.");
    let names: Vec<String> = env
        .events()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["agent"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "agent.paused default",
            "agent.resumed default",
            "agent.paused *",
            "agent.resumed *"
        ]
    );
}

#[test]
fn a_person_pauses_every_agent_through_the_live_run_and_resumes_it() {
    let env = setup("gate.sh", "", TWO);
    env.edit_config("max_parallel = 2", "max_parallel = 1");
    let gates = env.root().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    let mut run = env
        .orch()
        .arg("run")
        .env("GATE_DIR", &gates)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(DEADLINE, || env.agent_groups().len() == 1),
        "T1's agent never started"
    );
    let paused = env.run(["pause", "--all"]);
    assert!(
        paused.starts_with("Paused every agent until `orch resume --all` (by the live run, pid "),
        "{paused}"
    );
    std::fs::write(gates.join("T1"), "").unwrap();
    std::fs::write(gates.join("T2"), "").unwrap();
    assert!(
        wait_until(DEADLINE, || env.status_of("T1") == "merged"),
        "T1 never merged"
    );
    assert_eq!(
        env.status_of("T2"),
        "ready",
        "nothing launches while paused"
    );
    let status = env.run(["status"]);
    assert!(
        status.contains("Every agent is paused until resumed (every agent paused by a person)."),
        "{status}"
    );
    assert!(
        status.contains("T2  ready  paused until resumed (every agent paused by a person)"),
        "{status}"
    );
    let resumed = env.run(["resume", "--all"]);
    assert!(
        resumed.starts_with("Resumed every agent (by the live run, pid "),
        "{resumed}"
    );
    assert!(
        wait_until(DEADLINE, || run.try_wait().unwrap().is_some()),
        "the run did not end"
    );
    assert_eq!(env.status_of("T2"), "merged");
    let order: Vec<String> = env
        .events()
        .iter()
        .filter(|e| {
            e["event"] == "agent.resumed" || (e["event"] == "task.started" && e["id"] == "T2")
        })
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["agent.resumed", "task.started"]);
}
