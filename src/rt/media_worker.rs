//! The media clock: one thread that sends and receives every call's RTP, prompts and bridged
//! audio alike.
//!
//! Per-call tasks cost more than the packets they move once there are a thousand calls: a task
//! wake-up per received packet, a timer per frame, and tokio's readiness events for every
//! packet *sent* (the socket reports it writable again each time the kernel frees a sent
//! buffer). This thread instead keeps a schedule of every stream's next frame, on a 5 ms grid
//! so that one wake-up serves many streams, sleeps until the next tick (an absolute alarm; before
//! a tick on which few streams send, it wakes a little early and spins: see [`Spin`]), and on
//! each tick
//! 1. sends every frame that is due, on sockets `connect`ed to the caller (no route lookup per
//!    packet; strict latching is then also the kernel's filter);
//! 2. takes what arrived on every socket and feeds it to the call's [`MediaLeg`] (latching,
//!    DTMF);
//! 3. wakes a call's task only when its leg has news (a key, a prompt finished, no RTP for the
//!    inactivity timeout).
//!
//! Packets move through io_uring (see [`Uring`]: one system call per tick for all of them) or,
//! where the kernel or a sandbox refuses it, `send` per packet and a level-triggered epoll set
//! polled without blocking, then `recvmmsg` per ready socket.
//!
//! Two streams bridged ([`MediaClock::bridge`]) stop sending their players' frames; what
//! arrives on each is re-originated on the other's stream ([`MediaLeg::relay`]: its SSRC,
//! sequence and timestamps, its codec and telephone-event payload type) and sent on the other's
//! socket in the tick it was taken, with that tick's frames.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{debug, info, warn};

mod alarm;
mod load;
mod relay;
mod spin;
mod webrtc;

use self::alarm::{Alarm, monotonic};
use self::load::Load;
use self::relay::{Bridge, RELAY_BUF, Relayed, relay, relay_ready, send_to_slot};
use self::spin::Spin;
pub use self::webrtc::{SIDEBAND_DEPTH, SideDatagram, Sideband};
use super::schedule::{Due, Schedule};
use super::udp_batch::{Epoll, RecvBatch};
use super::uring::{Arrival, SEND_BUF, Stopped, Uring};
use crate::config::MediaIo;
use crate::media::leg::{HOT_OFFSETS, MAX_PACKET, MediaLeg, PTIME};

/// The clock's resolution: frames are sent on ticks this far apart, and arrivals are taken at
/// least this often (a key press reaches the workflow within a tick).
///
/// Every frame of a stream lands on the same phase of the grid, so the spacing on the wire is
/// 20 ms however coarse the grid; what a coarser grid costs is up to a tick of delay on the
/// first frame and on a key, and larger bursts per tick. What it saves is wake-ups: waking an
/// idle core is a fixed cost per tick (a virtual CPU halts between ticks), and at 5 ms it cost
/// 10–15 % less CPU than at 2 ms with 500–1,000 callers talking, with pacing p99 still under
/// 0.7 ms at 1,500 calls.
const TICK: Duration = Duration::from_millis(5);

/// What a call task and the media thread share about one stream.
pub struct Stream {
    leg: Mutex<MediaLeg>,
    /// Signalled when the leg has events for the call task.
    news: Arc<Notify>,
}

/// Where a stream's leg lies within it (the same for every stream: measured on the first).
static LEG_OFFSET: AtomicUsize = AtomicUsize::new(usize::MAX);

impl Stream {
    /// A stream for `leg`, not yet sending (see [`MediaClock::start_stream`]).
    pub fn new(leg: MediaLeg) -> Arc<Self> {
        let stream = Arc::new(Self {
            leg: Mutex::new(leg),
            news: Arc::new(Notify::new()),
        });
        if LEG_OFFSET.load(Ordering::Relaxed) == usize::MAX {
            let base = Arc::as_ptr(&stream).addr();
            let leg = std::ptr::from_ref::<MediaLeg>(&stream.leg()).addr();
            LEG_OFFSET.store(leg.wrapping_sub(base), Ordering::Relaxed);
        }
        stream
    }

