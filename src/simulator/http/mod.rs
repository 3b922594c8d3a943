//! HTTP surface of the simulator: route table, the admission checks every AMC call goes through
//! (fault injection, bearer token, client-id and account headers) and the AMC-style error replies.

mod download_urls;
mod executions;
mod list;
mod s3;
mod token;

use std::time::Instant;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use secrecy::ExposeSecret;
use serde_json::json;

use super::state::Shared;

/// Largest accepted request body; inline SQL can be long.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// An AMC API error reply (`{"code", "details"}`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Too Many Requests")]
    Throttled { retry_after_secs: u64 },
    /// A 429 whose `Retry-After` is an HTTP date (RFC 9110 allows both forms).
    #[error("Too Many Requests")]
    ThrottledUntil(chrono::DateTime<chrono::Utc>),
    #[error("simulated server error")]
    ServerFault(StatusCode),
    /// Plain throttling as the Ads API sends it: 429 without `Retry-After`.
    #[error("Too Many Requests")]
    ThrottledBare,
    /// The daily limit's refusal, without `Retry-After`: by default a 429 naming the limit; its
    /// status and message are configurable because AMC does not document them.
    #[error("{message}")]
    DailyLimit { status: StatusCode, message: String },
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Throttled { .. } | ApiError::ThrottledUntil(_) | ApiError::ThrottledBare => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::DailyLimit { status, .. } => *status,
            ApiError::ServerFault(status) => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut reply = HttpResponse::build(status);
        if let ApiError::Throttled { retry_after_secs } = self {
            reply.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let ApiError::ThrottledBare = self {
            reply.insert_header(("amazon-advertising-api-throttled", "true"));
        }
        if let ApiError::ThrottledUntil(at) = self {
            let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            reply.insert_header((header::RETRY_AFTER, date));
        }
        reply.json(json!({"code": status.as_u16().to_string(), "details": self.to_string()}))
    }
}

/// Registers every route of the simulator.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .route("/auth/o2/token", web::post().to(token::refresh))
        .service(
            web::scope("/amc/reporting/{instance_id}")
                .route("/workflowExecutions", web::post().to(executions::create))
                .route("/workflowExecutions", web::get().to(list::list))
                .route("/workflowExecutions/{id}", web::get().to(executions::get))
                .route(
                    "/workflowExecutions/{id}",
                    web::put().to(executions::cancel),
                )
                .route(
                    "/workflowExecutions/{id}/downloadUrls",
                    web::get().to(download_urls::download_urls),
                ),
        )
        .route("/__sim/s3/{execution}/{index}", web::get().to(s3::download))
        .route(
            "/__sim/s3-metadata/{execution}",
            web::get().to(download_urls::metadata),
        )
        .route("/__sim/stats", web::get().to(stats))
        .route("/__sim/executions", web::get().to(received))
        .route("/__sim/reset-stats", web::post().to(reset_stats))
        .route("/__sim/revoke-refresh-token", web::post().to(token::revoke))
        .default_service(web::to(not_found));
}

/// Runs the checks of every AMC call in AMC's order: injected faults first (so a throttled
/// create creates nothing), then the token, the client id and the account headers. Returns a
/// spare random draw for per-request decisions such as omitting the execution id.
pub(crate) fn admit(shared: &Shared, headers: &HeaderMap) -> Result<f64, ApiError> {
    let [roll_429, roll_5xx, spare] = shared.rolls();
    let now = Instant::now();
    let mut state = shared.lock();
    if roll_429 < state.faults.rate_429 {
        state.stats.served_429 += 1;
        let retry_after_secs = shared.config.retry_after_secs;
        if state.faults.download.retry_after_http_date {
            state.stats.served_retry_after_dates += 1;
            // HTTP dates have whole seconds: round up so the wait is never shorter than asked.
            let secs = i64::try_from(retry_after_secs.min(366 * 86_400)).unwrap_or(0) + 1;
            let now = chrono::Utc::now();
            let at = chrono::Duration::try_seconds(secs)
                .and_then(|wait| now.checked_add_signed(wait))
                .unwrap_or(now);
            return Err(ApiError::ThrottledUntil(at));
        }
        return Err(ApiError::Throttled { retry_after_secs });
    }
    // The same draw as above, past its band: the two kinds of 429 never overlap.
    if roll_429 < state.faults.rate_429 + state.faults.rate_429_bare {
        state.stats.served_bare_429 += 1;
        return Err(ApiError::ThrottledBare);
    }
    if roll_5xx < state.faults.rate_5xx {
        let status = [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
        ][(state.stats.served_5xx % 3) as usize];
        state.stats.served_5xx += 1;
        return Err(ApiError::ServerFault(status));
    }
    let token = header_value(headers, header::AUTHORIZATION.as_str())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !token.is_some_and(|token| state.token_is_valid(token.trim(), now)) {
        state.stats.served_401 += 1;
        return Err(ApiError::Unauthorized);
    }
    drop(state);
    if header_value(headers, "Amazon-Advertising-API-ClientId")
        != Some(shared.config.client_id.as_str())
    {
        return Err(ApiError::Forbidden(
            "Amazon-Advertising-API-ClientId is missing or does not match the token".into(),
        ));
    }
    for required in [
        "Amazon-Advertising-API-AdvertiserId",
        "Amazon-Advertising-API-MarketplaceId",
    ] {
        if header_value(headers, required).is_none_or(|value| value.trim().is_empty()) {
            return Err(ApiError::BadRequest(format!("Missing header {required}")));
        }
    }
    Ok(spare)
}

fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Whether a request counts toward `requests_total`; the simulator's own stats endpoints do not.
pub(crate) fn is_counted(path: &str) -> bool {
    !path.starts_with("/__sim/") || path.starts_with("/__sim/s3/")
}

async fn stats(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.stats_snapshot())
}

async fn received(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.received())
}

async fn reset_stats(shared: web::Data<Shared>) -> HttpResponse {
    shared.reset_stats();
    HttpResponse::Ok().json(json!({"reset": true}))
}

async fn not_found() -> HttpResponse {
    ApiError::NotFound("No such resource".into()).error_response()
}

/// Checks the accepted client credentials without printing them anywhere.
pub(crate) fn client_matches(shared: &Shared, client_id: &str, client_secret: &str) -> bool {
    client_id == shared.config.client_id
        && client_secret == shared.config.client_secret.expose_secret()
}
