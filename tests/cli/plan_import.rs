use std::fs;

use crate::common::TestEnv;

fn show_json(env: &TestEnv, plan: &str) -> serde_json::Value {
    let out = env
        .orch()
        .args(["plan", "show", "--json", "--plan", plan])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn taskmaster_tagged_file_converts_and_checks() {
    let env = TestEnv::new();
    env.init_repo();
    let source = env.copy_fixture("taskmaster/tasks.json", "tasks.json");
    insta::assert_snapshot!(env.run(["plan", "import", "taskmaster", "tasks.json", "-o", "plan.toml"]), @"
    ------- stderr -------
    Wrote `plan.toml`: 30 tasks and 46 subtasks.
    ");
    insta::assert_snapshot!(env.run(["plan", "check"]), @"plan.toml: 30 tasks, 46 subtasks, 89 dependencies, 10 dependency levels");

    let tm: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&source).unwrap()).unwrap();
    let shown = show_json(&env, "plan.toml");
    let items = shown["items"].as_array().unwrap();
    for task in tm["master"]["tasks"].as_array().unwrap() {
        let id = format!(
            "T{}",
            task["id"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_else(|| task["id"].as_str().unwrap().to_owned())
        );
        let item = items
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(item["title"], task["title"], "{id}");
        let expected_status = match task["status"].as_str().unwrap() {
            "done" => "resolved",
            "cancelled" | "deferred" => "cancelled",
            "review" | "blocked" => "blocked",
            _ => "pending",
        };
        assert_eq!(item["status"], expected_status, "{id}");
        let priority = match task["priority"].as_str() {
            Some("critical") => 0,
            Some("high") => 1,
            Some("low") => 3,
            _ => 2,
        };
        assert_eq!(item["priority"], priority, "{id}");
        for sub in task["subtasks"].as_array().into_iter().flatten() {
            let sid = format!("{id}.S{}", sub["id"]);
            assert!(
                items.iter().any(|i| i["id"] == sid.as_str()),
                "{sid} missing"
            );
        }
    }

    // Issue 16: Taskmaster's own `next` skips tasks in `review` (and
    // `blocked`); orch offered them first. No agent starts on them.
    let out = env
        .orch()
        .args(["plan", "next", "--json"])
        .output()
        .unwrap();
    let next: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let offered: Vec<&str> = next["ready"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let held: Vec<String> = tm["master"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "review")
        .map(|t| format!("T{}", t["id"]))
        .collect();
    assert!(!held.is_empty());
    for id in &held {
        assert!(!offered.contains(&id.as_str()), "{id} offered: {offered:?}");
    }
}

#[test]
fn taskmaster_other_tag_and_legacy_layout() {
    let env = TestEnv::new();
    env.init_repo();
    env.copy_fixture("taskmaster/tasks.json", "tasks.json");
    let out = env
        .orch()
        .args([
            "plan",
            "import",
            "taskmaster",
            "--tag",
            "feature-auth",
            "-o",
            "auth.toml",
            "tasks.json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let out = env
        .orch()
        .args(["plan", "check", "--plan", "auth.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));

    env.copy_fixture("taskmaster/legacy.json", "legacy.json");
    let out = env
        .orch()
        .args([
            "plan",
            "import",
            "taskmaster",
            "-o",
            "legacy.toml",
            "legacy.json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let out = env
        .orch()
        .args(["plan", "check", "--plan", "legacy.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
}

#[test]
fn taskmaster_conversion_rules() {
    let env = TestEnv::new();
    env.init_repo();
    env.write(
        "tm.json",
        r#"{"master": {"tasks": [
            {"id": 20, "title": "Base", "status": "done", "priority": "critical",
             "subtasks": [{"id": 4, "title": "Part four", "status": "done"}]},
            {"id": "21", "title": "Next", "description": "Short.", "details": "Long\nnotes.",
             "testStrategy": "Run it.", "acceptanceCriteria": "- it works\n- it is fast",
             "priority": "low", "status": "in-progress", "dependencies": [20], "complexity": 5,
             "subtasks": [
               {"id": 1, "title": "First", "dependencies": ["20.4"]},
               {"id": 2, "title": "Second", "dependencies": [1], "status": "deferred"}]}]}}"#,
    );
    let out = env
        .orch()
        .args(["plan", "import", "taskmaster", "tm.json"])
        .output()
        .unwrap();
    insta::assert_snapshot!(env.render(&out), @r#"
    # Imported from Taskmaster (tag `master`) by `orch plan import taskmaster`.
    title = "Taskmaster tag master"

    [[task]]
    id = "T20"
    title = "Base"
    priority = 0
    status = "done"

    [[task.subtask]]
    id = "S4"
    title = "Part four"
    status = "done"

    [[task]]
    id = "T21"
    title = "Next"
    description = """
    Short.

    Long
    notes."""
    priority = 3
    status = "in-progress"
    acceptance = ["it works", "it is fast"]
    test_strategy = "Run it."
    depends_on = ["T20"]
    complexity = 5

    [[task.subtask]]
    id = "S1"
    title = "First"
    depends_on = ["T20.S4"]

    [[task.subtask]]
    id = "S2"
    title = "Second"
    status = "deferred"
    depends_on = ["S1"]
    "#);
}

#[test]
fn taskmaster_refusals() {
    let env = TestEnv::new();
    env.init_repo();
    env.write("two.json", r#"{"a": {"tasks": []}, "b": {"tasks": []}}"#);
    env.write("plan.toml", "# keep me\n");
    env.write(
        "dangling.json",
        r#"{"tasks": [{"id": 1, "title": "x", "dependencies": [7]}]}"#,
    );
    insta::assert_snapshot!(env.run(["plan", "import", "taskmaster", "two.json"]), @"
    ------- stderr -------
    error: `two.json`: the file has several tags (`a`, `b`); pick one with `--tag`
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["plan", "import", "taskmaster", "two.json", "--tag", "c"]), @"
    ------- stderr -------
    error: `two.json`: tag `c` is not in the file; it has `a`, `b`
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["plan", "import", "taskmaster", "dangling.json"]), @"
    ------- stderr -------
    (converted plan):7:15: `T1` depends on unknown `T7`
    error: 1 error in `(converted plan)`
    hint: the positions are in the converted plan; fix `dangling.json` and import again (nothing was written)
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["plan", "import", "taskmaster", "--tag", "a", "two.json", "-o", "plan.toml"]), @"
    ------- stderr -------
    error: refusing to overwrite `plan.toml`
    hint: pick another `--output`, or remove the file first
    [exit status: 2]
    ");
    assert_eq!(
        fs::read_to_string(env.repo().join("plan.toml")).unwrap(),
        "# keep me\n"
    );
}

#[test]
fn hacky_hack_backlog_loads_directly() {
    let env = TestEnv::new();
    env.init_repo();
    let plan = env.copy_fixture("hacky-hack/tasks.json", "tasks.json");
    insta::assert_snapshot!(env.run(["plan", "check", "--plan", "tasks.json"]), @"tasks.json: 31 tasks, 80 subtasks, 104 dependencies, 14 dependency levels");
    let out = env
        .orch()
        .args(["plan", "show", "--json", "--plan"])
        .arg(&plan)
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let source: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&plan).unwrap()).unwrap();
    let mut expected = Vec::new();
    for phase in source["backlog"].as_array().unwrap() {
        expected.push(phase["id"].as_str().unwrap().to_owned());
        for m in phase["milestones"].as_array().unwrap() {
            expected.push(m["id"].as_str().unwrap().to_owned());
            for t in m["tasks"].as_array().unwrap() {
                expected.push(t["id"].as_str().unwrap().to_owned());
                for s in t["subtasks"].as_array().unwrap() {
                    expected.push(s["id"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    let ids: Vec<String> = shown["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, expected, "every item, in plan order");
    let items = shown["items"].as_array().unwrap();
    let complete = items.iter().find(|i| {
        i["kind"] == "subtask" && i["extra"]["type"] == "Subtask" && i["status"] == "resolved"
    });
    let complete = complete.expect("a `Complete` subtask starts resolved");
    assert!(
        complete["extra"]["context_scope"].is_string(),
        "context_scope is kept"
    );
    assert!(
        complete["extra"]["story_points"].is_number(),
        "story_points is kept"
    );
    let with_deps = items
        .iter()
        .filter(|i| !i["depends_on"].as_array().unwrap().is_empty())
        .count();
    assert!(
        with_deps > 20,
        "subtask dependencies are resolved ({with_deps})"
    );
}
