//! Scenario tests of the workflow engine: scripted events → actions, in virtual time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::engine::{Action, CallContext, Engine, HangupReason, PlayItem, Refusal, Step, WfEvent};
use super::flow::{Flow, MenuAction, NoInput};
use super::hours::{BusinessHours, parse_range};
use super::test_support::support_flow;

/// A call in virtual time.
struct Call {
    eng: Engine,
    t0: Instant,
    now: Instant,
    /// Every action so far, with its offset from the INVITE.
    log: Vec<(Duration, Action)>,
}

fn origin() -> Instant {
    crate::clock::now() // only an origin; tests use offsets from it
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

impl Call {
    fn new(flow: Flow) -> Self {
        Self::with(flow, Some("+15551234567"), ts("2026-01-05T15:00:00Z"))
    }

    fn with(flow: Flow, caller: Option<&str>, wall: Timestamp) -> Self {
        let t0 = origin();
        let ctx = CallContext {
            caller_number: caller.map(str::to_owned),
            started_wall: wall,
        };
        Self {
            eng: Engine::new(Arc::new(flow), ctx, t0),
            t0,
            now: t0,
            log: Vec::new(),
        }
    }

    fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(a) = self.eng.poll_action() {
            self.log.push((self.now - self.t0, a.clone()));
            out.push(a);
        }
        out
    }

    fn ev(&mut self, e: WfEvent) -> Vec<Action> {
        self.eng.handle_event(self.now, e);
        self.drain()
    }

    fn key(&mut self, k: char) -> Vec<Action> {
        self.ev(WfEvent::Digit(k))
    }

    fn keys(&mut self, ks: &str) -> Vec<Action> {
        ks.chars().flat_map(|k| self.key(k)).collect()
    }

    fn done_playing(&mut self) -> Vec<Action> {
        self.ev(WfEvent::PlaybackFinished)
    }

    /// Let `d` pass, firing every timeout on the way (at its exact instant).
    fn wait(&mut self, d: Duration) -> Vec<Action> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.eng.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.eng.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = end;
        out
    }

    /// Answered, greeting + menu played.
    fn answered(flow: Flow) -> Self {
        let mut c = Self::new(flow);
        c.ev(WfEvent::Answered);
        c
    }

    fn requested_callbacks(&self) -> usize {
        self.log
            .iter()
            .filter(|(_, a)| matches!(a, Action::RequestCallback { .. }))
            .count()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The prompt ids and digit strings of every `Play` in `actions`, flattened.
fn played(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Play { items, .. } => Some(items.iter().map(|i| match i {
                PlayItem::Prompt(p) => p.clone(),
                PlayItem::Digits(d) => format!("<{d}>"),
                PlayItem::Silence(d) => format!("~{}ms", d.as_millis()),
            })),
            _ => None,
        })
        .flatten()
        .collect()
}

fn steps(actions: &[Action]) -> Vec<Step> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn has(actions: &[Action], want: &Action) -> bool {
    actions.contains(want)
}

#[test]
fn answer_enters_the_workflow_and_offers_greeting_and_menu_at_once() {
    let mut c = Call::new(support_flow());
    assert_eq!(
        c.eng.poll_timeout(),
        None,
        "nothing happens before the answer"
    );
    let a = c.ev(WfEvent::Answered);
    assert_eq!(a[0], Action::EnterWorkflow);
    assert!(steps(&a).contains(&Step::MenuOffered { nth: 1 }));
    assert!(
        has(&a, &Action::QueryQueueStatus),
        "support announces position"
    );
    assert_eq!(played(&a), ["greeting", "menu"]);
    assert!(matches!(
        a.last(),
        Some(Action::Play { barge_in: true, .. })
    ));
}

#[test]
fn the_menu_is_offered_every_minute_over_a_twenty_minute_wait() {
    let mut c = Call::answered(support_flow());
    let end = c.t0 + secs(20 * 60);
    // Every Play lasts 4 s; the caller never presses a key.
    while c.now < end {
        let playing = matches!(c.log.last(), Some((_, Action::Play { .. })));
        if playing && c.eng.poll_timeout().is_none_or(|t| t > c.now + secs(4)) {
            c.now += secs(4);
            c.done_playing();
        } else {
            let step = c
                .eng
                .poll_timeout()
                .map_or(end - c.now, |t| t.saturating_duration_since(c.now));
            let step = step.min(end - c.now);
            c.wait(step);
        }
    }
    let offers: Vec<Duration> = c
        .log
        .iter()
        .filter(|(_, a)| matches!(a, Action::Log(Step::MenuOffered { .. })))
        .map(|(t, _)| *t)
        .collect();
    let expected: Vec<Duration> = (0..=20).map(|m| secs(m * 60)).collect();
    assert_eq!(offers, expected, "at once, then every offer_every");
    assert!(
        !c.log
            .iter()
            .any(|(_, a)| matches!(a, Action::Log(Step::MaxWaitReached { .. })))
    );
    assert!(
        c.log
            .iter()
            .filter(|(_, a)| *a == Action::StartMusic)
            .count()
            >= 20
    );
}