    /// Start loading into the cache what the media thread touches to serve the stream: the
    /// reference count, the lock, the leg's hot state ([`HOT_OFFSETS`]).
    fn prefetch(&self) {
        let base = std::ptr::from_ref(self).cast::<u8>();
        // The counts sit just before the value in an `Arc`.
        prefetch(base.wrapping_sub(16));
        // The lock word is at one end of the mutex or the other.
        let lock = (&raw const self.leg).cast::<u8>();
        prefetch(lock);
        prefetch(lock.wrapping_add(size_of::<Mutex<MediaLeg>>() - 1));
        let leg = base.wrapping_add(LEG_OFFSET.load(Ordering::Relaxed));
        for offset in HOT_OFFSETS {
            prefetch(leg.wrapping_add(offset));
        }
    }

    /// Lock the leg (briefly: never across an await).
    pub fn leg(&self) -> MutexGuard<'_, MediaLeg> {
        self.leg
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The leg, unless a call task holds it: the media thread never waits for a task (the
    /// task may be preempted while holding it, and then every other call's frame would wait).
    fn try_leg(&self) -> Option<MutexGuard<'_, MediaLeg>> {
        match self.leg.try_lock() {
            Ok(leg) => Some(leg),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// A future that completes when the media thread reports news for this call. Keep it
    /// across loop turns (re-arm it only after it fires): a `notify_one` between two waits is
    /// kept as a permit, so nothing is missed.
    pub fn news(&self) -> tokio::sync::futures::Notified<'_> {
        self.news.notified()
    }

    /// [`Stream::news`] as an owned future, for a driver that keeps one per leg of a call.
    pub fn news_owned(&self) -> tokio::sync::futures::OwnedNotified {
        self.news.clone().notified_owned()
    }
}

enum Request {
    Start {
        stream: Arc<Stream>,
        sock: UdpSocket,
        sideband: Option<Sideband>,
    },
    Bridge(Arc<Stream>, Arc<Stream>),
    Unbridge(Arc<Stream>, Arc<Stream>),
}

/// Handle to the media thread.
pub struct MediaClock {
    inbox: Arc<Inbox>,
    overloaded: Arc<AtomicBool>,
}

/// Requests for the media thread.
///
/// Not a channel: a lock-free channel's receiver spins (and `sched_yield`s) while a sender is
/// half way through a send, and a real-time receiver that preempted that sender on its own
/// core spins until the kernel's real-time throttling stops it, about a second later — every
/// call's signalling stood still for that second (found in the set-up benchmark). Here the
/// media thread only ever `try_lock`s: if a sender holds the lock, it looks again next tick.
#[derive(Default)]
struct Inbox {
    requests: Mutex<Vec<Request>>,
    /// Set when the handle is dropped: the thread ends.
    closed: AtomicBool,
    /// What the thread sleeps on between ticks; a request wakes it.
    alarm: Alarm,
}

impl Drop for MediaClock {
    fn drop(&mut self) {
        self.inbox.closed.store(true, Ordering::Release);
        self.inbox.alarm.wake();
    }
}

impl MediaClock {
    /// Start the thread, moving packets as `io` says.
    pub fn start(io: MediaIo) -> std::io::Result<Self> {
        let inbox = Arc::new(Inbox::default());
        // Made here, handed over below: a failure to start is the caller's error.
        let epoll = Epoll::new(1024)?;
        let overloaded = Arc::new(AtomicBool::new(false));
        let flag = overloaded.clone();
        let worker_inbox = inbox.clone();
        thread::Builder::new()
            .name("hammond-media".into())
            .spawn(move || {
                // The ring belongs to the thread that uses it (single issuer).
                let ring = match io {
                    MediaIo::Auto => Uring::new(),
                    MediaIo::Epoll => Err(std::io::Error::other("media.io = \"epoll\"")),
                };
                let io = match ring {
                    Ok(ring) => {
                        debug!("the media clock uses io_uring");
                        Io::Uring(ring)
                    }
                    Err(e) => {
                        info!(reason = %e, "the media clock uses epoll");
                        Io::Epoll {
                            epoll,
                            batch: RecvBatch::default(),
                        }
                    }
                };
                Worker::new(io, flag).run(&worker_inbox);
            })?;
        Ok(Self { inbox, overloaded })
    }

