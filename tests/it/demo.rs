//! The README's first command: `amc-collector demo` runs a collection against the built-in
//! simulator into a fresh SQLite file and prints the final table.

use crate::support;
use crate::support::{Backend, TestDb};

#[tokio::test]
async fn the_demo_runs_to_the_end_and_leaves_a_database_with_every_week_completed() {
    // Arrange: an empty directory and no configuration at all.
    let dir = TestDb::new(Backend::Sqlite).await;

    // Act
    let output = tokio::process::Command::new(support::binary())
        .args(["demo", "--weeks", "4", "--database", "demo.db"])
        .current_dir(dir.dir.path())
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("EXECUTION UUID"), "{stdout}");
    assert!(stdout.contains("4/4 weeks completed"), "{stdout}");
    let store = amc_collector::store::Store::open(
        &format!("sqlite://{}", dir.path("demo.db").display()),
        1,
    )
    .await
    .unwrap();
    let collections = store.list_collections().await.unwrap();
    assert_eq!(collections.len(), 1);
    assert_eq!(collections[0].weeks_completed, 4);
    let again = std::process::Command::new(support::binary())
        .args(["demo", "--database", "demo.db"])
        .current_dir(dir.dir.path())
        .output()
        .unwrap();
    support::assert_usage_error(&again, "already exists");
}
