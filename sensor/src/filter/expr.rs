//! The `exprs` filters: boolean expressions in govaluate syntax over named
//! values of the event data (`fields`: name -> GJSON path), combined with
//! `exprLogicalOperator`.
//!
//! Supported: literals (numbers, `"..."` and `'...'` strings, `true`,
//! `false`, `nil`), names (`a`, `a.b`, `[name-with-dashes]`), `( )`,
//! `! -`, `* / %`, `+ -` (strings concatenate), `== != < <= > >=`
//! (numbers, or strings lexically), `=~ !~` (regex), `&& ||`.

use std::collections::HashMap;

use argon_crds::sensor::{ExprFilter, LogicalOperator};
use regex::Regex;
use serde_json::Value;

use crate::filter::combine;
use crate::{Error, Result, SensorEvent};

fn err(message: impl Into<String>) -> Error {
    Error::Filter {
        kind: "expr",
        message: message.into(),
    }
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A literal value.
    Literal(Value),
    /// A named field.
    Name(String),
    /// `!x` or `-x`.
    Unary(char, Box<Expr>),
    /// `a OP b`.
    Binary(&'static str, Box<Expr>, Box<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Value(Value),
    Name(String),
    Op(&'static str),
    Open,
    Close,
}

const OPS: [&str; 17] = [
    "==", "!=", "<=", ">=", "=~", "!~", "&&", "||", "<", ">", "+", "-", "*", "/", "%", "!", "^",
];

fn tokenize(src: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Token::Open);
            i += 1;
        } else if c == ')' {
            out.push(Token::Close);
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            if i >= chars.len() {
                return Err(err(format!("unterminated string in {src:?}")));
            }
            i += 1;
            out.push(Token::Value(Value::String(s)));
        } else if c == '[' {
            let end = chars[i..]
                .iter()
                .position(|&c| c == ']')
                .ok_or_else(|| err(format!("unclosed [ in {src:?}")))?;
            out.push(Token::Name(chars[i + 1..i + end].iter().collect()));
            i += end + 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n: f64 = text.parse().map_err(|_| err(format!("bad number {text:?}")))?;
            out.push(Token::Value(number(n)));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.' || chars[i] == '-')
            {
                // a '-' continues a name only when no space surrounds it and a letter follows (`can-get`)
                if chars[i] == '-' && !(i + 1 < chars.len() && chars[i + 1].is_alphabetic()) {
                    break;
                }
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "true" => Token::Value(Value::Bool(true)),
                "false" => Token::Value(Value::Bool(false)),
                "nil" | "null" => Token::Value(Value::Null),
                _ => Token::Name(word),
            });
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| err(format!("unexpected {c:?} in {src:?}")))?;
            out.push(Token::Op(op));
            i += op.len();
        }
    }
    Ok(out)
}

fn number(n: f64) -> Value {
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn precedence(op: &str) -> u8 {
    match op {
        "||" => 1,
        "&&" => 2,
        "==" | "!=" | "<" | "<=" | ">" | ">=" | "=~" | "!~" => 3,
        "+" | "-" => 4,
        "*" | "/" | "%" => 5,
        "^" => 6,
        _ => 0,
    }
}

/// Bounds that keep parsing and evaluating (both recursive) far from the
/// end of the stack whatever the text: tokens in one expression, and
/// nesting of parentheses and prefix operators.
const MAX_TOKENS: usize = 1000;
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    src: &'a str,
    depth: usize,
}

