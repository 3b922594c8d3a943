//! A credential set's cached access token and the ready `Authorization` header it gives.
//!
//! Owned here, below both `credential_sets` (which holds one cache per set) and `token` (which
//! fills it from Login-with-Amazon), so neither has to import the other's internals back; `http`
//! sends the `Bearer` without knowing how it was obtained.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;

/// Sentinel of a set's `expires_at_ms` meaning "no token yet".
pub(crate) const NO_TOKEN: i64 = i64::MIN;

pub(crate) struct CachedToken {
    /// `Bearer …`, marked sensitive so it never prints.
    pub(super) header: HeaderValue,
    /// The client id the token was granted to, sent beside it as AMC requires.
    pub(super) client_id: HeaderValue,
    /// Refresh from here on; the token stays usable until `expires_at`.
    pub(super) refresh_at: DateTime<Utc>,
    pub(super) expires_at: DateTime<Utc>,
    /// Increases with each refresh, so a 401 only forces a refresh if nobody refreshed since.
    pub(super) generation: u64,
    /// AMC answered 401 to it: never sent again.
    pub(super) rejected: bool,
}

/// A ready `Authorization` header, its client id and the token generation it came from.
pub(crate) struct Bearer {
    pub(crate) header: HeaderValue,
    pub(crate) client_id: HeaderValue,
    pub(crate) generation: u64,
}

impl CachedToken {
    /// The headers to send this token with, and its generation (for a 401's forced refresh).
    pub(super) fn bearer(&self) -> Bearer {
        Bearer {
            header: self.header.clone(),
            client_id: self.client_id.clone(),
            generation: self.generation,
        }
    }
}
