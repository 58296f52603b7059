//! The boolean form: names combined with `&&`, `||`, parentheses and (where
//! the dialect allows it) `!`, with `&&` binding tighter than `||`. Argo
//! writes a DAG task's `depends` (`A && (B.Failed || !C)`) and a sensor
//! trigger's `conditions` (`(dep01 || dep02) && dep04`) in it; each caller
//! says what a name may hold and what a name means.
//!
//! ```text
//! or      := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!" unary | "(" or ")" | NAME        ("!" only with `not`)
//! ```

/// How deep parentheses and `!` may nest: far above any real expression,
/// and it keeps the recursive parser far from the end of the stack.
pub const MAX_DEPTH: usize = 64;

/// A parsed formula over atoms `A` (what the caller made of each name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Formula<A> {
    Atom(A),
    Not(Box<Formula<A>>),
    /// Two or more operands joined by `&&`.
    All(Vec<Formula<A>>),
    /// Two or more operands joined by `||`.
    Any(Vec<Formula<A>>),
}

/// What a dialect accepts.
#[derive(Clone, Copy, Debug)]
pub struct Dialect {
    /// Whether `!` is an operator.
    pub not: bool,
    /// The characters a name is made of.
    pub name_char: fn(char) -> bool,
    /// A name, as errors describe it: "a task name".
    pub name: &'static str,
}

/// Why a formula does not parse: where (1-based column, in characters), what
/// was expected there and what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at column {column}: expected {expected}, found {found}")]
pub struct BooleanError {
    pub column: usize,
    pub expected: String,
    pub found: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Name(String),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("'{n}'"),
            Tok::And => "'&&'".into(),
            Tok::Or => "'||'".into(),
            Tok::Not => "'!'".into(),
            Tok::Open => "'('".into(),
            Tok::Close => "')'".into(),
        }
    }
}

const END: &str = "the end of the expression";

/// Parses `input` in `dialect`; `atom` turns each name (with its 1-based
/// column) into what the formula holds, or refuses it.
pub fn parse<A>(
    input: &str,
    dialect: &Dialect,
    atom: &mut dyn FnMut(&str, usize) -> Result<A, BooleanError>,
) -> Result<Formula<A>, BooleanError> {
    let tokens = tokenize(input, dialect)?;
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
        end: input.chars().count() + 1,
        depth: 0,
        dialect,
        atom,
    };
    let formula = parser.or()?;
    match parser.tokens.get(parser.pos) {
        None => Ok(formula),
        Some((t, column)) => Err(BooleanError {
            column: *column,
            expected: "'&&', '||' or the end of the expression".into(),
            found: t.describe(),
        }),
    }
}

fn tokenize(input: &str, dialect: &Dialect) -> Result<Vec<(Tok, usize)>, BooleanError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' => {
                out.push((if c == '(' { Tok::Open } else { Tok::Close }, column));
                i += 1;
            }
            '!' if dialect.not => {
                out.push((Tok::Not, column));
                i += 1;
            }
            '&' | '|' => {
                if chars.get(i + 1) != Some(&c) {
                    return Err(BooleanError {
                        column,
                        expected: format!("'{c}{c}'"),
                        found: format!("'{c}'"),
                    });
                }
                out.push((if c == '&' { Tok::And } else { Tok::Or }, column));
                i += 2;
            }
            c if (dialect.name_char)(c) => {
                let start = i;
                while i < chars.len() && (dialect.name_char)(chars[i]) {
                    i += 1;
                }
                out.push((Tok::Name(chars[start..i].iter().collect()), column));
            }
            other => {
                let not = if dialect.not { ", '!'" } else { "" };
                return Err(BooleanError {
                    column,
                    expected: format!("{}, '&&', '||'{not}, '(' or ')'", dialect.name),
                    found: format!("'{other}'"),
                });
            }
        }
    }
    Ok(out)
}

struct Parser<'a, A> {
    tokens: &'a [(Tok, usize)],
    pos: usize,
    /// The column just past the input.
    end: usize,
    depth: usize,
    dialect: &'a Dialect,
    atom: &'a mut dyn FnMut(&str, usize) -> Result<A, BooleanError>,
}

