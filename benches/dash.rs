//! The dashboard: frame render time for a 10,000-item plan, and the CPU the
//! dashboard uses over idle seconds beside a live run that changes nothing.
//! Run with `cargo bench --bench dash` (or `bench/run`).
//!
//! 1. A plan of 10 phases × 10 milestones × 20 tasks × 4 subtasks (10,110
//!    items) with a state where every status occurs. Median time to draw one
//!    frame on ratatui's `TestBackend` (our `render` plus ratatui's buffer
//!    diff), at 120×40, while scrolling one row per frame: once with tasks
//!    collapsed (2,110 rows), once with every item open (10,110 rows).
//!    Also the median time of `update` with a new state (statuses, progress
//!    and rows recomputed). Target: a frame within 5 ms. There is no
//!    plain-git baseline for a dashboard; the target is the measure.
//! 2. A real `orch run --no-merge` whose two agents sleep, and `orch dash`
//!    attached to it in a tmux pane (80×24). The dashboard's CPU time
//!    (user + system, from `/proc`) over `ORCH_BENCH_IDLE` seconds (default
//!    30), with the run live (a tick a second moves elapsed times), and again
//!    after the run ended (no tick). Target: near zero.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{median, ms, write_config};
use orch::dash::app::{AppState, Msg};
use orch::lifecycle::Status;
use orch::plan::Rules;
use orch::state::model::{Attempt, Timestamp};
use orch::state::{ItemState, State};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const FRAMES: usize = 400;

fn plan_text() -> String {
    let mut t = String::new();
    for p in 0..10 {
        t.push_str(&format!(
            "[[phase]]\nid = \"P{p}\"\ntitle = \"Phase {p}\"\n"
        ));
        for m in 0..10 {
            t.push_str(&format!(
                "[[phase.milestone]]\nid = \"M{m}\"\ntitle = \"Milestone {m} of phase {p}\"\n"
            ));
            for k in 0..20 {
                t.push_str(&format!(
                    "[[phase.milestone.task]]\nid = \"T{k}\"\ntitle = \"Implement part {k} of the storage layer\"\n"
                ));
                if k > 0 {
                    t.push_str(&format!("depends_on = [\"P{p}.M{m}.T{}\"]\n", k - 1));
                }
                for s in 0..4 {
                    t.push_str(&format!(
                        "[[phase.milestone.task.subtask]]\nid = \"S{s}\"\ntitle = \"Step {s}\"\n"
                    ));
                }
            }
        }
    }
    t
}

fn state(app_plan: &orch::plan::Plan, now: SystemTime) -> State {
    let statuses = [
        Status::Merged,
        Status::Merged,
        Status::Running,
        Status::AwaitingMerge,
        Status::Failed,
        Status::Pending,
        Status::Retrying,
        Status::Cancelled,
    ];
    let mut state = State::default();
    for (n, idx) in app_plan.tasks().iter().enumerate() {
        let status = statuses[n % statuses.len()];
        let mut s = ItemState::new(status);
        s.attempts = vec![Attempt {
            number: 1,
            started: Timestamp(now - Duration::from_secs(n as u64 % 600)),
            finished: None,
            outcome: None,
            purpose: None,
            job: None,
            confined: false,
            agent: None,
            session: None,
            resumed: false,
            usage: None,
            paused_until: None,
        }];
        if status != Status::Running {
            s.attempts[0].finished = Some(Timestamp(now));
        }
        state.items.insert(app_plan.item(*idx).id.clone(), s);
    }
    state
}

fn frames(app: &mut AppState, terminal: &mut Terminal<TestBackend>) -> Duration {
    let down = Msg::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
    let times = (0..FRAMES)
        .map(|_| {
            app.update(down.clone());
            let start = Instant::now();
            terminal.draw(|f| orch::dash::ui::render(app, f)).unwrap();
            start.elapsed()
        })
        .collect();
    median(times)
}

