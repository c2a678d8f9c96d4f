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

/// The longest a caller is kept waiting on the store (a callback's confirmation, the position
/// to announce): the store itself fails within a few seconds, this bounds it whatever it does.
pub const CALLER_WAIT: std::time::Duration = std::time::Duration::from_secs(4);

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
            let mut voicemail = Voicemail::None;
            while let Some(job) = rx.recv().await {
                if let Some(reply) = run_job(store.as_ref(), id, job, &mut voicemail).await {
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

/// Where the call's voicemail is: the interaction may say "voicemail" only once its recording
/// is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Voicemail {
    /// None recorded.
    None,
    /// Written and synced.
    Saved,
    /// The write failed (a full disk): the message is lost, and the interaction must not
    /// show a voicemail nobody can play.
    Lost,
}

async fn run_job(
    store: &dyn InteractionStore,
    id: InteractionId,
    job: StoreJob,
    voicemail: &mut Voicemail,
) -> Option<StoreReply> {
    match job {
        // Write, then record: the call's end turns the interaction into a voicemail only when
        // the recording was saved (the call task sends the recording before the end).
        StoreJob::Apply(Lifecycle::CallEnded {
            by,
            had_callback,
            voicemail: left,
            during,
        }) => {
            let event = Lifecycle::CallEnded {
                by,
                had_callback,
                voicemail: left && *voicemail == Voicemail::Saved,
                during,
            };
            if let Err(e) = store.apply(id, event, clock::wall()).await {
                warn!(error = %e, "interaction update failed");
            }
            None
        }
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
        // The caller listens to silence meanwhile: past CALLER_WAIT, the workflow plays its
        // apology and the caller keeps waiting (the write, if the store still takes it, is on
        // disk; the caller was only told it was not, and keeps its place).
        StoreJob::RequestCallback {
            queue: _,
            number,
            not_before,
            max_per_day,
        } => {
            let booking = request_callback(store, id, number, not_before, max_per_day);
            Some(
                tokio::time::timeout(CALLER_WAIT, booking)
                    .await
                    .unwrap_or_else(|_| {
                        warn!(wait = ?CALLER_WAIT, "callback not confirmed in time: store stalled");
                        StoreReply::CallbackRefused(Refusal::Unavailable)
                    }),
            )
        }
        // No answer when the place is unknown: the workflow then announces nothing (never a
        // made-up "number 1").
        StoreJob::QueueStatus { queue } => {
            match tokio::time::timeout(CALLER_WAIT, store.position(id)).await {
                Ok(Ok(Some(position))) => Some(StoreReply::QueueStatus { position }),
                Ok(Ok(None)) => None,
                Ok(Err(e)) => {
                    warn!(error = %e, queue, "queue position unavailable");
                    None
                }
                Err(_) => {
                    warn!(queue, wait = ?CALLER_WAIT, "queue position unavailable: store stalled");
                    None
                }
            }
        }
        // Written first, whole and synced: the interaction says "voicemail" only for a
        // message on disk (the call waits for this answer before it ends the interaction; the
        // end is gated here too).
        StoreJob::Voicemail { path, samples } => {
            if samples.is_empty() {
                return Some(StoreReply::RecordingSaved { audio: false });
            }
            let secs = (samples.len() / 8000) as u64;
            let to = path.clone();
            // Kept absolute: the audio route reads the path the store holds, whatever the
            // process's working directory then (`[data] dir` may be relative).
            let written = tokio::task::spawn_blocking(move || {
                write_wav(&to, &samples).map(|()| std::fs::canonicalize(&to).unwrap_or(to))
            })
            .await
            .unwrap_or_else(|e| Err(hound::Error::IoError(std::io::Error::other(e))));
            let note = match written {
                Ok(path) => {
                    *voicemail = Voicemail::Saved;
                    Note::VoicemailRecorded { secs, path }
                }
                Err(e) => {
                    warn!(error = %e, path = %path.display(), "voicemail not written");
                    *voicemail = Voicemail::Lost;
                    Note::VoicemailLost {
                        secs,
                        error: e.to_string(),
                    }
                }
            };
            if let Err(e) = store.apply(id, Lifecycle::Note(note), clock::wall()).await {
                warn!(error = %e, "voicemail feed entry failed");
            }
            Some(StoreReply::RecordingSaved {
                audio: *voicemail == Voicemail::Saved,
            })
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

/// Writes the recording as an 8 kHz 16-bit mono WAV at `path`, durably: to a temporary file
/// beside it, synced, then renamed into place (and the directory synced), so `path` is either
/// absent or the whole message, whatever happens to the disk or the power meanwhile.
fn write_wav(path: &std::path::Path, samples: &[i16]) -> Result<(), hound::Error> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let written = (|| {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let file = std::fs::File::create(&part)?;
        let mut w = hound::WavWriter::new(std::io::BufWriter::new(file.try_clone()?), spec)?;
        for s in samples {
            w.write_sample(*s)?;
        }
        w.finalize()?;
        file.sync_all()?;
        Ok::<(), hound::Error>(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
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
        let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
        for n in 0..1_050 {
            if n % 200 == 0 {
                for t in tasks.drain(..) {
                    t.await.unwrap();
                }
            }
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

    fn hung_up_after_voicemail() -> StoreJob {
        StoreJob::Apply(Lifecycle::CallEnded {
            by: HangupBy::Caller,
            had_callback: false,
            voicemail: true,
            during: Some("voicemail".into()),
        })
    }

    /// The recording is written (whole, synced) before the interaction says "voicemail".
    #[tokio::test]
    async fn a_saved_voicemail_is_on_disk_before_the_interaction_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn InteractionStore> =
            Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        let mut w = caller(&store, "support").await;
        let path = dir.path().join("voicemail").join("1.wav");
        let samples: Vec<i16> = (0..16_000).map(|n| (n % 200) as i16).collect();
        w.send(StoreJob::Voicemail {
            path: path.clone(),
            samples: samples.clone(),
        });
        w.send(hung_up_after_voicemail());
        w.finish().await;
        assert!(matches!(
            w.replies.try_recv(),
            Ok(StoreReply::RecordingSaved { audio: true })
        ));
        let wav = hound::WavReader::open(&path).unwrap();
        assert_eq!(wav.len() as usize, samples.len());
        assert!(!dir.path().join("voicemail").join("1.wav.part").exists());
        let d = store.get(1).await.unwrap();
        let i = &d.listed.interaction;
        assert_eq!(
            (i.status, i.sub_type),
            (
                crate::interaction::Status::Open,
                crate::interaction::SubType::Voicemail
            )
        );
        // The store says where it is, absolute: the audio route's one source of a path.
        assert_eq!(
            i.voicemail_path.as_deref(),
            Some(std::fs::canonicalize(&path).unwrap().as_path())
        );
        assert!(i.voicemail_path.as_ref().is_some_and(|p| p.is_absolute()));
        let kinds: Vec<_> = d.feed.iter().map(|e| e.kind.as_str()).collect();
        let recorded = kinds.iter().position(|k| *k == "voicemail_recorded");
        let became = kinds.iter().position(|k| *k == "sub_type_changed");
        assert!(recorded.is_some() && recorded < became, "{kinds:?}");
    }

    /// A recording that cannot be written (a full disk; here its directory cannot be made) is
    /// lost: the interaction must not show a voicemail nobody can play (it did). The caller
    /// hung up, so it closes as abandoned, and the feed says the message was lost.
    #[tokio::test]
    async fn a_voicemail_that_cannot_be_written_is_not_shown_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("voicemail");
        std::fs::write(&blocker, b"a file where the directory should be").unwrap();
        let store: Arc<dyn InteractionStore> =
            Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        let mut w = caller(&store, "support").await;
        w.send(StoreJob::Voicemail {
            path: blocker.join("1.wav"),
            samples: vec![7; 8_000],
        });
        w.send(hung_up_after_voicemail());
        w.finish().await;
        assert!(matches!(
            w.replies.try_recv(),
            Ok(StoreReply::RecordingSaved { audio: false })
        ));
        let d = store.get(1).await.unwrap();
        let i = &d.listed.interaction;
        assert_eq!(i.status, crate::interaction::Status::Closed);
        assert_eq!(i.sub_type, crate::interaction::SubType::Inbound);
        assert_eq!(
            i.close_reason,
            Some(crate::interaction::CloseReason::Abandoned)
        );
        assert!(
            d.feed.iter().any(|e| e.kind == "voicemail_lost"),
            "{:?}",
            d.feed
        );
    }

    /// A store that stops answering (stalled disk, stuck lock) must not keep the caller in
    /// silence: the callback request is refused as unavailable within CALLER_WAIT (the workflow
    /// plays its apology and the caller keeps waiting), no position is announced, and the
    /// worker goes on with the call's next writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_store_answers_the_caller_within_the_bound() {
        use crate::store::testing::{Hooked, Hooks};
        let inner = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        let store: Arc<dyn InteractionStore> = Arc::new(Hooked {
            inner: inner.clone(),
            hooks: Hooks {
                before_caller_wait: Some(Box::new(|_, _| Box::pin(std::future::pending()))),
                ..Hooks::default()
            },
        });
        let (mut asks, mut looks) = (
            caller(&store, "support").await,
            caller(&store, "support").await,
        );
        let t0 = clock::now();
        asks.send(request("support", 3));
        looks.send(StoreJob::QueueStatus {
            queue: "support".into(),
        });
        assert!(matches!(
            reply(&mut asks).await,
            Some(StoreReply::CallbackRefused(Refusal::Unavailable))
        ));
        let took = t0.elapsed();
        assert!(took < CALLER_WAIT + Duration::from_secs(1), "took {took:?}");
        // The caller goes on: its next write is done.
        asks.send(hung_up_after_voicemail());
        asks.finish().await;
        looks.finish().await;
        assert!(looks.replies.try_recv().is_err(), "no made-up position");
        let d = inner.get(1).await.unwrap();
        assert_eq!(
            d.listed.interaction.status,
            crate::interaction::Status::Closed
        );
    }
}
