//! The inspection endpoint (actix-web): `/healthz`, `/readyz`, `/metrics`, `/status`, and the
//! operator's console at `/` (`crate::console`, its routes and checks).
//!
//! Handlers are transport only: liveness asks the supervisor directly (a `send` with a
//! timeout), everything else asks the `Inspector` actor, which does the database reads on the
//! daemon's runtime. Every request first passes `guard` (the `Host` allow-list, the body's size
//! and deadline, the protective headers). When a token is configured, a middleware then demands
//! it on every path, unknown ones included, before any handler runs: as a bearer header (scheme
//! in any case), or as a live console session cookie; only the console's shell, assets and login
//! are public (`console::is_public`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpResponse, HttpServer};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::guard::{self, AllowedHosts};
use super::{
    CheckReadiness, GetMetrics, GetTree, Inspector, ObserveError, Readiness, ASK_TIMEOUT,
    READ_TIMEOUT,
};
use crate::actors::supervisor::{GetChildCount, Supervisor};
use crate::config::HttpSettings;
use crate::console::{retry_after_secs, Gate, LoginThrottle, Sessions};

/// Seconds the server waits for in-flight requests when it stops.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Who may use the endpoint, from `[http]`.
#[derive(Clone)]
pub struct Access {
    pub token: Option<SecretString>,
    /// Host names answered besides the bind address and loopback.
    pub allowed_hosts: Vec<String>,
    pub session_lifetime: Duration,
    /// The console is reached over https: its cookie is `Secure`.
    pub secure_cookie: bool,
    /// What the console's "New collection" plan needs from the configuration.
    pub planning: crate::new_collection::Planning,
}

impl Access {
    pub fn from_settings(http: &HttpSettings) -> Self {
        Self {
            token: http.token.clone(),
            allowed_hosts: http.extra_hosts(),
            session_lifetime: http.session_lifetime(),
            secure_cookie: http.secure_cookie(),
            planning: crate::new_collection::Planning::default(),
        }
    }
}

/// What the handlers need.
struct State {
    supervisor: Addr<Supervisor>,
    inspector: Addr<Inspector>,
    token: Option<SecretString>,
    sessions: Arc<Sessions>,
    throttle: Arc<LoginThrottle>,
}

/// What the token check decided about a request.
enum Verdict {
    Allowed,
    Refused,
    /// A bearer token was presented while its address is backed off (wrong tokens before).
    Throttled(Duration),
}

impl State {
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

/// The token of an `Authorization: Bearer <token>` header; the scheme in any case (RFC 9110).
fn bearer(headers: &header::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The running server. Dropping it stops the server without waiting.
pub struct HttpHandle {
    addr: SocketAddr,
    server: ServerHandle,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Binds the endpoint's address (port 0 picks a free port). Done before the actor tree starts,
/// so a taken port stops `run` before any work begins.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ObserveError> {
    TcpListener::bind(addr).map_err(|source| ObserveError::Bind { addr, source })
}

/// Serves on one worker thread. Signals are left to the daemon, which decides when the endpoint
/// stops (after the graceful shutdown, so `/readyz` reports it while it runs).
pub fn serve(
    listener: TcpListener,
    access: Access,
    supervisor: Addr<Supervisor>,
    inspector: Addr<Inspector>,
    store: crate::store::Store,
) -> Result<HttpHandle, ObserveError> {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let addr = listener.local_addr().map_err(|source| ObserveError::Bind {
        addr: unspecified,
        source,
    })?;
    let bind_error = |source| ObserveError::Bind { addr, source };
    let sessions = Arc::new(Sessions::new(
        addr.port(),
        access.session_lifetime,
        access.secure_cookie,
    ));
    let throttle = Arc::new(LoginThrottle::default());
    let hosts = web::Data::new(AllowedHosts::new(addr, &access.allowed_hosts));
    let console_token = access.token.clone();
    let planning = access.planning;
    let console_inspector = inspector.clone();
    let state = web::Data::new(State {
        supervisor,
        inspector,
        token: access.token,
        sessions: sessions.clone(),
        throttle: throttle.clone(),
    });
    let server = HttpServer::new(move || {
        // Built on the worker thread, so the console's pool connects on the worker's runtime.
        let console = web::Data::new(crate::console::Console {
            store: store.sibling(crate::console::CONNECTIONS),
            inspector: console_inspector.clone(),
            token: console_token.clone(),
            sessions: sessions.clone(),
            throttle: throttle.clone(),
            planning,
        });
        // The last `wrap` runs first: the guard, then the token check, then the handler.
        App::new()
            .app_data(state.clone())
            .app_data(hosts.clone())
            .app_data(console)
            .wrap(from_fn(require_token))
            .wrap(from_fn(guard::guard))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/status", web::get().to(status))
            .configure(crate::console::configure)
    })
    .workers(1)
    // A request's head must arrive within actix's `client_request_timeout` (5 s); its body
    // within `guard::BODY_DEADLINE`.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)
    .map_err(bind_error)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%error, "Inspection endpoint stopped with an error.");
        }
    });
    tracing::info!(%addr, "Inspection endpoint listening (console at /; /healthz, /readyz, /metrics, /status).");
    Ok(HttpHandle {
        addr,
        server: handle,
        task: Some(task),
    })
}

