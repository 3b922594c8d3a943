//! The console's sign-in: `POST /console/login` checks the presented token and, when right,
//! starts a session and sets its cookie; `POST /console/logout` ends it. Like every console POST
//! they must come from the console page itself (`console::check_same_origin`). Wrong tokens
//! back off per client address (`throttle.rs`); the token is never logged or echoed.

use std::time::Instant;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::auth::{client_of, token_matches, Auth, LOGIN};
use super::throttle::{retry_after_secs, Gate};
use crate::console::check_same_origin;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route(LOGIN, web::post().to(login))
        .route("/console/logout", web::post().to(logout));
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

async fn login(
    request: HttpRequest,
    auth: web::Data<Auth>,
    body: web::Json<Login>,
) -> HttpResponse {
    if let Err(refusal) = check_same_origin(request.headers()) {
        return refused(refusal.to_string());
    }
    let Some(expected) = &auth.token else {
        return HttpResponse::NoContent().finish();
    };
    let client = client_of(&request);
    if let Gate::Wait(wait) = auth.throttle.check(client, Instant::now()) {
        let seconds = retry_after_secs(wait);
        return HttpResponse::TooManyRequests()
            .insert_header((header::RETRY_AFTER, seconds.to_string()))
            .json(json!({"error": format!("too many wrong tokens: try again in {seconds} s")}));
    }
    let presented = body.into_inner().token;
    let right = token_matches(
        presented.trim().as_bytes(),
        expected.expose_secret().as_bytes(),
    );
    if !right {
        if let Some(failures) = auth.throttle.failed(client, Instant::now()) {
            tracing::warn!(%client, failures, "Console: wrong tokens presented at login (count since the last such line, at most one a minute per address).");
        }
        return HttpResponse::Unauthorized().json(json!({"error": "wrong token"}));
    }
    auth.throttle.succeeded(client);
    let session = auth.sessions.issue();
    HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, auth.sessions.set_cookie(&session)))
        .finish()
}

/// Ends the presented session on the server (its cookie stops working wherever it was copied)
/// and removes the cookie from the browser.
async fn logout(request: HttpRequest, auth: web::Data<Auth>) -> HttpResponse {
    if let Err(refusal) = check_same_origin(request.headers()) {
        return refused(refusal.to_string());
    }
    if let Some(session) = auth.sessions.presented(request.headers()) {
        auth.sessions.revoke(session);
    }
    HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, auth.sessions.clear_cookie()))
        .finish()
}

fn refused(reason: String) -> HttpResponse {
    HttpResponse::Forbidden().json(json!({ "error": reason }))
}
