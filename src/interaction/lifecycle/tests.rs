use std::time::Duration;

use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    t("2026-03-01T10:00:00Z")
}

fn open() -> Interaction {
    let mut i = Interaction::inbound("support", "+15550001", t("2026-03-01T09:00:00Z"));
    i.id = 1;
    i
}

fn step(i: &Interaction, e: Event) -> Interaction {
    apply(i, e, now()).expect("allowed").interaction
}

fn bot() -> Interaction {
    step(&open(), Event::EnteredWorkflow)
}

fn bot_with_callback() -> Interaction {
    step(
        &bot(),
        Event::CallbackRequested {
            number: "15551234567".into(),
            not_before: None,
        },
    )
}

fn open_callback() -> Interaction {
    step(&bot_with_callback(), ended(HangupBy::Caller, true, false))
}

fn connected_callback() -> Interaction {
    step(
        &open_callback(),
        Event::Accepted {
            agent: "alice".into(),
        },
    )
}

fn connected_live() -> Interaction {
    step(
        &bot(),
        Event::OfferedLive {
            agent: "alice".into(),
        },
    )
}

fn closed() -> Interaction {
    step(
        &open_callback(),
        Event::Closed {
            reason: CloseReason::Expired,
            disposition: None,
        },
    )
}

fn ended(by: HangupBy, had_callback: bool, voicemail: bool) -> Event {
    Event::CallEnded {
        by,
        had_callback,
        voicemail,
        during: Some("menu".into()),
    }
}

fn failed(max: u32) -> Event {
    Event::DialFailed {
        code: Some(486),
        kind: DialFailure::Busy,
        cause: None,
        max_attempts: max,
        retry_after: Duration::from_secs(300),
    }
}

fn kinds(c: &Change) -> Vec<&str> {
    c.feed.iter().map(|e| e.kind.as_str()).collect()
}

fn not_allowed(i: &Interaction, e: Event) {
    let name = e.name();
    assert_eq!(
        apply(i, e, now()),
        Err(LifecycleError::NotAllowed {
            event: name,
            status: i.status
        }),
        "{name} from {}",
        i.status
    );
}

#[test]
fn entered_workflow_moves_open_to_bot() {
    let c = apply(&open(), Event::EnteredWorkflow, now()).unwrap();
    assert_eq!(c.interaction.status, Status::Bot);
    assert_eq!(c.interaction.updated_at, now());
    assert_eq!(kinds(&c), ["status_changed"]);
    assert_eq!(c.feed[0].data["from"], "open");
    assert_eq!(c.feed[0].data["to"], "bot");
    for i in [bot(), open_callback(), connected_live(), closed()] {
        not_allowed(&i, Event::EnteredWorkflow);
    }
}

#[test]
fn dtmf_is_feed_only_in_bot_and_connected() {
    for i in [bot(), connected_live()] {
        let c = apply(
            &i,
            Event::Dtmf {
                digit: '1',
                method: DtmfMethod::Rfc4733,
            },
            now(),
        )
        .unwrap();
        assert_eq!(c.interaction.status, i.status);
        assert_eq!(kinds(&c), ["dtmf"]);
        let v = serde_json::to_value(&c.feed[0]).unwrap();
        assert_eq!(v["digit"], "1");
        assert_eq!(v["method"], "rfc4733");
    }
    assert_eq!(
        apply(
            &bot(),
            Event::Dtmf {
                digit: 'x',
                method: DtmfMethod::Info
            },
            now()
        ),
        Err(LifecycleError::BadDigit('x'))
    );
    for i in [open(), closed()] {
        not_allowed(
            &i,
            Event::Dtmf {
                digit: '1',
                method: DtmfMethod::Inband,
            },
        );
    }
}