#[test]
fn keys_barge_in_over_the_greeting() {
    let mut c = Call::answered(support_flow());
    c.now += secs(2);
    let a = c.key('2');
    assert_eq!(a[0], Action::StopPlayback);
    assert!(steps(&a).contains(&Step::KeyAccepted {
        key: '2',
        action: "wait"
    }));
    assert_eq!(a.last(), Some(&Action::StartMusic));
}

#[test]
fn invalid_keys_replay_the_menu_up_to_max_then_fallback() {
    let mut c = Call::answered(support_flow());
    c.done_playing();
    for n in 1..=3 {
        let a = c.key('7');
        assert!(
            steps(&a).contains(&Step::KeyInvalid { key: '7', tries: n }),
            "{a:?}"
        );
        assert_eq!(played(&a), ["invalid_choice", "menu"]);
    }
    let a = c.key('#');
    assert!(
        steps(&a).contains(&Step::FallbackTaken { action: "wait" }),
        "{a:?}"
    );
    assert_eq!(a.last(), Some(&Action::StartMusic));
    // A valid key still works from the music.
    let a = c.key('0');
    assert_eq!(played(&a), ["transferring"]);
}

#[test]
fn no_input_returns_to_music_or_repeats_then_falls_back() {
    let mut c = Call::answered(support_flow());
    c.done_playing();
    assert!(c.wait(secs(5)).is_empty(), "menu.timeout is 6s");
    let a = c.wait(secs(1));
    assert_eq!(steps(&a), [Step::NoInput]);
    assert_eq!(a.last(), Some(&Action::StartMusic));

    let mut flow = support_flow();
    flow.menu.no_input = NoInput::Repeat;
    flow.menu.fallback = MenuAction::Hangup {
        message: "goodbye".into(),
    };
    let mut c = Call::answered(flow);
    for _ in 0..2 {
        c.done_playing();
        let a = c.wait(secs(6));
        assert_eq!(played(&a), ["no_input", "menu"]);
    }
    c.done_playing();
    let a = c.wait(secs(6));
    assert!(steps(&a).contains(&Step::FallbackTaken { action: "hangup" }));
    assert_eq!(played(&a), ["goodbye"]);
    let a = c.done_playing();
    assert_eq!(
        a,
        [Action::Hangup {
            reason: HangupReason::Message
        }]
    );
    assert!(c.eng.is_finished());
}

#[test]
fn callback_on_the_caller_id_needs_no_further_key() {
    let mut c = Call::answered(support_flow());
    let a = c.key('1');
    assert_eq!(played(&a), ["callback_menu"]);
    let a = c.key('1');
    assert_eq!(played(&a), ["number_is", "<+15551234567>"]);
    assert!(matches!(
        a.last(),
        Some(Action::Play {
            barge_in: false,
            ..
        })
    ));
    assert_eq!(c.requested_callbacks(), 0, "not before the read-back ends");
    let a = c.done_playing();
    assert!(has(
        &a,
        &Action::RequestCallback {
            number: "+15551234567".into(),
            not_before: None
        }
    ));
    assert!(played(&a).is_empty(), "confirmation waits for the store");
    let a = c.ev(WfEvent::CallbackStored);
    assert_eq!(played(&a), ["callback_confirmed"]);
    let a = c.done_playing();
    assert_eq!(
        a,
        [Action::Hangup {
            reason: HangupReason::CallbackConfirmed
        }]
    );
    assert!(c.eng.is_finished());
    assert!(c.key('1').is_empty() && c.wait(secs(600)).is_empty());
}

