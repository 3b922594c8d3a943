//! Creating collections as the CLI does (one, or a fleet: one workflow on several instances, in
//! one transaction, grouped by `fleet_id`), completing at creation the weeks another collection
//! already stored for the same key (`reuse.rs`), and reading a fleet's members back.

use chrono::Utc;

use super::collections::NewCollection;
use super::progress::REFRESH_COLLECTION;
use super::reuse::{self, ReuseKey};
use super::tx::{on_tx, Tx};
use super::{with_pool, OutboxTx, Store, StoreError};
use crate::ids::{CollectionId, FleetId, InstanceId, WeekId, WorkflowId};
use crate::status::{CollectionStatus, WeekStatus};

/// A collection just created: its id and how many of its weeks were completed from stored
/// executions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: CollectionId,
    pub instance_id: InstanceId,
    pub weeks: usize,
    pub reused: usize,
}

/// A collection of a fleet, with the AMC instance id it runs on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FleetMember {
    pub id: CollectionId,
    /// AMC's instance id (`amcXXXXXXXX`).
    pub instance: String,
    pub workflow_id: WorkflowId,
}

const INSERT_COLLECTION: &str = "INSERT INTO report_data_collections \
    (id, workflow_id, instance_id, target_weeks, start_date, end_date, week_start_day, \
     time_zone, status, created_at, updated_at, keep_fresh, keep_weeks, fleet_id, parameters) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $12, $9, $9, $10, $11, $13, $14)";
const INSERT_WEEK: &str = "INSERT INTO report_data_weeks \
    (id, collection_id, week_start_date, week_end_date, status, attempts, updated_at) \
    VALUES ($1, $2, $3, $4, $6, 0, $5)";

impl Store {
    /// Creates the collection and all its weeks atomically, as given (no week is reused: the
    /// CLI creates through `create_with_reuse`).
    pub async fn create_collection(&self, new: &NewCollection) -> Result<CollectionId, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let created = insert_one(&mut tx, new, None, false).await?;
        tx.commit().await?;
        Ok(created.id)
    }

    /// Creates every collection of `news` and all their weeks in one transaction, under `fleet`
    /// when given, and completes each week another collection of the same key stored already
    /// (without AMC). Nothing is written when any insert fails.
    pub async fn create_with_reuse(
        &self,
        news: &[NewCollection],
        fleet: Option<FleetId>,
    ) -> Result<Vec<Created>, StoreError> {
        let mut tx = Tx::begin(self).await?;
        let mut created = Vec::with_capacity(news.len());
        for new in news {
            created.push(insert_one(&mut tx, new, fleet, true).await?);
        }
        tx.commit().await?;
        Ok(created)
    }

    /// The collections of a fleet, by AMC instance id.
    pub async fn fleet_members(&self, fleet: FleetId) -> Result<Vec<FleetMember>, StoreError> {
        let sql = "SELECT c.id, i.instance_id AS instance, c.workflow_id \
                   FROM report_data_collections c JOIN amc_instances i ON i.id = c.instance_id \
                   WHERE c.fleet_id = $1 ORDER BY i.instance_id, c.id";
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, FleetMember>(
            sql
        )
        .bind(fleet)
        .fetch_all(pool)
        .await)?)
    }

    /// The fleet a command names: a whole id, or a unique prefix of at least
    /// `MIN_ID_PREFIX` characters. `NotFound` / `Ambiguous` otherwise.
    pub async fn resolve_fleet(&self, text: &str) -> Result<FleetId, StoreError> {
        let text = text.trim();
        if !super::is_collection_ref(text) {
            return Err(StoreError::NotFound(format!(
                "`{text}` is not a fleet UUID or a prefix of one (at least {} characters)",
                super::MIN_ID_PREFIX
            )));
        }
        let column = match self {
            Store::Postgres(_) => "CAST(fleet_id AS TEXT)",
            Store::Sqlite(_) => "fleet_id",
        };
        // The prefix holds only hex digits and `-`: nothing LIKE would read as a pattern.
        let sql = format!(
            "SELECT DISTINCT fleet_id FROM report_data_collections \
             WHERE fleet_id IS NOT NULL AND {column} LIKE $1 ORDER BY fleet_id LIMIT 2"
        );
        let found: Vec<FleetId> = with_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(format!("{}%", text.to_ascii_lowercase()))
            .fetch_all(pool)
            .await)?;
        match found.as_slice() {
            [id] => Ok(*id),
            [] => Err(StoreError::NotFound(format!("fleet {text} not found"))),
            _ => Err(StoreError::Ambiguous(format!(
                "fleet id prefix `{text}` is ambiguous: give more characters"
            ))),
        }
    }
}

