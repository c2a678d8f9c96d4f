//! PURE: a callback dial, from the accept to the end of the conversation.
//!
//! ```text
//!  accepted ─► Dialling durable ─► INVITE customer (trunk) + agent's leg, at once
//!  offered  ─► agent's leg rings ─► answered ─► accept durable ─► Dialling durable ─► INVITE customer
//!
//!  customer answers (queue screens it: see `screening`): a person goes on, a machine gets a
//!      short message and the machine retry rule
//!  customer answers first: callback greeting, then hold music, until the agent answers
//!      agent fails / does not answer in time: apology, BYE; back to open uncounted, agent away
//!  agent answers first: whisper ("callback for support, customer 5 5 5 …"), then ringback
//!      customer busy / no answer / fails: the agent is released; the attempt is counted
//!  both up ─► bridged ─► either hangs up (or media stops): BYE to the other, closed completed
//! ```
//! The agent closing the interaction through the API hangs every leg up at any step. Nothing is
//! dialled before `Dialling` is durable, so a restart never leaves a call the store does not know.
//! No party hears silence while waiting: the customer hears the greeting at once on answer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{
    AgentCommand, Command, LegEvent, LegId, OfferOutcome, RouterNote, StoreOp, StoreReply, Target,
    note,
};
use crate::interaction::{DialFailure, Event as Lifecycle, FailCause, HangupBy, Note};
use crate::media::amd::AmdConfig;
use crate::workflow::engine::PlayItem;
use crate::workflow::flow::{Flow, RetryPolicy};

mod screening;

use screening::Message;
pub use screening::ScreeningRules;

/// The longest an apology may take before the customer is hung up anyway.
const APOLOGY_GUARD: Duration = Duration::from_secs(15);

/// The callback being dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The number to call (digits, optionally with `+`).
    pub number: String,
    /// The agent who takes it.
    pub agent: String,
    /// When the customer asked for it, in the queue's time zone (read to the agent).
    pub requested_at: Option<jiff::civil::Time>,
}

/// The queue's rules for the dial, from its flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Attempts, retry interval and the customer's ring timeout.
    pub retry: RetryPolicy,
    /// How long the agent's leg may ring.
    pub agent_ring_timeout: Duration,
    /// Whether the number passes the queue's rules now (toll fraud: checked at each dial).
    pub number_allowed: bool,
    /// "Hello, this is your callback from …, please hold": the customer's first words.
    pub greeting: String,
    /// Looped for the customer until the agent answers.
    pub hold_music: String,
    /// "Sorry, no agent could take your call": before hanging the customer up.
    pub apology: String,
    /// "Callback for support" (then the number and the time it was asked for).
    pub whisper: String,
    /// "requested at".
    pub requested_at: String,
    /// Looped for the agent until the customer answers.
    pub ringback: String,
    /// Answering-machine detection and human confirmation on the customer's leg.
    pub screening: ScreeningRules,
}

impl Settings {
    /// The rules of `flow` for `number`; a queue no longer configured dials nothing.
    pub fn for_number(flow: Option<&Flow>, number: &str) -> Self {
        let Some(f) = flow else {
            return Self {
                retry: RetryPolicy::default(),
                agent_ring_timeout: crate::workflow::flow::DEFAULT_AGENT_RING_TIMEOUT,
                number_allowed: false,
                greeting: String::new(),
                hold_music: String::new(),
                apology: String::new(),
                whisper: String::new(),
                requested_at: String::new(),
                ringback: String::new(),
                screening: ScreeningRules::default(),
            };
        };
        let rules = &f.callback.numbers;
        Self {
            retry: f.callback.retry,
            agent_ring_timeout: f.callback.agent_ring_timeout,
            number_allowed: rules.check_caller_id(number).is_ok()
                || rules.check_entered(number).is_ok(),
            greeting: f.prompts.callback_greeting.clone(),
            hold_music: f.hold_music.clone(),
            apology: f.prompts.agent_unreachable.clone(),
            whisper: f.prompts.callback_whisper.clone(),
            requested_at: f.prompts.requested_at.clone(),
            ringback: f.prompts.ringback.clone(),
            screening: ScreeningRules {
                detect: f.callback.machine.detect.then(AmdConfig::default),
                confirm_within: f
                    .callback
                    .machine
                    .confirm
                    .then_some(f.callback.machine.confirm_within),
                wait_for_beep: f.callback.machine.wait_for_beep,
                confirm: f.prompts.callback_confirm.clone(),
                machine_message: f.prompts.callback_machine_message.clone(),
            },
        }
    }
}

