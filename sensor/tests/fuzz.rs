//! Property tests of what a sensor evaluates on event data: filter
//! expressions and Go templates (`dataTemplate`, `contextTemplate`). Any
//! text, and text built from each language's tokens, over any JSON, is
//! evaluated or refused with an error, never a panic, a hang or an
//! unbounded result. A few hundred cases run in `cargo test`;
//! `PROPTEST_CASES=100000` runs longer.

use argon_expr::{Govaluate, Scope};
use argon_sensor::template::Template;
use proptest::prelude::*;
use serde_json::Value;

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,16}".prop_map(Value::String),
        prop::sample::select(&["message", "a", "1", "", "<no value>"][..]).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(&["body", "message", "a", "b", "Input", "0", "x-y"][..]).prop_map(str::to_string),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn joined(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens), 0..32).prop_map(|t| t.concat())
}

const EXPR_TOKENS: &[&str] = &[
    "a",
    "b",
    "body_message",
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
    "<",
    ">",
    "<=",
    ">=",
    "'x'",
    "\"y\"",
    "'",
    "\"",
    "1",
    "0",
    "2.5",
    "1e308",
    "-9223372036854775808",
    "true",
    "false",
    "nil",
    " ",
    ",",
    "=~",
    "[",
    "]",
    ".",
    "?",
    ":",
    "\\",
];

const TEMPLATE_TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{-",
    "-}}",
    " ",
    ".",
    ".Input",
    ".Input.body",
    ".Input.body.message",
    ".Input.a",
    "$",
    "$x",
    ":=",
    "=",
    "|",
    "upper",
    "lower",
    "toJson",
    "b64enc",
    "b64dec",
    "default",
    "\"d\"",
    "quote",
    "trim",
    "replace",
    "repeat",
    "indent",
    "nindent",
    "printf",
    "\"%v\"",
    "\"%d\"",
    "\"%99999999d\"",
    "\"%.99999999f\"",
    "index",
    "len",
    "eq",
    "ne",
    "and",
    "or",
    "not",
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "(",
    ")",
    "1",
    "0",
    "-1",
    "99999999999",
    "\"",
    "'",
    "text",
    "\n",
    "nil",
    "true",
];

proptest! {
    #[test]
    fn filter_expressions_never_panic(source in prop_oneof![joined(EXPR_TOKENS), ".{0,64}"], value in json()) {
        if let Ok(expr) = Govaluate::compile(&source) {
            let mut vars = serde_json::Map::new();
            for name in ["a", "b", "body_message"] {
                vars.insert(name.to_string(), value.clone());
            }
            let _ = expr.eval(&Scope::new(vars));
        }
    }

    #[test]
    fn templates_never_panic(source in prop_oneof![joined(TEMPLATE_TOKENS), ".{0,64}"], input in json()) {
        if let Ok(template) = Template::parse(&source)
            && let Ok(out) = template.render(&input)
        {
            // Output grows with the template and the input, within bounds.
            let input_len = input.to_string().len();
            prop_assert!(out.len() <= (source.len() + 1) * (input_len + 64) + (1 << 20), "{} bytes", out.len());
        }
    }
}

/// Deep nesting is refused or evaluated, not a stack overflow.
#[test]
fn deeply_nested_filters_and_templates_are_errors() {
    for open in ["(", "!", "-"] {
        if let Ok(e) = Govaluate::compile(&open.repeat(100_000)) {
            let _ = e.eval(&Scope::new(serde_json::Map::new()));
        }
    }
    let deep = format!("{{{{ {} }}}}", "(".repeat(100_000));
    if let Ok(t) = Template::parse(&deep) {
        let _ = t.render(&Value::Null);
    }
    for wide in [
        "{{ printf \"%999999999d\" 1 }}",
        "{{ printf \"%.999999999f\" 1.5 }}",
        "{{ printf \"%999999999s\" \"a\" }}",
    ] {
        if let Ok(t) = Template::parse(wide)
            && let Ok(out) = t.render(&Value::Null)
        {
            assert!(out.len() <= 1 << 20, "{wide}: {} bytes", out.len());
        }
    }
    let nested_ifs = "{{ if true }}".repeat(10_000);
    if let Ok(t) = Template::parse(&nested_ifs) {
        let _ = t.render(&Value::Null);
    }
}
