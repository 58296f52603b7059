//! The `depends` expressions of DAG tasks: task names, optionally with a
//! result (`A.Succeeded`, `B.Failed`), combined with `&&`, `||`, `!` and
//! parentheses. A bare `A` means `(A.Succeeded || A.Skipped || A.Daemoned)`.

use std::collections::BTreeSet;
use std::fmt;

/// A result a `depends` expression can ask about a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskResult {
    /// The task succeeded.
    Succeeded,
    /// The task failed (non-zero exit).
    Failed,
    /// The task errored.
    Errored,
    /// The task was skipped (its `when` was false).
    Skipped,
    /// The task was omitted (its `depends` was false).
    Omitted,
    /// The task is running as a daemon.
    Daemoned,
    /// For an expanded task (withItems ...): at least one instance succeeded.
    AnySucceeded,
    /// For an expanded task: every instance failed.
    AllFailed,
}

impl TaskResult {
    /// Every result, in the order the syntax lists them.
    pub const ALL: [TaskResult; 8] = [
        Self::Succeeded,
        Self::Failed,
        Self::Errored,
        Self::Skipped,
        Self::Omitted,
        Self::Daemoned,
        Self::AnySucceeded,
        Self::AllFailed,
    ];

    /// The name written after the dot.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Errored => "Errored",
            Self::Skipped => "Skipped",
            Self::Omitted => "Omitted",
            Self::Daemoned => "Daemoned",
            Self::AnySucceeded => "AnySucceeded",
            Self::AllFailed => "AllFailed",
        }
    }

    fn parse(s: &str) -> Option<TaskResult> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for TaskResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `depends` expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Depends {
    /// A task, with the result asked about (`None` for a bare name).
    Task { name: String, result: Option<TaskResult> },
    /// `!x`
    Not(Box<Depends>),
    /// `x && y`
    And(Box<Depends>, Box<Depends>),
    /// `x || y`
    Or(Box<Depends>, Box<Depends>),
}

/// Why a `depends` expression does not parse; `column` counts characters from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct DependsError {
    pub column: usize,
    pub message: String,
}

impl Depends {
    /// Parses a `depends` expression.
    pub fn parse(input: &str) -> Result<Depends, DependsError> {
        let tokens = tokenize(input)?;
        let mut parser = Parser {
            tokens: &tokens,
            pos: 0,
            end: input.chars().count() + 1,
        };
        if tokens.is_empty() {
            return Err(DependsError {
                column: 1,
                message: "empty depends expression".into(),
            });
        }
        let expr = parser.or()?;
        if let Some((tok, column)) = parser.peek() {
            return Err(DependsError {
                column,
                message: format!("unexpected {}", tok.describe()),
            });
        }
        Ok(expr)
    }

    /// The equivalent of a `dependencies` list: every task must be fulfilled
    /// as a bare name is (`A && B`). `None` for an empty list.
    pub fn from_dependencies<S: AsRef<str>>(deps: &[S]) -> Option<Depends> {
        deps.iter()
            .map(|d| Depends::Task {
                name: d.as_ref().to_string(),
                result: None,
            })
            .reduce(|a, b| Depends::And(Box::new(a), Box::new(b)))
    }

    /// The task names the expression mentions, each once, sorted.
    pub fn names(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Depends::Task { name, .. } => {
                out.insert(name);
            }
            Depends::Not(x) => x.collect_names(out),
            Depends::And(a, b) | Depends::Or(a, b) => {
                a.collect_names(out);
                b.collect_names(out);
            }
        }
    }

    /// Evaluates the expression; `has(task, result)` answers whether `task`
    /// ended with `result`. A bare name is true when the task succeeded, was
    /// skipped or is daemoned.
    pub fn eval(&self, has: &dyn Fn(&str, TaskResult) -> bool) -> bool {
        match self {
            Depends::Task { name, result: Some(r) } => has(name, *r),
            Depends::Task { name, result: None } => {
                has(name, TaskResult::Succeeded) || has(name, TaskResult::Skipped) || has(name, TaskResult::Daemoned)
            }
            Depends::Not(x) => !x.eval(has),
            Depends::And(a, b) => a.eval(has) && b.eval(has),
            Depends::Or(a, b) => a.eval(has) || b.eval(has),
        }
    }
}

