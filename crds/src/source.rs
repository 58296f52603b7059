//! Reading manifest text: YAML (multi-document) or JSON into JSON values,
//! keeping the line and column of every field so that any later finding,
//! which only knows a field path, can be placed in the file.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

use crate::diag::{Diagnostic, FieldPath, Severity};

/// The largest manifest file Argon reads. A Kubernetes object cannot exceed
/// about 1.5 MiB in etcd; twice that leaves room for many documents in one
/// file while refusing a runaway file before parsing it.
pub const MAX_FILE_BYTES: usize = 3 * 1024 * 1024;

/// A 1-based line and column in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One document of a manifest file, as JSON, with the position of each field.
#[derive(Clone, Debug)]
pub struct Document {
    /// The file the document was read from, as the user named it.
    pub file: String,
    /// 0-based index of the document in its file.
    pub index: usize,
    /// Where the document starts.
    pub start: Pos,
    pub value: Value,
    positions: HashMap<String, Pos>,
}

impl Document {
    /// Where the field at `path` is written: its key for a mapping entry, the
    /// item for a list element. A path that is not in the file (a missing
    /// field) falls back to its nearest ancestor that is.
    pub fn position(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match parent_path(p) {
                Some(parent) => p = parent,
                None => return self.start,
            }
        }
    }

    /// A diagnostic for `path` in this document.
    pub fn diagnostic(&self, path: &str, severity: Severity, message: impl Into<String>) -> Diagnostic {
        let pos = self.position(path);
        Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            severity,
            message: message.into(),
        }
    }

    /// Builds a document straight from a value, with no positions: every
    /// finding points at `start`. Used for manifests that do not come from a
    /// file (the API, tests).
    pub fn from_value(file: impl Into<String>, value: Value) -> Self {
        Document {
            file: file.into(),
            index: 0,
            start: Pos { line: 1, col: 1 },
            value,
            positions: HashMap::new(),
        }
    }
}

/// The path one level up: `a.b[2]` -> `a.b`, `a.b` -> `a`, `a` -> ``.
fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']')
        && let Some(i) = path.rfind('[')
    {
        return Some(&path[..i]);
    }
    Some(path.rfind('.').map_or("", |i| &path[..i]))
}

/// Parses the text of one file into its documents. Empty documents (a
/// trailing `---`, a file of comments) are left out. Any problem is one
/// diagnostic, never a panic.
pub fn parse(file: &str, text: &str) -> Result<Vec<Document>, Diagnostic> {
    let at = |line: usize, col: usize, message: String| Diagnostic {
        file: file.to_string(),
        line,
        col,
        severity: Severity::Error,
        message,
    };
    if text.len() > MAX_FILE_BYTES {
        return Err(at(
            1,
            1,
            format!(
                "file is too large ({:.1} MiB); a manifest file may hold at most {} MiB",
                text.len() as f64 / (1024.0 * 1024.0),
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        ));
    }
    shape_check(text).map_err(|(line, col, message)| at(line, col, message))?;
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        at(
            e.marker().line(),
            e.marker().col() + 1,
            format!("not valid YAML or JSON: {}", e.info()),
        )
    })?;
    let mut out = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        let mut positions = HashMap::new();
        let value =
            to_json(doc, &FieldPath::root(), &mut positions).map_err(|(pos, msg)| at(pos.line, pos.col, msg))?;
        if value.is_null() {
            continue;
        }
        out.push(Document {
            file: file.to_string(),
            index,
            start: pos_of(doc),
            value,
            positions,
        });
    }
    if out.is_empty() {
        return Err(at(
            1,
            1,
            "file holds no manifest (it is empty or only comments)".to_string(),
        ));
    }
    Ok(out)
}

/// How deep mappings and sequences may nest in a manifest; the tree is
/// walked recursively, and no manifest comes near it.
const MAX_DEPTH: usize = 128;
/// How many nodes a file may hold once its aliases are expanded (a
/// "billion laughs" file is small and expands without end).
const MAX_NODES: u64 = 1 << 20;

