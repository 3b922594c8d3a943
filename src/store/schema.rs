//! The collector's own Postgres schema (`database.schema`, `amc_collector` by default): every
//! connection's `search_path`, the schema's creation before migrations run, and the one-time move
//! of an install made before it existed (tables and `_sqlx_migrations` in `public`).
//!
//! Keeping the tables out of `public` keeps them out of Supabase's Data API, which serves `public`
//! to anyone holding the project's anon key; row-level security (enabled by a migration, with no
//! policy) is the second wall. All SQL uses unqualified names, so the schema is chosen by the
//! connection's `search_path`, set by a statement after connecting rather than as a startup
//! parameter, which poolers such as Supavisor do not all honour.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Executor, Postgres, Transaction};

use super::StoreError;

/// The schema used when `database.schema` is not set.
pub const DEFAULT_SCHEMA: &str = "amc_collector";

/// Tables of the layout before the schema existed (migrations up to 20261130000007), moved with
/// `_sqlx_migrations`. Tables added later never lived in `public`.
const LEGACY_TABLES: &[&str] = &[
    "amc_instances",
    "workflows",
    "report_data_collections",
    "report_data_weeks",
    "workflow_executions",
    "report_data_rows",
    "process_lock",
    "_sqlx_migrations",
];

/// The first migration's version: a `public._sqlx_migrations` holding it is ours.
const FIRST_MIGRATION: i64 = 20261125000001;

/// Serialises schema preparation between processes starting together ("amc_sch").
const PREPARE_LOCK: i64 = 0x0061_6d63_5f73_6368;

/// Whether `name` is a plain identifier usable as the schema: lower-case ASCII letters, digits
/// and `_`, not starting with a digit, at most 63 bytes, and not `public` or a system schema.
pub fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63;
    plain && name != "public" && name != "information_schema" && !name.starts_with("pg_")
}

/// Pool options whose every new connection works in `schema` (also inherited by `sibling`
/// pools, which clone these options).
pub(super) fn pool_options(schema: &str) -> PgPoolOptions {
    // The name is validated, so quoting it is enough.
    let statement: std::sync::Arc<str> = format!("SET search_path TO \"{schema}\"").into();
    PgPoolOptions::new().after_connect(move |connection, _| {
        let statement = statement.clone();
        Box::pin(async move { connection.execute(&*statement).await.map(|_| ()) })
    })
}

/// Creates the schema when missing and moves an old install from `public` into it, in one
/// transaction, before the migrator (which keeps `_sqlx_migrations` in the schema) runs.
pub(super) async fn prepare(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PREPARE_LOCK)
        .execute(&mut *tx)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        // Skipped when a DBA created it beforehand for a role that may not create schemas.
        tx.execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
            .await?;
    }
    let in_schema = tables_in(&mut tx, schema).await?;
    let in_public = tables_in(&mut tx, "public").await?;
    if in_schema.is_empty() && legacy_install_in_public(&mut tx, &in_public).await? {
        for table in &in_public {
            // Indexes, constraints and owned sequences move with their table; rows stay.
            tx.execute(format!("ALTER TABLE public.\"{table}\" SET SCHEMA \"{schema}\"").as_str())
                .await?;
        }
        tracing::warn!(
            schema,
            tables = in_public.len(),
            "Moved the collector's tables out of the public schema into their own schema."
        );
    } else if !in_schema.is_empty() && in_public.iter().any(|t| t == "report_data_collections") {
        tracing::warn!(
            schema,
            "The public schema also holds tables named like the collector's; they are not used \
             (the collector's data is in its own schema). Drop them once checked."
        );
    }
    tx.commit().await?;
    Ok(())
}

/// Which of the legacy tables exist in `schema`.
async fn tables_in(
    tx: &mut Transaction<'_, Postgres>,
    schema: &str,
) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = LEGACY_TABLES.iter().map(|t| t.to_string()).collect();
    Ok(sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND tablename = ANY($2) \
         ORDER BY tablename",
    )
    .bind(schema)
    .bind(names)
    .fetch_all(&mut **tx)
    .await?)
}

/// Whether `public` holds this collector's install: its tables and a `_sqlx_migrations` that
/// recorded the collector's first migration (not another application's).
async fn legacy_install_in_public(
    tx: &mut Transaction<'_, Postgres>,
    in_public: &[String],
) -> Result<bool, StoreError> {
    let has = |name: &str| in_public.iter().any(|t| t == name);
    if !has("_sqlx_migrations") || !has("report_data_collections") {
        return Ok(false);
    }
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM public._sqlx_migrations WHERE version = $1)",
    )
    .bind(FIRST_MIGRATION)
    .fetch_one(&mut **tx)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lower_case_identifiers_are_valid_schema_names() {
        for name in ["amc_collector", "_x", "amc2", "a"] {
            assert!(valid_schema_name(name), "{name}");
        }
    }

    #[test]
    fn quoted_upper_case_reserved_or_long_names_are_refused() {
        let long = "a".repeat(64);
        for name in [
            "",
            "public",
            "pg_temp",
            "information_schema",
            "Amc",
            "2amc",
            "amc-collector",
            "amc\"; DROP",
            "amc collector",
            long.as_str(),
        ] {
            assert!(!valid_schema_name(name), "{name}");
        }
    }
}
