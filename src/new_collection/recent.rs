//! `collection create`'s (and the console form's) guard against a last week AMC may not have whole yet: AMC's data for a
//! day is complete about 48 hours after it ends (AMC documentation, data availability: events
//! keep arriving for up to 48 hours), so a week collected sooner would be stored partial, for
//! good. `--allow-recent` accepts it anyway.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;

use super::RequestError;
use crate::weeks::Week;

/// How long after a day ends AMC's data for it is complete.
const DATA_SLA_HOURS: i64 = 48;

/// Refuses (bad input: the CLI's exit 2, the console's 400) weeks whose last one ends less than 48 hours before `now`.
pub(super) fn refuse_recent_last_week(
    weeks: &[Week],
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<(), RequestError> {
    let Some(last) = weeks.last() else {
        return Ok(());
    };
    let Some(ends_at) = end_of(last, zone) else {
        return Ok(());
    };
    if now - ends_at < Duration::hours(DATA_SLA_HOURS) {
        return Err(RequestError::Bad(format!(
            "the last week ({} to {}) ended less than {DATA_SLA_HOURS} hours ago ({} in {}): \
             AMC may not have all its data yet; pass --allow-recent to collect it anyway",
            last.start,
            last.end,
            ends_at.to_rfc3339(),
            zone.name()
        )));
    }
    Ok(())
}

/// The instant the week's last day ends in `zone` (`None` when it cannot be represented).
fn end_of(week: &Week, zone: Tz) -> Option<DateTime<Utc>> {
    let next_day = week.end.succ_opt()?.and_hms_opt(0, 0, 0)?;
    let local = zone.from_local_datetime(&next_day).earliest()?;
    Some(local.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn week_ending(end: NaiveDate) -> Week {
        Week {
            start: end - Duration::days(6),
            end,
        }
    }

    #[test]
    fn a_week_ended_less_than_48_hours_ago_is_refused_and_one_ended_earlier_is_not() {
        let end = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let weeks = [week_ending(end)];
        // The week ends at 2026-11-30T00:00Z.
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let refused = refuse_recent_last_week(&weeks, Tz::UTC, at("2026-12-01T23:59:00Z"));
        assert!(
            matches!(&refused, Err(RequestError::Bad(m)) if m.contains("--allow-recent")),
            "{refused:?}"
        );
        assert!(refuse_recent_last_week(&weeks, Tz::UTC, at("2026-12-02T00:00:00Z")).is_ok());
    }
}
