//! Issue 14: the merge queue at the speed of the checks. Batches with
//! bisection, speculation, the conflict radar, review gates, `orch revert`,
//! and the fixes found on the way. History is checked with the `git` CLI,
//! check runs with the `check.passed` and `check.failed` events.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::{DEADLINE, TestEnv, wait_until};

/// How long a test watches for something that must not happen: longer than
/// two of the queue's two-second pauses.
const QUIET_WINDOW: Duration = Duration::from_secs(5);

fn setup(script: &str, extra: &str, plan: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(script, extra);
    env.write("plan.toml", plan);
    env
}

fn git(env: &TestEnv, args: &[&str]) -> String {
    env.git(&env.repo(), args)
}

fn count(env: &TestEnv, name: &str) -> usize {
    env.events().iter().filter(|e| e["event"] == name).count()
}

fn spawn_run(env: &TestEnv) -> Child {
    env.orch()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let mut status = None;
    assert!(wait_until(DEADLINE, || {
        status = child.try_wait().unwrap();
        status.is_some()
    }));
    status.unwrap()
}

#[test]
fn issue_14_ff_only_rebases_a_clean_branch_instead_of_handing_it_back() {
    let env = setup(
        "commit.sh",
        "[policy]\nrequire_trailer = true",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
    );
    env.edit_config(
        "target = \"main\"",
        "target = \"main\"\nmerge_strategy = \"ff-only\"",
    );
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    for task in ["A", "B"] {
        assert_eq!(env.status_of(task), "merged", "{task}");
        let attempts = env.state()["items"][task]["attempts"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(attempts, 1, "{task}: no attempt spent on a clean branch");
    }
    assert_eq!(count(&env, "merge.conflicted"), 0, "nothing conflicted");
    let parents = git(&env, &["log", "--format=%p", "main"]);
    assert!(
        parents.lines().all(|p| !p.contains(' ')),
        "main only fast-forwarded: {parents}"
    );
    let files = git(&env, &["ls-tree", "--name-only", "main"]);
    assert!(files.contains("work-A.txt") && files.contains("work-B.txt"));
}

#[test]
fn issue_14_a_waiting_merge_is_said_once_and_the_state_is_not_rewritten_while_it_waits() {
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    env.write("work-T1.txt", "a person's file\n");
    let mut run = spawn_run(&env);
    assert!(wait_until(DEADLINE, || count(&env, "merge.waiting") > 0));
    let state = env.repo().join(".orchestrator/state.json");
    // The reason reaches the state once (and the radar's reading of the
    // branch); then nothing more changes.
    assert!(wait_until(DEADLINE, || {
        let state = env.state();
        let t1 = &state["items"]["T1"];
        t1["reason"]
            .as_str()
            .is_some_and(|r| r.contains("work-T1.txt"))
            && t1["radar"]["changes"] == serde_json::json!(["work-T1.txt"])
    }));
    std::thread::sleep(Duration::from_millis(500));
    let before = fs::metadata(&state).unwrap().ino();
    std::thread::sleep(QUIET_WINDOW);
    let after = fs::metadata(&state).unwrap().ino();
    assert_eq!(count(&env, "merge.started"), 1, "{:#?}", env.events());
    assert_eq!(count(&env, "merge.waiting"), 1);
    assert_eq!(
        before, after,
        "state.json was rewritten while the merge waited"
    );
    fs::remove_file(env.repo().join("work-T1.txt")).unwrap();
    assert!(wait_exit(&mut run).success());
    assert_eq!(env.status_of("T1"), "merged");
}
