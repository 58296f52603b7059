//! Bounds on an expression before expr-lang reads it. expr-lang parses
//! (pest) and evaluates recursively, so the shape of an expression decides
//! how much stack it takes: in a debug build a chain of 200 `+` already
//! overflows a 2 MiB thread stack (tokio's default), and 100,000 of them
//! overflow it while parsing. Expressions come from manifests and events that
//! anyone with a token may send, so each is measured first, refused past
//! MAX_TOKENS tokens or MAX_DEPTH nested brackets, and the parse and the
//! evaluation run on a stack grown to fit what is left (`stacker`, the crate
//! rustc uses for the same problem).

use crate::error::{Error, Result};

/// Tokens in one expression: far above any expression seen in a manifest.
pub(crate) const MAX_TOKENS: usize = 1000;
/// Nesting of `(`, `[` and `{`.
pub(crate) const MAX_DEPTH: usize = 64;
/// Stack for each token, with room to spare: measured in a debug build at
/// about 10 KiB per level of a chain of binary operators.
const STACK_PER_TOKEN: usize = 32 * 1024;
const STACK_BASE: usize = 256 * 1024;

/// How big an expression is, once it is known to be within bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Size {
    tokens: usize,
}

impl Size {
    /// Counts the tokens and the nesting of the expr-lang `source` written
    /// for `expression` (the text errors name). Words, numbers and quoted
    /// strings count as one token, any other character as one.
    pub(crate) fn measure(expression: &str, source: &str) -> Result<Size> {
        let mut tokens = 0usize;
        let mut depth = 0usize;
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_whitespace() {
                continue;
            }
            tokens += 1;
            if tokens > MAX_TOKENS {
                return Err(Error::new(
                    expression,
                    format!("the expression has more than {MAX_TOKENS} tokens"),
                ));
            }
            match c {
                '\'' | '"' | '`' => {
                    while let Some(d) = chars.next() {
                        if d == '\\' && c != '`' {
                            chars.next();
                        } else if d == c {
                            break;
                        }
                    }
                }
                '(' | '[' | '{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Error::new(
                            expression,
                            format!("the expression nests deeper than {MAX_DEPTH} brackets"),
                        ));
                    }
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                c if c.is_alphanumeric() || c == '_' => {
                    while chars
                        .peek()
                        .is_some_and(|d| d.is_alphanumeric() || *d == '_' || *d == '.')
                    {
                        chars.next();
                    }
                }
                _ => {}
            }
        }
        Ok(Size { tokens })
    }

    /// Runs `f` (a parse or an evaluation of this expression) with at least
    /// the stack it may need, on a new stack segment when the current one has
    /// less left.
    pub(crate) fn with_stack<T>(self, f: impl FnOnce() -> T) -> T {
        let need = STACK_BASE + self.tokens * STACK_PER_TOKEN;
        stacker::maybe_grow(need, need * 2, f)
    }
}
