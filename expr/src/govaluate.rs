//! The govaluate dialect: a workflow step's `when` (after its `{{...}}` are
//! filled in, so `heads == heads` holds) and the sensor's `exprs` filters.
//! It is read token by token and written as expr-lang, which evaluates it:
//! bare words that name no variable are strings, `=~` and `!~` match
//! regular expressions, `'single'` and `"double"` quotes are strings.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::scope::Scope;

/// What a bare word that names no variable of the scope is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareWords {
    /// A string (`when`: `Succeeded == Succeeded`). Words may hold `-`, `.`
    /// and `/` (`v1.2-rc`, `a/b`).
    Strings,
    /// An error: every name must be a variable (sensor `exprs`).
    Variables,
}

/// Evaluates a govaluate expression in `scope`.
pub fn eval_govaluate(expression: &str, scope: &Scope, bare: BareWords) -> Result<Value> {
    let mut names = Vec::new();
    let source = translate(expression, Some(scope), bare, &mut names)?;
    run(expression, &source, scope)
}

fn run(expression: &str, source: &str, scope: &Scope) -> Result<Value> {
    let (program, size) = crate::compile_source(expression, source)?;
    let env = crate::functions::environment();
    let out = size
        .with_stack(|| env.run(&program, scope.context()))
        .map_err(|e| Error::from_expr(expression, e))?;
    Ok(crate::value::from_expr(out))
}

/// A govaluate expression whose every name is a variable, parsed once and
/// evaluated against many scopes (the sensor's `exprs` filters).
#[derive(Clone, Debug)]
pub struct Govaluate {
    expression: String,
    source: String,
    names: Vec<String>,
}

impl Govaluate {
    /// Parses `expression`; a syntax error is reported here.
    pub fn compile(expression: &str) -> Result<Self> {
        let mut names = Vec::new();
        let source = translate(expression, None, BareWords::Variables, &mut names)?;
        crate::compile_source(expression, &source)?;
        Ok(Govaluate {
            expression: expression.trim().to_string(),
            source,
            names,
        })
    }

    /// Evaluates against `scope`; a name the scope lacks is an error.
    pub fn eval(&self, scope: &Scope) -> Result<Value> {
        if let Some(missing) = self.names.iter().find(|n| scope.lookup(n).is_none()) {
            return Err(Error::new(&self.expression, format!("no variable '{missing}'")));
        }
        run(&self.expression, &self.source, scope)
    }
}

#[derive(Debug)]
enum Tok {
    /// expr-lang source for one operand.
    Atom(String),
    Op(&'static str),
}

const OPS: [&str; 22] = [
    "==", "!=", "<=", ">=", "&&", "||", "=~", "!~", "??", "**", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "?",
    ":",
];

/// The expression as expr-lang source. Without a scope every name is a
/// variable; the names used are added to `names`.
fn translate(expression: &str, scope: Option<&Scope>, bare: BareWords, names: &mut Vec<String>) -> Result<String> {
    let chars: Vec<char> = expression.chars().collect();
    let word_char =
        |c: char| c.is_alphanumeric() || c == '_' || (bare == BareWords::Strings && matches!(c, '-' | '.' | '/'));
    let mut toks: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(Error::new(expression, "a string is not closed"));
                };
                i += 1;
                if d == c {
                    break;
                }
                if d == '\\' {
                    let Some(&e) = chars.get(i) else {
                        return Err(Error::new(expression, "a string is not closed"));
                    };
                    i += 1;
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    s.push(d);
                }
            }
            toks.push(Tok::Atom(Value::String(s).to_string()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let followed_by_word = i < chars.len() && (chars[i].is_alphabetic() || chars[i] == '-' || chars[i] == '_');
            if bare == BareWords::Strings && followed_by_word {
                // `3.6-rc`, `1st`: a bare word.
                while i < chars.len() && word_char(chars[i]) {
                    i += 1;
                }
                let w: String = chars[start..i].iter().collect();
                toks.push(Tok::Atom(Value::String(w).to_string()));
                continue;
            }
            let n: String = chars[start..i].iter().collect();
            if n.parse::<f64>().is_err() {
                if bare == BareWords::Strings {
                    toks.push(Tok::Atom(Value::String(n).to_string()));
                    continue;
                }
                return Err(Error::new(expression, format!("'{n}' is not a number")));
            }
            toks.push(Tok::Atom(n));
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            // The first character is taken whatever `word_char` says of it
            // (`$` is not one): the reader always moves on.
            i += 1;
            while i < chars.len() && (word_char(chars[i]) || (bare == BareWords::Variables && chars[i] == '.')) {
                i += 1;
            }
            let w: String = chars[start..i].iter().collect();
            toks.push(Tok::Atom(word(&w, scope, bare, expression, names)?));
            continue;
        }
        if c == '[' && bare == BareWords::Variables {
            // `[name-with-dashes]`: govaluate's escaped parameter name.
            let Some(len) = chars[i + 1..].iter().position(|&d| d == ']') else {
                return Err(Error::new(expression, "a '[' is not closed"));
            };
            let w: String = chars[i + 1..i + 1 + len].iter().collect();
            toks.push(Tok::Atom(word(w.trim(), scope, bare, expression, names)?));
            i += len + 2;
            continue;
        }
        if c == ',' {
            toks.push(Tok::Op(","));
            i += 1;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
            return Err(Error::new(expression, format!("unexpected character '{c}'")));
        };
        toks.push(Tok::Op(op));
        i += op.chars().count();
    }
    if toks.is_empty() {
        return Err(Error::new(expression, "empty expression"));
    }
    Ok(render(toks))
}

