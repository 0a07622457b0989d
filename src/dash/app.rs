//! The dashboard's state and its one update function.
//!
//! `update(msg) -> commands`: keys, new state, new events and log text come
//! in as [`Msg`]s; what needs I/O goes out as [`Cmd`]s for the loop in
//! `dash/driver.rs` to carry out. Nothing here reads files, writes `state.json`
//! or touches git, so every behaviour is testable by feeding messages.
//!
//! Destructive actions (retry, cancel, resolve) ask for confirmation, then
//! become an inbox command; the dashboard never changes the state itself.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::dash::layout;
use crate::lifecycle::Status;
use crate::merge_queue::queue;
use crate::plan::{FullId, ItemIdx, Kind, Plan};
use crate::state::events::{Event, EventKind};
use crate::state::inbox::Action;
use crate::state::{self, State};

/// How many events the feed keeps.
const FEED: usize = 200;

/// How many commits the detail pane keeps per task.
const COMMITS: usize = 10;

/// What comes into the dashboard.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Resize(u16, u16),
    /// A new `state.json` was read.
    State(Box<State>),
    /// New lines of `events.jsonl`.
    Events(Vec<Event>),
    /// Whether a coordinator holds the lock (its pid).
    Live(Option<u32>),
    /// The tail of an agent log.
    Log {
        id: FullId,
        attempt: u32,
        lines: Vec<String>,
    },
    /// Time passed (elapsed times and the ETA move).
    Tick(SystemTime),
    /// The live run answered an inbox command, or a file could not be read.
    Note(String),
    /// `orch run --tui`: the run in this process ended; the line says how.
    RunEnded(String),
}

/// What the loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Quit,
    /// Quit the dashboard and stop the run it runs in (`orch run --tui`).
    StopRun,
    Send(Action, FullId),
    /// Reject a task waiting for review, with the reason the person typed.
    Reject(FullId, String),
    /// Read the log of this attempt (the latest when `None`).
    LoadLog(FullId, Option<u32>),
}

/// Which tasks the tree shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    Failed,
    Running,
    Waiting,
    Finished,
}

impl Filter {
    pub fn next(self) -> Filter {
        match self {
            Filter::All => Filter::Failed,
            Filter::Failed => Filter::Running,
            Filter::Running => Filter::Waiting,
            Filter::Waiting => Filter::Finished,
            Filter::Finished => Filter::All,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Failed => "failed",
            Filter::Running => "running",
            Filter::Waiting => "waiting",
            Filter::Finished => "finished",
        }
    }

    fn keeps(self, status: Status) -> bool {
        use Status as S;
        match self {
            Filter::All => true,
            Filter::Failed => matches!(status, S::Failed | S::Blocked | S::Conflicted),
            Filter::Running => matches!(status, S::Running | S::Retrying | S::Merging),
            Filter::Waiting => matches!(status, S::Pending | S::Ready | S::AwaitingMerge),
            Filter::Finished => matches!(status, S::Merged | S::Resolved | S::Done | S::Cancelled),
        }
    }
}

/// What the screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Main,
    Help,
    /// Typing a filter.
    Search(String),
    /// The selected task's log, full screen, scrolled this many lines from the end.
    Log {
        scroll: usize,
    },
    Confirm(Action, FullId),
    /// Typing why a task waiting for review is rejected (its agent gets it).
    Reason(FullId, String),
    /// Asks before a rejection with this reason is sent.
    ConfirmReject(FullId, String),
    /// `orch run --tui`: quit only the dashboard, or stop the run too?
    ConfirmQuit,
}

/// The log shown for the selected item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogView {
    pub id: Option<FullId>,
    pub attempt: u32,
    pub lines: Vec<String>,
}

