//! Changing the plan while `orch run` is live: a saved valid plan is
//! applied, a broken one refused with its errors, and the run goes on.

use std::process::Stdio;

use crate::common::{DEADLINE, TestEnv, wait_until};

fn has_event(env: &TestEnv, name: &str, id: Option<&str>) -> bool {
    env.events()
        .iter()
        .any(|e| e["event"] == name && id.is_none_or(|id| e["id"] == id))
}

#[test]
fn a_live_run_picks_up_an_added_task_refuses_a_broken_plan_and_goes_on() {
    let env = TestEnv::new();
    env.init_repo();
    let gates = env.root().join("gates");
    std::fs::create_dir_all(&gates).unwrap();
    env.configure(
        "gate.sh",
        &format!(
            "[agent.env]\nGATE_DIR = {:?}\n",
            gates.display().to_string()
        ),
    );
    env.write("plan.toml", "[[task]]\nid = \"T1\"\ntitle = \"First\"\n");
    let run = env
        .orch()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(DEADLINE, || has_event(&env, "task.started", Some("T1"))),
        "T1 never started"
    );

    env.write("plan.toml", "[[task]]\nid = \"T1\"\ntitel = \"First\"\n");
    assert!(
        wait_until(DEADLINE, || has_event(&env, "plan.refused", None)),
        "the broken plan was not refused"
    );
    let refused = env
        .events()
        .into_iter()
        .find(|e| e["event"] == "plan.refused")
        .unwrap();
    let error = refused["errors"][0].as_str().unwrap();
    assert!(error.starts_with("plan.toml:3:1: "), "{error}");

    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\ntitle = \"First\"\n\n[[task]]\nid = \"T2\"\ntitle = \"Added while running\"\n",
    );
    assert!(
        wait_until(DEADLINE, || has_event(&env, "task.started", Some("T2"))),
        "the added task never started"
    );
    let changed = env
        .events()
        .into_iter()
        .find(|e| e["event"] == "plan.changed")
        .unwrap();
    assert_eq!(changed["live"], true);
    assert_eq!(changed["added"], serde_json::json!(["T2"]));

    std::fs::write(gates.join("T1"), "").unwrap();
    std::fs::write(gates.join("T2"), "").unwrap();
    let out = run.wait_with_output().unwrap();
    let stderr = env.filter(&String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "The saved plan has errors; the run goes on with the plan it had:\n  plan.toml:3:1: "
        ),
        "the progress stream shows the refusal: {stderr}"
    );
    assert!(stderr.contains("The saved plan ("), "{stderr}");
    assert_eq!(env.status_of("T1"), "merged");
    assert_eq!(env.status_of("T2"), "merged");
    let digest = changed["to"].as_str().unwrap();
    assert_eq!(env.state()["run"]["plan"], digest);
}
