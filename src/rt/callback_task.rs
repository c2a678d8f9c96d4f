//! A callback, from the agent's accept to the end of the conversation.
//!
//! ```text
//!  accept (connected, assigned) ─► number checked against the queue's rules (toll fraud)
//!      ─► INVITE customer via [sip.trunk]  ┐ at once, in parallel
//!      ─► INVITE agent's endpoint          ┘ (auto-answer hint)
//!      ─► ringing / answered / busy / no answer / failed, each on the feed
//!      ─► both answered: media bridged ─► either hangs up: BYE to the other, closed completed
//! ```
//! The agent closing the interaction through the API at any point hangs both legs up.
//! Outcomes: the customer busy / not answering / failing returns the interaction to open with
//! the attempt counted (closed `callback_failed` after `max_attempts`); the agent's leg failing
//! cancels the customer's and returns it to open *without* counting. One accept makes at most
//! one outbound call: this task runs once per successful (atomic) accept.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info, info_span, warn};

use super::live::OfferOutcome;
use super::outbound::{DialSpec, OutboundLeg};
use super::services::Services;
use crate::clock;
use crate::interaction::{DialFailure, Event as Lifecycle, HangupBy, Interaction, Note, Status};
use crate::media::bridge::{Leg as Side, Relay};
use crate::media::leg::MAX_PACKET;
use crate::metrics::dial_outcome;
use crate::pii::Pii;
use crate::queue::agent::{Accepted, Agent};
use crate::rt::connected::HangupRequest;
use crate::sip::msg::{Uri, parse_uri};
use crate::sip::ua::SipEvent;
use crate::workflow::flow::RetryPolicy;

/// Start the dialer: every successful accept arriving on `accepted` becomes one callback task.
pub fn spawn_dialer(svc: Arc<Services>) -> mpsc::UnboundedSender<Accepted> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Accepted>();
    tokio::spawn(async move {
        while let Some(acc) = rx.recv().await {
            let span =
                info_span!("callback", interaction = acc.interaction.id, agent = %acc.agent.id);
            tokio::spawn(run(svc.clone(), acc.interaction, acc.agent, None).instrument(span));
        }
    });
    tx
}

/// Push: offer a due callback to an available agent. The agent's phone rings first; only when
/// the agent answers is the interaction accepted (atomically) and the customer dialled, so a
/// callback is never dialled ahead of an agent. Reports how the offer went.
pub fn offer(
    svc: Arc<Services>,
    interaction: Interaction,
    agent: Agent,
    done: oneshot::Sender<OfferOutcome>,
) {
    let span =
        info_span!("callback", interaction = interaction.id, agent = %agent.id, offer = true);
    tokio::spawn(run(svc, interaction, agent, Some(done)).instrument(span));
}

/// The auto-answer hints understood by most desk phones and softphones.
fn auto_answer() -> Vec<(String, String)> {
    vec![
        ("Call-Info".into(), "<sip:hammond>;answer-after=0".into()),
        (
            "Alert-Info".into(),
            "<http://hammond/>;info=alert-autoanswer".into(),
        ),
    ]
}

/// Ring the agent's phone until it answers, fails or `ring_timeout` passes.
async fn ring_agent(
    svc: &Arc<Services>,
    agent: &Agent,
    from_user: &str,
    ring_timeout: Duration,
) -> Option<OutboundLeg> {
    let (uri, hop) = agent_target(&agent.endpoint).await?;
    let mut leg = OutboundLeg::dial(
        svc,
        DialSpec {
            target: uri,
            next_hop: hop,
            from_user: from_user.to_owned(),
            extra_headers: auto_answer(),
            credentials: None,
        },
    )
    .await
    .ok()?;
    let deadline = tokio::time::sleep(ring_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ev = leg.events.recv() => match ev {
                Some(SipEvent::Answered { sdp, .. }) => {
                    if let Err(e) = leg.answered(clock::now(), &sdp) {
                        warn!(error = %e, "agent's SDP answer unusable");
                    }
                    return Some(leg);
                }
                Some(SipEvent::Failed { .. } | SipEvent::CallEnded { .. }) | None => {
                    leg.mark_ended();
                    return None;
                }
                Some(_) => {}
            },
            () = &mut deadline => return None,
        }
    }
}

