//! Result retrieval: `downloadUrls`, then the pre-signed files, renewing URLs that expired.

use std::time::Instant;

use bytes::Bytes;
use reqwest::header::RETRY_AFTER;
use reqwest::Method;
use serde_json::Value;

use super::config::InstanceRef;
use super::error::AmcError;
use super::http::ApiCall;
use super::retry::{parse_retry_after, Outcome};
use super::stats::Endpoint;
use super::types::parse_json_object;
use super::{AmcClient, Inner};

/// How many times expired pre-signed URLs are renewed during one `download_results`.
const MAX_URL_RENEWALS: u32 = 5;

impl AmcClient {
    /// The pre-signed result file URLs of a SUCCEEDED execution, in AMC's order.
    ///
    /// Before the results exist AMC refuses with "unavailable for download": `AmcError::NotReady`.
    pub async fn download_urls(
        &self,
        instance: &InstanceRef,
        amc_execution_id: &str,
    ) -> Result<Vec<String>, AmcError> {
        let call = ApiCall {
            endpoint: Endpoint::DownloadUrls,
            instance,
            method: Method::GET,
            url: self
                .inner
                .executions_url(instance, &[amc_execution_id, "downloadUrls"])?,
            body: None,
            idempotent: true,
        };
        self.inner.api_call(&call, parse_download_urls).await
    }

