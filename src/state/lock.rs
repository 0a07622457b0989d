//! `.orchestrator/lock`: one live coordinator per repository.
//!
//! The coordinator holds an exclusive `flock` for its whole life and writes
//! its pid into the `lock` file. The kernel drops the lock when the process
//! dies however it dies, so a stale file never blocks a new run. Other
//! commands ask [`holder`] whether a run is live; the probe takes a shared
//! lock for an instant, so a coordinator that starts during a probe retries
//! briefly instead of reporting a phantom holder.
//!
//! What is locked is the state dir itself, not the `lock` file: a person who
//! deletes `lock` during a run (it looks like a stale lock file) would
//! otherwise let a second coordinator lock a new file at the same path while
//! the first still holds the deleted one, and both would merge. The folder
//! cannot be deleted while it holds the run's state without ending that run
//! (its next state write fails). The file only says who holds the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name inside the state dir.
pub const FILE_NAME: &str = "lock";

/// How long a starting coordinator retries when the holder is unknown.
const PROBE_WINDOW: Duration = Duration::from_secs(2);

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another `orch run` (pid {}) holds `{}`", pid.map_or("unknown".to_owned(), |p| p.to_string()), path.display())]
    Held { path: PathBuf, pid: Option<u32> },
    #[error("cannot lock `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The live coordinator's lock; dropping it releases the lock.
#[must_use = "the lock is released when this is dropped"]
#[derive(Debug)]
pub struct RunLock {
    /// The state dir, opened and locked.
    _dir: File,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Takes the coordinator lock in `dir`, or says who holds it.
pub fn acquire(dir: &Path) -> Result<RunLock, LockError> {
    let path = dir.join(FILE_NAME);
    let io_err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let folder = File::open(dir).map_err(io_err)?;
    let deadline = Instant::now() + PROBE_WINDOW;
    loop {
        match folder.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let pid = File::open(&path).ok().and_then(|mut f| read_pid(&mut f));
                if pid.is_some_and(crate::process::alive) || Instant::now() >= deadline {
                    return Err(LockError::Held { path, pid });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
    }
    let mut file = open(&path).map_err(io_err)?;
    file.set_len(0).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    writeln!(file, "{}", std::process::id()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(RunLock { _dir: folder })
}

/// Returns the pid of the live coordinator, if one holds the lock (0 when
/// its `lock` file is gone).
pub fn holder(dir: &Path) -> io::Result<Option<u32>> {
    let folder = match File::open(dir) {
        Ok(folder) => folder,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match folder.try_lock_shared() {
        Ok(()) => {
            folder.unlock()?;
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => {
            let pid = File::open(dir.join(FILE_NAME))
                .ok()
                .and_then(|mut f| read_pid(&mut f));
            Ok(Some(pid.unwrap_or(0)))
        }
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
        let lock = acquire(dir.path()).unwrap();
        assert_eq!(holder(dir.path()).unwrap(), Some(std::process::id()));
        match acquire(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(lock);
        assert_eq!(holder(dir.path()).unwrap(), None);
        let _again = acquire(dir.path()).unwrap();
    }

    #[test]
    fn deleting_the_lock_file_does_not_release_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _lock = acquire(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(holder(dir.path()).unwrap(), Some(0));
        assert!(matches!(
            acquire(dir.path()),
            Err(LockError::Held { pid: None, .. })
        ));
    }
}
