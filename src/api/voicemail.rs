//! `GET /api/v1/interactions/{id}/voicemail`: a caller's voicemail, as `audio/wav`, for the
//! agents of its queue and supervisors (the Home List's player fetches it with the bearer
//! token and plays it from a Blob URL).
//!
//! The file is the one the store names for the interaction (`voicemail_path`, written by the
//! call's store worker once the recording was synced), never a path from the request. A single
//! `Range: bytes=…` is honoured (206), so a player may seek without the whole message; several
//! ranges get the whole file (RFC 9110 §14.2: a server may ignore Range).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::interactions::{check_queue, path_id};
use super::range::{Unsatisfiable, byte_range};
use super::{ApiError, AppState, AuthAgent};
use crate::interaction::InteractionId;

/// `GET /api/v1/interactions/{id}/voicemail`: the recording, whole (200) or the one byte
/// range asked for (206).
#[utoipa::path(
    get,
    path = "/api/v1/interactions/{id}/voicemail",
    tag = "interactions",
    params(
        ("id" = i64, Path, description = "The interaction"),
        ("Range" = Option<String>, Header, description = "One byte range (`bytes=0-1023`, `bytes=1024-`, `bytes=-512`)"),
    ),
    responses(
        (status = 200, description = "The recording (`audio/wav`, 8 kHz 16-bit mono)", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The byte range asked for, with `Content-Range`", content_type = "audio/wav", body = Vec<u8>),
        (status = 403, description = "In a queue that is not the caller's", body = crate::api::openapi::ErrorBody),
        (status = 404, description = "No such interaction, or it has no voicemail (or its file is gone)", body = crate::api::openapi::ErrorBody),
        (status = 416, description = "The range lies past the end of the recording", body = crate::api::openapi::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn audio(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    id: Result<Path<InteractionId>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let i = st.store.get(id).await?.listed.interaction;
    check_queue(&agent, &i)?;
    let Some(path) = i.voicemail_path else {
        return Err(ApiError::NotFound(format!(
            "interaction {id} has no voicemail"
        )));
    };
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        // Deleted by an operator (or by a retention job): nothing to play.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!(
                "the voicemail of interaction {id} is no longer on disk"
            )));
        }
        Err(source) => return Err(ApiError::Recording { id, source }),
    };
    let len = bytes.len() as u64;
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| byte_range(r, len));
    let (status, body, range) = match asked {
        Some(Ok(Some((first, last)))) => {
            let body = bytes
                .get(
                    usize::try_from(first).unwrap_or(usize::MAX)
                        ..=usize::try_from(last).unwrap_or(usize::MAX),
                )
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            (
                StatusCode::PARTIAL_CONTENT,
                body,
                Some(format!("bytes {first}-{last}/{len}")),
            )
        }
        Some(Err(Unsatisfiable)) => return Err(ApiError::RangeNotSatisfiable { len }),
        Some(Ok(None)) | None => (StatusCode::OK, bytes, None),
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // A caller's voice: kept by no cache on the way.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(r) = range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        h.insert(header::CONTENT_RANGE, r);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests;