impl Parser<'_> {
    /// Runs `parse` one nesting level deeper, refusing past MAX_DEPTH.
    fn nested(&mut self, parse: impl FnOnce(&mut Self) -> Result<Expr>) -> Result<Expr> {
        if self.depth >= MAX_DEPTH {
            return Err(err(format!(
                "{:?} nests deeper than {MAX_DEPTH} levels",
                self.src.chars().take(64).collect::<String>()
            )));
        }
        self.depth += 1;
        let out = parse(self);
        self.depth -= 1;
        out
    }

    fn expr(&mut self, min: u8) -> Result<Expr> {
        let mut left = self.primary()?;
        while let Some(Token::Op(op)) = self.tokens.get(self.pos) {
            let p = precedence(op);
            if p == 0 || p < min {
                break;
            }
            self.pos += 1;
            let right = self.expr(p + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        match token {
            Some(Token::Value(v)) => Ok(Expr::Literal(v)),
            Some(Token::Name(n)) => Ok(Expr::Name(n)),
            Some(Token::Op("!")) => Ok(Expr::Unary('!', Box::new(self.nested(Self::primary)?))),
            Some(Token::Op("-")) => Ok(Expr::Unary('-', Box::new(self.nested(Self::primary)?))),
            Some(Token::Open) => {
                let e = self.nested(|p| p.expr(1))?;
                match self.tokens.get(self.pos) {
                    Some(Token::Close) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err(err(format!("missing ')' in {:?}", self.src))),
                }
            }
            other => Err(err(format!("unexpected {other:?} in {:?}", self.src))),
        }
    }
}

impl Expr {
    /// Parses an expression.
    pub fn parse(src: &str) -> Result<Expr> {
        let tokens = tokenize(src)?;
        if tokens.len() > MAX_TOKENS {
            return Err(err(format!(
                "the expression has {} tokens; at most {MAX_TOKENS} are allowed",
                tokens.len()
            )));
        }
        let mut p = Parser {
            tokens: &tokens,
            pos: 0,
            src,
            depth: 0,
        };
        let e = p.expr(1)?;
        if p.pos != tokens.len() {
            return Err(err(format!("unexpected {:?} in {src:?}", tokens[p.pos])));
        }
        Ok(e)
    }

    /// Evaluates with `vars` for the names.
    pub fn eval(&self, vars: &HashMap<String, Value>) -> Result<Value> {
        Ok(match self {
            Expr::Literal(v) => v.clone(),
            Expr::Name(n) => vars
                .get(n)
                .cloned()
                .ok_or_else(|| err(format!("no parameter '{n}' found")))?,
            Expr::Unary('!', e) => Value::Bool(!truthy(&e.eval(vars)?)?),
            Expr::Unary(_, e) => number(-num(&e.eval(vars)?)?),
            Expr::Binary(op, a, b) => {
                if *op == "&&" {
                    return Ok(Value::Bool(truthy(&a.eval(vars)?)? && truthy(&b.eval(vars)?)?));
                }
                if *op == "||" {
                    return Ok(Value::Bool(truthy(&a.eval(vars)?)? || truthy(&b.eval(vars)?)?));
                }
                let (a, b) = (a.eval(vars)?, b.eval(vars)?);
                binary(op, &a, &b)?
            }
        })
    }
}

fn truthy(v: &Value) -> Result<bool> {
    v.as_bool().ok_or_else(|| err(format!("{v} is not a boolean")))
}

fn num(v: &Value) -> Result<f64> {
    v.as_f64().ok_or_else(|| err(format!("{v} is not a number")))
}

fn binary(op: &str, a: &Value, b: &Value) -> Result<Value> {
    Ok(match op {
        "==" => Value::Bool(equal(a, b)),
        "!=" => Value::Bool(!equal(a, b)),
        "<" | "<=" | ">" | ">=" => {
            let ord = match (a, b) {
                (Value::String(x), Value::String(y)) => x.cmp(y),
                _ => num(a)?.partial_cmp(&num(b)?).ok_or_else(|| err("cannot compare NaN"))?,
            };
            Value::Bool(match op {
                "<" => ord.is_lt(),
                "<=" => ord.is_le(),
                ">" => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        "=~" | "!~" => {
            let (Value::String(s), Value::String(pattern)) = (a, b) else {
                return Err(err(format!("{op} needs strings, got {a} and {b}")));
            };
            let re = Regex::new(pattern).map_err(|e| err(format!("bad regular expression {pattern:?}: {e}")))?;
            Value::Bool(re.is_match(s) == (op == "=~"))
        }
        "+" => match (a, b) {
            (Value::String(x), y) => Value::String(format!("{x}{}", plain(y))),
            (x, Value::String(y)) => Value::String(format!("{}{y}", plain(x))),
            _ => number(num(a)? + num(b)?),
        },
        "-" => number(num(a)? - num(b)?),
        "*" => number(num(a)? * num(b)?),
        "/" => number(num(a)? / num(b)?),
        "%" => number(num(a)? % num(b)?),
        "^" => number(((num(a)? as i64) ^ (num(b)? as i64)) as f64),
        other => return Err(err(format!("unsupported operator {other}"))),
    })
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// One expression with its fields.
#[derive(Clone, Debug)]
pub struct CompiledExpr {
    expr: Expr,
    fields: Vec<(String, String)>,
}

impl CompiledExpr {
    /// Parses the expression.
    pub fn compile(f: &ExprFilter) -> Result<Self> {
        Ok(CompiledExpr {
            expr: Expr::parse(&f.expr)?,
            fields: f.fields.iter().map(|p| (p.name.clone(), p.path.clone())).collect(),
        })
    }

    /// Binds the fields and evaluates; a path that does not exist is an error.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        let mut vars = HashMap::with_capacity(self.fields.len());
        for (name, path) in &self.fields {
            let found = gjson::get(&event.data_text, path);
            if !found.exists() {
                return Err(err(format!("path '{path}' does not exist")));
            }
            vars.insert(name.clone(), serde_json::from_str(found.json()).unwrap_or(Value::Null));
        }
        Ok(self.expr.eval(&vars)? == Value::Bool(true))
    }
}

/// The expression filters of one dependency.
#[derive(Clone, Debug)]
pub struct ExprFilters {
    exprs: Vec<CompiledExpr>,
    operator: LogicalOperator,
}

impl ExprFilters {
    /// Parses every expression.
    pub fn compile(filters: &[ExprFilter], operator: LogicalOperator) -> Result<Self> {
        Ok(ExprFilters {
            exprs: filters.iter().map(CompiledExpr::compile).collect::<Result<_>>()?,
            operator,
        })
    }

    /// Combines the expressions with the expression logical operator.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        if !gjson::valid(&event.data_text) {
            return Err(err("event data is not valid JSON"));
        }
        combine(self.operator, "expr", self.exprs.iter().map(|e| e.matches(event)))
    }
}

#[cfg(test)]
mod tests {
    use argon_crds::sensor::PayloadField;
    use serde_json::json;

    use super::*;
    use crate::filter::tests::event;

    #[test]
    fn evaluates_like_govaluate() {
        let vars: HashMap<String, Value> = [
            ("a", json!("b")),
            ("c", json!(10)),
            ("e", json!(false)),
            ("s", json!("refs/heads/main")),
            ("dash-name", json!(3)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let cases = [
            ("a == \"b\" || c == 10", Some(true)),
            ("a == \"b\" && c != 10", Some(false)),
            ("e == false", Some(true)),
            ("!e", Some(true)),
            ("c > 5 && c <= 10", Some(true)),
            ("c * 2 == 20", Some(true)),
            ("c + 1 > 10.5", Some(true)),
            ("(c - 20) < -5", Some(true)),
            ("c % 3 == 1", Some(true)),
            ("a + 'x' == 'bx'", Some(true)),
            ("s =~ '^refs/heads/'", Some(true)),
            ("s !~ 'tags'", Some(true)),
            ("[dash-name] == 3", Some(true)),
            ("(a == 'z' || c == 10) && !(e == true)", Some(true)),
            ("a > 'a'", Some(true)),
            ("missing == 1", None),
            ("c && true", None),
        ];
        for (src, want) in cases {
            let got = Expr::parse(src)
                .and_then(|e| e.eval(&vars))
                .ok()
                .map(|v| v == Value::Bool(true));
            assert_eq!(got, want, "{src}");
        }
        for bad in ["a ==", "(a == b", "a == 'x", "a @ b", ""] {
            assert!(Expr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_come_from_gjson_paths() {
        let filter = |expr: &str, fields: &[(&str, &str)]| ExprFilter {
            expr: expr.into(),
            fields: fields
                .iter()
                .map(|(n, p)| PayloadField {
                    name: (*n).into(),
                    path: (*p).into(),
                })
                .collect(),
        };
        let e =
            event(json!({"a": "b", "c": 10, "d": {"e": false}, "nested": {"path": {"can-get": {"longer": false}}}}));
        let yes = filter("a == \"b\" || c == 10", &[("a", "a"), ("c", "c")]);
        let no = filter("a == \"b\" && c != 10", &[("a", "a"), ("c", "c")]);
        let deep = filter("e == false", &[("e", "nested.path.can-get.longer")]);
        let missing = filter("x == 1", &[("x", "nope")]);
        let and = ExprFilters::compile(&[yes.clone(), deep.clone()], LogicalOperator::And).unwrap();
        assert!(and.matches(&e).unwrap());
        let and = ExprFilters::compile(&[yes.clone(), no.clone()], LogicalOperator::And).unwrap();
        assert!(!and.matches(&e).unwrap());
        let or = ExprFilters::compile(&[no.clone(), yes], LogicalOperator::Or).unwrap();
        assert!(or.matches(&e).unwrap());
        let or = ExprFilters::compile(&[no.clone(), missing.clone()], LogicalOperator::Or).unwrap();
        assert!(or.matches(&e).is_err());
        let and = ExprFilters::compile(&[missing], LogicalOperator::And).unwrap();
        assert!(and.matches(&e).is_err());
    }
}
