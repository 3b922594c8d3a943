//! A week's AMC slot is held until the database no longer counts the week as in flight. Freed
//! earlier (the bug this guards), the next intent on the instance was refused by the database's
//! per-instance count, which covers every process, and backed off: two of three intents were
//! refused in the throughput benchmark.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pipeline::{fixture, settings, weeks, INSTANCE_ID};
use crate::support::{wait_until, Backend};
use amc_collector::actors::gateway::GetGatewayStatus;
use amc_collector::app::App;
use amc_collector::simulator::{self, SimulatorConfig};
use amc_collector::status::WeekStatus;
use amc_collector::store::{Store, WorkflowSource};

/// How long a condition of the run may take to be reached.
const PATIENCE: Duration = Duration::from_secs(20);

const SQL: &str = "SELECT 1 FROM t WHERE d >= '{{start_date}}' AND d <= '{{end_date}}'";

#[actix_rt::test]
async fn a_slot_is_held_until_the_week_leaves_running_in_the_database() {
    let fx = fixture(Backend::Postgres, 1, WorkflowSource::Sql(SQL.into())).await;
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sim = simulator::start(
        bind,
        SimulatorConfig {
            pending_ms: 0,
            running_ms: 1_000,
            publishing_ms: 0,
            ..SimulatorConfig::default()
        },
    )
    .await
    .unwrap();
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    let app = App::build(&settings).store(fx.store.clone());
    let mut running = app.exit_when_idle(true).start().await.unwrap();
    let Store::Postgres(pool) = &fx.store else {
        unreachable!("the fixture is on Postgres");
    };

    wait_until("the week runs on AMC", PATIENCE, || async {
        weeks(&fx.store, fx.collection_id).await[0].status == WeekStatus::Running
    })
    .await;
    // Another session locks the week's row, so the write that takes the week out of `running`
    // waits: the moment the slot used to be freed too early.
    let week_id = weeks(&fx.store, fx.collection_id).await[0].id;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM report_data_weeks WHERE id = $1 FOR UPDATE")
        .bind(week_id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    wait_until("the writer waits for the locked week", PATIENCE, || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        waiting > 0
    })
    .await;

    let gateway = running.gateway.send(GetGatewayStatus).await.unwrap();
    assert_eq!(
        gateway.slots[INSTANCE_ID].in_use, 1,
        "the slot was freed while the database still counted the week as running"
    );

    blocker.rollback().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), &mut running.idle)
        .await
        .expect("the collection did not finish")
        .expect("idle signal");
    running.stop().await.unwrap();
    assert_eq!(
        weeks(&fx.store, fx.collection_id).await[0].status,
        WeekStatus::Completed
    );
}
