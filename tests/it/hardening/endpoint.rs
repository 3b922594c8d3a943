//! The endpoint's outer checks: the `Host` allow-list (DNS rebinding), bounded bodies, the
//! protective headers, and outside text escaped for the console.

use std::time::Duration;

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{launch, send, world};
use crate::support::pipeline::{add_collection, intent, weeks};
use crate::support::Backend;
use amc_collector::ids::ExecutionId;
use amc_collector::status::CollectionStatus;
use amc_collector::store::{Control, Transition, WorkflowSource};

async fn a_rebinding_page_with_a_foreign_host_and_matching_origin_reaches_nothing(
    backend: Backend,
) {
    // Arrange: the default set-up, no token; a page at evil.example rebinds to 127.0.0.1.
    let world = world(backend).await;
    let (daemon, base, port) = launch(&world, None, |_| {}).await;
    let evil_host = format!("evil.example:{port}");
    let evil_origin = format!("http://{evil_host}");
    let page = [
        ("host", evil_host.as_str()),
        ("origin", evil_origin.as_str()),
    ];

    // Act + assert: every read and every action is refused before any handler.
    for path in ["/status", "/api/collections", "/healthz", "/metrics", "/"] {
        let reply = send(Method::GET, &format!("{base}{path}"), &page, None).await;
        assert_eq!(reply.status(), 421, "{path}");
        assert_eq!(reply.headers()["x-content-type-options"], "nosniff");
    }
    let cancel = format!("{base}/api/collections/{}/cancel", world.fx.collection_id);
    let mut action = page.to_vec();
    action.extend([("x-amc-console", "1"), ("sec-fetch-site", "same-origin")]);
    let reply = send(Method::POST, &cancel, &action, Some(serde_json::json!({}))).await;
    assert_eq!(reply.status(), 421);
    let collection = world.fx.store.collection(world.fx.collection_id).await;
    assert_eq!(
        collection.unwrap().unwrap().status,
        CollectionStatus::Paused
    );

    // The names the endpoint is really reached by still work, with the port.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let reply = send(
            Method::GET,
            &format!("{base}/status"),
            &[("host", &host)],
            None,
        )
        .await;
        assert_eq!(reply.status(), 200, "{host}");
    }
    let status = format!("{base}/status");
    let portless = send(Method::GET, &status, &[("host", "localhost")], None).await;
    assert_eq!(portless.status(), 421);
    daemon.stop().await.unwrap();

    // A name a reverse proxy forwards is answered once configured.
    let (daemon, base, _) = launch(&world, None, |settings| {
        settings.http.allowed_hosts = vec!["collector.example.com".into()];
    })
    .await;
    let proxied = [("host", "collector.example.com")];
    let reply = send(Method::GET, &format!("{base}/status"), &proxied, None).await;
    assert_eq!(reply.status(), 200);
    daemon.stop().await.unwrap();
}

async fn every_response_says_nosniff_and_json_replies_are_never_cached(backend: Backend) {
    let world = world(backend).await;
    let (daemon, base, _) = launch(&world, Some(super::TOKEN), |_| {}).await;
    let auth = format!("Bearer {}", super::TOKEN);
    let with_token = [("authorization", auth.as_str())];
    for (path, headers, status, json) in [
        ("/status", &with_token[..], 200, true),
        ("/api/collections", &with_token[..], 200, true),
        ("/healthz", &with_token[..], 200, false),
        ("/metrics", &with_token[..], 200, false),
        ("/", &[][..], 200, false),
        ("/status", &[][..], 401, false),
        ("/nowhere", &with_token[..], 404, false),
    ] {
        let reply = send(Method::GET, &format!("{base}{path}"), headers, None).await;
        assert_eq!(reply.status(), status, "{path}");
        assert_eq!(
            reply.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        if json {
            assert_eq!(reply.headers()["cache-control"], "no-store", "{path}");
        }
    }
    daemon.stop().await.unwrap();
}

async fn a_login_body_over_4_kib_is_refused_unread(backend: Backend) {
    let world = world(backend).await;
    let (daemon, base, _) = launch(&world, Some(super::TOKEN), |_| {}).await;
    let huge = serde_json::json!({ "token": "x".repeat(5 * 1024) });
    let console = [("x-amc-console", "1")];
    let reply = send(
        Method::POST,
        &format!("{base}/console/login"),
        &console,
        Some(huge),
    )
    .await;
    assert_eq!(reply.status(), 413);
    assert!(reply.headers().get("set-cookie").is_none());
    daemon.stop().await.unwrap();
}

#[actix_rt::test]
async fn a_body_trickling_in_is_cut_off_at_the_read_deadline() {
    let world = world(Backend::Sqlite).await;
    let (daemon, _, port) = launch(&world, Some(super::TOKEN), |_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /console/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-amc-console: 1\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Nothing more is sent: the server must answer by itself (10 s deadline), not wait forever.
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut reply));
    read.await
        .expect("the server answered within 30 s")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    daemon.stop().await.unwrap();
}

