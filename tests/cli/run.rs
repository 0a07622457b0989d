//! `orch run --no-merge` with scripted agents: each ends in the right status
//! with the right reason, git agrees (checked with the `git` CLI), and no
//! process of any agent group is left. Also what a person sees of a run:
//! progress lines, the summary, the exit status, and `--json` event lines.

use std::fs;
use std::path::Path;

use crate::common::{TestEnv, stable_output};

const THREE: &str =
    "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\ndepends_on = [\"A\"]\n";

fn setup(script: &str, extra: &str, plan: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(script, extra);
    env.write("plan.toml", plan);
    env
}

fn run(env: &TestEnv) -> std::process::Output {
    env.orch().args(["run", "--no-merge"]).output().unwrap()
}

fn rev_count(env: &TestEnv, range: &str) -> usize {
    env.git(&env.repo(), ["rev-list", "--count", range])
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn committing_agents_leave_their_work_on_task_branches() {
    let env = setup("commit.sh", "", THREE);
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("A"), "awaiting_merge");
    assert_eq!(env.status_of("B"), "awaiting_merge");
    assert_eq!(
        env.status_of("C"),
        "",
        "C needs A merged, so it never starts"
    );
    for task in ["A", "B"] {
        assert_eq!(rev_count(&env, &format!("main..orch/{task}")), 1, "{task}");
        let worktree = env.worktree_of(task);
        let status = env.git(&worktree, ["status", "--porcelain"]);
        assert_eq!(status, "", "{task}'s worktree is clean");
        let file = fs::read_to_string(worktree.join(format!("work-{task}.txt"))).unwrap();
        assert_eq!(file, format!("done by {task}, attempt 1\n"));
        // Issue 13: a task without a description leaves no gap in its
        // prompt, and the report it may write is inside its worktree.
        let prompt = env
            .repo()
            .join(format!(".orchestrator/runs/{task}/1/prompt.md"));
        let prompt = fs::read_to_string(prompt).unwrap();
        assert!(!prompt.contains("\n\n\n"), "blank lines in a row: {prompt}");
        assert!(
            prompt.contains(&format!(
                "`{}/.orchestrator/result.json`",
                worktree.display()
            )),
            "{prompt}"
        );
    }
    let list = env.git(&env.repo(), ["worktree", "list", "--porcelain"]);
    assert!(list.contains("branch refs/heads/orch/A"), "{list}");
    assert!(list.contains("branch refs/heads/orch/B"), "{list}");
    let names: Vec<String> = env
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("run.started"));
    assert_eq!(names.last().map(String::as_str), Some("run.finished"));
    assert_eq!(names.iter().filter(|n| *n == "task.completed").count(), 2);
    env.assert_no_agent_left();
}

#[test]
fn uncommitted_work_is_committed_with_a_trailer() {
    let env = setup(
        "uncommitted.sh",
        "",
        "[[task]]\nid = \"T1\"\ntitle = \"Tidy the readme\"\n",
    );
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let message = env.git(&env.repo(), ["log", "-1", "--format=%B", "orch/T1"]);
    assert!(message.starts_with("Tidy the readme\n"), "{message}");
    let trailers = env.git(
        &env.repo(),
        [
            "log",
            "-1",
            "--format=%(trailers:key=Orch-Task,valueonly)",
            "orch/T1",
        ],
    );
    assert_eq!(trailers.trim(), "T1");
    let files = env.git(&env.repo(), ["show", "--name-only", "--format=", "orch/T1"]);
    assert_eq!(files, "README.md\nleft-T1.txt\n");
    assert!(
        env.events()
            .iter()
            .any(|e| e["event"] == "task.commit" && e["auto"] == true)
    );
}

/// Issue 15: the supervisor watches a clean worktree while the agent
/// runs, and collection asks git about the paths it saw change alone;
/// every kind of change is still committed, ignored files are not.
fn watched(agent: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.write(".gitignore", "target/\n");
    env.write("src/deep/x.rs", "x\n");
    env.write("docs/old.md", "old\n");
    env.write("tool.sh", "echo tool\n");
    env.git(&env.repo(), ["add", "-A"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "files"]);
    env.configure(agent, "");
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    env
}

/// `changes.json` of T1's first attempt.
fn changes_record(env: &TestEnv) -> serde_json::Value {
    let record = env.repo().join(".orchestrator/runs/T1/1/changes.json");
    serde_json::from_str(&fs::read_to_string(&record).unwrap()).unwrap()
}

fn watched_paths(env: &TestEnv) -> serde_json::Value {
    let record = changes_record(env);
    assert_eq!(record["kind"], "paths", "{record}");
    record["paths"].clone()
}