/// The retry outcome of the customer's leg failing with `status` (and the driver's `cause`).
/// The trunk's own trouble is an outage, not the customer's: a 503 (RFC 3261 §16.7: a proxy
/// turns a 503 from further on into a 500, so a 503 is the trunk's own), no response at all,
/// or no connection to it. A TLS or SRTP failure is the trunk's configuration, which an
/// operator must fix (issue 18): a counted failure with its cause, so it does not retry for
/// ever.
pub fn outcome(status: Option<u16>, cause: Option<FailCause>) -> DialFailure {
    match (status, cause) {
        (_, Some(FailCause::Unreachable | FailCause::TrunkNoResponse)) | (Some(503), None) => {
            DialFailure::TrunkOutage
        }
        (
            _,
            Some(
                FailCause::TlsCertificateNotTrusted
                | FailCause::TlsCertificateExpired
                | FailCause::TlsCertificateNameMismatch
                | FailCause::TlsHandshake
                | FailCause::SrtpNoCommonSuite,
            ),
        ) => DialFailure::Failed,
        (Some(486 | 600), None) => DialFailure::Busy,
        (Some(408 | 480 | 487), None) => DialFailure::NoAnswer,
        (_, None) => DialFailure::Failed,
    }
}

/// Where a leg of the dial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Ringing,
    /// Answered; answering-machine detection listens (the customer hears silence) until a
    /// verdict, or `until`.
    Screening {
        until: Instant,
    },
    /// Answered; "press 1 to be connected" plays, then waits: no key by `until` is a machine.
    Confirming {
        until: Instant,
    },
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Push: the agent's leg rings before anything is accepted.
    Offering {
        agent_deadline: Instant,
    },
    /// Push: the agent answered; the accept is being made durable.
    Accepting,
    /// `Dialling` is being made durable; nothing is dialled yet.
    Committing {
        agent_up: bool,
    },
    /// Both legs dialled (the agent's may be up already).
    Connecting {
        customer: Party,
        agent: Party,
        customer_deadline: Instant,
        agent_deadline: Instant,
        rang: bool,
    },
    /// The agent never came: the customer hears the apology, then is hung up.
    Apologising {
        until: Instant,
    },
    /// An answering machine took the call (the attempt has failed, the agent is released):
    /// its message waits for the greeting's end, then plays; `until` caps either.
    LeavingMessage {
        message: Message,
        until: Instant,
    },
    /// Customer and agent talk; `held`: the agent put the customer on hold (hold music, no
    /// bridge) and the talk timer goes on.
    Bridged {
        since: Instant,
        held: bool,
    },
    Finished,
}

/// One callback dial. Create it with [`CallbackDial::accepted`] or [`CallbackDial::offered`],
/// then feed it and drain [`CallbackDial::poll_command`] after every input.
#[derive(Debug)]
pub struct CallbackDial {
    state: State,
    callback: Callback,
    settings: Settings,
    out: VecDeque<Command>,
}

impl CallbackDial {
    /// An agent accepted the callback (it is connected and assigned): make `Dialling` durable,
    /// then call the customer and the agent's leg at once.
    pub fn accepted(_now: Instant, callback: Callback, settings: Settings) -> Self {
        let mut c = Self::new(callback, settings);
        c.commit_dialling(false);
        c
    }

    /// Push: ring the agent's leg first; only when the agent answers is the callback accepted
    /// (atomically: it may have been taken meanwhile) and the customer dialled. A callback is
    /// never dialled ahead of an agent.
    pub fn offered(now: Instant, callback: Callback, settings: Settings) -> Self {
        let mut c = Self::new(callback, settings);
        c.state = State::Offering {
            agent_deadline: now + c.settings.agent_ring_timeout,
        };
        let agent = c.callback.agent.clone();
        c.push(Command::Dial(LegId::Agent, Target::Agent(agent)));
        c
    }

    fn new(callback: Callback, settings: Settings) -> Self {
        Self {
            state: State::Finished,
            callback,
            settings,
            out: VecDeque::new(),
        }
    }

