//! Back-off of wrong tokens at the console's login, per client address: the first
//! `FREE_FAILURES` cost nothing, then each further one closes the door for a doubling delay (1 s,
//! 2 s, 4 s, ... up to 15 minutes) during which attempts are refused unread (429). A right token
//! opens it again. Wrong tokens are reported at most once a minute per address, with how many
//! there were, so guessing cannot flood the log. Wrong bearer tokens on any route count in the
//! same table (`auth.rs`), so guessing cannot move there.
//!
//! The address is the peer's: behind a reverse proxy every client shares the proxy's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Wrong tokens allowed before the back-off starts.
pub const FREE_FAILURES: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// At most one log line per address per this.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// An address quiet this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Addresses remembered at most (bounds memory when many addresses guess).
const MAX_CLIENTS: usize = 10_000;

/// Whether a login from an address may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Refused unread; try again after this.
    Wait(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Client {
    failures: u32,
    closed_until: Option<Instant>,
    last_logged: Option<Instant>,
    /// Wrong tokens since the last log line.
    unlogged: u32,
    last_seen: Instant,
}

/// The per-address state of failed logins.
#[derive(Default)]
pub struct LoginThrottle {
    clients: Mutex<HashMap<IpAddr, Client>>,
}

impl LoginThrottle {
    /// Whether a login from `ip` may be checked at `now`.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Gate {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        match clients.get(&ip).and_then(|client| client.closed_until) {
            Some(until) if until > now => Gate::Wait(until - now),
            _ => Gate::Open,
        }
    }

    /// Records a wrong token from `ip`; returns the count to log when a line is due.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Option<u32> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
            clients.retain(|_, c| now.saturating_duration_since(c.last_seen) < FORGET_AFTER);
            if clients.len() >= MAX_CLIENTS {
                if let Some(oldest) = clients.iter().min_by_key(|(_, c)| c.last_seen) {
                    let oldest = *oldest.0;
                    clients.remove(&oldest);
                }
            }
        }
        let client = clients.entry(ip).or_insert(Client {
            failures: 0,
            closed_until: None,
            last_logged: None,
            unlogged: 0,
            last_seen: now,
        });
        client.failures = client.failures.saturating_add(1);
        client.unlogged = client.unlogged.saturating_add(1);
        client.last_seen = now;
        if client.failures > FREE_FAILURES {
            client.closed_until = Some(now + delay(client.failures - FREE_FAILURES));
        }
        let due = client
            .last_logged
            .is_none_or(|logged| now.saturating_duration_since(logged) >= LOG_EVERY);
        due.then(|| {
            client.last_logged = Some(now);
            std::mem::take(&mut client.unlogged)
        })
    }

    /// A right token from `ip`: its count starts again.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.remove(&ip);
    }
}

/// A pause as whole seconds for `Retry-After`, rounded up (never 0 while closed).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The pause after the `n`th failure beyond the free ones (n ≥ 1).
fn delay(n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(20);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn five_failures_are_free_then_the_delays_double_up_to_a_cap() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            throttle.failed(IP, now);
            assert_eq!(throttle.check(IP, now), Gate::Open);
        }
        throttle.failed(IP, now);
        assert_eq!(throttle.check(IP, now), Gate::Wait(Duration::from_secs(1)));
        let later = now + Duration::from_secs(1);
        assert_eq!(throttle.check(IP, later), Gate::Open);
        throttle.failed(IP, later);
        assert_eq!(
            throttle.check(IP, later),
            Gate::Wait(Duration::from_secs(2))
        );
        assert_eq!(delay(3), Duration::from_secs(4));
        assert_eq!(delay(40), MAX_DELAY);
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(throttle.check(other, later), Gate::Open);
        throttle.succeeded(IP);
        assert_eq!(throttle.check(IP, later), Gate::Open);
    }

    #[test]
    fn wrong_tokens_are_reported_once_a_minute_with_their_count() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        assert_eq!(throttle.failed(IP, start), Some(1));
        let lines = (1..500)
            .filter_map(|i| throttle.failed(IP, start + Duration::from_millis(i)))
            .count();
        assert_eq!(lines, 0, "500 guesses within a second log one line");
        assert_eq!(
            throttle.failed(IP, start + Duration::from_secs(61)),
            Some(500)
        );
    }
}
