//! The media clock: one thread that sends every call's 20 ms packets.
//!
//! A timer per call costs more than the frame it sends once there are a thousand calls (task
//! wake-ups, timer-wheel churn, channel polls), and tokio's millisecond timer wheel adds up to a
//! millisecond of jitter to every packet. This thread keeps one heap of every stream's next due
//! time, sleeps precisely until the earliest (`park_timeout`, microsecond resolution), sends
//! everything due with non-blocking `send_to`, and wakes a call's task only when its player has
//! news (a prompt finished). Receiving stays in the call tasks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::debug;

use crate::media::leg::{MAX_PACKET, MediaLeg};

/// Frames due within this much of now are sent in the same wake-up.
const SLACK: Duration = Duration::from_micros(200);

/// What a call task and the media thread share about one stream.
pub struct Stream {
    leg: Arc<Mutex<MediaLeg>>,
    /// While bridged, the relay writes this leg's packets; the clock must not.
    paused: AtomicBool,
    /// Signalled when the leg has events for the call task.
    news: Notify,
}

impl Stream {
    /// A stream for `leg`, not yet sending (see [`MediaClock::send`]).
    pub fn new(leg: MediaLeg) -> Arc<Self> {
        Arc::new(Self {
            leg: Arc::new(Mutex::new(leg)),
            paused: AtomicBool::new(false),
            news: Notify::new(),
        })
    }

    /// Lock the leg (briefly: never across an await).
    pub fn leg(&self) -> MutexGuard<'_, MediaLeg> {
        self.leg
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A future that completes when the media thread reports news for this call. Keep it
    /// across loop turns (re-arm it only after it fires): a `notify_one` between two waits is
    /// kept as a permit, so nothing is missed.
    pub fn news(&self) -> tokio::sync::futures::Notified<'_> {
        self.news.notified()
    }

    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }
}

struct Registration {
    stream: Arc<Stream>,
    sock: UdpSocket,
}

/// Handle to the media thread.
pub struct MediaClock {
    tx: Mutex<mpsc::Sender<Registration>>,
    thread: Thread,
}

impl MediaClock {
    /// Start the thread.
    pub fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("hammond-media".into())
            .spawn(move || run(&rx))?;
        Ok(Self {
            tx: Mutex::new(tx),
            thread: handle.thread().clone(),
        })
    }

    /// Start sending `stream`'s frames from `sock` (a non-blocking clone of the call's RTP
    /// socket), from its pacer's next due frame. Call it once the first prompt is queued, so
    /// the caller's first packet is already speech. Dropping every other handle stops it.
    pub fn send(&self, stream: &Arc<Stream>, sock: UdpSocket) {
        let reg = Registration {
            stream: stream.clone(),
            sock,
        };
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(reg);
        self.thread.unpark();
    }
}

struct Entry {
    stream: Arc<Stream>,
    sock: UdpSocket,
}

/// Ask the kernel to run this thread ahead of the runtime's workers (nice −10): a frame sent
/// 30 ms late is heard, a SIP response 30 ms late is not. Needs CAP_SYS_NICE (root has it);
/// without it the thread simply keeps the default priority.
fn raise_priority() {
    // SAFETY: setpriority(2) with PRIO_PROCESS and who = 0 changes only the calling thread on
    // Linux; it reads and writes no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) };
    if rc != 0 {
        debug!("media clock keeps the default priority (no CAP_SYS_NICE)");
    }
}

fn run(rx: &mpsc::Receiver<Registration>) {
    raise_priority();
    let mut entries: Vec<Option<Entry>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let mut buf = [0u8; MAX_PACKET];
    loop {
        let now = crate::clock::now();
        loop {
            match rx.try_recv() {
                Ok(reg) => {
                    let due = reg.stream.leg().next_frame_due();
                    let idx = free.pop().unwrap_or_else(|| {
                        entries.push(None);
                        entries.len() - 1
                    });
                    entries[idx] = Some(Entry {
                        stream: reg.stream,
                        sock: reg.sock,
                    });
                    heap.push(Reverse((due, idx)));
                }
                Err(mpsc::TryRecvError::Empty) => break,
                // Hammond is shutting down.
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        while let Some(&Reverse((due, idx))) = heap.peek() {
            if due > now + SLACK {
                break;
            }
            heap.pop();
            let Some(entry) = entries[idx].as_ref() else {
                continue;
            };
            // The call task let go of its handle: the call is over.
            if Arc::strong_count(&entry.stream) == 1 {
                entries[idx] = None;
                free.push(idx);
                continue;
            }
            let (next, news) = if entry.stream.paused.load(Ordering::Relaxed) {
                (now + Duration::from_millis(20), false)
            } else {
                let mut leg = entry.stream.leg();
                while let Some((n, dest)) = leg.poll_transmit(now.max(due), &mut buf) {
                    if let Err(e) = entry.sock.send_to(&buf[..n], dest) {
                        debug!(error = %e, "RTP send failed");
                    }
                }
                (leg.next_frame_due(), leg.has_events())
            };
            if news {
                entry.stream.news.notify_one();
            }
            heap.push(Reverse((next, idx)));
        }
        match heap.peek() {
            Some(&Reverse((due, _))) => {
                let now = crate::clock::now();
                if due > now {
                    thread::park_timeout(due - now);
                }
            }
            None => thread::park(),
        }
    }
}
