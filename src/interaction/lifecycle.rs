//! The interaction lifecycle as a pure state machine (DESIGN.md, "The interaction lifecycle"):
//!
//! ```text
//! open ─EnteredWorkflow─► bot ─CallEnded(callback stored)─► open/callback ─Accepted─► connected
//!  │                       ├─CallEnded(voicemail)────────► open/voicemail            │ Dialling…Answered
//!  │                       ├─OfferedLive─► connected        ▲ DialFailed (attempts+1)◄┤ Bridged, HungUp
//!  └─CallEnded─► closed ◄──┴─CallEnded / Transferred       └──── after max attempts ─► closed
//! ```
//!
//! Call [`apply`] with the current interaction, an [`Event`] and the wall-clock time; it returns
//! the new interaction and the feed entries that describe the change, or a [`LifecycleError`]
//! when DESIGN.md does not allow the event in the current state. The store writes both in one
//! transaction.
//!
//! Must not: read a clock, do I/O, or panic on any input.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Callback, CloseReason, FeedEntry, Interaction, Leg, Note, Status, SubType};

use crate::media::dtmf::DtmfMethod;

/// Who ended a call or leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupBy {
    /// The inbound caller.
    Caller,
    /// The customer on a callback leg.
    Customer,
    /// The agent.
    Agent,
    /// Hammond itself (the workflow or a timeout).
    Hammond,
}

/// Why a callback dial attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialFailure {
    /// 486/600 busy.
    Busy,
    /// No answer before the ring timeout (or 408/480).
    NoAnswer,
    /// Any other refusal (4xx-6xx) or error.
    Failed,
    /// An answering machine took the call (it heard the short message).
    Machine,
    /// The trunk itself is down: it answered 503 (RFC 3261 §16.7: a proxy does not forward a
    /// 503 from further on, so a 503 is the trunk's own), did not answer at all, or could not
    /// be reached. Not the customer's doing: retried, never counted.
    TrunkOutage,
}

impl DialFailure {
    /// The outcome's name on the feed and in the metrics (`busy`, `no_answer`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::NoAnswer => "no_answer",
            Self::Failed => "failed",
            Self::Machine => "machine",
            Self::TrunkOutage => "trunk_outage",
        }
    }
}

/// Why a dial failed, beyond its SIP status, when the shell knows: the feed entry says it
/// ("TLS: certificate not trusted"), so an operator sees what to fix in the trunk's
/// configuration rather than waiting on the customer (typed: the core stays free of transport
/// and crypto types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailCause {
    /// No connection to the trunk: refused, unreachable, or its name does not resolve.
    Unreachable,
    /// The trunk sent no response at all to the INVITE (Timer B, RFC 3261 §17.1.1.2).
    TrunkNoResponse,
    /// The trunk's TLS certificate does not chain to a trusted CA (`ca_file` or the system's).
    TlsCertificateNotTrusted,
    /// The trunk's TLS certificate has expired or is not valid yet.
    TlsCertificateExpired,
    /// The trunk's TLS certificate is for another host name than its proxy's.
    TlsCertificateNameMismatch,
    /// The TLS handshake failed otherwise (no common version or cipher, an alert, not TLS).
    TlsHandshake,
    /// SRTP was required and the answer had no crypto suite and key in common with our offer
    /// (RFC 4568): Hammond hung the answered leg up at once.
    SrtpNoCommonSuite,
}

impl FailCause {
    /// The feed's words for it.
    pub fn text(self) -> &'static str {
        match self {
            Self::Unreachable => "trunk unreachable",
            Self::TrunkNoResponse => "trunk did not respond",
            Self::TlsCertificateNotTrusted => "TLS: certificate not trusted",
            Self::TlsCertificateExpired => "TLS: certificate expired",
            Self::TlsCertificateNameMismatch => "TLS: certificate not valid for the trunk's name",
            Self::TlsHandshake => "TLS: handshake failed",
            Self::SrtpNoCommonSuite => "SRTP: no common crypto suite",
        }
    }
}

