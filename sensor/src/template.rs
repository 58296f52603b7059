//! Go templates for `dataTemplate`, `contextTemplate` and data filter
//! `template`: `{{ .Input.body.message | upper }}`.
//!
//! Built on the `gtmpl` crate, which implements Go's text/template (fields,
//! pipes, `if`/`else`/`range`/`with`, `eq`/`and`/`index`/`printf`) and accepts
//! custom functions: the common sprig functions are added here. Each sprig
//! function takes its piped value last, as in Go.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gtmpl::{Context, Func, FuncError, Value as TValue};
use serde_json::Value;

use crate::{Error, Result};

/// A parsed template, ready to run many times (cheap to clone).
#[derive(Clone)]
pub struct Template {
    source: String,
    inner: Arc<gtmpl::Template>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl Template {
    /// Parses `source`; a syntax error or an unknown function is an error.
    pub fn parse(source: &str) -> Result<Self> {
        check_actions_closed(source)?;
        check_nesting(source)?;
        let mut inner = gtmpl::Template::default();
        inner.add_funcs(SPRIG);
        inner
            .parse(source)
            .map_err(|e| Error::Template(format!("cannot parse template {source:?}: {e}")))?;
        Ok(Template {
            source: source.to_owned(),
            inner: Arc::new(inner),
        })
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the template with `.Input` bound to `input`.
    pub fn render(&self, input: &Value) -> Result<String> {
        let mut root = HashMap::new();
        root.insert("Input".to_owned(), to_template_value(input));
        let context = Context::from(TValue::Map(root));
        // gtmpl panics on some inputs (a printf width past 65535, which event
        // data can supply to `printf .Input.format`): a panic here is a
        // failed render, not a dead sensor task.
        let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.inner.render(&context).map_err(|e| e.to_string())
        }));
        match rendered {
            Ok(result) => result.map_err(|e| Error::Template(format!("template {:?}: {e}", self.source))),
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "the template engine failed".into());
                Err(Error::Template(format!("template {:?}: {reason}", self.source)))
            }
        }
    }

    /// Runs the template; an empty result or Go's `<no value>` is `None`
    /// (the caller falls back to a key or a default).
    pub fn render_non_empty(&self, input: &Value) -> Result<Option<String>> {
        let out = self.render(input)?;
        Ok(if out.is_empty() || out == "<no value>" {
            None
        } else {
            Some(out)
        })
    }
}

/// Every `{{` must have a `}}` after it. Checked before parsing because
/// gtmpl 0.7's lexer never ends on an unclosed action that ends in
/// whitespace (`"{{ .a "`), and a manifest must not hang the sensor.
fn check_actions_closed(source: &str) -> Result<()> {
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => rest = &after[close + 2..],
            None => {
                return Err(Error::Template(format!(
                    "cannot parse template {source:?}: an action '{{{{' is never closed with '}}}}'"
                )));
            }
        }
    }
    Ok(())
}

/// How deep parentheses and `if`/`range`/`with`/`define`/`block` may nest.
const MAX_NESTING: usize = 64;

/// Refuses templates nested deeper than [`MAX_NESTING`]: gtmpl parses and
/// runs them recursively, and a deep enough one would overflow the stack.
/// Counted on the raw text, so a parenthesis inside a string counts too;
/// no real template comes near the bound.
fn check_nesting(source: &str) -> Result<()> {
    let too_deep = || {
        Error::Template(format!(
            "cannot parse template {:?}: it nests deeper than {MAX_NESTING} levels",
            source.chars().take(64).collect::<String>()
        ))
    };
    let mut blocks = 0usize;
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}").unwrap_or(after.len());
        let action = &after[..close];
        let mut parens = 0usize;
        for c in action.chars() {
            match c {
                '(' => {
                    parens += 1;
                    if parens > MAX_NESTING {
                        return Err(too_deep());
                    }
                }
                ')' => parens = parens.saturating_sub(1),
                _ => {}
            }
        }
        let word = action.trim_start_matches('-').split_whitespace().next().unwrap_or("");
        match word {
            "if" | "range" | "with" | "define" | "block" => {
                blocks += 1;
                if blocks > MAX_NESTING {
                    return Err(too_deep());
                }
            }
            "end" => blocks = blocks.saturating_sub(1),
            _ => {}
        }
        rest = after.get(close + 2..).unwrap_or("");
    }
    Ok(())
}

