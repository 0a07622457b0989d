//! Problems found in a plan, and where in the file they are.
//!
//! Parsing and validation record a [`Problem`] with a [`Locus`]: a byte
//! offset when the parser knows one, otherwise a structural path (`phase[0]`
//! `.milestone[2].depends_on[1]`). Paths are turned into line and column only
//! when there is something to report ([`crate::plan::locate`]), so a valid
//! plan never pays for span tracking. Messages follow STYLE.md §2: lowercase
//! fragments, identifiers in backticks, no trailing period.

use std::fmt;
use std::path::PathBuf;

use crate::plan::model::{FullId, IdFault, Kind};

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One step of a structural path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Where a problem is, before it is resolved to a [`Location`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locus {
    /// A byte offset into the text.
    Offset(usize),
    /// An already known position.
    At(Location),
    /// A value reached by a path; ending in a key points at the key itself.
    Path(Vec<PathSeg>),
    /// The problem concerns the whole file.
    File,
}

/// Something wrong with a plan. Each names the ids involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{message}")]
    Syntax { message: String },
    #[error("the file is not valid UTF-8 (byte {offset})")]
    NotUtf8 { offset: usize },
    #[error("the plan has no tasks{}", hint_suffix(.hint))]
    NoTasks { hint: Option<&'static str> },
    #[error("unknown field `{field}` in {owner} (did you mean `{suggestion}`?)")]
    MisspelledField {
        owner: String,
        field: String,
        suggestion: &'static str,
    },
    #[error("`{field}` is given twice in {owner}")]
    DuplicateField { owner: String, field: String },
    #[error("{owner} is a {kind} and cannot hold `{field}`{}", holds(*.kind))]
    WrongLevel {
        owner: String,
        kind: Kind,
        field: String,
    },
    #[error("{owner} lists items at more than one level (`{first}` and `{second}`)")]
    MixedLevels {
        owner: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("a plan cannot start with subtasks (`{key}`); put them inside a task")]
    SubtasksAtTop { key: &'static str },
    #[error("invalid `{field}` in {owner}: {detail}")]
    BadValue {
        owner: String,
        field: &'static str,
        detail: String,
    },
    #[error("{owner} has no `id`")]
    MissingId { owner: String },
    #[error("invalid id `{id}`: {fault}")]
    InvalidId { id: String, fault: IdFault },
    #[error("`{id}` is written in full but does not extend its parent's id `{parent}`")]
    NotExtendingParent { id: String, parent: FullId },
    #[error("`{id}` is written in full but a top-level {kind} has no parent to extend")]
    DottedTopLevel { id: String, kind: Kind },
    #[error("duplicate id `{id}`")]
    DuplicateId { id: FullId },
    #[error("`{from}` depends on unknown `{dep}`{}", did_you_mean(.suggestion))]
    UnknownDependency {
        from: FullId,
        dep: String,
        suggestion: Option<FullId>,
    },
    #[error("`{id}` depends on itself")]
    SelfDependency { id: FullId },
    #[error("`{from}` depends on `{dep}`, which contains it")]
    DependsOnAncestor { from: FullId, dep: FullId },
    #[error("`{from}` depends on `{dep}`, which is part of it")]
    DependsOnDescendant { from: FullId, dep: FullId },
    #[error("dependency cycle: {}", join_path(.path))]
    Cycle { path: Vec<FullId> },
    #[error(
        "`{from}` (phase {from_phase}) depends on `{dep}` in the later phase {dep_phase}, which `scheduling.phase_barrier` holds back until phase {from_phase} is done"
    )]
    AgainstPhaseBarrier {
        from: FullId,
        dep: FullId,
        from_phase: FullId,
        dep_phase: FullId,
    },
    #[error(
        "`{id}` uses resource `{resource}`, which `[resources]` in the config does not declare"
    )]
    UnknownResource { id: FullId, resource: String },
    #[error("`{id}` needs {wanted} of resource `{resource}`, but the config has only {capacity}")]
    ResourceTooLarge {
        id: FullId,
        resource: String,
        wanted: u32,
        capacity: u32,
    },
    #[error(
        "`{id}` picks agent `{agent}`, which is neither a built-in preset nor defined in `[agents]` in the config"
    )]
    UnknownAgent { id: FullId, agent: String },
}

fn hint_suffix(hint: &Option<&'static str>) -> String {
    hint.map(|h| format!(" ({h})")).unwrap_or_default()
}

fn holds(kind: Kind) -> String {
    match kind.child() {
        Some(child) => format!(" (a {kind} holds {child}s)"),
        None => format!(" (a {kind} holds nothing)"),
    }
}

fn did_you_mean(suggestion: &Option<FullId>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Joins a cycle path as `a -> b -> a`.
pub fn join_path(path: &[FullId]) -> String {
    let mut out = String::new();
    for (i, id) in path.iter().enumerate() {
        if i > 0 {
            out.push_str(" -> ");
        }
        out.push_str(id.as_str());
    }
    out
}

/// A problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub problem: Problem,
    pub(crate) locus: Locus,
    /// A second place worth pointing at (the first definition of a duplicate).
    pub(crate) related: Option<Locus>,
    pub location: Option<Location>,
    pub related_location: Option<Location>,
}

impl Diagnostic {
    pub(crate) fn new(problem: Problem, locus: Locus) -> Diagnostic {
        Diagnostic {
            problem,
            locus,
            related: None,
            location: None,
            related_location: None,
        }
    }

    pub(crate) fn with_related(mut self, related: Locus) -> Diagnostic {
        self.related = Some(related);
        self
    }
}

/// A plan that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} in `{}`", crate::text::plural(diagnostics.len(), "error", "errors"), path.display())]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

impl PlanError {
    /// Renders every diagnostic as `file:line:col: message`, one per line.
    pub fn detail_lines(&self) -> Vec<String> {
        let PlanError::Invalid { path, diagnostics } = self else {
            return Vec::new();
        };
        diagnostics
            .iter()
            .map(|d| render_diagnostic(path, d))
            .collect()
    }
}

fn render_diagnostic(path: &std::path::Path, d: &Diagnostic) -> String {
    let mut line = match d.location {
        Some(loc) => format!("{}:{loc}: {}", path.display(), d.problem),
        None => format!("{}: {}", path.display(), d.problem),
    };
    if let Some(related) = d.related_location {
        line.push_str(&format!("; first defined at {related}"));
    }
    line
}