/// Something that happened to an interaction. Past tense: the shell reports facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The answered caller entered the queue's timed workflow (open → bot).
    EnteredWorkflow,
    /// The caller pressed a key (feed only; bot or connected).
    Dtmf {
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
        /// How the key arrived.
        method: DtmfMethod,
    },
    /// The caller confirmed a callback number (bot; sub-type inbound → callback). Apply it
    /// before the confirmation prompt starts, so a confirmed callback is durable.
    CallbackRequested {
        /// Digits, optionally with `+`.
        number: String,
        /// Not to be dialled before (a callback requested outside business hours).
        not_before: Option<jiff::Timestamp>,
    },
    /// The inbound call ended while open or bot: bot → open when a callback is stored or a
    /// voicemail was left, otherwise → closed (abandoned, or hung_up_by_workflow).
    CallEnded {
        /// Who hung up.
        by: HangupBy,
        /// The workflow believes a callback was stored (must agree with the interaction).
        had_callback: bool,
        /// The caller left a voicemail.
        voicemail: bool,
        /// Where in the workflow the call ended (a step name), for the feed.
        during: Option<String>,
    },
    /// The workflow transferred the caller (bot → closed transferred).
    Transferred {
        /// The transfer target, for the feed.
        to: String,
    },
    /// An agent accepted it from the Home List (open → connected, assigned). Refused for a
    /// ringing inbound call ([`LifecycleError::LiveCall`]) and for a callback before its
    /// not-before time ([`LifecycleError::NotYetDue`]).
    Accepted {
        /// The agent's id.
        agent: String,
    },
    /// The router offered the live caller to an agent who took it (bot → connected).
    OfferedLive {
        /// The agent's id.
        agent: String,
    },
    /// The callback INVITE was sent (connected callback).
    Dialling,
    /// The callback leg is ringing (180/183).
    Ringing,
    /// The customer answered the callback.
    Answered,
    /// The callback attempt failed: back to open with the attempt counted and a not-before
    /// time, or closed callback_failed once `max_attempts` have failed. A
    /// [`DialFailure::TrunkOutage`] is not counted and never closes it.
    DialFailed {
        /// SIP status code, if a final response came.
        code: Option<u16>,
        /// Busy, no answer, machine, trunk outage or other failure.
        kind: DialFailure,
        /// What went wrong, when the shell knows more than the status says.
        cause: Option<FailCause>,
        /// The queue's maximum attempts for this outcome (`[callback.retry]`).
        max_attempts: u32,
        /// The queue's delay before the next try after this outcome.
        retry_after: Duration,
    },
    /// Customer/caller and agent media are bridged (connected).
    Bridged,
    /// A party hung up a connected interaction (→ closed).
    HungUp {
        /// Who hung up.
        by: HangupBy,
    },
    /// Closed explicitly (an agent's wrap-up, max wait expiry, ...), from open, bot or connected;
    /// refused for a ringing inbound call ([`LifecycleError::LiveCall`]).
    Closed {
        /// Why.
        reason: CloseReason,
        /// The agent's disposition code, if any.
        disposition: Option<String>,
    },
    /// A feed-only note (a workflow step, talk time, ...); any status.
    Note(Note),
    /// Hammond restarted and found the interaction engaged (bot or connected, or an inbound
    /// call still ringing): settle it. A callback whose dial the restart cut counts a failed
    /// attempt under its queue's rules. Also written at shutdown for a call Hammond itself had
    /// to cut. On a store shared by several instances, a surviving instance settles a dead
    /// one's interactions the same way, naming it (`lost_instance`).
    Recovered {
        /// The queue's maximum attempts.
        max_attempts: u32,
        /// The queue's retry interval.
        retry_after: Duration,
        /// The instance whose death this settles, when another instance settles it.
        lost_instance: Option<String>,
    },
    /// An agent moved an open callback's not-before (the workspace's Reschedule, or "call
    /// again now" with `now`); the attempts so far stay counted.
    Rescheduled {
        /// The new time (at or after `now`).
        not_before: Timestamp,
        /// The agent's id.
        by: String,
    },
    /// The agent's leg did not take the call (no answer, busy, error, or the agent hung up
    /// before the bridge): the callback goes back to open, unassigned, in its place, and the
    /// attempt is **not** counted — the customer was never put through to anyone.
    AgentUnreachable {
        /// SIP status of the agent leg's failure, if any.
        code: Option<u16>,
    },
}

/// Every kind of change an interaction's event log records: `created` and the lifecycle
/// events' names ([`Event::name`]). Webhooks subscribe to these, and the config checks them.
pub const EVENT_KINDS: &[&str] = &[
    "created",
    "entered_workflow",
    "dtmf",
    "callback_requested",
    "call_ended",
    "transferred",
    "accepted",
    "offered_live",
    "dialling",
    "ringing",
    "answered",
    "dial_failed",
    "bridged",
    "hung_up",
    "closed",
    "note",
    "recovered",
    "agent_unreachable",
    "rescheduled",
];

