//! Callback dial scenarios in virtual time: each runs in microseconds, no runtime, no sockets.

use super::*;
use crate::call::testkit::{ms, notes, secs, stored, t0};
use crate::call::{Command, LegEvent, LegId, OfferOutcome, RouterNote, StoreOp, StoreReply};
use crate::interaction::{DialFailure, Event as Lifecycle, FailCause, HangupBy};

const CUSTOMER: LegId = LegId::Customer;
const AGENT: LegId = LegId::Agent;

fn settings() -> Settings {
    Settings {
        retry: RetryPolicy::uniform(3, secs(600), secs(30)),
        agent_ring_timeout: secs(20),
        number_allowed: true,
        greeting: "callback_greeting".into(),
        hold_music: "hold_music".into(),
        apology: "agent_unreachable".into(),
        whisper: "callback_whisper".into(),
        requested_at: "requested_at".into(),
        ringback: "ringback".into(),
        screening: ScreeningRules::default(),
    }
}

fn callback() -> Callback {
    Callback {
        number: "+15551234567".into(),
        agent: "alice".into(),
        requested_at: Some(jiff::civil::time(10, 42, 0, 0)),
    }
}

type Sim = crate::call::testkit::Sim<CallbackDial>;

impl Sim {
    fn accepted() -> Self {
        Self::wrap(CallbackDial::accepted(t0(), callback(), settings()))
    }

    fn offered() -> Self {
        Self::wrap(CallbackDial::offered(t0(), callback(), settings()))
    }

    /// Accepted, Dialling committed, both legs dialled.
    fn dialling() -> Self {
        let mut s = Self::accepted();
        s.store(StoreReply::Committed);
        s
    }
}

fn plays(cmds: &[Command], leg: LegId) -> Vec<(Vec<PlayItem>, Option<String>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Play {
                leg: l,
                items,
                then_loop,
            } if *l == leg => Some((items.clone(), then_loop.clone())),
            _ => None,
        })
        .collect()
}

fn router(cmds: &[Command]) -> Vec<RouterNote> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Router(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn nothing_is_dialled_before_dialling_is_durable() {
    let mut s = Sim::accepted();
    assert_eq!(
        s.log,
        vec![Command::Store(StoreOp::Commit(Lifecycle::Dialling))],
        "the first thing is the durable Dialling, and nothing else"
    );
    let cmds = s.store(StoreReply::Committed);
    assert_eq!(
        cmds,
        vec![
            Command::Dial(CUSTOMER, Target::Customer("+15551234567".into())),
            Command::Dial(AGENT, Target::Agent("alice".into())),
        ]
    );
}

#[test]
fn a_refused_dialling_calls_nobody() {
    let mut s = Sim::accepted();
    let cmds = s.store(StoreReply::Refused);
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(s.c.is_finished());
}

#[test]
fn a_number_the_rules_no_longer_allow_is_never_dialled() {
    let mut st = settings();
    st.number_allowed = false;
    let mut s = Sim::wrap(CallbackDial::accepted(t0(), callback(), st));
    assert!(!s.log.iter().any(|c| matches!(c, Command::Dial(..))));
    assert!(matches!(
        stored(&s.log)[..],
        [Lifecycle::DialFailed {
            max_attempts: 1,
            ..
        }]
    ));
    assert!(s.c.is_finished());
    assert!(s.drain().is_empty());
}

#[test]
fn customer_answers_first_hears_the_greeting_then_music_until_the_agent_answers() {
    let mut s = Sim::dialling();
    s.at(ms(300)).leg(CUSTOMER, LegEvent::Ringing);
    let cmds = s.at(ms(800)).leg(CUSTOMER, LegEvent::Answered);
    assert_eq!(
        plays(&cmds, CUSTOMER),
        vec![(
            vec![PlayItem::Prompt("callback_greeting".into())],
            Some("hold_music".into())
        )],
        "the customer hears the greeting at once, then hold music"
    );
    assert_eq!(stored(&cmds), vec![Lifecycle::Answered]);
    let cmds = s.at(secs(5)).leg(AGENT, LegEvent::Answered);
    assert_eq!(
        cmds,
        vec![
            Command::Bridge(CUSTOMER, AGENT),
            Command::Store(StoreOp::Apply(Lifecycle::Bridged)),
        ]
    );
    let cmds = s.at(secs(65)).leg(CUSTOMER, LegEvent::Ended);
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert!(cmds.contains(&Command::Handled(secs(60))));
    assert_eq!(notes(&cmds), vec!["talk_time"]);
    assert_eq!(
        stored(&cmds).last(),
        Some(&Lifecycle::HungUp {
            by: HangupBy::Customer
        })
    );
    assert!(s.c.is_finished());
}

#[test]
fn the_ringing_entry_is_written_once() {
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Ringing);
    s.leg(CUSTOMER, LegEvent::Ringing);
    let rings = stored(&s.log)
        .into_iter()
        .filter(|e| *e == Lifecycle::Ringing)
        .count();
    assert_eq!(rings, 1);
}

