//! AMC's result metadata file (`metadataDownloadUrls` of the `downloadUrls` reply). Its content
//! is not documented (the API model only names the URL list), so it is read leniently: a JSON
//! object whose row count (`rowCount`, `row_count`, `numberOfRows`, `recordCount`) and column
//! names (`columns` or `outputColumns`, as strings or objects with a `name`) are used when
//! present. Anything else is no metadata: nothing is checked against it. Only a listing with
//! exactly one metadata file is read (several could each describe one split file or the whole).

use serde_json::Value;

use super::download::{read_capped, url_is_allowed};
use super::listing::ResultListing;
use super::AmcClient;

/// Largest metadata file read (a description of a result, not a result).
const METADATA_LIMIT: usize = 64 * 1024;

/// What AMC's metadata file says about a result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultMetadata {
    /// Data rows of the result (headers excluded).
    pub row_count: Option<u64>,
    /// Column names in order.
    pub columns: Option<Vec<String>>,
}

impl AmcClient {
    /// The result's metadata, when the listing has exactly one metadata file that can be read
    /// and says something; `None` otherwise (logged: it is optional, never a reason to fail).
    pub(crate) async fn result_metadata(&self, listing: &ResultListing) -> Option<ResultMetadata> {
        let [url] = listing.metadata_urls.as_slice() else {
            return None;
        };
        let url = url::Url::parse(url).ok().filter(url_is_allowed)?;
        let inner = &self.inner;
        let fetched = tokio::time::timeout(inner.request_timeout, async {
            let mut response = inner.download_http.get(url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            Some(read_capped(&mut response, METADATA_LIMIT, inner.request_timeout).await)
        })
        .await
        .ok()
        .flatten();
        let metadata = fetched.as_deref().and_then(parse_metadata);
        if metadata.is_none() {
            tracing::warn!("AMC's result metadata file could not be read; the result is not checked against it.");
        }
        metadata
    }
}

/// Reads a metadata file; `None` when it is not JSON or names neither a row count nor columns.
pub(crate) fn parse_metadata(body: &[u8]) -> Option<ResultMetadata> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let row_count = ["rowCount", "row_count", "numberOfRows", "recordCount"]
        .iter()
        .find_map(|key| match object.get(*key)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
    let columns = ["columns", "outputColumns"].iter().find_map(|key| {
        let items = object.get(*key)?.as_array()?;
        items
            .iter()
            .map(|item| match item {
                Value::String(name) => Some(name.clone()),
                Value::Object(column) => column.get("name")?.as_str().map(str::to_string),
                _ => None,
            })
            .collect::<Option<Vec<String>>>()
    });
    (row_count.is_some() || columns.is_some()).then_some(ResultMetadata { row_count, columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_count_and_columns_are_read_in_the_usual_spellings() {
        let meta = parse_metadata(br#"{"rowCount": 53, "columns": ["a", "b"]}"#).unwrap();
        assert_eq!(meta.row_count, Some(53));
        assert_eq!(meta.columns, Some(vec!["a".into(), "b".into()]));
        let meta =
            parse_metadata(br#"{"row_count": "7", "outputColumns": [{"name": "x"}]}"#).unwrap();
        assert_eq!(meta.row_count, Some(7));
        assert_eq!(meta.columns, Some(vec!["x".into()]));
    }

    #[test]
    fn a_file_that_says_nothing_usable_is_no_metadata() {
        for body in [&b"not json"[..], b"[1]", b"{}", br#"{"rowCount": -1}"#] {
            assert_eq!(parse_metadata(body), None, "{body:?}");
        }
    }
}
