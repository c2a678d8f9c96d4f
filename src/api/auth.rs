//! Bearer-token authentication of agents (`Authorization: Bearer <token>`), compared in constant
//! time so response timing does not reveal how much of a token matched, and a lock-out of client
//! IPs that keep presenting bad tokens (10 in a minute → 429 for five minutes), so tokens cannot
//! be guessed at network speed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::queue::agent::Agent;

/// The authenticated caller of a request. Extracting it answers 401 when the token is missing
/// or unknown, and 429 while the client IP is locked out.
#[derive(Debug, Clone)]
pub struct AuthAgent(pub Agent);

impl FromRequestParts<AppState> for AuthAgent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Served without connect info (in-process tests), there is no client IP to lock out.
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let now = crate::clock::now();
        if let Some(ip) = client
            && let Err(left) = state.lockout.check(now, ip)
        {
            return Err(ApiError::LockedOut {
                // Rounded up: retrying at the advertised time must not hit the lock again.
                retry_after: u64::try_from(left.as_millis().div_ceil(1000).max(1))
                    .unwrap_or(u64::MAX),
            });
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        match state.agents.by_token(token.trim()) {
            Some(agent) => {
                if let Some(ip) = client {
                    state.lockout.success(ip);
                }
                Ok(Self(agent))
            }
            None => {
                if let Some(ip) = client
                    && state.lockout.failure(now, ip)
                {
                    tracing::warn!(client.addr = %crate::pii::Pii(&ip), "API client locked out after repeated bad tokens");
                }
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// When a client is locked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Bad tokens allowed within `window`; the next one locks the client out.
    pub max_failures: u32,
    /// The window failures are counted in, from the first one.
    pub window: Duration,
    /// How long a locked-out client gets 429.
    pub lock_for: Duration,
    /// Clients tracked at once (memory bound); past it new clients are not tracked until old
    /// entries expire.
    pub max_clients: usize,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window: Duration::from_secs(60),
            lock_for: Duration::from_secs(300),
            max_clients: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    first: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

/// Bad-token counts per client IP. Time is a parameter, so tests run in virtual time.
#[derive(Debug, Default)]
pub struct Lockout {
    policy: LockoutPolicy,
    clients: Mutex<HashMap<IpAddr, Strikes>>,
}

impl Lockout {
    /// A lock-out with this policy.
    pub fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(time left)` while `ip` is locked out.
    pub fn check(&self, now: Instant, ip: IpAddr) -> Result<(), Duration> {
        let Ok(clients) = self.clients.lock() else {
            return Ok(());
        };
        match clients.get(&ip).and_then(|s| s.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Count a bad token from `ip`; `true` when this one locked it out.
    pub fn failure(&self, now: Instant, ip: IpAddr) -> bool {
        let Ok(mut clients) = self.clients.lock() else {
            return false;
        };
        let p = self.policy;
        if clients.len() >= p.max_clients && !clients.contains_key(&ip) {
            clients.retain(|_, s| {
                s.locked_until.is_some_and(|u| u > now)
                    || now.saturating_duration_since(s.first) < p.window
            });
            if clients.len() >= p.max_clients {
                return false;
            }
        }
        let s = clients.entry(ip).or_insert(Strikes {
            first: now,
            count: 0,
            locked_until: None,
        });
        let expired_lock = s.locked_until.is_some_and(|u| u <= now);
        if expired_lock || now.saturating_duration_since(s.first) >= p.window {
            *s = Strikes {
                first: now,
                count: 0,
                locked_until: None,
            };
        }
        s.count += 1;
        if s.count > p.max_failures && s.locked_until.is_none() {
            s.locked_until = Some(now + p.lock_for);
            return true;
        }
        false
    }

    /// A good token from `ip`: forget its strikes (unless it is locked out).
    pub fn success(&self, ip: IpAddr) {
        if let Ok(mut clients) = self.clients.lock()
            && clients.get(&ip).is_some_and(|s| s.locked_until.is_none())
        {
            clients.remove(&ip);
        }
    }

    /// Clients tracked right now.
    pub fn tracked(&self) -> usize {
        self.clients.lock().map_or(0, |c| c.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn ten_failures_in_a_minute_lock_the_client_out_for_five() {
        let l = Lockout::default();
        let t0 = crate::clock::now();
        for i in 0..10 {
            assert!(
                !l.failure(t0 + Duration::from_secs(i), ip(1)),
                "failure {i}"
            );
            assert_eq!(l.check(t0 + Duration::from_secs(i), ip(1)), Ok(()));
        }
        let t = t0 + Duration::from_secs(30);
        assert!(l.failure(t, ip(1)), "the 11th locks");
        assert_eq!(l.check(t, ip(1)), Err(Duration::from_secs(300)));
        // Another client is not affected.
        assert_eq!(l.check(t, ip(2)), Ok(()));
        // A good token does not lift the lock.
        l.success(ip(1));
        assert!(l.check(t + Duration::from_secs(299), ip(1)).is_err());
        assert_eq!(l.check(t + Duration::from_secs(300), ip(1)), Ok(()));
        // Afterwards it starts from zero.
        assert!(!l.failure(t + Duration::from_secs(300), ip(1)));
    }

    #[test]
    fn slow_failures_never_lock() {
        let l = Lockout::default();
        let t0 = crate::clock::now();
        for i in 0..100 {
            // Ten per 61 s: each window restarts before the 11th.
            let t = t0 + Duration::from_secs(61 * (i / 10)) + Duration::from_millis(i % 10);
            assert!(!l.failure(t, ip(1)));
        }
        assert_eq!(l.check(t0 + Duration::from_secs(700), ip(1)), Ok(()));
    }

    #[test]
    fn a_good_token_clears_the_strikes() {
        let l = Lockout::default();
        let t0 = crate::clock::now();
        for _ in 0..10 {
            l.failure(t0, ip(1));
        }
        l.success(ip(1));
        assert!(!l.failure(t0, ip(1)));
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let l = Lockout::new(LockoutPolicy {
            max_clients: 100,
            ..LockoutPolicy::default()
        });
        let t0 = crate::clock::now();
        for n in 0..1000u32 {
            l.failure(t0, IpAddr::from(n.to_be_bytes()));
        }
        assert_eq!(l.tracked(), 100);
        // A minute later the old entries make room.
        l.failure(t0 + Duration::from_secs(60), ip(1));
        assert_eq!(l.tracked(), 1);
    }
}