#[test]
fn agent_answers_first_hears_the_whisper_then_ringback() {
    let mut s = Sim::dialling();
    let cmds = s.at(secs(1)).leg(AGENT, LegEvent::Answered);
    let p = plays(&cmds, AGENT);
    assert_eq!(p.len(), 1);
    let (items, then) = &p[0];
    assert_eq!(items[0], PlayItem::Prompt("callback_whisper".into()));
    assert!(items.contains(&PlayItem::Digits("15551234567".into())));
    assert!(items.contains(&PlayItem::Prompt("requested_at".into())));
    assert!(items.contains(&PlayItem::Digits("10".into())));
    assert!(items.contains(&PlayItem::Digits("42".into())));
    assert_eq!(then.as_deref(), Some("ringback"));
    // The agent is up: their ring timeout no longer applies; the customer's still does.
    assert_eq!(s.c.poll_timeout(), Some(t0() + secs(30)));
    let cmds = s.at(secs(9)).leg(CUSTOMER, LegEvent::Answered);
    assert!(cmds.contains(&Command::Bridge(CUSTOMER, AGENT)));
    assert!(
        plays(&cmds, CUSTOMER).is_empty(),
        "no greeting once the agent waits"
    );
}

#[test]
fn customer_busy_counts_the_attempt_and_releases_the_agent() {
    let mut s = Sim::dialling();
    let cmds = s.at(secs(2)).leg(
        CUSTOMER,
        LegEvent::Failed {
            status: Some(486),
            cause: None,
        },
    );
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert!(cmds.contains(&Command::DialOutcome("busy")));
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::DialFailed {
            code: Some(486),
            kind: DialFailure::Busy,
            cause: None,
            max_attempts: 3,
            retry_after: secs(600),
        }]
    );
    assert!(s.c.is_finished());
}

/// The customer answered but its answer has no SRTP crypto suite in common with our
/// mandatory offer: the driver reports the leg failed with the cause, and the attempt fails at
/// once with it (counted, back to open), the agent released.
#[test]
fn an_srtp_mismatch_fails_the_attempt_with_its_cause() {
    let mut s = Sim::dialling();
    let cause = Some(FailCause::SrtpNoCommonSuite);
    let cmds = s.at(ms(900)).leg(
        CUSTOMER,
        LegEvent::Failed {
            status: None,
            cause,
        },
    );
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert!(cmds.contains(&Command::DialOutcome("failed")));
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::DialFailed {
            code: None,
            kind: DialFailure::Failed,
            cause,
            max_attempts: 3,
            retry_after: secs(600),
        }]
    );
    assert!(s.c.is_finished());
}

#[test]
fn customer_failure_status_maps_to_its_outcome() {
    for (status, kind) in [
        (Some(600), DialFailure::Busy),
        (Some(480), DialFailure::NoAnswer),
        (Some(408), DialFailure::NoAnswer),
        (Some(404), DialFailure::Failed),
        (Some(500), DialFailure::Failed),
        (Some(503), DialFailure::TrunkOutage),
        (None, DialFailure::Failed),
    ] {
        let mut s = Sim::dialling();
        let cmds = s.leg(
            CUSTOMER,
            LegEvent::Failed {
                status,
                cause: None,
            },
        );
        assert!(
            matches!(stored(&cmds)[..], [Lifecycle::DialFailed { kind: k, code, .. }] if k == kind && code == status),
            "{status:?}: {cmds:?}"
        );
    }
}

/// Issue 18: a dial the transport could not deliver (an untrusted TLS certificate) fails at
/// once as a counted failure whose stored event carries the cause, whatever the status says,
/// and the agent is released.
#[test]
fn a_transport_failure_is_a_counted_failure_with_its_cause() {
    let mut s = Sim::dialling();
    let cause = FailCause::TlsCertificateNotTrusted;
    let cmds = s.at(ms(40)).leg(
        CUSTOMER,
        LegEvent::Failed {
            status: Some(503),
            cause: Some(cause),
        },
    );
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert!(cmds.contains(&Command::DialOutcome("failed")));
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::DialFailed {
            code: Some(503),
            kind: DialFailure::Failed,
            cause: Some(cause),
            max_attempts: 3,
            retry_after: secs(600),
        }]
    );
    assert!(s.c.is_finished());
}

#[test]
fn customer_no_answer_is_cancelled_at_the_ring_timeout() {
    let mut s = Sim::dialling();
    s.at(secs(1)).leg(AGENT, LegEvent::Answered);
    let cmds = s.run_until(secs(60));
    assert_eq!(s.now, t0() + secs(60));
    assert!(cmds.contains(&Command::HangUp(CUSTOMER)));
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert!(matches!(
        stored(&cmds)[..],
        [Lifecycle::DialFailed {
            kind: DialFailure::NoAnswer,
            code: Some(487),
            ..
        }]
    ));
    assert!(s.c.is_finished());
}

