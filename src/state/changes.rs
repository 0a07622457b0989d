//! `changes.jsonl`: what changed in the state since `state.json` was last
//! written whole, one line per batch of changes, appended.
//!
//! `state.json` is a snapshot: it records, as `changes`, the `seq` of the
//! last line it includes. The state is the snapshot with the lines after
//! that `seq` applied in order ([`crate::state::store::load`]). A line
//! holds each item that changed, whole (`null`: removed from the state),
//! and the top-level fields (every field but `schema` and `items`) when any
//! of them changed, so that applying a line never needs the one
//! before. Writing a line costs what changed, whatever the plan's size.
//!
//! Invariants:
//! - `seq` increases by one from line to line, and across snapshots: a
//!   snapshot's `changes` is at least every `seq` in the file it follows,
//!   so lines a crash left behind a newer snapshot are skipped, never
//!   applied twice.
//! - A snapshot is written (temp, fsync, rename) before the file is
//!   replaced by an empty one; a reader that raced a snapshot sees
//!   `state.json` change under it and reads again.
//! - A snapshot without `changes` (written by an `orch` older than this
//!   file) has no lines after it: the file is ignored.
//!
//! The coordinator's [`Writer`] owns the file during a run; without a run,
//! whoever saves the state ([`crate::state::store::save`]) writes a snapshot
//! and empties the file. docs/state.md says what is durable when.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::FullId;
use crate::state::model::{Candidate, ItemState, LostHead, Pause, RunRecord, State};

/// The file's name inside the state dir.
pub const FILE_NAME: &str = "changes.jsonl";

/// Returns the changes file that goes with the state file at `state_file`.
pub fn path_for(state_file: &Path) -> PathBuf {
    state_file.with_file_name(FILE_NAME)
}

/// One line: a batch of changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub seq: u64,
    /// Each item that changed, whole; `None` when it left the state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub items: BTreeMap<FullId, Option<ItemState>>,
    /// The top-level fields, when any of them changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<Top>,
}

/// The state's fields other than its schema and items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Top {
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<LostHead>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paused: BTreeMap<String, Pause>,
}

impl Top {
    pub fn of(state: &State) -> Top {
        // Every field named: a field added to `State` must be added here
        // (or to the items) before this compiles.
        let State {
            schema: _,
            target,
            run,
            landed,
            lost,
            candidates,
            items: _,
            paused,
        } = state;
        Top {
            target: target.clone(),
            run: run.clone(),
            landed: landed.clone(),
            lost: lost.clone(),
            candidates: candidates.clone(),
            paused: paused.clone(),
        }
    }

    /// Returns whether `state`'s top-level fields are these (every field
    /// compared, through [`Top::of`]).
    fn matches(&self, state: &State) -> bool {
        *self == Top::of(state)
    }

    /// Sets `state`'s top-level fields to these.
    fn apply(self, state: &mut State) {
        let Top {
            target,
            run,
            landed,
            lost,
            candidates,
            paused,
        } = self;
        state.target = target;
        state.run = run;
        state.landed = landed;
        state.lost = lost;
        state.candidates = candidates;
        state.paused = paused;
    }
}

impl Change {
    /// Applies the line to `state`.
    pub fn apply(self, state: &mut State) {
        for (id, item) in self.items {
            match item {
                Some(item) => state.items.insert(id, item),
                None => state.items.remove(&id),
            };
        }
        if let Some(top) = self.top {
            top.apply(state);
        }
    }
}

/// What reading the file after a snapshot found.
#[derive(Debug, PartialEq)]
pub enum Replay {
    /// The lines after the snapshot, applied; the last `seq` applied (the
    /// snapshot's when none was).
    Applied { last: u64 },
    /// The first line after the snapshot is not the next `seq`: the file
    /// belongs to a newer snapshot than the one read.
    Gap { expected: u64, found: u64 },
}

