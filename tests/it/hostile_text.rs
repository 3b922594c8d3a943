//! Text from AMC carrying control characters (the simulator's hostile-text fault: a newline and a
//! forged log line, an ESC sequence, a bidi override in execution ids, statuses and reasons)
//! reaches the daemon's text log and `collection show` escaped: no forged line, nothing raw.

use crate::support::procs::{daemon_env, Simulator};
use crate::support::{stdout_of, Backend, TestDb};

/// Given to `procs::daemon_env`.
const MAX_IN_FLIGHT: u64 = 10;

/// The start of the line the simulator's hostile text tries to forge.
const FORGED: &str = "2026-01-01T00:00:00.000000Z ERROR forged";

/// Creates an instance, a workflow and a two-week collection; returns the collection id.
fn setup(db: &TestDb) -> String {
    stdout_of(&db.run(&[
        "instance",
        "add",
        "--instance-id",
        "amchostile1",
        "--advertiser-id",
        "ENTITYH",
        "--marketplace-id",
        "ATVPDKIKX0DER",
    ]));
    std::fs::write(
        db.path("weekly.sql"),
        "SELECT campaign FROM t WHERE d >= '{{start_date}}'",
    )
    .unwrap();
    stdout_of(&db.run(&[
        "workflow",
        "add",
        "--name",
        "weekly",
        "--sql-file",
        "weekly.sql",
    ]));
    stdout_of(&db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        "amchostile1",
        "--weeks",
        "2",
    ]))
}

#[track_caller]
fn assert_nothing_raw(text: &str) {
    assert!(!text.contains(['\u{1b}', '\u{202e}', '\r']), "{text}");
    assert!(
        !text.lines().any(|line| line.starts_with(FORGED)),
        "a forged line: {text}"
    );
}

#[tokio::test]
async fn hostile_amc_text_is_escaped_in_text_logs_and_in_collection_show() {
    // Arrange: the first week fails (with a hostile reason), the second succeeds; every id,
    // PENDING status and reason carries the hostile text.
    let db = TestDb::new(Backend::Sqlite).await;
    let id = setup(&db);
    let shown: serde_json::Value =
        serde_json::from_str(&stdout_of(&db.run(&["collection", "show", &id, "--json"]))).unwrap();
    let first_week = shown["weeks"][0]["week_start"]
        .as_str()
        .unwrap()
        .to_string();
    let flags = [
        "--hostile-text",
        "--pending-ms",
        "300",
        "--fail-windows",
        &first_week,
    ]
    .map(String::from);
    let sim = Simulator::start(db.dir.path(), &flags);
    let mut env = daemon_env(&sim, MAX_IN_FLIGHT);
    env.push(("AMC_COLLECTOR__RETRY__MAX_ATTEMPTS", "1".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Act: the real daemon with text logs (the default format).
    let run = db.run_with_env(&["run", "--exit-when-idle"], &env);

    // Assert: the log kept every AMC text on its own line, escaped.
    let log = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "{log}");
    assert!(sim.stats().await["served_hostile_text"].as_u64() > Some(0));
    assert_nothing_raw(&log);
    assert!(
        log.contains(&format!("amc_status=QUEUED\\n{FORGED}")),
        "the unknown status is logged escaped: {log}"
    );
    assert!(log.contains("\\x1b[2J"), "{log}");

    // ...and so does `collection show`: the AMC ids carry the text in full.
    let show = db.run(&["collection", "show", &id]);
    let table = stdout_of(&show);
    assert_nothing_raw(&table);
    assert!(
        table.contains(&format!("\\n{FORGED}: line from AMC \\x1b[2J\\u{{202e}}")),
        "{table}"
    );
    // collection, status, error, header and one row per week: no row was split.
    assert_eq!(table.lines().count(), 3 + 1 + 2, "{table}");

    // A stored error message short enough to be shown whole is escaped too.
    let store = db.store().await;
    let amc_collector::store::Store::Sqlite(pool) = &store else {
        unreachable!("SQLite test")
    };
    sqlx::query("UPDATE report_data_weeks SET error_message = $1 WHERE week_start_date = $2")
        .bind("boom \u{1b}[31mred\nnext")
        .bind(&first_week)
        .execute(pool)
        .await
        .unwrap();
    let table = stdout_of(&db.run(&["collection", "show", &id]));
    assert_nothing_raw(&table);
    assert!(table.contains("boom \\x1b[31mred\\nnext"), "{table}");
    sim.stop();
}
