//! Agents and checks on a real Slurm cluster (docs/scaling.md): one
//! single-node cluster, started by `scripts/slurm-up` for this test binary
//! and stopped when it exits, shared by every test here.
//!
//! Where Slurm cannot be had (not root, no apt), each test prints a
//! `SKIPPED:` line on stderr and returns; with `ORCH_REQUIRE_SLURM=1` (CI)
//! it fails instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::common::{DEADLINE, TestEnv, wait_until};

/// The fixture cluster: its `slurm.conf`, or why there is none.
fn cluster() -> Result<&'static Path, &'static str> {
    static CLUSTER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("orch-slurm-{}", std::process::id()));
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-up");
            let started = std::time::Instant::now();
            let out = Command::new(script)
                .arg(&dir)
                .arg(std::process::id().to_string())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run scripts/slurm-up: {e}"))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let conf = stdout
                .lines()
                .find_map(|l| l.strip_prefix("SLURM_CONF="))
                .filter(|_| out.status.success());
            match conf {
                Some(conf) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "slurm: fixture cluster up in {:.1?}",
                        started.elapsed()
                    );
                    Ok(PathBuf::from(conf))
                }
                None => Err(format!(
                    "scripts/slurm-up failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            }
        })
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(String::as_str)
}

/// Returns the cluster's config, or says loudly why the test is skipped.
fn need_cluster(test: &str) -> Option<&'static Path> {
    match cluster() {
        Ok(conf) => Some(conf),
        Err(why) if std::env::var_os("ORCH_REQUIRE_SLURM").is_some() => {
            panic!("{test}: Slurm is required (ORCH_REQUIRE_SLURM) but: {why}")
        }
        Err(why) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test}: no Slurm cluster: {why}"
            );
            None
        }
    }
}

/// `orch` pointed at the cluster.
fn orch(env: &TestEnv, conf: &Path) -> Command {
    let mut cmd = env.orch();
    cmd.env("SLURM_CONF", conf);
    cmd
}

