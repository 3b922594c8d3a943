//! Opening the configured database, as every command that touches it does.

use super::AppError;
use crate::config::Settings;
use crate::store::dsn::{redact_url, PgTarget};
use crate::store::{Store, StoreError};

/// Opens the configured database and applies pending migrations. A Postgres connection that
/// leaves this machine without verifying the server's certificate is warned about here, at the
/// start of every command (configuration refused it already if `require_verified_tls` is set).
pub async fn open_store(settings: &Settings) -> Result<Store, AppError> {
    let database = &settings.database;
    if !database.url.starts_with("sqlite:") {
        if let Some(risk) = PgTarget::parse(&database.url)
            .ok()
            .and_then(|target| target.tls_risk())
        {
            tracing::warn!("{risk} (set database.require_verified_tls = true to refuse instead)");
        }
    }
    let store = Store::open_in(&database.url, database.max_connections, &database.schema)
        .await
        .map_err(|error| {
            let url = redact_url(&database.url);
            // A URL or schema that cannot work is the user's to fix; anything else (down,
            // unreachable, refused) failed while doing the work.
            match error {
                StoreError::Url(_) | StoreError::Schema(_) | StoreError::TransactionPooler => {
                    AppError::DatabaseInput {
                        url,
                        message: error.to_string(),
                    }
                }
                source => AppError::Database { url, source },
            }
        })?;
    store
        .set_results_schema(&settings.results.schema)
        .await
        .map_err(|source| AppError::Database {
            url: redact_url(&database.url),
            source,
        })?;
    Ok(store)
}
