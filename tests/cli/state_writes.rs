//! What the coordinator writes of its state (issue 15): `changes.jsonl`
//! at each batch, `state.json` as a snapshot. The bytes written per task
//! do not grow with the plan, and a kill between two snapshots loses no
//! change: readers replay the lines after the snapshot.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};

use rustix::process::{Pid, Signal, kill_process};

use crate::common::{DEADLINE, TestEnv, wait_until};

/// A plan of `tasks` independent tasks that change nothing.
fn trivial_plan(tasks: usize) -> String {
    (0..tasks)
        .map(|i| format!("[[task]]\nid = \"T{i:03}\"\nexpect_changes = false\n"))
        .collect()
}

/// A repository whose agent runs `agent` (a shell command) on `tasks` trivial tasks.
fn setup(tasks: usize, agent: &str, max_parallel: usize) -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.write(
        ".orchestrator.toml",
        &format!(
            "[git]\ntarget = \"main\"\n\n[agent]\ncommand = [\"sh\", \"-c\", {agent:?}]\nmax_parallel = {max_parallel}\n\n[hooks]\ninstall = false\n"
        ),
    );
    env.write("plan.toml", &trivial_plan(tasks));
    env.git(&env.repo(), ["add", "-A"]);
    env.git(&env.repo(), ["commit", "-q", "-m", "plan"]);
    env
}

/// Waits for `child` to exit and returns what the kernel counted of the
/// bytes it wrote (`wchar` of `/proc/<pid>/io`, read before it is reaped),
/// when the kernel counts them.
fn wait_with_written(child: &mut Child) -> (std::process::ExitStatus, Option<u64>) {
    let pid = child.id();
    // SAFETY: `siginfo_t` is plain data; `pid` is our own child, not reaped
    // yet (`WNOWAIT` leaves it for `wait` below).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a live local.
    let r = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
    assert_eq!(r, 0, "waitid: {}", std::io::Error::last_os_error());
    let written = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar: "))
                .and_then(|v| v.trim().parse().ok())
        });
    (child.wait().unwrap(), written)
}

/// Runs `tasks` trivial tasks to the end; returns, per task, the bytes the
/// run wrote to `state.json` and `changes.jsonl` (`state_bytes` of
/// `run.finished`) and every byte the coordinator wrote, by the kernel's count.
fn bytes_per_task(tasks: usize) -> (f64, Option<f64>) {
    let env = setup(tasks, "true", 8);
    let mut run = env
        .orch()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (status, written) = wait_with_written(&mut run);
    assert!(status.success(), "{tasks} tasks: {status}");
    let events = env.events();
    let finished = events
        .iter()
        .rev()
        .find(|e| e["event"] == "run.finished")
        .unwrap();
    assert_eq!(finished["counts"]["merged"], tasks, "{finished}");
    let state = finished["state_bytes"].as_u64().unwrap() as f64;
    (
        state / tasks as f64,
        written.map(|w| w as f64 / tasks as f64),
    )
}

#[test]
fn issue_15_state_bytes_written_per_task_do_not_grow_with_the_plan() {
    let (small_state, small_all) = bytes_per_task(40);
    let (large_state, large_all) = bytes_per_task(400);
    println!(
        "state bytes per task: {small_state:.0} at 40 tasks, {large_state:.0} at 400; all bytes the coordinator wrote per task: {small_all:?} and {large_all:?}"
    );
    assert!(
        large_state <= 2.0 * small_state,
        "state bytes per task grew with the plan: {small_state:.0} at 40 tasks, {large_state:.0} at 400"
    );
    match (small_all, large_all) {
        (Some(small), Some(large)) => assert!(
            large <= 2.0 * small,
            "bytes the coordinator wrote per task grew with the plan: {small:.0} at 40 tasks, {large:.0} at 400"
        ),
        _ => println!(
            "SKIPPED the kernel's count of written bytes: /proc/<pid>/io has no wchar here"
        ),
    }
}

/// Reads the `seq` the snapshot includes and the complete lines of
/// `changes.jsonl` after it: their count and bytes, and the snapshot's bytes.
fn after_snapshot(env: &TestEnv) -> Option<(u64, usize, usize, usize)> {
    let dir = env.repo().join(".orchestrator");
    let snapshot = std::fs::read(dir.join("state.json")).ok()?;
    let seq = serde_json::from_slice::<serde_json::Value>(&snapshot).ok()?["changes"].as_u64()?;
    let changes = std::fs::read_to_string(dir.join("changes.jsonl")).unwrap_or_default();
    let complete = &changes[..changes.rfind('\n').map_or(0, |i| i + 1)];
    let after: Vec<&str> = complete
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|c| c["seq"].as_u64().is_some_and(|s| s > seq))
        })
        .collect();
    let bytes = after.iter().map(|l| l.len() + 1).sum();
    Some((seq, after.len(), bytes, snapshot.len()))
}

