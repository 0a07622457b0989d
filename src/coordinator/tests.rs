//! The decision core driven by inputs alone: no processes, no git, no files.
//!
//! A [`Harness`] holds a [`RunState`] over a small plan and plays the
//! executor's part: it feeds inputs (an agent's end, a merge's outcome, a
//! person's command, a signal, the passing of time) and looks at the
//! effects that come back and at the state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;

use super::collect::AttemptReport;
use super::core::{Effect, Env, Input, LaunchRequest, Now, Options, RunState};
use super::recovery::{Facts, Runs};
use super::workspace::{FreeFate, Freshness, How, Provisioned};
use crate::config::{Config, OnFailure};
use crate::git::GitError;
use crate::lifecycle::Status;
use crate::merge_queue::build::{BuildReport, LinkResult};
use crate::merge_queue::candidate::Checked;
use crate::merge_queue::{Landing, LinkLanded, MergeOutcome, WorktreeAfter};
use crate::plan::{FullId, Plan, Rules};
use crate::runner::folder::{self, Liveness};
use crate::runner::output::LimitHit;
use crate::runner::spec::{End, ExitRecord};
use crate::state::events::EventKind;
use crate::state::inbox::{Action, Order, Received, Request};
use crate::state::model::{PauseCause, Purpose, Timestamp, Usage};
use crate::state::{State, StateDir};

fn id(s: &str) -> FullId {
    FullId::parse(s).unwrap()
}

fn plan(text: &str) -> Plan {
    crate::plan::from_bytes(Path::new("plan.toml"), text.as_bytes(), &Rules::default()).unwrap()
}

/// A core and a clock.
struct Harness {
    core: RunState,
    now: Now,
}

impl Harness {
    fn new(plan_text: &str, edit: impl FnOnce(&mut Config)) -> Harness {
        Harness::with_state(plan_text, edit, State::default(), Facts::default())
    }

    fn with_state(
        plan_text: &str,
        edit: impl FnOnce(&mut Config),
        state: State,
        facts: Facts,
    ) -> Harness {
        let mut config = Config::default();
        config.retry.backoff.jitter = false;
        edit(&mut config);
        let env = Env::new(
            Arc::new(plan(plan_text)),
            Arc::new(config),
            PathBuf::from("repo"),
            StateDir::at(Path::new("repo/.orchestrator")),
            "main".to_owned(),
            Options::default(),
        );
        let now = Now {
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            mono: Instant::now(),
        };
        let mut core = RunState::new(
            env,
            state,
            Some("t0".to_owned()),
            fastrand::Rng::with_seed(7),
        );
        let _ = core.start(facts, now);
        Harness { core, now }
    }

    fn feed(&mut self, input: Input) -> Vec<Effect> {
        self.core.handle(input, self.now)
    }

    /// Feeds an input, then ends the batch as the driver does.
    fn step(&mut self, input: Input) -> Vec<Effect> {
        let mut effects = self.feed(input);
        effects.extend(self.feed(Input::Tick));
        effects
    }

    fn tick(&mut self) -> Vec<Effect> {
        self.feed(Input::Tick)
    }

    fn wait(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    fn status(&self, s: &str) -> Status {
        self.core.status(&id(s))
    }

    fn provisioned(&mut self, task: &str, attempt: u32) -> Vec<Effect> {
        self.step(Input::Provisioned {
            task: id(task),
            attempt,
            free_owner: None,
            result: Ok(provisioned(task)),
            prepared: Ok(()),
        })
    }

    /// Plays an attempt's end: the supervisor exits, collection reports.
    fn ends(&mut self, unit: &str, attempt: u32, report: AttemptReport) -> Vec<Effect> {
        let mut effects = self.step(Input::Exited {
            unit: id(unit),
            attempt,
        });
        effects.extend(self.step(Input::Collected {
            unit: id(unit),
            attempt,
            report: Box::new(report),
        }));
        effects
    }

    /// Plays the executor's build of the links asked for: each is built,
    /// unless `ended` says otherwise for it.
    fn build_with(&mut self, mut ended: Vec<(&str, LinkResult)>) -> Vec<Effect> {
        let train = &self.core.merge.train;
        let Some(epoch) = train.building else {
            return Vec::new();
        };
        let onto = match train.built() {
            0 => train.base.clone().unwrap_or_else(|| "t0".to_owned()),
            n => train.links[n - 1].commit.clone().unwrap(),
        };
        let links = train.links[train.built()..]
            .iter()
            .map(|l| {
                let task = l.task.to_string();
                let tip = self
                    .core
                    .state()
                    .items
                    .get(&l.task)
                    .and_then(|s| s.queued.as_ref())
                    .and_then(|q| q.tip.clone())
                    .unwrap_or_else(|| format!("tip-{task}"));
                let result = match ended.iter().position(|(t, _)| *t == task) {
                    Some(i) => ended.remove(i).1,
                    None => LinkResult::Built {
                        commit: format!("c{epoch}-{task}"),
                        tip: Some(tip),
                    },
                };
                (task, result)
            })
            .collect();
        self.step(Input::Built {
            epoch,
            report: BuildReport {
                onto: Ok(onto),
                links,
            },
        })
    }

    fn build(&mut self) -> Vec<Effect> {
        self.build_with(Vec::new())
    }

    /// Plays the end of the check run on `commit`.
    fn checked(&mut self, commit: &str, checked: Checked) -> Vec<Effect> {
        let run = self
            .core
            .merge
            .train
            .checks
            .iter()
            .find(|r| r.commit == commit)
            .unwrap_or_else(|| panic!("no check runs on {commit}"));
        let slot = run.slot;
        self.step(Input::Checked {
            slot,
            commit: commit.to_owned(),
            checked,
        })
    }

    /// Returns the commits being checked, in the order they started.
    fn checking(&self) -> Vec<String> {
        self.core
            .merge
            .train
            .checks
            .iter()
            .filter(|r| r.live)
            .map(|r| r.commit.clone())
            .collect()
    }

    /// Plays the end of the landing under way.
    fn land_with(&mut self, landing: Landing) -> Vec<Effect> {
        self.step(Input::Landed(Box::new(landing)))
    }

    /// Plays a landing under way that moved the target.
    fn land(&mut self) -> Vec<Effect> {
        let train = &self.core.merge.train;
        let Some((_, n)) = train.landing.clone() else {
            return Vec::new();
        };
        let mut prev = "t0".to_owned();
        let links = train.links[..n]
            .iter()
            .map(|l| {
                let commit = l.commit.clone().unwrap();
                LinkLanded {
                    task: l.task.to_string(),
                    commit: commit.clone(),
                    prev: std::mem::replace(&mut prev, commit),
                    backup: None,
                    branch_deleted: true,
                    worktree: WorktreeAfter::Detached(PathBuf::from("wt").join(l.task.as_str())),
                    cleanup: None,
                }
            })
            .collect();
        self.land_with(Landing::Landed {
            took: Duration::from_millis(5),
            hooks_in: PathBuf::from("repo"),
            links,
        })
    }

    /// Builds, passes every check running and lands, until the queue rests.
    fn merge_all(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for _ in 0..20 {
            effects.extend(self.build());
            for commit in self.checking() {
                effects.extend(self.checked(&commit, passed()));
            }
            let landed = self.land();
            let idle = landed.is_empty();
            effects.extend(landed);
            if idle && self.core.merge.train.building.is_none() && self.checking().is_empty() {
                break;
            }
        }
        effects
    }

    fn command(&mut self, action: Action, target: &str) -> Vec<Effect> {
        self.order(Order::item(action, id(target)))
    }

    fn order(&mut self, order: Order) -> Vec<Effect> {
        let command = Request {
            order,
            sent: Timestamp::at(self.now.wall),
            from_pid: 1,
            reason: None,
        };
        self.step(Input::Command {
            received: Received {
                path: PathBuf::from("inbox/1.json"),
                command: Ok(command.clone()),
            },
            command,
        })
    }
}

fn provisioned(task: &str) -> Provisioned {
    Provisioned {
        worktree: PathBuf::from("wt").join(task),
        base: Some("t0".to_owned()),
        how: How::Created,
        tip: "t0".to_owned(),
        freshness: Freshness::Current,
        free: FreeFate::NotOffered,
    }
}

fn exit(end: End) -> Option<ExitRecord> {
    Some(ExitRecord {
        end,
        started: Timestamp(SystemTime::UNIX_EPOCH),
        finished: Timestamp(SystemTime::UNIX_EPOCH + Duration::from_secs(3)),
        output_bytes: 0,
        log_truncated: false,
    })
}

fn done_with(commits: u32) -> AttemptReport {
    AttemptReport {
        exit: exit(End::Exited { code: 0 }),
        commits: Some(commits),
        tip: Some(format!("tip{commits}")),
        ..AttemptReport::default()
    }
}

fn exit_code(code: i32) -> AttemptReport {
    AttemptReport {
        exit: exit(End::Exited { code }),
        ..AttemptReport::default()
    }
}

fn passed() -> Checked {
    Checked::Passed {
        checks: vec!["test".to_owned()],
    }
}

fn red(check: &str) -> Checked {
    Checked::Failed {
        check: check.to_owned(),
        failure: crate::merge_queue::checks::CheckFailure::Exited { code: 1 },
        log: PathBuf::from(format!("repo/.orchestrator/checks/A/{check}.log")),
        passed: Vec::new(),
    }
}

/// A config whose merges run one check, `test`.
fn with_check(c: &mut Config) {
    c.policy.checks = vec![crate::config::Check {
        name: "test".to_owned(),
        run: "true".to_owned(),
        timeout: crate::config::Dur(Duration::from_secs(60)),
    }];
}

/// The ids provisioned, in order.
fn provisions(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Provision(p) => Some(p.task.to_string()),
            _ => None,
        })
        .collect()
}

fn launches(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Launch(l) => Some(format!("{}#{}", l.unit, l.attempt)),
            _ => None,
        })
        .collect()
}

fn events(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit { id, kind } => Some(match id {
                Some(id) => format!("{} {id}", kind.name()),
                None => kind.name().to_owned(),
            }),
            _ => None,
        })
        .collect()
}

const TWO: &str = "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\ndepends_on = [\"A\"]\n";

