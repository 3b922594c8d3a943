//! Week generation: turns (N weeks, end date, week start day, time zone) into contiguous 7-day
//! windows, and refuses requests AMC cannot serve (future end date, beyond retention).
//!
//! Pure calendar arithmetic on `NaiveDate`: days, never hours, so daylight-saving changes cannot
//! shift a boundary. The time zone only decides what "today" is and is passed on to AMC.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// Most weeks one collection may hold.
pub const MAX_WEEKS: u32 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WeekError {
    #[error("--weeks must be between 1 and {MAX_WEEKS}, got {0}")]
    WeekCountOutOfRange(i64),
    #[error("--end-date {end} is in the future (today is {today} in {zone})")]
    EndDateInFuture {
        end: NaiveDate,
        today: NaiveDate,
        zone: String,
    },
    #[error("the first week would start {first}, older than the {retention_days}-day retention (oldest allowed {oldest})")]
    BeyondRetention {
        first: NaiveDate,
        oldest: NaiveDate,
        retention_days: u32,
    },
    #[error("week start must be monday or sunday, got `{0}`")]
    BadWeekStart(String),
    #[error("date arithmetic overflow")]
    Overflow,
}

/// The day every week begins on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeekStart {
    Monday,
    Sunday,
}

impl WeekStart {
    pub fn as_str(self) -> &'static str {
        match self {
            WeekStart::Monday => "monday",
            WeekStart::Sunday => "sunday",
        }
    }

    fn last_day(self) -> Weekday {
        match self {
            WeekStart::Monday => Weekday::Sun,
            WeekStart::Sunday => Weekday::Sat,
        }
    }
}

impl FromStr for WeekStart {
    type Err = WeekError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "monday" => Ok(WeekStart::Monday),
            "sunday" => Ok(WeekStart::Sunday),
            _ => Err(WeekError::BadWeekStart(s.to_string())),
        }
    }
}

impl fmt::Display for WeekStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One week: `start` and `end` both inclusive, `end = start + 6 days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Week {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Week {
    /// The exclusive end AMC expects (`end + 1 day`, 00:00).
    pub fn end_exclusive(&self) -> NaiveDate {
        self.end + Duration::days(1)
    }

    /// The week right after this one (keep-fresh collections grow by it).
    pub fn next(&self) -> Week {
        Week {
            start: self.start + Duration::days(7),
            end: self.end + Duration::days(7),
        }
    }

    /// The first day on which this week may be collected: `generate_weeks` includes a week once
    /// its last day is on or before today minus the data lag, so it is due `data_lag_days` after
    /// its last day.
    pub fn due_on(&self, data_lag_days: u32) -> NaiveDate {
        self.end + Duration::days(i64::from(data_lag_days))
    }
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct WeekRequest {
    pub weeks: i64,
    pub end_date: Option<NaiveDate>,
    pub week_start: WeekStart,
}

/// Limits from configuration.
#[derive(Debug, Clone, Copy)]
pub struct WeekRules {
    pub data_lag_days: u32,
    pub retention_days: u32,
}

/// Builds the weeks, oldest first. `today` is the current date in the collection's time zone.
pub fn generate_weeks(
    today: NaiveDate,
    zone: &str,
    request: &WeekRequest,
    rules: WeekRules,
) -> Result<Vec<Week>, WeekError> {
    if !(1..=i64::from(MAX_WEEKS)).contains(&request.weeks) {
        return Err(WeekError::WeekCountOutOfRange(request.weeks));
    }
    let end_date = match request.end_date {
        Some(end) if end > today => {
            return Err(WeekError::EndDateInFuture {
                end,
                today,
                zone: zone.to_string(),
            })
        }
        Some(end) => end,
        None => today
            .checked_sub_signed(Duration::days(i64::from(rules.data_lag_days)))
            .ok_or(WeekError::Overflow)?,
    };
    let last_end = last_week_end_on_or_before(end_date, request.week_start);
    let first_start = last_end - Duration::days(7 * request.weeks - 1);
    let oldest = today - Duration::days(i64::from(rules.retention_days));
    if first_start < oldest {
        return Err(WeekError::BeyondRetention {
            first: first_start,
            oldest,
            retention_days: rules.retention_days,
        });
    }
    Ok((0..request.weeks)
        .map(|i| {
            let start = first_start + Duration::days(7 * i);
            Week {
                start,
                end: start + Duration::days(6),
            }
        })
        .collect())
}

/// The last day on or before `date` that closes a week starting on `week_start`.
fn last_week_end_on_or_before(date: NaiveDate, week_start: WeekStart) -> NaiveDate {
    let target = week_start.last_day().num_days_from_monday() as i64;
    let current = date.weekday().num_days_from_monday() as i64;
    date - Duration::days((current - target).rem_euclid(7))
}

#[cfg(test)]
#[path = "weeks_tests.rs"]
mod tests;
