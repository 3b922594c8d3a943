//! Lock-free request counters of the client and the snapshot type `AmcClient::stats` returns.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of HTTP call the client makes; used in stats, logs and `AmcError::Http`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Create,
    Get,
    List,
    DownloadUrls,
    /// A pre-signed result file download (not an AMC API call).
    Download,
    Cancel,
    /// The Login-with-Amazon token refresh.
    Token,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Create,
        Endpoint::Get,
        Endpoint::List,
        Endpoint::DownloadUrls,
        Endpoint::Download,
        Endpoint::Cancel,
        Endpoint::Token,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Endpoint::Create => "create",
            Endpoint::Get => "get",
            Endpoint::List => "list",
            Endpoint::DownloadUrls => "download_urls",
            Endpoint::Download => "download",
            Endpoint::Cancel => "cancel",
            Endpoint::Token => "token",
        }
    }

    fn index(&self) -> usize {
        *self as usize
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of one endpoint's HTTP attempts by outcome class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EndpointStats {
    pub requests: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// Attempts that got no HTTP status at all (timeout, connection refused or dropped).
    pub transport_errors: u64,
}

/// A point-in-time snapshot of the client's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AmcStats {
    /// Every HTTP attempt, token refreshes and downloads included.
    pub requests_total: u64,
    pub create: EndpointStats,
    pub get: EndpointStats,
    pub list: EndpointStats,
    pub download_urls: EndpointStats,
    pub download: EndpointStats,
    pub cancel: EndpointStats,
    pub token: EndpointStats,
    /// 429 replies received.
    pub rate_limited: u64,
    /// Attempts repeated after a transient failure (401 re-auth retries excluded).
    pub retries: u64,
    /// Successful access-token refreshes.
    pub token_refreshes: u64,
}

impl AmcStats {
    /// The counters of one endpoint.
    pub fn endpoint(&self, endpoint: Endpoint) -> &EndpointStats {
        match endpoint {
            Endpoint::Create => &self.create,
            Endpoint::Get => &self.get,
            Endpoint::List => &self.list,
            Endpoint::DownloadUrls => &self.download_urls,
            Endpoint::Download => &self.download,
            Endpoint::Cancel => &self.cancel,
            Endpoint::Token => &self.token,
        }
    }
}

const CLASSES: usize = 5;
const TRANSPORT: usize = 4;

#[derive(Default)]
pub(crate) struct Counters {
    requests_total: AtomicU64,
    by_endpoint: [[AtomicU64; CLASSES]; Endpoint::ALL.len()],
    rate_limited: AtomicU64,
    retries: AtomicU64,
    token_refreshes: AtomicU64,
}

impl Counters {
    /// Records one attempt; `status` is `None` when no HTTP status came back.
    pub(crate) fn record(&self, endpoint: Endpoint, status: Option<u16>) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        let class = match status {
            Some(200..=299) => 0,
            Some(300..=399) => 1,
            Some(400..=499) => 2,
            Some(_) => 3,
            None => TRANSPORT,
        };
        self.by_endpoint[endpoint.index()][class].fetch_add(1, Ordering::Relaxed);
        if status == Some(429) {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn token_refreshed(&self) {
        self.token_refreshes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AmcStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let endpoint = |e: Endpoint| {
            let c = &self.by_endpoint[e.index()];
            let stats = EndpointStats {
                requests: 0,
                status_2xx: load(&c[0]),
                status_3xx: load(&c[1]),
                status_4xx: load(&c[2]),
                status_5xx: load(&c[3]),
                transport_errors: load(&c[TRANSPORT]),
            };
            EndpointStats {
                requests: stats.status_2xx
                    + stats.status_3xx
                    + stats.status_4xx
                    + stats.status_5xx
                    + stats.transport_errors,
                ..stats
            }
        };
        AmcStats {
            requests_total: load(&self.requests_total),
            create: endpoint(Endpoint::Create),
            get: endpoint(Endpoint::Get),
            list: endpoint(Endpoint::List),
            download_urls: endpoint(Endpoint::DownloadUrls),
            download: endpoint(Endpoint::Download),
            cancel: endpoint(Endpoint::Cancel),
            token: endpoint(Endpoint::Token),
            rate_limited: load(&self.rate_limited),
            retries: load(&self.retries),
            token_refreshes: load(&self.token_refreshes),
        }
    }
}