/// Returns each task's status and attempts as `orch status --json` reads them.
fn statuses(env: &TestEnv) -> BTreeMap<String, (String, u64)> {
    let out = env.orch().args(["status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", env.render(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                (
                    i["status"].as_str().unwrap().to_owned(),
                    i["attempts"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn issue_15_a_kill_between_snapshots_loses_no_change() {
    // Summaries of 1 KiB make the state outgrow a small snapshot (64 KiB)
    // early: snapshots are then written only once the changes since the
    // last one add up to its size.
    let agent = r#"printf '{"status": "done", "summary": "%01024d"}' 0 > "$ORCH_RESULT_FILE""#;
    let env = setup(150, agent, 4);
    let mut run = env
        .orch()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once 20 batches of changes follow a large snapshot, with fewer
    // bytes than half the snapshot's (no snapshot can be due meanwhile).
    let mut seen = None;
    let due = wait_until(DEADLINE, || {
        seen = after_snapshot(&env);
        matches!(seen, Some((_, lines, bytes, size)) if size > 64 * 1024 && lines >= 20 && bytes * 2 < size)
    });
    assert!(due, "no large snapshot followed by 20 changes: {seen:?}");
    kill_process(Pid::from_raw(run.id() as i32).unwrap(), Signal::KILL).unwrap();
    run.wait().unwrap();
    let (seq, lines, _, _) = after_snapshot(&env).unwrap();
    assert!(lines >= 20, "changes after the snapshot {seq}: {lines}");

    // What the events say happened is in the state readers see, and the
    // snapshot alone would have missed some of it.
    let read = statuses(&env);
    let snapshot = env.state();
    let mut missed_by_snapshot = 0;
    for e in env.events() {
        let Some(id) = e["id"].as_str() else { continue };
        let (status, attempts) = &read[id];
        match e["event"].as_str().unwrap() {
            "task.started" => {
                let n = e["attempt"].as_u64().unwrap();
                assert!(
                    *attempts >= n,
                    "{id}: attempt {n} started, state has {attempts}"
                );
            }
            "task.completed" => assert!(
                ["awaiting_merge", "merging", "merged"].contains(&status.as_str()),
                "{id} completed, state says {status}"
            ),
            "task.merged" => assert_eq!(status, "merged", "{id} merged"),
            _ => {}
        }
    }
    for (id, (status, attempts)) in &read {
        let item = &snapshot["items"][id];
        let in_snapshot = (
            item["status"].as_str().unwrap_or("pending"),
            item["attempts"].as_array().map_or(0, |a| a.len() as u64),
        );
        missed_by_snapshot += usize::from(in_snapshot != (status.as_str(), *attempts));
    }
    assert!(
        missed_by_snapshot > 0,
        "the test must kill between snapshots: state.json alone already held every change"
    );

    // The next run starts from that state: its first snapshot, written
    // once it recovered, has every merge and every attempt read above; it
    // merges every task (a landing the kill cut short included: a branch
    // with no commits is deleted as it lands, before the state records
    // it), none a second time.
    let mut again = env
        .orch()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = u64::from(again.id());
    let restarted = wait_until(DEADLINE, || env.state()["run"]["pid"].as_u64() == Some(pid));
    assert!(restarted, "the next run never wrote its state");
    let first = env.state();
    for (id, (status, attempts)) in &read {
        let now = &first["items"][id];
        if status == "merged" {
            assert_eq!(now["status"], "merged", "{id} after the restart");
        }
        let recorded = now["attempts"].as_array().map_or(0, |a| a.len() as u64);
        assert!(
            recorded >= *attempts,
            "{id}: {attempts} attempts before the restart, {recorded} after"
        );
    }
    let status = again.wait().unwrap();
    assert!(
        status.success(),
        "the next run carries on to the end: {status}\n{}",
        env.run(["status"])
    );
    let read = statuses(&env);
    assert!(read.values().all(|(s, _)| s == "merged"), "{read:?}");
    let mut merges: BTreeMap<String, usize> = BTreeMap::new();
    for e in env.events().iter().filter(|e| e["event"] == "task.merged") {
        *merges
            .entry(e["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        merges.values().all(|n| *n == 1),
        "a task merged twice: {merges:?}"
    );
    assert_eq!(
        std::fs::read(env.repo().join(".orchestrator/changes.jsonl")).unwrap(),
        b"",
        "the run's last snapshot includes every change"
    );
}

#[test]
fn changes_that_do_not_follow_the_snapshot_are_named_with_what_to_do() {
    let env = setup(1, "true", 1);
    env.write(
        ".orchestrator/state.json",
        r#"{"schema": 1, "items": {"T000": {"status": "ready"}}, "changes": 2}"#,
    );
    env.write(
        ".orchestrator/changes.jsonl",
        "{\"seq\":5,\"items\":{\"T000\":null}}\n",
    );
    let status = env.orch().arg("status").output().unwrap();
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`.orchestrator/changes.jsonl` does not follow `state.json`"),
        "{stderr}"
    );
    let doctor = env.orch().arg("doctor").output().unwrap();
    let stdout = String::from_utf8_lossy(&doctor.stdout);
    let line = stdout
        .lines()
        .skip_while(|l| !l.contains("changes.jsonl"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!(line, @r"
    error state     `.orchestrator/changes.jsonl` does not follow `state.json`: its next change is 5, not 3
                    fix: move `.orchestrator/changes.jsonl` aside to go back to the older state `.orchestrator/state.json` holds (git keeps every branch)
    ");
}