impl Event {
    /// The event's snake_case name (the event log's kind and the SSE `event:` field).
    pub fn name(&self) -> &'static str {
        match self {
            Self::EnteredWorkflow => "entered_workflow",
            Self::Dtmf { .. } => "dtmf",
            Self::CallbackRequested { .. } => "callback_requested",
            Self::CallEnded { .. } => "call_ended",
            Self::Transferred { .. } => "transferred",
            Self::Accepted { .. } => "accepted",
            Self::OfferedLive { .. } => "offered_live",
            Self::Dialling => "dialling",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::DialFailed { .. } => "dial_failed",
            Self::Bridged => "bridged",
            Self::HungUp { .. } => "hung_up",
            Self::Closed { .. } => "closed",
            Self::Note(_) => "note",
            Self::Recovered { .. } => "recovered",
            Self::AgentUnreachable { .. } => "agent_unreachable",
            Self::Rescheduled { .. } => "rescheduled",
        }
    }
}

/// The outcome of a transition: the new interaction and what to append to its feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The interaction after the event (`updated_at` = now).
    pub interaction: Interaction,
    /// Feed entries, in order.
    pub feed: Vec<FeedEntry>,
}

/// Why an event was refused. The caller (shell or API) decides what to tell whom: for the API a
/// `NotAllowed` on accept is a 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// DESIGN.md has no such transition from this status.
    #[error("{event} is not allowed while {status}")]
    NotAllowed {
        /// The event's name.
        event: &'static str,
        /// The interaction's status.
        status: Status,
    },
    /// A callback-only event on an interaction that is not a callback.
    #[error("{event} needs a callback interaction, this one is {sub_type}")]
    NotACallback {
        /// The event's name.
        event: &'static str,
        /// The interaction's sub-type.
        sub_type: SubType,
    },
    /// A leg event out of order (e.g. answered before dialling).
    #[error("{event} is out of order with the leg {leg:?}")]
    LegOutOfOrder {
        /// The event's name.
        event: &'static str,
        /// The current leg.
        leg: Option<Leg>,
    },
    /// The workflow says a callback was stored but none was.
    #[error("call ended with a callback, but none was requested")]
    NoCallbackStored,
    /// A DTMF digit outside 0-9 * # A-D.
    #[error("{0:?} is not a DTMF digit")]
    BadDigit(char),
    /// A callback number that is not digits with an optional leading `+`.
    #[error("{0:?} is not a phone number")]
    BadNumber(String),
    /// not_before would overflow the time range.
    #[error("retry interval out of range")]
    BadRetry,
    /// An open inbound interaction is a caller whose call is up (still ringing before the
    /// answer): the call's own task settles it, never an agent's accept or close, which would
    /// leave a connected interaction with nothing bridged, or a live call under a closed one.
    #[error("{event} is not allowed while the caller's call is live")]
    LiveCall {
        /// The event's name.
        event: &'static str,
    },
    /// A callback accepted before its not-before time (booked for opening time, or waiting out
    /// its retry interval): it must not be dialled yet.
    #[error("the callback is not due before {not_before}")]
    NotYetDue {
        /// When it may be dialled.
        not_before: Timestamp,
    },
}

