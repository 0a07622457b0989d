//! Text to raw plan tree, for TOML and JSON alike.
//!
//! One set of hand-written serde visitors serves both formats, so the same
//! field names, aliases and value shapes are accepted everywhere. The visitors
//! keep unknown fields (DESIGN §2.1) and note, without stopping, fields that
//! look like misspellings of known ones; a value of the wrong type stops the
//! parse with the parser's own position. Nothing here knows about ids or
//! dependencies beyond their text: that is [`crate::plan::build`]'s job.
//!
//! The visitors are the hot path of `orch plan check` on large plans: they
//! allocate only for values they keep and never buffer a subtree.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::plan::diag::{Diagnostic, Locus, Problem};
use crate::plan::model::Kind;
use crate::text::near_miss;

/// The syntax a plan is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// Picks the format from the extension, else from the first character.
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            _ if text.trim_start().starts_with('{') => Format::Json,
            _ => Format::Toml,
        }
    }
}

/// Fields an item may have, with the aliases hacky-hack style plans use.
pub(crate) const ITEM_FIELDS: &[&str] = &[
    "id",
    "title",
    "description",
    "priority",
    "depends_on",
    "dependencies",
    "resources",
    "agent",
    "executor",
    "acceptance",
    "context",
    "expect_changes",
    "status",
    "type",
    "phase",
    "phases",
    "milestone",
    "milestones",
    "task",
    "tasks",
    "subtask",
    "subtasks",
];

/// Top-level fields of a plan.
const PLAN_FIELDS: &[&str] = &[
    "title",
    "phase",
    "phases",
    "milestone",
    "milestones",
    "task",
    "tasks",
    "subtask",
    "subtasks",
    "backlog",
];

/// Returns the level a list key introduces (`milestones` holds milestones).
fn level_key(key: &str) -> Option<(&'static str, Kind)> {
    Some(match key {
        "phase" => ("phase", Kind::Phase),
        "phases" => ("phases", Kind::Phase),
        "milestone" => ("milestone", Kind::Milestone),
        "milestones" => ("milestones", Kind::Milestone),
        "task" => ("task", Kind::Task),
        "tasks" => ("tasks", Kind::Task),
        "subtask" => ("subtask", Kind::Subtask),
        "subtasks" => ("subtasks", Kind::Subtask),
        _ => return None,
    })
}

/// A problem attached to one key of a raw item, located later by path.
#[derive(Debug, Clone)]
pub(crate) struct KeyProblem {
    pub key: String,
    pub what: KeyFault,
}

#[derive(Debug, Clone)]
pub(crate) enum KeyFault {
    Misspelled(&'static str),
    Duplicate,
    BadPriority(String),
}

/// A priority as written: a level or a name.
#[derive(Debug, Clone)]
pub(crate) enum RawPriority {
    Level(i64),
    Name(String),
}

/// A dependency as written; borrowed from the text when it has no escapes.
#[derive(Debug, Clone)]
pub(crate) struct RawDep<'a> {
    pub id: Cow<'a, str>,
    pub required: bool,
}

/// A child list: the key it was written under, its level and its items.
#[derive(Debug, Default)]
pub(crate) struct RawChildren<'a> {
    pub key: &'static str,
    pub kind: Option<Kind>,
    pub items: Vec<RawItem<'a>>,
}

/// An item as written, before ids and dependencies are checked.
#[derive(Debug, Default)]
pub(crate) struct RawItem<'a> {
    pub id: Option<String>,
    pub title: Option<String>,
    pub priority: Option<RawPriority>,
    pub deps: Option<(&'static str, Vec<RawDep<'a>>)>,
    pub status: Option<String>,
    pub expect_changes: Option<bool>,
    pub type_name: Option<String>,
    pub children: Vec<RawChildren<'a>>,
    /// The less common fields, boxed so that large plans stay small.
    pub rare: Option<Box<RawRare>>,
}

/// Fields most items of large generated plans leave out.
#[derive(Debug, Default)]
pub(crate) struct RawRare {
    pub description: Option<String>,
    pub resources: Option<Vec<(String, u32)>>,
    pub agent: Option<String>,
    pub executor: Option<crate::plan::model::ExecutorChoice>,
    pub acceptance: Option<Vec<String>>,
    pub context: Option<Vec<String>>,
    pub extra: Map<String, Value>,
    pub problems: Vec<KeyProblem>,
}

impl RawItem<'_> {
    fn rare(&mut self) -> &mut RawRare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Returns the problems noted while reading the item.
    pub fn problems(&self) -> &[KeyProblem] {
        self.rare
            .as_ref()
            .map(|r| r.problems.as_slice())
            .unwrap_or_default()
    }
}

