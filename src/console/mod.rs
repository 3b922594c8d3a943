//! The operator's console, served at `/` by the daemon's endpoint (`crate::http`): one embedded
//! page (`assets/`, no CDN, works offline) that lists collections, shows a collection's weeks as
//! a grid, and pauses, resumes, cancels, retries failed weeks and re-runs one week, with the page
//! polling its JSON endpoints every second; its "New collection" form plans (as `collection
//! create --dry-run`) and creates (`new_collection.rs`), and a fleet shows as an instance × week
//! matrix (`fleet.rs`).
//!
//! It holds the page's routes and handlers and the cross-site request check of its actions;
//! who may reach them (the token, sign-in sessions, public paths) is `crate::http`'s. Its
//! actions call the same `Store` functions as the CLI (`apply_control`, `request_rerun`): like
//! the CLI it only changes the database, and the daemon applies the change at its next scan.
//!
//! Every POST must come from the page itself: a custom header no cross-site form can send (and
//! no cross-origin script can, without a CORS preflight this server never grants), plus
//! `Origin` / `Sec-Fetch-Site`, when the browser sends them, naming this origin.

mod api;
mod assets;
mod fleet;
mod new_collection;

pub use assets::{ASSETS, PAGE};

use actix::Addr;
use actix_web::http::header::HeaderMap;
use actix_web::web;

use crate::observe::Inspector;
use crate::store::Store;

/// The header every console POST carries (`app.js` sends it; a cross-site form cannot).
pub const CSRF_HEADER: &str = "x-amc-console";

/// Connections of the console's own pool (per HTTP worker).
const CONNECTIONS: u32 = 2;

/// What the console's handlers need.
pub struct Console {
    /// A pool of its own, connecting on the HTTP worker's runtime: a connection opened there
    /// must not be shared with the daemon's runtime (see `observe`'s module header).
    pub store: Store,
    pub inspector: Addr<Inspector>,
    /// What the "New collection" form's plan needs from the configuration.
    pub planning: crate::new_collection::Planning,
}

impl Console {
    /// The console of one HTTP worker; built on the worker's thread, so its pool connects on the
    /// worker's runtime.
    pub fn on_worker(
        store: &Store,
        inspector: Addr<Inspector>,
        planning: crate::new_collection::Planning,
    ) -> Self {
        Self {
            store: store.sibling(CONNECTIONS),
            inspector,
            planning,
        }
    }
}

/// Why a console request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsoleError {
    #[error("missing the {CSRF_HEADER} header: console actions come from the console page")]
    MissingCsrfHeader,
    #[error("cross-site request refused")]
    CrossSite,
}

/// Adds the console's page and its JSON routes. The caller registers `web::Data<Console>`.
pub fn configure(config: &mut web::ServiceConfig) {
    assets::configure(config);
    api::configure(config);
    new_collection::configure(config);
    fleet::configure(config);
}

/// Refuses a state-changing request that did not come from the console page itself.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    if !headers.contains_key(CSRF_HEADER) {
        return Err(ConsoleError::MissingCsrfHeader);
    }
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Err(ConsoleError::CrossSite);
        }
    }
    if let Some(origin) = text("origin") {
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if origin_host.is_none() || origin_host != text("host") {
            return Err(ConsoleError::CrossSite);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn a_post_from_the_page_itself_passes_the_cross_site_checks() {
        let page = headers(&[
            (CSRF_HEADER, "1"),
            ("host", "127.0.0.1:9898"),
            ("origin", "http://127.0.0.1:9898"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(check_same_origin(&page), Ok(()));
        // Scripts (curl with a bearer token) send neither Origin nor Sec-Fetch-Site.
        assert_eq!(check_same_origin(&headers(&[(CSRF_HEADER, "1")])), Ok(()));
    }

    #[test]
    fn a_post_without_the_header_or_from_another_site_is_refused() {
        let form = headers(&[("host", "127.0.0.1:9898"), ("origin", "http://evil.test")]);
        assert_eq!(
            check_same_origin(&form),
            Err(ConsoleError::MissingCsrfHeader)
        );
        let other_origin = headers(&[
            (CSRF_HEADER, "1"),
            ("host", "127.0.0.1:9898"),
            ("origin", "http://evil.test"),
        ]);
        assert_eq!(
            check_same_origin(&other_origin),
            Err(ConsoleError::CrossSite)
        );
        let cross_site = headers(&[(CSRF_HEADER, "1"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(check_same_origin(&cross_site), Err(ConsoleError::CrossSite));
    }
}