#[test]
fn a_task_goes_from_ready_to_merged_and_its_dependent_starts_after() {
    let mut h = Harness::new(TWO, with_check);
    let effects = h.tick();
    assert_eq!(provisions(&effects), ["A"]);
    assert_eq!(events(&effects), ["task.ready A", "task.started A"]);
    assert_eq!(h.status("A"), Status::Running);
    assert_eq!(h.status("B"), Status::Pending);
    let effects = h.provisioned("A", 1);
    assert_eq!(launches(&effects), ["A#1"]);
    let Some(Effect::Launch(launch)) = effects.iter().find(|e| matches!(e, Effect::Launch(_)))
    else {
        unreachable!()
    };
    assert_eq!(launch.cwd, Path::new("wt/A"));
    assert_eq!(launch.placement, crate::runner::executor::Placement::Local);
    assert!(
        launch
            .env
            .contains(&("ORCH_TASK_ID".to_owned(), "A".to_owned()))
    );
    assert_eq!(
        launch.folder.path(),
        Path::new("repo/.orchestrator/runs/A/1")
    );
    let effects = h.feed(Input::Exited {
        unit: id("A"),
        attempt: 1,
    });
    assert!(
        matches!(effects[..], [Effect::Collect { .. }]),
        "{effects:?}"
    );
    let effects = h.step(Input::Collected {
        unit: id("A"),
        attempt: 1,
        report: Box::new(done_with(2)),
    });
    assert_eq!(
        events(&effects),
        ["task.completed A", "merge.started A"],
        "the finished task is merged at once"
    );
    assert_eq!(h.status("A"), Status::Merging);
    assert!(effects.iter().any(|e| matches!(e, Effect::Build { .. })));
    assert!(provisions(&effects).is_empty(), "B waits for A's merge");
    let effects = h.merge_all();
    assert_eq!(h.status("A"), Status::Merged);
    assert_eq!(
        events(&effects),
        [
            "check.started A",
            "check.passed A",
            "task.merged A",
            "task.ready B",
            "task.started B"
        ]
    );
    assert_eq!(provisions(&effects), ["B"]);
    let state = &h.core.state().items[&id("A")];
    assert_eq!(state.merge_commit.as_deref(), Some("c0-A"));
    assert_eq!(state.merged_onto.as_deref(), Some("t0"));
    assert_eq!(state.branch, None, "the merge deleted the branch");
    assert!(effects.iter().any(|e| matches!(e, Effect::Persist)));
}

#[test]
fn a_task_runs_where_its_executor_says_and_its_job_is_recorded_once() {
    use crate::config::{ExecutorKind, WorkspaceMode};
    use crate::runner::executor::Placement;
    use crate::state::model::AttemptJob;
    let plan = "[[task]]\nid = \"A\"\nexecutor = { cpus = 8 }\n\
                [[task]]\nid = \"B\"\nexecutor = \"local\"\n";
    let mut h = Harness::new(plan, |c| {
        c.executor.kind = ExecutorKind::Slurm;
        c.executor.workspace = WorkspaceMode::Git;
        c.executor.remote = Some("ssh://host/r.git".to_owned());
        c.executor.cpus = Some(2);
    });
    h.tick();
    let mut launched = h.provisioned("A", 1);
    launched.extend(h.provisioned("B", 1));
    let placements: Vec<_> = launched
        .iter()
        .filter_map(|e| match e {
            Effect::Launch(l) => Some((l.unit.to_string(), l.placement.clone())),
            _ => None,
        })
        .collect();
    let [(a, Placement::Slurm(cluster)), (b, Placement::Local)] = &placements[..] else {
        panic!("{placements:?}")
    };
    assert_eq!((a.as_str(), b.as_str()), ("A", "B"));
    assert_eq!(cluster.settings.cpus, Some(8), "the task's override wins");
    let git = cluster.git.as_ref().unwrap();
    assert_eq!(git.remote, "ssh://host/r.git");
    assert_eq!(git.publish, "refs/heads/orch/A:refs/heads/orch/A");
    let back = git.push_back.as_ref().unwrap();
    assert_eq!(back.result_ref, "refs/orch/results/A/1");
    assert!(
        back.commit_message
            .as_deref()
            .is_some_and(|m| m.ends_with("Orch-Task: A\n"))
    );

    let queued = AttemptJob {
        executor: "slurm".to_owned(),
        id: "42".to_owned(),
        node: None,
    };
    let running = AttemptJob {
        node: Some("n1".to_owned()),
        ..queued.clone()
    };
    let mut placed = Vec::new();
    for job in [queued.clone(), running.clone(), running.clone(), queued] {
        placed.extend(events(&h.step(Input::Placed {
            unit: id("A"),
            attempt: 1,
            job,
        })));
    }
    assert_eq!(placed, ["task.placed A", "task.placed A"], "news only");
    let attempt = &h.core.state().items[&id("A")].attempts[0];
    assert_eq!(attempt.job.as_ref(), Some(&running), "the node is kept");
    let mut report = done_with(1);
    report.job = Some(crate::runner::spec::JobRecord {
        executor: "slurm".to_owned(),
        id: Some("42".to_owned()),
        node: Some("n1".to_owned()),
        state: Some("COMPLETED".to_owned()),
        ..Default::default()
    });
    let effects = h.ends("A", 1, report);
    assert!(!events(&effects).contains(&"task.placed A".to_owned()));
}

#[test]
fn a_failed_attempt_waits_out_its_backoff_then_runs_again_until_attempts_are_spent() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", |c| c.retry.max_attempts = 2);
    h.tick();
    h.provisioned("A", 1);
    let effects = h.ends("A", 1, exit_code(1));
    assert_eq!(events(&effects), ["task.retrying A"]);
    assert_eq!(h.status("A"), Status::Retrying);
    let a = &h.core.state().items[&id("A")];
    assert_eq!(a.reason.as_deref(), Some("exit code 1"));
    let wait = a.not_before.unwrap().0.duration_since(h.now.wall).unwrap();
    assert_eq!(wait, Duration::from_secs(30));
    assert!(h.core.next_wake(h.now) <= h.now.mono + Duration::from_secs(30));
    h.wait(Duration::from_secs(29));
    assert!(provisions(&h.tick()).is_empty(), "not before the backoff");
    assert!(!h.core.done(h.now), "a retry is pending");
    h.wait(Duration::from_secs(1));
    assert_eq!(provisions(&h.tick()), ["A"]);
    h.provisioned("A", 2);
    let effects = h.ends("A", 2, exit_code(1));
    assert_eq!(events(&effects), ["task.failed A"]);
    assert_eq!(h.status("A"), Status::Failed);
    assert_eq!(
        h.core.state().items[&id("A")].reason.as_deref(),
        Some("exit code 1 (attempt 2 of 2; no attempts left)")
    );
    assert!(h.core.done(h.now));
}

/// Issue 15: only an attempt whose worktree is known clean as it starts is
/// watched (collection then asks git about what the agent changed alone).
#[test]
fn only_the_first_attempt_in_a_worktree_made_clean_is_watched() {
    let provision = |how: How, post_create: bool| {
        let mut h = Harness::new("[[task]]\nid = \"A\"\n", |c| {
            c.retry.max_attempts = 2;
            if post_create {
                c.hooks.post_create = vec!["true".to_owned()];
            }
        });
        h.tick();
        let effects = h.step(Input::Provisioned {
            task: id("A"),
            attempt: 1,
            free_owner: None,
            result: Ok(Provisioned {
                how,
                ..provisioned("A")
            }),
            prepared: Ok(()),
        });
        (the_launch(&effects).watch.is_some(), h)
    };
    let table = [
        (How::Created, false, true),
        (How::Recycled, false, true),
        // A worktree the task had: an earlier attempt may have left files.
        (How::Reused, false, false),
        // `post_create` may have left files the agent did not write.
        (How::Created, true, false),
    ];
    for (how, post_create, watched) in table {
        assert_eq!(
            provision(how, post_create).0,
            watched,
            "{how:?} {post_create}"
        );
    }
    // A retry in the same worktree is scanned whole.
    let (_, mut h) = provision(How::Created, false);
    h.ends("A", 1, exit_code(1));
    h.wait(Duration::from_secs(30));
    h.tick();
    let effects = h.step(Input::Provisioned {
        task: id("A"),
        attempt: 2,
        free_owner: None,
        result: Ok(Provisioned {
            how: How::Reused,
            ..provisioned("A")
        }),
        prepared: Ok(()),
    });
    assert_eq!(the_launch(&effects).watch, None);
}

#[test]
fn issue_18_attempts_are_counted_within_the_budget_a_retry_gives() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", |c| c.retry.max_attempts = 2);
    h.tick();
    h.provisioned("A", 1);
    h.ends("A", 1, exit_code(2));
    assert_eq!(h.status("A"), Status::Failed);
    h.command(Action::Retry, "A");
    h.provisioned("A", 2);
    h.ends("A", 2, exit_code(1));
    assert_eq!(h.status("A"), Status::Retrying);
    h.wait(Duration::from_secs(30));
    h.tick();
    h.provisioned("A", 3);
    h.ends("A", 3, exit_code(1));
    assert_eq!(h.status("A"), Status::Failed);
    assert_eq!(
        h.core.state().items[&id("A")].reason.as_deref(),
        Some("exit code 1 (attempt 2 of 2; no attempts left)"),
        "attempt 3 is the second of the budget the retry gave"
    );
}

#[test]
fn a_dependent_of_a_failed_task_is_blocked_naming_it() {
    let mut h = Harness::new(TWO, |c| c.retry.max_attempts = 1);
    h.tick();
    h.provisioned("A", 1);
    let effects = h.ends("A", 1, exit_code(2));
    assert_eq!(events(&effects), ["task.failed A", "task.blocked B"]);
    assert_eq!(h.status("B"), Status::Blocked);
    assert_eq!(
        h.core.state().items[&id("B")].reason.as_deref(),
        Some("required dependency `A` is failed")
    );
    assert!(h.core.done(h.now));
}

#[test]
fn issue_18_a_milestone_blocking_a_task_is_named_with_its_derived_status() {
    let plan = "[[milestone]]\nid = \"M1\"\n[[milestone.task]]\nid = \"A\"\n\
        [[milestone]]\nid = \"M2\"\n[[milestone.task]]\nid = \"B\"\n[[milestone.task]]\nid = \"D\"\n\
        [[milestone]]\nid = \"M3\"\n[[milestone.task]]\nid = \"C\"\ndepends_on = [\"M1\"]\n\
        [[milestone.task]]\nid = \"E\"\ndepends_on = [\"M2\"]\n";
    let mut h = Harness::new(plan, |c| {
        c.retry.max_attempts = 1;
        c.agent.max_parallel = 3;
    });
    h.tick();
    for task in ["M1.A", "M2.B", "M2.D"] {
        h.provisioned(task, 1);
    }
    h.ends("M1.A", 1, exit_code(2));
    h.ends("M2.B", 1, exit_code(2));
    let reason = |id: &str| h.core.state().items[&super::tests::id(id)].reason.clone();
    assert_eq!(
        reason("M3.C").as_deref(),
        Some("required dependency `M1` is failed"),
        "the milestone's status as `orch status` shows it"
    );
    assert_eq!(
        reason("M3.E").as_deref(),
        Some("required dependency `M2` cannot be met: its task `M2.B` is failed"),
        "a milestone still running names the task that blocks"
    );
}

#[test]
fn every_rule_of_the_finish_cascade_reaches_the_item() {
    let cases: Vec<(&str, AttemptReport, Status, &str)> = vec![
        ("success", done_with(1), Status::Merging, "task.completed A"),
        (
            "nothing changed",
            done_with(0),
            Status::Retrying,
            "task.retrying A",
        ),
        (
            "a hook failed",
            AttemptReport {
                hook_error: Some(crate::runner::hook::HookError::Failed {
                    stage: "post_agent",
                    command: "make lint".to_owned(),
                    exit: crate::runner::hook::HookExit::Code(2),
                    log: PathBuf::from("x.log"),
                }),
                ..done_with(1)
            },
            Status::Retrying,
            "task.retrying A",
        ),
        (
            "no exit.json: interrupted, and started again at once",
            AttemptReport::default(),
            Status::Running,
            "task.interrupted A",
        ),
        (
            "cannot commit",
            AttemptReport {
                commit_error: Some(GitError::NoSuchBranch {
                    branch: "orch/A".to_owned(),
                }),
                ..done_with(1)
            },
            Status::Failed,
            "task.failed A",
        ),
    ];
    for (name, report, status, event) in cases {
        let mut h = Harness::new("[[task]]\nid = \"A\"\n", |_| {});
        h.tick();
        h.provisioned("A", 1);
        let effects = h.ends("A", 1, report);
        assert_eq!(h.status("A"), status, "{name}");
        assert_eq!(
            events(&effects).first().map(String::as_str),
            Some(event),
            "{name}"
        );
    }
}

