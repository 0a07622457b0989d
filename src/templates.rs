//! Files under `templates/`, embedded in the binary and rendered with minijinja.
//!
//! Templates use minijinja's default syntax; undefined variables are errors,
//! so a typo in a template fails its test instead of rendering blank.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// The starter `.orchestrator.toml` written by `orch init`.
pub const CONFIG: &str = include_str!("../templates/orchestrator.toml");
/// The starter `plan.toml` written by `orch init`.
pub const PLAN: &str = include_str!("../templates/plan.toml");

/// Renders one template with `context`.
pub fn render(
    name: &str,
    source: &str,
    context: impl Serialize,
) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()?,
    );
    env.add_template(name, source)?;
    env.get_template(name)?.render(Value::from(Serde(context)))
}
