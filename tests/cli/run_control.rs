//! A run under control: cancel through the inbox, retry and resolve on the
//! state file, the lock, Ctrl-C, and SIGKILL of the coordinator.

use std::process::Child;

use rustix::process::{Pid, Signal, kill_process};

use crate::common::{DEADLINE, TestEnv, wait_exit, wait_until};

fn setup(script: &str, extra: &str, plan: &str) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.configure(script, extra);
    env.write("plan.toml", plan);
    env
}

fn spawn_run(env: &TestEnv) -> Child {
    env.spawn(&["run", "--no-merge"])
}

fn signal(child: &Child, sig: Signal) {
    kill_process(Pid::from_raw(child.id() as i32).unwrap(), sig).unwrap();
}

/// Waits until `n` agents have started (their groups are recorded).
fn wait_for_agents(env: &TestEnv, n: usize) {
    assert!(
        wait_until(DEADLINE, || env.agent_groups().len() >= n),
        "{n} agents never started"
    );
}

#[test]
fn cancel_through_the_inbox_stops_the_agent_group() {
    let env = setup(
        "hang.sh",
        "",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\ndepends_on = [\"T1\"]\n",
    );
    let mut run = spawn_run(&env);
    wait_for_agents(&env, 1);
    let out = env.orch().args(["cancel", "T1"]).output().unwrap();
    let text = env.render(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("Cancelled `T1` (by the live run, pid "),
        "{text}"
    );
    let out = wait_exit(&mut run);
    assert_eq!(
        out.status.code(),
        Some(1),
        "T2 is blocked: {}",
        env.render(&out)
    );
    assert_eq!(env.status_of("T1"), "cancelled");
    assert_eq!(env.status_of("T2"), "blocked");
    assert_eq!(
        env.state()["items"]["T1"]["attempts"][0]["outcome"]["kind"],
        "cancelled"
    );
    env.assert_no_agent_left();
}

#[test]
fn retry_and_resolve_without_a_live_run() {
    let plan = "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\ndepends_on = [\"T1\"]\n[[task]]\nid = \"T3\"\ndepends_on = [\"T1\"]\n[[task]]\nid = \"T4\"\n";
    let env = setup("fail-permanent.sh", "", plan);
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(env.status_of("T2"), "blocked");
    insta::assert_snapshot!(env.run(["retry", "T2"]), @"
    ------- stderr -------
    error: cannot retry `T2`: it is `blocked`
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["resolve", "T1"]), @"Resolved `T1`.");
    assert_eq!(env.status_of("T1"), "resolved");
    assert_eq!(env.status_of("T2"), "pending", "unblocked");
    insta::assert_snapshot!(env.run(["cancel", "T3"]), @"Cancelled `T3`.");
    insta::assert_snapshot!(env.run(["retry", "T4"]), @"Retried `T4`.");
    assert_eq!(env.status_of("T4"), "ready");
    env.configure("commit.sh", "");
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(
        env.status_of("T2"),
        "awaiting_merge",
        "T1 resolved satisfies T2"
    );
    assert_eq!(env.status_of("T3"), "cancelled");
    assert_eq!(env.status_of("T4"), "awaiting_merge");
    assert_eq!(
        env.state()["items"]["T4"]["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let kinds: Vec<String> = env
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        "task.retried",
        "task.resolved",
        "task.cancelled",
        "task.unblocked",
    ] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} missing");
    }
}

#[test]
fn a_second_coordinator_is_refused_with_the_holders_pid() {
    let env = setup("hang.sh", "", "[[task]]\nid = \"T1\"\n");
    let mut run = spawn_run(&env);
    wait_for_agents(&env, 1);
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains(&format!(
            "error: another `orch run` (pid {}) holds `",
            run.id()
        )),
        "{text}"
    );
    signal(&run, Signal::INT);
    wait_exit(&mut run);
    env.assert_no_agent_left();
}