/// Renders the prompt of the first attempt an effect launches, with the
/// built-in templates.
fn prompt_of(effects: &[Effect]) -> String {
    let Some(Effect::Launch(launch)) = effects.iter().find(|e| matches!(e, Effect::Launch(_)))
    else {
        panic!("nothing launched: {effects:?}");
    };
    crate::runner::prompt::render(
        launch.prompt.template,
        Path::new("no-overrides"),
        &launch.prompt.context,
    )
    .unwrap()
}

/// Returns the `## Work this builds on` section of a prompt.
fn builds_on(prompt: &str) -> &str {
    let Some(start) = prompt.find("## Work this builds on") else {
        return "";
    };
    let rest = &prompt[start..];
    let end = rest[2..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

#[test]
fn issue_18_a_failed_optional_dependency_is_not_presented_as_merged_work() {
    let plan = "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n\
        [[task]]\nid = \"C\"\ndepends_on = [\"A\", { id = \"B\", required = false }]\n";
    let mut h = Harness::new(plan, |c| c.retry.max_attempts = 1);
    h.tick();
    h.provisioned("A", 1);
    h.provisioned("B", 1);
    h.ends("A", 1, done_with(1));
    h.merge_all();
    h.ends("B", 1, exit_code(2));
    assert_eq!(h.status("C"), Status::Running);
    let prompt = prompt_of(&h.provisioned("C", 1));
    insta::assert_snapshot!(builds_on(&prompt), @"
    ## Work this builds on

    These tasks are finished and their work is in your branch:
    - `A` (merged): A

    These optional dependencies ended without being merged, so their work is not in your branch:
    - `B` (failed): B
    ");
}

#[test]
fn issue_18_a_subtask_sees_the_siblings_it_depends_on_and_their_summaries() {
    let plan = "[[task]]\nid = \"T1\"\n[[task.subtask]]\nid = \"S1\"\ntitle = \"Use the parser\"\ndepends_on = [\"S2\"]\n\
        [[task.subtask]]\nid = \"S2\"\ntitle = \"Write the parser\"\n";
    let mut h = Harness::new(plan, |c| c.agent.unit = crate::config::AgentUnit::Subtask);
    h.tick();
    assert_eq!(launches(&h.provisioned("T1", 1)), ["T1.S2#1"]);
    let report = AttemptReport {
        result: Some(crate::runner::spec::AgentResult {
            status: None,
            summary: Some("The parser is in src/parse.rs.".to_owned()),
            retry: None,
            retry_after: None,
        }),
        ..done_with(1)
    };
    let effects = h.ends("T1.S2", 1, report);
    assert_eq!(launches(&effects), ["T1.S1#1"]);
    insta::assert_snapshot!(builds_on(&prompt_of(&effects)), @"
    ## Work this builds on

    These are finished and their work is in your branch:
    - `T1.S2` (done): Write the parser. The parser is in src/parse.rs.
    ");
}

#[test]
fn issue_18_a_branch_started_again_counts_its_steps_from_the_new_tip() {
    let plan = "[[task]]\nid = \"T1\"\n[[task.subtask]]\nid = \"S1\"\n";
    let mut h = Harness::new(plan, |c| {
        c.agent.unit = crate::config::AgentUnit::Subtask;
        c.retry.max_attempts = 1;
    });
    h.tick();
    h.provisioned("T1", 1);
    h.ends("T1.S1", 1, exit_code(2));
    assert_eq!(h.status("T1"), Status::Failed);
    let base = |h: &Harness| h.core.state().items[&id("T1.S1")].base.clone();
    assert_eq!(base(&h).as_deref(), Some("t0"));
    h.command(Action::Retry, "T1");
    let effects = h.step(Input::Provisioned {
        task: id("T1"),
        attempt: 2,
        free_owner: None,
        result: Ok(Provisioned {
            base: Some("t5".to_owned()),
            tip: "t5".to_owned(),
            freshness: Freshness::Restarted {
                from: "t0".to_owned(),
            },
            ..provisioned("T1")
        }),
        prepared: Ok(()),
    });
    assert_eq!(launches(&effects), ["T1.S1#2"]);
    assert_eq!(
        base(&h).as_deref(),
        Some("t5"),
        "the step's commits count from where the branch starts now"
    );
    assert_eq!(h.core.state().items[&id("T1")].base.as_deref(), Some("t5"));
}

/// Runs `A` to its merge and returns the harness with `A` merging, its
/// link asked to be built.
fn merging(edit: impl FnOnce(&mut Config)) -> Harness {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", |c| {
        with_check(c);
        edit(c);
    });
    h.tick();
    h.provisioned("A", 1);
    h.ends("A", 1, done_with(1));
    assert_eq!(h.status("A"), Status::Merging);
    h
}

#[test]
fn a_conflict_goes_back_to_the_agent_with_the_target_merged_in() {
    let mut h = merging(|_| {});
    let effects = h.build_with(vec![(
        "A",
        LinkResult::Ended(MergeOutcome::Conflicts {
            files: vec!["a.txt".to_owned()],
            onto: "t1".to_owned(),
        }),
    )]);
    assert_eq!(events(&effects), ["merge.conflicted A", "task.started A"]);
    assert_eq!(h.status("A"), Status::Running);
    let Some(Effect::Provision(p)) = effects.iter().find(|e| matches!(e, Effect::Provision(_)))
    else {
        panic!("a hand-back provisions: {effects:?}");
    };
    assert_eq!(p.request.merge_target.as_deref(), Some("main"));
    let a = &h.core.state().items[&id("A")];
    assert_eq!(a.attempts[1].purpose, Some(Purpose::Conflict));
    let effects = h.provisioned("A", 2);
    let Some(Effect::Launch(launch)) = effects.iter().find(|e| matches!(e, Effect::Launch(_)))
    else {
        panic!("{effects:?}");
    };
    assert_eq!(launch.prompt.template.0, "conflict.md");
    assert_eq!(
        launch
            .prompt
            .context
            .problem
            .as_ref()
            .map(|p| p.files.clone()),
        Some(vec!["a.txt".to_owned()])
    );
}

#[test]
fn a_retry_of_a_hand_back_says_its_purpose_when_it_starts() {
    let mut h = merging(|_| {});
    h.build_with(vec![(
        "A",
        LinkResult::Ended(MergeOutcome::Conflicts {
            files: vec!["a.txt".to_owned()],
            onto: "t1".to_owned(),
        }),
    )]);
    h.provisioned("A", 2);
    h.ends("A", 2, exit_code(1));
    assert_eq!(h.status("A"), Status::Retrying);
    h.wait(Duration::from_secs(60));
    let started = h.tick().into_iter().find_map(|e| match e {
        Effect::Emit {
            kind: EventKind::TaskStarted {
                attempt, purpose, ..
            },
            ..
        } => Some((attempt, purpose)),
        _ => None,
    });
    assert_eq!(started, Some((3, Some(Purpose::Conflict))));
}

#[test]
fn a_conflict_handed_back_to_a_git_workspace_job_is_merged_by_the_job() {
    use crate::config::{ExecutorKind, WorkspaceMode};
    use crate::runner::executor::{Placement, TargetMerge};
    let mut h = merging(|c| {
        c.executor.kind = ExecutorKind::Slurm;
        c.executor.workspace = WorkspaceMode::Git;
        c.executor.remote = Some("ssh://host/r.git".to_owned());
    });
    let effects = h.build_with(vec![(
        "A",
        LinkResult::Ended(MergeOutcome::Conflicts {
            files: vec!["a.txt".to_owned()],
            onto: "t1".to_owned(),
        }),
    )]);
    let Some(Effect::Provision(p)) = effects.iter().find(|e| matches!(e, Effect::Provision(_)))
    else {
        panic!("a hand-back provisions: {effects:?}");
    };
    assert_eq!(
        p.request.merge_target, None,
        "the worktree here stays clean: the job merges"
    );
    let merge_of = |effects: &[Effect]| {
        effects.iter().find_map(|e| match e {
            Effect::Launch(l) => match &l.placement {
                Placement::Slurm(c) => Some(c.git.as_ref().unwrap().merge.clone()),
                Placement::Local => None,
            },
            _ => None,
        })
    };
    let target = Some(TargetMerge {
        target: "main".to_owned(),
        remote_ref: "refs/orch/target/A".to_owned(),
    });
    let effects = h.provisioned("A", 2);
    assert_eq!(merge_of(&effects), Some(target.clone()));
    // A retry of the hand-back merges again, in its own fresh clone.
    h.ends("A", 2, exit_code(1));
    assert_eq!(h.status("A"), Status::Retrying);
    h.wait(Duration::from_secs(60));
    h.tick();
    assert_eq!(merge_of(&h.provisioned("A", 3)), Some(target));
}

#[test]
fn a_conflict_waits_for_a_person_when_configured() {
    let mut h = merging(|c| c.merge.on_conflict = OnFailure::Stop);
    let effects = h.build_with(vec![(
        "A",
        LinkResult::Ended(MergeOutcome::Conflicts {
            files: vec!["a.txt".to_owned()],
            onto: "t1".to_owned(),
        }),
    )]);
    assert_eq!(events(&effects), ["merge.conflicted A"]);
    assert_eq!(h.status("A"), Status::Conflicted);
    assert!(
        h.core.state().items[&id("A")]
            .reason
            .as_deref()
            .unwrap()
            .ends_with(
                "waiting for a person: fix the branch and `orch retry A`, or `orch resolve A`"
            )
    );
    assert!(h.core.done(h.now));
}

#[test]
fn a_red_check_fails_the_task_when_no_agent_may_fix_it() {
    let mut h = merging(|c| c.merge.on_check_failure = OnFailure::Stop);
    let effects = h.build();
    assert_eq!(events(&effects), ["check.started A"]);
    let effects = h.checked(
        "c0-A",
        Checked::Failed {
            check: "test".to_owned(),
            failure: crate::merge_queue::checks::CheckFailure::Exited { code: 1 },
            log: PathBuf::from("repo/.orchestrator/checks/A/test.log"),
            passed: vec!["lint".to_owned()],
        },
    );
    assert_eq!(
        events(&effects),
        ["check.passed A", "check.failed A", "task.failed A"]
    );
    assert_eq!(h.status("A"), Status::Failed);
    assert_eq!(
        h.core.state().items[&id("A")].reason.as_deref(),
        Some("check `test` failed: exit code 1; log: .orchestrator/checks/A/test.log")
    );
    assert!(h.core.done(h.now));
}

#[test]
fn issue_14_a_waiting_merge_is_said_once_and_writes_nothing_while_it_waits() {
    let mut h = merging(|_| {});
    h.build();
    h.checked("c0-A", passed());
    let waiting = |file: &str| Landing::Blocked {
        why: crate::merge_queue::WaitReason::TargetDirty {
            target: "main".to_owned(),
            checkout: PathBuf::from("/repo"),
            blockers: vec![crate::merge_queue::checkout::Blocker {
                path: file.to_owned(),
                why: crate::merge_queue::checkout::InTheWay::Untracked,
            }],
        },
        tasks: vec!["A".to_owned()],
    };
    let effects = h.land_with(waiting("a.txt"));
    assert_eq!(events(&effects), ["merge.waiting A"]);
    assert_eq!(
        h.status("A"),
        Status::Merging,
        "it waits as part of its merge"
    );
    h.wait(Duration::from_secs(1));
    assert!(
        !h.tick().iter().any(|e| matches!(e, Effect::Probe(_))),
        "merging pauses"
    );
    h.wait(Duration::from_secs(1));
    for round in 0..3 {
        let effects = h.tick();
        assert!(
            effects.iter().any(|e| matches!(e, Effect::Probe(_))),
            "round {round}: {effects:?}"
        );
        let effects = h.step(Input::Probed {
            task: id("A"),
            waiting: Some("`main` is checked out in `/repo`, where the merge would overwrite `a.txt` (untracked); merging resumes once they are committed, reverted or moved away".to_owned()),
        });
        assert!(events(&effects).is_empty(), "the same reason is said once");
        assert!(
            !effects.iter().any(|e| matches!(e, Effect::Persist)),
            "nothing to write: {effects:?}"
        );
        h.wait(super::core::WAIT_PAUSE);
    }
    h.tick();
    let effects = h.step(Input::Probed {
        task: id("A"),
        waiting: None,
    });
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Build { .. })),
        "it rejoins"
    );
    let effects = h.merge_all();
    assert_eq!(
        events(&effects),
        ["check.started A", "check.passed A", "task.merged A"]
    );
}