#[test]
fn callback_request_changes_sub_type_and_stays_bot() {
    let c = apply(
        &bot(),
        Event::CallbackRequested {
            number: "+15551234567".into(),
            not_before: None,
        },
        now(),
    )
    .unwrap();
    assert_eq!(c.interaction.status, Status::Bot);
    assert_eq!(c.interaction.sub_type, SubType::Callback);
    let cb = c.interaction.callback.as_ref().unwrap();
    assert_eq!(
        (cb.number.as_str(), cb.attempts, cb.requested_at),
        ("+15551234567", 0, Some(now()))
    );
    assert_eq!(kinds(&c), ["callback_requested", "sub_type_changed"]);
    assert_eq!(
        apply(
            &bot(),
            Event::CallbackRequested {
                number: "12a".into(),
                not_before: None
            },
            now()
        ),
        Err(LifecycleError::BadNumber("12a".into()))
    );
    for i in [open(), connected_live(), closed()] {
        not_allowed(
            &i,
            Event::CallbackRequested {
                number: "15551234567".into(),
                not_before: None,
            },
        );
    }
}

#[test]
fn call_end_with_callback_reopens_keeping_arrival() {
    let c = apply(
        &bot_with_callback(),
        ended(HangupBy::Caller, true, false),
        now(),
    )
    .unwrap();
    assert_eq!(c.interaction.status, Status::Open);
    assert_eq!(c.interaction.sub_type, SubType::Callback);
    assert_eq!(c.interaction.created_at, open().created_at);
    assert_eq!(kinds(&c), ["call_ended", "status_changed"]);
    assert_eq!(c.feed[0].data["during"], "menu");
    // Hammond hanging up after the confirmation is the normal path, too.
    let c = apply(
        &bot_with_callback(),
        ended(HangupBy::Hammond, true, false),
        now(),
    )
    .unwrap();
    assert_eq!(c.interaction.status, Status::Open);
}

#[test]
fn call_end_with_voicemail_reopens_as_voicemail() {
    let c = apply(&bot(), ended(HangupBy::Caller, false, true), now()).unwrap();
    assert_eq!(
        (c.interaction.status, c.interaction.sub_type),
        (Status::Open, SubType::Voicemail)
    );
    assert_eq!(
        kinds(&c),
        ["call_ended", "sub_type_changed", "status_changed"]
    );
}

/// A voicemail is called back like a callback: it keeps the caller's number (no booking: no
/// request time), so accepting it dials (`Dialling` was `NotACallback`), a failed dial counts
/// and retries, and the recording's place stays with it.
#[test]
fn a_voicemail_is_called_back_on_the_callers_number() {
    let recorded = Note::VoicemailRecorded {
        secs: 3,
        path: "data/voicemail/1.wav".into(),
    };
    let left = step(&bot(), Event::Note(recorded));
    assert_eq!(left.voicemail_path, Some("data/voicemail/1.wav".into()));
    let vm = step(&left, ended(HangupBy::Caller, false, true));
    assert!(vm.dials_back());
    assert_eq!(
        vm.callback,
        Some(Callback {
            number: "+15550001".into(),
            attempts: 0,
            not_before: None,
            requested_at: None,
        })
    );
    let taken = step(
        &vm,
        Event::Accepted {
            agent: "alice".into(),
        },
    );
    let dialling = step(&taken, Event::Dialling);
    assert_eq!(dialling.leg, Some(Leg::Dialling));
    let busy = Event::DialFailed {
        code: Some(486),
        kind: DialFailure::Busy,
        cause: None,
        max_attempts: 2,
        retry_after: Duration::from_secs(600),
    };
    let again = step(&dialling, busy);
    assert_eq!(
        (
            again.status,
            again.sub_type,
            again.assigned_agent.as_deref()
        ),
        (Status::Open, SubType::Voicemail, None)
    );
    assert_eq!(again.callback.as_ref().map(|c| c.attempts), Some(1));
    assert!(again.not_due_at(now()).is_some(), "waits out the retry");
    assert_eq!(again.voicemail_path, left.voicemail_path);
    // Answered and bridged like a callback's customer.
    let up = step(
        &step(&step(&taken, Event::Dialling), Event::Answered),
        Event::Bridged,
    );
    assert_eq!(up.leg, Some(Leg::Bridged));
}

