//! Credential sets (`credentials add|list`): where each set's secrets are read, never a secret.
//! Sets are written once by the CLI and read by the daemon at start-up and with each instance.

use chrono::Utc;

use super::model::{CredentialSet, CredentialSetRow};
use super::{conflict_or, with_pool, Store, StoreError};

const SET_COLUMNS: &str = "name, refresh_token_env, refresh_token_file, client_id_env, \
                           client_id_file, client_secret_env, client_secret_file, created_at";

impl Store {
    /// Stores a new set; a name already taken is a `Conflict`.
    pub async fn insert_credential_set(
        &self,
        name: &str,
        locations: &CredentialSetRow,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO credential_sets ({SET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        with_pool!(self, |pool| sqlx::query(&sql)
            .bind(name)
            .bind(&locations.refresh_token_env)
            .bind(&locations.refresh_token_file)
            .bind(&locations.client_id_env)
            .bind(&locations.client_id_file)
            .bind(&locations.client_secret_env)
            .bind(&locations.client_secret_file)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(|e| conflict_or(e, || format!("credential set `{name}` already exists")))?;
        Ok(())
    }

    pub async fn find_credential_set(
        &self,
        name: &str,
    ) -> Result<Option<CredentialSet>, StoreError> {
        let sql = format!("SELECT {SET_COLUMNS} FROM credential_sets WHERE name = $1");
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, CredentialSet>(&sql)
                .bind(name)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Every stored set, by name.
    pub async fn list_credential_sets(&self) -> Result<Vec<CredentialSet>, StoreError> {
        let sql = format!("SELECT {SET_COLUMNS} FROM credential_sets ORDER BY name");
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, CredentialSet>(&sql)
                .fetch_all(pool)
                .await
        })?)
    }
}
