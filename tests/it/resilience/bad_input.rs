//! Bad input to every command, run as the real binary on SQLite: exit 2, one line on stderr, no
//! panic, and nothing written (no file created, no row changed).

use std::collections::BTreeSet;
use std::path::Path;

use amc_collector::store::{Store, WorkflowSource};

use super::common::SQL;
use crate::support::pipeline::fixture;
use crate::support::{assert_usage_error, Backend, TestDb};

/// A well-formed collection id that no database holds.
const UNKNOWN_ID: &str = "5d0c6a43-8f7e-4d8b-9b53-2f9a1c7e0b42";

/// Files in a directory, ignoring SQLite's WAL and shared-memory companions (opened readers
/// create them; they carry no data of their own once checkpointed).
fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with("-wal") && !name.ends_with("-shm"))
        .collect()
}

/// Every row of every table that commands write, as text, to compare before and after.
async fn database_contents(store: &Store) -> Vec<String> {
    let Store::Sqlite(pool) = store else {
        unreachable!("bad-input tests run on SQLite")
    };
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\' \
         AND name NOT LIKE 'sqlite%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut contents = Vec::new();
    for table in tables {
        // `quote()` renders any column type as text, so one query shape fits every table.
        let columns: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(pool)
                .await
                .unwrap();
        let row = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT {row} FROM \"{table}\" ORDER BY 1"))
                .fetch_all(pool)
                .await
                .unwrap();
        contents.push(format!("{table}: {rows:?}"));
    }
    contents
}

fn args(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[actix_rt::test]
async fn bad_input_to_every_command_exits_2_with_one_line_and_writes_nothing() {
    // Arrange: a database holding a collection, so "unknown id" really is unknown rather than
    // "no database".
    let fx = fixture(Backend::Sqlite, 2, WorkflowSource::Sql(SQL.into())).await;
    let existing = fx.collection_id.to_string();
    let cases: Vec<(String, &str)> = vec![
        ("run".into(), "amc.client_id"),
        ("run --exit-when-idle".into(), "amc.client_id"),
        (
            "collection pause not-a-uuid".into(),
            "not a collection UUID",
        ),
        (
            "collection resume not-a-uuid".into(),
            "not a collection UUID",
        ),
        (
            "collection cancel not-a-uuid".into(),
            "not a collection UUID",
        ),
        (
            "collection retry-failed not-a-uuid".into(),
            "not a collection UUID",
        ),
        (
            "collection watch not-a-uuid".into(),
            "not a collection UUID",
        ),
        (
            "collection export not-a-uuid".into(),
            "not a collection UUID",
        ),
        ("collection show not-a-uuid".into(), "not a collection UUID"),
        (format!("collection pause {UNKNOWN_ID}"), "not found"),
        (format!("collection resume {UNKNOWN_ID}"), "not found"),
        (format!("collection cancel {UNKNOWN_ID}"), "not found"),
        (format!("collection retry-failed {UNKNOWN_ID}"), "not found"),
        (format!("collection watch {UNKNOWN_ID}"), "not found"),
        (format!("collection export {UNKNOWN_ID}"), "not found"),
        (format!("collection show {UNKNOWN_ID}"), "not found"),
        (format!("collection resume {existing}"), "it is pending"),
        (
            format!("collection export {existing} --format xml"),
            "invalid value",
        ),
        ("collection pause".into(), "required"),
        ("simulate-amc --bind notanaddress".into(), "invalid value"),
        (
            "simulate-amc --bind 127.0.0.1:0 --rate-429 often".into(),
            "invalid value",
        ),
        ("demo --weeks 0".into(), "--weeks"),
        ("demo --weeks -4".into(), "-4"),
        ("frobnicate".into(), "unrecognized subcommand"),
        ("collection frobnicate".into(), "unrecognized subcommand"),
        ("--config missing.toml migrate".into(), "missing.toml"),
        ("--config missing.toml run".into(), "missing.toml"),
        ("--log-format xml migrate".into(), "invalid value"),
    ];
    let files_before = files_in(fx.db.dir.path());
    let rows_before = database_contents(&fx.store).await;

    for (line, fragment) in &cases {
        // Act
        let output = fx.db.run_async(&args(line)).await;

        // Assert
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "`{line}`: {stderr}");
        assert_usage_error(&output, fragment);
        assert!(output.stdout.is_empty(), "`{line}` printed on stdout");
        assert_eq!(
            files_in(fx.db.dir.path()),
            files_before,
            "`{line}` wrote a file"
        );
    }
    assert_eq!(database_contents(&fx.store).await, rows_before);
}

#[actix_rt::test]
async fn bad_input_refused_before_the_database_is_opened_creates_no_database() {
    // Arrange: the configured SQLite file does not exist yet.
    let db = TestDb::new(Backend::Sqlite).await;
    let cases = [
        ("run --exit-when-idle", "amc.client_id"),
        ("collection pause not-a-uuid", "not a collection UUID"),
        (
            "collection export not-a-uuid --format csv",
            "not a collection UUID",
        ),
        ("demo --weeks 0", "--weeks"),
        ("--config missing.toml migrate", "missing.toml"),
    ];

    for (line, fragment) in cases {
        // Act
        let output = db.run(&args(line));

        // Assert
        assert_usage_error(&output, fragment);
        assert_eq!(
            files_in(db.dir.path()),
            BTreeSet::new(),
            "`{line}` wrote a file"
        );
    }
}

#[actix_rt::test]
async fn an_unknown_collection_id_creates_no_database() {
    // Arrange: the configured SQLite file does not exist yet.
    let db = TestDb::new(Backend::Sqlite).await;

    for command in [
        "pause",
        "resume",
        "cancel",
        "retry-failed",
        "watch",
        "export",
        "show",
    ] {
        // Act
        let output = db.run(&["collection", command, UNKNOWN_ID]);

        // Assert
        assert_usage_error(&output, "does not exist");
        assert_eq!(
            files_in(db.dir.path()),
            BTreeSet::new(),
            "`collection {command}` created a database"
        );
    }
}
