//! `orch hooks install|uninstall|status`, and the hooks at work under real
//! `git commit`: the trailer, the forbidden-path refusal, the `task.commit`
//! event, and the hook that was there before still running.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::TestEnv;

fn setup() -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(
        "commit.sh",
        "[policy]\nforbidden_paths = [\".github/**\"]\n",
    );
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    fs::create_dir_all(env.repo().join(".orchestrator")).unwrap();
    env
}

/// Writes an executable hook that appends its name to `ran.log` at the temp root.
fn old_hook(env: &TestEnv, path: &Path, text: &str) -> String {
    let body = format!(
        "#!/bin/sh\n{text}\necho \"$(basename \"$0\") ran\" >> '{}'\n",
        env.root().join("ran.log").display()
    );
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, &body).unwrap();
    let mut perms = fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(path, perms).unwrap();
    body
}

fn ran(env: &TestEnv) -> String {
    fs::read_to_string(env.root().join("ran.log")).unwrap_or_default()
}

/// Makes a worktree on the task's branch, as `orch run` does.
fn task_worktree(env: &TestEnv, id: &str) -> PathBuf {
    let wt = env.root().join(format!("repo.worktrees/{id}"));
    env.git(
        &env.repo(),
        [
            "worktree",
            "add",
            "-q",
            "-b",
            &format!("orch/{id}"),
            wt.to_str().unwrap(),
        ],
    );
    wt
}

fn commit(env: &TestEnv, dir: &Path, file: &str, message: &str) -> std::process::Output {
    let path = dir.join(file);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, "change\n").unwrap();
    env.git(dir, ["add", file]);
    let mut cmd = std::process::Command::new("git");
    for (k, v) in env.vars() {
        cmd.env(k, v);
    }
    cmd.env_remove("NO_COLOR");
    cmd.current_dir(dir)
        .args(["commit", "-q", "-m", message])
        .output()
        .unwrap()
}

fn message(env: &TestEnv, dir: &Path) -> String {
    env.git(dir, ["log", "-1", "--format=%B"])
}

