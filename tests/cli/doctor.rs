//! `orch doctor` on a healthy repository and on one with a problem of every
//! kind it checks, each with what to do.

use std::fs;

use crate::common::{TestEnv, fixture};

/// Runs `orch doctor`, with git's version and the fixtures' folder as placeholders.
fn doctor(env: &TestEnv) -> String {
    env.run(["doctor"])
        .lines()
        .map(|l| {
            if l.contains(" git       git ") {
                "ok    git       git <version>"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace(&fixture("agents").display().to_string(), "$FIXTURES")
        .replace(
            &format!("(Landlock ABI {})", landlock_abi()),
            "(Landlock ABI <n>)",
        )
}

/// Returns the Landlock ABI the kernel reports (what `orch doctor` shows).
fn landlock_abi() -> u32 {
    match orch::sandbox::probe() {
        orch::sandbox::Support::Available { abi } => abi,
        orch::sandbox::Support::Unavailable(_) => 0,
    }
}

#[test]
fn a_healthy_repository_passes() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let text = doctor(&env);
    insta::assert_snapshot!(text, @"
    ok    git       git <version>
    ok    git       a commit identity is configured
    ok    config    `.orchestrator.toml` is valid
    ok    git       target branch `main` exists
    ok    sandbox   agents and hooks are confined to their worktrees (Landlock ABI <n>)
    ok    plan      `plan.toml`: 1 task, 0 subtasks, 0 dependencies
    ok    config    `agent.command`: `$FIXTURES/commit.sh` is found
    ok    plan      the prompts of 1 task render
    warn  hooks     commit-msg, pre-commit, post-commit not installed: commits in task worktrees get no `Orch-Task:` trailer
                    fix: orch hooks install
    ok    worktrees 1 worktree in `$TEMP/repo.worktrees`; none stale or locked
    ok    state     `.orchestrator/state.json` is readable; no run is live
    ok    state     1 item checked against git and the process table
    No problems; 1 warning.
    ");
}

#[test]
fn every_problem_is_named_with_its_fix() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n[[task]]\nid = \"T3\"\n",
    );
    let out = env
        .orch()
        .args(["run", "--no-merge", "--max-parallel", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let repo = env.repo();
    let worktrees = env.root().join("repo.worktrees");
    // A branch deleted behind orch's back, a worktree folder removed by hand,
    // a locked worktree, a stray folder where worktrees go, an agent that
    // is not installed.
    env.git(
        &repo,
        [
            "worktree",
            "lock",
            "--reason",
            "in use",
            worktrees.join("T2").to_str().unwrap(),
        ],
    );
    fs::remove_dir_all(worktrees.join("T1")).unwrap();
    env.git(&worktrees.join("T3"), ["checkout", "-q", "--detach"]);
    env.git(&repo, ["branch", "-D", "orch/T3"]);
    fs::create_dir_all(worktrees.join("T9")).unwrap();
    let config = fs::read_to_string(repo.join(".orchestrator.toml")).unwrap();
    let agent = env.agent("commit.sh");
    // A preset no task uses, whose program is missing (a warning), and a
    // prompt template that uses a field only T1 has.
    env.write(
        ".orchestrator.toml",
        &format!(
            "{}\n[agents.robot]\ncommand = [\"no-such-robot\"]\n",
            config.replace(&format!("{agent:?}"), "\"no-such-agent\"")
        ),
    );
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\nowner = \"ana\"\n[[task]]\nid = \"T2\"\n[[task]]\nid = \"T3\"\n",
    );
    env.write(
        ".orchestrator/templates/task.md",
        "Task {{ task.id }}, for {{ task.extra.owner }}.\n",
    );
    let text = doctor(&env);
    insta::assert_snapshot!(text, @r#"
    ok    git       git <version>
    ok    git       a commit identity is configured
    ok    config    `.orchestrator.toml` is valid
    ok    git       target branch `main` exists
    ok    sandbox   agents and hooks are confined to their worktrees (Landlock ABI <n>)
    ok    plan      `plan.toml`: 3 tasks, 0 subtasks, 0 dependencies
    error config    `agent.command`: `no-such-agent` is not an executable on PATH
                    fix: install `no-such-agent`, or point `agent.command` at the agent you use
    warn  config    `agents.robot`: `no-such-robot` is not an executable on PATH (no task uses it)
                    fix: install `no-such-robot` before a task picks `agent = "robot"`
    error plan      the prompt for `T2` does not render: cannot render prompt template `$TEMP/repo/.orchestrator/templates/task.md`: undefined value: `task.extra.owner` is undefined (in task.md:1)
                    fix: give `T2` the field the template uses, or guard it in the template (`{% if ... %}`)
    error plan      the prompt for `T3` does not render: cannot render prompt template `$TEMP/repo/.orchestrator/templates/task.md`: undefined value: `task.extra.owner` is undefined (in task.md:1)
                    fix: give `T3` the field the template uses, or guard it in the template (`{% if ... %}`)
    warn  hooks     commit-msg, pre-commit, post-commit not installed: commits in task worktrees get no `Orch-Task:` trailer
                    fix: orch hooks install
    warn  worktrees `$TEMP/repo.worktrees/T1` is registered but its folder is missing
                    fix: git worktree prune
    warn  worktrees `$TEMP/repo.worktrees/T2` is locked; orch will not move or remove it
                    fix: git worktree unlock '$TEMP/repo.worktrees/T2' (once nothing else uses it)
    warn  worktrees `$TEMP/repo.worktrees/T9` is in the worktree root but is not a worktree of this repository; a task with that id cannot start
                    fix: look inside, keep what you need, then remove the folder
    ok    state     `.orchestrator/state.json` is readable; no run is live
    error state     `T3` is awaiting merge but its branch `orch/T3` is gone
                    fix: restore the branch if you can (`git reflog`); else `orch cancel T3`, then `orch retry T3` starts it over
    ------- stderr -------
    error: 4 problems and 5 warnings found
    [exit status: 2]
    "#);
}

#[test]
fn a_repository_never_set_up_is_told_to_run_orch_init() {
    let env = TestEnv::new();
    env.init_repo();
    let text = doctor(&env);
    assert!(
        text.contains("fix: `orch init` writes a starter `.orchestrator.toml` and `plan.toml`"),
        "{text}"
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = env
            .orch_in(&env.root())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("doctor"), "{shell}");
        assert!(
            !text.contains("__supervise"),
            "hidden commands stay hidden ({shell})"
        );
    }
    let out = env
        .orch_in(&env.root())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Returns the lines of a doctor report about `needle`, each with its fix.
fn findings_about(text: &str, needle: &str) -> String {
    let mut out = Vec::new();
    let mut keep = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            keep = line.contains(needle);
        }
        if keep {
            out.push(line);
        }
    }
    out.join("\n")
}

#[test]
fn issue_18_a_relative_agent_is_checked_where_tasks_run_it() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    env.edit_config(&format!("{:?}", env.agent("commit.sh")), "\"./agent.sh\"");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let script = env.write("agent.sh", "#!/bin/sh\nexit 0\n");
    let mut mode = fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    fs::set_permissions(&script, mode).unwrap();
    insta::assert_snapshot!(findings_about(&doctor(&env), "agent.command"), @"
    error config    `agent.command`: `./agent.sh` is run in each task's worktree, made from `main`, and `main` has no `agent.sh` committed
                    fix: commit `agent.sh` to `main` (your checkout has it), or use an absolute path
    ");
    env.git(&env.repo(), ["add", "agent.sh"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "Add the agent"]);
    insta::assert_snapshot!(findings_about(&doctor(&env), "agent.command"), @"ok    config    `agent.command`: `./agent.sh` is committed on `main`, so every task's worktree has it");
}

#[test]
fn issue_18_fixes_point_to_what_the_user_has() {
    let env = TestEnv::new();
    env.init_repo();
    let text = doctor(&env);
    insta::assert_snapshot!(findings_about(&text, "plan"), @"
    error plan      cannot read plan `plan.toml`: No such file or directory (os error 2)
                    fix: `orch init` writes a starter `.orchestrator.toml` and `plan.toml`
    ");
    env.write(".orchestrator.toml", "[agent]\nmax_paralel = 2\n");
    insta::assert_snapshot!(doctor(&env), @"
    ok    git       git <version>
    ok    git       a commit identity is configured
    error config    .orchestrator.toml:2:1: unknown field `max_paralel`, expected one of `preset`, `command`, `prompt`, `final_message`, `exclude`, `unit`, `timeout`, `max_parallel`, `auto_commit`, `grace`, `log_limit`, `env`
                    fix: fix the file; `orch init --print-config` prints every key with its default and what it does
    ------- stderr -------
    error: 1 problem and 0 warnings found
    [exit status: 2]
    ");
}

/// Replaces each full commit id of `ids`, and its short form, with its name.
fn named_ids(text: &str, ids: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (id, name) in ids {
        out = out.replace(id, name).replace(&id[..9], name);
    }
    out
}

#[test]
fn issue_12_a_checkout_move_cut_short_is_reported_with_what_the_next_run_does() {
    let env = crate::trust::cut_a_fast_forward_short();
    let journal: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(env.repo().join(".orchestrator/checkout.json")).unwrap(),
    )
    .unwrap();
    let ids = [
        (journal["from"].as_str().unwrap(), "<from>"),
        (journal["to"].as_str().unwrap(), "<to>"),
    ];
    let text = named_ids(&doctor(&env), &ids);
    insta::assert_snapshot!(findings_about(&text, "cut short"), @"
    warn  state     moving `$TEMP/repo`, where `main` is checked out, from <from> to <to> was cut short when orch stopped
                    fix: the next `orch run` finishes the move first, path by path; nothing anyone wrote since is overwritten
    ");
    assert!(!text.contains("exit status"), "a warning alone: {text}");
    // A person edits a path the move changes: the next run cannot finish
    // it, and says so; so does the doctor, as a problem.
    env.write("README.md", "a person's edit\n");
    let text = named_ids(&doctor(&env), &ids);
    insta::assert_snapshot!(findings_about(&text, "cut short"), @"
    error state     moving `$TEMP/repo` to `<to>` was cut short, and these paths changed since: `README.md` (changed since); commit, revert or move them, and merging finishes the move
                    fix: commit, revert or move those paths; the next `orch run` then finishes the move before `main` takes another merge
    ");
    assert!(text.contains("[exit status: 2]"), "{text}");
}

#[test]
fn issue_12_a_target_that_lost_orchs_merge_is_reported_before_and_after_the_run_stops() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let out = env.orch().args(["run"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let landed = env.state()["landed"].as_str().unwrap().to_owned();
    // A person resets the target under orch, while no run is live.
    env.git(&env.repo(), ["reset", "-q", "--hard", "HEAD~1"]);
    let head = env
        .git(&env.repo(), ["rev-parse", "HEAD"])
        .trim()
        .to_owned();
    let ids = [(landed.as_str(), "<landed>"), (head.as_str(), "<head>")];
    let text = named_ids(&doctor(&env), &ids);
    insta::assert_snapshot!(findings_about(&text, "<landed>"), @"
    error state     target branch `main` was moved under orch (to <head>) and no longer contains <landed>, which orch merged
                    fix: put it back (`git merge <landed>` on `main`); else the next `orch run` stops merging (exit 2) and keeps the commit as `refs/orch/backup/@target/main/<n>`, and dropping that ref (`git update-ref -d`) accepts the new history
    ");
    assert!(text.contains("[exit status: 2]"), "{text}");
    // The run refuses, as the doctor said, and keeps the commit.
    let out = crate::trust::run_orch(&env, &["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", env.render(&out));
    let text = named_ids(&doctor(&env), &ids);
    insta::assert_snapshot!(findings_about(&text, "<landed>"), @"
    error state     target branch `main` was moved under orch and no longer contains <landed>, which orch merged; orch stopped starting and merging tasks (the commit is kept as `refs/orch/backup/@target/main/1`)
                    fix: put it back (`git merge <landed>` on `main`), or, if the new history is what you want, drop the backup (`git update-ref -d refs/orch/backup/@target/main/1`); then `orch run` carries on
    ");
    assert!(text.contains("[exit status: 2]"), "{text}");
    // Dropping the backup accepts the new history: nothing to fix.
    env.git(
        &env.repo(),
        ["update-ref", "-d", "refs/orch/backup/@target/main/1"],
    );
    let text = named_ids(&doctor(&env), &ids);
    insta::assert_snapshot!(findings_about(&text, "<landed>"), @"ok    state     target branch `main` no longer contains <landed>, which orch merged, and its backup `refs/orch/backup/@target/main/1` is gone: the next `orch run` takes `main` as it is");
    assert!(!text.contains("exit status"), "{text}");
}
