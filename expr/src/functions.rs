//! The functions Argo adds to expr-lang, and the sprig table under `sprig.`.

use std::sync::OnceLock;

use expr::{Environment, Value as X};
use jsonpath_rust::JsonPath;
use serde_json::Value;

use crate::sprig;
use crate::value::{from_expr, to_expr, to_text};

/// The environment every expression runs in: expr-lang's builtins, Argo's
/// functions, and `sprig_NAME` for `sprig.NAME` (see [`rewrite_namespaces`]).
pub(crate) fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_function("asInt", |c| as_int(&json_args(&c.args), "asInt"));
        env.add_function("asFloat", |c| as_float(&json_args(&c.args)));
        for name in ["toJson", "toJSON"] {
            env.add_function(name, move |c| {
                let a = json_args(&c.args);
                let v = a.first().ok_or_else(|| fail(format!("{name} needs 1 argument")))?;
                Ok(X::String(v.to_string()))
            });
        }
        for name in ["fromJson", "fromJSON"] {
            env.add_function(name, move |c| {
                let a = json_args(&c.args);
                let text = a.first().map(to_text).unwrap_or_default();
                serde_json::from_str::<Value>(&text)
                    .map(|v| to_expr(&v))
                    .map_err(|e| fail(format!("{name}: {e}")))
            });
        }
        env.add_function("jsonpath", |c| {
            let a = json_args(&c.args);
            let (Some(doc), Some(path)) = (a.first(), a.get(1)) else {
                return Err(fail("jsonpath needs a document and a path"));
            };
            jsonpath(doc, &to_text(path)).map(|v| to_expr(&v)).map_err(fail)
        });
        env.add_function("has", |c| {
            Ok(X::Bool(c.args.first().is_some_and(|v| !matches!(v, X::Nil))))
        });
        for name in sprig::NAMES {
            env.add_function(&format!("sprig_{name}"), move |c| {
                let a = json_args(&c.args);
                match sprig::call(name, &a) {
                    Some(Ok(v)) => Ok(to_expr(&v)),
                    Some(Err(e)) => Err(fail(format!("sprig.{name}: {e}"))),
                    None => Err(fail(format!("unknown function sprig.{name}"))),
                }
            });
        }
        env
    })
}

fn fail(msg: impl Into<String>) -> expr::Error {
    expr::Error::ExprError(msg.into())
}

fn json_args(args: &[X]) -> Vec<Value> {
    args.iter().cloned().map(from_expr).collect()
}

fn as_int(a: &[Value], name: &str) -> Result<X, expr::Error> {
    let v = a.first().ok_or_else(|| fail(format!("{name} needs 1 argument")))?;
    match v {
        Value::Number(n) => Ok(X::Integer(
            n.as_i64().unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
        )),
        Value::Bool(b) => Ok(X::Integer(i64::from(*b))),
        other => {
            let t = to_text(other);
            let t = t.trim();
            t.parse::<i64>()
                .or_else(|_| t.parse::<f64>().map(|f| f.trunc() as i64))
                .map(X::Integer)
                .map_err(|_| fail(format!("{name}: '{t}' is not a number")))
        }
    }
}

fn as_float(a: &[Value]) -> Result<X, expr::Error> {
    let v = a.first().ok_or_else(|| fail("asFloat needs 1 argument"))?;
    match v {
        Value::Number(n) => Ok(X::Float(n.as_f64().unwrap_or(0.0))),
        other => {
            let t = to_text(other);
            t.trim()
                .parse::<f64>()
                .map(X::Float)
                .map_err(|_| fail(format!("asFloat: '{}' is not a number", t.trim())))
        }
    }
}

/// Queries `doc` (a value, or JSON text) with a JSONPath. One match is
/// that value; a path that can match several (`*`, `..`, filters, slices,
/// unions) gives the list of matches.
pub fn jsonpath(doc: &Value, path: &str) -> Result<Value, String> {
    let parsed;
    let doc = match doc {
        Value::String(s) => {
            parsed =
                serde_json::from_str::<Value>(s).map_err(|e| format!("jsonpath: the document is not JSON: {e}"))?;
            &parsed
        }
        other => other,
    };
    let path = path.trim();
    let path = if path.starts_with('$') {
        path.to_string()
    } else {
        format!("$.{}", path.trim_start_matches('.'))
    };
    let found = doc.query(&path).map_err(|e| format!("jsonpath '{path}': {e}"))?;
    let many =
        path.contains('*') || path.contains("..") || path.contains('?') || path.contains(':') || path.contains(',');
    if many {
        return Ok(Value::Array(found.into_iter().cloned().collect()));
    }
    found
        .first()
        .map(|v| (*v).clone())
        .ok_or_else(|| format!("jsonpath '{path}' matches nothing"))
}

/// `sprig.NAME(` becomes `sprig_NAME(` outside string literals: expr-lang
/// has no namespaces, so each sprig function is registered under that name.
pub(crate) fn rewrite_namespaces(source: &str) -> String {
    const PREFIX: &str = "sprig.";
    let mut out = String::with_capacity(source.len());
    let mut quote: Option<char> = None;
    let mut prev: Option<char> = None;
    let mut i = 0;
    let bytes = source;
    while i < bytes.len() {
        let c = bytes[i..].chars().next().unwrap_or(' ');
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' && q != '`' {
                if let Some(n) = bytes[i + 1..].chars().next() {
                    out.push(n);
                    i += n.len_utf8();
                }
            } else if c == q {
                quote = None;
            }
        } else if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
            out.push(c);
        } else if bytes[i..].starts_with(PREFIX)
            && !prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '.' || p == '#')
        {
            out.push_str("sprig_");
            i += PREFIX.len();
            prev = Some('_');
            continue;
        } else {
            out.push(c);
        }
        prev = Some(c);
        i += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn namespaces_are_rewritten_outside_strings_only() {
        assert_eq!(
            rewrite_namespaces(r#"sprig.upper("sprig.x") + a.sprig.b + 'it\'s sprig.'"#),
            r#"sprig_upper("sprig.x") + a.sprig.b + 'it\'s sprig.'"#
        );
    }

    #[test]
    fn jsonpath_single_and_many() {
        let doc = json!({"a": {"b": [1, 2, 3]}, "items": [{"n": "x"}, {"n": "y"}]});
        assert_eq!(jsonpath(&doc, "$.a.b[1]").unwrap(), 2);
        assert_eq!(jsonpath(&doc, "$.items[*].n").unwrap(), json!(["x", "y"]));
        assert_eq!(jsonpath(&json!(doc.to_string()), "a.b").unwrap(), json!([1, 2, 3]));
        assert!(jsonpath(&doc, "$.nope").unwrap_err().contains("matches nothing"));
        assert!(jsonpath(&json!("not json"), "$.a").unwrap_err().contains("not JSON"));
    }
}
