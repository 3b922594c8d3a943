//! The credential sets' command line: `credentials add|list` and `instance add --credentials`.
//! Bad input exits 2 with one line and writes nothing; what is stored and listed is where a
//! secret is, never the secret; the real daemon refreshes with a set read from its environment
//! and logs nothing secret. Real binary, SQLite and PostgreSQL.

use std::process::Output;
use std::time::Duration;

use super::{start_simulator, SQL, TOKEN_A};
use crate::support::{binary, Backend, TestDb};
use amc_collector::status::CollectionStatus;

/// Environment variable holding brand-a's refresh token in the commands that need it.
const VARIABLE_A: &str = "AMC_COLLECTOR_TEST_RT_A";

/// No daemon is asked (its state is not what these tests are about).
const NO_DAEMON: (&str, &str) = ("AMC_COLLECTOR__HTTP__ENABLED", "false");

fn one_line_exit_2(output: &Output, says: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
    assert!(output.stdout.is_empty());
}

const INSTANCE: [&str; 8] = [
    "instance",
    "add",
    "--instance-id",
    "amcbranda",
    "--advertiser-id",
    "ENTITYA",
    "--marketplace-id",
    "ATVPDKIKX0DER",
];

async fn bad_credential_input_exits_2_with_one_line_and_writes_nothing(backend: Backend) {
    let db = TestDb::new(backend).await;
    let add = |rest: &[&str]| {
        let mut args = vec!["credentials", "add"];
        args.extend_from_slice(rest);
        db.run(&args)
    };
    // Neither, both, the [amc] set's name, a bad name, a bad variable name.
    one_line_exit_2(
        &add(&["--name", "brand-a"]),
        "give exactly one of --refresh-token-env and --refresh-token-file",
    );
    one_line_exit_2(
        &add(&[
            "--name",
            "brand-a",
            "--refresh-token-env",
            VARIABLE_A,
            "--refresh-token-file",
            "rt.txt",
        ]),
        "give one of --refresh-token-env and --refresh-token-file, not both",
    );
    one_line_exit_2(
        &add(&[
            "--name",
            "brand-a",
            "--refresh-token-env",
            VARIABLE_A,
            "--client-secret-env",
            "S",
            "--client-secret-file",
            "s.txt",
        ]),
        "give one of --client-secret-env and --client-secret-file, not both",
    );
    one_line_exit_2(
        &add(&["--name", "default", "--refresh-token-env", VARIABLE_A]),
        "`default` is the [amc] credential set's name",
    );
    one_line_exit_2(
        &add(&["--name", "brand a", "--refresh-token-env", VARIABLE_A]),
        "--name must be 1-64 characters",
    );
    one_line_exit_2(
        &add(&["--name", "brand-a", "--refresh-token-env", "1-BAD"]),
        "--refresh-token-env must name an environment variable",
    );
    if backend == Backend::Sqlite {
        assert!(
            !db.dir.path().join("test.db").exists(),
            "a database was created"
        );
    }
    // An unknown set on `instance add`, on an existing database.
    let created = add(&["--name", "brand-a", "--refresh-token-env", VARIABLE_A]);
    assert!(created.status.success(), "{created:?}");
    let mut unknown = INSTANCE.to_vec();
    unknown.extend_from_slice(&["--credentials", "brand-z"]);
    one_line_exit_2(&db.run(&unknown), "unknown credential set `brand-z`");
    // A duplicate name.
    one_line_exit_2(
        &add(&["--name", "brand-a", "--refresh-token-file", "rt.txt"]),
        "credential set `brand-a` already exists",
    );

    let store = db.store().await;
    let sets = store.list_credential_sets().await.unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(
        sets[0].locations.refresh_token_env.as_deref(),
        Some(VARIABLE_A)
    );
    assert_eq!(sets[0].locations.refresh_token_file, None);
    assert!(store.list_instances().await.unwrap().is_empty());
}

