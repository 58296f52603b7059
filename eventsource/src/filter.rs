//! The event-source `filter.expression`: a boolean expression over the event
//! data, e.g. `body.action == "opened" && len(body.commits) > 0`. An event for
//! which it is false is dropped at the source.
//!
//! The language is expr-lang, evaluated by Argon's one expression engine
//! (`argon-expr`): paths (`body.a`, `header["X-Y"][0]`, `body?.a`), `in`,
//! `contains`, `startsWith`, `matches`, closures, `len`, `lower`, `upper`,
//! `trim`, `string`, `int`, `float`, `has(path)`. A path that does not exist
//! is `nil`.

use argon_expr::Scope;
use serde_json::Value;

/// A compiled filter expression.
#[derive(Clone, Debug)]
pub struct Filter {
    source: String,
}

/// Why an expression could not be compiled or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("filter expression {expression:?}: {message}")]
pub struct FilterError {
    expression: String,
    message: String,
}

impl FilterError {
    fn new(expression: &str, e: argon_expr::Error) -> Self {
        let message = match e.position {
            Some((line, col)) => format!("{} (line {line}, column {col})", e.message),
            None => e.message,
        };
        FilterError {
            expression: expression.to_owned(),
            message,
        }
    }
}

impl Filter {
    /// Compiles an expression; the error says where it is wrong.
    pub fn parse(expression: &str) -> Result<Self, FilterError> {
        argon_expr::check(expression).map_err(|e| FilterError::new(expression, e))?;
        Ok(Filter {
            source: expression.to_owned(),
        })
    }

    /// Whether the event data passes. A result that is not a boolean, or an
    /// operation on values of the wrong type, is an error.
    pub fn matches(&self, data: &Value) -> Result<bool, FilterError> {
        // The event as the expression sees it: `body`, `header`, ...
        let vars = data.as_object().cloned().unwrap_or_default();
        match argon_expr::eval(&self.source, &Scope::new(vars)).map_err(|e| FilterError::new(&self.source, e))? {
            Value::Bool(b) => Ok(b),
            other => Err(FilterError {
                expression: self.source.clone(),
                message: format!("evaluates to {other}, not to true or false"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(expr: &str, data: &Value) -> bool {
        Filter::parse(expr).unwrap().matches(data).unwrap()
    }

    #[test]
    fn compares_paths_and_literals() {
        let data = json!({"body": {"a": "x", "n": 3, "list": [1, 2], "nested": {"k": true}}, "header": {"X-Y": ["v"]}});
        assert!(check(r#"body.a == "x""#, &data));
        assert!(!check(r#"body.a != "x""#, &data));
        assert!(check("body.n > 2 && body.n <= 3", &data));
        assert!(check("body.n == 3.0", &data));
        assert!(check("body.nested.k", &data));
        assert!(check("body.missing == nil", &data));
        assert!(check("len(body.list) == 2 and body.list[1] == 2", &data));
        assert!(check("2 in body.list", &data));
        assert!(check("5 not in body.list", &data));
        assert!(check(r#"header["X-Y"][0] == 'v'"#, &data));
        assert!(check(r#"body.a startsWith "x" || false"#, &data));
        assert!(check(r#"upper(body.a) matches "^X$""#, &data));
        assert!(check("!(body.n < 0) && -body.n == -3 && body.n * 2 + 1 == 7", &data));
        assert!(check("has(body.a) && !has(body.zzz)", &data));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Filter::parse("body.a = 1").unwrap_err().to_string();
        assert!(e.contains("syntax error") && e.contains("column 8"), "{e}");
        let e = Filter::parse("body.a ==").unwrap_err().to_string();
        assert!(e.contains("syntax error"), "{e}");
        let e = Filter::parse("nope(1)")
            .unwrap()
            .matches(&json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Unknown function: nope"), "{e}");
        let e = Filter::parse("body.a")
            .unwrap()
            .matches(&json!({"body": {"a": 1}}))
            .unwrap_err();
        assert!(e.to_string().contains("not to true or false"), "{e}");
        let e = Filter::parse("body.a < 1")
            .unwrap()
            .matches(&json!({"body": {"a": "s"}}))
            .unwrap_err();
        assert!(e.to_string().contains("Invalid operands for operator <"), "{e}");
    }
}
