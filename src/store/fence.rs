//! Fencing: every write of the daemon names the lease (owner, epoch) it holds, so a process that
//! lost a collection to another cannot change it; and telling apart why a write was refused.

use super::progress::SubmissionIntent;
use super::{with_pool, Store, StoreError};
use crate::ids::CollectionId;

/// Proof that the writer still holds the collection's lease: every write of the daemon names the
/// lease owner and epoch it got when it claimed the collection, and a write whose lease was lost
/// (taken over by another process) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub(super) owner: String,
    pub(super) epoch: i64,
}

impl Fence {
    pub fn lease(owner: impl Into<String>, epoch: i64) -> Self {
        Self {
            owner: owner.into(),
            epoch,
        }
    }
}

impl Store {
    /// Tells apart the reasons an intent was refused (read after the fact, for the caller).
    pub(super) async fn why_intent_refused(&self, intent: &SubmissionIntent) -> StoreError {
        let lost = self.lease_lost(intent.collection_id, &intent.fence).await;
        if lost {
            return StoreError::LeaseLost(format!(
                "lease of collection {} lost",
                intent.collection_id
            ));
        }
        match self.week_with_execution(intent.week_id).await {
            Ok((week, _))
                if matches!(
                    week.status,
                    crate::status::WeekStatus::Pending | crate::status::WeekStatus::Failed
                ) =>
            {
                match self.collection(intent.collection_id).await {
                    Ok(Some(c))
                        if matches!(
                            c.status,
                            crate::status::CollectionStatus::Pending
                                | crate::status::CollectionStatus::Running
                        ) =>
                    {
                        match self.quota_use(intent.instance_id, intent.quota).await {
                            Ok(quota) if quota.waiting_until.is_some() => {
                                return StoreError::QuotaFull {
                                    limit: quota.limit,
                                    until: quota.waiting_until.unwrap_or_else(chrono::Utc::now),
                                }
                            }
                            Err(error) => return error,
                            Ok(_) => {}
                        }
                        StoreError::SlotsFull(format!(
                            "instance has {} executions in flight",
                            intent.max_in_flight
                        ))
                    }
                    _ => StoreError::InvalidTransition(format!(
                        "collection {} is paused or closed",
                        intent.collection_id
                    )),
                }
            }
            Ok((week, _)) => StoreError::InvalidTransition(format!(
                "week {} is {}, not pending or failed",
                intent.week_id, week.status
            )),
            Err(error) => error,
        }
    }

    /// Whether the fence names a lease the collection no longer has.
    async fn lease_lost(&self, collection_id: CollectionId, fence: &Fence) -> bool {
        let sql = "SELECT COUNT(*) FROM report_data_collections \
                   WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3";
        let held: Result<i64, sqlx::Error> = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(collection_id)
            .bind(&fence.owner)
            .bind(fence.epoch)
            .fetch_one(pool)
            .await);
        matches!(held, Ok(0))
    }

    /// Turns "0 rows changed" into the precise error.
    pub(super) async fn refused(
        &self,
        collection_id: CollectionId,
        fence: &Fence,
        what: String,
    ) -> StoreError {
        if self.lease_lost(collection_id, fence).await {
            StoreError::LeaseLost(format!("lease of collection {collection_id} lost"))
        } else {
            StoreError::InvalidTransition(what)
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Store {
    /// Tests only: a fence that passes, for seeding weeks through the state machine without a
    /// daemon. It names whoever holds the collection's lease now; a collection nobody holds is
    /// taken by `test-support` with a lease already expired, so a daemon started later still
    /// claims it.
    pub async fn test_fence(&self, collection_id: CollectionId) -> Result<Fence, StoreError> {
        let sql = "UPDATE report_data_collections SET lease_owner = COALESCE(lease_owner, $2), \
                   lease_expires_at = CASE WHEN lease_owner IS NULL THEN $3 \
                   ELSE lease_expires_at END \
                   WHERE id = $1 RETURNING lease_owner, lease_epoch";
        let expired = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let (owner, epoch): (String, i64) = with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(collection_id)
            .bind("test-support")
            .bind(expired)
            .fetch_one(pool)
            .await)?;
        Ok(Fence::lease(owner, epoch))
    }
}