#[test]
fn a_missing_caller_id_goes_to_number_entry() {
    let mut c = Call::with(support_flow(), None, ts("2026-01-05T15:00:00Z"));
    c.ev(WfEvent::Answered);
    c.key('1');
    let a = c.key('1');
    assert!(
        matches!(steps(&a)[..], [_, Step::CallerIdUnusable { .. }]),
        "{a:?}"
    );
    assert_eq!(played(&a), ["enter_number"]);
}

#[test]
fn callback_on_an_entered_number_with_star_restart_and_confirmation() {
    let mut c = Call::answered(support_flow());
    c.key('1');
    let a = c.key('2');
    assert_eq!(played(&a), ["enter_number"]);
    let a = c.key('9');
    assert_eq!(a, [Action::StopPlayback], "the first digit barges in");
    c.keys("99");
    let a = c.key('*');
    assert_eq!(played(&a), ["enter_number"], "* starts over");
    let a = c.keys("15551234567#");
    assert!(steps(&a).contains(&Step::NumberEntered {
        digits: "15551234567".into()
    }));
    assert_eq!(played(&a), ["number_is", "<15551234567>", "confirm_number"]);
    // "2" re-enters; then confirm with 1.
    let a = c.key('2');
    assert_eq!(played(&a), ["enter_number"]);
    c.keys("5551234567#");
    let a = c.key('1');
    assert!(has(
        &a,
        &Action::RequestCallback {
            number: "5551234567".into(),
            not_before: None
        }
    ));
    let a = c.ev(WfEvent::CallbackStored);
    assert_eq!(played(&a), ["callback_confirmed"]);
}

#[test]
fn bad_numbers_are_refused_and_reentered_then_capture_gives_up() {
    let mut c = Call::answered(support_flow());
    c.keys("12");
    let cases = [("123#", "too short"), ("1555123456789012#", "too long")];
    for (digits, why) in cases {
        let a = c.keys(digits);
        assert!(
            steps(&a)
                .iter()
                .any(|s| matches!(s, Step::NumberInvalid { .. })),
            "{why}: {a:?}"
        );
        assert_eq!(played(&a), ["invalid_number", "enter_number"], "{why}");
    }
    // Third failure (blocked premium-rate prefix): tries run out, back to the queue.
    let a = c.keys("19005551234#");
    assert!(steps(&a).iter().any(|s| matches!(
        s,
        Step::NumberInvalid {
            reason: super::numbers::NumberError::Blocked(_),
            ..
        }
    )));
    assert!(steps(&a).contains(&Step::CallbackAbandoned));
    assert_eq!(played(&a), ["invalid_number"]);
    let a = c.done_playing();
    assert!(a.contains(&Action::StartMusic), "{a:?}");
    assert_eq!(c.requested_callbacks(), 0);
}

#[test]
fn international_numbers_need_to_be_allowed() {
    let mut c = Call::answered(support_flow());
    c.keys("12");
    let a = c.keys("011442071234567#");
    assert!(steps(&a).iter().any(|s| matches!(
        s,
        Step::NumberInvalid {
            reason: super::numbers::NumberError::International,
            ..
        }
    )));
    let mut flow = support_flow();
    flow.callback.numbers.international = true;
    let mut c = Call::answered(flow);
    c.keys("12");
    let a = c.keys("011442071234567#");
    assert_eq!(
        played(&a),
        ["number_is", "<011442071234567>", "confirm_number"]
    );
}

#[test]
fn digit_timeouts_finish_or_reprompt_entry() {
    let mut c = Call::answered(support_flow());
    c.keys("12");
    c.done_playing();
    // First-digit timeout (10 s): no input, prompt again.
    assert!(c.wait(secs(9)).is_empty());
    let a = c.wait(secs(1));
    assert_eq!(steps(&a), [Step::NoInput]);
    assert_eq!(played(&a), ["no_input", "enter_number"]);
    c.done_playing();
    // Digits then silence: the inter-digit timeout (5 s) finishes the entry like #.
    c.keys("1555123");
    c.wait(secs(3));
    c.keys("4567");
    assert!(c.wait(secs(4)).is_empty());
    let a = c.wait(secs(1));
    assert!(
        steps(&a).contains(&Step::NumberEntered {
            digits: "15551234567".into()
        }),
        "{a:?}"
    );
    assert_eq!(played(&a), ["number_is", "<15551234567>", "confirm_number"]);
}