#[test]
fn agent_never_answering_after_the_customer_did_apologises_and_reopens_uncounted() {
    let mut s = Sim::dialling();
    s.at(ms(800)).leg(CUSTOMER, LegEvent::Answered);
    let cmds = s.run_until(secs(21));
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(
        plays(&cmds, CUSTOMER),
        vec![(vec![PlayItem::Prompt("agent_unreachable".into())], None)]
    );
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::AgentUnreachable { code: None }],
        "back to open without counting an attempt"
    );
    assert_eq!(router(&cmds), vec![RouterNote::AgentAway("alice".into())]);
    assert!(
        !cmds.contains(&Command::HangUp(CUSTOMER)),
        "the apology plays first"
    );
    let cmds = s.at(secs(24)).leg(CUSTOMER, LegEvent::PlaybackFinished);
    assert_eq!(cmds, vec![Command::HangUp(CUSTOMER)]);
    assert!(s.c.is_finished());
}

#[test]
fn an_apology_that_never_ends_is_cut_by_its_guard() {
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Answered);
    s.at(secs(3)).leg(
        AGENT,
        LegEvent::Failed {
            status: Some(486),
            cause: None,
        },
    );
    let cmds = s.run_until(secs(60));
    assert_eq!(cmds, vec![Command::HangUp(CUSTOMER)]);
    assert!(s.c.is_finished());
}

#[test]
fn agent_failing_after_the_customer_answered_is_agent_unreachable() {
    let mut s = Sim::dialling();
    s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    let cmds = s.at(secs(2)).leg(
        AGENT,
        LegEvent::Failed {
            status: Some(503),
            cause: None,
        },
    );
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::AgentUnreachable { code: Some(503) }]
    );
    assert!(cmds.contains(&Command::DialOutcome("agent_unreachable")));
    assert_eq!(plays(&cmds, CUSTOMER).len(), 1, "the apology");
}

#[test]
fn agent_failing_while_the_customer_rings_cancels_the_customer() {
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Ringing);
    let cmds = s.at(secs(2)).leg(
        AGENT,
        LegEvent::Failed {
            status: Some(480),
            cause: None,
        },
    );
    assert!(cmds.contains(&Command::HangUp(CUSTOMER)));
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::AgentUnreachable { code: Some(480) }]
    );
    assert!(plays(&cmds, CUSTOMER).is_empty());
    assert!(s.c.is_finished());
}

#[test]
fn agent_hanging_up_while_waiting_for_the_customer_releases_the_customer() {
    let mut s = Sim::dialling();
    s.leg(AGENT, LegEvent::Answered);
    let cmds = s.at(secs(4)).leg(AGENT, LegEvent::Ended);
    assert!(cmds.contains(&Command::HangUp(CUSTOMER)));
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::AgentUnreachable { code: None }]
    );
}

#[test]
fn customer_hanging_up_while_the_agent_rings() {
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Answered);
    let cmds = s.at(secs(6)).leg(CUSTOMER, LegEvent::Ended);
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::HungUp {
            by: HangupBy::Customer
        }]
    );
    assert!(s.c.is_finished());
    assert_eq!(s.c.poll_timeout(), None);
}

#[test]
fn agent_hanging_up_a_bridged_call() {
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Answered);
    s.at(secs(2)).leg(AGENT, LegEvent::Answered);
    let cmds = s.at(secs(100)).leg(AGENT, LegEvent::Ended);
    assert!(cmds.contains(&Command::HangUp(CUSTOMER)));
    assert!(cmds.contains(&Command::Handled(secs(98))));
    assert_eq!(
        stored(&cmds).last(),
        Some(&Lifecycle::HungUp {
            by: HangupBy::Agent
        })
    );
}

#[test]
fn a_bridge_whose_media_stops_is_ended() {
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Answered);
    s.leg(AGENT, LegEvent::Answered);
    let cmds = s.at(secs(90)).leg(CUSTOMER, LegEvent::MediaTimeout);
    assert!(cmds.contains(&Command::HangUp(CUSTOMER)));
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(notes(&cmds), vec!["talk_time", "media_timeout"]);
    assert_eq!(
        stored(&cmds).last(),
        Some(&Lifecycle::HungUp {
            by: HangupBy::Hammond
        })
    );
    assert!(s.c.is_finished());
}