/// Applies `event` to `current` at wall time `now`. Pure: no I/O, never panics.
pub fn apply(
    current: &Interaction,
    event: Event,
    now: Timestamp,
) -> Result<Change, LifecycleError> {
    let name = event.name();
    let refuse = |status| {
        Err(LifecycleError::NotAllowed {
            event: name,
            status,
        })
    };
    let mut next = current.clone();
    next.updated_at = now;
    let mut feed = Vec::new();
    let status = current.status;
    match event {
        Event::EnteredWorkflow => match status {
            Status::Open
                if current.sub_type == SubType::Inbound && current.assigned_agent.is_none() =>
            {
                set_status(
                    &mut next,
                    &mut feed,
                    Status::Bot,
                    now,
                    "entered the workflow",
                );
            }
            Status::Open | Status::Bot | Status::Connected | Status::Closed => {
                return refuse(status);
            }
        },
        Event::Dtmf { digit, method } => match status {
            Status::Bot | Status::Connected => {
                if !matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D') {
                    return Err(LifecycleError::BadDigit(digit));
                }
                feed.push(
                    FeedEntry::new(now, "dtmf", format!("key {digit} pressed"))
                        .with("digit", digit.to_string())
                        .with("method", method),
                );
            }
            Status::Open | Status::Closed => return refuse(status),
        },
        Event::CallbackRequested { number, not_before } => match status {
            Status::Bot => {
                if !valid_number(&number) {
                    return Err(LifecycleError::BadNumber(number));
                }
                feed.push(
                    FeedEntry::new(
                        now,
                        "callback_requested",
                        format!("callback requested for {number}"),
                    )
                    .with("number", &number),
                );
                set_sub_type(&mut next, &mut feed, SubType::Callback, now);
                next.callback = Some(Callback {
                    number,
                    attempts: 0,
                    not_before,
                    requested_at: Some(now),
                });
            }
            Status::Open | Status::Connected | Status::Closed => return refuse(status),
        },
        Event::CallEnded {
            by,
            had_callback,
            voicemail,
            during,
        } => match status {
            Status::Bot | Status::Open
                if current.assigned_agent.is_none()
                    && (status == Status::Bot || current.sub_type == SubType::Inbound) =>
            {
                let stored = current.callback.is_some() && current.sub_type == SubType::Callback;
                if had_callback && !stored {
                    return Err(LifecycleError::NoCallbackStored);
                }
                let mut e = FeedEntry::new(now, "call_ended", format!("{} hung up", by_text(by)))
                    .with("by", by);
                if let Some(step) = &during {
                    e = e.with("during", step);
                    e.text = format!("{} hung up during {step}", by_text(by));
                }
                feed.push(e);
                if status == Status::Bot && stored {
                    set_status(
                        &mut next,
                        &mut feed,
                        Status::Open,
                        now,
                        "waiting for a callback",
                    );
                } else if status == Status::Bot && voicemail {
                    set_sub_type(&mut next, &mut feed, SubType::Voicemail, now);
                    // An agent who picks it up calls the caller back, as a callback (its
                    // number rules, calling window and retries): the caller's own number,
                    // when it is one. Not a booking: no request time, outside the daily cap.
                    next.callback = valid_number(&current.customer_number).then(|| Callback {
                        number: current.customer_number.clone(),
                        attempts: 0,
                        not_before: None,
                        requested_at: None,
                    });
                    set_status(&mut next, &mut feed, Status::Open, now, "voicemail waiting");
                } else {
                    let reason = match by {
                        HangupBy::Hammond => CloseReason::HungUpByWorkflow,
                        HangupBy::Caller | HangupBy::Customer | HangupBy::Agent => {
                            CloseReason::Abandoned
                        }
                    };
                    close(&mut next, &mut feed, reason, None, now);
                }
            }
            Status::Open | Status::Bot | Status::Connected | Status::Closed => {
                return refuse(status);
            }
        },
        Event::Transferred { to } => match status {
            Status::Bot => {
                feed.push(
                    FeedEntry::new(now, "transferred", format!("transferred to {to}"))
                        .with("to", &to),
                );
                close(&mut next, &mut feed, CloseReason::Transferred, None, now);
            }
            Status::Open | Status::Connected | Status::Closed => return refuse(status),
        },
        Event::Accepted { .. } | Event::Closed { .. } if current.call_is_ringing() => {
            return Err(LifecycleError::LiveCall { event: name });
        }
        Event::Accepted { agent } => match status {
            Status::Open => {
                if let Some(not_before) = current.not_due_at(now) {
                    return Err(LifecycleError::NotYetDue { not_before });
                }
                assign(&mut next, &mut feed, agent, now);
            }
            Status::Bot | Status::Connected | Status::Closed => return refuse(status),
        },
        Event::OfferedLive { agent } => match status {
            Status::Bot => assign(&mut next, &mut feed, agent, now),
            Status::Open | Status::Connected | Status::Closed => return refuse(status),
        },
        Event::Dialling | Event::Ringing | Event::Answered | Event::DialFailed { .. }
            if status != Status::Connected =>
        {
            return refuse(status);
        }
        Event::Dialling | Event::Ringing | Event::Answered | Event::DialFailed { .. }
            if !current.dials_back() =>
        {
            return Err(LifecycleError::NotACallback {
                event: name,
                sub_type: current.sub_type,
            });
        }
        Event::Dialling => {
            if current.leg.is_some() {
                return Err(LifecycleError::LegOutOfOrder {
                    event: name,
                    leg: current.leg,
                });
            }
            next.leg = Some(Leg::Dialling);
            let number = current
                .callback
                .as_ref()
                .map(|c| c.number.clone())
                .unwrap_or_default();
            feed.push(
                FeedEntry::new(now, "callback_dialling", format!("calling back {number}"))
                    .with("number", number),
            );
        }
        Event::Ringing => match current.leg {
            Some(Leg::Dialling) => {
                next.leg = Some(Leg::Ringing);
                feed.push(FeedEntry::new(
                    now,
                    "callback_ringing",
                    "customer's phone is ringing",
                ));
            }
            // A second 180/183: nothing new to record.
            Some(Leg::Ringing) => {}
            leg @ (None | Some(Leg::Answered | Leg::Bridged)) => {
                return Err(LifecycleError::LegOutOfOrder { event: name, leg });
            }
        },
        Event::Answered => match current.leg {
            Some(Leg::Dialling | Leg::Ringing) => {
                next.leg = Some(Leg::Answered);
                feed.push(FeedEntry::new(
                    now,
                    "callback_answered",
                    "customer answered",
                ));
            }
            leg @ (None | Some(Leg::Answered | Leg::Bridged)) => {
                return Err(LifecycleError::LegOutOfOrder { event: name, leg });
            }
        },
        Event::DialFailed {
            code,
            kind,
            cause,
            max_attempts,
            retry_after,
        } => match (current.leg, kind) {
            // A machine answers: its leg is up when answering-machine detection (or a "press 1"
            // nobody pressed) says no person took the call, and the attempt fails then.
            (Some(Leg::Dialling | Leg::Ringing) | None, _)
            | (Some(Leg::Answered), DialFailure::Machine) => {
                let text = match (cause, kind) {
                    (Some(cause), _) => cause.text(),
                    (None, DialFailure::Busy) => "customer busy",
                    (None, DialFailure::NoAnswer) => "no answer",
                    (None, DialFailure::Failed) => "callback attempt failed",
                    (None, DialFailure::Machine) => "answering machine",
                    (None, DialFailure::TrunkOutage) => "trunk outage",
                };
                let counted = kind != DialFailure::TrunkOutage;
                let mut e = FeedEntry::new(now, "callback_failed_attempt", text)
                    .with("outcome", kind)
                    .with("counted", counted);
                if let Some(code) = code {
                    e = e.with("code", code);
                }
                if let Some(cause) = cause {
                    e = e.with("cause", cause);
                }
                let rule = (max_attempts, retry_after);
                fail_attempt(&mut next, &mut feed, e, rule, counted, now)?;
            }
            (leg @ Some(Leg::Answered | Leg::Bridged), _) => {
                return Err(LifecycleError::LegOutOfOrder { event: name, leg });
            }
        },
        Event::Bridged => match status {
            Status::Connected if current.leg != Some(Leg::Bridged) => {
                if current.dials_back() && current.leg != Some(Leg::Answered) {
                    return Err(LifecycleError::LegOutOfOrder {
                        event: name,
                        leg: current.leg,
                    });
                }
                next.leg = Some(Leg::Bridged);
                feed.push(FeedEntry::new(
                    now,
                    "bridged",
                    "customer and agent connected",
                ));
            }
            Status::Connected => {
                return Err(LifecycleError::LegOutOfOrder {
                    event: name,
                    leg: current.leg,
                });
            }
            Status::Open | Status::Bot | Status::Closed => return refuse(status),
        },
        Event::HungUp { by } => match status {
            Status::Connected => {
                feed.push(
                    FeedEntry::new(now, "hung_up", format!("{} hung up", by_text(by)))
                        .with("by", by),
                );
                let reason = match current.leg {
                    Some(Leg::Answered | Leg::Bridged) => CloseReason::Completed,
                    Some(Leg::Dialling | Leg::Ringing) | None => CloseReason::Abandoned,
                };
                close(&mut next, &mut feed, reason, None, now);
            }
            Status::Open | Status::Bot | Status::Closed => return refuse(status),
        },
        Event::Closed {
            reason,
            disposition,
        } => match status {
            Status::Open | Status::Bot | Status::Connected => {
                close(&mut next, &mut feed, reason, disposition, now)
            }
            Status::Closed => return refuse(status),
        },
        Event::Note(note) => {
            // The recording's place is kept on the interaction: the audio route serves this
            // file and no other.
            if let Note::VoicemailRecorded { path, .. } = &note {
                next.voicemail_path = Some(path.clone());
            }
            feed.push(FeedEntry::new(now, note.kind(), note.text()));
        }
        Event::Recovered {
            max_attempts,
            retry_after,
            lost_instance,
        } => recover(
            current,
            &mut next,
            &mut feed,
            (max_attempts, retry_after),
            lost_instance.as_deref(),
            now,
        )?,
        Event::Rescheduled { not_before, by } => match status {
            Status::Open if current.dials_back() => {
                let at = not_before.max(now);
                if let Some(cb) = next.callback.as_mut() {
                    cb.not_before = (at > now).then_some(at);
                }
                let text = if at > now {
                    format!("rescheduled by {by}: not before {at}")
                } else {
                    format!("rescheduled by {by}: due now")
                };
                feed.push(
                    FeedEntry::new(now, "rescheduled", text)
                        .with("agent", &by)
                        .with("not_before", at.to_string()),
                );
            }
            Status::Open => {
                return Err(LifecycleError::NotACallback {
                    event: name,
                    sub_type: current.sub_type,
                });
            }
            Status::Bot | Status::Connected | Status::Closed => return refuse(status),
        },
        Event::AgentUnreachable { code } => match status {
            // Up to the bridge: a customer who answered and heard the apology is handed back too.
            Status::Connected if current.leg != Some(Leg::Bridged) => {
                let agent = current.assigned_agent.clone().unwrap_or_default();
                let mut e = FeedEntry::new(
                    now,
                    "agent_unreachable",
                    format!("{agent}'s phone did not take the call; back in the queue"),
                )
                .with("agent", &agent);
                if let Some(code) = code {
                    e = e.with("code", code);
                }
                feed.push(e);
                next.assigned_agent = None;
                next.leg = None;
                set_status(&mut next, &mut feed, Status::Open, now, "back in the queue");
            }
            Status::Connected | Status::Open | Status::Bot | Status::Closed => {
                return refuse(status);
            }
        },
    }
    Ok(Change {
        interaction: next,
        feed,
    })
}

