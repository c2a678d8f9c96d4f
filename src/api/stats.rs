//! Reports: `GET /api/v1/stats?queue=&from=&to=&bucket=` (JSON figures per queue and bucket)
//! and `GET /api/v1/reports/interactions.csv?queue=&from=&to=` (one line per interaction with
//! its outcome, for spreadsheets and BI tools). Both read the store's report rows a page at a
//! time and compute with [`crate::queue::stats`], so they agree with each other and with the
//! wallboard.
//!
//! `from` and `to` are RFC 3339 times (default: since midnight, system time zone, until now);
//! `bucket` a duration (`15m` default, 1 minute at least, 5,000 buckets at most). An agent
//! sees its own queues, a supervisor every queue.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{ApiError, AppState, AuthAgent};
use crate::queue::agent::Agent;
use crate::queue::stats::{Outcome, Stats};
use crate::store::{InteractionStore, MAX_REPORT_PAGE, ReportQuery, ReportRow};

/// Most buckets one stats request may ask for.
const MAX_BUCKETS: u64 = 5_000;
/// The default bucket: a quarter of an hour, as wallboards and interval reports use.
const DEFAULT_BUCKET: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsParams {
    queue: Option<String>,
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
}

/// `GET /api/v1/stats`: the window's figures per queue, in buckets, and in total.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "reports",
    params(
        ("queue" = Option<String>, Query, description = "One queue (default: every queue the caller sees)"),
        ("from" = Option<String>, Query, description = "RFC 3339 (default: midnight, system time zone)"),
        ("to" = Option<String>, Query, description = "RFC 3339 (default: now)"),
        ("bucket" = Option<String>, Query, description = "Bucket length, e.g. `15m` (default), `1h`"),
    ),
    responses(
        (status = 200, description = "Figures by arrival, per queue and bucket", body = crate::queue::stats::Stats),
        (status = 403, description = "A queue that is not the caller's", body = crate::api::openapi::ErrorBody), (status = 422, description = "A bad window or bucket", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn stats(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    params: Result<Query<StatsParams>, QueryRejection>,
) -> Result<Json<Stats>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    let (from, to) = window(p.from.as_deref(), p.to.as_deref())?;
    let bucket = match p.bucket.as_deref() {
        None => DEFAULT_BUCKET,
        Some(b) => crate::config::parse_duration(b)
            .map_err(|e| ApiError::Unprocessable(format!("invalid bucket: {e}")))?,
    };
    if bucket < Duration::from_secs(60) {
        return Err(ApiError::Unprocessable("bucket must be at least 1m".into()));
    }
    if crate::queue::stats::buckets_in(from, to, bucket) > MAX_BUCKETS {
        return Err(ApiError::Unprocessable(format!(
            "more than {MAX_BUCKETS} buckets: ask for a shorter window or a longer bucket"
        )));
    }
    let queues = visible(&st, &agent, p.queue)?;
    Ok(Json(
        compute(st.store.as_ref(), from, to, bucket, &queues).await?,
    ))
}

/// The figures of `queues` (name, target) over `[from, to)`, reading every report page.
pub(crate) async fn compute(
    store: &dyn InteractionStore,
    from: Timestamp,
    to: Timestamp,
    bucket: Duration,
    queues: &[(String, Duration)],
) -> Result<Stats, ApiError> {
    let mut stats = Stats::new(from, to, bucket, queues);
    let names: Vec<String> = queues.iter().map(|(q, _)| q.clone()).collect();
    each_page(store, names, from, to, |page| {
        for r in page {
            stats.add(&outcome(r));
        }
    })
    .await?;
    Ok(stats)
}

fn outcome(r: &ReportRow) -> Outcome<'_> {
    Outcome {
        interaction: &r.interaction,
        bridged_at: r.bridged_at,
        closed_at: r.closed_at,
    }
}