/// A Slurm command pointed at the cluster; returns its stdout.
fn slurm(conf: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const FAN: &str = "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\n\
                   [[task]]\nid = \"D\"\ndepends_on = [\"A\", \"B\", \"C\"]\n";

const CHECK: &str = "[policy]\nchecks = [{ name = \"cluster\", run = \"test -n \\\"$SLURM_JOB_ID\\\" && test -f README.md && echo job=$SLURM_JOB_ID\", timeout = \"2m\" }]\n";

fn setup(script: &str, executor: &str, plan: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(script, executor);
    env.write("plan.toml", plan);
    env
}

/// Returns the job name recorded in an attempt's `spec.json`.
fn job_name(env: &TestEnv, unit: &str, attempt: u32) -> String {
    let spec = env
        .repo()
        .join(format!(".orchestrator/runs/{unit}/{attempt}/spec.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    v["job"]["name"].as_str().unwrap().to_owned()
}

/// Returns what an attempt's job runs on its node, from its `spec.json`
/// (after the git workspace's `sh -c <script> orch-job`).
fn job_argv(env: &TestEnv, unit: &str, attempt: u32) -> Vec<String> {
    let spec = env
        .repo()
        .join(format!(".orchestrator/runs/{unit}/{attempt}/spec.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    let argv: Vec<String> = v["job"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    match argv.iter().position(|a| a == "orch-job") {
        Some(at) => argv[at + 1..].to_vec(),
        None => argv,
    }
}

/// Returns every `job.json` of the run, for failure messages.
fn slurm_jobs(env: &TestEnv) -> String {
    let mut out = String::new();
    for task in ["A", "B", "C", "D"] {
        let dir = env.repo().join(format!(".orchestrator/runs/{task}/1"));
        out += &format!(
            "{task}: {} {}\n",
            std::fs::read_to_string(dir.join("job.json")).unwrap_or_default(),
            job_name(env, task, 1)
        );
    }
    out
}

/// Returns the tasks the event log places on a node.
fn placed_on_nodes(env: &TestEnv) -> Vec<String> {
    env.events()
        .iter()
        .filter(|e| e["event"] == "task.placed" && e["node"].is_string())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks a fan-out/fan-in run that went through Slurm: every task
/// merged, each agent ran in a job (the file it committed says which, and
/// where), the state and the events record the job and its node, and the
/// check ran on the cluster.
fn assert_merged_through_slurm(env: &TestEnv, workspace_of: impl Fn(&str) -> String) {
    for task in ["A", "B", "C", "D"] {
        assert_eq!(env.status_of(task), "merged", "{task}");
        let text = env.git(&env.repo(), ["show", &format!("main:where-{task}.txt")]);
        let job = text
            .lines()
            .find_map(|l| l.strip_prefix("job="))
            .unwrap()
            .to_owned();
        assert!(
            job.parse::<u64>().is_ok(),
            "{task} ran outside Slurm: {text}"
        );
        let pwd = text.lines().find_map(|l| l.strip_prefix("pwd=")).unwrap();
        assert!(pwd.starts_with(&workspace_of(task)), "{task} ran in {pwd}");
        assert!(
            text.contains("prompt=You are"),
            "{task} got its prompt: {text}"
        );
        let attempt = &env.state()["items"][task]["attempts"][0];
        assert_eq!(attempt["job"]["executor"], "slurm", "{attempt}");
        assert_eq!(
            attempt["job"]["id"],
            job.as_str(),
            "{task}: {attempt}\n{}",
            slurm_jobs(env),
        );
        assert!(attempt["job"]["node"].is_string(), "{attempt}");
        assert_eq!(
            env.state()["items"][task]["summary"],
            format!("ran in job {job}"),
            "the result file came back"
        );
        assert_eq!(attempt["confined"], true, "{attempt}");
        let argv = job_argv(env, task, 1);
        assert_eq!(argv[1], "__confine", "confined on its node: {argv:?}");
    }
    let mut placed = placed_on_nodes(env);
    placed.sort();
    placed.dedup();
    assert_eq!(placed, ["A", "B", "C", "D"]);
    let log =
        std::fs::read_to_string(env.repo().join(".orchestrator/checks/D/cluster.log")).unwrap();
    assert!(log.starts_with("job="), "the check ran in a job: {log}");
}

#[test]
fn a_fan_out_fan_in_plan_runs_through_slurm_on_a_shared_filesystem() {
    let Some(conf) = need_cluster("slurm shared workspace") else {
        return;
    };
    let env = setup(
        "where.sh",
        &format!(
            "[executor]\nkind = \"slurm\"\nworkspace = \"shared\"\n\n[merge]\nexecutor = \"slurm\"\n\n{CHECK}"
        ),
        FAN,
    );
    let out = orch(&env, conf)
        .args(["run", "--max-parallel", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let worktrees = env.root().join("repo.worktrees");
    assert_merged_through_slurm(&env, |task| worktrees.join(task).display().to_string());
}

#[test]
fn a_fan_out_fan_in_plan_runs_through_slurm_with_the_git_workspace() {
    let Some(conf) = need_cluster("slurm git workspace") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    let remote = env.root().join("remote.git");
    env.git(
        &env.root(),
        ["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    let scratch = env.root().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    env.configure(
        "where.sh",
        &format!(
            "[executor]\nkind = \"slurm\"\nworkspace = \"git\"\nremote = {remote:?}\nscratch = {scratch:?}\n\n\
             [merge]\nexecutor = \"slurm\"\non_conflict = \"stop\"\n\n{CHECK}"
        ),
    );
    env.write("plan.toml", FAN);
    let out = orch(&env, conf)
        .args(["run", "--max-parallel", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_merged_through_slurm(&env, |_| scratch.display().to_string());
    let prompt =
        std::fs::read_to_string(env.repo().join(".orchestrator/runs/A/1/prompt.md")).unwrap();
    assert!(
        prompt.contains("You are in `$ORCH_WORKTREE`")
            && prompt.contains("report to\n  `$ORCH_RESULT_FILE`"),
        "the prompt names the clone on the node: {prompt}"
    );
    let heads = env.git(&env.root(), ["ls-remote", remote.to_str().unwrap()]);
    for task in ["A", "B", "C", "D"] {
        assert!(
            heads.contains(&format!("refs/heads/orch/{task}")),
            "{heads}"
        );
    }
    assert!(
        !heads.contains("refs/orch/results/"),
        "result refs are removed: {heads}"
    );
    let left: Vec<_> = std::fs::read_dir(&scratch).unwrap().collect();
    assert!(left.is_empty(), "clones left on the node: {left:?}");
}

#[test]
fn a_cancelled_job_leaves_nothing_in_the_queue() {
    let Some(conf) = need_cluster("slurm cancel") else {
        return;
    };
    let env = setup(
        "hang.sh",
        "[executor]\nkind = \"slurm\"\n",
        "[[task]]\nid = \"T1\"\n",
    );
    let mut run = orch(&env, conf)
        .args(["run", "--no-merge"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(DEADLINE, || placed_on_nodes(&env)
            .contains(&"T1".to_owned())),
        "the job never ran"
    );
    let name = job_name(&env, "T1", 1);
    assert!(slurm(conf, "squeue", &["-h", "-n", &name, "-o", "%T"]).contains("RUNNING"));
    let out = orch(&env, conf).args(["cancel", "T1"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    run.wait().unwrap();
    assert_eq!(env.status_of("T1"), "cancelled");
    let queued = || slurm(conf, "squeue", &["-h", "-n", &name, "-o", "%i %T"]);
    assert!(
        wait_until(DEADLINE, || queued().trim().is_empty()),
        "still queued: {}",
        queued()
    );
    env.assert_no_agent_left();
}

#[test]
fn a_coordinator_killed_while_jobs_run_adopts_them_on_restart() {
    // A is adopted through its supervisor; B, whose supervisor is killed
    // too, is settled from what the cluster says of its job.
    let Some(conf) = need_cluster("slurm adoption") else {
        return;
    };
    let env = setup(
        "slow.sh",
        "[executor]\nkind = \"slurm\"\n\n[agent.env]\nSLOW_SECONDS = \"4\"\n",
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
    );
    let mut first = orch(&env, conf)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(DEADLINE, || placed_on_nodes(&env).len() >= 2),
        "the jobs never ran"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    for task in ["A", "B"] {
        let name = job_name(&env, task, 1);
        let state = slurm(conf, "squeue", &["-h", "-n", &name, "-o", "%T"]);
        assert!(
            state.contains("RUNNING") || state.contains("COMPLETING"),
            "{task}'s job died with the coordinator: {state:?}"
        );
    }
    // B's whole side on this machine dies too (supervisor, `orch __job`,
    // `srun`): Slurm ends its job, and the restart must learn that from
    // the cluster, not from a supervisor.
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.repo().join(".orchestrator/runs/B/1/supervisor.json"))
            .unwrap(),
    )
    .unwrap();
    let kill = |pid: i64| {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &pid.to_string()])
            .status();
    };
    // The supervisor first: killed after its `srun`, it could still see that
    // death and report it in `exit.json` (a failure, not an interruption).
    kill(info["pid"].as_i64().unwrap());
    kill(-info["agent_pgid"].as_i64().unwrap());
    let out = orch(&env, conf).arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("A"), "merged");
    let attempts = env.state()["items"]["A"]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        attempts.len(),
        1,
        "A was adopted, not run again: {attempts:?}"
    );
    assert!(attempts[0]["job"]["id"].is_string(), "{attempts:?}");
    assert_eq!(env.status_of("B"), "merged");
    let attempts = env.state()["items"]["B"]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(
        attempts[0]["outcome"]["kind"], "interrupted",
        "{attempts:?}"
    );
    let job: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.repo().join(".orchestrator/runs/B/1/job.json")).unwrap(),
    )
    .unwrap();
    assert!(
        job["state"].is_string(),
        "the cluster's account of B's first job is recorded: {job}"
    );
    let name = job_name(&env, "B", 1);
    let queued = || slurm(conf, "squeue", &["-h", "-n", &name, "-o", "%i %T"]);
    assert!(
        wait_until(DEADLINE, || queued().trim().is_empty()),
        "B's orphaned job is cancelled: {}",
        queued()
    );
    let interrupted: Vec<_> = env
        .events()
        .into_iter()
        .filter(|e| e["event"] == "task.interrupted")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(interrupted, ["B"]);
}

#[test]
fn a_job_killed_at_its_time_limit_is_a_timeout() {
    let Some(conf) = need_cluster("slurm time limit") else {
        return;
    };
    // Slurm counts time limits in minutes and checks them every 30
    // seconds or so: this test takes a minute or more.
    let env = setup(
        "hang.sh",
        "[executor]\nkind = \"slurm\"\n\n[retry]\nmax_attempts = 1\n",
        "[[task]]\nid = \"T1\"\n",
    );
    env.edit_config("max_parallel = 2", "max_parallel = 2\ntimeout = \"5s\"");
    let out = orch(&env, conf)
        .args(["run", "--no-merge"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "failed");
    let reason = env.state()["items"]["T1"]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.starts_with("timed out after 5s (Slurm job ") && reason.contains("time limit"),
        "{reason}"
    );
    let job: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.repo().join(".orchestrator/runs/T1/1/job.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(job["reason"], "TimeLimit", "{job}");
}

#[test]
fn doctor_proves_the_nodes_see_the_workspace() {
    let Some(conf) = need_cluster("slurm doctor") else {
        return;
    };
    let env = setup(
        "commit.sh",
        "[executor]\nkind = \"slurm\"\nworkspace = \"shared\"\n\n\
         [agents.remote]\ncommand = [\"no-such-agent-cli\"]\n",
        "[[task]]\nid = \"T1\"\nagent = \"remote\"\n",
    );
    let out = orch(&env, conf).arg("doctor").output().unwrap();
    let text = env.render(&out);
    assert!(
        text.contains("a Slurm probe job reached `$TEMP/repo.worktrees` and `.orchestrator`"),
        "{text}"
    );
    assert!(
        text.contains(
            "warn  config    `agents.remote`: `no-such-agent-cli` is not on this machine's PATH; Slurm jobs run it on their nodes"
        ),
        "an agent only the nodes have is no error here: {text}"
    );
    assert!(
        text.contains("Slurm jobs' agents are confined on their nodes (")
            && text.contains(": Landlock ABI "),
        "{text}"
    );
    let left: Vec<_> = std::fs::read_dir(env.root().join("repo.worktrees"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "the marker is removed: {left:?}");

    let missing = env.root().join("no-such-remote.git");
    env.edit_config(
        "workspace = \"shared\"",
        &format!("workspace = \"git\"\nremote = {missing:?}\n\n[merge]\non_conflict = \"stop\""),
    );
    let out = orch(&env, conf).arg("doctor").output().unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("a Slurm probe job could not reach the remote"),
        "{text}"
    );
}

#[test]
fn issue_12_a_slurm_jobs_agent_is_confined_on_its_node() {
    // The agent runs on the node under `orch __confine`, not under the
    // supervisor: it is refused what a local agent is refused, its own
    // commit goes through orch's git hooks into the shared run folder, and
    // the supervisor on this machine moves it into the log.
    let Some(conf) = need_cluster("slurm sandbox") else {
        return;
    };
    let env = crate::sandbox::setup("[executor]\nkind = \"slurm\"\n");
    let out = orch(&env, conf).arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T2"), "merged");
    crate::sandbox::assert_refused_all_but_its_own(&env);
    assert!(!env.repo().join("escaped.txt").exists());
    assert!(!env.root().join("home/escaped.txt").exists());
    let attempt = &env.state()["items"]["T2"]["attempts"][0];
    assert!(
        attempt["job"]["id"].is_string(),
        "it ran as a job: {attempt}"
    );
    assert_eq!(attempt["confined"], true, "{attempt}");
    assert_eq!(job_argv(&env, "T2", 1)[1], "__confine");
    let work = env.git(
        &env.repo(),
        [
            "log",
            "main",
            "--format=%H",
            "--grep",
            "Add work-escape.txt",
        ],
    );
    assert!(
        env.events().iter().any(|e| e["event"] == "task.commit"
            && e["id"] == "T2"
            && e["via"] == "hook"
            && e["commit"] == work.trim()),
        "the hook's commit reached the log: {:#?}",
        env.events()
    );
}

#[test]
fn issue_12_a_node_that_cannot_confine_runs_no_agent_and_says_so() {
    // The job sees a kernel without Landlock (this machine's still has
    // it): the agent must not run unconfined there, nor be retried.
    let Some(conf) = need_cluster("slurm sandbox refused") else {
        return;
    };
    let no_landlock = format!("--export=ALL,{}=0", orch::sandbox::TEST_ABI_VAR);
    let env = setup(
        "commit.sh",
        &format!("[executor]\nkind = \"slurm\"\nextra_args = [{no_landlock:?}]\n"),
        "[[task]]\nid = \"T1\"\n",
    );
    let out = orch(&env, conf)
        .args(["run", "--no-merge"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "failed");
    let item = &env.state()["items"]["T1"];
    assert_eq!(item["attempts"].as_array().unwrap().len(), 1, "{item}");
    let reason = item["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("cannot run the job: the node `") && reason.contains("cannot confine"),
        "{reason}"
    );
    let log =
        std::fs::read_to_string(env.repo().join(".orchestrator/runs/T1/1/agent.log")).unwrap();
    assert!(
        log.contains("cannot confine the agent on `") && log.contains("the kernel has no Landlock"),
        "{log}"
    );
    assert!(
        !env.git_ok(
            &env.repo(),
            ["rev-parse", "--verify", "-q", "orch/T1:work-T1.txt"]
        ),
        "the agent did not run"
    );

    let out = orch(&env, conf).arg("doctor").output().unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("Slurm jobs' agents cannot be confined on their nodes: orch: cannot confine the agent on `")
            && text.contains("the kernel has no Landlock"),
        "{text}"
    );
}

#[test]
fn the_git_workspace_keeps_the_remote_branch_in_step_with_the_trailers_orch_adds() {
    // The clone on the node has no orch hooks, so orch adds the agent's
    // `Orch-Task` trailers when it collects, rewriting the branch here: the
    // next job of the same branch (the second subtask) must still be able
    // to publish it without a force.
    let Some(conf) = need_cluster("slurm git workspace, subtasks") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    let remote = env.root().join("remote.git");
    env.git(
        &env.root(),
        ["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    let scratch = env.root().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    env.configure(
        "where.sh",
        &format!(
            "[executor]\nkind = \"slurm\"\nworkspace = \"git\"\nremote = {remote:?}\nscratch = {scratch:?}\n\n\
             [merge]\non_conflict = \"stop\"\n"
        ),
    );
    env.edit_config("max_parallel = 2", "max_parallel = 2\nunit = \"subtask\"");
    env.write(
        "plan.toml",
        "[[task]]\nid = \"T\"\n[[task.subtask]]\nid = \"S1\"\n\
         [[task.subtask]]\nid = \"S2\"\ndepends_on = [\"S1\"]\n",
    );
    let out = orch(&env, conf).arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("T"), "merged");
    let log = env.git(&env.repo(), ["log", "main", "--format=%B%x00"]);
    for step in ["T_S1", "T_S2"] {
        let message = log
            .split('\0')
            .find(|m| m.trim_start().starts_with(&format!("Add where-{step}.txt")))
            .unwrap_or_else(|| panic!("{step}'s commit is merged: {log}"));
        assert!(message.contains("Orch-Task: T"), "{message}");
    }
}

#[test]
fn the_git_workspace_hands_a_conflict_back_to_a_job_that_merges_the_target() {
    // Two tasks write the same file; the second to reach the queue
    // conflicts and is handed back: its job merges the target orch pushed
    // (leaving the markers and `MERGE_HEAD` a local hand-back leaves). The
    // agent first exits 0 leaving the markers (the attempt fails: orch
    // learns from the job which files are still in conflict), then
    // resolves and commits the merge, and both land. 1 to 4 s here.
    let Some(conf) = need_cluster("slurm git workspace, conflict hand-back") else {
        return;
    };
    let env = TestEnv::new();
    env.init_repo();
    let remote = env.root().join("remote.git");
    env.git(
        &env.root(),
        ["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    let scratch = env.root().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    env.configure(
        "conflict-late.sh",
        &format!(
            "[executor]\nkind = \"slurm\"\nworkspace = \"git\"\nremote = {remote:?}\nscratch = {scratch:?}\n\n\
             [merge]\non_conflict = \"agent\"\n"
        ),
    );
    env.write("plan.toml", "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n");
    let out = orch(&env, conf)
        .args(["run", "--max-parallel", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("A"), "merged");
    assert_eq!(env.status_of("B"), "merged");
    let events = env.events();
    let conflicted: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "merge.conflicted")
        .collect();
    assert_eq!(conflicted.len(), 1, "one conflict: {events:?}");
    assert_eq!(conflicted[0]["files"], serde_json::json!(["shared.txt"]));
    let second = conflicted[0]["id"].as_str().unwrap().to_owned();
    let first = if second == "A" { "B" } else { "A" };
    let started: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "task.started" && e["id"] == second.as_str())
        .map(|e| e["purpose"].as_str().unwrap_or("work"))
        .collect();
    assert_eq!(started, ["work", "conflict", "conflict"], "{events:?}");
    let retrying = events
        .iter()
        .find(|e| e["event"] == "task.retrying" && e["id"] == second.as_str())
        .unwrap();
    assert_eq!(retrying["attempt"], 2, "{retrying}");
    assert_eq!(
        retrying["reason"], "conflicts left unresolved in shared.txt",
        "{retrying}"
    );
    let unresolved = env
        .repo()
        .join(format!(".orchestrator/runs/{second}/2/unresolved"));
    assert_eq!(
        std::fs::read_to_string(unresolved).unwrap(),
        "shared.txt\n",
        "the job's list is kept in the run folder"
    );
    let attempts = &env.state()["items"][second.as_str()]["attempts"];
    for n in 1..3 {
        let attempt = &attempts[n];
        assert_eq!(attempt["purpose"], "conflict", "{attempt}");
        assert_eq!(attempt["job"]["executor"], "slurm", "{attempt}");
        let prompt = std::fs::read_to_string(
            env.repo()
                .join(format!(".orchestrator/runs/{second}/{}/prompt.md", n + 1)),
        )
        .unwrap();
        assert!(prompt.contains("- `shared.txt`"), "{prompt}");
    }
    // The job merged the target's head as the first task left it, and
    // the merge commit carries orch's trailer.
    let first_landed = env.state()["items"][first]["merge_commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let merges = env.git(
        &env.repo(),
        [
            "log",
            "--merges",
            "--format=%P%x00%B%x00",
            &format!("{first_landed}..main"),
        ],
    );
    let fields: Vec<&str> = merges.split('\0').map(str::trim).collect();
    let merged_target = fields
        .chunks(2)
        .find(|c| c[0].split(' ').nth(1) == Some(first_landed.as_str()))
        .unwrap_or_else(|| panic!("the task branch merged the target ({first_landed}): {merges}"));
    assert!(
        merged_target[1].starts_with(&format!("Merge branch 'main' into orch/{second}"))
            && merged_target[1].contains(&format!("Orch-Task: {second}")),
        "{merges}"
    );
    assert_eq!(
        env.git(&env.repo(), ["show", "main:shared.txt"]),
        "line from A\nline from B\n"
    );
    let worktree = env.root().join(format!("repo.worktrees/{second}"));
    assert!(
        !env.git_ok(
            &worktree,
            ["rev-parse", "--quiet", "--verify", "MERGE_HEAD"]
        ),
        "no merge was left in the task's worktree here"
    );
    let heads = env.git(&env.root(), ["ls-remote", remote.to_str().unwrap()]);
    assert!(
        !heads.contains("refs/orch/"),
        "orch's refs are removed: {heads}"
    );
    // Only the clone whose conflict was left unresolved is kept.
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [format!("orch-{}", job_name(&env, &second, 2))]);
}
