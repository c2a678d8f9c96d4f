//! `/api/v1/interactions`: the Home List, one interaction with its feed, accept and close.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, AuthAgent, parse_body};
use crate::clock;
use crate::interaction::{CloseReason, Interaction, InteractionId, Status, SubType};
use crate::queue::agent::{Accepted, Agent};
use crate::store::{Cursor, ListQuery};

const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    status: Option<String>,
    queue: Option<String>,
    sub_type: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/interactions?status=&queue=&sub_type=&limit=&cursor=`: oldest first, within the
/// agent's queues. `next_cursor` is present when another page exists.
#[utoipa::path(
    get,
    path = "/api/v1/interactions",
    tag = "interactions",
    params(
        ("status" = Option<crate::interaction::Status>, Query, description = "Only this status"),
        ("queue" = Option<String>, Query, description = "Only this queue (one of the caller's)"),
        ("sub_type" = Option<crate::interaction::SubType>, Query, description = "Only this sub-type"),
        ("limit" = Option<u32>, Query, description = "Page size (1-1000, default 100)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "The Home List, oldest first", body = crate::api::openapi::InteractionList),
        (status = 403, description = "A queue that is not the caller's", body = crate::api::openapi::ErrorBody), (status = 422, description = "A bad filter", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    let status = p
        .status
        .as_deref()
        .map(|s| Status::parse(s).ok_or_else(|| bad("status", s)))
        .transpose()?;
    let sub_type = p
        .sub_type
        .as_deref()
        .map(|s| SubType::parse(s).ok_or_else(|| bad("sub_type", s)))
        .transpose()?;
    let cursor = p
        .cursor
        .as_deref()
        .map(|s| Cursor::decode(s).ok_or_else(|| bad("cursor", s)))
        .transpose()?;
    let queues = match p.queue {
        Some(q) if agent.sees(&q) => Some(vec![q]),
        Some(q) => {
            return Err(ApiError::Forbidden(format!(
                "queue {q} is not one of yours"
            )));
        }
        // A supervisor's Home List is every queue's.
        None if agent.is_supervisor() => None,
        None => Some(agent.queues.clone()),
    };
    let limit = match p.limit {
        Some(0) => return Err(bad("limit", "0")),
        Some(n) => n.min(crate::store::MAX_PAGE),
        None => DEFAULT_PAGE,
    };
    let page = st
        .store
        .list(ListQuery {
            status,
            queues,
            sub_type,
            limit,
            cursor,
        })
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|l| listed_json(&st, &l.interaction, l.position))
        .collect();
    let mut body = json!({ "interactions": items });
    if let Some(c) = page.next_cursor {
        body["next_cursor"] = Value::String(c.encode());
    }
    Ok(Json(body))
}

/// `GET /api/v1/interactions/{id}`: the interaction plus its feed.
#[utoipa::path(
    get,
    path = "/api/v1/interactions/{id}",
    tag = "interactions",
    params(("id" = i64, Path, description = "The interaction")),
    responses(
        (status = 200, description = "The interaction and its feed", body = crate::api::openapi::InteractionDetail),
        (status = 403, description = "In a queue that is not the caller's", body = crate::api::openapi::ErrorBody), (status = 404, description = "No such interaction", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn detail(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    id: Result<Path<InteractionId>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let d = st.store.get(id).await?;
    check_queue(&agent, &d.listed.interaction)?;
    let mut body = listed_json(&st, &d.listed.interaction, d.listed.position);
    body["feed"] = serde_json::to_value(&d.feed).unwrap_or(Value::Null);
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AcceptBody {}

/// `POST /api/v1/interactions/{id}/accept` (empty body or `{}`): open → connected, assigned to
/// the caller; 409 when not open. The dialer hears of it through [`AppState::accepted`].
///
/// The dialer starts as soon as the accept is committed, and the disk sync of that commit runs
/// meanwhile; the agent's 200 waits for the sync. This keeps the promise ("an accept that dials
/// is durable before anyone is told"): the commit already survives a crash of Hammond (it is in
/// the OS's cache, and the atomic accept means no second accept can win), so only a power cut
/// or kernel crash in the ~ms between commit and sync can lose it. What that loses: the
/// assignment and the dial's feed entries, so after restart the callback is open again, at its
/// old place, and will be dialled again (the customer may have heard a first ring from a call
/// that died with the machine). What it cannot lose: the callback itself (synced when the
/// caller heard it confirmed), and no agent was told it had the call, since the 200 comes only
/// after the sync. A failed sync answers 500 though the dial has begun: the disk is failing.
#[utoipa::path(
    post,
    path = "/api/v1/interactions/{id}/accept",
    tag = "interactions",
    params(("id" = i64, Path, description = "The interaction")),
    request_body(content = Option<crate::api::openapi::Empty>, description = "Empty, or `{}`", example = json!({})),
    responses(
        (status = 200, description = "Connected and assigned to the caller", body = crate::interaction::InteractionJson),
        (status = 403, description = "In a queue that is not the caller's", body = crate::api::openapi::ErrorBody), (status = 404, description = "No such interaction", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "Not open (`conflict`), a ringing caller (`live_call`), or not due yet (`not_yet_due`)", body = crate::api::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::api::openapi::ErrorBody), (status = 422, description = "A bad body", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn accept(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    id: Result<Path<InteractionId>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let AcceptBody {} = parse_body(body, Some(AcceptBody {}))?;
    let current = st.store.get(id).await?.listed.interaction;
    check_queue(&agent, &current)?;
    hand_to(&st, &current, agent).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignBody {
    agent: String,
}

/// `POST /api/v1/interactions/{id}/assign` `{"agent"}` (supervisors only): what the agent's
/// own accept does, on the agent's behalf: an open interaction becomes connected to that
/// agent, whose phone Hammond calls (a callback dials the customer). 409 when not open.
#[utoipa::path(
    post,
    path = "/api/v1/interactions/{id}/assign",
    tag = "interactions",
    params(("id" = i64, Path, description = "The interaction")),
    request_body(content = crate::api::openapi::AssignRequest, example = json!({"agent": "alice"})),
    responses(
        (status = 200, description = "Connected and assigned to the agent named", body = crate::interaction::InteractionJson),
        (status = 403, description = "The caller is not a supervisor", body = crate::api::openapi::ErrorBody), (status = 404, description = "No such interaction", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "Not open, a ringing caller, or not due yet", body = crate::api::openapi::ErrorBody), (status = 422, description = "A bad body, an unknown agent, or one not serving the queue", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn assign(
    State(st): State<AppState>,
    AuthAgent(caller): AuthAgent,
    id: Result<Path<InteractionId>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    if !caller.is_supervisor() {
        return Err(ApiError::Forbidden(
            "only a supervisor may assign interactions to others".into(),
        ));
    }
    let body: AssignBody = parse_body(body, None)?;
    let Some(agent) = st.agents.get(&body.agent).cloned() else {
        return Err(ApiError::Unprocessable(format!(
            "no agent {:?}",
            body.agent
        )));
    };
    let current = st.store.get(id).await?.listed.interaction;
    // The agent must be able to work it: its page shows its own queues only.
    if !agent.sees(&current.queue) {
        return Err(ApiError::Unprocessable(format!(
            "agent {} does not serve queue {}",
            agent.id, current.queue
        )));
    }
    tracing::info!(interaction.id = id, agent.id = %agent.id, supervisor = %caller.id, "assigned by a supervisor");
    hand_to(&st, &current, agent).await
}

/// The accept itself, for `agent` (the caller, or the one a supervisor names), of `current`
/// as the caller read it. The store decides on the row as stored; the read only serves the
/// calling window, which depends on the queue and the number, neither of which changes.
async fn hand_to(
    st: &AppState,
    current: &Interaction,
    agent: Agent,
) -> Result<Json<Value>, ApiError> {
    let id = current.id;
    // Never outside the calling window in the customer's time zone (an accept or an assign).
    outside_window(st, current)?;
    let (i, synced) = st
        .store
        .accept_committed(id, &agent.id, clock::wall())
        .await?;
    tracing::info!(interaction.id = id, agent.id = %agent.id, "accepted");
    if let Some(tx) = &st.accepted {
        // No dialer listening is fine: the interaction is still assigned. A full dialer
        // queue makes this request wait (the accept is durable; it must not be dropped).
        let _ = tx
            .send(Accepted {
                interaction: i.clone(),
                agent,
            })
            .await;
    }
    synced.await?;
    Ok(Json(i.to_json(None)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CloseBody {
    disposition: String,
    reason: Option<CloseReason>,
}

/// `POST /api/v1/interactions/{id}/close` `{"disposition", "reason"?}`: an open interaction of
/// the agent's queue, or a connected one assigned to the agent. `reason` defaults to
/// `completed` (`voicemail_done` for a voicemail). A connected interaction's call, ringing or
/// talking, is hung up: the close ends the interaction, phones included.
///
/// The store decides on the row as stored, in the transaction that closes it
/// ([`crate::store::InteractionStore::close_by`]): a close cannot slip in after another agent's
/// accept (it used to check a row read earlier, then close whatever the row had become,
/// leaving that agent's call up). The read here is only for the queue, which never changes.
#[utoipa::path(
    post,
    path = "/api/v1/interactions/{id}/close",
    tag = "interactions",
    params(("id" = i64, Path, description = "The interaction")),
    request_body(content = crate::api::openapi::CloseRequest, example = json!({"disposition": "resolved"})),
    responses(
        (status = 200, description = "Closed (a connected call is hung up)", body = crate::interaction::InteractionJson),
        (status = 403, description = "Another agent's, or a queue that is not the caller's", body = crate::api::openapi::ErrorBody), (status = 404, description = "No such interaction", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "Bot, closed, or a ringing caller", body = crate::api::openapi::ErrorBody), (status = 422, description = "A bad body", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn close(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    id: Result<Path<InteractionId>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let body: CloseBody = parse_body(body, None)?;
    let current = st.store.get(id).await?.listed.interaction;
    check_queue(&agent, &current)?;
    // A supervisor closes on behalf of whoever holds it. Decided on the row read here, so if
    // it changed hands meanwhile the store refuses (as for anyone) and the supervisor retries.
    let closer = match (&current.assigned_agent, current.status) {
        (Some(holder), Status::Connected) if agent.is_supervisor() => holder.clone(),
        _ => agent.id.clone(),
    };
    if closer != agent.id {
        tracing::info!(interaction.id = id, agent.id = %closer, supervisor = %agent.id, "closed by a supervisor");
    }
    let closed = st
        .store
        .close_by(
            id,
            &closer,
            body.reason,
            Some(body.disposition),
            clock::wall(),
        )
        .await?;
    if closed.from == Status::Connected && st.connected.hang_up(id) {
        tracing::info!(interaction.id = id, agent.id = %agent.id, "closed while its call was up: hanging up");
    }
    Ok(Json(closed.interaction.to_json(None)))
}

/// A callback whose customer is outside the queue's calling window (in the customer's time
/// zone) is not due: 409 `not_yet_due` with when the window opens, as for a `not_before`.
fn outside_window(st: &AppState, i: &Interaction) -> Result<(), ApiError> {
    let Some(t) = callable_from(st, i) else {
        return Ok(());
    };
    Err(ApiError::NotYetDue {
        message: format!(
            "interaction {} is a callback outside the queue's calling window in the customer's \
             time zone: not to be dialled before {t}",
            i.id
        ),
        not_before: t,
    })
}

/// When an open callback (or a voicemail to call back) may be dialled by its queue's calling
/// window (`None`: now, or nothing to dial, or no window).
fn callable_from(st: &AppState, i: &Interaction) -> Option<jiff::Timestamp> {
    let cb = i.callback.as_ref().filter(|_| i.dials_back())?;
    if i.status != Status::Open {
        return None;
    }
    st.flows
        .current()
        .get(&i.queue)?
        .callable_from(&cb.number, clock::wall())
}

/// The interaction's JSON for the Home List, with `callback.callable_from`: when the calling
/// window lets it be dialled, if not now.
fn listed_json(st: &AppState, i: &Interaction, position: Option<u32>) -> Value {
    let mut v = i.to_json(position);
    if let Some(t) = callable_from(st, i)
        && let Some(cb) = v.get_mut("callback").and_then(Value::as_object_mut)
    {
        cb.insert("callable_from".into(), Value::String(t.to_string()));
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RescheduleBody {
    /// RFC 3339 with an offset.
    not_before: String,
}

/// `POST /api/v1/interactions/{id}/reschedule` `{"not_before"}`: the workspace's Reschedule of
/// an open callback of the agent's queue. A time already past means now; a time outside the
/// calling window (in the customer's zone) moves on to when it opens.
#[utoipa::path(
    post,
    path = "/api/v1/interactions/{id}/reschedule",
    tag = "interactions",
    params(("id" = i64, Path, description = "The interaction")),
    request_body(content = crate::api::openapi::RescheduleRequest, example = json!({"not_before": "2030-01-02T15:00:00Z"})),
    responses(
        (status = 200, description = "The callback with its new `not_before`", body = crate::interaction::InteractionJson),
        (status = 403, description = "In a queue that is not the caller's", body = crate::api::openapi::ErrorBody), (status = 404, description = "No such interaction", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "Not an open callback", body = crate::api::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::api::openapi::ErrorBody), (status = 422, description = "A bad body", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn reschedule(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    id: Result<Path<InteractionId>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let body: RescheduleBody = parse_body(body, None)?;
    let at: jiff::Timestamp = body.not_before.parse().map_err(|e| {
        ApiError::Unprocessable(format!(
            "not_before: {:?} is not an RFC 3339 time with an offset: {e}",
            body.not_before
        ))
    })?;
    let current = st.store.get(id).await?.listed.interaction;
    check_queue(&agent, &current)?;
    let now = clock::wall();
    let at = at.max(now);
    let at = match (&current.callback, st.flows.current().get(&current.queue)) {
        (Some(cb), Some(flow)) => flow.callable_from(&cb.number, at).unwrap_or(at),
        _ => at,
    };
    let at = jiff::Timestamp::from_microsecond(at.as_microsecond()).unwrap_or(at);
    let event = crate::interaction::Event::Rescheduled {
        not_before: at,
        by: agent.id.clone(),
    };
    let i = st.store.apply(id, event, now).await?;
    Ok(Json(listed_json(&st, &i, None)))
}

/// `POST /api/v1/interactions/{id}/call_now` (empty body or `{}`): the workspace's "Call again
/// now": an open callback waiting out its retry interval or its chosen time is made due now
/// and accepted by the agent at once (dialled), unless the calling window is closed in the
/// customer's zone (409 `not_yet_due` with when it opens: then nothing changes).
#[utoipa::path(
    post,
    path = "/api/v1/interactions/{id}/call_now",
    tag = "interactions",
    params(("id" = i64, Path, description = "The interaction")),
    request_body(content = Option<crate::api::openapi::Empty>, description = "Empty, or `{}`", example = json!({})),
    responses(
        (status = 200, description = "Due now, connected and assigned to the caller (dialled)", body = crate::interaction::InteractionJson),
        (status = 403, description = "In a queue that is not the caller's", body = crate::api::openapi::ErrorBody), (status = 404, description = "No such interaction", body = crate::api::openapi::ErrorBody),
        (status = 409, description = "Not open (`conflict`), or the calling window is closed (`not_yet_due`)", body = crate::api::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::api::openapi::ErrorBody), (status = 422, description = "A bad body", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn call_now(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    id: Result<Path<InteractionId>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let AcceptBody {} = parse_body(body, Some(AcceptBody {}))?;
    let current = st.store.get(id).await?.listed.interaction;
    check_queue(&agent, &current)?;
    outside_window(&st, &current)?;
    let now = clock::wall();
    let current = if current.not_due_at(now).is_some() {
        let event = crate::interaction::Event::Rescheduled {
            not_before: now,
            by: agent.id.clone(),
        };
        st.store.apply(id, event, now).await?
    } else {
        current
    };
    hand_to(&st, &current, agent).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoteBody {
    text: String,
}

/// Longest agent note.
const MAX_NOTE: usize = 2000;

/// `POST /api/v1/interactions/{id}/notes` `{"text"}`: an agent's note on the feed, any status.
#[utoipa::path(
    post,
    path = "/api/v1/interactions/{id}/notes",
    tag = "interactions",
    params(("id" = i64, Path, description = "The interaction")),
    request_body(content = crate::api::openapi::NoteRequest, example = json!({"text": "prefers mornings"})),
    responses(
        (status = 200, description = "The interaction (the note is on its feed)", body = crate::interaction::InteractionJson),
        (status = 403, description = "In a queue that is not the caller's", body = crate::api::openapi::ErrorBody), (status = 404, description = "No such interaction", body = crate::api::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::api::openapi::ErrorBody), (status = 422, description = "A bad body", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn add_note(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    id: Result<Path<InteractionId>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let body: NoteBody = parse_body(body, None)?;
    let text = body.text.trim().to_owned();
    if text.is_empty() || text.chars().count() > MAX_NOTE {
        return Err(ApiError::Unprocessable(format!(
            "text: 1 to {MAX_NOTE} characters"
        )));
    }
    let current = st.store.get(id).await?.listed.interaction;
    check_queue(&agent, &current)?;
    let note = crate::interaction::Note::Agent {
        agent: agent.id.clone(),
        text,
    };
    let i = st
        .store
        .apply(id, crate::interaction::Event::Note(note), clock::wall())
        .await?;
    Ok(Json(listed_json(&st, &i, None)))
}

pub(super) fn path_id(
    id: Result<Path<InteractionId>, PathRejection>,
) -> Result<InteractionId, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::NotFound("no such interaction".into()))
}

pub(super) fn check_queue(agent: &Agent, i: &Interaction) -> Result<(), ApiError> {
    if agent.sees(&i.queue) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "interaction {} is in queue {}, not one of yours",
            i.id, i.queue
        )))
    }
}

fn bad(field: &str, value: &str) -> ApiError {
    ApiError::Unprocessable(format!("invalid {field}: {value:?}"))
}

#[cfg(test)]
mod tests;
