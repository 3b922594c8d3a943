//! Creating collections (with all their weeks, in one transaction) and reading them back.

use super::model::{Collection, CollectionSnapshot, CollectionSummary, Execution, Week};
use super::{with_pool, Store, StoreError};
use crate::ids::{CollectionId, InstanceId, WeekId, WorkflowId};
use crate::status::{CollectionStatus, WeekStatus};
use crate::weeks;

/// A collection about to be created.
#[derive(Debug, Clone)]
pub struct NewCollection {
    pub workflow_id: WorkflowId,
    pub instance_id: InstanceId,
    pub week_start: weeks::WeekStart,
    pub time_zone: String,
    /// Oldest first; must not be empty.
    pub weeks: Vec<weeks::Week>,
    /// Grow by each new week once it is due (`None`: a plain backfill).
    pub keep_fresh: Option<KeepFresh>,
    /// Query parameters (`--param`), stored in their canonical JSON.
    pub parameters: crate::query_params::QueryParams,
}

/// A keep-fresh collection's retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepFresh {
    /// Keep only the newest N completed weeks' rows (`None`: keep every week's rows).
    pub keep_weeks: Option<u32>,
}

const COLLECTION_COLUMNS: &str =
    "id, workflow_id, instance_id, target_weeks, start_date, end_date, \
     week_start_day, time_zone, status, error_message, created_at, updated_at, keep_fresh, keep_weeks, held_reason, parameters";
pub(super) const WEEK_COLUMNS: &str = "id, collection_id, week_start_date, week_end_date, status, \
     execution_id, amc_execution_id, row_count, data_checksum, error_message, attempts, next_attempt_at, rows_dropped_at";

impl Store {
    pub async fn collection(&self, id: CollectionId) -> Result<Option<Collection>, StoreError> {
        let sql = format!("SELECT {COLLECTION_COLUMNS} FROM report_data_collections WHERE id = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, Collection>(
            &sql
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?)
    }