#[test]
fn changes_the_watch_saw_are_all_committed() {
    let env = watched("scatter.sh");
    assert_eq!(
        watched_paths(&env),
        serde_json::json!([
            "docs/old.md",
            "new",
            "scratch.tmp",
            "src/deep/x.rs",
            "target",
            "tool.sh"
        ])
    );
    let files = env.git(
        &env.repo(),
        ["show", "--name-status", "--format=", "orch/T1"],
    );
    assert_eq!(
        files,
        "D\tdocs/old.md\nA\tnew/inner/f.rs\nM\tsrc/deep/x.rs\nM\ttool.sh\n"
    );
    let mode = env.git(&env.repo(), ["ls-tree", "orch/T1", "tool.sh"]);
    assert!(mode.starts_with("100755 "), "{mode}");
    let worktree = env.worktree_of("T1");
    let status = env.git(&worktree, ["status", "--porcelain"]);
    assert_eq!(status, "", "the worktree is clean");
    assert!(worktree.join("target/out").exists());
}

/// Issue 15: the coordinator learns that an attempt ended from a pipe its
/// supervisor closes once `exit.json` is written, before the supervisor
/// has closed the worktree's watch and ended. A process the agent left
/// running in a session of its own does not hold that pipe open (the run
/// would wait for it, here ten minutes).
#[test]
fn a_process_the_agent_left_running_does_not_keep_its_attempt_open() {
    let env = setup("linger.sh", "", "[[task]]\nid = \"T1\"\n");
    let mut child = env.spawn(&["run", "--no-merge"]);
    let out = crate::common::wait_exit(&mut child);
    let pid_file = env.worktree_of("T1").join(".orchestrator/lingerer.pid");
    let pid = fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", pid_file.display(), env.render(&out)));
    let pid = rustix::process::Pid::from_raw(pid.trim().parse().unwrap()).unwrap();
    let still_there = rustix::process::test_kill_process(pid).is_ok();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    assert!(out.status.success(), "{}", env.render(&out));
    assert!(still_there, "the lingering process outlived the run");
    assert_eq!(env.status_of("T1"), "awaiting_merge");
    assert_eq!(rev_count(&env, "main..orch/T1"), 1);
}

/// Issue 15: the agent's own git writes the worktree's index without a
/// checksum, as orch's does, after any `GIT_CONFIG_COUNT` settings the
/// agent is given; a repository whose config sets `index.skipHash` keeps
/// its setting.
#[test]
fn the_agents_git_writes_the_index_without_a_checksum_unless_the_repository_says() {
    let no_hash = "0".repeat(40);
    let record = |env: &TestEnv, name: &str| {
        fs::read_to_string(env.worktree_of("T1").join(".orchestrator").join(name)).unwrap()
    };
    let env = setup("index-hash.sh", "", "[[task]]\nid = \"T1\"\n");
    env.edit_config(
        "max_parallel = 2\n",
        "max_parallel = 2\nenv = { GIT_CONFIG_COUNT = \"1\", GIT_CONFIG_KEY_0 = \"test.marker\", GIT_CONFIG_VALUE_0 = \"kept\" }\n",
    );
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(record(&env, "index-hash.txt"), no_hash);
    assert_eq!(
        record(&env, "marker.txt"),
        "kept\n",
        "the agent's own settings hold"
    );

    let env = setup("index-hash.sh", "", "[[task]]\nid = \"T1\"\n");
    env.git(&env.repo(), ["config", "index.skipHash", "false"]);
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_ne!(
        record(&env, "index-hash.txt"),
        no_hash,
        "a checksum, as configured"
    );
}

/// Issue 15: a worktree smaller than `git.watch_min_files` (20,000 by
/// default; the tests' config says 0) is scanned, not watched.
#[test]
fn a_small_worktree_is_scanned_not_watched_by_default() {
    let env = setup("uncommitted.sh", "", "[[task]]\nid = \"T1\"\n");
    env.edit_config("watch_min_files = 0\n", "");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(
        changes_record(&env),
        serde_json::json!({
            "kind": "unknown",
            "why": "the worktree tracks fewer files (1) than git.watch_min_files (20000): scanned, not watched"
        })
    );
    let files = env.git(&env.repo(), ["show", "--name-only", "--format=", "orch/T1"]);
    assert_eq!(files, "README.md\nleft-T1.txt\n");
}

/// Issue 15: a `git reset` that moves `HEAD` and leaves the files writes
/// none, so the watch sees nothing; where `HEAD` moved is looked at too.
#[test]
fn a_head_moved_under_unchanged_files_is_looked_at_too() {
    let env = watched("reset.sh");
    assert_eq!(watched_paths(&env), serde_json::json!([]));
    let files = env.git(
        &env.repo(),
        ["show", "--name-status", "--format=", "orch/T1"],
    );
    assert_eq!(
        files,
        "A\t.gitignore\nA\tdocs/old.md\nA\tsrc/deep/x.rs\nA\ttool.sh\n"
    );
    let diff = env.git(&env.repo(), ["diff", "main", "orch/T1"]);
    assert_eq!(diff, "", "the branch holds the files as they were");
}

#[test]
fn an_agent_that_changes_nothing_fails_unless_allowed() {
    let env = setup(
        "noop.sh",
        "[retry]\nmax_attempts = 2",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\nexpect_changes = false\n",
    );
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "failed");
    let reason = env.state()["items"]["T1"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.starts_with("the agent exited 0 but changed nothing"),
        "{reason}"
    );
    assert!(
        reason.ends_with("(attempt 2 of 2; no attempts left)"),
        "{reason}"
    );
    assert_eq!(env.status_of("T2"), "awaiting_merge");
}