/// Everything the dashboard knows.
#[derive(Debug, Clone)]
pub struct AppState {
    pub plan: Arc<Plan>,
    pub state: State,
    /// Every item's status, phases and milestones derived.
    pub statuses: Vec<Status>,
    /// Per item: tasks merged or resolved inside it, and tasks inside it.
    pub progress: Vec<(u32, u32)>,
    pub events: VecDeque<Event>,
    pub live: Option<u32>,
    pub now: SystemTime,
    pub size: (u16, u16),
    pub expanded: Vec<bool>,
    /// The items shown, in order.
    pub rows: Vec<ItemIdx>,
    pub selected: usize,
    pub offset: usize,
    pub search: String,
    pub filter: Filter,
    pub mode: Mode,
    pub log: LogView,
    /// A line of feedback at the bottom.
    pub message: Option<String>,
    /// `orch run --tui`: quitting asks whether to stop the run.
    pub in_run: bool,
    /// `orch run --tui`: how the run ended, once it has.
    pub run_ended: Option<String>,
    /// Whether to use colour (`NO_COLOR` unset).
    pub color: bool,
    /// When the last run started, for throughput.
    pub run_started: Option<SystemTime>,
    /// When that run ended (`run.finished`, or its record's `finished`).
    pub run_finished: Option<SystemTime>,
    /// The newest event's time: where throughput stops counting when the
    /// run was killed and never said it ended.
    pub last_event: Option<SystemTime>,
    /// Tasks finished (merged, or completed under `--no-merge`) since then.
    pub finished_in_run: u32,
    no_merge: bool,
    /// Newest commits seen per unit (hooks, auto-commits, completed attempts), newest first.
    pub commits: HashMap<FullId, Vec<(String, String)>>,
    /// Tasks per status, for the header.
    pub counts: Vec<(Status, usize)>,
    /// Tasks waiting to merge in queue order, and the one merging.
    pub queue: (Vec<FullId>, Option<FullId>),
    /// Until the person moves, the selection follows the task started last.
    pub follow: bool,
    /// The agent tasks that pick none run (to show when it is paused).
    pub default_agent: String,
}

impl AppState {
    pub fn new(plan: Arc<Plan>, state: State, now: SystemTime) -> AppState {
        let n = plan.items().len();
        let expanded = plan.items().iter().map(|i| i.kind.is_container()).collect();
        let mut app = AppState {
            plan,
            state,
            statuses: Vec::new(),
            progress: vec![(0, 0); n],
            events: VecDeque::new(),
            live: None,
            now,
            size: (80, 24),
            expanded,
            rows: Vec::new(),
            selected: 0,
            offset: 0,
            search: String::new(),
            filter: Filter::All,
            mode: Mode::Main,
            log: LogView::default(),
            message: None,
            in_run: false,
            run_ended: None,
            color: true,
            run_started: None,
            run_finished: None,
            last_event: None,
            finished_in_run: 0,
            no_merge: false,
            commits: HashMap::new(),
            counts: Vec::new(),
            queue: (Vec::new(), None),
            follow: true,
            default_agent: crate::config::presets::DEFAULT_PRESET.to_owned(),
        };
        app.recompute();
        // The loop loads the log of whatever is selected first.
        let _ = app.reload_log();
        app
    }

    /// Says why the item at `idx` cannot launch now, when it waits to and
    /// its agent is paused: `paused until 17:00 (usage limit of claude)`.
    pub fn paused_text(&self, idx: ItemIdx) -> Option<String> {
        if self.state.paused.is_empty()
            || !matches!(self.statuses[idx.index()], Status::Ready | Status::Retrying)
        {
            return None;
        }
        let item = self.plan.item(idx);
        let agent = item
            .agent()
            .or_else(|| item.parent.and_then(|p| self.plan.item(p).agent()))
            .unwrap_or(&self.default_agent);
        let (key, pause) = self.state.pause_of(agent, self.now)?;
        Some(pause.shown(key, self.now))
    }

    /// Returns the selected item.
    pub fn current(&self) -> Option<ItemIdx> {
        self.rows.get(self.selected).copied()
    }

    /// Returns the task or subtask the selection points at.
    fn selected_unit(&self) -> Option<FullId> {
        let idx = self.current()?;
        let item = self.plan.item(idx);
        matches!(item.kind, Kind::Task | Kind::Subtask).then(|| item.id.clone())
    }

