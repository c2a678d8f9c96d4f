//! `GET /api/v1/events`: Server-Sent Events of interaction changes (`id:` = event-log id,
//! `event:` = the change's kind, `data:` = `{"interaction", "feed"}`) in the agent's queues, and
//! presence changes (`event: agent_status`, no id). With `Last-Event-ID` the stream first
//! replays the log after that id, then continues live: it subscribes before reading the log and
//! drops live events already replayed, so nothing is missed or repeated. A client that falls
//! too far behind the live channel is disconnected, and resumes with `Last-Event-ID`. Every
//! stream ends when Hammond shuts down (`AppState::shutdown`), so it cannot hold up the HTTP
//! server's graceful shutdown.
//!
//! With several instances on one PostgreSQL store the live events are every instance's, in one
//! global id order (the store's pump reads other instances' events from the log), so a client
//! may resume with `Last-Event-ID` on any instance.
//!
//! The replay is bounded: it is streamed a page at a time as the client reads it (never the
//! whole log in memory), and only for a client at most [`REPLAY_MAX`] events behind whose
//! events the retention has not pruned. Any other client (further behind, behind the pruned
//! log, or ahead of it: another database) gets one `reset` event instead (`id:` = the newest
//! event, `data:` = `{"reason", "last_event_id"}`): reload the Home List, then live events
//! follow.
//!
//! Browsers' `EventSource` cannot send headers, so this route (and only this one) also takes
//! the token as `?access_token=`: [`StreamAgent`] checks it on the same path as the header
//! (constant-time compare, lock-out, strikes).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::{ApiError, AppState, StreamAgent};
use crate::store::{InteractionStore, StoredEvent};

/// Events read from the log per query while replaying.
const REPLAY_PAGE: u32 = 500;
/// Most events a resuming client may be behind and still be replayed (about 5 MB of JSON).
pub(super) const REPLAY_MAX: i64 = 5_000;
/// Keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(
        ("access_token" = Option<String>, Query, description = "The token, for `EventSource` (which cannot send headers)"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `id:` event id, `event:` kind, `data:` `{\"interaction\", \"feed\"}`; `agent_status` and `reset` events", content_type = "text/event-stream"),
        (status = 422, description = "A bad Last-Event-ID", body = crate::api::openapi::ErrorBody), (status = 401, description = "No valid token", body = crate::api::openapi::ErrorBody), (status = 429, description = "Locked out after bad tokens", body = crate::api::openapi::ErrorBody), (status = 503, description = "The store cannot serve now", body = crate::api::openapi::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn stream(
    State(st): State<AppState>,
    StreamAgent(agent): StreamAgent,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::Unprocessable("Last-Event-ID must be an event id".into())
                })?,
        ),
    };
    // Subscribe first: anything committed from here on is in `live`.
    let live = st.store.subscribe();
    let presence = st.agents.subscribe();
    let resume = match last {
        Some(last) => Resume::plan(last, st.store.event_bounds().await?),
        None => Resume::Live { after: 0 },
    };
    let floor = resume.floor();
    // A supervisor hears every queue's changes (the wallboard).
    let all = agent.is_supervisor();
    let queues: Arc<[String]> = agent.queues.clone().into();
    let mine = queues.clone();
    let head: Box<dyn Stream<Item = Item> + Send + Unpin> = match resume {
        Resume::Live { .. } => Box::new(tokio_stream::empty()),
        Resume::Replay { after, upto } => {
            Box::new(replay(st.store.clone(), after, upto, queues, all))
        }
        Resume::Reset { newest, reason } => {
            Box::new(tokio_stream::once(Item::Reset { newest, reason }))
        }
    };
    let live = BroadcastStream::new(live)
        // Lagged: the client missed events; end the stream so it resumes from the log.
        .take_while(Result::is_ok)
        .filter_map(Result::ok)
        .filter(move |e| e.id > floor && (all || mine.contains(&e.queue)))
        .map(Item::Change);
    let changes = head.chain(live).map_while(|item| match item {
        Item::Change(e) => Some(Ok(to_sse(&e))),
        Item::Reset { newest, reason } => Some(Ok(reset(newest, reason))),
        // The replay broke off (a store error): end the stream, so the client resumes from
        // what it got rather than missing the rest.
        Item::Broken => None,
    });
    let agent_queues = agent.queues;
    let presence = BroadcastStream::new(presence)
        .filter_map(Result::ok)
        .filter_map(move |p| {
            // Only colleagues sharing a queue matter to this agent.
            (all || p.queues.iter().any(|q| agent_queues.contains(q))).then(|| {
                Ok(Event::default()
                    .event("agent_status")
                    .data(serde_json::to_string(&p).unwrap_or_default()))
            })
        });
    // The stream ends when the changes end (lagged, or a broken replay): a merge alone would
    // go on with presence changes, and the client would never resume its missed events.
    let end = tokio_stream::once(None);
    let merged = changes
        .map(Some)
        .chain(end)
        .merge(presence.map(Some))
        .map_while(|e| e);
    let events = Until::new(merged, st.shutdown.clone());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// A stream that ends when `stop` is cancelled (shutdown), whatever its inner stream is doing:
/// an open event stream would otherwise hold the HTTP server's graceful shutdown for ever.
pub(super) struct Until<S> {
    inner: Pin<Box<S>>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S> Until<S> {
    pub(super) fn new(inner: S, stop: CancellationToken) -> Self {
        Self {
            inner: Box::pin(inner),
            stop: Box::pin(stop.cancelled_owned()),
        }
    }
}

impl<S: Stream> Stream for Until<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        self.inner.as_mut().poll_next(cx)
    }
}

/// What a (re)connecting client gets before the live events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// Nothing to replay: live events with an id above `after`.
    Live { after: i64 },
    /// The log's events after `after`, up to `upto` (the newest when the stream began), then
    /// live events above `upto`.
    Replay { after: i64, upto: i64 },
    /// A `reset` event (the client reloads), then live events above `newest`.
    Reset { newest: i64, reason: &'static str },
}

impl Resume {
    /// For a client that saw every event up to `last`, given the log's (oldest, newest) ids.
    fn plan(last: i64, bounds: Option<(i64, i64)>) -> Self {
        let Some((oldest, newest)) = bounds else {
            return if last > 0 {
                // An empty log has never handed out `last`: another database.
                Self::Reset {
                    newest: 0,
                    reason: "unknown",
                }
            } else {
                Self::Live { after: 0 }
            };
        };
        if last > newest {
            Self::Reset {
                newest,
                reason: "unknown",
            }
        } else if last == newest {
            Self::Live { after: last }
        } else if last.saturating_add(1) < oldest {
            Self::Reset {
                newest,
                reason: "pruned",
            }
        } else if newest - last > REPLAY_MAX {
            Self::Reset {
                newest,
                reason: "too_far_behind",
            }
        } else {
            Self::Replay {
                after: last,
                upto: newest,
            }
        }
    }

    /// Live events at or below this id were replayed, or are covered by the reset.
    fn floor(self) -> i64 {
        match self {
            Self::Live { after } => after,
            Self::Replay { upto, .. } => upto,
            Self::Reset { newest, .. } => newest,
        }
    }
}

/// One step of the change stream.
enum Item {
    Change(Arc<StoredEvent>),
    Reset { newest: i64, reason: &'static str },
    Broken,
}

/// The log's events of `queues` after `after` up to `upto`, read a page at a time by a task
/// that stays at most a page ahead of the client (the channel's room): a slow or stalled
/// client holds two pages at most, whatever the log.
fn replay(
    store: Arc<dyn InteractionStore>,
    mut after: i64,
    upto: i64,
    queues: Arc<[String]>,
    all: bool,
) -> ReceiverStream<Item> {
    let (tx, rx) = mpsc::channel(REPLAY_PAGE as usize);
    tokio::spawn(async move {
        while after < upto {
            let page = match store.events_since(after, REPLAY_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, after, "SSE replay broke off");
                    let _ = tx.send(Item::Broken).await;
                    return;
                }
            };
            let Some(last) = page.last().map(|e| e.id) else {
                return;
            };
            after = last;
            for e in page {
                if e.id > upto {
                    return;
                }
                if (all || queues.contains(&e.queue))
                    && tx.send(Item::Change(Arc::new(e))).await.is_err()
                {
                    // The client left.
                    return;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// The `reset` event: `id:` = `newest`, so the client's next resume starts there.
fn reset(newest: i64, reason: &'static str) -> Event {
    let data = serde_json::json!({ "reason": reason, "last_event_id": newest });
    Event::default()
        .id(newest.to_string())
        .event("reset")
        .data(data.to_string())
}

fn to_sse(e: &StoredEvent) -> Event {
    Event::default()
        .id(e.id.to_string())
        .event(&e.kind)
        .data(&e.data)
}

#[cfg(test)]
mod tests;