#[test]
fn transient_failures_are_retried_until_attempts_run_out() {
    let env = setup("fail-transient.sh", "", "[[task]]\nid = \"T1\"\n");
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    let state = env.state();
    let item = &state["items"]["T1"];
    assert_eq!(item["status"], "failed");
    assert_eq!(item["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(
        item["reason"],
        "exit code 75 (transient) (attempt 3 of 3; no attempts left)"
    );
    let retrying = env
        .events()
        .iter()
        .filter(|e| e["event"] == "task.retrying")
        .count();
    assert_eq!(retrying, 2);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("retrying  T1  attempt 1: exit code 75 (transient); next attempt in"),
        "{stderr}"
    );
}

#[test]
fn a_transient_failure_can_succeed_on_retry() {
    let env = setup(
        "fail-transient.sh",
        "[agent.env]\nSUCCEED_AT = \"2\"",
        "[[task]]\nid = \"T1\"\n",
    );
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "awaiting_merge");
    let log = fs::read_to_string(env.repo().join(".orchestrator/runs/T1/1/agent.log")).unwrap();
    assert_eq!(log, "attempt 1 failing\n");
}

#[test]
fn a_presets_permanent_exit_codes_are_not_retried() {
    // Gemini CLI exits 55 in a folder it does not trust (issue 13): that is
    // configuration, not bad luck, whatever the preset's command.
    let env = setup(
        "commit.sh",
        &format!(
            "[agents.gemini]\ncommand = [{:?}, \"-c\", \"exit 55\"]\n",
            "sh"
        ),
        "[[task]]\nid = \"T1\"\nagent = \"gemini\"\n",
    );
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    let state = env.state();
    assert_eq!(
        state["items"]["T1"]["attempts"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        state["items"]["T1"]["reason"],
        "exit code 55, which `retry.permanent_exit_codes` lists"
    );
}

#[test]
fn permanent_failures_are_not_retried() {
    let env = setup(
        "fail-permanent.sh",
        "",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\ndepends_on = [\"T1\"]\n",
    );
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1));
    let state = env.state();
    assert_eq!(
        state["items"]["T1"]["attempts"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        state["items"]["T1"]["reason"],
        "exit code 2, which `retry.permanent_exit_codes` lists"
    );
    assert_eq!(env.status_of("T2"), "blocked");
    assert_eq!(
        state["items"]["T2"]["reason"],
        "required dependency `T1` is failed"
    );
}

#[test]
fn a_hanging_agent_times_out_and_its_group_is_stopped() {
    let env = setup(
        "hang.sh",
        "[retry]\nmax_attempts = 1\n[agents.x]\ncommand = [\"true\"]",
        "[[task]]\nid = \"T1\"\n",
    );
    env.edit_config("max_parallel = 2", "max_parallel = 2\ntimeout = \"1s\"");
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    assert_eq!(
        env.state()["items"]["T1"]["reason"],
        "timed out after 1s (attempt 1 of 1; no attempts left)"
    );
    let exit = fs::read_to_string(env.repo().join(".orchestrator/runs/T1/1/exit.json")).unwrap();
    assert!(exit.contains("\"timed_out\""), "{exit}");
    env.assert_no_agent_left();
}

#[test]
fn an_agent_ignoring_sigterm_is_killed_after_the_grace_period() {
    let env = setup(
        "ignore-term.sh",
        "[retry]\nmax_attempts = 1",
        "[[task]]\nid = \"T1\"\n",
    );
    env.edit_config("max_parallel = 2", "max_parallel = 2\ntimeout = \"1s\"");
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        env.state()["items"]["T1"]["reason"],
        "timed out after 1s (attempt 1 of 1; no attempts left)"
    );
    env.assert_no_agent_left();
}

#[test]
fn a_grandchild_left_behind_is_stopped_with_the_group() {
    let env = setup("grandchild.sh", "", "[[task]]\nid = \"T1\"\n");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "awaiting_merge");
    env.assert_no_agent_left();
}

#[test]
fn a_flood_of_output_is_capped_with_a_marker() {
    let env = setup("flood.sh", "", "[[task]]\nid = \"T1\"\n");
    env.edit_config("max_parallel = 2", "max_parallel = 2\nlog_limit = \"1MiB\"");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "awaiting_merge");
    let log = fs::read(env.repo().join(".orchestrator/runs/T1/1/agent.log")).unwrap();
    let tail = String::from_utf8_lossy(&log[log.len() - 200..]).into_owned();
    // The agent's 100 MiB, and what git says on stderr when the confined
    // agent commits (docs/run.md: the `packed-refs.lock` line).
    let discarded: u64 = tail
        .strip_suffix(" more bytes were discarded]\n")
        .and_then(|t| t.rsplit_once("\n[orch: output truncated at 1048576 bytes; "))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("no marker at the end: {tail}"));
    assert!(discarded >= 104_857_600 - 1_048_576, "{tail}");
    let marker = format!(
        "\n[orch: output truncated at 1048576 bytes; {discarded} more bytes were discarded]\n"
    );
    assert_eq!(log.len(), 1_048_576 + marker.len());
    let exit = fs::read_to_string(env.repo().join(".orchestrator/runs/T1/1/exit.json")).unwrap();
    let output_bytes = format!("\"output_bytes\": {}", 1_048_576 + discarded);
    assert!(exit.contains(&output_bytes), "{exit}");
    assert!(exit.contains("\"log_truncated\": true"), "{exit}");
}

