//! (PostgreSQL) Safe on a shared database such as Supabase: the tables live in their own schema
//! with row-level security on, an install from before that is moved without losing rows, TLS
//! that does not verify is warned about or refused, poolers that cannot work are refused, an
//! unreachable database fails fast naming why, and no password is ever printed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use crate::support::{assert_usage_error, stdout_of, Backend, TestDb};

const SCHEMA: &str = "amc_collector";

async fn connect(db: &TestDb) -> PgConnection {
    PgConnection::connect(&db.url)
        .await
        .expect("connect to the test database")
}

/// Every table name in `schema`, with its row-level security flag.
async fn tables(connection: &mut PgConnection, schema: &str) -> BTreeMap<String, bool> {
    sqlx::query_as::<_, (String, bool)>(
        "SELECT tablename::text, rowsecurity FROM pg_tables WHERE schemaname = $1",
    )
    .bind(schema)
    .fetch_all(connection)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn row_counts(connection: &mut PgConnection, schema: &str) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for table in tables(connection, schema).await.into_keys() {
        let sql = format!("SELECT count(*) FROM \"{schema}\".\"{table}\"");
        let count: i64 = sqlx::query_scalar(&sql)
            .fetch_one(&mut *connection)
            .await
            .unwrap();
        counts.insert(table, count);
    }
    counts
}

/// A loopback port nothing listens on.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn after_migrate_no_table_is_in_public_and_every_table_has_row_level_security() {
    let db = TestDb::new(Backend::Postgres).await;

    stdout_of(&db.run(&["migrate"]));

    let mut connection = connect(&db).await;
    let public = tables(&mut connection, "public").await;
    let own = tables(&mut connection, SCHEMA).await;
    assert!(public.is_empty(), "tables left in public: {public:?}");
    for table in ["amc_instances", "report_data_weeks", "_sqlx_migrations"] {
        assert!(
            own.contains_key(table),
            "{table} missing from {SCHEMA}: {own:?}"
        );
    }
    let without_rls: Vec<_> = own.iter().filter(|(_, rls)| !**rls).collect();
    assert!(
        without_rls.is_empty(),
        "tables without RLS: {without_rls:?}"
    );
}

#[tokio::test]
async fn a_role_that_does_not_own_the_tables_reads_no_row() {
    let db = TestDb::new(Backend::Postgres).await;
    super::catalog(&db).await;
    let mut connection = connect(&db).await;
    // Like Supabase's anon: may use the schema and select from its tables, owns nothing.
    let role = format!("anon_{}", uuid::Uuid::new_v4().simple());
    for sql in [
        format!("CREATE ROLE {role} NOLOGIN"),
        format!("GRANT USAGE ON SCHEMA {SCHEMA} TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {role}"),
    ] {
        sqlx::query(&sql).execute(&mut connection).await.unwrap();
    }

    let count = format!("SELECT count(*) FROM {SCHEMA}.amc_instances");
    let as_owner: i64 = sqlx::query_scalar(&count)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    sqlx::query(&format!("SET ROLE {role}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let as_anon: i64 = sqlx::query_scalar(&count)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    sqlx::query("RESET ROLE")
        .execute(&mut connection)
        .await
        .unwrap();
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        sqlx::query(&sql).execute(&mut connection).await.unwrap();
    }

    assert_eq!(as_owner, 1);
    assert_eq!(
        as_anon, 0,
        "a non-owner read rows despite row-level security"
    );
}

/// The layout of every release before the schema: the migrations up to 20261130000007 applied
/// by sqlx into `public`, with some rows.
async fn old_install_in_public(db: &TestDb) {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut migrator = sqlx::migrate::Migrator::new(directory).await.unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 20261130000007)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let mut connection = connect(db).await;
    migrator.run(&mut connection).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO public.amc_instances (id, instance_id, instance_name, region, advertiser_id, marketplace_id)
             VALUES ('00000000-0000-0000-0000-00000000000a', 'amcold01', 'old', 'na', 'E', 'M');
         INSERT INTO public.workflows (id, name, sql_query)
             VALUES ('00000000-0000-0000-0000-00000000000b', 'weekly', 'SELECT 1');
         INSERT INTO public.report_data_collections
             (id, workflow_id, instance_id, target_weeks, start_date, end_date, week_start_day, time_zone)
             VALUES ('00000000-0000-0000-0000-00000000000c', '00000000-0000-0000-0000-00000000000b',
                     '00000000-0000-0000-0000-00000000000a', 2, '2026-01-05', '2026-01-18', 'monday', 'UTC');
         INSERT INTO public.report_data_weeks (id, collection_id, week_start_date, week_end_date)
             VALUES ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-00000000000c', '2026-01-05', '2026-01-11'),
                    ('00000000-0000-0000-0000-0000000000d2', '00000000-0000-0000-0000-00000000000c', '2026-01-12', '2026-01-18');",
    )
    .execute(&mut connection)
    .await
    .unwrap();
}

