//! Installing, removing and listing orch's git hook shims (DESIGN §8).
//!
//! The shims go into the hooks folder git really uses, as git itself
//! reports it (`git rev-parse --git-path hooks`: `core.hooksPath` when set,
//! else the common dir's `hooks/`, which every worktree shares). A hook
//! already there is renamed to `<hook>.orch-chained` and run by the shim
//! first; uninstalling renames it back. Nothing is ever deleted that orch
//! did not write, and a step that fails puts back what it moved.
//!
//! A `core.hooksPath` inside the repository's working tree (`.githooks`,
//! husky's `.husky`) holds the team's hooks, usually tracked: writing there
//! would change the user's checkout (and stall orch's own merges on that
//! change), and the shims would be committed by whoever commits next.
//! `install` refuses such a folder and says what to do; `orch run` goes on
//! without the hooks, saying why, and `orch doctor` reports it. (Installing
//! per worktree through `extensions.worktreeConfig` was the alternative;
//! it changes the repository's config format for every git that reads it,
//! which is a larger step than a missing trailer warrants.)

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::git::cmd::{self, CommandError};

/// The hooks orch installs.
pub const HOOKS: [&str; 3] = ["commit-msg", "pre-commit", "post-commit"];

/// The shim, with `@HOOK@` and `@ORCH@` to fill in.
const SHIM: &str = include_str!("../../hooks/shim.sh");

/// The line that marks a file as orch's shim.
const MARK: &str = "# orch-shim: ";

/// What a hook that was there before is renamed to.
const CHAINED: &str = ".orch-chained";

/// A hook operation that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot find the hooks folder of `{}`", repo.display())]
    Locate {
        repo: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("cannot change `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `core.hooksPath` points inside the repository's working tree.
    #[error(
        "`core.hooksPath` is `{hooks_path}`, a folder inside the repository (`{}`); orch never writes there: the hooks in it are the team's (often tracked), and orch's shims would change your checkout",
        dir.display()
    )]
    InsideRepository { dir: PathBuf, hooks_path: String },
    /// Both a foreign hook and a chained one exist: something replaced the
    /// shim after it was installed. Guessing which to keep could lose one.
    #[error(
        "`{}` is not orch's shim, and `{}` holds the hook orch chained earlier; move one of them away, then install again",
        hook.display(),
        chained.display()
    )]
    Tangled { hook: PathBuf, chained: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> HookError + '_ {
    move |source| HookError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where the hooks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub dir: PathBuf,
    /// `core.hooksPath`, when set.
    pub hooks_path: Option<String>,
    /// The folder is inside the repository's working tree.
    pub inside_repository: bool,
}

/// What is in place of one hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// orch's shim; `chained` when it runs a hook that was there before.
    Shim {
        chained: bool,
    },
    /// Somebody else's hook.
    Other,
    Absent,
}

/// One hook and what is in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookState {
    pub name: &'static str,
    pub path: PathBuf,
    pub installed: Installed,
}

/// What installing or uninstalling did to one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The shim was written; the hook that was there is now chained.
    Installed { chained: bool },
    /// The shim was there and was refreshed.
    Updated { chained: bool },
    /// The shim was removed; the chained hook is back in its place.
    Removed { restored: bool },
    /// Not orch's hook: left as it is.
    LeftAlone,
    /// Nothing to remove.
    Absent,
}

/// Finds the hooks folder git uses for the repository at `root`.
pub fn locate(root: &Path) -> Result<Location, HookError> {
    let locate_err = |source| HookError::Locate {
        repo: root.to_owned(),
        source,
    };
    let dir = cmd::stdout(
        root,
        ["rev-parse", "--path-format=absolute", "--git-path", "hooks"],
    )
    .map_err(locate_err)?;
    let hooks_path = cmd::stdout(root, ["config", "--get", "core.hooksPath"])
        .ok()
        .filter(|s| !s.is_empty());
    let dir = PathBuf::from(dir);
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    let inside_repository = hooks_path.is_some() && {
        let git_dir = cmd::stdout(
            root,
            ["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )
        .map(PathBuf::from)
        .map_err(locate_err)?;
        let dir = canonical(&dir);
        dir.starts_with(canonical(root)) && !dir.starts_with(canonical(&git_dir))
    };
    Ok(Location {
        dir,
        hooks_path,
        inside_repository,
    })
}

fn chained_path(hook: &Path) -> PathBuf {
    let mut name = hook.as_os_str().to_owned();
    name.push(CHAINED);
    PathBuf::from(name)
}

fn is_shim(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|text| text.lines().nth(1).is_some_and(|l| l.starts_with(MARK)))
}

/// Lists what is in place of each of orch's hooks.
pub fn status(location: &Location) -> Vec<HookState> {
    HOOKS
        .iter()
        .map(|name| {
            let path = location.dir.join(name);
            let installed = if is_shim(&path) {
                Installed::Shim {
                    chained: chained_path(&path).symlink_metadata().is_ok(),
                }
            } else if path.symlink_metadata().is_ok() {
                Installed::Other
            } else {
                Installed::Absent
            };
            HookState {
                name,
                path,
                installed,
            }
        })
        .collect()
}

/// Returns whether every shim is in place.
pub fn all_installed(location: &Location) -> bool {
    status(location)
        .iter()
        .all(|h| matches!(h.installed, Installed::Shim { .. }))
}

/// Returns the shim for `hook`, calling the `orch` at `orch_exe`.
fn shim(hook: &str, orch_exe: &Path) -> String {
    let quoted = format!(
        "'{}'",
        orch_exe.display().to_string().replace('\'', r"'\''")
    );
    SHIM.replace("@HOOK@", hook).replace("@ORCH@", &quoted)
}

/// Writes `text` to `path` as an executable file, replacing it atomically.
fn write_executable(path: &Path, text: &str) -> Result<(), HookError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(path))?;
    tmp.write_all(text.as_bytes()).map_err(io_err(path))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| HookError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    Ok(())
}

