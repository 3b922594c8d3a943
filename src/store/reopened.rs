//! Work given back to collections whose actors are running: weeks reopened by `retry-failed` or
//! `rerun`, or added by keep-fresh, while the collection's actor is still busy with others.
//!
//! Triggers on `report_data_weeks` stamp `report_data_collections.work_added_us` (the database's
//! clock, in microseconds) whenever a week is inserted or goes from `failed`/`completed` back to
//! `pending`, whoever writes it; the Supervisor reads the recent stamps of what it holds at each
//! scan and tells those actors to look at their weeks again.

use super::{with_pool, Store, StoreError};
use crate::ids::CollectionId;

/// How far back a scan looks for stamps. Far longer than any transaction that reopens weeks
/// stays open (a stamp is written before its commit), so none is missed; stamps seen before are
/// told apart by their value.
pub const REOPENED_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(300);

impl Store {
    /// Collections held by `owner` that were given work since `since_us` (microseconds since the
    /// epoch), with their stamp.
    pub async fn collections_given_work(
        &self,
        owner: &str,
        since_us: i64,
    ) -> Result<Vec<(CollectionId, i64)>, StoreError> {
        let sql = "SELECT id, work_added_us FROM report_data_collections \
                   WHERE lease_owner = $1 AND work_added_us > $2";
        Ok(with_pool!(self, |pool| sqlx::query_as::<
            _,
            (CollectionId, i64),
        >(sql)
        .bind(owner)
        .bind(since_us)
        .fetch_all(pool)
        .await)?)
    }
}
