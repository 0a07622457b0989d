//! The documents `--json` prints, as types: `orch status`, `orch status ID`,
//! `orch plan show` and `orch plan next`.
//!
//! These shapes are a contract (DESIGN §7 "Machine-readable shapes",
//! `docs/state.md` "JSON output"): fields are added, never renamed or
//! removed. A field is written in the order it is declared here
//! (`serde_json` keeps insertion order), so moving one changes the output;
//! the snapshot tests below catch that. Every document also deserializes,
//! and a round-trip test per document keeps both directions in step.
//!
//! Each document is built from the plan, the state and the scheduler's
//! answer, then serialized; nothing here decides anything. `orch run --json`
//! and `orch merge --json` print events, whose shape belongs to
//! `crate::state::events`, not to this module.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lifecycle::Status;
use crate::plan::{FullId, ItemIdx, Kind, Plan};
use crate::schedule::{self, Schedule, TaskView};
use crate::state::State;
use crate::state::model::{Attempt, PauseCause, Timestamp, Usage};

/// `orch status --json`: where every item stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    /// The `state.json` schema this build reads and writes.
    pub schema: u32,
    /// The target branch as `state.json` records it; `None` before the first run.
    pub target: Option<String>,
    /// The coordinator holding the lock, while a run is live.
    pub live: Option<Live>,
    /// Every item in plan order, phases and milestones with derived status.
    pub items: Vec<StatusItem>,
    /// Tasks (not subtasks) by status name, sorted by name; only the
    /// statuses some task has.
    pub counts: BTreeMap<String, usize>,
    /// The merge queue's candidates being checked or landed (`candidates`
    /// in `state.json`); left out when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<crate::state::model::Candidate>,
    /// The agents nothing is launched for now (`*`: every agent).
    #[serde(default)]
    pub paused: Vec<PausedAgent>,
    /// The tokens and cost agents reported, over every attempt; `None`
    /// when none reported any.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// One of [`StatusDoc::paused`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedAgent {
    pub agent: String,
    /// When it resumes by itself; `None`: when a person resumes it.
    pub until: Option<Timestamp>,
    pub cause: PauseCause,
    /// For a limit: what the agent said.
    pub reason: Option<String>,
    /// For a limit: the task or subtask whose attempt hit it.
    pub by: Option<FullId>,
}

/// The live coordinator in [`StatusDoc::live`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Live {
    pub pid: u32,
}

/// One item of [`StatusDoc::items`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusItem {
    pub id: FullId,
    pub kind: Kind,
    pub title: String,
    pub status: Status,
    /// The attempts that count against `retry.max_attempts` (0 for phases
    /// and milestones).
    pub attempts: u32,
    pub branch: Option<String>,
    pub worktree: Option<PathBuf>,
    pub merge_commit: Option<String>,
    pub reason: Option<String>,
    /// The conflict radar: other active tasks changing some of the same
    /// paths, with those paths; left out when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overlaps: BTreeMap<FullId, Vec<String>>,
    /// The tokens and cost of its attempts and those of the items inside
    /// it; `None` when no agent reported any.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// Returns the usage of the item at `idx` and of the items inside it.
pub fn item_usage(plan: &Plan, state: &State, idx: ItemIdx) -> Option<Usage> {
    let attempts = plan
        .item(idx)
        .descendants(idx)
        .chain(std::iter::once(idx.index()))
        .filter_map(|i| state.items.get(&plan.item(ItemIdx(i as u32)).id))
        .flat_map(|s| s.attempts.iter());
    Usage::total(attempts)
}

