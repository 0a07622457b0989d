//! Path and size rules over a task's diff (DESIGN §5 step 2). Pure.
//!
//! Rules, each optional:
//! - `forbidden_paths`: globs no task may change (`.github/**`);
//! - `max_changed_files`, `max_changed_lines`: how big one task may be;
//! - `require_trailer`: every commit of the task carries `Orch-Task: <id>`
//!   (the commit-msg hook adds it; a commit made around the hook does not).
//!
//! Every refusal names the rule and the file or number at fault.

pub use crate::config::BadGlob;
use crate::config::{ForbiddenPaths, PolicyConfig};
use crate::git::merge::{CommitInfo, FileChange};

/// A policy with its globs compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    forbidden: ForbiddenPaths,
    max_changed_files: Option<u32>,
    max_changed_lines: Option<u32>,
    require_trailer: bool,
}

/// A rule a merge breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "policy `{}`: {}", self.rule, self.detail)
    }
}

impl Policy {
    /// Compiles the config's policy.
    pub fn new(config: &PolicyConfig) -> Result<Policy, BadGlob> {
        Ok(Policy {
            forbidden: config.forbidden()?,
            max_changed_files: config.max_changed_files,
            max_changed_lines: config.max_changed_lines,
            require_trailer: config.require_trailer,
        })
    }

    /// Returns whether the rules need line counts of the diff.
    pub fn needs_lines(&self) -> bool {
        self.max_changed_lines.is_some()
    }

    /// Returns whether the rules look at the task's commits.
    pub fn needs_commits(&self) -> bool {
        self.require_trailer
    }

    /// Returns the `forbidden_paths` pattern `path` matches, if any.
    pub fn forbidden_rule(&self, path: &str) -> Option<&str> {
        self.forbidden.matching(path)
    }

    /// Returns every rule the diff and commits break.
    pub fn evaluate(
        &self,
        task: &str,
        changes: &[FileChange],
        commits: &[CommitInfo],
    ) -> Vec<Refusal> {
        let mut out = Vec::new();
        for change in changes {
            if let Some(pattern) = self.forbidden_rule(&change.path) {
                out.push(Refusal {
                    rule: "forbidden_paths",
                    detail: format!("`{}` matches `{pattern}`", change.path),
                });
            }
        }
        if let Some(max) = self.max_changed_files
            && changes.len() > max as usize
        {
            out.push(Refusal {
                rule: "max_changed_files",
                detail: format!("{} files changed; the limit is {max}", changes.len()),
            });
        }
        let lines: usize = changes.iter().map(|c| c.insertions + c.deletions).sum();
        if let Some(max) = self.max_changed_lines
            && lines > max as usize
        {
            out.push(Refusal {
                rule: "max_changed_lines",
                detail: format!("{lines} lines changed; the limit is {max}"),
            });
        }
        if self.require_trailer {
            let wanted = format!("Orch-Task: {task}");
            for commit in commits {
                let has = commit.message.lines().any(|l| l.trim() == wanted);
                if !has {
                    let short = &commit.oid.to_string()[..10];
                    let subject = commit.message.lines().next().unwrap_or("");
                    out.push(Refusal {
                        rule: "require_trailer",
                        detail: format!("commit {short} (`{subject}`) has no `{wanted}` trailer"),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str, lines: usize) -> FileChange {
        FileChange {
            path: path.to_owned(),
            insertions: lines,
            deletions: 0,
        }
    }

    fn policy(toml: &str) -> Policy {
        let config: PolicyConfig = toml::from_str(toml).unwrap();
        Policy::new(&config).unwrap()
    }

    #[test]
    fn rules_table() {
        let p = policy(
            "forbidden_paths = [\".github/**\", \"*.lock\"]\nmax_changed_files = 2\nmax_changed_lines = 10\n",
        );
        assert!(p.evaluate("T1", &[change("src/a.rs", 3)], &[]).is_empty());
        let refused = p.evaluate(
            "T1",
            &[
                change(".github/workflows/ci.yml", 1),
                change("Cargo.lock", 1),
                change("src/a.rs", 9),
            ],
            &[],
        );
        let texts: Vec<String> = refused.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            texts,
            [
                "policy `forbidden_paths`: `.github/workflows/ci.yml` matches `.github/**`",
                "policy `forbidden_paths`: `Cargo.lock` matches `*.lock`",
                "policy `max_changed_files`: 3 files changed; the limit is 2",
                "policy `max_changed_lines`: 11 lines changed; the limit is 10",
            ]
        );
    }

    #[test]
    fn required_trailers() {
        let p = policy("require_trailer = true\n");
        let with = CommitInfo {
            oid: git2::Oid::from_str(&"a".repeat(40)).unwrap(),
            message: "Add it\n\nOrch-Task: T1\n".to_owned(),
        };
        let without = CommitInfo {
            oid: git2::Oid::from_str(&"b".repeat(40)).unwrap(),
            message: "Sneak it in\n".to_owned(),
        };
        assert!(
            p.evaluate("T1", &[], std::slice::from_ref(&with))
                .is_empty()
        );
        let refused = p.evaluate("T1", &[], &[with, without]);
        assert_eq!(
            refused[0].to_string(),
            "policy `require_trailer`: commit bbbbbbbbbb (`Sneak it in`) has no `Orch-Task: T1` trailer"
        );
    }

    #[test]
    fn bad_globs_are_named() {
        let config: PolicyConfig = toml::from_str("forbidden_paths = [\"a[\"]\n").unwrap();
        let err = Policy::new(&config).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid glob `a[` in `policy.forbidden_paths`"
        );
    }
}
