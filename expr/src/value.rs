//! JSON values to and from expr-lang's, and a value as substituted text.

use expr::Value as X;
use serde_json::{Map, Number, Value};

pub(crate) fn to_expr(v: &Value) -> X {
    match v {
        Value::Null => X::Nil,
        Value::Bool(b) => X::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => X::Integer(i),
            None => X::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => X::String(s.clone()),
        Value::Array(items) => X::Array(items.iter().map(to_expr).collect()),
        Value::Object(map) => X::Map(map.iter().map(|(k, v)| (k.clone(), to_expr(v))).collect()),
    }
}

pub(crate) fn from_expr(v: X) -> Value {
    match v {
        X::Nil => Value::Null,
        X::Bool(b) => Value::Bool(b),
        X::Integer(i) => Value::Number(i.into()),
        X::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        X::String(s) => Value::String(s),
        X::Array(items) => Value::Array(items.into_iter().map(from_expr).collect()),
        X::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        X::Map(map) => Value::Object(map.into_iter().map(|(k, v)| (k, from_expr(v))).collect()),
        X::KeyedMap(pairs) => {
            let mut out = Map::new();
            for (k, v) in pairs {
                out.insert(to_text(&from_expr(k)), from_expr(v));
            }
            Value::Object(out)
        }
    }
}

/// A value as it is substituted into text: strings as they are, null as
/// nothing, integral numbers without a fraction, everything else as JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64()
                && n.is_f64()
                && f.fract() == 0.0
                && f.abs() < 1e15
            {
                return format!("{}", f as i64);
            }
            n.to_string()
        }
        other => other.to_string(),
    }
}
