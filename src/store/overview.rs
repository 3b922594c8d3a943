//! What the observability endpoints read (`observe::dump`, `observe::metrics`): weeks and
//! collections counted by status, the weeks in flight, and the durations of completed weeks.
//! Read-only, and bounded: each is one query whatever the history.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{with_pool, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId};
use crate::status::{CollectionStatus, WeekStatus};

/// A week in `submitting`, `running` or `downloading`, with the execution it points at.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct InFlightExecution {
    pub collection_id: CollectionId,
    pub week_start: NaiveDate,
    pub week_status: String,
    pub execution_id: Option<ExecutionId>,
    pub amc_execution_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub attempts: i32,
}

/// Duration (`completed_at - started_at`, i.e. of the week's last attempt) of completed weeks.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    pub count: i64,
    pub sum_seconds: f64,
    /// Cumulative counts, one per bucket bound asked for.
    pub buckets: Vec<i64>,
}

impl Store {
    /// Weeks by status of every active collection (pending, running, paused): rows of
    /// (collection, collection status, week status, weeks).
    pub async fn active_week_counts(
        &self,
    ) -> Result<Vec<(CollectionId, String, String, i64)>, StoreError> {
        let sql = "SELECT w.collection_id, c.status, w.status, COUNT(*) FROM report_data_weeks w \
                   JOIN report_data_collections c ON c.id = w.collection_id \
                   WHERE c.status IN ($1, $2, $3) \
                   GROUP BY w.collection_id, c.status, w.status";
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(CollectionStatus::Pending.as_str())
            .bind(CollectionStatus::Running.as_str())
            .bind(CollectionStatus::Paused.as_str())
            .fetch_all(pool)
            .await)?)
    }

    /// The weeks in flight (at most `limit`), oldest collection and week first.
    pub async fn in_flight_weeks(&self, limit: i64) -> Result<Vec<InFlightExecution>, StoreError> {
        let sql = "SELECT w.collection_id, w.week_start_date AS week_start, \
                   w.status AS week_status, w.execution_id, \
                   COALESCE(e.amc_execution_id, w.amc_execution_id) AS amc_execution_id, \
                   e.created_at, w.attempts FROM report_data_weeks w \
                   LEFT JOIN workflow_executions e ON e.id = w.execution_id \
                   WHERE w.status IN ($2, $3, $4) \
                   ORDER BY w.collection_id, w.week_start_date LIMIT $1";
        Ok(with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(limit)
            .bind(WeekStatus::Submitting.as_str())
            .bind(WeekStatus::Running.as_str())
            .bind(WeekStatus::Downloading.as_str())
            .fetch_all(pool)
            .await)?)
    }

    /// Weeks and collections counted by status: (weeks, collections).
    pub async fn status_counts(&self) -> Result<StatusCounts, StoreError> {
        let weeks = "SELECT status, COUNT(*) FROM report_data_weeks GROUP BY status";
        let collections = "SELECT status, COUNT(*) FROM report_data_collections GROUP BY status";
        let weeks = with_pool!(self, |pool| sqlx::query_as(weeks).fetch_all(pool).await)?;
        let collections = with_pool!(self, |pool| sqlx::query_as(collections)
            .fetch_all(pool)
            .await)?;
        Ok((weeks, collections))
    }

    /// The durations of completed weeks, counted into cumulative buckets (upper bounds in
    /// seconds) inside the database, so a scrape reads one row whatever the history.
    pub async fn week_durations(&self, bounds: &[f64]) -> Result<DurationHistogram, StoreError> {
        let duration = match self {
            Store::Postgres(_) => {
                "CAST(EXTRACT(EPOCH FROM (completed_at - started_at)) AS DOUBLE PRECISION)"
            }
            // Timestamps are RFC 3339 text, which julianday() parses (offset included).
            Store::Sqlite(_) => "((julianday(completed_at) - julianday(started_at)) * 86400.0)",
        };
        // One column per bucket: the bounds are the caller's constants, not input.
        let buckets: String = bounds
            .iter()
            .map(|le| format!(", COALESCE(SUM(CASE WHEN d <= {le:.1} THEN 1 ELSE 0 END), 0)"))
            .collect();
        let sql = format!(
            "SELECT COUNT(*), COALESCE(SUM(d), 0.0){buckets} FROM (SELECT {duration} AS d \
             FROM report_data_weeks WHERE status = $1 AND started_at IS NOT NULL \
             AND completed_at IS NOT NULL) durations"
        );
        with_pool!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(WeekStatus::Completed.as_str())
                .fetch_one(pool)
                .await?;
            let mut histogram = DurationHistogram {
                count: row.try_get(0)?,
                sum_seconds: row.try_get(1)?,
                buckets: Vec::with_capacity(bounds.len()),
            };
            for index in 0..bounds.len() {
                histogram.buckets.push(row.try_get(index + 2)?);
            }
            Ok(histogram)
        })
    }
}

/// Rows of (status, count): weeks, then collections.
pub type StatusCounts = (Vec<(String, i64)>, Vec<(String, i64)>);
