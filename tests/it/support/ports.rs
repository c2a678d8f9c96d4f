//! Ports for the peers a test starts: SIPp phones, SIPp media and Hammond's RTP range.
//!
//! They come from one block below the kernel's ephemeral range (32768 and up), handed out by
//! a counter, so two tests running in parallel never get the same port, and no socket bound
//! to port 0 (Hammond's SIP and HTTP listeners, SIPp's callers) can take a port between the
//! probe here and the peer's own bind. That race is what a probe of a kernel-chosen port had.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU32, Ordering};

/// Tests' ports, in two runs: clear of the privileged ports, of SIPp's defaults (SIP from
/// 5060 up, media from 6000 up), of PostgreSQL's 5432, of the benchmarks' RTP range (20000+)
/// and of the kernel's ephemeral range (32768+). A block never straddles the gap. A full run
/// of the integration tests hands out about 6,400 ports (64 per Hammond), well within them.
const RUNS: [(u32, u32); 2] = [(1_100, 5_000), (7_200, 20_000)];

/// How many ports the runs hold together.
const TOTAL: u32 = (RUNS[0].1 - RUNS[0].0) + (RUNS[1].1 - RUNS[1].0);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The port at `index` of the runs laid end to end.
fn port_at(index: u32) -> u32 {
    let first_run = RUNS[0].1 - RUNS[0].0;
    if index < first_run {
        RUNS[0].0 + index
    } else {
        RUNS[1].0 + (index - first_run)
    }
}

/// `n` consecutive UDP ports, the first even, all free on loopback right now.
pub(crate) fn block(n: u16) -> u16 {
    let n = u32::from(n.max(1)).next_multiple_of(2);
    // Each test binary starts at its own offset, so test binaries run side by side by hand
    // rarely meet either.
    let start = (std::process::id() % 50) * 200;
    loop {
        let offset = NEXT.fetch_add(n, Ordering::Relaxed);
        // One modulus for every size, so the counter's wrap is a rotation: a port comes round
        // again only after all the others (a modulus of `TOTAL - n` moved each size's wrap
        // point differently, and a large block after the wrap overlapped small ones handed
        // out just before it). A block that would run off the end is skipped.
        let index = (start + offset) % TOTAL;
        let first = port_at(index) & !1;
        let last = first + n - 1;
        let in_one_run = RUNS.iter().any(|&(a, b)| first >= a && last < b);
        if !in_one_run {
            continue;
        }
        let free = (first..=last).all(|p| UdpSocket::bind(("127.0.0.1", p as u16)).is_ok());
        if free {
            return first as u16;
        }
    }
}

/// One free UDP port (a SIPp phone's SIP port).
pub(crate) fn one() -> u16 {
    block(1)
}
