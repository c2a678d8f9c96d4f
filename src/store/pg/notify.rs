//! The event pump: every instance's events reach this instance's subscribers once each, in
//! id order, whatever the connections do.
//!
//! Its inputs: this instance's own commits (straight from the writer, with their events), a
//! `LISTEN` connection (`NOTIFY hammond_events '<newest id>'` from every instance's commits;
//! `NOTIFY hammond_presence '<agent>'` from presence changes), and a slow tick. It keeps the
//! newest id it has broadcast; whatever is behind that (a remote commit, a notification lost
//! with its connection, events committed while it reconnected) is read from the table, a page
//! at a time, before anything newer goes out. The notifications carry ids only: the table is
//! the truth, and a pump that missed notifications loses nothing but latency (the tick).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::queue::agent::Presence;
use crate::store::{Error, StoredEvent};

/// The channel each commit notifies with its newest event id.
pub(super) const EVENTS_CHANNEL: &str = "hammond_events";
/// The channel a presence change notifies with the agent's id.
pub(super) const PRESENCE_CHANNEL: &str = "hammond_presence";

/// How often the pump looks at the table without being told: the bound on the delay of an
/// event whose notification was lost.
const TICK: Duration = Duration::from_secs(1);
/// The pause before listening again after the connection failed.
const RELISTEN: Duration = Duration::from_millis(500);
/// How long a notification waits for this instance's writer to hand over the same events
/// (its own commits are notified too, often before the writer has its answer): most
/// notifications are then answered without a read.
const OWN_COMMIT_WAIT: Duration = Duration::from_millis(5);
/// Events read per query while catching up.
const PAGE: u32 = 500;

/// What the listener heard.
#[derive(Debug)]
enum Heard {
    /// Events were committed up to this id (somewhere).
    Events(i64),
    /// An agent's presence changed.
    Presence(String),
    /// The connection was lost (and is being re-established): what it would have carried
    /// must be read from the tables.
    Lost,
}

pub(super) struct Pump {
    pool: PgPool,
    events: broadcast::Sender<Arc<StoredEvent>>,
    presence: broadcast::Sender<(String, Presence)>,
    /// The newest event id broadcast (or the newest at start: earlier ones are history).
    last: i64,
}

impl Pump {
    pub(super) fn new(
        pool: PgPool,
        events: broadcast::Sender<Arc<StoredEvent>>,
        presence: broadcast::Sender<(String, Presence)>,
        last: i64,
    ) -> Self {
        Self {
            pool,
            events,
            presence,
            last,
        }
    }

    /// Starts listening (before returning: nothing committed after `open` returns is missed)
    /// and pumping, until `stop`.
    pub(super) async fn start(
        mut self,
        opts: PgConnectOptions,
        mut from_writer: mpsc::UnboundedReceiver<Vec<Arc<StoredEvent>>>,
        stop: CancellationToken,
    ) -> Result<(), Error> {
        // A pool of one connection of its own, which the listener holds (and replaces when
        // it is lost).
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(opts);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener
            .listen_all([EVENTS_CHANNEL, PRESENCE_CHANNEL])
            .await?;
        let (heard, mut hearing) = mpsc::unbounded_channel();
        tokio::spawn(listen(listener, heard, stop.clone()));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // A notification of events not yet sent: read them at this time, unless this
            // instance's writer (whose own commits notify too) has handed them over by then.
            let mut read_at: Option<(tokio::time::Instant, i64)> = None;
            loop {
                let due = read_at.map(|(at, _)| at);
                tokio::select! {
                    Some(mine) = from_writer.recv() => self.local(mine).await,
                    Some(h) = hearing.recv() => match h {
                        Heard::Events(upto) => {
                            if upto > self.last {
                                let at = (crate::clock::now() + OWN_COMMIT_WAIT).into();
                                let upto = read_at.map_or(upto, |(_, u)| u.max(upto));
                                read_at = Some((due.unwrap_or(at), upto));
                            }
                        }
                        Heard::Presence(agent) => self.presence_of(&agent).await,
                        Heard::Lost => {
                            self.catch_up().await;
                            self.all_presence().await;
                        }
                    },
                    () = sleep_until(due) => {
                        if read_at.take().is_some_and(|(_, upto)| upto > self.last) {
                            self.catch_up().await;
                        }
                    }
                    _ = tick.tick() => self.catch_up().await,
                    () = stop.cancelled() => break,
                }
            }
            pool.close().await;
        });
        Ok(())
    }

    /// This instance's commit: broadcast at once when it follows on from the last event sent;
    /// otherwise what came between (other instances' commits) is read first.
    async fn local(&mut self, mine: Vec<Arc<StoredEvent>>) {
        let Some(first) = mine.first().map(|e| e.id) else {
            return;
        };
        if first > self.last + 1 {
            self.catch_up().await;
        }
        for e in mine {
            if e.id == self.last + 1 {
                self.last = e.id;
                let _ = self.events.send(e);
            } else if e.id > self.last + 1 {
                // The gap could not be read (the database went away just now): what is
                // missing is read later, and this one with it, in order.
                break;
            }
        }
    }

    /// Broadcasts every event after the last one sent, from the table, in id order.
    async fn catch_up(&mut self) {
        loop {
            let page = match super::events_since(&self.pool, self.last, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    debug!(error = %e, after = self.last, "events not read; trying again later");
                    return;
                }
            };
            let full = page.len() == PAGE as usize;
            for e in page {
                self.last = e.id;
                let _ = self.events.send(Arc::new(e));
            }
            if !full {
                return;
            }
        }
    }

    async fn presence_of(&mut self, agent: &str) {
        let status: Result<Option<String>, sqlx::Error> =
            sqlx::query_scalar("SELECT status FROM agent_presence WHERE agent = $1")
                .bind(agent)
                .fetch_optional(&self.pool)
                .await;
        match status {
            Ok(Some(s)) => {
                if let Some(p) = super::parse_presence(&s) {
                    let _ = self.presence.send((agent.to_owned(), p));
                }
            }
            Ok(None) => {}
            Err(e) => debug!(error = %e, agent, "presence not read"),
        }
    }

    async fn all_presence(&mut self) {
        match super::presences(&self.pool).await {
            Ok(all) => {
                for p in all {
                    let _ = self.presence.send(p);
                }
            }
            Err(e) => debug!(error = %e, "presence not read"),
        }
    }
}

/// Sleeps until `at`; pends for ever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Forwards notifications until `stop`; a lost connection is reported (sqlx re-establishes
/// it and listens again before saying so).
async fn listen(
    mut listener: PgListener,
    heard: mpsc::UnboundedSender<Heard>,
    stop: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            n = listener.try_recv() => n,
            () = stop.cancelled() => return,
        };
        let h = match next {
            Ok(Some(n)) if n.channel() == EVENTS_CHANNEL => match n.payload().parse() {
                Ok(id) => Heard::Events(id),
                Err(_) => Heard::Lost,
            },
            Ok(Some(n)) => Heard::Presence(n.payload().to_owned()),
            Ok(None) => {
                warn!("the store's notification connection was lost; reconnected, catching up");
                Heard::Lost
            }
            Err(e) => {
                warn!(error = %e, "the store's notification connection failed; catching up");
                let _ = heard.send(Heard::Lost);
                tokio::select! {
                    () = tokio::time::sleep(RELISTEN) => {}
                    () = stop.cancelled() => return,
                }
                continue;
            }
        };
        if heard.send(h).is_err() {
            return;
        }
    }
}
