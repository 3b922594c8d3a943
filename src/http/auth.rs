//! Who may use the endpoint. When `http.token` is set, a middleware (inside the guard) demands
//! it on every path, unknown ones included, before any handler runs: as a bearer header (scheme
//! in any case), or as a live console session cookie (`session.rs`). Only the public paths need
//! neither: the console's page shell and assets (they hold no data) and its login (where the
//! token is presented, `login.rs`). Wrong bearer tokens back off per address in the same table
//! as wrong logins (`throttle.rs`), or guessing would just move here.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::session::Sessions;
use super::throttle::{retry_after_secs, Gate, LoginThrottle};

/// The endpoint's secrets and sign-ins, shared by its workers (one table per endpoint).
pub struct Auth {
    pub token: Option<SecretString>,
    pub sessions: Arc<Sessions>,
    pub throttle: Arc<LoginThrottle>,
}

/// What the token check decided about a request.
enum Verdict {
    Allowed,
    Refused,
    /// A bearer token was presented while its address is backed off (wrong tokens before).
    Throttled(Duration),
}

impl Auth {
    /// A live session cookie, or the right bearer token. Wrong bearer tokens back off per
    /// address like wrong logins (the same table), or guessing would just move here.
    fn verdict(&self, headers: &header::HeaderMap, client: IpAddr) -> Verdict {
        let Some(expected) = &self.token else {
            return Verdict::Allowed;
        };
        if let Some(session) = self.sessions.presented(headers) {
            if self.sessions.is_live(session) {
                return Verdict::Allowed;
            }
        }
        let Some(presented) = bearer(headers) else {
            return Verdict::Refused;
        };
        let now = Instant::now();
        if let Gate::Wait(wait) = self.throttle.check(client, now) {
            return Verdict::Throttled(wait);
        }
        if token_matches(presented.as_bytes(), expected.expose_secret().as_bytes()) {
            return Verdict::Allowed;
        }
        if let Some(failures) = self.throttle.failed(client, now) {
            tracing::warn!(%client, failures, "Endpoint: wrong bearer tokens presented (count since the last such line, at most one a minute per address).");
        }
        Verdict::Refused
    }
}

/// The console's login path (public: it is where the token is presented; `login.rs`).
pub const LOGIN: &str = "/console/login";

/// Paths anyone may load even when a token is set: the console's page shell and its assets hold
/// no data, and the login must be reachable to present the token.
pub fn is_public(method: &Method, path: &str) -> bool {
    (method == Method::GET
        && (path == crate::console::PAGE || path.starts_with(crate::console::ASSETS)))
        || (method == Method::POST && path == LOGIN)
}

/// The address a request came from (unspecified when actix does not know it).
pub fn client_of(request: &actix_web::HttpRequest) -> IpAddr {
    request
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip())
}

/// The token of an `Authorization: Bearer <token>` header; the scheme in any case (RFC 9110).
fn bearer(headers: &header::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The middleware (registered by `server::serve` inside the guard).
pub async fn require_token<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let verdict = if is_public(request.method(), request.path()) {
        Verdict::Allowed
    } else {
        match request.app_data::<web::Data<Auth>>() {
            Some(auth) => auth.verdict(request.headers(), client_of(request.request())),
            // Never the case once served; refusing keeps a wiring mistake from opening the door.
            None => Verdict::Refused,
        }
    };
    let response = match verdict {
        Verdict::Allowed => return Ok(next.call(request).await?.map_into_left_body()),
        Verdict::Refused => HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .body("missing or wrong bearer token\n"),
        Verdict::Throttled(wait) => {
            let seconds = retry_after_secs(wait);
            HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, seconds.to_string()))
                .body(format!("too many wrong tokens: try again in {seconds} s\n"))
        }
    };
    Ok(request.into_response(response).map_into_right_body())
}

/// Whether a presented token is the expected one, in time that depends on neither's content
/// nor length: both are hashed to 32 bytes first, and the digests compared in constant time, so
/// response time says nothing about how much of a guess was right, or how long the token is.
pub fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    let presented = Sha256::digest(presented);
    let expected = Sha256::digest(expected);
    presented.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::{bearer, is_public, token_matches};
    use actix_web::http::header::{self, HeaderMap, HeaderValue};
    use actix_web::http::Method;

    #[test]
    fn token_comparison_needs_every_byte_and_the_length_to_match() {
        assert!(token_matches(b"abc", b"abc"));
        assert!(!token_matches(b"abc", b"abd"));
        assert!(!token_matches(b"abc", b"abcd"));
        assert!(!token_matches(b"", b"a"));
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            headers
        };
        for value in ["Bearer tok", "bearer tok", "BEARER  tok "] {
            assert_eq!(bearer(&with(value)), Some("tok"), "{value}");
        }
        for value in ["Basic tok", "Bearer", "Bearertok", "Bearer  "] {
            assert_eq!(bearer(&with(value)), None, "{value}");
        }
    }

    #[test]
    fn only_the_shell_its_assets_and_the_login_are_public() {
        assert!(is_public(&Method::GET, "/"));
        assert!(is_public(&Method::GET, "/console/app.js"));
        assert!(is_public(&Method::POST, "/console/login"));
        assert!(!is_public(&Method::GET, "/api/collections"));
        assert!(!is_public(&Method::POST, "/"));
        assert!(!is_public(&Method::GET, "/status"));
        assert!(!is_public(&Method::POST, "/console/logout"));
    }
}