impl HttpHandle {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (briefly) and waits for the server.
    pub async fn stop(mut self) {
        self.server.stop(true).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        if self.task.is_some() {
            // The stop command is sent at once; the returned future only awaits completion.
            drop(self.server.stop(false));
        }
    }
}

async fn require_token<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let client = request
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip());
    let verdict = if crate::console::is_public(request.method(), request.path()) {
        Verdict::Allowed
    } else {
        match request.app_data::<web::Data<State>>() {
            Some(state) => state.verdict(request.headers(), client),
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

/// Liveness: the process serves and the supervisor's mailbox is being processed.
async fn healthz(state: web::Data<State>) -> HttpResponse {
    match state
        .supervisor
        .send(GetChildCount)
        .timeout(ASK_TIMEOUT)
        .await
    {
        Ok(_) => HttpResponse::Ok().body("ok\n"),
        Err(error) => unavailable(format!("supervisor did not answer: {error}")),
    }
}

/// Readiness: the database answers and no shutdown has started.
async fn readyz(state: web::Data<State>) -> HttpResponse {
    let reply = state
        .inspector
        .send(CheckReadiness)
        .timeout(ASK_TIMEOUT * 3)
        .await;
    match reply {
        Ok(Readiness::Ready) => HttpResponse::Ok().body("ready\n"),
        Ok(Readiness::Degraded(detail)) => HttpResponse::Ok().body(format!(
            "ready; {}\n",
            crate::escape::escape_controls(&detail)
        )),
        Ok(Readiness::NotReady(reason)) => unavailable(format!("not ready: {reason}")),
        Err(error) => unavailable(format!("inspector did not answer: {error}")),
    }
}

async fn metrics(state: web::Data<State>) -> HttpResponse {
    let reply = state
        .inspector
        .send(GetMetrics)
        .timeout(READ_TIMEOUT + ASK_TIMEOUT * 3)
        .await;
    match reply {
        Ok(Ok(text)) => HttpResponse::Ok().content_type(PROMETHEUS_TEXT).body(text),
        Ok(Err(error)) => unavailable(error.to_string()),
        Err(error) => unavailable(format!("inspector did not answer: {error}")),
    }
}

async fn status(state: web::Data<State>) -> HttpResponse {
    let reply = state.inspector.send(GetTree).timeout(ASK_TIMEOUT * 4).await;
    match reply {
        Ok(Ok(tree)) => HttpResponse::Ok().json(tree),
        Ok(Err(error)) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"error": error.to_string()}))
        }
        Err(error) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"error": format!("inspector did not answer: {error}")})),
    }
}

fn unavailable(reason: String) -> HttpResponse {
    HttpResponse::ServiceUnavailable().body(format!("{reason}\n"))
}

/// Whether a presented token is the expected one, in time that depends on neither's content
/// nor length: both are hashed to 32 bytes first, and the digests compared in constant time, so
/// response time says nothing about how much of a guess was right, or how long the token is.
pub(crate) fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    let presented = Sha256::digest(presented);
    let expected = Sha256::digest(expected);
    presented.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::{bearer, token_matches};
    use actix_web::http::header::{self, HeaderMap, HeaderValue};

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
}
