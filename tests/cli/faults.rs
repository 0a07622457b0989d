//! Faults from outside: the machine, git and people doing things mid-run.
//! Each ends in a clear error or a clean recovery, with nothing half-written
//! and no agent's work lost.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use crate::common::{DEADLINE, TestEnv, wait_until};

fn setup(script: &str, extra: &str, plan: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(script, extra);
    env.write("plan.toml", plan);
    env
}

#[test]
fn an_agent_command_that_is_not_executable_fails_at_once_naming_it() {
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    let agent = env.root().join("agent.sh");
    fs::write(&agent, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o644)).unwrap();
    env.edit_config(
        &format!("{:?}", env.agent("commit.sh")),
        &format!("{:?}", agent.display().to_string()),
    );
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    let state = env.state();
    assert_eq!(
        state["items"]["T1"]["attempts"].as_array().unwrap().len(),
        1,
        "not retried"
    );
    let reason = state["items"]["T1"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("cannot start the agent: `"), "{reason}");
    assert!(
        reason.ends_with("agent.sh`: Permission denied (os error 13)"),
        "{reason}"
    );
}

#[test]
fn a_worktree_root_that_cannot_be_made_fails_the_tasks_naming_it() {
    let env = setup(
        "commit.sh",
        "",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n",
    );
    fs::write(env.root().join("blocker"), "a file, not a folder\n").unwrap();
    env.edit_config("[git]\n", "[git]\nworktree_root = \"../blocker/wt\"\n");
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for id in ["T1", "T2"] {
        assert_eq!(env.status_of(id), "failed");
        let reason = env.state()["items"][id]["reason"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            reason.starts_with("cannot prepare the worktree: "),
            "{reason}"
        );
        assert!(reason.contains("blocker"), "{reason}");
    }
    assert_eq!(
        fs::read_to_string(env.root().join("blocker")).unwrap(),
        "a file, not a folder\n"
    );
    let branches = env.git(&env.repo(), ["branch", "--list", "orch/*"]);
    assert!(branches.is_empty(), "no branch left behind: {branches}");
}

/// Runs T1 with `lock` held: merging waits (said once, in the state too),
/// naming the lock file, and lands once it is removed.
fn merging_waits_for(env: &TestEnv, lock: &Path) {
    let name = lock.file_name().unwrap().to_str().unwrap();
    fs::write(lock, "").unwrap();
    let mut run = env
        .orch()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(DEADLINE, || env
            .events()
            .iter()
            .any(|e| e["event"] == "merge.waiting")),
        "merging never waited"
    );
    let waiting = env
        .events()
        .into_iter()
        .find(|e| e["event"] == "merge.waiting")
        .unwrap();
    let reason = waiting["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains(name), "{reason}");
    assert!(wait_until(DEADLINE, || {
        env.status_of("T1") == "merging"
            && env.state()["items"]["T1"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains(name))
    }));
    fs::remove_file(lock).unwrap();
    let status = run.wait().unwrap();
    assert!(status.success());
    assert_eq!(env.status_of("T1"), "merged");
}

#[test]
fn a_stale_index_lock_in_the_checkout_pauses_merging_until_it_is_gone() {
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    merging_waits_for(&env, &env.repo().join(".git/index.lock"));
}

#[test]
fn a_stale_lock_on_the_target_ref_pauses_merging_until_it_is_gone() {
    // The target is not checked out: landing moves its ref alone, and a
    // `refs/heads/<target>.lock` left by a git killed mid-write holds it.
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    env.git(&env.repo(), ["branch", "integration"]);
    env.edit_config("target = \"main\"", "target = \"integration\"");
    merging_waits_for(&env, &env.repo().join(".git/refs/heads/integration.lock"));
}

#[test]
fn the_target_deleted_mid_run_stops_the_run_keeping_every_task_and_how_to_recover() {
    let env = setup(
        "slow.sh",
        "[agent.env]\nSLOW_SECONDS = \"1\"\n",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\ndepends_on = [\"T1\"]\n",
    );
    env.git(&env.repo(), ["branch", "integration"]);
    env.edit_config("target = \"main\"", "target = \"integration\"");
    let last = env.git(&env.repo(), ["rev-parse", "integration"]);
    let run = env
        .orch()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(DEADLINE, || env.agent_groups().len() == 1));
    env.git(&env.repo(), ["update-ref", "-d", "refs/heads/integration"]);
    let out = run.wait_with_output().unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("error: target branch `integration` was deleted during the run; orch stopped starting and merging tasks"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "hint: recreate it where orch last saw it (`git branch integration {}`)",
            last.trim()
        )),
        "{text}"
    );
    assert_eq!(
        env.status_of("T1"),
        "awaiting_merge",
        "T1's work waits, not failed"
    );
    assert_eq!(env.status_of("T2"), "");
    // Recreated, the next run merges what waited and goes on.
    env.git(&env.repo(), ["branch", "integration", last.trim()]);
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
    assert_eq!(env.status_of("T2"), "merged");
    env.assert_no_agent_left();
}

