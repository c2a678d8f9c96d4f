//! A call's store writer: the call task queues writes here and goes on sending RTP; the worker
//! applies them in order and answers the ones the workflow waits for (a stored callback).

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::clock;
use crate::interaction::{Event as Lifecycle, InteractionId, Note};
use crate::store::{Booking, Error as StoreError, InteractionStore};
use crate::workflow::engine::{Refusal, Step};

/// A write (or read) the call wants done.
#[derive(Debug)]
pub enum StoreJob {
    Apply(Lifecycle),
    /// Apply, and answer `Committed` or `Refused`: the call waits for it.
    Commit(Lifecycle),
    /// Accept for `agent` atomically; answer `Committed` or `Refused`.
    Accept {
        agent: String,
    },
    Step(Step),
    /// Book the caller's callback (answered `CallbackStored` or `CallbackRefused`). The rule
    /// is per queue (the interaction's own); `queue` is kept for the call layer.
    RequestCallback {
        queue: String,
        number: String,
        not_before: Option<Timestamp>,
        max_per_day: u32,
    },
    /// The caller's place in the line (answered with [`StoreReply::QueueStatus`], or not at
    /// all when unknown). `queue` is for the log.
    QueueStatus {
        queue: String,
    },
    Voicemail {
        path: PathBuf,
        samples: Vec<i16>,
    },
}

/// Answers the workflow waits for.
#[derive(Debug)]
pub enum StoreReply {
    Committed,
    Refused,
    /// The voicemail was written (`audio`: there was a message to keep).
    RecordingSaved {
        audio: bool,
    },
    CallbackStored,
    CallbackRefused(Refusal),
    QueueStatus {
        position: u32,
    },
}

pub struct StoreWorker {
    tx: Option<mpsc::UnboundedSender<StoreJob>>,
    pub replies: mpsc::UnboundedReceiver<StoreReply>,
    task: Option<JoinHandle<()>>,
}

impl StoreWorker {
    pub fn spawn(store: Arc<dyn InteractionStore>, id: InteractionId) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<StoreJob>();
        let (reply_tx, replies) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                if let Some(reply) = run_job(store.as_ref(), id, job).await {
                    let _ = reply_tx.send(reply);
                }
            }
        });
        Self {
            tx: Some(tx),
            replies,
            task: Some(task),
        }
    }

    pub fn send(&self, job: StoreJob) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    /// Wait until every queued write is done.
    pub async fn finish(&mut self) {
        self.tx = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

async fn run_job(
    store: &dyn InteractionStore,
    id: InteractionId,
    job: StoreJob,
) -> Option<StoreReply> {
    match job {
        StoreJob::Apply(event) => {
            if let Err(e) = store.apply(id, event, clock::wall()).await {
                warn!(error = %e, "interaction update failed");
            }
            None
        }
        StoreJob::Commit(event) => Some(match store.apply(id, event, clock::wall()).await {
            Ok(_) => StoreReply::Committed,
            Err(e) => {
                warn!(error = %e, "interaction update refused");
                StoreReply::Refused
            }
        }),
        StoreJob::Accept { agent } => Some(match store.accept(id, &agent, clock::wall()).await {
            Ok(_) => StoreReply::Committed,
            Err(e) => {
                warn!(error = %e, "accept refused");
                StoreReply::Refused
            }
        }),
        StoreJob::Step(step) => {
            if let Err(e) = store.apply(id, step_note(&step), clock::wall()).await {
                warn!(error = %e, "feed entry failed");
            }
            None
        }
        StoreJob::RequestCallback {
            queue: _,
            number,
            not_before,
            max_per_day,
        } => Some(request_callback(store, id, number, not_before, max_per_day).await),
        // No answer when the place is unknown: the workflow then announces nothing (never a
        // made-up "number 1").
        StoreJob::QueueStatus { queue } => match store.position(id).await {
            Ok(Some(position)) => Some(StoreReply::QueueStatus { position }),
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, queue, "queue position unavailable");
                None
            }
        },
        StoreJob::Voicemail { path, samples } => {
            // Written first: the interaction says "voicemail" only for a message on disk.
            if samples.is_empty() {
                return Some(StoreReply::RecordingSaved { audio: false });
            }
            let audio = match write_wav(&path, &samples) {
                Ok(()) => {
                    let note = Lifecycle::Note(Note::VoicemailRecorded {
                        secs: (samples.len() / 8000) as u64,
                        path,
                    });
                    if let Err(e) = store.apply(id, note, clock::wall()).await {
                        warn!(error = %e, "voicemail feed entry failed");
                    }
                    true
                }
                Err(e) => {
                    warn!(error = %e, path = %path.display(), "voicemail not written");
                    false
                }
            };
            Some(StoreReply::RecordingSaved { audio })
        }
    }
}

