use std::fs;

use crate::common::TestEnv;

#[test]
fn init_writes_a_valid_config_and_plan_and_excludes_the_state_dir() {
    let env = TestEnv::new();
    let repo = env.init_repo();
    insta::assert_snapshot!(env.run(["init"]), @"
    Wrote `.orchestrator.toml` (target `main`) and `plan.toml`.
    Added `.orchestrator/` to `.git/info/exclude`.
    orch reads both files from this checkout, committed or not. Commit them to keep
    their history and share them (task worktrees then have a copy); uncommitted,
    they stay in this checkout only.
    Next: edit the plan (tasks run Claude Code unless `[agent] preset` says otherwise), then run `orch plan check`.
    ");
    let config = fs::read_to_string(repo.join(".orchestrator.toml")).unwrap();
    assert!(config.contains("target = \"main\""));
    let exclude = fs::read_to_string(repo.join(".git/info/exclude")).unwrap();
    assert_eq!(
        exclude.lines().filter(|l| *l == ".orchestrator/").count(),
        1
    );
    insta::assert_snapshot!(env.run(["plan", "check"]), @"plan.toml: 2 tasks, 0 subtasks, 1 dependency, 2 dependency levels");
    fs::create_dir_all(repo.join(".orchestrator")).unwrap();
    fs::write(repo.join(".orchestrator/x"), "x").unwrap();
    let status = env.git(&repo, ["status", "--porcelain"]);
    assert!(!status.contains(".orchestrator/"), "{status}");
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing() {
    let env = TestEnv::new();
    let repo = env.init_repo();
    env.write("plan.toml", "# mine\n");
    insta::assert_snapshot!(env.run(["init"]), @"
    ------- stderr -------
    error: refusing to overwrite `plan.toml`
    hint: remove or rename them first to start over
    [exit status: 2]
    ");
    assert!(!repo.join(".orchestrator.toml").exists());
    assert_eq!(
        fs::read_to_string(repo.join("plan.toml")).unwrap(),
        "# mine\n"
    );
    let exclude = fs::read_to_string(repo.join(".git/info/exclude")).unwrap_or_default();
    assert!(!exclude.contains(".orchestrator/"));
}

#[test]
fn init_takes_the_current_branch_as_target() {
    let env = TestEnv::new();
    let repo = env.init_repo();
    env.git(&repo, ["checkout", "-q", "-b", "develop"]);
    env.run(["init"]);
    let config = fs::read_to_string(repo.join(".orchestrator.toml")).unwrap();
    assert!(config.contains("target = \"develop\""));
}

#[test]
fn init_outside_a_repository_is_refused() {
    let env = TestEnv::new();
    let out = env.orch_in(&env.root()).arg("init").output().unwrap();
    insta::assert_snapshot!(env.render(&out), @"
    ------- stderr -------
    error: `$TEMP` is not inside a git repository
    hint: run `git init` first, or pass `-C` with the repository's folder
    [exit status: 2]
    ");
}

#[test]
fn init_on_a_detached_head_asks_for_a_target() {
    let env = TestEnv::new();
    let repo = env.init_repo();
    env.git(&repo, ["checkout", "-q", "--detach"]);
    insta::assert_snapshot!(env.run(["init"]), @"
    ------- stderr -------
    error: HEAD is detached, so there is no current branch to merge into
    hint: check out the branch orch should merge into, or pass `--target BRANCH`
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["init", "--target", "main"]), @"
    Wrote `.orchestrator.toml` (target `main`) and `plan.toml`.
    Added `.orchestrator/` to `.git/info/exclude`.
    orch reads both files from this checkout, committed or not. Commit them to keep
    their history and share them (task worktrees then have a copy); uncommitted,
    they stay in this checkout only.
    Next: edit the plan (tasks run Claude Code unless `[agent] preset` says otherwise), then run `orch plan check`.
    ");
}

/// The example at the top of the project is what `orch init` writes for `main`.
#[test]
fn the_example_config_is_the_init_template() {
    let env = TestEnv::new();
    let repo = env.init_repo();
    env.run(["init"]);
    let written = fs::read_to_string(repo.join(".orchestrator.toml")).unwrap();
    let example = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.orchestrator.toml.example"
    ))
    .unwrap();
    assert_eq!(
        written, example,
        "regenerate .orchestrator.toml.example from templates/orchestrator.toml"
    );
}

#[test]
fn issue_18_init_prints_the_starter_config_without_writing_anything() {
    let env = TestEnv::new();
    let repo = env.init_repo();
    env.write("plan.toml", "# mine\n");
    let out = env
        .orch()
        .args(["init", "--print-config"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let example = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.orchestrator.toml.example"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), example);
    assert!(out.stderr.is_empty());
    assert!(!repo.join(".orchestrator.toml").exists(), "nothing written");
    assert!(
        !repo.join(".git/info/exclude").exists()
            || !fs::read_to_string(repo.join(".git/info/exclude"))
                .unwrap()
                .contains(".orchestrator/")
    );
}