/// Applies to `state` (the snapshot, which includes `seq` `after`) the lines
/// of `bytes` that follow it. A last line without its newline (a write cut
/// short) and lines that do not parse are skipped.
pub fn replay(bytes: &[u8], after: u64, state: &mut State) -> Replay {
    let mut last = after;
    for line in complete_lines(bytes).split(|b| *b == b'\n') {
        let Ok(change) = serde_json::from_slice::<Change>(line) else {
            continue;
        };
        if change.seq <= last {
            continue;
        }
        if change.seq != last + 1 {
            return Replay::Gap {
                expected: last + 1,
                found: change.seq,
            };
        }
        last = change.seq;
        change.apply(state);
    }
    Replay::Applied { last }
}

/// Returns `bytes` up to its last newline: its complete lines. A last
/// line without its newline was cut short, even when it parses.
fn complete_lines(bytes: &[u8]) -> &[u8] {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    &bytes[..complete]
}

/// Returns the largest `seq` of the complete lines of `bytes` (0 when none).
pub fn last_seq(bytes: &[u8]) -> u64 {
    complete_lines(bytes)
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<SeqOnly>(line).ok())
        .map(|s| s.seq)
        .max()
        .unwrap_or(0)
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Items whose change the coordinator's core saw: only these are compared
/// at each batch; `all` asks for every item (a person's command, a plan
/// change, the run's start).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Touched {
    pub ids: std::collections::BTreeSet<FullId>,
    pub all: bool,
}

/// A snapshot is due every [`crate::coordinator`] flush while it is at
/// most this large (so a small state is fresh in `state.json` alone), and
/// beyond that once the lines since it add up to its own size.
pub const SMALL_SNAPSHOT: u64 = 64 * 1024;

/// The coordinator's writer of the state: lines at each batch, a snapshot
/// when due.
#[derive(Debug)]
pub struct Writer {
    state_file: PathBuf,
    changes_file: PathBuf,
    file: Option<File>,
    /// The state as recorded: the last snapshot with every line since.
    recorded: State,
    /// The last `seq` recorded.
    seq: u64,
    /// Bytes of lines since the last snapshot.
    since_snapshot: u64,
    /// The size of the last snapshot (0 before the first).
    snapshot_bytes: u64,
    /// Lines were written since the last fsync.
    unsynced: bool,
    /// The file may end in a line cut short that could not be cut off
    /// (a full disk): the next line starts on a line of its own, after a
    /// byte that keeps the torn one from ever parsing.
    torn: bool,
    /// `state.json` exists and records `changes`: readers apply the lines
    /// that follow it. Until then lines would be ignored, so a snapshot
    /// comes first.
    follows: bool,
}

impl Writer {
    /// Returns the writer of the state at `state_file`, whose content on
    /// disk is `recorded` up to `seq`. Its lines go on after any line the
    /// file holds (lines a crash left without a snapshot before them
    /// included), so that none of those can ever follow its snapshots. A
    /// last line cut short is cut off: no reader ever applied it, and the
    /// next line must not complete it.
    pub fn new(state_file: &Path, recorded: State, seq: u64) -> Writer {
        let changes_file = path_for(state_file);
        let bytes = std::fs::read(&changes_file).unwrap_or_default();
        let complete = complete_lines(&bytes).len();
        let torn = complete < bytes.len()
            && OpenOptions::new()
                .write(true)
                .open(&changes_file)
                .and_then(|file| file.set_len(complete as u64))
                .is_err();
        let follows = std::fs::read(state_file)
            .ok()
            .and_then(|bytes| crate::state::store::snapshot_seq(&bytes))
            .is_some();
        Writer {
            torn,
            follows,
            state_file: state_file.to_owned(),
            changes_file,
            file: None,
            recorded,
            seq: seq.max(last_seq(&bytes)),
            since_snapshot: 0,
            snapshot_bytes: 0,
            unsynced: false,
        }
    }

    /// Returns whether `state` differs from what was recorded.
    pub fn differs(&self, state: &State) -> bool {
        !Top::of(state).matches(&self.recorded) || state.items != self.recorded.items
    }