#[test]
fn ctrl_c_stops_agents_records_them_interrupted_and_exits_130() {
    let env = setup(
        "hang.sh",
        "",
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n",
    );
    let mut run = spawn_run(&env);
    wait_for_agents(&env, 2);
    signal(&run, Signal::INT);
    let out = wait_exit(&mut run);
    let text = env.render(&out);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(
        text.contains("Stopping: waiting for 2 agents to stop"),
        "{text}"
    );
    for task in ["T1", "T2"] {
        let state = env.state();
        let item = &state["items"][task];
        assert_eq!(item["status"], "retrying", "{task}");
        assert_eq!(
            item["attempts"][0]["outcome"]["kind"], "interrupted",
            "{task}"
        );
    }
    env.assert_no_agent_left();
    let status = env.orch().args(["status", "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let t1 = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "T1")
        .unwrap();
    assert_eq!(t1["attempts"], 0, "an interrupted attempt does not count");
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    let env = setup("ignore-term.sh", "", "[[task]]\nid = \"T1\"\n");
    env.edit_config("grace = \"500ms\"", "grace = \"10m\"");
    let mut run = spawn_run(&env);
    wait_for_agents(&env, 1);
    signal(&run, Signal::INT);
    assert!(wait_until(DEADLINE, || env
        .events()
        .iter()
        .any(|e| e["event"] == "run.stopping")));
    signal(&run, Signal::INT);
    let out = wait_exit(&mut run);
    assert_eq!(out.status.code(), Some(130), "{}", env.render(&out));
    assert_eq!(env.status_of("T1"), "retrying");
    env.assert_no_agent_left();
}

#[test]
fn sigkill_of_the_coordinator_leaves_agents_running_and_the_next_run_adopts_them() {
    let plan = "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\n";
    let env = setup("slow.sh", "[agent.env]\nSLOW_SECONDS = \"3\"", plan);
    let mut run = spawn_run(&env);
    wait_for_agents(&env, 2);
    assert!(wait_until(DEADLINE, || env
        .repo()
        .join(".orchestrator/state.json")
        .exists()));
    signal(&run, Signal::KILL);
    run.wait().unwrap();
    let supervisors: Vec<u32> = ["A", "B"]
        .iter()
        .filter_map(|t| {
            let path = env
                .repo()
                .join(format!(".orchestrator/runs/{t}/1/supervisor.json"));
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
            v["pid"].as_u64().map(|p| p as u32)
        })
        .collect();
    assert_eq!(supervisors.len(), 2);
    for pid in &supervisors {
        let alive = rustix::process::test_kill_process(Pid::from_raw(*pid as i32).unwrap()).is_ok();
        assert!(alive, "supervisor {pid} survived the coordinator");
    }
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.repo().join(".orchestrator/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["schema"], 1);

    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    for task in ["A", "B", "C"] {
        assert_eq!(env.status_of(task), "awaiting_merge", "{task}");
        let count = env.git(
            &env.repo(),
            ["rev-list", "--count", &format!("main..orch/{task}")],
        );
        assert_eq!(count.trim(), "1", "{task} has exactly one attempt's commit");
    }
    for task in ["A", "B"] {
        let attempts = env.state()["items"][task]["attempts"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(attempts, 1, "{task} was adopted, not run again");
    }
    env.assert_no_agent_left();
}

/// Returns the pid of a live `orch __supervise` whose spec `names`.
fn supervisor_where(names: impl Fn(&std::path::Path) -> bool) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let spec = args.iter().skip_while(|a| **a != b"__supervise").nth(1)?;
            names(std::path::Path::new(std::str::from_utf8(spec).ok()?)).then_some(pid)
        })
}

/// Returns whether the process `pid` is gone.
fn gone(pid: u32) -> bool {
    rustix::process::test_kill_process(Pid::from_raw(pid as i32).unwrap()).is_err()
}

/// Returns the pid of a live `orch __supervise` whose spec is `spec`.
fn supervisor_of(spec: &std::path::Path) -> Option<u32> {
    supervisor_where(|named| named == spec)
}

#[test]
fn a_supervisor_not_yet_recorded_when_the_coordinator_is_killed_starts_no_agent_after_the_restart()
{
    // Found by the crash harness: a supervisor outlives its coordinator, and
    // one killed before it wrote supervisor.json was taken for gone; the
    // restart ran the task again, and the first supervisor's agent then
    // committed into the worktree too.
    let env = setup("commit.sh", "", "[[task]]\nid = \"A\"\n");
    let first = env.repo().join(".orchestrator/runs/A/1");
    let mut run = env
        .orch()
        .args(["run", "--no-merge"])
        .env(orch::runner::supervise::TEST_DELAY_VAR, "3000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let spec = first.join("spec.json");
    let mut supervisor = None;
    // Started while the worktree was prepared, it is told to go once the
    // spec is written (a supervisor still waiting then ends with the
    // coordinator: the test below).
    assert!(
        wait_until(DEADLINE, || {
            supervisor = supervisor_of(&spec);
            supervisor.is_some() && spec.exists()
        }),
        "the first attempt's supervisor never started"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(&run, Signal::KILL);
    run.wait().unwrap();
    assert!(
        !first.join("supervisor.json").exists(),
        "the delay was too short"
    );

    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("A"), "awaiting_merge");
    // The first supervisor, once it records itself, finds the stop request.
    let supervisor = supervisor.unwrap();
    assert!(
        wait_until(DEADLINE, || first.join("exit.json").exists()
            && gone(supervisor)),
        "the first supervisor never ended"
    );
    let exit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("exit.json")).unwrap()).unwrap();
    assert_eq!(exit["end"]["kind"], "stopped", "{exit}");
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("supervisor.json")).unwrap())
            .unwrap();
    assert!(
        recorded["agent_pgid"].is_null(),
        "its agent started: {recorded}"
    );
    let commits = env.git(&env.repo(), ["log", "--format=%s", "main..orch/A"]);
    assert_eq!(commits.lines().count(), 1, "{commits}");
    env.assert_no_agent_left();
}

