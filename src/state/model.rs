//! The shape of `state.json` (DESIGN §2.3), schema 1.
//!
//! Only tasks and subtasks are stored; phases and milestones are derived
//! ([`crate::lifecycle::derive`]). Readers ignore fields they do not know,
//! so a newer `orch` may add fields within schema 1; a reader refuses to
//! *write* a schema newer than [`SCHEMA`] ([`crate::state::store`]).
//!
//! The state is a cache of the truth kept in git (branches, target) and in
//! the run folders (`runs/<id>/<n>/`): the coordinator rebuilds from them
//! what a crash may have left out.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lifecycle::Status;
use crate::plan::FullId;

/// The schema this build reads and writes.
pub const SCHEMA: u32 = 1;

/// A point in time, written as RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp::at(SystemTime::now())
    }

    /// `time` cut to whole milliseconds, as it is written: a timestamp kept
    /// in memory then compares as the same one read back after a restart.
    pub fn at(time: SystemTime) -> Timestamp {
        let since = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let millis = Duration::from_millis(since.as_millis().try_into().unwrap_or(u64::MAX));
        Timestamp(SystemTime::UNIX_EPOCH + millis)
    }

    /// Returns how long ago this was at `now`, zero if it is in the future.
    pub fn elapsed_at(self, now: SystemTime) -> Duration {
        now.duration_since(self.0).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text)
            .map(Timestamp::at)
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp `{text}`: {e}")))
    }
}

/// The run's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub schema: u32,
    /// The branch finished work is merged into.
    #[serde(default)]
    pub target: Option<String>,
    /// The last coordinator that wrote this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRecord>,
    /// The target's head after orch's last merge. A target found on a head
    /// that does not contain it was moved under orch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landed: Option<String>,
    /// A landed head the target lost, reported and kept under a backup ref
    /// until a person puts it back or deletes that ref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<LostHead>,
    /// The merge queue's candidates being checked or landed, oldest
    /// first: which tasks each check run belongs to. Rebuilt by every run
    /// (a check result never outlives its coordinator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// Tasks and subtasks by full id; items the state does not list are as the plan says.
    #[serde(default)]
    pub items: BTreeMap<FullId, ItemState>,
    /// Agents nothing is launched for, by agent name (`*`: every agent);
    /// left out when none is paused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paused: BTreeMap<String, Pause>,
}

impl Default for State {
    fn default() -> Self {
        State {
            schema: SCHEMA,
            target: None,
            run: None,
            landed: None,
            lost: None,
            candidates: Vec::new(),
            items: BTreeMap::new(),
            paused: BTreeMap::new(),
        }
    }
}

/// One candidate of the merge queue: the tasks merged onto `onto` (the
/// target, or the candidate ahead of it), in order, into `commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub commit: String,
    pub onto: String,
    pub tasks: Vec<FullId>,
    pub check: CandidateCheck,
}

/// Where a candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateCheck {
    /// Its checks run (in the check worktree `slot`).
    Running { slot: u32 },
    /// Its checks passed; it lands once what is ahead of it has.
    Passed,
    /// A check failed: the culprit is among its tasks.
    Failed,
    /// The target is moving to it.
    Landing,
}

impl State {
    /// Returns the pause that holds `agent` back at `now`: its own, else
    /// one of every agent (`*`); a pause whose time has come holds nothing.
    pub fn pause_of(&self, agent: &str, now: SystemTime) -> Option<(&str, &Pause)> {
        [agent, ALL_AGENTS]
            .into_iter()
            .filter_map(|key| self.paused.get_key_value(key))
            .find(|(_, p)| p.holds_at(now))
            .map(|(k, p)| (k.as_str(), p))
    }
}

/// The key of [`State::paused`] that pauses every agent (`orch pause --all`).
pub const ALL_AGENTS: &str = "*";

/// Why launching is paused for an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// When launching resumes by itself; `None`: when a person resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    pub cause: PauseCause,
    /// What the agent said when it hit its limit (a limit's pause only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The task or subtask whose attempt hit the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<FullId>,
    pub since: Timestamp,
}

impl Pause {
    /// Returns whether it still holds at `now`.
    pub fn holds_at(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|u| u.0 > now)
    }

    /// Says why `agent` (a key of [`State::paused`]) is paused, for people:
    /// `usage limit of claude`, `paused by a person`.
    pub fn why(&self, agent: &str) -> String {
        match (self.cause, agent) {
            (PauseCause::Limit, agent) => format!("usage limit of {agent}"),
            (PauseCause::Person, ALL_AGENTS) => "every agent paused by a person".to_owned(),
            (PauseCause::Person, _) => "paused by a person".to_owned(),
        }
    }

    /// Says how long and why, in local time as seen at `now`:
    /// `paused until 17:00 (usage limit of claude)`.
    pub fn shown(&self, agent: &str, now: SystemTime) -> String {
        let until = match self.until {
            Some(at) => crate::when::local(at.0, now),
            None => "resumed".to_owned(),
        };
        format!("paused until {until} ({})", self.why(agent))
    }
}