#[test]
fn issue_14_a_task_with_a_file_in_its_way_waits_apart_and_the_others_land() {
    let mut h = queued(&["A", "B"], |_| {});
    h.build();
    h.checked("c0-B", passed());
    let effects = h.land_with(Landing::Blocked {
        why: crate::merge_queue::WaitReason::TargetDirty {
            target: "main".to_owned(),
            checkout: PathBuf::from("/repo"),
            blockers: vec![crate::merge_queue::checkout::Blocker {
                path: "work-A.txt".to_owned(),
                why: crate::merge_queue::checkout::InTheWay::Untracked,
            }],
        },
        tasks: vec!["A".to_owned()],
    });
    assert_eq!(events(&effects), ["merge.waiting A"]);
    h.merge_all();
    assert_eq!(h.status("B"), Status::Merged, "B does not wait behind A");
    assert_eq!(h.status("A"), Status::Merging, "A waits apart");
    assert!(h.core.merge.parked.contains_key(&id("A")));
}

#[test]
fn a_branch_moved_since_it_was_queued_is_queued_at_its_new_tip() {
    let mut h = merging(|_| {});
    let effects = h.build_with(vec![(
        "A",
        LinkResult::Ended(MergeOutcome::BranchMoved {
            tip: "t9".to_owned(),
            backup: None,
        }),
    )]);
    assert_eq!(events(&effects), ["merge.requeued A", "merge.started A"]);
    assert!(effects.iter().any(|e| matches!(e, Effect::Build { links, .. }
        if matches!(&links[0].what, crate::merge_queue::build::LinkWhat::Merge { queued_tip: Some(t), .. } if t == "t9"))));
}

#[test]
fn a_target_gone_halts_the_run_once_quiet() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n", |_| {});
    h.tick();
    let effects = h.step(Input::Provisioned {
        task: id("A"),
        attempt: 1,
        free_owner: None,
        result: Err(GitError::NoSuchBranch {
            branch: "main".to_owned(),
        }),
        prepared: Ok(()),
    });
    assert_eq!(events(&effects), ["task.interrupted A"]);
    assert!(
        matches!(h.core.halt(), Some(super::core::Halt::TargetGone { last: Some(t) }) if t == "t0")
    );
    assert!(!h.core.done(h.now), "B is still being provisioned");
    h.step(Input::Provisioned {
        task: id("B"),
        attempt: 1,
        free_owner: None,
        result: Ok(provisioned("B")),
        prepared: Ok(()),
    });
    assert_eq!(h.status("A"), Status::Retrying);
    h.ends("B", 1, done_with(1));
    assert_eq!(
        h.status("B"),
        Status::AwaitingMerge,
        "nothing merges once halted"
    );
    assert!(h.core.done(h.now));
}

#[test]
fn a_cancel_during_a_landing_stops_it_then_cancels_or_is_refused_if_it_landed() {
    for landed_first in [false, true] {
        let mut h = merging(|_| {});
        h.build();
        h.checked("c0-A", passed());
        assert!(h.core.merge.train.landing.is_some());
        let effects = h.command(Action::Cancel, "A");
        assert!(effects.iter().any(|e| matches!(e, Effect::StopLanding)));
        assert!(
            !effects.iter().any(|e| matches!(e, Effect::Reply { .. })),
            "answered once the landing ended"
        );
        assert_eq!(h.status("A"), Status::Merging);
        let again = h.command(Action::Cancel, "A");
        assert!(
            !again.iter().any(|e| matches!(e, Effect::StopLanding)),
            "the same command file, seen again"
        );
        let effects = if landed_first {
            h.land()
        } else {
            h.land_with(Landing::Ended(MergeOutcome::Interrupted))
        };
        let reply = effects.iter().find_map(|e| match e {
            Effect::Reply { reply, .. } => Some(reply.clone()),
            _ => None,
        });
        let reply = reply.expect("answered");
        if landed_first {
            assert_eq!(h.status("A"), Status::Merged);
            assert!(!reply.ok);
            assert_eq!(
                reply.message,
                "cannot cancel `A`: its merge landed before it could be stopped; it is `merged`"
            );
        } else {
            assert_eq!(h.status("A"), Status::Cancelled);
            assert!(reply.ok, "{}", reply.message);
            assert_eq!(events(&effects), ["task.cancelled A"]);
        }
    }
}

#[test]
fn a_cancel_of_a_task_being_checked_takes_it_out_of_the_queue_at_once() {
    let mut h = merging(|_| {});
    h.build();
    assert_eq!(h.checking(), ["c0-A"]);
    let effects = h.command(Action::Cancel, "A");
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::CancelCheck { slot: 0 }))
    );
    assert_eq!(h.status("A"), Status::Cancelled);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Reply { reply, .. } if reply.ok))
    );
    assert!(!h.core.done(h.now), "its check is still stopping");
    h.checked("c0-A", Checked::Stopped);
    assert!(h.core.done(h.now));
}

#[test]
fn a_landed_merge_is_written_before_its_post_merge_hooks_run() {
    let mut h = merging(|c| c.hooks.post_merge = vec!["true".to_owned()]);
    h.build();
    h.checked("c0-A", passed());
    let effects = h.land();
    let flush = effects.iter().position(|e| matches!(e, Effect::Flush));
    let hooks = effects
        .iter()
        .position(|e| matches!(e, Effect::PostMerge(_)));
    assert!(flush.is_some() && flush < hooks, "{effects:?}");
    assert_eq!(h.core.state().landed.as_deref(), Some("c0-A"));
    assert!(!h.core.done(h.now), "the hooks still run");
    let effects = h.step(Input::PostMerged {
        failures: vec![(
            id("A"),
            crate::runner::hook::HookError::Failed {
                stage: "post_merge",
                command: "true".to_owned(),
                exit: crate::runner::hook::HookExit::Code(1),
                log: PathBuf::from("hooks/A/post_merge.log"),
            },
        )],
    });
    assert_eq!(events(&effects), ["hook.failed A"]);
    assert!(h.core.done(h.now));
}

#[test]
fn a_target_moved_under_orch_halts_and_is_remembered() {
    let mut h = merging(|_| {});
    let effects = h.step(Input::Built {
        epoch: h.core.merge.train.building.unwrap(),
        report: BuildReport {
            onto: Err(MergeOutcome::TargetRewound {
                lost: "m0".to_owned(),
                head: "x1".to_owned(),
                backup: "refs/orch/backup/@target/main/1".to_owned(),
            }),
            links: Vec::new(),
        },
    });
    assert_eq!(events(&effects), ["merge.waiting A"]);
    assert_eq!(h.status("A"), Status::AwaitingMerge);
    assert!(matches!(
        h.core.halt(),
        Some(super::core::Halt::TargetRewound { lost, .. }) if lost == "m0"
    ));
    let lost = h.core.state().lost.clone().unwrap();
    assert_eq!(lost.backup, "refs/orch/backup/@target/main/1");
    assert!(h.core.done(h.now));
}

/// Runs `tasks` independent tasks to the merge queue together and returns
/// the harness with their links asked to be built.
fn queued(tasks: &[&str], edit: impl FnOnce(&mut Config)) -> Harness {
    let plan: String = tasks
        .iter()
        .map(|t| format!("[[task]]\nid = \"{t}\"\n"))
        .collect();
    let mut h = Harness::new(&plan, |c| {
        c.agent.max_parallel = tasks.len() as u32;
        with_check(c);
        edit(c);
    });
    h.tick();
    for t in tasks {
        h.provisioned(t, 1);
    }
    // Every agent ends before the next batch of inputs ends: they finish together.
    for t in tasks {
        h.feed(Input::Exited {
            unit: id(t),
            attempt: 1,
        });
        h.feed(Input::Collected {
            unit: id(t),
            attempt: 1,
            report: Box::new(done_with(1)),
        });
    }
    h.tick();
    h
}

/// The check runs an effect list starts: (tasks, onto).
fn started_checks(effects: &[Effect]) -> Vec<(Vec<String>, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit {
                kind: EventKind::CheckStarted { tasks, onto, .. },
                ..
            } => Some((tasks.iter().map(|t| t.to_string()).collect(), onto.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn issue_14_the_next_batch_is_checked_on_top_of_the_one_being_checked_and_lands_with_it() {
    let mut h = queued(&["A", "B", "C", "D", "E"], |c| {
        c.merge.batch = 2;
        c.merge.max_parallel_checks = 2;
    });
    let effects = h.build();
    assert_eq!(
        started_checks(&effects),
        [
            (vec!["A".into(), "B".into()], "t0".into()),
            (vec!["C".into(), "D".into()], "c0-B".into()),
        ],
        "two batches at once, the second on top of the first"
    );
    let effects = h.checked("c0-D", passed());
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Land(l) if l.candidate == "c0-D" && l.links.len() == 4)),
        "the second batch's pass lands both: {effects:?}"
    );
    assert_eq!(
        started_checks(&effects),
        [(vec!["E".into()], "c0-D".into())],
        "E is checked on top of what lands, in the slot just freed"
    );
    let effects = h.land();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::CancelCheck { slot: 0 })),
        "the first batch's check is no longer needed"
    );
    assert_eq!(
        events(&effects)
            .into_iter()
            .filter(|e| e.starts_with("task.merged"))
            .collect::<Vec<_>>(),
        [
            "task.merged A",
            "task.merged B",
            "task.merged C",
            "task.merged D"
        ]
    );
    h.checked("c0-B", Checked::Stopped);
    h.checked("c0-E", passed());
    h.land();
    assert_eq!(h.status("E"), Status::Merged);
    assert!(h.core.done(h.now));
}