#[test]
fn the_result_file_is_read() {
    let env = setup("result.sh", "", "[[task]]\nid = \"T1\"\n");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.state()["items"]["T1"]["summary"], "built the T1 piece");
}

#[test]
fn a_missing_agent_command_fails_at_once() {
    let env = setup("no-such-agent.sh", "", "[[task]]\nid = \"T1\"\n");
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1));
    let state = env.state();
    assert_eq!(
        state["items"]["T1"]["attempts"].as_array().unwrap().len(),
        1
    );
    let reason = state["items"]["T1"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("cannot start the agent: `"), "{reason}");
    assert!(
        reason.ends_with("no-such-agent.sh`: No such file or directory (os error 2)"),
        "{reason}"
    );
}

/// The agent script of the README's quick start.
const README_AGENT: &str = "#!/bin/sh\n# agent.sh: set `command = [\"./agent.sh\"]` under [agent].\ncat > /dev/null\necho \"- $ORCH_TASK_TITLE\" >> CHANGES.md\nprintf '{\"status\":\"done\",\"summary\":\"noted %s\"}' \"$ORCH_TASK_ID\" > \"$ORCH_RESULT_FILE\"\n";

#[test]
fn issue_18_a_retry_starts_from_the_target_the_user_just_fixed() {
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    env.edit_config(&format!("{:?}", env.agent("commit.sh")), "\"./agent.sh\"");
    let script = env.write("agent.sh", README_AGENT);
    let mut mode = fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    fs::set_permissions(&script, mode).unwrap();
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    let reason = env.state()["items"]["T1"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    insta::assert_snapshot!(env.filter(&reason), @"cannot start the agent: `./agent.sh` not found in the task's worktree `$TEMP/repo.worktrees/T1`; commit it, or use an absolute path");

    env.git(&env.repo(), ["add", "agent.sh"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "Add the agent"]);
    insta::assert_snapshot!(env.run(["retry", "T1"]), @"Retried `T1`.");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(
        env.git(&env.repo(), ["show", "orch/T1:CHANGES.md"]),
        "- T1\n"
    );
    assert_eq!(
        rev_count(&env, "orch/T1..main"),
        0,
        "the branch holds the commit that added the agent"
    );
    assert_eq!(rev_count(&env, "main..orch/T1"), 1);
}

#[test]
fn issue_18_an_automatic_retry_restarts_an_empty_branch_and_keeps_one_with_work() {
    // The agent also plays someone working elsewhere, who moves the target:
    // a confined agent may not, so it runs unconfined.
    let env = setup(
        "target-moves.sh",
        "[sandbox]\nenabled = false\n",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\nagent = \"keep\"\n",
    );
    let keep = format!(
        "[agents.keep]\ncommand = [{:?}]\nenv = {{ KEEP_WORK = \"1\" }}\n\n[hooks]",
        env.agent("target-moves.sh")
    );
    env.edit_config("[hooks]", &keep);
    env.edit_config("max_parallel = 2", "max_parallel = 1");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let moved = env.git(&env.repo(), ["show", "orch/A:moved.txt"]);
    assert!(
        moved.starts_with("moved by "),
        "A started again from the target's head: {moved}"
    );
    assert_eq!(rev_count(&env, "main..orch/A"), 1, "only A's own work");
    assert_eq!(
        env.git(&env.repo(), ["show", "orch/B:early.txt"]),
        "early work\n",
        "B keeps what its first attempt committed"
    );
    assert_eq!(rev_count(&env, "main..orch/B"), 2);
    let prompt = |task: &str| {
        fs::read_to_string(
            env.repo()
                .join(format!(".orchestrator/runs/{task}/2/prompt.md")),
        )
        .unwrap()
    };
    assert!(
        prompt("B").contains("Your branch keeps the commits of earlier attempts"),
        "{}",
        prompt("B")
    );
    assert!(!prompt("A").contains("earlier attempts"), "{}", prompt("A"));
}

#[test]
fn the_agent_gets_its_prompt_and_variables() {
    let env = setup(
        "commit.sh",
        "",
        "[[task]]\nid = \"T1\"\ntitle = \"Add a parser\"\ndescription = \"Parse the input.\"\nacceptance = [\"tests pass\"]\nowner = \"ana\"\n",
    );
    env.configure(
        "commit.sh",
        &format!("[agents.env]\ncommand = [{:?}]", env.agent("env.sh")),
    );
    env.write("plan.toml", "[[task]]\nid = \"T1\"\ntitle = \"Add a parser\"\ndescription = \"Parse the input.\"\nacceptance = [\"tests pass\"]\nagent = \"env\"\n");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let run_dir = env.repo().join(".orchestrator/runs/T1/1");
    let vars = fs::read_to_string(run_dir.join("prompt.md.env")).unwrap();
    let names: Vec<&str> = vars.lines().map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "ORCH_ATTEMPT",
            "ORCH_BRANCH",
            "ORCH_COMMITS_FILE",
            "ORCH_PROMPT_FILE",
            "ORCH_RESULT_FILE",
            "ORCH_STATE_DIR",
            "ORCH_TARGET",
            "ORCH_TASK_ID",
            "ORCH_TASK_TITLE",
            "ORCH_WORKTREE"
        ]
    );
    assert!(vars.contains("ORCH_TASK_TITLE=Add a parser\n"));
    assert!(vars.contains("ORCH_BRANCH=orch/T1\n"));
    let result_file = env
        .root()
        .join("repo.worktrees/T1/.orchestrator/result.json");
    assert!(
        vars.contains(&format!("ORCH_RESULT_FILE={}\n", result_file.display())),
        "the report goes inside the worktree, where a sandboxed agent can write: {vars}"
    );
    let prompt = fs::read_to_string(run_dir.join("prompt.md")).unwrap();
    let seen = env.git(&env.repo(), ["show", "orch/T1:prompt-seen.txt"]);
    assert_eq!(seen, prompt, "the prompt arrives on stdin");
    assert!(prompt.contains("# Add a parser"), "{prompt}");
    assert!(prompt.contains("Parse the input."), "{prompt}");
    assert!(prompt.contains("- tests pass"), "{prompt}");
}

