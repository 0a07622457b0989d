//! The crate's layering holds: no import cycle between top-level modules,
//! and every `mod.rs` only declares modules and re-exports (STYLE.md §1).
//!
//! A top-level module is `src/<m>.rs` or `src/<m>/`. A dependency of `a` on
//! `b` is a `crate::b` path in code under `a` (`use crate::{b, c::d}` groups
//! included, and `crate::name!` for a macro `b` exports); comments, doc
//! comments and string literals are ignored, and `super::` paths stay inside
//! a module. `docs/architecture.md` says which module may depend on which.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The layers of `docs/architecture.md`, lowest first: a module may only
/// depend on modules of lower layers.
const LAYERS: &[&[&str]] = &[
    &["fsio", "process", "sandbox", "templates", "text", "when"],
    &["git", "plan"],
    &["lifecycle"],
    &["schedule"],
    &["config", "state"],
    &["runner"],
    &[
        "hooks",
        "merge_queue",
        "metrics",
        "narrate",
        "notifications",
    ],
    &["coordinator"],
    &["clean", "dash", "demo", "doctor"],
    &["error"],
    &["cli"],
];

/// One Rust source file of the library.
struct Source {
    /// Relative to the package root, with `/` separators.
    path: String,
    /// The top-level module it belongs to.
    module: String,
    /// The text with comments and literal contents blanked (same line breaks).
    code: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Reads every file under `src/` that belongs to a top-level module (not
/// `lib.rs` or `main.rs`, which sit above them all).
fn sources() -> Vec<Source> {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap();
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let module = match parts.as_slice() {
            [_, name] if name == "lib.rs" || name == "main.rs" => continue,
            [_, name] => name.trim_end_matches(".rs").to_owned(),
            [_, dir, ..] => dir.clone(),
            _ => continue,
        };
        let text = std::fs::read_to_string(&file).unwrap();
        out.push(Source {
            path: parts.join("/"),
            module,
            code: blank_comments_and_literals(&text),
        });
    }
    out
}

/// Replaces comments (doc comments included) and the contents of string
/// and char literals with spaces, keeping line breaks so lines still count.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (i == 0 || !ident(chars[i - 1]) || chars[i - 1] == 'b')
            && matches!(next, Some('"' | '#'))
            && {
                let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
                chars.get(i + 1 + hashes) == Some(&'"')
            }
        {
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            out.push('r');
            out.push_str(&"#".repeat(hashes));
            out.push('"');
            i += 2 + hashes;
            while i < chars.len() && !chars[i..].starts_with(&close.chars().collect::<Vec<_>>()) {
                out.push(blank(chars[i]));
                i += 1;
            }
            out.push_str(&close);
            i += close.chars().count();
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // A char literal (`'x'`, `'\n'`, `'\u{1F600}'`) or a lifetime (`'a`).
            if next == Some('\\') {
                out.push('\'');
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    out.push(' ');
                    i += 1;
                }
                out.push_str(" '");
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn read_ident(chars: &[char], mut i: usize) -> (String, usize) {
    let start = i;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    (chars[start..i].iter().collect(), i)
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// Returns each name that follows `crate::` in `code` with its line:
/// the first segment of a path, or each first segment of a `{...}` group.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let pattern: Vec<char> = "crate::".chars().collect();
    let line_of = |i: usize| chars[..i].iter().filter(|&&c| c == '\n').count() + 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i + pattern.len() <= chars.len() {
        let starts_word = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if !(starts_word && chars[i..].starts_with(&pattern)) {
            i += 1;
            continue;
        }
        let line = line_of(i);
        let mut j = skip_space(&chars, i + pattern.len());
        if chars.get(j) == Some(&'{') {
            let mut depth = 1;
            let mut item_start = true;
            j += 1;
            while j < chars.len() && depth > 0 {
                j = skip_space(&chars, j);
                match chars.get(j) {
                    Some('{') => depth += 1,
                    Some('}') => depth -= 1,
                    Some(',') if depth == 1 => item_start = true,
                    Some(c) if item_start && depth == 1 && (c.is_alphanumeric() || *c == '_') => {
                        let (name, end) = read_ident(&chars, j);
                        out.push((name, line_of(j)));
                        item_start = false;
                        j = end;
                        continue;
                    }
                    _ => {}
                }
                j += 1;
            }
        } else {
            let (name, end) = read_ident(&chars, j);
            if !name.is_empty() {
                out.push((name, line));
            }
            j = end;
        }
        i = j.max(i + 1);
    }
    out
}

/// Names of `#[macro_export]` macros, which live at the crate root but
/// belong to the module that defines them.
fn exported_macros(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[macro_export]") {
        rest = &rest[at..];
        if let Some(m) = rest.find("macro_rules!") {
            let after = rest[m + "macro_rules!".len()..].trim_start();
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push(name);
        }
        rest = &rest["#[macro_export]".len()..];
    }
    out
}

/// Where each dependency between two top-level modules is first seen:
/// `(from, to) -> "path:line"`.
fn dependencies(sources: &[Source]) -> BTreeMap<(String, String), String> {
    let modules: BTreeSet<&str> = sources.iter().map(|s| s.module.as_str()).collect();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for source in sources {
        for name in exported_macros(&source.code) {
            owner.insert(name, source.module.clone());
        }
    }
    let mut deps = BTreeMap::new();
    for source in sources {
        for (name, line) in crate_paths(&source.code) {
            let to = if modules.contains(name.as_str()) {
                name
            } else if let Some(module) = owner.get(&name) {
                module.clone()
            } else {
                continue;
            };
            if to != source.module {
                deps.entry((source.module.clone(), to))
                    .or_insert_with(|| format!("{}:{line}", source.path));
            }
        }
    }
    deps
}

/// Returns the strongly connected components with more than one module.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in graph.keys() {
        if done.contains(m) || !reachable[m].contains(m) {
            continue;
        }
        let component: Vec<String> = reachable[m]
            .iter()
            .filter(|other| reachable.get(other).is_some_and(|r| r.contains(m)))
            .cloned()
            .collect();
        done.extend(component.iter().cloned());
        out.push(component);
    }
    out
}

