//! A command whose reader went away (`collection show ID | head -1`) ends quietly: the default
//! SIGPIPE (141 in a shell) or 0, never a panic.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use amc_collector::store::WorkflowSource;

use crate::support::pipeline::fixture;
use crate::support::{binary, Backend};

const SQL: &str = "SELECT 1 FROM t WHERE d >= '{{start_date}}'";

async fn show_into_a_closed_pipe_ends_quietly(backend: Backend) {
    // Arrange: a collection of many weeks (more than one line to print).
    let fx = fixture(backend, 40, WorkflowSource::Sql(SQL.into())).await;
    let id = fx.collection_id.to_string();

    // Act: the reader closes its end before the command writes (`| head -0`).
    let mut child = Command::new(binary())
        .args(["collection", "show", &id])
        .current_dir(fx.db.dir.path())
        .env("AMC_COLLECTOR__DATABASE__URL", &fx.db.url)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();

    // Assert
    let quiet = status.code() == Some(0) || status.signal() == Some(libc::SIGPIPE);
    assert!(quiet, "{status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

crate::actix_on_both_backends!(show_into_a_closed_pipe_ends_quietly);