/// The restart rules: a stored callback goes back to open; a workflow call without one, or a
/// call that was ringing, is abandoned; a callback accepted but not yet dialled goes back to open, unassigned and
/// uncounted (the customer was not called); one whose dial was under way counts a failed
/// attempt under the queue's rules (`retry`: maximum attempts, retry interval), so it may
/// close `callback_failed`; a call that was answered or bridged was cut, so it closes as
/// interrupted. `lost_instance` names the dead instance when a survivor settles its calls.
fn recover(
    current: &Interaction,
    next: &mut Interaction,
    feed: &mut Vec<FeedEntry>,
    retry: (u32, Duration),
    lost_instance: Option<&str>,
    now: Timestamp,
) -> Result<(), LifecycleError> {
    let note = |text: &str| match lost_instance {
        None => FeedEntry::new(now, "recovered", format!("Hammond stopped: {text}")),
        Some(name) => FeedEntry::new(
            now,
            "recovered",
            format!("Hammond instance {name} was lost: {text}"),
        )
        .with("instance", name),
    };
    let is_callback = current.dials_back();
    match current.status {
        Status::Bot if is_callback => {
            feed.push(note("the stored callback waits in the queue"));
            set_status(next, feed, Status::Open, now, "waiting for a callback");
        }
        Status::Bot => {
            feed.push(note("the caller was lost"));
            close(next, feed, CloseReason::Abandoned, None, now);
        }
        Status::Connected if is_callback && current.leg.is_none() => {
            feed.push(note(
                "the callback was accepted but not dialled; it waits in the queue",
            ));
            next.assigned_agent = None;
            set_status(next, feed, Status::Open, now, "waiting for a callback");
        }
        Status::Connected
            if is_callback && matches!(current.leg, Some(Leg::Dialling | Leg::Ringing)) =>
        {
            // As any failed attempt: unassigned, retried after the interval, or closed
            // `callback_failed` once the queue's attempts are spent.
            let entry = note("the callback dial did not complete; the attempt is counted");
            fail_attempt(next, feed, entry, retry, true, now)?;
        }
        Status::Connected => {
            feed.push(note("the call was cut"));
            close(next, feed, CloseReason::Interrupted, None, now);
        }
        // Ringing when Hammond stopped: that call is gone.
        Status::Open if current.call_is_ringing() => {
            feed.push(note("the caller was lost while ringing"));
            close(next, feed, CloseReason::Abandoned, None, now);
        }
        Status::Open | Status::Closed => {
            return Err(LifecycleError::NotAllowed {
                event: "recovered",
                status: current.status,
            });
        }
    }
    Ok(())
}

