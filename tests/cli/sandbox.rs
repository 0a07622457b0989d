//! The sandbox (issue 12, "Agents can reach outside their worktree"): a
//! confined agent is refused every write outside its worktree, its own git
//! paths, its run folder and its temp folder, while its own work commits
//! and merges; hooks are confined too; `enabled = false` and a kernel
//! without Landlock say loudly that agents are not confined.
//!
//! The agent is `tests/fixtures/agents/escape.sh`; each write it tries is a
//! line of `escape-report.txt`, which orch commits with its work.

use std::fs;
use std::net::TcpListener;

use crate::common::{TestEnv, fixture};

/// What `post_create` tries: writing the state dir, reported in the worktree.
const HOOK: &str = r#"post_create = ["if echo hook > \"$ORCH_STATE_DIR/hook-escaped.txt\" 2>/dev/null; then echo wrote > hook-report.txt; else echo refused > hook-report.txt; fi"]"#;

/// Sets up T1 (a plain agent that commits) and T2 (the escaping agent),
/// with orch's git hooks installed.
pub(crate) fn setup(extra: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(
        "escape.sh",
        &format!(
            "[agents.plain]\ncommand = [{:?}]\n\n{extra}",
            fixture("agents/commit.sh").display().to_string()
        ),
    );
    env.edit_config(
        "[hooks]\ninstall = false\n",
        &format!("[hooks]\ninstall = true\n{HOOK}\n"),
    );
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T1\"\nagent = \"plain\"\n[[task]]\nid = \"T2\"\n",
    );
    env.git(&env.repo(), ["add", "-A"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "plan"]);
    env
}

/// Returns the report's lines as (verdict, what was tried).
pub(crate) fn report(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| {
            let (verdict, name) = l.split_once(' ').unwrap();
            (verdict.to_owned(), name.to_owned())
        })
        .collect()
}

/// Checks that T2's agent was refused every write outside its own work,
/// and could write its temp folder.
pub(crate) fn assert_refused_all_but_its_own(env: &TestEnv) {
    let tried = report(&env.git(&env.repo(), ["show", "main:escape-report.txt"]));
    let refused: Vec<&str> = tried
        .iter()
        .filter(|(v, _)| v == "refused")
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(
        refused,
        [
            "checkout",
            "checkout-file",
            "home",
            "state-dir",
            "state-runs",
            "other-worktree",
            "update-ref",
            "ref-file",
            "new-branch"
        ],
        "{tried:?}"
    );
    assert!(
        tried.contains(&("wrote".to_owned(), "tmpdir".to_owned())),
        "{tried:?}"
    );
}

#[test]
fn issue_12_a_confined_agent_writes_only_its_own_work_which_merges() {
    let env = setup("");
    let repo = env.repo();
    let readme = fs::read_to_string(repo.join("README.md")).unwrap();
    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "merged");
    assert_eq!(env.status_of("T2"), "merged");

    assert_refused_all_but_its_own(&env);

    // Nothing it was refused is there, or changed.
    assert!(!repo.join("escaped.txt").exists());
    assert_eq!(fs::read_to_string(repo.join("README.md")).unwrap(), readme);
    assert!(!env.root().join("home/escaped.txt").exists());
    let state_dir = repo.join(".orchestrator");
    assert!(!state_dir.join("escaped.txt").exists());
    assert!(!state_dir.join("runs/escaped").exists());
    assert!(!state_dir.join("hook-escaped.txt").exists());
    assert!(!env.root().join("repo.worktrees/T1/escaped.txt").exists());
    assert!(!env.git_ok(&repo, ["rev-parse", "--verify", "-q", "escaped-branch"]));
    let work = env.git(
        &repo,
        [
            "log",
            "main",
            "--format=%H",
            "--grep",
            "Add work-escape.txt",
        ],
    );
    let work = work.trim();
    assert_eq!(work.len(), 40, "the agent's own commit is on main: {work}");
    let main_was = env.git(&repo, ["reflog", "show", "--format=%H", "refs/heads/main"]);
    assert!(
        !main_was.lines().any(|l| l == work),
        "main never pointed at the agent's commit:\n{main_was}"
    );

    // Its own commit went through orch's git hooks: the trailer, and the
    // `task.commit` event its supervisor moved into the log.
    let message = env.git(&repo, ["show", "-s", "--format=%B", work]);
    assert!(message.contains("Orch-Task: T2"), "{message}");
    let events = env.events();
    assert!(
        events.iter().any(|e| e["event"] == "task.commit"
            && e["id"] == "T2"
            && e["via"] == "hook"
            && e["commit"] == work),
        "{events:#?}"
    );
    // The post_create hook was confined, as the agent was.
    assert_eq!(
        env.git(&repo, ["show", "main:hook-report.txt"]),
        "refused\n"
    );
    // The result file and a private temp folder, removed after the agent.
    assert_eq!(env.state()["items"]["T2"]["summary"], "escape tried");
    let tmpdir = env.git(&repo, ["show", "main:tmpdir.txt"]);
    let tmpdir = std::path::Path::new(tmpdir.trim());
    assert_ne!(tmpdir, env.root().join("tmp"));
    assert!(!tmpdir.exists(), "{}", tmpdir.display());

    // Confinement is on record.
    let started = events.iter().find(|e| e["event"] == "run.started").unwrap();
    assert_eq!(started["sandbox"]["mode"], "confined", "{started}");
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "task.started")
            .all(|e| e["confined"] == true)
    );
    assert_eq!(env.state()["items"]["T2"]["attempts"][0]["confined"], true);
    let prompt = fs::read_to_string(state_dir.join("runs/T2/1/prompt.md")).unwrap();
    assert!(
        prompt.contains("- You may write only this worktree, `$TMPDIR` and your own branch"),
        "{prompt}"
    );
}

