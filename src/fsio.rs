//! Crash-safe file writes and small JSON files: the one place that knows how
//! a file is replaced so that a reader sees the old bytes or the new ones,
//! never a mix, whenever the writer dies.
//!
//! A leaf: it imports nothing from the crate, so every layer may use it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Replaces `path` with `bytes`: temp file, fsync, rename, fsync of the folder.
///
/// A symlinked `path` is written through to its target and an existing
/// file's mode is kept (DESIGN §2.3; worktrunk, jj).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = match fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(e),
    };
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    // A new file gets the usual mode (0666 less the umask), not tempfile's 0600.
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(&dir)?;
    if let Ok(meta) = fs::metadata(&target) {
        temp.as_file().set_permissions(meta.permissions())?;
    }
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(&target).map_err(|e| e.error)?;
    fs::File::open(&dir)?.sync_all()
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomically(path, &bytes)
}

/// Reads a JSON file; `Ok(None)` if it does not exist. A file that does not
/// parse is `InvalidData`, naming the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file; one already gone is fine.
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_through_symlinks_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.json");
        let link = dir.path().join("link.json");
        fs::write(&real, b"{}").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_json(&link, &serde_json::json!({"a": 1})).unwrap();
        let back: Option<serde_json::Value> = read_json(&real).unwrap();
        assert_eq!(back, Some(serde_json::json!({"a": 1})));
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
        let missing: Option<serde_json::Value> = read_json(&dir.path().join("none")).unwrap();
        assert_eq!(missing, None);
        fs::write(&real, b"{").unwrap();
        let err = read_json::<serde_json::Value>(&real).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("real.json"), "{err}");
    }
}
