//! The derivation of a collection's status from its weeks, used by the transitions
//! (`transitions`), the controls and the DbWriter; and failing a collection the supervisor gave
//! up on.

use std::sync::LazyLock;

use chrono::Utc;

use super::{status_list, with_pool, OutboxTx, Store, StoreError};
use crate::ids::CollectionId;
use crate::status::{CollectionStatus, WeekStatus};

/// Re-derives a collection's status from its weeks; `paused` and `cancelled` are user decisions
/// and stay. Completed only when every week is; failed once nothing is open and a week failed for
/// good. `$1` is the collection, `$2` the time.
pub(super) static REFRESH_COLLECTION: LazyLock<String> = LazyLock::new(|| {
    let kept = status_list(&[CollectionStatus::Paused, CollectionStatus::Cancelled]);
    format!(
        "{} WHERE id = $1 AND status NOT IN ({kept}) AND NOT given_up",
        refresh_collection_set("$1")
    )
});

/// `REFRESH_COLLECTION` for many collections at once (the ids of `ids_query`, `$1` its
/// parameter), only where no week is open any more (before that a completion cannot change the
/// collection's status).
pub(super) fn settle_collections_sql(ids_query: &str) -> String {
    let kept = status_list(&[CollectionStatus::Paused, CollectionStatus::Cancelled]);
    let open = status_list(&OPEN_WEEKS);
    format!(
        "{} WHERE id IN ({ids_query}) AND status NOT IN ({kept}) AND NOT given_up \
         AND NOT EXISTS (SELECT 1 FROM report_data_weeks o \
             WHERE o.collection_id = report_data_collections.id AND o.status IN ({open}))",
        refresh_collection_set("report_data_collections.id")
    )
}

/// Weeks still to be worked on (a failed week with a retry time is too, but it is told apart by
/// its `next_attempt_at`).
const OPEN_WEEKS: [WeekStatus; 4] = [
    WeekStatus::Pending,
    WeekStatus::Submitting,
    WeekStatus::Running,
    WeekStatus::Downloading,
];

/// The `UPDATE … SET` of a collection's derived status, over the collection id expression `id`
/// (a parameter, or a column when many collections are refreshed at once); `$2` is the time.
fn refresh_collection_set(id: &str) -> String {
    let [completed, failed, pending] = [
        WeekStatus::Completed,
        WeekStatus::Failed,
        WeekStatus::Pending,
    ]
    .map(|s| status_list(&[s]));
    let open = status_list(&OPEN_WEEKS);
    let [done, given_up, running, waiting] = [
        CollectionStatus::Completed,
        CollectionStatus::Failed,
        CollectionStatus::Running,
        CollectionStatus::Pending,
    ]
    .map(|s| status_list(&[s]));
    format!(
        "UPDATE report_data_collections SET \
        status = (SELECT CASE \
            WHEN COUNT(*) = SUM(CASE WHEN w.status = {completed} THEN 1 ELSE 0 END) THEN {done} \
            WHEN SUM(CASE WHEN w.status IN ({open}) \
                           OR (w.status = {failed} AND w.next_attempt_at IS NOT NULL) \
                     THEN 1 ELSE 0 END) = 0 THEN {given_up} \
            WHEN SUM(CASE WHEN w.status <> {pending} THEN 1 ELSE 0 END) > 0 THEN {running} \
            ELSE {waiting} END \
          FROM report_data_weeks w WHERE w.collection_id = {id}), \
        error_message = (SELECT CASE \
            WHEN SUM(CASE WHEN w.status = {failed} AND w.next_attempt_at IS NULL THEN 1 ELSE 0 END) > 0 \
            THEN CAST(SUM(CASE WHEN w.status = {failed} AND w.next_attempt_at IS NULL THEN 1 ELSE 0 END) AS TEXT) \
                 || ' of ' || CAST(COUNT(*) AS TEXT) || ' weeks failed' \
            ELSE NULL END \
          FROM report_data_weeks w WHERE w.collection_id = {id}), \
        updated_at = $2"
    )
}

impl Store {
    /// Re-derives a collection's status (after a restart or a user action).
    pub async fn refresh_collection_status(&self, id: CollectionId) -> Result<(), StoreError> {
        let now = Utc::now();
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(&REFRESH_COLLECTION)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            // Alerts: two concurrent group commits each see the other's week still
            // open, so the collection's end may be derived only here.
            tx.alert_collections(&[id], now, false).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Marks a collection failed with a reason (e.g. its actor crashed past the restart limit).
    pub async fn fail_collection(&self, id: CollectionId, reason: &str) -> Result<(), StoreError> {
        // Failed for good and unleased in one transaction, so no scan can claim it in between.
        // Only a collection still meant to run becomes `failed`: one the operator paused or
        // cancelled meanwhile, or that completed, keeps its status (it is still unleased).
        let fail = "UPDATE report_data_collections SET status = $4, error_message = $2, \
                    given_up = TRUE, updated_at = $3 WHERE id = $1 AND status IN ($5, $6)";
        let release = "UPDATE report_data_collections SET lease_owner = NULL, \
                       lease_expires_at = NULL WHERE id = $1";
        let now = Utc::now();
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let failed = sqlx::query(fail)
                .bind(id)
                .bind(reason)
                .bind(now)
                .bind(CollectionStatus::Failed.as_str())
                .bind(CollectionStatus::Pending.as_str())
                .bind(CollectionStatus::Running.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(release).bind(id).execute(&mut *tx).await?;
            if failed == 1 {
                // `collection.failed`, in the same transaction.
                tx.alert_collections(&[id], now, false).await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }
}