#[test]
fn issue_14_a_red_speculative_batch_stops_what_was_built_on_it_and_bisects() {
    let mut h = queued(&["A", "B", "C", "D"], |c| {
        c.merge.batch = 2;
        c.merge.max_parallel_checks = 2;
        c.merge.on_check_failure = OnFailure::Stop;
    });
    h.build();
    let effects = h.checked("c0-B", red("test"));
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::CancelCheck { slot: 1 })),
        "the batch checked on top of the red one is stopped: {effects:?}"
    );
    assert_eq!(
        started_checks(&effects),
        [(vec!["A".into()], "t0".into())],
        "the first half of the red batch"
    );
    h.checked("c0-D", Checked::Stopped);
    let effects = h.checked("c0-A", passed());
    assert_eq!(h.status("B"), Status::Failed, "B is the culprit");
    assert!(events(&effects).contains(&"task.failed B".to_owned()));
    h.land();
    assert_eq!(h.status("A"), Status::Merged);
    let effects = h.build();
    assert_eq!(
        started_checks(&effects),
        [(vec!["C".into(), "D".into()], "c0-A".into())],
        "the rest, rebuilt without the culprit"
    );
    h.merge_all();
    for t in ["C", "D"] {
        assert_eq!(h.status(t), Status::Merged, "{t}");
    }
}

#[test]
fn issue_14_a_review_command_holds_the_landing_and_a_person_review_lets_the_others_go() {
    let mut h = queued(&["A", "B"], |c| {
        c.policy.review = vec![crate::config::Review {
            name: "bot".to_owned(),
            run: Some("true".to_owned()),
            manual: false,
            timeout: crate::config::Dur(Duration::from_secs(60)),
        }];
    });
    h.build();
    let effects = h.checked("c0-B", passed());
    let reviews: Vec<String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Review(r) => Some(format!("{} {}", r.task, r.review)),
            _ => None,
        })
        .collect();
    assert_eq!(reviews, ["A bot", "B bot"]);
    assert!(
        h.core.merge.train.landing.is_none(),
        "held for the verdicts"
    );
    h.step(Input::Reviewed {
        task: id("A"),
        review: "bot".to_owned(),
        verdict: Ok(crate::merge_queue::review::Verdict::Approve),
    });
    assert!(
        h.core.merge.train.landing.is_none(),
        "B's verdict is awaited"
    );
    let effects = h.step(Input::Reviewed {
        task: id("B"),
        review: "bot".to_owned(),
        verdict: Ok(crate::merge_queue::review::Verdict::Reject {
            reason: "add a test".to_owned(),
        }),
    });
    assert_eq!(
        events(&effects)[..2],
        ["review.rejected B".to_owned(), "task.started B".to_owned()]
    );
    assert_eq!(h.status("B"), Status::Running, "back to its agent");
    assert_eq!(
        h.core.state().items[&id("B")].merge_problem,
        Some(crate::state::model::MergeProblem::Review {
            by: "bot".to_owned(),
            reason: "add a test".to_owned()
        })
    );
    h.merge_all();
    assert_eq!(
        h.status("A"),
        Status::Merged,
        "approved and rechecked without B"
    );

    let mut h = queued(&["A", "B"], |c| {
        c.policy.review = vec![crate::config::Review {
            name: "lead".to_owned(),
            run: None,
            manual: true,
            timeout: crate::config::Dur(Duration::from_secs(60)),
        }];
    });
    h.build();
    let effects = h.checked("c0-B", passed());
    assert_eq!(
        events(&effects),
        ["check.passed B", "review.waiting A"],
        "A waits for a person, out of the queue"
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Build { links, .. } if links.len() == 1)),
        "B is built again without A"
    );
    assert_eq!(h.status("A"), Status::AwaitingReview);
    let effects = h.command(Action::Approve, "A");
    assert!(events(&effects).contains(&"review.approved A".to_owned()));
    h.merge_all();
    assert_eq!(h.status("B"), Status::AwaitingReview);
    assert_eq!(
        h.status("A"),
        Status::Merged,
        "approved once, checked again, landed"
    );
}

#[test]
fn issue_14_a_revert_goes_through_the_queue_and_marks_the_task_reverted() {
    let mut h = merging(|_| {});
    h.merge_all();
    assert_eq!(h.status("A"), Status::Merged);
    let effects = h.command(Action::Revert, "A");
    assert_eq!(events(&effects), ["revert.queued A"]);
    let build = effects.iter().find_map(|e| match e {
        Effect::Build { links, .. } => Some(links.clone()),
        _ => None,
    });
    assert!(matches!(
        &build.as_deref(),
        Some([crate::merge_queue::build::LinkSpec { what: crate::merge_queue::build::LinkWhat::Revert { before, after }, .. }])
            if before == "t0" && after == "c0-A"
    ));
    let effects = h.merge_all();
    assert_eq!(
        events(&effects),
        ["check.started A", "check.passed A", "task.reverted A"]
    );
    assert_eq!(h.status("A"), Status::Reverted);
    let refused = h.command(Action::Revert, "A");
    assert!(
        refused
            .iter()
            .any(|e| matches!(e, Effect::Reply { reply, .. }
        if reply.message == "cannot revert `A`: it is `reverted`"))
    );
}

#[test]
fn issue_14_the_radar_says_each_overlap_once_and_splits_batches_on_it() {
    let mut h = queued(&["A", "B", "C"], |c| c.merge.batch = 8);
    let seen = |paths: &[(&str, &[&str])]| Input::Radar {
        seen: paths
            .iter()
            .map(|(t, p)| {
                (
                    id(t),
                    Some((
                        format!("tip-{t}"),
                        p.iter().map(|s| (*s).to_owned()).collect(),
                    )),
                )
            })
            .collect(),
    };
    let effects = h.step(seen(&[
        ("A", &["a.rs", "lib.rs"]),
        ("B", &["b.rs"]),
        ("C", &["lib.rs"]),
    ]));
    assert_eq!(events(&effects), ["radar.overlap A"]);
    let effects = h.step(seen(&[
        ("A", &["a.rs", "lib.rs"]),
        ("B", &["b.rs"]),
        ("C", &["lib.rs"]),
    ]));
    assert!(events(&effects).is_empty(), "said once");
    let a = &h.core.state().items[&id("A")];
    assert_eq!(a.radar.as_ref().unwrap().overlaps[&id("C")], ["lib.rs"]);
    let effects = h.build();
    assert_eq!(
        started_checks(&effects),
        [
            (vec!["A".into(), "B".into()], "t0".into()),
            (vec!["C".into()], "c0-B".into())
        ],
        "C overlaps A: another batch"
    );
}

#[test]
fn issue_14_a_task_conflicting_only_with_tasks_ahead_waits_for_them_then_goes_back() {
    let mut h = queued(&["A", "B", "C"], |_| {});
    let effects = h.build_with(vec![(
        "B",
        LinkResult::Ended(MergeOutcome::ConflictsAhead {
            files: vec!["lib.rs".to_owned()],
            onto: "c0-A".to_owned(),
        }),
    )]);
    assert_eq!(
        events(&effects),
        ["merge.waiting B", "check.started C"],
        "no hand-back yet: the target does not hold A's work"
    );
    assert_eq!(h.status("B"), Status::Merging);
    assert_eq!(h.core.merge.held[&id("B")], [id("A")]);
    assert_eq!(
        started_checks(&effects),
        [(vec!["A".into(), "C".into()], "t0".into())],
        "the others go on without it"
    );
    let effects = h.checked("c0-C", passed());
    assert!(
        effects.iter().all(|e| !matches!(e, Effect::Build { .. })),
        "B waits for A to land"
    );
    let effects = h.land();
    assert!(
        effects.iter().any(
            |e| matches!(e, Effect::Build { links, .. } if links.len() == 1 && links[0].task == "B")
        ),
        "once A landed, B rejoins the chain, built on the target: {effects:?}"
    );
    let effects = h.build_with(vec![(
        "B",
        LinkResult::Ended(MergeOutcome::Conflicts {
            files: vec!["lib.rs".to_owned()],
            onto: "c0-C".to_owned(),
        }),
    )]);
    assert_eq!(events(&effects), ["merge.conflicted B", "task.started B"]);
    assert_eq!(
        h.status("B"),
        Status::Running,
        "handed back, the target merged in"
    );
    assert!(h.core.merge.held.is_empty());
}

#[test]
fn issue_14_a_held_task_rejoins_when_the_task_ahead_leaves_without_landing() {
    let mut h = queued(&["A", "B"], |c| c.merge.on_check_failure = OnFailure::Stop);
    h.build_with(vec![(
        "B",
        LinkResult::Ended(MergeOutcome::ConflictsAhead {
            files: vec!["lib.rs".to_owned()],
            onto: "c0-A".to_owned(),
        }),
    )]);
    let effects = h.checked("c0-A", red("test"));
    assert_eq!(h.status("A"), Status::Failed);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Build { links, .. } if links[0].task == "B")),
        "{effects:?}"
    );
    h.merge_all();
    assert_eq!(
        h.status("B"),
        Status::Merged,
        "no attempt spent on a conflict that went away"
    );
    assert_eq!(h.core.state().items[&id("B")].attempts.len(), 1);
}

#[test]
fn issue_14_a_force_moved_branch_is_queued_again_at_its_new_tip_and_the_others_do_not_wait() {
    let mut h = queued(&["A", "B", "C"], |_| {});
    let effects = h.build_with(vec![(
        "A",
        LinkResult::Ended(MergeOutcome::BranchMoved {
            tip: "moved-A".to_owned(),
            backup: Some("refs/orch/backup/A/1".to_owned()),
        }),
    )]);
    assert_eq!(
        started_checks(&effects),
        [(vec!["B".into(), "C".into()], "t0".into())],
        "B and C are checked at once, without A"
    );
    let requeued = effects.iter().find_map(|e| match e {
        Effect::Emit {
            kind: EventKind::MergeRequeued { tip, backup, .. },
            ..
        } => Some((tip.clone(), backup.clone())),
        _ => None,
    });
    assert_eq!(
        requeued,
        Some((
            "moved-A".to_owned(),
            Some("refs/orch/backup/A/1".to_owned())
        ))
    );
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Build { links, .. }
            if links.len() == 1 && matches!(&links[0].what,
                crate::merge_queue::build::LinkWhat::Merge { queued_tip: Some(t), .. } if t == "moved-A"))),
        "A joins the chain again at the back, at its new tip: {effects:?}"
    );
    let effects = h.merge_all();
    let merged: Vec<String> = events(&effects)
        .into_iter()
        .filter(|e| e.starts_with("task.merged"))
        .collect();
    assert_eq!(merged, ["task.merged B", "task.merged C", "task.merged A"]);
}