#[test]
fn duplicate_and_limit_refusals() {
    let mut c = Call::answered(support_flow());
    c.keys("11");
    c.done_playing();
    let a = c.ev(WfEvent::CallbackRefused(Refusal::Duplicate));
    assert_eq!(played(&a), ["callback_exists"]);
    assert_eq!(
        c.done_playing(),
        [Action::Hangup {
            reason: HangupReason::CallbackExists
        }]
    );

    let mut c = Call::answered(support_flow());
    c.keys("11");
    c.done_playing();
    let a = c.ev(WfEvent::CallbackRefused(Refusal::Limit));
    assert!(steps(&a).contains(&Step::CallbackRefused(Refusal::Limit)));
    assert_eq!(played(&a), ["invalid_number"]);
    assert!(
        c.done_playing().contains(&Action::StartMusic),
        "the caller keeps waiting"
    );
    assert!(!c.eng.is_finished());
}

/// The store could not take the booking (an outage): the caller hears an apology that says
/// so, never "that number is not valid" (the number was fine), and keeps waiting.
#[test]
fn a_booking_the_store_could_not_take_is_apologised_for_and_the_caller_waits() {
    let mut c = Call::answered(support_flow());
    c.keys("11");
    c.done_playing();
    let a = c.ev(WfEvent::CallbackRefused(Refusal::Unavailable));
    assert!(steps(&a).contains(&Step::CallbackRefused(Refusal::Unavailable)));
    assert_eq!(played(&a), ["callback_unavailable"]);
    assert!(
        c.done_playing().contains(&Action::StartMusic),
        "the caller keeps waiting"
    );
    assert!(!c.eng.is_finished());
}

#[test]
fn hanging_up_at_any_step_before_confirming_leaves_no_callback() {
    // Each script is a sequence of inputs; hang up after every prefix of it.
    #[derive(Clone, Copy)]
    enum In {
        K(char),
        Done,
    }
    use In::{Done, K};
    let scripts: [&[In]; 2] = [
        &[K('1'), Done, K('1')],
        &[
            K('1'),
            K('2'),
            Done,
            K('1'),
            K('5'),
            K('5'),
            K('5'),
            K('1'),
            K('2'),
            K('3'),
            K('4'),
            K('5'),
            K('6'),
            K('7'),
            K('#'),
            Done,
        ],
    ];
    for script in scripts {
        for cut in 0..=script.len() {
            let mut c = Call::answered(support_flow());
            for i in &script[..cut] {
                match i {
                    K(k) => c.key(*k),
                    Done => c.done_playing(),
                };
            }
            let a = c.ev(WfEvent::Hangup);
            assert_eq!(steps(&a), [Step::CallerHungUp]);
            assert!(c.eng.is_finished());
            assert_eq!(c.eng.poll_timeout(), None);
            // Nothing the shell might still deliver brings it back.
            c.done_playing();
            c.key('1');
            c.ev(WfEvent::CallbackStored);
            c.wait(secs(3600));
            assert_eq!(c.requested_callbacks(), 0, "cut after {cut} inputs");
        }
    }
}

#[test]
fn transfer_and_transfer_failure() {
    let mut c = Call::answered(support_flow());
    let a = c.key('0');
    assert_eq!(played(&a), ["transferring"]);
    let a = c.done_playing();
    assert!(has(
        &a,
        &Action::Transfer {
            target: "sip:operator@127.0.0.1:5080".into()
        }
    ));
    assert!(c.key('2').is_empty(), "keys do nothing while transferring");
    let a = c.ev(WfEvent::TransferFailed);
    assert!(
        steps(&a)
            .iter()
            .any(|s| matches!(s, Step::TransferFailed { .. }))
    );
    assert_eq!(played(&a), ["menu"], "the caller gets the menu again");
    let a = c.key('0');
    assert_eq!(played(&a), ["transferring"]);
    c.done_playing();
    c.ev(WfEvent::Hangup);
    assert!(c.eng.is_finished());
}

#[test]
fn voicemail_beeps_records_and_says_goodbye() {
    let mut flow = support_flow();
    flow.menu.options.push(super::flow::MenuOption {
        key: '3',
        action: MenuAction::Voicemail,
    });
    let mut c = Call::answered(flow.clone());
    let a = c.key('3');
    assert_eq!(played(&a), ["voicemail_intro", "beep"]);
    let a = c.done_playing();
    assert!(has(&a, &Action::StartRecording { max: secs(120) }));
    let a = c.key('#');
    assert_eq!(a, [Action::StopRecording]);
    let a = c.ev(WfEvent::RecordingFinished);
    assert_eq!(played(&a), ["goodbye"]);
    assert_eq!(
        c.done_playing(),
        [Action::Hangup {
            reason: HangupReason::VoicemailLeft
        }]
    );

    // Without #: the shell stops at max; the engine's safety stop follows shortly after.
    let mut c = Call::answered(flow);
    c.key('3');
    c.done_playing();
    assert!(c.wait(secs(121)).is_empty());
    assert_eq!(c.wait(secs(1)), [Action::StopRecording]);
}

