//! The `depends` expressions of DAG tasks: task names, optionally with a
//! result (`A.Succeeded`, `B.Failed`), combined with `&&`, `||`, `!` and
//! parentheses. A bare `A` means `(A.Succeeded || A.Skipped || A.Daemoned)`.
//! Parsed by argon-expr's boolean form, which sensor conditions share.

use std::collections::BTreeSet;
use std::fmt;

use argon_expr::boolean::{self, BooleanError, Dialect, Formula};

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

impl From<BooleanError> for DependsError {
    fn from(e: BooleanError) -> Self {
        DependsError {
            column: e.column,
            message: format!("expected {}, found {}", e.expected, e.found),
        }
    }
}

/// `depends` in Argon's one boolean form (argon-expr): names hold anything
/// but spaces and the operators, and may end with `.RESULT`.
const DIALECT: Dialect = Dialect {
    not: true,
    name_char: |c| !c.is_whitespace() && !matches!(c, '&' | '|' | '!' | '(' | ')'),
    name: "a task name",
};

/// A name of the expression: the task, and the result after its dot.
fn task(text: &str, column: usize) -> Result<(String, Option<TaskResult>), BooleanError> {
    let Some((name, word)) = text.split_once('.') else {
        return Ok((text.to_string(), None));
    };
    if name.is_empty() {
        return Err(BooleanError {
            column,
            expected: DIALECT.name.into(),
            found: format!("'{text}' ('.' must follow a task name)"),
        });
    }
    match TaskResult::parse(word) {
        Some(r) => Ok((name.to_string(), Some(r))),
        None => {
            let known = TaskResult::ALL.map(TaskResult::as_str);
            let hint = crate::diag::suggest(word, known)
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            Err(BooleanError {
                column: column + name.chars().count() + 1,
                expected: format!("a task result after '{name}.': one of {}", known.join(", ")),
                found: format!("'{word}'{hint}"),
            })
        }
    }
}

fn from_formula(f: Formula<(String, Option<TaskResult>)>) -> Depends {
    let join = |fs: Vec<Formula<_>>, op: fn(Box<Depends>, Box<Depends>) -> Depends| {
        fs.into_iter()
            .map(from_formula)
            .reduce(|a, b| op(Box::new(a), Box::new(b)))
            .expect("two or more operands")
    };
    match f {
        Formula::Atom((name, result)) => Depends::Task { name, result },
        Formula::Not(x) => Depends::Not(Box::new(from_formula(*x))),
        Formula::All(fs) => join(fs, Depends::And),
        Formula::Any(fs) => join(fs, Depends::Or),
    }
}

impl Depends {
    /// Parses a `depends` expression.
    pub fn parse(input: &str) -> Result<Depends, DependsError> {
        Ok(from_formula(boolean::parse(input, &DIALECT, &mut task)?))
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
            "expected a task result after 'A.': one of Succeeded, Failed, Errored, Skipped, Omitted, \
             Daemoned, AnySucceeded, AllFailed, found 'Succeded' (did you mean 'Succeeded'?)"
        );
        assert_eq!(
            Depends::parse("A & B").unwrap_err().to_string(),
            "expected '&&', found '&' at column 3"
        );
        assert_eq!(
            Depends::parse("(A || B").unwrap_err().to_string(),
            "expected ')', found the end of the expression (the '(' at column 1 is not closed) at column 8"
        );
        assert_eq!(
            Depends::parse("A &&").unwrap_err().to_string(),
            "expected a task name, '!' or '(', found the end of the expression at column 5"
        );
        assert_eq!(
            Depends::parse("A B").unwrap_err().to_string(),
            "expected '&&', '||' or the end of the expression, found 'B' at column 3"
        );
        assert_eq!(
            Depends::parse("  ").unwrap_err().to_string(),
            "expected a task name, '!' or '(', found the end of the expression at column 3"
        );
        assert_eq!(
            Depends::parse("A && || B").unwrap_err().to_string(),
            "expected a task name, '!' or '(', found '||' at column 6"
        );
        assert_eq!(Depends::parse(".Failed").unwrap_err().column, 1);
    }
}
