//! Reading manifest text: YAML (multi-document) or JSON into JSON values,
//! keeping the line and column of every field so that any later finding,
//! which only knows a field path, can be placed in the file.

use std::collections::HashMap;

use saphyr::{MarkedYaml, Scalar, ScalarStyle, Tag, YamlData, YamlLoader};
use saphyr_parser::Parser;
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
    let (relaxed, pads) = relax_flow_indentation(text);
    let cols = Columns(&pads);
    shape_check(&relaxed).map_err(|(line, col, message)| at(line, cols.col(line, col), message))?;
    let mut parser = Parser::new_from_str(&relaxed);
    let mut loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
    // Scalars are resolved here rather than by saphyr, to read them as
    // Kubernetes does (see `resolve_plain`).
    loader.early_parse(false);
    let loaded = parser.load(&mut loader, true);
    if let Some(e) = loaded.err().or_else(|| loader.error().cloned()) {
        let m = e.marker();
        return Err(at(
            m.line(),
            cols.col(m.line(), m.col()),
            format!("not valid YAML or JSON: {}", e.info()),
        ));
    }
    let docs = loader.into_documents();
    let mut out = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        let mut positions = HashMap::new();
        let value =
            to_json(doc, &FieldPath::root(), &mut positions, &cols).map_err(|(pos, msg)| at(pos.line, pos.col, msg))?;
        if value.is_null() {
            continue;
        }
        out.push(Document {
            file: file.to_string(),
            index,
            start: cols.pos_of(doc),
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
/// expanding to more than MAX_NODES nodes: the line, 0-based column and reason.
/// Syntax errors are left to the loader, which reports them better.
fn shape_check(text: &str) -> Result<(), (usize, usize, String)> {
    use saphyr_parser::Event;
    // Per open collection: its anchor and the node count when it opened.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut anchored: HashMap<usize, u64> = HashMap::new();
    let mut nodes: u64 = 0;
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else {
            return Ok(());
        };
        let at = |message: String| (span.start.line(), span.start.col(), message);
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

/// The spaces [`relax_flow_indentation`] added at the start of each line
/// (0-based line index), so that positions point into the file as written.
struct Columns<'a>(&'a [usize]);

impl Columns<'_> {
    /// The 1-based column in the original text of a 0-based column of
    /// 1-based `line` in the relaxed text.
    fn col(&self, line: usize, col: usize) -> usize {
        let pad = line.checked_sub(1).and_then(|i| self.0.get(i)).copied().unwrap_or(0);
        col.saturating_sub(pad) + 1
    }

    fn pos_of(&self, node: &MarkedYaml<'_>) -> Pos {
        let line = node.span.start.line();
        Pos {
            line,
            col: self.col(line, node.span.start.col()),
        }
    }
}

/// Kubernetes reads YAML with a parser that ignores indentation inside flow
/// collections (`[...]`, `{...}`) and quoted scalars, so manifests often
/// continue them on lines indented no deeper than their key, or close a
/// list with `]` at column 0. YAML 1.2 (and saphyr) require such lines to
/// be indented deeper than the enclosing block. Leading spaces on those lines
/// carry no meaning (flow separation, or folded away in a quoted scalar), so
/// this indents each of them one column past the line the construct opened
/// on. Block scalars (`|`, `>`) and comments are left alone. Returns the text
/// and the spaces added at the start of each line.
fn relax_flow_indentation(text: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(text.len() + 64);
    let mut pads = Vec::new();
    let mut flow_depth = 0usize;
    let mut quote: Option<char> = None;
    let mut open_indent = 0usize;
    // A block scalar: the indent of the line holding its header, then the
    // indent of its content once its first non-blank line is seen.
    let mut block: Option<(usize, Option<usize>)> = None;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let blank = line.trim().is_empty();
        if let Some((header, content)) = block {
            let inside = match content {
                _ if blank => true,
                Some(c) => indent >= c,
                None if indent > header => {
                    block = Some((header, Some(indent)));
                    true
                }
                None => false,
            };
            if inside {
                out.push_str(line);
                pads.push(0);
                continue;
            }
            block = None;
        }
        let continuing = flow_depth > 0 || quote.is_some();
        let pad = if continuing && !blank && indent <= open_indent {
            open_indent + 1 - indent
        } else {
            0
        };
        pads.push(pad);
        out.extend(std::iter::repeat_n(' ', pad));
        out.push_str(line);
        if !continuing {
            open_indent = indent;
        }
        let chars: Vec<char> = line.chars().collect();
        // Whether a scalar may start here (so that a quote opens one).
        let mut at_start = true;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let spaced = |n: Option<char>| n.is_none_or(char::is_whitespace);
            if let Some(q) = quote {
                // An escape in double quotes, a doubled quote in single ones.
                if (q == '"' && c == '\\') || (q == '\'' && c == '\'' && next == Some('\'')) {
                    i += 1;
                } else if c == q {
                    quote = None;
                    at_start = false;
                }
                i += 1;
                continue;
            }
            match c {
                ' ' | '\t' | '\r' | '\n' => {}
                '#' if i == 0 || chars[i - 1].is_whitespace() => break,
                '"' | '\'' if at_start => quote = Some(c),
                '[' | '{' if at_start => {
                    flow_depth += 1;
                }
                ']' | '}' if flow_depth > 0 => {
                    flow_depth -= 1;
                    at_start = false;
                }
                ',' if flow_depth > 0 => at_start = true,
                ':' if flow_depth > 0 || spaced(next) => at_start = true,
                '-' | '?' if at_start && flow_depth == 0 && spaced(next) => {}
                '!' | '&' if at_start => {
                    while i + 1 < chars.len() && !chars[i + 1].is_whitespace() {
                        i += 1;
                    }
                }
                '|' | '>' if at_start && flow_depth == 0 => {
                    block = Some((indent, None));
                    break;
                }
                _ => at_start = false,
            }
            i += 1;
        }
    }
    (out, pads)
}