#[test]
fn start_up_records_a_landed_merge_whatever_the_state_said() {
    let mut state = State::default();
    let mut running = crate::state::ItemState::new(Status::Running);
    running.attempts.push(crate::state::model::Attempt {
        number: 2,
        started: Timestamp(SystemTime::UNIX_EPOCH),
        finished: None,
        outcome: None,
        purpose: None,
        confined: false,
        agent: None,
        session: None,
        resumed: false,
        usage: None,
        paused_until: None,
        job: None,
    });
    state.items.insert(id("A"), running);
    state
        .items
        .insert(id("B"), crate::state::ItemState::new(Status::Failed));
    let facts = Facts {
        landed: [(id("A"), "m1".to_owned()), (id("B"), "m2".to_owned())].into(),
        ..Facts::default()
    };
    let mut h = Harness::with_state(
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n",
        |_| {},
        state,
        facts,
    );
    assert_eq!(h.status("A"), Status::Merged);
    assert_eq!(h.status("B"), Status::Merged);
    let a = &h.core.state().items[&id("A")];
    assert_eq!(a.merge_commit.as_deref(), Some("m1"));
    assert!(matches!(
        a.attempts[0].outcome,
        Some(crate::state::model::Outcome::Interrupted { .. })
    ));
    assert!(h.tick().iter().all(|e| !matches!(e, Effect::Provision(_))));
}

#[test]
fn a_person_cancels_a_running_task_through_the_inbox() {
    let mut h = Harness::new(TWO, |_| {});
    h.tick();
    h.provisioned("A", 1);
    let effects = h.command(Action::Cancel, "A");
    assert_eq!(events(&effects), ["task.cancelled A", "task.blocked B"]);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Stop { how: folder::Stop::Ask, folder } if folder.path().ends_with("runs/A/1")
    )));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Reply { reply, .. } if reply.ok && reply.message == "cancelled `A`"
    )));
    let effects = h.command(Action::Resolve, "B");
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Reply { reply, .. } if !reply.ok && reply.message == "cannot resolve `B`: it is `blocked`"
    )) || h.status("B") == Status::Resolved);
}

#[test]
fn a_signal_while_the_worktree_is_prepared_launches_nothing_and_ends_the_run() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", |_| {});
    h.tick();
    let effects = h.step(Input::Signal);
    assert_eq!(events(&effects), ["run.stopping"]);
    let effects = h.provisioned("A", 1);
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Launch(_))),
        "{effects:?}"
    );
    h.tick();
    assert!(h.core.done(h.now), "the run waits for nothing");
}

#[test]
fn a_second_signal_kills_and_gives_up_waiting_after_a_while() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", |_| {});
    h.tick();
    h.provisioned("A", 1);
    let effects = h.step(Input::Signal);
    assert_eq!(events(&effects), ["run.stopping"]);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Stop {
            how: folder::Stop::Ask,
            ..
        }
    )));
    let effects = h.step(Input::Signal);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Stop {
            how: folder::Stop::Kill,
            ..
        }
    )));
    assert!(!h.core.done(h.now));
    h.wait(super::core::KILL_WAIT);
    let effects = h.tick();
    assert_eq!(events(&effects), ["task.interrupted A"]);
    assert!(h.core.done(h.now));
    assert_eq!(
        h.status("A"),
        Status::Retrying,
        "an interrupted attempt does not count"
    );
}

#[test]
fn start_up_collects_adopts_or_interrupts_what_a_dead_coordinator_left() {
    let mut state = State::default();
    for (task, _) in [("A", 0), ("B", 0), ("C", 0)] {
        let mut s = crate::state::ItemState::new(Status::Running);
        s.attempts.push(crate::state::model::Attempt {
            number: 1,
            started: Timestamp(SystemTime::UNIX_EPOCH),
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
        });
        s.worktree = Some(PathBuf::from("wt").join(task));
        state.items.insert(id(task), s);
    }
    let mut facts = Facts::default();
    for (task, liveness) in [
        ("A", Liveness::Exited),
        ("B", Liveness::Running { supervisor: 42 }),
        ("C", Liveness::Gone),
    ] {
        facts.runs.insert(
            id(task),
            Runs {
                highest: 1,
                unknown_started: Default::default(),
                newest: (1, liveness),
            },
        );
    }
    let mut config = Config::default();
    config.agent.max_parallel = 4;
    let env = Env::new(
        Arc::new(plan(
            "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\n[[task]]\nid = \"C\"\n",
        )),
        Arc::new(config),
        PathBuf::from("repo"),
        StateDir::at(Path::new("repo/.orchestrator")),
        "main".to_owned(),
        Options::default(),
    );
    let mut core = RunState::new(env, state, None, fastrand::Rng::with_seed(1));
    let now = Now::real();
    let effects = core.start(facts, now);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Collect { unit, .. } if unit.as_str() == "A"))
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Watch { unit, .. } if unit.as_str() == "B"))
    );
    assert_eq!(
        events(&effects),
        ["run.started", "task.interrupted C", "run.recovered"]
    );
    // Issue 16: after a crash-restart, one event says which attempts were
    // adopted, which collected and which were gone.
    let recovered = effects.iter().find_map(|e| match e {
        Effect::Emit {
            kind:
                EventKind::RunRecovered {
                    adopted,
                    collected,
                    interrupted,
                },
            ..
        } => Some((adopted.clone(), collected.clone(), interrupted.clone())),
        _ => None,
    });
    assert_eq!(
        recovered,
        Some((vec![id("B")], vec![id("A")], vec![id("C")]))
    );
    assert_eq!(core.status(&id("C")), Status::Retrying);
}

/// A plan saved during the run, as the driver hands it over.
fn new_plan(h: &Harness, text: &str, digest: &str) -> Input {
    let plan = plan(text);
    let diff = crate::plan::diff::diff(&h.core.env().plan, &plan);
    Input::PlanChanged(Box::new(super::NewPlan {
        plan: Arc::new(plan),
        digest: digest.to_owned(),
        from: h.core.env().plan_digest.clone(),
        diff: Some(diff),
        kept: Vec::new(),
    }))
}

/// Issue 16: while the run is live, a saved plan is applied: new tasks
/// become schedulable, removed tasks that have not started are dropped,
/// waiting tasks take their new priority and dependencies, and running or
/// finished tasks are left as they are.
#[test]
fn a_plan_saved_during_the_run_changes_what_waits_and_leaves_what_runs() {
    let mut h = Harness::new(
        "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\ndepends_on = [\"A\"]\n\
         [[task]]\nid = \"D\"\ndepends_on = [\"A\"]\n",
        |c| c.agent.max_parallel = 3,
    );
    h.tick();
    h.provisioned("A", 1);
    assert_eq!(h.status("A"), Status::Running);
    let input = new_plan(
        &h,
        "[[task]]\nid = \"A\"\ntitle = \"A, retitled\"\n[[task]]\nid = \"B\"\n\
         [[task]]\nid = \"C\"\npriority = 0\n",
        "d2",
    );
    let effects = h.step(input);
    assert_eq!(
        events(&effects),
        [
            "plan.changed",
            "task.ready B",
            "task.ready C",
            "task.started C",
            "task.started B"
        ],
        "B no longer waits for A; C is new and urgent"
    );
    let Some(Effect::Emit {
        kind: EventKind::PlanChanged { live, changes, .. },
        ..
    }) = effects.first()
    else {
        unreachable!()
    };
    assert!(*live);
    assert_eq!(changes.added, [id("C")]);
    assert_eq!(changes.dropped, [id("D")]);
    assert_eq!(changes.retitled, [id("A")]);
    assert_eq!(h.status("A"), Status::Running, "the running task runs on");
    assert!(!h.core.state().items.contains_key(&id("D")));
    assert_eq!(
        h.core.state().run.as_ref().and_then(|r| r.plan.clone()),
        None
    );
    assert_eq!(h.core.env().plan_digest.as_deref(), Some("d2"));
    let effects = h.ends("A", 1, done_with(1));
    assert_eq!(events(&effects), ["task.completed A", "merge.started A"]);
}

/// Issue 16: a saved plan with errors is refused with its errors as an
/// event, and the run goes on with the plan it had.
#[test]
fn a_broken_plan_saved_during_the_run_is_refused_and_changes_nothing() {
    let mut h = Harness::new(TWO, |_| {});
    h.tick();
    let before = h.core.env().plan.items().len();
    let errors = vec!["plan.toml:2:1: unknown field `titel`".to_owned()];
    let effects = h.step(Input::PlanRefused {
        errors: errors.clone(),
    });
    assert!(matches!(
        &effects[..],
        [Effect::Emit { kind: EventKind::PlanRefused { errors: e }, .. }] if *e == errors
    ));
    assert_eq!(h.core.env().plan.items().len(), before);
    assert_eq!(h.status("A"), Status::Running);
}

// Rate and usage limits, a person's pauses, and resumed sessions.

/// An attempt that ran in session `session`, reporting `cost` dollars.
fn in_session(mut report: AttemptReport, session: &str, cost: f64) -> AttemptReport {
    report.session = Some(session.to_owned());
    report.usage = Some(Usage {
        input_tokens: Some(100),
        output_tokens: Some(20),
        cached_tokens: None,
        cost_usd: Some(cost),
    });
    report
}

/// An attempt that failed on a usage limit resetting at `reset`.
fn limited(reset: Option<SystemTime>) -> AttemptReport {
    AttemptReport {
        limit: Some(LimitHit {
            said: "Claude AI usage limit reached".to_owned(),
            reset,
        }),
        ..in_session(exit_code(1), "s-1", 0.0)
    }
}

fn the_launch(effects: &[Effect]) -> &LaunchRequest {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Launch(l) => Some(l.as_ref()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no launch in {effects:?}"))
}

const TWO_AGENTS: &str =
    "[[task]]\nid = \"A\"\n[[task]]\nid = \"B\"\nagent = \"codex\"\n[[task]]\nid = \"C\"\n";

#[test]
fn a_usage_limit_pauses_its_agent_without_spending_an_attempt_while_others_go_on() {
    let mut h = Harness::new(TWO_AGENTS, |c| c.agent.max_parallel = 2);
    assert_eq!(provisions(&h.tick()), ["A", "B"]);
    h.provisioned("A", 1);
    h.provisioned("B", 1);
    let reset = h.now.wall + Duration::from_secs(600);
    let effects = h.ends("A", 1, limited(Some(reset)));
    assert_eq!(
        events(&effects),
        ["task.usage A", "task.interrupted A", "agent.paused A"]
    );
    assert!(
        provisions(&effects).is_empty(),
        "C, of the paused agent, does not take A's slot"
    );
    let a = &h.core.state().items[&id("A")];
    assert_eq!(a.status, Status::Retrying);
    assert_eq!(a.counted_attempts(), 0, "a limit spends no attempt");
    assert_eq!(a.attempts[0].paused_until, Some(Timestamp::at(reset)));
    let pause = &h.core.state().paused["claude"];
    assert_eq!(
        (pause.until, pause.cause, pause.by.clone()),
        (Some(Timestamp::at(reset)), PauseCause::Limit, Some(id("A")))
    );
    assert!(!h.core.done(h.now), "work waits for the pause");
    assert!(h.core.next_wake(h.now) <= h.now.mono + Duration::from_secs(600));
    let effects = h.ends("B", 1, done_with(1));
    assert_eq!(events(&effects), ["task.completed B", "merge.started B"]);
    h.merge_all();
    h.wait(Duration::from_secs(599));
    assert!(provisions(&h.tick()).is_empty(), "not before the reset");
    h.wait(Duration::from_secs(1));
    let effects = h.tick();
    assert_eq!(
        events(&effects),
        ["agent.resumed", "task.started A", "task.started C"]
    );
    assert!(!h.core.state().paused.contains_key("claude"));
    let effects = h.provisioned("A", 2);
    let launch = the_launch(&effects);
    assert_eq!(
        launch.session.as_deref(),
        Some("s-1"),
        "it goes on where it stopped"
    );
    assert_eq!(launch.prompt.template.0, "resumed.md");
    assert!(launch.command.windows(2).any(|w| w == ["--resume", "s-1"]));
}

#[test]
fn a_limit_that_names_no_reset_pauses_longer_each_time_in_a_row() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", |_| {});
    h.tick();
    h.provisioned("A", 1);
    h.ends("A", 1, limited(None));
    let until = |h: &Harness| h.core.state().paused["claude"].until.unwrap().0;
    assert_eq!(until(&h), h.now.wall + Duration::from_secs(300));
    h.wait(Duration::from_secs(300));
    h.tick();
    h.provisioned("A", 2);
    h.ends("A", 2, limited(Some(h.now.wall - Duration::from_secs(30))));
    assert_eq!(
        until(&h),
        h.now.wall + Duration::from_secs(600),
        "a reset already past counts as none given"
    );
    h.wait(Duration::from_secs(600));
    h.tick();
    h.provisioned("A", 3);
    h.ends("A", 3, done_with(1));
    assert_eq!(h.status("A"), Status::Merging);
    assert_eq!(h.core.state().items[&id("A")].counted_attempts(), 1);
    assert!(h.core.flight.limit_hits.is_empty(), "the streak ended");
}