#[tokio::test]
async fn an_install_in_public_from_before_the_schema_keeps_every_row_after_migrate() {
    let db = TestDb::new(Backend::Postgres).await;
    old_install_in_public(&db).await;
    let mut connection = connect(&db).await;
    let before = row_counts(&mut connection, "public").await;
    assert_eq!(before.get("report_data_weeks"), Some(&2));

    stdout_of(&db.run(&["migrate"]));

    let public = tables(&mut connection, "public").await;
    assert!(public.is_empty(), "tables left in public: {public:?}");
    let after = row_counts(&mut connection, SCHEMA).await;
    for (table, rows) in &before {
        let expected = if table == "_sqlx_migrations" {
            // The migrations added since are recorded too.
            *rows..=i64::MAX
        } else {
            *rows..=*rows
        };
        assert!(
            after.get(table).is_some_and(|n| expected.contains(n)),
            "{table}: {rows} rows before, {:?} after",
            after.get(table)
        );
    }
    let listed: serde_json::Value =
        serde_json::from_str(&stdout_of(&db.run(&["collection", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["id"], "00000000-0000-0000-0000-00000000000c");
    assert_eq!(listed[0]["weeks_total"], 2);
}

#[tokio::test]
async fn a_refused_connection_fails_within_seconds_naming_the_refusal() {
    let db = TestDb::new(Backend::Postgres).await;
    let url = format!(
        "postgres://app:s3cr3t@127.0.0.1:{}/amc?sslpassword=k3y&sslmode=disable",
        free_port()
    );

    let started = Instant::now();
    let output = db.run_with_env(
        &["collection", "list"],
        &[("AMC_COLLECTOR__DATABASE__URL", &url)],
    );
    let elapsed = started.elapsed();

    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(
        !stderr.contains("s3cr3t") && !stderr.contains("k3y"),
        "{stderr}"
    );
    // sqlx's pool alone waited 30 s and said only "pool timed out".
    assert!(
        elapsed < Duration::from_secs(10),
        "took {elapsed:?}: {stderr}"
    );
}

#[tokio::test]
async fn the_transaction_pooler_is_refused_naming_the_session_pooler() {
    let db = TestDb::new(Backend::Postgres).await;
    for url in [
        "postgres://postgres.abcdef:s3cr3t@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
        "postgres://app:s3cr3t@db.example.com:6432/amc?pgbouncer=true&sslmode=verify-full",
    ] {
        let output = db.run_with_env(&["migrate"], &[("AMC_COLLECTOR__DATABASE__URL", url)]);

        assert_usage_error(&output, "session pooler (same host, port 5432)");
        assert!(!stderr(&output).contains("s3cr3t"), "{}", stderr(&output));
    }
}

#[tokio::test]
async fn unverified_tls_beyond_loopback_is_warned_about_and_refused_when_required() {
    let db = TestDb::new(Backend::Postgres).await;
    // 0.0.0.0 reaches this machine's server, but it is not a loopback address: it stands for a
    // remote host without any traffic leaving the machine.
    let base = url::Url::parse(&db.url).unwrap();
    let url = format!(
        "postgres://postgres@0.0.0.0:{}{}?sslmode=prefer",
        base.port().unwrap_or(5432),
        base.path()
    );
    let env = [("AMC_COLLECTOR__DATABASE__URL", url.as_str())];

    let warned = db.run_with_env(&["migrate"], &env);
    let refused = db.run_with_env(
        &["migrate"],
        &[
            env[0],
            ("AMC_COLLECTOR__DATABASE__REQUIRE_VERIFIED_TLS", "true"),
        ],
    );

    stdout_of(&warned);
    let warning = stderr(&warned);
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("sslmode=prefer"), "{warning}");
    assert!(warning.contains("sslmode=verify-full"), "{warning}");
    assert_usage_error(&refused, "database.require_verified_tls = true");
}

#[tokio::test]
async fn no_form_of_database_password_is_printed_by_a_failing_command() {
    let db = TestDb::new(Backend::Postgres).await;
    let port = free_port();
    for url in [
        format!("postgres://app:s3cr3t@127.0.0.1:{port}/amc"),
        format!("postgres://app@127.0.0.1:{port}/amc?password=s3cr3t"),
        format!("postgres://app:pa#s3cr3t@127.0.0.1:{port}/amc"),
        format!("postgres://app:12/s3cr3t@127.0.0.1:{port}/amc"),
        format!("postgres://app@127.0.0.1:{port}/amc?sslpassword=s3cr3t"),
    ] {
        let output = db.run_with_env(
            &["collection", "list"],
            &[("AMC_COLLECTOR__DATABASE__URL", &url)],
        );

        let stderr = stderr(&output);
        assert!(!output.status.success(), "{url}");
        assert!(!stderr.contains("s3cr3t"), "{url} printed: {stderr}");
    }
}
