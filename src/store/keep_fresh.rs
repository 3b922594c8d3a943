//! Keep-fresh collections: which weeks became due since a collection's newest week, adding them
//! (idempotently, so any process may), and dropping the rows of completed weeks beyond
//! `keep_weeks` while the weeks and their executions stay for lineage.
//!
//! Reads are free; inside the daemon the writes go through the DbWriter (`AddDueWeeks`, and
//! the retention when a collection's actor finishes, `RefreshCollection`).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::progress::REFRESH_COLLECTION;
use super::OutboxTx;
use super::{with_pool, Store, StoreError};
use crate::ids::{CollectionId, WeekId};
use crate::status::{CollectionStatus, WeekStatus};
use crate::weeks::{self, Week};

/// Most weeks one collection gains in one pass (a daemon that was stopped for months catches up
/// over several scans rather than in one huge transaction).
const MAX_WEEKS_PER_PASS: usize = 8;

/// A keep-fresh collection that may grow now (not paused, cancelled or given up).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FreshCollection {
    pub id: CollectionId,
    pub time_zone: String,
    pub last_week_start: NaiveDate,
    pub last_week_end: NaiveDate,
}

impl FreshCollection {
    fn last_week(&self) -> Week {
        Week {
            start: self.last_week_start,
            end: self.last_week_end,
        }
    }

    /// The weeks after the newest one that are due on `today` (the collection's own date), oldest
    /// first, skipping any AMC no longer keeps.
    pub fn due_weeks(&self, today: NaiveDate, rules: weeks::WeekRules) -> Vec<Week> {
        let oldest = today - chrono::Duration::days(i64::from(rules.retention_days));
        let mut due = Vec::new();
        let mut week = self.last_week().next();
        while week.due_on(rules.data_lag_days) <= today && due.len() < MAX_WEEKS_PER_PASS {
            if week.start >= oldest {
                due.push(week);
            }
            week = week.next();
        }
        due
    }
}

/// Weeks one collection gains.
#[derive(Debug, Clone)]
pub struct DueWeeks {
    pub collection_id: CollectionId,
    pub weeks: Vec<Week>,
}

/// When a keep-fresh collection's next week becomes due: 00:00 of its due day in the collection's
/// time zone, or, where that midnight falls in a daylight-saving gap (clocks jump from 00:00 to
/// 01:00, as in Santiago or Havana), the first instant after the gap. `None` only for a zone
/// chrono-tz does not know (refused at create).
pub fn next_week_due(
    last_week: Week,
    time_zone: &str,
    data_lag_days: u32,
) -> Option<DateTime<Utc>> {
    let zone: chrono_tz::Tz = time_zone.parse().ok()?;
    let due = last_week
        .next()
        .due_on(data_lag_days)
        .and_hms_opt(0, 0, 0)?;
    first_instant_from(zone, due)
}

/// Longest daylight-saving gap looked past (real ones are an hour, or half of one).
const MAX_GAP_MINUTES: i64 = 3 * 60;

/// The first instant whose local time in `zone` is `local` or later: `local` itself unless it
/// falls in a gap, else the end of the gap (the wall clock's first minute after it).
fn first_instant_from(zone: chrono_tz::Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    (0..=MAX_GAP_MINUTES).find_map(|minutes| {
        zone.from_local_datetime(&(local + chrono::Duration::minutes(minutes)))
            .earliest()
            .map(|at| at.with_timezone(&Utc))
    })
}

/// "Today" in a collection's zone.
pub fn today_in(time_zone: &str, now: DateTime<Utc>) -> Option<NaiveDate> {
    let zone: chrono_tz::Tz = time_zone.parse().ok()?;
    Some(now.with_timezone(&zone).date_naive())
}

const FRESH_COLLECTIONS: &str = "SELECT c.id, c.time_zone, \
        MAX(w.week_start_date) AS last_week_start, MAX(w.week_end_date) AS last_week_end \
    FROM report_data_collections c JOIN report_data_weeks w ON w.collection_id = c.id \
    WHERE c.keep_fresh AND c.status NOT IN ($1, $2) AND NOT c.given_up \
    GROUP BY c.id, c.time_zone";

/// Inserts one week unless the collection stopped being growable meanwhile (paused, cancelled)
/// or the week exists (another process added it).
const INSERT_DUE_WEEK: &str = "INSERT INTO report_data_weeks \
        (id, collection_id, week_start_date, week_end_date, status, attempts, updated_at) \
    SELECT $1, c.id, $3, $4, $6, 0, $5 FROM report_data_collections c \
    WHERE c.id = $2 AND c.keep_fresh AND c.status NOT IN ($7, $8) AND NOT c.given_up \
    ON CONFLICT (collection_id, week_start_date) DO NOTHING";

const EXTEND_END_DATE: &str = "UPDATE report_data_collections SET end_date = $2, updated_at = $3 \
    WHERE id = $1 AND end_date < $2";

