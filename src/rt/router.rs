//! The router task: offers waiting live callers and due callbacks to available agents
//! ("an interaction that is sent to you"), one offer per free agent, oldest first.
//!
//! An agent is free when its presence is `available`, no offer to it is ringing, no call it
//! answered from an offer is up here, and it has no connected interaction in the store. An
//! offer the agent does not answer within the queue's ring time sets the agent `away`; the
//! interaction stays where it was.
//!
//! Several instances sharing a PostgreSQL store each run a router: each offers its own live
//! callers (a live call stays on the instance that has its media) and any due callback. Before
//! it rings an agent it claims the interaction and the agent in the store
//! ([`crate::store::InteractionStore::claim_offer`], lapsing a little after the ring time), so
//! an interaction is offered by one instance at a time and an agent rung by one offer at a
//! time; the claim is given back when the offer ends (an answered one: when its call ends).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::callback_task;
use super::live::{CallCommand, CallOver, OfferOutcome};
use super::services::Services;
use crate::clock;
use crate::interaction::{Interaction, Status, SubType};
use crate::queue::agent::{Agent, Presence};
use crate::queue::offers::Offers;
use crate::queue::router::{Candidate, Router};
use crate::store::{ListQuery, OfferClaim};
use crate::workflow::Flow;

/// How often the router looks again even without a change.
const TICK: Duration = Duration::from_millis(500);
/// How long a claim outlives the ring time it covers (an instance that dies mid-offer holds
/// the interaction and the agent this long after the ring time at most).
const CLAIM_MARGIN: Duration = Duration::from_secs(5);
/// Least time between two rounds: every stored change wakes the router, and at hundreds of
/// calls a second a round per change would be most of the store's reads. Offers ring for
/// seconds; 50 ms of batching is not noticed.
const MIN_GAP: Duration = Duration::from_millis(50);

pub fn spawn(svc: Arc<Services>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut router = Router::default();
        let in_flight = Arc::new(Mutex::new(Offers::default()));
        let mut presence = svc.agents.subscribe();
        let mut changes = svc.store.subscribe();
        loop {
            let woke = clock::now();
            tokio::select! {
                _ = presence.recv() => {}
                _ = changes.recv() => {}
                () = tokio::time::sleep(TICK) => {}
                () = shutdown.cancelled() => return,
            }
            // Let changes that arrive together make one round.
            tokio::select! {
                () = tokio::time::sleep_until((woke + MIN_GAP).into()) => {}
                () = shutdown.cancelled() => return,
            }
            drain(&mut changes);
            drain(&mut presence);
            round(&svc, &mut router, &in_flight).await;
        }
    });
}

/// Skip the notifications already queued: the next round sees their effect anyway.
fn drain<T: Clone>(rx: &mut broadcast::Receiver<T>) {
    while !matches!(
        rx.try_recv(),
        Err(TryRecvError::Empty | TryRecvError::Closed)
    ) {}
}