#[test]
fn a_person_pauses_and_resumes_agents_through_the_inbox() {
    let mut h = Harness::new(TWO_AGENTS, |c| c.agent.max_parallel = 1);
    let replies = |effects: &[Effect]| -> Vec<String> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Reply { reply, .. } => Some(format!("{} {}", reply.ok, reply.message)),
                _ => None,
            })
            .collect()
    };
    let pause = |agent: &str| Order::Pause {
        agent: Some(agent.to_owned()),
        until: None,
    };
    let effects = h.order(pause("claude"));
    assert_eq!(replies(&effects), ["true paused `claude`"]);
    assert_eq!(
        events(&effects),
        [
            "agent.paused",
            "task.ready A",
            "task.ready B",
            "task.ready C",
            "task.started B"
        ]
    );
    assert_eq!(provisions(&effects), ["B"], "only codex's task starts");
    let effects = h.order(pause("clod"));
    assert_eq!(
        replies(&effects),
        ["false `clod` is not an agent (agents: aider, claude, codex, gemini)"]
    );
    let effects = h.order(Order::Resume {
        agent: Some("codex".to_owned()),
    });
    assert_eq!(replies(&effects), ["false `codex` is not paused"]);
    h.provisioned("B", 1);
    h.ends("B", 1, done_with(1));
    h.merge_all();
    assert!(!h.core.done(h.now), "A and C wait for `orch resume`");
    let effects = h.order(Order::Pause {
        agent: None,
        until: Some(Timestamp::at(h.now.wall + Duration::from_secs(60))),
    });
    assert_eq!(replies(&effects), ["true paused every agent"]);
    let effects = h.order(Order::Resume {
        agent: Some("claude".to_owned()),
    });
    assert_eq!(replies(&effects), ["true resumed `claude`"]);
    assert!(
        provisions(&effects).is_empty(),
        "every agent is still paused"
    );
    let effects = h.order(Order::Resume {
        agent: Some("claude".to_owned()),
    });
    assert_eq!(
        replies(&effects),
        [
            "false `claude` is not paused on its own: every agent is (`orch pause --all`); `orch resume --all` lifts that"
        ]
    );
    h.wait(Duration::from_secs(60));
    let effects = h.tick();
    assert_eq!(events(&effects), ["agent.resumed", "task.started A"]);
}

#[test]
fn a_hand_back_continues_the_agents_session_and_counts_what_it_added() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", with_check);
    h.tick();
    h.provisioned("A", 1);
    let effects = h.ends("A", 1, in_session(done_with(1), "s-1", 0.25));
    assert_eq!(events(&effects)[0], "task.usage A");
    h.build();
    h.checked("c0-A", red("test"));
    let effects = h.provisioned("A", 2);
    let launch = the_launch(&effects);
    assert_eq!(launch.prompt.template.0, "resumed.md");
    assert_eq!(launch.session.as_deref(), Some("s-1"));
    assert_eq!(
        launch.command[..4],
        ["claude", "-p", "--resume", "s-1"],
        "the preset's resume_command"
    );
    assert_eq!(
        launch
            .prompt
            .context
            .problem
            .as_ref()
            .and_then(|p| p.check.clone()),
        Some("test".to_owned())
    );
    // Claude Code counts the session's cost so far and this run's tokens.
    h.ends("A", 2, in_session(done_with(1), "s-1", 0.75));
    let a = &h.core.state().items[&id("A")];
    assert!(a.attempts[1].resumed);
    let usage = a.attempts[1].usage.unwrap();
    assert_eq!((usage.cost_usd, usage.input_tokens), (Some(0.5), Some(100)));
    assert_eq!(Usage::total(&a.attempts).unwrap().cost_usd, Some(0.75));
}

#[test]
fn a_review_rejection_continues_the_agents_session_with_the_reviews_text() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", |c| {
        with_check(c);
        c.policy.review = vec![crate::config::Review {
            name: "bot".to_owned(),
            run: Some("true".to_owned()),
            manual: false,
            timeout: crate::config::Dur(Duration::from_secs(60)),
        }];
    });
    h.tick();
    h.provisioned("A", 1);
    h.ends("A", 1, in_session(done_with(1), "s-1", 0.25));
    h.build();
    h.checked("c0-A", passed());
    h.step(Input::Reviewed {
        task: id("A"),
        review: "bot".to_owned(),
        verdict: Ok(crate::merge_queue::review::Verdict::Reject {
            reason: "add a test".to_owned(),
        }),
    });
    let effects = h.provisioned("A", 2);
    assert_eq!(the_launch(&effects).prompt.template.0, "resumed.md");
    let prompt = prompt_of(&effects);
    assert!(
        prompt.contains("review `bot` rejected it") && prompt.contains("add a test"),
        "{prompt}"
    );
    assert!(!prompt.contains("conflicts"), "{prompt}");
}

#[test]
fn a_session_the_cli_will_not_continue_starts_afresh_without_spending_an_attempt() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", |c| c.retry.max_attempts = 2);
    h.tick();
    h.provisioned("A", 1);
    h.ends("A", 1, in_session(exit_code(1), "s-1", 0.1));
    h.wait(Duration::from_secs(30));
    h.tick();
    let effects = h.provisioned("A", 2);
    assert_eq!(
        the_launch(&effects).session.as_deref(),
        Some("s-1"),
        "a retry resumes"
    );
    let effects = h.ends("A", 2, exit_code(1));
    assert_eq!(events(&effects), ["task.interrupted A", "task.started A"]);
    let a = &h.core.state().items[&id("A")];
    assert!(!a.attempts[1].counts());
    assert_eq!(a.attempts[1].session, None, "never offered again");
    let effects = h.provisioned("A", 3);
    let launch = the_launch(&effects);
    assert_eq!(
        (launch.session.as_deref(), launch.prompt.template.0),
        (None, "task.md")
    );
    assert_eq!(launch.command[1..3], ["-p", "--output-format"]);
}

#[test]
fn a_persons_retry_starts_a_new_session() {
    let mut h = Harness::new("[[task]]\nid = \"A\"\n", |c| c.retry.max_attempts = 1);
    h.tick();
    h.provisioned("A", 1);
    h.ends("A", 1, in_session(exit_code(1), "s-1", 0.1));
    assert_eq!(h.status("A"), Status::Failed);
    h.command(Action::Retry, "A");
    let effects = h.provisioned("A", 2);
    assert_eq!(the_launch(&effects).session, None);
}

// Random runs: whatever happens in whatever order, the lifecycle table is
// never broken (an illegal transition panics in debug builds) and no task
// starts before its required dependencies are merged or resolved.

const PLAN: &str = "\
[[task]]\nid = \"A\"\n\
[[task]]\nid = \"B\"\ndepends_on = [\"A\"]\n\
[[task]]\nid = \"C\"\n\
[[task]]\nid = \"D\"\ndepends_on = [\"B\", \"C\"]\n\
[[task]]\nid = \"E\"\ndepends_on = [{ id = \"C\", required = false }]\n\
[[task.subtask]]\nid = \"S1\"\n\
[[task.subtask]]\nid = \"S2\"\ndepends_on = [\"S1\"]\n";

/// One thing that may happen next; indices pick among what is in flight.
#[derive(Debug, Clone)]
enum Op {
    Tick(u16),
    Provisioned(u8, bool),
    Ended(u8, u8),
    Queue(u8, u8),
    Command(u8, u8),
    Signal,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u16..120).prop_map(Op::Tick),
        4 => (any::<u8>(), any::<bool>()).prop_map(|(i, ok)| Op::Provisioned(i, ok)),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(i, how)| Op::Ended(i, how)),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(i, how)| Op::Queue(i, how)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(i, how)| Op::Command(i, how)),
        1 => Just(Op::Signal),
    ]
}

fn pick<T: Clone>(items: &[T], i: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[i as usize % items.len()].clone())
}

/// What the property tests saw of the merge queue.
#[derive(Debug, Default)]
struct Seen {
    /// Commits whose checks passed.
    passed: std::collections::BTreeSet<String>,
    /// Landings asked for that no passed check covers.
    unchecked: Vec<String>,
    /// `task.merged` per task since its last `task.retried`.
    merged: std::collections::BTreeMap<String, usize>,
    /// Tasks that were merged or resolved at some point.
    done: std::collections::BTreeSet<String>,
}

impl Seen {
    fn watch(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Land(req) if !self.passed.contains(&req.candidate) => {
                    self.unchecked.push(req.candidate.clone());
                }
                Effect::Emit {
                    id: Some(id),
                    kind: EventKind::TaskMerged { .. },
                } => {
                    *self.merged.entry(id.to_string()).or_default() += 1;
                    self.done.insert(id.to_string());
                }
                Effect::Emit {
                    id: Some(id),
                    kind: EventKind::TaskResolved { .. },
                } => {
                    self.done.insert(id.to_string());
                }
                Effect::Emit {
                    id: Some(id),
                    kind: EventKind::TaskRetried { .. },
                } => {
                    self.merged.remove(id.as_str());
                }
                _ => {}
            }
        }
    }
}