/// Completed weeks (`$1`) of collection `$2`, if it has `keep_weeks`, whose rows are still there
/// although at least `keep_weeks` newer weeks are completed.
const WEEKS_BEYOND_KEEP: &str = "SELECT w.id FROM report_data_weeks w \
    JOIN report_data_collections c ON c.id = w.collection_id \
    WHERE c.id = $2 AND c.keep_fresh AND c.keep_weeks IS NOT NULL \
      AND w.status = $1 AND w.rows_dropped_at IS NULL \
      AND (SELECT COUNT(*) FROM report_data_weeks n WHERE n.collection_id = w.collection_id \
             AND n.status = $1 AND n.week_start_date > w.week_start_date) >= c.keep_weeks";

const DROP_ROWS: &str = "DELETE FROM report_data_rows WHERE week_id = $1";
const MARK_ROWS_DROPPED: &str =
    "UPDATE report_data_weeks SET rows_dropped_at = $2, updated_at = $2 \
    WHERE id = $1 AND status = $3 AND rows_dropped_at IS NULL";

impl Store {
    /// Keep-fresh collections that may gain weeks now, with their newest week.
    pub async fn keep_fresh_collections(&self) -> Result<Vec<FreshCollection>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, FreshCollection>(FRESH_COLLECTIONS)
                .bind(CollectionStatus::Paused.as_str())
                .bind(CollectionStatus::Cancelled.as_str())
                .fetch_all(pool)
                .await
        })?)
    }

    /// Adds due weeks to one collection in one transaction (its end date moves with them and its
    /// status is derived again, so a completed collection runs again). Returns the weeks added.
    pub async fn add_due_weeks(
        &self,
        due: &DueWeeks,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let Some(last) = due.weeks.last() else {
            return Ok(0);
        };
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut added = 0;
            for week in &due.weeks {
                added += sqlx::query(INSERT_DUE_WEEK)
                    .bind(WeekId::new())
                    .bind(due.collection_id)
                    .bind(week.start)
                    .bind(week.end)
                    .bind(now)
                    .bind(WeekStatus::Pending.as_str())
                    .bind(CollectionStatus::Paused.as_str())
                    .bind(CollectionStatus::Cancelled.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            if added > 0 {
                sqlx::query(EXTEND_END_DATE)
                    .bind(due.collection_id)
                    .bind(last.end)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&REFRESH_COLLECTION)
                    .bind(due.collection_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                // The collection reopened: the completion of its new weeks is reported again.
                tx.alert_collections(&[due.collection_id], now, true)
                    .await?;
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(added)
        })
        .map_err(StoreError::from)
    }

    /// Drops the rows of one collection's weeks beyond its `keep_weeks` (when its actor finished,
    /// i.e. right after its newest weeks completed). Returns the rows deleted.
    pub async fn drop_rows_beyond_keep_of(
        &self,
        collection_id: CollectionId,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let week_ids = with_pool!(self, |pool| sqlx::query_scalar::<_, WeekId>(
            WEEKS_BEYOND_KEEP
        )
        .bind(WeekStatus::Completed.as_str())
        .bind(collection_id)
        .fetch_all(pool)
        .await)?;
        self.drop_rows_of(&week_ids, now).await
    }

    /// Deletes the rows of these weeks and marks when; the weeks, their checksums and their
    /// executions stay. One transaction per week, so a crash leaves no week half-dropped.
    async fn drop_rows_of(
        &self,
        week_ids: &[WeekId],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut dropped = 0;
        for week_id in week_ids {
            dropped += with_pool!(self, |pool| {
                let mut tx = pool.begin().await?;
                let rows = sqlx::query(DROP_ROWS)
                    .bind(*week_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                // The workflow's typed relation loses the week's rows in the same commit.
                let relation: Option<(String, String, CollectionId, NaiveDate)> =
                    sqlx::query_as(super::typed::RELATION_OF_WEEK)
                        .bind(*week_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some((schema, name, collection, start)) = relation {
                    sqlx::query(&super::typed::delete_week_sql(&schema, &name))
                        .bind(collection)
                        .bind(start)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(MARK_ROWS_DROPPED)
                    .bind(*week_id)
                    .bind(now)
                    .bind(WeekStatus::Completed.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<u64, sqlx::Error>(rows)
            })?;
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod dst_tests {
    use super::*;

    #[test]
    fn a_due_midnight_in_a_daylight_saving_gap_is_due_at_the_first_instant_after_it() {
        // Havana moves its clocks from 00:00 to 01:00 on the second Sunday of March.
        let zone: chrono_tz::Tz = "America/Havana".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let midnight = day.and_hms_opt(0, 0, 0).unwrap();
        assert!(
            zone.from_local_datetime(&midnight).earliest().is_none(),
            "no gap"
        );
        let last_week = Week {
            start: day - chrono::Duration::days(27),
            end: day - chrono::Duration::days(21),
        };

        let due = next_week_due(last_week, "America/Havana", 14).unwrap();

        // 01:00 CDT (UTC-4) is the first wall-clock time after the gap: 05:00 UTC.
        assert_eq!(due.to_rfc3339(), "2026-03-08T05:00:00+00:00");
        assert_eq!(due.with_timezone(&zone).date_naive(), day);
    }
}
