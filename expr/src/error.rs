//! The one error type of every dialect: the expression, where in it, what.

/// Why an expression could not be parsed or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expression '{expression}'{}: {message}", at(.position))]
pub struct Error {
    /// The expression as written (trimmed).
    pub expression: String,
    /// Where in the expression, when the parser knows: 1-based line and column.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn at(position: &Option<(usize, usize)>) -> String {
    match position {
        Some((1, col)) => format!(" at column {col}"),
        Some((line, col)) => format!(" at line {line} column {col}"),
        None => String::new(),
    }
}

impl Error {
    pub fn new(expression: &str, message: impl Into<String>) -> Self {
        Error {
            expression: expression.trim().to_string(),
            position: None,
            message: message.into(),
        }
    }

    /// An error of the expr-lang crate. Its parse errors are pest's
    /// multi-line reports (` --> L:C`, the line, `= expected ...`): the
    /// position and the last line are kept.
    pub(crate) fn from_expr(expression: &str, e: expr::Error) -> Self {
        let text = e.to_string();
        if let expr::Error::PestError(_) = e {
            let position = text.lines().find_map(|l| {
                let (line, col) = l.trim().strip_prefix("-->")?.trim().split_once(':')?;
                Some((line.parse().ok()?, col.parse().ok()?))
            });
            let message = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("= "))
                .map(|m| format!("syntax error: {m}"))
                .unwrap_or_else(|| "syntax error".to_string());
            return Error {
                position: position.map(|(l, c)| shift(expression, l, c)),
                ..Error::new(expression, message)
            };
        }
        Error::new(expression, text)
    }
}

/// Positions are reported against the trimmed expression: drop the lines
/// and columns that trimming removed.
fn shift(expression: &str, line: usize, col: usize) -> (usize, usize) {
    let lead = &expression[..expression.len() - expression.trim_start().len()];
    let lead_lines = lead.matches('\n').count();
    let line = line.saturating_sub(lead_lines).max(1);
    if line == 1 {
        let lead_cols = lead.rsplit('\n').next().map_or(0, |l| l.chars().count());
        (1, col.saturating_sub(lead_cols).max(1))
    } else {
        (line, col)
    }
}
