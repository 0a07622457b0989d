//! Turns structural paths into line and column, only when errors are reported.
//!
//! The fast parse of [`crate::plan::parse`] keeps no spans. When a plan has
//! problems, the text is read once more with a span-keeping reader (toml's
//! `DeTable` for TOML, borrowed `RawValue` slices for JSON) and each
//! [`Locus::Path`] is looked up. JSON paths that share a prefix are resolved
//! together, so the cost is one pass per distinct object on the way, not one
//! pass of the whole file per error.

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use toml::de::{DeTable, DeValue};

use crate::plan::diag::{Diagnostic, Location, Locus, PathSeg};
use crate::plan::parse::Format;

/// Maps byte offsets to 1-based lines and columns.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { text, starts }
    }

    /// Returns the location of a byte offset (clamped to the text).
    pub fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|start| *start <= offset) - 1;
        let start = self.starts[line];
        let column = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        Location {
            line: line as u32 + 1,
            column: column as u32 + 1,
        }
    }
}

/// Fills in `location` and `related_location` of every diagnostic.
pub(crate) fn resolve(text: &str, format: Format, diagnostics: &mut [Diagnostic]) {
    let lines = LineIndex::new(text);
    let mut paths: Vec<Vec<PathSeg>> = Vec::new();
    let mut slots: Vec<(usize, bool)> = Vec::new();
    for (i, d) in diagnostics.iter_mut().enumerate() {
        d.location = direct(&lines, &d.locus);
        if let Locus::Path(path) = &d.locus {
            paths.push(path.clone());
            slots.push((i, false));
        }
        if let Some(related) = &d.related {
            d.related_location = direct(&lines, related);
            if let Locus::Path(path) = related {
                paths.push(path.clone());
                slots.push((i, true));
            }
        }
    }
    if paths.is_empty() {
        return;
    }
    let offsets = match format {
        Format::Toml => toml_offsets(text, &paths),
        Format::Json => json_offsets(text, &paths),
    };
    for ((i, related), offset) in slots.into_iter().zip(offsets) {
        let location = offset.map(|o| lines.location(o));
        if related {
            diagnostics[i].related_location = location;
        } else {
            diagnostics[i].location = location;
        }
    }
}

fn direct(lines: &LineIndex<'_>, locus: &Locus) -> Option<Location> {
    match locus {
        Locus::Offset(offset) => Some(lines.location(*offset)),
        Locus::At(location) => Some(*location),
        Locus::Path(_) | Locus::File => None,
    }
}

/// Looks up each path in the spanned TOML tree.
pub(crate) fn toml_offsets(text: &str, paths: &[Vec<PathSeg>]) -> Vec<Option<usize>> {
    let Ok(root) = DeTable::parse(text) else {
        return vec![None; paths.len()];
    };
    paths
        .iter()
        .map(|path| {
            let mut table = root.get_ref();
            let mut value: Option<&DeValue<'_>> = None;
            let mut offset = root.span().start;
            for (i, seg) in path.iter().enumerate() {
                let last = i + 1 == path.len();
                match seg {
                    PathSeg::Key(key) => {
                        let (k, v) = table.get_key_value(key.as_str())?;
                        offset = if last { k.span().start } else { v.span().start };
                        value = Some(v.get_ref());
                    }
                    PathSeg::Index(index) => {
                        let array = value?.as_array()?;
                        let element = array.get(*index)?;
                        offset = element.span().start;
                        value = Some(element.get_ref());
                    }
                }
                if let Some(DeValue::Table(t)) = value {
                    table = t;
                }
            }
            Some(offset)
        })
        .collect()
}

/// Looks up each path in the JSON text, resolving shared prefixes once.
pub(crate) fn json_offsets(text: &str, paths: &[Vec<PathSeg>]) -> Vec<Option<usize>> {
    let mut out = vec![None; paths.len()];
    let Ok(root) = serde_json::from_str::<&RawValue>(text) else {
        return out;
    };
    let wanted: Vec<(usize, &[PathSeg])> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.as_slice()))
        .collect();
    json_descend(text, root, wanted, &mut out);
    out
}

fn offset_in(text: &str, part: &str) -> usize {
    part.as_ptr() as usize - text.as_ptr() as usize
}

