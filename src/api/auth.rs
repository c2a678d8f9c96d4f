//! Bearer-token authentication of agents (`Authorization: Bearer <token>`), compared in constant
//! time so response timing does not reveal how much of a token matched, and a lock-out of client
//! IPs that keep presenting bad tokens (10 in a minute → 429 for five minutes), so tokens cannot
//! be guessed at network speed.
//!
//! There is one way in: [`authenticate`]. The header and the SSE route's `?access_token=` go
//! through it alike, so a locked-out client is refused on both and a bad token counts on both.
//! Each bad token is a strike that expires `window` after it was made; a good token does not
//! wipe them (else an agent could alternate nine guesses with their own token for ever).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::queue::agent::Agent;

/// The authenticated caller of a request, by the `Authorization` header only. Extracting it
/// answers 401 when the token is missing or unknown, and 429 while the client IP is locked out.
#[derive(Debug, Clone)]
pub struct AuthAgent(pub Agent);

impl FromRequestParts<AppState> for AuthAgent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state, TokenFrom::Header).map(Self)
    }
}

/// The caller of the SSE route: the header, or else `?access_token=` (browsers' `EventSource`
/// cannot send headers). Same lock-out and strikes as [`AuthAgent`].
#[derive(Debug, Clone)]
pub struct StreamAgent(pub Agent);

impl FromRequestParts<AppState> for StreamAgent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state, TokenFrom::HeaderOrQuery).map(Self)
    }
}

/// Where a route takes its token from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenFrom {
    /// `Authorization: Bearer <token>` only.
    Header,
    /// The header when present, else `?access_token=<token>`.
    HeaderOrQuery,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenQuery {
    access_token: Option<String>,
}

/// Authenticate one request: 429 while its client IP is locked out (whatever it presents),
/// else the agent whose token it presents. A presented token that is not an agent's (a wrong
/// bearer, a header of another scheme, a wrong `?access_token=`) is a strike against the IP;
/// presenting nothing is a plain 401.
pub(super) fn authenticate(
    parts: &Parts,
    state: &AppState,
    from: TokenFrom,
) -> Result<Agent, ApiError> {
    authenticate_with(parts, state, from, |token| {
        state.agents.by_token(token).map(Ok)
    })
}

/// [`authenticate`] with another lookup: `find` answers `None` for a token it does not know (a
/// strike), else what the token is (or why it may not be used here: no strike).
fn authenticate_with<T>(
    parts: &Parts,
    state: &AppState,
    from: TokenFrom,
    find: impl FnOnce(&str) -> Option<Result<T, ApiError>>,
) -> Result<T, ApiError> {
    // Served without connect info (in-process tests), there is no client IP to lock out.
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| crate::config::canonical_ip(c.0.ip()));
    let now = crate::clock::now();
    if let Some(ip) = client
        && let Err(left) = state.lockout.check(now, ip)
    {
        return Err(ApiError::LockedOut {
            // Rounded up: retrying at the advertised time must not hit the lock again.
            retry_after: u64::try_from(left.as_millis().div_ceil(1000).max(1)).unwrap_or(u64::MAX),
        });
    }
    let header = parts.headers.get(AUTHORIZATION);
    let presented: Option<String> = match (header, from) {
        (Some(v), _) => Some(
            v.to_str()
                .ok()
                .and_then(|h| h.trim().split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim().to_owned())
                .unwrap_or_default(),
        ),
        (None, TokenFrom::Header) => None,
        (None, TokenFrom::HeaderOrQuery) => {
            let Query(q) = Query::<TokenQuery>::try_from_uri(&parts.uri)
                .map_err(|e| ApiError::Unprocessable(e.body_text()))?;
            q.access_token
        }
    };
    let Some(token) = presented else {
        return Err(ApiError::Unauthorized);
    };
    if let Some(found) = find(&token) {
        return found;
    }
    if let Some(ip) = client
        && state.lockout.failure(now, ip)
    {
        tracing::warn!(client.addr = %crate::pii::Pii(&ip), "API client locked out after repeated bad tokens");
    }
    Err(ApiError::Unauthorized)
}

