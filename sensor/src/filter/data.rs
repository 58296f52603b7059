//! The `data` filters: the value at a GJSON `path` of the event data,
//! optionally passed through a `template`, compared as `bool`, `number` or
//! `string` (values are regular expressions) with `= != < <= > >=`; the
//! filter passes when any of its `value`s matches. Several filters combine
//! with `dataLogicalOperator`.

use argon_crds::sensor::{Comparator, DataFilter, JsonType, LogicalOperator};
use regex::Regex;

use crate::filter::combine;
use crate::template::Template;
use crate::{Error, Result, SensorEvent};

/// The data filters of one dependency.
#[derive(Clone, Debug)]
pub struct DataFilters {
    filters: Vec<CompiledDataFilter>,
    operator: LogicalOperator,
}

#[derive(Clone, Debug)]
enum Values {
    Bool(Vec<bool>),
    Number(Vec<f64>),
    String(Vec<Regex>),
}

/// One data filter, with its values parsed and its regexes compiled.
#[derive(Clone, Debug)]
pub struct CompiledDataFilter {
    path: String,
    values: Values,
    comparator: Comparator,
    template: Option<Template>,
}

fn err(message: String) -> Error {
    Error::Filter { kind: "data", message }
}

impl CompiledDataFilter {
    /// Parses the filter's values for its type.
    pub fn compile(f: &DataFilter) -> Result<Self> {
        let json_type = f.json_type().ok_or_else(|| {
            err(format!(
                "unsupported type {:?} of path {:?} (bool, number or string)",
                f.type_, f.path
            ))
        })?;
        let comparator = f.comparator().ok_or_else(|| {
            err(format!(
                "unsupported comparator {:?} (=, !=, <, <=, >, >=)",
                f.comparator.as_deref().unwrap_or_default()
            ))
        })?;
        if f.value.is_empty() {
            return Err(err(format!("no values given for path {:?}", f.path)));
        }
        let values = match json_type {
            JsonType::Bool => Values::Bool(
                f.value
                    .iter()
                    .map(|v| parse_bool(v).ok_or_else(|| err(format!("{v:?} is not a bool (path {:?})", f.path))))
                    .collect::<Result<_>>()?,
            ),
            JsonType::Number => Values::Number(
                f.value
                    .iter()
                    .map(|v| {
                        v.trim()
                            .parse::<f64>()
                            .map_err(|_| err(format!("{v:?} is not a number (path {:?})", f.path)))
                    })
                    .collect::<Result<_>>()?,
            ),
            JsonType::String => {
                if !matches!(comparator, Comparator::Equal | Comparator::NotEqual) {
                    return Err(err(format!("strings compare with = or != only (path {:?})", f.path)));
                }
                Values::String(
                    f.value
                        .iter()
                        .map(|v| Regex::new(v).map_err(|e| err(format!("bad regular expression {v:?}: {e}"))))
                        .collect::<Result<_>>()?,
                )
            }
        };
        let template = f
            .template
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Template::parse)
            .transpose()?;
        Ok(CompiledDataFilter {
            path: f.path.clone(),
            values,
            comparator,
            template,
        })
    }

    /// Whether the event's value at the path matches any value. A path that
    /// does not exist is an error.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        let found = gjson::get(&event.data_text, &self.path);
        if !found.exists() {
            return Err(err(format!("path '{}' does not exist", self.path)));
        }
        let templated;
        let value = match &self.template {
            Some(t) => {
                let out = t
                    .render_non_empty(&serde_json::Value::String(found.str().to_owned()))?
                    .ok_or_else(|| {
                        err(format!(
                            "template '{}' evaluated to empty string or no value",
                            t.source()
                        ))
                    })?;
                templated = serde_json::Value::String(out).to_string();
                gjson::parse(&templated)
            }
            None => found,
        };
        Ok(match &self.values {
            Values::Bool(values) => {
                let got = value.bool();
                values.iter().any(|v| match self.comparator {
                    Comparator::NotEqual => *v != got,
                    _ => *v == got,
                })
            }
            Values::Number(values) => {
                let got = value.f64();
                values.iter().any(|v| match self.comparator {
                    Comparator::Equal => got == *v,
                    Comparator::NotEqual => got != *v,
                    Comparator::Less => got < *v,
                    Comparator::LessOrEqual => got <= *v,
                    Comparator::Greater => got > *v,
                    Comparator::GreaterOrEqual => got >= *v,
                })
            }
            Values::String(regexes) => {
                let got = value.str();
                regexes.iter().any(|r| match self.comparator {
                    Comparator::NotEqual => !r.is_match(got),
                    _ => r.is_match(got),
                })
            }
        })
    }
}

