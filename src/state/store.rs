//! Reading and crash-safe writing of `state.json`.
//!
//! A write goes to a temp file in the same folder, is fsynced, renamed over
//! the old file, and the folder is fsynced (DESIGN §2.3), so a reader sees
//! the old state or the new one, never a mix, whenever the writer dies.
//! A symlinked `state.json` is written through to its target and the file
//! mode is kept. A state whose `schema` is newer than this build's is read
//! but never written.

use std::fs;
use std::path::{Path, PathBuf};

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
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateError {
    /// Returns the error naming the file as `shown` (a path relative to the user).
    pub fn shown_as(mut self, shown: &Path) -> StateError {
        match &mut self {
            StateError::Read { path, .. }
            | StateError::Parse { path, .. }
            | StateError::NewerSchema { path, .. }
            | StateError::Write { path, .. } => *path = shown.to_owned(),
        }
        self
    }
}

/// Reads the state file; `Ok(None)` if there is none.
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse(path, &bytes).map(Some)
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

/// Writes the whole state atomically; returns how many bytes it wrote.
pub fn save(path: &Path, state: &State) -> Result<u64, StateError> {
    if state.schema > SCHEMA {
        return Err(StateError::NewerSchema {
            path: path.to_owned(),
            found: state.schema,
        });
    }
    let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Write {
        path: path.to_owned(),
        source: e.into(),
    })?;
    bytes.push(b'\n');
    crate::fsio::write_atomically(path, &bytes).map_err(|source| StateError::Write {
        path: path.to_owned(),
        source,
    })?;
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
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temp file is left behind");
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