#[test]
fn close_from_the_api_at_each_step_hangs_up_what_is_up() {
    // Before Dialling is durable: nothing to hang up, and the later refusal dials nobody.
    let mut s = Sim::accepted();
    let cmds = s.close();
    assert_eq!(notes(&cmds), vec!["hung_up_on_close"]);
    assert!(s.c.is_finished());
    assert!(s.store(StoreReply::Committed).is_empty(), "nobody dialled");

    // Ringing.
    let mut s = Sim::dialling();
    let cmds = s.close();
    assert!(cmds.contains(&Command::HangUp(CUSTOMER)));
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert!(s.c.is_finished());

    // Customer up, agent ringing.
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Answered);
    let cmds = s.close();
    assert!(cmds.contains(&Command::HangUp(CUSTOMER)));
    assert!(cmds.contains(&Command::HangUp(AGENT)));

    // Bridged: the talk time is kept.
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Answered);
    s.leg(AGENT, LegEvent::Answered);
    let cmds = s.at(secs(30)).close();
    assert_eq!(notes(&cmds), vec!["talk_time", "hung_up_on_close"]);
    assert!(
        !stored(&cmds)
            .iter()
            .any(|e| matches!(e, Lifecycle::HungUp { .. }))
    );
    // Late events from the legs hung up change nothing.
    assert!(s.leg(CUSTOMER, LegEvent::Ended).is_empty());
}

#[test]
fn a_push_offer_rings_the_agent_first_and_dials_only_after_the_accept() {
    let mut s = Sim::offered();
    assert_eq!(
        s.log,
        vec![Command::Dial(AGENT, Target::Agent("alice".into()))]
    );
    let cmds = s.at(secs(3)).leg(AGENT, LegEvent::Answered);
    assert_eq!(
        cmds,
        vec![Command::Store(StoreOp::Accept {
            agent: "alice".into()
        })]
    );
    let cmds = s.store(StoreReply::Committed);
    assert_eq!(
        router(&cmds),
        vec![RouterNote::OfferEnded(OfferOutcome::Bridged)]
    );
    assert_eq!(plays(&cmds, AGENT).len(), 1, "the whisper");
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::Dialling],
        "Dialling committed before the customer's INVITE"
    );
    assert!(!cmds.iter().any(|c| matches!(c, Command::Dial(..))));
    let cmds = s.store(StoreReply::Committed);
    assert_eq!(
        cmds,
        vec![Command::Dial(
            CUSTOMER,
            Target::Customer("+15551234567".into())
        )],
        "only the customer: the agent is on the line"
    );
}

#[test]
fn a_push_offer_taken_meanwhile_releases_the_agent() {
    let mut s = Sim::offered();
    s.leg(AGENT, LegEvent::Answered);
    let cmds = s.store(StoreReply::Refused);
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(
        router(&cmds),
        vec![RouterNote::OfferEnded(OfferOutcome::Unavailable)]
    );
    assert!(s.c.is_finished());
}

#[test]
fn a_push_offer_not_answered_in_time() {
    let mut s = Sim::offered();
    s.leg(AGENT, LegEvent::Ringing);
    let cmds = s.run_until(secs(25));
    assert_eq!(s.now, t0() + secs(25));
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(
        router(&cmds),
        vec![RouterNote::OfferEnded(OfferOutcome::NotAnswered)]
    );
    assert!(stored(&s.log).is_empty(), "the interaction is untouched");
}

#[test]
fn a_push_offer_the_agent_declines() {
    let mut s = Sim::offered();
    let cmds = s.leg(
        AGENT,
        LegEvent::Failed {
            status: Some(486),
            cause: None,
        },
    );
    assert_eq!(
        router(&cmds),
        vec![RouterNote::OfferEnded(OfferOutcome::NotAnswered)]
    );
    assert!(s.c.is_finished());
}

#[test]
fn a_dial_hammond_cuts_at_shutdown_is_settled_as_a_restart_would() {
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Answered);
    s.leg(AGENT, LegEvent::Answered);
    let cmds = s.at(secs(40)).leg(CUSTOMER, LegEvent::Cut);
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(notes(&cmds), vec!["talk_time"]);
    assert!(matches!(
        stored(&cmds).last(),
        Some(Lifecycle::Recovered {
            max_attempts: 3,
            ..
        })
    ));
    assert!(s.c.is_finished());
}

/// Issue 16: the browser's leg speaks the same events as a SIP phone. A page lost mid-call (a
/// closed tab, a lost network: ICE consent fails) is the agent's `MediaTimeout`, as a desk
/// phone whose RTP stops: both legs are hung up and Hammond is the one who ended it.
#[test]
fn an_agent_leg_lost_mid_call_ends_it_as_a_silent_phone_would() {
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Answered);
    s.at(secs(1)).leg(AGENT, LegEvent::Answered);
    let cmds = s.at(secs(61)).leg(AGENT, LegEvent::MediaTimeout);
    assert!(cmds.contains(&Command::HangUp(CUSTOMER)));
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert!(cmds.contains(&Command::Handled(secs(60))));
    assert_eq!(notes(&cmds), vec!["talk_time", "media_timeout"]);
    assert_eq!(
        stored(&cmds).last(),
        Some(&Lifecycle::HungUp {
            by: HangupBy::Hammond
        })
    );
    assert!(s.c.is_finished());
}