/// A caller without a number to dial (anonymous) leaves a voicemail that cannot be called
/// back: an agent may still take it (and hear it), nothing is dialled.
#[test]
fn an_anonymous_voicemail_has_nothing_to_dial() {
    let mut anonymous = open();
    anonymous.customer_number = "anonymous".into();
    let vm = step(
        &step(&anonymous, Event::EnteredWorkflow),
        ended(HangupBy::Caller, false, true),
    );
    assert_eq!(
        (vm.sub_type, vm.callback.as_ref()),
        (SubType::Voicemail, None)
    );
    assert!(!vm.dials_back());
    let taken = step(
        &vm,
        Event::Accepted {
            agent: "alice".into(),
        },
    );
    assert!(matches!(
        apply(&taken, Event::Dialling, now()),
        Err(LifecycleError::NotACallback { .. })
    ));
}

#[test]
fn call_end_without_callback_closes() {
    let c = apply(&bot(), ended(HangupBy::Caller, false, false), now()).unwrap();
    assert_eq!(c.interaction.status, Status::Closed);
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Abandoned));
    assert_eq!(kinds(&c), ["call_ended", "closed"]);
    let c = apply(&bot(), ended(HangupBy::Hammond, false, false), now()).unwrap();
    assert_eq!(
        c.interaction.close_reason,
        Some(CloseReason::HungUpByWorkflow)
    );
    // A CANCEL while still ringing: open inbound → closed abandoned.
    let c = apply(&open(), ended(HangupBy::Caller, false, false), now()).unwrap();
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Abandoned));
}

#[test]
fn call_end_refusals() {
    assert_eq!(
        apply(&bot(), ended(HangupBy::Caller, true, false), now()),
        Err(LifecycleError::NoCallbackStored)
    );
    for i in [open_callback(), connected_live(), closed()] {
        not_allowed(&i, ended(HangupBy::Caller, false, false));
    }
}

#[test]
fn transfer_closes_from_bot_only() {
    let c = apply(
        &bot(),
        Event::Transferred {
            to: "sip:op@pbx".into(),
        },
        now(),
    )
    .unwrap();
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Transferred));
    assert_eq!(kinds(&c), ["transferred", "closed"]);
    for i in [open(), connected_live(), closed()] {
        not_allowed(&i, Event::Transferred { to: "x".into() });
    }
}

#[test]
fn accept_assigns_open_only() {
    let c = apply(
        &open_callback(),
        Event::Accepted {
            agent: "bob".into(),
        },
        now(),
    )
    .unwrap();
    assert_eq!(c.interaction.status, Status::Connected);
    assert_eq!(c.interaction.assigned_agent.as_deref(), Some("bob"));
    assert_eq!(kinds(&c), ["assigned", "status_changed"]);
    for i in [bot(), connected_live(), closed()] {
        not_allowed(
            &i,
            Event::Accepted {
                agent: "bob".into(),
            },
        );
    }
}

/// A callback booked for later, or waiting out its retry interval, is not dialled before its
/// not-before time, whoever accepts it.
#[test]
fn accept_waits_for_not_before() {
    let later = now() + SignedDuration::from_mins(10);
    let mut booked = open_callback();
    booked.callback.as_mut().unwrap().not_before = Some(later);
    assert_eq!(booked.not_due_at(now()), Some(later));
    let accept = || Event::Accepted {
        agent: "bob".into(),
    };
    assert_eq!(
        apply(&booked, accept(), now()),
        Err(LifecycleError::NotYetDue { not_before: later })
    );
    // Due at its not-before time, and after.
    assert_eq!(booked.not_due_at(later), None);
    let c = apply(&booked, accept(), later).unwrap();
    assert_eq!(c.interaction.status, Status::Connected);
    // A failed attempt sets it; the retry interval must pass first.
    let retry = step(&step(&connected_callback(), Event::Dialling), failed(3));
    let not_before = retry.callback.as_ref().unwrap().not_before.unwrap();
    assert!(matches!(
        apply(&retry, accept(), now()),
        Err(LifecycleError::NotYetDue { .. })
    ));
    apply(&retry, accept(), not_before).unwrap();
}

