//! A result column's type, inferred from its values and only ever widened.
//!
//! AMC's CSV carries text only. A column is `bigint` while every non-empty value is a plain
//! integer that fits 64 bits and reads back as written (`007` does not), `numeric` while each is a
//! plain decimal (exact: spend stays exact), `boolean` for `true`/`false`, `date` for
//! `YYYY-MM-DD`, `timestamptz` for an ISO date-time (a missing zone is UTC), else `text`. Empty
//! values are NULL and say nothing. Widening follows bigint → numeric → text,
//! date → timestamptz → text; any other mix is text.

use serde::{Deserialize, Serialize};

/// The type of one result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Only empty values seen so far (the relation declares it `text`).
    Empty,
    Bigint,
    Numeric,
    Boolean,
    Date,
    Timestamptz,
    Text,
}

impl ColumnType {
    /// The narrowest type holding both.
    pub fn join(self, other: ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Empty, x) | (x, Empty) => x,
            (Bigint, Numeric) | (Numeric, Bigint) => Numeric,
            (Date, Timestamptz) | (Timestamptz, Date) => Timestamptz,
            _ => Text,
        }
    }

    /// The type of one value (`None` for an empty one).
    pub fn of(value: &[u8]) -> Option<ColumnType> {
        if value.is_empty() {
            return None;
        }
        Some(if is_integer(value) {
            ColumnType::Bigint
        } else if is_decimal(value) {
            ColumnType::Numeric
        } else if value == b"true" || value == b"false" {
            ColumnType::Boolean
        } else if is_date(value) {
            ColumnType::Date
        } else if is_timestamp(value) {
            ColumnType::Timestamptz
        } else {
            ColumnType::Text
        })
    }

    /// The name `workflow show` prints (Postgres' own).
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Empty | ColumnType::Text => "text",
            ColumnType::Bigint => "bigint",
            ColumnType::Numeric => "numeric",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
            ColumnType::Timestamptz => "timestamptz",
        }
    }
}

/// `0` or `-?[1-9][0-9]*` within 64 bits: the value reads back exactly as written.
fn is_integer(value: &[u8]) -> bool {
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if digits.len() > 1 && digits[0] == b'0' || value == b"-0" {
        return false;
    }
    std::str::from_utf8(value).is_ok_and(|text| text.parse::<i64>().is_ok())
}

/// `-?(0|[1-9][0-9]*)\.[0-9]+`, at most 1,000 digits (Postgres' numeric takes far more).
fn is_decimal(value: &[u8]) -> bool {
    if value.len() > 1000 {
        return false;
    }
    let unsigned = value.strip_prefix(b"-").unwrap_or(value);
    let Some(dot) = unsigned.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (whole, fraction) = (&unsigned[..dot], &unsigned[dot + 1..]);
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.iter().all(u8::is_ascii_digit)
        && fraction.iter().all(u8::is_ascii_digit)
        && (whole.len() == 1 || whole[0] != b'0')
}

fn is_date(value: &[u8]) -> bool {
    value.len() == 10
        && std::str::from_utf8(value)
            .is_ok_and(|text| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok())
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH:MM]`.
fn is_timestamp(value: &[u8]) -> bool {
    if value.len() < 19 || value.len() > 40 || !is_date(&value[..10]) {
        return false;
    }
    if value[10] != b'T' && value[10] != b' ' {
        return false;
    }
    let Ok(text) = std::str::from_utf8(&value[11..]) else {
        return false;
    };
    let (time, zone) = match text.find(['Z', '+', '-']) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let zone_ok = zone.is_empty()
        || zone == "Z"
        || (zone.len() == 6
            && zone.as_bytes()[3] == b':'
            && zone[1..3].bytes().all(|b| b.is_ascii_digit())
            && zone[4..].bytes().all(|b| b.is_ascii_digit())
            && zone[1..3] < *"15");
    let time_ok = time.len() >= 8
        && chrono::NaiveTime::parse_from_str(time, "%H:%M:%S%.f").is_ok()
        && time.as_bytes()[2] == b':'
        && (time.len() == 8 || (time.as_bytes()[8] == b'.' && time.len() > 9));
    zone_ok && time_ok
}

/// The types of a result's columns, observed value by value while its files are parsed.
#[derive(Debug, Default, Clone)]
pub struct TypeObserver {
    types: Vec<ColumnType>,
}

impl TypeObserver {
    /// Notes `value` of column `index` (the column's position in the result's union of columns).
    #[inline]
    pub fn observe(&mut self, index: usize, value: &[u8]) {
        if index >= self.types.len() {
            self.types.resize(index + 1, ColumnType::Empty);
        }
        let current = self.types[index];
        if current == ColumnType::Text {
            return;
        }
        if let Some(seen) = ColumnType::of(value) {
            self.types[index] = current.join(seen);
        }
    }

    /// The types of `columns` columns (those never observed: `Empty`).
    pub fn finish(mut self, columns: usize) -> Vec<ColumnType> {
        self.types.resize(columns, ColumnType::Empty);
        self.types
    }
}

#[cfg(test)]
mod tests {
    use super::ColumnType::*;
    use super::*;

    #[test]
    fn values_get_their_narrowest_type() {
        for (value, expected) in [
            ("42", Some(Bigint)),
            ("-7", Some(Bigint)),
            ("007", Some(Text)),
            ("-0", Some(Text)),
            ("99999999999999999999", Some(Text)),
            ("12.50", Some(Numeric)),
            ("0.001", Some(Numeric)),
            ("1e5", Some(Text)),
            (".5", Some(Text)),
            ("true", Some(Boolean)),
            ("TRUE", Some(Text)),
            ("2024-02-29", Some(Date)),
            ("2023-02-29", Some(Text)),
            ("2024-01-01T10:00:00Z", Some(Timestamptz)),
            ("2024-01-01 10:00:00.123+02:00", Some(Timestamptz)),
            ("2024-01-01T10:00:00", Some(Timestamptz)),
            ("2024-01-01T10:00", Some(Text)),
            ("Spring Sale", Some(Text)),
            ("", None),
        ] {
            assert_eq!(ColumnType::of(value.as_bytes()), expected, "{value:?}");
        }
    }

    #[test]
    fn types_only_widen() {
        assert_eq!(Bigint.join(Numeric), Numeric);
        assert_eq!(Numeric.join(Bigint), Numeric);
        assert_eq!(Numeric.join(Date), Text);
        assert_eq!(Date.join(Timestamptz), Timestamptz);
        assert_eq!(Boolean.join(Bigint), Text);
        assert_eq!(Empty.join(Date), Date);
        assert_eq!(Text.join(Empty), Text);
    }

    #[test]
    fn the_observer_keeps_the_widest_type_per_column_and_ignores_empty_values() {
        let mut observer = TypeObserver::default();
        for (index, value) in [(0, "1"), (1, ""), (0, "2.5"), (2, "2024-01-01"), (0, "")] {
            observer.observe(index, value.as_bytes());
        }
        assert_eq!(observer.finish(4), vec![Numeric, Empty, Date, Empty]);
    }
}
