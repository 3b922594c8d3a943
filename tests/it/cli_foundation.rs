//! The catalog and collection commands, run as the real binary against SQLite and Postgres.

mod data_rules;
mod supabase;

use crate::support::{assert_usage_error, stdout_of, Backend, TestDb};

async fn catalog(db: &TestDb) {
    std::fs::write(
        db.path("weekly.sql"),
        "SELECT campaign, SUM(impressions) FROM sponsored_ads_traffic\nWHERE event_dt >= '{{start_date}}'\nGROUP BY 1;\n",
    )
    .unwrap();
    stdout_of(&db.run(&[
        "instance",
        "add",
        "--instance-id",
        "amctest01",
        "--advertiser-id",
        "ENTITYTEST1",
        "--marketplace-id",
        "ATVPDKIKX0DER",
    ]));
    stdout_of(&db.run(&[
        "workflow",
        "add",
        "--name",
        "weekly",
        "--sql-file",
        "weekly.sql",
    ]));
}

async fn collection_rows(db: &TestDb) -> usize {
    db.store().await.list_collections().await.unwrap().len()
}

fn show_json(db: &TestDb, id: &str) -> serde_json::Value {
    serde_json::from_str(&stdout_of(&db.run(&["collection", "show", id, "--json"]))).unwrap()
}

async fn create_then_show_gives_the_weeks_the_rules_say(backend: Backend) {
    let db = TestDb::new(backend).await;
    catalog(&db).await;

    // 2026-10-01 is a Thursday: the last complete Sunday-started week ends Saturday 2026-09-26.
    let id = stdout_of(&db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        "amctest01",
        "--weeks",
        "3",
        "--end-date",
        "2026-10-01",
        "--week-start",
        "sunday",
        "--time-zone",
        "America/New_York",
    ]));
    let shown = show_json(&db, &id);

    assert_eq!(shown["id"], id);
    assert_eq!(shown["status"], "pending");
    let weeks = shown["weeks"].as_array().unwrap();
    let spans: Vec<(&str, &str)> = weeks
        .iter()
        .map(|w| {
            (
                w["week_start"].as_str().unwrap(),
                w["week_end"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        vec![
            ("2026-09-06", "2026-09-12"),
            ("2026-09-13", "2026-09-19"),
            ("2026-09-20", "2026-09-26")
        ]
    );
    for week in weeks {
        assert_eq!(week["status"], "pending");
        assert!(week["execution_id"].is_null());
        assert_eq!(week["attempts"], 0);
        for key in [
            "amc_execution_id",
            "row_count",
            "data_checksum",
            "error_message",
        ] {
            assert!(week.get(key).is_some(), "missing {key}");
        }
    }
}

async fn default_end_date_is_today_minus_the_lag_and_json_output_carries_the_id(backend: Backend) {
    let db = TestDb::new(backend).await;
    catalog(&db).await;

    let created: serde_json::Value = serde_json::from_str(&stdout_of(&db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        "amctest01",
        "--weeks",
        "4",
        "--json",
    ])))
    .unwrap();

    let id = created["id"].as_str().unwrap();
    let weeks = show_json(&db, id)["weeks"].as_array().unwrap().clone();
    assert_eq!(weeks.len(), 4);
    let last_end =
        chrono::NaiveDate::parse_from_str(weeks[3]["week_end"].as_str().unwrap(), "%Y-%m-%d")
            .unwrap();
    let lagged = chrono::Utc::now().date_naive() - chrono::Duration::days(14);
    assert!(last_end <= lagged && lagged - last_end < chrono::Duration::days(7));
    assert_eq!(chrono::Datelike::weekday(&last_end), chrono::Weekday::Sun);
}

async fn bad_collection_input_exits_2_with_one_line_and_writes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    catalog(&db).await;
    let base = [
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        "amctest01",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--weeks", "0"], "between 1 and 60"),
        (vec!["--weeks", "61"], "between 1 and 60"),
        (vec!["--weeks", "-3"], "between 1 and 60"),
        (
            vec!["--weeks", "2", "--end-date", "2099-01-01"],
            "in the future",
        ),
        (
            vec!["--weeks", "60", "--end-date", "2025-12-01"],
            "retention",
        ),
        (
            vec!["--weeks", "2", "--end-date", "2026-13-01"],
            "not a date",
        ),
        (vec!["--weeks", "2", "--time-zone", "Mars/Olympus"], "IANA"),
        (
            vec!["--weeks", "2", "--week-start", "tuesday"],
            "monday or sunday",
        ),
        (vec!["--weeks", "lots"], "invalid value"),
    ];
    for (extra, fragment) in cases {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        assert_usage_error(&db.run(&args), fragment);
    }
    assert_usage_error(
        &db.run(&[
            "collection",
            "create",
            "--workflow",
            "nope",
            "--instance",
            "amctest01",
            "--weeks",
            "2",
        ]),
        "unknown workflow `nope`",
    );
    assert_usage_error(
        &db.run(&[
            "collection",
            "create",
            "--workflow",
            "weekly",
            "--instance",
            "amcnope",
            "--weeks",
            "2",
        ]),
        "unknown instance `amcnope`",
    );

    assert_eq!(collection_rows(&db).await, 0);
}

