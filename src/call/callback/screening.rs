//! PURE: screening the customer's answered leg of a callback (issue 21 item 5): is it a person
//! or an answering machine?
//!
//! ```text
//!  customer answers ─► detect?  listen in silence (media::amd, on the media clock) ─► verdict
//!      person / not sure ─► confirm? "press 1 to be connected" ─► 1 ─► the normal path
//!                                                            └─► no key in time ─► machine
//!      machine ─► the agent is released, the attempt fails by the `machine` retry rule;
//!                 wait for the greeting's end (beep or silence, capped by `wait_for_beep`),
//!                 leave the short message, BYE
//! ```
//! The agent's leg goes on meanwhile (ringing, or up with the whisper and ringback): only a
//! person is bridged to them.
//!
//! No verdict in time, or "not sure", is a person. A detector is wrong sometimes whichever way
//! it leans, and the two mistakes do not cost the same: a machine taken for a person costs an
//! agent a few seconds with a recording; a person taken for a machine is hung up on, by the
//! company they asked to call them. A leg that sends no audio at all is "not sure" too (no
//! frames, no verdict): a phone with silence suppression is no machine.
//!
//! Must not: decide anything about the agent's leg beyond releasing it for a machine.

use std::time::{Duration, Instant};

use super::{CallbackDial, Party, State, apply};
use crate::call::{Command, LegId, note};
use crate::interaction::{DialFailure, Event as Lifecycle, Note};
use crate::media::amd::{AmdConfig, MachineCue, Verdict};
use crate::workflow::engine::PlayItem;

/// Past the detector's own analysis time, how long to wait for its verdict before deciding
/// "not sure" (frames arrive up to a media tick late, and the verdict crosses a channel).
const VERDICT_SLACK: Duration = Duration::from_secs(1);

/// The longest the "press 1" prompt may play before the confirmation wait starts anyway.
const CONFIRM_PROMPT_GUARD: Duration = Duration::from_secs(15);

/// The longest the machine message may take before the customer's leg is hung up anyway.
const MESSAGE_GUARD: Duration = Duration::from_secs(20);

/// The queue's screening rules (`[callback.answering_machine]`); the default screens nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScreeningRules {
    /// Listen to the answered customer with these thresholds; `None`: no detection.
    pub detect: Option<AmdConfig>,
    /// Human confirmation: "press 1 to be connected"; no key within this after the prompt
    /// ends is a machine. `None`: off.
    pub confirm_within: Option<Duration>,
    /// The longest a machine's greeting may go on before the message is left anyway.
    pub wait_for_beep: Duration,
    /// The "press 1 to be connected to an agent" prompt.
    pub confirm: String,
    /// "This is … returning your call; we will try again later" for a machine.
    pub machine_message: String,
}

impl ScreeningRules {
    /// Whether an answered customer is screened at all.
    pub fn active(&self) -> bool {
        self.detect.is_some() || self.confirm_within.is_some()
    }
}

/// Where a machine's message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Message {
    /// Silence while the machine's greeting goes on; the message starts at its end.
    AwaitingBeep,
    /// The message plays; BYE when it ends.
    Playing,
}

impl CallbackDial {
    /// Answering-machine detection on the customer's leg decided (the media clock's
    /// `Screened`). Ignored unless the customer is being screened.
    pub fn handle_screened(&mut self, now: Instant, verdict: Verdict) {
        if self.screening_customer().is_none() {
            return;
        }
        match verdict {
            Verdict::Human => self.screened_person(now, "a person"),
            Verdict::NotSure => self.screened_person(now, "not sure; treated as a person"),
            Verdict::Machine(cue) => {
                let why = match cue {
                    MachineCue::InitialSilence => "an answering machine (silence from the answer)",
                    MachineCue::LongGreeting => "an answering machine (a long greeting)",
                    MachineCue::MaxWords => "an answering machine (many words without a pause)",
                };
                self.push(note(Note::Screened { verdict: why }));
                self.machine(now, Message::AwaitingBeep);
            }
        }
    }

    /// A machine's greeting is over (the beep, or silence): leave the message now.
    pub fn handle_greeting_ended(&mut self, now: Instant) {
        if let State::LeavingMessage {
            message: Message::AwaitingBeep,
            ..
        } = self.state
        {
            self.play_message(now);
        }
    }

    /// A key on a leg. "1" from a customer asked to confirm connects them.
    pub fn handle_digit(&mut self, now: Instant, leg: LegId, digit: char) {
        if leg == LegId::Customer
            && digit == '1'
            && matches!(self.screening_customer(), Some(Party::Confirming { .. }))
        {
            self.push(note(Note::Screened {
                verdict: "the customer pressed 1",
            }));
            self.customer_is_a_person(now, false);
        }
    }