/// An open inbound interaction is a caller still ringing: an agent can neither take it (nothing
/// would be bridged) nor close it (its call would go on under a closed interaction).
#[test]
fn a_ringing_caller_is_neither_accepted_nor_closed() {
    let ringing = open();
    assert!(ringing.call_is_ringing());
    let accept = Event::Accepted {
        agent: "bob".into(),
    };
    let close = Event::Closed {
        reason: CloseReason::Completed,
        disposition: None,
    };
    assert_eq!(
        apply(&ringing, accept, now()),
        Err(LifecycleError::LiveCall { event: "accepted" })
    );
    assert_eq!(
        apply(&ringing, close, now()),
        Err(LifecycleError::LiveCall { event: "closed" })
    );
    // Its own call settles it.
    let c = apply(&ringing, ended(HangupBy::Caller, false, false), now()).unwrap();
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Abandoned));
    for i in [bot(), open_callback(), connected_live(), closed()] {
        assert!(!i.call_is_ringing(), "{:?}", i.status);
    }
}

#[test]
fn live_offer_connects_bot_only() {
    let c = apply(
        &bot(),
        Event::OfferedLive {
            agent: "bob".into(),
        },
        now(),
    )
    .unwrap();
    assert_eq!(
        (
            c.interaction.status,
            c.interaction.assigned_agent.as_deref()
        ),
        (Status::Connected, Some("bob"))
    );
    for i in [open(), connected_live(), closed()] {
        not_allowed(
            &i,
            Event::OfferedLive {
                agent: "bob".into(),
            },
        );
    }
}

#[test]
fn callback_dial_happy_path() {
    let i = connected_callback();
    let c = apply(&i, Event::Dialling, now()).unwrap();
    assert_eq!(c.interaction.leg, Some(Leg::Dialling));
    assert_eq!(kinds(&c), ["callback_dialling"]);
    let i = c.interaction;
    let c = apply(&i, Event::Ringing, now()).unwrap();
    assert_eq!(kinds(&c), ["callback_ringing"]);
    let i = c.interaction;
    let again = apply(&i, Event::Ringing, now()).unwrap();
    assert!(again.feed.is_empty(), "a second 180 adds nothing");
    let i = step(&i, Event::Answered);
    assert_eq!(i.leg, Some(Leg::Answered));
    let c = apply(&i, Event::Bridged, now()).unwrap();
    assert_eq!(kinds(&c), ["bridged"]);
    let c = apply(
        &c.interaction,
        Event::HungUp {
            by: HangupBy::Customer,
        },
        now(),
    )
    .unwrap();
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Completed));
    assert_eq!(kinds(&c), ["hung_up", "closed"]);
}

#[test]
fn dial_events_out_of_order_are_refused() {
    let i = connected_callback();
    let lo = |i: &Interaction, e: Event| {
        let name = e.name();
        assert_eq!(
            apply(i, e, now()),
            Err(LifecycleError::LegOutOfOrder {
                event: name,
                leg: i.leg
            })
        );
    };
    lo(&i, Event::Ringing);
    lo(&i, Event::Answered);
    lo(&i, Event::Bridged);
    let dialling = step(&i, Event::Dialling);
    lo(&dialling, Event::Dialling);
    let answered = step(&dialling, Event::Answered);
    lo(&answered, failed(3));
    lo(&answered, Event::Ringing);
    let bridged = step(&answered, Event::Bridged);
    lo(&bridged, Event::Bridged);
    lo(&bridged, Event::Answered);
}