    /// The weeks of a collection, oldest first.
    pub async fn weeks_of(&self, id: CollectionId) -> Result<Vec<Week>, StoreError> {
        let sql = format!(
            "SELECT {WEEK_COLUMNS} FROM report_data_weeks WHERE collection_id = $1 \
             ORDER BY week_start_date"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, Week>(&sql)
            .bind(id)
            .fetch_all(pool)
            .await)?)
    }

    /// A week's current status (cheap check made between polls).
    pub async fn week_status(&self, id: WeekId) -> Result<crate::status::WeekStatus, StoreError> {
        let sql = "SELECT status FROM report_data_weeks WHERE id = $1";
        let status: String = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(pool)
            .await)?;
        status
            .parse()
            .map_err(|e: crate::status::UnknownStatus| StoreError::Corrupt(e.to_string()))
    }

    /// A week and the execution its `execution_id` points at (if any).
    pub async fn week_with_execution(
        &self,
        id: WeekId,
    ) -> Result<(Week, Option<Execution>), StoreError> {
        let sql = format!("SELECT {WEEK_COLUMNS} FROM report_data_weeks WHERE id = $1");
        let week = with_pool!(self, |pool| sqlx::query_as::<_, Week>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| StoreError::NotFound(format!("week {id} not found")))?;
        let Some(execution_id) = week.execution_id else {
            return Ok((week, None));
        };
        let sql =
            "SELECT id, week_id, amc_execution_id, status, status_reason, created_at, attempt \
                   FROM workflow_executions WHERE id = $1";
        let execution = with_pool!(self, |pool| sqlx::query_as::<_, Execution>(sql)
            .bind(execution_id)
            .fetch_optional(pool)
            .await)?;
        Ok((week, execution))
    }

    /// Everything a collection actor rebuilds its state from.
    pub async fn snapshot(&self, id: CollectionId) -> Result<CollectionSnapshot, StoreError> {
        let collection = self
            .collection(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("collection {id} not found")))?;
        let instance = self.instance_by_id(collection.instance_id).await?;
        let workflow = self.workflow_by_id(collection.workflow_id).await?;
        let weeks = self.weeks_of(id).await?;
        Ok(CollectionSnapshot {
            collection,
            instance,
            workflow,
            weeks,
        })
    }

    /// Collections with work left that the daemon should run.
    pub async fn runnable_collections(&self) -> Result<Vec<CollectionId>, StoreError> {
        let sql = "SELECT id FROM report_data_collections WHERE status IN ($1, $2) \
                   ORDER BY created_at";
        Ok(with_pool!(self, |pool| sqlx::query_scalar::<
            _,
            CollectionId,
        >(sql)
        .bind(CollectionStatus::Pending.as_str())
        .bind(CollectionStatus::Running.as_str())
        .fetch_all(pool)
        .await)?)
    }

    /// All collections, newest first, with week counts.
    pub async fn list_collections(&self) -> Result<Vec<CollectionSummary>, StoreError> {
        let sql = "SELECT c.id, c.status, w.name AS workflow, i.instance_id AS instance, \
                   c.start_date, c.end_date, \
                   (SELECT COUNT(*) FROM report_data_weeks k WHERE k.collection_id = c.id) AS weeks_total, \
                   (SELECT COUNT(*) FROM report_data_weeks k WHERE k.collection_id = c.id \
                        AND k.status = $1) AS weeks_completed, \
                   (SELECT COUNT(*) FROM report_data_weeks k WHERE k.collection_id = c.id \
                        AND k.status = $2) AS weeks_failed \
                   FROM report_data_collections c \
                   JOIN workflows w ON w.id = c.workflow_id \
                   JOIN amc_instances i ON i.id = c.instance_id \
                   ORDER BY c.created_at DESC, c.id";
        Ok(with_pool!(self, |pool| sqlx::query_as::<
            _,
            CollectionSummary,
        >(sql)
        .bind(WeekStatus::Completed.as_str())
        .bind(WeekStatus::Failed.as_str())
        .fetch_all(pool)
        .await)?)
    }
}

/// Shortest collection id prefix commands accept.
pub const MIN_ID_PREFIX: usize = 8;

/// Whether `text` can name a collection: a whole UUID, or at least `MIN_ID_PREFIX` characters of
/// one as printed (hex digits and `-`).
pub fn is_collection_ref(text: &str) -> bool {
    text.parse::<CollectionId>().is_ok()
        || (text.len() >= MIN_ID_PREFIX
            && text.len() <= 36
            && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
}

impl Store {
    /// The collection a command names: a whole id, or a unique prefix of at least
    /// `MIN_ID_PREFIX` characters of the id as printed (any case). `NotFound` when nothing
    /// matches, `Ambiguous` when more than one collection does.
    pub async fn resolve_collection(&self, text: &str) -> Result<CollectionId, StoreError> {
        let text = text.trim();
        if !is_collection_ref(text) {
            return Err(StoreError::NotFound(format!(
                "`{text}` is not a collection UUID or a prefix of one (at least {MIN_ID_PREFIX} characters)"
            )));
        }
        let prefix = text.to_ascii_lowercase();
        let column = match self {
            Store::Postgres(_) => "CAST(id AS TEXT)",
            Store::Sqlite(_) => "id",
        };
        // The prefix holds only hex digits and `-`: nothing LIKE would read as a pattern.
        let sql = format!(
            "SELECT id FROM report_data_collections WHERE {column} LIKE $1 ORDER BY id LIMIT 2"
        );
        let found: Vec<CollectionId> = with_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(format!("{prefix}%"))
            .fetch_all(pool)
            .await)?;
        match found.as_slice() {
            [id] => Ok(*id),
            [] => Err(StoreError::NotFound(format!("collection {text} not found"))),
            _ => Err(StoreError::Ambiguous(format!(
                "collection id prefix `{text}` is ambiguous: give more characters"
            ))),
        }
    }
}
