//! Queue statistics (PURE): the figures of `GET /api/v1/stats`, the wallboard's charts and its
//! service-level tile, computed from the store's report rows ([`crate::store::ReportRow`]) in
//! one place so that the JSON, the CSV export and the charts cannot disagree.
//!
//! Figures are by arrival: an interaction counts in the bucket it arrived in, with its outcome
//! as it stands (an interval report by arrival). Its wait is from arrival to the first bridge
//! with an agent (a callback's wait includes the time until it was called back), or to its
//! close when it was never bridged.
//!
//! Must not: read a clock or the store; `now` and the rows come in.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::interaction::{CloseReason, Interaction, Status, SubType};

/// Bounds (seconds, exclusive) of the wait-time distribution's bins; a last bin holds the rest.
pub const WAIT_BINS: [u64; 6] = [20, 60, 120, 300, 900, 3600];

/// One interaction as the figures need it (the store's report row, without the store types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<'a> {
    /// The interaction as it stands.
    pub interaction: &'a Interaction,
    /// First bridged with an agent.
    pub bridged_at: Option<Timestamp>,
    /// Closed.
    pub closed_at: Option<Timestamp>,
}

impl Outcome<'_> {
    /// From arrival to the first bridge, when there was one.
    pub fn answer_wait(&self) -> Option<Duration> {
        self.bridged_at
            .map(|b| since(self.interaction.created_at, b))
    }

    /// How it ended (or stands), as the CSV export spells it: `answered`, `called_back`,
    /// `abandoned`, `callback_failed`, a close reason, or `waiting` / `callback_pending` /
    /// `in_progress` while it is not settled.
    pub fn label(&self) -> &'static str {
        let i = self.interaction;
        match (i.status, self.bridged_at.is_some(), i.sub_type) {
            (_, true, SubType::Callback) => "called_back",
            (_, true, _) => "answered",
            (Status::Closed, false, _) => i.close_reason.map_or("closed", CloseReason::as_str),
            (Status::Open, false, SubType::Callback) => "callback_pending",
            (Status::Open, false, SubType::Voicemail) => "voicemail_pending",
            (Status::Open | Status::Bot, false, _) => "waiting",
            (Status::Connected, false, _) => "in_progress",
        }
    }
}

fn since(a: Timestamp, b: Timestamp) -> Duration {
    Duration::try_from(b.duration_since(a)).unwrap_or(Duration::ZERO)
}

/// The figures of a set of interactions (a bucket, a queue's window, everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// Arrivals (every interaction, whatever became of it).
    pub offered: u64,
    /// Bridged with an agent (live or called back).
    pub bridged: u64,
    /// The caller hung up before reaching an agent.
    pub abandoned: u64,
    /// Callers who booked a callback.
    pub callbacks_booked: u64,
    /// Callbacks bridged with an agent.
    pub callbacks_completed: u64,
    /// Callbacks closed after their queue's maximum attempts.
    pub callbacks_failed: u64,
    /// Callbacks still waiting to be made.
    pub callbacks_open: u64,
    /// Bridged within the queue's service-level target.
    pub within_target: u64,
    /// `within_target` over the settled interactions (bridged, abandoned, failed or
    /// expired); `None` while none is settled.
    pub service_level: Option<f64>,
    /// Mean wait of the bridged ones, seconds.
    pub average_wait_secs: Option<f64>,
    /// Longest wait of a bridged one, seconds.
    pub longest_wait_secs: Option<u64>,
    /// Bridged interactions by wait in whole seconds: `wait_bins[k]` counts waits below
    /// [`WAIT_BINS`]`[k]` and at or above the previous bound; the last entry counts the rest.
    pub wait_bins: [u64; WAIT_BINS.len() + 1],
    #[serde(skip)]
    #[schema(ignore)]
    settled: u64,
    #[serde(skip)]
    #[schema(ignore)]
    wait_total: Duration,
}