#[test]
fn dial_events_need_a_connected_callback() {
    for e in [Event::Dialling, Event::Ringing, Event::Answered, failed(3)] {
        for i in [open(), bot(), open_callback(), closed()] {
            not_allowed(&i, e.clone());
        }
        let name = e.name();
        assert_eq!(
            apply(&connected_live(), e, now()),
            Err(LifecycleError::NotACallback {
                event: name,
                sub_type: SubType::Inbound
            })
        );
    }
}

#[test]
fn failed_attempt_reopens_with_retry_then_gives_up() {
    let i = step(&connected_callback(), Event::Dialling);
    let c = apply(&i, failed(2), now()).unwrap();
    let n = &c.interaction;
    assert_eq!(
        (n.status, n.leg, n.assigned_agent.as_deref()),
        (Status::Open, None, None)
    );
    let cb = n.callback.as_ref().unwrap();
    assert_eq!(cb.attempts, 1);
    assert_eq!(cb.not_before, Some(t("2026-03-01T10:05:00Z")));
    assert_eq!(kinds(&c), ["callback_failed_attempt", "status_changed"]);
    assert_eq!(c.feed[0].data["code"], 486);
    assert_eq!(c.feed[0].data["outcome"], "busy");
    // Accepted again once its retry time has come.
    let accepted = apply(
        n,
        Event::Accepted {
            agent: "alice".into(),
        },
        t("2026-03-01T10:05:00Z"),
    )
    .unwrap()
    .interaction;
    let again = step(&accepted, Event::Dialling);
    let c = apply(&again, failed(2), now()).unwrap();
    assert_eq!(c.interaction.status, Status::Closed);
    assert_eq!(
        c.interaction.close_reason,
        Some(CloseReason::CallbackFailed)
    );
    assert_eq!(c.interaction.callback.as_ref().unwrap().attempts, 2);
    assert_eq!(kinds(&c), ["callback_failed_attempt", "closed"]);
}

/// Issue 18: a dial that failed in the transport says why on the feed, counted as any failure.
#[test]
fn a_transport_failure_says_why_on_the_feed() {
    let i = step(&connected_callback(), Event::Dialling);
    let e = Event::DialFailed {
        code: Some(503),
        kind: DialFailure::Failed,
        cause: Some(FailCause::TlsCertificateNotTrusted),
        max_attempts: 3,
        retry_after: Duration::from_secs(300),
    };
    let c = apply(&i, e, now()).unwrap();
    assert_eq!(c.interaction.status, Status::Open);
    assert_eq!(c.interaction.callback.as_ref().unwrap().attempts, 1);
    let entry = &c.feed[0];
    assert_eq!(entry.kind, "callback_failed_attempt");
    assert_eq!(
        entry.text,
        "TLS: certificate not trusted; attempt 1 of 3, next try after 2026-03-01T10:05:00Z"
    );
    assert_eq!(entry.data["cause"], "tls_certificate_not_trusted");
    assert_eq!(entry.data["outcome"], "failed");
}

/// A failed attempt with a known cause says it on the feed (and still counts).
#[test]
fn a_failed_attempt_with_a_cause_says_it() {
    let i = step(&connected_callback(), Event::Dialling);
    let e = Event::DialFailed {
        code: None,
        kind: DialFailure::Failed,
        cause: Some(FailCause::SrtpNoCommonSuite),
        max_attempts: 3,
        retry_after: Duration::from_secs(300),
    };
    let c = apply(&i, e, now()).unwrap();
    assert_eq!(c.interaction.status, Status::Open);
    assert_eq!(c.interaction.callback.as_ref().unwrap().attempts, 1);
    assert!(
        c.feed[0]
            .text
            .starts_with("SRTP: no common crypto suite; attempt 1 of 3")
    );
    assert_eq!(c.feed[0].data["cause"], "srtp_no_common_suite");
    assert_eq!(c.feed[0].data["outcome"], "failed");
}

