//! The operator's console reads (`console/`): every collection with its weeks counted by status
//! and its first start and last completion, in one query; one collection's weeks with every
//! field and timestamp a week's detail shows. Read-only; the console's actions go through
//! `control.rs` and `rerun.rs` like the CLI's.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{status_list, with_pool, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::status::{CollectionStatus, WeekStatus};

/// One collection as the console's list shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CollectionOverview {
    pub id: CollectionId,
    pub workflow: String,
    pub instance: String,
    #[sqlx(try_from = "String")]
    pub status: CollectionStatus,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub weeks_total: i64,
    pub completed: i64,
    /// Submitting, running on AMC or downloading.
    pub running: i64,
    pub failed: i64,
    pub pending: i64,
    pub cancelled: i64,
    /// The first week's first submission.
    pub started_at: Option<DateTime<Utc>>,
    /// The last week's completion.
    pub last_completed_at: Option<DateTime<Utc>>,
    /// Grows by each new week once it is due (`collection create --keep-fresh`).
    pub keep_fresh: bool,
    /// AMC's reason when the collection is held (paused until `resume`; `store::held`).
    pub held_reason: Option<String>,
}

/// One week with everything the console's detail shows.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WeekDetail {
    pub id: WeekId,
    pub week_start: NaiveDate,
    pub week_end: NaiveDate,
    #[sqlx(try_from = "String")]
    pub status: WeekStatus,
    pub attempts: i32,
    pub execution_id: Option<ExecutionId>,
    pub amc_execution_id: Option<String>,
    pub row_count: Option<i64>,
    pub data_checksum: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The execution whose rows stay readable while the week is collected again.
    pub rerun_of: Option<ExecutionId>,
    /// When `keep_weeks` retention dropped the week's rows.
    pub rows_dropped_at: Option<DateTime<Utc>>,
    /// What the week serves (`store::Served`: the rows export returns); NULL when none.
    pub serves_execution_id: Option<ExecutionId>,
    pub serves_amc_execution_id: Option<String>,
    pub serves_row_count: Option<i64>,
    pub serves_data_checksum: Option<String>,
}

/// Collections (`{collections}`: the table, or one page of it) with their weeks counted by
/// status (statuses rendered from `WeekStatus`).
static OVERVIEW: LazyLock<String> = LazyLock::new(|| {
    let count = |statuses: &[WeekStatus]| {
        format!(
            "COALESCE(SUM(CASE WHEN k.status IN ({}) THEN 1 ELSE 0 END), 0)",
            status_list(statuses)
        )
    };
    format!(
        "SELECT c.id, w.name AS workflow, i.instance_id AS instance, c.status, \
         c.error_message, c.created_at, c.updated_at, c.keep_fresh, c.held_reason, COUNT(k.id) AS weeks_total, \
         {} AS completed, {} AS running, {} AS failed, {} AS pending, {} AS cancelled, \
         MIN(k.started_at) AS started_at, MAX(k.completed_at) AS last_completed_at \
         FROM {{collections}} c \
         JOIN workflows w ON w.id = c.workflow_id \
         JOIN amc_instances i ON i.id = c.instance_id \
         LEFT JOIN report_data_weeks k ON k.collection_id = c.id",
        count(&[WeekStatus::Completed]),
        count(&[
            WeekStatus::Submitting,
            WeekStatus::Running,
            WeekStatus::Downloading
        ]),
        count(&[WeekStatus::Failed]),
        count(&[WeekStatus::Pending]),
        count(&[WeekStatus::Cancelled]),
    )
});

const GROUPED: &str = "GROUP BY c.id, w.name, i.instance_id, c.status, c.error_message, \
    c.created_at, c.updated_at, c.keep_fresh, c.held_reason";

/// One page of collections (`$1` of them from `$2`), newest first.
static OVERVIEW_PAGE: LazyLock<String> = LazyLock::new(|| {
    let page = "(SELECT * FROM report_data_collections \
                ORDER BY created_at DESC, id LIMIT $1 OFFSET $2)";
    format!(
        "{} {GROUPED} ORDER BY c.created_at DESC, c.id",
        OVERVIEW.replace("{collections}", page)
    )
});

/// One collection (`$1`).
static OVERVIEW_ONE: LazyLock<String> = LazyLock::new(|| {
    let all = OVERVIEW.replace("{collections}", "report_data_collections");
    format!("{all} WHERE c.id = $1 {GROUPED}")
});

impl Store {
    /// One page of collections, newest first, with their weeks counted by status: only the
    /// page's collections are joined to their weeks, so a page costs the same with 10 or
    /// 10,000 collections.
    pub async fn collection_overviews(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<CollectionOverview>, StoreError> {
        Ok(with_pool!(self, |pool| sqlx::query_as::<
            _,
            CollectionOverview,
        >(&OVERVIEW_PAGE)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await)?)
    }

    /// How many collections there are (the console's page count).
    pub async fn collection_count(&self) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM report_data_collections";
        Ok(with_pool!(self, |pool| sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await)?)
    }

    /// One collection's overview, `None` when it does not exist.
    pub async fn collection_overview(
        &self,
        id: CollectionId,
    ) -> Result<Option<CollectionOverview>, StoreError> {
        Ok(with_pool!(self, |pool| sqlx::query_as::<
            _,
            CollectionOverview,
        >(&OVERVIEW_ONE)
        .bind(id)
        .fetch_optional(pool)
        .await)?)
    }

    /// A collection's weeks, oldest first, with every field the console shows.
    pub async fn week_details(&self, id: CollectionId) -> Result<Vec<WeekDetail>, StoreError> {
        let sql = format!(
            "SELECT id, week_start_date AS week_start, week_end_date AS week_end, status, \
             attempts, execution_id, amc_execution_id, row_count, data_checksum, \
             error_message, started_at, completed_at, updated_at, next_attempt_at, rerun_of, \
             rows_dropped_at, {} \
             FROM report_data_weeks WHERE collection_id = $1 ORDER BY week_start_date",
            super::lineage::served_columns()
        );
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, WeekDetail>(
            &sql
        )
        .bind(id)
        .fetch_all(pool)
        .await)?)
    }
}
