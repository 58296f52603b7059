//! Property tests of the manifest parser and lint: any text, and the
//! examples with random edits, are decoded and checked or refused with
//! diagnostics, never a panic or a hang. A few hundred cases run in
//! `cargo test`; `PROPTEST_CASES=100000` runs longer.

use std::path::Path;

use argon_crds::lint::check;
use argon_crds::manifest::{LoadReport, load_text};
use proptest::prelude::*;

/// Loads and lints `text`; the diagnostics, as printed.
fn lint_text(text: &str) -> Vec<String> {
    let mut report = LoadReport::default();
    load_text("fuzz.yaml", text, &mut report);
    let _ = check(&report.manifests);
    report.diagnostics.iter().map(ToString::to_string).collect()
}

/// Every example manifest of the repository, as seeds to mutate.
fn examples() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no example manifests found");
    out
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let text = prop_oneof![
        prop::sample::select(
            &[
                "\n",
                "  ",
                ": ",
                "- ",
                "{",
                "}",
                "[",
                "]",
                "---\n",
                "&a ",
                "*a",
                "<<: *a\n",
                "!!binary ",
                "? ",
                "'",
                "\"",
                "#",
                "|\n",
                ">-\n",
                "\t",
                "null",
                "~",
                "1e999",
                "0x1F",
                "-",
                "kind: Sensor\n",
                "apiVersion: x\n",
                "metadata: {name: ../x}\n",
                "\u{feff}",
                "\\u0000",
            ][..]
        )
        .prop_map(str::to_string),
        ".{0,8}",
    ];
    prop_oneof![
        (any::<usize>(), 0usize..16).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), text).prop_map(|(at, t)| Edit::Insert(at, t)),
        (any::<usize>(), 0usize..64).prop_map(|(at, n)| Edit::Duplicate(at, n)),
    ]
}

/// The char boundary at or before `at` (taken modulo the length).
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &mut String, edit: &Edit) {
    match edit {
        Edit::Delete(at, n) => {
            let start = boundary(text, *at);
            let end = boundary(text, (start + n).min(text.len()));
            text.replace_range(start..end.max(start), "");
        }
        Edit::Insert(at, t) => {
            let at = boundary(text, *at);
            text.insert_str(at, t);
        }
        Edit::Duplicate(at, n) => {
            let start = boundary(text, *at);
            let end = boundary(text, (start + n).min(text.len())).max(start);
            let piece = text[start..end].to_string();
            text.insert_str(end, &piece);
        }
    }
}

proptest! {
    #[test]
    fn mutated_examples_are_checked_without_panic(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let seeds = examples();
        let mut text = seeds[seed.index(seeds.len())].clone();
        for e in &edits {
            apply(&mut text, e);
        }
        lint_text(&text);
    }

    #[test]
    fn any_text_is_checked_without_panic(text in ".{0,256}") {
        lint_text(&text);
    }
}

/// Deep nesting and alias bombs are refused or parsed, not a stack overflow
/// or unbounded memory.
#[test]
fn deep_nesting_and_alias_bombs_are_bounded() {
    for deep in ["[".repeat(100_000), "{a: ".repeat(100_000), "- ".repeat(100_000)] {
        let found = lint_text(&deep);
        // The parser's own limit may come first, for flow collections.
        let refused = |d: &String| d.contains("nests deeper than 128") || d.contains("recursion limit exceeded");
        assert!(found.iter().any(refused), "{found:?}");
    }
    let mut nested = String::from("kind: Sensor\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: s}\nspec:\n");
    for depth in 0..1_000 {
        nested.push_str(&" ".repeat(depth + 2));
        nested.push_str("a:\n");
    }
    let found = lint_text(&nested);
    assert!(found.iter().any(|d| d.contains("nests deeper than 128")), "{found:?}");
    // A billion laughs: nine levels of nine aliases.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let prev = level - 1;
        let refs = vec![format!("*a{prev}"); 9].join(", ");
        bomb.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
    }
    let found = lint_text(&bomb);
    assert!(found.iter().any(|d| d.contains("expands to more than")), "{found:?}");
}
