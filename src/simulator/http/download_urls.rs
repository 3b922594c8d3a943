//! The `downloadUrls` endpoint: pre-signed URLs of a succeeded execution's result files, with
//! the download-side faults that shape the reply (malformed bodies, a failed DOWNLOAD channel,
//! results not published yet, replies paged with `nextToken`).

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::executions::{encode_segment, find, query_value};
use super::{admit, ApiError};
use crate::simulator::execution::Status;
use crate::simulator::results::expected_result_files;
use crate::simulator::state::Shared;

/// The file index under which a metadata file's URL is granted.
const METADATA_INDEX: usize = usize::MAX;

/// `nextToken` values are `page-<first file index>`: opaque to the client, checked here.
const TOKEN_PREFIX: &str = "page-";

pub(super) async fn download_urls(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    admit(&shared, request.headers())?;
    let (instance, id) = path.into_inner();
    let first = match query_value(&request, "nextToken") {
        None => 0,
        Some(token) => token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::BadRequest(format!("Invalid nextToken {token}")))?,
    };
    // `id` becomes the execution's own id (a hostile-text id arrives with text after it).
    let ((workflow_key, start, end, id), fixed_count) = {
        let mut state = shared.lock();
        state.stats.download_url_requests += 1;
        let now = Instant::now();
        state.advance(&shared.config, &instance, now);
        let execution = find(&state.executions, &instance, &id)?;
        let id = execution.id.clone();
        let succeeded = execution.status_at(now).0 == Status::Succeeded;
        let channel_failed = execution.download_channel_failed;
        let unpublished = execution.unpublished_at(now);
        let source = (
            execution.workflow_key.clone(),
            execution.start_original.clone(),
            execution.end_original.clone(),
            id.clone(),
        );
        if succeeded && channel_failed {
            state.stats.served_download_channel_failures += 1;
        }
        if !succeeded || channel_failed {
            return Err(ApiError::BadRequest(format!(
                "Execution with ID {id} is unavailable for download"
            )));
        }
        if unpublished {
            // Not published yet: an empty list, the way AMC answers while the channel is PENDING.
            state.stats.served_unpublished_download_urls += 1;
            return Ok(
                HttpResponse::Ok().json(json!({"downloadUrls": [], "metadataDownloadUrls": []}))
            );
        }
        let state = &mut *state;
        // Observed from AMC: an execution it no longer keeps answers 404 with this message.
        if (state.faults.download).is_lost(&id, &mut state.stats) {
            return Err(ApiError::NotFound(format!(
                "Workflow execution {id} not found"
            )));
        }
        let malformed = (state.faults.download).malformed_urls_reply(&id, &mut state.stats);
        if let Some((content_type, body)) = malformed {
            return Ok(HttpResponse::Ok().content_type(content_type).body(body));
        }
        (source, state.faults.download.content.file_count())
    };
    // Built outside the lock: only the count is needed here, the bytes are served by s3.rs.
    let file_count = fixed_count.unwrap_or_else(|| {
        expected_result_files(
            &instance,
            &workflow_key,
            &start,
            &end,
            shared.config.rows_scale,
        )
        .len()
    });
    let mut state = shared.lock();
    let page_size = match state.faults.download.urls_page_size {
        0 => file_count.max(1),
        n => n,
    };
    let last = file_count.min(first.saturating_add(page_size));
    let base = match state.faults.download.insecure_url_host.clone() {
        Some(host) => {
            state.stats.served_insecure_download_urls += 1;
            format!("http://{host}")
        }
        None => {
            let info = request.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    let now = Instant::now();
    let expires_secs = state.faults.url_ttl.as_secs();
    let urls: Vec<String> = (first.min(last)..last)
        .map(|index| {
            let signature = state.grant_url(&id, index, now);
            // Ids may carry any text (the hostile-text fault): the path segment is encoded.
            let id = encode_segment(&id);
            format!(
                "{base}/__sim/s3/{id}/{index}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Expires={expires_secs}&X-Amz-Signature={signature}"
            )
        })
        .collect();
    let metadata: Vec<String> = if state.faults.download.metadata_files && first == 0 {
        let signature = state.grant_url(&id, METADATA_INDEX, now);
        let id = encode_segment(&id);
        vec![format!(
            "{base}/__sim/s3-metadata/{id}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Expires={expires_secs}&X-Amz-Signature={signature}"
        )]
    } else {
        Vec::new()
    };
    let mut reply = json!({"downloadUrls": urls, "metadataDownloadUrls": metadata});
    if last < file_count {
        state.stats.served_download_url_pages += 1;
        reply["nextToken"] = json!(format!("{TOKEN_PREFIX}{last}"));
    }
    Ok(HttpResponse::Ok().json(reply))
}

/// Serves the metadata file of an execution's result: JSON with its data row count (plus the
/// configured skew) and column names, behind a pre-signed URL like the files.
pub(super) async fn metadata(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let execution_id = path.into_inner();
    let signature = query_value(&request, "X-Amz-Signature");
    let (source, skew) = {
        let mut state = shared.lock();
        let granted = signature
            .and_then(|signature| state.urls.get(&signature))
            .is_some_and(|grant| {
                grant.execution == execution_id
                    && grant.index == METADATA_INDEX
                    && grant.expires > Instant::now()
            });
        if !granted {
            state.stats.served_403_download += 1;
            return HttpResponse::Forbidden().finish();
        }
        state.stats.served_metadata_files += 1;
        let source = state.executions.get(&execution_id).map(|e| {
            let key = (e.workflow_key.clone(), e.start_original.clone());
            (e.instance.clone(), key, e.end_original.clone())
        });
        (source, state.faults.download.metadata_row_skew)
    };
    let Some((instance, (workflow_key, start), end)) = source else {
        return HttpResponse::NotFound().finish();
    };
    let scale = shared.config.rows_scale;
    let files = expected_result_files(&instance, &workflow_key, &start, &end, scale);
    let (rows, columns) = match crate::results::parse_results(&files, usize::MAX) {
        Ok(parsed) => (parsed.row_count, parsed.columns),
        Err(_) => (0, Vec::new()),
    };
    HttpResponse::Ok().json(json!({
        "workflowExecutionId": execution_id,
        "rowCount": rows.saturating_add(skew).max(0),
        "columns": columns,
    }))
}