    /// Whether the media thread is near a full core: new calls should be refused (503) until
    /// it is not, or every call's audio breaks up.
    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }

    /// Hand `stream` and its non-blocking RTP socket to the media thread: from its pacer's next
    /// due frame it sends the leg's frames and feeds it what arrives. Call it once the first
    /// prompt is queued, so the caller's first packet is already speech. Dropping every other
    /// handle to `stream` ends it (and closes the socket).
    pub fn start_stream(&self, stream: &Arc<Stream>, sock: UdpSocket) {
        self.request(Request::Start {
            stream: stream.clone(),
            sock,
            sideband: None,
        });
    }

    /// [`Self::start_stream`] for a browser leg, whose socket also carries its peer
    /// connection's STUN and DTLS: those go to `sideband`, SRTCP is dropped, and only RTP
    /// reaches the leg (see the `webrtc` part of this module).
    pub fn start_webrtc_stream(&self, stream: &Arc<Stream>, sock: UdpSocket, sideband: Sideband) {
        self.request(Request::Start {
            stream: stream.clone(),
            sock,
            sideband: Some(sideband),
        });
    }

    /// Bridge two started streams ([`Self::start_stream`]): from the next tick each one's
    /// arrivals are re-originated on the other's stream and socket (PCMU↔PCMA converted,
    /// telephone-events passed with the other's payload type), in the tick they are taken, and
    /// their players stop sending (paused where they were: see [`MediaLeg::set_bridged`]).
    /// Each outgoing stream keeps its SSRC, sequence and timestamps from the prompts through
    /// the bridge and back. Arrivals still count as activity, so a stream whose far end goes
    /// silent raises [`crate::media::leg::MediaEvent::Inactive`]; keys are not reported (they
    /// pass through). A stream bridged elsewhere leaves that bridge first (its old peer goes
    /// back to its player). Idempotent; a stream that ends ends its bridge.
    pub fn bridge(&self, a: &Arc<Stream>, b: &Arc<Stream>) {
        self.request(Request::Bridge(a.clone(), b.clone()));
    }

    /// End the bridge between `a` and `b`: both go back to their players (hold music, say)
    /// from the next tick, the first frame marked. A no-op unless they are bridged together.
    pub fn unbridge(&self, a: &Arc<Stream>, b: &Arc<Stream>) {
        self.request(Request::Unbridge(a.clone(), b.clone()));
    }

    /// Tests: every `every`th timed wake of the thread comes `by` late.
    #[cfg(test)]
    fn wake_late(&self, every: u32, by: Duration) {
        self.inbox.alarm.wake_late(every, by);
    }

    fn request(&self, req: Request) {
        self.inbox
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(req);
        self.inbox.alarm.wake();
    }
}

struct Entry {
    stream: Arc<Stream>,
    sock: UdpSocket,
    /// Where the socket is `connect`ed to (the leg's current destination).
    connected: Option<SocketAddr>,
    /// Tells this stream's schedule entries from those of an earlier stream in the same slot.
    generation: u32,
    /// Which tick of the 20 ms frame period this stream sends on.
    phase: usize,
    /// Set once the stream's call is over and it is on its way out (waiting for the kernel to
    /// let go of its socket).
    leaving: bool,
    /// The stream its arrivals are relayed to, while bridged.
    bridge: Option<Bridge>,
    /// A browser leg's: where its STUN and DTLS go.
    sideband: Option<Sideband>,
}

/// How the thread moves packets. One lives per process: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Io {
    /// One system call per tick for every send and receive (see [`Uring`]).
    Uring(Uring),
    /// Where io_uring is not allowed: a system call per packet sent, and per ready socket.
    Epoll { epoll: Epoll, batch: RecvBatch },
}

