//! The catalog: AMC instances and workflows, written by the `instance add` / `workflow add` commands.

use chrono::Utc;

use super::model::{Instance, Workflow};
use super::{conflict_or, with_pool, Store, StoreError};
use crate::ids::{InstanceId, WorkflowId};

/// A new `amc_instances` row.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub instance_id: String,
    pub instance_name: String,
    pub region: String,
    pub advertiser_id: String,
    pub marketplace_id: String,
}

/// Where a workflow's SQL comes from.
#[derive(Debug, Clone)]
pub enum WorkflowSource {
    /// Ad-hoc SQL sent inline with every execution (`{{start_date}}`/`{{end_date}}` substituted).
    Sql(String),
    /// A workflow saved in AMC, referenced by its `workflowId`.
    Saved(String),
}

/// An instance with its credential set's locations (NULL for the `[amc]` set); queries name
/// the instance `i`.
const INSTANCE_COLUMNS: &str =
    "i.id, i.instance_id, i.instance_name, i.region, i.advertiser_id, i.marketplace_id, \
     i.credential_set, s.refresh_token_env, s.refresh_token_file, s.client_id_env, \
     s.client_id_file, s.client_secret_env, s.client_secret_file \
     FROM amc_instances i LEFT JOIN credential_sets s ON s.name = i.credential_set";
const WORKFLOW_COLUMNS: &str = "id, name, sql_query, amc_workflow_id";

impl Store {
    pub async fn insert_instance(&self, new: &NewInstance) -> Result<Instance, StoreError> {
        self.insert_instance_with_credentials(new, None).await
    }

    /// Inserts an instance whose AMC calls use the stored credential set `credential_set`
    /// (`None`: the `[amc]` set). The caller checked the set exists; the foreign key refuses
    /// one removed meanwhile.
    pub async fn insert_instance_with_credentials(
        &self,
        new: &NewInstance,
        credential_set: Option<&str>,
    ) -> Result<Instance, StoreError> {
        let id = InstanceId::new();
        let sql = "INSERT INTO amc_instances (id, instance_id, instance_name, region, \
                   advertiser_id, marketplace_id, created_at, credential_set) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(&new.instance_id)
            .bind(&new.instance_name)
            .bind(&new.region)
            .bind(&new.advertiser_id)
            .bind(&new.marketplace_id)
            .bind(Utc::now())
            .bind(credential_set)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(|e| {
            conflict_or(e, || {
                format!("instance {} is already registered", new.instance_id)
            })
        })?;
        self.instance_by_id(id).await
    }

    pub async fn insert_workflow(
        &self,
        name: &str,
        source: &WorkflowSource,
    ) -> Result<Workflow, StoreError> {
        let id = WorkflowId::new();
        let (sql_query, amc_workflow_id) = match source {
            WorkflowSource::Sql(sql) => (Some(sql.clone()), None),
            WorkflowSource::Saved(workflow_id) => (None, Some(workflow_id.clone())),
        };
        let sql = "INSERT INTO workflows (id, name, sql_query, amc_workflow_id, created_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(name)
            .bind(&sql_query)
            .bind(&amc_workflow_id)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(|e| conflict_or(e, || format!("workflow `{name}` already exists")))?;
        Ok(Workflow {
            id,
            name: name.to_string(),
            sql_query,
            amc_workflow_id,
        })
    }

    /// Finds an instance by AMC's instance id (`amcXXXXXXXX`).
    pub async fn find_instance(
        &self,
        amc_instance_id: &str,
    ) -> Result<Option<Instance>, StoreError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} WHERE i.instance_id = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, Instance>(
            &sql
        )
        .bind(amc_instance_id)
        .fetch_optional(pool)
        .await)?)
    }

    pub async fn instance_by_id(&self, id: InstanceId) -> Result<Instance, StoreError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} WHERE i.id = $1");
        with_pool!(self, |pool| sqlx::query_as::<_, Instance>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| StoreError::NotFound(format!("instance {id} not found")))
    }

    pub async fn find_workflow(&self, name: &str) -> Result<Option<Workflow>, StoreError> {
        let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, Workflow>(
            &sql
        )
        .bind(name)
        .fetch_optional(pool)
        .await)?)
    }

    pub async fn workflow_by_id(&self, id: WorkflowId) -> Result<Workflow, StoreError> {
        let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1");
        with_pool!(self, |pool| sqlx::query_as::<_, Workflow>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| StoreError::NotFound(format!("workflow {id} not found")))
    }

    /// Every registered instance, by AMC instance id.
    pub async fn list_instances(&self) -> Result<Vec<Instance>, StoreError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} ORDER BY i.instance_id");
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, Instance>(
            &sql
        )
        .fetch_all(pool)
        .await)?)
    }

    /// Every registered workflow, by name.
    pub async fn list_workflows(&self) -> Result<Vec<Workflow>, StoreError> {
        let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows ORDER BY name");
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, Workflow>(
            &sql
        )
        .fetch_all(pool)
        .await)?)
    }
}