async fn malformed_configuration_exits_2_naming_the_key_and_writes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    catalog(&db).await;
    let create = [
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        "amctest01",
        "--weeks",
        "2",
    ];

    let output = db.run_with_env(&create, &[("AMC_COLLECTOR__RETRY__MAX_ATTEMPTS", "many")]);
    assert_usage_error(&output, "retry.max_attempts");
    let output = db.run_with_env(&create, &[("AMC_COLLECTOR__AMC__NO_SUCH_KEY", "1")]);
    assert_usage_error(&output, "no_such_key");
    std::fs::write(db.path("bad.toml"), "[scheduler]\nlease_seconds = 0\n").unwrap();
    let mut with_file = vec!["--config", "bad.toml"];
    with_file.extend(create);
    assert_usage_error(&db.run(&with_file), "scheduler.lease_seconds");

    assert_eq!(collection_rows(&db).await, 0);
}

async fn catalog_commands_refuse_duplicates_and_bad_values(backend: Backend) {
    let db = TestDb::new(backend).await;
    catalog(&db).await;

    let duplicate = db.run(&[
        "instance",
        "add",
        "--instance-id",
        "amctest01",
        "--advertiser-id",
        "E",
        "--marketplace-id",
        "M",
    ]);
    assert_usage_error(&duplicate, "already registered");
    let bad_region = db.run(&[
        "instance",
        "add",
        "--instance-id",
        "amcother",
        "--advertiser-id",
        "E",
        "--marketplace-id",
        "M",
        "--region",
        "mars",
    ]);
    assert_usage_error(&bad_region, "--region");
    assert_usage_error(
        &db.run(&[
            "workflow",
            "add",
            "--name",
            "weekly",
            "--amc-workflow-id",
            "saved_wf",
        ]),
        "already exists",
    );
    assert_eq!(
        db.run(&[
            "workflow",
            "add",
            "--name",
            "both",
            "--sql-file",
            "weekly.sql",
            "--amc-workflow-id",
            "x"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_usage_error(
        &db.run(&[
            "workflow",
            "add",
            "--name",
            "missing",
            "--sql-file",
            "nope.sql",
        ]),
        "cannot read --sql-file",
    );
    assert_usage_error(
        &db.run(&["collection", "show", "not-a-uuid"]),
        "not a collection UUID",
    );
    assert_usage_error(
        &db.run(&["collection", "show", "00000000-0000-0000-0000-000000000000"]),
        "not found",
    );
}

async fn migrate_is_idempotent_and_list_shows_collections(backend: Backend) {
    let db = TestDb::new(backend).await;
    stdout_of(&db.run(&["migrate"]));
    stdout_of(&db.run(&["migrate"]));
    catalog(&db).await;
    let id = stdout_of(&db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        "amctest01",
        "--weeks",
        "2",
    ]));

    let listed: serde_json::Value =
        serde_json::from_str(&stdout_of(&db.run(&["collection", "list", "--json"]))).unwrap();

    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["weeks_total"], 2);
    assert!(stdout_of(&db.run(&["collection", "list"])).contains(&id));
}

async fn workflow_add_refuses_sql_that_cannot_be_one_line_naming_the_line_and_column(
    backend: Backend,
) {
    let db = TestDb::new(backend).await;
    std::fs::write(
        db.path("open.sql"),
        "-- weekly totals\nSELECT campaign FROM t\nWHERE d >= '{{start_date}}' AND tag = 'a  b\n",
    )
    .unwrap();
    std::fs::write(db.path("comment.sql"), "SELECT 1\n/* unfinished\n").unwrap();
    std::fs::write(db.path("empty.sql"), "-- only notes\n/* here */;\n").unwrap();
    let add = |file: &str| db.run(&["workflow", "add", "--name", "w", "--sql-file", file]);

    let open = add("open.sql");
    let comment = add("comment.sql");
    let empty = add("empty.sql");

    assert_usage_error(&open, "open.sql: unterminated string literal");
    assert_usage_error(&open, "line 3, column 39");
    assert_usage_error(
        &comment,
        "unterminated /* comment starting at line 2, column 1",
    );
    assert_usage_error(&empty, "contains no SQL");
    assert!(db.store().await.find_workflow("w").await.unwrap().is_none());
}

crate::on_both_backends!(
    workflow_add_refuses_sql_that_cannot_be_one_line_naming_the_line_and_column,
    create_then_show_gives_the_weeks_the_rules_say,
    default_end_date_is_today_minus_the_lag_and_json_output_carries_the_id,
    bad_collection_input_exits_2_with_one_line_and_writes_nothing,
    malformed_configuration_exits_2_naming_the_key_and_writes_nothing,
    catalog_commands_refuse_duplicates_and_bad_values,
    migrate_is_idempotent_and_list_shows_collections,
);
