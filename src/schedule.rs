//! Which tasks can start, and in which order (DESIGN §4). Pure.
//!
//! Input: the plan, one [`TaskView`] per task (status, when it became ready,
//! when a retry may start), `now` and the [`Limits`]. Output: every task's
//! [`Readiness`] and the launch order. `orch plan next` and the coordinator
//! both call [`schedule`], which is what makes `plan next` print exactly the
//! order `orch run` starts tasks in.
//!
//! Rules:
//! - ready: required dependencies `merged`/`resolved`, optional ones
//!   terminal, the phase barrier passed, and the task `pending` or `ready`;
//! - blocked: a required dependency failed, is blocked or was cancelled;
//! - phase barrier: a task of phase N behaves as if it required every task of
//!   the phases before it, except that a cancelled task there counts as done
//!   (a person dropped it; it must not hold the rest of the plan back);
//! - order: lowest effective priority first (priority minus one per `aging`
//!   period waited since it became ready, not below 0), then plan order;
//! - a task starts only while fewer than `max_parallel` agents run and its
//!   resources fit; a task that does not fit is held, and later tasks that
//!   do fit still start;
//! - a task whose agent is paused (the caller says, [`schedule_holding`])
//!   is held and takes no slot.
//!
//! Cost: one pass over tasks and edges per call, no allocation per edge.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::lifecycle::Status;
use crate::plan::graph::Target;
use crate::plan::{ItemIdx, Plan};

/// What the scheduler needs to know about one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskView {
    pub status: Status,
    /// When the task last became ready (aging counts from here).
    pub ready_since: Option<SystemTime>,
    /// A retrying task may not start before this.
    pub not_before: Option<SystemTime>,
    /// A running task whose changes its `context` globs match, when
    /// `[scheduling] avoid_overlap` holds it back (the conflict radar).
    pub overlaps: Option<ItemIdx>,
}

impl TaskView {
    pub fn new(status: Status) -> TaskView {
        TaskView {
            status,
            ready_since: None,
            not_before: None,
            overlaps: None,
        }
    }
}

/// The limits a launch must respect.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_parallel: usize,
    pub resources: BTreeMap<String, u32>,
    pub phase_barrier: bool,
    /// One priority level gained per period; `None` turns aging off.
    pub aging: Option<Duration>,
}

/// Why a pending task is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A dependency (a task or a phase/milestone) is not finished.
    Dependency(ItemIdx),
    /// An earlier phase is not done.
    Barrier(ItemIdx),
}

/// What stops a task for good (until a person acts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocker {
    /// A required dependency failed, is blocked or was cancelled.
    Dependency(ItemIdx),
    /// A task of an earlier phase failed or is blocked.
    Barrier(ItemIdx),
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Not pending or ready: running, finished, retrying ...
    Settled,
    Ready,
    Waiting(Wait),
    Blocked(Blocker),
}

/// Why a ready task does not start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Every agent slot is taken: `running` agents run now and `starting`
    /// tasks ahead of it in this answer take the rest.
    MaxParallel {
        limit: usize,
        running: usize,
        starting: usize,
    },
    Resource(String),
    /// Its `context` globs match paths this running task changed
    /// (`[scheduling] avoid_overlap`).
    Overlap(ItemIdx),
    /// Its agent is paused (`*`: every agent), until then or until resumed.
    Paused {
        agent: String,
        until: Option<SystemTime>,
    },
}

impl std::fmt::Display for Hold {
    /// Writes why the task waits, as `orch plan next` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::MaxParallel {
                limit,
                running,
                starting,
            } => write!(
                f,
                "no free agent slot: `max_parallel` is {limit}, with {running} running and {starting} starting before it"
            ),
            Hold::Resource(name) => write!(f, "resource `{name}` is in use"),
            Hold::Paused { agent, until } => {
                let who = if agent == "*" {
                    "every agent is paused".to_owned()
                } else {
                    format!("agent `{agent}` is paused")
                };
                match until {
                    Some(at) => write!(
                        f,
                        "{who} until {}",
                        crate::when::local(*at, SystemTime::UNIX_EPOCH)
                    ),
                    None => write!(f, "{who} until resumed (`orch resume`)"),
                }
            }
            Hold::Overlap(_) => write!(f, "its context overlaps what a running task changes"),
        }
    }
}

