//! Trigger condition expressions: `(dep-a || dep-b) && dep-c` over dependency
//! names. Parsed once from `template.conditions`, then evaluated by the sensor
//! runtime against the set of dependencies that currently hold an event.
//! Parsed by argon-expr's boolean form, which DAG `depends` shares.
//!
//! Grammar (`||` binds weaker than `&&`):
//!
//! ```text
//! expr    := and ( "||" and )*
//! and     := primary ( "&&" primary )*
//! primary := NAME | "(" expr ")"
//! NAME    := [A-Za-z0-9_.-]+
//! ```

use std::fmt;
use std::str::FromStr;

use argon_expr::boolean::{self, BooleanError, Dialect, Formula};

/// A parsed condition expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// True when the named dependency is satisfied.
    Dependency(String),
    /// True when every operand is true (two or more operands).
    And(Vec<Condition>),
    /// True when any operand is true (two or more operands).
    Or(Vec<Condition>),
}

impl Condition {
    /// Parses an expression such as `(dep01 || dep02) && dep04`.
    pub fn parse(input: &str) -> Result<Condition, ConditionError> {
        fn from_formula(f: Formula<String>) -> Condition {
            match f {
                Formula::Atom(name) => Condition::Dependency(name),
                Formula::All(fs) => Condition::And(fs.into_iter().map(from_formula).collect()),
                Formula::Any(fs) => Condition::Or(fs.into_iter().map(from_formula).collect()),
                Formula::Not(_) => unreachable!("the conditions dialect has no '!'"),
            }
        }
        Ok(from_formula(boolean::parse(input, &DIALECT, &mut |name, _| {
            Ok(name.to_string())
        })?))
    }

    /// The condition that holds when every one of `names` is satisfied: what a
    /// trigger without `conditions` waits for.
    pub fn all<'a>(names: impl IntoIterator<Item = &'a str>) -> Condition {
        let mut operands: Vec<Condition> = names
            .into_iter()
            .map(|n| Condition::Dependency(n.to_string()))
            .collect();
        if operands.len() == 1 {
            operands.remove(0)
        } else {
            Condition::And(operands)
        }
    }

    /// Evaluates the expression; `satisfied` says whether a dependency holds.
    pub fn eval(&self, satisfied: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Condition::Dependency(name) => satisfied(name),
            Condition::And(operands) => operands.iter().all(|c| c.eval(satisfied)),
            Condition::Or(operands) => operands.iter().any(|c| c.eval(satisfied)),
        }
    }

    /// The dependency names the expression mentions, each once, in order of
    /// first appearance.
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Condition::Dependency(name) => {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
            Condition::And(operands) | Condition::Or(operands) => {
                for c in operands {
                    c.collect_names(out);
                }
            }
        }
    }
}

impl FromStr for Condition {
    type Err = ConditionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Condition::parse(s)
    }
}

/// Prints the expression in canonical form, with parentheses only where
/// needed: `(a || b) && c`.
impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn join(f: &mut fmt::Formatter<'_>, ops: &[Condition], sep: &str, wrap_or: bool) -> fmt::Result {
            for (i, c) in ops.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                if wrap_or && matches!(c, Condition::Or(_)) {
                    write!(f, "({c})")?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            Ok(())
        }
        match self {
            Condition::Dependency(name) => f.write_str(name),
            Condition::And(ops) => join(f, ops, " && ", true),
            Condition::Or(ops) => join(f, ops, " || ", false),
        }
    }
}

/// Why a condition expression does not parse: where (1-based column, in
/// characters), what the parser expected there and what it found.
pub type ConditionError = BooleanError;

/// `conditions` in Argon's one boolean form (argon-expr): no `!`.
const DIALECT: Dialect = Dialect {
    not: false,
    name_char: |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
    name: "a dependency name",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Condition {
        Condition::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn dep(n: &str) -> Condition {
        Condition::Dependency(n.to_string())
    }

    #[test]
    fn single_name() {
        assert_eq!(parse("dep01"), dep("dep01"));
        assert_eq!(parse("  my-dep_1.v2  "), dep("my-dep_1.v2"));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse("a || b && c"),
            Condition::Or(vec![dep("a"), Condition::And(vec![dep("b"), dep("c")])])
        );
        assert_eq!(
            parse("(dep01 || dep02) && dep04"),
            Condition::And(vec![Condition::Or(vec![dep("dep01"), dep("dep02")]), dep("dep04")])
        );
        assert_eq!(parse("a&&b&&c"), Condition::And(vec![dep("a"), dep("b"), dep("c")]));
        assert_eq!(parse("((a))"), dep("a"));
    }

    #[test]
    fn eval_uses_satisfied_set() {
        let c = parse("(dep01 || dep02) && dep04");
        let with = |set: &'static [&'static str]| move |n: &str| set.contains(&n);
        assert!(c.eval(&with(&["dep01", "dep04"])));
        assert!(c.eval(&with(&["dep02", "dep04"])));
        assert!(!c.eval(&with(&["dep01", "dep02"])));
        assert!(!c.eval(&with(&["dep04"])));
    }

    #[test]
    fn names_are_unique_in_order() {
        assert_eq!(parse("b && (a || b) && c").names(), vec!["b", "a", "c"]);
    }

    #[test]
    fn all_of_names() {
        assert_eq!(Condition::all(["a"]), dep("a"));
        let c = Condition::all(["a", "b"]);
        assert!(c.eval(&|n| n == "a" || n == "b"));
        assert!(!c.eval(&|n| n == "a"));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "a",
            "a && b",
            "a || b",
            "(a || b) && c",
            "a || b && c",
            "(a || b) && (c || d)",
        ] {
            assert_eq!(parse(s).to_string(), s);
            assert_eq!(parse(&parse(s).to_string()), parse(s));
        }
    }

    #[test]
    fn error_on_dangling_operator() {
        let e = Condition::parse("a && ").unwrap_err();
        assert_eq!(e.column, 6);
        assert_eq!(
            e.to_string(),
            "at column 6: expected a dependency name or '(', found the end of the expression"
        );
    }

    #[test]
    fn error_on_single_ampersand() {
        let e = Condition::parse("a & b").unwrap_err();
        assert_eq!(e.to_string(), "at column 3: expected '&&', found '&'");
        let e = Condition::parse("a | b").unwrap_err();
        assert_eq!(e.to_string(), "at column 3: expected '||', found '|'");
    }

    #[test]
    fn error_on_unclosed_paren() {
        let e = Condition::parse("(a || b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "at column 8: expected ')', found the end of the expression (the '(' at column 1 is not closed)"
        );
    }

    #[test]
    fn error_on_trailing_tokens() {
        let e = Condition::parse("a b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "at column 3: expected '&&', '||' or the end of the expression, found 'b'"
        );
        let e = Condition::parse("a)").unwrap_err();
        assert_eq!(e.column, 2);
    }

    #[test]
    fn error_on_bad_character_and_empty() {
        let e = Condition::parse("a && b!").unwrap_err();
        assert_eq!(e.column, 7);
        assert!(e.to_string().contains("found '!'"), "{e}");
        let e = Condition::parse("").unwrap_err();
        assert_eq!(
            e.to_string(),
            "at column 1: expected a dependency name or '(', found the end of the expression"
        );
        let e = Condition::parse("&& a").unwrap_err();
        assert_eq!(
            e.to_string(),
            "at column 1: expected a dependency name or '(', found '&&'"
        );
    }
}