    /// Handles one message; returns what the loop must do.
    pub fn update(&mut self, msg: Msg) -> Vec<Cmd> {
        match msg {
            Msg::Key(key) => self.key(key),
            Msg::Resize(w, h) => {
                self.size = (w, h);
                self.keep_visible();
                Vec::new()
            }
            Msg::State(state) => {
                self.state = *state;
                self.recompute();
                self.reload_log()
            }
            Msg::Events(events) => {
                let mut started = None;
                for e in events {
                    self.note_event(&e);
                    if matches!(e.kind, EventKind::TaskStarted { .. }) {
                        started = e.id.clone();
                    }
                    self.events.push_back(e);
                }
                while self.events.len() > FEED {
                    self.events.pop_front();
                }
                match started {
                    Some(id) if self.follow => self.follow_to(&id),
                    _ => Vec::new(),
                }
            }
            Msg::Live(pid) => {
                self.live = pid;
                Vec::new()
            }
            Msg::Log { id, attempt, lines } => {
                if self.log.id.as_ref() == Some(&id) || self.selected_unit().as_ref() == Some(&id) {
                    self.log = LogView {
                        id: Some(id),
                        attempt,
                        lines,
                    };
                }
                Vec::new()
            }
            Msg::Tick(now) => {
                self.now = now;
                Vec::new()
            }
            Msg::Note(text) => {
                self.message = Some(text);
                Vec::new()
            }
            Msg::RunEnded(how) => {
                self.run_ended = Some(how);
                self.live = None;
                Vec::new()
            }
        }
    }

    /// Keeps what the header and the detail pane need from one event.
    fn note_event(&mut self, e: &Event) {
        let unit = e.id.as_ref();
        let is_task = || {
            unit.and_then(|id| self.plan.lookup(id.as_str()))
                .is_some_and(|i| self.plan.item(i).kind == Kind::Task)
        };
        self.last_event = Some(e.ts.0);
        match &e.kind {
            EventKind::RunStarted { no_merge, .. } => {
                self.run_started = Some(e.ts.0);
                self.run_finished = None;
                self.finished_in_run = 0;
                self.no_merge = *no_merge;
            }
            EventKind::RunFinished { .. } => self.run_finished = Some(e.ts.0),
            EventKind::TaskMerged { .. } => self.finished_in_run += 1,
            EventKind::TaskCompleted { .. } if self.no_merge && is_task() => {
                self.finished_in_run += 1
            }
            _ => {}
        }
        let Some(unit) = unit else { return };
        let seen: Vec<(String, String)> = match &e.kind {
            EventKind::TaskCommit {
                commit, subject, ..
            } => {
                let mut short = commit.clone();
                short.truncate(crate::git::refs::SHORT_ID);
                vec![(short, subject.clone())]
            }
            EventKind::TaskCompleted { log, .. } => log.iter().rev().cloned().collect(),
            _ => return,
        };
        let list = self.commits.entry(unit.clone()).or_default();
        for (sha, subject) in seen {
            match list.iter().position(|(s, _)| *s == sha) {
                // An auto-commit has no subject in its event; git's is better.
                Some(i) => {
                    if list[i].1.is_empty() {
                        list[i].1 = subject;
                    }
                }
                None => list.insert(0, (sha, subject)),
            }
        }
        list.truncate(COMMITS);
    }

    /// Recomputes statuses, progress and the visible rows after a change.
    fn recompute(&mut self) {
        self.statuses = state::item_statuses(&self.plan, Some(&self.state));
        if self.run_started.is_none() {
            self.run_started = self.state.run.as_ref().map(|r| r.started.0);
            self.run_finished = self
                .state
                .run
                .as_ref()
                .and_then(|r| r.finished)
                .map(|t| t.0);
        }
        self.counts = self.count();
        self.queue = self.merge_queue();
        let items = self.plan.items();
        self.progress = vec![(0, 0); items.len()];
        for t in self.plan.tasks() {
            let done = u32::from(self.statuses[t.index()].satisfies());
            for a in std::iter::once(*t).chain(self.plan.ancestors(*t)) {
                let p = &mut self.progress[a.index()];
                p.0 += done;
                p.1 += 1;
            }
        }
        self.rebuild_rows();
    }

