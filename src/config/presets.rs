//! Agent presets: the built-in ones (`templates/agents.toml`, data rather
//! than code paths) and how the agent of a plan item is resolved from them,
//! the user's `[agents.<name>]` tables and `[agent]`.
//!
//! Resolution, key by key, the first that sets it wins:
//!
//! | agent | layers |
//! | --- | --- |
//! | a preset `<name>` | `[agents.<name>]`, the built-in `<name>`, `[agent]`, the default |
//! | the default (`agent.command` set) | `[agent]`, the default |
//! | the default (no `agent.command`) | the preset `agent.preset`, `"claude"` when unset |
//!
//! `env` is the exception: `agent.env`, then the built-in preset's, then the
//! user's table are merged, a later layer winning on a name set twice.
//!
//! What a preset knows about its CLI: the argv, the prompt channel, the
//! environment it needs to run unattended, exit codes that mean "do not
//! retry", the files it leaves that must never be committed (`exclude`),
//! where its final message is (`final_message`), how it says it hit a rate
//! or usage limit (`limit_exit_codes`, `limit_patterns`), where it reports
//! tokens and cost (`usage`), where it names its session (`session`) and
//! how to continue one (`resume_command`, which comes with `command`: a
//! table that sets `command` and not `resume_command` resumes nothing, so
//! a changed argv is never mixed with the built-in resume argv).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::{AgentPreset, Config, PromptMode};

/// The built-in presets, as shipped.
pub const BUILTIN: &str = include_str!("../../templates/agents.toml");

/// The preset the default agent is when the config names none.
pub const DEFAULT_PRESET: &str = "claude";

/// The folder inside a task's worktree where the agent writes its report
/// and final message. It is the state dir's name, which `orch run` keeps in
/// `info/exclude`, so git never sees it in any worktree.
pub const AGENT_DIR: &str = ".orchestrator";
/// The report an agent may write (`ORCH_RESULT_FILE`), inside [`AGENT_DIR`].
pub const RESULT_FILE: &str = "result.json";
/// Where an agent writes its final message (`{last_message_file}`), inside [`AGENT_DIR`].
pub const LAST_MESSAGE_FILE: &str = "last-message.md";

/// Returns the built-in presets by name.
pub fn builtin() -> &'static BTreeMap<String, AgentPreset> {
    static PRESETS: OnceLock<BTreeMap<String, AgentPreset>> = OnceLock::new();
    PRESETS.get_or_init(|| {
        // `BUILTIN` is part of the binary and parses: the test
        // `the_builtin_presets_parse_and_are_complete` says so.
        toml::from_str(BUILTIN).expect("templates/agents.toml parses")
    })
}

/// Where an agent's final message is read from, for the summary shown to
/// dependent tasks when it wrote no report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FinalMessage {
    /// The last lines of its output (`"output"`).
    #[default]
    Output,
    /// The file `{last_message_file}` names in its argv (`"file"`).
    File,
    /// A string field of the last JSON object in its output (`"json.<field>"`).
    Json { field: String },
}

impl fmt::Display for FinalMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinalMessage::Output => f.write_str("output"),
            FinalMessage::File => f.write_str("file"),
            FinalMessage::Json { field } => write!(f, "json.{field}"),
        }
    }
}

impl std::str::FromStr for FinalMessage {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "output" => Ok(FinalMessage::Output),
            "file" => Ok(FinalMessage::File),
            _ => match text.strip_prefix("json.") {
                Some(field) if !field.is_empty() => Ok(FinalMessage::Json {
                    field: field.to_owned(),
                }),
                _ => Err(format!(
                    "invalid final message `{text}` (write \"output\", \"file\" or \"json.<field>\")"
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for FinalMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for FinalMessage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A string field of the last JSON object of an agent's output that has
/// it, written `"json.<field>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonField(pub String);

impl fmt::Display for JsonField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "json.{}", self.0)
    }
}

impl std::str::FromStr for JsonField {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.strip_prefix("json.") {
            Some(field) if !field.is_empty() => Ok(JsonField(field.to_owned())),
            _ => Err(format!("invalid session `{text}` (write \"json.<field>\")")),
        }
    }
}

impl<'de> Deserialize<'de> for JsonField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for JsonField {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where an agent's JSON output reports tokens and cost: one path per
/// figure, like `usage.input_tokens` (`*` stands for any key, and the
/// values it reaches are summed), read in the last JSON object of the
/// output that has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePaths {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<String>,
    /// The figures that count the whole session, not one run of the CLI:
    /// an attempt that continued a session records what it added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_totals: Vec<UsageFigure>,
}

