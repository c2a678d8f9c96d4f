//! `/api/v1/phone`: the signalling of an agent's browser phone (`endpoint = "webrtc"`; see
//! `rt::webrtc` for the sequence). Same bearer token as the rest of the API, no other secret.
//!
//! - `GET /api/v1/phone/events` (SSE; `?access_token=` as for `/events`): `ready`, then
//!   `ringing` `{"call", "number", "interaction", "pushed"}`, `connected` `{"call"}`, `ended`
//!   `{"call", "reason"}`. Holding it open is the phone's registration.
//! - `POST /api/v1/phone/calls/{call}/answer` `{"sdp": <complete offer>}` → `{"type": "answer",
//!   "sdp"}`; `…/decline`, `…/hangup`, `…/hold`, `…/resume` → 204. A call that is not this
//!   agent's → 404.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use super::events::Until;
use super::{ApiError, AppState, AuthAgent, StreamAgent, parse_body};
use crate::call::AgentCommand;
use crate::rt::webrtc::PhoneError;

/// Keep-alive comment interval (also how soon a dead page's registration is noticed).
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// `GET /api/v1/phone/events`.
#[utoipa::path(
    get,
    path = "/api/v1/phone/events",
    tag = "phone",
    params(("access_token" = Option<String>, Query, description = "The token, for `EventSource` (which cannot send headers)")),
    responses(
        (status = 200, description = "Server-Sent Events of the agent's browser phone: `ready`; `ringing` `{\"call\", \"number\", \"interaction\", \"pushed\"}`; `connected` `{\"call\"}`; `ended` `{\"call\", \"reason\"}`. Holding it open registers the phone.", content_type = "text/event-stream"),
        (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody)
    ),
    security(("bearer" = [])),
)]
pub(super) async fn events(
    State(st): State<AppState>,
    StreamAgent(agent): StreamAgent,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let page = st.phones.open_page(&agent.id);
    let ready = Event::default()
        .event("ready")
        .data(json!({ "agent": agent.id }).to_string());
    let rx = page.events.resubscribe();
    // The registration lasts as long as the stream: it is moved into it.
    let live = BroadcastStream::new(rx)
        // Lagged: end the stream; the page reconnects.
        .map_while(Result::ok)
        .map(move |ev| {
            let _registration = &page;
            Ok(Event::default()
                .event(ev.kind())
                .data(serde_json::to_string(&ev).unwrap_or_default()))
        });
    let events = tokio_stream::once(Ok(ready)).chain(live);
    Sse::new(Until::new(events, st.shutdown.clone()))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnswerBody {
    sdp: String,
    /// `"offer"` when the page sends its `RTCSessionDescription` as it is.
    #[serde(rename = "type", default)]
    _kind: Option<String>,
}

/// `POST /api/v1/phone/calls/{call}/answer`.
#[utoipa::path(
    post,
    path = "/api/v1/phone/calls/{call}/answer",
    tag = "phone",
    params(("call" = u64, Path, description = "The call, from its `ringing` event")),
    request_body(content = crate::api::openapi::SessionDescription, example = json!({"type": "offer", "sdp": "v=0\r\n…"})),
    responses(
        (status = 200, description = "Hammond's answer (ICE-lite, one host candidate, PCMU/PCMA and telephone-event)", body = crate::api::openapi::SessionDescription),
        (status = 404, description = "No such call ringing on this agent's phone", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "Already answered, no socket for the call, or more than 8 of the page's requests still waiting", body = crate::api::openapi::ErrorBody),
        (status = 422, description = "Not an offer Hammond can answer (no audio, no G.711)", body = crate::api::openapi::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody)
    ),
    security(("bearer" = [])),
)]
pub(super) async fn answer(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(call): Path<u64>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body: AnswerBody = parse_body(body, None)?;
    let sdp = st
        .phones
        .answer(&agent.id, call, body.sdp)
        .await
        .map_err(api)?;
    Ok(Json(json!({ "type": "answer", "sdp": sdp })))
}

/// `POST /api/v1/phone/calls/{call}/decline`.
#[utoipa::path(
    post,
    path = "/api/v1/phone/calls/{call}/decline",
    tag = "phone",
    params(("call" = u64, Path, description = "The call")),
    responses(
        (status = 204, description = "Decline a ringing call (the agent's leg fails with 603)"),
        (status = 404, description = "No such call on this agent's phone", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "The call has not yet taken the page's last requests (more than 8 waiting); try again", body = crate::api::openapi::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody)
    ),
    security(("bearer" = [])),
)]
pub(super) async fn decline(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(call): Path<u64>,
) -> Result<StatusCode, ApiError> {
    st.phones.decline(&agent.id, call).map_err(api)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/phone/calls/{call}/hangup`.
#[utoipa::path(
    post,
    path = "/api/v1/phone/calls/{call}/hangup",
    tag = "phone",
    params(("call" = u64, Path, description = "The call")),
    responses(
        (status = 204, description = "Hang up (the agent's leg ends: BYE to the customer)"),
        (status = 404, description = "No such call on this agent's phone", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "The call has not yet taken the page's last requests (more than 8 waiting); try again", body = crate::api::openapi::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody)
    ),
    security(("bearer" = [])),
)]
pub(super) async fn hang_up(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(call): Path<u64>,
) -> Result<StatusCode, ApiError> {
    st.phones.hang_up(&agent.id, call).map_err(api)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/phone/calls/{call}/hold`.
#[utoipa::path(
    post,
    path = "/api/v1/phone/calls/{call}/hold",
    tag = "phone",
    params(("call" = u64, Path, description = "The call")),
    responses(
        (status = 204, description = "Put the call on hold: the customer hears the queue's hold music and the agent nothing, until `resume`. A call not yet bridged, or already on hold, is left as it is; the interaction's feed says `on_hold`"),
        (status = 404, description = "No such call on this agent's phone", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "The call has not yet taken the page's last requests (more than 8 waiting); try again", body = crate::api::openapi::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody)
    ),
    security(("bearer" = [])),
)]
pub(super) async fn hold(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(call): Path<u64>,
) -> Result<StatusCode, ApiError> {
    st.phones
        .hold(&agent.id, call, AgentCommand::Hold)
        .map_err(api)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/phone/calls/{call}/resume`.
#[utoipa::path(
    post,
    path = "/api/v1/phone/calls/{call}/resume",
    tag = "phone",
    params(("call" = u64, Path, description = "The call")),
    responses(
        (status = 204, description = "Take the call off hold: customer and agent talk again (the feed says `resumed`). A call not on hold is left as it is"),
        (status = 404, description = "No such call on this agent's phone", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "The call has not yet taken the page's last requests (more than 8 waiting); try again", body = crate::api::openapi::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody)
    ),
    security(("bearer" = [])),
)]
pub(super) async fn resume(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    Path(call): Path<u64>,
) -> Result<StatusCode, ApiError> {
    st.phones
        .hold(&agent.id, call, AgentCommand::Resume)
        .map_err(api)?;
    Ok(StatusCode::NO_CONTENT)
}

fn api(e: PhoneError) -> ApiError {
    match e {
        PhoneError::NoSuchCall => ApiError::NotFound(e.to_string()),
        PhoneError::AlreadyAnswered | PhoneError::Busy => ApiError::Conflict(e.to_string()),
        PhoneError::Peer(crate::rt::webrtc::peer::PeerError::Offer(m)) => {
            ApiError::Unprocessable(m)
        }
        PhoneError::Peer(p) => {
            tracing::warn!(error = %p, "browser phone answer failed");
            ApiError::Conflict(p.to_string())
        }
    }
}
