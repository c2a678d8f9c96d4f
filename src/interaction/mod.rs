//! The interaction domain model (PURE): one caller's or callback's journey through a queue, its
//! status, sub-type, callback data and feed (timeline). See DESIGN.md, "The interaction
//! lifecycle". Transitions live in [`lifecycle`]; this module holds only data.
//!
//! Must not: touch a clock, a socket or the store. Wall time comes in as a [`jiff::Timestamp`].

pub mod lifecycle;
pub mod note;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use lifecycle::{
    Change, DialFailure, EVENT_KINDS, Event, FailCause, HangupBy, LifecycleError, apply,
};
pub use note::Note;

/// The store's identifier for an interaction (an integer in the API).
pub type InteractionId = i64;

/// Where an interaction is in its lifecycle (DESIGN.md, pinned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nobody and nothing is engaging it: the only status an agent may accept.
    Open,
    /// The caller is on the line in the queue's timed workflow.
    Bot,
    /// Assigned to an agent: a live caller bridged, or a callback being dialled.
    Connected,
    /// Finished; see the `closed` feed entry for the reason.
    Closed,
}

impl Status {
    /// Waiting in its queue's line: open (nobody engages it) or bot (the caller is in the
    /// workflow). Positions count these, by original arrival.
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Open | Self::Bot)
    }
}

/// The kind of interaction; only calls exist today (DESIGN.md, pinned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommunicationType {
    /// A phone call.
    Call,
}

/// What the interaction is for (DESIGN.md, pinned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubType {
    /// A caller waiting in the queue.
    Inbound,
    /// The caller asked to be called back.
    Callback,
    /// The caller left a message for the queue.
    Voicemail,
}

/// Why an interaction closed (snake_case in JSON and in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// An agent handled it.
    Completed,
    /// The caller hung up before reaching an agent.
    Abandoned,
    /// The callback failed its queue's maximum number of attempts.
    CallbackFailed,
    /// It waited past the queue's maximum wait.
    Expired,
    /// The workflow transferred the caller elsewhere.
    Transferred,
    /// A voicemail was dealt with.
    VoicemailDone,
    /// The workflow hung up on the caller (e.g. outside business hours).
    HungUpByWorkflow,
    /// A Hammond restart cut an engaged call.
    Interrupted,
}

/// How far the outbound leg of a connected interaction got (the callback dial, or the bridge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Leg {
    /// INVITE sent, no provisional response yet.
    Dialling,
    /// 180/183 received.
    Ringing,
    /// 200 OK received: the customer picked up.
    Answered,
    /// Media of the customer and the agent are bridged.
    Bridged,
}

/// Callback data, present when `sub_type` is callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// The number to call back (digits, optionally with `+`).
    pub number: String,
    /// Dial attempts that failed so far.
    pub attempts: u32,
    /// Do not dial before this time (set after a failed attempt).
    pub not_before: Option<Timestamp>,
    /// When the caller requested it (for the daily cap).
    #[serde(skip)]
    pub requested_at: Option<Timestamp>,
}

/// One interaction as the store keeps it. The API adds `position` and the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// Store-assigned id (0 before it is stored).
    pub id: InteractionId,
    /// Queue name (the queue file's name).
    pub queue: String,
    /// Lifecycle status.
    pub status: Status,
    /// Always `call` today.
    pub communication_type: CommunicationType,
    /// inbound, callback or voicemail.
    pub sub_type: SubType,
    /// The caller's number: digits, optionally with `+`.
    pub customer_number: String,
    /// Original arrival: the queue order key, kept when the caller turns into a callback.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// The agent it is (or was last) assigned to.
    pub assigned_agent: Option<String>,
    /// Callback data, when sub_type is callback.
    pub callback: Option<Callback>,
    /// Progress of the outbound leg while connected.
    pub leg: Option<Leg>,
    /// Set when closed.
    pub close_reason: Option<CloseReason>,
    /// The agent's disposition on close, if any.
    pub disposition: Option<String>,
    /// Where the caller's voicemail recording is (set once it is written and synced): the
    /// one place the audio route takes a file path from, never the request.
    pub voicemail_path: Option<std::path::PathBuf>,
}

