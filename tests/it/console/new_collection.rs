//! The console's "New collection" form over real HTTP on loopback: its plan is the CLI's dry run
//! and writes nothing, its create makes the fleet, bad input is one 400 line with nothing
//! written, and its POSTs are refused without the session or from another site; then the same
//! in the browser, filling the form, planning and creating.

use serde_json::{json, Value};

use super::browser::{browser, click, eventually, start_driver, STEP};
use super::{launch, post, seeded, TOKEN};
use crate::support::pipeline::{weeks, Fixture};
use crate::support::Backend;
use amc_collector::store::{NewInstance, WorkflowSource};
use fantoccini::Locator;

/// A second instance and a workflow with a `{{market}}` placeholder, beside the fixture's.
async fn second_instance_and_parameter_workflow(fx: &Fixture) {
    fx.store
        .insert_instance(&NewInstance {
            instance_id: "amcformtwo".into(),
            instance_name: "form two".into(),
            region: "na".into(),
            advertiser_id: "ENTITYTWO".into(),
            marketplace_id: "ATVPDKIKX0DER".into(),
        })
        .await
        .unwrap();
    let sql = "SELECT 1 FROM t WHERE d >= '{{start_date}}' AND m = {{market}}";
    fx.store
        .insert_workflow("by-market", &WorkflowSource::Sql(sql.into()))
        .await
        .unwrap();
}

