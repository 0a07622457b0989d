//! Finding the repository and reading its basic facts.

use std::path::{Path, PathBuf};

use git2::{ErrorCode, Repository};

/// A git operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("`{}` is not inside a git repository", path.display())]
    NotARepository { path: PathBuf },
    #[error("`{}` is a bare repository; orch needs a working tree", path.display())]
    Bare { path: PathBuf },
    #[error("git failed on `{}`", path.display())]
    Git {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error(transparent)]
    Command(#[from] crate::git::cmd::CommandError),
    #[error("branch `{branch}` does not exist")]
    NoSuchBranch { branch: String },
    #[error("branch `{branch}` already exists at {oid}")]
    BranchExists { branch: String, oid: String },
    #[error("`{}` already exists and is not a worktree of this repository", path.display())]
    PathTaken { path: PathBuf },
    #[error("branch `{branch}` is checked out in `{}`, the repository's own checkout; orch never works there", path.display())]
    CheckedOutInMain { branch: String, path: PathBuf },
}

impl GitError {
    /// Returns a converter from a libgit2 error about `path`.
    pub fn git(path: &Path) -> impl FnOnce(git2::Error) -> GitError + '_ {
        move |source| GitError::Git {
            path: path.to_owned(),
            source,
        }
    }
}

/// Where a repository's parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPaths {
    /// The main worktree's root: where `.orchestrator/` and the plan live.
    pub root: PathBuf,
    /// The git dir shared by all worktrees (`.git` of the main worktree).
    pub common_dir: PathBuf,
}

impl RepoPaths {
    /// Finds the repository containing `start`, resolving linked worktrees to the main one.
    pub fn discover(start: &Path) -> Result<RepoPaths, GitError> {
        let repo = Repository::discover(start).map_err(|e| match e.code() {
            ErrorCode::NotFound => GitError::NotARepository {
                path: start.to_owned(),
            },
            _ => GitError::git(start)(e),
        })?;
        if repo.is_bare() {
            return Err(GitError::Bare {
                path: repo.path().to_owned(),
            });
        }
        let common_dir = repo.commondir().to_owned();
        let root = if repo.is_worktree() {
            let main = Repository::open(&common_dir).map_err(GitError::git(&common_dir))?;
            main.workdir()
                .map(Path::to_owned)
                .ok_or_else(|| GitError::Bare {
                    path: common_dir.clone(),
                })?
        } else {
            repo.workdir()
                .map(Path::to_owned)
                .ok_or_else(|| GitError::Bare {
                    path: common_dir.clone(),
                })?
        };
        Ok(RepoPaths {
            root: strip_trailing_slash(root),
            common_dir: strip_trailing_slash(common_dir),
        })
    }

    /// Returns the branch checked out in the main worktree; `None` when HEAD is detached.
    pub fn current_branch(&self) -> Result<Option<String>, GitError> {
        let repo = Repository::open(&self.root).map_err(GitError::git(&self.root))?;
        let head = repo
            .find_reference("HEAD")
            .map_err(GitError::git(&self.root))?;
        let target = head.symbolic_target().map_err(GitError::git(&self.root))?;
        Ok(target
            .and_then(|t| t.strip_prefix("refs/heads/"))
            .map(str::to_owned))
    }

    /// Returns the repository's own ignore file, `info/exclude` in the common dir.
    pub fn exclude_file(&self) -> PathBuf {
        self.common_dir.join("info").join("exclude")
    }

    /// Adds `<dir>/` to `info/exclude` unless a line already excludes it;
    /// returns whether it was added.
    pub fn exclude(&self, dir: &str) -> std::io::Result<bool> {
        use std::io::Write;
        let path = self.exclude_file();
        let current = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let wanted = [
            format!("{dir}/"),
            format!("/{dir}/"),
            dir.to_owned(),
            format!("/{dir}"),
        ];
        if current
            .lines()
            .any(|l| wanted.iter().any(|w| l.trim() == w))
        {
            return Ok(false);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        if !current.is_empty() && !current.ends_with('\n') {
            file.write_all(b"\n")?;
        }
        writeln!(file, "{dir}/")?;
        Ok(true)
    }
}

impl RepoPaths {
    /// Adds each of `patterns` that `info/exclude` lacks, as a line of its
    /// own; returns those added.
    pub fn exclude_patterns(&self, patterns: &[String]) -> std::io::Result<Vec<String>> {
        use std::io::Write;
        let path = self.exclude_file();
        let current = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let missing: Vec<String> = patterns
            .iter()
            .filter(|p| !current.lines().any(|l| l.trim() == p.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(missing);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        if !current.is_empty() && !current.ends_with('\n') {
            file.write_all(b"\n")?;
        }
        for pattern in &missing {
            writeln!(file, "{pattern}")?;
        }
        Ok(missing)
    }
}

fn strip_trailing_slash(path: PathBuf) -> PathBuf {
    path.components().collect()
}