fn render_bench() {
    let plan = orch::plan::from_bytes(
        Path::new("plan.toml"),
        plan_text().as_bytes(),
        &Rules::default(),
    )
    .unwrap();
    let now = SystemTime::now();
    let state = state(&plan, now);
    let plan = Arc::new(plan);
    let mut app = AppState::new(Arc::clone(&plan), state.clone(), now);
    app.update(Msg::Resize(120, 40));
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let collapsed = frames(&mut app, &mut terminal);
    let collapsed_rows = app.rows.len();
    app.expanded.iter_mut().for_each(|e| *e = true);
    app.update(Msg::State(Box::new(state.clone())));
    let open = frames(&mut app, &mut terminal);
    let open_rows = app.rows.len();
    let updates = (0..50)
        .map(|_| {
            let msg = Msg::State(Box::new(state.clone()));
            let start = Instant::now();
            app.update(msg);
            start.elapsed()
        })
        .collect();
    let update = median(updates);
    println!(
        "dashboard render, {} items, 120x40 (median of {FRAMES} frames while scrolling):",
        plan.items().len()
    );
    println!(
        "  tasks collapsed ({collapsed_rows} rows): {} per frame (target <= 5 ms)",
        ms(collapsed)
    );
    println!(
        "  everything open ({open_rows} rows):  {} per frame (target <= 5 ms)",
        ms(open)
    );
    println!("  update with a new state (recompute):  {}", ms(update));
    common::figure(
        "dashboard frame, 10,110 items, tasks collapsed",
        &ms(collapsed),
        "target 5 ms",
        Some(collapsed.as_secs_f64() / 0.005),
    );
    common::figure(
        "dashboard frame, 10,110 items, all open",
        &ms(open),
        "target 5 ms",
        Some(open.as_secs_f64() / 0.005),
    );
    common::figure(
        "dashboard update with a new state, 10,110 items",
        &ms(update),
        "",
        None,
    );
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn idle_bench() {
    let idle = std::env::var("ORCH_BENCH_IDLE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30u64);
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("dashboard idle CPU: skipped (tmux is not installed; `scripts/test` installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    common::git(&repo, &["init", "-q", "-b", "main"]);
    common::git(&repo, &["commit", "-q", "--allow-empty", "-m", "initial"]);
    let hang = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agents/hang.sh");
    write_config(&repo, hang.to_str().unwrap(), 2, "");
    std::fs::write(
        repo.join("plan.toml"),
        "[[task]]\nid = \"T1\"\n[[task]]\nid = \"T2\"\n",
    )
    .unwrap();
    let orch = env!("CARGO_BIN_EXE_orch");
    let mut run = common::sealed(orch, &repo)
        .args(["run", "--no-merge"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = dir.path().join("tmux.sock");
    let tmux = || {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&socket);
        c
    };
    let ok = tmux()
        .args(["new-session", "-d", "-x", "80", "-y", "24", "-c"])
        .arg(&repo)
        .arg(format!("exec '{orch}' dash"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "tmux did not start");
    let pane = tmux()
        .args(["display", "-p", "#{pane_pid}"])
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&pane.stdout)
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let tick = rustix::param::clock_ticks_per_second() as f64;
    let measure = |label: &str| {
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(idle));
        let used = (cpu_ticks(pid) - before) as f64 / tick;
        println!(
            "  {label}: {:.0} ms CPU over {idle} s ({:.3}% of one core)",
            used * 1000.0,
            used / idle as f64 * 100.0
        );
        common::figure(
            &format!("dashboard CPU over {idle} idle s, {label}"),
            &format!("{:.0} ms", used * 1000.0),
            "target near zero",
            None,
        );
    };
    println!("dashboard idle CPU (orch dash in tmux, 80x24):");
    measure("run live, agents sleeping");
    let pid_run = rustix::process::Pid::from_raw(run.id() as i32).unwrap();
    rustix::process::kill_process(pid_run, rustix::process::Signal::INT).unwrap();
    run.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    measure("no run live");
    let _ = tmux().arg("kill-server").status();
}

fn main() {
    if !common::wanted() {
        return;
    }
    render_bench();
    idle_bench();
}
