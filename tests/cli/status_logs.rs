//! `orch status` and `orch logs`.

use std::process::Stdio;

use crate::common::{DEADLINE, TestEnv, wait_until};

fn setup(script: &str, plan: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(script, "");
    env.write("plan.toml", plan);
    env
}

/// Replaces timestamps, durations and the temp dir with placeholders.
fn scrub(env: &TestEnv, text: &str) -> String {
    let is_duration = |w: &str| {
        let w = w.trim_end_matches([',', ':']);
        let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &w[digits.len()..];
        !digits.is_empty()
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == 'm')
            && matches!(unit, "ms" | "s")
    };
    env.filter(text)
        .lines()
        .map(|line| {
            line.split(' ')
                .map(|w| {
                    if w.len() >= 24 && w.as_bytes()[4] == b'-' && w.as_bytes()[10] == b'T' {
                        format!("$TIME{}", &w[24..])
                    } else if is_duration(w) {
                        format!("$DUR{}", &w[w.trim_end_matches([',', ':']).len()..])
                    } else {
                        w.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn status_lists_items_and_answers_in_json() {
    let env = setup(
        "fail-permanent.sh",
        "[[milestone]]\nid = \"M1\"\n[[milestone.task]]\nid = \"T1\"\ntitle = \"First\"\n[[milestone.task]]\nid = \"T2\"\ndepends_on = [\"T1\"]\n",
    );
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(env.run(["status"]), @"
    No run is live; target `main`.
    M1       failed
      M1.T1  failed (1 attempt)  exit code 2, which `retry.permanent_exit_codes` lists
      M1.T2  blocked  required dependency `M1.T1` is failed
    Tasks: 1 blocked, 1 failed.
    ");
    insta::assert_snapshot!(scrub(&env, &env.run(["status", "--json"])), @r#"
    {
      "schema": 1,
      "target": "main",
      "live": null,
      "items": [
        {
          "id": "M1",
          "kind": "milestone",
          "title": "M1",
          "status": "failed",
          "attempts": 0,
          "branch": null,
          "worktree": null,
          "merge_commit": null,
          "reason": null,
          "usage": null
        },
        {
          "id": "M1.T1",
          "kind": "task",
          "title": "First",
          "status": "failed",
          "attempts": 1,
          "branch": "orch/M1.T1",
          "worktree": "$TEMP/repo.worktrees/M1.T1",
          "merge_commit": null,
          "reason": "exit code 2, which `retry.permanent_exit_codes` lists",
          "usage": null
        },
        {
          "id": "M1.T2",
          "kind": "task",
          "title": "T2",
          "status": "blocked",
          "attempts": 0,
          "branch": null,
          "worktree": null,
          "merge_commit": null,
          "reason": "required dependency `M1.T1` is failed",
          "usage": null
        }
      ],
      "counts": {
        "blocked": 1,
        "failed": 1
      },
      "paused": [],
      "usage": null
    }
    "#);
    insta::assert_snapshot!(scrub(&env, &env.run(["status", "M1.T1"])), @"
    task M1.T1: First
      status    failed
      reason    exit code 2, which `retry.permanent_exit_codes` lists
      branch    orch/M1.T1
      worktree  $TEMP/repo.worktrees/M1.T1
      base      b3dba024fe045acbd460a8d8c595019fda0b749c
      attempt 1 started $TIME, $DUR: failed: exit code 2, which `retry.permanent_exit_codes` lists
                log: .orchestrator/runs/M1.T1/1/agent.log
    ");
}

#[test]
fn status_says_when_nothing_ran() {
    let env = setup("commit.sh", "[[task]]\nid = \"T1\"\n");
    insta::assert_snapshot!(env.run(["status"]), @"
    Nothing has run yet; target `main`.
    T1  pending
    Tasks: 1 pending.
    ");
}

#[test]
fn logs_show_an_attempt_and_follow_a_live_one() {
    let env = setup("fail-transient.sh", "[[task]]\nid = \"T1\"\n");
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(env.run(["logs", "T1"]), @"attempt 3 failing");
    insta::assert_snapshot!(env.run(["logs", "T1", "--attempt", "1"]), @"attempt 1 failing");
    insta::assert_snapshot!(env.run(["logs", "T1", "--attempt", "7"]), @"
    ------- stderr -------
    error: `T1` has no attempt 7
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["logs", "T9"]), @"
    ------- stderr -------
    error: `T9` has no runs yet
    hint: `orch status` shows what has run
    [exit status: 2]
    ");

    let talk = setup("talk.sh", "[[task]]\nid = \"T1\"\nexpect_changes = false\n");
    let mut run = talk
        .orch()
        .args(["run", "--no-merge"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = wait_until(DEADLINE, || {
        std::fs::read_to_string(talk.repo().join(".orchestrator/runs/T1/1/agent.log"))
            .is_ok_and(|l| l == "one\n")
    });
    if !started {
        let _ = run.kill();
        let out = run.wait_with_output().unwrap();
        let log = std::fs::read_to_string(talk.repo().join(".orchestrator/events.jsonl"))
            .unwrap_or_default();
        panic!(
            "the agent never wrote its first line:\n{}\n{log}",
            talk.render(&out)
        );
    }
    let follow = talk
        .orch()
        .args(["logs", "-f", "T1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(talk.root().join("repo.worktrees/go"), "").unwrap();
    let out = follow.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");
    assert!(run.wait().unwrap().success());
}
