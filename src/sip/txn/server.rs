//! Server transactions: INVITE (§17.2.1, figure 7, with RFC 6026's Accepted state) and
//! non-INVITE (§17.2.2, figure 8).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Deadlines, TimerValues, Transport, TxnOutput, Wire};

/// INVITE server transaction states. Each holds only what is valid in it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InviteState {
    /// Provisional responses only; a retransmitted INVITE gets the latest one again.
    Proceeding {
        last: Option<Wire>,
    },
    /// A non-2xx final was sent: retransmit it on Timer G until ACK or Timer H.
    Completed {
        response: Wire,
        interval: Duration,
    },
    /// A 2xx was sent (RFC 6026 §7.1): the UAS core's 2xx retransmission of §13.3.1.4 lives here,
    /// doubling up to T2 until the ACK arrives or Timer H (64·T1) gives up.
    Accepted {
        response: Wire,
        interval: Duration,
    },
    /// ACK for a non-2xx seen: absorb further ACKs until Timer I.
    Confirmed,
    Terminated,
}

/// Timers of the INVITE server transaction.
#[derive(Debug, Clone, Copy)]
enum InviteTimer {
    /// G: retransmit the final response (non-2xx on UDP; 2xx on any transport).
    G = 0,
    /// H: give up waiting for the ACK.
    H = 1,
    /// I: absorb ACK retransmissions, then terminate.
    I = 2,
}

/// The INVITE server transaction, created when a new INVITE arrives. The caller sends 100
/// Trying through [`InviteServer::respond`] at once (§17.2.1: within 200 ms; we do it at once).
#[derive(Debug)]
pub struct InviteServer {
    state: InviteState,
    transport: Transport,
    timers: TimerValues,
    deadlines: Deadlines<3>,
    out: VecDeque<TxnOutput>,
}

impl InviteServer {
    pub fn new(transport: Transport, timers: TimerValues) -> Self {
        Self {
            state: InviteState::Proceeding { last: None },
            transport,
            timers,
            deadlines: Deadlines::default(),
            out: VecDeque::new(),
        }
    }

    /// Send a response from the transaction user (provisional or final). Responses after a
    /// final one are ignored: §17.2.1 allows only one final response.
    pub fn respond(&mut self, now: Instant, status: u16, bytes: Wire) {
        let InviteState::Proceeding { .. } = self.state else {
            return;
        };
        self.out.push_back(TxnOutput::Transmit(bytes.clone()));
        let t1 = self.timers.t1;
        self.state = match status {
            100..=199 => InviteState::Proceeding { last: Some(bytes) },
            200..=299 => {
                self.arm(InviteTimer::G, now + t1);
                self.arm(InviteTimer::H, now + self.timers.t1x64());
                InviteState::Accepted {
                    response: bytes,
                    interval: t1,
                }
            }
            _ => {
                if !self.transport.is_reliable() {
                    self.arm(InviteTimer::G, now + t1);
                }
                self.arm(InviteTimer::H, now + self.timers.t1x64());
                InviteState::Completed {
                    response: bytes,
                    interval: t1,
                }
            }
        };
    }

    /// A retransmission of the INVITE arrived: resend the latest response (§17.2.1).
    pub fn handle_retransmission(&mut self) {
        match &self.state {
            InviteState::Proceeding { last: Some(r) }
            | InviteState::Completed { response: r, .. }
            | InviteState::Accepted { response: r, .. } => {
                self.out.push_back(TxnOutput::Transmit(r.clone()));
            }
            InviteState::Proceeding { last: None }
            | InviteState::Confirmed
            | InviteState::Terminated => {}
        }
    }

