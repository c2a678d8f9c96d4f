//! `/api/v1/agents`: who the agents are and their presence (stored, so every instance sharing
//! a PostgreSQL store sees one presence per agent; agents start `away`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, AuthAgent, parse_body};
use crate::queue::agent::Presence;

/// `GET /api/v1/agents`: id, queues and presence of every agent (never tokens).
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    responses((status = 200, description = "Every agent", body = crate::api::openapi::AgentList), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody)),
    security(("bearer" = [])),
)]
pub(super) async fn list(State(st): State<AppState>, _caller: AuthAgent) -> Json<Value> {
    let agents: Vec<Value> = st
        .agents
        .all()
        .iter()
        .map(|a| json!({ "id": a.id, "queues": a.queues, "role": a.role, "status": st.agents.presence(&a.id) }))
        .collect();
    Json(json!({ "agents": agents }))
}

/// `GET /api/v1/me`: the caller's own id, queues and presence (the web page signs in with a
/// token alone and learns who it is here).
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "agents",
    responses((status = 200, description = "The caller", body = crate::api::openapi::AgentView), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody)),
    security(("bearer" = [])),
)]
pub(super) async fn me(State(st): State<AppState>, AuthAgent(me): AuthAgent) -> Json<Value> {
    // `phone`: "webrtc" when the page itself is the agent's phone.
    let phone = if me.endpoint == crate::config::WEBRTC_ENDPOINT {
        "webrtc"
    } else {
        "sip"
    };
    Json(
        json!({ "id": me.id, "queues": me.queues, "role": me.role, "status": st.agents.presence(&me.id), "phone": phone }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusBody {
    status: Presence,
}

/// `PUT /api/v1/agents/{id}/status` `{"status": "available" | "away"}`: an agent sets its own;
/// a supervisor sets anyone's.
#[utoipa::path(
    put,
    path = "/api/v1/agents/{id}/status",
    tag = "agents",
    params(("id" = String, Path, description = "The agent")),
    request_body(content = crate::api::openapi::StatusRequest, example = json!({"status": "available"})),
    responses(
        (status = 200, description = "The presence as now stored", body = crate::api::openapi::AgentView),
        (status = 403, description = "Another agent's, and the caller is no supervisor", body = crate::api::openapi::ErrorBody), (status = 404, description = "No such agent", body = crate::api::openapi::ErrorBody),
        (status = 422, description = "A bad body", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn set_status(
    State(st): State<AppState>,
    AuthAgent(caller): AuthAgent,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    if st.agents.get(&id).is_none() {
        return Err(ApiError::NotFound(format!("agent {id} not found")));
    }
    if caller.id != id && !caller.is_supervisor() {
        return Err(ApiError::Forbidden(
            "an agent may set only its own status".into(),
        ));
    }
    let body: StatusBody = parse_body(body, None)?;
    let change = st
        .agents
        .set_presence(&id, body.status)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("agent {id}")))?;
    tracing::info!(agent.id = %id, status = ?body.status, "presence changed");
    Ok(Json(
        json!({ "id": change.id, "queues": change.queues, "status": change.status }),
    ))
}
