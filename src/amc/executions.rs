//! Workflow-execution operations: create, get, list (paged), find (adopt after a lost reply), cancel.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use super::config::InstanceRef;
use super::error::AmcError;
use super::http::ApiCall;
use super::stats::Endpoint;
use super::types::{
    parse_execution_reply, parse_json_object, unwrap_execution, CreateExecution, ExecutionInfo,
    ExecutionStatus, ListFilter, WorkflowSpec, LOCAL_FORMAT,
};
use super::window::window_matches;
use super::AmcClient;
use crate::sql::single_line;

/// Upper bound on followed `nextToken` pages, against a server that never stops paging.
const MAX_LIST_PAGES: usize = 100;
/// Slack on `created_after` for clock skew between this host and AMC.
const FIND_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// One listed execution together with its raw JSON, for fields `ExecutionInfo` does not carry.
type Listed = (ExecutionInfo, Value);

impl AmcClient {
    /// Submits one execution.
    ///
    /// A 2xx reply without `workflowExecutionId` is `Ok` with `workflow_execution_id: None`. A
    /// timeout, dropped connection or garbled 2xx is returned at once (never resent, since the
    /// execution may exist): adopt it with [`AmcClient::find_execution`].
    pub async fn create_execution(
        &self,
        instance: &InstanceRef,
        request: &CreateExecution,
    ) -> Result<ExecutionInfo, AmcError> {
        let call = ApiCall {
            endpoint: Endpoint::Create,
            instance,
            method: Method::POST,
            url: self.inner.executions_url(instance, &[])?,
            body: Some(request.to_body()),
            idempotent: false,
        };
        self.inner.api_call(&call, parse_execution_reply).await
    }

    /// The current state of one execution.
    pub async fn get_execution(
        &self,
        instance: &InstanceRef,
        amc_execution_id: &str,
    ) -> Result<ExecutionInfo, AmcError> {
        let call = ApiCall {
            endpoint: Endpoint::Get,
            instance,
            method: Method::GET,
            url: self.inner.executions_url(instance, &[amc_execution_id])?,
            body: None,
            idempotent: true,
        };
        self.inner.api_call(&call, parse_execution_reply).await
    }

    /// Lists executions (cancelled ones excluded), following `nextToken` up to a page bound.
    pub async fn list_executions(
        &self,
        instance: &InstanceRef,
        filter: &ListFilter,
    ) -> Result<Vec<ExecutionInfo>, AmcError> {
        let listed = self.list_raw(instance, filter).await?;
        Ok(listed.into_iter().map(|(info, _)| info).collect())
    }

    /// Finds an execution of `request` created after `created_after`, for adopting a create whose
    /// reply was lost or lacked an id.
    ///
    /// Returns the newest SUCCEEDED match, else the newest in-flight one (PENDING, RUNNING,
    /// PUBLISHING or unknown status), else the newest ended one (FAILED, REJECTED, …): an
    /// execution of this attempt that already ended must be adopted too, or it would be created
    /// twice. Executions in `exclude` (AMC ids of earlier attempts) are never adopted, nor one
    /// whose `parameterValues` differ from the request's (`same_parameters`).
    pub async fn find_execution(
        &self,
        instance: &InstanceRef,
        request: &CreateExecution,
        created_after: DateTime<Utc>,
        exclude: &[String],
    ) -> Result<Option<ExecutionInfo>, AmcError> {
        let filter = ListFilter {
            min_creation_time: Some(
                created_after
                    .checked_sub_signed(FIND_CLOCK_SKEW)
                    .unwrap_or(created_after),
            ),
            workflow_id: match &request.workflow {
                WorkflowSpec::Saved { workflow_id } => Some(workflow_id.clone()),
                WorkflowSpec::Inline { .. } => None,
            },
            include_workflow: matches!(request.workflow, WorkflowSpec::Inline { .. }),
            limit: None,
        };
        let listed = self.list_raw(instance, &filter).await?;
        Ok(best_match(listed, request, exclude))
    }

    /// Cancels a PENDING or RUNNING execution (AMC answers 400 for any other state).
    pub async fn cancel_execution(
        &self,
        instance: &InstanceRef,
        amc_execution_id: &str,
    ) -> Result<(), AmcError> {
        let call = ApiCall {
            endpoint: Endpoint::Cancel,
            instance,
            method: Method::PUT,
            url: self.inner.executions_url(instance, &[amc_execution_id])?,
            body: Some(json!({ "status": "CANCELLED" })),
            idempotent: true,
        };
        // The documented reply body is empty; whatever comes back is irrelevant.
        self.inner.api_call(&call, |_| Ok(())).await
    }