#[test]
fn subtasks_run_one_agent_each_in_order() {
    let plan = "[[task]]\nid = \"T1\"\n[[task.subtask]]\nid = \"S2\"\ndepends_on = [\"S1\"]\n[[task.subtask]]\nid = \"S1\"\n";
    let env = setup("commit.sh", "", plan);
    env.edit_config("max_parallel = 2", "max_parallel = 2\nunit = \"subtask\"");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "awaiting_merge");
    assert_eq!(env.status_of("T1.S1"), "done");
    assert_eq!(env.status_of("T1.S2"), "done");
    let log = env.git(&env.repo(), ["log", "--format=%s", "main..orch/T1"]);
    assert_eq!(log, "Add work-T1_S2.txt\nAdd work-T1_S1.txt\n");
}

#[test]
fn a_failing_subtask_fails_its_task() {
    let plan = "[[task]]\nid = \"T1\"\n[[task.subtask]]\nid = \"S1\"\n[[task.subtask]]\nid = \"S2\"\nagent = \"bad\"\n[[task.subtask]]\nid = \"S3\"\n";
    let env = setup(
        "commit.sh",
        &format!(
            "[agents.bad]\ncommand = [{:?}]",
            TestEnv::new().agent("fail-permanent.sh")
        ),
        plan,
    );
    env.edit_config("max_parallel = 2", "max_parallel = 2\nunit = \"subtask\"");
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    assert_eq!(env.status_of("T1.S1"), "done");
    assert_eq!(env.status_of("T1.S2"), "failed");
    assert_eq!(env.status_of("T1.S3"), "");
    assert_eq!(env.status_of("T1"), "failed");
    assert_eq!(
        env.state()["items"]["T1"]["reason"],
        "subtask `T1.S2` failed"
    );
}

#[test]
fn worktrees_are_recycled_keeping_ignored_files() {
    let plan = "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\n";
    let env = setup("commit.sh", "", plan);
    env.write(".gitignore", "cache/\n");
    env.git(&env.repo(), ["add", ".gitignore"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "ignore cache"]);
    env.configure("cache.sh", "");
    env.edit_config("max_parallel = 2", "max_parallel = 1");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let list = env.git(&env.repo(), ["worktree", "list", "--porcelain"]);
    assert_eq!(
        list.matches("worktree ").count(),
        2,
        "one recycled worktree besides the main one:\n{list}"
    );
    let state = env.state();
    let last = state["items"]["C"]["worktree"].as_str().unwrap();
    assert!(state["items"]["A"]["worktree"].is_null());
    let admin = fs::read_to_string(format!("{last}/.git")).unwrap();
    assert!(
        admin.trim_end().ends_with("/.git/worktrees/C"),
        "the git admin folder is named after the task using the worktree: {admin}"
    );
    assert!(env.git_ok(Path::new(last), ["status"]));
    assert!(list.contains("branch refs/heads/orch/C"), "{list}");
    assert_eq!(
        fs::read_to_string(format!("{last}/cache/seen")).unwrap(),
        "A\nB\nC\n"
    );
    let readme = fs::metadata(format!("{last}/README.md"))
        .unwrap()
        .modified()
        .unwrap();
    let c_started = env
        .events()
        .iter()
        .find(|e| e["event"] == "task.started" && e["id"] == "C")
        .and_then(|e| humantime::parse_rfc3339(e["ts"].as_str().unwrap()).ok())
        .unwrap();
    assert!(
        readme < c_started,
        "an unchanged file is not rewritten when the worktree is recycled"
    );
    for task in ["A", "B", "C"] {
        assert_eq!(rev_count(&env, &format!("main..orch/{task}")), 1, "{task}");
        let files = env.git(
            &env.repo(),
            ["show", "--name-only", "--format=", &format!("orch/{task}")],
        );
        assert_eq!(
            files,
            format!("work-{task}.txt\n"),
            "each branch holds only its own work"
        );
    }
}

