//! Client transactions: INVITE (§17.1.1, figure 5, with RFC 6026's Accepted state) and
//! non-INVITE (§17.1.2, figure 6). Used by Hammond's outbound legs (callbacks, agents) and
//! its in-dialog requests (BYE, REFER).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Deadlines, TimerValues, Transport, TxnOutput, Wire};

#[derive(Debug, Clone, PartialEq, Eq)]
enum InviteState {
    /// INVITE sent; Timer A retransmits it (UDP), Timer B gives up.
    Calling {
        interval: Duration,
    },
    Proceeding,
    /// A non-2xx final arrived and was ACKed; resend the ACK for retransmitted finals until Timer D.
    Completed {
        ack: Wire,
    },
    /// A 2xx arrived (RFC 6026 §8.4): absorb 2xx retransmissions until Timer M; the dialog ACKs them.
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy)]
enum InviteTimer {
    /// A: retransmit the INVITE (UDP only), doubling.
    A = 0,
    /// B: 64·T1 without any response → timeout.
    B = 1,
    /// D: wait for final-response retransmissions (32 s on UDP, 0 on TCP).
    D = 2,
    /// M: RFC 6026 — 64·T1 to absorb retransmitted 2xx.
    M = 3,
}

/// The INVITE client transaction. Create it with the INVITE bytes (already sent through the
/// first `poll_output`), feed it responses with [`Self::handle_response`].
#[derive(Debug)]
pub struct InviteClient {
    state: InviteState,
    request: Wire,
    transport: Transport,
    timers: TimerValues,
    deadlines: Deadlines<4>,
    out: VecDeque<TxnOutput>,
}

impl InviteClient {
    /// Start the transaction: the INVITE is queued for transmission at once.
    pub fn new(now: Instant, request: Wire, transport: Transport, timers: TimerValues) -> Self {
        let mut t = Self {
            state: InviteState::Calling {
                interval: timers.t1,
            },
            request: request.clone(),
            transport,
            timers,
            deadlines: Deadlines::default(),
            out: VecDeque::from([TxnOutput::Transmit(request)]),
        };
        if !transport.is_reliable() {
            t.deadlines.0[InviteTimer::A as usize] = Some(now + timers.t1);
        }
        t.deadlines.0[InviteTimer::B as usize] = Some(now + timers.t1x64());
        t
    }

