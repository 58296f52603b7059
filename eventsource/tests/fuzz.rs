//! Property tests of the event-source filter expression: any text, and text
//! built from its tokens, over any JSON, compiles and evaluates or is
//! refused with an error, never a panic or a hang. A few hundred cases run
//! in `cargo test`; `PROPTEST_CASES=100000` runs longer.

use argon_eventsource::filter::Filter;
use proptest::prelude::*;
use serde_json::Value;

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(&["body", "action", "commits", "a", "0", "headers"][..]).prop_map(str::to_string),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const TOKENS: &[&str] = &[
    "body",
    "body.action",
    "body.commits",
    "headers",
    ".",
    "?.",
    "[",
    "]",
    "(",
    ")",
    ",",
    "0",
    "1",
    "-1",
    "2.5",
    "1e308",
    "9223372036854775807",
    "\"opened\"",
    "'x'",
    "\"",
    "'",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "!",
    "and",
    "or",
    "not",
    "in",
    "not in",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "\"[a-z]+\"",
    "\"(\"",
    "+",
    "-",
    "*",
    "/",
    "%",
    "len(",
    "lower(",
    "upper(",
    "trim(",
    "string(",
    "int(",
    "float(",
    "has(",
    "true",
    "false",
    "nil",
    " ",
    "\\",
];

proptest! {
    #[test]
    fn filter_expressions_never_panic(
        source in prop_oneof![prop::collection::vec(prop::sample::select(TOKENS), 0..32).prop_map(|t| t.concat()), ".{0,64}"],
        data in json(),
    ) {
        if let Ok(filter) = Filter::parse(&source) {
            let _ = filter.matches(&data);
        }
    }
}

#[test]
fn deeply_nested_filters_are_errors() {
    for open in ["(", "!", "-", "[", "not ", "len("] {
        let _ = Filter::parse(&open.repeat(100_000));
    }
    let long_chain = vec!["1"; 50_000].join(" + ");
    if let Ok(f) = Filter::parse(&format!("{long_chain} > 0")) {
        let _ = f.matches(&Value::Null);
    }
}
