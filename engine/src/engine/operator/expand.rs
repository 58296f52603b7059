//! Expansion of a step or task over `withItems`, `withParam` or
//! `withSequence`, the item's variables and label, and the substitution of
//! variables into a call's arguments.

use argon_crds::workflow::{Arguments, Sequence};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::error::{OperatorError, Result};
use super::truncate;
use crate::expr::{self, Vars};

/// The items a step or task runs over: `None` when it is not expanded.
pub(super) fn expand(
    with_items: &[Value],
    with_param: Option<&str>,
    with_sequence: Option<&Sequence>,
    vars: &Vars,
) -> Result<Option<Vec<Value>>> {
    if !with_items.is_empty() {
        let mut out = Vec::new();
        for item in with_items {
            out.push(substitute_value(item, vars)?);
        }
        return Ok(Some(out));
    }
    if let Some(p) = with_param {
        let text = expr::substitute(p, vars)?;
        let v: Value = serde_json::from_str(&text).map_err(|source| OperatorError::WithParamNotJson {
            param: p.to_string(),
            text: truncate(&text, 200),
            source,
        })?;
        return match v {
            Value::Array(items) => Ok(Some(items)),
            _ => Err(OperatorError::WithParamNotList {
                param: p.to_string(),
                text: truncate(&text, 200),
            }),
        };
    }
    if let Some(seq) = with_sequence {
        let get = |x: &Option<IntOrString>| x.as_ref().map(|v| int_or_string(v, vars)).transpose();
        let start = get(&seq.start)?.unwrap_or(0);
        let end = match (get(&seq.count)?, get(&seq.end)?) {
            (Some(count), _) => {
                if count <= 0 {
                    return Ok(Some(Vec::new()));
                }
                start + count - 1
            }
            (None, Some(end)) => end,
            (None, None) => return Err(OperatorError::SequenceUnbounded),
        };
        let numbers: Vec<i64> = if end >= start {
            (start..=end).collect()
        } else {
            (end..=start).rev().collect()
        };
        return Ok(Some(
            numbers
                .into_iter()
                .map(|n| Value::String(format_sequence(seq.format.as_deref(), n)))
                .collect(),
        ));
    }
    Ok(None)
}

/// A number formatted with a printf format (`%02d`, `%x`, `%03X`, `%d`).
fn format_sequence(format: Option<&str>, n: i64) -> String {
    let Some(f) = format else { return n.to_string() };
    let Some(pos) = f.find('%') else { return f.to_string() };
    let rest = &f[pos + 1..];
    let spec_len = rest.find(|c: char| c.is_ascii_alphabetic()).map(|i| i + 1).unwrap_or(0);
    if spec_len == 0 {
        return f.to_string();
    }
    let spec = &rest[..spec_len];
    let (flags, conv) = spec.split_at(spec_len - 1);
    let zero = flags.starts_with('0');
    let width: usize = flags.trim_start_matches('0').parse().unwrap_or(0);
    let body = match conv {
        "x" => format!("{n:x}"),
        "X" => format!("{n:X}"),
        "o" => format!("{n:o}"),
        _ => n.to_string(),
    };
    let padded = if zero {
        format!("{body:0>width$}")
    } else {
        format!("{body:>width$}")
    };
    format!("{}{}{}", &f[..pos], padded, &rest[spec_len..])
}

pub(super) fn substitute_value(v: &Value, vars: &Vars) -> Result<Value> {
    Ok(match v {
        Value::String(s) => Value::String(expr::substitute(s, vars)?),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute_value(x, vars)).collect::<Result<_, _>>()?),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), substitute_value(x, vars)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

/// The label of an item in a node name: `hello`, `image:debian,tag:9.1`.
pub(super) fn item_label(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| format!("{k}:{}", expr::to_text(x)))
            .collect::<Vec<_>>()
            .join(","),
        other => expr::to_text(other),
    }
}

pub(super) fn item_vars(vars: &Vars, item: Option<&Value>) -> Vars {
    let mut v = vars.clone();
    if let Some(item) = item {
        v.insert("item".into(), expr::to_text(item));
        if let Value::Object(m) = item {
            for (k, x) in m {
                v.insert(format!("item.{k}"), expr::to_text(x));
            }
        }
    }
    v
}

pub(super) fn substitute_args(args: &Arguments, vars: &Vars) -> Result<Arguments> {
    let mut out = args.clone();
    for p in &mut out.parameters {
        if let Some(v) = &p.value {
            p.value = Some(expr::substitute(&v.0, vars)?.into());
        }
        if let Some(v) = &p.default {
            p.default = Some(expr::substitute(&v.0, vars)?.into());
        }
        if p.value.is_none()
            && let Some(from) = p.value_from.as_ref().and_then(|f| f.expression.clone())
        {
            let v = expr::eval_expression(&from, vars)?;
            p.value = Some(expr::to_text(&v).into());
        }
    }
    for a in &mut out.artifacts {
        if let Some(from) = &a.from {
            a.from = Some(expr::substitute(from, vars)?);
        }
        if let Some(e) = a.from_expression.clone() {
            let v = expr::eval_expression(&e, vars)?;
            a.from = Some(expr::to_text(&v));
        }
    }
    Ok(out)
}

pub(super) fn int_or_string(v: &IntOrString, vars: &Vars) -> Result<i64> {
    match v {
        IntOrString::Int(i) => Ok(*i as i64),
        IntOrString::String(s) => {
            let s = expr::substitute(s, vars)?;
            s.trim().parse::<i64>().map_err(|_| OperatorError::NotANumber(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_format_like_printf() {
        assert_eq!(format_sequence(Some("2020-05-%02X"), 10), "2020-05-0A");
        assert_eq!(format_sequence(Some("%03d"), 7), "007");
        assert_eq!(format_sequence(None, 7), "7");
        let seq = Sequence {
            count: Some(IntOrString::Int(3)),
            start: Some(IntOrString::String("2".into())),
            ..Default::default()
        };
        let items = expand(&[], None, Some(&seq), &Vars::new()).unwrap().unwrap();
        assert_eq!(items, vec![Value::from("2"), Value::from("3"), Value::from("4")]);
    }

    #[test]
    fn item_labels_follow_the_upstream_shape() {
        assert_eq!(
            item_label(&serde_json::json!({"image": "debian", "tag": "9.1"})),
            "image:debian,tag:9.1"
        );
        assert_eq!(item_label(&serde_json::json!("hello argo")), "hello argo");
    }
}
