//! Issue 14: the merge queue at the speed of the checks. Batches with
//! bisection, speculation, the conflict radar, review gates, `orch revert`,
//! and the fixes found on the way. History is checked with the `git` CLI,
//! check runs with the `check.passed` and `check.failed` events.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{DEADLINE, TestEnv, wait_exit, wait_until};

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
    let mut run = env.spawn(&["run"]);
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
    assert!(wait_exit(&mut run).status.success());
    assert_eq!(env.status_of("T1"), "merged");
}

/// Runs the plan's agents without merging, one at a time so that the
/// queue's order is the plan's: every task then waits to merge together.
fn run_without_merging(env: &TestEnv) {
    let out = env
        .orch()
        .args(["run", "--no-merge", "--max-parallel", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
}

fn four(script: &str, extra: &str) -> TestEnv {
    setup(
        script,
        extra,
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\n[[task]]\nid = \"D\"\n",
    )
}

/// The check runs, in order: whether each passed, and the tasks it checked.
fn check_runs(env: &TestEnv) -> Vec<(bool, Vec<String>)> {
    env.events()
        .iter()
        .filter(|e| e["event"] == "check.passed" || e["event"] == "check.failed")
        .map(|e| {
            let tasks = e["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            (e["event"] == "check.passed", tasks)
        })
        .collect()
}

#[test]
fn issue_14_a_green_batch_lands_every_task_once_with_one_check_run() {
    let env = four(
        "commit.sh",
        "[policy]\nchecks = [{ name = \"test\", run = \"test -f README.md\" }]",
    );
    run_without_merging(&env);
    let before = git(&env, &["rev-parse", "main"]);
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(
        count(&env, "check.passed"),
        1,
        "one check run for the batch"
    );
    assert_eq!(
        check_runs(&env),
        [(true, vec!["A".into(), "B".into(), "C".into(), "D".into()])]
    );
    let subjects = git(&env, &["log", "--first-parent", "--format=%s", "main"]);
    for task in ["A", "B", "C", "D"] {
        assert_eq!(env.status_of(task), "merged", "{task}");
        let merges = subjects
            .lines()
            .filter(|s| s.starts_with(&format!("Merge task {task}:")))
            .count();
        assert_eq!(merges, 1, "{task} has its own merge commit, once");
    }
    let moves = git(&env, &["reflog", "--format=%gs", "main"]);
    let moved: Vec<&str> = moves.lines().filter(|l| l.starts_with("orch:")).collect();
    assert_eq!(moved, ["orch: merge A B C D"], "the target moved once");
    let head = git(&env, &["reflog", "--format=%gs", "HEAD"]);
    assert!(
        head.lines().any(|l| l == "orch: merge A B C D"),
        "the checkout's HEAD reflog names the move too: {head}"
    );
    assert!(
        git(&env, &["rev-list", &format!("{}..main", before.trim())])
            .lines()
            .count()
            >= 4
    );
}

#[test]
fn issue_14_a_red_batch_is_bisected_to_its_culprit_and_the_others_land() {
    let check = "[policy]\nchecks = [{ name = \"test\", run = \"test ! -e work-C.txt || test -e fixed.txt || { echo 'C broke the build'; exit 1; }\" }]\n\n[merge]\nmax_parallel_checks = 1";
    let env = four("fix-check.sh", check);
    run_without_merging(&env);
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let ids = |list: &[&str]| list.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        check_runs(&env),
        [
            (false, ids(&["A", "B", "C", "D"])),
            (true, ids(&["A", "B"])),
            (false, ids(&["C"])),
            (true, ids(&["D"])),
            (true, ids(&["C"])),
        ],
        "the batch, its first half, the culprit alone, the rest, the culprit fixed"
    );
    for task in ["A", "B", "C", "D"] {
        assert_eq!(env.status_of(task), "merged", "{task}");
    }
    let attempts = |t: &str| {
        env.state()["items"][t]["attempts"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(attempts("C"), 2, "the culprit went back to its agent");
    assert_eq!(attempts("A") + attempts("B") + attempts("D"), 3);
    let prompt = fs::read_to_string(env.repo().join(".orchestrator/runs/C/2/prompt.md")).unwrap();
    assert!(prompt.contains("C broke the build"), "{prompt}");
}

#[test]
fn issue_14_the_radar_reports_two_tasks_changing_the_same_file_before_either_finishes() {
    let env = setup(
        "radar.sh",
        "[scheduling]\navoid_overlap = true\n\n[merge]\non_conflict = \"stop\"",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\ncontext = [\"shared.txt\"]\n",
    );
    let gate = env.root().join("gate");
    fs::create_dir_all(&gate).unwrap();
    env.edit_config(
        "[hooks]",
        &format!(
            "[agent.env]\nGATE_DIR = {:?}\n\n[hooks]",
            gate.display().to_string()
        ),
    );
    let mut run = env.spawn(&["run"]);
    assert!(
        wait_until(DEADLINE, || count(&env, "radar.overlap") > 0),
        "the radar said nothing: {:#?}",
        env.events()
    );
    let overlap = env
        .events()
        .into_iter()
        .find(|e| e["event"] == "radar.overlap")
        .unwrap();
    assert_eq!(overlap["id"], "A");
    assert_eq!(overlap["other"], "B");
    assert_eq!(overlap["paths"], serde_json::json!(["shared.txt"]));
    assert_eq!(count(&env, "task.completed"), 0, "before either finished");
    let status = env.render(&env.orch().arg("status").output().unwrap());
    assert!(
        status.contains("Conflict radar:\n  A and B both change `shared.txt`"),
        "{status}"
    );
    let next = env.render(&env.orch().args(["plan", "next"]).output().unwrap());
    assert!(
        next.contains("C  p2  C  (held: its context overlaps what `A` changes)"),
        "{next}"
    );
    fs::write(gate.join("go"), "").unwrap();
    let status = wait_exit(&mut run).status;
    assert_eq!(status.code(), Some(1), "one of them conflicts");
}

#[test]
fn issue_14_a_review_command_approves_or_rejects_with_text_the_agent_gets() {
    let review = "[[policy.review]]\nname = \"bot\"\nrun = \"cat > /dev/null; test -e fixed.txt || { echo 'fixed.txt is missing'; exit 1; }\"";
    let env = setup("fix-review.sh", review, "[[task]]\nid = \"T1\"\n");
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
    let reviews: Vec<(String, String)> = env
        .events()
        .iter()
        .filter(|e| e["event"].as_str().unwrap().starts_with("review."))
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap_or_default().trim().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reviews,
        [
            ("review.started".to_owned(), String::new()),
            (
                "review.rejected".to_owned(),
                "fixed.txt is missing".to_owned()
            ),
            ("review.started".to_owned(), String::new()),
            ("review.approved".to_owned(), String::new()),
        ]
    );
    let prompt = fs::read_to_string(env.repo().join(".orchestrator/runs/T1/2/prompt.md")).unwrap();
    assert!(
        prompt.contains("Review `bot` said:") && prompt.contains("fixed.txt is missing"),
        "{prompt}"
    );
    let review_prompt =
        fs::read_to_string(env.repo().join(".orchestrator/reviews/T1/bot/prompt.md")).unwrap();
    assert!(
        review_prompt.contains("+fixed by T1"),
        "the reviewer sees the merged diff: {review_prompt}"
    );
    assert!(env.repo().join("fixed.txt").exists());
}

#[test]
fn issue_14_a_manual_review_waits_for_orch_approve_or_reject_through_the_inbox() {
    let env = setup(
        "fix-review.sh",
        "[[policy.review]]\nname = \"lead\"\nmanual = true",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n",
    );
    let mut run = env.spawn(&["run"]);
    let state = env.repo().join(".orchestrator/state.json");
    assert!(wait_until(DEADLINE, || state.exists()));
    assert!(wait_until(DEADLINE, || env.status_of("T1")
        == "awaiting_review"
        && env.status_of("T2") == "awaiting_review"));
    let approved = env.render(&env.orch().args(["approve", "T1"]).output().unwrap());
    assert!(
        approved.starts_with("Approved `T1` (by the live run"),
        "{approved}"
    );
    let rejected = env.render(
        &env.orch()
            .args(["reject", "T2", "--reason", "please add fixed.txt"])
            .output()
            .unwrap(),
    );
    assert!(
        rejected.starts_with("Rejected `T2` (by the live run"),
        "{rejected}"
    );
    assert!(wait_until(DEADLINE, || env.status_of("T1") == "merged"));
    assert!(wait_until(DEADLINE, || env.status_of("T2")
        == "awaiting_review"
        && env.state()["items"]["T2"]["attempts"]
            .as_array()
            .unwrap()
            .len()
            == 2));
    let prompt = fs::read_to_string(env.repo().join(".orchestrator/runs/T2/2/prompt.md")).unwrap();
    assert!(prompt.contains("please add fixed.txt"), "{prompt}");
    env.orch().args(["approve", "T2"]).output().unwrap();
    assert!(wait_exit(&mut run).status.success());
    assert_eq!(env.status_of("T2"), "merged");
    let refused = env.render(&env.orch().args(["approve", "T2"]).output().unwrap());
    assert_eq!(
        refused,
        "------- stderr -------\nerror: cannot approve `T2`: it is `merged`\n[exit status: 2]\n"
    );
}

#[test]
fn issue_14_orch_revert_lands_a_revert_commit_through_the_checks() {
    let env = setup(
        "commit.sh",
        "[policy]\nchecks = [{ name = \"test\", run = \"test -f README.md\" }]",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\ndepends_on = [\"A\"]\n",
    );
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let before = git(&env, &["rev-parse", "main"]);
    let passed = count(&env, "check.passed");
    let out = env.orch().args(["revert", "A"]).output().unwrap();
    let text = env.render(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Note: the revert does not undo B, merged and depending on `A`."),
        "{text}"
    );
    assert_eq!(env.status_of("A"), "reverted");
    assert_eq!(env.status_of("B"), "merged");
    assert!(
        !env.repo().join("work-A.txt").exists(),
        "A's work is undone"
    );
    assert!(env.repo().join("work-B.txt").exists());
    let head = git(&env, &["log", "-1", "--format=%s%n%b%n%P", "main"]);
    assert!(head.starts_with("Revert task A: A"), "{head}");
    assert!(head.contains("Orch-Revert: A"), "{head}");
    assert!(head.contains(before.trim()), "a new commit on top: {head}");
    assert_eq!(
        count(&env, "check.passed"),
        passed + 1,
        "through the checks"
    );
    let revert = env.state()["items"]["A"]["revert"]["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(revert, git(&env, &["rev-parse", "main"]).trim());
    let again = env.render(&env.orch().args(["revert", "A"]).output().unwrap());
    assert!(
        again.contains("cannot revert `A`: it is `reverted`"),
        "{again}"
    );
}

#[test]
fn issue_14_orch_revert_refuses_a_revert_that_conflicts() {
    let env = setup(
        "conflict.sh",
        "[merge]\non_conflict = \"stop\"",
        "[[task]]\nid = \"A\"\n",
    );
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    env.write("shared.txt", "line from A\nand a person's line\n");
    git(&env, &["commit", "-qam", "a person builds on A"]);
    let head = git(&env, &["rev-parse", "main"]);
    let out = env.render(&env.orch().args(["revert", "A"]).output().unwrap());
    assert_eq!(
        out,
        "------- stderr -------\nerror: cannot revert `A`: undoing its work conflicts with `main` in `shared.txt`; later changes build on it\n[exit status: 2]\n"
    );
    assert_eq!(git(&env, &["rev-parse", "main"]), head, "nothing moved");
    assert_eq!(env.status_of("A"), "merged");
    assert!(env.state()["items"]["A"]["revert"].is_null());
}

#[test]
fn issue_14_orch_status_shows_the_queue_batch_by_batch_and_the_radar() {
    let env = setup(
        "commit.sh",
        "",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\n",
    );
    env.write(
        ".orchestrator/state.json",
        r#"{"schema": 1, "target": "main",
  "candidates": [
    {"commit": "1111111111111111111111111111111111111111", "onto": "0000000000000000000000000000000000000000",
     "tasks": ["A", "B"], "check": {"running": {"slot": 0}}},
    {"commit": "2222222222222222222222222222222222222222", "onto": "1111111111111111111111111111111111111111",
     "tasks": ["C"], "check": {"running": {"slot": 1}}}
  ],
  "items": {
    "A": {"status": "merging", "radar": {"tip": "3333333333333333333333333333333333333333", "changes": ["src/lib.rs"], "overlaps": {"C": ["src/lib.rs"]}}},
    "B": {"status": "merging"},
    "C": {"status": "merging", "radar": {"tip": "4444444444444444444444444444444444444444", "changes": ["src/lib.rs"], "overlaps": {"A": ["src/lib.rs"]}}}
  }}"#,
    );
    insta::assert_snapshot!(env.run(["status"]), @r"
    Nothing has run yet; target `main`.
    A  merging
    B  merging
    C  merging
    Tasks: 3 merging.
    Merge queue:
      A B  checking in check worktree 1 (2 tasks)
      C  checking in check worktree 2, on top of the above (1 task)
    Conflict radar:
      A and C both change `src/lib.rs`
    ");
    let json: serde_json::Value = serde_json::from_slice(
        &env.orch()
            .args(["status", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["queue"][1]["tasks"], serde_json::json!(["C"]));
    assert_eq!(
        json["items"][0]["overlaps"],
        serde_json::json!({"C": ["src/lib.rs"]})
    );
}

#[test]
fn issue_14_a_task_that_changes_nothing_frees_its_worktree_and_branch_as_before() {
    let env = setup(
        "noop.sh",
        "",
        "[[task]]\nid = \"T1\"\nexpect_changes = false\n",
    );
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
    let branches = git(&env, &["branch", "--format=%(refname:short)"]);
    assert_eq!(branches.trim(), "main", "its branch is deleted");
    let list = git(&env, &["worktree", "list", "--porcelain"]);
    assert!(
        list.contains("detached"),
        "its worktree is detached for reuse: {list}"
    );
}

#[test]
fn issue_14_two_tasks_of_one_batch_that_conflict_land_the_earlier_and_hand_back_the_later() {
    let env = four(
        "conflict-some.sh",
        "[agent.env]\nSHARED = \"A C\"\n\n[policy]\nchecks = [{ name = \"test\", run = \"test -f README.md\" }]",
    );
    run_without_merging(&env);
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let ids = |list: &[&str]| list.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        check_runs(&env),
        [(true, ids(&["A", "B", "D"])), (true, ids(&["C"]))],
        "the batch without C, checked once; then C resolved"
    );
    // C conflicts with A, ahead of it and not landed yet: it waits out of
    // the chain, then goes back to its agent with the target (A in it)
    // merged in, the conflict markers in its files.
    let said: Vec<String> = env
        .events()
        .iter()
        .filter(|e| e["id"] == "C" || e["event"] == "task.merged")
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["id"].as_str().unwrap()
            )
        })
        .collect();
    let at = |what: &str| {
        said.iter()
            .position(|e| e == what)
            .unwrap_or_else(|| panic!("no {what}: {said:#?}"))
    };
    assert!(at("merge.waiting C") < at("task.merged A"), "{said:#?}");
    assert!(at("task.merged A") < at("merge.conflicted C"), "{said:#?}");
    let waiting = env
        .events()
        .into_iter()
        .find(|e| e["event"] == "merge.waiting" && e["id"] == "C")
        .unwrap();
    assert_eq!(
        waiting["reason"],
        "it conflicts in `shared.txt` with work ahead of it in the queue, not landed yet (`A`, `B`): it waits for that work to land or leave the queue, then merges again"
    );
    let conflicted: Vec<serde_json::Value> = env
        .events()
        .into_iter()
        .filter(|e| e["event"] == "merge.conflicted")
        .collect();
    assert_eq!(conflicted.len(), 1, "{conflicted:#?}");
    assert_eq!(conflicted[0]["id"], "C");
    assert_eq!(conflicted[0]["files"], serde_json::json!(["shared.txt"]));
    let prompt = fs::read_to_string(env.repo().join(".orchestrator/runs/C/2/prompt.md")).unwrap();
    assert!(prompt.contains("Resolve the merge conflicts"), "{prompt}");
    for task in ["A", "B", "C", "D"] {
        assert_eq!(env.status_of(task), "merged", "{task}");
    }
    let attempts = |t: &str| {
        env.state()["items"][t]["attempts"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        attempts("C"),
        2,
        "one hand-back, with the conflicts to resolve"
    );
    assert_eq!(attempts("A") + attempts("B") + attempts("D"), 3);
    let subjects = git(&env, &["log", "--first-parent", "--format=%s", "main"]);
    let merges: Vec<&str> = subjects
        .lines()
        .filter(|s| s.starts_with("Merge task"))
        .collect();
    assert_eq!(
        merges,
        [
            "Merge task C: C",
            "Merge task D: D",
            "Merge task B: B",
            "Merge task A: A"
        ]
    );
    let shared = git(&env, &["show", "main:shared.txt"]);
    assert_eq!(shared, "line from A\nline from C\n", "both sides kept");
}

#[test]
fn issue_14_a_task_conflicting_with_one_being_checked_is_held_at_once_and_handed_back_when_it_lands()
 {
    let env = setup(
        "conflict.sh",
        "",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
    );
    let gate = env.root().join("gate");
    fs::create_dir_all(&gate).unwrap();
    env.edit_config(
        "[hooks]",
        &format!(
            "[policy]\nchecks = [{{ name = \"slow\", run = \"GATE={} {}\" }}]\n\n[hooks]",
            gate.display(),
            env.agent("gate-check.sh")
        ),
    );
    let mut run = env
        .orch()
        .args(["run", "--max-parallel", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let held = |env: &TestEnv| {
        env.events()
            .into_iter()
            .find(|e| e["event"] == "merge.waiting" && e["id"] == "B")
    };
    assert!(
        wait_until(DEADLINE, || gate.join("checking").exists()
            && held(&env).is_some()),
        "{:#?}",
        env.events()
    );
    // A's check is still running (it waits for `go`): B's conflict with it
    // is known already, and B waits out of the chain, no attempt spent.
    let reason = held(&env).unwrap()["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with(
            "it conflicts in `shared.txt` with work ahead of it in the queue, not landed yet (`A`)"
        ),
        "{reason}"
    );
    assert_eq!(count(&env, "check.passed"), 0);
    assert_eq!(count(&env, "merge.conflicted"), 0);
    assert!(wait_until(DEADLINE, || env.status_of("B") == "merging"
        && env.state()["items"]["B"]["reason"]
            .as_str()
            .is_some_and(|r| r.ends_with(&reason))));
    assert_eq!(
        env.state()["items"]["B"]["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let status = env.render(&env.orch().arg("status").output().unwrap());
    assert!(status.contains("not landed yet (`A`)"), "{status}");
    fs::write(gate.join("go"), "").unwrap();
    assert!(wait_exit(&mut run).status.success());
    for task in ["A", "B"] {
        assert_eq!(env.status_of(task), "merged", "{task}");
    }
    let attempts = env.state()["items"]["B"]["attempts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        attempts, 2,
        "handed back once, with the conflicts to resolve"
    );
    assert_eq!(
        git(&env, &["show", "main:shared.txt"]),
        "line from A\nline from B\n"
    );
}

#[test]
fn issue_14_a_branch_force_moved_after_it_was_queued_goes_to_the_back_and_the_others_land() {
    // One check at a time: A's, built on top of B and C's, would otherwise
    // run beside theirs and may end first.
    let env = setup(
        "commit.sh",
        "[policy]\nchecks = [{ name = \"test\", run = \"test -f README.md\" }]\n\n[merge]\nmax_parallel_checks = 1",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\n",
    );
    run_without_merging(&env);
    let old = git(&env, &["rev-parse", "orch/A"]);
    // A person redoes A's work by hand, dropping its commit.
    let hand = env.root().join("by-hand");
    let hand_str = hand.display().to_string();
    git(&env, &["worktree", "add", "-q", &hand_str, "orch/A"]);
    env.git(&hand, ["reset", "-q", "--hard", "HEAD~1"]);
    fs::write(hand.join("work-A.txt"), "redone by hand\n").unwrap();
    env.git(&hand, ["add", "work-A.txt"]);
    env.git(&hand, ["commit", "-q", "-m", "Redo A by hand"]);
    git(&env, &["worktree", "remove", &hand_str]);
    let new = git(&env, &["rev-parse", "orch/A"]);
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let requeued = env
        .events()
        .into_iter()
        .find(|e| e["event"] == "merge.requeued")
        .expect("A was queued again");
    assert_eq!(requeued["id"], "A");
    assert_eq!(requeued["tip"], new.trim());
    let backup = requeued["backup"].as_str().unwrap().to_owned();
    assert_eq!(
        git(&env, &["rev-parse", &backup]),
        old,
        "the dropped tip is kept"
    );
    let ids = |list: &[&str]| list.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        check_runs(&env),
        [(true, ids(&["B", "C"])), (true, ids(&["A"]))],
        "B and C did not wait for A"
    );
    let subjects = git(&env, &["log", "--first-parent", "--format=%s", "main"]);
    let merges: Vec<&str> = subjects
        .lines()
        .filter(|s| s.starts_with("Merge task"))
        .collect();
    assert_eq!(
        merges,
        ["Merge task A: A", "Merge task C: C", "Merge task B: B"]
    );
    assert_eq!(git(&env, &["show", "main:work-A.txt"]), "redone by hand\n");
}
