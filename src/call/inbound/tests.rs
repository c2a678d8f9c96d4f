//! Inbound call scenarios in virtual time: the shipped `support` queue, no runtime, no sockets.

use std::sync::Arc;

use super::*;
use crate::call::testkit::{ms, notes, secs, stored, t0};
use crate::call::{Command, LegEvent, LegId, OfferOutcome, RouterNote, StoreOp, StoreReply};
use crate::interaction::{Event as Lifecycle, HangupBy};
use crate::workflow::engine::{PlayItem, Refusal};
use crate::workflow::flow::{MenuAction, MenuOption};
use crate::workflow::test_support::support_flow;

const CALLER: LegId = LegId::Caller;

type Sim = crate::call::testkit::Sim<InboundCall>;

impl Sim {
    fn new() -> Self {
        Self::with_flow(support_flow())
    }

    fn with_flow(flow: Flow) -> Self {
        let wall: Timestamp = "2026-01-05T15:00:00Z".parse().unwrap();
        Self::wrap(InboundCall::new(
            Arc::new(flow),
            "+15551234567".into(),
            wall,
        ))
    }

    fn key(&mut self, k: char) -> Vec<Command> {
        self.c.handle_digit(self.now, k, DtmfMethod::Rfc4733);
        self.drain()
    }

    fn played(&mut self) -> Vec<Command> {
        self.leg(CALLER, LegEvent::PlaybackFinished)
    }

    /// Created, rung for the queue's second, answered and ACKed: the caller is in the menu.
    fn in_workflow() -> Self {
        let mut s = Self::new();
        s.store(StoreReply::Created(7));
        s.run_until(secs(1));
        s.at(ms(1_050)).leg(CALLER, LegEvent::Answered);
        s
    }

    fn settled(&self) -> Option<Lifecycle> {
        stored(&self.log).into_iter().rev().find(|e| {
            matches!(
                e,
                Lifecycle::CallEnded { .. }
                    | Lifecycle::HungUp { .. }
                    | Lifecycle::Transferred { .. }
            )
        })
    }
}

