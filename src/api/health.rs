//! `GET /healthz` and `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

/// 200 `{"status":"ok"}`, or 503 `{"status":"unhealthy","problems":[...]}` when the store does
/// not take a read and a write within a couple of seconds (`InteractionStore::ping`) or the
/// `health_extra` hook reports problems.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy", body = crate::api::openapi::Health),
        (status = 503, description = "Unhealthy: the problems", body = crate::api::openapi::Health),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")),
)]
pub(super) async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    if let Err(e) = super::metrics::refresh(st.store.as_ref()).await {
        tracing::warn!(error = %e, "refreshing store gauges");
    }
    let queues: Vec<String> = (st.queues)().into_iter().map(|(q, _)| q).collect();
    if let Err(e) = super::metrics::refresh_overdue(st.store.as_ref(), &queues).await {
        tracing::warn!(error = %e, "refreshing the overdue callbacks gauge");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use crate::api::{AppState, router};
    use crate::store::SqliteStore;

    async fn healthz(state: &AppState) -> (StatusCode, serde_json::Value) {
        let req = Request::get("/healthz").body(Body::empty()).unwrap();
        let resp = router(state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// A store that answers reads but takes no write (another process holds the write lock;
    /// a full or read-only disk alike) is unhealthy: `/healthz` writes too (it used to read
    /// only, and said ok while every call and callback was failing).
    #[tokio::test]
    async fn healthz_fails_when_the_store_takes_no_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let store = Arc::new(
            SqliteStore::open(&format!("sqlite://{}", path.display()))
                .await
                .unwrap(),
        );
        let state = AppState::new(store, Vec::new(), crate::metrics::install());
        assert_eq!(healthz(&state).await.0, StatusCode::OK);
        let lock = rusqlite::Connection::open(&path).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (status, v) = healthz(&state).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(
            v["problems"][0].as_str().unwrap().starts_with("store: "),
            "{v}"
        );
        drop(lock);
        assert_eq!(healthz(&state).await.0, StatusCode::OK);
    }
}
