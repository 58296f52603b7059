//! A conformance table: expressions as Argo's and expr-lang's documentation
//! write them, with the result they document.

use argon_expr::{BareWords, Scope, eval, eval_govaluate, template};
use serde_json::{Value, json};

fn scope() -> Scope {
    Scope::from_flat([
        ("inputs.parameters.x", "2"),
        (
            "inputs.parameters.json",
            r#"{"a": {"b": [10, 20]}, "items": [{"name": "x", "ok": true}, {"name": "y", "ok": false}]}"#,
        ),
        ("workflow.name", "wf-1"),
        ("steps.flip-coin.outputs.result", "heads"),
        ("item", r#"{"name": "big", "size": 5}"#),
        ("item.name", "big"),
        ("item.size", "5"),
        ("retries", "2"),
    ])
}

/// `{{= }}` and other expr-lang fields.
const EXPR: &[(&str, &str)] = &[
    // Argo's variables documentation
    ("asInt(inputs.parameters.x) + 1", "3"),
    ("asFloat(inputs.parameters.x) * 1.5", "3.0"),
    ("string(asInt(inputs.parameters.x))", "\"2\""),
    ("jsonpath(inputs.parameters.json, '$.a.b[1]')", "20"),
    ("jsonpath(inputs.parameters.json, '$.items[*].name')", r#"["x","y"]"#),
    ("toJson([1, 'a'])", r#""[1,\"a\"]""#),
    ("sprig.trim('  x  ')", "\"x\""),
    ("sprig.upper(workflow.name)", "\"WF-1\""),
    ("sprig.join(',', sprig.splitList('-', 'a-b-c'))", "\"a,b,c\""),
    ("asInt(retries) < 3 ? 'retry' : 'give up'", "\"retry\""),
    ("steps['flip-coin'].outputs.result == 'heads'", "true"),
    ("item.size > 3 && item.name in ['big', 'huge']", "true"),
    // closures and collection functions
    (
        "map(filter(jsonpath(inputs.parameters.json, '$.items'), {#.ok}), {#.name})",
        r#"["x"]"#,
    ),
    ("all([1, 2, 3], {# > 0})", "true"),
    ("any([1, 2, 3], {# > 2})", "true"),
    ("len(jsonpath(inputs.parameters.json, '$.items'))", "2"),
    ("filter([1, 2, 3, 4], # % 2 == 0)", "[2,4]"),
    // operators
    ("'hello' matches '^h.*o$'", "true"),
    ("'hello' contains 'ell'", "true"),
    ("'name' in {name: 1}", "true"),
    ("nil ?? 'default'", "\"default\""),
    ("item?.missing?.deeper ?? 'none'", "\"none\""),
    ("not (1 > 2)", "true"),
];

/// `when` of a step, govaluate-style, after `{{...}}` are filled in.
const WHEN: &[(&str, bool)] = &[
    ("heads == heads", true),
    ("tails == heads", false),
    ("5 > 2", true),
    ("Succeeded != Failed", true),
    ("(a == b) || (c == c)", true),
    ("hello =~ 'h.*'", true),
    ("1 in (1, 2)", true),
];

#[test]
fn documented_expressions_give_documented_results() {
    let s = scope();
    let mut failed = Vec::new();
    for (expression, want) in EXPR {
        let want: Value = serde_json::from_str(want).unwrap();
        match eval(expression, &s) {
            Ok(got) if got == want => {}
            Ok(got) => failed.push(format!("{expression}: got {got}, want {want}")),
            Err(e) => failed.push(format!("{expression}: {e}")),
        }
    }
    for (expression, want) in WHEN {
        match eval_govaluate(expression, &s, BareWords::Strings) {
            Ok(Value::Bool(got)) if got == *want => {}
            other => failed.push(format!("when {expression}: {other:?}, want {want}")),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn templates_fill_variables_and_expressions() {
    let s = scope();
    let vars = |n: &str| (n == "workflow.name").then(|| "wf-1".to_string());
    let out = template::substitute(
        "{{workflow.name}}: {{=\n  sprig.join(',', map(\n    filter([1, 2, 3, 4], {# > 2}),\n    {string(# * 10)}\n  ))\n}} {{unknown}}",
        vars,
        || s.clone(),
    )
    .unwrap();
    assert_eq!(out, "wf-1: 30,40 {{unknown}}");
}

#[test]
fn an_expression_that_does_not_parse_is_an_error_naming_it() {
    let s = scope();
    let e = template::substitute("{{=\n  jsonpath(inputs.parameters.x,\n}}", |_| None, || s.clone()).unwrap_err();
    assert_eq!(e.expression, "jsonpath(inputs.parameters.x,");
    assert!(e.message.starts_with("syntax error"), "{e}");
    assert!(e.position.is_some(), "{e:?}");
    let e = argon_expr::check("1 +").unwrap_err();
    assert!(e.to_string().starts_with("expression '1 +' at column"), "{e}");
    let e = eval("nofunction(1)", &s).unwrap_err();
    assert!(e.to_string().contains("nofunction"), "{e}");
    let _ = json!(null);
}
