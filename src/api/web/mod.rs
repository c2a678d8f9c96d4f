//! The agents' web page: the Home List and the interaction workspace; and the supervisors'
//! wallboard at `/supervisor` (tiles, agents and charts drawn as plain SVG). Plain HTML, CSS and
//! JavaScript with no build step, embedded in the binary with `include_str!` so nothing is read
//! from disk or fetched from the internet at run time. The page talks only to the API under
//! `/api/v1` (bearer token from `sessionStorage`; the SSE stream takes `?access_token=`).

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::ApiError;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const SUPERVISOR_HTML: &str = include_str!("supervisor.html");
const SUPERVISOR_JS: &str = include_str!("supervisor.js");
const SUPERVISOR_CSS: &str = include_str!("supervisor.css");
const PHONE_JS: &str = include_str!("phone.js");

/// Same-origin only: no inline script, no third-party anything. Media from `blob:` only: the
/// voicemail player plays what the page fetched with its bearer token (an `<audio src>` of
/// the API route could not send the header).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; media-src blob:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// `GET /`: the page.
pub(super) async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /supervisor`: the wallboard (signs in with a supervisor's token).
pub(super) async fn supervisor() -> Response {
    page("text/html; charset=utf-8", SUPERVISOR_HTML)
}

/// `GET /assets/{file}`: the page's script and style sheet.
pub(super) async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    match file.as_str() {
        "app.js" => Ok(page("text/javascript; charset=utf-8", APP_JS)),
        "app.css" => Ok(page("text/css; charset=utf-8", APP_CSS)),
        "supervisor.js" => Ok(page("text/javascript; charset=utf-8", SUPERVISOR_JS)),
        "supervisor.css" => Ok(page("text/css; charset=utf-8", SUPERVISOR_CSS)),
        "phone.js" => Ok(page("text/javascript; charset=utf-8", PHONE_JS)),
        _ => Err(ApiError::NotFound(format!("no asset {file}"))),
    }
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            // Small and embedded: revalidating costs nothing and an upgrade shows at once.
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}
