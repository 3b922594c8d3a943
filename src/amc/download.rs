//! Result retrieval: `downloadUrls`, then the pre-signed files, renewing URLs that expired.

use std::time::Instant;

use bytes::Bytes;
use reqwest::header::RETRY_AFTER;
use tokio::sync::mpsc::Sender;

use super::config::InstanceRef;
use super::error::AmcError;
use super::retry::{parse_retry_after, Outcome};
use super::stats::Endpoint;
use super::{AmcClient, Inner};

/// How many times expired pre-signed URLs are renewed during one `download_results`.
const MAX_URL_RENEWALS: u32 = 5;

impl AmcClient {
    /// Downloads every result file in `downloadUrls` order into memory (tests and small tools;
    /// the daemon streams with [`AmcClient::stream_results`]).
    pub async fn download_results(
        &self,
        instance: &InstanceRef,
        amc_execution_id: &str,
    ) -> Result<Vec<Bytes>, AmcError> {
        let (sender, mut events) = tokio::sync::mpsc::channel(16);
        let streamed = async move {
            let result = self
                .stream_results(instance, amc_execution_id, &sender)
                .await;
            drop(sender);
            result
        };
        let collected = async {
            let mut files: Vec<Vec<u8>> = Vec::new();
            while let Some(event) = events.recv().await {
                match event {
                    FileEvent::Start { index } => {
                        files.truncate(index);
                        files.push(Vec::new());
                    }
                    FileEvent::Chunk(chunk) => {
                        if let Some(file) = files.last_mut() {
                            file.extend_from_slice(&chunk);
                        }
                    }
                    FileEvent::End | FileEvent::Metadata(_) => {}
                }
            }
            files
        };
        let (result, files) = tokio::join!(streamed, collected);
        result?;
        Ok(files.into_iter().map(Bytes::from).collect())
    }

