//! Workflow substitution and expressions, on Argon's one expression engine
//! (`argon-expr`): `{{name}}` placeholders, `when` conditions in govaluate's
//! dialect (bare words read as strings, so `heads == heads` holds), and
//! `{{= expression}}` in expr-lang as Argo evaluates it.

use std::collections::BTreeMap;

use argon_expr::{BareWords, Scope, template};
use serde_json::Value;

/// The variables visible to a template: `inputs.parameters.x`,
/// `steps.a.outputs.result`, `workflow.name`, `item`...
pub type Vars = BTreeMap<String, String>;

/// Why an expression could not be evaluated: the expression, where in it,
/// and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExprError(pub String);

type Result<T> = std::result::Result<T, ExprError>;

impl From<argon_expr::Error> for ExprError {
    fn from(e: argon_expr::Error) -> Self {
        ExprError(e.to_string())
    }
}

fn scope(vars: &Vars) -> Scope {
    Scope::from_flat(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Replaces every `{{name}}` whose name is in `vars`, and evaluates every
/// `{{=expression}}`. Placeholders naming unknown variables are left as
/// written (a later stage may know them, e.g. `{{item}}` before expansion);
/// an expression that cannot be parsed or evaluated is an error.
pub fn substitute(text: &str, vars: &Vars) -> Result<String> {
    Ok(template::substitute(
        text,
        |name| vars.get(name).cloned(),
        || scope(vars),
    )?)
}

/// The names in `{{...}}` placeholders of `text` that `vars` does not define
/// (expressions excluded).
pub fn unresolved(text: &str) -> Vec<String> {
    template::variables(text).into_iter().map(str::to_string).collect()
}

/// Evaluates a `when` condition: substitutes, then evaluates the result in
/// govaluate's dialect, bare words read as strings.
pub fn eval_when(when: &str, vars: &Vars) -> Result<bool> {
    let text = substitute(when, vars)?;
    if let Some(name) = unresolved(&text).first() {
        return Err(ExprError(format!("'{{{{{name}}}}}' has no value here")));
    }
    match argon_expr::eval_govaluate(&text, &scope(vars), BareWords::Strings)? {
        Value::Bool(b) => Ok(b),
        other => Err(ExprError(format!(
            "when '{text}' gives {} rather than true or false",
            to_text(&other)
        ))),
    }
}

/// Evaluates a condition in the expression language (`response.statusCode == 201`).
/// Numbers under `response.` are numbers, as in the HTTP response Argo
/// evaluates against.
pub fn eval_condition(expression: &str, vars: &Vars) -> Result<bool> {
    match eval_typed(expression, vars)? {
        Value::Bool(b) => Ok(b),
        other => Err(ExprError(format!(
            "'{expression}' gives {} rather than true or false",
            to_text(&other)
        ))),
    }
}

fn eval_typed(expression: &str, vars: &Vars) -> Result<Value> {
    let mut nested = argon_expr::nest(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(Value::Object(response)) = nested.get_mut("response") {
        for v in response.values_mut() {
            if let Value::String(s) = v
                && let Ok(n) = s.trim().parse::<i64>()
            {
                *v = Value::Number(n.into());
            }
        }
    }
    let scope = match nested {
        Value::Object(m) => Scope::new(m),
        _ => Scope::default(),
    };
    Ok(argon_expr::eval(expression, &scope)?)
}

/// Evaluates an expression to a value.
pub fn eval_expression(expression: &str, vars: &Vars) -> Result<Value> {
    Ok(argon_expr::eval(expression, &scope(vars))?)
}

/// A value as it is substituted into text: strings as they are, integral
/// numbers without a fraction, everything else as JSON.
pub fn to_text(v: &Value) -> String {
    argon_expr::to_text(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn substitutes_known_names_and_leaves_unknown_ones() {
        let v = vars(&[("inputs.parameters.message", "hi"), ("workflow.name", "wf-1")]);
        assert_eq!(
            substitute("say {{inputs.parameters.message}} in {{ workflow.name }} {{item}}", &v).unwrap(),
            "say hi in wf-1 {{item}}"
        );
    }

    #[test]
    fn when_reads_bare_words_as_strings() {
        let v = vars(&[
            ("steps.flip-coin.outputs.result", "heads"),
            ("tasks.check-status.status", "Failed"),
        ]);
        assert!(eval_when("{{steps.flip-coin.outputs.result}} == heads", &v).unwrap());
        assert!(!eval_when("{{steps.flip-coin.outputs.result}} == tails", &v).unwrap());
        assert!(eval_when("{{tasks.check-status.status}} == 'Failed'", &v).unwrap());
        assert!(eval_when("5 > 3 && !(2 >= 4) || false", &v).unwrap());
        assert!(eval_when("hello-world != hello", &v).unwrap());
        assert!(eval_when("'abc' =~ '^a'", &v).unwrap());
        assert!(eval_when("10 == 10.0", &v).unwrap());
        let e = eval_when("{{steps.flip-coin.outputs.result}} == heads", &vars(&[])).unwrap_err();
        assert_eq!(e.0, "'{{steps.flip-coin.outputs.result}}' has no value here");
        assert!(eval_when("1 + ", &v).is_err());
    }

    #[test]
    fn expressions_use_variables_and_functions() {
        let v = vars(&[
            ("inputs.parameters.n", "41"),
            ("item", r#"{"name":"a","size":3}"#),
            ("steps.gen.outputs.result", r#"{"list":[1,2,3]}"#),
            ("workflow.name", "wf"),
        ]);
        assert_eq!(substitute("{{=asInt(inputs.parameters.n) + 1}}", &v).unwrap(), "42");
        assert_eq!(substitute("{{=item.name}}-{{=item.size * 2}}", &v).unwrap(), "a-6");
        assert_eq!(
            substitute("{{=jsonpath(steps['gen'].outputs.result, '$.list[1]')}}", &v).unwrap(),
            "2"
        );
        assert_eq!(substitute("{{=sprig.upper(workflow.name)}}", &v).unwrap(), "WF");
        assert_eq!(
            substitute("{{=asInt(inputs.parameters.n) > 40 ? 'big' : 'small'}}", &v).unwrap(),
            "big"
        );
        assert_eq!(substitute("{{='a' in ['a', 'b']}}", &v).unwrap(), "true");
        assert_eq!(substitute("{{=string(asFloat('1.5') * 2)}}", &v).unwrap(), "3");
        assert!(substitute("{{=nosuch.var}}", &v).is_err());
    }

    #[test]
    fn conditions_over_a_response() {
        let v = vars(&[("response.statusCode", "201")]);
        assert!(eval_condition("response.statusCode == 201", &v).unwrap());
        assert!(!eval_condition("response.statusCode >= 300", &v).unwrap());
    }
}
