//! The inspection endpoint (actix-web): `/healthz`, `/readyz`, `/metrics`, `/status`, and the
//! operator's console at `/` (`crate::console`, its routes and checks).
//!
//! Handlers are transport only: liveness asks the supervisor directly (a `send` with a
//! timeout), everything else asks the `Inspector` actor, which does the database reads on the
//! daemon's runtime. When a token is configured, a middleware demands it on every path, unknown
//! ones included, before any handler runs: as a bearer header, or as the console's login cookie;
//! only the console's shell, assets and login are public (`console::is_public`).

use std::net::{SocketAddr, TcpListener};

use actix::prelude::*;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpResponse, HttpServer};
use secrecy::{ExposeSecret, SecretString};

use super::{
    CheckReadiness, GetMetrics, GetTree, Inspector, ObserveError, Readiness, ASK_TIMEOUT,
    READ_TIMEOUT,
};
use crate::actors::supervisor::{GetChildCount, Supervisor};

/// Seconds the server waits for in-flight requests when it stops.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the handlers need.
struct State {
    supervisor: Addr<Supervisor>,
    inspector: Addr<Inspector>,
    token: Option<SecretString>,
}

impl State {
    fn authorizes(&self, headers: &header::HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        if let Some(cookie) = crate::console::presented_cookie(headers) {
            let digest = crate::console::cookie_value(expected);
            if constant_time_eq(cookie.as_bytes(), digest.as_bytes()) {
                return true;
            }
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        presented.is_some_and(|presented| {
            constant_time_eq(presented.as_bytes(), expected.expose_secret().as_bytes())
        })
    }
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
    token: Option<SecretString>,
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
    let console_token = token.clone();
    let console_inspector = inspector.clone();
    let state = web::Data::new(State {
        supervisor,
        inspector,
        token,
    });
    let server = HttpServer::new(move || {
        // Built on the worker thread, so the console's pool connects on the worker's runtime.
        let console = web::Data::new(crate::console::Console {
            store: store.sibling(crate::console::CONNECTIONS),
            inspector: console_inspector.clone(),
            token: console_token.clone(),
        });
        App::new()
            .app_data(state.clone())
            .app_data(console)
            .wrap(from_fn(require_token))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/status", web::get().to(status))
            .configure(crate::console::configure)
    })
    .workers(1)
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
    let allowed = crate::console::is_public(request.method(), request.path())
        || request
            .app_data::<web::Data<State>>()
            .is_some_and(|state| state.authorizes(request.headers()));
    if !allowed {
        let response = HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .body("missing or wrong bearer token\n");
        return Ok(request.into_response(response).map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
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

/// Compares without stopping at the first differing byte, so response time says nothing about
/// how much of a guessed token was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison_needs_every_byte_and_the_length_to_match() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