async fn credentials_list_shows_where_secrets_are_and_their_state_never_a_secret(backend: Backend) {
    // Arrange: brand-a from a variable, brand-b from a file that is not there; one instance each.
    let db = TestDb::new(backend).await;
    let missing = db.dir.path().join("brand-b.token");
    let missing = missing.to_str().unwrap();
    for args in [
        vec![
            "credentials",
            "add",
            "--name",
            "brand-a",
            "--refresh-token-env",
            VARIABLE_A,
        ],
        vec![
            "credentials",
            "add",
            "--name",
            "brand-b",
            "--refresh-token-file",
            missing,
        ],
    ] {
        let output = db.run(&args);
        assert!(output.status.success(), "{output:?}");
    }
    let mut linked = INSTANCE.to_vec();
    linked.extend_from_slice(&["--credentials", "brand-a"]);
    assert!(db.run(&linked).status.success());

    // Act
    let env = [(VARIABLE_A, TOKEN_A), NO_DAEMON];
    let json = db.run_with_env(&["credentials", "list", "--json"], &env);
    let table = db.run_with_env(&["credentials", "list"], &env);

    // Assert
    assert!(json.status.success(), "{json:?}");
    let lines: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "brand-a", "brand-b"]);
    let a = &lines[1];
    assert_eq!(a["refresh_token"]["env"], VARIABLE_A);
    assert_eq!(a["instances"], serde_json::json!(["amcbranda"]));
    assert_eq!(a["state"], "ok");
    let b = &lines[2];
    assert_eq!(b["refresh_token"]["file"], missing);
    assert_eq!(b["state"], "unavailable");
    assert!(
        b["reason"].as_str().unwrap().contains("cannot be read"),
        "{b}"
    );
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains(&format!("env {VARIABLE_A}")), "{table}");
    assert!(table.contains("unavailable: file "), "{table}");
    let listed = db.run(&["instance", "list", "--json"]);
    let instances: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(instances[0]["credential_set"], "brand-a");
    for text in [String::from_utf8_lossy(&json.stdout).into_owned(), table] {
        assert!(!text.contains("brand-a-7f3e1c05"), "{text}");
    }
}

async fn the_daemon_refreshes_a_set_from_its_environment_and_never_logs_the_secret(
    backend: Backend,
) {
    // Arrange: brand-a's refresh token only in the daemon's environment.
    let db = TestDb::new(backend).await;
    let sql = db.dir.path().join("weekly.sql");
    std::fs::write(&sql, SQL).unwrap();
    let sql = sql.to_str().unwrap();
    let steps: [&[&str]; 3] = [
        &[
            "credentials",
            "add",
            "--name",
            "brand-a",
            "--refresh-token-env",
            VARIABLE_A,
        ],
        &["workflow", "add", "--name", "weekly", "--sql-file", sql],
        &[
            "collection",
            "create",
            "--workflow",
            "weekly",
            "--instance",
            "amcbranda",
            "--weeks",
            "2",
        ],
    ];
    assert!(db.run(steps[0]).status.success());
    let mut linked = INSTANCE.to_vec();
    linked.extend_from_slice(&["--credentials", "brand-a"]);
    assert!(db.run(&linked).status.success());
    for step in &steps[1..] {
        let output = db.run(step);
        assert!(output.status.success(), "{output:?}");
    }
    let sim = start_simulator(30).await;

    // Act: the real daemon at debug level.
    let output = tokio::process::Command::new(binary())
        .args(["run", "--exit-when-idle", "--log-format", "json"])
        .current_dir(db.dir.path())
        .env("RUST_LOG", "debug")
        .env(VARIABLE_A, TOKEN_A)
        .env("AMC_COLLECTOR__HTTP__BIND", "127.0.0.1:0")
        .env("AMC_COLLECTOR__DATABASE__URL", &db.url)
        .env("AMC_COLLECTOR__AMC__BASE_URL", sim.base_url())
        .env("AMC_COLLECTOR__AMC__TOKEN_URL", sim.token_url())
        .env(
            "AMC_COLLECTOR__AMC__CLIENT_ID",
            crate::support::pipeline::CLIENT_ID,
        )
        .env(
            "AMC_COLLECTOR__AMC__CLIENT_SECRET",
            crate::support::pipeline::CLIENT_SECRET,
        )
        // The [amc] set's token is one the simulator does not know: only brand-a's works.
        .env("AMC_COLLECTOR__AMC__REFRESH_TOKEN", "Atzr|not-this-one")
        .env("AMC_COLLECTOR__AMC__POLL_INTERVAL_MS", "50")
        .env("AMC_COLLECTOR__AMC__MAX_REQUESTS_PER_SECOND", "0")
        .env("AMC_COLLECTOR__SCHEDULER__SCAN_INTERVAL_MS", "100")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("the daemon did not finish in time")
        .expect("run amc-collector");

    // Assert
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    let store = db.store().await;
    let collections = store.list_collections().await.unwrap();
    assert_eq!(collections.len(), 1);
    assert_eq!(collections[0].status, CollectionStatus::Completed);
    assert_eq!(sim.stats().creates_total, 2);
    assert!(
        text.contains("\"set\":\"brand-a\""),
        "the log names the set"
    );
    for secret in [TOKEN_A, "brand-a-7f3e1c05", "Atza|", "Atza%7C", "Bearer "] {
        assert!(!text.contains(secret), "the daemon printed {secret}");
    }
}

crate::on_both_backends!(
    bad_credential_input_exits_2_with_one_line_and_writes_nothing,
    credentials_list_shows_where_secrets_are_and_their_state_never_a_secret,
);

crate::actix_on_both_backends!(
    the_daemon_refreshes_a_set_from_its_environment_and_never_logs_the_secret,
);