/// A whole plan as written.
#[derive(Debug, Default)]
pub(crate) struct RawPlan<'a> {
    pub title: Option<String>,
    pub lists: Vec<RawChildren<'a>>,
    pub extra: Map<String, Value>,
    pub problems: Vec<KeyProblem>,
}

/// Parses plan text; a syntax error comes back as a located diagnostic.
pub(crate) fn parse(text: &str, format: Format) -> Result<RawPlan<'_>, Box<Diagnostic>> {
    if text.trim().is_empty() {
        return Err(Box::new(Diagnostic::new(
            Problem::NoTasks {
                hint: Some("the file is empty"),
            },
            Locus::File,
        )));
    }
    match format {
        Format::Json => serde_json::from_str::<RawPlan>(text).map_err(|e| {
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
            let location = crate::plan::diag::Location {
                line: e.line() as u32,
                column: e.column().max(1) as u32,
            };
            Box::new(Diagnostic::new(
                Problem::Syntax { message },
                Locus::At(location),
            ))
        }),
        Format::Toml => toml::from_str::<RawPlan>(text).map_err(|e| {
            let message = e.message().trim_end().to_owned();
            let locus = e
                .span()
                .map(|span| Locus::Offset(span.start))
                .unwrap_or(Locus::File);
            Box::new(Diagnostic::new(Problem::Syntax { message }, locus))
        }),
    }
}

/// A field name recognised while reading a map.
enum Field {
    Id,
    Title,
    Description,
    Priority,
    Deps(&'static str),
    Resources,
    Agent,
    Executor,
    Acceptance,
    Context,
    ExpectChanges,
    Status,
    Type,
    Children(&'static str, Kind),
    Backlog,
    Other(String),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
                Ok(match key {
                    "id" => Field::Id,
                    "title" => Field::Title,
                    "description" => Field::Description,
                    "priority" => Field::Priority,
                    "depends_on" => Field::Deps("depends_on"),
                    "dependencies" => Field::Deps("dependencies"),
                    "resources" => Field::Resources,
                    "agent" => Field::Agent,
                    "executor" => Field::Executor,
                    "acceptance" => Field::Acceptance,
                    "context" => Field::Context,
                    "expect_changes" => Field::ExpectChanges,
                    "status" => Field::Status,
                    "type" => Field::Type,
                    "backlog" => Field::Backlog,
                    other => match level_key(other) {
                        Some((key, kind)) => Field::Children(key, kind),
                        None => Field::Other(other.to_owned()),
                    },
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

/// `executor = "slurm"` or `executor = { kind = "slurm", cpus = 8 }`.
struct RawExecutor(crate::plan::model::ExecutorChoice);

impl<'de> Deserialize<'de> for RawExecutor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use crate::plan::model::{ExecutorChoice, ExecutorKind};
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Kind(String),
            Table(ExecutorChoice),
        }
        match Raw::deserialize(d)? {
            Raw::Kind(name) => {
                let kind =
                    ExecutorKind::deserialize(de::value::StrDeserializer::<D::Error>::new(&name))?;
                Ok(RawExecutor(ExecutorChoice {
                    kind: Some(kind),
                    ..ExecutorChoice::default()
                }))
            }
            Raw::Table(choice) => Ok(RawExecutor(choice)),
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &str, problems: &mut Vec<KeyProblem>) {
    if slot.is_some() {
        problems.push(KeyProblem {
            key: key.to_owned(),
            what: KeyFault::Duplicate,
        });
    }
    *slot = Some(value);
}

fn keep_unknown(
    name: String,
    value: Value,
    known: &[&'static str],
    extra: &mut Map<String, Value>,
    problems: &mut Vec<KeyProblem>,
) {
    if let Some(suggestion) = near_miss(&name, known.iter().copied()) {
        problems.push(KeyProblem {
            key: name.clone(),
            what: KeyFault::Misspelled(suggestion),
        });
    }
    extra.insert(name, normalize_toml_value(value));
}

/// Turns TOML datetimes (which serde sees as a private wrapper table) into strings.
fn normalize_toml_value(value: Value) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("$__toml_private_datetime") => map
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalize_toml_value(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_toml_value).collect()),
        other => other,
    }
}

impl<'de> Deserialize<'de> for RawPlan<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PlanVisitor;
        impl<'de> Visitor<'de> for PlanVisitor {
            type Value = RawPlan<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a plan (a table with `phase`, `milestone` or `task` lists)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPlan<'de>, A::Error> {
                let mut plan = RawPlan::default();
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Title => {
                            let title = map.next_value()?;
                            set_once(&mut plan.title, title, "title", &mut plan.problems);
                        }
                        Field::Children(key, kind) => plan.lists.push(RawChildren {
                            key,
                            kind: Some(kind),
                            items: map.next_value()?,
                        }),
                        Field::Backlog => plan.lists.push(RawChildren {
                            key: "backlog",
                            kind: None,
                            items: map.next_value()?,
                        }),
                        Field::Other(name) => {
                            let value = map.next_value()?;
                            keep_unknown(
                                name,
                                value,
                                PLAN_FIELDS,
                                &mut plan.extra,
                                &mut plan.problems,
                            );
                        }
                        other => {
                            let name = other.name().to_owned();
                            let value = map.next_value()?;
                            plan.extra.insert(name, normalize_toml_value(value));
                        }
                    }
                }
                Ok(plan)
            }
        }
        d.deserialize_map(PlanVisitor)
    }
}

