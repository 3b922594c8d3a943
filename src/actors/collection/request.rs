//! What is sent to AMC for one week: the EXPLICIT window, the workflow (saved id with the
//! collection's parameters as `parameterValues`, or inline SQL with `{{start_date}}`/`{{end_date}}`
//! and the parameters' placeholders filled) and the idempotency key of that submission.
//!
//! Inline SQL goes through [`crate::sql::single_line`], so AMC runs exactly the query the analyst
//! wrote, then [`crate::query_params::render_sql`] fills its placeholders with escaped literals.
//! SQL stored before `workflow add` validated it may not lex, and a workflow's placeholder may
//! lack a value (a collection created before parameters existed); such a week fails for good
//! with the reason (retrying cannot change the stored text).

use chrono::{NaiveDate, NaiveTime};
use sha2::{Digest, Sha256};

use crate::amc::{CreateExecution, TimeWindow, WorkflowSpec};
use crate::query_params::{render_sql, ParamError, QueryParams};
use crate::store::model::{Instance, Workflow};

/// Why a workflow cannot be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("workflow {0} has neither SQL nor an AMC workflow id")]
    EmptyWorkflow(String),
    #[error("unknown time zone `{0}`")]
    BadTimeZone(String),
    /// The message carries the lexer's (or the parameters'), since the week's stored reason is
    /// this error's text.
    #[error("the SQL of workflow {workflow} cannot be sent to AMC: {source}")]
    BadSql {
        workflow: String,
        #[source]
        source: ParamError,
    },
}

/// The create request for the week `[week_start, week_end]` (both inclusive).
///
/// A saved workflow gets the parameters as `parameterValues`, a map from the workflow's
/// parameter name to its value (Amazon's API model, `CreateWorkflowExecutionRequest`; sent so
/// beside `workflowId` by AWS's own AMC solution, "Amazon Marketing Cloud Insights on AWS"): a
/// value as a JSON string, a list as an array of strings. Its dates come from the time window, as
/// before. Inline SQL carries its parameters in the query and sends no `parameterValues`.
pub fn build_request(
    workflow: &Workflow,
    params: &QueryParams,
    week_start: NaiveDate,
    week_end: NaiveDate,
    time_zone: &str,
) -> Result<CreateExecution, RequestError> {
    let zone: chrono_tz::Tz = time_zone
        .parse()
        .map_err(|_| RequestError::BadTimeZone(time_zone.to_string()))?;
    let end_exclusive = week_end + chrono::Duration::days(1);
    let (spec, parameter_values) = match (&workflow.amc_workflow_id, &workflow.sql_query) {
        (Some(id), _) => (
            WorkflowSpec::Saved {
                workflow_id: id.clone(),
            },
            params.parameter_values(),
        ),
        (None, Some(sql)) => {
            let sql_query =
                prepare_sql_with(sql, week_start, week_end, params).map_err(|source| {
                    RequestError::BadSql {
                        workflow: workflow.name.clone(),
                        source,
                    }
                })?;
            (WorkflowSpec::Inline { sql_query }, None)
        }
        (None, None) => return Err(RequestError::EmptyWorkflow(workflow.name.clone())),
    };
    Ok(CreateExecution {
        window: TimeWindow {
            start: week_start.and_time(NaiveTime::MIN),
            end: end_exclusive.and_time(NaiveTime::MIN),
            time_zone: zone,
        },
        workflow: spec,
        parameter_values,
    })
}

/// [`prepare_sql_with`] without parameters.
pub fn prepare_sql(
    sql: &str,
    week_start: NaiveDate,
    week_end: NaiveDate,
) -> Result<String, ParamError> {
    prepare_sql_with(sql, week_start, week_end, &QueryParams::default())
}

/// Makes the SQL acceptable to AMC (one line, no comments, no trailing semicolon, literals
/// untouched: AMC's documentation of `sqlQuery`), then fills in the week's dates and the
/// parameters (`query_params`). Normalising first keeps error positions those of the stored SQL.
pub fn prepare_sql_with(
    sql: &str,
    week_start: NaiveDate,
    week_end: NaiveDate,
    params: &QueryParams,
) -> Result<String, ParamError> {
    let (start, end) = (
        week_start.format("%Y-%m-%d").to_string(),
        week_end.format("%Y-%m-%d").to_string(),
    );
    render_sql(sql, &start, &end, params)
}

