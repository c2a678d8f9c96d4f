//! PURE: the decisions of a call. An inbound call ([`inbound::InboundCall`]) and a callback dial
//! ([`callback::CallbackDial`]) are state machines in the house shape: SIP leg events, media
//! events, store replies and agent/API commands go in with `now`; [`Command`]s come out (dial,
//! play, bridge, hang up, store this, tell the router). The tokio drivers in `rt/` carry the
//! commands out and never decide anything themselves.
//!
//! A call names its legs with [`LegId`]. The agent's leg is one leg whatever its kind (a SIP
//! desk phone today, the browser next): the core only sees it ring, answer, fail and end, so a
//! new kind of agent phone changes the driver, never this module.
//!
//! Must not: read a clock, touch sockets or tasks, or know how a leg is reached.

pub mod callback;
pub mod inbound;

use std::time::Duration;

use crate::interaction::{Event as Lifecycle, FailCause, InteractionId, Note};
use crate::workflow::engine::{PlayItem, Refusal, Step};

/// A leg of a call, as the call's core names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegId {
    /// The inbound caller (the PBX's leg).
    Caller,
    /// The customer a callback dials through the trunk.
    Customer,
    /// The agent's phone, whatever its kind.
    Agent,
    /// A transfer target Hammond dialled itself (the PBX refused REFER).
    Transfer,
}

/// Something that happened on a leg (SIP or media).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEvent {
    /// 180/183: the far end is alerting.
    Ringing,
    /// 200 OK: the leg is up and its media started.
    Answered,
    /// The leg never came up: a final non-2xx `status`, or none (no route, no port, a
    /// transport error, an unusable answer).
    Failed {
        /// The SIP status, when a final response came.
        status: Option<u16>,
        /// Why, when the driver knows more than the status (no connection to the trunk, a
        /// TLS failure, an SRTP mismatch): the feed says which.
        cause: Option<FailCause>,
    },
    /// The far end hung up (BYE), or the dialog died (no ACK).
    Ended,
    /// No RTP from the far end for the inactivity timeout.
    MediaTimeout,
    /// Hammond itself ended the leg without the core asking (shutdown after the drain): the
    /// interaction is settled as a restart would settle it (`Recovered`).
    Cut,
    /// What the leg was playing (not a loop) has finished.
    PlaybackFinished,
}

/// Who the driver dials for a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The callback number, through `[sip.trunk]`.
    Customer(String),
    /// The agent's phone (the driver knows its kind and address).
    Agent(String),
    /// A SIP URI (a transfer target).
    Uri(String),
}

/// How an offer to an agent ended (reported to the router).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferOutcome {
    /// The agent answered and the call is theirs (the interaction is connected).
    Bridged,
    /// The agent's phone did not answer in time, was busy or failed.
    NotAnswered,
    /// The call cannot take an offer now (capturing a callback, transferring, gone, taken).
    Unavailable,
}

/// What a call asks of the store. `Apply` writes go in order and nobody waits for them; the
/// others are answered through `handle_store`.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    /// Create the inbound interaction (answered by [`StoreReply::Created`] or `Refused`).
    Create,
    /// Write a lifecycle event; nobody waits.
    Apply(Lifecycle),
    /// Write a lifecycle event that must be durable before the call goes on (answered by
    /// [`StoreReply::Committed`] or [`StoreReply::Refused`]).
    Commit(Lifecycle),
    /// Accept the interaction for `agent` atomically (a push offer the agent answered).
    Accept {
        /// The agent's id.
        agent: String,
    },
    /// A workflow step for the feed.
    Step(Step),
    /// Duplicate rule, daily cap and the durable write of a callback request.
    RequestCallback {
        /// The number to call back.
        number: String,
        /// Not before (a callback for opening time).
        not_before: Option<jiff::Timestamp>,
        /// The queue's daily cap per number.
        max_per_day: u32,
    },
    /// The caller's position in the queue (answered by [`StoreReply::QueueStatus`]).
    QueueStatus,
    /// Write what was recorded on the caller's leg as a voicemail (answered by
    /// [`StoreReply::RecordingSaved`]).
    SaveRecording,
}