#[test]
fn max_wait_takes_the_default_action() {
    let mut flow = support_flow();
    flow.max_wait = Some(secs(150));
    let mut c = Call::answered(flow);
    c.key('2'); // keep waiting
    let a = c.wait(secs(60));
    assert_eq!(played(&a), ["menu"]);
    c.done_playing();
    c.wait(secs(30));
    // The offer at 120 s is still playing at 150 s: max wait cuts it.
    let a = c.wait(secs(60));
    assert!(
        steps(&a).contains(&Step::MaxWaitReached { action: "callback" }),
        "{a:?}"
    );
    assert_eq!(played(&a), ["menu", "max_wait"]);
    assert!(has(&a, &Action::StopPlayback));
    assert_eq!(c.now - c.t0, secs(150));
    let a = c.done_playing();
    assert_eq!(played(&a), ["callback_menu"]);
    // max wait does not interrupt callback capture, and fires only once.
    assert!(c.wait(secs(3)).is_empty());
}

fn weekday_hours(flow: &mut Flow) {
    let r = parse_range("09:00-17:00").unwrap();
    flow.hours = BusinessHours::Weekly {
        tz: jiff::tz::TimeZone::get("America/New_York").unwrap(),
        days: [vec![r], vec![r], vec![r], vec![r], vec![r], vec![], vec![]],
    };
}

#[test]
fn closed_hours_offer_a_callback_for_opening_time_across_dst() {
    let mut flow = support_flow();
    weekday_hours(&mut flow);
    flow.closed_callback = true;
    // Saturday 2026-03-07 18:00 EST; clocks go forward on Sunday; Monday opens 09:00 EDT = 13:00Z.
    let mut c = Call::with(flow, Some("+15551234567"), ts("2026-03-07T23:00:00Z"));
    let a = c.ev(WfEvent::Answered);
    let opens = ts("2026-03-09T13:00:00Z");
    assert_eq!(a[0], Action::EnterWorkflow);
    assert!(steps(&a).contains(&Step::Closed { opens: Some(opens) }));
    assert_eq!(played(&a), ["closed", "closed_callback"]);
    assert!(!has(&a, &Action::QueryQueueStatus));
    c.key('1');
    c.key('1');
    let a = c.done_playing();
    assert!(has(
        &a,
        &Action::RequestCallback {
            number: "+15551234567".into(),
            not_before: Some(opens)
        }
    ));
}

#[test]
fn closed_without_callback_says_closed_and_hangs_up() {
    let mut flow = support_flow();
    weekday_hours(&mut flow);
    let mut c = Call::with(flow.clone(), None, ts("2026-03-06T13:30:00Z")); // Fri 08:30 EST
    let a = c.ev(WfEvent::Answered);
    assert_eq!(played(&a), ["closed"]);
    assert_eq!(
        c.done_playing(),
        [Action::Hangup {
            reason: HangupReason::Closed
        }]
    );
    // The same UTC time on Monday is 09:30 EDT: open.
    let mut c = Call::with(flow, None, ts("2026-03-09T13:30:00Z"));
    let a = c.ev(WfEvent::Answered);
    assert_eq!(played(&a), ["greeting", "menu"]);
}

#[test]
fn closed_callback_gives_up_on_no_input() {
    let mut flow = support_flow();
    weekday_hours(&mut flow);
    flow.closed_callback = true;
    let mut c = Call::with(flow, None, ts("2026-03-07T23:00:00Z"));
    c.ev(WfEvent::Answered);
    c.done_playing();
    let a = c.wait(secs(6));
    assert_eq!(played(&a), ["goodbye"]);
    assert_eq!(
        c.done_playing(),
        [Action::Hangup {
            reason: HangupReason::Closed
        }]
    );
}

