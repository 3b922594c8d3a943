//! Query parameters of a collection (`collection create --param name=value`, `--param
//! name=@file`): their names and values, the canonical JSON stored on the collection
//! (`report_data_collections.parameters`), the `parameterValues` a saved AMC workflow is sent,
//! and the `{{name}}` placeholders of inline SQL, filled with escaped SQL string literals.
//!
//! The rules (README, "Query parameters"):
//! - A name is `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters; `start_date` and `end_date` are
//!   each week's own and cannot be given.
//! - A value is text without control characters (NUL included), line or paragraph separators,
//!   bidi controls or backslashes: none of them can travel on AMC's single-line query unchanged,
//!   they could make the query read otherwise than it runs, and a backslash is an escape in
//!   engines that read them (`sql.rs` treats it as text, so it must never be able to end a
//!   literal early). A list is one or more such values.
//! - In inline SQL a placeholder `{{name}}` (spaces inside the braces allowed) outside quotes
//!   becomes a string literal with its single quotes doubled, `'O''Brien'`, and a list becomes
//!   literals separated by `, ` (for `IN ({{asins}})`). The collector writes the quotes itself, so
//!   a parameter's placeholder inside a quoted literal or identifier is refused (the dates may
//!   stand anywhere, as before). Placeholders in comments go with the comments.
//! - The stored form is canonical: compact JSON with keys sorted, a value a string and a list an
//!   array of strings in the order given, so equal parameters are equal text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The week's first day: filled from each week, never from `--param`.
pub const START_DATE: &str = "start_date";
/// The week's last day.
pub const END_DATE: &str = "end_date";
/// Longest parameter name.
const MAX_NAME_CHARS: usize = 64;

/// One parameter's value: a text, or a list of texts (from a file, one per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    One(String),
    List(Vec<String>),
}

/// A collection's parameters by name (sorted, so their JSON is canonical).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct QueryParams(BTreeMap<String, ParamValue>);

/// Why parameters, or SQL with placeholders, are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error(
        "parameter name `{0}` is not a name: letters, digits and `_`, not starting with a digit, \
         at most 64 characters"
    )]
    BadName(String),
    #[error("`{0}` is filled from each week's dates and cannot be given as a parameter")]
    Reserved(String),
    #[error("parameter `{0}` is given twice")]
    Duplicate(String),
    #[error("the value of parameter `{name}` holds {what}, which a query parameter may not hold")]
    BadValue { name: String, what: &'static str },
    #[error("parameter `{0}` has no values (a list needs at least one)")]
    EmptyList(String),
    #[error("placeholder {{{{{0}}}}} has no value: give --param {0}=VALUE")]
    Missing(String),
    #[error(
        "placeholder {{{{{0}}}}} stands inside quotes: write it without them, the collector \
         quotes and escapes its value itself"
    )]
    Quoted(String),
    #[error("--param {0} is used by no placeholder of the workflow's SQL")]
    Unused(String),
    #[error("stored query parameters cannot be read: {0}")]
    Stored(String),
    #[error(transparent)]
    Sql(#[from] crate::sql::SqlError),
    /// Cannot happen with values that passed `insert`; checked so that it never goes unseen.
    #[error("the query with its parameters filled in does not read back as the same query")]
    Escaped,
}