/// A bare word as expr-lang source.
fn word(w: &str, scope: Option<&Scope>, bare: BareWords, expression: &str, names: &mut Vec<String>) -> Result<String> {
    match w {
        "true" | "false" | "nil" | "in" => return Ok(w.to_string()),
        "null" => return Ok("nil".to_string()),
        _ => {}
    }
    let known = match scope {
        Some(s) => s.lookup(w).is_some(),
        None => true,
    };
    if known {
        names.push(w.to_string());
        // A path: each part as an index, so names with `-` work.
        let mut parts = w.split('.');
        let first = parts.next().unwrap_or_default();
        let mut out = if first.chars().all(|c| c.is_alphanumeric() || c == '_') {
            first.to_string()
        } else {
            format!("$env[{}]", Value::String(first.to_string()))
        };
        for p in parts {
            out.push_str(&format!("[{}]", Value::String(p.to_string())));
        }
        return Ok(out);
    }
    match bare {
        BareWords::Strings => Ok(Value::String(w.to_string()).to_string()),
        BareWords::Variables => Err(Error::new(expression, format!("no variable '{w}'"))),
    }
}

/// The tokens as expr-lang: `=~` is `matches`; `a !~ b` is `!(a matches b)`
/// for an operand `a` and `b`; `in (x, y)` is `in [x, y]`.
fn render(toks: Vec<Tok>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut in_list = 0usize;
    while i < toks.len() {
        match &toks[i] {
            Tok::Atom(a) => out.push(a.clone()),
            Tok::Op("=~") => out.push("matches".into()),
            Tok::Op("!~") => {
                let left = out.pop().unwrap_or_default();
                let right = match toks.get(i + 1) {
                    Some(Tok::Atom(a)) => {
                        i += 1;
                        a.clone()
                    }
                    _ => String::new(),
                };
                out.push(format!("!({left} matches {right})"));
            }
            Tok::Op("(") if matches!(out.last().map(String::as_str), Some("in")) => {
                in_list += 1;
                out.push("[".into());
            }
            Tok::Op(")") if in_list > 0 => {
                in_list -= 1;
                out.push("]".into());
            }
            Tok::Op(op) => out.push((*op).to_string()),
        }
        i += 1;
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn when(e: &str) -> Value {
        let scope = Scope::from_flat([("steps.flip-coin.outputs.result", "heads"), ("n", "5")]);
        eval_govaluate(e, &scope, BareWords::Strings).unwrap_or_else(|err| panic!("{e}: {err}"))
    }

    #[test]
    fn bare_words_are_strings_and_variables_are_found() {
        assert_eq!(when("heads == heads"), true);
        assert_eq!(when("tails == heads"), false);
        assert_eq!(when("steps.flip-coin.outputs.result == heads"), true);
        assert_eq!(when("v1.2-rc != v1.3"), true);
        assert_eq!(when("5 > 3 && (2 < 1 || true)"), true);
        assert_eq!(when("'a b' == \"a b\""), true);
        assert_eq!(when("hello =~ '^h'"), true);
        assert_eq!(when("hello !~ '^h'"), false);
        assert_eq!(when("3 in (1, 2, 3)"), true);
        assert_eq!(when("Succeeded == Succeeded && !false"), true);
    }

    #[test]
    fn a_compiled_expression_runs_against_many_scopes() {
        let g = Govaluate::compile("[dash-name] == 3 && s =~ '^refs/' && a + 'x' == 'bx'").unwrap();
        let scope = |n: i64| {
            Scope::new(
                json!({"dash-name": n, "s": "refs/heads/main", "a": "b"})
                    .as_object()
                    .unwrap()
                    .clone(),
            )
        };
        assert_eq!(g.eval(&scope(3)).unwrap(), true);
        assert_eq!(g.eval(&scope(4)).unwrap(), false);
        let e = g.eval(&Scope::default()).unwrap_err();
        assert!(e.message.contains("no variable"), "{e}");
        for bad in ["a ==", "(a == b", "a == 'x", "a @ b", ""] {
            assert!(Govaluate::compile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn variables_mode_needs_variables() {
        let scope = Scope::new(json!({"a": "x", "b": {"c": 10}}).as_object().unwrap().clone());
        assert_eq!(
            eval_govaluate("a == \"x\" && b.c >= 10", &scope, BareWords::Variables).unwrap(),
            true
        );
        let e = eval_govaluate("missing == 1", &scope, BareWords::Variables).unwrap_err();
        assert!(e.to_string().contains("no variable 'missing'"), "{e}");
    }
}