impl Interaction {
    /// A new inbound call, `open`, as the SIP shell reports it on INVITE. Call
    /// `InteractionStore::create` to give it an id.
    pub fn inbound(queue: &str, customer_number: &str, now: Timestamp) -> Self {
        Self {
            id: 0,
            queue: queue.to_owned(),
            status: Status::Open,
            communication_type: CommunicationType::Call,
            sub_type: SubType::Inbound,
            customer_number: customer_number.to_owned(),
            created_at: now,
            updated_at: now,
            assigned_agent: None,
            callback: None,
            leg: None,
            close_reason: None,
            disposition: None,
            voicemail_path: None,
        }
    }

    /// A callback requested from outside a call (`POST /api/v1/callbacks`: a website's "call
    /// me" form, a CRM): open at once, sub-type callback, for `number`, not to be dialled
    /// before `not_before`. Call `InteractionStore::create_callback`, which applies the booking
    /// rules, to store it.
    pub fn requested_callback(
        queue: &str,
        number: &str,
        not_before: Option<Timestamp>,
        now: Timestamp,
    ) -> Self {
        Self {
            sub_type: SubType::Callback,
            callback: Some(Callback {
                number: number.to_owned(),
                attempts: 0,
                not_before,
                requested_at: Some(now),
            }),
            ..Self::inbound(queue, number, now)
        }
    }

    /// An inbound caller whose call is up but not yet in the workflow (ringing before the
    /// answer): open, inbound. Only the call's task may settle it; see
    /// [`LifecycleError::LiveCall`].
    pub fn call_is_ringing(&self) -> bool {
        self.status == Status::Open && self.sub_type == SubType::Inbound
    }

    /// Accepting it dials the customer back: a callback, or a voicemail from a caller whose
    /// number can be called (the voicemail's callback data is the caller's number, set when
    /// the message was left; see [`lifecycle`]).
    pub fn dials_back(&self) -> bool {
        self.callback.is_some() && matches!(self.sub_type, SubType::Callback | SubType::Voicemail)
    }

    /// A callback that may not be dialled at `now`: its not-before time, when still ahead.
    pub fn not_due_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.callback
            .as_ref()
            .filter(|_| self.dials_back())
            .and_then(|c| c.not_before)
            .filter(|t| *t > now)
    }

    /// The pinned JSON shape (DESIGN.md) with the given queue `position`.
    pub fn to_json(&self, position: Option<u32>) -> serde_json::Value {
        serde_json::to_value(self.json(position)).unwrap_or_default()
    }

    /// The same shape, to serialise directly (no `Value` tree: the store writes one per event).
    pub fn json(&self, position: Option<u32>) -> InteractionJson<'_> {
        InteractionJson {
            id: self.id,
            queue: &self.queue,
            status: self.status,
            communication_type: self.communication_type,
            sub_type: self.sub_type,
            customer_number: &self.customer_number,
            created_at: self.created_at,
            updated_at: self.updated_at,
            assigned_agent: self.assigned_agent.as_deref(),
            position,
            callback: self
                .callback
                .as_ref()
                .filter(|_| self.dials_back())
                .map(|c| CallbackJson {
                    number: &c.number,
                    attempts: c.attempts,
                    not_before: c.not_before,
                }),
            voicemail: self.voicemail_path.is_some(),
        }
    }
}

/// An interaction as the API and the event log show it (see [`Interaction::json`]).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Interaction)]
pub struct InteractionJson<'a> {
    id: InteractionId,
    queue: &'a str,
    status: Status,
    communication_type: CommunicationType,
    sub_type: SubType,
    /// The caller's number: digits, optionally with `+`.
    customer_number: &'a str,
    /// Original arrival (RFC 3339).
    #[serde(serialize_with = "as_text")]
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[serde(serialize_with = "as_text")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
    assigned_agent: Option<&'a str>,
    /// Place in its queue's line while waiting (open or bot).
    position: Option<u32>,
    /// Present for a callback, and for a voicemail whose caller can be called back.
    callback: Option<CallbackJson<'a>>,
    /// `true` when the caller's recording can be played (`GET
    /// /api/v1/interactions/{id}/voicemail`); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    voicemail: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Callback)]
pub(crate) struct CallbackJson<'a> {
    number: &'a str,
    attempts: u32,
    #[serde(serialize_with = "opt_as_text")]
    #[schema(value_type = Option<String>, format = DateTime)]
    not_before: Option<Timestamp>,
}

