//! The inspection side of a running daemon, as the `App` keeps it: the `Inspector` (started
//! here, with its periodic tree log) and, when a listener is given, the endpoint serving it.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix::prelude::*;

use super::server::{serve, Access, HttpHandle};
use super::HttpError;
use crate::observe::{Inspector, StopInspector, TakeDump, Targets};

/// The `Inspector` and the HTTP endpoint.
pub struct Observer {
    pub inspector: Addr<Inspector>,
    http: Option<HttpHandle>,
}

impl Observer {
    /// Starts the `Inspector` (with its periodic tree log) and, when a listener is given, the
    /// endpoint on it.
    pub fn start(
        targets: Targets,
        tree_log_interval: Option<Duration>,
        listener: Option<TcpListener>,
        access: Access,
    ) -> Result<Self, HttpError> {
        let supervisor = targets.supervisor.clone();
        let store = targets.store.clone();
        let inspector = Inspector::new(targets, tree_log_interval).start();
        let http = match listener {
            Some(listener) => Some(serve(
                listener,
                access,
                supervisor,
                inspector.clone(),
                store,
            )?),
            None => None,
        };
        Ok(Self { inspector, http })
    }

    /// Where the endpoint listens, when it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpHandle::addr)
    }

    /// Takes the full dump and logs it (the SIGUSR1 action).
    pub async fn log_dump(&self) {
        match self.inspector.send(TakeDump).await {
            Ok(Ok(dump)) => dump.log(),
            Ok(Err(error)) => tracing::warn!(%error, "Tree dump unavailable."),
            Err(error) => tracing::warn!(%error, "Tree dump unavailable: the inspector is gone."),
        }
    }

    /// Stops the endpoint and the periodic log.
    pub async fn stop(mut self) {
        if let Some(http) = self.http.take() {
            http.stop().await;
        }
        self.inspector.do_send(StopInspector);
    }
}
