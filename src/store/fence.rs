//! Fencing: every write of the daemon names the lease (owner, epoch) it holds, so a process that
//! lost a collection to another cannot change it. (Why a write was refused is told by the
//! transition's own module in `transitions`.)

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

#[cfg(any(test, feature = "test-support"))]
use super::{with_pool, Store, StoreError};
#[cfg(any(test, feature = "test-support"))]
use crate::ids::CollectionId;

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
