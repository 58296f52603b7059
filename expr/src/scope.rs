//! The variables an expression sees.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::value::to_expr;

/// The variables of an evaluation, as nested values: `inputs.parameters.x`
/// is `inputs` → `parameters` → `x`.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    json: Map<String, Value>,
    context: expr::Context,
}

impl Scope {
    /// A scope whose top-level names are the keys of `vars`.
    pub fn new(vars: Map<String, Value>) -> Self {
        let mut context = expr::Context::default();
        for (k, v) in &vars {
            context.insert(k.clone(), to_expr(v));
        }
        Scope { json: vars, context }
    }

    /// A scope from Argo's flat variables (`steps.a.outputs.result` → text);
    /// see [`nest`].
    pub fn from_flat<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        match nest(vars) {
            Value::Object(m) => Scope::new(m),
            _ => Scope::default(),
        }
    }

    /// The value at a dotted path, if the scope has it.
    pub fn lookup(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut v = self.json.get(parts.next()?)?;
        for p in parts {
            v = match v {
                Value::Object(m) => m.get(p)?,
                Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }

    pub(crate) fn context(&self) -> &expr::Context {
        &self.context
    }
}

/// Nests flat dotted variables into one value. A variable's text that is a
/// JSON list or map is parsed (so `item.key` and `jsonpath` work on it);
/// other text stays a string. When both `a` and `a.b` are set, `a` is a
/// map: its own parsed value, with the children it lacks.
pub fn nest<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let mut sorted: BTreeMap<usize, Vec<(&str, &str)>> = BTreeMap::new();
    for (k, v) in vars {
        sorted.entry(k.matches('.').count()).or_default().push((k, v));
    }
    let mut root = Map::new();
    for (_, level) in sorted {
        for (key, text) in level {
            insert(&mut root, key, parse_text(text));
        }
    }
    Value::Object(root)
}

fn insert(root: &mut Map<String, Value>, key: &str, value: Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut node = root;
    for p in parts {
        let entry = node.entry(p.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(m) = entry else { return };
        node = m;
    }
    // Shorter keys come first: a key already there came from its parent's
    // parsed JSON, which keeps the value's type (`item.n` is 5, not "5").
    node.entry(last.to_string()).or_insert(value);
}

fn parse_text(s: &str) -> Value {
    let t = s.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(v) = serde_json::from_str::<Value>(s)
    {
        return v;
    }
    Value::String(s.to_string())
}