/// Installs the shims, chaining any hook already there.
pub fn install(
    location: &Location,
    orch_exe: &Path,
) -> Result<Vec<(&'static str, Change)>, HookError> {
    if location.inside_repository {
        return Err(HookError::InsideRepository {
            dir: location.dir.clone(),
            hooks_path: location.hooks_path.clone().unwrap_or_default(),
        });
    }
    std::fs::create_dir_all(&location.dir).map_err(io_err(&location.dir))?;
    let states = status(location);
    for state in &states {
        let chained = chained_path(&state.path);
        if state.installed == Installed::Other && chained.symlink_metadata().is_ok() {
            return Err(HookError::Tangled {
                hook: state.path.clone(),
                chained,
            });
        }
    }
    let mut done = Vec::new();
    for state in states {
        let path = &state.path;
        let chained = chained_path(path);
        let text = shim(state.name, orch_exe);
        let change = match state.installed {
            Installed::Shim { chained } => {
                write_executable(path, &text)?;
                Change::Updated { chained }
            }
            Installed::Absent => {
                write_executable(path, &text)?;
                Change::Installed {
                    chained: chained.symlink_metadata().is_ok(),
                }
            }
            Installed::Other => {
                std::fs::rename(path, &chained).map_err(io_err(path))?;
                if let Err(e) = write_executable(path, &text) {
                    let _ = std::fs::rename(&chained, path);
                    return Err(e);
                }
                Change::Installed { chained: true }
            }
        };
        done.push((state.name, change));
    }
    Ok(done)
}

/// Removes the shims and puts chained hooks back.
pub fn uninstall(location: &Location) -> Result<Vec<(&'static str, Change)>, HookError> {
    let mut done = Vec::new();
    for state in status(location) {
        let path = &state.path;
        let change = match state.installed {
            Installed::Shim { chained: true } => {
                std::fs::rename(chained_path(path), path).map_err(io_err(path))?;
                Change::Removed { restored: true }
            }
            Installed::Shim { chained: false } => {
                std::fs::remove_file(path).map_err(io_err(path))?;
                Change::Removed { restored: false }
            }
            Installed::Other => Change::LeftAlone,
            Installed::Absent => Change::Absent,
        };
        done.push((state.name, change));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(dir: &Path) -> Location {
        Location {
            dir: dir.to_owned(),
            hooks_path: None,
            inside_repository: false,
        }
    }

    #[test]
    fn install_chains_and_uninstall_restores_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let loc = location(dir.path());
        let old = "#!/bin/sh\necho mine\n";
        std::fs::write(dir.path().join("pre-commit"), old).unwrap();
        let done = install(&loc, Path::new("/opt/o'rch")).unwrap();
        assert_eq!(
            done,
            [
                ("commit-msg", Change::Installed { chained: false }),
                ("pre-commit", Change::Installed { chained: true }),
                ("post-commit", Change::Installed { chained: false }),
            ]
        );
        let text = std::fs::read_to_string(dir.path().join("pre-commit")).unwrap();
        assert!(text.contains("orch='/opt/o'\\''rch'"), "{text}");
        assert!(
            text.contains("exec \"$orch\" __hook pre-commit \"$@\""),
            "{text}"
        );
        assert!(all_installed(&loc));
        let again = install(&loc, Path::new("/opt/orch")).unwrap();
        assert_eq!(again[1], ("pre-commit", Change::Updated { chained: true }));
        let done = uninstall(&loc).unwrap();
        assert_eq!(done[1], ("pre-commit", Change::Removed { restored: true }));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("pre-commit")).unwrap(),
            old
        );
        assert!(!dir.path().join("commit-msg").exists());
        assert!(!dir.path().join("pre-commit.orch-chained").exists());
    }

    #[test]
    fn a_hooks_folder_inside_the_repository_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location {
            hooks_path: Some(".githooks".to_owned()),
            inside_repository: true,
            ..location(&dir.path().join(".githooks"))
        };
        let err = install(&loc, Path::new("/opt/orch")).unwrap_err();
        assert!(
            matches!(&err, HookError::InsideRepository { hooks_path, .. } if hooks_path == ".githooks"),
            "{err:?}"
        );
        assert!(!dir.path().join(".githooks").exists(), "nothing made");
    }

    #[test]
    fn a_replaced_shim_with_a_chained_hook_is_refused_without_changes() {
        let dir = tempfile::tempdir().unwrap();
        let loc = location(dir.path());
        std::fs::write(dir.path().join("post-commit"), "#!/bin/sh\nnew\n").unwrap();
        std::fs::write(
            dir.path().join("post-commit.orch-chained"),
            "#!/bin/sh\nold\n",
        )
        .unwrap();
        match install(&loc, Path::new("/opt/orch")) {
            Err(HookError::Tangled { .. }) => {}
            other => panic!("expected Tangled, got {other:?}"),
        }
        assert!(
            !dir.path().join("commit-msg").exists(),
            "nothing was installed"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("post-commit")).unwrap(),
            "#!/bin/sh\nnew\n"
        );
        assert_eq!(
            uninstall(&loc).unwrap()[2],
            ("post-commit", Change::LeftAlone)
        );
    }
}