/// A failed attempt under its outcome's rule (`max_attempts`, `retry_after`): counted (unless
/// `counted` is false: a trunk outage), then closed `callback_failed` once the cap is reached,
/// else back to open with the next try at `now + retry_after`, which the feed entry's text says.
fn fail_attempt(
    next: &mut Interaction,
    feed: &mut Vec<FeedEntry>,
    mut entry: FeedEntry,
    (max_attempts, retry_after): (u32, Duration),
    counted: bool,
    now: Timestamp,
) -> Result<(), LifecycleError> {
    let retry = SignedDuration::try_from(retry_after).map_err(|_| LifecycleError::BadRetry)?;
    let not_before = now
        .checked_add(retry)
        .map_err(|_| LifecycleError::BadRetry)?;
    let Some(cb) = next.callback.as_mut() else {
        return Err(LifecycleError::NotACallback {
            event: "dial_failed",
            sub_type: next.sub_type,
        });
    };
    if counted {
        cb.attempts = cb.attempts.saturating_add(1);
    }
    let attempts = cb.attempts;
    next.leg = None;
    if counted && attempts >= max_attempts {
        entry.text = format!(
            "{}; attempt {attempts} of {max_attempts}, no more tries",
            entry.text
        );
        cb.not_before = None;
        feed.push(entry.with("attempts", attempts));
        close(next, feed, CloseReason::CallbackFailed, None, now);
    } else {
        cb.not_before = Some(not_before);
        entry.text = if counted {
            format!(
                "{}; attempt {attempts} of {max_attempts}, next try after {not_before}",
                entry.text
            )
        } else {
            format!("{}; not counted, next try after {not_before}", entry.text)
        };
        feed.push(
            entry
                .with("attempts", attempts)
                .with("not_before", not_before.to_string()),
        );
        next.assigned_agent = None;
        set_status(
            next,
            feed,
            Status::Open,
            now,
            "callback waits for its next attempt",
        );
    }
    Ok(())
}

