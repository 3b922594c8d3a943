//! Running the real actor tree in-process against a fake AMC (simulator or wiremock) and a real
//! database, and reading back what it stored.

use std::time::Duration;

use amc_collector::amc::AmcClient;
use amc_collector::amc::FileEvent;
use amc_collector::app::App;
use amc_collector::config::Settings;
use amc_collector::ids::{CollectionId, ExecutionId};
use amc_collector::ingest::ingest;
use amc_collector::query_params::QueryParams;
use amc_collector::store::model::{Instance, Week, Workflow};
use amc_collector::store::{
    CompletedWeek, Downloading, Fence, NewCollection, NewInstance, StagingTarget, Store,
    SubmissionIntent, Submitted, Transition, WorkflowSource,
};
use amc_collector::weeks::{generate_weeks, WeekRequest, WeekRules, WeekStart};
use secrecy::SecretString;
use sqlx::Row;

use super::{Backend, TestDb};

pub const INSTANCE_ID: &str = "amcpipeline1";
pub const CLIENT_ID: &str = "amzn1.application-oa2-client.sim";
pub const CLIENT_SECRET: &str = "sim-secret";
pub const REFRESH_TOKEN: &str = "Atzr|sim-refresh";

/// A database holding one instance, one workflow and one collection of `weeks` weeks.
pub struct Fixture {
    pub db: TestDb,
    pub store: Store,
    pub instance: Instance,
    pub workflow: Workflow,
    pub collection_id: CollectionId,
    /// The lease the fixture's writes go under (`Store::test_fence`).
    pub fence: Fence,
}

pub async fn fixture(backend: Backend, weeks: i64, source: WorkflowSource) -> Fixture {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let instance = store
        .insert_instance(&NewInstance {
            instance_id: INSTANCE_ID.into(),
            instance_name: "pipeline".into(),
            region: "na".into(),
            advertiser_id: "ENTITYPIPE".into(),
            marketplace_id: "ATVPDKIKX0DER".into(),
        })
        .await
        .unwrap();
    let workflow = store.insert_workflow("weekly", &source).await.unwrap();
    let collection_id = add_collection(&store, &instance, &workflow, weeks, "UTC").await;
    let fence = store.test_fence(collection_id).await.unwrap();
    Fixture {
        db,
        store,
        instance,
        workflow,
        collection_id,
        fence,
    }
}

pub async fn add_collection(
    store: &Store,
    instance: &Instance,
    workflow: &Workflow,
    weeks: i64,
    time_zone: &str,
) -> CollectionId {
    let none = QueryParams::default();
    add_collection_with(store, instance, workflow, weeks, time_zone, &none).await
}

/// `add_collection` with query parameters.
pub async fn add_collection_with(
    store: &Store,
    instance: &Instance,
    workflow: &Workflow,
    weeks: i64,
    time_zone: &str,
    parameters: &QueryParams,
) -> CollectionId {
    let today = chrono::Utc::now().date_naive();
    let weeks = generate_weeks(
        today,
        time_zone,
        &WeekRequest {
            weeks,
            end_date: None,
            week_start: WeekStart::Monday,
        },
        WeekRules {
            data_lag_days: 14,
            retention_days: 395,
        },
    )
    .unwrap();
    store
        .create_collection(&NewCollection {
            workflow_id: workflow.id,
            instance_id: instance.id,
            week_start: WeekStart::Monday,
            time_zone: time_zone.into(),
            weeks,
            keep_fresh: None,
            parameters: parameters.clone(),
        })
        .await
        .unwrap()
}

/// Fast settings pointed at a fake AMC on loopback.
pub fn settings(db_url: &str, base_url: &str, token_url: &str) -> Settings {
    let mut settings = Settings::default();
    settings.database.url = db_url.into();
    settings.amc.base_url = Some(base_url.into());
    settings.amc.token_url = token_url.into();
    settings.amc.client_id = Some(CLIENT_ID.into());
    settings.amc.client_secret = Some(SecretString::from(CLIENT_SECRET));
    settings.amc.refresh_token = Some(SecretString::from(REFRESH_TOKEN));
    settings.amc.poll_interval_ms = 20;
    settings.amc.request_timeout_ms = 5_000;
    settings.amc.max_retries = 6;
    settings.amc.backoff_base_ms = 5;
    settings.amc.backoff_max_ms = 50;
    settings.amc.max_requests_per_second = 0;
    // Tests of the daily limit set it; the others run more than a day's worth of weeks.
    settings.amc.max_creates_per_day = 0;
    settings.retry.backoff_base_ms = 30;
    settings.scheduler.scan_interval_ms = 50;
    settings.scheduler.restart_backoff_base_ms = 20;
    // `App::stop`'s grace; nothing in these tests needs longer.
    settings.scheduler.shutdown_deadline_seconds = 5;
    settings
}

