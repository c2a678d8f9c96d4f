//! `ApiError`: every failure the HTTP API returns, as `{"error": {"code", "message"}}`. A 4xx is
//! the caller's mistake and is not logged; a 5xx is logged once, by [`log_server_errors`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::interaction::LifecycleError;
use crate::store;

/// An API failure and its status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or unknown bearer token (401).
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The agent may not act on this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// Not in a state that allows this (409).
    #[error("{0}")]
    Conflict(String),
    /// The interaction is a caller whose call is live (ringing before the answer): its call
    /// settles it, not an agent (409, `live_call`).
    #[error("{0}")]
    LiveCall(String),
    /// A callback accepted before its not-before time (409, `not_yet_due`; the error object
    /// also carries `not_before`).
    #[error("{message}")]
    NotYetDue {
        /// For the agent.
        message: String,
        /// When it may be dialled.
        not_before: jiff::Timestamp,
    },
    /// Body too large (413).
    #[error("request body too large")]
    TooLarge,
    /// Too many bad tokens from this client IP (429 with Retry-After).
    #[error("too many failed authentications; retry in {retry_after} s")]
    LockedOut { retry_after: u64 },
    /// A well-formed request the rules refuse (422), with a code that says which rule:
    /// `number_refused`, `duplicate_callback`, `daily_limit`, `unknown_queue`.
    #[error("{message}")]
    Refused {
        /// Machine-readable.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Malformed body, query or header (422).
    #[error("{0}")]
    Unprocessable(String),
    /// A `Range` past the end of a `len`-byte body (416, with `Content-Range: bytes */len`).
    #[error("the range asked for lies past the end of the {len} bytes")]
    RangeNotSatisfiable {
        /// The body's length.
        len: u64,
    },
    /// A voicemail recording the store names could not be read (500, logged): the disk's
    /// fault, not the caller's.
    #[error("reading the voicemail of interaction {id}: {source}")]
    Recording {
        /// The interaction.
        id: crate::interaction::InteractionId,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store failed (500, logged).
    #[error("store: {0}")]
    Store(#[source] store::Error),
}

impl ApiError {
    /// The status code and the machine-readable error code.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::LiveCall(_) => (StatusCode::CONFLICT, "live_call"),
            Self::NotYetDue { .. } => (StatusCode::CONFLICT, "not_yet_due"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::LockedOut { .. } => (StatusCode::TOO_MANY_REQUESTS, "locked_out"),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::Refused { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            Self::Recording { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            // The database is locked, full or stalled: try again shortly.
            Self::Store(e) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound(id) => Self::NotFound(format!("interaction {id} not found")),
            store::Error::AssignedElsewhere { id } => {
                Self::Forbidden(format!("interaction {id} is assigned to another agent"))
            }
            store::Error::Conflict { id, status } => {
                Self::Conflict(format!("interaction {id} is {status}"))
            }
            store::Error::Lifecycle {
                id,
                source: LifecycleError::LiveCall { .. },
            } => Self::LiveCall(format!(
                "interaction {id} is a caller whose call is ringing: it waits in the queue once \
                 answered, and cannot be accepted or closed before"
            )),
            store::Error::Lifecycle {
                id,
                source: LifecycleError::NotYetDue { not_before },
            } => Self::NotYetDue {
                message: format!(
                    "interaction {id} is a callback not to be dialled before {not_before}"
                ),
                not_before,
            },
            store::Error::Lifecycle { id, source } => {
                Self::Conflict(format!("interaction {id}: {source}"))
            }
            e => Self::Store(e),
        }
    }
}

/// The 5xx detail, carried from [`ApiError::into_response`] to [`log_server_errors`].
#[derive(Debug, Clone)]
struct ServerError(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        // Internal details stay in the log, not in the response.
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            "the store is unavailable; try again shortly".to_owned()
        } else if status.is_server_error() {
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        let mut error = serde_json::json!({ "code": code, "message": message });
        if let Self::NotYetDue { not_before, .. } = &self {
            error["not_before"] = not_before.to_string().into();
        }
        let mut resp = (status, Json(serde_json::json!({ "error": error }))).into_response();
        if let Self::LockedOut { retry_after } = self {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        if let Self::RangeNotSatisfiable { len } = self
            && let Ok(v) = axum::http::HeaderValue::from_str(&format!("bytes */{len}"))
        {
            resp.headers_mut()
                .insert(axum::http::header::CONTENT_RANGE, v);
        }
        if status.is_server_error() {
            resp.extensions_mut().insert(ServerError(self.to_string()));
        }
        resp
    }
}

/// Middleware (`axum::middleware::map_response`): logs each 5xx once.
pub(crate) async fn log_server_errors(resp: Response) -> Response {
    if let Some(ServerError(detail)) = resp.extensions().get::<ServerError>() {
        tracing::error!(http.status = resp.status().as_u16(), error = %detail, "request failed");
    }
    resp
}
