//! Matching an execution reported by AMC against a submitted window, by parsed instants.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::types::{parse_naive, parse_utc, ExecutionInfo, TimeWindow};

/// True when `info` ran over exactly `window`.
///
/// AMC echoes the window normalised to UTC (`timeWindowStart`/`End` with `Z`) and as submitted
/// (`...Original` plus `timeWindowTimeZoneOriginal`). The UTC pair is compared first; when it is
/// absent the original fields are parsed in their own zone. Raw strings are never compared, since
/// AMC's formatting of either form is not guaranteed.
pub fn window_matches(info: &ExecutionInfo, window: &TimeWindow) -> bool {
    let wanted_start = local_to_utc(window.start, window.time_zone);
    let wanted_end = local_to_utc(window.end, window.time_zone);
    if let (Some(start), Some(end)) = (info.window_start_utc, info.window_end_utc) {
        if !wanted_start.is_empty() && !wanted_end.is_empty() {
            return wanted_start.contains(&start) && wanted_end.contains(&end);
        }
    }
    original_matches(info, window)
}

fn original_matches(info: &ExecutionInfo, window: &TimeWindow) -> bool {
    let (Some(start_raw), Some(end_raw)) = (&info.window_start_original, &info.window_end_original)
    else {
        return false;
    };
    // AMC applies UTC when no zone was submitted.
    let zone = match info.time_zone_original.as_deref() {
        None => Tz::UTC,
        Some(name) => match name.trim().parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => return false,
        },
    };
    let (Some(start), Some(end)) = (parse_original(start_raw), parse_original(end_raw)) else {
        return false;
    };
    same_instant(start, zone, window.start, window.time_zone)
        && same_instant(end, zone, window.end, window.time_zone)
}

/// An original echoed with a `Z` or offset is an instant already; otherwise it is local time.
enum Original {
    Instant(DateTime<Utc>),
    Local(NaiveDateTime),
}

fn parse_original(raw: &str) -> Option<Original> {
    match parse_naive(raw) {
        Some(local) => Some(Original::Local(local)),
        None => parse_utc(raw).map(Original::Instant),
    }
}

fn same_instant(seen: Original, seen_zone: Tz, wanted: NaiveDateTime, wanted_zone: Tz) -> bool {
    let wanted_utc = local_to_utc(wanted, wanted_zone);
    match seen {
        Original::Instant(t) => wanted_utc.contains(&t),
        Original::Local(local) => {
            let seen_utc = local_to_utc(local, seen_zone);
            if seen_utc.is_empty() || wanted_utc.is_empty() {
                // A local time inside a DST gap has no instant; fall back to the wall-clock text.
                local == wanted && seen_zone == wanted_zone
            } else {
                seen_utc.iter().any(|t| wanted_utc.contains(t))
            }
        }
    }
}

/// Every UTC instant a local time can denote: one normally, two in a DST fold, none in a gap.
fn local_to_utc(local: NaiveDateTime, zone: Tz) -> Vec<DateTime<Utc>> {
    zone.from_local_datetime(&local)
        .earliest()
        .into_iter()
        .chain(zone.from_local_datetime(&local).latest())
        .map(|t| t.with_timezone(&Utc))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amc::types::ExecutionStatus;

    fn info() -> ExecutionInfo {
        ExecutionInfo {
            workflow_execution_id: None,
            workflow_id: None,
            status: ExecutionStatus::Pending,
            status_reason: None,
            create_time: None,
            window_start_utc: None,
            window_end_utc: None,
            window_start_original: None,
            window_end_original: None,
            time_zone_original: None,
            sql_query: None,
            output_channels: Vec::new(),
        }
    }

    fn ny_week() -> TimeWindow {
        TimeWindow {
            start: parse_naive("2024-01-01T00:00:00").unwrap(),
            end: parse_naive("2024-01-08T00:00:00").unwrap(),
            time_zone: chrono_tz::America::New_York,
        }
    }

    #[test]
    fn utc_echo_of_a_new_york_window_matches() {
        let mut i = info();
        i.window_start_utc = parse_utc("2024-01-01T05:00:00Z");
        i.window_end_utc = parse_utc("2024-01-08T05:00:00Z");
        assert!(window_matches(&i, &ny_week()));
    }

    #[test]
    fn utc_echo_shifted_by_the_zone_offset_does_not_match() {
        let mut i = info();
        i.window_start_utc = parse_utc("2024-01-01T00:00:00Z");
        i.window_end_utc = parse_utc("2024-01-08T00:00:00Z");
        assert!(!window_matches(&i, &ny_week()));
    }

    #[test]
    fn original_fields_are_used_when_the_utc_echo_is_missing() {
        let mut i = info();
        i.window_start_original = Some("2024-01-01T00:00:00".into());
        i.window_end_original = Some("2024-01-08T00:00:00.000".into());
        i.time_zone_original = Some("America/New_York".into());
        assert!(window_matches(&i, &ny_week()));
        i.time_zone_original = Some("Europe/Paris".into());
        assert!(!window_matches(&i, &ny_week()));
    }

    #[test]
    fn original_without_zone_is_read_as_utc() {
        let mut i = info();
        i.window_start_original = Some("2024-01-01T05:00:00".into());
        i.window_end_original = Some("2024-01-08T05:00:00".into());
        assert!(window_matches(&i, &ny_week()));
    }

    #[test]
    fn reply_without_any_window_never_matches() {
        assert!(!window_matches(&info(), &ny_week()));
    }
}