/// Returns a shortest path `from -> ... -> to` over `graph`, both ends included.
fn shortest_path(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut before: BTreeMap<String, String> = BTreeMap::new();
    let mut todo = VecDeque::from([from.to_owned()]);
    while let Some(m) = todo.pop_front() {
        for next in graph.get(&m).into_iter().flatten() {
            if before.contains_key(next) || next == from {
                continue;
            }
            before.insert(next.clone(), m.clone());
            if next == to {
                let mut path = vec![to.to_owned()];
                while let Some(prev) = before.get(path.last().unwrap()) {
                    path.push(prev.clone());
                    if prev == from {
                        break;
                    }
                }
                path.reverse();
                return Some(path);
            }
            todo.push_back(next.clone());
        }
    }
    None
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let sources = sources();
    let deps = dependencies(&sources);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in deps.keys() {
        graph.entry(from.clone()).or_default().insert(to.clone());
        graph.entry(to.clone()).or_default();
    }
    let mut report = String::new();
    for component in cycles(&graph) {
        // One cycle through the component's first module, with where each step is.
        let first = &component[0];
        let back = graph[first]
            .iter()
            .filter(|next| component.contains(next))
            .filter_map(|next| shortest_path(&graph, next, first))
            .min_by_key(Vec::len)
            .unwrap();
        let mut cycle = vec![first.clone()];
        cycle.extend(back);
        report.push_str(&format!(
            "cycle {} (modules {}):\n",
            cycle.join(" -> "),
            component.join(", ")
        ));
        report.push_str("  every dependency inside it:\n");
        for ((from, to), at) in &deps {
            if component.contains(from) && component.contains(to) {
                report.push_str(&format!("  {from} -> {to}: {at}\n"));
            }
        }
    }
    assert!(
        report.is_empty(),
        "import cycles between top-level modules:\n{report}"
    );
}

