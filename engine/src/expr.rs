//! Workflow substitution and expressions: `{{name}}` placeholders, `when`
//! conditions (bare words read as strings, so `heads == heads` holds), and
//! `{{=expression}}` with the common subset of the expression language:
//! comparisons, `&&`, `||`, `!`, arithmetic, `in`, `?:`, string and list
//! literals, `asInt`, `asFloat`, `string`, `jsonpath` and `sprig.*` functions.
//!
//! Longer than most files: the lexer, parser and evaluator of one language;
//! issue 23 replaces it with one expression crate for the whole workspace.

use std::collections::BTreeMap;

use serde_json::{Number, Value};

/// The variables visible to a template: `inputs.parameters.x`,
/// `steps.a.outputs.result`, `workflow.name`, `item`...
pub type Vars = BTreeMap<String, String>;

/// Why an expression could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExprError(pub String);

type Result<T> = std::result::Result<T, ExprError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(ExprError(msg.into()))
}

/// Replaces every `{{name}}` whose name is in `vars`, and evaluates every
/// `{{=expression}}`. Placeholders naming unknown variables are left as
/// written (a later stage may know them, e.g. `{{item}}` before expansion).
pub fn substitute(text: &str, vars: &Vars) -> Result<String> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = after[..end].trim();
        if let Some(expression) = inner.strip_prefix('=') {
            let v = eval(expression, vars, Mode::Expr)
                .map_err(|e| ExprError(format!("expression '{}': {}", expression.trim(), e.0)))?;
            out.push_str(&to_text(&v));
        } else if let Some(v) = vars.get(inner) {
            out.push_str(v);
        } else {
            out.push_str(&rest[start..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The names in `{{...}}` placeholders of `text` that `vars` does not define
/// (expressions excluded).
pub fn unresolved(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        if !inner.starts_with('=') {
            out.push(inner.to_string());
        }
        rest = &after[end + 2..];
    }
    out
}

/// Evaluates a `when` condition: substitutes, then evaluates the result with
/// bare words read as strings.
pub fn eval_when(when: &str, vars: &Vars) -> Result<bool> {
    let text = substitute(when, vars)?;
    if let Some(name) = unresolved(&text).first() {
        return err(format!("'{{{{{name}}}}}' has no value here"));
    }
    match eval(&text, vars, Mode::When)? {
        Value::Bool(b) => Ok(b),
        other => err(format!(
            "when '{text}' gives {} rather than true or false",
            to_text(&other)
        )),
    }
}

/// Evaluates a condition in the expression language (`response.statusCode == 201`).
pub fn eval_condition(expression: &str, vars: &Vars) -> Result<bool> {
    match eval(expression, vars, Mode::Expr)? {
        Value::Bool(b) => Ok(b),
        other => err(format!(
            "'{expression}' gives {} rather than true or false",
            to_text(&other)
        )),
    }
}

/// Evaluates an expression to a value.
pub fn eval_expression(expression: &str, vars: &Vars) -> Result<Value> {
    eval(expression, vars, Mode::Expr)
}

/// A value as it is substituted into text: strings as they are, integral
/// numbers without a fraction, everything else as JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) => format_number(n),
        other => other.to_string(),
    }
}

fn format_number(n: &Number) -> String {
    if let Some(f) = n.as_f64()
        && n.is_f64()
        && f.fract() == 0.0
        && f.abs() < 1e15
    {
        return format!("{}", f as i64);
    }
    n.to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Bare words are strings (govaluate-style `when`).
    When,
    /// Bare words are variables.
    Expr,
}

fn eval(text: &str, vars: &Vars, mode: Mode) -> Result<Value> {
    let tokens = lex(text, mode)?;
    if tokens.is_empty() {
        return err("empty expression");
    }
    if tokens.len() > MAX_TOKENS {
        return err(format!(
            "the expression has {} tokens; at most {MAX_TOKENS} are allowed",
            tokens.len()
        ));
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let ast = p.ternary()?;
    if p.pos != p.tokens.len() {
        return err(format!("unexpected '{}'", p.tokens[p.pos].show()));
    }
    let ev = Evaluator { vars, mode };
    ev.eval(&ast)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Num(n) => n.to_string(),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Ident(s) => s.clone(),
            Tok::Op(o) => o.to_string(),
        }
    }
}

