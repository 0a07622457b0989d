//! The core's rules for rate and usage limits and for a person's pauses.
//!
//! - An attempt that failed on a rate or usage limit (`judge.rs`) does not
//!   count: it is closed as interrupted, with `paused_until`, and its item
//!   runs again once its agent may launch.
//! - Its agent is paused until the limit resets, as the agent said; when it
//!   named no time, or one already past, for `retry.limit_pause` (growing
//!   with each limit the agent hits in a row). A pause never shortens an
//!   existing one, and a person's pause until resumed stays as it is.
//! - Nothing is launched for a paused agent (`Hold::Paused` in the
//!   scheduler, and for each step of a task run per subtask); attempts
//!   already running go on, and other agents' tasks take the free slots.
//! - A pause ends by itself at its time (`agent.resumed`, `time`), or when a
//!   person resumes it (`orch resume`, through the inbox).

use std::time::SystemTime;

use super::core::{Now, RunState};
use crate::coordinator::control;
use crate::lifecycle::{Status, Transition};
use crate::plan::FullId;
use crate::runner::output::LimitHit;
use crate::schedule::Hold;
use crate::state::events::{EventKind, ResumeCause};
use crate::state::inbox::{self, Order};
use crate::state::model::{ALL_AGENTS, Outcome, Pause, PauseCause, Timestamp};

impl RunState {
    /// Returns the name of the agent a unit runs (`None` once it left the plan).
    pub(super) fn agent_name(&self, task: &FullId, unit: &FullId) -> Option<String> {
        self.agent_of_unit(task, unit).map(|a| a.name().to_owned())
    }

    /// Returns why the task at node `t` may not launch now: its agent is paused.
    pub(super) fn pause_hold(&self, t: u32, now: Now) -> Option<Hold> {
        if self.state.paused.is_empty() {
            return None;
        }
        let plan = &self.env.plan;
        let ti = *plan.tasks().get(t as usize)?;
        let agent = self.agent_of(ti, ti)?;
        let (key, pause) = self.state.pause_of(agent.name(), now.wall)?;
        Some(Hold::Paused {
            agent: key.to_owned(),
            until: pause.until.map(|u| u.0),
        })
    }

    /// Returns whether the agent of `unit` (of `task`) is paused at `now`.
    pub(super) fn unit_paused(&self, task: &FullId, unit: &FullId, now: Now) -> bool {
        self.agent_name(task, unit)
            .is_some_and(|agent| self.state.pause_of(&agent, now.wall).is_some())
    }

    /// Returns when the first pause that holds at `now` ends by itself.
    pub(super) fn next_pause_end(&self, now: Now) -> Option<SystemTime> {
        self.state
            .paused
            .values()
            .filter(|p| p.holds_at(now.wall))
            .filter_map(|p| p.until.map(|u| u.0))
            .min()
    }

    /// Closes an attempt that failed on a rate or usage limit: it does not
    /// count, its item runs again later, and its agent pauses.
    pub(super) fn on_limited(
        &mut self,
        unit: &FullId,
        attempt: u32,
        agent: &str,
        hit: LimitHit,
        now: Now,
    ) {
        let hits = {
            let hits = self.flight.limit_hits.entry(agent.to_owned()).or_default();
            *hits += 1;
            *hits
        };
        let until = match hit.reset {
            Some(reset) if reset > now.wall => reset,
            _ => now.wall + self.env.config.retry.limit_pause.after(hits),
        };
        let until = Timestamp::at(until);
        let reason = format!("usage limit of `{agent}`: {}", hit.said);
        let entry = self.entry(unit);
        let Some(open) = entry.open_attempt_mut().filter(|a| a.number == attempt) else {
            return;
        };
        open.outcome = Some(Outcome::Interrupted {
            reason: reason.clone(),
        });
        open.finished = Some(Timestamp::at(now.wall));
        open.paused_until = Some(until);
        entry.not_before = None;
        entry.reason = Some(format!("waiting for the usage limit of `{agent}` to reset"));
        if entry.status == Status::Running {
            self.transition(unit, Transition::Interrupt);
        }
        self.emit(
            Some(unit),
            EventKind::TaskInterrupted {
                attempt,
                reason,
                limited: true,
            },
        );
        let longer = match self.state.paused.get(agent) {
            Some(p) => p.until.is_some_and(|u| u < until),
            None => true,
        };
        if longer {
            self.state.paused.insert(
                agent.to_owned(),
                Pause {
                    until: Some(until),
                    cause: PauseCause::Limit,
                    reason: Some(hit.said.clone()),
                    by: Some(unit.clone()),
                    since: Timestamp::at(now.wall),
                },
            );
            self.touch();
            self.emit(
                Some(unit),
                EventKind::AgentPaused {
                    agent: agent.to_owned(),
                    until: Some(until),
                    cause: PauseCause::Limit,
                    attempt: Some(attempt),
                    reason: Some(hit.said),
                },
            );
        }
    }

    /// Ends the pauses whose time has come.
    pub(super) fn expire_pauses(&mut self, now: Now) {
        let ended: Vec<String> = self
            .state
            .paused
            .iter()
            .filter(|(_, p)| !p.holds_at(now.wall))
            .map(|(agent, _)| agent.clone())
            .collect();
        for agent in ended {
            self.state.paused.remove(&agent);
            self.touch();
            self.emit(
                None,
                EventKind::AgentResumed {
                    agent,
                    cause: ResumeCause::Time,
                },
            );
        }
    }

    /// Applies `orch pause` or `orch resume` from the inbox.
    pub(super) fn on_pause_order(&mut self, order: &Order, now: Now) -> inbox::Reply {
        let named = |agent: &Option<String>| match agent.as_deref() {
            Some(ALL_AGENTS) | None => "every agent".to_owned(),
            Some(agent) => format!("`{agent}`"),
        };
        match order {
            Order::Pause { agent, until } => {
                if let Some(agent) = agent
                    && let Err(e) = control::check_agent(&self.env.config, agent)
                {
                    return inbox::Reply::refused(e.to_string());
                }
                let kind = control::pause(
                    &mut self.state,
                    agent.as_deref(),
                    *until,
                    Timestamp::at(now.wall),
                );
                self.touch();
                self.emit(None, kind);
                inbox::Reply::ok(format!("paused {}", named(agent)))
            }
            Order::Resume { agent } => match control::resume(&mut self.state, agent.as_deref()) {
                Ok(events) => {
                    self.touch();
                    for kind in events {
                        self.emit(None, kind);
                    }
                    inbox::Reply::ok(format!("resumed {}", named(agent)))
                }
                Err(e) => inbox::Reply::refused(e.to_string()),
            },
            Order::Retry { .. }
            | Order::Cancel { .. }
            | Order::Resolve { .. }
            | Order::Approve { .. }
            | Order::Reject { .. }
            | Order::Revert { .. } => inbox::Reply::refused("not a pause or resume".to_owned()),
        }
    }
}
