//! Trigger parameters: a value taken from the event of one dependency
//! (`dataTemplate`/`contextTemplate` first, then `dataKey`/`contextKey`, then
//! `value` as the default) written into the trigger's resource or payload at
//! `dest`, by `overwrite` (default), `append` or `prepend`.
//!
//! Keys are GJSON paths; a key starting with `$` is JSONPath. Dest paths are
//! dotted (`spec.arguments.parameters.0.value`), numbers index arrays, `-1`
//! appends to an array, `\.` is a literal dot, and a missing parent is
//! created (an array when the next key is a number, else an object).

use std::collections::BTreeMap;

use argon_crds::sensor::{TriggerParameter, TriggerParameterOperation, TriggerParameterSource};
use jsonpath_rust::JsonPath;
use serde_json::{Map, Value};

use crate::template::Template;
use crate::{Error, Result, SensorEvent};

/// The latest event of each dependency, by dependency name.
pub type Events = BTreeMap<String, SensorEvent>;

/// A resolved parameter value: text, or a JSON value kept raw.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    /// A plain value, written as a JSON string.
    Text(String),
    /// A number, bool, null, object or array: written as JSON with
    /// `useRawData`, else as its JSON text in a string.
    Json(Value),
}

impl Resolved {
    /// The value as text (strings unquoted, other values as JSON).
    pub fn text(&self) -> String {
        match self {
            Resolved::Text(s) => s.clone(),
            Resolved::Json(v) => v.to_string(),
        }
    }
}

/// A parameter with its templates parsed and its dest split.
#[derive(Clone, Debug)]
pub struct Parameter {
    src: Option<TriggerParameterSource>,
    data_template: Option<Template>,
    context_template: Option<Template>,
    /// The dest as written.
    pub dest: String,
    path: Vec<String>,
    operation: TriggerParameterOperation,
}

impl Parameter {
    /// Parses the templates and the dest of a manifest parameter.
    pub fn compile(p: &TriggerParameter) -> Result<Self> {
        let template = |t: &Option<String>| t.as_deref().filter(|s| !s.is_empty()).map(Template::parse).transpose();
        let (data_template, context_template) = match &p.src {
            Some(src) => (template(&src.data_template)?, template(&src.context_template)?),
            None => (None, None),
        };
        Ok(Parameter {
            src: p.src.clone(),
            data_template,
            context_template,
            dest: p.dest.clone(),
            path: split_path(&p.dest),
            operation: p.operation.unwrap_or_default(),
        })
    }

    /// Compiles a list.
    pub fn compile_all(params: &[TriggerParameter]) -> Result<Vec<Self>> {
        params.iter().map(Parameter::compile).collect()
    }

    /// The value of this parameter for `events`; `None` when its dependency
    /// has no event and no default is given (possible with `||` conditions).
    pub fn resolve(&self, events: &Events) -> Result<Option<Resolved>> {
        let Some(src) = &self.src else {
            return Ok(None);
        };
        let default = || src.value.clone().map(Resolved::Text);
        let Some(event) = events.get(&src.dependency_name) else {
            return Ok(default());
        };
        let data_key = src.data_key.as_deref().filter(|s| !s.is_empty());
        let context_key = src.context_key.as_deref().filter(|s| !s.is_empty());
        if data_key.is_none()
            && context_key.is_none()
            && self.data_template.is_none()
            && self.context_template.is_none()
        {
            return Ok(Some(
                default().unwrap_or_else(|| Resolved::Text(event.to_json().to_string())),
            ));
        }
        // The data part wins when both are set.
        let (payload, payload_text, key, template) = if data_key.is_some() || self.data_template.is_some() {
            (
                event.data.clone(),
                event.data_text.clone(),
                data_key,
                &self.data_template,
            )
        } else {
            let ctx = event.context_json();
            let text = ctx.to_string();
            (ctx, text, context_key, &self.context_template)
        };
        if let Some(t) = template {
            // A failing template falls back to the key, then to the default.
            if let Ok(Some(out)) = t.render_non_empty(&payload) {
                return Ok(Some(Resolved::Text(out)));
            }
        }
        if let Some(key) = key
            && let Some(found) = lookup(&payload, &payload_text, key)
        {
            return Ok(Some(found));
        }
        match default() {
            Some(v) => Ok(Some(v)),
            None => Err(Error::Parameter(format!(
                "unable to resolve the parameter for dest '{}' from dependency '{}': {} not found in the event and no default value",
                self.dest,
                src.dependency_name,
                key.map_or_else(|| "template output".to_owned(), |k| format!("key '{k}'")),
            ))),
        }
    }

