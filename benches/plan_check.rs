//! `orch plan check` and `orch plan next` on a 100,000-task plan with
//! 300,000 dependencies, side by side with coreutils `tsort` on the same
//! edge list. Run with `cargo bench --bench plan_check` (or `bench/run`).
//!
//! Prints the median wall time of each command over several runs and the
//! ratio `orch plan check` / `tsort` (issue 2 target: at most 0.5 on JSON).

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ms;

const PHASES: usize = 10;
const MILESTONES: usize = 10;
const TASKS_PER_MILESTONE: usize = 1000;
const DEPS_PER_TASK: usize = 3;
const WINDOW: usize = 2000;
const RUNS: usize = 11;

/// A small deterministic generator (xorshift64*), so every run measures the same plan.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

fn task_id(i: usize) -> String {
    let per_phase = MILESTONES * TASKS_PER_MILESTONE;
    let p = i / per_phase;
    let m = (i % per_phase) / TASKS_PER_MILESTONE;
    let t = i % TASKS_PER_MILESTONE;
    format!("P{p}.M{m}.T{t}")
}

/// Returns each task's dependencies: earlier tasks within a window, never itself.
fn dependencies() -> Vec<Vec<usize>> {
    let total = PHASES * MILESTONES * TASKS_PER_MILESTONE;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..total)
        .map(|i| {
            let mut deps = Vec::new();
            if i == 0 {
                return deps;
            }
            let lo = i.saturating_sub(WINDOW);
            while deps.len() < DEPS_PER_TASK.min(i) {
                let j = lo + rng.below(i - lo);
                if !deps.contains(&j) {
                    deps.push(j);
                }
            }
            deps
        })
        .collect()
}

fn write_json(deps: &[Vec<usize>], path: &Path) {
    let mut out = String::with_capacity(40 << 20);
    out.push_str("{\"title\": \"Generated plan\", \"phases\": [\n");
    for p in 0..PHASES {
        let _ = writeln!(
            out,
            "{}{{\"id\": \"P{p}\", \"title\": \"Phase {p}\", \"milestones\": [",
            if p > 0 { ",\n" } else { "" }
        );
        for m in 0..MILESTONES {
            let _ = writeln!(
                out,
                "{}{{\"id\": \"M{m}\", \"title\": \"Milestone {m}\", \"tasks\": [",
                if m > 0 { ",\n" } else { "" }
            );
            for t in 0..TASKS_PER_MILESTONE {
                let i = (p * MILESTONES + m) * TASKS_PER_MILESTONE + t;
                let list: Vec<String> = deps[i]
                    .iter()
                    .map(|d| format!("\"{}\"", task_id(*d)))
                    .collect();
                let _ = write!(
                    out,
                    "{}{{\"id\": \"T{t}\", \"title\": \"Task {i}\", \"priority\": {}, \"depends_on\": [{}]}}",
                    if t > 0 { ",\n" } else { "" },
                    i % 4,
                    list.join(", ")
                );
            }
            out.push_str("]}");
        }
        out.push_str("]}");
    }
    out.push_str("]}\n");
    std::fs::write(path, out).unwrap();
}

fn write_toml(deps: &[Vec<usize>], path: &Path) {
    let mut out = String::with_capacity(40 << 20);
    out.push_str("title = \"Generated plan\"\n");
    for p in 0..PHASES {
        let _ = write!(out, "\n[[phase]]\nid = \"P{p}\"\ntitle = \"Phase {p}\"\n");
        for m in 0..MILESTONES {
            let _ = write!(
                out,
                "\n[[phase.milestone]]\nid = \"M{m}\"\ntitle = \"Milestone {m}\"\n"
            );
            for t in 0..TASKS_PER_MILESTONE {
                let i = (p * MILESTONES + m) * TASKS_PER_MILESTONE + t;
                let list: Vec<String> = deps[i]
                    .iter()
                    .map(|d| format!("\"{}\"", task_id(*d)))
                    .collect();
                let _ = write!(
                    out,
                    "\n[[phase.milestone.task]]\nid = \"T{t}\"\ntitle = \"Task {i}\"\npriority = {}\ndepends_on = [{}]\n",
                    i % 4,
                    list.join(", ")
                );
            }
        }
    }
    std::fs::write(path, out).unwrap();
}

