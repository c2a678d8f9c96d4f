//! Feed-only notes: things worth a line on an interaction's timeline that change nothing in
//! its lifecycle (a workflow step, talk time, a recorded voicemail). Typed, so that whoever
//! writes a note cannot misspell its kind and the feed's `kind`/`text` are made in one place.
//!
//! Must not: import from `workflow/` or above (a workflow step arrives as its kind and text).

use std::path::PathBuf;
use std::time::Duration;

/// A feed-only note, allowed in every status. Its feed entry is `{"kind": kind(), "text": text()}`;
/// both strings are pinned (tests and scripts filter on the kinds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// An agent closed a connected interaction through the API and Hammond hung up its call
    /// (the interaction is closed already, so no lifecycle event applies).
    HungUpOnClose,
    /// A bridged callback ended after this long with both parties on the line.
    TalkTime(Duration),
    /// The PBX refused REFER, so Hammond dialled the transfer target itself and bridged the
    /// caller to it.
    TransferBridged {
        /// The transfer target as dialled.
        to: String,
    },
    /// The caller's voicemail was written to disk.
    VoicemailRecorded {
        /// Its length in whole seconds.
        secs: u64,
        /// Where the WAV file is.
        path: PathBuf,
    },
    /// No RTP came from a bridged party for the inactivity timeout, so Hammond hung the call up
    /// (a phone that lost its network, a NAT that closed).
    MediaTimeout {
        /// Who went silent: "the customer", "the agent", "the caller".
        whose: &'static str,
    },
    /// The caller's voicemail could not be written (a full disk): the message is lost, and the
    /// interaction does not become a voicemail.
    VoicemailLost {
        /// Its length in whole seconds.
        secs: u64,
        /// Why the write failed.
        error: String,
    },
    /// An agent's note from the workspace.
    Agent {
        /// The agent's id.
        agent: String,
        /// What they wrote.
        text: String,
    },
    /// An open callback passed its queue's `[callback] expiry` and was closed `expired`.
    Expired {
        /// The queue's expiry.
        after: Duration,
    },
    /// Answering-machine screening of a callback's customer decided (issue 21): a person, a
    /// machine and why, or the "press 1" confirmation's outcome.
    Screened {
        /// What answered, as the feed says it ("a person", "an answering machine (a long
        /// greeting)", "the customer pressed 1" …).
        verdict: &'static str,
    },
    /// The short message was left on a customer's answering machine and Hammond hung up.
    MachineMessageLeft,
    /// The agent put the bridged call on hold: the customer hears hold music.
    OnHold,
    /// The agent took the call off hold: the two talk again.
    Resumed,
    /// A step of the queue's timed workflow (menu offered, key accepted, position announced…).
    WorkflowStep {
        /// The step's feed kind, snake_case (`workflow::engine::Step::kind`).
        kind: &'static str,
        /// The step as the Home List shows it.
        text: String,
    },
}

impl Note {
    /// The feed entry's `kind`, snake_case.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::HungUpOnClose => "hung_up_on_close",
            Self::TalkTime(_) => "talk_time",
            Self::TransferBridged { .. } => "transfer_bridged",
            Self::VoicemailRecorded { .. } => "voicemail_recorded",
            Self::MediaTimeout { .. } => "media_timeout",
            Self::VoicemailLost { .. } => "voicemail_lost",
            Self::Expired { .. } => "expired",
            Self::Agent { .. } => "agent_note",
            Self::Screened { .. } => "screened",
            Self::MachineMessageLeft => "machine_message_left",
            Self::OnHold => "on_hold",
            Self::Resumed => "resumed",
            Self::WorkflowStep { kind, .. } => kind,
        }
    }

    /// The feed entry's human-readable `text`.
    pub fn text(&self) -> String {
        match self {
            Self::HungUpOnClose => "the agent closed the interaction; Hammond hung up".to_owned(),
            Self::Agent { agent, text } => format!("{agent}: {text}"),
            Self::Screened { verdict } => format!("answering-machine screening: {verdict}"),
            Self::MachineMessageLeft => {
                "the message was left on the answering machine; Hammond hung up".to_owned()
            }
            Self::Expired { after } => format!(
                "not reached within the queue's expiry ({}); closed",
                as_written(*after)
            ),
            Self::TalkTime(talk) => {
                let secs = talk.as_secs();
                format!("talk time {}:{:02}", secs / 60, secs % 60)
            }
            Self::TransferBridged { to } => {
                format!("the PBX refused REFER; Hammond called {to} and bridged the caller")
            }
            Self::VoicemailRecorded { secs, path } => {
                format!("voicemail of {secs} s recorded to {}", path.display())
            }
            Self::MediaTimeout { whose } => {
                format!("no audio from {whose} for the inactivity timeout; Hammond hung up")
            }
            Self::VoicemailLost { secs, error } => {
                format!("the voicemail of {secs} s could not be saved: {error}")
            }
            Self::OnHold => "on hold: the customer hears hold music".to_owned(),
            Self::Resumed => "resumed: off hold".to_owned(),
            Self::WorkflowStep { text, .. } => text.clone(),
        }
    }
}

/// A duration as queue files write it: `7d`, `12h`, `30m`, `45s`.
fn as_written(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings the untyped notes wrote, byte for byte: stored feeds and tests rely on them.
    #[test]
    fn kinds_and_texts_are_the_ones_always_written() {
        let cases = [
            (
                Note::HungUpOnClose,
                "hung_up_on_close",
                "the agent closed the interaction; Hammond hung up",
            ),
            (
                Note::TalkTime(Duration::from_millis(125_900)),
                "talk_time",
                "talk time 2:05",
            ),
            (
                Note::TransferBridged {
                    to: "sip:operator@pbx".into(),
                },
                "transfer_bridged",
                "the PBX refused REFER; Hammond called sip:operator@pbx and bridged the caller",
            ),
            (
                Note::VoicemailRecorded {
                    secs: 12,
                    path: "data/voicemail/7.wav".into(),
                },
                "voicemail_recorded",
                "voicemail of 12 s recorded to data/voicemail/7.wav",
            ),
            (
                Note::VoicemailLost {
                    secs: 12,
                    error: "No space left on device (os error 28)".into(),
                },
                "voicemail_lost",
                "the voicemail of 12 s could not be saved: No space left on device (os error 28)",
            ),
            (
                Note::WorkflowStep {
                    kind: "menu_offered",
                    text: "menu offered".into(),
                },
                "menu_offered",
                "menu offered",
            ),
        ];
        for (note, kind, text) in cases {
            assert_eq!((note.kind(), note.text().as_str()), (kind, text));
        }
    }
}
