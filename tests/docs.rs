//! Every example in the docs works: each fenced block in `README.md` and
//! `docs/*.md` is checked by its info string.
//!
//! | fence | check |
//! | --- | --- |
//! | `toml config` | a valid `.orchestrator.toml` |
//! | `toml plan`, `json plan` | a valid plan |
//! | `json taskmaster` | a Taskmaster file that imports into a valid plan |
//! | `json state` | a `state.json` orch loads |
//! | `json event` | `events.jsonl` lines, each an event orch reads |
//! | `toml`, `json` | valid TOML or JSON |
//! | anything else | not checked |

use std::path::{Path, PathBuf};

use orch::config::Config;
use orch::plan::{self, Rules};

/// A fenced block: where it starts, its info string and its text.
struct Block {
    file: PathBuf,
    line: usize,
    info: String,
    text: String,
}

fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in text.lines().enumerate() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    file: file.to_owned(),
                    line: n + 1,
                    info: info.trim().to_owned(),
                    text: String::new(),
                });
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => out.extend(open.take()),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{}: a fence is not closed", file.display());
    out
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn check(block: &Block) -> Result<(), String> {
    let here = Path::new("snippet");
    match block.info.as_str() {
        "toml config" => Config::from_text(here, &block.text)
            .map(drop)
            .map_err(|e| format!("{e:?}")),
        "toml plan" | "json plan" => {
            plan::from_bytes(here, block.text.as_bytes(), &Rules::default())
                .map(drop)
                .map_err(|e| e.detail_lines().join("\n"))
        }
        "json taskmaster" => {
            let imported =
                plan::taskmaster::convert(&block.text, None).map_err(|e| e.to_string())?;
            plan::from_bytes(here, imported.toml.as_bytes(), &Rules::default())
                .map(drop)
                .map_err(|e| e.detail_lines().join("\n"))
        }
        "json state" => orch::state::store::parse(here, block.text.as_bytes())
            .map(drop)
            .map_err(|e| e.to_string()),
        "json event" => {
            for line in block.text.lines().filter(|l| !l.trim().is_empty()) {
                serde_json::from_str::<orch::state::events::Event>(line)
                    .map_err(|e| format!("{line}: {e}"))?;
            }
            Ok(())
        }
        "toml" => toml::from_str::<toml::Table>(&block.text)
            .map(drop)
            .map_err(|e| e.to_string()),
        "json" => serde_json::from_str::<serde_json::Value>(&block.text)
            .map(drop)
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

#[test]
fn every_example_in_the_docs_works() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in doc_files() {
        for block in blocks(&file) {
            if let Err(e) = check(&block) {
                failures.push(format!(
                    "{}:{} ({}): {e}",
                    block.file.display(),
                    block.line,
                    block.info
                ));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked > 10, "only {checked} blocks found");
}

#[test]
fn the_checks_catch_a_broken_example() {
    let bad = Block {
        file: PathBuf::from("x.md"),
        line: 1,
        info: "toml config".to_owned(),
        text: "[agent]\nmax_paralel = 2\n".to_owned(),
    };
    assert!(check(&bad).is_err());
    let cycle = Block {
        info: "toml plan".to_owned(),
        text: "[[task]]\nid = \"A\"\ndepends_on = [\"A\"]\n".to_owned(),
        ..bad
    };
    assert!(check(&cycle).is_err());
}
