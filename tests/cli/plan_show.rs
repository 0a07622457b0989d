use crate::common::TestEnv;

const PLAN: &str = r#"
title = "Payments rewrite"

[[phase]]
id = "P1"
title = "Foundation"

[[phase.milestone]]
id = "M1"
title = "Storage"

[[phase.milestone.task]]
id = "T1"
title = "Schema migrations"
priority = 1
status = "done"

[[phase.milestone.task]]
id = "T2"
title = "Ledger model"
depends_on = ["T1"]
owner = "ana"

[[phase.milestone.task.subtask]]
id = "S1"
title = "Write the model"

[[phase.milestone.task]]
id = "T3"
title = "Old importer"
status = "deferred"
"#;

#[test]
fn show_uses_the_plans_own_statuses_without_a_state_file() {
    let env = TestEnv::new();
    env.init_repo();
    env.write("plan.toml", PLAN);
    insta::assert_snapshot!(env.run(["plan", "show"]), @"
    Payments rewrite
    P1  Foundation                              running  1/3
      P1.M1  Storage                            running  1/3
        P1.M1.T1  Schema migrations     p1  L1  resolved
        P1.M1.T2  Ledger model          p2  L2  pending
          P1.M1.T2.S1  Write the model  p2      pending
        P1.M1.T3  Old importer          p2  L1  cancelled
    ");
}

#[test]
fn show_prefers_the_state_file() {
    let env = TestEnv::new();
    env.init_repo();
    env.write("plan.toml", PLAN);
    env.write(
        ".orchestrator/state.json",
        r#"{"schema": 1, "target": "main", "items": {
            "P1.M1.T2": {"status": "running", "attempts": [{"number": 1, "started": "2026-01-01T00:00:00Z"}]},
            "P1.M1.T2.S1": {"status": "done"}}}"#,
    );
    insta::assert_snapshot!(env.run(["plan", "show"]), @"
    Payments rewrite
    P1  Foundation                              running  1/3
      P1.M1  Storage                            running  1/3
        P1.M1.T1  Schema migrations     p1  L1  resolved
        P1.M1.T2  Ledger model          p2  L2  running
          P1.M1.T2.S1  Write the model  p2      done
        P1.M1.T3  Old importer          p2  L1  cancelled
    ");
}

#[test]
fn show_json_lists_items_in_plan_order() {
    let env = TestEnv::new();
    env.init_repo();
    env.write("plan.toml", PLAN);
    insta::assert_snapshot!(env.run(["plan", "show", "--json"]), @r#"
    {
      "title": "Payments rewrite",
      "items": [
        {
          "id": "P1",
          "kind": "phase",
          "title": "Foundation",
          "priority": 2,
          "status": "running",
          "parent": null,
          "depends_on": []
        },
        {
          "id": "P1.M1",
          "kind": "milestone",
          "title": "Storage",
          "priority": 2,
          "status": "running",
          "parent": "P1",
          "depends_on": []
        },
        {
          "id": "P1.M1.T1",
          "kind": "task",
          "title": "Schema migrations",
          "priority": 1,
          "status": "resolved",
          "level": 1,
          "parent": "P1.M1",
          "depends_on": []
        },
        {
          "id": "P1.M1.T2",
          "kind": "task",
          "title": "Ledger model",
          "priority": 2,
          "status": "pending",
          "level": 2,
          "parent": "P1.M1",
          "depends_on": [
            {
              "id": "P1.M1.T1",
              "required": true
            }
          ],
          "extra": {
            "owner": "ana"
          }
        },
        {
          "id": "P1.M1.T2.S1",
          "kind": "subtask",
          "title": "Write the model",
          "priority": 2,
          "status": "pending",
          "parent": "P1.M1.T2",
          "depends_on": []
        },
        {
          "id": "P1.M1.T3",
          "kind": "task",
          "title": "Old importer",
          "priority": 2,
          "status": "cancelled",
          "level": 1,
          "parent": "P1.M1",
          "depends_on": []
        }
      ]
    }
    "#);
}

#[test]
fn a_corrupt_state_file_is_named() {
    let env = TestEnv::new();
    env.init_repo();
    env.write("plan.toml", PLAN);
    env.write(
        ".orchestrator/state.json",
        "{\"schema\": 1, \"items\": {\"P1.M1.T2\": {\"status\": \"sleeping\"}}}",
    );
    insta::assert_snapshot!(env.run(["plan", "show"]), @"
    ------- stderr -------
    error: cannot parse `.orchestrator/state.json` at 1:57: unknown variant `sleeping`, expected one of `pending`, `ready`, `running`, `retrying`, `awaiting_merge`, `merging`, `awaiting_review`, `conflicted`, `merged`, `done`, `failed`, `blocked`, `cancelled`, `resolved`, `reverted`
    [exit status: 2]
    ");
}