#[test]
fn a_supervisor_started_ahead_ends_without_a_trace_when_its_coordinator_is_killed() {
    // The supervisor starts while `post_create` runs, and waits to be told
    // to go; the coordinator dies first.
    let env = setup(
        "commit.sh",
        "[hooks]\ninstall = false\npost_create = [\"sleep 3\"]",
        "[[task]]\nid = \"A\"\n",
    );
    env.edit_config("[hooks]\ninstall = false\n\n", "");
    let first = env.repo().join(".orchestrator/runs/A/1");
    let spec = first.join("spec.json");
    let mut run = spawn_run(&env);
    let mut supervisor = None;
    assert!(
        wait_until(DEADLINE, || {
            supervisor = supervisor_of(&spec);
            supervisor.is_some()
        }),
        "no supervisor started while the worktree was prepared"
    );
    assert!(!spec.exists(), "post_create is over already");
    signal(&run, Signal::KILL);
    run.wait().unwrap();
    let supervisor = supervisor.unwrap();
    assert!(
        wait_until(DEADLINE, || gone(supervisor)),
        "the waiting supervisor outlived its coordinator"
    );
    for file in ["spec.json", "supervisor.json", "exit.json"] {
        assert!(!first.join(file).exists(), "{file} was written");
    }

    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("A"), "awaiting_merge");
    let commits = env.git(&env.repo(), ["log", "--format=%s", "main..orch/A"]);
    assert_eq!(commits.lines().count(), 1, "{commits}");
    env.assert_no_agent_left();
}