fn to_json(
    node: &MarkedYaml<'_>,
    path: &FieldPath,
    positions: &mut HashMap<String, Pos>,
    cols: &Columns<'_>,
) -> Result<Value, (Pos, String)> {
    Ok(match &node.data {
        YamlData::Value(s) => scalar(s),
        YamlData::Representation(text, style, tag) => resolve(text, *style, tag.as_deref())
            .ok_or_else(|| (cols.pos_of(node), format!("'{text}' does not fit its YAML tag")))?,
        YamlData::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = path.index(i);
                positions.insert(p.as_str().to_string(), cols.pos_of(item));
                out.push(to_json(item, &p, positions, cols)?);
            }
            Value::Array(out)
        }
        YamlData::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter() {
                let key = match &k.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Representation(s, _, _) => s.to_string(),
                    YamlData::Value(s) => match scalar(s) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    _ => {
                        return Err((
                            cols.pos_of(k),
                            format!("a mapping key at {path} must be a plain scalar"),
                        ));
                    }
                };
                let p = path.key(&key);
                positions.insert(p.as_str().to_string(), cols.pos_of(k));
                let value = to_json(v, &p, positions, cols)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        YamlData::Tagged(_, inner) => to_json(inner, path, positions, cols)?,
        YamlData::Alias(_) => return Err((cols.pos_of(node), "unresolved YAML alias".to_string())),
        YamlData::BadValue => return Err((cols.pos_of(node), "a value that is not valid YAML".to_string())),
    })
}

/// A scalar as Kubernetes reads it: the YAML 1.2 core schema, except that a
/// plain integer with a leading zero is octal, as in YAML 1.1 (`mode: 0755`
/// is 493, the way file modes are written). `None` when a tag does not fit.
fn resolve(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Option<Value> {
    if style == ScalarStyle::Plain
        && tag.is_none()
        && let Some(v) = yaml11_octal(text)
    {
        return Some(Value::Number(v.into()));
    }
    let tag = tag.map(|t| std::borrow::Cow::Owned(t.clone()));
    Scalar::parse_from_cow_and_metadata(text.into(), style, tag.as_ref()).map(|s| scalar(&s))
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

/// `0755`, `-017`: YAML 1.1 octal. `0` alone and `0o17` are YAML 1.2 forms.
fn yaml11_octal(text: &str) -> Option<i64> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let rest = digits.strip_prefix('0')?;
    if rest.is_empty() || !rest.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    i64::from_str_radix(rest, 8).ok().map(|v| sign * v)
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

    fn value(text: &str) -> Value {
        match parse("f.yaml", text) {
            Ok(docs) => docs[0].value.clone(),
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    #[test]
    fn multi_line_quoted_scalars_as_kubernetes_reads_them() {
        // Continuation lines no deeper than the key: valid for Kubernetes.
        let v = value("spec:\n  a: \"line one\n  line two\"\n  b: 'it''s\n  one\n\n  two'\n  c: x\n");
        assert_eq!(v["spec"]["a"], "line one line two");
        assert_eq!(v["spec"]["b"], "it's one\ntwo");
        assert_eq!(v["spec"]["c"], "x");
        let v = value("args:\n- \"echo hello\n  world\"\n- \"a \\\n  b\"\n");
        assert_eq!(v["args"], serde_json::json!(["echo hello world", "a b"]));
    }

    #[test]
    fn comments_and_shallow_lines_inside_flow_collections() {
        let v =
            value("a: [\n  # first\n  \"x\", # after x\n  # own line\n  \"y\" # after y\n]\nb: {k: v, # c\nj: w}\n");
        assert_eq!(v["a"], serde_json::json!(["x", "y"]));
        assert_eq!(v["b"], serde_json::json!({"k": "v", "j": "w"}));
        let v = value("spec:\n  command: [sh, -c, # shell\n  \"echo 'a # b'\"]\n  n: 1\n");
        assert_eq!(v["spec"]["command"], serde_json::json!(["sh", "-c", "echo 'a # b'"]));
        assert_eq!(v["spec"]["n"], 1);
    }

    #[test]
    fn block_scalars_are_left_alone() {
        let v = value("a: |\n  [x, \"y\n  # not a comment\nb: \"z\"\n");
        assert_eq!(v["a"], "[x, \"y\n# not a comment\n");
        assert_eq!(v["b"], "z");
    }

    #[test]
    fn positions_on_relaxed_lines_point_into_the_file() {
        let d = &parse("f.yaml", "a: [\nx,\n{k: 1}\n]\n").unwrap()[0];
        assert_eq!(d.position("a[1]"), Pos { line: 3, col: 1 });
        assert_eq!(d.position("a[1].k"), Pos { line: 3, col: 2 });
        let e = parse("f.yaml", "a: [\nx,\n  }\n]\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 3), "{e}");
    }

    #[test]
    fn leading_zero_integers_are_octal_as_in_kubernetes() {
        let v = value("mode: 0755\nb: 0o17\nc: 0\nd: 089\ne: '0755'\nf: 10\ng: -010\n");
        assert_eq!(v["mode"], 493);
        assert_eq!(v["b"], 15);
        assert_eq!(v["c"], 0);
        assert_eq!(v["d"], 89);
        assert_eq!(v["e"], "0755");
        assert_eq!(v["f"], 10);
        assert_eq!(v["g"], -8);
    }
}
