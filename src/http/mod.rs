//! The daemon's HTTP endpoint, one layer above what it serves: the server (`server`: bind
//! before the actor tree starts, one worker, stop after the graceful shutdown), the checks every
//! request passes in order, and the `Observer` handle the `App` keeps (the `Inspector` plus the
//! server).
//!
//! 1. **The guard** (`guard`): the `Host` allow-list (421 otherwise: no DNS rebinding), request
//!    bodies read whole under a size cap and a deadline, protective headers on every response.
//! 2. **The token** (`auth`): when `http.token` is set, every path but the public ones (the
//!    console's page shell, assets and login) needs it, as a bearer header or a live console
//!    session (`session`: a random id the server keeps, revoked at logout); wrong tokens back
//!    off per address (`throttle`), at login (`login`) and as bearer headers alike.
//! 3. **The route**: `/healthz`, `/readyz`, `/metrics`, `/status` (`inspection`: transport for
//!    `crate::observe`'s answers), the console's sign-in (`login`), and the console's page,
//!    reads and actions (`crate::console`).
//!
//! `observe` and `console` import nothing from here: the endpoint is wired on top of them.

mod auth;
mod guard;
mod inspection;
mod login;
mod observer;
mod server;
mod session;
mod throttle;

pub use observer::Observer;
pub use server::{bind, serve, Access, HttpHandle};

/// Why the endpoint could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot serve the inspection endpoint on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
