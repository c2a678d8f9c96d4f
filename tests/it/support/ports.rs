//! Ports for the peers a test starts: SIPp phones, SIPp media and Hammond's RTP range.
//!
//! They come from one block below the kernel's ephemeral range (32768 and up), handed out by
//! a counter, so two tests running in parallel never get the same port, and no socket bound
//! to port 0 (Hammond's SIP and HTTP listeners, SIPp's callers) can take a port between the
//! probe here and the peer's own bind. That race is what a probe of a kernel-chosen port had.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU32, Ordering};

/// Tests' ports: clear of the ephemeral range, of the benchmarks' RTP range (20000+) and of
/// SIPp's defaults (SIP from 5060 up, media from 6000 up). The wider the block, the later the
/// counter wraps: a full run hands out about ten thousand ports (64 per Hammond), and after a
/// wrap a port handed out earlier but bound late (a trunk phone that a test starts near its
/// end) can be handed out again while it is still free.
const FIRST: u32 = 7_200;
const END: u32 = 20_000;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `n` consecutive UDP ports, the first even, all free on loopback right now.
pub(crate) fn block(n: u16) -> u16 {
    let n = u32::from(n.max(1)).next_multiple_of(2);
    // Each test binary starts at its own offset, so test binaries run side by side by hand
    // rarely meet either.
    let start = (std::process::id() % 50) * 200;
    loop {
        let offset = NEXT.fetch_add(n, Ordering::Relaxed);
        let first = FIRST + (start + offset) % (END - FIRST - n);
        let first = first & !1;
        let free = (first..first + n).all(|p| UdpSocket::bind(("127.0.0.1", p as u16)).is_ok());
        if free {
            return first as u16;
        }
    }
}

/// One free UDP port (a SIPp phone's SIP port).
pub(crate) fn one() -> u16 {
    block(1)
}
