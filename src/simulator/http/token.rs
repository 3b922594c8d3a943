//! The Login-with-Amazon token endpoint: exchanges the configured refresh token for short-lived
//! opaque access tokens, with LwA's OAuth error replies.

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;
use serde_json::json;

use super::client_matches;
use crate::simulator::config::GrantRefusal;
use crate::simulator::state::Shared;

pub(super) async fn refresh(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    if let Some(refusal) = refusal(&shared) {
        return refusal;
    }
    let field = |name: &str| {
        url::form_urlencoded::parse(&body)
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    if field("grant_type") != "refresh_token" {
        return oauth_error(
            HttpResponse::BadRequest(),
            "unsupported_grant_type",
            "The authorization grant type is not supported",
        );
    }
    if !client_matches(&shared, &field("client_id"), &field("client_secret")) {
        return oauth_error(
            HttpResponse::Unauthorized(),
            "invalid_client",
            "Client authentication failed",
        );
    }
    let refresh_token = field("refresh_token");
    if !shared.refresh_token_known(&refresh_token) {
        return invalid_grant();
    }
    let ttl_secs = shared.config.token_ttl_secs;
    let access_token = {
        let mut state = shared.lock();
        if state.refresh_token_revoked(&refresh_token) {
            state.stats.token_refusals += 1;
            return invalid_grant();
        }
        state.stats.token_refreshes += 1;
        state.issue_token(
            Duration::from_secs(ttl_secs),
            Instant::now(),
            &refresh_token,
        )
    };
    HttpResponse::Ok().json(json!({
        "access_token": access_token.expose_secret(),
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": ttl_secs,
    }))
}

/// LwA's answer to a refresh token it does not know or revoked.
fn invalid_grant() -> HttpResponse {
    oauth_error(
        HttpResponse::BadRequest(),
        "invalid_grant",
        "The request has an invalid grant parameter : refresh_token",
    )
}

/// `POST /__sim/revoke-refresh-token` (form field `refresh_token`): revokes that refresh token
/// and the access tokens granted for it, as an advertiser withdrawing its consent would.
pub(super) async fn revoke(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let Some(refresh_token) = url::form_urlencoded::parse(&body)
        .find(|(key, _)| key == "refresh_token")
        .map(|(_, value)| value.into_owned())
    else {
        return oauth_error(
            HttpResponse::BadRequest(),
            "invalid_request",
            "refresh_token is required",
        );
    };
    shared.lock().revoke_refresh_token(&refresh_token);
    HttpResponse::Ok().json(json!({"revoked": true}))
}

/// The "LwA refuses grants" fault, while it lasts: counted, then LwA's reply of that kind.
fn refusal(shared: &Shared) -> Option<HttpResponse> {
    let kind = {
        let mut state = shared.lock();
        let (until, kind) = state.faults.refuse_grants?;
        if Instant::now() >= until {
            return None;
        }
        state.stats.token_refusals += 1;
        kind
    };
    Some(match kind {
        GrantRefusal::InvalidGrant => oauth_error(
            HttpResponse::BadRequest(),
            "invalid_grant",
            "The request has an invalid grant parameter : refresh_token",
        ),
        GrantRefusal::InvalidClient => oauth_error(
            HttpResponse::Unauthorized(),
            "invalid_client",
            "Client authentication failed",
        ),
        GrantRefusal::Unavailable => oauth_error(
            HttpResponse::ServiceUnavailable(),
            "server_error",
            "The service is temporarily unavailable",
        ),
    })
}

fn oauth_error(
    mut builder: actix_web::HttpResponseBuilder,
    error: &str,
    description: &str,
) -> HttpResponse {
    builder.json(json!({"error": error, "error_description": description}))
}
