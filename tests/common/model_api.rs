//! The model's stand-in for the tests that run real agent CLIs
//! (`tests/agents/`): `tests/fixtures/model_api.py` started on an
//! ephemeral port of 127.0.0.1, with the script a test gives, and the CLIs
//! that `scripts/install-agents` put in `.agent-clis/`.
//!
//! Why Python: the stand-in parses HTTP/1.1 requests from four clients and
//! answers in four streaming dialects; `http.server` does the HTTP part in
//! the standard library, and aider needs Python on the machine anyway.
//!
//! A CLI or Python that is missing is never a silent pass: [`cli_or_skip`]
//! prints a `SKIPPED: ...` line naming the reason and the test returns.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The API families the stand-in speaks.
#[derive(Debug, Clone, Copy)]
pub enum Api {
    /// Anthropic Messages with SSE (Claude Code).
    Anthropic,
    /// OpenAI Responses with SSE (Codex CLI).
    Responses,
    /// OpenAI Chat Completions (aider).
    Chat,
    /// Gemini generateContent and streamGenerateContent (Gemini CLI).
    Gemini,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Anthropic => "anthropic",
            Api::Responses => "responses",
            Api::Chat => "chat",
            Api::Gemini => "gemini",
        }
    }
}

/// A running stand-in; stopped when dropped.
pub struct ModelApi {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ModelApi {
    /// Starts the stand-in for `api` with `script`, keeping its files in `dir`.
    pub fn start(api: Api, script: &Value, dir: &Path) -> ModelApi {
        std::fs::create_dir_all(dir).unwrap();
        let script_file = dir.join(format!("{}-script.json", api.name()));
        let log = dir.join(format!("{}-requests.jsonl", api.name()));
        std::fs::write(&script_file, script.to_string()).unwrap();
        let mut child = Command::new("python3")
            .arg(super::fixture("model_api.py"))
            .args(["--api", api.name(), "--script"])
            .arg(&script_file)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the model's stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the stand-in said {line:?}"));
        ModelApi { child, port, log }
    }

    /// Returns `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Returns every request logged so far.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Returns the text of every request the agent of `task` sent, each as
    /// one string.
    pub fn sent_by(&self, task: &str) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r["task"] == task)
            .map(|r| r["body"].to_string())
            .collect()
    }
}

impl Drop for ModelApi {
    fn drop(&mut self) {
        // Closing its stdin stops it; kill it too in case it hangs.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns the folder `scripts/install-agents` installs into.
pub fn clis_root() -> PathBuf {
    match std::env::var_os("ORCH_AGENT_CLIS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".agent-clis"),
    }
}

/// Returns the folder holding the executable of an installed CLI, or says
/// loudly why the test is skipped and returns `None`.
pub fn cli_or_skip(test: &str, cli: &str) -> Option<PathBuf> {
    let root = clis_root();
    let (bin, program) = match cli {
        "aider" => (root.join("aider/bin"), "aider"),
        other => (root.join("npm/bin"), other),
    };
    let status = std::fs::read_to_string(root.join("status").join(cli)).unwrap_or_default();
    let reason = if !status.starts_with("ok ") {
        match status.trim().strip_prefix("skip ") {
            Some(reason) => format!("scripts/install-agents could not install it: {reason}"),
            None => "it is not installed (run scripts/install-agents, which scripts/test does)"
                .to_owned(),
        }
    } else if !bin.join(program).exists() {
        format!("`{}` is missing", bin.join(program).display())
    } else if Command::new("python3").arg("--version").output().is_err() {
        "python3, which runs the model's stand-in, is missing".to_owned()
    } else {
        return Some(bin);
    };
    // Straight to the file descriptor: the test harness captures
    // `eprintln!` of passing tests, and a skip must be seen.
    let line = format!("SKIPPED: {test}: does not run `{cli}` because {reason}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

/// Returns `PATH` with `bin` first.
pub fn path_with(bin: &Path) -> std::ffi::OsString {
    let mut paths = vec![bin.to_owned()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}
