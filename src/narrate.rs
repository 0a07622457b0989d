//! How events read to a person: progress lines and the dashboard's feed.
//!
//! [`describe`] turns one [`Event`] into an optional status word
//! (`started`, `failed` ...) and the text after it; `cli::progress` and
//! `dash::ui` lay it out and colour the word by its status. Events too
//! fine-grained to show read as nothing. The log's schema is
//! [`crate::state::events`]; this module only reads it.

use std::time::Duration;

use crate::lifecycle::Status;
use crate::sandbox::{Confinement, NETWORK_ABI, Network};
use crate::state::events::{Event, EventKind, ResumeCause};
use crate::state::model::{ALL_AGENTS, PauseCause};
use crate::text::{duration, plural};

/// How an event reads to a person: an optional status word, then the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The word in front (`started`, `failed` ...) and the status whose colour it takes.
    pub word: Option<(Status, &'static str)>,
    pub text: String,
}

impl Described {
    fn new(status: Status, word: &'static str, text: String) -> Described {
        Described {
            word: Some((status, word)),
            text,
        }
    }

    fn plain(text: String) -> Described {
        Described { word: None, text }
    }
}

/// Returns what the run's first line says about the sandbox: nothing when
/// agents are confined as configured, a warning otherwise.
fn confinement(c: &Confinement) -> String {
    match c {
        Confinement::Confined {
            network: Network::Open,
            ..
        } => String::new(),
        Confinement::Confined {
            network: Network::Blocked,
            ..
        } => " Agents may not use the network.".to_owned(),
        Confinement::Confined {
            abi,
            network: Network::NotBlockable,
        } => format!(
            " Agents CAN use the network: `network = false` needs Landlock ABI {NETWORK_ABI} (Linux 6.7); the kernel has ABI {abi}."
        ),
        Confinement::Disabled => {
            " Agents are NOT confined: `[sandbox] enabled = false`; they can write anywhere you can."
                .to_owned()
        }
        Confinement::Unavailable { why } => format!(
            " Agents are NOT confined: {why}; they can write anywhere you can (see `orch doctor`)."
        ),
    }
}