/// One routing round over every queue.
async fn round(svc: &Arc<Services>, router: &mut Router, in_flight: &Arc<Mutex<Offers>>) {
    // Nobody to offer to: nothing to read.
    let queues: Vec<String> = svc
        .queues
        .current()
        .iter()
        .map(|f| f.name.clone())
        .filter(|q| !svc.agents.available_for(q).is_empty())
        .collect();
    if queues.is_empty() {
        return;
    }
    // Busy: agents on a connected interaction.
    let connected = svc
        .store
        .list(ListQuery {
            status: Some(Status::Connected),
            limit: crate::store::MAX_PAGE,
            ..ListQuery::default()
        })
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let busy: HashSet<String> = connected
        .iter()
        .filter_map(|l| l.interaction.assigned_agent.clone())
        .collect();
    let now = clock::wall();
    for queue in queues {
        let free: Vec<Agent> = {
            let f = lock(in_flight);
            svc.agents
                .available_for(&queue)
                .into_iter()
                .filter(|a| f.is_free(&a.id, &busy))
                .collect()
        };
        if free.is_empty() {
            continue;
        }
        let mut candidates: Vec<Candidate> = svc
            .live
            .waiting(&queue)
            .into_iter()
            .map(|c| Candidate {
                interaction: c.interaction,
                created_at: c.created_at,
                live: true,
            })
            .collect();
        let open = svc
            .store
            .list(ListQuery {
                status: Some(Status::Open),
                queues: Some(vec![queue.clone()]),
                sub_type: Some(SubType::Callback),
                limit: 50,
                ..ListQuery::default()
            })
            .await
            .map(|p| p.items)
            .unwrap_or_default();
        let flow = svc.queues.current().get(&queue);
        candidates.extend(
            open.iter()
                .filter(|l| pushable(&l.interaction, flow.as_deref(), now))
                .map(|l| Candidate {
                    interaction: l.interaction.id,
                    created_at: l.interaction.created_at,
                    live: false,
                }),
        );
        candidates.retain(|c| !lock(in_flight).is_offered(c.interaction));
        if candidates.is_empty() {
            continue;
        }
        let ids: Vec<String> = free.iter().map(|a| a.id.clone()).collect();
        let ring = svc
            .queues
            .current()
            .get(&queue)
            .map_or(Duration::from_secs(30), |f| f.callback.retry.ring_timeout);
        for (agent_id, cand) in router.assign(now, &ids, &candidates) {
            let Some(agent) = free.iter().find(|a| a.id == agent_id).cloned() else {
                continue;
            };
            let claim = OfferClaim {
                interaction: cand.interaction,
                agent: agent.id.clone(),
                until: now + ring + CLAIM_MARGIN,
            };
            // Another instance may be offering it, or ringing this agent.
            match svc.store.claim_offer(claim.clone(), now).await {
                Ok(true) => offer(svc, in_flight, &open, agent, cand, ring, claim),
                Ok(false) => {
                    debug!(agent = %agent.id, interaction = cand.interaction, "offer claimed elsewhere")
                }
                Err(e) => debug!(error = %e, "offer not claimed"),
            }
        }
    }
}

fn offer(
    svc: &Arc<Services>,
    in_flight: &Arc<Mutex<Offers>>,
    open: &[crate::store::Listed],
    agent: Agent,
    cand: Candidate,
    ring: Duration,
    claim: OfferClaim,
) {
    let (done, outcome) = oneshot::channel();
    let (over, call_over) = CallOver::new();
    let sent = if cand.live {
        let caller = svc.live.waiting_one(cand.interaction);
        caller.is_some_and(|c| {
            c.send(CallCommand::Offer {
                agent: agent.clone(),
                ring_timeout: ring,
                done,
                over,
            })
        })
    } else {
        match open.iter().find(|l| l.interaction.id == cand.interaction) {
            Some(l) => {
                let i = l.interaction.clone();
                callback_task::offer(svc.clone(), i, agent.clone(), done, over);
                true
            }
            None => false,
        }
    };
    if !sent {
        let svc = svc.clone();
        tokio::spawn(async move { release(&svc, claim).await });
        return;
    }
    info!(agent = %agent.id, interaction = cand.interaction, live = cand.live, "offer");
    lock(in_flight).ringing(&agent.id, cand.interaction);
    let (svc, in_flight) = (svc.clone(), in_flight.clone());
    tokio::spawn(async move {
        let result = outcome.await.unwrap_or(OfferOutcome::Unavailable);
        debug!(agent = %agent.id, interaction = cand.interaction, ?result, "offer ended");
        if result == OfferOutcome::NotAnswered {
            info!(agent = %agent.id, "offer not answered; agent set away");
            if let Err(e) = svc.agents.set_presence(&agent.id, Presence::Away).await {
                warn!(agent = %agent.id, error = %e, "presence not stored");
            }
        }
        let bridged = result == OfferOutcome::Bridged;
        lock(&in_flight).ended(&agent.id, cand.interaction, bridged);
        if bridged {
            // Busy here until the call is over (the driver drops `over` after its last
            // write). Other instances read it from the store; the claim, kept until it lapses
            // or the call is over, covers them until the call's first write lands.
            let _ = call_over.await;
            lock(&in_flight).call_over(&agent.id);
        }
        release(&svc, claim).await;
    });
}

