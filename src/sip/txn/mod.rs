//! SIP transactions, RFC 3261 §17 (with the RFC 6026 "Accepted" state for 2xx), PURE.
//!
//! Each transaction is a small state machine driven by the user agent: it is handed the bytes it
//! sends and the events that reach it (a retransmitted request, an ACK, a response) together with
//! `now`, and it answers through [`TxnOutput`]s pulled with `poll_output`. It never reads a clock
//! and never touches a socket: Timer A/B/D/E/F/G/H/I/J/K are deadlines the shell waits for.
//!
//! Retransmissions (Timers A, E, G) only happen on unreliable transports (UDP); the 2xx
//! retransmission of §13.3.1.4 happens on every transport, because the ACK is end-to-end.

mod client;
mod server;

pub use client::{InviteClient, NonInviteClient};
pub use server::{InviteServer, NonInviteServer};

use std::sync::Arc;
use std::time::Duration;

/// T1, T2 and T4 of §17.1.1.1 (defaults 500 ms, 4 s, 5 s), configurable per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerValues {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerValues {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerValues {
    /// 64·T1: Timers B, F, H and J.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Bytes a transaction wants on the wire, shared so retransmissions do not copy.
pub type Wire = Arc<[u8]>;

/// What a transaction tells its user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutput {
    /// Send these bytes to the transaction's peer.
    Transmit(Wire),
    /// A response arrived that the transaction user must see (client transactions).
    Response { status: u16 },
    /// Timer B / F: the peer never answered (client), §17.1.1.2, §17.1.2.2.
    Timeout,
    /// Timer H: our final response was never acknowledged (server INVITE), §17.2.1.
    AckTimeout,
    /// The transaction is over; the user agent may forget it.
    Terminated,
}

/// Whether the transport retransmits for us (TCP) or not (UDP), §17.1.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Unreliable,
    Reliable,
}

impl Transport {
    pub fn is_reliable(self) -> bool {
        self == Self::Reliable
    }
}

/// A deadline set: `next()` is the earliest armed timer, as the shell needs for `poll_timeout`.
#[derive(Debug, Clone)]
pub(crate) struct Deadlines<const N: usize>(pub(crate) [Option<std::time::Instant>; N]);

impl<const N: usize> Default for Deadlines<N> {
    fn default() -> Self {
        Self([None; N])
    }
}

impl<const N: usize> Deadlines<N> {
    pub(crate) fn next(&self) -> Option<std::time::Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Take timer `i` if it is due at `now`.
    pub(crate) fn take_due(&mut self, i: usize, now: std::time::Instant) -> bool {
        match self.0[i] {
            Some(at) if at <= now => {
                self.0[i] = None;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.0 = [None; N];
    }
}