#[test]
fn huge_retry_interval_is_an_error_not_a_panic() {
    let i = step(&connected_callback(), Event::Dialling);
    let e = Event::DialFailed {
        code: None,
        kind: DialFailure::Failed,
        cause: None,
        max_attempts: 9,
        retry_after: Duration::MAX,
    };
    assert_eq!(apply(&i, e, now()), Err(LifecycleError::BadRetry));
}

#[test]
fn bridged_for_live_calls_and_refusals() {
    let c = apply(&connected_live(), Event::Bridged, now()).unwrap();
    assert_eq!(c.interaction.leg, Some(Leg::Bridged));
    for i in [open(), bot(), closed()] {
        not_allowed(&i, Event::Bridged);
    }
}

#[test]
fn hang_up_before_bridge_is_abandoned() {
    let c = apply(
        &connected_live(),
        Event::HungUp {
            by: HangupBy::Caller,
        },
        now(),
    )
    .unwrap();
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Abandoned));
    for i in [open(), bot(), closed()] {
        not_allowed(
            &i,
            Event::HungUp {
                by: HangupBy::Agent,
            },
        );
    }
}

#[test]
fn explicit_close_from_any_live_status() {
    for i in [bot(), connected_live(), open_callback()] {
        let c = apply(
            &i,
            Event::Closed {
                reason: CloseReason::Completed,
                disposition: Some("sold".into()),
            },
            now(),
        )
        .unwrap();
        assert_eq!(c.interaction.status, Status::Closed);
        assert_eq!(c.interaction.disposition.as_deref(), Some("sold"));
        assert_eq!(c.feed.last().unwrap().data["disposition"], "sold");
    }
    not_allowed(
        &closed(),
        Event::Closed {
            reason: CloseReason::Completed,
            disposition: None,
        },
    );
}

#[test]
fn notes_are_allowed_everywhere() {
    for i in [open(), bot(), connected_live(), closed()] {
        let c = apply(
            &i,
            Event::Note(Note::WorkflowStep {
                kind: "position_announced",
                text: "position 3".into(),
            }),
            now(),
        )
        .unwrap();
        assert_eq!(c.interaction.status, i.status);
        assert_eq!(kinds(&c), ["position_announced"]);
    }
}

/// Recovery under a queue allowing `max_attempts`, retrying after 10 minutes.
fn recovered(max_attempts: u32) -> Event {
    Event::Recovered {
        max_attempts,
        retry_after: Duration::from_secs(600),
        lost_instance: None,
    }
}

#[test]
fn recovery_rules() {
    let c = apply(&bot_with_callback(), recovered(3), now()).unwrap();
    assert_eq!(
        (c.interaction.status, c.interaction.sub_type),
        (Status::Open, SubType::Callback)
    );
    assert_eq!(kinds(&c), ["recovered", "status_changed"]);

    let c = apply(&bot(), recovered(3), now()).unwrap();
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Abandoned));

    let ringing = step(
        &step(&connected_callback(), Event::Dialling),
        Event::Ringing,
    );
    let c = apply(&ringing, recovered(3), now()).unwrap();
    assert_eq!(c.interaction.status, Status::Open);
    assert_eq!(c.interaction.leg, None);
    assert_eq!(c.interaction.assigned_agent, None);
    let cb = c.interaction.callback.as_ref().unwrap();
    assert_eq!(cb.attempts, 1);
    assert!(cb.not_before.is_some_and(|t| t > now()), "{cb:?}");

    // Accepted, not dialled yet: the customer was not called, so nothing is counted.
    let c = apply(&connected_callback(), recovered(1), now()).unwrap();
    assert_eq!(c.interaction.status, Status::Open);
    assert_eq!(c.interaction.assigned_agent, None);
    assert_eq!(c.interaction.callback.as_ref().unwrap().attempts, 0);

    let bridged = step(&connected_live(), Event::Bridged);
    let c = apply(&bridged, recovered(3), now()).unwrap();
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Interrupted));

    // A caller ringing when Hammond stopped is gone.
    let c = apply(&open(), recovered(3), now()).unwrap();
    assert_eq!(c.interaction.close_reason, Some(CloseReason::Abandoned));

    for i in [open_callback(), closed()] {
        not_allowed(&i, recovered(3));
    }
}

