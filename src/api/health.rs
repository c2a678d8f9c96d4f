//! `GET /healthz` and `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

/// 200 `{"status":"ok"}`, or 503 `{"status":"unhealthy","problems":[...]}` when the store does
/// not answer a query or the `health_extra` hook reports problems.
pub(super) async fn healthz(State(st): State<AppState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    if let Err(e) = st.store.ping().await {
        problems.push(format!("store: {e}"));
    }
    problems.extend((st.health_extra)());
    if problems.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ok" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unhealthy", "problems": problems })),
        )
    }
}

/// Prometheus text exposition, with the store gauges refreshed first.
pub(super) async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    if let Err(e) = super::metrics::refresh(st.store.as_ref()).await {
        tracing::warn!(error = %e, "refreshing store gauges");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}