#[test]
fn position_and_wait_are_announced_after_the_menu() {
    let mut c = Call::answered(support_flow());
    c.ev(WfEvent::QueueStatus {
        position: 4,
        estimated_wait: Some(secs(150)),
    });
    c.done_playing();
    let a = c.wait(secs(6));
    assert_eq!(
        played(&a),
        ["position_intro", "<4>", "wait_intro", "<3>", "minutes"]
    );
    assert!(steps(&a).contains(&Step::PositionAnnounced {
        position: 4,
        minutes: Some(3)
    }));
    assert_eq!(c.done_playing(), [Action::StartMusic]);
}

#[test]
fn start_after_holds_before_entering_and_ignores_early_keys() {
    let mut flow = support_flow();
    flow.start_after = secs(5);
    let mut c = Call::new(flow);
    assert_eq!(c.ev(WfEvent::Answered), [Action::StartMusic]);
    assert!(c.key('1').is_empty());
    assert!(c.wait(secs(4)).is_empty());
    let a = c.wait(secs(1));
    assert_eq!(a[0], Action::EnterWorkflow);
}

#[test]
fn spurious_timeouts_and_stray_events_are_no_ops() {
    let mut c = Call::new(support_flow());
    c.eng.handle_timeout(c.now + secs(30));
    assert!(c.drain().is_empty());
    assert!(c.done_playing().is_empty());
    assert!(c.ev(WfEvent::CallbackStored).is_empty());
    c.ev(WfEvent::Answered);
    c.eng.handle_timeout(c.now);
    c.eng.handle_timeout(c.now);
    assert!(c.drain().is_empty(), "the menu timer has not started");
    assert!(c.ev(WfEvent::RecordingFinished).is_empty());
    assert!(c.ev(WfEvent::TransferFailed).is_empty());
}

/// The shipped prompt library holds every prompt the engine may play.
#[test]
fn shipped_prompts_cover_every_fixed_and_digit_prompt() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let lib = crate::media::prompts::PromptLibrary::load(&dir).expect("shipped prompts load");
    for id in crate::workflow::flow::FIXED_PROMPTS
        .iter()
        .chain(crate::workflow::flow::DIGIT_PROMPTS.iter())
    {
        assert!(lib.contains(id), "prompts/manifest.toml lacks {id}");
    }
}

fn scheduled(flow: &mut Flow) {
    flow.callback.schedule = Some(super::slots::Schedule {
        slots: 3,
        every_hours: 1,
        lead: Duration::from_secs(3600),
    });
}

/// Issue 21 item 1: "1 as soon as possible, 2 to choose a time"; the slots are read in the
/// queue's zone ("press 1 for today at 3 PM …"), key 2 takes the second, it is read back, and
/// the callback is requested with that `not_before` on the caller's number.
#[test]
fn a_caller_chooses_a_callback_slot_by_dtmf() {
    let mut flow = support_flow();
    weekday_hours(&mut flow);
    scheduled(&mut flow);
    // Monday 2026-03-02 13:20 EST.
    let mut c = Call::with(flow, Some("+15551234567"), ts("2026-03-02T18:20:00Z"));
    c.ev(WfEvent::Answered);
    let a = c.key('1');
    assert_eq!(played(&a), ["callback_when"]);
    c.done_playing();
    let a = c.key('2');
    assert_eq!(
        played(&a),
        [
            "slot_press",
            "<1>",
            "slot_for",
            "slot_today",
            "slot_at",
            "<3>",
            "slot_pm",
            "~400ms",
            "slot_press",
            "<2>",
            "slot_for",
            "slot_today",
            "slot_at",
            "<4>",
            "slot_pm",
            "~400ms",
            "slot_press",
            "<3>",
            "slot_for",
            "slot_tomorrow",
            "slot_at",
            "<9>",
            "slot_am",
            "~400ms",
        ]
    );
    let a = c.key('2');
    let four_pm = ts("2026-03-02T21:00:00Z");
    assert!(steps(&a).contains(&Step::SlotChosen {
        at: four_pm,
        words: "today at 4 PM".into()
    }));
    assert_eq!(
        played(&a),
        ["slot_chosen", "slot_today", "slot_at", "<4>", "slot_pm"]
    );
    // Then the number, as for any callback.
    let a = c.done_playing();
    assert_eq!(played(&a), ["callback_menu"]);
    c.key('1');
    let a = c.done_playing();
    assert!(has(
        &a,
        &Action::RequestCallback {
            number: "+15551234567".into(),
            not_before: Some(four_pm)
        }
    ));
}

