//! The README's first command: `amc-collector demo` runs a collection against the built-in
//! simulator into a fresh SQLite file and prints the final table.

use crate::support;
use crate::support::{Backend, TestDb};

#[tokio::test]
async fn the_demo_says_its_faults_runs_to_the_end_without_error_lines_and_leaves_every_week_completed(
) {
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
    // A demonstration: the faults are said first and told at the end, never logged as errors.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("ERROR"), "{stderr}");
    let said = stdout
        .find("The simulator will inject these faults")
        .unwrap_or_else(|| panic!("faults not said first: {stdout}"));
    let told = stdout
        .find("How each fault was handled:")
        .unwrap_or_else(|| panic!("faults not told: {stdout}"));
    assert!(
        said < stdout.find("EXECUTION UUID").unwrap_or(0),
        "{stdout}"
    );
    assert!(told > said, "{stdout}");
    assert!(
        stdout.contains("refreshes refused; AMC calls waited"),
        "{stdout}"
    );
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
