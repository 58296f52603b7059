//! The sprig functions Argon provides, once: `sprig.NAME(...)` in
//! expressions and `{{ x | NAME }}` in the sensor's Go templates both call
//! [`call`]. Arguments come in sprig's order, the subject last (so a
//! template pipe passes it).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value};

use crate::value::to_text;

/// Every sprig function [`call`] knows.
pub const NAMES: &[&str] = &[
    "upper",
    "lower",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "title",
    "nospace",
    "quote",
    "squote",
    "replace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "repeat",
    "trunc",
    "substr",
    "split",
    "splitList",
    "join",
    "default",
    "empty",
    "coalesce",
    "ternary",
    "toJson",
    "toRawJson",
    "toPrettyJson",
    "fromJson",
    "toString",
    "int",
    "int64",
    "atoi",
    "float64",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "list",
    "first",
    "last",
    "b64enc",
    "b64dec",
    "now",
];

/// Calls the sprig function `name`; `None` when there is no such function.
pub fn call(name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    if !NAMES.contains(&name) {
        return None;
    }
    Some(run(name, args))
}

fn need<'a>(name: &str, args: &'a [Value], n: usize) -> Result<&'a [Value], String> {
    if args.len() < n {
        return Err(format!("{name} needs {n} argument(s), got {}", args.len()));
    }
    Ok(args)
}

fn s(v: &Value) -> String {
    to_text(v)
}

fn num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "not a number".to_string()),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        Value::Null => Ok(0.0),
        other => {
            let t = s(other);
            t.trim().parse::<f64>().map_err(|_| format!("'{t}' is not a number"))
        }
    }
}

fn int_of(v: &Value) -> i64 {
    num(v).map(|f| f.trunc() as i64).unwrap_or(0)
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::Number((f as i64).into())
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// sprig's notion of empty (`default`, `empty`, `coalesce`).
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

fn list_of(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::String(t) if t.trim_start().starts_with('[') => match serde_json::from_str(t) {
            Ok(Value::Array(a)) => a,
            _ => vec![v.clone()],
        },
        other => vec![other.clone()],
    }
}

