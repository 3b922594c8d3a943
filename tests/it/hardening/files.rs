//! The CLI against careless input: `export --output` onto what is already there, an oversized
//! `--sql-file`, and a weak `http.token`, each refused with exit 2 and one line naming it.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use crate::support::pipeline::{
    completed_week, drive_to_downloading, fixture, staged_week, weeks, Fixture,
};
use crate::support::{assert_usage_error, binary, stdout_of, Backend, TestDb};
use amc_collector::store::{Transition, WorkflowSource};

/// A collection with one completed week of two rows.
async fn exported(backend: Backend) -> Fixture {
    let source = WorkflowSource::Sql("SELECT n FROM t WHERE d >= '{{start_date}}'".into());
    let fx = fixture(backend, 1, source).await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let execution = drive_to_downloading(&fx, &week, "amc-export-1").await;
    let done = completed_week(&fx, &week, execution, "amc-export-1").await;
    fx.store
        .apply_transition(Transition::Completed(done))
        .await
        .unwrap()
        .unwrap();
    fx
}

fn export(fx: &Fixture, output: &Path, force: bool) -> Output {
    let id = fx.collection_id.to_string();
    let output = output.to_str().unwrap();
    let mut args = vec!["collection", "export", &id, "--output", output];
    if force {
        args.push("--force");
    }
    fx.db.run(&args)
}

async fn export_onto_an_existing_file_is_refused_without_force_and_names_it(backend: Backend) {
    let fx = exported(backend).await;
    let target = fx.db.path("report.csv");
    std::fs::write(&target, "keep me\n").unwrap();

    let refused = export(&fx, &target, false);

    assert_usage_error(&refused, &format!("{} already exists", target.display()));
    assert_usage_error(&refused, "--force");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");

    // A directory is refused the same way, before any row is read.
    let dir = fx.db.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    assert_usage_error(&export(&fx, &dir, false), &dir.display().to_string());
    assert!(dir.is_dir());
    // A directory that does not exist is named too.
    let missing = fx.db.path("no/such/dir/report.csv");
    assert_usage_error(&export(&fx, &missing, false), "no/such/dir");
}

