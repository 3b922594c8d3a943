//! Unit tests of week generation.

use super::*;

const RULES: WeekRules = WeekRules {
    data_lag_days: 14,
    retention_days: 395,
};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn request(weeks: i64, end: Option<&str>, week_start: WeekStart) -> WeekRequest {
    WeekRequest {
        weeks,
        end_date: end.map(d),
        week_start,
    }
}

#[test]
fn monday_weeks_end_on_the_last_sunday_on_or_before_the_end_date() {
    // 2024-03-13 is a Wednesday; the last complete Monday week ends Sunday 2024-03-10.
    let weeks = generate_weeks(
        d("2024-06-01"),
        "UTC",
        &request(2, Some("2024-03-13"), WeekStart::Monday),
        RULES,
    )
    .unwrap();
    assert_eq!(
        weeks,
        vec![
            Week {
                start: d("2024-02-26"),
                end: d("2024-03-03")
            },
            Week {
                start: d("2024-03-04"),
                end: d("2024-03-10")
            },
        ]
    );
}

#[test]
fn an_end_date_that_closes_a_week_is_included() {
    let weeks = generate_weeks(
        d("2024-06-01"),
        "UTC",
        &request(1, Some("2024-03-10"), WeekStart::Monday),
        RULES,
    )
    .unwrap();
    assert_eq!(
        weeks[0],
        Week {
            start: d("2024-03-04"),
            end: d("2024-03-10")
        }
    );
}

#[test]
fn sunday_weeks_run_sunday_to_saturday() {
    let weeks = generate_weeks(
        d("2024-06-01"),
        "UTC",
        &request(1, Some("2024-03-13"), WeekStart::Sunday),
        RULES,
    )
    .unwrap();
    assert_eq!(
        weeks[0],
        Week {
            start: d("2024-03-03"),
            end: d("2024-03-09")
        }
    );
    assert_eq!(weeks[0].start.weekday(), Weekday::Sun);
}

#[test]
fn default_end_date_is_today_minus_the_data_lag() {
    // Today Friday 2024-05-31, minus 14 days = Friday 2024-05-17, last Sunday = 2024-05-12.
    let weeks = generate_weeks(
        d("2024-05-31"),
        "UTC",
        &request(3, None, WeekStart::Monday),
        RULES,
    )
    .unwrap();
    assert_eq!(weeks.last().unwrap().end, d("2024-05-12"));
    assert_eq!(weeks.first().unwrap().start, d("2024-04-22"));
}

#[test]
fn weeks_are_contiguous_and_seven_days_long_across_dst_and_leap_day() {
    let weeks = generate_weeks(
        d("2024-12-01"),
        "America/New_York",
        &request(40, Some("2024-11-10"), WeekStart::Monday),
        RULES,
    )
    .unwrap();
    assert_eq!(weeks.len(), 40);
    for pair in weeks.windows(2) {
        assert_eq!(pair[1].start, pair[0].end + Duration::days(1));
    }
    for week in &weeks {
        assert_eq!(week.end - week.start, Duration::days(6));
        assert_eq!(week.start.weekday(), Weekday::Mon);
    }
    assert!(weeks
        .iter()
        .any(|w| w.start <= d("2024-02-29") && d("2024-02-29") <= w.end));
}

#[test]
fn leap_day_week_is_generated_correctly() {
    let weeks = generate_weeks(
        d("2024-06-01"),
        "UTC",
        &request(1, Some("2024-03-03"), WeekStart::Monday),
        RULES,
    )
    .unwrap();
    assert_eq!(
        weeks[0],
        Week {
            start: d("2024-02-26"),
            end: d("2024-03-03")
        }
    );
    assert_eq!(weeks[0].end_exclusive(), d("2024-03-04"));
}

#[test]
fn week_count_outside_one_to_sixty_is_refused() {
    for n in [0, -1, 61] {
        let error = generate_weeks(
            d("2024-06-01"),
            "UTC",
            &request(n, None, WeekStart::Monday),
            RULES,
        )
        .unwrap_err();
        assert_eq!(error, WeekError::WeekCountOutOfRange(n));
    }
}

#[test]
fn sixty_weeks_is_accepted_when_retention_allows_it() {
    let rules = WeekRules {
        data_lag_days: 14,
        retention_days: 500,
    };
    let weeks = generate_weeks(
        d("2024-06-01"),
        "UTC",
        &request(60, None, WeekStart::Monday),
        rules,
    )
    .unwrap();
    assert_eq!(weeks.len(), 60);
}

#[test]
fn end_date_in_the_future_is_refused() {
    let error = generate_weeks(
        d("2024-06-01"),
        "UTC",
        &request(1, Some("2024-06-02"), WeekStart::Monday),
        RULES,
    )
    .unwrap_err();
    assert!(matches!(error, WeekError::EndDateInFuture { .. }));
}

#[test]
fn end_date_today_is_accepted() {
    assert!(generate_weeks(
        d("2024-06-01"),
        "UTC",
        &request(1, Some("2024-06-01"), WeekStart::Monday),
        RULES
    )
    .is_ok());
}

#[test]
fn weeks_older_than_retention_are_refused() {
    let error = generate_weeks(
        d("2024-06-01"),
        "UTC",
        &request(10, Some("2023-06-01"), WeekStart::Monday),
        RULES,
    )
    .unwrap_err();
    assert!(matches!(error, WeekError::BeyondRetention { .. }));
}

#[test]
fn first_week_exactly_at_retention_is_accepted() {
    // today - 395 days = 2023-05-03 (Wednesday); a week starting Monday 2023-05-08 fits.
    let weeks = generate_weeks(
        d("2024-06-01"),
        "UTC",
        &request(1, Some("2023-05-14"), WeekStart::Monday),
        RULES,
    )
    .unwrap();
    assert_eq!(weeks[0].start, d("2023-05-08"));
}

#[test]
fn week_start_parses_case_insensitively_and_refuses_other_days() {
    assert_eq!("Monday".parse::<WeekStart>().unwrap(), WeekStart::Monday);
    assert_eq!("sunday".parse::<WeekStart>().unwrap(), WeekStart::Sunday);
    assert!("tuesday".parse::<WeekStart>().is_err());
}

#[test]
fn the_week_after_the_last_one_is_due_exactly_when_generate_weeks_would_include_it() {
    let rules = WeekRules {
        data_lag_days: 14,
        retention_days: 395,
    };
    let request = WeekRequest {
        weeks: 4,
        end_date: None,
        week_start: WeekStart::Monday,
    };
    let today = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    let weeks = generate_weeks(today, "UTC", &request, rules).unwrap();
    let next = weeks.last().unwrap().next();
    assert_eq!(next.start, weeks.last().unwrap().start + Duration::days(7));
    let due = next.due_on(rules.data_lag_days);
    let on_due_day = generate_weeks(due, "UTC", &request, rules).unwrap();
    assert_eq!(*on_due_day.last().unwrap(), next);
    let day_before = generate_weeks(due - Duration::days(1), "UTC", &request, rules).unwrap();
    assert_eq!(*day_before.last().unwrap(), *weeks.last().unwrap());
}