/// The booking, under the store's one rule (a pending callback per queue and number, the
/// queue's daily cap per number), checked and written atomically and on disk before the
/// caller hears the confirmation (§ "stored before the confirmation").
async fn request_callback(
    store: &dyn InteractionStore,
    id: InteractionId,
    number: String,
    not_before: Option<Timestamp>,
    max_per_day: u32,
) -> StoreReply {
    let now = clock::wall();
    let booking = Booking {
        number,
        not_before,
        max_per_day,
        since: now - jiff::SignedDuration::from_hours(24),
    };
    match store.book_callback(id, booking, now).await {
        Ok(_) => StoreReply::CallbackStored,
        Err(StoreError::DuplicateCallback { .. }) => {
            StoreReply::CallbackRefused(Refusal::Duplicate)
        }
        Err(StoreError::CallbackLimit { .. }) => StoreReply::CallbackRefused(Refusal::Limit),
        Err(e) => {
            warn!(error = %e, "callback not stored");
            StoreReply::CallbackRefused(Refusal::Unavailable)
        }
    }
}

fn step_note(step: &Step) -> Lifecycle {
    Lifecycle::Note(Note::WorkflowStep {
        kind: step.kind(),
        text: step.to_string(),
    })
}

fn write_wav(path: &std::path::Path, samples: &[i16]) -> Result<(), hound::Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for s in samples {
        w.write_sample(*s)?;
    }
    w.finalize()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::interaction::{HangupBy, Interaction};
    use crate::store::SqliteStore;

    fn ended() -> Lifecycle {
        Lifecycle::CallEnded {
            by: HangupBy::Caller,
            had_callback: false,
            voicemail: false,
            during: None,
        }
    }

    async fn reply(w: &mut StoreWorker) -> Option<StoreReply> {
        tokio::time::timeout(Duration::from_secs(10), w.replies.recv())
            .await
            .ok()
            .flatten()
    }

    /// A caller behind more than 1,000 finished interactions hears its place among the waiting
    /// ones (it used to be "number 1": the caller was not on the first page of the queue).
    #[tokio::test]
    async fn the_position_announced_past_a_thousand_interactions_is_the_callers() {
        let store: Arc<dyn InteractionStore> =
            Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        let mut tasks = Vec::new();
        for _ in 0..1_050 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let i = s
                    .create(Interaction::inbound("support", "1000", clock::wall()))
                    .await
                    .unwrap();
                s.apply(i.id, ended(), clock::wall()).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut waiting = Vec::new();
        for _ in 0..3 {
            let i = store
                .create(Interaction::inbound("support", "2000", clock::wall()))
                .await
                .unwrap();
            store
                .apply(i.id, Lifecycle::EnteredWorkflow, clock::wall())
                .await
                .unwrap();
            waiting.push(i.id);
        }
        for (n, id) in waiting.iter().enumerate() {
            let mut w = StoreWorker::spawn(store.clone(), *id);
            w.send(StoreJob::QueueStatus {
                queue: "support".into(),
            });
            match reply(&mut w).await {
                Some(StoreReply::QueueStatus { position }) => {
                    assert_eq!(position as usize, n + 1, "caller {id}");
                }
                other => panic!("{other:?}"),
            }
            let listed = store.get(*id).await.unwrap().listed.position;
            assert_eq!(listed, Some(n as u32 + 1), "the Home List agrees");
        }
    }

    /// No place in the line (the caller is with an agent already): no answer, so the workflow
    /// announces nothing rather than a made-up position.
    #[tokio::test]
    async fn no_position_no_announcement() {
        let store: Arc<dyn InteractionStore> =
            Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        let i = store
            .create(Interaction::inbound("support", "2000", clock::wall()))
            .await
            .unwrap();
        store
            .apply(i.id, Lifecycle::EnteredWorkflow, clock::wall())
            .await
            .unwrap();
        store
            .apply(
                i.id,
                Lifecycle::OfferedLive {
                    agent: "alice".into(),
                },
                clock::wall(),
            )
            .await
            .unwrap();
        let mut w = StoreWorker::spawn(store.clone(), i.id);
        w.send(StoreJob::QueueStatus {
            queue: "support".into(),
        });
        w.finish().await;
        assert!(w.replies.try_recv().is_err());
    }

    /// A caller in the workflow of `queue`, with its store worker.
    async fn caller(store: &Arc<dyn InteractionStore>, queue: &str) -> StoreWorker {
        let i = store
            .create(Interaction::inbound(queue, "2000", clock::wall()))
            .await
            .unwrap();
        store
            .apply(i.id, Lifecycle::EnteredWorkflow, clock::wall())
            .await
            .unwrap();
        StoreWorker::spawn(store.clone(), i.id)
    }

    fn request(queue: &str, max_per_day: u32) -> StoreJob {
        StoreJob::RequestCallback {
            queue: queue.into(),
            number: "15551234567".into(),
            not_before: None,
            max_per_day,
        }
    }

    /// Callers booking the same number at the same moment: one booking, the others hear it
    /// exists (the duplicate check used to read before anyone wrote, so several were stored).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simultaneous_bookings_of_one_number_store_one() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn InteractionStore> = Arc::new(
            SqliteStore::open(&format!("sqlite://{}/h.db", dir.path().display()))
                .await
                .unwrap(),
        );
        let mut workers = Vec::new();
        for _ in 0..8 {
            workers.push(caller(&store, "support").await);
        }
        for w in &workers {
            w.send(request("support", 10));
        }
        let (mut stored, mut duplicate) = (0, 0);
        for w in &mut workers {
            match reply(w).await {
                Some(StoreReply::CallbackStored) => stored += 1,
                Some(StoreReply::CallbackRefused(Refusal::Duplicate)) => duplicate += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((stored, duplicate), (1, 7));
    }

    /// The daily cap and the duplicate check follow one rule, per queue: a number that booked
    /// its cap in one queue may still book in another (the cap used to count every queue).
    #[tokio::test]
    async fn the_daily_cap_is_per_queue_like_the_duplicate_check() {
        let store: Arc<dyn InteractionStore> =
            Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        for _ in 0..2 {
            let mut w = caller(&store, "sales").await;
            w.send(request("sales", 2));
            assert!(matches!(
                reply(&mut w).await,
                Some(StoreReply::CallbackStored)
            ));
            // Handled: no longer pending.
            w.send(StoreJob::Apply(Lifecycle::CallEnded {
                by: HangupBy::Hammond,
                had_callback: true,
                voicemail: false,
                during: None,
            }));
            w.finish().await;
            let page = store
                .list(crate::store::ListQuery {
                    status: Some(crate::interaction::Status::Open),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            for l in page.items {
                let close = Lifecycle::Closed {
                    reason: crate::interaction::CloseReason::Completed,
                    disposition: None,
                };
                store
                    .apply(l.interaction.id, close, clock::wall())
                    .await
                    .unwrap();
            }
        }
        let mut w = caller(&store, "sales").await;
        w.send(request("sales", 2));
        assert!(matches!(
            reply(&mut w).await,
            Some(StoreReply::CallbackRefused(Refusal::Limit))
        ));
        let mut w = caller(&store, "support").await;
        w.send(request("support", 2));
        assert!(matches!(
            reply(&mut w).await,
            Some(StoreReply::CallbackStored)
        ));
    }
}
