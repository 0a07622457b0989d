//! Reading a plan: a file or its bytes, parsed, built and checked against
//! the rules the config adds ([`Rules`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::build::{self, key_path};
use super::diag::{self, Diagnostic, PlanError, Problem};
use super::locate;
use super::model::{ItemIdx, Plan};
use super::parse::{self, Format};

/// What the config adds to plan validation.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Reject dependencies on later phases, which the barrier would deadlock.
    pub phase_barrier: bool,
    /// Declared resources and their capacity; `None` skips the resource check.
    pub resources: Option<BTreeMap<String, u32>>,
    /// Names of the agent presets; `None` skips the preset check.
    pub agents: Option<Vec<String>>,
}

/// Reads and validates a plan file.
pub fn load(path: &Path, rules: &Rules) -> Result<Plan, PlanError> {
    let bytes = std::fs::read(path).map_err(|source| PlanError::Read {
        path: path.to_owned(),
        source,
    })?;
    from_bytes(path, &bytes, rules)
}

/// Validates plan text; `path` names it in messages and picks the format.
pub fn from_bytes(path: &Path, bytes: &[u8], rules: &Rules) -> Result<Plan, PlanError> {
    let invalid = |diagnostics| PlanError::Invalid {
        path: path.to_owned(),
        diagnostics,
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let offset = e.valid_up_to();
            let valid = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
            let mut d = Diagnostic::new(Problem::NotUtf8 { offset }, diag::Locus::File);
            d.location = Some(locate::LineIndex::new(valid).location(offset));
            return Err(invalid(vec![d]));
        }
    };
    let format = Format::detect(path, text);
    let mut diagnostics = match parse::parse(text, format) {
        Err(d) => vec![*d],
        Ok(raw) => {
            let (plan, mut diagnostics) = build::build(raw);
            diagnostics.extend(apply_rules(&plan, rules));
            if diagnostics.is_empty() {
                return Ok(plan);
            }
            diagnostics
        }
    };
    locate::resolve(text, format, &mut diagnostics);
    diagnostics.sort_by_key(|d| d.location);
    Err(invalid(diagnostics))
}

fn apply_rules(plan: &Plan, rules: &Rules) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if rules.phase_barrier {
        out.extend(plan.graph.barrier_problems(&plan.items));
    }
    for (i, item) in plan.items.iter().enumerate() {
        let idx = ItemIdx(i as u32);
        if let Some(capacity) = &rules.resources {
            for (resource, wanted) in item.resources() {
                let problem = match capacity.get(resource) {
                    None => Problem::UnknownResource {
                        id: item.id.clone(),
                        resource: resource.clone(),
                    },
                    Some(have) if wanted > have => Problem::ResourceTooLarge {
                        id: item.id.clone(),
                        resource: resource.clone(),
                        wanted: *wanted,
                        capacity: *have,
                    },
                    Some(_) => continue,
                };
                out.push(Diagnostic::new(
                    problem,
                    key_path(&plan.items, idx, "resources"),
                ));
            }
        }
        if let (Some(agents), Some(agent)) = (&rules.agents, item.agent())
            && !agents.iter().any(|a| a == agent)
        {
            let problem = Problem::UnknownAgent {
                id: item.id.clone(),
                agent: agent.to_owned(),
            };
            out.push(Diagnostic::new(
                problem,
                key_path(&plan.items, idx, "agent"),
            ));
        }
    }
    out
}

/// Returns the path a plan is shown under: relative to `base` when inside it.
pub fn display_path(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .map(Path::to_owned)
        .unwrap_or_else(|_| path.to_owned())
}