impl<A> Parser<'_, A> {
    fn eat(&mut self, tok: &Tok) -> bool {
        if self.tokens.get(self.pos).is_some_and(|(t, _)| t == tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Formula<A>, BooleanError> {
        let mut operands = vec![self.and()?];
        while self.eat(&Tok::Or) {
            operands.push(self.and()?);
        }
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Formula::Any(operands)
        })
    }

    fn and(&mut self) -> Result<Formula<A>, BooleanError> {
        let mut operands = vec![self.unary()?];
        while self.eat(&Tok::And) {
            operands.push(self.unary()?);
        }
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Formula::All(operands)
        })
    }

    fn unary(&mut self) -> Result<Formula<A>, BooleanError> {
        let expected = if self.dialect.not {
            format!("{}, '!' or '('", self.dialect.name)
        } else {
            format!("{} or '('", self.dialect.name)
        };
        let Some((tok, column)) = self.tokens.get(self.pos).cloned() else {
            return Err(BooleanError {
                column: self.end,
                expected,
                found: END.into(),
            });
        };
        self.pos += 1;
        match tok {
            Tok::Name(name) => Ok(Formula::Atom((self.atom)(&name, column)?)),
            Tok::Not | Tok::Open => {
                if self.depth >= MAX_DEPTH {
                    return Err(BooleanError {
                        column,
                        expected: format!("at most {MAX_DEPTH} nested '(' and '!'"),
                        found: "more".into(),
                    });
                }
                self.depth += 1;
                let out = if tok == Tok::Not {
                    self.unary().map(|f| Formula::Not(Box::new(f)))
                } else {
                    self.or().and_then(|inner| {
                        if self.eat(&Tok::Close) {
                            return Ok(inner);
                        }
                        let (at, found) = match self.tokens.get(self.pos) {
                            Some((t, c)) => (*c, t.describe()),
                            None => (self.end, END.to_string()),
                        };
                        Err(BooleanError {
                            column: at,
                            expected: "')'".into(),
                            found: format!("{found} (the '(' at column {column} is not closed)"),
                        })
                    })
                };
                self.depth -= 1;
                out
            }
            other => Err(BooleanError {
                column,
                expected,
                found: other.describe(),
            }),
        }
    }
}

impl<A> Formula<A> {
    /// Evaluates the formula; `holds` answers for each atom.
    pub fn eval(&self, holds: &dyn Fn(&A) -> bool) -> bool {
        match self {
            Formula::Atom(a) => holds(a),
            Formula::Not(f) => !f.eval(holds),
            Formula::All(fs) => fs.iter().all(|f| f.eval(holds)),
            Formula::Any(fs) => fs.iter().any(|f| f.eval(holds)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: Dialect = Dialect {
        not: true,
        name_char: |c| c.is_alphanumeric(),
        name: "a name",
    };

    fn names(input: &str) -> Result<Formula<String>, BooleanError> {
        parse(input, &NAMES, &mut |n, _| Ok(n.to_string()))
    }

    #[test]
    fn precedence_and_evaluation() {
        let f = names("a || b && !c").unwrap();
        assert!(matches!(&f, Formula::Any(ops) if ops.len() == 2));
        assert!(f.eval(&|n| n == "a"));
        assert!(f.eval(&|n| n == "b"));
        assert!(!f.eval(&|n| n == "b" || n == "c"));
        assert_eq!(names("((a))").unwrap(), Formula::Atom("a".into()));
    }

    #[test]
    fn errors_say_where_and_what() {
        assert_eq!(
            names("a &&").unwrap_err().to_string(),
            "at column 5: expected a name, '!' or '(', found the end of the expression"
        );
        assert_eq!(
            names("a & b").unwrap_err().to_string(),
            "at column 3: expected '&&', found '&'"
        );
        assert_eq!(
            names("(a").unwrap_err().to_string(),
            "at column 3: expected ')', found the end of the expression (the '(' at column 1 is not closed)"
        );
        assert_eq!(
            names("a b").unwrap_err().to_string(),
            "at column 3: expected '&&', '||' or the end of the expression, found 'b'"
        );
        let refused = parse(" x", &NAMES, &mut |n, column| -> Result<(), BooleanError> {
            Err(BooleanError {
                column,
                expected: "y".into(),
                found: format!("'{n}'"),
            })
        });
        assert_eq!(refused.unwrap_err().to_string(), "at column 2: expected y, found 'x'");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for open in ["(", "!"] {
            let e = names(&format!("{}a", open.repeat(100_000))).unwrap_err();
            assert!(e.expected.contains("at most 64"), "{e}");
        }
        assert!(names(&format!("{}a{}", "(".repeat(64), ")".repeat(64))).is_ok());
    }
}