/// A page that answered but never connected (no DTLS-SRTP within its deadline) fails with no
/// status before it was answered: for a callback already dialling, the agent was unreachable.
#[test]
fn an_agent_leg_that_never_connects_is_agent_unreachable() {
    let mut s = Sim::dialling();
    s.leg(CUSTOMER, LegEvent::Answered);
    let cmds = s.at(secs(16)).leg(
        AGENT,
        LegEvent::Failed {
            status: None,
            cause: None,
        },
    );
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::AgentUnreachable { code: None }]
    );
    assert_eq!(plays(&cmds, CUSTOMER).len(), 1, "the apology");
}

/// Decline in the page is a 603 from the agent's leg: a pushed callback is not taken, and
/// nobody is dialled.
#[test]
fn a_push_offer_declined_in_the_page() {
    let mut s = Sim::offered();
    s.leg(AGENT, LegEvent::Ringing);
    let cmds = s.at(secs(3)).leg(
        AGENT,
        LegEvent::Failed {
            status: Some(603),
            cause: None,
        },
    );
    assert_eq!(
        router(&cmds),
        vec![RouterNote::OfferEnded(OfferOutcome::NotAnswered)]
    );
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Dial(..))),
        "{cmds:?}"
    );
    assert!(s.c.is_finished());
}

/// Issue 21: each outcome fails the attempt under its own rule (delay and cap), and the trunk's
/// own outage (503, no response, no connection) is stored as `trunk_outage`, whose rule has no
/// cap (the lifecycle does not count it).
#[test]
fn each_outcome_takes_its_own_retry_rule_and_a_trunk_outage_is_uncapped() {
    use crate::workflow::flow::RetryRule;
    let mut set = settings();
    set.retry.busy = RetryRule {
        max_attempts: 5,
        delay: secs(120),
    };
    set.retry.no_answer = RetryRule {
        max_attempts: 2,
        delay: secs(1800),
    };
    set.retry.outage_delay = secs(60);
    for (status, cause, kind, max_attempts, delay) in [
        (Some(486), None, DialFailure::Busy, 5, secs(120)),
        (Some(480), None, DialFailure::NoAnswer, 2, secs(1800)),
        (Some(404), None, DialFailure::Failed, 3, secs(600)),
        (
            Some(503),
            None,
            DialFailure::TrunkOutage,
            u32::MAX,
            secs(60),
        ),
        (
            Some(408),
            Some(FailCause::TrunkNoResponse),
            DialFailure::TrunkOutage,
            u32::MAX,
            secs(60),
        ),
        (
            Some(503),
            Some(FailCause::Unreachable),
            DialFailure::TrunkOutage,
            u32::MAX,
            secs(60),
        ),
    ] {
        let mut s = Sim::dialling();
        s.c.settings = set.clone();
        let cmds = s.leg(CUSTOMER, LegEvent::Failed { status, cause });
        assert!(
            cmds.contains(&Command::DialOutcome(kind.as_str())),
            "{cmds:?}"
        );
        assert_eq!(
            stored(&cmds),
            vec![Lifecycle::DialFailed {
                code: status,
                kind,
                cause,
                max_attempts,
                retry_after: delay,
            }],
            "{status:?} {cause:?}"
        );
    }
}

// Answering-machine screening (issue 21 item 5). The customer's audio goes through the real
// detector (`media::amd`) frame by frame in virtual time, as the media clock would feed it, and
// its verdicts reach the core as the driver hands them over.

use crate::media::amd::{self, AmdConfig, GreetingEnd, MachineCue, Verdict};
use crate::workflow::flow::RetryRule;

fn screened(detect: bool, confirm: Option<Duration>) -> Settings {
    let mut s = settings();
    s.retry.machine = RetryRule {
        max_attempts: 2,
        delay: secs(3600),
    };
    s.screening = ScreeningRules {
        detect: detect.then(AmdConfig::default),
        confirm_within: confirm,
        wait_for_beep: secs(20),
        confirm: "callback_confirm".into(),
        machine_message: "callback_machine_message".into(),
    };
    s
}

impl Sim {
    /// Accepted with these screening rules, Dialling committed, both legs dialled.
    fn screening(settings: Settings) -> Self {
        let mut s = Self::wrap(CallbackDial::accepted(t0(), callback(), settings));
        s.store(StoreReply::Committed);
        s
    }

    /// The customer's phone sends `audio` (8 kHz) from `t0() + from` on, then silence until
    /// `t0() + until`: 20 ms frames through the detector (then, for a machine, the greeting's
    /// end), with every deadline of the core met on the way. Returns the commands.
    fn customer_says(&mut self, from: Duration, audio: &[i16], until: Duration) -> Vec<Command> {
        let start = t0() + from;
        let mut detector = amd::Detector::new(AmdConfig::default(), start);
        let mut end: Option<GreetingEnd> = None;
        let mut out = Vec::new();
        let silence = vec![0_i16; 160];
        let frames = audio.chunks(160).chain(std::iter::repeat(&silence[..]));
        for (i, frame) in frames.enumerate() {
            let at = start + ms(20) * (u32::try_from(i).unwrap() + 1);
            if at > t0() + until {
                break;
            }
            out.extend(self.run_until(at - t0()));
            if let Some(e) = end.as_mut() {
                if e.handle_frame(at, frame).is_some() {
                    self.c.handle_greeting_ended(at);
                    out.extend(self.drain());
                }
            } else if let Some(v) = detector.handle_frame(at, frame) {
                if matches!(v, Verdict::Machine(_)) {
                    end = Some(GreetingEnd::new(&AmdConfig::default(), at));
                }
                self.c.handle_screened(at, v);
                out.extend(self.drain());
            }
        }
        out.extend(self.run_until(until));
        out
    }