/// One figure of [`UsagePaths`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageFigure {
    InputTokens,
    OutputTokens,
    CachedTokens,
    CostUsd,
}

/// The name of the agent `agent.command` defines (pauses and metrics use it).
pub const CUSTOM_AGENT: &str = "default";

/// An agent with every key resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The preset it comes from; `None` for `agent.command`.
    pub preset: Option<String>,
    pub command: Vec<String>,
    pub prompt: PromptMode,
    pub timeout: Duration,
    pub env: BTreeMap<String, String>,
    pub final_message: FinalMessage,
    /// Exit codes never retried, besides `retry.permanent_exit_codes`.
    pub permanent_exit_codes: Vec<i32>,
    /// Globs of files it leaves that are never committed.
    pub exclude: Vec<String>,
    /// Exit codes that mean it hit a rate or usage limit.
    pub limit_exit_codes: Vec<i32>,
    /// Regular expressions that mean it hit one (validated with the config).
    pub limit_patterns: Vec<String>,
    pub usage: Option<UsagePaths>,
    pub session: Option<JsonField>,
    /// The argv that continues session `{session_id}`.
    pub resume_command: Option<Vec<String>>,
}

impl Agent {
    /// Returns its name: the preset's, or [`CUSTOM_AGENT`].
    pub fn name(&self) -> &str {
        self.preset.as_deref().unwrap_or(CUSTOM_AGENT)
    }
}

impl Config {
    /// Returns the name of the preset the default agent is, or `None` when
    /// `agent.command` defines it.
    pub fn default_preset(&self) -> Option<&str> {
        match (&self.agent.command, &self.agent.preset) {
            (Some(_), _) => None,
            (None, Some(name)) => Some(name),
            (None, None) => Some(DEFAULT_PRESET),
        }
    }

    /// Returns every preset name a task may pick: the built-in ones and the config's.
    pub fn agent_names(&self) -> BTreeSet<String> {
        builtin()
            .keys()
            .chain(self.agents.keys())
            .cloned()
            .collect()
    }

    /// Returns the agent of an item naming `preset` (`None`: the default
    /// agent); `None` when no preset has that name.
    pub fn agent(&self, preset: Option<&str>) -> Option<Agent> {
        let name = match preset {
            Some(name) => name,
            None => match self.default_preset() {
                Some(name) => name,
                None => return Some(self.custom_agent()),
            },
        };
        let user = self.agents.get(name);
        let base = builtin().get(name);
        if user.is_none() && base.is_none() {
            return None;
        }
        let pick = |f: &dyn Fn(&AgentPreset) -> bool| -> Option<&AgentPreset> {
            user.filter(|p| f(p)).or(base.filter(|p| f(p)))
        };
        let agent = &self.agent;
        // `resume_command` comes from the layer that sets `command`.
        let command_layer = pick(&|p| p.command.is_some());
        let mut env = agent.env.clone();
        env.extend(base.map(|p| p.env.clone()).unwrap_or_default());
        env.extend(user.map(|p| p.env.clone()).unwrap_or_default());
        Some(Agent {
            preset: Some(name.to_owned()),
            command: pick(&|p| p.command.is_some())
                .and_then(|p| p.command.clone())
                .unwrap_or_default(),
            prompt: pick(&|p| p.prompt.is_some())
                .and_then(|p| p.prompt)
                .unwrap_or(agent.prompt),
            timeout: pick(&|p| p.timeout.is_some())
                .and_then(|p| p.timeout)
                .unwrap_or(agent.timeout)
                .0,
            env,
            final_message: pick(&|p| p.final_message.is_some())
                .and_then(|p| p.final_message.clone())
                .unwrap_or_else(|| agent.final_message.clone()),
            permanent_exit_codes: pick(&|p| p.permanent_exit_codes.is_some())
                .and_then(|p| p.permanent_exit_codes.clone())
                .unwrap_or_default(),
            exclude: pick(&|p| p.exclude.is_some())
                .and_then(|p| p.exclude.clone())
                .unwrap_or_else(|| agent.exclude.clone()),
            limit_exit_codes: pick(&|p| p.limit_exit_codes.is_some())
                .and_then(|p| p.limit_exit_codes.clone())
                .unwrap_or_default(),
            limit_patterns: pick(&|p| p.limit_patterns.is_some())
                .and_then(|p| p.limit_patterns.clone())
                .unwrap_or_default(),
            usage: pick(&|p| p.usage.is_some()).and_then(|p| p.usage.clone()),
            session: pick(&|p| p.session.is_some()).and_then(|p| p.session.clone()),
            resume_command: command_layer.and_then(|p| p.resume_command.clone()),
        })
    }