impl QueryParams {
    /// Adds one parameter after checking its name and value(s).
    pub fn insert(&mut self, name: &str, value: ParamValue) -> Result<(), ParamError> {
        check_name(name)?;
        match &value {
            ParamValue::One(text) => check_value(name, text)?,
            ParamValue::List(items) if items.is_empty() => {
                return Err(ParamError::EmptyList(name.to_string()))
            }
            ParamValue::List(items) => {
                for item in items {
                    check_value(name, item)?;
                }
            }
        }
        if self.0.contains_key(name) {
            return Err(ParamError::Duplicate(name.to_string()));
        }
        self.0.insert(name.to_string(), value);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The canonical JSON text stored in `report_data_collections.parameters` (`{}` when none).
    pub fn to_canonical_json(&self) -> String {
        self.to_json().to_string()
    }

    /// The parameters as a JSON object (keys sorted: serde_json's map is ordered by key).
    pub fn to_json(&self) -> Value {
        Value::Object(self.to_map())
    }

    /// `parameterValues` of a create request: `None` when there are none, so a request without
    /// parameters is the same request as before parameters existed.
    pub fn parameter_values(&self) -> Option<Map<String, Value>> {
        (!self.is_empty()).then(|| self.to_map())
    }

    fn to_map(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    ParamValue::One(text) => Value::String(text.clone()),
                    ParamValue::List(items) => {
                        Value::Array(items.iter().cloned().map(Value::String).collect())
                    }
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// Reads stored parameters back, checking them as `insert` does.
    pub fn from_json(text: &str) -> Result<Self, ParamError> {
        let raw: BTreeMap<String, ParamValue> =
            serde_json::from_str(text).map_err(|error| ParamError::Stored(error.to_string()))?;
        let mut params = QueryParams::default();
        for (name, value) in raw {
            params.insert(&name, value)?;
        }
        Ok(params)
    }
}

/// Read from the database column (`#[sqlx(try_from = "String")]`).
impl TryFrom<String> for QueryParams {
    type Error = ParamError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        QueryParams::from_json(&text)
    }
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= MAX_NAME_CHARS
}

fn check_name(name: &str) -> Result<(), ParamError> {
    if !is_name(name) {
        return Err(ParamError::BadName(name.to_string()));
    }
    if name == START_DATE || name == END_DATE {
        return Err(ParamError::Reserved(name.to_string()));
    }
    Ok(())
}

fn check_value(name: &str, value: &str) -> Result<(), ParamError> {
    let what = if value.contains('\0') {
        "a NUL character"
    } else if value.contains('\\') {
        "a backslash"
    } else if matches!(
        crate::escape::escape_controls(value),
        std::borrow::Cow::Owned(_)
    ) {
        // Exactly what the CLI would have to escape to print: control characters, line and
        // paragraph separators, bidi controls.
        "a control character"
    } else {
        return Ok(());
    };
    Err(ParamError::BadValue {
        name: name.to_string(),
        what,
    })
}

/// `value` as an SQL string literal: in single quotes, a quote inside doubled.
pub fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// What a parameter's placeholder becomes in inline SQL.
fn rendered(value: &ParamValue) -> String {
    match value {
        ParamValue::One(text) => sql_literal(text),
        ParamValue::List(items) => items
            .iter()
            .map(|item| sql_literal(item))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// One `{{name}}` found in single-line SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder<'a> {
    pub name: &'a str,
    /// Inside a `'...'` literal or a `"..."` quoted identifier.
    pub quoted: bool,
    /// Byte range of the whole placeholder, braces included.
    pub start: usize,
    pub end: usize,
}

/// The placeholders of `line`, SQL already made one line by `sql::single_line` (so comments
/// are gone and every literal is terminated). `{{...}}` whose inside is not a name is text.
pub fn placeholders(line: &str) -> Vec<Placeholder<'_>> {
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    let mut quote: Option<u8> = None;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        // A doubled quote inside a literal closes it and opens it again: the state is right.
        match quote {
            Some(open) if byte == open => quote = None,
            None if byte == b'\'' || byte == b'"' => quote = Some(byte),
            _ => {}
        }
        if byte == b'{' && bytes.get(at + 1) == Some(&b'{') {
            // `{` is ASCII, so `at` is a character boundary.
            match placeholder_at(&line[at..]) {
                Some((name, len)) => {
                    found.push(Placeholder {
                        name,
                        quoted: quote.is_some(),
                        start: at,
                        end: at + len,
                    });
                    at += len;
                }
                None => at += 2,
            }
            continue;
        }
        at += 1;
    }
    found
}

/// The name and byte length of a placeholder at the start of `text` (which starts with `{{`).
fn placeholder_at(text: &str) -> Option<(&str, usize)> {
    let inner = &text[2..];
    let close = inner.find("}}")?;
    let name = inner[..close].trim();
    is_name(name).then_some((name, close + 4))
}

/// Fills every placeholder of `line` (single-line SQL): the week's dates as they are, each
/// parameter as escaped literal(s). A parameter's placeholder without a value, or inside
/// quotes, is refused; parameters no placeholder uses are not (`check_sql` refuses them when
/// the collection is created).
pub fn substitute(
    line: &str,
    start_date: &str,
    end_date: &str,
    params: &QueryParams,
) -> Result<String, ParamError> {
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    for found in placeholders(line) {
        let value = match found.name {
            START_DATE => start_date.to_string(),
            END_DATE => end_date.to_string(),
            name if found.quoted => return Err(ParamError::Quoted(name.to_string())),
            name => rendered(
                params
                    .get(name)
                    .ok_or_else(|| ParamError::Missing(name.to_string()))?,
            ),
        };
        out.push_str(&line[copied..found.start]);
        out.push_str(&value);
        copied = found.end;
    }
    out.push_str(&line[copied..]);
    Ok(out)
}

/// The inline SQL a week sends: made one line (`sql::single_line`: comments gone, literals
/// untouched), then its placeholders filled (`substitute`). The result is lexed again and must
/// come back unchanged: a value that could leave its literal would change the tokens.
pub fn render_sql(
    sql: &str,
    start_date: &str,
    end_date: &str,
    params: &QueryParams,
) -> Result<String, ParamError> {
    let line = crate::sql::single_line(sql)?;
    let filled = substitute(&line, start_date, end_date, params)?;
    if crate::sql::single_line(&filled)? != filled {
        return Err(ParamError::Escaped);
    }
    Ok(filled)
}

/// Whether `params` fit the placeholders of `line` (single-line SQL) exactly: each placeholder
/// of a parameter stands outside quotes and has a value, and each parameter is used.
pub fn check_sql(line: &str, params: &QueryParams) -> Result<(), ParamError> {
    let found = placeholders(line);
    for placeholder in &found {
        if placeholder.name == START_DATE || placeholder.name == END_DATE {
            continue;
        }
        if placeholder.quoted {
            return Err(ParamError::Quoted(placeholder.name.to_string()));
        }
        if params.get(placeholder.name).is_none() {
            return Err(ParamError::Missing(placeholder.name.to_string()));
        }
    }
    match params
        .names()
        .find(|name| !found.iter().any(|p| p.name == *name))
    {
        Some(unused) => Err(ParamError::Unused(unused.to_string())),
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "query_params_tests.rs"]
mod tests;
