//! Telling running children of weeks given back to them: `retry-failed`, `rerun` and keep-fresh
//! change the database from another process (or the console), and a collection's actor only
//! reads its weeks when it starts. Without this, a failed week retried while its collection's
//! other weeks still run on AMC would wait for all of them (hours on the real AMC).

use super::Supervisor;
use crate::actors::collection::ReloadWeeks;
use crate::ids::CollectionId;
use crate::store::{Store, REOPENED_LOOKBACK};

/// The collections this process holds that were given work recently, with their stamp; nothing
/// when the read fails (the next scan asks again, and nothing is lost meanwhile: the weeks wait
/// in the database).
pub(super) async fn given_work(store: &Store, owner: &str) -> Vec<(CollectionId, i64)> {
    let since = chrono::Utc::now() - REOPENED_LOOKBACK;
    match store
        .collections_given_work(owner, since.timestamp_micros())
        .await
    {
        Ok(given) => given,
        Err(error) => {
            tracing::warn!(%error, "Reading collections given work failed; will retry.");
            Vec::new()
        }
    }
}

impl Supervisor {
    /// Each running child given work since it was last told looks at its weeks again. A child
    /// that is being (re)started reads its weeks anyway, so it is only marked as told.
    pub(super) fn tell_given_work(&mut self, given: Vec<(CollectionId, i64)>) {
        for (id, stamp) in given {
            let Some(child) = self.children.get_mut(&id) else {
                continue;
            };
            if child.work_seen == Some(stamp) {
                continue;
            }
            child.work_seen = Some(stamp);
            if let Some(addr) = &child.addr {
                addr.do_send(ReloadWeeks);
            }
        }
    }
}
