//! The event-source `filter.expression`: a boolean expression over the event
//! data, e.g. `body.action == "opened" && len(body.commits) > 0`. An event for
//! which it is false is dropped at the source.
//!
//! The language is the common subset of the `expr` syntax the manifests use:
//!
//! ```text
//! or      := and ( ("||" | "or") and )*
//! and     := not ( ("&&" | "and") not )*
//! not     := ("!" | "not") not | cmp
//! cmp     := sum ( ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in"
//!                  | "contains" | "startsWith" | "endsWith" | "matches") sum )?
//! sum     := product ( ("+" | "-") product )*
//! product := unary ( ("*" | "/" | "%") unary )*
//! unary   := "-" unary | postfix
//! postfix := primary ( "." NAME | "?." NAME | "[" or "]" )*
//! primary := NUMBER | STRING | true | false | nil | NAME | NAME "(" args ")"
//!          | "(" or ")" | "[" args "]"
//! ```
//!
//! Functions: `len`, `lower`, `upper`, `trim`, `string`, `int`, `float`,
//! `has(path)`. A path that does not exist is `nil`.

use std::fmt;

use serde_json::{Number, Value};

/// A compiled filter expression.
#[derive(Clone, Debug)]
pub struct Filter {
    source: String,
    expr: Expr,
}

/// Why an expression could not be compiled or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("filter expression {expression:?}: {message}")]
pub struct FilterError {
    expression: String,
    message: String,
}