struct Worker {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    /// Every stream's next tick.
    schedule: Schedule,
    /// Scratch: the streams due this tick.
    due: Vec<Due>,
    generations: u32,
    io: Io,
    /// Datagrams received whose leg was too busy to take them (io_uring), in arrival order.
    undelivered: Vec<Arrival>,
    /// Scratch: the datagrams to deliver this tick.
    arrivals: Vec<Arrival>,
    /// Scratch: the slots io_uring reported stopped this tick.
    stopped: Vec<Stopped>,
    /// Ticks are whole [`TICK`]s after this.
    epoch: Instant,
    /// The same instant on the monotonic clock, for absolute alarms.
    epoch_mono: Duration,
    /// How early to wake before a tick with frames due, and spin.
    spin: Spin,
    /// Streams per tick of the frame period: new streams start on the least used one, so a
    /// burst of calls answered together does not put all their frames on the same tick.
    phases: [usize; PHASES],
    load: Load,
}

/// Ticks per 20 ms frame (a whole number: every frame of a stream lands on the same phase).
#[allow(clippy::cast_possible_truncation)]
const PHASES: usize = (PTIME.as_nanos() / TICK.as_nanos()) as usize;

/// Ask the kernel to run this thread ahead of everything else Hammond does: a frame sent 30 ms
/// late is heard, a SIP response 30 ms late is not. Real-time round-robin scheduling at a low
/// priority (as media servers run their timers) means no ordinary thread preempts a tick half
/// way; the thread sleeps between ticks, so it cannot starve the rest. Without CAP_SYS_NICE it
/// falls back to nice −10, and without that to the default priority.
fn raise_priority() {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler(2) with pid 0 changes only the calling thread on Linux; it
    // reads `param`, which outlives the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &raw const param) } == 0 {
        return;
    }
    // SAFETY: setpriority(2) with PRIO_PROCESS and who = 0 changes only the calling thread on
    // Linux; it reads and writes no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) };
    if rc != 0 {
        debug!("media clock keeps the default priority (no CAP_SYS_NICE)");
    }
}

