//! Keep-fresh collections, at every scan: adds the weeks that became due (complete and past the
//! data lag in the collection's own zone) and drops the rows of completed weeks beyond
//! `keep_weeks`. The store decides what is due; the DbWriter writes. Adding is idempotent and
//! refused for a paused or cancelled collection in the same statement, so any process may run it
//! and a pause between the read and the write wins.

use actix::Addr;
use chrono::{DateTime, Utc};

use crate::actors::db_writer::{AddDueWeeks, DbWriter, DropRowsBeyondKeep};
use crate::store::{today_in, DueWeeks, Store};
use crate::weeks::WeekRules;

/// Runs one keep-fresh pass; returns how many weeks were added (the caller claims them at once).
pub(super) async fn freshen(
    store: &Store,
    db: &Addr<DbWriter>,
    rules: WeekRules,
    now: DateTime<Utc>,
) -> u64 {
    let added = add_due_weeks(store, db, rules, now).await;
    drop_rows_beyond_keep(store, db, now).await;
    added
}

async fn add_due_weeks(
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

async fn drop_rows_beyond_keep(store: &Store, db: &Addr<DbWriter>, now: DateTime<Utc>) {
    let week_ids = match store.weeks_beyond_keep(None).await {
        Ok(ids) if ids.is_empty() => return,
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "Weeks beyond keep_weeks cannot be read; will retry.");
            return;
        }
    };
    match db.send(DropRowsBeyondKeep { week_ids, now }).await {
        Ok(Ok(rows)) => tracing::info!(rows, "Dropped the rows of weeks beyond keep_weeks."),
        Ok(Err(error)) => {
            tracing::warn!(%error, "Rows beyond keep_weeks could not be dropped; will retry.")
        }
        Err(error) => tracing::warn!(%error, "Database writer unavailable while dropping rows."),
    }
}
