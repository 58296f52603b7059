//! Property tests of workflow substitution and expressions: any text, and
//! text built from the language's own tokens, is evaluated or refused with
//! an error, never a panic, a hang or an unbounded result. A few hundred
//! cases run in `cargo test`; `PROPTEST_CASES=100000` runs longer.

use argon_engine::expr::{Vars, eval_condition, eval_expression, eval_when, substitute, unresolved};
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{=",
    "{{ ",
    " }}",
    "inputs.parameters.x",
    "steps.a.outputs.result",
    "item",
    "workflow.name",
    "x",
    "==",
    "!=",
    "&&",
    "||",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "?",
    ":",
    "'a'",
    "\"b\"",
    "'",
    "\"",
    "1",
    "0",
    "2.5",
    "-3",
    "1e308",
    "9223372036854775807",
    "in",
    "asInt(",
    "asFloat(",
    "string(",
    "jsonpath(",
    "sprig.upper(",
    "sprig.repeat(",
    "sprig.trim(",
    ",",
    "true",
    "false",
    "nil",
    " ",
    ".",
    ">",
    "<",
    ">=",
    "<=",
    "=~",
    "$",
    "$.a",
    "heads",
    "tails",
    "\\",
    "\n",
];

fn tokens() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..32).prop_map(|t| t.concat())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![tokens(), ".{0,64}"]
}

fn vars() -> impl Strategy<Value = Vars> {
    let names = prop::sample::select(
        &[
            "inputs.parameters.x",
            "steps.a.outputs.result",
            "item",
            "workflow.name",
            "x",
        ][..],
    );
    prop::collection::btree_map(names.prop_map(str::to_string), text(), 0..5)
}

proptest! {
    #[test]
    fn substitution_and_expressions_never_panic(source in text(), vars in vars()) {
        if let Ok(out) = substitute(&source, &vars) {
            // Substitution may repeat variables, never grow without bound.
            let longest = vars.values().map(String::len).max().unwrap_or(0);
            prop_assert!(out.len() <= (source.len() + 1) * (longest + 64) + 4096, "{} bytes", out.len());
        }
        let _ = unresolved(&source);
        let _ = eval_when(&source, &vars);
        let _ = eval_condition(&source, &vars);
        let _ = eval_expression(&source, &vars);
    }
}

/// Deep nesting is refused, not a stack overflow (an expression comes from
/// a workflow anyone with a token may submit).
#[test]
fn deeply_nested_expressions_are_errors() {
    let vars = Vars::new();
    for open in ["(", "!", "-", "[", "asInt(", "1 ? "] {
        let deep = open.repeat(100_000);
        let _ = eval_expression(&deep, &vars);
        let _ = eval_condition(&deep, &vars);
        let _ = eval_when(&deep, &vars);
        let _ = substitute(&format!("{{{{={deep}}}}}"), &vars);
    }
}