fn prompts(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Play {
                leg: LegId::Caller,
                items,
                ..
            } => Some(items),
            _ => None,
        })
        .flatten()
        .filter_map(|i| match i {
            PlayItem::Prompt(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn ops(cmds: &[Command]) -> Vec<StoreOp> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Store(op) => Some(op.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_interaction_exists_before_the_phone_rings_and_media_waits_for_the_ack() {
    let mut s = Sim::new();
    assert_eq!(s.log, vec![Command::Store(StoreOp::Create)]);
    assert_eq!(s.store(StoreReply::Created(7)), vec![Command::Ring]);
    assert_eq!(
        s.c.poll_timeout(),
        Some(t0() + secs(1)),
        "ring_before_answer"
    );
    let cmds = s.run_until(secs(1));
    assert_eq!(cmds[0], Command::Answer);
    assert_eq!(stored(&cmds)[0], Lifecycle::EnteredWorkflow, "bot at once");
    assert_eq!(prompts(&cmds), ["greeting", "menu"]);
    assert!(
        !cmds.contains(&Command::StartMedia),
        "no RTP to an SDP address before the ACK"
    );
    assert_eq!(
        s.at(ms(1_040)).leg(CALLER, LegEvent::Answered),
        vec![Command::StartMedia]
    );
    assert!(
        s.leg(CALLER, LegEvent::Answered).is_empty(),
        "a repeated ACK starts nothing"
    );
}

#[test]
fn a_store_that_cannot_create_refuses_the_call() {
    let mut s = Sim::new();
    assert_eq!(s.store(StoreReply::Refused), vec![Command::Reject(500)]);
    assert!(s.c.is_finished());
}

#[test]
fn cancel_while_ringing_abandons_without_answering() {
    let mut s = Sim::new();
    s.store(StoreReply::Created(7));
    let cmds = s.at(ms(400)).leg(CALLER, LegEvent::Ended);
    assert!(!s.log.contains(&Command::Answer));
    assert_eq!(
        stored(&cmds),
        vec![Lifecycle::CallEnded {
            by: HangupBy::Caller,
            had_callback: false,
            voicemail: false,
            during: Some("ringing".into())
        }]
    );
    assert!(s.c.is_finished());
    assert!(
        s.run_until(secs(5)).is_empty(),
        "no answer after the cancel"
    );
}

#[test]
fn a_caller_gone_before_the_interaction_exists_is_settled_once_it_does() {
    let mut s = Sim::new();
    assert!(s.leg(CALLER, LegEvent::Ended).is_empty());
    let cmds = s.store(StoreReply::Created(7));
    assert!(!cmds.contains(&Command::Ring));
    assert!(matches!(
        stored(&cmds)[..],
        [Lifecycle::CallEnded {
            by: HangupBy::Caller,
            ..
        }]
    ));
    assert!(s.c.is_finished());
}

#[test]
fn a_callback_on_the_caller_id_is_booked_confirmed_and_hung_up() {
    let mut s = Sim::in_workflow();
    s.at(secs(3)).key('1');
    let cmds = s.key('1');
    assert_eq!(prompts(&cmds), ["number_is"]);
    let cmds = s.played();
    assert!(ops(&cmds).contains(&StoreOp::RequestCallback {
        number: "+15551234567".into(),
        not_before: None,
        max_per_day: 3
    }));
    assert!(
        prompts(&cmds).is_empty(),
        "no confirmation before it is durable"
    );
    let cmds = s.store(StoreReply::CallbackStored);
    assert!(cmds.contains(&Command::Router(RouterNote::LeftQueue)));
    assert_eq!(prompts(&cmds), ["callback_confirmed"]);
    let cmds = s.at(secs(9)).played();
    assert!(cmds.contains(&Command::HangUp(CALLER)));
    assert!(s.c.poll_timeout().is_none(), "nothing runs after the BYE");
    s.at(secs(9)).leg(CALLER, LegEvent::Ended);
    assert!(matches!(
        s.settled(),
        Some(Lifecycle::CallEnded {
            by: HangupBy::Hammond,
            had_callback: true,
            ..
        })
    ));
    assert!(s.c.is_finished());
}

#[test]
fn a_refused_callback_keeps_the_caller_waiting() {
    let mut s = Sim::in_workflow();
    s.key('1');
    s.key('1');
    s.played();
    let cmds = s.store(StoreReply::CallbackRefused(Refusal::Unavailable));
    assert!(!cmds.contains(&Command::HangUp(CALLER)));
    assert!(!cmds.contains(&Command::Router(RouterNote::LeftQueue)));
}

#[test]
fn the_caller_hanging_up_at_each_step_settles_the_interaction() {
    // In the menu.
    let mut s = Sim::in_workflow();
    s.at(secs(2)).leg(CALLER, LegEvent::Ended);
    assert!(matches!(
        s.settled(),
        Some(Lifecycle::CallEnded { by: HangupBy::Caller, had_callback: false, during: Some(d), .. }) if d == "menu"
    ));
    // In the callback menu.
    let mut s = Sim::in_workflow();
    s.key('1');
    s.leg(CALLER, LegEvent::Ended);
    assert!(matches!(
        s.settled(),
        Some(Lifecycle::CallEnded { during: Some(d), had_callback: false, .. }) if d == "callback menu"
    ));
    // While the callback is being stored: the caller leaves, and the stored callback counts.
    let mut s = Sim::in_workflow();
    s.key('1');
    s.key('1');
    s.played();
    s.store(StoreReply::CallbackStored);
    s.leg(CALLER, LegEvent::Ended);
    assert!(matches!(
        s.settled(),
        Some(Lifecycle::CallEnded {
            by: HangupBy::Caller,
            had_callback: true,
            ..
        })
    ));
    // While holding.
    let mut s = Sim::in_workflow();
    s.key('2');
    s.at(secs(200)).run_until(secs(200));
    s.leg(CALLER, LegEvent::Ended);
    assert!(matches!(
        s.settled(),
        Some(Lifecycle::CallEnded {
            by: HangupBy::Caller,
            ..
        })
    ));
    assert!(s.c.is_finished());
}

#[test]
fn a_transfer_the_pbx_refuses_is_dialled_and_bridged_by_hammond() {
    let mut s = Sim::in_workflow();
    let cmds = s.key('0');
    assert!(prompts(&cmds).contains(&"transferring".to_owned()));
    let cmds = s.played();
    let target = "sip:operator@127.0.0.1:5080";
    assert!(cmds.contains(&Command::Refer(target.into())), "{cmds:?}");
    s.at(secs(4));
    s.c.handle_refer(s.now, ReferProgress::Response(405));
    let cmds = s.drain();
    assert_eq!(
        cmds,
        vec![Command::Dial(LegId::Transfer, Target::Uri(target.into()))]
    );
    let cmds = s.at(secs(6)).leg(LegId::Transfer, LegEvent::Answered);
    assert!(cmds.contains(&Command::Bridge(CALLER, LegId::Transfer)));
    assert_eq!(notes(&cmds), vec!["transfer_bridged"]);
    // The caller talks, then hangs up: the target's leg is hung up, the interaction transferred.
    let cmds = s.at(secs(60)).leg(CALLER, LegEvent::Ended);
    assert!(cmds.contains(&Command::HangUp(LegId::Transfer)));
    assert_eq!(
        s.settled(),
        Some(Lifecycle::Transferred { to: target.into() })
    );
}

#[test]
fn a_transfer_target_that_fails_puts_the_caller_back_in_the_workflow() {
    let mut s = Sim::in_workflow();
    s.key('0');
    s.played();
    s.c.handle_refer(s.now, ReferProgress::Response(403));
    s.drain();
    let cmds = s.leg(
        LegId::Transfer,
        LegEvent::Failed {
            status: Some(486),
            cause: None,
        },
    );
    assert!(!cmds.contains(&Command::HangUp(CALLER)));
    assert!(!cmds.iter().any(|c| matches!(c, Command::Bridge(..))));
    // Still in the workflow: the caller can book a callback.
    s.run_until(secs(30));
    assert_eq!(prompts(&s.key('1')), ["callback_menu"]);
    assert!(!s.log.contains(&Command::HangUp(CALLER)));
}

#[test]
fn a_transfer_the_pbx_completes_closes_the_interaction_transferred() {
    let mut s = Sim::in_workflow();
    s.key('0');
    s.played();
    s.c.handle_refer(s.now, ReferProgress::Response(202));
    s.c.handle_refer(s.now, ReferProgress::Notify(200));
    let cmds = s.drain();
    assert!(cmds.contains(&Command::HangUp(CALLER)));
    s.leg(CALLER, LegEvent::Ended);
    assert_eq!(
        s.settled(),
        Some(Lifecycle::Transferred {
            to: "sip:operator@127.0.0.1:5080".into()
        })
    );
}

#[test]
fn an_offer_answered_by_the_agent_bridges_the_caller() {
    let mut s = Sim::in_workflow();
    s.key('2');
    s.at(secs(10));
    s.c.handle_offer(s.now, "alice".into(), secs(20));
    assert_eq!(
        s.drain(),
        vec![Command::Dial(LegId::Agent, Target::Agent("alice".into()))]
    );
    let cmds = s.at(secs(13)).leg(LegId::Agent, LegEvent::Answered);
    assert!(cmds.contains(&Command::Bridge(CALLER, LegId::Agent)));
    assert_eq!(
        stored(&cmds),
        vec![
            Lifecycle::OfferedLive {
                agent: "alice".into()
            },
            Lifecycle::Bridged
        ]
    );
    assert!(cmds.contains(&Command::Router(RouterNote::OfferEnded(
        OfferOutcome::Bridged
    ))));
    // The workflow is quiet while bridged: no menu comes back at the next offer time.
    let cmds = s.run_until(secs(200));
    assert!(prompts(&cmds).is_empty(), "{cmds:?}");
    let cmds = s.at(secs(213)).leg(LegId::Agent, LegEvent::Ended);
    assert_eq!(cmds, vec![Command::HangUp(CALLER)]);
    let cmds = s.leg(CALLER, LegEvent::Ended);
    assert!(cmds.contains(&Command::Handled(secs(200))));
    assert_eq!(
        s.settled(),
        Some(Lifecycle::HungUp {
            by: HangupBy::Agent
        })
    );
}

#[test]
fn an_offer_not_answered_leaves_the_caller_waiting() {
    let mut s = Sim::in_workflow();
    s.key('2');
    s.c.handle_offer(s.now, "alice".into(), secs(20));
    s.drain();
    let cmds = s.run_until(secs(30));
    assert!(cmds.contains(&Command::HangUp(LegId::Agent)));
    assert!(cmds.contains(&Command::Router(RouterNote::OfferEnded(
        OfferOutcome::NotAnswered
    ))));
    assert!(!cmds.contains(&Command::HangUp(CALLER)));
    // And a second offer is taken.
    s.c.handle_offer(s.now, "bob".into(), secs(20));
    assert_eq!(
        s.drain(),
        vec![Command::Dial(LegId::Agent, Target::Agent("bob".into()))]
    );
}

#[test]
fn no_offer_while_the_caller_books_a_callback() {
    let mut s = Sim::in_workflow();
    s.key('1');
    s.c.handle_offer(s.now, "alice".into(), secs(20));
    assert_eq!(
        s.drain(),
        vec![Command::Router(RouterNote::OfferEnded(
            OfferOutcome::Unavailable
        ))]
    );
}

#[test]
fn a_bridged_call_whose_media_stops_is_ended() {
    let mut s = Sim::in_workflow();
    s.key('2');
    s.c.handle_offer(s.now, "alice".into(), secs(20));
    s.leg(LegId::Agent, LegEvent::Answered);
    let cmds = s.at(secs(100)).leg(LegId::Agent, LegEvent::MediaTimeout);
    assert!(cmds.contains(&Command::HangUp(LegId::Agent)));
    assert!(cmds.contains(&Command::HangUp(CALLER)));
    s.leg(CALLER, LegEvent::Ended);
    assert_eq!(
        s.settled(),
        Some(Lifecycle::HungUp {
            by: HangupBy::Hammond
        })
    );
}

#[test]
fn media_stopping_in_the_workflow_hangs_up() {
    let mut s = Sim::in_workflow();
    let cmds = s.at(secs(40)).leg(CALLER, LegEvent::MediaTimeout);
    assert_eq!(cmds, vec![Command::HangUp(CALLER)]);
    s.leg(CALLER, LegEvent::Ended);
    assert!(matches!(
        s.settled(),
        Some(Lifecycle::CallEnded {
            by: HangupBy::Caller,
            ..
        })
    ));
}

#[test]
fn closing_a_bridged_interaction_hangs_up_both_legs() {
    let mut s = Sim::in_workflow();
    s.key('2');
    s.c.handle_offer(s.now, "alice".into(), secs(20));
    s.leg(LegId::Agent, LegEvent::Answered);
    s.at(secs(50));
    s.c.handle_close(s.now);
    let cmds = s.drain();
    assert_eq!(
        cmds,
        vec![Command::HangUp(LegId::Agent), Command::HangUp(CALLER)]
    );
    let cmds = s.leg(CALLER, LegEvent::Ended);
    assert_eq!(notes(&cmds), vec!["talk_time", "hung_up_on_close"]);
    assert!(s.settled().is_none(), "the interaction is closed already");
}

#[test]
fn closing_is_ignored_unless_bridged_to_an_agent() {
    let mut s = Sim::in_workflow();
    s.c.handle_close(s.now);
    assert!(s.drain().is_empty());
}

fn voicemail_flow() -> Flow {
    let mut flow = support_flow();
    flow.menu.options.push(MenuOption {
        key: '3',
        action: MenuAction::Voicemail,
    });
    flow
}

#[test]
fn a_voicemail_is_written_before_the_interaction_says_voicemail() {
    let mut s = Sim::with_flow(voicemail_flow());
    s.store(StoreReply::Created(7));
    s.run_until(secs(1));
    s.key('3');
    let cmds = s.played();
    assert!(cmds.contains(&Command::Record(CALLER)));
    // The caller hangs up to finish: the recording is saved first.
    let cmds = s.at(secs(30)).leg(CALLER, LegEvent::Ended);
    assert_eq!(ops(&cmds), vec![StoreOp::SaveRecording]);
    assert!(
        s.settled().is_none(),
        "nothing settled before the WAV is written"
    );
    let cmds = s.store(StoreReply::RecordingSaved { audio: true });
    assert!(matches!(
        stored(&cmds)[..],
        [Lifecycle::CallEnded {
            voicemail: true,
            ..
        }]
    ));
    assert!(s.c.is_finished());

    // A recording that could not be kept does not claim a voicemail.
    let mut s = Sim::with_flow(voicemail_flow());
    s.store(StoreReply::Created(7));
    s.run_until(secs(1));
    s.key('3');
    s.played();
    s.leg(CALLER, LegEvent::Ended);
    s.store(StoreReply::RecordingSaved { audio: false });
    assert!(matches!(
        s.settled(),
        Some(Lifecycle::CallEnded {
            voicemail: false,
            ..
        })
    ));
}

#[test]
fn a_voicemail_finished_with_hash_then_says_goodbye() {
    let mut s = Sim::with_flow(voicemail_flow());
    s.store(StoreReply::Created(7));
    s.run_until(secs(1));
    s.key('3');
    s.played();
    let cmds = s.key('#');
    assert_eq!(ops(&cmds).last(), Some(&StoreOp::SaveRecording));
    let cmds = s.store(StoreReply::RecordingSaved { audio: true });
    assert_eq!(prompts(&cmds), ["goodbye"]);
    let cmds = s.played();
    assert!(cmds.contains(&Command::HangUp(CALLER)));
    s.leg(CALLER, LegEvent::Ended);
    assert!(matches!(
        s.settled(),
        Some(Lifecycle::CallEnded {
            by: HangupBy::Hammond,
            voicemail: true,
            ..
        })
    ));
}

#[test]
fn keys_are_on_the_feed_with_their_method() {
    let mut s = Sim::in_workflow();
    let cmds = s.key('2');
    assert_eq!(
        stored(&cmds)[0],
        Lifecycle::Dtmf {
            digit: '2',
            method: DtmfMethod::Rfc4733
        }
    );
}

#[test]
fn a_call_hammond_cuts_at_shutdown_is_settled_as_a_restart_would() {
    let mut s = Sim::in_workflow();
    s.key('2');
    s.c.handle_offer(s.now, "alice".into(), secs(20));
    s.drain();
    let cmds = s.at(secs(30)).leg(CALLER, LegEvent::Cut);
    assert!(cmds.contains(&Command::HangUp(LegId::Agent)), "{cmds:?}");
    assert!(
        !cmds.contains(&Command::HangUp(CALLER)),
        "already hung up by the shutdown"
    );
    assert!(matches!(
        stored(&cmds).last(),
        Some(Lifecycle::Recovered {
            max_attempts: 3,
            ..
        })
    ));
    assert!(s.c.is_finished());
}

/// In the workflow, offered to alice at 10 s, who answers at 13 s.
fn bridged_to_alice() -> Sim {
    let mut s = Sim::in_workflow();
    s.key('2');
    s.at(secs(10));
    s.c.handle_offer(s.now, "alice".into(), secs(20));
    s.drain();
    s.at(secs(13)).leg(LegId::Agent, LegEvent::Answered);
    s
}

fn plays_to(cmds: &[Command], leg: LegId) -> Vec<(Vec<PlayItem>, Option<String>)> {
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

#[test]
fn hold_plays_the_queues_music_to_the_caller_and_resume_bridges_again() {
    let mut s = bridged_to_alice();
    let music = support_flow().hold_music;
    let cmds = s.at(secs(20)).agent(AgentCommand::Hold);
    assert!(
        cmds.contains(&Command::Unbridge(CALLER, LegId::Agent)),
        "{cmds:?}"
    );
    assert_eq!(plays_to(&cmds, CALLER), vec![(Vec::new(), Some(music))]);
    assert_eq!(plays_to(&cmds, LegId::Agent), vec![(Vec::new(), None)]);
    assert_eq!(notes(&cmds), vec!["on_hold"]);
    // The workflow stays quiet on hold: no menu at the next offer time.
    let cmds = s.run_until(secs(200));
    assert!(prompts(&cmds).is_empty(), "{cmds:?}");
    assert!(
        s.agent(AgentCommand::Hold).is_empty(),
        "hold twice is a no-op"
    );
    let cmds = s.agent(AgentCommand::Resume);
    assert_eq!(
        cmds,
        vec![
            Command::Bridge(CALLER, LegId::Agent),
            Command::Store(StoreOp::Apply(Lifecycle::Note(Note::Resumed))),
        ]
    );
    assert!(
        s.agent(AgentCommand::Resume).is_empty(),
        "resume twice is a no-op"
    );
}

#[test]
fn hold_is_ignored_unless_bridged_to_an_agent() {
    let mut s = Sim::in_workflow();
    assert!(s.agent(AgentCommand::Hold).is_empty(), "in the workflow");
    s.key('2');
    s.c.handle_offer(s.now, "alice".into(), secs(20));
    s.drain();
    assert!(
        s.agent(AgentCommand::Hold).is_empty(),
        "the agent's phone rings"
    );
}

#[test]
fn the_caller_hanging_up_on_hold_ends_the_call_as_the_callers() {
    let mut s = bridged_to_alice();
    s.at(secs(20)).agent(AgentCommand::Hold);
    let cmds = s.at(secs(30)).leg(CALLER, LegEvent::Ended);
    assert!(cmds.contains(&Command::HangUp(LegId::Agent)));
    assert!(cmds.contains(&Command::Handled(secs(17))));
    assert_eq!(
        s.settled(),
        Some(Lifecycle::HungUp {
            by: HangupBy::Caller
        })
    );
}

#[test]
fn the_agent_hanging_up_on_hold_ends_the_call_as_the_agents() {
    let mut s = bridged_to_alice();
    s.at(secs(20)).agent(AgentCommand::Hold);
    let cmds = s.at(secs(30)).leg(LegId::Agent, LegEvent::Ended);
    assert_eq!(cmds, vec![Command::HangUp(CALLER)]);
    s.leg(CALLER, LegEvent::Ended);
    assert_eq!(
        s.settled(),
        Some(Lifecycle::HungUp {
            by: HangupBy::Agent
        })
    );
}

/// A caller bridged to an agent is no longer waiting: the router must stop offering it (it
/// came first in line, so each round it took a free agent's offer, which it refused, while
/// younger callers went on waiting).
#[test]
fn a_caller_bridged_to_an_agent_leaves_the_queue() {
    let mut s = Sim::in_workflow();
    s.key('2');
    s.c.handle_offer(s.now, "alice".into(), secs(20));
    s.drain();
    let cmds = s.at(secs(3)).leg(LegId::Agent, LegEvent::Answered);
    assert!(
        cmds.contains(&Command::Router(RouterNote::LeftQueue)),
        "{cmds:?}"
    );
}