/// A JSON value as the template engine sees it.
pub fn to_template_value(v: &Value) -> TValue {
    match v {
        Value::Null => TValue::Nil,
        Value::Bool(b) => TValue::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                TValue::from(u)
            } else if let Some(i) = n.as_i64() {
                TValue::from(i)
            } else {
                TValue::from(n.as_f64().unwrap_or_default())
            }
        }
        Value::String(s) => TValue::String(s.clone()),
        Value::Array(items) => TValue::Array(items.iter().map(to_template_value).collect()),
        Value::Object(map) => TValue::Map(map.iter().map(|(k, v)| (k.clone(), to_template_value(v))).collect()),
    }
}

/// A template value back as JSON (for `toJson`).
fn to_json_value(v: &TValue) -> Value {
    match v {
        TValue::NoValue | TValue::Nil | TValue::Function(_) => Value::Null,
        TValue::Bool(b) => Value::Bool(*b),
        TValue::String(s) => Value::String(s.clone()),
        TValue::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or_default()).map_or(Value::Null, Value::Number)
            }
        }
        TValue::Array(items) => Value::Array(items.iter().map(to_json_value).collect()),
        TValue::Object(map) | TValue::Map(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json_value(v))).collect())
        }
    }
}

/// A value as text, the way Go prints it in a template.
fn text(v: &TValue) -> String {
    match v {
        TValue::NoValue | TValue::Nil => String::new(),
        TValue::String(s) => s.clone(),
        TValue::Array(_) | TValue::Map(_) | TValue::Object(_) => to_json_value(v).to_string(),
        other => other.to_string(),
    }
}

fn arg<'a>(name: &str, args: &'a [TValue], n: usize) -> Result<&'a [TValue], FuncError> {
    if args.len() == n {
        Ok(args)
    } else {
        Err(FuncError::ExactlyXArgs(name.to_owned(), n))
    }
}

fn empty(v: &TValue) -> bool {
    match v {
        TValue::NoValue | TValue::Nil => true,
        TValue::Bool(b) => !b,
        TValue::String(s) => s.is_empty(),
        TValue::Array(a) => a.is_empty(),
        TValue::Map(m) | TValue::Object(m) => m.is_empty(),
        TValue::Number(n) => n.as_f64() == Some(0.0),
        TValue::Function(_) => false,
    }
}

