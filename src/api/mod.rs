//! The HTTP API (axum; shell layer): the Home List and interactions with their feeds, accept and
//! close, agents and their presence, Server-Sent Events of changes, `/metrics` and `/healthz`,
//! and the agents' web page at `/` (module `web`; its assets are embedded in the binary).
//! Paths, JSON shapes and status codes are pinned in DESIGN.md ("HTTP API").
//!
//! Everything under `/api/v1` needs `Authorization: Bearer <agent token>` (401 otherwise); an
//! agent sees and acts on its own queues only (403). Errors are `{"error": {"code", "message"}}`.

mod agents;
mod auth;
mod callbacks;
mod error;
mod events;
mod health;
mod interactions;
pub mod metrics;
mod openapi;
mod phone;
pub mod range;
mod stats;
mod voicemail;
pub mod wallboard;
mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use auth::{ApiClient, AuthAgent, Lockout, LockoutPolicy, StreamAgent};
pub use error::ApiError;

use crate::queue::agent::{Accepted, Agent};
use crate::rt::agents::Agents;
use crate::rt::connected::ConnectedCalls;
use crate::rt::queue_watch::QueueRegistry;
use crate::rt::webrtc::Phones;
use crate::store::InteractionStore;

/// Largest request body accepted unless [`AppState::with_max_body`] says otherwise (the
/// default of `[http] max_body`).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The queues in force, each with its service-level target (reports and the wallboard).
pub type QueueList = Arc<dyn Fn() -> Vec<(String, std::time::Duration)> + Send + Sync>;

/// Each webhook's delivery state now (the wallboard).
pub type WebhookStates = Arc<dyn Fn() -> Vec<crate::webhook::WebhookState> + Send + Sync>;

/// The service-level target of a queue no queue file defines (the queue files' default).
pub const DEFAULT_SERVICE_LEVEL: std::time::Duration = std::time::Duration::from_secs(60);

/// Extra health checks (e.g. config-reload errors); each string is one problem.
pub type HealthExtra = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The interaction store.
    pub store: Arc<dyn InteractionStore>,
    /// Agents and presence.
    pub agents: Arc<Agents>,
    /// Where accepts go (the dialer); `None` drops them.
    pub accepted: Option<mpsc::Sender<Accepted>>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Extra `/healthz` problems.
    pub health_extra: HealthExtra,
    /// Client IPs locked out after repeated bad tokens (needs the router served with
    /// `into_make_service_with_connect_info::<SocketAddr>()`).
    pub lockout: Arc<Lockout>,
    /// Calls up for connected interactions: closing one hangs it up.
    pub connected: Arc<ConnectedCalls>,
    /// Browser agents' phones (`/api/v1/phone`).
    pub phones: Arc<Phones>,
    /// Request bodies above this get 413 (`[http] max_body`).
    pub max_body: usize,
    /// Cancelled when Hammond shuts down: open event streams end, so the HTTP server's
    /// graceful shutdown is not held up by them.
    pub shutdown: CancellationToken,
    /// The queues in force (by default the agents' queues, with the default target).
    pub queues: QueueList,
    /// The webhooks' delivery state (none by default).
    pub webhooks: WebhookStates,
    /// The queues as now loaded (number rules, daily cap, calling window).
    pub flows: Arc<QueueRegistry>,
    /// `[[api_clients]]`: programs' tokens and their rights.
    pub api_clients: Arc<Vec<ApiClient>>,
}

impl AppState {
    /// State with no accept listener and no extra health checks.
    pub fn new(
        store: Arc<dyn InteractionStore>,
        agents: Vec<Agent>,
        metrics: PrometheusHandle,
    ) -> Self {
        Self::with_agents(store, Arc::new(Agents::new(agents)), metrics)
    }