/// A dial cut by a restart was the callback's last allowed attempt: it closes
/// `callback_failed`, as the dialer would have closed it.
#[test]
fn recovery_closes_a_callback_whose_attempts_are_spent() {
    let dialling = step(&connected_callback(), Event::Dialling);
    let c = apply(&dialling, recovered(1), now()).unwrap();
    assert_eq!(c.interaction.status, Status::Closed);
    assert_eq!(
        c.interaction.close_reason,
        Some(CloseReason::CallbackFailed)
    );
    assert_eq!(c.interaction.callback.as_ref().unwrap().attempts, 1);
}

#[test]
fn agent_unreachable_returns_the_callback_uncounted_and_unassigned() {
    let i = connected_callback();
    let c = apply(&i, Event::AgentUnreachable { code: Some(486) }, now()).unwrap();
    assert_eq!(c.interaction.status, Status::Open);
    assert_eq!(c.interaction.assigned_agent, None);
    assert_eq!(c.interaction.callback.as_ref().unwrap().attempts, 0);
    assert_eq!(
        c.interaction.created_at, i.created_at,
        "keeps its place in line"
    );
    assert!(kinds(&c).contains(&"agent_unreachable"));
    // The customer answered but no agent came: still back in the queue, uncounted (the
    // customer heard an apology; they did nothing wrong).
    let answered = step(&step(&i, Event::Dialling), Event::Answered);
    let c = apply(&answered, Event::AgentUnreachable { code: None }, now()).unwrap();
    assert_eq!(c.interaction.status, Status::Open);
    assert_eq!(c.interaction.callback.as_ref().unwrap().attempts, 0);
    assert_eq!(c.interaction.assigned_agent, None);
    // Once they talked, it is too late to hand it back.
    let bridged = step(&answered, Event::Bridged);
    not_allowed(&bridged, Event::AgentUnreachable { code: None });
    not_allowed(&open_callback(), Event::AgentUnreachable { code: None });
    not_allowed(&bot(), Event::AgentUnreachable { code: None });
}

/// Issue 21: a trunk outage is retried after its delay without counting an attempt, and never
/// closes the callback; the feed says it was not counted and when the next try is.
#[test]
fn a_trunk_outage_is_not_counted_and_never_closes() {
    let mut i = step(&connected_callback(), Event::Dialling);
    let mut at = now();
    for _ in 0..5 {
        let e = Event::DialFailed {
            code: Some(503),
            kind: DialFailure::TrunkOutage,
            cause: None,
            max_attempts: 1,
            retry_after: Duration::from_secs(60),
        };
        let c = apply(&i, e, at).unwrap();
        let next = at + jiff::SignedDuration::from_secs(60);
        assert_eq!(c.interaction.status, Status::Open);
        let cb = c.interaction.callback.clone().unwrap();
        assert_eq!(cb.attempts, 0);
        assert_eq!(cb.not_before, Some(next));
        assert_eq!(c.feed[0].data["outcome"], "trunk_outage");
        assert_eq!(c.feed[0].data["counted"], false);
        assert_eq!(
            c.feed[0].text,
            format!("trunk outage; not counted, next try after {next}")
        );
        at = next;
        let agent = Event::Accepted {
            agent: "bob".into(),
        };
        i = apply(&c.interaction, agent, at).unwrap().interaction;
        i = apply(&i, Event::Dialling, at).unwrap().interaction;
    }
}