    /// The ACK for our final response arrived (matched by branch for non-2xx, by dialog for 2xx).
    pub fn handle_ack(&mut self, now: Instant) {
        self.state = match std::mem::replace(&mut self.state, InviteState::Terminated) {
            InviteState::Completed { .. } => {
                self.deadlines.clear();
                let wait = if self.transport.is_reliable() {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.arm(InviteTimer::I, now + wait);
                InviteState::Confirmed
            }
            InviteState::Accepted { .. } => self.terminate(),
            s @ (InviteState::Proceeding { .. }
            | InviteState::Confirmed
            | InviteState::Terminated) => s,
        };
    }

    /// Whether a final response has been sent (so a CANCEL is too late, §9.2).
    pub fn has_final(&self) -> bool {
        !matches!(self.state, InviteState::Proceeding { .. })
    }

    pub fn is_terminated(&self) -> bool {
        self.state == InviteState::Terminated
    }

    /// When to call [`Self::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    /// Fire due timers. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadlines.take_due(InviteTimer::H as usize, now) {
            self.out.push_back(TxnOutput::AckTimeout);
            self.state = self.terminate();
            return;
        }
        if self.deadlines.take_due(InviteTimer::I as usize, now) {
            self.state = self.terminate();
            return;
        }
        if self.deadlines.take_due(InviteTimer::G as usize, now) {
            let t2 = self.timers.t2;
            match &mut self.state {
                InviteState::Completed { response, interval }
                | InviteState::Accepted { response, interval } => {
                    // §17.2.1: G doubles up to T2.
                    *interval = (*interval * 2).min(t2);
                    let (r, next) = (response.clone(), now + *interval);
                    self.out.push_back(TxnOutput::Transmit(r));
                    self.arm(InviteTimer::G, next);
                }
                InviteState::Proceeding { .. }
                | InviteState::Confirmed
                | InviteState::Terminated => {}
            }
        }
    }

    /// The next output to act on; drain after every `handle_*`.
    pub fn poll_output(&mut self) -> Option<TxnOutput> {
        self.out.pop_front()
    }

    fn arm(&mut self, t: InviteTimer, at: Instant) {
        self.deadlines.0[t as usize] = Some(at);
    }

    fn terminate(&mut self) -> InviteState {
        self.deadlines.clear();
        self.out.push_back(TxnOutput::Terminated);
        InviteState::Terminated
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NonInviteState {
    Trying,
    Proceeding {
        last: Wire,
    },
    /// Final sent; absorb retransmissions until Timer J.
    Completed {
        response: Wire,
    },
    Terminated,
}

/// The non-INVITE server transaction (BYE, OPTIONS, INFO, CANCEL, REFER's NOTIFY…).
#[derive(Debug)]
pub struct NonInviteServer {
    state: NonInviteState,
    transport: Transport,
    timers: TimerValues,
    /// Timer J.
    j: Option<Instant>,
    out: VecDeque<TxnOutput>,
}

impl NonInviteServer {
    pub fn new(transport: Transport, timers: TimerValues) -> Self {
        Self {
            state: NonInviteState::Trying,
            transport,
            timers,
            j: None,
            out: VecDeque::new(),
        }
    }

    /// Send a response from the transaction user.
    pub fn respond(&mut self, now: Instant, status: u16, bytes: Wire) {
        self.state = match std::mem::replace(&mut self.state, NonInviteState::Terminated) {
            NonInviteState::Trying | NonInviteState::Proceeding { .. } => {
                self.out.push_back(TxnOutput::Transmit(bytes.clone()));
                if status < 200 {
                    NonInviteState::Proceeding { last: bytes }
                } else if self.transport.is_reliable() {
                    self.out.push_back(TxnOutput::Terminated);
                    NonInviteState::Terminated
                } else {
                    self.j = Some(now + self.timers.t1x64());
                    NonInviteState::Completed { response: bytes }
                }
            }
            s @ (NonInviteState::Completed { .. } | NonInviteState::Terminated) => s,
        };
    }

    /// A retransmitted request: resend the latest response, if any.
    pub fn handle_retransmission(&mut self) {
        match &self.state {
            NonInviteState::Proceeding { last: r } | NonInviteState::Completed { response: r } => {
                self.out.push_back(TxnOutput::Transmit(r.clone()));
            }
            NonInviteState::Trying | NonInviteState::Terminated => {}
        }
    }

    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteState::Terminated
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.j
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.j.is_some_and(|j| j <= now) {
            self.j = None;
            self.state = NonInviteState::Terminated;
            self.out.push_back(TxnOutput::Terminated);
        }
    }

    pub fn poll_output(&mut self) -> Option<TxnOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(s: &str) -> Wire {
        Wire::from(s.as_bytes())
    }

    fn drain(t: &mut InviteServer) -> Vec<TxnOutput> {
        std::iter::from_fn(|| t.poll_output()).collect()
    }

    /// Step through every deadline until the transaction stops asking, collecting outputs.
    fn run(
        t: &mut InviteServer,
        mut now: Instant,
        until: Instant,
    ) -> (Vec<(Duration, TxnOutput)>, Instant) {
        let start = now;
        let mut seen = Vec::new();
        while let Some(at) = t.poll_timeout() {
            if at > until {
                break;
            }
            now = at;
            t.handle_timeout(now);
            seen.extend(drain(t).into_iter().map(|o| (now - start, o)));
        }
        (seen, now)
    }

    #[test]
    fn non_2xx_on_udp_retransmits_on_timer_g_until_timer_h() {
        let t0 = crate::clock::now();
        let mut t = InviteServer::new(Transport::Unreliable, TimerValues::default());
        t.respond(t0, 100, wire("100"));
        t.respond(t0, 486, wire("486"));
        assert_eq!(drain(&mut t).len(), 2);
        let (seen, end) = run(&mut t, t0, t0 + Duration::from_secs(60));
        let retx: Vec<_> = seen
            .iter()
            .filter(|(_, o)| matches!(o, TxnOutput::Transmit(_)))
            .map(|(d, _)| d.as_millis())
            .collect();
        // 0.5, 1.5, 3.5, 7.5, 11.5, 15.5 … (interval doubles to T2 = 4 s) until H at 32 s.
        assert_eq!(&retx[..5], &[500, 1500, 3500, 7500, 11500]);
        assert!(seen.iter().any(|(_, o)| *o == TxnOutput::AckTimeout));
        assert_eq!(end - t0, Duration::from_secs(32));
        assert!(t.is_terminated());
    }

    #[test]
    fn ack_stops_retransmissions_and_timer_i_ends_it() {
        let t0 = crate::clock::now();
        let mut t = InviteServer::new(Transport::Unreliable, TimerValues::default());
        t.respond(t0, 404, wire("404"));
        t.handle_ack(t0 + Duration::from_millis(100));
        drain(&mut t);
        let (seen, end) = run(&mut t, t0, t0 + Duration::from_secs(60));
        assert_eq!(
            seen,
            vec![(Duration::from_millis(5100), TxnOutput::Terminated)]
        );
        assert_eq!(end - t0, Duration::from_millis(5100));
    }

    #[test]
    fn two_hundred_is_retransmitted_even_on_tcp_until_ack() {
        let t0 = crate::clock::now();
        let mut t = InviteServer::new(Transport::Reliable, TimerValues::default());
        t.respond(t0, 200, wire("200"));
        drain(&mut t);
        let (seen, _) = run(&mut t, t0, t0 + Duration::from_millis(1600));
        assert_eq!(seen.len(), 2, "{seen:?}");
        t.handle_ack(t0 + Duration::from_millis(1700));
        assert_eq!(drain(&mut t), vec![TxnOutput::Terminated]);
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn retransmitted_invite_gets_the_same_response() {
        let t0 = crate::clock::now();
        let mut t = InviteServer::new(Transport::Unreliable, TimerValues::default());
        t.handle_retransmission();
        assert!(
            drain(&mut t).is_empty(),
            "nothing sent yet, nothing to repeat"
        );
        t.respond(t0, 180, wire("180"));
        drain(&mut t);
        t.handle_retransmission();
        assert_eq!(drain(&mut t), vec![TxnOutput::Transmit(wire("180"))]);
        t.respond(t0, 200, wire("200"));
        t.respond(t0, 486, wire("486 ignored"));
        drain(&mut t);
        t.handle_retransmission();
        assert_eq!(drain(&mut t), vec![TxnOutput::Transmit(wire("200"))]);
    }

    #[test]
    fn non_invite_absorbs_retransmissions_until_timer_j() {
        let t0 = crate::clock::now();
        let mut t = NonInviteServer::new(Transport::Unreliable, TimerValues::default());
        t.respond(t0, 200, wire("200"));
        t.handle_retransmission();
        let out: Vec<_> = std::iter::from_fn(|| t.poll_output()).collect();
        assert_eq!(out.len(), 2);
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        t.handle_timeout(t0 + Duration::from_secs(31));
        assert!(!t.is_terminated());
        t.handle_timeout(t0 + Duration::from_secs(32));
        assert!(t.is_terminated());
    }

    #[test]
    fn non_invite_on_tcp_ends_at_once() {
        let mut t = NonInviteServer::new(Transport::Reliable, TimerValues::default());
        t.respond(crate::clock::now(), 200, wire("200"));
        assert!(t.is_terminated());
    }
}
