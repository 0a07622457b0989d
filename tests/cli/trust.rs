//! Issue 12, the trust boundary (everything but the sandbox): a target that
//! only orch moves, git children that a terminal's Ctrl-C does not reach, a
//! user checkout updated under git's own rule, hooks folders orch must not
//! write, a state that always agrees with git, input refused before the run
//! rather than during it, and the smaller findings. One test per finding.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

use crate::common::{DEADLINE, TestEnv, wait_until};

/// Writes an executable agent script into the temp dir and returns its path.
/// The prompt on stdin is read first, as every agent does.
fn script(env: &TestEnv, name: &str, body: &str) -> String {
    let path = env.root().join(name);
    fs::write(
        &path,
        format!("#!/bin/sh\nset -eu\ncat > /dev/null\n{body}\n"),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// A repository whose agent is `body` (see [`script`]), with `plan` committed.
fn setup(body: &str, extra: &str, plan: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    let agent = script(&env, "agent.sh", body);
    env.configure(&agent, extra);
    env.write("plan.toml", plan);
    commit_all(&env, "plan");
    env
}

fn commit_all(env: &TestEnv, message: &str) {
    env.git(&env.repo(), ["add", "-A"]);
    env.git(&env.repo(), ["commit", "-q", "-m", message]);
}

fn git(env: &TestEnv, args: &[&str]) -> String {
    env.git(&env.repo(), args).trim().to_owned()
}

/// Commits one file named after the task.
const COMMIT: &str = r#"echo "$ORCH_TASK_ID" > "work-$ORCH_TASK_ID.txt"
git add "work-$ORCH_TASK_ID.txt"
git commit -q -m "Add work-$ORCH_TASK_ID.txt""#;

/// Starts `orch run` as the leader of its own process group, as a shell
/// starts a foreground job, so that a test can signal the whole group the
/// way a terminal's Ctrl-C does.
fn spawn_job(env: &TestEnv, args: &[&str]) -> Child {
    env.orch()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Sends `sig` to the process group of `child`: the terminal's Ctrl-C.
fn signal_job(child: &Child, sig: Signal) {
    kill_process_group(Pid::from_raw(child.id() as i32).unwrap(), sig).unwrap();
}

fn wait_exit(child: &mut Child) -> (Option<i32>, String) {
    let out = crate::common::wait_exit(child);
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

/// Runs orch to its end (a deadline, not forever: a run that would hang is
/// killed with its agents and fails the test) and returns its output.
pub(crate) fn run_orch(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let mut child = env
        .orch()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let ended = wait_until(DEADLINE, || child.try_wait().unwrap().is_some());
    if !ended {
        signal_job(&child, Signal::KILL);
        for pgid in env.agent_groups() {
            let _ = kill_process_group(Pid::from_raw(pgid).unwrap(), Signal::KILL);
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        ended,
        "`orch {}` did not end: {}",
        args.join(" "),
        env.render(&out)
    );
    out
}

fn event_with(env: &TestEnv, name: &str, needle: &str) -> Option<serde_json::Value> {
    env.events()
        .into_iter()
        .find(|e| e["event"] == name && e.to_string().contains(needle))
}

/// Sets up a `slow` filter: its smudge sleeps per file, and `marker` says
/// that a checkout is under way, with one file written and more to come.
/// `*.dat` files use it.
fn slow_filter(env: &TestEnv, marker: &Path) {
    let smudge = format!("sleep 0.3; cat; touch '{}'", marker.display());
    env.git(&env.repo(), ["config", "filter.slow.smudge", &smudge]);
    env.git(&env.repo(), ["config", "filter.slow.clean", "cat"]);
    env.write(".gitattributes", "*.dat filter=slow\n");
}

// --- The target moved under orch -------------------------------------------

#[test]
fn issue_12_the_target_moved_under_orch_stops_merging_and_keeps_the_lost_commit() {
    // T2 waits until T1 is merged, then moves `main` onto its own commit,
    // which does not contain T1's merge (both started from the same head).
    // It plays someone moving the target by hand: a confined agent may not
    // write the target's ref, so it runs unconfined.
    let body = format!(
        r#"{COMMIT}
if [ "$ORCH_TASK_ID" = T2 ]; then
  i=0
  until git log --format=%s "$ORCH_TARGET" | grep -q '^Merge task T1'; do
    i=$((i+1)); [ $i -lt 1200 ] || exit 3; sleep 0.05
  done
  git update-ref "refs/heads/$ORCH_TARGET" HEAD
fi"#
    );
    let env = setup(
        &body,
        "[sandbox]\nenabled = false\n",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n",
    );
    let out = run_orch(&env, &["run"]);
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let kept = git(&env, &["rev-parse", "refs/orch/backup/@target/main/1"]);
    assert_eq!(
        git(&env, &["log", "-1", "--format=%s", &kept]),
        "Merge task T1: T1",
        "T1's merge is kept"
    );
    assert!(text.contains(&kept), "the lost commit is named: {text}");
    assert!(
        text.contains("refs/orch/backup/@target/main/1"),
        "the ref keeping it is named: {text}"
    );
    assert_eq!(env.status_of("T1"), "merged");
    assert_ne!(env.status_of("T2"), "merged", "{text}");
    // The next run refuses too, until a person puts the commit back.
    let out = run_orch(&env, &["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", env.render(&out));
    git(&env, &["reset", "-q", "--hard"]);
    git(&env, &["merge", "-q", "--no-edit", &kept]);
    let out = run_orch(&env, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    // T2's commit reached the target by the agent's own hand: not a merge.
    assert_eq!(env.status_of("T2"), "failed");
    assert!(env.git_ok(&env.repo(), ["merge-base", "--is-ancestor", &kept, "main"]));
}

#[test]
fn issue_12_a_branch_tip_force_moved_onto_the_target_is_not_a_merge() {
    // The agent puts its tip on the target itself, which only an
    // unconfined agent can do (the sandbox keeps the target's ref read-only).
    let body = format!("{COMMIT}\ngit update-ref \"refs/heads/$ORCH_TARGET\" HEAD");
    let env = setup(
        &body,
        "[sandbox]\nenabled = false\n",
        "[[task]]\nid = \"T1\"\n",
    );
    let out = run_orch(&env, &["run"]);
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(env.status_of("T1"), "failed");
    let reason = env.state()["items"]["T1"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("already on `main`") && reason.contains("outside orch"),
        "{reason}"
    );
    assert!(
        !env.events().iter().any(|e| e["event"] == "task.merged"),
        "never counted as merged"
    );
}

// --- Git children and Ctrl-C -----------------------------------------------

#[test]
fn issue_12_ctrl_c_during_the_checkout_fast_forward_leaves_it_whole() {
    let body = r#"for i in 1 2 3 4 5 6; do echo "data $i" > "f$i.dat"; done
git add -A
git commit -q -m "Add data""#;
    let env = setup(body, "", "[[task]]\nid = \"T1\"\n");
    let marker = env.root().join("smudging");
    slow_filter(&env, &marker);
    commit_all(&env, "filter");
    let mut run = spawn_job(&env, &["run"]);
    assert!(
        wait_until(DEADLINE, || marker.exists()),
        "the checkout never started"
    );
    signal_job(&run, Signal::INT);
    let (code, stderr) = wait_exit(&mut run);
    assert_eq!(code, Some(130), "{stderr}");
    // The checkout is whole: what `main` holds, nothing half-written.
    assert_eq!(git(&env, &["status", "--porcelain"]), "", "{stderr}");
    let merged = env.status_of("T1");
    if merged == "merged" {
        for i in 1..=6 {
            assert_eq!(
                fs::read_to_string(env.repo().join(format!("f{i}.dat"))).unwrap(),
                format!("data {i}\n")
            );
        }
    } else {
        assert!(!env.repo().join("f1.dat").exists());
    }
    let out = run_orch(&env, &["run"]);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
    assert_eq!(git(&env, &["status", "--porcelain"]), "");
}

#[test]
fn issue_12_ctrl_c_during_git_worktree_add_is_an_interruption() {
    let env = setup(COMMIT, "", "[[task]]\nid = \"T1\"\n");
    let marker = env.root().join("smudging");
    for i in 1..=6 {
        env.write(&format!("f{i}.dat"), &format!("data {i}\n"));
    }
    slow_filter(&env, &marker);
    commit_all(&env, "data");
    let mut run = spawn_job(&env, &["run"]);
    assert!(
        wait_until(DEADLINE, || marker.exists()),
        "the worktree checkout never started"
    );
    signal_job(&run, Signal::INT);
    let (code, stderr) = wait_exit(&mut run);
    assert_eq!(code, Some(130), "{stderr}");
    let status = env.status_of("T1");
    assert!(
        status != "failed",
        "cut short by Ctrl-C is not a failure: {status}: {}",
        env.state()["items"]["T1"]
    );
    let out = run_orch(&env, &["run"]);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
}

/// Returns the pids of live processes whose command line holds `needle`
/// and whose folder is `dir`.
fn processes(needle: &str, dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cwd = fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        if cmdline.contains(needle) && cwd == dir {
            out.push(pid);
        }
    }
    out
}

/// Runs a task whose merge moves the user's checkout (through a slow
/// filter) and kills the coordinator and the git child updating the
/// checkout half-way, as a power cut does: the checkout is left
/// half-written and `checkout.json` behind. The task changes `README.md`
/// and writes `f1.dat` to `f6.dat`.
pub(crate) fn cut_a_fast_forward_short() -> TestEnv {
    let body = r#"for i in 1 2 3 4 5 6; do echo "data $i" > "f$i.dat"; done
echo "changed by T1" > README.md
git add -A
git commit -q -m "Add data""#;
    let env = setup(body, "", "[[task]]\nid = \"T1\"\n");
    let marker = env.root().join("smudging");
    // The marker is made as the first smudge starts, and git waits a second
    // for its output: the kill lands while git waits, never while it writes
    // a file (a file left half-written is a change nobody can tell from a
    // person's, and the next run rightly refuses to overwrite it). Later
    // smudges, the next run's included, do not wait.
    let smudge = format!(
        "if [ ! -e '{m}' ]; then touch '{m}'; sleep 1; fi; cat",
        m = marker.display()
    );
    env.git(&env.repo(), ["config", "filter.slow.smudge", &smudge]);
    env.git(&env.repo(), ["config", "filter.slow.clean", "cat"]);
    env.write(".gitattributes", "*.dat filter=slow\n");
    commit_all(&env, "filter");
    let before = git(&env, &["rev-parse", "main"]);
    let mut run = spawn_job(&env, &["run"]);
    assert!(wait_until(DEADLINE, || marker.exists()));
    let mut killed = 0;
    for pid in processes("git", &env.repo()) {
        if kill_process(Pid::from_raw(pid).unwrap(), Signal::KILL).is_ok() {
            killed += 1;
        }
    }
    kill_process(Pid::from_raw(run.id() as i32).unwrap(), Signal::KILL).unwrap();
    run.wait().unwrap();
    assert!(killed > 0, "no git process was updating the checkout");
    assert_eq!(git(&env, &["rev-parse", "main"]), before, "cut short");
    env
}

#[test]
fn issue_12_a_fast_forward_cut_short_is_completed_on_the_next_start() {
    let env = cut_a_fast_forward_short();
    let out = run_orch(&env, &["run"]);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
    assert_eq!(git(&env, &["status", "--porcelain"]), "");
    assert_eq!(
        fs::read_to_string(env.repo().join("README.md")).unwrap(),
        "changed by T1\n"
    );
    for i in 1..=6 {
        assert_eq!(
            fs::read_to_string(env.repo().join(format!("f{i}.dat"))).unwrap(),
            format!("data {i}\n")
        );
    }
}

// --- The user's checkout ---------------------------------------------------

#[test]
fn issue_12_the_checkout_fast_forward_follows_gits_rule_and_names_every_blocking_path() {
    let deep = "docs/a/rather/deep/folder/with-a-long-file-name-that-must-show.md";
    let body = format!(
        r#"if [ "$ORCH_TASK_ID" = T1 ]; then
  echo one > one.txt; git add one.txt; git commit -q -m one
else
  mkdir -p docs/a/rather/deep/folder
  echo "agent" > {deep}; echo "agent's" > config.local
  git add {deep}; git add -f config.local; git commit -q -m two
fi"#
    );
    let env = setup(
        &body,
        "",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\ndepends_on = [\"T1\"]\n",
    );
    env.write(".gitignore", "config.local\n");
    env.write(deep, "tracked\n");
    commit_all(&env, "ignore and a deep file");
    // Local changes the merges do not touch are carried, as git does.
    env.write("README.md", "# a person's edit\n");
    env.write("notes.txt", "untracked, in nobody's way\n");
    // A modified path T2 changes, and an ignored file T2 would overwrite.
    env.write(deep, "a person's edit\n");
    env.write("config.local", "mine\n");
    let mut run = spawn_job(&env, &["run"]);
    let mut waiting = None;
    assert!(
        wait_until(DEADLINE, || {
            waiting = event_with(&env, "merge.waiting", "config.local");
            waiting.is_some()
        }),
        "T2 never waited: {:?}",
        env.events()
    );
    let reason = waiting.unwrap()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains(deep), "{reason}");
    assert!(reason.contains("config.local"), "{reason}");
    assert!(!reason.contains("README.md"), "{reason}");
    assert_eq!(env.status_of("T1"), "merged", "T1 went through");
    assert_eq!(
        fs::read_to_string(env.repo().join("config.local")).unwrap(),
        "mine\n",
        "the ignored file is kept"
    );
    assert_eq!(
        fs::read_to_string(env.repo().join("README.md")).unwrap(),
        "# a person's edit\n"
    );
    assert!(env.repo().join("one.txt").exists(), "T1 is in the checkout");
    fs::rename(
        env.repo().join("config.local"),
        env.root().join("config.local"),
    )
    .unwrap();
    git(&env, &["checkout", "--", deep]);
    let (code, stderr) = wait_exit(&mut run);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(env.status_of("T2"), "merged");
    assert_eq!(
        fs::read_to_string(env.repo().join("README.md")).unwrap(),
        "# a person's edit\n",
        "still carried"
    );
}

// --- core.hooksPath inside the repository ----------------------------------

#[test]
fn issue_12_a_hooks_path_inside_the_repository_is_never_written() {
    let env = setup(COMMIT, "", "[[task]]\nid = \"T1\"\n");
    let hook = "#!/bin/sh\necho the team hook\n";
    env.write(".githooks/pre-commit", hook);
    fs::set_permissions(
        env.repo().join(".githooks/pre-commit"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    commit_all(&env, "team hooks");
    git(&env, &["config", "core.hooksPath", ".githooks"]);
    let out = env.orch().args(["hooks", "install"]).output().unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("core.hooksPath"), "{text}");
    assert!(text.contains(".githooks"), "{text}");
    let doctor = env.render(&env.orch().arg("doctor").output().unwrap());
    assert!(
        doctor.contains("core.hooksPath") && doctor.contains(".githooks"),
        "{doctor}"
    );
    env.edit_config("install = false", "install = true");
    commit_all(&env, "install hooks");
    let out = run_orch(&env, &["run"]);
    let text = env.render(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("core.hooksPath"), "said why: {text}");
    assert_eq!(
        fs::read_to_string(env.repo().join(".githooks/pre-commit")).unwrap(),
        hook
    );
    let listed = fs::read_dir(env.repo().join(".githooks")).unwrap().count();
    assert_eq!(listed, 1, "nothing added to the tracked hooks folder");
    assert_eq!(env.status_of("T1"), "merged");
}

// --- State that disagrees with git -----------------------------------------

/// Rewrites `state.json` as a crash at the wrong instant would have left it.
fn edit_state(env: &TestEnv, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = env.repo().join(".orchestrator/state.json");
    let mut state = env.state();
    edit(&mut state);
    fs::write(path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
}

/// Reopens the last attempt of `id` and sets its status.
fn reopen(state: &mut serde_json::Value, id: &str, status: &str) {
    let item = &mut state["items"][id];
    item["status"] = status.into();
    item["merge_commit"] = serde_json::Value::Null;
    if status == "running" {
        let attempt = item["attempts"].as_array_mut().unwrap().last_mut().unwrap();
        attempt.as_object_mut().unwrap().remove("outcome");
        attempt.as_object_mut().unwrap().remove("finished");
    }
}

#[test]
fn issue_12_a_landed_merge_is_recognised_whatever_the_state_says() {
    for strategy in ["merge", "rebase"] {
        let env = TestEnv::new();
        env.init_repo();
        let agent = script(&env, "agent.sh", COMMIT);
        env.configure(&agent, "");
        env.edit_config(
            "target = \"main\"",
            &format!("target = \"main\"\nmerge_strategy = \"{strategy}\""),
        );
        env.write(
            "plan.toml",
            "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n[[task]]\nid = \"T3\"\n",
        );
        commit_all(&env, "plan");
        let out = run_orch(&env, &["run"]);
        assert!(out.status.success(), "{}", env.render(&out));
        let attempts = |env: &TestEnv| {
            env.events()
                .iter()
                .filter(|e| e["event"] == "task.started")
                .count()
        };
        let before = attempts(&env);
        edit_state(&env, |state| {
            reopen(state, "T1", "running");
            reopen(state, "T2", "awaiting_merge");
            reopen(state, "T3", "failed");
        });
        fs::remove_file(env.repo().join(".orchestrator/merge.json")).unwrap();
        let out = run_orch(&env, &["run"]);
        assert!(out.status.success(), "{strategy}: {}", env.render(&out));
        for task in ["T1", "T2", "T3"] {
            assert_eq!(env.status_of(task), "merged", "{strategy}: {task}");
            let commit = env.state()["items"][task]["merge_commit"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                env.git_ok(
                    &env.repo(),
                    ["merge-base", "--is-ancestor", &commit, "main"]
                ),
                "{strategy}: {task}: {commit}"
            );
        }
        assert_eq!(attempts(&env), before, "{strategy}: no agent ran again");
    }
}

#[test]
fn issue_12_the_state_reaches_disk_before_post_merge_hooks_run() {
    let env = setup(COMMIT, "", "[[task]]\nid = \"T1\"\n");
    let seen = env.root().join("seen.json");
    env.edit_config(
        "install = false",
        &format!(
            "install = false\npost_merge = [\"cp .orchestrator/state.json '{}'\"]",
            seen.display()
        ),
    );
    commit_all(&env, "hook");
    let out = run_orch(&env, &["run"]);
    assert!(out.status.success(), "{}", env.render(&out));
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&seen).unwrap()).unwrap();
    assert_eq!(state["items"]["T1"]["status"], "merged");
}

#[test]
fn issue_12_cancel_during_a_merges_checks_never_disagrees_with_the_target() {
    let env = setup(
        COMMIT,
        "",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\ndepends_on = [\"T1\"]\n",
    );
    let gate = env.root().join("gate");
    fs::create_dir_all(&gate).unwrap();
    let config = fs::read_to_string(env.repo().join(".orchestrator.toml")).unwrap();
    env.write(
        ".orchestrator.toml",
        &format!(
            "{config}\n[policy]\nchecks = [{{ name = \"gate\", run = \"GATE={} {}\" }}]\n",
            gate.display(),
            env.agent("gate-check.sh")
        ),
    );
    commit_all(&env, "gate");
    let mut run = spawn_job(&env, &["run"]);
    assert!(wait_until(DEADLINE, || gate.join("checking").exists()));
    let out = env.orch().args(["cancel", "T1"]).output().unwrap();
    let said = env.render(&out);
    fs::write(gate.join("go"), "").unwrap();
    let (_, stderr) = wait_exit(&mut run);
    let merged = git(&env, &["log", "--format=%s", "main"]).contains("Merge task T1");
    match env.status_of("T1").as_str() {
        "cancelled" => {
            assert!(out.status.success(), "{said}");
            assert!(said.starts_with("Cancelled `T1`"), "{said}");
            assert!(!merged, "cancelled, so not on the target: {stderr}");
            assert_eq!(env.status_of("T2"), "blocked");
        }
        "merged" => {
            assert!(!out.status.success(), "refused: {said}");
            assert!(merged);
        }
        other => panic!("T1 is {other}: {said}\n{stderr}"),
    }
}

#[test]
fn issue_12_deleting_the_lock_file_does_not_let_a_second_coordinator_start() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("hang.sh", "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    commit_all(&env, "plan");
    let mut first = spawn_job(&env, &["run"]);
    assert!(wait_until(DEADLINE, || !env.agent_groups().is_empty()));
    fs::remove_file(env.repo().join(".orchestrator/lock")).unwrap();
    let out = run_orch(&env, &["run"]);
    let text = env.render(&out);
    signal_job(&first, Signal::INT);
    let (code, _) = wait_exit(&mut first);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("another `orch run`"), "{text}");
    assert_eq!(code, Some(130));
    env.assert_no_agent_left();
}

// --- Bad input that passes `plan check` ------------------------------------

#[test]
fn issue_12_a_title_with_a_nul_byte_or_too_long_is_refused_at_plan_check() {
    let env = TestEnv::new();
    env.init_repo();
    let long = "x".repeat(140 * 1024);
    env.write(
        "plan.toml",
        &format!("[[task]]\nid = \"T1\"\ntitle = \"a\\u0000b\"\n\n[[task]]\nid = \"T2\"\ntitle = \"{long}\"\n"),
    );
    let out = env.orch().args(["plan", "check"]).output().unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("plan.toml:3:1"),
        "{}",
        &text[..text.len().min(600)]
    );
    assert!(
        text.contains("plan.toml:7:1"),
        "{}",
        &text[..text.len().min(600)]
    );
    assert!(text.contains("NUL"), "{}", &text[..text.len().min(600)]);
    assert!(text.len() < 4000, "the long title is not echoed whole");
}

#[test]
fn issue_12_a_worktree_root_inside_the_repository_is_refused() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    env.edit_config(
        "[git]\ntarget = \"main\"\n",
        "[git]\ntarget = \"main\"\nworktree_root = \"worktrees\"\n",
    );
    let out = run_orch(&env, &["run"]);
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains(".orchestrator.toml:3:1"), "{text}");
    assert!(text.contains("git.worktree_root"), "{text}");
    assert!(!env.repo().join("worktrees").exists());
    let inside = env.repo().join("sub").display().to_string();
    env.edit_config("\"worktrees\"", &format!("{inside:?}"));
    let out = run_orch(&env, &["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", env.render(&out));
}

#[test]
fn issue_12_an_agents_summary_is_capped() {
    let body = format!(
        r#"{COMMIT}
head -c 3000000 /dev/zero | tr '\0' 'y' > "$ORCH_RESULT_FILE.big"
printf '{{"status": "done", "summary": "%s"}}' "$(cat "$ORCH_RESULT_FILE.big")" > "$ORCH_RESULT_FILE"
rm "$ORCH_RESULT_FILE.big""#
    );
    let env = setup(
        &body,
        "",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\ndepends_on = [\"T1\"]\n",
    );
    let out = run_orch(&env, &["run"]);
    assert!(out.status.success(), "{}", env.render(&out));
    let size = fs::metadata(env.repo().join(".orchestrator/state.json"))
        .unwrap()
        .len();
    assert!(size < 300 * 1024, "state.json is {size} bytes");
    let summary = env.state()["items"]["T1"]["summary"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(summary.len() <= 65 * 1024, "{}", summary.len());
    assert!(
        summary.ends_with("[cut: 2999936 more bytes]") || summary.contains("[cut"),
        "{}",
        &summary[summary.len() - 80..]
    );
    let prompt = fs::metadata(env.repo().join(".orchestrator/runs/T2/1/prompt.md"))
        .unwrap()
        .len();
    assert!(prompt < 300 * 1024, "the next prompt is {prompt} bytes");
}

// --- Smaller ---------------------------------------------------------------

#[test]
fn issue_12_an_agent_that_switches_branch_is_told_what_happened() {
    // A branch in the task branch's own ref folder: the one place a
    // confined agent may make one.
    let body = r#"git switch -q -c orch/elsewhere
echo left > left.txt"#;
    let env = setup(body, "", "[[task]]\nid = \"T1\"\n");
    let before = git(&env, &["rev-parse", "main"]);
    let out = run_orch(&env, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    let reason = env.state()["items"]["T1"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("elsewhere"), "{reason}");
    assert!(!reason.contains("changed nothing"), "{reason}");
    assert_eq!(
        git(&env, &["rev-parse", "orch/elsewhere"]),
        before,
        "nothing committed onto the wrong branch"
    );
}

#[test]
fn issue_12_a_branch_deleted_under_a_running_task_gets_a_clear_reason() {
    // The agent plays a person deleting the branch from elsewhere: deleting
    // a ref rewrites `packed-refs`, which a confined agent may not, so it
    // runs unconfined.
    let body = r#"git update-ref -d "refs/heads/$ORCH_BRANCH"
echo left > left.txt"#;
    let env = setup(
        body,
        "[sandbox]\nenabled = false\n",
        "[[task]]\nid = \"T1\"\n",
    );
    let out = run_orch(&env, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    let reason = env.state()["items"]["T1"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("`orch/T1`") && reason.contains("deleted"),
        "{reason}"
    );
    assert!(!reason.contains("git"), "no raw git error: {reason}");
    assert!(
        !env.git_ok(&env.repo(), ["rev-parse", "--verify", "-q", "orch/T1"]),
        "no root commit made the branch again"
    );
}

#[test]
fn issue_12_orch_logs_strips_terminal_escape_sequences_unless_raw() {
    let body =
        format!("printf '\\033]0;pwned\\007\\033[2J\\033[31mred\\033[0m text\\007\\n'\n{COMMIT}");
    let env = setup(&body, "", "[[task]]\nid = \"T1\"\n");
    let out = run_orch(&env, &["run"]);
    assert!(out.status.success(), "{}", env.render(&out));
    let out = env.orch().args(["logs", "T1"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        !out.stdout.contains(&0x1b),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!out.stdout.contains(&0x07));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("red text"), "{text:?}");
    let raw = env.orch().args(["logs", "T1", "--raw"]).output().unwrap();
    assert!(
        raw.stdout.starts_with(b"\x1b]0;pwned\x07"),
        "{:?}",
        String::from_utf8_lossy(&raw.stdout)
    );
}

#[test]
fn issue_12_orch_run_in_a_linked_worktree_says_it_uses_the_main_checkout() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    commit_all(&env, "plan");
    let linked: PathBuf = env.root().join("linked");
    env.git(
        &env.repo(),
        ["worktree", "add", "-q", linked.to_str().unwrap()],
    );
    let out = env
        .orch_in(&linked)
        .args(["run", "--dry-run"])
        .output()
        .unwrap();
    let text = env.render(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("$TEMP/linked"), "{text}");
    assert!(text.contains("main checkout `$TEMP/repo`"), "{text}");
}
