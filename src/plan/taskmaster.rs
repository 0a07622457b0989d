//! `orch plan import taskmaster`: a Taskmaster AI `tasks.json` to a TOML plan.
//!
//! Conversion (DESIGN §2.1): task `21` becomes `T21` and its subtask `4`
//! `T21.S4`; inside a subtask a bare integer dependency is a sibling and
//! `"21.4"` a full subtask id; priority critical/high/medium/low becomes
//! 0/1/2/3; `details` joins `description`, `testStrategy` becomes the extra
//! field `test_strategy`, `acceptanceCriteria` becomes `acceptance`; the
//! status is copied (the plan maps done-like and dropped values). Ids and
//! values may be numbers or strings. Other fields are kept as extra fields,
//! prefixed `taskmaster_` where orch gives their name a meaning.
//!
//! Layouts: tagged (`{"master":{"tasks":[…]}}`, pick with `--tag`, default
//! `master`, or the only tag) and legacy (`{"tasks":[…]}`). Pure: text in,
//! text out.

use std::fmt::Write;
use std::path::PathBuf;

use serde_json::{Map, Value};
use toml_writer::ToTomlKey;

use crate::plan::model::check_local_id;
use crate::plan::parse::ITEM_FIELDS;
use crate::plan::{Location, Priority};

/// A Taskmaster file that cannot be converted.
#[derive(Debug, thiserror::Error)]
pub enum TaskmasterError {
    #[error("cannot parse the Taskmaster file at {location}: {message}")]
    Parse { location: Location, message: String },
    #[error(
        "this is not a Taskmaster file: expected `{{\"tasks\": [...]}}` or tags like `{{\"master\": {{\"tasks\": [...]}}}}`"
    )]
    NotTaskmaster,
    #[error("tag `{tag}` is not in the file; it has {}", list(.available))]
    UnknownTag { tag: String, available: Vec<String> },
    #[error("`--tag {tag}` was given, but the file uses the legacy layout without tags")]
    NoTags { tag: String },
    #[error("the file has several tags ({}); pick one with `--tag`", list(.available))]
    AmbiguousTag { available: Vec<String> },
    #[error("{what} has no usable id (found {found})")]
    BadId { what: String, found: String },
}

/// A [`TaskmasterError`] in the file it was found in, named as the user gave it.
///
/// The file goes in front like a plan diagnostic's position (`tasks.json: …`);
/// `error` is the error itself, not a cause, so it is shown once.
#[derive(Debug, thiserror::Error)]
#[error("`{}`: {error}", path.display())]
pub struct InFile {
    pub path: PathBuf,
    pub error: TaskmasterError,
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The converted plan and what it holds.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    /// The tag read, for tagged files.
    pub tag: Option<String>,
    pub tasks: usize,
    pub subtasks: usize,
}

const TASK_FIELDS: &[&str] = &[
    "id",
    "title",
    "description",
    "details",
    "testStrategy",
    "acceptanceCriteria",
    "status",
    "dependencies",
    "priority",
    "subtasks",
];

