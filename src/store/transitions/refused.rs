//! Why the state machine refused a transition (`Refused`), told apart from failures of the
//! database, and the two checks every kind's `why_refused` shares: whether the writer's lease
//! still holds, and otherwise that the week moved on.

use chrono::{DateTime, Utc};

use crate::ids::CollectionId;
use crate::store::fence::Fence;
use crate::store::{with_pool, Store};

/// Why the state machine did not apply a transition: an expected answer, not a failure of the
/// database. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Another process took the collection over; this writer must stop.
    #[error("lease of collection {collection_id} lost")]
    LeaseLost { collection_id: CollectionId },
    /// The week (or its collection) is no longer in a state the transition leaves: it moved on
    /// (cancelled, paused, or another attempt), or the message is a repeat.
    #[error("{0}")]
    Stale(String),
    /// The instance already has its maximum of executions in flight (over every process).
    #[error("instance has {in_flight} executions in flight")]
    SlotsFull { in_flight: i64 },
    /// The instance used its daily limit of executions (over every process); the next create is
    /// allowed at `until`.
    #[error("instance reached its limit of {limit} executions per window; next at {until}")]
    QuotaFull { limit: i64, until: DateTime<Utc> },
}

/// What became of one transition the database took part in: applied, or refused.
pub type Verdict = Result<(), Refused>;

/// Whether the fence names a lease the collection no longer has.
pub(super) async fn lease_lost(store: &Store, collection_id: CollectionId, fence: &Fence) -> bool {
    let sql = "SELECT COUNT(*) FROM report_data_collections \
               WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3";
    let held: Result<i64, sqlx::Error> = with_pool!(store, |pool| sqlx::query_scalar(sql)
        .bind(collection_id)
        .bind(&fence.owner)
        .bind(fence.epoch)
        .fetch_one(pool)
        .await);
    matches!(held, Ok(0))
}

/// A refusal of a transition that only the state or the lease can refuse: `LeaseLost` when the
/// fence no longer holds, otherwise `Stale` (`what`).
pub(super) async fn stale_or_lease_lost(
    store: &Store,
    collection_id: CollectionId,
    fence: &Fence,
    what: String,
) -> Refused {
    if lease_lost(store, collection_id, fence).await {
        Refused::LeaseLost { collection_id }
    } else {
        Refused::Stale(what)
    }
}
