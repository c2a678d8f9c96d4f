//! PURE: one inbound call, from the PBX's INVITE to the settled interaction.
//!
//! ```text
//!  new ─► interaction created (open) ─► 180 for the queue's ring_before_answer ─► 200 OK
//!      ─► ACK: media starts (never before: a spoofed INVITE gets no RTP stream)
//!      ─► the workflow (bot): prompts, menus, keys, callback capture, voicemail, transfer
//!      ─► offered to an agent by the router: the agent's leg rings while the caller waits;
//!         answered: bridged (connected)
//!      ─► BYE (either side) ─► the interaction settles (open/callback, closed abandoned, …)
//! ```
//! The workflow [`Engine`] is owned here: its actions become [`Command`]s. A transfer goes by
//! REFER; when the PBX refuses it, Hammond dials the target itself and bridges the caller.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::{
    AgentCommand, Command, LegEvent, LegId, OfferOutcome, RouterNote, StoreOp, StoreReply, Target,
    note,
};
use crate::interaction::{Event as Lifecycle, HangupBy, Note};
use crate::media::dtmf::DtmfMethod;
use crate::workflow::engine::{Action, CallContext, Engine, WfEvent};
use crate::workflow::flow::Flow;

/// How the call ended, for the interaction and the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The caller hung up (or the dialog died: no ACK, shutdown).
    CallerHungUp,
    /// The bridged peer (agent or transfer target) hung up.
    PeerHungUp,
    /// The workflow ended the call.
    WorkflowHungUp,
    /// The PBX completed our REFER.
    Transferred(String),
    /// No RTP for the inactivity timeout.
    MediaTimeout,
    /// The agent closed the (connected) interaction through the API.
    ClosedByAgent,
    /// Hammond stopped and cut the call.
    Shutdown,
}

/// What the PBX said about our REFER (RFC 3515).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferProgress {
    /// The final response to the REFER itself.
    Response(u16),
    /// A NOTIFY with the transferred call's status line.
    Notify(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the store to create the interaction.
    Creating,
    /// 180 sent; answer at `answer_at`.
    Ringing { answer_at: Instant },
    /// Answered: the workflow runs (or the caller is bridged).
    Up,
    /// The call is over.
    Finished,
}

/// Who the second leg is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    /// A router offer to this agent.
    Agent(String),
    /// The transfer target the PBX would not take by REFER.
    Transfer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    leg: LegId,
    purpose: Purpose,
    /// Give up ringing then; `None` once answered.
    ring_deadline: Option<Instant>,
}

/// One inbound call. Create it with [`InboundCall::new`], feed it, and drain
/// [`InboundCall::poll_command`] after every input.
#[derive(Debug)]
pub struct InboundCall {
    flow: Arc<Flow>,
    caller: String,
    wall: Timestamp,
    phase: Phase,
    engine: Option<Engine>,
    /// The caller hung up before the interaction existed.
    cancelled_early: bool,
    media_started: bool,
    peer: Option<Peer>,
    /// Set once the caller is bridged to the peer, with the time.
    bridged_at: Option<Instant>,
    /// The agent put the bridged caller on hold (hold music, no bridge).
    held: bool,
    had_callback: bool,
    left_voicemail: bool,
    recording_until: Option<Instant>,
    /// How the call ends, once decided (our BYE is on its way).
    end: Option<Outcome>,
    /// The call ended while a recording was being saved: settle when it is.
    settling: Option<Outcome>,
    transfer_target: Option<String>,
    /// The workflow step the call ended in (for the feed).
    ended_during: Option<&'static str>,
    out: VecDeque<Command>,
}