/// Plays one step of the merge queue's executor, chosen by `how`: a build
/// (each link built, or ending on a conflict, a moved branch, work already
/// landed), a check ending (passed, red, stopped), a landing ending
/// (landed, target moved, blocked, interrupted), or a probe answered.
fn queue_step(h: &mut Harness, i: u8, how: u8, seen: &mut Seen) -> Vec<Effect> {
    match how % 4 {
        0 => {
            let train = &h.core.merge.train;
            let ended: Vec<(String, LinkResult)> = train.links[train.built()..]
                .iter()
                .enumerate()
                .filter_map(|(n, l)| {
                    let result = match (how / 4).wrapping_add(n as u8).wrapping_add(i) % 9 {
                        0 => LinkResult::Ended(MergeOutcome::Conflicts {
                            files: vec!["f".to_owned()],
                            onto: "t1".to_owned(),
                        }),
                        1 => LinkResult::Ended(MergeOutcome::BranchMoved {
                            tip: "t2".to_owned(),
                            backup: None,
                        }),
                        2 if !l.revert => LinkResult::Landed {
                            commit: "t0".to_owned(),
                            worktree: WorktreeAfter::Untouched,
                            branch_deleted: false,
                            cleanup: None,
                        },
                        _ => return None,
                    };
                    Some((l.task.to_string(), result))
                })
                .collect();
            let ended = ended
                .iter()
                .map(|(t, r)| (t.as_str(), clone_result(r)))
                .collect();
            h.build_with(ended)
        }
        1 => {
            let running = h.checking();
            match pick(&running, i) {
                Some(commit) => {
                    let checked = match how / 4 % 3 {
                        0 | 1 => {
                            seen.passed.insert(commit.clone());
                            passed()
                        }
                        _ => red("test"),
                    };
                    h.checked(&commit, checked)
                }
                None => {
                    let stopping: Vec<String> = h
                        .core
                        .merge
                        .train
                        .checks
                        .iter()
                        .map(|r| r.commit.clone())
                        .collect();
                    match pick(&stopping, i) {
                        Some(commit) => h.checked(&commit, Checked::Stopped),
                        None => h.tick(),
                    }
                }
            }
        }
        2 => {
            if h.core.merge.train.landing.is_none() {
                return h.tick();
            }
            match how / 4 % 5 {
                0 | 1 => h.land(),
                2 => h.land_with(Landing::TargetMoved {
                    head: format!("p{i}"),
                }),
                3 => {
                    let (_, n) = h.core.merge.train.landing.clone().unwrap();
                    let task = h.core.merge.train.links[(i as usize) % n].task.to_string();
                    h.land_with(Landing::Blocked {
                        why: crate::merge_queue::WaitReason::CheckoutStuck(
                            crate::merge_queue::checkout::Stuck::Locked {
                                lock: PathBuf::from("index.lock"),
                            },
                        ),
                        tasks: vec![task],
                    })
                }
                _ => h.land_with(Landing::Ended(MergeOutcome::Interrupted)),
            }
        }
        _ => {
            let probing: Vec<FullId> = h
                .core
                .merge
                .parked
                .iter()
                .filter(|(_, p)| p.probing)
                .map(|(t, _)| t.clone())
                .collect();
            match pick(&probing, i) {
                Some(task) => h.step(Input::Probed {
                    task,
                    waiting: (how % 8 == 3).then(|| "still in the way".to_owned()),
                }),
                None => h.tick(),
            }
        }
    }
}

fn clone_result(r: &LinkResult) -> LinkResult {
    match r {
        LinkResult::Built { commit, tip } => LinkResult::Built {
            commit: commit.clone(),
            tip: tip.clone(),
        },
        LinkResult::Landed {
            commit,
            branch_deleted,
            ..
        } => LinkResult::Landed {
            commit: commit.clone(),
            worktree: WorktreeAfter::Untouched,
            branch_deleted: *branch_deleted,
            cleanup: None,
        },
        LinkResult::NothingToRevert => LinkResult::NothingToRevert,
        LinkResult::Ended(MergeOutcome::Conflicts { files, onto }) => {
            LinkResult::Ended(MergeOutcome::Conflicts {
                files: files.clone(),
                onto: onto.clone(),
            })
        }
        LinkResult::Ended(MergeOutcome::BranchMoved { tip, backup }) => {
            LinkResult::Ended(MergeOutcome::BranchMoved {
                tip: tip.clone(),
                backup: backup.clone(),
            })
        }
        LinkResult::Ended(_) => LinkResult::Ended(MergeOutcome::Interrupted),
    }
}

fn attempt_end(how: u8) -> AttemptReport {
    match how % 8 {
        0 | 1 => done_with(1),
        2 => done_with(0),
        3 => exit_code(1),
        4 => exit_code(2),
        5 => limited(None),
        6 => in_session(exit_code(1), "s-9", 0.1),
        _ => AttemptReport {
            exit: exit(End::Stopped),
            ..AttemptReport::default()
        },
    }
}

/// Checks that every task an effect starts has its required dependencies met.
/// A task already started once may go on retrying while a person re-runs a
/// dependency that was merged or resolved (`done`): it built on that.
fn check_starts(
    h: &Harness,
    effects: &[Effect],
    done: &std::collections::BTreeSet<String>,
) -> Result<(), TestCaseError> {
    let plan = Arc::clone(&h.core.env().plan);
    for effect in effects {
        let Effect::Provision(p) = effect else {
            continue;
        };
        let idx = plan.lookup(p.task.as_str()).unwrap();
        let node = plan.graph().task_node(idx).unwrap();
        for edge in plan.graph().deps_of(node) {
            if !edge.required {
                continue;
            }
            let deps: Vec<crate::plan::ItemIdx> = match edge.target {
                crate::plan::Target::Task(v) => vec![plan.tasks()[v as usize]],
                crate::plan::Target::Container(c) => plan
                    .graph()
                    .container(c)
                    .tasks
                    .clone()
                    .map(|v| plan.tasks()[v as usize])
                    .collect(),
            };
            for dep in deps {
                let dep_id = &plan.item(dep).id;
                let status = h.core.status(dep_id);
                // A person may run a merged or resolved task again (`orch
                // retry`); its dependents built on that work, and their own
                // retries go on meanwhile.
                let merged_before = h
                    .core
                    .state()
                    .items
                    .get(dep_id)
                    .is_some_and(|s| s.merge_commit.is_some());
                let retrying_on_done = done.contains(dep_id.as_str())
                    && h.core
                        .state()
                        .items
                        .get(&p.task)
                        .is_some_and(|s| s.attempts.len() > 1);
                prop_assert!(
                    status.satisfies() || merged_before || retrying_on_done,
                    "{} started while its dependency {} is {status}",
                    p.task,
                    plan.item(dep).id
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_runs_keep_the_lifecycle_and_the_dependencies(
        subtasks in any::<bool>(),
        batch in 1u32..4,
        parallel in 1u32..4,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut h = Harness::new(PLAN, |c| {
            c.retry.max_attempts = 2;
            c.merge.batch = batch;
            c.merge.max_parallel_checks = parallel;
            with_check(c);
            if subtasks {
                c.agent.unit = crate::config::AgentUnit::Subtask;
            }
        });
        let mut seen = Seen::default();
        let effects = h.tick();
        check_starts(&h, &effects, &seen.done)?;
        for op in ops {
            let provisioning: Vec<FullId> = h.core.flight.provisioning.iter().cloned().collect();
            let live: Vec<(FullId, u32)> = h
                .core
                .flight
                .live
                .iter()
                .map(|(u, l)| (u.clone(), l.attempt))
                .collect();
            let effects = match op {
                Op::Tick(secs) => {
                    h.wait(Duration::from_secs(u64::from(secs)));
                    h.tick()
                }
                Op::Provisioned(i, ok) => match pick(&provisioning, i) {
                    Some(task) => {
                        let attempt = h.core.open_attempt(&task).unwrap_or(1);
                        h.step(Input::Provisioned {
                            result: if ok {
                                Ok(provisioned(task.as_str()))
                            } else {
                                Err(GitError::PathTaken { path: PathBuf::from("wt/x") })
                            },
                            task,
                            attempt,
                            free_owner: None,
                            prepared: Ok(()),
                        })
                    }
                    None => h.tick(),
                },
                Op::Ended(i, how) => match pick(&live, i) {
                    Some((unit, attempt)) => h.ends(unit.as_str(), attempt, attempt_end(how)),
                    None => h.tick(),
                },
                Op::Queue(i, how) => queue_step(&mut h, i, how, &mut seen),
                Op::Command(i, how) => {
                    let ids = ["A", "B", "C", "D", "E", "E.S1", "E.S2"];
                    let action = [Action::Cancel, Action::Retry, Action::Resolve, Action::Revert]
                        [how as usize % 4];
                    h.command(action, ids[i as usize % ids.len()])
                }
                Op::Signal => h.step(Input::Signal),
            };
            check_starts(&h, &effects, &seen.done)?;
            seen.watch(&effects);
            prop_assert!(seen.unchecked.is_empty(), "landed unchecked: {:?}", seen.unchecked);
            prop_assert!(
                seen.merged.values().all(|n| *n <= 1),
                "a task landed twice: {:?}",
                seen.merged
            );
            for (id, s) in &h.core.state().items {
                if s.status == Status::Running {
                    prop_assert!(s.open_attempt().is_some(), "{id} runs with no open attempt");
                }
            }
        }
    }

    /// Issue 14: whatever the checks say, and however builds and landings
    /// end, no commit lands that a check did not pass, and no task lands
    /// twice; once every check passes, every task still queued lands.
    #[test]
    fn random_check_outcomes_land_nothing_unchecked_and_each_task_once(
        batch in 1u32..5,
        parallel in 1u32..4,
        steps in proptest::collection::vec((any::<u8>(), any::<u8>()), 1..80),
    ) {
        let plan: String = (0..8).map(|i| format!("[[task]]\nid = \"T{i}\"\n")).collect();
        let mut h = Harness::new(&plan, |c| {
            c.agent.max_parallel = 8;
            c.merge.batch = batch;
            c.merge.max_parallel_checks = parallel;
            with_check(c);
        });
        let mut seen = Seen::default();
        h.tick();
        for i in 0..8 {
            h.provisioned(&format!("T{i}"), 1);
        }
        for i in 0..8 {
            let effects = h.ends(&format!("T{i}"), 1, done_with(1));
            seen.watch(&effects);
        }
        for (i, how) in steps {
            let effects = queue_step(&mut h, i, how, &mut seen);
            seen.watch(&effects);
            prop_assert!(seen.unchecked.is_empty(), "landed unchecked: {:?}", seen.unchecked);
        }
        // Everything passes from now on: the queue drains.
        for _ in 0..200 {
            h.wait(super::core::WAIT_PAUSE);
            let mut effects = h.tick();
            effects.extend(h.build());
            for commit in h.checking() {
                seen.passed.insert(commit.clone());
                effects.extend(h.checked(&commit, passed()));
            }
            let stopping: Vec<String> = h.core.merge.train.checks.iter().map(|r| r.commit.clone()).collect();
            for commit in stopping {
                effects.extend(h.checked(&commit, Checked::Stopped));
            }
            effects.extend(h.land());
            let probing: Vec<FullId> = h.core.merge.parked.keys().cloned().collect();
            for task in probing {
                effects.extend(h.step(Input::Probed { task, waiting: None }));
            }
            seen.watch(&effects);
        }
        prop_assert!(seen.unchecked.is_empty(), "landed unchecked: {:?}", seen.unchecked);
        for i in 0..8 {
            let task = format!("T{i}");
            let status = h.status(&task);
            prop_assert!(
                !matches!(status, Status::AwaitingMerge | Status::Merging),
                "{task} is still {status}"
            );
            let merged = seen.merged.get(&task).copied().unwrap_or(0);
            prop_assert!(merged <= 1, "{task} landed {merged} times");
            prop_assert_eq!(merged == 1, status == Status::Merged, "{}: {}", task, status);
        }
    }
}