/// Converts Taskmaster JSON to plan TOML.
pub fn convert(text: &str, tag: Option<&str>) -> Result<Imported, TaskmasterError> {
    let root: Value = serde_json::from_str(text).map_err(|e| TaskmasterError::Parse {
        location: Location {
            line: e.line() as u32,
            column: e.column().max(1) as u32,
        },
        message: {
            let m = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            m.strip_suffix(&suffix).unwrap_or(&m).to_owned()
        },
    })?;
    let Value::Object(top) = root else {
        return Err(TaskmasterError::NotTaskmaster);
    };
    let (tasks, tag_used, holder) = pick_tasks(&top, tag)?;
    let project = holder
        .get("metadata")
        .and_then(|m| m.get("projectName").or_else(|| m.get("description")))
        .and_then(Value::as_str);
    let title = match (project, &tag_used) {
        (Some(name), _) => name.to_owned(),
        (None, Some(tag)) => format!("Taskmaster tag {tag}"),
        (None, None) => "Taskmaster tasks".to_owned(),
    };
    let mut out = String::new();
    let source = match &tag_used {
        // The comment line must stay one line, whatever the tag holds.
        Some(tag) if tag.chars().any(char::is_control) => format!("tag {tag:?}"),
        Some(tag) => format!("tag `{tag}`"),
        None => "a legacy file".to_owned(),
    };
    let _ = writeln!(
        out,
        "# Imported from Taskmaster ({source}) by `orch plan import taskmaster`."
    );
    let _ = writeln!(out, "title = {}", toml_string(&title));
    let mut subtask_count = 0;
    for (i, task) in tasks.iter().enumerate() {
        let Value::Object(task) = task else {
            return Err(TaskmasterError::BadId {
                what: format!("task #{}", i + 1),
                found: "something that is not an object".to_owned(),
            });
        };
        let local = id_text(task.get("id"))
            .filter(|id| check_local_id(id).is_ok())
            .ok_or_else(|| TaskmasterError::BadId {
                what: format!("task #{}", i + 1),
                found: describe(task.get("id")),
            })?;
        out.push_str("\n[[task]]\n");
        let _ = writeln!(out, "id = {}", toml_string(&format!("T{local}")));
        write_common(&mut out, task);
        let deps: Vec<String> = array(task.get("dependencies"))
            .iter()
            .filter_map(|d| id_text(Some(d)))
            .map(|d| task_dependency(&d))
            .collect();
        write_list(&mut out, "depends_on", &deps);
        write_extras(&mut out, task);
        for (k, sub) in array(task.get("subtasks")).iter().enumerate() {
            let Value::Object(sub) = sub else { continue };
            let sub_local = id_text(sub.get("id"))
                .map(|id| id.rsplit('.').next().unwrap_or(&id).to_owned())
                .filter(|id| check_local_id(id).is_ok())
                .ok_or_else(|| TaskmasterError::BadId {
                    what: format!("subtask #{} of task `{local}`", k + 1),
                    found: describe(sub.get("id")),
                })?;
            subtask_count += 1;
            out.push_str("\n[[task.subtask]]\n");
            let _ = writeln!(out, "id = {}", toml_string(&format!("S{sub_local}")));
            write_common(&mut out, sub);
            let deps: Vec<String> = array(sub.get("dependencies"))
                .iter()
                .filter_map(|d| id_text(Some(d)))
                .map(|d| subtask_dependency(&d))
                .collect();
            write_list(&mut out, "depends_on", &deps);
            write_extras(&mut out, sub);
        }
    }
    Ok(Imported {
        toml: out,
        tag: tag_used,
        tasks: tasks.len(),
        subtasks: subtask_count,
    })
}

type Picked<'a> = (&'a Vec<Value>, Option<String>, &'a Map<String, Value>);

fn pick_tasks<'a>(
    top: &'a Map<String, Value>,
    tag: Option<&str>,
) -> Result<Picked<'a>, TaskmasterError> {
    if let Some(Value::Array(tasks)) = top.get("tasks") {
        return match tag {
            Some(tag) => Err(TaskmasterError::NoTags {
                tag: tag.to_owned(),
            }),
            None => Ok((tasks, None, top)),
        };
    }
    let tagged: Vec<(&String, &Map<String, Value>, &Vec<Value>)> = top
        .iter()
        .filter_map(|(name, v)| {
            let holder = v.as_object()?;
            let tasks = holder.get("tasks")?.as_array()?;
            Some((name, holder, tasks))
        })
        .collect();
    if tagged.is_empty() {
        return Err(TaskmasterError::NotTaskmaster);
    }
    let available: Vec<String> = tagged.iter().map(|(n, _, _)| (*n).clone()).collect();
    let wanted = match tag {
        Some(tag) => tag.to_owned(),
        None if available.iter().any(|n| n == "master") => "master".to_owned(),
        None if tagged.len() == 1 => available[0].clone(),
        None => return Err(TaskmasterError::AmbiguousTag { available }),
    };
    tagged
        .iter()
        .find(|(n, _, _)| **n == wanted)
        .map(|(n, holder, tasks)| (*tasks, Some((*n).clone()), *holder))
        .ok_or(TaskmasterError::UnknownTag {
            tag: wanted,
            available,
        })
}