const OPS: [&str; 25] = [
    "===", "!==", "==", "!=", "<=", ">=", "&&", "||", "=~", "!~", "??", "<", ">", "!", "+", "-", "*", "/", "%", "(",
    ")", "[", "]", ",", "?",
];

fn lex(text: &str, mode: Mode) -> Result<Vec<Tok>> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' || c == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else {
                    return err(format!("unterminated string in '{text}'"));
                };
                i += 1;
                if d == c {
                    break;
                }
                if d == '\\' && c != '`' {
                    let Some(&e) = chars.get(i) else {
                        return err(format!("unterminated string in '{text}'"));
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
            out.push(Tok::Str(s));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // `3.6`-like words followed by letters are bare words in `when` mode.
            if mode == Mode::When && i < chars.len() && (chars[i].is_alphabetic() || chars[i] == '-') {
                while i < chars.len() && is_word_char(chars[i], mode) {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
                continue;
            }
            let s: String = chars[start..i].iter().collect();
            match s.parse::<f64>() {
                Ok(n) => out.push(Tok::Num(n)),
                Err(_) => {
                    if mode == Mode::When {
                        out.push(Tok::Ident(s));
                    } else {
                        return err(format!("bad number '{s}'"));
                    }
                }
            }
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            // The first character is taken whatever is_word_char says of it
            // (`$` is not one in every mode): the lexer always moves on.
            i += 1;
            while i < chars.len() && is_word_char(chars[i], mode) {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
            continue;
        }
        if c == '.' {
            out.push(Tok::Op("."));
            i += 1;
            continue;
        }
        if c == ':' {
            out.push(Tok::Op(":"));
            i += 1;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
        let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
            return err(format!("unexpected character '{c}' in '{text}'"));
        };
        out.push(Tok::Op(op));
        i += op.chars().count();
    }
    Ok(out)
}

fn is_word_char(c: char, mode: Mode) -> bool {
    c.is_alphanumeric() || c == '_' || (mode == Mode::When && (c == '-' || c == '.' || c == '/'))
}

#[derive(Clone, Debug)]
enum Ast {
    Lit(Value),
    /// A bare name (a variable, or a string in `when` mode).
    Name(String),
    Member(Box<Ast>, String),
    Index(Box<Ast>, Box<Ast>),
    Call(String, Vec<Ast>),
    List(Vec<Ast>),
    Unary(&'static str, Box<Ast>),
    Binary(&'static str, Box<Ast>, Box<Ast>),
    Ternary(Box<Ast>, Box<Ast>, Box<Ast>),
}

/// Bounds that keep parsing and evaluating (both recursive) far from the
/// end of the stack whatever the text: tokens in one expression, and
/// nesting of parentheses, brackets, calls, `?:` and prefix operators.
const MAX_TOKENS: usize = 1000;
const MAX_DEPTH: usize = 64;
/// The longest text a function may make (`repeat`).
const MAX_TEXT: usize = 1 << 20;

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<()> {
        if self.eat_op(op) {
            Ok(())
        } else {
            err(format!(
                "expected '{op}', found {}",
                self.peek()
                    .map(|t| format!("'{}'", t.show()))
                    .unwrap_or_else(|| "the end".into())
            ))
        }
    }

    /// Runs `parse` one nesting level deeper, refusing past MAX_DEPTH.
    fn nested(&mut self, parse: fn(&mut Self) -> Result<Ast>) -> Result<Ast> {
        if self.depth >= MAX_DEPTH {
            return err(format!("the expression nests deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let out = parse(self);
        self.depth -= 1;
        out
    }

    fn ternary(&mut self) -> Result<Ast> {
        self.nested(Self::ternary_level)
    }

    fn ternary_level(&mut self) -> Result<Ast> {
        let cond = self.or()?;
        if self.eat_op("?") {
            let a = self.ternary()?;
            self.expect_op(":")?;
            let b = self.ternary()?;
            return Ok(Ast::Ternary(Box::new(cond), Box::new(a), Box::new(b)));
        }
        Ok(cond)
    }

    fn or(&mut self) -> Result<Ast> {
        let mut left = self.and()?;
        loop {
            if self.eat_op("||") || self.eat_word("or") {
                let right = self.and()?;
                left = Ast::Binary("||", Box::new(left), Box::new(right));
            } else if self.eat_op("??") {
                let right = self.and()?;
                left = Ast::Binary("??", Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn and(&mut self) -> Result<Ast> {
        let mut left = self.equality()?;
        while self.eat_op("&&") || self.eat_word("and") {
            let right = self.equality()?;
            left = Ast::Binary("&&", Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Ast> {
        let mut left = self.relation()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(o)) if matches!(*o, "==" | "!=" | "===" | "!==" | "=~" | "!~") => *o,
                Some(Tok::Ident(w)) if w == "matches" => "=~",
                Some(Tok::Ident(w)) if w == "contains" => "contains",
                Some(Tok::Ident(w)) if w == "startsWith" => "startsWith",
                Some(Tok::Ident(w)) if w == "endsWith" => "endsWith",
                _ => return Ok(left),
            };
            self.pos += 1;
            let op = match op {
                "===" => "==",
                "!==" => "!=",
                o => o,
            };
            let right = self.relation()?;
            left = Ast::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn relation(&mut self) -> Result<Ast> {
        let mut left = self.additive()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(o)) if matches!(*o, "<" | "<=" | ">" | ">=") => *o,
                Some(Tok::Ident(w)) if w == "in" => "in",
                Some(Tok::Ident(w)) if w == "not" => {
                    if matches!(self.tokens.get(self.pos + 1), Some(Tok::Ident(w)) if w == "in") {
                        self.pos += 1;
                        "not in"
                    } else {
                        return Ok(left);
                    }
                }
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.additive()?;
            left = Ast::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn additive(&mut self) -> Result<Ast> {
        let mut left = self.term()?;
        loop {
            let op = if self.eat_op("+") {
                "+"
            } else if self.eat_op("-") {
                "-"
            } else {
                return Ok(left);
            };
            let right = self.term()?;
            left = Ast::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn term(&mut self) -> Result<Ast> {
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
            let right = self.unary()?;
            left = Ast::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Ast> {
        if self.eat_op("!") || self.eat_word("not") {
            return Ok(Ast::Unary("!", Box::new(self.nested(Self::unary)?)));
        }
        if self.eat_op("-") {
            return Ok(Ast::Unary("-", Box::new(self.nested(Self::unary)?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Ast> {
        let mut e = self.primary()?;
        loop {
            if self.eat_op(".") {
                match self.tokens.get(self.pos).cloned() {
                    Some(Tok::Ident(name)) => {
                        self.pos += 1;
                        e = Ast::Member(Box::new(e), name);
                    }
                    Some(Tok::Num(n)) => {
                        self.pos += 1;
                        e = Ast::Member(Box::new(e), to_text(&num(n)));
                    }
                    _ => return err("expected a name after '.'"),
                }
            } else if self.eat_op("[") {
                let idx = self.ternary()?;
                self.expect_op("]")?;
                e = Ast::Index(Box::new(e), Box::new(idx));
            } else if matches!(self.peek(), Some(Tok::Op("("))) {
                let name = match &e {
                    Ast::Name(n) => n.clone(),
                    Ast::Member(base, m) => match base.as_ref() {
                        Ast::Name(b) => format!("{b}.{m}"),
                        _ => return err("only named functions can be called"),
                    },
                    _ => return err("only named functions can be called"),
                };
                self.pos += 1;
                let mut args = Vec::new();
                if !self.eat_op(")") {
                    loop {
                        args.push(self.ternary()?);
                        if self.eat_op(")") {
                            break;
                        }
                        self.expect_op(",")?;
                    }
                }
                e = Ast::Call(name, args);
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Ast> {
        let Some(tok) = self.tokens.get(self.pos).cloned() else {
            return err("unexpected end of expression");
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Ast::Lit(num(n))),
            Tok::Str(s) => Ok(Ast::Lit(Value::String(s))),
            Tok::Ident(w) => match w.as_str() {
                "true" => Ok(Ast::Lit(Value::Bool(true))),
                "false" => Ok(Ast::Lit(Value::Bool(false))),
                "nil" | "null" => Ok(Ast::Lit(Value::Null)),
                _ => Ok(Ast::Name(w)),
            },
            Tok::Op("(") => {
                let e = self.ternary()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                if !self.eat_op("]") {
                    loop {
                        items.push(self.ternary()?);
                        if self.eat_op("]") {
                            break;
                        }
                        self.expect_op(",")?;
                    }
                }
                Ok(Ast::List(items))
            }
            other => err(format!("unexpected '{}'", other.show())),
        }
    }
}

fn num(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map(Value::Number).unwrap_or(Value::Null)
    }
}

struct Evaluator<'a> {
    vars: &'a Vars,
    mode: Mode,
}

/// A dotted path of names, when the expression is one (`steps.a.outputs.result`).
fn path_of(ast: &Ast) -> Option<String> {
    match ast {
        Ast::Name(n) => Some(n.clone()),
        Ast::Member(base, m) => path_of(base).map(|b| format!("{b}.{m}")),
        Ast::Index(base, idx) => match idx.as_ref() {
            Ast::Lit(Value::String(s)) => path_of(base).map(|b| format!("{b}.{s}")),
            _ => None,
        },
        _ => None,
    }
}

/// A variable's text as a value: JSON lists and maps are parsed, so
/// `item.key` and `jsonpath` work on them; everything else stays a string.
fn var_value(s: &str) -> Value {
    let t = s.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && let Ok(v) = serde_json::from_str::<Value>(s)
    {
        return v;
    }
    Value::String(s.to_string())
}

impl Evaluator<'_> {
    fn eval(&self, ast: &Ast) -> Result<Value> {
        match ast {
            Ast::Lit(v) => Ok(v.clone()),
            Ast::Name(_) | Ast::Member(..) | Ast::Index(..) => self.lookup(ast),
            Ast::List(items) => Ok(Value::Array(items.iter().map(|i| self.eval(i)).collect::<Result<_>>()?)),
            Ast::Unary(op, x) => {
                let v = self.eval(x)?;
                match *op {
                    "!" => Ok(Value::Bool(!truthy(&v)?)),
                    _ => Ok(num(-as_f64(&v)?)),
                }
            }
            Ast::Ternary(c, a, b) => {
                if truthy(&self.eval(c)?)? {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Ast::Binary(op, a, b) => self.binary(op, a, b),
            Ast::Call(name, args) => {
                let args: Vec<Value> = args.iter().map(|a| self.eval(a)).collect::<Result<_>>()?;
                call(name, &args)
            }
        }
    }

    fn lookup(&self, ast: &Ast) -> Result<Value> {
        if let Some(path) = path_of(ast) {
            if let Some(v) = self.vars.get(&path) {
                return Ok(var_value(v));
            }
            if self.mode == Mode::When && matches!(ast, Ast::Name(_)) {
                return Ok(Value::String(path));
            }
        }
        match ast {
            Ast::Name(n) => {
                if self.mode == Mode::When {
                    Ok(Value::String(n.clone()))
                } else {
                    err(format!("unknown variable '{n}'"))
                }
            }
            Ast::Member(base, m) => {
                let b = self.lookup_or_eval(base)?;
                index(&b, &Value::String(m.clone()))
            }
            Ast::Index(base, idx) => {
                let b = self.lookup_or_eval(base)?;
                let i = self.eval(idx)?;
                index(&b, &i)
            }
            other => self.eval(other),
        }
    }

    fn lookup_or_eval(&self, ast: &Ast) -> Result<Value> {
        match ast {
            Ast::Name(_) | Ast::Member(..) | Ast::Index(..) => self.lookup(ast),
            other => self.eval(other),
        }
    }

    fn binary(&self, op: &str, a: &Ast, b: &Ast) -> Result<Value> {
        match op {
            "&&" => {
                if !truthy(&self.eval(a)?)? {
                    return Ok(Value::Bool(false));
                }
                return Ok(Value::Bool(truthy(&self.eval(b)?)?));
            }
            "||" => {
                if truthy(&self.eval(a)?)? {
                    return Ok(Value::Bool(true));
                }
                return Ok(Value::Bool(truthy(&self.eval(b)?)?));
            }
            "??" => {
                let v = self.eval(a);
                return match v {
                    Ok(Value::Null) | Err(_) => self.eval(b),
                    Ok(v) => Ok(v),
                };
            }
            _ => {}
        }
        let x = self.eval(a)?;
        let y = self.eval(b)?;
        match op {
            "==" => Ok(Value::Bool(equal(&x, &y))),
            "!=" => Ok(Value::Bool(!equal(&x, &y))),
            "<" | "<=" | ">" | ">=" => {
                let ord = compare(&x, &y)?;
                Ok(Value::Bool(match op {
                    "<" => ord.is_lt(),
                    "<=" => ord.is_le(),
                    ">" => ord.is_gt(),
                    _ => ord.is_ge(),
                }))
            }
            "=~" | "!~" => {
                let re = regex::Regex::new(&to_text(&y)).map_err(|e| ExprError(format!("bad regex: {e}")))?;
                let m = re.is_match(&to_text(&x));
                Ok(Value::Bool(if op == "=~" { m } else { !m }))
            }
            "in" | "not in" => {
                let found = match &y {
                    Value::Array(items) => items.iter().any(|i| equal(i, &x)),
                    Value::Object(m) => m.contains_key(&to_text(&x)),
                    Value::String(s) => s.contains(&to_text(&x)),
                    _ => return err("'in' needs a list, a map or a string on its right"),
                };
                Ok(Value::Bool(if op == "in" { found } else { !found }))
            }
            "contains" => Ok(Value::Bool(to_text(&x).contains(&to_text(&y)))),
            "startsWith" => Ok(Value::Bool(to_text(&x).starts_with(&to_text(&y)))),
            "endsWith" => Ok(Value::Bool(to_text(&x).ends_with(&to_text(&y)))),
            "+" => {
                if let (Some(p), Some(q)) = (strict_num(&x), strict_num(&y)) {
                    Ok(num(p + q))
                } else {
                    Ok(Value::String(format!("{}{}", to_text(&x), to_text(&y))))
                }
            }
            "-" => Ok(num(as_f64(&x)? - as_f64(&y)?)),
            "*" => Ok(num(as_f64(&x)? * as_f64(&y)?)),
            "/" => {
                let d = as_f64(&y)?;
                if d == 0.0 {
                    return err("division by zero");
                }
                Ok(num(as_f64(&x)? / d))
            }
            "%" => {
                let d = as_f64(&y)?;
                if d == 0.0 {
                    return err("division by zero");
                }
                Ok(num(as_f64(&x)? % d))
            }
            other => err(format!("unknown operator '{other}'")),
        }
    }
}

fn strict_num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Result<f64> {
    match v {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| ExprError(format!("'{s}' is not a number"))),
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        other => err(format!("{other} is not a number")),
    }
}

fn truthy(v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => err(format!("{} is not true or false", to_text(other))),
    }
}

/// Equality as users expect of parameter values (all strings): numbers
/// compare as numbers when both sides read as numbers.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), _) | (_, Value::Number(_)) => match (as_f64(a), as_f64(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => to_text(a) == to_text(b),
        },
        (Value::Bool(x), Value::String(s)) | (Value::String(s), Value::Bool(x)) => s == &x.to_string(),
        (Value::String(x), Value::String(y)) => x == y,
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering> {
    if let (Ok(x), Ok(y)) = (as_f64(a), as_f64(b)) {
        return x.partial_cmp(&y).ok_or_else(|| ExprError("cannot compare NaN".into()));
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => err(format!("cannot compare {} with {}", to_text(a), to_text(b))),
    }
}

fn index(base: &Value, idx: &Value) -> Result<Value> {
    let base = match base {
        Value::String(s) => var_value(s),
        other => other.clone(),
    };
    match (&base, idx) {
        (Value::Object(m), k) => m
            .get(&to_text(k))
            .cloned()
            .ok_or_else(|| ExprError(format!("no key '{}'", to_text(k)))),
        (Value::Array(items), i) => {
            let i = as_f64(i)? as i64;
            let i = if i < 0 { items.len() as i64 + i } else { i };
            items
                .get(i as usize)
                .cloned()
                .ok_or_else(|| ExprError(format!("index {i} out of range")))
        }
        _ => err(format!("cannot index {} with {}", to_text(&base), to_text(idx))),
    }
}

fn arg<'v>(args: &'v [Value], i: usize, name: &str) -> Result<&'v Value> {
    args.get(i)
        .ok_or_else(|| ExprError(format!("{name} needs {} argument(s)", i + 1)))
}

fn text_arg(args: &[Value], i: usize, name: &str) -> Result<String> {
    arg(args, i, name).map(to_text)
}

fn call(name: &str, args: &[Value]) -> Result<Value> {
    let f = name.strip_prefix("sprig.").unwrap_or(name);
    match f {
        "asInt" | "int" | "atoi" | "int64" => {
            let v = arg(args, 0, f)?;
            let n = as_f64(v)?;
            Ok(Value::Number(Number::from(n.trunc() as i64)))
        }
        "asFloat" | "float" | "float64" => Ok(Number::from_f64(as_f64(arg(args, 0, f)?)?)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "string" | "toString" => Ok(Value::String(text_arg(args, 0, f)?)),
        "len" | "length" => {
            let v = match arg(args, 0, f)? {
                Value::String(s) => var_value(s),
                other => other.clone(),
            };
            Ok(Value::Number(Number::from(match &v {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.chars().count(),
                _ => 0,
            })))
        }
        "toJson" | "toJSON" | "toRawJson" => Ok(Value::String(arg(args, 0, f)?.to_string())),
        "fromJson" | "fromJSON" => {
            serde_json::from_str(&text_arg(args, 0, f)?).map_err(|e| ExprError(format!("fromJson: {e}")))
        }
        "jsonpath" => {
            let doc = match arg(args, 0, f)? {
                Value::String(s) => serde_json::from_str(s).map_err(|e| ExprError(format!("jsonpath: {e}")))?,
                other => other.clone(),
            };
            jsonpath(&doc, &text_arg(args, 1, f)?)
        }
        "upper" | "toUpper" => Ok(Value::String(text_arg(args, 0, f)?.to_uppercase())),
        "lower" | "toLower" => Ok(Value::String(text_arg(args, 0, f)?.to_lowercase())),
        "trim" => Ok(Value::String(text_arg(args, 0, f)?.trim().to_string())),
        "title" => Ok(Value::String(
            text_arg(args, 0, f)?
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|first| first.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "nospace" => Ok(Value::String(
            text_arg(args, 0, f)?.chars().filter(|c| !c.is_whitespace()).collect(),
        )),
        "quote" => Ok(Value::String(format!("\"{}\"", text_arg(args, 0, f)?))),
        "squote" => Ok(Value::String(format!("'{}'", text_arg(args, 0, f)?))),
        "replace" => Ok(Value::String(
            text_arg(args, 2, f)?.replace(&text_arg(args, 0, f)?, &text_arg(args, 1, f)?),
        )),
        "trimSuffix" => {
            let s = text_arg(args, 1, f)?;
            let x = text_arg(args, 0, f)?;
            Ok(Value::String(s.strip_suffix(x.as_str()).unwrap_or(&s).to_string()))
        }
        "trimPrefix" => {
            let s = text_arg(args, 1, f)?;
            let x = text_arg(args, 0, f)?;
            Ok(Value::String(s.strip_prefix(x.as_str()).unwrap_or(&s).to_string()))
        }
        "contains" => Ok(Value::Bool(text_arg(args, 1, f)?.contains(&text_arg(args, 0, f)?))),
        "hasPrefix" => Ok(Value::Bool(text_arg(args, 1, f)?.starts_with(&text_arg(args, 0, f)?))),
        "hasSuffix" => Ok(Value::Bool(text_arg(args, 1, f)?.ends_with(&text_arg(args, 0, f)?))),
        "repeat" => {
            let count = as_f64(arg(args, 0, f)?)?.max(0.0) as usize;
            let text = text_arg(args, 1, f)?;
            match text.len().checked_mul(count) {
                Some(size) if size <= MAX_TEXT => Ok(Value::String(text.repeat(count))),
                _ => err(format!("repeat: the result would exceed {MAX_TEXT} bytes")),
            }
        }
        "trunc" => {
            let n = as_f64(arg(args, 0, f)?)?.max(0.0) as usize;
            Ok(Value::String(text_arg(args, 1, f)?.chars().take(n).collect()))
        }
        "substr" => {
            let start = as_f64(arg(args, 0, f)?)?.max(0.0) as usize;
            let end = as_f64(arg(args, 1, f)?)?.max(0.0) as usize;
            let s: Vec<char> = text_arg(args, 2, f)?.chars().collect();
            let end = end.min(s.len());
            Ok(Value::String(
                s.get(start.min(end)..end).unwrap_or(&[]).iter().collect(),
            ))
        }
        "split" | "splitList" => {
            let (sep, s) = if f == "split" {
                (text_arg(args, 1, f)?, text_arg(args, 0, f)?)
            } else {
                (text_arg(args, 0, f)?, text_arg(args, 1, f)?)
            };
            Ok(Value::Array(
                s.split(sep.as_str()).map(|p| Value::String(p.to_string())).collect(),
            ))
        }
        "join" => {
            let (list, sep) = match (arg(args, 0, f)?, args.get(1)) {
                (Value::Array(items), Some(sep)) => (items.clone(), to_text(sep)),
                (sep, Some(Value::Array(items))) => (items.clone(), to_text(sep)),
                _ => return err("join needs a list and a separator"),
            };
            Ok(Value::String(list.iter().map(to_text).collect::<Vec<_>>().join(&sep)))
        }
        "default" => {
            let v = arg(args, 1, f).cloned().unwrap_or(Value::Null);
            let empty = matches!(&v, Value::Null) || matches!(&v, Value::String(s) if s.is_empty());
            Ok(if empty { arg(args, 0, f)?.clone() } else { v })
        }
        "add" => Ok(num(args.iter().map(as_f64).sum::<Result<f64>>()?)),
        "sub" => Ok(num(as_f64(arg(args, 0, f)?)? - as_f64(arg(args, 1, f)?)?)),
        "mul" => Ok(num(args.iter().map(as_f64).product::<Result<f64>>()?)),
        "div" => {
            let d = as_f64(arg(args, 1, f)?)?;
            if d == 0.0 {
                return err("division by zero");
            }
            Ok(num((as_f64(arg(args, 0, f)?)? / d).trunc()))
        }
        "mod" => {
            let d = as_f64(arg(args, 1, f)?)?;
            if d == 0.0 {
                return err("division by zero");
            }
            Ok(num(as_f64(arg(args, 0, f)?)? % d))
        }
        "max" => Ok(num(args
            .iter()
            .map(as_f64)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .fold(f64::MIN, f64::max))),
        "min" => Ok(num(args
            .iter()
            .map(as_f64)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .fold(f64::MAX, f64::min))),
        "list" => Ok(Value::Array(args.to_vec())),
        "first" => match arg(args, 0, f)? {
            Value::Array(a) => Ok(a.first().cloned().unwrap_or(Value::Null)),
            _ => err("first needs a list"),
        },
        "last" => match arg(args, 0, f)? {
            Value::Array(a) => Ok(a.last().cloned().unwrap_or(Value::Null)),
            _ => err("last needs a list"),
        },
        "ternary" => Ok(if truthy(arg(args, 2, f)?)? {
            arg(args, 0, f)?.clone()
        } else {
            arg(args, 1, f)?.clone()
        }),
        other => err(format!("unknown function '{other}'")),
    }
}

/// A small JSONPath: `$`, `.key`, `['key']`, `[N]`, `[*]`.
fn jsonpath(doc: &Value, path: &str) -> Result<Value> {
    let p = path.trim();
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut current = vec![doc.clone()];
    let mut wildcard = false;
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let key: String = chars[start..i].iter().collect();
                if key == "*" {
                    wildcard = true;
                    current = current.iter().flat_map(children).collect();
                } else if !key.is_empty() {
                    current = current.iter().filter_map(|v| v.get(&key).cloned()).collect();
                }
            }
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .ok_or_else(|| ExprError(format!("jsonpath '{path}': missing ']'")))?;
                let inner: String = chars[i + 1..i + end].iter().collect();
                let inner = inner.trim();
                i += end + 1;
                if inner == "*" {
                    wildcard = true;
                    current = current.iter().flat_map(children).collect();
                } else if let Ok(n) = inner.parse::<i64>() {
                    current = current
                        .iter()
                        .filter_map(|v| {
                            let a = v.as_array()?;
                            let idx = if n < 0 { a.len() as i64 + n } else { n };
                            a.get(idx as usize).cloned()
                        })
                        .collect();
                } else {
                    let key = inner.trim_matches(|c| c == '\'' || c == '"');
                    current = current.iter().filter_map(|v| v.get(key).cloned()).collect();
                }
            }
            c => return err(format!("jsonpath '{path}': unexpected '{c}'")),
        }
    }
    if wildcard {
        return Ok(Value::Array(current));
    }
    current
        .into_iter()
        .next()
        .ok_or_else(|| ExprError(format!("jsonpath '{path}' matches nothing")))
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m.values().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn substitutes_known_names_and_leaves_unknown_ones() {
        let v = vars(&[("inputs.parameters.message", "hi"), ("workflow.name", "wf-1")]);
        assert_eq!(
            substitute("say {{inputs.parameters.message}} in {{ workflow.name }} {{item}}", &v).unwrap(),
            "say hi in wf-1 {{item}}"
        );
    }

    #[test]
    fn when_reads_bare_words_as_strings() {
        let v = vars(&[
            ("steps.flip-coin.outputs.result", "heads"),
            ("tasks.check-status.status", "Failed"),
        ]);
        assert!(eval_when("{{steps.flip-coin.outputs.result}} == heads", &v).unwrap());
        assert!(!eval_when("{{steps.flip-coin.outputs.result}} == tails", &v).unwrap());
        assert!(eval_when("{{tasks.check-status.status}} == 'Failed'", &v).unwrap());
        assert!(eval_when("5 > 3 && !(2 >= 4) || false", &v).unwrap());
        assert!(eval_when("hello-world != hello", &v).unwrap());
        assert!(eval_when("'abc' =~ '^a'", &v).unwrap());
        assert!(eval_when("10 == 10.0", &v).unwrap());
        let e = eval_when("{{steps.flip-coin.outputs.result}} == heads", &vars(&[])).unwrap_err();
        assert_eq!(e.0, "'{{steps.flip-coin.outputs.result}}' has no value here");
        assert!(eval_when("1 + ", &v).is_err());
    }

    #[test]
    fn expressions_use_variables_and_functions() {
        let v = vars(&[
            ("inputs.parameters.n", "41"),
            ("item", r#"{"name":"a","size":3}"#),
            ("steps.gen.outputs.result", r#"{"list":[1,2,3]}"#),
            ("workflow.name", "wf"),
        ]);
        assert_eq!(substitute("{{=asInt(inputs.parameters.n) + 1}}", &v).unwrap(), "42");
        assert_eq!(substitute("{{=item.name}}-{{=item.size * 2}}", &v).unwrap(), "a-6");
        assert_eq!(
            substitute("{{=jsonpath(steps['gen'].outputs.result, '$.list[1]')}}", &v).unwrap(),
            "2"
        );
        assert_eq!(substitute("{{=sprig.upper(workflow.name)}}", &v).unwrap(), "WF");
        assert_eq!(
            substitute("{{=asInt(inputs.parameters.n) > 40 ? 'big' : 'small'}}", &v).unwrap(),
            "big"
        );
        assert_eq!(substitute("{{='a' in ['a', 'b']}}", &v).unwrap(), "true");
        assert_eq!(substitute("{{=string(asFloat('1.5') * 2)}}", &v).unwrap(), "3");
        assert!(substitute("{{=nosuch.var}}", &v).is_err());
    }

    #[test]
    fn conditions_over_a_response() {
        let v = vars(&[("response.statusCode", "201")]);
        assert!(eval_condition("response.statusCode == 201", &v).unwrap());
        assert!(!eval_condition("response.statusCode >= 300", &v).unwrap());
    }
}