#[test]
fn issue_12_sandbox_disabled_lets_the_writes_through_and_says_so() {
    let env = setup("[sandbox]\nenabled = false\n");
    let repo = env.repo();
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let prompt = fs::read_to_string(repo.join(".orchestrator/runs/T2/1/prompt.md")).unwrap();
    assert!(!prompt.contains("You may write only"), "{prompt}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr
        .lines()
        .find(|l| l.contains("Starting:"))
        .unwrap_or_default();
    assert!(
        first.ends_with(
            "Agents are NOT confined: `[sandbox] enabled = false`; they can write anywhere you can."
        ),
        "{stderr}"
    );
    let tried = report(&env.git(&repo, ["show", "orch/T2:escape-report.txt"]));
    assert!(tried.iter().all(|(v, _)| v == "wrote"), "{tried:?}");
    assert!(repo.join("escaped.txt").exists());
    assert!(env.root().join("home/escaped.txt").exists());
    assert!(repo.join(".orchestrator/hook-escaped.txt").exists());
    let events = env.events();
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "task.started")
            .all(|e| e.get("confined").is_none()),
        "{events:#?}"
    );
}

#[test]
fn issue_12_without_landlock_the_run_and_doctor_say_agents_are_not_confined() {
    let env = TestEnv::new();
    env.init_repo();
    env.configure("commit.sh", "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let out = env
        .orch()
        .env(orch::sandbox::TEST_ABI_VAR, "0")
        .arg("run")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().next().unwrap_or_default().ends_with(
            "Agents are NOT confined: the kernel has no Landlock; they can write anywhere you can (see `orch doctor`)."
        ),
        "{stderr}"
    );
    assert_eq!(env.status_of("T1"), "merged");
    let doctor = env
        .orch()
        .env(orch::sandbox::TEST_ABI_VAR, "2")
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.contains(
            "warn  sandbox   agents and hooks are NOT confined: the kernel's Landlock ABI 2 is older than 3 (Linux 6.2); they can write anywhere you can"
        ),
        "{text}"
    );
}

#[test]
fn issue_12_network_false_refuses_tcp() {
    match orch::sandbox::probe() {
        orch::sandbox::Support::Available { abi } if abi >= orch::sandbox::NETWORK_ABI => {}
        other => {
            eprintln!("SKIPPED: this kernel cannot refuse TCP to agents ({other:?})");
            return;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = TestEnv::new();
    env.init_repo();
    env.configure(
        "connect.sh",
        &format!("[agent.env]\nORCH_TEST_PORT = \"{port}\"\n\n[sandbox]\nnetwork = false\n"),
    );
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(
        env.git(&env.repo(), ["show", "orch/T1:net-report.txt"]),
        "refused\n"
    );
}
