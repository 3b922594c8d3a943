//! Bad parameters exit 2 with one line naming what is wrong, and write nothing.

use super::catalog;
use crate::support::pipeline::INSTANCE_ID;
use crate::support::{assert_usage_error, stdout_of, Backend};

async fn bad_parameters_exit_2_naming_the_problem_and_write_nothing(backend: Backend) {
    // Arrange: the workflow uses {{brand}} and {{asins}}; another puts {{brand}} in quotes.
    let db = catalog(backend, &["--sql-file", "weekly.sql"]).await;
    std::fs::write(
        db.path("quoted.sql"),
        "SELECT 1 FROM t WHERE b = '{{brand}}'",
    )
    .unwrap();
    let quoted = [
        "workflow",
        "add",
        "--name",
        "quoted",
        "--sql-file",
        "quoted.sql",
    ];
    stdout_of(&db.run_async(&quoted).await);
    std::fs::write(db.path("empty.txt"), "\n  \n").unwrap();
    let cases: [(&str, &[&str], &str); 9] = [
        (
            "branded",
            &["--param", "brand=x"],
            "placeholder {{asins}} has no value",
        ),
        (
            "branded",
            &[
                "--param", "brand=x", "--param", "asins=a", "--param", "extra=1",
            ],
            "--param extra is used by no placeholder",
        ),
        (
            "branded",
            &["--param", "brand"],
            "--param `brand` is not NAME=VALUE",
        ),
        (
            "branded",
            &["--param", "brand=x", "--param", "asins=@missing.txt"],
            "cannot read --param asins file missing.txt",
        ),
        (
            "branded",
            &["--param", "brand=x", "--param", "asins=@empty.txt"],
            "parameter `asins` has no values",
        ),
        (
            "branded",
            &["--param", "brand=a\u{1}b", "--param", "asins=a"],
            "parameter `brand` holds a control character",
        ),
        (
            "branded",
            &["--param", "brand=a\\", "--param", "asins=a"],
            "holds a backslash",
        ),
        (
            "branded",
            &["--param", "start_date=2024-01-01"],
            "`start_date` is filled from each week's dates",
        ),
        (
            "quoted",
            &["--param", "brand=x"],
            "{{brand}} stands inside quotes",
        ),
    ];

    for (workflow, params, fragment) in cases {
        // Act
        let mut args = vec![
            "collection",
            "create",
            "--workflow",
            workflow,
            "--instance",
            INSTANCE_ID,
            "--weeks",
            "2",
        ];
        args.extend_from_slice(params);
        let output = db.run_async(&args).await;

        // Assert
        assert_usage_error(&output, fragment);
    }
    let listed = stdout_of(&db.run_async(&["collection", "list", "--json"]).await);
    assert_eq!(listed, "[]", "a refused create wrote a collection");
}

crate::actix_on_both_backends!(bad_parameters_exit_2_naming_the_problem_and_write_nothing);