/// Idempotency key of a submission: instance + workflow + window + zone + parameters.
pub fn idempotency_key(instance: &Instance, request: &CreateExecution) -> String {
    let mut hasher = Sha256::new();
    hasher.update(instance.instance_id.as_bytes());
    hasher.update([0]);
    match &request.workflow {
        WorkflowSpec::Saved { workflow_id } => {
            hasher.update(b"saved:");
            hasher.update(workflow_id.as_bytes());
        }
        WorkflowSpec::Inline { sql_query } => {
            hasher.update(b"sql:");
            hasher.update(sql_query.as_bytes());
        }
    }
    hasher.update([0]);
    hasher.update(request.window.start.to_string().as_bytes());
    hasher.update(request.window.end.to_string().as_bytes());
    hasher.update(request.window.time_zone.name().as_bytes());
    if let Some(parameters) = &request.parameter_values {
        hasher.update(
            serde_json::Value::Object(parameters.clone())
                .to_string()
                .as_bytes(),
        );
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkflowId;
    use crate::query_params::ParamValue;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn sql_workflow(sql: &str) -> Workflow {
        Workflow {
            id: WorkflowId::new(),
            name: "w".into(),
            sql_query: Some(sql.into()),
            amc_workflow_id: None,
        }
    }

    #[test]
    fn dates_are_substituted_and_sql_becomes_one_line_without_semicolon() {
        let sql = "SELECT *\n\tFROM t\nWHERE d BETWEEN '{{start_date}}' AND '{{end_date}}';\n";
        assert_eq!(
            prepare_sql(sql, d("2024-01-01"), d("2024-01-07")).unwrap(),
            "SELECT * FROM t WHERE d BETWEEN '2024-01-01' AND '2024-01-07'"
        );
    }

    #[test]
    fn a_commented_query_is_sent_without_its_comments_and_with_its_literals_intact() {
        let sql = "-- notes\nSELECT 'a  b' /* why */ AS tag\nFROM t WHERE d >= '{{start_date}}';";
        assert_eq!(
            prepare_sql(sql, d("2024-01-01"), d("2024-01-07")).unwrap(),
            "SELECT 'a  b' AS tag FROM t WHERE d >= '2024-01-01'"
        );
    }

    #[test]
    fn stored_sql_that_does_not_lex_is_a_request_error_naming_the_workflow_and_position() {
        let error = build_request(
            &sql_workflow("SELECT 1\nWHERE x = 'open"),
            &QueryParams::default(),
            d("2024-01-01"),
            d("2024-01-07"),
            "UTC",
        )
        .unwrap_err();
        assert!(matches!(error, RequestError::BadSql { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("workflow w"), "{message}");
        assert!(message.contains("line 2, column 11"), "{message}");
    }

    #[test]
    fn placeholders_written_with_spaces_inside_the_braces_are_substituted() {
        let sql = "SELECT 1 WHERE d >= '{{ start_date }}' AND d <= {{end_date  }} \
                   AND x = '{{ not a name }}' AND y = {{ brand }}";
        let mut params = QueryParams::default();
        params
            .insert("brand", ParamValue::One("it's".into()))
            .unwrap();
        let prepared = prepare_sql_with(sql, d("2024-01-01"), d("2024-01-07"), &params).unwrap();
        assert_eq!(
            prepared,
            "SELECT 1 WHERE d >= '2024-01-01' AND d <= 2024-01-07 AND x = '{{ not a name }}' \
             AND y = 'it''s'"
        );
    }

    #[test]
    fn a_placeholder_without_a_value_is_a_request_error_naming_it() {
        let error = build_request(
            &sql_workflow("SELECT 1 WHERE x = {{ other }}"),
            &QueryParams::default(),
            d("2024-01-01"),
            d("2024-01-07"),
            "UTC",
        )
        .unwrap_err();
        assert!(matches!(error, RequestError::BadSql { .. }), "{error:?}");
        assert!(
            error.to_string().contains("{{other}} has no value"),
            "{error}"
        );
    }

    #[test]
    fn window_is_explicit_with_an_exclusive_end_in_the_collection_zone() {
        let request = build_request(
            &sql_workflow("SELECT 1"),
            &QueryParams::default(),
            d("2024-01-01"),
            d("2024-01-07"),
            "Europe/Paris",
        )
        .unwrap();
        assert_eq!(request.window.start.to_string(), "2024-01-01 00:00:00");
        assert_eq!(request.window.end.to_string(), "2024-01-08 00:00:00");
        assert_eq!(request.window.time_zone.name(), "Europe/Paris");
    }

    #[test]
    fn saved_workflows_are_referenced_by_id() {
        let workflow = Workflow {
            amc_workflow_id: Some("saved_wf".into()),
            sql_query: None,
            ..sql_workflow("")
        };
        let none = QueryParams::default();
        let request =
            build_request(&workflow, &none, d("2024-01-01"), d("2024-01-07"), "UTC").unwrap();
        assert_eq!(
            request.workflow,
            WorkflowSpec::Saved {
                workflow_id: "saved_wf".into()
            }
        );
        assert_eq!(request.parameter_values, None);
    }

    #[test]
    fn a_saved_workflow_gets_the_parameters_as_parameter_values_and_inline_sql_does_not() {
        let mut params = QueryParams::default();
        params
            .insert("asins", ParamValue::List(vec!["B1".into(), "B2".into()]))
            .unwrap();
        params
            .insert("region", ParamValue::One("US".into()))
            .unwrap();
        let saved = Workflow {
            amc_workflow_id: Some("saved_wf".into()),
            sql_query: None,
            ..sql_workflow("")
        };
        let request =
            build_request(&saved, &params, d("2024-01-01"), d("2024-01-07"), "UTC").unwrap();
        let body = request.to_body();
        assert_eq!(
            body["parameterValues"],
            serde_json::json!({"asins": ["B1", "B2"], "region": "US"})
        );
        assert_eq!(body["workflowId"], "saved_wf");
        let inline = sql_workflow("SELECT 1 WHERE a IN ({{asins}}) AND r = {{region}}");
        let request =
            build_request(&inline, &params, d("2024-01-01"), d("2024-01-07"), "UTC").unwrap();
        assert_eq!(request.parameter_values, None);
        assert_eq!(
            request.workflow,
            WorkflowSpec::Inline {
                sql_query: "SELECT 1 WHERE a IN ('B1', 'B2') AND r = 'US'".into()
            }
        );
    }
}
