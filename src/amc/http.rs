//! One authenticated AMC API call: headers, rate limit, 401 re-auth, and reply classification.

use std::time::Instant;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Method;
use serde_json::Value;

use super::bearer::Bearer;
use super::config::InstanceRef;
use super::error::{error_message, AmcError};
use super::retry::{parse_retry_after, Outcome};
use super::stats::Endpoint;
use super::Inner;

/// Text AMC puts in the error of a downloadUrls call made before the results exist.
const NOT_READY_TEXT: &str = "unavailable for download";

/// Whether an error body names a quota or an execution/daily limit (AMC's refusal text is not
/// documented); a request refused for its own content ("query exceeds ...") must still fail.
fn names_a_limit(body: &[u8]) -> bool {
    let message = error_message(body).to_ascii_lowercase();
    message.contains("quota")
        || (message.contains("limit")
            && ["day", "daily", "execution"]
                .iter()
                .any(|word| message.contains(word)))
}

/// A fully described AMC API request, re-sendable on every attempt.
pub(crate) struct ApiCall<'a> {
    pub(crate) endpoint: Endpoint,
    pub(crate) instance: &'a InstanceRef,
    pub(crate) method: Method,
    pub(crate) url: url::Url,
    pub(crate) body: Option<Value>,
    /// False for create: a request that may have reached AMC must not be sent twice.
    pub(crate) idempotent: bool,
}

/// A received reply: status, headers and the whole body.
/// Largest successful AMC API reply read (execution lists are the biggest, far below this).
const API_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Largest part of an error reply read: only its message is used.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Reads at most `limit` bytes of a body; `true` when more was on offer (the rest is not read,
/// so a hostile or broken server cannot make the client buffer without bound).
pub(crate) async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Inner {
    /// Sends `call` with retries and decodes a 2xx body with `parse`.
    pub(crate) async fn api_call<T>(
        &self,
        call: &ApiCall<'_>,
        parse: fn(&[u8]) -> Result<T, AmcError>,
    ) -> Result<T, AmcError> {
        self.with_retries(call.endpoint, |attempt| {
            self.api_attempt(call, parse, attempt)
        })
        .await
    }

    async fn api_attempt<T>(
        &self,
        call: &ApiCall<'_>,
        parse: fn(&[u8]) -> Result<T, AmcError>,
        attempt: u32,
    ) -> Outcome<T> {
        // The instance's credential set: its outage holds this call, not other instances'.
        let source = self.sets.for_instance(call.instance);
        let bearer = match self.bearer(&source).await {
            Ok(bearer) => bearer,
            Err(e) => return Outcome::Fatal(e),
        };
        let mut reply = match self.send_once(call, &bearer, attempt).await {
            Ok(reply) => reply,
            Err(e) => return self.unanswered(call, e),
        };
        if reply.status == 401 {
            // An expired or revoked token: refresh once and resend; a second 401 is final.
            let bearer = match self
                .bearer_after_rejection(&source, bearer.generation)
                .await
            {
                Ok(bearer) => bearer,
                Err(e) => return Outcome::Fatal(e),
            };
            reply = match self.send_once(call, &bearer, attempt).await {
                Ok(reply) => reply,
                Err(e) => return self.unanswered(call, e),
            };
        }
        classify(call, reply, parse)
    }

    /// A request that got no reply may still have been processed, so only idempotent calls retry.
    fn unanswered<T>(&self, call: &ApiCall<'_>, error: AmcError) -> Outcome<T> {
        if call.idempotent {
            Outcome::retry(error)
        } else {
            tracing::warn!(
                endpoint = %call.endpoint,
                error = %error,
                "amc call got no reply; not resent because it may have been processed"
            );
            Outcome::Fatal(error)
        }
    }

    async fn send_once(
        &self,
        call: &ApiCall<'_>,
        bearer: &Bearer,
        attempt: u32,
    ) -> Result<Reply, AmcError> {
        let headers = self.amc_headers(call.instance, bearer)?;
        self.limiter.acquire().await;
        let mut request = self
            .api_http
            .request(call.method.clone(), call.url.clone())
            .headers(headers)
            .timeout(self.request_timeout);
        if let Some(body) = &call.body {
            let bytes = serde_json::to_vec(body)
                .map_err(|e| AmcError::InvalidConfig(format!("request body: {e}")))?;
            request = request.body(bytes);
        }
        let started = Instant::now();
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.counters.record(call.endpoint, None);
                return Err(AmcError::from_reqwest(call.endpoint, e));
            }
        };
        let status = response.status().as_u16();
        self.counters.record(call.endpoint, Some(status));
        let headers = response.headers().clone();
        let success = (200..=299).contains(&status);
        let limit = if success {
            API_BODY_LIMIT
        } else {
            ERROR_BODY_LIMIT
        };
        let (body, cut) = read_limited(&mut response, limit)
            .await
            .map_err(|e| AmcError::from_reqwest(call.endpoint, e))?;
        if cut && success {
            // Half a JSON document is no answer; an error reply only needs its first KiBs.
            return Err(AmcError::Decode(format!(
                "{} reply larger than {API_BODY_LIMIT} bytes",
                call.endpoint
            )));
        }
        let body = Bytes::from(body);
        tracing::debug!(
            endpoint = %call.endpoint,
            status,
            attempt,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "amc request"
        );
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn amc_headers(&self, instance: &InstanceRef, bearer: &Bearer) -> Result<HeaderMap, AmcError> {
        let value = |name: &str, raw: &str| {
            HeaderValue::from_str(raw)
                .map_err(|_| AmcError::InvalidConfig(format!("{name} is not a valid header value")))
        };
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, bearer.header.clone());
        headers.insert("Amazon-Advertising-API-ClientId", bearer.client_id.clone());
        headers.insert(
            "Amazon-Advertising-API-AdvertiserId",
            value("advertiser_id", &instance.advertiser_id)?,
        );
        headers.insert(
            "Amazon-Advertising-API-MarketplaceId",
            value("marketplace_id", &instance.marketplace_id)?,
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Ok(headers)
    }
}