/// Inserts one collection and its weeks, then (with `reuse`) completes the weeks stored already.
pub(super) async fn insert_one(
    tx: &mut Tx,
    new: &NewCollection,
    fleet: Option<FleetId>,
    reuse: bool,
) -> Result<Created, StoreError> {
    let (Some(first), Some(last)) = (new.weeks.first(), new.weeks.last()) else {
        return Err(StoreError::InvalidTransition(
            "a collection needs at least one week".into(),
        ));
    };
    let id = CollectionId::new();
    let now = Utc::now();
    let target_weeks = i32::try_from(new.weeks.len())
        .map_err(|_| StoreError::InvalidTransition("too many weeks".into()))?;
    let keep_weeks = new
        .keep_fresh
        .and_then(|keep| keep.keep_weeks)
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    on_tx!(tx, |conn| sqlx::query(INSERT_COLLECTION)
        .bind(id)
        .bind(new.workflow_id)
        .bind(new.instance_id)
        .bind(target_weeks)
        .bind(first.start)
        .bind(last.end)
        .bind(new.week_start.as_str())
        .bind(&new.time_zone)
        .bind(now)
        .bind(new.keep_fresh.is_some())
        .bind(keep_weeks)
        .bind(CollectionStatus::Pending.as_str())
        .bind(fleet)
        .bind(new.parameters.to_canonical_json())
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    let mut week_ids = Vec::with_capacity(new.weeks.len());
    for week in &new.weeks {
        let week_id = WeekId::new();
        on_tx!(tx, |conn| sqlx::query(INSERT_WEEK)
            .bind(week_id)
            .bind(id)
            .bind(week.start)
            .bind(week.end)
            .bind(now)
            .bind(WeekStatus::Pending.as_str())
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
        week_ids.push(week_id);
    }
    let reused = match reuse {
        true => reuse_stored(tx, new, id, &week_ids, now).await?,
        false => 0,
    };
    Ok(Created {
        id,
        instance_id: new.instance_id,
        weeks: new.weeks.len(),
        reused,
    })
}

/// Completes the new weeks `week_ids` of collection `id` that another collection of the same key
/// stored already; returns how many.
async fn reuse_stored(
    tx: &mut Tx,
    new: &NewCollection,
    id: CollectionId,
    week_ids: &[WeekId],
    now: chrono::DateTime<Utc>,
) -> Result<usize, StoreError> {
    let key = ReuseKey {
        workflow_id: new.workflow_id,
        instance_id: new.instance_id,
        time_zone: new.time_zone.clone(),
        parameters: new.parameters.to_canonical_json(),
    };
    let windows: Vec<_> = new.weeks.iter().map(|w| (w.start, w.end)).collect();
    let stored = reuse::stored_for(tx, &key, id, &windows).await?;
    let mut reused = Vec::new();
    for (week_id, source) in week_ids.iter().zip(&stored) {
        if let Some(source) = source {
            if reuse::complete_from(tx, *week_id, id, source, now).await? {
                reused.push(*week_id);
            }
        }
    }
    if !reused.is_empty() {
        super::typed::fill_reused(tx, new.workflow_id, &reused).await?;
        // Its status is derived like any collection's (completed when every week was stored
        // already, with its `collection.completed` alert in this commit).
        on_tx!(tx, |conn| sqlx::query(&REFRESH_COLLECTION)
            .bind(id)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
        on_tx!(tx, |conn| conn.alert_collections(&[id], now, false).await)?;
    }
    Ok(reused.len())
}