impl Worker {
    fn new(io: Io, overloaded: Arc<AtomicBool>) -> Self {
        let now = crate::clock::now();
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            schedule: Schedule::default(),
            due: Vec::new(),
            io,
            undelivered: Vec::new(),
            arrivals: Vec::new(),
            stopped: Vec::new(),
            epoch: now,
            epoch_mono: monotonic(),
            spin: Spin::default(),
            generations: 0,
            phases: [0; PHASES],
            load: Load::new(overloaded, now),
        }
    }

    fn run(mut self, inbox: &Inbox) {
        raise_priority();
        let mut buf = [0u8; MAX_PACKET];
        let mut requests = Vec::new();
        loop {
            if inbox.closed.load(Ordering::Acquire) {
                return;
            }
            // Never wait for a sender (see `Inbox`): if one holds the lock, look next tick.
            let queued = match inbox.requests.try_lock() {
                Ok(q) => Some(q),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut queued) = queued {
                requests.append(&mut queued);
            }
            for req in std::mem::take(&mut requests) {
                match req {
                    Request::Start {
                        stream,
                        sock,
                        sideband,
                    } => {
                        if let Err(again) = self.start(stream, sock, sideband) {
                            requests.push(again);
                        }
                    }
                    Request::Bridge(a, b) => match (self.slot_of(&a), self.slot_of(&b)) {
                        (Some(x), Some(y)) => self.bridge(x, y),
                        // A start still waiting for its leg: bridge once it is taken on.
                        _ if starting(&requests, &a) || starting(&requests, &b) => {
                            requests.push(Request::Bridge(a, b));
                        }
                        _ => debug!("bridge of a stream the media clock does not serve: ignored"),
                    },
                    Request::Unbridge(a, b) => {
                        if let (Some(x), Some(y)) = (self.slot_of(&a), self.slot_of(&b))
                            && self.peer_of(x) == Some(y)
                        {
                            self.unbridge_slot(x);
                        }
                    }
                }
            }
            // Frames first, so they leave at the top of the tick whatever arrived; with
            // io_uring the receive's one system call also submits them.
            let started = crate::clock::now();
            self.send_due(started, &mut buf);
            if self.live() > 0 {
                self.receive(started);
            } else if let Io::Uring(ring) = &mut self.io
                && let Err(e) = ring.flush()
            {
                warn!(error = %e, "io_uring submit failed: this tick's frames are lost");
            }
            let now = crate::clock::now();
            self.load.record(now - started, now);
            // While any stream is live (or a request waits), look again every tick even if no
            // frame is due: arrivals are taken on every tick.
            if self.live() > 0 || !requests.is_empty() {
                // The next tick, or at once if this one's work ran past a tick with frames
                // due (sleeping to the tick after would send them a whole tick late).
                let this = tick_before(self.epoch, now);
                self.sleep_to(inbox, wake_tick(self.schedule.next_due(), this));
            } else {
                // Only the entries of streams gone are left.
                self.schedule.clear();
                self.load.idle(crate::clock::now());
                inbox.alarm.sleep_until(None);
            }
        }
    }

    /// Sleep until `tick` (or a request). Before a tick on which a few streams send, wake
    /// early by the recent lateness of wakes and spin the rest of the way (see [`Spin`]).
    fn sleep_to(&mut self, inbox: &Inbox, tick: u64) {
        let at = at_tick(self.epoch, tick);
        if at <= crate::clock::now() {
            return;
        }
        let ticks = self.phases.iter().filter(|&&n| n > 0).count();
        let margin = self.spin.margin(self.schedule.due_on(tick), ticks);
        let nanos = u64::try_from(TICK.as_nanos()).unwrap_or(u64::MAX);
        let alarm = (self.epoch_mono + Duration::from_nanos(tick.saturating_mul(nanos)))
            .saturating_sub(margin);
        if inbox.alarm.sleep_until(Some(alarm)) {
            return;
        }
        let woke = monotonic();
        if woke >= alarm {
            self.spin.record(woke - alarm);
        }
        // Spin only what the margin allows (a signal can end the sleep much earlier: then
        // the loop looks again and sleeps the rest).
        if margin > Duration::ZERO && alarm.saturating_sub(woke) < Duration::from_micros(50) {
            while crate::clock::now() < at {
                std::hint::spin_loop();
            }
        }
    }

    /// Streams the thread serves now (slots in use).
    fn live(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// The first frame's tick: the least used phase within one frame period from `due`.
    fn first_tick(&self, due: Instant) -> u64 {
        let first = tick_from(self.epoch, due);
        (first..first + PHASES as u64)
            .min_by_key(|&t| self.phases[phase_of(t)])
            .unwrap_or(first)
    }

    /// Take a stream on; `Err` gives the request back when its call task holds the leg (try
    /// again next tick: this thread never waits for a task).
    fn start(
        &mut self,
        stream: Arc<Stream>,
        sock: UdpSocket,
        sideband: Option<Sideband>,
    ) -> Result<(), Request> {
        let Some(mut leg) = stream.try_leg() else {
            return Err(Request::Start {
                stream,
                sock,
                sideband,
            });
        };
        let tick = self.first_tick(leg.next_frame_due());
        leg.start_at(at_tick(self.epoch, tick));
        drop(leg);
        let phase = phase_of(tick);
        self.phases[phase] += 1;
        let idx = self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            self.entries.len() - 1
        });
        match &mut self.io {
            Io::Uring(ring) => ring.watch(idx, sock.as_raw_fd()),
            Io::Epoll { epoll, .. } => {
                if let Err(e) = epoll.add(&sock, idx as u64) {
                    warn!(error = %e, "RTP socket not watched: the caller's audio and keys are lost");
                }
            }
        }
        self.generations = self.generations.wrapping_add(1);
        let generation = self.generations;
        self.entries[idx] = Some(Entry {
            stream,
            sock,
            connected: None,
            generation,
            phase,
            leaving: false,
            bridge: None,
            sideband,
        });
        self.schedule.push(tick, due_entry(idx, generation));
        Ok(())
    }

    /// The slot serving `stream` (and not already leaving).
    fn slot_of(&self, stream: &Arc<Stream>) -> Option<usize> {
        self.entries.iter().position(|e| {
            e.as_ref()
                .is_some_and(|e| !e.leaving && Arc::ptr_eq(&e.stream, stream))
        })
    }

    /// Stop serving slot `idx` (its call is over): nothing more is sent, and once the kernel
    /// has let go of the socket (at once with epoll, after the receive is cancelled with
    /// io_uring) it is closed ([`Self::finish`]). A bridge it was in ends.
    fn leave(&mut self, idx: usize) {
        self.unbridge_slot(idx);
        let Some(entry) = self.entries.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if entry.leaving {
            return;
        }
        entry.leaving = true;
        match &mut self.io {
            Io::Uring(ring) => ring.stop(idx),
            Io::Epoll { epoll, .. } => {
                epoll.remove(&entry.sock);
                self.finish(idx);
            }
        }
    }

    /// Free a slot that has left, closing its socket. Its schedule entry is dropped when it
    /// comes up (its generation is gone).
    fn finish(&mut self, idx: usize) {
        let Some(entry) = self.entries.get_mut(idx).and_then(Option::take) else {
            return;
        };
        self.free.push(idx);
        self.phases[entry.phase] -= 1;
    }

    /// Feed what arrived on every socket to its leg.
    fn receive(&mut self, now: Instant) {
        if matches!(self.io, Io::Uring(_)) {
            self.receive_uring(now);
        } else {
            self.receive_epoll(now);
        }
    }

    fn receive_uring(&mut self, now: Instant) {
        let Io::Uring(ring) = &mut self.io else {
            return;
        };
        if let Err(e) = ring.enter() {
            warn!(error = %e, "io_uring failed: this tick's frames are lost, nothing received");
        }
        // Those that waited for a busy leg first, then this tick's, in arrival order.
        let mut arrivals = std::mem::take(&mut self.arrivals);
        arrivals.append(&mut self.undelivered);
        ring.take(&mut arrivals, &mut self.stopped);
        for (i, a) in arrivals.iter().enumerate() {
            let idx = |k: usize| arrivals.get(i + k).map(|a| a.idx);
            self.prefetch(idx(PREFETCH_ENTRY), idx(PREFETCH_STREAM));
            self.deliver(now, *a);
        }
        arrivals.clear();
        self.arrivals = arrivals;
        // Bridged audio leaves in the tick it was taken (a no-op when nothing was relayed).
        if let Io::Uring(ring) = &mut self.io
            && let Err(e) = ring.flush()
        {
            warn!(error = %e, "io_uring submit failed: relayed packets are lost");
        }
        for Stopped(idx) in std::mem::take(&mut self.stopped) {
            self.finish(idx);
        }
    }

    /// Feed a datagram to its leg (or, bridged, relay it), or keep it for the next tick if
    /// the leg is busy.
    fn deliver(&mut self, now: Instant, a: Arrival) {
        let Self {
            io: Io::Uring(ring),
            entries,
            ..
        } = self
        else {
            return;
        };
        let entry = entries
            .get(a.idx)
            .and_then(Option::as_ref)
            .filter(|e| !e.leaving);
        let Some(entry) = entry else {
            ring.recycle(a);
            return;
        };
        if entry.sideband.is_some()
            && let Some((from, bytes)) = ring.datagram(&a)
            && webrtc::divert(entry.sideband.as_ref(), from, bytes)
        {
            ring.recycle(a);
            return;
        }
        if entry.bridge.is_some() {
            let mut out = [0u8; RELAY_BUF];
            let relayed = match ring.datagram(&a) {
                Some((from, bytes)) => relay(entries, a.idx, now, from, bytes, &mut out),
                None => Relayed::Nothing,
            };
            match relayed {
                Relayed::Busy => self.undelivered.push(a),
                Relayed::Nothing => ring.recycle(a),
                Relayed::Send { peer, n, dest } => {
                    ring.recycle(a);
                    send_to_slot(&mut self.io, entries, peer, &out[..n], dest);
                }
            }
            return;
        }
        // Busy: the datagram waits in its buffer for the next tick.
        let Some(mut leg) = entry.stream.try_leg() else {
            self.undelivered.push(a);
            return;
        };
        if let Some((from, bytes)) = ring.datagram(&a) {
            leg.handle_datagram(now, from, bytes);
        }
        ring.recycle(a);
        if leg.has_events() {
            entry.stream.news.notify_one();
        }
    }

    /// Feed every datagram waiting on a ready socket to its leg (or, bridged, relay it).
    fn receive_epoll(&mut self, now: Instant) {
        let Self {
            io: Io::Epoll { epoll, batch },
            entries,
            ..
        } = self
        else {
            return;
        };
        for token in epoll.ready_now() {
            let Ok(idx) = usize::try_from(token) else {
                continue;
            };
            let Some(entry) = entries.get(idx).and_then(Option::as_ref) else {
                continue;
            };
            if entry.bridge.is_some() {
                relay_ready(entries, batch, idx, now);
                continue;
            }
            // Busy: the socket stays ready and is read next tick.
            let Some(mut leg) = entry.stream.try_leg() else {
                continue;
            };
            let n = batch.recv(&entry.sock);
            for i in 0..n {
                if let Some((from, bytes)) = batch.get(i)
                    && !webrtc::divert(entry.sideband.as_ref(), from, bytes)
                {
                    leg.handle_datagram(now, from, bytes);
                }
            }
            if leg.has_events() {
                entry.stream.news.notify_one();
            }
        }
    }

    fn send_due(&mut self, now: Instant, buf: &mut [u8; MAX_PACKET]) {
        let mut due = std::mem::take(&mut self.due);
        self.schedule
            .take_due(tick_before(self.epoch, now), &mut due);
        for (i, &d) in due.iter().enumerate() {
            let idx = |k: usize| due.get(i + k).map(|d| d.idx as usize);
            self.prefetch(idx(PREFETCH_ENTRY), idx(PREFETCH_STREAM));
            self.send_frames(now, d, buf);
        }
        due.clear();
        self.due = due;
    }

    /// Start loading what serving two streams further on (by slot) will touch, so that serving
    /// them does not wait for memory: the entry of `far`, and the state of `near` (its entry
    /// was fetched a few streams ago). Streams' state is cold: each is touched once per frame.
    fn prefetch(&self, far: Option<usize>, near: Option<usize>) {
        if let Some(idx) = far {
            prefetch(self.entries.as_ptr().wrapping_add(idx));
        }
        if let Some(Some(e)) = near.and_then(|idx| self.entries.get(idx)) {
            e.stream.prefetch();
        }
    }

    /// Send the frames due on `d`'s stream, and schedule its next.
    fn send_frames(&mut self, now: Instant, d: Due, buf: &mut [u8; MAX_PACKET]) {
        let idx = d.idx as usize;
        let epoch = self.epoch;
        let Some(entry) = self
            .entries
            .get_mut(idx)
            .and_then(Option::as_mut)
            .filter(|e| e.generation == d.generation && !e.leaving)
        else {
            return;
        };
        // The call task let go of its handle: the call is over.
        if Arc::strong_count(&entry.stream) == 1 {
            self.leave(idx);
            return;
        }
        let Entry {
            stream,
            sock,
            connected,
            bridge: entry_bridge,
            ..
        } = entry;
        let Some(mut leg) = stream.try_leg() else {
            // Busy: try again next tick (the frame goes out a tick late, once).
            self.schedule.push(tick_before(epoch, now) + 1, d);
            return;
        };
        // A bridge made or ended while the leg was busy takes effect now.
        let bridged = entry_bridge.is_some();
        if leg.bridged() != bridged {
            leg.set_bridged(bridged);
        }
        // The inactivity timer, here so that a bridged call (whose task may wait for nothing
        // else) hears of it too: a no-op until it is due.
        leg.handle_timeout(now);
        while let Some((n, dest)) = leg.poll_transmit(now, buf) {
            send(&mut self.io, idx, sock, connected, &buf[..n], dest);
        }
        let (next, news) = (leg.next_frame_due(), leg.has_events());
        drop(leg);
        if news {
            stream.news.notify_one();
        }
        self.schedule.push(tick_from(epoch, next), d);
    }
}