impl InboundCall {
    /// A new call from `caller` (digits, maybe with `+`; empty when withheld) for `flow`,
    /// arriving at wall time `wall`. The first command creates the interaction.
    pub fn new(flow: Arc<Flow>, caller: String, wall: Timestamp) -> Self {
        let mut c = Self {
            flow,
            caller,
            wall,
            phase: Phase::Creating,
            engine: None,
            cancelled_early: false,
            media_started: false,
            peer: None,
            bridged_at: None,
            held: false,
            had_callback: false,
            left_voicemail: false,
            recording_until: None,
            end: None,
            settling: None,
            transfer_target: None,
            ended_during: None,
            out: VecDeque::new(),
        };
        c.push(Command::Store(StoreOp::Create));
        c
    }

    /// The next thing for the driver to do. Drain it after every `handle_*`.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// Whether the call is over and every command drained.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished && self.out.is_empty()
    }

    /// The workflow step the caller is in (for logs).
    pub fn step_name(&self) -> &'static str {
        self.engine.as_ref().map_or("ringing", Engine::step_name)
    }

    /// When [`InboundCall::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ring = match self.phase {
            Phase::Ringing { answer_at } => Some(answer_at),
            Phase::Creating | Phase::Up | Phase::Finished => None,
        };
        let engine = if self.bridged_at.is_none() && self.end.is_none() {
            self.engine.as_ref().and_then(Engine::poll_timeout)
        } else {
            None
        };
        let peer = self.peer.as_ref().and_then(|p| p.ring_deadline);
        [ring, engine, self.recording_until, peer]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whatever deadlines are due. Calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Phase::Ringing { answer_at } = self.phase
            && now >= answer_at
        {
            self.answer(now);
        }
        if self.recording_until.is_some_and(|t| now >= t) {
            self.recording_until = None;
            self.push(Command::Store(StoreOp::SaveRecording));
        }
        if let Some(p) = &self.peer
            && p.ring_deadline.is_some_and(|t| now >= t)
        {
            let leg = p.leg;
            self.push(Command::HangUp(leg));
            self.peer_failed(now);
        }
        if self.bridged_at.is_none()
            && self.end.is_none()
            && let Some(e) = self.engine.as_mut()
            && e.poll_timeout().is_some_and(|t| now >= t)
        {
            e.handle_timeout(now);
        }
        self.run_engine(now);
    }

    /// The store's answer.
    pub fn handle_store(&mut self, now: Instant, reply: StoreReply) {
        match reply {
            StoreReply::Created(_) if self.phase == Phase::Creating => {
                if self.cancelled_early {
                    self.settle(now, Outcome::CallerHungUp);
                    return;
                }
                self.push(Command::Ring);
                self.phase = Phase::Ringing {
                    answer_at: now + self.flow.ring_before_answer,
                };
            }
            StoreReply::Refused if self.phase == Phase::Creating => {
                // No interaction, no call: the PBX hears 500 (it may route elsewhere).
                self.push(Command::Reject(500));
                self.phase = Phase::Finished;
            }
            StoreReply::CallbackStored => {
                self.had_callback = true;
                // Booked for later: no longer a live caller for the router to offer.
                self.push(Command::Router(RouterNote::LeftQueue));
                self.engine_event(now, WfEvent::CallbackStored);
            }
            StoreReply::CallbackRefused(r) => self.engine_event(now, WfEvent::CallbackRefused(r)),
            StoreReply::QueueStatus {
                position,
                estimated_wait,
            } => self.engine_event(
                now,
                WfEvent::QueueStatus {
                    position,
                    estimated_wait,
                },
            ),
            StoreReply::RecordingSaved { audio } => {
                self.left_voicemail |= audio;
                if let Some(outcome) = self.settling.take() {
                    self.settle(now, outcome);
                } else {
                    self.engine_event(now, WfEvent::RecordingFinished);
                }
            }
            StoreReply::Created(_) | StoreReply::Committed | StoreReply::Refused => {}
        }
    }

    /// A key from the caller, however it arrived (the media layer counted it once).
    pub fn handle_digit(&mut self, now: Instant, digit: char, method: DtmfMethod) {
        if self.phase != Phase::Up || self.end.is_some() {
            return;
        }
        self.push(apply(Lifecycle::Dtmf { digit, method }));
        if self.bridged_at.is_none() {
            self.engine_event(now, WfEvent::Digit(digit));
        }
    }

    /// The router offers the waiting caller to `agent`: ring the agent's leg while the caller
    /// keeps waiting; bridge if it answers within `ring_timeout`.
    pub fn handle_offer(&mut self, now: Instant, agent: String, ring_timeout: Duration) {
        let waiting = matches!(
            self.engine.as_ref().map(Engine::step_name),
            Some("waiting" | "menu" | "position announcement" | "waiting to enter the workflow")
        );
        if !waiting || self.peer.is_some() || self.end.is_some() || self.had_callback {
            self.push(Command::Router(RouterNote::OfferEnded(
                OfferOutcome::Unavailable,
            )));
            return;
        }
        self.push(Command::Dial(LegId::Agent, Target::Agent(agent.clone())));
        self.peer = Some(Peer {
            leg: LegId::Agent,
            purpose: Purpose::Agent(agent),
            ring_deadline: Some(now + ring_timeout),
        });
    }

    /// The agent closed the connected interaction through the API: hang up.
    pub fn handle_close(&mut self, _now: Instant) {
        let with_agent = matches!(
            &self.peer,
            Some(Peer {
                purpose: Purpose::Agent(_),
                ..
            })
        );
        if self.bridged_at.is_some() && with_agent {
            // The agent's phone at once: no more audio while the caller's BYE is answered.
            self.push(Command::HangUp(LegId::Agent));
            self.hang_up(Outcome::ClosedByAgent);
        }
    }

    /// The agent puts the bridged caller on hold (the caller hears the queue's hold music, the
    /// agent silence) or takes them off. Only a caller bridged to an agent can be held; a
    /// repeat is a no-op. Hanging up on hold ends the call as it would bridged.
    pub fn handle_agent(&mut self, _now: Instant, cmd: AgentCommand) {
        let with_agent = matches!(
            &self.peer,
            Some(Peer {
                purpose: Purpose::Agent(_),
                ring_deadline: None,
                ..
            })
        );
        if self.bridged_at.is_none() || !with_agent || self.end.is_some() {
            return;
        }
        match (cmd, self.held) {
            (AgentCommand::Hold, false) => {
                self.push(Command::Unbridge(LegId::Caller, LegId::Agent));
                self.push(Command::Play {
                    leg: LegId::Caller,
                    items: Vec::new(),
                    then_loop: Some(self.flow.hold_music.clone()),
                });
                self.push(Command::Play {
                    leg: LegId::Agent,
                    items: Vec::new(),
                    then_loop: None,
                });
                self.push(note(Note::OnHold));
            }
            (AgentCommand::Resume, true) => {
                self.push(Command::Bridge(LegId::Caller, LegId::Agent));
                self.push(note(Note::Resumed));
            }
            (AgentCommand::Hold, true) | (AgentCommand::Resume, false) => return,
        }
        self.held = cmd == AgentCommand::Hold;
    }

    /// What the PBX says about our REFER.
    pub fn handle_refer(&mut self, now: Instant, progress: ReferProgress) {
        match progress {
            ReferProgress::Response(status) if !(200..300).contains(&status) => {
                // The PBX will not transfer: call the target ourselves and bridge.
                let target = self.transfer_target.clone().unwrap_or_default();
                self.push(Command::Dial(LegId::Transfer, Target::Uri(target.clone())));
                self.peer = Some(Peer {
                    leg: LegId::Transfer,
                    purpose: Purpose::Transfer(target),
                    ring_deadline: Some(now + self.flow.callback.retry.ring_timeout),
                });
            }
            ReferProgress::Response(_) => {}
            ReferProgress::Notify(status) if (200..300).contains(&status) => {
                let to = self.transfer_target.clone().unwrap_or_default();
                self.hang_up(Outcome::Transferred(to));
            }
            ReferProgress::Notify(status) if status >= 300 => {
                self.engine_event(now, WfEvent::TransferFailed);
            }
            ReferProgress::Notify(_) => {}
        }
    }

    /// Something happened on a leg: the caller's, or the second leg we dialled.
    pub fn handle_leg(&mut self, now: Instant, leg: LegId, ev: LegEvent) {
        if leg == LegId::Caller {
            self.on_caller(now, ev);
        } else if self.peer.as_ref().is_some_and(|p| p.leg == leg) {
            self.on_peer(now, ev);
        }
        self.run_engine(now);
    }

    fn on_caller(&mut self, now: Instant, ev: LegEvent) {
        match ev {
            LegEvent::Answered => {
                // The ACK: media may flow now.
                if self.phase == Phase::Up && !self.media_started {
                    self.media_started = true;
                    self.push(Command::StartMedia);
                }
            }
            LegEvent::PlaybackFinished => {
                if self.bridged_at.is_none() {
                    self.engine_event(now, WfEvent::PlaybackFinished);
                }
            }
            LegEvent::MediaTimeout => {
                if let Some(p) = &self.peer {
                    let leg = p.leg;
                    self.push(Command::HangUp(leg));
                }
                self.hang_up(Outcome::MediaTimeout);
            }
            LegEvent::Cut => {
                if let Some(p) = &self.peer {
                    let leg = p.leg;
                    self.push(Command::HangUp(leg));
                }
                self.end = Some(Outcome::Shutdown);
                self.caller_gone(now);
            }
            LegEvent::Ended | LegEvent::Failed { .. } => self.caller_gone(now),
            LegEvent::Ringing => {}
        }
    }

    /// The caller's dialog is over (their BYE or CANCEL, ours completed, or no ACK).
    fn caller_gone(&mut self, now: Instant) {
        match self.phase {
            Phase::Creating => {
                self.cancelled_early = true;
                return;
            }
            Phase::Finished => return,
            Phase::Ringing { .. } | Phase::Up => {}
        }
        self.ended_during.get_or_insert(self.step_name());
        if let Some(e) = self.engine.as_mut() {
            e.handle_event(now, WfEvent::Hangup);
            // The engine is finished: what it still asks for (a last prompt) goes nowhere.
            while e.poll_action().is_some() {}
        }
        let outcome = self.end.take().unwrap_or(Outcome::CallerHungUp);
        if self.recording_until.take().is_some() {
            // Write the message first; the interaction says "voicemail" only once it is kept.
            self.push(Command::Store(StoreOp::SaveRecording));
            self.settling = Some(outcome);
            self.phase = Phase::Finished;
            return;
        }
        self.settle(now, outcome);
    }

    fn on_peer(&mut self, now: Instant, ev: LegEvent) {
        let Some(peer) = self.peer.clone() else {
            return;
        };
        match ev {
            LegEvent::Answered if peer.ring_deadline.is_some() => {
                if self.end.is_some() {
                    self.push(Command::HangUp(peer.leg));
                    return;
                }
                self.peer = Some(Peer {
                    ring_deadline: None,
                    ..peer.clone()
                });
                self.bridged_at = Some(now);
                self.push(Command::Bridge(LegId::Caller, peer.leg));
                // No longer waiting: off the router's line before it hears the offer ended, so
                // no round offers the caller again (it came first, and took a free agent's
                // offer every round, refused, while younger callers waited).
                self.push(Command::Router(RouterNote::LeftQueue));
                match peer.purpose {
                    Purpose::Agent(agent) => {
                        self.push(apply(Lifecycle::OfferedLive { agent }));
                        self.push(apply(Lifecycle::Bridged));
                        self.push(Command::Router(RouterNote::OfferEnded(
                            OfferOutcome::Bridged,
                        )));
                    }
                    Purpose::Transfer(to) => self.push(note(Note::TransferBridged { to })),
                }
            }
            LegEvent::Failed { .. } => self.peer_failed(now),
            LegEvent::Ended | LegEvent::MediaTimeout if self.bridged_at.is_some() => {
                if ev == LegEvent::MediaTimeout {
                    self.push(Command::HangUp(peer.leg));
                    self.hang_up(Outcome::MediaTimeout);
                } else {
                    self.hang_up(Outcome::PeerHungUp);
                }
            }
            LegEvent::Ended | LegEvent::MediaTimeout => self.peer_failed(now),
            // Hammond cut every leg; the caller's cut settles the call.
            LegEvent::Answered | LegEvent::Ringing | LegEvent::PlaybackFinished | LegEvent::Cut => {
            }
        }
    }

    /// The second leg did not come up: the caller stays in the workflow.
    fn peer_failed(&mut self, now: Instant) {
        let Some(p) = self.peer.take() else {
            return;
        };
        match p.purpose {
            Purpose::Agent(_) => self.push(Command::Router(RouterNote::OfferEnded(
                OfferOutcome::NotAnswered,
            ))),
            Purpose::Transfer(_) => self.engine_event(now, WfEvent::TransferFailed),
        }
    }

    fn answer(&mut self, now: Instant) {
        self.phase = Phase::Up;
        self.push(Command::Answer);
        let ctx = CallContext {
            caller_number: (!self.caller.is_empty()).then(|| self.caller.clone()),
            started_wall: self.wall,
        };
        let mut engine = Engine::new(self.flow.clone(), ctx, now);
        engine.handle_event(now, WfEvent::Answered);
        self.engine = Some(engine);
        self.run_engine(now);
    }

    fn engine_event(&mut self, now: Instant, ev: WfEvent) {
        if let Some(e) = self.engine.as_mut() {
            e.handle_event(now, ev);
        }
        self.run_engine(now);
    }

    /// Carry out what the workflow asks for, until it asks for nothing more.
    fn run_engine(&mut self, now: Instant) {
        while let Some(action) = self.engine.as_mut().and_then(Engine::poll_action) {
            self.on_action(now, action);
        }
    }

    fn on_action(&mut self, now: Instant, action: Action) {
        if self.bridged_at.is_some() || self.phase == Phase::Finished {
            return;
        }
        let caller = LegId::Caller;
        match action {
            Action::EnterWorkflow => self.push(apply(Lifecycle::EnteredWorkflow)),
            Action::Play { items, .. } => self.push(Command::Play {
                leg: caller,
                items,
                then_loop: None,
            }),
            Action::StopPlayback => self.push(Command::Play {
                leg: caller,
                items: Vec::new(),
                then_loop: None,
            }),
            Action::StartMusic => self.push(Command::Play {
                leg: caller,
                items: Vec::new(),
                then_loop: Some(self.flow.hold_music.clone()),
            }),
            Action::QueryQueueStatus => self.push(Command::Store(StoreOp::QueueStatus)),
            Action::RequestCallback { number, not_before } => {
                self.push(Command::Store(StoreOp::RequestCallback {
                    number,
                    not_before,
                    max_per_day: self.flow.callback.max_per_day,
                }));
            }
            Action::Transfer { target } => {
                self.transfer_target = Some(target.clone());
                self.push(Command::Refer(target));
            }
            Action::StartRecording { max } => {
                self.push(Command::Record(caller));
                self.recording_until = Some(now + max);
            }
            Action::StopRecording => {
                if self.recording_until.take().is_some() {
                    self.push(Command::Store(StoreOp::SaveRecording));
                }
            }
            Action::Hangup { .. } => self.hang_up(Outcome::WorkflowHungUp),
            Action::Log(step) => self.push(Command::Store(StoreOp::Step(step))),
        }
    }

    /// Send our BYE; the call settles when the caller's dialog ends.
    fn hang_up(&mut self, outcome: Outcome) {
        if self.end.is_none() && self.phase != Phase::Finished {
            self.end = Some(outcome);
            self.push(Command::HangUp(LegId::Caller));
        }
    }

    /// How the call ended goes to the store; the call is over.
    fn settle(&mut self, now: Instant, outcome: Outcome) {
        self.phase = Phase::Finished;
        self.push(Command::Router(RouterNote::LeftQueue));
        if outcome == Outcome::Shutdown {
            // As a restart would settle it: a stored callback waits, a caller was lost, a
            // conversation was interrupted.
            if let Some(p) = self.peer.take() {
                self.push(Command::HangUp(p.leg));
            }
            let retry = self.flow.callback.retry;
            self.push(apply(Lifecycle::Recovered {
                max_attempts: retry.max_attempts,
                retry_after: retry.retry_interval,
                lost_instance: None,
            }));
            return;
        }
        if let Some(p) = self.peer.take() {
            self.push(Command::HangUp(p.leg));
            let talk = self.bridged_at.map(|at| now - at);
            self.settle_bridged(outcome, p.purpose, talk);
            return;
        }
        let during = self.ended_during.unwrap_or("ringing").to_owned();
        let event = match outcome {
            Outcome::Transferred(to) => Lifecycle::Transferred { to },
            Outcome::WorkflowHungUp => self.ended(HangupBy::Hammond, during),
            Outcome::ClosedByAgent
            | Outcome::PeerHungUp
            | Outcome::CallerHungUp
            | Outcome::MediaTimeout
            | Outcome::Shutdown => self.ended(HangupBy::Caller, during),
        };
        self.push(apply(event));
    }

    fn settle_bridged(&mut self, outcome: Outcome, purpose: Purpose, talk: Option<Duration>) {
        match purpose {
            Purpose::Agent(_) if talk.is_some() => {
                let talk = talk.unwrap_or_default();
                self.push(Command::Handled(talk));
                self.push(note(Note::TalkTime(talk)));
                let event = match outcome {
                    Outcome::ClosedByAgent => {
                        // The interaction is closed already: only the feed hears how it ended.
                        self.push(note(Note::HungUpOnClose));
                        return;
                    }
                    Outcome::PeerHungUp => Lifecycle::HungUp {
                        by: HangupBy::Agent,
                    },
                    Outcome::MediaTimeout => Lifecycle::HungUp {
                        by: HangupBy::Hammond,
                    },
                    Outcome::CallerHungUp
                    | Outcome::WorkflowHungUp
                    | Outcome::Transferred(_)
                    | Outcome::Shutdown => Lifecycle::HungUp {
                        by: HangupBy::Caller,
                    },
                };
                self.push(apply(event));
            }
            Purpose::Transfer(to) if talk.is_some() => {
                self.push(apply(Lifecycle::Transferred { to }));
            }
            // Still ringing when the call ended: as if there were no second leg.
            Purpose::Agent(_) | Purpose::Transfer(_) => {
                self.push(Command::Router(RouterNote::OfferEnded(
                    OfferOutcome::Unavailable,
                )));
                let during = self.ended_during.unwrap_or("ringing").to_owned();
                let by = if outcome == Outcome::WorkflowHungUp {
                    HangupBy::Hammond
                } else {
                    HangupBy::Caller
                };
                let event = match outcome {
                    Outcome::Transferred(to) => Lifecycle::Transferred { to },
                    _ => self.ended(by, during),
                };
                self.push(apply(event));
            }
        }
    }

    fn ended(&self, by: HangupBy, during: String) -> Lifecycle {
        Lifecycle::CallEnded {
            by,
            had_callback: self.had_callback,
            voicemail: self.left_voicemail,
            during: Some(during),
        }
    }

    fn push(&mut self, c: Command) {
        self.out.push_back(c);
    }
}

fn apply(e: Lifecycle) -> Command {
    Command::Store(StoreOp::Apply(e))
}

#[cfg(test)]
mod tests;
