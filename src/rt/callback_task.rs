//! The driver of a callback dial: it moves leg, media, store and close events into the pure
//! [`CallbackDial`] and carries out its commands. Every decision (what the customer hears,
//! when to give up, how an outcome is counted) is in `call::callback`.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info, info_span, warn};

use super::call_legs::{Happened, Legs, PhoneContext};
use super::connected::HangupRequest;
use super::live::CallOver;
use super::services::Services;
use super::store_worker::{StoreJob, StoreReply as WorkerReply, StoreWorker};
use crate::call::callback::{Callback, CallbackDial, Settings};
use crate::call::{Command, LegEvent, LegId, OfferOutcome, RouterNote, StoreOp, StoreReply};
use crate::clock;
use crate::interaction::Interaction;
use crate::media::leg::MediaEvent;
use crate::queue::agent::{Accepted, Agent, Presence};
use crate::sip::ua::SipEvent;

/// Accepts waiting for the dialer. The API's accept is durable before it is queued here, so a
/// full queue makes the API wait (backpressure onto HTTP) rather than drop a dial.
const DIALER_QUEUE: usize = 1024;

/// Start the dialer: every successful accept sent to the returned channel becomes one callback
/// dial.
pub fn spawn_dialer(svc: Arc<Services>) -> mpsc::Sender<Accepted> {
    let (tx, mut rx) = mpsc::channel::<Accepted>(DIALER_QUEUE);
    tokio::spawn(async move {
        while let Some(acc) = rx.recv().await {
            let span =
                info_span!("callback", interaction = acc.interaction.id, agent = %acc.agent.id);
            tokio::spawn(run(svc.clone(), acc.interaction, acc.agent, None).instrument(span));
        }
    });
    tx
}

/// Push: offer a due callback to an available agent. The agent's leg rings first; only when it
/// answers is the interaction accepted (atomically) and the customer dialled. `done` hears how
/// the offer went.
pub fn offer(
    svc: Arc<Services>,
    interaction: Interaction,
    agent: Agent,
    done: oneshot::Sender<OfferOutcome>,
    over: CallOver,
) {
    let span =
        info_span!("callback", interaction = interaction.id, agent = %agent.id, offer = true);
    tokio::spawn(run(svc, interaction, agent, Some((done, over))).instrument(span));
}

async fn run(
    svc: Arc<Services>,
    interaction: Interaction,
    agent: Agent,
    offer: Option<(oneshot::Sender<OfferOutcome>, CallOver)>,
) {
    let _active = svc.track();
    // Held to the end of the dial: the router keeps the agent busy until it drops.
    let (offer, _over) = offer.unzip();
    let Some(cb) = interaction.callback.as_ref() else {
        // A live caller accepted from the Home List has its own call task; nothing to dial.
        return;
    };
    let flow = svc.queues.current().get(&interaction.queue);
    let settings = Settings::for_number(flow.as_deref(), &cb.number);
    // The whisper reads the time in the queue's zone; a 24/7 queue has none: the host's.
    let zone = flow
        .as_ref()
        .and_then(|f| f.hours.time_zone().cloned())
        .unwrap_or_else(jiff::tz::TimeZone::system);
    let callback = Callback {
        number: cb.number.clone(),
        agent: agent.id.clone(),
        requested_at: cb.requested_at.map(|t| zone.to_datetime(t).time()),
    };
    let now = clock::now();
    let core = if offer.is_some() {
        CallbackDial::offered(now, callback, settings)
    } else {
        CallbackDial::accepted(now, callback, settings)
    };
    let mut legs = Legs::default();
    legs.set_phone_context(PhoneContext {
        number: None,
        interaction: Some(interaction.id),
        pushed: offer.is_some(),
    });
    let mut driver = Driver {
        caller_id: svc.caller_id_for(&interaction.queue),
        closing: svc.connected.register(interaction.id),
        store: StoreWorker::spawn(svc.store.clone(), interaction.id),
        queue: interaction.queue.clone(),
        number: cb.number.clone(),
        svc,
        core,
        legs,
        offer,
    };
    driver.run().await;
}

struct Driver {
    svc: Arc<Services>,
    core: CallbackDial,
    legs: Legs,
    store: StoreWorker,
    closing: HangupRequest,
    offer: Option<oneshot::Sender<OfferOutcome>>,
    queue: String,
    number: String,
    caller_id: String,
}