async fn run(
    svc: Arc<Services>,
    interaction: Interaction,
    agent: Agent,
    offer: Option<oneshot::Sender<OfferOutcome>>,
) {
    let _active = svc.track();
    let mut interaction = interaction;
    let mut pre_answered: Option<OutboundLeg> = None;
    if let Some(done) = offer {
        let ring = svc.queues.current().retry(&interaction.queue).ring_timeout;
        let number = interaction
            .callback
            .as_ref()
            .map(|c| c.number.clone())
            .unwrap_or_default();
        let Some(mut leg) = ring_agent(&svc, &agent, &number, ring).await else {
            info!("agent did not answer the callback offer");
            let _ = done.send(OfferOutcome::NotAnswered);
            return;
        };
        match svc
            .store
            .accept(interaction.id, &agent.id, clock::wall())
            .await
        {
            Ok(i) => {
                info!("agent answered the offer; callback accepted");
                interaction = i;
                pre_answered = Some(leg);
                let _ = done.send(OfferOutcome::Bridged);
            }
            Err(e) => {
                info!(error = %e, "callback taken meanwhile; releasing the agent");
                leg.hang_up();
                let _ = done.send(OfferOutcome::Unavailable);
                return;
            }
        }
    }
    // Connected from here on: the agent closing the interaction hangs both legs up. A close
    // that came between the accept and this registration found no call to hang up: look.
    let hangup = svc.connected.register(interaction.id);
    match svc.store.get(interaction.id).await {
        Ok(d) if d.listed.interaction.status == Status::Connected => {}
        Ok(d) => {
            info!(status = %d.listed.interaction.status, "no longer connected; not dialling");
            return;
        }
        Err(e) => {
            warn!(error = %e, "interaction unreadable; not dialling");
            return;
        }
    }
    let apply = |e: Lifecycle| {
        let store = svc.store.clone();
        let id = interaction.id;
        async move {
            if let Err(err) = store.apply(id, e, clock::wall()).await {
                warn!(error = %err, "interaction update failed");
            }
        }
    };
    let Some(number) = interaction.callback.as_ref().map(|c| c.number.clone()) else {
        // A live caller accepted from the Home List has its own call task; nothing to dial.
        return;
    };
    let flow = svc.queues.current().get(&interaction.queue);
    let RetryPolicy {
        max_attempts,
        retry_interval: retry_after,
        ring_timeout,
    } = flow
        .as_ref()
        .map_or_else(RetryPolicy::default, |f| f.callback.retry);
    let failed = |kind: DialFailure, code: Option<u16>| Lifecycle::DialFailed {
        code,
        kind,
        max_attempts,
        retry_after,
    };

    // Toll fraud: only numbers the queue's rules allow are ever dialled.
    let allowed = flow.as_ref().is_some_and(|f| {
        f.callback.numbers.check_caller_id(&number).is_ok()
            || f.callback.numbers.check_entered(&number).is_ok()
    });
    if !allowed {
        warn!(number = %Pii(&number), "callback number not allowed by the queue's rules; not dialled");
        apply(Lifecycle::DialFailed {
            code: None,
            kind: DialFailure::Failed,
            max_attempts: 1,
            retry_after,
        })
        .await;
        return;
    }
    let Some(trunk) = resolve(&svc.cfg.trunk.proxy.to_string()).await else {
        warn!("trunk proxy does not resolve; callback not dialled");
        apply(failed(DialFailure::Failed, None)).await;
        return;
    };
    let Some((agent_uri, agent_hop)) = agent_target(&agent.endpoint).await else {
        warn!(endpoint = %agent.endpoint, "agent endpoint unusable");
        apply(Lifecycle::AgentUnreachable { code: None }).await;
        return;
    };
    let caller_id = svc.caller_id_for(&interaction.queue);
    let user = &svc.cfg.trunk.username;
    let credentials =
        (!user.is_empty()).then(|| (user.clone(), svc.cfg.trunk.password.expose().to_owned()));
    let customer_uri = Uri {
        scheme: "sip".into(),
        user: Some(number.clone()),
        password: None,
        host: trunk.ip().to_string(),
        port: Some(trunk.port()),
        params: Default::default(),
        headers: None,
        opaque: None,
    };

    if hangup.is_requested() {
        info!("the agent closed the interaction before the dial; not dialling");
        apply(Lifecycle::Note(Note::HungUpOnClose)).await;
        return;
    }
    info!(number = %Pii(&number), "dialling customer and agent");
    let customer = OutboundLeg::dial(
        &svc,
        DialSpec {
            target: customer_uri,
            next_hop: trunk,
            from_user: caller_id,
            extra_headers: Vec::new(),
            credentials,
        },
    )
    .await;
    let agent_up_already = pre_answered.is_some();
    let agent_leg = match pre_answered.take() {
        Some(leg) => Ok(leg),
        None => {
            OutboundLeg::dial(
                &svc,
                DialSpec {
                    target: agent_uri,
                    next_hop: agent_hop,
                    from_user: number.clone(),
                    extra_headers: auto_answer(),
                    credentials: None,
                },
            )
            .await
        }
    };
    let (mut customer, mut agent_leg) = match (customer, agent_leg) {
        (Ok(c), Ok(a)) => (c, a),
        _ => {
            warn!("no RTP port for the callback legs");
            apply(Lifecycle::AgentUnreachable { code: Some(503) }).await;
            return;
        }
    };
    if let Err(e) = svc
        .store
        .apply(interaction.id, Lifecycle::Dialling, clock::wall())
        .await
    {
        // Closed meanwhile (or the store is failing): nobody may be called for it.
        warn!(error = %e, "dial not recorded; hanging up both legs");
        customer.hang_up();
        agent_leg.hang_up();
        return;
    }

    // Setup: both legs must answer.
    let ring_deadline = clock::now() + ring_timeout;
    let mut rang = false;
    let (mut customer_up, mut agent_up) = (false, agent_up_already);
    while !(customer_up && agent_up) {
        tokio::select! {
            ev = customer.events.recv() => match ev {
                Some(SipEvent::Progress { status: 180 | 183, .. }) if !rang => {
                    rang = true;
                    apply(Lifecycle::Ringing).await;
                }
                Some(SipEvent::Answered { sdp, .. }) => {
                    if let Err(e) = customer.answered(clock::now(), &sdp) {
                        warn!(error = %e, "customer's SDP answer unusable");
                    }
                    customer_up = true;
                    info!("customer answered");
                    dial_outcome("answered");
                    apply(Lifecycle::Answered).await;
                }
                Some(SipEvent::Failed { status, .. }) => {
                    customer.mark_ended();
                    let kind = match status {
                        486 | 600 => DialFailure::Busy,
                        408 | 480 | 487 => DialFailure::NoAnswer,
                        _ => DialFailure::Failed,
                    };
                    info!(status, outcome = ?kind, "customer not reached");
                    dial_outcome(match kind {
                        DialFailure::Busy => "busy",
                        DialFailure::NoAnswer => "no_answer",
                        DialFailure::Failed => "failed",
                    });
                    agent_leg.hang_up();
                    apply(failed(kind, Some(status))).await;
                    return;
                }
                Some(SipEvent::CallEnded { .. }) | None => {
                    customer.mark_ended();
                    agent_leg.hang_up();
                    apply(Lifecycle::HungUp { by: HangupBy::Customer }).await;
                    return;
                }
                Some(_) => {}
            },
            ev = agent_leg.events.recv() => match ev {
                Some(SipEvent::Answered { sdp, .. }) => {
                    if let Err(e) = agent_leg.answered(clock::now(), &sdp) {
                        warn!(error = %e, "agent's SDP answer unusable");
                    }
                    agent_up = true;
                    info!("agent answered");
                }
                Some(SipEvent::Failed { status, .. }) => {
                    agent_leg.mark_ended();
                    info!(status, "agent's phone did not answer; cancelling the customer leg");
                    customer.hang_up();
                    dial_outcome("agent_unreachable");
                    apply(Lifecycle::AgentUnreachable { code: Some(status) }).await;
                    return;
                }
                Some(SipEvent::CallEnded { .. }) | None => {
                    agent_leg.mark_ended();
                    customer.hang_up();
                    if customer_up {
                        apply(Lifecycle::HungUp { by: HangupBy::Agent }).await;
                    } else {
                        apply(Lifecycle::AgentUnreachable { code: None }).await;
                    }
                    return;
                }
                Some(_) => {}
            },
            () = hangup.requested() => {
                info!("the agent closed the interaction while dialling; hanging up both legs");
                customer.hang_up();
                agent_leg.hang_up();
                apply(Lifecycle::Note(Note::HungUpOnClose)).await;
                return;
            }
            () = tokio::time::sleep_until(ring_deadline.into()), if !customer_up => {
                info!(timeout = ?ring_timeout, "customer did not answer in time; cancelling");
                customer.hang_up();
                // The 487 (or a racing 200) arrives as an event on the customer leg.
                customer.events.close();
                agent_leg.hang_up();
                dial_outcome("no_answer");
                apply(failed(DialFailure::NoAnswer, Some(487))).await;
                return;
            }
        }
    }

    apply(Lifecycle::Bridged).await;
    info!("customer and agent bridged");
    let started = clock::now();
    let by = bridge(&mut customer, &mut agent_leg, &hangup).await;
    let talk = clock::now() - started;
    svc.record_handling(&interaction.queue, talk);
    customer.hang_up();
    agent_leg.hang_up();
    apply(Lifecycle::Note(Note::TalkTime(talk))).await;
    match by {
        Some(by) => apply(Lifecycle::HungUp { by }).await,
        None => apply(Lifecycle::Note(Note::HungUpOnClose)).await,
    }
    info!(by = ?by, talk_secs = talk.as_secs(), "callback ended");
}