/// How far ahead of the stream being served the clock fetches another's entry, and its state.
const PREFETCH_ENTRY: usize = 8;
const PREFETCH_STREAM: usize = 4;

/// Ask the CPU to start loading the cache line at `p` (a hint: it never faults).
#[inline]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn due_entry(idx: usize, generation: u32) -> Due {
    Due {
        idx: u32::try_from(idx).unwrap_or(u32::MAX),
        generation,
    }
}

/// The first tick at or after `at` (ticks are numbered from the clock's `epoch`).
fn tick_from(epoch: Instant, at: Instant) -> u64 {
    let since = at.saturating_duration_since(epoch).as_nanos();
    u64::try_from(since.div_ceil(TICK.as_nanos())).unwrap_or(u64::MAX)
}

/// The last tick at or before `at`.
fn tick_before(epoch: Instant, at: Instant) -> u64 {
    let since = at.saturating_duration_since(epoch).as_nanos();
    u64::try_from(since / TICK.as_nanos()).unwrap_or(u64::MAX)
}

/// When tick `tick` is.
fn at_tick(epoch: Instant, tick: u64) -> Instant {
    let nanos = u64::try_from(TICK.as_nanos()).unwrap_or(u64::MAX);
    epoch + Duration::from_nanos(tick.saturating_mul(nanos))
}

