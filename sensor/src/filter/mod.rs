//! Dependency filters: pure functions of an event, compiled once from the
//! manifest. Each group (`time`, `context`, `data`, `exprs`, `script`) is
//! its own module with `fn matches(&self, event) -> Result<bool>`; this
//! module combines the groups set on a dependency with
//! `filtersLogicalOperator`.
//!
//! An error (a path that does not exist, data that is not JSON) means the
//! event does not pass; with `or` an error of one group does not hide another
//! group that passes.

pub mod context;
pub mod data;
pub mod expr;
pub mod script;
pub mod time;

use argon_crds::sensor::{EventDependency, LogicalOperator};

use crate::{Error, Result, SensorEvent};

/// The filters of one dependency, ready to run.
#[derive(Clone, Debug)]
pub struct DependencyFilter {
    time: Option<time::TimeWindow>,
    context: Option<context::ContextFilter>,
    data: Option<data::DataFilters>,
    exprs: Option<expr::ExprFilters>,
    script: Option<script::ScriptFilter>,
    operator: LogicalOperator,
}

impl DependencyFilter {
    /// Compiles the filters of `dependency`; a bad regex, template, time or
    /// expression is an error here, at startup.
    pub fn compile(dependency: &EventDependency) -> Result<Self> {
        let operator = dependency.filters_logical_operator.unwrap_or_default();
        let Some(f) = &dependency.filters else {
            return Ok(DependencyFilter {
                time: None,
                context: None,
                data: None,
                exprs: None,
                script: None,
                operator,
            });
        };
        Ok(DependencyFilter {
            time: f.time.as_ref().map(time::TimeWindow::compile).transpose()?,
            context: f.context.as_ref().map(context::ContextFilter::new),
            data: if f.data.is_empty() {
                None
            } else {
                Some(data::DataFilters::compile(
                    &f.data,
                    f.data_logical_operator.unwrap_or_default(),
                )?)
            },
            exprs: if f.exprs.is_empty() {
                None
            } else {
                Some(expr::ExprFilters::compile(
                    &f.exprs,
                    f.expr_logical_operator.unwrap_or_default(),
                )?)
            },
            script: f
                .script
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(script::ScriptFilter::compile)
                .transpose()?,
            operator,
        })
    }

    /// Whether the event passes. With `and` (the default) every group set
    /// must pass; with `or` at least one.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        let mut results: Vec<Result<bool>> = Vec::with_capacity(5);
        if let Some(f) = &self.exprs {
            results.push(f.matches(event));
        }
        if let Some(f) = &self.data {
            results.push(f.matches(event));
        }
        if let Some(f) = &self.context {
            results.push(f.matches(event));
        }
        if let Some(f) = &self.time {
            results.push(f.matches(event));
        }
        if let Some(f) = &self.script {
            results.push(f.matches(event));
        }
        combine(self.operator, "filters", results)
    }

    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        self.time.is_none()
            && self.context.is_none()
            && self.data.is_none()
            && self.exprs.is_none()
            && self.script.is_none()
    }
}

/// Combines results with `and` (all true; the first error or false decides)
/// or `or` (any true; errors reported only when nothing passed).
pub(crate) fn combine(
    operator: LogicalOperator,
    kind: &'static str,
    results: impl IntoIterator<Item = Result<bool>>,
) -> Result<bool> {
    match operator {
        LogicalOperator::And => {
            for r in results {
                if !r? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        LogicalOperator::Or => {
            let mut errors = Vec::new();
            for r in results {
                match r {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
            if errors.is_empty() {
                Ok(false)
            } else {
                Err(Error::Filter {
                    kind,
                    message: errors.join(" / "),
                })
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use argon_crds::sensor::{EventDependencyFilter, TimeFilter};
    use serde_json::{Value, json};

    use super::*;

    /// A webhook event with `data` at 2026-11-21T10:30:00Z.
    pub fn event(data: Value) -> SensorEvent {
        event_at(data, "2026-11-21T10:30:00Z")
    }

    pub fn event_at(data: Value, time: &str) -> SensorEvent {
        let mut e = argon_eventbus::Event::new("webhook", "example", "webhook", &data);
        e.context.time = time.parse().expect("rfc3339 time");
        e.context.id = "id-1".to_owned();
        SensorEvent::from_event(&e)
    }

    pub fn dependency(filters: Value, operator: Option<&str>) -> EventDependency {
        let mut dep = json!({"name": "dep", "eventSourceName": "webhook", "eventName": "example", "filters": filters});
        if let Some(op) = operator {
            dep["filtersLogicalOperator"] = json!(op);
        }
        serde_json::from_value(dep).expect("dependency")
    }

    #[test]
    fn groups_combine_with_and_or() {
        let filters = json!({
            "data": [{"path": "a", "type": "string", "value": ["x"]}],
            "exprs": [{"expr": "n > 5", "fields": [{"name": "n", "path": "n"}]}],
        });
        // (data passes, expr passes, operator, expected)
        let cases = [
            (json!({"a": "x", "n": 6}), None, Some(true)),
            (json!({"a": "y", "n": 6}), None, Some(false)),
            (json!({"a": "y", "n": 6}), Some("or"), Some(true)),
            (json!({"a": "y", "n": 1}), Some("or"), Some(false)),
            // a missing path is an error with `and`, not with `or` when another group passes
            (json!({"n": 6}), None, None),
            (json!({"n": 6}), Some("or"), Some(true)),
            (json!({"n": 1}), Some("or"), None),
        ];
        for (data, op, want) in cases {
            let f = DependencyFilter::compile(&dependency(filters.clone(), op)).unwrap();
            let got = f.matches(&event(data.clone())).ok();
            assert_eq!(got, want, "{data} {op:?}");
        }
    }

    #[test]
    fn no_filters_pass_everything() {
        let dep: EventDependency =
            serde_json::from_value(json!({"name": "d", "eventSourceName": "s", "eventName": "e"})).unwrap();
        let f = DependencyFilter::compile(&dep).unwrap();
        assert!(f.is_empty());
        assert!(f.matches(&event(json!(null))).unwrap());
        let with_time = EventDependencyFilter {
            time: Some(TimeFilter {
                start: "10:00:00".into(),
                stop: "11:00:00".into(),
                timezone: None,
            }),
            ..Default::default()
        };
        let dep = EventDependency {
            filters: Some(with_time),
            ..dep
        };
        assert!(
            DependencyFilter::compile(&dep)
                .unwrap()
                .matches(&event(json!({})))
                .unwrap()
        );
    }
}