fn json_descend(
    text: &str,
    value: &RawValue,
    wanted: Vec<(usize, &[PathSeg])>,
    out: &mut [Option<usize>],
) {
    let here = offset_in(text, value.get());
    let mut deeper: Vec<(usize, &[PathSeg])> = Vec::new();
    for (slot, path) in wanted {
        if path.is_empty() {
            out[slot] = Some(here);
        } else {
            deeper.push((slot, path));
        }
    }
    if deeper.is_empty() {
        return;
    }
    match deeper[0].1[0] {
        PathSeg::Key(_) => {
            let Ok(entries) = parse_object(value.get()) else {
                return;
            };
            let mut by_entry: Vec<Vec<(usize, &[PathSeg])>> = vec![Vec::new(); entries.len()];
            for (slot, path) in deeper {
                let PathSeg::Key(key) = &path[0] else {
                    continue;
                };
                let Some(pos) = entries.iter().rposition(|(k, _)| k == key) else {
                    continue;
                };
                if path.len() == 1 {
                    let value_at = offset_in(text, entries[pos].1.get());
                    out[slot] = Some(key_start(text, value_at).unwrap_or(value_at));
                } else {
                    by_entry[pos].push((slot, &path[1..]));
                }
            }
            for (entry, group) in entries.iter().zip(by_entry) {
                if !group.is_empty() {
                    json_descend(text, entry.1, group, out);
                }
            }
        }
        PathSeg::Index(_) => {
            let Ok(elements) = parse_array(value.get()) else {
                return;
            };
            let mut by_element: Vec<Vec<(usize, &[PathSeg])>> = vec![Vec::new(); elements.len()];
            for (slot, path) in deeper {
                let PathSeg::Index(index) = path[0] else {
                    continue;
                };
                if let Some(group) = by_element.get_mut(index) {
                    group.push((slot, &path[1..]));
                }
            }
            for (element, group) in elements.iter().zip(by_element) {
                if !group.is_empty() {
                    json_descend(text, element, group, out);
                }
            }
        }
    }
}

/// Finds the opening quote of the key whose value starts at `value_at`.
fn key_start(text: &str, value_at: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = value_at;
    let skip_ws = |mut i: usize| {
        while i > 0 && bytes[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        i
    };
    i = skip_ws(i);
    if i == 0 || bytes[i - 1] != b':' {
        return None;
    }
    i = skip_ws(i - 1);
    if i == 0 || bytes[i - 1] != b'"' {
        return None;
    }
    let mut j = i - 1;
    while j > 0 {
        j -= 1;
        if bytes[j] == b'"' {
            let backslashes = bytes[..j].iter().rev().take_while(|b| **b == b'\\').count();
            if backslashes % 2 == 0 {
                return Some(j);
            }
        }
    }
    None
}

type Entries<'a> = Vec<(String, &'a RawValue)>;

fn parse_object(text: &str) -> Result<Entries<'_>, serde_json::Error> {
    struct ObjectVisitor;
    impl<'de> Visitor<'de> for ObjectVisitor {
        type Value = Entries<'de>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(ObjectVisitor)
}

fn parse_array(text: &str) -> Result<Vec<&RawValue>, serde_json::Error> {
    struct ArrayVisitor;
    impl<'de> Visitor<'de> for ArrayVisitor {
        type Value = Vec<&'de RawValue>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<&'de RawValue>()? {
                out.push(v);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_seq(ArrayVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> PathSeg {
        PathSeg::Key(k.to_owned())
    }

    #[test]
    fn line_index_counts_characters() {
        let lines = LineIndex::new("ab\nçd\n");
        assert_eq!(lines.location(0), Location { line: 1, column: 1 });
        assert_eq!(lines.location(3), Location { line: 2, column: 1 });
        assert_eq!(lines.location(5), Location { line: 2, column: 2 });
    }

    #[test]
    fn json_paths_point_at_keys_and_elements() {
        let text = "{\"tasks\": [\n  {\"id\": \"T1\", \"depends_on\": [\"a\", \"b\"]}\n]}";
        let paths = vec![
            vec![key("tasks"), PathSeg::Index(0)],
            vec![key("tasks"), PathSeg::Index(0), key("depends_on")],
            vec![
                key("tasks"),
                PathSeg::Index(0),
                key("depends_on"),
                PathSeg::Index(1),
            ],
            vec![key("nope")],
        ];
        let offsets = json_offsets(text, &paths);
        let lines = LineIndex::new(text);
        let at = |o: Option<usize>| o.map(|o| lines.location(o));
        assert_eq!(at(offsets[0]), Some(Location { line: 2, column: 3 }));
        assert_eq!(
            at(offsets[1]),
            Some(Location {
                line: 2,
                column: 16
            })
        );
        assert_eq!(
            at(offsets[2]),
            Some(Location {
                line: 2,
                column: 36
            })
        );
        assert_eq!(offsets[3], None);
    }

    #[test]
    fn toml_paths_point_at_keys() {
        let text =
            "[[task]]\nid = \"T1\"\n\n[[task]]\nid = \"T2\"\ndepends_on = [\"T1\", \"T9\"]\n";
        let paths = vec![
            vec![key("task"), PathSeg::Index(1), key("depends_on")],
            vec![
                key("task"),
                PathSeg::Index(1),
                key("depends_on"),
                PathSeg::Index(1),
            ],
        ];
        let offsets = toml_offsets(text, &paths);
        let lines = LineIndex::new(text);
        assert_eq!(
            lines.location(offsets[0].unwrap()),
            Location { line: 6, column: 1 }
        );
        assert_eq!(
            lines.location(offsets[1].unwrap()),
            Location {
                line: 6,
                column: 21
            }
        );
    }
}