fn write_edges(deps: &[Vec<usize>], path: &Path) {
    let mut out = String::with_capacity(12 << 20);
    for (i, list) in deps.iter().enumerate() {
        let id = task_id(i);
        let _ = writeln!(out, "{id} {id}");
        for d in list {
            let _ = writeln!(out, "{} {id}", task_id(*d));
        }
    }
    std::fs::write(path, out).unwrap();
}

/// Times one run of a command; panics if it fails.
fn time(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Runs every command `RUNS` times, interleaved so that machine noise hits
/// them alike, and returns each one's median wall time.
fn medians(commands: &[&dyn Fn() -> Command]) -> Vec<Duration> {
    let mut times = vec![Vec::with_capacity(RUNS); commands.len()];
    for _ in 0..RUNS {
        for (i, make) in commands.iter().enumerate() {
            times[i].push(time(make()));
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[RUNS / 2]
        })
        .collect()
}

fn main() {
    if !common::wanted() {
        return;
    }
    let orch = env!("CARGO_BIN_EXE_orch");
    let dir = tempfile::tempdir().unwrap();
    let deps = dependencies();
    let edges: usize = deps.iter().map(Vec::len).sum();
    let (json, toml, edge_file) = (
        dir.path().join("plan.json"),
        dir.path().join("plan.toml"),
        dir.path().join("edges.txt"),
    );
    write_json(&deps, &json);
    write_toml(&deps, &toml);
    write_edges(&deps, &edge_file);
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64 / (1 << 20) as f64;
    println!(
        "plan: {} tasks, {edges} dependencies; plan.json {:.1} MiB, plan.toml {:.1} MiB, edges {:.1} MiB; median of {RUNS} runs",
        deps.len(),
        size(&json),
        size(&toml),
        size(&edge_file)
    );
    let orch_cmd = |args: &[&Path], sub: &[&str]| {
        let mut cmd = Command::new(orch);
        cmd.current_dir(dir.path()).args(sub);
        for a in args {
            cmd.arg(a);
        }
        cmd
    };
    let tsort_cmd = || {
        let mut cmd = Command::new("tsort");
        cmd.arg(&edge_file);
        cmd
    };
    let check_json_cmd = || orch_cmd(&[&json], &["plan", "check", "--plan"]);
    let check_toml_cmd = || orch_cmd(&[&toml], &["plan", "check", "--plan"]);
    let next_json_cmd = || orch_cmd(&[&json], &["plan", "next", "--json", "--plan"]);
    let m = medians(&[&tsort_cmd, &check_json_cmd, &check_toml_cmd, &next_json_cmd]);
    let (tsort, check_json, check_toml, next_json) = (m[0], m[1], m[2], m[3]);
    let ratio = |d: Duration| d.as_secs_f64() / tsort.as_secs_f64();
    println!(
        "{:<34} {:>10} {:>14}",
        "command", "median", "ratio to tsort"
    );
    println!(
        "{:<34} {:>10} {:>14}",
        "tsort (baseline)",
        ms(tsort),
        "1.00"
    );
    println!(
        "{:<34} {:>10} {:>14.2}",
        "orch plan check (JSON)",
        ms(check_json),
        ratio(check_json)
    );
    println!(
        "{:<34} {:>10} {:>14.2}",
        "orch plan check (TOML)",
        ms(check_toml),
        ratio(check_toml)
    );
    println!(
        "{:<34} {:>10} {:>14.2}",
        "orch plan next --json (JSON)",
        ms(next_json),
        ratio(next_json)
    );
    let scale = format!("{} tasks, {edges} deps", deps.len());
    let base = format!("tsort {}", ms(tsort));
    common::figure(
        &format!("plan check, JSON, {scale}"),
        &ms(check_json),
        &base,
        Some(ratio(check_json)),
    );
    common::figure(
        &format!("plan check, TOML, {scale}"),
        &ms(check_toml),
        &base,
        Some(ratio(check_toml)),
    );
    common::figure(
        &format!("plan next --json, JSON, {scale}"),
        &ms(next_json),
        &base,
        Some(ratio(next_json)),
    );
}