impl Hold {
    /// Says why the task waits, naming the running task it overlaps.
    pub fn describe(&self, plan: &Plan) -> String {
        match self {
            Hold::Overlap(by) => {
                format!("its context overlaps what `{}` changes", plan.item(*by).id)
            }
            other => other.to_string(),
        }
    }
}

/// The scheduler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// One per task node.
    pub readiness: Vec<Readiness>,
    /// Task nodes to start now, in order.
    pub start: Vec<u32>,
    /// Ready task nodes that must wait, in the order they would start.
    pub held: Vec<(u32, Hold)>,
}

/// Returns the effective priority of a task that has waited `waited`.
pub fn effective_priority(priority: u8, waited: Duration, aging: Option<Duration>) -> u8 {
    match aging {
        Some(period) if !period.is_zero() => {
            let periods = waited.as_nanos() / period.as_nanos();
            priority.saturating_sub(u8::try_from(periods).unwrap_or(u8::MAX))
        }
        _ => priority,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Eval {
    Sat,
    Dead,
    /// Neither: still to do, under way, or waiting for a merge.
    Open,
}

/// Computes readiness for every task and the launch order.
pub fn schedule(plan: &Plan, tasks: &[TaskView], now: SystemTime, limits: &Limits) -> Schedule {
    schedule_holding(plan, tasks, now, limits, &|_| None)
}

/// [`schedule`], holding back the task nodes `hold` names a reason for
/// (their agent is paused): held, they take no slot.
pub fn schedule_holding(
    plan: &Plan,
    tasks: &[TaskView],
    now: SystemTime,
    limits: &Limits,
    hold: &dyn Fn(u32) -> Option<Hold>,
) -> Schedule {
    let readiness = assess(plan, tasks, limits.phase_barrier);
    let (start, held) = order(plan, tasks, &readiness, now, limits, hold);
    Schedule {
        readiness,
        start,
        held,
    }
}

fn eval(status: Status) -> Eval {
    if status.satisfies() {
        Eval::Sat
    } else if status.is_dead() {
        Eval::Dead
    } else {
        Eval::Open
    }
}

/// Returns each task's readiness. Blocking propagates within one call.
pub fn assess(plan: &Plan, tasks: &[TaskView], phase_barrier: bool) -> Vec<Readiness> {
    let graph = plan.graph();
    let nt = graph.tasks().len();
    debug_assert_eq!(tasks.len(), nt);
    let mut evals: Vec<Eval> = tasks.iter().map(|t| eval(t.status)).collect();
    let mut readiness = vec![Readiness::Settled; nt];
    let mut container_memo: Vec<Option<(Eval, bool)>> = vec![None; graph.containers().len()];

    let use_barrier = phase_barrier && !graph.phases().is_empty();
    let order: Vec<u32> = if use_barrier {
        let mut order = graph.topo_order().to_vec();
        order.sort_by_key(|t| graph.phase(*t).unwrap_or(0));
        order
    } else {
        graph.topo_order().to_vec()
    };
    let mut phase_total = vec![0u32; graph.phases().len()];
    for t in 0..nt as u32 {
        if let Some(p) = graph.phase(t) {
            phase_total[p as usize] += 1;
        }
    }
    let mut current_phase = 0u32;
    let mut earlier_open: Option<u32> = None;
    let mut earlier_dead: Option<u32> = None;
    let mut phase_open: Option<u32> = None;
    let mut phase_dead: Option<u32> = None;

    for &t in &order {
        let ti = t as usize;
        if use_barrier && let Some(p) = graph.phase(t) {
            while current_phase < p {
                earlier_open = earlier_open.or(phase_open);
                earlier_dead = earlier_dead.or(phase_dead);
                phase_open = None;
                phase_dead = None;
                current_phase += 1;
            }
        }
        let status = tasks[ti].status;
        if matches!(status, Status::Pending | Status::Ready) {
            readiness[ti] = judge(plan, t, &evals, &mut container_memo, tasks);
            if readiness[ti] == Readiness::Ready && use_barrier && graph.phase(t).is_some() {
                if let Some(dead) = earlier_dead {
                    readiness[ti] =
                        Readiness::Blocked(Blocker::Barrier(graph.tasks()[dead as usize]));
                } else if let Some(open) = earlier_open {
                    readiness[ti] = Readiness::Waiting(Wait::Barrier(graph.tasks()[open as usize]));
                }
            }
            if let Readiness::Blocked(_) = readiness[ti] {
                evals[ti] = Eval::Dead;
            }
        }
        if graph.phase(t).is_some() {
            let passes = matches!(
                tasks[ti].status,
                Status::Merged | Status::Resolved | Status::Cancelled
            );
            if evals[ti] == Eval::Dead && tasks[ti].status != Status::Cancelled {
                phase_dead = phase_dead.or(Some(t));
            } else if !passes {
                phase_open = phase_open.or(Some(t));
            }
        }
    }
    readiness
}

fn judge(
    plan: &Plan,
    t: u32,
    evals: &[Eval],
    memo: &mut [Option<(Eval, bool)>],
    tasks: &[TaskView],
) -> Readiness {
    let graph = plan.graph();
    let mut waiting: Option<ItemIdx> = None;
    for edge in graph.deps_of(t) {
        let (eval, terminal, item) = match edge.target {
            Target::Task(v) => {
                let v = v as usize;
                let terminal = evals[v] != Eval::Open || tasks[v].status.is_terminal();
                (evals[v], terminal, graph.tasks()[v])
            }
            Target::Container(c) => {
                let (eval, terminal) =
                    *memo[c as usize].get_or_insert_with(|| container_eval(plan, c, evals, tasks));
                (eval, terminal, graph.container(c).item)
            }
        };
        if edge.required {
            match eval {
                Eval::Dead => return Readiness::Blocked(Blocker::Dependency(item)),
                Eval::Sat => {}
                Eval::Open => {
                    waiting.get_or_insert(item);
                }
            }
        } else if !terminal {
            waiting.get_or_insert(item);
        }
    }
    match waiting {
        Some(item) => Readiness::Waiting(Wait::Dependency(item)),
        None => Readiness::Ready,
    }
}

/// Evaluates "every task in the container": satisfied or dead, and whether all are terminal.
fn container_eval(plan: &Plan, c: u32, evals: &[Eval], tasks: &[TaskView]) -> (Eval, bool) {
    let range = plan.graph().container(c).tasks.clone();
    let mut all_sat = true;
    let mut all_terminal = true;
    for v in range {
        let e = evals[v as usize];
        if e == Eval::Dead {
            return (Eval::Dead, true);
        }
        all_sat &= e == Eval::Sat;
        all_terminal &= e != Eval::Open || tasks[v as usize].status.is_terminal();
    }
    (if all_sat { Eval::Sat } else { Eval::Open }, all_terminal)
}

/// Sorts ready tasks and fits them into the free slots and resources.
fn order(
    plan: &Plan,
    tasks: &[TaskView],
    readiness: &[Readiness],
    now: SystemTime,
    limits: &Limits,
    hold: &dyn Fn(u32) -> Option<Hold>,
) -> (Vec<u32>, Vec<(u32, Hold)>) {
    let graph = plan.graph();
    let mut running = 0usize;
    let mut used: BTreeMap<&str, u32> = BTreeMap::new();
    let mut candidates: Vec<(u8, u32)> = Vec::new();
    for (t, view) in tasks.iter().enumerate() {
        let item = plan.item(graph.tasks()[t]);
        match view.status {
            Status::Running => {
                running += 1;
                for (name, amount) in item.resources() {
                    *used.entry(name.as_str()).or_default() += amount;
                }
                continue;
            }
            Status::Retrying if view.not_before.is_none_or(|at| at <= now) => {}
            Status::Pending | Status::Ready if readiness[t] == Readiness::Ready => {}
            _ => continue,
        }
        let waited = view
            .ready_since
            .and_then(|since| now.duration_since(since).ok())
            .unwrap_or_default();
        let priority = effective_priority(item.priority.level(), waited, limits.aging);
        candidates.push((priority, t as u32));
    }
    candidates.sort_unstable();
    let mut start = Vec::new();
    let mut held = Vec::new();
    let already = running;
    for (_, t) in candidates {
        if let Some(why) = hold(t) {
            held.push((t, why));
            continue;
        }
        if let Some(by) = tasks[t as usize].overlaps {
            held.push((t, Hold::Overlap(by)));
            continue;
        }
        if running >= limits.max_parallel {
            held.push((
                t,
                Hold::MaxParallel {
                    limit: limits.max_parallel,
                    running: already,
                    starting: start.len(),
                },
            ));
            continue;
        }
        let item = plan.item(graph.tasks()[t as usize]);
        let short = item.resources().iter().find(|(name, amount)| {
            let capacity = limits.resources.get(name).copied().unwrap_or(0);
            used.get(name.as_str()).copied().unwrap_or(0) + amount > capacity
        });
        if let Some((name, _)) = short {
            held.push((t, Hold::Resource(name.clone())));
            continue;
        }
        running += 1;
        for (name, amount) in item.resources() {
            *used.entry(name.as_str()).or_default() += amount;
        }
        start.push(t);
    }
    (start, held)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::plan::{self, Rules};

    fn plan(text: &str) -> Plan {
        plan::from_bytes(Path::new("plan.toml"), text.as_bytes(), &Rules::default())
            .unwrap_or_else(|e| panic!("{:?}", e.detail_lines()))
    }

    fn limits() -> Limits {
        Limits {
            max_parallel: 10,
            resources: BTreeMap::new(),
            phase_barrier: true,
            aging: None,
        }
    }

    fn views(plan: &Plan, statuses: &[(&str, Status)]) -> Vec<TaskView> {
        plan.tasks()
            .iter()
            .map(|t| {
                let id = plan.item(*t).id.as_str();
                let status = statuses
                    .iter()
                    .find(|(s, _)| *s == id)
                    .map(|(_, st)| *st)
                    .unwrap_or(Status::Pending);
                TaskView::new(status)
            })
            .collect()
    }

    fn ids(plan: &Plan, nodes: &[u32]) -> Vec<String> {
        nodes
            .iter()
            .map(|n| plan.item(plan.tasks()[*n as usize]).id.to_string())
            .collect()
    }

    fn start(plan: &Plan, statuses: &[(&str, Status)], limits: &Limits) -> Vec<String> {
        let s = schedule(plan, &views(plan, statuses), SystemTime::UNIX_EPOCH, limits);
        ids(plan, &s.start)
    }

    const FLAT: &str = r#"
        [[task]]
        id = "A"
        priority = 2
        [[task]]
        id = "B"
        priority = 1
        [[task]]
        id = "C"
        priority = 1
        depends_on = ["A"]
        [[task]]
        id = "D"
        priority = 3
        depends_on = [{ id = "A", required = false }]
    "#;

    #[test]
    fn priority_then_plan_order() {
        let p = plan(FLAT);
        assert_eq!(start(&p, &[], &limits()), ["B", "A"]);
    }

    #[test]
    fn required_dependencies_must_be_merged_or_resolved() {
        let p = plan(FLAT);
        assert_eq!(start(&p, &[("A", Status::AwaitingMerge)], &limits()), ["B"]);
        assert_eq!(
            start(&p, &[("A", Status::Merged)], &limits()),
            ["B", "C", "D"]
        );
        assert_eq!(
            start(&p, &[("A", Status::Resolved)], &limits()),
            ["B", "C", "D"]
        );
    }

    #[test]
    fn optional_dependencies_only_need_to_finish() {
        let p = plan(FLAT);
        let s = schedule(
            &p,
            &views(&p, &[("A", Status::Failed)]),
            SystemTime::UNIX_EPOCH,
            &limits(),
        );
        assert_eq!(ids(&p, &s.start), ["B", "D"]);
        let c = p.graph().task_node(p.lookup("C").unwrap()).unwrap();
        assert_eq!(
            s.readiness[c as usize],
            Readiness::Blocked(Blocker::Dependency(p.lookup("A").unwrap()))
        );
    }

    #[test]
    fn blocking_propagates_down_a_chain() {
        let p = plan(
            r#"
            [[task]]
            id = "A"
            [[task]]
            id = "B"
            depends_on = ["A"]
            [[task]]
            id = "C"
            depends_on = ["B"]
        "#,
        );
        let s = schedule(
            &p,
            &views(&p, &[("A", Status::Cancelled)]),
            SystemTime::UNIX_EPOCH,
            &limits(),
        );
        assert!(matches!(
            s.readiness[1],
            Readiness::Blocked(Blocker::Dependency(_))
        ));
        assert_eq!(
            s.readiness[2],
            Readiness::Blocked(Blocker::Dependency(p.lookup("B").unwrap()))
        );
    }

    #[test]
    fn aging_lifts_a_long_waiting_task() {
        let p = plan(FLAT);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(3600);
        let mut v = views(&p, &[]);
        v[0].ready_since = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(3600 - 1200));
        let mut l = limits();
        l.aging = Some(Duration::from_secs(600));
        l.max_parallel = 1;
        let s = schedule(&p, &v, now, &l);
        assert_eq!(ids(&p, &s.start), ["A"]);
        assert_eq!(ids(&p, &[s.held[0].0]), ["B"]);
        assert_eq!(
            effective_priority(3, Duration::from_secs(6000), Some(Duration::from_secs(600))),
            0
        );
        assert_eq!(
            effective_priority(3, Duration::from_secs(599), Some(Duration::from_secs(600))),
            3
        );
        assert_eq!(effective_priority(3, Duration::from_secs(6000), None), 3);
    }

    #[test]
    fn max_parallel_counts_running_tasks() {
        let p = plan(FLAT);
        let mut l = limits();
        l.max_parallel = 2;
        let s = schedule(
            &p,
            &views(&p, &[("A", Status::Running)]),
            SystemTime::UNIX_EPOCH,
            &l,
        );
        assert_eq!(ids(&p, &s.start), ["B"]);
        assert!(s.held.is_empty());
    }

    #[test]
    fn resources_are_shared_and_held_tasks_let_others_pass() {
        let p = plan(
            r#"
            [[task]]
            id = "A"
            resources = { db = 1 }
            [[task]]
            id = "B"
            resources = { db = 1 }
            [[task]]
            id = "C"
        "#,
        );
        let mut l = limits();
        l.resources.insert("db".to_owned(), 1);
        let s = schedule(&p, &views(&p, &[]), SystemTime::UNIX_EPOCH, &l);
        assert_eq!(ids(&p, &s.start), ["A", "C"]);
        assert_eq!(s.held, vec![(1, Hold::Resource("db".to_owned()))]);
        assert_eq!(start(&p, &[("A", Status::Running)], &l), ["C"]);
    }

    const PHASED: &str = r#"
        [[phase]]
        id = "P1"
        [[phase.milestone]]
        id = "M1"
        [[phase.milestone.task]]
        id = "T1"
        [[phase.milestone.task]]
        id = "T2"
        [[phase]]
        id = "P2"
        [[phase.milestone]]
        id = "M1"
        [[phase.milestone.task]]
        id = "T1"
    "#;

    #[test]
    fn the_phase_barrier_holds_later_phases() {
        let p = plan(PHASED);
        assert_eq!(start(&p, &[], &limits()), ["P1.M1.T1", "P1.M1.T2"]);
        assert_eq!(
            start(&p, &[("P1.M1.T1", Status::Merged)], &limits()),
            ["P1.M1.T2"]
        );
        let done = [
            ("P1.M1.T1", Status::Merged),
            ("P1.M1.T2", Status::Cancelled),
        ];
        assert_eq!(start(&p, &done, &limits()), ["P2.M1.T1"]);
        let failed = [("P1.M1.T1", Status::Merged), ("P1.M1.T2", Status::Failed)];
        let s = schedule(&p, &views(&p, &failed), SystemTime::UNIX_EPOCH, &limits());
        assert_eq!(
            s.readiness[2],
            Readiness::Blocked(Blocker::Barrier(p.lookup("P1.M1.T2").unwrap()))
        );
        let mut l = limits();
        l.phase_barrier = false;
        assert_eq!(start(&p, &[], &l), ["P1.M1.T1", "P1.M1.T2", "P2.M1.T1"]);
    }

    #[test]
    fn a_dependency_on_a_milestone_waits_for_all_of_it() {
        let p = plan(
            r#"
            [[milestone]]
            id = "M1"
            [[milestone.task]]
            id = "T1"
            [[milestone.task]]
            id = "T2"
            [[milestone]]
            id = "M2"
            depends_on = ["M1"]
            [[milestone.task]]
            id = "T1"
        "#,
        );
        assert_eq!(
            start(&p, &[("M1.T1", Status::Merged)], &limits()),
            ["M1.T2"]
        );
        let both = [("M1.T1", Status::Merged), ("M1.T2", Status::Resolved)];
        assert_eq!(start(&p, &both, &limits()), ["M2.T1"]);
    }

    #[test]
    fn retrying_tasks_restart_after_their_backoff() {
        let p = plan(FLAT);
        let mut v = views(&p, &[("A", Status::Retrying)]);
        v[0].not_before = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(30));
        let early = schedule(&p, &v, SystemTime::UNIX_EPOCH, &limits());
        assert_eq!(ids(&p, &early.start), ["B"]);
        let later = schedule(
            &p,
            &v,
            SystemTime::UNIX_EPOCH + Duration::from_secs(31),
            &limits(),
        );
        assert_eq!(ids(&p, &later.start), ["B", "A"]);
    }

    fn random_plan() -> impl Strategy<Value = (String, Vec<u8>)> {
        (2usize..30)
            .prop_flat_map(|n| {
                let deps =
                    prop::collection::vec(prop::collection::vec((0..n, prop::bool::ANY), 0..4), n);
                let statuses = prop::collection::vec(0u8..13, n);
                (Just(n), deps, statuses)
            })
            .prop_map(|(n, deps, statuses)| {
                let mut text = String::new();
                for (i, task_deps) in deps.iter().enumerate().take(n) {
                    text.push_str(&format!(
                        "[[task]]\nid = \"T{i}\"\npriority = {}\ndepends_on = [",
                        i % 4
                    ));
                    let mut first = true;
                    for (d, required) in task_deps.iter().filter(|(d, _)| *d < i) {
                        if !first {
                            text.push(',');
                        }
                        first = false;
                        text.push_str(&format!("{{ id = \"T{d}\", required = {required} }}"));
                    }
                    text.push_str("]\n");
                }
                (text, statuses)
            })
    }

    proptest! {
        #[test]
        fn never_starts_a_task_with_an_unmet_required_dependency((text, statuses) in random_plan()) {
            let p = plan(&text);
            let views: Vec<TaskView> = statuses.iter().map(|s| TaskView::new(Status::ALL[*s as usize])).collect();
            let s = schedule(&p, &views, SystemTime::UNIX_EPOCH, &limits());
            for t in &s.start {
                if !matches!(views[*t as usize].status, Status::Pending | Status::Ready) {
                    continue;
                }
                for edge in p.graph().deps_of(*t) {
                    let Target::Task(d) = edge.target else { continue };
                    let dep = match s.readiness[d as usize] {
                        Readiness::Blocked(_) => Status::Blocked,
                        _ => views[d as usize].status,
                    };
                    if edge.required {
                        prop_assert!(dep.satisfies(), "started T{t} with required dep in {dep}");
                    } else {
                        prop_assert!(dep.is_terminal(), "started T{t} with optional dep in {dep}");
                    }
                }
            }
        }
    }
}