impl Field {
    fn name(&self) -> &str {
        match self {
            Field::Id => "id",
            Field::Title => "title",
            Field::Description => "description",
            Field::Priority => "priority",
            Field::Deps(key) | Field::Children(key, _) => key,
            Field::Resources => "resources",
            Field::Agent => "agent",
            Field::Executor => "executor",
            Field::Acceptance => "acceptance",
            Field::Context => "context",
            Field::ExpectChanges => "expect_changes",
            Field::Status => "status",
            Field::Type => "type",
            Field::Backlog => "backlog",
            Field::Other(name) => name,
        }
    }
}

impl<'de> Deserialize<'de> for RawItem<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = RawItem<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table describing a plan item")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawItem<'de>, A::Error> {
        let mut item = RawItem::default();
        let mut problems = Vec::new();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Id => set_once(
                    &mut item.id,
                    map.next_value::<Text>()?.0,
                    "id",
                    &mut problems,
                ),
                Field::Title => {
                    set_once(&mut item.title, map.next_value()?, "title", &mut problems)
                }
                Field::Description => {
                    let value = map.next_value()?;
                    set_once(
                        &mut item.rare().description,
                        value,
                        "description",
                        &mut problems,
                    )
                }
                Field::Priority => {
                    let value = map.next_value()?;
                    set_once(&mut item.priority, value, "priority", &mut problems)
                }
                Field::Deps(key) => {
                    let deps = map.next_value::<Deps>()?.0;
                    if item.deps.is_some() {
                        problems.push(KeyProblem {
                            key: key.to_owned(),
                            what: KeyFault::Duplicate,
                        });
                    }
                    item.deps = Some((key, deps));
                }
                Field::Resources => {
                    let resources: BTreeMap<String, u32> = map.next_value()?;
                    let resources = resources.into_iter().collect();
                    set_once(
                        &mut item.rare().resources,
                        resources,
                        "resources",
                        &mut problems,
                    )
                }
                Field::Agent => {
                    let value = map.next_value()?;
                    set_once(&mut item.rare().agent, value, "agent", &mut problems)
                }
                Field::Executor => {
                    let choice = map.next_value::<RawExecutor>()?.0;
                    set_once(&mut item.rare().executor, choice, "executor", &mut problems)
                }
                Field::Acceptance => {
                    let list = map.next_value::<StringList>()?.0;
                    set_once(
                        &mut item.rare().acceptance,
                        list,
                        "acceptance",
                        &mut problems,
                    )
                }
                Field::Context => {
                    let list = map.next_value::<StringList>()?.0;
                    set_once(&mut item.rare().context, list, "context", &mut problems)
                }
                Field::ExpectChanges => {
                    let value = map.next_value()?;
                    set_once(
                        &mut item.expect_changes,
                        value,
                        "expect_changes",
                        &mut problems,
                    )
                }
                Field::Status => {
                    let status = map.next_value::<Text>()?.0;
                    set_once(&mut item.status, status, "status", &mut problems)
                }
                Field::Type => {
                    let name: String = map.next_value()?;
                    item.rare()
                        .extra
                        .insert("type".to_owned(), Value::String(name.clone()));
                    item.type_name = Some(name);
                }
                Field::Children(key, kind) => item.children.push(RawChildren {
                    key,
                    kind: Some(kind),
                    items: map.next_value()?,
                }),
                Field::Backlog | Field::Other(_) => {
                    let name = match field {
                        Field::Other(name) => name,
                        _ => "backlog".to_owned(),
                    };
                    let value = map.next_value()?;
                    keep_unknown(
                        name,
                        value,
                        ITEM_FIELDS,
                        &mut item.rare().extra,
                        &mut problems,
                    );
                }
            }
        }
        match &item.priority {
            Some(RawPriority::Name(name))
                if crate::plan::model::Priority::from_name(name).is_none() =>
            {
                problems.push(KeyProblem {
                    key: "priority".to_owned(),
                    what: KeyFault::BadPriority(format!("`{name}`")),
                });
            }
            Some(RawPriority::Level(level)) if !(0..=3).contains(level) => {
                problems.push(KeyProblem {
                    key: "priority".to_owned(),
                    what: KeyFault::BadPriority(level.to_string()),
                });
            }
            _ => {}
        }
        if !problems.is_empty() {
            item.rare().problems = problems;
        }
        Ok(item)
    }
}