    fn digit(&mut self, leg: LegId, d: char) -> Vec<Command> {
        self.c.handle_digit(self.now, leg, d);
        self.drain()
    }
}

/// A prompt of the shipped library as a far end's audio.
fn wav(id: &str) -> Vec<i16> {
    let path = format!("{}/prompts/audio/{id}.wav", env!("CARGO_MANIFEST_DIR"));
    let mut r = hound::WavReader::open(path).unwrap();
    r.samples::<i16>().map(Result::unwrap).collect()
}

/// A machine's recorded greeting (7.4 s of speech), a pause, then its beep.
fn machine_greeting() -> Vec<i16> {
    let mut a = wav("voicemail_intro");
    a.extend(vec![0; 8 * 400]);
    a.extend(wav("beep"));
    a
}

/// A person: a short "hello" (0.44 s of speech), then waiting for an answer.
fn hello() -> Vec<i16> {
    let mut a = vec![0; 8 * 300];
    a.extend(wav("digit_1"));
    a
}

fn message_played(cmds: &[Command]) -> bool {
    plays(cmds, CUSTOMER)
        .iter()
        .any(|(items, _)| items == &[PlayItem::Prompt("callback_machine_message".into())])
}

fn machine_failure() -> Lifecycle {
    Lifecycle::DialFailed {
        code: None,
        kind: DialFailure::Machine,
        cause: None,
        max_attempts: 2,
        retry_after: secs(3600),
    }
}

/// A recorded greeting is a machine: the customer heard silence while the detector listened,
/// the agent's leg is released at the verdict and the attempt fails by the machine rule; the
/// message waits for the beep to end, plays, and the machine is hung up on.
#[test]
fn a_recorded_greeting_is_a_machine_that_gets_the_message_after_its_beep() {
    let mut s = Sim::screening(screened(true, None));
    let cmds = s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    assert!(cmds.contains(&Command::Screen(CUSTOMER, Some(AmdConfig::default()))));
    assert!(plays(&cmds, CUSTOMER).is_empty(), "silence while listening");
    assert_eq!(stored(&cmds), vec![Lifecycle::Answered]);
    let greeting = machine_greeting();
    let beep_end = secs(1) + ms(greeting.len() as u64 / 8);
    let cmds = s.customer_says(secs(1), &greeting, beep_end + ms(300));
    assert!(
        cmds.contains(&Command::HangUp(AGENT)),
        "the agent is released"
    );
    assert!(cmds.contains(&Command::DialOutcome("machine")));
    assert_eq!(stored(&cmds)[1..], [machine_failure()]);
    assert_eq!(notes(&cmds), vec!["screened"]);
    assert!(message_played(&cmds), "{cmds:?}");
    // The message started (its guard runs from then) after the beep, not over the greeting.
    let started = s.c.poll_timeout().unwrap() - secs(20);
    assert!(
        started >= t0() + beep_end && started <= t0() + beep_end + ms(200),
        "the message started {:?} after the beep's end",
        started.checked_duration_since(t0() + beep_end)
    );
    let cmds = s
        .at(beep_end + secs(6))
        .leg(CUSTOMER, LegEvent::PlaybackFinished);
    assert_eq!(cmds[0], Command::HangUp(CUSTOMER));
    assert_eq!(notes(&cmds), vec!["machine_message_left"]);
    assert!(s.c.is_finished());
}

