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
    seed    p1  Seed data  (held: max_parallel agents are running)
    docs    p3  Write docs  (held: max_parallel agents are running)
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