/// What paused an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseCause {
    /// One of its attempts ended on a rate or usage limit.
    Limit,
    /// `orch pause`.
    Person,
}

/// A commit orch merged that the target no longer contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostHead {
    pub commit: String,
    /// The ref keeping it (`refs/orch/backup/@target/<target>/<n>`).
    pub backup: String,
}

/// Who ran (or runs) the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub pid: u32,
    pub started: Timestamp,
    /// Set when the coordinator ended on its own (not killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    /// The digest of the plan it ran last (a copy is in `plans/`); a plan
    /// saved and applied during the run replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// What the state records for one task or subtask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemState {
    pub status: Status,
    /// When it last became ready; priority aging counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<Timestamp>,
    /// A retrying item may not start again before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// Why it is in its status (failed, blocked, waiting), for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every agent run, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Attempts before this index do not count against `retry.max_attempts`
    /// (a person retried the item after them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub budget_start: u32,
    /// The task branch (tasks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The worktree the task last ran in (tasks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<PathBuf>,
    /// The target commit the branch was created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The summary the agent wrote in its result file, shown to dependents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The commit on target that holds the task's work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_commit: Option<String>,
    /// When the task entered the merge queue, and its branch tip then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<Queued>,
    /// What went wrong at the last merge (for the agent asked to fix it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_problem: Option<MergeProblem>,
    /// The target commit the task's work landed on (what a revert undoes
    /// the work back to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_onto: Option<String>,
    /// The reviews that approved the task's branch at `tip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Approvals>,
    /// A revert of the task's work: asked for, then landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<Revert>,
    /// What the conflict radar saw of the task's branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radar: Option<Radar>,
}

/// The reviews that approved a task, valid while its branch stays at `tip`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    pub tip: String,
    /// The names of the reviews (`[[policy.review]]`) that approved it.
    pub by: Vec<String>,
}

/// `orch revert` of a merged task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revert {
    pub requested: Timestamp,
    /// The revert commit, once it landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The paths an active task's branch changes (against where it left the
/// target), and the other active tasks that change some of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Radar {
    /// The branch tip the paths were read at.
    pub tip: String,
    /// Every path the branch changes, sorted (at most [`RADAR_PATHS`]).
    pub changes: Vec<String>,
    /// Other active tasks changing some of the same paths, with those paths.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overlaps: BTreeMap<FullId, Vec<String>>,
}

/// The most paths the radar keeps for one task.
pub const RADAR_PATHS: usize = 500;

/// A task's place in the merge queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub at: Timestamp,
    /// The branch tip when queued; if the branch moves, the task is queued again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip: Option<String>,
}

/// Why a merge did not land.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MergeProblem {
    /// Merging with the target conflicts in these files.
    Conflicts { files: Vec<String> },
    /// A check (or a policy rule) failed on the merged result.
    Check {
        name: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log: Option<PathBuf>,
    },
    /// A review rejected it: `by` is the review's name, or `person`.
    Review { by: String, reason: String },
}

impl ItemState {
    pub fn new(status: Status) -> ItemState {
        ItemState {
            status,
            ready_since: None,
            not_before: None,
            reason: None,
            attempts: Vec::new(),
            budget_start: 0,
            branch: None,
            worktree: None,
            base: None,
            summary: None,
            merge_commit: None,
            queued: None,
            merge_problem: None,
            merged_onto: None,
            review: None,
            revert: None,
            radar: None,
        }
    }

    /// Returns the number of attempts that count against `retry.max_attempts`.
    pub fn counted_attempts(&self) -> u32 {
        self.attempts
            .iter()
            .skip(self.budget_start as usize)
            .filter(|a| a.counts())
            .count() as u32
    }

    /// Returns the attempt still running, if any.
    pub fn open_attempt(&self) -> Option<&Attempt> {
        self.attempts.last().filter(|a| a.outcome.is_none())
    }