/// Refuses, before the tree is built, a file nested deeper than MAX_DEPTH or
/// expanding to more than MAX_NODES nodes: the line, column and reason.
/// Syntax errors are left to the loader, which reports them better.
fn shape_check(text: &str) -> Result<(), (usize, usize, String)> {
    use saphyr_parser::{Event, Parser};
    // Per open collection: its anchor and the node count when it opened.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut anchored: HashMap<usize, u64> = HashMap::new();
    let mut nodes: u64 = 0;
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let at = |message: String| (span.start.line(), span.start.col() + 1, message);
        match event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                nodes += 1;
                open.push((anchor, nodes));
                if open.len() > MAX_DEPTH {
                    return Err(at(format!(
                        "the document nests deeper than {MAX_DEPTH} levels of mappings and lists"
                    )));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = open.pop()
                    && anchor != 0
                {
                    anchored.insert(anchor, nodes - start + 1);
                }
            }
            Event::Scalar(_, _, anchor, _) => {
                nodes += 1;
                if anchor != 0 {
                    anchored.insert(anchor, 1);
                }
            }
            Event::Alias(anchor) => nodes = nodes.saturating_add(anchored.get(&anchor).copied().unwrap_or(1)),
            _ => {}
        }
        if nodes > MAX_NODES {
            return Err(at(format!(
                "the file expands to more than {MAX_NODES} values (aliases included)"
            )));
        }
    }
    Ok(())
}

fn pos_of(node: &MarkedYaml<'_>) -> Pos {
    Pos {
        line: node.span.start.line(),
        col: node.span.start.col() + 1,
    }
}

fn to_json(
    node: &MarkedYaml<'_>,
    path: &FieldPath,
    positions: &mut HashMap<String, Pos>,
) -> Result<Value, (Pos, String)> {
    Ok(match &node.data {
        YamlData::Value(s) => scalar(s),
        YamlData::Representation(text, _, _) => Value::String(text.to_string()),
        YamlData::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = path.index(i);
                positions.insert(p.as_str().to_string(), pos_of(item));
                out.push(to_json(item, &p, positions)?);
            }
            Value::Array(out)
        }
        YamlData::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter() {
                let key = match &k.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(s) => match scalar(s) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    _ => return Err((pos_of(k), format!("a mapping key at {path} must be a plain scalar"))),
                };
                let p = path.key(&key);
                positions.insert(p.as_str().to_string(), pos_of(k));
                let value = to_json(v, &p, positions)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        YamlData::Tagged(_, inner) => to_json(inner, path, positions)?,
        YamlData::Alias(_) => return Err((pos_of(node), "unresolved YAML alias".to_string())),
        YamlData::BadValue => return Err((pos_of(node), "a value that is not valid YAML".to_string())),
    })
}

fn scalar(s: &Scalar<'_>) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_items() {
        let text = "a: 1\nb:\n  c:\n    - x\n    - d: 2\n";
        let docs = parse("f.yaml", text).unwrap();
        let d = &docs[0];
        assert_eq!(d.position("b.c"), Pos { line: 3, col: 3 });
        assert_eq!(d.position("b.c[1]"), Pos { line: 5, col: 7 });
        assert_eq!(d.position("b.c[1].d"), Pos { line: 5, col: 7 });
        // a missing field falls back to its parent
        assert_eq!(d.position("b.c[1].missing"), Pos { line: 5, col: 7 });
        assert_eq!(d.value["b"]["c"][1]["d"], 2);
    }

    #[test]
    fn multi_document_and_json() {
        let docs = parse("f.yaml", "---\nkind: A\n---\n---\nkind: B\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["kind"], "B");
        assert_eq!(docs[1].start.line, 5);
        let docs = parse("f.json", "{\"kind\": \"A\",\n \"spec\": {\"x\": [1, 2.5, true, null]}}").unwrap();
        assert_eq!(docs[0].value["spec"]["x"][1], 2.5);
        assert_eq!(docs[0].position("spec.x"), Pos { line: 2, col: 11 });
    }

    #[test]
    fn bad_input_is_one_clear_error() {
        let e = parse("f.yaml", "").unwrap_err();
        assert!(e.message.contains("no manifest"), "{e}");
        let e = parse("f.yaml", "# only a comment\n").unwrap_err();
        assert!(e.message.contains("no manifest"), "{e}");
        let e = parse("f.yaml", "a: [1, 2\nb: }").unwrap_err();
        assert!(e.message.starts_with("not valid YAML"), "{e}");
        assert_eq!(e.to_string().split(':').next(), Some("f.yaml"));
        let e = parse("f.yaml", "a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("not valid YAML"), "{e}");
        let big = "a: 1\n".repeat(MAX_FILE_BYTES / 4);
        let e = parse("f.yaml", &big).unwrap_err();
        assert!(e.message.contains("too large"), "{e}");
    }
}
