//! Guards from AMC's documented data rules, run as the real binary: a last week that ended less
//! than 48 hours ago is refused unless `--allow-recent` (AMC's data for a day is complete about
//! 48 hours after it ends), and a retention beyond AMC's 13 months is refused at start.

use super::{catalog, collection_rows};
use crate::support::{assert_usage_error, stdout_of, Backend, TestDb};

/// A week start whose weeks end (on their last day) within the last two days of `today`, if any:
/// Monday-started weeks end on Sunday, Sunday-started ones on Saturday.
fn recent_week_start(today: chrono::NaiveDate) -> Option<&'static str> {
    use chrono::{Datelike, Weekday};
    match today.weekday() {
        Weekday::Sun | Weekday::Mon | Weekday::Tue => Some("monday"),
        Weekday::Sat => Some("sunday"),
        Weekday::Wed | Weekday::Thu | Weekday::Fri => None,
    }
}

async fn a_last_week_ended_within_48_hours_is_refused_unless_allow_recent(backend: Backend) {
    // Arrange: weeks ending on or before today (UTC).
    let db = TestDb::new(backend).await;
    catalog(&db).await;
    let today = chrono::Utc::now().date_naive();
    let end = today.format("%Y-%m-%d").to_string();
    let mut args = vec![
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        "amctest01",
        "--weeks",
        "2",
        "--time-zone",
        "UTC",
        "--end-date",
        end.as_str(),
    ];
    let Some(week_start) = recent_week_start(today) else {
        // Midweek no week ended within 48 hours: the guard lets the create through.
        stdout_of(&db.run(&args));
        assert_eq!(collection_rows(&db).await, 1);
        return;
    };
    args.extend(["--week-start", week_start]);

    // Act
    let refused = db.run(&args);

    // Assert: one line, exit 2, nothing written; accepted with --allow-recent.
    assert_usage_error(&refused, "--allow-recent");
    assert_eq!(collection_rows(&db).await, 0);
    args.push("--allow-recent");
    stdout_of(&db.run(&args));
    assert_eq!(collection_rows(&db).await, 1);
}

async fn a_retention_beyond_amcs_13_months_is_refused_at_start_naming_the_key(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;

    // Act
    let refused = db.run_with_env(
        &["collection", "list"],
        &[("AMC_COLLECTOR__COLLECTION__RETENTION_DAYS", "396")],
    );

    // Assert
    assert_usage_error(&refused, "collection.retention_days");
}

crate::actix_on_both_backends!(
    a_last_week_ended_within_48_hours_is_refused_unless_allow_recent,
    a_retention_beyond_amcs_13_months_is_refused_at_start_naming_the_key,
);