#[test]
fn a_task_branch_moved_by_hand_is_merged_as_moved_and_its_old_tip_kept() {
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let agent_tip = env.git(&env.repo(), ["rev-parse", "orch/T1"]);
    // Someone replaces the task's work with their own commit.
    let wt = env.root().join("repo.worktrees/T1");
    env.git(&wt, ["reset", "-q", "--hard", "main"]);
    fs::write(wt.join("by-hand.txt"), "mine\n").unwrap();
    env.git(&wt, ["add", "by-hand.txt"]);
    env.git(&wt, ["commit", "-q", "-m", "Done by hand"]);
    let out = env.orch().arg("merge").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
    let requeued = env
        .events()
        .into_iter()
        .find(|e| e["event"] == "merge.requeued")
        .unwrap();
    let backup = requeued["backup"].as_str().unwrap().to_owned();
    // Backup 1 is the tip before orch added the trailer to the fixture's
    // commit (made without hooks); the requeue keeps the next one.
    assert_eq!(backup, "refs/orch/backup/T1/2");
    assert_eq!(
        env.git(&env.repo(), ["rev-parse", &backup]),
        agent_tip,
        "the agent's commit is kept"
    );
    assert_eq!(env.git(&env.repo(), ["show", "main:by-hand.txt"]), "mine\n");
}

/// Runs `script` with `sh` in the repository, in a mount namespace of its
/// own where it may mount (`unshare -rm`), with the test's environment and
/// `ORCH` set to the binary. Returns what it printed.
fn in_namespace(env: &TestEnv, script: &str) -> std::process::Output {
    let mut cmd = std::process::Command::new("unshare");
    cmd.env_clear()
        .envs(env.vars())
        .env("ORCH", env!("CARGO_BIN_EXE_orch"))
        .current_dir(env.repo())
        .args(["-rm", "sh", "-c", script]);
    let out = cmd
        .output()
        .expect("`unshare` (util-linux) is needed for the disk-full and read-only tests");
    assert!(
        out.status.code() != Some(99),
        "cannot mount in a user namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn many_tasks(n: usize) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "[[task]]\nid = \"T{i:02}\"\ntitle = \"{}\"\n",
                "a long title ".repeat(20)
            )
        })
        .collect()
}

#[test]
fn a_full_disk_stops_the_run_with_the_last_good_state_and_the_next_run_finishes() {
    let env = setup("commit.sh", "", &many_tasks(40));
    fs::create_dir_all(env.repo().join(".orchestrator")).unwrap();
    let out_dir = env.root().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let script = format!(
        r#"
        mount -t tmpfs -o size=48k tmpfs .orchestrator || exit 99
        "$ORCH" run --no-merge 2> '{out}/first.err'
        echo $? > '{out}/first.code'
        cp .orchestrator/state.json '{out}/state-after-full.json'
        ls -a .orchestrator > '{out}/files'
        mount -o remount,size=8m .orchestrator
        "$ORCH" run --no-merge 2> '{out}/second.err'
        echo $? > '{out}/second.code'
        "$ORCH" status --json > '{out}/status.json'
        "#,
        out = out_dir.display()
    );
    let out = in_namespace(&env, &script);
    assert!(out.status.success(), "{}", env.render(&out));
    let read = |name: &str| fs::read_to_string(out_dir.join(name)).unwrap();
    let first_err = env.filter(&read("first.err"));
    assert_eq!(read("first.code").trim(), "255", "{first_err}");
    assert!(first_err.contains("error: cannot "), "{first_err}");
    assert!(first_err.contains("No space left on device"), "{first_err}");
    let state: serde_json::Value = serde_json::from_str(&read("state-after-full.json"))
        .expect("the last good state.json, whole");
    assert_eq!(state["schema"], 1);
    assert!(
        !read("files").contains(".tmp"),
        "no temp file left: {}",
        read("files")
    );
    assert_eq!(read("second.code").trim(), "0", "{}", read("second.err"));
    let status: serde_json::Value = serde_json::from_str(&read("status.json")).unwrap();
    assert_eq!(status["counts"]["awaiting_merge"], 40, "{status}");
    env.assert_no_agent_left();
}

#[test]
fn a_read_only_state_dir_is_refused_clearly_and_nothing_changes() {
    let env = setup(
        "commit.sh",
        "",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n",
    );
    let out = env
        .orch()
        .args(["run", "--no-merge", "--only", "T1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let before = fs::read(env.repo().join(".orchestrator/state.json")).unwrap();
    let out_dir = env.root().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let script = format!(
        r#"
        mount --bind .orchestrator .orchestrator && mount -o remount,bind,ro .orchestrator || exit 99
        "$ORCH" run --no-merge > /dev/null 2> '{out}/run.err'; echo $? > '{out}/run.code'
        "$ORCH" cancel T2 > /dev/null 2> '{out}/cancel.err'; echo $? > '{out}/cancel.code'
        "$ORCH" status > '{out}/status.out' 2>&1; echo $? > '{out}/status.code'
        "#,
        out = out_dir.display()
    );
    let out = in_namespace(&env, &script);
    assert!(out.status.success(), "{}", env.render(&out));
    let read = |name: &str| env.filter(&fs::read_to_string(out_dir.join(name)).unwrap());
    assert_eq!(read("run.code").trim(), "255");
    insta::assert_snapshot!(read("run.err"), @"
    error: cannot lock `$TEMP/repo/.orchestrator/lock`
      caused by: Read-only file system (os error 30)
    ");
    assert_eq!(read("cancel.code").trim(), "255");
    insta::assert_snapshot!(read("cancel.err"), @"
    error: cannot lock `$TEMP/repo/.orchestrator/lock`
      caused by: Read-only file system (os error 30)
    ");
    assert_eq!(
        read("status.code").trim(),
        "0",
        "reading still works: {}",
        read("status.out")
    );
    assert_eq!(
        fs::read(env.repo().join(".orchestrator/state.json")).unwrap(),
        before,
        "nothing changed"
    );
    let branches = env.git(&env.repo(), ["branch", "--list", "orch/T2"]);
    assert!(branches.is_empty(), "T2 never started: {branches}");
}