/// A time as its `Display` text (RFC 3339), as the JSON shape has always written it.
fn as_text<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(t)
}

#[allow(clippy::ref_option)]
fn opt_as_text<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(t),
        None => s.serialize_none(),
    }
}

/// One line of an interaction's timeline. `data` holds the kind's typed fields, flattened
/// into the JSON object beside `at`, `kind` and `text` (a key press is
/// `{"kind": "dtmf", "digit": "1", "method": "rfc4733"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// When it happened.
    pub at: Timestamp,
    /// Machine-readable kind, snake_case (`status_changed`, `dtmf`, ...).
    pub kind: String,
    /// Human-readable text for the Home List.
    pub text: String,
    /// Kind-specific fields.
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl FeedEntry {
    /// An entry with no typed fields.
    pub fn new(at: Timestamp, kind: &str, text: impl Into<String>) -> Self {
        Self {
            at,
            kind: kind.to_owned(),
            text: text.into(),
            data: serde_json::Map::new(),
        }
    }

    /// Adds a typed field.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        let v = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.data.insert(key.to_owned(), v);
        self
    }
}

/// Text form of the enums, for the store and for messages.
macro_rules! snake_names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The snake_case name used in JSON and in the store.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            /// Parses the snake_case name; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

snake_names!(Status { Open => "open", Bot => "bot", Connected => "connected", Closed => "closed" });
snake_names!(SubType { Inbound => "inbound", Callback => "callback", Voicemail => "voicemail" });
snake_names!(CommunicationType { Call => "call" });
snake_names!(Leg { Dialling => "dialling", Ringing => "ringing", Answered => "answered", Bridged => "bridged" });
snake_names!(CloseReason {
    Completed => "completed", Abandoned => "abandoned", CallbackFailed => "callback_failed",
    Expired => "expired", Transferred => "transferred", VoicemailDone => "voicemail_done",
    HungUpByWorkflow => "hung_up_by_workflow", Interrupted => "interrupted",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_the_pinned_one() {
        let t: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let mut i = Interaction::inbound("support", "+15551234567", t);
        i.id = 7;
        let v = i.to_json(Some(1));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "id",
            "queue",
            "status",
            "communication_type",
            "sub_type",
            "customer_number",
            "created_at",
            "updated_at",
            "assigned_agent",
            "position",
            "callback",
        ] {
            assert!(keys.contains(&k), "{k} missing");
        }
        assert_eq!(keys.len(), 11);
        assert_eq!(v["id"], 7);
        assert_eq!(v["status"], "open");
        assert_eq!(v["communication_type"], "call");
        assert!(v["callback"].is_null());
        i.sub_type = SubType::Callback;
        i.callback = Some(Callback {
            number: "15551234567".into(),
            attempts: 1,
            not_before: None,
            requested_at: None,
        });
        assert_eq!(i.to_json(None)["callback"]["attempts"], 1);
    }

    #[test]
    fn feed_entry_flattens_its_data() {
        let t: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let e = FeedEntry::new(t, "dtmf", "pressed 1")
            .with("digit", "1")
            .with("method", "rfc4733");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "dtmf");
        assert_eq!(v["digit"], "1");
        assert_eq!(v["method"], "rfc4733");
        let back: FeedEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn names_round_trip() {
        for s in [Status::Open, Status::Bot, Status::Connected, Status::Closed] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            CloseReason::parse("callback_failed"),
            Some(CloseReason::CallbackFailed)
        );
        assert_eq!(SubType::parse("nope"), None);
    }
}
