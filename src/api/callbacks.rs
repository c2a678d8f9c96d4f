//! `POST /api/v1/callbacks`: a callback requested from outside a call (a website's "call me"
//! form, a CRM), by an `[[api_clients]]` token with the `create_callbacks` right, for one of
//! its queues. The number passes the queue's `[callback]` number rules (the workflow's), and
//! the store's booking rule (one pending callback per queue and number, the daily cap); a
//! refusal is a 422 whose code and message say which rule. `Idempotency-Key` (scoped by the
//! client) makes a retried request safe: the repeat answers with the interaction the first one
//! created, and writes nothing (a repeat with another body gets the first one's result too).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{ApiClient, authenticate_client};
use super::{ApiError, AppState, parse_body};
use crate::clock;
use crate::config::ApiRight;
use crate::interaction::Interaction;
use crate::store::{self, Booking, NewCallback};

/// Longest `Idempotency-Key` accepted.
const MAX_KEY: usize = 255;
/// Longest note.
const MAX_NOTE: usize = 2000;

/// The caller of `POST /api/v1/callbacks`: an API client with the `create_callbacks` right.
pub(super) struct CallbackClient(ApiClient);

impl FromRequestParts<AppState> for CallbackClient {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate_client(parts, state, ApiRight::CreateCallbacks).map(Self)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCallbackBody {
    queue: String,
    number: String,
    /// RFC 3339 (`2026-03-01T15:00:00Z`, `2026-03-01T10:00:00-05:00`).
    not_before: Option<String>,
    note: Option<String>,
}

/// `POST /api/v1/callbacks` → 201 and the interaction (`open`, sub-type `callback`).
#[utoipa::path(
    post,
    path = "/api/v1/callbacks",
    tag = "callbacks",
    params(("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key gets the first one's interaction, and writes nothing")),
    request_body(content = crate::api::openapi::NewCallbackRequest, example = json!({"queue": "support", "number": "+1 555 123 4567", "note": "from the website"})),
    responses(
        (status = 201, description = "Booked: open, sub-type callback", body = crate::interaction::InteractionJson),
        (status = 403, description = "Not an API client with the `create_callbacks` right, or not one of its queues", body = crate::api::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::api::openapi::ErrorBody),
        (status = 422, description = "A bad body, or refused by a rule: `number_refused`, `duplicate_callback`, `daily_limit`, `unknown_queue`", body = crate::api::openapi::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create(
    State(st): State<AppState>,
    CallbackClient(client): CallbackClient,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let b: NewCallbackBody = parse_body(body, None)?;
    let key = idempotency_key(&headers)?;
    if !client.queues.contains(&b.queue) {
        return Err(ApiError::Forbidden(format!(
            "queue {} is not one of API client {}'s",
            b.queue, client.id
        )));
    }
    let Some(flow) = st.flows.current().get(&b.queue) else {
        return Err(ApiError::Refused {
            code: "unknown_queue",
            message: format!("no queue {:?} is configured", b.queue),
        });
    };
    let number = flow
        .callback
        .numbers
        .canonical(&b.number)
        .map_err(|e| ApiError::Refused {
            code: "number_refused",
            message: format!("{:?} cannot be called back: {e}", b.number),
        })?;
    let not_before = b
        .not_before
        .as_deref()
        .map(|s| {
            s.parse::<jiff::Timestamp>().map_err(|e| {
                ApiError::Unprocessable(format!(
                    "not_before: {s:?} is not an RFC 3339 time with an offset: {e}"
                ))
            })
        })
        .transpose()?;
    let note = b
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE) {
        return Err(ApiError::Unprocessable(format!(
            "note: longer than {MAX_NOTE} characters"
        )));
    }
    let now = clock::wall();
    // A time already past is no constraint; the store keeps microseconds, and the answer
    // shows what it keeps.
    let not_before = not_before.filter(|t| *t > now);
    // Never at night: a time outside the calling window in the customer's zone moves on to
    // when it opens.
    let from = not_before.unwrap_or(now);
    let not_before = flow
        .callable_from(&number, from)
        .or(not_before)
        .and_then(|t| jiff::Timestamp::from_microsecond(t.as_microsecond()).ok());
    let new = NewCallback {
        interaction: Interaction::requested_callback(&b.queue, &number, not_before, now),
        booking: Booking {
            number: number.clone(),
            not_before,
            max_per_day: flow.callback.max_per_day,
            since: now - jiff::SignedDuration::from_hours(24),
        },
        note,
        idempotency_key: key.map(|k| format!("{}:{k}", client.id)),
    };
    let created = st.store.create_callback(new).await.map_err(|e| match e {
        store::Error::DuplicateCallback { .. } => ApiError::Refused {
            code: "duplicate_callback",
            message: format!("{number} already has a pending callback in {}", b.queue),
        },
        store::Error::CallbackLimit { max_per_day, .. } => ApiError::Refused {
            code: "daily_limit",
            message: format!(
                "{number} has booked {max_per_day} callbacks in {} today, the queue's cap",
                b.queue
            ),
        },
        e => e.into(),
    })?;
    let i = &created.interaction;
    let position = st.store.position(i.id).await.unwrap_or(None);
    tracing::info!(
        interaction = i.id,
        client = %client.id,
        queue = %i.queue,
        replayed = created.replayed,
        "callback requested via API"
    );
    let mut resp = (StatusCode::CREATED, Json(i.to_json(position))).into_response();
    if created.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// The `Idempotency-Key` header: printable ASCII, at most [`MAX_KEY`] characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "Idempotency-Key: 1 to {MAX_KEY} printable ASCII characters"
            ))
        })?;
    Ok(Some(k.to_owned()))
}

#[cfg(test)]
mod tests;