impl fmt::Display for Depends {
    /// Prints the expression back, parenthesizing every binary operation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Depends::Task { name, result: None } => f.write_str(name),
            Depends::Task { name, result: Some(r) } => write!(f, "{name}.{r}"),
            Depends::Not(x) => write!(f, "!{x}"),
            Depends::And(a, b) => write!(f, "({a} && {b})"),
            Depends::Or(a, b) => write!(f, "({a} || {b})"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Task(String, Option<TaskResult>),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Task(name, _) => format!("task name '{name}'"),
            Token::And => "'&&'".into(),
            Token::Or => "'||'".into(),
            Token::Not => "'!'".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
        }
    }
}

fn is_name_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '&' | '|' | '!' | '(' | ')' | '.')
}

fn tokenize(input: &str) -> Result<Vec<(Token, usize)>, DependsError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let err = |message: String| DependsError { column, message };
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Token::Open, column));
                i += 1;
            }
            ')' => {
                out.push((Token::Close, column));
                i += 1;
            }
            '!' => {
                out.push((Token::Not, column));
                i += 1;
            }
            '&' | '|' => {
                if chars.get(i + 1) != Some(&c) {
                    return Err(err(format!("'{c}' must be doubled: '{c}{c}'")));
                }
                out.push((if c == '&' { Token::And } else { Token::Or }, column));
                i += 2;
            }
            '.' => return Err(err("'.' must follow a task name".into())),
            _ => {
                let start = i;
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                let mut result = None;
                if chars.get(i) == Some(&'.') {
                    let rstart = i + 1;
                    i += 1;
                    while i < chars.len() && is_name_char(chars[i]) {
                        i += 1;
                    }
                    let word: String = chars[rstart..i].iter().collect();
                    match TaskResult::parse(&word) {
                        Some(r) => result = Some(r),
                        None => {
                            let known = TaskResult::ALL.map(TaskResult::as_str);
                            let hint = crate::diag::suggest(&word, known)
                                .map(|s| format!(" (did you mean '{s}'?)"))
                                .unwrap_or_default();
                            return Err(DependsError {
                                column: rstart + 1,
                                message: format!(
                                    "unknown task result '{word}' after '{name}.'{hint}; expected one of {}",
                                    known.join(", ")
                                ),
                            });
                        }
                    }
                }
                out.push((Token::Task(name, result), column));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [(Token, usize)],
    pos: usize,
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<(&Token, usize)> {
        self.tokens.get(self.pos).map(|(t, c)| (t, *c))
    }

    fn or(&mut self) -> Result<Depends, DependsError> {
        let mut left = self.and()?;
        while let Some((Token::Or, _)) = self.peek() {
            self.pos += 1;
            let right = self.and()?;
            left = Depends::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Depends, DependsError> {
        let mut left = self.unary()?;
        while let Some((Token::And, _)) = self.peek() {
            self.pos += 1;
            let right = self.unary()?;
            left = Depends::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Depends, DependsError> {
        let Some((tok, column)) = self.peek() else {
            return Err(DependsError {
                column: self.end,
                message: "expression ends too early".into(),
            });
        };
        match tok {
            Token::Not => {
                self.pos += 1;
                Ok(Depends::Not(Box::new(self.unary()?)))
            }
            Token::Open => {
                self.pos += 1;
                let inner = self.or()?;
                match self.peek() {
                    Some((Token::Close, _)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    Some((t, c)) => Err(DependsError {
                        column: c,
                        message: format!(
                            "expected ')' to close the '(' at column {column}, found {}",
                            t.describe()
                        ),
                    }),
                    None => Err(DependsError {
                        column: self.end,
                        message: format!("missing ')' to close the '(' at column {column}"),
                    }),
                }
            }
            Token::Task(name, result) => {
                let node = Depends::Task {
                    name: name.clone(),
                    result: *result,
                };
                self.pos += 1;
                Ok(node)
            }
            other => Err(DependsError {
                column,
                message: format!("expected a task name, '!' or '(', found {}", other.describe()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, result: Option<TaskResult>) -> Depends {
        Depends::Task {
            name: name.into(),
            result,
        }
    }

    #[test]
    fn parses_names_results_and_precedence() {
        let d = Depends::parse("A && (B.Failed || !C.Errored) || D-1.AnySucceeded").unwrap();
        assert_eq!(d.to_string(), "((A && (B.Failed || !C.Errored)) || D-1.AnySucceeded)");
        assert_eq!(d.names().into_iter().collect::<Vec<_>>(), vec!["A", "B", "C", "D-1"]);
        assert_eq!(Depends::parse("a").unwrap(), task("a", None));
        assert_eq!(
            Depends::parse("!a.Skipped").unwrap(),
            Depends::Not(Box::new(task("a", Some(TaskResult::Skipped))))
        );
    }

    #[test]
    fn bare_name_means_succeeded_skipped_or_daemoned() {
        let d = Depends::parse("A").unwrap();
        for (r, want) in [
            (TaskResult::Succeeded, true),
            (TaskResult::Skipped, true),
            (TaskResult::Daemoned, true),
            (TaskResult::Failed, false),
            (TaskResult::Omitted, false),
        ] {
            assert_eq!(d.eval(&|_, asked| asked == r), want, "{r}");
        }
    }

    #[test]
    fn eval_combines() {
        let d = Depends::parse("A.Succeeded && (B.Failed || !C)").unwrap();
        let state =
            |name: &str, r: TaskResult| matches!((name, r), ("A", TaskResult::Succeeded) | ("C", TaskResult::Failed));
        assert!(d.eval(&state));
        let state2 = |name: &str, r: TaskResult| {
            matches!((name, r), ("A", TaskResult::Succeeded) | ("C", TaskResult::Succeeded))
        };
        assert!(!d.eval(&state2));
    }

    #[test]
    fn from_dependencies_is_a_conjunction() {
        let d = Depends::from_dependencies(&["a", "b", "c"]).unwrap();
        assert_eq!(d.to_string(), "((a && b) && c)");
        assert!(Depends::from_dependencies::<&str>(&[]).is_none());
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = Depends::parse("A.Succeded").unwrap_err();
        assert_eq!(e.column, 3);
        assert_eq!(
            e.message,
            "unknown task result 'Succeded' after 'A.' (did you mean 'Succeeded'?); expected one of \
             Succeeded, Failed, Errored, Skipped, Omitted, Daemoned, AnySucceeded, AllFailed"
        );
        assert_eq!(
            Depends::parse("A & B").unwrap_err().to_string(),
            "'&' must be doubled: '&&' at column 3"
        );
        assert_eq!(
            Depends::parse("(A || B").unwrap_err().to_string(),
            "missing ')' to close the '(' at column 1 at column 8"
        );
        assert_eq!(
            Depends::parse("A &&").unwrap_err().to_string(),
            "expression ends too early at column 5"
        );
        assert_eq!(
            Depends::parse("A B").unwrap_err().to_string(),
            "unexpected task name 'B' at column 3"
        );
        assert_eq!(
            Depends::parse("  ").unwrap_err().to_string(),
            "empty depends expression at column 1"
        );
        assert_eq!(
            Depends::parse("A && || B").unwrap_err().to_string(),
            "expected a task name, '!' or '(', found '||' at column 6"
        );
    }
}