impl Figures {
    /// Counts `o` in, against the service-level `target`.
    pub fn add(&mut self, o: &Outcome<'_>, target: Duration) {
        let i = o.interaction;
        self.offered += 1;
        let callback = i.sub_type == SubType::Callback;
        if callback {
            self.callbacks_booked += 1;
        }
        if let Some(wait) = o.answer_wait() {
            self.bridged += 1;
            self.settled += 1;
            if callback {
                self.callbacks_completed += 1;
            }
            if wait <= target {
                self.within_target += 1;
            }
            self.wait_total += wait;
            let secs = wait.as_secs();
            self.longest_wait_secs = Some(self.longest_wait_secs.unwrap_or(0).max(secs));
            let bin = WAIT_BINS
                .iter()
                .position(|b| secs < *b)
                .unwrap_or(WAIT_BINS.len());
            self.wait_bins[bin] += 1;
        } else {
            match i.close_reason {
                Some(CloseReason::Abandoned) => {
                    self.abandoned += 1;
                    self.settled += 1;
                }
                Some(CloseReason::CallbackFailed) => {
                    self.callbacks_failed += 1;
                    self.settled += 1;
                }
                Some(CloseReason::Expired) => self.settled += 1,
                _ => {}
            }
            if callback && i.status != Status::Closed {
                self.callbacks_open += 1;
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        self.service_level =
            (self.settled > 0).then(|| self.within_target as f64 / self.settled as f64);
        self.average_wait_secs =
            (self.bridged > 0).then(|| self.wait_total.as_secs_f64() / self.bridged as f64);
    }
}

/// One bucket of a queue's window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    /// Its first instant (arrivals from here to the next bucket's start).
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// What arrived in it.
    #[serde(flatten)]
    pub figures: Figures,
}

/// One queue's figures over the window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Its service-level target, seconds.
    pub service_level_target_secs: u64,
    /// The whole window.
    pub totals: Figures,
    /// The window in equal buckets, oldest first (empty ones included).
    pub buckets: Vec<Bucket>,
}

/// The window's figures per queue.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Arrivals from…
    #[schema(value_type = String, format = DateTime)]
    pub from: Timestamp,
    /// …up to (not including).
    #[schema(value_type = String, format = DateTime)]
    pub to: Timestamp,
    /// Bucket length, seconds.
    pub bucket_secs: u64,
    /// Every queue asked for, in the order asked.
    pub queues: Vec<QueueStats>,
    /// All of them together.
    pub totals: Figures,
}

impl Stats {
    /// Empty figures for `queues` (name, service-level target) over `[from, to)` in buckets
    /// of `bucket` (non-zero; the last bucket may end past `to`).
    pub fn new(
        from: Timestamp,
        to: Timestamp,
        bucket: Duration,
        queues: &[(String, Duration)],
    ) -> Self {
        let n = buckets_in(from, to, bucket);
        let step = jiff::SignedDuration::try_from(bucket).unwrap_or(jiff::SignedDuration::MAX);
        let starts: Vec<Timestamp> = (0..n)
            .map(|k| {
                let k = i32::try_from(k).unwrap_or(i32::MAX);
                from.saturating_add(step * k).unwrap_or(from)
            })
            .collect();
        Self {
            from,
            to,
            bucket_secs: bucket.as_secs(),
            queues: queues
                .iter()
                .map(|(name, target)| QueueStats {
                    queue: name.clone(),
                    service_level_target_secs: target.as_secs(),
                    totals: Figures::default(),
                    buckets: starts
                        .iter()
                        .map(|s| Bucket {
                            start: *s,
                            figures: Figures::default(),
                        })
                        .collect(),
                })
                .collect(),
            totals: Figures::default(),
        }
    }

    /// Counts `o` in its queue's bucket of arrival; rows of other queues or outside the window
    /// are ignored.
    pub fn add(&mut self, o: &Outcome<'_>) {
        let i = o.interaction;
        if i.created_at < self.from || i.created_at >= self.to || self.bucket_secs == 0 {
            return;
        }
        let Some(q) = self.queues.iter_mut().find(|q| q.queue == i.queue) else {
            return;
        };
        let target = Duration::from_secs(q.service_level_target_secs);
        let offset = since(self.from, i.created_at).as_secs();
        let k = usize::try_from(offset / self.bucket_secs).unwrap_or(usize::MAX);
        if let Some(b) = q.buckets.get_mut(k) {
            b.figures.add(o, target);
        }
        q.totals.add(o, target);
        self.totals.add(o, target);
    }
}

/// How many buckets of `bucket` cover `[from, to)`.
pub fn buckets_in(from: Timestamp, to: Timestamp, bucket: Duration) -> u64 {
    let span = since(from, to).as_secs();
    let b = bucket.as_secs().max(1);
    span.div_ceil(b).max(1)
}

#[cfg(test)]
mod tests;
