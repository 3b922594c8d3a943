//! The `downloadUrls` listing of a succeeded execution: every page of it (`nextToken`), and
//! whether an empty list is AMC's "no rows" or only "not published yet".

use reqwest::Method;
use serde_json::Value;

use super::config::InstanceRef;
use super::error::AmcError;
use super::http::ApiCall;
use super::stats::Endpoint;
use super::types::parse_json_object;
use super::AmcClient;

/// Most `downloadUrls` pages followed for one listing: a token that never ends is a broken
/// reply, not a result of thousands of files.
const MAX_PAGES: usize = 1000;

/// What `downloadUrls` lists for an execution, over all its pages, in AMC's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultListing {
    /// One pre-signed URL per result file.
    pub urls: Vec<String>,
    /// `metadataDownloadUrls`: files describing the result (absent on some replies).
    pub metadata_urls: Vec<String>,
}

/// One reply of `downloadUrls`.
#[derive(Debug, Default)]
struct Page {
    listing: ResultListing,
    next_token: Option<String>,
}

impl AmcClient {
    /// Every page of `downloadUrls` of a SUCCEEDED execution. The reply is
    /// `{downloadUrls, metadataDownloadUrls, nextToken}` (API model of `downloadUrls`;
    /// `nextToken` is described there as for future use, so it is followed when present rather
    /// than assumed absent). Before the results exist AMC refuses with "unavailable for
    /// download": `AmcError::NotReady`.
    pub async fn result_listing(
        &self,
        instance: &InstanceRef,
        amc_execution_id: &str,
    ) -> Result<ResultListing, AmcError> {
        let mut listing = ResultListing::default();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self
                .inner
                .executions_url(instance, &[amc_execution_id, "downloadUrls"])?;
            if let Some(token) = &token {
                url.query_pairs_mut().append_pair("nextToken", token);
            }
            let call = ApiCall {
                endpoint: Endpoint::DownloadUrls,
                instance,
                method: Method::GET,
                url,
                body: None,
                idempotent: true,
            };
            let page = self.inner.api_call(&call, parse_page).await?;
            listing.urls.extend(page.listing.urls);
            listing.metadata_urls.extend(page.listing.metadata_urls);
            match page.next_token {
                Some(next) if token.as_deref() == Some(next.as_str()) => {
                    return Err(AmcError::Decode(
                        "downloadUrls repeated its nextToken".into(),
                    ));
                }
                Some(next) => token = Some(next),
                None => return Ok(listing),
            }
        }
        Err(AmcError::Decode(format!(
            "downloadUrls still had a nextToken after {MAX_PAGES} pages"
        )))
    }

    /// The pre-signed result file URLs of a SUCCEEDED execution, in AMC's order (every page).
    pub async fn download_urls(
        &self,
        instance: &InstanceRef,
        amc_execution_id: &str,
    ) -> Result<Vec<String>, AmcError> {
        Ok(self.result_listing(instance, amc_execution_id).await?.urls)
    }

    /// Whether AMC affirms that an execution whose `downloadUrls` listed no file has no result
    /// files: its DOWNLOAD output channel is `AVAILABLE`. A channel that is `PENDING` or missing
    /// means the files are not published yet (API model: `AVAILABLE | PENDING | FAILED |
    /// UNAVAILABLE`; observed: PENDING with an empty list right after SUCCEEDED), and is
    /// `NotReady`, like a channel that failed (the caller reads the execution for AMC's reason).
    pub(crate) async fn affirm_no_files(
        &self,
        instance: &InstanceRef,
        amc_execution_id: &str,
    ) -> Result<(), AmcError> {
        let execution = self.get_execution(instance, amc_execution_id).await?;
        let available = execution.status.is_success()
            && execution
                .output_channels
                .iter()
                .any(|c| c.channel_type == "DOWNLOAD" && c.status == "AVAILABLE");
        if available {
            Ok(())
        } else {
            Err(AmcError::NotReady)
        }
    }
}

/// Only a JSON object holding a `downloadUrls` array of strings is an answer. Anything else (the
/// key missing or null, another type, a non-JSON body) is a `Decode` error, which is transient:
/// reading it as "no files" would complete the week with 0 rows and never collect it again.
/// An empty array is returned as such; whether it means "no rows" is for the DOWNLOAD channel
/// to say (`affirm_no_files`).
fn parse_page(body: &[u8]) -> Result<Page, AmcError> {
    let value = parse_json_object(body)?;
    let urls = match value.get("downloadUrls") {
        Some(Value::Array(items)) => strings(items, "downloadUrls")?,
        None => return Err(AmcError::Decode("the reply has no downloadUrls".into())),
        Some(Value::Null) => return Err(AmcError::Decode("downloadUrls is null".into())),
        Some(_) => return Err(AmcError::Decode("downloadUrls is not an array".into())),
    };
    // Optional in the samples: absent or null is "none"; present, it must be strings too.
    let metadata_urls = match value.get("metadataDownloadUrls") {
        Some(Value::Array(items)) => strings(items, "metadataDownloadUrls")?,
        _ => Vec::new(),
    };
    let next_token = match value.get("nextToken") {
        Some(Value::String(token)) if !token.is_empty() => Some(token.clone()),
        _ => None,
    };
    Ok(Page {
        listing: ResultListing {
            urls,
            metadata_urls,
        },
        next_token,
    })
}

fn strings(items: &[Value], key: &str) -> Result<Vec<String>, AmcError> {
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| AmcError::Decode(format!("{key} holds a non-string")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_page;
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
            let error = parse_page(body).unwrap_err();
            assert!(matches!(error, AmcError::Decode(_)), "{error:?}");
            assert!(error.is_transient(), "{error:?}");
        }
    }

    #[test]
    fn an_empty_array_is_a_page_with_no_files() {
        let page = parse_page(br#"{"downloadUrls": [], "metadataDownloadUrls": []}"#).unwrap();
        assert!(page.listing.urls.is_empty());
        assert_eq!(page.next_token, None);
    }

    #[test]
    fn a_page_names_its_next_token_and_metadata_urls() {
        let page = parse_page(
            br#"{"downloadUrls": ["https://a"], "metadataDownloadUrls": ["https://m"], "nextToken": "t2"}"#,
        )
        .unwrap();
        assert_eq!(page.listing.urls, vec!["https://a"]);
        assert_eq!(page.listing.metadata_urls, vec!["https://m"]);
        assert_eq!(page.next_token.as_deref(), Some("t2"));
    }
}
