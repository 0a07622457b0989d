//! `orch clean`: removes what is safe, names what it keeps.

use crate::common::TestEnv;

fn setup() -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    env.edit_config("max_parallel = 2", "max_parallel = 3");
    env.write(
        "plan.toml",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\n",
    );
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    env
}

fn worktrees(env: &TestEnv) -> String {
    let list = env.git(&env.repo(), ["worktree", "list", "--porcelain"]);
    list.lines()
        .filter_map(|l| l.strip_prefix("branch refs/heads/"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn branches(env: &TestEnv) -> String {
    env.git(&env.repo(), ["branch", "--format=%(refname:short)"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn clean_removes_merged_work_only() {
    let env = setup();
    insta::assert_snapshot!(env.run(["clean"]), @"Nothing to clean.");
    env.git(
        &env.repo(),
        ["merge", "-q", "--no-ff", "-m", "merge A", "orch/A"],
    );
    insta::assert_snapshot!(env.run(["clean", "--merged"]), @"
    Removed worktree `$TEMP/repo.worktrees/A`.
    Removed branch `orch/A`.
    ");
    assert_eq!(worktrees(&env), "main orch/B orch/C");
    assert_eq!(branches(&env), "main orch/B orch/C");
    assert!(env.state()["items"]["A"]["worktree"].is_null());
}

#[test]
fn clean_all_keeps_dirty_worktrees_and_unmerged_branches() {
    let env = setup();
    let c = env.worktree_of("C");
    std::fs::write(c.join("notes.txt"), "mine\n").unwrap();
    let out = env.run(["clean", "--all"]);
    insta::assert_snapshot!(out, @"
    Removed worktree `$TEMP/repo.worktrees/A`.
    Removed worktree `$TEMP/repo.worktrees/B`.
    Kept worktree `$TEMP/repo.worktrees/C`: 1 file not committed (notes.txt).
    Kept branch `orch/A`: 1 commit not in `main`.
    Kept branch `orch/B`: 1 commit not in `main`.
    ------- stderr -------
    error: kept 3 items that hold work not in `main`
    hint: commit or discard the changes, or merge the branches, then clean again
    [exit status: 1]
    ");
    assert_eq!(worktrees(&env), "main orch/C");
    assert_eq!(branches(&env), "main orch/A orch/B orch/C");
    assert_eq!(
        std::fs::read_to_string(c.join("notes.txt")).unwrap(),
        "mine\n"
    );
}

#[test]
fn clean_is_refused_while_a_run_is_live() {
    let env = setup();
    // A live run holds a lock on the state dir itself (`state::lock`).
    let dir = std::fs::File::open(env.repo().join(".orchestrator")).unwrap();
    dir.lock().unwrap();
    let out = env.orch().arg("clean").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", env.render(&out));
}
