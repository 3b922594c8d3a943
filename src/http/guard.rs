//! The endpoint's outermost layer, run on every request before the token check and any handler
//! (public paths and reads included):
//!
//! - **Host allow-list.** A page on another site whose name is re-pointed to 127.0.0.1 (DNS
//!   rebinding) reaches the endpoint as "same origin", so the `Host` header is the only thing
//!   that tells it apart: only the bind address with its port, `localhost`, `127.0.0.1` and
//!   `[::1]` with the port, and the names the operator configured (`http.allowed_hosts`, the
//!   host of `http.public_url`) are answered; anything else gets 421.
//! - **Bodies.** Every request body is read here whole, at most `MAX_BODY` bytes within
//!   `BODY_DEADLINE` (413 / 408 otherwise), so a slow or large body cannot hold a connection or
//!   memory; handlers then read it from memory.
//! - **Headers.** Every response carries `X-Content-Type-Options: nosniff`, and JSON replies
//!   `Cache-Control: no-store` (they hold collections and errors, never worth caching).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

/// Largest request body accepted (the console's login and actions send a few dozen bytes).
pub const MAX_BODY: usize = 4 * 1024;
/// A request body must arrive whole within this (a body trickling in holds a connection).
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// The `Host` values the endpoint answers to (lower case).
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// Matched as given, port included.
    exact: HashSet<String>,
    /// Configured names without a port: matched whatever port the `Host` carries (a reverse
    /// proxy forwards its own).
    any_port: HashSet<String>,
}

impl AllowedHosts {
    /// The bound address and loopback names with its port, plus the configured `extra` names.
    pub fn new(bound: SocketAddr, extra: &[String]) -> Self {
        let port = bound.port();
        let mut exact: HashSet<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|name| format!("{name}:{port}"))
            .collect();
        // An unspecified address (0.0.0.0, [::]) names no host: clients use the machine's
        // names, which the operator lists in `http.allowed_hosts`.
        if !bound.ip().is_unspecified() {
            exact.insert(bound.to_string());
        }
        if port == 80 {
            // Browsers leave the default port out of `Host`.
            let bare: Vec<String> = exact.iter().filter_map(|h| strip_port(h)).collect();
            exact.extend(bare);
        }
        let mut any_port = HashSet::new();
        for name in extra.iter().map(|name| name.to_ascii_lowercase()) {
            if has_port(&name) {
                exact.insert(name);
            } else {
                any_port.insert(name);
            }
        }
        Self { exact, any_port }
    }

    /// Whether a request naming `host` is for this endpoint.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        if self.exact.contains(&host) {
            return true;
        }
        let name = strip_port(&host).unwrap_or(host);
        self.any_port.contains(&name)
    }
}

/// `host:port` → `host` (`[v6]:port` → `[v6]`); `None` when there is no port.
fn strip_port(host: &str) -> Option<String> {
    if !has_port(host) {
        return None;
    }
    host.rsplit_once(':').map(|(name, _)| name.to_string())
}

fn has_port(host: &str) -> bool {
    match host.rsplit_once(':') {
        // `[::1]` alone has colons but no port; `[::1]:80` ends in `]:80`.
        Some((name, port)) => {
            (!host.starts_with('[') || name.ends_with(']'))
                && !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// The host a request names: its `Host` header (HTTP/1.1) or its URI's authority (HTTP/2).
fn requested_host(request: &ServiceRequest) -> Option<String> {
    if let Some(value) = request.headers().get(header::HOST) {
        return value.to_str().ok().map(str::to_string);
    }
    request.uri().authority().map(|a| a.as_str().to_string())
}

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("request body larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("request body not received within {} s", BODY_DEADLINE.as_secs())]
    TooSlow,
    #[error("request body broken off")]
    Broken,
}

impl BodyError {
    fn response(&self) -> HttpResponse {
        let mut response = match self {
            BodyError::TooLarge => HttpResponse::PayloadTooLarge(),
            BodyError::TooSlow => HttpResponse::RequestTimeout(),
            BodyError::Broken => HttpResponse::BadRequest(),
        };
        // The rest of the body is never read: the connection cannot carry another request.
        response
            .insert_header((header::CONNECTION, "close"))
            .body(format!("{self}\n"))
    }
}

/// Reads the request's body into memory under the size cap and the deadline, and puts it back
/// for the handler.
async fn buffer_body(request: &mut ServiceRequest) -> Result<(), BodyError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    let (_, payload) = request.parts_mut();
    let mut payload = std::mem::replace(payload, Payload::None);
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| BodyError::Broken)?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<Bytes, BodyError>(body.freeze())
    };
    let body = tokio::time::timeout(BODY_DEADLINE, read)
        .await
        .map_err(|_| BodyError::TooSlow)??;
    request.set_payload(Payload::from(body));
    Ok(())
}

/// The middleware (registered outermost by `server::serve`).
pub async fn guard<B: MessageBody>(
    mut request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let allowed = match request.app_data::<web::Data<AllowedHosts>>() {
        Some(hosts) => requested_host(&request).is_some_and(|host| hosts.allows(&host)),
        // Never the case once served; refusing keeps a wiring mistake from opening the door.
        None => false,
    };
    let refusal = if !allowed {
        Some(
            HttpResponse::MisdirectedRequest()
                .body("this endpoint does not answer to that Host; see http.allowed_hosts\n"),
        )
    } else {
        buffer_body(&mut request).await.err().map(|e| e.response())
    };
    let mut response = match refusal {
        Some(response) => request.into_response(response).map_into_right_body(),
        None => next.call(request).await?.map_into_left_body(),
    };
    protect(response.headers_mut());
    Ok(response)
}

/// The headers every response carries.
fn protect(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if json {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(bound: &str, extra: &[&str]) -> AllowedHosts {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        AllowedHosts::new(bound.parse().unwrap(), &extra)
    }

    #[test]
    fn the_bind_address_and_loopback_names_are_allowed_with_the_port_only() {
        let allowed = hosts("127.0.0.1:9898", &[]);
        for host in [
            "127.0.0.1:9898",
            "localhost:9898",
            "LOCALHOST:9898",
            "[::1]:9898",
        ] {
            assert!(allowed.allows(host), "{host}");
        }
        for host in [
            "evil.example:9898",
            "localhost",
            "127.0.0.1:80",
            "localhost:9899",
            "",
        ] {
            assert!(!allowed.allows(host), "{host}");
        }
    }

    #[test]
    fn configured_names_are_allowed_with_their_port_or_any_when_they_name_none() {
        let allowed = hosts("0.0.0.0:9898", &["collector.example.com", "box.lan:8443"]);
        assert!(allowed.allows("collector.example.com"));
        assert!(allowed.allows("collector.example.com:443"));
        assert!(allowed.allows("box.lan:8443"));
        assert!(!allowed.allows("box.lan:9898"));
        assert!(!allowed.allows("0.0.0.0:9898"));
        assert!(!allowed.allows("evil.collector.example.com"));
    }

    #[test]
    fn an_ipv6_bind_address_is_matched_in_brackets() {
        let allowed = hosts("[::1]:7000", &[]);
        assert!(allowed.allows("[::1]:7000"));
        assert!(!allowed.allows("[::1]"));
        assert_eq!(strip_port("[::1]:7000").as_deref(), Some("[::1]"));
        assert_eq!(strip_port("[::1]"), None);
    }
}
