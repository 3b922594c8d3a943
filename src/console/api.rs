//! The console's JSON endpoints: what the page reads (collections, one collection's weeks) and
//! what it asks for (the operator's controls, a week's rerun). Sign-in is `crate::http`'s.
//!
//! Reads come from the store's console queries (`store::overview`) and, for what only the
//! running daemon knows (credentials failing, weeks held back by AMC's daily limit), from the
//! inspector's tree. Actions are the CLI's own store calls.
//!
//! Text that came from outside (workflow names, instance ids, AMC's reasons and ids, LwA's
//! errors) is escaped as the CLI escapes it (`crate::escape`) before it reaches the page: a bidi
//! override in a name would otherwise reverse the page's own text around it.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{check_same_origin, Console};
use crate::escape::escape_controls;
use crate::ids::CollectionId;
use crate::observe::{GetTree, TreeStatus, ASK_TIMEOUT};
use crate::status::CollectionStatus;
use crate::store::{CollectionOverview, Control, StoreError, WeekDetail};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/api/collections", web::get().to(list))
        .route("/api/collections/{id}", web::get().to(detail))
        .route("/api/collections/{id}/{action}", web::post().to(control))
        .route(
            "/api/collections/{id}/weeks/{day}/rerun",
            web::post().to(rerun),
        );
}

/// A collection as the page shows it: the store's overview plus what the daemon holds back.
#[derive(Debug, Serialize)]
struct CollectionView {
    #[serde(flatten)]
    overview: CollectionOverview,
    /// When the collection ended (completed, failed or cancelled).
    finished_at: Option<DateTime<Utc>>,
    /// Its weeks wait for AMC's daily limit until then (from the running daemon).
    waiting_daily_limit_until: Option<DateTime<Utc>>,
    /// `AMC refuses creates: <message> (since T)` (from the running daemon).
    create_refusal: Option<String>,
}

/// What only the running daemon knows, applying to every collection.
#[derive(Debug, Default, Serialize)]
struct DaemonView {
    /// "credentials failing since T: reason" while the token cannot be refreshed.
    credentials_failing: Option<String>,
    /// "credential set NAME failing since T: reason", one per set that holds its instances.
    credential_sets_failing: Vec<String>,
    shutting_down: bool,
}

fn view(mut overview: CollectionOverview, tree: Option<&TreeStatus>) -> CollectionView {
    overview.workflow = escape_controls(&overview.workflow).into_owned();
    overview.instance = escape_controls(&overview.instance).into_owned();
    overview.error_message = escape_opt(overview.error_message);
    let finished_at = match overview.status {
        CollectionStatus::Completed => overview.last_completed_at,
        CollectionStatus::Failed | CollectionStatus::Cancelled => Some(overview.updated_at),
        _ => None,
    };
    let progress = tree.and_then(|tree| {
        tree.supervisor
            .children
            .iter()
            .find(|child| child.collection_id == overview.id)
            .and_then(|child| child.progress.as_ref())
    });
    CollectionView {
        overview,
        finished_at,
        waiting_daily_limit_until: progress.and_then(|p| p.waiting_daily_limit_until),
        create_refusal: progress.and_then(|p| p.create_refusal.clone()),
    }
}

/// The daemon's tree, when its inspector answers in time (the page still works without it).
async fn tree(console: &Console) -> Option<TreeStatus> {
    match console
        .inspector
        .send(GetTree)
        .timeout(ASK_TIMEOUT * 4)
        .await
    {
        Ok(Ok(tree)) => Some(tree),
        _ => None,
    }
}

fn daemon_view(tree: Option<&TreeStatus>) -> DaemonView {
    tree.map(|tree| DaemonView {
        credentials_failing: escape_opt(tree.gateway.credentials.describe()),
        credential_sets_failing: tree
            .gateway
            .credential_sets
            .iter()
            .filter(|set| set.name != crate::amc::DEFAULT_CREDENTIAL_SET)
            .filter_map(|set| set.describe())
            .map(|line| escape_controls(&line).into_owned())
            .collect(),
        shutting_down: tree.supervisor.shutting_down,
    })
    .unwrap_or_default()
}

/// Collections per page of the list (the page refreshes every second: one page is read, not
/// every collection).
const PER_PAGE: i64 = 50;
/// Most collections one page may ask for.
const MAX_PER_PAGE: i64 = 500;

/// `?page=N` (from 0) and `?per_page=M` of the list.
#[derive(Debug, Deserialize)]
struct Paging {
    #[serde(default)]
    page: i64,
    #[serde(default)]
    per_page: Option<i64>,
}