#[test]
fn a_dirty_worktree_is_never_recycled() {
    let plan = "[[task]]\nid = \"A\"\nexpect_changes = false\n[[task]]\nid = \"B\"\n";
    let env = setup("uncommitted.sh", "", plan);
    let config = fs::read_to_string(env.repo().join(".orchestrator.toml")).unwrap();
    let config = config
        .replace("max_parallel = 2", "max_parallel = 1\nauto_commit = false")
        .replace(
            "[hooks]",
            &format!(
                "[agents.commit]\ncommand = [{:?}]\n\n[hooks]",
                env.agent("commit.sh")
            ),
        );
    env.write(".orchestrator.toml", &config);
    env.write("plan.toml", "[[task]]\nid = \"A\"\npriority = 0\nexpect_changes = false\n[[task]]\nid = \"B\"\npriority = 1\nagent = \"commit\"\n");
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let state = env.state();
    let a = state["items"]["A"]["worktree"].as_str().unwrap().to_owned();
    let b = state["items"]["B"]["worktree"].as_str().unwrap().to_owned();
    assert_ne!(a, b);
    let dirty = env.git(std::path::Path::new(&a), ["status", "--porcelain"]);
    assert!(
        dirty.contains("left-A.txt"),
        "A's uncommitted work is untouched: {dirty}"
    );
}

#[test]
fn a_worktree_a_commit_hook_wrote_in_after_orch_committed_is_not_recycled() {
    // Orch's commit of an agent's leftovers runs the repository's hooks; one
    // that writes a file leaves the worktree changed right after the
    // collection, which the next task's recycle must see (a review found
    // the recycle trusting the collection's look there).
    let plan = "[[task]]\nid = \"A\"\npriority = 0\n[[task]]\nid = \"B\"\npriority = 1\n";
    let env = setup("uncommitted.sh", "", plan);
    env.edit_config("max_parallel = 2", "max_parallel = 1");
    let hook = env.repo().join(".git/hooks/post-commit");
    fs::write(
        &hook,
        "#!/bin/sh\ndate +%s%N > \"hook-$(date +%s%N).txt\"\n",
    )
    .unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let state = env.state();
    let a = state["items"]["A"]["worktree"].as_str();
    let a = a.expect("A's worktree, changed by the hook, was recycled for B");
    assert_ne!(Some(a), state["items"]["B"]["worktree"].as_str());
    let left = env.git(Path::new(a), ["status", "--porcelain"]);
    assert!(
        left.contains("?? hook-"),
        "the hook's file stays in A's worktree: {left}"
    );
    let files = env.git(&env.repo(), ["show", "--name-only", "--format=", "orch/B"]);
    assert!(
        !files
            .lines()
            .any(|f| f.starts_with("hook-") && left.contains(f)),
        "B's commit holds none of the files the hook wrote in A's worktree: {files}"
    );
}

#[test]
fn prompt_templates_can_be_overridden_and_a_broken_one_is_named() {
    let env = setup(
        "commit.sh",
        "",
        "[[task]]\nid = \"T1\"\ntitle = \"Tidy\"\nowner = \"ana\"\n",
    );
    env.write(
        ".orchestrator/templates/task.md",
        "Do {{ task.id }} ({{ task.title }}) for {{ task.extra.owner }} on {{ branch }}.\n",
    );
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let prompt = fs::read_to_string(env.repo().join(".orchestrator/runs/T1/1/prompt.md")).unwrap();
    assert_eq!(prompt, "Do T1 (Tidy) for ana on orch/T1.\n");

    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    env.write(
        ".orchestrator/templates/task.md",
        "{{ task.nope.deeper }}\n",
    );
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1));
    let reason = env.state()["items"]["T1"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.starts_with("cannot render prompt template `"),
        "{reason}"
    );
    assert!(
        reason.contains(".orchestrator/templates/task.md`"),
        "{reason}"
    );
}

#[test]
fn a_stale_worktree_entry_is_pruned_before_the_task_starts() {
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n");
    let path = env.root().join("repo.worktrees/T1");
    env.git(
        &env.repo(),
        [
            "worktree",
            "add",
            "-q",
            "-b",
            "elsewhere",
            path.to_str().unwrap(),
        ],
    );
    fs::remove_dir_all(&path).unwrap();
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let list = env.git(&env.repo(), ["worktree", "list", "--porcelain"]);
    assert!(list.contains("branch refs/heads/orch/T1"), "{list}");
    assert!(!list.contains("prunable"), "{list}");
}

