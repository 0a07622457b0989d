//! Plan versions: each run records its plan's digest and keeps a copy;
//! `orch plan diff` and the start of the next run say what changed.

use crate::common::{TestEnv, stable_output};

const V1: &str = r#"
[[task]]
id = "T1"
title = "Schema"

[[task]]
id = "T2"
title = "Importer"
agent = "failing"

[[task]]
id = "T3"
title = "Model"
depends_on = ["T1"]

[[task]]
id = "T6"
title = "Importer docs"
depends_on = ["T2"]
"#;

const V2: &str = r#"
[[task]]
id = "T1"
title = "Schema, with indexes"

[[task]]
id = "T3"
title = "Model"
priority = 1
depends_on = ["T1", { id = "T4", required = false }]

[[task]]
id = "T4"
title = "Seed data"
depends_on = ["T1"]
"#;

fn events_named(env: &TestEnv, name: &str) -> Vec<serde_json::Value> {
    env.events()
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

#[test]
fn a_changed_plan_is_diffed_reported_at_start_and_keeps_unmerged_work() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(
        "commit.sh",
        &format!(
            "[agents.failing]\ncommand = [{:?}]\n",
            env.agent("commit-fail.sh")
        ),
    );
    env.write("plan.toml", V1);
    let first = env.orch().arg("run").output().unwrap();
    assert_eq!(first.status.code(), Some(1), "{}", env.render(&first));

    // The run recorded its plan: digest in `run.started` and the state, a copy kept.
    let started = &events_named(&env, "run.started")[0];
    let digest = started["plan_digest"].as_str().unwrap().to_owned();
    assert_eq!(digest.len(), 64);
    assert_eq!(env.state()["run"]["plan"], digest.as_str());
    let copy = env
        .repo()
        .join(format!(".orchestrator/plans/{digest}.toml"));
    assert_eq!(std::fs::read_to_string(copy).unwrap(), V1);
    assert_eq!(
        env.run(["plan", "diff"]),
        format!(
            "The plan is the one the last run ran ({}).\n",
            &digest[..12]
        )
    );

    env.write("plan.toml", V2);
    let out = env.run(["plan", "diff"]);
    stable_output().bind(|| {
        insta::assert_snapshot!(out, @r#"
        Changes since the last run's plan ([OID] -> [OID]):
          added         T4  Seed data
          removed       T2  Importer
          removed       T6  Importer docs
          retitled      T1  "Schema" -> "Schema, with indexes"  (merged; the work stays: `orch retry ID` runs it again)
          dependencies  T3  T1 -> T1, T4?  (merged; the work stays: `orch retry ID` runs it again)
          priority      T3  p2 -> p1  (merged; the work stays: `orch retry ID` runs it again)
        "#);
    });

    let second = env.orch().arg("run").output().unwrap();
    let stderr = env.render(&second);
    stable_output().bind(|| {
        let mut lines = stderr.lines().skip_while(|l| !l.contains("The plan changed"));
        let heading = lines.next().unwrap_or_default();
        let report: String = std::iter::once(heading)
            .chain(lines.take_while(|l| l.starts_with("  ")))
            .map(|l| format!("{l}\n"))
            .collect();
        insta::assert_snapshot!(report, @"
        [MM:SS] The plan changed since the last run ([OID] -> [OID]):
          added: T4
          removed: T2, T6
          dropped from the run, not started: T6
          retitled: T1
          dependencies changed: T3
          priority changed: T3
          merged before and changed since (the work stays merged; `orch retry ID` runs it again): T1, T3
          removed with work not in the target, kept on its branch: T2 (`orch/T2`)
        ");
    });
    assert!(second.status.success(), "{stderr}");
    let changed = &events_named(&env, "plan.changed")[0];
    assert_eq!(changed["live"], false);
    assert_eq!(changed["from"], digest.as_str());
    assert_eq!(changed["kept"][0]["branch"], "orch/T2");
    assert_eq!(changed["dropped"], serde_json::json!(["T6"]));
    assert_eq!(changed["merged_changed"], serde_json::json!(["T1", "T3"]));
    assert!(
        env.git_ok(&env.repo(), ["rev-parse", "--verify", "orch/T2"]),
        "the unmerged work stays"
    );
    assert_eq!(env.status_of("T4"), "merged");
    assert!(
        env.state()["items"].get("T6").is_none(),
        "T6 was dropped from the state"
    );

    // `orch retry` runs a merged task again on purpose.
    let retried = env.orch().args(["retry", "T1"]).output().unwrap();
    assert!(retried.status.success(), "{}", env.render(&retried));
    let third = env.orch().arg("run").output().unwrap();
    assert!(third.status.success(), "{}", env.render(&third));
    let merges_of_t1 = events_named(&env, "task.merged")
        .iter()
        .filter(|e| e["id"] == "T1")
        .count();
    assert_eq!(merges_of_t1, 2);
}