    /// Appends the changes of the `touched` items (and of the top-level
    /// fields) to the file, without an fsync; returns the bytes written (0
    /// when nothing changed).
    pub fn record(&mut self, state: &State, touched: &Touched) -> io::Result<u64> {
        let mut items = BTreeMap::new();
        let mut note = |id: &FullId, now: Option<&ItemState>, was: Option<&ItemState>| {
            if now != was {
                items.insert(id.clone(), now.cloned());
            }
        };
        if touched.all {
            for (id, now) in &state.items {
                note(id, Some(now), self.recorded.items.get(id));
            }
            for (id, was) in &self.recorded.items {
                if !state.items.contains_key(id) {
                    note(id, None, Some(was));
                }
            }
        } else {
            for id in &touched.ids {
                note(id, state.items.get(id), self.recorded.items.get(id));
            }
        }
        let top = Some(Top::of(state)).filter(|top| !top.matches(&self.recorded));
        if items.is_empty() && top.is_none() {
            return Ok(0);
        }
        let change = Change {
            seq: self.seq + 1,
            items,
            top,
        };
        let mut line = Vec::new();
        if self.torn {
            line.extend_from_slice(b"~\n");
        }
        serde_json::to_writer(&mut line, &change).map_err(io::Error::other)?;
        line.push(b'\n');
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.changes_file)?,
            ),
        };
        // A write cut short is cut off; if that fails too, the next line
        // starts afresh.
        let before = file.metadata()?.len();
        if let Err(e) = file.write_all(&line) {
            self.torn = file.set_len(before).is_err();
            return Err(e);
        }
        self.torn = false;
        self.seq = change.seq;
        change.apply(&mut self.recorded);
        self.since_snapshot += line.len() as u64;
        self.unsynced = true;
        Ok(line.len() as u64)
    }

    /// Makes the lines written so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if let (true, Some(file)) = (self.unsynced, &self.file) {
            file.sync_data()?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Returns whether the lines since the last snapshot call for one.
    pub fn snapshot_due(&self) -> bool {
        self.since_snapshot > 0
            && (self.snapshot_bytes <= SMALL_SNAPSHOT || self.since_snapshot >= self.snapshot_bytes)
    }

    /// Returns whether the next change must go to a snapshot: `state.json`
    /// does not exist yet or was written by an `orch` older than this file.
    pub fn needs_snapshot(&self) -> bool {
        !self.follows
    }

    /// Writes `state` whole as the snapshot (including every line so far)
    /// and empties the file; returns the snapshot's bytes.
    pub fn snapshot(&mut self, state: &State) -> Result<u64, crate::state::StateError> {
        // The file is replaced, or may have been even when the snapshot
        // fails: the next line opens it afresh, never an unlinked one.
        self.file = None;
        let bytes = crate::state::store::save_snapshot(&self.state_file, state, self.seq)?;
        self.torn = false;
        self.follows = true;
        self.recorded = state.clone();
        self.since_snapshot = 0;
        self.snapshot_bytes = bytes;
        self.unsynced = false;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Status;

    /// What a batch that changed item `s` alone touched.
    fn touched(s: &str) -> Touched {
        Touched {
            ids: [id(s)].into(),
            all: false,
        }
    }

    fn id(s: &str) -> FullId {
        FullId::parse(s).unwrap()
    }

    #[test]
    fn a_line_holds_what_changed_and_replays_onto_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let mut state = State::default();
        state.items.insert(id("A"), ItemState::new(Status::Ready));
        state.items.insert(id("B"), ItemState::new(Status::Pending));
        let mut w = Writer::new(&file, State::default(), 0);
        w.snapshot(&state).unwrap();
        let snapshot = std::fs::read(&file).unwrap();

        state.items.get_mut(&id("A")).unwrap().status = Status::Running;
        state.landed = Some("abc".into());
        let touched = touched("A");
        assert!(w.record(&state, &touched).unwrap() > 0);
        assert_eq!(w.record(&state, &touched).unwrap(), 0, "nothing new");
        state.items.remove(&id("B"));
        w.record(
            &state,
            &Touched {
                ids: Default::default(),
                all: true,
            },
        )
        .unwrap();
        let text = std::fs::read_to_string(path_for(&file)).unwrap();
        insta::assert_snapshot!(text, @r#"
        {"seq":1,"items":{"A":{"status":"running"}},"top":{"target":null,"landed":"abc"}}
        {"seq":2,"items":{"B":null}}
        "#);
        assert_eq!(
            crate::state::store::load(&file).unwrap(),
            Some(state.clone())
        );

        // The snapshot alone is older; a torn last line is skipped.
        let mut replayed: State = serde_json::from_slice(&snapshot).unwrap();
        let mut bytes = text.clone().into_bytes();
        bytes.extend_from_slice(br#"{"seq":3,"items":{"A":nu"#);
        assert_eq!(
            replay(&bytes, 0, &mut replayed),
            Replay::Applied { last: 2 }
        );
        assert_eq!(replayed, state);
        // Lines the snapshot includes are skipped; a gap is reported.
        let mut other = State::default();
        assert_eq!(
            replay(text.as_bytes(), 2, &mut other),
            Replay::Applied { last: 2 }
        );
        assert_eq!(other, State::default());
        assert_eq!(
            replay(text.as_bytes(), 5, &mut other),
            Replay::Applied { last: 5 }
        );
        let skipped = text.lines().nth(1).unwrap().to_owned() + "\n";
        assert_eq!(
            replay(skipped.as_bytes(), 0, &mut other),
            Replay::Gap {
                expected: 1,
                found: 2
            }
        );
        assert_eq!(last_seq(text.as_bytes()), 2);
    }

    #[test]
    fn a_snapshot_empties_the_file_and_counts_on() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let mut state = State::default();
        let mut w = Writer::new(&file, State::default(), 7);
        state.items.insert(id("A"), ItemState::new(Status::Ready));
        w.record(&state, &touched("A")).unwrap();
        assert!(w.snapshot_due(), "a small snapshot is due at each flush");
        w.snapshot(&state).unwrap();
        assert_eq!(std::fs::read(path_for(&file)).unwrap(), b"");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(json["changes"], 8);
        assert!(!w.snapshot_due());
        state.items.get_mut(&id("A")).unwrap().status = Status::Running;
        w.record(&state, &touched("A")).unwrap();
        let text = std::fs::read_to_string(path_for(&file)).unwrap();
        assert!(text.starts_with(r#"{"seq":9,"#), "{text}");
        assert_eq!(crate::state::store::load(&file).unwrap(), Some(state));
    }

    #[test]
    fn lines_left_without_a_snapshot_never_follow_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        std::fs::write(
            path_for(&file),
            "{\"seq\":1,\"items\":{\"A\":null}}\n{\"seq\":2,\"items\":{\"B\":{\"status\":\"merged\"}}}\n",
        )
        .unwrap();
        let mut w = Writer::new(&file, State::default(), 0);
        let mut state = State::default();
        state.items.insert(id("A"), ItemState::new(Status::Ready));
        w.record(&state, &touched("A")).unwrap();
        let text = std::fs::read_to_string(path_for(&file)).unwrap();
        assert!(
            text.ends_with("{\"seq\":3,\"items\":{\"A\":{\"status\":\"ready\"}}}\n"),
            "{text}"
        );
        // A crash after the snapshot, before the file was emptied.
        let kept = std::fs::read(path_for(&file)).unwrap();
        w.snapshot(&state).unwrap();
        std::fs::write(path_for(&file), kept).unwrap();
        assert_eq!(crate::state::store::load(&file).unwrap(), Some(state));
    }

    #[test]
    fn a_line_cut_short_is_skipped_and_the_next_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let mut state = State::default();
        let mut w = Writer::new(&file, State::default(), 0);
        w.snapshot(&state).unwrap();
        std::fs::write(
            path_for(&file),
            "{\"seq\":1,\"items\":{\"A\":{\"status\":\"ready\"}}}\n{\"seq\":2,\"items\":{\"A\":{\"sta",
        )
        .unwrap();
        state.items.insert(id("A"), ItemState::new(Status::Ready));
        assert_eq!(
            crate::state::store::load(&file).unwrap(),
            Some(state.clone())
        );
        let mut w = Writer::new(&file, state.clone(), 1);
        state.items.get_mut(&id("A")).unwrap().status = Status::Running;
        w.record(&state, &touched("A")).unwrap();
        assert_eq!(crate::state::store::load(&file).unwrap(), Some(state));
    }

    #[test]
    fn a_torn_line_that_is_whole_json_is_never_completed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        crate::state::store::save_snapshot(&file, &State::default(), 0).unwrap();
        // The second line lacks its newline: the coordinator never held it.
        std::fs::write(
            path_for(&file),
            "{\"seq\":1,\"items\":{\"A\":{\"status\":\"ready\"}}}\n{\"seq\":2,\"items\":{\"B\":{\"status\":\"merged\"}}}",
        )
        .unwrap();
        assert_eq!(last_seq(&std::fs::read(path_for(&file)).unwrap()), 1);
        let (mut state, seq) = crate::state::store::load_with_seq(&file).unwrap().unwrap();
        assert_eq!(seq, 1);
        let mut w = Writer::new(&file, state.clone(), seq);
        state.items.get_mut(&id("A")).unwrap().status = Status::Running;
        w.record(&state, &touched("A")).unwrap();
        assert_eq!(crate::state::store::load(&file).unwrap(), Some(state));
        let text = std::fs::read_to_string(path_for(&file)).unwrap();
        assert!(!text.contains("merged"), "{text}");
    }

    #[test]
    fn after_a_failed_snapshot_lines_go_to_the_file_readers_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let changes = path_for(&file);
        let mut state = State::default();
        let mut w = Writer::new(&file, State::default(), 0);
        w.snapshot(&state).unwrap();
        state.items.insert(id("A"), ItemState::new(Status::Ready));
        w.record(&state, &touched("A")).unwrap();
        // The snapshot replaces `state.json`, then fails to empty the file
        // (here: a folder in its place); the file the writer had open is
        // no longer the one readers read.
        std::fs::rename(&changes, dir.path().join("moved.jsonl")).unwrap();
        std::fs::create_dir_all(changes.join("x")).unwrap();
        state.items.get_mut(&id("A")).unwrap().status = Status::Running;
        assert!(w.snapshot(&state).is_err());
        std::fs::remove_dir_all(&changes).unwrap();
        state.items.insert(id("B"), ItemState::new(Status::Ready));
        w.record(&state, &touched("B")).unwrap();
        assert_eq!(crate::state::store::load(&file).unwrap(), Some(state));
    }

    #[test]
    fn top_sees_a_changed_top_level_field() {
        let state = State::default();
        let top = Top::of(&state);
        assert!(top.matches(&state));
        let mut landed = state.clone();
        landed.landed = Some("abc".into());
        assert!(!top.matches(&landed));
        let mut target = state.clone();
        target.target = Some("other".into());
        assert!(!top.matches(&target));
    }

    #[test]
    fn a_snapshot_without_changes_ignores_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        std::fs::write(
            &file,
            r#"{"schema": 1, "items": {"A": {"status": "merged"}}}"#,
        )
        .unwrap();
        std::fs::write(
            path_for(&file),
            "{\"seq\":1,\"items\":{\"A\":{\"status\":\"running\"}}}\n",
        )
        .unwrap();
        let state = crate::state::store::load(&file).unwrap().unwrap();
        assert_eq!(state.items[&id("A")].status, Status::Merged);
    }
}