#[test]
fn lifecycle_hooks_prepare_each_worktree_and_tidy_after_the_agent() {
    let env = TestEnv::new();
    let (outside, allow) = env.outside();
    let log = outside.join("created.log");
    let extra = format!(
        "[hooks]\ninstall = false\npost_create = [\"echo \\\"$ORCH_TASK_ID $ORCH_ATTEMPT $(basename \\\"$PWD\\\") $ORCH_WORKTREE\\\" >> '{}'\"]\npost_agent = [\"echo \\\"tidied by $ORCH_TASK_ID\\\" > TIDY.txt\"]\n{allow}",
        log.display()
    );
    env.init_repo();
    env.configure("commit.sh", "");
    env.edit_config("[hooks]\ninstall = false\n", &extra);
    env.write(
        "plan.toml",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\n",
    );
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let mut lines: Vec<String> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    let wt = |id: &str| {
        env.root()
            .join("repo.worktrees")
            .join(id)
            .display()
            .to_string()
    };
    assert_eq!(
        lines,
        [
            format!("A 1 A {}", wt("A")),
            format!("B 1 B {}", wt("B")),
            format!("C 1 C {}", wt("C")),
        ],
        "post_create ran once in each task's worktree"
    );
    for id in ["A", "B", "C"] {
        let tidy = env.git(&env.repo(), ["show", &format!("orch/{id}:TIDY.txt")]);
        assert_eq!(
            tidy,
            format!("tidied by {id}\n"),
            "post_agent's work was committed"
        );
    }
}

#[test]
fn a_failing_post_create_fails_the_attempt_and_runs_again_on_the_retry() {
    let env = TestEnv::new();
    let (outside, allow) = env.outside();
    let flag = outside.join("first-time-done");
    env.init_repo();
    env.configure("commit.sh", &format!("[retry]\nmax_attempts = 2\n{allow}"));
    let hook = format!(
        "[hooks]\ninstall = false\npost_create = [\"test -f '{0}' || {{ touch '{0}'; echo not yet; exit 5; }}\"]\n",
        flag.display()
    );
    env.edit_config("[hooks]\ninstall = false\n", &hook);
    env.write("plan.toml", "[[task]]\nid = \"T1\"\n");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let attempts = &env.state()["items"]["T1"]["attempts"];
    let reason = attempts[0]["outcome"]["reason"].as_str().unwrap();
    let log = env.repo().join(".orchestrator/runs/T1/1/post_create.log");
    assert_eq!(
        reason,
        format!(
            "post_create hook `test -f '{0}' || {{ touch '{0}'; echo not yet; exit 5; }}` failed (exit code 5); log: {1}",
            flag.display(),
            log.display()
        )
    );
    assert_eq!(fs::read_to_string(&log).unwrap(), "not yet\n");
    assert_eq!(attempts[1]["outcome"]["kind"], "succeeded");
    assert!(
        env.repo()
            .join(".orchestrator/runs/T1/2/post_create.log")
            .exists(),
        "post_create ran again in the worktree the task kept"
    );
    assert_eq!(env.status_of("T1"), "awaiting_merge");
}

#[test]
fn a_failing_post_agent_fails_the_attempt_and_leaves_the_work_uncommitted() {
    let env = setup(
        "uncommitted.sh",
        "[retry]\nmax_attempts = 1\n",
        "[[task]]\nid = \"T1\"\n",
    );
    env.edit_config(
        "[hooks]\ninstall = false\n",
        "[hooks]\ninstall = false\npost_agent = [\"echo lint failed >&2; exit 1\"]\n",
    );
    let out = run(&env);
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    let reason = env.state()["items"]["T1"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason
            .contains("post_agent hook `echo lint failed >&2; exit 1` failed (exit code 1); log: "),
        "{reason}"
    );
    let status = env.git(
        &env.root().join("repo.worktrees/T1"),
        ["status", "--porcelain"],
    );
    assert!(!status.is_empty(), "the agent's work stays in the worktree");
}

#[test]
fn issue_7_a_recycle_cut_short_by_a_crash_is_finished_on_restart() {
    // A crash between `git worktree move` and the switch to the new task's
    // branch leaves a clean worktree of the repository at the new task's
    // path, still on the old branch. The next provisioning finishes the job.
    let env = setup("commit.sh", "", "[[task]]\nid = \"A\"\n");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    let worktrees = env.root().join("repo.worktrees");
    env.git(
        &env.repo(),
        [
            "worktree",
            "move",
            worktrees.join("A").to_str().unwrap(),
            worktrees.join("B").to_str().unwrap(),
        ],
    );
    env.write("plan.toml", "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n");
    let out = run(&env);
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("B"), "awaiting_merge");
    let branch = env.git(&worktrees.join("B"), ["branch", "--show-current"]);
    assert_eq!(branch.trim(), "orch/B");
    assert_eq!(
        rev_count(&env, "main..orch/A"),
        1,
        "A's work is still on its branch"
    );
}