impl StatusDoc {
    /// Builds the document from the plan, its statuses
    /// ([`crate::state::item_statuses`]) and the state; `live` is the pid
    /// holding the lock, and pauses are those that hold at `now`.
    pub fn new(
        plan: &Plan,
        statuses: &[Status],
        state: &State,
        live: Option<u32>,
        now: SystemTime,
    ) -> StatusDoc {
        let items = plan
            .indices()
            .map(|idx| {
                let item = plan.item(idx);
                let s = state.items.get(&item.id);
                StatusItem {
                    id: item.id.clone(),
                    kind: item.kind,
                    title: item.title.clone(),
                    status: statuses[idx.index()],
                    attempts: s.map_or(0, |s| s.counted_attempts()),
                    branch: s.and_then(|s| s.branch.clone()),
                    worktree: s.and_then(|s| s.worktree.clone()),
                    merge_commit: s.and_then(|s| s.merge_commit.clone()),
                    reason: s.and_then(|s| s.reason.clone()),
                    overlaps: s
                        .and_then(|s| s.radar.as_ref())
                        .map(|r| r.overlaps.clone())
                        .unwrap_or_default(),
                    usage: item_usage(plan, state, idx),
                }
            })
            .collect();
        let mut counts = BTreeMap::new();
        for t in plan.tasks() {
            *counts
                .entry(statuses[t.index()].as_str().to_owned())
                .or_default() += 1;
        }
        let paused = state
            .paused
            .iter()
            .filter(|(_, p)| p.holds_at(now))
            .map(|(agent, p)| PausedAgent {
                agent: agent.clone(),
                until: p.until,
                cause: p.cause,
                reason: p.reason.clone(),
                by: p.by.clone(),
            })
            .collect();
        let usage = Usage::total(
            plan.indices()
                .filter_map(|idx| state.items.get(&plan.item(idx).id))
                .flat_map(|s| s.attempts.iter()),
        );
        StatusDoc {
            schema: crate::state::SCHEMA,
            target: state.target.clone(),
            live: live.map(|pid| Live { pid }),
            items,
            counts,
            queue: state.candidates.clone(),
            paused,
            usage,
        }
    }
}

/// `orch status ID --json`: one item, with its attempts as `state.json` has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetailDoc {
    pub id: FullId,
    pub kind: Kind,
    pub title: String,
    pub status: Status,
    pub reason: Option<String>,
    pub branch: Option<String>,
    pub worktree: Option<PathBuf>,
    /// The target commit the branch was created from.
    pub base: Option<String>,
    pub merge_commit: Option<String>,
    /// What the agent said it did.
    pub summary: Option<String>,
    /// Every attempt, oldest first, including those that do not count.
    pub attempts: Vec<Attempt>,
    /// The tokens and cost of its attempts and those of its subtasks.
    #[serde(default)]
    pub usage: Option<Usage>,
}

impl DetailDoc {
    /// Builds the document for the item at `idx`, whose status is `status`.
    pub fn new(plan: &Plan, idx: ItemIdx, status: Status, state: &State) -> DetailDoc {
        let item = plan.item(idx);
        let s = state.items.get(&item.id);
        DetailDoc {
            id: item.id.clone(),
            kind: item.kind,
            title: item.title.clone(),
            status,
            reason: s.and_then(|s| s.reason.clone()),
            branch: s.and_then(|s| s.branch.clone()),
            worktree: s.and_then(|s| s.worktree.clone()),
            base: s.and_then(|s| s.base.clone()),
            merge_commit: s.and_then(|s| s.merge_commit.clone()),
            summary: s.and_then(|s| s.summary.clone()),
            attempts: s.map(|s| s.attempts.clone()).unwrap_or_default(),
            usage: item_usage(plan, state, idx),
        }
    }
}

/// `orch plan show --json`: the plan, every item in plan order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanDoc {
    pub title: Option<String>,
    pub items: Vec<PlanItem>,
}

/// One item of [`PlanDoc::items`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    pub id: FullId,
    pub kind: Kind,
    pub title: String,
    /// 0 (urgent) to 3 (low).
    pub priority: u8,
    /// Derived for phases and milestones.
    pub status: Status,
    /// A task's dependency level (1: it needs no other task; n: it needs a
    /// task of level n - 1); left out for other items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    pub parent: Option<FullId>,
    pub depends_on: Vec<PlanDep>,
    /// The item's fields `orch` does not know, only when it has some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Map<String, Value>>,
}

/// One entry of [`PlanItem::depends_on`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDep {
    pub id: FullId,
    pub required: bool,
}