    /// State sharing its agents (and their presence) with the router.
    pub fn with_agents(
        store: Arc<dyn InteractionStore>,
        agents: Arc<Agents>,
        metrics: PrometheusHandle,
    ) -> Self {
        let mut names: Vec<String> = agents
            .all()
            .iter()
            .flat_map(|a| a.queues.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        let queues: QueueList = Arc::new(move || {
            names
                .iter()
                .map(|q| (q.clone(), DEFAULT_SERVICE_LEVEL))
                .collect()
        });
        Self {
            queues,
            webhooks: Arc::new(Vec::new),
            store,
            agents,
            accepted: None,
            metrics,
            health_extra: Arc::new(Vec::new),
            lockout: Arc::new(Lockout::default()),
            connected: Arc::default(),
            phones: Arc::default(),
            max_body: BODY_LIMIT,
            shutdown: CancellationToken::new(),
            flows: Arc::new(QueueRegistry::new(Default::default(), Vec::new())),
            api_clients: Arc::default(),
        }
    }

    /// The queue files requests are checked against (the running registry: hot reloads
    /// included): number rules, daily cap, calling window.
    #[must_use]
    pub fn with_flows(mut self, flows: Arc<QueueRegistry>) -> Self {
        self.flows = flows;
        self
    }

    /// Programs' tokens (`[[api_clients]]`).
    #[must_use]
    pub fn with_api_clients(mut self, clients: Vec<ApiClient>) -> Self {
        self.api_clients = Arc::new(clients);
        self
    }

    /// Sends every successful accept to `tx`.
    #[must_use]
    pub fn with_accepted(mut self, tx: mpsc::Sender<Accepted>) -> Self {
        self.accepted = Some(tx);
        self
    }

    /// Closing a connected interaction hangs up its call registered in `calls`.
    #[must_use]
    pub fn with_connected(mut self, calls: Arc<ConnectedCalls>) -> Self {
        self.connected = calls;
        self
    }

    /// Signals the browser phones in `phones` (shared with the call drivers).
    #[must_use]
    pub fn with_phones(mut self, phones: Arc<Phones>) -> Self {
        self.phones = phones;
        self
    }

    /// Adds problems reported by `f` to `/healthz`.
    #[must_use]
    pub fn with_health_extra(mut self, f: HealthExtra) -> Self {
        self.health_extra = f;
        self
    }

    /// Refuses request bodies above `bytes` with 413 (`[http] max_body`).
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The queues in force come from `f` (the queue files, reloaded).
    #[must_use]
    pub fn with_queues(mut self, f: QueueList) -> Self {
        self.queues = f;
        self
    }

    /// The wallboard shows the webhooks' delivery state from `f`.
    #[must_use]
    pub fn with_webhooks(mut self, f: WebhookStates) -> Self {
        self.webhooks = f;
        self
    }

    /// Ends every event stream when `token` is cancelled (shutdown).
    #[must_use]
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }
}

/// The whole HTTP API. Hammond serves it with [`crate::rt::http::serve`] (header timeout,
/// connection cap, client address for the lock-out); tests may use `axum::serve`.
pub fn router(state: AppState) -> Router {
    let max_body = state.max_body;
    Router::new()
        .route("/api/v1/interactions", get(interactions::list))
        .route("/api/v1/interactions/{id}", get(interactions::detail))
        .route(
            "/api/v1/interactions/{id}/accept",
            post(interactions::accept),
        )
        .route("/api/v1/interactions/{id}/close", post(interactions::close))
        .route(
            "/api/v1/interactions/{id}/assign",
            post(interactions::assign),
        )
        .route(
            "/api/v1/interactions/{id}/reschedule",
            post(interactions::reschedule),
        )
        .route(
            "/api/v1/interactions/{id}/call_now",
            post(interactions::call_now),
        )
        .route(
            "/api/v1/interactions/{id}/notes",
            post(interactions::add_note),
        )
        .route("/api/v1/interactions/{id}/voicemail", get(voicemail::audio))
        .route("/api/v1/callbacks", post(callbacks::create))
        .route("/api/v1/me", get(agents::me))
        .route("/api/v1/agents", get(agents::list))
        .route("/api/v1/agents/{id}/status", put(agents::set_status))
        .route("/api/v1/events", get(events::stream))
        .route("/api/v1/stats", get(stats::stats))
        .route("/api/v1/wallboard", get(wallboard::wallboard))
        .route("/api/v1/openapi.json", get(openapi::openapi_json))
        .route("/api/v1/reports/interactions.csv", get(stats::csv))
        .route("/api/v1/phone/events", get(phone::events))
        .route("/api/v1/phone/calls/{call}/answer", post(phone::answer))
        .route("/api/v1/phone/calls/{call}/decline", post(phone::decline))
        .route("/api/v1/phone/calls/{call}/hangup", post(phone::hang_up))
        .route("/api/v1/phone/calls/{call}/hold", post(phone::hold))
        .route("/api/v1/phone/calls/{call}/resume", post(phone::resume))
        .route("/metrics", get(health::metrics))
        .route("/healthz", get(health::healthz))
        .route("/", get(web::index))
        .route("/supervisor", get(web::supervisor))
        .route("/assets/{file}", get(web::asset))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_response(error::log_server_errors))
        .with_state(state)
}

/// Parses a JSON body that must be empty (when `empty_ok`) or a valid `T`; unknown fields are
/// rejected by `T`'s `deny_unknown_fields`.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    empty: Option<T>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::Unprocessable(e.body_text())
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace)
        && let Some(v) = empty
    {
        return Ok(v);
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::Unprocessable(format!("invalid body: {e}")))
}

#[cfg(test)]
mod tests;
