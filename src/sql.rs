//! Making an analyst's SQL file the single line AMC takes in `workflow.sqlQuery`, without changing
//! the query: a small lexer that knows string literals, quoted identifiers and comments.
//!
//! AMC wants the query on one line, without tabs and without a trailing semicolon (AMC's
//! documentation of `sqlQuery`, and observed replies). Joining lines naively would let a `--` comment swallow the rest of the
//! query and would change whitespace inside literals, so the text is lexed:
//!
//! - `'...'` string literals (a quote inside is written `''`) and `"..."` quoted identifiers (`""`)
//!   are copied byte for byte. A line break or tab inside one cannot be put on one line without
//!   changing the value, so such SQL is refused, naming where the literal starts.
//! - `-- ...` comments run to the end of their line; `/* ... */` comments end at the first `*/`
//!   (they do not nest, as in Trino, Spark and most engines). Both are removed; a comment
//!   separates tokens like whitespace does (`a/*x*/b` becomes `a b`).
//! - Outside literals, every run of whitespace (any Unicode white space, line breaks included)
//!   and comments becomes one space; leading and trailing space and trailing `;` are removed.
//!
//! Backslash escapes and backtick identifiers are not special: AMC's documented SQL uses neither.
//! Positions in errors are 1-based lines and columns counted in characters.

use std::fmt;
use std::iter::Peekable;
use std::str::Chars;

/// A place in the SQL text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// The constructs an error can be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Construct {
    StringLiteral,
    QuotedIdentifier,
    BlockComment,
}

impl fmt::Display for Construct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Construct::StringLiteral => "string literal",
            Construct::QuotedIdentifier => "quoted identifier",
            Construct::BlockComment => "/* comment",
        })
    }
}

/// Why SQL cannot be sent to AMC as one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("unterminated {construct} starting at {start}")]
    Unterminated {
        construct: Construct,
        start: Position,
    },
    #[error(
        "the {construct} starting at {start} holds a line break or tab (at {found}), \
         which AMC's single-line query cannot carry"
    )]
    LineBreakInQuotes {
        construct: Construct,
        start: Position,
        found: Position,
    },
    #[error("no SQL left once comments are removed")]
    Empty,
}

/// What a scan found: the single-line text, and where the first `--` comment started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    pub text: String,
    /// A `--` comment on text that is already one line hides everything after it, so a server
    /// that receives one (the simulator, as AMC would) knows the query it runs is cut short.
    pub first_line_comment: Option<Position>,
}

/// The SQL as the single line AMC receives: comments removed, whitespace collapsed outside
/// literals and quoted identifiers, no trailing semicolon. Idempotent.
pub fn single_line(sql: &str) -> Result<String, SqlError> {
    let scanned = scan(sql)?;
    if scanned.text.is_empty() {
        return Err(SqlError::Empty);
    }
    Ok(scanned.text)
}

/// Lexes `sql` once; `text` may be empty (the SQL was only comments and whitespace).
pub fn scan(sql: &str) -> Result<Scanned, SqlError> {
    let mut cursor = Cursor::new(sql);
    let mut out = Output::with_capacity(sql.len());
    let mut first_line_comment = None;
    loop {
        let start = cursor.position();
        let Some(c) = cursor.next() else { break };
        match c {
            '\'' | '"' => {
                out.push(c);
                copy_quoted(&mut cursor, c, start, &mut out)?;
            }
            '-' if cursor.peek() == Some('-') => {
                first_line_comment.get_or_insert(start);
                while cursor.peek().is_some_and(|next| !is_line_end(next)) {
                    cursor.next();
                }
                out.separate();
            }
            '/' if cursor.peek() == Some('*') => {
                cursor.next();
                skip_block_comment(&mut cursor, start)?;
                out.separate();
            }
            c if c.is_whitespace() => out.separate(),
            c => out.push(c),
        }
    }
    let text = out.text.trim_end_matches([';', ' ']).to_owned();
    Ok(Scanned {
        text,
        first_line_comment,
    })
}

/// Copies a literal or quoted identifier whose opening `quote` was just read, up to and
/// including its closing quote. A line break inside is reported only if the literal ends: an
/// unterminated one is the more useful message.
fn copy_quoted(
    cursor: &mut Cursor<'_>,
    quote: char,
    start: Position,
    out: &mut Output,
) -> Result<(), SqlError> {
    let construct = if quote == '\'' {
        Construct::StringLiteral
    } else {
        Construct::QuotedIdentifier
    };
    let mut first_break = None;
    loop {
        let here = cursor.position();
        match cursor.next() {
            None => return Err(SqlError::Unterminated { construct, start }),
            Some(c) if c == quote => {
                out.push(c);
                if cursor.peek() == Some(quote) {
                    cursor.next();
                    out.push(quote);
                    continue;
                }
                return match first_break {
                    None => Ok(()),
                    Some(found) => Err(SqlError::LineBreakInQuotes {
                        construct,
                        start,
                        found,
                    }),
                };
            }
            Some(c) => {
                if breaks_single_line(c) {
                    first_break.get_or_insert(here);
                }
                out.push(c);
            }
        }
    }
}

/// Skips a block comment whose `/*` was just read, through the first `*/`.
fn skip_block_comment(cursor: &mut Cursor<'_>, start: Position) -> Result<(), SqlError> {
    loop {
        match cursor.next() {
            None => {
                return Err(SqlError::Unterminated {
                    construct: Construct::BlockComment,
                    start,
                })
            }
            Some('*') if cursor.peek() == Some('/') => {
                cursor.next();
                return Ok(());
            }
            Some(_) => {}
        }
    }
}

/// What ends a `--` comment and counts as a new line in positions (as in ANTLR-based SQL
/// grammars: CR, LF or CRLF).
fn is_line_end(c: char) -> bool {
    c == '\n' || c == '\r'
}

/// Characters a single-line query cannot carry inside quotes: line ends, tabs and the other
/// vertical or line-separating white space.
fn breaks_single_line(c: char) -> bool {
    is_line_end(c)
        || matches!(
            c,
            '\t' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
}

/// The single line being built; separators are emitted lazily so that runs of whitespace and
/// comments become one space, and none leads or trails.
struct Output {
    text: String,
    separated: bool,
}

impl Output {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            text: String::with_capacity(capacity),
            separated: false,
        }
    }

    fn separate(&mut self) {
        self.separated = true;
    }

    fn push(&mut self, c: char) {
        if self.separated && !self.text.is_empty() {
            self.text.push(' ');
        }
        self.separated = false;
        self.text.push(c);
    }
}

/// Characters with the position of the next one. `\r\n` is one line break.
struct Cursor<'a> {
    chars: Peekable<Chars<'a>>,
    line: usize,
    column: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            chars: text.chars().peekable(),
            line: 1,
            column: 1,
        }
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        let crlf = c == '\r' && self.peek() == Some('\n');
        if is_line_end(c) && !crlf {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod tests;
