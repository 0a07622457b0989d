//! The merge queue end to end: plans taken to a merged target, each strategy's
//! history, conflicts and red checks in both modes, policy refusals, a target
//! that moves or is dirty, and a coordinator killed during a merge. History
//! is checked with the `git` CLI. Also what a person sees of `orch merge`
//! when a merge conflicts or a check is red.

use std::fs;
use std::path::Path;

use rustix::process::{Pid, Signal, kill_process};

use crate::common::{DEADLINE, TestEnv, stable_output, wait_exit, wait_until};

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

fn first_parent_subjects(env: &TestEnv) -> Vec<String> {
    git(env, &["log", "--first-parent", "--format=%s", "main"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn is_ancestor(env: &TestEnv, a: &str, b: &str) -> bool {
    env.git_ok(&env.repo(), ["merge-base", "--is-ancestor", a, b])
}

const DIAMOND: &str = "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\ndepends_on = [\"A\"]\n[[task]]\nid = \"C\"\ndepends_on = [\"A\"]\n[[task]]\nid = \"D\"\ndepends_on = [\"B\", \"C\"]\n";

#[test]
fn a_diamond_lands_in_dependency_order_and_dependents_see_their_dependencies() {
    let env = setup("deps.sh", "", DIAMOND);
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    for task in ["A", "B", "C", "D"] {
        assert_eq!(env.status_of(task), "merged", "{task}");
    }
    let subjects = first_parent_subjects(&env);
    assert_eq!(subjects.len(), 5, "{subjects:?}");
    assert_eq!(subjects[0], "Merge task D: D");
    assert_eq!(subjects[3], "Merge task A: A");
    assert_eq!(subjects[4], "initial commit");
    let a = env.state()["items"]["A"]["merge_commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = env.state()["items"]["D"]["merge_commit"]
        .as_str()
        .unwrap()
        .to_owned();
    for dep in ["B", "C"] {
        let m = env.state()["items"][dep]["merge_commit"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(is_ancestor(&env, &a, &m), "A landed before {dep}");
        assert!(is_ancestor(&env, &m, &d), "{dep} landed before D");
    }
    assert_eq!(
        fs::read_to_string(env.repo().join("seen-D.txt")).unwrap(),
        "work-A.txt work-B.txt work-C.txt "
    );
    assert_eq!(
        fs::read_to_string(env.repo().join("seen-B.txt")).unwrap(),
        "work-A.txt "
    );
    let trailer = git(
        &env,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Orch-Task,valueonly)",
            &d,
        ],
    );
    assert_eq!(trailer.trim(), "D");
    let branches = git(&env, &["branch", "--format=%(refname:short)"]);
    assert_eq!(branches.trim(), "main", "merged branches are deleted");
    assert_eq!(
        git(&env, &["status", "--porcelain", "--untracked-files=no"]),
        "",
        "the checkout followed"
    );
    env.assert_no_agent_left();
}

#[test]
fn fan_out_and_fan_in_with_a_check() {
    let plan = "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\ndepends_on = [\"A\"]\n[[task]]\nid = \"C\"\ndepends_on = [\"A\"]\n[[task]]\nid = \"D\"\ndepends_on = [\"A\"]\n[[task]]\nid = \"E\"\ndepends_on = [\"B\", \"C\", \"D\"]\n";
    let env = setup(
        "deps.sh",
        // One task a batch, one check at a time: B, C and D, finishing
        // together, would otherwise share one check run or two, as they
        // happened to end, and a candidate checked on top of another that
        // passed first lands both (issue 14), the lower one's check stopped.
        "[policy]\nchecks = [{ name = \"files\", run = \"test -e work-$ORCH_TASK_ID.txt\" }]\n\n[merge]\nbatch = 1\nmax_parallel_checks = 1",
        plan,
    );
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(first_parent_subjects(&env).len(), 6);
    assert_eq!(
        fs::read_to_string(env.repo().join("seen-E.txt")).unwrap(),
        "work-A.txt work-B.txt work-C.txt work-D.txt "
    );
    let passed = env
        .events()
        .iter()
        .filter(|e| e["event"] == "check.passed")
        .count();
    assert_eq!(passed, 5);
    assert!(env.repo().join(".orchestrator/checks/E/files.log").exists());
    let merge_dir = env.repo().join(".orchestrator/merge");
    let list = git(&env, &["worktree", "list", "--porcelain"]);
    assert!(
        list.contains(&format!("worktree {}", merge_dir.display())),
        "{list}"
    );
}

#[test]
fn orch_merge_drains_the_queue_without_starting_agents() {
    let env = setup(
        "commit.sh",
        "",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
    );
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(first_parent_subjects(&env).len(), 1);
    let out = env.orch().arg("merge").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("A"), "merged");
    assert_eq!(env.status_of("B"), "merged");
    let started = env
        .events()
        .iter()
        .filter(|e| e["event"] == "task.started")
        .count();
    assert_eq!(started, 2, "no agent ran again");
}

fn strategy_env(strategy: &str) -> TestEnv {
    let env = setup(
        "commit.sh",
        "[policy]\nchecks = []",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
    );
    env.edit_config(
        "target = \"main\"",
        &format!("target = \"main\"\nmerge_strategy = \"{strategy}\""),
    );
    env
}

#[test]
fn squash_lands_one_commit_per_task_and_keeps_the_old_tip() {
    let env = strategy_env("squash");
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let parents = git(&env, &["log", "--format=%p", "main"]);
    assert!(
        parents.lines().all(|p| !p.contains(' ')),
        "linear: {parents}"
    );
    let subjects = git(&env, &["log", "--format=%s", "main"]);
    assert_eq!(subjects.lines().count(), 3, "{subjects}");
    for task in ["A", "B"] {
        let backup = git(&env, &["rev-parse", &format!("refs/orch/backup/{task}/1")]);
        let files = git(&env, &["show", "--name-only", "--format=", backup.trim()]);
        assert_eq!(
            files,
            format!("work-{task}.txt\n"),
            "the backup keeps {task}'s own commit"
        );
    }
}

#[test]
fn rebase_keeps_history_linear_and_replays_each_commit() {
    let env = strategy_env("rebase");
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let parents = git(&env, &["log", "--format=%p", "main"]);
    assert!(
        parents.lines().all(|p| !p.contains(' ')),
        "linear: {parents}"
    );
    let subjects = git(&env, &["log", "--format=%s", "main"]);
    let mut got: Vec<&str> = subjects.lines().collect();
    got.sort();
    assert_eq!(got, ["Add work-A.txt", "Add work-B.txt", "initial commit"]);
    assert!(
        git(&env, &["for-each-ref", "refs/orch/backup/"])
            .lines()
            .count()
            >= 1
    );
}

#[test]
fn ff_only_hands_a_real_conflict_back_and_keeps_the_target_linear() {
    let env = setup(
        "conflict.sh",
        "",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
    );
    env.edit_config(
        "target = \"main\"",
        "target = \"main\"\nmerge_strategy = \"ff-only\"",
    );
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("A"), "merged");
    assert_eq!(env.status_of("B"), "merged");
    let events = env.events();
    let conflicted: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "merge.conflicted")
        .collect();
    assert_eq!(conflicted.len(), 1, "the second branch conflicts once");
    assert_eq!(conflicted[0]["files"], serde_json::json!(["shared.txt"]));
    let second = conflicted[0]["id"].as_str().unwrap();
    let prompt = fs::read_to_string(
        env.repo()
            .join(format!(".orchestrator/runs/{second}/2/prompt.md")),
    )
    .unwrap();
    assert!(prompt.contains("- `shared.txt`"), "{prompt}");
    let head = git(&env, &["rev-parse", "main"]);
    let landed: Vec<String> = ["A", "B"]
        .iter()
        .map(|t| {
            env.state()["items"][*t]["merge_commit"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        landed.contains(&head.trim().to_owned()),
        "main is one of the branch tips, fast-forwarded"
    );
    for commit in &landed {
        assert!(is_ancestor(&env, commit, "main"));
    }
    assert_eq!(
        fs::read_to_string(env.repo().join("shared.txt")).unwrap(),
        "line from A\nline from B\n"
    );
}

#[test]
fn a_conflict_is_handed_back_to_the_agent_which_resolves_it() {
    let env = setup(
        "conflict.sh",
        "",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
    );
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("A"), "merged");
    assert_eq!(env.status_of("B"), "merged");
    let events = env.events();
    let conflict = events
        .iter()
        .find(|e| e["event"] == "merge.conflicted")
        .unwrap();
    assert_eq!(conflict["files"], serde_json::json!(["shared.txt"]));
    let second = conflict["id"].as_str().unwrap().to_owned();
    let purpose = events
        .iter()
        .filter(|e| e["event"] == "task.started" && e["id"] == second.as_str())
        .filter_map(|e| e["purpose"].as_str())
        .collect::<Vec<_>>();
    assert_eq!(purpose, ["conflict"]);
    let shared = fs::read_to_string(env.repo().join("shared.txt")).unwrap();
    assert_eq!(shared, "line from A\nline from B\n");
    let prompt = fs::read_to_string(
        env.repo()
            .join(format!(".orchestrator/runs/{second}/2/prompt.md")),
    )
    .unwrap();
    assert!(prompt.contains("- `shared.txt`"), "{prompt}");
}

#[test]
fn with_on_conflict_stop_a_person_fixes_it_and_retries() {
    let env = setup(
        "conflict.sh",
        "",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
    );
    env.edit_config("[hooks]", "[merge]\non_conflict = \"stop\"\n\n[hooks]");
    let out = env.orch().arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    let state = env.state();
    let (loser, winner) = if state["items"]["A"]["status"] == "conflicted" {
        ("A", "B")
    } else {
        ("B", "A")
    };
    assert_eq!(env.status_of(winner), "merged");
    let reason = state["items"][loser]["reason"].as_str().unwrap().to_owned();
    assert_eq!(
        reason,
        format!(
            "merging with `main` conflicts in `shared.txt`; waiting for a person: fix the branch and `orch retry {loser}`, or `orch resolve {loser}`"
        )
    );
    let main_before = git(&env, &["rev-parse", "main"]);
    let worktree = state["items"][loser]["worktree"]
        .as_str()
        .unwrap()
        .to_owned();
    let wt = Path::new(&worktree);
    assert!(
        !env.git_ok(wt, ["merge", "-q", "main"]),
        "the merge conflicts"
    );
    fs::write(wt.join("shared.txt"), "fixed by hand\n").unwrap();
    env.git(wt, ["add", "shared.txt"]);
    env.git(wt, ["commit", "-q", "--no-edit"]);
    insta::assert_snapshot!(env.run(["retry", loser]).replace(loser, "X"), @"Retried `X`.");
    assert_eq!(env.status_of(loser), "awaiting_merge");
    let out = env.orch().arg("merge").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of(loser), "merged");
    assert!(is_ancestor(&env, main_before.trim(), "main"));
    assert_eq!(
        fs::read_to_string(env.repo().join("shared.txt")).unwrap(),
        "fixed by hand\n"
    );
}

