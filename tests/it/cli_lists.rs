//! Small CLI items, run as the real binary against SQLite and Postgres: `instance
//! list` and `workflow list` (table and `--json`), and a unique prefix (at least 8 characters) of
//! a collection id accepted wherever an id is.

use crate::support::{assert_usage_error, stdout_of, Backend, TestDb};
use sqlx::Connection;

async fn catalog(db: &TestDb) {
    std::fs::write(db.path("weekly.sql"), "SELECT 1\nFROM t\n").unwrap();
    stdout_of(&db.run(&[
        "instance",
        "add",
        "--instance-id",
        "amclist01",
        "--advertiser-id",
        "ENTITYLIST1",
        "--marketplace-id",
        "ATVPDKIKX0DER",
        "--name",
        "Brand\u{1b}[31m",
    ]));
    stdout_of(&db.run(&[
        "workflow",
        "add",
        "--name",
        "weekly",
        "--sql-file",
        "weekly.sql",
    ]));
    stdout_of(&db.run(&[
        "workflow",
        "add",
        "--name",
        "saved",
        "--amc-workflow-id",
        "wf-1",
    ]));
}

fn create(db: &TestDb) -> String {
    stdout_of(&db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        "amclist01",
        "--weeks",
        "2",
    ]))
}

async fn instance_and_workflow_lists_show_the_catalog(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;
    catalog(&db).await;

    // Act
    let instances = stdout_of(&db.run(&["instance", "list"]));
    let instances_json: serde_json::Value =
        serde_json::from_str(&stdout_of(&db.run(&["instance", "list", "--json"]))).unwrap();
    let workflows = stdout_of(&db.run(&["workflow", "list"]));
    let workflows_json: serde_json::Value =
        serde_json::from_str(&stdout_of(&db.run(&["workflow", "list", "--json"]))).unwrap();

    // Assert
    assert!(instances.contains("amclist01"), "{instances}");
    assert!(instances.contains("ENTITYLIST1"), "{instances}");
    assert!(
        !instances.contains('\u{1b}'),
        "control characters are escaped: {instances}"
    );
    assert_eq!(instances_json[0]["instance_id"], "amclist01");
    assert_eq!(instances_json[0]["region"], "na");
    assert_eq!(instances_json.as_array().unwrap().len(), 1);
    let lines: Vec<&str> = workflows.lines().collect();
    assert_eq!(lines.len(), 3, "{workflows}");
    assert!(lines[1].contains("saved") && lines[1].contains("saved in AMC as wf-1"));
    assert!(lines[2].contains("weekly") && lines[2].contains("inline SQL, 2 lines"));
    assert_eq!(workflows_json[0]["name"], "saved");
    assert_eq!(workflows_json[0]["amc_workflow_id"], "wf-1");
    assert_eq!(workflows_json[1]["sql_query"], "SELECT 1\nFROM t\n");
}

async fn a_unique_prefix_of_eight_characters_names_the_collection(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;
    catalog(&db).await;
    let id = create(&db);
    let prefix = &id[..8];

    // Act / Assert: show, pause, resume and export all take the prefix.
    let shown: serde_json::Value = serde_json::from_str(&stdout_of(&db.run(&[
        "collection",
        "show",
        prefix,
        "--json",
    ])))
    .unwrap();
    assert_eq!(shown["id"], id.as_str());
    let upper = id[..13].to_ascii_uppercase();
    assert!(stdout_of(&db.run(&["collection", "pause", &upper])).contains(&id));
    assert!(stdout_of(&db.run(&["collection", "resume", prefix])).contains(&id));
    let exported = db.run(&["collection", "export", prefix, "--format", "csv"]);
    assert!(exported.status.success(), "{exported:?}");
    assert_usage_error(
        &db.run(&["collection", "show", &id[..7]]),
        "at least 8 characters",
    );
    assert_usage_error(&db.run(&["collection", "cancel", "ffffffff"]), "not found");
}

/// Two collections whose ids share their first 13 characters (written directly: random ids
/// would almost never collide).
async fn twin_collections(db: &TestDb) {
    let real = create(db);
    let twins = [
        "abcdef12-3456-4000-8000-000000000001",
        "abcdef12-3456-4000-8000-000000000002",
    ];
    let copy = "INSERT INTO report_data_collections (id, workflow_id, instance_id, target_weeks, \
        start_date, end_date, week_start_day, time_zone, status, created_at, updated_at) \
        SELECT CAST($1 AS {uuid}), workflow_id, instance_id, target_weeks, start_date, end_date, \
        week_start_day, time_zone, status, created_at, updated_at \
        FROM report_data_collections WHERE CAST(id AS TEXT) = $2";
    match db.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            for twin in twins {
                let sql = copy.replace("{uuid}", "TEXT");
                sqlx::query(&sql)
                    .bind(twin)
                    .bind(&real)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("SET search_path TO amc_collector")
                .execute(&mut c)
                .await
                .unwrap();
            for twin in twins {
                let sql = copy.replace("{uuid}", "uuid");
                sqlx::query(&sql)
                    .bind(twin)
                    .bind(&real)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
    }
}

async fn an_ambiguous_prefix_is_refused_and_a_longer_one_resolves(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;
    catalog(&db).await;
    twin_collections(&db).await;

    // Act / Assert
    for prefix in [
        "abcdef12",
        "ABCDEF12-3456",
        "abcdef12-3456-4000-8000-00000000000",
    ] {
        assert_usage_error(&db.run(&["collection", "pause", prefix]), "ambiguous");
    }
    let one = "abcdef12-3456-4000-8000-000000000002";
    assert!(stdout_of(&db.run(&["collection", "pause", one])).contains(one));
    let store = db.store().await;
    let resolved = store
        .resolve_collection("abcdef12-3456-4000-8000-00000000000")
        .await;
    assert!(matches!(
        resolved,
        Err(amc_collector::store::StoreError::Ambiguous(_))
    ));
}

async fn a_bad_alerts_setting_exits_2_naming_the_key_without_the_secret(backend: Backend) {
    // Arrange
    let db = TestDb::new(backend).await;
    catalog(&db).await;

    // Act
    let clear_text = db.run_with_env(
        &["instance", "list"],
        &[
            (
                "AMC_COLLECTOR__ALERTS__WEBHOOK_URL",
                "http://hooks.example.com/x",
            ),
            ("AMC_COLLECTOR__ALERTS__SECRET", "never-printed-secret"),
        ],
    );
    let format = db.run_with_env(
        &["instance", "list"],
        &[("AMC_COLLECTOR__ALERTS__FORMAT", "xml")],
    );

    // Assert
    assert_usage_error(&clear_text, "alerts.webhook_url");
    assert!(!String::from_utf8_lossy(&clear_text.stderr).contains("never-printed-secret"));
    assert_usage_error(&format, "alerts.format");
}

crate::on_both_backends!(
    instance_and_workflow_lists_show_the_catalog,
    a_unique_prefix_of_eight_characters_names_the_collection,
    an_ambiguous_prefix_is_refused_and_a_longer_one_resolves,
    a_bad_alerts_setting_exits_2_naming_the_key_without_the_secret,
);
