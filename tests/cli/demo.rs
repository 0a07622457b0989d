//! `orch demo`: the whole loop on a scratch repository with the built-in
//! demo agent, end to end, checked against git.

use crate::common::TestEnv;

#[test]
fn demo_merges_every_task_after_handing_back_a_conflict_and_a_red_check() {
    let env = TestEnv::new();
    let dir = env.root().join("demo");
    let out = env
        .orch_in(&env.root())
        .args(["demo", "demo"])
        .output()
        .unwrap();
    let text = env.render(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Finished in "), "{text}");
    assert!(text.contains("10 merged"), "{text}");
    assert!(
        text.contains("Merge task P2.M1.T5: Document the commands in the README"),
        "the history is shown: {text}"
    );

    let status = env
        .orch_in(&dir)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let tasks: Vec<&serde_json::Value> = status["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "task")
        .collect();
    assert_eq!(tasks.len(), 10);
    assert!(tasks.iter().all(|t| t["status"] == "merged"), "{status}");

    let events = std::fs::read_to_string(dir.join(".orchestrator/events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |name: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == name)
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let conflicted = of("merge.conflicted");
    assert_eq!(conflicted.len(), 1, "{conflicted:?}");
    assert!(["P2.M1.T1", "P2.M1.T2"].contains(&conflicted[0].as_str()));
    assert_eq!(of("check.failed"), ["P2.M1.T3"]);

    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".orchestrator/state.json")).unwrap(),
    )
    .unwrap();
    let purposes = |id: &str| -> Vec<String> {
        state["items"][id]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{} {}",
                    a["purpose"].as_str().unwrap_or("first"),
                    a["outcome"]["kind"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        purposes(&conflicted[0]),
        ["first succeeded", "conflict succeeded"]
    );
    assert_eq!(
        purposes("P2.M1.T3"),
        ["first succeeded", "check_failure succeeded"]
    );

    let merges = env.git(
        &dir,
        ["log", "--first-parent", "--merges", "--format=%s", "main"],
    );
    assert_eq!(merges.lines().count(), 10, "{merges}");
    let trailers = env.git(
        &dir,
        [
            "log",
            "--no-merges",
            "--format=%(trailers:key=Orch-Task,valueonly)",
            "main",
        ],
    );
    assert!(
        trailers.lines().filter(|l| !l.is_empty()).count() >= 10,
        "the hooks added trailers: {trailers}"
    );
    let test = std::process::Command::new("sh")
        .arg("test.sh")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "the project's tests pass on main: {}",
        String::from_utf8_lossy(&test.stdout)
    );

    let again = env
        .orch_in(&env.root())
        .args(["demo", "demo"])
        .output()
        .unwrap();
    let again = env.render(&again);
    assert!(
        again.contains("`$TEMP/demo` exists and is not empty"),
        "{again}"
    );
    assert!(again.ends_with("[exit status: 2]\n"), "{again}");
}

/// Issue 16: `orch demo --config FILE` accepted the file and ignored it.
#[test]
fn issue_16_demo_refuses_a_config_it_would_ignore() {
    let env = TestEnv::new();
    let out = env
        .orch_in(&env.root())
        .args(["demo", "demo", "--config", "mine.toml"])
        .output()
        .unwrap();
    insta::assert_snapshot!(env.render(&out), @"
    ------- stderr -------
    error: `orch demo` writes its own config in the demo repository; `--config mine.toml` would be ignored
    hint: run `orch demo` without `--config`, then edit `.orchestrator.toml` in the demo repository and `orch run` there
    [exit status: 2]
    ");
    assert!(!env.root().join("demo").exists(), "nothing was made");
}