/// Runs the actor tree until it is idle, then shuts it down. Panics after `limit`.
pub async fn run_until_idle(store: &Store, settings: &Settings, limit: Duration) {
    let app = App::build(settings).store(store.clone());
    finish(app.exit_when_idle(true).start().await.unwrap(), limit).await;
}

/// `run_until_idle` with the AMC client given (to read its state afterwards).
pub async fn run_until_idle_with(
    store: &Store,
    client: AmcClient,
    settings: &Settings,
    limit: Duration,
) {
    let app = App::build(settings).store(store.clone()).client(client);
    finish(app.exit_when_idle(true).start().await.unwrap(), limit).await;
}

/// Waits until the app is idle, then stops it. Panics after `limit`.
pub async fn finish(mut app: App, limit: Duration) {
    tokio::time::timeout(limit, &mut app.idle)
        .await
        .expect("collections did not finish in time")
        .expect("idle signal");
    app.stop().await.unwrap();
}

/// Weeks of a collection, oldest first.
pub async fn weeks(store: &Store, id: CollectionId) -> Vec<Week> {
    store.weeks_of(id).await.unwrap()
}

/// Asserts on the tables (not the JSON) that every completed week is traceable:
/// week.execution_id is an existing workflow_executions row of that week, holding the same AMC id.
pub async fn assert_completed_weeks_are_traceable(store: &Store, id: CollectionId) {
    let rows = raw_week_links(store, id).await;
    for (status, execution_id, amc_id, linked_amc_id, linked_week_matches) in rows {
        if status != "completed" {
            continue;
        }
        let execution_id = execution_id.expect("completed week without execution_id");
        let amc_id = amc_id.expect("completed week without amc_execution_id");
        assert_ne!(
            execution_id, amc_id,
            "execution_id must be the internal UUID"
        );
        assert_eq!(linked_amc_id.as_deref(), Some(amc_id.as_str()));
        assert!(linked_week_matches, "execution row belongs to another week");
    }
}

async fn raw_week_links(
    store: &Store,
    id: CollectionId,
) -> Vec<(String, Option<String>, Option<String>, Option<String>, bool)> {
    let sql = "SELECT w.status, CAST(w.execution_id AS TEXT) AS execution_id, w.amc_execution_id, \
               e.amc_execution_id AS linked_amc_id, \
               CASE WHEN e.week_id = w.id THEN 1 ELSE 0 END AS same_week \
               FROM report_data_weeks w LEFT JOIN workflow_executions e ON e.id = w.execution_id \
               WHERE w.collection_id = $1 ORDER BY w.week_start_date";
    macro_rules! read {
        ($pool:expr) => {{
            let rows = sqlx::query(sql).bind(id).fetch_all($pool).await.unwrap();
            rows.iter()
                .map(|row| {
                    let same: i32 = row.try_get("same_week").unwrap();
                    (
                        row.try_get("status").unwrap(),
                        row.try_get("execution_id").unwrap(),
                        row.try_get("amc_execution_id").unwrap(),
                        row.try_get("linked_amc_id").unwrap(),
                        same == 1,
                    )
                })
                .collect()
        }};
    }
    match store {
        Store::Postgres(pool) => read!(pool),
        Store::Sqlite(pool) => read!(pool),
    }
}

/// Result rows stored for a week.
pub async fn stored_row_count(store: &Store, week: &Week) -> i64 {
    let sql = "SELECT COUNT(*) FROM report_data_rows WHERE week_id = $1";
    match store {
        Store::Postgres(pool) => sqlx::query_scalar(sql)
            .bind(week.id)
            .fetch_one(pool)
            .await
            .unwrap(),
        Store::Sqlite(pool) => sqlx::query_scalar(sql)
            .bind(week.id)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

/// Generates one `#[actix_rt::test]` per backend from an async fn taking a `Backend`.
#[macro_export]
macro_rules! actix_on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[actix_rt::test]
                async fn on_sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
                #[actix_rt::test]
                async fn on_postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )+
    };
}