async fn export_with_force_replaces_only_a_regular_file_keeping_its_permissions(backend: Backend) {
    let fx = exported(backend).await;
    let target = fx.db.path("report.csv");
    std::fs::write(&target, "old\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();

    stdout_of(&export(&fx, &target, true));

    let written = std::fs::read_to_string(&target).unwrap();
    assert!(written.starts_with("week_start,"), "{written}");
    assert_eq!(
        written.lines().count(),
        3,
        "a header and two rows: {written}"
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    let leftovers: Vec<_> = std::fs::read_dir(fx.db.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file left: {leftovers:?}"
    );
}

async fn export_with_force_never_replaces_a_symlink_a_fifo_or_a_directory(backend: Backend) {
    let fx = exported(backend).await;
    let victim = fx.db.path("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    let link = fx.db.path("link.csv");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let fifo = fx.db.path("pipe.csv");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let dir = fx.db.path("dir.csv");
    std::fs::create_dir(&dir).unwrap();

    for (target, kind) in [
        (&link, "a symbolic link"),
        (&fifo, "a fifo"),
        (&dir, "a directory"),
    ] {
        let refused = export(&fx, target, true);
        assert_usage_error(&refused, &format!("{} is {kind}", target.display()));
    }

    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(dir.is_dir());
    // --force means nothing without --output.
    let id = fx.collection_id.to_string();
    let alone = fx.db.run(&["collection", "export", &id, "--force"]);
    assert_eq!(alone.status.code(), Some(2));
}

/// A collection with one completed week of `rows` rows of about 100 bytes each.
async fn exported_big(backend: Backend, rows: i32) -> Fixture {
    let source = WorkflowSource::Sql("SELECT n FROM t WHERE d >= '{{start_date}}'".into());
    let fx = fixture(backend, 1, source).await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let execution = drive_to_downloading(&fx, &week, "amc-export-big").await;
    let csv: String = std::iter::once("n\n".to_string())
        .chain((0..rows).map(|i| format!("{i:0>100}\n")))
        .collect();
    let done = staged_week(&fx, &week, execution, "amc-export-big", &csv).await;
    assert_eq!(done.row_count, i64::from(rows));
    fx.store
        .apply_transition(Transition::Completed(done))
        .await
        .unwrap()
        .unwrap();
    fx
}

async fn an_export_that_fails_while_writing_exits_1_naming_the_path_and_leaves_no_file(
    backend: Backend,
) {
    // Arrange: an export of about 200 KB, and a process whose files may not grow past 64 KiB
    // (RLIMIT_FSIZE; SIGXFSZ ignored, so the write fails with EFBIG instead of killing it).
    let fx = exported_big(backend, 2000).await;
    let target = fx.db.path("big.csv");
    let script =
        "trap '' XFSZ; ulimit -f 128 && exec \"$0\" collection export \"$1\" --output \"$2\"";

    // Act
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(binary())
        .arg(fx.collection_id.to_string())
        .arg(&target)
        .current_dir(fx.db.dir.path())
        .env("AMC_COLLECTOR__DATABASE__URL", &fx.db.url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();

    // Assert: exit 1, one line naming the path; nothing at the path, no temporary file left.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&target.display().to_string()), "{stderr}");
    assert!(!target.exists());
    let leftovers = std::fs::read_dir(fx.db.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(leftovers, 0);
}

crate::actix_on_both_backends!(
    an_export_that_fails_while_writing_exits_1_naming_the_path_and_leaves_no_file,
    export_onto_an_existing_file_is_refused_without_force_and_names_it,
    export_with_force_replaces_only_a_regular_file_keeping_its_permissions,
    export_with_force_never_replaces_a_symlink_a_fifo_or_a_directory,
);

/// `workflow add --sql-file FILE` under a 1 GiB address-space limit: code that reads an endless
/// file whole fails to allocate instead of eating the machine's memory.
fn add_workflow_limited(db: &TestDb, file: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" workflow add --name big --sql-file \"$1\"")
        .arg(binary())
        .arg(file)
        .current_dir(db.dir.path())
        .env("AMC_COLLECTOR__DATABASE__URL", &db.url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_sql_file_over_1_mib_or_endless_is_refused_with_exit_2_and_nothing_stored() {
    let db = TestDb::new(Backend::Sqlite).await;
    stdout_of(&db.run(&["migrate"]));
    // Valid SQL, one byte over the cap (a comment pads it).
    let mut big = String::from("SELECT 1 FROM t -- ");
    big.push_str(&"x".repeat(1024 * 1024 + 1 - big.len() - 1));
    big.push('\n');
    assert_eq!(big.len(), 1024 * 1024 + 1);
    std::fs::write(db.path("big.sql"), &big).unwrap();

    assert_usage_error(
        &add_workflow_limited(&db, "big.sql"),
        "big.sql is larger than 1 MiB",
    );
    assert_usage_error(
        &add_workflow_limited(&db, "/dev/zero"),
        "/dev/zero is larger than 1 MiB",
    );

    let listed = db.run(&["workflow", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&stdout_of(&listed)).unwrap();
    assert_eq!(listed, serde_json::json!([]));
}

#[tokio::test]
async fn a_short_or_padded_http_token_stops_the_daemon_at_start_naming_the_rule() {
    let db = TestDb::new(Backend::Sqlite).await;
    for (token, rule) in [
        ("short-token", "must be at least 16 characters"),
        (
            " padded-token-that-is-long ",
            "must not start or end with whitespace",
        ),
    ] {
        let output = db.run_with_env(&["run"], &[("AMC_COLLECTOR__HTTP__TOKEN", token)]);
        assert_usage_error(&output, "http.token");
        assert_usage_error(&output, rule);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains(token.trim()),
            "the token is never shown: {stderr}"
        );
    }
}
