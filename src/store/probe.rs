//! One bounded first connection to Postgres before the pool is built, so that a database that
//! cannot be reached fails in seconds with its cause named (refused, DNS, TLS, authentication,
//! no answer) instead of after the pool's acquire timeout as "pool timed out".

use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::Connection;

use super::dsn::PgTarget;

/// Budget of the first connection: name resolution, TCP, TLS and authentication together.
/// Far above one round trip to a distant region, and far below the pool's 30 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(7);

/// Connects once and closes again; the error names why the database cannot be used.
pub(super) async fn probe(target: &PgTarget) -> Result<(), String> {
    let attempt = async {
        if target.options.get_socket().is_none() {
            // Resolved here so that a name that does not exist is told apart from a refusal.
            if let Err(error) = tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                return Err(format!(
                    "DNS lookup of host {} failed: {error}",
                    target.host
                ));
            }
        }
        match PgConnection::connect_with(&target.options).await {
            Ok(connection) => {
                let _ = connection.close().await;
                Ok(())
            }
            Err(error) => Err(describe(&error, target)),
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "no answer from {}:{} within {} s (wrong host or port, or a firewall dropping packets)",
            target.host,
            target.port,
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// One line naming the cause; sqlx's connection errors carry no URL, only the server's words.
fn describe(error: &sqlx::Error, target: &PgTarget) -> String {
    let at = format!("{}:{}", target.host, target.port);
    match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "connection refused by {at} (is PostgreSQL running there, and is the port right?)"
        ),
        sqlx::Error::Io(io) => format!("network error talking to {at}: {io}"),
        sqlx::Error::Tls(tls) => format!(
            "TLS with {at} failed: {tls} (with sslmode=verify-full, sslrootcert must name the \
             server's CA certificate)"
        ),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01") | Some("28000") => {
                format!("authentication failed at {at}: {}", db.message())
            }
            Some("3D000") => format!("{} ({at})", db.message()),
            _ => format!(
                "the server at {at} refused the connection: {}",
                db.message()
            ),
        },
        sqlx::Error::Configuration(cause) => format!("bad connection settings: {cause}"),
        other => format!("cannot connect to {at}: {other}"),
    }
}