    /// Returns the agent `agent.command` defines.
    fn custom_agent(&self) -> Agent {
        let agent = &self.agent;
        Agent {
            preset: None,
            command: agent.command.clone().unwrap_or_default(),
            prompt: agent.prompt,
            timeout: agent.timeout.0,
            env: agent.env.clone(),
            final_message: agent.final_message.clone(),
            permanent_exit_codes: Vec::new(),
            exclude: agent.exclude.clone(),
            limit_exit_codes: Vec::new(),
            limit_patterns: Vec::new(),
            usage: None,
            session: None,
            resume_command: None,
        }
    }

    /// Returns the first problem of the agent keys, with its key path.
    pub(super) fn agent_problem(&self) -> Option<(Vec<&str>, String)> {
        match (&self.agent.command, &self.agent.preset) {
            (Some(command), _) if command.is_empty() => {
                return Some((
                    vec!["agent", "command"],
                    "`agent.command` is empty; give the agent's argv, like [\"./agent.sh\"], or pick a preset with `preset = \"claude\"`"
                        .to_owned(),
                ));
            }
            (Some(_), Some(_)) => {
                return Some((
                    vec!["agent", "preset"],
                    "`agent.preset` and `agent.command` are both set; keep one (a preset's command is changed under `[agents.<name>]`)".to_owned(),
                ));
            }
            (None, Some(name)) if !self.agent_names().contains(name) => {
                return Some((
                    vec!["agent", "preset"],
                    format!(
                        "`agent.preset` names `{name}`, which is not a preset (built in: {})",
                        builtin().keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            _ => {}
        }
        for (name, preset) in &self.agents {
            for pattern in preset.limit_patterns.iter().flatten() {
                if let Err(e) = regex::Regex::new(pattern) {
                    return Some((
                        vec!["agents", name],
                        format!(
                            "`agents.{name}.limit_patterns` has an invalid pattern `{pattern}`: {e}"
                        ),
                    ));
                }
            }
            if preset.resume_command.as_ref().is_some_and(Vec::is_empty) {
                return Some((
                    vec!["agents", name],
                    format!("`agents.{name}.resume_command` is empty"),
                ));
            }
            match &preset.command {
                Some(command) if command.is_empty() => {
                    return Some((
                        vec!["agents", name],
                        format!("`agents.{name}.command` is empty"),
                    ));
                }
                None if !builtin().contains_key(name) => {
                    return Some((
                        vec!["agents", name],
                        format!(
                            "`agents.{name}` has no `command` (only the built-in presets {} have one already)",
                            builtin().keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Config {
        Config::from_text(Path::new(".orchestrator.toml"), text).unwrap()
    }

    fn problem(text: &str) -> String {
        Config::from_text(Path::new(".orchestrator.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_builtin_presets_parse_and_are_complete() {
        let presets: BTreeMap<String, AgentPreset> = toml::from_str(BUILTIN).unwrap();
        let names: Vec<&str> = presets.keys().map(String::as_str).collect();
        assert_eq!(names, ["aider", "claude", "codex", "gemini"]);
        for (name, preset) in &presets {
            assert!(preset.command.is_some(), "{name} has a command");
            assert!(
                preset.prompt.is_some(),
                "{name} says how it reads the prompt"
            );
            assert!(preset.final_message.is_some(), "{name} has a final message");
            let command = preset.command.as_ref().unwrap();
            let file = preset.final_message == Some(FinalMessage::File);
            assert_eq!(
                command.iter().any(|a| a.contains("{last_message_file}")),
                file,
                "{name}: `{{last_message_file}}` goes with final_message = \"file\""
            );
            let on_file = preset.prompt == Some(PromptMode::File);
            assert_eq!(
                command.iter().any(|a| a.contains("{prompt_file}")),
                on_file,
                "{name}: `{{prompt_file}}` goes with prompt = \"file\""
            );
            for pattern in preset.limit_patterns.iter().flatten() {
                assert!(regex::Regex::new(pattern).is_ok(), "{name}: {pattern}");
            }
            if let Some(resume) = &preset.resume_command {
                assert!(preset.session.is_some(), "{name}: a resume needs a session");
                assert!(
                    resume.iter().any(|a| a == "{session_id}"),
                    "{name}: `{{session_id}}` is in its resume_command"
                );
                let kept = |argv: &[String]| {
                    argv.iter()
                        .filter(|a| {
                            *a != "{session_id}" && !matches!(a.as_str(), "resume" | "--resume")
                        })
                        .cloned()
                        .collect::<BTreeSet<_>>()
                };
                assert_eq!(
                    kept(resume),
                    kept(command),
                    "{name}: resuming runs the CLI as its command does"
                );
            }
        }
    }

    #[test]
    fn docs_config_shows_the_builtin_presets_as_they_are() {
        let docs = include_str!("../../docs/config.md");
        let mut table = "";
        for line in BUILTIN
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            if let Some(name) = line.strip_prefix('[') {
                table = name.trim_end_matches(']');
                assert!(docs.contains(&format!("[agents.{table}]")), "{table}");
                continue;
            }
            assert!(
                docs.contains(&format!("\n{line}\n")),
                "docs/config.md lacks `{line}` of the built-in preset `{table}`"
            );
        }
    }

    #[test]
    fn final_messages_read_and_write_back() {
        for text in ["output", "file", "json.result"] {
            let parsed: FinalMessage = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
        assert!("json.".parse::<FinalMessage>().is_err());
        assert!("stdout".parse::<FinalMessage>().is_err());
    }

    #[test]
    fn the_default_agent_is_the_claude_preset() {
        let config = parse("");
        let agent = config.agent(None).unwrap();
        assert_eq!(agent.preset.as_deref(), Some("claude"));
        assert_eq!(agent.command[0], "claude");
        assert_eq!(
            agent.final_message,
            FinalMessage::Json {
                field: "result".to_owned()
            }
        );
        let custom = parse("[agent]\ncommand = [\"./agent.sh\"]\nfinal_message = \"file\"\n");
        let agent = custom.agent(None).unwrap();
        assert_eq!(agent.preset, None);
        assert_eq!(agent.command, ["./agent.sh"]);
        assert_eq!(agent.final_message, FinalMessage::File);
        let picked = parse("[agent]\npreset = \"codex\"\n");
        assert_eq!(picked.agent(None).unwrap().command[0], "codex");
    }

    #[test]
    fn a_users_table_changes_a_builtin_preset_key_by_key() {
        let config = parse(
            "[agent]\ntimeout = \"5m\"\nenv = { A = \"1\", GEMINI_CLI_TRUST_WORKSPACE = \"no\" }\n\n[agents.gemini]\ntimeout = \"1m\"\nenv = { B = \"2\" }\n\n[agents.mine]\ncommand = [\"mine\"]\n",
        );
        let gemini = config.agent(Some("gemini")).unwrap();
        assert_eq!(gemini.command[0], "gemini");
        assert_eq!(gemini.timeout, Duration::from_secs(60));
        assert_eq!(gemini.permanent_exit_codes, [41, 42, 44, 52, 55]);
        let env: Vec<(&str, &str)> = gemini
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("A", "1"),
                ("B", "2"),
                ("GEMINI_CLI_TRUST_WORKSPACE", "true")
            ]
        );
        let mine = config.agent(Some("mine")).unwrap();
        assert_eq!(mine.command, ["mine"]);
        assert_eq!(mine.timeout, Duration::from_secs(300));
        assert_eq!(mine.final_message, FinalMessage::Output);
        assert!(config.agent(Some("nobody")).is_none());
        assert!(config.agent_names().contains("mine"));
        assert!(config.agent_names().contains("aider"));
    }

    #[test]
    fn agent_keys_that_make_no_sense_name_their_key() {
        assert_eq!(
            problem("[agent]\npreset = \"claude\"\ncommand = [\"x\"]\n"),
            ".orchestrator.toml:2:1: `agent.preset` and `agent.command` are both set; keep one (a preset's command is changed under `[agents.<name>]`)"
        );
        assert!(
            problem("[agent]\npreset = \"clod\"\n")
                .contains("`agent.preset` names `clod`, which is not a preset"),
        );
        assert!(problem("[agents.mine]\nprompt = \"file\"\n").contains("has no `command`"));
        assert!(problem("[agents.claude]\ncommand = []\n").contains("is empty"));
        assert!(problem("[agent]\nfinal_message = \"stdout\"\n").contains("invalid final message"));
    }
}