/// Calls `f` with each page of the report, oldest first.
async fn each_page(
    store: &dyn InteractionStore,
    queues: Vec<String>,
    from: Timestamp,
    to: Timestamp,
    mut f: impl FnMut(&[ReportRow]),
) -> Result<(), ApiError> {
    let mut q = ReportQuery {
        queues,
        from,
        to,
        after: None,
        limit: MAX_REPORT_PAGE,
    };
    loop {
        let page = store.report(q.clone()).await?;
        f(&page);
        match page.last() {
            Some(last) if page.len() >= MAX_REPORT_PAGE as usize => {
                q.after = Some((last.interaction.created_at, last.interaction.id));
            }
            _ => return Ok(()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CsvParams {
    queue: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The CSV export's header line.
pub(crate) const CSV_HEADER: &str = "id,queue,sub_type,status,outcome,customer_number,\
callback_number,callback_attempts,created_at,bridged_at,closed_at,wait_secs,assigned_agent,\
close_reason,disposition\r\n";

/// `GET /api/v1/reports/interactions.csv`: every interaction that arrived in the window, one
/// line each with its outcome (RFC 4180; times RFC 3339 UTC; `wait_secs` to the first bridge,
/// or to the close when never bridged). Streamed a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/reports/interactions.csv",
    tag = "reports",
    params(
        ("queue" = Option<String>, Query, description = "One queue (default: every queue the caller sees)"),
        ("from" = Option<String>, Query, description = "RFC 3339 (default: midnight, system time zone)"),
        ("to" = Option<String>, Query, description = "RFC 3339 (default: now)"),
    ),
    responses(
        (status = 200, description = "One line per interaction with its outcome (RFC 4180)", content_type = "text/csv"),
        (status = 403, description = "A queue that is not the caller's", body = crate::api::openapi::ErrorBody), (status = 422, description = "A bad window", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn csv(
    State(st): State<AppState>,
    AuthAgent(agent): AuthAgent,
    params: Result<Query<CsvParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::Unprocessable(e.body_text()))?;
    let (from, to) = window(p.from.as_deref(), p.to.as_deref())?;
    let names: Vec<String> = visible(&st, &agent, p.queue)?
        .into_iter()
        .map(|(q, _)| q)
        .collect();
    // The first page here, so a failing store answers with an error status, not a cut file.
    let mut q = ReportQuery {
        queues: names,
        from,
        to,
        after: None,
        limit: MAX_REPORT_PAGE,
    };
    let first = st.store.report(q.clone()).await?;
    let (tx, rx) = mpsc::channel::<Result<String, std::io::Error>>(2);
    let store = st.store.clone();
    tokio::spawn(async move {
        let mut page = first;
        let mut text = String::from(CSV_HEADER);
        loop {
            for r in &page {
                csv_line(&mut text, r);
            }
            if tx.send(Ok(std::mem::take(&mut text))).await.is_err() {
                return;
            }
            match page.last() {
                Some(last) if page.len() >= MAX_REPORT_PAGE as usize => {
                    q.after = Some((last.interaction.created_at, last.interaction.id));
                }
                _ => return,
            }
            page = match store.report(q.clone()).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "CSV export broke off");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"interactions.csv\"",
            ),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// One CSV line for `r`.
pub(crate) fn csv_line(out: &mut String, r: &ReportRow) {
    let i = &r.interaction;
    let o = outcome(r);
    let wait = r.bridged_at.or(r.closed_at).map(|end| {
        Duration::try_from(end.duration_since(i.created_at))
            .unwrap_or_default()
            .as_secs()
    });
    let time = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    let cb = i.callback.as_ref();
    let fields = [
        i.id.to_string(),
        i.queue.clone(),
        i.sub_type.as_str().to_owned(),
        i.status.as_str().to_owned(),
        o.label().to_owned(),
        i.customer_number.clone(),
        cb.map(|c| c.number.clone()).unwrap_or_default(),
        cb.map(|c| c.attempts.to_string()).unwrap_or_default(),
        i.created_at.to_string(),
        time(r.bridged_at),
        time(r.closed_at),
        wait.map(|w| w.to_string()).unwrap_or_default(),
        i.assigned_agent.clone().unwrap_or_default(),
        i.close_reason
            .map(crate::interaction::CloseReason::as_str)
            .unwrap_or_default()
            .to_owned(),
        i.disposition.clone().unwrap_or_default(),
    ];
    for (k, f) in fields.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        push_field(out, f);
    }
    out.push_str("\r\n");
}

/// One RFC 4180 field. A value a spreadsheet would run as a formula (`=`, `@`, `+` or `-`
/// first, other than a plain number such as `+15551234567`) gets a leading `'`: dispositions
/// are free text an agent typed.
fn push_field(out: &mut String, f: &str) {
    let number = |s: &str| {
        let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let risky = f.starts_with(['=', '@', '+', '-', '\t', '\r']) && !number(f);
    let quote = risky || f.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if risky {
        out.push('\'');
    }
    for c in f.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

/// `[from, to)` from the query: RFC 3339 times, by default since midnight (system time zone)
/// until now.
pub(crate) fn window(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Timestamp, Timestamp), ApiError> {
    let parse = |name: &str, s: &str| {
        s.parse::<Timestamp>().map_err(|e| {
            ApiError::Unprocessable(format!("invalid {name} (RFC 3339 expected): {e}"))
        })
    };
    let now = crate::clock::wall();
    let to = to.map(|s| parse("to", s)).transpose()?.unwrap_or(now);
    let from = match from {
        Some(s) => parse("from", s)?,
        None => midnight(now),
    };
    if from >= to {
        return Err(ApiError::Unprocessable("from must be before to".into()));
    }
    Ok((from, to))
}

/// The start of `now`'s day in the system time zone.
pub(crate) fn midnight(now: Timestamp) -> Timestamp {
    now.to_zoned_datetime(jiff::tz::TimeZone::system())
        .start_of_day()
        .map_or(now, |z| z.timestamp())
}

/// The queues (name, service-level target) `agent` may report on: `queue` if given (403 if
/// not the agent's), else all of them.
pub(crate) fn visible(
    st: &AppState,
    agent: &Agent,
    queue: Option<String>,
) -> Result<Vec<(String, Duration)>, ApiError> {
    let mut known = (st.queues)();
    // An agent's configured queue that no queue file defines still has its history.
    for q in &agent.queues {
        if !known.iter().any(|(k, _)| k == q) {
            known.push((q.clone(), crate::api::DEFAULT_SERVICE_LEVEL));
        }
    }
    known.retain(|(q, _)| agent.sees(q));
    match queue {
        None => Ok(known),
        Some(q) if agent.sees(&q) => Ok(vec![(
            q.clone(),
            known
                .iter()
                .find(|(k, _)| *k == q)
                .map_or(crate::api::DEFAULT_SERVICE_LEVEL, |(_, t)| *t),
        )]),
        Some(q) => Err(ApiError::Forbidden(format!(
            "queue {q} is not one of yours"
        ))),
    }
}

#[cfg(test)]
mod tests;