/// "1" is as soon as possible; an invalid slot key replays the slots; silence gives up after
/// `max_tries`, back to waiting.
#[test]
fn as_soon_as_possible_invalid_slot_keys_and_silence() {
    let mut flow = support_flow();
    scheduled(&mut flow);
    let mut c = Call::answered(flow.clone());
    c.key('1');
    let a = c.key('1');
    assert_eq!(played(&a), ["callback_menu"]);

    let mut c = Call::answered(flow);
    c.key('1');
    c.key('2');
    let a = c.key('7');
    assert_eq!(played(&a)[0], "invalid_choice");
    assert_eq!(played(&a)[1], "slot_press");
    c.done_playing();
    let a = c.wait(secs(60));
    assert!(steps(&a).contains(&Step::NoInput));
    c.done_playing();
    let a = c.wait(secs(60));
    assert!(steps(&a).contains(&Step::CallbackAbandoned), "{a:?}");
    assert_eq!(c.requested_callbacks(), 0);
}

/// Closed-hours callbacks are for opening time: no "when" question.
#[test]
fn a_closed_hours_callback_is_not_asked_when() {
    let mut flow = support_flow();
    weekday_hours(&mut flow);
    scheduled(&mut flow);
    flow.closed_callback = true;
    let mut c = Call::with(flow, Some("+15551234567"), ts("2026-03-07T23:00:00Z"));
    c.ev(WfEvent::Answered);
    let a = c.key('1');
    assert_eq!(played(&a), ["callback_menu"]);
}

/// Issue 21 item 6: with `offer_when_wait_over = "5m"`, the menu offers the callback key only
/// while the estimated wait is over five minutes (or not known yet); under it the menu is
/// `menu_no_callback` and `1` is an invalid key; `max_wait` still takes its callback.
#[test]
fn the_callback_is_offered_only_when_the_wait_is_worth_it() {
    let mut flow = support_flow();
    flow.callback.offer_when_wait_over = Some(secs(300));
    flow.max_wait = Some(secs(600));
    let mut c = Call::answered(flow);
    // No estimate yet: offered as before (and the status is asked for).
    assert!(
        c.log
            .iter()
            .any(|(_, a)| matches!(a, Action::QueryQueueStatus))
    );
    assert!(
        played(&c.log.iter().map(|(_, a)| a.clone()).collect::<Vec<_>>())
            .contains(&"menu".to_owned())
    );
    c.ev(WfEvent::QueueStatus {
        position: 1,
        estimated_wait: Some(secs(120)),
    });
    c.done_playing();
    c.wait(secs(7)); // no key: the position is announced
    c.done_playing(); // then music until the next offer
    let a = c.wait(secs(60));
    assert!(
        steps(&a).contains(&Step::CallbackNotOffered {
            wait: Some(secs(120))
        }),
        "{a:?}"
    );
    assert!(played(&a).contains(&"menu_no_callback".to_owned()), "{a:?}");
    let a = c.key('1');
    assert!(
        steps(&a)
            .iter()
            .any(|s| matches!(s, Step::KeyInvalid { key: '1', .. })),
        "{a:?}"
    );
    assert_eq!(played(&a), ["invalid_choice", "menu_no_callback"]);
    // The wait grows past the threshold: the next offer has the callback again.
    c.ev(WfEvent::QueueStatus {
        position: 4,
        estimated_wait: Some(secs(900)),
    });
    c.done_playing();
    c.wait(secs(7));
    c.done_playing();
    let a = c.wait(secs(60));
    assert!(played(&a).contains(&"menu".to_owned()), "{a:?}");
    let a = c.key('1');
    assert_eq!(played(&a), ["callback_menu"]);
}

/// Under the threshold all along, `max_wait` still takes its callback action.
#[test]
fn max_wait_takes_the_callback_whatever_the_estimate() {
    let mut flow = support_flow();
    flow.callback.offer_when_wait_over = Some(secs(300));
    flow.max_wait = Some(secs(90));
    let mut c = Call::answered(flow);
    c.ev(WfEvent::QueueStatus {
        position: 1,
        estimated_wait: Some(secs(60)),
    });
    c.done_playing();
    c.wait(secs(7));
    c.done_playing();
    let a = c.wait(secs(200));
    assert!(played(&a).contains(&"max_wait".to_owned()), "{a:?}");
    let a = c.done_playing();
    assert!(played(&a).contains(&"callback_menu".to_owned()), "{a:?}");
}