fn run(name: &str, args: &[Value]) -> Result<Value, String> {
    let text = |v: String| Ok(Value::String(v));
    match name {
        "upper" => text(s(&need(name, args, 1)?[0]).to_uppercase()),
        "lower" => text(s(&need(name, args, 1)?[0]).to_lowercase()),
        "trim" => text(s(&need(name, args, 1)?[0]).trim().to_string()),
        "trimAll" => {
            let a = need(name, args, 2)?;
            let cut = s(&a[0]);
            text(s(&a[1]).trim_matches(|c| cut.contains(c)).to_string())
        }
        "trimPrefix" => {
            let a = need(name, args, 2)?;
            let (p, t) = (s(&a[0]), s(&a[1]));
            text(t.strip_prefix(p.as_str()).unwrap_or(&t).to_string())
        }
        "trimSuffix" => {
            let a = need(name, args, 2)?;
            let (p, t) = (s(&a[0]), s(&a[1]));
            text(t.strip_suffix(p.as_str()).unwrap_or(&t).to_string())
        }
        "title" => {
            let t = s(&need(name, args, 1)?[0]);
            let mut out = String::with_capacity(t.len());
            let mut start = true;
            for c in t.chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            text(out)
        }
        "nospace" => text(
            s(&need(name, args, 1)?[0])
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
        ),
        "quote" => text(
            args.iter()
                .map(|a| Value::String(s(a)).to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => text(args.iter().map(|a| format!("'{}'", s(a))).collect::<Vec<_>>().join(" ")),
        "replace" => {
            let a = need(name, args, 3)?;
            text(s(&a[2]).replace(&s(&a[0]), &s(&a[1])))
        }
        "contains" => {
            let a = need(name, args, 2)?;
            Ok(Value::Bool(s(&a[1]).contains(&s(&a[0]))))
        }
        "hasPrefix" => {
            let a = need(name, args, 2)?;
            Ok(Value::Bool(s(&a[1]).starts_with(&s(&a[0]))))
        }
        "hasSuffix" => {
            let a = need(name, args, 2)?;
            Ok(Value::Bool(s(&a[1]).ends_with(&s(&a[0]))))
        }
        "repeat" => {
            let a = need(name, args, 2)?;
            text(s(&a[1]).repeat(int_of(&a[0]).max(0) as usize))
        }
        "trunc" => {
            let a = need(name, args, 2)?;
            let n = int_of(&a[0]);
            let chars: Vec<char> = s(&a[1]).chars().collect();
            let kept: String = if n >= 0 {
                chars.iter().take(n as usize).collect()
            } else {
                chars[chars.len().saturating_sub(n.unsigned_abs() as usize)..]
                    .iter()
                    .collect()
            };
            text(kept)
        }
        "substr" => {
            // sprig `substr START END S`, by characters; END < 0 is the end.
            let a = need(name, args, 3)?;
            let chars: Vec<char> = s(&a[2]).chars().collect();
            let start = usize::try_from(int_of(&a[0])).unwrap_or(0).min(chars.len());
            let end = usize::try_from(int_of(&a[1]))
                .map_or(chars.len(), |e| e.min(chars.len()))
                .max(start);
            text(chars[start..end].iter().collect())
        }
        "split" => {
            // sprig `split SEP S`: a map `_0`, `_1`, ... of the parts.
            let a = need(name, args, 2)?;
            let sep = s(&a[0]);
            let map: Map<String, Value> = s(&a[1])
                .split(sep.as_str())
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), Value::String(p.to_string())))
                .collect();
            Ok(Value::Object(map))
        }
        "splitList" => {
            let a = need(name, args, 2)?;
            let sep = s(&a[0]);
            Ok(Value::Array(
                s(&a[1])
                    .split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            ))
        }
        "join" => {
            let a = need(name, args, 2)?;
            let sep = s(&a[0]);
            text(list_of(&a[1]).iter().map(s).collect::<Vec<_>>().join(&sep))
        }
        "default" => match args {
            [fallback] => Ok(fallback.clone()),
            [fallback, given, ..] => Ok(if is_empty(given) {
                fallback.clone()
            } else {
                given.clone()
            }),
            [] => Err("default needs at least 1 argument".into()),
        },
        "empty" => Ok(Value::Bool(is_empty(&need(name, args, 1)?[0]))),
        "coalesce" => Ok(args.iter().find(|v| !is_empty(v)).cloned().unwrap_or(Value::Null)),
        "ternary" => {
            let a = need(name, args, 3)?;
            Ok(if !is_empty(&a[2]) { a[0].clone() } else { a[1].clone() })
        }
        "toJson" | "toRawJson" => text(need(name, args, 1)?[0].to_string()),
        "toPrettyJson" => serde_json::to_string_pretty(&need(name, args, 1)?[0])
            .map(Value::String)
            .map_err(|e| e.to_string()),
        "fromJson" => serde_json::from_str(&s(&need(name, args, 1)?[0])).map_err(|e| format!("fromJson: {e}")),
        "toString" => text(s(&need(name, args, 1)?[0])),
        "int" | "int64" | "atoi" => Ok(Value::Number(int_of(&need(name, args, 1)?[0]).into())),
        "float64" => {
            Ok(Number::from_f64(num(&need(name, args, 1)?[0]).unwrap_or(0.0)).map_or(Value::Null, Value::Number))
        }
        "add" => Ok(number(args.iter().map(num).sum::<Result<f64, _>>()?)),
        "mul" => Ok(number(args.iter().map(num).product::<Result<f64, _>>()?)),
        "sub" => {
            let a = need(name, args, 2)?;
            Ok(number(num(&a[0])? - num(&a[1])?))
        }
        "div" | "mod" => {
            let a = need(name, args, 2)?;
            let d = num(&a[1])?;
            if d == 0.0 {
                return Err(format!("{name}: division by zero"));
            }
            let n = num(&a[0])?;
            Ok(number(if name == "div" { (n / d).trunc() } else { n % d }))
        }
        "max" | "min" => {
            let nums = args.iter().map(num).collect::<Result<Vec<_>, _>>()?;
            let pick = if name == "max" { f64::max } else { f64::min };
            nums.into_iter()
                .reduce(pick)
                .map(number)
                .ok_or_else(|| format!("{name} needs at least 1 argument"))
        }
        "list" => Ok(Value::Array(args.to_vec())),
        "first" => Ok(list_of(&need(name, args, 1)?[0])
            .first()
            .cloned()
            .unwrap_or(Value::Null)),
        "last" => Ok(list_of(&need(name, args, 1)?[0]).last().cloned().unwrap_or(Value::Null)),
        "b64enc" => text(BASE64.encode(s(&need(name, args, 1)?[0]))),
        "b64dec" => {
            let t = s(&need(name, args, 1)?[0]);
            let bytes = BASE64.decode(t.trim()).map_err(|e| format!("b64dec: {e}"))?;
            text(String::from_utf8_lossy(&bytes).into_owned())
        }
        "now" => text(now_rfc3339()),
        other => Err(format!("unknown sprig function '{other}'")),
    }
}

/// The current time as RFC 3339, in UTC, to the second.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn c(name: &str, args: &[Value]) -> Value {
        call(name, args).unwrap().unwrap()
    }

    #[test]
    fn the_common_functions() {
        assert_eq!(c("upper", &[json!("a")]), "A");
        assert_eq!(c("replace", &[json!("-"), json!("_"), json!("a-b")]), "a_b");
        assert_eq!(c("join", &[json!(","), json!([1, "b"])]), "1,b");
        assert_eq!(c("split", &[json!(","), json!("a,b")]), json!({"_0": "a", "_1": "b"}));
        assert_eq!(c("default", &[json!("d"), json!("")]), "d");
        assert_eq!(c("substr", &[json!(1), json!(3), json!("hello")]), "el");
        assert_eq!(c("add", &[json!(1), json!("2")]), 3);
        assert_eq!(c("div", &[json!(7), json!(2)]), 3);
        assert_eq!(c("ternary", &[json!("y"), json!("n"), json!(true)]), "y");
        assert_eq!(c("b64dec", &[c("b64enc", &[json!("hi")])]), "hi");
        assert!(call("nope", &[]).is_none());
        assert!(call("replace", &[json!("a")]).unwrap().is_err());
        let now = c("now", &[]);
        assert_eq!(now.as_str().unwrap().len(), 20, "{now}");
    }
}