/// A string that may also be written as an integer (ids, statuses).
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for RawPriority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PriorityVisitor;
        impl Visitor<'_> for PriorityVisitor {
            type Value = RawPriority;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a priority: 0 to 3, or critical, high, medium or low")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPriority, E> {
                Ok(RawPriority::Level(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawPriority, E> {
                Ok(RawPriority::Level(i64::try_from(v).unwrap_or(i64::MAX)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPriority, E> {
                Ok(RawPriority::Name(v.to_owned()))
            }
        }
        d.deserialize_any(PriorityVisitor)
    }
}

/// A list of strings, where a single string is a list of one.
struct StringList(Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StringList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(s) = seq.next_element()? {
                    out.push(s);
                }
                Ok(StringList(out))
            }
        }
        d.deserialize_any(ListVisitor)
    }
}

/// A dependency list: strings, integers or `{ id, required }` tables.
struct Deps<'a>(Vec<RawDep<'a>>);

impl<'de> Deserialize<'de> for Deps<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DepsVisitor;
        impl<'de> Visitor<'de> for DepsVisitor {
            type Value = Deps<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of dependencies")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Deps<'de>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(dep) = seq.next_element_seed(DepSeed)? {
                    out.push(dep);
                }
                Ok(Deps(out))
            }
        }
        d.deserialize_seq(DepsVisitor)
    }
}

struct DepSeed;

impl<'de> DeserializeSeed<'de> for DepSeed {
    type Value = RawDep<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawDep<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

fn dep(id: Cow<'_, str>) -> RawDep<'_> {
    RawDep { id, required: true }
}

impl<'de> Visitor<'de> for DepSeed {
    type Value = RawDep<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dependency: an id, or a table with `id` and `required`")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<RawDep<'de>, E> {
        Ok(dep(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDep<'de>, E> {
        Ok(dep(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<RawDep<'de>, E> {
        Ok(dep(Cow::Owned(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDep<'de>, E> {
        Ok(dep(Cow::Owned(v.to_string())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDep<'de>, E> {
        Ok(dep(Cow::Owned(v.to_string())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDep<'de>, A::Error> {
        let mut id = None;
        let mut required = true;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "id" => id = Some(map.next_value::<Text>()?.0),
                "required" => required = map.next_value()?,
                other => {
                    let hint = near_miss(other, ["id", "required"])
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    return Err(de::Error::custom(format!(
                        "unknown field `{other}` in a dependency{hint}; expected `id` or `required`"
                    )));
                }
            }
        }
        let id = id.ok_or_else(|| de::Error::custom("a dependency table needs an `id`"))?;
        Ok(RawDep {
            id: Cow::Owned(id),
            required,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_give_the_same_tree() {
        let toml = r#"
            title = "t"
            [[task]]
            id = "T1"
            title = "one"
            priority = "high"
            depends_on = ["T0", { id = "T2", required = false }]
            story_points = 3
        "#;
        let json = r#"{"title":"t","tasks":[{"id":"T1","title":"one","priority":"high",
            "dependencies":["T0",{"id":"T2","required":false}],"story_points":3}]}"#;
        for (text, format) in [(toml, Format::Toml), (json, Format::Json)] {
            let plan = parse(text, format).unwrap();
            assert_eq!(plan.title.as_deref(), Some("t"));
            let item = &plan.lists[0].items[0];
            assert_eq!(item.id.as_deref(), Some("T1"));
            let (_, deps) = item.deps.as_ref().unwrap();
            assert_eq!(deps.len(), 2);
            assert!(deps[0].required && !deps[1].required);
            assert_eq!(
                item.rare.as_ref().unwrap().extra["story_points"],
                Value::from(3)
            );
            assert!(item.problems().is_empty());
        }
    }

    #[test]
    fn misspelled_fields_are_noted_and_kept_going() {
        let plan = parse(
            r#"[[task]]
id = "T1"
depnds_on = ["T0"]
tilte = "x"
"#,
            Format::Toml,
        )
        .unwrap();
        let item = &plan.lists[0].items[0];
        let keys: Vec<_> = item.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["depnds_on", "tilte"]);
    }

    #[test]
    fn detects_format_by_extension_then_content() {
        assert_eq!(Format::detect(Path::new("a.json"), "x"), Format::Json);
        assert_eq!(Format::detect(Path::new("a.toml"), "{"), Format::Toml);
        assert_eq!(
            Format::detect(Path::new("plan"), "  {\"tasks\":[]}"),
            Format::Json
        );
        assert_eq!(Format::detect(Path::new("plan"), "[[task]]"), Format::Toml);
    }
}
