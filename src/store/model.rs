//! Row types read from the database (shared by both backends through `sqlx::FromRow`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::ids::{CollectionId, ExecutionId, InstanceId, WeekId, WorkflowId};
use crate::status::{CollectionStatus, ExecutionStatus, WeekStatus};

/// `amc_instances`.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Instance {
    pub id: InstanceId,
    /// AMC's own instance id (`amcXXXXXXXX`), used in API paths.
    pub instance_id: String,
    pub instance_name: String,
    pub region: String,
    /// Sent as `Amazon-Advertising-API-AdvertiserId`.
    pub advertiser_id: String,
    pub marketplace_id: String,
    /// The credential set the instance's AMC calls use; `None` is the `[amc]` set.
    #[sqlx(default)]
    pub credential_set: Option<String>,
    /// Where that set's secrets are (read with the instance so the gateway needs no lookup).
    #[sqlx(flatten)]
    #[serde(skip)]
    pub credential_locations: CredentialSetRow,
}

impl Instance {
    /// The instance's credential set as the AMC client takes it; `None` for the `[amc]` set.
    pub fn credential_source(&self) -> Option<crate::amc::CredentialSource> {
        self.credential_locations
            .source(self.credential_set.as_deref()?)
    }
}

/// `credential_sets`' locations: where each secret is read, never a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct CredentialSetRow {
    #[sqlx(default)]
    pub refresh_token_env: Option<String>,
    #[sqlx(default)]
    pub refresh_token_file: Option<String>,
    #[sqlx(default)]
    pub client_id_env: Option<String>,
    #[sqlx(default)]
    pub client_id_file: Option<String>,
    #[sqlx(default)]
    pub client_secret_env: Option<String>,
    #[sqlx(default)]
    pub client_secret_file: Option<String>,
}

impl CredentialSetRow {
    /// The set named `name` as the AMC client takes it; `None` when the row has no refresh
    /// token location (a CHECK forbids it: only an instance read without its set).
    pub fn source(&self, name: &str) -> Option<crate::amc::CredentialSource> {
        Some(crate::amc::CredentialSource {
            name: name.to_string(),
            refresh_token: location(&self.refresh_token_env, &self.refresh_token_file)?,
            client_id: location(&self.client_id_env, &self.client_id_file),
            client_secret: location(&self.client_secret_env, &self.client_secret_file),
        })
    }
}

fn location(env: &Option<String>, file: &Option<String>) -> Option<crate::amc::SecretLocation> {
    match (env, file) {
        (Some(name), _) => Some(crate::amc::SecretLocation::Env(name.clone())),
        (None, Some(path)) => Some(crate::amc::SecretLocation::File(path.into())),
        (None, None) => None,
    }
}

/// One stored credential set (`credentials list`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CredentialSet {
    pub name: String,
    #[sqlx(flatten)]
    pub locations: CredentialSetRow,
    pub created_at: DateTime<Utc>,
}

/// `workflows`: exactly one of `sql_query` and `amc_workflow_id` is set.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Workflow {
    pub id: WorkflowId,
    pub name: String,
    pub sql_query: Option<String>,
    pub amc_workflow_id: Option<String>,
}

/// `report_data_collections`.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Collection {
    pub id: CollectionId,
    pub workflow_id: WorkflowId,
    pub instance_id: InstanceId,
    pub target_weeks: i32,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub week_start_day: String,
    pub time_zone: String,
    #[sqlx(try_from = "String")]
    pub status: CollectionStatus,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Grows by each new week once it is due (`collection create --keep-fresh`).
    pub keep_fresh: bool,
    /// Only the newest N completed weeks keep their rows.
    pub keep_weeks: Option<i32>,
    /// AMC's reason when the collection is held (`store::held`): it is `paused` until resumed.
    pub held_reason: Option<String>,
    /// Its query parameters (`collection create --param`), stored as canonical JSON.
    #[sqlx(try_from = "String")]
    pub parameters: crate::query_params::QueryParams,
}

/// `report_data_weeks`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Week {
    pub id: WeekId,
    pub collection_id: CollectionId,
    pub week_start_date: NaiveDate,
    pub week_end_date: NaiveDate,
    #[sqlx(try_from = "String")]
    pub status: WeekStatus,
    pub execution_id: Option<ExecutionId>,
    pub amc_execution_id: Option<String>,
    pub row_count: Option<i64>,
    pub data_checksum: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When `keep_weeks` retention deleted this completed week's rows (its ids stay).
    pub rows_dropped_at: Option<DateTime<Utc>>,
}

/// `workflow_executions` as the collection actor needs it after a restart.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Execution {
    pub id: ExecutionId,
    pub week_id: WeekId,
    pub amc_execution_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ExecutionStatus,
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub attempt: i32,
}

/// A collection with its instance, workflow and weeks: everything a collection actor needs.
#[derive(Debug, Clone)]
pub struct CollectionSnapshot {
    pub collection: Collection,
    pub instance: Instance,
    pub workflow: Workflow,
    pub weeks: Vec<Week>,
}

/// One line of `collection list`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CollectionSummary {
    pub id: CollectionId,
    #[sqlx(try_from = "String")]
    pub status: CollectionStatus,
    pub workflow: String,
    pub instance: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
    pub weeks_total: i64,
    pub weeks_completed: i64,
    pub weeks_failed: i64,
}

/// One parsed CSV data row, as a JSON object keyed by column name (what `results` reads a result
/// into; the daemon's ingest stages rows without building these).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub file_index: i32,
    pub row_index: i32,
    pub data: serde_json::Value,
}