    /// Lists the items to show: expanded parents, matching the search and filter.
    fn rebuild_rows(&mut self) {
        let keep_id = self.current().map(|i| self.plan.item(i).id.clone());
        let items = self.plan.items();
        let search = self.search.to_lowercase();
        let mut matches = vec![self.search.is_empty() && self.filter == Filter::All; items.len()];
        if !matches[0] || items.is_empty() {
            for (i, item) in items.iter().enumerate().rev() {
                let hit = (search.is_empty()
                    || item.id.as_str().to_lowercase().contains(&search)
                    || item.title.to_lowercase().contains(&search))
                    && (item.kind.is_container() || self.filter.keeps(self.statuses[i]));
                let leaf_hit = hit && !item.kind.is_container();
                if leaf_hit || (hit && self.filter == Filter::All) {
                    matches[i] = true;
                }
                if matches[i]
                    && let Some(p) = item.parent
                {
                    matches[p.index()] = true;
                }
            }
        }
        let mut rows = Vec::new();
        let mut i = 0;
        while i < items.len() {
            if !matches[i] {
                i += 1;
                continue;
            }
            rows.push(ItemIdx(i as u32));
            let open = self.expanded[i] || !self.search.is_empty() || self.filter != Filter::All;
            i = if open && items[i].kind != Kind::Subtask {
                i + 1
            } else {
                items[i].subtree_end as usize
            };
        }
        self.rows = rows;
        self.selected = keep_id
            .and_then(|id| self.rows.iter().position(|r| self.plan.item(*r).id == id))
            .unwrap_or(self.selected.min(self.rows.len().saturating_sub(1)));
        self.keep_visible();
    }

    /// Returns how many tree rows fit on screen.
    pub fn tree_height(&self) -> usize {
        let (w, h) = self.size;
        layout::tree_rows(w, h)
    }

    fn keep_visible(&mut self) {
        let height = self.tree_height();
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
    }

    fn select(&mut self, to: usize) -> Vec<Cmd> {
        let to = to.min(self.rows.len().saturating_sub(1));
        if to == self.selected && self.log.id.is_some() {
            return Vec::new();
        }
        self.selected = to;
        self.keep_visible();
        self.reload_log()
    }