#[test]
fn issue_7_a_worktree_removed_under_a_running_agent_is_retried() {
    let env = setup(
        "slow.sh",
        "[agent.env]\nSLOW_SECONDS = \"1\"\n",
        "[[task]]\nid = \"T1\"\n",
    );
    let mut child = env
        .orch()
        .args(["run", "--no-merge"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wt = env.root().join("repo.worktrees/T1");
    assert!(crate::common::wait_until(crate::common::DEADLINE, || env
        .agent_groups()
        .len()
        == 1));
    fs::remove_dir_all(&wt).unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the retry made a new worktree and finished: {}",
        env.run(["status", "T1"])
    );
    let attempts = &env.state()["items"]["T1"]["attempts"];
    assert_eq!(attempts[0]["outcome"]["kind"], "failed");
    let reason = attempts[0]["outcome"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("is gone; the branch keeps what the agent committed"),
        "{reason}"
    );
    assert_eq!(attempts[1]["outcome"]["kind"], "succeeded");
}

/// Two tasks, the second needing the first merged, so even with merging on
/// the lines come in one order.
const CHAIN: &str = "[[task]]\nid = \"A\"\ntitle = \"Lay the groundwork\"\n[[task]]\nid = \"B\"\ndepends_on = [\"A\"]\n";

#[test]
fn a_successful_run_prints_progress_and_a_summary() {
    let env = setup("commit.sh", "", CHAIN);
    let _filters = stable_output().bind_to_scope();
    insta::assert_snapshot!(env.run(["run", "--max-parallel", "1"]), @"
    ------- stderr -------
    [MM:SS] Starting: 2 tasks on target `main`.
    [MM:SS] started   A  attempt 1: Lay the groundwork
    [MM:SS] done      A  attempt 1, [DURATION], 1 commit
    [MM:SS] merged    A  [OID]
    [MM:SS] started   B  attempt 1: B
    [MM:SS] done      B  attempt 1, [DURATION], 1 commit
    [MM:SS] merged    B  [OID]
    Finished in [DURATION]: 2 merged (2 attempts).
    ");
}

#[test]
fn a_failed_task_is_reported_and_the_run_exits_1() {
    let env = setup("fail-permanent.sh", "", CHAIN);
    let _filters = stable_output().bind_to_scope();
    insta::assert_snapshot!(env.run(["run", "--max-parallel", "1"]), @"
    ------- stderr -------
    [MM:SS] Starting: 2 tasks on target `main`.
    [MM:SS] started   A  attempt 1: Lay the groundwork
    [MM:SS] failed    A  attempt 1: exit code 2, which `retry.permanent_exit_codes` lists
    [MM:SS] blocked   B: required dependency `A` is failed
    Finished in [DURATION]: 1 failed, 1 blocked (1 attempt).
    error: the run ended with failed, blocked or conflicted tasks
    hint: see `orch status` for the reasons; `orch retry ID` runs a task again
    [exit status: 1]
    ");
}

#[test]
fn run_json_prints_each_event_as_a_line_and_nothing_else() {
    let env = setup("commit.sh", "", CHAIN);
    let _filters = stable_output().bind_to_scope();
    let out = env
        .orch()
        .args(["run", "--json", "--max-parallel", "1"])
        .output()
        .unwrap();
    let file = fs::read_to_string(env.repo().join(".orchestrator/events.jsonl")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        file,
        "each line as the file has it"
    );
    insta::assert_snapshot!(env.render(&out), @r#"
    {"seq":1,"ts":"[TIME]","event":"run.started","pid":[N],"target":"main","tasks":2,"no_merge":false,"plan_digest":"732a144b5b0fbd4335a6e6c9202eec5d422a9720b4f99696a821e2d544d198e4","sandbox":{"mode":"confined","abi":[N],"network":"open"}}
    {"seq":2,"ts":"[TIME]","event":"task.ready","id":"A"}
    {"seq":3,"ts":"[TIME]","event":"task.started","id":"A","attempt":1,"title":"Lay the groundwork","confined":true}
    {"seq":4,"ts":"[TIME]","event":"task.completed","id":"A","attempt":1,"commits":1,"log":[["[OID]","Add work-A.txt"]],"duration_ms":[N]}
    {"seq":5,"ts":"[TIME]","event":"merge.started","id":"A","branch":"orch/A","tip":"[OID]","strategy":"merge"}
    {"seq":6,"ts":"[TIME]","event":"task.merged","id":"A","commit":"[OID]","onto":"[OID]","strategy":"merge","backup":null,"branch_deleted":true,"merge_ms":[N]}
    {"seq":7,"ts":"[TIME]","event":"task.ready","id":"B"}
    {"seq":8,"ts":"[TIME]","event":"task.started","id":"B","attempt":1,"title":"B","confined":true}
    {"seq":9,"ts":"[TIME]","event":"task.completed","id":"B","attempt":1,"commits":1,"log":[["[OID]","Add work-B.txt"]],"duration_ms":[N]}
    {"seq":10,"ts":"[TIME]","event":"merge.started","id":"B","branch":"orch/B","tip":"[OID]","strategy":"merge"}
    {"seq":11,"ts":"[TIME]","event":"task.merged","id":"B","commit":"[OID]","onto":"[OID]","strategy":"merge","backup":null,"branch_deleted":true,"merge_ms":[N]}
    {"seq":12,"ts":"[TIME]","event":"run.finished","elapsed_ms":[N],"attempts":2,"interrupted":false,"counts":{"merged":2},"cpu_ms":[N],"peak_rss_kb":[N],"state_writes":[N],"state_bytes":[N]}
    "#);
}