/// Relay RTP between the two answered legs until one hangs up (returns who did) or the agent
/// closes the interaction (`None`).
async fn bridge(
    customer: &mut OutboundLeg,
    agent: &mut OutboundLeg,
    hangup: &HangupRequest,
) -> Option<HangupBy> {
    let mut relay = Relay::new();
    let (mut buf_a, mut buf_b, mut out) = ([0u8; 2048], [0u8; 2048], [0u8; MAX_PACKET]);
    loop {
        tokio::select! {
            r = customer.sock.recv_from(&mut buf_a) => if let Ok((n, from)) = r {
                forward(Side::A, customer, agent, &mut relay, from, &buf_a[..n], &mut out).await;
            },
            r = agent.sock.recv_from(&mut buf_b) => if let Ok((n, from)) = r {
                forward(Side::B, agent, customer, &mut relay, from, &buf_b[..n], &mut out).await;
            },
            ev = customer.events.recv() => if matches!(ev, Some(SipEvent::CallEnded { .. }) | None) {
                customer.mark_ended();
                return Some(HangupBy::Customer);
            },
            ev = agent.events.recv() => if matches!(ev, Some(SipEvent::CallEnded { .. }) | None) {
                agent.mark_ended();
                return Some(HangupBy::Agent);
            },
            () = hangup.requested() => return None,
        }
    }
}