/// A short "hello" then a pause is a person: the greeting and hold music follow the verdict,
/// and the agent who answers is bridged. Nobody is bridged while the detector listens.
#[test]
fn a_short_hello_is_a_person_who_hears_the_greeting_and_is_bridged() {
    let mut s = Sim::screening(screened(true, None));
    s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    let cmds = s.customer_says(secs(1), &hello(), secs(4));
    assert_eq!(
        plays(&cmds, CUSTOMER),
        vec![(
            vec![PlayItem::Prompt("callback_greeting".into())],
            Some("hold_music".into())
        )]
    );
    assert!(!cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(notes(&cmds), vec!["screened"]);
    let cmds = s.at(secs(6)).leg(AGENT, LegEvent::Answered);
    assert!(cmds.contains(&Command::Bridge(CUSTOMER, AGENT)));
}

/// The agent up first hears the whisper and ringback while the customer is screened; the
/// bridge waits for the verdict, not the answer.
#[test]
fn an_agent_waiting_is_bridged_at_the_person_verdict() {
    let mut s = Sim::screening(screened(true, None));
    s.at(ms(500)).leg(AGENT, LegEvent::Answered);
    let cmds = s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    assert!(!cmds.contains(&Command::Bridge(CUSTOMER, AGENT)));
    let cmds = s.customer_says(secs(1), &hello(), secs(4));
    assert!(cmds.contains(&Command::Bridge(CUSTOMER, AGENT)));
    assert!(plays(&cmds, CUSTOMER).is_empty());
}

/// No audio at all (a phone with silence suppression, RTP lost): no verdict by the analysis
/// time, so a person; screening stops.
#[test]
fn no_verdict_in_time_is_a_person() {
    let mut s = Sim::screening(screened(true, None));
    s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    assert_eq!(s.c.poll_timeout(), Some(t0() + secs(1 + 5 + 1)));
    let cmds = s.run_until(secs(7));
    assert!(cmds.contains(&Command::Screen(CUSTOMER, None)));
    assert_eq!(plays(&cmds, CUSTOMER).len(), 1, "the greeting");
    s.c.handle_screened(s.now, Verdict::Machine(MachineCue::LongGreeting));
    assert!(s.drain().is_empty(), "a late verdict changes nothing");
}

/// A machine whose greeting never ends: the message is left at `wait_for_beep`; one whose
/// message never ends is hung up on by its guard.
#[test]
fn a_greeting_that_never_ends_gets_the_message_at_wait_for_beep() {
    let mut s = Sim::screening(screened(true, None));
    s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    s.c.handle_screened(t0() + secs(3), Verdict::Machine(MachineCue::MaxWords));
    s.drain();
    let cmds = s.run_until(secs(3 + 20) - ms(1));
    assert!(!message_played(&cmds));
    let cmds = s.run_until(secs(3 + 20));
    assert!(message_played(&cmds));
    let cmds = s.run_until(secs(3 + 20 + 20));
    assert_eq!(cmds[0], Command::HangUp(CUSTOMER));
    assert!(s.c.is_finished());
}

/// Human confirmation: a person hears "press 1"; 1 connects them (hold music, no second
/// greeting, then the bridge).
#[test]
fn a_person_who_presses_1_is_connected() {
    let mut s = Sim::screening(screened(true, Some(secs(5))));
    s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    let cmds = s.customer_says(secs(1), &hello(), secs(3));
    assert_eq!(
        plays(&cmds, CUSTOMER),
        vec![(vec![PlayItem::Prompt("callback_confirm".into())], None)]
    );
    s.at(secs(7)).leg(CUSTOMER, LegEvent::PlaybackFinished);
    s.at(secs(9));
    assert!(s.digit(CUSTOMER, '2').is_empty(), "only 1 confirms");
    let cmds = s.digit(CUSTOMER, '1');
    assert_eq!(
        plays(&cmds, CUSTOMER),
        vec![(vec![], Some("hold_music".into()))]
    );
    assert_eq!(notes(&cmds), vec!["screened"]);
    let cmds = s.at(secs(10)).leg(AGENT, LegEvent::Answered);
    assert!(cmds.contains(&Command::Bridge(CUSTOMER, AGENT)));
}

/// Human confirmation without a key: `confirm_within` after the prompt ends it is a machine,
/// and the message is left at once (a machine taken for a person is recording by then).
/// Confirmation works without detection.
#[test]
fn nobody_pressing_1_is_a_machine() {
    let mut s = Sim::screening(screened(false, Some(secs(5))));
    let cmds = s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    assert!(!cmds.iter().any(|c| matches!(c, Command::Screen(..))));
    assert_eq!(
        plays(&cmds, CUSTOMER),
        vec![(vec![PlayItem::Prompt("callback_confirm".into())], None)]
    );
    s.at(secs(6)).leg(CUSTOMER, LegEvent::PlaybackFinished);
    let cmds = s.run_until(secs(11) - ms(1));
    assert!(cmds.is_empty());
    let cmds = s.run_until(secs(11));
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(stored(&cmds).last(), Some(&machine_failure()));
    assert!(message_played(&cmds));
    let cmds = s.at(secs(16)).leg(CUSTOMER, LegEvent::PlaybackFinished);
    assert_eq!(cmds[0], Command::HangUp(CUSTOMER));
    assert!(s.c.is_finished());
}

/// While screened: the customer hanging up ends it as before screening; the agent failing
/// stops the screening and the customer hears the apology.
#[test]
fn hang_ups_and_agent_failures_while_screening() {
    let mut s = Sim::screening(screened(true, None));
    s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    let cmds = s.at(secs(2)).leg(CUSTOMER, LegEvent::Ended);
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::HungUp {
            by: HangupBy::Customer
        }]
    );
    assert!(s.c.is_finished());

    let mut s = Sim::screening(screened(true, None));
    s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    let cmds = s.at(secs(2)).leg(
        AGENT,
        LegEvent::Failed {
            status: Some(486),
            cause: None,
        },
    );
    assert!(cmds.contains(&Command::Screen(CUSTOMER, None)));
    assert_eq!(
        plays(&cmds, CUSTOMER),
        vec![(vec![PlayItem::Prompt("agent_unreachable".into())], None)]
    );
}

