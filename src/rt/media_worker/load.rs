//! The media thread's load, published as an overload flag for new calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tracing::warn;

/// The share above which new calls are refused (the media thread runs at real-time priority:
/// past this, SIP and the API would starve), and below which they are taken again.
const OVERLOAD_ON: f64 = 0.85;
const OVERLOAD_OFF: f64 = 0.70;
/// The same for the whole process's share of its cores: closer to full, since only its own
/// threads compete with it there, and a refusal costs a caller. It must hold for two windows
/// in a row: after a pause of the host (a few hundred milliseconds) the process runs flat out
/// for a window while it catches up, and refusing calls for that alone cost 5 % of a 1,000
/// set-ups/s run.
const PROCESS_OVERLOAD_ON: f64 = 0.95;
const PROCESS_OVERLOAD_OFF: f64 = 0.85;
/// How often the busy share is judged.
const LOAD_WINDOW: Duration = Duration::from_millis(500);

/// The load over [`LOAD_WINDOW`], published as an overload flag: the media thread's busy share
/// of a core (past [`OVERLOAD_ON`]), and the whole process's share of the cores it may run on
/// (past [`PROCESS_OVERLOAD_ON`] for two windows). Either refuses new calls: a process out of
/// CPU answers late, callers retransmit and give up, and the calls they abandoned keep costing
/// until they time out — without the refusal, one stall at a high set-up rate snowballed into
/// a collapse (scenario 2).
pub(super) struct Load {
    flag: Arc<AtomicBool>,
    since: Instant,
    busy: Duration,
    /// The process's CPU time at `since`, and the cores it may use.
    process_cpu: Duration,
    cores: f64,
    /// The last window's process share was past [`PROCESS_OVERLOAD_ON`].
    process_was_full: bool,
}

/// Whether new calls are refused after a window in which the media thread was busy `media` of
/// its core and the process `process` of its cores, given whether they were refused
/// (`was`) and whether the window before was past [`PROCESS_OVERLOAD_ON`] too.
pub(super) fn overloaded(was: bool, media: f64, process: f64, process_was_full: bool) -> bool {
    if was {
        media > OVERLOAD_OFF || process > PROCESS_OVERLOAD_OFF
    } else {
        media > OVERLOAD_ON || (process > PROCESS_OVERLOAD_ON && process_was_full)
    }
}

impl Load {
    pub(super) fn new(flag: Arc<AtomicBool>, now: Instant) -> Self {
        Self {
            flag,
            since: now,
            busy: Duration::ZERO,
            process_cpu: process_cpu(),
            cores: thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
            process_was_full: false,
        }
    }

    /// Count `busy` spent working; at the end of a window, judge it.
    pub(super) fn record(&mut self, busy: Duration, now: Instant) {
        self.busy += busy;
        let window = now.saturating_duration_since(self.since);
        if window < LOAD_WINDOW {
            return;
        }
        let cpu = process_cpu();
        let media = self.busy.as_secs_f64() / window.as_secs_f64();
        let process =
            cpu.saturating_sub(self.process_cpu).as_secs_f64() / window.as_secs_f64() / self.cores;
        let was = self.flag.load(Ordering::Relaxed);
        let is = overloaded(was, media, process, self.process_was_full);
        self.process_was_full = process > PROCESS_OVERLOAD_ON;
        if is != was {
            warn!(
                media = format!("{:.0}%", media * 100.0),
                process = format!("{:.0}%", process * 100.0),
                "{}",
                if is {
                    "overloaded: new calls get 503"
                } else {
                    "no longer overloaded"
                }
            );
            self.flag.store(is, Ordering::Relaxed);
        }
        self.since = now;
        self.busy = Duration::ZERO;
        self.process_cpu = cpu;
    }
}

impl Load {
    /// Nothing to serve: whatever load there was is gone (the flag would otherwise stay set
    /// while the thread sleeps, refusing every call).
    pub(super) fn idle(&mut self, now: Instant) {
        if self.flag.swap(false, Ordering::Relaxed) {
            warn!("no longer overloaded (no calls left)");
        }
        self.since = now;
        self.busy = Duration::ZERO;
        self.process_cpu = process_cpu();
        self.process_was_full = false;
    }
}

/// CPU time (user + system) this process has used so far.
fn process_cpu() -> Duration {
    // SAFETY: plain data; all-zero is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage(2) writes only `ru`, which lives across the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