impl PlanDoc {
    /// Builds the document from the plan and its statuses
    /// ([`crate::state::item_statuses`]).
    pub fn new(plan: &Plan, statuses: &[Status]) -> PlanDoc {
        let items = plan
            .indices()
            .map(|idx| {
                let item = plan.item(idx);
                PlanItem {
                    id: item.id.clone(),
                    kind: item.kind,
                    title: item.title.clone(),
                    priority: item.priority.level(),
                    status: statuses[idx.index()],
                    level: plan.graph().task_node(idx).map(|t| plan.graph().level(t)),
                    parent: item.parent.map(|p| plan.item(p).id.clone()),
                    depends_on: item
                        .depends_on
                        .iter()
                        .map(|d| PlanDep {
                            id: plan.item(d.target).id.clone(),
                            required: d.required,
                        })
                        .collect(),
                    extra: item.extra().cloned(),
                }
            })
            .collect();
        PlanDoc {
            title: plan.title.clone(),
            items,
        }
    }
}

/// `orch plan next --json`: the ready tasks in the order `orch run` would
/// start them, those that must wait for a slot or a resource last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextDoc {
    pub ready: Vec<NextTask>,
}

/// One entry of [`NextDoc::ready`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextTask {
    pub id: FullId,
    pub title: String,
    pub priority: u8,
    /// The priority after aging, which is what orders the list.
    pub effective_priority: u8,
    /// Why the task cannot start now, when it cannot.
    pub held: Option<String>,
}

impl NextDoc {
    /// Builds the document from the scheduler's answer for `views` at `now`,
    /// with the aging period it used.
    pub fn new(
        plan: &Plan,
        views: &[TaskView],
        schedule: &Schedule,
        now: SystemTime,
        aging: Option<Duration>,
    ) -> NextDoc {
        let entries = schedule
            .start
            .iter()
            .map(|t| (*t, None))
            .chain(schedule.held.iter().map(|(t, h)| (*t, Some(h))));
        let ready = entries
            .map(|(t, hold)| {
                let item = plan.item(plan.tasks()[t as usize]);
                let waited = views[t as usize]
                    .ready_since
                    .and_then(|since| now.duration_since(since).ok())
                    .unwrap_or_default();
                NextTask {
                    id: item.id.clone(),
                    title: item.title.clone(),
                    priority: item.priority.level(),
                    effective_priority: schedule::effective_priority(
                        item.priority.level(),
                        waited,
                        aging,
                    ),
                    held: hold.map(|h| h.describe(plan)),
                }
            })
            .collect();
        NextDoc { ready }
    }
}