    /// A response matched this transaction. `ack` builds the ACK for a non-2xx final
    /// (§17.1.1.3: same branch, To from the response); it is only called when needed.
    pub fn handle_response(&mut self, now: Instant, status: u16, ack: impl FnOnce() -> Wire) {
        self.state = match (
            std::mem::replace(&mut self.state, InviteState::Terminated),
            status,
        ) {
            (InviteState::Calling { .. } | InviteState::Proceeding, 100..=199) => {
                self.deadlines.0[InviteTimer::A as usize] = None;
                // §17.1.1.2: Timer B is not stopped by provisionals in RFC 3261; the TU's ring
                // timeout (CANCEL) bounds the wait instead.
                self.deadlines.0[InviteTimer::B as usize] = None;
                self.out.push_back(TxnOutput::Response { status });
                InviteState::Proceeding
            }
            (InviteState::Calling { .. } | InviteState::Proceeding, 200..=299) => {
                self.deadlines.clear();
                self.deadlines.0[InviteTimer::M as usize] = Some(now + self.timers.t1x64());
                self.out.push_back(TxnOutput::Response { status });
                InviteState::Accepted
            }
            (InviteState::Calling { .. } | InviteState::Proceeding, _) => {
                self.deadlines.clear();
                let ack = ack();
                self.out.push_back(TxnOutput::Transmit(ack.clone()));
                self.out.push_back(TxnOutput::Response { status });
                let d = if self.transport.is_reliable() {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                self.deadlines.0[InviteTimer::D as usize] = Some(now + d);
                InviteState::Completed { ack }
            }
            (InviteState::Completed { ack }, 300..) => {
                // A retransmitted final: ACK again, tell nobody.
                self.out.push_back(TxnOutput::Transmit(ack.clone()));
                InviteState::Completed { ack }
            }
            (InviteState::Accepted, 200..=299) => {
                // Retransmitted 2xx: the dialog layer re-sends its ACK.
                self.out.push_back(TxnOutput::Response { status });
                InviteState::Accepted
            }
            (
                s @ (InviteState::Completed { .. }
                | InviteState::Accepted
                | InviteState::Terminated),
                _,
            ) => s,
        };
    }

    pub fn is_terminated(&self) -> bool {
        self.state == InviteState::Terminated
    }

    /// Whether a provisional has arrived: only then may a CANCEL be sent (§9.1).
    pub fn is_proceeding(&self) -> bool {
        self.state == InviteState::Proceeding
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadlines.take_due(InviteTimer::B as usize, now) {
            self.deadlines.clear();
            self.out.push_back(TxnOutput::Timeout);
            self.finish();
            return;
        }
        if self.deadlines.take_due(InviteTimer::D as usize, now)
            || self.deadlines.take_due(InviteTimer::M as usize, now)
        {
            self.finish();
            return;
        }
        if self.deadlines.take_due(InviteTimer::A as usize, now)
            && let InviteState::Calling { interval } = &mut self.state
        {
            // §17.1.1.2: A doubles each time (no T2 cap for INVITE).
            *interval *= 2;
            let next = now + *interval;
            self.out
                .push_back(TxnOutput::Transmit(self.request.clone()));
            self.deadlines.0[InviteTimer::A as usize] = Some(next);
        }
    }

    pub fn poll_output(&mut self) -> Option<TxnOutput> {
        self.out.pop_front()
    }

    fn finish(&mut self) {
        self.deadlines.clear();
        self.state = InviteState::Terminated;
        self.out.push_back(TxnOutput::Terminated);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NonInviteState {
    Trying { interval: Duration },
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug, Clone, Copy)]
enum NonInviteTimer {
    /// E: retransmit the request (UDP), doubling to T2; T2 once proceeding.
    E = 0,
    /// F: 64·T1 without a final → timeout.
    F = 1,
    /// K: absorb response retransmissions (T4 on UDP, 0 on TCP).
    K = 2,
}

/// The non-INVITE client transaction (BYE, CANCEL, REFER, INFO we send).
#[derive(Debug)]
pub struct NonInviteClient {
    state: NonInviteState,
    request: Wire,
    transport: Transport,
    timers: TimerValues,
    deadlines: Deadlines<3>,
    out: VecDeque<TxnOutput>,
}

impl NonInviteClient {
    pub fn new(now: Instant, request: Wire, transport: Transport, timers: TimerValues) -> Self {
        let mut t = Self {
            state: NonInviteState::Trying {
                interval: timers.t1,
            },
            request: request.clone(),
            transport,
            timers,
            deadlines: Deadlines::default(),
            out: VecDeque::from([TxnOutput::Transmit(request)]),
        };
        if !transport.is_reliable() {
            t.deadlines.0[NonInviteTimer::E as usize] = Some(now + timers.t1);
        }
        t.deadlines.0[NonInviteTimer::F as usize] = Some(now + timers.t1x64());
        t
    }

    pub fn handle_response(&mut self, now: Instant, status: u16) {
        self.state = match std::mem::replace(&mut self.state, NonInviteState::Terminated) {
            NonInviteState::Trying { .. } | NonInviteState::Proceeding if status < 200 => {
                self.out.push_back(TxnOutput::Response { status });
                NonInviteState::Proceeding
            }
            NonInviteState::Trying { .. } | NonInviteState::Proceeding => {
                self.deadlines.clear();
                self.out.push_back(TxnOutput::Response { status });
                let k = if self.transport.is_reliable() {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.deadlines.0[NonInviteTimer::K as usize] = Some(now + k);
                NonInviteState::Completed
            }
            s @ (NonInviteState::Completed | NonInviteState::Terminated) => s,
        };
    }

    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteState::Terminated
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadlines.take_due(NonInviteTimer::F as usize, now) {
            self.out.push_back(TxnOutput::Timeout);
            self.finish();
            return;
        }
        if self.deadlines.take_due(NonInviteTimer::K as usize, now) {
            self.finish();
            return;
        }
        if self.deadlines.take_due(NonInviteTimer::E as usize, now) {
            let t2 = self.timers.t2;
            let next = match &mut self.state {
                NonInviteState::Trying { interval } => {
                    *interval = (*interval * 2).min(t2);
                    Some(now + *interval)
                }
                NonInviteState::Proceeding => Some(now + t2),
                NonInviteState::Completed | NonInviteState::Terminated => None,
            };
            if let Some(next) = next {
                self.out
                    .push_back(TxnOutput::Transmit(self.request.clone()));
                self.deadlines.0[NonInviteTimer::E as usize] = Some(next);
            }
        }
    }

    pub fn poll_output(&mut self) -> Option<TxnOutput> {
        self.out.pop_front()
    }

    fn finish(&mut self) {
        self.deadlines.clear();
        self.state = NonInviteState::Terminated;
        self.out.push_back(TxnOutput::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(s: &str) -> Wire {
        Wire::from(s.as_bytes())
    }

    #[test]
    fn invite_to_a_silent_peer_gives_up_at_timer_b() {
        let t0 = crate::clock::now();
        let mut t = InviteClient::new(
            t0,
            wire("INVITE"),
            Transport::Unreliable,
            TimerValues::default(),
        );
        let mut sends = Vec::new();
        let mut now = t0;
        loop {
            while let Some(o) = t.poll_output() {
                match o {
                    TxnOutput::Transmit(_) => sends.push((now - t0).as_millis()),
                    TxnOutput::Timeout => {}
                    TxnOutput::Terminated => {
                        assert_eq!(now - t0, Duration::from_secs(32));
                        assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
                        return;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            now = t.poll_timeout().expect("timer armed");
            t.handle_timeout(now);
        }
    }

    #[test]
    fn non_2xx_is_acked_and_retransmitted_finals_acked_again() {
        let t0 = crate::clock::now();
        let mut t = InviteClient::new(
            t0,
            wire("INVITE"),
            Transport::Unreliable,
            TimerValues::default(),
        );
        t.poll_output();
        t.handle_response(t0, 180, || unreachable!());
        t.handle_response(t0, 486, || wire("ACK"));
        let out: Vec<_> = std::iter::from_fn(|| t.poll_output()).collect();
        assert_eq!(out[0], TxnOutput::Response { status: 180 });
        assert_eq!(out[1], TxnOutput::Transmit(wire("ACK")));
        assert_eq!(out[2], TxnOutput::Response { status: 486 });
        t.handle_response(t0, 486, || unreachable!());
        assert_eq!(t.poll_output(), Some(TxnOutput::Transmit(wire("ACK"))));
        t.handle_timeout(t0 + Duration::from_secs(32));
        assert!(t.is_terminated());
    }

    #[test]
    fn non_invite_retransmits_capped_at_t2_and_times_out_at_f() {
        let t0 = crate::clock::now();
        let mut t = NonInviteClient::new(
            t0,
            wire("BYE"),
            Transport::Unreliable,
            TimerValues::default(),
        );
        let mut sends = Vec::new();
        let mut now = t0;
        while !t.is_terminated() {
            while let Some(o) = t.poll_output() {
                if let TxnOutput::Transmit(_) = o {
                    sends.push((now - t0).as_millis());
                }
            }
            now = t.poll_timeout().unwrap_or(now);
            t.handle_timeout(now);
        }
        assert_eq!(&sends[..6], &[0, 500, 1500, 3500, 7500, 11500]);
        assert_eq!(now - t0, Duration::from_secs(32));
    }

    #[test]
    fn non_invite_final_then_timer_k() {
        let t0 = crate::clock::now();
        let mut t = NonInviteClient::new(
            t0,
            wire("BYE"),
            Transport::Unreliable,
            TimerValues::default(),
        );
        t.handle_response(t0, 200);
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        t.handle_timeout(t0 + Duration::from_secs(5));
        assert!(t.is_terminated());
    }
}
