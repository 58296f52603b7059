//! Argo's templates: text with `{{name}}` placeholders and `{{= expression}}`
//! tags. An expression may span lines and hold `}` and `}}` of its own
//! (maps, closures `{# ...}`, strings): it ends at the first `}}` outside
//! its strings and braces.

use crate::error::{Error, Result};
use crate::scope::Scope;
use crate::value::to_text;

/// A part of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    /// `{{ name }}`: the trimmed name, and the placeholder as written.
    Var {
        name: &'a str,
        raw: &'a str,
    },
    /// `{{= expression }}`: the expression, and the tag as written.
    Expr {
        source: &'a str,
        raw: &'a str,
    },
}

/// Splits `text` into its pieces. A `{{` with no closing `}}` is text; a
/// `{{=` whose expression never closes is an error.
pub fn pieces(text: &str) -> Result<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let body_start = after.len() - after.trim_start().len();
        if after[body_start..].starts_with('=') {
            let source_at = body_start + 1;
            let Some(end) = expression_end(&after[source_at..]) else {
                return Err(Error::new(
                    &after[source_at..],
                    "the expression has no closing '}}' (or a string or brace in it is not closed)",
                ));
            };
            let source = &after[source_at..source_at + end];
            let raw_len = 2 + source_at + end + 2;
            out.push(Piece::Expr {
                source,
                raw: &rest[start..start + raw_len],
            });
            rest = &rest[start + raw_len..];
            continue;
        }
        match after.find("}}") {
            Some(end) => {
                let raw = &rest[start..start + 2 + end + 2];
                out.push(Piece::Var {
                    name: after[..end].trim(),
                    raw,
                });
                rest = &rest[start + raw.len()..];
            }
            None => {
                out.push(Piece::Text(&rest[start..]));
                rest = "";
                break;
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Where the `}}` that closes an expression starts: the first one outside
/// string literals and outside `{ }` of the expression.
fn expression_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' => depth += 1,
            b'}' if depth == 0 && b.get(i + 1) == Some(&b'}') => return Some(i),
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The names of the `{{name}}` placeholders of `text` (expressions left out).
pub fn variables(text: &str) -> Vec<&str> {
    match pieces(text) {
        Ok(p) => p
            .into_iter()
            .filter_map(|p| match p {
                Piece::Var { name, .. } if !name.is_empty() => Some(name),
                _ => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The expressions of the `{{= }}` tags of `text`; an unclosed one is an error.
pub fn expressions(text: &str) -> Result<Vec<&str>> {
    Ok(pieces(text)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Expr { source, .. } => Some(source),
            _ => None,
        })
        .collect())
}

/// Fills a template: each `{{name}}` that `lookup` knows is replaced (an
/// unknown one stays as written, for a later stage); each `{{= }}` is
/// evaluated in the scope `scope` makes (built only when there is one).
pub fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
    scope: impl FnOnce() -> Scope,
) -> Result<String> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let mut scope = Some(scope);
    let mut built: Option<Scope> = None;
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var { name, raw } => match lookup(name) {
                Some(v) => out.push_str(&v),
                None => out.push_str(raw),
            },
            Piece::Expr { source, .. } => {
                if built.is_none() {
                    built = scope.take().map(|f| f());
                }
                let s = built.get_or_insert_with(Scope::default);
                out.push_str(&to_text(&crate::eval(source, s)?));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_may_hold_braces_strings_and_newlines() {
        let t = "a {{= map(x, {# + 1}) }} b {{=\n  {k: '}}'}.k\n}} c {{ name }}";
        let p = pieces(t).unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Text("a "),
                Piece::Expr {
                    source: " map(x, {# + 1}) ",
                    raw: "{{= map(x, {# + 1}) }}"
                },
                Piece::Text(" b "),
                Piece::Expr {
                    source: "\n  {k: '}}'}.k\n",
                    raw: "{{=\n  {k: '}}'}.k\n}}"
                },
                Piece::Text(" c "),
                Piece::Var {
                    name: "name",
                    raw: "{{ name }}"
                },
            ]
        );
        assert!(pieces("{{= f('x) }}").is_err());
        assert_eq!(
            pieces("just {{ text").unwrap(),
            vec![Piece::Text("just "), Piece::Text("{{ text")]
        );
    }
}