/// Gives an offer's claim back (it lapses by itself if this fails).
async fn release(svc: &Services, claim: OfferClaim) {
    if let Err(e) = svc.store.release_offer(claim).await {
        debug!(error = %e, "offer claim not released; it lapses");
    }
}

/// Whether an open callback may be offered at `now`: due (its not-before passed) and inside its
/// queue's calling window in the customer's time zone (`flow`, the queue's; none, no window).
fn pushable(i: &Interaction, flow: Option<&Flow>, now: jiff::Timestamp) -> bool {
    i.callback.as_ref().is_some_and(|c| {
        c.not_before.is_none_or(|t| t <= now)
            && flow.is_none_or(|f| f.callable_from(&c.number, now).is_none())
    })
}

fn lock(m: &Mutex<Offers>) -> std::sync::MutexGuard<'_, Offers> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::flow::CallingWindow;
    use crate::workflow::hours::parse_range;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    /// The shipped queue with a 09:00-20:00 calling window (Paris for numbers not placed).
    fn windowed() -> Flow {
        let mut f = crate::workflow::test_support::support_flow();
        f.callback.calling_window = Some(CallingWindow {
            daily: parse_range("09:00-20:00").unwrap(),
        });
        f.callback.time_zone = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        f
    }

    fn open_callback(number: &str, not_before: Option<&str>) -> Interaction {
        Interaction::requested_callback(
            "support",
            number,
            not_before.map(ts),
            ts("2026-03-01T00:00:00Z"),
        )
    }

    /// Issue 21: push offers are not made outside the customer's calling window, and are made
    /// from its opening, in each customer's own zone (New York, 09:00 EST = 14:00Z; Paris,
    /// 09:00 CET = 08:00Z), up to its close (20:00 there).
    #[test]
    fn offers_keep_to_the_customers_calling_window() {
        let f = windowed();
        let new_york = open_callback("+12125550123", None);
        let paris = open_callback("+33142685300", None);
        let cases = [
            (&new_york, "2026-03-02T13:59:59Z", false),
            (&new_york, "2026-03-02T14:00:00Z", true),
            (&new_york, "2026-03-03T00:59:59Z", true),
            (&new_york, "2026-03-03T01:00:00Z", false),
            (&paris, "2026-03-02T07:59:59Z", false),
            (&paris, "2026-03-02T08:00:00Z", true),
            (&paris, "2026-03-02T18:59:59Z", true),
            (&paris, "2026-03-02T19:00:00Z", false),
            // 14:00Z: open in New York and in Paris alike.
            (&paris, "2026-03-02T14:00:00Z", true),
        ];
        for (i, at, want) in cases {
            assert_eq!(
                pushable(i, Some(&f), ts(at)),
                want,
                "{} at {at}",
                i.customer_number
            );
        }
        // No calling window (or no queue file): only not_before decides.
        assert!(pushable(&new_york, None, ts("2026-03-02T03:00:00Z")));
    }

    /// Not before `not_before`, even inside the window; and a row without callback data
    /// (nothing to dial) is never offered as a callback.
    #[test]
    fn offers_wait_for_not_before() {
        let f = windowed();
        let later = open_callback("+33142685300", Some("2026-03-02T10:00:00Z"));
        assert!(!pushable(&later, Some(&f), ts("2026-03-02T09:59:59Z")));
        assert!(pushable(&later, Some(&f), ts("2026-03-02T10:00:00Z")));
        let mut nothing = later.clone();
        nothing.callback = None;
        assert!(!pushable(&nothing, Some(&f), ts("2026-03-02T10:00:00Z")));
    }
}
