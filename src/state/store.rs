//! Reading and crash-safe writing of `state.json`.
//!
//! A write goes to a temp file in the same folder, is fsynced, renamed over
//! the old file, and the folder is fsynced (DESIGN §2.3), so a reader sees
//! the old state or the new one, never a mix, whenever the writer dies.
//! A symlinked `state.json` is written through to its target and the file
//! mode is kept. A state whose `schema` is newer than this build's is read
//! but never written.
//!
//! `state.json` is a snapshot; the changes since it are in
//! `changes.jsonl` ([`crate::state::changes`]). [`load`] reads both, and
//! [`save`] writes a snapshot that includes every change and empties the
//! changes file.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::state::changes;

use crate::plan::diag::Location;
use crate::state::model::{SCHEMA, State};

/// The state file's name inside the state dir.
pub const FILE_NAME: &str = "state.json";

/// A state file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse `{}` at {location}: {message}", path.display())]
    Parse {
        path: PathBuf,
        location: Location,
        message: String,
    },
    #[error("`{}` has schema {found}, newer than the {SCHEMA} this `orch` knows; refusing to write it", path.display())]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("`{}` does not follow `state.json`: its next change is {found}, not {expected}", path.display())]
    ChangesGap {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateError {
    /// Returns the file the error is about: `state.json` or `changes.jsonl`.
    pub fn path(&self) -> &Path {
        match self {
            StateError::Read { path, .. }
            | StateError::Parse { path, .. }
            | StateError::NewerSchema { path, .. }
            | StateError::ChangesGap { path, .. }
            | StateError::Write { path, .. } => path,
        }
    }

    /// Returns the error naming its file as `show` shows it (a path
    /// relative to the user); the file stays the one the error is about.
    pub fn shown_by(mut self, show: impl FnOnce(&Path) -> PathBuf) -> StateError {
        let shown = show(self.path());
        match &mut self {
            StateError::Read { path, .. }
            | StateError::Parse { path, .. }
            | StateError::NewerSchema { path, .. }
            | StateError::ChangesGap { path, .. }
            | StateError::Write { path, .. } => *path = shown,
        }
        self
    }
}

/// How many times a reader that raced a snapshot reads again.
const RACED_SNAPSHOT_TRIES: usize = 20;

/// Reads the state: the snapshot in `path` with the changes since it
/// applied; `Ok(None)` if there is no snapshot.
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    load_with_seq(path).map(|loaded| loaded.map(|(state, _)| state))
}

/// Reads the state as [`load`] does, and the `seq` of the last change it
/// includes (0 when none).
pub fn load_with_seq(path: &Path) -> Result<Option<(State, u64)>, StateError> {
    let read_err = |source| StateError::Read {
        path: path.to_owned(),
        source,
    };
    let mut tries = 0;
    loop {
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(read_err(source)),
        };
        let ino = file.metadata().map_err(read_err)?.ino();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(read_err)?;
        let mut state = parse(path, &bytes)?;
        let Some(after) = snapshot_seq(&bytes) else {
            return Ok(Some((state, 0)));
        };
        let changes = match fs::read(changes::path_for(path)) {
            Ok(changes) => changes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(StateError::Read {
                    path: changes::path_for(path),
                    source,
                });
            }
        };
        let replay = changes::replay(&changes, after, &mut state);
        // A snapshot written meanwhile replaced the changes file: what was
        // read may miss the lines between the two snapshots.
        let raced = fs::metadata(path).map_or(true, |m| m.ino() != ino);
        tries += 1;
        match replay {
            changes::Replay::Applied { last } if !raced => return Ok(Some((state, last))),
            _ if raced && tries < RACED_SNAPSHOT_TRIES => continue,
            changes::Replay::Applied { last } => return Ok(Some((state, last))),
            changes::Replay::Gap { expected, found } => {
                return Err(StateError::ChangesGap {
                    path: changes::path_for(path),
                    expected,
                    found,
                });
            }
        }
    }
}

/// Returns the `changes` a snapshot records, if it records one.
pub(crate) fn snapshot_seq(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seq {
        changes: Option<u64>,
    }
    serde_json::from_slice::<Seq>(bytes).ok()?.changes
}

/// Parses state bytes; `path` names them in messages.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<State, StateError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        StateError::Parse {
            path: path.to_owned(),
            location: Location {
                line: e.line() as u32,
                column: e.column().max(1) as u32,
            },
            message: message.strip_suffix(&suffix).unwrap_or(&message).to_owned(),
        }
    })
}

/// Writes the whole state atomically as a snapshot that includes every
/// change recorded so far, and empties the changes file; returns how many
/// bytes it wrote.
pub fn save(path: &Path, state: &State) -> Result<u64, StateError> {
    let read = |p: &Path| match fs::read(p) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(StateError::Read {
            path: p.to_owned(),
            source,
        }),
    };
    let seq = snapshot_seq(&read(path)?)
        .unwrap_or(0)
        .max(changes::last_seq(&read(&changes::path_for(path))?));
    save_snapshot(path, state, seq)
}

/// Writes `state` whole as the snapshot that includes the changes up to
/// `seq`, then empties the changes file; returns the snapshot's bytes.
pub fn save_snapshot(path: &Path, state: &State, seq: u64) -> Result<u64, StateError> {
    if state.schema > SCHEMA {
        return Err(StateError::NewerSchema {
            path: path.to_owned(),
            found: state.schema,
        });
    }
    #[derive(serde::Serialize)]
    struct Snapshot<'a> {
        #[serde(flatten)]
        state: &'a State,
        changes: u64,
    }
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| StateError::Write { path, source }
    };
    let mut bytes = serde_json::to_vec_pretty(&Snapshot {
        state,
        changes: seq,
    })
    .map_err(|e| write_err(path)(e.into()))?;
    bytes.push(b'\n');
    crate::fsio::write_atomically(path, &bytes).map_err(write_err(path))?;
    let changes = changes::path_for(path);
    // Written even when missing, so that a new file's name is made durable
    // (the folder fsynced) before lines go to it.
    if !fs::metadata(&changes).is_ok_and(|m| m.len() == 0) {
        crate::fsio::write_atomically(&changes, b"").map_err(write_err(&changes))?;
    }
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Status;
    use crate::plan::FullId;
    use crate::state::model::ItemState;

    #[test]
    fn round_trips_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(load(&path).unwrap(), None);
        let mut state = State::default();
        state.items.insert(
            FullId::parse("T1").unwrap(),
            ItemState::new(Status::Running),
        );
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state.clone()));
        state.schema = SCHEMA + 1;
        assert!(matches!(
            save(&path, &state),
            Err(StateError::NewerSchema { .. })
        ));
        assert_eq!(load(&path).unwrap().unwrap().schema, SCHEMA);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [changes::FILE_NAME, FILE_NAME],
            "no temp file is left"
        );
    }

    #[test]
    fn changes_that_do_not_follow_the_snapshot_cannot_be_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::write(&path, r#"{"schema": 1, "changes": 2}"#).unwrap();
        fs::write(
            changes::path_for(&path),
            "{\"seq\":2}\n{\"seq\":5,\"items\":{\"T1\":null}}\n",
        )
        .unwrap();
        assert!(
            matches!(
                load(&path),
                Err(StateError::ChangesGap {
                    expected: 3,
                    found: 5,
                    ..
                })
            ),
            "{:?}",
            load(&path)
        );
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let err = parse(
            Path::new("state.json"),
            b"{\n  \"schema\": 1,\n  \"items\": [\n",
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                StateError::Parse {
                    location: Location { line: 3, .. },
                    ..
                }
            ),
            "{err}"
        );
    }
}