    /// Streams every result file, in `downloadUrls` order (every page of it), into `sink` as exactly the bytes served:
    /// `Start { index }`, its chunks, `End`, for each file. A file that fails part-way and is tried
    /// again starts over with another `Start` of the same index (the consumer discards what it
    /// had of that file). The sink is bounded, so a slow consumer slows the download down instead
    /// of the bytes piling up in memory.
    ///
    /// The URLs expire after about 10 minutes, so on a 403 the URLs are asked again and the
    /// download resumes at the same file (at most `MAX_URL_RENEWALS` times, then `UrlExpired`).
    /// More than `max_result_bytes` in total gives `ResultTooLarge`; a file slower than the
    /// per-file deadline gives `FileDeadline`; a URL that is not `https` (plain `http` only to
    /// loopback) gives `InsecureUrl`. An empty list streams nothing when the DOWNLOAD channel
    /// is `AVAILABLE` (AMC affirms there are no files) and is `NotReady` otherwise (not
    /// published yet). When the listing has a metadata file, what it says goes first into the
    /// sink (`FileEvent::Metadata`), and a row count of 0 affirms an empty list too. Returns the
    /// number of bytes streamed.
    pub async fn stream_results(
        &self,
        instance: &InstanceRef,
        amc_execution_id: &str,
        sink: &Sender<FileEvent>,
    ) -> Result<u64, AmcError> {
        let listing = self.result_listing(instance, amc_execution_id).await?;
        let metadata = self.result_metadata(&listing).await;
        let says_empty = metadata.as_ref().and_then(|m| m.row_count) == Some(0);
        if let Some(metadata) = metadata {
            if sink.send(FileEvent::Metadata(metadata)).await.is_err() {
                return Err(AmcError::SinkClosed);
            }
        }
        let mut urls = listing.urls;
        if urls.is_empty() && says_empty {
            // AMC's metadata file affirms the result has no rows.
            return Ok(0);
        }
        if urls.is_empty() {
            // An empty list is "no rows" only when AMC affirms it; else it is "not yet". The list
            // is asked again once the channel is seen AVAILABLE: files published between the
            // first list and the channel's read count, and only a list read after it is final.
            self.affirm_no_files(instance, amc_execution_id).await?;
            urls = self.download_urls(instance, amc_execution_id).await?;
            if urls.is_empty() {
                return Ok(0);
            }
        }
        let mut done = 0;
        let mut total: u64 = 0;
        let mut renewals = 0;
        while let Some(url) = urls.get(done) {
            let budget = self.inner.max_result_bytes.saturating_sub(total);
            match self.inner.stream_file(url, done, budget, sink).await {
                Ok(bytes) => {
                    total += bytes;
                    done += 1;
                }
                Err(AmcError::UrlExpired) if renewals < MAX_URL_RENEWALS => {
                    renewals += 1;
                    tracing::debug!(file = done, renewals, "renewing expired result urls");
                    urls = self.download_urls(instance, amc_execution_id).await?;
                    if urls.len() < done {
                        return Err(AmcError::Decode(
                            "renewed downloadUrls lists fewer files than before".into(),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }
}

/// One step of a streamed result (see [`AmcClient::stream_results`]).
#[derive(Debug)]
pub enum FileEvent {
    /// File `index` starts (again, when an earlier try of it failed part-way).
    Start {
        index: usize,
    },
    Chunk(Bytes),
    /// The current file is complete.
    End,
    /// What AMC's metadata file says about the whole result (sent before any file).
    Metadata(super::ResultMetadata),
}

/// Whether a URL may carry credentials: `https`, or plain `http` to a loopback host only (the
/// simulator). Pre-signed result URLs carry them in their query, and the AMC and token URLs in
/// headers and forms, so they never travel in clear over a network.
pub fn url_is_allowed(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// Redirects of result downloads obey the same rule as the URLs themselves.
pub(crate) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            attempt.error("too many redirects")
        } else if url_is_allowed(attempt.url()) {
            attempt.follow()
        } else {
            attempt.error("redirect to a url that is not https")
        }
    })
}

/// What a refused URL is called in errors: its scheme and host, never its signed query.
fn describe(url: &url::Url) -> String {
    format!(
        "{}://{}",
        url.scheme(),
        url.host_str().unwrap_or("(no host)")
    )
}

impl Inner {
    /// Streams one pre-signed file without any AMC header, retrying transient failures.
    async fn stream_file(
        &self,
        url: &str,
        index: usize,
        budget: u64,
        sink: &Sender<FileEvent>,
    ) -> Result<u64, AmcError> {
        let url = url::Url::parse(url)
            .map_err(|e| AmcError::Decode(format!("downloadUrls gave an invalid url: {e}")))?;
        if !url_is_allowed(&url) {
            return Err(AmcError::InsecureUrl(describe(&url)));
        }
        let deadline = self.download_file_deadline;
        let url = &url;
        self.with_retries(Endpoint::Download, |attempt| async move {
            let attempt = self.download_attempt(url, index, budget, sink, attempt);
            match tokio::time::timeout(deadline, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Fatal(AmcError::FileDeadline {
                    seconds: deadline.as_secs(),
                }),
            }
        })
        .await
    }

    async fn download_attempt(
        &self,
        url: &url::Url,
        index: usize,
        budget: u64,
        sink: &Sender<FileEvent>,
        attempt: u32,
    ) -> Outcome<u64> {
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
            let body = read_capped(&mut response, ERROR_BODY_LIMIT, self.request_timeout).await;
            return classify_failure(status, retry_after, &body);
        }
        if response.content_length().is_some_and(|len| len > budget) {
            return Outcome::Fatal(self.too_large());
        }
        if sink.send(FileEvent::Start { index }).await.is_err() {
            return Outcome::Fatal(AmcError::SinkClosed);
        }
        let mut length: u64 = 0;
        loop {
            match tokio::time::timeout(self.request_timeout, response.chunk()).await {
                Err(_) => return Outcome::retry(AmcError::Timeout),
                Ok(Err(e)) => {
                    return Outcome::retry(AmcError::from_reqwest(Endpoint::Download, e));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    length += chunk.len() as u64;
                    if length > budget {
                        return Outcome::Fatal(self.too_large());
                    }
                    if sink.send(FileEvent::Chunk(chunk)).await.is_err() {
                        return Outcome::Fatal(AmcError::SinkClosed);
                    }
                }
            }
        }
        if sink.send(FileEvent::End).await.is_err() {
            return Outcome::Fatal(AmcError::SinkClosed);
        }
        tracing::debug!(
            endpoint = "download",
            bytes = length,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "result file downloaded"
        );
        Outcome::Done(length)
    }

    fn too_large(&self) -> AmcError {
        AmcError::ResultTooLarge {
            limit: self.max_result_bytes,
        }
    }
}

/// Largest error body read from the download host (S3 error documents are a few hundred bytes).
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// Reads at most `limit` bytes of a body (the rest is never read), each read bounded by `timeout`.
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
    timeout: std::time::Duration,
) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match tokio::time::timeout(timeout, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    body
}

fn classify_failure(
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
) -> Outcome<u64> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn result_urls_must_be_https_except_plain_http_to_loopback() {
        let allowed = |raw: &str| super::url_is_allowed(&url::Url::parse(raw).unwrap());
        assert!(allowed(
            "https://bucket.s3.amazonaws.com/f.csv?X-Amz-Signature=s"
        ));
        assert!(allowed("http://127.0.0.1:8080/f.csv"));
        assert!(allowed("http://127.8.9.1/f.csv"));
        assert!(allowed("http://[::1]:9/f.csv"));
        assert!(allowed("http://localhost:9/f.csv"));
        assert!(!allowed("http://bucket.s3.amazonaws.com/f.csv"));
        assert!(!allowed("http://10.0.0.1/f.csv"));
        assert!(!allowed("http://localhost.example.com/f.csv"));
        assert!(!allowed("ftp://127.0.0.1/f.csv"));
    }
}
