//! Bearer-token authentication of agents (`Authorization: Bearer <token>`), compared in constant
//! time so response timing does not reveal how much of a token matched.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{Agent, ApiError, AppState};

/// The authenticated caller of a request. Extracting it answers 401 when the token is missing
/// or unknown.
#[derive(Debug, Clone)]
pub struct AuthAgent(pub Agent);

impl FromRequestParts<AppState> for AuthAgent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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
        state
            .agents
            .by_token(token.trim())
            .map(Self)
            .ok_or(ApiError::Unauthorized)
    }
}

/// Constant-time equality: the time depends only on the longer length, never on where the
/// inputs differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"alice-secret", b"alice-secret"));
        assert!(ct_eq(b"", b""));
        assert!(!ct_eq(b"alice-secret", b"alice-secreT"));
        assert!(!ct_eq(b"alice-secret", b"alice-secret2"));
        assert!(!ct_eq(b"alice", b""));
        assert!(!ct_eq(b"\0", b""));
    }
}
