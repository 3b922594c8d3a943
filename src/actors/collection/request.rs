//! What is sent to AMC for one week: the EXPLICIT window, the workflow (saved id or inline SQL with
//! `{{start_date}}`/`{{end_date}}` substituted) and the idempotency key of that submission.
//!
//! Inline SQL goes through [`crate::sql::single_line`], so AMC runs exactly the query the analyst
//! wrote. SQL stored before `workflow add` validated it may not lex; such a week fails for good with
//! the lexer's message (retrying cannot change the stored text).

use chrono::{NaiveDate, NaiveTime};
use sha2::{Digest, Sha256};

use crate::amc::{CreateExecution, TimeWindow, WorkflowSpec};
use crate::sql::{single_line, SqlError};
use crate::store::model::{Instance, Workflow};

/// Why a workflow cannot be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("workflow {0} has neither SQL nor an AMC workflow id")]
    EmptyWorkflow(String),
    #[error("unknown time zone `{0}`")]
    BadTimeZone(String),
    /// The message carries the lexer's, since the week's stored reason is this error's text.
    #[error("the SQL of workflow {workflow} cannot be sent to AMC: {source}")]
    BadSql {
        workflow: String,
        #[source]
        source: SqlError,
    },
}

/// The create request for the week `[week_start, week_end]` (both inclusive).
pub fn build_request(
    workflow: &Workflow,
    week_start: NaiveDate,
    week_end: NaiveDate,
    time_zone: &str,
) -> Result<CreateExecution, RequestError> {
    let zone: chrono_tz::Tz = time_zone
        .parse()
        .map_err(|_| RequestError::BadTimeZone(time_zone.to_string()))?;
    let end_exclusive = week_end + chrono::Duration::days(1);
    let spec = match (&workflow.amc_workflow_id, &workflow.sql_query) {
        (Some(id), _) => WorkflowSpec::Saved {
            workflow_id: id.clone(),
        },
        (None, Some(sql)) => WorkflowSpec::Inline {
            sql_query: prepare_sql(sql, week_start, week_end).map_err(|source| {
                RequestError::BadSql {
                    workflow: workflow.name.clone(),
                    source,
                }
            })?,
        },
        (None, None) => return Err(RequestError::EmptyWorkflow(workflow.name.clone())),
    };
    Ok(CreateExecution {
        window: TimeWindow {
            start: week_start.and_time(NaiveTime::MIN),
            end: end_exclusive.and_time(NaiveTime::MIN),
            time_zone: zone,
        },
        workflow: spec,
        parameter_values: None,
    })
}

/// Makes the SQL acceptable to AMC (one line, no comments, no trailing semicolon, literals
/// untouched: AMC's documentation of `sqlQuery`), then substitutes the week's dates. Normalising first keeps error
/// positions those of the stored SQL; the dates hold no quote, comment marker or space, so the
/// order changes nothing else.
pub fn prepare_sql(
    sql: &str,
    week_start: NaiveDate,
    week_end: NaiveDate,
) -> Result<String, SqlError> {
    let (start, end) = (
        week_start.format("%Y-%m-%d").to_string(),
        week_end.format("%Y-%m-%d").to_string(),
    );
    Ok(substitute_dates(&single_line(sql)?, &start, &end))
}

/// Replaces `{{start_date}}` and `{{end_date}}`, also written with spaces inside the braces
/// (`{{ start_date }}`, as templating languages allow): a placeholder left in the SQL would reach
/// AMC unchanged. Other `{{...}}` text is left as it is.
fn substitute_dates(sql: &str, start: &str, end: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let value = after.find("}}").and_then(|close| {
            let name = after[..close].trim();
            let value = match name {
                "start_date" => start,
                "end_date" => end,
                _ => return None,
            };
            Some((value, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
        let sql =
            "SELECT 1 WHERE d >= '{{ start_date }}' AND d <= {{end_date  }} AND x = '{{ other }}'";
        let prepared = prepare_sql(sql, d("2024-01-01"), d("2024-01-07")).unwrap();
        assert_eq!(
            prepared,
            "SELECT 1 WHERE d >= '2024-01-01' AND d <= 2024-01-07 AND x = '{{ other }}'"
        );
        assert_eq!(substitute_dates("{{start_date}}{{", "a", "b"), "a{{");
    }

    #[test]
    fn window_is_explicit_with_an_exclusive_end_in_the_collection_zone() {
        let request = build_request(
            &sql_workflow("SELECT 1"),
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
        let request = build_request(&workflow, d("2024-01-01"), d("2024-01-07"), "UTC").unwrap();
        assert_eq!(
            request.workflow,
            WorkflowSpec::Saved {
                workflow_id: "saved_wf".into()
            }
        );
    }
}