impl Filter {
    /// Compiles an expression; the error says where it is wrong.
    pub fn parse(expression: &str) -> Result<Self, FilterError> {
        let err = |message: String| FilterError {
            expression: expression.to_owned(),
            message,
        };
        let tokens = lex(expression).map_err(err)?;
        if tokens.len() > MAX_TOKENS {
            return Err(err(format!(
                "the expression has {} tokens; at most {MAX_TOKENS} are allowed",
                tokens.len()
            )));
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let expr = parser.or().map_err(err)?;
        if let Some(t) = parser.peek() {
            return Err(err(format!("unexpected {t} after the end of the expression")));
        }
        Ok(Filter {
            source: expression.to_owned(),
            expr,
        })
    }

    /// Whether the event data passes. A result that is not a boolean, or an
    /// operation on values of the wrong type, is an error.
    pub fn matches(&self, data: &Value) -> Result<bool, FilterError> {
        let err = |message: String| FilterError {
            expression: self.source.clone(),
            message,
        };
        match eval(&self.expr, data).map_err(err)? {
            Value::Bool(b) => Ok(b),
            other => Err(err(format!("evaluates to {other}, not to true or false"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(f64),
    Str(String),
    Name(String),
    Op(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Number(n) => write!(f, "number {n}"),
            Token::Str(s) => write!(f, "string {s:?}"),
            Token::Name(n) => write!(f, "'{n}'"),
            Token::Op(o) => write!(f, "'{o}'"),
        }
    }
}

const OPERATORS: [&str; 22] = [
    "?.", "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",", ".", "+", "-", "*", "/", "%", "=",
];

fn lex(input: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == '_') {
                // `a.0.b` never reaches here: a number only starts a token.
                if chars[i] == '.' && !chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                    break;
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
            let n = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
            tokens.push(Token::Number(n));
        } else if c == '"' || c == '\'' || c == '`' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            loop {
                let Some(&c) = chars.get(i) else {
                    return Err("a string is not closed".into());
                };
                i += 1;
                if c == quote {
                    break;
                }
                if c == '\\' && quote != '`' {
                    let Some(&e) = chars.get(i) else {
                        return Err("a string is not closed".into());
                    };
                    i += 1;
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                } else {
                    s.push(c);
                }
            }
            tokens.push(Token::Str(s));
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            tokens.push(Token::Name(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) else {
                return Err(format!("unexpected character {c:?}"));
            };
            if *op == "=" {
                return Err("'=' is not an operator; compare with '=='".into());
            }
            tokens.push(Token::Op(op));
            i += op.chars().count();
        }
    }
    Ok(tokens)
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Literal(Value),
    Var(String),
    Field(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Call(String, Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
}

/// Bounds that keep parsing and evaluating (both recursive) far from the
/// end of the stack whatever the text: tokens in one expression, and
/// nesting of parentheses, brackets, calls and prefix operators.
const MAX_TOKENS: usize = 1000;
const MAX_DEPTH: usize = 64;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_name(&mut self, name: &str) -> bool {
        if matches!(self.peek(), Some(Token::Name(n)) if n == name) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.eat_op(op) {
            Ok(())
        } else {
            match self.peek() {
                Some(t) => Err(format!("expected '{op}', found {t}")),
                None => Err(format!("expected '{op}' before the end")),
            }
        }
    }

    /// Runs `parse` one nesting level deeper, refusing past MAX_DEPTH.
    fn nested(&mut self, parse: fn(&mut Self) -> Result<Expr, String>) -> Result<Expr, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!("the expression nests deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let out = parse(self);
        self.depth -= 1;
        out
    }

    fn or(&mut self) -> Result<Expr, String> {
        self.nested(Self::or_level)
    }

    fn or_level(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_op("||") || self.eat_name("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.eat_op("&&") || self.eat_name("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.eat_op("!") || self.eat_name("not") {
            return Ok(Expr::Not(Box::new(self.nested(Self::not)?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, String> {
        let left = self.sum()?;
        let op: &'static str = match self.peek() {
            Some(Token::Op(o)) if ["==", "!=", "<", "<=", ">", ">="].contains(o) => o,
            Some(Token::Name(n)) => match n.as_str() {
                "in" => "in",
                "contains" => "contains",
                "startsWith" => "startsWith",
                "endsWith" => "endsWith",
                "matches" => "matches",
                "not" if matches!(self.tokens.get(self.pos + 1), Some(Token::Name(n)) if n == "in") => {
                    self.pos += 2;
                    let right = self.sum()?;
                    return Ok(Expr::Not(Box::new(Expr::Binary("in", Box::new(left), Box::new(right)))));
                }
                _ => return Ok(left),
            },
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.sum()?;
        if op == "matches"
            && let Expr::Literal(Value::String(pattern)) = &right
        {
            regex::Regex::new(pattern).map_err(|e| format!("bad regular expression {pattern:?}: {e}"))?;
        }
        Ok(Expr::Binary(op, Box::new(left), Box::new(right)))
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut left = self.product()?;
        loop {
            let op = if self.eat_op("+") {
                "+"
            } else if self.eat_op("-") {
                "-"
            } else {
                return Ok(left);
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat_op("*") {
                "*"
            } else if self.eat_op("/") {
                "/"
            } else if self.eat_op("%") {
                "%"
            } else {
                return Ok(left);
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_op("-") {
            return Ok(Expr::Neg(Box::new(self.nested(Self::unary)?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut expr = self.primary()?;
        loop {
            if self.eat_op(".") || self.eat_op("?.") {
                match self.next() {
                    Some(Token::Name(n)) => expr = Expr::Field(Box::new(expr), n),
                    Some(Token::Number(n)) if n.fract() == 0.0 => {
                        expr = Expr::Index(Box::new(expr), Box::new(Expr::Literal(Value::from(n as i64))));
                    }
                    Some(t) => return Err(format!("expected a field name after '.', found {t}")),
                    None => return Err("expected a field name after '.'".into()),
                }
            } else if self.eat_op("[") {
                let index = self.or()?;
                self.expect_op("]")?;
                expr = Expr::Index(Box::new(expr), Box::new(index));
            } else {
                return Ok(expr);
            }
        }
    }

    fn args(&mut self, close: &str) -> Result<Vec<Expr>, String> {
        let mut args = Vec::new();
        if self.eat_op(close) {
            return Ok(args);
        }
        loop {
            args.push(self.or()?);
            if self.eat_op(close) {
                return Ok(args);
            }
            self.expect_op(",")?;
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Number(n)) => Ok(Expr::Literal(number(n))),
            Some(Token::Str(s)) => Ok(Expr::Literal(Value::String(s))),
            Some(Token::Name(n)) => match n.as_str() {
                "true" => Ok(Expr::Literal(Value::Bool(true))),
                "false" => Ok(Expr::Literal(Value::Bool(false))),
                "nil" | "null" => Ok(Expr::Literal(Value::Null)),
                _ if self.eat_op("(") => {
                    let args = self.args(")")?;
                    check_call(&n, &args)?;
                    Ok(Expr::Call(n, args))
                }
                _ => Ok(Expr::Var(n)),
            },
            Some(Token::Op("(")) => {
                let inner = self.or()?;
                self.expect_op(")")?;
                Ok(inner)
            }
            Some(Token::Op("[")) => Ok(Expr::List(self.args("]")?)),
            Some(t) => Err(format!("unexpected {t}")),
            None => Err("the expression ends too early".into()),
        }
    }
}

fn check_call(name: &str, args: &[Expr]) -> Result<(), String> {
    let arity = match name {
        "len" | "lower" | "upper" | "trim" | "string" | "int" | "float" | "has" => 1,
        _ => {
            return Err(format!(
                "unknown function '{name}' (known: len, lower, upper, trim, string, int, float, has)"
            ));
        }
    };
    if args.len() != arity {
        return Err(format!("{name}() takes {arity} argument(s), got {}", args.len()));
    }
    Ok(())
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        Value::from(n as i64)
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn eval(expr: &Expr, data: &Value) -> Result<Value, String> {
    Ok(match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Var(name) => data.get(name).cloned().unwrap_or(Value::Null),
        Expr::Field(inner, name) => eval(inner, data)?.get(name).cloned().unwrap_or(Value::Null),
        Expr::Index(inner, index) => {
            let target = eval(inner, data)?;
            match eval(index, data)? {
                Value::String(key) => target.get(&key).cloned().unwrap_or(Value::Null),
                Value::Number(n) => {
                    let i = n.as_i64().ok_or_else(|| format!("index {n} is not an integer"))?;
                    match &target {
                        Value::Array(items) => {
                            let i = if i < 0 { items.len() as i64 + i } else { i };
                            usize::try_from(i)
                                .ok()
                                .and_then(|i| items.get(i))
                                .cloned()
                                .unwrap_or(Value::Null)
                        }
                        _ => Value::Null,
                    }
                }
                other => return Err(format!("cannot index with {other}")),
            }
        }
        Expr::List(items) => Value::Array(items.iter().map(|e| eval(e, data)).collect::<Result<_, _>>()?),
        Expr::Call(name, args) => call(name, args, data)?,
        Expr::Not(inner) => Value::Bool(!truth(&eval(inner, data)?, "!")?),
        Expr::Neg(inner) => match eval(inner, data)? {
            Value::Number(n) => number(-n.as_f64().unwrap_or(0.0)),
            other => return Err(format!("cannot negate {other}")),
        },
        Expr::And(a, b) => Value::Bool(truth(&eval(a, data)?, "&&")? && truth(&eval(b, data)?, "&&")?),
        Expr::Or(a, b) => Value::Bool(truth(&eval(a, data)?, "||")? || truth(&eval(b, data)?, "||")?),
        Expr::Binary(op, a, b) => binary(op, &eval(a, data)?, &eval(b, data)?)?,
    })
}

fn truth(v: &Value, op: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(format!("'{op}' needs true or false, got {other}")),
    }
}

fn call(name: &str, args: &[Expr], data: &Value) -> Result<Value, String> {
    if name == "has" {
        // `has(body.x)`: whether the path exists (even when its value is null).
        return Ok(Value::Bool(exists(&args[0], data)?));
    }
    let arg = eval(&args[0], data)?;
    Ok(match (name, &arg) {
        ("len", Value::String(s)) => Value::from(s.chars().count()),
        ("len", Value::Array(a)) => Value::from(a.len()),
        ("len", Value::Object(o)) => Value::from(o.len()),
        ("lower", Value::String(s)) => Value::String(s.to_lowercase()),
        ("upper", Value::String(s)) => Value::String(s.to_uppercase()),
        ("trim", Value::String(s)) => Value::String(s.trim().to_owned()),
        ("string", Value::String(_)) => arg.clone(),
        ("string", other) => Value::String(other.to_string()),
        ("int", Value::Number(n)) => Value::from(n.as_f64().unwrap_or(0.0).trunc() as i64),
        ("int", Value::String(s)) => Value::from(
            s.trim()
                .parse::<i64>()
                .map_err(|_| format!("int(): {s:?} is not an integer"))?,
        ),
        ("float", Value::Number(n)) => number(n.as_f64().unwrap_or(0.0)),
        ("float", Value::String(s)) => number(
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("float(): {s:?} is not a number"))?,
        ),
        (name, other) => return Err(format!("{name}() cannot take {other}")),
    })
}

fn exists(expr: &Expr, data: &Value) -> Result<bool, String> {
    Ok(match expr {
        Expr::Var(name) => data.get(name).is_some(),
        Expr::Field(inner, name) => exists(inner, data)? && eval(inner, data)?.get(name).is_some(),
        other => !eval(other, data)?.is_null(),
    })
}

fn binary(op: &str, a: &Value, b: &Value) -> Result<Value, String> {
    let as_f64 = |v: &Value| v.as_f64();
    Ok(match op {
        "==" => Value::Bool(equal(a, b)),
        "!=" => Value::Bool(!equal(a, b)),
        "<" | "<=" | ">" | ">=" => {
            let ord = match (a, b) {
                (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                _ => return Err(format!("cannot compare {a} {op} {b}")),
            };
            let Some(ord) = ord else {
                return Ok(Value::Bool(false));
            };
            Value::Bool(match op {
                "<" => ord.is_lt(),
                "<=" => ord.is_le(),
                ">" => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        "in" => Value::Bool(match b {
            Value::Array(items) => items.iter().any(|i| equal(a, i)),
            Value::Object(map) => a.as_str().is_some_and(|k| map.contains_key(k)),
            Value::Null => false,
            other => return Err(format!("'in' needs a list or a map on the right, got {other}")),
        }),
        "contains" | "startsWith" | "endsWith" | "matches" => {
            let (Value::String(s), Value::String(t)) = (a, b) else {
                return Ok(Value::Bool(false));
            };
            Value::Bool(match op {
                "contains" => s.contains(t.as_str()),
                "startsWith" => s.starts_with(t.as_str()),
                "endsWith" => s.ends_with(t.as_str()),
                _ => regex::Regex::new(t)
                    .map_err(|e| format!("bad regular expression {t:?}: {e}"))?
                    .is_match(s),
            })
        }
        "+" => match (a, b) {
            (Value::String(x), Value::String(y)) => Value::String(format!("{x}{y}")),
            _ => number(arith(a, b, op, as_f64)?),
        },
        _ => number(arith(a, b, op, as_f64)?),
    })
}

fn arith(a: &Value, b: &Value, op: &str, as_f64: impl Fn(&Value) -> Option<f64>) -> Result<f64, String> {
    let (Some(x), Some(y)) = (as_f64(a), as_f64(b)) else {
        return Err(format!("cannot compute {a} {op} {b}"));
    };
    Ok(match op {
        "+" => x + y,
        "-" => x - y,
        "*" => x * y,
        "/" => x / y,
        _ => x % y,
    })
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(expr: &str, data: &Value) -> bool {
        Filter::parse(expr).unwrap().matches(data).unwrap()
    }

    #[test]
    fn compares_paths_and_literals() {
        let data = json!({"body": {"a": "x", "n": 3, "list": [1, 2], "nested": {"k": true}}, "header": {"X-Y": ["v"]}});
        assert!(check(r#"body.a == "x""#, &data));
        assert!(!check(r#"body.a != "x""#, &data));
        assert!(check("body.n > 2 && body.n <= 3", &data));
        assert!(check("body.n == 3.0", &data));
        assert!(check("body.nested.k", &data));
        assert!(check("body.missing == nil", &data));
        assert!(check("len(body.list) == 2 and body.list[1] == 2", &data));
        assert!(check("2 in body.list", &data));
        assert!(check("5 not in body.list", &data));
        assert!(check(r#"header["X-Y"][0] == 'v'"#, &data));
        assert!(check(r#"body.a startsWith "x" || false"#, &data));
        assert!(check(r#"upper(body.a) matches "^X$""#, &data));
        assert!(check("!(body.n < 0) && -body.n == -3 && body.n * 2 + 1 == 7", &data));
        assert!(check("has(body.a) && !has(body.zzz)", &data));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Filter::parse("body.a = 1").unwrap_err().to_string();
        assert!(e.contains("'=='"), "{e}");
        let e = Filter::parse("body.a ==").unwrap_err().to_string();
        assert!(e.contains("ends too early"), "{e}");
        let e = Filter::parse("nope(1)").unwrap_err().to_string();
        assert!(e.contains("unknown function"), "{e}");
        let e = Filter::parse("body.a")
            .unwrap()
            .matches(&json!({"body": {"a": 1}}))
            .unwrap_err();
        assert!(e.to_string().contains("not to true or false"), "{e}");
        let e = Filter::parse("body.a < 1")
            .unwrap()
            .matches(&json!({"body": {"a": "s"}}))
            .unwrap_err();
        assert!(e.to_string().contains("cannot compare"), "{e}");
    }
}