fn assign(next: &mut Interaction, feed: &mut Vec<FeedEntry>, agent: String, now: Timestamp) {
    feed.push(
        FeedEntry::new(now, "assigned", format!("assigned to {agent}")).with("agent", &agent),
    );
    next.assigned_agent = Some(agent);
    next.leg = None;
    set_status(next, feed, Status::Connected, now, "connected to an agent");
}

fn close(
    next: &mut Interaction,
    feed: &mut Vec<FeedEntry>,
    reason: CloseReason,
    disposition: Option<String>,
    now: Timestamp,
) {
    let from = next.status;
    next.status = Status::Closed;
    next.close_reason = Some(reason);
    next.leg = None;
    let mut e = FeedEntry::new(now, "closed", format!("closed: {reason}"))
        .with("reason", reason)
        .with("from", from);
    if let Some(d) = &disposition {
        e = e.with("disposition", d);
    }
    next.disposition = disposition;
    feed.push(e);
}

fn set_status(
    next: &mut Interaction,
    feed: &mut Vec<FeedEntry>,
    to: Status,
    now: Timestamp,
    why: &str,
) {
    let from = next.status;
    next.status = to;
    feed.push(
        FeedEntry::new(now, "status_changed", format!("{from} → {to}: {why}"))
            .with("from", from)
            .with("to", to),
    );
}

fn set_sub_type(next: &mut Interaction, feed: &mut Vec<FeedEntry>, to: SubType, now: Timestamp) {
    let from = next.sub_type;
    if from == to {
        return;
    }
    next.sub_type = to;
    feed.push(
        FeedEntry::new(now, "sub_type_changed", format!("sub-type {from} → {to}"))
            .with("from", from)
            .with("to", to),
    );
}

fn by_text(by: HangupBy) -> &'static str {
    match by {
        HangupBy::Caller => "the caller",
        HangupBy::Customer => "the customer",
        HangupBy::Agent => "the agent",
        HangupBy::Hammond => "Hammond",
    }
}

/// Digits with an optional leading `+`, 3 to 20 of them.
fn valid_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    (3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests;