    /// The customer answered: screen them, or take the normal path.
    pub(super) fn customer_answered(&mut self, now: Instant) {
        let rules = &self.settings.screening;
        if let Some(cfg) = rules.detect {
            self.push(Command::Screen(LegId::Customer, Some(cfg)));
            self.set_customer(Party::Screening {
                until: now + cfg.total_analysis + VERDICT_SLACK,
            });
        } else if rules.confirm_within.is_some() {
            self.ask_to_confirm(now);
        } else {
            self.customer_is_a_person(now, true);
        }
    }

    /// The customer's screening deadline passed (see [`CallbackDial::handle_timeout`]).
    pub(super) fn screening_timeout(&mut self, now: Instant, customer: Party) {
        match customer {
            Party::Screening { .. } => {
                self.push(Command::Screen(LegId::Customer, None));
                self.screened_person(now, "no verdict in time; treated as a person");
            }
            Party::Confirming { .. } => {
                self.push(note(Note::Screened {
                    verdict: "no key pressed; treated as an answering machine",
                }));
                // A machine taken for a person has recorded the prompt by now: speak at once.
                self.machine(now, Message::Playing);
            }
            Party::Ringing | Party::Up => {}
        }
    }

    /// The "press 1" prompt ended: the confirmation wait starts.
    pub(super) fn confirm_prompt_ended(&mut self, now: Instant) {
        if let (Some(Party::Confirming { .. }), Some(within)) = (
            self.screening_customer(),
            self.settings.screening.confirm_within,
        ) {
            self.set_customer(Party::Confirming {
                until: now + within,
            });
        }
    }

    /// Deadline of a machine's message (the greeting never ended, or the message never did).
    pub(super) fn message_timeout(&mut self, now: Instant, message: Message) {
        match message {
            Message::AwaitingBeep => self.play_message(now),
            Message::Playing => self.message_left(),
        }
    }

    /// The message has played: BYE, and the feed says so.
    pub(super) fn message_left(&mut self) {
        self.push(Command::HangUp(LegId::Customer));
        self.push(note(Note::MachineMessageLeft));
        self.state = State::Finished;
    }

    fn screened_person(&mut self, now: Instant, verdict: &'static str) {
        self.push(note(Note::Screened { verdict }));
        if self.settings.screening.confirm_within.is_some() {
            self.ask_to_confirm(now);
        } else {
            self.customer_is_a_person(now, true);
        }
    }

    fn ask_to_confirm(&mut self, now: Instant) {
        self.push(Command::Play {
            leg: LegId::Customer,
            items: vec![PlayItem::Prompt(self.settings.screening.confirm.clone())],
            then_loop: None,
        });
        let within = self.settings.screening.confirm_within.unwrap_or_default();
        self.set_customer(Party::Confirming {
            until: now + CONFIRM_PROMPT_GUARD + within,
        });
    }

    /// A machine: the agent is released at once and the attempt fails by the machine rule
    /// (the interaction is open again, with the rule's not-before); the customer's leg stays
    /// up for the message.
    fn machine(&mut self, now: Instant, message: Message) {
        self.push(Command::HangUp(LegId::Agent));
        self.push(Command::DialOutcome("machine"));
        let rule = self.settings.retry.rule(DialFailure::Machine);
        self.push(apply(Lifecycle::DialFailed {
            code: None,
            kind: DialFailure::Machine,
            cause: None,
            max_attempts: rule.max_attempts,
            retry_after: rule.delay,
        }));
        match message {
            Message::AwaitingBeep => {
                self.state = State::LeavingMessage {
                    message,
                    until: now + self.settings.screening.wait_for_beep,
                };
            }
            Message::Playing => self.play_message(now),
        }
    }

    fn play_message(&mut self, now: Instant) {
        self.push(Command::Screen(LegId::Customer, None));
        self.push(Command::Play {
            leg: LegId::Customer,
            items: vec![PlayItem::Prompt(
                self.settings.screening.machine_message.clone(),
            )],
            then_loop: None,
        });
        self.state = State::LeavingMessage {
            message: Message::Playing,
            until: now + MESSAGE_GUARD,
        };
    }

    /// The customer's party while it is being screened (or asked to confirm).
    fn screening_customer(&self) -> Option<Party> {
        match self.state {
            State::Connecting {
                customer: c @ (Party::Screening { .. } | Party::Confirming { .. }),
                ..
            } => Some(c),
            _ => None,
        }
    }

    fn set_customer(&mut self, party: Party) {
        if let State::Connecting { customer, .. } = &mut self.state {
            *customer = party;
        }
    }
}