/// One packet from `src`'s socket, re-originated on `dst`'s stream.
async fn forward(
    side: Side,
    src: &mut OutboundLeg,
    dst: &mut OutboundLeg,
    relay: &mut Relay,
    from: SocketAddr,
    bytes: &[u8],
    out: &mut [u8],
) {
    let now: Instant = clock::now();
    let (Some(src_s), Some(dst_s)) = (src.session.as_mut(), dst.session.as_mut()) else {
        return;
    };
    let Ok(inbound) = src_s.accept(now, from, bytes) else {
        return;
    };
    let Ok(n) = relay.forward(side, &inbound, src_s, dst_s, out) else {
        return;
    };
    if let Some(dest) = dst_s.destination() {
        let _ = dst.sock.send_to(&out[..n], dest).await;
    }
}

/// A host:port string to a socket address (IP literal or DNS).
async fn resolve(hostport: &str) -> Option<SocketAddr> {
    if let Ok(a) = hostport.parse() {
        return Some(a);
    }
    tokio::net::lookup_host(hostport).await.ok()?.next()
}

/// The agent's endpoint URI and where to send its INVITE.
pub(crate) async fn agent_target(endpoint: &str) -> Option<(Uri, SocketAddr)> {
    let uri = parse_uri(endpoint).ok()?;
    let host = uri
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let hop = resolve(&format!("{}:{}", bracket(&host), uri.port.unwrap_or(5060))).await?;
    Some((uri, hop))
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}
