//! Argon's one expression engine, used by the workflow engine, the sensor,
//! the event source and the manifest checks.
//!
//! - **expr-lang**, as Argo evaluates `{{= ...}}`, `when` of a CronWorkflow,
//!   `retryStrategy.expression`, sensor `expr` filters and event-source
//!   filters: the maintained `expr-lang` crate does the language (closures
//!   `{# ...}`, `map`/`filter`/`all`/`any`/`len`, ternaries, `in`,
//!   `matches`, `?.`, `??`); this crate adds Argo's functions (`asInt`,
//!   `asFloat`, `toJson`, `jsonpath`, `sprig.*`).
//! - **govaluate**, the dialect of a workflow step's `when` and of the
//!   sensor's `exprs` filters: bare words are strings, `=~` matches.
//! - **templates**: Argo's `{{name}}` and `{{= expression}}` in text.
//! - one **JSONPath** (jsonpath-rust) and one **sprig** table.
//! - the **boolean form** of a DAG task's `depends` and a sensor trigger's
//!   `conditions`: names with `&&`, `||`, `!` and parentheses.

pub mod boolean;
mod bounds;
mod error;
mod functions;
mod govaluate;
mod scope;
pub mod sprig;
pub mod template;
mod value;

pub use error::{Error, Result};
pub use functions::jsonpath;
pub use govaluate::{BareWords, Govaluate, eval_govaluate};
pub use scope::{Scope, nest};
pub use value::to_text;

use serde_json::Value;

use crate::bounds::Size;

/// Evaluates an expr-lang expression in `scope`.
pub fn eval(expression: &str, scope: &Scope) -> Result<Value> {
    let (program, size) = compile(expression)?;
    let env = functions::environment();
    let out = size
        .with_stack(|| env.run(&program, scope.context()))
        .map_err(|e| Error::from_expr(expression, e))?;
    Ok(value::from_expr(out))
}

/// Evaluates an expr-lang expression that must give true or false.
pub fn eval_bool(expression: &str, scope: &Scope) -> Result<bool> {
    match eval(expression, scope)? {
        Value::Bool(b) => Ok(b),
        other => Err(Error::new(
            expression,
            format!("gives {} rather than true or false", to_text(&other)),
        )),
    }
}

/// Parses an expr-lang expression without evaluating it: what a manifest
/// check calls, so that an expression Argon cannot evaluate is reported
/// before anything runs.
pub fn check(expression: &str) -> Result<()> {
    compile(expression).map(|_| ())
}

fn compile(expression: &str) -> Result<(expr::Program, Size)> {
    if expression.trim().is_empty() {
        return Err(Error::new(expression, "empty expression"));
    }
    let source = functions::rewrite_namespaces(expression);
    compile_source(expression, &source)
}

/// Compiles expr-lang `source` written for `expression` (the text errors
/// name), within the bounds of [`bounds`].
pub(crate) fn compile_source(expression: &str, source: &str) -> Result<(expr::Program, Size)> {
    let size = Size::measure(expression, source)?;
    let program = size
        .with_stack(|| expr::compile(source))
        .map_err(|e| Error::from_expr(expression, e))?;
    Ok((program, size))
}
