//! Go templates for `dataTemplate`, `contextTemplate` and data filter
//! `template`: `{{ .Input.body.message | upper }}`.
//!
//! Built on the `gtmpl` crate, which implements Go's text/template (fields,
//! pipes, `if`/`else`/`range`/`with`, `eq`/`and`/`index`/`printf`) and accepts
//! custom functions: the sprig functions of Argon's one table
//! (`argon_expr::sprig`) are added here. Each takes its piped value last, as
//! in Go.

use std::collections::HashMap;
use std::sync::Arc;

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
/// Calls the sprig function `name` of Argon's one sprig table.
fn sprig(name: &str, args: &[TValue]) -> Result<TValue, FuncError> {
    let args: Vec<Value> = args.iter().map(to_json_value).collect();
    match argon_expr::sprig::call(name, &args) {
        Some(Ok(v)) => Ok(to_template_value(&v)),
        Some(Err(e)) => Err(FuncError::Generic(e)),
        None => Err(FuncError::Generic(format!("unknown function '{name}'"))),
    }
}

/// gtmpl takes plain functions: one per sprig name, each calling [`sprig`].
macro_rules! sprig_funcs {
    ($($name:literal => $f:ident),* $(,)?) => {
        $(fn $f(args: &[TValue]) -> Result<TValue, FuncError> {
            sprig($name, args)
        })*
        /// The sprig functions, by name.
        const SPRIG: &[(&str, Func)] = &[$(($name, $f as Func)),*];
    };
}

sprig_funcs! {
    "upper" => upper, "lower" => lower, "trim" => trim, "trimAll" => trim_all,
    "trimPrefix" => trim_prefix, "trimSuffix" => trim_suffix, "title" => title,
    "nospace" => nospace, "quote" => quote, "squote" => squote, "replace" => replace,
    "contains" => contains, "hasPrefix" => has_prefix, "hasSuffix" => has_suffix,
    "repeat" => repeat, "trunc" => trunc, "substr" => substr, "split" => split,
    "splitList" => split_list, "join" => join, "default" => default, "empty" => empty,
    "coalesce" => coalesce, "ternary" => ternary, "toJson" => to_json, "toRawJson" => to_raw_json,
    "toPrettyJson" => to_pretty_json, "fromJson" => from_json, "toString" => to_string,
    "int" => int, "int64" => int64, "atoi" => atoi, "float64" => float64, "add" => add,
    "sub" => sub, "mul" => mul, "div" => div, "mod" => modulo, "max" => max, "min" => min,
    "list" => list, "first" => first, "last" => last, "b64enc" => b64enc, "b64dec" => b64dec,
    "now" => now,
}

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
    fn every_sprig_function_of_the_one_table_is_registered() {
        let mut here: Vec<&str> = SPRIG.iter().map(|(n, _)| *n).collect();
        let mut table = argon_expr::sprig::NAMES.to_vec();
        here.sort_unstable();
        table.sort_unstable();
        assert_eq!(here, table);
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