#[test]
fn a_check_supervisor_not_yet_recorded_when_the_coordinator_is_killed_never_runs_its_check() {
    // The check's folder is used again by the check run after the restart,
    // which clears its stop request: the supervisor left from before must
    // be gone before that, or its check runs too, in the merge worktree the
    // new candidate is being built in.
    let env = setup("commit.sh", "", "[[task]]\nid = \"A\"\n");
    let ran = env.repo().join("../check-runs.log");
    env.edit_config(
        "[hooks]",
        &format!(
            "[policy]\nchecks = [{{ name = \"test\", run = \"echo ran >> {}\" }}]\n\n[hooks]",
            ran.display()
        ),
    );
    let mut run = env
        .orch()
        .arg("run")
        .env(orch::runner::supervise::TEST_DELAY_VAR, "2000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checks = env.repo().join(".orchestrator/checks");
    let mut supervisor = None;
    assert!(
        wait_until(DEADLINE, || {
            supervisor = supervisor_where(|spec| spec.starts_with(&checks));
            supervisor.is_some()
        }),
        "the check's supervisor never started"
    );
    signal(&run, Signal::KILL);
    run.wait().unwrap();

    let out = env.orch().arg("run").output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    assert_eq!(env.status_of("A"), "merged");
    let supervisor = supervisor.unwrap();
    assert!(
        wait_until(DEADLINE, || gone(supervisor)),
        "the first check supervisor never ended"
    );
    let runs = std::fs::read_to_string(&ran).unwrap_or_default();
    assert_eq!(runs.lines().count(), 1, "the check ran once: {runs:?}");
}

#[test]
fn illegal_commands_are_refused_with_the_status() {
    let env = setup("commit.sh", "", "[[task]]\nid = \"T1\"\n[[milestone]]\n");
    env.write(
        "plan.toml",
        "[[milestone]]\nid = \"M1\"\n[[milestone.task]]\nid = \"T1\"\n",
    );
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    insta::assert_snapshot!(env.run(["retry", "M1.T1"]), @"
    ------- stderr -------
    error: cannot retry `M1.T1`: it is `awaiting_merge`
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["cancel", "M1"]), @"
    ------- stderr -------
    error: `M1` is a milestone; name one of its tasks
    [exit status: 2]
    ");
    insta::assert_snapshot!(env.run(["resolve", "M1.T9"]), @"
    ------- stderr -------
    error: `M1.T9` is not in the plan
    [exit status: 2]
    ");
}

/// How long an idle run is watched for busy-looping.
const IDLE_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// Returns the CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn issue_5_a_run_waiting_on_its_agents_sleeps() {
    // Reading the inbox folder opens it, and inotify reports the open: a
    // coordinator that woke on that re-read the inbox in a loop, using a
    // whole core while its agents worked.
    let env = setup("hang.sh", "", "[[task]]\nid = \"T1\"\n");
    let mut run = spawn_run(&env);
    wait_for_agents(&env, 1);
    let before = cpu_ticks(run.id());
    std::thread::sleep(IDLE_WINDOW);
    let used = cpu_ticks(run.id()) - before;
    signal(&run, Signal::INT);
    wait_exit(&mut run);
    let window = IDLE_WINDOW.as_secs_f64() * rustix::param::clock_ticks_per_second() as f64;
    assert!(
        (used as f64) < window / 4.0,
        "the idle run used {used} of {window} clock ticks"
    );
}

#[test]
fn issue_11_a_lost_event_is_reported_after_the_state_is_saved() {
    let env = setup("fail-permanent.sh", "", "[[task]]\nid = \"T1\"\n");
    let out = env.orch().args(["run", "--no-merge"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", env.render(&out));
    let events = env.repo().join(".orchestrator/events.jsonl");
    std::fs::remove_file(&events).unwrap();
    std::fs::create_dir(&events).unwrap();
    insta::assert_snapshot!(env.run(["retry", "T1"]), @"
    ------- stderr -------
    error: cannot append to `$TEMP/repo/.orchestrator/events.jsonl`; the change itself is saved in `state.json`
      caused by: Is a directory (os error 21)
    [exit status: 255]
    ");
    assert_eq!(env.status_of("T1"), "ready", "the retry itself is saved");
}