/// Returns how the event reads in progress lines and the dashboard's feed,
/// or `None` for events too fine-grained to show.
pub fn describe(e: &Event) -> Option<Described> {
    let id = e.id.as_ref().map(|i| i.to_string()).unwrap_or_default();
    Some(match &e.kind {
        EventKind::RunStarted {
            target,
            tasks,
            no_merge,
            sandbox,
            ..
        } => Described::plain(format!(
            "Starting: {} on target `{target}`{}.{}",
            plural(*tasks, "task", "tasks"),
            if *no_merge { ", without merging" } else { "" },
            sandbox.as_ref().map(confinement).unwrap_or_default()
        )),
        EventKind::PlanChanged {
            from,
            to,
            live,
            changes,
        } => Described::plain(plan_changed(from.as_deref(), to, *live, changes)),
        EventKind::PlanRefused { errors } => {
            let mut text =
                "The saved plan has errors; the run goes on with the plan it had:".to_owned();
            for error in errors {
                text.push_str(&format!("\n  {error}"));
            }
            Described::plain(text)
        }
        EventKind::RunRecovered {
            adopted,
            collected,
            interrupted,
        } => {
            let mut parts = Vec::new();
            if !adopted.is_empty() {
                parts.push(format!(
                    "adopted {} still running ({})",
                    plural(adopted.len(), "agent", "agents"),
                    ids(adopted)
                ));
            }
            if !collected.is_empty() {
                parts.push(format!(
                    "collected {} that ended meanwhile ({})",
                    plural(collected.len(), "attempt", "attempts"),
                    ids(collected)
                ));
            }
            if !interrupted.is_empty() {
                parts.push(format!(
                    "{} nothing was left of, to run again ({})",
                    plural(interrupted.len(), "attempt", "attempts"),
                    ids(interrupted)
                ));
            }
            Described::plain(format!("After the restart: {}.", parts.join("; ")))
        }
        EventKind::RunStopping { agents } => Described::plain(format!(
            "Stopping: waiting for {} to stop (press Ctrl-C again to kill at once).",
            plural(*agents, "agent", "agents")
        )),
        EventKind::TaskStarted { attempt, title, .. } => Described::new(
            Status::Running,
            "started",
            format!("{id}  attempt {attempt}: {title}"),
        ),
        EventKind::TaskPlaced {
            attempt,
            executor,
            job,
            node,
        } => Described::new(
            Status::Running,
            "placed",
            match node {
                Some(node) => format!("{id}  attempt {attempt}: {executor} job {job} on {node}"),
                None => format!("{id}  attempt {attempt}: {executor} job {job}, queued"),
            },
        ),
        EventKind::TaskCompleted {
            attempt,
            commits,
            duration_ms,
            ..
        } => {
            let mut parts = vec![format!("attempt {attempt}")];
            if let Some(ms) = duration_ms {
                parts.push(duration(Duration::from_millis(*ms)));
            }
            if let Some(c) = commits {
                parts.push(plural(*c as usize, "commit", "commits"));
            }
            Described::new(
                Status::AwaitingMerge,
                "done",
                format!("{id}  {}", parts.join(", ")),
            )
        }
        EventKind::TaskRetrying {
            attempt,
            reason,
            retry_in_ms,
        } => Described::new(
            Status::Retrying,
            "retrying",
            format!(
                "{id}  attempt {attempt}: {reason}; next attempt in {}",
                duration(Duration::from_millis(*retry_in_ms))
            ),
        ),
        EventKind::TaskFailed { attempt, reason } => Described::new(
            Status::Failed,
            "failed",
            match attempt {
                Some(n) => format!("{id}  attempt {n}: {reason}"),
                None => format!("{id}: {reason}"),
            },
        ),
        EventKind::TaskInterrupted {
            attempt,
            reason,
            limited: false,
        } => Described::new(
            Status::Pending,
            "stopped",
            format!("{id}  attempt {attempt}: {reason}"),
        ),
        EventKind::TaskInterrupted {
            attempt,
            reason,
            limited: true,
        } => Described::new(
            Status::Retrying,
            "limited",
            format!("{id}  attempt {attempt}: {reason}"),
        ),
        EventKind::AgentPaused {
            agent,
            until,
            cause,
            attempt,
            reason,
        } => {
            let who = match agent.as_str() {
                ALL_AGENTS => "every agent".to_owned(),
                name => name.to_owned(),
            };
            let when = match until {
                Some(at) => format!("until {}", crate::when::local(at.0, e.ts.0)),
                None => "until resumed (`orch resume`)".to_owned(),
            };
            let why = match cause {
                PauseCause::Person => ", by a person".to_owned(),
                PauseCause::Limit => {
                    let by = attempt
                        .map(|n| format!(" by {id} (attempt {n})"))
                        .unwrap_or_default();
                    let said = reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default();
                    format!(": usage limit hit{by}{said}")
                }
            };
            Described::new(Status::Retrying, "paused", format!("{who} {when}{why}"))
        }
        EventKind::AgentResumed { agent, cause } => {
            let who = match agent.as_str() {
                ALL_AGENTS => "every agent".to_owned(),
                name => name.to_owned(),
            };
            let how = match cause {
                ResumeCause::Time => "its pause ended",
                ResumeCause::Person => "resumed by a person",
            };
            Described::new(Status::Ready, "resumed", format!("{who}: {how}"))
        }
        EventKind::TaskBlocked { reason, .. } => {
            Described::new(Status::Blocked, "blocked", format!("{id}: {reason}"))
        }
        EventKind::TaskCancelled { .. } => Described::new(Status::Cancelled, "cancelled", id),
        EventKind::TaskResolved { .. } => Described::new(Status::Resolved, "resolved", id),
        EventKind::TaskRetried { .. } => Described::new(Status::Ready, "retry", id),
        EventKind::TaskMerged { commit, .. } => {
            Described::new(Status::Merged, "merged", format!("{id}  {commit}"))
        }
        EventKind::MergeConflicted { reason, .. } => {
            Described::new(Status::Conflicted, "conflict", format!("{id}: {reason}"))
        }
        EventKind::CheckFailed {
            check,
            reason,
            log,
            tasks,
            ..
        } if tasks.len() > 1 => Described::new(
            Status::Merging,
            "red",
            format!(
                "{}: check `{check}` failed on a batch of {}{}; finding the culprit",
                ids(tasks),
                tasks.len(),
                log.as_ref()
                    .map_or_else(|| format!(": {reason}"), |l| format!("; log: {l}"))
            ),
        ),
        EventKind::CheckFailed {
            check, reason, log, ..
        } => Described::new(
            Status::Failed,
            "red",
            // A policy refusal has no log; its reason names the rule.
            match log {
                Some(log) => format!("{id}: check `{check}` failed; log: {log}"),
                None => format!("{id}: {reason}"),
            },
        ),
        EventKind::CheckStarted { tasks, .. } if tasks.len() > 1 => Described::new(
            Status::Merging,
            "checking",
            format!("{} ({} tasks)", ids(tasks), tasks.len()),
        ),
        EventKind::MergeRebuilt { tasks, onto, .. } => Described::new(
            Status::Merging,
            "rebuilt",
            format!(
                "{}: the target moved to {} during the checks; checking again",
                ids(tasks),
                crate::plan::diff::short(onto)
            ),
        ),
        EventKind::RadarOverlap { other, paths } => Described::new(
            Status::Running,
            "overlap",
            format!(
                "{id} and {other} both change {}",
                paths
                    .iter()
                    .take(5)
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
                    + &match paths.len().saturating_sub(5) {
                        0 => String::new(),
                        more => format!(" and {more} more"),
                    }
            ),
        ),
        EventKind::ReviewStarted { review } => Described::new(
            Status::AwaitingReview,
            "review",
            format!("{id}: `{review}` reviews it"),
        ),
        EventKind::ReviewWaiting { review } => Described::new(
            Status::AwaitingReview,
            "review",
            format!("{id}: waiting for `{review}` (`orch approve {id}` or `orch reject {id}`)"),
        ),
        EventKind::ReviewApproved { by } => {
            Described::new(Status::AwaitingMerge, "approved", format!("{id} by `{by}`"))
        }
        EventKind::ReviewRejected { by, reason } => Described::new(
            Status::Failed,
            "rejected",
            format!("{id} by `{by}`: {reason}"),
        ),
        EventKind::RevertQueued { dependents } if dependents.is_empty() => {
            Described::new(Status::Merged, "revert", format!("{id}: queued"))
        }
        EventKind::RevertQueued { dependents } => Described::new(
            Status::Merged,
            "revert",
            format!(
                "{id}: queued; it does not undo {}, merged and depending on it",
                ids(dependents)
            ),
        ),
        EventKind::TaskReverted { commit, .. } => {
            Described::new(Status::Reverted, "reverted", format!("{id}  {commit}"))
        }
        EventKind::RevertRefused { reason } => {
            Described::new(Status::Merged, "refused", format!("{id}: {reason}"))
        }
        EventKind::MergeWaiting { reason } if id.is_empty() => {
            Described::new(Status::AwaitingMerge, "waiting", reason.clone())
        }
        EventKind::MergeWaiting { reason } => {
            Described::new(Status::AwaitingMerge, "waiting", format!("{id}: {reason}"))
        }
        EventKind::RunFinished { .. }
        | EventKind::TaskReady
        | EventKind::TaskCommit { .. }
        | EventKind::TaskUnblocked
        | EventKind::MergeStarted { .. }
        | EventKind::MergeRequeued { .. }
        | EventKind::CheckStarted { .. }
        | EventKind::CheckPassed { .. }
        | EventKind::TaskUsage { .. }
        | EventKind::HookFailed { .. } => return None,
    })
}