impl Driver {
    async fn run(&mut self) {
        loop {
            self.carry_out().await;
            if self.core.is_finished() {
                break;
            }
            let deadline = self.core.poll_timeout();
            tokio::select! {
                h = self.legs.next_happening() => self.on_leg(h),
                Some(reply) = self.store.replies.recv() => {
                    let now = clock::now();
                    match reply {
                        WorkerReply::Committed => self.core.handle_store(now, StoreReply::Committed),
                        WorkerReply::Refused => self.core.handle_store(now, StoreReply::Refused),
                        other => warn!(reply = ?other, "unexpected store reply on a callback"),
                    }
                }
                () = self.closing.requested() => {
                    info!("the agent closed the interaction; hanging up");
                    self.core.handle_close(clock::now());
                }
                () = sleep_until(deadline) => self.core.handle_timeout(clock::now()),
            }
        }
        self.store.finish().await;
        // Legs left (hung up by the core already) are dropped here: their registrations go.
    }

    fn on_leg(&mut self, h: Happened) {
        let now = clock::now();
        match h {
            Happened::Sip(id, Some(SipEvent::ReInvite { sdp, .. })) => {
                if let Some(cmd) = self.legs.reinvited(now, id, &sdp) {
                    self.core.handle_agent(now, cmd);
                }
            }
            Happened::Sip(id, ev) => {
                if let Some(ev) = self.legs.outbound_event(now, id, ev) {
                    self.core.handle_leg(now, id, ev);
                }
            }
            Happened::Leg(id, ev) => self.core.handle_leg(now, id, ev),
            Happened::Agent(cmd) => self.core.handle_agent(now, cmd),
            Happened::Media(id) => {
                for ev in self.legs.media_events(id) {
                    match ev {
                        MediaEvent::PlaybackFinished => {
                            self.core.handle_leg(now, id, LegEvent::PlaybackFinished);
                        }
                        MediaEvent::Inactive => {
                            self.core.handle_leg(now, id, LegEvent::MediaTimeout)
                        }
                        MediaEvent::DigitReceived { digit, method } => {
                            info!(leg = ?id, digit = %digit, method = method.as_str(), "key pressed");
                            crate::metrics::dtmf_digit(method);
                            self.core.handle_digit(now, id, digit.as_char());
                        }
                        MediaEvent::Screened(verdict) => {
                            info!(?verdict, "answering-machine detection decided");
                            self.core.handle_screened(now, verdict);
                        }
                        MediaEvent::GreetingEnded(cue) => {
                            info!(?cue, "the machine's greeting ended");
                            self.core.handle_greeting_ended(now);
                        }
                    }
                }
            }
        }
    }

    /// Carry out every command the core has, feeding back what a command itself produces (a
    /// leg that could not be dialled).
    async fn carry_out(&mut self) {
        while let Some(cmd) = self.core.poll_command() {
            match cmd {
                Command::Dial(id, target) => {
                    // The customer sees the queue's caller ID; the agent sees the customer's number.
                    let from = if id == LegId::Customer {
                        self.caller_id.clone()
                    } else {
                        self.number.clone()
                    };
                    if let Some(failed) = self.legs.dial(&self.svc, id, &target, from).await {
                        self.core.handle_leg(clock::now(), id, failed);
                    }
                }
                Command::Play {
                    leg,
                    items,
                    then_loop,
                } => self.legs.play(&self.svc, leg, items, then_loop.as_deref()),
                Command::Bridge(a, b) => {
                    info!("customer and agent bridged");
                    self.legs.bridge(&self.svc, a, b);
                }
                Command::Unbridge(a, b) => {
                    info!("on hold");
                    self.legs.unbridge(&self.svc, a, b);
                }
                Command::HangUp(id) => self.legs.hang_up(&self.svc, id),
                Command::Screen(id, amd) => self.legs.screen(id, clock::now(), amd),
                Command::Store(op) => self.store(op),
                Command::Router(RouterNote::OfferEnded(outcome)) => {
                    if let Some(done) = self.offer.take() {
                        let _ = done.send(outcome);
                    }
                }
                Command::Router(RouterNote::AgentAway(agent)) => {
                    info!(agent = %agent, "agent's phone did not take the callback; set away");
                    self.svc.agents.set_presence_soon(&agent, Presence::Away);
                }
                Command::Router(RouterNote::LeftQueue) => {}
                Command::DialOutcome(outcome) => {
                    info!(outcome, "callback dial outcome");
                    crate::metrics::dial_outcome(outcome);
                }
                Command::Handled(talk) => self.svc.record_handling(&self.queue, talk),
                Command::Ring
                | Command::Answer
                | Command::Reject(_)
                | Command::StartMedia
                | Command::Record(_)
                | Command::Refer(_) => warn!(command = ?cmd, "not a callback's command"),
            }
        }
    }

    fn store(&mut self, op: StoreOp) {
        let job = match op {
            StoreOp::Apply(e) => StoreJob::Apply(e),
            StoreOp::Commit(e) => StoreJob::Commit(e),
            StoreOp::Accept { agent } => StoreJob::Accept { agent },
            other => {
                warn!(op = ?other, "not a callback's store operation");
                return;
            }
        };
        self.store.send(job);
    }
}

/// Sleeps until `at`; pends for ever without one.
pub(crate) async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
