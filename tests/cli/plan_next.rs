use crate::common::TestEnv;

const PLAN: &str = r#"
[[task]]
id = "docs"
title = "Write docs"
priority = 3

[[task]]
id = "schema"
title = "Schema"
priority = 1
resources = { db = 1 }

[[task]]
id = "seed"
title = "Seed data"
priority = 1
resources = { db = 1 }

[[task]]
id = "api"
title = "API"
priority = 0
depends_on = ["schema"]

[[task]]
id = "cleanup"
title = "Cleanup"
priority = 2
depends_on = [{ id = "docs", required = false }]
"#;

fn env() -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.write(".orchestrator.toml", "[resources]\ndb = 1\n");
    env.write("plan.toml", PLAN);
    env
}

#[test]
fn next_lists_ready_tasks_in_launch_order() {
    let env = env();
    insta::assert_snapshot!(env.run(["plan", "next"]), @"
    schema  p1  Schema
    docs    p3  Write docs
    seed    p1  Seed data  (held: resource `db` is in use)
    ");
    insta::assert_snapshot!(env.run(["plan", "next", "--max-parallel", "1"]), @"
    schema  p1  Schema
    seed    p1  Seed data  (held: no free agent slot: `max_parallel` is 1, with 0 running and 1 starting before it)
    docs    p3  Write docs  (held: no free agent slot: `max_parallel` is 1, with 0 running and 1 starting before it)
    ");
}

#[test]
fn next_json_has_the_documented_shape() {
    let env = env();
    insta::assert_snapshot!(env.run(["plan", "next", "--json"]), @r#"
    {
      "ready": [
        {
          "id": "schema",
          "title": "Schema",
          "priority": 1,
          "effective_priority": 1,
          "held": null
        },
        {
          "id": "docs",
          "title": "Write docs",
          "priority": 3,
          "effective_priority": 3,
          "held": null
        },
        {
          "id": "seed",
          "title": "Seed data",
          "priority": 1,
          "effective_priority": 1,
          "held": "resource `db` is in use"
        }
      ]
    }
    "#);
}

#[test]
fn next_follows_the_state_file() {
    let env = env();
    env.write(
        ".orchestrator/state.json",
        r#"{"schema": 1, "items": {
            "schema": {"status": "merged"},
            "docs": {"status": "failed", "reason": "exit 1"},
            "seed": {"status": "running"}}}"#,
    );
    insta::assert_snapshot!(env.run(["plan", "next", "--json"]), @r#"
    {
      "ready": [
        {
          "id": "api",
          "title": "API",
          "priority": 0,
          "effective_priority": 0,
          "held": null
        },
        {
          "id": "cleanup",
          "title": "Cleanup",
          "priority": 2,
          "effective_priority": 2,
          "held": null
        }
      ]
    }
    "#);
}

#[test]
fn nothing_ready_says_why() {
    let env = TestEnv::new();
    env.init_repo();
    env.write("plan.toml", "[[task]]\nid = \"A\"\nstatus = \"done\"\n[[task]]\nid = \"B\"\nstatus = \"cancelled\"\n[[task]]\nid = \"C\"\ndepends_on = [\"B\"]\n");
    insta::assert_snapshot!(env.run(["plan", "next"]), @"
    ------- stderr -------
    Nothing is ready: 1 task blocked, 2 tasks finished.
    ");
}

/// Returns the ids `orch run --dry-run` would start, in order.
fn dry_run_order(env: &TestEnv, extra: &[&str]) -> Vec<String> {
    let out = env
        .orch()
        .args(["run", "--dry-run"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("would start "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// Returns the ids `orch plan next --json` lists: those it would start now,
/// then the held ones.
fn next_order(env: &TestEnv, extra: &[&str]) -> (Vec<String>, Vec<String>) {
    let out = env
        .orch()
        .args(["plan", "next", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (held, start): (Vec<_>, Vec<_>) = doc["ready"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|t| !t["held"].is_null());
    let ids = |v: Vec<&serde_json::Value>| -> Vec<String> {
        v.iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    (ids(start), ids(held))
}

#[test]
fn next_lists_tasks_in_the_order_run_starts_them() {
    let env = TestEnv::new();
    env.init_repo();
    env.write(
        ".orchestrator.toml",
        "[agent]\nmax_parallel = 3\n\n[resources]\ndb = 1\ngpu = 2\n\n[scheduling]\naging = \"0s\"\n",
    );
    env.write(
        "plan.toml",
        r#"
[[task]]
id = "low"
priority = 3
[[task]]
id = "tie-a"
priority = 1
resources = { gpu = 1 }
[[task]]
id = "urgent-db"
priority = 0
resources = { db = 1 }
[[task]]
id = "tie-b"
priority = 1
resources = { gpu = 1 }
[[task]]
id = "second-db"
priority = 0
resources = { db = 1 }
[[task]]
id = "tie-c"
priority = 1
resources = { gpu = 1 }
[[task]]
id = "normal"
"#,
    );
    let cases: [(&[&str], &[&str]); 3] = [
        (&[], &["urgent-db", "tie-a", "tie-b"]),
        (&["--max-parallel", "1"], &["urgent-db"]),
        (
            &["--max-parallel", "10"],
            &["urgent-db", "tie-a", "tie-b", "normal", "low"],
        ),
    ];
    for (args, expected) in cases {
        let (start, held) = next_order(&env, args);
        assert_eq!(start, expected, "plan next {args:?}");
        assert_eq!(dry_run_order(&env, args), start, "run --dry-run {args:?}");
        assert_eq!(start.len() + held.len(), 7, "{args:?}: every task is ready");
    }
}