    /// Asks for the selected unit's log when the selection or its attempt changed.
    fn reload_log(&mut self) -> Vec<Cmd> {
        let Some(id) = self.selected_unit() else {
            self.log = LogView::default();
            return Vec::new();
        };
        if self.log.id.as_ref() != Some(&id) {
            self.log = LogView {
                id: Some(id.clone()),
                attempt: 0,
                lines: Vec::new(),
            };
        }
        vec![Cmd::LoadLog(id, None)]
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl_c {
            let stop = self.in_run && self.run_ended.is_none();
            return vec![if stop { Cmd::StopRun } else { Cmd::Quit }];
        }
        match self.mode.clone() {
            Mode::Help => {
                self.mode = Mode::Main;
                Vec::new()
            }
            Mode::Search(mut text) => {
                match key.code {
                    KeyCode::Enter => self.mode = Mode::Main,
                    KeyCode::Esc => {
                        self.mode = Mode::Main;
                        self.search.clear();
                        self.rebuild_rows();
                    }
                    KeyCode::Backspace => {
                        text.pop();
                        self.search = text.clone();
                        self.mode = Mode::Search(text);
                        self.rebuild_rows();
                    }
                    KeyCode::Char(c) => {
                        text.push(c);
                        self.search = text.clone();
                        self.mode = Mode::Search(text);
                        self.rebuild_rows();
                    }
                    _ => {}
                }
                self.reload_log()
            }
            Mode::Log { scroll } => {
                let page = self.tree_height();
                let most = self.log.lines.len();
                let scroll = match key.code {
                    KeyCode::Up | KeyCode::Char('k') => (scroll + 1).min(most),
                    KeyCode::Down | KeyCode::Char('j') => scroll.saturating_sub(1),
                    KeyCode::PageUp => (scroll + page).min(most),
                    KeyCode::PageDown => scroll.saturating_sub(page),
                    KeyCode::Char('g') | KeyCode::Home => most,
                    KeyCode::Char('G') | KeyCode::End => 0,
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('l') => {
                        self.mode = Mode::Main;
                        return Vec::new();
                    }
                    _ => scroll,
                };
                self.mode = Mode::Log { scroll };
                Vec::new()
            }
            Mode::Confirm(action, id) => {
                self.mode = Mode::Main;
                if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    self.message = Some(format!("{} `{id}`: sent", action.as_str()));
                    vec![Cmd::Send(action, id)]
                } else {
                    self.message = Some(format!("{} `{id}`: not sent", action.as_str()));
                    Vec::new()
                }
            }
            Mode::Reason(id, mut text) => {
                match key.code {
                    KeyCode::Enter if !text.trim().is_empty() => {
                        self.mode = Mode::ConfirmReject(id, text);
                    }
                    KeyCode::Esc => {
                        self.mode = Mode::Main;
                        self.message = Some(format!("reject `{id}`: not sent"));
                    }
                    KeyCode::Backspace => {
                        text.pop();
                        self.mode = Mode::Reason(id, text);
                    }
                    KeyCode::Char(c) => {
                        text.push(c);
                        self.mode = Mode::Reason(id, text);
                    }
                    _ => {}
                }
                Vec::new()
            }
            Mode::ConfirmReject(id, reason) => {
                self.mode = Mode::Main;
                if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    self.message = Some(format!("reject `{id}`: sent"));
                    vec![Cmd::Reject(id, reason)]
                } else {
                    self.message = Some(format!("reject `{id}`: not sent"));
                    Vec::new()
                }
            }
            Mode::ConfirmQuit => {
                self.mode = Mode::Main;
                match key.code {
                    KeyCode::Char('q') | KeyCode::Char('y') | KeyCode::Enter => vec![Cmd::Quit],
                    KeyCode::Char('s') => vec![Cmd::StopRun],
                    _ => Vec::new(),
                }
            }
            Mode::Main => self.main_key(key),
        }
    }

    /// Selects the row of `id` (following the run), if it is shown.
    fn follow_to(&mut self, id: &FullId) -> Vec<Cmd> {
        match self.rows.iter().position(|r| self.plan.item(*r).id == *id) {
            Some(pos) => self.select(pos),
            None => Vec::new(),
        }
    }

    fn main_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        self.message = None;
        if !matches!(key.code, KeyCode::Char('?' | 'h')) {
            self.follow = false;
        }
        let page = self.tree_height();
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => {
                if self.in_run && self.run_ended.is_none() {
                    self.mode = Mode::ConfirmQuit;
                    Vec::new()
                } else {
                    vec![Cmd::Quit]
                }
            }
            KeyCode::Up | KeyCode::Char('k') => self.select(self.selected.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.select(self.selected + 1),
            KeyCode::PageUp => self.select(self.selected.saturating_sub(page)),
            KeyCode::PageDown => self.select(self.selected + page),
            KeyCode::Home | KeyCode::Char('g') => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.select(self.rows.len().saturating_sub(1)),
            KeyCode::Enter | KeyCode::Char(' ') => {
                if let Some(idx) = self.current() {
                    let i = idx.index();
                    if !self.plan.item(idx).children.is_empty() {
                        self.expanded[i] = !self.expanded[i];
                        self.rebuild_rows();
                    }
                }
                Vec::new()
            }
            KeyCode::Right => {
                if let Some(idx) = self.current() {
                    self.expanded[idx.index()] = true;
                    self.rebuild_rows();
                }
                Vec::new()
            }
            KeyCode::Left => {
                if let Some(idx) = self.current() {
                    if self.expanded[idx.index()] && !self.plan.item(idx).children.is_empty() {
                        self.expanded[idx.index()] = false;
                        self.rebuild_rows();
                    } else if let Some(parent) = self.plan.item(idx).parent
                        && let Some(pos) = self.rows.iter().position(|r| *r == parent)
                    {
                        return self.select(pos);
                    }
                }
                Vec::new()
            }
            KeyCode::Char('/') => {
                self.mode = Mode::Search(self.search.clone());
                Vec::new()
            }
            KeyCode::Char('f') => {
                self.filter = self.filter.next();
                self.message = Some(format!("showing {} tasks", self.filter.name()));
                self.rebuild_rows();
                self.reload_log()
            }
            KeyCode::Char('l') => {
                if self.selected_unit().is_some() {
                    self.mode = Mode::Log { scroll: 0 };
                }
                Vec::new()
            }
            KeyCode::Char('?') | KeyCode::Char('h') => {
                self.mode = Mode::Help;
                Vec::new()
            }
            KeyCode::Char(c @ ('r' | 'c' | 'x' | 'a' | 'n' | 'v')) => {
                let action = match c {
                    'r' => Action::Retry,
                    'c' => Action::Cancel,
                    'a' => Action::Approve,
                    'n' => Action::Reject,
                    'v' => Action::Revert,
                    _ => Action::Resolve,
                };
                match self.selected_unit() {
                    _ if self.live.is_none() => {
                        self.message = Some(format!(
                            "no run is live, so this view is read-only; `orch {}` works without one",
                            action.as_str()
                        ));
                    }
                    Some(id) if action == Action::Reject => {
                        self.mode = Mode::Reason(id, String::new());
                    }
                    Some(id) => self.mode = Mode::Confirm(action, id),
                    None => self.message = Some(format!("select a task to {}", action.as_str())),
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Returns the tasks waiting to merge, in the order the coordinator
    /// merges them, and the one merging.
    fn merge_queue(&self) -> (Vec<FullId>, Option<FullId>) {
        let merging = self
            .plan
            .tasks()
            .iter()
            .find(|t| self.statuses[t.index()] == Status::Merging)
            .map(|t| self.plan.item(*t).id.clone());
        (queue::order(&self.plan, &self.state), merging)
    }

    /// Returns the number of tasks in each status.
    fn count(&self) -> Vec<(Status, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for t in self.plan.tasks() {
            *counts.entry(self.statuses[t.index()]).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ratatui::crossterm::event::{KeyEvent, KeyModifiers};

    use super::*;
    use crate::plan::Rules;
    use crate::state::ItemState;

    fn plan() -> Arc<Plan> {
        let text = r#"
[[phase]]
id = "P1"
[[phase.milestone]]
id = "M1"
[[phase.milestone.task]]
id = "T1"
title = "Schema"
[[phase.milestone.task.subtask]]
id = "S1"
[[phase.milestone.task]]
id = "T2"
title = "Model"
[[phase.milestone.task]]
id = "T3"
title = "Importer"
"#;
        Arc::new(
            crate::plan::from_bytes(Path::new("plan.toml"), text.as_bytes(), &Rules::default())
                .unwrap(),
        )
    }

    fn key(c: char) -> Msg {
        Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
    }

    fn code(code: KeyCode) -> Msg {
        Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ids(app: &AppState) -> Vec<&str> {
        app.rows
            .iter()
            .map(|r| app.plan.item(*r).id.as_str())
            .collect()
    }

    fn with(app: &mut AppState, id: &str, status: Status) {
        let mut state = app.state.clone();
        state
            .items
            .insert(FullId::parse(id).unwrap(), ItemState::new(status));
        app.update(Msg::State(Box::new(state)));
    }

    #[test]
    fn containers_start_open_and_tasks_closed() {
        let app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        assert_eq!(
            ids(&app),
            ["P1", "P1.M1", "P1.M1.T1", "P1.M1.T2", "P1.M1.T3"]
        );
    }

    #[test]
    fn moving_and_expanding() {
        let mut app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        app.update(key('j'));
        app.update(key('j'));
        let cmds = app.update(key('j'));
        assert_eq!(
            cmds,
            [Cmd::LoadLog(FullId::parse("P1.M1.T2").unwrap(), None)]
        );
        app.update(code(KeyCode::Up));
        app.update(code(KeyCode::Enter));
        assert_eq!(
            ids(&app),
            [
                "P1",
                "P1.M1",
                "P1.M1.T1",
                "P1.M1.T1.S1",
                "P1.M1.T2",
                "P1.M1.T3"
            ]
        );
        app.update(code(KeyCode::Left));
        assert_eq!(ids(&app).len(), 5);
        app.update(code(KeyCode::Left));
        assert_eq!(
            app.current()
                .map(|i| app.plan.item(i).id.to_string())
                .as_deref(),
            Some("P1.M1")
        );
        app.update(key('G'));
        assert_eq!(app.selected, 4);
    }

    #[test]
    fn search_and_status_filters() {
        let mut app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        with(&mut app, "P1.M1.T2", Status::Failed);
        app.update(key('/'));
        for c in "impo".chars() {
            app.update(key(c));
        }
        assert_eq!(ids(&app), ["P1", "P1.M1", "P1.M1.T3"]);
        app.update(code(KeyCode::Esc));
        assert_eq!(ids(&app).len(), 5);
        app.update(key('f'));
        assert_eq!(app.filter, Filter::Failed);
        assert_eq!(ids(&app), ["P1", "P1.M1", "P1.M1.T2"]);
        assert_eq!(app.message.as_deref(), Some("showing failed tasks"));
    }

    #[test]
    fn destructive_actions_ask_first_then_go_to_the_inbox() {
        let mut app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        app.update(Msg::Live(Some(42)));
        app.update(key('j'));
        app.update(key('c'));
        assert_eq!(app.message.as_deref(), Some("select a task to cancel"));
        assert_eq!(app.mode, Mode::Main);
        app.update(key('j'));
        assert!(app.update(key('c')).is_empty());
        let t1 = FullId::parse("P1.M1.T1").unwrap();
        assert_eq!(app.mode, Mode::Confirm(Action::Cancel, t1.clone()));
        assert!(app.update(key('n')).is_empty(), "anything but y says no");
        app.update(key('c'));
        assert_eq!(
            app.update(key('y')),
            [Cmd::Send(Action::Cancel, t1.clone())]
        );
        app.update(key('r'));
        assert_eq!(app.update(key('y')), [Cmd::Send(Action::Retry, t1.clone())]);
        app.update(key('x'));
        assert_eq!(app.update(key('y')), [Cmd::Send(Action::Resolve, t1)]);
    }

    #[test]
    fn issue_14_reviews_and_reverts_ask_first_and_a_rejection_asks_why() {
        let mut app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        app.update(Msg::Live(Some(42)));
        app.update(key('j'));
        app.update(key('j'));
        let t1 = FullId::parse("P1.M1.T1").unwrap();
        app.update(key('a'));
        assert_eq!(app.mode, Mode::Confirm(Action::Approve, t1.clone()));
        assert_eq!(
            app.update(key('y')),
            [Cmd::Send(Action::Approve, t1.clone())]
        );
        app.update(key('v'));
        assert_eq!(
            app.update(key('y')),
            [Cmd::Send(Action::Revert, t1.clone())]
        );
        app.update(key('n'));
        assert_eq!(app.mode, Mode::Reason(t1.clone(), String::new()));
        app.update(code(KeyCode::Enter));
        assert_eq!(
            app.mode,
            Mode::Reason(t1.clone(), String::new()),
            "no reason, nothing to confirm"
        );
        for c in "add a test".chars() {
            assert!(app.update(key(c)).is_empty(), "typing sends nothing");
        }
        app.update(code(KeyCode::Enter));
        assert_eq!(
            app.mode,
            Mode::ConfirmReject(t1.clone(), "add a test".to_owned())
        );
        assert_eq!(
            app.update(key('y')),
            [Cmd::Reject(t1.clone(), "add a test".to_owned())]
        );
        app.update(key('n'));
        app.update(key('x'));
        app.update(code(KeyCode::Esc));
        assert_eq!(app.mode, Mode::Main);
        assert_eq!(app.message.as_deref(), Some("reject `P1.M1.T1`: not sent"));
    }

    #[test]
    fn without_a_live_run_the_view_is_read_only() {
        let mut app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        app.update(key('G'));
        assert!(app.update(key('c')).is_empty());
        assert_eq!(app.mode, Mode::Main);
        assert!(app.message.as_deref().unwrap().contains("read-only"));
    }

    #[test]
    fn quitting_a_run_dashboard_asks_whether_to_stop_the_run() {
        let mut app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        assert_eq!(app.update(key('q')), [Cmd::Quit]);
        app.in_run = true;
        assert!(app.update(key('q')).is_empty());
        assert_eq!(app.mode, Mode::ConfirmQuit);
        assert_eq!(app.update(key('s')), [Cmd::StopRun]);
        app.update(key('q'));
        assert_eq!(app.update(key('q')), [Cmd::Quit]);
        let ctrl_c = Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert_eq!(app.update(ctrl_c.clone()), [Cmd::StopRun]);
        app.update(Msg::RunEnded("Finished in 3s".to_owned()));
        assert_eq!(app.update(key('q')), [Cmd::Quit], "nothing left to stop");
        assert_eq!(app.update(ctrl_c), [Cmd::Quit]);
    }

    #[test]
    fn the_log_view_scrolls_within_bounds() {
        let mut app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        app.update(key('j'));
        app.update(key('j'));
        let id = FullId::parse("P1.M1.T1").unwrap();
        let lines = (0..50).map(|i| format!("line {i}")).collect();
        app.update(Msg::Log {
            id,
            attempt: 1,
            lines,
        });
        app.update(key('l'));
        assert_eq!(app.mode, Mode::Log { scroll: 0 });
        app.update(key('k'));
        app.update(key('k'));
        assert_eq!(app.mode, Mode::Log { scroll: 2 });
        app.update(key('g'));
        assert_eq!(app.mode, Mode::Log { scroll: 50 });
        app.update(key('G'));
        assert_eq!(app.mode, Mode::Log { scroll: 0 });
        app.update(code(KeyCode::Esc));
        assert_eq!(app.mode, Mode::Main);
    }

    #[test]
    fn progress_counts_merged_tasks_per_container() {
        let mut app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        with(&mut app, "P1.M1.T1", Status::Merged);
        with(&mut app, "P1.M1.T3", Status::Resolved);
        assert_eq!(app.progress[0], (2, 3));
        assert_eq!(app.statuses[0], Status::Running);
    }

    #[test]
    fn the_selection_follows_the_run_until_the_person_moves() {
        let mut app = AppState::new(plan(), State::default(), SystemTime::UNIX_EPOCH);
        let started = |id: &str| {
            Msg::Events(vec![Event {
                seq: 1,
                ts: crate::state::Timestamp(SystemTime::UNIX_EPOCH),
                id: Some(FullId::parse(id).unwrap()),
                kind: EventKind::TaskStarted {
                    attempt: 1,
                    title: String::new(),
                    purpose: None,
                    confined: false,
                },
            }])
        };
        let cmds = app.update(started("P1.M1.T2"));
        assert_eq!(
            cmds,
            [Cmd::LoadLog(FullId::parse("P1.M1.T2").unwrap(), None)]
        );
        assert_eq!(app.selected, 3);
        app.update(key('k'));
        assert!(app.update(started("P1.M1.T3")).is_empty());
        assert_eq!(app.selected, 2, "the person's choice stays");
    }

    #[test]
    fn the_queue_shown_is_the_order_the_coordinator_merges_in() {
        let mut state = State::default();
        for (id, status, secs) in [
            ("P1.M1.T1", Status::AwaitingMerge, 7),
            ("P1.M1.T2", Status::Merging, 1),
            ("P1.M1.T3", Status::AwaitingMerge, 5),
        ] {
            let mut s = ItemState::new(status);
            s.queued = Some(crate::state::model::Queued {
                at: crate::state::Timestamp(
                    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                ),
                tip: None,
            });
            state.items.insert(FullId::parse(id).unwrap(), s);
        }
        let app = AppState::new(plan(), state, SystemTime::UNIX_EPOCH);
        let (waiting, merging) = &app.queue;
        let waiting: Vec<&str> = waiting.iter().map(FullId::as_str).collect();
        assert_eq!(waiting, ["P1.M1.T3", "P1.M1.T1"]);
        assert_eq!(merging.as_ref().map(FullId::as_str), Some("P1.M1.T2"));
        assert_eq!(
            queue::next(&app.plan, &app.state).as_ref(),
            app.queue.0.first(),
            "the head of the queue shown is what merges next"
        );
    }
}