/// Joins ids with commas.
fn ids(list: &[crate::plan::FullId]) -> String {
    list.iter()
        .map(|i| i.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a plan change as a heading and one line per kind of change.
fn plan_changed(
    from: Option<&str>,
    to: &str,
    live: bool,
    c: &crate::state::events::PlanChanges,
) -> String {
    let short = crate::plan::diff::short;
    let mut text = match (live, from) {
        (true, _) => format!("The saved plan ({}) is applied:", short(to)),
        (false, Some(from)) => format!(
            "The plan changed since the last run ({} -> {}):",
            short(from),
            short(to)
        ),
        (false, None) => format!("The plan changed since the last run (now {}):", short(to)),
    };
    let lines: [(&str, &[crate::plan::FullId]); 8] = [
        ("added", &c.added),
        ("removed", &c.removed),
        ("dropped from the run, not started", &c.dropped),
        ("retitled", &c.retitled),
        ("dependencies changed", &c.dependencies),
        ("priority changed", &c.priorities),
        ("redefined", &c.redefined),
        (
            "merged before and changed since (the work stays merged; `orch retry ID` runs it again)",
            &c.merged_changed,
        ),
    ];
    for (what, list) in lines {
        if !list.is_empty() {
            text.push_str(&format!("\n  {what}: {}", ids(list)));
        }
    }
    if !c.kept.is_empty() {
        let kept: Vec<String> = c
            .kept
            .iter()
            .map(|k| format!("{} (`{}`)", k.id, k.branch))
            .collect();
        text.push_str(&format!(
            "\n  removed with work not in the target, kept on its branch: {}",
            kept.join(", ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a description as `word [status] text`, or `(none)`.
    fn shown(line: &str) -> String {
        let event: Event = serde_json::from_str(line).unwrap();
        match describe(&event) {
            None => "(none)".to_owned(),
            Some(Described {
                word: Some((status, word)),
                text,
            }) => format!("{word} [{status:?}] {text}"),
            Some(Described { word: None, text }) => text,
        }
    }

    #[test]
    fn pauses_read_with_their_local_time() {
        let until = crate::when::local(
            humantime::parse_rfc3339("2026-01-01T17:00:00Z").unwrap(),
            humantime::parse_rfc3339("2026-01-01T12:00:00.123Z").unwrap(),
        );
        let lines = [
            r#"{"seq":1,"ts":"2026-01-01T12:00:00.123Z","event":"task.interrupted","id":"T2","attempt":1,"reason":"usage limit of `claude`: usage limit reached","limited":true}"#,
            r#"{"seq":2,"ts":"2026-01-01T12:00:00.123Z","event":"agent.paused","id":"T2","agent":"claude","until":"2026-01-01T17:00:00.000Z","cause":"limit","attempt":1,"reason":"usage limit reached"}"#,
            r#"{"seq":3,"ts":"2026-01-01T12:00:00.123Z","event":"agent.paused","agent":"*","until":null,"cause":"person"}"#,
            r#"{"seq":4,"ts":"2026-01-01T12:00:00.123Z","event":"agent.resumed","agent":"claude","cause":"time"}"#,
            r#"{"seq":5,"ts":"2026-01-01T12:00:00.123Z","event":"agent.resumed","agent":"*","cause":"person"}"#,
            r#"{"seq":6,"ts":"2026-01-01T12:00:00.123Z","event":"task.usage","id":"T2","attempt":1,"agent":"claude","input_tokens":5}"#,
        ];
        let text: Vec<String> = lines.iter().map(|l| shown(l)).collect();
        assert_eq!(
            text,
            [
                "limited [Retrying] T2  attempt 1: usage limit of `claude`: usage limit reached"
                    .to_owned(),
                format!(
                    "paused [Retrying] claude until {until}: usage limit hit by T2 (attempt 1): usage limit reached"
                ),
                "paused [Retrying] every agent until resumed (`orch resume`), by a person"
                    .to_owned(),
                "resumed [Ready] claude: its pause ended".to_owned(),
                "resumed [Ready] every agent: resumed by a person".to_owned(),
                "(none)".to_owned(),
            ]
        );
    }

    #[test]
    fn every_kind_reads_as_before() {
        let lines = [
            r#"{"seq":1,"ts":"2026-01-01T12:00:00.123Z","event":"run.started","pid":4242,"target":"main","tasks":7,"no_merge":false}"#,
            r#"{"seq":1,"ts":"2026-01-01T12:00:00.123Z","event":"run.started","pid":4242,"target":"main","tasks":1,"no_merge":true}"#,
            r#"{"seq":2,"ts":"2026-01-01T12:00:00.123Z","event":"run.stopping","agents":2}"#,
            r#"{"seq":3,"ts":"2026-01-01T12:00:00.123Z","event":"run.finished","elapsed_ms":61000,"attempts":5,"interrupted":false,"counts":{"merged":3,"failed":1},"cpu_ms":420,"peak_rss_kb":10240,"state_writes":12,"state_bytes":3456}"#,
            r#"{"seq":5,"ts":"2026-01-01T12:00:00.123Z","event":"task.ready","id":"P1.M1.T1"}"#,
            r#"{"seq":6,"ts":"2026-01-01T12:00:00.123Z","event":"task.started","id":"P1.M1.T1","attempt":1,"title":"Ledger tables"}"#,
            r#"{"seq":7,"ts":"2026-01-01T12:00:00.123Z","event":"task.placed","id":"P1.M1.T1","attempt":1,"executor":"slurm","job":"4242","node":"node07"}"#,
            r#"{"seq":7,"ts":"2026-01-01T12:00:00.123Z","event":"task.placed","id":"P1.M1.T1","attempt":1,"executor":"slurm","job":"4242"}"#,
            r#"{"seq":8,"ts":"2026-01-01T12:00:00.123Z","event":"task.commit","id":"P1.M1.T1","commit":"f624be5c9ccf46de48f50dfa809370f6afa3f9fc","subject":"Add the ledger","branch":"orch/P1.M1.T1","via":"hook","attempt":2}"#,
            r#"{"seq":12,"ts":"2026-01-01T12:00:00.123Z","event":"task.completed","id":"P1.M1.T1","attempt":1,"commits":2,"log":[["9b1e0c4d2","Ledger tables"],["f624be5c9","Add \"the\" ledger"]],"duration_ms":391060}"#,
            r#"{"seq":13,"ts":"2026-01-01T12:00:00.123Z","event":"task.completed","id":"P1.M1.T1","attempt":1}"#,
            r#"{"seq":14,"ts":"2026-01-01T12:00:00.123Z","event":"task.retrying","id":"P1.M1.T1","attempt":1,"reason":"exit code 1","retry_in_ms":15000}"#,
            r#"{"seq":15,"ts":"2026-01-01T12:00:00.123Z","event":"task.interrupted","id":"P1.M1.T1","attempt":2,"reason":"the run stopped"}"#,
            r#"{"seq":16,"ts":"2026-01-01T12:00:00.123Z","event":"task.failed","id":"P1.M1.T1","attempt":3,"reason":"exit code 2"}"#,
            r#"{"seq":17,"ts":"2026-01-01T12:00:00.123Z","event":"task.failed","id":"P1.M1.T1","reason":"merge failed: boom"}"#,
            r#"{"seq":18,"ts":"2026-01-01T12:00:00.123Z","event":"task.blocked","id":"P1.M1.T1","by":"P1.M1.T0","reason":"required dependency `P1.M1.T0` is failed"}"#,
            r#"{"seq":19,"ts":"2026-01-01T12:00:00.123Z","event":"task.unblocked","id":"P1.M1.T1"}"#,
            r#"{"seq":20,"ts":"2026-01-01T12:00:00.123Z","event":"merge.started","id":"P1.M1.T1","branch":"orch/P1.M1.T1","tip":"9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d","strategy":"ff-only"}"#,
            r#"{"seq":22,"ts":"2026-01-01T12:00:00.123Z","event":"merge.conflicted","id":"P1.M1.T1","files":["a.rs","b.rs"],"onto":"5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382","reason":"merging with `main` conflicts in `a.rs`, `b.rs`"}"#,
            r#"{"seq":23,"ts":"2026-01-01T12:00:00.123Z","event":"merge.waiting","id":"P1.M1.T1","reason":"the target's checkout is not clean"}"#,
            r#"{"seq":24,"ts":"2026-01-01T12:00:00.123Z","event":"merge.requeued","id":"P1.M1.T1","reason":"the branch moved after it was queued; queued again","tip":"9b1e0c4d2a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d","backup":null}"#,
            r#"{"seq":26,"ts":"2026-01-01T12:00:00.123Z","event":"check.passed","id":"P1.M1.T1","check":"test"}"#,
            r#"{"seq":27,"ts":"2026-01-01T12:00:00.123Z","event":"check.failed","id":"P1.M1.T1","check":"test","reason":"exit code 1","log":".orchestrator/checks/P1.M1.T1/test.log"}"#,
            r#"{"seq":28,"ts":"2026-01-01T12:00:00.123Z","event":"check.failed","id":"P1.M1.T1","check":"policy.forbidden_paths","reason":"policy `forbidden_paths`: `secret.txt` matches `secret*`","log":null}"#,
            r#"{"seq":29,"ts":"2026-01-01T12:00:00.123Z","event":"task.merged","id":"P1.M1.T1","commit":"15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1","onto":"5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382","strategy":"squash","backup":"refs/orch/backup/P1.M1.T1/1","branch_deleted":true,"merge_ms":2700}"#,
            r#"{"seq":32,"ts":"2026-01-01T12:00:00.123Z","event":"task.cancelled","id":"P1.M1.T1","by":"person"}"#,
            r#"{"seq":33,"ts":"2026-01-01T12:00:00.123Z","event":"task.resolved","id":"P1.M1.T1","by":"person"}"#,
            r#"{"seq":34,"ts":"2026-01-01T12:00:00.123Z","event":"task.retried","id":"P1.M1.T1","by":"person"}"#,
            r#"{"seq":35,"ts":"2026-01-01T12:00:00.123Z","event":"hook.failed","id":"P1.M1.T1","reason":"`post_merge` failed"}"#,
            r#"{"seq":36,"ts":"2026-01-01T12:00:00.123Z","event":"plan.changed","from":"3f2a9c1d7e5b4a60","to":"9c1d3f2a7e5b4a60","live":false,"added":["T5"],"removed":["T3","T4"],"retitled":["T1"],"dependencies":["T2"],"priorities":["T2"],"redefined":["T1"],"dropped":["T4"],"merged_changed":["T1"],"kept":[{"id":"T3","branch":"orch/T3"}]}"#,
            r#"{"seq":37,"ts":"2026-01-01T12:00:00.123Z","event":"plan.changed","from":"3f2a9c1d7e5b4a60","to":"9c1d3f2a7e5b4a60","live":true,"added":["T6"]}"#,
            r#"{"seq":38,"ts":"2026-01-01T12:00:00.123Z","event":"plan.refused","errors":["plan.toml:3:1: unknown field `titel`"]}"#,
            r#"{"seq":39,"ts":"2026-01-01T12:00:00.123Z","event":"run.recovered","adopted":["T1","T2"],"collected":["T3"],"interrupted":["T4"]}"#,
        ];
        let text: String = lines.iter().map(|l| shown(l) + "\n").collect();
        insta::assert_snapshot!(text, @"
        Starting: 7 tasks on target `main`.
        Starting: 1 task on target `main`, without merging.
        Stopping: waiting for 2 agents to stop (press Ctrl-C again to kill at once).
        (none)
        (none)
        started [Running] P1.M1.T1  attempt 1: Ledger tables
        placed [Running] P1.M1.T1  attempt 1: slurm job 4242 on node07
        placed [Running] P1.M1.T1  attempt 1: slurm job 4242, queued
        (none)
        done [AwaitingMerge] P1.M1.T1  attempt 1, 6m31s, 2 commits
        done [AwaitingMerge] P1.M1.T1  attempt 1
        retrying [Retrying] P1.M1.T1  attempt 1: exit code 1; next attempt in 15.0s
        stopped [Pending] P1.M1.T1  attempt 2: the run stopped
        failed [Failed] P1.M1.T1  attempt 3: exit code 2
        failed [Failed] P1.M1.T1: merge failed: boom
        blocked [Blocked] P1.M1.T1: required dependency `P1.M1.T0` is failed
        (none)
        (none)
        conflict [Conflicted] P1.M1.T1: merging with `main` conflicts in `a.rs`, `b.rs`
        waiting [AwaitingMerge] P1.M1.T1: the target's checkout is not clean
        (none)
        (none)
        red [Failed] P1.M1.T1: check `test` failed; log: .orchestrator/checks/P1.M1.T1/test.log
        red [Failed] P1.M1.T1: policy `forbidden_paths`: `secret.txt` matches `secret*`
        merged [Merged] P1.M1.T1  15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1
        cancelled [Cancelled] P1.M1.T1
        resolved [Resolved] P1.M1.T1
        retry [Ready] P1.M1.T1
        (none)
        The plan changed since the last run (3f2a9c1d7e5b -> 9c1d3f2a7e5b):
          added: T5
          removed: T3, T4
          dropped from the run, not started: T4
          retitled: T1
          dependencies changed: T2
          priority changed: T2
          redefined: T1
          merged before and changed since (the work stays merged; `orch retry ID` runs it again): T1
          removed with work not in the target, kept on its branch: T3 (`orch/T3`)
        The saved plan (9c1d3f2a7e5b) is applied:
          added: T6
        The saved plan has errors; the run goes on with the plan it had:
          plan.toml:3:1: unknown field `titel`
        After the restart: adopted 2 agents still running (T1, T2); collected 1 attempt that ended meanwhile (T3); 1 attempt nothing was left of, to run again (T4).
        ");
    }
}
