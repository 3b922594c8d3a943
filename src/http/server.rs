//! The endpoint's server: binding its port before the actor tree starts, one actix-web worker,
//! and the order every request takes: the guard (`guard.rs`), then the token check
//! (`auth.rs`), then the route: the inspection routes (`inspection.rs`), the console's sign-in
//! (`login.rs`) and the console's page, reads and actions (`crate::console`).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use secrecy::SecretString;

use super::auth::{require_token, Auth};
use super::guard::{self, AllowedHosts};
use super::inspection::{self, Inspection};
use super::session::Sessions;
use super::throttle::LoginThrottle;
use super::{login, HttpError};
use crate::actors::supervisor::Supervisor;
use crate::config::HttpSettings;
use crate::console::Console;
use crate::observe::Inspector;
use crate::store::Store;

/// Seconds the server waits for in-flight requests when it stops.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

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

/// The running server. Dropping it stops the server without waiting.
pub struct HttpHandle {
    addr: SocketAddr,
    server: ServerHandle,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Binds the endpoint's address (port 0 picks a free port). Done before the actor tree starts,
/// so a taken port stops `run` before any work begins.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })
}

/// Serves on one worker thread. Signals are left to the daemon, which decides when the endpoint
/// stops (after the graceful shutdown, so `/readyz` reports it while it runs).
pub fn serve(
    listener: TcpListener,
    access: Access,
    supervisor: Addr<Supervisor>,
    inspector: Addr<Inspector>,
    store: Store,
) -> Result<HttpHandle, HttpError> {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let addr = listener.local_addr().map_err(|source| HttpError::Bind {
        addr: unspecified,
        source,
    })?;
    let bind_error = |source| HttpError::Bind { addr, source };
    let hosts = web::Data::new(AllowedHosts::new(addr, &access.allowed_hosts));
    let planning = access.planning;
    let auth = web::Data::new(Auth {
        token: access.token,
        sessions: Arc::new(Sessions::new(
            addr.port(),
            access.session_lifetime,
            access.secure_cookie,
        )),
        throttle: Arc::new(LoginThrottle::default()),
    });
    let inspection = web::Data::new(Inspection {
        supervisor,
        inspector: inspector.clone(),
    });
    let server = HttpServer::new(move || {
        // Built on the worker thread, so the console's pool connects on the worker's runtime.
        let console = web::Data::new(Console::on_worker(&store, inspector.clone(), planning));
        // The last `wrap` runs first: the guard, then the token check, then the handler.
        App::new()
            .app_data(hosts.clone())
            .app_data(auth.clone())
            .app_data(inspection.clone())
            .app_data(console)
            .wrap(from_fn(require_token))
            .wrap(from_fn(guard::guard))
            .configure(inspection::configure)
            .configure(login::configure)
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
