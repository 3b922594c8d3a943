//! Console sign-ins: a login that presented the token gets a random session id (256 bits from
//! the operating system's generator) in a cookie; the server keeps the session (by a digest of
//! its id) with an expiry (`http.session_hours`), and "Log out" removes it, so a copied or
//! logged-out cookie stops working. Sessions live in the daemon's memory only: a restart (the
//! only way to change `http.token`) ends every one of them.
//!
//! The cookie's name carries the endpoint's port: browsers send cookies to every port of a
//! host, and two daemons on one machine must not overwrite each other's sign-in.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderMap};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Sessions kept at most; the one closest to expiry goes first (sign-ins need the token, so
/// this only bounds memory).
const MAX_SESSIONS: usize = 1024;

/// The server side of console sign-ins.
pub struct Sessions {
    cookie_name: String,
    lifetime: Duration,
    secure: bool,
    /// SHA-256 of each session id → when it expires.
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    /// Sessions of the endpoint on `port`, lasting `lifetime`; `secure` marks the cookie
    /// `Secure` (the console is reached over https).
    pub fn new(port: u16, lifetime: Duration, secure: bool) -> Self {
        Self {
            cookie_name: format!("amc_console_{port}"),
            lifetime,
            secure,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a session and returns its id (64 hex characters).
    pub fn issue(&self) -> String {
        let mut id = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let id = hex::encode(id);
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|_, expires| *expires > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(soonest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) {
                live.remove(&soonest);
            }
        }
        live.insert(digest(&id), now + self.lifetime);
        id
    }

    /// Whether `id` names a live session.
    pub fn is_live(&self, id: &str) -> bool {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.get(&digest(id))
            .is_some_and(|expires| *expires > Instant::now())
    }

    /// Ends the session `id` names (nothing when it names none).
    pub fn revoke(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.remove(&digest(id));
    }

    /// The session id a request presents in this endpoint's cookie, if any.
    pub fn presented<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        headers
            .get_all(header::COOKIE)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie_name)
            .map(|(_, value)| value.trim())
    }

    /// `Set-Cookie` of a new session: out of scripts' reach (`HttpOnly`), never sent on a
    /// cross-site request (`SameSite=Strict`), gone from the browser when the session expires.
    pub fn set_cookie(&self, id: &str) -> String {
        format!(
            "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
            self.cookie_name,
            self.lifetime.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` that removes the cookie from the browser.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
            self.cookie_name,
            if self.secure { "; Secure" } else { "" }
        )
    }
}

/// Sessions are looked up by a digest of their id: the table never holds a usable id, and
/// its lookup's timing depends on the digest only.
fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn a_session_is_random_live_until_revoked_and_found_among_other_cookies() {
        let sessions = Sessions::new(9898, Duration::from_secs(3600), false);
        let (first, second) = (sessions.issue(), sessions.issue());
        assert_eq!(first.len(), 64);
        assert_ne!(first, second);
        assert!(sessions.is_live(&first) && sessions.is_live(&second));
        assert!(!sessions.is_live("0".repeat(64).as_str()));
        let mut headers = HeaderMap::new();
        let cookie = format!("theme=dark; amc_console_9898={first}; other=1");
        headers.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        assert_eq!(sessions.presented(&headers), Some(first.as_str()));
        sessions.revoke(&first);
        assert!(!sessions.is_live(&first));
        assert!(sessions.is_live(&second));
    }

    #[test]
    fn an_expired_session_is_not_live() {
        let sessions = Sessions::new(9898, Duration::ZERO, false);
        let id = sessions.issue();
        assert!(!sessions.is_live(&id));
    }

    #[test]
    fn the_cookie_names_the_port_and_is_secure_behind_https() {
        let plain = Sessions::new(9898, Duration::from_secs(7200), false);
        let cookie = plain.set_cookie("abc");
        assert!(cookie.starts_with("amc_console_9898=abc;"), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Max-Age=7200") && !cookie.contains("Secure"));
        let secure = Sessions::new(443, Duration::from_secs(60), true);
        assert!(secure.set_cookie("abc").ends_with("; Secure"));
        assert!(secure.clear_cookie().contains("Max-Age=0"));
    }
}