    /// Resolves the value and writes it into `target` at dest. A parameter
    /// without a value is skipped.
    pub fn apply(&self, target: &mut Value, events: &Events) -> Result<()> {
        let Some(value) = self.resolve(events)? else {
            return Ok(());
        };
        let raw = self.src.as_ref().and_then(|s| s.use_raw_data).unwrap_or(false);
        let mut new = match value {
            Resolved::Json(v) if raw => v,
            other => Value::String(other.text()),
        };
        if self.operation != TriggerParameterOperation::Overwrite
            && let Some(current) = get_path(target, &self.path)
        {
            let current = match current {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let new_text = match &new {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            new = Value::String(match self.operation {
                TriggerParameterOperation::Append => current + &new_text,
                _ => new_text + &current,
            });
        }
        set_path(target, &self.path, new).map_err(|e| Error::Parameter(format!("dest '{}': {e}", self.dest)))
    }
}

/// Applies parameters in order.
pub fn apply_all(target: &mut Value, params: &[Parameter], events: &Events) -> Result<()> {
    for p in params {
        p.apply(target, events)?;
    }
    Ok(())
}

/// The request body built from `payload` parameters: a JSON object with each
/// value at its dest; a parameter with an empty dest is the whole body.
pub fn payload(params: &[Parameter], events: &Events) -> Result<Vec<u8>> {
    let mut body = Value::Object(Map::new());
    for p in params {
        if p.dest.is_empty() {
            if let Some(v) = p.resolve(events)? {
                return Ok(v.text().into_bytes());
            }
            continue;
        }
        p.apply(&mut body, events)?;
    }
    Ok(serde_json::to_vec(&body).unwrap_or_default())
}

/// The value at `key` (GJSON, or JSONPath when it starts with `$`).
fn lookup(payload: &Value, text: &str, key: &str) -> Option<Resolved> {
    if key.starts_with('$') {
        let found = payload.query(key).ok()?;
        return match found.as_slice() {
            [] => None,
            [Value::String(s)] => Some(Resolved::Text(s.clone())),
            [one] => Some(Resolved::Json((*one).clone())),
            many => Some(Resolved::Json(Value::Array(
                many.iter().map(|v| (*v).clone()).collect(),
            ))),
        };
    }
    let found = gjson::get(text, key);
    if !found.exists() {
        return None;
    }
    match found.kind() {
        gjson::Kind::String => Some(Resolved::Text(found.str().to_owned())),
        _ => serde_json::from_str(found.json()).ok().map(Resolved::Json),
    }
}

/// Splits a dest on unescaped dots.
fn split_path(dest: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = dest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(s) = out.last_mut()
                {
                    s.push(n);
                }
            }
            '.' => out.push(String::new()),
            c => {
                if let Some(s) = out.last_mut() {
                    s.push(c);
                }
            }
        }
    }
    out
}