/// The intent of a fresh attempt at `week`, under the fixture's lease.
pub fn intent(fx: &Fixture, week: &Week, execution_id: ExecutionId) -> SubmissionIntent {
    SubmissionIntent {
        week_id: week.id,
        collection_id: fx.collection_id,
        instance_id: fx.instance.id,
        execution_id,
        idempotency_key: format!("key-{}", week.id),
        window_start: format!("{}T00:00:00", week.week_start_date),
        window_end: format!("{}T00:00:00", week.week_end_date),
        time_zone: "UTC".into(),
        parameters: None,
        max_in_flight: 10,
        quota: amc_collector::store::CreateQuota::UNLIMITED,
        collection_may_be_pending: true,
        fence: fx.fence.clone(),
    }
}

/// Stages `csv` (one result file, header first) as `week`'s rows under `execution_id` through
/// the ingest, as a download does, and returns the completion the week's actor would send: what
/// the ingest counted (rows, checksum, columns, types), under the fixture's lease.
pub async fn staged_week(
    fx: &Fixture,
    week: &Week,
    execution_id: ExecutionId,
    amc_id: &str,
    csv: &str,
) -> CompletedWeek {
    let target = StagingTarget {
        week_id: week.id,
        collection_id: week.collection_id,
        execution_id,
    };
    let file = bytes::Bytes::from(csv.to_owned());
    let ingested = ingest(&fx.store, target, usize::MAX, |events| async move {
        let size = file.len() as u64;
        for event in [
            FileEvent::Start { index: 0 },
            FileEvent::Chunk(file),
            FileEvent::End,
        ] {
            events.send(event).await.map_err(|_| std::fmt::Error)?;
        }
        Ok::<u64, std::fmt::Error>(size)
    })
    .await
    .expect("the result is staged");
    CompletedWeek {
        week_id: week.id,
        collection_id: week.collection_id,
        execution_id,
        amc_execution_id: amc_id.into(),
        row_count: ingested.row_count,
        data_checksum: ingested.data_checksum,
        columns: ingested.columns,
        column_types: ingested.column_types,
        fence: fx.fence.clone(),
    }
}

/// The result file of `completed_week`: two rows, column `n`.
pub const TWO_ROWS: &str = "n\n0\n1\n";

/// The checksum the ingest gives a one-file result (SHA-256 of its bytes, hex).
pub fn checksum_of(csv: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(csv.as_bytes()))
}

/// Two rows of result for `week` (`TWO_ROWS`), staged as a download does.
pub async fn completed_week(
    fx: &Fixture,
    week: &Week,
    execution_id: ExecutionId,
    amc_id: &str,
) -> CompletedWeek {
    staged_week(fx, week, execution_id, amc_id, TWO_ROWS).await
}

/// Walks `week` through intent, submission and success to `downloading`, under the fixture's
/// lease; returns the execution it ran under.
pub async fn drive_to_downloading(fx: &Fixture, week: &Week, amc_id: &str) -> ExecutionId {
    let execution_id = ExecutionId::new();
    let (collection_id, fence) = (fx.collection_id, fx.fence.clone());
    for transition in [
        Transition::Intent(intent(fx, week, execution_id)),
        Transition::Submitted(Submitted {
            collection_id,
            execution_id,
            amc_execution_id: amc_id.into(),
            fence: fence.clone(),
        }),
        Transition::Downloading(Downloading {
            collection_id,
            execution_id,
            fence,
        }),
    ] {
        fx.store
            .apply_transition(transition)
            .await
            .unwrap()
            .unwrap();
    }
    execution_id
}

/// Records that the fixture's workflow has completed a week on its instance (a one-week
/// collection of it, completed through the store), so its collections there run at full speed
/// from the start instead of probing with one execution (`actors::collection::guard`).
pub async fn prove_workflow(fx: &Fixture) {
    let collection_id = add_collection(&fx.store, &fx.instance, &fx.workflow, 1, "UTC").await;
    let fence = fx.store.test_fence(collection_id).await.unwrap();
    let week = weeks(&fx.store, collection_id).await.remove(0);
    let (execution_id, amc_id) = (ExecutionId::new(), "amc-proof-of-workflow");
    for transition in [
        Transition::Intent(SubmissionIntent {
            collection_id,
            fence: fence.clone(),
            ..intent(fx, &week, execution_id)
        }),
        Transition::Submitted(Submitted {
            collection_id,
            execution_id,
            amc_execution_id: amc_id.into(),
            fence: fence.clone(),
        }),
        Transition::Downloading(Downloading {
            collection_id,
            execution_id,
            fence: fence.clone(),
        }),
    ] {
        fx.store
            .apply_transition(transition)
            .await
            .unwrap()
            .unwrap();
    }
    let staged = completed_week(fx, &week, execution_id, amc_id).await;
    let completed = Transition::Completed(CompletedWeek { fence, ..staged });
    fx.store.apply_transition(completed).await.unwrap().unwrap();
}