#[test]
fn install_chains_the_old_hook_and_the_hooks_act_only_in_task_worktrees() {
    let env = setup();
    let hooks = env.repo().join(".git/hooks");
    let original = old_hook(&env, &hooks.join("commit-msg"), "# the team's own hook");
    insta::assert_snapshot!(env.run(["hooks", "install"]), @"
    commit-msg   installed; chains the hook that was there
    pre-commit   installed
    post-commit  installed
    Hooks are in `.git/hooks`; `orch hooks uninstall` removes them.
    ");
    insta::assert_snapshot!(env.run(["hooks", "status"]), @"
    Hooks folder: `.git/hooks`
    commit-msg   orch's shim; chains `commit-msg.orch-chained`
    pre-commit   orch's shim
    post-commit  orch's shim
    ");

    let wt = task_worktree(&env, "T1");
    let out = commit(&env, &wt, "src/model.rs", "Add the model");
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(message(&env, &wt), "Add the model\n\nOrch-Task: T1\n\n");
    assert_eq!(
        ran(&env),
        "commit-msg.orch-chained ran\n",
        "the old hook ran first"
    );
    let head = env.git(&wt, ["rev-parse", "HEAD"]);
    let events = env.events();
    let commits: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "task.commit")
        .collect();
    assert_eq!(commits.len(), 1, "{events:?}");
    assert_eq!(commits[0]["id"], "T1");
    assert_eq!(commits[0]["commit"], head.trim());
    assert_eq!(commits[0]["subject"], "Add the model");
    assert_eq!(commits[0]["via"], "hook");

    let out = commit(&env, &wt, ".github/workflows/ci.yml", "Touch CI");
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(env.filter(&String::from_utf8_lossy(&out.stderr)), @"
    orch: `.github/workflows/ci.yml` matches `.github/**` in `policy.forbidden_paths`; task `T1` may not change it
    orch: commit refused; the merge queue would refuse it too. Unstage that file (`git restore --staged <file>`) and commit again.
    ");
    assert_eq!(
        env.git(&wt, ["rev-parse", "HEAD"]),
        head,
        "nothing was committed"
    );

    let out = commit(&env, &env.repo(), "notes.txt", "Notes");
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(
        message(&env, &env.repo()),
        "Notes\n\n",
        "no trailer outside task worktrees"
    );
    assert_eq!(
        ran(&env).lines().count(),
        2,
        "the old hook still ran: {}",
        ran(&env)
    );
    assert_eq!(env.events().len(), 1, "no event outside task worktrees");

    insta::assert_snapshot!(env.run(["hooks", "uninstall"]), @"
    commit-msg   removed; the hook it chained is back
    pre-commit   removed
    post-commit  removed
    ");
    assert_eq!(
        fs::read_to_string(hooks.join("commit-msg")).unwrap(),
        original
    );
    for name in ["pre-commit", "post-commit", "commit-msg.orch-chained"] {
        assert!(!hooks.join(name).exists(), "{name} is gone");
    }
}

#[test]
fn core_hooks_path_is_honoured_and_a_pre_commit_framework_hook_is_chained() {
    let env = setup();
    let shared = env.root().join("shared-hooks");
    env.git(
        &env.repo(),
        ["config", "core.hooksPath", shared.to_str().unwrap()],
    );
    let original = old_hook(
        &env,
        &shared.join("pre-commit"),
        "# File generated by pre-commit: https://pre-commit.com\n# ID: 138fd403232d2ddd5efb44317e38bf03",
    );
    let out = env.run(["hooks", "install"]);
    assert!(
        out.contains("pre-commit   installed; chains the hook that was there"),
        "{out}"
    );
    assert!(out.contains("shared-hooks"), "{out}");
    assert!(!env.repo().join(".git/hooks/pre-commit").exists());
    let status = env.run(["hooks", "status"]);
    assert!(
        status.contains(
            &format!("(core.hooksPath = `{}`)", shared.display())
                .replace(&env.root().display().to_string(), "$TEMP")
        ),
        "{status}"
    );

    let wt = task_worktree(&env, "T1");
    let out = commit(&env, &wt, "a.txt", "Work");
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(
        message(&env, &wt),
        "Work\n\nOrch-Task: T1\n\n",
        "the worktree shares the hooks"
    );
    assert_eq!(ran(&env), "pre-commit.orch-chained ran\n");

    env.run(["hooks", "uninstall"]);
    assert_eq!(
        fs::read_to_string(shared.join("pre-commit")).unwrap(),
        original
    );
}

#[test]
fn a_failing_chained_hook_still_stops_the_commit() {
    let env = setup();
    old_hook(
        &env,
        &env.repo().join(".git/hooks/pre-commit"),
        "echo 'lint: no' >&2; exit 1",
    );
    env.run(["hooks", "install"]);
    let wt = task_worktree(&env, "T1");
    let out = commit(&env, &wt, "a.txt", "Work");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lint: no"));
}

#[test]
fn orch_run_installs_the_hooks_and_agent_commits_are_tied_to_their_task() {
    let env = setup();
    env.edit_config("[hooks]\ninstall = false\n", "[hooks]\ninstall = true\n");
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    let text = env.render(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Installed orch's git hooks in `.git/hooks` (`hooks.install` in the config); `orch hooks uninstall` removes them."),
        "{text}"
    );
    let body = env.git(&env.repo(), ["log", "-1", "--format=%B", "orch/T1"]);
    assert_eq!(body, "Add work-T1.txt\n\nOrch-Task: T1\n\n");
    let tip = env.git(&env.repo(), ["rev-parse", "orch/T1"]);
    let commits: Vec<_> = env
        .events()
        .into_iter()
        .filter(|e| e["event"] == "task.commit")
        .collect();
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert_eq!(commits[0]["commit"], tip.trim());
    assert_eq!(commits[0]["attempt"], 1);
    let seqs: Vec<u64> = env
        .events()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let mut sorted = seqs.clone();
    sorted.dedup();
    assert_eq!(sorted, seqs, "hook and run share one sequence");
    let status = env.run(["status", "T1"]);
    assert!(
        status.contains(&format!(
            "  commits   {} Add work-T1.txt\n",
            &tip.trim()[..9]
        )),
        "{status}"
    );
    let again = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(
        !env.render(&again).contains("Installed orch's git hooks"),
        "installed once"
    );
}