/// Issue 21: each outcome's cap is checked against all attempts so far: after a busy line
/// (cap 5), a machine (cap 2) closes the callback at the second attempt; the feed says the
/// outcome, the count, and that no more tries follow.
#[test]
fn each_outcome_applies_its_own_cap_and_delay() {
    let i = step(&connected_callback(), Event::Dialling);
    let busy = Event::DialFailed {
        code: Some(486),
        kind: DialFailure::Busy,
        cause: None,
        max_attempts: 5,
        retry_after: Duration::from_secs(120),
    };
    let c = apply(&i, busy, now()).unwrap();
    assert_eq!(
        c.interaction.callback.as_ref().unwrap().not_before,
        Some(t("2026-03-01T10:02:00Z"))
    );
    assert_eq!(
        c.feed[0].text,
        "customer busy; attempt 1 of 5, next try after 2026-03-01T10:02:00Z"
    );
    let later = t("2026-03-01T10:03:00Z");
    let i = apply(
        &c.interaction,
        Event::Accepted {
            agent: "bob".into(),
        },
        later,
    )
    .unwrap();
    let i = apply(&i.interaction, Event::Dialling, later)
        .unwrap()
        .interaction;
    let machine = Event::DialFailed {
        code: None,
        kind: DialFailure::Machine,
        cause: None,
        max_attempts: 2,
        retry_after: Duration::from_secs(3600),
    };
    let c = apply(&i, machine, later).unwrap();
    assert_eq!(c.interaction.status, Status::Closed);
    assert_eq!(
        c.interaction.close_reason,
        Some(CloseReason::CallbackFailed)
    );
    assert_eq!(c.feed[0].data["outcome"], "machine");
    assert_eq!(
        c.feed[0].text,
        "answering machine; attempt 2 of 2, no more tries"
    );
}

/// Issue 21 item 5: a machine answers, so its attempt fails after `Answered` (detection
/// listens to the answered leg); any other failure after the answer is out of order.
#[test]
fn a_machine_fails_the_attempt_after_the_answer() {
    let answered = step(
        &step(
            &step(&connected_callback(), Event::Dialling),
            Event::Ringing,
        ),
        Event::Answered,
    );
    let failed = |kind| Event::DialFailed {
        code: None,
        kind,
        cause: None,
        max_attempts: 3,
        retry_after: Duration::from_secs(3600),
    };
    let c = apply(&answered, failed(DialFailure::Machine), now()).unwrap();
    assert_eq!(c.interaction.status, Status::Open);
    assert_eq!(c.interaction.callback.as_ref().unwrap().attempts, 1);
    assert_eq!(c.feed[0].data["outcome"], "machine");
    assert!(
        c.feed[0]
            .text
            .starts_with("answering machine; attempt 1 of 3, next try after"),
        "{}",
        c.feed[0].text
    );
    assert!(matches!(
        apply(&answered, failed(DialFailure::Busy), now()),
        Err(LifecycleError::LegOutOfOrder { .. })
    ));
}

/// Issue 21 item 7: an open callback is rescheduled (a later time, or now: due), keeping its
/// attempts; other statuses and sub-types refuse it.
#[test]
fn rescheduling_moves_an_open_callbacks_not_before() {
    let later = t("2026-03-01T15:00:00Z");
    let c = apply(
        &open_callback(),
        Event::Rescheduled {
            not_before: later,
            by: "alice".into(),
        },
        now(),
    )
    .unwrap();
    assert_eq!(
        c.interaction.callback.as_ref().unwrap().not_before,
        Some(later)
    );
    assert_eq!(c.feed[0].kind, "rescheduled");
    assert!(c.feed[0].text.contains("rescheduled by alice"));
    let due = apply(
        &c.interaction,
        Event::Rescheduled {
            not_before: t("2026-03-01T09:00:00Z"),
            by: "alice".into(),
        },
        now(),
    )
    .unwrap();
    assert_eq!(due.interaction.callback.as_ref().unwrap().not_before, None);
    assert!(due.feed[0].text.ends_with("due now"));
    let again = Event::Rescheduled {
        not_before: later,
        by: "alice".into(),
    };
    not_allowed(&connected_callback(), again.clone());
    not_allowed(&closed(), again.clone());
    assert!(matches!(
        apply(&open(), again, now()),
        Err(LifecycleError::NotACallback { .. })
    ));
}
