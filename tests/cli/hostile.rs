//! Hostile inputs: ids and titles with `../`, `/`, `;`, `$(...)`, newlines,
//! unicode and 10 KB of text. Ids are refused with the id named; titles are
//! carried as text: none reaches a shell, none makes a path outside the
//! worktree root or the state dir, none makes an invalid ref.

use std::fs;
use std::path::Path;

use crate::common::TestEnv;

/// A title that would do damage if anything ran it through a shell.
fn nasty_title(marker: &Path) -> String {
    let m = marker.display();
    format!(
        "$(touch {m}) `touch {m}`; touch {m} && echo ../../etc/passwd \\n 日本語 ✓ {}",
        "x".repeat(10 * 1024)
    )
}

#[test]
fn hostile_ids_are_refused_naming_each_and_nothing_is_made() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    let ids = [
        "../up",
        "a/b",
        "semi;colon",
        "$(touch x)",
        "new\nline",
        "日本",
        "dot.dot",
        &"L".repeat(10 * 1024),
    ];
    let plan: String = ids
        .iter()
        .map(|id| format!("[[task]]\nid = {}\n", toml::Value::String((*id).to_owned())))
        .collect();
    env.write("plan.toml", &plan);
    let out = env.orch().args(["run"]).output().unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert_eq!(
        text.matches("plan.toml:").count(),
        ids.len(),
        "every id named once: {text}"
    );
    assert!(!env.repo().join(".orchestrator").exists(), "no state dir");
    assert!(!env.root().join("repo.worktrees").exists(), "no worktree");
    let refs = env.git(&env.repo(), ["for-each-ref", "--format=%(refname)"]);
    assert_eq!(refs.trim(), "refs/heads/main", "no branch made");
    assert!(!env.repo().join("x").exists());
}

#[test]
fn hostile_ids_in_imported_and_json_plans_are_refused_too() {
    let env = TestEnv::new();
    env.init_repo();
    env.write(
        "tasks.json",
        r#"{"tasks": [{"id": "../../x", "title": "a", "dependencies": []}, {"id": "a;b", "title": "b", "dependencies": []}]}"#,
    );
    let out = env
        .orch()
        .args([
            "plan",
            "import",
            "taskmaster",
            "tasks.json",
            "-o",
            "plan.toml",
        ])
        .output()
        .unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("task #1 has no usable id (found `\"../../x\"`)"),
        "{text}"
    );
    assert!(!env.repo().join("plan.toml").exists(), "nothing written");
    env.write(
        "backlog.json",
        r#"{"backlog": [{"type": "Phase", "id": "P1/../../x", "title": "p", "milestones": []}]}"#,
    );
    let out = env
        .orch()
        .args(["plan", "check", "--plan", "backlog.json"])
        .output()
        .unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("P1/../../x"), "{text}");
}

#[test]
fn hostile_titles_are_text_everywhere_they_go() {
    let env = TestEnv::new();
    env.init_repo();
    let marker = env.root().join("PWNED");
    let title = nasty_title(&marker);
    let (outside, allow) = env.outside();
    let echo = outside.join("titles.log");
    env.configure(
        "env.sh",
        &format!(
            "[hooks]\ninstall = false\npost_create = [\"printf '%s\\\\n' \\\"$ORCH_TASK_TITLE\\\" >> '{}'\"]\n{allow}",
            echo.display()
        ),
    );
    env.edit_config("[hooks]\ninstall = false\n\n", "");
    let plan = format!(
        "[[task]]\nid = \"T1\"\ntitle = {}\ndescription = {}\n",
        toml::Value::String(title.clone()),
        toml::Value::String(title.clone())
    );
    env.write("plan.toml", &plan);
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert!(!marker.exists(), "nothing ran the title");
    assert!(!env.repo().join("PWNED").exists());
    // The title reached the hook, the agent's environment and the merge
    // commit as the same text.
    assert_eq!(fs::read_to_string(&echo).unwrap(), format!("{title}\n"));
    let seen =
        fs::read_to_string(env.repo().join(".orchestrator/runs/T1/1/prompt.md.env")).unwrap();
    assert!(
        seen.contains(&format!("ORCH_TASK_TITLE={title}")),
        "the agent saw the title as is"
    );
    let subject = env.git(&env.repo(), ["log", "-1", "--format=%B", "main"]);
    assert!(
        subject.starts_with(&format!("Merge task T1: {}", &title[..40])),
        "{}",
        &subject[..80]
    );
    // Every path orch made is inside the worktree root or the state dir.
    let worktrees = env.git(&env.repo(), ["worktree", "list", "--porcelain"]);
    for line in worktrees
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .skip(1)
    {
        assert!(
            Path::new(line).starts_with(env.root().join("repo.worktrees")),
            "{line}"
        );
    }
    let entries: Vec<String> = fs::read_dir(env.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut entries = entries;
    entries.sort();
    assert_eq!(
        entries,
        ["home", "outside", "repo", "repo.worktrees", "tmp"]
    );
    assert!(
        env.git_ok(&env.repo(), ["fsck", "--no-progress"]),
        "refs and objects are valid"
    );
}

#[test]
fn a_hostile_only_argument_is_named_and_refused() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    insta::assert_snapshot!(env.run(["run", "--only", "../T1;$(x)"]), @"
    ------- stderr -------
    error: `--only ../T1;$(x)`: `../T1;$(x)` is not in the plan
    [exit status: 2]
    ");
}