/// Go's strconv.ParseBool.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl DataFilters {
    /// Compiles every filter.
    pub fn compile(filters: &[DataFilter], operator: LogicalOperator) -> Result<Self> {
        Ok(DataFilters {
            filters: filters.iter().map(CompiledDataFilter::compile).collect::<Result<_>>()?,
            operator,
        })
    }

    /// Combines the filters with the data logical operator.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        if !gjson::valid(&event.data_text) {
            return Err(err("event data is not valid JSON".to_owned()));
        }
        combine(self.operator, "data", self.filters.iter().map(|f| f.matches(event)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::filter::tests::event;

    fn filter(path: &str, ty: &str, values: &[&str], comparator: Option<&str>, template: Option<&str>) -> DataFilter {
        DataFilter {
            path: path.into(),
            type_: ty.into(),
            value: values.iter().map(|v| (*v).to_owned()).collect(),
            comparator: comparator.map(Into::into),
            template: template.map(Into::into),
        }
    }

    #[test]
    fn table() {
        let data = json!({
            "body": {"action": "opened", "n": 10, "ok": true, "ref": "refs/heads/main", "b64": "aGVsbG8=", "s": "12",
                     "commits": [{"id": "c1"}, {"id": "c2"}]},
            "headers": {"X-Kind": ["push"]}
        });
        let e = event(data);
        // (path, type, values, comparator, template, expected: Some(bool) or None for error)
        type Case<'a> = (
            &'a str,
            &'a str,
            Vec<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<bool>,
        );
        let cases: Vec<Case> = vec![
            ("body.action", "string", vec!["opened"], None, None, Some(true)),
            (
                "body.action",
                "string",
                vec!["closed", "open.*"],
                None,
                None,
                Some(true),
            ),
            ("body.action", "string", vec!["^closed$"], None, None, Some(false)),
            ("body.action", "string", vec!["opened"], Some("!="), None, Some(false)),
            ("body.action", "string", vec!["closed"], Some("!="), None, Some(true)),
            ("body.ref", "string", vec!["main$"], Some("="), None, Some(true)),
            ("body.commits.1.id", "string", vec!["c2"], None, None, Some(true)),
            ("body.commits.#", "number", vec!["2"], None, None, Some(true)),
            ("headers.X-Kind.0", "string", vec!["push"], None, None, Some(true)),
            ("body.n", "number", vec!["10"], None, None, Some(true)),
            ("body.n", "number", vec!["10.0"], Some("="), None, Some(true)),
            ("body.n", "number", vec!["5"], Some(">"), None, Some(true)),
            ("body.n", "number", vec!["10"], Some(">"), None, Some(false)),
            ("body.n", "number", vec!["10"], Some(">="), None, Some(true)),
            ("body.n", "number", vec!["11"], Some("<"), None, Some(true)),
            ("body.n", "number", vec!["10"], Some("<="), None, Some(true)),
            ("body.n", "number", vec!["10"], Some("!="), None, Some(false)),
            ("body.n", "number", vec!["1", "2", "10"], None, None, Some(true)),
            ("body.s", "number", vec!["12"], None, None, Some(true)),
            ("body.ok", "bool", vec!["true"], None, None, Some(true)),
            ("body.ok", "bool", vec!["false"], None, None, Some(false)),
            ("body.ok", "bool", vec!["false"], Some("!="), None, Some(true)),
            (
                "body.b64",
                "string",
                vec!["^hello$"],
                None,
                Some("{{ b64dec .Input }}"),
                Some(true),
            ),
            (
                "body.action",
                "string",
                vec!["^OPENED$"],
                None,
                Some("{{ .Input | upper }}"),
                Some(true),
            ),
            ("body.missing", "string", vec!["x"], None, None, None),
        ];
        for (path, ty, values, cmp, tmpl, want) in cases {
            let f = CompiledDataFilter::compile(&filter(path, ty, &values, cmp, tmpl)).unwrap();
            assert_eq!(f.matches(&e).ok(), want, "{path} {ty} {values:?} {cmp:?} {tmpl:?}");
        }
    }

    #[test]
    fn data_logical_operator() {
        let e = event(json!({"a": "x", "b": 1}));
        let a = filter("a", "string", &["x"], None, None);
        let b = filter("b", "number", &["2"], None, None);
        let and = DataFilters::compile(&[a.clone(), b.clone()], LogicalOperator::And).unwrap();
        let or = DataFilters::compile(&[a, b], LogicalOperator::Or).unwrap();
        assert!(!and.matches(&e).unwrap());
        assert!(or.matches(&e).unwrap());
    }

    #[test]
    fn bad_filters_are_errors_at_compile_time() {
        assert!(CompiledDataFilter::compile(&filter("a", "number", &["x"], None, None)).is_err());
        assert!(CompiledDataFilter::compile(&filter("a", "bool", &["yes"], None, None)).is_err());
        assert!(CompiledDataFilter::compile(&filter("a", "string", &["("], None, None)).is_err());
        assert!(CompiledDataFilter::compile(&filter("a", "string", &["x"], Some(">"), None)).is_err());
        assert!(CompiledDataFilter::compile(&filter("a", "float", &["1"], None, None)).is_err());
        assert!(CompiledDataFilter::compile(&filter("a", "string", &[], None, None)).is_err());
    }
}