    pub fn open_attempt_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut().filter(|a| a.outcome.is_none())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One agent run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Numbered from 1; also the name of its run folder.
    pub number: u32,
    pub started: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
    /// `None` while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Why the attempt was made, when it is not the first plain run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    /// The cluster job that ran it, when an executor other than `local` did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<AttemptJob>,
    /// The agent ran under the sandbox (docs/run.md); left out when not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confined: bool,
    /// The agent that ran it: its preset's name, `default` for
    /// `agent.command`; left out by writers older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The agent's session: the one its output named, or the one it was
    /// asked to continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// It continued the session of an earlier attempt; left out when not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
    /// The tokens and cost its agent reported for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// It ended on a rate or usage limit, and its agent was paused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<Timestamp>,
}

/// Where a cluster executor ran an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptJob {
    /// The executor (`slurm`).
    pub executor: String,
    /// The job's id, as the cluster names it.
    pub id: String,
    /// The node it ran on, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Attempt {
    /// Returns a running attempt, as opened: nothing known yet but when.
    pub fn open(number: u32, started: Timestamp) -> Attempt {
        Attempt {
            number,
            started,
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
        }
    }

    /// Returns whether the attempt counts against `retry.max_attempts`.
    pub fn counts(&self) -> bool {
        !matches!(self.outcome, Some(Outcome::Interrupted { .. }))
    }
}

/// Tokens and cost, as an agent reported them; each left out when unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens read from the model's prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// In US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// Returns whether it says nothing.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    /// Adds `other`, figure by figure (a figure known on either side is known).
    pub fn add(&mut self, other: &Usage) {
        fn sum<T: std::ops::Add<Output = T> + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            }
        }
        self.input_tokens = sum(self.input_tokens, other.input_tokens);
        self.output_tokens = sum(self.output_tokens, other.output_tokens);
        self.cached_tokens = sum(self.cached_tokens, other.cached_tokens);
        self.cost_usd = sum(self.cost_usd, other.cost_usd);
    }

    /// Returns the sum of the usage of `attempts`, or `None` when none reported any.
    pub fn total<'a>(attempts: impl IntoIterator<Item = &'a Attempt>) -> Option<Usage> {
        let mut total: Option<Usage> = None;
        for usage in attempts.into_iter().filter_map(|a| a.usage.as_ref()) {
            total.get_or_insert_with(Usage::default).add(usage);
        }
        total
    }
}

impl fmt::Display for Usage {
    /// Writes `1.2k in, 340 out, 800 cached tokens, $0.0123` (what is known).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn count(n: u64) -> String {
            match n {
                0..1000 => n.to_string(),
                1000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
                _ => format!("{:.1}M", n as f64 / 1e6),
            }
        }
        let tokens: Vec<String> = [
            (self.input_tokens, "in"),
            (self.output_tokens, "out"),
            (self.cached_tokens, "cached"),
        ]
        .into_iter()
        .filter_map(|(n, what)| n.map(|n| format!("{} {what}", count(n))))
        .collect();
        let mut parts = Vec::new();
        if !tokens.is_empty() {
            parts.push(format!("{} tokens", tokens.join(", ")));
        }
        match self.cost_usd {
            Some(cost) if cost < 1.0 => parts.push(format!("${cost:.4}")),
            Some(cost) => parts.push(format!("${cost:.2}")),
            None => {}
        }
        f.write_str(&parts.join(", "))
    }
}