/// The tick to wake for, at `this` tick, with the earliest frame due on tick `due`: the next
/// tick, or `due` if it is not later — a tick whose frames the work overran is served at once.
fn wake_tick(due: Option<u64>, this: u64) -> u64 {
    due.map_or(this + 1, |due| due.min(this + 1))
}

/// The phase of the frame period tick `tick` is on.
#[allow(clippy::cast_possible_truncation)]
fn phase_of(tick: u64) -> usize {
    (tick % PHASES as u64) as usize
}

/// Whether a start request for `stream` waits (for its leg) in `requests`.
fn starting(requests: &[Request], stream: &Arc<Stream>) -> bool {
    requests
        .iter()
        .any(|r| matches!(r, Request::Start { stream: s, .. } if Arc::ptr_eq(s, stream)))
}

/// Send on a stream's socket, connected to `dest` (re-connected when the far end moved).
fn send(
    io: &mut Io,
    idx: usize,
    sock: &UdpSocket,
    connected: &mut Option<SocketAddr>,
    bytes: &[u8],
    dest: SocketAddr,
) {
    match io {
        // Longer than a pooled send buffer (a relayed packet of more than 20 ms): a system call.
        Io::Uring(ring) if bytes.len() <= SEND_BUF => {
            if *connected != Some(dest) {
                *connected = sock.connect(dest).ok().map(|()| dest);
            }
            if *connected == Some(dest) {
                ring.send(idx, sock.as_raw_fd(), bytes);
            } else {
                send_socket(sock, connected, bytes, dest);
            }
        }
        _ => send_socket(sock, connected, bytes, dest),
    }
}

/// Send on a stream's socket now (one system call), connected to `dest` if it can be.
fn send_socket(
    sock: &UdpSocket,
    connected: &mut Option<SocketAddr>,
    bytes: &[u8],
    dest: SocketAddr,
) {
    if *connected != Some(dest) {
        *connected = sock.connect(dest).ok().map(|()| dest);
    }
    let sent = if *connected == Some(dest) {
        sock.send(bytes)
    } else {
        sock.send_to(bytes, dest)
    };
    if let Err(e) = sent {
        debug!(error = %e, "RTP send failed");
    }
}

#[cfg(test)]
mod tests;