/// Signs in with the token and returns the session cookie.
async fn sign_in(base: &str) -> String {
    let right = post(
        &format!("{base}/console/login"),
        &[("x-amc-console", "1")],
        json!({"token": TOKEN}),
    )
    .await;
    assert_eq!(right.status(), 204);
    let set_cookie = right.headers()["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_string()
}

async fn counts(fx: &Fixture) -> (i64, usize) {
    let collections = fx.store.collection_count().await.unwrap();
    (collections, weeks(&fx.store, fx.collection_id).await.len())
}

async fn the_new_collection_form_plans_without_writing_creates_a_fleet_and_refuses_bad_input(
    backend: Backend,
) {
    // Arrange: the fixture's collection (3 of 12 weeks stored), a second instance, the daemon.
    let (fx, sim) = seeded(backend).await;
    second_instance_and_parameter_workflow(&fx).await;
    let (daemon, base) = launch(&fx, &sim, Some(TOKEN)).await;
    let cookie = sign_in(&base).await;
    let origin = base.clone();
    let own = [
        ("cookie", cookie.as_str()),
        ("x-amc-console", "1"),
        ("origin", origin.as_str()),
    ];
    let last_day = weeks(&fx.store, fx.collection_id)
        .await
        .pop()
        .unwrap()
        .week_end_date;
    let form = json!({
        "workflow": "weekly", "instances": ["amcpipeline1", "amcformtwo"], "weeks": 12,
        "end_date": last_day.to_string(), "time_zone": "UTC", "week_start": "monday",
        "parameters": "",
    });
    let before = counts(&fx).await;

    // The form offers the stored workflows (with their placeholders) and instances.
    let offered: Value = reqwest::Client::new()
        .get(format!("{base}/api/new-collection"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_market = offered["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "by-market")
        .unwrap();
    assert_eq!(by_market["parameters"], json!(["market"]));
    assert_eq!(offered["instances"].as_array().unwrap().len(), 2);

    // Act: plan. Assert: the CLI's plan, per instance, the stored weeks counted; nothing written.
    let planned = post(
        &format!("{base}/api/new-collection/plan"),
        &own,
        form.clone(),
    )
    .await;
    assert_eq!(planned.status(), 200);
    let plan: Value = planned.json().await.unwrap();
    assert_eq!(plan["dry_run"], true);
    let rows = plan["instances"].as_array().unwrap();
    assert_eq!(rows[0]["instance_id"], "amcpipeline1");
    assert_eq!(
        (rows[0]["weeks"].as_u64(), rows[0]["stored"].as_u64()),
        (Some(12), Some(3))
    );
    assert_eq!(
        (rows[1]["stored"].as_u64(), rows[1]["executions"].as_u64()),
        (Some(0), Some(12))
    );
    assert_eq!(plan["total"]["executions"], 21);
    assert_eq!(plan["end_date"], last_day.to_string());
    assert_eq!(counts(&fx).await, before, "a plan writes nothing");

    // Bad input: one 400 line each, nothing written.
    for (change, fragment) in [
        (json!({"workflow": "nope"}), "unknown workflow `nope`"),
        (
            json!({"instances": ["amcnowhere"]}),
            "unknown instance `amcnowhere`",
        ),
        (
            json!({"instances": ["amcformtwo", "amcformtwo"]}),
            "names instance `amcformtwo` twice",
        ),
        (json!({"weeks": 0}), "weeks"),
        (json!({"workflow": "by-market"}), "market"),
        (
            json!({"time_zone": "Mars/Olympus"}),
            "not an IANA time zone",
        ),
        (json!({"parameters": "market"}), "not name=value"),
    ] {
        let mut bad = form.clone();
        for (key, value) in change.as_object().unwrap() {
            bad[key] = value.clone();
        }
        for endpoint in ["plan", "create"] {
            let answer = post(
                &format!("{base}/api/new-collection/{endpoint}"),
                &own,
                bad.clone(),
            )
            .await;
            assert_eq!(answer.status(), 400, "{change} on {endpoint}");
            let error: Value = answer.json().await.unwrap();
            let error = error["error"].as_str().unwrap();
            assert!(error.contains(fragment), "{change}: {error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }
    assert_eq!(counts(&fx).await, before, "bad input writes nothing");

    // Without the session, without the console header, or from another site: refused.
    let create = format!("{base}/api/new-collection/create");
    let anonymous = post(&create, &[("x-amc-console", "1")], form.clone()).await;
    assert_eq!(anonymous.status(), 401);
    let no_header = post(&create, &[("cookie", cookie.as_str())], form.clone()).await;
    assert_eq!(no_header.status(), 403);
    let foreign = [
        ("cookie", cookie.as_str()),
        ("x-amc-console", "1"),
        ("origin", "http://evil.test"),
    ];
    assert_eq!(post(&create, &foreign, form.clone()).await.status(), 403);
    assert_eq!(counts(&fx).await, before, "refused requests write nothing");

    // Act: create. Assert: a fleet of two collections, the stored weeks reused.
    let created = post(&create, &own, form.clone()).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert!(created["fleet_id"].is_string(), "{created}");
    let members = created["collections"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0]["reused_weeks"], 3);
    assert_eq!(counts(&fx).await.0, before.0 + 2);
    let fleet = fx
        .store
        .fleet_members(created["fleet_id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(fleet.len(), 2);
    let fleet_id = created["fleet_id"].as_str().unwrap();
    let get = |url: String| {
        let cookie = cookie.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let matrix: Value = get(format!("{base}/api/fleets/{fleet_id}"))
        .await
        .json()
        .await
        .unwrap();
    let rows = matrix["collections"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let weeks = row["weeks"].as_array().unwrap();
        assert_eq!(weeks.len(), 12, "{row}");
        let completed = weeks.iter().filter(|w| w["status"] == "completed").count();
        let expected = if row["instance_id"] == "amcpipeline1" {
            3
        } else {
            0
        };
        assert_eq!(completed, expected, "{row}");
    }
    let unknown = format!("{base}/api/fleets/{}", uuid::Uuid::new_v4());
    assert_eq!(get(unknown).await.status(), 404);

    daemon.stop().await.unwrap();
}

async fn an_operator_fills_the_new_collection_form_sees_the_plan_and_creates_a_fleet_in_the_browser(
    backend: Backend,
) {
    // Arrange: the daemon with a token, a second instance, and a browser signed in.
    let (fx, sim) = seeded(backend).await;
    second_instance_and_parameter_workflow(&fx).await;
    let (daemon, base) = launch(&fx, &sim, Some(TOKEN)).await;
    let driver = start_driver().await;
    let page = browser(&driver).await;
    page.goto(&format!("{base}/#/new")).await.unwrap();
    let token = page
        .wait()
        .at_most(STEP)
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    token.send_keys(TOKEN).await.unwrap();
    click(&page, "#login-form button[type=submit]").await;
    let before = counts(&fx).await;

    // Act: choose the workflow and both instances (the default 12 weeks), and plan.
    click(&page, "#new-workflow option[value='weekly']").await;
    click(&page, "#new-instances input[value='amcpipeline1']").await;
    click(&page, "#new-instances input[value='amcformtwo']").await;
    let create = page.find(Locator::Id("new-create")).await.unwrap();
    assert!(
        !create.is_enabled().await.unwrap(),
        "Create waits for a plan"
    );
    click(&page, "#new-plan").await;

    // Assert: one row per instance, the stored weeks counted, nothing written; Create offered.
    let rows = eventually("the plan shows both instances", || async {
        let rows = page
            .find_all(Locator::Css("#new-plan-table tbody tr"))
            .await
            .ok()?;
        let mut texts = Vec::new();
        for row in &rows {
            texts.push(row.text().await.ok()?);
        }
        (texts.len() == 2).then_some(texts)
    })
    .await;
    // Columns: instance, weeks, stored, executions, queue, slots, ...
    let has = |start: &str| rows.iter().any(|row| row.starts_with(start));
    assert!(has("amcpipeline1 12 3 9 "), "{rows:?}");
    assert!(has("amcformtwo 12 0 12 "), "{rows:?}");
    let total = page.find(Locator::Id("new-total")).await.unwrap();
    let total = total.text().await.unwrap();
    assert!(total.contains("21 AMC executions"), "{total}");
    assert_eq!(counts(&fx).await, before, "planning writes nothing");
    let png = page.screenshot().await.unwrap();
    let name = format!("console-new-{backend:?}.png").to_lowercase();
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::write(target.join(name), png).unwrap();
    eventually("Create is enabled", || async {
        create.is_enabled().await.ok()?.then_some(())
    })
    .await;

    // Act: create. Assert: the fleet's two collections are linked and stored.
    create.click().await.unwrap();
    let links = eventually("the created collections are linked", || async {
        let links = page
            .find_all(Locator::Css("#new-created a[data-collection]"))
            .await
            .ok()?;
        (links.len() == 2).then_some(links.len())
    })
    .await;
    assert_eq!(links, 2);
    let shown = page.find(Locator::Id("new-created")).await.unwrap();
    assert!(shown.text().await.unwrap().contains("Created fleet"));
    assert_eq!(counts(&fx).await.0, before.0 + 2);

    // The fleet's link shows it as an instance × week matrix, the reused weeks completed.
    click(&page, "#new-fleet").await;
    let matrix = eventually("the fleet's matrix shows both instances", || async {
        let rows = page
            .find_all(Locator::Css("#fleet-matrix tbody tr"))
            .await
            .ok()?;
        let mut cells = Vec::new();
        for row in &rows {
            let instance = row.attr("data-instance").await.ok()??;
            let mut statuses = Vec::new();
            for cell in row.find_all(Locator::Css("td.cell")).await.ok()? {
                statuses.push(cell.attr("data-status").await.ok()??);
            }
            cells.push((instance, statuses));
        }
        (cells.len() == 2).then_some(cells)
    })
    .await;
    for (instance, statuses) in &matrix {
        assert_eq!(statuses.len(), 12, "{instance}: {statuses:?}");
        let completed = statuses.iter().filter(|s| *s == "completed").count();
        let expected = if instance == "amcpipeline1" { 3 } else { 0 };
        assert_eq!(completed, expected, "{instance}: {statuses:?}");
    }
    let png = page.screenshot().await.unwrap();
    let name = format!("console-fleet-{backend:?}.png").to_lowercase();
    std::fs::write(target.join(name), png).unwrap();

    page.close().await.unwrap();
    drop(driver);
    daemon.stop().await.unwrap();
}

crate::actix_on_both_backends!(
    the_new_collection_form_plans_without_writing_creates_a_fleet_and_refuses_bad_input,
    an_operator_fills_the_new_collection_form_sees_the_plan_and_creates_a_fleet_in_the_browser,
);
