//! `GET /api/v1/events`: Server-Sent Events of interaction changes (`id:` = event-log id,
//! `event:` = the change's kind, `data:` = `{"interaction", "feed"}`) in the agent's queues, and
//! presence changes (`event: agent_status`, no id). With `Last-Event-ID` the stream first
//! replays the log after that id, then continues live: it subscribes before reading the log and
//! drops live events already replayed, so nothing is missed or repeated. A client that falls
//! too far behind the live channel is disconnected, and resumes with `Last-Event-ID`. Every
//! stream ends when Hammond shuts down (`AppState::shutdown`), so it cannot hold up the HTTP
//! server's graceful shutdown.
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
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::{ApiError, AppState, StreamAgent};
use crate::store::StoredEvent;

/// Events read from the log per query while replaying.
const REPLAY_PAGE: u32 = 500;
/// Keep-alive comment interval.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

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
    let mut replay = Vec::new();
    if let Some(mut after) = last {
        loop {
            let page = st.store.events_since(after, REPLAY_PAGE).await?;
            let full = page.len() == REPLAY_PAGE as usize;
            if let Some(e) = page.last() {
                after = e.id;
            }
            replay.extend(page);
            if !full {
                break;
            }
        }
    }
    let floor = replay.last().map(|e| e.id).or(last).unwrap_or(0);
    let queues = agent.queues.clone();
    let mine = move |e: &Arc<StoredEvent>| queues.contains(&e.queue);
    let mine2 = mine.clone();
    let replayed = tokio_stream::iter(replay.into_iter().map(Arc::new)).filter(mine);
    let live = BroadcastStream::new(live)
        // Lagged: the client missed events; end the stream so it resumes from the log.
        .take_while(Result::is_ok)
        .filter_map(Result::ok)
        .filter(move |e| e.id > floor && mine2(e));
    let changes = replayed.chain(live).map(|e| Ok(to_sse(&e)));
    let agent_queues = agent.queues;
    let presence = BroadcastStream::new(presence)
        .filter_map(Result::ok)
        .filter_map(move |p| {
            // Only colleagues sharing a queue matter to this agent.
            p.queues.iter().any(|q| agent_queues.contains(q)).then(|| {
                Ok(Event::default()
                    .event("agent_status")
                    .data(serde_json::to_string(&p).unwrap_or_default()))
            })
        });
    let events = Until::new(changes.merge(presence), st.shutdown.clone());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// A stream that ends when `stop` is cancelled (shutdown), whatever its inner stream is doing:
/// an open event stream would otherwise hold the HTTP server's graceful shutdown for ever.
struct Until<S> {
    inner: Pin<Box<S>>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<S> Until<S> {
    fn new(inner: S, stop: CancellationToken) -> Self {
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

fn to_sse(e: &StoredEvent) -> Event {
    Event::default()
        .id(e.id.to_string())
        .event(&e.kind)
        .data(&e.data)
}