/// Why an attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Resolve merge conflicts with target.
    Conflict,
    /// Fix a check that failed on the merged result.
    CheckFailure,
    /// Address what a review found.
    Review,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The agent finished its work.
    Succeeded { commits: u32 },
    /// It failed; `retry` says whether another attempt may follow.
    Failed { reason: String, retry: bool },
    /// The coordinator stopped it (Ctrl-C, a crash); it does not count.
    Interrupted { reason: String },
    /// A person cancelled it.
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let t = |s: &str| Timestamp(humantime::parse_rfc3339(s).unwrap());
        let mut running = ItemState::new(Status::Running);
        running.branch = Some("orch/P1.M1.T2".to_owned());
        running.worktree = Some(PathBuf::from("/w/P1.M1.T2"));
        running.base = Some("1".repeat(40));
        running.budget_start = 1;
        running.attempts = vec![
            Attempt {
                number: 1,
                started: t("2026-01-01T00:00:00Z"),
                finished: Some(t("2026-01-01T00:01:00Z")),
                outcome: Some(Outcome::Failed {
                    reason: "exit code 1".to_owned(),
                    retry: true,
                }),
                purpose: None,
                job: None,
                confined: false,
                agent: None,
                session: None,
                resumed: false,
                usage: None,
                paused_until: None,
            },
            Attempt {
                number: 2,
                started: t("2026-01-01T00:02:00Z"),
                finished: Some(t("2026-01-01T00:02:30Z")),
                outcome: Some(Outcome::Interrupted {
                    reason: "stopped".to_owned(),
                }),
                purpose: Some(Purpose::Conflict),
                job: None,
                confined: false,
                agent: None,
                session: None,
                resumed: false,
                usage: None,
                paused_until: None,
            },
            Attempt {
                number: 3,
                started: t("2026-01-01T00:03:00Z"),
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
            },
        ];
        let mut merged = ItemState::new(Status::Merged);
        merged.merge_commit = Some("2".repeat(40));
        merged.summary = Some("added the schema".to_owned());
        merged.attempts.push(Attempt {
            number: 1,
            started: t("2026-01-01T00:00:00Z"),
            finished: Some(t("2026-01-01T00:00:10Z")),
            outcome: Some(Outcome::Succeeded { commits: 2 }),
            purpose: None,
            job: None,
            confined: false,
            agent: None,
            session: None,
            resumed: false,
            usage: None,
            paused_until: None,
        });
        let mut state = State {
            target: Some("main".to_owned()),
            run: Some(RunRecord {
                pid: 42,
                started: t("2026-01-01T00:00:00Z"),
                finished: None,
                plan: None,
            }),
            landed: Some("2".repeat(40)),
            ..State::default()
        };
        state
            .items
            .insert(FullId::parse("P1.M1.T1").unwrap(), merged);
        state
            .items
            .insert(FullId::parse("P1.M1.T2").unwrap(), running);
        state
    }

    /// Found by the `state` fuzz target: `0.0004Z` was kept to the
    /// microsecond but written to the millisecond, so a state read and
    /// written back was no longer the state read.
    #[test]
    fn timestamps_finer_than_a_millisecond_read_as_they_will_be_written() {
        let read: Timestamp = serde_json::from_str(r#""2025-01-01T12:00:00.0004Z""#).unwrap();
        assert_eq!(read.to_string(), "2025-01-01T12:00:00.000Z");
        let again: Timestamp =
            serde_json::from_str(&serde_json::to_string(&read).unwrap()).unwrap();
        assert_eq!(again, read);
        let now = Timestamp::now();
        assert_eq!(
            serde_json::from_str::<Timestamp>(&serde_json::to_string(&now).unwrap()).unwrap(),
            now
        );
    }

    #[test]
    fn schema_1_round_trips() {
        let state = sample();
        let text = serde_json::to_string_pretty(&state).unwrap();
        let back: State = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
        assert_eq!(
            back.items[&FullId::parse("P1.M1.T2").unwrap()].counted_attempts(),
            1
        );
        assert_eq!(
            back.items[&FullId::parse("P1.M1.T2").unwrap()]
                .open_attempt()
                .map(|a| a.number),
            Some(3)
        );
        insta::assert_snapshot!(text, @r#"
        {
          "schema": 1,
          "target": "main",
          "run": {
            "pid": 42,
            "started": "2026-01-01T00:00:00.000Z"
          },
          "landed": "2222222222222222222222222222222222222222",
          "items": {
            "P1.M1.T1": {
              "status": "merged",
              "attempts": [
                {
                  "number": 1,
                  "started": "2026-01-01T00:00:00.000Z",
                  "finished": "2026-01-01T00:00:10.000Z",
                  "outcome": {
                    "kind": "succeeded",
                    "commits": 2
                  }
                }
              ],
              "summary": "added the schema",
              "merge_commit": "2222222222222222222222222222222222222222"
            },
            "P1.M1.T2": {
              "status": "running",
              "attempts": [
                {
                  "number": 1,
                  "started": "2026-01-01T00:00:00.000Z",
                  "finished": "2026-01-01T00:01:00.000Z",
                  "outcome": {
                    "kind": "failed",
                    "reason": "exit code 1",
                    "retry": true
                  }
                },
                {
                  "number": 2,
                  "started": "2026-01-01T00:02:00.000Z",
                  "finished": "2026-01-01T00:02:30.000Z",
                  "outcome": {
                    "kind": "interrupted",
                    "reason": "stopped"
                  },
                  "purpose": "conflict"
                },
                {
                  "number": 3,
                  "started": "2026-01-01T00:03:00.000Z"
                }
              ],
              "budget_start": 1,
              "branch": "orch/P1.M1.T2",
              "worktree": "/w/P1.M1.T2",
              "base": "1111111111111111111111111111111111111111"
            }
          }
        }
        "#);
    }

    #[test]
    fn a_reader_ignores_fields_it_does_not_know() {
        let text =
            r#"{"schema": 1, "future": true, "items": {"T1": {"status": "pending", "later": 3}}}"#;
        let state: State = serde_json::from_str(text).unwrap();
        assert_eq!(state.items.len(), 1);
    }
}