    /// Downloads every result file in `downloadUrls` order, each as exactly the bytes served.
    ///
    /// The URLs expire after about 10 minutes, so on a 403 the URLs are asked again and the
    /// download resumes at the same file (at most `MAX_URL_RENEWALS` times, then `UrlExpired`).
    /// More than `max_result_bytes` in total gives `ResultTooLarge`.
    pub async fn download_results(
        &self,
        instance: &InstanceRef,
        amc_execution_id: &str,
    ) -> Result<Vec<Bytes>, AmcError> {
        let mut urls = self.download_urls(instance, amc_execution_id).await?;
        let mut files: Vec<Bytes> = Vec::with_capacity(urls.len());
        let mut total: u64 = 0;
        let mut renewals = 0;
        while let Some(url) = urls.get(files.len()) {
            let budget = self.inner.max_result_bytes.saturating_sub(total);
            match self.inner.download_file(url, budget).await {
                Ok(file) => {
                    total += file.len() as u64;
                    files.push(file);
                }
                Err(AmcError::UrlExpired) if renewals < MAX_URL_RENEWALS => {
                    renewals += 1;
                    tracing::debug!(file = files.len(), renewals, "renewing expired result urls");
                    urls = self.download_urls(instance, amc_execution_id).await?;
                    if urls.len() < files.len() {
                        return Err(AmcError::Decode(
                            "renewed downloadUrls lists fewer files than before".into(),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(files)
    }
}

impl Inner {
    /// Downloads one pre-signed file without any AMC header, retrying transient failures.
    async fn download_file(&self, url: &str, budget: u64) -> Result<Bytes, AmcError> {
        let url = url::Url::parse(url)
            .map_err(|e| AmcError::Decode(format!("downloadUrls gave an invalid url: {e}")))?;
        self.with_retries(Endpoint::Download, |attempt| {
            self.download_attempt(&url, budget, attempt)
        })
        .await
    }

    async fn download_attempt(&self, url: &url::Url, budget: u64, attempt: u32) -> Outcome<Bytes> {
        let started = Instant::now();
        // No per-request timeout: a large file may take long; instead each wait is bounded.
        let sent = tokio::time::timeout(
            self.request_timeout,
            self.download_http.get(url.clone()).send(),
        )
        .await;
        let mut response = match sent {
            Err(_) => {
                self.counters.record(Endpoint::Download, None);
                return Outcome::retry(AmcError::Timeout);
            }
            Ok(Err(e)) => {
                self.counters.record(Endpoint::Download, None);
                return Outcome::retry(AmcError::from_reqwest(Endpoint::Download, e));
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        self.counters.record(Endpoint::Download, Some(status));
        tracing::debug!(
            endpoint = "download",
            status,
            attempt,
            "result file request"
        );
        if !(200..=299).contains(&status) {
            let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER));
            let body = response.bytes().await.unwrap_or_default();
            return classify_failure(status, retry_after, &body);
        }
        if response.content_length().is_some_and(|len| len > budget) {
            return Outcome::Fatal(self.too_large());
        }
        let mut file = Vec::new();
        loop {
            match tokio::time::timeout(self.request_timeout, response.chunk()).await {
                Err(_) => return Outcome::retry(AmcError::Timeout),
                Ok(Err(e)) => {
                    return Outcome::retry(AmcError::from_reqwest(Endpoint::Download, e));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    if (file.len() + chunk.len()) as u64 > budget {
                        return Outcome::Fatal(self.too_large());
                    }
                    file.extend_from_slice(&chunk);
                }
            }
        }
        tracing::debug!(
            endpoint = "download",
            bytes = file.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "result file downloaded"
        );
        Outcome::Done(Bytes::from(file))
    }

    fn too_large(&self) -> AmcError {
        AmcError::ResultTooLarge {
            limit: self.max_result_bytes,
        }
    }
}

fn classify_failure(
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
) -> Outcome<Bytes> {
    // S3 answers 403 for an expired signature and 400 ExpiredToken for expired session credentials.
    let expired_token = status == 400 && String::from_utf8_lossy(body).contains("ExpiredToken");
    match status {
        403 => Outcome::Fatal(AmcError::UrlExpired),
        _ if expired_token => Outcome::Fatal(AmcError::UrlExpired),
        429 | 503 if retry_after.is_some() => Outcome::Retryable {
            error: AmcError::RateLimited { retry_after },
            retry_after,
        },
        500..=599 => {
            tracing::warn!(endpoint = "download", status, "result file server error");
            Outcome::retry(AmcError::http(Endpoint::Download, status, body))
        }
        429 => Outcome::retry(AmcError::RateLimited { retry_after: None }),
        _ => Outcome::Fatal(AmcError::http(Endpoint::Download, status, body)),
    }
}

/// Only a JSON object holding a `downloadUrls` array of strings is an answer. Anything else (the
/// key missing or null, another type, a non-JSON body) is a `Decode` error, which is transient:
/// reading it as "no files" would complete the week with 0 rows and never collect it again.
/// An empty array is AMC's explicit "no result files" and is returned as such.
fn parse_download_urls(body: &[u8]) -> Result<Vec<String>, AmcError> {
    let value = parse_json_object(body)?;
    match value.get("downloadUrls") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| AmcError::Decode("downloadUrls holds a non-string".into()))
            })
            .collect(),
        None => Err(AmcError::Decode("the reply has no downloadUrls".into())),
        Some(Value::Null) => Err(AmcError::Decode("downloadUrls is null".into())),
        Some(_) => Err(AmcError::Decode("downloadUrls is not an array".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_download_urls;
    use crate::amc::AmcError;

    #[test]
    fn a_reply_without_a_usable_download_urls_array_is_a_transient_decode_error() {
        for body in [
            &b"{}"[..],
            br#"{"downloadUrls": null}"#,
            br#"{"downloadUrls": "x"}"#,
            br#"{"downloadUrls": {"0": "x"}}"#,
            br#"{"downloadUrls": ["https://a", 3]}"#,
            br#"["https://a"]"#,
            b"<html>Bad gateway</html>",
            b"",
        ] {
            let error = parse_download_urls(body).unwrap_err();
            assert!(matches!(error, AmcError::Decode(_)), "{error:?}");
            assert!(error.is_transient(), "{error:?}");
        }
    }

    #[test]
    fn an_empty_array_is_an_answer_with_no_files() {
        let urls = parse_download_urls(br#"{"downloadUrls": [], "metadataDownloadUrls": []}"#);
        assert_eq!(urls.unwrap(), Vec::<String>::new());
    }
}