    /// The next thing for the driver to do. Drain it after every `handle_*`.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// When [`CallbackDial::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Offering { agent_deadline } => Some(agent_deadline),
            State::Connecting {
                customer,
                agent,
                customer_deadline,
                agent_deadline,
                ..
            } => [
                match customer {
                    Party::Ringing => Some(customer_deadline),
                    Party::Screening { until } | Party::Confirming { until } => Some(until),
                    Party::Up => None,
                },
                (agent == Party::Ringing).then_some(agent_deadline),
            ]
            .into_iter()
            .flatten()
            .min(),
            State::Apologising { until } | State::LeavingMessage { until, .. } => Some(until),
            State::Accepting
            | State::Committing { .. }
            | State::Bridged { .. }
            | State::Finished => None,
        }
    }

    /// Whether the dial is over (every command drained, the driver may stop).
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished && self.out.is_empty()
    }

    /// Deadlines: the agent's or the customer's ring time, the apology's guard. Calling it
    /// early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Offering { agent_deadline } if now >= agent_deadline => {
                self.push(Command::HangUp(LegId::Agent));
                self.offer_ended(OfferOutcome::NotAnswered);
                self.state = State::Finished;
            }
            State::Connecting {
                customer: Party::Ringing,
                customer_deadline,
                ..
            } if now >= customer_deadline => {
                self.push(Command::HangUp(LegId::Customer));
                self.customer_failed(DialFailure::NoAnswer, Some(487), None);
            }
            State::Connecting {
                customer: customer @ (Party::Screening { until } | Party::Confirming { until }),
                ..
            } if now >= until => self.screening_timeout(now, customer),
            State::Connecting {
                agent: Party::Ringing,
                agent_deadline,
                customer,
                ..
            } if now >= agent_deadline => {
                self.push(Command::HangUp(LegId::Agent));
                self.agent_unreachable(now, customer, None);
            }
            State::Apologising { until } if now >= until => self.finish_apology(),
            State::LeavingMessage { message, until } if now >= until => {
                self.message_timeout(now, message);
            }
            _ => {}
        }
    }

    /// The store's answer to a `Commit` or `Accept`.
    pub fn handle_store(&mut self, now: Instant, reply: StoreReply) {
        match (self.state, reply) {
            (State::Accepting, StoreReply::Committed) => {
                self.offer_ended(OfferOutcome::Bridged);
                self.commit_dialling(true);
            }
            (State::Accepting, _) => {
                // Taken by someone else (or closed) while the agent's phone rang.
                self.push(Command::HangUp(LegId::Agent));
                self.offer_ended(OfferOutcome::Unavailable);
                self.state = State::Finished;
            }
            (State::Committing { agent_up }, StoreReply::Committed) => self.dial(now, agent_up),
            (State::Committing { agent_up }, _) => {
                // Closed meanwhile, or the store is failing: nobody may be called for it.
                if agent_up {
                    self.push(Command::HangUp(LegId::Agent));
                }
                self.state = State::Finished;
            }
            _ => {}
        }
    }

    /// The agent closed the interaction through the API (it is closed already): hang up.
    pub fn handle_close(&mut self, now: Instant) {
        match self.state {
            State::Committing { agent_up } => {
                if agent_up {
                    self.push(Command::HangUp(LegId::Agent));
                }
            }
            State::Connecting { .. } => {
                self.push(Command::HangUp(LegId::Customer));
                self.push(Command::HangUp(LegId::Agent));
            }
            State::Apologising { .. } => self.push(Command::HangUp(LegId::Customer)),
            State::LeavingMessage { .. } => {
                // The attempt has failed already: the interaction is open, not the agent's.
                self.push(Command::HangUp(LegId::Customer));
                self.state = State::Finished;
                return;
            }
            State::Bridged { since, .. } => {
                self.push(Command::HangUp(LegId::Customer));
                self.push(Command::HangUp(LegId::Agent));
                self.talked(now - since);
            }
            // Not ours yet (a push still ringing), or over.
            State::Offering { .. } | State::Accepting | State::Finished => return,
        }
        self.push(note(Note::HungUpOnClose));
        self.state = State::Finished;
    }

    /// The agent puts the bridged call on hold or takes it off. On hold the customer hears the
    /// queue's hold music and the agent silence; hanging up on hold ends the call as it would
    /// bridged. Anything else (not bridged yet, already so) is a no-op.
    pub fn handle_agent(&mut self, _now: Instant, cmd: AgentCommand) {
        let State::Bridged { since, held } = self.state else {
            return;
        };
        match (cmd, held) {
            (AgentCommand::Hold, false) => {
                self.push(Command::Unbridge(LegId::Customer, LegId::Agent));
                self.push(Command::Play {
                    leg: LegId::Customer,
                    items: Vec::new(),
                    then_loop: Some(self.settings.hold_music.clone()),
                });
                // Not the ringback the agent's player held before the bridge: silence.
                self.push(Command::Play {
                    leg: LegId::Agent,
                    items: Vec::new(),
                    then_loop: None,
                });
                self.push(note(Note::OnHold));
            }
            (AgentCommand::Resume, true) => {
                self.push(Command::Bridge(LegId::Customer, LegId::Agent));
                self.push(note(Note::Resumed));
            }
            (AgentCommand::Hold, true) | (AgentCommand::Resume, false) => return,
        }
        self.state = State::Bridged {
            since,
            held: cmd == AgentCommand::Hold,
        };
    }

    /// Something happened on a leg.
    pub fn handle_leg(&mut self, now: Instant, leg: LegId, ev: LegEvent) {
        if ev == LegEvent::Cut {
            self.cut(now);
            return;
        }
        match self.state {
            State::Offering { .. } => self.on_offering(leg, ev),
            State::Connecting { .. } => self.on_connecting(now, leg, ev),
            State::Apologising { .. } => match (leg, ev) {
                (LegId::Customer, LegEvent::PlaybackFinished) => self.finish_apology(),
                (LegId::Customer, LegEvent::Ended | LegEvent::MediaTimeout) => {
                    self.state = State::Finished;
                }
                _ => {}
            },
            State::LeavingMessage { message, .. } => match (leg, ev) {
                (LegId::Customer, LegEvent::PlaybackFinished) if message == Message::Playing => {
                    self.message_left();
                }
                (LegId::Customer, LegEvent::Ended | LegEvent::MediaTimeout) => {
                    self.state = State::Finished;
                }
                _ => {}
            },
            State::Bridged { since, .. } => self.on_bridged(now, since, leg, ev),
            State::Accepting | State::Committing { .. } => {
                // The agent's phone gave up while the store decided.
                if leg == LegId::Agent && matches!(ev, LegEvent::Ended | LegEvent::Failed { .. }) {
                    self.state = if self.state == State::Accepting {
                        self.offer_ended(OfferOutcome::NotAnswered);
                        State::Finished
                    } else {
                        State::Committing { agent_up: false }
                    };
                }
            }
            State::Finished => {}
        }
    }

    /// Hammond is stopping and cut the call: hang up what is left and settle the interaction
    /// as a restart would (a dial under way counts an attempt; a conversation was interrupted).
    fn cut(&mut self, now: Instant) {
        match self.state {
            State::Offering { .. } | State::Accepting => {
                self.push(Command::HangUp(LegId::Agent));
                self.offer_ended(OfferOutcome::Unavailable);
            }
            State::Committing { .. }
            | State::Connecting { .. }
            | State::Apologising { .. }
            | State::Bridged { .. } => {
                if let State::Bridged { since, .. } = self.state {
                    self.talked(now - since);
                }
                self.push(Command::HangUp(LegId::Customer));
                self.push(Command::HangUp(LegId::Agent));
                self.push(apply(Lifecycle::Recovered {
                    max_attempts: self.settings.retry.max_attempts,
                    retry_after: self.settings.retry.retry_interval,
                    lost_instance: None,
                }));
            }
            State::LeavingMessage { .. } => {
                // Settled already (the machine's attempt failed): only the leg is left.
                self.push(Command::HangUp(LegId::Customer));
            }
            State::Finished => return,
        }
        self.state = State::Finished;
    }

    fn on_offering(&mut self, leg: LegId, ev: LegEvent) {
        if leg != LegId::Agent {
            return;
        }
        match ev {
            LegEvent::Answered => {
                self.state = State::Accepting;
                let agent = self.callback.agent.clone();
                self.push(Command::Store(StoreOp::Accept { agent }));
            }
            LegEvent::Failed { .. } | LegEvent::Ended | LegEvent::MediaTimeout => {
                self.offer_ended(OfferOutcome::NotAnswered);
                self.state = State::Finished;
            }
            LegEvent::Ringing | LegEvent::PlaybackFinished | LegEvent::Cut => {}
        }
    }

    fn on_connecting(&mut self, now: Instant, leg: LegId, ev: LegEvent) {
        let State::Connecting {
            customer,
            agent,
            customer_deadline,
            agent_deadline,
            rang,
        } = self.state
        else {
            return;
        };
        match (leg, ev) {
            (LegId::Customer, LegEvent::Ringing) if !rang => {
                self.state = State::Connecting {
                    customer,
                    agent,
                    customer_deadline,
                    agent_deadline,
                    rang: true,
                };
                self.push(apply(Lifecycle::Ringing));
            }
            (LegId::Customer, LegEvent::Answered) if customer == Party::Ringing => {
                self.push(Command::DialOutcome("answered"));
                self.push(apply(Lifecycle::Answered));
                self.customer_answered(now);
            }
            (LegId::Customer, LegEvent::PlaybackFinished) => self.confirm_prompt_ended(now),
            (LegId::Customer, LegEvent::Failed { status, cause }) => {
                self.customer_failed(outcome(status, cause), status, cause);
            }
            (LegId::Customer, LegEvent::Ended | LegEvent::MediaTimeout) => {
                // The customer left before an agent came.
                self.push(Command::HangUp(LegId::Agent));
                self.push(apply(Lifecycle::HungUp {
                    by: HangupBy::Customer,
                }));
                self.state = State::Finished;
            }
            (LegId::Agent, LegEvent::Answered) if agent == Party::Ringing => {
                if customer == Party::Up {
                    self.bridge(now);
                } else {
                    self.whisper();
                    self.state = State::Connecting {
                        customer,
                        agent: Party::Up,
                        customer_deadline,
                        agent_deadline,
                        rang,
                    };
                }
            }
            (LegId::Agent, LegEvent::Failed { status, .. }) => {
                self.agent_unreachable(now, customer, status);
            }
            (LegId::Agent, LegEvent::Ended | LegEvent::MediaTimeout) => {
                self.agent_unreachable(now, customer, None);
            }
            _ => {}
        }
    }

    fn on_bridged(&mut self, now: Instant, since: Instant, leg: LegId, ev: LegEvent) {
        let (other, by) = match leg {
            LegId::Customer => (LegId::Agent, HangupBy::Customer),
            LegId::Agent => (LegId::Customer, HangupBy::Agent),
            LegId::Caller | LegId::Transfer => return,
        };
        match ev {
            LegEvent::Ended => {
                self.push(Command::HangUp(other));
                self.talked(now - since);
                self.push(apply(Lifecycle::HungUp { by }));
                self.state = State::Finished;
            }
            LegEvent::MediaTimeout => {
                self.push(Command::HangUp(leg));
                self.push(Command::HangUp(other));
                self.talked(now - since);
                let whose = if leg == LegId::Customer {
                    "the customer"
                } else {
                    "the agent"
                };
                self.push(note(Note::MediaTimeout { whose }));
                self.push(apply(Lifecycle::HungUp {
                    by: HangupBy::Hammond,
                }));
                self.state = State::Finished;
            }
            LegEvent::Ringing
            | LegEvent::Answered
            | LegEvent::Failed { .. }
            | LegEvent::PlaybackFinished
            | LegEvent::Cut => {}
        }
    }

    /// Make `Dialling` durable before any INVITE leaves; the number is checked first.
    fn commit_dialling(&mut self, agent_up: bool) {
        if !self.settings.number_allowed {
            // Toll fraud: only numbers the queue's rules allow now are ever dialled.
            if agent_up {
                self.push(Command::HangUp(LegId::Agent));
            }
            self.push(Command::DialOutcome("failed"));
            self.push(apply(Lifecycle::DialFailed {
                code: None,
                kind: DialFailure::Failed,
                cause: None,
                max_attempts: 1,
                retry_after: self.settings.retry.retry_interval,
            }));
            self.state = State::Finished;
            return;
        }
        if agent_up {
            // The agent is on the line already: tell them who they are about to talk to.
            self.whisper();
        }
        self.state = State::Committing { agent_up };
        self.push(Command::Store(StoreOp::Commit(Lifecycle::Dialling)));
    }

    fn dial(&mut self, now: Instant, agent_up: bool) {
        self.push(Command::Dial(
            LegId::Customer,
            Target::Customer(self.callback.number.clone()),
        ));
        if !agent_up {
            let agent = self.callback.agent.clone();
            self.push(Command::Dial(LegId::Agent, Target::Agent(agent)));
        }
        self.state = State::Connecting {
            customer: Party::Ringing,
            agent: if agent_up { Party::Up } else { Party::Ringing },
            customer_deadline: now + self.settings.retry.ring_timeout,
            agent_deadline: now + self.settings.agent_ring_timeout,
            rang: false,
        };
    }

    fn whisper(&mut self) {
        let mut items = vec![
            PlayItem::Prompt(self.settings.whisper.clone()),
            PlayItem::Silence(Duration::from_millis(200)),
            PlayItem::Digits(self.callback.number.trim_start_matches('+').to_owned()),
        ];
        if let Some(t) = self.callback.requested_at {
            items.extend([
                PlayItem::Silence(Duration::from_millis(200)),
                PlayItem::Prompt(self.settings.requested_at.clone()),
                PlayItem::Digits(format!("{:02}", t.hour())),
                PlayItem::Silence(Duration::from_millis(150)),
                PlayItem::Digits(format!("{:02}", t.minute())),
            ]);
        }
        self.push(Command::Play {
            leg: LegId::Agent,
            items,
            then_loop: Some(self.settings.ringback.clone()),
        });
    }

    /// The customer is a person (or taken for one): bridged to an agent who is up, else the
    /// greeting (unless they just heard the "press 1" prompt) and hold music.
    fn customer_is_a_person(&mut self, now: Instant, greet: bool) {
        let State::Connecting { agent, .. } = self.state else {
            return;
        };
        if agent == Party::Up {
            self.bridge(now);
            return;
        }
        let items = if greet {
            vec![PlayItem::Prompt(self.settings.greeting.clone())]
        } else {
            Vec::new()
        };
        self.push(Command::Play {
            leg: LegId::Customer,
            items,
            then_loop: Some(self.settings.hold_music.clone()),
        });
        if let State::Connecting { customer, .. } = &mut self.state {
            *customer = Party::Up;
        }
    }

    fn bridge(&mut self, now: Instant) {
        self.push(Command::Bridge(LegId::Customer, LegId::Agent));
        self.push(apply(Lifecycle::Bridged));
        self.state = State::Bridged {
            since: now,
            held: false,
        };
    }

    /// The customer was not reached: the agent is released and the attempt counts.
    fn customer_failed(&mut self, kind: DialFailure, code: Option<u16>, cause: Option<FailCause>) {
        self.push(Command::HangUp(LegId::Agent));
        self.push(Command::DialOutcome(kind.as_str()));
        let rule = self.settings.retry.rule(kind);
        self.push(apply(Lifecycle::DialFailed {
            code,
            kind,
            cause,
            max_attempts: rule.max_attempts,
            retry_after: rule.delay,
        }));
        self.state = State::Finished;
    }

    /// The agent's leg failed, ended or never answered before the bridge: back to open without
    /// counting an attempt (the customer did nothing wrong), the agent set away, and a customer
    /// who answered hears an apology before the BYE.
    fn agent_unreachable(&mut self, now: Instant, customer: Party, code: Option<u16>) {
        self.push(Command::DialOutcome("agent_unreachable"));
        self.push(apply(Lifecycle::AgentUnreachable { code }));
        self.push(Command::Router(RouterNote::AgentAway(
            self.callback.agent.clone(),
        )));
        match customer {
            Party::Screening { .. } | Party::Confirming { .. } | Party::Up => {
                if matches!(customer, Party::Screening { .. }) {
                    self.push(Command::Screen(LegId::Customer, None));
                }
                self.push(Command::Play {
                    leg: LegId::Customer,
                    items: vec![PlayItem::Prompt(self.settings.apology.clone())],
                    then_loop: None,
                });
                self.state = State::Apologising {
                    until: now + APOLOGY_GUARD,
                };
            }
            Party::Ringing => {
                self.push(Command::HangUp(LegId::Customer));
                self.state = State::Finished;
            }
        }
    }

    fn finish_apology(&mut self) {
        self.push(Command::HangUp(LegId::Customer));
        self.state = State::Finished;
    }

    fn talked(&mut self, talk: Duration) {
        self.push(Command::Handled(talk));
        self.push(note(Note::TalkTime(talk)));
    }

    fn offer_ended(&mut self, outcome: OfferOutcome) {
        self.push(Command::Router(RouterNote::OfferEnded(outcome)));
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