    async fn list_raw(
        &self,
        instance: &InstanceRef,
        filter: &ListFilter,
    ) -> Result<Vec<Listed>, AmcError> {
        let mut found = Vec::new();
        let mut next_token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let url = self.list_url(instance, filter, next_token.as_deref())?;
            let call = ApiCall {
                endpoint: Endpoint::List,
                instance,
                method: Method::GET,
                url,
                body: None,
                idempotent: true,
            };
            let (page, token) = self.inner.api_call(&call, parse_list_page).await?;
            found.extend(page);
            match token {
                Some(token) if next_token.as_deref() != Some(token.as_str()) => {
                    next_token = Some(token)
                }
                _ => return Ok(found),
            }
        }
        tracing::warn!(
            pages = MAX_LIST_PAGES,
            instance = %instance.instance_id,
            "stopped following amc list pages at the bound"
        );
        Ok(found)
    }

    fn list_url(
        &self,
        instance: &InstanceRef,
        filter: &ListFilter,
        next_token: Option<&str>,
    ) -> Result<url::Url, AmcError> {
        let mut url = self.inner.executions_url(instance, &[])?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(t) = filter.min_creation_time {
                query.append_pair("minCreationTime", &t.format(LOCAL_FORMAT).to_string());
                // The time is UTC; without a zone AMC may read it in another one and skip
                // executions created in the hours between.
                query.append_pair("timeZone", "UTC");
            }
            if let Some(id) = &filter.workflow_id {
                query.append_pair("workflowId", id);
            }
            let include_workflow = if filter.include_workflow {
                "true"
            } else {
                "false"
            };
            query.append_pair("includeWorkflow", include_workflow);
            query.append_pair("includeCancelled", "false");
            if let Some(limit) = filter.limit {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(token) = next_token {
                query.append_pair("nextToken", token);
            }
        }
        Ok(url)
    }
}

fn parse_list_page(body: &[u8]) -> Result<(Vec<Listed>, Option<String>), AmcError> {
    let value = parse_json_object(body)?;
    let executions = match value.get("executions") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let item = unwrap_execution(item);
                (ExecutionInfo::from_json(item), item.clone())
            })
            .collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(AmcError::Decode("executions is not an array".into())),
    };
    let next_token = value
        .get("nextToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Ok((executions, next_token))
}

fn best_match(
    listed: Vec<Listed>,
    request: &CreateExecution,
    exclude: &[String],
) -> Option<ExecutionInfo> {
    let rank = |status: &ExecutionStatus| match status {
        ExecutionStatus::Succeeded => Some(3),
        ExecutionStatus::Pending
        | ExecutionStatus::Running
        | ExecutionStatus::Publishing
        | ExecutionStatus::Unknown(_) => Some(2),
        _ => Some(1),
    };
    listed
        .into_iter()
        .filter(|(info, _)| {
            info.workflow_execution_id
                .as_ref()
                .is_none_or(|id| !exclude.contains(id))
        })
        .filter(|(info, raw)| same_request(info, raw, request))
        .filter_map(|(info, _)| rank(&info.status).map(|r| (r, info)))
        .max_by_key(|(r, info)| (*r, info.create_time))
        .map(|(_, info)| info)
}

fn same_request(info: &ExecutionInfo, raw: &Value, request: &CreateExecution) -> bool {
    let workflow_ok = match &request.workflow {
        // The workflowId filter already applied server-side; re-check in case it was ignored.
        WorkflowSpec::Saved { workflow_id } => info
            .workflow_id
            .as_deref()
            .is_none_or(|id| id == workflow_id),
        // AMC's echo is not promised byte-identical (Amazon's API model documents no such promise): both sides are
        // normalised the way the query was prepared; an echo that does not lex matches nothing.
        WorkflowSpec::Inline { sql_query } => {
            match (
                info.sql_query.as_deref().map(single_line),
                single_line(sql_query),
            ) {
                (Some(Ok(echo)), Ok(sent)) => echo == sent,
                _ => false,
            }
        }
    };
    workflow_ok && same_parameters(raw, request) && window_matches(info, &request.window)
}

/// Whether a listed execution ran with exactly the request's `parameterValues`: an execution
/// with other parameters computed something else and is never this week's. AMC echoes
/// `parameterValues` on the execution it returns (Amazon's API model: the `WorkflowExecution`
/// reply carries the request's `parameterValues`); an execution that echoes none ran with none.
/// A request without parameters matches only an execution without any (or with `{}`).
fn same_parameters(raw: &Value, request: &CreateExecution) -> bool {
    let empty = serde_json::Map::new();
    let wanted = request.parameter_values.as_ref().unwrap_or(&empty);
    match raw.get("parameterValues") {
        None | Some(Value::Null) => wanted.is_empty(),
        Some(Value::Object(seen)) => seen == wanted,
        Some(_) => false,
    }
}
