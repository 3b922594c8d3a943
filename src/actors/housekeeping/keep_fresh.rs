//! Keep-fresh collections, at every housekeeping round: adds the weeks that became due (complete
//! and past the data lag in the collection's own zone). The store decides what is due; the DbWriter writes.
//! Adding is idempotent and refused for a paused or cancelled collection in the same statement,
//! so any process may run it and a pause between the read and the write wins. (`keep_weeks`
//! retention is the DbWriter's, when a collection's actor finishes: that is when weeks complete.)

use actix::Addr;
use chrono::{DateTime, Utc};

use crate::actors::db_writer::{AddDueWeeks, DbWriter};
use crate::store::{today_in, DueWeeks, Store};
use crate::weeks::WeekRules;

/// Adds the weeks that became due; returns how many (Housekeeping tells the Supervisor, which
/// claims them or tells the running actor).
pub(super) async fn add_due_weeks(
    store: &Store,
    db: &Addr<DbWriter>,
    rules: WeekRules,
    now: DateTime<Utc>,
) -> u64 {
    let collections = match store.keep_fresh_collections().await {
        Ok(collections) => collections,
        Err(error) => {
            tracing::warn!(%error, "Keep-fresh collections cannot be read; will retry.");
            return 0;
        }
    };
    let due: Vec<DueWeeks> = collections
        .iter()
        .filter_map(|collection| {
            let today = today_in(&collection.time_zone, now)?;
            let weeks = collection.due_weeks(today, rules);
            (!weeks.is_empty()).then_some(DueWeeks {
                collection_id: collection.id,
                weeks,
            })
        })
        .collect();
    if due.is_empty() {
        return 0;
    }
    match db.send(AddDueWeeks { due, now }).await {
        Ok(Ok(added)) => added,
        Ok(Err(error)) => {
            tracing::warn!(%error, "Due weeks could not be added; will retry.");
            0
        }
        Err(error) => {
            tracing::warn!(%error, "Database writer unavailable while adding due weeks.");
            0
        }
    }
}