#[test]
fn a_red_check_is_handed_back_and_the_target_never_moves_on_red() {
    let check = "[policy]\nchecks = [{ name = \"fixed\", run = \"test -e fixed.txt || { echo 'fixed.txt is missing'; exit 1; }\" }]";
    let env = setup("fix-check.sh", check, "[[task]]\nid = \"T1\"\n");
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
    let events = env.events();
    let red = events
        .iter()
        .find(|e| e["event"] == "check.failed")
        .unwrap();
    assert_eq!(red["check"], "fixed");
    assert_eq!(red["log"], ".orchestrator/checks/T1/fixed.log");
    let prompt = fs::read_to_string(env.repo().join(".orchestrator/runs/T1/2/prompt.md")).unwrap();
    assert!(
        prompt.contains("fixed.txt is missing"),
        "the check's output reaches the agent: {prompt}"
    );
    assert_eq!(
        env.state()["items"]["T1"]["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let env = setup("commit.sh", check, "[[task]]\nid = \"T1\"\n");
    env.edit_config("[hooks]", "[merge]\non_check_failure = \"stop\"\n\n[hooks]");
    let before = git(&env, &["rev-parse", "main"]);
    let out = env.orch().arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(env.status_of("T1"), "failed");
    assert_eq!(
        env.state()["items"]["T1"]["reason"],
        "check `fixed` failed: exit code 1; log: .orchestrator/checks/T1/fixed.log"
    );
    assert_eq!(
        git(&env, &["rev-parse", "main"]),
        before,
        "target never moves on red"
    );
    assert!(
        env.git(&env.repo(), ["branch", "--list", "orch/T1"])
            .contains("orch/T1"),
        "the branch is kept"
    );
}

#[test]
fn a_forbidden_path_is_refused_by_name() {
    let env = setup(
        "forbidden.sh",
        "[policy]\nforbidden_paths = [\".github/**\"]",
        "[[task]]\nid = \"T1\"\n",
    );
    env.edit_config("[hooks]", "[merge]\non_check_failure = \"stop\"\n\n[hooks]");
    let before = git(&env, &["rev-parse", "main"]);
    let _filters = stable_output().bind_to_scope();
    insta::assert_snapshot!(env.run(["run"]), @"
    ------- stderr -------
    [MM:SS] Starting: 1 task on target `main`.
    [MM:SS] started   T1  attempt 1: T1
    [MM:SS] done      T1  attempt 1, [DURATION], 1 commit
    [MM:SS] red       T1: policy `forbidden_paths`: `.github/workflows/sneaky.yml` matches `.github/**`
    [MM:SS] failed    T1: policy `forbidden_paths`: `.github/workflows/sneaky.yml` matches `.github/**`
    Finished in [DURATION]: 1 failed (1 attempt).
    error: the run ended with failed, blocked or conflicted tasks
    hint: see `orch status` for the reasons; `orch retry ID` runs a task again
    [exit status: 1]
    ");
    assert_eq!(
        env.state()["items"]["T1"]["reason"],
        "policy `forbidden_paths`: `.github/workflows/sneaky.yml` matches `.github/**`"
    );
    assert_eq!(git(&env, &["rev-parse", "main"]), before);
}

fn gated(env: &TestEnv) -> std::path::PathBuf {
    let gate = env.root().join("gate");
    fs::create_dir_all(&gate).unwrap();
    let check = format!(
        "[policy]\nchecks = [{{ name = \"gate\", run = \"GATE={} {}\" }}]",
        gate.display(),
        env.agent("gate-check.sh")
    );
    let config = fs::read_to_string(env.repo().join(".orchestrator.toml")).unwrap();
    env.write(".orchestrator.toml", &format!("{config}\n{check}\n"));
    gate
}

#[test]
fn a_commit_to_target_during_checks_rebuilds_the_merge_and_overwrites_nothing() {
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    let gate = gated(&env);
    let mut run = env.spawn(&["run"]);
    assert!(
        wait_until(DEADLINE, || gate.join("checking").exists()),
        "the check never started"
    );
    env.write("USER.md", "written by a person\n");
    git(&env, &["add", "USER.md"]);
    git(&env, &["commit", "-q", "-m", "a person's commit"]);
    let person = git(&env, &["rev-parse", "main"]);
    fs::write(gate.join("go"), "").unwrap();
    assert!(wait_exit(&mut run).status.success());
    assert_eq!(env.status_of("T1"), "merged");
    assert!(
        is_ancestor(&env, person.trim(), "main"),
        "the person's commit is kept"
    );
    let merged = env.state()["items"]["T1"]["merge_commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let parents = git(&env, &["log", "-1", "--format=%p", &merged]);
    assert!(
        parents.starts_with(&person.trim()[..7]),
        "rebuilt on the new head: {parents}"
    );
    let starts = env
        .events()
        .iter()
        .filter(|e| e["event"] == "merge.started")
        .count();
    assert_eq!(starts, 1, "rebuilt within the same merge");
    // Issue 14: the rebuild is recorded.
    let rebuilt: Vec<serde_json::Value> = env
        .events()
        .into_iter()
        .filter(|e| e["event"] == "merge.rebuilt")
        .collect();
    assert_eq!(rebuilt.len(), 1, "{rebuilt:?}");
    assert_eq!(rebuilt[0]["onto"].as_str(), Some(person.trim()));
    assert_eq!(rebuilt[0]["tasks"], serde_json::json!(["T1"]));
}

#[test]
fn a_file_in_the_way_in_the_checked_out_target_pauses_merging_until_it_is_moved() {
    // Issue 12: only what the merge would overwrite blocks it; the edit to
    // README.md, which the merge does not touch, is carried.
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    env.write("README.md", "# edited but not committed\n");
    env.write("work-T1.txt", "a person's file\n");
    let mut run = env.spawn(&["run"]);
    assert!(wait_until(DEADLINE, || env
        .events()
        .iter()
        .any(|e| e["event"] == "merge.waiting")));
    let wanted = "waiting to merge: `main` is checked out in `$TEMP/repo`, where the merge would overwrite `work-T1.txt` (untracked); merging resumes once they are committed, reverted or moved away";
    let mut text = String::new();
    let said = wait_until(DEADLINE, || {
        text = env.render(&env.orch().args(["status"]).output().unwrap());
        text.contains(wanted)
    });
    assert!(said, "{text}");
    assert_eq!(
        fs::read_to_string(env.repo().join("work-T1.txt")).unwrap(),
        "a person's file\n"
    );
    fs::remove_file(env.repo().join("work-T1.txt")).unwrap();
    assert!(wait_exit(&mut run).status.success());
    assert_eq!(env.status_of("T1"), "merged");
    assert!(env.repo().join("work-T1.txt").exists());
    assert_eq!(
        fs::read_to_string(env.repo().join("README.md")).unwrap(),
        "# edited but not committed\n"
    );
}

/// The target's checkout gets each merged file as git would write it,
/// with the configuration git takes from the environment too: under
/// `core.autocrlf` given through `GIT_CONFIG_COUNT`, or in a file included
/// that way (which libgit2 reads neither of), the merged file has CRLF line
/// endings, as `git checkout` writes it; without it, the blob's own.
#[test]
fn the_checked_out_target_gets_the_line_endings_git_would_write() {
    for how in ["directly", "through an include", "not at all"] {
        let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
        let included = env.write("crlf.config", "[core]\n\tautocrlf = true\n");
        let mut run = env.orch();
        let (key, value) = match how {
            "directly" => ("core.autocrlf", "true"),
            _ => ("include.path", included.to_str().unwrap()),
        };
        if how != "not at all" {
            run.env("GIT_CONFIG_COUNT", "3")
                .env("GIT_CONFIG_KEY_2", key)
                .env("GIT_CONFIG_VALUE_2", value);
        }
        let out = run.arg("run").output().unwrap();
        assert!(out.status.success(), "{}", env.render(&out));
        assert_eq!(env.status_of("T1"), "merged");
        let written = fs::read(env.repo().join("work-T1.txt")).unwrap();
        let text: &[u8] = match how {
            "not at all" => b"done by T1, attempt 1\n",
            _ => b"done by T1, attempt 1\r\n",
        };
        assert_eq!(written, text, "autocrlf set {how}");
    }
}

#[test]
fn sigkill_during_a_merge_merges_exactly_once() {
    let env = setup(
        "commit.sh",
        "",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n",
    );
    let gate = gated(&env);
    let mut run = env.spawn(&["run"]);
    assert!(wait_until(DEADLINE, || gate.join("checking").exists()));
    kill_process(Pid::from_raw(run.id() as i32).unwrap(), Signal::KILL).unwrap();
    run.wait().unwrap();
    fs::write(gate.join("go"), "").unwrap();
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    for task in ["T1", "T2"] {
        assert_eq!(env.status_of(task), "merged", "{task}");
        let merges = git(
            &env,
            &[
                "log",
                "--format=%s",
                "--grep",
                &format!("^Merge task {task}:"),
                "main",
            ],
        );
        assert_eq!(merges.lines().count(), 1, "{task} merged exactly once");
        let work = git(
            &env,
            &[
                "log",
                "--format=%s",
                "main",
                "--",
                &format!("work-{task}.txt"),
            ],
        );
        assert_eq!(work.lines().count(), 1, "{task}'s work is there once");
    }
    env.assert_no_agent_left();
}

#[test]
fn post_merge_hooks_run_and_worktrees_are_removed_when_configured() {
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    env.edit_config("[hooks]\ninstall = false",
        "[hooks]\ninstall = false\npost_merge = [\"echo \\\"$ORCH_TASK_ID $ORCH_MERGE_COMMIT\\\" >> merged.log\"]\n\n[merge]\nremove_worktree = true",
    );
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let merged = env.state()["items"]["T1"]["merge_commit"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        fs::read_to_string(env.repo().join("merged.log")).unwrap(),
        format!("T1 {merged}\n")
    );
    assert!(env.state()["items"]["T1"]["worktree"].is_null());
    assert!(!env.root().join("repo.worktrees/T1").exists());
    let list = git(&env, &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 1, "{list}");
}

/// Runs the plan's agents without merging, one at a time so the queue order
/// is the plan order.
fn run_without_merging(env: &TestEnv) {
    let out = env
        .orch()
        .args(["run", "--no-merge", "--max-parallel", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
}

#[test]
fn orch_merge_shows_a_conflict_and_exits_1() {
    let env = setup(
        "conflict.sh",
        "",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
    );
    env.edit_config("[hooks]", "[merge]\non_conflict = \"stop\"\n\n[hooks]");
    run_without_merging(&env);
    let _filters = stable_output().bind_to_scope();
    insta::assert_snapshot!(env.run(["merge"]), @"
    ------- stderr -------
    [MM:SS] Starting: 2 tasks on target `main`.
    [MM:SS] waiting   B: it conflicts in `shared.txt` with work ahead of it in the queue, not landed yet (`A`): it waits for that work to land or leave the queue, then merges again
    [MM:SS] merged    A  [OID]
    [MM:SS] conflict  B: merging with `main` conflicts in `shared.txt`
    Finished in [DURATION]: 1 merged, 1 conflicted (0 attempts).
    error: the run ended with failed, blocked or conflicted tasks
    hint: see `orch status` for the reasons; `orch retry ID` runs a task again
    [exit status: 1]
    ");
}

#[test]
fn orch_merge_shows_a_red_check_and_exits_1() {
    let check = "[policy]\nchecks = [{ name = \"fixed\", run = \"test -e fixed.txt || { echo 'fixed.txt is missing'; exit 1; }\" }]";
    let env = setup("commit.sh", check, "[[task]]\nid = \"T1\"\n");
    env.edit_config("[hooks]", "[merge]\non_check_failure = \"stop\"\n\n[hooks]");
    run_without_merging(&env);
    let _filters = stable_output().bind_to_scope();
    insta::assert_snapshot!(env.run(["merge"]), @"
    ------- stderr -------
    [MM:SS] Starting: 1 task on target `main`.
    [MM:SS] red       T1: check `fixed` failed; log: .orchestrator/checks/T1/fixed.log
    [MM:SS] failed    T1: check `fixed` failed: exit code 1; log: .orchestrator/checks/T1/fixed.log
    Finished in [DURATION]: 1 failed (0 attempts).
    error: the run ended with failed, blocked or conflicted tasks
    hint: see `orch status` for the reasons; `orch retry ID` runs a task again
    [exit status: 1]
    ");
}