fn upper(args: &[TValue]) -> Result<TValue, FuncError> {
    Ok(text(&arg("upper", args, 1)?[0]).to_uppercase().into())
}
fn lower(args: &[TValue]) -> Result<TValue, FuncError> {
    Ok(text(&arg("lower", args, 1)?[0]).to_lowercase().into())
}
fn trim(args: &[TValue]) -> Result<TValue, FuncError> {
    Ok(text(&arg("trim", args, 1)?[0]).trim().to_owned().into())
}
fn title(args: &[TValue]) -> Result<TValue, FuncError> {
    let s = text(&arg("title", args, 1)?[0]);
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    Ok(out.into())
}
fn default(args: &[TValue]) -> Result<TValue, FuncError> {
    match args {
        [fallback] => Ok(fallback.clone()),
        [fallback, given] => Ok(if empty(given) { fallback.clone() } else { given.clone() }),
        _ => Err(FuncError::AtLeastXArgs("default".to_owned(), 1)),
    }
}
fn to_json(args: &[TValue]) -> Result<TValue, FuncError> {
    Ok(to_json_value(&arg("toJson", args, 1)?[0]).to_string().into())
}
fn b64enc(args: &[TValue]) -> Result<TValue, FuncError> {
    Ok(BASE64.encode(text(&arg("b64enc", args, 1)?[0])).into())
}
fn b64dec(args: &[TValue]) -> Result<TValue, FuncError> {
    let s = text(&arg("b64dec", args, 1)?[0]);
    let bytes = BASE64
        .decode(s.trim())
        .map_err(|e| FuncError::Generic(format!("b64dec: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned().into())
}
fn replace(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("replace", args, 3)?;
    Ok(text(&a[2]).replace(&text(&a[0]), &text(&a[1])).into())
}
/// sprig `split`: a map `_0`, `_1`, ... of the parts.
fn split(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("split", args, 2)?;
    let s = text(&a[1]);
    let map = s
        .split(text(&a[0]).as_str())
        .enumerate()
        .map(|(i, p)| (format!("_{i}"), TValue::from(p)))
        .collect();
    Ok(TValue::Map(map))
}
fn split_list(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("splitList", args, 2)?;
    let s = text(&a[1]);
    Ok(TValue::Array(s.split(text(&a[0]).as_str()).map(TValue::from).collect()))
}
fn join(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("join", args, 2)?;
    let sep = text(&a[0]);
    let parts: Vec<String> = match &a[1] {
        TValue::Array(items) => items.iter().map(text).collect(),
        other => vec![text(other)],
    };
    Ok(parts.join(&sep).into())
}
fn now(args: &[TValue]) -> Result<TValue, FuncError> {
    arg("now", args, 0)?;
    Ok(chrono::Utc::now().to_rfc3339().into())
}
fn quote(args: &[TValue]) -> Result<TValue, FuncError> {
    let quoted: Vec<String> = args.iter().map(|a| Value::String(text(a)).to_string()).collect();
    Ok(quoted.join(" ").into())
}
fn squote(args: &[TValue]) -> Result<TValue, FuncError> {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", text(a))).collect();
    Ok(quoted.join(" ").into())
}
fn trim_prefix(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("trimPrefix", args, 2)?;
    let (p, s) = (text(&a[0]), text(&a[1]));
    Ok(s.strip_prefix(p.as_str()).unwrap_or(&s).to_owned().into())
}
fn trim_suffix(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("trimSuffix", args, 2)?;
    let (p, s) = (text(&a[0]), text(&a[1]));
    Ok(s.strip_suffix(p.as_str()).unwrap_or(&s).to_owned().into())
}
fn trim_all(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("trimAll", args, 2)?;
    let (cut, s) = (text(&a[0]), text(&a[1]));
    Ok(s.trim_matches(|c| cut.contains(c)).to_owned().into())
}
fn contains(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("contains", args, 2)?;
    Ok(text(&a[1]).contains(text(&a[0]).as_str()).into())
}
fn has_prefix(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("hasPrefix", args, 2)?;
    Ok(text(&a[1]).starts_with(text(&a[0]).as_str()).into())
}
fn has_suffix(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("hasSuffix", args, 2)?;
    Ok(text(&a[1]).ends_with(text(&a[0]).as_str()).into())
}
fn int(args: &[TValue]) -> Result<TValue, FuncError> {
    let v = &arg("int", args, 1)?[0];
    let n = match v {
        TValue::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).unwrap_or_default(),
        TValue::Bool(b) => i64::from(*b),
        other => {
            let s = text(other);
            s.trim()
                .parse::<i64>()
                .or_else(|_| s.trim().parse::<f64>().map(|f| f as i64))
                .unwrap_or_default()
        }
    };
    Ok(n.into())
}
fn nospace(args: &[TValue]) -> Result<TValue, FuncError> {
    Ok(text(&arg("nospace", args, 1)?[0])
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .into())
}
/// sprig `substr START END S` (by characters; END < 0 means to the end).
fn substr(args: &[TValue]) -> Result<TValue, FuncError> {
    let a = arg("substr", args, 3)?;
    let num = |v: &TValue| match v {
        TValue::Number(n) => n.as_i64().unwrap_or_default(),
        other => text(other).parse().unwrap_or_default(),
    };
    let chars: Vec<char> = text(&a[2]).chars().collect();
    let start = usize::try_from(num(&a[0])).unwrap_or(0).min(chars.len());
    let end = usize::try_from(num(&a[1]))
        .map_or(chars.len(), |e| e.min(chars.len()))
        .max(start);
    Ok(chars[start..end].iter().collect::<String>().into())
}
fn to_string(args: &[TValue]) -> Result<TValue, FuncError> {
    Ok(text(&arg("toString", args, 1)?[0]).into())
}

/// The sprig functions Argon provides, by name.
const SPRIG: &[(&str, Func)] = &[
    ("upper", upper),
    ("lower", lower),
    ("trim", trim),
    ("title", title),
    ("default", default),
    ("toJson", to_json),
    ("b64enc", b64enc),
    ("b64dec", b64dec),
    ("replace", replace),
    ("split", split),
    ("splitList", split_list),
    ("join", join),
    ("now", now),
    ("quote", quote),
    ("squote", squote),
    ("trimPrefix", trim_prefix),
    ("trimSuffix", trim_suffix),
    ("trimAll", trim_all),
    ("contains", contains),
    ("hasPrefix", has_prefix),
    ("hasSuffix", has_suffix),
    ("int", int),
    ("toString", to_string),
    ("nospace", nospace),
    ("substr", substr),
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_the_common_forms() {
        let input = json!({
            "body": {"name": "argon", "n": 42, "msg": "  hi  ", "list": ["a", "b"], "b64": "aGVsbG8=", "path": "refs/heads/main"},
            "empty": ""
        });
        let cases = [
            ("{{ .Input.body.name }}", "argon"),
            ("{{ .Input.body.name | upper }}", "ARGON"),
            ("{{ upper .Input.body.name }}", "ARGON"),
            ("{{ .Input.body.n }}", "42"),
            ("{{ .Input.body.msg | trim }}", "hi"),
            ("{{ .Input.empty | default \"dflt\" }}", "dflt"),
            ("{{ .Input.body.name | default \"dflt\" }}", "argon"),
            ("{{ .Input.body.list | toJson }}", "[\"a\",\"b\"]"),
            ("{{ .Input.body.name | b64enc }}", "YXJnb24="),
            ("{{ .Input.body.b64 | b64dec }}", "hello"),
            ("{{ .Input.body.path | replace \"refs/heads/\" \"\" }}", "main"),
            ("{{ .Input.body.path | trimPrefix \"refs/heads/\" }}", "main"),
            ("{{ (split \"/\" .Input.body.path)._2 }}", "main"),
            ("{{ index .Input.body.list 1 }}", "b"),
            ("{{ .Input.body.name | quote }}", "\"argon\""),
            ("{{ \"hello world\" | title }}", "Hello World"),
            (
                "{{ if hasPrefix \"refs/\" .Input.body.path }}yes{{ else }}no{{ end }}",
                "yes",
            ),
            (
                "{{ if contains \"dev\" .Input.body.path }}yes{{ else }}no{{ end }}",
                "no",
            ),
            ("{{ range .Input.body.list }}<{{ . }}>{{ end }}", "<a><b>"),
            ("{{ \"7\" | int }}", "7"),
            ("{{ .Input.body.n | toString }}", "42"),
            ("{{ \"a b c\" | nospace }}", "abc"),
            ("{{ .Input.body.path | substr 0 4 }}", "refs"),
            ("{{ .Input.body.name | substr 2 99 }}", "gon"),
            ("{{ .Input.body.name | lower | upper }}", "ARGON"),
        ];
        for (source, want) in cases {
            let t = Template::parse(source).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert_eq!(
                t.render(&input).unwrap_or_else(|e| panic!("{source}: {e}")),
                want,
                "{source}"
            );
        }
    }

    #[test]
    fn missing_values_are_none_and_bad_syntax_is_an_error() {
        let t = Template::parse("{{ .Input.nope }}").unwrap();
        assert_eq!(t.render_non_empty(&json!({"a": 1})).unwrap(), None);
        assert!(Template::parse("{{ .Input.a ").is_err());
        assert!(Template::parse("{{ .Input.a }}{{ ").is_err());
        assert!(Template::parse("{{ .Input.a |  ").is_err());
        assert!(Template::parse("{{ nosuchfunc .Input }}").is_err());
        let now = Template::parse("{{ now }}").unwrap().render(&json!({})).unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
    }

    #[test]
    fn a_printf_width_from_the_event_is_an_error_not_a_panic() {
        let t = Template::parse("{{ printf .Input.format 1 }}").unwrap();
        assert!(t.render(&serde_json::json!({"format": "%999999999d"})).is_err());
        assert_eq!(t.render(&serde_json::json!({"format": "%3d"})).unwrap(), "  1");
    }

    #[test]
    fn templates_nested_too_deep_are_refused() {
        assert!(Template::parse(&"{{ if true }}".repeat(100)).is_err());
        assert!(Template::parse(&format!("{{{{ {}1{} }}}}", "(".repeat(100), ")".repeat(100))).is_err());
        assert!(Template::parse("{{ if true }}{{ if true }}x{{ end }}{{ end }}").is_ok());
    }
}