/// Cut at shutdown while the machine's message waits: the attempt is settled already, so only
/// the leg is hung up (no `Recovered`).
#[test]
fn a_cut_while_leaving_the_message_only_hangs_up() {
    let mut s = Sim::screening(screened(true, None));
    s.at(secs(1)).leg(CUSTOMER, LegEvent::Answered);
    s.c.handle_screened(t0() + secs(3), Verdict::Machine(MachineCue::LongGreeting));
    s.drain();
    let cmds = s.at(secs(4)).leg(CUSTOMER, LegEvent::Cut);
    assert_eq!(cmds, vec![Command::HangUp(CUSTOMER)]);
    assert!(s.c.is_finished());
}

/// Dialled, the customer answered, then the agent: the two talk from 5 s.
fn bridged() -> Sim {
    let mut s = Sim::dialling();
    s.at(ms(800)).leg(CUSTOMER, LegEvent::Answered);
    s.at(secs(5)).leg(AGENT, LegEvent::Answered);
    s
}

#[test]
fn hold_plays_music_to_the_customer_and_unbridges_and_resume_bridges_again() {
    let mut s = bridged();
    let cmds = s.at(secs(20)).agent(AgentCommand::Hold);
    assert!(
        cmds.contains(&Command::Unbridge(CUSTOMER, AGENT)),
        "{cmds:?}"
    );
    assert_eq!(
        plays(&cmds, CUSTOMER),
        vec![(Vec::new(), Some("hold_music".into()))],
        "the customer hears the queue's hold music"
    );
    assert_eq!(
        plays(&cmds, AGENT),
        vec![(Vec::new(), None)],
        "the agent hears silence, not the ringback from before the bridge"
    );
    assert_eq!(notes(&cmds), vec!["on_hold"]);
    assert!(
        !stored(&cmds)
            .iter()
            .any(|e| !matches!(e, Lifecycle::Note(_))),
        "the interaction stays connected: {cmds:?}"
    );
    let cmds = s.at(secs(40)).agent(AgentCommand::Resume);
    assert_eq!(
        cmds,
        vec![
            Command::Bridge(CUSTOMER, AGENT),
            Command::Store(StoreOp::Apply(Lifecycle::Note(Note::Resumed))),
        ]
    );
    // The talk time counts the hold.
    let cmds = s.at(secs(65)).leg(AGENT, LegEvent::Ended);
    assert!(cmds.contains(&Command::Handled(secs(60))), "{cmds:?}");
}

#[test]
fn hold_twice_and_resume_unheld_are_no_ops_and_hold_before_the_bridge_is_ignored() {
    let mut s = Sim::dialling();
    s.at(ms(800)).leg(CUSTOMER, LegEvent::Answered);
    assert!(s.agent(AgentCommand::Hold).is_empty(), "not bridged yet");
    s.at(secs(5)).leg(AGENT, LegEvent::Answered);
    assert!(s.agent(AgentCommand::Resume).is_empty(), "not on hold");
    assert!(!s.agent(AgentCommand::Hold).is_empty());
    assert!(s.agent(AgentCommand::Hold).is_empty(), "already on hold");
    assert!(!s.agent(AgentCommand::Resume).is_empty());
    assert!(s.agent(AgentCommand::Resume).is_empty(), "already resumed");
}

#[test]
fn the_customer_hanging_up_on_hold_ends_the_call_as_the_customers() {
    let mut s = bridged();
    s.at(secs(20)).agent(AgentCommand::Hold);
    let cmds = s.at(secs(30)).leg(CUSTOMER, LegEvent::Ended);
    assert!(cmds.contains(&Command::HangUp(AGENT)));
    assert_eq!(
        stored(&cmds).last(),
        Some(&Lifecycle::HungUp {
            by: HangupBy::Customer
        })
    );
    assert!(s.c.is_finished());
    assert!(s.agent(AgentCommand::Resume).is_empty(), "over");
}

#[test]
fn the_agent_hanging_up_on_hold_ends_the_call_as_the_agents() {
    let mut s = bridged();
    s.at(secs(20)).agent(AgentCommand::Hold);
    let cmds = s.at(secs(30)).leg(AGENT, LegEvent::Ended);
    assert!(cmds.contains(&Command::HangUp(CUSTOMER)));
    assert!(cmds.contains(&Command::Handled(secs(25))));
    assert_eq!(
        stored(&cmds).last(),
        Some(&Lifecycle::HungUp {
            by: HangupBy::Agent
        })
    );
    assert!(s.c.is_finished());
}