/// Writes `doc` pretty-printed, with a final newline.
pub fn write_pretty(out: &mut impl Write, doc: &impl Serialize) -> io::Result<()> {
    let text = serde_json::to_string_pretty(doc).map_err(io::Error::other)?;
    writeln!(out, "{text}")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde::de::DeserializeOwned;

    use super::*;
    use crate::config::Config;
    use crate::state;

    const PLAN: &str = r#"
title = "Payments rewrite"

[[phase]]
id = "P1"
title = "Foundation"

[[phase.milestone]]
id = "M1"
title = "Ledger"

[[phase.milestone.task]]
id = "T1"
title = "Ledger tables"
priority = 1
owner = "ana"

[[phase.milestone.task.subtask]]
id = "S1"
title = "Migration"

[[phase.milestone.task]]
id = "T2"
title = "Ledger model"
depends_on = ["T1", { id = "T3", required = false }]

[[phase.milestone.task]]
id = "T3"
title = "Seed data"
priority = 0
resources = { db = 1 }

[[phase.milestone.task]]
id = "T4"
title = "Fixtures"
priority = 2
resources = { db = 1 }

[[phase.milestone.task]]
id = "T5"
title = "Docs"
priority = 3

[[phase.milestone.task]]
id = "T6"
title = "Audit log"

[[phase.milestone.task]]
id = "T7"
title = "Reports"
"#;

    const STATE: &str = r#"{"schema": 1, "target": "main",
      "items": {
        "P1.M1.T1": {"status": "running", "branch": "orch/P1.M1.T1",
          "worktree": "/repo/.orchestrator/worktrees/P1.M1.T1",
          "base": "5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382",
          "attempts": [
            {"number": 1, "started": "2026-01-01T12:00:00.010Z",
             "finished": "2026-01-01T12:06:31.200Z",
             "outcome": {"kind": "failed", "reason": "exit code 1", "retry": true}},
            {"number": 2, "started": "2026-01-01T12:07:00.000Z",
             "finished": "2026-01-01T12:07:02.000Z",
             "outcome": {"kind": "interrupted", "reason": "the coordinator stopped"}},
            {"number": 3, "started": "2026-01-01T12:08:00.000Z", "purpose": "conflict"}]},
        "P1.M1.T5": {"status": "ready", "ready_since": "2026-01-01T12:00:00.000Z"},
        "P1.M1.T6": {"status": "merged", "branch": "orch/P1.M1.T6",
          "merge_commit": "15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1",
          "attempts": [{"number": 1, "started": "2026-01-01T12:00:00.000Z",
            "finished": "2026-01-01T12:03:00.000Z",
            "outcome": {"kind": "succeeded", "commits": 2}, "agent": "claude",
            "session": "8f1c", "usage": {"input_tokens": 1200, "output_tokens": 340,
            "cached_tokens": 800, "cost_usd": 0.0123}}]},
        "P1.M1.T7": {"status": "failed",
          "reason": "exit code 2, which `retry.permanent_exit_codes` lists"}
      },
      "paused": {"codex": {"until": "2026-01-01T17:00:00.000Z", "cause": "limit",
        "reason": "You've hit your usage limit. Try again at 5:00 PM.", "by": "P1.M1.T5",
        "since": "2026-01-01T12:10:00.000Z"}}}"#;

    fn plan() -> Plan {
        crate::plan::from_bytes(Path::new("plan.toml"), PLAN.as_bytes(), &Default::default())
            .unwrap()
    }

    fn state() -> State {
        crate::state::store::parse(Path::new("state.json"), STATE.as_bytes()).unwrap()
    }

    fn pretty(doc: &impl Serialize) -> String {
        let mut out = Vec::new();
        write_pretty(&mut out, doc).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Asserts that `doc` reads back as itself.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(doc: &T) {
        let back: T = serde_json::from_str(&pretty(doc)).unwrap();
        assert_eq!(&back, doc);
    }

    #[test]
    fn status_document() {
        let (plan, state) = (plan(), state());
        let statuses = state::item_statuses(&plan, Some(&state));
        let at_noon = humantime::parse_rfc3339("2026-01-01T12:30:00Z").unwrap();
        let doc = StatusDoc::new(&plan, &statuses, &state, Some(48213), at_noon);
        round_trip(&doc);
        insta::assert_snapshot!(pretty(&doc), @r#"
        {
          "schema": 1,
          "target": "main",
          "live": {
            "pid": 48213
          },
          "items": [
            {
              "id": "P1",
              "kind": "phase",
              "title": "Foundation",
              "status": "running",
              "attempts": 0,
              "branch": null,
              "worktree": null,
              "merge_commit": null,
              "reason": null,
              "usage": {
                "input_tokens": 1200,
                "output_tokens": 340,
                "cached_tokens": 800,
                "cost_usd": 0.0123
              }
            },
            {
              "id": "P1.M1",
              "kind": "milestone",
              "title": "Ledger",
              "status": "running",
              "attempts": 0,
              "branch": null,
              "worktree": null,
              "merge_commit": null,
              "reason": null,
              "usage": {
                "input_tokens": 1200,
                "output_tokens": 340,
                "cached_tokens": 800,
                "cost_usd": 0.0123
              }
            },
            {
              "id": "P1.M1.T1",
              "kind": "task",
              "title": "Ledger tables",
              "status": "running",
              "attempts": 2,
              "branch": "orch/P1.M1.T1",
              "worktree": "/repo/.orchestrator/worktrees/P1.M1.T1",
              "merge_commit": null,
              "reason": null,
              "usage": null
            },
            {
              "id": "P1.M1.T1.S1",
              "kind": "subtask",
              "title": "Migration",
              "status": "pending",
              "attempts": 0,
              "branch": null,
              "worktree": null,
              "merge_commit": null,
              "reason": null,
              "usage": null
            },
            {
              "id": "P1.M1.T2",
              "kind": "task",
              "title": "Ledger model",
              "status": "pending",
              "attempts": 0,
              "branch": null,
              "worktree": null,
              "merge_commit": null,
              "reason": null,
              "usage": null
            },
            {
              "id": "P1.M1.T3",
              "kind": "task",
              "title": "Seed data",
              "status": "pending",
              "attempts": 0,
              "branch": null,
              "worktree": null,
              "merge_commit": null,
              "reason": null,
              "usage": null
            },
            {
              "id": "P1.M1.T4",
              "kind": "task",
              "title": "Fixtures",
              "status": "pending",
              "attempts": 0,
              "branch": null,
              "worktree": null,
              "merge_commit": null,
              "reason": null,
              "usage": null
            },
            {
              "id": "P1.M1.T5",
              "kind": "task",
              "title": "Docs",
              "status": "ready",
              "attempts": 0,
              "branch": null,
              "worktree": null,
              "merge_commit": null,
              "reason": null,
              "usage": null
            },
            {
              "id": "P1.M1.T6",
              "kind": "task",
              "title": "Audit log",
              "status": "merged",
              "attempts": 1,
              "branch": "orch/P1.M1.T6",
              "worktree": null,
              "merge_commit": "15f2ff1bab40ca0bb8d8a5518a219f8a0fcb5bf1",
              "reason": null,
              "usage": {
                "input_tokens": 1200,
                "output_tokens": 340,
                "cached_tokens": 800,
                "cost_usd": 0.0123
              }
            },
            {
              "id": "P1.M1.T7",
              "kind": "task",
              "title": "Reports",
              "status": "failed",
              "attempts": 0,
              "branch": null,
              "worktree": null,
              "merge_commit": null,
              "reason": "exit code 2, which `retry.permanent_exit_codes` lists",
              "usage": null
            }
          ],
          "counts": {
            "failed": 1,
            "merged": 1,
            "pending": 3,
            "ready": 1,
            "running": 1
          },
          "paused": [
            {
              "agent": "codex",
              "until": "2026-01-01T17:00:00.000Z",
              "cause": "limit",
              "reason": "You've hit your usage limit. Try again at 5:00 PM.",
              "by": "P1.M1.T5"
            }
          ],
          "usage": {
            "input_tokens": 1200,
            "output_tokens": 340,
            "cached_tokens": 800,
            "cost_usd": 0.0123
          }
        }
        "#);
    }

    #[test]
    fn status_detail_document() {
        let (plan, state) = (plan(), state());
        let statuses = state::item_statuses(&plan, Some(&state));
        let idx = plan.lookup("P1.M1.T1").unwrap();
        let doc = DetailDoc::new(&plan, idx, statuses[idx.index()], &state);
        round_trip(&doc);
        insta::assert_snapshot!(pretty(&doc), @r#"
        {
          "id": "P1.M1.T1",
          "kind": "task",
          "title": "Ledger tables",
          "status": "running",
          "reason": null,
          "branch": "orch/P1.M1.T1",
          "worktree": "/repo/.orchestrator/worktrees/P1.M1.T1",
          "base": "5dd1759e3c4ae0b1f4c3b1f2a8d9e7c6b5a49382",
          "merge_commit": null,
          "summary": null,
          "attempts": [
            {
              "number": 1,
              "started": "2026-01-01T12:00:00.010Z",
              "finished": "2026-01-01T12:06:31.200Z",
              "outcome": {
                "kind": "failed",
                "reason": "exit code 1",
                "retry": true
              }
            },
            {
              "number": 2,
              "started": "2026-01-01T12:07:00.000Z",
              "finished": "2026-01-01T12:07:02.000Z",
              "outcome": {
                "kind": "interrupted",
                "reason": "the coordinator stopped"
              }
            },
            {
              "number": 3,
              "started": "2026-01-01T12:08:00.000Z",
              "purpose": "conflict"
            }
          ],
          "usage": null
        }
        "#);
    }

    #[test]
    fn plan_document() {
        let (plan, state) = (plan(), state());
        let statuses = state::item_statuses(&plan, Some(&state));
        let doc = PlanDoc::new(&plan, &statuses);
        round_trip(&doc);
        insta::assert_snapshot!(pretty(&doc), @r#"
        {
          "title": "Payments rewrite",
          "items": [
            {
              "id": "P1",
              "kind": "phase",
              "title": "Foundation",
              "priority": 2,
              "status": "running",
              "parent": null,
              "depends_on": []
            },
            {
              "id": "P1.M1",
              "kind": "milestone",
              "title": "Ledger",
              "priority": 2,
              "status": "running",
              "parent": "P1",
              "depends_on": []
            },
            {
              "id": "P1.M1.T1",
              "kind": "task",
              "title": "Ledger tables",
              "priority": 1,
              "status": "running",
              "level": 1,
              "parent": "P1.M1",
              "depends_on": [],
              "extra": {
                "owner": "ana"
              }
            },
            {
              "id": "P1.M1.T1.S1",
              "kind": "subtask",
              "title": "Migration",
              "priority": 2,
              "status": "pending",
              "parent": "P1.M1.T1",
              "depends_on": []
            },
            {
              "id": "P1.M1.T2",
              "kind": "task",
              "title": "Ledger model",
              "priority": 2,
              "status": "pending",
              "level": 2,
              "parent": "P1.M1",
              "depends_on": [
                {
                  "id": "P1.M1.T1",
                  "required": true
                },
                {
                  "id": "P1.M1.T3",
                  "required": false
                }
              ]
            },
            {
              "id": "P1.M1.T3",
              "kind": "task",
              "title": "Seed data",
              "priority": 0,
              "status": "pending",
              "level": 1,
              "parent": "P1.M1",
              "depends_on": []
            },
            {
              "id": "P1.M1.T4",
              "kind": "task",
              "title": "Fixtures",
              "priority": 2,
              "status": "pending",
              "level": 1,
              "parent": "P1.M1",
              "depends_on": []
            },
            {
              "id": "P1.M1.T5",
              "kind": "task",
              "title": "Docs",
              "priority": 3,
              "status": "ready",
              "level": 1,
              "parent": "P1.M1",
              "depends_on": []
            },
            {
              "id": "P1.M1.T6",
              "kind": "task",
              "title": "Audit log",
              "priority": 2,
              "status": "merged",
              "level": 1,
              "parent": "P1.M1",
              "depends_on": []
            },
            {
              "id": "P1.M1.T7",
              "kind": "task",
              "title": "Reports",
              "priority": 2,
              "status": "failed",
              "level": 1,
              "parent": "P1.M1",
              "depends_on": []
            }
          ]
        }
        "#);
    }

    #[test]
    fn next_document() {
        let (plan, state) = (plan(), state());
        let mut config = Config::default();
        config.agent.max_parallel = 4;
        config.resources.insert("db".to_owned(), 1);
        config.scheduling.aging = crate::config::Dur(Duration::from_secs(600));
        let limits = config.limits(None);
        let views: Vec<TaskView> = state::task_views(&plan, Some(&state));
        // T5 became ready 25 minutes ago: two aging periods.
        let now = humantime::parse_rfc3339("2026-01-01T12:25:00Z").unwrap();
        let schedule = schedule::schedule(&plan, &views, now, &limits);
        let doc = NextDoc::new(&plan, &views, &schedule, now, limits.aging);
        round_trip(&doc);
        insta::assert_snapshot!(pretty(&doc), @r#"
        {
          "ready": [
            {
              "id": "P1.M1.T3",
              "title": "Seed data",
              "priority": 0,
              "effective_priority": 0,
              "held": null
            },
            {
              "id": "P1.M1.T5",
              "title": "Docs",
              "priority": 3,
              "effective_priority": 1,
              "held": null
            },
            {
              "id": "P1.M1.T4",
              "title": "Fixtures",
              "priority": 2,
              "effective_priority": 2,
              "held": "resource `db` is in use"
            }
          ]
        }
        "#);
    }
}