/// A `09:00-20:00` calling window; numbers the table does not place are in Paris.
fn windowed(flow: &mut Flow) {
    flow.callback.calling_window = Some(super::window::CallingWindow {
        daily: parse_range("09:00-20:00").unwrap(),
    });
    flow.callback.time_zone = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
}

/// The kinds of the steps logged in `actions`.
fn step_kinds(actions: &[Action]) -> Vec<&'static str> {
    steps(actions).iter().map(Step::kind).collect()
}

/// A New York caller's number (placed by the table: America/New_York).
const NEW_YORK: &str = "+12127363100";

/// Issue 21: a caller booking "as soon as possible" at 22:00 in their own zone (New York; the
/// queue's is Paris, where it is 04:00) is booked for the window's opening, 09:00 New York,
/// and told so after the confirmation ("tomorrow at 9 AM"), as the scheduled slots are read.
#[test]
fn an_asap_booking_outside_the_customers_window_is_for_its_opening_and_said() {
    let mut flow = support_flow();
    windowed(&mut flow);
    // Sunday 2026-03-01 22:00 EST.
    let mut c = Call::with(flow, Some(NEW_YORK), ts("2026-03-02T03:00:00Z"));
    c.ev(WfEvent::Answered);
    c.key('1');
    c.key('1');
    let a = c.done_playing();
    let nine_am = ts("2026-03-02T14:00:00Z");
    assert!(
        has(
            &a,
            &Action::RequestCallback {
                number: NEW_YORK.into(),
                not_before: Some(nine_am),
            }
        ),
        "{a:?}"
    );
    assert!(step_kinds(&a).contains(&"callback_calling_window"), "{a:?}");
    assert!(
        steps(&a)
            .iter()
            .any(|s| s.to_string().contains("tomorrow at 9 AM")),
        "{a:?}"
    );
    let a = c.ev(WfEvent::CallbackStored);
    assert_eq!(
        played(&a),
        [
            "callback_confirmed",
            "slot_chosen",
            "slot_tomorrow",
            "slot_at",
            "<9>",
            "slot_am"
        ]
    );
    let a = c.done_playing();
    assert_eq!(
        a,
        [Action::Hangup {
            reason: HangupReason::CallbackConfirmed
        }]
    );
}

/// Inside the window nothing changes: no `not_before`, the plain confirmation.
#[test]
fn an_asap_booking_inside_the_window_is_for_now() {
    let mut flow = support_flow();
    windowed(&mut flow);
    // Monday 2026-03-02 10:00 EST.
    let mut c = Call::with(flow, Some(NEW_YORK), ts("2026-03-02T15:00:00Z"));
    c.ev(WfEvent::Answered);
    c.key('1');
    c.key('1');
    let a = c.done_playing();
    assert!(has(
        &a,
        &Action::RequestCallback {
            number: NEW_YORK.into(),
            not_before: None,
        }
    ));
    assert!(!step_kinds(&a).contains(&"callback_calling_window"));
    let a = c.ev(WfEvent::CallbackStored);
    assert_eq!(played(&a), ["callback_confirmed"]);
}

/// The scheduled menu offers only slots inside the caller's window: at 19:30 in New York the
/// next hours (21:00, 22:00, 23:00 there) are outside it, so the slots are tomorrow's 9, 10
/// and 11 AM.
#[test]
fn scheduled_slots_lie_inside_the_customers_window() {
    let mut flow = support_flow();
    scheduled(&mut flow);
    windowed(&mut flow);
    flow.callback.time_zone = jiff::tz::TimeZone::get("America/New_York").unwrap();
    // Sunday 2026-03-01 19:30 EST.
    let mut c = Call::with(flow, Some(NEW_YORK), ts("2026-03-02T00:30:00Z"));
    c.ev(WfEvent::Answered);
    c.key('1');
    c.done_playing();
    let a = c.key('2');
    let mut heard = Vec::new();
    for (key, hour) in [("<1>", "<9>"), ("<2>", "hour_10"), ("<3>", "hour_11")] {
        heard.extend([
            "slot_press",
            key,
            "slot_for",
            "slot_tomorrow",
            "slot_at",
            hour,
            "slot_am",
            "~400ms",
        ]);
    }
    assert_eq!(played(&a), heard);
    let a = c.key('1');
    assert!(steps(&a).contains(&Step::SlotChosen {
        at: ts("2026-03-02T14:00:00Z"),
        words: "tomorrow at 9 AM".into()
    }));
}
