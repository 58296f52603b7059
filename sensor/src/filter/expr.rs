//! The `exprs` filters: boolean expressions in govaluate syntax over named
//! values of the event data (`fields`: name -> GJSON path), combined with
//! `exprLogicalOperator`. The expressions are Argon's one expression engine
//! (`argon-expr`) in its govaluate dialect.

use argon_crds::sensor::{ExprFilter, LogicalOperator};
use argon_expr::{Govaluate, Scope};
use serde_json::{Map, Value};

use crate::filter::combine;
use crate::{Error, Result, SensorEvent};

fn err(message: impl Into<String>) -> Error {
    Error::Filter {
        kind: "expr",
        message: message.into(),
    }
}

/// One expression with its fields.
#[derive(Clone, Debug)]
pub struct CompiledExpr {
    expr: Govaluate,
    fields: Vec<(String, String)>,
}

impl CompiledExpr {
    /// Parses the expression.
    pub fn compile(f: &ExprFilter) -> Result<Self> {
        Ok(CompiledExpr {
            expr: Govaluate::compile(&f.expr).map_err(|e| err(e.to_string()))?,
            fields: f.fields.iter().map(|p| (p.name.clone(), p.path.clone())).collect(),
        })
    }

    /// Binds the fields and evaluates; a path that does not exist is an error.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        let mut vars = Map::with_capacity(self.fields.len());
        for (name, path) in &self.fields {
            let found = gjson::get(&event.data_text, path);
            if !found.exists() {
                return Err(err(format!("path '{path}' does not exist")));
            }
            vars.insert(name.clone(), serde_json::from_str(found.json()).unwrap_or(Value::Null));
        }
        let v = self.expr.eval(&Scope::new(vars)).map_err(|e| err(e.to_string()))?;
        Ok(v == Value::Bool(true))
    }
}

/// The expression filters of one dependency.
#[derive(Clone, Debug)]
pub struct ExprFilters {
    exprs: Vec<CompiledExpr>,
    operator: LogicalOperator,
}

impl ExprFilters {
    /// Parses every expression.
    pub fn compile(filters: &[ExprFilter], operator: LogicalOperator) -> Result<Self> {
        Ok(ExprFilters {
            exprs: filters.iter().map(CompiledExpr::compile).collect::<Result<_>>()?,
            operator,
        })
    }

    /// Combines the expressions with the expression logical operator.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        if !gjson::valid(&event.data_text) {
            return Err(err("event data is not valid JSON"));
        }
        combine(self.operator, "expr", self.exprs.iter().map(|e| e.matches(event)))
    }
}

#[cfg(test)]
mod tests {
    use argon_crds::sensor::PayloadField;
    use serde_json::json;

    use super::*;
    use crate::filter::tests::event;

    #[test]
    fn evaluates_like_govaluate() {
        let vars: Map<String, Value> = [
            ("a", json!("b")),
            ("c", json!(10)),
            ("e", json!(false)),
            ("s", json!("refs/heads/main")),
            ("dash-name", json!(3)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let cases = [
            ("a == \"b\" || c == 10", Some(true)),
            ("a == \"b\" && c != 10", Some(false)),
            ("e == false", Some(true)),
            ("!e", Some(true)),
            ("c > 5 && c <= 10", Some(true)),
            ("c * 2 == 20", Some(true)),
            ("c + 1 > 10.5", Some(true)),
            ("(c - 20) < -5", Some(true)),
            ("c % 3 == 1", Some(true)),
            ("a + 'x' == 'bx'", Some(true)),
            ("s =~ '^refs/heads/'", Some(true)),
            ("s !~ 'tags'", Some(true)),
            ("[dash-name] == 3", Some(true)),
            ("(a == 'z' || c == 10) && !(e == true)", Some(true)),
            ("a > 'a'", Some(true)),
            ("missing == 1", None),
            ("c && true", None),
        ];
        for (src, want) in cases {
            let got = Govaluate::compile(src)
                .and_then(|e| e.eval(&Scope::new(vars.clone())))
                .ok()
                .map(|v| v == Value::Bool(true));
            assert_eq!(got, want, "{src}");
        }
        for bad in ["a ==", "(a == b", "a == 'x", "a @ b", ""] {
            assert!(Govaluate::compile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_come_from_gjson_paths() {
        let filter = |expr: &str, fields: &[(&str, &str)]| ExprFilter {
            expr: expr.into(),
            fields: fields
                .iter()
                .map(|(n, p)| PayloadField {
                    name: (*n).into(),
                    path: (*p).into(),
                })
                .collect(),
        };
        let e =
            event(json!({"a": "b", "c": 10, "d": {"e": false}, "nested": {"path": {"can-get": {"longer": false}}}}));
        let yes = filter("a == \"b\" || c == 10", &[("a", "a"), ("c", "c")]);
        let no = filter("a == \"b\" && c != 10", &[("a", "a"), ("c", "c")]);
        let deep = filter("e == false", &[("e", "nested.path.can-get.longer")]);
        let missing = filter("x == 1", &[("x", "nope")]);
        let and = ExprFilters::compile(&[yes.clone(), deep.clone()], LogicalOperator::And).unwrap();
        assert!(and.matches(&e).unwrap());
        let and = ExprFilters::compile(&[yes.clone(), no.clone()], LogicalOperator::And).unwrap();
        assert!(!and.matches(&e).unwrap());
        let or = ExprFilters::compile(&[no.clone(), yes], LogicalOperator::Or).unwrap();
        assert!(or.matches(&e).unwrap());
        let or = ExprFilters::compile(&[no.clone(), missing.clone()], LogicalOperator::Or).unwrap();
        assert!(or.matches(&e).is_err());
        let and = ExprFilters::compile(&[missing], LogicalOperator::And).unwrap();
        assert!(and.matches(&e).is_err());
    }
}