/// The store's answer to a [`StoreOp`] that waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreReply {
    /// The inbound interaction exists.
    Created(InteractionId),
    /// The `Commit` or `Accept` is durable.
    Committed,
    /// The store refused it (the interaction moved on meanwhile) or failed.
    Refused,
    /// The requested callback is durable.
    CallbackStored,
    /// The callback was not stored.
    CallbackRefused(Refusal),
    /// The caller's place in line, and an honest estimate if there is one.
    QueueStatus {
        /// 1 = next.
        position: u32,
        /// Estimated wait at that position.
        estimated_wait: Option<Duration>,
    },
    /// The recording is written; `audio` is false when there was nothing to keep.
    RecordingSaved {
        /// Whether a message was kept.
        audio: bool,
    },
}

/// What the router should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterNote {
    /// How an offer this call took ended.
    OfferEnded(OfferOutcome),
    /// The agent's phone failed a call it had to take: stop offering them work.
    AgentAway(String),
    /// The live caller can no longer be offered (a callback is booked, or the call ends).
    LeftQueue,
}

/// What a call's core asks its driver to do. Drain with `poll_command` after every input.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// 180 Ringing to the caller.
    Ring,
    /// Answer the caller (200 OK with our SDP answer).
    Answer,
    /// Refuse the caller's INVITE with `status`.
    Reject(u16),
    /// Start sending and receiving the caller's media (after the ACK: never before).
    StartMedia,
    /// Call a leg.
    Dial(LegId, Target),
    /// Replace what `leg` hears: `items` once, then loop `then_loop` (silence when `None`).
    Play {
        /// The leg that hears it.
        leg: LegId,
        /// Played once, in order.
        items: Vec<PlayItem>,
        /// A prompt id looped afterwards (hold music, ringback).
        then_loop: Option<String>,
    },
    /// Keep what arrives on `leg` (a voicemail) until `SaveRecording`.
    Record(LegId),
    /// Listen to what arrives on `leg` for answering-machine detection with these thresholds
    /// (the verdict comes back as `handle_screened`, a machine's greeting end as
    /// `handle_greeting_ended`); `None` stops listening.
    Screen(LegId, Option<crate::media::amd::AmdConfig>),
    /// Relay the two legs' media to each other (prompts stop).
    Bridge(LegId, LegId),
    /// Stop relaying the two legs' media (hold): each hears its own player again, which the
    /// next `Play` sets.
    Unbridge(LegId, LegId),
    /// Transfer the caller by REFER to this URI.
    Refer(String),
    /// CANCEL a ringing leg, BYE an answered one (idempotent).
    HangUp(LegId),
    /// A store operation.
    Store(StoreOp),
    /// Tell the router.
    Router(RouterNote),
    /// Count a callback dial's outcome (`answered`, `busy`, `no_answer`, `failed`,
    /// `agent_unreachable`, and `machine` after `answered` for a screened machine).
    DialOutcome(&'static str),
    /// A conversation of this length ended (for estimated waits).
    Handled(Duration),
}

/// What the agent asks of a bridged call, from the page's Hold button or the desk phone's
/// hold re-INVITE (RFC 3264 §8.4: `a=sendonly` or `a=inactive`, and back to `sendrecv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentCommand {
    /// The customer hears the queue's hold music, the agent hears nothing: the bridge is
    /// undone until `Resume`. Anything but a bridged call with an agent ignores it, and so
    /// does a call already on hold.
    Hold,
    /// Bridge again. A call not on hold ignores it.
    Resume,
}

/// A feed note (the interaction keeps its status).
fn note(n: Note) -> Command {
    Command::Store(StoreOp::Apply(Lifecycle::Note(n)))
}

#[cfg(test)]
mod testkit;