async fn names_and_reasons_reach_the_console_escaped(backend: Backend) {
    // Arrange: a workflow name with a right-to-left override, a week failed with an ESC sequence
    // and a forged line in its reason.
    let world = world(backend).await;
    let fx = &world.fx;
    let source = WorkflowSource::Sql("SELECT 2 FROM t WHERE d >= '{{start_date}}'".into());
    let hostile = fx
        .store
        .insert_workflow("weekly\u{202e}txt.exe", &source)
        .await
        .unwrap();
    let named = add_collection(&fx.store, &fx.instance, &hostile, 1, "UTC").await;
    fx.store.apply_control(named, Control::Pause).await.unwrap();
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let execution_id = ExecutionId::new();
    let resume = fx.store.apply_control(fx.collection_id, Control::Resume);
    resume.await.unwrap();
    for transition in [
        Transition::Intent(intent(fx, &week, execution_id)),
        Transition::Failed(amc_collector::store::Failed {
            collection_id: fx.collection_id,
            week_id: week.id,
            execution_id: Some(execution_id),
            amc_status: Some("FAILED".into()),
            reason: "bad\u{1b}[2J\nERROR forged \u{202e}".into(),
            retry_at: None,
            fence: fx.fence.clone(),
        }),
    ] {
        fx.store
            .apply_transition(transition)
            .await
            .unwrap()
            .unwrap();
    }
    let pause = fx.store.apply_control(fx.collection_id, Control::Pause);
    pause.await.unwrap();
    let (daemon, base, _) = launch(&world, None, |_| {}).await;

    // Act
    let list = send(Method::GET, &format!("{base}/api/collections"), &[], None).await;
    let list = list.text().await.unwrap();
    let detail = format!("{base}/api/collections/{}", fx.collection_id);
    let detail = send(Method::GET, &detail, &[], None)
        .await
        .text()
        .await
        .unwrap();

    // Assert: the controls arrive as visible escapes, never raw (JSON would carry them as
    // \u202e / \u001b, which the page would then render as the characters themselves).
    for body in [&list, &detail] {
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        let text = value.to_string();
        assert!(!text.contains(['\u{202e}', '\u{1b}', '\n']), "{text}");
    }
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let shown = list["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == named.to_string())
        .unwrap();
    assert_eq!(shown["workflow"], "weekly\\u{202e}txt.exe");
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    let failed = detail["weeks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["error_message"].is_string())
        .unwrap();
    assert_eq!(
        failed["error_message"],
        "bad\\x1b[2J\\nERROR forged \\u{202e}"
    );
    daemon.stop().await.unwrap();
}

crate::actix_on_both_backends!(
    a_rebinding_page_with_a_foreign_host_and_matching_origin_reaches_nothing,
    every_response_says_nosniff_and_json_replies_are_never_cached,
    a_login_body_over_4_kib_is_refused_unread,
    names_and_reasons_reach_the_console_escaped,
);