fn classify<T>(
    call: &ApiCall<'_>,
    reply: Reply,
    parse: fn(&[u8]) -> Result<T, AmcError>,
) -> Outcome<T> {
    let endpoint = call.endpoint;
    match reply.status {
        200..=299 => match parse(&reply.body) {
            Ok(value) => Outcome::Done(value),
            // A garbled 2xx to create may still have created the execution: never resend it.
            Err(e) if call.idempotent => Outcome::retry(e),
            Err(e) => Outcome::Fatal(e),
        },
        429 if endpoint == Endpoint::Create && names_a_limit(&reply.body) => {
            // Only a refusal that names the limit is AMC's daily limit: waiting seconds would
            // only be refused again.
            let retry_after = parse_retry_after(reply.headers.get(RETRY_AFTER));
            tracing::warn!(%endpoint, retry_after = ?retry_after, "amc refused a create for a limit");
            Outcome::Fatal(AmcError::LimitReached {
                retry_after,
                message: error_message(&reply.body),
            })
        }
        // Any other 429, with or without `Retry-After`, is throttling: the Ads API throttles
        // with a bare 429 and `amazon-advertising-api-throttled: true` (observed in public
        // client issue threads), so its absence says nothing about a daily limit. A 429 means
        // the request was not processed, so even a create may be sent again.
        429 => {
            let retry_after = parse_retry_after(reply.headers.get(RETRY_AFTER));
            tracing::warn!(%endpoint, retry_after = ?retry_after, "amc throttled the request");
            Outcome::Retryable {
                error: AmcError::RateLimited { retry_after },
                retry_after,
            }
        }
        // A load balancer may answer 5xx after AMC created the execution: a create is never
        // resent here; the caller lists AMC's executions and adopts the match first.
        500..=599 if !call.idempotent => {
            tracing::warn!(%endpoint, status = reply.status, "amc server error on a create; it may have been made");
            Outcome::Fatal(AmcError::http(endpoint, reply.status, &reply.body))
        }
        500..=599 => {
            tracing::warn!(%endpoint, status = reply.status, "amc server error");
            Outcome::retry(AmcError::http(endpoint, reply.status, &reply.body))
        }
        status @ 400..=499 if endpoint == Endpoint::Create && names_a_limit(&reply.body) => {
            tracing::warn!(%endpoint, status, "amc refused a create for a limit");
            Outcome::Fatal(AmcError::LimitReached {
                retry_after: parse_retry_after(reply.headers.get(RETRY_AFTER)),
                message: error_message(&reply.body),
            })
        }
        status => {
            let error = AmcError::http(endpoint, status, &reply.body);
            match &error {
                AmcError::Http { message, .. }
                    if endpoint == Endpoint::DownloadUrls
                        && message.to_ascii_lowercase().contains(NOT_READY_TEXT) =>
                {
                    Outcome::Fatal(AmcError::NotReady)
                }
                _ => Outcome::Fatal(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_naming_a_quota_or_a_daily_limit_is_a_limit_but_a_bad_query_is_not() {
        let body =
            |details: &str| serde_json::json!({ "code": "400", "details": details }).to_string();
        assert!(names_a_limit(
            body("Daily execution limit reached").as_bytes()
        ));
        assert!(names_a_limit(
            body("You have exceeded your quota").as_bytes()
        ));
        assert!(names_a_limit(
            body("Ad-hoc workflow execution limit of 30 per day reached").as_bytes()
        ));
        assert!(!names_a_limit(
            body("sqlQuery exceeds the length limit").as_bytes()
        ));
        assert!(!names_a_limit(body("Invalid timeWindowStart").as_bytes()));
    }
}