/// A program's API token (`[[api_clients]]`): a website's "call me" form, a CRM. It is no
/// agent: it acts only with its rights, on its queues.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// Its id (scopes its idempotency keys).
    pub id: String,
    /// Its bearer token.
    pub token: String,
    /// The queues it may act on.
    pub queues: Vec<String>,
    /// What it may do.
    pub rights: Vec<crate::config::ApiRight>,
}

impl ApiClient {
    /// The `[[api_clients]]` entries of the service config.
    pub fn from_config(list: &[crate::config::ApiClientConfig]) -> Vec<Self> {
        list.iter()
            .map(|c| Self {
                id: c.id.clone(),
                token: c.token.expose().to_owned(),
                queues: c.queues.clone(),
                rights: c.rights.clone(),
            })
            .collect()
    }
}

/// The caller of a route that only `[[api_clients]]` with `right` may use: an agent's token is
/// 403 (it is known, so no strike), an unknown one 401 and a strike, as on every route.
pub(super) fn authenticate_client(
    parts: &Parts,
    state: &AppState,
    right: crate::config::ApiRight,
) -> Result<ApiClient, ApiError> {
    authenticate_with(parts, state, TokenFrom::Header, |token| {
        let client = state
            .api_clients
            .iter()
            .filter(|c| !c.token.is_empty())
            .fold(None, |found, c| {
                if crate::rt::agents::ct_eq(c.token.as_bytes(), token.as_bytes()) {
                    Some(c)
                } else {
                    found
                }
            });
        match client {
            Some(c) if c.rights.contains(&right) => Some(Ok(c.clone())),
            Some(c) => Some(Err(ApiError::Forbidden(format!(
                "API client {} lacks the {} right",
                c.id,
                right.as_str()
            )))),
            None => state.agents.by_token(token).map(|a| {
                Err(ApiError::Forbidden(format!(
                    "agent {}'s token lacks the {} right (an [[api_clients]] token has it)",
                    a.id,
                    right.as_str()
                )))
            }),
        }
    })
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

#[derive(Debug, Default)]
struct Strikes {
    /// When each bad token still counted came in, oldest first; at most `max_failures + 1`.
    recent: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

impl Strikes {
    /// Forget strikes older than `window` and a lock that has run out.
    fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.recent.pop_front();
        }
        if self.locked_until.is_some_and(|u| u <= now) {
            self.locked_until = None;
        }
    }

    fn is_idle(&self) -> bool {
        self.recent.is_empty() && self.locked_until.is_none()
    }
}

/// Bad-token strikes per client IP. Time is a parameter, so tests run in virtual time.
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

    /// Count a bad token from `ip`; `true` when this one locked it out. A strike counts for
    /// `window` after it was made (a sliding window), whatever else the client sends meanwhile.
    pub fn failure(&self, now: Instant, ip: IpAddr) -> bool {
        let Ok(mut clients) = self.clients.lock() else {
            return false;
        };
        let p = self.policy;
        if clients.len() >= p.max_clients && !clients.contains_key(&ip) {
            clients.retain(|_, s| {
                s.expire(now, p.window);
                !s.is_idle()
            });
            if clients.len() >= p.max_clients {
                return false;
            }
        }
        let s = clients.entry(ip).or_default();
        s.expire(now, p.window);
        if s.locked_until.is_some() {
            return false;
        }
        s.recent.push_back(now);
        if s.recent.len() > p.max_failures as usize {
            // Locked: the strikes are spent; after the lock it starts from zero.
            s.recent.clear();
            s.locked_until = Some(now + p.lock_for);
            return true;
        }
        false
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

    /// Issue 19: each strike counts for a minute after it was made (a sliding window, not a
    /// window that restarts): five now and five at 50 s, then at 65 s the first five are gone.
    #[test]
    fn strikes_expire_one_by_one() {
        let l = Lockout::default();
        let t0 = crate::clock::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for _ in 0..5 {
            assert!(!l.failure(at(0), ip(1)));
        }
        for _ in 0..5 {
            assert!(!l.failure(at(50), ip(1)));
        }
        // 61 s: the first five have expired; five plus this one count.
        assert!(!l.failure(at(61), ip(1)));
        for _ in 0..4 {
            assert!(!l.failure(at(62), ip(1)));
        }
        // Ten in the last minute (five at 50 s, five at 61-62 s): the next one locks.
        assert!(l.failure(at(63), ip(1)));
        assert!(l.check(at(63), ip(1)).is_err());
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