fn get_path<'a>(target: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = target;
    for key in path {
        cur = match cur {
            Value::Object(map) => map.get(key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Writes `value` at `path`, creating what is missing.
pub fn set_path(target: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((key, rest)) = path.split_first() else {
        *target = value;
        return Ok(());
    };
    let numeric = key == "-1" || (!key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()));
    if target.is_null() {
        *target = if numeric {
            Value::Array(Vec::new())
        } else {
            Value::Object(Map::new())
        };
    }
    match target {
        Value::Object(map) => {
            let slot = map.entry(key.clone()).or_insert(Value::Null);
            set_path(slot, rest, value)
        }
        Value::Array(items) if numeric => {
            let index = if key == "-1" {
                items.push(Value::Null);
                items.len() - 1
            } else {
                key.parse::<usize>().map_err(|_| format!("bad index {key}"))?
            };
            if index >= items.len() {
                items.resize(index + 1, Value::Null);
            }
            set_path(&mut items[index], rest, value)
        }
        Value::Array(_) => Err(format!("'{key}' is not an index of an array")),
        other => Err(format!("cannot set '{key}' inside {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::filter::tests::event;

    fn events() -> Events {
        let mut m = Events::new();
        m.insert(
            "dep".into(),
            event(
                json!({"body": {"name": "argon", "n": 7, "ok": true, "list": [1, 2], "obj": {"k": "v"}, "nil": null}}),
            ),
        );
        m
    }

    fn param(src: Value, dest: &str, op: Option<&str>) -> Parameter {
        let mut p = json!({"src": src, "dest": dest});
        if let Some(op) = op {
            p["operation"] = json!(op);
        }
        Parameter::compile(&serde_json::from_value(p).unwrap()).unwrap()
    }

    #[test]
    fn resolve_table() {
        let ev = events();
        let cases = [
            (
                json!({"dependencyName": "dep", "dataKey": "body.name"}),
                Some(Resolved::Text("argon".into())),
            ),
            (
                json!({"dependencyName": "dep", "dataKey": "body.n"}),
                Some(Resolved::Json(json!(7))),
            ),
            (
                json!({"dependencyName": "dep", "dataKey": "body.obj"}),
                Some(Resolved::Json(json!({"k": "v"}))),
            ),
            (
                json!({"dependencyName": "dep", "dataKey": "body.list.1"}),
                Some(Resolved::Json(json!(2))),
            ),
            (
                json!({"dependencyName": "dep", "dataKey": "$.body.name"}),
                Some(Resolved::Text("argon".into())),
            ),
            (
                json!({"dependencyName": "dep", "dataKey": "$.body.list[*]"}),
                Some(Resolved::Json(json!([1, 2]))),
            ),
            (
                json!({"dependencyName": "dep", "dataKey": "body.nope", "value": "dflt"}),
                Some(Resolved::Text("dflt".into())),
            ),
            (
                json!({"dependencyName": "dep", "dataTemplate": "{{ .Input.body.name | upper }}", "dataKey": "body.n"}),
                Some(Resolved::Text("ARGON".into())),
            ),
            // template yields nothing: fall back to the key
            (
                json!({"dependencyName": "dep", "dataTemplate": "{{ .Input.nope }}", "dataKey": "body.n"}),
                Some(Resolved::Json(json!(7))),
            ),
            (
                json!({"dependencyName": "dep", "contextKey": "source"}),
                Some(Resolved::Text("webhook".into())),
            ),
            (
                json!({"dependencyName": "dep", "contextTemplate": "{{ .Input.type }}-{{ .Input.subject }}"}),
                Some(Resolved::Text("webhook-example".into())),
            ),
            (
                json!({"dependencyName": "dep", "value": "just-this"}),
                Some(Resolved::Text("just-this".into())),
            ),
            (
                json!({"dependencyName": "other", "dataKey": "x", "value": "dflt"}),
                Some(Resolved::Text("dflt".into())),
            ),
            (json!({"dependencyName": "other", "dataKey": "x"}), None),
        ];
        for (src, want) in cases {
            let p = param(src.clone(), "x", None);
            assert_eq!(p.resolve(&ev).unwrap(), want, "{src}");
        }
        let err = param(json!({"dependencyName": "dep", "dataKey": "body.nope"}), "x", None).resolve(&ev);
        assert!(err.unwrap_err().to_string().contains("body.nope"));
        // no key: the whole event
        let whole = param(json!({"dependencyName": "dep"}), "x", None)
            .resolve(&ev)
            .unwrap()
            .unwrap();
        let whole: Value = serde_json::from_str(&whole.text()).unwrap();
        assert_eq!(whole["data"]["body"]["name"], "argon");
        assert_eq!(whole["context"]["source"], "webhook");
    }

    #[test]
    fn apply_table() {
        let ev = events();
        let base = json!({"spec": {"arguments": {"parameters": [{"name": "message", "value": "old"}]}, "list": ["a"]}, "metadata": {"generateName": "wf-"}});
        let cases = [
            (
                param(
                    json!({"dependencyName": "dep", "dataKey": "body.name"}),
                    "spec.arguments.parameters.0.value",
                    None,
                ),
                "/spec/arguments/parameters/0/value",
                json!("argon"),
            ),
            (
                param(json!({"dependencyName": "dep", "dataKey": "body.n"}), "spec.x", None),
                "/spec/x",
                json!("7"),
            ),
            (
                param(
                    json!({"dependencyName": "dep", "dataKey": "body.n", "useRawData": true}),
                    "spec.x",
                    None,
                ),
                "/spec/x",
                json!(7),
            ),
            (
                param(
                    json!({"dependencyName": "dep", "dataKey": "body.obj", "useRawData": true}),
                    "spec.x",
                    None,
                ),
                "/spec/x",
                json!({"k": "v"}),
            ),
            (
                param(json!({"dependencyName": "dep", "dataKey": "body.obj"}), "spec.x", None),
                "/spec/x",
                json!("{\"k\":\"v\"}"),
            ),
            (
                param(
                    json!({"dependencyName": "dep", "dataKey": "body.name"}),
                    "spec.list.-1",
                    None,
                ),
                "/spec/list",
                json!(["a", "argon"]),
            ),
            (
                param(
                    json!({"dependencyName": "dep", "dataKey": "body.name"}),
                    "spec.new.2",
                    None,
                ),
                "/spec/new",
                json!([null, null, "argon"]),
            ),
            (
                param(
                    json!({"dependencyName": "dep", "dataKey": "body.name"}),
                    "metadata.generateName",
                    Some("append"),
                ),
                "/metadata/generateName",
                json!("wf-argon"),
            ),
            (
                param(
                    json!({"dependencyName": "dep", "dataKey": "body.name"}),
                    "metadata.generateName",
                    Some("prepend"),
                ),
                "/metadata/generateName",
                json!("argonwf-"),
            ),
            (
                param(
                    json!({"dependencyName": "dep", "dataKey": "body.name"}),
                    "metadata.labels.app\\.kubernetes\\.io/name",
                    None,
                ),
                "/metadata/labels/app.kubernetes.io~1name",
                json!("argon"),
            ),
            (
                param(
                    json!({"dependencyName": "other", "dataKey": "x"}),
                    "metadata.generateName",
                    None,
                ),
                "/metadata/generateName",
                json!("wf-"),
            ),
        ];
        for (p, pointer, want) in cases {
            let mut target = base.clone();
            p.apply(&mut target, &ev).unwrap();
            assert_eq!(target.pointer(pointer), Some(&want), "{}", p.dest);
        }
    }

    #[test]
    fn payloads() {
        let ev = events();
        let params = [
            param(json!({"dependencyName": "dep", "dataKey": "body.name"}), "name", None),
            param(
                json!({"dependencyName": "dep", "dataKey": "body.n", "useRawData": true}),
                "count",
                None,
            ),
            param(
                json!({"dependencyName": "dep", "dataKey": "body.list"}),
                "nested.list",
                None,
            ),
        ];
        let body: Value = serde_json::from_slice(&payload(&params, &ev).unwrap()).unwrap();
        assert_eq!(body, json!({"name": "argon", "count": 7, "nested": {"list": "[1,2]"}}));
        let whole = [param(json!({"dependencyName": "dep", "dataKey": "body.obj"}), "", None)];
        assert_eq!(payload(&whole, &ev).unwrap(), b"{\"k\":\"v\"}");
    }
}
