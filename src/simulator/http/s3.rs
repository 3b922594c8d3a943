//! The S3 stand-in that serves result files behind pre-signed URLs, with S3's refusals: expired
//! or unknown signatures get 403 AccessDenied, a second auth mechanism gets 400. Faults: `503
//! SlowDown` and bodies cut off before their Content-Length.

use std::ops::ControlFlow;
use std::time::Instant;

use actix_web::body::SizedStream;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::StreamExt;

use crate::simulator::download_faults::FileFault;
use crate::simulator::result_content::{trickle, LargeFile, ResultContent};
use crate::simulator::results::{expected_result_files, without_repeated_headers};
use crate::simulator::state::{Shared, State};

pub(super) async fn download(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<(String, usize)>,
) -> HttpResponse {
    let (execution_id, index) = path.into_inner();
    if request.headers().contains_key(header::AUTHORIZATION) {
        return s3_error(
            HttpResponse::BadRequest(),
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified",
        );
    }
    let signature = url::form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(key, _)| key == "X-Amz-Signature")
        .map(|(_, value)| value.into_owned());
    match answer_from_state(&shared, signature, &execution_id, index) {
        ControlFlow::Break(reply) => reply,
        ControlFlow::Continue(generated) => serve_generated(&shared, generated, index),
    }
}

/// The execution a generated result file belongs to, and how to serve it.
struct Generated {
    /// Instance, workflow key, start and end as created; None for an unknown execution.
    source: Option<(String, String, String, String)>,
    fault: FileFault,
    stall: bool,
}

/// Everything decided under the state lock: a refused signature, a `SlowDown`, or a configured
/// result (generated large files, supplied files) is answered here; otherwise the generated
/// file's source and faults are handed on, so that it is built outside the lock.
fn answer_from_state(
    shared: &Shared,
    signature: Option<String>,
    execution_id: &str,
    index: usize,
) -> ControlFlow<HttpResponse, Generated> {
    let mut state = shared.lock();
    if let Some(message) = refusal(&state, signature, execution_id, index) {
        state.stats.served_403_download += 1;
        return ControlFlow::Break(s3_error(HttpResponse::Forbidden(), "AccessDenied", message));
    }
    let state = &mut *state;
    let fault = (state.faults.download).file_fault(execution_id, index, &mut state.stats);
    if let FileFault::SlowDown { retry_after } = fault {
        let mut reply = HttpResponse::ServiceUnavailable();
        if retry_after {
            reply.insert_header((header::RETRY_AFTER, "1"));
        }
        return ControlFlow::Break(s3_error(
            reply,
            "SlowDown",
            "Please reduce your request rate.",
        ));
    }
    state.stats.downloads += 1;
    let source = state.executions.get(execution_id).map(|execution| {
        (
            execution.instance.clone(),
            execution.workflow_key.clone(),
            execution.start_original.clone(),
            execution.end_original.clone(),
        )
    });
    let content = state.faults.download.content.clone();
    let stall = state.faults.download.stall_downloads;
    let known = source.is_some();
    match content {
        ResultContent::Large { bytes, files } if known && index < files.max(1) as usize => {
            state.stats.served_large_results += 1;
            // Generated chunk by chunk as the client reads: never held whole.
            let chunks = LargeFile::new(bytes, files, index as u32)
                .map(|chunk| Ok::<_, std::io::Error>(Bytes::from(chunk)));
            return ControlFlow::Break(
                HttpResponse::Ok()
                    .content_type("text/csv")
                    .streaming(futures::stream::iter(chunks)),
            );
        }
        ResultContent::Files(files) if known && index < files.len() => {
            state.stats.served_custom_results += 1;
            let file = files[index].clone();
            return ControlFlow::Break(serve(file, fault, stall, &mut state.stats));
        }
        _ => {}
    }
    if stall && known {
        state.stats.served_stalled_downloads += 1;
    }
    ControlFlow::Continue(Generated {
        source,
        fault,
        stall,
    })
}

/// Why S3 refuses the signature: unknown, granted for another file, or expired.
fn refusal(
    state: &State,
    signature: Option<String>,
    execution_id: &str,
    index: usize,
) -> Option<&'static str> {
    let grant = signature.and_then(|signature| state.urls.get(&signature));
    match grant {
        Some(grant) if grant.execution != execution_id || grant.index != index => {
            Some("Access Denied")
        }
        Some(grant) if grant.expires <= Instant::now() => Some("Request has expired"),
        Some(_) => None,
        None => Some("Access Denied"),
    }
}

/// Builds the deterministic result file `index` of the execution and serves it.
fn serve_generated(shared: &Shared, generated: Generated, index: usize) -> HttpResponse {
    let Generated {
        source,
        fault,
        stall,
    } = generated;
    let Some((instance, workflow_key, start, end)) = source else {
        return no_such_key();
    };
    let mut files = expected_result_files(
        &instance,
        &workflow_key,
        &start,
        &end,
        shared.config.rows_scale,
    );
    if index >= files.len() {
        return no_such_key();
    }
    if index > 0 && shared.lock().faults.download.headerless_continuation {
        files = without_repeated_headers(files);
        shared.lock().stats.served_headerless_files += 1;
    }
    let file = files.swap_remove(index);
    if stall {
        return HttpResponse::Ok()
            .content_type("text/csv")
            .streaming(trickle(Bytes::from(file)));
    }
    if fault == FileFault::Truncate {
        return truncated(file);
    }
    HttpResponse::Ok().content_type("text/csv").body(file)
}

fn no_such_key() -> HttpResponse {
    s3_error(
        HttpResponse::NotFound(),
        "NoSuchKey",
        "The specified key does not exist.",
    )
}

/// Serves a supplied file, with the truncation and stall faults.
fn serve(
    file: Bytes,
    fault: FileFault,
    stall: bool,
    stats: &mut crate::simulator::SimulatorStats,
) -> HttpResponse {
    if stall {
        stats.served_stalled_downloads += 1;
        return HttpResponse::Ok()
            .content_type("text/csv")
            .streaming(trickle(file));
    }
    if fault == FileFault::Truncate {
        return truncated(file.to_vec());
    }
    HttpResponse::Ok().content_type("text/csv").body(file)
}

/// Declares the whole file's Content-Length, sends half of it, then fails the body stream: actix
/// aborts the connection, which a client sees as a body that ended early. The stream yields once
/// between the two so the head and the first half are flushed before the abort (an error polled
/// in the same turn would drop them unsent).
fn truncated(file: Vec<u8>) -> HttpResponse {
    let length = file.len() as u64;
    let mut head = file;
    head.truncate(head.len() / 2);
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) });
    let cut = futures::stream::once(async {
        tokio::task::yield_now().await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated connection cut before Content-Length",
        ))
    });
    HttpResponse::Ok()
        .content_type("text/csv")
        .body(SizedStream::new(length, first.chain(cut)))
}

fn s3_error(
    mut builder: actix_web::HttpResponseBuilder,
    code: &str,
    message: &str,
) -> HttpResponse {
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    builder.content_type("application/xml").body(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
    ))
}
