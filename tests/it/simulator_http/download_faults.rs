//! The download-side faults over the wire: malformed downloadUrls, result files cut off before
//! their Content-Length, S3 `503 SlowDown`, a failed DOWNLOAD output channel, and `Retry-After`
//! given as an HTTP date.

use super::*;

#[tokio::test]
async fn malformed_download_urls_rotate_through_each_shape_then_the_urls_are_served() {
    let sim = spawn(SimulatorConfig {
        malformed_download_urls: 4,
        ..fast_config()
    })
    .await;
    let id = sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    sim.wait_for(&id, "SUCCEEDED").await;

    let mut bodies = Vec::new();
    for _ in 0..4 {
        let reply = sim.download_urls(&id).await;
        assert_eq!(reply.status(), StatusCode::OK);
        bodies.push(reply.text().await.unwrap());
    }
    let as_json: Vec<Option<Value>> = bodies
        .iter()
        .map(|b| serde_json::from_str(b).ok())
        .collect();
    assert_eq!(
        as_json[0].as_ref().map(|v| v.get("downloadUrls").is_none()),
        Some(true)
    );
    assert_eq!(as_json[1], Some(json!({"downloadUrls": null})));
    assert_eq!(as_json[2], Some(json!({"downloadUrls": "x"})));
    assert_eq!(
        as_json[3], None,
        "the last shape is not JSON: {}",
        bodies[3]
    );

    let reply: Value = sim.download_urls(&id).await.json().await.unwrap();
    assert!(reply["downloadUrls"]
        .as_array()
        .is_some_and(|urls| !urls.is_empty()));
    assert_eq!(sim.handle.stats().served_malformed_download_urls, 4);
}

#[tokio::test]
async fn a_truncated_download_declares_the_full_length_and_the_client_sees_the_body_fail() {
    let sim = spawn(SimulatorConfig {
        truncated_downloads: 1,
        ..fast_config()
    })
    .await;
    let id = sim.create_id(&week("2024-03-04", "2024-03-11")).await;
    let urls = sim.urls_of_succeeded(&id).await;
    let expected = expected_result_files(
        INSTANCE,
        "weekly_sales",
        "2024-03-04T00:00:00",
        "2024-03-11T00:00:00",
        1.0,
    );

    let reply = sim.client.get(&urls[0]).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.content_length(), Some(expected[0].len() as u64));
    let cut = reply.bytes().await;
    assert!(
        cut.is_err(),
        "a body cut before Content-Length must be an error: {cut:?}"
    );

    let again = sim.client.get(&urls[0]).send().await.unwrap();
    assert_eq!(&again.bytes().await.unwrap()[..], &expected[0][..]);
    assert_eq!(sim.handle.stats().served_truncated_downloads, 1);
}

#[tokio::test]
async fn s3_slowdown_is_a_503_with_s3s_xml_body_with_and_without_retry_after() {
    let sim = spawn(SimulatorConfig {
        s3_slowdowns: 2,
        ..fast_config()
    })
    .await;
    let id = sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    let urls = sim.urls_of_succeeded(&id).await;

    let first = sim.client.get(&urls[0]).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(first.headers().get("retry-after").is_none());
    assert!(first
        .text()
        .await
        .unwrap()
        .contains("<Code>SlowDown</Code>"));
    let second = sim.client.get(&urls[0]).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers()["retry-after"], "1");
    let third = sim.client.get(&urls[0]).send().await.unwrap();
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(sim.handle.stats().served_s3_slowdowns, 2);
}

#[tokio::test]
async fn a_failed_download_channel_is_reported_and_download_urls_stay_unavailable() {
    let sim = spawn(SimulatorConfig {
        download_channel_fail_windows: vec!["2024-01-01".parse().unwrap()],
        ..fast_config()
    })
    .await;
    let doomed = sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    let fine = sim.create_id(&week("2024-01-08", "2024-01-15")).await;

    let execution = sim.wait_for(&doomed, "SUCCEEDED").await;
    let channel = &execution["outputChannels"][0];
    assert_eq!(channel["channel"]["type"], "DOWNLOAD");
    assert_eq!(channel["status"], "FAILED");
    assert!(channel["statusReason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    let reply = sim.download_urls(&doomed).await;
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    let details = reply.json::<Value>().await.unwrap()["details"].clone();
    assert_eq!(
        details,
        format!("Execution with ID {doomed} is unavailable for download")
    );

    let execution = sim.wait_for(&fine, "SUCCEEDED").await;
    assert_eq!(execution["outputChannels"][0]["status"], "AVAILABLE");
    assert_eq!(sim.download_urls(&fine).await.status(), StatusCode::OK);
    assert_eq!(sim.handle.stats().served_download_channel_failures, 2);
}

#[tokio::test]
async fn retry_after_can_be_an_http_date_no_earlier_than_the_configured_wait() {
    let sim = spawn(SimulatorConfig {
        rate_429: 1.0,
        retry_after_secs: 120,
        retry_after_http_date: true,
        ..fast_config()
    })
    .await;
    let asked_at = chrono::Utc::now();
    let reply = sim.create(&week("2024-01-01", "2024-01-08")).await;
    assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
    let raw = reply.headers()["retry-after"].to_str().unwrap().to_owned();
    assert!(raw.ends_with(" GMT"), "{raw}");
    let at = chrono::DateTime::parse_from_rfc2822(&raw).unwrap();
    let wait = at.with_timezone(&chrono::Utc) - asked_at;
    assert!(
        wait >= chrono::TimeDelta::seconds(119),
        "{raw} is {wait} away"
    );

    sim.handle.control().set_retry_after_http_date(false);
    let reply = sim.create(&week("2024-01-01", "2024-01-08")).await;
    assert_eq!(reply.headers()["retry-after"], "120");
    let stats = sim.handle.stats();
    assert_eq!((stats.served_429, stats.served_retry_after_dates), (2, 1));
}