#[test]
fn every_dependency_points_to_a_lower_layer() {
    let sources = sources();
    let layer = |module: &str| LAYERS.iter().position(|l| l.contains(&module));
    let mut report = String::new();
    let modules: BTreeSet<&str> = sources.iter().map(|s| s.module.as_str()).collect();
    for module in modules {
        if layer(module).is_none() {
            report.push_str(&format!("`{module}` is in no layer of LAYERS\n"));
        }
    }
    for ((from, to), at) in dependencies(&sources) {
        if let (Some(f), Some(t)) = (layer(&from), layer(&to))
            && t >= f
        {
            report.push_str(&format!("{from} (layer {f}) -> {to} (layer {t}): {at}\n"));
        }
    }
    assert!(
        report.is_empty(),
        "dependencies against the layering (docs/architecture.md):\n{report}"
    );
}

/// Returns the first item of a `mod.rs` that is neither a module declaration
/// nor a re-export, as `(line, text)`.
fn first_code_item(code: &str) -> Option<(usize, String)> {
    let chars: Vec<char> = code.chars().collect();
    let line_of = |i: usize| chars[..i].iter().filter(|&&c| c == '\n').count() + 1;
    let mut i = 0;
    loop {
        i = skip_space(&chars, i);
        if i >= chars.len() {
            return None;
        }
        if chars[i] == '#' {
            // An attribute, inner or outer: skip its balanced brackets.
            let mut depth = 0;
            while i < chars.len() {
                match chars[i] {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            continue;
        }
        let start = i;
        let end = chars[i..]
            .iter()
            .position(|&c| c == ';' || c == '{')
            .map_or(chars.len(), |p| i + p);
        let head: String = chars[start..end].iter().collect();
        let words: Vec<&str> = head.split_whitespace().collect();
        let visibility = usize::from(words.first().is_some_and(|w| w.starts_with("pub")));
        let item = match (words.get(visibility), chars.get(end)) {
            (Some(&"mod"), Some(';')) => true,
            (Some(&"use"), _) if visibility == 1 => true,
            _ => false,
        };
        if !item {
            return Some((line_of(start), head.trim().to_owned()));
        }
        // A `use` may hold a `{...}` group; the item ends at its `;`.
        i = chars[end..]
            .iter()
            .position(|&c| c == ';')
            .map_or(chars.len(), |p| end + p + 1);
    }
}

#[test]
fn every_mod_rs_only_declares_modules_and_reexports() {
    let mut offenders = Vec::new();
    for source in sources() {
        if !source.path.ends_with("/mod.rs") {
            continue;
        }
        if let Some((line, item)) = first_code_item(&source.code) {
            offenders.push(format!("{}:{line}: `{item}`", source.path));
        }
    }
    assert!(
        offenders.is_empty(),
        "a `mod.rs` holds more than module declarations and re-exports \
         (move the code into a file of its own):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_scanner_sees_code_only() {
    let code = blank_comments_and_literals(
        "// crate::a\n/// crate::b\n/* crate::c /* crate::d */ */ let s = \"crate::e\";\n\
         let r = r#\"crate::f\"#; let c = '\"'; fn f<'a>(x: &'a str) { crate::g::h(); }\n\
         use crate::{i, j::{k, l}, m::n};\n",
    );
    let names: Vec<String> = crate_paths(&code).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["g", "i", "j", "m"]);
    assert_eq!(code.lines().count(), 5);
}

#[test]
fn the_mod_rs_check_tells_declarations_from_code() {
    let clean = "#![doc = \"x\"]\npub mod a;\nmod b;\n#[cfg(test)]\nmod c;\npub use a::{X, Y};\npub(crate) use b::Z;\n";
    assert_eq!(first_code_item(clean), None);
    assert_eq!(
        first_code_item("pub mod a;\n\nuse std::io;\n"),
        Some((3, "use std::io".to_owned()))
    );
    assert_eq!(
        first_code_item("pub mod a;\nfn f() {}\n"),
        Some((2, "fn f()".to_owned()))
    );
    assert_eq!(
        first_code_item("mod tests {}\n"),
        Some((1, "mod tests".to_owned()))
    );
}

/// Lists every dependency between top-level modules, with where it is first
/// seen: `cargo test --test layers -- --ignored --nocapture`.
#[test]
#[ignore = "a listing for people, not a check"]
fn print_dependencies() {
    for ((from, to), at) in dependencies(&sources()) {
        println!("{from} -> {to}: {at}");
    }
}