/// `21` or `"21"` is task `T21`; `"21.4"` is subtask `T21.S4`.
fn task_dependency(dep: &str) -> String {
    match dep.split_once('.') {
        Some((task, sub)) => format!("T{task}.S{sub}"),
        None => format!("T{dep}"),
    }
}

/// Inside a subtask, `3` is sibling `S3`; `"21.4"` is `T21.S4`.
fn subtask_dependency(dep: &str) -> String {
    match dep.split_once('.') {
        Some((task, sub)) => format!("T{task}.S{sub}"),
        None => format!("S{dep}"),
    }
}

fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn describe(value: Option<&Value>) -> String {
    match value {
        None => "no `id`".to_owned(),
        Some(v) => format!("`{v}`"),
    }
}

fn array(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn text_of<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn write_common(out: &mut String, item: &Map<String, Value>) {
    if let Some(title) = text_of(item, "title") {
        let _ = writeln!(out, "title = {}", toml_string(title));
    }
    let description = match (text_of(item, "description"), text_of(item, "details")) {
        (Some(d), Some(details)) => Some(format!("{d}\n\n{details}")),
        (Some(d), None) => Some(d.to_owned()),
        (None, Some(details)) => Some(details.to_owned()),
        (None, None) => None,
    };
    if let Some(description) = description {
        let _ = writeln!(out, "description = {}", toml_string(&description));
    }
    if let Some(priority) = text_of(item, "priority").and_then(Priority::from_name) {
        let _ = writeln!(out, "priority = {}", priority.level());
    }
    if let Some(status) = id_text(item.get("status")) {
        let _ = writeln!(out, "status = {}", toml_string(&status));
    }
    let acceptance: Vec<String> = match item.get("acceptanceCriteria") {
        Some(Value::String(text)) => text
            .lines()
            .map(|l| {
                l.trim()
                    .trim_start_matches(['-', '*', '•'])
                    .trim()
                    .to_owned()
            })
            .filter(|l| !l.is_empty())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    write_list(out, "acceptance", &acceptance);
    if let Some(strategy) = text_of(item, "testStrategy") {
        let _ = writeln!(out, "test_strategy = {}", toml_string(strategy));
    }
}

fn write_list(out: &mut String, key: &str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    let items: Vec<String> = values.iter().map(|v| toml_string(v)).collect();
    let _ = writeln!(out, "{key} = [{}]", items.join(", "));
}

/// Writes fields Taskmaster has and orch does not, under their own names;
/// a name orch gives a meaning to (`depends_on`, `agent`, `subtask`, ...)
/// or writes itself (`test_strategy`) gets a `taskmaster_` prefix, so a
/// stray field can neither clash with what the import writes nor steer the
/// run.
fn write_extras(out: &mut String, item: &Map<String, Value>) {
    let taken = |name: &str| {
        ITEM_FIELDS.contains(&name) || name == "test_strategy" || item.contains_key(name)
    };
    for (key, value) in item {
        if TASK_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let Some(value) = to_toml(value) else {
            continue;
        };
        let mut name = key.clone();
        if ITEM_FIELDS.contains(&key.as_str()) || key == "test_strategy" {
            name = format!("taskmaster_{key}");
            while taken(&name) {
                name.insert_str(0, "taskmaster_");
            }
        }
        let _ = writeln!(out, "{} = {value}", name.to_toml_key());
    }
}

fn to_toml(value: &Value) -> Option<toml::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => toml::Value::Array(items.iter().filter_map(to_toml).collect()),
        Value::Object(map) => toml::Value::Table(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect(),
        ),
    })
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_follow_the_contract() {
        assert_eq!(task_dependency("21"), "T21");
        assert_eq!(task_dependency("21.4"), "T21.S4");
        assert_eq!(subtask_dependency("3"), "S3");
        assert_eq!(subtask_dependency("21.4"), "T21.S4");
    }

    #[test]
    fn picks_master_then_the_only_tag() {
        let tagged = r#"{"feature":{"tasks":[{"id":1,"title":"x"}]},"master":{"tasks":[]}}"#;
        assert_eq!(
            convert(tagged, None).unwrap().tag.as_deref(),
            Some("master")
        );
        assert_eq!(convert(tagged, Some("feature")).unwrap().tasks, 1);
        let err = convert(tagged, Some("nope")).unwrap_err().to_string();
        assert_eq!(
            err,
            "tag `nope` is not in the file; it has `feature`, `master`"
        );
        let two = r#"{"a":{"tasks":[]},"b":{"tasks":[]}}"#;
        assert!(matches!(
            convert(two, None),
            Err(TaskmasterError::AmbiguousTag { .. })
        ));
        assert!(matches!(
            convert("{}", None),
            Err(TaskmasterError::NotTaskmaster)
        ));
    }

    /// Found by the `taskmaster` fuzz target: an extra field named like one
    /// the import writes (`depends_on`) made a duplicate key, so the import
    /// wrote TOML that did not parse.
    #[test]
    fn extra_fields_named_like_plan_fields_are_prefixed() {
        let text = r#"{"tasks":[{"id":1,"title":"a","testStrategy":"t","depends_on":3,
            "test_strategy":"u","agent":"rm -rf /","taskmaster_agent":1,"subtask":[1],"estimate":5},
            {"id":3,"title":"b"}]}"#;
        let imported = convert(text, None).unwrap();
        let plan = crate::plan::from_bytes(
            std::path::Path::new("plan.toml"),
            imported.toml.as_bytes(),
            &crate::plan::Rules::default(),
        )
        .unwrap();
        let t1 = plan.item(plan.lookup("T1").unwrap());
        assert!(t1.depends_on.is_empty());
        assert_eq!(t1.agent(), None);
        let extra = t1.extra().unwrap();
        let names: Vec<&str> = extra.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "estimate",
                "taskmaster_agent",
                "taskmaster_depends_on",
                "taskmaster_subtask",
                "taskmaster_taskmaster_agent",
                "taskmaster_test_strategy",
                "test_strategy"
            ]
        );
        assert_eq!(extra["test_strategy"], "t");
        assert_eq!(extra["taskmaster_test_strategy"], "u");
        assert_eq!(extra["taskmaster_agent"], 1);
        assert_eq!(extra["taskmaster_taskmaster_agent"], "rm -rf /");
    }

    /// Found by the `taskmaster` fuzz target: a tag or field name holding a
    /// newline or carriage return broke out of the comment or the key.
    #[test]
    fn control_characters_in_tags_and_names_stay_inside_them() {
        let text = "{\"mast\\r\\ntitle = 1\": {\"tasks\": [{\"id\": 1, \"dep\\ndencies\": [1]}]}}";
        let imported = convert(text, None).unwrap();
        let table: toml::Table = imported.toml.parse().unwrap();
        assert_eq!(
            table["title"].as_str(),
            Some("Taskmaster tag mast\r\ntitle = 1")
        );
        assert!(imported.toml.starts_with(
            "# Imported from Taskmaster (tag \"mast\\r\\ntitle = 1\") by `orch plan import taskmaster`.\n"
        ));
        assert_eq!(
            table["task"][0]["dep\ndencies"].as_array().unwrap().len(),
            1
        );
    }
}