async fn list(console: web::Data<Console>, paging: web::Query<Paging>) -> HttpResponse {
    let per_page = paging.per_page.unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE);
    let page = paging.page.clamp(0, i64::from(u32::MAX));
    let total = match console.store.collection_count().await {
        Ok(total) => total,
        Err(error) => return store_failure(&error),
    };
    let overviews = match console
        .store
        .collection_overviews(per_page, page.saturating_mul(per_page))
        .await
    {
        Ok(overviews) => overviews,
        Err(error) => return store_failure(&error),
    };
    let tree = tree(&console).await;
    let collections: Vec<CollectionView> = overviews
        .into_iter()
        .map(|overview| view(overview, tree.as_ref()))
        .collect();
    HttpResponse::Ok().json(json!({
        "taken_at": Utc::now(),
        "daemon": daemon_view(tree.as_ref()),
        "collections": collections,
        "page": page,
        "per_page": per_page,
        "total": total,
    }))
}

async fn detail(console: web::Data<Console>, path: web::Path<String>) -> HttpResponse {
    let Ok(id) = path.parse::<CollectionId>() else {
        return not_found(&path);
    };
    let overview = match console.store.collection_overview(id).await {
        Ok(Some(overview)) => overview,
        Ok(None) => return not_found(&path),
        Err(error) => return store_failure(&error),
    };
    let weeks: Vec<WeekDetail> = match console.store.week_details(id).await {
        Ok(weeks) => weeks.into_iter().map(escape_week).collect(),
        Err(error) => return store_failure(&error),
    };
    let tree = tree(&console).await;
    // The workflow's typed relation, for a dashboard (none until a week of it completed).
    let relation = match console.store.relation_of_collection(id).await {
        Ok(relation) => relation,
        Err(error) => return store_failure(&error),
    };
    HttpResponse::Ok().json(json!({
        "taken_at": Utc::now(),
        "daemon": daemon_view(tree.as_ref()),
        "collection": view(overview, tree.as_ref()),
        "weeks": weeks,
        "relation": relation,
    }))
}

async fn control(
    request: HttpRequest,
    console: web::Data<Console>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if let Err(refusal) = check_same_origin(request.headers()) {
        return refused(refusal.to_string());
    }
    let (id, action) = path.into_inner();
    let control = match action.as_str() {
        "pause" => Control::Pause,
        "resume" => Control::Resume,
        "cancel" => Control::Cancel,
        "retry-failed" => Control::RetryFailed,
        _ => return not_found(&action),
    };
    let Ok(id) = id.parse::<CollectionId>() else {
        return not_found(&id);
    };
    match console.store.apply_control(id, control).await {
        Ok(changed) => {
            tracing::info!(collection_id = %id, action, changed, "Console: control applied.");
            HttpResponse::Ok().json(json!({ "action": action, "weeks_changed": changed }))
        }
        Err(error) => action_failure(&error),
    }
}

async fn rerun(
    request: HttpRequest,
    console: web::Data<Console>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if let Err(refusal) = check_same_origin(request.headers()) {
        return refused(refusal.to_string());
    }
    let (id, day) = path.into_inner();
    let Ok(id) = id.parse::<CollectionId>() else {
        return not_found(&id);
    };
    let Ok(day) = NaiveDate::parse_from_str(&day, "%Y-%m-%d") else {
        return HttpResponse::BadRequest()
            .json(json!({"error": "the week is not a YYYY-MM-DD date"}));
    };
    match console.store.request_rerun(id, day).await {
        Ok(requested) => {
            tracing::info!(collection_id = %id, week_start = %requested.week_start,
                previous_execution_id = %requested.previous_execution_id,
                "Console: week rerun requested.");
            HttpResponse::Ok().json(json!({
                "week_start": requested.week_start,
                "previous_execution_id": requested.previous_execution_id,
            }))
        }
        Err(error) => action_failure(&error),
    }
}

fn escape_opt(text: Option<String>) -> Option<String> {
    text.map(|text| escape_controls(&text).into_owned())
}

/// A week with its outside text escaped for the page.
fn escape_week(mut week: WeekDetail) -> WeekDetail {
    week.amc_execution_id = escape_opt(week.amc_execution_id);
    week.data_checksum = escape_opt(week.data_checksum);
    week.error_message = escape_opt(week.error_message);
    week
}

fn refused(reason: String) -> HttpResponse {
    HttpResponse::Forbidden().json(json!({ "error": reason }))
}

fn not_found(what: &str) -> HttpResponse {
    let what = escape_controls(what);
    HttpResponse::NotFound().json(json!({ "error": format!("{what} not found") }))
}

/// An action the store refused tells the operator why (409/404); anything else is the
/// database failing (503).
fn action_failure(error: &StoreError) -> HttpResponse {
    match error {
        StoreError::InvalidTransition(message) => {
            HttpResponse::Conflict().json(json!({ "error": escape_controls(message) }))
        }
        StoreError::NotFound(message) => {
            HttpResponse::NotFound().json(json!({ "error": escape_controls(message) }))
        }
        other => store_failure(other),
    }
}

fn store_failure(error: &StoreError) -> HttpResponse {
    tracing::warn!(%error, "Console: the database did not answer.");
    HttpResponse::ServiceUnavailable().json(json!({ "error": "the database did not answer" }))
}
